/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for the ELF loader: arbitrary bytes as the image. It
 * asserts nothing; the sanitizers catch any read outside the image or
 * write outside guest memory.
 *
 * Guest memory: 2 MiB of RAM at 0, a small read-only region right after
 * it (so segments can span two regions) and an unpopulated region after
 * a gap (so "in a region, but not backed" is reached too).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <sparkler/loader.h>
#include <sparkler/log.h>
#include <sparkler/mem.h>

#define RAM_SIZE  (2u << 20)
#define ROM_SIZE  (64u << 10)
#define HOLE_GPA  (4u << 20)
#define HOLE_SIZE (64u << 10)

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct spk_mem *mem;

/* Refusals are the common case: keep them off stderr. */
static void quiet(enum spk_log_level level, const char *msg, void *opaque)
{
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	/* Leaked on purpose: the guest lives as long as the fuzzer. */
	void *ram = calloc(1, RAM_SIZE);
	void *rom = calloc(1, ROM_SIZE);

	spk_log_set(quiet, NULL, SPK_LOG_ERROR);
	if (!ram || !rom || spk_mem_new(&mem) ||
	    spk_mem_add(mem, 0, RAM_SIZE, SPK_MEM_RAM, ram, "ram") ||
	    spk_mem_add(mem, RAM_SIZE, ROM_SIZE, SPK_MEM_READONLY, rom, "rom") ||
	    spk_mem_add(mem, HOLE_GPA, HOLE_SIZE, SPK_MEM_UNPOPULATED, NULL, "hole"))
		abort(); /* a broken harness, not a finding */
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct spk_elf_info info;

	spk_elf_load(mem, data, size, &info);
	return 0;
}
