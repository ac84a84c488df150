/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The arm64 Image loader: synthetic Image headers, good and hostile (bad
 * magic, big-endian, image_size 0 or huge, text_offset out of range, a file
 * larger than its image_size, a kernel larger than RAM), the placement of
 * kernel, initrd and DTB, and Image.gz through zlib.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <sparkler/arm64_boot.h>
#include <sparkler/log.h>

#ifdef SPK_HAVE_ZLIB
#include <zlib.h>
#endif

#define RAM_BASE 0x40000000ull
#define RAM_SIZE (64ull << 20)

struct fixture {
	struct spk_mem *mem;
	uint8_t *ram;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	f->ram = calloc(1, RAM_SIZE);
	assert_int_equal(spk_mem_new(&f->mem), 0);
	assert_int_equal(spk_mem_add(f->mem, RAM_BASE, RAM_SIZE, SPK_MEM_RAM, f->ram, "ram"), 0);
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

static void w32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void w64(uint8_t *p, uint64_t v)
{
	w32(p, (uint32_t)v);
	w32(p + 4, (uint32_t)(v >> 32));
}

/* A synthetic Image of size bytes: header, then a byte pattern. */
static uint8_t *make_image(size_t size, uint64_t text_offset, uint64_t image_size, uint64_t flags)
{
	uint8_t *img = calloc(1, size);

	for (size_t i = 64; i < size; i++)
		img[i] = (uint8_t)(i * 7);
	w32(img, 0x14000010); /* b +0x40, as a real Image's code0 */
	w64(img + 8, text_offset);
	w64(img + 16, image_size);
	w64(img + 24, flags);
	w32(img + 56, SPK_ARM64_IMAGE_MAGIC);
	return img;
}

static void test_parse(void **state)
{
	struct spk_arm64_image h;
	uint8_t *img = make_image(4096, 0, 0x10000, 0xa); /* 4K pages, anywhere */

	assert_int_equal(spk_arm64_image_parse(img, 4096, &h), 0);
	assert_int_equal(h.text_offset, 0);
	assert_int_equal(h.image_size, 0x10000);
	assert_true(h.anywhere);
	assert_int_equal(h.page_kib, 4);
	w64(img + 24, 6); /* 64K pages, at the base */
	assert_int_equal(spk_arm64_image_parse(img, 4096, &h), 0);
	assert_false(h.anywhere);
	assert_int_equal(h.page_kib, 64);
	w64(img + 8, 0x80000); /* an old text_offset */
	assert_int_equal(spk_arm64_image_parse(img, 4096, &h), 0);
	assert_int_equal(h.text_offset, 0x80000);
	free(img);
}

static void test_parse_hostile(void **state)
{
	struct spk_arm64_image h;
	uint8_t *img = make_image(4096, 0, 0x10000, 0);

	assert_int_equal(spk_arm64_image_parse(NULL, 4096, &h), -EINVAL);
	assert_int_equal(spk_arm64_image_parse(img, 4096, NULL), -EINVAL);
	assert_int_equal(spk_arm64_image_parse(img, 63, &h), -ENOEXEC); /* short */
	assert_int_equal(spk_arm64_image_parse(img, 0, &h), -ENOEXEC);
	img[56] = 'B'; /* bad magic */
	assert_int_equal(spk_arm64_image_parse(img, 4096, &h), -ENOEXEC);
	assert_non_null(strstr(spk_last_error(), "magic"));
	img[56] = 'A';
	w64(img + 24, 1); /* big-endian */
	assert_int_equal(spk_arm64_image_parse(img, 4096, &h), -ENOEXEC);
	w64(img + 24, 0);
	w64(img + 16, 0); /* image_size 0: pre-3.17 */
	assert_int_equal(spk_arm64_image_parse(img, 4096, &h), -ENOEXEC);
	w64(img + 16, UINT64_MAX); /* overflow */
	assert_int_equal(spk_arm64_image_parse(img, 4096, &h), -ENOEXEC);
	w64(img + 16, SPK_ARM64_IMAGE_MAX + 1);
	assert_int_equal(spk_arm64_image_parse(img, 4096, &h), -ENOEXEC);
	w64(img + 16, 1024); /* smaller than the file */
	assert_int_equal(spk_arm64_image_parse(img, 4096, &h), -ENOEXEC);
	w64(img + 16, 0x10000);
	w64(img + 8, 2ull << 20); /* text_offset not below 2 MiB */
	assert_int_equal(spk_arm64_image_parse(img, 4096, &h), -ENOEXEC);
	w64(img + 8, UINT64_MAX - 4095);
	assert_int_equal(spk_arm64_image_parse(img, 4096, &h), -ENOEXEC);
	w64(img + 8, 3); /* unaligned */
	assert_int_equal(spk_arm64_image_parse(img, 4096, &h), -ENOEXEC);
	free(img);
}

static struct spk_arm64_boot_config config(const void *kernel, size_t ksize, const void *initrd,
                                           size_t isize)
{
	return (struct spk_arm64_boot_config){.kernel = kernel,
	                                      .kernel_size = ksize,
	                                      .initrd = initrd,
	                                      .initrd_size = isize,
	                                      .ram_base = RAM_BASE,
	                                      .ram_size = RAM_SIZE};
}

static void test_load(void **state)
{
	struct fixture *f = *state;
	struct spk_arm64_boot b;
	uint8_t *img = make_image(8192, 0x80000, 0x100000, 0);
	uint8_t initrd[5000];
	struct spk_arm64_boot_config c = config(img, 8192, initrd, sizeof(initrd));
	uint8_t dtb[64] = {0xd0, 0x0d, 0xfe, 0xed};

	memset(initrd, 0x5a, sizeof(initrd));
	memset(f->ram + 0x80000 + 8192, 0xee, 64); /* the BSS is zeroed */
	assert_int_equal(spk_arm64_boot_load(f->mem, &c, &b), 0);
	assert_int_equal(b.entry, RAM_BASE + 0x80000);
	assert_int_equal(b.kernel_end, RAM_BASE + 0x180000);
	assert_memory_equal(f->ram + 0x80000, img, 8192);
	assert_int_equal(f->ram[0x80000 + 8192], 0);
	assert_int_equal(f->ram[0x80000 + 8192 + 63], 0);
	/* DTB in the last 2 MiB block, the initrd page-aligned just below */
	assert_int_equal(b.dtb_addr, RAM_BASE + RAM_SIZE - (2 << 20));
	assert_int_equal(b.dtb_addr % (2 << 20), 0);
	assert_int_equal(b.initrd_end - b.initrd_start, sizeof(initrd));
	assert_int_equal(b.initrd_start % 4096, 0);
	assert_true(b.initrd_end <= b.dtb_addr);
	assert_true(b.initrd_start >= b.kernel_end);
	assert_memory_equal(f->ram + (b.initrd_start - RAM_BASE), initrd, sizeof(initrd));
	assert_false(b.gzip);
	assert_int_equal(spk_arm64_boot_put_dtb(f->mem, &b, dtb, sizeof(dtb)), 0);
	assert_memory_equal(f->ram + (b.dtb_addr - RAM_BASE), dtb, sizeof(dtb));
	assert_int_equal(spk_arm64_boot_put_dtb(f->mem, &b, dtb, b.dtb_max + 1), -E2BIG);
	assert_int_equal(spk_arm64_boot_put_dtb(f->mem, &b, NULL, 4), -EINVAL);
	/* no initrd */
	c = config(img, 8192, NULL, 0);
	assert_int_equal(spk_arm64_boot_load(f->mem, &c, &b), 0);
	assert_int_equal(b.initrd_start, 0);
	assert_int_equal(b.initrd_end, 0);
	free(img);
}

static void test_load_refusals(void **state)
{
	struct fixture *f = *state;
	struct spk_arm64_boot b;
	uint8_t *img = make_image(8192, 0, 0x100000, 0);
	uint8_t *big_initrd;
	struct spk_arm64_boot_config c = config(img, 8192, NULL, 0);

	/* larger than RAM */
	w64(img + 16, RAM_SIZE + 4096);
	memset(f->ram, 0, 8192);
	assert_int_equal(spk_arm64_boot_load(f->mem, &c, &b), -E2BIG);
	assert_int_equal(f->ram[64], 0); /* nothing written */
	/* it fits, but leaves no room for the DTB */
	w64(img + 16, RAM_SIZE - 4096);
	assert_int_equal(spk_arm64_boot_load(f->mem, &c, &b), -E2BIG);
	w64(img + 16, 0x100000);
	/* an initrd that does not fit between kernel and DTB */
	big_initrd = calloc(1, RAM_SIZE);
	c = config(img, 8192, big_initrd, RAM_SIZE - (3 << 20) + 1);
	assert_int_equal(spk_arm64_boot_load(f->mem, &c, &b), -E2BIG);
	c = config(img, 8192, big_initrd, RAM_SIZE - (3 << 20)); /* exactly */
	assert_int_equal(spk_arm64_boot_load(f->mem, &c, &b), 0);
	assert_int_equal(b.initrd_start, b.kernel_end);
	free(big_initrd);
	/* unaligned RAM, wrapping RAM, a DTB room above the maximum, an initrd size
	 * without an initrd, RAM that guest memory does not cover */
	c = config(img, 8192, NULL, 0);
	c.ram_base = RAM_BASE + 4096;
	assert_int_equal(spk_arm64_boot_load(f->mem, &c, &b), -EINVAL);
	c = config(img, 8192, NULL, 0);
	c.ram_base = UINT64_MAX & ~((2ull << 20) - 1);
	assert_int_equal(spk_arm64_boot_load(f->mem, &c, &b), -EINVAL);
	c = config(img, 8192, NULL, 0);
	c.dtb_max = SPK_ARM64_DTB_MAX + 1;
	assert_int_equal(spk_arm64_boot_load(f->mem, &c, &b), -EINVAL);
	c = config(img, 8192, NULL, 4096);
	assert_int_equal(spk_arm64_boot_load(f->mem, &c, &b), -EINVAL);
	c = config(img, 8192, NULL, 0);
	c.ram_size = RAM_SIZE * 2;
	assert_int_equal(spk_arm64_boot_load(f->mem, &c, &b), -EFAULT);
	/* RAM at the top of the address space: the kernel's end would wrap */
	c = config(img, 8192, NULL, 0);
	c.ram_base = 0xffffffffffe00000ull;
	c.ram_size = 0x1fffff;
	w64(img + 16, 0x400000);
	assert_int_equal(spk_arm64_boot_load(f->mem, &c, &b), -E2BIG);
	w64(img + 16, 0x100000); /* it fits there, the DTB does not */
	assert_int_equal(spk_arm64_boot_load(f->mem, &c, &b), -E2BIG);
	/* bad arguments */
	assert_int_equal(spk_arm64_boot_load(NULL, &c, &b), -EINVAL);
	assert_int_equal(spk_arm64_boot_load(f->mem, NULL, &b), -EINVAL);
	assert_int_equal(spk_arm64_boot_load(f->mem, &c, NULL), -EINVAL);
	c.kernel = NULL;
	assert_int_equal(spk_arm64_boot_load(f->mem, &c, &b), -EINVAL);
	free(img);
}

#ifdef SPK_HAVE_ZLIB
/* gzip img into a new buffer */
static uint8_t *gzip(const uint8_t *in, size_t n, size_t *out_n)
{
	z_stream zs;
	size_t cap = compressBound(n) + 64;
	uint8_t *out = malloc(cap);

	memset(&zs, 0, sizeof(zs));
	assert_int_equal(deflateInit2(&zs, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY),
	                 Z_OK);
	zs.next_in = (Bytef *)in;
	zs.avail_in = (uInt)n;
	zs.next_out = out;
	zs.avail_out = (uInt)cap;
	assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
	*out_n = zs.total_out;
	deflateEnd(&zs);
	return out;
}

static void test_gzip(void **state)
{
	struct fixture *f = *state;
	struct spk_arm64_boot b;
	uint8_t *img = make_image(300000, 0, 0x100000, 0);
	size_t gz_n;
	uint8_t *gz = gzip(img, 300000, &gz_n);
	struct spk_arm64_boot_config c = config(gz, gz_n, NULL, 0);
	void *out;
	size_t out_n;

	assert_true(spk_arm64_image_is_gzip(gz, gz_n));
	assert_false(spk_arm64_image_is_gzip(img, 300000));
	assert_int_equal(spk_arm64_boot_load(f->mem, &c, &b), 0);
	assert_true(b.gzip);
	assert_memory_equal(f->ram, img, 300000);
	/* a bound below the output */
	assert_int_equal(spk_arm64_gunzip(gz, gz_n, 299999, &out, &out_n), -E2BIG);
	assert_null(out);
	assert_int_equal(spk_arm64_gunzip(gz, gz_n, 300000, &out, &out_n), 0);
	assert_int_equal(out_n, 300000);
	free(out);
	/* truncated and corrupt streams */
	assert_int_equal(spk_arm64_gunzip(gz, gz_n / 2, 1 << 20, &out, &out_n), -ENOEXEC);
	c.kernel_size = gz_n / 2;
	assert_int_equal(spk_arm64_boot_load(f->mem, &c, &b), -ENOEXEC);
	gz[gz_n / 2] ^= 0xff;
	gz[gz_n / 2 + 1] ^= 0x55;
	assert_true(spk_arm64_gunzip(gz, gz_n, 1 << 20, &out, &out_n) < 0);
	assert_null(out);
	free(gz);
	/* a gzip of something that is not an Image */
	memset(img + 56, 0, 4);
	gz = gzip(img, 300000, &gz_n);
	c = config(gz, gz_n, NULL, 0);
	assert_int_equal(spk_arm64_boot_load(f->mem, &c, &b), -ENOEXEC);
	free(gz);
	free(img);
}
#else
static void test_gzip(void **state)
{
	void *out;
	size_t n;
	const uint8_t gz[4] = {0x1f, 0x8b, 8, 0};

	assert_int_equal(spk_arm64_gunzip(gz, 4, 4096, &out, &n), -ENOTSUP);
	assert_non_null(strstr(spk_last_error(), "zlib"));
}
#endif

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse),
	    cmocka_unit_test(test_parse_hostile),
	    cmocka_unit_test_setup_teardown(test_load, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_load_refusals, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_gzip, setup, teardown),
	};

	spk_log_set(NULL, NULL, SPK_LOG_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
