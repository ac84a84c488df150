/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The guests the benchmarks run, as flat machine code assembled in C
 * arrays (guest.c). Every monitor runs the same bytes where it can: the
 * measured loop decodes the same in 16-bit real mode (QEMU's start) and in
 * 64-bit mode (sparkler's and the bare loop's), and the "done" signal is
 * one byte sequence that each monitor recognises in its own way.
 */
#ifndef SPK_BENCH_GUEST_H
#define SPK_BENCH_GUEST_H

#include <stddef.h>
#include <stdint.h>

#define GUEST_LOAD   0x100000ull /* where long-mode guests are loaded and entered */
#define GUEST_TABLES 0x1000ull   /* page tables, GDT, TSS (sparkler and bare) */
#define GUEST_STACK  0x180000ull /* the sandbox guest's stack for its iretq */

#define GUEST_PORT_LOOP    0x80 /* the measured exit: nobody claims this port */
#define GUEST_PORT_DONE    0xe4 /* SPK_HC_PORT: hypercall SPK_HC_SYSTEM_OFF */
#define GUEST_PORT_CONSOLE 0xe9 /* debug console: sandbox, bare, QEMU debugcon */
#define GUEST_PORT_QEMU    0xf4 /* QEMU's isa-debug-exit */
#define GUEST_PORT_RESET   0x64 /* i8042 command port: 0xfe pulses the CPU's reset line */

#define GUEST_BIOS_SIZE 0x10000 /* QEMU -bios image: 64 KiB, reset vector at 0xfff0 */
#define GUEST_LOOP_MAX  0xffff  /* the loop counter is %cx in real mode */

/* Status QEMU exits with when isa-debug-exit sees our done byte (4). */
#define GUEST_QEMU_STATUS ((4 << 1) | 1)
/* ... and the PVH guest's byte (0xfe), truncated to 8 bits by exit() */
#define GUEST_PVH_QEMU_STATUS (((0xfe << 1) | 1) & 0xff)

struct guest_code {
	uint8_t bytes[128];
	size_t len;
};

/* n port writes to GUEST_PORT_LOOP, then done; entered in 64-bit mode. */
void guest_loop64(struct guest_code *g, uint32_t n);

/* The same for `sparkler sandbox`: starts at CPL0, iretq's to CPL3 first. */
void guest_loop_sandbox(struct guest_code *g, uint32_t n);

/* Two bytes to the debug console (first instruction, then "about to finish"), then done. */
void guest_startup64(struct guest_code *g);

/* Only the done signal: a VM that lives for one exit. */
void guest_oneexit64(struct guest_code *g);

/*
 * n port writes to GUEST_PORT_LOOP, then the reset: the code of the PVH
 * kernel that `sparkler run --kernel` and QEMU's `-kernel` both enter in
 * 32-bit protected mode at GUEST_LOAD. The bytes decode the same in 32-
 * and 64-bit mode. The end is `out $0xfe` to the i8042 command port, which
 * resets sparkler's machine (`sparkler run` exits 3) and which QEMU's
 * microvm, having no i8042, ignores; the next `out` reaches its
 * isa-debug-exit (status GUEST_PVH_QEMU_STATUS). The bare loop stops at
 * GUEST_PORT_RESET.
 */
void guest_loop_pvh(struct guest_code *g, uint32_t n);

/*
 * QEMU -bios images (GUEST_BIOS_SIZE bytes) of the same guests in real
 * mode. The loop image starts with a far jump at the reset vector; the
 * other two put their first instruction at the reset vector itself.
 */
void guest_loop_bios(uint8_t *img, uint32_t n);
void guest_startup_bios(uint8_t *img);
void guest_oneexit_bios(uint8_t *img);

/* Write code as a file: flat, or as an ELF64 executable loaded at GUEST_LOAD. */
int guest_write_flat(const char *path, const void *bytes, size_t len);
int guest_write_elf(const char *path, const struct guest_code *g);
/* ... as an ELF64 kernel with the PVH note (XEN_ELFNOTE_PHYS32_ENTRY) naming GUEST_LOAD */
int guest_write_pvh(const char *path, const struct guest_code *g);

#endif
