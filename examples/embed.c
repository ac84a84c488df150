/* Embedding libsparkler: a guest that prints "hi" through a port device. */
#include <sparkler/sparkler.h>
#include <stdio.h>

static const uint8_t guest[] = {                  /* runs at 1 MiB, CPL0, long mode */
	0xb0, 'h', 0xe6, 0xf0, 0xb0, 'i', 0xe6, 0xf0, /* mov $c, %al; out %al, $0xf0 */
	0xb0, '\n', 0xe6, 0xf0, 0xf4,                 /* the same for '\n'; hlt */
};

static void out(void *opaque, uint64_t off, unsigned width, uint64_t v,
		const struct spk_bus_access *who)
{
	putchar((int)v);
}

int main(void)
{
	static const struct spk_bus_ops port = {.write = out};
	struct spk_vm *vm = NULL;
	struct spk_vcpu *cpu;
	struct spk_x86_long_mode lm;
	struct spk_exit exit = {0};

	if (spk_vm_create(NULL, &vm) < 0 ||
	    spk_vm_add_memory(vm, 0, 2 << 20, SPK_MEM_RAM, "ram", NULL) < 0 ||
	    spk_x86_build_long_mode(spk_vm_mem(vm), 0x1000, 2 << 20, &lm) < 0 ||
	    spk_mem_load(spk_vm_mem(vm), 0x100000, guest, sizeof(guest)) < 0 ||
	    spk_bus_register(spk_vm_bus(vm), SPK_BUS_PIO, 0xf0, 1, "out", &port, NULL, 0) < 0 ||
	    spk_vcpu_create(vm, 0, &cpu) < 0 ||
	    spk_x86_vcpu_enter_long_mode(cpu, &lm, &(struct spk_x86_entry){.rip = 0x100000}) < 0 ||
	    spk_vcpu_run(cpu, &exit) < 0) /* the port writes go to out(), not here */
		fprintf(stderr, "sparkler: %s\n", spk_last_error());
	printf("guest stopped: %s\n", spk_exit_name(exit.kind));
	spk_vm_destroy(vm);
	return exit.kind == SPK_EXIT_HALT ? 0 : 1;
}
