// SPDX-License-Identifier: Apache-2.0
/*
 * The dirty log: which guest pages were written since it was started or
 * last fetched, for diff snapshots and in-place reset (docs/snapshots.md).
 *
 * Two writers touch guest RAM. The guest's own writes (and KVM's, such as
 * kvmclock pages) are in KVM's per-slot dirty bitmap: RAM slots get
 * KVM_MEM_LOG_DIRTY_PAGES while the log is on (spk_kvm_slot_flags, so
 * slots populated later get it too), and a fetch reads each slot's bitmap
 * with KVM_GET_DIRTY_LOG. Where KVM offers KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2
 * the read does not re-protect the pages by itself; the fetch then hands
 * the same bitmap to KVM_CLEAR_DIRTY_LOG, which re-protects only the pages
 * it names (a page written between the two calls is in this fetch's bits
 * already, and a write after the clear faults and is logged again).
 * Without it, KVM_GET_DIRTY_LOG reads and clears in one step. The
 * monitor's own writes (device code, loaders) never go through the
 * guest's page tables, so KVM does not see them: the memory map records
 * them (mem.c, spk_mem_mark_dirty) and a fetch takes those bits too.
 *
 * Read-only slots are not logged: the guest cannot write them (KVM_MEM_READONLY
 * cannot be combined with a flag change anyway); the loaders' writes into
 * them are in the monitor's bits.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include <sparkler/snapshot.h>
#include <sparkler/vm.h>

#include "core/internal.h"
#include "kvm/kvm.h"

#define PAGE_SHIFT 12

uint32_t spk_kvm_slot_flags(const struct spk_vm *vm, bool readonly)
{
	if (readonly)
		return KVM_MEM_READONLY;
	return vm->dirty_log ? KVM_MEM_LOG_DIRTY_PAGES : 0;
}

static bool map_readonly(const struct spk_vm *vm, const struct spk_kvm_map *m)
{
	const struct spk_mem_region *r = spk_mem_find(vm->mem, m->gpa);

	return r && r->type == SPK_MEM_READONLY;
}

/* Set map's slot again with the flags of the log's current state. */
static int reflag(struct spk_vm *vm, const struct spk_kvm_map *m)
{
	struct kvm_userspace_memory_region r = {
	    .slot = m->slot,
	    .flags = spk_kvm_slot_flags(vm, false),
	    .guest_phys_addr = m->gpa,
	    .memory_size = m->size,
	    .userspace_addr = (uintptr_t)m->host,
	};
	int rc = spk_kvm_ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &r);

	if (rc < 0)
		return spk_fail(-rc, "kvm: dirty log %s on memory slot %u at 0x%" PRIx64 ": %s",
		                vm->dirty_log ? "on" : "off", m->slot, m->gpa, strerror(-rc));
	return 0;
}

static bool logged(const struct spk_vm *vm, const struct spk_kvm_map *m)
{
	return m->has_slot && m->host && !map_readonly(vm, m);
}

/* Turn the log on or off on every RAM slot; on failure put back the ones done. */
static int reflag_all(struct spk_vm *vm, bool on)
{
	uint32_t i;
	int rc = 0;

	vm->dirty_log = on;
	for (i = 0; i < vm->n_maps && rc == 0; i++)
		if (logged(vm, &vm->maps[i]))
			rc = reflag(vm, &vm->maps[i]);
	if (rc == 0)
		return 0;
	vm->dirty_log = !on;
	for (uint32_t k = 0; k + 1 < i; k++)
		if (logged(vm, &vm->maps[k]))
			reflag(vm, &vm->maps[k]); /* best effort: it was accepted before */
	return rc;
}

/* Use KVM_CLEAR_DIRTY_LOG where KVM has it (once per VM; it stays on). */
static void try_manual_protect(struct spk_vm *vm)
{
	struct kvm_enable_cap cap = {.cap = KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2,
	                             .args = {KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE}};
	int have = ioctl(vm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2);

	if (vm->dirty_manual || have <= 0 || !(have & KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE))
		return;
	vm->dirty_manual = spk_kvm_ioctl(vm->vm_fd, KVM_ENABLE_CAP, &cap) == 0;
}

int spk_vm_dirty_log_start(struct spk_vm *vm)
{
	int rc;

	if (!spk_vm_ok(vm, "start the dirty log"))
		return -EINVAL;
	pthread_mutex_lock(&vm->lock);
	if (vm->dirty_log) {
		rc = spk_fail(EALREADY, "vm: the dirty log is already on");
		goto out;
	}
	try_manual_protect(vm);
	/* the monitor's bits first: a write between the two is in both, never lost */
	spk_mem_track(vm->mem, true);
	rc = reflag_all(vm, true);
	if (rc < 0)
		spk_mem_track(vm->mem, false);
out:
	pthread_mutex_unlock(&vm->lock);
	return rc;
}

int spk_vm_dirty_log_stop(struct spk_vm *vm)
{
	int rc;

	if (!spk_vm_ok(vm, "stop the dirty log"))
		return -EINVAL;
	pthread_mutex_lock(&vm->lock);
	if (!vm->dirty_log) {
		rc = spk_fail(EINVAL, "vm: the dirty log is not on");
		goto out;
	}
	rc = reflag_all(vm, false);
	if (rc == 0)
		spk_mem_track(vm->mem, false);
out:
	pthread_mutex_unlock(&vm->lock);
	return rc;
}

/* The slot behind the region at gpa of size bytes, or NULL. */
static const struct spk_kvm_map *find_map(const struct spk_vm *vm, uint64_t gpa, uint64_t size)
{
	for (uint32_t i = 0; i < vm->n_maps; i++)
		if (vm->maps[i].gpa == gpa && vm->maps[i].size == size && vm->maps[i].host)
			return &vm->maps[i];
	return NULL;
}

/* d must name exactly the VM's populated regions, in order (spk_snap_dirty_new). */
static int check_set(const struct spk_vm *vm, const struct spk_snap_dirty *d,
                     const struct spk_kvm_map *maps[SPK_MEM_MAX_REGIONS])
{
	const struct spk_mem_region *r;
	size_t n = spk_mem_regions(vm->mem, &r), k = 0;

	for (size_t i = 0; i < n; i++) {
		if (r[i].type == SPK_MEM_UNPOPULATED)
			continue;
		if (k >= d->n_regions || d->region[k].gpa != r[i].gpa ||
		    d->region[k].pages != (r[i].size + 4095) >> PAGE_SHIFT || !d->region[k].bits)
			return spk_fail(EINVAL,
			                "vm: dirty log: the dirty set does not match region \"%s\" "
			                "at 0x%" PRIx64 "+0x%" PRIx64
			                " (make it with spk_snap_dirty_new after the last memory "
			                "change)",
			                r[i].name, r[i].gpa, r[i].size);
		maps[k] = find_map(vm, r[i].gpa, r[i].size);
		if (!maps[k])
			return spk_fail(EINVAL, "vm: dirty log: region \"%s\" has no memory slot",
			                r[i].name);
		k++;
	}
	if (k != d->n_regions)
		return spk_fail(
		    EINVAL, "vm: dirty log: the dirty set has %zu regions, the VM %zu populated",
		    d->n_regions, k);
	return 0;
}

/* KVM's bits for one slot, ORed into bits (tmp: scratch of the same size). */
static int fetch_slot(struct spk_vm *vm, const struct spk_kvm_map *m, uint64_t *bits, uint64_t *tmp,
                      uint64_t words)
{
	struct kvm_dirty_log log = {.slot = m->slot, .dirty_bitmap = tmp};
	bool any = false;
	int rc;

	memset(tmp, 0, words * sizeof(*tmp));
	rc = spk_kvm_ioctl(vm->vm_fd, KVM_GET_DIRTY_LOG, &log);
	if (rc < 0)
		return spk_fail(-rc, "kvm: KVM_GET_DIRTY_LOG on slot %u at 0x%" PRIx64 ": %s",
		                m->slot, m->gpa, strerror(-rc));
	for (uint64_t w = 0; w < words; w++) {
		bits[w] |= tmp[w];
		any |= tmp[w] != 0;
	}
	if (vm->dirty_manual && any) {
		struct kvm_clear_dirty_log clr = {
		    .slot = m->slot,
		    .num_pages = (uint32_t)(m->size >> PAGE_SHIFT),
		    .first_page = 0,
		    .dirty_bitmap = tmp,
		};

		rc = spk_kvm_ioctl(vm->vm_fd, KVM_CLEAR_DIRTY_LOG, &clr);
		if (rc < 0)
			return spk_fail(-rc,
			                "kvm: KVM_CLEAR_DIRTY_LOG on slot %u at 0x%" PRIx64 ": %s",
			                m->slot, m->gpa, strerror(-rc));
	}
	return 0;
}

/* Every page of d's regions from k on: what a failed fetch leaves (nothing lost). */
static void mark_rest(struct spk_snap_dirty *d, size_t k)
{
	for (; k < d->n_regions; k++)
		for (uint64_t p = 0; p < d->region[k].pages; p++)
			d->region[k].bits[p / 64] |= 1ull << (p % 64);
}

int spk_vm_dirty_log_fetch(struct spk_vm *vm, struct spk_snap_dirty *d)
{
	const struct spk_kvm_map *maps[SPK_MEM_MAX_REGIONS] = {0};
	uint64_t *tmp = NULL, max_words = 0;
	size_t k = 0;
	int rc;

	if (!spk_vm_ok(vm, "fetch the dirty log"))
		return -EINVAL;
	if (!d)
		return spk_fail(EINVAL, "vm: dirty log: no dirty set");
	pthread_mutex_lock(&vm->lock);
	if (!vm->dirty_log) {
		rc = spk_fail(EINVAL, "vm: the dirty log is not on (spk_vm_dirty_log_start)");
		goto out;
	}
	if ((rc = check_set(vm, d, maps)) < 0)
		goto out;
	for (k = 0; k < d->n_regions; k++)
		if (d->region[k].pages / 64 + 1 > max_words)
			max_words = d->region[k].pages / 64 + 1;
	tmp = calloc(max_words ? max_words : 1, sizeof(*tmp));
	if (!tmp) {
		rc = spk_fail(ENOMEM, "vm: dirty log: out of memory");
		goto out;
	}
	for (k = 0; k < d->n_regions; k++) {
		uint64_t words = d->region[k].pages / 64 + 1;

		if (logged(vm, maps[k]) &&
		    (rc = fetch_slot(vm, maps[k], d->region[k].bits, tmp, words)) < 0)
			break;
		spk_mem_written_take(vm->mem, d->region[k].gpa, d->region[k].bits,
		                     d->region[k].pages);
	}
	if (rc < 0)
		mark_rest(d, k);
out:
	free(tmp);
	pthread_mutex_unlock(&vm->lock);
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
