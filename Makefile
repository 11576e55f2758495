# ucspi-tls-wrap: build, test, demo.
VERSION := $(shell node -p "require('./package.json').version")
MARKED_MAN := node_modules/.bin/marked-man
TSC := node_modules/.bin/tsc
TAP := node_modules/.bin/tap
SOURCES := $(shell find src test demo bench -name "*.ts")
MANPAGES := man/ucspi-tls-wrap.1 man/ucspi-tls-client.1

.PHONY: all build man check deps test-deps demo bench clean

all: build man

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

build: build/.stamp
build/.stamp: node_modules/.installed tsconfig.json scripts/bundle.js $(SOURCES)
	$(TSC) -p .
	node scripts/bundle.js build/src/main.js build/ucspi-tls-wrap.js
	node scripts/bundle.js build/src/client-main.js build/ucspi-tls-client.js
	@grep -q "const VERSION = '$(VERSION)'" src/version.ts || { echo "src/version.ts VERSION differs from package.json ($(VERSION))" >&2; exit 1; }
	touch $@

man: $(MANPAGES)
man/%.1: man/%.1.md node_modules/.installed
	$(MARKED_MAN) --no-breaks --version "$(VERSION)" --manual "User Commands" $< > $@

# What the tests drive: launchers, clients and a mail server, from Debian.
test-deps:
	sh scripts/install-debian-packages openssl ca-certificates ucspi-tcp socat xinetd gnutls-bin swaks libnet-ssleay-perl mailfront

check: test-deps all
	$(TAP) build/test/*.test.js

demo: all
	sh scripts/install-debian-packages openssl ucspi-tcp
	sh demo/run

# The helper beside the Node floor and stunnel; prints one table (not part of check).
bench: all build/bench/app
	sh scripts/install-debian-packages openssl ucspi-tcp stunnel4
	node build/bench/bench.js

build/bench/app: bench/app.c
	@mkdir -p build/bench
	$(CC) -O2 -Wall -Wextra -o $@ bench/app.c

clean:
	rm -rf build $(MANPAGES)
