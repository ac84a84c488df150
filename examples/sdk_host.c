/* Run a guest-SDK program (examples/sdk_guest.c) with the installed
 * library (README, "Embedding"):
 *   cc -o sdk_host sdk_host.c $(pkg-config --cflags --libs sparkler)
 *   ./sdk_host sdk_guest.elf
 * Prints the guest's console and its result; exits with 0 if it was 42. */
#include <sparkler/sparkler.h>
#include <stdio.h>

int main(int argc, char **argv)
{
	struct spk_vm *vm = NULL;
	struct spk_vcpu *cpu;
	struct spk_x86_long_mode lm;
	struct spk_elf_info elf;
	struct spk_exit exit = {0};
	struct spk_ucall uc = {0};
	int rc;

	if (argc != 2) {
		fprintf(stderr, "usage: %s GUEST.elf\n", argv[0]);
		return 2;
	}
	if ((rc = spk_vm_create(NULL, &vm)) < 0 ||
	    (rc = spk_vm_add_memory(vm, 0, 16 << 20, SPK_MEM_RAM, "ram", NULL)) < 0 ||
	    (rc = spk_x86_build_long_mode(spk_vm_mem(vm), 0x10000, 16 << 20, &lm)) < 0 ||
	    (rc = spk_elf_load_file(spk_vm_mem(vm), argv[1], 16 << 20, &elf)) < 0 ||
	    (rc = spk_vcpu_create(vm, 0, &cpu)) < 0 ||
	    (rc = spk_x86_vcpu_enter_long_mode(cpu, &lm,
	                                       &(struct spk_x86_entry){.rip = elf.entry})) < 0)
		goto out;
	/* console writes go to stdout inside the library; stop at the ucall */
	while ((rc = spk_vcpu_run(cpu, &exit)) == 0 && exit.kind != SPK_EXIT_HYPERCALL)
		if (exit.kind != SPK_EXIT_NONE && exit.kind != SPK_EXIT_CANCELLED)
			break;
	if (rc == 0 && (rc = spk_ucall_decode(cpu, &exit, &uc)) == 0)
		printf("guest returned %llu\n", (unsigned long long)uc.args[0]);
out:
	if (rc < 0)
		fprintf(stderr, "sdk_host: %s\n", spk_last_error());
	spk_vm_destroy(vm);
	return rc == 0 && uc.type == SPK_UCALL_DONE && uc.args[0] == 42 ? 0 : 1;
}
