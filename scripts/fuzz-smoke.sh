#!/bin/sh
# Build every libFuzzer target with clang and run each for a fixed time on a
# copy of its seed corpus (fuzz/corpus/<name>/), then replay the saved
# crash inputs (fuzz/regressions/<name>/). Prints one line per target and
# fails if any target crashed.
# usage: scripts/fuzz-smoke.sh [SECONDS_PER_TARGET]
set -u
secs=${1:-30}
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_FUZZ:-$root/build-fuzz}
if [ ! -f "$build/build.ninja" ]; then
	CC=clang meson setup "$build" -Dfuzz=true >/dev/null || exit 1
fi
# only the fuzz targets: guests and tests are built by the other builds
targets=$(ninja -C "$build" -t targets all 2>/dev/null | sed -n 's|^\(fuzz/fuzz_[a-z_]*\): .*|\1|p' | sort -u)
ninja -C "$build" $targets >/dev/null || exit 1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=0
# one JSON line per target, in Meson's test-log form, for scripts/summary.sh
mkdir -p "$build/meson-logs"
log="$build/meson-logs/testlog.json"
: >"$log"
result() {
	printf '{"name": "fuzz-%s", "result": "%s"}\n' "$1" "$2" >>"$log"
}
for bin in "$build"/fuzz/fuzz_*; do
	[ -x "$bin" ] && [ -f "$bin" ] || continue
	name=${bin##*/fuzz_}
	mkdir -p "$work/$name"
	[ -d "$root/fuzz/corpus/$name" ] && cp -r "$root/fuzz/corpus/$name/." "$work/$name/"
	if [ -d "$root/fuzz/regressions/$name" ] &&
		! "$bin" "$root"/fuzz/regressions/"$name"/* >"$work/$name.regr" 2>&1; then
		echo "fuzz $name: a saved crash input fails again"
		tail -20 "$work/$name.regr"
		failed=1
		result "$name" FAIL
		continue
	fi
	if "$bin" -max_total_time="$secs" -artifact_prefix="$work/$name-" "$work/$name" \
		>"$work/$name.log" 2>&1; then
		runs=$(grep -o 'Done [0-9]* runs' "$work/$name.log" | tail -1)
		echo "fuzz $name: ok ($runs in ${secs}s)"
		result "$name" OK
	else
		echo "fuzz $name: CRASH"
		grep -E 'ERROR|SUMMARY|Test unit written' "$work/$name.log" | head -5
		for a in "$work/$name"-*; do
			[ -f "$a" ] && cp "$a" "$root/" && echo "  input saved as ${a##*/}"
		done
		failed=1
		result "$name" FAIL
	fi
done
exit $failed
