/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for the host's side of the function-call frames
 * (src/fn/frame.c, fn_abi.h): what a hostile guest writes into its call
 * and host buffers, decoded as a call's result and as a host call's
 * arguments, checked against the model:
 *
 *   - a decoded value lies inside the data area (ASan checks the reads);
 *     bytes and strings point into the caller's copy, strings end in a NUL
 *     there; its type is the signature's;
 *   - decoding refuses (-EPROTO, -EINVAL, -EREMOTEIO) with a message,
 *     never crashes;
 *   - whatever decodes as arguments encodes again (fn_frame_encode) into a
 *     fresh area of the same size and decodes to the same values; a host
 *     result encoded (fn_frame_encode_result) decodes as a call result to
 *     the same value.
 *
 * Input: a signature (16 bytes, NUL-padded), a struct spk_fn_frame, then
 * the data area (the rest, at most 64 KiB).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sparkler/log.h>

#include "fn/frame.h"

#define DATA_MAX (64u << 10)

static void check_value(const struct spk_fn_value *v, char type, const uint8_t *base, uint64_t size)
{
	if (v->type != (enum spk_fn_type)type)
		abort();
	if (type != SPK_FN_BYTES && type != SPK_FN_STR)
		return;
	const uint8_t *p = v->ptr;
	if (v->len && (p < base || p + v->len > base + size))
		abort();
	if (type == SPK_FN_STR && p[v->len] != 0)
		abort();
}

static bool same(const struct spk_fn_value *a, const struct spk_fn_value *b)
{
	if (a->type != b->type)
		return false;
	switch (a->type) {
	case SPK_FN_I64:
		return a->i64 == b->i64;
	case SPK_FN_F64:
		return !memcmp(&a->f64, &b->f64, sizeof(double));
	case SPK_FN_BYTES:
	case SPK_FN_STR:
		return a->len == b->len && (!a->len || !memcmp(a->ptr, b->ptr, a->len));
	default:
		return true;
	}
}

/* What decoded as arguments encodes again to the same values. */
static void roundtrip_args(const struct fn_sig *s, const struct spk_fn_value *args, uint64_t size)
{
	struct spk_fn_frame f2;
	struct spk_fn_value back[SPK_FN_MAX_ARGS];
	uint8_t *data2 = malloc(size + 1), *scratch2 = malloc(size + 1);

	if (!data2 || !scratch2)
		abort();
	int rc = fn_frame_encode(&f2, data2, size, s, 0, args, s->nargs);
	/* the same bytes fit, except that strings here may need their NUL and
	 * alignment where the guest packed them tighter */
	if (rc == 0) {
		if (fn_frame_decode_args(&f2, data2, size, s, scratch2, back) != 0)
			abort();
		for (unsigned i = 0; i < s->nargs; i++)
			if (!same(&args[i], &back[i]))
				abort();
	} else if (rc != -E2BIG) {
		abort();
	}
	free(data2);
	free(scratch2);
}

/* A host result of the signature's type encodes and decodes as a result. */
static void roundtrip_result(const struct fn_sig *s, const struct spk_fn_value *arg0, uint64_t size)
{
	struct spk_fn_frame f = {.magic = SPK_FN_MAGIC, .status = SPK_FN_ST_OK};
	struct spk_fn_value r = *arg0, back;
	uint64_t used = 0;
	uint8_t *data = malloc(size + 1), *out = malloc(size + 1);

	if (!data || !out)
		abort();
	r.type = (enum spk_fn_type)s->rtype;
	if (s->rtype == SPK_FN_BYTES || s->rtype == SPK_FN_STR) {
		if (arg0->type != SPK_FN_BYTES && arg0->type != SPK_FN_STR)
			r.ptr = NULL, r.len = 0;
	}
	int rc = fn_frame_encode_result(&f.ret, data, size, s->rtype, &r, &used);
	if (rc == 0 && s->rtype != SPK_FN_VOID) {
		if (used > size || fn_frame_decode_result(&f, data, size, s, out, &back) != 0)
			abort();
		if ((s->rtype == SPK_FN_I64 || s->rtype == SPK_FN_F64 || s->rtype == SPK_FN_BYTES ||
		     s->rtype == SPK_FN_STR) &&
		    !same(&r, &back))
			abort();
	} else if (rc != 0 && rc != -E2BIG && rc != -EPROTO) {
		abort();
	}
	free(data);
	free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t n);

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t n)
{
	char sigtext[SPK_FN_SIG_MAX + 1] = {0};
	struct spk_fn_frame f;
	struct fn_sig s;
	struct spk_fn_value result, args[SPK_FN_MAX_ARGS];

	if (n < SPK_FN_SIG_MAX + sizeof(f))
		return 0;
	memcpy(sigtext, in, SPK_FN_SIG_MAX);
	memcpy(&f, in + SPK_FN_SIG_MAX, sizeof(f));
	in += SPK_FN_SIG_MAX + sizeof(f);
	n -= SPK_FN_SIG_MAX + sizeof(f);
	uint64_t size = n > DATA_MAX ? DATA_MAX : n;
	if (fn_sig_parse("fuzzed", sigtext, &s) != 0)
		return 0;
	/* exactly size bytes, so that ASan sees any read past the area */
	uint8_t *data = malloc(size ? size : 1), *out = malloc(size + 1),
	        *scratch = malloc(size + 1);
	if (!data || !out || !scratch)
		abort();
	memcpy(data, in, size);

	int rc = fn_frame_decode_result(&f, data, size, &s, out, &result);
	if (rc == 0)
		check_value(&result, s.rtype, out, size);
	else if (rc != -EPROTO && rc != -EREMOTEIO)
		abort();

	rc = fn_frame_decode_args(&f, data, size, &s, scratch, args);
	if (rc == 0) {
		for (unsigned i = 0; i < s.nargs; i++)
			check_value(&args[i], s.sig[i], scratch, size);
		roundtrip_args(&s, args, size);
		if (s.nargs)
			roundtrip_result(&s, &args[0], size);
	} else if (rc != -EPROTO && rc != -EINVAL) {
		abort();
	}
	free(data);
	free(out);
	free(scratch);
	return 0;
}
