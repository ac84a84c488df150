/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The MMDS end of one network interface: the frames the guest sends to the
 * MMDS address never reach the TAP; this answers them.
 *
 *   ARP   a request for the MMDS address gets a reply with the MMDS MAC
 *         (Firecracker's 06:01:23:45:67:01). One reply waits at a time.
 *   IPv4  header checksum checked; fragments and options beyond IHL are
 *         taken as they come (options skipped), fragments dropped; only
 *         TCP to port 80 is served (other ports: RST; other protocols:
 *         dropped).
 *   TCP   a passive open per (guest address, port), at most MAX_CONNS at a
 *         time; a SYN when all are taken evicts the least recently used
 *         one (with an RST). Data is taken in order only, up to RCV_BUF
 *         bytes of pending request, which is also the window we offer;
 *         anything out of order gets a duplicate ACK. Each connection
 *         serves one request at a time (http.c): the response goes out in
 *         segments of at most the guest's MSS and window, and the next
 *         request is read once the guest has ACKed it all. FIN and RST as
 *         RFC 793 has them. What the guest does not acknowledge is sent
 *         again after two duplicate ACKs, or when the connection's
 *         retransmission timer expires (spk_mmds_stack_timer, the
 *         device's hook timer: 250 ms, doubled at each timeout in a row
 *         up to 4 s; after 6 in a row the connection is dropped with an
 *         RST). The virtqueue loses nothing, so only a guest that drops
 *         our frames (or has gone away) needs that.
 *
 * Every frame is hostile: each length is checked against the bytes there
 * before it is used, checksums are verified, and all state is fixed-size
 * except a connection's response (one at a time, bounded by the store's
 * limit plus a header).
 *
 * Frames for the guest are made when the device has a receive buffer for
 * one (spk_mmds_stack_rx): pending ARP reply, then control segments (RST,
 * last ACKs) from a small ring, then each connection in turn.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "mmds/mmds.h"
#include "mmds/stack.h"

#define MAX_CONNS 16
#define RCV_BUF   2500 /* Firecracker's receive buffer per connection */
#define CTL_MAX   32
#define MMDS_PORT 80
#define MSS_MAX   1460
#define MSS_MIN   64
#define MSS_DEF   536

#define ETH_LEN  14
#define ARP_LEN  28
#define IP_LEN   20
#define TCP_LEN  20
#define HDRS_LEN (ETH_LEN + IP_LEN + TCP_LEN)

#define ET_IPV4 0x0800
#define ET_ARP  0x0806

#define FIN 0x01
#define SYN 0x02
#define RST 0x04
#define PSH 0x08
#define ACK 0x10

static const uint8_t MMDS_MAC[6] = {0x06, 0x01, 0x23, 0x45, 0x67, 0x01};

enum conn_state { C_FREE = 0, C_SYN_RCVD, C_ESTAB };

struct conn {
	enum conn_state state;
	uint8_t mac[6];
	uint32_t ip;
	uint16_t port;
	uint32_t iss, snd_una, snd_nxt, rcv_nxt;
	uint32_t snd_max;  /* the highest snd_nxt so far (snd_nxt goes back to resend) */
	uint32_t end;      /* the sequence number after the last byte queued to send */
	uint32_t peer_wnd; /* the guest's window (no scaling: we offer no options but MSS) */
	uint16_t mss;
	bool syn_pending, need_ack, fin_rcvd, want_fin;
	bool syn_sent; /* a SYN-ACK went out: the next is sent again */
	unsigned dupacks;
	uint64_t rto_at; /* the store's clock, ms: when to send again; 0: no timer */
	unsigned rto_n;  /* timeouts in a row */
	uint64_t last;   /* for eviction: the stack's tick at the last segment */
	uint8_t rbuf[RCV_BUF];
	size_t rlen;
	char *resp; /* the response being sent: its first byte is sequence end - resp_len */
	size_t resp_len;
	uint32_t resp_seq;
};

struct ctl {
	uint8_t mac[6];
	uint32_t ip;
	uint16_t port;
	uint32_t seq, ack;
	uint8_t flags;
};

struct spk_mmds_stack {
	struct spk_mmds *m;
	uint32_t ip;
	struct conn c[MAX_CONNS];
	struct ctl ctl[CTL_MAX];
	unsigned ctl_head, ctl_n;
	bool arp_pending;
	uint8_t arp_mac[6];
	uint32_t arp_ip;
	uint64_t tick;
	unsigned rr;
	uint64_t resent, dropped;  /* for tests (spk_mmds_stack_retransmits) */
	struct spk_mmds_metrics d; /* counted here, added to the store's after each call */
};

/* ---- bytes ---------------------------------------------------------------------------- */

static uint16_t be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)(v >> 16));
	put16(p + 2, (uint16_t)v);
}

static uint32_t sum(const uint8_t *p, size_t n, uint32_t acc)
{
	size_t i;

	for (i = 0; i + 1 < n; i += 2)
		acc += be16(p + i);
	if (i < n)
		acc += (uint32_t)p[i] << 8;
	return acc;
}

static uint16_t fold(uint32_t acc)
{
	while (acc >> 16)
		acc = (acc & 0xffff) + (acc >> 16);
	return (uint16_t)~acc;
}

/* The TCP checksum's pseudo-header sum. */
static uint32_t pseudo(uint32_t src, uint32_t dst, size_t tcp_len)
{
	return (src >> 16) + (src & 0xffff) + (dst >> 16) + (dst & 0xffff) + 6 + (uint32_t)tcp_len;
}

static bool before(uint32_t a, uint32_t b)
{
	return (int32_t)(a - b) < 0;
}

/* The connection's retransmission timeout: doubled at each timeout in a
 * row, bounded. */
static uint64_t rto(const struct conn *c)
{
	unsigned n = c->rto_n < 16 ? c->rto_n : 16;
	uint64_t t = (uint64_t)SPK_MMDS_RTO_INIT_MS << n;

	return t < SPK_MMDS_RTO_MAX_MS ? t : SPK_MMDS_RTO_MAX_MS;
}

/* ---- the stack ---------------------------------------------------------------------------- */

int spk_mmds_stack_new(struct spk_mmds *m, struct spk_mmds_stack **out)
{
	struct spk_mmds_config c;
	struct spk_mmds_stack *s;

	if (!m || !out)
		return spk_fail(EINVAL, "mmds: a stack needs a store");
	s = calloc(1, sizeof(*s));
	if (!s)
		return spk_fail(ENOMEM, "mmds: out of memory");
	spk_mmds_get_config(m, &c);
	s->m = m;
	s->ip = c.ipv4;
	*out = s;
	return 0;
}

static void conn_free(struct spk_mmds_stack *s, struct conn *c)
{
	free(c->resp);
	memset(c, 0, sizeof(*c));
	s->d.connections_destroyed++;
}

void spk_mmds_stack_free(struct spk_mmds_stack *s)
{
	if (!s)
		return;
	for (unsigned i = 0; i < MAX_CONNS; i++)
		free(s->c[i].resp);
	free(s);
}

static void flush_counts(struct spk_mmds_stack *s)
{
	static const struct spk_mmds_metrics zero;

	if (memcmp(&s->d, &zero, sizeof(zero)) != 0) {
		spk_mmds_count(s->m, &s->d);
		s->d = zero;
	}
}

void spk_mmds_stack_counts(struct spk_mmds_stack *s, unsigned *conns, unsigned *ctl)
{
	unsigned n = 0;

	for (unsigned i = 0; i < MAX_CONNS; i++)
		n += s->c[i].state != C_FREE;
	*conns = n;
	*ctl = s->ctl_n;
}

void spk_mmds_stack_retransmits(struct spk_mmds_stack *s, uint64_t *resent, uint64_t *dropped)
{
	*resent = s->resent;
	*dropped = s->dropped;
}

bool spk_mmds_stack_match(void *opaque, const uint8_t *f, size_t len)
{
	struct spk_mmds_stack *s = opaque;

	if (len < ETH_LEN)
		return false;
	if (be16(f + 12) == ET_ARP)
		return len >= ETH_LEN + ARP_LEN && be32(f + ETH_LEN + 24) == s->ip;
	if (be16(f + 12) == ET_IPV4)
		return len >= ETH_LEN + IP_LEN && be32(f + ETH_LEN + 16) == s->ip;
	return false;
}

/* A control segment (RST, a last ACK) for the ring; dropped when it is full. */
static void ctl_push(struct spk_mmds_stack *s, const uint8_t mac[6], uint32_t ip, uint16_t port,
                     uint32_t seq, uint32_t ack, uint8_t flags)
{
	struct ctl *c;

	if (s->ctl_n == CTL_MAX) {
		s->d.tx_errors++;
		return;
	}
	c = &s->ctl[(s->ctl_head + s->ctl_n++) % CTL_MAX];
	memcpy(c->mac, mac, 6);
	c->ip = ip;
	c->port = port;
	c->seq = seq;
	c->ack = ack;
	c->flags = flags;
}

/* ---- guest to MMDS ---------------------------------------------------------------------- */

static void arp_in(struct spk_mmds_stack *s, const uint8_t *f, size_t len)
{
	const uint8_t *a = f + ETH_LEN;

	/* match() saw the whole ARP body */
	if (be16(a) != 1 || be16(a + 2) != ET_IPV4 || a[4] != 6 || a[5] != 4) {
		s->d.rx_accepted_err++;
		return;
	}
	if (be16(a + 6) != 1) { /* a reply or announcement of our address */
		s->d.rx_accepted_unusual++;
		return;
	}
	s->arp_pending = true;
	memcpy(s->arp_mac, a + 8, 6);
	s->arp_ip = be32(a + 14);
}

static struct conn *find(struct spk_mmds_stack *s, uint32_t ip, uint16_t port)
{
	for (unsigned i = 0; i < MAX_CONNS; i++)
		if (s->c[i].state != C_FREE && s->c[i].ip == ip && s->c[i].port == port)
			return &s->c[i];
	return NULL;
}

/* A free connection, or the least recently used one reset for it. */
static struct conn *take_slot(struct spk_mmds_stack *s)
{
	struct conn *lru = &s->c[0];

	for (unsigned i = 0; i < MAX_CONNS; i++) {
		if (s->c[i].state == C_FREE)
			return &s->c[i];
		if (s->c[i].last < lru->last)
			lru = &s->c[i];
	}
	ctl_push(s, lru->mac, lru->ip, lru->port, lru->snd_nxt, 0, RST);
	conn_free(s, lru);
	return lru;
}

/* The MSS option of a SYN (kind 2, length 4); MSS_DEF without one. */
static uint16_t mss_of(const uint8_t *opt, size_t n)
{
	size_t i = 0;

	while (i < n) {
		if (opt[i] == 0) /* end of options */
			break;
		if (opt[i] == 1) { /* no-op */
			i++;
			continue;
		}
		if (i + 1 >= n || opt[i + 1] < 2 || opt[i + 1] > n - i)
			break; /* a length that does not fit: ignore the rest */
		if (opt[i] == 2 && opt[i + 1] == 4) {
			uint16_t v = be16(opt + i + 2);

			return v < MSS_MIN ? MSS_MIN : v > MSS_MAX ? MSS_MAX : v;
		}
		i += opt[i + 1];
	}
	return MSS_DEF;
}

/* The segment's fields, checked. */
struct seg {
	const uint8_t *mac;
	uint32_t ip;
	uint16_t sport, dport;
	uint32_t seq, ack;
	uint8_t flags;
	uint16_t wnd;
	const uint8_t *data, *opt;
	size_t len, opt_len;
};

/* A reset for a segment that belongs to no connection (RFC 793, "Reset
 * Generation", case 1). */
static void reset_for(struct spk_mmds_stack *s, const struct seg *g)
{
	uint32_t ack = g->seq + (uint32_t)g->len + !!(g->flags & SYN) + !!(g->flags & FIN);

	if (g->flags & RST)
		return;
	if (g->flags & ACK)
		ctl_push(s, g->mac, g->ip, g->sport, g->ack, 0, RST);
	else
		ctl_push(s, g->mac, g->ip, g->sport, 0, ack, RST | ACK);
}

static void open_conn(struct spk_mmds_stack *s, const struct seg *g)
{
	struct conn *c = take_slot(s);

	c->state = C_SYN_RCVD;
	memcpy(c->mac, g->mac, 6);
	c->ip = g->ip;
	c->port = g->sport;
	c->iss = (uint32_t)spk_mmds_random(s->m);
	c->snd_una = c->snd_nxt = c->snd_max = c->iss;
	c->end = c->iss + 1;
	c->rcv_nxt = g->seq + 1; /* data in a SYN is not taken: the guest sends it again */
	c->peer_wnd = g->wnd;
	c->mss = mss_of(g->opt, g->opt_len);
	c->syn_pending = true;
	c->last = ++s->tick;
	s->d.connections_created++;
}

/* Serve what the connection has: the next request once the last response
 * is all acknowledged; our FIN once the guest's came and nothing is left. */
static void serve(struct spk_mmds_stack *s, struct conn *c)
{
	if (c->state != C_ESTAB || c->want_fin)
		return;
	if (c->resp && c->snd_una == c->end) {
		free(c->resp);
		c->resp = NULL;
	}
	if (!c->resp && c->rlen) {
		char *out;
		size_t out_len;
		bool close = false;
		long took = spk_mmds_http(s->m, (const char *)c->rbuf, c->rlen, RCV_BUF, &out,
		                          &out_len, &close);

		if (took < 0) {
			c->want_fin = true;
			return;
		}
		if (took > 0) {
			memmove(c->rbuf, c->rbuf + took, c->rlen - (size_t)took);
			c->rlen -= (size_t)took;
			c->resp = out;
			c->resp_len = out_len;
			c->resp_seq = c->end;
			c->end += (uint32_t)out_len;
			/* no more requests can come: our FIN follows the response */
			c->want_fin = close || (c->fin_rcvd && c->rlen == 0);
			c->need_ack = true; /* the window opened */
			return;
		}
	}
	if (!c->resp && c->fin_rcvd)
		c->want_fin = true; /* the guest is done (an unfinished request is dropped) */
}

/* The ACK field of a segment on an open connection: false to drop it. */
static bool ack_in(struct spk_mmds_stack *s, struct conn *c, const struct seg *g)
{
	if (c->state == C_SYN_RCVD) {
		if (g->ack != c->iss + 1) {
			reset_for(s, g);
			s->d.rx_accepted_unusual++;
			return false;
		}
		c->state = C_ESTAB;
		c->syn_pending = false;
		c->snd_nxt = c->snd_max = c->iss + 1;
		c->snd_una = g->ack;
		c->rto_at = 0; /* the SYN-ACK is through */
		c->rto_n = 0;
	}
	if (before(c->snd_max, g->ack)) { /* acknowledges what we never sent */
		c->need_ack = true;
		s->d.rx_accepted_unusual++;
		return false;
	}
	if (before(c->snd_nxt, g->ack))
		c->snd_nxt = g->ack; /* it had what we were sending again */
	if (before(c->snd_una, g->ack)) {
		c->snd_una = g->ack;
		c->dupacks = 0;
		/* progress: the timer starts over for what is still in flight */
		c->rto_n = 0;
		c->rto_at = before(c->snd_una, c->snd_max) ? spk_mmds_now(s->m) + rto(c) : 0;
	} else if (g->ack == c->snd_una && !g->len && !(g->flags & FIN) &&
	           c->snd_una != c->snd_nxt && g->wnd == c->peer_wnd && ++c->dupacks >= 2) {
		c->snd_nxt = c->snd_una; /* the guest lost some: send it again */
		c->dupacks = 0;
	}
	c->peer_wnd = g->wnd;
	return true;
}

/* The data and FIN of an in-window segment. */
static void data_in(struct spk_mmds_stack *s, struct conn *c, const struct seg *g)
{
	uint32_t off = c->rcv_nxt - g->seq; /* how much of it we have already */
	bool fin = g->flags & FIN;

	if (g->len || fin)
		c->need_ack = true;
	if (before(c->rcv_nxt, g->seq) || (off > g->len && !(fin && off == g->len + 1))) {
		/* out of order (ahead), or all old: a duplicate ACK says where we are */
		s->d.rx_accepted_unusual++;
		return;
	}
	if (off < g->len && !c->fin_rcvd) {
		size_t room = RCV_BUF - c->rlen, n = g->len - off;

		if (n > room)
			n = room;
		memcpy(c->rbuf + c->rlen, g->data + off, n);
		c->rlen += n;
		c->rcv_nxt += (uint32_t)n;
		off += (uint32_t)n;
	}
	if (fin && off == g->len && !c->fin_rcvd) {
		c->fin_rcvd = true;
		c->rcv_nxt++;
	}
}

static void tcp_in(struct spk_mmds_stack *s, const struct seg *g)
{
	struct conn *c = find(s, g->ip, g->sport);

	if (g->dport != MMDS_PORT) {
		reset_for(s, g);
		s->d.rx_accepted_unusual++;
		return;
	}
	if (!c) {
		if ((g->flags & (SYN | ACK | RST | FIN)) == SYN)
			open_conn(s, g);
		else {
			reset_for(s, g);
			s->d.rx_accepted_unusual++;
		}
		return;
	}
	c->last = ++s->tick;
	if (g->flags & RST) {
		/* only one at the sequence number we expect ends it (RFC 5961) */
		if (g->seq == c->rcv_nxt)
			conn_free(s, c);
		else
			s->d.rx_accepted_unusual++;
		return;
	}
	if (g->flags & SYN) {
		if (c->state == C_SYN_RCVD && g->seq + 1 == c->rcv_nxt) {
			c->syn_pending = true; /* our SYN-ACK was lost: again */
			c->snd_nxt = c->iss;
		} else {
			ctl_push(s, c->mac, c->ip, c->port, c->snd_nxt, 0, RST);
			conn_free(s, c);
			s->d.rx_accepted_unusual++;
		}
		return;
	}
	if (!(g->flags & ACK) || !ack_in(s, c, g)) {
		s->d.rx_accepted_unusual += !(g->flags & ACK);
		return;
	}
	data_in(s, c, g);
	serve(s, c);
	/* both FINs are through and ours is acknowledged: done */
	if (c->fin_rcvd && c->want_fin && c->snd_una == c->end + 1) {
		if (c->need_ack)
			ctl_push(s, c->mac, c->ip, c->port, c->snd_nxt, c->rcv_nxt, ACK);
		conn_free(s, c);
	}
}

/* IPv4 then TCP: every length against the bytes there, both checksums. */
static void ip_in(struct spk_mmds_stack *s, const uint8_t *f, size_t len)
{
	const uint8_t *ip = f + ETH_LEN, *t;
	size_t ihl = (size_t)(ip[0] & 15) * 4, tot, tl, doff;
	struct seg g;

	if ((ip[0] >> 4) != 4 || ihl < IP_LEN || ETH_LEN + ihl > len) {
		s->d.rx_bad_eth++;
		return;
	}
	tot = be16(ip + 2);
	if (tot < ihl || ETH_LEN + tot > len || fold(sum(ip, ihl, 0)) != 0) {
		s->d.rx_bad_eth++;
		return;
	}
	if ((be16(ip + 6) & 0x3fff) != 0 || ip[9] != 6) { /* a fragment, or not TCP */
		s->d.rx_accepted_unusual++;
		return;
	}
	t = ip + ihl;
	tl = tot - ihl;
	if (tl < TCP_LEN || (doff = (size_t)(t[12] >> 4) * 4) < TCP_LEN || doff > tl) {
		s->d.rx_bad_eth++;
		return;
	}
	g.ip = be32(ip + 12);
	if (fold(sum(t, tl, pseudo(g.ip, s->ip, tl))) != 0) {
		s->d.rx_accepted_err++;
		return;
	}
	g.mac = f + 6;
	g.sport = be16(t);
	g.dport = be16(t + 2);
	g.seq = be32(t + 4);
	g.ack = be32(t + 8);
	g.flags = t[13];
	g.wnd = be16(t + 14);
	g.opt = t + TCP_LEN;
	g.opt_len = doff - TCP_LEN;
	g.data = t + doff;
	g.len = tl - doff;
	tcp_in(s, &g);
}

void spk_mmds_stack_tx(void *opaque, const uint8_t *f, size_t len)
{
	struct spk_mmds_stack *s = opaque;

	if (!spk_mmds_stack_match(s, f, len)) {
		s->d.rx_bad_eth++;
		flush_counts(s);
		return;
	}
	s->d.rx_accepted++;
	if (be16(f + 12) == ET_ARP)
		arp_in(s, f, len);
	else
		ip_in(s, f, len);
	flush_counts(s);
}

/* ---- MMDS to guest ------------------------------------------------------------------------ */

static size_t arp_out(struct spk_mmds_stack *s, uint8_t *f)
{
	uint8_t *a = f + ETH_LEN;

	memcpy(f, s->arp_mac, 6);
	memcpy(f + 6, MMDS_MAC, 6);
	put16(f + 12, ET_ARP);
	put16(a, 1);
	put16(a + 2, ET_IPV4);
	a[4] = 6;
	a[5] = 4;
	put16(a + 6, 2);
	memcpy(a + 8, MMDS_MAC, 6);
	put32(a + 14, s->ip);
	memcpy(a + 18, s->arp_mac, 6);
	put32(a + 24, s->arp_ip);
	s->arp_pending = false;
	return ETH_LEN + ARP_LEN;
}

/* A whole segment into f: headers, options (opt_len bytes), payload. */
static size_t seg_out(struct spk_mmds_stack *s, uint8_t *f, const uint8_t mac[6], uint32_t ip,
                      uint16_t port, uint32_t seq, uint32_t ack, uint8_t flags, uint16_t wnd,
                      const uint8_t *opt, size_t opt_len, const void *data, size_t len)
{
	uint8_t *iph = f + ETH_LEN, *t = iph + IP_LEN;
	size_t tl = TCP_LEN + opt_len + len;

	memcpy(f, mac, 6);
	memcpy(f + 6, MMDS_MAC, 6);
	put16(f + 12, ET_IPV4);
	memset(iph, 0, IP_LEN);
	iph[0] = 0x45;
	put16(iph + 2, (uint16_t)(IP_LEN + tl));
	put16(iph + 6, 0x4000); /* don't fragment */
	iph[8] = 64;
	iph[9] = 6;
	put32(iph + 12, s->ip);
	put32(iph + 16, ip);
	put16(iph + 10, fold(sum(iph, IP_LEN, 0)));
	memset(t, 0, TCP_LEN);
	put16(t, MMDS_PORT);
	put16(t + 2, port);
	put32(t + 4, seq);
	put32(t + 8, ack);
	t[12] = (uint8_t)(((TCP_LEN + opt_len) / 4) << 4);
	t[13] = flags;
	put16(t + 14, wnd);
	if (opt_len)
		memcpy(t + TCP_LEN, opt, opt_len);
	if (len)
		memcpy(t + TCP_LEN + opt_len, data, len);
	put16(t + 16, fold(sum(t, tl, pseudo(s->ip, ip, tl))));
	return ETH_LEN + IP_LEN + tl;
}

/* The next segment of one connection, or 0. */
static size_t conn_seg(struct spk_mmds_stack *s, struct conn *c, uint8_t *f, size_t cap)
{
	uint16_t wnd = (uint16_t)(RCV_BUF - c->rlen);

	if (c->syn_pending) {
		const uint8_t mss[4] = {2, 4, MSS_MAX >> 8, MSS_MAX & 0xff};

		c->syn_pending = false;
		c->need_ack = false;
		c->snd_nxt = c->iss + 1;
		s->resent += c->syn_sent;
		c->syn_sent = true;
		return seg_out(s, f, c->mac, c->ip, c->port, c->iss, c->rcv_nxt, SYN | ACK, wnd,
		               mss, sizeof(mss), NULL, 0);
	}
	if (c->state != C_ESTAB)
		return 0;
	if (c->resp && before(c->snd_nxt, c->end)) {
		size_t sent = c->snd_nxt - c->resp_seq, n = c->resp_len - sent;
		uint32_t flight = c->snd_nxt - c->snd_una;
		size_t room = c->peer_wnd > flight ? c->peer_wnd - flight : 0;

		if (n > room)
			n = room;
		if (n > c->mss)
			n = c->mss;
		if (n > cap - HDRS_LEN)
			n = cap - HDRS_LEN;
		if (n) {
			uint32_t seq = c->snd_nxt;

			s->resent += before(seq, c->snd_max);
			c->snd_nxt += (uint32_t)n;
			c->need_ack = false;
			return seg_out(s, f, c->mac, c->ip, c->port, seq, c->rcv_nxt, ACK | PSH,
			               wnd, NULL, 0, c->resp + sent, n);
		}
	}
	if (c->want_fin && c->snd_nxt == c->end) {
		s->resent += before(c->end, c->snd_max); /* our FIN went out before */
		c->snd_nxt++;
		c->need_ack = false;
		return seg_out(s, f, c->mac, c->ip, c->port, c->end, c->rcv_nxt, FIN | ACK, wnd,
		               NULL, 0, NULL, 0);
	}
	if (c->need_ack) {
		c->need_ack = false;
		return seg_out(s, f, c->mac, c->ip, c->port, c->snd_nxt, c->rcv_nxt, ACK, wnd, NULL,
		               0, NULL, 0);
	}
	return 0;
}

/* The same, keeping snd_max, and the timer running while anything sent
 * (the SYN-ACK, data, our FIN) waits for its acknowledgement. */
static size_t conn_out(struct spk_mmds_stack *s, struct conn *c, uint8_t *f, size_t cap)
{
	size_t n = conn_seg(s, c, f, cap);

	if (before(c->snd_max, c->snd_nxt))
		c->snd_max = c->snd_nxt;
	if (n && !c->rto_at && (c->state == C_SYN_RCVD || before(c->snd_una, c->snd_max)))
		c->rto_at = spk_mmds_now(s->m) + rto(c);
	return n;
}

static size_t next_frame(struct spk_mmds_stack *s, uint8_t *f, size_t cap)
{
	if (s->arp_pending)
		return arp_out(s, f);
	if (s->ctl_n) {
		struct ctl *c = &s->ctl[s->ctl_head];

		s->ctl_head = (s->ctl_head + 1) % CTL_MAX;
		s->ctl_n--;
		return seg_out(s, f, c->mac, c->ip, c->port, c->seq, c->ack, c->flags, 0, NULL, 0,
		               NULL, 0);
	}
	for (unsigned i = 0; i < MAX_CONNS; i++) {
		struct conn *c = &s->c[(s->rr + i) % MAX_CONNS];
		size_t n = c->state != C_FREE ? conn_out(s, c, f, cap) : 0;

		if (n) {
			s->rr = (s->rr + i + 1) % MAX_CONNS;
			return n;
		}
	}
	return 0;
}

uint64_t spk_mmds_stack_timer(void *opaque)
{
	struct spk_mmds_stack *s = opaque;
	uint64_t now, next = 0;
	unsigned i;

	/* the device asks after every batch of frames: without a timer
	 * running, that costs no clock or lock */
	for (i = 0; i < MAX_CONNS && !(s->c[i].state != C_FREE && s->c[i].rto_at); i++)
		;
	if (i == MAX_CONNS)
		return 0;
	now = spk_mmds_now(s->m);
	for (i = 0; i < MAX_CONNS; i++) {
		struct conn *c = &s->c[i];

		if (c->state == C_FREE || !c->rto_at)
			continue;
		if (now >= c->rto_at) {
			if (++c->rto_n > SPK_MMDS_RTO_RETRIES) {
				/* the guest is gone or stopped listening: free the slot */
				ctl_push(s, c->mac, c->ip, c->port, c->snd_max, 0, RST);
				s->dropped++;
				conn_free(s, c);
				continue;
			}
			/* go back to the first unacknowledged byte (or the SYN-ACK) */
			if (c->state == C_SYN_RCVD)
				c->syn_pending = true;
			else
				c->snd_nxt = c->snd_una;
			c->dupacks = 0;
			c->rto_at = now + rto(c);
		}
		if (!next || c->rto_at - now < next)
			next = c->rto_at - now;
	}
	flush_counts(s);
	return next;
}

size_t spk_mmds_stack_rx(void *opaque, uint8_t *f, size_t cap)
{
	struct spk_mmds_stack *s = opaque;
	size_t n;

	/* room for any control frame; data segments shrink to fit */
	if (cap < SPK_MMDS_FRAME_MIN)
		return 0;
	n = next_frame(s, f, cap);
	if (n) {
		s->d.tx_frames++;
		s->d.tx_bytes += n;
	}
	flush_counts(s);
	return n;
}
