/* SPDX-License-Identifier: Apache-2.0 */
/*
 * virtio-blk and virtio-rng across a snapshot (tests/guest/snapshot_tests.c,
 * case io). Both devices interrupt through MSI-X; a periodic LAPIC timer
 * bounds every wait (a lost interrupt ends in an assert, not a hang).
 *
 * Step k (1, 2, ...):
 *   write block k (sector k: 512 bytes of pattern(k)), kick,
 *   SYNC 10 (k): the write is still in flight; the host may take a
 *     snapshot here (its answer is ignored),
 *   wait for the blk interrupt and the used entry (status OK),
 *   read 64 bytes of virtio-rng, wait for its interrupt: the bytes vary
 *     and differ from the previous step's,
 *   SYNC 11 (k, blk interrupts, rng interrupts): answered 1, read back
 *     blocks 1..k and check them (SYNC 12 (k)), then go on.
 */
#include <guest.h>
#include <virtio.h>

#define LAPIC   0xfee00000ull
#define BVEC    0x51
#define RVEC    0x53
#define TVEC    0x40
#define QSIZE   8
#define SECTOR  512u
#define RNG_LEN 64u

struct hdr {
	uint32_t type, reserved;
	uint64_t sector;
};

static uint8_t bring[GVQ_RING_BYTES(QSIZE)] __attribute__((aligned(4096)));
static uint8_t rring[GVQ_RING_BYTES(QSIZE)] __attribute__((aligned(4096)));
static uint8_t block[SECTOR] __attribute__((aligned(512)));
static uint8_t rng[2][RNG_LEN];
static struct hdr hdr;
static volatile uint8_t status;
static volatile uint64_t birqs, rirqs, ticks;
static struct gvirtio blk, rngd;

static uint64_t host_sync(uint64_t stage, uint64_t a, uint64_t b, uint64_t c)
{
	return guest_hypercall(SPK_HC_UCALL, SPK_UCALL_SYNC, stage, a, b, c, 0);
}

static void on_blk(uint64_t v, uint64_t e, struct guest_frame *f)
{
	birqs++;
	mmio_write32(LAPIC + 0xb0, 0);
}

static void on_rng(uint64_t v, uint64_t e, struct guest_frame *f)
{
	rirqs++;
	mmio_write32(LAPIC + 0xb0, 0);
}

static void on_tick(uint64_t v, uint64_t e, struct guest_frame *f)
{
	ticks++;
	mmio_write32(LAPIC + 0xb0, 0);
}

static void fill(uint64_t k)
{
	for (unsigned i = 0; i < SECTOR; i += 8)
		*(uint64_t *)(block + i) = 0x5350414e00000000ull ^ (k << 16) ^ i;
}

/* Sleep until *count passes before and q has a used entry: its length. */
static uint32_t wait_irq(volatile uint64_t *count, uint64_t before, struct gvirtq *q)
{
	uint32_t len = 0;
	int head = -1;

	for (unsigned i = 0; (*count == before || head < 0) && i < 20000; i++) {
		if (head < 0)
			head = gvq_poll(q, &len);
		if (*count == before || head < 0)
			__asm__ volatile("sti; hlt; cli" ::: "memory");
	}
	GUEST_ASSERT(head >= 0);
	GUEST_ASSERT(*count != before); /* the interrupt came */
	return len;
}

static void blk_rw(uint32_t type, uint64_t sector, bool sync_before_wait, uint64_t k)
{
	struct gvbuf b[3] = {{&hdr, sizeof(hdr), false},
	                     {block, SECTOR, type == 0},
	                     {(const void *)&status, 1, true}};
	uint64_t before = birqs;

	hdr = (struct hdr){.type = type, .sector = sector};
	status = 0xee;
	GUEST_ASSERT(gvq_submit(&blk.q[0], b, 3) >= 0);
	gvq_kick(&blk.q[0]);
	if (sync_before_wait)
		host_sync(10, k, 0, 0);
	wait_irq(&birqs, before, &blk.q[0]);
	GUEST_ASSERT_EQ(status, 0);
}

static void rng_read(uint64_t k)
{
	struct gvbuf b = {rng[k & 1], RNG_LEN, true};
	uint64_t before = rirqs;
	unsigned same = 0;

	GUEST_ASSERT(gvq_submit(&rngd.q[0], &b, 1) >= 0);
	gvq_kick(&rngd.q[0]);
	GUEST_ASSERT_EQ(wait_irq(&rirqs, before, &rngd.q[0]), RNG_LEN);
	for (unsigned i = 0; i < RNG_LEN; i++)
		same += rng[0][i] == rng[1][i];
	GUEST_ASSERT(same < RNG_LEN / 2); /* not the previous step's bytes again */
}

static void setup(struct gvirtio *d, uint16_t id, uint8_t *ring, uint8_t idt)
{
	GUEST_ASSERT_EQ(gvirtio_find(d, id), 0);
	GUEST_ASSERT(d->msix_cap != 0);
	GUEST_ASSERT_EQ(gvirtio_init(d, 0), 0);
	GUEST_ASSERT_EQ(gvirtio_queue(d, 0, QSIZE, ring), 0);
	gvirtio_msix_vector(d, 1, 0, idt);
	gvirtio_msix_enable(d, true);
	GUEST_ASSERT_EQ(gvirtio_msix_route(d, 0, 1), 1);
	gvirtio_ready(d);
}

int main(void)
{
	mmio_write32(LAPIC + 0xf0, 0x1ff); /* software-enable the LAPIC */
	guest_irq_set(BVEC, on_blk);
	guest_irq_set(RVEC, on_rng);
	guest_irq_set(TVEC, on_tick);
	mmio_write32(LAPIC + 0x3e0, 0xb);               /* divide by 1 */
	mmio_write32(LAPIC + 0x320, TVEC | (1u << 17)); /* periodic */
	mmio_write32(LAPIC + 0x380, 1000000);
	setup(&blk, GV_ID_BLOCK, bring, BVEC);
	setup(&rngd, GV_ID_RNG, rring, RVEC);
	for (uint64_t k = 1;; k++) {
		fill(k);
		blk_rw(1, k, true, k); /* write, SYNC 10 while in flight */
		rng_read(k);
		if (host_sync(11, k, birqs, rirqs) != 1)
			continue;
		for (uint64_t j = 1; j <= k; j++) {
			blk_rw(0, j, false, 0);
			for (unsigned i = 0; i < SECTOR; i += 8)
				GUEST_ASSERT_EQ(*(uint64_t *)(block + i),
				                0x5350414e00000000ull ^ (j << 16) ^ i);
		}
		host_sync(12, k, 0, 0);
	}
	return 0;
}
