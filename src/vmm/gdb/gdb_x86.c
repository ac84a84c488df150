/* SPDX-License-Identifier: Apache-2.0 */
/* x86-64 for the gdb stub: registers, target description, page walks, DR7. */
#include <stdio.h>
#include <string.h>

#include "vmm/gdb/gdb_proto.h"
#include "vmm/gdb/gdb_x86.h"

/* ---- registers ----------------------------------------------------------- */

unsigned gdb_x86_reg_size(unsigned n)
{
	if (n <= GDB_X86_RIP)
		return 8;
	if (n < GDB_X86_ST0)
		return 4; /* eflags, selectors */
	if (n < GDB_X86_FCTRL)
		return 10;
	if (n < GDB_X86_XMM0)
		return 4;
	if (n < GDB_X86_MXCSR)
		return 16;
	if (n == GDB_X86_MXCSR)
		return 4;
	if (n < GDB_X86_NREGS)
		return 8;
	return 0;
}

bool gdb_x86_reg_available(unsigned n)
{
	return n < GDB_X86_ST0 || (n >= GDB_X86_FS_BASE && n < GDB_X86_NREGS);
}

/* The general registers in gdb's order (not struct spk_x86_regs's). */
static uint64_t *gpr(struct spk_x86_regs *r, unsigned n)
{
	uint64_t *const map[16] = {&r->rax, &r->rbx, &r->rcx, &r->rdx, &r->rsi, &r->rdi,
	                           &r->rbp, &r->rsp, &r->r8,  &r->r9,  &r->r10, &r->r11,
	                           &r->r12, &r->r13, &r->r14, &r->r15};
	return map[n];
}

static struct spk_x86_segment *seg(struct spk_x86_sregs *s, unsigned n)
{
	struct spk_x86_segment *const map[6] = {&s->cs, &s->ss, &s->ds, &s->es, &s->fs, &s->gs};
	return map[n - GDB_X86_CS];
}

static uint64_t *sysreg(struct spk_x86_sregs *s, unsigned n)
{
	uint64_t *const map[8] = {&s->fs.base, &s->gs.base, &s->cr0, &s->cr2,
	                          &s->cr3,     &s->cr4,     &s->cr8, &s->efer};
	return map[n - GDB_X86_FS_BASE];
}

/* The value of an available register (the state is not changed). */
static uint64_t reg_value(const struct gdb_x86_state *cs, unsigned n)
{
	struct gdb_x86_state *s = (struct gdb_x86_state *)cs;

	if (n < GDB_X86_RIP)
		return *gpr(&s->regs, n);
	if (n == GDB_X86_RIP)
		return s->regs.rip;
	if (n == GDB_X86_EFLAGS)
		return s->regs.rflags & 0xffffffffu;
	if (n < GDB_X86_ST0)
		return seg(&s->sregs, n)->selector;
	return *sysreg(&s->sregs, n);
}

size_t gdb_x86_reg_hex(const struct gdb_x86_state *s, unsigned n, char *out)
{
	unsigned size = gdb_x86_reg_size(n);
	uint8_t le[8];

	if (!size)
		return 0;
	if (!gdb_x86_reg_available(n)) {
		memset(out, 'x', 2 * size);
		return 2 * size;
	}
	uint64_t v = reg_value(s, n);
	for (unsigned i = 0; i < size; i++)
		le[i] = (uint8_t)(v >> (8 * i));
	return gdb_hex_encode(out, le, size);
}

size_t gdb_x86_regs_hex(const struct gdb_x86_state *s, char *out, size_t cap)
{
	size_t o = 0;

	for (unsigned n = 0; n < GDB_X86_NREGS; n++) {
		if (o + 2 * gdb_x86_reg_size(n) > cap)
			return 0;
		o += gdb_x86_reg_hex(s, n, out + o);
	}
	return o;
}

int gdb_x86_reg_set(struct gdb_x86_state *s, unsigned n, const uint8_t *val, size_t len,
                    const char **why)
{
	unsigned size = gdb_x86_reg_size(n);
	uint64_t v = 0;

	if (!size || len != size) {
		*why = size ? "wrong size for the register" : "no such register";
		return -1;
	}
	if (!gdb_x86_reg_available(n)) {
		*why = "x87 and SSE registers are not available";
		return -1;
	}
	for (unsigned i = 0; i < size; i++)
		v |= (uint64_t)val[i] << (8 * i);
	if (n < GDB_X86_RIP)
		*gpr(&s->regs, n) = v;
	else if (n == GDB_X86_RIP)
		s->regs.rip = v;
	else if (n == GDB_X86_EFLAGS)
		s->regs.rflags = (s->regs.rflags & ~0xffffffffull) | v;
	else if (n < GDB_X86_ST0) {
		if (v != seg(&s->sregs, n)->selector) {
			*why = "segment selectors cannot be changed from the debugger";
			return -1;
		}
	} else {
		*sysreg(&s->sregs, n) = v;
	}
	return 0;
}

int gdb_x86_regs_set(struct gdb_x86_state *s, const char *hex, size_t len, const char **why)
{
	struct gdb_x86_state next = *s;
	size_t o = 0;

	/* gdb sends every register of the description; a shorter G is allowed
	 * (the rest keep their values), a longer one is not */
	for (unsigned n = 0; n < GDB_X86_NREGS && o < len; n++) {
		unsigned size = gdb_x86_reg_size(n);
		uint8_t val[16];

		if (len - o < 2 * size) {
			*why = "register data ends inside a register";
			return -1;
		}
		bool unknown = hex[o] == 'x';
		if (!unknown && gdb_hex_decode(val, hex + o, 2 * size) < 0) {
			*why = "register data is not hex";
			return -1;
		}
		o += 2 * size;
		if (unknown || !gdb_x86_reg_available(n))
			continue; /* what gdb could not read, it sends back as it is */
		if (n >= GDB_X86_CS && n < GDB_X86_ST0) {
			uint64_t v = (uint64_t)val[0] | (uint64_t)val[1] << 8;
			if (v != seg(&next.sregs, n)->selector) {
				*why = "segment selectors cannot be changed from the debugger";
				return -1;
			}
			continue;
		}
		if (gdb_x86_reg_set(&next, n, val, size, why) < 0)
			return -1;
	}
	if (o != len) {
		*why = "more register data than registers";
		return -1;
	}
	*s = next;
	return 0;
}

/* ---- target description -------------------------------------------------------- */

struct reg_desc {
	const char *name;
	unsigned bits;
	const char *type;
	const char *group; /* NULL: gdb's default for the type */
};

/* clang-format off */
#define R(name, bits, type)         {name, bits, type, NULL}
#define RG(name, bits, type, group) {name, bits, type, group}
static const struct reg_desc reg_descs[GDB_X86_NREGS] = {
	R("rax", 64, "int64"), R("rbx", 64, "int64"), R("rcx", 64, "int64"), R("rdx", 64, "int64"),
	R("rsi", 64, "int64"), R("rdi", 64, "int64"), R("rbp", 64, "data_ptr"),
	R("rsp", 64, "data_ptr"), R("r8", 64, "int64"), R("r9", 64, "int64"), R("r10", 64, "int64"),
	R("r11", 64, "int64"), R("r12", 64, "int64"), R("r13", 64, "int64"), R("r14", 64, "int64"),
	R("r15", 64, "int64"), R("rip", 64, "code_ptr"), R("eflags", 32, "i386_eflags"),
	R("cs", 32, "int32"), R("ss", 32, "int32"), R("ds", 32, "int32"), R("es", 32, "int32"),
	R("fs", 32, "int32"), R("gs", 32, "int32"), R("st0", 80, "i387_ext"),
	R("st1", 80, "i387_ext"), R("st2", 80, "i387_ext"), R("st3", 80, "i387_ext"),
	R("st4", 80, "i387_ext"), R("st5", 80, "i387_ext"), R("st6", 80, "i387_ext"),
	R("st7", 80, "i387_ext"), RG("fctrl", 32, "int", "float"), RG("fstat", 32, "int", "float"),
	RG("ftag", 32, "int", "float"), RG("fiseg", 32, "int", "float"),
	RG("fioff", 32, "int", "float"), RG("foseg", 32, "int", "float"),
	RG("fooff", 32, "int", "float"), RG("fop", 32, "int", "float"), R("xmm0", 128, "vec128"),
	R("xmm1", 128, "vec128"), R("xmm2", 128, "vec128"), R("xmm3", 128, "vec128"),
	R("xmm4", 128, "vec128"), R("xmm5", 128, "vec128"), R("xmm6", 128, "vec128"),
	R("xmm7", 128, "vec128"), R("xmm8", 128, "vec128"), R("xmm9", 128, "vec128"),
	R("xmm10", 128, "vec128"), R("xmm11", 128, "vec128"), R("xmm12", 128, "vec128"),
	R("xmm13", 128, "vec128"), R("xmm14", 128, "vec128"), R("xmm15", 128, "vec128"),
	RG("mxcsr", 32, "i386_mxcsr", "vector"), R("fs_base", 64, "int"), R("gs_base", 64, "int"),
	R("cr0", 64, "int"), R("cr2", 64, "int"), R("cr3", 64, "int"), R("cr4", 64, "int"),
	R("cr8", 64, "int"), R("efer", 64, "int"),
};
#undef R
#undef RG
/* clang-format on */

/* The features, each with its types and the registers from `first` on. */
static const struct {
	const char *name;
	unsigned first;
	const char *types;
} features[] = {
    {"org.gnu.gdb.i386.core", GDB_X86_RAX,
     "<flags id=\"i386_eflags\" size=\"4\">"
     "<field name=\"CF\" start=\"0\" end=\"0\"/><field name=\"\" start=\"1\" end=\"1\"/>"
     "<field name=\"PF\" start=\"2\" end=\"2\"/><field name=\"AF\" start=\"4\" end=\"4\"/>"
     "<field name=\"ZF\" start=\"6\" end=\"6\"/><field name=\"SF\" start=\"7\" end=\"7\"/>"
     "<field name=\"TF\" start=\"8\" end=\"8\"/><field name=\"IF\" start=\"9\" end=\"9\"/>"
     "<field name=\"DF\" start=\"10\" end=\"10\"/><field name=\"OF\" start=\"11\" end=\"11\"/>"
     "<field name=\"NT\" start=\"14\" end=\"14\"/><field name=\"RF\" start=\"16\" end=\"16\"/>"
     "<field name=\"VM\" start=\"17\" end=\"17\"/><field name=\"AC\" start=\"18\" end=\"18\"/>"
     "<field name=\"VIF\" start=\"19\" end=\"19\"/>"
     "<field name=\"VIP\" start=\"20\" end=\"20\"/>"
     "<field name=\"ID\" start=\"21\" end=\"21\"/></flags>\n"},
    {"org.gnu.gdb.i386.sse", GDB_X86_XMM0,
     "<vector id=\"v4f\" type=\"ieee_single\" count=\"4\"/>"
     "<vector id=\"v2d\" type=\"ieee_double\" count=\"2\"/>"
     "<vector id=\"v16i8\" type=\"int8\" count=\"16\"/>"
     "<vector id=\"v8i16\" type=\"int16\" count=\"8\"/>"
     "<vector id=\"v4i32\" type=\"int32\" count=\"4\"/>"
     "<vector id=\"v2i64\" type=\"int64\" count=\"2\"/>\n"
     "<union id=\"vec128\"><field name=\"v4_float\" type=\"v4f\"/>"
     "<field name=\"v2_double\" type=\"v2d\"/><field name=\"v16_int8\" type=\"v16i8\"/>"
     "<field name=\"v8_int16\" type=\"v8i16\"/><field name=\"v4_int32\" type=\"v4i32\"/>"
     "<field name=\"v2_int64\" type=\"v2i64\"/><field name=\"uint128\" type=\"uint128\"/>"
     "</union>\n"
     "<flags id=\"i386_mxcsr\" size=\"4\">"
     "<field name=\"IE\" start=\"0\" end=\"0\"/><field name=\"DE\" start=\"1\" end=\"1\"/>"
     "<field name=\"ZE\" start=\"2\" end=\"2\"/><field name=\"OE\" start=\"3\" end=\"3\"/>"
     "<field name=\"UE\" start=\"4\" end=\"4\"/><field name=\"PE\" start=\"5\" end=\"5\"/>"
     "<field name=\"DAZ\" start=\"6\" end=\"6\"/><field name=\"IM\" start=\"7\" end=\"7\"/>"
     "<field name=\"DM\" start=\"8\" end=\"8\"/><field name=\"ZM\" start=\"9\" end=\"9\"/>"
     "<field name=\"OM\" start=\"10\" end=\"10\"/><field name=\"UM\" start=\"11\" end=\"11\"/>"
     "<field name=\"PM\" start=\"12\" end=\"12\"/><field name=\"FZ\" start=\"15\" end=\"15\"/>"
     "</flags>\n"},
    {"org.gnu.gdb.i386.segments", GDB_X86_FS_BASE, ""},
    {"org.sparkler.gdb.x86.sys", GDB_X86_CR0, ""},
};

#define NFEATURES (sizeof(features) / sizeof(features[0]))

/* Append to out at *o; false when it does not fit. */
static bool put(char *out, size_t cap, size_t *o, const char *s)
{
	size_t n = strlen(s);

	if (n >= cap - *o)
		return false;
	memcpy(out + *o, s, n + 1);
	*o += n;
	return true;
}

static bool put_reg(char *out, size_t cap, size_t *o, const struct reg_desc *r)
{
	char line[128];

	snprintf(line, sizeof(line), "<reg name=\"%s\" bitsize=\"%u\" type=\"%s\"%s%s%s/>\n",
	         r->name, r->bits, r->type, r->group ? " group=\"" : "", r->group ? r->group : "",
	         r->group ? "\"" : "");
	return put(out, cap, o, line);
}

size_t gdb_x86_xml(const char *annex, char *out, size_t cap)
{
	size_t o = 0;
	bool ok;

	if (strcmp(annex, "target.xml") != 0 || cap == 0)
		return 0;
	ok = put(out, cap, &o,
	         "<?xml version=\"1.0\"?>\n<!DOCTYPE target SYSTEM \"gdb-target.dtd\">\n"
	         "<target version=\"1.0\">\n<architecture>i386:x86-64</architecture>\n");
	for (unsigned f = 0; f < NFEATURES && ok; f++) {
		unsigned end = f + 1 < NFEATURES ? features[f + 1].first : GDB_X86_NREGS;

		ok = put(out, cap, &o, "<feature name=\"") && put(out, cap, &o, features[f].name) &&
		     put(out, cap, &o, "\">\n") && put(out, cap, &o, features[f].types);
		for (unsigned n = features[f].first; n < end && ok; n++)
			ok = put_reg(out, cap, &o, &reg_descs[n]);
		ok = ok && put(out, cap, &o, "</feature>\n");
	}
	ok = ok && put(out, cap, &o, "</target>\n");
	return ok ? o : 0;
}

/* ---- guest page tables ------------------------------------------------------- */

#define CR0_PG   (1ull << 31)
#define CR4_PSE  (1ull << 4)
#define CR4_PAE  (1ull << 5)
#define CR4_LA57 (1ull << 12)
#define EFER_LMA (1ull << 10)
#define PTE_P    1ull
#define PTE_PS   (1ull << 7)
#define ADDR_52  0x000ffffffffff000ull

static int read_entry(gdb_read_phys_fn rd, void *ctx, uint64_t gpa, unsigned size, uint64_t *e)
{
	uint8_t b[8];

	if (rd(ctx, gpa, b, size) < 0)
		return -1;
	*e = 0;
	for (unsigned i = 0; i < size; i++)
		*e |= (uint64_t)b[i] << (8 * i);
	return (*e & PTE_P) ? 0 : -1;
}

static void done_page(uint64_t frame, uint64_t gva, unsigned shift, uint64_t *gpa, uint64_t *left)
{
	uint64_t size = 1ull << shift;

	*gpa = (frame & ~(size - 1)) | (gva & (size - 1));
	*left = size - (gva & (size - 1));
}

/* 64-bit entries (PAE and long mode), from `levels` levels down. */
static int walk64(uint64_t table, uint64_t gva, int levels, gdb_read_phys_fn rd, void *ctx,
                  uint64_t *gpa, uint64_t *left)
{
	for (int level = levels; level >= 1; level--) {
		unsigned shift = 12 + 9 * (unsigned)(level - 1);
		uint64_t index = (gva >> shift) & 511, e;

		if (read_entry(rd, ctx, table + index * 8, 8, &e) < 0)
			return -1;
		if (level == 1 || ((level == 2 || level == 3) && (e & PTE_PS))) {
			done_page(e & ADDR_52, gva, shift, gpa, left);
			return 0;
		}
		table = e & ADDR_52;
	}
	return -1;
}

static int walk_pae(const struct spk_x86_sregs *s, uint64_t gva, gdb_read_phys_fn rd, void *ctx,
                    uint64_t *gpa, uint64_t *left)
{
	uint64_t e;

	gva &= 0xffffffffu;
	if (read_entry(rd, ctx, (s->cr3 & 0xffffffe0u) + (gva >> 30) * 8, 8, &e) < 0)
		return -1;
	return walk64(e & ADDR_52, gva, 2, rd, ctx, gpa, left);
}

static int walk32(const struct spk_x86_sregs *s, uint64_t gva, gdb_read_phys_fn rd, void *ctx,
                  uint64_t *gpa, uint64_t *left)
{
	uint64_t pde, pte;

	gva &= 0xffffffffu;
	if (read_entry(rd, ctx, (s->cr3 & 0xfffff000u) + (gva >> 22) * 4, 4, &pde) < 0)
		return -1;
	if ((pde & PTE_PS) && (s->cr4 & CR4_PSE)) {
		/* 4 MiB page; PSE-36 puts address bits 32-39 in bits 13-20 */
		uint64_t frame = (pde & 0xffc00000u) | ((pde >> 13) & 0xff) << 32;
		done_page(frame, gva, 22, gpa, left);
		return 0;
	}
	if (read_entry(rd, ctx, (pde & 0xfffff000u) + ((gva >> 12) & 1023) * 4, 4, &pte) < 0)
		return -1;
	done_page(pte & 0xfffff000u, gva, 12, gpa, left);
	return 0;
}

int gdb_x86_translate(const struct spk_x86_sregs *s, uint64_t gva, gdb_read_phys_fn rd, void *ctx,
                      uint64_t *gpa, uint64_t *left)
{
	if (!(s->cr0 & CR0_PG)) {
		done_page(gva, gva, 12, gpa, left);
		return 0;
	}
	if (s->efer & EFER_LMA) {
		int levels = (s->cr4 & CR4_LA57) ? 5 : 4;
		unsigned bits = levels == 5 ? 57 : 48;
		int64_t canon = (int64_t)(gva << (64 - bits)) >> (64 - bits);

		if ((uint64_t)canon != gva)
			return -1; /* non-canonical: no page maps it */
		return walk64(s->cr3 & ADDR_52, gva, levels, rd, ctx, gpa, left);
	}
	if (s->cr4 & CR4_PAE)
		return walk_pae(s, gva, rd, ctx, gpa, left);
	return walk32(s, gva, rd, ctx, gpa, left);
}

/* ---- debug registers ------------------------------------------------------------- */

static uint64_t len_bits(unsigned len)
{
	switch (len) {
	case 2:
		return 1;
	case 4:
		return 3;
	case 8:
		return 2;
	default:
		return 0;
	}
}

uint64_t gdb_x86_dr7(const struct gdb_x86_dr dr[4])
{
	uint64_t dr7 = 0;

	for (unsigned i = 0; i < 4; i++) {
		if (!dr[i].used)
			continue;
		uint64_t len = dr[i].type == GDB_X86_DR_EXEC ? 0 : len_bits(dr[i].len);

		dr7 |= 1ull << (2 * i);                      /* Ln */
		dr7 |= (uint64_t)dr[i].type << (16 + 4 * i); /* R/Wn */
		dr7 |= len << (18 + 4 * i);                  /* LENn */
	}
	if (dr7)
		dr7 |= 3ull << 8; /* LE, GE: exact data breakpoints */
	return dr7;
}

int gdb_x86_split(uint64_t addr, uint64_t len, uint64_t *piece_addr, unsigned *piece_len, int max)
{
	uint64_t end;
	int n = 0;

	if (len == 0 || __builtin_add_overflow(addr, len, &end))
		return -1;
	while (addr < end) {
		unsigned size = 8;

		while (size > 1 && (addr % size || end - addr < size))
			size /= 2;
		if (n == max)
			return -1;
		piece_addr[n] = addr;
		piece_len[n] = size;
		n++;
		addr += size;
	}
	return n;
}
