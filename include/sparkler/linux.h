/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Booting Linux on the sparkler PC platform (platform.h): the memory map,
 * the kernel loaders (bzImage through the 64-bit boot protocol, ELF
 * vmlinux, PVH) and the vCPU's entry state.
 */
#ifndef SPARKLER_LINUX_H
#define SPARKLER_LINUX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sparkler/mem.h>
#include <sparkler/vcpu.h>

#ifdef __cplusplus
extern "C" {
#endif

struct spk_vm;

/* ---- the memory map ---- */

enum spk_e820_type {
	SPK_E820_RAM = 1,
	SPK_E820_RESERVED = 2,
	SPK_E820_ACPI = 3,
};

struct spk_e820 {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
};

#define SPK_PC_MEM_MIN (16ull << 20)
#define SPK_PC_MEM_MAX (1ull << 40)

/*
 * Add mem_size bytes of RAM to the VM: [0, min(mem_size, hole)) and the
 * rest from 4 GiB up. mem_size must be page-aligned and within
 * [SPK_PC_MEM_MIN, SPK_PC_MEM_MAX].
 */
int spk_pc_add_ram(struct spk_vm *vm, uint64_t mem_size);

/*
 * The e820 map for mem_size bytes of RAM: low RAM below the EBDA, the
 * reserved BIOS/ACPI area, RAM from 1 MiB to the hole, the PCI ECAM and
 * the platform MMIO [boot timer, 4 GiB) reserved, RAM above 4 GiB.
 * Returns the number of entries (at most cap), or -ENOSPC.
 */
int spk_pc_e820(uint64_t mem_size, struct spk_e820 *map, size_t cap);

/* ---- the kernel ---- */

enum spk_linux_protocol {
	SPK_LINUX_BZIMAGE = 1, /* bzImage, 64-bit entry at load + 0x200 */
	SPK_LINUX_ELF64,       /* ELF vmlinux, 64-bit entry at e_entry */
	SPK_LINUX_PVH,         /* ELF with XEN_ELFNOTE_PHYS32_ENTRY, 32-bit entry */
};

struct spk_linux_config {
	const void *kernel; /* bzImage or ELF vmlinux, as read from the file */
	size_t kernel_size;
	const void *initrd; /* may be NULL */
	size_t initrd_size;
	const char *cmdline; /* may be NULL */
	uint64_t mem_size;   /* as given to spk_pc_add_ram() */
	uint64_t rsdp;       /* guest address of the ACPI RSDP, 0 for none */
	bool no_pvh;         /* boot an ELF with a PVH note through its 64-bit entry */
};

struct spk_linux_boot {
	enum spk_linux_protocol protocol;
	uint64_t entry;        /* first instruction */
	uint64_t params;       /* boot_params (rsi) or hvm_start_info (ebx) */
	uint64_t kernel_start; /* [kernel_start, kernel_end): kernel and its decompression room */
	uint64_t kernel_end;
	uint64_t initrd_start; /* 0 when there is no initrd */
	uint64_t initrd_size;
	uint16_t version;      /* bzImage boot protocol version, e.g. 0x20f */
	uint32_t e820_entries;
};

/*
 * Check the kernel (and initrd, command line) and put them with the boot
 * data into guest memory. Refuses, before writing anything, a truncated or
 * corrupt image, a boot protocol older than 2.06, a kernel that is not
 * relocatable or has no 64-bit entry, a command line longer than the
 * kernel takes, and anything that does not fit in guest memory; the
 * message (spk_last_error()) says what and which limit. -ENOEXEC for a bad
 * image, -E2BIG for what does not fit, -EINVAL for bad arguments.
 */
int spk_linux_load(struct spk_mem *mem, const struct spk_linux_config *cfg,
		   struct spk_linux_boot *boot);

/*
 * Put vCPU 0 in the entry state of the protocol and make it READY:
 * 64-bit (CS 0x10, DS 0x18 flat, paging on with identity tables at
 * SPK_PC_PAGE_TABLES, rsi = boot_params) or PVH (32-bit protected mode,
 * paging off, ebx = start info). Needs the boot GDT page: it is written at
 * SPK_PC_PAGE_TABLES too.
 */
int spk_linux_setup_vcpu(struct spk_vcpu *vcpu, struct spk_mem *mem,
			 const struct spk_linux_boot *boot);

#ifdef __cplusplus
}
#endif
#endif
