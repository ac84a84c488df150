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

/* The populated regions of mem matched one to one with the layout's (same
 * gpa, size, type, page-aligned host memory), and the memory file at fd
 * of the layout's size (fd < 0: not checked); -EINVAL naming the region. */
struct spk_snap_mem_layout;
struct spk_mem;
struct spk_mem_region;
int spk_snap_mem_match(const struct spk_snap_mem_layout *l, int fd, const struct spk_mem *mem,
                       const struct spk_mem_region **out);

/* uffd.c: guest memory served through userfaultfd (spk_vm_restore_opts). */
struct spk_snap_uffd;
struct spk_vm;
struct spk_snap_restore_opts;
/* Everything that can fail before memory changes: the uffd, the memory
 * file (fd, kept), the working set, the external handler's connection. */
int spk_snap_uffd_new(const struct spk_snap_mem_layout *l, int mem_fd,
                      const struct spk_snap_restore_opts *o, struct spk_snap_uffd **out);
/* Replace the VM's memory by registered anonymous memory, start serving
 * (the thread, or the handshake and its probe), prefetch; on success the
 * VM owns u (freed by spk_vm_destroy); on failure u is freed here. */
int spk_snap_uffd_start(struct spk_snap_uffd *u, struct spk_vm *vm);
void spk_snap_uffd_free(struct spk_snap_uffd *u);
/* Drop the VM's current handler (before a new restore replaces memory). */
void spk_snap_uffd_detach(struct spk_vm *vm);
/* The restore's loads are done: from now on an external handler's exit is
 * only logged; -EPIPE if it exited during them. */
int spk_snap_uffd_loaded(struct spk_vm *vm);

#endif
