/* SPDX-License-Identifier: Apache-2.0 */
/* Loading program images into guest memory. */
#ifndef SPARKLER_LOADER_H
#define SPARKLER_LOADER_H

#include <stddef.h>
#include <stdint.h>
#include <sparkler/mem.h>

#ifdef __cplusplus
extern "C" {
#endif

struct spk_elf_info {
	uint64_t entry;     /* e_entry */
	uint64_t lowest;    /* lowest physical address loaded */
	uint64_t highest;   /* one past the highest (p_paddr + p_memsz) */
	uint32_t nsegments; /* PT_LOAD segments loaded */
};

/*
 * Load an ELF64 executable (ET_EXEC) of the library's architecture
 * (x86-64, or AArch64 in an aarch64 build) into guest memory: every
 * PT_LOAD segment at its physical address p_paddr, p_filesz bytes from
 * the file and the rest of p_memsz zeroed. Everything is checked before
 * anything is written: the ELF header and program headers inside the
 * image, each segment's file range inside the image, filesz <= memsz,
 * no address sum that wraps, each segment entirely inside guest memory
 * (RAM or read-only), segments not overlapping each other, at most 64
 * program headers. -ENOEXEC for a malformed image, -EFAULT for a segment
 * outside guest memory, with the reason in spk_last_error().
 */
int spk_elf_load(struct spk_mem *mem, const void *image, size_t size, struct spk_elf_info *info);

/* Read path (at most max_size bytes, else -EFBIG) and spk_elf_load() it.
 * -EINVAL for a NULL mem or path; the file's open/read errors as -errno.
 * Both loaders check every header and segment before writing anything, and
 * write guest memory only: call them before the vCPUs run. */
int spk_elf_load_file(struct spk_mem *mem, const char *path, uint64_t max_size,
		      struct spk_elf_info *info);

#ifdef __cplusplus
}
#endif
#endif
