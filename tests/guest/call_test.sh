#!/bin/sh
# `sparkler call` (src/vmm/call.c) on the function guest t_fn_basic.elf:
# results by type, failures and their exit statuses.
# usage: call_test.sh SPARKLER GUEST_DIR
set -u
spk=$1 guest=$2/t_fn_basic.elf
if ! "$spk" kvm-info >/dev/null 2>&1; then
	echo "SKIP: KVM is not usable here"
	exit 77
fi
echo "KVM kind: $("$spk" kvm-info)"
fail=0
# expect STATUS OUTPUT ARGS...: the exit status and the stdout of `sparkler call ARGS`
expect() {
	want_rc=$1 want_out=$2
	shift 2
	out=$("$spk" call "$@" 2>/tmp/call_test.$$)
	rc=$?
	if [ "$rc" != "$want_rc" ] || [ "$out" != "$want_out" ]; then
		echo "FAIL: call $*: status $rc (want $want_rc), output '$out' (want '$want_out')"
		cat /tmp/call_test.$$
		fail=1
	else
		echo "ok: call $* -> $rc '$out' $(head -c 120 /tmp/call_test.$$)"
	fi
}
expect 0 42 "$guest" add 40 2
expect 0 -6 "$guest" scale 1.5 -4
expect 0 "abc+def" "$guest" join abc def
expect 0 636261 "$guest" reverse abc
expect 0 "" "$guest" set_secret x
expect 1 "" "$guest" fail -3
expect 1 "" --timeout 1 "$guest" spin
expect 1 "" --exits 5 "$guest" many_exits 100
expect 1 "" "$guest" null_write
expect 2 "" "$guest" add 1
expect 2 "" "$guest" add x 1
expect 2 "" "$guest" nope
expect 2 "" /nonexistent.elf add 1 2
expect 2 "" "$guest"
"$spk" call --list "$guest" | grep -qx "add ii:i" || { echo "FAIL: --list lacks 'add ii:i'"; fail=1; }
"$spk" call --stats "$guest" add 1 2 2>&1 >/dev/null | grep -q "^exits 1," ||
	{ echo "FAIL: --stats"; fail=1; }
rm -f /tmp/call_test.$$
exit $fail
