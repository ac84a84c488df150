/* SYSTEM_OFF: the guest powers off. */
#include <guest.h>

int main(void)
{
	guest_system_off();
}
