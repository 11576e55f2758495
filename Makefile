# ucspi-tls-wrap: build, test, demo.
VERSION := $(shell node -p "require('./package.json').version")
MARKED_MAN := node_modules/.bin/marked-man
TSC := node_modules/.bin/tsc
TAP := node_modules/.bin/tap
SOURCES := $(shell find src test demo -name "*.ts")
MANPAGES := man/ucspi-tls-wrap.1 man/ucspi-tls-client.1

.PHONY: all build man check soak deps test-deps demo clean

all: build man

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

build: build/.stamp
build/.stamp: node_modules/.installed tsconfig.json $(SOURCES)
	$(TSC) -p .
	@grep -q "const VERSION = '$(VERSION)'" src/version.ts || { echo "src/version.ts VERSION differs from package.json ($(VERSION))" >&2; exit 1; }
	touch $@

man: $(MANPAGES)
man/%.1: man/%.1.md node_modules/.installed
	$(MARKED_MAN) --no-breaks --version "$(VERSION)" --manual "User Commands" $< > $@

# What the tests drive: launchers, clients and a mail server, from Debian.
test-deps:
	sh scripts/install-debian-packages openssl ca-certificates ucspi-tcp socat xinetd gnutls-bin swaks libnet-ssleay-perl mailfront tcpdump

check: test-deps all
	$(TAP) build/test/*.test.js

# The hostile-conditions suite for longer (SOAK_SECONDS), with the load test.
SOAK_SECONDS ?= 600
soak: test-deps all
	SOAK_SECONDS=$(SOAK_SECONDS) $(TAP) -t 0 build/test/hostile-*.test.js build/test/soak/*.test.js

demo: all
	sh scripts/install-debian-packages openssl ucspi-tcp
	sh demo/run

clean:
	rm -rf build $(MANPAGES)
