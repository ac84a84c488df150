/* An instruction KVM cannot run: on PVM hosts x87 at CPL0 is emulated and
 * fninit fails; elsewhere fninit runs and the fetch from a hole that
 * follows cannot be emulated. Either way: INTERNAL_ERROR. */
#include <guest.h>

int main(void)
{
	__asm__ volatile("fninit");
	((void (*)(void))0xd0000000ull)();
	return 1;
}
