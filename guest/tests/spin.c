/* Spin forever at CPL3, counting: the host kicks, pauses and resumes. */
#include <guest.h>

volatile uint64_t spin_count;

static uint64_t spin(uint64_t arg)
{
	outl(0x84, (uint32_t)(uint64_t)&spin_count); /* where to watch */
	outb(0x80, 1); /* tell the host we are at CPL3 */
	for (;;)
		spin_count++;
	return 0;
}

int main(void)
{
	guest_user_allow_ports(0x80, 8); /* outb 0x80, outl 0x84-0x87 */
	return (int)guest_run_user(spin, 0);
}
