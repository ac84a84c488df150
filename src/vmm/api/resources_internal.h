/* SPDX-License-Identifier: Apache-2.0 */
/* What the three files of the JSON resources share (resources.c,
 * resources_json.c, config_file.c). */
#ifndef SPK_VMM_API_RESOURCES_INTERNAL_H
#define SPK_VMM_API_RESOURCES_INTERNAL_H

#include <jansson.h>
#include <stdbool.h>

#include "vmm/api/resources.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define PATH_BUF     256 /* JSON paths in messages */

/* e's message "PATH: ..." and whether a schema check failed; -EINVAL. */
int spk_res_fail(struct spk_res_err *e, bool schema, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The logger's levels by number, Firecracker's names ("Off" .. "Trace"). */
#define SPK_RES_LOG_LEVELS 6
extern const char *const spk_res_log_levels[SPK_RES_LOG_LEVELS];

/* "a string", "an object", ...: v's JSON type for messages. */
const char *spk_res_json_type(const json_t *v);
/* "06:00:ac:10:00:02" into mac: 0, or -1 for anything else. */
int spk_res_parse_mac(const char *s, uint8_t mac[6]);

#endif
