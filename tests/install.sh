#!/bin/sh
# The installed SDK alone (issue 13): `meson install` into a temporary
# prefix, then examples/sdk_host.c and examples/sdk_guest.c build from the
# installed headers, libraries and .pc files only (no -I into the source
# tree), against the shared library and the static one, and run under KVM.
# usage: install.sh BUILD_DIR SOURCE_ROOT
set -u
build=$1 root=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

meson install -C "$build" --no-rebuild --quiet --destdir "$tmp/stage" >"$tmp/log" 2>&1 ||
	{ cat "$tmp/log"; fail "meson install"; }
prefix=$(meson introspect "$build" --buildoptions |
	python3 -c 'import json,sys; print([o["value"] for o in json.load(sys.stdin) if o["name"]=="prefix"][0])')
stage=$tmp/stage$prefix
# the .pc files name the real prefix: point them at the staged one
pcdir=$(dirname "$(find "$stage" -name sparkler.pc | head -1)")
[ -f "$pcdir/sparkler.pc" ] || fail "no sparkler.pc installed"
[ -f "$pcdir/sparkler-guest.pc" ] || fail "no sparkler-guest.pc installed"
for pc in "$pcdir"/sparkler.pc "$pcdir"/sparkler-guest.pc; do
	sed -i "s|^prefix=.*|prefix=$stage|" "$pc"
done
export PKG_CONFIG_PATH=$pcdir
libdir=$(pkg-config --variable=libdir sparkler)
for f in "$stage/include/sparkler/sparkler.h" "$stage/include/sparkler/vm.h" \
	"$stage/include/sparkler-guest/guest.h" "$libdir/libsparkler.a"; do
	[ -f "$f" ] || fail "$f is not installed"
done
soname=$(objdump -p "$libdir/libsparkler.so" | awk '/SONAME/ {print $2}')
echo "shared library: $(readlink "$libdir/libsparkler.so") (SONAME $soname)"
[ "$soname" = libsparkler.so.0 ] || fail "SONAME '$soname'"

cd "$tmp" || exit 1
cp "$root/examples/sdk_host.c" "$root/examples/sdk_guest.c" .
# the commands of the README, word for word
gcc -o sdk_guest.elf sdk_guest.c $(pkg-config --cflags --libs sparkler-guest) ||
	fail "the guest does not build from the installed SDK"
cc -o sdk_host sdk_host.c $(pkg-config --cflags --libs sparkler) ||
	fail "the host program does not build against the shared library"
cc -static-libgcc -o sdk_host_static sdk_host.c \
	$(pkg-config --cflags sparkler) "$libdir/libsparkler.a" $(pkg-config --libs --static sparkler | sed 's/-lsparkler//') ||
	fail "the host program does not build against the static library"
objdump -p sdk_host | grep -q 'NEEDED.*libsparkler.so.0' || fail "sdk_host does not use libsparkler.so.0"
if [ ! -w /dev/kvm ]; then
	echo "SKIP: built; /dev/kvm is not usable here"
	exit 77
fi
for bin in sdk_host sdk_host_static; do
	out=$(LD_LIBRARY_PATH=$libdir ./$bin ./sdk_guest.elf 2>&1) || fail "$bin: $out"
	echo "$out"
	echo "$out" | grep -q '^hello from the guest on vCPU 0' || fail "$bin: no hello"
	echo "$out" | grep -q '^hello from CPL3, x = 21' || fail "$bin: no CPL3 hello"
	echo "$out" | grep -q '^guest returned 42' || fail "$bin: no result"
done
if [ -d /sys/module/kvm_pvm ]; then kind=pvm
elif grep -qw vmx /proc/cpuinfo; then kind=vmx
elif grep -qw svm /proc/cpuinfo; then kind=svm
else kind=unknown; fi
echo "PASS (KVM kind: $kind)"
