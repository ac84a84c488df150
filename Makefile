# sparkler: Meson + Ninja behind make. `make demo` and `make test` install
# what they need from Debian first (scripts/deps.sh).
BUILD      ?= build
BUILD_ASAN ?= build-asan
FUZZ_SECONDS ?= 30
MESON_OPTS ?=

.PHONY: all deps demo test test-unit test-asan test-bed bench fuzz-smoke lint clean format \
	cross-arm64 test-bed-arm64 test-arm64

all: $(BUILD)/build.ninja
	ninja -C $(BUILD)

deps:
	@scripts/deps.sh build

$(BUILD)/build.ninja:
	@scripts/deps.sh build
	meson setup $(BUILD) $(MESON_OPTS)

$(BUILD_ASAN)/build.ninja:
	@scripts/deps.sh build
	meson setup $(BUILD_ASAN) -Db_sanitize=address,undefined -Db_lundef=false $(MESON_OPTS)

# The SDK: headers, libsparkler.so.0 and .a, sparkler.pc, and the guest SDK
# (start.o, libsparkler-guest.a, guest.ld, guest.h, sparkler-guest.pc)
# under PREFIX (README, "Embedding"). Also: DESTDIR=... for a staging root.
PREFIX ?= /usr/local
install: $(BUILD)/build.ninja
	meson configure $(BUILD) -Dprefix=$(PREFIX) -Dlibdir=lib
	ninja -C $(BUILD)
	meson install -C $(BUILD) $(if $(DESTDIR),--destdir $(DESTDIR))

# The demo guest of this machine's architecture: guest/demo.c on x86-64,
# guest/arm64/demo.c on an arm64 host (where the build is aarch64's).
ifeq ($(shell uname -m),aarch64)
DEMO_ELF = $(BUILD)/guest/arm64/a64_demo.elf
else
DEMO_ELF = $(BUILD)/guest/demo.elf
endif
demo: all
	$(BUILD)/src/vmm/sparkler sandbox --stats $(DEMO_ELF)

# Every test: the normal build (all suites: unit, guest, gdb, linux, bed, lint),
# then the unit, guest and gdb suites again under ASan + UBSan, then every
# libFuzzer target for FUZZ_SECONDS (make fuzz-smoke). scripts/summary.sh
# prints "N passed, N failed[, N skipped]".
test:
	@scripts/deps.sh test
	@$(MAKE) --no-print-directory $(BUILD)/build.ninja $(BUILD_ASAN)/build.ninja
	ninja -C $(BUILD)
	ninja -C $(BUILD_ASAN)
	@rc=0; \
	meson test -C $(BUILD) --print-errorlogs --num-processes 2 || rc=1; \
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	  meson test -C $(BUILD_ASAN) --print-errorlogs --num-processes 2 --suite unit --suite guest \
	    --suite gdb || rc=1; \
	scripts/fuzz-smoke.sh $(FUZZ_SECONDS) || rc=1; \
	scripts/summary.sh $(BUILD) $(BUILD_ASAN) build-fuzz; exit $$rc

# The real-KVM bed alone (tests/bed): Linux under a real KVM, in an L1
# machine under QEMU TCG when this host has no VT-x/AMD-V of its own.
test-bed: $(BUILD)/build.ninja
	@scripts/deps.sh test
	ninja -C $(BUILD)
	meson test -C $(BUILD) --print-errorlogs --suite bed

# sparkler-bench, then the bed's rows (tests/bed/bed.py bench-linux-boot):
# Linux booted to power-off by sparkler and by QEMU microvm in one L1, as a
# ratio (TCG times; on a VT-x/AMD-V host it runs there directly); and
# (bench-exits) sparkler-bench's PIO exit round trip in the L1: sparkler,
# QEMU and the bare KVM_RUN loop, as ratios to bare.
bench: all
	@scripts/deps.sh bench
	$(BUILD)/bench/sparkler-bench
	@python3 tests/bed/bed.py $(BUILD)/src/vmm/sparkler $(BUILD) bench-linux-boot \
	  >$(BUILD)/bench-bed.log 2>&1; grep -E '^(BENCH|SKIP|FAIL)' $(BUILD)/bench-bed.log || \
	  tail -30 $(BUILD)/bench-bed.log
	@python3 tests/bed/bed.py $(BUILD)/src/vmm/sparkler $(BUILD) bench-exits \
	  >$(BUILD)/bench-bed-exits.log 2>&1; grep -E '^(BENCH|SKIP|FAIL)' \
	  $(BUILD)/bench-bed-exits.log || tail -30 $(BUILD)/bench-bed-exits.log

# clang-tidy and cppcheck with the checked-in configuration.
lint: all
	scripts/lint.sh $(BUILD)

# Every libFuzzer target for about 30 s (clang, -Dfuzz=true in build-fuzz).
fuzz-smoke:
	@scripts/deps.sh fuzz
	scripts/fuzz-smoke.sh $(FUZZ_SECONDS)

format:
	clang-format -i $$(git ls-files '*.c' '*.h' | grep -v '^guest/.*\.S$$')

clean:
	rm -rf $(BUILD) $(BUILD_ASAN) build-fuzz

# The aarch64 cross build (Debian gcc-aarch64-linux-gnu; the sysroot with
# the arm64 libraries and the meson cross file: scripts/arm64-cross.sh):
# the library with the KVM/arm64 backend, the arm64 guest SDK and test
# guests, and the library's arm64 test program (arm64-test).
BUILD_ARM64 ?= build-arm64
cross-arm64: $(BUILD_ARM64)/build.ninja
	ninja -C $(BUILD_ARM64)

$(BUILD_ARM64)/build.ninja:
	@scripts/deps.sh cross-arm64
	meson setup --cross-file "$$(scripts/arm64-cross.sh $(BUILD_ARM64)-sysroot)" $(BUILD_ARM64) \
	  $(MESON_OPTS)

# The arm64 bed alone (tests/bed-arm64): the cross build, then the KVM/arm64
# backend's tests in an arm64 L1 under QEMU TCG with a real KVM/arm64.
test-bed-arm64: cross-arm64
	@scripts/deps.sh bed-arm64
	python3 tests/bed-arm64/bed_arm64.py $(BUILD_ARM64)

# The arm64 suite (issue 14's name for it): on an x86 host the arm64 bed
# above (every scenario: the guest tests through the library, sandbox, the
# demo, Linux boots); make test runs the same as bed-arm64.
test-arm64: test-bed-arm64
