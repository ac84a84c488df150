// SPDX-License-Identifier: Apache-2.0
/*
 * The library's contract as an embedder meets it (issue 13): every call
 * in every vCPU and VM state, NULLs, double calls, two threads, destroy
 * while running, rollback of failed calls, dead registrations. Guests are
 * a few bytes of machine code, as in examples/embed.c; a vCPU that must
 * stay RUNNING spins at CPL3 (native speed on PVM as on VT-x/AMD-V).
 * Needs /dev/kvm (skip: 77). No timed assertions: a thread that waits for
 * a state polls for it, for as long as the test's timeout allows.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <sparkler/sparkler.h>

#define RAM    (2ull << 20)
#define TABLES 0x1000ull
#define CODE   0x100000ull
#define STACK  0x180000ull

/* jmp . : spins until kicked */
static const uint8_t spin[] = {0xeb, 0xfe};
/* hlt */
static const uint8_t halt[] = {0xf4};

struct fx {
	struct spk_vm *vm;
	struct spk_vcpu *vcpu;
	struct spk_x86_long_mode lm;
};

static void setup_cfg(struct fx *f, const struct spk_vm_config *cfg, const uint8_t *code,
                      size_t len, unsigned cpl)
{
	memset(f, 0, sizeof(*f));
	if (spk_vm_create(cfg, &f->vm) < 0)
		fail_msg("create: %s", spk_last_error());
	assert_int_equal(spk_vm_add_memory(f->vm, 0, RAM, SPK_MEM_RAM, "ram", NULL), 0);
	assert_int_equal(spk_x86_build_long_mode(spk_vm_mem(f->vm), TABLES, RAM, &f->lm), 0);
	assert_int_equal(spk_mem_load(spk_vm_mem(f->vm), CODE, code, len), 0);
	assert_int_equal(spk_vcpu_create(f->vm, 0, &f->vcpu), 0);
	const struct spk_x86_entry e = {.rip = CODE, .rsp = STACK, .cpl = cpl};
	assert_int_equal(spk_x86_vcpu_enter_long_mode(f->vcpu, &f->lm, &e), 0);
}

static void setup(struct fx *f, const uint8_t *code, size_t len, unsigned cpl)
{
	setup_cfg(f, NULL, code, len, cpl);
}

/* Wait (no deadline: the test's timeout is the bound) for the state. */
static void wait_state(struct spk_vcpu *v, enum spk_vcpu_state want)
{
	const struct timespec t = {.tv_nsec = 1000 * 1000};

	while (spk_vcpu_state(v) != want)
		nanosleep(&t, NULL);
}

static void assert_error_mentions(const char *what)
{
	if (!strstr(spk_last_error(), what))
		fail_msg("last error \"%s\" does not mention \"%s\"", spk_last_error(), what);
}

/* ---- a vCPU run on another thread ---- */

struct runner_arg {
	struct spk_vcpu *vcpu;
	struct spk_exit exit;
	int rc;
};

static void *run_thread(void *p)
{
	struct runner_arg *a = p;

	a->rc = spk_vcpu_run(a->vcpu, &a->exit);
	return NULL;
}

static void start_run(struct fx *f, struct runner_arg *a, pthread_t *t)
{
	memset(a, 0, sizeof(*a));
	a->vcpu = f->vcpu;
	assert_int_equal(pthread_create(t, NULL, run_thread, a), 0);
	wait_state(f->vcpu, SPK_VCPU_RUNNING);
}

/* ---- finding 1: the state machine ---- */

static void test_ready_refuses_running(void **unused)
{
	struct runner_arg a;
	struct spk_exit e;
	struct spk_x86_regs regs;
	pthread_t t;
	struct fx f;

	setup(&f, spin, sizeof(spin), 3);
	start_run(&f, &a, &t);
	assert_int_equal(spk_vcpu_ready(f.vcpu), -EBUSY);
	assert_error_mentions("RUNNING");
	assert_int_equal(spk_vcpu_state(f.vcpu), SPK_VCPU_RUNNING);
	/* a second run of the same vCPU is refused, the first goes on */
	assert_int_equal(spk_vcpu_run(f.vcpu, &e), -EBUSY);
	assert_int_equal(spk_vcpu_stop(f.vcpu), -EBUSY);
	assert_int_equal(spk_vcpu_get_regs(f.vcpu, &regs), -EBUSY);
	assert_int_equal(spk_vcpu_set_regs(f.vcpu, &regs), -EBUSY);
	assert_int_equal(spk_vcpu_state(f.vcpu), SPK_VCPU_RUNNING);
	/* and a kick still stops it */
	assert_int_equal(spk_vcpu_kick(f.vcpu), 0);
	pthread_join(t, NULL);
	assert_int_equal(a.rc, 0);
	assert_int_equal(a.exit.kind, SPK_EXIT_CANCELLED);
	assert_int_equal(spk_vcpu_state(f.vcpu), SPK_VCPU_READY);
	assert_int_equal(spk_vm_destroy(f.vm), 0);
}

/* Two threads race spk_vcpu_run() on one vCPU: exactly one runs. */
static void test_two_threads_one_vcpu(void **unused)
{
	struct runner_arg a, b;
	pthread_t ta, tb;
	struct fx f;

	setup(&f, spin, sizeof(spin), 3);
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	a.vcpu = b.vcpu = f.vcpu;
	assert_int_equal(pthread_create(&ta, NULL, run_thread, &a), 0);
	assert_int_equal(pthread_create(&tb, NULL, run_thread, &b), 0);
	wait_state(f.vcpu, SPK_VCPU_RUNNING);
	/* kick until both threads are back: one was refused, one cancelled */
	for (;;) {
		spk_vcpu_kick(f.vcpu);
		if (spk_vcpu_state(f.vcpu) == SPK_VCPU_READY)
			break;
		usleep(1000);
	}
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	/* the loser may also have come after the winner returned: then both ran */
	assert_true(a.rc == 0 || a.rc == -EBUSY);
	assert_true(b.rc == 0 || b.rc == -EBUSY);
	if (a.rc == 0)
		assert_int_equal(a.exit.kind, SPK_EXIT_CANCELLED);
	if (b.rc == 0)
		assert_int_equal(b.exit.kind, SPK_EXIT_CANCELLED);
	assert_int_equal(spk_vm_destroy(f.vm), 0);
}

/* Every state: what each call does there. */
static void test_states(void **unused)
{
	struct spk_x86_regs regs;
	struct spk_exit e = {0};
	struct spk_vcpu *v1;
	struct fx f;

	setup_cfg(&f, &(struct spk_vm_config){.max_vcpus = 2}, halt, sizeof(halt), 0);
	/* CREATED: no run, registers yes, ready yes */
	assert_int_equal(spk_vcpu_create(f.vm, 1, &v1), 0);
	assert_int_equal(spk_vcpu_create(f.vm, 1, &v1), -EEXIST);
	assert_int_equal(spk_vcpu_create(f.vm, 2, &v1), -EINVAL);
	assert_int_equal(spk_vcpu_state(v1), SPK_VCPU_CREATED);
	assert_int_equal(spk_vcpu_run(v1, &e), -EINVAL);
	assert_error_mentions("CREATED");
	assert_int_equal(spk_vcpu_get_regs(v1, &regs), 0);
	/* arm64's register sets are refused by the x86-64 backend */
	struct spk_arm64_regs a64;
	uint64_t one;
	assert_int_equal(spk_vcpu_get_arm64_regs(v1, &a64), -ENOTSUP);
	assert_error_mentions("x86-64");
	assert_int_equal(spk_vcpu_set_arm64_reg(v1, 0, 1), -ENOTSUP);
	assert_int_equal(spk_vcpu_get_arm64_reg(v1, 0, &one), -ENOTSUP);
	assert_int_equal(spk_vcpu_get_arm64_reg(v1, 0, NULL), -EINVAL);
	/* STOPPED: no run; ready starts it again */
	assert_int_equal(spk_vcpu_stop(v1), 0);
	assert_int_equal(spk_vcpu_stop(v1), 0); /* idempotent */
	assert_int_equal(spk_vcpu_run(v1, &e), -EINVAL);
	assert_int_equal(spk_vcpu_ready(v1), 0);
	assert_int_equal(spk_vcpu_ready(v1), 0); /* idempotent */
	/* READY -> run -> READY */
	assert_int_equal(spk_vcpu_run(f.vcpu, &e), 0);
	assert_int_equal(e.kind, SPK_EXIT_HALT);
	assert_int_equal(spk_vcpu_state(f.vcpu), SPK_VCPU_READY);
	/* a kick before the run: CANCELLED at once, then the run goes on */
	assert_int_equal(spk_vcpu_kick(f.vcpu), 0);
	assert_int_equal(spk_vcpu_kick(f.vcpu), 0);
	assert_int_equal(spk_vcpu_run(f.vcpu, &e), 0);
	assert_int_equal(e.kind, SPK_EXIT_CANCELLED);
	assert_int_equal(spk_vm_destroy(f.vm), 0);
}

/* ---- finding 2: a failed spk_vm_add_memory() rolls back ---- */

static void test_add_memory_rollback(void **unused)
{
	const uint64_t far = 1ull << 52; /* beyond any guest's physical address width */
	uint8_t byte = 1;
	void *host = &byte;
	struct fx f;

	setup(&f, halt, sizeof(halt), 0);
	assert_int_equal(spk_vm_add_memory(f.vm, far, 1 << 20, SPK_MEM_RAM, "far", &host), -EINVAL);
	assert_ptr_equal(host, &byte); /* untouched */
	assert_null(spk_mem_find(spk_vm_mem(f.vm), far));
	assert_int_equal(spk_mem_write(spk_vm_mem(f.vm), far, &byte, 1), -EFAULT);
	/* the slot number and the region count are free again */
	assert_int_equal(spk_vm_add_memory(f.vm, 4ull << 20, 1 << 20, SPK_MEM_RAM, "more", &host),
	                 0);
	assert_int_equal(spk_mem_write(spk_vm_mem(f.vm), 4ull << 20, &byte, 1), 0);
	/* bad arguments */
	assert_int_equal(spk_vm_add_memory(f.vm, 0x1234, 4096, SPK_MEM_RAM, "odd", NULL), -EINVAL);
	assert_int_equal(spk_vm_add_memory(f.vm, 0, RAM, SPK_MEM_RAM, "again", NULL), -EEXIST);
	assert_int_equal(spk_vm_add_memory(f.vm, 8ull << 20, 4096, (enum spk_mem_type)9, "t", NULL),
	                 -EINVAL);
	assert_int_equal(spk_vm_populate_memory(f.vm, 0x5000), -ENOENT);
	/* populating where KVM refuses the slot: the region stays unpopulated */
	assert_int_equal(spk_vm_add_memory(f.vm, far, 1 << 20, SPK_MEM_UNPOPULATED, "lazy", NULL),
	                 0);
	assert_true(spk_vm_populate_memory(f.vm, far) < 0);
	const struct spk_mem_region *r = spk_mem_find(spk_vm_mem(f.vm), far);
	assert_non_null(r);
	assert_int_equal(r->type, SPK_MEM_UNPOPULATED);
	assert_int_equal(spk_mem_write(spk_vm_mem(f.vm), far, &byte, 1), -EFAULT);
	assert_true(spk_vm_populate_memory(f.vm, far) < 0); /* and again, the same */
	assert_int_equal(spk_vm_destroy(f.vm), 0);
}

/* ---- finding 3: concurrent spk_vm_run() ---- */

struct vm_run_arg {
	struct spk_vm *vm;
	const struct spk_run_ops *ops;
	struct spk_run_result res;
	int rc;
};

static void *vm_run_thread(void *p)
{
	struct vm_run_arg *a = p;

	a->rc = spk_vm_run(a->vm, a->ops, NULL, &a->res);
	return NULL;
}

/* A spinning guest under spk_vm_run() on thread *t, its vCPU RUNNING. */
static void start_vm_run(struct fx *f, struct vm_run_arg *a, pthread_t *t)
{
	setup(f, spin, sizeof(spin), 3);
	memset(a, 0, sizeof(*a));
	a->vm = f->vm;
	assert_int_equal(pthread_create(t, NULL, vm_run_thread, a), 0);
	wait_state(f->vcpu, SPK_VCPU_RUNNING);
}

static void test_concurrent_vm_run(void **unused)
{
	struct vm_run_arg a;
	struct spk_run_result res2;
	pthread_t t;
	struct fx f;

	start_vm_run(&f, &a, &t);
	memset(&res2, 0x5a, sizeof(res2));
	assert_int_equal(spk_vm_run(f.vm, NULL, NULL, &res2), -EBUSY);
	assert_error_mentions("already");
	/* the first run is intact: it pauses, resumes and stops */
	assert_int_equal(spk_vm_pause(f.vm), 0);
	assert_true(spk_vm_paused(f.vm));
	assert_int_equal(spk_vm_resume(f.vm), 0);
	assert_int_equal(spk_vm_request_stop(f.vm, SPK_EXIT_SYSTEM_DOWN), 0);
	pthread_join(t, NULL);
	assert_int_equal(a.rc, 0);
	assert_int_equal(a.res.kind, SPK_EXIT_SYSTEM_DOWN);
	assert_false(a.res.unhandled);
	/* not running any more */
	assert_int_equal(spk_vm_pause(f.vm), -EINVAL);
	assert_int_equal(spk_vm_destroy(f.vm), 0);
}

/* ---- finding 7: lifetimes ---- */

static void test_destroy_while_vcpu_runs(void **unused)
{
	struct runner_arg a;
	pthread_t t;
	struct fx f;

	setup(&f, spin, sizeof(spin), 3);
	start_run(&f, &a, &t);
	assert_int_equal(spk_vm_destroy(f.vm), 0);
	pthread_join(t, NULL);
	assert_int_equal(a.rc, 0);
	assert_int_equal(a.exit.kind, SPK_EXIT_CANCELLED);
}

static void test_destroy_while_vm_runs(void **unused)
{
	struct vm_run_arg a;
	pthread_t t;
	struct fx f;

	start_vm_run(&f, &a, &t);
	assert_int_equal(spk_vm_destroy(f.vm), 0);
	pthread_join(t, NULL);
	assert_int_equal(a.rc, 0);
	assert_true(a.res.unhandled);
	assert_non_null(strstr(a.res.report, "destroyed"));
}

static void test_destroy_while_paused(void **unused)
{
	static const struct spk_run_ops paused = {.start_paused = true};
	struct vm_run_arg a = {.ops = &paused};
	pthread_t t;
	struct fx f;

	setup(&f, spin, sizeof(spin), 3);
	a.vm = f.vm;
	assert_int_equal(pthread_create(&t, NULL, vm_run_thread, &a), 0);
	while (!spk_vm_paused(f.vm))
		usleep(1000);
	assert_int_equal(spk_vm_destroy(f.vm), 0);
	pthread_join(t, NULL);
	assert_int_equal(a.rc, 0);
}

static enum spk_action destroy_from_exit(struct spk_vcpu *vcpu, struct spk_exit *exit, void *o)
{
	int *rc = o;

	*rc = spk_vm_destroy(spk_vcpu_vm(vcpu));
	return SPK_ACT_STOP_VM;
}

static void test_destroy_from_own_thread(void **unused)
{
	const struct spk_run_ops ops = {.on_exit = destroy_from_exit};
	struct spk_run_result res;
	int rc = 1;
	struct fx f;

	setup(&f, halt, sizeof(halt), 0);
	assert_int_equal(spk_vm_run(f.vm, &ops, &rc, &res), 0);
	assert_int_equal(rc, -EDEADLK);
	assert_int_equal(res.kind, SPK_EXIT_HALT);
	assert_int_equal(spk_vm_destroy(f.vm), 0);
}

static void test_double_destroy(void **unused)
{
	struct spk_vm *vm;

	assert_int_equal(spk_vm_create(NULL, &vm), 0);
	assert_int_equal(spk_vm_destroy(vm), 0);
	assert_int_equal(spk_vm_destroy(vm), -EINVAL); /* refused without touching it */
	assert_error_mentions("not alive");
	assert_int_equal(spk_vm_destroy(NULL), 0);
}

/* ---- finding 6: NULL everywhere ---- */

static void expect_einval(int rc, const char *call)
{
	if (rc != -EINVAL)
		fail_msg("%s returned %d, not -EINVAL", call, rc);
	if (!spk_last_error()[0])
		fail_msg("%s gave no message", call);
}

/* A failing call with a known message first: a call that sets none shows. */
static const char *sentinel(void)
{
	spk_vcpu_transition(NULL, SPK_VCPU_READY, "sentinel");
	return spk_last_error();
}

#define NUL(call)                                                                                  \
	do {                                                                                       \
		char before_[256];                                                                 \
		snprintf(before_, sizeof(before_), "%s", sentinel());                              \
		expect_einval((call), #call);                                                      \
		if (strcmp(before_, spk_last_error()) == 0)                                        \
			fail_msg("%s set no message of its own", #call);                           \
	} while (0)

static void test_nulls(void **unused)
{
	struct spk_vcpu_stats stats;
	struct spk_snap_reset *rp;
	struct spk_x86_regs regs;
	struct spk_x86_sregs sregs;
	struct spk_x86_long_mode lm = {0};
	struct spk_run_result res;
	struct spk_exit e;
	struct spk_vcpu *v;
	struct fx f;

	setup(&f, halt, sizeof(halt), 0);
	NUL(spk_vm_create(NULL, NULL));
	NUL(spk_vm_add_memory(NULL, 0, 4096, SPK_MEM_RAM, "x", NULL));
	NUL(spk_vm_add_memory(f.vm, 0, 4096, SPK_MEM_RAM, NULL, NULL));
	NUL(spk_vm_populate_memory(NULL, 0));
	NUL(spk_vm_dirty_log_start(NULL));
	NUL(spk_vm_dirty_log_stop(NULL));
	NUL(spk_vm_dirty_log_stop(f.vm)); /* not on */
	NUL(spk_vm_dirty_log_fetch(NULL, NULL));
	NUL(spk_vm_dirty_log_fetch(f.vm, NULL));
	assert_false(spk_vm_dirty_log_on(NULL));
	NUL(spk_vm_snapshot(NULL, NULL, "/tmp/x", "/tmp/y", 0));
	NUL(spk_vm_snapshot(f.vm, NULL, NULL, "/tmp/y", 0));
	NUL(spk_vm_snapshot(f.vm, NULL, "/tmp/x", NULL, 0));
	NUL(spk_vm_snapshot(f.vm, NULL, "/tmp/x", "/tmp/y", 0x100));         /* unknown flag */
	NUL(spk_vm_snapshot(f.vm, NULL, "/tmp/x", "/tmp/y", SPK_SNAP_DIFF)); /* no log */
	NUL(spk_vm_restore(NULL, NULL, "/tmp/x", NULL));
	NUL(spk_vm_restore(f.vm, NULL, NULL, NULL));
	NUL(spk_vm_restore_opts(NULL, NULL, "/tmp/x", NULL, NULL));
	NUL(spk_vm_restore_opts(f.vm, NULL, "/tmp/x", NULL,
	                        &(struct spk_snap_restore_opts){.backend = SPK_SNAP_BACKEND_UFFD,
	                                                        .uffd_socket = "/tmp/s"}));
	NUL(spk_vm_uffd_stats(NULL, &(struct spk_snap_uffd_stats){0}));
	NUL(spk_vm_uffd_stats(f.vm, NULL));
	NUL(spk_vm_uffd_working_set_save(NULL, "/tmp/x"));
	NUL(spk_vm_uffd_working_set_save(f.vm, NULL));
	NUL(spk_snap_reset_new(NULL, NULL, NULL, &rp));
	NUL(spk_snap_reset_new(f.vm, NULL, NULL, NULL));
	NUL(spk_snap_reset_apply(NULL));
	assert_int_equal(spk_snap_reset_pages(NULL), 0);
	spk_snap_reset_free(NULL);
	NUL(spk_vm_request_stop(NULL, SPK_EXIT_SYSTEM_DOWN));
	NUL(spk_vm_request_stop(f.vm, SPK_EXIT_HALT));
	NUL(spk_vm_irq_line(NULL, 4, true));
	NUL(spk_vm_ioeventfd_add(NULL, NULL));
	NUL(spk_vm_ioeventfd_add(f.vm, NULL));
	NUL(spk_vm_ioeventfd_del(NULL, NULL));
	NUL(spk_vm_msi_route_add(NULL, NULL, NULL));
	NUL(spk_vm_msi_route_set(NULL, 24, NULL));
	NUL(spk_vm_msi_route_del(NULL, 24));
	NUL(spk_vm_irqfd_add(NULL, 0, -1));
	NUL(spk_vm_irqfd_del(NULL, 0, -1));
	NUL(spk_vm_signal_msi(NULL, NULL));
	NUL(spk_vm_signal_msi(f.vm, NULL));
	NUL(spk_vm_run(NULL, NULL, NULL, &res));
	NUL(spk_vm_run(f.vm, NULL, NULL, NULL));
	NUL(spk_vm_pause(NULL));
	NUL(spk_vm_resume(NULL));
	assert_false(spk_vm_paused(NULL));
	assert_null(spk_vm_mem(NULL));
	assert_null(spk_vm_bus(NULL));
	assert_null(spk_vm_hypercalls(NULL));
	assert_int_equal(spk_vm_max_vcpus(NULL), 0);
	assert_null(spk_vm_vcpu(NULL, 0));
	NUL(spk_vcpu_create(NULL, 0, &v));
	NUL(spk_vcpu_create(f.vm, 0, NULL));
	assert_int_equal(spk_vcpu_id(NULL), UINT32_MAX);
	assert_null(spk_vcpu_vm(NULL));
	assert_int_equal(spk_vcpu_state(NULL), SPK_VCPU_INVALID);
	NUL(spk_vcpu_ready(NULL));
	NUL(spk_vcpu_stop(NULL));
	NUL(spk_vcpu_run(NULL, &e));
	NUL(spk_vcpu_run(f.vcpu, NULL));
	NUL(spk_vcpu_kick(NULL));
	NUL(spk_vcpu_interrupt(NULL, 32));
	NUL(spk_vcpu_set_debug(NULL, NULL));
	NUL(spk_vcpu_set_debug(f.vcpu, NULL));
	NUL(spk_vcpu_get_regs(NULL, &regs));
	NUL(spk_vcpu_get_regs(f.vcpu, NULL));
	NUL(spk_vcpu_set_regs(NULL, &regs));
	NUL(spk_vcpu_set_regs(f.vcpu, NULL));
	NUL(spk_vcpu_get_sregs(NULL, &sregs));
	NUL(spk_vcpu_get_sregs(f.vcpu, NULL));
	NUL(spk_vcpu_set_sregs(NULL, &sregs));
	NUL(spk_vcpu_set_sregs(f.vcpu, NULL));
	spk_vcpu_set_flags(NULL, 0); /* no crash */
	spk_vcpu_get_stats(NULL, &stats);
	assert_int_equal(stats.handled, 0);
	spk_vcpu_get_stats(f.vcpu, NULL);
	NUL(spk_x86_build_long_mode(NULL, TABLES, RAM, &lm));
	NUL(spk_x86_build_long_mode(spk_vm_mem(f.vm), TABLES, RAM, NULL));
	NUL(spk_x86_vcpu_enter_long_mode(NULL, &f.lm, &(struct spk_x86_entry){.rip = CODE}));
	NUL(spk_x86_vcpu_enter_long_mode(f.vcpu, NULL, &(struct spk_x86_entry){.rip = CODE}));
	NUL(spk_x86_vcpu_enter_long_mode(f.vcpu, &f.lm, NULL));
	NUL(spk_bus_register(NULL, SPK_BUS_PIO, 0x80, 1, "x", &(struct spk_bus_ops){0}, NULL, 0));
	NUL(spk_hypercall_register(NULL, 0x100, "x", NULL, NULL));
	NUL(spk_mem_write(NULL, 0, &e, 1));
	NUL(spk_mem_read(NULL, 0, &e, 1));
	NUL(spk_exit_complete_read(NULL, 0));
	assert_int_equal(spk_vm_destroy(f.vm), 0);
}

/* ---- finding 8: dead registrations ---- */

static void test_dead_registrations(void **unused)
{
	static const struct spk_bus_ops ops = {0};
	struct spk_x86_long_mode zero = {0};
	struct spk_vcpu *v1;
	struct fx f;

	setup_cfg(&f, &(struct spk_vm_config){.max_vcpus = 2}, halt, sizeof(halt), 0);
	struct spk_bus *bus = spk_vm_bus(f.vm);
	/* MMIO over RAM */
	assert_int_equal(
	    spk_bus_register(bus, SPK_BUS_MMIO, 0x1000, 0x100, "over-ram", &ops, NULL, 0), -EINVAL);
	assert_error_mentions("ram");
	assert_int_equal(spk_bus_register(bus, SPK_BUS_MMIO, RAM - 1, 2, "edge", &ops, NULL, 0),
	                 -EINVAL);
	assert_int_equal(spk_bus_register(bus, SPK_BUS_MMIO, RAM, 0x1000, "after", &ops, NULL, 0),
	                 0);
	/* RAM over MMIO */
	assert_int_equal(spk_vm_add_memory(f.vm, RAM, 0x1000, SPK_MEM_RAM, "ram2", NULL), -EINVAL);
	assert_error_mentions("after");
	assert_null(spk_mem_find(spk_vm_mem(f.vm), RAM));
	/* PIO on the hypercall port, and across the end of the port space */
	assert_int_equal(spk_bus_register(bus, SPK_BUS_PIO, SPK_HC_PORT, 1, "hc", &ops, NULL, 0),
	                 -EINVAL);
	assert_error_mentions("hypercall");
	assert_int_equal(spk_bus_register(bus, SPK_BUS_PIO, 0xe0, 8, "hc8", &ops, NULL, 0),
	                 -EINVAL);
	assert_int_equal(spk_bus_register(bus, SPK_BUS_PIO, 0xffff, 2, "end", &ops, NULL, 0),
	                 -EINVAL);
	assert_int_equal(spk_bus_register(bus, SPK_BUS_PIO, 0x10000, 1, "beyond", &ops, NULL, 0),
	                 -EINVAL);
	assert_int_equal(spk_bus_register(bus, SPK_BUS_PIO, 0xffff, 1, "last", &ops, NULL, 0), 0);
	/* entry points */
	assert_int_equal(spk_vcpu_create(f.vm, 1, &v1), 0);
	const struct spk_x86_entry noncanon = {.rip = 0x0000800000000000ull};
	assert_int_equal(spk_x86_vcpu_enter_long_mode(v1, &f.lm, &noncanon), -EINVAL);
	assert_error_mentions("canonical");
	const struct spk_x86_entry badstack = {.rip = CODE, .rsp = 0xffff7fffffffffffull};
	assert_int_equal(spk_x86_vcpu_enter_long_mode(v1, &f.lm, &badstack), -EINVAL);
	const struct spk_x86_entry ok = {.rip = CODE};
	assert_int_equal(spk_x86_vcpu_enter_long_mode(v1, &zero, &ok), -EINVAL);
	assert_error_mentions("spk_x86_build_long_mode");
	/* a refused entry leaves the vCPU as it was */
	assert_int_equal(spk_vcpu_state(v1), SPK_VCPU_CREATED);
	assert_int_equal(spk_x86_vcpu_enter_long_mode(v1, &f.lm, &ok), 0);
	assert_int_equal(spk_vm_destroy(f.vm), 0);
}

/* ---- finding 5: the kick signal ---- */

static void embedder_handler(int sig)
{
	(void)sig;
}

static void test_kick_signal(void **unused)
{
	struct sigaction mine = {.sa_handler = embedder_handler}, saved, back;
	struct spk_vm *vm;
	struct spk_vcpu *v;
	struct spk_exit e;
	struct fx f;

	/* a signal that cannot be caught is refused */
	assert_int_equal(spk_vm_create(&(struct spk_vm_config){.kick_signal = SIGKILL}, &vm),
	                 -EINVAL);
	/* a signal with the embedder's handler is never replaced */
	sigemptyset(&mine.sa_mask);
	assert_int_equal(sigaction(SIGRTMIN + 3, &mine, NULL), 0);
	assert_int_equal(spk_vm_create(&(struct spk_vm_config){.kick_signal = SIGRTMIN + 3}, &vm),
	                 0);
	assert_int_equal(spk_vcpu_create(vm, 0, &v), -EBUSY);
	assert_error_mentions("kick_signal");
	assert_int_equal(sigaction(SIGRTMIN + 3, NULL, &back), 0);
	assert_ptr_equal(back.sa_handler, embedder_handler);
	assert_int_equal(spk_vm_destroy(vm), 0);

	/* another one works, kicks included */
	setup_cfg(&f, &(struct spk_vm_config){.kick_signal = SIGRTMIN + 4}, halt, sizeof(halt), 0);
	assert_int_equal(spk_vcpu_run(f.vcpu, &e), 0);
	assert_int_equal(e.kind, SPK_EXIT_HALT);
	/* the embedder ignores the signal later: runs and kicks fail loudly */
	assert_int_equal(sigaction(SIGRTMIN + 4, NULL, &saved), 0);
	assert_int_equal(signal(SIGRTMIN + 4, SIG_IGN) == SIG_ERR, 0);
	assert_int_equal(spk_vcpu_run(f.vcpu, &e), -EBUSY);
	assert_error_mentions("kick signal");
	assert_int_equal(spk_vcpu_kick(f.vcpu), -EBUSY);
	assert_int_equal(spk_vcpu_state(f.vcpu), SPK_VCPU_READY);
	/* ... and work again once the library's handler is back */
	assert_int_equal(sigaction(SIGRTMIN + 4, &saved, NULL), 0);
	assert_int_equal(spk_vcpu_run(f.vcpu, &e), 0);
	assert_int_equal(e.kind, SPK_EXIT_CANCELLED); /* the kick above stays pending */
	assert_int_equal(spk_vm_destroy(f.vm), 0);
}

/* ---- finding 4: the CPL3 boundary of spk_x86_build_long_mode() ---- */

/* Run code at CPL3 (IOPL 0) in a fresh VM whose PIO misses exit; allow:
 * the first of n ports to open first (-1: none). The exit that ends it. */
static struct spk_exit run_user(const uint8_t *code, size_t len, int allow, uint32_t n,
                                struct fx *f)
{
	struct spk_exit e;

	setup(f, code, len, 3);
	assert_int_equal(spk_bus_set_miss_policy(spk_vm_bus(f->vm), SPK_BUS_PIO, SPK_MISS_EXIT), 0);
	if (allow >= 0)
		assert_int_equal(
		    spk_x86_long_mode_allow_ports(spk_vm_mem(f->vm), &f->lm, (uint32_t)allow, n),
		    0);
	do
		assert_int_equal(spk_vcpu_run(f->vcpu, &e), 0);
	while (e.kind == SPK_EXIT_NONE);
	return e;
}

static void test_cpl3_boundary(void **unused)
{
	/* out %al, $0x80; hlt (never reached: hlt at CPL3 faults) */
	static const uint8_t out80[] = {0xe6, 0x80, 0xf4};
	/* mov $SYSTEM_OFF, %eax; out %eax, $SPK_HC_PORT */
	static const uint8_t hc[] = {0xb8, SPK_HC_SYSTEM_OFF, 0, 0, 0, 0xe7, SPK_HC_PORT};
	/* movabs $addr, %rbx; movb $0x5a, (%rbx) */
	uint8_t poke[] = {0x48, 0xbb, 0, 0, 0, 0, 0, 0, 0, 0, 0xc6, 0x03, 0x5a};
	/* movabs $addr, %rbx; mov (%rbx), %al; out %al, $0x80 */
	uint8_t peek[] = {0x48, 0xbb, 0, 0, 0, 0, 0, 0, 0, 0, 0x8a, 0x03, 0xe6, 0x80};
	struct spk_exit e;
	uint8_t byte;
	struct fx f;

	printf("CPL3 boundary on KVM kind %s: a fault at CPL3 without an IDT ends as RESET "
	       "(triple fault)\n",
	       spk_host_kvm_kind());
	/* a closed port faults; the same port opened exits as PIO */
	e = run_user(out80, sizeof(out80), -1, 0, &f);
	assert_int_equal(e.kind, SPK_EXIT_RESET);
	assert_int_equal(spk_vm_destroy(f.vm), 0);
	e = run_user(out80, sizeof(out80), 0x80, 1, &f);
	assert_int_equal(e.kind, SPK_EXIT_PIO);
	assert_int_equal(e.pio.port, 0x80);
	assert_int_equal(spk_vm_destroy(f.vm), 0);
	/* the hypercall port is closed like any other */
	e = run_user(hc, sizeof(hc), -1, 0, &f);
	assert_int_equal(e.kind, SPK_EXIT_RESET);
	assert_int_equal(spk_vm_destroy(f.vm), 0);
	/* a 4-byte out needs all four ports' bits clear */
	e = run_user(hc, sizeof(hc), SPK_HC_PORT, 3, &f);
	assert_int_equal(e.kind, SPK_EXIT_RESET);
	assert_int_equal(spk_vm_destroy(f.vm), 0);
	e = run_user(hc, sizeof(hc), SPK_HC_PORT, 4, &f);
	assert_int_equal(e.kind, SPK_EXIT_SYSTEM_DOWN);
	assert_int_equal(spk_vm_destroy(f.vm), 0);
	/* the TSS's bitmap, the GDT and the page tables: no write, no read */
	struct spk_x86_long_mode lm;
	setup(&f, halt, sizeof(halt), 0); /* only to learn the addresses */
	lm = f.lm;
	assert_int_equal(spk_vm_destroy(f.vm), 0);
	const uint64_t targets[] = {lm.tss_base + 0x68 + 0x80 / 8, lm.gdt_base, lm.cr3,
	                            lm.cr3 + spk_x86_long_mode_size(RAM) - 1};
	for (size_t i = 0; i < sizeof(targets) / sizeof(targets[0]); i++) {
		memcpy(poke + 2, &targets[i], 8);
		e = run_user(poke, sizeof(poke), -1, 0, &f);
		assert_int_equal(e.kind, SPK_EXIT_RESET);
		assert_int_equal(spk_mem_read(spk_vm_mem(f.vm), targets[i], &byte, 1), 0);
		assert_int_not_equal(byte, 0x5a);
		assert_int_equal(spk_vm_destroy(f.vm), 0);
		memcpy(peek + 2, &targets[i], 8);
		e = run_user(peek, sizeof(peek), 0x80, 1, &f);
		assert_int_equal(e.kind, SPK_EXIT_RESET);
		assert_int_equal(spk_vm_destroy(f.vm), 0);
	}
	/* ... while the page right after the tables is the user's */
	const uint64_t after = lm.cr3 + spk_x86_long_mode_size(RAM);
	memcpy(peek + 2, &after, 8);
	e = run_user(peek, sizeof(peek), 0x80, 1, &f);
	assert_int_equal(e.kind, SPK_EXIT_PIO);
	assert_int_equal(spk_vm_destroy(f.vm), 0);
}

/* ---- finding 9: what exit.pc is ---- */

static void test_exit_pc(void **unused)
{
	/* clang-format off */
	static const uint8_t code[] = {
		0xe6, 0x80,                         /* +0  out %al, $0x80 */
		0xe4, 0x80,                         /* +2  in $0x80, %al */
		0x48, 0xbb, 0, 0, 0x30, 0, 0, 0, 0, 0, /* +4  movabs $0x300000, %rbx */
		0x88, 0x03,                         /* +14 mov %al, (%rbx): MMIO write */
		0x8a, 0x03,                         /* +16 mov (%rbx), %al: MMIO read */
		0xeb, 0xfe,                         /* +18 jmp . */
	};
	/* clang-format on */
	static const struct {
		enum spk_exit_kind kind;
		bool is_write;
		uint64_t pc;
	} want[] = {
	    {SPK_EXIT_PIO, true, CODE + 2},  /* a write: KVM has done it, next insn */
	    {SPK_EXIT_PIO, false, CODE + 2}, /* a read: the in itself, finished at the next run */
	    {SPK_EXIT_MMIO, true, CODE + 16},
	    {SPK_EXIT_MMIO, false, CODE + 16},
	};
	struct spk_exit e;
	struct fx f;

	memset(&f, 0, sizeof(f));
	assert_int_equal(spk_vm_create(NULL, &f.vm), 0);
	assert_int_equal(spk_vm_add_memory(f.vm, 0, RAM, SPK_MEM_RAM, "ram", NULL), 0);
	assert_int_equal(spk_x86_build_long_mode(spk_vm_mem(f.vm), TABLES, 2 * RAM, &f.lm), 0);
	assert_int_equal(spk_x86_long_mode_allow_ports(spk_vm_mem(f.vm), &f.lm, 0x80, 1), 0);
	assert_int_equal(spk_mem_load(spk_vm_mem(f.vm), CODE, code, sizeof(code)), 0);
	assert_int_equal(spk_vcpu_create(f.vm, 0, &f.vcpu), 0);
	const struct spk_x86_entry entry = {.rip = CODE, .rsp = STACK, .cpl = 3};
	assert_int_equal(spk_x86_vcpu_enter_long_mode(f.vcpu, &f.lm, &entry), 0);
	assert_int_equal(spk_bus_set_miss_policy(spk_vm_bus(f.vm), SPK_BUS_PIO, SPK_MISS_EXIT), 0);
	assert_int_equal(spk_bus_set_miss_policy(spk_vm_bus(f.vm), SPK_BUS_MMIO, SPK_MISS_EXIT), 0);
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		assert_int_equal(spk_vcpu_run(f.vcpu, &e), 0);
		printf("%s %s: pc = code + %lld\n", spk_exit_name(e.kind),
		       (e.kind == SPK_EXIT_PIO ? e.pio.is_write : e.mmio.is_write) ? "write"
		                                                                   : "read",
		       (long long)(e.pc - CODE));
		assert_int_equal(e.kind, want[i].kind);
		assert_int_equal(e.kind == SPK_EXIT_PIO ? e.pio.is_write : e.mmio.is_write,
		                 want[i].is_write);
		assert_int_equal(e.pc, want[i].pc);
		if (!want[i].is_write)
			assert_int_equal(spk_exit_complete_read(&e, 0x42), 0);
	}
	assert_int_equal(spk_vm_destroy(f.vm), 0);
}

int main(void)
{
	char why[256];

	if (!spk_kvm_usable(why, sizeof(why))) {
		printf("SKIP: %s\n", why);
		return 77;
	}
	printf("KVM kind: %s\n", spk_host_kvm_kind());
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ready_refuses_running),
	    cmocka_unit_test(test_two_threads_one_vcpu),
	    cmocka_unit_test(test_states),
	    cmocka_unit_test(test_add_memory_rollback),
	    cmocka_unit_test(test_concurrent_vm_run),
	    cmocka_unit_test(test_destroy_while_vcpu_runs),
	    cmocka_unit_test(test_destroy_while_vm_runs),
	    cmocka_unit_test(test_destroy_while_paused),
	    cmocka_unit_test(test_destroy_from_own_thread),
	    cmocka_unit_test(test_double_destroy),
	    cmocka_unit_test(test_nulls),
	    cmocka_unit_test(test_dead_registrations),
	    cmocka_unit_test(test_kick_signal),
	    cmocka_unit_test(test_cpl3_boundary),
	    cmocka_unit_test(test_exit_pc),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
