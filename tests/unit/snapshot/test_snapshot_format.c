// SPDX-License-Identifier: Apache-2.0
/*
 * The snapshot state file: writing, reading back, and every kind of
 * hostile file refused before anything is applied, with a message naming
 * the section and the field.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <sparkler/log.h>
#include <sparkler/snapshot.h>

#include "snapshot/snap_internal.h"

/* A device whose state is three fields. */
struct toy {
	uint8_t a;
	uint32_t b;
	uint8_t blob[5];
	unsigned loads;
};

static int toy_save(void *opaque, struct spk_snap_writer *w)
{
	struct toy *t = opaque;

	spk_snap_put_u8(w, "a", t->a);
	spk_snap_put_u32(w, "b", t->b);
	return spk_snap_put_bytes(w, "blob", t->blob, sizeof(t->blob));
}

static int toy_load(void *opaque, struct spk_snap_reader *r)
{
	struct toy *t = opaque, n = *t;
	uint64_t a;
	int rc;

	if ((rc = spk_snap_get_max(r, "a", 9, &a)) || (rc = spk_snap_get_u32(r, "b", &n.b)) ||
	    (rc = spk_snap_get_bytes(r, "blob", n.blob, sizeof(n.blob))) ||
	    (rc = spk_snap_reader_done(r)))
		return rc;
	n.a = (uint8_t)a;
	n.loads++;
	*t = n;
	return 0;
}

static const struct spk_dev_state_ops toy_ops = {"toy", 1, toy_save, toy_load};

/* A file: header, two toy devices, end. */
static void *make_file(size_t *len)
{
	struct spk_snap_writer *w;
	struct spk_snap_header h;
	struct toy t1 = {3, 0xdeadbeef, {1, 2, 3, 4, 5}, 0}, t2 = {7, 42, {9}, 0};
	const void *buf;
	void *copy;

	spk_snap_header_host(&h);
	h.n_cpuid = 2;
	h.cpuid[0] = (struct spk_snap_cpuid){0, 0, 0xd, 1, 2, 3};
	h.cpuid[1] = (struct spk_snap_cpuid){7, 0, 4, 5, 6, 7};
	h.n_caps = 1;
	h.caps[0] = (struct spk_snap_cap){1, 2};
	assert_int_equal(spk_snap_writer_new(&w), 0);
	assert_int_equal(spk_snap_put_header(w, &h), 0);
	assert_int_equal(spk_snap_save_device(w, "toy0", &toy_ops, &t1), 0);
	assert_int_equal(spk_snap_save_device(w, "toy1", &toy_ops, &t2), 0);
	assert_int_equal(spk_snap_writer_finish(w, &buf, len), 0);
	copy = malloc(*len);
	memcpy(copy, buf, *len);
	spk_snap_writer_free(w);
	return copy;
}

static void test_round_trip(void **state)
{
	struct spk_snap_file *f;
	struct spk_snap_section_info si;
	const struct spk_snap_header *h;
	struct toy t = {0};
	size_t len;
	void *buf = make_file(&len);

	assert_int_equal(spk_snap_open_buf(buf, len, &f), 0);
	h = spk_snap_file_header(f);
	assert_int_equal(h->format_version, SPK_SNAP_FORMAT_VERSION);
	assert_string_equal(h->sparkler_version, "0.1.0");
	assert_int_equal(h->n_cpuid, 2);
	assert_int_equal(h->cpuid[1].function, 7);
	assert_int_equal(h->cpuid[1].edx, 7);
	assert_int_equal(h->n_caps, 1);
	assert_int_equal(h->caps[0].value, 2);
	assert_true(h->created > 0);
	assert_int_equal(spk_snap_file_sections(f), 4);
	assert_int_equal(spk_snap_file_section(f, 1, &si), 0);
	assert_int_equal(si.type, SPK_SNAP_SEC_DEVICE);
	assert_string_equal(si.name, "toy0");
	assert_string_equal(si.kind, "toy");
	assert_int_equal(si.fields, 6);
	assert_int_equal(spk_snap_file_section(f, 3, &si), 0);
	assert_int_equal(si.type, SPK_SNAP_SEC_END);
	assert_int_equal(spk_snap_file_section(f, 4, &si), -EINVAL);

	assert_int_equal(spk_snap_load_device(f, "toy1", &toy_ops, &t), 0);
	assert_int_equal(t.a, 7);
	assert_int_equal(t.b, 42);
	assert_int_equal(t.blob[0], 9);
	assert_int_equal(spk_snap_load_device(f, "toy0", &toy_ops, &t), 0);
	assert_int_equal(t.a, 3);
	assert_int_equal(t.b, 0xdeadbeef);
	assert_memory_equal(t.blob, ((uint8_t[]){1, 2, 3, 4, 5}), 5);
	assert_int_equal(t.loads, 2);
	assert_int_equal(spk_snap_load_device(f, "toy2", &toy_ops, &t), -ENOENT);

	/* a kind or version this code does not read: refused, t unchanged */
	struct spk_dev_state_ops other = toy_ops;

	other.kind = "uart8250";
	assert_int_equal(spk_snap_load_device(f, "toy0", &other, &t), -EINVAL);
	assert_non_null(strstr(spk_last_error(), "field 'kind'"));
	other = toy_ops;
	other.version = 2;
	assert_int_equal(spk_snap_load_device(f, "toy0", &other, &t), -EINVAL);
	assert_non_null(strstr(spk_last_error(), "device 'toy0'"));
	assert_non_null(strstr(spk_last_error(), "field 'version'"));
	assert_int_equal(t.loads, 2);

	char *dump = NULL;
	size_t dlen = 0;
	FILE *out = open_memstream(&dump, &dlen);

	spk_snap_file_dump(f, out, true);
	fclose(out);
	assert_non_null(strstr(dump, "toy1 (toy)"));
	assert_non_null(strstr(dump, "3735928559"));
	free(dump);
	spk_snap_close(f);
	free(buf);
}

/* Open must refuse; the message names a section or the file's field. */
static void refused(const void *buf, size_t len, const char *expect)
{
	struct spk_snap_file *f = (void *)1;
	int rc = spk_snap_open_buf(buf, len, &f);

	if (rc != -EINVAL)
		fail_msg("rc %d for %zu bytes (want -EINVAL, expecting '%s')", rc, len, expect);
	assert_null(f);
	if (expect && !strstr(spk_last_error(), expect))
		fail_msg("'%s' does not say '%s'", spk_last_error(), expect);
}

static void test_truncated_everywhere(void **state)
{
	size_t len;
	uint8_t *buf = make_file(&len);

	for (size_t n = 0; n < len; n++)
		refused(buf, n, NULL);
	refused(buf, len - 1, "section 3");
	free(buf);
}

static void test_every_bit_flip(void **state)
{
	size_t len;
	uint8_t *buf = make_file(&len);

	for (size_t i = 0; i < len; i++) {
		for (int b = 0; b < 8; b += 3) {
			buf[i] ^= (uint8_t)(1u << b);
			refused(buf, len, NULL);
			buf[i] ^= (uint8_t)(1u << b);
		}
	}
	free(buf);
}

/* ---- crafted files with valid CRCs ---- */

struct craft {
	uint8_t buf[4096];
	size_t len;
	unsigned sections;
};

static void put(struct craft *c, const void *p, size_t n)
{
	assert_true(c->len + n <= sizeof(c->buf));
	memcpy(c->buf + c->len, p, n);
	c->len += n;
}

static void put_le(struct craft *c, uint64_t v, unsigned n)
{
	uint8_t b[8];

	for (unsigned i = 0; i < n; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	put(c, b, n);
}

static void start(struct craft *c, uint32_t version)
{
	memset(c, 0, sizeof(*c));
	put(c, SPK_SNAP_MAGIC, 8);
	put_le(c, version, 4);
	put_le(c, 0, 4);
}

static void section(struct craft *c, uint32_t type, const void *payload, uint64_t len,
                    uint64_t claimed)
{
	size_t h = c->len;
	uint32_t crc;

	put_le(c, type, 4);
	put_le(c, 0, 4);
	put_le(c, claimed, 8);
	crc = spk_snap_crc32(spk_snap_crc32(0, c->buf + h, 16), payload, len);
	put_le(c, crc, 4);
	put_le(c, 0, 4);
	put(c, payload, len);
	c->sections++;
}

/* field bytes */
static size_t fld(uint8_t *p, const char *name, uint8_t type, uint64_t v, const void *data,
                  uint32_t dlen)
{
	size_t n = strlen(name), at = 0;
	static const unsigned w[] = {0, 1, 2, 4, 8};

	p[at++] = (uint8_t)n;
	memcpy(p + at, name, n);
	at += n;
	p[at++] = type;
	if (type >= 1 && type <= 4) {
		for (unsigned i = 0; i < w[type]; i++)
			p[at++] = (uint8_t)(v >> (8 * i));
	} else {
		for (unsigned i = 0; i < 4; i++)
			p[at++] = (uint8_t)(dlen >> (8 * i));
		if (dlen)
			memcpy(p + at, data, dlen);
		at += dlen;
	}
	return at;
}

static size_t header_payload(uint8_t *p)
{
	size_t n = 0;

	n += fld(p + n, "sparkler_version", SPK_SNAP_STR, 0, "0.1.0", 5);
	n += fld(p + n, "cpu_vendor", SPK_SNAP_STR, 0, "AuthenticAMD", 12);
	n += fld(p + n, "cpu_family", SPK_SNAP_U32, 25, NULL, 0);
	n += fld(p + n, "cpu_model", SPK_SNAP_U32, 1, NULL, 0);
	/* a field a later version added: skipped */
	n += fld(p + n, "future_thing", SPK_SNAP_U64, 5, NULL, 0);
	return n;
}

static void end(struct craft *c)
{
	uint8_t p[64];
	size_t n = fld(p, "sections", SPK_SNAP_U32, c->sections, NULL, 0);

	section(c, SPK_SNAP_SEC_END, p, n, n);
}

static void with_header(struct craft *c)
{
	uint8_t p[512];
	size_t n = header_payload(p);

	start(c, SPK_SNAP_FORMAT_VERSION);
	section(c, SPK_SNAP_SEC_HEADER, p, n, n);
}

static size_t device_payload(uint8_t *p, const char *name)
{
	size_t n = 0;

	n += fld(p + n, "kind", SPK_SNAP_STR, 0, "toy", 3);
	n += fld(p + n, "name", SPK_SNAP_STR, 0, name, (uint32_t)strlen(name));
	n += fld(p + n, "version", SPK_SNAP_U32, 1, NULL, 0);
	return n;
}

static void test_crafted_good(void **state)
{
	struct craft c;
	struct spk_snap_file *f;

	with_header(&c);
	end(&c);
	assert_int_equal(spk_snap_open_buf(c.buf, c.len, &f), 0);
	assert_string_equal(spk_snap_file_header(f)->cpu_vendor, "AuthenticAMD");
	assert_int_equal(spk_snap_file_header(f)->cpu_family, 25);
	spk_snap_close(f);
}

static void test_hostile_structure(void **state)
{
	struct craft c;
	uint8_t p[512];
	size_t n;

	/* magic, version */
	with_header(&c);
	end(&c);
	c.buf[0] = 'X';
	refused(c.buf, c.len, "magic");
	start(&c, SPK_SNAP_FORMAT_VERSION + 1);
	n = header_payload(p);
	section(&c, SPK_SNAP_SEC_HEADER, p, n, n);
	end(&c);
	refused(c.buf, c.len, "field 'format_version': 2");
	start(&c, 0);
	refused(c.buf, c.len, "format_version");

	/* an unknown, newer section type */
	with_header(&c);
	section(&c, 0x99, "", 0, 0);
	end(&c);
	refused(c.buf, c.len, "section 1 (unknown at offset 148");
	refused(c.buf, c.len, "field 'type': 153 is unknown");

	/* out of order: a device before the header; memory after a device; two headers */
	start(&c, 1);
	n = device_payload(p, "toy0");
	section(&c, SPK_SNAP_SEC_DEVICE, p, n, n);
	refused(c.buf, c.len, "the first section must be the header");
	with_header(&c);
	section(&c, SPK_SNAP_SEC_DEVICE, p, n, n);
	section(&c, SPK_SNAP_SEC_MEMORY, "", 0, 0);
	end(&c);
	refused(c.buf, c.len, "section 2 (memory");
	refused(c.buf, c.len, "memory after device is out of order");
	with_header(&c);
	n = header_payload(p);
	section(&c, SPK_SNAP_SEC_HEADER, p, n, n);
	end(&c);
	refused(c.buf, c.len, "header after header");

	/* lengths that overflow or pass the end */
	with_header(&c);
	section(&c, SPK_SNAP_SEC_VM, "", 0, UINT64_MAX);
	refused(c.buf, c.len, "field 'length': 18446744073709551615");
	with_header(&c);
	section(&c, SPK_SNAP_SEC_VM, "", 0, UINT64_MAX - 23);
	refused(c.buf, c.len, "field 'length'");
	with_header(&c);
	section(&c, SPK_SNAP_SEC_VM, "", 0, 1);
	refused(c.buf, c.len, "section 1 (vm at offset");

	/* no end, a wrong end count, bytes after the end */
	with_header(&c);
	refused(c.buf, c.len, "no end section");
	with_header(&c);
	c.sections = 5;
	end(&c);
	refused(c.buf, c.len, "field 'sections'");
	with_header(&c);
	end(&c);
	put(&c, "x", 1);
	refused(c.buf, c.len, "after the end section");

	/* nonzero flags */
	with_header(&c);
	end(&c);
	c.buf[16 + 4] = 1; /* the header section's flags; the CRC covers them too */
	refused(c.buf, c.len, "section 0");
}

static void test_hostile_fields(void **state)
{
	struct craft c;
	uint8_t p[512];
	size_t n;

	/* a field whose length passes the section */
	with_header(&c);
	n = device_payload(p, "toy0");
	n += fld(p + n, "blob", SPK_SNAP_BYTES, 0, "abcd", 4);
	p[n - 8] = 0xff; /* length 0xff...: low byte of the u32 */
	section(&c, SPK_SNAP_SEC_DEVICE, p, n, n);
	end(&c);
	refused(c.buf, c.len, "field 'blob': length 255 runs past the section");
	refused(c.buf, c.len, "device 'toy0'");

	/* an unknown field type, a bad name, a non-printable string */
	with_header(&c);
	n = device_payload(p, "toy0");
	n += fld(p + n, "x", 9, 0, NULL, 0);
	section(&c, SPK_SNAP_SEC_DEVICE, p, n, n);
	end(&c);
	refused(c.buf, c.len, "field 'x': unknown field type 9");
	with_header(&c);
	n = device_payload(p, "toy0");
	n += fld(p + n, "Bad", SPK_SNAP_U8, 0, NULL, 0);
	section(&c, SPK_SNAP_SEC_DEVICE, p, n, n);
	end(&c);
	refused(c.buf, c.len, "name is not");
	with_header(&c);
	n = device_payload(p, "toy0");
	n += fld(p + n, "s", SPK_SNAP_STR, 0, "a\nb", 3);
	section(&c, SPK_SNAP_SEC_DEVICE, p, n, n);
	end(&c);
	refused(c.buf, c.len, "field 's': not a string");
	/* a name length of zero, a field cut in its value */
	with_header(&c);
	p[0] = 0;
	section(&c, SPK_SNAP_SEC_VM, p, 1, 1);
	end(&c);
	refused(c.buf, c.len, "name length 0");
	with_header(&c);
	n = fld(p, "v", SPK_SNAP_U64, 1, NULL, 0);
	section(&c, SPK_SNAP_SEC_VM, p, n - 1, n - 1);
	end(&c);
	refused(c.buf, c.len, "field 'v': its u64 runs past the section");

	/* device sections: missing kind, two with one name */
	with_header(&c);
	n = fld(p, "name", SPK_SNAP_STR, 0, "toy0", 4);
	section(&c, SPK_SNAP_SEC_DEVICE, p, n, n);
	end(&c);
	refused(c.buf, c.len, "not 'kind'");
	with_header(&c);
	n = device_payload(p, "toy0");
	section(&c, SPK_SNAP_SEC_DEVICE, p, n, n);
	section(&c, SPK_SNAP_SEC_DEVICE, p, n, n);
	end(&c);
	refused(c.buf, c.len, "device 'toy0' is also section 1");

	/* header: a required field missing, a wrong type, a bad cpuid length */
	start(&c, 1);
	n = fld(p, "sparkler_version", SPK_SNAP_STR, 0, "0.1.0", 5);
	section(&c, SPK_SNAP_SEC_HEADER, p, n, n);
	end(&c);
	refused(c.buf, c.len, "field 'cpu_vendor' is missing");
	start(&c, 1);
	n = header_payload(p);
	n += fld(p + n, "cpuid", SPK_SNAP_BYTES, 0, "0123456789", 10);
	section(&c, SPK_SNAP_SEC_HEADER, p, n, n);
	end(&c);
	refused(c.buf, c.len, "field 'cpuid': 10 bytes");
	start(&c, 1);
	n = fld(p, "sparkler_version", SPK_SNAP_U32, 1, NULL, 0);
	section(&c, SPK_SNAP_SEC_HEADER, p, n, n);
	end(&c);
	refused(c.buf, c.len, "field 'sparkler_version': a u32, not a str");
}

/* The device's own checks: a value out of range, a missing field, an extra one. */
static void test_device_refuses(void **state)
{
	struct craft c;
	struct spk_snap_file *f;
	struct toy t = {1, 2, {3}, 0}, before;
	uint8_t p[512];
	size_t n;

	with_header(&c);
	n = device_payload(p, "toy0");
	n += fld(p + n, "a", SPK_SNAP_U8, 10, NULL, 0); /* max 9 */
	n += fld(p + n, "b", SPK_SNAP_U32, 1, NULL, 0);
	n += fld(p + n, "blob", SPK_SNAP_BYTES, 0, "12345", 5);
	section(&c, SPK_SNAP_SEC_DEVICE, p, n, n);
	n = device_payload(p, "toy1");
	n += fld(p + n, "a", SPK_SNAP_U8, 1, NULL, 0);
	n += fld(p + n, "blob", SPK_SNAP_BYTES, 0, "12345", 5);
	section(&c, SPK_SNAP_SEC_DEVICE, p, n, n);
	n = device_payload(p, "toy2");
	n += fld(p + n, "a", SPK_SNAP_U8, 1, NULL, 0);
	n += fld(p + n, "b", SPK_SNAP_U32, 1, NULL, 0);
	n += fld(p + n, "blob", SPK_SNAP_BYTES, 0, "1234", 4);
	section(&c, SPK_SNAP_SEC_DEVICE, p, n, n);
	n = device_payload(p, "toy3");
	n += fld(p + n, "a", SPK_SNAP_U8, 1, NULL, 0);
	n += fld(p + n, "b", SPK_SNAP_U32, 1, NULL, 0);
	n += fld(p + n, "blob", SPK_SNAP_BYTES, 0, "12345", 5);
	n += fld(p + n, "extra", SPK_SNAP_U8, 1, NULL, 0);
	section(&c, SPK_SNAP_SEC_DEVICE, p, n, n);
	n = device_payload(p, "toy4");
	n += fld(p + n, "a", SPK_SNAP_U16, 1, NULL, 0);
	n += fld(p + n, "b", SPK_SNAP_U32, 1, NULL, 0);
	n += fld(p + n, "blob", SPK_SNAP_BYTES, 0, "12345", 5);
	section(&c, SPK_SNAP_SEC_DEVICE, p, n, n);
	end(&c);
	if (spk_snap_open_buf(c.buf, c.len, &f))
		fail_msg("%s", spk_last_error());
	before = t;
	assert_int_equal(spk_snap_load_device(f, "toy0", &toy_ops, &t), -EINVAL);
	assert_non_null(
	    strstr(spk_last_error(), "device 'toy0', toy): field 'a': 10 is more than 9"));
	assert_int_equal(spk_snap_load_device(f, "toy1", &toy_ops, &t), -EINVAL);
	assert_non_null(strstr(spk_last_error(), "field 'b': missing: found 'blob'"));
	assert_int_equal(spk_snap_load_device(f, "toy2", &toy_ops, &t), -EINVAL);
	assert_non_null(strstr(spk_last_error(), "field 'blob': 4 bytes, not 5"));
	assert_int_equal(spk_snap_load_device(f, "toy3", &toy_ops, &t), -EINVAL);
	assert_non_null(strstr(spk_last_error(), "field 'extra': not a field"));
	assert_int_equal(spk_snap_load_device(f, "toy4", &toy_ops, &t),
	                 0); /* u16 a=1 is fine for get_max */
	assert_int_equal(t.a, 1);
	t = before;
	assert_memory_equal(&t, &before, sizeof(t));
	spk_snap_close(f);
}

static void test_writer_misuse(void **state)
{
	struct spk_snap_writer *w;
	struct spk_snap_header h;
	const void *buf;
	size_t len;

	assert_int_equal(spk_snap_writer_new(NULL), -EINVAL);
	assert_int_equal(spk_snap_put_u8(NULL, "a", 1), -EINVAL);
	spk_snap_writer_free(NULL);

	/* a field outside a section: sticky */
	assert_int_equal(spk_snap_writer_new(&w), 0);
	assert_int_equal(spk_snap_put_u8(w, "a", 1), -EINVAL);
	assert_non_null(strstr(spk_last_error(), "field 'a' outside a section"));
	assert_int_equal(spk_snap_writer_finish(w, &buf, &len), -EINVAL);
	spk_snap_writer_free(w);

	/* the first section must be the header; order; names */
	assert_int_equal(spk_snap_writer_new(&w), 0);
	assert_int_equal(spk_snap_section_begin(w, SPK_SNAP_SEC_DEVICE), -EINVAL);
	spk_snap_writer_free(w);
	spk_snap_header_host(&h);
	assert_int_equal(spk_snap_writer_new(&w), 0);
	assert_int_equal(spk_snap_put_header(w, &h), 0);
	assert_int_equal(spk_snap_section_begin(w, SPK_SNAP_SEC_DEVICE), 0);
	assert_int_equal(spk_snap_put_u8(w, "Bad Name", 1), -EINVAL);
	assert_int_equal(spk_snap_section_end(w), -EINVAL); /* sticky */
	spk_snap_writer_free(w);
	assert_int_equal(spk_snap_writer_new(&w), 0);
	assert_int_equal(spk_snap_put_header(w, &h), 0);
	assert_int_equal(spk_snap_section_begin(w, SPK_SNAP_SEC_DEVICE), 0);
	assert_int_equal(spk_snap_section_begin(w, SPK_SNAP_SEC_DEVICE), -EINVAL);
	spk_snap_writer_free(w);
	assert_int_equal(spk_snap_writer_new(&w), 0);
	assert_int_equal(spk_snap_put_header(w, &h), 0);
	assert_int_equal(spk_snap_section_begin(w, SPK_SNAP_SEC_DEVICE), 0);
	assert_int_equal(spk_snap_section_end(w), 0);
	assert_int_equal(spk_snap_section_begin(w, SPK_SNAP_SEC_MEMORY), -EINVAL);
	assert_non_null(strstr(spk_last_error(), "memory after device is out of order"));
	spk_snap_writer_free(w);
	/* a string with a newline, a section left open, after finish */
	assert_int_equal(spk_snap_writer_new(&w), 0);
	assert_int_equal(spk_snap_put_header(w, &h), 0);
	assert_int_equal(spk_snap_section_begin(w, SPK_SNAP_SEC_VM), 0);
	assert_int_equal(spk_snap_writer_finish(w, &buf, &len), -EINVAL);
	spk_snap_writer_free(w);
	assert_int_equal(spk_snap_writer_new(&w), 0);
	assert_int_equal(spk_snap_put_header(w, &h), 0);
	assert_int_equal(spk_snap_section_begin(w, SPK_SNAP_SEC_VM), 0);
	assert_int_equal(spk_snap_put_str(w, "s", "a\nb"), -EINVAL);
	spk_snap_writer_free(w);
	assert_int_equal(spk_snap_writer_new(&w), 0);
	assert_int_equal(spk_snap_put_header(w, &h), 0);
	assert_int_equal(spk_snap_writer_finish(w, &buf, &len), 0);
	assert_int_equal(spk_snap_section_begin(w, SPK_SNAP_SEC_VM), -EINVAL);
	spk_snap_writer_free(w);
	/* a device that refuses (work in flight) */
	static const struct spk_dev_state_ops busy = {
	    "busy", 1, (int (*)(void *, struct spk_snap_writer *))(void *)NULL, toy_load};
	assert_int_equal(spk_snap_writer_new(&w), 0);
	assert_int_equal(spk_snap_put_header(w, &h), 0);
	assert_int_equal(spk_snap_save_device(w, "x", &busy, NULL), -EINVAL);
	assert_int_equal(spk_snap_save_device(w, "Bad", &toy_ops, NULL), -EINVAL);
	spk_snap_writer_free(w);
}

static int refuse_save(void *opaque, struct spk_snap_writer *w)
{
	return -EBUSY;
}

static void test_device_busy(void **state)
{
	static const struct spk_dev_state_ops ops = {"busy", 1, refuse_save, toy_load};
	struct spk_snap_writer *w;
	struct spk_snap_header h;

	spk_snap_header_host(&h);
	assert_int_equal(spk_snap_writer_new(&w), 0);
	assert_int_equal(spk_snap_put_header(w, &h), 0);
	assert_int_equal(spk_snap_save_device(w, "b", &ops, NULL), -EBUSY);
	assert_int_equal(spk_snap_writer_error(w), -EBUSY);
	spk_snap_writer_free(w);
}

static void test_files(void **state)
{
	char path[] = "/tmp/spk-snap-XXXXXX";
	int fd = mkstemp(path);
	struct spk_snap_writer *w;
	struct spk_snap_header h;
	struct spk_snap_file *f;

	assert_true(fd >= 0);
	close(fd);
	spk_snap_header_host(&h);
	assert_int_equal(spk_snap_writer_new(&w), 0);
	assert_int_equal(spk_snap_put_header(w, &h), 0);
	assert_int_equal(spk_snap_writer_save(w, path, true), 0);
	spk_snap_writer_free(w);
	assert_int_equal(spk_snap_open(path, &f), 0);
	assert_int_equal(spk_snap_file_sections(f), 2);
	spk_snap_close(f);
	assert_int_equal(truncate(path, 10), 0);
	assert_int_equal(spk_snap_open(path, &f), -EINVAL);
	unlink(path);
	assert_true(spk_snap_open(path, &f) < 0);
	assert_int_equal(spk_snap_open("/", &f), -EINVAL);
	assert_int_equal(spk_snap_open(NULL, &f), -EINVAL);
	assert_int_equal(spk_snap_open_buf(NULL, 5, &f), -EINVAL);
}

static void test_crc32(void **state)
{
	/* the standard check value */
	assert_int_equal(spk_snap_crc32(0, "123456789", 9), 0xcbf43926);
	assert_int_equal(spk_snap_crc32(spk_snap_crc32(0, "1234", 4), "56789", 5), 0xcbf43926);
}

/* The guest's CPUID against the host's: vendor, missing bits, missing leaves, dynamic bits. */
static void test_check_cpuid(void **state)
{
	struct spk_snap_header *h = calloc(1, sizeof(*h));
	/* "GenuineIntel": EBX "Genu", EDX "ineI", ECX "ntel" */
	struct spk_snap_cpuid host[] = {
	    {0, 0, 0xd, 0x756e6547, 0x6c65746e, 0x49656e69},
	    {1, 0, 0, 0, 0x80000001 | (1u << 28), 0x0000ffff},
	    {7, 0, 0, (1u << 5) | (1u << 3), 0, 0},
	};

	snprintf(h->cpu_vendor, sizeof(h->cpu_vendor), "GenuineIntel");
	assert_int_equal(spk_snap_check_cpuid(h, host, 3), 0); /* no guest CPUID: vendor only */
	h->n_cpuid = 2;
	h->cpuid[0] = (struct spk_snap_cpuid){1, 0, 0, 0, 0x1 | (1u << 27) | (1u << 31), 0xff};
	h->cpuid[1] = (struct spk_snap_cpuid){7, 0, 0, 1u << 5, 0, 0};
	assert_int_equal(spk_snap_check_cpuid(h, host, 3), 0); /* OSXSAVE, hypervisor ignored */
	h->cpuid[1].ebx |= 1u << 9;
	assert_int_equal(spk_snap_check_cpuid(h, host, 3), -EINVAL);
	assert_string_equal(
	    spk_last_error(),
	    "snapshot: field 'cpuid': leaf 0x7.0 EBX bit 9 is set in what the guest "
	    "saw and not supported on this host");
	h->cpuid[1].ebx = 1u << 5;
	h->n_cpuid = 3;
	h->cpuid[2] = (struct spk_snap_cpuid){0x80000001, 0, 0, 0, 1, 0};
	assert_int_equal(spk_snap_check_cpuid(h, host, 3), -EINVAL);
	assert_non_null(strstr(spk_last_error(), "leaf 0x80000001.0 ECX bit 0"));
	assert_non_null(strstr(spk_last_error(), "the leaf is missing"));
	h->n_cpuid = 2;
	snprintf(h->cpu_vendor, sizeof(h->cpu_vendor), "AuthenticAMD");
	assert_int_equal(spk_snap_check_cpuid(h, host, 3), -EINVAL);
	assert_non_null(strstr(spk_last_error(), "field 'cpu_vendor'"));
	assert_int_equal(spk_snap_check_cpuid(NULL, host, 3), -EINVAL);
	assert_int_equal(spk_snap_check_cpuid(h, NULL, 3), -EINVAL);
	free(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_crc32),
	    cmocka_unit_test(test_round_trip),
	    cmocka_unit_test(test_truncated_everywhere),
	    cmocka_unit_test(test_every_bit_flip),
	    cmocka_unit_test(test_crafted_good),
	    cmocka_unit_test(test_hostile_structure),
	    cmocka_unit_test(test_hostile_fields),
	    cmocka_unit_test(test_device_refuses),
	    cmocka_unit_test(test_writer_misuse),
	    cmocka_unit_test(test_device_busy),
	    cmocka_unit_test(test_files),
	    cmocka_unit_test(test_check_cpuid),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
