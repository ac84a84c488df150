/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the library's public API has on x86-64 only, answered honestly on
 * arm64: -ENOTSUP (NULL, 0) with a message that says so. The x86.h long
 * mode helpers (x86-64's CPU modes), CPUID entries, and the snapshot
 * state of the KVM backend (src/snapshot/vm.c calls these for the VM and
 * vCPU sections: snapshots of arm64 VMs are not there yet, so
 * spk_vm_snapshot, spk_vm_restore and spk_snap_reset_new refuse).
 */
#include <errno.h>
#include <inttypes.h>

#include <sparkler/sparkler.h>

#include "core/backend.h"
#include "core/internal.h"
#include "kvm/state.h"

#define NOT_ON_ARM64(what) spk_fail(ENOTSUP, "%s is x86-64's (not on arm64)", what)
#define NO_SNAPSHOTS()                                                                             \
	spk_fail(ENOTSUP, "snapshot: the kvm-arm64 backend has no snapshots yet (not on arm64)")

uint64_t spk_x86_long_mode_size(uint64_t map_size)
{
	(void)map_size;
	NOT_ON_ARM64("spk_x86_long_mode_size");
	return 0;
}

int spk_x86_build_long_mode(struct spk_mem *mem, uint64_t gpa, uint64_t map_size,
                            struct spk_x86_long_mode *lm)
{
	(void)mem, (void)gpa, (void)map_size, (void)lm;
	return NOT_ON_ARM64("spk_x86_build_long_mode");
}

int spk_x86_long_mode_allow_ports(struct spk_mem *mem, const struct spk_x86_long_mode *lm,
                                  uint32_t first, uint32_t count)
{
	(void)mem, (void)lm, (void)first, (void)count;
	return NOT_ON_ARM64("spk_x86_long_mode_allow_ports (ports)");
}

int spk_x86_vcpu_enter_long_mode(struct spk_vcpu *vcpu, const struct spk_x86_long_mode *lm,
                                 const struct spk_x86_entry *entry)
{
	(void)vcpu, (void)lm, (void)entry;
	return NOT_ON_ARM64("spk_x86_vcpu_enter_long_mode (use arm64.h's registers)");
}

struct spk_cpuid_entry *spk_cpuid_find(struct spk_cpuid_entry *entries, uint32_t n,
                                       uint32_t function, uint32_t index)
{
	(void)entries, (void)n, (void)function, (void)index;
	NOT_ON_ARM64("CPUID (spk_cpuid_find)");
	return NULL;
}

/* ---- snapshots (kvm/state.h's functions, which src/snapshot/vm.c calls) ---- */

int spk_kvm_vcpu_state_save(struct spk_vcpu *vcpu, struct spk_snap_writer *w)
{
	(void)vcpu, (void)w;
	return NO_SNAPSHOTS();
}

int spk_kvm_vcpu_state_load(struct spk_vcpu *vcpu, struct spk_snap_reader *r, bool check_only)
{
	(void)vcpu, (void)r, (void)check_only;
	return NO_SNAPSHOTS();
}

int spk_kvm_vm_state_save(struct spk_vm *vm, struct spk_snap_writer *w)
{
	(void)vm, (void)w;
	return NO_SNAPSHOTS();
}

int spk_kvm_vm_state_load(struct spk_vm *vm, struct spk_snap_reader *r, bool check_only)
{
	(void)vm, (void)r, (void)check_only;
	return NO_SNAPSHOTS();
}

int spk_kvm_header_fill(struct spk_vcpu *vcpu, struct spk_snap_header *h)
{
	(void)vcpu, (void)h;
	return NO_SNAPSHOTS();
}

int spk_kvm_vcpu_cpuid(struct spk_vcpu *vcpu, struct spk_snap_cpuid *out, size_t max, size_t *n)
{
	(void)vcpu, (void)out, (void)max, (void)n;
	return NO_SNAPSHOTS();
}

/* snapshot.h: the dirty log is never on here (no mem_dirty_log op: the
 * core refuses to start it). */
bool spk_vm_dirty_log_on(struct spk_vm *vm)
{
	return spk_vm_ok(vm, "ask about the dirty log") && vm->dirty_log;
}
