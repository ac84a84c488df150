// SPDX-License-Identifier: Apache-2.0
/* Guest memory regions and the checked accessor. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <sparkler/log.h>
#include <sparkler/mem.h>

#define PAGE 0x1000

/*
 * The layout of most tests:
 *   [0x1000, 0x2000)   RAM "ram"
 *   [0x2000, 0x3000)   READONLY "rom" (adjacent to ram)
 *   [0x3000, 0x10000)  gap
 *   [0x10000, 0x11000) RAM "high"
 *   [0x20000, 0x22000) UNPOPULATED "lazy"
 */
struct fixture {
	struct spk_mem *mem;
	uint8_t ram[PAGE];
	uint8_t rom[PAGE];
	uint8_t high[PAGE];
	uint8_t lazy[2 * PAGE];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	for (int i = 0; i < PAGE; i++) {
		f->ram[i] = (uint8_t)i;
		f->rom[i] = (uint8_t)(0x80 + i);
	}
	assert_int_equal(spk_mem_new(&f->mem), 0);
	/* Added out of order: the table must sort them. */
	assert_int_equal(spk_mem_add(f->mem, 0x10000, PAGE, SPK_MEM_RAM, f->high, "high"), 0);
	assert_int_equal(spk_mem_add(f->mem, 0x2000, PAGE, SPK_MEM_READONLY, f->rom, "rom"), 0);
	assert_int_equal(spk_mem_add(f->mem, 0x20000, 2 * PAGE, SPK_MEM_UNPOPULATED, NULL, "lazy"),
	                 0);
	assert_int_equal(spk_mem_add(f->mem, 0x1000, PAGE, SPK_MEM_RAM, f->ram, "ram"), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	spk_mem_free(f->mem);
	free(f);
	return 0;
}

static void test_regions_sorted_and_named(void **state)
{
	struct fixture *f = *state;
	const struct spk_mem_region *r;
	static const char *const names[] = {"ram", "rom", "high", "lazy"};

	assert_int_equal(spk_mem_regions(f->mem, &r), 4);
	for (int i = 0; i < 4; i++) {
		assert_string_equal(r[i].name, names[i]);
		if (i > 0)
			assert_true(r[i - 1].gpa < r[i].gpa);
	}
	assert_int_equal(r[3].type, SPK_MEM_UNPOPULATED);
	assert_null(r[3].host);
	assert_ptr_equal(spk_mem_find(f->mem, 0x1fff), &r[0]);
	assert_ptr_equal(spk_mem_find(f->mem, 0x2000), &r[1]);
	assert_null(spk_mem_find(f->mem, 0xfff));
	assert_null(spk_mem_find(f->mem, 0x3000));
	assert_null(spk_mem_find(f->mem, UINT64_MAX));
}

static void test_name_copied_and_truncated(void **unused)
{
	static uint8_t host[PAGE];
	struct spk_mem *mem;
	const struct spk_mem_region *r;
	char name[80];

	assert_int_equal(spk_mem_new(&mem), 0);
	memset(name, 'n', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	assert_int_equal(spk_mem_add(mem, 0, PAGE, SPK_MEM_RAM, host, name), 0);
	name[0] = 'X';
	assert_int_equal(spk_mem_regions(mem, &r), 1);
	assert_int_equal(r[0].name[0], 'n');
	assert_int_equal(strlen(r[0].name), 31);
	spk_mem_free(mem);
}

static void test_add_refusals(void **state)
{
	struct fixture *f = *state;
	uint8_t host[16];

	assert_int_equal(spk_mem_add(f->mem, 0x50000, 0, SPK_MEM_RAM, host, "empty"), -EINVAL);
	assert_int_equal(spk_mem_add(f->mem, UINT64_MAX - 0xfff, 0x2000, SPK_MEM_RAM, host, "wrap"),
	                 -EINVAL);
	assert_int_equal(spk_mem_add(f->mem, 2, UINT64_MAX, SPK_MEM_RAM, host, "wrap2"), -EINVAL);
	assert_int_equal(spk_mem_add(f->mem, 0x50000, PAGE, SPK_MEM_RAM, NULL, "nohost"), -EINVAL);
	assert_int_equal(spk_mem_add(f->mem, 0x50000, PAGE, SPK_MEM_UNPOPULATED, host, "host"),
	                 -EINVAL);
	assert_int_equal(spk_mem_add(f->mem, 0x50000, PAGE, (enum spk_mem_type)7, host, "type"),
	                 -EINVAL);
	assert_int_equal(spk_mem_add(NULL, 0x50000, PAGE, SPK_MEM_RAM, host, "nomem"), -EINVAL);

	/* Overlaps: the message names both regions. */
	assert_int_equal(spk_mem_add(f->mem, 0x1fff, 2, SPK_MEM_RAM, host, "straddle"), -EEXIST);
	assert_non_null(strstr(spk_last_error(), "\"straddle\""));
	assert_non_null(strstr(spk_last_error(), "\"ram\""));
	assert_int_equal(spk_mem_add(f->mem, 0, 0x100000, SPK_MEM_RAM, host, "cover"), -EEXIST);
	assert_int_equal(spk_mem_add(f->mem, 0x21fff, 1, SPK_MEM_RAM, host, "last"), -EEXIST);
	assert_non_null(strstr(spk_last_error(), "\"lazy\""));
	/* Touching, not overlapping, is fine. */
	assert_int_equal(spk_mem_add(f->mem, 0x22000, 16, SPK_MEM_RAM, host, "after"), 0);
	assert_int_equal(spk_mem_add(f->mem, 0xfff0, 16, SPK_MEM_RAM, host, "before"), 0);
	assert_int_equal(spk_mem_regions(f->mem, NULL), 6);
}

static void test_too_many_regions(void **unused)
{
	static uint8_t host[SPK_MEM_MAX_REGIONS + 1][16];
	struct spk_mem *mem;

	assert_int_equal(spk_mem_new(&mem), 0);
	for (int i = SPK_MEM_MAX_REGIONS - 1; i >= 0; i--)
		assert_int_equal(
		    spk_mem_add(mem, (uint64_t)i * 0x100, 16, SPK_MEM_RAM, host[i], "r"), 0);
	assert_int_equal(
	    spk_mem_add(mem, 0x100000, 16, SPK_MEM_RAM, host[SPK_MEM_MAX_REGIONS], "one too many"),
	    -ENOSPC);
	/* Every region still answers at its own address. */
	for (int i = 0; i < SPK_MEM_MAX_REGIONS; i++)
		assert_ptr_equal(spk_mem_ptr(mem, (uint64_t)i * 0x100 + 15, 1, SPK_MEM_W),
		                 &host[i][15]);
	spk_mem_free(mem);
}

static void test_ptr_edges(void **state)
{
	struct fixture *f = *state;

	/* First byte, last byte, and one past each edge. */
	assert_ptr_equal(spk_mem_ptr(f->mem, 0x1000, 1, SPK_MEM_R), &f->ram[0]);
	assert_ptr_equal(spk_mem_ptr(f->mem, 0x1fff, 1, SPK_MEM_W), &f->ram[PAGE - 1]);
	assert_ptr_equal(spk_mem_ptr(f->mem, 0x1000, PAGE, SPK_MEM_R | SPK_MEM_W), f->ram);
	assert_null(spk_mem_ptr(f->mem, 0xfff, 1, SPK_MEM_R));
	assert_null(spk_mem_ptr(f->mem, 0xfff, 2, SPK_MEM_R));
	assert_ptr_equal(spk_mem_ptr(f->mem, 0x10fff, 1, SPK_MEM_R), &f->high[PAGE - 1]);
	assert_null(spk_mem_ptr(f->mem, 0x11000, 1, SPK_MEM_R));
	assert_null(spk_mem_ptr(f->mem, 0x10fff, 2, SPK_MEM_R));
	assert_non_null(strstr(spk_last_error(), "0x10fff"));
	/* A range over two adjacent regions is refused by the pointer API. */
	assert_null(spk_mem_ptr(f->mem, 0x1fff, 2, SPK_MEM_R));
	assert_null(spk_mem_ptr(f->mem, 0x1000, PAGE + 1, SPK_MEM_R));
	/* Length 0 and wrapping sums. */
	assert_null(spk_mem_ptr(f->mem, 0x1000, 0, SPK_MEM_R));
	assert_null(spk_mem_ptr(f->mem, 0x1000, UINT64_MAX, SPK_MEM_R));
	assert_null(spk_mem_ptr(f->mem, UINT64_MAX, 2, SPK_MEM_R));
	assert_null(spk_mem_ptr(f->mem, 0x1000, 1, 0x80));
	assert_null(spk_mem_ptr(NULL, 0x1000, 1, SPK_MEM_R));
}

static void test_readonly_rules(void **state)
{
	struct fixture *f = *state;
	uint8_t b = 0x5a, out = 0;

	assert_ptr_equal(spk_mem_ptr(f->mem, 0x2000, 4, SPK_MEM_R), f->rom);
	assert_null(spk_mem_ptr(f->mem, 0x2000, 4, SPK_MEM_W));
	assert_non_null(strstr(spk_last_error(), "read-only"));
	assert_ptr_equal(spk_mem_ptr(f->mem, 0x2000, 4, SPK_MEM_W | SPK_MEM_LOAD), f->rom);
	assert_ptr_equal(spk_mem_ptr(f->mem, 0x2000, 4, SPK_MEM_LOAD), f->rom);

	assert_int_equal(spk_mem_write(f->mem, 0x2010, &b, 1), -EFAULT);
	assert_int_equal(f->rom[0x10], 0x90);
	assert_int_equal(spk_mem_load(f->mem, 0x2010, &b, 1), 0);
	assert_int_equal(f->rom[0x10], 0x5a);
	assert_int_equal(spk_mem_read(f->mem, 0x2010, &out, 1), 0);
	assert_int_equal(out, 0x5a);
}

static void test_unpopulated_and_populate(void **state)
{
	struct fixture *f = *state;
	uint8_t b = 7, out = 0;
	const struct spk_mem_region *r;

	assert_null(spk_mem_ptr(f->mem, 0x20000, 1, SPK_MEM_R));
	assert_non_null(strstr(spk_last_error(), "not populated"));
	assert_int_equal(spk_mem_read(f->mem, 0x20000, &out, 1), -EFAULT);
	assert_int_equal(spk_mem_write(f->mem, 0x20000, &b, 1), -EFAULT);
	assert_int_equal(spk_mem_load(f->mem, 0x20000, &b, 1), -EFAULT);

	assert_int_equal(spk_mem_populate(f->mem, 0x20001, f->lazy), -ENOENT);
	assert_int_equal(spk_mem_populate(f->mem, 0x30000, f->lazy), -ENOENT);
	assert_int_equal(spk_mem_populate(f->mem, 0x20000, NULL), -EINVAL);
	assert_int_equal(spk_mem_populate(f->mem, 0x20000, f->lazy), 0);
	r = spk_mem_find(f->mem, 0x21fff);
	assert_non_null(r);
	assert_int_equal(r->type, SPK_MEM_RAM);
	assert_ptr_equal(r->host, f->lazy);
	assert_int_equal(spk_mem_write(f->mem, 0x21fff, &b, 1), 0);
	assert_int_equal(f->lazy[2 * PAGE - 1], 7);
	assert_ptr_equal(spk_mem_ptr(f->mem, 0x20000, 2 * PAGE, SPK_MEM_W), f->lazy);
	/* Populated once only; RAM cannot be populated. */
	assert_int_equal(spk_mem_populate(f->mem, 0x20000, f->lazy), -EINVAL);
	assert_int_equal(spk_mem_populate(f->mem, 0x1000, f->lazy), -EINVAL);
}

static void test_copy_spans(void **state)
{
	struct fixture *f = *state;
	uint8_t buf[32], src[32];

	/* Read across ram -> rom (adjacent, both readable). */
	assert_int_equal(spk_mem_read(f->mem, 0x1ff0, buf, 32), 0);
	assert_memory_equal(buf, &f->ram[PAGE - 16], 16);
	assert_memory_equal(buf + 16, f->rom, 16);

	/* A write across them touches read-only memory: nothing copied. */
	memset(src, 0xab, sizeof(src));
	assert_int_equal(spk_mem_write(f->mem, 0x1ff0, src, 32), -EFAULT);
	assert_int_equal(f->ram[PAGE - 16], (uint8_t)(PAGE - 16));
	/* ... but a loader may. */
	assert_int_equal(spk_mem_load(f->mem, 0x1ff0, src, 32), 0);
	assert_int_equal(f->ram[PAGE - 1], 0xab);
	assert_int_equal(f->rom[15], 0xab);
	assert_int_equal(f->rom[16], (uint8_t)(0x80 + 16));

	/* Into the gap after rom: refused, buf untouched. */
	memset(buf, 0xcc, sizeof(buf));
	assert_int_equal(spk_mem_read(f->mem, 0x2ff0, buf, 32), -EFAULT);
	assert_int_equal(buf[0], 0xcc);
	assert_non_null(strstr(spk_last_error(), "0x2ff0"));
	/* Exactly up to the end of rom is fine. */
	assert_int_equal(spk_mem_read(f->mem, 0x2fe0, buf, 32), 0);
	/* Whole regions back to back. */
	assert_int_equal(spk_mem_read(f->mem, 0x1000, NULL, 0), -EINVAL);
	{
		uint8_t *big = malloc(2 * PAGE);

		assert_non_null(big);
		assert_int_equal(spk_mem_read(f->mem, 0x1000, big, 2 * PAGE), 0);
		assert_memory_equal(big + PAGE, f->rom, PAGE);
		assert_int_equal(spk_mem_read(f->mem, 0x1000, big, 2 * PAGE + 1), -EFAULT);
		free(big);
	}
}

static void test_copy_len_zero_and_wrap(void **state)
{
	struct fixture *f = *state;
	uint8_t buf[4] = {0};

	assert_int_equal(spk_mem_read(f->mem, 0x1000, buf, 0), -EFAULT);
	assert_int_equal(spk_mem_write(f->mem, 0x1000, buf, 0), -EFAULT);
	assert_int_equal(spk_mem_read(f->mem, UINT64_MAX, buf, 2), -EFAULT);
	assert_non_null(strstr(spk_last_error(), "wraps"));
	assert_int_equal(spk_mem_read(f->mem, 0x1000, buf, UINT64_MAX), -EFAULT);
	assert_int_equal(spk_mem_read(f->mem, 0x1001, buf, UINT64_MAX), -EFAULT);
	assert_int_equal(spk_mem_write(f->mem, 0xffffffffffff0000, buf, 4), -EFAULT);
}

static void test_region_at_top_of_address_space(void **unused)
{
	static uint8_t top[PAGE];
	const uint64_t base = UINT64_MAX - (PAGE - 1); /* [2^64 - 4096, 2^64) */
	struct spk_mem *mem;
	uint8_t buf[PAGE];
	char s[8];

	assert_int_equal(spk_mem_new(&mem), 0);
	assert_int_equal(spk_mem_add(mem, base, PAGE, SPK_MEM_RAM, top, "top"), 0);
	/* One byte more wraps; one byte lower overlaps. */
	assert_int_equal(spk_mem_add(mem, base, PAGE + 1, SPK_MEM_RAM, top, "x"), -EINVAL);
	assert_int_equal(spk_mem_add(mem, base - 1, PAGE + 1, SPK_MEM_RAM, top, "x"), -EEXIST);
	assert_non_null(spk_mem_find(mem, UINT64_MAX));
	assert_ptr_equal(spk_mem_ptr(mem, UINT64_MAX, 1, SPK_MEM_W), &top[PAGE - 1]);
	assert_ptr_equal(spk_mem_ptr(mem, base, PAGE, SPK_MEM_W), top);
	assert_null(spk_mem_ptr(mem, UINT64_MAX, 2, SPK_MEM_R));
	assert_null(spk_mem_ptr(mem, base, PAGE + 1, SPK_MEM_R));
	assert_int_equal(spk_mem_read(mem, base, buf, PAGE), 0);
	assert_int_equal(spk_mem_write(mem, UINT64_MAX - 3, "abc", 4), 0);
	assert_int_equal(spk_mem_read(mem, UINT64_MAX - 3, buf, 5), -EFAULT);
	/* A string running into the top of the address space. */
	memcpy(&top[PAGE - 4], "abcd", 4);
	assert_int_equal(spk_mem_read_str(mem, UINT64_MAX - 3, s, sizeof(s)), -EFAULT);
	memcpy(&top[PAGE - 4], "abc", 4);
	assert_int_equal(spk_mem_read_str(mem, UINT64_MAX - 3, s, sizeof(s)), 3);
	assert_string_equal(s, "abc");
	spk_mem_free(mem);
}

static void test_read_str(void **state)
{
	struct fixture *f = *state;
	char buf[16];

	memcpy(&f->ram[0x100], "hello", 6);
	assert_int_equal(spk_mem_read_str(f->mem, 0x1100, buf, sizeof(buf)), 5);
	assert_string_equal(buf, "hello");
	/* The empty string. */
	f->ram[0x200] = 0;
	assert_int_equal(spk_mem_read_str(f->mem, 0x1200, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "");

	/* Exactly max - 1 characters and the NUL fit. */
	memcpy(&f->ram[0x300], "0123456789abcde", 16);
	assert_int_equal(spk_mem_read_str(f->mem, 0x1300, buf, 16), 15);
	assert_string_equal(buf, "0123456789abcde");
	/* One more and it does not: truncated text, -ENAMETOOLONG. */
	assert_int_equal(spk_mem_read_str(f->mem, 0x1300, buf, 15), -ENAMETOOLONG);
	assert_string_equal(buf, "0123456789abcd");
	assert_int_equal(spk_mem_read_str(f->mem, 0x1300, buf, 1), -ENAMETOOLONG);
	assert_string_equal(buf, "");
	assert_int_equal(spk_mem_read_str(f->mem, 0x1300, buf, 0), -EINVAL);
	assert_int_equal(spk_mem_read_str(f->mem, 0x1300, NULL, 4), -EINVAL);
}

static void test_read_str_across_regions(void **state)
{
	struct fixture *f = *state;
	char buf[16];

	/* ram ends in "xy", rom begins with "z\0": one string over two regions. */
	memcpy(&f->ram[PAGE - 2], "xy", 2);
	memcpy(f->rom, "z", 2);
	assert_int_equal(spk_mem_read_str(f->mem, 0x1ffe, buf, sizeof(buf)), 3);
	assert_string_equal(buf, "xyz");

	/* rom ends without a NUL before the gap: a fault, with what was read. */
	memcpy(&f->rom[PAGE - 3], "abc", 3);
	assert_int_equal(spk_mem_read_str(f->mem, 0x2ffd, buf, sizeof(buf)), -EFAULT);
	assert_string_equal(buf, "abc");
	assert_non_null(strstr(spk_last_error(), "0x3000"));

	/*
	 * Never beyond max bytes: with max 3 the string stops before the gap,
	 * so no byte of the gap is read and the answer is "too long".
	 */
	assert_int_equal(spk_mem_read_str(f->mem, 0x2ffd, buf, 3), -ENAMETOOLONG);
	assert_string_equal(buf, "ab");
	assert_int_equal(spk_mem_read_str(f->mem, 0x2ffd, buf, 4), -EFAULT);

	/* Unpopulated and absent memory. */
	assert_int_equal(spk_mem_read_str(f->mem, 0x20000, buf, sizeof(buf)), -EFAULT);
	assert_int_equal(spk_mem_read_str(f->mem, 0x5000, buf, sizeof(buf)), -EFAULT);
	assert_string_equal(buf, "");
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
	const struct CMUnitTest tests[] = {
	    T(test_regions_sorted_and_named),
	    cmocka_unit_test(test_name_copied_and_truncated),
	    T(test_add_refusals),
	    cmocka_unit_test(test_too_many_regions),
	    T(test_ptr_edges),
	    T(test_readonly_rules),
	    T(test_unpopulated_and_populate),
	    T(test_copy_spans),
	    T(test_copy_len_zero_and_wrap),
	    cmocka_unit_test(test_region_at_top_of_address_space),
	    T(test_read_str),
	    T(test_read_str_across_regions),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
#undef T
}
