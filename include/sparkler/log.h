/* SPDX-License-Identifier: Apache-2.0 */
/* Logging and error messages of the library. */
#ifndef SPARKLER_LOG_H
#define SPARKLER_LOG_H

#ifdef __cplusplus
extern "C" {
#endif

enum spk_log_level {
	SPK_LOG_ERROR = 0,
	SPK_LOG_WARN,
	SPK_LOG_INFO,
	SPK_LOG_DEBUG,
};

typedef void (*spk_log_fn)(enum spk_log_level level, const char *msg, void *opaque);

/*
 * Send the library's log lines at or above max (ERROR is the most severe)
 * to fn. By default ERROR and WARN lines go to stderr as
 * "sparkler: <level>: <msg>". fn NULL restores the default.
 */
void spk_log_set(spk_log_fn fn, void *opaque, enum spk_log_level max);

/* Log a line through the library's logger (for devices and embedders). */
void spk_log(enum spk_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * The message of the last call that failed on this thread (every function
 * returning -errno sets it), or "" if none did.
 */
const char *spk_last_error(void);

#ifdef __cplusplus
}
#endif
#endif
