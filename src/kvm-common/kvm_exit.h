/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What KVM's run loop has in common on every architecture, for the KVM
 * backends (src/kvm/, src/kvm-arm64/): one KVM_RUN with its kick
 * handling, and the exits whose translation does not depend on the
 * architecture. Not installed; header only (each backend is linked alone).
 */
#ifndef SPK_KVM_COMMON_KVM_EXIT_H
#define SPK_KVM_COMMON_KVM_EXIT_H

#include <errno.h>
#include <linux/kvm.h>
#include <string.h>
#include <sys/ioctl.h>

#include "core/backend.h"

/*
 * One KVM_RUN of the vCPU fd: 0 when it exited (translate run next);
 * -EINTR for a kick, a wakeup or a stray signal (immediate_exit cleared:
 * the core looks at its flags and enters again); else -errno with *exit
 * an INTERNAL_ERROR (SPK_INTERNAL_RUN_FAILED) whose pc the caller sets.
 */
static inline int spk_kvm_run_once(int fd, struct kvm_run *run, struct spk_exit *exit)
{
	int rc = ioctl(fd, KVM_RUN, 0);
	int err = errno;

	if (rc == 0)
		return 0;
	__atomic_store_n(&run->immediate_exit, 0, __ATOMIC_SEQ_CST);
	if (err == EINTR || err == EAGAIN)
		return -EINTR;
	spk_exit_set_internal(exit, SPK_INTERNAL_RUN_FAILED, (uint64_t)err, "KVM_RUN: %s",
	                      strerror(err));
	return -err;
}

/* KVM_EXIT_SYSTEM_EVENT: SHUTDOWN is SYSTEM_DOWN, RESET is RESET (source
 * SYSTEM_EVENT); anything else (a crash) an INTERNAL_ERROR. */
static inline void spk_kvm_system_event(const struct kvm_run *run, struct spk_exit *exit)
{
	switch (run->system_event.type) {
	case KVM_SYSTEM_EVENT_SHUTDOWN:
		exit->kind = SPK_EXIT_SYSTEM_DOWN;
		exit->system_down.source = SPK_SOURCE_SYSTEM_EVENT;
		break;
	case KVM_SYSTEM_EVENT_RESET:
		exit->kind = SPK_EXIT_RESET;
		exit->reset.source = SPK_SOURCE_SYSTEM_EVENT;
		break;
	default:
		spk_exit_set_internal(exit, SPK_INTERNAL_UNKNOWN_EXIT, run->system_event.type,
		                      "KVM system event %u (crash or unknown)",
		                      run->system_event.type);
		break;
	}
}

/* KVM_EXIT_FAIL_ENTRY, as KVM reports it. */
static inline void spk_kvm_fail_entry(const struct kvm_run *run, struct spk_exit *exit)
{
	exit->kind = SPK_EXIT_FAIL_ENTRY;
	exit->fail_entry.hardware_entry_failure_reason =
	    run->fail_entry.hardware_entry_failure_reason;
	exit->fail_entry.cpu = run->fail_entry.cpu;
}

#endif
