/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Instruction assists: completing, in userspace, the few instructions that
 * KVM's emulator refuses on PVM hosts (include/sparkler/assist.h).
 *
 * On PVM every instruction of guest CPL0 code goes through KVM's x86
 * emulator; a stock Linux kernel meets instructions it does not know
 * (int3 in its self-test, popcnt, clac/stac around every user copy, fwait,
 * ldmxcsr in kernel_fpu_begin) and the vCPU stops with an emulation
 * failure carrying the bytes. vcpu.c hands those to spk_kvm_assist().
 *
 * The rules, because the bytes and every register are the guest's:
 *  - decode strictly: only the listed opcodes with the listed prefixes, in
 *    64-bit mode; anything else is reported as before;
 *  - the bytes KVM reported are fetched again at RIP (KVM_TRANSLATE, then
 *    the checked accessor) and must be the same, else the vCPU simply runs
 *    the instruction again (another vCPU rewrote it: alternatives, text
 *    poking);
 *  - a memory operand is computed as the CPU does (ModRM, SIB, disp,
 *    RIP-relative, FS/GS base), checked for canonical form (#GP, or #SS
 *    for RSP/RBP-based addresses), translated page by page (#PF when a
 *    page is not present) and accessed only through the accessor (#GP when
 *    it is not guest RAM); nothing is written before every page checks;
 *  - the CPU's own conditions come first: #UD for ldmxcsr/stmxcsr with
 *    CR0.EM or without CR4.OSFXSR, #NM with CR0.TS (fwait: TS and MP),
 *    #UD for clac/stac above CPL0, #GP for reserved MXCSR bits.
 * Known gaps: KVM_TRANSLATE does not report page permissions, so a write
 * through a read-only or a user page (SMAP) is not faulted; fwait does
 * not raise #MF for a pending x87 exception.
 *
 * spk_assist_exec() is the executor without KVM (the fuzz target drives
 * it); spk_kvm_assist() at the end is the KVM side.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>

#include "core/internal.h"
#include "kvm/assist.h"
#include "kvm/kvm.h"

#define RFLAGS_CF    (1ull << 0)
#define RFLAGS_PF    (1ull << 2)
#define RFLAGS_AF    (1ull << 4)
#define RFLAGS_ZF    (1ull << 6)
#define RFLAGS_SF    (1ull << 7)
#define RFLAGS_OF    (1ull << 11)
#define RFLAGS_AC    (1ull << 18)
#define RFLAGS_ARITH (RFLAGS_CF | RFLAGS_PF | RFLAGS_AF | RFLAGS_ZF | RFLAGS_SF | RFLAGS_OF)

#define CR0_MP     (1ull << 1)
#define CR0_EM     (1ull << 2)
#define CR0_TS     (1ull << 3)
#define CR4_OSFXSR (1ull << 9)
#define CR4_LA57   (1ull << 12)

#define VEC_BP 3
#define VEC_UD 6
#define VEC_NM 7
#define VEC_SS 12
#define VEC_GP 13
#define VEC_PF 14

#define PF_PRESENT 1u
#define PF_WRITE   2u
#define PF_USER    4u

/* MXCSR bits a CPU with DAZ accepts (MXCSR_MASK of every x86-64 CPU KVM runs on). */
#define MXCSR_MASK 0xffffu

#define REG_RSP 4
#define REG_RBP 5

static const char *const names[SPK_ASSIST__COUNT] = {
    [SPK_ASSIST_INT3] = "int3",       [SPK_ASSIST_POPCNT] = "popcnt",
    [SPK_ASSIST_CLAC] = "clac",       [SPK_ASSIST_STAC] = "stac",
    [SPK_ASSIST_FWAIT] = "fwait",     [SPK_ASSIST_LDMXCSR] = "ldmxcsr",
    [SPK_ASSIST_STMXCSR] = "stmxcsr",
};

const char *spk_assist_name(unsigned insn)
{
	return insn < SPK_ASSIST__COUNT ? names[insn] : "?";
}

/* ---- decoding --------------------------------------------------------------------- */

/* What the decoder found: the instruction and, for memory forms, its operand. */
struct decoded {
	enum spk_assist_insn insn;
	unsigned len;
	uint8_t rex;
	uint8_t seg; /* 0, 0x64 (FS) or 0x65 (GS) */
	uint8_t modrm;
	bool has_sib;
	uint8_t sib;
	int32_t disp;
};

/* The ModRM memory form's length after the ModRM byte (SIB and
 * displacement), filling d. false when n bytes do not hold it. */
static bool decode_mem(const uint8_t *b, unsigned n, unsigned at, struct decoded *d)
{
	unsigned mod = d->modrm >> 6, rm = d->modrm & 7;

	if (rm == 4) {
		if (at >= n)
			return false;
		d->has_sib = true;
		d->sib = b[at++];
	}
	unsigned disp_len = mod == 1 ? 1 : mod == 2 ? 4 : 0;
	if (mod == 0 && (rm == 5 || (d->has_sib && (d->sib & 7) == 5)))
		disp_len = 4;
	if (at + disp_len > n)
		return false;
	if (disp_len == 1) {
		d->disp = b[at] < 0x80 ? (int32_t)b[at] : (int32_t)b[at] - 256; /* disp8 */
	} else if (disp_len == 4) {
		uint32_t v = (uint32_t)b[at] | (uint32_t)b[at + 1] << 8 |
		             (uint32_t)b[at + 2] << 16 | (uint32_t)b[at + 3] << 24;
		d->disp = (int32_t)v;
	}
	d->len = at + disp_len;
	return true;
}

static bool decode(const uint8_t *b, unsigned n, struct decoded *d)
{
	unsigned i = 0;
	bool rep = false;

	memset(d, 0, sizeof(*d));
	if (n > SPK_ASSIST_INSN_MAX)
		n = SPK_ASSIST_INSN_MAX;
	/* legacy prefixes: only F3 (popcnt) and one FS/GS override (mxcsr) */
	for (; i < n; i++) {
		if (b[i] == 0xf3 && !rep)
			rep = true;
		else if ((b[i] == 0x64 || b[i] == 0x65) && !d->seg)
			d->seg = b[i];
		else
			break;
	}
	if (i < n && (b[i] & 0xf0) == 0x40)
		d->rex = b[i++];
	if (i >= n)
		return false;
	bool bare = !rep && !d->seg && !d->rex;

	if (b[i] == 0xcc || b[i] == 0x9b) {
		if (!bare)
			return false;
		d->insn = b[i] == 0xcc ? SPK_ASSIST_INT3 : SPK_ASSIST_FWAIT;
		d->len = 1;
		return true;
	}
	if (b[i] != 0x0f || i + 3 > n)
		return false;
	uint8_t op = b[i + 1], modrm = b[i + 2];
	unsigned at = i + 3;

	if (op == 0x01 && (modrm == 0xca || modrm == 0xcb)) {
		if (!bare)
			return false;
		d->insn = modrm == 0xca ? SPK_ASSIST_CLAC : SPK_ASSIST_STAC;
		d->len = at;
		return true;
	}
	if (op == 0xb8) { /* popcnt r, r/m: register form only */
		if (!rep || d->seg || (modrm >> 6) != 3)
			return false;
		d->insn = SPK_ASSIST_POPCNT;
		d->modrm = modrm;
		d->len = at;
		return true;
	}
	if (op == 0xae && !rep && (modrm >> 6) != 3) {
		unsigned reg = (modrm >> 3) & 7;

		if (reg != 2 && reg != 3)
			return false;
		d->insn = reg == 2 ? SPK_ASSIST_LDMXCSR : SPK_ASSIST_STMXCSR;
		d->modrm = modrm;
		return decode_mem(b, n, at, d);
	}
	return false;
}

bool spk_assist_decode(const uint8_t *bytes, unsigned n, enum spk_assist_insn *insn, unsigned *len)
{
	struct decoded d;

	if (!bytes || !decode(bytes, n, &d))
		return false;
	if (insn)
		*insn = d.insn;
	if (len)
		*len = d.len;
	return true;
}

/* ---- execution --------------------------------------------------------------------- */

static void raise(struct spk_assist_outcome *out, uint8_t vector, bool has_error, uint32_t error)
{
	out->vector = vector;
	out->has_error = has_error;
	out->error = error;
	out->fault = vector != VEC_BP;
}

static bool canonical(const struct spk_assist_cpu *cpu, uint64_t va)
{
	unsigned bits = (cpu->cr4 & CR4_LA57) ? 57 : 48;
	int64_t s = (int64_t)(va << (64 - bits)) >> (64 - bits);

	return (uint64_t)s == va;
}

/* The effective linear address of d's memory operand; *ss when the
 * address is based on RSP/RBP (a non-canonical one is #SS, not #GP). */
static uint64_t effective_address(const struct spk_assist_cpu *cpu, const struct decoded *d,
                                  bool *ss)
{
	unsigned mod = d->modrm >> 6, rm = d->modrm & 7;
	unsigned rex_b = d->rex & 1, rex_x = (d->rex >> 1) & 1;
	uint64_t ea = (uint64_t)(int64_t)d->disp;

	*ss = false;
	if (d->has_sib) {
		unsigned scale = d->sib >> 6;
		unsigned index = ((d->sib >> 3) & 7) | rex_x << 3;
		unsigned base = (d->sib & 7) | rex_b << 3;

		if (index != REG_RSP) /* 100 without REX.X: no index */
			ea += cpu->gpr[index] << scale;
		if (!(mod == 0 && (d->sib & 7) == 5)) {
			ea += cpu->gpr[base];
			*ss = (base == REG_RSP || base == REG_RBP);
		}
	} else if (mod == 0 && rm == 5) {
		ea += cpu->rip + d->len; /* RIP-relative: from the next instruction */
	} else {
		unsigned base = rm | rex_b << 3;

		ea += cpu->gpr[base];
		*ss = (base == REG_RSP || base == REG_RBP);
	}
	if (d->seg == 0x64)
		ea += cpu->fs_base;
	else if (d->seg == 0x65)
		ea += cpu->gs_base;
	return ea;
}

/*
 * Translate [va, va + len) (len <= 15, at most two pages) into gpa pieces.
 * 0; -EFAULT with out filled for #PF; another -errno when translate failed.
 */
struct pieces {
	uint64_t gpa[2];
	unsigned len[2];
	unsigned n;
};

static int translate_range(const struct spk_assist_cpu *cpu, const struct spk_assist_env *env,
                           uint64_t va, unsigned len, bool write, struct pieces *p,
                           struct spk_assist_outcome *out)
{
	unsigned done = 0;

	p->n = 0;
	while (done < len && p->n < 2) {
		uint64_t at = va + done;
		unsigned in_page = 4096 - (unsigned)(at & 4095);
		unsigned take = len - done < in_page ? len - done : in_page;
		struct spk_assist_xlate x = {0};
		int rc = env->translate(env->opaque, at & ~4095ull, &x);

		if (rc < 0)
			return rc;
		if (!x.valid || (x.gpa & 4095)) {
			raise(out, VEC_PF, true,
			      (write ? PF_WRITE : 0) | (cpu->cpl == 3 ? PF_USER : 0));
			out->set_cr2 = true;
			out->cr2 = at;
			return -EFAULT;
		}
		p->gpa[p->n] = x.gpa + (at & 4095);
		p->len[p->n] = take;
		p->n++;
		done += take;
	}
	return done == len ? 0 : -EINVAL;
}

/* Read or write the pieces through the accessor; false when a piece is not RAM. */
static bool access_pieces(const struct spk_assist_env *env, const struct pieces *p, void *buf,
                          bool write)
{
	uint8_t *b = buf;

	/* all pieces must be accessible before anything is written */
	for (unsigned i = 0; i < p->n; i++)
		if (!spk_mem_ptr(env->mem, p->gpa[i], p->len[i], write ? SPK_MEM_W : SPK_MEM_R))
			return false;
	for (unsigned i = 0; i < p->n; i++) {
		int rc = write ? spk_mem_write(env->mem, p->gpa[i], b, p->len[i])
		               : spk_mem_read(env->mem, p->gpa[i], b, p->len[i]);
		if (rc < 0)
			return false;
		b += p->len[i];
	}
	return true;
}

static enum spk_assist_result exec_popcnt(struct spk_assist_cpu *cpu, const struct decoded *d)
{
	unsigned reg = ((d->modrm >> 3) & 7) | ((d->rex >> 2) & 1) << 3;
	unsigned rm = (d->modrm & 7) | (d->rex & 1) << 3;
	bool wide = d->rex & 8;
	uint64_t src = wide ? cpu->gpr[rm] : (uint32_t)cpu->gpr[rm];

	cpu->gpr[reg] = (uint64_t)__builtin_popcountll(src); /* a 32-bit result zero-extends */
	cpu->rflags &= ~RFLAGS_ARITH;
	if (src == 0)
		cpu->rflags |= RFLAGS_ZF;
	return SPK_ASSIST_DONE;
}

static enum spk_assist_result exec_mxcsr(struct spk_assist_cpu *cpu,
                                         const struct spk_assist_env *env, const struct decoded *d,
                                         struct spk_assist_outcome *out)
{
	bool store = d->insn == SPK_ASSIST_STMXCSR;
	struct pieces p;
	uint8_t buf[4];
	uint32_t v;
	bool ss;

	if ((cpu->cr0 & CR0_EM) || !(cpu->cr4 & CR4_OSFXSR)) {
		raise(out, VEC_UD, false, 0);
		return SPK_ASSIST_EXCEPTION;
	}
	if (cpu->cr0 & CR0_TS) {
		raise(out, VEC_NM, false, 0);
		return SPK_ASSIST_EXCEPTION;
	}
	uint64_t ea = effective_address(cpu, d, &ss);
	if (!canonical(cpu, ea) || !canonical(cpu, ea + 3)) {
		raise(out, ss ? VEC_SS : VEC_GP, true, 0);
		return SPK_ASSIST_EXCEPTION;
	}
	int rc = translate_range(cpu, env, ea, 4, store, &p, out);
	if (rc == -EFAULT)
		return SPK_ASSIST_EXCEPTION;
	if (rc < 0)
		return SPK_ASSIST_FAILED;
	if (store) {
		if (env->get_mxcsr(env->opaque, &v) < 0)
			return SPK_ASSIST_FAILED;
		memcpy(buf, &v, 4); /* x86 is little-endian, as is the host */
		if (!access_pieces(env, &p, buf, true)) {
			raise(out, VEC_GP, true, 0);
			return SPK_ASSIST_EXCEPTION;
		}
	} else {
		if (!access_pieces(env, &p, buf, false)) {
			raise(out, VEC_GP, true, 0);
			return SPK_ASSIST_EXCEPTION;
		}
		memcpy(&v, buf, 4);
		if (v & ~MXCSR_MASK) {
			raise(out, VEC_GP, true, 0);
			return SPK_ASSIST_EXCEPTION;
		}
		if (env->set_mxcsr(env->opaque, v) < 0)
			return SPK_ASSIST_FAILED;
	}
	cpu->rip += d->len;
	return SPK_ASSIST_DONE;
}

/* Fetch the instruction's bytes again at RIP; REFETCH when they changed. */
static enum spk_assist_result refetch(const struct spk_assist_cpu *cpu,
                                      const struct spk_assist_env *env, const uint8_t *bytes,
                                      unsigned len, struct spk_assist_outcome *out)
{
	uint8_t now[SPK_ASSIST_INSN_MAX];
	struct spk_assist_outcome scratch = *out;
	struct pieces p;
	int rc = translate_range(cpu, env, cpu->rip, len, false, &p, &scratch);

	if (rc == -EFAULT)
		return SPK_ASSIST_REFETCH; /* unmapped meanwhile: the CPU will fault on it */
	if (rc < 0)
		return SPK_ASSIST_FAILED;
	if (!access_pieces(env, &p, now, false))
		return SPK_ASSIST_FAILED; /* code outside RAM: report it */
	return memcmp(now, bytes, len) == 0 ? SPK_ASSIST_DONE : SPK_ASSIST_REFETCH;
}

enum spk_assist_result spk_assist_exec(const uint8_t *bytes, unsigned n, struct spk_assist_cpu *cpu,
                                       const struct spk_assist_env *env,
                                       struct spk_assist_outcome *out)
{
	struct decoded d;

	memset(out, 0, sizeof(*out));
	if (!bytes || !cpu || !env || !env->mem || !env->translate || !cpu->long64 ||
	    !decode(bytes, n, &d))
		return SPK_ASSIST_NOT_LISTED;
	if (d.insn == SPK_ASSIST_INT3 && cpu->cpl != 0)
		return SPK_ASSIST_NOT_LISTED; /* at CPL3 the CPU runs it: not ours */
	out->insn = d.insn;
	out->len = d.len;

	enum spk_assist_result r = refetch(cpu, env, bytes, d.len, out);
	if (r != SPK_ASSIST_DONE)
		return r;

	switch (d.insn) {
	case SPK_ASSIST_INT3:
		cpu->rip += d.len; /* #BP is a trap: the frame holds the next RIP */
		raise(out, VEC_BP, false, 0);
		return SPK_ASSIST_EXCEPTION;
	case SPK_ASSIST_POPCNT:
		exec_popcnt(cpu, &d);
		break;
	case SPK_ASSIST_CLAC:
	case SPK_ASSIST_STAC:
		if (cpu->cpl != 0) {
			raise(out, VEC_UD, false, 0);
			return SPK_ASSIST_EXCEPTION;
		}
		if (d.insn == SPK_ASSIST_CLAC)
			cpu->rflags &= ~RFLAGS_AC;
		else
			cpu->rflags |= RFLAGS_AC;
		break;
	case SPK_ASSIST_FWAIT:
		if ((cpu->cr0 & (CR0_TS | CR0_MP)) == (CR0_TS | CR0_MP)) {
			raise(out, VEC_NM, false, 0);
			return SPK_ASSIST_EXCEPTION;
		}
		break;
	case SPK_ASSIST_LDMXCSR:
	case SPK_ASSIST_STMXCSR:
		if (!env->get_mxcsr || !env->set_mxcsr)
			return SPK_ASSIST_FAILED;
		return exec_mxcsr(cpu, env, &d, out);
	default:
		return SPK_ASSIST_NOT_LISTED;
	}
	cpu->rip += d.len;
	return SPK_ASSIST_DONE;
}

/* ---- the KVM side ------------------------------------------------------------------- */

static int kvm_translate(void *opaque, uint64_t gva, struct spk_assist_xlate *out)
{
	struct spk_vcpu *vcpu = opaque;
	struct kvm_translation tr = {.linear_address = gva};
	int rc = spk_kvm_ioctl(spk_kvm_vcpu(vcpu)->fd, KVM_TRANSLATE, &tr);

	if (rc < 0)
		return rc;
	out->valid = tr.valid;
	out->gpa = tr.physical_address;
	return 0;
}

/*
 * MXCSR through KVM_GET/SET_XSAVE (the legacy region's MXCSR at byte 24,
 * XSTATE_BV at byte 512): KVM_GET_FPU reads the raw FXSAVE image, whose
 * MXCSR field a compacted XSAVES leaves stale while SSE is in its init
 * state (measured on PVM: 0 after loading 0x1f80).
 */
#define XSAVE_MXCSR     24
#define XSAVE_XSTATE_BV 512
#define XFEATURE_SSE    (1ull << 1)

static int kvm_get_mxcsr(void *opaque, uint32_t *mxcsr)
{
	struct spk_vcpu *vcpu = opaque;
	struct kvm_xsave xs;
	int rc = spk_kvm_ioctl(spk_kvm_vcpu(vcpu)->fd, KVM_GET_XSAVE, &xs);

	if (rc < 0)
		return rc;
	memcpy(mxcsr, (const uint8_t *)xs.region + XSAVE_MXCSR, 4);
	return 0;
}

static int kvm_set_mxcsr(void *opaque, uint32_t mxcsr)
{
	struct spk_vcpu *vcpu = opaque;
	struct kvm_xsave xs;
	uint64_t bv;
	int rc = spk_kvm_ioctl(spk_kvm_vcpu(vcpu)->fd, KVM_GET_XSAVE, &xs);

	if (rc < 0)
		return rc;
	memcpy((uint8_t *)xs.region + XSAVE_MXCSR, &mxcsr, 4);
	/* the kernel takes MXCSR from the image only with SSE (or YMM) in
	 * XSTATE_BV; SSE's registers in the image are their init zeros then */
	memcpy(&bv, (const uint8_t *)xs.region + XSAVE_XSTATE_BV, 8);
	bv |= XFEATURE_SSE;
	memcpy((uint8_t *)xs.region + XSAVE_XSTATE_BV, &bv, 8);
	return spk_kvm_ioctl(spk_kvm_vcpu(vcpu)->fd, KVM_SET_XSAVE, &xs);
}

static void to_cpu(struct spk_assist_cpu *c, const struct kvm_regs *r, const struct kvm_sregs *s)
{
	const uint64_t g[16] = {r->rax, r->rcx, r->rdx, r->rbx, r->rsp, r->rbp, r->rsi, r->rdi,
	                        r->r8,  r->r9,  r->r10, r->r11, r->r12, r->r13, r->r14, r->r15};

	memcpy(c->gpr, g, sizeof(g));
	c->rip = r->rip;
	c->rflags = r->rflags;
	c->cr0 = s->cr0;
	c->cr4 = s->cr4;
	c->efer = s->efer;
	c->fs_base = s->fs.base;
	c->gs_base = s->gs.base;
	c->cpl = s->cs.dpl;
	c->long64 = (s->efer & (1u << 10)) && s->cs.l; /* EFER.LMA */
}

static void from_cpu(struct kvm_regs *r, const struct spk_assist_cpu *c)
{
	r->rax = c->gpr[0];
	r->rcx = c->gpr[1];
	r->rdx = c->gpr[2];
	r->rbx = c->gpr[3];
	r->rsp = c->gpr[4];
	r->rbp = c->gpr[5];
	r->rsi = c->gpr[6];
	r->rdi = c->gpr[7];
	r->r8 = c->gpr[8];
	r->r9 = c->gpr[9];
	r->r10 = c->gpr[10];
	r->r11 = c->gpr[11];
	r->r12 = c->gpr[12];
	r->r13 = c->gpr[13];
	r->r14 = c->gpr[14];
	r->r15 = c->gpr[15];
	r->rip = c->rip;
	r->rflags = c->rflags;
}

static int inject(struct spk_vcpu *vcpu, struct kvm_sregs *sregs,
                  const struct spk_assist_outcome *out)
{
	struct kvm_vcpu_events ev;
	int rc;

	if (out->set_cr2) {
		sregs->cr2 = out->cr2;
		rc = spk_kvm_ioctl(spk_kvm_vcpu(vcpu)->fd, KVM_SET_SREGS, sregs);
		if (rc < 0)
			return rc;
	}
	rc = spk_kvm_ioctl(spk_kvm_vcpu(vcpu)->fd, KVM_GET_VCPU_EVENTS, &ev);
	if (rc < 0)
		return rc;
	ev.flags = 0; /* leave NMI pending, SIPI, SMM and the shadow as they are */
	ev.exception.injected = 1;
	ev.exception.pending = 0;
	ev.exception.nr = out->vector;
	ev.exception.has_error_code = out->has_error;
	ev.exception.error_code = out->error;
	return spk_kvm_ioctl(spk_kvm_vcpu(vcpu)->fd, KVM_SET_VCPU_EVENTS, &ev);
}

bool spk_kvm_assist(struct spk_vcpu *vcpu, const uint8_t *bytes, unsigned n, char *why,
                    size_t why_len)
{
	const struct spk_assist_env env = {
	    .mem = vcpu->vm->mem,
	    .translate = kvm_translate,
	    .get_mxcsr = kvm_get_mxcsr,
	    .set_mxcsr = kvm_set_mxcsr,
	    .opaque = vcpu,
	};
	struct spk_assist_outcome out;
	struct spk_assist_cpu cpu;
	struct kvm_sregs sregs = {0};
	struct kvm_regs regs = {0};
	int rc;

	if (spk_kvm_vm(vcpu->vm)->no_assists || !spk_assist_decode(bytes, n, NULL, NULL))
		return false;
	rc = spk_kvm_ioctl(spk_kvm_vcpu(vcpu)->fd, KVM_GET_REGS, &regs);
	if (rc == 0)
		rc = spk_kvm_ioctl(spk_kvm_vcpu(vcpu)->fd, KVM_GET_SREGS, &sregs);
	if (rc < 0) {
		snprintf(why, why_len, "assist: reading registers: %s", strerror(-rc));
		return false;
	}
	to_cpu(&cpu, &regs, &sregs);
	switch (spk_assist_exec(bytes, n, &cpu, &env, &out)) {
	case SPK_ASSIST_REFETCH:
		spk_kvm_vcpu(vcpu)->assist.refetch_mismatch++;
		return true; /* nothing changed: the vCPU runs the new bytes */
	case SPK_ASSIST_DONE:
	case SPK_ASSIST_EXCEPTION:
		break;
	case SPK_ASSIST_FAILED:
		snprintf(why, why_len, "assist: %s could not be completed",
		         spk_assist_name(out.insn));
		return false;
	default:
		return false;
	}
	from_cpu(&regs, &cpu);
	rc = spk_kvm_ioctl(spk_kvm_vcpu(vcpu)->fd, KVM_SET_REGS, &regs);
	if (rc == 0 && spk_kvm_vm(vcpu->vm)->sync_regs)
		spk_kvm_vcpu(vcpu)->run->s.regs.regs = regs; /* the synced copy must not undo it */
	if (rc == 0 && out.vector)
		rc = inject(vcpu, &sregs, &out);
	if (rc < 0) {
		snprintf(why, why_len, "assist: completing %s: %s", spk_assist_name(out.insn),
		         strerror(-rc));
		return false;
	}
	spk_kvm_vcpu(vcpu)->assist.count[out.insn]++;
	if (out.fault)
		spk_kvm_vcpu(vcpu)->assist.faults++;
	return true;
}

void spk_vcpu_get_assist_stats(const struct spk_vcpu *vcpu, struct spk_assist_stats *out)
{
	if (!out)
		return;
	memset(out, 0, sizeof(*out));
	if (vcpu && vcpu->magic == SPK_VCPU_MAGIC && vcpu->be)
		*out = spk_kvm_vcpu(vcpu)->assist;
}
