/* SPDX-License-Identifier: Apache-2.0 */
/* seccomp allowlists for the threads of the sparkler program (seccomp.c). */
#ifndef SPK_VMM_SECCOMP_POLICY_H
#define SPK_VMM_SECCOMP_POLICY_H

#include <stdbool.h>

enum spk_seccomp_profile {
	SPK_SECCOMP_VCPU = 0, /* KVM_RUN and device emulation on the vCPU thread */
	SPK_SECCOMP_DEVICE,   /* virtio event loops, the gdb stub: files, sockets */
	SPK_SECCOMP_API,      /* the API process: also opens files and makes VMs */
	SPK_SECCOMP_MONITOR,  /* the main thread of `run`, the API's VM thread: makes VMs */
	SPK_SECCOMP_SIGNAL,   /* the signal thread of `run`: sigwait, stop, power button */
	SPK_SECCOMP_TIMER,    /* watchdogs: a timed wait, then a kick or a shutdown(2) */
	SPK_SECCOMP_REAPER,   /* the jail's outer parent: waitpid and kill */
};

/* false with --no-seccomp (said loudly at start). */
extern bool spk_seccomp_enabled;

/* Called, when set, right before the process dies of a seccomp trap
 * (SIGSYS) or of a filter it cannot install (_exit, no atexit): must be
 * async-signal-safe. `sparkler run` restores the terminal with it. */
extern void (*volatile spk_seccomp_fatal_hook)(void);

/*
 * Filter the calling thread (and the threads it creates later) with the
 * profile's allowlist; name (at most 15 characters) is what the SIGSYS
 * report calls the thread. 0 or -errno; a no-op when disabled.
 */
int spk_seccomp_install(enum spk_seccomp_profile p, const char *name);

/* The same, but a failure ends the process (status 4) with a message:
 * a thread meant to be filtered never runs unfiltered. */
void spk_seccomp_install_or_die(enum spk_seccomp_profile p, const char *name);

/* Say loudly that filters are off (--no-seccomp); once per process. */
void spk_seccomp_warn_if_off(void);

/* The name the calling thread installed its filter under. */
const char *spk_seccomp_thread_name(void);

#endif
