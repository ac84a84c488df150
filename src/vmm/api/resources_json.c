/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The resources back to Firecracker's JSON: GET /machine-config and
 * GET /vm/config (the whole configuration, as a config file would hold it).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <sparkler/linux.h>

#include "vmm/api/resources_internal.h"

/* ---- back to JSON -----------------------------------------------------------------------------
 */

json_t *spk_res_machine_json(const struct spk_vm_resources *r)
{
	json_t *o = json_pack("{s:I, s:I, s:b, s:b, s:s}", "vcpu_count", (json_int_t)r->m.vcpus,
	                      "mem_size_mib", (json_int_t)(r->m.mem >> 20), "smt", r->smt,
	                      "track_dirty_pages", r->track_dirty_pages, "huge_pages", "None");

	if (o && strcmp(r->cpu_template, "None") != 0)
		json_object_set_new(o, "cpu_template", json_string(r->cpu_template));
	return o;
}

/* Set key to a copy of v when v is there. */
static void set_copy(json_t *o, const char *key, const json_t *v)
{
	if (v)
		json_object_set_new(o, key, json_deep_copy(v));
}

static void set_str_if(json_t *o, const char *key, const char *s)
{
	if (s)
		json_object_set_new(o, key, json_string(s));
}

static json_t *drive_json(const struct spk_vm_resources *r, uint32_t i)
{
	const struct spk_drive_config *d = &r->m.drives[i];
	const struct spk_drive_extra *x = &r->drive_x[i];
	json_t *o = json_pack("{s:s, s:b, s:s, s:b, s:s, s:s}", "drive_id", d->id, "is_root_device",
	                      d->root, "cache_type", x->cache_type, "is_read_only", d->read_only,
	                      "path_on_host", d->path, "io_engine", x->io_engine);

	set_str_if(o, "partuuid", x->partuuid);
	set_copy(o, "rate_limiter", x->rate_limiter);
	return o;
}

static json_t *net_json(const struct spk_vm_resources *r, uint32_t i)
{
	const struct spk_net_config *n = &r->m.nets[i];
	const struct spk_net_extra *x = &r->net_x[i];
	json_t *o = json_pack("{s:s, s:s}", "iface_id", n->id, "host_dev_name", n->tap);
	char mac[18];

	if (n->has_mac) {
		snprintf(mac, sizeof(mac), "%02x:%02x:%02x:%02x:%02x:%02x", n->mac[0], n->mac[1],
		         n->mac[2], n->mac[3], n->mac[4], n->mac[5]);
		json_object_set_new(o, "guest_mac", json_string(mac));
	}
	if (x->mtu)
		json_object_set_new(o, "mtu", json_integer(x->mtu));
	set_copy(o, "rx_rate_limiter", x->rx_rate_limiter);
	set_copy(o, "tx_rate_limiter", x->tx_rate_limiter);
	return o;
}

static json_t *logger_json(const struct spk_logger_config *l)
{
	json_t *o = json_pack("{s:s, s:b, s:b}", "level", spk_res_log_levels[l->level],
	                      "show_level", l->show_level, "show_log_origin", l->show_origin);

	set_str_if(o, "log_path", l->path);
	set_str_if(o, "module", l->module);
	return o;
}

static json_t *metrics_json(const struct spk_metrics_config *mc)
{
	json_t *o = json_pack("{s:s, s:b}", "metrics_path", mc->path, "emit_id", mc->emit_id);

	set_copy(o, "properties", mc->properties);
	return o;
}

json_t *spk_res_balloon_json(const struct spk_vm_resources *r)
{
	const struct spk_balloon_config *b = &r->m.balloon;

	if (!b->enabled)
		return NULL;
	return json_pack("{s:I, s:b, s:I, s:b, s:b}", "amount_mib", (json_int_t)b->amount_mib,
	                 "deflate_on_oom", b->deflate_on_oom, "stats_polling_interval_s",
	                 (json_int_t)b->stats_interval_s, "free_page_hinting", b->free_page_hinting,
	                 "free_page_reporting", b->free_page_reporting);
}

static void add_devices(json_t *o, const struct spk_vm_resources *r)
{
	json_t *drives = json_array(), *nets = json_array();

	for (uint32_t i = 0; i < r->m.n_drives; i++)
		json_array_append_new(drives, drive_json(r, i));
	for (uint32_t i = 0; i < r->m.n_nets; i++)
		json_array_append_new(nets, net_json(r, i));
	json_object_set_new(o, "drives", drives);
	json_object_set_new(o, "network-interfaces", nets);
	if (r->m.vsock.enabled)
		json_object_set_new(o, "vsock",
		                    json_pack("{s:I, s:s}", "guest_cid",
		                              (json_int_t)r->m.vsock.guest_cid, "uds_path",
		                              r->m.vsock.uds_path));
	if (r->m.entropy) {
		json_t *en = json_object();

		set_copy(en, "rate_limiter", r->entropy_rate_limiter);
		json_object_set_new(o, "entropy", en);
	}
	if (r->m.balloon.enabled)
		json_object_set_new(o, "balloon", spk_res_balloon_json(r));
}

json_t *spk_res_full_json(const struct spk_vm_resources *r)
{
	json_t *o = json_object();

	if (!o)
		return NULL;
	if (r->m.kernel) {
		json_t *bs = json_pack("{s:s}", "kernel_image_path", r->m.kernel);

		set_str_if(bs, "initrd_path", r->m.initrd);
		set_str_if(bs, "boot_args", r->m.cmdline);
		json_object_set_new(o, "boot-source", bs);
	}
	json_object_set_new(o, "machine-config", spk_res_machine_json(r));
	add_devices(o, r);
	if (r->logger.set)
		json_object_set_new(o, "logger", logger_json(&r->logger));
	if (r->metrics.set)
		json_object_set_new(o, "metrics", metrics_json(&r->metrics));
	if (r->mmds_config)
		set_copy(o, "mmds-config", r->mmds_config);
	return o;
}
