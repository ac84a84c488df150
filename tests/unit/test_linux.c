/* SPDX-License-Identifier: Apache-2.0 */
/* Linux loaders: synthetic bzImages and ELF kernels, good and bad. */
#include <elf.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <sparkler/acpi.h>
#include <sparkler/linux.h>
#include <sparkler/log.h>
#include <sparkler/platform.h>

#define MEM (128ull << 20)

struct fixture {
	struct spk_mem *mem;
	uint8_t *ram;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	f->ram = calloc(1, MEM);
	assert_int_equal(spk_mem_new(&f->mem), 0);
	assert_int_equal(spk_mem_add(f->mem, 0, MEM, SPK_MEM_RAM, f->ram, "ram"), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	spk_mem_free(f->mem);
	free(f->ram);
	free(f);
	return 0;
}

static void w16(uint8_t *p, uint16_t v)
{
	memcpy(p, &v, 2);
}

static void w32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

static void w64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, 8);
}

static uint32_t r32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

static uint64_t r64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

/* A bzImage: 4 setup sectors + 1, then `payload` bytes of "kernel". */
#define SETUP_SECTS 4
#define SETUP_BYTES ((SETUP_SECTS + 1) * 512)
static uint8_t *make_bzimage(size_t payload, size_t *size)
{
	uint8_t *k = calloc(1, SETUP_BYTES + payload);

	k[0x1f1] = SETUP_SECTS;
	w16(k + 0x1fe, 0xaa55);
	k[0x200] = 0xeb;
	k[0x201] = 0x6a; /* header up to 0x26c */
	memcpy(k + 0x202, "HdrS", 4);
	w16(k + 0x206, 0x20f);
	k[0x211] = 0x01; /* LOADED_HIGH */
	w32(k + 0x22c, 0x7fffffff);
	w32(k + 0x230, 0x200000);
	k[0x234] = 1;
	w16(k + 0x236, 0x7f);
	w32(k + 0x238, 2047);
	w64(k + 0x258, 0x1000000);
	w32(k + 0x260, 0x2000000); /* init_size 32 MiB */
	for (size_t i = 0; i < payload; i++)
		k[SETUP_BYTES + i] = (uint8_t)(i * 7);
	*size = SETUP_BYTES + payload;
	return k;
}

static struct spk_linux_config cfg_for(const uint8_t *k, size_t ks)
{
	return (struct spk_linux_config){.kernel = k, .kernel_size = ks, .cmdline = "console=ttyS0",
					 .mem_size = MEM, .rsdp = SPK_PC_ACPI_START};
}

static void test_bzimage_loads(void **state)
{
	struct fixture *f = *state;
	static uint8_t initrd[10000];
	struct spk_linux_boot b;
	size_t ks;
	uint8_t *k = make_bzimage(8192, &ks);
	struct spk_linux_config c = cfg_for(k, ks);

	memset(initrd, 0x5a, sizeof(initrd));
	c.initrd = initrd;
	c.initrd_size = sizeof(initrd);
	assert_int_equal(spk_linux_load(f->mem, &c, &b), 0);
	assert_int_equal(b.protocol, SPK_LINUX_BZIMAGE);
	assert_int_equal(b.version, 0x20f);
	assert_int_equal(b.kernel_start, 0x1000000);
	assert_int_equal(b.entry, 0x1000200);
	assert_int_equal(b.kernel_end, 0x3000000);
	/* the kernel proper, not the setup code, is at 16 MiB */
	assert_memory_equal(f->ram + 0x1000000, k + SETUP_BYTES, 8192);
	/* the initrd: page-aligned, as high as RAM allows */
	assert_int_equal(b.initrd_start, (MEM - sizeof(initrd)) & ~0xfffull);
	assert_int_equal(b.initrd_size, sizeof(initrd));
	assert_memory_equal(f->ram + b.initrd_start, initrd, sizeof(initrd));
	/* the zero page */
	const uint8_t *bp = f->ram + SPK_PC_BOOT_PARAMS;
	assert_int_equal(b.params, SPK_PC_BOOT_PARAMS);
	assert_memory_equal(bp + 0x202, "HdrS", 4);
	assert_int_equal(bp[0x210], 0xff);
	assert_int_equal(r32(bp + 0x228), SPK_PC_CMDLINE);
	assert_string_equal((const char *)f->ram + SPK_PC_CMDLINE, "console=ttyS0");
	assert_int_equal(r32(bp + 0x218), b.initrd_start);
	assert_int_equal(r32(bp + 0x21c), sizeof(initrd));
	assert_int_equal(r64(bp + 0x070), SPK_PC_ACPI_START);
	assert_int_equal(bp[0x1e8], 5);
	assert_int_equal(b.e820_entries, 5);
	/* e820: [0, 0x9fc00) RAM, reserved to 1 MiB, RAM to the end, then
	 * the ECAM and the platform MMIO reserved */
	assert_int_equal(r64(bp + 0x2d0), 0);
	assert_int_equal(r64(bp + 0x2d8), SPK_PC_LOW_RAM_END);
	assert_int_equal(r32(bp + 0x2e0), SPK_E820_RAM);
	assert_int_equal(r32(bp + 0x2d0 + 20 + 16), SPK_E820_RESERVED);
	assert_int_equal(r64(bp + 0x2d0 + 40), 0x100000);
	assert_int_equal(r64(bp + 0x2d0 + 48), MEM - 0x100000);
	assert_int_equal(r64(bp + 0x2d0 + 60), SPK_PC_PCI_ECAM);
	assert_int_equal(r32(bp + 0x2d0 + 60 + 16), SPK_E820_RESERVED);
	assert_int_equal(r64(bp + 0x2d0 + 80), SPK_PC_BOOT_TIMER);
	assert_int_equal(r64(bp + 0x2d0 + 88), (1ull << 32) - SPK_PC_BOOT_TIMER);
	free(k);
}

/* A kernel without CONFIG_RELOCATABLE goes where its pref_address says. */
static void test_bzimage_not_relocatable(void **state)
{
	struct fixture *f = *state;
	size_t ks;
	uint8_t *k = make_bzimage(4096, &ks);
	struct spk_linux_config c = cfg_for(k, ks);
	struct spk_linux_boot b;

	k[0x234] = 0;
	w64(k + 0x258, 0x2000000);
	assert_int_equal(spk_linux_load(f->mem, &c, &b), 0);
	assert_int_equal(b.kernel_start, 0x2000000);
	assert_int_equal(b.entry, 0x2000200);
	free(k);
}

/* Each corruption must be refused before anything is written. */
static void expect_refused(struct fixture *f, uint8_t *k, size_t ks, int err, const char *needle)
{
	struct spk_linux_config c = cfg_for(k, ks);
	struct spk_linux_boot b;

	memset(f->ram + 0x1000000, 0xcc, 4096);
	memset(f->ram + SPK_PC_BOOT_PARAMS, 0xcc, 4096);
	assert_int_equal(spk_linux_load(f->mem, &c, &b), -err);
	assert_non_null(strstr(spk_last_error(), needle));
	assert_int_equal(f->ram[0x1000000], 0xcc);
	assert_int_equal(f->ram[SPK_PC_BOOT_PARAMS + 0x1f1], 0xcc);
}

static void test_bzimage_refusals(void **state)
{
	struct fixture *f = *state;
	size_t ks;
	uint8_t *k;

	k = make_bzimage(4096, &ks);
	expect_refused(f, k, 0x100, ENOEXEC, "neither");       /* truncated */
	expect_refused(f, k, SETUP_BYTES, ENOEXEC, "setup sectors"); /* no kernel */
	w16(k + 0x1fe, 0x1234);
	expect_refused(f, k, ks, ENOEXEC, "neither");
	free(k);

	k = make_bzimage(4096, &ks);
	w16(k + 0x206, 0x205);
	expect_refused(f, k, ks, ENOEXEC, "older than 2.06");
	w16(k + 0x206, 0x20b);
	expect_refused(f, k, ks, ENOEXEC, "64-bit entry");
	w16(k + 0x206, 0x20f);
	w16(k + 0x236, 0x02);
	expect_refused(f, k, ks, ENOEXEC, "64-bit entry");
	w16(k + 0x236, 0x7f);
	k[0x234] = 0; /* not relocatable: only at a usable pref_address */
	w64(k + 0x258, 0x1234000);
	expect_refused(f, k, ks, ENOEXEC, "not relocatable");
	w64(k + 0x258, 0x1000000);
	k[0x234] = 1;
	w32(k + 0x230, 0x3000);
	expect_refused(f, k, ks, ENOEXEC, "kernel_alignment");
	w32(k + 0x230, 0x200000);
	w32(k + 0x260, 100);
	expect_refused(f, k, ks, ENOEXEC, "init_size");
	w32(k + 0x260, 0xf0000000u); /* more than RAM */
	expect_refused(f, k, ks, E2BIG, "more --mem");
	w32(k + 0x260, 0x2000000);
	k[0x1f1] = 200; /* setup sectors beyond the file */
	expect_refused(f, k, ks, ENOEXEC, "setup sectors");
	k[0x1f1] = SETUP_SECTS;
	k[0x201] = 0xff; /* header length beyond the zero page's room */
	expect_refused(f, k, ks, ENOEXEC, "jump");
	free(k);
}

static void test_cmdline_and_initrd_limits(void **state)
{
	struct fixture *f = *state;
	struct spk_linux_boot b;
	size_t ks;
	uint8_t *k = make_bzimage(4096, &ks);
	struct spk_linux_config c = cfg_for(k, ks);
	char *line = malloc(3000);

	memset(line, 'a', 2999);
	line[2999] = '\0';
	c.cmdline = line;
	assert_int_equal(spk_linux_load(f->mem, &c, &b), -E2BIG);
	assert_non_null(strstr(spk_last_error(), "at most 2047"));
	line[2047] = '\0'; /* exactly cmdline_size */
	assert_int_equal(spk_linux_load(f->mem, &c, &b), 0);

	/* an initrd that would overlap the kernel's init_size */
	c.cmdline = NULL;
	c.initrd = line;
	c.initrd_size = MEM - 0x2000000;
	assert_int_equal(spk_linux_load(f->mem, &c, &b), -E2BIG);
	assert_non_null(strstr(spk_last_error(), "initrd"));
	c.initrd_size = 1;
	c.initrd = NULL;
	assert_int_equal(spk_linux_load(f->mem, &c, &b), -EINVAL);
	/* initrd_addr_max below the top of RAM caps the initrd */
	w32(k + 0x22c, 0x4000000 - 1);
	c.initrd = line;
	c.initrd_size = 100;
	assert_int_equal(spk_linux_load(f->mem, &c, &b), 0);
	assert_int_equal(b.initrd_start, 0x4000000 - 4096);
	/* too little RAM */
	c.mem_size = 8 << 20;
	assert_int_equal(spk_linux_load(f->mem, &c, &b), -E2BIG);
	free(line);
	free(k);
}

/* An ELF vmlinux: one PT_LOAD at 16 MiB, optionally a PT_NOTE with PVH. */
static uint8_t *make_elf(bool pvh, size_t *size)
{
	const size_t note_off = 0x100, load_off = 0x1000, load_len = 0x2000;
	uint8_t *k = calloc(1, load_off + load_len);
	Elf64_Ehdr *eh = (Elf64_Ehdr *)k;
	Elf64_Phdr *ph = (Elf64_Phdr *)(k + sizeof(*eh));

	memcpy(eh->e_ident, ELFMAG, SELFMAG);
	eh->e_ident[EI_CLASS] = ELFCLASS64;
	eh->e_ident[EI_DATA] = ELFDATA2LSB;
	eh->e_ident[EI_VERSION] = EV_CURRENT;
	eh->e_type = ET_EXEC;
	eh->e_machine = EM_X86_64;
	eh->e_version = EV_CURRENT;
	eh->e_entry = 0x1000000;
	eh->e_phoff = sizeof(*eh);
	eh->e_ehsize = sizeof(*eh);
	eh->e_phentsize = sizeof(*ph);
	eh->e_phnum = 2;
	ph[0] = (Elf64_Phdr){.p_type = PT_LOAD, .p_offset = load_off, .p_vaddr = 0xffffffff81000000,
			     .p_paddr = 0x1000000, .p_filesz = load_len, .p_memsz = load_len + 0x1000};
	ph[1] = (Elf64_Phdr){.p_type = PT_NOTE, .p_offset = note_off, .p_filesz = 0x40};
	uint8_t *n = k + note_off;
	/* an unrelated note first, then Xen PHYS32_ENTRY (8-byte desc) */
	w32(n, 4), w32(n + 4, 4), w32(n + 8, 1), memcpy(n + 12, "GNU", 4), w32(n + 16, 0);
	if (pvh) {
		w32(n + 20, 4), w32(n + 24, 8), w32(n + 28, 18), memcpy(n + 32, "Xen", 4);
		w64(n + 36, 0x1000440);
	}
	*size = load_off + load_len;
	return k;
}

static void test_elf_and_pvh(void **state)
{
	struct fixture *f = *state;
	static uint8_t initrd[5000];
	struct spk_linux_boot b;
	size_t ks;
	uint8_t *k = make_elf(false, &ks);
	struct spk_linux_config c = cfg_for(k, ks);

	assert_int_equal(spk_linux_load(f->mem, &c, &b), 0);
	assert_int_equal(b.protocol, SPK_LINUX_ELF64);
	assert_int_equal(b.entry, 0x1000000);
	assert_int_equal(b.kernel_end, 0x1003000);
	assert_memory_equal(f->ram + SPK_PC_BOOT_PARAMS + 0x202, "HdrS", 4);
	assert_int_equal(r32(f->ram + SPK_PC_BOOT_PARAMS + 0x228), SPK_PC_CMDLINE);
	free(k);

	k = make_elf(true, &ks);
	c = cfg_for(k, ks);
	c.initrd = initrd;
	c.initrd_size = sizeof(initrd);
	assert_int_equal(spk_linux_load(f->mem, &c, &b), 0);
	assert_int_equal(b.protocol, SPK_LINUX_PVH);
	assert_int_equal(b.entry, 0x1000440);
	const uint8_t *si = f->ram + SPK_PC_BOOT_PARAMS;
	assert_int_equal(r32(si), 0x336ec578);
	assert_int_equal(r32(si + 4), 1);
	assert_int_equal(r32(si + 12), 1); /* one module: the initrd */
	assert_int_equal(r64(si + 24), SPK_PC_CMDLINE);
	assert_int_equal(r64(si + 32), SPK_PC_ACPI_START);
	assert_int_equal(r32(si + 48), 5); /* memmap entries */
	uint64_t modlist = r64(si + 16), memmap = r64(si + 40);
	assert_int_equal(r64(f->ram + modlist), b.initrd_start);
	assert_int_equal(r64(f->ram + modlist + 8), sizeof(initrd));
	assert_int_equal(r64(f->ram + memmap + 24 + 16) & 0xffffffff, SPK_E820_RESERVED);
	/* the same map as the zero page's: the ECAM reserved after the RAM */
	assert_int_equal(r64(f->ram + memmap + 3 * 24), SPK_PC_PCI_ECAM);
	assert_int_equal(r64(f->ram + memmap + 3 * 24 + 8), SPK_PC_PCI_ECAM_SIZE);
	assert_int_equal(r32(f->ram + memmap + 3 * 24 + 16), SPK_E820_RESERVED);

	c.no_pvh = true; /* the same kernel through its 64-bit entry */
	assert_int_equal(spk_linux_load(f->mem, &c, &b), 0);
	assert_int_equal(b.protocol, SPK_LINUX_ELF64);

	/* a note whose size runs past its segment is ignored, not followed */
	c.no_pvh = false;
	w32(k + 0x100 + 24, 0xfffffff0u);
	assert_int_equal(spk_linux_load(f->mem, &c, &b), 0);
	assert_int_equal(b.protocol, SPK_LINUX_ELF64);
	free(k);
}

/* fuzz_linux found this: an ELF magic with a header shorter than an
 * Elf64_Ehdr made the PVH note scan read past the image. */
static void test_regression_short_elf(void **state)
{
	struct fixture *f = *state;
	static const uint8_t head[] = {0x7f, 'E', 'L', 'F', 2, 1, 1, 0, 0, 0, 0, 0,
				       0xff, 0xff, 0xff, 0xf8, 0xff, 0xff, 0xff, 0xf8,
				       1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0};
	struct spk_linux_boot b;
	/* a heap copy of exactly that size, so ASan sees any overread */
	uint8_t *k = malloc(sizeof(head));

	memcpy(k, head, sizeof(head));
	struct spk_linux_config c = cfg_for(k, sizeof(head));
	assert_int_equal(spk_linux_load(f->mem, &c, &b), -ENOEXEC);
	free(k);
}

/* Does a reserved entry of m[0, n) cover [addr, addr + len)? */
static bool reserved(const struct spk_e820 *m, int n, uint64_t addr, uint64_t len)
{
	for (int i = 0; i < n; i++)
		if (m[i].type == SPK_E820_RESERVED && m[i].addr <= addr &&
		    addr + len <= m[i].addr + m[i].size)
			return true;
	return false;
}

/* Sorted, disjoint, RAM never in the 32-bit hole; the ECAM of the MCFG,
 * the boot timer, IOAPIC and LAPIC reserved; the PCI MMIO window unlisted. */
static void check_map(const struct spk_e820 *m, int n, uint64_t mem)
{
	uint64_t ram = 0;

	for (int i = 0; i < n; i++) {
		assert_true(m[i].size > 0);
		if (i)
			assert_true(m[i - 1].addr + m[i - 1].size <= m[i].addr);
		if (m[i].type == SPK_E820_RAM) {
			ram += m[i].size;
			assert_true(m[i].addr + m[i].size <= SPK_PC_HOLE_START ||
				    m[i].addr >= SPK_PC_HIGH_RAM_START);
		}
		/* nothing of the PCI MMIO window, where BARs go */
		assert_true(m[i].addr + m[i].size <= SPK_PC_PCI_MMIO_START ||
			    m[i].addr >= SPK_PC_PCI_MMIO_START + SPK_PC_PCI_MMIO_SIZE);
	}
	assert_int_equal(ram, mem - (SPK_PC_HIGH_RAM - SPK_PC_LOW_RAM_END));
	assert_true(reserved(m, n, SPK_PC_LOW_RAM_END, SPK_PC_HIGH_RAM - SPK_PC_LOW_RAM_END));
	assert_true(reserved(m, n, SPK_PC_PCI_ECAM, SPK_PC_PCI_ECAM_SIZE));
	assert_true(reserved(m, n, SPK_PC_BOOT_TIMER, 4096));
	assert_true(reserved(m, n, SPK_PC_IOAPIC, 4096));
	assert_true(reserved(m, n, SPK_PC_LAPIC, 4096));
}

static void test_e820(void **state)
{
	struct spk_e820 m[8];
	struct spk_acpi_config ac;

	assert_int_equal(spk_pc_e820(512ull << 20, m, 8), 5);
	check_map(m, 5, 512ull << 20);
	assert_int_equal(m[2].addr + m[2].size, 512ull << 20);
	assert_int_equal(spk_pc_e820(3ull << 30, m, 8), 5); /* RAM right up to the hole */
	check_map(m, 5, 3ull << 30);
	assert_int_equal(spk_pc_e820(8ull << 30, m, 8), 6);
	check_map(m, 6, 8ull << 30);
	assert_int_equal(m[2].addr + m[2].size, SPK_PC_HOLE_START);
	assert_int_equal(m[5].addr, 1ull << 32);
	assert_int_equal(m[5].size, (8ull << 30) - SPK_PC_HOLE_START);
	/* the ACPI tables' addresses (MCFG, MADT) are the ones reserved here */
	spk_acpi_pc_config(&ac, 2, true);
	assert_true(reserved(m, 6, ac.pci_ecam, SPK_PC_PCI_ECAM_SIZE));
	assert_true(reserved(m, 6, ac.ioapic_addr, 4096));
	assert_true(reserved(m, 6, ac.lapic_addr, 4096));
	assert_int_equal(spk_pc_e820(8ull << 30, m, 5), -ENOSPC);
	assert_int_equal(spk_pc_e820(1 << 20, m, 8), -EINVAL);
	assert_int_equal(spk_pc_e820((512ull << 20) + 1, m, 8), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_bzimage_loads, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bzimage_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bzimage_not_relocatable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cmdline_and_initrd_limits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_elf_and_pvh, setup, teardown),
		cmocka_unit_test_setup_teardown(test_regression_short_elf, setup, teardown),
		cmocka_unit_test(test_e820),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
