/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The guest of examples/fn_host.c: a JSON summariser in ordinary C on
 * musl, the kind of parser you would not run on hostile input in your own
 * process. summarize(json) returns "objects=.. arrays=.. strings=..
 * numbers=.. sum=.. depth=.." or fails with an error code.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <guest_fn.h>

struct p {
	const char *s, *end;
	int objects, arrays, strings, numbers, depth, max_depth;
	double sum;
};

enum { E_SYNTAX = 1, E_DEPTH = 2 };

static int value(struct p *p);

static void ws(struct p *p)
{
	while (p->s < p->end && isspace((unsigned char)*p->s))
		p->s++;
}

static int string(struct p *p)
{
	for (p->s++; p->s < p->end; p->s++) {
		if (*p->s == '\\' && p->s + 1 < p->end)
			p->s++;
		else if (*p->s == '"') {
			p->s++;
			p->strings++;
			return 0;
		}
	}
	return E_SYNTAX;
}

static int number(struct p *p)
{
	char buf[64];
	size_t n = 0;

	while (p->s + n < p->end && n < sizeof(buf) - 1 && strchr("+-0123456789.eE", p->s[n]))
		n++;
	memcpy(buf, p->s, n);
	buf[n] = 0;
	char *e;
	double d = strtod(buf, &e);
	if (n == 0 || *e)
		return E_SYNTAX;
	p->s += n;
	p->sum += d;
	p->numbers++;
	return 0;
}

/* elements of an object or array, up to close */
static int elements(struct p *p, char close, int object)
{
	int rc;

	if (++p->depth > 64)
		return E_DEPTH;
	if (p->depth > p->max_depth)
		p->max_depth = p->depth;
	p->s++;
	ws(p);
	if (p->s < p->end && *p->s == close) {
		p->s++;
		p->depth--;
		return 0;
	}
	for (;;) {
		ws(p);
		if (object) {
			if (p->s >= p->end || *p->s != '"' || (rc = string(p)))
				return E_SYNTAX;
			p->strings--; /* keys are not counted as strings */
			ws(p);
			if (p->s >= p->end || *p->s++ != ':')
				return E_SYNTAX;
		}
		if ((rc = value(p)))
			return rc;
		ws(p);
		if (p->s < p->end && *p->s == ',') {
			p->s++;
			continue;
		}
		if (p->s < p->end && *p->s == close) {
			p->s++;
			p->depth--;
			return 0;
		}
		return E_SYNTAX;
	}
}

static int value(struct p *p)
{
	ws(p);
	if (p->s >= p->end)
		return E_SYNTAX;
	switch (*p->s) {
	case '{':
		p->objects++;
		return elements(p, '}', 1);
	case '[':
		p->arrays++;
		return elements(p, ']', 0);
	case '"':
		return string(p);
	default:
		for (const char *const *w = (const char *const[]){"true", "false", "null", NULL};
		     *w; w++)
			if ((size_t)(p->end - p->s) >= strlen(*w) &&
			    !strncmp(p->s, *w, strlen(*w))) {
				p->s += strlen(*w);
				return 0;
			}
		return number(p);
	}
}

SPK_EXPORT(summarize, "b:s")
{
	size_t n;
	const char *json = guest_fn_bytes(c, 0, &n);
	struct p p = {.s = json, .end = json + n};
	char out[160];
	int rc = value(&p);

	ws(&p);
	if (!rc && p.s != p.end)
		rc = E_SYNTAX;
	if (rc)
		return rc;
	snprintf(out, sizeof(out), "objects=%d arrays=%d strings=%d numbers=%d sum=%g depth=%d",
	         p.objects, p.arrays, p.strings, p.numbers, p.sum, p.max_depth);
	return guest_fn_ret_str(c, out);
}
