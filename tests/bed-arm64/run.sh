#!/bin/sh
# meson test bed-arm64: the aarch64 cross build (scripts/arm64-cross.sh,
# into BUILD/arm64, configured once) and the arm64 bed (bed_arm64.py) on
# it. Skips (77) without Debian's gcc-aarch64-linux-gnu or qemu-system-arm.
# usage: tests/bed-arm64/run.sh SOURCE_DIR BUILD_DIR
set -eu
src=$1
build=$2
for t in aarch64-linux-gnu-gcc qemu-system-aarch64; do
	if ! command -v $t >/dev/null 2>&1; then
		echo "SKIP: no $t (scripts/deps.sh bed-arm64)"
		exit 77
	fi
done
cross=$("$src/scripts/arm64-cross.sh" "$build/arm64-sysroot")
if [ ! -f "$build/arm64/build.ninja" ]; then
	meson setup --cross-file "$cross" "$build/arm64" "$src" >"$build/arm64-setup.log" 2>&1 || {
		tail -20 "$build/arm64-setup.log"
		exit 1
	}
fi
ninja -C "$build/arm64"
exec python3 "$src/tests/bed-arm64/bed_arm64.py" "$build/arm64"
