#!/bin/sh
# The README's embedding example: it must be examples/embed.c word for
# word, build (meson did that), and print "hi" from the guest.
# usage: example.sh EMBED_BINARY SOURCE_ROOT
set -u
bin=$1 root=$2
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
# the block between the markers in README.md
sed -n '/<!-- embed.c begin -->/,/<!-- embed.c end -->/p' "$root/README.md" |
	sed '1,2d;$d' | sed '$d' >"$tmp"
if ! diff -u "$root/examples/embed.c" "$tmp"; then
	echo "FAIL: README.md's example differs from examples/embed.c"
	exit 1
fi
if [ ! -w /dev/kvm ]; then
	echo "SKIP: /dev/kvm is not usable here"
	exit 77
fi
out=$("$bin") || { echo "FAIL: the example exited with $?: $out"; exit 1; }
echo "$out"
echo "$out" | head -1 | grep -qx 'hi' || { echo "FAIL: no 'hi' from the guest"; exit 1; }
echo "$out" | grep -q '^guest stopped: HALT' || { echo "FAIL: no HALT"; exit 1; }
if [ -d /sys/module/kvm_pvm ]; then kind=pvm
elif grep -qw vmx /proc/cpuinfo; then kind=vmx
elif grep -qw svm /proc/cpuinfo; then kind=svm
else kind=unknown; fi
echo "PASS (KVM kind: $kind)"
