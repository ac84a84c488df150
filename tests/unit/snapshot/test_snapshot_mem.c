// SPDX-License-Identifier: Apache-2.0
/*
 * Guest memory files: sparse saving, MAP_PRIVATE restore (the file is
 * never written), diff files, in-place reset from a dirty set, and
 * layouts and files that do not match refused.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <sparkler/log.h>
#include <sparkler/snapshot.h>

#define PAGE       4096u
#define LOW_PAGES  64
#define HIGH_PAGES 8

struct guest {
	struct spk_mem *mem;
	uint8_t *low, *high;
};

static void guest_new(struct guest *g)
{
	g->low = mmap(NULL, LOW_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
	              -1, 0);
	g->high = mmap(NULL, HIGH_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
	               -1, 0);
	assert_true(g->low != MAP_FAILED && g->high != MAP_FAILED);
	assert_int_equal(spk_mem_new(&g->mem), 0);
	assert_int_equal(spk_mem_add(g->mem, 0, LOW_PAGES * PAGE, SPK_MEM_RAM, g->low, "ram"), 0);
	assert_int_equal(
	    spk_mem_add(g->mem, 0x100000, HIGH_PAGES * PAGE, SPK_MEM_READONLY, g->high, "rom"), 0);
	assert_int_equal(spk_mem_add(g->mem, 0x200000, PAGE, SPK_MEM_UNPOPULATED, NULL, "lazy"), 0);
}

static void guest_free(struct guest *g)
{
	spk_mem_free(g->mem);
	munmap(g->low, LOW_PAGES * PAGE);
	munmap(g->high, HIGH_PAGES * PAGE);
}

static void scribble(struct guest *g)
{
	for (unsigned p = 0; p < LOW_PAGES; p += 7)
		memset(g->low + p * PAGE, 0x40 + p, PAGE);
	g->low[5 * PAGE + 17] = 1; /* one byte makes a page non-zero */
	memcpy(g->high + 3 * PAGE, "rom bytes", 9);
}

static void tmp(char *path)
{
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	close(fd);
}

/* Save g's memory; return the opened state file. */
static struct spk_snap_file *save(struct guest *g, const char *mem_path,
                                  const struct spk_snap_dirty *dirty)
{
	struct spk_snap_writer *w;
	struct spk_snap_header h;
	struct spk_snap_file *f;
	const void *buf;
	size_t len;

	spk_snap_header_host(&h);
	assert_int_equal(spk_snap_writer_new(&w), 0);
	assert_int_equal(spk_snap_put_header(w, &h), 0);
	if (dirty)
		assert_int_equal(spk_snap_mem_save_diff(w, g->mem, dirty, mem_path, 0), 0);
	else
		assert_int_equal(spk_snap_mem_save(w, g->mem, mem_path, SPK_SNAP_MEM_FSYNC), 0);
	assert_int_equal(spk_snap_writer_finish(w, &buf, &len), 0);
	assert_int_equal(spk_snap_open_buf(buf, len, &f), 0);
	spk_snap_writer_free(w);
	return f;
}

static void test_save_sparse_restore_private(void **state)
{
	char path[] = "/tmp/spk-mem-XXXXXX";
	struct guest a, b;
	struct spk_snap_mem_layout l;
	struct spk_snap_file *f;
	struct stat st;
	uint8_t page[PAGE];
	int fd;

	tmp(path);
	guest_new(&a);
	scribble(&a);
	f = save(&a, path, NULL);
	assert_int_equal(spk_snap_mem_layout(f, &l), 0);
	assert_int_equal(l.n_regions, 2);
	assert_false(l.diff);
	assert_int_equal(l.file_size, (LOW_PAGES + HIGH_PAGES) * PAGE);
	assert_int_equal(l.region[1].gpa, 0x100000);
	assert_int_equal(l.region[1].offset, LOW_PAGES * PAGE);
	assert_int_equal(l.region[1].type, SPK_MEM_READONLY);
	assert_string_equal(l.region[0].name, "ram");

	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_size, l.file_size);
	/* sparse: page 1 (never written) is a hole, page 0 (written) data */
	assert_int_equal(lseek(fd, 0, SEEK_DATA), 0);
	assert_true(lseek(fd, 0, SEEK_HOLE) <= PAGE);
	assert_true((uint64_t)st.st_blocks * 512 < l.file_size / 2);

	/* restore into a fresh guest: identical, and the file is never written */
	guest_new(&b);
	uint8_t *low_before = b.low;
	assert_int_equal(spk_snap_mem_restore(&l, fd, b.mem), 0);
	assert_ptr_equal(b.low, low_before); /* the same host addresses */
	assert_memory_equal(a.low, b.low, LOW_PAGES * PAGE);
	assert_memory_equal(a.high, b.high, HIGH_PAGES * PAGE);
	memset(b.low, 0xee, 2 * PAGE);
	assert_int_equal(pread(fd, page, PAGE, 0), PAGE);
	assert_memory_equal(page, a.low, PAGE);
	assert_int_equal(pread(fd, page, PAGE, PAGE), PAGE);
	assert_memory_equal(page, a.low + PAGE, PAGE);

	/* in-place reset: b scribbled pages 0, 1 and 40; copy them back */
	struct spk_snap_dirty *d;

	b.low[40 * PAGE + 5] = 9;
	assert_int_equal(spk_snap_dirty_new(b.mem, &d), 0);
	assert_int_equal(spk_snap_dirty_mark(d, 0, 2 * PAGE), 0);
	assert_int_equal(spk_snap_dirty_mark(d, 40 * PAGE + 5, 1), 0);
	assert_int_equal(spk_snap_dirty_count(d), 3);
	assert_int_equal(spk_snap_mem_reset(&l, fd, b.mem, d), 0);
	assert_memory_equal(a.low, b.low, LOW_PAGES * PAGE);
	assert_int_equal(spk_snap_dirty_mark(d, 0x200000, 1), -EINVAL); /* unpopulated */
	assert_int_equal(spk_snap_dirty_mark(d, LOW_PAGES * PAGE - 1, 2), -EINVAL); /* spans */
	spk_snap_dirty_free(d);

	close(fd);
	spk_snap_mem_layout_fini(&l);
	spk_snap_close(f);
	guest_free(&a);
	guest_free(&b);
	unlink(path);
}

static void test_diff(void **state)
{
	char base[] = "/tmp/spk-mem-XXXXXX", diff[] = "/tmp/spk-mem-XXXXXX";
	struct guest a, b;
	struct spk_snap_mem_layout lb, ld;
	struct spk_snap_file *fb, *fdf;
	struct spk_snap_dirty *d;
	int fd_b, fd_d;

	tmp(base);
	tmp(diff);
	guest_new(&a);
	scribble(&a);
	fb = save(&a, base, NULL);
	/* after the base: three pages change, one of them to zeros */
	assert_int_equal(spk_snap_dirty_new(a.mem, &d), 0);
	memset(a.low + 2 * PAGE, 0x77, PAGE);
	memset(a.low + 7 * PAGE, 0, PAGE);
	a.high[HIGH_PAGES * PAGE - 1] = 0x55;
	assert_int_equal(spk_snap_dirty_mark(d, 2 * PAGE, 1), 0);
	assert_int_equal(spk_snap_dirty_mark(d, 7 * PAGE, PAGE), 0);
	assert_int_equal(spk_snap_dirty_mark(d, 0x100000 + HIGH_PAGES * PAGE - 1, 1), 0);
	fdf = save(&a, diff, d);
	assert_int_equal(spk_snap_mem_layout(fb, &lb), 0);
	assert_int_equal(spk_snap_mem_layout(fdf, &ld), 0);
	assert_true(ld.diff);
	assert_int_equal(spk_snap_dirty_count(ld.dirty), 3);

	fd_b = open(base, O_RDONLY);
	fd_d = open(diff, O_RDONLY);
	guest_new(&b);
	assert_int_equal(spk_snap_mem_restore(&ld, fd_d, b.mem), -EINVAL);    /* a diff alone */
	assert_int_equal(spk_snap_mem_apply_diff(&lb, fd_b, b.mem), -EINVAL); /* not a diff */
	assert_int_equal(spk_snap_mem_restore(&lb, fd_b, b.mem), 0);
	assert_int_equal(spk_snap_mem_apply_diff(&ld, fd_d, b.mem), 0);
	assert_memory_equal(a.low, b.low, LOW_PAGES * PAGE);
	assert_memory_equal(a.high, b.high, HIGH_PAGES * PAGE);

	close(fd_b);
	close(fd_d);
	spk_snap_dirty_free(d);
	spk_snap_mem_layout_fini(&lb);
	spk_snap_mem_layout_fini(&ld);
	spk_snap_close(fb);
	spk_snap_close(fdf);
	guest_free(&a);
	guest_free(&b);
	unlink(base);
	unlink(diff);
}

static void test_mismatch_refused(void **state)
{
	char path[] = "/tmp/spk-mem-XXXXXX";
	struct guest a;
	struct spk_mem *other;
	struct spk_snap_mem_layout l;
	struct spk_snap_file *f;
	uint8_t *m;
	int fd;

	tmp(path);
	guest_new(&a);
	scribble(&a);
	f = save(&a, path, NULL);
	assert_int_equal(spk_snap_mem_layout(f, &l), 0);
	fd = open(path, O_RDWR);

	/* a VM with a smaller RAM region: refused, memory untouched */
	m = mmap(NULL, LOW_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
	         0);
	m[0] = 0x99;
	assert_int_equal(spk_mem_new(&other), 0);
	assert_int_equal(spk_mem_add(other, 0, (LOW_PAGES - 1) * PAGE, SPK_MEM_RAM, m, "ram"), 0);
	assert_int_equal(spk_snap_mem_restore(&l, fd, other), -EINVAL);
	assert_non_null(strstr(spk_last_error(), "field 'r0'"));
	assert_int_equal(m[0], 0x99);
	spk_mem_free(other);
	/* one region missing */
	assert_int_equal(spk_mem_new(&other), 0);
	assert_int_equal(spk_mem_add(other, 0, LOW_PAGES * PAGE, SPK_MEM_RAM, m, "ram"), 0);
	assert_int_equal(spk_snap_mem_restore(&l, fd, other), -EINVAL);
	assert_non_null(strstr(spk_last_error(), "field 'regions'"));
	spk_mem_free(other);
	munmap(m, LOW_PAGES * PAGE);
	/* a file of the wrong size */
	assert_int_equal(ftruncate(fd, l.file_size - PAGE), 0);
	assert_int_equal(spk_snap_mem_restore(&l, fd, a.mem), -EINVAL);
	assert_non_null(strstr(spk_last_error(), "field 'file_size'"));
	assert_int_equal(spk_snap_mem_restore(&l, -1, a.mem), -EINVAL);
	assert_int_equal(spk_snap_mem_restore(NULL, fd, a.mem), -EINVAL);

	close(fd);
	spk_snap_mem_layout_fini(&l);
	spk_snap_close(f);
	guest_free(&a);
	unlink(path);
}

/* A MEMORY section written by hand: each hostile value refused by the layout reader. */
struct bad_layout {
	uint64_t file_size, gpa0, size0, off0, gpa1, size1, off1;
	uint8_t type0;
	const char *expect;
};

static void check_bad_layout(const struct bad_layout *b)
{
	struct spk_snap_writer *w;
	struct spk_snap_header h;
	struct spk_snap_file *f;
	struct spk_snap_mem_layout l;
	const void *buf;
	size_t len;

	spk_snap_header_host(&h);
	assert_int_equal(spk_snap_writer_new(&w), 0);
	spk_snap_put_header(w, &h);
	spk_snap_section_begin(w, SPK_SNAP_SEC_MEMORY);
	spk_snap_put_str(w, "file", "m");
	spk_snap_put_u64(w, "file_size", b->file_size);
	spk_snap_put_u8(w, "diff", 0);
	spk_snap_put_u32(w, "regions", 2);
	spk_snap_put_u64(w, "r0.gpa", b->gpa0);
	spk_snap_put_u64(w, "r0.size", b->size0);
	spk_snap_put_u64(w, "r0.offset", b->off0);
	spk_snap_put_u8(w, "r0.type", b->type0);
	spk_snap_put_str(w, "r0.name", "a");
	spk_snap_put_u64(w, "r1.gpa", b->gpa1);
	spk_snap_put_u64(w, "r1.size", b->size1);
	spk_snap_put_u64(w, "r1.offset", b->off1);
	spk_snap_put_u8(w, "r1.type", 0);
	spk_snap_put_str(w, "r1.name", "b");
	spk_snap_section_end(w);
	assert_int_equal(spk_snap_writer_finish(w, &buf, &len), 0);
	assert_int_equal(spk_snap_open_buf(buf, len, &f), 0);
	spk_snap_writer_free(w);
	int rc = spk_snap_mem_layout(f, &l);

	if (!b->expect) {
		assert_int_equal(rc, 0);
		spk_snap_mem_layout_fini(&l);
	} else {
		assert_int_equal(rc, -EINVAL);
		if (!strstr(spk_last_error(), b->expect))
			fail_msg("'%s' lacks '%s'", spk_last_error(), b->expect);
		assert_non_null(strstr(spk_last_error(), "section 1 (memory"));
	}
	spk_snap_close(f);
}

static void test_hostile_layouts(void **state)
{
	const uint64_t P = PAGE;
	const struct bad_layout cases[] = {
	    {4 * P, 0, 2 * P, 0, 4 * P, 2 * P, 2 * P, 0, NULL},
	    {4 * P, 0, 2 * P, 0, P, 2 * P, 2 * P, 0, "field 'r1.gpa'"},     /* overlap */
	    {4 * P, 5, 2 * P, 0, 4 * P, 2 * P, 2 * P, 0, "field 'r0.gpa'"}, /* unaligned */
	    {4 * P, 0, 0, 0, 4 * P, 2 * P, 2 * P, 0, "field 'r0.size'"},    /* empty */
	    {4 * P, 0, 2 * P + 1, 0, 4 * P, 2 * P, 2 * P, 0, "field 'r0.size'"},
	    {4 * P, UINT64_MAX - P + 1, 2 * P, 0, 0, P, 2 * P, 0, "field 'r0.size'"}, /* wraps */
	    {4 * P, 0, 2 * P, 0, 4 * P, 2 * P, 3 * P, 0, "field 'r1.offset'"}, /* past the file */
	    {4 * P, 0, 2 * P, 0, 4 * P, 2 * P, P, 0, "field 'r1.offset'"},     /* overlaps r0 */
	    {4 * P, 0, 2 * P, 0, 4 * P, 2 * P, UINT64_MAX - P + 1, 0, "field 'r1.offset'"},
	    {4 * P, 0, 2 * P, 0, 4 * P, 2 * P, 2 * P, 2, "field 'r0.type': 2 is more than 1"},
	    {4 * P + 1, 0, 2 * P, 0, 4 * P, 2 * P, 2 * P, 0, "field 'file_size'"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		check_bad_layout(&cases[i]);
}

static void test_save_refusals(void **state)
{
	struct spk_snap_writer *w;
	struct spk_mem *mem;
	uint8_t *m = aligned_alloc(PAGE, 2 * PAGE);

	assert_int_equal(spk_snap_writer_new(&w), 0);
	assert_int_equal(spk_mem_new(&mem), 0);
	assert_int_equal(spk_mem_add(mem, 0, PAGE + 8, SPK_MEM_RAM, m, "odd"), 0);
	assert_int_equal(spk_snap_mem_save(w, mem, "/tmp/spk-never", 0), -EINVAL);
	assert_non_null(strstr(spk_last_error(), "odd is not page-aligned"));
	assert_int_equal(spk_snap_mem_save(w, NULL, "/tmp/x", 0), -EINVAL);
	assert_int_equal(spk_snap_mem_save_diff(w, mem, NULL, "/tmp/x", 0), -EINVAL);
	spk_mem_free(mem);
	spk_snap_writer_free(w);
	free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_save_sparse_restore_private),
	    cmocka_unit_test(test_diff),
	    cmocka_unit_test(test_mismatch_refused),
	    cmocka_unit_test(test_hostile_layouts),
	    cmocka_unit_test(test_save_refusals),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
