/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The MMDS resources: PUT /mmds/config (or a config file's mmds-config)
 * and the data of PUT, PATCH and GET /mmds, with Firecracker's checks and
 * messages. The store is made on first use with the size limit the
 * resources were given (--mmds-size-limit), as Firecracker makes its own.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "mmds/mmds.h"
#include "vmm/api/resources_internal.h"

struct spk_mmds *spk_res_mmds(struct spk_vm_resources *r)
{
	if (!r->mmds &&
	    spk_mmds_new(r->mmds_limit ? r->mmds_limit : SPK_MMDS_LIMIT_DEFAULT, &r->mmds) < 0)
		r->mmds = NULL;
	return r->mmds;
}

void spk_res_mmds_free(struct spk_vm_resources *r)
{
	json_decref(r->mmds_config);
	r->mmds_config = NULL;
	spk_mmds_free(r->mmds);
	r->mmds = NULL;
}

/* Firecracker's rule: 169.254.0.0/16 without its first and last /24. */
static bool link_local(const char *s, uint32_t *out)
{
	struct in_addr a;
	uint32_t v;

	if (inet_pton(AF_INET, s, &a) != 1)
		return false;
	v = ntohl(a.s_addr);
	if ((v >> 16) != 0xa9fe || ((v >> 8) & 0xff) == 0 || ((v >> 8) & 0xff) == 255)
		return false;
	*out = v;
	return true;
}

static int find_net(const struct spk_vm_resources *r, const char *id)
{
	for (uint32_t i = 0; i < r->m.n_nets; i++)
		if (strcmp(r->m.nets[i].id, id) == 0)
			return (int)i;
	return -1;
}

/* The shape: known fields of the right types, network_interfaces there. */
static int config_schema(json_t *b, const char *path, struct spk_res_err *e)
{
	const char *k;
	json_t *v;

	if (!json_is_object(b))
		return spk_res_fail(e, true, path, "expected an object, got %s",
		                    spk_res_json_type(b));
	json_object_foreach(b, k, v)
	{
		bool ok;

		if (strcmp(k, "version") == 0 || strcmp(k, "ipv4_address") == 0)
			ok = json_is_string(v) || json_is_null(v);
		else if (strcmp(k, "imds_compat") == 0)
			ok = json_is_boolean(v) || json_is_null(v);
		else if (strcmp(k, "network_interfaces") == 0)
			ok = json_is_array(v);
		else
			return spk_res_fail(e, true, path,
			                    "unknown field `%.64s`, expected one of `version`, "
			                    "`network_interfaces`, `ipv4_address`, `imds_compat`",
			                    k);
		if (!ok)
			return spk_res_fail(e, true, path, "%.64s: invalid type: %s", k,
			                    spk_res_json_type(v));
	}
	if (!json_object_get(b, "network_interfaces"))
		return spk_res_fail(e, true, path, "missing field `network_interfaces`");
	return 0;
}

int spk_res_mmds_config(struct spk_vm_resources *r, json_t *b, const char *path,
                        struct spk_res_err *e)
{
	struct spk_mmds_config c = {SPK_MMDS_V1, SPK_MMDS_IPV4_DEFAULT, false};
	json_t *ifs = json_object_get(b, "network_interfaces"), *v, *copy;
	const char *ver, *ip;
	bool listed[SPK_MACHINE_MAX_NETS] = {0};
	struct spk_mmds *m;
	size_t i;

	if (config_schema(b, path, e) < 0)
		return -EINVAL;
	ver = json_string_value(json_object_get(b, "version"));
	if (ver && strcmp(ver, "V1") != 0 && strcmp(ver, "V2") != 0)
		return spk_res_fail(e, true, path,
		                    "version: unknown variant `%.16s`, expected `V1` or `V2`", ver);
	c.version = ver && strcmp(ver, "V2") == 0 ? SPK_MMDS_V2 : SPK_MMDS_V1;
	c.imds_compat = json_is_true(json_object_get(b, "imds_compat"));
	ip = json_string_value(json_object_get(b, "ipv4_address"));
	if (ip && !link_local(ip, &c.ipv4))
		return spk_res_fail(e, false, path,
		                    "MMDS config error: The MMDS IPv4 address is not link local.");
	if (json_array_size(ifs) == 0)
		return spk_res_fail(e, false, path,
		                    "MMDS config error: The list of network interface IDs that "
		                    "allow forwarding MMDS requests is empty.");
	json_array_foreach(ifs, i, v)
	{
		int idx = json_is_string(v) ? find_net(r, json_string_value(v)) : -1;

		if (!json_is_string(v))
			return spk_res_fail(e, true, path,
			                    "network_interfaces[%zu]: invalid type: %s", i,
			                    spk_res_json_type(v));
		if (idx < 0)
			return spk_res_fail(e, false, path,
			                    "MMDS config error: The list of network interface IDs "
			                    "provided contains at least one ID that does not "
			                    "correspond to any existing network interface.");
		listed[idx] = true;
	}
	if (!(m = spk_res_mmds(r)))
		return spk_res_fail(e, false, path, "MMDS config error: out of memory");
	copy = json_pack("{s:s, s:O, s:s, s:b}", "version", c.version == SPK_MMDS_V2 ? "V2" : "V1",
	                 "network_interfaces", ifs, "ipv4_address", ip ? ip : "169.254.169.254",
	                 "imds_compat", c.imds_compat);
	if (!copy)
		return spk_res_fail(e, false, path, "MMDS config error: out of memory");
	/* all checked: apply */
	spk_mmds_set_config(m, &c);
	for (uint32_t n = 0; n < r->m.n_nets; n++)
		r->m.nets[n].mmds = listed[n];
	r->m.mmds = m;
	json_decref(r->mmds_config);
	r->mmds_config = copy;
	return 0;
}

int spk_res_mmds_data(struct spk_vm_resources *r, json_t *b, bool patch, unsigned *status,
                      struct spk_res_err *e)
{
	struct spk_mmds *m = spk_res_mmds(r);
	int rc;

	*status = 400;
	if (!m)
		return spk_res_fail(e, false, "$", "out of memory");
	rc = patch ? spk_mmds_patch(m, b) : spk_mmds_put(m, b);
	if (rc == -EFBIG) {
		*status = 413;
		snprintf(e->msg, sizeof(e->msg),
		         "MMDS limit exceeded error: The MMDS patch request doesn't fit.");
		e->schema = false;
	} else if (rc == -ENODATA) {
		snprintf(e->msg, sizeof(e->msg),
		         "MMDS error: The MMDS data store is not initialized.");
		e->schema = false;
	} else if (rc < 0) {
		snprintf(e->msg, sizeof(e->msg), "MMDS error: %s", strerror(-rc));
		e->schema = false;
	}
	if (rc == 0)
		*status = 204;
	return rc;
}

json_t *spk_res_mmds_json(struct spk_vm_resources *r)
{
	struct spk_mmds *m = spk_res_mmds(r);

	return m ? spk_mmds_get(m) : NULL;
}
