/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for the snapshot state file reader: spk_snap_open_buf
 * (structure, lengths, CRCs, order, field encoding, the header), then on
 * a file that opened, what a restore does with it: the dump
 * (snapshot-info), the memory layout, and a cursor over every section
 * reading each field with the type it claims, then reading it again
 * with wrong expectations. The CRC is the first thing a mutated file
 * fails, so the seed corpus (gen_snapshot_corpus.py) has valid files and
 * the fuzzer's CRC-fixing custom mutator keeps them valid: after each
 * mutation every section's CRC is recomputed, so mutations reach the
 * checks behind it.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sparkler/snapshot.h>

#include "core/internal.h"
#include "snapshot/snap_internal.h"

size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size);
size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Recompute every section's CRC as far as the lengths let us walk. */
static void fix_crcs(uint8_t *d, size_t n)
{
	size_t at = 16;

	while (n >= 24 && at <= n - 24) {
		uint64_t len = spk_get_le(d + at + 8, 8);

		if (len > n - at - 24)
			return;
		spk_put_le(d + at + 16,
		           spk_snap_crc32(spk_snap_crc32(0, d + at, 16), d + at + 24, (size_t)len),
		           4);
		at += 24 + (size_t)len;
	}
}

size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed)
{
	size_t n = LLVMFuzzerMutate(data, size, max_size);

	if (seed % 8) /* most of the time; sometimes leave a CRC wrong */
		fix_crcs(data, n);
	return n;
}

/* Read every field of section i: first with a wrong type (refused, the
 * cursor stays), then as what it is. */
static void walk(const struct spk_snap_file *f, size_t i)
{
	struct spk_snap_reader *r;
	char name[SPK_SNAP_NAME_MAX], s[SPK_SNAP_STR_MAX];
	uint8_t type, b[16];
	uint64_t v;
	const void *p;
	size_t len;

	if (spk_snap_reader_new(f, i, &r))
		return;
	while (spk_snap_peek(r, name, &type) == 0) {
		int rc;

		if (type == SPK_SNAP_STR)
			(void)spk_snap_get_bytes(r, name, b, sizeof(b));
		else
			(void)spk_snap_get_str(r, name, s, 8);
		if (type == SPK_SNAP_STR)
			rc = spk_snap_get_str(r, name, s, sizeof(s));
		else if (type == SPK_SNAP_BYTES)
			rc = spk_snap_get_blob(r, name, &p, &len);
		else
			rc = spk_snap_get_max(r, name, v = (uint64_t)i * 7, &v) &&
			     spk_snap_get_max(r, name, UINT64_MAX, &v);
		if (rc)
			__builtin_trap(); /* a field open() accepted must read */
	}
	(void)spk_snap_reader_done(r);
	spk_snap_reader_free(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct spk_snap_file *f;
	struct spk_snap_mem_layout l;
	FILE *out;

	if (spk_snap_open_buf(data, size, &f) < 0)
		return 0;
	out = fopen("/dev/null", "w");
	if (out) {
		spk_snap_file_dump(f, out, true);
		fclose(out);
	}
	if (spk_snap_mem_layout(f, &l) == 0)
		spk_snap_mem_layout_fini(&l);
	for (size_t i = 0; i < spk_snap_file_sections(f); i++)
		walk(f, i);
	spk_snap_close(f);
	return 0;
}
