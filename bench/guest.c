/* SPDX-License-Identifier: Apache-2.0 */
/* The benchmark guests, assembled by hand (see guest.h). */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "guest.h"

/* ---- the pieces ---------------------------------------------------------- */

/* mov $4, %eax: SPK_HC_SYSTEM_OFF for the done hypercall, also the byte the loop writes */
static const uint8_t set_eax64[] = {0xb8, 0x04, 0x00, 0x00, 0x00};
/* the same in real mode: the operand-size prefix makes it 32-bit */
static const uint8_t set_eax16[] = {0x66, 0xb8, 0x04, 0x00, 0x00, 0x00};

/* mov $n, %ecx (imm32 patched into the last 4 bytes) */
static const uint8_t set_ecx64[] = {0xb9, 0x00, 0x00, 0x00, 0x00};
static const uint8_t set_ecx16[] = {0x66, 0xb9, 0x00, 0x00, 0x00, 0x00};

/*
 * The measured loop. These six bytes decode to the same three
 * instructions in 16-bit and 64-bit mode; only the counter's width differs
 * (dec %cx in real mode, dec %ecx in long mode), which is why n stays
 * below 65536.
 */
/* clang-format off */
static const uint8_t loop[] = {
	0xe6, GUEST_PORT_LOOP, /* 1: out %al, $0x80 (an exit nobody claims) */
	0xff, 0xc9,            /*    dec %ecx */
	0x75, 0xfa,            /*    jnz 1b */
};
/* clang-format on */

/*
 * Done, the same bytes for every monitor. In long mode the first out is
 * the 4-byte hypercall SYSTEM_OFF (eax = 4): sparkler powers off, the
 * bare loop stops on the port. In real mode it is a 2-byte write to a port
 * QEMU ignores, and the second out reaches isa-debug-exit, which ends QEMU.
 */
/* clang-format off */
static const uint8_t done[] = {
	0xe7, GUEST_PORT_DONE, /* out %eax, $0xe4 */
	0xe6, GUEST_PORT_QEMU, /* out %al, $0xf4 */
	0xeb, 0xfe,            /* jmp . */
};
/* clang-format on */

/* out %al, $0xe9: one byte on the debug console, which the monitor writes to stdout */
static const uint8_t mark[] = {0xe6, GUEST_PORT_CONSOLE};

/*
 * `sparkler sandbox` starts every guest at CPL0 with rsp = 0. PVM emulates
 * CPL0 code, so to measure exits in the same mode as the in-process runs
 * the guest drops to CPL3 once with iretq (a frame for the sandbox's GDT:
 * user code 0x23, user data 0x1b). PVM clears IOPL on iretq; the sandbox's
 * TSS I/O bitmap opens the ports to CPL3 anyway.
 */
/* clang-format off */
static const uint8_t to_cpl3[] = {
	0xbc, 0x00, 0x00, 0x18, 0x00, /* mov $GUEST_STACK, %esp */
	0x6a, 0x1b,                   /* push $0x1b: ss */
	0x68, 0x00, 0x00, 0x18, 0x00, /* push $GUEST_STACK: rsp */
	0x68, 0x02, 0x30, 0x00, 0x00, /* push $0x3002: rflags with IOPL 3 */
	0x6a, 0x23,                   /* push $0x23: cs */
	0x68, 0x00, 0x00, 0x00, 0x00, /* push $rip: patched, the byte after iretq */
	0x48, 0xcf,                   /* iretq */
};
/* clang-format on */
#define TO_CPL3_RIP_OFF 20

/*
 * The PVH loop (guest_loop_pvh): every instruction decodes the same in
 * 32- and 64-bit mode, so the bare loop can run these bytes too.
 */
/* clang-format off */
static const uint8_t pvh_loop[] = {
	0xe6, GUEST_PORT_LOOP, /* 1: out %al, $0x80 (an exit nobody claims) */
	0x83, 0xe9, 0x01,      /*    sub $1, %ecx */
	0x75, 0xf9,            /*    jnz 1b */
};
static const uint8_t pvh_done[] = {
	0xb0, 0xfe,             /* mov $0xfe, %al */
	0xe6, GUEST_PORT_RESET, /* out %al, $0x64: i8042 reset (sparkler run) */
	0xe6, GUEST_PORT_QEMU,  /* out %al, $0xf4: isa-debug-exit (QEMU) */
	0xeb, 0xfe,             /* jmp . */
};
/* clang-format on */

/* jmp far $0xf000:$0x0000: from the reset vector to the start of the image */
static const uint8_t reset_jump[] = {0xea, 0x00, 0x00, 0x00, 0xf0};
#define RESET_VECTOR 0xfff0

/* ---- assembling ----------------------------------------------------------- */

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* Append bytes; the arrays above always fit in guest_code. */
static void emit(struct guest_code *g, const uint8_t *bytes, size_t len)
{
	memcpy(g->bytes + g->len, bytes, len);
	g->len += len;
}

#define EMIT(g, arr) emit((g), (arr), sizeof(arr))

static void emit_count(struct guest_code *g, const uint8_t *insn, size_t len, uint32_t n)
{
	emit(g, insn, len);
	put_le32(g->bytes + g->len - 4, n);
}

void guest_loop64(struct guest_code *g, uint32_t n)
{
	g->len = 0;
	EMIT(g, set_eax64);
	emit_count(g, set_ecx64, sizeof(set_ecx64), n);
	EMIT(g, loop);
	EMIT(g, done);
}

void guest_loop_sandbox(struct guest_code *g, uint32_t n)
{
	struct guest_code body;

	guest_loop64(&body, n);
	g->len = 0;
	EMIT(g, to_cpl3);
	put_le32(g->bytes + TO_CPL3_RIP_OFF, (uint32_t)(GUEST_LOAD + g->len));
	emit(g, body.bytes, body.len);
}

void guest_startup64(struct guest_code *g)
{
	g->len = 0;
	EMIT(g, mark);
	EMIT(g, mark);
	EMIT(g, set_eax64);
	EMIT(g, done);
}

void guest_oneexit64(struct guest_code *g)
{
	g->len = 0;
	EMIT(g, set_eax64);
	EMIT(g, done);
}

void guest_loop_pvh(struct guest_code *g, uint32_t n)
{
	g->len = 0;
	emit_count(g, set_ecx64, sizeof(set_ecx64), n);
	EMIT(g, pvh_loop);
	EMIT(g, pvh_done);
}

/* hlt everywhere else: a stray jump stops rather than runs garbage */
static void bios_blank(uint8_t *img)
{
	memset(img, 0xf4, GUEST_BIOS_SIZE);
}

void guest_loop_bios(uint8_t *img, uint32_t n)
{
	struct guest_code g = {.len = 0};

	EMIT(&g, set_eax16);
	emit_count(&g, set_ecx16, sizeof(set_ecx16), n);
	EMIT(&g, loop);
	EMIT(&g, done);
	bios_blank(img);
	memcpy(img, g.bytes, g.len);
	memcpy(img + RESET_VECTOR, reset_jump, sizeof(reset_jump));
}

/* The 16 bytes at the reset vector fit these guests exactly. */
static void bios_at_reset(uint8_t *img, const struct guest_code *g)
{
	bios_blank(img);
	memcpy(img + RESET_VECTOR, g->bytes, g->len);
}

void guest_startup_bios(uint8_t *img)
{
	struct guest_code g = {.len = 0};

	EMIT(&g, mark);
	EMIT(&g, mark);
	EMIT(&g, set_eax16);
	EMIT(&g, done);
	bios_at_reset(img, &g);
}

void guest_oneexit_bios(uint8_t *img)
{
	struct guest_code g = {.len = 0};

	EMIT(&g, set_eax16);
	EMIT(&g, done);
	bios_at_reset(img, &g);
}

/* ---- files ------------------------------------------------------------------ */

static int write_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int guest_write_flat(const char *path, const void *bytes, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	if (fd < 0)
		return -errno;
	int rc = write_all(fd, bytes, len);
	int err = errno;
	close(fd);
	return rc < 0 ? -err : 0;
}

/* One PT_LOAD segment at GUEST_LOAD right after the headers: the smallest ELF the sandbox takes. */
struct elf_file {
	Elf64_Ehdr eh;
	Elf64_Phdr ph;
	uint8_t code[sizeof(((struct guest_code *)0)->bytes)];
};

/* The ELF header and the PT_LOAD of code at GUEST_LOAD, shared by the two
 * files below: phoff/phnum say where the program headers are, code_off
 * where the code is in the file. */
static Elf64_Ehdr elf_header(size_t phoff, unsigned phnum)
{
	return (Elf64_Ehdr){
	    .e_ident = {ELFMAG0, ELFMAG1, ELFMAG2, ELFMAG3, ELFCLASS64, ELFDATA2LSB, EV_CURRENT},
	    .e_type = ET_EXEC,
	    .e_machine = EM_X86_64,
	    .e_version = EV_CURRENT,
	    .e_entry = GUEST_LOAD,
	    .e_phoff = phoff,
	    .e_ehsize = sizeof(Elf64_Ehdr),
	    .e_phentsize = sizeof(Elf64_Phdr),
	    .e_phnum = (Elf64_Half)phnum,
	};
}

static Elf64_Phdr code_segment(size_t code_off, size_t len)
{
	return (Elf64_Phdr){
	    .p_type = PT_LOAD,
	    .p_flags = PF_R | PF_X,
	    .p_offset = code_off,
	    .p_vaddr = GUEST_LOAD,
	    .p_paddr = GUEST_LOAD,
	    .p_filesz = len,
	    .p_memsz = len,
	    .p_align = 8,
	};
}

int guest_write_elf(const char *path, const struct guest_code *g)
{
	struct elf_file f = {
	    .eh = elf_header(sizeof(Elf64_Ehdr), 1),
	    .ph = code_segment(offsetof(struct elf_file, code), g->len),
	};

	memcpy(f.code, g->bytes, g->len);
	return guest_write_flat(path, &f, offsetof(struct elf_file, code) + g->len);
}

#define XEN_ELFNOTE_PHYS32_ENTRY 18

/* Xen's PHYS32_ENTRY note: the 32-bit entry point of a PVH kernel */
struct pvh_note {
	Elf64_Nhdr nh;
	char name[4]; /* "Xen" */
	uint32_t entry;
};

/* PT_LOAD of the code at GUEST_LOAD and PT_NOTE of the PVH note: what the
 * PVH loaders of sparkler and of QEMU (load_elfboot) look for. */
struct pvh_file {
	Elf64_Ehdr eh;
	Elf64_Phdr load, note;
	struct pvh_note pvh;
	uint32_t pad; /* the code 8-aligned in the file, as in memory */
	uint8_t code[sizeof(((struct guest_code *)0)->bytes)];
};

int guest_write_pvh(const char *path, const struct guest_code *g)
{
	/* clang-format off */
	struct pvh_file f = {
		.eh = elf_header(offsetof(struct pvh_file, load), 2),
		.load = code_segment(offsetof(struct pvh_file, code), g->len),
		.note = {
			.p_type = PT_NOTE,
			.p_flags = PF_R,
			.p_offset = offsetof(struct pvh_file, pvh),
			.p_filesz = sizeof(struct pvh_note),
			.p_memsz = sizeof(struct pvh_note),
			.p_align = 4,
		},
		.pvh = {
			.nh = {.n_namesz = 4, .n_descsz = 4, .n_type = XEN_ELFNOTE_PHYS32_ENTRY},
			.name = "Xen",
			.entry = (uint32_t)GUEST_LOAD,
		},
	};
	/* clang-format on */
	_Static_assert(offsetof(struct pvh_file, pvh) % 4 == 0, "note alignment");
	_Static_assert(offsetof(struct pvh_file, code) % 8 == 0, "code alignment");

	memcpy(f.code, g->bytes, g->len);
	return guest_write_flat(path, &f, offsetof(struct pvh_file, code) + g->len);
}
