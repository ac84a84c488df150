// SPDX-License-Identifier: Apache-2.0
/*
 * The metadata service without a VM: the store (limits, merge patch), the
 * guest's HTTP (V1, V2 tokens, formats, errors) and the frame stack fed
 * raw Ethernet frames as a guest would send them (ARP, a TCP handshake,
 * GET, FIN) and hostile ones (bad checksums, every truncation, lengths
 * that lie, out-of-window sequence numbers, floods), checking every frame
 * that comes back: its checksums, addresses and sequence numbers.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mmds/mmds.h"
#include "mmds/stack.h"

#define MMDS_IP  0xa9fea9feu
#define GUEST_IP 0x0a000002u
static const uint8_t GUEST_MAC[6] = {0x02, 0, 0, 0, 0, 0x11};
static const uint8_t MMDS_MAC[6] = {0x06, 0x01, 0x23, 0x45, 0x67, 0x01};

#define FIN 0x01
#define SYN 0x02
#define RST 0x04
#define PSH 0x08
#define ACK 0x10

/* ---- frames ------------------------------------------------------------------------------- */

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

static uint16_t be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)be16(p) << 16 | be16(p + 2);
}

static uint16_t csum(const uint8_t *p, size_t n, uint32_t acc)
{
	for (size_t i = 0; i + 1 < n; i += 2)
		acc += be16(p + i);
	if (n & 1)
		acc += (uint32_t)p[n - 1] << 8;
	while (acc >> 16)
		acc = (acc & 0xffff) + (acc >> 16);
	return (uint16_t)~acc;
}

static uint32_t pseudo(uint32_t s, uint32_t d, size_t len)
{
	return (s >> 16) + (s & 0xffff) + (d >> 16) + (d & 0xffff) + 6 + (uint32_t)len;
}

static size_t arp_request(uint8_t *f, uint32_t target)
{
	memset(f, 0xff, 6);
	memcpy(f + 6, GUEST_MAC, 6);
	put16(f + 12, 0x0806);
	put16(f + 14, 1);
	put16(f + 16, 0x0800);
	f[18] = 6;
	f[19] = 4;
	put16(f + 20, 1);
	memcpy(f + 22, GUEST_MAC, 6);
	put32(f + 28, GUEST_IP);
	memset(f + 32, 0, 6);
	put32(f + 38, target);
	return 42;
}

struct tcp_args {
	uint16_t sport, dport;
	uint32_t seq, ack;
	uint8_t flags;
	uint16_t wnd; /* 0: 64240 (zero_wnd for a zero window) */
	bool zero_wnd;
	const uint8_t *opt;
	size_t opt_len;
	const void *data;
	size_t len;
};

static size_t tcp_frame(uint8_t *f, const struct tcp_args *a)
{
	uint8_t *ip = f + 14, *t = ip + 20;
	size_t tl = 20 + a->opt_len + a->len;

	memcpy(f, MMDS_MAC, 6);
	memcpy(f + 6, GUEST_MAC, 6);
	put16(f + 12, 0x0800);
	memset(ip, 0, 20);
	ip[0] = 0x45;
	put16(ip + 2, (uint16_t)(20 + tl));
	ip[8] = 64;
	ip[9] = 6;
	put32(ip + 12, GUEST_IP);
	put32(ip + 16, MMDS_IP);
	put16(ip + 10, csum(ip, 20, 0));
	memset(t, 0, 20);
	put16(t, a->sport);
	put16(t + 2, a->dport ? a->dport : 80);
	put32(t + 4, a->seq);
	put32(t + 8, a->ack);
	t[12] = (uint8_t)(((20 + a->opt_len) / 4) << 4);
	t[13] = a->flags;
	put16(t + 14, a->zero_wnd ? 0 : a->wnd ? a->wnd : 64240);
	if (a->opt_len)
		memcpy(t + 20, a->opt, a->opt_len);
	if (a->len)
		memcpy(t + 20 + a->opt_len, a->data, a->len);
	put16(t + 16, csum(t, tl, pseudo(GUEST_IP, MMDS_IP, tl)));
	return 14 + 20 + tl;
}

/* A frame from the stack, checked and taken apart. */
struct out {
	bool arp;
	uint16_t dport;
	uint32_t seq, ack;
	uint8_t flags;
	uint16_t wnd;
	uint16_t mss; /* from a SYN's option, else 0 */
	uint8_t data[2048];
	size_t len;
};

static void check_out(const uint8_t *f, size_t n, struct out *o)
{
	memset(o, 0, sizeof(*o));
	assert_true(n >= 42);
	assert_memory_equal(f, GUEST_MAC, 6);
	assert_memory_equal(f + 6, MMDS_MAC, 6);
	if (be16(f + 12) == 0x0806) {
		o->arp = true;
		assert_int_equal(be16(f + 20), 2);
		assert_memory_equal(f + 22, MMDS_MAC, 6);
		assert_int_equal(be32(f + 28), MMDS_IP);
		assert_memory_equal(f + 32, GUEST_MAC, 6);
		assert_int_equal(be32(f + 38), GUEST_IP);
		return;
	}
	assert_int_equal(be16(f + 12), 0x0800);
	const uint8_t *ip = f + 14, *t = ip + 20;
	assert_int_equal(ip[0], 0x45);
	assert_int_equal(be16(ip + 2), n - 14);
	assert_int_equal(csum(ip, 20, 0), 0);
	assert_int_equal(be32(ip + 12), MMDS_IP);
	assert_int_equal(be32(ip + 16), GUEST_IP);
	size_t tl = n - 34, doff = (size_t)(t[12] >> 4) * 4;
	assert_int_equal(csum(t, tl, pseudo(MMDS_IP, GUEST_IP, tl)), 0);
	assert_int_equal(be16(t), 80);
	o->dport = be16(t + 2);
	o->seq = be32(t + 4);
	o->ack = be32(t + 8);
	o->flags = t[13];
	o->wnd = be16(t + 14);
	if ((o->flags & SYN) && doff >= 24 && t[20] == 2 && t[21] == 4)
		o->mss = be16(t + 22);
	o->len = tl - doff;
	assert_true(o->len <= sizeof(o->data));
	memcpy(o->data, t + doff, o->len);
}

/* ---- a guest's end of one connection -------------------------------------------------------- */

struct fx {
	struct spk_mmds *m;
	struct spk_mmds_stack *s;
	uint8_t f[70000];
};

static uint64_t fake_now = 1000000;
static uint64_t fake_clock(void)
{
	return fake_now;
}

static int setup(void **state)
{
	struct fx *x = calloc(1, sizeof(*x));
	json_t *d = json_loads("{\"latest\":{\"meta-data\":{\"ami-id\":\"ami-12345678\","
	                       "\"reservation-id\":\"r-1\",\"net\":{\"a\":\"b\"}}},"
	                       "\"age\":43,\"list\":[\"x\",\"y\"]}",
	                       0, NULL);

	assert_non_null(x);
	assert_int_equal(spk_mmds_new(SPK_MMDS_LIMIT_DEFAULT, &x->m), 0);
	assert_int_equal(spk_mmds_put(x->m, d), 0);
	json_decref(d);
	spk_mmds_set_clock(x->m, fake_clock);
	assert_int_equal(spk_mmds_stack_new(x->m, &x->s), 0);
	*state = x;
	return 0;
}

static int teardown(void **state)
{
	struct fx *x = *state;

	spk_mmds_stack_free(x->s);
	spk_mmds_free(x->m);
	free(x);
	return 0;
}

/* The next frame out, checked; false when there is none. */
static bool next(struct fx *x, struct out *o)
{
	size_t n = spk_mmds_stack_rx(x->s, x->f, 1526);

	if (!n)
		return false;
	assert_true(n <= 1526);
	check_out(x->f, n, o);
	return true;
}

static void none_out(struct fx *x)
{
	struct out o;

	assert_false(next(x, &o));
}

static void send_tcp(struct fx *x, const struct tcp_args *a)
{
	size_t n = tcp_frame(x->f, a);

	assert_true(spk_mmds_stack_match(x->s, x->f, n));
	spk_mmds_stack_tx(x->s, x->f, n);
}

struct peer {
	uint16_t port;
	uint32_t seq, ack; /* next to send, next expected */
	uint16_t wnd;
};

/* SYN, SYN-ACK, ACK. */
static void handshake(struct fx *x, struct peer *p)
{
	static const uint8_t mss[4] = {2, 4, 0x05, 0xb4};
	struct out o;

	send_tcp(x, &(struct tcp_args){.sport = p->port,
	                               .seq = p->seq,
	                               .flags = SYN,
	                               .opt = mss,
	                               .opt_len = 4,
	                               .wnd = p->wnd});
	do /* RSTs to connections it evicted may come first */
		assert_true(next(x, &o));
	while (o.flags == RST && o.dport != p->port);
	assert_int_equal(o.flags, SYN | ACK);
	assert_int_equal(o.ack, p->seq + 1);
	assert_int_equal(o.mss, 1460);
	assert_int_equal(o.dport, p->port);
	none_out(x);
	p->seq++;
	p->ack = o.seq + 1;
	send_tcp(x,
	         &(struct tcp_args){
	             .sport = p->port, .seq = p->seq, .ack = p->ack, .flags = ACK, .wnd = p->wnd});
	none_out(x);
}

/* Send a request, collect the response (ACKing as it comes) into buf;
 * returns its length; *fin: the stack closed after it. */
static size_t request(struct fx *x, struct peer *p, const char *req, char *buf, size_t cap,
                      bool *fin)
{
	struct out o;
	size_t got = 0;

	send_tcp(x, &(struct tcp_args){.sport = p->port,
	                               .seq = p->seq,
	                               .ack = p->ack,
	                               .flags = ACK | PSH,
	                               .data = req,
	                               .len = strlen(req),
	                               .wnd = p->wnd});
	p->seq += (uint32_t)strlen(req);
	*fin = false;
	while (next(x, &o)) {
		assert_int_equal(o.seq, p->ack);
		assert_true(o.flags & ACK);
		assert_true(got + o.len < cap);
		memcpy(buf + got, o.data, o.len);
		got += o.len;
		p->ack += (uint32_t)o.len;
		if (o.flags & FIN) {
			p->ack++;
			*fin = true;
		}
		if (o.len || (o.flags & FIN))
			send_tcp(x, &(struct tcp_args){.sport = p->port,
			                               .seq = p->seq,
			                               .ack = p->ack,
			                               .flags = ACK,
			                               .wnd = p->wnd});
	}
	buf[got] = '\0';
	return got;
}

/* The body of an HTTP response (after the blank line). */
static const char *body_of(const char *r)
{
	const char *b = strstr(r, "\r\n\r\n");

	assert_non_null(b);
	return b + 4;
}

static unsigned conns(struct fx *x)
{
	unsigned c, q;

	spk_mmds_stack_counts(x->s, &c, &q);
	return c;
}

/* ---- tests: the store -------------------------------------------------------------------------
 */

static void test_siphash_vectors(void **state)
{
	uint8_t key[16], msg[15];

	for (int i = 0; i < 16; i++)
		key[i] = (uint8_t)i;
	for (int i = 0; i < 15; i++)
		msg[i] = (uint8_t)i;
	/* the reference implementation's vectors */
	assert_true(spk_mmds_siphash(key, msg, 0) == 0x726fdb47dd0e0e31ull);
	assert_true(spk_mmds_siphash(key, msg, 15) == 0xa129ca6149be45e5ull);
}

static void test_store_limits_and_patch(void **state)
{
	struct spk_mmds *m;
	json_t *v, *got;

	assert_int_equal(spk_mmds_new(0, &m), -EINVAL);
	assert_int_equal(spk_mmds_new(20, &m), 0);
	got = spk_mmds_get(m);
	assert_int_equal(json_object_size(got), 0); /* {} before any put */
	json_decref(got);
	v = json_loads("{\"a\":1}", 0, NULL);
	assert_int_equal(spk_mmds_patch(m, v), -ENODATA);
	assert_int_equal(spk_mmds_put(m, v), 0); /* 7 bytes */
	json_decref(v);
	/* exactly 20 bytes fits, 21 does not */
	v = json_loads("{\"a\":\"123456789012\"}", 0, NULL);
	assert_int_equal(spk_mmds_put(m, v), 0);
	json_decref(v);
	v = json_loads("{\"a\":\"1234567890123\"}", 0, NULL);
	assert_int_equal(spk_mmds_put(m, v), -EFBIG);
	json_decref(v);
	/* a patch that would grow past the limit changes nothing */
	v = json_loads("{\"b\":\"x\"}", 0, NULL);
	assert_int_equal(spk_mmds_patch(m, v), -EFBIG);
	json_decref(v);
	got = spk_mmds_get(m);
	assert_string_equal(json_string_value(json_object_get(got, "a")), "123456789012");
	assert_null(json_object_get(got, "b"));
	json_decref(got);
	spk_mmds_free(m);

	/* RFC 7396's example */
	assert_int_equal(spk_mmds_new(1000, &m), 0);
	v = json_loads("{\"a\":\"b\",\"c\":{\"d\":\"e\",\"f\":\"g\"}}", 0, NULL);
	assert_int_equal(spk_mmds_put(m, v), 0);
	json_decref(v);
	v = json_loads("{\"a\":\"z\",\"c\":{\"f\":null},\"n\":{\"x\":[1]}}", 0, NULL);
	assert_int_equal(spk_mmds_patch(m, v), 0);
	json_decref(v);
	got = spk_mmds_get(m);
	v = json_loads("{\"a\":\"z\",\"c\":{\"d\":\"e\"},\"n\":{\"x\":[1]}}", 0, NULL);
	assert_true(json_equal(got, v));
	json_decref(v);
	json_decref(got);
	/* a non-object patch replaces the whole document */
	v = json_loads("[1,2]", 0, NULL);
	assert_int_equal(spk_mmds_patch(m, v), 0);
	got = spk_mmds_get(m);
	assert_true(json_equal(got, v));
	json_decref(got);
	json_decref(v);
	spk_mmds_free(m);
}

/* ---- tests: HTTP (through spk_mmds_http directly)
 * ------------------------------------------------ */

static char *http(struct fx *x, const char *req, bool *close, long *took)
{
	char *resp = NULL;
	size_t len = 0;

	*took = spk_mmds_http(x->m, req, strlen(req), 2500, &resp, &len, close);
	if (*took <= 0)
		return NULL;
	char *s = malloc(len + 1);
	memcpy(s, resp, len);
	s[len] = '\0';
	free(resp);
	return s;
}

static void expect(struct fx *x, const char *req, const char *status, const char *body)
{
	bool close;
	long took;
	char *r = http(x, req, &close, &took);

	assert_non_null(r);
	if (strncmp(r, status, strlen(status)) != 0)
		fail_msg("%s -> %s", req, r);
	if (body && strcmp(body_of(r), body) != 0)
		fail_msg("%s -> body '%s', want '%s'", req, body_of(r), body);
	free(r);
}

static void test_http_v1_formats(void **state)
{
	struct fx *x = *state;
	struct spk_mmds_config c = {SPK_MMDS_V1, MMDS_IP, false};

	expect(x, "GET /latest/meta-data/ami-id HTTP/1.1\r\n\r\n", "HTTP/1.1 200", "ami-12345678");
	expect(x, "GET //latest//meta-data/ HTTP/1.1\r\n\r\n", "HTTP/1.1 200",
	       "ami-id\nnet/\nreservation-id");
	expect(x, "GET /latest/meta-data/ami-id HTTP/1.1\r\nAccept: application/json\r\n\r\n",
	       "HTTP/1.1 200", "\"ami-12345678\"");
	expect(x, "GET /latest/meta-data/net HTTP/1.1\r\naccept: application/json\r\n\r\n",
	       "HTTP/1.1 200", "{\"a\":\"b\"}");
	expect(x, "GET /age HTTP/1.1\r\n\r\n", "HTTP/1.1 501", NULL);
	expect(x, "GET /age HTTP/1.1\r\nAccept: application/json\r\n\r\n", "HTTP/1.1 200", "43");
	expect(x, "GET /list/1 HTTP/1.1\r\n\r\n", "HTTP/1.1 200", "y");
	expect(x, "GET /list/01 HTTP/1.1\r\n\r\n", "HTTP/1.1 404", NULL);
	expect(x, "GET /list/99999999999999999999999 HTTP/1.1\r\n\r\n", "HTTP/1.1 404", NULL);
	expect(x, "GET /nothing HTTP/1.0\r\n\r\n", "HTTP/1.0 404", "Resource not found: /nothing.");
	expect(x, "GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 200", "age\nlatest/\nlist");
	expect(x, "POST / HTTP/1.1\r\n\r\n", "HTTP/1.1 405", NULL);
	expect(x, "GET nothing HTTP/1.1\r\n\r\n", "HTTP/1.1 400", "Invalid URI.");
	/* imds_compat: IMDS whatever the Accept header says */
	c.imds_compat = true;
	spk_mmds_set_config(x->m, &c);
	expect(x, "GET /latest/meta-data/ami-id HTTP/1.1\r\nAccept: application/json\r\n\r\n",
	       "HTTP/1.1 200", "ami-12345678");
	/* V1 counts requests without a token and with a bad one */
	struct spk_mmds_metrics mt;
	spk_mmds_get_metrics(x->m, &mt);
	assert_true(mt.rx_no_token >= 10);
	expect(x, "GET /age HTTP/1.1\r\nX-metadata-token: nope\r\nAccept: application/json\r\n\r\n",
	       "HTTP/1.1 501", NULL);
	spk_mmds_get_metrics(x->m, &mt);
	assert_int_equal(mt.rx_invalid_token, 1);
}

static void test_http_v2_tokens(void **state)
{
	struct fx *x = *state;
	struct spk_mmds_config c = {SPK_MMDS_V2, MMDS_IP, false};
	char req[256], tok[64];
	bool close;
	long took;

	spk_mmds_set_config(x->m, &c);
	expect(x, "GET /age HTTP/1.1\r\n\r\n", "HTTP/1.1 401", NULL);
	expect(x, "GET /age HTTP/1.1\r\nX-metadata-token: 00\r\n\r\n", "HTTP/1.1 401",
	       "MMDS token not valid.");
	expect(x, "PUT /latest/api/token HTTP/1.1\r\n\r\n", "HTTP/1.1 400", NULL);
	expect(x, "PUT /latest/api/token HTTP/1.1\r\nX-metadata-token-ttl-seconds: 0\r\n\r\n",
	       "HTTP/1.1 400", NULL);
	expect(x, "PUT /latest/api/token HTTP/1.1\r\nX-metadata-token-ttl-seconds: 21601\r\n\r\n",
	       "HTTP/1.1 400", NULL);
	expect(x, "PUT /latest/api/token HTTP/1.1\r\nX-metadata-token-ttl-seconds: -1\r\n\r\n",
	       "HTTP/1.1 400", NULL);
	expect(x,
	       "PUT /latest/api/token HTTP/1.1\r\nX-metadata-token-ttl-seconds: 10\r\n"
	       "X-Forwarded-For: 1.2.3.4\r\n\r\n",
	       "HTTP/1.1 400", NULL);
	expect(x, "PUT /latest/other HTTP/1.1\r\nX-metadata-token-ttl-seconds: 10\r\n\r\n",
	       "HTTP/1.1 404", NULL);

	char *r =
	    http(x, "PUT /latest//api/token HTTP/1.1\r\nX-metadata-token-ttl-seconds: 10\r\n\r\n",
	         &close, &took);
	assert_non_null(r);
	assert_memory_equal(r, "HTTP/1.1 200", 12);
	assert_non_null(strstr(r, "X-metadata-token-ttl-seconds: 10\r\n"));
	snprintf(tok, sizeof(tok), "%s", body_of(r));
	free(r);
	assert_int_equal(strlen(tok), 48);
	snprintf(req, sizeof(req),
	         "GET /latest/meta-data/ami-id HTTP/1.1\r\nX-metadata-token: %s\r\n\r\n", tok);
	expect(x, req, "HTTP/1.1 200", "ami-12345678");
	snprintf(
	    req, sizeof(req),
	    "GET /age HTTP/1.1\r\nX-aws-ec2-metadata-token: %s\r\nAccept: application/json\r\n\r\n",
	    tok);
	expect(x, req, "HTTP/1.1 200", "43");
	/* one changed character: refused */
	char last = tok[47];
	tok[47] = last == '0' ? '1' : '0';
	snprintf(req, sizeof(req), "GET /age HTTP/1.1\r\nX-metadata-token: %s\r\n\r\n", tok);
	expect(x, req, "HTTP/1.1 401", NULL);
	tok[47] = last;
	/* expiry: valid until the clock passes it */
	fake_now += 9999;
	snprintf(req, sizeof(req),
	         "GET /age HTTP/1.1\r\nX-metadata-token: %s\r\nAccept: application/json\r\n\r\n",
	         tok);
	expect(x, req, "HTTP/1.1 200", "43");
	fake_now += 2;
	expect(x, req, "HTTP/1.1 401", NULL);
}

static void test_http_bad_requests(void **state)
{
	struct fx *x = *state;
	char big[3000];
	bool close;
	long took;
	char *r;

	/* incomplete: nothing yet */
	assert_null(http(x, "GET / HTTP/1.1\r\nHost: x\r\n", &close, &took));
	assert_int_equal(took, 0);
	/* a body still coming */
	assert_null(http(x, "PUT /x HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc", &close, &took));
	assert_int_equal(took, 0);
	expect(x, "PUT /latest/api/token HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n",
	       "HTTP/1.1 400", NULL);
	expect(x, "PUT /latest/api/token HTTP/1.1\r\nContent-Length: 4294967295\r\n\r\n",
	       "HTTP/1.1 413", NULL);
	expect(x, "GET / HTTP/2.0\r\n\r\n", "HTTP/1.1 400", NULL);
	expect(x, "GET / HTTP/1.1\r\nNo colon here\r\n\r\n", "HTTP/1.1 400", NULL);
	expect(x, "GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", "HTTP/1.1 400", NULL);
	expect(x, "GET / HTTP/1.1\nHost: x\r\n\r\n", "HTTP/1.1 400", NULL);
	expect(x, "GET /\x01 HTTP/1.1\r\n\r\n", "HTTP/1.1 400", NULL);
	expect(x, "\r\n\r\n", "HTTP/1.1 400", NULL);
	/* a head that never ends: 400 and close once the buffer is full */
	memset(big, 'a', sizeof(big));
	big[sizeof(big) - 1] = '\0';
	r = http(x, big, &close, &took);
	assert_non_null(r);
	assert_memory_equal(r, "HTTP/1.1 400", 12);
	assert_true(close);
	assert_int_equal(took, 2500);
	free(r);
	/* two pipelined: the first only */
	r = http(x, "GET /age HTTP/1.1\r\nAccept: application/json\r\n\r\nGET / HTTP/1.1\r\n\r\n",
	         &close, &took);
	assert_int_equal(took, strlen("GET /age HTTP/1.1\r\nAccept: application/json\r\n\r\n"));
	assert_false(close);
	free(r);
	r = http(x, "GET /age HTTP/1.1\r\nConnection: close\r\nAccept: application/json\r\n\r\n",
	         &close, &took);
	assert_true(close);
	free(r);
	r = http(x, "GET /age HTTP/1.0\r\nAccept: application/json\r\n\r\n", &close, &took);
	assert_true(close);
	free(r);
}

/* ---- tests: frames ----------------------------------------------------------------------------
 */

static void test_match(void **state)
{
	struct fx *x = *state;
	uint8_t *f = x->f;
	size_t n = arp_request(f, MMDS_IP);

	assert_true(spk_mmds_stack_match(x->s, f, n));
	for (size_t i = 0; i < n; i++) /* a truncated ARP is not ours: it goes to the TAP */
		assert_false(spk_mmds_stack_match(x->s, f, i));
	put32(f + 38, 0x0a000001);
	assert_false(spk_mmds_stack_match(x->s, f, n));
	n = tcp_frame(f, &(struct tcp_args){.sport = 1, .flags = SYN});
	assert_true(spk_mmds_stack_match(x->s, f, n));
	assert_false(spk_mmds_stack_match(x->s, f, 33));
	put16(f + 12, 0x86dd); /* IPv6 */
	assert_false(spk_mmds_stack_match(x->s, f, n));
}

static void test_arp(void **state)
{
	struct fx *x = *state;
	struct out o;
	size_t n = arp_request(x->f, MMDS_IP);

	spk_mmds_stack_tx(x->s, x->f, n);
	assert_true(next(x, &o));
	assert_true(o.arp);
	none_out(x);
	/* a bad hardware type, a reply: nothing */
	n = arp_request(x->f, MMDS_IP);
	put16(x->f + 14, 6);
	spk_mmds_stack_tx(x->s, x->f, n);
	n = arp_request(x->f, MMDS_IP);
	put16(x->f + 20, 2);
	spk_mmds_stack_tx(x->s, x->f, n);
	none_out(x);
	/* no room for a frame: nothing taken */
	n = arp_request(x->f, MMDS_IP);
	spk_mmds_stack_tx(x->s, x->f, n);
	assert_int_equal(spk_mmds_stack_rx(x->s, x->f, 60), 0);
	assert_true(next(x, &o));
}

static void test_get_over_tcp(void **state)
{
	struct fx *x = *state;
	struct peer p = {.port = 40000, .seq = 0xfffffff0u}; /* wraps during the exchange */
	char buf[8192];
	bool fin;
	struct out o;
	struct spk_mmds_metrics mt;

	handshake(x, &p);
	assert_int_equal(conns(x), 1);
	size_t n = request(x, &p, "GET /latest/meta-data/ami-id HTTP/1.1\r\nHost: x\r\n\r\n", buf,
	                   sizeof(buf), &fin);
	assert_true(n > 0);
	assert_false(fin);
	assert_memory_equal(buf, "HTTP/1.1 200 OK\r\n", 17);
	assert_string_equal(body_of(buf), "ami-12345678");
	/* keep-alive: a second request on the same connection, then close */
	n = request(x, &p, "GET /latest/meta-data/ HTTP/1.1\r\nConnection: close\r\n\r\n", buf,
	            sizeof(buf), &fin);
	assert_true(fin);
	assert_string_equal(body_of(buf), "ami-id\nnet/\nreservation-id");
	assert_int_equal(conns(x), 1); /* until the guest's FIN */
	send_tcp(
	    x, &(struct tcp_args){.sport = p.port, .seq = p.seq, .ack = p.ack, .flags = FIN | ACK});
	assert_true(next(x, &o));
	assert_int_equal(o.flags, ACK);
	assert_int_equal(o.ack, p.seq + 1);
	none_out(x);
	assert_int_equal(conns(x), 0);
	spk_mmds_get_metrics(x->m, &mt);
	assert_int_equal(mt.connections_created, 1);
	assert_int_equal(mt.connections_destroyed, 1);
	assert_int_equal(mt.rx_count, 2);
	/* a late segment: reset */
	send_tcp(x,
	         &(struct tcp_args){.sport = p.port, .seq = p.seq + 1, .ack = p.ack, .flags = ACK});
	assert_true(next(x, &o));
	assert_int_equal(o.flags, RST);
	assert_int_equal(o.seq, p.ack);
}

static void test_guest_closes_first(void **state)
{
	struct fx *x = *state;
	struct peer p = {.port = 40001, .seq = 1000};
	struct out o;
	const char *req = "GET /age HTTP/1.1\r\nAccept: application/json\r\n\r\n";
	char buf[4096];
	size_t got = 0;

	handshake(x, &p);
	/* the request and FIN in one segment */
	send_tcp(x, &(struct tcp_args){.sport = p.port,
	                               .seq = p.seq,
	                               .ack = p.ack,
	                               .flags = ACK | PSH | FIN,
	                               .data = req,
	                               .len = strlen(req)});
	p.seq += (uint32_t)strlen(req) + 1;
	bool fin = false;
	while (next(x, &o)) {
		assert_int_equal(o.ack, p.seq);
		memcpy(buf + got, o.data, o.len);
		got += o.len;
		p.ack += (uint32_t)o.len + !!(o.flags & FIN);
		fin |= o.flags & FIN;
	}
	buf[got] = '\0';
	assert_true(fin);
	assert_string_equal(body_of(buf), "43");
	send_tcp(x, &(struct tcp_args){.sport = p.port, .seq = p.seq, .ack = p.ack, .flags = ACK});
	none_out(x);
	assert_int_equal(conns(x), 0);
}

static void test_window_and_mss(void **state)
{
	struct fx *x = *state;
	struct peer p = {.port = 40002, .seq = 5, .wnd = 100};
	static const uint8_t mss1[4] = {2, 4, 0, 1}; /* 1 byte: clamped */
	char req[] = "GET / HTTP/1.1\r\nAccept: application/json\r\n\r\n";
	struct out o;
	unsigned frames = 0;

	send_tcp(x, &(struct tcp_args){.sport = p.port,
	                               .seq = p.seq,
	                               .flags = SYN,
	                               .opt = mss1,
	                               .opt_len = 4,
	                               .wnd = 100});
	assert_true(next(x, &o));
	p.seq++;
	p.ack = o.seq + 1;
	send_tcp(x, &(struct tcp_args){.sport = p.port,
	                               .seq = p.seq,
	                               .ack = p.ack,
	                               .flags = ACK | PSH,
	                               .data = req,
	                               .len = strlen(req),
	                               .wnd = 100});
	p.seq += (uint32_t)strlen(req);
	/* without ACKs: no more than the window in flight, in segments of <= 64 */
	uint32_t sent = 0;
	while (next(x, &o)) {
		assert_true(o.len <= 64);
		sent += (uint32_t)o.len;
		frames++;
	}
	assert_true(sent <= 100);
	assert_true(sent > 0);
	assert_true(frames >= 2);
	/* two duplicate ACKs: the stack sends from the first unacked byte again */
	for (int i = 0; i < 2; i++)
		send_tcp(
		    x, &(struct tcp_args){
		           .sport = p.port, .seq = p.seq, .ack = p.ack, .flags = ACK, .wnd = 100});
	assert_true(next(x, &o));
	assert_int_equal(o.seq, p.ack);
	/* a zero window: nothing moves */
	send_tcp(x, &(struct tcp_args){.sport = p.port,
	                               .seq = p.seq,
	                               .ack = p.ack + (uint32_t)o.len,
	                               .flags = ACK,
	                               .zero_wnd = true});
	none_out(x);
	send_tcp(
	    x,
	    &(struct tcp_args){
	        .sport = p.port, .seq = p.seq, .ack = p.ack + 64, .flags = ACK, .zero_wnd = true});
	none_out(x);
	/* the window opens: the rest flows */
	send_tcp(x,
	         &(struct tcp_args){
	             .sport = p.port, .seq = p.seq, .ack = p.ack + 64, .flags = ACK, .wnd = 1000});
	assert_true(next(x, &o));
	assert_int_equal(o.seq, p.ack + 64);
	assert_true(o.len > 0 && o.len <= 64);
}

/* After sending again from the first unacked byte, an ACK of all that was
 * sent before is taken (not "never sent"), and sending goes on from it. */
static void test_ack_after_resend(void **state)
{
	struct fx *x = *state;
	struct peer p = {.port = 40006, .seq = 9, .wnd = 100};
	static const uint8_t mss[4] = {2, 4, 0, 64};
	const char *req = "GET / HTTP/1.1\r\nAccept: application/json\r\n\r\n";
	struct out o;
	uint32_t sent = 0;

	send_tcp(
	    x,
	    &(struct tcp_args){
	        .sport = p.port, .seq = p.seq, .flags = SYN, .opt = mss, .opt_len = 4, .wnd = 100});
	assert_true(next(x, &o));
	p.seq++;
	p.ack = o.seq + 1;
	send_tcp(x, &(struct tcp_args){.sport = p.port,
	                               .seq = p.seq,
	                               .ack = p.ack,
	                               .flags = ACK | PSH,
	                               .data = req,
	                               .len = strlen(req),
	                               .wnd = 100});
	p.seq += (uint32_t)strlen(req);
	while (next(x, &o))
		sent += (uint32_t)o.len;
	assert_int_equal(sent, 100);
	for (int i = 0; i < 2; i++)
		send_tcp(
		    x, &(struct tcp_args){
		           .sport = p.port, .seq = p.seq, .ack = p.ack, .flags = ACK, .wnd = 100});
	assert_true(next(x, &o));
	assert_int_equal(o.seq, p.ack); /* sent again */
	send_tcp(x,
	         &(struct tcp_args){
	             .sport = p.port, .seq = p.seq, .ack = p.ack + 100, .flags = ACK, .wnd = 100});
	assert_true(next(x, &o));
	assert_int_equal(o.seq, p.ack + 100);
	assert_int_equal(o.flags & ACK, ACK);
	assert_true(o.len > 0);
}

static void test_bad_checksums_and_truncation(void **state)
{
	struct fx *x = *state;
	struct spk_mmds_metrics before, after;
	size_t n;

	spk_mmds_get_metrics(x->m, &before);
	/* a bad IP header checksum, a bad TCP checksum: dropped, counted */
	n = tcp_frame(x->f, &(struct tcp_args){.sport = 7, .flags = SYN});
	x->f[24] ^= 1;
	spk_mmds_stack_tx(x->s, x->f, n);
	n = tcp_frame(x->f, &(struct tcp_args){.sport = 7, .flags = SYN});
	x->f[50] ^= 1;
	spk_mmds_stack_tx(x->s, x->f, n);
	none_out(x);
	assert_int_equal(conns(x), 0);
	spk_mmds_get_metrics(x->m, &after);
	assert_int_equal(after.rx_bad_eth - before.rx_bad_eth, 1);
	assert_int_equal(after.rx_accepted_err - before.rx_accepted_err, 1);

	/* every truncation of a SYN with options and data: never a connection */
	static const uint8_t opt[8] = {1, 1, 2, 4, 5, 0xb4, 1, 0};
	size_t full = tcp_frame(
	    x->f,
	    &(struct tcp_args){
	        .sport = 8, .flags = SYN, .opt = opt, .opt_len = 8, .data = "hello", .len = 5});
	uint8_t copy[128];
	memcpy(copy, x->f, full);
	for (size_t i = 0; i < full; i++) {
		memcpy(x->f, copy, full);
		if (spk_mmds_stack_match(x->s, x->f, i))
			spk_mmds_stack_tx(x->s, x->f, i);
		none_out(x);
	}
	assert_int_equal(conns(x), 0);
	/* lengths that lie: IP total length past the frame, below the header; TCP
	 * data offset past the segment, below 5 words; IHL below 5 */
	const struct {
		size_t off;
		uint8_t v;
	} lies[] = {{16, 0xff}, {17, 0x0},  {46, 0xf0}, {46, 0x10}, {14, 0x44},
	            {14, 0x4f}, {14, 0x65}, {20, 0x20}, {21, 0x01}};
	for (size_t i = 0; i < sizeof(lies) / sizeof(lies[0]); i++) {
		memcpy(x->f, copy, full);
		x->f[lies[i].off] = lies[i].v;
		spk_mmds_stack_tx(x->s, x->f, full);
		none_out(x);
	}
	assert_int_equal(conns(x), 0);
	/* the unmodified frame works */
	memcpy(x->f, copy, full);
	spk_mmds_stack_tx(x->s, x->f, full);
	struct out o;
	assert_true(next(x, &o));
	assert_int_equal(o.flags, SYN | ACK);
	assert_int_equal(conns(x), 1);
}

static void test_out_of_window_and_strays(void **state)
{
	struct fx *x = *state;
	struct peer p = {.port = 40003, .seq = 77};
	struct out o;

	handshake(x, &p);
	/* data far ahead: a duplicate ACK, nothing taken */
	send_tcp(x, &(struct tcp_args){.sport = p.port,
	                               .seq = p.seq + 100000,
	                               .ack = p.ack,
	                               .flags = ACK,
	                               .data = "GET / HTTP/1.1\r\n\r\n",
	                               .len = 18});
	assert_true(next(x, &o));
	assert_int_equal(o.flags, ACK);
	assert_int_equal(o.ack, p.seq);
	none_out(x);
	/* an ACK of data never sent: an ACK back, nothing else */
	send_tcp(x, &(struct tcp_args){
	                .sport = p.port, .seq = p.seq, .ack = p.ack + 5000, .flags = ACK});
	assert_true(next(x, &o));
	assert_int_equal(o.seq, p.ack);
	none_out(x);
	/* an RST out of window: ignored; in window: the connection goes */
	send_tcp(x, &(struct tcp_args){.sport = p.port, .seq = p.seq + 9, .flags = RST});
	assert_int_equal(conns(x), 1);
	send_tcp(x, &(struct tcp_args){.sport = p.port, .seq = p.seq, .flags = RST});
	assert_int_equal(conns(x), 0);
	none_out(x);
	/* an ACK to nobody: RST with its ack as sequence */
	send_tcp(x, &(struct tcp_args){.sport = 9, .seq = 1, .ack = 1234, .flags = ACK});
	assert_true(next(x, &o));
	assert_int_equal(o.flags, RST);
	assert_int_equal(o.seq, 1234);
	/* another port: RST|ACK */
	send_tcp(x, &(struct tcp_args){.sport = 9, .dport = 81, .seq = 1, .flags = SYN});
	assert_true(next(x, &o));
	assert_int_equal(o.flags, RST | ACK);
	assert_int_equal(o.ack, 2);
	/* an RST to nobody: nothing; UDP to the address: nothing */
	send_tcp(x, &(struct tcp_args){.sport = 9, .seq = 1, .flags = RST});
	none_out(x);
	size_t n = tcp_frame(x->f, &(struct tcp_args){.sport = 9, .flags = SYN});
	x->f[23] = 17;
	x->f[24] = x->f[25] = 0;
	put16(x->f + 24, csum(x->f + 14, 20, 0));
	spk_mmds_stack_tx(x->s, x->f, n);
	none_out(x);
	/* a fragment: nothing */
	n = tcp_frame(x->f, &(struct tcp_args){.sport = 9, .flags = SYN});
	x->f[20] = 0x20; /* more fragments */
	x->f[24] = x->f[25] = 0;
	put16(x->f + 24, csum(x->f + 14, 20, 0));
	spk_mmds_stack_tx(x->s, x->f, n);
	none_out(x);
}

static void test_syn_flood_and_retransmitted_syn(void **state)
{
	struct fx *x = *state;
	struct out o;
	unsigned rst = 0, synack = 0;

	/* the same SYN twice: one connection, the SYN-ACK again */
	send_tcp(x, &(struct tcp_args){.sport = 100, .seq = 10, .flags = SYN});
	send_tcp(x, &(struct tcp_args){.sport = 100, .seq = 10, .flags = SYN});
	assert_true(next(x, &o));
	assert_int_equal(o.flags, SYN | ACK);
	none_out(x);
	assert_int_equal(conns(x), 1);
	/* a flood from 200 ports: at most 16 open, each eviction an RST, the
	 * control queue bounded */
	for (uint16_t port = 1000; port < 1200; port++)
		send_tcp(x, &(struct tcp_args){.sport = port, .seq = port, .flags = SYN});
	assert_true(conns(x) <= 16);
	while (next(x, &o)) {
		rst += o.flags == RST;
		synack += o.flags == (SYN | ACK);
	}
	assert_true(rst > 0 && rst <= 32);
	assert_true(synack <= 16);
	struct spk_mmds_metrics mt;
	spk_mmds_get_metrics(x->m, &mt);
	assert_true(mt.tx_errors > 0); /* RSTs the ring could not hold */
	/* a fresh connection still works after the flood */
	struct peer p = {.port = 5000, .seq = 1};
	char buf[4096];
	bool fin;
	handshake(x, &p);
	request(x, &p, "GET /list/0 HTTP/1.1\r\n\r\n", buf, sizeof(buf), &fin);
	assert_string_equal(body_of(buf), "x");
}

static void test_request_too_large(void **state)
{
	struct fx *x = *state;
	struct peer p = {.port = 40004, .seq = 3};
	static char junk[3000];
	struct out o;
	bool fin = false;
	size_t got = 0;
	char buf[4096];

	handshake(x, &p);
	memset(junk, 'x', sizeof(junk));
	/* more than the window: the stack takes what fits and answers 400 */
	for (size_t off = 0; off < sizeof(junk); off += 1000) {
		send_tcp(x, &(struct tcp_args){.sport = p.port,
		                               .seq = p.seq,
		                               .ack = p.ack,
		                               .flags = ACK,
		                               .data = junk + off,
		                               .len = 1000});
		while (next(x, &o)) {
			if (o.ack > p.seq || o.ack < p.seq - 0x10000)
				p.seq = o.ack;
			memcpy(buf + got, o.data, o.len);
			got += o.len;
			fin |= o.flags & FIN;
		}
	}
	buf[got] = '\0';
	assert_memory_equal(buf, "HTTP/1.1 400", 12);
	assert_true(fin);
}

static void test_large_response_segments(void **state)
{
	struct fx *x = *state;
	struct peer p = {.port = 40005, .seq = 1};
	char val[20000 + 1], *body;
	static char buf[40000];
	bool fin;
	json_t *d;

	memset(val, 'v', sizeof(val) - 1);
	val[sizeof(val) - 1] = '\0';
	d = json_pack("{s:s}", "big", val);
	assert_int_equal(spk_mmds_put(x->m, d), 0);
	json_decref(d);
	handshake(x, &p);
	request(x, &p, "GET /big HTTP/1.1\r\n\r\n", buf, sizeof(buf), &fin);
	body = strstr(buf, "\r\n\r\n");
	assert_non_null(body);
	assert_string_equal(body + 4, val);
}

/* The retransmission timer, driven through the store's clock: the SYN-ACK
 * and data the guest does not acknowledge go out again after 250, 500,
 * 1000, 2000, 4000, 4000 ms; the next timeout drops the connection with an
 * RST. An acknowledgement that moves forward starts the backoff over. */
static void test_retransmission_timer(void **state)
{
	static const char req[] = "GET /latest/meta-data/ami-id HTTP/1.1\r\n\r\n";
	static const uint64_t backoff[] = {250, 500, 1000, 2000, 4000, 4000};
	struct fx *x = *state;
	struct peer p = {.port = 4100, .seq = 7000, .wnd = 64};
	struct out o, first;
	uint64_t resent, dropped;
	bool progressed = false;

	assert_int_equal(spk_mmds_stack_timer(x->s), 0); /* nothing sent: no timer */
	/* a lost SYN-ACK comes again */
	send_tcp(x, &(struct tcp_args){.sport = p.port, .seq = p.seq, .flags = SYN, .wnd = p.wnd});
	assert_true(next(x, &first));
	assert_int_equal(first.flags, SYN | ACK);
	assert_int_equal(spk_mmds_stack_timer(x->s), 250);
	fake_now += 249;
	assert_int_equal(spk_mmds_stack_timer(x->s), 1); /* early: nothing yet */
	none_out(x);
	fake_now += 1;
	assert_int_equal(spk_mmds_stack_timer(x->s), 500);
	assert_true(next(x, &o));
	assert_int_equal(o.flags, SYN | ACK);
	assert_int_equal(o.seq, first.seq);
	none_out(x);
	spk_mmds_stack_retransmits(x->s, &resent, &dropped);
	assert_int_equal(resent, 1);
	p.seq++;
	p.ack = first.seq + 1;
	send_tcp(x, &(struct tcp_args){
	                .sport = p.port, .seq = p.seq, .ack = p.ack, .flags = ACK, .wnd = p.wnd});
	assert_int_equal(spk_mmds_stack_timer(x->s), 0); /* all acknowledged */

	/* a response the guest never acknowledges: its first 64 bytes (the
	 * window) again at each timeout, then the drop */
	send_tcp(x, &(struct tcp_args){.sport = p.port,
	                               .seq = p.seq,
	                               .ack = p.ack,
	                               .flags = ACK | PSH,
	                               .data = req,
	                               .len = strlen(req),
	                               .wnd = p.wnd});
	p.seq += (uint32_t)strlen(req);
	assert_true(next(x, &first));
	assert_int_equal(first.len, 64);
	assert_int_equal(first.seq, p.ack);
	none_out(x); /* the window is full */
	for (unsigned i = 0; i < 6; i++) {
		assert_int_equal(spk_mmds_stack_timer(x->s), backoff[i]);
		fake_now += backoff[i];
		assert_int_equal(spk_mmds_stack_timer(x->s), i + 1 < 6 ? backoff[i + 1] : 4000);
		assert_true(next(x, &o));
		assert_int_equal(o.seq, first.seq);
		assert_int_equal(o.len, 64);
		assert_memory_equal(o.data, first.data, 64);
		none_out(x);
		if (i == 2 && !progressed) {
			/* three timeouts, then progress: the backoff starts over */
			p.ack += 10;
			send_tcp(x, &(struct tcp_args){.sport = p.port,
			                               .seq = p.seq,
			                               .ack = p.ack,
			                               .flags = ACK,
			                               .zero_wnd = true});
			none_out(x); /* a closed window: nothing more */
			assert_int_equal(spk_mmds_stack_timer(x->s), 250);
			fake_now += 250;
			assert_int_equal(spk_mmds_stack_timer(x->s), 500);
			none_out(x); /* nothing fits a closed window */
			send_tcp(x, &(struct tcp_args){.sport = p.port,
			                               .seq = p.seq,
			                               .ack = p.ack,
			                               .flags = ACK,
			                               .wnd = p.wnd});
			assert_true(next(x, &first)); /* the window opened: 64 more from there */
			assert_int_equal(first.seq, p.ack);
			assert_int_equal(first.len, 64);
			none_out(x);
			assert_int_equal(spk_mmds_stack_timer(x->s), 500);
			fake_now += 500;
			assert_int_equal(spk_mmds_stack_timer(x->s), 1000);
			assert_true(next(x, &o));
			assert_int_equal(o.seq, first.seq);
			none_out(x);
			i = 1; /* two timeouts in a row again */
			progressed = true;
		}
	}
	spk_mmds_stack_retransmits(x->s, &resent, &dropped);
	assert_int_equal(dropped, 0);
	assert_int_equal(conns(x), 1);
	fake_now += 4000;
	assert_int_equal(spk_mmds_stack_timer(x->s), 0); /* dropped: no timer left */
	assert_int_equal(conns(x), 0);
	assert_true(next(x, &o));
	assert_int_equal(o.flags, RST);
	assert_int_equal(o.dport, p.port);
	none_out(x);
	spk_mmds_stack_retransmits(x->s, &resent, &dropped);
	assert_int_equal(dropped, 1);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_siphash_vectors),
	    cmocka_unit_test(test_store_limits_and_patch),
	    T(test_http_v1_formats),
	    T(test_http_v2_tokens),
	    T(test_http_bad_requests),
	    T(test_match),
	    T(test_arp),
	    T(test_get_over_tcp),
	    T(test_guest_closes_first),
	    T(test_window_and_mss),
	    T(test_ack_after_resend),
	    T(test_bad_checksums_and_truncation),
	    T(test_out_of_window_and_strays),
	    T(test_syn_flood_and_retransmitted_syn),
	    T(test_request_too_large),
	    T(test_large_response_segments),
	    T(test_retransmission_timer),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
