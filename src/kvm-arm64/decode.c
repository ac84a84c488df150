/* SPDX-License-Identifier: Apache-2.0 */
/*
 * KVM/arm64 backend: pure decoding of guest values (no KVM), so that
 * tests/unit can check it on any host: the load/store at the PC of an
 * MMIO exit, and the MPIDR of a PSCI CPU_ON.
 */
#include "kvm-arm64/arm64.h"

bool spk_a64_decode_ldst(uint32_t insn, unsigned width, int8_t *reg, uint8_t *reg_width,
                         bool *sign_ext)
{
	unsigned size = insn >> 30, opc = (insn >> 22) & 3;
	bool form;

	/* bits 29..27 = 111, bit 26 (SIMD&FP) = 0 */
	if (((insn >> 26) & 0xf) != 0xe)
		return false;
	switch ((insn >> 24) & 3) {
	case 1: /* unsigned immediate offset */
		form = true;
		break;
	case 0: /* unscaled/unprivileged/pre/post immediate, or register offset */
		form = !(insn & (1u << 21)) || ((insn >> 10) & 3) == 2;
		break;
	default:
		form = false;
	}
	if (!form || (1u << size) != width)
		return false;
	switch (opc) {
	case 0: /* store */
	case 1: /* load, zero-extending */
		*reg_width = size == 3 ? 64 : 32;
		*sign_ext = false;
		break;
	case 2: /* ldrs* into an X register (size 3: prfm) */
		if (size == 3)
			return false;
		*reg_width = 64;
		*sign_ext = true;
		break;
	default: /* ldrs* into a W register */
		if (size >= 2)
			return false;
		*reg_width = 32;
		*sign_ext = true;
	}
	*reg = (int8_t)(insn & 0x1f);
	return true;
}

/*
 * KVM/arm64 gives vCPU n the MPIDR Aff0 = n & 15, Aff1 = (n >> 4) & 0xff,
 * Aff2 = (n >> 12) & 0xff (and bit 31, RES1, which PSCI callers may
 * leave out). Anything else names no vCPU of ours.
 */
uint64_t spk_a64_mpidr_to_id(uint64_t mpidr)
{
	uint64_t aff0 = mpidr & 0xff, aff1 = (mpidr >> 8) & 0xff, aff2 = (mpidr >> 16) & 0xff;

	mpidr &= ~(1ull << 31);
	if (mpidr & ~0xffffffull || aff0 > 15)
		return UINT64_MAX;
	return aff0 | aff1 << 4 | aff2 << 12;
}
