/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The runner: one thread per vCPU around spk_vcpu_run(), with the default
 * handling of CPU_UP, CPU_DOWN, SEND_IPI, HALT, SYSTEM_DOWN and RESET, and a
 * deny-by-default end for any exit nobody handled (after Solo5 hvt).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/internal.h"
#include <sparkler/sparkler.h>

struct slot {
	pthread_t thread;
	bool started;  /* a thread was created for this vCPU */
	bool finished; /* ...and has left its loop: safe to join */
};

struct runner {
	struct spk_vm *vm;
	const struct spk_run_ops *ops;
	void *opaque;
	struct spk_run_result *res;

	pthread_mutex_t lock;
	pthread_cond_t idle;
	uint32_t active; /* threads in their loop */
	bool stopping;
	bool have_result;
	struct slot *slots; /* one per possible vCPU */

	/* pause: vCPU threads park between runs while paused */
	bool paused;
	uint32_t parked;
	pthread_cond_t parked_cond; /* a thread parked or left */
	pthread_cond_t resume_cond; /* resumed or stopping */
};

/* Set on a runner's vCPU threads: pause from one of them counts itself. */
static __thread struct runner *self_runner;

struct thread_arg {
	struct runner *r;
	struct spk_vcpu *vcpu;
};

static bool is_stopping(struct runner *r)
{
	pthread_mutex_lock(&r->lock);
	bool s = r->stopping;
	pthread_mutex_unlock(&r->lock);
	return s;
}

static void kick_all(struct runner *r)
{
	for (uint32_t i = 0; i < spk_vm_max_vcpus(r->vm); i++) {
		struct spk_vcpu *v = spk_vm_vcpu(r->vm, i);

		if (v)
			spk_vcpu_kick(v);
	}
}

/* The first call decides the result; every vCPU is then asked to stop. */
static void end_run(struct runner *r, const struct spk_exit *exit, enum spk_exit_kind kind,
		    bool unhandled, const char *report)
{
	pthread_mutex_lock(&r->lock);
	if (!r->have_result) {
		r->have_result = true;
		r->res->kind = kind;
		if (exit)
			r->res->exit = *exit;
		r->res->unhandled = unhandled;
		snprintf(r->res->report, sizeof(r->res->report), "%s", report ? report : "");
	}
	r->stopping = true;
	pthread_cond_broadcast(&r->resume_cond);
	pthread_cond_broadcast(&r->parked_cond);
	pthread_mutex_unlock(&r->lock);
	kick_all(r);
}

static void end_unhandled(struct runner *r, struct spk_vcpu *vcpu, const struct spk_exit *exit)
{
	char line[160], report[256];

	spk_exit_format(exit, line, sizeof(line));
	snprintf(report, sizeof(report), "unhandled exit %s on vCPU %u at RIP 0x%llx: %s",
		 spk_exit_name(exit->kind), spk_vcpu_id(vcpu), (unsigned long long)exit->pc, line);
	spk_log(SPK_LOG_DEBUG, "%s", report); /* the caller reports res->report */
	end_run(r, exit, exit->kind, true, report);
}

static void *vcpu_main(void *p);

/*
 * Between two runs: hold here while the VM is paused. A stop request
 * (spk_vm_request_stop, which must stay async-signal-safe and so cannot
 * signal our condition) is noticed within 50 ms: the vCPU then runs once
 * more and returns the stop.
 */
static void park_if_paused(struct runner *r)
{
	pthread_mutex_lock(&r->lock);
	while (r->paused && !r->stopping && !spk_vm_stop_pending(r->vm)) {
		struct timespec until;

		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += 50L * 1000 * 1000;
		if (until.tv_nsec >= 1000000000) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000;
		}
		r->parked++;
		pthread_cond_broadcast(&r->parked_cond);
		pthread_cond_timedwait(&r->resume_cond, &r->lock, &until);
		r->parked--;
	}
	pthread_mutex_unlock(&r->lock);
}

static int pause_runner(struct runner *r)
{
	struct timespec until;
	int rc = 0;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 1;
	pthread_mutex_lock(&r->lock);
	r->paused = true;
	pthread_mutex_unlock(&r->lock);
	kick_all(r);
	pthread_mutex_lock(&r->lock);
	/* the calling vCPU thread, if it is one, is not running either */
	uint32_t me = self_runner == r ? 1 : 0;
	while (!r->stopping && r->paused && r->parked + me < r->active && rc == 0)
		if (pthread_cond_timedwait(&r->parked_cond, &r->lock, &until) == ETIMEDOUT)
			rc = spk_fail(ETIMEDOUT, "runner: %u of %u vCPUs did not stop within a second",
				      r->active - r->parked - me, r->active);
	pthread_mutex_unlock(&r->lock);
	return rc;
}

int spk_vm_pause(struct spk_vm *vm)
{
	struct runner *r = vm ? spk_vm_runner_get(vm) : NULL;

	if (!r)
		return spk_fail(EINVAL, "runner: pause: the VM is not running");
	int rc = pause_runner(r);
	spk_vm_runner_put(vm);
	return rc;
}

int spk_vm_resume(struct spk_vm *vm)
{
	struct runner *r = vm ? spk_vm_runner_get(vm) : NULL;

	if (!r)
		return spk_fail(EINVAL, "runner: resume: the VM is not running");
	pthread_mutex_lock(&r->lock);
	r->paused = false;
	pthread_cond_broadcast(&r->resume_cond);
	pthread_mutex_unlock(&r->lock);
	spk_vm_runner_put(vm);
	return 0;
}

bool spk_vm_paused(struct spk_vm *vm)
{
	struct runner *r = vm ? spk_vm_runner_get(vm) : NULL;
	bool paused = false;

	if (r) {
		pthread_mutex_lock(&r->lock);
		paused = r->paused;
		pthread_mutex_unlock(&r->lock);
		spk_vm_runner_put(vm);
	}
	return paused;
}

/* With r->lock held. */
static int start_thread(struct runner *r, struct spk_vcpu *vcpu)
{
	struct slot *s = &r->slots[spk_vcpu_id(vcpu)];
	struct thread_arg *a;

	if (r->stopping)
		return spk_fail(ECANCELED, "runner: the VM is stopping");
	if (s->started && !s->finished)
		return spk_fail(EBUSY, "runner: vCPU %u already has a thread", spk_vcpu_id(vcpu));
	if (s->started)
		pthread_join(s->thread, NULL); /* it has left its loop: prompt */
	s->started = s->finished = false;
	a = malloc(sizeof(*a));
	if (!a)
		return spk_fail(ENOMEM, "runner: out of memory");
	*a = (struct thread_arg){r, vcpu};
	int rc = pthread_create(&s->thread, NULL, vcpu_main, a);
	if (rc) {
		free(a);
		return spk_fail(rc, "runner: cannot start a thread for vCPU %u: %s",
				spk_vcpu_id(vcpu), strerror(rc));
	}
	s->started = true;
	r->active++;
	return 0;
}

static int cpu_up(struct runner *r, const struct spk_exit *exit)
{
	uint64_t target = exit->cpu_up.target_cpu;
	struct spk_vcpu *t;
	int rc;

	if (target >= spk_vm_max_vcpus(r->vm))
		return spk_fail(EINVAL, "runner: CPU_UP of vCPU %llu, the VM has %u",
				(unsigned long long)target, spk_vm_max_vcpus(r->vm));
	pthread_mutex_lock(&r->lock);
	t = spk_vm_vcpu(r->vm, (uint32_t)target);
	if (!t && (rc = spk_vcpu_create(r->vm, (uint32_t)target, &t)) < 0)
		goto out_unlock;
	enum spk_vcpu_state st = spk_vcpu_state(t);
	if (st != SPK_VCPU_CREATED && st != SPK_VCPU_STOPPED) {
		rc = spk_fail(EBUSY, "runner: CPU_UP of vCPU %u, which is %s", spk_vcpu_id(t),
			      spk_vcpu_state_name(st));
		goto out_unlock;
	}
	if (r->ops && r->ops->start_vcpu)
		rc = r->ops->start_vcpu(t, exit->cpu_up.entry_point, exit->cpu_up.arg, r->opaque);
	else
		rc = spk_vcpu_start_default(t, exit->cpu_up.entry_point, exit->cpu_up.arg);
	if (rc == 0)
		rc = start_thread(r, t);
out_unlock:
	pthread_mutex_unlock(&r->lock);
	return rc;
}

static int send_ipi(struct runner *r, struct spk_vcpu *self, const struct spk_exit *exit)
{
	uint32_t me = spk_vcpu_id(self), n = spk_vm_max_vcpus(r->vm);
	int delivered = 0;

	if (exit->ipi.vector > 255)
		return spk_fail(EINVAL, "runner: IPI vector %llu is above 255",
				(unsigned long long)exit->ipi.vector);
	for (uint32_t i = 0; i < n; i++) {
		bool want = exit->ipi.to_all ? (i != me || exit->ipi.to_self)
					     : exit->ipi.to_self ? i == me
								 : i == exit->ipi.target_cpu;
		struct spk_vcpu *t = want ? spk_vm_vcpu(r->vm, i) : NULL;

		if (t && spk_vcpu_interrupt(t, (uint8_t)exit->ipi.vector) == 0)
			delivered++;
	}
	if (!delivered && !exit->ipi.to_all)
		return spk_fail(ENODEV, "runner: IPI to vCPU %llu, which does not exist",
				(unsigned long long)exit->ipi.target_cpu);
	return 0;
}

/* HALT without an in-kernel irqchip: sleep until an interrupt can wake it. */
static bool halt(struct runner *r, struct spk_vcpu *vcpu)
{
	if (!spk_vcpu_halt_wakeable(vcpu)) {
		spk_log(SPK_LOG_INFO, "vCPU %u halted with interrupts off: it is stopped",
			spk_vcpu_id(vcpu));
		spk_vcpu_stop(vcpu);
		return false;
	}
	spk_vcpu_wait_event(vcpu);
	return !is_stopping(r);
}

/* The default action; returns whether the vCPU runs on. */
static bool default_action(struct runner *r, struct spk_vcpu *vcpu, struct spk_exit *exit)
{
	int rc;

	switch (exit->kind) {
	case SPK_EXIT_NONE:
		return true;
	case SPK_EXIT_CANCELLED:
		return !is_stopping(r);
	case SPK_EXIT_CPU_UP:
		rc = cpu_up(r, exit);
		if (rc < 0)
			spk_log(SPK_LOG_WARN, "%s", spk_last_error());
		spk_exit_complete_read(exit, (uint64_t)(int64_t)rc);
		return true;
	case SPK_EXIT_CPU_DOWN:
		spk_vcpu_stop(vcpu);
		return false;
	case SPK_EXIT_SEND_IPI:
		rc = send_ipi(r, vcpu, exit);
		spk_exit_complete_read(exit, (uint64_t)(int64_t)rc);
		return true;
	case SPK_EXIT_HALT:
		return halt(r, vcpu);
	case SPK_EXIT_SYSTEM_DOWN:
	case SPK_EXIT_RESET:
		end_run(r, exit, exit->kind, false, NULL);
		return false;
	default:
		end_unhandled(r, vcpu, exit);
		return false;
	}
}

static void *vcpu_main(void *p)
{
	struct thread_arg a = *(struct thread_arg *)p;
	struct runner *r = a.r;
	struct spk_exit exit;

	free(p);
	self_runner = r;
	if (r->ops && r->ops->thread_start)
		r->ops->thread_start(a.vcpu, r->opaque);
	for (;;) {
		park_if_paused(r);
		if (is_stopping(r))
			break;
		if (spk_vcpu_run(a.vcpu, &exit) < 0) {
			char report[256];

			snprintf(report, sizeof(report), "vCPU %u cannot run: %s",
				 spk_vcpu_id(a.vcpu), spk_last_error());
			spk_log(SPK_LOG_ERROR, "%s", report);
			end_run(r, NULL, SPK_EXIT_INTERNAL_ERROR, true, report);
			break;
		}
		enum spk_action act = SPK_ACT_DEFAULT;
		if (r->ops && r->ops->on_exit)
			act = r->ops->on_exit(a.vcpu, &exit, r->opaque);
		if (act == SPK_ACT_CONTINUE)
			continue;
		if (act == SPK_ACT_STOP_VCPU) {
			spk_vcpu_stop(a.vcpu);
			break;
		}
		if (act == SPK_ACT_STOP_VM) {
			end_run(r, &exit, exit.kind, false, NULL);
			break;
		}
		if (!default_action(r, a.vcpu, &exit))
			break;
	}
	pthread_mutex_lock(&r->lock);
	r->slots[spk_vcpu_id(a.vcpu)].finished = true;
	if (--r->active == 0)
		pthread_cond_broadcast(&r->idle);
	pthread_cond_broadcast(&r->parked_cond);
	pthread_mutex_unlock(&r->lock);
	self_runner = NULL;
	return NULL;
}

static int start_ready(struct runner *r)
{
	uint32_t started = 0;
	int rc = 0;

	pthread_mutex_lock(&r->lock);
	for (uint32_t i = 0; i < spk_vm_max_vcpus(r->vm) && rc == 0; i++) {
		struct spk_vcpu *v = spk_vm_vcpu(r->vm, i);

		if (v && spk_vcpu_state(v) == SPK_VCPU_READY) {
			rc = start_thread(r, v);
			started += rc == 0;
		}
	}
	pthread_mutex_unlock(&r->lock);
	if (rc == 0 && started == 0)
		rc = spk_fail(EINVAL, "runner: no vCPU is READY to run");
	return rc;
}

void spk_vm_runner_abort(struct spk_vm *vm, const char *why)
{
	struct runner *r = spk_vm_runner_get(vm);

	if (!r)
		return;
	end_run(r, NULL, SPK_EXIT_CANCELLED, true, why);
	spk_vm_runner_put(vm);
}

bool spk_vm_on_own_thread(const struct spk_vm *vm)
{
	return self_runner && self_runner->vm == vm;
}

int spk_vm_run(struct spk_vm *vm, const struct spk_run_ops *ops, void *opaque,
	       struct spk_run_result *res)
{
	struct runner r = {.vm = vm, .ops = ops, .opaque = opaque, .res = res};
	struct spk_run_result scratch;
	int rc;

	if (!res)
		return spk_fail(EINVAL, "runner: spk_vm_run needs a result");
	if (!spk_vm_max_vcpus(vm)) /* NULL or dead: the message is set */
		return -EINVAL;
	/* the result fills a scratch copy: a refused second run must not
	 * touch the first's result if the caller passed the same one */
	memset(&scratch, 0, sizeof(scratch));
	r.res = &scratch;
	r.slots = calloc(spk_vm_max_vcpus(vm), sizeof(*r.slots));
	if (!r.slots)
		return spk_fail(ENOMEM, "runner: out of memory");
	pthread_mutex_init(&r.lock, NULL);
	pthread_cond_init(&r.idle, NULL);
	pthread_cond_init(&r.parked_cond, NULL);
	pthread_cond_init(&r.resume_cond, NULL);
	r.paused = ops && ops->start_paused;
	rc = spk_vm_set_runner(vm, &r);
	if (rc < 0)
		goto out_free;

	rc = start_ready(&r);
	if (rc < 0)
		end_run(&r, NULL, SPK_EXIT_INTERNAL_ERROR, true, spk_last_error());
	pthread_mutex_lock(&r.lock);
	while (r.active)
		pthread_cond_wait(&r.idle, &r.lock);
	pthread_mutex_unlock(&r.lock);
	for (uint32_t i = 0; i < spk_vm_max_vcpus(vm); i++)
		if (r.slots[i].started)
			pthread_join(r.slots[i].thread, NULL);
	if (!r.have_result)
		scratch.kind = SPK_EXIT_CPU_DOWN; /* every vCPU stopped itself */
	*res = scratch;

	spk_vm_runner_clear(vm);
out_free:
	pthread_cond_destroy(&r.parked_cond);
	pthread_cond_destroy(&r.resume_cond);
	pthread_cond_destroy(&r.idle);
	pthread_mutex_destroy(&r.lock);
	free(r.slots);
	return rc;
}
