/* SPDX-License-Identifier: Apache-2.0 */
/* SYSTEM_RESET: the guest asks for a reset (hypercall), after one ucall
 * SYNC that tells the host it got this far. */
#include <guest.h>

int main(void)
{
	guest_sync(1, 0x5e7);
	guest_system_reset();
}
