/*
 * virtio-vsock through the SDK driver, at CPL3, with the host side on
 * Unix sockets (tests/guest/network_tests.c, case vsock):
 *
 *   A. guest to host: connect to host port 5000 (uds_path_5000), send
 *      TO_HOST bytes within the device's credit, take FROM_HOST bytes back
 *      (giving credit as we go), see the host close (SHUTDOWN), answer RST;
 *   B. host to guest (after SYNC 2): refuse a connection to port 7000,
 *      accept one to port 6000, take ECHO bytes, send them back XOR 0x5a,
 *      shut down and get the device's RST. SYNC 3 tells the host which
 *      host port the connection came from.
 *
 * Every byte is checked against the pattern both sides compute.
 */
#include "gvsock.h"

#include "vsock_data.h"

static uint8_t data[GVS_DATA];
static uint8_t echo[VD_ECHO];
static uint32_t cid;

/* Wait for a packet for c (answering stray requests with RST). */
static uint32_t recv_for(struct gvs_conn *c, struct gvs_hdr *h)
{
	for (;;) {
		uint32_t n = gvs_recv(h, data);

		if (gvs_mine(c, h))
			return n;
		if (h->op == GVS_OP_REQUEST) {
			struct gvs_conn other = {.port = h->dst_port, .host_port = h->src_port};

			gvs_op(&other, GVS_OP_RST, 0);
			continue;
		}
		GUEST_ASSERT_EQ(h->op, GVS_OP_CREDIT_UPDATE); /* of a connection gone by */
	}
}

/* Send len pattern bytes from off, within the device's credit. */
static void send_data(struct gvs_conn *c, uint32_t total, uint8_t (*byte)(uint32_t))
{
	struct gvs_hdr h;

	for (uint32_t off = 0; off < total;) {
		uint32_t n = total - off < GVS_DATA ? total - off : GVS_DATA;

		while (gvs_credit(c) < n) {
			recv_for(c, &h); /* a CREDIT_UPDATE */
			GUEST_ASSERT_EQ(h.op, GVS_OP_CREDIT_UPDATE);
		}
		for (uint32_t i = 0; i < n; i++)
			data[i] = byte(off + i);
		struct gvs_hdr rw = gvs_hdr_for(c, GVS_OP_RW);
		rw.len = n;
		c->fwd_told = c->fwd_cnt;
		gvs_send(&rw, data, n);
		c->tx_cnt += n;
		off += n;
	}
}

/* Take total bytes of RW data, checked against byte(). */
static void take_data(struct gvs_conn *c, uint32_t total, uint8_t (*byte)(uint32_t), uint8_t *keep)
{
	struct gvs_hdr h;

	for (uint32_t got = 0; got < total;) {
		uint32_t n = recv_for(c, &h);

		if (h.op == GVS_OP_CREDIT_UPDATE)
			continue;
		GUEST_ASSERT_EQ(h.op, GVS_OP_RW);
		GUEST_ASSERT(n > 0 && got + n <= total);
		for (uint32_t i = 0; i < n; i++)
			GUEST_ASSERT_EQ(data[i], byte(got + i));
		if (keep)
			memcpy(keep + got, data, n);
		got += n;
		gvs_took(c, n);
	}
}

static void part_a(void)
{
	struct gvs_conn c = {.port = 1234, .host_port = 5000};
	struct gvs_hdr h;

	gvs_op(&c, GVS_OP_REQUEST, 0);
	recv_for(&c, &h);
	GUEST_ASSERT_EQ(h.op, GVS_OP_RESPONSE);
	GUEST_ASSERT(gvs_credit(&c) > 0);
	send_data(&c, VD_TO_HOST, vd_to_host);
	take_data(&c, VD_FROM_HOST, vd_from_host, NULL);
	do /* the host closed its end */
		recv_for(&c, &h);
	while (h.op == GVS_OP_CREDIT_UPDATE);
	GUEST_ASSERT_EQ(h.op, GVS_OP_SHUTDOWN);
	GUEST_ASSERT_EQ(h.flags, 3);
	gvs_op(&c, GVS_OP_RST, 0);
}

static uint32_t part_b(void)
{
	struct gvs_conn c = {.port = VD_GUEST_PORT};
	struct gvs_hdr h;

	for (;;) { /* a REQUEST for port 7000 first: refused */
		gvs_recv(&h, NULL);
		if (h.op != GVS_OP_REQUEST)
			continue;
		if (h.dst_port == VD_GUEST_PORT)
			break;
		struct gvs_conn other = {.port = h.dst_port, .host_port = h.src_port};
		gvs_op(&other, GVS_OP_RST, 0);
	}
	GUEST_ASSERT(h.src_port >= (1u << 30));
	c.host_port = h.src_port;
	gvs_mine(&c, &h);
	gvs_op(&c, GVS_OP_RESPONSE, 0);
	take_data(&c, VD_ECHO, vd_echo, echo);
	for (uint32_t i = 0; i < VD_ECHO; i++)
		echo[i] ^= 0x5a;
	for (uint32_t off = 0; off < VD_ECHO; off += GVS_DATA) {
		while (gvs_credit(&c) < GVS_DATA) {
			recv_for(&c, &h);
			GUEST_ASSERT_EQ(h.op, GVS_OP_CREDIT_UPDATE);
		}
		struct gvs_hdr rw = gvs_hdr_for(&c, GVS_OP_RW);
		rw.len = GVS_DATA;
		gvs_send(&rw, echo + off, GVS_DATA);
		c.tx_cnt += GVS_DATA;
	}
	gvs_op(&c, GVS_OP_SHUTDOWN, 3);
	do
		recv_for(&c, &h);
	while (h.op == GVS_OP_CREDIT_UPDATE);
	GUEST_ASSERT_EQ(h.op, GVS_OP_RST);
	return c.host_port;
}

static uint64_t body(uint64_t arg)
{
	gvs_up(true);
	GUEST_ASSERT_EQ(gvs_cid, VD_CID);
	cid = (uint32_t)gvs_cid;
	part_a();
	guest_sync(2, 0);
	uint32_t port = part_b();
	guest_sync(3, port);
	guest_printf("virtio-vsock: CID %u, %u + %u bytes with host port 5000, %u echoed for "
	             "host port %u\n",
	             cid, VD_TO_HOST, VD_FROM_HOST, VD_ECHO, port);
	return 0;
}

int main(void)
{
	guest_user_allow_ports(0, 0x10000); /* the user code drives the device */
	return (int)guest_run_user(body, 0);
}
