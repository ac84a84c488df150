/* SPDX-License-Identifier: Apache-2.0 */
/* PSCI SYSTEM_RESET: a RESET exit. */
#include <guest.h>

int main(void)
{
	guest_sync(1, 0);
	guest_system_reset();
}
