/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The device tree writer: a small tree byte for byte, every refusal (order,
 * names, sizes, overflow), and the arm64 machine's tree read back by the
 * real device tree compiler (dtc -I dtb -O dts; skipped without dtc).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <sparkler/arm64_boot.h>
#include <sparkler/fdt.h>
#include <sparkler/log.h>

static uint32_t be32_at(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/*
 * / { #address-cells = <2>; compatible = "a"; n@1 { reg = <1 2>; }; };
 * with /memreserve/ 0x1000 0x2000, by hand from the specification.
 */
static const uint8_t small_tree[] = {
    /* header */
    0xd0,
    0x0d,
    0xfe,
    0xed,
    0,
    0,
    0,
    182, /* magic, totalsize */
    0,
    0,
    0,
    72,
    0,
    0,
    0,
    152, /* off_dt_struct, off_dt_strings */
    0,
    0,
    0,
    40,
    0,
    0,
    0,
    17, /* off_mem_rsvmap, version */
    0,
    0,
    0,
    16,
    0,
    0,
    0,
    3, /* last_comp_version, boot_cpuid_phys */
    0,
    0,
    0,
    30,
    0,
    0,
    0,
    80, /* size_dt_strings, size_dt_struct */
    /* memory reservations */
    0,
    0,
    0,
    0,
    0,
    0,
    0x10,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0x20,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    /* structure */
    0,
    0,
    0,
    1,
    0,
    0,
    0,
    0, /* BEGIN_NODE "" */
    0,
    0,
    0,
    3,
    0,
    0,
    0,
    4,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    2, /* #address-cells */
    0,
    0,
    0,
    3,
    0,
    0,
    0,
    2,
    0,
    0,
    0,
    15,
    'a',
    0,
    0,
    0, /* compatible */
    0,
    0,
    0,
    1,
    'n',
    '@',
    '1',
    0, /* BEGIN_NODE n@1 */
    0,
    0,
    0,
    3,
    0,
    0,
    0,
    8,
    0,
    0,
    0,
    26,
    0,
    0,
    0,
    1,
    0,
    0,
    0,
    2, /* reg */
    0,
    0,
    0,
    2,
    0,
    0,
    0,
    2,
    0,
    0,
    0,
    9, /* END_NODE x2, END */
    /* strings */
    '#',
    'a',
    'd',
    'd',
    'r',
    'e',
    's',
    's',
    '-',
    'c',
    'e',
    'l',
    'l',
    's',
    0,
    'c',
    'o',
    'm',
    'p',
    'a',
    't',
    'i',
    'b',
    'l',
    'e',
    0,
    'r',
    'e',
    'g',
    0,
};

static void test_small_tree_bytes(void **state)
{
	struct spk_fdt *f;
	const void *blob, *again;
	size_t size, size2;
	const uint64_t reg[2] = {1, 2};

	assert_int_equal(spk_fdt_new(4096, &f), 0);
	assert_int_equal(spk_fdt_reserve(f, 0x1000, 0x2000), 0);
	assert_int_equal(spk_fdt_begin_node(f, ""), 0);
	assert_int_equal(spk_fdt_prop_u32(f, "#address-cells", 2), 0);
	assert_int_equal(spk_fdt_prop_string(f, "compatible", "a"), 0);
	assert_int_equal(spk_fdt_begin_node(f, "n@1"), 0);
	assert_int_equal(spk_fdt_prop_reg(f, "reg", reg, 1, 1, 1), 0);
	assert_int_equal(spk_fdt_end_node(f), 0);
	assert_int_equal(spk_fdt_end_node(f), 0);
	assert_int_equal(spk_fdt_finish(f, 3, &blob, &size), 0);
	assert_int_equal(size, sizeof(small_tree));
	assert_memory_equal(blob, small_tree, sizeof(small_tree));
	/* a second finish gives the same blob; nothing can be added after */
	assert_int_equal(spk_fdt_finish(f, 3, &again, &size2), 0);
	assert_ptr_equal(again, blob);
	assert_int_equal(size2, size);
	assert_int_equal(spk_fdt_prop_u32(f, "x", 1), -EINVAL);
	spk_fdt_free(f);
}

static void test_values(void **state)
{
	struct spk_fdt *f;
	const void *blob;
	size_t size;
	const char *list[] = {"arm,psci-1.0", "arm,psci-0.2"};
	const uint32_t cells[3] = {0, 33, 4};
	const uint64_t reg[4] = {0x40000000, 0x20000000, 0x100000000ull, 0x1000};
	const uint8_t *b, *p;
	uint32_t ph1, ph2;

	assert_int_equal(spk_fdt_new(4096, &f), 0);
	ph1 = spk_fdt_phandle(f);
	ph2 = spk_fdt_phandle(f);
	assert_int_equal(ph1, 1);
	assert_int_equal(ph2, 2);
	assert_int_equal(spk_fdt_begin_node(f, ""), 0);
	assert_int_equal(spk_fdt_prop_u64(f, "u64", 0x0102030405060708ull), 0);
	assert_int_equal(spk_fdt_prop_strings(f, "compatible", list, 2), 0);
	assert_int_equal(spk_fdt_prop_cells(f, "interrupts", cells, 3), 0);
	assert_int_equal(spk_fdt_prop_reg(f, "reg", reg, 2, 2, 2), 0);
	assert_int_equal(spk_fdt_prop_empty(f, "ranges"), 0);
	assert_int_equal(spk_fdt_prop_u32(f, "phandle", ph1), 0);
	assert_int_equal(spk_fdt_end_node(f), 0);
	assert_int_equal(spk_fdt_finish(f, 0, &blob, &size), 0);
	b = blob;
	assert_int_equal(be32_at(b + 4), size);
	p = b + be32_at(b + 8) + 8; /* past BEGIN_NODE "" */
	/* u64 */
	assert_int_equal(be32_at(p), 3);
	assert_int_equal(be32_at(p + 4), 8);
	assert_int_equal(be32_at(p + 12), 0x01020304);
	assert_int_equal(be32_at(p + 16), 0x05060708);
	p += 20;
	/* the string list, NUL-separated, padded to 4 */
	assert_int_equal(be32_at(p + 4), 26);
	assert_memory_equal(p + 12, "arm,psci-1.0\0arm,psci-0.2\0", 26);
	p += 12 + 28;
	assert_int_equal(be32_at(p + 4), 12);
	assert_int_equal(be32_at(p + 16), 33);
	p += 24;
	/* two pairs of two cells each */
	assert_int_equal(be32_at(p + 4), 32);
	assert_int_equal(be32_at(p + 16), 0x40000000);
	assert_int_equal(be32_at(p + 24), 0x20000000);
	assert_int_equal(be32_at(p + 28), 1);
	assert_int_equal(be32_at(p + 32), 0);
	assert_int_equal(be32_at(p + 40), 0x1000);
	p += 44;
	assert_int_equal(be32_at(p + 4), 0); /* ranges: empty */
	p += 12;
	assert_int_equal(be32_at(p + 12), 1); /* phandle */
	spk_fdt_free(f);
}

/* Each refusal is sticky: the writer returns it from then on. */
static void expect_sticky(struct spk_fdt *f, int err)
{
	const void *blob;
	size_t size;

	assert_int_equal(spk_fdt_prop_u32(f, "later", 1), err);
	assert_int_equal(spk_fdt_finish(f, 0, &blob, &size), err);
	assert_non_null(spk_last_error());
	spk_fdt_free(f);
}

static struct spk_fdt *with_root(void)
{
	struct spk_fdt *f;

	assert_int_equal(spk_fdt_new(4096, &f), 0);
	assert_int_equal(spk_fdt_begin_node(f, ""), 0);
	return f;
}

static void test_refusals(void **state)
{
	struct spk_fdt *f;
	const void *blob;
	size_t size;
	const uint64_t big[2] = {0x100000000ull, 1};
	const char *bad_list[] = {"a", ""};
	char long_name[40];

	/* bad arguments */
	assert_int_equal(spk_fdt_new(4096, NULL), -EINVAL);
	assert_int_equal(spk_fdt_new(10, &f), -EINVAL);
	assert_null(f);
	assert_int_equal(spk_fdt_new(SPK_FDT_MAX_SIZE + 1, &f), -EINVAL);
	assert_int_equal(spk_fdt_begin_node(NULL, ""), -EINVAL);
	assert_int_equal(spk_fdt_finish(NULL, 0, &blob, &size), -EINVAL);
	assert_int_equal(spk_fdt_phandle(NULL), 0);
	spk_fdt_free(NULL);

	/* the first node must be the root, and only it is "" */
	assert_int_equal(spk_fdt_new(4096, &f), 0);
	assert_int_equal(spk_fdt_begin_node(f, "cpus"), -EINVAL);
	expect_sticky(f, -EINVAL);
	f = with_root();
	assert_int_equal(spk_fdt_begin_node(f, ""), -EINVAL);
	expect_sticky(f, -EINVAL);
	/* a second root */
	f = with_root();
	assert_int_equal(spk_fdt_end_node(f), 0);
	assert_int_equal(spk_fdt_begin_node(f, ""), -EINVAL);
	expect_sticky(f, -EINVAL);
	/* too many ends; a property outside the root */
	assert_int_equal(spk_fdt_new(4096, &f), 0);
	assert_int_equal(spk_fdt_end_node(f), -EINVAL);
	expect_sticky(f, -EINVAL);
	assert_int_equal(spk_fdt_new(4096, &f), 0);
	assert_int_equal(spk_fdt_prop_u32(f, "x", 1), -EINVAL);
	expect_sticky(f, -EINVAL);
	/* finish with a node open, or with no root */
	f = with_root();
	assert_int_equal(spk_fdt_finish(f, 0, &blob, &size), -EINVAL);
	spk_fdt_free(f);
	assert_int_equal(spk_fdt_new(4096, &f), 0);
	assert_int_equal(spk_fdt_finish(f, 0, &blob, &size), -EINVAL);
	spk_fdt_free(f);

	/* node names */
	const char *bad_nodes[] = {"a b", "@1", "n@", "x/y", "n@1@", "\xff"};
	for (size_t i = 0; i < sizeof(bad_nodes) / sizeof(bad_nodes[0]); i++) {
		f = with_root();
		assert_int_equal(spk_fdt_begin_node(f, bad_nodes[i]), -EINVAL);
		expect_sticky(f, -EINVAL);
	}
	memset(long_name, 'a', 32);
	long_name[32] = 0;
	f = with_root();
	assert_int_equal(spk_fdt_begin_node(f, long_name), -EINVAL);
	expect_sticky(f, -EINVAL);
	long_name[31] = 0; /* 31: the longest allowed */
	f = with_root();
	assert_int_equal(spk_fdt_begin_node(f, long_name), 0);
	spk_fdt_free(f);
	f = with_root();
	assert_int_equal(spk_fdt_begin_node(f, NULL), -EINVAL);
	expect_sticky(f, -EINVAL);

	/* property names and values */
	const char *bad_props[] = {"", "a b", "x=y", "a\n"};
	for (size_t i = 0; i < sizeof(bad_props) / sizeof(bad_props[0]); i++) {
		f = with_root();
		assert_int_equal(spk_fdt_prop_u32(f, bad_props[i], 1), -EINVAL);
		expect_sticky(f, -EINVAL);
	}
	f = with_root();
	assert_int_equal(spk_fdt_prop_u32(f, long_name, 1), 0); /* 31 */
	long_name[31] = 'a';
	assert_int_equal(spk_fdt_prop_u32(f, long_name, 1), -EINVAL); /* 32 */
	expect_sticky(f, -EINVAL);
	f = with_root();
	assert_int_equal(spk_fdt_prop(f, "x", NULL, 4), -EINVAL);
	expect_sticky(f, -EINVAL);
	f = with_root();
	assert_int_equal(spk_fdt_prop_string(f, "x", NULL), -EINVAL);
	expect_sticky(f, -EINVAL);
	f = with_root();
	assert_int_equal(spk_fdt_prop_strings(f, "x", bad_list, 2), -EINVAL);
	expect_sticky(f, -EINVAL);
	f = with_root();
	assert_int_equal(spk_fdt_prop_strings(f, "x", NULL, 0), -EINVAL);
	expect_sticky(f, -EINVAL);
	/* the same property twice in a node; the same name in two nodes is fine */
	f = with_root();
	assert_int_equal(spk_fdt_prop_u32(f, "a", 1), 0);
	assert_int_equal(spk_fdt_prop_u32(f, "b", 1), 0);
	assert_int_equal(spk_fdt_begin_node(f, "c"), 0);
	assert_int_equal(spk_fdt_prop_u32(f, "a", 1), 0);
	assert_int_equal(spk_fdt_end_node(f), 0);
	assert_int_equal(spk_fdt_begin_node(f, "d"), 0);
	assert_int_equal(spk_fdt_prop_u32(f, "b", 1), 0);
	assert_int_equal(spk_fdt_prop_u32(f, "b", 2), -EINVAL);
	expect_sticky(f, -EINVAL);
	/* a property after a child node */
	f = with_root();
	assert_int_equal(spk_fdt_begin_node(f, "c"), 0);
	assert_int_equal(spk_fdt_end_node(f), 0);
	assert_int_equal(spk_fdt_prop_u32(f, "late", 1), -EINVAL);
	expect_sticky(f, -EINVAL);
	/* reg: a value too big for one cell, a size with no size cells, bad cell counts */
	f = with_root();
	assert_int_equal(spk_fdt_prop_reg(f, "reg", big, 1, 1, 1), -EINVAL);
	expect_sticky(f, -EINVAL);
	f = with_root();
	assert_int_equal(spk_fdt_prop_reg(f, "reg", big, 1, 2, 0), -EINVAL);
	expect_sticky(f, -EINVAL);
	f = with_root();
	assert_int_equal(spk_fdt_prop_reg(f, "reg", big, 1, 3, 2), -EINVAL);
	expect_sticky(f, -EINVAL);
	f = with_root();
	assert_int_equal(spk_fdt_prop_reg(f, "reg", NULL, 1, 2, 2), -EINVAL);
	expect_sticky(f, -EINVAL);
	/* memreserve: empty or wrapping */
	assert_int_equal(spk_fdt_new(4096, &f), 0);
	assert_int_equal(spk_fdt_reserve(f, 0x1000, 0), -EINVAL);
	expect_sticky(f, -EINVAL);
	assert_int_equal(spk_fdt_new(4096, &f), 0);
	assert_int_equal(spk_fdt_reserve(f, UINT64_MAX, 2), -EINVAL);
	expect_sticky(f, -EINVAL);
}

static void test_depth(void **state)
{
	struct spk_fdt *f = with_root();

	for (int i = 0; i < SPK_FDT_MAX_DEPTH; i++)
		assert_int_equal(spk_fdt_begin_node(f, "n"), 0);
	assert_int_equal(spk_fdt_begin_node(f, "n"), -E2BIG);
	expect_sticky(f, -E2BIG);
}

/* The size bound: a tree is refused at the call that would overflow it,
 * whatever that call adds, and a tree of exactly the bound fits. */
static void test_size_bound(void **state)
{
	struct spk_fdt *f;
	const void *blob;
	size_t size, exact;
	static uint8_t big[8192];
	const char *list[] = {"abc", "def"};

	/* exactly: header 40 + rsv 16 + BEGIN "" 8 + PROP "x" 12 + value + END_NODE 4 +
	 * END 4 + strings "x\0" 2 */
	exact = 40 + 16 + 8 + 12 + 100 + 4 + 4 + 2;
	assert_int_equal(spk_fdt_new(exact, &f), 0);
	assert_int_equal(spk_fdt_begin_node(f, ""), 0);
	assert_int_equal(spk_fdt_prop(f, "x", big, 100), 0);
	assert_int_equal(spk_fdt_end_node(f), 0);
	assert_int_equal(spk_fdt_finish(f, 0, &blob, &size), 0);
	assert_int_equal(size, exact);
	spk_fdt_free(f);
	/* one byte less: the property (4 bytes of padding more) is refused */
	assert_int_equal(spk_fdt_new(exact - 1, &f), 0);
	assert_int_equal(spk_fdt_begin_node(f, ""), 0);
	assert_int_equal(spk_fdt_prop(f, "x", big, 100), 0);
	assert_int_equal(spk_fdt_end_node(f), -E2BIG);
	assert_non_null(strstr(spk_last_error(), "allowed"));
	expect_sticky(f, -E2BIG);
	/* a value larger than the whole tree; strings and cells the same way */
	assert_int_equal(spk_fdt_new(4096, &f), 0);
	assert_int_equal(spk_fdt_begin_node(f, ""), 0);
	assert_int_equal(spk_fdt_prop(f, "x", big, sizeof(big)), -E2BIG);
	expect_sticky(f, -E2BIG);
	assert_int_equal(spk_fdt_new(256, &f), 0);
	assert_int_equal(spk_fdt_begin_node(f, ""), 0);
	int rc = 0, n;
	for (n = 0; n < 100 && !rc; n++) {
		rc = spk_fdt_prop_strings(f, n % 2 ? "a" : "b", list, 2);
		if (!rc && n % 2) /* one node per pair of properties */
			rc = spk_fdt_begin_node(f, "n");
	}
	assert_int_equal(rc, -E2BIG);
	expect_sticky(f, -E2BIG);
	assert_int_equal(spk_fdt_new(256, &f), 0);
	assert_int_equal(spk_fdt_begin_node(f, ""), 0);
	assert_int_equal(spk_fdt_prop_cells(f, "c", (const uint32_t *)big, 1000), -E2BIG);
	expect_sticky(f, -E2BIG);
	/* memory reservations count too, and are bounded in number */
	assert_int_equal(spk_fdt_new(4096, &f), 0);
	for (int i = 0; i < SPK_FDT_MAX_RSV; i++)
		assert_int_equal(spk_fdt_reserve(f, 0x1000ull * i, 0x1000), 0);
	assert_int_equal(spk_fdt_reserve(f, 0, 0x1000), -E2BIG);
	expect_sticky(f, -E2BIG);
	assert_int_equal(spk_fdt_new(40 + 16 + 16 + 4, &f),
	                 0); /* header, one entry, terminator, END */
	assert_int_equal(spk_fdt_reserve(f, 0, 0x1000), 0);
	assert_int_equal(spk_fdt_reserve(f, 0, 0x1000), -E2BIG);
	expect_sticky(f, -E2BIG);
	/* many nodes until the bound: refused, never past it */
	assert_int_equal(spk_fdt_new(1024, &f), 0);
	assert_int_equal(spk_fdt_begin_node(f, ""), 0);
	rc = 0;
	for (n = 0; n < 1000 && !rc; n++) {
		rc = spk_fdt_begin_node(f, "node-with-a-long-name");
		if (!rc)
			rc = spk_fdt_end_node(f);
	}
	assert_int_equal(rc, -E2BIG);
	assert_true(n > 10);
	expect_sticky(f, -E2BIG);
}

static struct spk_arm64_fdt_config virt_config(uint32_t cpus)
{
	return (struct spk_arm64_fdt_config){
	    .n_cpus = cpus,
	    .ram_base = 0x40000000,
	    .ram_size = 512ull << 20,
	    .cmdline = "console=ttyS0 earlycon panic=-1",
	    .initrd_start = 0x5f000000,
	    .initrd_end = 0x5f123456,
	    .gicd_base = 0x08000000,
	    .gicd_size = 0x10000,
	    .gicr_base = 0x080a0000,
	    .gicr_size = 0x20000ull * cpus,
	    .uart_base = 0x09000000,
	    .uart_size = 0x1000,
	    .uart_spi = 1,
	    .rtc_base = 0x09010000,
	    .rtc_size = 0x1000,
	    .rtc_spi = 2,
	    .ecam_base = 0x4010000000ull,
	    .ecam_size = 1 << 20,
	    .pci_mmio_base = 0x10000000,
	    .pci_mmio_size = 0x2eff0000,
	    .pci_spi = 3,
	};
}

static char *slurp(const char *path)
{
	FILE *fp = fopen(path, "r");
	char *buf;
	size_t n;

	if (!fp)
		return NULL;
	buf = calloc(1, 1 << 16);
	n = fread(buf, 1, (1 << 16) - 1, fp);
	buf[n] = 0;
	fclose(fp);
	return buf;
}

/* The arm64 machine's tree, read back by dtc (with its checks on: dtc
 * warns about malformed bindings, and the test wants none). */
static void test_arm64_tree_dtc(void **state)
{
	struct spk_arm64_fdt_config c = virt_config(2);
	static uint8_t buf[SPK_FDT_MAX_SIZE];
	char dtb[] = "/tmp/spk-fdt-XXXXXX", cmd[512], dts[64], err[64];
	size_t size;
	char *text, *warn;
	int fd, st;

	assert_int_equal(spk_arm64_fdt_build(&c, buf, sizeof(buf), &size), 0);
	assert_int_equal(be32_at(buf), SPK_FDT_MAGIC);
	assert_int_equal(be32_at(buf + 4), size);
	if (system("command -v dtc >/dev/null 2>&1")) {
		skip(); /* Debian: device-tree-compiler (scripts/deps.sh test) */
		return;
	}
	fd = mkstemp(dtb);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, buf, size), (ssize_t)size);
	close(fd);
	snprintf(dts, sizeof(dts), "%s.dts", dtb);
	snprintf(err, sizeof(err), "%s.err", dtb);
	snprintf(cmd, sizeof(cmd), "dtc -I dtb -O dts -o %s %s 2>%s", dts, dtb, err);
	st = system(cmd);
	text = slurp(dts);
	warn = slurp(err);
	unlink(dtb);
	unlink(dts);
	unlink(err);
	assert_non_null(text);
	assert_non_null(warn);
	if (st || *warn)
		fprintf(stderr, "dtc said:\n%s\n", warn);
	assert_int_equal(st, 0);
	assert_string_equal(warn, "");
	/* what Linux looks for, as dtc prints it */
	assert_non_null(strstr(text, "compatible = \"linux,dummy-virt\";"));
	assert_non_null(strstr(text, "bootargs = \"console=ttyS0 earlycon panic=-1\";"));
	assert_non_null(strstr(text, "stdout-path = \"/uart@9000000\";"));
	assert_non_null(strstr(text, "linux,initrd-start = <0x00 0x5f000000>;"));
	assert_non_null(strstr(text, "linux,initrd-end = <0x00 0x5f123456>;"));
	assert_non_null(strstr(text, "memory@40000000 {"));
	assert_non_null(strstr(text, "reg = <0x00 0x40000000 0x00 0x20000000>;"));
	assert_non_null(strstr(text, "cpu@0 {"));
	assert_non_null(strstr(text, "cpu@1 {"));
	assert_null(strstr(text, "cpu@2 {"));
	assert_non_null(strstr(text, "enable-method = \"psci\";"));
	assert_non_null(strstr(text, "method = \"hvc\";"));
	assert_non_null(strstr(text, "compatible = \"arm,gic-v3\";"));
	assert_non_null(
	    strstr(text, "reg = <0x00 0x8000000 0x00 0x10000 0x00 0x80a0000 0x00 0x40000>;"));
	assert_non_null(strstr(text, "interrupts = <0x01 0x0d 0x04 0x01 0x0e 0x04 0x01 0x0b 0x04 "
	                             "0x01 0x0a 0x04>;"));
	assert_non_null(strstr(text, "compatible = \"ns16550a\";"));
	assert_non_null(strstr(text, "interrupts = <0x00 0x01 0x04>;"));
	assert_non_null(strstr(text, "pl031@9010000 {"));
	assert_non_null(strstr(text, "compatible = \"arm,pl031\\0arm,primecell\";"));
	assert_non_null(strstr(text, "interrupts = <0x00 0x02 0x04>;"));
	assert_non_null(strstr(text, "clock-names = \"apb_pclk\";"));
	assert_non_null(strstr(text, "compatible = \"fixed-clock\";"));
	assert_non_null(strstr(text, "compatible = \"pci-host-ecam-generic\";"));
	/* slot 1 pin 1 swizzles to the second SPI */
	assert_non_null(strstr(text, "0x800 0x00 0x00 0x01 0x01 0x00 0x00 0x00 0x04 0x04"));
	free(text);
	free(warn);
}

static void test_arm64_tree_refusals(void **state)
{
	struct spk_arm64_fdt_config c;
	static uint8_t buf[SPK_FDT_MAX_SIZE];
	size_t size = 1;

	c = virt_config(0);
	assert_int_equal(spk_arm64_fdt_build(&c, buf, sizeof(buf), &size), -EINVAL);
	assert_int_equal(size, 0);
	c = virt_config(SPK_ARM64_FDT_MAX_CPUS + 1);
	assert_int_equal(spk_arm64_fdt_build(&c, buf, sizeof(buf), &size), -EINVAL);
	c = virt_config(SPK_ARM64_FDT_MAX_CPUS); /* 32 CPUs fit */
	assert_int_equal(spk_arm64_fdt_build(&c, buf, sizeof(buf), &size), 0);
	c = virt_config(1);
	c.initrd_end = c.ram_base + c.ram_size + 1; /* past RAM */
	assert_int_equal(spk_arm64_fdt_build(&c, buf, sizeof(buf), &size), -EINVAL);
	c = virt_config(1);
	c.ram_base = UINT64_MAX - 10; /* wraps */
	assert_int_equal(spk_arm64_fdt_build(&c, buf, sizeof(buf), &size), -EINVAL);
	c = virt_config(1);
	c.uart_spi = 2000;
	assert_int_equal(spk_arm64_fdt_build(&c, buf, sizeof(buf), &size), -EINVAL);
	c = virt_config(1);
	c.rtc_spi = 2000;
	assert_int_equal(spk_arm64_fdt_build(&c, buf, sizeof(buf), &size), -EINVAL);
	c = virt_config(1);
	c.rtc_base = UINT64_MAX - 10; /* wraps */
	assert_int_equal(spk_arm64_fdt_build(&c, buf, sizeof(buf), &size), -EINVAL);
	c = virt_config(1);
	c.ecam_size = 4096; /* less than a bus */
	assert_int_equal(spk_arm64_fdt_build(&c, buf, sizeof(buf), &size), -EINVAL);
	c = virt_config(1);
	c.cmdline = NULL; /* an empty command line is fine */
	assert_int_equal(spk_arm64_fdt_build(&c, buf, sizeof(buf), &size), 0);
	/* a buffer too small for the tree: refused, and nothing past it written */
	c = virt_config(2);
	memset(buf, 0xaa, sizeof(buf));
	assert_int_equal(spk_arm64_fdt_build(&c, buf, 512, &size), -E2BIG);
	assert_int_equal(buf[0], 0xaa);
	assert_int_equal(spk_arm64_fdt_build(&c, buf, 8, &size), -E2BIG);
	assert_int_equal(spk_arm64_fdt_build(NULL, buf, sizeof(buf), &size), -EINVAL);
	assert_int_equal(spk_arm64_fdt_build(&c, NULL, sizeof(buf), &size), -EINVAL);
	assert_int_equal(spk_arm64_fdt_build(&c, buf, sizeof(buf), NULL), -EINVAL);
	/* a command line longer than the tree can hold */
	char *huge = malloc(SPK_FDT_MAX_SIZE + 16);
	memset(huge, 'x', SPK_FDT_MAX_SIZE + 15);
	huge[SPK_FDT_MAX_SIZE + 15] = 0;
	c.cmdline = huge;
	assert_int_equal(spk_arm64_fdt_build(&c, buf, sizeof(buf), &size), -E2BIG);
	free(huge);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_small_tree_bytes),
	    cmocka_unit_test(test_values),
	    cmocka_unit_test(test_refusals),
	    cmocka_unit_test(test_depth),
	    cmocka_unit_test(test_size_bound),
	    cmocka_unit_test(test_arm64_tree_dtc),
	    cmocka_unit_test(test_arm64_tree_refusals),
	};

	spk_log_set(NULL, NULL, SPK_LOG_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
