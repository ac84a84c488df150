/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The ELF loader against images built here field by field: one valid
 * image, then one broken field per test. Every refusal must leave guest
 * memory exactly as it was.
 */
#include <elf.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include <sparkler/loader.h>
#include <sparkler/log.h>
#include <sparkler/mem.h>

/* RAM at 0, read-only right after it, a gap, then an unpopulated region. */
#define RAM_SIZE   0x100000u
#define ROM_GPA    RAM_SIZE
#define ROM_SIZE   0x10000u
#define HOLE_GPA   0x200000u
#define HOLE_SIZE  0x10000u
#define FILL       0xaa /* what guest memory holds before any load */
#define TEXT_GPA   0x1000u
#define DATA_GPA   0x3000u
#define DATA_MEMSZ 0x1000u
#define ENTRY      0x1010u

/*
 * The test image: headers and segment bytes in one struct, so a test
 * breaks a field by name. ph[1] is a PT_NOTE the loader must skip; ph[3]
 * is spare, for tests that add a header.
 */
struct image {
	Elf64_Ehdr eh;
	Elf64_Phdr ph[4];
	uint8_t text[0x100];
	uint8_t data[0x80];
};

struct fixture {
	struct spk_mem *mem;
	uint8_t *ram;
	uint8_t *rom;
	struct image img;
};

static Elf64_Phdr load_phdr(uint64_t offset, uint64_t paddr, uint64_t filesz, uint64_t memsz)
{
	return (Elf64_Phdr){
	    .p_type = PT_LOAD,
	    .p_flags = PF_R | PF_W | PF_X,
	    .p_offset = offset,
	    .p_vaddr = paddr + 0xffffffff80000000ull, /* the loader must use p_paddr */
	    .p_paddr = paddr,
	    .p_filesz = filesz,
	    .p_memsz = memsz,
	    .p_align = 0x1000,
	};
}

static void build_image(struct image *img)
{
	memset(img, 0, sizeof(*img));
	memcpy(img->eh.e_ident, ELFMAG, SELFMAG);
	img->eh.e_ident[EI_CLASS] = ELFCLASS64;
	img->eh.e_ident[EI_DATA] = ELFDATA2LSB;
	img->eh.e_ident[EI_VERSION] = EV_CURRENT;
	img->eh.e_type = ET_EXEC;
	img->eh.e_machine = EM_X86_64;
	img->eh.e_version = EV_CURRENT;
	img->eh.e_entry = ENTRY;
	img->eh.e_phoff = offsetof(struct image, ph);
	img->eh.e_ehsize = sizeof(Elf64_Ehdr);
	img->eh.e_phentsize = sizeof(Elf64_Phdr);
	img->eh.e_phnum = 3;
	img->ph[0] =
	    load_phdr(offsetof(struct image, text), TEXT_GPA, sizeof(img->text), sizeof(img->text));
	img->ph[1] = (Elf64_Phdr){.p_type = PT_NOTE, .p_offset = 0xdead0000, .p_filesz = 16};
	img->ph[2] =
	    load_phdr(offsetof(struct image, data), DATA_GPA, sizeof(img->data), DATA_MEMSZ);
	for (size_t i = 0; i < sizeof(img->text); i++)
		img->text[i] = (uint8_t)(i + 1);
	for (size_t i = 0; i < sizeof(img->data); i++)
		img->data[i] = (uint8_t)(0x80 | i);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->ram = malloc(RAM_SIZE);
	f->rom = malloc(ROM_SIZE);
	assert_non_null(f->ram);
	assert_non_null(f->rom);
	memset(f->ram, FILL, RAM_SIZE);
	memset(f->rom, FILL, ROM_SIZE);
	assert_int_equal(spk_mem_new(&f->mem), 0);
	assert_int_equal(spk_mem_add(f->mem, 0, RAM_SIZE, SPK_MEM_RAM, f->ram, "ram"), 0);
	assert_int_equal(spk_mem_add(f->mem, ROM_GPA, ROM_SIZE, SPK_MEM_READONLY, f->rom, "rom"),
	                 0);
	assert_int_equal(
	    spk_mem_add(f->mem, HOLE_GPA, HOLE_SIZE, SPK_MEM_UNPOPULATED, NULL, "hole"), 0);
	build_image(&f->img);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	spk_mem_free(f->mem);
	free(f->ram);
	free(f->rom);
	free(f);
	return 0;
}

static void assert_untouched(const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] != FILL)
			fail_msg("guest byte %zu changed to 0x%02x by a refused image", i, p[i]);
}

static void assert_memory_untouched(const struct fixture *f)
{
	assert_untouched(f->ram, RAM_SIZE);
	assert_untouched(f->rom, ROM_SIZE);
}

static void assert_error_mentions(const char *what)
{
	const char *msg = spk_last_error();

	if (!strstr(msg, what))
		fail_msg("error \"%s\" does not mention \"%s\"", msg, what);
}

/* Load the fixture's image cut to size; expect err and an untouched guest. */
static void expect_refused_size(struct fixture *f, size_t size, int err, const char *what)
{
	struct spk_elf_info info;

	assert_int_equal(spk_elf_load(f->mem, &f->img, size, &info), err);
	assert_error_mentions(what);
	assert_memory_untouched(f);
}

static void expect_refused(struct fixture *f, int err, const char *what)
{
	expect_refused_size(f, sizeof(f->img), err, what);
}

/* The guest bytes at gpa equal want. */
static void assert_guest(const struct fixture *f, uint64_t gpa, const void *want, size_t len)
{
	uint8_t got[0x1000];

	assert_true(len <= sizeof(got));
	assert_int_equal(spk_mem_read(f->mem, gpa, got, len), 0);
	assert_memory_equal(got, want, len);
}

static void assert_guest_byte(const struct fixture *f, uint64_t gpa, size_t len, uint8_t b)
{
	uint8_t want[0x1000];

	assert_true(len <= sizeof(want));
	memset(want, b, len);
	assert_guest(f, gpa, want, len);
}

static void test_valid_two_segments(void **state)
{
	struct fixture *f = *state;
	struct spk_elf_info info;

	assert_int_equal(spk_elf_load(f->mem, &f->img, sizeof(f->img), &info), 0);
	assert_int_equal(info.entry, ENTRY);
	assert_int_equal(info.lowest, TEXT_GPA);
	assert_int_equal(info.highest, DATA_GPA + DATA_MEMSZ);
	assert_int_equal(info.nsegments, 2);
	assert_guest(f, TEXT_GPA, f->img.text, sizeof(f->img.text));
	assert_guest(f, DATA_GPA, f->img.data, sizeof(f->img.data));
	/* bss zeroed, and not one byte more on either side */
	assert_guest_byte(f, DATA_GPA + sizeof(f->img.data), DATA_MEMSZ - sizeof(f->img.data), 0);
	assert_guest_byte(f, TEXT_GPA - 1, 1, FILL);
	assert_guest_byte(f, TEXT_GPA + sizeof(f->img.text), 1, FILL);
	assert_guest_byte(f, DATA_GPA - 1, 1, FILL);
	assert_guest_byte(f, DATA_GPA + DATA_MEMSZ, 1, FILL);
	assert_untouched(f->rom, ROM_SIZE);
}

static void test_info_may_be_null(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(spk_elf_load(f->mem, &f->img, sizeof(f->img), NULL), 0);
	assert_guest(f, TEXT_GPA, f->img.text, sizeof(f->img.text));
}

/* Nothing in the image is aligned for the host: headers must be copied. */
static void test_unaligned_image(void **state)
{
	struct fixture *f = *state;
	uint8_t *buf = malloc(sizeof(f->img) + 3);
	struct spk_elf_info info;

	assert_non_null(buf);
	memcpy(buf + 3, &f->img, sizeof(f->img));
	assert_int_equal(spk_elf_load(f->mem, buf + 3, sizeof(f->img), &info), 0);
	assert_int_equal(info.nsegments, 2);
	assert_guest(f, DATA_GPA, f->img.data, sizeof(f->img.data));
	free(buf);
}

/* One segment from the end of RAM into the adjacent read-only region. */
static void test_segment_spans_ram_and_rom(void **state)
{
	struct fixture *f = *state;
	struct spk_elf_info info;
	const uint64_t gpa = RAM_SIZE - 0x80;

	f->img.eh.e_phnum = 1;
	f->img.ph[0] = load_phdr(offsetof(struct image, text), gpa, sizeof(f->img.text), 0x300);
	assert_int_equal(spk_elf_load(f->mem, &f->img, sizeof(f->img), &info), 0);
	assert_int_equal(info.lowest, gpa);
	assert_int_equal(info.highest, gpa + 0x300);
	assert_int_equal(info.nsegments, 1);
	assert_guest(f, gpa, f->img.text, sizeof(f->img.text));
	assert_guest_byte(f, gpa + sizeof(f->img.text), 0x300 - sizeof(f->img.text), 0);
	assert_guest_byte(f, gpa + 0x300, 1, FILL);
	assert_int_equal(f->rom[0], 0x81); /* text[0x80], written straight into the ROM */
}

/* The last byte of the read-only region is still guest memory. */
static void test_segment_ends_at_end_of_memory(void **state)
{
	struct fixture *f = *state;
	const uint64_t end = ROM_GPA + ROM_SIZE;

	f->img.ph[2] = load_phdr(offsetof(struct image, data), end - 0x100, 0x80, 0x100);
	assert_int_equal(spk_elf_load(f->mem, &f->img, sizeof(f->img), NULL), 0);
	assert_guest(f, end - 0x100, f->img.data, 0x80);
	assert_guest_byte(f, end - 0x80, 0x80, 0);
}

/* An empty PT_LOAD loads nothing and is not counted; it may sit anywhere. */
static void test_empty_segment_skipped(void **state)
{
	struct fixture *f = *state;
	struct spk_elf_info info;

	f->img.eh.e_phnum = 4;
	f->img.ph[3] = load_phdr(0, 0x7fff0000, 0, 0);
	assert_int_equal(spk_elf_load(f->mem, &f->img, sizeof(f->img), &info), 0);
	assert_int_equal(info.nsegments, 2);
	assert_int_equal(info.highest, DATA_GPA + DATA_MEMSZ);
}

static void test_all_segments_empty(void **state)
{
	struct fixture *f = *state;

	f->img.ph[0].p_filesz = f->img.ph[0].p_memsz = 0;
	f->img.ph[2].p_filesz = f->img.ph[2].p_memsz = 0;
	expect_refused(f, -ENOEXEC, "empty");
}

/* 64 program headers is the limit, and allowed. */
static void test_64_headers(void **state)
{
	struct fixture *f = *state;
	const size_t phsize = 64 * sizeof(Elf64_Phdr);
	const size_t size = sizeof(Elf64_Ehdr) + phsize + sizeof(f->img.text);
	uint8_t *buf = calloc(1, size);
	Elf64_Ehdr eh = f->img.eh;
	Elf64_Phdr ph =
	    load_phdr(sizeof(eh) + phsize, TEXT_GPA, sizeof(f->img.text), sizeof(f->img.text));
	struct spk_elf_info info;

	assert_non_null(buf);
	eh.e_phnum = 64;
	eh.e_phoff = sizeof(eh);
	memcpy(buf, &eh, sizeof(eh));
	/* PT_NULL everywhere but the last header */
	memcpy(buf + sizeof(eh) + 63 * sizeof(ph), &ph, sizeof(ph));
	memcpy(buf + sizeof(eh) + phsize, f->img.text, sizeof(f->img.text));
	assert_int_equal(spk_elf_load(f->mem, buf, size, &info), 0);
	assert_int_equal(info.nsegments, 1);
	assert_guest(f, TEXT_GPA, f->img.text, sizeof(f->img.text));
	free(buf);
}

static void test_bad_magic(void **state)
{
	struct fixture *f = *state;

	f->img.eh.e_ident[EI_MAG3] = 'G';
	expect_refused(f, -ENOEXEC, "magic");
}

static void test_bad_class(void **state)
{
	struct fixture *f = *state;

	f->img.eh.e_ident[EI_CLASS] = ELFCLASS32;
	expect_refused(f, -ENOEXEC, "EI_CLASS 1");
}

static void test_bad_endianness(void **state)
{
	struct fixture *f = *state;

	f->img.eh.e_ident[EI_DATA] = ELFDATA2MSB;
	expect_refused(f, -ENOEXEC, "EI_DATA 2");
}

static void test_bad_ident_version(void **state)
{
	struct fixture *f = *state;

	f->img.eh.e_ident[EI_VERSION] = 2;
	expect_refused(f, -ENOEXEC, "EI_VERSION 2");
}

static void test_bad_version(void **state)
{
	struct fixture *f = *state;

	f->img.eh.e_version = 0;
	expect_refused(f, -ENOEXEC, "e_version 0");
}

static void test_bad_machine(void **state)
{
	struct fixture *f = *state;

	f->img.eh.e_machine = EM_386;
	expect_refused(f, -ENOEXEC, "e_machine 3");
}

static void test_bad_type(void **state)
{
	struct fixture *f = *state;

	f->img.eh.e_type = ET_DYN;
	expect_refused(f, -ENOEXEC, "e_type 3");
}

static void test_bad_phentsize(void **state)
{
	struct fixture *f = *state;

	f->img.eh.e_phentsize = sizeof(Elf64_Phdr) - 1;
	expect_refused(f, -ENOEXEC, "e_phentsize 55");
}

static void test_entry_zero(void **state)
{
	struct fixture *f = *state;

	f->img.eh.e_entry = 0;
	expect_refused(f, -ENOEXEC, "e_entry");
}

static void test_phoff_beyond_image(void **state)
{
	struct fixture *f = *state;

	f->img.eh.e_phoff = sizeof(f->img);
	expect_refused(f, -ENOEXEC, "e_phoff");
}

static void test_phoff_wraps(void **state)
{
	struct fixture *f = *state;

	f->img.eh.e_phoff = UINT64_MAX - sizeof(Elf64_Phdr);
	expect_refused(f, -ENOEXEC, "e_phoff 0xffffffffffffffc7");
}

/* The image ends inside the program header table. */
static void test_table_cut_short(void **state)
{
	struct fixture *f = *state;

	expect_refused_size(f, offsetof(struct image, ph[2]) + 8, -ENOEXEC, "e_phoff");
}

static void test_phnum_zero(void **state)
{
	struct fixture *f = *state;

	f->img.eh.e_phnum = 0;
	expect_refused(f, -ENOEXEC, "e_phnum 0");
}

static void test_phnum_too_many(void **state)
{
	struct fixture *f = *state;

	f->img.eh.e_phnum = 65;
	expect_refused(f, -ENOEXEC, "e_phnum 65");
	f->img.eh.e_phnum = PN_XNUM;
	expect_refused(f, -ENOEXEC, "e_phnum 65535");
}

static void test_no_pt_load(void **state)
{
	struct fixture *f = *state;

	f->img.ph[0].p_type = PT_NULL;
	f->img.ph[2].p_type = PT_GNU_STACK;
	expect_refused(f, -ENOEXEC, "no PT_LOAD");
}

static void test_file_range_beyond_image(void **state)
{
	struct fixture *f = *state;

	f->img.ph[2].p_filesz = sizeof(f->img.data) + 1;
	expect_refused(f, -ENOEXEC, "program header 2: p_offset");
	assert_error_mentions("beyond the 672-byte image");
}

static void test_file_range_wraps(void **state)
{
	struct fixture *f = *state;

	f->img.ph[2].p_offset = UINT64_MAX - 0x10;
	expect_refused(f, -ENOEXEC, "p_offset 0xffffffffffffffef + p_filesz 0x80");
}

static void test_filesz_above_memsz(void **state)
{
	struct fixture *f = *state;

	f->img.ph[2].p_memsz = sizeof(f->img.data) - 1;
	expect_refused(f, -ENOEXEC, "p_filesz 0x80");
}

static void test_paddr_wraps(void **state)
{
	struct fixture *f = *state;

	f->img.ph[2].p_paddr = UINT64_MAX - 0x10;
	expect_refused(f, -ENOEXEC, "wraps");
}

/* ph[0] is fine and comes first, yet must not be written either. */
static void test_segment_outside_memory(void **state)
{
	struct fixture *f = *state;

	f->img.ph[2].p_paddr = 0x10000000;
	expect_refused(f, -EFAULT, "program header 2: [0x10000000, 0x10001000) is outside guest");
}

static void test_segment_straddles_end_of_memory(void **state)
{
	struct fixture *f = *state;

	f->img.ph[2].p_paddr = ROM_GPA + ROM_SIZE - 0x800;
	expect_refused(f, -EFAULT, "outside guest memory");
}

/* Only the bss part crosses the end: memsz counts, not filesz. */
static void test_bss_straddles_end_of_memory(void **state)
{
	struct fixture *f = *state;

	f->img.ph[2].p_paddr = ROM_GPA + ROM_SIZE - sizeof(f->img.data);
	expect_refused(f, -EFAULT, "outside guest memory");
}

static void test_segment_in_unpopulated_region(void **state)
{
	struct fixture *f = *state;

	f->img.ph[2].p_paddr = HOLE_GPA;
	expect_refused(f, -EFAULT, "outside guest memory");
}

static void test_overlapping_segments(void **state)
{
	struct fixture *f = *state;

	f->img.ph[2].p_paddr = TEXT_GPA + sizeof(f->img.text) - 1;
	expect_refused(f, -ENOEXEC, "program headers 0 and 2 overlap");
}

static void test_truncated_header(void **state)
{
	struct fixture *f = *state;

	expect_refused_size(f, sizeof(Elf64_Ehdr) - 1, -ENOEXEC, "63-byte image");
	expect_refused_size(f, 0, -ENOEXEC, "0-byte image");
	assert_int_equal(spk_elf_load(f->mem, NULL, 0, NULL), -ENOEXEC);
}

/* A scratch directory per file test, removed by the test. */
static void make_tmpdir(char *dir, size_t len)
{
	const char *base = getenv("TMPDIR");

	snprintf(dir, len, "%s/test_elf.XXXXXX", base && *base ? base : "/tmp");
	assert_non_null(mkdtemp(dir));
}

static void write_file(const char *path, const void *buf, size_t len)
{
	FILE *fp = fopen(path, "wb");

	assert_non_null(fp);
	assert_int_equal(fwrite(buf, 1, len, fp), len);
	assert_int_equal(fclose(fp), 0);
}

static void test_load_file(void **state)
{
	struct fixture *f = *state;
	char dir[256], path[300];
	struct spk_elf_info info;

	make_tmpdir(dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/guest.elf", dir);
	write_file(path, &f->img, sizeof(f->img));
	/* exactly max_size bytes is allowed */
	assert_int_equal(spk_elf_load_file(f->mem, path, sizeof(f->img), &info), 0);
	assert_int_equal(info.entry, ENTRY);
	assert_int_equal(info.nsegments, 2);
	assert_guest(f, DATA_GPA, f->img.data, sizeof(f->img.data));
	assert_guest_byte(f, DATA_GPA + sizeof(f->img.data), 0x10, 0);
	unlink(path);
	rmdir(dir);
}

static void test_load_file_too_big(void **state)
{
	struct fixture *f = *state;
	char dir[256], path[300];

	make_tmpdir(dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/big.elf", dir);
	write_file(path, &f->img, sizeof(f->img));
	assert_int_equal(spk_elf_load_file(f->mem, path, sizeof(f->img) - 1, NULL), -EFBIG);
	assert_error_mentions(path);
	assert_error_mentions("672 bytes");
	assert_error_mentions("671");
	assert_memory_untouched(f);
	unlink(path);
	rmdir(dir);
}

static void test_load_file_malformed(void **state)
{
	struct fixture *f = *state;
	char dir[256], path[300];

	make_tmpdir(dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/bad.elf", dir);
	f->img.eh.e_machine = EM_AARCH64;
	write_file(path, &f->img, sizeof(f->img));
	assert_int_equal(spk_elf_load_file(f->mem, path, 1 << 20, NULL), -ENOEXEC);
	assert_error_mentions("e_machine");
	assert_memory_untouched(f);
	unlink(path);
	rmdir(dir);
}

static void test_load_file_directory(void **state)
{
	struct fixture *f = *state;
	char dir[256];

	make_tmpdir(dir, sizeof(dir));
	assert_int_equal(spk_elf_load_file(f->mem, dir, 1 << 20, NULL), -EISDIR);
	assert_error_mentions(dir);
	assert_memory_untouched(f);
	rmdir(dir);
}

/* A FIFO is refused at once: opening it must not wait for a writer. */
static void test_load_file_fifo(void **state)
{
	struct fixture *f = *state;
	char dir[256], path[300];

	make_tmpdir(dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/fifo", dir);
	assert_int_equal(mkfifo(path, 0600), 0);
	assert_int_equal(spk_elf_load_file(f->mem, path, 1 << 20, NULL), -EINVAL);
	assert_error_mentions("not a regular file");
	unlink(path);
	rmdir(dir);
}

static void test_load_file_missing(void **state)
{
	struct fixture *f = *state;
	char dir[256], path[300];

	make_tmpdir(dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/missing.elf", dir);
	assert_int_equal(spk_elf_load_file(f->mem, path, 1 << 20, NULL), -ENOENT);
	assert_error_mentions(path);
	assert_memory_untouched(f);
	rmdir(dir);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_valid_two_segments),
	    T(test_info_may_be_null),
	    T(test_unaligned_image),
	    T(test_segment_spans_ram_and_rom),
	    T(test_segment_ends_at_end_of_memory),
	    T(test_empty_segment_skipped),
	    T(test_all_segments_empty),
	    T(test_64_headers),
	    T(test_bad_magic),
	    T(test_bad_class),
	    T(test_bad_endianness),
	    T(test_bad_ident_version),
	    T(test_bad_version),
	    T(test_bad_machine),
	    T(test_bad_type),
	    T(test_bad_phentsize),
	    T(test_entry_zero),
	    T(test_phoff_beyond_image),
	    T(test_phoff_wraps),
	    T(test_table_cut_short),
	    T(test_phnum_zero),
	    T(test_phnum_too_many),
	    T(test_no_pt_load),
	    T(test_file_range_beyond_image),
	    T(test_file_range_wraps),
	    T(test_filesz_above_memsz),
	    T(test_paddr_wraps),
	    T(test_segment_outside_memory),
	    T(test_segment_straddles_end_of_memory),
	    T(test_bss_straddles_end_of_memory),
	    T(test_segment_in_unpopulated_region),
	    T(test_overlapping_segments),
	    T(test_truncated_header),
	    T(test_load_file),
	    T(test_load_file_too_big),
	    T(test_load_file_malformed),
	    T(test_load_file_directory),
	    T(test_load_file_fifo),
	    T(test_load_file_missing),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
