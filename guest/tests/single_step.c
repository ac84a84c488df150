/* Single-step and a hardware breakpoint at CPL0: DEBUG exits. */
#include <guest.h>

void stepped(void);
void breakpoint_here(void);

__asm__(".text\n"
	".globl stepped\n"
	"stepped:\n"
	"	nop\n"
	"	nop\n"
	"	xor %eax, %eax\n"
	"	inc %eax\n"
	"	ret\n"
	".globl breakpoint_here\n"
	"breakpoint_here:\n"
	"	nop\n"
	"	ret\n");

int main(void)
{
	guest_sync(1, (uint64_t)stepped);   /* the host turns single-step on */
	stepped();
	guest_sync(2, (uint64_t)breakpoint_here); /* hardware breakpoint on it */
	breakpoint_here();
	guest_sync(3, 0);
	return 0;
}
