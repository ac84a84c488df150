// SPDX-License-Identifier: Apache-2.0
/*
 * The embedder's hypercall table: a sorted array searched by binary
 * search. Registrations take the table lock; once the table is frozen (the
 * VM has run) it never changes, so vCPU threads look handlers up without
 * any lock. Names are allocated separately so that a name handed out by
 * spk_hypercall_lookup() stays valid while the array grows.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sparkler/exit.h>
#include <sparkler/hypercall.h>
#include <sparkler/mem.h>
#include <sparkler/vcpu.h>
#include <sparkler/vm.h>

#include "core/internal.h"

/* Handler names are for messages: longer ones are truncated. */
#define HC_NAME_MAX 64

struct hc_entry {
	uint64_t nr;
	spk_hypercall_fn fn;
	void *opaque;
	char *name;
};

struct spk_hypercall_table {
	pthread_mutex_t lock; /* serialises registrations */
	bool frozen;          /* atomic */
	struct hc_entry *v;   /* sorted by nr */
	size_t n;
	size_t cap;
};

int spk_hypercall_table_new(struct spk_hypercall_table **out)
{
	struct spk_hypercall_table *t;
	int rc;

	if (!out)
		return spk_fail(EINVAL, "hypercall: new table without an out pointer");
	t = calloc(1, sizeof(*t));
	if (!t)
		return spk_fail(ENOMEM, "hypercall: out of memory for the table");
	rc = pthread_mutex_init(&t->lock, NULL);
	if (rc)
		goto err_free;
	*out = t;
	return 0;

err_free:
	free(t);
	return spk_fail(rc, "hypercall: cannot create the table lock: %s", strerror(rc));
}

void spk_hypercall_table_free(struct spk_hypercall_table *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->n; i++)
		free(t->v[i].name);
	free(t->v);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

/* Index of the first entry with a number >= nr. */
static size_t lower_bound(const struct spk_hypercall_table *t, uint64_t nr)
{
	size_t lo = 0, hi = t->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (t->v[mid].nr < nr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int table_grow(struct spk_hypercall_table *t)
{
	size_t cap = t->cap ? t->cap * 2 : 16;
	struct hc_entry *v;

	if (t->n < t->cap)
		return 0;
	v = realloc(t->v, cap * sizeof(*v));
	if (!v)
		return spk_fail(ENOMEM, "hypercall: out of memory for %zu handlers", cap);
	t->v = v;
	t->cap = cap;
	return 0;
}

/* Insert under the table lock. */
static int table_insert(struct spk_hypercall_table *t, uint64_t nr, const char *name,
                        spk_hypercall_fn fn, void *opaque)
{
	size_t i = lower_bound(t, nr);
	char *copy;
	int rc;

	if (t->frozen)
		return spk_fail(EBUSY,
		                "hypercall: cannot register 0x%" PRIx64 " (\"%s\"):"
		                " the table is frozen (the VM has run)",
		                nr, name);
	if (i < t->n && t->v[i].nr == nr)
		return spk_fail(EEXIST,
		                "hypercall: cannot register 0x%" PRIx64 " (\"%s\"):"
		                " already taken by \"%s\"",
		                nr, name, t->v[i].name);
	rc = table_grow(t);
	if (rc)
		return rc;
	copy = strndup(name, HC_NAME_MAX - 1);
	if (!copy)
		return spk_fail(ENOMEM, "hypercall: out of memory for the name \"%s\"", name);
	memmove(&t->v[i + 1], &t->v[i], (t->n - i) * sizeof(*t->v));
	t->v[i] = (struct hc_entry){.nr = nr, .fn = fn, .opaque = opaque, .name = copy};
	t->n++;
	return 0;
}

int spk_hypercall_register(struct spk_hypercall_table *t, uint64_t nr, const char *name,
                           spk_hypercall_fn fn, void *opaque)
{
	int rc;

	if (!t || !fn || !name)
		return spk_fail(EINVAL, "hypercall: register 0x%" PRIx64 " without %s", nr,
		                !t    ? "a table"
		                : !fn ? "a handler"
		                      : "a name");
	if (nr < SPK_HC_EMBEDDER_BASE || nr > SPK_HC_MAX)
		return spk_fail(ERANGE,
		                "hypercall: 0x%" PRIx64 " (\"%s\") is outside the"
		                " embedder's range 0x%x-0x%x",
		                nr, name, SPK_HC_EMBEDDER_BASE, SPK_HC_MAX);
	pthread_mutex_lock(&t->lock);
	rc = table_insert(t, nr, name, fn, opaque);
	pthread_mutex_unlock(&t->lock);
	return rc;
}

void spk_hypercall_freeze(struct spk_hypercall_table *t)
{
	if (!t)
		return;
	pthread_mutex_lock(&t->lock);
	/* Publishes the final table to the lock-free lookups. */
	__atomic_store_n(&t->frozen, true, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&t->lock);
}

static const struct hc_entry *table_find(const struct spk_hypercall_table *t, uint64_t nr)
{
	size_t i = lower_bound(t, nr);

	return i < t->n && t->v[i].nr == nr ? &t->v[i] : NULL;
}

spk_hypercall_fn spk_hypercall_lookup(const struct spk_hypercall_table *t, uint64_t nr,
                                      void **opaque, const char **name)
{
	pthread_mutex_t *lock;
	struct hc_entry found = {0};
	const struct hc_entry *e;

	if (!t)
		return NULL;
	if (__atomic_load_n(&t->frozen, __ATOMIC_ACQUIRE)) {
		e = table_find(t, nr);
		if (e)
			found = *e;
	} else {
		/* Before the freeze a registration may be moving the array. */
		lock = (pthread_mutex_t *)&t->lock;
		pthread_mutex_lock(lock);
		e = table_find(t, nr);
		if (e)
			found = *e;
		pthread_mutex_unlock(lock);
	}
	if (opaque)
		*opaque = found.opaque;
	if (name)
		*name = found.name;
	return found.fn;
}

const char *spk_hypercall_name(uint64_t nr)
{
	switch (nr) {
	case SPK_HC_CPU_ON:
		return "CPU_ON";
	case SPK_HC_CPU_OFF:
		return "CPU_OFF";
	case SPK_HC_SEND_IPI:
		return "SEND_IPI";
	case SPK_HC_SYSTEM_OFF:
		return "SYSTEM_OFF";
	case SPK_HC_SYSTEM_RESET:
		return "SYSTEM_RESET";
	case SPK_HC_CONSOLE_WRITE:
		return "CONSOLE_WRITE";
	case SPK_HC_UCALL:
		return "UCALL";
	case SPK_HC_FN:
		return "FN";
	case SPK_HC_VCPU_ID:
		return "VCPU_ID";
	}
	return NULL;
}

/* ---- dispatch ---- */

/* SPK_HC_CONSOLE_WRITE: the bytes, straight from guest memory. */
static uint64_t console_write(const struct spk_hc_ctx *c, uint64_t gpa, uint64_t len)
{
	if (len > SPK_HC_CONSOLE_MAX)
		return SPK_HC_EINVAL;
	if (len == 0)
		return 0;
	const char *p = spk_mem_ptr(c->mem, gpa, len, SPK_MEM_R);
	if (!p)
		return SPK_HC_EFAULT;
	for (uint64_t done = 0; done < len;) {
		ssize_t n = write(c->console_fd, p + done, len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return done ? done : (uint64_t)(-(int64_t)EIO);
		done += (uint64_t)n;
	}
	return len;
}

/* The library's own numbers: handled here, or turned into their kind. */
static bool library_hypercall(const struct spk_hc_ctx *c, struct spk_exit *exit, uint64_t nr,
                              const uint64_t *a, uint64_t *rax)
{
	exit->priv.flags = SPK_COMPLETE_HC_PRIV;
	exit->priv.hc_ret = 0;
	switch (nr) {
	case SPK_HC_CPU_ON:
		exit->kind = SPK_EXIT_CPU_UP;
		exit->cpu_up.target_cpu = a[0];
		exit->cpu_up.entry_point = a[1];
		exit->cpu_up.arg = a[2];
		return false;
	case SPK_HC_CPU_OFF:
		exit->kind = SPK_EXIT_CPU_DOWN;
		exit->cpu_down.state = a[0];
		return false;
	case SPK_HC_SEND_IPI:
		exit->kind = SPK_EXIT_SEND_IPI;
		exit->ipi.target_cpu = a[0];
		exit->ipi.target_cpu_aux = 0;
		exit->ipi.vector = a[1];
		exit->ipi.to_self = a[2] & SPK_IPI_TO_SELF;
		exit->ipi.to_all = a[2] & SPK_IPI_TO_ALL;
		return false;
	case SPK_HC_SYSTEM_OFF:
		exit->kind = SPK_EXIT_SYSTEM_DOWN;
		exit->system_down.source = SPK_SOURCE_HYPERCALL;
		return false;
	case SPK_HC_SYSTEM_RESET:
		exit->kind = SPK_EXIT_RESET;
		exit->reset.source = SPK_SOURCE_HYPERCALL;
		return false;
	case SPK_HC_CONSOLE_WRITE:
		*rax = console_write(c, a[0], a[1]);
		exit->priv.flags = 0;
		return true;
	case SPK_HC_VCPU_ID:
		*rax = c->vcpu_id;
		exit->priv.flags = 0;
		return true;
	case SPK_HC_FN: /* function sandboxes (src/fn/) answer it; else ENOSYS */
		exit->kind = SPK_EXIT_HYPERCALL;
		exit->priv.flags = SPK_COMPLETE_HC;
		exit->hypercall.ret = SPK_HC_ENOSYS;
		return false;
	case SPK_HC_UCALL:
		exit->kind = SPK_EXIT_HYPERCALL;
		exit->priv.flags = SPK_COMPLETE_HC;
		exit->hypercall.ret = 0;
		return false;
	default:
		/* an unknown library number: the guest learns it does not exist */
		*rax = SPK_HC_ENOSYS;
		exit->priv.flags = 0;
		return true;
	}
}

bool spk_hypercall_dispatch(const struct spk_hc_ctx *c, uint64_t nr, const uint64_t args[6],
                            struct spk_exit *exit, uint64_t *rax)
{
	exit->kind = SPK_EXIT_HYPERCALL;
	exit->hypercall.nr = nr;
	memcpy(exit->hypercall.args, args, sizeof(exit->hypercall.args));
	if (nr < SPK_HC_EMBEDDER_BASE)
		return library_hypercall(c, exit, nr, args, rax);

	void *opaque;
	spk_hypercall_fn fn = spk_hypercall_lookup(c->table, nr, &opaque, NULL);
	if (fn) {
		*rax = fn(c->vcpu, nr, args, opaque);
		return true;
	}
	exit->hypercall.ret = SPK_HC_ENOSYS; /* if the caller does not complete it */
	exit->priv.flags = SPK_COMPLETE_HC;
	return false;
}

/* ---- ucall ---- */

static void bad_string(char *buf, uint64_t gpa)
{
	snprintf(buf, SPK_UCALL_STR_MAX, "<bad string at 0x%" PRIx64 ">", gpa);
}

/* A NUL-terminated guest string; anything unreadable becomes a marker. */
static void read_guest_str(const struct spk_mem *mem, uint64_t gpa, char *buf)
{
	if (spk_mem_read_str(mem, gpa, buf, SPK_UCALL_STR_MAX) < 0)
		bad_string(buf, gpa);
}

/* A counted guest string (PRINT), truncated to fit buf. */
static void read_guest_text(const struct spk_mem *mem, uint64_t gpa, uint64_t len, char *buf)
{
	if (len > SPK_UCALL_STR_MAX - 1)
		len = SPK_UCALL_STR_MAX - 1;
	/* An empty text is not an access: the accessor refuses length 0. */
	if (len > 0 && spk_mem_read(mem, gpa, buf, len) < 0) {
		bad_string(buf, gpa);
		return;
	}
	buf[len] = '\0';
}

int spk_ucall_decode_mem(const struct spk_mem *mem, const struct spk_exit *exit,
                         struct spk_ucall *uc)
{
	const uint64_t *a;

	if (!exit || !uc)
		return spk_fail(EINVAL, "ucall: decode without %s", !exit ? "an exit" : "a result");
	if (exit->kind != SPK_EXIT_HYPERCALL || exit->hypercall.nr != SPK_HC_UCALL)
		return spk_fail(EINVAL, "ucall: exit is %s%s, not a UCALL hypercall",
		                spk_exit_name(exit->kind),
		                exit->kind == SPK_EXIT_HYPERCALL ? " of another number" : "");
	a = exit->hypercall.args;
	memset(uc, 0, sizeof(*uc));
	uc->type = a[0];
	for (size_t i = 0; i < SPK_ARRAY_SIZE(uc->args); i++)
		uc->args[i] = a[i + 1];
	if (uc->type != SPK_UCALL_ASSERT && uc->type != SPK_UCALL_PRINT)
		return 0;
	if (!mem)
		return spk_fail(EINVAL, "ucall: vcpu %" PRIu32 " has no guest memory", exit->vcpu);
	if (uc->type == SPK_UCALL_ASSERT) {
		read_guest_str(mem, a[1], uc->expr);
		read_guest_str(mem, a[2], uc->file);
		uc->line = a[3];
	} else {
		read_guest_text(mem, a[1], a[2], uc->expr);
	}
	return 0;
}

int spk_ucall_decode(struct spk_vcpu *vcpu, const struct spk_exit *exit, struct spk_ucall *uc)
{
	struct spk_vm *vm;

	if (!vcpu || !exit || !uc)
		return spk_fail(EINVAL, "ucall: decode without %s",
		                !vcpu   ? "a vcpu"
		                : !exit ? "an exit"
		                        : "a result");
	vm = spk_vcpu_vm(vcpu);
	return spk_ucall_decode_mem(vm ? spk_vm_mem(vm) : NULL, exit, uc);
}
