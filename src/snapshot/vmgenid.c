// SPDX-License-Identifier: Apache-2.0
/*
 * The VM generation ID (Microsoft's "Virtual Machine Generation ID" paper;
 * Linux's drivers/virt/vmgenid.c): 16 random bytes at a guest-physical
 * address the ACPI device \_SB.VGEN's ADDR method gives (src/boot/acpi.c),
 * in memory the guest does not own (e820 reserved). When the VM starts
 * again from a saved point (a restore, a clone, an in-place reset) the
 * monitor writes a new ID there and raises the notification (a GPE whose
 * \_GPE._Exx method does Notify(\_SB.VGEN, 0x80)); the guest then sees the
 * ID changed and reseeds its RNG, so two clones of one snapshot do not
 * draw the same random numbers.
 *
 * The device keeps its own copy of the ID (what it last wrote): the guest
 * may scribble over the page, spk_vmgenid_get still answers the truth.
 *
 * State (snapshot.h): the address and the ID, "for the record"; a load
 * checks the address and then gives the VM a new ID (that is the point of
 * the device), written over the restored memory, and notifies.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <sparkler/snapshot.h>

#include "core/internal.h"

struct spk_vmgenid {
	pthread_mutex_t lock;
	struct spk_mem *mem;
	uint64_t gpa;
	int (*notify)(void *ctx);
	void *notify_ctx;
	uint8_t id[SPK_VMGENID_LEN];
	uint64_t changes;
};

static int random_id(uint8_t id[SPK_VMGENID_LEN])
{
	size_t done = 0;

	while (done < SPK_VMGENID_LEN) {
		ssize_t r = getrandom(id + done, SPK_VMGENID_LEN - done, 0);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return spk_fail(r < 0 ? errno : EIO, "vmgenid: getrandom: %s",
			                strerror(r < 0 ? errno : EIO));
		done += (size_t)r;
	}
	return 0;
}

/* Write id to guest memory and keep it; under the lock. */
static int store(struct spk_vmgenid *g, const uint8_t id[SPK_VMGENID_LEN])
{
	int rc = spk_mem_write(g->mem, g->gpa, id, SPK_VMGENID_LEN);

	if (rc < 0)
		return spk_fail(-rc, "vmgenid: cannot write the ID at 0x%" PRIx64, g->gpa);
	memcpy(g->id, id, SPK_VMGENID_LEN);
	return 0;
}

int spk_vmgenid_new(const struct spk_vmgenid_config *cfg, struct spk_vmgenid **out)
{
	uint8_t id[SPK_VMGENID_LEN];
	struct spk_vmgenid *g;
	int rc;

	if (!out)
		return spk_fail(EINVAL, "vmgenid: no place for the device");
	*out = NULL;
	if (!cfg || !cfg->mem)
		return spk_fail(EINVAL, "vmgenid: no config or no guest memory");
	if (cfg->gpa % SPK_VMGENID_LEN || cfg->gpa > UINT64_MAX - SPK_VMGENID_LEN)
		return spk_fail(EINVAL, "vmgenid: address 0x%" PRIx64 " is not 16-byte aligned",
		                cfg->gpa);
	if (!spk_mem_ptr(cfg->mem, cfg->gpa, SPK_VMGENID_LEN, SPK_MEM_R))
		return spk_fail(EINVAL, "vmgenid: [0x%" PRIx64 ", +16) is not guest memory",
		                cfg->gpa);
	if ((rc = random_id(id)) < 0)
		return rc;
	if (!(g = calloc(1, sizeof(*g))))
		return spk_fail(ENOMEM, "vmgenid: out of memory");
	if ((rc = pthread_mutex_init(&g->lock, NULL))) {
		free(g);
		return spk_fail(rc, "vmgenid: mutex: %s", strerror(rc));
	}
	g->mem = cfg->mem;
	g->gpa = cfg->gpa;
	g->notify = cfg->notify;
	g->notify_ctx = cfg->notify_ctx;
	if ((rc = store(g, id)) < 0) {
		spk_vmgenid_free(g);
		return rc;
	}
	*out = g;
	return 0;
}

void spk_vmgenid_free(struct spk_vmgenid *g)
{
	if (!g)
		return;
	pthread_mutex_destroy(&g->lock);
	free(g);
}

int spk_vmgenid_get(struct spk_vmgenid *g, uint8_t id[SPK_VMGENID_LEN])
{
	if (!g || !id)
		return spk_fail(EINVAL, "vmgenid: get needs a device and a buffer");
	pthread_mutex_lock(&g->lock);
	memcpy(id, g->id, SPK_VMGENID_LEN);
	pthread_mutex_unlock(&g->lock);
	return 0;
}

uint64_t spk_vmgenid_address(const struct spk_vmgenid *g)
{
	if (!g) {
		spk_fail(EINVAL, "vmgenid: no device");
		return 0;
	}
	return g->gpa;
}

uint64_t spk_vmgenid_changes(struct spk_vmgenid *g)
{
	uint64_t n;

	if (!g) {
		spk_fail(EINVAL, "vmgenid: no device");
		return 0;
	}
	pthread_mutex_lock(&g->lock);
	n = g->changes;
	pthread_mutex_unlock(&g->lock);
	return n;
}

int spk_vmgenid_set(struct spk_vmgenid *g, const uint8_t id[SPK_VMGENID_LEN])
{
	uint8_t fresh[SPK_VMGENID_LEN];
	int rc;

	if (!g)
		return spk_fail(EINVAL, "vmgenid: set needs a device");
	if (!id) {
		if ((rc = random_id(fresh)) < 0)
			return rc;
		id = fresh;
	}
	pthread_mutex_lock(&g->lock);
	rc = store(g, id);
	if (rc == 0)
		g->changes++;
	pthread_mutex_unlock(&g->lock);
	/* outside the lock: the notifier takes the PM device's */
	if (rc == 0 && g->notify)
		rc = g->notify(g->notify_ctx);
	return rc;
}

/* ---- state ---- */

static int vg_save(void *opaque, struct spk_snap_writer *w)
{
	struct spk_vmgenid *g = opaque;

	pthread_mutex_lock(&g->lock);
	spk_snap_put_u64(w, "gpa", g->gpa);
	spk_snap_put_bytes(w, "id", g->id, SPK_VMGENID_LEN);
	pthread_mutex_unlock(&g->lock);
	return spk_snap_writer_error(w);
}

static int vg_load(void *opaque, struct spk_snap_reader *r)
{
	struct spk_vmgenid *g = opaque;
	uint8_t saved[SPK_VMGENID_LEN];
	uint64_t gpa;
	int rc;

	if ((rc = spk_snap_get_u64(r, "gpa", &gpa)) ||
	    (rc = spk_snap_get_bytes(r, "id", saved, sizeof(saved))))
		return rc;
	if (gpa != g->gpa)
		return spk_snap_bad(r, "gpa", "0x%" PRIx64 ", this VM's ID is at 0x%" PRIx64, gpa,
		                    g->gpa);
	if ((rc = spk_snap_reader_done(r)))
		return rc;
	/* a VM that runs again from a saved point is a new generation */
	return spk_vmgenid_set(g, NULL);
}

static const struct spk_dev_state_ops vg_state = {"vmgenid", 1, vg_save, vg_load};

const struct spk_dev_state_ops *spk_vmgenid_state_ops(void)
{
	return &vg_state;
}
