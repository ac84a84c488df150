// SPDX-License-Identifier: Apache-2.0
/*
 * KVM's dirty log, the mem_dirty_log / mem_dirty_get ops (core/backend.h;
 * what the log is for and the monitor's own writes: core/dirty.c).
 *
 * RAM slots get KVM_MEM_LOG_DIRTY_PAGES while the log is on
 * (spk_kvm_slot_flags, so slots populated later get it too), and a fetch
 * reads each slot's bitmap with KVM_GET_DIRTY_LOG. Where KVM offers
 * KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 the read does not re-protect the pages
 * by itself; the fetch then hands the same bitmap to KVM_CLEAR_DIRTY_LOG,
 * which re-protects only the pages it names (a page written between the
 * two calls is in this fetch's bits already, and a write after the clear
 * faults and is logged again). Without it, KVM_GET_DIRTY_LOG reads and
 * clears in one step.
 *
 * Read-only slots are not logged (KVM_MEM_READONLY cannot be combined
 * with a flag change anyway); the core does not ask for them.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "core/backend.h"
#include "core/internal.h"
#include "kvm/kvm.h"

#define PAGE_SHIFT 12

uint32_t spk_kvm_slot_flags(const struct spk_vm *vm, bool readonly)
{
	if (readonly)
		return KVM_MEM_READONLY;
	return vm->dirty_log ? KVM_MEM_LOG_DIRTY_PAGES : 0;
}

/* Use KVM_CLEAR_DIRTY_LOG where KVM has it (once per VM; it stays on). */
static void try_manual_protect(struct spk_kvm_vm *k)
{
	struct kvm_enable_cap cap = {.cap = KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2,
	                             .args = {KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE}};
	int have = ioctl(k->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2);

	if (k->dirty_manual || have <= 0 || !(have & KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE))
		return;
	k->dirty_manual = spk_kvm_ioctl(k->vm_fd, KVM_ENABLE_CAP, &cap) == 0;
}

/* Set the slot again with the flags of the log's state (vm->dirty_log,
 * which the core set before asking). */
int spk_kvm_mem_dirty_log(struct spk_vm *vm, struct spk_mem_slot *s, bool on)
{
	struct spk_kvm_vm *k = spk_kvm_vm(vm);
	struct kvm_userspace_memory_region r = {
	    .slot = s->id,
	    .flags = on ? KVM_MEM_LOG_DIRTY_PAGES : 0,
	    .guest_phys_addr = s->gpa,
	    .memory_size = s->size,
	    .userspace_addr = (uintptr_t)s->host,
	};
	int rc;

	if (on)
		try_manual_protect(k);
	rc = spk_kvm_ioctl(k->vm_fd, KVM_SET_USER_MEMORY_REGION, &r);
	if (rc < 0)
		return spk_fail(-rc, "kvm: dirty log %s on memory slot %u at 0x%" PRIx64 ": %s",
		                on ? "on" : "off", s->id, s->gpa, strerror(-rc));
	return 0;
}

/* KVM's bits for one slot, ORed into bits. */
int spk_kvm_mem_dirty_get(struct spk_vm *vm, struct spk_mem_slot *s, uint64_t *bits)
{
	struct spk_kvm_vm *k = spk_kvm_vm(vm);
	uint64_t pages = s->size >> PAGE_SHIFT, words = (pages + 63) / 64;
	uint64_t *tmp = calloc(words ? words : 1, sizeof(*tmp));
	struct kvm_dirty_log log = {.slot = s->id, .dirty_bitmap = tmp};
	bool any = false;
	int rc;

	if (!tmp)
		return spk_fail(ENOMEM, "kvm: dirty log: out of memory");
	rc = spk_kvm_ioctl(k->vm_fd, KVM_GET_DIRTY_LOG, &log);
	if (rc < 0) {
		rc = spk_fail(-rc, "kvm: KVM_GET_DIRTY_LOG on slot %u at 0x%" PRIx64 ": %s", s->id,
		              s->gpa, strerror(-rc));
		goto out;
	}
	for (uint64_t w = 0; w < words; w++) {
		bits[w] |= tmp[w];
		any |= tmp[w] != 0;
	}
	if (k->dirty_manual && any) {
		struct kvm_clear_dirty_log clr = {
		    .slot = s->id,
		    .num_pages = (uint32_t)pages,
		    .first_page = 0,
		    .dirty_bitmap = tmp,
		};

		rc = spk_kvm_ioctl(k->vm_fd, KVM_CLEAR_DIRTY_LOG, &clr);
		if (rc < 0)
			rc = spk_fail(-rc,
			              "kvm: KVM_CLEAR_DIRTY_LOG on slot %u at 0x%" PRIx64 ": %s",
			              s->id, s->gpa, strerror(-rc));
	}
out:
	free(tmp);
	return rc;
}

bool spk_vm_dirty_log_on(struct spk_vm *vm)
{
	bool on;

	if (!spk_vm_ok(vm, "ask about the dirty log"))
		return false;
	pthread_mutex_lock(&vm->lock);
	on = vm->dirty_log;
	pthread_mutex_unlock(&vm->lock);
	return on;
}
