/* SPDX-License-Identifier: Apache-2.0 */
/*
 * x86-64 for the gdb stub, the pure part: the register file gdb sees and
 * its target description, guest page-table walks, and debug-register
 * (DR7) encoding. No KVM: unit-tested and fuzzed on their own.
 */
#ifndef SPK_VMM_GDB_X86_H
#define SPK_VMM_GDB_X86_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sparkler/x86.h>

/* ---- registers ----------------------------------------------------------- */

/*
 * gdb's register numbers in our target description (i386:x86-64): the
 * 64bit-core feature (general registers, rip, eflags, segment selectors,
 * x87), 64bit-sse, 64bit-segments (fs_base, gs_base), and our own
 * org.sparkler.gdb.x86.sys (control registers and EFER).
 */
enum {
	GDB_X86_RAX = 0, /* rax rbx rcx rdx rsi rdi rbp rsp r8..r15: 0..15 */
	GDB_X86_RIP = 16,
	GDB_X86_EFLAGS,
	GDB_X86_CS,       /* cs ss ds es fs gs: 18..23 */
	GDB_X86_ST0 = 24, /* st0..st7, then fctrl..fop: unavailable */
	GDB_X86_FCTRL = 32,
	GDB_X86_XMM0 = 40, /* xmm0..xmm15, mxcsr: unavailable */
	GDB_X86_MXCSR = 56,
	GDB_X86_FS_BASE = 57,
	GDB_X86_GS_BASE,
	GDB_X86_CR0, /* cr0 cr2 cr3 cr4 cr8 efer */
	GDB_X86_CR2,
	GDB_X86_CR3,
	GDB_X86_CR4,
	GDB_X86_CR8,
	GDB_X86_EFER,
	GDB_X86_NREGS
};

/* What the stub holds of one vCPU: its registers and system registers. */
struct gdb_x86_state {
	struct spk_x86_regs regs;
	struct spk_x86_sregs sregs;
};

/* Size in bytes of register n in the g packet (0 for an unknown n). */
unsigned gdb_x86_reg_size(unsigned n);
/* Whether we can give register n (the others read as "xx..."). */
bool gdb_x86_reg_available(unsigned n);

/*
 * One register as hex into out (2 * size chars, no NUL), "xx" for an
 * unavailable one. Returns the number of chars, 0 for an unknown n.
 */
size_t gdb_x86_reg_hex(const struct gdb_x86_state *s, unsigned n, char *out);
/* All registers (the g reply) into out; returns its length. */
size_t gdb_x86_regs_hex(const struct gdb_x86_state *s, char *out, size_t cap);

/*
 * Write register n from its bytes in target order (little-endian). The
 * x87/SSE registers we cannot give cannot be written either, and a
 * segment selector only with the value it has. 0, or -1 with *why set.
 */
int gdb_x86_reg_set(struct gdb_x86_state *s, unsigned n, const uint8_t *val, size_t len,
                    const char **why);
/* The G packet: every register in order; "xx" bytes leave a register as it is. */
int gdb_x86_regs_set(struct gdb_x86_state *s, const char *hex, size_t len, const char **why);

/*
 * The target description (qXfer:features:read) into out: "target.xml" is
 * the only annex. Its length, or 0 for another annex or too small a buffer.
 */
#define GDB_X86_XML_MAX 8192
size_t gdb_x86_xml(const char *annex, char *out, size_t cap);

/* ---- guest page tables ------------------------------------------------------- */

/* Read guest-physical memory: 0, or negative if any byte is not there. */
typedef int (*gdb_read_phys_fn)(void *ctx, uint64_t gpa, void *buf, size_t len);

/*
 * Translate a guest-virtual address as the vCPU's MMU would (paging off,
 * 32-bit, PAE, 4- and 5-level long mode, large pages). Accessed/dirty bits
 * are not set. On success *gpa is the address and *left the bytes to the
 * end of its page; -1 when not mapped (or a table is outside memory).
 */
int gdb_x86_translate(const struct spk_x86_sregs *s, uint64_t gva, gdb_read_phys_fn rd, void *ctx,
                      uint64_t *gpa, uint64_t *left);

/* ---- debug registers ------------------------------------------------------------- */

/* What a debug register watches (DR7 R/W bits). */
enum gdb_x86_dr_type {
	GDB_X86_DR_EXEC = 0,
	GDB_X86_DR_WRITE = 1,
	GDB_X86_DR_ACCESS = 3, /* read or write: x86 has no read-only kind */
};

struct gdb_x86_dr {
	bool used;
	enum gdb_x86_dr_type type;
	uint64_t addr;
	unsigned len; /* 1, 2, 4 or 8; 1 for EXEC */
};

/* DR7 for four slots: local enable, R/W and LEN of each used one, LE/GE. */
uint64_t gdb_x86_dr7(const struct gdb_x86_dr dr[4]);

/*
 * Split [addr, addr + len) into naturally aligned pieces of 1, 2, 4 or 8
 * bytes, as debug registers need them. The number of pieces, or -1 if
 * more than max are needed (or len is 0 or the range wraps).
 */
int gdb_x86_split(uint64_t addr, uint64_t len, uint64_t *piece_addr, unsigned *piece_len, int max);

#endif
