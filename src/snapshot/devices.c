// SPDX-License-Identifier: Apache-2.0
/*
 * A machine's set of devices for snapshots: names, state ops, opaques;
 * save all, and load all after matching the file against the set.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sparkler/snapshot.h>

#include "core/internal.h"
#include "snapshot/snap_internal.h"

#define MAX_DEVICES 256

struct entry {
	char name[SPK_SNAP_NAME_MAX];
	const struct spk_dev_state_ops *ops;
	void *opaque;
	int (*quiesce)(void *opaque);
	void *quiesce_opaque;
};

struct spk_snap_devices {
	struct entry e[MAX_DEVICES];
	size_t n;
};

int spk_snap_devices_new(struct spk_snap_devices **out)
{
	if (!out)
		return spk_fail(EINVAL, "snapshot: devices_new needs an out pointer");
	*out = calloc(1, sizeof(**out));
	return *out ? 0 : spk_fail(ENOMEM, "snapshot: out of memory");
}

void spk_snap_devices_free(struct spk_snap_devices *d)
{
	free(d);
}

int spk_snap_devices_add(struct spk_snap_devices *d, const char *name,
                         const struct spk_dev_state_ops *ops, void *opaque)
{
	if (!d)
		return spk_fail(EINVAL, "snapshot: devices_add without a set");
	if (!spk_snap_name_ok(name))
		return spk_fail(EINVAL, "snapshot: device name '%s' is not 1-63 of a-z 0-9 _ .",
		                name ? name : "(null)");
	if (!ops || !ops->kind || !ops->save || !ops->load || !spk_snap_name_ok(ops->kind))
		return spk_fail(EINVAL, "snapshot: device '%s' has no state ops", name);
	for (size_t i = 0; i < d->n; i++)
		if (strcmp(d->e[i].name, name) == 0)
			return spk_fail(EEXIST, "snapshot: device '%s' is added twice", name);
	if (d->n == MAX_DEVICES)
		return spk_fail(ENOSPC, "snapshot: more than %d devices", MAX_DEVICES);
	snprintf(d->e[d->n].name, sizeof(d->e[d->n].name), "%s", name);
	d->e[d->n].ops = ops;
	d->e[d->n].opaque = opaque;
	d->n++;
	return 0;
}

int spk_snap_devices_save(const struct spk_snap_devices *d, struct spk_snap_writer *w)
{
	int rc;

	if (!d || !w)
		return spk_fail(EINVAL, "snapshot: devices_save needs a set and a writer");
	for (size_t i = 0; i < d->n; i++)
		if ((rc = spk_snap_save_device(w, d->e[i].name, d->e[i].ops, d->e[i].opaque)))
			return rc;
	return 0;
}

int spk_snap_devices_add_quiesce(struct spk_snap_devices *d, const char *name,
                                 int (*quiesce)(void *opaque), void *opaque)
{
	if (!d || !name || !quiesce)
		return spk_fail(EINVAL, "snapshot: devices_add_quiesce needs a set, a name and a "
		                        "function");
	for (size_t i = 0; i < d->n; i++)
		if (strcmp(d->e[i].name, name) == 0) {
			if (d->e[i].quiesce)
				return spk_fail(
				    EEXIST, "snapshot: device '%s' has a quiesce already", name);
			d->e[i].quiesce = quiesce;
			d->e[i].quiesce_opaque = opaque;
			return 0;
		}
	return spk_fail(ENOENT, "snapshot: devices_add_quiesce: no device '%s' in the set", name);
}

int spk_snap_devices_quiesce(const struct spk_snap_devices *d)
{
	int rc;

	if (!d)
		return spk_fail(EINVAL, "snapshot: devices_quiesce needs a set");
	for (size_t i = 0; i < d->n; i++)
		if (d->e[i].quiesce && (rc = d->e[i].quiesce(d->e[i].quiesce_opaque)) < 0)
			return rc;
	return 0;
}

static const struct entry *lookup(const struct spk_snap_devices *d, const char *name)
{
	for (size_t i = 0; i < d->n; i++)
		if (strcmp(d->e[i].name, name) == 0)
			return &d->e[i];
	return NULL;
}

/* Every device section is in the set with its kind, every device in the file. */
static int match(const struct spk_snap_devices *d, const struct spk_snap_file *f)
{
	struct spk_snap_section_info si;
	size_t found = 0;

	for (size_t i = 0; i < spk_snap_file_sections(f); i++) {
		const struct entry *e;

		if (spk_snap_file_section(f, i, &si) || si.type != SPK_SNAP_SEC_DEVICE)
			continue;
		e = lookup(d, si.name);
		if (!e)
			return spk_fail(
			    EINVAL,
			    "snapshot: section %zu (device '%s', %s): this VM has no such "
			    "device",
			    i, si.name, si.kind);
		if (strcmp(e->ops->kind, si.kind) != 0)
			return spk_fail(
			    EINVAL,
			    "snapshot: section %zu (device '%s', %s): field 'kind': this "
			    "VM's '%s' is a %s",
			    i, si.name, si.kind, si.name, e->ops->kind);
		found++;
	}
	if (found != d->n) {
		for (size_t i = 0; i < d->n; i++) {
			bool in_file = false;

			for (size_t k = 0; k < spk_snap_file_sections(f); k++)
				if (spk_snap_file_section(f, k, &si) == 0 &&
				    si.type == SPK_SNAP_SEC_DEVICE &&
				    strcmp(si.name, d->e[i].name) == 0)
					in_file = true;
			if (!in_file)
				return spk_fail(
				    EINVAL,
				    "snapshot: this VM's device '%s' (%s) is not in the "
				    "snapshot",
				    d->e[i].name, d->e[i].ops->kind);
		}
	}
	return 0;
}

int spk_snap_devices_load(const struct spk_snap_devices *d, const struct spk_snap_file *f)
{
	int rc;

	if (!d || !f)
		return spk_fail(EINVAL, "snapshot: devices_load needs a set and a file");
	if ((rc = match(d, f)))
		return rc;
	for (size_t i = 0; i < d->n; i++)
		if ((rc = spk_snap_load_device(f, d->e[i].name, d->e[i].ops, d->e[i].opaque)))
			return rc;
	return 0;
}
