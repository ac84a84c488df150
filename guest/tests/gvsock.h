/*
 * A small virtio-vsock driver for the test guests (virtio_vsock*.c), on
 * top of the SDK's virtio-PCI driver: one receive buffer per descriptor,
 * a pool of transmit buffers, packets in and out. At CPL3 like the rest.
 */
#ifndef GVSOCK_H
#define GVSOCK_H

#include <guest.h>
#include <virtio.h>

#define GVS_QSIZE     16
#define GVS_RX        0
#define GVS_TX        1
#define GVS_EVENT     2
#define GVS_HDR       44
#define GVS_DATA      4096
#define GVS_BUF       (GVS_HDR + GVS_DATA)
#define GVS_HOST      2
#define GVS_BUF_ALLOC (64u << 10) /* what we tell the device we can take */

enum {
	GVS_OP_REQUEST = 1,
	GVS_OP_RESPONSE,
	GVS_OP_RST,
	GVS_OP_SHUTDOWN,
	GVS_OP_RW,
	GVS_OP_CREDIT_UPDATE,
	GVS_OP_CREDIT_REQUEST,
};

struct gvs_hdr {
	uint64_t src_cid, dst_cid;
	uint32_t src_port, dst_port, len;
	uint16_t type, op;
	uint32_t flags, buf_alloc, fwd_cnt;
} __attribute__((packed));

/* One connection as the guest sees it. */
struct gvs_conn {
	uint32_t port, host_port;
	uint32_t peer_buf_alloc, peer_fwd_cnt; /* the device's credit */
	uint32_t tx_cnt;                       /* bytes we sent */
	uint32_t fwd_cnt, fwd_told;            /* bytes we took, and as last told */
};

static uint8_t gvs_rings[3][GVQ_RING_BYTES(GVS_QSIZE)] __attribute__((aligned(4096)));
static uint8_t gvs_rx[GVS_QSIZE][GVS_BUF];
static uint8_t gvs_tx[GVS_QSIZE][GVS_BUF];
static uint8_t gvs_ev[4][8];
static uint8_t *gvs_by_head[GVS_QSIZE];
static struct gvirtio gvs;
static uint64_t gvs_cid;
static unsigned gvs_tx_out; /* transmit chains not used yet */

static inline void gvs_post_rx(uint8_t *buf, bool writable)
{
	struct gvbuf b = {buf, GVS_BUF, writable};
	int head = gvq_submit(&gvs.q[GVS_RX], &b, 1);

	GUEST_ASSERT(head >= 0 && head < GVS_QSIZE);
	gvs_by_head[head] = buf;
	gvq_kick(&gvs.q[GVS_RX]);
}

/* Reset and bring the device up; with rx, every receive buffer posted. */
static inline void gvs_up(bool rx)
{
	GUEST_ASSERT_EQ(gvirtio_find(&gvs, GV_ID_VSOCK), 0);
	GUEST_ASSERT_EQ(gvirtio_init(&gvs, 0), 0);
	gvs_cid = gvirtio_cfg_read(&gvs, 0, 4) | (uint64_t)gvirtio_cfg_read(&gvs, 4, 4) << 32;
	for (unsigned q = 0; q < 3; q++)
		GUEST_ASSERT_EQ(gvirtio_queue(&gvs, q, GVS_QSIZE, gvs_rings[q]), 0);
	gvirtio_ready(&gvs);
	GUEST_ASSERT_EQ(gvirtio_status(&gvs) & GV_S_NEEDS_RESET, 0);
	gvs_tx_out = 0;
	for (unsigned i = 0; i < 4; i++) {
		struct gvbuf b = {gvs_ev[i], 8, true};

		GUEST_ASSERT(gvq_submit(&gvs.q[GVS_EVENT], &b, 1) >= 0);
	}
	gvq_kick(&gvs.q[GVS_EVENT]);
	for (unsigned i = 0; rx && i < GVS_QSIZE; i++)
		gvs_post_rx(gvs_rx[i], true);
}

/* Transmit a raw chain (hostile tests) and wait until it is used. */
static inline void gvs_raw(const struct gvbuf *bufs, unsigned n)
{
	uint32_t len;

	while (gvs_tx_out)
		if (gvq_poll(&gvs.q[GVS_TX], &len) >= 0)
			gvs_tx_out--;
	GUEST_ASSERT(gvq_submit(&gvs.q[GVS_TX], bufs, n) >= 0);
	gvq_kick(&gvs.q[GVS_TX]);
	GUEST_ASSERT(gvq_wait(&gvs.q[GVS_TX], &len, 1ull << 32) >= 0);
}

/* Send a packet: a header and len bytes of data (copied). */
static inline void gvs_send(const struct gvs_hdr *h, const void *data, uint32_t len)
{
	struct gvirtq *q = &gvs.q[GVS_TX];
	uint32_t used;

	GUEST_ASSERT(len <= GVS_DATA);
	while (gvs_tx_out == GVS_QSIZE) {
		if (gvq_wait(q, &used, 1ull << 32) >= 0)
			gvs_tx_out--;
	}
	uint8_t *buf = gvs_tx[q->next_free % GVS_QSIZE];
	memcpy(buf, h, GVS_HDR);
	if (len)
		memcpy(buf + GVS_HDR, data, len);
	struct gvbuf b = {buf, GVS_HDR + len, false};
	GUEST_ASSERT(gvq_submit(q, &b, 1) >= 0);
	gvs_tx_out++;
	gvq_kick(q);
	while (gvs_tx_out && gvq_poll(q, &used) >= 0)
		gvs_tx_out--;
}

static inline struct gvs_hdr gvs_hdr_for(const struct gvs_conn *c, uint16_t op)
{
	return (struct gvs_hdr){.src_cid = gvs_cid,
	                        .dst_cid = GVS_HOST,
	                        .src_port = c->port,
	                        .dst_port = c->host_port,
	                        .type = 1,
	                        .op = op,
	                        .buf_alloc = GVS_BUF_ALLOC,
	                        .fwd_cnt = c->fwd_cnt};
}

static inline void gvs_op(struct gvs_conn *c, uint16_t op, uint32_t flags)
{
	struct gvs_hdr h = gvs_hdr_for(c, op);

	h.flags = flags;
	c->fwd_told = c->fwd_cnt;
	gvs_send(&h, NULL, 0);
}

/* The next packet into *h and data (at most GVS_DATA bytes): its data length. */
static inline uint32_t gvs_recv(struct gvs_hdr *h, uint8_t *data)
{
	uint32_t len = 0;
	int head = gvq_wait(&gvs.q[GVS_RX], &len, 1ull << 36);

	GUEST_ASSERT(head >= 0 && head < GVS_QSIZE && gvs_by_head[head]);
	uint8_t *buf = gvs_by_head[head];
	GUEST_ASSERT(len >= GVS_HDR && len <= GVS_BUF);
	memcpy(h, buf, GVS_HDR);
	GUEST_ASSERT_EQ(h->len, len - GVS_HDR);
	GUEST_ASSERT_EQ(h->src_cid, GVS_HOST);
	GUEST_ASSERT_EQ(h->dst_cid, gvs_cid);
	GUEST_ASSERT_EQ(h->type, 1);
	if (data && h->len)
		memcpy(data, buf + GVS_HDR, h->len);
	gvs_post_rx(buf, true);
	return h->len;
}

/* Is this packet for c? Takes its credit if so. */
static inline bool gvs_mine(struct gvs_conn *c, const struct gvs_hdr *h)
{
	if (h->dst_port != c->port || h->src_port != c->host_port)
		return false;
	c->peer_buf_alloc = h->buf_alloc;
	c->peer_fwd_cnt = h->fwd_cnt;
	return true;
}

static inline uint32_t gvs_credit(const struct gvs_conn *c)
{
	return c->peer_buf_alloc - (c->tx_cnt - c->peer_fwd_cnt);
}

/* We took n bytes: tell the device when a quarter of our buffer is free again. */
static inline void gvs_took(struct gvs_conn *c, uint32_t n)
{
	c->fwd_cnt += n;
	if (c->fwd_cnt - c->fwd_told >= GVS_BUF_ALLOC / 4)
		gvs_op(c, GVS_OP_CREDIT_UPDATE, 0);
}

#endif
