# hrtem: `make demo` runs the main job on the bundled fixtures, `make test` runs the tests.
# Both install the missing Debian packages first (apt-get update only when something is missing).

SWIFT ?= swift
APT_PACKAGES := libsqlite3-dev libtiff-dev libcurl4-openssl-dev libopenblas-dev libpng-dev \
                libssl-dev libhdf5-dev pkg-config
# Numeric code is only usable optimized, so tests run on a release build with testability on.
BUILD_FLAGS := -c release -Xswiftc -enable-testing
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: deps build test demo bench clean

deps:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

build: deps
	$(SWIFT) build $(BUILD_FLAGS) --product hrtem

test: deps
	$(SWIFT) build $(BUILD_FLAGS) --build-tests
	$(SWIFT) test $(BUILD_FLAGS) --skip-build --disable-swift-testing

demo: build
	./scripts/demo.sh

clean:
	rm -rf .build demo-output
