/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for the API's request handling (api_handler.c and the
 * JSON resources of config.c): routing, JSON parsing, the schemas, the
 * pre-boot/post-boot rules. No sockets and no VM: the handler's ops are
 * stubs that move a pretend VM through its states.
 *
 * An input is up to MAX_REQUESTS requests separated by NUL bytes, each
 * "METHOD PATH\nBODY". Every response must be well formed: a known status,
 * no body for 204, else a JSON object, with a fault_message for errors.
 *
 * Files the seed corpus names (fuzz/gen_api_corpus.py) are made in
 * FILES_DIR at start, so drives and boot sources can also be accepted.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sparkler/log.h>

#include "fuzz_files.h"

#include "vmm/api/api.h"

#define MAX_REQUESTS 8
#define FILES_DIR    "/tmp/sparkler-fuzz-api"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* machine.c's boot timer counts from here (main.c defines it in sparkler) */
struct timespec spk_process_start;

/* ---- a pretend VM ----------------------------------------------------------- */

static enum spk_api_state vm;
static struct spk_api *cur;

static int stub_start(void *ctx, const struct spk_vm_resources *r, char *err, size_t len)
{
	if (strstr(r->m.kernel, "fail")) {
		snprintf(err, len, "the stub refuses kernels named fail");
		return -EINVAL;
	}
	vm = SPK_API_RUNNING;
	return 0;
}

static enum spk_api_state stub_state(void *ctx)
{
	return vm;
}

static int stub_pause(void *ctx, char *err, size_t len)
{
	if (vm != SPK_API_RUNNING && vm != SPK_API_PAUSED)
		return -EINVAL;
	vm = SPK_API_PAUSED;
	return 0;
}

static int stub_resume(void *ctx, char *err, size_t len)
{
	if (vm != SPK_API_RUNNING && vm != SPK_API_PAUSED)
		return -EINVAL;
	vm = SPK_API_RUNNING;
	return 0;
}

/* The guest "reboots": the VM exits, as Firecracker's does. */
static int stub_ctrl_alt_del(void *ctx, char *err, size_t len)
{
	vm = SPK_API_EXITED;
	snprintf(cur->exit_reason, sizeof(cur->exit_reason), "exit status 0");
	return 0;
}

static int stub_flush(void *ctx, char *err, size_t len)
{
	snprintf(err, len, "no metrics here");
	return -ENOENT;
}

static int stub_logger(void *ctx, struct spk_logger_config *cfg, char *err, size_t len)
{
	return 0;
}

static int stub_metrics(void *ctx, struct spk_metrics_config *cfg, char *err, size_t len)
{
	return 0;
}

/* A balloon that takes every target and interval, with statistics to show. */
static int stub_balloon_set(void *ctx, uint32_t v, char *err, size_t len)
{
	return 0;
}

static int stub_balloon_stats(void *ctx, struct spk_virtio_balloon_stats *out, char *err,
                              size_t len)
{
	memset(out, 0, sizeof(*out));
	out->target_pages = 4096;
	out->have = 1u << SPK_BALLOON_S_MEMFREE | 1u << (SPK_BALLOON_S_NR - 1);
	out->value[SPK_BALLOON_S_MEMFREE] = UINT64_MAX; /* above what JSON integers hold */
	return 0;
}

static const struct spk_api_ops stub_ops = {
    .start = stub_start,
    .state = stub_state,
    .pause = stub_pause,
    .resume = stub_resume,
    .ctrl_alt_del = stub_ctrl_alt_del,
    .balloon_target = stub_balloon_set,
    .balloon_interval = stub_balloon_set,
    .balloon_stats = stub_balloon_stats,
    .flush_metrics = stub_flush,
    .set_logger = stub_logger,
    .set_metrics = stub_metrics,
};

/* ---- the oracle ----------------------------------------------------------------- */

/* The MMDS data store (/mmds, as the router reads it): its GET gives any
 * JSON value, and a store over its size limit answers 413. */
static bool mmds_path(const char *path)
{
	while (*path == '/')
		path++;
	return strncmp(path, "mmds", 4) == 0 && (path[4] == '\0' || path[4] == '/');
}

static void check_response(const struct spk_api_response *r, bool mmds)
{
	json_t *j, *fm;

	if (r->status != 200 && r->status != 204 && r->status != 400 && r->status != 404 &&
	    r->status != 405 && !(mmds && r->status == 413))
		__builtin_trap();
	if (r->status == 204) {
		if (r->body)
			__builtin_trap();
		return;
	}
	if (!r->body || !(j = json_loads(r->body, mmds ? JSON_DECODE_ANY : 0, NULL)) ||
	    (!json_is_object(j) && !(mmds && r->status == 200)))
		__builtin_trap();
	fm = json_object_get(j, "fault_message");
	if ((r->status >= 400) != json_is_string(fm))
		__builtin_trap();
	/* the fallback for a message jansson could not encode */
	if (fm && strcmp(json_string_value(fm), "internal error") == 0)
		__builtin_trap();
	if (r->status == 405 && !r->allow)
		__builtin_trap();
	json_decref(j);
}

static void one_request(struct spk_api *api, const char *req, size_t len)
{
	const char *nl = memchr(req, '\n', len), *sp;
	char method[16], path[512];
	size_t line = nl ? (size_t)(nl - req) : len, mlen, plen;
	struct spk_api_response r;

	sp = memchr(req, ' ', line);
	if (!sp)
		return;
	mlen = (size_t)(sp - req);
	plen = line - mlen - 1;
	if (mlen >= sizeof(method) || plen >= sizeof(path))
		return;
	memcpy(method, req, mlen);
	method[mlen] = '\0';
	memcpy(path, sp + 1, plen);
	path[plen] = '\0';
	/* the body as the server hands it over: not NUL-terminated */
	size_t blen = nl ? len - line - 1 : 0;
	char *body = blen ? malloc(blen) : NULL;
	if (blen && !body)
		return;
	if (body)
		memcpy(body, nl + 1, blen);
	spk_api_handle(api, method, path, body, blen, &r);
	check_response(&r, mmds_path(path));
	spk_api_response_free(&r);
	free(body);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const char *const names[] = {"vmlinux", "initrd", "disk.img", "fail-kernel"};
	static const size_t sizes[] = {4096, 4096, 65536, 4096};

	fuzz_files_init(FILES_DIR, names, sizes, sizeof(names) / sizeof(names[0]));
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct spk_api api;
	const char *p = (const char *)data, *end = p + size;

	vm = SPK_API_NOT_STARTED;
	spk_api_init(&api, &stub_ops, NULL, "fuzz");
	cur = &api;
	for (int i = 0; i < MAX_REQUESTS && p < end; i++) {
		const char *z = memchr(p, '\0', (size_t)(end - p));
		size_t len = z ? (size_t)(z - p) : (size_t)(end - p);

		one_request(&api, p, len);
		p += len + 1;
	}
	spk_api_destroy(&api);
	return 0;
}
