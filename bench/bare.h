/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A bare KVM virtual machine driven with raw ioctls and nothing else: the
 * "limit" column of the benchmarks. It deliberately does no more than a
 * guest needs to run (no CPUID setup, no exit translation, no bus), so
 * that whatever sparkler costs beyond it shows up as a ratio.
 */
#ifndef SPK_BENCH_BARE_H
#define SPK_BENCH_BARE_H

#include <stddef.h>
#include <stdint.h>

struct kvm_run;

struct bare_vm {
	int vm_fd;
	int vcpu_fd;
	struct kvm_run *run;
	size_t run_size;
	uint8_t *mem;
	uint64_t mem_size;
};

/* Open /dev/kvm (checking the API version): an fd, or -errno. */
int bare_kvm_open(void);

/*
 * Create a VM with mem_size bytes of RAM at guest address 0 (anonymous
 * MAP_NORESERVE memory, as sparkler's) and one vCPU. 0 or -errno.
 */
int bare_vm_create(struct bare_vm *vm, int kvm_fd, uint64_t mem_size);

/* Copy code to GUEST_LOAD and build page tables, a GDT and a TSS. */
int bare_vm_load(struct bare_vm *vm, const void *code, size_t len);

/* Put the vCPU in 64-bit mode at cpl (0 or 3, IOPL 3) at GUEST_LOAD. */
int bare_vm_enter(struct bare_vm *vm, unsigned cpl);

/*
 * Put the vCPU in 32-bit protected mode, flat, paging off, CPL0, at rip:
 * the state a PVH kernel is entered in.
 */
int bare_vm_enter32(struct bare_vm *vm, uint64_t rip);

/*
 * KVM_RUN until the guest writes to GUEST_PORT_DONE or GUEST_PORT_RESET. Bytes written to
 * GUEST_PORT_CONSOLE go to console_fd (if >= 0); every other port exit
 * just runs again. Returns the number of exits, or -errno (with a line on
 * stderr) on an error or an unexpected exit.
 */
long bare_vm_run(struct bare_vm *vm, int console_fd);

void bare_vm_destroy(struct bare_vm *vm);

#endif
