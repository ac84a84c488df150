/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Function sandboxes (include/sparkler/fn.h): a one-vCPU VM running a
 * guest built on the guest SDK's function runtime, driven call by call
 * from the embedder's thread.
 *
 * The life of a sandbox: open loads the ELF, runs the guest to its READY
 * hypercall, checks what READY names (buffers, export table), and saves
 * that state: the registers and special registers at the exit (rip moved
 * past the hypercall's 2-byte `out`, so that a restored vCPU never
 * repeats it) and a copy of guest RAM. A call writes the frame into the
 * guest's call buffer and runs the vCPU until the guest's RETURN; every
 * exit on the way is handled here (deny by default). Before the next call
 * the state is put back: pages that differ from the copy are copied back
 * (found by comparison until KVM's dirty log is in the library), sregs
 * and regs reloaded.
 *
 * Everything read from guest memory is copied out before it is checked
 * and checked before it is used; the vCPU is stopped meanwhile (one vCPU,
 * on this thread), so the guest cannot change it between check and use.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sparkler/fn.h>
#include <sparkler/loader.h>
#include <sparkler/snapshot.h>
#include <sparkler/vm.h>
#include <sparkler/x86.h>

#include "core/backend.h"
#include "core/internal.h"
#include "fn/frame.h"

#define FN_TABLES      0x10000ull
#define FN_LOAD_MIN    0x100000ull
#define FN_MEM_DEFAULT (8ull << 20)
#define FN_MEM_MIN     (4ull << 20)
#define FN_MEM_MAX     (1ull << 30)
#define FN_BUF_MAX     (16ull << 20)
#define FN_MAX_HOSTS   64
#define PAGE           4096ull
#define HC_OUT_LEN     2 /* out %eax, $SPK_HC_PORT: e7 e4 */

struct fn_host {
	struct fn_sig s;
	spk_fn_host_fn cb;
	void *opaque;
};

struct fn_buf {
	uint64_t gpa, size; /* the whole buffer; data area after SPK_FN_DATA_OFFSET */
	uint8_t *frame, *data;
	uint64_t data_size;
};

struct spk_fn {
	struct spk_fn *next; /* the live list */
	struct spk_fn_config cfg;
	struct spk_vm *vm;
	struct spk_vcpu *vcpu;
	uint8_t *ram, *snap;
	struct spk_snap_dirty *dirty; /* KVM's dirty log since READY; NULL: compare pages */
	int null_fd;
	struct spk_x86_regs regs0;
	struct spk_x86_sregs sregs0;
	struct fn_buf call, host;
	struct fn_sig *exports;
	size_t n_exports;
	struct fn_host hosts[FN_MAX_HOSTS];
	size_t n_hosts;
	struct spk_exit exit; /* the last exit, completed before the next run */
	uint8_t *result;      /* a call's bytes/str result, data_size + 1 */
	uint8_t *scratch;     /* a host call's arguments, data_size + 1 */
	/* under g_lock */
	bool in_call, closing, need_reset;
	pthread_t call_thread;
	struct spk_fn_stats stats; /* the call thread's */
	struct spk_fn_stats pub;   /* a copy, under g_lock, at the end of each call */
	atomic_bool cancel, timed_out;
	/* the time budget's watchdog */
	pthread_t wd;
	bool wd_started, wd_armed, wd_stop;
	pthread_mutex_t wd_lock;
	pthread_cond_t wd_cond;
	struct timespec wd_deadline;
};

struct spk_fn_host_call {
	struct spk_fn *fn;
};

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_idle = PTHREAD_COND_INITIALIZER;
static struct spk_fn *g_live;

static bool live(const struct spk_fn *fn)
{
	for (struct spk_fn *p = g_live; p; p = p->next)
		if (p == fn)
			return true;
	return false;
}

static uint64_t now_ns(clockid_t clk)
{
	struct timespec t;

	clock_gettime(clk, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

/* ---- the time budget ---- */

static void *wd_main(void *opaque)
{
	struct spk_fn *fn = opaque;

	pthread_mutex_lock(&fn->wd_lock);
	while (!fn->wd_stop) {
		if (!fn->wd_armed) {
			pthread_cond_wait(&fn->wd_cond, &fn->wd_lock);
			continue;
		}
		if (pthread_cond_timedwait(&fn->wd_cond, &fn->wd_lock, &fn->wd_deadline) ==
		        ETIMEDOUT &&
		    fn->wd_armed) {
			fn->wd_armed = false;
			atomic_store(&fn->timed_out, true);
			spk_vcpu_kick(fn->vcpu);
		}
	}
	pthread_mutex_unlock(&fn->wd_lock);
	return NULL;
}

static void wd_arm(struct spk_fn *fn, bool on)
{
	if (!fn->wd_started)
		return;
	pthread_mutex_lock(&fn->wd_lock);
	fn->wd_armed = on;
	if (on) {
		uint64_t at = now_ns(CLOCK_MONOTONIC) + fn->cfg.time_budget_ns;
		fn->wd_deadline.tv_sec = (time_t)(at / 1000000000ull);
		fn->wd_deadline.tv_nsec = (long)(at % 1000000000ull);
	}
	pthread_cond_signal(&fn->wd_cond);
	pthread_mutex_unlock(&fn->wd_lock);
}

static int wd_start(struct spk_fn *fn)
{
	pthread_condattr_t ca;
	int rc;

	if (!fn->cfg.time_budget_ns)
		return 0;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&fn->wd_cond, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_init(&fn->wd_lock, NULL);
	rc = pthread_create(&fn->wd, NULL, wd_main, fn);
	if (rc) {
		pthread_cond_destroy(&fn->wd_cond);
		pthread_mutex_destroy(&fn->wd_lock);
		return spk_fail(rc, "fn: no thread for the time budget: %s", strerror(rc));
	}
	fn->wd_started = true;
	return 0;
}

static void wd_stop(struct spk_fn *fn)
{
	if (!fn->wd_started)
		return;
	pthread_mutex_lock(&fn->wd_lock);
	fn->wd_stop = true;
	pthread_cond_signal(&fn->wd_cond);
	pthread_mutex_unlock(&fn->wd_lock);
	pthread_join(fn->wd, NULL);
	pthread_cond_destroy(&fn->wd_cond);
	pthread_mutex_destroy(&fn->wd_lock);
	fn->wd_started = false;
}

/* ---- host calls from the guest ---- */

static struct fn_host *host_find(struct spk_fn *fn, const char *name)
{
	for (size_t i = 0; i < fn->n_hosts; i++)
		if (!strcmp(fn->hosts[i].s.name, name))
			return &fn->hosts[i];
	return NULL;
}

/* Write a host function's result into the host buffer; what rax gets. */
static int64_t host_result(struct spk_fn *fn, const struct fn_host *h, const struct spk_fn_value *r)
{
	struct fn_buf *b = &fn->host;
	struct spk_fn_frame *f = (struct spk_fn_frame *)b->frame;
	struct spk_fn_abi_val v;
	uint64_t used = 0;
	int rc = fn_frame_encode_result(&v, b->data, b->data_size, h->s.rtype, r, &used);

	if (rc < 0)
		return rc;
	memcpy(&f->ret, &v, sizeof(v));
	f->status = 0;
	spk_mem_mark_dirty(spk_vm_mem(fn->vm), b->gpa, SPK_FN_DATA_OFFSET + used);
	return 0;
}

/* SPK_FN_OP_HOST: 0 with *rax for the guest, or an error that ends the call. */
static int host_call(struct spk_fn *fn, uint64_t *rax)
{
	struct spk_fn_frame f;
	struct spk_fn_value args[SPK_FN_MAX_ARGS], ret;
	struct spk_fn_host_call hc = {fn};
	int rc;

	memcpy(&f, fn->host.frame, sizeof(f));
	if (f.magic != SPK_FN_MAGIC || f.nargs > SPK_FN_MAX_ARGS ||
	    !memchr(f.name, 0, sizeof(f.name)))
		return spk_fail(EPROTO,
		                "fn: the guest made a host call with a malformed frame "
		                "(magic 0x%x, %u arguments)",
		                f.magic, f.nargs);
	struct fn_host *h = host_find(fn, f.name);
	if (!h)
		return spk_fail(EPROTO,
		                "fn: the guest called host function \"%s\", which is not "
		                "registered",
		                f.name);
	rc = fn_frame_decode_args(&f, fn->host.data, fn->host.data_size, &h->s, fn->scratch, args);
	if (rc == -EINVAL) {
		*rax = (uint64_t)(int64_t)-EINVAL; /* wrong types: the guest's error to handle */
		return 0;
	}
	if (rc < 0)
		return rc;
	ret = (struct spk_fn_value){.type = (enum spk_fn_type)h->s.rtype};
	rc = h->cb(&hc, args, f.nargs, &ret, h->opaque);
	if (rc > 0 || rc < -4095)
		rc = -EIO;
	*rax = (uint64_t)(int64_t)(rc < 0 ? rc : host_result(fn, h, &ret));
	return 0;
}

bool spk_fn_host_cancelled(const struct spk_fn_host_call *hc)
{
	return hc && (atomic_load(&hc->fn->cancel) || atomic_load(&hc->fn->timed_out));
}

struct spk_fn *spk_fn_host_sandbox(const struct spk_fn_host_call *hc)
{
	return hc ? hc->fn : NULL;
}

/* ---- the run loop ---- */

static const char *vector_name(uint64_t v)
{
	static const char *const names[] = {
	    "#DE divide error",
	    "#DB debug",
	    "NMI",
	    "#BP breakpoint",
	    "#OF overflow",
	    "#BR bound",
	    "#UD invalid opcode",
	    "#NM no FPU",
	    "#DF double fault",
	    "coprocessor overrun",
	    "#TS invalid TSS",
	    "#NP not present",
	    "#SS stack fault",
	    "#GP general protection",
	    "#PF page fault",
	    "reserved",
	    "#MF x87 error",
	    "#AC alignment check",
	    "#MC machine check",
	    "#XM SIMD error",
	};
	return v < SPK_ARRAY_SIZE(names) ? names[v] : "exception";
}

enum fn_phase { PHASE_INIT, PHASE_CALL };

static int on_fn_hypercall(struct spk_fn *fn, enum fn_phase phase, const uint64_t *a, bool *done)
{
	uint64_t rax = 0;
	int rc;

	switch (a[0]) {
	case SPK_FN_OP_READY:
		if (phase != PHASE_INIT)
			return spk_fail(EPROTO, "fn: the guest said READY again during a call");
		*done = true;
		return 0;
	case SPK_FN_OP_RETURN:
		if (phase != PHASE_CALL)
			return spk_fail(EPROTO, "fn: the guest returned from a call before READY");
		*done = true;
		return 0;
	case SPK_FN_OP_HOST:
		if ((rc = host_call(fn, &rax)) < 0)
			return rc;
		break;
	case SPK_FN_OP_FAULT:
		return spk_fail(EFAULT,
		                "fn: the guest took %s (vector %llu, error code 0x%llx) at rip "
		                "0x%llx (cr2 0x%llx, %s)",
		                vector_name(a[1]), (unsigned long long)a[1],
		                (unsigned long long)a[2], (unsigned long long)a[3],
		                (unsigned long long)a[4], (a[5] & 3) ? "user mode" : "kernel mode");
	case SPK_FN_OP_EXIT:
		return spk_fail(EPROTO, "fn: the guest exited with status %lld%s", (long long)a[1],
		                phase == PHASE_INIT ? " during its initialisation" : "");
	case SPK_FN_OP_MEMSIZE:
		rax = fn->cfg.mem_size;
		break;
	case SPK_FN_OP_TIME:
		rax = now_ns(a[1] == 0 ? CLOCK_REALTIME : CLOCK_MONOTONIC);
		break;
	default:
		return spk_fail(EPROTO,
		                "fn: the guest made function hypercall %llu, which does not exist",
		                (unsigned long long)a[0]);
	}
	spk_exit_complete_read(&fn->exit, rax);
	return 0;
}

static int on_other_exit(struct spk_fn *fn, const struct spk_exit *e)
{
	char what[256];

	if (e->kind == SPK_EXIT_HYPERCALL && e->hypercall.nr == SPK_HC_UCALL) {
		struct spk_ucall uc;

		if (spk_ucall_decode(fn->vcpu, e, &uc) == 0 && uc.type == SPK_UCALL_ASSERT)
			return spk_fail(EFAULT, "fn: guest assertion failed: %s at %s:%llu",
			                uc.expr, uc.file, (unsigned long long)uc.line);
	}
	spk_exit_format(e, what, sizeof(what));
	if (e->kind == SPK_EXIT_INTERNAL_ERROR ||
	    (e->kind == SPK_EXIT_RESET && e->reset.source == SPK_SOURCE_TRIPLE_FAULT))
		return spk_fail(EFAULT, "fn: the guest crashed: %s", what);
	return spk_fail(EPROTO, "fn: the guest made an exit a function sandbox does not allow: %s",
	                what);
}

/* Run until the guest says READY (init) or RETURN (call). */
static int run(struct spk_fn *fn, enum fn_phase phase)
{
	uint64_t exits = 0;
	bool done = false;
	int rc = 0;

	atomic_store(&fn->timed_out, false);
	wd_arm(fn, true);
	while (!done) {
		if (atomic_load(&fn->cancel)) {
			rc = spk_fail(ECANCELED, "fn: the call was cancelled");
			break;
		}
		if (atomic_load(&fn->timed_out)) {
			rc =
			    spk_fail(ETIMEDOUT, "fn: the call ran out of its time budget (%llu ns)",
			             (unsigned long long)fn->cfg.time_budget_ns);
			break;
		}
		if (fn->cfg.exit_budget && exits >= fn->cfg.exit_budget) {
			rc = spk_fail(EDQUOT, "fn: the call used up its exit budget (%llu exits)",
			              (unsigned long long)fn->cfg.exit_budget);
			break;
		}
		if ((rc = spk_vcpu_run(fn->vcpu, &fn->exit)) < 0)
			break;
		exits++;
		if (fn->exit.kind == SPK_EXIT_NONE || fn->exit.kind == SPK_EXIT_CANCELLED)
			continue; /* console output; a kick (the checks above tell which) */
		if (fn->exit.kind == SPK_EXIT_HYPERCALL && fn->exit.hypercall.nr == SPK_HC_FN)
			rc = on_fn_hypercall(fn, phase, fn->exit.hypercall.args, &done);
		else
			rc = on_other_exit(fn, &fn->exit);
		if (rc < 0)
			break;
	}
	wd_arm(fn, false);
	fn->stats.last_exits = exits;
	return rc;
}

/* ---- reset ---- */

/* Copy back the pages the dirty log names (RAM is one region at 0). */
static int reset_logged(struct spk_fn *fn, uint64_t *pages)
{
	struct spk_snap_dirty *d = fn->dirty;
	int rc;

	for (size_t r = 0; r < d->n_regions; r++)
		memset(d->region[r].bits, 0, (d->region[r].pages + 63) / 64 * 8);
	if ((rc = spk_vm_dirty_log_fetch(fn->vm, d)) < 0)
		return rc;
	for (size_t r = 0; r < d->n_regions; r++)
		for (uint64_t w = 0; w < (d->region[r].pages + 63) / 64; w++)
			for (uint64_t bits = d->region[r].bits[w]; bits; bits &= bits - 1) {
				uint64_t page = w * 64 + (uint64_t)__builtin_ctzll(bits);
				uint64_t off = d->region[r].gpa + page * PAGE;

				if (page >= d->region[r].pages || off + PAGE > fn->cfg.mem_size)
					continue;
				memcpy(fn->ram + off, fn->snap + off, PAGE);
				(*pages)++;
			}
	return 0;
}

/* Without a dirty log: compare every page with the saved copy. */
static void reset_compared(struct spk_fn *fn, uint64_t *pages)
{
	for (uint64_t off = 0; off < fn->cfg.mem_size; off += PAGE)
		if (memcmp(fn->ram + off, fn->snap + off, PAGE) != 0) {
			memcpy(fn->ram + off, fn->snap + off, PAGE);
			(*pages)++;
		}
}

static int reset(struct spk_fn *fn)
{
	uint64_t t0 = now_ns(CLOCK_MONOTONIC), pages = 0;

	/*
	 * A call that ended right after a port read the library answered (an
	 * exit or time budget, a cancel) leaves KVM the read's completion for
	 * the next KVM_RUN: rax or memory (`ins`), and rip past the
	 * instruction, which would undo the registers loaded below and send
	 * the next call back into the old one. Finish it first, before the
	 * memory copy-back (an `ins` completion writes guest memory).
	 */
	spk_exit_complete_read(&fn->exit, 0);
	if (spk_vcpu_flush_exit(fn->vcpu) < 0)
		return spk_fail(EIO, "fn: finishing the vCPU's last exit failed: %s",
		                spk_last_error());
	if (!fn->dirty)
		reset_compared(fn, &pages);
	else if (reset_logged(fn, &pages) < 0)
		return spk_fail(EIO, "fn: reading the dirty log failed: %s", spk_last_error());
	if (spk_vcpu_set_sregs(fn->vcpu, &fn->sregs0) < 0 ||
	    spk_vcpu_set_regs(fn->vcpu, &fn->regs0) < 0)
		return spk_fail(EIO, "fn: resetting the vCPU failed: %s", spk_last_error());
	fn->stats.resets++;
	fn->stats.last_reset_pages = pages;
	fn->stats.last_reset_ns = now_ns(CLOCK_MONOTONIC) - t0;
	fn->need_reset = false;
	return 0;
}

/* ---- open ---- */

static int buf_check(struct spk_fn *fn, struct fn_buf *b, uint64_t gpa, uint64_t size,
                     const char *what)
{
	uint64_t end;

	if (size < SPK_FN_DATA_OFFSET + 64 || size > FN_BUF_MAX || gpa < FN_LOAD_MIN ||
	    __builtin_add_overflow(gpa, size, &end) || end > fn->cfg.mem_size)
		return spk_fail(EPROTO,
		                "fn: the guest's %s buffer (0x%llx, %llu bytes) is not inside its "
		                "RAM above 1 MiB, or not %d bytes to 16 MiB",
		                what, (unsigned long long)gpa, (unsigned long long)size,
		                SPK_FN_DATA_OFFSET + 64);
	b->gpa = gpa;
	b->size = size;
	b->frame = fn->ram + gpa;
	b->data = b->frame + SPK_FN_DATA_OFFSET;
	b->data_size = size - SPK_FN_DATA_OFFSET;
	return 0;
}

static int read_exports(struct spk_fn *fn, const struct spk_fn_ready *r)
{
	struct spk_mem *mem = spk_vm_mem(fn->vm);

	if (r->n_exports > SPK_FN_MAX_EXPORTS)
		return spk_fail(EPROTO, "fn: the guest exports %u functions, more than %d",
		                r->n_exports, SPK_FN_MAX_EXPORTS);
	fn->exports = calloc(r->n_exports ? r->n_exports : 1, sizeof(*fn->exports));
	if (!fn->exports)
		return spk_fail(ENOMEM, "fn: no memory for the export table");
	for (uint32_t i = 0; i < r->n_exports; i++) {
		struct spk_fn_abi_export e;
		char name[SPK_FN_NAME_MAX], sig[SPK_FN_SIG_MAX];

		if (spk_mem_read(mem, r->exports + i * sizeof(e), &e, sizeof(e)) < 0 ||
		    spk_mem_read_str(mem, e.name, name, sizeof(name)) < 0 ||
		    spk_mem_read_str(mem, e.sig, sig, sizeof(sig)) < 0)
			return spk_fail(EPROTO, "fn: export %u of the guest: unreadable: %s", i,
			                spk_last_error());
		if (fn_sig_parse(name, sig, &fn->exports[i]) < 0)
			return spk_fail(EPROTO, "fn: export %u of the guest: %s", i,
			                spk_last_error());
	}
	fn->n_exports = r->n_exports;
	return 0;
}

/* The guest said READY: check what it names, save the state. */
static int take_ready(struct spk_fn *fn)
{
	struct spk_fn_ready r;
	uint8_t insn[HC_OUT_LEN];
	int rc;

	if (spk_mem_read(spk_vm_mem(fn->vm), fn->exit.hypercall.args[1], &r, sizeof(r)) < 0)
		return spk_fail(EPROTO, "fn: the guest's READY points outside its memory");
	if (r.magic != SPK_FN_MAGIC)
		return spk_fail(EPROTO,
		                "fn: the guest's READY has magic 0x%x, not 0x%x (an SDK of "
		                "another version?)",
		                r.magic, SPK_FN_MAGIC);
	if ((rc = buf_check(fn, &fn->call, r.call_buf, r.call_size, "call")) < 0 ||
	    (rc = buf_check(fn, &fn->host, r.host_buf, r.host_size, "host")) < 0)
		return rc;
	if (r.call_buf < r.host_buf + r.host_size && r.host_buf < r.call_buf + r.call_size)
		return spk_fail(EPROTO, "fn: the guest's call and host buffers overlap");
	if ((rc = read_exports(fn, &r)) < 0)
		return rc;
	uint64_t scratch =
	    fn->call.data_size > fn->host.data_size ? fn->call.data_size : fn->host.data_size;
	fn->result = malloc(scratch + 1);
	fn->scratch = malloc(scratch + 1);
	fn->snap = malloc(fn->cfg.mem_size);
	if (!fn->result || !fn->scratch || !fn->snap)
		return spk_fail(ENOMEM, "fn: no memory for the saved state");
	if ((rc = spk_vcpu_get_regs(fn->vcpu, &fn->regs0)) < 0 ||
	    (rc = spk_vcpu_get_sregs(fn->vcpu, &fn->sregs0)) < 0)
		return rc;
	/* restored calls start after the hypercall, never on it */
	if (spk_mem_read(spk_vm_mem(fn->vm), fn->regs0.rip, insn, sizeof(insn)) == 0 &&
	    insn[0] == 0xe7 && insn[1] == SPK_HC_PORT)
		fn->regs0.rip += HC_OUT_LEN;
	memcpy(fn->snap, fn->ram, fn->cfg.mem_size);
	/* from here on KVM logs the pages the guest writes; without a log
	 * (a KVM that refuses it) resets compare pages instead */
	if (spk_snap_dirty_new(spk_vm_mem(fn->vm), &fn->dirty) < 0)
		return spk_fail(ENOMEM, "fn: no memory for the dirty-page set");
	if (spk_vm_dirty_log_start(fn->vm) < 0) {
		spk_log(SPK_LOG_WARN, "fn: no dirty log (%s): resets compare every page",
		        spk_last_error());
		spk_snap_dirty_free(fn->dirty);
		fn->dirty = NULL;
	}
	return 0;
}

static int config_check(const struct spk_fn_config *in, struct spk_fn_config *c)
{
	*c = in ? *in : (struct spk_fn_config){0};
	if (!c->mem_size)
		c->mem_size = FN_MEM_DEFAULT;
	if (c->mem_size < FN_MEM_MIN || c->mem_size > FN_MEM_MAX || c->mem_size % (2ull << 20))
		return spk_fail(EINVAL, "fn: mem_size %llu: need 4 MiB to 1 GiB in 2 MiB steps",
		                (unsigned long long)c->mem_size);
	if (c->vcpus > 1)
		return spk_fail(EINVAL, "fn: %u vCPUs: the function runtime runs on one", c->vcpus);
	if (c->flags & ~SPK_FN_KEEP_STATE)
		return spk_fail(EINVAL, "fn: unknown flags 0x%x", c->flags & ~SPK_FN_KEEP_STATE);
	if (c->console_fd < -1)
		return spk_fail(EINVAL, "fn: console_fd %d", c->console_fd);
	return 0;
}

static int build_vm(struct spk_fn *fn, const char *path)
{
	struct spk_vm_config vc = {.max_vcpus = 1, .kick_signal = fn->cfg.kick_signal};
	struct spk_x86_long_mode lm;
	struct spk_elf_info elf;
	void *host;
	int rc;

	if (fn->cfg.console_fd == -1) {
		fn->null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
		if (fn->null_fd < 0)
			return spk_fail(errno, "fn: /dev/null: %s", strerror(errno));
		vc.console_fd = fn->null_fd;
	} else {
		vc.console_fd = fn->cfg.console_fd;
	}
	if ((rc = spk_vm_create(&vc, &fn->vm)) < 0 ||
	    (rc = spk_vm_add_memory(fn->vm, 0, fn->cfg.mem_size, SPK_MEM_RAM, "ram", &host)) < 0)
		return rc;
	fn->ram = host;
	if ((rc = spk_elf_load_file(spk_vm_mem(fn->vm), path, fn->cfg.mem_size, &elf)) < 0)
		return rc;
	if (elf.lowest < FN_LOAD_MIN)
		return spk_fail(ENOEXEC,
		                "fn: %s loads at 0x%llx, below 1 MiB where the page tables are",
		                path, (unsigned long long)elf.lowest);
	/* the SDK closes every port to CPL3 at boot and opens the hypercall port */
	if ((rc = spk_x86_build_long_mode(spk_vm_mem(fn->vm), FN_TABLES, fn->cfg.mem_size, &lm)) <
	        0 ||
	    (rc = spk_x86_long_mode_allow_ports(spk_vm_mem(fn->vm), &lm, 0, 0x10000)) < 0 ||
	    (rc = spk_vcpu_create(fn->vm, 0, &fn->vcpu)) < 0)
		return rc;
	const struct spk_x86_entry entry = {.rip = elf.entry, .cpl = 0};
	if ((rc = spk_x86_vcpu_enter_long_mode(fn->vcpu, &lm, &entry)) < 0)
		return rc;
	spk_vcpu_set_flags(fn->vcpu, SPK_VCPU_RETURN_HANDLED);
	return 0;
}

static void fn_free(struct spk_fn *fn)
{
	wd_stop(fn);
	spk_vm_destroy(fn->vm);
	if (fn->null_fd >= 0)
		close(fn->null_fd);
	free(fn->exports);
	spk_snap_dirty_free(fn->dirty);
	free(fn->snap);
	free(fn->result);
	free(fn->scratch);
	free(fn);
}

int spk_fn_open(const char *path, const struct spk_fn_config *cfg, struct spk_fn **out)
{
	struct spk_fn *fn;
	int rc;

	if (!path || !out)
		return spk_fail(EINVAL, "fn: open needs %s",
		                !path ? "a guest path" : "an out pointer");
	*out = NULL;
	fn = calloc(1, sizeof(*fn));
	if (!fn)
		return spk_fail(ENOMEM, "fn: no memory");
	fn->null_fd = -1;
	if ((rc = config_check(cfg, &fn->cfg)) < 0 || (rc = build_vm(fn, path)) < 0 ||
	    (rc = wd_start(fn)) < 0)
		goto fail;
	if ((rc = run(fn, PHASE_INIT)) < 0) {
		char why[512];
		snprintf(why, sizeof(why), "%s", spk_last_error());
		rc = spk_fail(-rc, "fn: %s did not initialise: %s", path, why);
		goto fail;
	}
	if ((rc = take_ready(fn)) < 0)
		goto fail;
	fn->stats.mem_size = fn->cfg.mem_size;
	fn->pub = fn->stats;
	pthread_mutex_lock(&g_lock);
	fn->next = g_live;
	g_live = fn;
	pthread_mutex_unlock(&g_lock);
	*out = fn;
	return 0;
fail:
	fn_free(fn);
	return rc;
}

int spk_fn_close(struct spk_fn *fn)
{
	if (!fn)
		return 0;
	pthread_mutex_lock(&g_lock);
	if (!live(fn)) {
		pthread_mutex_unlock(&g_lock);
		return spk_fail(EINVAL, "fn: close of a sandbox that is not open");
	}
	if (fn->in_call && pthread_equal(fn->call_thread, pthread_self())) {
		pthread_mutex_unlock(&g_lock);
		return spk_fail(EDEADLK,
		                "fn: close from inside the sandbox's own call (a host function)");
	}
	for (struct spk_fn **p = &g_live; *p; p = &(*p)->next)
		if (*p == fn) {
			*p = fn->next;
			break;
		}
	fn->closing = true;
	if (fn->in_call) {
		atomic_store(&fn->cancel, true);
		spk_vcpu_kick(fn->vcpu);
	}
	while (fn->in_call)
		pthread_cond_wait(&g_idle, &g_lock);
	pthread_mutex_unlock(&g_lock);
	fn_free(fn);
	return 0;
}

size_t spk_fn_exports(const struct spk_fn *fn)
{
	size_t n = 0;

	pthread_mutex_lock(&g_lock);
	if (live(fn))
		n = fn->n_exports;
	pthread_mutex_unlock(&g_lock);
	if (!fn || !n)
		spk_fail(EINVAL, "fn: %s", !fn ? "NULL sandbox" : "no exports (or not open)");
	return n;
}

const char *spk_fn_export_name(const struct spk_fn *fn, size_t i, const char **sig)
{
	const char *name = NULL;

	pthread_mutex_lock(&g_lock);
	if (live(fn) && i < fn->n_exports) {
		name = fn->exports[i].name;
		if (sig)
			*sig = fn->exports[i].sig;
	}
	pthread_mutex_unlock(&g_lock);
	if (!name)
		spk_fail(EINVAL, "fn: no export %zu (or the sandbox is not open)", i);
	return name;
}

int spk_fn_register_host(struct spk_fn *fn, const char *name, const char *sig, spk_fn_host_fn cb,
                         void *opaque)
{
	struct fn_sig s;
	int rc = 0;

	if (!fn || !name || !sig || !cb)
		return spk_fail(EINVAL,
		                "fn: register_host needs a sandbox, name, signature and function");
	if ((rc = fn_sig_parse(name, sig, &s)) < 0)
		return rc;
	pthread_mutex_lock(&g_lock);
	if (!live(fn))
		rc = spk_fail(EINVAL, "fn: register_host on a sandbox that is not open");
	else if (fn->in_call)
		rc = spk_fail(EBUSY, "fn: register_host during a call");
	else if (host_find(fn, name))
		rc = spk_fail(EEXIST, "fn: host function %s is already registered", name);
	else if (fn->n_hosts == FN_MAX_HOSTS)
		rc = spk_fail(ENOSPC, "fn: %d host functions already", FN_MAX_HOSTS);
	else
		fn->hosts[fn->n_hosts++] = (struct fn_host){s, cb, opaque};
	pthread_mutex_unlock(&g_lock);
	return rc;
}

int spk_fn_cancel(struct spk_fn *fn)
{
	int rc = 0;

	pthread_mutex_lock(&g_lock);
	if (!live(fn))
		rc = spk_fail(EINVAL, "fn: cancel of a sandbox that is not open");
	else if (!fn->in_call)
		rc = spk_fail(ESRCH, "fn: cancel: no call is running");
	else {
		atomic_store(&fn->cancel, true);
		spk_vcpu_kick(fn->vcpu);
	}
	pthread_mutex_unlock(&g_lock);
	return rc;
}

int spk_fn_stats(struct spk_fn *fn, struct spk_fn_stats *out)
{
	int rc = 0;

	if (!out)
		return spk_fail(EINVAL, "fn: stats needs an out pointer");
	pthread_mutex_lock(&g_lock);
	if (!live(fn))
		rc = spk_fail(EINVAL, "fn: stats of a sandbox that is not open");
	else
		*out = fn->pub;
	pthread_mutex_unlock(&g_lock);
	return rc;
}

/* ---- calls ---- */

static const struct fn_sig *export_find(struct spk_fn *fn, const char *name, size_t *index)
{
	for (size_t i = 0; i < fn->n_exports; i++)
		if (!strcmp(fn->exports[i].name, name)) {
			*index = i;
			return &fn->exports[i];
		}
	return NULL;
}

static int encode_args(struct spk_fn *fn, const struct fn_sig *s, size_t index,
                       const struct spk_fn_value *args, unsigned nargs)
{
	struct spk_fn_frame f;
	int rc =
	    fn_frame_encode(&f, fn->call.data, fn->call.data_size, s, (uint32_t)index, args, nargs);

	if (rc < 0)
		return rc;
	memcpy(fn->call.frame, &f, sizeof(f));
	/* written through the host mapping: the dirty log must hear of it */
	spk_mem_mark_dirty(spk_vm_mem(fn->vm), fn->call.gpa, SPK_FN_DATA_OFFSET + f.args_end);
	return 0;
}

static int decode_result(struct spk_fn *fn, const struct fn_sig *s, struct spk_fn_value *result)
{
	struct spk_fn_frame f;

	memcpy(&f, fn->call.frame, sizeof(f));
	return fn_frame_decode_result(&f, fn->call.data, fn->call.data_size, s, fn->result, result);
}

static int call_locked_out(struct spk_fn *fn, const char *name, const struct spk_fn_value *args,
                           unsigned nargs, struct spk_fn_value *result)
{
	const struct fn_sig *s;
	size_t index;
	int rc;

	if (!(s = export_find(fn, name, &index)))
		return spk_fail(ENOENT, "fn: the guest exports no function \"%s\"", name);
	if (fn->need_reset && (rc = reset(fn)) < 0)
		return rc;
	if ((rc = encode_args(fn, s, index, args, nargs)) < 0)
		return rc;
	if (!(fn->cfg.flags & SPK_FN_KEEP_STATE))
		fn->need_reset = true;
	spk_exit_complete_read(&fn->exit, 0); /* the pending READY or RETURN */
	fn->stats.calls++;
	if ((rc = run(fn, PHASE_CALL)) == 0)
		rc = decode_result(fn, s, result);
	if (rc < 0) {
		fn->stats.failed++;
		fn->need_reset = true;
	}
	return rc;
}

int spk_fn_call(struct spk_fn *fn, const char *name, const struct spk_fn_value *args,
                unsigned nargs, struct spk_fn_value *result)
{
	int rc = 0;

	if (!fn || !name)
		return spk_fail(EINVAL, "fn: call needs a sandbox and a function name");
	if (result)
		*result = (struct spk_fn_value){.type = SPK_FN_VOID};
	pthread_mutex_lock(&g_lock);
	if (!live(fn))
		rc = spk_fail(EINVAL, "fn: call on a sandbox that is not open");
	else if (fn->closing)
		rc = spk_fail(ESHUTDOWN, "fn: the sandbox is being closed");
	else if (fn->in_call)
		rc = spk_fail(EBUSY, "fn: another thread is calling this sandbox");
	else {
		fn->in_call = true;
		fn->call_thread = pthread_self();
		atomic_store(&fn->cancel, false);
	}
	pthread_mutex_unlock(&g_lock);
	if (rc < 0)
		return rc;

	rc = call_locked_out(fn, name, args, nargs, result);

	pthread_mutex_lock(&g_lock);
	fn->pub = fn->stats;
	fn->in_call = false;
	pthread_cond_broadcast(&g_idle);
	pthread_mutex_unlock(&g_lock);
	return rc;
}
