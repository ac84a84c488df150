/* A guest built with the installed guest SDK (README, "Guest programs"):
 *   gcc -o sdk_guest.elf sdk_guest.c $(pkg-config --cflags --libs sparkler-guest)
 * It prints from CPL0, runs a function at CPL3 that may use only the
 * hypercall port, and returns 42 to the host (a ucall DONE). */
#include <guest.h>

static uint64_t at_user(uint64_t x)
{
	guest_printf("hello from CPL3, x = %lu\n", x);
	return x * 2;
}

int main(void)
{
	guest_printf("hello from the guest on vCPU %u\n", guest_vcpu_id());
	guest_user_allow_ports(SPK_HC_PORT, 4); /* CPL3 may make hypercalls */
	return (int)guest_run_user(at_user, 21);
}
