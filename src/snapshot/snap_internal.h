/* SPDX-License-Identifier: Apache-2.0 */
/* Helpers shared by the snapshot files; not installed. */
#ifndef SPK_SNAPSHOT_INTERNAL_H
#define SPK_SNAPSHOT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* CRC-32 (IEEE, zlib's): crc of the bytes so far (0 to start). */
uint32_t spk_snap_crc32(uint32_t crc, const void *buf, size_t len);
/* 1..63 bytes of [a-z0-9_.] */
bool spk_snap_name_ok(const char *name);
/* Write buf to path (0600, truncated), fsync it and its directory if asked. */
int spk_snap_write_file(const char *path, const void *buf, size_t len, bool do_fsync);
int spk_snap_fsync(int fd, const char *path);
/* pwrite (write) or pread all n bytes at off; a short file is -EIO. what: for messages. */
int spk_snap_pio(int fd, void *p, size_t n, uint64_t off, bool write, const char *what);
/* The next field's name and type without reading it (the fuzzer); -ENOENT at the end. */
struct spk_snap_reader;
int spk_snap_peek(struct spk_snap_reader *r, char name[64], uint8_t *type);

#endif
