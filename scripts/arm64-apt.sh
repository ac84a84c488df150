#!/bin/sh
# Download Debian arm64 packages (bookworm, and bookworm-backports for the
# 6.12 kernel) without touching this machine's apt or dpkg configuration:
# a private apt state under CACHE/apt (lists refreshed once a day), the
# .debs into DEST. The archive's keyring is the system's.
# usage: scripts/arm64-apt.sh CACHE download DEST PKG...
#        scripts/arm64-apt.sh CACHE depends PKG   (the versioned package a
#                        metapackage of bookworm-backports depends on)
set -eu
[ $# -ge 3 ] || { echo "usage: $0 CACHE download DEST PKG... | CACHE depends PKG" >&2; exit 2; }
cache=$(realpath -m "$1")
cmd=$2
shift 2
apt="$cache/apt"
mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/etc/preferences.d"
mirror=${SPARKLER_DEBIAN_MIRROR:-http://deb.debian.org/debian}
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
cat >"$apt/etc/sources.list" <<EOS
deb [arch=arm64 signed-by=$keyring] $mirror bookworm main
deb [arch=arm64 signed-by=$keyring] $mirror bookworm-backports main
EOS
: >"$apt/etc/preferences"
aptx() {
	tool=$1
	shift
	"$tool" -o Dir::State="$apt" -o Dir::State::Lists="$apt/lists" \
		-o Dir::State::status=/dev/null -o Dir::Cache="$apt/cache" \
		-o Dir::Etc::SourceList="$apt/etc/sources.list" -o Dir::Etc::SourceParts=/nonexistent \
		-o Dir::Etc::Preferences="$apt/etc/preferences" \
		-o Dir::Etc::PreferencesParts="$apt/etc/preferences.d" \
		-o APT::Architecture=arm64 -o APT::Architectures=arm64 \
		-o APT::Sandbox::User=root "$@"
}
if [ -z "$(find "$apt/lists" -maxdepth 1 -name '*Packages*' -mmin -1440 2>/dev/null | head -1)" ]; then
	aptx apt-get update >"$apt/update.log" 2>&1 || { tail -5 "$apt/update.log" >&2; exit 1; }
fi
case "$cmd" in
download)
	dest=$1
	shift
	mkdir -p "$dest"
	cd "$dest"
	aptx apt-get download "$@" >"$apt/download.log" 2>&1 || {
		tail -5 "$apt/download.log" >&2
		exit 1
	}
	;;
depends)
	aptx apt-cache depends -t bookworm-backports "$1" | awk '/Depends:/ { print $2; exit }'
	;;
*) echo "arm64-apt.sh: unknown command '$cmd'" >&2; exit 2 ;;
esac
