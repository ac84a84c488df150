/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A clone's view of its VM generation ID: at start, find the ID's address
 * the way an OS does, through the ACPI tables (RSDP at the platform's
 * SPK_PC_ACPI_START, XSDT, FADT, DSDT, then the value the \_SB.VGEN
 * device's ADDR method returns); then count as t_snap_count does, and
 * report at each step the count, the 16 ID bytes read at that address and
 * the address (ucall SYNC: stage 1, count, low and high 8 bytes, address;
 * address 0: the tables have no VMGENID). tests/guest/snapshot_tests.c
 * clones it.
 */
#include <guest.h>

#define ACPI_RSDP 0xe0000ull /* SPK_PC_ACPI_START */

static volatile uint64_t count;
static volatile uint8_t scribble[64 << 10];

static uint64_t rd(uint64_t a, unsigned n)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)mmio_read8(a + i) << (8 * i);
	return v;
}

static bool sig(uint64_t a, const char *s)
{
	for (unsigned i = 0; s[i]; i++)
		if (mmio_read8(a + i) != (uint8_t)s[i])
			return false;
	return true;
}

/* An AML integer at *a (ZeroOp, OneOp, Byte/Word/DWord/QWordPrefix). */
static bool aml_int(uint64_t *a, uint64_t *v)
{
	static const unsigned len[] = {[0x0a] = 1, [0x0b] = 2, [0x0c] = 4, [0x0e] = 8};
	uint8_t op = mmio_read8((*a)++);

	if (op <= 1) {
		*v = op;
		return true;
	}
	if (op < 0x0a || op > 0x0e || !len[op])
		return false;
	*v = rd(*a, len[op]);
	*a += len[op];
	return true;
}

/* Method (ADDR) { Return (Package (2) { low, high }) } in the DSDT, or 0. */
static uint64_t vmgenid_addr(void)
{
	uint64_t xsdt, fadt = 0, dsdt, end;

	if (!sig(ACPI_RSDP, "RSD PTR "))
		return 0;
	xsdt = rd(ACPI_RSDP + 24, 8);
	if (!sig(xsdt, "XSDT"))
		return 0;
	for (uint64_t e = xsdt + 36; e + 8 <= xsdt + rd(xsdt + 4, 4); e += 8)
		if (sig(rd(e, 8), "FACP"))
			fadt = rd(e, 8);
	if (!fadt)
		return 0;
	dsdt = rd(fadt + 140, 8);
	if (!sig(dsdt, "DSDT"))
		return 0;
	end = dsdt + rd(dsdt + 4, 4);
	for (uint64_t p = dsdt + 36; p + 12 < end; p++) {
		uint64_t lo, hi, q = p + 9;

		/* "ADDR", MethodFlags 0, ReturnOp, PackageOp, PkgLength, 2 elements */
		if (!sig(p, "ADDR") || mmio_read8(p + 4) != 0 || mmio_read8(p + 5) != 0xa4 ||
		    mmio_read8(p + 6) != 0x12 || mmio_read8(p + 8) != 2)
			continue;
		if (aml_int(&q, &lo) && aml_int(&q, &hi))
			return lo | hi << 32;
	}
	return 0;
}

int main(void)
{
	uint64_t id = vmgenid_addr();

	for (;;) {
		count++;
		scribble[(count * 4096) % sizeof(scribble)] = (uint8_t)count;
		guest_ucall(SPK_UCALL_SYNC, 1, count, id ? rd(id, 8) : 0, id ? rd(id + 8, 8) : 0,
		            id);
	}
	return 0;
}
