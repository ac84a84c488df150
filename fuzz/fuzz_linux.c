/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for the Linux loaders (bzImage, ELF vmlinux, PVH):
 * arbitrary bytes as the kernel, with a small initrd and command line,
 * into 64 MiB of guest RAM. The sanitizers catch any read outside the
 * image or write outside guest memory.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <sparkler/linux.h>
#include <sparkler/log.h>
#include <sparkler/mem.h>
#include <sparkler/platform.h>

#define RAM_SIZE (64u << 20)

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct spk_mem *mem;
static const uint8_t initrd[4096] = {0x30, 0x37, 0x30, 0x37};

static void quiet(enum spk_log_level level, const char *msg, void *opaque)
{
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	void *ram = calloc(1, RAM_SIZE); /* lives as long as the fuzzer */

	spk_log_set(quiet, NULL, SPK_LOG_ERROR);
	if (!ram || spk_mem_new(&mem) || spk_mem_add(mem, 0, RAM_SIZE, SPK_MEM_RAM, ram, "ram"))
		abort();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct spk_linux_boot boot;
	const struct spk_linux_config cfg = {
		.kernel = data,
		.kernel_size = size,
		.initrd = initrd,
		.initrd_size = size & 1 ? sizeof(initrd) : 0,
		.cmdline = "console=ttyS0",
		.mem_size = RAM_SIZE,
		.rsdp = SPK_PC_ACPI_START,
		.no_pvh = size & 2,
	};

	spk_linux_load(mem, &cfg, &boot);
	return 0;
}
