/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The resources of a microVM in Firecracker's JSON form: the bodies of
 * PUT /machine-config, /boot-source, /drives/{id}, ... and the sections of
 * a --config-file. One parser (resources.c) serves both the API and the
 * config file: it checks every field (names, types, ranges, files) and
 * applies a body all or nothing, into a spk_machine_config plus what the
 * machine does not need but GET /vm/config reports back.
 */
#ifndef SPK_VMM_API_RESOURCES_H
#define SPK_VMM_API_RESOURCES_H

#include <jansson.h>
#include <stdbool.h>

#include "vmm/machine/machine.h"

/* Firecracker's limits where they are stricter than the machine's. */
#define SPK_RES_MAX_VCPUS      32
#define SPK_RES_DEFAULT_MEM_MB 128 /* Firecracker's default, not `run`'s */

enum spk_res_log_level {
	SPK_RES_LOG_OFF = 0,
	SPK_RES_LOG_ERROR,
	SPK_RES_LOG_WARNING,
	SPK_RES_LOG_INFO,
	SPK_RES_LOG_DEBUG,
	SPK_RES_LOG_TRACE,
};

struct spk_logger_config {
	bool set;
	char *path; /* NULL: stderr */
	enum spk_res_log_level level;
	bool show_level, show_origin;
	char *module; /* recorded, not used: sparkler has no module paths */
};

struct spk_metrics_config {
	bool set;
	char *path;
	bool emit_id;
	json_t *properties; /* an object of strings, or NULL */
};

/* What Firecracker records for a drive or interface beyond the machine's
 * fields; kept so GET /vm/config gives back what was put. */
struct spk_drive_extra {
	char *partuuid;
	const char *cache_type; /* "Unsafe" or "Writeback" */
	const char *io_engine;  /* "Sync" or "Async" */
	json_t *rate_limiter;
};

struct spk_net_extra {
	uint32_t mtu; /* 0: not set */
	json_t *rx_rate_limiter, *tx_rate_limiter;
};

struct spk_vm_resources {
	struct spk_machine_config m; /* kernel NULL until PUT /boot-source */
	bool smt, track_dirty_pages;
	const char *cpu_template; /* "None", "T2", ... as given */
	struct spk_drive_extra drive_x[SPK_MACHINE_MAX_DRIVES];
	struct spk_net_extra net_x[SPK_MACHINE_MAX_NETS];
	json_t *entropy_rate_limiter;
	bool serial_set;
	char *serial_path; /* NULL: stdout */
	json_t *serial_rate_limiter;
	struct spk_logger_config logger;
	struct spk_metrics_config metrics;
	/* the metadata store (made on first use, resources_mmds.c) with this
	 * limit (0: SPK_MMDS_LIMIT_DEFAULT), and PUT /mmds/config as applied */
	struct spk_mmds *mmds;
	size_t mmds_limit;
	json_t *mmds_config;
};

/*
 * A refused body. schema: the JSON does not have the shape of the schema
 * (unknown field, wrong type, missing field); otherwise a value is wrong
 * (a range, a file that does not open, a duplicate). msg names the JSON
 * path, e.g. "$.drives[1].path_on_host: /x: No such file or directory".
 */
struct spk_res_err {
	bool schema;
	char msg[512];
};

/* Firecracker's defaults: 1 vCPU, 128 MiB, serial to stdout. */
void spk_res_init(struct spk_vm_resources *r);
void spk_res_free(struct spk_vm_resources *r);

/*
 * Apply one body. path is the JSON path of body for messages ("$" for an
 * API body). 0, or -EINVAL with *e filled and r unchanged. id is the
 * {drive_id} / {iface_id} of the URL, or NULL for a config file.
 */
int spk_res_machine_config(struct spk_vm_resources *r, json_t *body, bool patch, const char *path,
                           struct spk_res_err *e);
int spk_res_boot_source(struct spk_vm_resources *r, json_t *body, const char *path,
                        struct spk_res_err *e);
int spk_res_drive(struct spk_vm_resources *r, const char *id, json_t *body, const char *path,
                  struct spk_res_err *e);
int spk_res_drive_patch(struct spk_vm_resources *r, const char *id, json_t *body, const char *path,
                        struct spk_res_err *e);
/* The checks of spk_res_drive_patch alone: the drive's index, or -EINVAL
 * with e set; r is not changed. */
int spk_res_drive_patch_check(const struct spk_vm_resources *r, const char *id, json_t *body,
                              const char *path, struct spk_res_err *e);
int spk_res_net(struct spk_vm_resources *r, const char *id, json_t *body, const char *path,
                struct spk_res_err *e);
int spk_res_net_patch(struct spk_vm_resources *r, const char *id, json_t *body, const char *path,
                      struct spk_res_err *e);
/* The checks of spk_res_net_patch alone: the interface's index, or
 * -EINVAL with e set; r is not changed. */
int spk_res_net_patch_check(const struct spk_vm_resources *r, const char *id, json_t *body,
                            const char *path, struct spk_res_err *e);
int spk_res_vsock(struct spk_vm_resources *r, json_t *body, const char *path,
                  struct spk_res_err *e);
int spk_res_entropy(struct spk_vm_resources *r, json_t *body, const char *path,
                    struct spk_res_err *e);
int spk_res_serial(struct spk_vm_resources *r, json_t *body, const char *path,
                   struct spk_res_err *e);
/* PUT /balloon (and a config file's "balloon"): r->m.balloon. */
int spk_res_balloon(struct spk_vm_resources *r, json_t *body, const char *path,
                    struct spk_res_err *e);
/* The body of PATCH /balloon (stats false: amount_mib) or PATCH
 * /balloon/statistics (stats true: stats_polling_interval_s) checked
 * against r's balloon: the value in *out, or -EINVAL with e set (no
 * balloon, a target above the memory, statistics turned on or off). r is
 * not changed: the caller records *out once the device took it. */
int spk_res_balloon_patch_check(const struct spk_vm_resources *r, json_t *body, bool stats,
                                const char *path, uint32_t *out, struct spk_res_err *e);
/* The optional body of PATCH /balloon/hinting/start (NULL: none):
 * acknowledge_on_stop, true when absent. 0 or -EINVAL with e set. */
int spk_res_balloon_hint_start(json_t *body, const char *path, bool *ack, struct spk_res_err *e);
/* GET /balloon: a new reference, or NULL without a balloon. */
json_t *spk_res_balloon_json(const struct spk_vm_resources *r);
/* Parse only: the caller opens the files, then keeps *out (or frees it
 * with spk_res_logger_free / spk_res_metrics_free). */
int spk_res_logger(json_t *body, const char *path, struct spk_logger_config *out,
                   struct spk_res_err *e);
int spk_res_metrics(json_t *body, const char *path, struct spk_metrics_config *out,
                    struct spk_res_err *e);
void spk_res_logger_free(struct spk_logger_config *l);
void spk_res_metrics_free(struct spk_metrics_config *mc);

/* A resource id from a URL or a body: 1 to 64 of [A-Za-z0-9_]. */
int spk_res_check_id(const char *id, struct spk_res_err *e);

/* Parse "Paused"/"Resumed" of PATCH /vm and action_type of PUT /actions:
 * the index in names, or -EINVAL. */
int spk_res_enum_body(json_t *body, const char *field, const char *const *names, size_t n,
                      const char *path, struct spk_res_err *e);

/* GET /machine-config and GET /vm/config: new references. */
json_t *spk_res_machine_json(const struct spk_vm_resources *r);
json_t *spk_res_full_json(const struct spk_vm_resources *r);

/*
 * A whole Firecracker config file (boot-source, drives, machine-config,
 * network-interfaces, vsock, entropy, serial, logger, metrics), at most
 * SPK_RES_FILE_MAX bytes. 0, or -errno with "FILE: $.json.path: problem"
 * (or "FILE: line L column C: problem" for bad JSON) in err, one line.
 */
#define SPK_RES_FILE_MAX      (1u << 20)
#define SPK_RES_FILE_MAX_TEXT "1 MiB"
int spk_res_load_file(struct spk_vm_resources *r, const char *file, char *err, size_t errlen);
/* The same for the file's text (len bytes, no NUL needed); messages
 * begin with name instead of the file's. */
int spk_res_load_buffer(struct spk_vm_resources *r, const char *name, const char *buf, size_t len,
                        char *err, size_t errlen);

/* ---- MMDS (resources_mmds.c) ---- */

/* The store, made now if there is none (NULL: out of memory). */
struct spk_mmds *spk_res_mmds(struct spk_vm_resources *r);
void spk_res_mmds_free(struct spk_vm_resources *r);
/* PUT /mmds/config, a config file's mmds-config: the interfaces must be
 * there already. */
int spk_res_mmds_config(struct spk_vm_resources *r, json_t *body, const char *path,
                        struct spk_res_err *e);
/* PUT (patch false) or PATCH /mmds: 0 with *status 204, or -errno with
 * *status 400 or 413 (over the size limit) and e set. */
int spk_res_mmds_data(struct spk_vm_resources *r, json_t *body, bool patch, unsigned *status,
                      struct spk_res_err *e);
/* GET /mmds: a new reference ({} before any PUT), NULL when out of memory. */
json_t *spk_res_mmds_json(struct spk_vm_resources *r);

/* A rate_limiter object that passed its checks (NULL or null: none) as
 * the limit the devices enforce. */
void spk_res_rate_limit(const json_t *rl, struct spk_rate_limit *out);

#endif
