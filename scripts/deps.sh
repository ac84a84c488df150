#!/bin/sh
# Install what a make target needs from Debian, when it is missing.
# usage: scripts/deps.sh build|test|bench|fuzz|cross-arm64|bed-arm64
set -eu
want="meson ninja-build gcc libc6-dev musl-dev pkg-config libcmocka-dev libseccomp-dev libmicrohttpd-dev libjansson-dev liburing-dev python3"
case "${1:-build}" in
build) ;;
test) want="$want device-tree-compiler g++ clang libclang-rt-14-dev gdb lz4 clang-tidy cppcheck acpica-tools curl e2fsprogs qemu-system-x86 flex bison bc libelf-dev gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-system-arm" ;;
bench) want="$want qemu-system-x86" ;;
fuzz) want="$want clang libclang-rt-14-dev" ;;
cross-arm64) want="$want gcc-aarch64-linux-gnu libc6-dev-arm64-cross" ;;
bed-arm64) want="$want gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-system-arm" ;;
*) echo "deps.sh: unknown target '$1'" >&2; exit 2 ;;
esac

missing=""
for p in $want; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed'; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
	echo "sparkler: these Debian packages are missing:$missing" >&2
	echo "sparkler: install them (sudo apt-get install -y --no-install-recommends$missing) or run as root" >&2
	exit 1
fi
echo "sparkler: installing$missing"
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y --no-install-recommends $missing >/tmp/sparkler-apt.log 2>&1; then
	apt-get update >>/tmp/sparkler-apt.log 2>&1 || true
	apt-get install -y --no-install-recommends $missing >>/tmp/sparkler-apt.log 2>&1 || {
		echo "sparkler: apt-get install failed; see /tmp/sparkler-apt.log" >&2
		tail -5 /tmp/sparkler-apt.log >&2
		exit 1
	}
fi
