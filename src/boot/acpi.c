/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ACPI tables for the sparkler PC: RSDP, XSDT, FADT, FACS, DSDT, MADT and,
 * with PCI, MCFG, one after another from base (ACPI 6.3 layouts).
 *
 * Everything is sized first (the DSDT's AML is built into a scratch buffer
 * for that) and checked against the buffer before the first byte is
 * written: a refused build leaves the buffer as it was, and nothing is ever
 * written past size.
 *
 * The power button is a control-method one, as on QEMU's microvm and
 * cloud-hypervisor but through a GPE block of the full (not hardware-
 * reduced) FADT: the FADT sets PWR_BUTTON ("no fixed power button") and
 * has a GPE0 block; the DSDT has \_SB.PWRB (PNP0C0C) and \_GPE._E00,
 * which notifies it (0x80, "pressed"). The PM device sets GPE0_STS bit 0
 * on a press and raises the SCI while GPE 0 is enabled (devices.h); the
 * status is set once per press, so the GPE is edge-triggered (_E00: ACPICA
 * clears the status before it runs the method).
 *
 * With a VM generation ID (vmgenid_addr), the DSDT has \_SB.VGEN, the
 * device Linux's vmgenid driver and Windows look for, and \_GPE._E01 (the
 * GPE the config names) notifies it: the monitor writes a new ID at the
 * address its ADDR method returns and sets that GPE's status (a restore,
 * a clone), and the guest reseeds its RNG.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <sparkler/acpi.h>
#include <sparkler/pci.h>
#include "core/internal.h"

#define OEM_ID           "SPRKLR"
#define OEM_TABLE_ID     "SPARKLER"
#define OEM_REVISION     1
#define CREATOR_ID       "SPKL"
#define CREATOR_REVISION 1
#define HYPERVISOR_ID    "SPARKLER"

#define MAX_CPUS 255 /* xAPIC ids 0-254; more would need x2APIC entries */

/* ---- table sizes and revisions ---- */
#define HDR_LEN       36
#define RSDP_LEN      36
#define RSDP_V1_LEN   20 /* what the first checksum covers */
#define FADT_LEN      276
#define FACS_LEN      64
#define MADT_FIXED    (HDR_LEN + 8)
#define MADT_LAPIC    8
#define MADT_IOAPIC   12
#define MADT_ISO      10
#define MADT_NISO     2 /* IRQ0 -> GSI2, and the SCI */
#define MCFG_LEN      (HDR_LEN + 8 + 16)
#define TABLE_ALIGN   8
#define FACS_ALIGN    64
#define RSDP_ALIGN    16
#define ECAM_BUS_SIZE 0x100000ull /* 32 devices x 8 functions x 4 KiB */

#define XSDT_REV     1
#define FADT_REV     6
#define FADT_MINOR   3
#define FACS_VERSION 2
#define DSDT_REV     2 /* 2+: AML integers are 64 bits (QWordMemory) */
#define MADT_REV     5
#define MCFG_REV     1

/* ---- FADT field offsets (ACPI 6.3 section 5.2.9) ---- */
enum {
	FADT_FIRMWARE_CTRL = 36,
	FADT_CENTURY = 108,
	FADT_DSDT = 40,
	FADT_SCI_INT = 46,
	FADT_SMI_CMD = 48,
	FADT_PM1A_EVT_BLK = 56,
	FADT_PM1A_CNT_BLK = 64,
	FADT_GPE0_BLK = 80,
	FADT_PM1_EVT_LEN = 88,
	FADT_PM1_CNT_LEN = 89,
	FADT_GPE0_BLK_LEN = 92,
	FADT_P_LVL2_LAT = 96,
	FADT_P_LVL3_LAT = 98,
	FADT_IAPC_BOOT_ARCH = 109,
	FADT_FLAGS = 112,
	FADT_RESET_REG = 116,
	FADT_RESET_VALUE = 128,
	FADT_MINOR_VERSION = 131,
	FADT_X_FIRMWARE_CTRL = 132,
	FADT_X_DSDT = 140,
	FADT_X_PM1A_EVT_BLK = 148,
	FADT_X_PM1A_CNT_BLK = 172,
	FADT_X_GPE0_BLK = 220,
	FADT_HYPERVISOR_ID = 268,
};

#define PM1_EVT_LEN   4 /* status (2) + enable (2) */
#define PM1_CNT_LEN   2
#define GPE0_BLK_LEN  4      /* status (2) + enable (2): GPEs 0-15 */
#define NO_CSTATE_LAT 0x0fff /* > 100 / > 1000 us: no C2 / C3 */

/* FADT flags */
#define FADT_F_WBINVD        (1u << 0)
#define FADT_F_PROC_C1       (1u << 2) /* HLT works on every vCPU */
#define FADT_F_PWR_BUTTON    (1u << 4) /* the power button is a control-method device */
#define FADT_F_SLP_BUTTON    (1u << 5) /* no fixed sleep button */
#define FADT_F_RESET_REG_SUP (1u << 10)
/* IAPC_BOOT_ARCH */
#define BOOT_ARCH_8042   (1u << 1)
#define BOOT_ARCH_NO_VGA (1u << 2)

/* Generic address structure */
#define GAS_SYSTEM_IO   1
#define GAS_ACCESS_BYTE 1
#define GAS_ACCESS_WORD 2

/* MADT */
#define MADT_PCAT_COMPAT   1u
#define MADT_TYPE_LAPIC    0
#define MADT_TYPE_IOAPIC   1
#define MADT_TYPE_ISO      2
#define MADT_LAPIC_ENABLED 1u
#define ISO_CONFORMING     0x0000
#define ISO_LEVEL_HIGH     0x000d /* polarity 01 active high, trigger 11 level */
#define TIMER_GSI          2

/* ---- little-endian stores ---- */

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)v);
	put16(p + 2, (uint16_t)(v >> 16));
}

static void put64(uint8_t *p, uint64_t v)
{
	for (unsigned i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* The byte that makes the n bytes at p sum to 0 (its own slot still 0). */
static uint8_t checksum(const uint8_t *p, size_t n)
{
	uint8_t sum = 0;

	for (size_t i = 0; i < n; i++)
		sum = (uint8_t)(sum + p[i]);
	return (uint8_t)(0x100 - sum);
}

/* ---- AML ---- */

#define AML_MAX   4096 /* the DSDT body has no per-CPU part: the _PRT is most of it */
#define AML_DEPTH 6    /* DSDT -> Scope -> Device -> Package -> Package */

enum {
	AML_ZERO = 0x00,
	AML_ONE = 0x01,
	AML_NAME = 0x08,
	AML_STRING_PREFIX = 0x0d,
	AML_BYTE_PREFIX = 0x0a,
	AML_WORD_PREFIX = 0x0b,
	AML_DWORD_PREFIX = 0x0c,
	AML_QWORD_PREFIX = 0x0e,
	AML_SCOPE = 0x10,
	AML_BUFFER = 0x11,
	AML_PACKAGE = 0x12,
	AML_METHOD = 0x14,
	AML_DUAL_NAME_PREFIX = 0x2e,
	AML_MULTI_NAME_PREFIX = 0x2f,
	AML_EXT_PREFIX = 0x5b,
	AML_EXT_DEVICE = 0x82,
	AML_NOTIFY = 0x86,
	AML_RETURN = 0xa4,
	AML_ROOT_CHAR = '\\',
};

#define AML_MAX_SEGS 8 /* NameSegs in one NameString we emit */

/*
 * A byte sink for AML and resource templates. Once something does not fit,
 * overflow stays set and later writes are dropped; the caller checks it
 * once at the end instead of after every byte.
 */
struct aml {
	uint8_t *b;
	size_t cap, len;
	size_t open[AML_DEPTH]; /* where each open PkgLength's contents start */
	unsigned depth;
	bool overflow;
};

static void aml_init(struct aml *a, uint8_t *storage, size_t cap)
{
	memset(a, 0, sizeof(*a));
	a->b = storage;
	a->cap = cap;
}

static void aml_put(struct aml *a, const void *p, size_t n)
{
	if (a->overflow || n > a->cap - a->len) {
		a->overflow = true;
		return;
	}
	memcpy(a->b + a->len, p, n);
	a->len += n;
}

static void aml_u8(struct aml *a, uint8_t v)
{
	aml_put(a, &v, 1);
}

static void aml_le(struct aml *a, uint64_t v, size_t n)
{
	uint8_t le[8];

	put64(le, v);
	aml_put(a, le, n);
}

/* Start a PkgLength-prefixed body; aml_close() inserts the length. */
static void aml_open(struct aml *a)
{
	if (a->depth == AML_DEPTH) {
		a->overflow = true;
		return;
	}
	a->open[a->depth++] = a->len;
}

/* Bytes a PkgLength needs for a body of n bytes (it counts itself), or 0. */
static size_t pkglen_size(size_t n)
{
	static const size_t max[] = {0x3f, 0xfff, 0xfffff, 0xfffffff};

	for (size_t k = 1; k <= SPK_ARRAY_SIZE(max); k++)
		if (n + k <= max[k - 1])
			return k;
	return 0;
}

/*
 * Shift the body right and put its PkgLength in front, in the shortest
 * encoding: one byte up to 63, else a lead byte holding the count of
 * following bytes (bits 7-6) and the low nibble, then 8 bits per byte.
 */
static void aml_close(struct aml *a)
{
	size_t start, n, k, v;
	uint8_t *p;

	if (a->depth == 0 || a->overflow) {
		a->overflow = true;
		return;
	}
	start = a->open[--a->depth];
	n = a->len - start;
	k = pkglen_size(n);
	if (k == 0 || k > a->cap - a->len) {
		a->overflow = true;
		return;
	}
	p = a->b + start;
	memmove(p + k, p, n);
	v = n + k;
	if (k == 1) {
		p[0] = (uint8_t)v;
	} else {
		p[0] = (uint8_t)(((k - 1) << 6) | (v & 0x0f));
		for (size_t i = 1; i < k; i++)
			p[i] = (uint8_t)(v >> (4 + 8 * (i - 1)));
	}
	a->len += k;
}

/*
 * "COM1", "_S5", "\\_SB.PWRB": an optional root prefix, then NameSegs
 * separated by dots, each padded to 4 with '_'. Two segments take a
 * DualNamePrefix, more a MultiNamePrefix and their count. A segment
 * longer than 4 characters, an empty one or too many of them is a bug in
 * this file: it sets overflow, so the build fails.
 */
static void aml_namestring(struct aml *a, const char *name)
{
	char segs[AML_MAX_SEGS][4];
	size_t n = 0, len = 0;

	if (*name == AML_ROOT_CHAR)
		aml_u8(a, (uint8_t)*name++);
	for (const char *c = name;; c++) {
		if (*c == '.' || *c == '\0') {
			if (len == 0 || n == AML_MAX_SEGS) {
				a->overflow = true;
				return;
			}
			memset(segs[n] + len, '_', 4 - len);
			n++;
			len = 0;
			if (*c == '\0')
				break;
		} else if (len == 4 || n == AML_MAX_SEGS) {
			a->overflow = true;
			return;
		} else {
			segs[n][len++] = *c;
		}
	}
	if (n == 2) {
		aml_u8(a, AML_DUAL_NAME_PREFIX);
	} else if (n > 2) {
		aml_u8(a, AML_MULTI_NAME_PREFIX);
		aml_u8(a, (uint8_t)n);
	}
	aml_put(a, segs, 4 * n);
}

/* An integer in its shortest encoding, as iasl emits it. */
static void aml_int(struct aml *a, uint64_t v)
{
	if (v == 0) {
		aml_u8(a, AML_ZERO);
	} else if (v == 1) {
		aml_u8(a, AML_ONE);
	} else if (v <= UINT8_MAX) {
		aml_u8(a, AML_BYTE_PREFIX);
		aml_le(a, v, 1);
	} else if (v <= UINT16_MAX) {
		aml_u8(a, AML_WORD_PREFIX);
		aml_le(a, v, 2);
	} else if (v <= UINT32_MAX) {
		aml_u8(a, AML_DWORD_PREFIX);
		aml_le(a, v, 4);
	} else {
		aml_u8(a, AML_QWORD_PREFIX);
		aml_le(a, v, 8);
	}
}

static unsigned hex_digit(char c)
{
	return c <= '9' ? (unsigned)(c - '0') : (unsigned)(c - 'A' + 10);
}

/*
 * EISAID("PNP0501"): three letters of 5 bits ('A' = 1) and four hex
 * digits, big-endian in the 32 bits, stored as a little-endian integer.
 */
static uint32_t eisaid(const char id[7])
{
	uint32_t be = (uint32_t)((id[0] - '@') & 0x1f) << 26 |
	              (uint32_t)((id[1] - '@') & 0x1f) << 21 |
	              (uint32_t)((id[2] - '@') & 0x1f) << 16;

	for (unsigned i = 0; i < 4; i++)
		be |= hex_digit(id[3 + i]) << (12 - 4 * i);
	return __builtin_bswap32(be);
}

static void aml_name_int(struct aml *a, const char *name, uint64_t v)
{
	aml_u8(a, AML_NAME);
	aml_namestring(a, name);
	aml_int(a, v);
}

static void aml_name_eisaid(struct aml *a, const char *name, const char *id)
{
	aml_name_int(a, name, eisaid(id));
}

/* Name(name, "text"): printable ASCII, NUL-terminated in the AML. */
static void aml_name_string(struct aml *a, const char *name, const char *text)
{
	aml_u8(a, AML_NAME);
	aml_namestring(a, name);
	aml_u8(a, AML_STRING_PREFIX);
	aml_put(a, text, strlen(text) + 1);
}

/* Name(name, Buffer(){bytes}): the bytes are a finished resource template. */
static void aml_name_buffer(struct aml *a, const char *name, const struct aml *bytes)
{
	aml_u8(a, AML_NAME);
	aml_namestring(a, name);
	aml_u8(a, AML_BUFFER);
	aml_open(a);
	aml_int(a, bytes->len);
	aml_put(a, bytes->b, bytes->len);
	aml_close(a);
	if (bytes->overflow)
		a->overflow = true;
}

/* Package(n) { ... }: the caller emits n elements, then aml_close(). */
static void aml_package(struct aml *a, uint8_t n)
{
	aml_u8(a, AML_PACKAGE);
	aml_open(a);
	aml_u8(a, n);
}

static void aml_scope(struct aml *a, const char *name)
{
	aml_u8(a, AML_SCOPE);
	aml_open(a);
	aml_namestring(a, name);
}

static void aml_device(struct aml *a, const char *name)
{
	aml_u8(a, AML_EXT_PREFIX);
	aml_u8(a, AML_EXT_DEVICE);
	aml_open(a);
	aml_namestring(a, name);
}

/* Method (name, 0, NotSerialized) { ... }: the caller emits the body, then aml_close(). */
static void aml_method0(struct aml *a, const char *name)
{
	aml_u8(a, AML_METHOD);
	aml_open(a);
	aml_namestring(a, name);
	aml_u8(a, 0); /* MethodFlags: ArgCount 0, NotSerialized, SyncLevel 0 */
}

/* Notify (object, value) */
static void aml_notify(struct aml *a, const char *object, uint8_t value)
{
	aml_u8(a, AML_NOTIFY);
	aml_namestring(a, object);
	aml_int(a, value);
}

/* ---- resource template descriptors (ACPI 6.3 section 6.4) ---- */

#define RES_TEMPLATE_MAX 128

enum {
	RES_IRQ_NOFLAGS = 0x22, /* small item IRQ, 2 bytes: edge, active high */
	RES_IO = 0x47,
	RES_END = 0x79,
	RES_MEM32_FIXED = 0x86,
	RES_DWORD_ADDR = 0x87,
	RES_WORD_ADDR = 0x88,
	RES_QWORD_ADDR = 0x8a,
};

enum { ADDR_MEMORY = 0, ADDR_IO = 1, ADDR_BUS = 2 };

#define ADDR_CONSUMER   (1u << 0)
#define ADDR_MIN_FIXED  (1u << 2)
#define ADDR_MAX_FIXED  (1u << 3)
#define ADDR_PRODUCER   (ADDR_MIN_FIXED | ADDR_MAX_FIXED) /* bridge window */
#define IO_ENTIRE_RANGE 3u                                /* _RNG: ISA and non-ISA ports */
#define MEM_READ_WRITE  1u                                /* non-cacheable, read-write */

/* IO(Decode16, port, port, align, len) */
static void res_io(struct aml *r, uint16_t port, uint8_t align, uint8_t len)
{
	aml_u8(r, RES_IO);
	aml_u8(r, 1); /* 16-bit decode */
	aml_le(r, port, 2);
	aml_le(r, port, 2);
	aml_u8(r, align);
	aml_u8(r, len);
}

static void res_irq_noflags(struct aml *r, unsigned irq)
{
	aml_u8(r, RES_IRQ_NOFLAGS);
	aml_le(r, 1u << irq, 2);
}

static void res_mem32_fixed(struct aml *r, uint32_t base, uint32_t len)
{
	aml_u8(r, RES_MEM32_FIXED);
	aml_le(r, 9, 2);
	aml_u8(r, MEM_READ_WRITE);
	aml_le(r, base, 4);
	aml_le(r, len, 4);
}

/*
 * Word/DWord/QWord address space descriptor for [min, max]: tag, length,
 * type, general flags, type flags, then granularity (0), min, max,
 * translation (0) and length, each `width` bytes.
 */
static void res_addr(struct aml *r, uint8_t tag, size_t width, uint8_t type, uint8_t flags,
                     uint8_t type_flags, uint64_t min, uint64_t max)
{
	aml_u8(r, tag);
	aml_le(r, 3 + 5 * width, 2);
	aml_u8(r, type);
	aml_u8(r, flags);
	aml_u8(r, type_flags);
	aml_le(r, 0, width);
	aml_le(r, min, width);
	aml_le(r, max, width);
	aml_le(r, 0, width);
	aml_le(r, max - min + 1, width);
}

/* A memory range: DWordMemory below 4 GiB, QWordMemory above. */
static void res_memory(struct aml *r, uint8_t flags, uint64_t start, uint64_t size)
{
	uint64_t last = start + size - 1;

	if (last <= UINT32_MAX)
		res_addr(r, RES_DWORD_ADDR, 4, ADDR_MEMORY, flags, MEM_READ_WRITE, start, last);
	else
		res_addr(r, RES_QWORD_ADDR, 8, ADDR_MEMORY, flags, MEM_READ_WRITE, start, last);
}

/* The checksum byte is 0, "treat as correct", which is what iasl emits. */
static void res_end(struct aml *r)
{
	aml_u8(r, RES_END);
	aml_u8(r, 0);
}

/* ---- the DSDT body ---- */

/* \_S5: SLP_TYPa, SLP_TYPb, two reserved. */
static void dsdt_s5(struct aml *a, const struct spk_acpi_config *cfg)
{
	aml_u8(a, AML_NAME);
	aml_namestring(a, "_S5");
	aml_u8(a, AML_PACKAGE);
	aml_open(a);
	aml_u8(a, 4);
	aml_int(a, cfg->s5_slp_typ);
	aml_int(a, cfg->s5_slp_typ);
	aml_int(a, 0);
	aml_int(a, 0);
	aml_close(a);
}

#define NOTIFY_PRESSED 0x80 /* a button's Notify code: pressed */

/* The control-method power button (ACPI 6.3 section 4.8.2.2.1.2). */
static void dsdt_pwrb(struct aml *a)
{
	aml_device(a, "PWRB");
	aml_name_eisaid(a, "_HID", "PNP0C0C");
	aml_name_int(a, "_UID", 0);
	aml_close(a);
}

/*
 * The VM generation ID (Microsoft's "Virtual Machine Generation ID" paper,
 * as QEMU and Firecracker build it): a device whose _CID is
 * "VM_Gen_Counter" (ACPICA upper-cases string ids: Linux's vmgenid driver
 * matches "VM_GEN_COUNTER"), with an ADDR method that returns the ID's
 * guest-physical address as a package of two 32-bit halves, low first.
 * The _HID is ours (an ACPI id: four characters and four hex digits; iasl
 * refuses "VMGENCTR").
 */
static void dsdt_vgen(struct aml *a, const struct spk_acpi_config *cfg)
{
	aml_device(a, "VGEN");
	aml_name_string(a, "_HID", "SPKL0001");
	aml_name_string(a, "_CID", "VM_Gen_Counter");
	aml_name_string(a, "_DDN", "VM_Gen_Counter");
	aml_method0(a, "ADDR");
	aml_u8(a, AML_RETURN);
	aml_package(a, 2);
	aml_int(a, cfg->vmgenid_addr & UINT32_MAX);
	aml_int(a, cfg->vmgenid_addr >> 32);
	aml_close(a); /* Package */
	aml_close(a); /* Method */
	aml_close(a); /* Device */
}

/* Method (_Exx, ...) { Notify (object, 0x80) }: GPE gpe's edge method. */
static void gpe_notify(struct aml *a, unsigned gpe, const char *object)
{
	char name[5];

	snprintf(name, sizeof(name), "_E%02X", gpe & 0xff);
	aml_method0(a, name);
	aml_notify(a, object, NOTIFY_PRESSED);
	aml_close(a);
}

/*
 * \_GPE._E00: GPE 0 (GPE0_STS bit 0, edge-triggered) notifies the button;
 * with a VMGENID, its GPE's method notifies \_SB.VGEN (0x80: "the ID
 * changed", what the Linux driver and Windows act on).
 */
static void dsdt_gpe(struct aml *a, const struct spk_acpi_config *cfg)
{
	aml_scope(a, "_GPE");
	gpe_notify(a, 0, "\\_SB.PWRB");
	if (cfg->vmgenid_addr)
		gpe_notify(a, cfg->vmgenid_gpe, "\\_SB.VGEN");
	aml_close(a);
}

static void dsdt_com1(struct aml *a, const struct spk_acpi_config *cfg)
{
	uint8_t rb[RES_TEMPLATE_MAX];
	struct aml r;

	aml_init(&r, rb, sizeof(rb));
	res_io(&r, cfg->com1_port, 1, 8);
	res_irq_noflags(&r, cfg->com1_irq);
	res_end(&r);

	aml_device(a, "COM1");
	aml_name_eisaid(a, "_HID", "PNP0501");
	aml_name_int(a, "_UID", 0);
	aml_name_int(a, "_STA", 0x0f); /* present, enabled, shown, working */
	aml_name_buffer(a, "_CRS", &r);
	aml_close(a);
}

#define PRT_SLOTS   31 /* 1-31: slot 0 is the host bridge */
#define ISA_IRQS    16
#define IOAPIC_PINS 24 /* the MADT's one IOAPIC, GSI base 0 */
#define PRT_PINS    4

/*
 * _PRT: each slot's INTA-INTD straight to an IOAPIC pin (Source 0, the
 * GSI in SourceIndex), the swizzle the PCI host raises them with. The
 * GSIs are above the ISA range, so the OS makes them level, active low.
 */
static void dsdt_prt(struct aml *a, const struct spk_acpi_config *cfg)
{
	aml_u8(a, AML_NAME);
	aml_namestring(a, "_PRT");
	aml_package(a, PRT_SLOTS * PRT_PINS);
	for (unsigned slot = 1; slot <= PRT_SLOTS; slot++) {
		for (unsigned pin = 0; pin < PRT_PINS; pin++) {
			aml_package(a, 4);
			aml_int(a, (uint64_t)slot << 16 | 0xffff); /* any function of the slot */
			aml_int(a, pin);
			aml_int(a, 0);
			aml_int(a, spk_pci_intx_gsi(cfg->pci_intx_gsi, slot, pin + 1));
			aml_close(a);
		}
	}
	aml_close(a);
}

/* The host bridge's windows: bus 0, all ports but 0xcf8-0xcff, the MMIO hole. */
static void dsdt_pci0(struct aml *a, const struct spk_acpi_config *cfg)
{
	uint8_t rb[RES_TEMPLATE_MAX];
	struct aml r;

	aml_init(&r, rb, sizeof(rb));
	res_addr(&r, RES_WORD_ADDR, 2, ADDR_BUS, ADDR_PRODUCER, 0, 0, 0);
	res_addr(&r, RES_WORD_ADDR, 2, ADDR_IO, ADDR_PRODUCER, IO_ENTIRE_RANGE, 0x0000, 0x0cf7);
	res_addr(&r, RES_WORD_ADDR, 2, ADDR_IO, ADDR_PRODUCER, IO_ENTIRE_RANGE, 0x0d00, 0xffff);
	res_memory(&r, ADDR_PRODUCER, cfg->pci_mmio_start, cfg->pci_mmio_size);
	res_end(&r);

	aml_device(a, "PCI0");
	aml_name_eisaid(a, "_HID", "PNP0A08"); /* PCI Express root */
	aml_name_eisaid(a, "_CID", "PNP0A03"); /* PCI root, for older OSes */
	aml_name_int(a, "_SEG", 0);
	aml_name_int(a, "_BBN", 0);
	aml_name_int(a, "_UID", 0);
	aml_name_buffer(a, "_CRS", &r);
	if (cfg->pci_intx_gsi)
		dsdt_prt(a, cfg);
	aml_close(a);
}

/*
 * Linux uses the MCFG's ECAM window only if firmware reserves it, in the
 * e820 map or as a motherboard resource (PNP0C02); the latter is ours.
 */
static void dsdt_ecam_reserve(struct aml *a, const struct spk_acpi_config *cfg)
{
	uint8_t rb[RES_TEMPLATE_MAX];
	struct aml r;

	aml_init(&r, rb, sizeof(rb));
	if (cfg->pci_ecam + ECAM_BUS_SIZE - 1 <= UINT32_MAX)
		res_mem32_fixed(&r, (uint32_t)cfg->pci_ecam, (uint32_t)ECAM_BUS_SIZE);
	else
		res_memory(&r, ADDR_CONSUMER | ADDR_MIN_FIXED | ADDR_MAX_FIXED, cfg->pci_ecam,
		           ECAM_BUS_SIZE);
	res_end(&r);

	aml_device(a, "MBRD");
	aml_name_eisaid(a, "_HID", "PNP0C02");
	aml_name_int(a, "_UID", 0);
	aml_name_buffer(a, "_CRS", &r);
	aml_close(a);
}

static int build_dsdt_body(struct aml *a, uint8_t *storage, size_t cap,
                           const struct spk_acpi_config *cfg)
{
	aml_init(a, storage, cap);
	dsdt_s5(a, cfg);
	/* the DSDT's scope is the root: "_SB" is \_SB, one byte shorter (as iasl does) */
	aml_scope(a, "_SB");
	dsdt_pwrb(a);
	if (cfg->com1)
		dsdt_com1(a, cfg);
	if (cfg->pci) {
		dsdt_pci0(a, cfg);
		dsdt_ecam_reserve(a, cfg);
	}
	if (cfg->vmgenid_addr)
		dsdt_vgen(a, cfg);
	aml_close(a);
	dsdt_gpe(a, cfg);
	if (a->overflow || a->depth != 0)
		return spk_fail(EOVERFLOW, "acpi: DSDT body does not fit in %zu bytes", cap);
	return 0;
}

/* ---- config checks ---- */

/* An ISA IRQ that reaches the IOAPIC 1:1; 0 and 2 are the timer's. */
static int check_isa_irq(const char *field, unsigned irq)
{
	if (irq == 0 || irq == 2 || irq > 15)
		return spk_fail(EINVAL, "acpi: %s %u is not an ISA IRQ (1, 3-15)", field, irq);
	return 0;
}

/* Ports [port, port + n) inside 1..0xffff. */
static int check_ports(const char *field, uint16_t port, unsigned n)
{
	if (port == 0 || (uint32_t)port + n > 0x10000u)
		return spk_fail(EINVAL,
		                "acpi: %s 0x%x: %u port(s) from there are not inside 1-0xffff",
		                field, port, n);
	return 0;
}

static bool ports_overlap(uint16_t a, unsigned na, uint16_t b, unsigned nb)
{
	return (uint32_t)a < (uint32_t)b + nb && (uint32_t)b < (uint32_t)a + na;
}

static int check_pm(const struct spk_acpi_config *cfg)
{
	const struct {
		const char *field;
		uint16_t port;
		unsigned len;
	} blk[] = {
	    {"pm1a_evt_port", cfg->pm1a_evt_port, PM1_EVT_LEN},
	    {"pm1a_cnt_port", cfg->pm1a_cnt_port, PM1_CNT_LEN},
	    {"gpe0_port", cfg->gpe0_port, GPE0_BLK_LEN},
	    {"reset_port", cfg->reset_port, 1},
	};
	int err;

	for (size_t i = 0; i < SPK_ARRAY_SIZE(blk); i++)
		if ((err = check_ports(blk[i].field, blk[i].port, blk[i].len)))
			return err;
	if ((err = check_isa_irq("sci_irq", cfg->sci_irq)))
		return err;
	/* one device tells the four blocks apart by port */
	for (size_t i = 0; i < SPK_ARRAY_SIZE(blk); i++)
		for (size_t j = i + 1; j < SPK_ARRAY_SIZE(blk); j++)
			if (ports_overlap(blk[i].port, blk[i].len, blk[j].port, blk[j].len))
				return spk_fail(
				    EINVAL, "acpi: %s 0x%x (%u port(s)) and %s 0x%x (%u) overlap",
				    blk[i].field, blk[i].port, blk[i].len, blk[j].field,
				    blk[j].port, blk[j].len);
	/* SLP_TYP is PM1_CNT bits 10-12 */
	if (cfg->s5_slp_typ > 7)
		return spk_fail(EINVAL, "acpi: s5_slp_typ %u does not fit SLP_TYP (0-7)",
		                cfg->s5_slp_typ);
	return 0;
}

static int check_apics(const struct spk_acpi_config *cfg)
{
	if (cfg->ncpus == 0 || cfg->ncpus > MAX_CPUS)
		return spk_fail(EINVAL, "acpi: ncpus %" PRIu32 " is out of range (1-%d)",
		                cfg->ncpus, MAX_CPUS);
	/* the MADT fields are 32 bits wide */
	if (cfg->lapic_addr == 0 || cfg->lapic_addr > UINT32_MAX)
		return spk_fail(EINVAL, "acpi: lapic_addr 0x%" PRIx64 " is not a 32-bit address",
		                cfg->lapic_addr);
	if (cfg->ioapic_addr == 0 || cfg->ioapic_addr > UINT32_MAX)
		return spk_fail(EINVAL, "acpi: ioapic_addr 0x%" PRIx64 " is not a 32-bit address",
		                cfg->ioapic_addr);
	return 0;
}

static int check_com1(const struct spk_acpi_config *cfg)
{
	int err;

	if (!cfg->com1)
		return 0;
	if ((err = check_ports("com1_port", cfg->com1_port, 8)) ||
	    (err = check_isa_irq("com1_irq", cfg->com1_irq)))
		return err;
	/* the SCI override makes that IRQ level-triggered; COM1's is edge */
	if (cfg->com1_irq == cfg->sci_irq)
		return spk_fail(EINVAL, "acpi: com1_irq %u is also sci_irq", cfg->com1_irq);
	return 0;
}

static int check_pci(const struct spk_acpi_config *cfg)
{
	uint64_t end;

	if (!cfg->pci)
		return 0;
	if (cfg->pci_ecam == 0 || cfg->pci_ecam % ECAM_BUS_SIZE != 0 ||
	    !spk_add_ok(cfg->pci_ecam, ECAM_BUS_SIZE, &end))
		return spk_fail(EINVAL,
		                "acpi: pci_ecam 0x%" PRIx64 " is not a 1 MiB-aligned, non-zero "
		                "base of a 1 MiB window",
		                cfg->pci_ecam);
	if (cfg->pci_intx_gsi &&
	    (cfg->pci_intx_gsi < ISA_IRQS || cfg->pci_intx_gsi > IOAPIC_PINS - SPK_PCI_INTX_LINES))
		return spk_fail(EINVAL,
		                "acpi: pci_intx_gsi %" PRIu32 ": the %d INTx GSIs from there must "
		                "be IOAPIC pins %d-%d",
		                cfg->pci_intx_gsi, SPK_PCI_INTX_LINES, ISA_IRQS, IOAPIC_PINS - 1);
	if (cfg->pci_mmio_size == 0 || !spk_add_ok(cfg->pci_mmio_start, cfg->pci_mmio_size, &end))
		return spk_fail(EINVAL,
		                "acpi: pci_mmio_start 0x%" PRIx64 " + pci_mmio_size 0x%" PRIx64
		                " is empty or wraps",
		                cfg->pci_mmio_start, cfg->pci_mmio_size);
	return 0;
}

#define VMGENID_LEN   16
#define VMGENID_ALIGN 16
#define GPE_COUNT     (8 * GPE0_BLK_LEN / 2) /* status bits in the GPE0 block */

static int check_vmgenid(const struct spk_acpi_config *cfg)
{
	if (!cfg->vmgenid_addr)
		return 0;
	if (cfg->vmgenid_addr % VMGENID_ALIGN || cfg->vmgenid_addr > UINT64_MAX - VMGENID_LEN)
		return spk_fail(EINVAL,
		                "acpi: vmgenid_addr 0x%" PRIx64 " is not a 16-byte aligned address "
		                "of 16 bytes",
		                cfg->vmgenid_addr);
	if (cfg->vmgenid_gpe == 0 || cfg->vmgenid_gpe >= GPE_COUNT)
		return spk_fail(EINVAL,
		                "acpi: vmgenid_gpe %u: need 1 to %u (GPE 0 is the power button)",
		                cfg->vmgenid_gpe, GPE_COUNT - 1);
	return 0;
}

static int check_config(const struct spk_acpi_config *cfg)
{
	int err;

	if (!cfg)
		return spk_fail(EINVAL, "acpi: no config");
	if ((err = check_apics(cfg)) || (err = check_pm(cfg)) || (err = check_com1(cfg)) ||
	    (err = check_pci(cfg)) || (err = check_vmgenid(cfg)))
		return err;
	return 0;
}

/* ---- layout ---- */

/* Offsets from base; mcfg is 0 without PCI. */
struct layout {
	size_t xsdt, fadt, facs, dsdt, madt, mcfg, end;
	size_t xsdt_len, dsdt_len, madt_len;
};

/* The next guest address at or after base + *off that is align-aligned. */
static size_t place(uint64_t base, size_t *off, size_t len, size_t align)
{
	size_t at = *off + (size_t)((0 - (base + *off)) & (align - 1));

	*off = at + len;
	return at;
}

/* Sizes are bounded (255 CPUs, a fixed DSDT): no size_t arithmetic can wrap. */
static int plan(struct layout *l, uint64_t base, const struct spk_acpi_config *cfg, size_t aml_len)
{
	size_t off = RSDP_LEN;
	uint64_t last;

	memset(l, 0, sizeof(*l));
	l->xsdt_len = HDR_LEN + 8 * (cfg->pci ? 3 : 2);
	l->dsdt_len = HDR_LEN + aml_len;
	l->madt_len =
	    MADT_FIXED + MADT_LAPIC * (size_t)cfg->ncpus + MADT_IOAPIC + MADT_ISO * MADT_NISO;
	l->xsdt = place(base, &off, l->xsdt_len, TABLE_ALIGN);
	l->fadt = place(base, &off, FADT_LEN, TABLE_ALIGN);
	l->facs = place(base, &off, FACS_LEN, FACS_ALIGN);
	l->dsdt = place(base, &off, l->dsdt_len, TABLE_ALIGN);
	l->madt = place(base, &off, l->madt_len, TABLE_ALIGN);
	if (cfg->pci)
		l->mcfg = place(base, &off, MCFG_LEN, TABLE_ALIGN);
	l->end = off;
	if (!spk_add_ok(base, l->end, &last))
		return spk_fail(EINVAL, "acpi: %zu bytes of tables at 0x%" PRIx64 " wrap around",
		                l->end, base);
	return 0;
}

/* ---- the tables ---- */

static void write_header(uint8_t *t, const char *sig, size_t len, uint8_t rev)
{
	memcpy(t, sig, 4);
	put32(t + 4, (uint32_t)len);
	t[8] = rev;
	memcpy(t + 10, OEM_ID, 6);
	memcpy(t + 16, OEM_TABLE_ID, 8);
	put32(t + 24, OEM_REVISION);
	memcpy(t + 28, CREATOR_ID, 4);
	put32(t + 32, CREATOR_REVISION);
}

static void finish_table(uint8_t *t, size_t len)
{
	t[9] = checksum(t, len);
}

/* A 32-bit pointer field holds the address only if it fits; 0 says "use the 64-bit one". */
static uint32_t addr32(uint64_t gpa)
{
	return gpa <= UINT32_MAX ? (uint32_t)gpa : 0;
}

static void write_rsdp(uint8_t *p, uint64_t xsdt)
{
	memcpy(p, "RSD PTR ", 8);
	memcpy(p + 9, OEM_ID, 6);
	p[15] = 2; /* ACPI 2.0+: XSDT, Length and the extended checksum */
	/* RsdtAddress stays 0: revision 2 OSes take the XSDT */
	put32(p + 20, RSDP_LEN);
	put64(p + 24, xsdt);
	p[8] = checksum(p, RSDP_V1_LEN);
	p[32] = checksum(p, RSDP_LEN);
}

static void write_xsdt(uint8_t *t, size_t len, const uint64_t *entries, size_t n)
{
	write_header(t, "XSDT", len, XSDT_REV);
	for (size_t i = 0; i < n; i++)
		put64(t + HDR_LEN + 8 * i, entries[i]);
	finish_table(t, len);
}

static void put_gas(uint8_t *p, uint8_t bits, uint8_t access, uint64_t port)
{
	p[0] = GAS_SYSTEM_IO;
	p[1] = bits;
	p[2] = 0; /* bit offset */
	p[3] = access;
	put64(p + 4, port);
}

#define RTC_CENTURY_INDEX 0x32

static void write_fadt(uint8_t *t, const struct spk_acpi_config *cfg, uint64_t facs, uint64_t dsdt)
{
	write_header(t, "FACP", FADT_LEN, FADT_REV);
	/* only X_FIRMWARE_CTRL: with both set, Linux lists (and maps) the FACS twice */
	put32(t + FADT_FIRMWARE_CTRL, 0);
	put32(t + FADT_DSDT, addr32(dsdt));
	put16(t + FADT_SCI_INT, cfg->sci_irq);
	/* SMI_CMD 0: no SMM handshake, the platform is always in ACPI mode */
	put32(t + FADT_SMI_CMD, 0);
	put32(t + FADT_PM1A_EVT_BLK, cfg->pm1a_evt_port);
	put32(t + FADT_PM1A_CNT_BLK, cfg->pm1a_cnt_port);
	t[FADT_PM1_EVT_LEN] = PM1_EVT_LEN;
	t[FADT_PM1_CNT_LEN] = PM1_CNT_LEN;
	put32(t + FADT_GPE0_BLK, cfg->gpe0_port);
	t[FADT_GPE0_BLK_LEN] = GPE0_BLK_LEN;
	/* no PM timer (PM_TMR_LEN 0, optional since ACPI 5.0A), no GPE1 block */
	put16(t + FADT_P_LVL2_LAT, NO_CSTATE_LAT);
	put16(t + FADT_P_LVL3_LAT, NO_CSTATE_LAT);
	/* the RTC is there (no CMOS_RTC_NOT_PRESENT) */
	put16(t + FADT_IAPC_BOOT_ARCH, BOOT_ARCH_8042 | BOOT_ARCH_NO_VGA);
	t[FADT_CENTURY] = RTC_CENTURY_INDEX; /* the RTC keeps the century at 0x32 */
	put32(t + FADT_FLAGS, FADT_F_WBINVD | FADT_F_PROC_C1 | FADT_F_PWR_BUTTON |
	                          FADT_F_SLP_BUTTON | FADT_F_RESET_REG_SUP);
	put_gas(t + FADT_RESET_REG, 8, GAS_ACCESS_BYTE, cfg->reset_port);
	t[FADT_RESET_VALUE] = cfg->reset_value;
	t[FADT_MINOR_VERSION] = FADT_MINOR;
	put64(t + FADT_X_FIRMWARE_CTRL, facs);
	put64(t + FADT_X_DSDT, dsdt);
	/* bit widths must equal 8 x the legacy lengths, or ACPICA warns */
	put_gas(t + FADT_X_PM1A_EVT_BLK, 8 * PM1_EVT_LEN, GAS_ACCESS_WORD, cfg->pm1a_evt_port);
	put_gas(t + FADT_X_PM1A_CNT_BLK, 8 * PM1_CNT_LEN, GAS_ACCESS_WORD, cfg->pm1a_cnt_port);
	/* ACPICA reads and writes GPE registers a byte at a time */
	put_gas(t + FADT_X_GPE0_BLK, 8 * GPE0_BLK_LEN, GAS_ACCESS_BYTE, cfg->gpe0_port);
	memcpy(t + FADT_HYPERVISOR_ID, HYPERVISOR_ID, 8);
	finish_table(t, FADT_LEN);
}

/* No checksum: the FACS is the firmware/OS shared page (waking vector, global lock). */
static void write_facs(uint8_t *t)
{
	memcpy(t, "FACS", 4);
	put32(t + 4, FACS_LEN);
	t[32] = FACS_VERSION;
}

static void write_dsdt(uint8_t *t, size_t len, const struct aml *body)
{
	write_header(t, "DSDT", len, DSDT_REV);
	memcpy(t + HDR_LEN, body->b, body->len);
	finish_table(t, len);
}

static uint8_t *put_iso(uint8_t *e, uint8_t irq, uint32_t gsi, uint16_t flags)
{
	e[0] = MADT_TYPE_ISO;
	e[1] = MADT_ISO;
	e[2] = 0; /* bus: ISA */
	e[3] = irq;
	put32(e + 4, gsi);
	put16(e + 8, flags);
	return e + MADT_ISO;
}

static void write_madt(uint8_t *t, size_t len, const struct spk_acpi_config *cfg)
{
	uint8_t *e = t + MADT_FIXED;

	write_header(t, "APIC", len, MADT_REV);
	put32(t + HDR_LEN, (uint32_t)cfg->lapic_addr);
	put32(t + HDR_LEN + 4, MADT_PCAT_COMPAT); /* 8259s present: Linux masks them */
	for (uint32_t i = 0; i < cfg->ncpus; i++, e += MADT_LAPIC) {
		e[0] = MADT_TYPE_LAPIC;
		e[1] = MADT_LAPIC;
		e[2] = (uint8_t)i; /* ACPI processor UID */
		e[3] = (uint8_t)i; /* APIC id */
		put32(e + 4, MADT_LAPIC_ENABLED);
	}
	e[0] = MADT_TYPE_IOAPIC;
	e[1] = MADT_IOAPIC;
	e[2] = cfg->ioapic_id;
	put32(e + 4, (uint32_t)cfg->ioapic_addr);
	put32(e + 8, 0); /* GSI base */
	e += MADT_IOAPIC;
	e = put_iso(e, 0, TIMER_GSI, ISO_CONFORMING);
	put_iso(e, cfg->sci_irq, cfg->sci_irq, ISO_LEVEL_HIGH);
	finish_table(t, len);
}

static void write_mcfg(uint8_t *t, uint64_t ecam)
{
	uint8_t *a = t + HDR_LEN + 8; /* after 8 reserved bytes */

	write_header(t, "MCFG", MCFG_LEN, MCFG_REV);
	put64(a, ecam);
	put16(a + 8, 0); /* segment */
	a[10] = 0;       /* first bus */
	a[11] = 0;       /* last bus */
	finish_table(t, MCFG_LEN);
}

static void write_all(uint8_t *buf, uint64_t base, const struct layout *l,
                      const struct spk_acpi_config *cfg, const struct aml *body)
{
	uint64_t entries[3] = {base + l->fadt, base + l->madt, base + l->mcfg};

	memset(buf, 0, l->end);
	write_rsdp(buf, base + l->xsdt);
	write_xsdt(buf + l->xsdt, l->xsdt_len, entries, cfg->pci ? 3 : 2);
	write_fadt(buf + l->fadt, cfg, base + l->facs, base + l->dsdt);
	write_facs(buf + l->facs);
	write_dsdt(buf + l->dsdt, l->dsdt_len, body);
	write_madt(buf + l->madt, l->madt_len, cfg);
	if (cfg->pci)
		write_mcfg(buf + l->mcfg, cfg->pci_ecam);
}

static void fill_info(struct spk_acpi_info *info, uint64_t base, const struct layout *l, bool pci)
{
	*info = (struct spk_acpi_info){
	    .rsdp = base,
	    .end = base + l->end,
	    .xsdt = base + l->xsdt,
	    .fadt = base + l->fadt,
	    .facs = base + l->facs,
	    .dsdt = base + l->dsdt,
	    .madt = base + l->madt,
	    .mcfg = pci ? base + l->mcfg : 0,
	};
}

int spk_acpi_build_buf(uint8_t *buf, size_t size, uint64_t base, const struct spk_acpi_config *cfg,
                       struct spk_acpi_info *info)
{
	uint8_t storage[AML_MAX];
	struct aml body;
	struct layout l;
	int err;

	if ((err = check_config(cfg)))
		return err;
	if (base % RSDP_ALIGN != 0)
		return spk_fail(EINVAL, "acpi: base 0x%" PRIx64 " is not 16-byte aligned (RSDP)",
		                base);
	if ((err = build_dsdt_body(&body, storage, sizeof(storage), cfg)) ||
	    (err = plan(&l, base, cfg, body.len)))
		return err;
	if (cfg->vmgenid_addr && cfg->vmgenid_addr + VMGENID_LEN > base &&
	    cfg->vmgenid_addr < base + l.end)
		return spk_fail(EINVAL,
		                "acpi: vmgenid_addr 0x%" PRIx64 " is inside the tables [0x%" PRIx64
		                ", 0x%" PRIx64 ")",
		                cfg->vmgenid_addr, base, base + l.end);
	if (size < l.end)
		return spk_fail(ENOSPC, "acpi: the tables need %zu bytes, the buffer has %zu",
		                l.end, size);
	if (!buf)
		return spk_fail(EINVAL, "acpi: NULL buffer of %zu bytes", size);
	write_all(buf, base, &l, cfg, &body);
	if (info)
		fill_info(info, base, &l, cfg->pci);
	return 0;
}

int spk_acpi_build(struct spk_mem *mem, uint64_t base, uint64_t limit,
                   const struct spk_acpi_config *cfg, struct spk_acpi_info *info)
{
	uint8_t *p;

	if (!mem)
		return spk_fail(EINVAL, "acpi: no guest memory");
	if (limit <= base)
		return spk_fail(EINVAL, "acpi: empty range [0x%" PRIx64 ", 0x%" PRIx64 ")", base,
		                limit);
	if ((uint64_t)(size_t)(limit - base) != limit - base)
		return spk_fail(EINVAL, "acpi: range [0x%" PRIx64 ", 0x%" PRIx64 ") is too large",
		                base, limit);
	p = spk_mem_ptr(mem, base, limit - base, SPK_MEM_W | SPK_MEM_LOAD);
	if (!p)
		return spk_fail(EFAULT,
		                "acpi: [0x%" PRIx64 ", 0x%" PRIx64 ") is not writable guest memory "
		                "in one region",
		                base, limit);
	return spk_acpi_build_buf(p, (size_t)(limit - base), base, cfg, info);
}
