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

.PHONY: all build man check soak deps test-deps demo bench bench-deps soak-idle clean install uninstall

all: build man

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

build: build/.stamp
build/.stamp: node_modules/.installed tsconfig.json scripts/bundle.js scripts/code-cache.js $(SOURCES)
	$(TSC) -p .
	node scripts/bundle.js build/src/helper/main.js build/ucspi-tls-wrap.js
	node scripts/bundle.js build/src/client/main.js build/ucspi-tls-client.js
	node scripts/bundle.js build/src/server/main.js build/ucspi-tls-server.js
	node scripts/bundle.js build/src/server/worker.js build/ucspi-tls-server-worker.js
	node scripts/code-cache.js build/ucspi-tls-wrap.js
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
	  install -m 644 build/$$p.js build/$$p.bundle.js $$(ls build/$$p.cache 2>/dev/null) $(DESTDIR)$(LIBDIR)/build/ && \
	  install -m 755 bin/$$p $(DESTDIR)$(LIBDIR)/bin/ && \
	  ln -sfn "$$(realpath -m --relative-to=$(BINDIR) $(LIBDIR)/bin/$$p)" $(DESTDIR)$(BINDIR)/$$p || exit 1; \
	done
	# The server's TLS workers: forked by ucspi-tls-server from beside its own bundle.
	install -m 644 build/ucspi-tls-server-worker.js build/ucspi-tls-server-worker.bundle.js $(DESTDIR)$(LIBDIR)/build/
	install -m 644 $(filter %.1,$(MANPAGES)) $(DESTDIR)$(MANDIR)/man1/
	install -m 644 $(filter %.7,$(MANPAGES)) $(DESTDIR)$(MANDIR)/man7/
	rm -rf $(DESTDIR)$(DOCDIR)/examples && cp -R examples $(DESTDIR)$(DOCDIR)/
	install -m 644 README.md $(DESTDIR)$(DOCDIR)/

uninstall:
	for p in $(PROGRAMS); do rm -f $(DESTDIR)$(BINDIR)/$$p; done
	for m in $(notdir $(MANPAGES)); do rm -f $(DESTDIR)$(MANDIR)/man$${m##*.}/$$m; done
	rm -rf $(DESTDIR)$(LIBDIR) $(DESTDIR)$(DOCDIR)

# What the tests drive: launchers, clients and a mail server, from Debian.
test-deps:
	sh scripts/install-debian-packages openssl ca-certificates ucspi-tcp socat xinetd gnutls-bin swaks libnet-ssleay-perl mailfront runit tcpdump

check: test-deps all
	$(TAP) build/test/*.test.js

# The hostile-conditions suite for longer: fuzzing, load rounds and the big transfer run
# for about SOAK_SECONDS each (make check runs each once, briefly).
SOAK_SECONDS ?= 600
soak: test-deps all
	SOAK_SECONDS=$(SOAK_SECONDS) $(TAP) -t 0 build/test/hostile-*.test.js

demo: all
	sh scripts/install-debian-packages openssl ucspi-tcp
	sh demo/run

# The helper and the server beside their C peers (stunnel, hitch) and floors; prints one
# table and the targets (not part of check; about 4 minutes, at most 10 and a half).
bench: all build/bench/bench-app bench-deps
	$(TAP) build/bench/*.test.js
	node build/bench/bench.js

# 10 000 idle TLS connections held by ucspi-tls-server, then by hitch, each with its app
# (BENCH_IDLE=N for another count; about 2 minutes). The client needs an fd per connection.
soak-idle: all build/bench/bench-app bench-deps
	$(TAP) build/bench/*.test.js
	ulimit -n 131072 2>/dev/null || ulimit -n "$$(ulimit -Hn)"; node build/bench/idle.js

bench-deps:
	sh scripts/install-debian-packages openssl ucspi-tcp stunnel4 hitch

build/bench/bench-app: bench/app.c
	@mkdir -p build/bench
	$(CC) -O2 -Wall -Wextra -o $@ bench/app.c

clean:
	rm -rf build $(MANPAGES)
