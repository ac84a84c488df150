/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A vCPU the monitor starts directly at CPL3 (spk_x86_entry .cpl = 3,
 * .iopl = 3; tests/guest/guest_tests.c, case cpl3_entry). vCPU 0 runs
 * main() at CPL0 and only reports where user_entry and its stack are
 * (ucall SYNC 1). The host starts vCPU 1 at user_entry with rdi and rsi
 * set; it never passes through CPL0 and does port I/O at CPL3:
 *   outl 0x520 <- rdi * 3 + rsi      (the entry registers arrived)
 *   outl 0x521 <- RFLAGS             (IOPL as the CPU sees it)
 *   outw 0x522 <- CS                 (the selector, RPL 3)
 * then spins on outb 0x523. On PVM hosts the guest reads IOPL 0 and the
 * host's user CS (0x33): PVM runs guest CPL3 as host user mode; the port
 * writes still exit, through the TSS I/O bitmap (the host opens these
 * four ports with spk_x86_long_mode_allow_ports).
 */
#include <guest.h>

extern char user_entry[];
static uint8_t user_stack[4096] __attribute__((aligned(16)));

__asm__(".text\n"
	".globl user_entry\n"
	"user_entry:\n"
	"	lea (%rsi, %rdi, 2), %rax\n"
	"	add %rdi, %rax\n"
	"	mov $0x520, %dx\n"
	"	out %eax, %dx\n"
	"	pushfq\n"
	"	pop %rax\n"
	"	mov $0x521, %dx\n"
	"	out %eax, %dx\n"
	"	mov %cs, %ax\n"
	"	mov $0x522, %dx\n"
	"	out %ax, %dx\n"
	"1:	mov $0x523, %dx\n"
	"	out %al, %dx\n"
	"	jmp 1b\n");

int main(void)
{
	guest_sync(1, (uint64_t)user_entry);
	guest_sync(2, (uint64_t)(user_stack + sizeof(user_stack)));
	return 0;
}
