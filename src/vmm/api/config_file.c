/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Firecracker's --config-file: every section through the same parsers as
 * the API's bodies (resources.c), all or nothing, with one-line errors.
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

/* ---- the config file
 * ------------------------------------------------------------------------------- */

typedef int (*array_item_fn)(struct spk_vm_resources *r, const char *id, json_t *body,
                             const char *path, struct spk_res_err *e);

/* drives / network-interfaces: an array of bodies, each id once. */
static int load_array(struct spk_vm_resources *r, json_t *arr, const char *key,
                      const char *id_field, array_item_fn fn, struct spk_res_err *e)
{
	char p[PATH_BUF];
	size_t i;
	json_t *item;

	snprintf(p, sizeof(p), "$.%s", key);
	if (!json_is_array(arr))
		return spk_res_fail(e, true, p, "expected an array, got %s",
		                    spk_res_json_type(arr));
	json_array_foreach(arr, i, item)
	{
		snprintf(p, sizeof(p), "$.%s[%zu]", key, i);
		for (size_t j = 0; j < i; j++) {
			const char *a = json_string_value(json_object_get(item, id_field));
			const char *b =
			    json_string_value(json_object_get(json_array_get(arr, j), id_field));
			if (a && b && strcmp(a, b) == 0)
				return spk_res_fail(e, false, p, "%s %s appears twice", id_field,
				                    a);
		}
		if (fn(r, NULL, item, p, e) < 0)
			return -EINVAL;
	}
	return 0;
}

typedef int (*section_fn)(struct spk_vm_resources *r, json_t *body, const char *path,
                          struct spk_res_err *e);

static int machine_put(struct spk_vm_resources *r, json_t *b, const char *p, struct spk_res_err *e)
{
	return spk_res_machine_config(r, b, false, p, e);
}

static int logger_section(struct spk_vm_resources *r, json_t *b, const char *p,
                          struct spk_res_err *e)
{
	struct spk_logger_config l;

	if (spk_res_logger(b, p, &l, e) < 0)
		return -EINVAL;
	spk_res_logger_free(&r->logger);
	r->logger = l;
	return 0;
}

static int metrics_section(struct spk_vm_resources *r, json_t *b, const char *p,
                           struct spk_res_err *e)
{
	struct spk_metrics_config mc;

	if (spk_res_metrics(b, p, &mc, e) < 0)
		return -EINVAL;
	spk_res_metrics_free(&r->metrics);
	r->metrics = mc;
	return 0;
}

static const struct {
	const char *key;
	section_fn fn;
} sections[] = {
    {"boot-source", spk_res_boot_source},
    {"machine-config", machine_put},
    {"vsock", spk_res_vsock},
    {"entropy", spk_res_entropy},
    {"balloon", spk_res_balloon},
    {"serial", spk_res_serial},
    {"logger", logger_section},
    {"metrics", metrics_section},
};

static const char *const unsupported[] = {"cpu-config", "pmem", "memory-hotplug"};

static int load_section(struct spk_vm_resources *r, const char *key, json_t *v,
                        struct spk_res_err *e)
{
	char p[PATH_BUF];

	snprintf(p, sizeof(p), "$.%.64s", key);
	if (strcmp(key, "drives") == 0)
		return load_array(r, v, key, "drive_id", spk_res_drive, e);
	if (strcmp(key, "network-interfaces") == 0)
		return load_array(r, v, key, "iface_id", spk_res_net, e);
	if (strcmp(key, "mmds-config") == 0)
		return spk_res_mmds_config(r, v, p, e);
	for (size_t i = 0; i < ARRAY_LEN(sections); i++)
		if (strcmp(key, sections[i].key) == 0)
			return sections[i].fn(r, v, p, e);
	for (size_t i = 0; i < ARRAY_LEN(unsupported); i++)
		if (strcmp(key, unsupported[i]) == 0)
			return spk_res_fail(e, false, p, "not supported by sparkler");
	return spk_res_fail(e, true, "$",
	                    "unknown section `%.64s`, expected one of: boot-source, "
	                    "drives, machine-config, network-interfaces, vsock, entropy, "
	                    "balloon, serial, logger, metrics, mmds-config",
	                    key);
}

/* A config file's refusal goes to a terminal as one line: the keys,
 * values and file names it quotes may hold any control character. */
static int one_line(char *err, int rc)
{
	for (unsigned char *p = (unsigned char *)err; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			*p = '?';
	return rc;
}

int spk_res_load_buffer(struct spk_vm_resources *r, const char *name, const char *buf, size_t len,
                        char *err, size_t errlen)
{
	json_error_t je;
	struct spk_res_err e;
	json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je), *v;
	const char *key;
	int rc = 0;

	if (!root) {
		if (je.line > 0)
			snprintf(err, errlen, "%s: line %d column %d: %s", name, je.line, je.column,
			         je.text);
		else
			snprintf(err, errlen, "%s: %s", name, je.text);
		return one_line(err, -EINVAL);
	}
	if (!json_is_object(root)) {
		snprintf(err, errlen, "%s: $: expected an object, got %s", name,
		         spk_res_json_type(root));
		rc = -EINVAL;
	}
	/* machine-config first: PUT semantics reset what it does not name */
	if (!rc && json_object_get(root, "machine-config"))
		rc = load_section(r, "machine-config", json_object_get(root, "machine-config"), &e);
	json_object_foreach(root, key, v) if (!rc && strcmp(key, "machine-config") != 0 &&
	                                      strcmp(key, "mmds-config") != 0) rc =
	    load_section(r, key, v, &e);
	/* mmds-config last: it names network interfaces */
	if (!rc && json_is_object(root) && json_object_get(root, "mmds-config"))
		rc = load_section(r, "mmds-config", json_object_get(root, "mmds-config"), &e);
	if (rc && json_is_object(root))
		snprintf(err, errlen, "%s: %s", name, e.msg);
	else if (!rc && !r->m.kernel) {
		snprintf(err, errlen, "%s: $.boot-source: missing: a VM needs a kernel to boot",
		         name);
		rc = -EINVAL;
	}
	json_decref(root);
	return rc ? one_line(err, rc) : 0;
}

/* The whole file, at most SPK_RES_FILE_MAX bytes, into *out (malloc'd). */
static int read_config(const char *file, char **out, size_t *len, char *err, size_t errlen)
{
	char *buf = malloc(SPK_RES_FILE_MAX + 1);
	int fd, rc;

	*len = 0;
	if (!buf) {
		snprintf(err, errlen, "%s: out of memory", file);
		return -ENOMEM;
	}
	fd = open(file, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "%s: cannot open: %s", file, strerror(-rc));
		goto err_free;
	}
	while (*len <= SPK_RES_FILE_MAX) {
		ssize_t n = read(fd, buf + *len, SPK_RES_FILE_MAX + 1 - *len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			snprintf(err, errlen, "%s: cannot read: %s", file, strerror(-rc));
			goto err_close;
		}
		if (n == 0)
			break;
		*len += (size_t)n;
	}
	if (*len > SPK_RES_FILE_MAX) {
		rc = -EFBIG;
		snprintf(err, errlen, "%s: larger than %s", file, SPK_RES_FILE_MAX_TEXT);
		goto err_close;
	}
	close(fd);
	*out = buf;
	return 0;

err_close:
	close(fd);
err_free:
	free(buf);
	return rc;
}

int spk_res_load_file(struct spk_vm_resources *r, const char *file, char *err, size_t errlen)
{
	char *buf = NULL;
	size_t len;
	int rc = read_config(file, &buf, &len, err, errlen);

	if (rc < 0)
		return one_line(err, rc);
	rc = spk_res_load_buffer(r, file, buf, len, err, errlen);
	free(buf);
	return rc;
}
