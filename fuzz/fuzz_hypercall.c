/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for the hypercall dispatcher without KVM: the embedder
 * table (spk_hypercall_register/lookup/freeze with any numbers, names and
 * order), the dispatch of a hypercall exit (spk_hypercall_dispatch, which
 * the KVM backend calls with the guest's registers: the library's numbers,
 * the embedder's, and numbers nobody has) and ucall decoding against a
 * small guest memory (spk_ucall_decode_mem). Everything is checked
 * against a model of the ABI in abi.h and hypercall.h:
 *
 *   - register answers -ERANGE outside 0x100-0xffff, then -EBUSY once
 *     frozen, -EEXIST for a number taken (messages name the number),
 *     -EINVAL without a name or handler; lookups find exactly what was
 *     registered, with the name cut to 63 bytes;
 *   - the library's numbers become their exits (CPU_UP, CPU_DOWN,
 *     SEND_IPI, SYSTEM_DOWN, RESET with the arguments in place, UCALL as a
 *     HYPERCALL exit) or are answered (VCPU_ID, CONSOLE_WRITE, -ENOSYS for
 *     the rest); CONSOLE_WRITE writes exactly the guest's bytes when they
 *     lie in one readable region and answers -EINVAL or -EFAULT otherwise;
 *   - an embedder number runs its handler once with the guest's arguments
 *     and gives its result, or comes out as a HYPERCALL exit with -ENOSYS;
 *   - a decoded ucall carries the type and arguments, and its strings are
 *     the guest's (NUL within 256 bytes of readable memory, or a counted
 *     text of at most 255 bytes) or "<bad string at 0x...>".
 *
 * Input: a 1-byte header (the vCPU id), then operations, an opcode byte
 * (% 8) and its operands; a number is a mode byte and then, by mode & 3:
 * 0 a byte (0-255), 1 0xf0 + u16, 2 a u64, 3 SPK_HC_MAX - 8 + a byte.
 *   0  register: number, flags byte (bit 0 no name, bit 1 no handler,
 *      bits 4-5 which handler), name length byte (% 80), name bytes
 *   1  lookup: number          2  freeze
 *   3  dispatch: number, six arguments (a mode byte and then, by mode % 3,
 *      u16, u64 or a byte)
 *   4  decode a made-up exit: kind byte (bit 7: HYPERCALL), number, six
 *      arguments
 *   5  guest RAM: u16 gpa, length byte, bytes
 *   6  spk_hypercall_name: number
 *   7  decode a UCALL exit without guest memory: six arguments
 * Guest memory: 64 KiB of RAM at 0, 4 KiB read-only after it, an
 * unpopulated page at 128 KiB; CONSOLE_WRITE goes to a memfd.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <sparkler/exit.h>
#include <sparkler/hypercall.h>
#include <sparkler/log.h>
#include <sparkler/mem.h>

#include "core/internal.h"

#define RAM_SIZE  (64u << 10)
#define ROM_SIZE  4096u
#define HOLE_GPA  (128u << 10)
#define READABLE  (RAM_SIZE + ROM_SIZE) /* RAM and ROM are adjacent */
#define MAX_OPS   256
#define MAX_REGS  256
#define NAME_KEEP 63 /* hypercall.c keeps names to 63 bytes */

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct in {
	const uint8_t *p;
	size_t left;
};

struct reg {
	uint64_t nr;
	spk_hypercall_fn fn;
	void *opaque;
	char name[NAME_KEEP + 1];
};

static struct spk_mem *mem;
static uint8_t *ram, *rom;
static int console_fd;
static struct spk_vcpu *const fake_vcpu = (struct spk_vcpu *)(uintptr_t)0x5ca1ab1e;
static char tokens[4]; /* opaque pointers handed to register */

/* The model of the table, and what the last handler call saw. */
static struct {
	struct reg regs[MAX_REGS];
	unsigned n;
	bool frozen;
	unsigned calls;
	uint64_t nr, args[6];
	void *opaque;
	struct spk_vcpu *vcpu;
} model;

static void quiet(enum spk_log_level level, const char *msg, void *opaque)
{
}

static uint64_t handle(unsigned which, struct spk_vcpu *vcpu, uint64_t nr, const uint64_t args[6],
                       void *opaque)
{
	model.calls++;
	model.nr = nr;
	memcpy(model.args, args, sizeof(model.args));
	model.opaque = opaque;
	model.vcpu = vcpu;
	return nr * 31 + args[0] + which;
}

static uint64_t h0(struct spk_vcpu *v, uint64_t nr, const uint64_t a[6], void *o)
{
	return handle(0, v, nr, a, o);
}

static uint64_t h1(struct spk_vcpu *v, uint64_t nr, const uint64_t a[6], void *o)
{
	return handle(1, v, nr, a, o);
}

static uint64_t h2(struct spk_vcpu *v, uint64_t nr, const uint64_t a[6], void *o)
{
	return handle(2, v, nr, a, o);
}

static uint64_t h3(struct spk_vcpu *v, uint64_t nr, const uint64_t a[6], void *o)
{
	return handle(3, v, nr, a, o);
}

static const spk_hypercall_fn handlers[4] = {h0, h1, h2, h3};

static const struct reg *model_find(uint64_t nr)
{
	for (unsigned i = 0; i < model.n; i++)
		if (model.regs[i].nr == nr)
			return &model.regs[i];
	return NULL;
}

/* ---- the input ------------------------------------------------------------------ */

static uint64_t take(struct in *in, unsigned n)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < n && in->left; i++, in->left--)
		v |= (uint64_t)*in->p++ << (8 * i);
	return v;
}

static uint64_t take_nr(struct in *in)
{
	switch (take(in, 1) & 3) {
	case 0:
		return take(in, 1);
	case 1:
		return 0xf0 + take(in, 2);
	case 2:
		return take(in, 8);
	default:
		return SPK_HC_MAX - 8 + take(in, 1);
	}
}

/* Arguments: small numbers, guest addresses and lengths, anything. */
static void take_args(struct in *in, uint64_t a[6])
{
	for (unsigned i = 0; i < 6; i++) {
		switch (take(in, 1) % 3) {
		case 0:
			a[i] = take(in, 2);
			break;
		case 1:
			a[i] = take(in, 8);
			break;
		default:
			a[i] = take(in, 1);
			break;
		}
	}
}

/* ---- the model of guest memory -------------------------------------------------------- */

static uint8_t byte_at(uint64_t gpa)
{
	return gpa < RAM_SIZE ? ram[gpa] : rom[gpa - RAM_SIZE];
}

/* The string a ucall's gpa points at, as the ABI says it is decoded. */
static void want_str(uint64_t gpa, char *out)
{
	for (uint64_t i = 0; i < SPK_UCALL_STR_MAX; i++) {
		uint64_t a = gpa + i;

		if (a < gpa || a >= READABLE)
			break;
		out[i] = (char)byte_at(a);
		if (!out[i])
			return;
	}
	snprintf(out, SPK_UCALL_STR_MAX, "<bad string at 0x%" PRIx64 ">", gpa);
}

/* A PRINT's counted text; false when it is the bad-string marker. */
static bool want_text(uint64_t gpa, uint64_t len, char *out, uint64_t *n)
{
	*n = len < SPK_UCALL_STR_MAX - 1 ? len : SPK_UCALL_STR_MAX - 1;
	if (*n && (gpa + *n < gpa || gpa + *n > READABLE)) {
		snprintf(out, SPK_UCALL_STR_MAX, "<bad string at 0x%" PRIx64 ">", gpa);
		return false;
	}
	for (uint64_t i = 0; i < *n; i++)
		out[i] = (char)byte_at(gpa + i);
	out[*n] = '\0';
	return true;
}

static void check_ucall(const struct spk_exit *e, const struct spk_ucall *uc, bool with_mem)
{
	const uint64_t *a = e->hypercall.args;
	char want[SPK_UCALL_STR_MAX];
	uint64_t n;

	if (uc->type != a[0] || memcmp(uc->args, a + 1, sizeof(uc->args)) != 0)
		abort();
	if (uc->type == SPK_UCALL_ASSERT && with_mem) {
		want_str(a[1], want);
		if (strcmp(uc->expr, want) != 0)
			abort();
		want_str(a[2], want);
		if (strcmp(uc->file, want) != 0 || uc->line != a[3])
			abort();
	} else if (uc->type == SPK_UCALL_PRINT && with_mem) {
		if (want_text(a[1], a[2], want, &n) ? memcmp(uc->expr, want, n + 1) != 0
		                                    : strcmp(uc->expr, want) != 0)
			abort();
		if (uc->file[0] || uc->line)
			abort();
	} else if (uc->expr[0] || uc->file[0] || uc->line) {
		abort();
	}
	if (memchr(uc->expr, 0, sizeof(uc->expr)) == NULL || !memchr(uc->file, 0, sizeof(uc->file)))
		abort();
}

/* Decode e as the ABI says, with or without guest memory. */
static void decode(const struct spk_exit *e, bool with_mem)
{
	struct spk_ucall uc;
	bool is_ucall = e->kind == SPK_EXIT_HYPERCALL && e->hypercall.nr == SPK_HC_UCALL;
	uint64_t type = e->hypercall.args[0];
	int rc;

	memset(&uc, 0xa5, sizeof(uc));
	rc = spk_ucall_decode_mem(with_mem ? mem : NULL, e, &uc);
	if (!is_ucall || (!with_mem && (type == SPK_UCALL_ASSERT || type == SPK_UCALL_PRINT))) {
		if (rc != -EINVAL)
			abort();
		return;
	}
	if (rc != 0)
		abort();
	check_ucall(e, &uc, with_mem);
}

/* ---- the table ------------------------------------------------------------------------- */

static bool error_names(uint64_t nr)
{
	char hex[24];

	snprintf(hex, sizeof(hex), "0x%" PRIx64, nr);
	return strstr(spk_last_error(), hex) != NULL;
}

static void op_register(struct spk_hypercall_table *t, struct in *in)
{
	uint64_t nr = take_nr(in);
	uint8_t fl = (uint8_t)take(in, 1);
	size_t len = take(in, 1) % 80;
	char name[81];
	spk_hypercall_fn fn = fl & 2 ? NULL : handlers[(fl >> 4) & 3];
	void *opaque = &tokens[(fl >> 4) & 3];
	int want, rc;

	for (size_t i = 0; i < len; i++)
		name[i] = (char)take(in, 1);
	name[len] = '\0';
	if ((fl & 1) || !fn)
		want = -EINVAL;
	else if (nr < SPK_HC_EMBEDDER_BASE || nr > SPK_HC_MAX)
		want = -ERANGE;
	else if (model.frozen)
		want = -EBUSY;
	else if (model_find(nr))
		want = -EEXIST;
	else
		want = 0;
	rc = spk_hypercall_register(t, nr, fl & 1 ? NULL : name, fn, opaque);
	if (rc != want || (rc && !error_names(nr)))
		abort();
	if (rc == 0 && model.n < MAX_REGS) {
		struct reg *r = &model.regs[model.n++];

		*r = (struct reg){.nr = nr, .fn = fn, .opaque = opaque};
		snprintf(r->name, sizeof(r->name), "%s", name);
	}
}

static void op_lookup(struct spk_hypercall_table *t, struct in *in)
{
	uint64_t nr = take_nr(in);
	const struct reg *r = model_find(nr);
	void *opaque = tokens;
	const char *name = "x";
	spk_hypercall_fn fn = spk_hypercall_lookup(t, nr, &opaque, &name);

	if (!r) {
		if (fn || opaque || name)
			abort();
		return;
	}
	if (fn != r->fn || opaque != r->opaque || !name || strcmp(name, r->name) != 0)
		abort();
}

/* ---- dispatch -------------------------------------------------------------------------- */

/* CONSOLE_WRITE: the answer, and the console got exactly the guest's bytes. */
static void check_console(uint64_t gpa, uint64_t len, uint64_t rax)
{
	off_t size = lseek(console_fd, 0, SEEK_END);
	uint8_t got[SPK_HC_CONSOLE_MAX];
	bool one_region = gpa + len >= gpa &&
	                  ((gpa + len <= RAM_SIZE) || (gpa >= RAM_SIZE && gpa + len <= READABLE));

	if (len > SPK_HC_CONSOLE_MAX) {
		if (rax != SPK_HC_EINVAL || size != 0)
			abort();
	} else if (len == 0 || !one_region) {
		if (rax != (len ? SPK_HC_EFAULT : 0) || size != 0)
			abort();
	} else {
		if (rax != len || size != (off_t)len ||
		    pread(console_fd, got, len, 0) != (ssize_t)len ||
		    memcmp(got, gpa < RAM_SIZE ? ram + gpa : rom + (gpa - RAM_SIZE), len) != 0)
			abort();
	}
	if (ftruncate(console_fd, 0) < 0 || lseek(console_fd, 0, SEEK_SET) < 0)
		abort();
}

/* What the library's own number nr must turn into. */
static void check_library(const struct spk_exit *e, uint64_t nr, const uint64_t *a, bool handled,
                          uint64_t rax, uint32_t vcpu_id)
{
	bool exit_kind = nr >= SPK_HC_CPU_ON && nr <= SPK_HC_SYSTEM_RESET;

	if (handled != (!exit_kind && nr != SPK_HC_UCALL && nr != SPK_HC_FN))
		abort();
	if (exit_kind && (e->priv.flags != SPK_COMPLETE_HC_PRIV || e->priv.hc_ret != 0))
		abort(); /* completed with 0 in rax when the caller resumes */
	if (handled && e->priv.flags != 0)
		abort(); /* nothing to complete */
	switch (nr) {
	case SPK_HC_CPU_ON:
		if (e->kind != SPK_EXIT_CPU_UP || e->cpu_up.target_cpu != a[0] ||
		    e->cpu_up.entry_point != a[1] || e->cpu_up.arg != a[2])
			abort();
		break;
	case SPK_HC_CPU_OFF:
		if (e->kind != SPK_EXIT_CPU_DOWN || e->cpu_down.state != a[0])
			abort();
		break;
	case SPK_HC_SEND_IPI:
		if (e->kind != SPK_EXIT_SEND_IPI || e->ipi.target_cpu != a[0] ||
		    e->ipi.target_cpu_aux != 0 || e->ipi.vector != a[1] ||
		    e->ipi.to_self != !!(a[2] & SPK_IPI_TO_SELF) ||
		    e->ipi.to_all != !!(a[2] & SPK_IPI_TO_ALL))
			abort();
		break;
	case SPK_HC_SYSTEM_OFF:
		if (e->kind != SPK_EXIT_SYSTEM_DOWN ||
		    e->system_down.source != SPK_SOURCE_HYPERCALL)
			abort();
		break;
	case SPK_HC_SYSTEM_RESET:
		if (e->kind != SPK_EXIT_RESET || e->reset.source != SPK_SOURCE_HYPERCALL)
			abort();
		break;
	case SPK_HC_CONSOLE_WRITE:
		check_console(a[0], a[1], rax);
		break;
	case SPK_HC_VCPU_ID:
		if (rax != vcpu_id)
			abort();
		break;
	case SPK_HC_UCALL:
		if (e->kind != SPK_EXIT_HYPERCALL || e->hypercall.nr != SPK_HC_UCALL ||
		    e->hypercall.ret != 0 || e->priv.flags != SPK_COMPLETE_HC ||
		    memcmp(e->hypercall.args, a, 6 * sizeof(*a)) != 0)
			abort();
		decode(e, true);
		break;
	case SPK_HC_FN: /* the caller's (a function sandbox answers it), ENOSYS by default */
		if (e->kind != SPK_EXIT_HYPERCALL || e->hypercall.nr != SPK_HC_FN ||
		    e->hypercall.ret != SPK_HC_ENOSYS || e->priv.flags != SPK_COMPLETE_HC)
			abort();
		break;
	default:
		if (rax != SPK_HC_ENOSYS)
			abort();
		break;
	}
}

static void op_dispatch(struct spk_hypercall_table *t, uint32_t vcpu_id, struct in *in)
{
	const struct spk_hc_ctx c = {.vcpu = fake_vcpu,
	                             .vcpu_id = vcpu_id,
	                             .mem = mem,
	                             .console_fd = console_fd,
	                             .table = t};
	uint64_t nr = take_nr(in), a[6], rax = 0xdeadbeef;
	struct spk_exit e;
	unsigned calls = model.calls;
	bool handled;

	take_args(in, a);
	memset(&e, 0xa5, sizeof(e));
	handled = spk_hypercall_dispatch(&c, nr, a, &e, &rax);
	if (nr < SPK_HC_EMBEDDER_BASE) {
		if (model.calls != calls)
			abort(); /* no embedder handler for the library's numbers */
		check_library(&e, nr, a, handled, rax, vcpu_id);
		return;
	}
	const struct reg *r = model_find(nr);
	if (r) {
		if (!handled || model.calls != calls + 1 || model.nr != nr ||
		    model.vcpu != fake_vcpu || model.opaque != r->opaque ||
		    memcmp(model.args, a, sizeof(a)) != 0 ||
		    rax != r->fn(fake_vcpu, nr, a, r->opaque))
			abort();
		return;
	}
	if (handled || model.calls != calls || e.kind != SPK_EXIT_HYPERCALL ||
	    e.hypercall.nr != nr || memcmp(e.hypercall.args, a, sizeof(a)) != 0 ||
	    e.hypercall.ret != SPK_HC_ENOSYS || e.priv.flags != SPK_COMPLETE_HC)
		abort();
}

/* A made-up exit, as an embedder could hand to spk_ucall_decode. */
static void op_decode(struct in *in, bool with_mem)
{
	struct spk_exit e;

	memset(&e, 0, sizeof(e));
	if (with_mem) {
		uint8_t k = (uint8_t)take(in, 1);

		e.kind = k & 0x80 ? SPK_EXIT_HYPERCALL : (enum spk_exit_kind)(k % SPK_EXIT__COUNT);
		e.hypercall.nr = take_nr(in);
	} else {
		e.kind = SPK_EXIT_HYPERCALL;
		e.hypercall.nr = SPK_HC_UCALL;
	}
	take_args(in, e.hypercall.args);
	decode(&e, with_mem);
}

static void op_name(struct in *in)
{
	uint64_t nr = take_nr(in);
	const char *n = spk_hypercall_name(nr);

	if ((n != NULL) != (nr >= SPK_HC_CPU_ON && nr <= SPK_HC_FN))
		abort();
}

/* ---- the target -------------------------------------------------------------------------- */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	spk_log_set(quiet, NULL, SPK_LOG_DEBUG);
	ram = calloc(1, RAM_SIZE);
	rom = malloc(ROM_SIZE);
	console_fd = memfd_create("fuzz-console", MFD_CLOEXEC);
	if (!ram || !rom || console_fd < 0)
		abort();
	for (unsigned i = 0; i < ROM_SIZE; i++)
		rom[i] = i % 61 == 60 ? 0 : (uint8_t)('a' + i % 26); /* strings of 60 */
	if (spk_mem_new(&mem) || spk_mem_add(mem, 0, RAM_SIZE, SPK_MEM_RAM, ram, "ram") ||
	    spk_mem_add(mem, RAM_SIZE, ROM_SIZE, SPK_MEM_READONLY, rom, "rom") ||
	    spk_mem_add(mem, HOLE_GPA, 4096, SPK_MEM_UNPOPULATED, NULL, "hole"))
		abort(); /* a broken harness, not a finding */
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct in in = {.p = data, .left = size};
	struct spk_hypercall_table *t;
	uint32_t vcpu_id = (uint32_t)take(&in, 1);

	memset(ram, 0, RAM_SIZE);
	memset(&model, 0, sizeof(model));
	if (spk_hypercall_table_new(&t))
		abort();
	for (unsigned i = 0; i < MAX_OPS && in.left; i++) {
		switch (take(&in, 1) % 8) {
		case 0:
			op_register(t, &in);
			break;
		case 1:
			op_lookup(t, &in);
			break;
		case 2:
			spk_hypercall_freeze(t);
			model.frozen = true;
			break;
		case 3:
			op_dispatch(t, vcpu_id, &in);
			break;
		case 4:
			op_decode(&in, true);
			break;
		case 5: {
			uint64_t gpa = take(&in, 2), n = take(&in, 1);

			for (uint64_t k = 0; k < n && in.left; k++)
				ram[(gpa + k) % RAM_SIZE] = (uint8_t)take(&in, 1);
			break;
		}
		case 6:
			op_name(&in);
			break;
		default:
			op_decode(&in, false);
			break;
		}
	}
	spk_hypercall_table_free(t);
	return 0;
}
