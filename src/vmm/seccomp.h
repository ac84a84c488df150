/* SPDX-License-Identifier: Apache-2.0 */
/* seccomp allowlists for the threads of the sparkler program (seccomp.c). */
#ifndef SPK_VMM_SECCOMP_H
#define SPK_VMM_SECCOMP_H

#include <stdbool.h>

enum spk_seccomp_profile {
	SPK_SECCOMP_VCPU = 0, /* KVM_RUN and device emulation on the vCPU thread */
	SPK_SECCOMP_DEVICE,   /* virtio event loops: files, sockets, eventfds */
};

/* false with --no-seccomp (said loudly at start). */
extern bool spk_seccomp_enabled;

/*
 * Filter the calling thread (and the threads it creates later) with the
 * profile's allowlist; name (at most 15 characters) is what the SIGSYS
 * report calls the thread. 0 or -errno; a no-op when disabled.
 */
int spk_seccomp_install(enum spk_seccomp_profile p, const char *name);

/* The name the calling thread installed its filter under. */
const char *spk_seccomp_thread_name(void);

#endif
