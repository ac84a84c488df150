/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The gdb stub's VM side: guest memory through the vCPU's page tables,
 * breakpoints and watchpoints as debug registers (or int3, or single-step
 * comparisons), the DEBUG exits of vCPU threads, and pausing and resuming
 * the VM for gdb. See gdb_internal.h for the states.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "vmm/gdb/gdb_internal.h"

void stub_wake(struct spk_gdb *g)
{
	char c = 1;

	if (write(g->wake[1], &c, 1) < 0) {
		/* the pipe is full: the stub thread has wakeups queued anyway */
	}
}

/* With g->lock held. */
void stub_set_state(struct spk_gdb *g, enum state s)
{
	g->state = s;
	pthread_cond_broadcast(&g->cond);
}

/* ---- the VM: pause, resume, registers, memory --------------------------------------- */

static bool vm_live(struct spk_gdb *g)
{
	pthread_mutex_lock(&g->lock);
	bool live = g->vm_live;
	pthread_mutex_unlock(&g->lock);
	return live;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/*
 * Pause every vCPU. Retries while a vCPU is slow to stop (spk_vm_pause
 * waits a second each time), and while the run has not registered yet
 * (spk_gdb_vm_start comes just before spk_vm_run), for at most 30 s. -1
 * once the VM is gone, or if a vCPU would not stop.
 */
static int pause_all(struct spk_gdb *g, struct spk_vm *vm)
{
	uint64_t until = now_ms() + 30000;

	for (;;) {
		int rc = spk_vm_pause(vm);

		if (rc == 0)
			return 0;
		if (!vm_live(g) || (rc != -ETIMEDOUT && rc != -EINVAL) || now_ms() > until) {
			stub_say("cannot pause the guest: %s", spk_last_error());
			return -1;
		}
		if (rc == -EINVAL)
			usleep(1000);
	}
}

static int resume_all(struct spk_gdb *g, struct spk_vm *vm)
{
	uint64_t until = now_ms() + 30000;

	for (;;) {
		int rc = spk_vm_resume(vm);

		if (rc == 0)
			return 0;
		if (!vm_live(g) || rc != -EINVAL || now_ms() > until)
			return -1;
		usleep(1000);
	}
}

struct spk_vcpu *stub_vcpu_of_tid(struct spk_gdb *g, int64_t tid)
{
	if (tid <= 0 || tid > MAX_VCPUS || !g->vm)
		return NULL;
	return spk_vm_vcpu(g->vm, (uint32_t)(tid - 1));
}

/* The vCPU gdb's register and memory commands mean (Hg, else the stopped one). */
struct spk_vcpu *stub_gen_vcpu(struct spk_gdb *g)
{
	struct spk_vcpu *v = stub_vcpu_of_tid(g, g->g_tid);

	if (!v && g->vm)
		v = spk_vm_vcpu(g->vm, g->stop.vcpu);
	if (!v && g->vm)
		v = spk_vm_vcpu(g->vm, 0);
	return v;
}

int stub_get_state(struct spk_vcpu *v, struct gdb_x86_state *s)
{
	if (!v || spk_vcpu_get_regs(v, &s->regs) < 0 || spk_vcpu_get_sregs(v, &s->sregs) < 0)
		return -1;
	return 0;
}

static int read_phys(void *ctx, uint64_t gpa, void *buf, size_t len)
{
	return spk_mem_read(ctx, gpa, buf, len);
}

static int translate(struct spk_gdb *g, const struct spk_x86_sregs *s, uint64_t gva, uint64_t *gpa,
                     uint64_t *left)
{
	return gdb_x86_translate(s, gva, read_phys, spk_vm_mem(g->vm), gpa, left);
}

/* Show guest memory as it would be without our int3 bytes. With g->lock held. */
static void unshadow(struct spk_gdb *g, uint64_t gpa, uint8_t *buf, uint64_t len)
{
	for (int i = 0; i < MAX_POINTS; i++) {
		struct point *p = &g->points[i];

		if (p->used && p->int3 && p->gpa >= gpa && p->gpa - gpa < len)
			buf[p->gpa - gpa] = p->orig;
	}
}

/* Read up to len bytes at gva; how many could be read (0: none). */
uint64_t stub_read_virt(struct spk_gdb *g, const struct spk_x86_sregs *s, uint64_t gva,
                        uint8_t *buf, uint64_t len)
{
	uint64_t done = 0;

	while (done < len) {
		uint64_t gpa, left;

		if (translate(g, s, gva + done, &gpa, &left) < 0)
			break;
		uint64_t n = left < len - done ? left : len - done;
		if (spk_mem_read(spk_vm_mem(g->vm), gpa, buf + done, n) < 0)
			break;
		pthread_mutex_lock(&g->lock);
		unshadow(g, gpa, buf + done, n);
		pthread_mutex_unlock(&g->lock);
		done += n;
	}
	return done;
}

/* A write over one of our int3 bytes changes what is under it. With g->lock held. */
static void reshadow(struct spk_gdb *g, uint64_t gpa, const uint8_t *buf, uint64_t len)
{
	static const uint8_t int3 = 0xcc;

	for (int i = 0; i < MAX_POINTS; i++) {
		struct point *p = &g->points[i];

		if (p->used && p->int3 && p->gpa >= gpa && p->gpa - gpa < len) {
			p->orig = buf[p->gpa - gpa];
			spk_mem_write(spk_vm_mem(g->vm), p->gpa, &int3, 1);
		}
	}
}

int stub_write_virt(struct spk_gdb *g, const struct spk_x86_sregs *s, uint64_t gva,
                    const uint8_t *buf, uint64_t len)
{
	uint64_t done = 0;

	while (done < len) {
		uint64_t gpa, left;

		if (translate(g, s, gva + done, &gpa, &left) < 0)
			return -1;
		uint64_t n = left < len - done ? left : len - done;
		if (spk_mem_write(spk_vm_mem(g->vm), gpa, buf + done, n) < 0)
			return -1;
		pthread_mutex_lock(&g->lock);
		reshadow(g, gpa, buf + done, n);
		pthread_mutex_unlock(&g->lock);
		done += n;
	}
	return 0;
}

/* ---- breakpoints and watchpoints ---------------------------------------------------- */

/* A debug register for (type, addr, len): shared with an identical one. -1 if none is free. */
static int dr_get(struct spk_gdb *g, enum gdb_x86_dr_type type, uint64_t addr, unsigned len)
{
	int free_slot = -1;

	for (int i = 0; i < 4; i++) {
		struct gdb_x86_dr *d = &g->drs[i].dr;

		if (g->drs[i].refs && d->type == type && d->addr == addr && d->len == len) {
			g->drs[i].refs++;
			return i;
		}
		if (!g->drs[i].refs && free_slot < 0)
			free_slot = i;
	}
	if (free_slot >= 0) {
		g->drs[free_slot].dr = (struct gdb_x86_dr){true, type, addr, len};
		g->drs[free_slot].refs = 1;
	}
	return free_slot;
}

static void dr_put_mask(struct spk_gdb *g, uint8_t mask)
{
	for (int i = 0; i < 4; i++)
		if ((mask & (1u << i)) && g->drs[i].refs && --g->drs[i].refs == 0)
			g->drs[i].dr.used = false;
}

/* Debug registers for a range (split into aligned pieces); the mask, or -1. */
static int dr_range(struct spk_gdb *g, enum gdb_x86_dr_type type, uint64_t addr, uint64_t len)
{
	uint64_t pa[4];
	unsigned pl[4];
	int n = type == GDB_X86_DR_EXEC ? 1 : gdb_x86_split(addr, len, pa, pl, 4);
	uint8_t mask = 0;

	if (type == GDB_X86_DR_EXEC) {
		pa[0] = addr;
		pl[0] = 1;
	}
	for (int i = 0; i < n; i++) {
		int slot = dr_get(g, type, pa[i], pl[i]);

		if (slot < 0) {
			dr_put_mask(g, mask);
			return -1;
		}
		mask |= (uint8_t)(1u << slot);
	}
	return n < 0 ? -1 : mask;
}

static struct point *point_find(struct spk_gdb *g, int type, uint64_t addr, uint64_t len)
{
	for (int i = 0; i < MAX_POINTS; i++) {
		struct point *p = &g->points[i];

		if (p->used && p->type == type && p->addr == addr && p->len == len)
			return p;
	}
	return NULL;
}

static struct point *point_new(struct spk_gdb *g)
{
	for (int i = 0; i < MAX_POINTS; i++)
		if (!g->points[i].used) {
			memset(&g->points[i], 0, sizeof(g->points[i]));
			return &g->points[i];
		}
	return NULL;
}

/* int3 into guest memory at addr (translated through the vCPU's tables). */
static int insert_int3(struct spk_gdb *g, struct point *p, const struct spk_x86_sregs *s)
{
	static const uint8_t int3 = 0xcc;
	uint64_t left;

	if (translate(g, s, p->addr, &p->gpa, &left) < 0 ||
	    spk_mem_read(spk_vm_mem(g->vm), p->gpa, &p->orig, 1) < 0 ||
	    spk_mem_write(spk_vm_mem(g->vm), p->gpa, &int3, 1) < 0)
		return -EFAULT;
	p->int3 = true;
	return 0;
}

static int insert_emulated(struct spk_gdb *g, struct point *p, const struct spk_x86_sregs *s)
{
	uint64_t off = 0;

	if (p->len == 0 || p->len > EMU_WATCH_MAX)
		return -EINVAL;
	while (off < p->len) {
		uint64_t gpa, left;

		if (p->npieces == 2 || translate(g, s, p->addr + off, &gpa, &left) < 0)
			return -EFAULT;
		uint64_t n = left < p->len - off ? left : p->len - off;
		p->piece_gpa[p->npieces] = gpa;
		p->piece_len[p->npieces++] = n;
		if (spk_mem_read(spk_vm_mem(g->vm), gpa, p->old + off, n) < 0)
			return -EFAULT;
		off += n;
	}
	p->emulated = true;
	g->n_emulated++;
	return 0;
}

/* Set up p's resources. With g->lock held; the VM is paused. */
static int point_arm(struct spk_gdb *g, struct point *p, const struct spk_x86_sregs *s)
{
	static const enum gdb_x86_dr_type data_type[5] = {GDB_X86_DR_EXEC, GDB_X86_DR_EXEC,
	                                                  GDB_X86_DR_WRITE, GDB_X86_DR_ACCESS,
	                                                  GDB_X86_DR_ACCESS};
	int mask;

	if (p->type == 0 && !g->pvm)
		return insert_int3(g, p, s);
	if (p->type == 2 && g->pvm)
		return insert_emulated(g, p, s);
	if (p->type >= 3 && g->pvm)
		return -EOPNOTSUPP; /* KVM's emulator checks no data breakpoints */
	mask = dr_range(g, data_type[p->type], p->addr, p->len);
	if (mask < 0)
		return -ENOSPC;
	p->drs = (uint8_t)mask;
	return 0;
}

static void point_disarm(struct spk_gdb *g, struct point *p)
{
	if (p->int3 && g->vm)
		spk_mem_write(spk_vm_mem(g->vm), p->gpa, &p->orig, 1);
	if (p->emulated)
		g->n_emulated--;
	dr_put_mask(g, p->drs);
	p->used = false;
}

int stub_point_insert(struct spk_gdb *g, int type, uint64_t addr, uint64_t len,
                      const struct spk_x86_sregs *s)
{
	pthread_mutex_lock(&g->lock);
	struct point *p = point_find(g, type, addr, len);
	int rc = 0;

	if (p) {
		p->refs++; /* inserting twice is inserting once (gdb may resend) */
	} else if (!(p = point_new(g))) {
		rc = -ENOSPC;
	} else {
		*p =
		    (struct point){.used = true, .type = type, .addr = addr, .len = len, .refs = 1};
		rc = point_arm(g, p, s);
		if (rc < 0)
			point_disarm(g, p);
	}
	pthread_mutex_unlock(&g->lock);
	return rc;
}

int stub_point_remove(struct spk_gdb *g, int type, uint64_t addr, uint64_t len)
{
	pthread_mutex_lock(&g->lock);
	struct point *p = point_find(g, type, addr, len);

	if (p)
		point_disarm(g, p);
	pthread_mutex_unlock(&g->lock);
	return p ? 0 : -ENOENT;
}

static void points_clear(struct spk_gdb *g)
{
	pthread_mutex_lock(&g->lock);
	for (int i = 0; i < MAX_POINTS; i++)
		if (g->points[i].used)
			point_disarm(g, &g->points[i]);
	memset(g->drs, 0, sizeof(g->drs));
	g->n_emulated = 0;
	pthread_mutex_unlock(&g->lock);
}

/* What every vCPU gets (breakpoints, watchpoints). With g->lock held. */
void stub_compute_common(struct spk_gdb *g)
{
	struct gdb_x86_dr dr[4];
	bool any_int3 = false;

	for (int i = 0; i < 4; i++)
		dr[i] = g->drs[i].dr;
	for (int i = 0; i < MAX_POINTS; i++)
		any_int3 |= g->points[i].used && g->points[i].int3;
	g->common = (struct spk_vcpu_debug){.sw_breakpoints = any_int3};
	g->common.dr7 = gdb_x86_dr7(dr);
	g->common.hw_breakpoints = g->common.dr7 != 0;
	for (int i = 0; i < 4; i++)
		g->common.addr[i] = dr[i].used ? dr[i].addr : 0;
	/* single-stepping for emulated watchpoints is per vCPU (vcpu_debug) */
	g->common.enable = g->common.hw_breakpoints || any_int3 || g->n_emulated;
}

/* Debug register i is an armed instruction breakpoint at pc. With g->lock held. */
static bool dr_exec_at(const struct spk_gdb *g, int i, uint64_t pc)
{
	return g->drs[i].dr.used && g->drs[i].dr.type == GDB_X86_DR_EXEC && g->drs[i].dr.addr == pc;
}

/* One vCPU's settings for a resume. With g->lock held. */
static struct spk_vcpu_debug vcpu_debug(struct spk_gdb *g, uint32_t id, bool user_mode)
{
	struct spk_vcpu_debug d = g->common;
	const struct vcpu_ctl *c = &g->cpu[id];

	/* stepping over a breakpoint (plan_step_over): the debug registers
	 * that stop at its instruction are off for this one step */
	bool over = g->over[id].on;

	if (over)
		for (int i = 0; i < 4; i++)
			if (dr_exec_at(g, i, g->over[id].pc))
				d.dr7 &= ~(3ull << (2 * i)); /* Ln, Gn */
	/* PVM: #DB at CPL3 goes to the guest, so user code is never stepped */
	d.single_step = c->step || c->range || over || (g->n_emulated && !(g->pvm && user_mode));
	d.enable = d.hw_breakpoints || d.sw_breakpoints || d.single_step;
	return d;
}

bool stub_user_mode(struct spk_vcpu *v)
{
	struct spk_x86_sregs s;

	return spk_vcpu_get_sregs(v, &s) == 0 && (s.cs.selector & 3) == 3;
}

/* Apply the settings to every vCPU (all paused). */
int stub_apply_debug(struct spk_gdb *g)
{
	int rc = 0;

	for (uint32_t i = 0; i < spk_vm_max_vcpus(g->vm) && i < MAX_VCPUS; i++) {
		struct spk_vcpu *v = spk_vm_vcpu(g->vm, i);

		if (!v)
			continue;
		bool um = stub_user_mode(v);
		pthread_mutex_lock(&g->lock);
		struct spk_vcpu_debug d = vcpu_debug(g, i, um);
		pthread_mutex_unlock(&g->lock);
		if (spk_vcpu_set_debug(v, &d) < 0) {
			stub_say("vCPU %u: %s", i, spk_last_error());
			rc = -1;
		}
	}
	return rc;
}

/* Take a fresh copy of what emulated watchpoints watch. With g->lock held. */
static void emulated_snapshot(struct spk_gdb *g)
{
	for (int i = 0; i < MAX_POINTS; i++) {
		struct point *p = &g->points[i];
		uint64_t off = 0;

		if (!p->used || !p->emulated)
			continue;
		for (int k = 0; k < p->npieces; k++) {
			spk_mem_read(spk_vm_mem(g->vm), p->piece_gpa[k], p->old + off,
			             p->piece_len[k]);
			off += p->piece_len[k];
		}
	}
}

/* ---- the vCPU side: DEBUG exits ------------------------------------------------------- */

/* An emulated watchpoint whose bytes changed (its copy is refreshed). With g->lock held. */
static struct point *emulated_hit(struct spk_gdb *g, struct spk_mem *mem)
{
	for (int i = 0; i < MAX_POINTS; i++) {
		struct point *p = &g->points[i];
		uint8_t now[EMU_WATCH_MAX];
		uint64_t off = 0;

		if (!p->used || !p->emulated)
			continue;
		for (int k = 0; k < p->npieces; k++) {
			if (spk_mem_read(mem, p->piece_gpa[k], now + off, p->piece_len[k]) < 0)
				memcpy(now + off, p->old + off, p->piece_len[k]);
			off += p->piece_len[k];
		}
		if (memcmp(now, p->old, p->len) != 0) {
			memcpy(p->old, now, p->len);
			return p;
		}
	}
	return NULL;
}

static enum why watch_why(int type)
{
	return type == 2 ? WHY_WATCH : type == 3 ? WHY_RWATCH : WHY_AWATCH;
}

/* The point that owns debug register i. With g->lock held. */
static struct point *dr_owner(struct spk_gdb *g, int i)
{
	for (int k = 0; k < MAX_POINTS; k++)
		if (g->points[k].used && (g->points[k].drs & (1u << i)))
			return &g->points[k];
	return NULL;
}

/*
 * What a DEBUG exit means: false to let the vCPU run on (a step inside a
 * range, a step for emulated watchpoints that saw no change), true with
 * *s filled for a stop to report; *rearm if the exit ended a step over a
 * breakpoint (its debug registers must be armed again). With g->lock held.
 */
static bool classify(struct spk_gdb *g, struct spk_vcpu *vcpu, const struct spk_exit *e,
                     struct stop *s, bool *rearm)
{
	uint32_t id = spk_vcpu_id(vcpu);
	struct vcpu_ctl *c = &g->cpu[id];
	struct point *p;

	*s = (struct stop){.valid = true, .vcpu = id, .sig = SIGTRAP_GDB, .why = WHY_SIGNAL};
	/* any DEBUG exit ends a step over a breakpoint: a stop reported now
	 * gets fresh settings at the next resume; else on_debug re-arms */
	*rearm = g->over[id].on;
	g->over[id].on = false;
	if (e->debug.exception == 3) { /* int3 */
		for (int i = 0; i < MAX_POINTS; i++)
			if (g->points[i].used && g->points[i].int3 &&
			    g->points[i].addr == e->debug.pc)
				s->why = WHY_SWBREAK;
		return true;
	}
	for (int i = 0; i < 4; i++) {
		if (!(e->debug.dr6 & (1u << i)) || !(p = dr_owner(g, i)))
			continue;
		if (p->type <= 1) {
			s->why = p->type == 0 ? WHY_SWBREAK : WHY_HWBREAK;
			/* our DR7 entry for DRi, not the exit's dr7: KVM's emulator (PVM)
			 * leaves that field unset when it reports a code breakpoint */
			s->exec_bp = g->drs[i].dr.used && g->drs[i].dr.type == GDB_X86_DR_EXEC;
			s->pc = e->debug.pc;
		} else {
			s->why = watch_why(p->type);
			s->addr = p->addr;
		}
		return true;
	}
	if (!(e->debug.dr6 & DR6_BS))
		return true; /* a #DB we did not ask for: report it as it is */
	if (g->n_emulated && (p = emulated_hit(g, spk_vm_mem(spk_vcpu_vm(vcpu))))) {
		s->why = WHY_WATCH;
		s->addr = p->addr;
		return true;
	}
	if (c->range && e->debug.pc >= c->start && e->debug.pc < c->end)
		return false;
	return c->step || c->range;
}

/* The vCPU stops the VM and hands the stop to the stub thread. */
static void stop_from_vcpu(struct spk_gdb *g, struct spk_vm *vm, const struct stop *s)
{
	pause_all(g, vm);
	pthread_mutex_lock(&g->lock);
	g->stop = *s;
	stub_set_state(g, ST_STOPPED);
	pthread_mutex_unlock(&g->lock);
	stub_wake(g);
}

/* The step over a breakpoint is done and the vCPU runs on: its breakpoint
 * again, and no single-step unless gdb asked for one. On the vCPU's own
 * thread between two KVM_RUNs (state READY). */
static void rearm_after_step_over(struct spk_gdb *g, struct spk_vcpu *vcpu)
{
	bool um = stub_user_mode(vcpu);

	pthread_mutex_lock(&g->lock);
	struct spk_vcpu_debug d = vcpu_debug(g, spk_vcpu_id(vcpu), um);
	pthread_mutex_unlock(&g->lock);
	if (spk_vcpu_set_debug(vcpu, &d) < 0)
		stub_say("vCPU %u: cannot arm the breakpoints again: %s", spk_vcpu_id(vcpu),
		         spk_last_error());
}

static enum spk_action on_debug(struct spk_gdb *g, struct spk_vcpu *vcpu, struct spk_exit *e)
{
	uint32_t id = spk_vcpu_id(vcpu);
	struct stop s;

	if (id >= MAX_VCPUS)
		return SPK_ACT_DEFAULT;
	pthread_mutex_lock(&g->lock);
	if (g->state == ST_FREE || g->state == ST_ENDED) {
		pthread_mutex_unlock(&g->lock);
		return SPK_ACT_CONTINUE; /* left over from a session that ended */
	}
	bool rearm = false;
	bool stop = classify(g, vcpu, e, &s, &rearm);
	if (stop && g->state != ST_RUNNING) {
		/* another vCPU is stopping the VM: keep a watchpoint hit for
		 * later (a breakpoint just hits again when it runs) */
		if (s.why >= WHY_WATCH)
			g->cpu[id].pending = s;
		stop = false;
	}
	if (stop)
		stub_set_state(g, ST_STOPPING);
	pthread_mutex_unlock(&g->lock);
	if (stop)
		stop_from_vcpu(g, spk_vcpu_vm(vcpu), &s);
	else if (rearm)
		rearm_after_step_over(g, vcpu);
	return SPK_ACT_CONTINUE; /* the runner parks this thread while paused */
}

/* A vCPU about to start (CPU_UP) gets the debug settings before its first instruction. */
static void prepare_new_vcpu(struct spk_gdb *g, struct spk_vm *vm, uint64_t target)
{
	struct spk_vcpu *v;

	if (target >= spk_vm_max_vcpus(vm) || target >= MAX_VCPUS)
		return;
	pthread_mutex_lock(&g->lock);
	bool active = g->state != ST_FREE && g->state != ST_ENDED;
	struct spk_vcpu_debug d = vcpu_debug(g, (uint32_t)target, false);
	pthread_mutex_unlock(&g->lock);
	if (!active || !d.enable)
		return;
	v = spk_vm_vcpu(vm, (uint32_t)target);
	if (!v && spk_vcpu_create(vm, (uint32_t)target, &v) < 0)
		return; /* the runner will say why when it tries */
	if (spk_vcpu_state(v) != SPK_VCPU_RUNNING)
		spk_vcpu_set_debug(v, &d);
}

enum spk_action spk_gdb_on_exit(struct spk_gdb *g, struct spk_vcpu *vcpu, struct spk_exit *e)
{
	if (!g)
		return SPK_ACT_DEFAULT;
	if (e->kind == SPK_EXIT_DEBUG)
		return on_debug(g, vcpu, e);
	if (e->kind == SPK_EXIT_CPU_UP)
		prepare_new_vcpu(g, spk_vcpu_vm(vcpu), e->cpu_up.target_cpu);
	return SPK_ACT_DEFAULT;
}

/* Stop a running VM from the stub thread (Ctrl-C, a new connection). */
int stub_stop(struct spk_gdb *g, int sig)
{
	pthread_mutex_lock(&g->lock);
	if (g->state != ST_RUNNING && g->state != ST_FREE) {
		pthread_mutex_unlock(&g->lock);
		return 0; /* stopped, or a vCPU is stopping it: its report will do */
	}
	enum state before = g->state;
	stub_set_state(g, ST_STOPPING);
	pthread_mutex_unlock(&g->lock);
	int rc = pause_all(g, g->vm);
	pthread_mutex_lock(&g->lock);
	struct spk_vcpu *v = stub_gen_vcpu(g);
	g->stop = (struct stop){.valid = true, .vcpu = v ? spk_vcpu_id(v) : 0, .sig = sig};
	stub_set_state(g, rc == 0 ? ST_STOPPED : before); /* the VM is gone: its end says so */
	pthread_mutex_unlock(&g->lock);
	return rc;
}

/* Wait until no vCPU is in the middle of stopping the VM. */
static void wait_not_stopping(struct spk_gdb *g)
{
	pthread_mutex_lock(&g->lock);
	while (g->state == ST_STOPPING)
		pthread_cond_wait(&g->cond, &g->lock);
	pthread_mutex_unlock(&g->lock);
}

/* A watchpoint hit kept while another vCPU stopped the VM: reported instead of resuming. */
static bool take_pending(struct spk_gdb *g)
{
	for (int i = 0; i < MAX_VCPUS; i++) {
		if (g->cpu[i].pending.valid) {
			g->stop = g->cpu[i].pending;
			g->cpu[i].pending.valid = false;
			return true;
		}
	}
	return false;
}

/* rip as a linear address, what KVM reports as the DEBUG exit's pc */
static uint64_t linear_pc(const struct spk_x86_regs *r, const struct spk_x86_sregs *s)
{
	if ((s->efer & (1ull << 10)) && s->cs.l) /* EFER.LMA and a 64-bit code segment */
		return r->rip;
	return (s->cs.base + r->rip) & 0xffffffffull;
}

/*
 * An instruction breakpoint is a fault: the vCPU stopped before the
 * instruction, and with the debug register still armed it would stop there
 * again at once, with no progress (gdb hides this by taking its breakpoints
 * out and stepping over the one at pc; a raw client, or a breakpoint gdb
 * keeps inserted, sees it). So the vCPU whose breakpoint stop was reported,
 * if rip is still where it stopped (gdb may have moved it), first
 * single-steps that one instruction with the debug registers that hold pc
 * disabled; the step's DEBUG exit arms them again and the vCPU runs on
 * (classify, rearm_after_step_over), or stops if gdb asked for a step.
 * Only that vCPU: another vCPU's hit dropped while this one stopped the VM
 * must still hit when it runs.
 *
 * Why not RFLAGS.RF, what a #DB handler does on real hardware (VMX and
 * SVM would load it from the state KVM_SET_REGS wrote): on this PVM host
 * (6.18.44-fc) rflags read back with RF set after KVM_SET_REGS, yet the
 * vCPU stopped again on the same instruction: KVM's emulator, which runs
 * guest kernel code here and checks the host's code breakpoints itself,
 * does not skip them for RF. The single-step works on VMX, SVM and PVM
 * (here hardware breakpoints only ever hit in kernel mode, which steps).
 */
static void plan_step_over(struct spk_gdb *g)
{
	struct spk_x86_regs r;
	struct spk_x86_sregs sr;

	pthread_mutex_lock(&g->lock);
	struct stop st = g->stop;
	g->stop.exec_bp = false; /* once: the next stop decides again */
	if (st.valid && st.exec_bp && st.vcpu < MAX_VCPUS)
		g->over[st.vcpu] = (struct step_over){.on = true, .pc = st.pc};
	pthread_mutex_unlock(&g->lock);
	/* Also every vCPU whose step over did not end: the VM stopped for
	 * another vCPU before it ran that step (else it reports the same hit
	 * twice). Each only while its rip is still there and a breakpoint is
	 * still armed there (gdb may move rip, and takes its own out first). */
	for (uint32_t id = 0; id < spk_vm_max_vcpus(g->vm) && id < MAX_VCPUS; id++) {
		struct spk_vcpu *v = spk_vm_vcpu(g->vm, id);
		bool keep = false;

		pthread_mutex_lock(&g->lock);
		struct step_over o = g->over[id];
		pthread_mutex_unlock(&g->lock);
		if (!o.on)
			continue;
		if (v && spk_vcpu_get_regs(v, &r) == 0 && spk_vcpu_get_sregs(v, &sr) == 0 &&
		    linear_pc(&r, &sr) == o.pc)
			keep = true;
		pthread_mutex_lock(&g->lock);
		bool armed = false;
		for (int i = 0; i < 4; i++)
			armed |= dr_exec_at(g, i, o.pc);
		g->over[id].on = keep && armed;
		pthread_mutex_unlock(&g->lock);
	}
}

bool stub_resume(struct spk_gdb *g)
{
	pthread_mutex_lock(&g->lock);
	g->stop_owed = true;
	if (take_pending(g)) {
		pthread_mutex_unlock(&g->lock);
		return false;
	}
	pthread_mutex_unlock(&g->lock);
	plan_step_over(g);
	pthread_mutex_lock(&g->lock);
	stub_compute_common(g);
	emulated_snapshot(g);
	pthread_mutex_unlock(&g->lock);
	stub_apply_debug(g);
	pthread_mutex_lock(&g->lock);
	stub_set_state(g, ST_RUNNING);
	pthread_mutex_unlock(&g->lock);
	/* if the VM is gone meanwhile, its end tells gdb (W packet) */
	resume_all(g, g->vm);
	return true;
}

/* The session is over (detach, disconnect): no debug state, the VM runs on. */
void stub_release(struct spk_gdb *g)
{
	wait_not_stopping(g);
	pthread_mutex_lock(&g->lock);
	enum state st = g->state;
	pthread_mutex_unlock(&g->lock);
	if (st == ST_ENDED || st == ST_FREE || !g->vm)
		return;
	/* running: stop it first, so that no vCPU starts a stop meanwhile */
	if (st == ST_RUNNING && stub_stop(g, SIGTRAP_GDB) < 0)
		return;
	points_clear(g);
	pthread_mutex_lock(&g->lock);
	memset(g->cpu, 0, sizeof(g->cpu));
	memset(g->over, 0, sizeof(g->over));
	stub_compute_common(g);
	pthread_mutex_unlock(&g->lock);
	stub_apply_debug(g);
	pthread_mutex_lock(&g->lock);
	stub_set_state(g, ST_FREE);
	g->stop_owed = false;
	pthread_mutex_unlock(&g->lock);
	resume_all(g, g->vm);
}
