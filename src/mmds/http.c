/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The guest's HTTP requests to the MMDS, answered as Firecracker answers
 * them:
 *   GET  /a/b    the value at that JSON pointer: with "Accept:
 *                application/json" (and imds_compat off) as JSON; else in
 *                IMDS form, a string as its text, an object as its keys
 *                one a line (sorted, "key/" for objects), anything else
 *                501. 404 when there is no such value.
 *   PUT  /latest/api/token with X-metadata-token-ttl-seconds (or
 *                X-aws-ec2-metadata-token-ttl-seconds) 1..21600: a session
 *                token as text; 400 with X-Forwarded-For, without a TTL
 *                or with a bad one; 404 for other paths.
 *   other methods: 405 with "Allow: GET, PUT".
 * V2 needs X-metadata-token (or X-aws-ec2-metadata-token) on each GET
 * (401 without or with a bad one); V1 answers either way and counts.
 *
 * Everything is checked against the bytes received: the request must fit
 * in the connection's buffer (head and body), lines end in CRLF, header
 * names are tokens, numbers are digits and bounded. Transfer-Encoding is
 * not supported (400).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mmds/mmds.h"

#define MAX_HEADERS 64

struct span {
	const char *p;
	size_t n;
};

struct request {
	struct span method, target, path;
	int minor; /* HTTP/1.minor */
	bool json, close, keep_alive, xff, chunked;
	struct span token, ttl;
	const char *ttl_name;
	size_t content_length;
};

struct reply {
	unsigned status;
	const char *type; /* Content-Type */
	char *body;       /* malloc'd */
	size_t body_len;
	char extra[96]; /* more header lines, each ending in CRLF */
	bool close;
};

static const char *reason(unsigned s)
{
	switch (s) {
	case 200:
		return "OK";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 413:
		return "Payload Too Large";
	case 501:
		return "Not Implemented";
	}
	return "Internal Server Error";
}

static bool span_is(struct span s, const char *lit)
{
	size_t n = strlen(lit);

	return s.n == n && memcmp(s.p, lit, n) == 0;
}

static bool span_case_is(struct span s, const char *lit)
{
	size_t n = strlen(lit);

	return s.n == n && strncasecmp(s.p, lit, n) == 0;
}

/* Does the comma-separated list s hold the token lit (any case)? */
static bool list_has(struct span s, const char *lit)
{
	size_t n = strlen(lit);

	for (size_t i = 0; i + n <= s.n; i++)
		if (strncasecmp(s.p + i, lit, n) == 0)
			return true;
	return false;
}

static void text(struct reply *r, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void text(struct reply *r, unsigned status, const char *fmt, ...)
{
	va_list ap;
	int n;

	r->status = status;
	r->type = "text/plain";
	free(r->body);
	va_start(ap, fmt);
	n = vasprintf(&r->body, fmt, ap);
	va_end(ap);
	if (n < 0) {
		r->body = NULL;
		r->body_len = 0;
		r->status = 500;
	} else {
		r->body_len = (size_t)n;
	}
}

static bool is_tchar(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* A decimal of at most 10 digits without sign or spaces around. */
static bool parse_u64(struct span s, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;

	if (s.n == 0 || s.n > 10)
		return false;
	for (size_t i = 0; i < s.n; i++) {
		if (s.p[i] < '0' || s.p[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(s.p[i] - '0');
	}
	if (v > max)
		return false;
	*out = v;
	return true;
}

/* The request line: METHOD SP /target SP HTTP/1.x. */
static bool request_line(struct span l, struct request *q)
{
	const char *sp1 = memchr(l.p, ' ', l.n), *sp2;

	if (!sp1 || sp1 == l.p)
		return false;
	q->method = (struct span){l.p, (size_t)(sp1 - l.p)};
	for (size_t i = 0; i < q->method.n; i++)
		if (!is_tchar(l.p[i]))
			return false;
	sp2 = memchr(sp1 + 1, ' ', l.n - (size_t)(sp1 + 1 - l.p));
	if (!sp2)
		return false;
	q->target = (struct span){sp1 + 1, (size_t)(sp2 - sp1 - 1)};
	struct span ver = {sp2 + 1, l.n - (size_t)(sp2 + 1 - l.p)};
	if (span_is(ver, "HTTP/1.1"))
		q->minor = 1;
	else if (span_is(ver, "HTTP/1.0"))
		q->minor = 0;
	else
		return false;
	for (size_t i = 0; i < q->target.n; i++)
		if ((unsigned char)q->target.p[i] <= ' ' || (unsigned char)q->target.p[i] >= 0x7f)
			return false;
	return true;
}

static void trim(struct span *s)
{
	while (s->n && (s->p[0] == ' ' || s->p[0] == '\t')) {
		s->p++;
		s->n--;
	}
	while (s->n && (s->p[s->n - 1] == ' ' || s->p[s->n - 1] == '\t'))
		s->n--;
}

/* One header line; false: malformed. */
static bool header(struct span l, struct request *q)
{
	const char *colon = memchr(l.p, ':', l.n);
	struct span name, val;
	uint64_t cl;

	if (!colon || colon == l.p)
		return false;
	name = (struct span){l.p, (size_t)(colon - l.p)};
	for (size_t i = 0; i < name.n; i++)
		if (!is_tchar(name.p[i]))
			return false;
	val = (struct span){colon + 1, l.n - name.n - 1};
	trim(&val);
	for (size_t i = 0; i < val.n; i++)
		if ((unsigned char)val.p[i] < ' ' && val.p[i] != '\t')
			return false;
	if (span_case_is(name, "Accept"))
		q->json = list_has(val, "application/json");
	else if (span_case_is(name, "Connection"))
		q->close = list_has(val, "close"), q->keep_alive = list_has(val, "keep-alive");
	else if (span_case_is(name, "Content-Length")) {
		if (!parse_u64(val, UINT32_MAX, &cl))
			return false;
		q->content_length = (size_t)cl;
	} else if (span_case_is(name, "Transfer-Encoding"))
		q->chunked = true;
	else if (span_case_is(name, "X-Forwarded-For"))
		q->xff = true;
	else if (span_case_is(name, "X-metadata-token") ||
	         span_case_is(name, "X-aws-ec2-metadata-token"))
		q->token = val;
	else if (span_case_is(name, "X-metadata-token-ttl-seconds") ||
	         span_case_is(name, "X-aws-ec2-metadata-token-ttl-seconds")) {
		q->ttl = val;
		q->ttl_name = span_case_is(name, "X-metadata-token-ttl-seconds")
		                  ? "X-metadata-token-ttl-seconds"
		                  : "X-aws-ec2-metadata-token-ttl-seconds";
	}
	return true;
}

/* Parse the head (the bytes before the blank line). */
static bool parse_head(const char *p, size_t n, struct request *q)
{
	size_t i = 0, lines = 0;

	while (i < n) {
		const char *e = memchr(p + i, '\r', n - i);
		size_t end = e ? (size_t)(e - p) : n;
		struct span l = {p + i, end - i};

		/* the head is followed by CRLF CRLF in the buffer, so p[end + 1]
		 * can be read */
		if (e && p[end + 1] != '\n')
			return false; /* a CR not followed by LF */
		if (memchr(l.p, '\n', l.n))
			return false; /* a bare LF */
		if (lines == 0 ? !request_line(l, q) : !header(l, q))
			return false;
		if (++lines > MAX_HEADERS + 1)
			return false;
		i = end + 2;
	}
	return lines > 0;
}

/* The path: the target without its query, with runs of '/' as one. */
static char *clean_path(struct span t, size_t *len)
{
	const char *q = memchr(t.p, '?', t.n);
	size_t n = q ? (size_t)(q - t.p) : t.n, o = 0;
	char *out = malloc(n + 1);

	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (!(t.p[i] == '/' && o && out[o - 1] == '/'))
			out[o++] = t.p[i];
	out[o] = '\0';
	*len = o;
	return out;
}

static int cmp_keys(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* An object's keys one a line, sorted, objects with a '/'. */
static char *imds_keys(json_t *o, size_t *len)
{
	size_t n = json_object_size(o), i = 0, total = 0;
	const char **keys = calloc(n ? n : 1, sizeof(*keys));
	const char *k;
	json_t *v;
	char *out, *p;

	if (!keys)
		return NULL;
	json_object_foreach(o, k, v)
	{
		if (i < n) {
			keys[i++] = k;
			total += strlen(k) + 2;
		}
	}
	qsort(keys, i, sizeof(*keys), cmp_keys);
	if (!(out = p = malloc(total + 1))) {
		free(keys);
		return NULL;
	}
	for (size_t j = 0; j < i; j++) {
		size_t kl = strlen(keys[j]);

		if (j)
			*p++ = '\n';
		memcpy(p, keys[j], kl);
		p += kl;
		if (json_is_object(json_object_get(o, keys[j])))
			*p++ = '/';
	}
	*p = '\0';
	*len = (size_t)(p - out);
	free(keys);
	return out;
}

static void get(struct spk_mmds *m, const struct request *q, struct spk_mmds_metrics *d,
                struct reply *r)
{
	struct spk_mmds_config c;
	size_t plen;
	char *path = clean_path(q->target, &plen);
	json_t *v;

	if (!path) {
		text(r, 500, "out of memory");
		return;
	}
	spk_mmds_get_config(m, &c);
	if (q->token.n == 0) {
		d->rx_no_token++;
		if (c.version == SPK_MMDS_V2) {
			text(r, 401,
			     "No MMDS token provided. Use `X-metadata-token` or "
			     "`X-aws-ec2-metadata-token` header to specify the session token.");
			goto out;
		}
	} else if (!spk_mmds_token_valid(m, q->token.p, q->token.n)) {
		d->rx_invalid_token++;
		if (c.version == SPK_MMDS_V2) {
			text(r, 401, "MMDS token not valid.");
			goto out;
		}
	}
	spk_mmds_lock(m);
	v = spk_mmds_lookup_locked(m, path, plen);
	if (!v) {
		text(r, 404, "Resource not found: %s.", path);
	} else if (q->json && !c.imds_compat) {
		r->status = 200;
		r->type = "application/json";
		r->body = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS);
		r->body_len = r->body ? strlen(r->body) : 0;
		if (!r->body)
			text(r, 500, "out of memory");
	} else if (json_is_object(v) || json_is_string(v)) {
		r->status = 200;
		r->type = "text/plain";
		if (json_is_string(v)) {
			r->body_len = json_string_length(v);
			r->body = malloc(r->body_len + 1);
			if (r->body)
				memcpy(r->body, json_string_value(v), r->body_len + 1);
		} else {
			r->body = imds_keys(v, &r->body_len);
		}
		if (!r->body)
			text(r, 500, "out of memory");
	} else {
		text(r, 501, "Cannot retrieve value. The value has an unsupported type.");
	}
	spk_mmds_unlock(m);
out:
	free(path);
}

static void put(struct spk_mmds *m, const struct request *q, struct reply *r)
{
	size_t plen;
	char *path = clean_path(q->target, &plen);
	char tok[64];
	uint64_t ttl;

	if (!path) {
		text(r, 500, "out of memory");
		return;
	}
	if (q->xff)
		text(r, 400,
		     "Invalid header. Reason: Unsupported header name. Key: X-Forwarded-For");
	else if (strcmp(path, SPK_MMDS_TOKEN_PATH) != 0)
		text(r, 404, "Resource not found: %s.", path);
	else if (!q->ttl.n)
		text(r, 400,
		     "Token time to live value not found. Use `X-metadata-token-ttl-seconds` or "
		     "`X-aws-ec2-metadata-token-ttl-seconds` header to specify the token's "
		     "lifetime.");
	else if (!parse_u64(q->ttl, UINT32_MAX, &ttl))
		text(r, 400, "Invalid value. Key:%s; Value:%.*s", q->ttl_name,
		     (int)(q->ttl.n > 32 ? 32 : q->ttl.n), q->ttl.p);
	else if (spk_mmds_token_new(m, (uint32_t)ttl, tok, sizeof(tok)) < 0)
		text(r, 400,
		     "Invalid time to live value provided for token: %llu. Please provide a value "
		     "between %d and %d.",
		     (unsigned long long)ttl, SPK_MMDS_TTL_MIN, SPK_MMDS_TTL_MAX);
	else {
		text(r, 200, "%s", tok);
		snprintf(r->extra, sizeof(r->extra), "%s: %llu\r\n", q->ttl_name,
		         (unsigned long long)ttl);
	}
	free(path);
}

/* The reply as HTTP bytes. */
static int render(const struct reply *r, int minor, char **out, size_t *out_len)
{
	char head[320];
	int n =
	    snprintf(head, sizeof(head),
	             "HTTP/1.%d %u %s\r\nServer: sparkler\r\n%s%sContent-Type: %s\r\n"
	             "Content-Length: %zu\r\n%s\r\n",
	             minor, r->status, reason(r->status), r->close ? "Connection: close\r\n" : "",
	             r->status == 405 ? "Allow: GET, PUT\r\n" : "",
	             r->type ? r->type : "text/plain", r->body_len, r->extra);
	char *buf;

	if (n < 0 || (size_t)n >= sizeof(head))
		return -ENOMEM;
	if (!(buf = malloc((size_t)n + r->body_len)))
		return -ENOMEM;
	memcpy(buf, head, (size_t)n);
	if (r->body_len)
		memcpy(buf + n, r->body, r->body_len);
	*out = buf;
	*out_len = (size_t)n + r->body_len;
	return 0;
}

static const char *find_blank(const char *p, size_t n)
{
	for (size_t i = 0; i + 4 <= n; i++)
		if (p[i] == '\r' && memcmp(p + i, "\r\n\r\n", 4) == 0)
			return p + i;
	return NULL;
}

long spk_mmds_http(struct spk_mmds *m, const char *req, size_t len, size_t max, char **resp,
                   size_t *resp_len, bool *close)
{
	struct spk_mmds_metrics d = {0};
	struct request q = {.minor = 1};
	struct reply r = {0};
	const char *blank;
	size_t head, took;
	int rc;

	if (len > max)
		len = max;
	blank = find_blank(req, len);
	if (!blank) {
		if (len < max)
			return 0;
		text(&r, 400, "Request too large or not HTTP.");
		r.close = true;
		took = len;
		goto answer;
	}
	head = (size_t)(blank - req);
	took = head + 4;
	if (!parse_head(req, head, &q) || q.chunked) {
		text(&r, 400,
		     q.chunked ? "Transfer-Encoding is not supported." : "Invalid HTTP request.");
		r.close = true;
		took = len;
		goto answer;
	}
	if (q.content_length > max - took) {
		text(&r, 413, "Payload too large.");
		r.close = true;
		took = len;
		goto answer;
	}
	if (len - took < q.content_length)
		return 0; /* the body is still coming */
	took += q.content_length;
	r.close = q.close || (q.minor == 0 && !q.keep_alive);
	if (q.target.n == 0 || q.target.p[0] != '/')
		text(&r, 400, "Invalid URI.");
	else if (span_is(q.method, "GET"))
		get(m, &q, &d, &r);
	else if (span_is(q.method, "PUT"))
		put(m, &q, &r);
	else
		text(&r, 405, "Not allowed HTTP method.");
answer:
	d.rx_count++;
	d.tx_count++;
	spk_mmds_count(m, &d);
	rc = render(&r, q.minor, resp, resp_len);
	free(r.body);
	if (rc < 0)
		return rc;
	*close = r.close;
	return (long)took;
}
