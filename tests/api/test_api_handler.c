/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The API's request handler without sockets or a VM (stub ops): what a
 * body turns into in the spk_machine_config the machine is built from,
 * the pre-boot/post-boot rules, requests after the VM exited, a failed
 * start, config files; and the fuzz target's crash inputs, replayed.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <sparkler/log.h>

#include "vmm/api/api.h"

struct timespec spk_process_start; /* machine.c's boot timer (main.c in sparkler) */

/* ---- stubs ------------------------------------------------------------------- */

static struct {
	enum spk_api_state state;
	int start_rc, pauses, resumes, cads, starts, swaps, swap_rc, limits, limit_rc;
	struct spk_rate_limit rx, tx;
	bool has_rx, has_tx;
	char swap_id[64], swap_path[256];
	struct spk_api *api;
} stub;

static int stub_start(void *ctx, const struct spk_vm_resources *r, char *err, size_t len)
{
	stub.starts++;
	if (stub.start_rc) {
		snprintf(err, len, "no kernel in there");
		return stub.start_rc;
	}
	stub.state = SPK_API_RUNNING;
	return 0;
}

static enum spk_api_state stub_state(void *ctx)
{
	return stub.state;
}

static int stub_pause(void *ctx, char *err, size_t len)
{
	stub.pauses++;
	stub.state = SPK_API_PAUSED;
	return 0;
}

static int stub_resume(void *ctx, char *err, size_t len)
{
	stub.resumes++;
	stub.state = SPK_API_RUNNING;
	return 0;
}

static int stub_cad(void *ctx, char *err, size_t len)
{
	stub.cads++;
	return 0;
}

static int stub_swap(void *ctx, const char *id, const char *path, char *err, size_t len)
{
	stub.swaps++;
	snprintf(stub.swap_id, sizeof(stub.swap_id), "%s", id);
	snprintf(stub.swap_path, sizeof(stub.swap_path), "%s", path);
	if (stub.swap_rc)
		snprintf(err, len, "the image is 1000 bytes, not a multiple of 512");
	return stub.swap_rc;
}

static int stub_limit_net(void *ctx, const char *id, const struct spk_rate_limit *rx,
                          const struct spk_rate_limit *tx, char *err, size_t len)
{
	stub.limits++;
	stub.has_rx = rx != NULL;
	stub.has_tx = tx != NULL;
	if (rx)
		stub.rx = *rx;
	if (tx)
		stub.tx = *tx;
	if (stub.limit_rc)
		snprintf(err, len, "refill_time_ms 0 with a size");
	return stub.limit_rc;
}

static int stub_flush(void *ctx, char *err, size_t len)
{
	return 0;
}

static int stub_logger(void *ctx, struct spk_logger_config *cfg, char *err, size_t len)
{
	return 0;
}

static int stub_metrics(void *ctx, struct spk_metrics_config *cfg, char *err, size_t len)
{
	return 0;
}

static const struct spk_api_ops ops = {
    .start = stub_start,
    .state = stub_state,
    .pause = stub_pause,
    .resume = stub_resume,
    .ctrl_alt_del = stub_cad,
    .swap_drive = stub_swap,
    .limit_net = stub_limit_net,
    .flush_metrics = stub_flush,
    .set_logger = stub_logger,
    .set_metrics = stub_metrics,
};

static char dir[64], disk[128], kernel[128];

static int setup(void **state)
{
	static struct spk_api api;

	memset(&stub, 0, sizeof(stub));
	spk_api_init(&api, &ops, NULL, "unit");
	stub.api = &api;
	*state = &api;
	return 0;
}

static int teardown(void **state)
{
	spk_api_destroy(*state);
	return 0;
}

/* One request; the status, and the fault message (or body) in out. */
static unsigned call(struct spk_api *api, const char *method, const char *path, const char *body,
                     char *out, size_t outlen)
{
	struct spk_api_response r;
	unsigned status;

	spk_api_handle(api, method, path, body, body ? strlen(body) : 0, &r);
	status = r.status;
	if (out) {
		json_t *j = r.body ? json_loads(r.body, 0, NULL) : NULL;
		const char *fm = json_string_value(json_object_get(j, "fault_message"));

		snprintf(out, outlen, "%s", fm ? fm : (r.body ? r.body : ""));
		json_decref(j);
	}
	if (status != 204)
		assert_non_null(r.body);
	else
		assert_null(r.body);
	spk_api_response_free(&r);
	return status;
}

#define CALL(api, m, p, b) call(api, m, p, b, NULL, 0)

static void put_fmt(struct spk_api *api, unsigned want, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void put_fmt(struct spk_api *api, unsigned want, const char *path, const char *fmt, ...)
{
	char body[1024], msg[600];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(body, sizeof(body), fmt, ap);
	va_end(ap);
	unsigned got = call(api, "PUT", path, body, msg, sizeof(msg));
	if (got != want)
		fail_msg("PUT %s %s: %u (%s), wanted %u", path, body, got, msg, want);
}

/* ---- what the machine gets ------------------------------------------------------ */

static void test_machine_config_mapping(void **state)
{
	struct spk_api *api = *state;
	const struct spk_machine_config *m = &api->res.m;

	put_fmt(api, 204, "/machine-config",
	        "{\"vcpu_count\": 4, \"mem_size_mib\": 300, \"cpu_template\": \"C3\"}");
	put_fmt(api, 204, "/boot-source",
	        "{\"kernel_image_path\": \"%s\", \"boot_args\": \"quiet\"}", kernel);
	put_fmt(api, 204, "/drives/root",
	        "{\"drive_id\": \"root\", \"path_on_host\": \"%s\", \"is_root_device\": true, "
	        "\"is_read_only\": true}",
	        disk);
	put_fmt(api, 204, "/network-interfaces/eth0",
	        "{\"iface_id\": \"eth0\", \"host_dev_name\": \"tap7\", \"guest_mac\": "
	        "\"02:AB:cd:00:00:ff\"}");
	put_fmt(api, 204, "/vsock", "{\"guest_cid\": 42, \"uds_path\": \"/run/v.sock\"}");
	put_fmt(api, 204, "/entropy", "{}");
	assert_int_equal(m->vcpus, 4);
	assert_int_equal(m->mem, 300ull << 20);
	assert_int_equal(m->template, SPK_CPU_TEMPLATE_MINIMAL);
	assert_string_equal(m->kernel, kernel);
	assert_null(m->initrd);
	assert_string_equal(m->cmdline, "quiet");
	assert_int_equal(m->n_drives, 1);
	assert_string_equal(m->drives[0].id, "root");
	assert_string_equal(m->drives[0].path, disk);
	assert_true(m->drives[0].read_only && m->drives[0].root);
	assert_int_equal(m->n_nets, 1);
	assert_string_equal(m->nets[0].tap, "tap7");
	assert_true(m->nets[0].has_mac);
	assert_memory_equal(m->nets[0].mac, ((uint8_t[]){2, 0xab, 0xcd, 0, 0, 0xff}), 6);
	assert_true(m->vsock.enabled);
	assert_int_equal(m->vsock.guest_cid, 42);
	assert_string_equal(m->vsock.uds_path, "/run/v.sock");
	assert_true(m->entropy);
	/* a PUT resets what it does not name; "None" brings back the host CPU */
	put_fmt(api, 204, "/machine-config", "{\"vcpu_count\": 1, \"mem_size_mib\": 64}");
	assert_int_equal(m->template, SPK_CPU_TEMPLATE_HOST);
	/* a new boot source drops the old initrd and command line */
	put_fmt(api, 204, "/boot-source", "{\"kernel_image_path\": \"%s\"}", kernel);
	assert_null(m->cmdline);
}

/* ---- the rules ------------------------------------------------------------------ */

static void test_routes_and_methods(void **state)
{
	struct spk_api *api = *state;
	static const struct {
		const char *method, *path;
		unsigned status;
	} cases[] = {
	    {"GET", "/", 200},
	    {"GET", "//", 200},
	    {"GET", "/version", 200},
	    {"GET", "/version/", 200},
	    {"GET", "/vm/config", 200},
	    {"GET", "/machine-config", 200},
	    {"GET", "/vm", 405},
	    {"GET", "/vm/config/x", 404},
	    {"GET", "/drives/a", 405},
	    {"HEAD", "/", 405},
	    {"OPTIONS", "/actions", 405},
	    {"GET", "/xyz", 404},
	    {"GET", "", 200},
	    {"GET", "/pmem/a", 400},
	    {"GET", "/hotplug/memory", 400},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		unsigned got = CALL(api, cases[i].method, cases[i].path, NULL);

		if (got != cases[i].status)
			fail_msg("%s %s: %u, wanted %u", cases[i].method, cases[i].path, got,
			         cases[i].status);
	}
}

static void test_boot_rules(void **state)
{
	struct spk_api *api = *state;
	char msg[600];

	assert_int_equal(call(api, "PATCH", "/vm", "{\"state\": \"Paused\"}", msg, sizeof(msg)),
	                 400);
	assert_non_null(strstr(msg, "not supported before starting the microVM"));
	assert_int_equal(stub.pauses, 0);
	put_fmt(api, 204, "/boot-source", "{\"kernel_image_path\": \"%s\"}", kernel);
	assert_int_equal(CALL(api, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}"), 204);
	assert_true(api->started);
	assert_int_equal(call(api, "PUT", "/entropy", "{}", msg, sizeof(msg)), 400);
	assert_non_null(strstr(msg, "not supported after starting the microVM"));
	assert_false(api->res.m.entropy);
	assert_int_equal(CALL(api, "PATCH", "/vm", "{\"state\": \"Paused\"}"), 204);
	assert_int_equal(CALL(api, "PATCH", "/vm", "{\"state\": \"Resumed\"}"), 204);
	assert_int_equal(stub.pauses, 1);
	assert_int_equal(stub.resumes, 1);
	assert_int_equal(CALL(api, "PUT", "/actions", "{\"action_type\": \"SendCtrlAltDel\"}"),
	                 204);
	assert_int_equal(stub.cads, 1);
	assert_int_equal(CALL(api, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}"), 400);
	assert_int_equal(stub.starts, 1);
}

/* The snapshot routes: body checks before the op; create only after boot,
 * load only before any boot resource; an embedder without the ops (these
 * stubs) answers 400, and a refused load does not start anything. */
static void test_snapshot_routes(void **state)
{
	struct spk_api *api = *state;
	char msg[600];

	assert_int_equal(call(api, "PUT", "/snapshot/create",
	                      "{\"snapshot_path\": \"s\", \"mem_file_path\": \"m\"}", msg,
	                      sizeof(msg)),
	                 400);
	assert_non_null(strstr(msg, "not supported before starting the microVM"));
	assert_int_equal(
	    call(api, "PUT", "/snapshot/load", "{\"snapshot_path\": \"s\"}", msg, sizeof(msg)),
	    400);
	assert_non_null(strstr(msg, "missing field `mem_backend`"));
	assert_int_equal(call(api, "PUT", "/snapshot/load",
	                      "{\"snapshot_path\": \"s\", \"mem_file_path\": \"m\", "
	                      "\"resume_vm\": 1}",
	                      msg, sizeof(msg)),
	                 400);
	assert_non_null(strstr(msg, "expected a boolean"));
	assert_int_equal(call(api, "PUT", "/snapshot/load",
	                      "{\"snapshot_path\": \"s\", \"mem_backend\": {\"backend_type\": "
	                      "\"File\", \"backend_path\": \"m\", \"x\": 1}}",
	                      msg, sizeof(msg)),
	                 400);
	assert_non_null(strstr(msg, "unknown field `x`"));
	assert_int_equal(call(api, "PUT", "/snapshot/load",
	                      "{\"snapshot_path\": \"s\", \"mem_file_path\": \"m\", "
	                      "\"network_overrides\": [{\"iface_id\": \"eth0\"}]}",
	                      msg, sizeof(msg)),
	                 400);
	assert_non_null(strstr(msg, "both required"));
	/* a good body, but these stubs have no snapshot op */
	assert_int_equal(call(api, "PUT", "/snapshot/load",
	                      "{\"snapshot_path\": \"s\", \"mem_file_path\": \"m\"}", msg,
	                      sizeof(msg)),
	                 400);
	assert_false(api->started);
	assert_int_equal(stub.starts, 0);
	put_fmt(api, 204, "/boot-source", "{\"kernel_image_path\": \"%s\"}", kernel);
	assert_int_equal(call(api, "PUT", "/snapshot/load",
	                      "{\"snapshot_path\": \"s\", \"mem_file_path\": \"m\"}", msg,
	                      sizeof(msg)),
	                 400);
	assert_non_null(strstr(msg, "not allowed after configuring boot-specific resources"));
	assert_int_equal(CALL(api, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}"), 204);
	assert_int_equal(call(api, "PUT", "/snapshot/create",
	                      "{\"snapshot_type\": \"Diff\", \"snapshot_path\": \"s\", "
	                      "\"mem_file_path\": \"m\"}",
	                      msg, sizeof(msg)),
	                 400);
	assert_non_null(strstr(msg, "Failed to create a snapshot"));
	assert_int_equal(call(api, "PUT", "/snapshot/load",
	                      "{\"snapshot_path\": \"s\", \"mem_file_path\": \"m\"}", msg,
	                      sizeof(msg)),
	                 400);
	assert_non_null(strstr(msg, "not supported after starting the microVM"));
}

/* PATCH /drives after boot: a new path_on_host goes to the running disk
 * first; what it refuses is a 400 and the recorded path stays. */
static void test_drive_swap(void **state)
{
	struct spk_api *api = *state;
	char msg[600], body[600];

	put_fmt(api, 204, "/boot-source", "{\"kernel_image_path\": \"%s\"}", kernel);
	put_fmt(api, 204, "/drives/root",
	        "{\"drive_id\": \"root\", \"path_on_host\": \"%s\", \"is_root_device\": true}",
	        disk);
	assert_int_equal(CALL(api, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}"), 204);
	snprintf(body, sizeof(body), "{\"drive_id\": \"root\", \"path_on_host\": \"%s\"}", kernel);
	stub.swap_rc = -EINVAL;
	assert_int_equal(call(api, "PATCH", "/drives/root", body, msg, sizeof(msg)), 400);
	assert_string_equal(msg, "Unable to patch the block device: the image is 1000 bytes, not a "
	                         "multiple of 512");
	assert_int_equal(stub.swaps, 1);
	assert_string_equal(stub.swap_id, "root");
	assert_string_equal(stub.swap_path, kernel);
	assert_string_equal(api->res.m.drives[0].path, disk);
	stub.swap_rc = 0;
	assert_int_equal(CALL(api, "PATCH", "/drives/root", body), 204);
	assert_int_equal(stub.swaps, 2);
	assert_string_equal(api->res.m.drives[0].path, kernel);
	/* no path_on_host, a file that is not there, a bad body: the disk is not asked */
	assert_int_equal(CALL(api, "PATCH", "/drives/root", "{\"drive_id\": \"root\"}"), 204);
	assert_int_equal(CALL(api, "PATCH", "/drives/root",
	                      "{\"drive_id\": \"root\", \"path_on_host\": \"/nonexistent/x\"}"),
	                 400);
	assert_int_equal(
	    CALL(api, "PATCH", "/drives/root", "{\"drive_id\": \"root\", \"path_on_host\": 7}"),
	    400);
	assert_int_equal(CALL(api, "PATCH", "/drives/other",
	                      "{\"drive_id\": \"root\", \"path_on_host\": \"/\"}"),
	                 400);
	assert_int_equal(stub.swaps, 2);
	assert_string_equal(api->res.m.drives[0].path, kernel);
}

/* The tx limit GET /vm/config reports for interface eth0, as JSON text. */
static char *net_tx_json(struct spk_api *api)
{
	json_t *cfg = spk_res_full_json(&api->res);
	json_t *n = json_array_get(json_object_get(cfg, "network-interfaces"), 0);
	char *s = json_dumps(json_object_get(n, "tx_rate_limiter"), JSON_COMPACT | JSON_SORT_KEYS);

	json_decref(cfg);
	return s;
}

/* PATCH /network-interfaces after boot: the running device gets the new
 * limits first; what it refuses is a 400 and neither the machine's limits
 * nor GET /vm/config's JSON change. */
static void test_net_limit_refused(void **state)
{
	struct spk_api *api = *state;
	const char *first = "{\"bandwidth\": {\"size\": 1000, \"refill_time\": 100}}";
	const char *second = "{\"bandwidth\": {\"size\": 5000, \"refill_time\": 200}}";
	char msg[600], body[600], *before, *after;

	put_fmt(api, 204, "/boot-source", "{\"kernel_image_path\": \"%s\"}", kernel);
	put_fmt(api, 204, "/network-interfaces/eth0",
	        "{\"iface_id\": \"eth0\", \"host_dev_name\": \"tap0\", \"tx_rate_limiter\": %s}",
	        first);
	assert_int_equal(CALL(api, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}"), 204);
	before = net_tx_json(api);
	assert_non_null(before);
	assert_int_equal(api->res.m.nets[0].tx_rate_limit.bandwidth.size, 1000);

	snprintf(body, sizeof(body), "{\"iface_id\": \"eth0\", \"tx_rate_limiter\": %s}", second);
	stub.limit_rc = -EINVAL;
	assert_int_equal(call(api, "PATCH", "/network-interfaces/eth0", body, msg, sizeof(msg)),
	                 400);
	assert_string_equal(msg, "Unable to update the net device: refill_time_ms 0 with a size");
	assert_int_equal(stub.limits, 1);
	assert_false(stub.has_rx);
	assert_true(stub.has_tx);
	assert_int_equal(stub.tx.bandwidth.size, 5000);
	assert_int_equal(stub.tx.bandwidth.refill_time_ms, 200);
	after = net_tx_json(api);
	assert_string_equal(after, before);
	free(after);
	assert_int_equal(api->res.m.nets[0].tx_rate_limit.bandwidth.size, 1000);
	assert_int_equal(api->res.m.nets[0].tx_rate_limit.bandwidth.refill_time_ms, 100);
	assert_null(api->res.net_x[0].rx_rate_limiter);

	/* accepted: recorded in both */
	stub.limit_rc = 0;
	assert_int_equal(CALL(api, "PATCH", "/network-interfaces/eth0", body), 204);
	assert_int_equal(stub.limits, 2);
	after = net_tx_json(api);
	assert_non_null(strstr(after, "5000"));
	assert_string_not_equal(after, before);
	free(after);
	assert_int_equal(api->res.m.nets[0].tx_rate_limit.bandwidth.size, 5000);

	/* a bad body, an unknown interface, no limits: the device is not asked */
	assert_int_equal(CALL(api, "PATCH", "/network-interfaces/eth0",
	                      "{\"iface_id\": \"eth0\", \"tx_rate_limiter\": 7}"),
	                 400);
	assert_int_equal(CALL(api, "PATCH", "/network-interfaces/eth1",
	                      "{\"iface_id\": \"eth1\", \"tx_rate_limiter\": {}}"),
	                 400);
	assert_int_equal(CALL(api, "PATCH", "/network-interfaces/eth0",
	                      "{\"iface_id\": \"eth0\", \"rx_rate_limiter\": null}"),
	                 204);
	assert_int_equal(stub.limits, 2);
	assert_int_equal(api->res.m.nets[0].tx_rate_limit.bandwidth.size, 5000);
	free(before);
}

static void test_failed_start(void **state)
{
	struct spk_api *api = *state;
	char msg[600];

	put_fmt(api, 204, "/boot-source", "{\"kernel_image_path\": \"%s\"}", kernel);
	stub.start_rc = -EINVAL;
	assert_int_equal(
	    call(api, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}", msg, sizeof(msg)),
	    400);
	assert_string_equal(msg, "Failed to start the microVM: no kernel in there");
	assert_false(api->started);
	/* still pre-boot: configurable, and startable again */
	put_fmt(api, 204, "/machine-config", "{\"vcpu_count\": 2, \"mem_size_mib\": 64}");
	stub.start_rc = 0;
	assert_int_equal(CALL(api, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}"), 204);
}

/* Between the guest's end and the process's, requests are answered. */
static void test_after_exit(void **state)
{
	struct spk_api *api = *state;
	char msg[600];

	put_fmt(api, 204, "/boot-source", "{\"kernel_image_path\": \"%s\"}", kernel);
	assert_int_equal(CALL(api, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}"), 204);
	stub.state = SPK_API_EXITED;
	snprintf(api->exit_reason, sizeof(api->exit_reason), "exit status 0");
	assert_int_equal(call(api, "GET", "/", NULL, msg, sizeof(msg)), 400);
	assert_string_equal(msg,
	                    "The microVM has exited (exit status 0); sparkler is shutting down.");
	assert_int_equal(CALL(api, "PATCH", "/vm", "{\"state\": \"Paused\"}"), 400);
	assert_int_equal(stub.pauses, 0);
	assert_int_equal(CALL(api, "PUT", "/actions", "{\"action_type\": \"FlushMetrics\"}"), 400);
	assert_int_equal(CALL(api, "GET", "/vm/config", NULL), 200);
	assert_int_equal(CALL(api, "GET", "/version", NULL), 200);
	assert_int_equal(CALL(api, "GET", "/nope", NULL), 404);
}

/* A path or value that is not UTF-8 is quoted as '?' in the message. */
static void test_not_utf8(void **state)
{
	struct spk_api *api = *state;
	char msg[600];

	assert_int_equal(call(api, "GET", "/\xff\xfe", NULL, msg, sizeof(msg)), 404);
	assert_string_equal(msg, "Invalid request method and/or path: GET /??.");
}

static void test_stats(void **state)
{
	struct spk_api *api = *state;

	CALL(api, "GET", "/", NULL);
	CALL(api, "GET", "/nope", NULL);
	CALL(api, "PUT", "/machine-config", "{");
	assert_int_equal(api->stats.requests, 3);
	assert_int_equal(api->stats.ok, 1);
	assert_int_equal(api->stats.client_errors, 2);
}

/* ---- config files --------------------------------------------------------------- */

static void load(const char *json, int want_rc, const char *needle)
{
	char path[128], err[512] = "";
	struct spk_vm_resources r;
	FILE *f;

	snprintf(path, sizeof(path), "%s/vm.json", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(json, f);
	fclose(f);
	spk_res_init(&r);
	int rc = spk_res_load_file(&r, path, err, sizeof(err));
	spk_res_free(&r);
	if (rc != want_rc || (needle && !strstr(err, needle)))
		fail_msg("%s: rc %d (%s), wanted %d and '%s'", json, rc, err, want_rc,
		         needle ? needle : "");
	if (needle)
		assert_non_null(strstr(err, path));
}

static void test_config_file(void **state)
{
	char good[512];

	snprintf(good, sizeof(good),
	         "{\"boot-source\": {\"kernel_image_path\": \"%s\"}, \"machine-config\": "
	         "{\"vcpu_count\": 2, \"mem_size_mib\": 64}, \"drives\": [{\"drive_id\": \"a\", "
	         "\"path_on_host\": \"%s\", \"is_root_device\": false}], \"logger\": {\"level\": "
	         "\"Off\"}}",
	         kernel, disk);
	load(good, 0, NULL);
	load("{\"boot-source\": {\"kernel_image_path\": 5}}", -EINVAL,
	     ": $.boot-source.kernel_image_path: expected a string, got an integer");
	load("{\"drives\": [{}]}", -EINVAL, ": $.drives[0].drive_id: missing required field");
	load("{\"vsock\": {\"guest_cid\": 1, \"uds_path\": \"x\"}}", -EINVAL,
	     ": $.vsock.guest_cid: 1 is out of range");
	load("{\n\"a\": }", -EINVAL, ": line 2 column");
	load("[1]", -EINVAL, ": $: expected an object, got an array");
	load("{}", -EINVAL, ": $.boot-source: missing");
}

/* ---- the fuzz targets' findings, replayed ------------------------------------------ */

/* A refusal of a config file is one line even when it quotes the file's
 * keys or values: control characters become '?' (fuzz_config:
 * fuzz/regressions/config/newline-in-key, escape-in-value). */
static void test_config_file_one_line(void **state)
{
	char key[256];
	const char *const texts[] = {
	    key,
	    "{\"boot-source\": {\"kernel_image_path\": \"/x\\u001b[31m\\nred\"}}",
	    "{\"machine-config\": {\"vcpu_count\": 1, \"mem_size_mib\": 64, \"\\r\\t\": 1}}",
	};
	static const char *const want[] = {
	    "vm.json: $: unknown section `a?b`",
	    "vm.json: $.boot-source.kernel_image_path: /x?[31m?red: cannot open",
	    "vm.json: $.machine-config: unknown field `??`",
	};

	snprintf(key, sizeof(key),
	         "{\"boot-source\": {\"kernel_image_path\": \"%s\"}, \"a\\nb\": 1}", kernel);
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		struct spk_vm_resources r;
		char err[512] = "";

		spk_res_init(&r);
		assert_int_equal(spk_res_load_buffer(&r, "vm.json", texts[i], strlen(texts[i]), err,
		                                     sizeof(err)),
		                 -EINVAL);
		spk_res_free(&r);
		if (strncmp(err, want[i], strlen(want[i])) != 0)
			fail_msg("%s: got '%s', wanted '%s...'", texts[i], err, want[i]);
		for (const char *p = err; *p; p++)
			assert_true((unsigned char)*p >= 0x20 && *p != 0x7f);
	}
	/* through the file too */
	load(texts[0], -EINVAL, ": $: unknown section `a?b`");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_machine_config_mapping, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_routes_and_methods, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_boot_rules, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_drive_swap, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_net_limit_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_failed_start, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_after_exit, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_not_utf8, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_stats, setup, teardown),
	    cmocka_unit_test(test_config_file),
	    cmocka_unit_test_setup_teardown(test_snapshot_routes, setup, teardown),
	    cmocka_unit_test(test_config_file_one_line),
	};
	FILE *f;
	int rc;

	spk_log_set(NULL, NULL, SPK_LOG_ERROR);
	snprintf(dir, sizeof(dir), "/tmp/sparkler-api-unit-XXXXXX");
	if (!mkdtemp(dir))
		return 1;
	snprintf(disk, sizeof(disk), "%s/disk.img", dir);
	snprintf(kernel, sizeof(kernel), "%s/vmlinux", dir);
	if (!(f = fopen(disk, "w")) || fclose(f) || !(f = fopen(kernel, "w")) || fclose(f))
		return 1;
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	unlink(disk);
	unlink(kernel);
	snprintf(disk, sizeof(disk), "%s/vm.json", dir);
	unlink(disk);
	rmdir(dir);
	return rc;
}
