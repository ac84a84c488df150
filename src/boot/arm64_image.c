// SPDX-License-Identifier: Apache-2.0
/*
 * The arm64 Linux Image loader (sparkler/arm64_boot.h). The header, from
 * Documentation/arch/arm64/booting.rst, all little-endian:
 *   0  code0, 4 code1    (the branch to the kernel's start)
 *   8  text_offset       (from a 2 MiB-aligned base)
 *   16 image_size        (bytes the kernel occupies, BSS included; 0 before 3.17)
 *   24 flags             (bit 0 big-endian, bits 1-2 page size, bit 3 any base)
 *   32 res2, res3, res4
 *   56 magic "ARM\x64"
 *   60 res5              (offset of a PE header for EFI)
 * The kernel is entered at its load address with the MMU off, x0 = the
 * DTB's physical address and x1..x3 = 0 (the vCPU set-up is the machine's).
 * An Image.gz (what some distributions ship as vmlinuz) is decompressed on
 * the host with zlib, when the build has it; the kernel's own EFI stub
 * decompressor (vmlinuz.efi, "zimg") is not supported.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sparkler/arm64_boot.h>

#include "core/internal.h"

#ifdef SPK_HAVE_ZLIB
#include <zlib.h>
#endif

#define PAGE 4096ull

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd64(const uint8_t *p)
{
	return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

int spk_arm64_image_parse(const void *image, size_t size, struct spk_arm64_image *out)
{
	const uint8_t *h = image;
	struct spk_arm64_image img;
	static const unsigned page_kib[4] = {0, 4, 16, 64};

	if (!image || !out)
		return spk_fail(EINVAL, "arm64 image: no %s",
		                image ? "place for the result" : "image");
	if (size < SPK_ARM64_IMAGE_HEADER)
		return spk_fail(ENOEXEC, "arm64 image: %zu bytes, shorter than its %d-byte header",
		                size, SPK_ARM64_IMAGE_HEADER);
	if (rd32(h + 56) != SPK_ARM64_IMAGE_MAGIC)
		return spk_fail(ENOEXEC,
		                "arm64 image: no \"ARM\\x64\" magic at offset 56 (0x%08x): "
		                "not an arm64 Linux Image",
		                rd32(h + 56));
	img.text_offset = rd64(h + 8);
	img.image_size = rd64(h + 16);
	img.flags = rd64(h + 24);
	img.anywhere = img.flags & 8;
	img.page_kib = page_kib[(img.flags >> 1) & 3];
	if (img.flags & 1)
		return spk_fail(ENOEXEC, "arm64 image: a big-endian kernel (flags 0x%llx)",
		                (unsigned long long)img.flags);
	if (!img.image_size)
		return spk_fail(ENOEXEC, "arm64 image: image_size is 0 (a kernel older than 3.17): "
		                         "not supported");
	if (img.text_offset >= SPK_ARM64_KERNEL_ALIGN || (img.text_offset & 7))
		return spk_fail(ENOEXEC,
		                "arm64 image: text_offset 0x%llx is not an 8-byte aligned "
		                "offset below 2 MiB",
		                (unsigned long long)img.text_offset);
	if (img.image_size > SPK_ARM64_IMAGE_MAX)
		return spk_fail(ENOEXEC,
		                "arm64 image: image_size 0x%llx is larger than the %llu MiB "
		                "accepted",
		                (unsigned long long)img.image_size, SPK_ARM64_IMAGE_MAX >> 20);
	if (size > img.image_size)
		return spk_fail(ENOEXEC,
		                "arm64 image: the file (%zu bytes) is larger than its "
		                "image_size (%llu)",
		                size, (unsigned long long)img.image_size);
	*out = img;
	return 0;
}

bool spk_arm64_image_is_gzip(const void *data, size_t size)
{
	const uint8_t *p = data;

	return data && size >= 2 && p[0] == 0x1f && p[1] == 0x8b;
}

#ifdef SPK_HAVE_ZLIB
int spk_arm64_gunzip(const void *gz, size_t size, size_t max, void **out, size_t *out_size)
{
	z_stream zs;
	uint8_t *buf;
	size_t cap;
	int zr, rc;

	if (!gz || !out || !out_size || !max)
		return spk_fail(EINVAL, "gunzip: bad arguments");
	*out = NULL;
	*out_size = 0;
	if (size > UINT32_MAX)
		return spk_fail(E2BIG, "gunzip: %zu bytes of input is too much", size);
	/* start at 4x the input, grow to max */
	cap = size < max / 4 ? size * 4 : max;
	if (cap < 4096)
		cap = max < 4096 ? max : 4096;
	buf = malloc(cap);
	if (!buf)
		return spk_fail(ENOMEM, "gunzip: out of memory");
	memset(&zs, 0, sizeof(zs));
	if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) { /* gzip header only */
		free(buf);
		return spk_fail(ENOMEM, "gunzip: inflateInit2 failed");
	}
	zs.next_in = (Bytef *)gz;
	zs.avail_in = (uInt)size;
	for (;;) {
		if (zs.total_out == cap) {
			size_t ncap;
			uint8_t *nb;

			if (cap >= max) {
				rc = spk_fail(E2BIG, "gunzip: the output is larger than %zu bytes",
				              max);
				goto fail;
			}
			ncap = cap > max / 2 ? max : cap * 2;
			nb = realloc(buf, ncap);
			if (!nb) {
				rc = spk_fail(ENOMEM, "gunzip: out of memory for %zu bytes", ncap);
				goto fail;
			}
			buf = nb;
			cap = ncap;
		}
		zs.next_out = buf + zs.total_out;
		zs.avail_out =
		    (uInt)((cap - zs.total_out) > UINT32_MAX ? UINT32_MAX : cap - zs.total_out);
		zr = inflate(&zs, Z_NO_FLUSH);
		if (zr == Z_STREAM_END)
			break;
		if (zr == Z_OK)
			continue;
		if (zr == Z_BUF_ERROR && zs.avail_out) { /* no input left: truncated */
			rc = spk_fail(ENOEXEC, "gunzip: truncated stream after %lu bytes of output",
			              (unsigned long)zs.total_out);
			goto fail;
		}
		if (zr == Z_BUF_ERROR)
			continue;
		rc = spk_fail(ENOEXEC, "gunzip: corrupt stream (%s)",
		              zs.msg ? zs.msg : "zlib error");
		goto fail;
	}
	*out_size = zs.total_out;
	*out = buf;
	inflateEnd(&zs);
	return 0;
fail:
	inflateEnd(&zs);
	free(buf);
	return rc;
}
#else
int spk_arm64_gunzip(const void *gz, size_t size, size_t max, void **out, size_t *out_size)
{
	if (out)
		*out = NULL;
	if (out_size)
		*out_size = 0;
	return spk_fail(ENOTSUP, "an Image.gz needs zlib, and this build has none: give the "
	                         "kernel uncompressed (gunzip it)");
}
#endif

int spk_arm64_boot_layout(const struct spk_arm64_boot_config *cfg,
                          const struct spk_arm64_image *img, struct spk_arm64_boot *boot)
{
	uint64_t ram_end, dtb_max, dtb_addr, initrd_start;

	if (!cfg || !img || !boot)
		return spk_fail(EINVAL, "arm64 boot: bad arguments");
	if (cfg->ram_base & (SPK_ARM64_KERNEL_ALIGN - 1))
		return spk_fail(EINVAL, "arm64 boot: RAM base 0x%llx is not 2 MiB aligned",
		                (unsigned long long)cfg->ram_base);
	if (cfg->initrd_size && !cfg->initrd)
		return spk_fail(EINVAL, "arm64 boot: initrd size without an initrd");
	dtb_max = cfg->dtb_max ? cfg->dtb_max : SPK_ARM64_DTB_MAX;
	if (dtb_max > SPK_ARM64_DTB_MAX)
		return spk_fail(EINVAL, "arm64 boot: DTB room 0x%llx above the 2 MiB maximum",
		                (unsigned long long)dtb_max);
	if (cfg->ram_base + cfg->ram_size < cfg->ram_base)
		return spk_fail(EINVAL, "arm64 boot: RAM 0x%llx+0x%llx wraps",
		                (unsigned long long)cfg->ram_base,
		                (unsigned long long)cfg->ram_size);
	ram_end = cfg->ram_base + cfg->ram_size;
	memset(boot, 0, sizeof(*boot));
	boot->image = *img;
	boot->dtb_max = dtb_max;
	/* text_offset < 2 MiB and image_size <= 256 MiB (parse): no wrap
	 * unless the RAM itself ends near 2^64, checked here. */
	boot->entry = cfg->ram_base + img->text_offset;
	boot->kernel_end = boot->entry + img->image_size;
	if (boot->kernel_end < boot->entry || boot->kernel_end > ram_end)
		return spk_fail(E2BIG,
		                "arm64 boot: the kernel (0x%llx bytes at 0x%llx) does not fit "
		                "in %llu MiB of RAM",
		                (unsigned long long)img->image_size,
		                (unsigned long long)boot->entry,
		                (unsigned long long)(cfg->ram_size >> 20));
	/* The DTB: its own 2 MiB block at the top of RAM. */
	if (ram_end < dtb_max)
		return spk_fail(E2BIG, "arm64 boot: no room for the DTB");
	dtb_addr = (ram_end - dtb_max) & ~(SPK_ARM64_KERNEL_ALIGN - 1);
	if (dtb_addr < boot->kernel_end)
		return spk_fail(E2BIG,
		                "arm64 boot: no room for the DTB above the kernel (which ends "
		                "at 0x%llx) in %llu MiB of RAM",
		                (unsigned long long)boot->kernel_end,
		                (unsigned long long)(cfg->ram_size >> 20));
	boot->dtb_addr = dtb_addr;
	if (!cfg->initrd)
		return 0;
	if (cfg->initrd_size > dtb_addr - boot->kernel_end)
		return spk_fail(E2BIG,
		                "arm64 boot: the initrd (%zu bytes) does not fit between the "
		                "kernel (ending at 0x%llx) and the DTB (0x%llx)",
		                cfg->initrd_size, (unsigned long long)boot->kernel_end,
		                (unsigned long long)dtb_addr);
	initrd_start = (dtb_addr - cfg->initrd_size) & ~(PAGE - 1);
	if (initrd_start < boot->kernel_end)
		return spk_fail(E2BIG,
		                "arm64 boot: the initrd (%zu bytes) does not fit between the "
		                "kernel and the DTB once page aligned",
		                cfg->initrd_size);
	boot->initrd_start = initrd_start;
	boot->initrd_end = initrd_start + cfg->initrd_size;
	return 0;
}

int spk_arm64_boot_load(struct spk_mem *mem, const struct spk_arm64_boot_config *cfg,
                        struct spk_arm64_boot *boot)
{
	const void *kernel;
	size_t kernel_size;
	void *unpacked = NULL;
	struct spk_arm64_image img;
	int rc;

	if (!mem || !cfg || !boot || !cfg->kernel)
		return spk_fail(EINVAL, "arm64 boot: no %s",
		                !mem    ? "memory"
		                : !cfg  ? "config"
		                : !boot ? "place for the layout"
		                        : "kernel");
	kernel = cfg->kernel;
	kernel_size = cfg->kernel_size;
	if (spk_arm64_image_is_gzip(kernel, kernel_size)) {
		rc = spk_arm64_gunzip(kernel, kernel_size, SPK_ARM64_IMAGE_MAX, &unpacked,
		                      &kernel_size);
		if (rc)
			return rc;
		kernel = unpacked;
	}
	rc = spk_arm64_image_parse(kernel, kernel_size, &img);
	if (rc)
		goto out;
	rc = spk_arm64_boot_layout(cfg, &img, boot);
	if (rc)
		goto out;
	boot->gzip = unpacked != NULL;
	/* Every piece is inside guest memory before anything is written. */
	if (!spk_mem_ptr(mem, boot->entry, img.image_size, SPK_MEM_W | SPK_MEM_LOAD) ||
	    !spk_mem_ptr(mem, boot->dtb_addr, boot->dtb_max, SPK_MEM_W | SPK_MEM_LOAD) ||
	    (cfg->initrd && cfg->initrd_size &&
	     !spk_mem_ptr(mem, boot->initrd_start, cfg->initrd_size, SPK_MEM_W | SPK_MEM_LOAD))) {
		rc = spk_fail(EFAULT,
		              "arm64 boot: guest memory does not cover the kernel, initrd "
		              "and DTB (0x%llx-0x%llx)",
		              (unsigned long long)boot->entry,
		              (unsigned long long)(boot->dtb_addr + boot->dtb_max));
		goto out;
	}
	rc = spk_mem_load(mem, boot->entry, kernel, kernel_size);
	/* the BSS past the file: zero, whatever a previous boot left */
	if (!rc && img.image_size > kernel_size) {
		void *bss = spk_mem_ptr(mem, boot->entry + kernel_size,
		                        img.image_size - kernel_size, SPK_MEM_W | SPK_MEM_LOAD);

		if (bss)
			memset(bss, 0, img.image_size - kernel_size);
	}
	if (!rc && cfg->initrd && cfg->initrd_size)
		rc = spk_mem_load(mem, boot->initrd_start, cfg->initrd, cfg->initrd_size);
out:
	free(unpacked);
	return rc;
}

int spk_arm64_boot_put_dtb(struct spk_mem *mem, const struct spk_arm64_boot *boot, const void *dtb,
                           size_t size)
{
	if (!mem || !boot || !dtb || !size)
		return spk_fail(EINVAL, "arm64 boot: no %s",
		                !mem    ? "memory"
		                : !boot ? "layout"
		                        : "DTB");
	if (size > boot->dtb_max)
		return spk_fail(E2BIG,
		                "arm64 boot: the DTB (%zu bytes) is larger than the 0x%llx "
		                "kept for it",
		                size, (unsigned long long)boot->dtb_max);
	return spk_mem_load(mem, boot->dtb_addr, dtb, size);
}
