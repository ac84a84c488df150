/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ELF64 x86-64 loader. The image is user input: every header field is
 * checked, and every program header of the whole table is checked against
 * the image and guest memory, before the first byte is written to the
 * guest. A refused image leaves guest memory untouched.
 *
 * Headers are copied out with memcpy, never read in place: the image has
 * no alignment guarantee and e_phoff may point anywhere.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sparkler/loader.h>
#include "core/internal.h"

/* More than any real kernel or test guest needs; bounds the checks. */
#define ELF_MAX_PHNUM 64

/* What the checks keep of the image, so the copy pass trusts nothing else. */
struct elf_seg {
	unsigned index; /* program header number, for messages */
	uint64_t offset;
	uint64_t filesz;
	uint64_t paddr;
	uint64_t memsz;
};

struct elf_plan {
	uint64_t entry;
	unsigned nsegs;
	struct elf_seg segs[ELF_MAX_PHNUM];
};

static int check_ident(const Elf64_Ehdr *eh)
{
	const unsigned char *id = eh->e_ident;

	if (memcmp(id, ELFMAG, SELFMAG) != 0)
		return spk_fail(ENOEXEC, "elf: bad magic %02x %02x %02x %02x (want 7f 45 4c 46)",
		                id[EI_MAG0], id[EI_MAG1], id[EI_MAG2], id[EI_MAG3]);
	if (id[EI_CLASS] != ELFCLASS64)
		return spk_fail(ENOEXEC, "elf: EI_CLASS %u is not ELFCLASS64 (%u)", id[EI_CLASS],
		                ELFCLASS64);
	if (id[EI_DATA] != ELFDATA2LSB)
		return spk_fail(ENOEXEC, "elf: EI_DATA %u is not ELFDATA2LSB (%u)", id[EI_DATA],
		                ELFDATA2LSB);
	if (id[EI_VERSION] != EV_CURRENT)
		return spk_fail(ENOEXEC, "elf: EI_VERSION %u is not EV_CURRENT (%u)",
		                id[EI_VERSION], EV_CURRENT);
	return 0;
}

/* Guests are of the architecture the library is built for. */
#if defined(__aarch64__)
#define GUEST_MACHINE      EM_AARCH64
#define GUEST_MACHINE_NAME "EM_AARCH64"
#else
#define GUEST_MACHINE      EM_X86_64
#define GUEST_MACHINE_NAME "EM_X86_64"
#endif

static int check_ehdr(const Elf64_Ehdr *eh, size_t size)
{
	uint64_t end;
	int err = check_ident(eh);

	if (err)
		return err;
	if (eh->e_version != EV_CURRENT)
		return spk_fail(ENOEXEC, "elf: e_version %" PRIu32 " is not EV_CURRENT (%u)",
		                eh->e_version, EV_CURRENT);
	if (eh->e_machine != GUEST_MACHINE)
		return spk_fail(ENOEXEC, "elf: e_machine %u is not %s (%u)", eh->e_machine,
		                GUEST_MACHINE_NAME, GUEST_MACHINE);
	if (eh->e_type != ET_EXEC)
		return spk_fail(ENOEXEC, "elf: e_type %u is not ET_EXEC (%u)", eh->e_type, ET_EXEC);
	if (eh->e_entry == 0)
		return spk_fail(ENOEXEC, "elf: e_entry is 0");
	if (eh->e_phentsize != sizeof(Elf64_Phdr))
		return spk_fail(ENOEXEC, "elf: e_phentsize %u is not %zu", eh->e_phentsize,
		                sizeof(Elf64_Phdr));
	/* PN_XNUM (extended numbering) is above the limit too. */
	if (eh->e_phnum == 0 || eh->e_phnum > ELF_MAX_PHNUM)
		return spk_fail(ENOEXEC, "elf: e_phnum %u is not in 1..%u", eh->e_phnum,
		                ELF_MAX_PHNUM);
	/* phnum * phentsize is at most 64 * 56, so only the sum can wrap. */
	if (!spk_add_ok(eh->e_phoff, (uint64_t)eh->e_phnum * eh->e_phentsize, &end) || end > size)
		return spk_fail(ENOEXEC,
		                "elf: program header table at e_phoff 0x%" PRIx64
		                " (%u entries of %u bytes) beyond the %zu-byte image",
		                eh->e_phoff, eh->e_phnum, eh->e_phentsize, size);
	return 0;
}

/*
 * Host pointer to the part of [gpa, gpa + len) that lies in the one region
 * holding gpa, its length in *n; NULL when that region is missing, not
 * populated, or refuses the access.
 * The region list only says where the piece ends: the checked accessor
 * still vouches for the piece itself.
 */
static void *mem_piece(const struct spk_mem *mem, uint64_t gpa, uint64_t len, uint64_t *n)
{
	const struct spk_mem_region *r = spk_mem_find(mem, gpa);
	uint64_t left;

	/* An unpopulated region is found too: spk_mem_ptr() refuses it. */
	if (!r || gpa < r->gpa || gpa - r->gpa >= r->size)
		return NULL;
	left = r->size - (gpa - r->gpa); /* not r->gpa + r->size: that may be 2^64 */
	*n = len < left ? len : left;
	return spk_mem_ptr(mem, gpa, *n, SPK_MEM_W | SPK_MEM_LOAD);
}

/* The whole range in guest memory, possibly across adjacent regions. */
static int in_guest_memory(const struct spk_mem *mem, uint64_t gpa, uint64_t len)
{
	while (len) {
		uint64_t n;

		if (!mem_piece(mem, gpa, len, &n))
			return 0;
		gpa += n;
		len -= n;
	}
	return 1;
}

static int check_phdr(const struct spk_mem *mem, const Elf64_Phdr *ph, unsigned i, size_t size)
{
	uint64_t fend, mend;

	if (!spk_add_ok(ph->p_offset, ph->p_filesz, &fend) || fend > size)
		return spk_fail(ENOEXEC,
		                "elf: program header %u: p_offset 0x%" PRIx64
		                " + p_filesz 0x%" PRIx64 " beyond the %zu-byte image",
		                i, ph->p_offset, ph->p_filesz, size);
	if (ph->p_filesz > ph->p_memsz)
		return spk_fail(ENOEXEC,
		                "elf: program header %u: p_filesz 0x%" PRIx64
		                " larger than p_memsz 0x%" PRIx64,
		                i, ph->p_filesz, ph->p_memsz);
	if (!spk_add_ok(ph->p_paddr, ph->p_memsz, &mend))
		return spk_fail(ENOEXEC,
		                "elf: program header %u: p_paddr 0x%" PRIx64 " + p_memsz 0x%" PRIx64
		                " wraps around",
		                i, ph->p_paddr, ph->p_memsz);
	if (!in_guest_memory(mem, ph->p_paddr, ph->p_memsz))
		return spk_fail(EFAULT,
		                "elf: program header %u: [0x%" PRIx64 ", 0x%" PRIx64
		                ") is outside guest memory",
		                i, ph->p_paddr, mend);
	return 0;
}

static int check_overlaps(const struct elf_plan *plan)
{
	for (unsigned a = 0; a < plan->nsegs; a++) {
		const struct elf_seg *x = &plan->segs[a];

		for (unsigned b = a + 1; b < plan->nsegs; b++) {
			const struct elf_seg *y = &plan->segs[b];

			/* No wrap: check_phdr proved paddr + memsz fits. */
			if (x->paddr < y->paddr + y->memsz && y->paddr < x->paddr + x->memsz)
				return spk_fail(
				    ENOEXEC,
				    "elf: program headers %u and %u overlap: [0x%" PRIx64
				    ", 0x%" PRIx64 ") and [0x%" PRIx64 ", 0x%" PRIx64 ")",
				    x->index, y->index, x->paddr, x->paddr + x->memsz, y->paddr,
				    y->paddr + y->memsz);
		}
	}
	return 0;
}

/* Check the whole image and note what to copy; writes nothing. */
static int plan_load(const struct spk_mem *mem, const unsigned char *img, size_t size,
                     struct elf_plan *plan)
{
	Elf64_Ehdr eh;
	unsigned nload = 0;
	int err;

	if (size < sizeof(eh))
		return spk_fail(ENOEXEC, "elf: %zu-byte image is shorter than the %zu-byte header",
		                size, sizeof(eh));
	memcpy(&eh, img, sizeof(eh));
	err = check_ehdr(&eh, size);
	if (err)
		return err;
	plan->entry = eh.e_entry;
	plan->nsegs = 0;
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		Elf64_Phdr ph;

		memcpy(&ph, img + eh.e_phoff + (size_t)i * sizeof(ph), sizeof(ph));
		if (ph.p_type != PT_LOAD)
			continue;
		nload++;
		err = check_phdr(mem, &ph, i, size);
		if (err)
			return err;
		/* An empty segment loads nothing and occupies no address. */
		if (ph.p_memsz == 0)
			continue;
		plan->segs[plan->nsegs++] = (struct elf_seg){
		    .index = i,
		    .offset = ph.p_offset,
		    .filesz = ph.p_filesz,
		    .paddr = ph.p_paddr,
		    .memsz = ph.p_memsz,
		};
	}
	if (nload == 0)
		return spk_fail(ENOEXEC, "elf: no PT_LOAD program header among %u", eh.e_phnum);
	if (plan->nsegs == 0)
		return spk_fail(ENOEXEC, "elf: every PT_LOAD segment is empty (p_memsz 0)");
	return check_overlaps(plan);
}

/* Zero [gpa, gpa + len), already checked, one region at a time. */
static int zero_guest(const struct spk_mem *mem, uint64_t gpa, uint64_t len)
{
	while (len) {
		uint64_t n;
		void *p = mem_piece(mem, gpa, len, &n);

		if (!p)
			return spk_fail(EFAULT,
			                "elf: 0x%" PRIx64 " left guest memory while loading", gpa);
		memset(p, 0, n);
		gpa += n;
		len -= n;
	}
	return 0;
}

static int copy_segment(const struct spk_mem *mem, const unsigned char *img,
                        const struct elf_seg *s)
{
	if (s->filesz && spk_mem_load(mem, s->paddr, img + s->offset, s->filesz) < 0)
		return spk_fail(EFAULT, "elf: program header %u: cannot write 0x%" PRIx64, s->index,
		                s->paddr);
	return zero_guest(mem, s->paddr + s->filesz, s->memsz - s->filesz);
}

static void fill_info(const struct elf_plan *plan, struct spk_elf_info *info)
{
	info->entry = plan->entry;
	info->lowest = UINT64_MAX;
	info->highest = 0;
	info->nsegments = plan->nsegs;
	for (unsigned i = 0; i < plan->nsegs; i++) {
		const struct elf_seg *s = &plan->segs[i];

		if (s->paddr < info->lowest)
			info->lowest = s->paddr;
		if (s->paddr + s->memsz > info->highest)
			info->highest = s->paddr + s->memsz;
	}
}

int spk_elf_load(struct spk_mem *mem, const void *image, size_t size, struct spk_elf_info *info)
{
	struct elf_plan plan = {0};
	int err;

	if (!mem || (!image && size))
		return spk_fail(EINVAL, "elf: no guest memory or no image");
	err = plan_load(mem, image, size, &plan);
	if (err)
		return err;
	for (unsigned i = 0; i < plan.nsegs; i++) {
		err = copy_segment(mem, image, &plan.segs[i]);
		if (err)
			return err;
	}
	if (info)
		fill_info(&plan, info);
	return 0;
}

/* Read exactly len bytes; a file that shrinks under us is an error. */
static int read_all(int fd, const char *path, unsigned char *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = read(fd, buf + done, len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;

			return spk_fail(e, "elf: reading %s: %s", path, strerror(e));
		}
		if (n == 0)
			return spk_fail(EIO, "elf: %s shrank to %zu bytes while being read", path,
			                done);
		done += (size_t)n;
	}
	return 0;
}

static int check_file(int fd, const char *path, uint64_t max_size, size_t *size)
{
	struct stat st;

	if (fstat(fd, &st) < 0) {
		int e = errno;

		return spk_fail(e, "elf: fstat %s: %s", path, strerror(e));
	}
	if (S_ISDIR(st.st_mode))
		return spk_fail(EISDIR, "elf: %s is a directory", path);
	if (!S_ISREG(st.st_mode))
		return spk_fail(EINVAL, "elf: %s is not a regular file", path);
	if ((uint64_t)st.st_size > max_size || (uint64_t)st.st_size > SIZE_MAX)
		return spk_fail(EFBIG, "elf: %s is %" PRIu64 " bytes, above the limit of %" PRIu64,
		                path, (uint64_t)st.st_size, max_size);
	*size = (size_t)st.st_size;
	return 0;
}

int spk_elf_load_file(struct spk_mem *mem, const char *path, uint64_t max_size,
                      struct spk_elf_info *info)
{
	unsigned char *buf;
	size_t size = 0;
	int fd, err;

	if (!path || !mem)
		return spk_fail(EINVAL, "elf: load_file needs %s",
		                path ? "guest memory" : "a path");
	/* O_NONBLOCK: opening a FIFO must not wait for a writer before fstat refuses it. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		int e = errno;

		return spk_fail(e, "elf: cannot open %s: %s", path, strerror(e));
	}
	err = check_file(fd, path, max_size, &size);
	if (err)
		goto out_close;
	buf = malloc(size ? size : 1);
	if (!buf) {
		err = spk_fail(ENOMEM, "elf: no memory for the %zu bytes of %s", size, path);
		goto out_close;
	}
	err = read_all(fd, path, buf, size);
	if (!err)
		err = spk_elf_load(mem, buf, size, info);
	free(buf);
out_close:
	close(fd);
	return err;
}
