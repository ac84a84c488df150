/* SPDX-License-Identifier: Apache-2.0 */
/*
 * For the fuzz targets that accept paths (fuzz_api, fuzz_config): a quiet
 * log and the small files their inputs may name, made once at start.
 */
#ifndef SPK_FUZZ_FILES_H
#define SPK_FUZZ_FILES_H

#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <sparkler/log.h>

static inline void fuzz_quiet(enum spk_log_level level, const char *msg, void *opaque)
{
	(void)level;
	(void)msg;
	(void)opaque;
}

/* dir/name of size bytes (sparse); a failure is reported, not fatal */
static inline void fuzz_make_file(const char *dir, const char *name, size_t size)
{
	char path[256];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (fd >= 0) {
		if (ftruncate(fd, (off_t)size) < 0)
			perror(path);
		close(fd);
	}
}

/* Quiet logs, dir made, and each of names[0..n) made with sizes[i] bytes. */
static inline void fuzz_files_init(const char *dir, const char *const *names,
                                   const size_t *sizes, size_t n)
{
	spk_log_set(fuzz_quiet, NULL, SPK_LOG_ERROR);
	mkdir(dir, 0755);
	for (size_t i = 0; i < n; i++)
		fuzz_make_file(dir, names[i], sizes[i]);
}

#endif
