/* SPDX-License-Identifier: Apache-2.0 */
/* Function-call frames, the host's side: see frame.h. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/internal.h"
#include "fn/frame.h"

/* ---- signatures: "ab:r" ---- */

static bool arg_type(char t)
{
	return t == SPK_FN_T_I64 || t == SPK_FN_T_F64 || t == SPK_FN_T_BYTES || t == SPK_FN_T_STR;
}

int fn_sig_parse(const char *name, const char *sig, struct fn_sig *out)
{
	size_t nl = strnlen(name, SPK_FN_NAME_MAX), sl = strnlen(sig, SPK_FN_SIG_MAX);
	unsigned n = 0;

	if (nl == 0 || nl >= SPK_FN_NAME_MAX)
		return spk_fail(EINVAL, "fn: a function name must be 1 to %d bytes",
		                SPK_FN_NAME_MAX - 1);
	if (sl >= SPK_FN_SIG_MAX)
		return spk_fail(EINVAL, "fn: %s: signature too long", name);
	for (; sig[n] && sig[n] != ':'; n++)
		if (n >= SPK_FN_MAX_ARGS || !arg_type(sig[n]))
			return spk_fail(EINVAL, "fn: %s: bad signature \"%s\" (argument %u)", name,
			                sig, n);
	if (sig[n] != ':' || !(arg_type(sig[n + 1]) || sig[n + 1] == SPK_FN_T_VOID) || sig[n + 2])
		return spk_fail(EINVAL, "fn: %s: bad signature \"%s\" (want types, ':', result)",
		                name, sig);
	memcpy(out->name, name, nl + 1);
	memcpy(out->sig, sig, sl + 1);
	out->nargs = n;
	out->rtype = sig[n + 1];
	return 0;
}

/* ---- values in a buffer's data area ---- */

/* A value of the given type whose bytes lie inside [0, size): 0 or -EPROTO. */
static int val_check(const struct spk_fn_abi_val *v, char type, const uint8_t *data, uint64_t size,
                     const char *what)
{
	if (v->type != (uint32_t)(uint8_t)type)
		return spk_fail(EPROTO, "fn: %s has type 0x%x, not '%c'", what, v->type, type);
	if (type != SPK_FN_T_BYTES && type != SPK_FN_T_STR)
		return 0;
	if (v->v > size || v->len > size - v->v)
		return spk_fail(EPROTO,
		                "fn: %s at offset 0x%llx, %llu bytes, is outside the %llu-byte "
		                "data area",
		                what, (unsigned long long)v->v, (unsigned long long)v->len,
		                (unsigned long long)size);
	if (type == SPK_FN_T_STR && data && (v->len == size - v->v || data[v->v + v->len]))
		return spk_fail(EPROTO, "fn: %s is a string without its NUL", what);
	return 0;
}

/* Put the bytes of an argument at *off in data (size bytes); -E2BIG. */
static int put_bytes(struct spk_fn_abi_val *v, uint8_t *data, uint64_t size, uint64_t *off,
                     const void *p, size_t len, bool nul)
{
	if (len > size - *off || (nul && len == size - *off))
		return -E2BIG;
	if (len)
		memcpy(data + *off, p, len);
	if (nul)
		data[*off + len] = 0;
	v->v = *off;
	v->len = len;
	*off += len + nul;
	*off = (*off + 7) & ~7ull;
	if (*off > size)
		*off = size;
	return 0;
}

int fn_frame_decode_args(const struct spk_fn_frame *f, const uint8_t *data, uint64_t size,
                         const struct fn_sig *s, uint8_t *scratch, struct spk_fn_value *args)
{
	if (f->nargs != s->nargs)
		return spk_fail(EINVAL,
		                "fn: host function %s takes %u arguments, the guest gave %u",
		                s->name, s->nargs, f->nargs);
	if (f->args_end > size)
		return spk_fail(EPROTO, "fn: host call to %s: arguments end beyond the data area",
		                s->name);
	/* one copy of the bytes the arguments use: the guest cannot change
	 * them under the host function */
	memcpy(scratch, data, f->args_end);
	scratch[f->args_end] = 0;
	for (unsigned i = 0; i < f->nargs; i++) {
		const struct spk_fn_abi_val *v = &f->args[i];
		char what[128];
		int rc;

		snprintf(what, sizeof(what), "argument %u of host call %s", i, s->name);
		if ((rc = val_check(v, s->sig[i], scratch, f->args_end, what)) < 0)
			return rc == -EPROTO && v->type != (uint32_t)(uint8_t)s->sig[i] ? -EINVAL
			                                                                : rc;
		args[i] = (struct spk_fn_value){.type = (enum spk_fn_type)s->sig[i]};
		if (v->type == SPK_FN_T_I64)
			args[i].i64 = (int64_t)v->v;
		else if (v->type == SPK_FN_T_F64)
			memcpy(&args[i].f64, &v->v, sizeof(double));
		else {
			args[i].ptr = scratch + v->v;
			args[i].len = v->len;
		}
	}
	return 0;
}

int fn_frame_encode_result(struct spk_fn_abi_val *ret, uint8_t *data, uint64_t size, char rtype,
                           const struct spk_fn_value *r, uint64_t *used)
{
	struct spk_fn_abi_val v = {.type = (uint32_t)(uint8_t)rtype};
	uint64_t off = 0;

	if (r->type != (enum spk_fn_type)rtype)
		return -EPROTO; /* the host function's own mistake: the guest sees EPROTO */
	if (r->type == SPK_FN_I64)
		v.v = (uint64_t)r->i64;
	else if (r->type == SPK_FN_F64)
		memcpy(&v.v, &r->f64, sizeof(double));
	else if (r->type == SPK_FN_BYTES || r->type == SPK_FN_STR) {
		if (r->len && !r->ptr)
			return -EPROTO;
		if (put_bytes(&v, data, size, &off, r->ptr, r->len, r->type == SPK_FN_STR) < 0)
			return -E2BIG;
	}
	*ret = v;
	*used = off;
	return 0;
}

int fn_frame_encode(struct spk_fn_frame *f, uint8_t *data, uint64_t size, const struct fn_sig *s,
                    uint32_t index, const struct spk_fn_value *args, unsigned nargs)
{
	uint64_t off = 0;

	*f = (struct spk_fn_frame){.magic = SPK_FN_MAGIC, .index = index, .nargs = nargs};

	if (nargs != s->nargs)
		return spk_fail(EINVAL, "fn: %s takes %u arguments (\"%s\"), not %u", s->name,
		                s->nargs, s->sig, nargs);
	if (nargs && !args)
		return spk_fail(EINVAL, "fn: %s: NULL arguments", s->name);
	for (unsigned i = 0; i < nargs; i++) {
		const struct spk_fn_value *a = &args[i];
		struct spk_fn_abi_val *v = &f->args[i];

		if (a->type != (enum spk_fn_type)s->sig[i])
			return spk_fail(EINVAL, "fn: %s: argument %u must be '%c' (\"%s\")",
			                s->name, i, s->sig[i], s->sig);
		v->type = (uint32_t)a->type;
		if (a->type == SPK_FN_I64)
			v->v = (uint64_t)a->i64;
		else if (a->type == SPK_FN_F64)
			memcpy(&v->v, &a->f64, sizeof(double));
		else if (a->len && !a->ptr)
			return spk_fail(EINVAL, "fn: %s: argument %u: NULL with length %zu",
			                s->name, i, a->len);
		else if (put_bytes(v, data, size, &off, a->ptr, a->len, a->type == SPK_FN_STR) < 0)
			return spk_fail(E2BIG,
			                "fn: %s: the arguments do not fit the guest's %llu-byte "
			                "call buffer",
			                s->name, (unsigned long long)size);
	}
	f->args_end = off;
	f->ret.type = (uint32_t)(uint8_t)s->rtype;
	return 0;
}

int fn_frame_decode_result(const struct spk_fn_frame *f, const uint8_t *data, uint64_t size,
                           const struct fn_sig *s, uint8_t *out, struct spk_fn_value *result)
{
	struct spk_fn_value r = {.type = (enum spk_fn_type)s->rtype};
	int rc;

	switch (f->status) {
	case SPK_FN_ST_OK:
		break;
	case SPK_FN_ST_FAILED:
		if (result)
			*result =
			    (struct spk_fn_value){.type = SPK_FN_I64, .i64 = (int64_t)f->ret.v};
		return spk_fail(EREMOTEIO, "fn: %s returned error %lld", s->name,
		                (long long)f->ret.v);
	case SPK_FN_ST_BAD_FRAME:
		return spk_fail(EPROTO, "fn: the guest refused the call frame of %s", s->name);
	case SPK_FN_ST_NO_RESULT:
		return spk_fail(EPROTO, "fn: %s returned without a result", s->name);
	case SPK_FN_ST_TOO_BIG:
		return spk_fail(EPROTO, "fn: %s's result did not fit the call buffer", s->name);
	default:
		return spk_fail(EPROTO, "fn: %s returned status %d, which means nothing", s->name,
		                f->status);
	}
	char what[128];
	snprintf(what, sizeof(what), "the result of %s", s->name);
	if ((rc = val_check(&f->ret, s->rtype, data, size, what)) < 0)
		return rc;
	if (r.type == SPK_FN_I64)
		r.i64 = (int64_t)f->ret.v;
	else if (r.type == SPK_FN_F64)
		memcpy(&r.f64, &f->ret.v, sizeof(double));
	else if (r.type == SPK_FN_BYTES || r.type == SPK_FN_STR) {
		memcpy(out, data + f->ret.v, f->ret.len);
		out[f->ret.len] = 0;
		r.ptr = out;
		r.len = f->ret.len;
	}
	if (result)
		*result = r;
	return 0;
}
