#!/bin/sh
# The ACPI tables through ACPICA's own disassembler (iasl -d, Debian's
# acpica-tools): no errors or warnings, every table recompiles to the same
# bytes, and the disassembly shows what the config put in.
# usage: acpi_iasl.sh ACPI_DUMP_BINARY
set -u
dump=$1
if ! command -v iasl >/dev/null 2>&1; then
	echo "SKIP: iasl is not installed (apt-get install acpica-tools)"
	exit 77
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

"$dump" "$dir" || { echo "FAIL: $dump exited with $?"; exit 1; }
. "$dir/expect.sh"
cd "$dir" || exit 1
tables="XSDT FACP FACS DSDT APIC MCFG"

for t in $tables; do
	out=$(iasl -d "$t.dat" 2>&1) || fail "iasl -d $t.dat exited with $?"
	if echo "$out" | grep -Eiq 'error|warning'; then
		echo "$out"
		fail "iasl -d $t.dat complained"
	fi
	[ -s "$t.dsl" ] || fail "no $t.dsl"
done

# Recompile each disassembly: same bytes but for the checksum (offset 9)
# and the compiler id and revision (28-35), which iasl puts its own in.
mkdir rt
for t in $tables; do
	out=$(iasl -p "rt/$t" "$t.dsl" 2>&1) || fail "iasl $t.dsl exited with $?"
	if ! echo "$out" | grep -q '0 Errors, 0 Warnings'; then
		echo "$out"
		fail "iasl $t.dsl did not compile cleanly"
		continue
	fi
	if [ "$(wc -c <"rt/$t.aml")" != "$(wc -c <"$t.dat")" ]; then
		fail "$t recompiles to $(wc -c <"rt/$t.aml") bytes, not $(wc -c <"$t.dat")"
		continue
	fi
	diff=$(cmp -l "rt/$t.aml" "$t.dat" | awk '$1 != 10 && ($1 < 29 || $1 > 36)')
	[ -z "$diff" ] || fail "$t recompiles to other bytes (offset+1, octal): $diff"
done

# has FILE PATTERN...: every fixed-string pattern is in FILE
has() {
	f=$1
	shift
	for p in "$@"; do
		grep -Fq -- "$p" "$f" || fail "$f has no \"$p\""
	done
}
# count FILE PATTERN N: the pattern is on exactly N lines
count() {
	n=$(grep -Fc -- "$2" "$1")
	[ "$n" = "$3" ] || fail "$1 has \"$2\" $n times, not $3"
}

has DSDT.dsl 'Name (_S5, Package (0x04)' "0x$slp_typ, " \
	'Device (COM1)' 'EisaId ("PNP0501")' "0x$com1,             // Range Minimum" \
	"{$com1_irq}" 'Device (PCI0)' 'EisaId ("PNP0A08")' 'EisaId ("PNP0A03")' \
	'WordBusNumber (ResourceProducer' 'Name (_SEG, Zero)' 'Name (_BBN, Zero)' \
	'0x0CF7,             // Range Maximum' '0x0D00,             // Range Minimum' \
	"0x$mmio,         // Range Minimum" "0x$mmio_last,         // Range Maximum" \
	'EisaId ("PNP0C02")' "0x$ecam32,         // Address Base"
# the PCI0 _PRT: 31 slots x 4 pins straight to GSIs 16-23
has DSDT.dsl 'Name (_PRT, Package (0x7C)' '0x0001FFFF,' '0x001FFFFF,'
count DSDT.dsl 'Package (0x04)' 125 # \_S5 and the 124 _PRT entries
# the power button is a control-method device, notified by GPE 0's edge method
count DSDT.dsl 'PNP0C0C' 1
has DSDT.dsl 'Device (PWRB)' 'Scope (_GPE)' 'Method (_E00, 0, NotSerialized)' \
	'Notify (\_SB.PWRB, 0x80)'
count DSDT.dsl 'Notify (' 2
# the VM generation ID: the _CID Linux's vmgenid driver matches (ACPICA
# upper-cases it), ADDR's package of two halves, GPE 1 notifies it
has DSDT.dsl 'Device (VGEN)' 'Name (_HID, "SPKL0001")' 'Name (_CID, "VM_Gen_Counter")' \
	'Method (ADDR, 0, NotSerialized)' 'Return (Package (0x02)' "0x$vmgenid," \
	'Method (_E01, 0, NotSerialized)' 'Notify (\_SB.VGEN, 0x80)'

count APIC.dsl '[Processor Local APIC]' 2
has APIC.dsl "Local Apic Address : $lapic" 'Local Apic ID : 00' 'Local Apic ID : 01' \
	'[I/O APIC]' "I/O Apic ID : $ioapic_id" "Address : $ioapic" 'PC-AT Compatibility : 1'
count APIC.dsl '[Interrupt Source Override]' 2
count APIC.dsl 'Processor Enabled : 1' 2
has APIC.dsl 'Source : 00' 'Interrupt : 00000002' "Source : $sci" "Interrupt : $sci32" \
	'Flags (decoded below) : 000D'

has FACP.dsl 'Revision : 06' 'Table Length : 00000114' "SCI Interrupt : $sci16" \
	'SMI Command Port : 00000000' "PM1A Event Block Address : $pm1a_evt" \
	"PM1A Control Block Address : $pm1a_cnt" 'PM1 Event Block Length : 04' \
	'PM1 Control Block Length : 02' 'PM Timer Block Length : 00' \
	"Address : $reset" "Value to cause reset : $reset_value" \
	'Reset Register Supported (V2) : 1' 'Control Method Power Button (V1) : 1' \
	'Control Method Sleep Button (V1) : 1' '8042 Present on ports 60/64 (V2) : 1' \
	'VGA Not Present (V4) : 1' 'CMOS RTC Not Present (V5) : 0' 'Hardware Reduced (V5) : 0'
count FACP.dsl "Address : 0000000000$(echo "$pm1a_evt" | cut -c3-)" 1
count FACP.dsl "Address : 0000000000$(echo "$pm1a_cnt" | cut -c3-)" 1
# the GPE0 block, 4 bytes (status, enable), in the legacy field and the GAS
has FACP.dsl "GPE0 Block Address : $gpe0" 'GPE0 Block Length : 04' \
	'GPE1 Block Address : 00000000' 'GPE1 Block Length : 00' 'GPE0 Block : [Generic Address Structure]'
count FACP.dsl "Address : $gpe0_64" 1
sed -n '/GPE0 Block : \[Generic Address Structure\]/,/Address :/p' FACP.dsl >gpe0.gas
has gpe0.gas 'Space ID : 01 [SystemIO]' 'Bit Width : 20' 'Encoded Access Width : 01 [Byte Access:8]' \
	"Address : $gpe0_64"

has MCFG.dsl "Base Address : $ecam" 'Start Bus Number : 00' 'End Bus Number : 00'
has FACS.dsl 'Signature : "FACS"' 'Length : 00000040' 'Version : 02'
count XSDT.dsl 'ACPI Table Address' 3

if [ "$fails" -ne 0 ]; then
	echo "FAIL: $fails check(s)"
	exit 1
fi
echo "PASS: iasl $(iasl -v 2>/dev/null | grep -o 'version [0-9]*') disassembles and recompiles all $(echo $tables | wc -w) tables cleanly"
