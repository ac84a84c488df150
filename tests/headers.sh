#!/bin/sh
# Every public header compiles alone (it includes what it needs) as C99,
# C11 (-pedantic) and C++11/C++17, with the strict warnings an embedder
# may use. usage: headers.sh SOURCE_ROOT [CC] [CXX]
set -u
root=$1 cc=${2:-cc} cxx=${3:-c++}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0 n=0
command -v "$cxx" >/dev/null 2>&1 || { echo "SKIP: no C++ compiler ($cxx)"; exit 77; }
for h in "$root"/include/sparkler/*.h; do
	name=$(basename "$h")
	# a declaration too: platform.h alone is only macros
	printf '#include <sparkler/%s>\nint spk_header_test_%s;\n' "$name" \
		"$(echo "$name" | tr -c 'a-z0-9\n' _)" >"$tmp/t.c"
	cp "$tmp/t.c" "$tmp/t.cc"
	for std in "-std=c99" "-std=c11 -pedantic"; do
		n=$((n + 1))
		# shellcheck disable=SC2086
		if ! "$cc" $std -Wall -Wextra -Werror -Wstrict-prototypes -I"$root/include" \
			-fsyntax-only "$tmp/t.c" 2>"$tmp/err"; then
			echo "FAIL: $name as C ($std):"; cat "$tmp/err"; fail=1
		fi
	done
	for std in -std=c++11 -std=c++17; do
		n=$((n + 1))
		if ! "$cxx" $std -Wall -Wextra -Werror -I"$root/include" -fsyntax-only \
			"$tmp/t.cc" 2>"$tmp/err"; then
			echo "FAIL: $name as C++ ($std):"; cat "$tmp/err"; fail=1
		fi
	done
done
# sparkler.h has them all
for h in "$root"/include/sparkler/*.h; do
	name=$(basename "$h")
	[ "$name" = sparkler.h ] && continue
	grep -q "#include <sparkler/$name>" "$root/include/sparkler/sparkler.h" ||
		{ echo "FAIL: sparkler.h does not include $name"; fail=1; }
done
[ $fail = 0 ] && echo "PASS: $n compilations of $(ls "$root"/include/sparkler/*.h | wc -l) headers"
exit $fail
