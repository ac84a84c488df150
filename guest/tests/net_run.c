/*
 * A stand-in kernel for `sparkler run --net ... --vsock ...` and the same
 * VM from a Firecracker config file (tests/guest/run_network_test.py).
 * At CPL0 (the Linux boot path sets no user segments up), so it moves
 * only a few bytes:
 *
 *   - vsock, guest to host: to host port 5000 "hello from the guest\n",
 *     back "bye\n", then SHUTDOWN and the device's RST;
 *   - vsock, host to guest: accept a connection to port 6000, take
 *     "ping\n", answer "pong\n", then the host closes (SHUTDOWN, our RST);
 *   - net: the MAC given on the command line, then one frame (NF_TO_HOST,
 *     sequence 7) to the TAP.
 *
 * Then it powers off: `sparkler run` exits with status 0.
 */
#include "gvsock.h"

#include "net_frames.h"

#define RUN_MAC                                                                                    \
	{                                                                                          \
		0x06, 0x00, 0xac, 0x10, 0x00, 0x02                                                 \
	}

static uint8_t data[GVS_DATA];
static uint8_t tx_ring[GVQ_RING_BYTES(8)] __attribute__((aligned(4096)));
static uint8_t rx_ring[GVQ_RING_BYTES(8)] __attribute__((aligned(4096)));
static uint8_t frame[NF_HDR + NF_FRAME_MAX];

/* The next packet for c that is not a credit update: its data length. */
static uint32_t next(struct gvs_conn *c, struct gvs_hdr *h)
{
	for (;;) {
		uint32_t n = gvs_recv(h, data);

		if (gvs_mine(c, h) && h->op != GVS_OP_CREDIT_UPDATE)
			return n;
	}
}

static void say(struct gvs_conn *c, const char *s)
{
	struct gvs_hdr h = gvs_hdr_for(c, GVS_OP_RW);

	h.len = (uint32_t)strlen(s);
	gvs_send(&h, s, h.len);
	c->tx_cnt += h.len;
}

static void hear(struct gvs_conn *c, const char *s)
{
	struct gvs_hdr h;
	uint32_t n = next(c, &h);

	GUEST_ASSERT_EQ(h.op, GVS_OP_RW);
	GUEST_ASSERT(n == strlen(s) && memcmp(data, s, n) == 0);
	c->fwd_cnt += n;
}

static void vsock(void)
{
	struct gvs_conn c = {.port = 1111, .host_port = 5000};
	struct gvs_hdr h;

	gvs_up(true);
	gvs_op(&c, GVS_OP_REQUEST, 0);
	next(&c, &h);
	GUEST_ASSERT_EQ(h.op, GVS_OP_RESPONSE);
	say(&c, "hello from the guest\n");
	hear(&c, "bye\n");
	gvs_op(&c, GVS_OP_SHUTDOWN, 3);
	next(&c, &h);
	GUEST_ASSERT_EQ(h.op, GVS_OP_RST);

	do
		gvs_recv(&h, data);
	while (h.op != GVS_OP_REQUEST || h.dst_port != 6000);
	c = (struct gvs_conn){.port = 6000, .host_port = h.src_port};
	gvs_mine(&c, &h);
	gvs_op(&c, GVS_OP_RESPONSE, 0);
	hear(&c, "ping\n");
	say(&c, "pong\n");
	next(&c, &h);
	GUEST_ASSERT_EQ(h.op, GVS_OP_SHUTDOWN);
	gvs_op(&c, GVS_OP_RST, 0);
}

static void net(void)
{
	static const uint8_t mac[6] = RUN_MAC;
	struct gvirtio d;
	uint32_t len;

	GUEST_ASSERT_EQ(gvirtio_find(&d, GV_ID_NET), 0);
	GUEST_ASSERT_EQ(gvirtio_init(&d, NF_F_MAC | NF_F_STATUS), 0);
	for (unsigned i = 0; i < 6; i++)
		GUEST_ASSERT_EQ(gvirtio_cfg_read(&d, i, 1), mac[i]);
	GUEST_ASSERT_EQ(gvirtio_queue(&d, 0, 8, rx_ring), 0);
	GUEST_ASSERT_EQ(gvirtio_queue(&d, 1, 8, tx_ring), 0);
	gvirtio_ready(&d);
	uint32_t n = nf_build(frame, mac, nf_broadcast, NF_TO_HOST, 7);
	struct gvbuf b = {frame, NF_HDR + n, false};
	GUEST_ASSERT(gvq_submit(&d.q[1], &b, 1) >= 0);
	gvq_kick(&d.q[1]);
	GUEST_ASSERT(gvq_wait(&d.q[1], &len, 1ull << 32) >= 0);
}

int main(void)
{
	vsock();
	net();
	return 0;
}
