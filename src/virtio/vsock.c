/* SPDX-License-Identifier: Apache-2.0 */
/*
 * virtio-vsock (virtio 1.2 section 5.10), stream sockets only, with the
 * host side on Unix sockets the way Firecracker does it:
 *
 *   - host to guest: a host program connects to uds_path and writes
 *     "CONNECT <port>\n"; we send the guest a REQUEST from a host port of
 *     our own (from 2^30 up), and when the guest answers RESPONSE we write
 *     "OK <host port>\n" to the program, after which the socket is the
 *     stream;
 *   - guest to host: a REQUEST for host port P connects to the Unix
 *     socket uds_path_P (a host program listens there); RESPONSE if it
 *     connects, RST if not.
 *
 * Queues: 0 receive (to the guest), 1 transmit, 2 events (never used: we
 * have no transport resets to announce). Flow control is the protocol's
 * credit: we advertise VS_BUF bytes per connection and buffer at most
 * that much of the guest's data for a host socket that is slow to read;
 * we send the guest no more than the credit it gave us. Connections are
 * limited in number (max_conns); packets that belong to none get an RST.
 *
 * Everything runs on the event loop. Host sockets are watched one-shot:
 * a readable socket marks its connection as having data, and nothing is
 * read from it until a receive buffer and credit are there, so neither
 * a guest that posts no buffers nor a host that writes a lot keeps the
 * loop busy. Each event moves at most VS_BUDGET packets per queue.
 *
 * A guest that sends a broken packet (shorter than the header, a length
 * beyond its buffers or over 64 KiB, device-writable buffers on the
 * transmit queue) gets NEEDS_RESET; one with a wrong CID, type or
 * operation, or data beyond its credit, gets an RST and a rate-limited
 * log line.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <sparkler/snapshot.h>
#include <sparkler/virtio_vsock.h>

#include "core/internal.h"
#include "devices/devlog.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "virtio-vsock: the packet header is little-endian, like this code's hosts"
#endif

#define VS_QUEUE_SIZE 256
#define VS_RX         0
#define VS_TX         1
#define VS_EVENT      2
#define VS_HOST_CID   2
#define VS_PKT_MAX    (64u << 10)  /* data in one packet, either way */
#define VS_BUF        (256u << 10) /* per connection: what the guest may have in flight */
#define VS_CREDIT_LOW (64u << 10)  /* tell the guest when its view drops below this */
#define VS_BUDGET     64           /* packets per event and queue */
#define VS_CONNS      128          /* default connection limit */
#define VS_CONNS_MAX  4096
#define VS_RST_MAX    64 /* RSTs waiting for receive buffers, for packets of no connection */
#define VS_LINE_MAX   32 /* "CONNECT 4294967295\n" */
#define VS_LOCAL_PORT (1u << 30)
#define VS_IOV_MAX    (2 * VS_QUEUE_SIZE)
#define VS_CLASS      0xff0000
#define VS_CFG_SIZE   8 /* guest_cid, le64 */

enum {
	OP_REQUEST = 1,
	OP_RESPONSE,
	OP_RST,
	OP_SHUTDOWN,
	OP_RW,
	OP_CREDIT_UPDATE,
	OP_CREDIT_REQUEST
};
#define TYPE_STREAM 1
#define SHUT_RCV    1
#define SHUT_SEND   2

struct vs_hdr {
	uint64_t src_cid, dst_cid;
	uint32_t src_port, dst_port, len;
	uint16_t type, op;
	uint32_t flags, buf_alloc, fwd_cnt;
} __attribute__((packed));
#define VS_HDR_LEN ((uint32_t)sizeof(struct vs_hdr))
_Static_assert(sizeof(struct vs_hdr) == 44, "virtio_vsock_hdr is 44 bytes");

enum conn_state {
	C_FREE = 0,
	C_CMD,        /* host connected, its CONNECT line not read yet */
	C_LOCAL_INIT, /* our REQUEST to the guest is out, no RESPONSE yet */
	C_PEER_INIT,  /* the guest asked, our RESPONSE is not sent yet */
	C_ESTABLISHED,
	C_LOCAL_CLOSED, /* the host side ended: SHUTDOWN sent, waiting for the guest's RST */
	C_DEAD,         /* to be closed by the loop (after a device reset) */
};

/* What a connection has to tell the guest (one receive buffer each). */
enum { P_RST = 1, P_RESPONSE = 2, P_REQUEST = 4, P_RW = 8, P_CREDIT = 16 };

struct conn {
	enum conn_state st;
	int fd;
	bool armed; /* the one-shot watch is set */
	uint32_t local_port, peer_port;
	uint8_t pend;      /* P_* */
	uint8_t peer_shut; /* SHUT_* the guest sent */
	char line[VS_LINE_MAX];
	uint32_t line_len;
	/* guest to host: bytes the host socket has not taken yet (a ring) */
	uint8_t *buf;
	uint32_t buf_head, buf_len;
	uint32_t fwd_cnt;       /* guest bytes passed on to the host socket */
	uint32_t last_fwd_sent; /* fwd_cnt as the guest last heard it */
	/* host to guest */
	uint32_t tx_cnt; /* bytes sent to the guest */
	uint32_t peer_buf_alloc, peer_fwd_cnt;
	struct spk_virtio_vsock *v;
};

struct rst {
	uint32_t local_port, peer_port;
};

struct spk_virtio_vsock {
	struct spk_virtio *vd;
	struct spk_evloop *loop;
	uint32_t guest_cid;
	char *uds_path;
	int listen_fd;
	int ctl_fd; /* eventfd: close connections a reset left behind */
	uint32_t max_conns;
	/* under the device lock */
	struct conn *conns;
	uint32_t n_conns;
	uint32_t cursor;     /* round robin over connections with something to say */
	uint32_t next_local; /* the last local port handed out */
	struct rst rsts[VS_RST_MAX];
	uint32_t rst_head, rst_len;
	bool rx_held;
	struct spk_virtq_chain rx; /* a receive chain taken and not filled yet */
	bool reset_pending;        /* a restore: TRANSPORT_RESET waits for an event buffer */
	struct spk_virtio_vsock_stats st;
	/* what the guest does wrong, and what the host side meets: a guest
	 * cannot use up the lines that tell of host programs turned away */
	struct spk_dev_ratelimit rl, rl_host;
};

#define vs_log_rl(v, rl, fmt, ...)                                                                 \
	spk_dev_log(&(v)->rl, spk_virtio_name((v)->vd), SPK_LOG_WARN, "%s: " fmt,                  \
	            spk_virtio_name((v)->vd), __VA_ARGS__)
#define vs_log(v, fmt, ...) vs_log_rl(v, rl, fmt, __VA_ARGS__)

static void rx_pump(struct spk_virtio_vsock *v);

/* ---- connections ---------------------------------------------------------------------------- */

static uint32_t peer_credit(const struct conn *c)
{
	return c->peer_buf_alloc - (c->tx_cnt - c->peer_fwd_cnt);
}

/* Data can move from the host socket to the guest. */
static bool can_read(const struct conn *c)
{
	return (c->st == C_ESTABLISHED && !(c->peer_shut & SHUT_RCV)) && peer_credit(c) > 0;
}

static struct conn *conn_find(struct spk_virtio_vsock *v, uint32_t local, uint32_t peer)
{
	for (uint32_t i = 0; i < v->max_conns; i++) {
		struct conn *c = &v->conns[i];

		if (c->st != C_FREE && c->st != C_CMD && c->st != C_DEAD &&
		    c->local_port == local && c->peer_port == peer)
			return c;
	}
	return NULL;
}

static void on_conn(void *opaque, int fd, uint32_t events);

/* A free slot with fd watched (disarmed); NULL at the limit. */
static struct conn *conn_new(struct spk_virtio_vsock *v, int fd, enum conn_state st)
{
	for (uint32_t i = 0; i < v->max_conns; i++) {
		struct conn *c = &v->conns[i];

		if (c->st != C_FREE)
			continue;
		*c = (struct conn){.st = st, .fd = fd, .v = v};
		if (spk_evloop_add(v->loop, fd, EPOLLONESHOT, on_conn, c) < 0) {
			c->st = C_FREE;
			return NULL;
		}
		v->n_conns++;
		return c;
	}
	return NULL;
}

static void conn_free(struct spk_virtio_vsock *v, struct conn *c)
{
	spk_evloop_del(v->loop, c->fd);
	close(c->fd);
	free(c->buf);
	*c = (struct conn){.st = C_FREE, .fd = -1};
	v->n_conns--;
}

/* Watch the host socket for what the connection can use now (one-shot). */
static void conn_rearm(struct spk_virtio_vsock *v, struct conn *c)
{
	uint32_t ev = 0;

	if (c->st == C_FREE || c->st == C_DEAD)
		return;
	if (c->buf_len)
		ev |= EPOLLOUT;
	if (c->st == C_CMD || (can_read(c) && !(c->pend & P_RW)))
		ev |= EPOLLIN;
	if (!ev && !c->armed)
		return; /* left disarmed: not even a hang-up wakes us */
	if (spk_evloop_mod(v->loop, c->fd, ev | EPOLLONESHOT) == 0)
		c->armed = ev != 0;
}

/* End the connection with an RST to the guest (what it still had for the
 * host is dropped). */
static void conn_kill(struct spk_virtio_vsock *v, struct conn *c)
{
	if (c->st == C_CMD) {
		conn_free(v, c);
		return;
	}
	c->st = C_LOCAL_CLOSED;
	c->pend = P_RST;
	c->buf_len = 0;
}

/* ---- guest to host bytes ----------------------------------------------------------------------
 */

static ssize_t send_iov(int fd, struct iovec *iov, int n)
{
	struct msghdr m = {.msg_iov = iov, .msg_iovlen = (size_t)n};
	ssize_t w;

	do
		w = sendmsg(fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (w < 0 && errno == EINTR);
	return w;
}

/* Guest data passed on to the host socket. */
static void forwarded(struct spk_virtio_vsock *v, struct conn *c, uint32_t n)
{
	c->fwd_cnt += n;
	v->st.tx_bytes += n;
}

/* Tell the guest it has room again once its view of our buffer (VS_BUF
 * less what it sent since the fwd_cnt it last heard) runs low. */
static void credit_check(struct conn *c)
{
	uint32_t sent = c->fwd_cnt + c->buf_len - c->last_fwd_sent;

	if (c->fwd_cnt != c->last_fwd_sent && VS_BUF - sent < VS_CREDIT_LOW)
		c->pend |= P_CREDIT;
}

/* After the buffer drained: finish a shutdown the guest asked for. */
static void drained(struct spk_virtio_vsock *v, struct conn *c)
{
	if (c->buf_len)
		return;
	if ((c->peer_shut & (SHUT_RCV | SHUT_SEND)) == (SHUT_RCV | SHUT_SEND))
		c->pend |= P_RST;
	else if (c->peer_shut & SHUT_SEND)
		shutdown(c->fd, SHUT_WR); /* the host program reads EOF */
}

/* Write what the buffer holds; false if the host socket failed. */
static bool flush(struct spk_virtio_vsock *v, struct conn *c)
{
	uint32_t first = VS_BUF - c->buf_head < c->buf_len ? VS_BUF - c->buf_head : c->buf_len;
	struct iovec iov[2] = {{c->buf + c->buf_head, first}, {c->buf, c->buf_len - first}};
	ssize_t w;

	if (!c->buf_len)
		return true;
	w = send_iov(c->fd, iov, c->buf_len > first ? 2 : 1);
	if (w < 0)
		return errno == EAGAIN;
	c->buf_head = (c->buf_head + (uint32_t)w) % VS_BUF;
	c->buf_len -= (uint32_t)w;
	forwarded(v, c, (uint32_t)w);
	credit_check(c);
	drained(v, c);
	return true;
}

/* Copy len bytes at off of the chain into the buffer (room checked). */
static bool buffer(struct spk_virtio_vsock *v, struct conn *c, const struct spk_virtq_chain *ch,
                   uint32_t off, uint32_t len)
{
	if (!c->buf && !(c->buf = malloc(VS_BUF)))
		return false;
	while (len) {
		uint32_t tail = (c->buf_head + c->buf_len) % VS_BUF;
		uint32_t n = VS_BUF - tail < len ? VS_BUF - tail : len;

		if (spk_virtq_read(spk_virtio_mem(v->vd), ch, off, c->buf + tail, n) != n)
			return false;
		c->buf_len += n;
		off += n;
		len -= n;
	}
	return true;
}

/* An RW packet's data, to the host socket or the buffer. */
static void conn_data(struct spk_virtio_vsock *v, struct conn *c, const struct spk_virtq_chain *ch,
                      uint32_t len)
{
	struct iovec iov[VS_IOV_MAX];
	uint32_t done = 0;

	if (len > VS_BUF - c->buf_len) {
		vs_log(v, "port %u: %u bytes of data beyond the credit of %u; connection reset",
		       c->peer_port, len, VS_BUF - c->buf_len);
		conn_kill(v, c);
		return;
	}
	if (!c->buf_len) {
		int n = spk_virtq_iov(spk_virtio_mem(v->vd), ch, false, VS_HDR_LEN, len, iov,
		                      VS_IOV_MAX);
		ssize_t w = n > 0 ? send_iov(c->fd, iov, n) : 0;

		if (w < 0 && errno != EAGAIN) {
			conn_kill(v, c); /* the host program went away */
			return;
		}
		done = w > 0 ? (uint32_t)w : 0;
		forwarded(v, c, done);
	}
	if (done < len && !buffer(v, c, ch, VS_HDR_LEN + done, len - done)) {
		conn_kill(v, c);
		return;
	}
	credit_check(c);
}

/* ---- packets from the guest ---------------------------------------------------------------------
 */

static void queue_rst(struct spk_virtio_vsock *v, const struct vs_hdr *h)
{
	if (h->op == OP_RST || v->rst_len == VS_RST_MAX)
		return; /* never answer an RST; a full queue drops (the guest times out) */
	v->rsts[(v->rst_head + v->rst_len++) % VS_RST_MAX] =
	    (struct rst){.local_port = h->dst_port, .peer_port = h->src_port};
}

/* uds_path_PORT for a guest REQUEST; -errno. */
static int connect_port(struct spk_virtio_vsock *v, uint32_t port)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	int fd, n = snprintf(a.sun_path, sizeof(a.sun_path), "%s_%u", v->uds_path, port);

	if (n < 0 || (size_t)n >= sizeof(a.sun_path))
		return -ENAMETOOLONG;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		int err = errno;

		close(fd);
		return -err;
	}
	return fd;
}

static void peer_request(struct spk_virtio_vsock *v, const struct vs_hdr *h)
{
	struct conn *c = NULL;
	int fd;

	if (v->n_conns >= v->max_conns) {
		vs_log(v, "too many connections (the limit is %u): refused one to port %u",
		       v->max_conns, h->dst_port);
		v->st.refused++;
		queue_rst(v, h);
		return;
	}
	fd = connect_port(v, h->dst_port);
	if (fd < 0 || !(c = conn_new(v, fd, C_PEER_INIT))) {
		if (fd >= 0)
			close(fd);
		v->st.refused++;
		queue_rst(v, h); /* nobody listens on uds_path_PORT */
		return;
	}
	c->local_port = h->dst_port;
	c->peer_port = h->src_port;
	c->peer_buf_alloc = h->buf_alloc;
	c->peer_fwd_cnt = h->fwd_cnt;
	c->pend = P_RESPONSE;
	v->st.opened++;
}

static void conn_shutdown(struct spk_virtio_vsock *v, struct conn *c, uint32_t flags)
{
	if (c->st != C_ESTABLISHED)
		return;
	c->peer_shut |= (uint8_t)(flags & (SHUT_RCV | SHUT_SEND));
	if (c->peer_shut & SHUT_RCV)
		c->pend &= (uint8_t)~P_RW;
	drained(v, c);
}

/* The guest accepted a host program's CONNECT: tell the program. */
static void conn_accepted(struct spk_virtio_vsock *v, struct conn *c)
{
	char ok[24];
	int n = snprintf(ok, sizeof(ok), "OK %u\n", c->local_port);
	struct iovec iov = {ok, (size_t)n};

	c->st = C_ESTABLISHED;
	if (send_iov(c->fd, &iov, 1) != n)
		conn_kill(v, c); /* a fresh socket that cannot take 20 bytes: gone */
}

/* A packet for an existing connection. */
static void conn_packet(struct spk_virtio_vsock *v, struct conn *c, const struct vs_hdr *h,
                        const struct spk_virtq_chain *ch)
{
	c->peer_buf_alloc = h->buf_alloc;
	c->peer_fwd_cnt = h->fwd_cnt;
	switch (h->op) {
	case OP_RST:
		conn_free(v, c);
		return;
	case OP_RESPONSE:
		if (c->st == C_LOCAL_INIT)
			conn_accepted(v, c);
		break;
	case OP_RW:
		if (c->st == C_ESTABLISHED && !(c->peer_shut & SHUT_SEND))
			conn_data(v, c, ch, h->len);
		else if (c->st != C_LOCAL_CLOSED)
			conn_kill(v, c); /* data before the handshake or after its SHUTDOWN */
		break;
	case OP_SHUTDOWN:
		conn_shutdown(v, c, h->flags);
		break;
	case OP_CREDIT_REQUEST:
		c->pend |= P_CREDIT;
		break;
	case OP_REQUEST:
		conn_kill(v, c); /* a second request for a connection that exists */
		break;
	default: /* CREDIT_UPDATE: the credit is taken above */
		break;
	}
	conn_rearm(v, c);
}

/* Header checks that do not depend on a connection: true if the packet
 * may go on; false after an RST or a drop. */
static bool hdr_ok(struct spk_virtio_vsock *v, const struct vs_hdr *h)
{
	if (h->src_cid != v->guest_cid) {
		vs_log(v, "a packet from CID %llu, but the guest is CID %u; dropped",
		       (unsigned long long)h->src_cid, v->guest_cid);
		return false;
	}
	if (h->dst_cid != VS_HOST_CID) {
		vs_log(v, "a packet for CID %llu: only the host (2) is there; dropped",
		       (unsigned long long)h->dst_cid);
		return false;
	}
	if (h->type != TYPE_STREAM || h->op < OP_REQUEST || h->op > OP_CREDIT_REQUEST) {
		vs_log(v,
		       "port %u: a packet of type %u, operation %u (only streams, operations "
		       "1 to 7); reset",
		       h->src_port, h->type, h->op);
		queue_rst(v, h);
		return false;
	}
	return true;
}

/* The chain's header, checked against the chain: false (and NEEDS_RESET)
 * if the guest broke the protocol. */
static bool tx_header(struct spk_virtio_vsock *v, const struct spk_virtq_chain *ch,
                      struct vs_hdr *h)
{
	if (ch->n_out < ch->n) {
		spk_virtio_fail(v->vd, VS_TX, "packet chain %u has %u device-writable buffers",
		                ch->head, ch->n - ch->n_out);
		return false;
	}
	if (ch->out_len < VS_HDR_LEN) {
		spk_virtio_fail(v->vd, VS_TX,
		                "packet of %u bytes is shorter than the %u-byte header",
		                ch->out_len, VS_HDR_LEN);
		return false;
	}
	if (spk_virtq_read(spk_virtio_mem(v->vd), ch, 0, h, sizeof(*h)) != sizeof(*h))
		return false;
	if (h->len > VS_PKT_MAX || h->len > ch->out_len - VS_HDR_LEN) {
		spk_virtio_fail(v->vd, VS_TX,
		                "packet %u claims %u bytes of data and carries %u (at most %u)",
		                ch->head, h->len, ch->out_len - VS_HDR_LEN, VS_PKT_MAX);
		return false;
	}
	return true;
}

/* One transmit chain; false if the guest broke the device. */
static bool tx_packet(struct spk_virtio_vsock *v, const struct spk_virtq_chain *ch)
{
	struct vs_hdr h;
	struct conn *c;

	if (!tx_header(v, ch, &h))
		return false;
	if (!hdr_ok(v, &h))
		return true;
	c = conn_find(v, h.dst_port, h.src_port);
	if (c)
		conn_packet(v, c, &h, ch);
	else if (h.op == OP_REQUEST)
		peer_request(v, &h);
	else
		queue_rst(v, &h); /* a packet for no connection */
	return true;
}

static void tx_pump(struct spk_virtio_vsock *v)
{
	struct spk_virtq_chain ch;
	unsigned i, used = 0;

	for (i = 0; i < VS_BUDGET && spk_virtio_pop(v->vd, VS_TX, &ch) > 0; i++) {
		if (!tx_packet(v, &ch))
			return;
		spk_virtio_push(v->vd, VS_TX, &ch, 0);
		used++;
	}
	if (used)
		spk_virtio_interrupt(v->vd, VS_TX);
	if (i == VS_BUDGET)
		spk_virtio_kick(v->vd, VS_TX);
	rx_pump(v); /* answers (RESPONSE, RST, credit) */
}

/* ---- packets to the guest
 * ------------------------------------------------------------------------ */

static void hdr_for(const struct spk_virtio_vsock *v, struct conn *c, uint16_t op, struct vs_hdr *h)
{
	*h = (struct vs_hdr){.src_cid = VS_HOST_CID,
	                     .dst_cid = v->guest_cid,
	                     .src_port = c->local_port,
	                     .dst_port = c->peer_port,
	                     .type = TYPE_STREAM,
	                     .op = op,
	                     .buf_alloc = VS_BUF,
	                     .fwd_cnt = c->fwd_cnt};
	c->last_fwd_sent = c->fwd_cnt;
}

/* Data from the host socket into the chain: bytes, 0 for none now, -1 at EOF or error. */
static ssize_t read_data(struct spk_virtio_vsock *v, struct conn *c)
{
	uint32_t room = v->rx.in_len - VS_HDR_LEN, want = peer_credit(c);
	struct iovec iov[VS_IOV_MAX];
	ssize_t r;
	int n;

	if (want > room)
		want = room;
	if (want > VS_PKT_MAX)
		want = VS_PKT_MAX;
	n = spk_virtq_iov(spk_virtio_mem(v->vd), &v->rx, true, VS_HDR_LEN, want, iov, VS_IOV_MAX);
	if (n <= 0)
		return -1;
	do
		r = readv(c->fd, iov, n);
	while (r < 0 && errno == EINTR);
	if (r < 0 && errno == EAGAIN)
		return 0;
	return r > 0 ? r : -1;
}

/* The packet a connection has for the guest, in priority order; false if
 * it had nothing after all (its data was not there). */
static bool conn_rx(struct spk_virtio_vsock *v, struct conn *c, struct vs_hdr *h)
{
	static const struct {
		uint8_t bit;
		uint16_t op;
	} order[] = {{P_RST, OP_RST},
	             {P_RESPONSE, OP_RESPONSE},
	             {P_REQUEST, OP_REQUEST},
	             {P_RW, OP_RW},
	             {P_CREDIT, OP_CREDIT_UPDATE}};

	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		if (!(c->pend & order[i].bit))
			continue;
		c->pend &= (uint8_t)~order[i].bit;
		hdr_for(v, c, order[i].op, h);
		if (order[i].bit == P_RESPONSE)
			c->st = C_ESTABLISHED;
		if (order[i].bit != P_RW)
			return true;
		if (!can_read(c))
			continue; /* the credit went, or the guest shut its side */
		ssize_t r = read_data(v, c);
		if (r == 0)
			continue; /* nothing after all: the watch is set again */
		if (r < 0) {      /* the host program closed (or failed): no more either way */
			c->st = C_LOCAL_CLOSED;
			h->op = OP_SHUTDOWN;
			h->flags = SHUT_RCV | SHUT_SEND;
			return true;
		}
		h->len = (uint32_t)r;
		c->tx_cnt += (uint32_t)r;
		v->st.rx_bytes += (uint64_t)r;
		c->pend |= P_RW; /* maybe more */
		return true;
	}
	return false;
}

/* The next connection with something for the guest, round robin. */
static struct conn *next_pending(struct spk_virtio_vsock *v)
{
	for (uint32_t i = 0; i < v->max_conns; i++) {
		struct conn *c = &v->conns[(v->cursor + i) % v->max_conns];

		if (c->pend && c->st != C_FREE && c->st != C_DEAD) {
			v->cursor = (uint32_t)(c - v->conns + 1) % v->max_conns;
			return c;
		}
	}
	return NULL;
}

/* A receive chain to fill: true if one is held. */
static bool rx_take(struct spk_virtio_vsock *v)
{
	if (v->rx_held)
		return true;
	if (spk_virtio_pop(v->vd, VS_RX, &v->rx) <= 0)
		return false;
	if (v->rx.n_out || v->rx.in_len <= VS_HDR_LEN) {
		spk_virtio_fail(v->vd, VS_RX,
		                "receive chain %u has %u device-readable buffers and %u writable "
		                "bytes (need none, and more than the %u-byte header)",
		                v->rx.head, v->rx.n_out, v->rx.in_len, VS_HDR_LEN);
		return false;
	}
	v->rx_held = true;
	return true;
}

static void rx_deliver(struct spk_virtio_vsock *v, const struct vs_hdr *h)
{
	spk_virtq_write(spk_virtio_mem(v->vd), &v->rx, 0, h, sizeof(*h));
	spk_virtio_push(v->vd, VS_RX, &v->rx, VS_HDR_LEN + h->len);
	v->rx_held = false;
}

/* Fill one receive chain; false when there was nothing to send. */
static bool rx_one(struct spk_virtio_vsock *v)
{
	struct vs_hdr h;
	struct conn *c;

	if (v->rst_len) {
		struct rst r = v->rsts[v->rst_head];

		v->rst_head = (v->rst_head + 1) % VS_RST_MAX;
		v->rst_len--;
		h = (struct vs_hdr){.src_cid = VS_HOST_CID,
		                    .dst_cid = v->guest_cid,
		                    .src_port = r.local_port,
		                    .dst_port = r.peer_port,
		                    .type = TYPE_STREAM,
		                    .op = OP_RST};
		rx_deliver(v, &h);
		return true;
	}
	while ((c = next_pending(v))) {
		bool sent = conn_rx(v, c, &h);

		if (sent)
			rx_deliver(v, &h);
		if (sent && h.op == OP_RST)
			conn_free(v, c);
		else
			conn_rearm(v, c);
		if (sent)
			return true;
	}
	return false;
}

static bool rx_pending(struct spk_virtio_vsock *v)
{
	if (v->rst_len)
		return true;
	for (uint32_t i = 0; i < v->max_conns; i++)
		if (v->conns[i].pend && v->conns[i].st != C_FREE && v->conns[i].st != C_DEAD)
			return true;
	return false;
}

static void rx_pump(struct spk_virtio_vsock *v)
{
	unsigned pushed = 0;

	for (unsigned i = 0; i < VS_BUDGET && rx_pending(v) && rx_take(v); i++) {
		if (!rx_one(v))
			break;
		pushed++;
	}
	if (pushed)
		spk_virtio_interrupt(v->vd, VS_RX);
	if (pushed == VS_BUDGET)
		spk_virtio_kick(v->vd, VS_RX); /* more after the other devices' events */
}

/* ---- host sockets
 * ----------------------------------------------------------------------------------- */

/* "CONNECT <port>\n", as Firecracker reads it: the word in any case. */
static int parse_connect(const char *line, uint32_t *port)
{
	char word[8], *end;
	unsigned long p;
	int at = 0;

	if (sscanf(line, "%7s %n", word, &at) != 1 || strcasecmp(word, "connect") != 0 || !at)
		return -1;
	errno = 0;
	p = strtoul(line + at, &end, 10);
	if (errno || end == line + at || p > UINT32_MAX || (*end != '\n' && *end != '\r'))
		return -1;
	*port = (uint32_t)p;
	return 0;
}

static uint32_t local_port(struct spk_virtio_vsock *v)
{
	for (;;) {
		v->next_local = ((v->next_local + 1) & ~(1u << 31)) | VS_LOCAL_PORT;
		bool used = false;
		for (uint32_t i = 0; i < v->max_conns && !used; i++)
			used = v->conns[i].st != C_FREE && v->conns[i].local_port == v->next_local;
		if (!used)
			return v->next_local;
	}
}

/* Read the host's CONNECT line a byte at a time (what follows it is the
 * stream's); then ask the guest. */
static void read_command(struct spk_virtio_vsock *v, struct conn *c)
{
	uint32_t port;
	ssize_t r;

	while (c->line_len < VS_LINE_MAX - 1) {
		do
			r = read(c->fd, c->line + c->line_len, 1);
		while (r < 0 && errno == EINTR);
		if (r < 0 && errno == EAGAIN)
			return;
		if (r <= 0)
			break;
		if (c->line[c->line_len++] == '\n')
			break;
	}
	c->line[c->line_len] = '\0';
	if (c->line_len == 0 || c->line[c->line_len - 1] != '\n' ||
	    parse_connect(c->line, &port) < 0) {
		conn_free(v, c); /* not a CONNECT line: hang up */
		return;
	}
	c->st = C_LOCAL_INIT;
	c->local_port = local_port(v);
	c->peer_port = port;
	c->pend = P_REQUEST;
	v->st.opened++;
}

static void conn_event(struct spk_virtio_vsock *v, struct conn *c, uint32_t events)
{
	if (c->st == C_CMD) {
		read_command(v, c);
		return;
	}
	if ((events & EPOLLOUT) && !flush(v, c)) {
		conn_kill(v, c);
		return;
	}
	if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		return;
	if (c->st == C_ESTABLISHED && !(c->peer_shut & SHUT_RCV))
		c->pend |= P_RW; /* the read says whether it is data, EOF or an error */
	else if (c->st != C_LOCAL_CLOSED)
		conn_kill(v, c); /* the host program hung up before the guest could hear */
}

static void on_conn(void *opaque, int fd, uint32_t events)
{
	struct conn *c = opaque;
	struct spk_virtio_vsock *v = c->v;

	spk_virtio_lock(v->vd);
	c->armed = false; /* one-shot: this event disarmed it */
	if (c->st != C_FREE && c->st != C_DEAD) {
		conn_event(v, c, events);
		if (c->st != C_FREE)
			conn_rearm(v, c);
		rx_pump(v);
	}
	spk_virtio_unlock(v->vd);
}

static void on_listen(void *opaque, int fd, uint32_t events)
{
	struct spk_virtio_vsock *v = opaque;
	int s = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	struct conn *c;

	if (s < 0)
		return;
	spk_virtio_lock(v->vd);
	if (!spk_virtio_running(v->vd) || !(c = conn_new(v, s, C_CMD))) {
		if (spk_virtio_running(v->vd))
			vs_log_rl(v, rl_host,
			          "too many connections (the limit is %u): refused one from the "
			          "host",
			          v->max_conns);
		v->st.refused++;
		close(s);
	} else {
		conn_rearm(v, c);
	}
	spk_virtio_unlock(v->vd);
}

/* After a device reset: close what the guest had open (on the loop). */
static void on_ctl(void *opaque, int fd, uint32_t events)
{
	struct spk_virtio_vsock *v = opaque;
	uint64_t n;

	if (read(fd, &n, sizeof(n)) < 0) {
		/* EAGAIN: already done */
	}
	spk_virtio_lock(v->vd);
	for (uint32_t i = 0; i < v->max_conns; i++)
		if (v->conns[i].st == C_DEAD)
			conn_free(v, &v->conns[i]);
	spk_virtio_unlock(v->vd);
}

/* ---- the device
 * ------------------------------------------------------------------------------------------ */

/*
 * After a restore (as Firecracker does): the guest's connections are gone,
 * so tell it with VIRTIO_VSOCK_EVENT_TRANSPORT_RESET (id 0) in an event
 * buffer; its driver then drops every socket and re-reads the CID.
 */
static void send_transport_reset(struct spk_virtio_vsock *v)
{
	struct spk_virtq_chain c;
	const uint8_t ev[4] = {0}; /* struct virtio_vsock_event { le32 id; }: 0 */

	if (spk_virtio_pop(v->vd, VS_EVENT, &c) <= 0)
		return; /* no buffer yet: the driver's next kick of the event queue */
	if (c.n_out || c.in_len < sizeof(ev)) {
		spk_virtio_fail(
		    v->vd, VS_EVENT,
		    "event chain %u has %u device-readable buffers and %u writable bytes "
		    "(need none, and 4)",
		    c.head, c.n_out, c.in_len);
		return;
	}
	spk_virtq_write(spk_virtio_mem(v->vd), &c, 0, ev, sizeof(ev));
	spk_virtio_push(v->vd, VS_EVENT, &c, sizeof(ev));
	spk_virtio_interrupt(v->vd, VS_EVENT);
	v->reset_pending = false;
	v->st.transport_resets++;
}

static void vs_notify(void *opaque, struct spk_virtio *vd, unsigned q)
{
	struct spk_virtio_vsock *v = opaque;

	if (q == VS_TX)
		tx_pump(v);
	else if (q == VS_RX)
		rx_pump(v);
	else if (q == VS_EVENT && v->reset_pending)
		send_transport_reset(v);
	/* else the event queue: its buffers wait for the next restore */
}

/* On a vCPU thread: connections die now, their sockets close on the loop. */
static void vs_reset(void *opaque, struct spk_virtio *vd)
{
	struct spk_virtio_vsock *v = opaque;
	uint64_t one = 1;

	for (uint32_t i = 0; i < v->max_conns; i++)
		if (v->conns[i].st != C_FREE)
			v->conns[i].st = C_DEAD;
	v->rst_len = 0;
	v->rx_held = false;
	v->reset_pending = false;
	if (write(v->ctl_fd, &one, sizeof(one)) < 0) {
		/* saturated: the loop has it pending anyway */
	}
}

static void vs_config_read(void *opaque, uint32_t off, void *buf, uint32_t len)
{
	struct spk_virtio_vsock *v = opaque;
	uint64_t cid = v->guest_cid;
	uint8_t cfg[VS_CFG_SIZE];

	memcpy(cfg, &cid, sizeof(cid));
	memcpy(buf, cfg + off, len);
}

/*
 * State (snapshot.h): connections are not saved. A restored device keeps
 * its own CID and socket (a clone has its own), resets every connection
 * the guest had and sends TRANSPORT_RESET once the queues are back.
 */
static int vs_save(void *opaque, struct spk_snap_writer *w)
{
	struct spk_virtio_vsock *v = opaque;

	return spk_snap_put_u32(w, "guest_cid", v->guest_cid); /* for the record */
}

static int vs_load(void *opaque, struct spk_snap_reader *r)
{
	struct spk_virtio_vsock *v = opaque;
	uint32_t cid;
	int rc;

	if ((rc = spk_snap_get_u32(r, "guest_cid", &cid)) || (rc = spk_snap_reader_done(r)))
		return rc;
	vs_reset(v, v->vd);
	v->reset_pending = true;
	return 0;
}

static void vs_quiesce(void *opaque, struct spk_virtio *vd)
{
	struct spk_virtio_vsock *v = opaque;

	if (v->rx_held && spk_virtio_unpop(vd, VS_RX, &v->rx) == 0)
		v->rx_held = false;
}

static void vs_restored(void *opaque, struct spk_virtio *vd)
{
	struct spk_virtio_vsock *v = opaque;

	if (v->reset_pending && spk_virtio_running(vd))
		send_transport_reset(v);
}

static const struct spk_dev_state_ops vs_state = {"virtio_vsock", 1, vs_save, vs_load};

static const struct spk_virtio_ops vs_ops = {
    .config_read = vs_config_read,
    .queue_notify = vs_notify,
    .reset = vs_reset,
    .state = &vs_state,
    .quiesce = vs_quiesce,
    .restored = vs_restored,
};

/* Listen on uds_path: a stale socket is replaced, anything else refused. */
static int listen_uds(const char *path)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	struct stat sb;
	int fd;

	if (!path || !*path || strlen(path) >= sizeof(a.sun_path))
		return spk_fail(EINVAL, "virtio-vsock: uds_path needs 1 to %zu bytes",
		                sizeof(a.sun_path) - 1);
	memcpy(a.sun_path, path, strlen(path) + 1);
	if (lstat(path, &sb) == 0) {
		int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		bool live = S_ISSOCK(sb.st_mode) && probe >= 0 &&
		            connect(probe, (struct sockaddr *)&a, sizeof(a)) == 0;

		if (probe >= 0)
			close(probe);
		if (!S_ISSOCK(sb.st_mode) || live)
			return spk_fail(EEXIST, "virtio-vsock: %s exists and is %s", path,
			                live ? "a socket another process listens on"
			                     : "not a socket");
		unlink(path); /* a stale socket of an earlier run */
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return spk_fail(errno, "virtio-vsock: socket: %s", strerror(errno));
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 64) < 0) {
		int err = errno;

		close(fd);
		return spk_fail(err, "virtio-vsock: listening on %s: %s", path, strerror(err));
	}
	return fd;
}

static int vs_make(struct spk_virtio_vsock *v, const struct spk_virtio_vsock_config *cfg)
{
	const struct spk_virtio_config vc = {
	    .name = "virtio-vsock",
	    .device_id = SPK_VIRTIO_ID_VSOCK,
	    .class_code = VS_CLASS,
	    .num_queues = 3,
	    .queue_max = VS_QUEUE_SIZE,
	    .config_size = VS_CFG_SIZE,
	    .ops = &vs_ops,
	    .opaque = v,
	    .pci = cfg->pci,
	    .slot = cfg->slot,
	    .mem = cfg->mem,
	    .loop = cfg->loop,
	};
	int rc;

	if ((v->listen_fd = listen_uds(cfg->uds_path)) < 0)
		return v->listen_fd;
	v->ctl_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (v->ctl_fd < 0)
		return spk_fail(errno, "virtio-vsock: eventfd: %s", strerror(errno));
	if ((rc = spk_virtio_new(&vc, &v->vd)) < 0)
		return rc;
	if ((rc = spk_evloop_add(v->loop, v->ctl_fd, EPOLLIN, on_ctl, v)) < 0)
		return rc;
	return spk_evloop_add(v->loop, v->listen_fd, EPOLLIN, on_listen, v);
}

static int check_config(const struct spk_virtio_vsock_config *cfg)
{
	if (!cfg || !cfg->loop)
		return spk_fail(EINVAL, "virtio-vsock: new needs a config with a loop");
	if (cfg->guest_cid < 3 || cfg->guest_cid == UINT32_MAX)
		return spk_fail(EINVAL, "virtio-vsock: guest CID %u: need 3 to %u", cfg->guest_cid,
		                UINT32_MAX - 1);
	if (cfg->max_conns > VS_CONNS_MAX)
		return spk_fail(EINVAL, "virtio-vsock: at most %u connections, not %u",
		                VS_CONNS_MAX, cfg->max_conns);
	return 0;
}

int spk_virtio_vsock_new(const struct spk_virtio_vsock_config *cfg, struct spk_virtio_vsock **out)
{
	struct spk_virtio_vsock *v;
	int rc;

	if ((rc = check_config(cfg)) < 0)
		return rc;
	if (!out)
		return spk_fail(EINVAL, "virtio-vsock: new needs an out pointer");
	v = calloc(1, sizeof(*v));
	if (!v)
		return spk_fail(ENOMEM, "virtio-vsock: out of memory");
	v->listen_fd = v->ctl_fd = -1;
	v->loop = cfg->loop;
	v->guest_cid = cfg->guest_cid;
	v->max_conns = cfg->max_conns ? cfg->max_conns : VS_CONNS;
	v->next_local = VS_LOCAL_PORT - 1;
	v->conns = calloc(v->max_conns, sizeof(*v->conns));
	v->uds_path = cfg->uds_path ? strdup(cfg->uds_path) : NULL;
	if (!v->conns || (cfg->uds_path && !v->uds_path)) {
		rc = spk_fail(ENOMEM, "virtio-vsock: out of memory");
		goto err;
	}
	if ((rc = vs_make(v, cfg)) < 0)
		goto err;
	*out = v;
	return 0;

err:
	spk_virtio_vsock_free(v);
	return rc;
}

void spk_virtio_vsock_free(struct spk_virtio_vsock *v)
{
	if (!v)
		return;
	for (uint32_t i = 0; v->conns && i < v->max_conns; i++)
		if (v->conns[i].st != C_FREE)
			conn_free(v, &v->conns[i]);
	if (v->listen_fd >= 0) {
		spk_evloop_del(v->loop, v->listen_fd);
		close(v->listen_fd);
		unlink(v->uds_path);
	}
	if (v->ctl_fd >= 0) {
		spk_evloop_del(v->loop, v->ctl_fd);
		close(v->ctl_fd);
	}
	spk_virtio_free(v->vd);
	free(v->conns);
	free(v->uds_path);
	free(v);
}

struct spk_virtio *spk_virtio_vsock_dev(struct spk_virtio_vsock *v)
{
	if (!v) {
		spk_fail(EINVAL, "virtio-vsock: dev needs a device");
		return NULL;
	}
	return v->vd;
}

void spk_virtio_vsock_get_stats(struct spk_virtio_vsock *v, struct spk_virtio_vsock_stats *st)
{
	if (!v || !st) {
		spk_fail(EINVAL, "virtio-vsock: get_stats needs a device and a place for them");
		if (st)
			memset(st, 0, sizeof(*st));
		return;
	}
	spk_virtio_lock(v->vd);
	*st = v->st;
	st->open = v->n_conns;
	spk_virtio_unlock(v->vd);
}
