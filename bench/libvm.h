/* SPDX-License-Identifier: Apache-2.0 */
/* A guest run in-process through libsparkler, the way an embedder would. */
#ifndef SPK_BENCH_LIBVM_H
#define SPK_BENCH_LIBVM_H

#include <sparkler/sparkler.h>

#include "guest.h"

struct lib_vm {
	struct spk_vm *vm;
	struct spk_vcpu *cpu;
	struct spk_x86_long_mode lm;
};

/*
 * A VM with mem_size bytes of RAM, page tables at GUEST_TABLES, the code
 * at GUEST_LOAD and one vCPU entered there in long mode at cpl (IOPL 0, the
 * guests' ports opened in the TSS I/O bitmap).
 * 0, or -errno with a line on stderr (the VM is then destroyed).
 */
int lib_vm_create(struct lib_vm *v, uint64_t mem_size, const struct guest_code *g, unsigned cpl);

/* Start the vCPU at GUEST_LOAD again, after a run. */
int lib_vm_restart(struct lib_vm *v, unsigned cpl);

/* spk_vcpu_run() until the guest's done hypercall; 0, or -1 with a line on stderr. */
int lib_vm_run(struct lib_vm *v);

void lib_vm_destroy(struct lib_vm *v);

#endif
