/*
 * A hostile virtio-vsock driver, at CPL3 (tests/guest/network_tests.c,
 * case vsock_hostile; the device allows VD_MAX_CONNS connections):
 *
 *   - packets the device answers with RST and a log line: an unknown
 *     operation, a type other than stream; one it drops with a log line: a
 *     wrong source CID; RST without a line: data for no connection;
 *   - one connection too many: RST and a log line (and a host program that
 *     connects then, at SYNC 2, is hung up on); after they close a new
 *     one works;
 *   - data far beyond the credit the device gave: the connection is reset;
 *   - protocol violations, each NEEDS_RESET and a reset that brings the
 *     device back: a header of 20 bytes, a length beyond the chain,
 *     device-writable buffers on the transmit queue, a device-readable
 *     receive buffer.
 */
#include "gvsock.h"

#include "vsock_data.h"

static uint8_t data[GVS_DATA];

/* The next packet that is not a credit update. */
static void recv_not_credit(struct gvs_hdr *h)
{
	do
		gvs_recv(h, data);
	while (h->op == GVS_OP_CREDIT_UPDATE);
}

static void expect(uint32_t port, uint16_t op)
{
	struct gvs_hdr h;

	recv_not_credit(&h);
	GUEST_ASSERT_EQ(h.dst_port, port);
	GUEST_ASSERT_EQ(h.op, op);
}

static struct gvs_conn connect(uint32_t port, uint32_t host_port)
{
	struct gvs_conn c = {.port = port, .host_port = host_port};

	gvs_op(&c, GVS_OP_REQUEST, 0);
	return c;
}

static void bad_headers(void)
{
	struct gvs_conn c = {.port = 2001, .host_port = VD_OPEN_PORT};
	struct gvs_hdr h = gvs_hdr_for(&c, 99);

	gvs_send(&h, NULL, 0); /* operation 99 */
	expect(2001, GVS_OP_RST);
	c.port = 2002;
	h = gvs_hdr_for(&c, GVS_OP_REQUEST);
	h.type = 2; /* SEQPACKET, not offered */
	gvs_send(&h, NULL, 0);
	expect(2002, GVS_OP_RST);
	c.port = 2003;
	h = gvs_hdr_for(&c, GVS_OP_REQUEST);
	h.src_cid = 99; /* not us: dropped, no answer */
	gvs_send(&h, NULL, 0);
	c.port = 2004;
	h = gvs_hdr_for(&c, GVS_OP_RW);
	h.len = 4;
	gvs_send(&h, "data", 4);  /* no such connection */
	expect(2004, GVS_OP_RST); /* and nothing for 2003 came before it */
}

static void too_many(void)
{
	struct gvs_conn c[VD_MAX_CONNS + 1];

	for (unsigned i = 0; i <= VD_MAX_CONNS; i++)
		c[i] = connect(3000 + i, VD_OPEN_PORT);
	for (unsigned i = 0, seen = 0; i <= VD_MAX_CONNS; i++) { /* in any order */
		struct gvs_hdr h;

		recv_not_credit(&h);
		unsigned at = h.dst_port - 3000;
		GUEST_ASSERT(at <= VD_MAX_CONNS && !(seen & 1u << at));
		GUEST_ASSERT_EQ(h.op, at == VD_MAX_CONNS ? GVS_OP_RST : GVS_OP_RESPONSE);
		seen |= 1u << at;
	}
	guest_sync(2, 0); /* the host tries one more from its side: closed at once */
	for (unsigned i = 0; i < VD_MAX_CONNS; i++)
		gvs_op(&c[i], GVS_OP_RST, 0);
	struct gvs_conn again = connect(3100, VD_OPEN_PORT);
	expect(3100, GVS_OP_RESPONSE);
	gvs_op(&again, GVS_OP_RST, 0);
}

/* 1 MiB at a host program that never reads, credit or not: the
 * connection is reset before it all went. */
static void beyond_credit(void)
{
	struct gvs_conn c = connect(4000, VD_SILENT_PORT);
	struct gvs_hdr h;

	expect(4000, GVS_OP_RESPONSE);
	for (uint32_t off = 0; off < (1u << 20); off += GVS_DATA) {
		h = gvs_hdr_for(&c, GVS_OP_RW);
		h.len = GVS_DATA;
		gvs_send(&h, data, GVS_DATA);
	}
	/* credit updates, then the RST (and more for what came after it) */
	do
		recv_not_credit(&h);
	while (h.dst_port != 4000 || h.op != GVS_OP_RST);
}

static void wait_needs_reset(void)
{
	uint64_t spins = 0;

	while (!(gvirtio_status(&gvs) & GV_S_NEEDS_RESET) && spins++ < (1ull << 34))
		guest_pause();
	GUEST_ASSERT(gvirtio_status(&gvs) & GV_S_NEEDS_RESET);
}

/* Submit a broken chain on q: the device wants a reset and did not use it. */
static void violate(unsigned q, const struct gvbuf *bufs, unsigned n)
{
	uint32_t len;

	GUEST_ASSERT(gvq_submit(&gvs.q[q], bufs, n) >= 0);
	gvq_kick(&gvs.q[q]);
	wait_needs_reset();
	GUEST_ASSERT_EQ(gvq_poll(&gvs.q[q], &len), -1);
}

static void violations(void)
{
	struct gvs_conn c = {.port = 5000, .host_port = VD_OPEN_PORT};
	struct gvs_hdr h = gvs_hdr_for(&c, GVS_OP_REQUEST);

	const struct gvbuf short_hdr = {&h, 20, false};
	violate(GVS_TX, &short_hdr, 1);
	gvs_up(true);
	h = gvs_hdr_for(&c, GVS_OP_RW);
	h.len = 100; /* and no data behind it */
	const struct gvbuf long_len = {&h, GVS_HDR, false};
	violate(GVS_TX, &long_len, 1);
	gvs_up(true);
	h = gvs_hdr_for(&c, GVS_OP_REQUEST);
	const struct gvbuf writable[2] = {{&h, GVS_HDR, false}, {data, 64, true}};
	violate(GVS_TX, writable, 2);
	gvs_up(false);
	const struct gvbuf readable = {gvs_rx[0], GVS_BUF, false};
	uint32_t len;
	GUEST_ASSERT(gvq_submit(&gvs.q[GVS_RX], &readable, 1) >= 0);
	gvq_kick(&gvs.q[GVS_RX]);
	c.host_port = 5999; /* nobody: the device has an RST to send, into that buffer */
	h = gvs_hdr_for(&c, GVS_OP_REQUEST);
	gvs_send(&h, NULL, 0);
	wait_needs_reset();
	GUEST_ASSERT_EQ(gvq_poll(&gvs.q[GVS_RX], &len), -1);
}

static uint64_t body(uint64_t arg)
{
	gvs_up(true);
	bad_headers();
	too_many();
	beyond_credit();
	gvs_up(true); /* a clean start: a reset closes what was open */
	violations();
	gvs_up(true);
	struct gvs_conn c = connect(4100, VD_OPEN_PORT);
	expect(4100, GVS_OP_RESPONSE);
	gvs_op(&c, GVS_OP_RST, 0);
	return 0;
}

int main(void)
{
	guest_user_allow_ports(0, 0x10000); /* the user code drives the device */
	return (int)guest_run_user(body, 0);
}
