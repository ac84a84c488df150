/* SPDX-License-Identifier: Apache-2.0 */
/* KVM backend: x86-64 registers (the register ops) and starting vCPUs
 * directly in long mode. */
#include <errno.h>
#include <string.h>

#include "core/internal.h"
#include "kvm/kvm.h"

#define PAGE 4096ull

#define CR0_PE (1ull << 0)
#define CR0_MP (1ull << 1)
#define CR0_ET (1ull << 4)
#define CR0_NE (1ull << 5)
#define CR0_WP (1ull << 16)
#define CR0_PG (1ull << 31)
#define CR4_PAE (1ull << 5)
#define CR4_OSFXSR (1ull << 9)
#define CR4_OSXMMEXCPT (1ull << 10)
#define EFER_SCE (1ull << 0)
#define EFER_LME (1ull << 8)
#define EFER_LMA (1ull << 10)

#define PTE_P (1ull << 0)
#define PTE_RW (1ull << 1)
#define PTE_US (1ull << 2)
#define PTE_PS (1ull << 7)

#define TSS_SIZE 0x68

/* ---- registers ------------------------------------------------------- */

static void from_kvm_regs(struct spk_x86_regs *o, const struct kvm_regs *r)
{
	*o = (struct spk_x86_regs){
		r->rax, r->rbx, r->rcx, r->rdx, r->rsi, r->rdi, r->rsp, r->rbp,
		r->r8,  r->r9,  r->r10, r->r11, r->r12, r->r13, r->r14, r->r15,
		r->rip, r->rflags,
	};
}

static void to_kvm_regs(struct kvm_regs *r, const struct spk_x86_regs *o)
{
	*r = (struct kvm_regs){
		.rax = o->rax, .rbx = o->rbx, .rcx = o->rcx, .rdx = o->rdx,
		.rsi = o->rsi, .rdi = o->rdi, .rsp = o->rsp, .rbp = o->rbp,
		.r8 = o->r8,   .r9 = o->r9,   .r10 = o->r10, .r11 = o->r11,
		.r12 = o->r12, .r13 = o->r13, .r14 = o->r14, .r15 = o->r15,
		.rip = o->rip, .rflags = o->rflags,
	};
}

/* The core checked the vCPU and its state (core/vcpu.c). */
static int get_regs(struct spk_vcpu *vcpu, struct spk_x86_regs *regs)
{
	struct spk_kvm_vcpu *kv = spk_kvm_vcpu(vcpu);
	struct kvm_regs r;
	int rc;

	/* a value the library will hand the guest at the next entry wins */
	if (spk_kvm_vm(vcpu->vm)->sync_regs && (kv->run->kvm_dirty_regs & KVM_SYNC_X86_REGS)) {
		from_kvm_regs(regs, &kv->run->s.regs.regs);
		return 0;
	}
	rc = spk_kvm_ioctl(kv->fd, KVM_GET_REGS, &r);
	if (rc < 0)
		return spk_fail(-rc, "kvm: KVM_GET_REGS on vCPU %u: %s", vcpu->id, strerror(-rc));
	from_kvm_regs(regs, &r);
	return 0;
}

static int set_regs(struct spk_vcpu *vcpu, const struct spk_x86_regs *regs)
{
	struct spk_kvm_vcpu *kv = spk_kvm_vcpu(vcpu);
	struct kvm_regs r;
	int rc;

	to_kvm_regs(&r, regs);
	rc = spk_kvm_ioctl(kv->fd, KVM_SET_REGS, &r);
	if (rc < 0)
		return spk_fail(-rc, "kvm: KVM_SET_REGS on vCPU %u: %s", vcpu->id, strerror(-rc));
	/* keep the synced copy equal, or a pending completion would undo this */
	if (spk_kvm_vm(vcpu->vm)->sync_regs)
		kv->run->s.regs.regs = r;
	return 0;
}

static void from_kvm_seg(struct spk_x86_segment *o, const struct kvm_segment *s)
{
	*o = (struct spk_x86_segment){s->base, s->limit, s->selector, s->type, s->present, s->dpl,
				      s->db,   s->s,     s->l,        s->g,    s->avl,
				      s->unusable};
}

static void to_kvm_seg(struct kvm_segment *s, const struct spk_x86_segment *o)
{
	*s = (struct kvm_segment){
		.base = o->base, .limit = o->limit, .selector = o->selector, .type = o->type,
		.present = o->present, .dpl = o->dpl, .db = o->db, .s = o->s, .l = o->l,
		.g = o->g, .avl = o->avl, .unusable = o->unusable,
	};
}

static int get_sregs(struct spk_vcpu *vcpu, struct spk_x86_sregs *o)
{
	struct kvm_sregs s;
	int rc = spk_kvm_ioctl(spk_kvm_vcpu(vcpu)->fd, KVM_GET_SREGS, &s);

	if (rc < 0)
		return spk_fail(-rc, "kvm: KVM_GET_SREGS on vCPU %u: %s", vcpu->id, strerror(-rc));
	from_kvm_seg(&o->cs, &s.cs);
	from_kvm_seg(&o->ds, &s.ds);
	from_kvm_seg(&o->es, &s.es);
	from_kvm_seg(&o->fs, &s.fs);
	from_kvm_seg(&o->gs, &s.gs);
	from_kvm_seg(&o->ss, &s.ss);
	from_kvm_seg(&o->tr, &s.tr);
	from_kvm_seg(&o->ldt, &s.ldt);
	o->gdt = (struct spk_x86_dtable){s.gdt.base, s.gdt.limit};
	o->idt = (struct spk_x86_dtable){s.idt.base, s.idt.limit};
	o->cr0 = s.cr0;
	o->cr2 = s.cr2;
	o->cr3 = s.cr3;
	o->cr4 = s.cr4;
	o->cr8 = s.cr8;
	o->efer = s.efer;
	o->apic_base = s.apic_base;
	return 0;
}

static int set_sregs(struct spk_vcpu *vcpu, const struct spk_x86_sregs *o)
{
	int fd = spk_kvm_vcpu(vcpu)->fd;
	struct kvm_sregs s;
	/* start from KVM's view: keeps the interrupt bitmap and apic_base sane */
	int rc = spk_kvm_ioctl(fd, KVM_GET_SREGS, &s);

	if (rc < 0)
		return spk_fail(-rc, "kvm: KVM_GET_SREGS on vCPU %u: %s", vcpu->id, strerror(-rc));
	to_kvm_seg(&s.cs, &o->cs);
	to_kvm_seg(&s.ds, &o->ds);
	to_kvm_seg(&s.es, &o->es);
	to_kvm_seg(&s.fs, &o->fs);
	to_kvm_seg(&s.gs, &o->gs);
	to_kvm_seg(&s.ss, &o->ss);
	to_kvm_seg(&s.tr, &o->tr);
	to_kvm_seg(&s.ldt, &o->ldt);
	s.gdt = (struct kvm_dtable){.base = o->gdt.base, .limit = o->gdt.limit};
	s.idt = (struct kvm_dtable){.base = o->idt.base, .limit = o->idt.limit};
	s.cr0 = o->cr0;
	s.cr2 = o->cr2;
	s.cr3 = o->cr3;
	s.cr4 = o->cr4;
	s.cr8 = o->cr8;
	s.efer = o->efer;
	if (o->apic_base)
		s.apic_base = o->apic_base;
	rc = spk_kvm_ioctl(fd, KVM_SET_SREGS, &s);
	if (rc < 0)
		return spk_fail(-rc, "kvm: KVM_SET_SREGS on vCPU %u refused the state: %s",
				vcpu->id, strerror(-rc));
	return 0;
}

static int check_set(struct spk_vcpu *vcpu, enum spk_regset set, size_t size)
{
	size_t want = set == SPK_REGS_X86 ? sizeof(struct spk_x86_regs)
	              : set == SPK_REGS_X86_SYS ? sizeof(struct spk_x86_sregs)
	                                        : 0;

	if (!want)
		return spk_fail(ENOTSUP, "kvm: vCPU %u: register set %d is not x86-64's", vcpu->id,
		                (int)set);
	if (size != want)
		return spk_fail(EINVAL, "kvm: vCPU %u: register set %d is %zu bytes, not %zu",
		                vcpu->id, (int)set, want, size);
	return 0;
}

int spk_kvm_vcpu_get_regs(struct spk_vcpu *vcpu, enum spk_regset set, void *buf, size_t size)
{
	int rc = check_set(vcpu, set, size);

	if (rc < 0)
		return rc;
	return set == SPK_REGS_X86 ? get_regs(vcpu, buf) : get_sregs(vcpu, buf);
}

int spk_kvm_vcpu_set_regs(struct spk_vcpu *vcpu, enum spk_regset set, const void *buf,
                          size_t size)
{
	int rc = check_set(vcpu, set, size);

	if (rc < 0)
		return rc;
	return set == SPK_REGS_X86 ? set_regs(vcpu, buf) : set_sregs(vcpu, buf);
}

/* HALT: only an interrupt can wake it, and only with IF set. */
int spk_kvm_vcpu_halt_wakeable(struct spk_vcpu *vcpu)
{
	struct spk_x86_regs regs;
	int rc = get_regs(vcpu, &regs);

	if (rc < 0)
		return rc;
	return (regs.rflags & 0x200) != 0;
}

/* ---- long mode ------------------------------------------------------- */

static uint64_t pd_pages(uint64_t map_size)
{
	return (map_size + (1ull << 30) - 1) >> 30; /* one PD maps 1 GiB */
}

/* GDT at the start of its page, the TSS 256 bytes in, then its I/O bitmap */
#define GDT_TSS_OFF 256
#define IOBITMAP_SIZE (65536 / 8 + 1) /* one bit a port, then 0xff */
#define GDT_TSS_PAGES ((GDT_TSS_OFF + TSS_SIZE + IOBITMAP_SIZE + PAGE - 1) / PAGE)
/* 4 KiB page tables for the 2 MiB pages the tables themselves lie in (at
 * most two: the tables are far smaller than 2 MiB), so that exactly their
 * pages are supervisor-only */
#define PT_PAGES 2
#define HUGE     (2ull << 20)

uint64_t spk_x86_long_mode_size(uint64_t map_size)
{
	/* PML4 + PDPT + PDs + the GDT, the TSS and its I/O bitmap + PTs */
	return (2 + pd_pages(map_size) + GDT_TSS_PAGES + PT_PAGES) * PAGE;
}

static uint64_t gdt_entry(uint64_t flags_access)
{
	/* base 0, limit 0xfffff: only the access byte and flags vary */
	return 0x000f00000000ffffull | flags_access;
}

static void build_gdt(uint64_t *gdt, uint64_t tss_base)
{
	gdt[0] = 0;
	gdt[1] = gdt_entry(0x00a09b0000000000ull); /* 0x08 code64, DPL0 */
	gdt[2] = gdt_entry(0x00c0930000000000ull); /* 0x10 data, DPL0 */
	gdt[3] = gdt_entry(0x00c0f30000000000ull); /* 0x18 data, DPL3 */
	gdt[4] = gdt_entry(0x00a0fb0000000000ull); /* 0x20 code64, DPL3 */
	/* 0x28: 64-bit available TSS, 16 bytes */
	uint64_t limit = TSS_SIZE + IOBITMAP_SIZE - 1;
	gdt[5] = (limit & 0xffff) | ((tss_base & 0xffffff) << 16) | (0x89ull << 40) |
		 ((limit >> 16 & 0xf) << 48) | ((tss_base >> 24 & 0xff) << 56);
	gdt[6] = tss_base >> 32;
}

int spk_x86_build_long_mode(struct spk_mem *mem, uint64_t gpa, uint64_t map_size,
			    struct spk_x86_long_mode *lm)
{
	uint64_t npd = pd_pages(map_size), size = spk_x86_long_mode_size(map_size);
	uint8_t *base;

	if (!mem || !lm)
		return spk_fail(EINVAL, "x86: build_long_mode needs memory and an output");
	if (map_size == 0 || map_size > SPK_X86_MAP_MAX || map_size % (2ull << 20))
		return spk_fail(EINVAL, "x86: map size 0x%llx must be a non-zero multiple of "
				"2 MiB up to %llu GiB", (unsigned long long)map_size,
				SPK_X86_MAP_MAX >> 30);
	if (gpa % PAGE)
		return spk_fail(EINVAL, "x86: page tables at 0x%llx are not page-aligned",
				(unsigned long long)gpa);
	base = spk_mem_ptr(mem, gpa, size, SPK_MEM_W);
	if (!base)
		return spk_fail(EFAULT, "x86: no RAM for %llu bytes of page tables at 0x%llx",
				(unsigned long long)size, (unsigned long long)gpa);
	memset(base, 0, size);

	uint64_t *pml4 = (uint64_t *)base, *pdpt = (uint64_t *)(base + PAGE);
	uint64_t pd_gpa = gpa + 2 * PAGE;
	pml4[0] = (gpa + PAGE) | PTE_P | PTE_RW | PTE_US;
	for (uint64_t i = 0; i < npd; i++) {
		uint64_t *pd = (uint64_t *)(base + (2 + i) * PAGE);

		pdpt[i] = (pd_gpa + i * PAGE) | PTE_P | PTE_RW | PTE_US;
		for (uint64_t j = 0; j < 512; j++) {
			uint64_t addr = (i << 30) | (j << 21);

			if (addr < map_size)
				pd[j] = addr | PTE_P | PTE_RW | PTE_US | PTE_PS;
		}
	}
	/*
	 * The tables are the guest kernel's (CPL0) alone: the 2 MiB pages
	 * that hold them are split into 4 KiB pages, and the tables' own
	 * pages lose the user bit, so CPL3 code can neither rewrite the TSS's
	 * I/O bitmap nor remap memory.
	 */
	uint64_t pt_off = (2 + npd + GDT_TSS_PAGES) * PAGE, last = gpa + size - 1;
	for (uint64_t huge = gpa & ~(HUGE - 1), k = 0; huge <= last; huge += HUGE, k++) {
		uint64_t *pt = (uint64_t *)(base + pt_off + k * PAGE);

		if (huge >= map_size)
			break; /* not mapped at all */
		for (uint64_t j = 0; j < 512; j++) {
			uint64_t addr = huge + j * PAGE;
			bool table = addr >= gpa && addr <= last;

			pt[j] = addr | PTE_P | PTE_RW | (table ? 0 : PTE_US);
		}
		uint64_t *pd = (uint64_t *)(base + (2 + (huge >> 30)) * PAGE);
		pd[(huge >> 21) & 511] = (gpa + pt_off + k * PAGE) | PTE_P | PTE_RW | PTE_US;
	}
	uint64_t gdt_gpa = gpa + (2 + npd) * PAGE, tss_gpa = gdt_gpa + GDT_TSS_OFF;
	build_gdt((uint64_t *)(base + (2 + npd) * PAGE), tss_gpa);
	/*
	 * The TSS's I/O bitmap closes every port to CPL3 (all one bits, then
	 * the terminating 0xff) until the caller opens some with
	 * spk_x86_long_mode_allow_ports(). IOPL 3 would bypass it on
	 * VT-x/AMD-V; PVM hosts drop IOPL on iretq, so there CPL3 port I/O
	 * always goes through the bitmap.
	 */
	uint8_t *tss = base + (2 + npd) * PAGE + GDT_TSS_OFF;
	tss[0x66] = TSS_SIZE;
	memset(tss + TSS_SIZE, 0xff, IOBITMAP_SIZE);

	*lm = (struct spk_x86_long_mode){
		.cr3 = gpa,
		.gdt_base = gdt_gpa,
		.gdt_limit = 7 * 8 - 1,
		.tss_base = tss_gpa,
		.map_size = map_size,
	};
	return 0;
}

int spk_x86_long_mode_allow_ports(struct spk_mem *mem, const struct spk_x86_long_mode *lm,
                                  uint32_t first, uint32_t count)
{
	uint8_t *bitmap;

	if (!mem || !lm)
		return spk_fail(EINVAL, "x86: allow_ports needs memory and a long-mode context");
	if (!lm->tss_base)
		return spk_fail(EINVAL, "x86: allow_ports: the context has no TSS "
		                        "(fill it with spk_x86_build_long_mode)");
	if (count == 0 || first > 0xffff || count > 0x10000 - first)
		return spk_fail(EINVAL, "x86: allow_ports 0x%x+0x%x: empty or beyond port 0xffff",
		                first, count);
	bitmap = spk_mem_ptr(mem, lm->tss_base + TSS_SIZE, IOBITMAP_SIZE, SPK_MEM_W);
	if (!bitmap)
		return spk_fail(EFAULT, "x86: allow_ports: the TSS at 0x%llx is not in RAM",
		                (unsigned long long)lm->tss_base);
	/* bit by bit up to a byte boundary, whole bytes, then the tail */
	uint32_t p = first, end = first + count;

	for (; p < end && p % 8; p++)
		bitmap[p / 8] &= (uint8_t) ~(1u << (p % 8));
	if (end - p >= 8) {
		memset(bitmap + p / 8, 0, (end - p) / 8);
		p += (end - p) / 8 * 8;
	}
	for (; p < end; p++)
		bitmap[p / 8] &= (uint8_t) ~(1u << (p % 8));
	return 0;
}

static struct spk_x86_segment code_seg(unsigned cpl)
{
	return (struct spk_x86_segment){
		.limit = 0xffffffff, .selector = cpl ? SPK_X86_SEL_CODE3 : SPK_X86_SEL_CODE0,
		.type = 11, .present = 1, .dpl = (uint8_t)cpl, .s = 1, .l = 1, .g = 1,
	};
}

static struct spk_x86_segment data_seg(unsigned cpl)
{
	return (struct spk_x86_segment){
		.limit = 0xffffffff, .selector = cpl ? SPK_X86_SEL_DATA3 : SPK_X86_SEL_DATA0,
		.type = 3, .present = 1, .dpl = (uint8_t)cpl, .db = 1, .s = 1, .g = 1,
	};
}

/* 48-bit virtual addresses: bits 63..47 all equal */
static bool canonical(uint64_t va)
{
	return (uint64_t)((int64_t)(va << 16) >> 16) == va;
}

static int set_runnable(struct spk_vcpu *vcpu)
{
	/* with the in-kernel LAPIC an AP waits for INIT/SIPI unless told */
	struct kvm_mp_state mp = {.mp_state = KVM_MP_STATE_RUNNABLE};
	int rc;

	if (vcpu->vm->irqchip != SPK_IRQCHIP_KERNEL)
		return 0;
	rc = spk_kvm_ioctl(spk_kvm_vcpu(vcpu)->fd, KVM_SET_MP_STATE, &mp);
	if (rc < 0)
		return spk_fail(-rc, "kvm: KVM_SET_MP_STATE on vCPU %u: %s", vcpu->id,
				strerror(-rc));
	return 0;
}

int spk_x86_vcpu_enter_long_mode(struct spk_vcpu *vcpu, const struct spk_x86_long_mode *lm,
				 const struct spk_x86_entry *e)
{
	struct spk_x86_sregs s = {0};
	int rc;

	if (!vcpu || !lm || !e)
		return spk_fail(EINVAL, "x86: enter_long_mode needs a vCPU, a context and an entry");
	if ((e->cpl != 0 && e->cpl != 3) || e->iopl > 3)
		return spk_fail(EINVAL, "x86: cpl %u / iopl %u: cpl must be 0 or 3, iopl 0..3",
				e->cpl, e->iopl);
	rc = spk_vcpu_regs_allowed(vcpu, lm, "enter long mode");
	if (rc < 0)
		return rc;
	if (!lm->cr3 || !lm->gdt_base || !lm->gdt_limit || !lm->tss_base || !lm->map_size)
		return spk_fail(EINVAL,
		                "x86: vCPU %u: the long-mode context has no page tables, "
		                "GDT or TSS (fill it with spk_x86_build_long_mode)",
		                vcpu->id);
	if (!canonical(e->rip) || !canonical(e->rsp))
		return spk_fail(EINVAL,
		                "x86: vCPU %u: entry rip 0x%llx / rsp 0x%llx: not "
		                "canonical (bits 63-47 must all equal bit 47)",
		                vcpu->id, (unsigned long long)e->rip, (unsigned long long)e->rsp);
	s.cs = code_seg(e->cpl);
	s.ds = s.es = s.fs = s.gs = s.ss = data_seg(e->cpl);
	s.tr = (struct spk_x86_segment){.base = lm->tss_base, .limit = TSS_SIZE + IOBITMAP_SIZE - 1,
					.selector = SPK_X86_SEL_TSS, .type = 11, .present = 1};
	s.ldt = (struct spk_x86_segment){.type = 2, .present = 1, .unusable = 1};
	s.gdt = (struct spk_x86_dtable){lm->gdt_base, lm->gdt_limit};
	s.cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_PG;
	s.cr3 = lm->cr3;
	s.cr4 = CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT;
	s.efer = EFER_SCE | EFER_LME | EFER_LMA;

	struct spk_x86_regs r = {
		.rip = e->rip, .rsp = e->rsp, .rdi = e->rdi, .rsi = e->rsi,
		.rflags = 0x2 | ((uint64_t)e->iopl << 12),
	};
	if ((rc = spk_vcpu_set_sregs(vcpu, &s)) < 0 || (rc = spk_vcpu_set_regs(vcpu, &r)) < 0 ||
	    (rc = set_runnable(vcpu)) < 0) {
		spk_vcpu_invalidate(vcpu);
		return rc;
	}
	struct spk_kvm_vm *k = spk_kvm_vm(vcpu->vm);

	pthread_mutex_lock(&vcpu->vm->lock);
	k->lm = *lm;
	k->have_lm = true;
	pthread_mutex_unlock(&vcpu->vm->lock);
	return spk_vcpu_ready(vcpu);
}

int spk_x86_start_secondary(struct spk_vcpu *vcpu, uint64_t entry, uint64_t arg)
{
	struct spk_x86_long_mode lm;
	bool have;

	if (!spk_vcpu_ok(vcpu, "start a secondary vCPU"))
		return -EINVAL;
	struct spk_vm *vm = vcpu->vm;

	pthread_mutex_lock(&vm->lock);
	lm = spk_kvm_vm(vm)->lm;
	have = spk_kvm_vm(vm)->have_lm;
	pthread_mutex_unlock(&vm->lock);
	if (!have)
		return spk_fail(EINVAL, "x86: no long-mode context to start vCPU %u with "
				"(start the boot vCPU with spk_x86_vcpu_enter_long_mode)", vcpu->id);
	const struct spk_x86_entry e = {.rip = entry, .rdi = arg, .cpl = 0};
	return spk_x86_vcpu_enter_long_mode(vcpu, &lm, &e);
}
