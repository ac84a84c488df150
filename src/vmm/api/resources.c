/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Firecracker's JSON resources -> spk_vm_resources. Every body is checked
 * against its schema first (no unknown fields, every type right, required
 * fields there; null counts as absent for optional fields, as serde's
 * Option does), then its values; only a body that passes both changes the
 * resources. Messages name the JSON path of the offending value.
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

#define TAP_NAME_MAX 15 /* IFNAMSIZ - 1 */

/* ---- errors -------------------------------------------------------------- */

int spk_res_fail(struct spk_res_err *e, bool schema, const char *path, const char *fmt, ...)
{
	va_list ap;
	int n = snprintf(e->msg, sizeof(e->msg), "%s: ", path);

	e->schema = schema;
	if (n < 0 || (size_t)n >= sizeof(e->msg))
		return -EINVAL;
	va_start(ap, fmt);
	vsnprintf(e->msg + n, sizeof(e->msg) - (size_t)n, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static void child_path(char *out, const char *path, const char *name)
{
	if (snprintf(out, PATH_BUF, "%s.%s", path, name) >= PATH_BUF)
		memcpy(out + PATH_BUF - 4, "...", 4); /* a deep path: cut, visibly */
}

/* ---- schema checks ---------------------------------------------------------- */

enum jtype { JT_STR, JT_BOOL, JT_INT, JT_OBJ, JT_ARR };

struct jfield {
	const char *name;
	enum jtype type;
	bool required;
};

const char *spk_res_json_type(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return "an object";
	case JSON_ARRAY:
		return "an array";
	case JSON_STRING:
		return "a string";
	case JSON_INTEGER:
		return "an integer";
	case JSON_REAL:
		return "a number with a fraction";
	case JSON_TRUE:
	case JSON_FALSE:
		return "a boolean";
	case JSON_NULL:
		return "null";
	}
	return "something else";
}

static const char *jtype_name(enum jtype t)
{
	static const char *const names[] = {"a string", "a boolean", "an integer", "an object",
	                                    "an array"};
	return names[t];
}

static bool type_ok(const json_t *v, enum jtype t)
{
	switch (t) {
	case JT_STR:
		return json_is_string(v);
	case JT_BOOL:
		return json_is_boolean(v);
	case JT_INT:
		return json_is_integer(v);
	case JT_OBJ:
		return json_is_object(v);
	case JT_ARR:
		return json_is_array(v);
	}
	return false;
}

static int unknown_field(const char *path, const char *key, const struct jfield *f, size_t n,
                         struct spk_res_err *e)
{
	char names[256] = "";
	size_t len = 0;

	for (size_t i = 0; i < n && len < sizeof(names); i++) {
		int w =
		    snprintf(names + len, sizeof(names) - len, "%s%s", i ? ", " : "", f[i].name);
		if (w < 0)
			break;
		len += (size_t)w;
	}
	return spk_res_fail(e, true, path, "unknown field `%.64s`, expected one of: %s", key,
	                    names);
}

static const struct jfield *find_field(const char *key, const struct jfield *f, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(f[i].name, key) == 0)
			return &f[i];
	return NULL;
}

/* obj is an object with only the fields f, each of its type or null
 * (optional ones), and every required field present. */
static int check_object(const json_t *obj, const char *path, const struct jfield *f, size_t n,
                        struct spk_res_err *e)
{
	const char *key;
	json_t *v;
	char p[PATH_BUF];

	if (!json_is_object(obj))
		return spk_res_fail(e, true, path, "expected an object, got %s",
		                    spk_res_json_type(obj));
	json_object_foreach((json_t *)obj, key, v)
	{
		const struct jfield *fd = find_field(key, f, n);

		if (!fd)
			return unknown_field(path, key, f, n, e);
		child_path(p, path, key);
		if (json_is_null(v) && !fd->required)
			continue;
		if (!type_ok(v, fd->type))
			return spk_res_fail(e, true, p, "expected %s, got %s", jtype_name(fd->type),
			                    spk_res_json_type(v));
		if (fd->type == JT_STR && strlen(json_string_value(v)) != json_string_length(v))
			return spk_res_fail(e, true, p, "the string contains a NUL character");
	}
	for (size_t i = 0; i < n; i++)
		if (f[i].required && !json_object_get(obj, f[i].name)) {
			child_path(p, path, f[i].name);
			return spk_res_fail(e, true, p, "missing required field");
		}
	return 0;
}

/* A present, non-null field (after check_object), or NULL. */
static json_t *field(const json_t *obj, const char *name)
{
	json_t *v = json_object_get(obj, name);

	return json_is_null(v) ? NULL : v;
}

static const char *str_field(const json_t *obj, const char *name)
{
	json_t *v = field(obj, name);

	return v ? json_string_value(v) : NULL;
}

static bool bool_field(const json_t *obj, const char *name, bool dflt)
{
	json_t *v = field(obj, name);

	return v ? json_is_true(v) : dflt;
}

static int int_field(const json_t *obj, const char *path, const char *name, json_int_t min,
                     json_int_t max, json_int_t *out, struct spk_res_err *e)
{
	json_t *v = field(obj, name);
	char p[PATH_BUF];

	if (!v)
		return 0;
	*out = json_integer_value(v);
	if (*out < min || *out > max) {
		child_path(p, path, name);
		return spk_res_fail(e, false, p, "%lld is out of range: need %lld to %lld",
		                    (long long)*out, (long long)min, (long long)max);
	}
	return 0;
}

/* The index of the string field's value in names, or -1 when absent. */
static int enum_field(const json_t *obj, const char *path, const char *name,
                      const char *const *names, size_t n, bool nocase, int *out,
                      struct spk_res_err *e)
{
	const char *s = str_field(obj, name);
	char p[PATH_BUF], list[128] = "";
	size_t len = 0;

	*out = -1;
	if (!s)
		return 0;
	for (size_t i = 0; i < n; i++) {
		if ((nocase ? strcasecmp(s, names[i]) : strcmp(s, names[i])) == 0) {
			*out = (int)i;
			return 0;
		}
		int w = snprintf(list + len, sizeof(list) - len, "%s%s", i ? ", " : "", names[i]);
		if (w > 0 && (size_t)w < sizeof(list) - len)
			len += (size_t)w;
	}
	child_path(p, path, name);
	return spk_res_fail(e, true, p, "unknown variant `%.64s`, expected one of: %s", s, list);
}

/* ---- shared value checks -------------------------------------------------------- */

int spk_res_check_id(const char *id, struct spk_res_err *e)
{
	size_t n = strlen(id);

	if (n == 0) {
		snprintf(e->msg, sizeof(e->msg), "The ID cannot be empty.");
		e->schema = false;
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++)
		if (!(id[i] == '_' || (id[i] >= '0' && id[i] <= '9') ||
		      ((id[i] | 0x20) >= 'a' && (id[i] | 0x20) <= 'z'))) {
			snprintf(e->msg, sizeof(e->msg),
			         "API Resource IDs can only contain alphanumeric characters and "
			         "underscores.");
			e->schema = false;
			return -EINVAL;
		}
	if (n >= SPK_MACHINE_ID_MAX) {
		snprintf(e->msg, sizeof(e->msg),
		         "The ID %.16s... is %zu characters long: at most %d", id, n,
		         SPK_MACHINE_ID_MAX - 1);
		e->schema = false;
		return -EINVAL;
	}
	return 0;
}

static int check_id_field(const json_t *body, const char *path, const char *name,
                          const char *url_id, struct spk_res_err *e)
{
	const char *id = str_field(body, name);
	char p[PATH_BUF];

	if (url_id && strcmp(id, url_id) != 0) {
		snprintf(e->msg, sizeof(e->msg),
		         "The id from the path does not match the id from the body!");
		e->schema = false;
		return -EINVAL;
	}
	if (spk_res_check_id(id, e) < 0) {
		char why[sizeof(e->msg)];

		memcpy(why, e->msg, sizeof(why));
		child_path(p, path, name);
		return spk_res_fail(e, false, p, "%s", why);
	}
	return 0;
}

/*
 * A file the VM will read (or write): it exists, is a regular file (or a
 * block device when block is set) and opens with the access it needs. A
 * FIFO or a socket is refused before it is opened, so a check never blocks.
 */
static int check_file(const char *file, const char *path, const char *what, bool block, bool write,
                      struct spk_res_err *e)
{
	struct stat st;
	int fd;

	if (!*file)
		return spk_res_fail(e, false, path, "empty path for the %s", what);
	if (strlen(file) >= PATH_MAX)
		return spk_res_fail(e, false, path, "the path of the %s is too long", what);
	if (stat(file, &st) < 0)
		return spk_res_fail(e, false, path, "%s: cannot open the %s: %s", file, what,
		                    strerror(errno));
	if (!S_ISREG(st.st_mode) && !(block && S_ISBLK(st.st_mode)))
		return spk_res_fail(e, false, path, "%s: the %s is not a regular file%s", file,
		                    what, block ? " or block device" : "");
	fd = open(file, (write ? O_RDWR : O_RDONLY) | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return spk_res_fail(e, false, path, "%s: cannot open the %s%s: %s", file, what,
		                    write ? " for reading and writing" : "", strerror(errno));
	close(fd);
	return 0;
}

static int check_file_field(const json_t *body, const char *path, const char *name,
                            const char *what, bool block, bool write, struct spk_res_err *e)
{
	const char *file = str_field(body, name);
	char p[PATH_BUF];

	child_path(p, path, name);
	return file ? check_file(file, p, what, block, write, e) : 0;
}

static int check_token_bucket(const json_t *tb, const char *path, struct spk_res_err *e)
{
	static const struct jfield f[] = {
	    {"size", JT_INT, true},
	    {"one_time_burst", JT_INT, false},
	    {"refill_time", JT_INT, true},
	};
	/* enforced, so no zero: a bucket that holds nothing or never refills
	 * would stop the device for good (a limit is left out to have none) */
	static const json_int_t min[] = {1, 0, 1};
	static const json_int_t max[] = {INT64_MAX, INT64_MAX, (json_int_t)SPK_RATE_REFILL_MAX_MS};
	json_int_t v;
	int rc = check_object(tb, path, f, ARRAY_LEN(f), e);

	for (size_t i = 0; rc == 0 && i < ARRAY_LEN(f); i++)
		rc = int_field(tb, path, f[i].name, min[i], max[i], &v, e);
	return rc;
}

static void token_bucket(const json_t *tb, struct spk_token_bucket *out)
{
	*out = (struct spk_token_bucket){0};
	if (!tb || json_is_null(tb))
		return;
	out->size = (uint64_t)json_integer_value(json_object_get(tb, "size"));
	out->one_time_burst = (uint64_t)json_integer_value(json_object_get(tb, "one_time_burst"));
	out->refill_time_ms = (uint64_t)json_integer_value(json_object_get(tb, "refill_time"));
}

void spk_res_rate_limit(const json_t *rl, struct spk_rate_limit *out)
{
	*out = (struct spk_rate_limit){0};
	if (!rl || json_is_null(rl))
		return;
	token_bucket(json_object_get(rl, "bandwidth"), &out->bandwidth);
	token_bucket(json_object_get(rl, "ops"), &out->ops);
}

static int check_rate_limiter(const json_t *rl, const char *path, struct spk_res_err *e)
{
	static const struct jfield f[] = {{"bandwidth", JT_OBJ, false}, {"ops", JT_OBJ, false}};
	char p[PATH_BUF];
	int rc = check_object(rl, path, f, ARRAY_LEN(f), e);

	for (size_t i = 0; rc == 0 && i < ARRAY_LEN(f); i++) {
		json_t *tb = field(rl, f[i].name);

		child_path(p, path, f[i].name);
		if (tb)
			rc = check_token_bucket(tb, p, e);
	}
	return rc;
}

/* An optional rate limiter field: checked, and a copy kept in *out. */
static int rate_limiter_field(const json_t *body, const char *path, const char *name, json_t **out,
                              struct spk_res_err *e)
{
	json_t *rl = field(body, name);
	char p[PATH_BUF];

	*out = NULL;
	if (!rl)
		return 0;
	child_path(p, path, name);
	if (check_rate_limiter(rl, p, e) < 0)
		return -EINVAL;
	*out = json_deep_copy(rl);
	return 0;
}

static void replace_json(json_t **dst, json_t *src)
{
	json_decref(*dst);
	*dst = src;
}

/* Take ownership of a copy of s (NULL clears). -ENOMEM. */
static int set_str(char **dst, const char *s, struct spk_res_err *e)
{
	if (spk_config_set_str(dst, s) < 0) {
		snprintf(e->msg, sizeof(e->msg), "out of memory");
		e->schema = false;
		return -ENOMEM;
	}
	return 0;
}

/* ---- init / free --------------------------------------------------------------------- */

void spk_res_init(struct spk_vm_resources *r)
{
	memset(r, 0, sizeof(*r));
	spk_machine_config_init(&r->m);
	r->m.mem = (uint64_t)SPK_RES_DEFAULT_MEM_MB << 20;
	r->cpu_template = "None";
	r->logger.level = SPK_RES_LOG_INFO;
}

static void drive_extra_free(struct spk_drive_extra *x)
{
	free(x->partuuid);
	json_decref(x->rate_limiter);
	memset(x, 0, sizeof(*x));
}

static void net_extra_free(struct spk_net_extra *x)
{
	json_decref(x->rx_rate_limiter);
	json_decref(x->tx_rate_limiter);
	memset(x, 0, sizeof(*x));
}

void spk_res_logger_free(struct spk_logger_config *l)
{
	free(l->path);
	free(l->module);
	memset(l, 0, sizeof(*l));
}

void spk_res_metrics_free(struct spk_metrics_config *mc)
{
	free(mc->path);
	json_decref(mc->properties);
	memset(mc, 0, sizeof(*mc));
}

void spk_res_free(struct spk_vm_resources *r)
{
	for (uint32_t i = 0; i < SPK_MACHINE_MAX_DRIVES; i++)
		drive_extra_free(&r->drive_x[i]);
	for (uint32_t i = 0; i < SPK_MACHINE_MAX_NETS; i++)
		net_extra_free(&r->net_x[i]);
	json_decref(r->entropy_rate_limiter);
	json_decref(r->serial_rate_limiter);
	free(r->serial_path);
	spk_res_logger_free(&r->logger);
	spk_res_metrics_free(&r->metrics);
	spk_res_mmds_free(r);
	spk_machine_config_free(&r->m);
	memset(r, 0, sizeof(*r));
}

/* ---- machine-config --------------------------------------------------------------------- */

static const char *const cpu_templates[] = {"None", "C3", "T2", "T2S", "T2CL", "T2A", "V1N1"};
static const char *const huge_pages_names[] = {"None", "Transparent", "2M"};

struct machine_vals {
	json_int_t vcpus, mem_mib;
	bool smt, dirty;
	int tmpl;
};

static int machine_values(const json_t *b, const char *path, struct machine_vals *v,
                          struct spk_res_err *e)
{
	char p[PATH_BUF];
	int huge;

	if (int_field(b, path, "vcpu_count", 1, SPK_RES_MAX_VCPUS, &v->vcpus, e) < 0 ||
	    int_field(b, path, "mem_size_mib", SPK_PC_MEM_MIN >> 20, SPK_PC_MEM_MAX >> 20,
	              &v->mem_mib, e) < 0 ||
	    enum_field(b, path, "cpu_template", cpu_templates, ARRAY_LEN(cpu_templates), false,
	               &v->tmpl, e) < 0 ||
	    enum_field(b, path, "huge_pages", huge_pages_names, ARRAY_LEN(huge_pages_names), false,
	               &huge, e) < 0)
		return -EINVAL;
	v->smt = bool_field(b, "smt", v->smt);
	v->dirty = bool_field(b, "track_dirty_pages", v->dirty);
	if (huge > 0) {
		child_path(p, path, "huge_pages");
		return spk_res_fail(e, false, p,
		                    "%s huge pages are not supported by sparkler (use None)",
		                    huge_pages_names[huge]);
	}
	if (v->tmpl == 6) {
		child_path(p, path, "cpu_template");
		return spk_res_fail(e, false, p,
		                    "V1N1 is an aarch64 template; this is an x86-64 host");
	}
	if (v->smt && v->vcpus > 1 && v->vcpus % 2)
		return spk_res_fail(
		    e, false, path,
		    "The vCPU number is invalid! The vCPU number can only be 1 or an "
		    "even number when SMT is enabled.");
	return 0;
}

int spk_res_machine_config(struct spk_vm_resources *r, json_t *body, bool patch, const char *path,
                           struct spk_res_err *e)
{
	static const struct jfield put[] = {
	    {"vcpu_count", JT_INT, true},    {"mem_size_mib", JT_INT, true},
	    {"smt", JT_BOOL, false},         {"track_dirty_pages", JT_BOOL, false},
	    {"cpu_template", JT_STR, false}, {"huge_pages", JT_STR, false},
	};
	struct jfield f[ARRAY_LEN(put)];
	struct machine_vals v = {.vcpus = 1, .mem_mib = SPK_RES_DEFAULT_MEM_MB, .tmpl = -1};

	memcpy(f, put, sizeof(f));
	f[0].required = f[1].required = !patch;
	if (check_object(body, path, f, ARRAY_LEN(f), e) < 0)
		return -EINVAL;
	if (patch && json_object_size(body) == 0) {
		snprintf(e->msg, sizeof(e->msg), "Empty PATCH request.");
		e->schema = false;
		return -EINVAL;
	}
	if (patch)
		v = (struct machine_vals){.vcpus = r->m.vcpus,
		                          .mem_mib = (json_int_t)(r->m.mem >> 20),
		                          .smt = r->smt,
		                          .dirty = r->track_dirty_pages,
		                          .tmpl = -1};
	if (machine_values(body, path, &v, e) < 0)
		return -EINVAL;
	r->m.vcpus = (uint32_t)v.vcpus;
	r->m.mem = (uint64_t)v.mem_mib << 20;
	r->smt = v.smt;
	r->track_dirty_pages = v.dirty;
	if (v.tmpl >= 0 || !patch)
		r->cpu_template = cpu_templates[v.tmpl < 0 ? 0 : v.tmpl];
	/* Firecracker's x86 templates all hide features: sparkler's minimal
	 * template is the nearest it has */
	r->m.template =
	    strcmp(r->cpu_template, "None") ? SPK_CPU_TEMPLATE_MINIMAL : SPK_CPU_TEMPLATE_HOST;
	return 0;
}

/* ---- boot-source ---------------------------------------------------------------------- */

int spk_res_boot_source(struct spk_vm_resources *r, json_t *body, const char *path,
                        struct spk_res_err *e)
{
	static const struct jfield f[] = {
	    {"kernel_image_path", JT_STR, true},
	    {"initrd_path", JT_STR, false},
	    {"boot_args", JT_STR, false},
	};
	const char *args;
	char *k = NULL, *i = NULL, *c = NULL;

	if (check_object(body, path, f, ARRAY_LEN(f), e) < 0 ||
	    check_file_field(body, path, "kernel_image_path", "kernel image", false, false, e) <
	        0 ||
	    check_file_field(body, path, "initrd_path", "initrd", false, false, e) < 0)
		return -EINVAL;
	args = str_field(body, "boot_args");
	if (args && strlen(args) >= 4096) {
		char p[PATH_BUF];

		child_path(p, path, "boot_args");
		return spk_res_fail(e, false, p, "the command line is %zu bytes long: at most 4095",
		                    strlen(args));
	}
	if (set_str(&k, str_field(body, "kernel_image_path"), e) < 0 ||
	    set_str(&i, str_field(body, "initrd_path"), e) < 0 || set_str(&c, args, e) < 0) {
		free(k);
		free(i);
		return -ENOMEM;
	}
	free(r->m.kernel);
	free(r->m.initrd);
	free(r->m.cmdline);
	r->m.kernel = k;
	r->m.initrd = i;
	r->m.cmdline = c;
	return 0;
}

/* ---- drives ------------------------------------------------------------------------------ */

static int find_drive(const struct spk_vm_resources *r, const char *id)
{
	for (uint32_t i = 0; i < r->m.n_drives; i++)
		if (strcmp(r->m.drives[i].id, id) == 0)
			return (int)i;
	return -1;
}

static const char *const cache_types[] = {"Unsafe", "Writeback"};
static const char *const io_engines[] = {"Sync", "Async"};

static int drive_values(const struct spk_vm_resources *r, const json_t *b, const char *path,
                        const char *id, int *cache, int *engine, struct spk_res_err *e)
{
	char p[PATH_BUF];
	bool ro = bool_field(b, "is_read_only", false);

	if (field(b, "socket")) {
		child_path(p, path, "socket");
		return spk_res_fail(e, false, p,
		                    "vhost-user block devices are not supported by sparkler");
	}
	if (!field(b, "path_on_host")) {
		child_path(p, path, "path_on_host");
		return spk_res_fail(e, false, p,
		                    "missing: a virtio block device needs a backing file");
	}
	if (enum_field(b, path, "cache_type", cache_types, 2, false, cache, e) < 0 ||
	    enum_field(b, path, "io_engine", io_engines, 2, false, engine, e) < 0 ||
	    check_file_field(b, path, "path_on_host", "drive's backing file", true, !ro, e) < 0)
		return -EINVAL;
	if (!bool_field(b, "is_root_device", false))
		return 0;
	for (uint32_t i = 0; i < r->m.n_drives; i++)
		if (r->m.drives[i].root && strcmp(r->m.drives[i].id, id) != 0) {
			child_path(p, path, "is_root_device");
			return spk_res_fail(e, false, p, "A root block device already exists! (%s)",
			                    r->m.drives[i].id);
		}
	return 0;
}

int spk_res_drive(struct spk_vm_resources *r, const char *url_id, json_t *body, const char *path,
                  struct spk_res_err *e)
{
	static const struct jfield f[] = {
	    {"drive_id", JT_STR, true},       {"is_root_device", JT_BOOL, true},
	    {"partuuid", JT_STR, false},      {"cache_type", JT_STR, false},
	    {"is_read_only", JT_BOOL, false}, {"path_on_host", JT_STR, false},
	    {"rate_limiter", JT_OBJ, false},  {"io_engine", JT_STR, false},
	    {"socket", JT_STR, false},
	};
	int cache = -1, engine = -1, idx;
	struct spk_drive_extra x = {0};
	char *file = NULL;
	const char *id;

	if (check_object(body, path, f, ARRAY_LEN(f), e) < 0 ||
	    check_id_field(body, path, "drive_id", url_id, e) < 0)
		return -EINVAL;
	id = str_field(body, "drive_id");
	if (drive_values(r, body, path, id, &cache, &engine, e) < 0)
		return -EINVAL;
	idx = find_drive(r, id);
	if (idx < 0 && r->m.n_drives >= SPK_MACHINE_MAX_DRIVES)
		return spk_res_fail(e, false, path, "sparkler takes at most %d drives",
		                    SPK_MACHINE_MAX_DRIVES);
	if (rate_limiter_field(body, path, "rate_limiter", &x.rate_limiter, e) < 0)
		return -EINVAL;
	if (set_str(&x.partuuid, str_field(body, "partuuid"), e) < 0 ||
	    set_str(&file, str_field(body, "path_on_host"), e) < 0) {
		drive_extra_free(&x);
		return -ENOMEM;
	}
	x.cache_type = cache_types[cache < 0 ? 0 : cache];
	x.io_engine = io_engines[engine < 0 ? 0 : engine];
	if (idx < 0)
		idx = (int)r->m.n_drives++;
	struct spk_drive_config *d = &r->m.drives[idx];
	free(d->path);
	drive_extra_free(&r->drive_x[idx]);
	*d = (struct spk_drive_config){.path = file,
	                               .read_only = bool_field(body, "is_read_only", false),
	                               .root = bool_field(body, "is_root_device", false)};
	spk_res_rate_limit(x.rate_limiter, &d->rate_limit);
	snprintf(d->id, sizeof(d->id), "%s", id);
	r->drive_x[idx] = x;
	return 0;
}

int spk_res_drive_patch_check(const struct spk_vm_resources *r, const char *url_id, json_t *body,
                              const char *path, struct spk_res_err *e)
{
	static const struct jfield f[] = {
	    {"drive_id", JT_STR, true},
	    {"path_on_host", JT_STR, false},
	    {"rate_limiter", JT_OBJ, false},
	};
	json_t *rl = NULL;
	int idx;

	if (check_object(body, path, f, ARRAY_LEN(f), e) < 0 ||
	    check_id_field(body, path, "drive_id", url_id, e) < 0)
		return -EINVAL;
	idx = find_drive(r, str_field(body, "drive_id"));
	if (idx < 0)
		return spk_res_fail(e, false, path, "no drive %s: PUT /drives/%s first",
		                    str_field(body, "drive_id"), str_field(body, "drive_id"));
	if (check_file_field(body, path, "path_on_host", "drive's backing file", true,
	                     !r->m.drives[idx].read_only, e) < 0 ||
	    rate_limiter_field(body, path, "rate_limiter", &rl, e) < 0)
		return -EINVAL;
	json_decref(rl);
	return idx;
}

int spk_res_drive_patch(struct spk_vm_resources *r, const char *url_id, json_t *body,
                        const char *path, struct spk_res_err *e)
{
	json_t *rl = NULL;
	char *file = NULL;
	int idx = spk_res_drive_patch_check(r, url_id, body, path, e);

	if (idx < 0 || rate_limiter_field(body, path, "rate_limiter", &rl, e) < 0)
		return -EINVAL;
	if (field(body, "path_on_host") && set_str(&file, str_field(body, "path_on_host"), e) < 0) {
		json_decref(rl);
		return -ENOMEM;
	}
	if (file) {
		free(r->m.drives[idx].path);
		r->m.drives[idx].path = file;
	}
	if (rl) {
		spk_res_rate_limit(rl, &r->m.drives[idx].rate_limit);
		replace_json(&r->drive_x[idx].rate_limiter, rl);
	}
	return 0;
}

/* ---- network interfaces ------------------------------------------------------------------- */

static int find_net(const struct spk_vm_resources *r, const char *id)
{
	for (uint32_t i = 0; i < r->m.n_nets; i++)
		if (strcmp(r->m.nets[i].id, id) == 0)
			return (int)i;
	return -1;
}

int spk_res_parse_mac(const char *s, uint8_t mac[6])
{
	for (int i = 0; i < 6; i++) {
		unsigned v = 0;

		for (int j = 0; j < 2; j++) {
			char c = s[i * 3 + j];
			int d = c >= '0' && c <= '9'   ? c - '0'
			        : c >= 'a' && c <= 'f' ? c - 'a' + 10
			        : c >= 'A' && c <= 'F' ? c - 'A' + 10
			                               : -1;
			if (d < 0)
				return -1;
			v = v * 16 + (unsigned)d;
		}
		if (s[i * 3 + 2] != (i == 5 ? '\0' : ':'))
			return -1;
		mac[i] = (uint8_t)v;
	}
	return 0;
}

static int net_values(const struct spk_vm_resources *r, const json_t *b, const char *path,
                      struct spk_net_config *n, json_int_t *mtu, struct spk_res_err *e)
{
	const char *tap = str_field(b, "host_dev_name"), *mac = str_field(b, "guest_mac");
	char p[PATH_BUF];

	child_path(p, path, "host_dev_name");
	if (!*tap || strlen(tap) > TAP_NAME_MAX || strchr(tap, '/'))
		return spk_res_fail(e, false, p,
		                    "`%.64s` is not a network device name (1 to %d "
		                    "characters, no '/')",
		                    tap, TAP_NAME_MAX);
	snprintf(n->tap, sizeof(n->tap), "%s", tap);
	child_path(p, path, "guest_mac");
	if (mac && spk_res_parse_mac(mac, n->mac) < 0)
		return spk_res_fail(e, false, p,
		                    "`%.64s` is not a MAC address like 06:00:ac:10:00:02", mac);
	n->has_mac = mac != NULL;
	if (int_field(b, path, "mtu", 68, 65535, mtu, e) < 0)
		return -EINVAL;
	for (uint32_t i = 0; i < r->m.n_nets; i++) {
		const struct spk_net_config *o = &r->m.nets[i];

		if (strcmp(o->id, n->id) == 0)
			continue;
		if (strcmp(o->tap, n->tap) == 0) {
			child_path(p, path, "host_dev_name");
			return spk_res_fail(e, false, p, "%s is already used by interface %s",
			                    n->tap, o->id);
		}
		if (n->has_mac && o->has_mac && memcmp(o->mac, n->mac, 6) == 0)
			return spk_res_fail(e, false, p, "%s is already used by interface %s", mac,
			                    o->id);
	}
	return 0;
}

int spk_res_net(struct spk_vm_resources *r, const char *url_id, json_t *body, const char *path,
                struct spk_res_err *e)
{
	static const struct jfield f[] = {
	    {"iface_id", JT_STR, true},         {"host_dev_name", JT_STR, true},
	    {"guest_mac", JT_STR, false},       {"mtu", JT_INT, false},
	    {"rx_rate_limiter", JT_OBJ, false}, {"tx_rate_limiter", JT_OBJ, false},
	};
	struct spk_net_config n = {0};
	struct spk_net_extra x = {0};
	json_int_t mtu = 0;
	int idx;

	if (check_object(body, path, f, ARRAY_LEN(f), e) < 0 ||
	    check_id_field(body, path, "iface_id", url_id, e) < 0)
		return -EINVAL;
	snprintf(n.id, sizeof(n.id), "%s", str_field(body, "iface_id"));
	if (net_values(r, body, path, &n, &mtu, e) < 0)
		return -EINVAL;
	idx = find_net(r, n.id);
	if (idx < 0 && r->m.n_nets >= SPK_MACHINE_MAX_NETS)
		return spk_res_fail(e, false, path, "sparkler takes at most %d network interfaces",
		                    SPK_MACHINE_MAX_NETS);
	if (rate_limiter_field(body, path, "rx_rate_limiter", &x.rx_rate_limiter, e) < 0 ||
	    rate_limiter_field(body, path, "tx_rate_limiter", &x.tx_rate_limiter, e) < 0) {
		net_extra_free(&x);
		return -EINVAL;
	}
	x.mtu = (uint32_t)mtu;
	n.mtu = (uint16_t)mtu; /* 68 to 65535, or 0 when not given */
	spk_res_rate_limit(x.rx_rate_limiter, &n.rx_rate_limit);
	spk_res_rate_limit(x.tx_rate_limiter, &n.tx_rate_limit);
	if (idx < 0)
		idx = (int)r->m.n_nets++;
	n.mmds = r->m.nets[idx].mmds; /* a new body keeps the PUT /mmds/config of its id */
	r->m.nets[idx] = n;
	net_extra_free(&r->net_x[idx]);
	r->net_x[idx] = x;
	return 0;
}

int spk_res_net_patch_check(const struct spk_vm_resources *r, const char *url_id, json_t *body,
                            const char *path, struct spk_res_err *e)
{
	static const struct jfield f[] = {
	    {"iface_id", JT_STR, true},
	    {"rx_rate_limiter", JT_OBJ, false},
	    {"tx_rate_limiter", JT_OBJ, false},
	};
	struct spk_net_extra x = {0};
	int idx;

	if (check_object(body, path, f, ARRAY_LEN(f), e) < 0 ||
	    check_id_field(body, path, "iface_id", url_id, e) < 0)
		return -EINVAL;
	idx = find_net(r, str_field(body, "iface_id"));
	if (idx < 0)
		return spk_res_fail(e, false, path,
		                    "no network interface %s: PUT "
		                    "/network-interfaces/%s first",
		                    str_field(body, "iface_id"), str_field(body, "iface_id"));
	if (rate_limiter_field(body, path, "rx_rate_limiter", &x.rx_rate_limiter, e) < 0 ||
	    rate_limiter_field(body, path, "tx_rate_limiter", &x.tx_rate_limiter, e) < 0) {
		net_extra_free(&x);
		return -EINVAL;
	}
	net_extra_free(&x);
	return idx;
}

int spk_res_net_patch(struct spk_vm_resources *r, const char *url_id, json_t *body,
                      const char *path, struct spk_res_err *e)
{
	struct spk_net_extra x = {0};
	int idx = spk_res_net_patch_check(r, url_id, body, path, e);

	if (idx < 0 ||
	    rate_limiter_field(body, path, "rx_rate_limiter", &x.rx_rate_limiter, e) < 0 ||
	    rate_limiter_field(body, path, "tx_rate_limiter", &x.tx_rate_limiter, e) < 0) {
		net_extra_free(&x);
		return -EINVAL;
	}
	if (x.rx_rate_limiter) {
		spk_res_rate_limit(x.rx_rate_limiter, &r->m.nets[idx].rx_rate_limit);
		replace_json(&r->net_x[idx].rx_rate_limiter, x.rx_rate_limiter);
	}
	if (x.tx_rate_limiter) {
		spk_res_rate_limit(x.tx_rate_limiter, &r->m.nets[idx].tx_rate_limit);
		replace_json(&r->net_x[idx].tx_rate_limiter, x.tx_rate_limiter);
	}
	return 0;
}

/* ---- vsock, entropy, serial ------------------------------------------------------------------ */

int spk_res_vsock(struct spk_vm_resources *r, json_t *body, const char *path, struct spk_res_err *e)
{
	static const struct jfield f[] = {
	    {"guest_cid", JT_INT, true},
	    {"uds_path", JT_STR, true},
	    {"vsock_id", JT_STR, false}, /* deprecated: accepted, ignored */
	};
	const size_t sun_max = sizeof(((struct sockaddr_un *)0)->sun_path) - 1;
	json_int_t cid = 0;
	const char *uds;
	char p[PATH_BUF], *copy = NULL;

	if (check_object(body, path, f, ARRAY_LEN(f), e) < 0 ||
	    int_field(body, path, "guest_cid", 3, UINT32_MAX - 1, &cid, e) < 0)
		return -EINVAL;
	uds = str_field(body, "uds_path");
	child_path(p, path, "uds_path");
	if (!*uds || strlen(uds) > sun_max)
		return spk_res_fail(e, false, p, "a Unix socket path needs 1 to %zu bytes, not %zu",
		                    sun_max, strlen(uds));
	if (set_str(&copy, uds, e) < 0)
		return -ENOMEM;
	free(r->m.vsock.uds_path);
	r->m.vsock = (struct spk_vsock_config){
	    .enabled = true, .guest_cid = (uint32_t)cid, .uds_path = copy};
	return 0;
}

int spk_res_entropy(struct spk_vm_resources *r, json_t *body, const char *path,
                    struct spk_res_err *e)
{
	static const struct jfield f[] = {{"rate_limiter", JT_OBJ, false}};
	json_t *rl;

	if (check_object(body, path, f, ARRAY_LEN(f), e) < 0 ||
	    rate_limiter_field(body, path, "rate_limiter", &rl, e) < 0)
		return -EINVAL;
	replace_json(&r->entropy_rate_limiter, rl);
	spk_res_rate_limit(rl, &r->m.entropy_rate_limit);
	r->m.entropy = true;
	return 0;
}

/* ---- balloon -------------------------------------------------------------------------------- */

/* Firecracker's message for a target above the guest's memory. */
#define TOO_MANY_PAGES "Amount of pages requested is too large."

/* A refusal in Firecracker's words alone (no JSON path): -EINVAL. */
static int plain_fail(struct spk_res_err *e, const char *msg)
{
	snprintf(e->msg, sizeof(e->msg), "%s", msg);
	e->schema = false;
	return -EINVAL;
}

int spk_res_balloon(struct spk_vm_resources *r, json_t *body, const char *path,
                    struct spk_res_err *e)
{
	static const struct jfield f[] = {
	    {"amount_mib", JT_INT, true},
	    {"deflate_on_oom", JT_BOOL, true},
	    {"stats_polling_interval_s", JT_INT, false},
	    {"free_page_hinting", JT_BOOL, false},
	    {"free_page_reporting", JT_BOOL, false},
	};
	json_int_t amount = 0, interval = 0;

	if (check_object(body, path, f, ARRAY_LEN(f), e) < 0 ||
	    int_field(body, path, "amount_mib", 0, UINT32_MAX, &amount, e) < 0 ||
	    int_field(body, path, "stats_polling_interval_s", 0, UINT16_MAX, &interval, e) < 0)
		return -EINVAL;
	if ((uint64_t)amount > r->m.mem >> 20)
		return spk_res_fail(e, false, path,
		                    "%lld MiB in %llu MiB of memory: " TOO_MANY_PAGES,
		                    (long long)amount, (unsigned long long)(r->m.mem >> 20));
	r->m.balloon = (struct spk_balloon_config){
	    .enabled = true,
	    .amount_mib = (uint32_t)amount,
	    .deflate_on_oom = bool_field(body, "deflate_on_oom", false),
	    .stats_interval_s = (uint32_t)interval,
	    .free_page_reporting = bool_field(body, "free_page_reporting", false),
	    .free_page_hinting = bool_field(body, "free_page_hinting", false)};
	return 0;
}

int spk_res_balloon_patch_check(const struct spk_vm_resources *r, json_t *body, bool stats,
                                const char *path, uint32_t *out, struct spk_res_err *e)
{
	static const struct jfield fa[] = {{"amount_mib", JT_INT, true}};
	static const struct jfield fs[] = {{"stats_polling_interval_s", JT_INT, true}};
	const char *name = stats ? fs[0].name : fa[0].name;
	json_int_t v = 0;

	if (check_object(body, path, stats ? fs : fa, 1, e) < 0 ||
	    int_field(body, path, name, 0, stats ? UINT16_MAX : UINT32_MAX, &v, e) < 0)
		return -EINVAL;
	if (!r->m.balloon.enabled)
		return plain_fail(e, "No balloon device found.");
	if (!stats && (uint64_t)v > r->m.mem >> 20)
		return spk_res_fail(e, false, path,
		                    "%lld MiB in %llu MiB of memory: " TOO_MANY_PAGES, (long long)v,
		                    (unsigned long long)(r->m.mem >> 20));
	if (stats && (v != 0) != (r->m.balloon.stats_interval_s != 0))
		return plain_fail(e, "Cannot enable/disable the statistics after boot.");
	*out = (uint32_t)v;
	return 0;
}

int spk_res_balloon_hint_start(json_t *body, const char *path, bool *ack, struct spk_res_err *e)
{
	static const struct jfield f[] = {{"acknowledge_on_stop", JT_BOOL, false}};

	*ack = true;
	if (body && check_object(body, path, f, ARRAY_LEN(f), e) < 0)
		return -EINVAL;
	*ack = bool_field(body, "acknowledge_on_stop", true);
	return 0;
}

int spk_res_serial(struct spk_vm_resources *r, json_t *body, const char *path,
                   struct spk_res_err *e)
{
	static const struct jfield f[] = {
	    {"serial_out_path", JT_STR, false},
	    {"rate_limiter", JT_OBJ, false},
	};
	const char *out;
	json_t *tb = NULL;
	char p[PATH_BUF], *copy = NULL;

	if (check_object(body, path, f, ARRAY_LEN(f), e) < 0)
		return -EINVAL;
	child_path(p, path, "rate_limiter");
	if (field(body, "rate_limiter") &&
	    check_token_bucket(field(body, "rate_limiter"), p, e) < 0)
		return -EINVAL;
	out = str_field(body, "serial_out_path");
	child_path(p, path, "serial_out_path");
	if (out && (!*out || strlen(out) >= PATH_MAX))
		return spk_res_fail(e, false, p, "not a usable path");
	if (set_str(&copy, out, e) < 0)
		return -ENOMEM;
	if (field(body, "rate_limiter"))
		tb = json_deep_copy(field(body, "rate_limiter"));
	free(r->serial_path);
	r->serial_path = copy;
	replace_json(&r->serial_rate_limiter, tb);
	r->serial_set = true;
	return 0;
}

/* ---- logger, metrics ---------------------------------------------------------------------- */

const char *const spk_res_log_levels[SPK_RES_LOG_LEVELS] = {"Off",  "Error", "Warning",
                                                            "Info", "Debug", "Trace"};

int spk_res_logger(json_t *body, const char *path, struct spk_logger_config *out,
                   struct spk_res_err *e)
{
	static const struct jfield f[] = {
	    {"level", JT_STR, false},       {"log_path", JT_STR, false},
	    {"show_level", JT_BOOL, false}, {"show_log_origin", JT_BOOL, false},
	    {"module", JT_STR, false},
	};
	struct spk_logger_config l = {.set = true, .level = SPK_RES_LOG_INFO};
	const char *lp;
	char p[PATH_BUF];
	int level;

	if (check_object(body, path, f, ARRAY_LEN(f), e) < 0 ||
	    enum_field(body, path, "level", spk_res_log_levels, ARRAY_LEN(spk_res_log_levels), true,
	               &level, e) < 0)
		return -EINVAL;
	lp = str_field(body, "log_path");
	child_path(p, path, "log_path");
	if (lp && (!*lp || strlen(lp) >= PATH_MAX))
		return spk_res_fail(e, false, p, "not a usable path");
	if (level >= 0)
		l.level = (enum spk_res_log_level)level;
	l.show_level = bool_field(body, "show_level", false);
	l.show_origin = bool_field(body, "show_log_origin", false);
	if (set_str(&l.path, lp, e) < 0 || set_str(&l.module, str_field(body, "module"), e) < 0) {
		spk_res_logger_free(&l);
		return -ENOMEM;
	}
	*out = l;
	return 0;
}

int spk_res_metrics(json_t *body, const char *path, struct spk_metrics_config *out,
                    struct spk_res_err *e)
{
	static const struct jfield f[] = {
	    {"metrics_path", JT_STR, true},
	    {"emit_id", JT_BOOL, false},
	    {"properties", JT_OBJ, false},
	};
	struct spk_metrics_config mc = {.set = true};
	json_t *props, *v;
	const char *key, *mp;
	char p[PATH_BUF];

	if (check_object(body, path, f, ARRAY_LEN(f), e) < 0)
		return -EINVAL;
	props = field(body, "properties");
	json_object_foreach(props, key, v) if (!json_is_string(v))
	{
		snprintf(p, sizeof(p), "%s.properties.%.64s", path, key);
		return spk_res_fail(e, true, p, "expected a string, got %s", spk_res_json_type(v));
	}
	mp = str_field(body, "metrics_path");
	child_path(p, path, "metrics_path");
	if (!*mp || strlen(mp) >= PATH_MAX)
		return spk_res_fail(e, false, p, "not a usable path");
	mc.emit_id = bool_field(body, "emit_id", false);
	if (set_str(&mc.path, mp, e) < 0)
		return -ENOMEM;
	mc.properties = props ? json_deep_copy(props) : NULL;
	*out = mc;
	return 0;
}

int spk_res_enum_body(json_t *body, const char *name, const char *const *names, size_t n,
                      const char *path, struct spk_res_err *e)
{
	const struct jfield f[] = {{name, JT_STR, true}};
	int idx;

	if (check_object(body, path, f, 1, e) < 0 ||
	    enum_field(body, path, name, names, n, false, &idx, e) < 0)
		return -EINVAL;
	return idx;
}
