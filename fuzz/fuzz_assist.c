/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for the instruction assists' decoder and executor
 * (src/kvm/assist.c) without KVM: any instruction bytes, any registers and
 * control registers, any page translation, against a small guest memory.
 * Checked on every input:
 *
 *   - guest memory changes only through stmxcsr completing: at most 4
 *     bytes, never in the read-only region (the executor has no other way
 *     to memory than the checked accessor; ASan catches a host access
 *     outside it, the snapshot catches a write the instruction must not
 *     make);
 *   - a result that is not DONE or an int3 leaves RIP and every general
 *     register as they were; DONE moves RIP by the decoded length;
 *   - an exception is one a CPU raises for these instructions (#BP, #UD,
 *     #NM, #SS, #GP, #PF), with an error code exactly for #SS/#GP/#PF and
 *     CR2 exactly for #PF;
 *   - MXCSR is set only by a completed ldmxcsr, never with reserved bits;
 *   - spk_assist_decode() agrees with what the executor decoded.
 *
 * Input (bytes past the end read as 0): flags byte (bit 0 CPL3, bit 1 not
 * 64-bit, bit 2 CR0.EM, bit 3 CR0.TS, bit 4 CR0.MP, bit 5 no CR4.OSFXSR,
 * bit 6 CR4.LA57, bit 7 put the bytes at RIP in guest memory), a length
 * byte (% 16) and 15 instruction bytes, RIP, RFLAGS, 16 registers, FS and
 * GS base (u64 each), a translation mode byte and a u64 key, MXCSR (u32).
 * Guest memory: 64 KiB of RAM at 0, 4 KiB read-only at 64 KiB, an
 * unpopulated page at 128 KiB; gpas the translation gives may be anywhere
 * below 1 MiB.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sparkler/sparkler.h>

#include "kvm/assist.h"

#define RAM_SIZE 0x10000u
#define ROM_SIZE 0x1000u

static uint8_t *ram, *rom;
static struct spk_mem *mem;

struct input {
	const uint8_t *p;
	size_t n, at;
};

static uint8_t take8(struct input *in)
{
	return in->at < in->n ? in->p[in->at++] : 0;
}

static uint64_t take64(struct input *in)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v |= (uint64_t)take8(in) << (8 * i);
	return v;
}

struct fuzz_ctx {
	uint8_t mode;
	uint64_t key;
	uint32_t mxcsr;
	bool mxcsr_set;
	unsigned translations;
};

/* Modes: 0 identity below 128 KiB, 1 xor key, 2 nothing present,
 * 3 present unless the page number's low bit equals the key's. */
static int fuzz_translate(void *opaque, uint64_t gva, struct spk_assist_xlate *out)
{
	struct fuzz_ctx *c = opaque;

	if (++c->translations > 8) {
		fprintf(stderr, "more than 8 translations for one instruction\n");
		abort();
	}
	out->valid = true;
	switch (c->mode % 5) {
	case 0:
		out->gpa = gva & 0x1f000;
		break;
	case 1:
		out->gpa = (gva ^ c->key) & 0xff000;
		break;
	case 2:
		out->valid = false;
		out->gpa = 0;
		break;
	case 3:
		out->valid = ((gva >> 12) & 1) != (c->key & 1);
		out->gpa = gva & 0xf000;
		break;
	default:
		return -5; /* the ioctl failed: -EIO */
	}
	return 0;
}

static int fuzz_get_mxcsr(void *opaque, uint32_t *v)
{
	*v = ((struct fuzz_ctx *)opaque)->mxcsr;
	return 0;
}

static int fuzz_set_mxcsr(void *opaque, uint32_t v)
{
	struct fuzz_ctx *c = opaque;

	c->mxcsr = v;
	c->mxcsr_set = true;
	return 0;
}

static void setup(void)
{
	if (mem)
		return;
	ram = calloc(1, RAM_SIZE);
	rom = calloc(1, ROM_SIZE);
	if (!ram || !rom || spk_mem_new(&mem) < 0 ||
	    spk_mem_add(mem, 0, RAM_SIZE, SPK_MEM_RAM, ram, "ram") < 0 ||
	    spk_mem_add(mem, RAM_SIZE, ROM_SIZE, SPK_MEM_READONLY, rom, "rom") < 0 ||
	    spk_mem_add(mem, 0x20000, 0x1000, SPK_MEM_UNPOPULATED, NULL, "hole") < 0)
		abort();
}

#define CHECK(c)                                                                                   \
	do {                                                                                       \
		if (!(c)) {                                                                        \
			fprintf(stderr, "check failed: %s (line %d)\n", #c, __LINE__);             \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t ram_before[RAM_SIZE], rom_before[ROM_SIZE];
	struct input in = {data, size, 0};
	struct spk_assist_cpu cpu = {0}, before;
	struct fuzz_ctx ctx = {0};
	struct spk_assist_outcome out;
	uint8_t bytes[SPK_ASSIST_INSN_MAX];

	setup();
	uint8_t flags = take8(&in);
	unsigned n = take8(&in) % 16;
	for (unsigned i = 0; i < sizeof(bytes); i++)
		bytes[i] = take8(&in);
	cpu.rip = take64(&in);
	cpu.rflags = take64(&in);
	for (int i = 0; i < 16; i++)
		cpu.gpr[i] = take64(&in);
	cpu.fs_base = take64(&in);
	cpu.gs_base = take64(&in);
	ctx.mode = take8(&in);
	ctx.key = take64(&in);
	ctx.mxcsr = (uint32_t)take64(&in);
	cpu.cpl = (flags & 1) ? 3 : 0;
	cpu.long64 = !(flags & 2);
	cpu.cr0 = 1 | ((flags & 4) ? 4 : 0) | ((flags & 8) ? 8 : 0) | ((flags & 16) ? 2 : 0);
	cpu.cr4 = ((flags & 32) ? 0 : 1u << 9) | ((flags & 64) ? 1u << 12 : 0);
	cpu.efer = cpu.long64 ? 0x500 : 0;

	memset(ram, 0, RAM_SIZE);
	memset(rom, 0, ROM_SIZE);
	/* the rest of the input is guest RAM, so memory operands read something */
	if (in.at < size)
		memcpy(ram, data + in.at, size - in.at < RAM_SIZE ? size - in.at : RAM_SIZE);
	if (flags & 128) {
		/* put the bytes where RIP translates to, so the refetch matches */
		struct fuzz_ctx probe = ctx;
		for (unsigned i = 0; i < n; i++) {
			struct spk_assist_xlate x = {0};
			uint64_t va = cpu.rip + i;

			probe.translations = 0;
			if (fuzz_translate(&probe, va & ~4095ull, &x) == 0 && x.valid)
				spk_mem_write(mem, x.gpa + (va & 4095), &bytes[i], 1);
		}
	}
	memcpy(ram_before, ram, RAM_SIZE);
	memcpy(rom_before, rom, ROM_SIZE);
	before = cpu;
	uint32_t mxcsr_before = ctx.mxcsr;

	const struct spk_assist_env env = {
	    .mem = mem,
	    .translate = fuzz_translate,
	    .get_mxcsr = fuzz_get_mxcsr,
	    .set_mxcsr = fuzz_set_mxcsr,
	    .opaque = &ctx,
	};
	enum spk_assist_result r = spk_assist_exec(bytes, n, &cpu, &env, &out);

	/* memory: only a completed stmxcsr writes, 4 bytes at most, never the ROM */
	CHECK(memcmp(rom, rom_before, ROM_SIZE) == 0);
	unsigned changed = 0;
	for (unsigned i = 0; i < RAM_SIZE; i++)
		changed += ram[i] != ram_before[i];
	CHECK(changed <= 4);
	if (changed)
		CHECK(r == SPK_ASSIST_DONE && out.insn == SPK_ASSIST_STMXCSR);

	/* MXCSR: only a completed ldmxcsr, only valid values */
	if (ctx.mxcsr_set)
		CHECK(r == SPK_ASSIST_DONE && out.insn == SPK_ASSIST_LDMXCSR &&
		      (ctx.mxcsr & ~0xffffu) == 0);
	else
		CHECK(ctx.mxcsr == mxcsr_before);

	enum spk_assist_insn insn;
	unsigned len;
	bool listed = spk_assist_decode(bytes, n, &insn, &len);
	switch (r) {
	case SPK_ASSIST_NOT_LISTED:
		CHECK(memcmp(&cpu, &before, sizeof(cpu)) == 0);
		break;
	case SPK_ASSIST_DONE:
		CHECK(listed && insn == out.insn && len == out.len && len <= n);
		CHECK(cpu.rip == before.rip + len);
		if (insn != SPK_ASSIST_POPCNT)
			CHECK(memcmp(cpu.gpr, before.gpr, sizeof(cpu.gpr)) == 0);
		break;
	case SPK_ASSIST_EXCEPTION:
		CHECK(listed && insn == out.insn);
		CHECK(memcmp(cpu.gpr, before.gpr, sizeof(cpu.gpr)) == 0);
		CHECK(cpu.rflags == before.rflags);
		if (out.vector == 3) {
			CHECK(insn == SPK_ASSIST_INT3 && cpu.cpl == 0 && !out.fault);
			CHECK(cpu.rip == before.rip + 1 && !out.has_error);
		} else {
			CHECK(out.fault && cpu.rip == before.rip);
			CHECK(out.vector == 6 || out.vector == 7 || out.vector == 12 ||
			      out.vector == 13 || out.vector == 14);
			CHECK(out.has_error == (out.vector >= 12));
			CHECK(out.set_cr2 == (out.vector == 14));
		}
		break;
	case SPK_ASSIST_REFETCH:
	case SPK_ASSIST_FAILED:
		CHECK(listed);
		CHECK(memcmp(&cpu, &before, sizeof(cpu)) == 0);
		break;
	default:
		CHECK(0);
	}
	return 0;
}
