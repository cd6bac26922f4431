# Thin front door over meson/ninja. `make demo` and `make check` work on a fresh Debian 12.
BUILD ?= build
MESON_FLAGS ?=
# REQUIRE_E2E=1: `make check` fails when a test is skipped (e.g. no /dev/kvm) instead of passing.
REQUIRE_E2E ?= 0

.PHONY: all deps build guest check demo bench fuzz clean unit

all: build

deps:
	@scripts/install-deps.sh

$(BUILD)/build.ninja:
	meson setup $(BUILD) $(MESON_FLAGS)

build: $(BUILD)/build.ninja
	ninja -C $(BUILD)

guest: deps
	guest/build.sh $(BUILD)/guest

unit: build
	meson test -C $(BUILD) --suite unit --print-errorlogs

check: deps
	$(MAKE) build
	$(MAKE) guest
	MICROVMM_REQUIRE_E2E=$(REQUIRE_E2E) scripts/run-tests.sh $(BUILD)

demo: deps
	$(MAKE) build
	$(MAKE) guest
	scripts/demo.sh $(BUILD)

bench: deps
	$(MAKE) build
	$(MAKE) guest
	bench/run.sh $(BUILD)

# FUZZ_SECONDS=N: after building, run every target N seconds (tests/fuzz/run.sh).
FUZZ_SECONDS ?= 0
fuzz: deps
	tests/fuzz/build.sh $(BUILD)-fuzz
	@if [ "$(FUZZ_SECONDS)" -gt 0 ]; then tests/fuzz/run.sh $(BUILD)-fuzz $(FUZZ_SECONDS); fi

clean:
	rm -rf $(BUILD) $(BUILD)-fuzz
