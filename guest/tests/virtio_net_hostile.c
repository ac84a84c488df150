/*
 * A hostile virtio-net driver, at CPL3. Frames the device must drop (and
 * log) while it goes on: one over 64 KiB, one asking for GSO, a runt; a
 * frame from the host too big for the one small receive buffer posted
 * (dropped), then one that fits. Then protocol violations, each ending in
 * NEEDS_RESET and a reset that brings the device back: a transmit chain
 * with a device-writable buffer, a transmit header of 8 bytes, a receive
 * chain with a device-readable buffer. The host checks what reached the
 * TAP at SYNC 2 and 3 and the log lines.
 */
#include <guest.h>
#include <virtio.h>

#include "net_frames.h"

#define QSIZE 8
#define RX    0
#define TX    1
#define SMALL 64
#define HUGE  70000

static uint8_t rx_ring[GVQ_RING_BYTES(QSIZE)] __attribute__((aligned(4096)));
static uint8_t tx_ring[GVQ_RING_BYTES(QSIZE)] __attribute__((aligned(4096)));
static uint8_t small[NF_HDR + SMALL];
static uint8_t huge[NF_HDR + HUGE];
static uint8_t tx[2048];
static struct gvirtio d;

static void post_small(void)
{
	struct gvbuf b = {small, sizeof(small), true};

	GUEST_ASSERT(gvq_submit(&d.q[RX], &b, 1) >= 0);
	gvq_kick(&d.q[RX]);
}

/* Reset and bring the device up again, with no receive buffers. */
static void up(void)
{
	GUEST_ASSERT_EQ(gvirtio_find(&d, GV_ID_NET), 0);
	GUEST_ASSERT_EQ(gvirtio_init(&d, NF_F_MAC), 0);
	GUEST_ASSERT_EQ(gvirtio_queue(&d, RX, QSIZE, rx_ring), 0);
	GUEST_ASSERT_EQ(gvirtio_queue(&d, TX, QSIZE, tx_ring), 0);
	gvirtio_ready(&d);
}

/* Transmit bufs; the chain must come back used (sent or dropped). */
static void transmit(const struct gvbuf *bufs, unsigned n)
{
	uint32_t len = 1;

	GUEST_ASSERT(gvq_submit(&d.q[TX], bufs, n) >= 0);
	gvq_kick(&d.q[TX]);
	GUEST_ASSERT(gvq_wait(&d.q[TX], &len, 1ull << 32) >= 0);
	GUEST_ASSERT_EQ(len, 0);
}

static void send_frame(uint8_t *buf, uint32_t len)
{
	struct gvbuf b = {buf, len, false};

	transmit(&b, 1);
}

/* Submit a broken chain on q: the device must want a reset without using it. */
static void violate(unsigned q, const struct gvbuf *bufs, unsigned n)
{
	uint64_t spins = 0;
	uint32_t len;

	GUEST_ASSERT(gvq_submit(&d.q[q], bufs, n) >= 0);
	gvq_kick(&d.q[q]);
	while (!(gvirtio_status(&d) & GV_S_NEEDS_RESET) && spins++ < (1ull << 34))
		guest_pause();
	GUEST_ASSERT(gvirtio_status(&d) & GV_S_NEEDS_RESET);
	GUEST_ASSERT_EQ(gvq_poll(&d.q[q], &len), -1);
}

static void drops(void)
{
	uint32_t n;

	n = nf_build(huge, nf_guest_mac, nf_broadcast, NF_TO_HOST, 100);
	for (uint32_t i = NF_HDR + n; i < sizeof(huge); i++)
		huge[i] = (uint8_t)i;
	send_frame(huge, sizeof(huge)); /* 70000 bytes of frame */
	n = nf_build(tx, nf_guest_mac, nf_broadcast, NF_TO_HOST, 101);
	tx[1] = 1; /* VIRTIO_NET_HDR_GSO_TCPV4, not negotiated */
	send_frame(tx, NF_HDR + n);
	nf_build(tx, nf_guest_mac, nf_broadcast, NF_TO_HOST, 102);
	send_frame(tx, NF_HDR + 5); /* a runt */
	n = nf_build(tx, nf_guest_mac, nf_broadcast, NF_TO_HOST, 1);
	send_frame(tx, NF_HDR + n); /* and one that goes through */
}

/* Wait for a frame of ours in the small buffer: its sequence number. */
static int receive_small(void)
{
	for (;;) {
		uint32_t len = 0;

		GUEST_ASSERT(gvq_wait(&d.q[RX], &len, 1ull << 34) >= 0);
		GUEST_ASSERT(len >= NF_HDR && len <= sizeof(small));
		nf_check_hdr(small);
		int seq = nf_check(small + NF_HDR, len - NF_HDR, nf_guest_mac, NF_TO_GUEST);
		if (seq >= 0)
			return seq;
		post_small(); /* someone else's frame */
	}
}

static uint64_t body(uint64_t arg)
{
	up();
	post_small();
	drops();
	guest_sync(2, 0); /* the host saw frame 1 only; it sends 10 (too big), then 0 */
	GUEST_ASSERT_EQ(receive_small(), 0);

	const struct gvbuf writable[2] = {{tx, NF_HDR + 60, false}, {small, 16, true}};
	violate(TX, writable, 2);
	up();
	const struct gvbuf short_hdr = {tx, 8, false};
	violate(TX, &short_hdr, 1);
	up();
	const struct gvbuf readable = {small, sizeof(small), false};
	violate(RX, &readable, 1);
	up();
	uint32_t n = nf_build(tx, nf_guest_mac, nf_broadcast, NF_TO_HOST, 2);
	send_frame(tx, NF_HDR + n);
	guest_sync(3, 0); /* the host saw frame 2 */
	return 0;
}

int main(void)
{
	guest_user_allow_ports(0, 0x10000); /* the user code drives the device */
	return (int)guest_run_user(body, 0);
}
