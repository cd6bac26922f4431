# Thin front door over meson/ninja. `make demo` and `make check` work on a fresh Debian 12.
# SANITIZE=thread or SANITIZE=address,undefined: a sanitizer build (meson b_sanitize) in its own
# directory (build-thread, build-address-undefined) that reuses build/guest, and `make check`
# then runs the unit suite and the sanitizer e2e cases (scripts/run-tests.sh).
SANITIZE ?=
comma := ,
ifeq ($(SANITIZE),)
BUILD ?= build
else
BUILD ?= build-$(subst $(comma),-,$(SANITIZE))
endif
MESON_FLAGS ?=
ifneq ($(SANITIZE),)
# b_lundef=false: meson's default -Wl,--no-undefined breaks sanitizer runtime linking.
override MESON_FLAGS += -Db_sanitize=$(SANITIZE) -Db_lundef=false
endif
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
ifeq ($(SANITIZE),)
	guest/build.sh $(BUILD)/guest
else
	@# The test guest does not depend on how the VMM is built: share build/guest.
	$(MAKE) guest SANITIZE= BUILD=build
	mkdir -p $(BUILD) && ln -sfn $(abspath build/guest) $(BUILD)/guest
endif

unit: build
	meson test -C $(BUILD) --suite unit --print-errorlogs

check: deps
	$(MAKE) build
	$(MAKE) guest
	MICROVMM_REQUIRE_E2E=$(REQUIRE_E2E) MICROVMM_SANITIZE=$(SANITIZE) scripts/run-tests.sh $(BUILD)

demo: deps
	$(MAKE) build
	$(MAKE) guest
	scripts/demo.sh $(BUILD)

bench: deps
	$(MAKE) build
	$(MAKE) guest
	bench/run.sh $(BUILD)

# FUZZ_SECONDS=N: after building, run every target N seconds (tests/fuzz/run.sh); FUZZ_RUNS=M
# also stops each target after M executions (the long run: FUZZ_SECONDS=36000 FUZZ_RUNS=10000000).
FUZZ_SECONDS ?= 0
FUZZ_RUNS ?=
fuzz: deps
	tests/fuzz/build.sh $(BUILD)-fuzz
	@if [ "$(FUZZ_SECONDS)" -gt 0 ]; then FUZZ_RUNS=$(FUZZ_RUNS) tests/fuzz/run.sh $(BUILD)-fuzz $(FUZZ_SECONDS); fi

clean:
	rm -rf $(BUILD) $(BUILD)-fuzz
