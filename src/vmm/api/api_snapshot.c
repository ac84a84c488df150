// SPDX-License-Identifier: Apache-2.0
/*
 * The bodies of PUT /snapshot/create and PUT /snapshot/load (Firecracker's
 * SnapshotCreateParams and SnapshotLoadParams), checked field by field:
 * unknown fields, wrong types and missing fields are schema errors naming
 * the JSON path, as for every other body.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sparkler/snapshot.h>

#include "vmm/api/api.h"
#include "vmm/api/resources_internal.h"

#define SNAP_PATH_MAX 4095

static bool known(const char *key, const char *const *keys, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(key, keys[i]) == 0)
			return true;
	return false;
}

/* body is an object with only these keys. */
static int only_keys(json_t *body, const char *path, const char *const *keys, size_t n,
                     struct spk_res_err *e)
{
	const char *key;
	json_t *v;

	if (!json_is_object(body))
		return spk_res_fail(e, true, path, "expected an object, got %s",
		                    spk_res_json_type(body));
	json_object_foreach(body, key, v)
	{
		if (!known(key, keys, n))
			return spk_res_fail(e, true, path, "unknown field `%s`", key);
	}
	return 0;
}

/* A path field: a string of 1..SNAP_PATH_MAX bytes, copied; missing: NULL or an error. */
static int path_field(json_t *o, const char *path, const char *key, bool required, char **out,
                      struct spk_res_err *e)
{
	json_t *v = json_object_get(o, key);

	*out = NULL;
	if (!v) {
		if (required)
			return spk_res_fail(e, true, path, "missing field `%s`", key);
		return 0;
	}
	if (!json_is_string(v))
		return spk_res_fail(e, true, path, "`%s`: expected a string, got %s", key,
		                    spk_res_json_type(v));
	size_t len = strlen(json_string_value(v));
	if (len == 0 || len > SNAP_PATH_MAX)
		return spk_res_fail(e, false, path, "`%s`: a path needs 1 to %d bytes, not %zu",
		                    key, SNAP_PATH_MAX, len);
	*out = strdup(json_string_value(v));
	return *out ? 0 : spk_res_fail(e, false, path, "out of memory");
}

static int bool_field(json_t *o, const char *path, const char *key, bool *out,
                      struct spk_res_err *e)
{
	json_t *v = json_object_get(o, key);

	if (!v)
		return 0;
	if (!json_is_boolean(v))
		return spk_res_fail(e, true, path, "`%s`: expected a boolean, got %s", key,
		                    spk_res_json_type(v));
	*out = json_is_true(v);
	return 0;
}

void spk_snap_req_free(struct spk_snap_req *q)
{
	free(q->state);
	free(q->mem);
	free(q->vsock_uds);
	memset(q, 0, sizeof(*q));
}

int spk_res_snapshot_create(json_t *body, struct spk_snap_req *q, struct spk_res_err *e)
{
	static const char *const keys[] = {"snapshot_type", "snapshot_path", "mem_file_path",
	                                   "version"};
	json_t *t;

	memset(q, 0, sizeof(*q));
	if (only_keys(body, "$", keys, ARRAY_LEN(keys), e) < 0)
		return -EINVAL;
	t = json_object_get(body, "snapshot_type");
	if (t && !json_is_string(t))
		return spk_res_fail(e, true, "$", "`snapshot_type`: expected a string, got %s",
		                    spk_res_json_type(t));
	if (t && strcmp(json_string_value(t), "Full") != 0 &&
	    strcmp(json_string_value(t), "Diff") != 0)
		return spk_res_fail(e, true, "$.snapshot_type",
		                    "unknown variant `%s`, expected `Full` or `Diff`",
		                    json_string_value(t));
	q->diff = t && strcmp(json_string_value(t), "Diff") == 0;
	if (path_field(body, "$", "snapshot_path", true, &q->state, e) < 0 ||
	    path_field(body, "$", "mem_file_path", true, &q->mem, e) < 0) {
		spk_snap_req_free(q);
		return -EINVAL;
	}
	return 0;
}

/* A clone's MAC (sparkler's field): unicast, not all zero. */
static int override_mac(json_t *o, const char *p, uint8_t *mac, bool *has, struct spk_res_err *e)
{
	json_t *m = json_object_get(o, "guest_mac");

	*has = false;
	if (!m)
		return 0;
	if (!json_is_string(m))
		return spk_res_fail(e, true, p, "`guest_mac`: expected a string, got %s",
		                    spk_res_json_type(m));
	if (spk_res_parse_mac(json_string_value(m), mac) < 0 || (mac[0] & 1) ||
	    !(mac[0] | mac[1] | mac[2] | mac[3] | mac[4] | mac[5]))
		return spk_res_fail(e, false, p,
		                    "`guest_mac`: `%.64s` is not a unicast MAC address like "
		                    "06:00:ac:10:00:02",
		                    json_string_value(m));
	*has = true;
	return 0;
}

/* A clone's vsock (sparkler's field): {"guest_cid": 3.., "uds_path": "..."}. */
static int vsock_override(json_t *o, struct spk_snap_req *q, struct spk_res_err *e)
{
	static const char *const keys[] = {"guest_cid", "uds_path"};
	json_t *cid;

	if (only_keys(o, "$.vsock_override", keys, ARRAY_LEN(keys), e) < 0)
		return -EINVAL;
	cid = json_object_get(o, "guest_cid");
	if (!json_is_integer(cid))
		return spk_res_fail(e, true, "$.vsock_override",
		                    "`guest_cid`: an integer, required");
	if (json_integer_value(cid) < 3 || json_integer_value(cid) >= (json_int_t)UINT32_MAX)
		return spk_res_fail(e, false, "$.vsock_override.guest_cid",
		                    "%lld: CIDs 0-2 are reserved, need 3 to %u",
		                    (long long)json_integer_value(cid), UINT32_MAX - 1);
	q->vsock_cid = (uint32_t)json_integer_value(cid);
	if (path_field(o, "$.vsock_override", "uds_path", true, &q->vsock_uds, e) < 0)
		return -EINVAL;
	if (!q->vsock_uds || strlen(q->vsock_uds) >= SPK_CLONE_PATH_MAX)
		return spk_res_fail(e, false, "$.vsock_override.uds_path",
		                    "a Unix socket path of at most %d bytes", SPK_CLONE_PATH_MAX - 1);
	return 0;
}

static int overrides(json_t *a, struct spk_snap_req *q, struct spk_res_err *e)
{
	static const char *const keys[] = {"iface_id", "host_dev_name", "guest_mac"};
	char p[PATH_BUF];
	size_t i;
	json_t *o;

	if (!json_is_array(a))
		return spk_res_fail(e, true, "$", "`network_overrides`: expected an array, got %s",
		                    spk_res_json_type(a));
	if (json_array_size(a) > SPK_MACHINE_MAX_NETS)
		return spk_res_fail(e, false, "$.network_overrides", "at most %d overrides",
		                    SPK_MACHINE_MAX_NETS);
	json_array_foreach(a, i, o)
	{
		json_t *id, *dev;

		snprintf(p, sizeof(p), "$.network_overrides[%zu]", i);
		if (only_keys(o, p, keys, ARRAY_LEN(keys), e) < 0)
			return -EINVAL;
		id = json_object_get(o, "iface_id");
		dev = json_object_get(o, "host_dev_name");
		if (!json_is_string(id) || !json_is_string(dev))
			return spk_res_fail(e, true, p,
			                    "`iface_id` and `host_dev_name` are strings "
			                    "and both required");
		if (!*json_string_value(id) ||
		    strlen(json_string_value(id)) >= sizeof(q->over[0].id) ||
		    !*json_string_value(dev) ||
		    strlen(json_string_value(dev)) >= sizeof(q->over[0].tap))
			return spk_res_fail(e, false, p,
			                    "an interface id of 1 to %zu bytes and a TAP name of 1 "
			                    "to %zu bytes",
			                    sizeof(q->over[0].id) - 1, sizeof(q->over[0].tap) - 1);
		snprintf(q->over[i].id, sizeof(q->over[i].id), "%s", json_string_value(id));
		snprintf(q->over[i].tap, sizeof(q->over[i].tap), "%s", json_string_value(dev));
		if (override_mac(o, p, &q->over[i].mac[0], &q->over[i].has_mac, e) < 0)
			return -EINVAL;
		for (size_t k = 0; k < i; k++)
			if (strcmp(q->over[k].id, q->over[i].id) == 0 ||
			    strcmp(q->over[k].tap, q->over[i].tap) == 0 ||
			    (q->over[i].has_mac && q->over[k].has_mac &&
			     memcmp(q->over[k].mac, q->over[i].mac, 6) == 0))
				return spk_res_fail(e, false, p,
				                    "the same interface, TAP or MAC as "
				                    "network_overrides[%zu]",
				                    k);
		q->n_over = (uint32_t)i + 1;
	}
	return 0;
}

static int mem_backend(json_t *b, struct spk_snap_req *q, struct spk_res_err *e)
{
	static const char *const keys[] = {"backend_type", "backend_path"};
	json_t *t;

	if (only_keys(b, "$.mem_backend", keys, ARRAY_LEN(keys), e) < 0)
		return -EINVAL;
	t = json_object_get(b, "backend_type");
	if (!json_is_string(t))
		return spk_res_fail(e, true, "$.mem_backend", "`backend_type`: a string, required");
	/* Uffd: backend_path is the Unix socket of a page-fault handler */
	q->uffd = strcmp(json_string_value(t), "Uffd") == 0;
	if (!q->uffd && strcmp(json_string_value(t), "File") != 0)
		return spk_res_fail(e, true, "$.mem_backend.backend_type",
		                    "unknown variant `%s`, expected `File` or `Uffd`",
		                    json_string_value(t));
	return path_field(b, "$.mem_backend", "backend_path", true, &q->mem, e);
}

int spk_res_snapshot_load(json_t *body, struct spk_snap_req *q, struct spk_res_err *e)
{
	static const char *const keys[] = {
	    "snapshot_path",     "mem_file_path", "mem_backend",      "enable_diff_snapshots",
	    "track_dirty_pages", "resume_vm",     "network_overrides", "vsock_override"};
	json_t *mb, *no;
	bool diff = false;

	memset(q, 0, sizeof(*q));
	if (only_keys(body, "$", keys, ARRAY_LEN(keys), e) < 0)
		return -EINVAL;
	mb = json_object_get(body, "mem_backend");
	if (mb && json_object_get(body, "mem_file_path"))
		return spk_res_fail(e, false, "$",
		                    "give either `mem_backend` or `mem_file_path`, not both");
	if (!mb && !json_object_get(body, "mem_file_path"))
		return spk_res_fail(e, false, "$",
		                    "missing field `mem_backend` (or `mem_file_path`)");
	no = json_object_get(body, "network_overrides");
	if (path_field(body, "$", "snapshot_path", true, &q->state, e) < 0 ||
	    (mb ? mem_backend(mb, q, e)
	        : path_field(body, "$", "mem_file_path", true, &q->mem, e)) < 0 ||
	    bool_field(body, "$", "enable_diff_snapshots", &diff, e) < 0 ||
	    bool_field(body, "$", "track_dirty_pages", &q->track, e) < 0 ||
	    bool_field(body, "$", "resume_vm", &q->resume, e) < 0 ||
	    (no && overrides(no, q, e) < 0) ||
	    (json_object_get(body, "vsock_override") &&
	     vsock_override(json_object_get(body, "vsock_override"), q, e) < 0)) {
		spk_snap_req_free(q);
		return -EINVAL;
	}
	q->track |= diff;
	return 0;
}
