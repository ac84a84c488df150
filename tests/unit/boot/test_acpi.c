/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The ACPI tables read back byte by byte: checksums, the pointers between
 * tables, the FADT and MADT fields, the DSDT's AML package lengths, and
 * every refusal (bad config, short buffer at every size) leaving the buffer
 * untouched. tests/acpi_iasl.sh runs the same tables through iasl.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <sparkler/acpi.h>
#include <sparkler/log.h>
#include <sparkler/mem.h>
#include <sparkler/platform.h>

#define BASE  SPK_PC_ACPI_START
#define SPACE (SPK_PC_ACPI_END - SPK_PC_ACPI_START)
#define GUARD 256
#define FILL  0xaa

/* Built tables plus guard bytes after the size the builder was given. */
static uint8_t buf[SPACE + GUARD];

static struct spk_acpi_config default_cfg(void)
{
	struct spk_acpi_config c;

	spk_acpi_pc_config(&c, 2, false);
	c.vmgenid_addr = 0; /* test_vmgenid has it */
	return c;
}

static struct spk_acpi_config pci_cfg(void)
{
	struct spk_acpi_config c = default_cfg();

	c.pci = true;
	c.pci_ecam = SPK_PC_PCI_ECAM;
	c.pci_mmio_start = SPK_PC_PCI_MMIO_START;
	c.pci_mmio_size = SPK_PC_PCI_MMIO_SIZE;
	return c;
}

/* ---- reading the tables back ---- */

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)get16(p) | (uint32_t)get16(p + 2) << 16;
}

static uint64_t get64(const uint8_t *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

static uint8_t sum(const uint8_t *p, size_t n)
{
	uint8_t s = 0;

	for (size_t i = 0; i < n; i++)
		s = (uint8_t)(s + p[i]);
	return s;
}

/* The table at guest address gpa of a build at BASE. */
static const uint8_t *at(uint64_t gpa)
{
	assert_true(gpa >= BASE && gpa < BASE + SPACE);
	return buf + (gpa - BASE);
}

/* A table with this signature, its length inside the build, its checksum right. */
static const uint8_t *table(const struct spk_acpi_info *info, uint64_t gpa, const char *sig)
{
	const uint8_t *t = at(gpa);
	uint32_t len = get32(t + 4);

	assert_memory_equal(t, sig, 4);
	assert_true(gpa + len <= info->end);
	assert_int_equal(gpa % 8, 0);
	assert_int_equal(sum(t, len), 0);
	assert_memory_equal(t + 10, "SPRKLR", 6);
	assert_memory_equal(t + 16, "SPARKLER", 8);
	assert_int_equal(get32(t + 24), 1);
	assert_memory_equal(t + 28, "SPKL", 4);
	assert_int_equal(get32(t + 32), 1);
	return t;
}

static void build_ok(const struct spk_acpi_config *cfg, struct spk_acpi_info *info)
{
	memset(buf, FILL, sizeof(buf));
	if (spk_acpi_build_buf(buf, SPACE, BASE, cfg, info) != 0)
		fail_msg("build failed: %s", spk_last_error());
	assert_int_equal(info->rsdp, BASE);
	assert_true(info->end > BASE && info->end <= BASE + SPACE);
	for (size_t i = info->end - BASE; i < sizeof(buf); i++)
		if (buf[i] != FILL)
			fail_msg("byte 0x%zx past the end (0x%zx) written", i,
			         (size_t)(info->end - BASE));
}

static void assert_untouched(size_t from)
{
	for (size_t i = from; i < sizeof(buf); i++)
		if (buf[i] != FILL)
			fail_msg("byte 0x%zx changed by a refused build", i);
}

static void assert_error_mentions(const char *what)
{
	const char *msg = spk_last_error();

	if (!strstr(msg, what))
		fail_msg("error \"%s\" does not mention \"%s\"", msg, what);
}

/* Does [p, p + n) contain the bytes of want? */
static bool contains(const uint8_t *p, size_t n, const void *want, size_t wn)
{
	for (size_t i = 0; i + wn <= n; i++)
		if (memcmp(p + i, want, wn) == 0)
			return true;
	return false;
}

static bool dsdt_has(const struct spk_acpi_info *info, const void *want, size_t wn)
{
	const uint8_t *d = at(info->dsdt);

	return contains(d + 36, get32(d + 4) - 36, want, wn);
}

/* EISAID("PNPxxxx") as AML: DWordPrefix, then "PNP" packed, then the digits. */
static bool dsdt_has_pnp(const struct spk_acpi_info *info, uint8_t hi, uint8_t lo)
{
	const uint8_t id[] = {0x0c, 0x41, 0xd0, hi, lo};

	return dsdt_has(info, id, sizeof(id));
}

/* ---- RSDP and XSDT ---- */

static void test_rsdp(void **state)
{
	struct spk_acpi_config cfg = default_cfg();
	struct spk_acpi_info info;
	const uint8_t *r;

	build_ok(&cfg, &info);
	r = at(info.rsdp);
	assert_memory_equal(r, "RSD PTR ", 8);
	assert_int_equal(sum(r, 20), 0);
	assert_int_equal(sum(r, 36), 0);
	assert_memory_equal(r + 9, "SPRKLR", 6);
	assert_int_equal(r[15], 2);
	assert_int_equal(get32(r + 20), 36);
	assert_int_equal(get64(r + 24), info.xsdt);
	assert_int_equal(info.rsdp % 16, 0);
}

/* What Linux does without boot_params.acpi_rsdp_addr: 16-byte steps. */
static void test_rsdp_found_by_scan(void **state)
{
	struct spk_acpi_config cfg = pci_cfg();
	struct spk_acpi_info info;
	uint64_t found = 0;

	build_ok(&cfg, &info);
	for (uint64_t a = BASE; a < info.end && !found; a += 16)
		if (memcmp(at(a), "RSD PTR ", 8) == 0 && sum(at(a), 20) == 0)
			found = a;
	assert_int_equal(found, info.rsdp);
}

static void check_xsdt(const struct spk_acpi_config *cfg)
{
	static const char *const sigs[] = {"FACP", "APIC", "MCFG"};
	struct spk_acpi_info info;
	const uint8_t *x;
	size_t n = cfg->pci ? 3 : 2;

	build_ok(cfg, &info);
	x = table(&info, info.xsdt, "XSDT");
	assert_int_equal(x[8], 1);
	assert_int_equal(get32(x + 4), 36 + 8 * n);
	for (size_t i = 0; i < n; i++)
		table(&info, get64(x + 36 + 8 * i), sigs[i]);
	assert_int_equal(get64(x + 36), info.fadt);
	assert_int_equal(get64(x + 44), info.madt);
	if (cfg->pci)
		assert_int_equal(get64(x + 52), info.mcfg);
	else
		assert_int_equal(info.mcfg, 0);
}

static void test_xsdt(void **state)
{
	struct spk_acpi_config cfg = default_cfg();

	check_xsdt(&cfg);
	cfg = pci_cfg();
	check_xsdt(&cfg);
}

/* ---- FADT and FACS ---- */

static void check_gas(const uint8_t *g, uint8_t bits, uint8_t access, uint64_t port)
{
	assert_int_equal(g[0], 1); /* system I/O */
	assert_int_equal(g[1], bits);
	assert_int_equal(g[2], 0);
	assert_int_equal(g[3], access);
	assert_int_equal(get64(g + 4), port);
}

static void test_fadt(void **state)
{
	struct spk_acpi_config cfg = default_cfg();
	struct spk_acpi_info info;
	const uint8_t *f;
	uint32_t flags;

	build_ok(&cfg, &info);
	f = table(&info, info.fadt, "FACP");
	assert_int_equal(get32(f + 4), 276);
	assert_int_equal(f[8], 6);
	assert_int_equal(get32(f + 36), 0);          /* FIRMWARE_CTRL: X_ only */
	assert_int_equal(f[108], 0x32);              /* CENTURY */
	assert_int_equal(get32(f + 40), info.dsdt);  /* DSDT */
	assert_int_equal(get64(f + 132), info.facs); /* X_FIRMWARE_CTRL */
	assert_int_equal(get64(f + 140), info.dsdt); /* X_DSDT */
	assert_int_equal(get16(f + 46), SPK_PC_SCI_IRQ);
	assert_int_equal(get32(f + 48), 0); /* SMI_CMD: always in ACPI mode */
	assert_int_equal(get32(f + 56), SPK_PC_PM1A_EVT);
	assert_int_equal(get32(f + 64), SPK_PC_PM1A_CNT);
	assert_int_equal(get32(f + 76), 0); /* no PM timer */
	assert_int_equal(get32(f + 80), SPK_PC_GPE0_BLK);
	assert_int_equal(get32(f + 84), 0); /* no GPE1 block */
	assert_int_equal(f[88], 4);
	assert_int_equal(f[89], 2);
	assert_int_equal(f[91], 0);               /* PM_TMR_LEN */
	assert_int_equal(f[92], 4);               /* GPE0_BLK_LEN: status (2) + enable (2) */
	assert_int_equal(f[93], 0);               /* GPE1_BLK_LEN */
	assert_int_equal(get16(f + 109), 0x0006); /* 8042, no VGA; RTC present */
	flags = get32(f + 112);
	assert_true(flags & (1u << 0));   /* WBINVD */
	assert_true(flags & (1u << 4));   /* PWR_BUTTON: a control-method power button */
	assert_true(flags & (1u << 5));   /* no sleep button */
	assert_true(flags & (1u << 10));  /* RESET_REG_SUP */
	assert_false(flags & (1u << 20)); /* not hardware-reduced */
	check_gas(f + 116, 8, 1, SPK_PC_RESET_PORT);
	assert_int_equal(f[128], SPK_PC_RESET_VALUE);
	check_gas(f + 148, 32, 2, SPK_PC_PM1A_EVT);
	check_gas(f + 172, 16, 2, SPK_PC_PM1A_CNT);
	check_gas(f + 220, 32, 1, SPK_PC_GPE0_BLK);         /* X_GPE0_BLK, byte access */
	assert_memory_equal(f + 232, (uint8_t[12]){0}, 12); /* no X_GPE1_BLK */
	assert_memory_equal(f + 268, "SPARKLER", 8);
}

static void test_facs(void **state)
{
	struct spk_acpi_config cfg = default_cfg();
	struct spk_acpi_info info;
	const uint8_t *f;

	build_ok(&cfg, &info);
	assert_int_equal(info.facs % 64, 0);
	f = at(info.facs);
	assert_memory_equal(f, "FACS", 4);
	assert_int_equal(get32(f + 4), 64);
	assert_int_equal(f[32], 2);
}

/* Tables above 4 GiB: the 32-bit pointers are 0, the 64-bit ones carry them. */
static void test_fadt_above_4g(void **state)
{
	struct spk_acpi_config cfg = default_cfg();
	struct spk_acpi_info info;
	const uint64_t base = 0x100000000ull;
	const uint8_t *f;

	memset(buf, FILL, sizeof(buf));
	assert_int_equal(spk_acpi_build_buf(buf, SPACE, base, &cfg, &info), 0);
	f = buf + (info.fadt - base);
	assert_int_equal(sum(f, 276), 0);
	assert_int_equal(get32(f + 36), 0);
	assert_int_equal(get32(f + 40), 0);
	assert_int_equal(get64(f + 132), info.facs);
	assert_int_equal(get64(f + 140), info.dsdt);
	assert_int_equal(info.facs % 64, 0);
}

/* ---- MADT ---- */

static void check_madt(uint32_t ncpus)
{
	struct spk_acpi_config cfg = default_cfg();
	struct spk_acpi_info info;
	const uint8_t *m, *e, *end;
	uint32_t lapics = 0, ioapics = 0, isos = 0;

	cfg.ncpus = ncpus;
	cfg.ioapic_id = (uint8_t)ncpus;
	build_ok(&cfg, &info);
	m = table(&info, info.madt, "APIC");
	assert_int_equal(get32(m + 4), 44 + 8 * ncpus + 12 + 2 * 10);
	assert_int_equal(get32(m + 36), SPK_PC_LAPIC);
	assert_int_equal(get32(m + 40), 1); /* PCAT_COMPAT */
	end = m + get32(m + 4);
	for (e = m + 44; e < end; e += e[1]) {
		assert_true(e[1] >= 2 && e + e[1] <= end);
		switch (e[0]) {
		case 0:
			assert_int_equal(e[1], 8);
			assert_int_equal(e[2], lapics); /* processor UID */
			assert_int_equal(e[3], lapics); /* APIC id */
			assert_int_equal(get32(e + 4), 1);
			lapics++;
			break;
		case 1:
			assert_int_equal(e[1], 12);
			assert_int_equal(e[2], cfg.ioapic_id);
			assert_int_equal(get32(e + 4), SPK_PC_IOAPIC);
			assert_int_equal(get32(e + 8), 0);
			ioapics++;
			break;
		case 2:
			assert_int_equal(e[1], 10);
			assert_int_equal(e[2], 0);
			if (isos++ == 0) {
				assert_int_equal(e[3], 0);
				assert_int_equal(get32(e + 4), 2);
				assert_int_equal(get16(e + 8), 0);
			} else {
				assert_int_equal(e[3], SPK_PC_SCI_IRQ);
				assert_int_equal(get32(e + 4), SPK_PC_SCI_IRQ);
				assert_int_equal(get16(e + 8), 0x000d);
			}
			break;
		default:
			fail_msg("MADT entry type %u", e[0]);
		}
	}
	assert_ptr_equal(e, end);
	assert_int_equal(lapics, ncpus);
	assert_int_equal(ioapics, 1);
	assert_int_equal(isos, 2);
}

static void test_madt(void **state)
{
	check_madt(1);
	check_madt(2);
	check_madt(255);
}

static void test_ncpus_refused(void **state)
{
	struct spk_acpi_config cfg = default_cfg();
	struct spk_acpi_info info;
	const uint32_t bad[] = {0, 256, 0xffffffffu};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cfg.ncpus = bad[i];
		memset(buf, FILL, sizeof(buf));
		assert_int_equal(spk_acpi_build_buf(buf, SPACE, BASE, &cfg, &info), -EINVAL);
		assert_error_mentions("ncpus");
		assert_untouched(0);
	}
}

/* ---- DSDT ---- */

/* Decode a PkgLength at p: its value (counting itself) and its size in *k. */
static size_t pkglen(const uint8_t *p, size_t *k)
{
	size_t v;

	*k = 1 + (p[0] >> 6);
	if (*k == 1)
		return p[0] & 0x3f;
	v = p[0] & 0x0f;
	for (size_t i = 1; i < *k; i++)
		v |= (size_t)p[i] << (4 + 8 * (i - 1));
	return v;
}

/*
 * Scope (_GPE) { Method (_E00, 0, NotSerialized) { Notify (\_SB.PWRB, 0x80) } }
 * as ACPI 6.3 section 20.2 encodes it: ScopeOp, MethodOp 0x14 with its
 * MethodFlags byte, NotifyOp 0x86 with a RootChar and DualNamePrefix 0x2e
 * path, the value as a BytePrefix constant. iasl compiles the same.
 */
static const uint8_t gpe_scope[] = {
    0x10, 0x19, '_',  'G', 'P', 'E',                           /* Scope (_GPE), 25 bytes */
    0x14, 0x13, '_',  'E', '0', '0', 0x00,                     /* Method (_E00, 0), 19 */
    0x86, '\\', 0x2e, '_', 'S', 'B', '_',  'P', 'W', 'R', 'B', /* Notify (\_SB.PWRB, */
    0x0a, 0x80,                                                /* 0x80) */
};

/* Device (PWRB) { Name (_HID, EisaId ("PNP0C0C")) Name (_UID, Zero) } */
static const uint8_t pwrb_device[] = {
    0x5b, 0x82, 0x15, 'P',  'W',  'R',  'B', 0x08, '_', 'H', 'I',  'D',
    0x0c, 0x41, 0xd0, 0x0c, 0x0c, 0x08, '_', 'U',  'I', 'D', 0x00,
};

/*
 * The DSDT is \_S5, then Scope(_SB) holding Devices and nothing else, the
 * power button first, then the _GPE scope to the table's end: the devices
 * must tile the scope, which checks every one- and two-byte PkgLength the
 * emitter wrote.
 */
static void check_dsdt_structure(const struct spk_acpi_info *info, unsigned want_devices)
{
	static const uint8_t s5[] = {0x08, '_',
	                             'S',  '5',
	                             '_',  0x12,
	                             0x08, 0x04,
	                             0x0a, SPK_PC_S5_SLP_TYP,
	                             0x0a, SPK_PC_S5_SLP_TYP,
	                             0x00, 0x00};
	const uint8_t *d = table(info, info->dsdt, "DSDT");
	const uint8_t *p = d + 36, *end = d + get32(d + 4), *scope_end;
	unsigned devices = 0;
	size_t k;

	assert_int_equal(d[8], 2);
	assert_memory_equal(p, s5, sizeof(s5));
	p += sizeof(s5);
	assert_int_equal(*p++, 0x10); /* ScopeOp */
	scope_end = p + pkglen(p, &k);
	assert_ptr_equal(scope_end + sizeof(gpe_scope), end);
	assert_memory_equal(scope_end, gpe_scope, sizeof(gpe_scope));
	p += k;
	assert_memory_equal(p, "_SB_", 4);
	assert_memory_equal(p + 4, pwrb_device, sizeof(pwrb_device));
	for (p += 4; p < scope_end; devices++) {
		assert_int_equal(p[0], 0x5b);
		assert_int_equal(p[1], 0x82);
		p += 2;
		p += pkglen(p, &k);
		assert_true(p <= scope_end);
	}
	assert_ptr_equal(p, scope_end);
	assert_int_equal(devices, want_devices);
}

static void test_dsdt(void **state)
{
	struct spk_acpi_config cfg = default_cfg();
	struct spk_acpi_info info;
	const uint8_t com1_io[] = {0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x01, 0x08};
	const uint8_t com1_irq[] = {0x22, 1 << SPK_PC_COM1_IRQ, 0x00, 0x79, 0x00};

	build_ok(&cfg, &info);
	check_dsdt_structure(&info, 2); /* PWRB, COM1 */
	assert_true(dsdt_has(&info, "COM1", 4));
	assert_true(dsdt_has_pnp(&info, 0x05, 0x01));
	assert_true(dsdt_has(&info, com1_io, sizeof(com1_io)));
	assert_true(dsdt_has(&info, com1_irq, sizeof(com1_irq)));
	assert_true(dsdt_has_pnp(&info, 0x0c, 0x0c)); /* the power button */
	assert_false(dsdt_has_pnp(&info, 0x0a, 0x08));
	assert_false(dsdt_has(&info, "PCI0", 4));
}

/* Without COM1 and PCI: \_S5, the power button and its GPE method. */
static void test_dsdt_without_devices(void **state)
{
	struct spk_acpi_config cfg = default_cfg();
	struct spk_acpi_info info;
	const uint8_t *d;

	cfg.com1 = false;
	build_ok(&cfg, &info);
	check_dsdt_structure(&info, 1);
	d = table(&info, info.dsdt, "DSDT");
	/* \_S5 (14), Scope (_SB) (1 + 1 + 4) { PWRB }, the _GPE scope */
	assert_int_equal(get32(d + 4), 36 + 14 + 6 + sizeof(pwrb_device) + sizeof(gpe_scope));
	assert_false(dsdt_has_pnp(&info, 0x05, 0x01));
}

/* ---- PCI ---- */

static void test_pci(void **state)
{
	struct spk_acpi_config cfg = pci_cfg();
	struct spk_acpi_info info;
	const uint8_t *m;
	/* DWordMemory: producer, min/max fixed, read-write, 0xc0000000-0xdfffffff */
	const uint8_t mmio[] = {0x87, 0x17, 0x00, 0x00, 0x0c, 0x01, 0,    0,    0,
	                        0,    0x00, 0x00, 0x00, 0xc0, 0xff, 0xff, 0xff, 0xdf};
	const uint8_t ecam[] = {0x86, 0x09, 0x00, 0x01, 0x00, 0x00,
	                        0x00, 0xe0, 0x00, 0x00, 0x10, 0x00};

	build_ok(&cfg, &info);
	check_dsdt_structure(&info, 4); /* PWRB, COM1, PCI0, MBRD */
	assert_true(dsdt_has_pnp(&info, 0x0a, 0x08));
	assert_true(dsdt_has_pnp(&info, 0x0a, 0x03));
	assert_true(dsdt_has_pnp(&info, 0x0c, 0x02));
	assert_true(dsdt_has(&info, mmio, sizeof(mmio)));
	assert_true(dsdt_has(&info, ecam, sizeof(ecam)));
	m = table(&info, info.mcfg, "MCFG");
	assert_int_equal(get32(m + 4), 60);
	assert_int_equal(get64(m + 44), SPK_PC_PCI_ECAM);
	assert_int_equal(get16(m + 52), 0);
	assert_int_equal(m[54], 0);
	assert_int_equal(m[55], 0);
}

/* The _PRT: 31 slots x 4 pins, each Package(4){slot << 16 | 0xffff, pin, 0, GSI}. */
static void test_pci_prt(void **state)
{
	struct spk_acpi_config cfg = pci_cfg();
	struct spk_acpi_info info;
	/* Name(_PRT, Package(124) {...}) with a 2-byte PkgLength */
	const uint8_t head[] = {0x08, '_', 'P', 'R', 'T', 0x12};
	/* GSI 16 + (slot + pin - 1) % 8: slot 1 INTA -> 17, INTB -> 18, slot 7 INTB -> 16,
	 * slot 31 INTD -> 18 */
	const uint8_t e1a[] = {0x12, 0x0b, 0x04, 0x0c, 0xff, 0xff,
	                       0x01, 0x00, 0x00, 0x00, 0x0a, 17};
	const uint8_t e1b[] = {0x12, 0x0b, 0x04, 0x0c, 0xff, 0xff,
	                       0x01, 0x00, 0x01, 0x00, 0x0a, 18};
	const uint8_t e7b[] = {0x12, 0x0b, 0x04, 0x0c, 0xff, 0xff,
	                       0x07, 0x00, 0x01, 0x00, 0x0a, 16};
	const uint8_t e31d[] = {0x12, 0x0c, 0x04, 0x0c, 0xff, 0xff, 0x1f,
	                        0x00, 0x0a, 0x03, 0x00, 0x0a, 18};
	const uint8_t *d;

	build_ok(&cfg, &info);
	assert_false(dsdt_has(&info, "_PRT", 4)); /* not asked for */
	cfg.pci_intx_gsi = 16;
	build_ok(&cfg, &info);
	check_dsdt_structure(&info, 4);
	assert_true(dsdt_has(&info, head, sizeof(head)));
	assert_true(dsdt_has(&info, e1a, sizeof(e1a)));
	assert_true(dsdt_has(&info, e1b, sizeof(e1b)));
	assert_true(dsdt_has(&info, e7b, sizeof(e7b)));
	assert_true(dsdt_has(&info, e31d, sizeof(e31d)));
	d = table(&info, info.dsdt, "DSDT");
	for (size_t i = 36; i + sizeof(head) + 3 < get32(d + 4); i++) {
		if (memcmp(d + i, head, sizeof(head)) == 0) {
			assert_int_equal(d[i + 6] >> 6, 1); /* two-byte PkgLength */
			assert_int_equal(d[i + 8], 124);    /* NumElements */
		}
	}
	/* GSIs that are ISA IRQs or not IOAPIC pins are refused */
	cfg.pci_intx_gsi = 9;
	assert_int_equal(spk_acpi_build_buf(buf, SPACE, BASE, &cfg, &info), -EINVAL);
	assert_non_null(strstr(spk_last_error(), "pci_intx_gsi"));
	cfg.pci_intx_gsi = 17;
	assert_int_equal(spk_acpi_build_buf(buf, SPACE, BASE, &cfg, &info), -EINVAL);
}

/* Windows above 4 GiB take QWord descriptors. */
static void test_pci_high(void **state)
{
	struct spk_acpi_config cfg = pci_cfg();
	struct spk_acpi_info info;
	/* QWordMemory: producer window, then consumer (the ECAM reservation) */
	const uint8_t window[] = {0x8a, 0x2b, 0x00, 0x00, 0x0c};
	const uint8_t reserved[] = {0x8a, 0x2b, 0x00, 0x00, 0x0d};

	cfg.pci_mmio_start = 0x800000000ull;
	cfg.pci_mmio_size = 0x100000000ull;
	cfg.pci_ecam = 0x1000000000ull;
	build_ok(&cfg, &info);
	check_dsdt_structure(&info, 4);
	assert_true(dsdt_has(&info, window, sizeof(window)));
	assert_true(dsdt_has(&info, reserved, sizeof(reserved)));
	assert_int_equal(get64(table(&info, info.mcfg, "MCFG") + 44), cfg.pci_ecam);
}

/* ---- the VM generation ID ---- */

/*
 * Device (VGEN) { Name (_HID, "SPKL0001") Name (_CID, "VM_Gen_Counter")
 * Name (_DDN, "VM_Gen_Counter") Method (ADDR) { Return (Package (2)
 * { 0xEF000, Zero }) } } and Scope (_GPE) { _E00 as before, Method (_E01)
 * { Notify (\_SB.VGEN, 0x80) } }, byte for byte as iasl compiles them.
 */
static void test_vmgenid(void **state)
{
	struct spk_acpi_config cfg = default_cfg();
	struct spk_acpi_info info;
	static const uint8_t vgen[] = {
	    0x5b, 0x82, 0x40, 0x05, 'V',  'G',  'E',  'N', /* Device (VGEN), PkgLength 0x54 */
	    0x08, '_',  'H',  'I',  'D',  0x0d, 'S',  'P',  'K',  'L',  '0',  '0',  '0',
	    '1',  0x00, 0x08, '_',  'C',  'I',  'D',  0x0d, 'V',  'M',  '_',  'G',  'e',
	    'n',  '_',  'C',  'o',  'u',  'n',  't',  'e',  'r',  0x00, 0x08, '_',  'D',
	    'D',  'N',  0x0d, 'V',  'M',  '_',  'G',  'e',  'n',  '_',  'C',  'o',  'u',
	    'n',  't',  'e',  'r',  0x00, 0x14, 0x10, 'A',  'D',  'D',  'R',  0x00, /* Method (ADDR,
	                                                                               0) */
	    0xa4, 0x12, 0x08, 0x02, 0x0c, 0x00, 0xf0, 0x0e, 0x00, 0x00, /* Return (Package) */
	};
	static const uint8_t e01[] = {
	    0x14, 0x13, '_', 'E', '0', '1', 0x00, 0x86, '\\', 0x2e,
	    '_',  'S',  'B', '_', 'V', 'G', 'E',  'N',  0x0a, 0x80,
	};
	const uint8_t *d;

	cfg.vmgenid_addr = SPK_PC_VMGENID;
	cfg.vmgenid_gpe = SPK_PC_GPE_VMGENID;
	build_ok(&cfg, &info);
	assert_true(dsdt_has(&info, vgen, sizeof(vgen)));
	d = table(&info, info.dsdt, "DSDT");
	/* the GPE scope ends the table: _E00's method, then _E01's */
	assert_memory_equal(d + get32(d + 4) - sizeof(e01), e01, sizeof(e01));
	/* the PC's config has it */
	spk_acpi_pc_config(&cfg, 1, true);
	assert_int_equal(cfg.vmgenid_addr, SPK_PC_VMGENID);
	assert_int_equal(cfg.vmgenid_gpe, SPK_PC_GPE_VMGENID);
	build_ok(&cfg, &info);
	assert_true(dsdt_has(&info, vgen, sizeof(vgen)));
	assert_true(info.end <= SPK_PC_VMGENID);

	/* refused: unaligned, GPE 0 (the button's) or past the block, inside the tables */
	const struct {
		uint64_t addr;
		uint8_t gpe;
		const char *want;
	} bad[] = {
	    {SPK_PC_VMGENID + 8, 1, "vmgenid_addr"}, {UINT64_MAX - 15, 1, "vmgenid_addr"},
	    {SPK_PC_VMGENID, 0, "vmgenid_gpe"},      {SPK_PC_VMGENID, 16, "vmgenid_gpe"},
	    {BASE + 0x40, 1, "inside the tables"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cfg.vmgenid_addr = bad[i].addr;
		cfg.vmgenid_gpe = bad[i].gpe;
		memset(buf, FILL, sizeof(buf));
		assert_int_equal(spk_acpi_build_buf(buf, SPACE, BASE, &cfg, &info), -EINVAL);
		assert_non_null(strstr(spk_last_error(), bad[i].want));
		assert_untouched(0);
	}
}

/* ---- refusals ---- */

/* Every size short of the need: -ENOSPC and not one byte written. */
static void check_every_short_size(const struct spk_acpi_config *cfg)
{
	struct spk_acpi_info info;
	size_t need;

	build_ok(cfg, &info);
	need = info.end - BASE;
	for (size_t size = 0; size < need; size++) {
		memset(buf, FILL, sizeof(buf));
		assert_int_equal(spk_acpi_build_buf(buf, size, BASE, cfg, &info), -ENOSPC);
		assert_untouched(0);
	}
	memset(buf, FILL, sizeof(buf));
	assert_int_equal(spk_acpi_build_buf(buf, need, BASE, cfg, &info), 0);
	assert_untouched(need);
}

static void test_short_buffer(void **state)
{
	struct spk_acpi_config cfg = default_cfg();

	check_every_short_size(&cfg);
	cfg = pci_cfg();
	check_every_short_size(&cfg);
	cfg.ncpus = 255;
	check_every_short_size(&cfg);
	/* NULL with no room is short too, not a crash */
	assert_int_equal(spk_acpi_build_buf(NULL, 0, BASE, &cfg, NULL), -ENOSPC);
}

struct bad_case {
	const char *what; /* the field the message must name */
	void (*apply)(struct spk_acpi_config *c);
};

#define BAD(field, stmt)                                                                           \
	static void bad_##field(struct spk_acpi_config *c)                                         \
	{                                                                                          \
		stmt;                                                                              \
	}
BAD(lapic0, c->lapic_addr = 0)
BAD(lapic64, c->lapic_addr = 0x100000000ull)
BAD(ioapic64, c->ioapic_addr = 0x1fec00000ull)
BAD(evt0, c->pm1a_evt_port = 0)
BAD(evt_top, c->pm1a_evt_port = 0xfffd)
BAD(cnt0, c->pm1a_cnt_port = 0)
BAD(cnt_top, c->pm1a_cnt_port = 0xffff)
BAD(reset0, c->reset_port = 0)
BAD(overlap, c->pm1a_cnt_port = (uint16_t)(c->pm1a_evt_port + 2))
BAD(reset_in_evt, c->reset_port = (uint16_t)(c->pm1a_evt_port + 3))
BAD(gpe0_0, c->gpe0_port = 0)
BAD(gpe0_top, c->gpe0_port = 0xfffd)
BAD(gpe0_in_cnt, c->gpe0_port = (uint16_t)(c->pm1a_cnt_port - 3))
BAD(reset_in_gpe0, c->reset_port = (uint16_t)(c->gpe0_port + 3))
BAD(sci0, c->sci_irq = 0)
BAD(sci2, c->sci_irq = 2)
BAD(sci16, c->sci_irq = 16)
BAD(slp_typ, c->s5_slp_typ = 8)
BAD(com1_port0, c->com1_port = 0)
BAD(com1_top, c->com1_port = 0xfff9)
BAD(com1_irq16, c->com1_irq = 16)
BAD(com1_irq_sci, c->com1_irq = c->sci_irq)
BAD(ecam0, c->pci_ecam = 0)
BAD(ecam_unaligned, c->pci_ecam = SPK_PC_PCI_ECAM + 0x1000)
BAD(ecam_wrap, c->pci_ecam = 0xfffffffffff00000ull)
BAD(mmio_empty, c->pci_mmio_size = 0)
BAD(mmio_wrap, c->pci_mmio_start = 0xfffffffff0000000ull)

static void test_bad_config(void **state)
{
	static const struct bad_case cases[] = {
	    {"lapic_addr", bad_lapic0},     {"lapic_addr", bad_lapic64},
	    {"ioapic_addr", bad_ioapic64},  {"pm1a_evt_port", bad_evt0},
	    {"pm1a_evt_port", bad_evt_top}, {"pm1a_cnt_port", bad_cnt0},
	    {"pm1a_cnt_port", bad_cnt_top}, {"reset_port", bad_reset0},
	    {"overlap", bad_overlap},       {"overlap", bad_reset_in_evt},
	    {"gpe0_port", bad_gpe0_0},      {"gpe0_port", bad_gpe0_top},
	    {"overlap", bad_gpe0_in_cnt},   {"overlap", bad_reset_in_gpe0},
	    {"sci_irq", bad_sci0},          {"sci_irq", bad_sci2},
	    {"sci_irq", bad_sci16},         {"s5_slp_typ", bad_slp_typ},
	    {"com1_port", bad_com1_port0},  {"com1_port", bad_com1_top},
	    {"com1_irq", bad_com1_irq16},   {"com1_irq", bad_com1_irq_sci},
	    {"pci_ecam", bad_ecam0},        {"pci_ecam", bad_ecam_unaligned},
	    {"pci_ecam", bad_ecam_wrap},    {"pci_mmio", bad_mmio_empty},
	    {"pci_mmio", bad_mmio_wrap},
	};
	struct spk_acpi_info info;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct spk_acpi_config cfg = pci_cfg();

		cases[i].apply(&cfg);
		memset(buf, FILL, sizeof(buf));
		if (spk_acpi_build_buf(buf, SPACE, BASE, &cfg, &info) != -EINVAL)
			fail_msg("case %zu (%s) was not refused", i, cases[i].what);
		assert_error_mentions(cases[i].what);
		assert_untouched(0);
	}
}

/* Fields that only matter with com1 / pci are not checked without them. */
static void test_unused_fields_ignored(void **state)
{
	struct spk_acpi_config cfg = default_cfg();
	struct spk_acpi_info info;

	cfg.com1 = false;
	cfg.com1_port = 0;
	cfg.com1_irq = 99;
	cfg.pci_mmio_start = UINT64_MAX;
	cfg.pci_mmio_size = UINT64_MAX;
	build_ok(&cfg, &info);
	assert_false(dsdt_has(&info, "COM1", 4));
}

static void test_bad_base(void **state)
{
	struct spk_acpi_config cfg = default_cfg();
	struct spk_acpi_info info;

	memset(buf, FILL, sizeof(buf));
	assert_int_equal(spk_acpi_build_buf(buf, SPACE, BASE + 8, &cfg, &info), -EINVAL);
	assert_error_mentions("aligned");
	assert_int_equal(spk_acpi_build_buf(buf, SPACE, 0xffffffffffffff00ull, &cfg, &info),
	                 -EINVAL);
	assert_error_mentions("wrap");
	assert_int_equal(spk_acpi_build_buf(buf, SPACE, BASE, NULL, &info), -EINVAL);
	assert_int_equal(spk_acpi_build_buf(NULL, SPACE, BASE, &cfg, &info), -EINVAL);
	assert_untouched(0);
}

static void test_info_optional(void **state)
{
	struct spk_acpi_config cfg = default_cfg();

	memset(buf, FILL, sizeof(buf));
	assert_int_equal(spk_acpi_build_buf(buf, SPACE, BASE, &cfg, NULL), 0);
	assert_memory_equal(buf, "RSD PTR ", 8);
}

/* ---- into guest memory ---- */

static void test_build_into_guest(void **state)
{
	struct spk_acpi_config cfg = pci_cfg();
	struct spk_acpi_info info, want;
	struct spk_mem *mem;
	uint8_t *ram = calloc(1, SPK_PC_ACPI_END);
	uint8_t *rom = calloc(1, 0x1000);

	assert_non_null(ram);
	assert_non_null(rom);
	assert_int_equal(spk_mem_new(&mem), 0);
	assert_int_equal(spk_mem_add(mem, 0, SPK_PC_ACPI_END, SPK_MEM_RAM, ram, "ram"), 0);
	assert_int_equal(spk_mem_add(mem, 0x200000, 0x1000, SPK_MEM_READONLY, rom, "rom"), 0);

	assert_int_equal(spk_acpi_build(mem, BASE, SPK_PC_ACPI_END, &cfg, &info), 0);
	build_ok(&cfg, &want);
	assert_memory_equal(&info, &want, sizeof(info));
	assert_memory_equal(ram + BASE, buf, info.end - BASE);

	/* read-only memory is fine for a loader; too little of it is not */
	assert_int_equal(spk_acpi_build(mem, 0x200000, 0x201000, &cfg, &info), 0);
	assert_memory_equal(rom, "RSD PTR ", 8);
	assert_int_equal(spk_acpi_build(mem, 0x200000, 0x200100, &cfg, &info), -ENOSPC);

	/* outside memory, or across its end */
	assert_int_equal(spk_acpi_build(mem, 0x300000, 0x310000, &cfg, &info), -EFAULT);
	assert_error_mentions("0x300000");
	assert_int_equal(spk_acpi_build(mem, BASE, SPK_PC_ACPI_END + 16, &cfg, &info), -EFAULT);
	/* empty or reversed */
	assert_int_equal(spk_acpi_build(mem, BASE, BASE, &cfg, &info), -EINVAL);
	assert_int_equal(spk_acpi_build(mem, BASE, BASE - 16, &cfg, &info), -EINVAL);
	assert_int_equal(spk_acpi_build(NULL, BASE, SPK_PC_ACPI_END, &cfg, &info), -EINVAL);

	spk_mem_free(mem);
	free(ram);
	free(rom);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rsdp),
	    cmocka_unit_test(test_rsdp_found_by_scan),
	    cmocka_unit_test(test_xsdt),
	    cmocka_unit_test(test_fadt),
	    cmocka_unit_test(test_facs),
	    cmocka_unit_test(test_fadt_above_4g),
	    cmocka_unit_test(test_madt),
	    cmocka_unit_test(test_ncpus_refused),
	    cmocka_unit_test(test_dsdt),
	    cmocka_unit_test(test_dsdt_without_devices),
	    cmocka_unit_test(test_pci),
	    cmocka_unit_test(test_pci_high),
	    cmocka_unit_test(test_pci_prt),
	    cmocka_unit_test(test_vmgenid),
	    cmocka_unit_test(test_short_buffer),
	    cmocka_unit_test(test_bad_config),
	    cmocka_unit_test(test_unused_fields_ignored),
	    cmocka_unit_test(test_bad_base),
	    cmocka_unit_test(test_info_optional),
	    cmocka_unit_test(test_build_into_guest),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
