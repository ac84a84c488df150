/*
 * The metadata service (MMDS) from a guest-SDK driver, at CPL3: ARP, TCP
 * and HTTP of its own through virtio-net to 169.254.169.254, the way a
 * guest's kernel and curl would, then everything a hostile guest can do
 * to the MMDS's small network stack. The host (tests/guest/mmds_tests.c)
 * checks the MMDS's counters at each SYNC stage (mmds_net.h).
 *
 *   ARP       the MMDS's MAC for its address
 *   V2        PUT /latest/api/token with a TTL, GET with the token (the
 *             body checked), GET without (401), FIN
 *   headers   truncated Ethernet/IPv4/TCP headers, IPv4 total lengths
 *             larger and smaller than the frame, bad checksums, a
 *             fragment, UDP, an ARP of another hardware type: each
 *             dropped (nothing comes back: the next frame is the answer
 *             to a probe sent after them)
 *   window    a zero window (an ACK, no data), a window opened by 100
 *             bytes then shrunk to zero, an ACK of data never sent, then
 *             a request sent out of order with overlapping segments
 *   RST       an RST at the wrong sequence number (ignored), then at the
 *             right one mid-request: the connection is gone
 *   flood     SYNs beyond the 16-connection bound: the oldest are reset
 *   too big   a request larger than the 2500-byte buffer (400, closed)
 *             and one announcing a body too large (413)
 *   resend    a response left unacknowledged comes again (the MMDS's
 *             retransmission timer), twice
 *   last      a well-formed request still works
 *
 * Every frame from the MMDS is checked: addresses, both checksums,
 * lengths. Retransmissions may come at any time (they are timed): a
 * segment carrying only data the guest already has is acknowledged again
 * and skipped.
 */
#include <guest.h>
#include <virtio.h>

#include "mmds_net.h"
#include "net_frames.h"

#define QSIZE 32
#define RX    0
#define TX    1
#define BUFSZ 2048
#define WAITS 4096 /* rounds of 2^24 polls before a wait gives up */

#define FIN 0x01
#define SYN 0x02
#define RST 0x04
#define PSH 0x08
#define ACK 0x10

#define ETH 14
#define IP  20
#define TCP 20

static uint8_t rx_ring[GVQ_RING_BYTES(QSIZE)] __attribute__((aligned(4096)));
static uint8_t tx_ring[GVQ_RING_BYTES(QSIZE)] __attribute__((aligned(4096)));
static uint8_t rx_buf[QSIZE][BUFSZ];
static uint8_t *by_head[QSIZE];
static uint8_t tx[NF_HDR + 4096];
static uint8_t cur[BUFSZ]; /* the frame received last */
static struct gvirtio d;
static const uint8_t mmds_mac[6] = {0x06, 0x01, 0x23, 0x45, 0x67, 0x01};
static char token[128];
static unsigned dups; /* retransmitted segments skipped */

/* ---- bytes ------------------------------------------------------------------------------ */

static uint16_t be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put16(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, v >> 16);
	put16(p + 2, v & 0xffff);
}

static uint32_t sum(const uint8_t *p, uint32_t n, uint32_t acc)
{
	uint32_t i;

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

static uint32_t pseudo(uint32_t src, uint32_t dst, uint32_t proto, uint32_t len)
{
	return (src >> 16) + (src & 0xffff) + (dst >> 16) + (dst & 0xffff) + proto + len;
}

static size_t find(const char *s, size_t n, const char *lit)
{
	size_t k = strlen(lit);

	for (size_t i = 0; i + k <= n; i++)
		if (memcmp(s + i, lit, k) == 0)
			return i;
	return (size_t)-1;
}

/* ---- the device ------------------------------------------------------------------------ */

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
	GUEST_ASSERT_EQ(gvirtio_queue(&d, RX, QSIZE, rx_ring), 0);
	GUEST_ASSERT_EQ(gvirtio_queue(&d, TX, QSIZE, tx_ring), 0);
	gvirtio_ready(&d);
	for (unsigned i = 0; i < QSIZE; i++)
		post_rx(rx_buf[i]);
	gvq_kick(&d.q[RX]);
}

/* The frame at tx + NF_HDR (len bytes) to the device; back when it is
 * done with it (the MMDS has taken it by then). */
static void xmit(uint32_t len)
{
	struct gvbuf b = {tx, NF_HDR + len, false};
	uint32_t used = 1;
	int head = -1;

	memset(tx, 0, NF_HDR);
	GUEST_ASSERT(gvq_submit(&d.q[TX], &b, 1) >= 0);
	gvq_kick(&d.q[TX]);
	for (unsigned i = 0; i < WAITS && head < 0; i++)
		head = gvq_wait(&d.q[TX], &used, 1ull << 24);
	GUEST_ASSERT(head >= 0);
	GUEST_ASSERT_EQ(used, 0);
}

/* The next frame for us into cur: its length. */
static uint32_t rx_next(void)
{
	uint32_t len = 0;
	int head = -1;

	for (unsigned i = 0; i < WAITS && head < 0; i++)
		head = gvq_wait(&d.q[RX], &len, 1ull << 24);
	GUEST_ASSERT(head >= 0 && head < QSIZE && by_head[head]);
	GUEST_ASSERT(len >= NF_HDR + ETH && len <= BUFSZ);
	nf_check_hdr(by_head[head]);
	memcpy(cur, by_head[head] + NF_HDR, len - NF_HDR);
	post_rx(by_head[head]);
	gvq_kick(&d.q[RX]);
	return len - NF_HDR;
}

/* ---- frames to the MMDS ----------------------------------------------------------------- */

static uint8_t *frame(void)
{
	return tx + NF_HDR;
}

static void eth(uint8_t *f, uint16_t type)
{
	memcpy(f, mmds_mac, 6);
	memcpy(f + 6, nf_guest_mac, 6);
	put16(f + 12, type);
}

/* IPv4 header checksum and TCP checksum of the frame as it stands. */
static void fix_ip(uint8_t *f)
{
	uint8_t *ip = f + ETH;

	put16(ip + 10, 0);
	put16(ip + 10, fold(sum(ip, (uint32_t)(ip[0] & 15) * 4, 0)));
}

static void fix_tcp(uint8_t *f)
{
	uint8_t *ip = f + ETH, *t = ip + IP;
	uint32_t tl = be16(ip + 2) - IP;

	put16(t + 16, 0);
	put16(t + 16, fold(sum(t, tl, pseudo(MN_GUEST_IP, MN_MMDS_IP, 6, tl))));
}

struct seg_args {
	uint16_t sport, dport;
	uint32_t seq, ack;
	uint8_t flags;
	uint16_t wnd;
	bool mss; /* a 4-byte MSS option (1460) */
	const void *data;
	uint32_t len;
};

/* A whole, well-formed TCP segment in frame(): its length. */
static uint32_t tcp_frame(const struct seg_args *a)
{
	uint8_t *f = frame(), *ip = f + ETH, *t = ip + IP;
	uint32_t opt = a->mss ? 4 : 0, tl = TCP + opt + a->len;

	eth(f, 0x0800);
	memset(ip, 0, IP);
	ip[0] = 0x45;
	put16(ip + 2, IP + tl);
	put16(ip + 6, 0x4000);
	ip[8] = 64;
	ip[9] = 6;
	put32(ip + 12, MN_GUEST_IP);
	put32(ip + 16, MN_MMDS_IP);
	memset(t, 0, TCP);
	put16(t, a->sport);
	put16(t + 2, a->dport);
	put32(t + 4, a->seq);
	put32(t + 8, a->ack);
	t[12] = (uint8_t)(((TCP + opt) / 4) << 4);
	t[13] = a->flags;
	put16(t + 14, a->wnd);
	if (opt) {
		t[20] = 2;
		t[21] = 4;
		put16(t + 22, 1460);
	}
	if (a->len)
		memcpy(t + TCP + opt, a->data, a->len);
	fix_ip(f);
	fix_tcp(f);
	return ETH + IP + tl;
}

/* ---- frames from the MMDS ---------------------------------------------------------------- */

struct seg {
	uint16_t sport, dport;
	uint32_t seq, ack;
	uint8_t flags;
	uint16_t wnd;
	const uint8_t *data;
	uint32_t len;
};

/* The next frame, which must be a well-formed TCP segment from the MMDS. */
static void rx_seg(struct seg *s)
{
	uint32_t n = rx_next(), tot, tl, doff;
	const uint8_t *ip = cur + ETH, *t = ip + IP;

	GUEST_ASSERT_EQ(memcmp(cur, nf_guest_mac, 6), 0);
	GUEST_ASSERT_EQ(memcmp(cur + 6, mmds_mac, 6), 0);
	GUEST_ASSERT_EQ(be16(cur + 12), 0x0800);
	GUEST_ASSERT(n >= ETH + IP + TCP);
	GUEST_ASSERT_EQ(ip[0], 0x45);
	tot = be16(ip + 2);
	GUEST_ASSERT(tot >= IP + TCP && ETH + tot <= n);
	GUEST_ASSERT_EQ(fold(sum(ip, IP, 0)), 0);
	GUEST_ASSERT_EQ(ip[9], 6);
	GUEST_ASSERT_EQ(be32(ip + 12), MN_MMDS_IP);
	GUEST_ASSERT_EQ(be32(ip + 16), MN_GUEST_IP);
	tl = tot - IP;
	GUEST_ASSERT_EQ(fold(sum(t, tl, pseudo(MN_MMDS_IP, MN_GUEST_IP, 6, tl))), 0);
	doff = (uint32_t)(t[12] >> 4) * 4;
	GUEST_ASSERT(doff >= TCP && doff <= tl);
	s->sport = be16(t);
	s->dport = be16(t + 2);
	s->seq = be32(t + 4);
	s->ack = be32(t + 8);
	s->flags = t[13];
	s->wnd = be16(t + 14);
	s->data = t + doff;
	s->len = tl - doff;
	GUEST_ASSERT_EQ(s->sport, 80);
}

/* ---- a connection ---------------------------------------------------------------------------- */

struct tcb {
	uint16_t port;
	uint32_t seq, ack; /* next to send, next expected */
	uint32_t isn;      /* the MMDS's */
	uint16_t wnd;
	bool fin_in; /* the MMDS's FIN came */
	char resp[4096];
	uint32_t rlen;
};

static void send_seg(struct tcb *c, uint8_t flags, const void *data, uint32_t len)
{
	struct seg_args a = {.sport = c->port,
	                     .dport = 80,
	                     .seq = c->seq,
	                     .ack = c->ack,
	                     .flags = flags,
	                     .wnd = c->wnd,
	                     .data = data,
	                     .len = len};

	xmit(tcp_frame(&a));
	c->seq += len + !!(flags & (SYN | FIN));
}

static void send_ack(struct tcb *c)
{
	send_seg(c, ACK, NULL, 0);
}

/* The next segment of connection c that is news: retransmissions of what
 * it has (data before c->ack, a SYN-ACK again) are acknowledged again and
 * skipped. */
static void next_for(struct tcb *c, struct seg *s)
{
	for (;;) {
		rx_seg(s);
		if (s->dport != c->port && !(s->flags & RST)) {
			dups++; /* a closed connection's last segments, sent again */
			continue;
		}
		GUEST_ASSERT_EQ(s->dport, c->port);
		if ((s->flags & SYN) && c->ack && s->seq + 1 == c->ack) {
			dups++;
			send_ack(c);
			continue;
		}
		if (!(s->flags & (SYN | RST)) && s->len &&
		    (int32_t)(s->seq + s->len - c->ack) <= 0) {
			dups++;
			send_ack(c);
			continue;
		}
		return;
	}
}

static void connect(struct tcb *c, uint16_t port, uint32_t isn, uint16_t wnd)
{
	struct seg_args a = {
	    .sport = port, .dport = 80, .seq = isn, .flags = SYN, .wnd = wnd, .mss = true};
	struct seg s;

	memset(c, 0, sizeof(*c));
	c->port = port;
	c->seq = isn + 1;
	c->wnd = wnd;
	xmit(tcp_frame(&a));
	next_for(c, &s);
	GUEST_ASSERT_EQ(s.flags, SYN | ACK);
	GUEST_ASSERT_EQ(s.ack, isn + 1);
	GUEST_ASSERT_EQ(s.len, 0);
	c->isn = s.seq;
	c->ack = s.seq + 1;
	send_ack(c);
}

/* Take segment s's data (in order only: the MMDS sends in order) and FIN;
 * true when it brought anything to acknowledge. */
static bool take(struct tcb *c, const struct seg *s)
{
	GUEST_ASSERT(!(s->flags & (RST | SYN)));
	GUEST_ASSERT(s->flags & ACK);
	if (!s->len && !(s->flags & FIN))
		return false;
	GUEST_ASSERT_EQ(s->seq, c->ack);
	GUEST_ASSERT(c->rlen + s->len < sizeof(c->resp));
	memcpy(c->resp + c->rlen, s->data, s->len);
	c->rlen += s->len;
	c->ack += s->len;
	if (s->flags & FIN) {
		c->ack++;
		c->fin_in = true;
	}
	return true;
}

/* Is c->resp a whole HTTP response? Its status, else 0. */
static unsigned complete(struct tcb *c)
{
	size_t blank = find(c->resp, c->rlen, "\r\n\r\n"), cl;
	unsigned len = 0;

	if (blank == (size_t)-1)
		return 0;
	cl = find(c->resp, blank, "Content-Length: ");
	GUEST_ASSERT(cl != (size_t)-1);
	for (const char *p = c->resp + cl + 16; *p >= '0' && *p <= '9'; p++)
		len = len * 10 + (unsigned)(*p - '0');
	if (c->rlen < blank + 4 + len)
		return 0;
	GUEST_ASSERT_EQ(c->rlen, blank + 4 + len); /* one response at a time */
	GUEST_ASSERT_EQ(memcmp(c->resp, "HTTP/1.1 ", 9), 0);
	return (unsigned)(c->resp[9] - '0') * 100 + (unsigned)(c->resp[10] - '0') * 10 +
	       (unsigned)(c->resp[11] - '0');
}

/* Read the rest of a response on c (its first c->rlen bytes came),
 * acknowledging as it comes: its status. */
static unsigned response_rest(struct tcb *c)
{
	struct seg s;
	unsigned st;

	while (!(st = complete(c))) {
		next_for(c, &s);
		if (take(c, &s))
			send_ack(c);
	}
	return st;
}

/* A whole response. */
static unsigned response(struct tcb *c)
{
	c->rlen = 0;
	return response_rest(c);
}

/* The body of the response in c->resp, NUL-terminated. */
static const char *body(struct tcb *c)
{
	size_t blank = find(c->resp, c->rlen, "\r\n\r\n");

	GUEST_ASSERT(blank != (size_t)-1);
	c->resp[c->rlen] = '\0';
	return c->resp + blank + 4;
}

static unsigned request(struct tcb *c, const char *req)
{
	send_seg(c, ACK | PSH, req, (uint32_t)strlen(req));
	return response(c);
}

/* Our FIN, the MMDS's (if it has not come yet), the last ACKs. */
static void close(struct tcb *c)
{
	struct seg s;
	uint32_t fin = c->seq;
	bool acked = false;

	send_seg(c, FIN | ACK, NULL, 0);
	while (!c->fin_in || !acked) {
		next_for(c, &s);
		GUEST_ASSERT(!(s.flags & (RST | SYN)));
		GUEST_ASSERT_EQ(s.len, 0);
		acked = acked || s.ack == fin + 1;
		if (take(c, &s))
			send_ack(c); /* the MMDS's FIN: it ends the connection */
	}
}

/* A SYN to port 81 from port 9 (in a frame padded beyond IPv4's total
 * length, as Ethernet pads short frames): the RST for it must be the very
 * next frame, so nothing sent before it was answered. */
static void probe(void)
{
	static uint32_t isn = 0x50000000;
	struct seg_args a = {.sport = 9, .dport = 81, .seq = ++isn, .flags = SYN, .wnd = 100};
	uint32_t n = tcp_frame(&a);
	struct seg s;

	memset(frame() + n, 0, 20);
	xmit(n + 20);
	rx_seg(&s);
	while (s.dport != 9 && s.len && s.flags == (ACK | PSH)) {
		dups++; /* data sent again (the guest was slow to acknowledge it) */
		rx_seg(&s);
	}
	GUEST_ASSERT_EQ(s.dport, 9);
	GUEST_ASSERT_EQ(s.flags, RST | ACK);
	GUEST_ASSERT_EQ(s.ack, isn + 1);
}

/* ---- the stages ---------------------------------------------------------------------------- */

/* A broadcast ARP request for the MMDS's address, hardware type htype. */
static void arp_request(uint16_t htype)
{
	uint8_t *f = frame(), *a = f + ETH;

	eth(f, 0x0806);
	memset(f, 0xff, 6);
	put16(a, htype);
	put16(a + 2, 0x0800);
	a[4] = 6;
	a[5] = 4;
	put16(a + 6, 1);
	memcpy(a + 8, nf_guest_mac, 6);
	put32(a + 14, MN_GUEST_IP);
	memset(a + 18, 0, 6);
	put32(a + 24, MN_MMDS_IP);
	xmit(ETH + 28);
}

static void arp(void)
{
	const uint8_t *a = cur + ETH;
	uint32_t n;

	arp_request(1);
	n = rx_next();
	GUEST_ASSERT(n >= ETH + 28);
	GUEST_ASSERT_EQ(memcmp(cur, nf_guest_mac, 6), 0);
	GUEST_ASSERT_EQ(be16(cur + 12), 0x0806);
	GUEST_ASSERT_EQ(be16(a + 6), 2); /* a reply */
	GUEST_ASSERT_EQ(memcmp(a + 8, mmds_mac, 6), 0);
	GUEST_ASSERT_EQ(be32(a + 14), MN_MMDS_IP);
	GUEST_ASSERT_EQ(memcmp(a + 18, nf_guest_mac, 6), 0);
	GUEST_ASSERT_EQ(be32(a + 24), MN_GUEST_IP);
	guest_sync(MN_ARP, 0);
}

static const char get_ami[] = "GET /latest/meta-data/ami-id HTTP/1.1\r\n";

static unsigned get_with_token(struct tcb *c)
{
	char req[256];

	guest_snprintf(req, sizeof(req), "%sX-metadata-token: %s\r\n\r\n", get_ami, token);
	return request(c, req);
}

static void v2(void)
{
	struct tcb c;
	const char *b;
	size_t i;

	connect(&c, 40000, 0x1000, 8192);
	GUEST_ASSERT_EQ(request(&c, "PUT /latest/api/token HTTP/1.1\r\n"
	                            "X-metadata-token-ttl-seconds: 21600\r\n\r\n"),
	                200);
	b = body(&c);
	for (i = 0; b[i] && i + 1 < sizeof(token); i++)
		token[i] = b[i];
	token[i] = '\0';
	GUEST_ASSERT(i > 0 && b[i] == '\0');
	GUEST_ASSERT_EQ(get_with_token(&c), 200);
	GUEST_ASSERT_EQ(strlen(body(&c)), strlen(MN_AMI_ID));
	GUEST_ASSERT_EQ(memcmp(body(&c), MN_AMI_ID, strlen(MN_AMI_ID)), 0);
	GUEST_ASSERT_EQ(request(&c, "GET /latest/meta-data/ami-id HTTP/1.1\r\n\r\n"), 401);
	close(&c);
	guest_printf("mmds: V2 token of %u bytes, ami-id %s\n", (unsigned)strlen(token), MN_AMI_ID);
	guest_sync(MN_V2, 0);
}

/* A SYN to the MMDS, made well, then broken by fn. */
static void send_broken(void (*fn)(uint8_t *f, uint32_t *n))
{
	struct seg_args a = {.sport = 7, .dport = 80, .seq = 77, .flags = SYN, .wnd = 100};
	uint32_t n = tcp_frame(&a);

	fn(frame(), &n);
	xmit(n);
}

static void ihl_too_long(uint8_t *f, uint32_t *n)
{
	f[ETH] = 0x4f; /* 60 bytes of IPv4 header in a 54-byte frame */
	fix_ip(f);
}

static void version_6(uint8_t *f, uint32_t *n)
{
	f[ETH] = 0x65;
	fix_ip(f);
}

static void total_too_long(uint8_t *f, uint32_t *n)
{
	put16(f + ETH + 2, 200);
	fix_ip(f);
}

static void total_below_ihl(uint8_t *f, uint32_t *n)
{
	put16(f + ETH + 2, 10);
	fix_ip(f);
}

static void tcp_truncated(uint8_t *f, uint32_t *n)
{
	put16(f + ETH + 2, IP + 10); /* 10 bytes of TCP header */
	fix_ip(f);
}

static void ip_checksum(uint8_t *f, uint32_t *n)
{
	f[ETH + 10] ^= 0x40;
}

static void doff_short(uint8_t *f, uint32_t *n)
{
	f[ETH + IP + 12] = 4 << 4;
	fix_tcp(f);
}

static void doff_long(uint8_t *f, uint32_t *n)
{
	f[ETH + IP + 12] = 15 << 4;
	fix_tcp(f);
}

static void ihl_short(uint8_t *f, uint32_t *n)
{
	f[ETH] = 0x44;
	fix_ip(f);
}

static void tcp_checksum(uint8_t *f, uint32_t *n)
{
	f[ETH + IP + 16] ^= 0x01;
}

static void udp(uint8_t *f, uint32_t *n)
{
	f[ETH + 9] = 17;
	fix_ip(f);
}

static void fragment(uint8_t *f, uint32_t *n)
{
	put16(f + ETH + 6, 0x2000); /* more fragments */
	fix_ip(f);
}

static void no_ip_header(uint8_t *f, uint32_t *n)
{
	*n = ETH; /* an IPv4 frame that ends after its Ethernet header */
}

static void headers(void)
{
	static void (*const bad_eth[])(uint8_t *, uint32_t *) = {
	    ihl_too_long, version_6,  total_too_long, total_below_ihl, tcp_truncated,
	    ip_checksum,  doff_short, doff_long,      ihl_short};
	static void (*const unusual[])(uint8_t *, uint32_t *) = {udp, fragment};
	unsigned sent = 0;

	_Static_assert(sizeof(bad_eth) / sizeof(bad_eth[0]) == MN_BAD_ETH, "rx_bad_eth");
	for (unsigned i = 0; i < MN_BAD_ETH; i++, sent++)
		send_broken(bad_eth[i]);
	send_broken(tcp_checksum);
	sent++;
	arp_request(6); /* for the MMDS's address, another hardware type */
	sent++;
	for (unsigned i = 0; i < 2; i++, sent++)
		send_broken(unusual[i]);
	send_broken(no_ip_header); /* not the MMDS's: goes to the TAP */
	probe();
	guest_sync(MN_HEADERS, sent + 1);
}

/* Zero and shrinking windows, ACKs of data never sent, out of order. */
static void window(void)
{
	static const char part[] = "X-metadata-token: ";
	char req[256];
	struct tcb c;
	struct seg s;
	uint32_t n, start, got;

	connect(&c, 40001, 0x2000, 0);
	/* a request with a zero window: only an ACK comes */
	guest_snprintf(req, sizeof(req), "%s%s%s\r\n\r\n", get_ami, part, token);
	n = (uint32_t)strlen(req);
	send_seg(&c, ACK | PSH, req, n);
	next_for(&c, &s);
	GUEST_ASSERT_EQ(s.len, 0);
	GUEST_ASSERT_EQ(s.flags, ACK);
	GUEST_ASSERT_EQ(s.ack, c.seq);
	GUEST_ASSERT_EQ(s.seq, c.isn + 1);
	probe(); /* nothing else: the window is closed */
	/* 40 bytes of window: at most 40 bytes come */
	c.wnd = 40;
	send_ack(&c);
	next_for(&c, &s);
	GUEST_ASSERT(s.len > 0 && s.len <= 40);
	start = c.ack;
	c.rlen = 0;
	GUEST_ASSERT(take(&c, &s));
	got = s.len;
	while (got < 40) {
		next_for(&c, &s);
		GUEST_ASSERT(take(&c, &s));
		got += s.len;
	}
	GUEST_ASSERT_EQ(got, 40);
	/* acknowledged, and the window shrinks to nothing: nothing comes */
	c.wnd = 0;
	send_ack(&c);
	probe();
	/* an ACK of data never sent: the MMDS answers with where it is */
	c.ack += 5000;
	send_ack(&c);
	c.ack -= 5000;
	next_for(&c, &s);
	GUEST_ASSERT_EQ(s.flags, ACK);
	GUEST_ASSERT_EQ(s.len, 0);
	GUEST_ASSERT_EQ(s.seq, start + 40);
	probe();
	/* the window opens: the rest */
	c.wnd = 8192;
	send_ack(&c);
	GUEST_ASSERT_EQ(response_rest(&c), 200);
	GUEST_ASSERT_EQ(memcmp(body(&c), MN_AMI_ID, strlen(MN_AMI_ID) + 1), 0);

	/* the same request in three parts, the last first, then the first,
	 * then all of it again overlapping both, then the first again */
	{
		uint32_t base = c.seq, a = 20, b = 45;

		c.seq = base + b;
		send_seg(&c, ACK | PSH, req + b, n - b); /* ahead: a duplicate ACK */
		next_for(&c, &s);
		GUEST_ASSERT_EQ(s.len, 0);
		GUEST_ASSERT_EQ(s.ack, base);
		c.seq = base;
		send_seg(&c, ACK, req, a);
		next_for(&c, &s);
		GUEST_ASSERT_EQ(s.len, 0);
		GUEST_ASSERT_EQ(s.ack, base + a);
		c.seq = base + a - 10; /* 10 old bytes, the middle, 10 of the last part */
		send_seg(&c, ACK, req + a - 10, b - a + 20);
		next_for(&c, &s);
		GUEST_ASSERT_EQ(s.len, 0);
		GUEST_ASSERT_EQ(s.ack, base + b + 10);
		c.seq = base; /* all old: a duplicate ACK */
		send_seg(&c, ACK, req, a);
		next_for(&c, &s);
		GUEST_ASSERT_EQ(s.len, 0);
		GUEST_ASSERT_EQ(s.ack, base + b + 10);
		c.seq = base + b + 10;
		GUEST_ASSERT_EQ(request(&c, req + b + 10), 200);
	}
	GUEST_ASSERT_EQ(memcmp(body(&c), MN_AMI_ID, strlen(MN_AMI_ID) + 1), 0);
	close(&c);
	guest_sync(MN_WINDOW, 0);
}

/* An RST at the wrong sequence number is ignored; at the right one,
 * mid-request, it ends the connection: what follows gets an RST. */
static void rst(void)
{
	struct tcb c;
	struct seg s;
	uint32_t seq;

	connect(&c, 40002, 0x3000, 8192);
	send_seg(&c, ACK, get_ami, 10); /* half a request line */
	next_for(&c, &s);
	GUEST_ASSERT_EQ(s.ack, c.seq);
	seq = c.seq;
	c.seq += 1000;
	send_seg(&c, RST, NULL, 0); /* out of place: ignored */
	c.seq = seq;
	send_seg(&c, RST, NULL, 0);
	send_seg(&c, ACK | PSH, get_ami + 10, 10); /* to no connection */
	rx_seg(&s);
	GUEST_ASSERT_EQ(s.dport, c.port);
	GUEST_ASSERT_EQ(s.flags, RST);
	GUEST_ASSERT_EQ(s.seq, c.ack);
	guest_sync(MN_RST, 0);
}

/* MN_FLOOD_SYNS SYNs, never completed: each gets its SYN-ACK, and each
 * beyond the sixteenth first resets the oldest. Then the guest resets the
 * sixteen left. */
static void flood(void)
{
	struct tcb c[MN_FLOOD_SYNS];
	struct seg s;

	for (unsigned i = 0; i < MN_FLOOD_SYNS; i++) {
		struct seg_args a = {.sport = (uint16_t)(41000 + i),
		                     .dport = 80,
		                     .seq = 0x100000 * i,
		                     .flags = SYN,
		                     .wnd = 1000};

		memset(&c[i], 0, sizeof(c[i]));
		c[i].port = a.sport;
		c[i].seq = a.seq + 1;
		xmit(tcp_frame(&a));
		if (i >= 16) {
			/* the oldest goes first (SYN-ACKs it sends again may come before) */
			do
				rx_seg(&s);
			while (s.flags == (SYN | ACK) && s.dport != c[i].port);
			GUEST_ASSERT_EQ(s.flags, RST);
			GUEST_ASSERT_EQ(s.dport, 41000 + i - 16);
			GUEST_ASSERT_EQ(s.seq, c[i - 16].ack);
		}
		do
			rx_seg(&s);
		while (s.flags == (SYN | ACK) && s.dport != c[i].port);
		GUEST_ASSERT_EQ(s.flags, SYN | ACK);
		GUEST_ASSERT_EQ(s.dport, c[i].port);
		GUEST_ASSERT_EQ(s.ack, c[i].seq);
		c[i].isn = s.seq;
		c[i].ack = s.seq + 1;
	}
	guest_sync(MN_FLOOD, MN_FLOOD_SYNS);
	for (unsigned i = MN_FLOOD_SYNS - 16; i < MN_FLOOD_SYNS; i++)
		send_seg(&c[i], RST, NULL, 0);
	guest_sync(MN_FLOOD_RST, 16);
}

/* A request larger than the MMDS's 2500-byte buffer: 400 and the end of
 * the connection; a body announced larger than it: 413. */
static void too_big(void)
{
	static char big[2500];
	struct tcb c;

	memcpy(big, get_ami, sizeof(get_ami) - 1);
	for (size_t i = sizeof(get_ami) - 1; i < sizeof(big); i++)
		big[i] = (char)('a' + i % 26);
	connect(&c, 40003, 0x4000, 8192);
	for (unsigned i = 0; i < sizeof(big); i += 500)
		send_seg(&c, ACK, big + i, 500);
	GUEST_ASSERT_EQ(response(&c), 400);
	GUEST_ASSERT(find(c.resp, c.rlen, "Connection: close\r\n") != (size_t)-1);
	close(&c);
	connect(&c, 40004, 0x5000, 8192);
	GUEST_ASSERT_EQ(request(&c, "PUT /latest/api/token HTTP/1.1\r\n"
	                            "X-metadata-token-ttl-seconds: 60\r\n"
	                            "Content-Length: 100000\r\n\r\n"),
	                413);
	close(&c);
	guest_sync(MN_TOO_BIG, 0);
}

/* A response left unacknowledged comes again, twice (the retransmission
 * timer; waiting for it is waiting for a frame, not for a time). */
static void resend(void)
{
	char req[256];
	struct tcb c;
	struct seg s, first;
	unsigned again = 0;

	connect(&c, 40005, 0x6000, 8192);
	guest_snprintf(req, sizeof(req), "%sX-metadata-token: %s\r\n\r\n", get_ami, token);
	send_seg(&c, ACK | PSH, req, (uint32_t)strlen(req));
	next_for(&c, &first);
	GUEST_ASSERT(first.len > 0);
	GUEST_ASSERT_EQ(first.seq, c.ack);
	while (again < 2) {
		rx_seg(&s);
		if (s.dport != c.port && !(s.flags & RST)) {
			dups++; /* the flood's SYN-ACKs, sent again before their RSTs */
			continue;
		}
		GUEST_ASSERT_EQ(s.dport, c.port);
		GUEST_ASSERT_EQ(s.seq, first.seq);
		GUEST_ASSERT_EQ(s.len, first.len);
		again++;
	}
	c.rlen = 0;
	GUEST_ASSERT(take(&c, &s));
	send_ack(&c);
	GUEST_ASSERT_EQ(response_rest(&c), 200);
	close(&c);
	guest_sync(MN_RESEND, again);
}

static void last(void)
{
	struct tcb c;

	connect(&c, 40006, 0x7000, 8192);
	GUEST_ASSERT_EQ(get_with_token(&c), 200);
	GUEST_ASSERT_EQ(memcmp(body(&c), MN_AMI_ID, strlen(MN_AMI_ID) + 1), 0);
	close(&c);
	guest_printf("mmds: all stages passed; %u retransmitted segments skipped\n", dups);
	guest_sync(MN_LAST, dups);
}

static uint64_t run(uint64_t arg)
{
	up();
	arp();
	v2();
	headers();
	window();
	rst();
	flood();
	too_big();
	resend();
	last();
	return 0;
}

int main(void)
{
	guest_user_allow_ports(0, 0x10000); /* the user code drives the device */
	return (int)guest_run_user(run, 0);
}
