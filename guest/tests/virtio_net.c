/*
 * virtio-net through the SDK driver, at CPL3: the MAC in config space and
 * the link up, then FRAMES frames to the host (which reads them from the
 * TAP with a packet socket, at SYNC 2) and FRAMES frames from it, every
 * byte checked. Frames of other Ethernet types (the host's own traffic on
 * the TAP) are skipped.
 */
#include <guest.h>
#include <virtio.h>

#include "net_frames.h"

#define QSIZE  16
#define RX     0
#define TX     1
#define BUFSZ  2048
#define BATCH  16
#define FRAMES 64

static uint8_t rx_ring[GVQ_RING_BYTES(QSIZE)] __attribute__((aligned(4096)));
static uint8_t tx_ring[GVQ_RING_BYTES(QSIZE)] __attribute__((aligned(4096)));
static uint8_t rx_buf[QSIZE][BUFSZ];
static uint8_t tx_buf[BATCH][BUFSZ];
static uint8_t *by_head[QSIZE];
static struct gvirtio d;
static uint8_t mac[6];

static void post_rx(uint8_t *buf)
{
	struct gvbuf b = {buf, BUFSZ, true};
	int head = gvq_submit(&d.q[RX], &b, 1);

	GUEST_ASSERT(head >= 0 && head < QSIZE);
	by_head[head] = buf;
}

static void up(void)
{
	GUEST_ASSERT_EQ(gvirtio_find(&d, GV_ID_NET), 0);
	GUEST_ASSERT_EQ(gvirtio_init(&d, NF_F_MAC | NF_F_STATUS), 0);
	GUEST_ASSERT_EQ(d.features, NF_F_MAC | NF_F_STATUS | GV_F_VERSION_1);
	for (unsigned i = 0; i < 6; i++)
		mac[i] = (uint8_t)gvirtio_cfg_read(&d, i, 1);
	GUEST_ASSERT_EQ(memcmp(mac, nf_guest_mac, 6), 0);
	GUEST_ASSERT_EQ(gvirtio_cfg_read(&d, 6, 2), 1); /* VIRTIO_NET_S_LINK_UP */
	GUEST_ASSERT_EQ(gvirtio_queue(&d, RX, QSIZE, rx_ring), 0);
	GUEST_ASSERT_EQ(gvirtio_queue(&d, TX, QSIZE, tx_ring), 0);
	gvirtio_ready(&d);
	for (unsigned i = 0; i < QSIZE; i++)
		post_rx(rx_buf[i]);
	gvq_kick(&d.q[RX]);
}

/* Frames first .. first + BATCH - 1, made available together, one kick. */
static void send_batch(unsigned first)
{
	for (unsigned i = 0; i < BATCH; i++) {
		uint32_t n = nf_build(tx_buf[i], mac, nf_broadcast, NF_TO_HOST, first + i);
		struct gvbuf b = {tx_buf[i], NF_HDR + n, false};

		GUEST_ASSERT(gvq_submit(&d.q[TX], &b, 1) >= 0);
	}
	gvq_kick(&d.q[TX]);
	for (unsigned i = 0; i < BATCH; i++) {
		uint32_t len = 1;

		GUEST_ASSERT(gvq_wait(&d.q[TX], &len, 1ull << 32) >= 0);
		GUEST_ASSERT_EQ(len, 0);
	}
}

/* The next frame of type NF_TO_GUEST: its sequence number. */
static unsigned receive(void)
{
	for (;;) {
		uint32_t len = 0;
		int head = gvq_wait(&d.q[RX], &len, 1ull << 34);

		GUEST_ASSERT(head >= 0 && head < QSIZE && by_head[head]);
		uint8_t *buf = by_head[head];
		GUEST_ASSERT(len >= NF_HDR && len <= BUFSZ);
		nf_check_hdr(buf);
		int seq = nf_check(buf + NF_HDR, len - NF_HDR, mac, NF_TO_GUEST);
		post_rx(buf);
		gvq_kick(&d.q[RX]);
		if (seq >= 0)
			return (unsigned)seq;
	}
}

static uint64_t body(uint64_t arg)
{
	up();
	for (unsigned f = 0; f < FRAMES; f += BATCH)
		send_batch(f);
	guest_sync(2, 0); /* the host reads them, then sends its own */
	for (unsigned f = 0; f < FRAMES; f++)
		GUEST_ASSERT_EQ(receive(), f);
	guest_printf("virtio-net: %u frames each way, MAC %x:%x:%x:%x:%x:%x\n", FRAMES, mac[0],
	             mac[1], mac[2], mac[3], mac[4], mac[5]);
	return 0;
}

int main(void)
{
	guest_user_allow_ports(0, 0x10000); /* the user code drives the device */
	return (int)guest_run_user(body, 0);
}
