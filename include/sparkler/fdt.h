/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A flattened device tree (DTB, version 17) writer: what an arm64 Linux
 * kernel is given in x0 instead of a PC's boot_params and ACPI tables.
 *
 * The tree is written in order, as the blob lays it out: begin a node, its
 * properties, its child nodes, end it. The writer checks what the format
 * and the devicetree specification require of that order and of the names
 * (properties before child nodes, no property twice in a node, node and
 * property names of the allowed characters and lengths, nodes closed in
 * order, one root node), and bounds the whole blob at the size given to
 * spk_fdt_new(): anything that would not fit is refused with a message
 * that names what and both sizes.
 *
 * Errors are sticky: the first failure is returned by that call and by
 * every later call, finish included, so a caller may build a whole tree and
 * check once (the first message stays in spk_last_error() of the thread
 * that failed). -EINVAL for a bad name, value or order, -E2BIG for what
 * does not fit, -ENOMEM.
 *
 * Not thread-safe: one writer, one thread.
 */
#ifndef SPARKLER_FDT_H
#define SPARKLER_FDT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SPK_FDT_MAGIC     0xd00dfeedu
#define SPK_FDT_VERSION   17
#define SPK_FDT_HEADER    40         /* bytes of the header */
#define SPK_FDT_MAX_SIZE  (2u << 20) /* arm64 Linux maps at most 2 MiB of DTB */
#define SPK_FDT_MAX_DEPTH 16         /* nodes nested below the root */
#define SPK_FDT_MAX_RSV   64         /* memory reservations */

struct spk_fdt;

/* A writer for a blob of at most max_size bytes (SPK_FDT_HEADER + 16 ..
 * SPK_FDT_MAX_SIZE). -EINVAL (NULL out, size out of range), -ENOMEM. */
int spk_fdt_new(size_t max_size, struct spk_fdt **out);
/* Frees the writer and the blob spk_fdt_finish() returned. NULL: nothing. */
void spk_fdt_free(struct spk_fdt *f);

/* A /memreserve/ entry [addr, addr + size): size not 0, no wrap. Any time
 * before finish. */
int spk_fdt_reserve(struct spk_fdt *f, uint64_t addr, uint64_t size);

/* Open a node (the root is "", and only the root); its properties and
 * children follow, then spk_fdt_end_node(). */
int spk_fdt_begin_node(struct spk_fdt *f, const char *name);
int spk_fdt_end_node(struct spk_fdt *f);

/* A property of the open node: len bytes of value (data may be NULL when
 * len is 0: an empty, boolean property). */
int spk_fdt_prop(struct spk_fdt *f, const char *name, const void *data, size_t len);
int spk_fdt_prop_empty(struct spk_fdt *f, const char *name);
int spk_fdt_prop_u32(struct spk_fdt *f, const char *name, uint32_t value);
int spk_fdt_prop_u64(struct spk_fdt *f, const char *name, uint64_t value);
/* n 32-bit cells, each big-endian. */
int spk_fdt_prop_cells(struct spk_fdt *f, const char *name, const uint32_t *cells, size_t n);
int spk_fdt_prop_string(struct spk_fdt *f, const char *name, const char *s);
/* A string list ("a\0b\0"): n strings, each not empty. */
int spk_fdt_prop_strings(struct spk_fdt *f, const char *name, const char *const *list, size_t n);
/*
 * "reg" (or another name) of n (address, size) pairs, each written in
 * addr_cells and size_cells cells (1 or 2; 0 for size_cells: addresses
 * only). A value that does not fit its cells is refused.
 */
int spk_fdt_prop_reg(struct spk_fdt *f, const char *name, const uint64_t *pairs, size_t n,
                     unsigned addr_cells, unsigned size_cells);

/* A fresh phandle (1, 2, ...) to give a node with spk_fdt_prop_u32(f,
 * "phandle", ph) and to point at from other nodes. 0 after an error. */
uint32_t spk_fdt_phandle(struct spk_fdt *f);

/*
 * Close the blob (every node ended, a root written) and give it: *blob
 * points into the writer (valid until spk_fdt_free), *size its bytes. The
 * header's boot_cpuid_phys is boot_cpu. A second call returns the same
 * blob; nothing may be added after it.
 */
int spk_fdt_finish(struct spk_fdt *f, uint32_t boot_cpu, const void **blob, size_t *size);

#ifdef __cplusplus
}
#endif
#endif
