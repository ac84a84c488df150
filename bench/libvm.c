/* SPDX-License-Identifier: Apache-2.0 */
/* In-process guests through libsparkler (see libvm.h). */
#include <stdio.h>

#include "libvm.h"

static int report(struct lib_vm *v, const char *what)
{
	fprintf(stderr, "sparkler-bench: %s: %s\n", what, spk_last_error());
	lib_vm_destroy(v);
	return -1;
}

/* The ports the bench guests write at CPL3 (guest.h), each as wide as
 * the guests write it (done: a 4-byte out): the TSS bitmap closes all
 * others. */
static int open_ports(struct lib_vm *v)
{
	static const struct {
		uint16_t port, width;
	} ports[] = {{GUEST_PORT_LOOP, 1}, {GUEST_PORT_DONE, 4}, {GUEST_PORT_CONSOLE, 1},
	             {GUEST_PORT_QEMU, 1}, {GUEST_PORT_RESET, 1}};

	for (size_t i = 0; i < sizeof(ports) / sizeof(ports[0]); i++)
		if (spk_x86_long_mode_allow_ports(spk_vm_mem(v->vm), &v->lm, ports[i].port,
		                                  ports[i].width) < 0)
			return -1;
	return 0;
}

int lib_vm_create(struct lib_vm *v, uint64_t mem_size, const struct guest_code *g, unsigned cpl)
{
	*v = (struct lib_vm){0};
	if (spk_vm_create(NULL, &v->vm) < 0)
		return report(v, "spk_vm_create");
	if (spk_vm_add_memory(v->vm, 0, mem_size, SPK_MEM_RAM, "ram", NULL) < 0 ||
	    spk_x86_build_long_mode(spk_vm_mem(v->vm), GUEST_TABLES, 2 << 20, &v->lm) < 0 ||
	    open_ports(v) < 0 || spk_mem_load(spk_vm_mem(v->vm), GUEST_LOAD, g->bytes, g->len) < 0)
		return report(v, "guest memory");
	if (spk_vcpu_create(v->vm, 0, &v->cpu) < 0)
		return report(v, "spk_vcpu_create");
	if (lib_vm_restart(v, cpl) < 0)
		return report(v, "spk_x86_vcpu_enter_long_mode");
	return 0;
}

int lib_vm_restart(struct lib_vm *v, unsigned cpl)
{
	const struct spk_x86_entry entry = {.rip = GUEST_LOAD, .cpl = cpl};

	return spk_x86_vcpu_enter_long_mode(v->cpu, &v->lm, &entry);
}

int lib_vm_run(struct lib_vm *v)
{
	struct spk_exit exit = {0};

	/* the loop's port writes never come back here: the library drops them */
	if (spk_vcpu_run(v->cpu, &exit) < 0) {
		fprintf(stderr, "sparkler-bench: spk_vcpu_run: %s\n", spk_last_error());
		return -1;
	}
	if (exit.kind != SPK_EXIT_SYSTEM_DOWN) {
		char line[256];

		spk_exit_format(&exit, line, sizeof(line));
		fprintf(stderr, "sparkler-bench: the guest stopped with %s\n", line);
		return -1;
	}
	return 0;
}

void lib_vm_destroy(struct lib_vm *v)
{
	spk_vm_destroy(v->vm);
	*v = (struct lib_vm){0};
}
