/* SPDX-License-Identifier: Apache-2.0 */
/* The bare KVM virtual machine (see bare.h): raw ioctls only. */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bare.h"
#include "guest.h"

/* Layout at GUEST_TABLES: PML4, PDPT, one PD (2 MiB pages: the first GiB), GDT + TSS. */
#define PML4_OFF 0x0000
#define PDPT_OFF 0x1000
#define PD_OFF   0x2000
#define GDT_OFF  0x3000
#define TSS_OFF  0x3100
#define TSS_SIZE 0x68

#define SEL_CODE0 0x08
#define SEL_DATA0 0x10
#define SEL_DATA3 0x1b
#define SEL_CODE3 0x23
#define SEL_TSS   0x28

static int fail(const char *what)
{
	int err = errno;

	fprintf(stderr, "bare: %s: %s\n", what, strerror(err));
	return -err;
}

int bare_kvm_open(void)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return fail("open /dev/kvm");
	if (ioctl(fd, KVM_GET_API_VERSION, 0) != KVM_API_VERSION) {
		close(fd);
		errno = ENODEV;
		return fail("KVM_GET_API_VERSION");
	}
	return fd;
}

static int map_vcpu(struct bare_vm *vm, int kvm_fd)
{
	int size = ioctl(kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);

	if (size < (int)sizeof(struct kvm_run))
		return fail("KVM_GET_VCPU_MMAP_SIZE");
	vm->run = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, vm->vcpu_fd, 0);
	if (vm->run == MAP_FAILED) {
		vm->run = NULL;
		return fail("mmap of the run area");
	}
	vm->run_size = (size_t)size;
	return 0;
}

int bare_vm_create(struct bare_vm *vm, int kvm_fd, uint64_t mem_size)
{
	*vm = (struct bare_vm){.vm_fd = -1, .vcpu_fd = -1, .mem_size = mem_size};
	vm->vm_fd = ioctl(kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0)
		return fail("KVM_CREATE_VM");
	vm->mem = mmap(NULL, mem_size, PROT_READ | PROT_WRITE,
	               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (vm->mem == MAP_FAILED) {
		vm->mem = NULL;
		return fail("mmap of guest memory");
	}
	struct kvm_userspace_memory_region slot = {
	    .memory_size = mem_size,
	    .userspace_addr = (uintptr_t)vm->mem,
	};
	if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &slot) < 0)
		return fail("KVM_SET_USER_MEMORY_REGION");
	vm->vcpu_fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, 0);
	if (vm->vcpu_fd < 0)
		return fail("KVM_CREATE_VCPU");
	return map_vcpu(vm, kvm_fd);
}

/* base 0, limit 0xfffff: only the access byte and flags vary */
static uint64_t gdt_entry(uint64_t flags_access)
{
	return 0x000f00000000ffffull | flags_access;
}

static void build_tables(uint8_t *t)
{
	uint64_t *pml4 = (uint64_t *)(t + PML4_OFF), *pdpt = (uint64_t *)(t + PDPT_OFF);
	uint64_t *pd = (uint64_t *)(t + PD_OFF), *gdt = (uint64_t *)(t + GDT_OFF);
	uint64_t tss = GUEST_TABLES + TSS_OFF;

	memset(t, 0, TSS_OFF + TSS_SIZE);
	/* present, writable, user: CPL3 code runs on the same mapping */
	pml4[0] = (GUEST_TABLES + PDPT_OFF) | 7;
	pdpt[0] = (GUEST_TABLES + PD_OFF) | 7;
	for (uint64_t i = 0; i < 512; i++)
		pd[i] = (i << 21) | 0x87;          /* the same bits plus PS: 2 MiB pages */
	gdt[1] = gdt_entry(0x00a09b0000000000ull); /* code64, DPL0 */
	gdt[2] = gdt_entry(0x00c0930000000000ull); /* data, DPL0 */
	gdt[3] = gdt_entry(0x00c0f30000000000ull); /* data, DPL3 */
	gdt[4] = gdt_entry(0x00a0fb0000000000ull); /* code64, DPL3 */
	gdt[5] = (TSS_SIZE - 1) | ((tss & 0xffffff) << 16) | (0x89ull << 40) |
	         ((tss >> 24 & 0xff) << 56);
	gdt[6] = tss >> 32;
}

int bare_vm_load(struct bare_vm *vm, const void *code, size_t len)
{
	_Static_assert(GUEST_TABLES + TSS_OFF + TSS_SIZE <= GUEST_LOAD, "tables overlap the code");
	if (vm->mem_size < GUEST_LOAD + len) {
		errno = ENOSPC;
		return fail("guest memory too small");
	}
	build_tables(vm->mem + GUEST_TABLES);
	memcpy(vm->mem + GUEST_LOAD, code, len);
	return 0;
}

static struct kvm_segment segment(unsigned cpl, bool code)
{
	/* clang-format off */
	return (struct kvm_segment){
		.limit = 0xffffffff,
		.selector = code ? (cpl ? SEL_CODE3 : SEL_CODE0) : (cpl ? SEL_DATA3 : SEL_DATA0),
		.type = code ? 11 : 3,
		.present = 1,
		.dpl = (uint8_t)cpl,
		.db = !code,
		.s = 1,
		.l = code,
		.g = 1,
	};
	/* clang-format on */
}

/* The TSS and GDT the guest tables hold, for both entries below. */
static void set_tables(struct kvm_sregs *s)
{
	s->tr = (struct kvm_segment){.base = GUEST_TABLES + TSS_OFF,
	                             .limit = TSS_SIZE - 1,
	                             .selector = SEL_TSS,
	                             .type = 11,
	                             .present = 1};
	s->ldt = (struct kvm_segment){.type = 2, .present = 1, .unusable = 1};
	s->gdt = (struct kvm_dtable){.base = GUEST_TABLES + GDT_OFF, .limit = 7 * 8 - 1};
}

int bare_vm_enter(struct bare_vm *vm, unsigned cpl)
{
	struct kvm_sregs s;

	if (ioctl(vm->vcpu_fd, KVM_GET_SREGS, &s) < 0)
		return fail("KVM_GET_SREGS");
	s.cs = segment(cpl, true);
	s.ds = s.es = s.fs = s.gs = s.ss = segment(cpl, false);
	set_tables(&s);
	s.cr0 = 0x80010033; /* PG WP NE ET MP PE */
	s.cr3 = GUEST_TABLES + PML4_OFF;
	s.cr4 = 0x620;  /* OSXMMEXCPT OSFXSR PAE */
	s.efer = 0x501; /* LMA LME SCE */
	if (ioctl(vm->vcpu_fd, KVM_SET_SREGS, &s) < 0)
		return fail("KVM_SET_SREGS");
	struct kvm_regs r = {.rip = GUEST_LOAD, .rflags = 0x3002}; /* IOPL 3 */
	if (ioctl(vm->vcpu_fd, KVM_SET_REGS, &r) < 0)
		return fail("KVM_SET_REGS");
	return 0;
}

int bare_vm_enter32(struct bare_vm *vm, uint64_t rip)
{
	struct kvm_sregs s;

	if (ioctl(vm->vcpu_fd, KVM_GET_SREGS, &s) < 0)
		return fail("KVM_GET_SREGS");
	s.cs = segment(0, true);
	s.cs.l = 0;
	s.cs.db = 1;
	s.ds = s.es = s.fs = s.gs = s.ss = segment(0, false);
	set_tables(&s);
	s.cr0 = 0x11; /* ET PE */
	s.cr3 = 0;
	s.cr4 = 0;
	s.efer = 0;
	if (ioctl(vm->vcpu_fd, KVM_SET_SREGS, &s) < 0)
		return fail("KVM_SET_SREGS");
	struct kvm_regs r = {.rip = rip, .rflags = 0x2};
	if (ioctl(vm->vcpu_fd, KVM_SET_REGS, &r) < 0)
		return fail("KVM_SET_REGS");
	return 0;
}

static void console(struct kvm_run *run, int fd)
{
	const uint8_t *data = (const uint8_t *)run + run->io.data_offset;

	if (fd >= 0 && write(fd, data, (size_t)run->io.size * run->io.count) < 0) {
		/* nobody reads the console any more: the run goes on */
	}
}

long bare_vm_run(struct bare_vm *vm, int console_fd)
{
	struct kvm_run *run = vm->run;
	long exits = 0;

	for (;;) {
		if (ioctl(vm->vcpu_fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR)
				continue;
			return fail("KVM_RUN");
		}
		exits++;
		if (run->exit_reason != KVM_EXIT_IO) {
			fprintf(stderr, "bare: unexpected exit reason %u\n", run->exit_reason);
			return -EIO;
		}
		if (run->io.port == GUEST_PORT_DONE || run->io.port == GUEST_PORT_RESET)
			return exits;
		if (run->io.port == GUEST_PORT_CONSOLE)
			console(run, console_fd);
	}
}

void bare_vm_destroy(struct bare_vm *vm)
{
	if (vm->run)
		munmap(vm->run, vm->run_size);
	if (vm->vcpu_fd >= 0)
		close(vm->vcpu_fd);
	if (vm->mem)
		munmap(vm->mem, vm->mem_size);
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	*vm = (struct bare_vm){.vm_fd = -1, .vcpu_fd = -1};
}
