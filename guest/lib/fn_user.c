/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Function sandboxes, the guest's CPL3 side (guest_fn.h): the ready
 * message, the call loop, argument and result accessors, host calls.
 * Built without -mgeneral-regs-only (doubles travel in SSE registers):
 * nothing here may run at CPL0.
 */
#include <guest_fn.h>

#define BUF_SIZE  (64u << 10)
#define DATA_SIZE (BUF_SIZE - SPK_FN_DATA_OFFSET)

extern const struct guest_fn_export __start_spk_fn_exports[], __stop_spk_fn_exports[];

static uint8_t call_buf[BUF_SIZE] __attribute__((aligned(4096)));
static uint8_t host_buf[BUF_SIZE] __attribute__((aligned(4096)));
static struct spk_fn_abi_export abi_exports[SPK_FN_MAX_EXPORTS];
static struct spk_fn_ready ready;
static uint8_t fpu_init[512] __attribute__((aligned(16)));

/* fn_musl.c sets this to start musl (its TLS, stdio) before the loop. */
int (*guest_fn_libc_start)(int (*main)(int, char **, char **)) __attribute__((weak));
uint64_t guest_fn_user_main(uint64_t unused);

struct guest_fn_call {
	struct spk_fn_frame *f;
	uint8_t *data;
	char rtype;
	bool have_ret;
};

static uint64_t fn_hc(uint64_t op, uint64_t a)
{
	return guest_hypercall(SPK_HC_FN, op, a, 0, 0, 0, 0);
}

/* "ab:r" -> 2 arguments, result 'r'; -1 for a malformed signature. */
static int sig_parse(const char *sig, char *rtype)
{
	int n = 0;

	for (; sig[n] && sig[n] != ':'; n++) {
		char t = sig[n];
		if (n >= SPK_FN_MAX_ARGS || (t != SPK_FN_T_I64 && t != SPK_FN_T_F64 &&
		                             t != SPK_FN_T_BYTES && t != SPK_FN_T_STR))
			return -1;
	}
	if (sig[n] != ':')
		return -1;
	char r = sig[n + 1];
	if ((r != SPK_FN_T_I64 && r != SPK_FN_T_F64 && r != SPK_FN_T_BYTES && r != SPK_FN_T_STR &&
	     r != SPK_FN_T_VOID) ||
	    sig[n + 2])
		return -1;
	*rtype = r;
	return n;
}

/* A value in a frame whose data area is data[0, DATA_SIZE): bytes and
 * strings must lie inside it, strings end in a NUL. */
static bool val_ok(const struct spk_fn_abi_val *v, const uint8_t *data, char type)
{
	if (v->type != (uint32_t)type)
		return false;
	if (type != SPK_FN_T_BYTES && type != SPK_FN_T_STR)
		return true;
	if (v->v > DATA_SIZE || v->len > DATA_SIZE - v->v)
		return false;
	return type != SPK_FN_T_STR || (v->len < DATA_SIZE - v->v && data[v->v + v->len] == 0);
}

static double bits_f64(uint64_t b)
{
	double d;

	__builtin_memcpy(&d, &b, sizeof(d));
	return d;
}

static uint64_t f64_bits(double d)
{
	uint64_t b;

	__builtin_memcpy(&b, &d, sizeof(b));
	return b;
}

/* ---- calls from the host ---- */

static int32_t dispatch(void)
{
	struct spk_fn_frame *f = (struct spk_fn_frame *)call_buf;
	uint8_t *data = call_buf + SPK_FN_DATA_OFFSET;
	char rtype;

	f->ret = (struct spk_fn_abi_val){.type = SPK_FN_T_VOID};
	if (f->magic != SPK_FN_MAGIC || f->index >= ready.n_exports || f->args_end > DATA_SIZE)
		return SPK_FN_ST_BAD_FRAME;
	const struct guest_fn_export *e = &__start_spk_fn_exports[f->index];
	int n = sig_parse(e->sig, &rtype);
	if (n < 0 || f->nargs != (uint32_t)n)
		return SPK_FN_ST_BAD_FRAME;
	for (int i = 0; i < n; i++)
		if (!val_ok(&f->args[i], data, e->sig[i]))
			return SPK_FN_ST_BAD_FRAME;

	struct guest_fn_call c = {.f = f, .data = data, .rtype = rtype};
	int rc = e->fn(&c);
	if (rc) {
		f->ret = (struct spk_fn_abi_val){.type = SPK_FN_T_I64, .v = (uint64_t)(int64_t)rc};
		return SPK_FN_ST_FAILED;
	}
	if (rtype != SPK_FN_T_VOID && !c.have_ret)
		return SPK_FN_ST_NO_RESULT;
	return SPK_FN_ST_OK;
}

static const struct spk_fn_abi_val *arg(const struct guest_fn_call *c, unsigned i, uint32_t type)
{
	if (!c || i >= c->f->nargs || c->f->args[i].type != type)
		return NULL;
	return &c->f->args[i];
}

int64_t guest_fn_i64(const struct guest_fn_call *c, unsigned i)
{
	const struct spk_fn_abi_val *v = arg(c, i, SPK_FN_T_I64);

	return v ? (int64_t)v->v : 0;
}

double guest_fn_f64(const struct guest_fn_call *c, unsigned i)
{
	const struct spk_fn_abi_val *v = arg(c, i, SPK_FN_T_F64);

	return v ? bits_f64(v->v) : 0.0;
}

const void *guest_fn_bytes(const struct guest_fn_call *c, unsigned i, size_t *len)
{
	const struct spk_fn_abi_val *v = arg(c, i, SPK_FN_T_BYTES);

	if (len)
		*len = v ? v->len : 0;
	return v ? c->data + v->v : NULL;
}

const char *guest_fn_str(const struct guest_fn_call *c, unsigned i, size_t *len)
{
	const struct spk_fn_abi_val *v = arg(c, i, SPK_FN_T_STR);

	if (len)
		*len = v ? v->len : 0;
	return v ? (const char *)c->data + v->v : NULL;
}

static uint64_t ret_off(const struct guest_fn_call *c)
{
	return (c->f->args_end + 7) & ~7ull;
}

size_t guest_fn_ret_room(const struct guest_fn_call *c)
{
	uint64_t off = ret_off(c);

	return off < DATA_SIZE ? DATA_SIZE - off : 0;
}

static int ret_scalar(struct guest_fn_call *c, char type, uint64_t v)
{
	if (c->rtype != type)
		return -22;
	c->f->ret = (struct spk_fn_abi_val){.type = (uint32_t)type, .v = v};
	c->have_ret = true;
	return 0;
}

int guest_fn_ret_i64(struct guest_fn_call *c, int64_t v)
{
	return ret_scalar(c, SPK_FN_T_I64, (uint64_t)v);
}

int guest_fn_ret_f64(struct guest_fn_call *c, double v)
{
	return ret_scalar(c, SPK_FN_T_F64, f64_bits(v));
}

static int ret_data(struct guest_fn_call *c, char type, const void *p, size_t len)
{
	size_t room = guest_fn_ret_room(c);
	uint64_t off = ret_off(c);

	if (c->rtype != type)
		return -22;
	if (len > room || (type == SPK_FN_T_STR && len == room))
		return -7;
	/* memmove: the result may be (part of) an argument */
	uint8_t *dst = c->data + off;
	const uint8_t *src = p;
	if (dst < src)
		for (size_t i = 0; i < len; i++)
			dst[i] = src[i];
	else
		for (size_t i = len; i-- > 0;)
			dst[i] = src[i];
	if (type == SPK_FN_T_STR)
		dst[len] = 0;
	c->f->ret = (struct spk_fn_abi_val){.type = (uint32_t)type, .v = off, .len = len};
	c->have_ret = true;
	return 0;
}

int guest_fn_ret_bytes(struct guest_fn_call *c, const void *p, size_t len)
{
	return ret_data(c, SPK_FN_T_BYTES, p, len);
}

int guest_fn_ret_str(struct guest_fn_call *c, const char *s)
{
	return ret_data(c, SPK_FN_T_STR, s, s ? strlen(s) : 0);
}

/* ---- calls to the host ---- */

static int put_data(struct spk_fn_abi_val *v, uint8_t *data, uint64_t *off, const void *p,
                    size_t len, bool nul)
{
	if (len > DATA_SIZE - *off || (nul && len == DATA_SIZE - *off))
		return -7;
	memcpy(data + *off, p, len);
	if (nul)
		data[*off + len] = 0;
	v->v = *off;
	v->len = len;
	*off = (*off + len + nul + 7) & ~7ull;
	if (*off > DATA_SIZE)
		*off = DATA_SIZE;
	return 0;
}

int64_t guest_fn_host(const char *name, const char *sig, struct guest_fn_result *res, ...)
{
	struct spk_fn_frame *f = (struct spk_fn_frame *)host_buf;
	uint8_t *data = host_buf + SPK_FN_DATA_OFFSET;
	uint64_t off = 0;
	char rtype;
	va_list ap;
	int n, rc = 0;

	if (!name || !sig || strlen(name) >= SPK_FN_NAME_MAX || (n = sig_parse(sig, &rtype)) < 0)
		return -22;
	*f = (struct spk_fn_frame){.magic = SPK_FN_MAGIC, .nargs = (uint32_t)n};
	memcpy(f->name, name, strlen(name) + 1);
	va_start(ap, res);
	for (int i = 0; i < n && !rc; i++) {
		struct spk_fn_abi_val *v = &f->args[i];
		v->type = (uint32_t)sig[i];
		switch (sig[i]) {
		case SPK_FN_T_I64:
			v->v = (uint64_t)va_arg(ap, int64_t);
			break;
		case SPK_FN_T_F64:
			v->v = f64_bits(va_arg(ap, double));
			break;
		case SPK_FN_T_BYTES: {
			const void *p = va_arg(ap, const void *);
			size_t len = va_arg(ap, size_t);
			rc = put_data(v, data, &off, p, len, false);
			break;
		}
		default: { /* SPK_FN_T_STR */
			const char *s = va_arg(ap, const char *);
			rc = s ? put_data(v, data, &off, s, strlen(s), true) : -22;
			break;
		}
		}
	}
	va_end(ap);
	if (rc)
		return rc;
	f->args_end = off;
	f->ret = (struct spk_fn_abi_val){.type = (uint32_t)rtype};
	int64_t r = (int64_t)fn_hc(SPK_FN_OP_HOST, 0);
	if (r < 0)
		return r;
	/* the host's answer, checked like any input */
	if (f->ret.type != (uint32_t)rtype ||
	    !val_ok(&f->ret, data, rtype == SPK_FN_T_VOID ? 'v' : rtype))
		return -71; /* EPROTO */
	if (res) {
		*res = (struct guest_fn_result){.type = rtype};
		if (rtype == SPK_FN_T_I64)
			res->i64 = (int64_t)f->ret.v;
		else if (rtype == SPK_FN_T_F64)
			res->f64 = bits_f64(f->ret.v);
		else if (rtype == SPK_FN_T_BYTES || rtype == SPK_FN_T_STR) {
			res->data = data + f->ret.v;
			res->len = f->ret.len;
		}
	}
	return 0;
}

struct spk_fn_frame *guest_fn_host_frame(void)
{
	return (struct spk_fn_frame *)host_buf;
}

uint64_t guest_fn_time_ns(void)
{
	return fn_hc(SPK_FN_OP_TIME, 1);
}

/* ---- the loop ---- */

static void fxsave(void *p)
{
	__asm__ volatile("fxsave64 %0" : "=m"(*(uint8_t(*)[512])p));
}

static void fxrstor(const void *p)
{
	__asm__ volatile("fxrstor64 %0" ::"m"(*(const uint8_t(*)[512])p));
}

static int serve(int argc, char **argv, char **envp)
{
	size_t n = (size_t)(__stop_spk_fn_exports - __start_spk_fn_exports);

	if (guest_fn_init && guest_fn_init() != 0)
		return 1;
	if (n > SPK_FN_MAX_EXPORTS)
		return 2;
	for (size_t i = 0; i < n; i++)
		abi_exports[i] =
		    (struct spk_fn_abi_export){(uint64_t)__start_spk_fn_exports[i].name,
		                               (uint64_t)__start_spk_fn_exports[i].sig};
	ready = (struct spk_fn_ready){
	    .magic = SPK_FN_MAGIC,
	    .n_exports = (uint32_t)n,
	    .exports = (uint64_t)abi_exports,
	    .call_buf = (uint64_t)call_buf,
	    .call_size = BUF_SIZE,
	    .host_buf = (uint64_t)host_buf,
	    .host_size = BUF_SIZE,
	};
	/*
	 * Every call starts right after the hypercall below: the host resets
	 * memory and registers to what they were at READY (unless it keeps
	 * state), and the FPU/SSE state is reloaded from the image saved
	 * here, which the memory reset has restored too.
	 */
	fxsave(fpu_init);
	uint64_t op = SPK_FN_OP_READY, a = (uint64_t)&ready;
	for (;;) {
		fn_hc(op, a);
		fxrstor(fpu_init);
		((struct spk_fn_frame *)call_buf)->status = dispatch();
		op = SPK_FN_OP_RETURN;
		a = 0;
	}
	return 0;
}

uint64_t guest_fn_user_main(uint64_t unused)
{
	int rc = guest_fn_libc_start ? guest_fn_libc_start(serve) : serve(0, NULL, NULL);

	/* initialisation failed: the host's open reports the status */
	fn_hc(SPK_FN_OP_EXIT, (uint64_t)(int64_t)rc);
	return (uint64_t)rc;
}
