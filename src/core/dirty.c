// SPDX-License-Identifier: Apache-2.0
/*
 * The dirty log: which guest pages were written since it was started or
 * last fetched, for diff snapshots and in-place reset (docs/snapshots.md).
 *
 * Two writers touch guest RAM. The guest's own writes (and the
 * hypervisor's, such as kvmclock pages) are in the backend's per-slot log
 * (the mem_dirty_log / mem_dirty_get ops, core/backend.h; KVM's is
 * src/kvm/dirty.c): RAM slots are logged while the log is on (slots
 * populated later too: the backend reads vm->dirty_log when it adds a
 * slot), and a fetch ORs each slot's bits in. The monitor's own writes
 * (device code, loaders) never go through the guest's page tables, so the
 * hypervisor does not see them: the memory map records them (mem.c,
 * spk_mem_mark_dirty) and a fetch takes those bits too.
 *
 * Read-only slots are not logged: the guest cannot write them; the
 * loaders' writes into them are in the monitor's bits.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <sparkler/snapshot.h>
#include <sparkler/vm.h>

#include "core/backend.h"
#include "core/internal.h"

#define PAGE_SHIFT 12

static bool logged(const struct spk_mem_slot *s)
{
	return s->has_slot && s->host && !s->readonly;
}

static int need_ops(const struct spk_vm *vm)
{
	if (!vm->ops->mem_dirty_log || !vm->ops->mem_dirty_get)
		return spk_fail(ENOTSUP, "vm: the %s backend has no dirty log", vm->ops->name);
	return 0;
}

/* Turn the log on or off on every RAM slot; on failure put back the ones done. */
static int reflag_all(struct spk_vm *vm, bool on)
{
	uint32_t i;
	int rc = 0;

	vm->dirty_log = on;
	for (i = 0; i < vm->n_slots && rc == 0; i++)
		if (logged(&vm->slots[i]))
			rc = vm->ops->mem_dirty_log(vm, &vm->slots[i], on);
	if (rc == 0)
		return 0;
	vm->dirty_log = !on;
	for (uint32_t k = 0; k + 1 < i; k++)
		if (logged(&vm->slots[k])) /* best effort: it was accepted before */
			vm->ops->mem_dirty_log(vm, &vm->slots[k], !on);
	return rc;
}

int spk_vm_dirty_log_start(struct spk_vm *vm)
{
	int rc;

	if (!spk_vm_ok(vm, "start the dirty log"))
		return -EINVAL;
	if ((rc = need_ops(vm)) < 0)
		return rc;
	pthread_mutex_lock(&vm->lock);
	if (vm->dirty_log) {
		rc = spk_fail(EALREADY, "vm: the dirty log is already on");
		goto out;
	}
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
static struct spk_mem_slot *find_slot(struct spk_vm *vm, uint64_t gpa, uint64_t size)
{
	for (uint32_t i = 0; i < vm->n_slots; i++)
		if (vm->slots[i].gpa == gpa && vm->slots[i].size == size && vm->slots[i].host)
			return &vm->slots[i];
	return NULL;
}

/* d must name exactly the VM's populated regions, in order (spk_snap_dirty_new). */
static int check_set(struct spk_vm *vm, const struct spk_snap_dirty *d,
                     struct spk_mem_slot *slots[SPK_MEM_MAX_REGIONS])
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
		slots[k] = find_slot(vm, r[i].gpa, r[i].size);
		if (!slots[k])
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

/* Every page of d's regions from k on: what a failed fetch leaves (nothing lost). */
static void mark_rest(struct spk_snap_dirty *d, size_t k)
{
	for (; k < d->n_regions; k++)
		for (uint64_t p = 0; p < d->region[k].pages; p++)
			d->region[k].bits[p / 64] |= 1ull << (p % 64);
}

int spk_vm_dirty_log_fetch(struct spk_vm *vm, struct spk_snap_dirty *d)
{
	struct spk_mem_slot *slots[SPK_MEM_MAX_REGIONS] = {0};
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
	if ((rc = check_set(vm, d, slots)) < 0)
		goto out;
	for (k = 0; k < d->n_regions; k++) {
		if (logged(slots[k]) &&
		    (rc = vm->ops->mem_dirty_get(vm, slots[k], d->region[k].bits)) < 0)
			break;
		spk_mem_written_take(vm->mem, d->region[k].gpa, d->region[k].bits,
		                     d->region[k].pages);
	}
	if (rc < 0)
		mark_rest(d, k);
out:
	pthread_mutex_unlock(&vm->lock);
	return rc;
}
