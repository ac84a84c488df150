// SPDX-License-Identifier: Apache-2.0
/*
 * The split virtqueue against a fake guest memory: valid chains in all
 * their shapes, and every rule a hostile driver can break, each of which
 * must end in -EIO with a message naming the value.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <cmocka.h>

#include <sparkler/log.h>
#include <sparkler/snapshot.h>

#include "vqtest.h"

#define QSIZE 16
#define F     SPK_VIRTQ_DESC_F_NEXT
#define W     SPK_VIRTQ_DESC_F_WRITE
#define I     SPK_VIRTQ_DESC_F_INDIRECT

struct fx {
	struct vt_mem m;
	struct spk_virtq q;
};

static int setup_opts(void **state, bool event_idx, bool indirect)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	vt_mem_init(&f->m);
	assert_int_equal(spk_virtq_init(&f->q, 3, 64), 0);
	f->q.size = QSIZE;
	f->q.desc = VT_DESC;
	f->q.avail = VT_AVAIL;
	f->q.used = VT_USED;
	assert_int_equal(spk_virtq_start(&f->q, f->m.mem, event_idx, indirect), 0);
	*state = f;
	return 0;
}

static int setup(void **state)
{
	return setup_opts(state, false, true);
}

static int setup_event(void **state)
{
	return setup_opts(state, true, true);
}

static int teardown(void **state)
{
	struct fx *f = *state;

	spk_virtq_fini(&f->q);
	vt_mem_fini(&f->m);
	free(f);
	return 0;
}

/* Pop must fail with a message containing want. */
static void expect_violation(struct fx *f, const char *want)
{
	struct spk_virtq_chain c;

	assert_int_equal(spk_virtq_pop(&f->q, &c), -EIO);
	if (!strstr(f->q.err, want))
		fail_msg("violation message '%s' lacks '%s'", f->q.err, want);
	assert_true(f->q.broken);
	assert_int_equal(spk_virtq_pop(&f->q, &c), -EIO); /* stays broken */
}

/* ---- valid chains ----------------------------------------------------------------- */

static void test_empty(void **state)
{
	struct fx *f = *state;
	struct spk_virtq_chain c;

	assert_int_equal(spk_virtq_pop(&f->q, &c), 0);
	assert_false(spk_virtq_has_work(&f->q));
}

static void test_chain(void **state)
{
	struct fx *f = *state;
	struct spk_virtq_chain c;
	char buf[32] = {0};

	memcpy(f->m.ram + VT_DATA, "hello, ", 7);
	memcpy(f->m.ram + VT_DATA + 0x100, "world", 5);
	vt_desc(&f->m, VT_DESC, 5, VT_DATA, 7, F, 9);
	vt_desc(&f->m, VT_DESC, 9, VT_DATA + 0x100, 5, F, 2);
	vt_desc(&f->m, VT_DESC, 2, VT_DATA + 0x200, 8, W | F, 3);
	vt_desc(&f->m, VT_DESC, 3, VT_DATA + 0x300, 4, W, 0);
	vt_avail(&f->m, VT_AVAIL, QSIZE, 5);
	assert_true(spk_virtq_has_work(&f->q));
	assert_int_equal(spk_virtq_pop(&f->q, &c), 1);
	assert_int_equal(c.head, 5);
	assert_int_equal(c.n, 4);
	assert_int_equal(c.n_out, 2);
	assert_int_equal(c.out_len, 12);
	assert_int_equal(c.in_len, 12);
	assert_int_equal(spk_virtq_read(f->m.mem, &c, 0, buf, sizeof(buf)), 12);
	assert_memory_equal(buf, "hello, world", 12);
	assert_int_equal(spk_virtq_read(f->m.mem, &c, 5, buf, 4), 4);
	assert_memory_equal(buf, ", wo", 4);
	/* a write across both writable buffers */
	assert_int_equal(spk_virtq_write(f->m.mem, &c, 6, "ABCDEF", 6), 6);
	assert_memory_equal(f->m.ram + VT_DATA + 0x206, "AB", 2);
	assert_memory_equal(f->m.ram + VT_DATA + 0x300, "CDEF", 4);
	assert_int_equal(spk_virtq_write(f->m.mem, &c, 10, "xyz", 3), 2); /* short at the end */
	struct iovec iov[4];
	assert_int_equal(spk_virtq_iov(f->m.mem, &c, true, 0, 100, iov, 4), 2);
	assert_ptr_equal(iov[0].iov_base, f->m.ram + VT_DATA + 0x200);
	assert_int_equal(iov[0].iov_len, 8);
	assert_int_equal(iov[1].iov_len, 4);
	assert_int_equal(spk_virtq_iov(f->m.mem, &c, false, 3, 6, iov, 4), 2);
	assert_int_equal(iov[0].iov_len, 4);
	assert_int_equal(iov[1].iov_len, 2);
	assert_int_equal(spk_virtq_iov(f->m.mem, &c, false, 0, 12, iov, 1), -ENOBUFS);
	assert_int_equal(spk_virtq_push(&f->q, &c, 1000), 0); /* clamped to in_len */
	assert_int_equal(vt_used_idx(&f->m, VT_USED), 1);
	uint32_t id, len;
	vt_used_elem(&f->m, VT_USED, QSIZE, 0, &id, &len);
	assert_int_equal(id, 5);
	assert_int_equal(len, 12);
	assert_true(spk_virtq_need_interrupt(&f->q));
	/* a second push with nothing in flight is a device bug, refused */
	assert_int_equal(spk_virtq_push(&f->q, &c, 0), -EINVAL);
}

static void test_indirect(void **state)
{
	struct fx *f = *state;
	struct spk_virtq_chain c;

	vt_desc(&f->m, VT_INDIRECT, 0, VT_DATA, 16, F, 2);
	vt_desc(&f->m, VT_INDIRECT, 2, VT_DATA + 0x100, 32, W | F, 1);
	vt_desc(&f->m, VT_INDIRECT, 1, VT_DATA + 0x200, 64, W, 0);
	vt_desc(&f->m, VT_DESC, 0, VT_DATA + 0x400, 10, F, 7); /* a direct one first */
	vt_desc(&f->m, VT_DESC, 7, VT_INDIRECT, 3 * 16, I, 0);
	vt_avail(&f->m, VT_AVAIL, QSIZE, 0);
	assert_int_equal(spk_virtq_pop(&f->q, &c), 1);
	assert_int_equal(c.n, 4);
	assert_int_equal(c.n_out, 2);
	assert_int_equal(c.out_len, 26);
	assert_int_equal(c.in_len, 96);
	assert_int_equal(c.buf[3].gpa, VT_DATA + 0x200);
}

/* Many chains in flight, wrapping the ring indices past 2^16. */
static void test_wraparound(void **state)
{
	struct fx *f = *state;
	struct spk_virtq_chain c;

	vt_desc(&f->m, VT_DESC, 1, VT_DATA, 8, W, 0);
	for (unsigned i = 0; i < 70000; i++) {
		vt_avail(&f->m, VT_AVAIL, QSIZE, 1);
		assert_int_equal(spk_virtq_pop(&f->q, &c), 1);
		assert_int_equal(spk_virtq_push(&f->q, &c, 8), 0);
	}
	assert_int_equal(vt_used_idx(&f->m, VT_USED), 70000 % 65536);
	/* a full ring of QSIZE in flight */
	for (unsigned i = 0; i < QSIZE; i++)
		vt_avail(&f->m, VT_AVAIL, QSIZE, 1);
	for (unsigned i = 0; i < QSIZE; i++)
		assert_int_equal(spk_virtq_pop(&f->q, &c), 1);
	assert_int_equal(spk_virtq_pop(&f->q, &c), 0);
	assert_int_equal(f->q.inflight, QSIZE);
}

static void test_zero_length(void **state)
{
	struct fx *f = *state;
	struct spk_virtq_chain c;

	vt_desc(&f->m, VT_DESC, 1, 0xdead0000000ull, 0, F, 2); /* no bytes: no address to check */
	vt_desc(&f->m, VT_DESC, 2, VT_DATA, 4, W, 0);
	vt_avail(&f->m, VT_AVAIL, QSIZE, 1);
	assert_int_equal(spk_virtq_pop(&f->q, &c), 1);
	assert_int_equal(c.n, 2);
	assert_int_equal(c.out_len, 0);
}

/* ---- the rules ---------------------------------------------------------------------- */

static void test_loop(void **state)
{
	struct fx *f = *state;

	vt_desc(&f->m, VT_DESC, 4, VT_DATA, 8, F, 6);
	vt_desc(&f->m, VT_DESC, 6, VT_DATA, 8, F, 4);
	vt_avail(&f->m, VT_AVAIL, QSIZE, 4);
	expect_violation(f, "longer than the queue size 16");
}

static void test_self_loop(void **state)
{
	struct fx *f = *state;

	vt_desc(&f->m, VT_DESC, 0, VT_DATA, 8, F, 0);
	vt_avail(&f->m, VT_AVAIL, QSIZE, 0);
	expect_violation(f, "longer than the queue size");
}

static void test_next_out_of_range(void **state)
{
	struct fx *f = *state;

	vt_desc(&f->m, VT_DESC, 0, VT_DATA, 8, F, QSIZE);
	vt_avail(&f->m, VT_AVAIL, QSIZE, 0);
	expect_violation(f, "next index 16 is beyond the queue size 16");
}

static void test_head_out_of_range(void **state)
{
	struct fx *f = *state;

	vt_avail(&f->m, VT_AVAIL, QSIZE, 300);
	expect_violation(f, "head index 300");
}

static void test_avail_jump(void **state)
{
	struct fx *f = *state;

	vt_put16(f->m.ram + VT_AVAIL + 2, QSIZE + 1);
	expect_violation(f, "17 entries ahead");
}

static void test_outside_ram(void **state)
{
	struct fx *f = *state;

	vt_desc(&f->m, VT_DESC, 0, 0x40000000, 8, 0, 0);
	vt_avail(&f->m, VT_AVAIL, QSIZE, 0);
	expect_violation(f, "descriptor 0: readable buffer 0x40000000+0x8 is outside guest RAM");
}

static void test_straddles_end(void **state)
{
	struct fx *f = *state;

	/* starts in RAM, its end is past the read-only region */
	vt_desc(&f->m, VT_DESC, 0, VT_RAM - 8, 8 + VT_ROM + 1, 0, 0);
	vt_avail(&f->m, VT_AVAIL, QSIZE, 0);
	expect_violation(f, "outside guest RAM");
}

static void test_spans_regions(void **state)
{
	struct fx *f = *state;
	struct spk_virtq_chain c;
	struct iovec iov[4];

	/* readable across RAM and ROM is fine; two iovecs */
	vt_desc(&f->m, VT_DESC, 0, VT_RAM - 8, 16, 0, 0);
	vt_avail(&f->m, VT_AVAIL, QSIZE, 0);
	assert_int_equal(spk_virtq_pop(&f->q, &c), 1);
	assert_int_equal(spk_virtq_iov(f->m.mem, &c, false, 0, 16, iov, 4), 2);
	assert_int_equal(iov[0].iov_len, 8);
	assert_ptr_equal(iov[1].iov_base, f->m.rom);
}

static void test_write_to_rom(void **state)
{
	struct fx *f = *state;

	vt_desc(&f->m, VT_DESC, 0, VT_ROM_GPA + 16, 8, W, 0);
	vt_avail(&f->m, VT_AVAIL, QSIZE, 0);
	expect_violation(f, "writable buffer 0x100010+0x8 is in read-only memory");
}

static void test_wrapping_length(void **state)
{
	struct fx *f = *state;

	vt_desc(&f->m, VT_DESC, 0, 0xfffffffffffff000ull, 0x2000, 0, 0);
	vt_avail(&f->m, VT_AVAIL, QSIZE, 0);
	expect_violation(f, "wraps around");
}

static void test_readable_after_writable(void **state)
{
	struct fx *f = *state;

	vt_desc(&f->m, VT_DESC, 0, VT_DATA, 8, W | F, 1);
	vt_desc(&f->m, VT_DESC, 1, VT_DATA, 8, 0, 0);
	vt_avail(&f->m, VT_AVAIL, QSIZE, 0);
	expect_violation(f, "device-readable after a writable one");
}

/* 4 GiB of total length needs big buffers: map them without backing. */
static void test_total_overflow(void **state)
{
	struct fx *f = *state;
	uint64_t big = 3ull << 30;
	void *host = mmap(NULL, big, PROT_READ | PROT_WRITE,
	                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	assert_true(host != MAP_FAILED);
	assert_int_equal(
	    spk_mem_add((struct spk_mem *)f->m.mem, 1ull << 32, big, SPK_MEM_RAM, host, "big"), 0);
	vt_desc(&f->m, VT_DESC, 0, 1ull << 32, 0xc0000000u, F, 1);
	vt_desc(&f->m, VT_DESC, 1, 1ull << 32, 0xc0000000u, 0, 0);
	vt_avail(&f->m, VT_AVAIL, QSIZE, 0);
	expect_violation(f, "overflows 32 bits");
	munmap(host, big);
}

static void test_indirect_not_negotiated(void **state)
{
	struct fx *f = *state;

	f->q.size = QSIZE;
	assert_int_equal(spk_virtq_start(&f->q, f->m.mem, false, false), 0);
	vt_desc(&f->m, VT_INDIRECT, 0, VT_DATA, 8, 0, 0);
	vt_desc(&f->m, VT_DESC, 0, VT_INDIRECT, 16, I, 0);
	vt_avail(&f->m, VT_AVAIL, QSIZE, 0);
	expect_violation(f, "INDIRECT_DESC was not negotiated");
}

static void test_indirect_bad_len(void **state)
{
	struct fx *f = *state;

	vt_desc(&f->m, VT_DESC, 0, VT_INDIRECT, 24, I, 0);
	vt_avail(&f->m, VT_AVAIL, QSIZE, 0);
	expect_violation(f, "indirect table length 24 is not a non-zero multiple of 16");
}

static void test_indirect_empty(void **state)
{
	struct fx *f = *state;

	vt_desc(&f->m, VT_DESC, 0, VT_INDIRECT, 0, I, 0);
	vt_avail(&f->m, VT_AVAIL, QSIZE, 0);
	expect_violation(f, "indirect table length 0");
}

static void test_indirect_nested(void **state)
{
	struct fx *f = *state;

	vt_desc(&f->m, VT_INDIRECT, 0, VT_DATA, 8, F, 1);
	vt_desc(&f->m, VT_INDIRECT, 1, VT_INDIRECT + 0x100, 16, I, 0);
	vt_desc(&f->m, VT_DESC, 0, VT_INDIRECT, 32, I, 0);
	vt_avail(&f->m, VT_AVAIL, QSIZE, 0);
	expect_violation(f, "nested tables");
}

static void test_indirect_too_long(void **state)
{
	struct fx *f = *state;

	vt_desc(&f->m, VT_DESC, 0, VT_INDIRECT, 16 * (QSIZE + 1), I, 0);
	vt_avail(&f->m, VT_AVAIL, QSIZE, 0);
	expect_violation(f, "17 descriptors is longer than the queue size 16");
}

static void test_indirect_loop(void **state)
{
	struct fx *f = *state;

	vt_desc(&f->m, VT_INDIRECT, 0, VT_DATA, 8, F, 1);
	vt_desc(&f->m, VT_INDIRECT, 1, VT_DATA, 8, F, 0);
	vt_desc(&f->m, VT_DESC, 0, VT_INDIRECT, 32, I, 0);
	vt_avail(&f->m, VT_AVAIL, QSIZE, 0);
	expect_violation(f, "longer than the queue size");
}

static void test_indirect_next_beyond(void **state)
{
	struct fx *f = *state;

	vt_desc(&f->m, VT_INDIRECT, 0, VT_DATA, 8, F, 2);
	vt_desc(&f->m, VT_DESC, 0, VT_INDIRECT, 32, I, 0);
	vt_avail(&f->m, VT_AVAIL, QSIZE, 0);
	expect_violation(f, "next 2 is beyond the table of 2");
}

static void test_indirect_with_next(void **state)
{
	struct fx *f = *state;

	vt_desc(&f->m, VT_INDIRECT, 0, VT_DATA, 8, 0, 0);
	vt_desc(&f->m, VT_DESC, 0, VT_INDIRECT, 16, I | F, 1);
	vt_avail(&f->m, VT_AVAIL, QSIZE, 0);
	expect_violation(f, "indirect and has NEXT too");
}

static void test_indirect_outside(void **state)
{
	struct fx *f = *state;

	vt_desc(&f->m, VT_DESC, 0, VT_RAM - 16, 32, I, 0);
	vt_avail(&f->m, VT_AVAIL, QSIZE, 0);
	expect_violation(f, "indirect table 0xffff0+0x20 is not inside one guest RAM region");
}

/* A chain of exactly the queue size is fine; one more is not. */
static void test_budget_edges(void **state)
{
	struct fx *f = *state;
	struct spk_virtq_chain c;

	for (uint16_t i = 0; i < QSIZE; i++)
		vt_desc(&f->m, VT_DESC, i, VT_DATA, 1, i + 1 < QSIZE ? F : 0, (uint16_t)(i + 1));
	vt_avail(&f->m, VT_AVAIL, QSIZE, 0);
	assert_int_equal(spk_virtq_pop(&f->q, &c), 1);
	assert_int_equal(c.n, QSIZE);
	/* direct + indirect together past the budget */
	for (uint16_t i = 0; i < QSIZE; i++)
		vt_desc(&f->m, VT_INDIRECT, i, VT_DATA, 1, i + 1 < QSIZE ? F : 0,
		        (uint16_t)(i + 1));
	vt_desc(&f->m, VT_DESC, 0, VT_DATA, 1, F, 1);
	vt_desc(&f->m, VT_DESC, 1, VT_INDIRECT, 16 * QSIZE, I, 0);
	vt_avail(&f->m, VT_AVAIL, QSIZE, 0);
	expect_violation(f, "longer than the queue size");
}

/* ---- ring setup ------------------------------------------------------------------------ */

static void start_fails(struct fx *f, uint16_t size, uint64_t d, uint64_t a, uint64_t u,
                        const char *want)
{
	spk_virtq_reset(&f->q);
	f->q.size = size;
	f->q.desc = d;
	f->q.avail = a;
	f->q.used = u;
	assert_int_equal(spk_virtq_start(&f->q, f->m.mem, true, true), -EINVAL);
	if (!strstr(f->q.err, want))
		fail_msg("start message '%s' lacks '%s'", f->q.err, want);
}

static void test_start(void **state)
{
	struct fx *f = *state;

	start_fails(f, 0, VT_DESC, VT_AVAIL, VT_USED, "queue size 0");
	start_fails(f, 24, VT_DESC, VT_AVAIL, VT_USED, "queue size 24");
	start_fails(f, 128, VT_DESC, VT_AVAIL, VT_USED, "from 1 to 64");
	start_fails(f, 16, VT_DESC + 8, VT_AVAIL, VT_USED, "descriptor ring at 0x1008 is not 16");
	start_fails(f, 16, VT_DESC, VT_AVAIL + 1, VT_USED, "available ring at 0x2001 is not 2");
	start_fails(f, 16, VT_DESC, VT_AVAIL, VT_USED + 2, "used ring at 0x3002 is not 4");
	start_fails(f, 16, 0x7fff0000, VT_AVAIL, VT_USED, "not in guest RAM");
	start_fails(f, 16, VT_DESC, VT_RAM - 16, VT_USED, "available ring");
	start_fails(f, 16, VT_DESC, VT_AVAIL, VT_ROM_GPA,
	            "used ring at 0x100000+0x86 is not in "
	            "guest RAM (writable)");
	start_fails(f, 16, ~0xfull, VT_AVAIL, VT_USED, "not in guest RAM");
	/* rings in the read-only region are fine except the used one */
	spk_virtq_reset(&f->q);
	f->q.size = 16;
	f->q.desc = VT_ROM_GPA;
	f->q.avail = VT_ROM_GPA + 0x1000;
	f->q.used = VT_USED;
	assert_int_equal(spk_virtq_start(&f->q, f->m.mem, true, true), 0);
	assert_int_equal(f->q.size, 16);
	assert_int_equal(spk_virtq_init(&f->q, 0, 100), -EINVAL);
}

/* ---- interrupts ------------------------------------------------------------------------- */

/* Nothing used since the last interrupt: no interrupt (a device that
 * looked at an empty queue must not wake the driver). */
static void test_no_spurious_interrupt(void **state)
{
	struct fx *f = *state;
	struct spk_virtq_chain c;

	assert_false(spk_virtq_need_interrupt(&f->q)); /* nothing used yet */
	vt_desc(&f->m, VT_DESC, 0, VT_DATA, 8, W, 0);
	vt_avail(&f->m, VT_AVAIL, QSIZE, 0);
	assert_int_equal(spk_virtq_pop(&f->q, &c), 1);
	assert_int_equal(spk_virtq_push(&f->q, &c, 8), 0);
	assert_true(spk_virtq_need_interrupt(&f->q));
	assert_false(spk_virtq_need_interrupt(&f->q));
}

static void test_no_interrupt_flag(void **state)
{
	struct fx *f = *state;
	struct spk_virtq_chain c;

	vt_desc(&f->m, VT_DESC, 0, VT_DATA, 8, W, 0);
	vt_avail(&f->m, VT_AVAIL, QSIZE, 0);
	vt_put16(f->m.ram + VT_AVAIL, SPK_VIRTQ_AVAIL_F_NO_INTERRUPT);
	assert_int_equal(spk_virtq_pop(&f->q, &c), 1);
	assert_int_equal(spk_virtq_push(&f->q, &c, 8), 0);
	assert_false(spk_virtq_need_interrupt(&f->q));
}

static void test_event_idx(void **state)
{
	struct fx *f = *state;
	struct spk_virtq_chain c;
	uint8_t *used_event = f->m.ram + VT_AVAIL + 4 + 2 * QSIZE;
	uint8_t *avail_event = f->m.ram + VT_USED + 4 + 8 * QSIZE;

	vt_desc(&f->m, VT_DESC, 0, VT_DATA, 8, W, 0);
	/* the driver wants an interrupt after used entry 2 (idx becomes 3) */
	vt_put16(used_event, 2);
	for (int i = 0; i < 4; i++)
		vt_avail(&f->m, VT_AVAIL, QSIZE, 0);
	bool irq[4];
	for (int i = 0; i < 4; i++) {
		assert_int_equal(spk_virtq_pop(&f->q, &c), 1);
		assert_int_equal(vt_get16(avail_event), i + 1); /* we publish where we are */
		assert_int_equal(spk_virtq_push(&f->q, &c, 8), 0);
		irq[i] = spk_virtq_need_interrupt(&f->q);
	}
	assert_false(irq[0]); /* used_event 2: after the third entry, not before */
	assert_false(irq[1]);
	assert_true(irq[2]);
	assert_false(irq[3]);
}

/* Snapshot: a queue with a chain in flight is not saved; giving the
 * chain back (unpop) makes it savable and the next pop takes it again. */
static void test_state_inflight_unpop(void **state)
{
	struct fx *f = *state;
	struct spk_virtq_chain c, again;
	struct spk_snap_writer *w;
	struct spk_snap_header h;

	vt_desc(&f->m, VT_DESC, 0, VT_DATA, 16, W, 0);
	vt_avail(&f->m, VT_AVAIL, QSIZE, 0);
	vt_desc(&f->m, VT_DESC, 1, VT_DATA + 64, 16, W, 0);
	vt_avail(&f->m, VT_AVAIL, QSIZE, 1);
	assert_int_equal(spk_virtq_pop(&f->q, &c), 1);
	spk_snap_header_host(&h);
	assert_int_equal(spk_snap_writer_new(&w), 0);
	assert_int_equal(spk_snap_put_header(w, &h), 0);
	assert_int_equal(spk_snap_section_begin(w, SPK_SNAP_SEC_VM), 0);
	assert_int_equal(spk_virtq_state_save(&f->q, w), -EBUSY);
	assert_non_null(strstr(spk_last_error(), "queue 3 has 1 buffers in flight"));
	assert_int_equal(spk_virtq_unpop(&f->q, 1), -EINVAL); /* not the one taken */
	assert_int_equal(spk_virtq_unpop(&f->q, c.head), 0);
	assert_int_equal(spk_virtq_unpop(&f->q, c.head), -EINVAL); /* nothing in flight */
	assert_int_equal(spk_virtq_state_save(&f->q, w), 0);
	assert_int_equal(spk_virtq_pop(&f->q, &again), 1);
	assert_int_equal(again.head, c.head);
	spk_snap_writer_free(w);
}

int main(void)
{
#define T(fn)  cmocka_unit_test_setup_teardown(fn, setup, teardown)
#define TE(fn) cmocka_unit_test_setup_teardown(fn, setup_event, teardown)
	const struct CMUnitTest tests[] = {
	    T(test_empty),
	    T(test_state_inflight_unpop),
	    TE(test_state_inflight_unpop),
	    T(test_chain),
	    T(test_indirect),
	    T(test_wraparound),
	    T(test_zero_length),
	    T(test_loop),
	    T(test_self_loop),
	    T(test_next_out_of_range),
	    T(test_head_out_of_range),
	    T(test_avail_jump),
	    T(test_outside_ram),
	    T(test_straddles_end),
	    T(test_spans_regions),
	    T(test_write_to_rom),
	    T(test_wrapping_length),
	    T(test_readable_after_writable),
	    T(test_total_overflow),
	    T(test_indirect_not_negotiated),
	    T(test_indirect_bad_len),
	    T(test_indirect_empty),
	    T(test_indirect_nested),
	    T(test_indirect_too_long),
	    T(test_indirect_loop),
	    T(test_indirect_next_beyond),
	    T(test_indirect_with_next),
	    T(test_indirect_outside),
	    T(test_budget_edges),
	    T(test_start),
	    T(test_no_spurious_interrupt),
	    T(test_no_interrupt_flag),
	    TE(test_no_spurious_interrupt),
	    TE(test_event_idx),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
