#!/bin/sh
# Static analysis: clang-tidy (.clang-tidy) and cppcheck over src/.
# usage: scripts/lint.sh BUILD_DIR   (needs BUILD_DIR/compile_commands.json)
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
# src/kvm-arm64 and src/vmm/cmd_arm64.c are built only by the aarch64 cross
# build (make cross-arm64): this build's compile_commands.json has no entry
# for them, so they are left out.
files=$(cd "$root" && { git ls-files 'src/*.c' 2>/dev/null || find src -name '*.c'; } |
	grep -v -e '^src/kvm-arm64/' -e '^src/vmm/cmd_arm64\.c$')
rc=0
if command -v clang-tidy >/dev/null; then
	jobs=$(nproc 2>/dev/null || echo 2)
	t0=$(date +%s)
	out=$(cd "$root" && printf '%s\n' $files |
		xargs -P "$jobs" -n 4 clang-tidy -p "$build" --quiet 2>&1 | grep -E '(warning|error):' |
		sort -u)
	if [ -n "$out" ]; then
		echo "$out"
		rc=1
	else
		echo "clang-tidy: clean ($(echo $files | wc -w) files, $(($(date +%s) - t0)) s)"
	fi
else
	echo "clang-tidy: not installed (Debian clang-tidy)" && rc=77
fi
if command -v cppcheck >/dev/null; then
	out=$(cd "$root" && cppcheck --enable=warning,performance,portability --inline-suppr \
		--error-exitcode=1 -q --std=c11 -Iinclude -Isrc -D_GNU_SOURCE $files 2>&1)
	if [ $? -ne 0 ] || [ -n "$out" ]; then
		echo "$out"
		rc=1
	else
		echo "cppcheck: clean"
	fi
fi
exit $rc
