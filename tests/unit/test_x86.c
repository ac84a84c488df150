/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The long-mode builder without KVM (spk_x86_build_long_mode): identity
 * page tables (every 2 MiB page maps its own address with present,
 * writable, user, large; nothing beyond map_size; the 2 MiB page holding
 * the tables in 4 KiB pages, the tables' own supervisor-only), the GDT's
 * descriptors for CPL0/CPL3 code and data and the TSS, the TSS's closed
 * I/O bitmap and spk_x86_long_mode_allow_ports(), and the refusals
 * (alignment, sizes, no RAM).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <sparkler/mem.h>
#include <sparkler/x86.h>

#define PAGE 0x1000ull
#define RAM_SIZE (1ull << 20)
#define TABLES 0x10000ull
#define PTE_FLAGS 0x7ull       /* present, writable, user */
#define PTE_LARGE 0x80ull      /* 2 MiB page */

struct fixture {
	struct spk_mem *mem;
	uint8_t *ram;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->ram = calloc(1, RAM_SIZE);
	assert_non_null(f->ram);
	memset(f->ram, 0xcc, RAM_SIZE); /* the builder must clear what it uses */
	assert_int_equal(spk_mem_new(&f->mem), 0);
	assert_int_equal(spk_mem_add(f->mem, 0, RAM_SIZE, SPK_MEM_RAM, f->ram, "ram"), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	spk_mem_free(f->mem);
	free(f->ram);
	free(f);
	return 0;
}

static uint64_t q(const struct fixture *f, uint64_t gpa)
{
	uint64_t v;

	assert_true(gpa + 8 <= RAM_SIZE);
	memcpy(&v, f->ram + gpa, 8);
	return v;
}

/* map_size: 3 GiB + 2 MiB, so the last page directory is almost empty */
static void test_identity_tables(void **state)
{
	struct fixture *f = *state;
	const uint64_t map = (3ull << 30) + (2ull << 20);
	struct spk_x86_long_mode lm;

	assert_int_equal(spk_x86_build_long_mode(f->mem, TABLES, map, &lm), 0);
	assert_int_equal(lm.cr3, TABLES);
	assert_int_equal(lm.map_size, map);
	/* PML4: one entry, to the PDPT in the next page */
	assert_int_equal(q(f, TABLES), (TABLES + PAGE) | PTE_FLAGS);
	for (uint64_t i = 1; i < 512; i++)
		assert_int_equal(q(f, TABLES + 8 * i), 0);
	/* PDPT: four PDs (1 GiB each), then nothing */
	for (uint64_t i = 0; i < 512; i++) {
		uint64_t want = i < 4 ? (TABLES + (2 + i) * PAGE) | PTE_FLAGS : 0;

		assert_int_equal(q(f, TABLES + PAGE + 8 * i), want);
	}
	/* PDs: each 2 MiB page maps its own address, up to map_size; the
	 * first (where the tables are) through a 4 KiB page table */
	const uint64_t size = spk_x86_long_mode_size(map);
	const uint64_t pt = TABLES + size - 2 * PAGE;
	for (uint64_t i = 0; i < 4; i++)
		for (uint64_t j = 0; j < 512; j++) {
			uint64_t addr = (i << 30) | (j << 21);
			uint64_t want = addr < map ? addr | PTE_FLAGS | PTE_LARGE : 0;

			if (addr == 0)
				want = pt | PTE_FLAGS;
			assert_int_equal(q(f, TABLES + (2 + i) * PAGE + 8 * j), want);
		}
	/* the 4 KiB pages: user, but for the tables' own pages */
	for (uint64_t j = 0; j < 512; j++) {
		uint64_t addr = j * PAGE;
		bool table = addr >= TABLES && addr < TABLES + size;

		assert_int_equal(q(f, pt + 8 * j), addr | (table ? 0x3ull : PTE_FLAGS));
	}
	assert_int_equal(size % PAGE, 0);
	assert_true(lm.gdt_base >= TABLES + 6 * PAGE);
	assert_true(lm.tss_base + 0x68 + 8193 <= TABLES + size);
}

struct desc {
	uint64_t base;
	uint32_t limit;
	unsigned type, s, dpl, p, l, db, g;
};

static struct desc decode(uint64_t d)
{
	return (struct desc){
		.base = ((d >> 16) & 0xffffff) | ((d >> 56) << 24),
		.limit = (uint32_t)((d & 0xffff) | (((d >> 48) & 0xf) << 16)),
		.type = (unsigned)(d >> 40) & 0xf,
		.s = (unsigned)(d >> 44) & 1,
		.dpl = (unsigned)(d >> 45) & 3,
		.p = (unsigned)(d >> 47) & 1,
		.l = (unsigned)(d >> 53) & 1,
		.db = (unsigned)(d >> 54) & 1,
		.g = (unsigned)(d >> 55) & 1,
	};
}

static void check_seg(const struct fixture *f, const struct spk_x86_long_mode *lm,
		      uint16_t selector, bool code, unsigned dpl)
{
	struct desc d = decode(q(f, lm->gdt_base + (selector & ~7u)));

	assert_int_equal(selector & 3, dpl); /* the selector's RPL is its DPL */
	assert_int_equal(d.p, 1);
	assert_int_equal(d.s, 1);
	assert_int_equal(d.dpl, dpl);
	assert_int_equal(d.base, 0);
	assert_int_equal(d.limit, 0xfffff);
	assert_int_equal(d.g, 1);
	if (code) {
		assert_int_equal(d.type & 0xa, 0xa); /* code, readable */
		assert_int_equal(d.l, 1);            /* 64-bit */
		assert_int_equal(d.db, 0);           /* L=1 needs D=0 */
	} else {
		assert_int_equal(d.type & 0xa, 0x2); /* data, writable */
		assert_int_equal(d.db, 1);
	}
}

static void test_gdt_and_tss(void **state)
{
	struct fixture *f = *state;
	struct spk_x86_long_mode lm;

	assert_int_equal(spk_x86_build_long_mode(f->mem, TABLES, 4ull << 30, &lm), 0);
	assert_int_equal(lm.gdt_limit, 7 * 8 - 1);
	assert_int_equal(lm.gdt_base % 8, 0);
	assert_int_equal(q(f, lm.gdt_base), 0); /* the null descriptor */
	check_seg(f, &lm, SPK_X86_SEL_CODE0, true, 0);
	check_seg(f, &lm, SPK_X86_SEL_DATA0, false, 0);
	check_seg(f, &lm, SPK_X86_SEL_CODE3, true, 3);
	check_seg(f, &lm, SPK_X86_SEL_DATA3, false, 3);
	/* syscall/sysret order: user data right below user code */
	assert_int_equal((SPK_X86_SEL_DATA3 & ~3) + 8, SPK_X86_SEL_CODE3 & ~3);

	/* the TSS: a 16-byte system descriptor with the full base */
	uint64_t lo = q(f, lm.gdt_base + SPK_X86_SEL_TSS), hi = q(f, lm.gdt_base + SPK_X86_SEL_TSS + 8);
	struct desc t = decode(lo);
	assert_int_equal(t.s, 0);
	assert_int_equal(t.type, 9); /* 64-bit available TSS */
	assert_int_equal(t.p, 1);
	assert_int_equal(t.dpl, 0);
	assert_int_equal(t.base | (hi << 32), lm.tss_base);
	assert_int_equal(t.limit, 0x68 + 8192 + 1 - 1);
	/* I/O map base right after the TSS; every port closed, then 0xff */
	uint16_t iomap;
	memcpy(&iomap, f->ram + lm.tss_base + 0x66, 2);
	assert_int_equal(iomap, 0x68);
	for (uint64_t i = 0; i < 8192; i++)
		assert_int_equal(f->ram[lm.tss_base + 0x68 + i], 0xff);
	assert_int_equal(f->ram[lm.tss_base + 0x68 + 8192], 0xff);
	/* opening ports clears exactly their bits */
	assert_int_equal(spk_x86_long_mode_allow_ports(f->mem, &lm, 0x3f8, 8), 0);
	assert_int_equal(spk_x86_long_mode_allow_ports(f->mem, &lm, 0xe4, 1), 0);
	assert_int_equal(spk_x86_long_mode_allow_ports(f->mem, &lm, 0xffff, 1), 0);
	for (uint32_t port = 0; port < 0x10000; port++) {
		bool open = (port >= 0x3f8 && port < 0x400) || port == 0xe4 || port == 0xffff;
		unsigned bit = (f->ram[lm.tss_base + 0x68 + port / 8] >> (port % 8)) & 1;

		assert_int_equal(bit, open ? 0 : 1);
	}
	assert_int_equal(f->ram[lm.tss_base + 0x68 + 8192], 0xff);
	/* ranges that start and end inside a byte, span whole bytes, or cover
	 * every port: exactly their bits, never the byte after the map */
	static const uint32_t ranges[][2] = {{0x1003, 0x25}, {0x2000, 0x40}, {0x3005, 2},
	                                     {0x4007, 1},    {0x5001, 0x7},  {0x6000, 0x10000 - 0x6000}};
	for (size_t r = 0; r < sizeof(ranges) / sizeof(ranges[0]); r++) {
		memset(f->ram + lm.tss_base + 0x68, 0xff, 8192);
		assert_int_equal(spk_x86_long_mode_allow_ports(f->mem, &lm, ranges[r][0], ranges[r][1]),
		                 0);
		for (uint32_t port = 0; port < 0x10000; port++) {
			bool open = port >= ranges[r][0] && port < ranges[r][0] + ranges[r][1];
			unsigned bit = (f->ram[lm.tss_base + 0x68 + port / 8] >> (port % 8)) & 1;

			assert_int_equal(bit, open ? 0 : 1);
		}
		assert_int_equal(f->ram[lm.tss_base + 0x68 + 8192], 0xff);
	}
	assert_int_equal(spk_x86_long_mode_allow_ports(f->mem, &lm, 0xffff, 2), -EINVAL);
	assert_int_equal(spk_x86_long_mode_allow_ports(f->mem, &lm, 0x10000, 1), -EINVAL);
	assert_int_equal(spk_x86_long_mode_allow_ports(f->mem, &lm, 0x80, 0), -EINVAL);
	assert_int_equal(spk_x86_long_mode_allow_ports(NULL, &lm, 0x80, 1), -EINVAL);
	assert_int_equal(spk_x86_long_mode_allow_ports(f->mem, NULL, 0x80, 1), -EINVAL);
	const struct spk_x86_long_mode zero = {0};
	assert_int_equal(spk_x86_long_mode_allow_ports(f->mem, &zero, 0x80, 1), -EINVAL);
	/* rsp0 and the rest of the TSS start zeroed */
	for (uint64_t i = 0; i < 0x66; i++)
		assert_int_equal(f->ram[lm.tss_base + i], 0);
}

static void test_refusals(void **state)
{
	struct fixture *f = *state;
	struct spk_x86_long_mode lm;

	assert_int_equal(spk_x86_build_long_mode(f->mem, TABLES + 8, 4ull << 30, &lm), -EINVAL);
	assert_int_equal(spk_x86_build_long_mode(f->mem, TABLES, 0, &lm), -EINVAL);
	assert_int_equal(spk_x86_build_long_mode(f->mem, TABLES, 3ull << 20, &lm), -EINVAL);
	assert_int_equal(spk_x86_build_long_mode(f->mem, TABLES, SPK_X86_MAP_MAX + (2ull << 20), &lm),
			 -EINVAL);
	assert_int_equal(spk_x86_build_long_mode(NULL, TABLES, 4ull << 30, &lm), -EINVAL);
	assert_int_equal(spk_x86_build_long_mode(f->mem, TABLES, 4ull << 30, NULL), -EINVAL);
	/* no RAM there, or not enough before its end: -EFAULT, nothing written */
	assert_int_equal(spk_x86_build_long_mode(f->mem, RAM_SIZE, 4ull << 30, &lm), -EFAULT);
	assert_int_equal(spk_x86_build_long_mode(f->mem, RAM_SIZE - PAGE, 4ull << 30, &lm), -EFAULT);
	assert_int_equal(f->ram[RAM_SIZE - PAGE], 0xcc);
	assert_int_equal(spk_x86_build_long_mode(f->mem, ~0xfffull, 4ull << 30, &lm), -EFAULT);
	/* the largest map fits when there is room for its tables */
	assert_true(spk_x86_long_mode_size(SPK_X86_MAP_MAX) <= RAM_SIZE - TABLES);
	assert_int_equal(spk_x86_build_long_mode(f->mem, TABLES, SPK_X86_MAP_MAX, &lm), 0);
	assert_int_equal(q(f, TABLES + PAGE + 8 * 63), (TABLES + 65 * PAGE) | PTE_FLAGS);
	assert_true(spk_x86_long_mode_size(SPK_X86_MAP_MAX) < (2ull << 20)); /* <= 2 PTs */
	assert_int_equal(q(f, TABLES + PAGE + 8 * 64), 0);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_identity_tables),
		T(test_gdt_and_tss),
		T(test_refusals),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
#undef T
}
