/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Shared by the device state tests: save one device into a snapshot,
 * round trips (save, load into a fresh device, save again: the same
 * bytes), and hostile sections (one field of a real save replaced: the
 * load is refused with a message naming the device and the field, and the
 * device saves the same bytes as before). Include after cmocka.h.
 */
#ifndef SPK_TESTS_SNAPTEST_H
#define SPK_TESTS_SNAPTEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sparkler/log.h>
#include <sparkler/snapshot.h>

/* snapshot/snap_internal.h: the next field's name and type */
int spk_snap_peek(struct spk_snap_reader *r, char name[64], uint8_t *type);

/* A snapshot holding one device, as bytes. */
static inline struct spk_snap_file *save_one(const char *name, const struct spk_dev_state_ops *ops,
                                             void *dev, void **bytes, size_t *len)
{
	struct spk_snap_writer *w;
	struct spk_snap_header h;
	struct spk_snap_file *f;
	const void *buf;

	spk_snap_header_host(&h);
	h.created = 1; /* so two saves compare equal */
	assert_int_equal(spk_snap_writer_new(&w), 0);
	assert_int_equal(spk_snap_put_header(w, &h), 0);
	assert_int_equal(spk_snap_save_device(w, name, ops, dev), 0);
	assert_int_equal(spk_snap_writer_finish(w, &buf, len), 0);
	*bytes = malloc(*len);
	memcpy(*bytes, buf, *len);
	assert_int_equal(spk_snap_open_buf(buf, *len, &f), 0);
	spk_snap_writer_free(w);
	return f;
}

/* Save a, load into b, save b: the bytes must be identical. */
static inline void round_trip(const char *name, const struct spk_dev_state_ops *ops, void *a,
                              void *b)
{
	void *ba, *bb;
	size_t la, lb;
	struct spk_snap_file *fa = save_one(name, ops, a, &ba, &la), *fb;

	if (spk_snap_load_device(fa, name, ops, b) != 0)
		fail_msg("load %s: %s", name, spk_last_error());
	fb = save_one(name, ops, b, &bb, &lb);
	assert_int_equal(la, lb);
	assert_memory_equal(ba, bb, la);
	spk_snap_close(fa);
	spk_snap_close(fb);
	free(ba);
	free(bb);
}

/*
 * A section for device name of kind/version with the fields of a real
 * save, where field `bad` is replaced by (type, value/bytes).
 */
struct patch {
	const char *field;
	enum spk_snap_ftype type;
	uint64_t value;
	const void *data;
	size_t len;
	const char *expect; /* in the message */
};

/* Re-emit every field of section 1 of f, patching one. */
static inline struct spk_snap_file *patched(struct spk_snap_file *f, const struct patch *p)
{
	struct spk_snap_writer *w;
	struct spk_snap_reader *r;
	struct spk_snap_header h = *spk_snap_file_header(f);
	struct spk_snap_file *out;
	const void *buf;
	size_t len;
	bool found = false;

	assert_int_equal(spk_snap_writer_new(&w), 0);
	assert_int_equal(spk_snap_put_header(w, &h), 0);
	assert_int_equal(spk_snap_section_begin(w, SPK_SNAP_SEC_DEVICE), 0);
	assert_int_equal(spk_snap_reader_new(f, 1, &r), 0);
	for (;;) {
		char name[SPK_SNAP_NAME_MAX];
		uint8_t type;
		uint64_t v;
		const void *d;
		size_t n;
		char s[SPK_SNAP_STR_MAX];

		if (spk_snap_peek(r, name, &type) != 0)
			break;
		if (type == SPK_SNAP_STR) {
			assert_int_equal(spk_snap_get_str(r, name, s, sizeof(s)), 0);
		} else if (type == SPK_SNAP_BYTES) {
			assert_int_equal(spk_snap_get_blob(r, name, &d, &n), 0);
		} else {
			assert_int_equal(spk_snap_get_max(r, name, UINT64_MAX, &v), 0);
		}
		if (strcmp(name, p->field) == 0) {
			found = true;
			type = (uint8_t)p->type;
			v = p->value;
			d = p->data;
			n = p->len;
		}
		switch (type) {
		case SPK_SNAP_U8:
			spk_snap_put_u8(w, name, (uint8_t)v);
			break;
		case SPK_SNAP_U16:
			spk_snap_put_u16(w, name, (uint16_t)v);
			break;
		case SPK_SNAP_U32:
			spk_snap_put_u32(w, name, (uint32_t)v);
			break;
		case SPK_SNAP_U64:
			spk_snap_put_u64(w, name, v);
			break;
		case SPK_SNAP_BYTES:
			spk_snap_put_bytes(w, name, d, n);
			break;
		default:
			spk_snap_put_str(w, name, s);
		}
	}
	if (!found)
		fail_msg("no field %s", p->field);
	spk_snap_reader_free(r);
	assert_int_equal(spk_snap_section_end(w), 0);
	assert_int_equal(spk_snap_writer_finish(w, &buf, &len), 0);
	assert_int_equal(spk_snap_open_buf(buf, len, &out), 0);
	spk_snap_writer_free(w);
	return out;
}

/* Each patch is refused by a device that then saves the same bytes as before. */
static inline void hostile(const char *name, const struct spk_dev_state_ops *ops, void *dev,
                           const struct patch *patches, size_t n)
{
	void *before, *after;
	size_t lb, la;
	struct spk_snap_file *f = save_one(name, ops, dev, &before, &lb);

	for (size_t i = 0; i < n; i++) {
		struct spk_snap_file *bad = patched(f, &patches[i]);
		struct spk_snap_file *again;
		char want[128];

		if (spk_snap_load_device(bad, name, ops, dev) != -EINVAL)
			fail_msg("%s: field %s accepted", name, patches[i].field);
		snprintf(want, sizeof(want), "device '%s', %s): field '%s'", name, ops->kind,
		         patches[i].field);
		if (!strstr(spk_last_error(), want) || !strstr(spk_last_error(), patches[i].expect))
			fail_msg("'%s' lacks '%s' or '%s'", spk_last_error(), want,
			         patches[i].expect);
		again = save_one(name, ops, dev, &after, &la);
		assert_int_equal(la, lb);
		assert_memory_equal(before, after, la);
		spk_snap_close(again);
		spk_snap_close(bad);
		free(after);
	}
	spk_snap_close(f);
	free(before);
}

#endif
