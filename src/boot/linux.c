/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Linux loaders: bzImage through the 64-bit boot protocol (the setup code
 * never runs), ELF vmlinux through its 64-bit entry, and PVH. Everything in
 * the image is checked before anything is written to guest memory.
 * Reference: Documentation/arch/x86/boot.rst and zero-page.rst; the PVH
 * start info is xen/include/public/arch-x86/hvm/start_info.h.
 */
#include <elf.h>
#include <errno.h>
#include <string.h>

#include "core/internal.h"
#include <sparkler/linux.h>
#include <sparkler/loader.h>
#include <sparkler/platform.h>
#include <sparkler/x86.h>

/* ---- boot_params (the zero page) offsets ---- */
#define BP_SIZE            4096
#define BP_ACPI_RSDP       0x070
#define BP_EXT_RAMDISK_IMG 0x0c0
#define BP_EXT_RAMDISK_SZ  0x0c4
#define BP_EXT_CMD_LINE    0x0c8
#define BP_E820_ENTRIES    0x1e8
#define BP_HDR             0x1f1 /* the setup header starts here, in the file too */
#define BP_E820_TABLE      0x2d0
#define BP_E820_MAX        128

/* setup header fields, at their offsets in the file and the zero page */
#define HDR_SETUP_SECTS     0x1f1
#define HDR_BOOT_FLAG       0x1fe
#define HDR_JUMP            0x200
#define HDR_MAGIC           0x202
#define HDR_VERSION         0x206
#define HDR_TYPE_OF_LOADER  0x210
#define HDR_LOADFLAGS       0x211
#define HDR_RAMDISK_IMAGE   0x218
#define HDR_RAMDISK_SIZE    0x21c
#define HDR_CMD_LINE_PTR    0x228
#define HDR_INITRD_ADDR_MAX 0x22c
#define HDR_KERNEL_ALIGN    0x230
#define HDR_RELOCATABLE     0x234
#define HDR_XLOADFLAGS      0x236
#define HDR_CMDLINE_SIZE    0x238
#define HDR_PREF_ADDRESS    0x258
#define HDR_INIT_SIZE       0x260
#define HDR_MIN_FILE        0x268 /* a 2.10+ header ends past init_size */

#define LOADED_HIGH    0x01
#define XLF_KERNEL_64  0x01
#define LOADER_UNKNOWN 0xff

/* ---- PVH ---- */
#define XEN_ELFNOTE_PHYS32_ENTRY 18
#define PVH_MAGIC                0x336ec578u
#define PVH_INFO_SIZE            56
#define PVH_MEMMAP_OFF           64 /* after the start info, in the same page */
#define PVH_ENTRY_SIZE           24 /* memmap and modlist entries */

#define PAGE 4096ull

static uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)rd16(p) | (uint32_t)rd16(p + 2) << 16;
}

static uint64_t rd64(const uint8_t *p)
{
	return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

static void wr16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void wr32(uint8_t *p, uint32_t v)
{
	wr16(p, (uint16_t)v);
	wr16(p + 2, (uint16_t)(v >> 16));
}

static void wr64(uint8_t *p, uint64_t v)
{
	wr32(p, (uint32_t)v);
	wr32(p + 4, (uint32_t)(v >> 32));
}

static uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) & ~(a - 1);
}

/* Where the kernel may go: [1 MiB, end of RAM below the hole). */
static uint64_t low_ram_end(uint64_t mem_size)
{
	return mem_size < SPK_PC_HOLE_START ? mem_size : SPK_PC_HOLE_START;
}

/* ---- bzImage ------------------------------------------------------------ */

struct bzimage {
	uint32_t setup_size; /* bytes of real-mode code before the kernel proper */
	uint32_t hdr_len;    /* bytes of setup header from 0x1f1 */
	uint16_t version;
	uint32_t align;
	uint64_t pref;
	uint32_t init_size;
	uint32_t cmdline_size;
	uint32_t initrd_max;
	bool relocatable;
};

static int parse_bzimage(const uint8_t *k, size_t size, struct bzimage *bz)
{
	if (size < HDR_MIN_FILE)
		return spk_fail(ENOEXEC, "linux: the kernel is %zu bytes, too short for a bzImage "
				"header (%d)", size, HDR_MIN_FILE);
	bz->version = rd16(k + HDR_VERSION);
	if (bz->version < 0x206)
		return spk_fail(ENOEXEC, "linux: boot protocol %u.%02u is older than 2.06",
				bz->version >> 8, bz->version & 0xff);
	if (bz->version < 0x20c || !(rd16(k + HDR_XLOADFLAGS) & XLF_KERNEL_64))
		return spk_fail(ENOEXEC, "linux: the kernel has no 64-bit entry (xloadflags 0x%x, "
				"protocol %u.%02u; needs 2.12 and XLF_KERNEL_64)",
				bz->version >= 0x20c ? rd16(k + HDR_XLOADFLAGS) : 0,
				bz->version >> 8, bz->version & 0xff);
	/* a kernel built without CONFIG_RELOCATABLE runs only at pref_address */
	bz->relocatable = k[HDR_RELOCATABLE] != 0;
	if (!(k[HDR_LOADFLAGS] & LOADED_HIGH))
		return spk_fail(ENOEXEC, "linux: the kernel does not load high (loadflags 0x%x)",
				k[HDR_LOADFLAGS]);
	unsigned sects = k[HDR_SETUP_SECTS] ? k[HDR_SETUP_SECTS] : 4;
	bz->setup_size = (sects + 1) * 512;
	bz->hdr_len = 0x202 + k[HDR_JUMP + 1] - BP_HDR;
	if (k[HDR_JUMP] != 0xeb || BP_HDR + bz->hdr_len > 0x290 ||
	    BP_HDR + bz->hdr_len > size)
		return spk_fail(ENOEXEC, "linux: bad setup header jump 0x%02x 0x%02x", k[HDR_JUMP],
				k[HDR_JUMP + 1]);
	if (bz->setup_size >= size)
		return spk_fail(ENOEXEC, "linux: %u setup sectors reach past the %zu-byte image",
				sects, size);
	bz->align = rd32(k + HDR_KERNEL_ALIGN);
	if (bz->align < PAGE || bz->align > (1u << 30) || (bz->align & (bz->align - 1)))
		return spk_fail(ENOEXEC, "linux: kernel_alignment 0x%x is not a power of two from "
				"4 KiB to 1 GiB", bz->align);
	bz->pref = rd64(k + HDR_PREF_ADDRESS);
	bz->init_size = rd32(k + HDR_INIT_SIZE);
	if (bz->init_size < size - bz->setup_size)
		return spk_fail(ENOEXEC, "linux: init_size 0x%x is smaller than the kernel (0x%zx)",
				bz->init_size, size - bz->setup_size);
	bz->cmdline_size = rd32(k + HDR_CMDLINE_SIZE);
	bz->initrd_max = rd32(k + HDR_INITRD_ADDR_MAX);
	return 0;
}

/* ---- ELF: the PVH note ----------------------------------------------------- */

/* Walk the notes of one PT_NOTE for Xen's PHYS32_ENTRY; 0 if absent. */
static uint64_t pvh_in_notes(const uint8_t *p, uint64_t len)
{
	uint64_t off = 0;

	for (int n = 0; n < 1024 && off + 12 <= len; n++) {
		uint32_t namesz = rd32(p + off), descsz = rd32(p + off + 4), type = rd32(p + off + 8);
		uint64_t name = off + 12, desc = name + align_up(namesz, 4);
		uint64_t next = desc + align_up(descsz, 4);

		if (namesz > len || descsz > len || next > len)
			return 0;
		if (type == XEN_ELFNOTE_PHYS32_ENTRY && namesz == 4 && !memcmp(p + name, "Xen", 4))
			return descsz == 8 ? rd64(p + desc) : descsz == 4 ? rd32(p + desc) : 0;
		off = next;
	}
	return 0;
}

static uint64_t find_pvh_entry(const uint8_t *k, size_t size)
{
	Elf64_Ehdr eh;
	uint64_t end;

	/* the loader checks the header properly later; here only what we read */
	if (size < sizeof(eh))
		return 0;
	memcpy(&eh, k, sizeof(eh));
	if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum > 64 ||
	    !spk_add_ok(eh.e_phoff, (uint64_t)eh.e_phnum * sizeof(Elf64_Phdr), &end) || end > size)
		return 0;
	uint64_t phoff = eh.e_phoff;
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		Elf64_Phdr ph;

		memcpy(&ph, k + phoff + i * sizeof(ph), sizeof(ph));
		if (ph.p_type != PT_NOTE || !spk_add_ok(ph.p_offset, ph.p_filesz, &end) || end > size)
			continue;
		uint64_t entry = pvh_in_notes(k + ph.p_offset, ph.p_filesz);
		if (entry)
			return entry;
	}
	return 0;
}

static bool is_elf(const uint8_t *k, size_t size)
{
	return size >= SELFMAG && memcmp(k, ELFMAG, SELFMAG) == 0;
}

/* ---- placement ---------------------------------------------------------------- */

static int place_cmdline(struct spk_mem *mem, const char *cmdline, uint64_t limit, size_t *len)
{
	*len = cmdline ? strlen(cmdline) : 0;
	if (limit > SPK_PC_CMDLINE_MAX - 1)
		limit = SPK_PC_CMDLINE_MAX - 1;
	if (*len > limit)
		return spk_fail(E2BIG, "linux: the command line is %zu bytes, the kernel takes at "
				"most %llu", *len, (unsigned long long)limit);
	if (spk_mem_load(mem, SPK_PC_CMDLINE, cmdline ? cmdline : "", *len + 1) < 0)
		return spk_fail(E2BIG, "linux: no guest memory for the command line at 0x%llx",
				(unsigned long long)SPK_PC_CMDLINE);
	return 0;
}

/* The initrd goes as high as it can below top, page-aligned, above floor. */
static int place_initrd(const struct spk_linux_config *cfg, uint64_t floor, uint64_t top,
			struct spk_linux_boot *boot)
{
	if (!cfg->initrd || !cfg->initrd_size)
		return 0;
	if (cfg->initrd_size > top || ((top - cfg->initrd_size) & ~(PAGE - 1)) < floor)
		return spk_fail(E2BIG, "linux: the %zu-byte initrd does not fit between the kernel's "
				"end 0x%llx and 0x%llx (RAM below 3 GiB or initrd_addr_max); "
				"give the guest more --mem", cfg->initrd_size,
				(unsigned long long)floor, (unsigned long long)top);
	boot->initrd_start = (top - cfg->initrd_size) & ~(PAGE - 1);
	boot->initrd_size = cfg->initrd_size;
	return 0;
}

static int load_initrd(struct spk_mem *mem, const struct spk_linux_config *cfg,
		       const struct spk_linux_boot *boot)
{
	if (!boot->initrd_size)
		return 0;
	if (spk_mem_load(mem, boot->initrd_start, cfg->initrd, boot->initrd_size) < 0)
		return spk_fail(E2BIG, "linux: cannot write the initrd at 0x%llx",
				(unsigned long long)boot->initrd_start);
	return 0;
}

/* ---- the zero page -------------------------------------------------------------- */

static int write_e820(uint8_t *bp, uint64_t mem_size, uint32_t *count)
{
	struct spk_e820 map[8]; /* fewer than BP_E820_MAX: the zero page holds them all */
	_Static_assert(SPK_ARRAY_SIZE(map) <= BP_E820_MAX, "the zero page's e820 table");
	int n = spk_pc_e820(mem_size, map, SPK_ARRAY_SIZE(map));

	if (n < 0)
		return n;
	for (int i = 0; i < n; i++) {
		uint8_t *e = bp + BP_E820_TABLE + 20 * (size_t)i;

		wr64(e, map[i].addr);
		wr64(e + 8, map[i].size);
		wr32(e + 16, map[i].type);
	}
	bp[BP_E820_ENTRIES] = (uint8_t)n;
	*count = (uint32_t)n;
	return 0;
}

static void set_hdr_pointers(uint8_t *bp, const struct spk_linux_config *cfg,
			     const struct spk_linux_boot *boot)
{
	bp[HDR_TYPE_OF_LOADER] = LOADER_UNKNOWN;
	wr32(bp + HDR_CMD_LINE_PTR, (uint32_t)SPK_PC_CMDLINE);
	wr32(bp + BP_EXT_CMD_LINE, 0);
	wr32(bp + HDR_RAMDISK_IMAGE, (uint32_t)boot->initrd_start);
	wr32(bp + HDR_RAMDISK_SIZE, (uint32_t)boot->initrd_size);
	wr32(bp + BP_EXT_RAMDISK_IMG, (uint32_t)(boot->initrd_start >> 32));
	wr32(bp + BP_EXT_RAMDISK_SZ, (uint32_t)(boot->initrd_size >> 32));
	wr64(bp + BP_ACPI_RSDP, cfg->rsdp);
}

static int write_zero_page(struct spk_mem *mem, const uint8_t *hdr, uint32_t hdr_len,
			   const struct spk_linux_config *cfg, struct spk_linux_boot *boot)
{
	uint8_t *bp = spk_mem_ptr(mem, SPK_PC_BOOT_PARAMS, BP_SIZE, SPK_MEM_W);
	int rc;

	if (!bp)
		return spk_fail(E2BIG, "linux: no guest memory for boot_params at 0x%llx",
				(unsigned long long)SPK_PC_BOOT_PARAMS);
	memset(bp, 0, BP_SIZE);
	if (hdr) {
		memcpy(bp + BP_HDR, hdr, hdr_len);
	} else {
		/* an ELF kernel brings no header: write the fields it reads */
		wr16(bp + HDR_BOOT_FLAG, 0xaa55);
		memcpy(bp + HDR_MAGIC, "HdrS", 4);
		wr16(bp + HDR_VERSION, 0x20f);
		bp[HDR_LOADFLAGS] = LOADED_HIGH;
		wr32(bp + HDR_KERNEL_ALIGN, 0x1000000);
		wr32(bp + HDR_CMDLINE_SIZE, (uint32_t)SPK_PC_CMDLINE_MAX - 1);
	}
	set_hdr_pointers(bp, cfg, boot);
	rc = write_e820(bp, cfg->mem_size, &boot->e820_entries);
	boot->params = SPK_PC_BOOT_PARAMS;
	return rc;
}

/* ---- PVH start info ---------------------------------------------------------------- */

static int write_pvh_info(struct spk_mem *mem, const struct spk_linux_config *cfg,
			  struct spk_linux_boot *boot)
{
	uint8_t *p = spk_mem_ptr(mem, SPK_PC_BOOT_PARAMS, PAGE, SPK_MEM_W);
	struct spk_e820 map[8];
	int n = spk_pc_e820(cfg->mem_size, map, SPK_ARRAY_SIZE(map));

	if (n < 0)
		return n;
	if (!p)
		return spk_fail(E2BIG, "linux: no guest memory for the PVH start info");
	memset(p, 0, PAGE);
	uint64_t memmap = SPK_PC_BOOT_PARAMS + PVH_MEMMAP_OFF;
	uint64_t modlist = memmap + (uint64_t)n * PVH_ENTRY_SIZE;
	for (int i = 0; i < n; i++) {
		uint8_t *e = p + PVH_MEMMAP_OFF + (size_t)i * PVH_ENTRY_SIZE;

		wr64(e, map[i].addr);
		wr64(e + 8, map[i].size);
		wr32(e + 16, map[i].type);
	}
	wr32(p + 0, PVH_MAGIC);
	wr32(p + 4, 1); /* version 1: has the memory map */
	wr32(p + 12, boot->initrd_size ? 1 : 0);
	wr64(p + 16, boot->initrd_size ? modlist : 0);
	wr64(p + 24, SPK_PC_CMDLINE);
	wr64(p + 32, cfg->rsdp);
	wr64(p + 40, memmap);
	wr32(p + 48, (uint32_t)n);
	if (boot->initrd_size) {
		uint8_t *m = p + (modlist - SPK_PC_BOOT_PARAMS);

		wr64(m, boot->initrd_start);
		wr64(m + 8, boot->initrd_size);
	}
	boot->params = SPK_PC_BOOT_PARAMS;
	boot->e820_entries = (uint32_t)n;
	return 0;
}

/* ---- the three protocols ---------------------------------------------------------- */

static int load_bzimage(struct spk_mem *mem, const struct spk_linux_config *cfg,
			struct spk_linux_boot *boot)
{
	const uint8_t *k = cfg->kernel;
	uint64_t ram_end = low_ram_end(cfg->mem_size), load, end;
	struct bzimage bz;
	size_t cmd_len;
	int rc;

	if ((rc = parse_bzimage(k, cfg->kernel_size, &bz)) < 0)
		return rc;
	bool pref_ok = bz.pref >= SPK_PC_HIGH_RAM && bz.pref % bz.align == 0 && bz.pref < ram_end;
	if (!bz.relocatable && !pref_ok)
		return spk_fail(ENOEXEC, "linux: the kernel is not relocatable and its pref_address "
				"0x%llx is not aligned RAM above 1 MiB",
				(unsigned long long)bz.pref);
	load = pref_ok ? bz.pref : align_up(SPK_PC_KERNEL_DEFAULT, bz.align);
	if (!spk_add_ok(load, bz.init_size, &end) || end > ram_end)
		return spk_fail(E2BIG, "linux: the kernel needs 0x%x bytes from 0x%llx (init_size), "
				"beyond RAM at 0x%llx; give the guest more --mem", bz.init_size,
				(unsigned long long)load, (unsigned long long)ram_end);
	boot->protocol = SPK_LINUX_BZIMAGE;
	boot->version = bz.version;
	boot->kernel_start = load;
	boot->kernel_end = end;
	boot->entry = load + 0x200; /* startup_64 */
	uint64_t top = ram_end < (uint64_t)bz.initrd_max + 1 ? ram_end : (uint64_t)bz.initrd_max + 1;
	if ((rc = place_initrd(cfg, end, top, boot)) < 0 ||
	    (rc = place_cmdline(mem, cfg->cmdline, bz.cmdline_size, &cmd_len)) < 0)
		return rc;
	if (spk_mem_load(mem, load, k + bz.setup_size, cfg->kernel_size - bz.setup_size) < 0)
		return spk_fail(E2BIG, "linux: cannot write the kernel at 0x%llx",
				(unsigned long long)load);
	if ((rc = load_initrd(mem, cfg, boot)) < 0)
		return rc;
	return write_zero_page(mem, k + BP_HDR, bz.hdr_len, cfg, boot);
}

static int load_elf(struct spk_mem *mem, const struct spk_linux_config *cfg,
		    struct spk_linux_boot *boot)
{
	uint64_t pvh = cfg->no_pvh ? 0 : find_pvh_entry(cfg->kernel, cfg->kernel_size);
	uint64_t ram_end = low_ram_end(cfg->mem_size);
	struct spk_elf_info info;
	size_t cmd_len;
	int rc;

	rc = spk_elf_load(mem, cfg->kernel, cfg->kernel_size, &info);
	if (rc < 0)
		return rc;
	if (info.lowest < SPK_PC_HIGH_RAM || info.highest > ram_end)
		return spk_fail(E2BIG, "linux: the ELF kernel spans [0x%llx, 0x%llx), outside RAM "
				"from 1 MiB to 0x%llx", (unsigned long long)info.lowest,
				(unsigned long long)info.highest, (unsigned long long)ram_end);
	boot->protocol = pvh ? SPK_LINUX_PVH : SPK_LINUX_ELF64;
	boot->entry = pvh ? pvh : info.entry;
	boot->kernel_start = info.lowest;
	boot->kernel_end = align_up(info.highest, PAGE);
	if ((rc = place_initrd(cfg, boot->kernel_end, ram_end, boot)) < 0 ||
	    (rc = place_cmdline(mem, cfg->cmdline, SPK_PC_CMDLINE_MAX - 1, &cmd_len)) < 0 ||
	    (rc = load_initrd(mem, cfg, boot)) < 0)
		return rc;
	if (pvh)
		return write_pvh_info(mem, cfg, boot);
	return write_zero_page(mem, NULL, 0, cfg, boot);
}

int spk_linux_load(struct spk_mem *mem, const struct spk_linux_config *cfg,
		   struct spk_linux_boot *boot)
{
	if (!mem || !cfg || !boot || !cfg->kernel)
		return spk_fail(EINVAL, "linux: load needs memory, a config, a kernel and an output");
	if (cfg->initrd_size && !cfg->initrd)
		return spk_fail(EINVAL, "linux: initrd_size %zu without an initrd", cfg->initrd_size);
	if (cfg->mem_size < SPK_PC_MEM_MIN)
		return spk_fail(E2BIG, "linux: %llu bytes of RAM, at least %llu MiB needed",
				(unsigned long long)cfg->mem_size, SPK_PC_MEM_MIN >> 20);
	memset(boot, 0, sizeof(*boot));
	if (is_elf(cfg->kernel, cfg->kernel_size))
		return load_elf(mem, cfg, boot);
	const uint8_t *k = cfg->kernel;
	if (cfg->kernel_size < HDR_MIN_FILE || rd16(k + HDR_BOOT_FLAG) != 0xaa55 ||
	    memcmp(k + HDR_MAGIC, "HdrS", 4) != 0)
		return spk_fail(ENOEXEC, "linux: the kernel is neither an ELF vmlinux nor a bzImage "
				"(no 0xAA55 boot flag and \"HdrS\" header)");
	return load_bzimage(mem, cfg, boot);
}

/* ---- the vCPU ------------------------------------------------------------------- */

/* GDT entries for the boot protocols: CS 0x10 / DS 0x18 (64-bit protocol),
 * a 32-bit code segment at 0x20 for PVH; the TSS of x86.h stays at 0x28. */
static int write_boot_gdt(struct spk_mem *mem, const struct spk_x86_long_mode *lm)
{
	const uint64_t gdt[5] = {
		0,
		0,
		0x00af9b000000ffffull, /* 0x10: 64-bit code */
		0x00cf93000000ffffull, /* 0x18: data */
		0x00cf9b000000ffffull, /* 0x20: 32-bit code */
	};

	return spk_mem_load(mem, lm->gdt_base, gdt, sizeof(gdt));
}

static struct spk_x86_segment flat(uint16_t sel, uint8_t type, bool l, bool db)
{
	return (struct spk_x86_segment){
		.limit = 0xffffffff, .selector = sel, .type = type, .present = 1,
		.db = db, .s = 1, .l = l, .g = 1,
	};
}

int spk_linux_setup_vcpu(struct spk_vcpu *vcpu, struct spk_mem *mem,
			 const struct spk_linux_boot *boot)
{
	struct spk_x86_long_mode lm;
	struct spk_x86_sregs s = {0};
	struct spk_x86_regs r = {.rip = boot->entry, .rflags = 0x2};
	bool pvh = boot->protocol == SPK_LINUX_PVH;
	int rc;

	/* identity tables for the first 4 GiB: kernel, zero page, initrd, cmdline */
	if ((rc = spk_x86_build_long_mode(mem, SPK_PC_PAGE_TABLES, 4ull << 30, &lm)) < 0)
		return rc;
	if (lm.gdt_base + PAGE > SPK_PC_CMDLINE)
		return spk_fail(E2BIG, "linux: the page tables reach into the command line");
	if (write_boot_gdt(mem, &lm) < 0)
		return spk_fail(EFAULT, "linux: cannot write the boot GDT");
	s.gdt = (struct spk_x86_dtable){lm.gdt_base, lm.gdt_limit};
	s.ldt = (struct spk_x86_segment){.type = 2, .present = 1, .unusable = 1};
	if (pvh) {
		/* 32-bit protected mode, paging off; TR a 32-bit TSS at 0 */
		s.cs = flat(0x20, 0xb, false, true);
		s.ds = s.es = s.fs = s.gs = s.ss = flat(0x18, 0x3, false, true);
		s.tr = (struct spk_x86_segment){.limit = 0x67, .selector = 0x28, .type = 11,
						.present = 1};
		s.cr0 = 0x11; /* PE, ET */
		r.rbx = boot->params;
	} else {
		s.cs = flat(0x10, 0xb, true, false);
		s.ds = s.es = s.fs = s.gs = s.ss = flat(0x18, 0x3, false, true);
		s.tr = (struct spk_x86_segment){.base = lm.tss_base, .limit = 0x67, .selector = 0x28,
						.type = 11, .present = 1};
		s.cr0 = 0x80050033; /* PG, WP, NE, ET, MP, PE */
		s.cr3 = lm.cr3;
		s.cr4 = 0x20; /* PAE */
		s.efer = 0x500; /* LMA, LME */
		r.rsi = boot->params;
	}
	if ((rc = spk_vcpu_set_sregs(vcpu, &s)) < 0 || (rc = spk_vcpu_set_regs(vcpu, &r)) < 0)
		return rc;
	return spk_vcpu_ready(vcpu);
}
