/* virtio-rng through the SDK driver, at CPL3: entropy that varies. */
#include <guest.h>
#include <virtio.h>

#define QSIZE 8
#define NBUF  4
#define BUFSZ 256

static uint8_t ring[GVQ_RING_BYTES(QSIZE)] __attribute__((aligned(4096)));
static uint8_t bufs[NBUF][BUFSZ];
static uint8_t first[NBUF][BUFSZ];

static void fetch(struct gvirtio *d)
{
	for (unsigned i = 0; i < NBUF; i++) {
		struct gvbuf b = {bufs[i], BUFSZ, true};

		GUEST_ASSERT(gvq_submit(&d->q[0], &b, 1) >= 0);
	}
	gvq_kick(&d->q[0]);
	for (unsigned i = 0; i < NBUF; i++) {
		uint32_t len = 0;
		int head = gvq_wait(&d->q[0], &len, 1ull << 32);

		GUEST_ASSERT(head >= 0);
		GUEST_ASSERT_EQ(len, BUFSZ);
	}
}

static unsigned distinct(const uint8_t *p, unsigned n)
{
	uint8_t seen[256] = {0};
	unsigned k = 0;

	for (unsigned i = 0; i < n; i++)
		if (!seen[p[i]]++)
			k++;
	return k;
}

static uint64_t body(uint64_t arg)
{
	struct gvirtio d;

	GUEST_ASSERT_EQ(gvirtio_find(&d, GV_ID_RNG), 0);
	GUEST_ASSERT_EQ(gvirtio_init(&d, GV_F_EVENT_IDX | GV_F_INDIRECT_DESC), 0);
	GUEST_ASSERT(d.features & GV_F_EVENT_IDX);
	GUEST_ASSERT(d.features & GV_F_INDIRECT_DESC);
	GUEST_ASSERT_EQ(gvirtio_queue(&d, 0, QSIZE, ring), 0);
	gvirtio_ready(&d);
	GUEST_ASSERT_EQ(gvirtio_status(&d),
	                GV_S_ACKNOWLEDGE | GV_S_DRIVER | GV_S_FEATURES_OK | GV_S_DRIVER_OK);
	fetch(&d);
	memcpy(first, bufs, sizeof(bufs));
	/* 1 KiB of random bytes has about 250 distinct values */
	GUEST_ASSERT(distinct(&bufs[0][0], sizeof(bufs)) > 200);
	for (unsigned i = 1; i < NBUF; i++)
		GUEST_ASSERT(memcmp(bufs[0], bufs[i], BUFSZ) != 0);
	fetch(&d);
	for (unsigned i = 0; i < NBUF; i++)
		GUEST_ASSERT(memcmp(first[i], bufs[i], BUFSZ) != 0);
	guest_printf("virtio-rng: %u distinct byte values in %u bytes\n",
	             distinct(&bufs[0][0], sizeof(bufs)), (unsigned)sizeof(bufs));
	return 0;
}

int main(void)
{
	guest_user_allow_ports(0, 0x10000); /* the user code drives the device */
	return (int)guest_run_user(body, 0);
}
