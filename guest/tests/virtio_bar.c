/*
 * The guest moves the rng's BAR: the device follows (its ioeventfds too),
 * the old place is empty, a place outside the PCI window is refused.
 * Kicks go through ioeventfds: the host counts MMIO exits around 100 of
 * them (SYNC 1/2 before the move, 3/4 after). At CPL3.
 */
#include <guest.h>
#include <virtio.h>

#define QSIZE   8
#define COMMAND 0x04
#define BAR0    0x10
#define KICKS   100

static uint8_t ring[GVQ_RING_BYTES(QSIZE)] __attribute__((aligned(4096)));
static uint8_t data[64];
static struct gvirtio d;

static void request(void)
{
	struct gvbuf b = {data, sizeof(data), true};
	uint32_t len = 0;

	GUEST_ASSERT(gvq_submit(&d.q[0], &b, 1) >= 0);
	gvq_kick(&d.q[0]);
	GUEST_ASSERT(gvq_wait(&d.q[0], &len, 1ull << 32) >= 0);
	GUEST_ASSERT_EQ(len, sizeof(data));
}

static void kicks(uint64_t stage)
{
	guest_sync(stage, 0);
	for (int i = 0; i < KICKS; i++)
		gvq_kick(&d.q[0]);
	guest_sync(stage + 1, 0);
}

/* Program BAR 0 (64-bit) with decoding off, then on again. */
static void set_bar(uint64_t addr)
{
	gpci_write((unsigned)d.slot, COMMAND, 2, 0x4);
	gpci_write((unsigned)d.slot, BAR0, 4, (uint32_t)addr);
	gpci_write((unsigned)d.slot, BAR0 + 4, 4, (uint32_t)(addr >> 32));
	gpci_write((unsigned)d.slot, COMMAND, 2, 0x6);
}

static uint64_t body(uint64_t arg)
{
	GUEST_ASSERT_EQ(gvirtio_find(&d, GV_ID_RNG), 0);
	GUEST_ASSERT_EQ(gvirtio_init(&d, 0), 0);
	GUEST_ASSERT_EQ(gvirtio_queue(&d, 0, QSIZE, ring), 0);
	gvirtio_ready(&d);
	request();
	kicks(1);

	uint64_t old = d.bar, to = d.bar + 0x1000000, delta = to - old;
	set_bar(to);
	d.bar += delta;
	d.common += delta;
	d.notify += delta;
	d.isr += delta;
	d.q[0].notify += delta;
	GUEST_ASSERT_EQ(mmio_read32(old), 0xffffffffu); /* nothing there any more */
	GUEST_ASSERT(gvirtio_status(&d) & GV_S_DRIVER_OK);
	request();
	kicks(3);

	set_bar(0x10000000); /* outside the window: not decoded (the host logs it) */
	set_bar(to);
	request();
	return 0;
}

int main(void)
{
	guest_user_allow_ports(0, 0x10000); /* the user code drives the device */
	return (int)guest_run_user(body, 0);
}
