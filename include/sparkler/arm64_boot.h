/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Booting arm64 Linux: the Image header (Documentation/arch/arm64/booting.rst)
 * and where the kernel, the initrd and the device tree go in guest RAM.
 *
 * The layout, for RAM [ram_base, ram_base + ram_size) with ram_base 2 MiB
 * aligned:
 *   kernel  at ram_base + text_offset, image_size bytes (its BSS included);
 *   DTB     at the highest 2 MiB-aligned address that leaves it room for
 *           dtb_max bytes below the end of RAM (in a 2 MiB block of its own,
 *           as booting.rst asks, since the kernel maps it with 2 MiB blocks);
 *   initrd  just below the DTB's block, 4 KiB aligned.
 * Each must fit in RAM without overlapping the others; every sum is checked
 * for overflow before anything is written.
 */
#ifndef SPARKLER_ARM64_BOOT_H
#define SPARKLER_ARM64_BOOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sparkler/mem.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SPK_ARM64_IMAGE_MAGIC  0x644d5241u /* "ARM\x64" at offset 56 */
#define SPK_ARM64_IMAGE_HEADER 64
#define SPK_ARM64_KERNEL_ALIGN (2ull << 20)
#define SPK_ARM64_DTB_MAX      (2ull << 20) /* booting.rst: at most 2 MiB */
/* Largest Image (decompressed) and Image.gz accepted. */
#define SPK_ARM64_IMAGE_MAX (256ull << 20)

struct spk_arm64_image {
	uint64_t text_offset; /* from the 2 MiB-aligned base */
	uint64_t image_size;  /* bytes from the load address the kernel uses, BSS included */
	uint64_t flags;
	bool anywhere;     /* flags bit 3: any 2 MiB-aligned base in RAM */
	unsigned page_kib; /* flags bits 1-2: 4, 16 or 64; 0 unspecified */
};

/*
 * Check an Image's 64-byte header: the magic, little-endian kernel (flags
 * bit 0 clear), image_size not 0 (kernels before 3.17 have none: refused),
 * text_offset below 2 MiB and text_offset + image_size not overflowing,
 * image_size at least the file's size. -ENOEXEC with the reason, -EINVAL
 * for NULL arguments.
 */
int spk_arm64_image_parse(const void *image, size_t size, struct spk_arm64_image *out);

/* Whether the bytes start like gzip (1f 8b): an Image.gz. */
bool spk_arm64_image_is_gzip(const void *data, size_t size);

/*
 * Decompress a gzip stream (Image.gz) into a new buffer of at most max
 * bytes (the caller frees *out). -ENOTSUP when the library was built
 * without zlib, -E2BIG when the output would be larger than max, -ENOEXEC
 * for a corrupt or truncated stream, -ENOMEM; each with a message.
 */
int spk_arm64_gunzip(const void *gz, size_t size, size_t max, void **out, size_t *out_size);

struct spk_arm64_boot_config {
	const void *kernel; /* Image or Image.gz, as read from the file */
	size_t kernel_size;
	const void *initrd; /* may be NULL */
	size_t initrd_size;
	uint64_t ram_base; /* 2 MiB aligned */
	uint64_t ram_size;
	uint64_t dtb_max; /* room kept for the DTB (<= SPK_ARM64_DTB_MAX; 0: the maximum) */
};

struct spk_arm64_boot {
	struct spk_arm64_image image;
	uint64_t entry;        /* the kernel's first instruction: its load address */
	uint64_t kernel_end;   /* entry + image_size */
	uint64_t initrd_start; /* 0 without an initrd */
	uint64_t initrd_end;
	uint64_t dtb_addr; /* where the DTB goes (spk_arm64_boot_put_dtb) */
	uint64_t dtb_max;
	bool gzip; /* the kernel was an Image.gz */
};

/*
 * Compute the layout (above) without writing anything. -ENOEXEC for a bad
 * image, -E2BIG for what does not fit in RAM, -EINVAL for bad arguments
 * (an unaligned RAM base, dtb_max above the maximum); the message names
 * the piece and the limit.
 */
int spk_arm64_boot_layout(const struct spk_arm64_boot_config *cfg,
                          const struct spk_arm64_image *img, struct spk_arm64_boot *boot);

/*
 * Check the kernel (decompressing an Image.gz), compute the layout and
 * write the kernel and the initrd into guest memory; nothing is written
 * unless everything fits. Errors as above, -EFAULT when guest memory does
 * not cover a piece.
 */
int spk_arm64_boot_load(struct spk_mem *mem, const struct spk_arm64_boot_config *cfg,
                        struct spk_arm64_boot *boot);

/* Write the DTB at boot->dtb_addr: -E2BIG when it is larger than
 * boot->dtb_max, -EFAULT outside guest memory. */
int spk_arm64_boot_put_dtb(struct spk_mem *mem, const struct spk_arm64_boot *boot, const void *dtb,
                           size_t size);

/* ---- the device tree of sparkler's arm64 machine ---- */

#define SPK_ARM64_FDT_MAX_CPUS 32

/* What the tree describes; addresses are guest-physical. An SPI is the
 * number in the tree's "interrupts" (INTID - 32). */
struct spk_arm64_fdt_config {
	uint32_t n_cpus; /* 1..SPK_ARM64_FDT_MAX_CPUS, MPIDR Aff0 = index */
	uint64_t ram_base, ram_size;
	const char *cmdline;               /* may be NULL */
	uint64_t initrd_start, initrd_end; /* both 0: no initrd */
	uint64_t gicd_base, gicd_size;
	uint64_t gicr_base, gicr_size; /* all the redistributors: n_cpus frames */
	/* The console: a 16550A ("ns16550a", byte registers) at uart_base,
	 * the stdout-path, so that "earlycon" alone finds it. */
	uint64_t uart_base, uart_size;
	uint32_t uart_spi;
	uint32_t uart_clock; /* Hz; 0: 1843200 */
	/* A PL031 RTC ("arm,pl031", an AMBA device with the 24 MHz apb_pclk
	 * clock its bus wants): rtc_size 0 for none. */
	uint64_t rtc_base, rtc_size;
	uint32_t rtc_spi;
	/* PCIe host ("pci-host-ecam-generic"): ecam_size 0 for none. Bus 0
	 * only; INTA-D of every slot on SPIs pci_spi .. pci_spi + 3, swizzled
	 * by slot as PCI's interrupt pins are. */
	uint64_t ecam_base, ecam_size;
	uint64_t pci_mmio_base, pci_mmio_size; /* 32-bit non-prefetchable window */
	uint32_t pci_spi;
};

/*
 * Build the tree (root compatible "linux,dummy-virt", memory, cpus with
 * enable-method "psci", psci 0.2 through "hvc", the GICv3, the
 * architected timer on PPIs 13, 14, 11, 10, the UART, the RTC, the PCIe host,
 * chosen with bootargs, the initrd and stdout-path) into buf: its size in
 * *size. -EINVAL for a bad config (message), -E2BIG when it needs more
 * than cap bytes.
 */
int spk_arm64_fdt_build(const struct spk_arm64_fdt_config *cfg, void *buf, size_t cap,
                        size_t *size);

#ifdef __cplusplus
}
#endif
#endif
