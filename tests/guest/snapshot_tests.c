// SPDX-License-Identifier: Apache-2.0
/*
 * Snapshots under KVM, the memory part (issue 15): a guest that counts is
 * stopped between two steps, its memory saved to a sparse file and restored
 * into a second VM by mapping the file MAP_PRIVATE over that VM's memory at
 * the same host addresses (the KVM slots are not touched). The second VM,
 * given the first one's registers, must go on counting from where the first
 * stopped, executing code and reading data from the restored mapping; its
 * writes must not reach the file; the first VM goes on by itself. vCPU state
 * is copied with the registers calls here: saving it into the snapshot is
 * the backend's part, not written yet. "reset" does the same in place.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sparkler/snapshot.h>

#include "harness.h"

static uint64_t next_count(struct th *t)
{
	struct spk_exit e;

	th_run(t, &e);
	struct spk_ucall uc = th_expect_ucall(t, &e, SPK_UCALL_SYNC);
	CHECK_EQ(uc.args[0], 1);
	return uc.args[1];
}

/* FNV-1a of a whole file. */
static uint64_t file_hash(int fd)
{
	uint8_t buf[65536];
	uint64_t h = 1469598103934665603ull;
	off_t off = 0;
	ssize_t n;

	while ((n = pread(fd, buf, sizeof(buf), off)) > 0) {
		for (ssize_t i = 0; i < n; i++)
			h = (h ^ buf[i]) * 1099511628211ull;
		off += n;
	}
	return h;
}

/* A counting guest stopped after step 3: its memory file, layout, registers. */
struct snap {
	char dir[64], mem_path[128];
	struct spk_snap_file *f;
	struct spk_snap_mem_layout l;
	struct spk_x86_regs regs;
	struct spk_x86_sregs sregs;
	int fd; /* the memory file, read-only */
};

static void snap_at_3(struct th *a, struct snap *s)
{
	struct spk_snap_writer *w;
	struct spk_snap_header h;
	const void *buf;
	size_t len;

	snprintf(s->dir, sizeof(s->dir), "/tmp/spk-snap-guest-XXXXXX");
	CHECK(mkdtemp(s->dir) != NULL, "mkdtemp");
	snprintf(s->mem_path, sizeof(s->mem_path), "%s/mem", s->dir);
	th_setup(a, "t_snap_count", NULL);
	for (uint64_t i = 1; i <= 3; i++)
		CHECK_EQ(next_count(a), i);
	/* memory to its file, the state file in memory */
	spk_snap_header_host(&h);
	CHECK_OK(spk_snap_writer_new(&w));
	CHECK_OK(spk_snap_put_header(w, &h));
	CHECK_OK(spk_snap_mem_save(w, spk_vm_mem(a->vm), s->mem_path, SPK_SNAP_MEM_FSYNC));
	CHECK_OK(spk_snap_writer_finish(w, &buf, &len));
	CHECK_OK(spk_snap_open_buf(buf, len, &s->f));
	spk_snap_writer_free(w);
	CHECK_OK(spk_snap_mem_layout(s->f, &s->l));
	CHECK_OK(spk_vcpu_get_regs(a->vcpu, &s->regs));
	CHECK_OK(spk_vcpu_get_sregs(a->vcpu, &s->sregs));
	s->fd = open(s->mem_path, O_RDONLY | O_CLOEXEC);
	CHECK(s->fd >= 0, "open %s", s->mem_path);
}

/* The vCPU as it was at the snapshot (by hand until vCPU state is in the file). */
static void snap_regs(struct th *t, const struct snap *s)
{
	CHECK_OK(spk_vcpu_set_sregs(t->vcpu, &s->sregs));
	CHECK_OK(spk_vcpu_set_regs(t->vcpu, &s->regs));
}

static void snap_fini(struct snap *s)
{
	close(s->fd);
	spk_snap_mem_layout_fini(&s->l);
	spk_snap_close(s->f);
	unlink(s->mem_path);
	rmdir(s->dir);
}

static void test_memory(void)
{
	struct th a, b;
	struct snap sn;
	struct stat st;

	snap_at_3(&a, &sn);
	CHECK_OK(fstat(sn.fd, &st));
	CHECK_EQ(st.st_size, TH_RAM);
	/* sparse: the guest touched well under a megabyte of its 16 MiB */
	CHECK((uint64_t)st.st_blocks * 512 < TH_RAM / 4, "%llu bytes allocated",
	      (unsigned long long)st.st_blocks * 512);
	uint64_t before = file_hash(sn.fd);

	/* restore into a second VM (built the same way, its memory then replaced) */
	th_setup(&b, "t_snap_count", NULL);
	uint8_t *host_before = spk_mem_ptr(spk_vm_mem(b.vm), 0, 1, SPK_MEM_R);
	CHECK_OK(spk_snap_mem_restore(&sn.l, sn.fd, spk_vm_mem(b.vm)));
	CHECK(spk_mem_ptr(spk_vm_mem(b.vm), 0, 1, SPK_MEM_R) == host_before,
	      "the host address moved");
	snap_regs(&b, &sn);
	for (uint64_t i = 4; i <= 6; i++)
		CHECK_EQ(next_count(&b), i);
	/* the first VM goes on by itself, from its own memory */
	CHECK_EQ(next_count(&a), 4);
	/* the second one's writes stayed private */
	CHECK_EQ(file_hash(sn.fd), before);

	snap_fini(&sn);
	th_teardown(&b);
	th_teardown(&a);
}

/* FNV-1a of guest memory [0, TH_RAM). */
static uint64_t mem_hash(struct th *t)
{
	const uint8_t *p = spk_mem_ptr(spk_vm_mem(t->vm), 0, TH_RAM, SPK_MEM_R);
	uint64_t h = 1469598103934665603ull;

	CHECK(p != NULL, "guest memory");
	for (uint64_t i = 0; i < TH_RAM; i++)
		h = (h ^ p[i]) * 1099511628211ull;
	return h;
}

/*
 * In-place reset, memory part, in one VM: snapshot after step 3, start the
 * dirty log, let the guest run on and scribble, then copy back only the
 * pages the log names and reload its registers: it counts 4 again, and
 * memory is the snapshot's bit for bit.
 */
static void test_reset(void)
{
	struct th a;
	struct snap sn;
	struct spk_snap_dirty *d;

	snap_at_3(&a, &sn);
	uint64_t at_snapshot = mem_hash(&a);
	CHECK_OK(spk_vm_dirty_log_start(a.vm));

	for (uint64_t i = 4; i <= 40; i++)
		CHECK_EQ(next_count(&a), i);
	CHECK(mem_hash(&a) != at_snapshot, "the guest changed nothing");
	CHECK_OK(spk_snap_dirty_new(spk_vm_mem(a.vm), &d));
	CHECK_OK(spk_vm_dirty_log_fetch(a.vm, d));
	/* the guest's count, its 16 scribble pages, its stack: a handful of the 4096 */
	uint64_t n = spk_snap_dirty_count(d);
	printf("reset: %llu dirty pages of %llu\n", (unsigned long long)n,
	       (unsigned long long)(TH_RAM / 4096));
	CHECK(n >= 17 && n < 64, "%llu dirty pages", (unsigned long long)n);
	CHECK_OK(spk_snap_mem_reset(&sn.l, sn.fd, spk_vm_mem(a.vm), d));
	CHECK_EQ(mem_hash(&a), at_snapshot);
	snap_regs(&a, &sn);
	for (uint64_t i = 4; i <= 6; i++)
		CHECK_EQ(next_count(&a), i);

	/* and again from there: the log goes on (the reset itself is not in it) */
	for (uint64_t i = 7; i <= 20; i++)
		CHECK_EQ(next_count(&a), i);
	memset(d->region[0].bits, 0, (d->region[0].pages / 64 + 1) * 8);
	CHECK_OK(spk_vm_dirty_log_fetch(a.vm, d));
	CHECK_OK(spk_snap_mem_reset(&sn.l, sn.fd, spk_vm_mem(a.vm), d));
	CHECK_EQ(mem_hash(&a), at_snapshot);
	spk_snap_dirty_free(d);
	CHECK_OK(spk_vm_dirty_log_stop(a.vm));
	snap_fini(&sn);
	th_teardown(&a);
}

/* Which pages of [0, TH_RAM) differ between two copies: a dirty set. */
static struct spk_snap_dirty *changed_pages(struct th *t, const uint8_t *before)
{
	const uint8_t *now = spk_mem_ptr(spk_vm_mem(t->vm), 0, TH_RAM, SPK_MEM_R);
	struct spk_snap_dirty *c;

	CHECK_OK(spk_snap_dirty_new(spk_vm_mem(t->vm), &c));
	for (uint64_t p = 0; p < TH_RAM / 4096; p++)
		if (memcmp(now + p * 4096, before + p * 4096, 4096))
			CHECK_OK(spk_snap_dirty_mark(c, p * 4096, 4096));
	return c;
}

static bool page_set(const struct spk_snap_dirty *d, uint64_t p)
{
	return d->region[0].bits[p / 64] >> (p % 64) & 1;
}

/*
 * KVM's dirty log and the monitor's writes: after the log starts, the
 * set names every page whose bytes changed (the guest's writes at CPL0,
 * and the monitor's through spk_mem_write and spk_mem_ptr), and only a
 * few more (pages written with the same bytes: the stack); a fetch
 * clears it; a diff snapshot of it holds exactly those pages.
 */
static void test_dirty_log(void)
{
	struct spk_snap_dirty *d, *c, *bad;
	struct th a;
	uint8_t *copy = malloc(TH_RAM);
	char dir[64], path[128];

	printf("kvm kind: %s\n", spk_host_kvm_kind());
	CHECK(copy != NULL, "malloc");
	th_setup(&a, "t_snap_count", NULL);
	CHECK_EQ(next_count(&a), 1);
	CHECK_OK(spk_snap_dirty_new(spk_vm_mem(a.vm), &d));
	/* not on yet */
	CHECK(spk_vm_dirty_log_fetch(a.vm, d) == -EINVAL, "fetch before start");
	CHECK_OK(spk_vm_dirty_log_start(a.vm));
	CHECK(spk_vm_dirty_log_start(a.vm) == -EALREADY, "a second start");
	memcpy(copy, spk_mem_ptr(spk_vm_mem(a.vm), 0, TH_RAM, SPK_MEM_R), TH_RAM);

	for (uint64_t i = 2; i <= 6; i++)
		CHECK_EQ(next_count(&a), i);
	/* the monitor writes two pages the guest never touches */
	uint8_t junk[8] = {1, 2, 3, 4, 5, 6, 7, 8};
	CHECK_OK(spk_mem_write(spk_vm_mem(a.vm), 0xa00000, junk, sizeof(junk)));
	uint8_t *p = spk_mem_ptr(spk_vm_mem(a.vm), 0xb01000 - 4, 8, SPK_MEM_W);
	CHECK(p != NULL, "spk_mem_ptr");
	memcpy(p, junk, 8); /* spans two pages */
	c = changed_pages(&a, copy);
	CHECK_OK(spk_vm_dirty_log_fetch(a.vm, d));
	uint64_t nd = spk_snap_dirty_count(d), nc = spk_snap_dirty_count(c);
	printf("dirty log: %llu pages, %llu changed\n", (unsigned long long)nd,
	       (unsigned long long)nc);
	for (uint64_t pg = 0; pg < TH_RAM / 4096; pg++)
		CHECK(!page_set(c, pg) || page_set(d, pg), "page 0x%llx changed, not in the log",
		      (unsigned long long)pg);
	CHECK(page_set(d, 0xa00) && page_set(d, 0xb00) && page_set(d, 0xb01),
	      "the monitor's writes are missing");
	/* 5 scribble pages, the count, the monitor's 3: and at most a few same-byte writes */
	CHECK(nc >= 9, "%llu pages changed", (unsigned long long)nc);
	CHECK(nd <= nc + 8, "%llu dirty, %llu changed", (unsigned long long)nd,
	      (unsigned long long)nc);
	spk_snap_dirty_free(c);

	/* fetched: cleared; nothing ran since */
	struct spk_snap_dirty *e;
	CHECK_OK(spk_snap_dirty_new(spk_vm_mem(a.vm), &e));
	CHECK_OK(spk_vm_dirty_log_fetch(a.vm, e));
	CHECK_EQ(spk_snap_dirty_count(e), 0);

	/* a diff snapshot of the next steps holds exactly the set */
	memcpy(copy, spk_mem_ptr(spk_vm_mem(a.vm), 0, TH_RAM, SPK_MEM_R), TH_RAM);
	CHECK_EQ(next_count(&a), 7);
	CHECK_EQ(next_count(&a), 8);
	CHECK_OK(spk_vm_dirty_log_fetch(a.vm, e));
	snprintf(dir, sizeof(dir), "/tmp/spk-snap-dirty-XXXXXX");
	CHECK(mkdtemp(dir) != NULL, "mkdtemp");
	snprintf(path, sizeof(path), "%s/diff", dir);
	{
		struct spk_snap_writer *w;
		struct spk_snap_header h;
		struct spk_snap_file *f;
		struct spk_snap_mem_layout l;
		const void *buf;
		size_t len;

		spk_snap_header_host(&h);
		CHECK_OK(spk_snap_writer_new(&w));
		CHECK_OK(spk_snap_put_header(w, &h));
		CHECK_OK(spk_snap_mem_save_diff(w, spk_vm_mem(a.vm), e, path, 0));
		CHECK_OK(spk_snap_writer_finish(w, &buf, &len));
		CHECK_OK(spk_snap_open_buf(buf, len, &f));
		spk_snap_writer_free(w);
		CHECK_OK(spk_snap_mem_layout(f, &l));
		CHECK(l.diff && l.dirty, "not a diff");
		CHECK_EQ(spk_snap_dirty_count(l.dirty), spk_snap_dirty_count(e));
		for (uint64_t pg = 0; pg < TH_RAM / 4096; pg++)
			CHECK(page_set(l.dirty, pg) == page_set(e, pg), "page 0x%llx",
			      (unsigned long long)pg);
		/* applied over the copy taken before the two steps, it gives memory now */
		struct th b;
		th_setup(&b, "t_snap_count", NULL);
		uint8_t *bm = spk_mem_ptr(spk_vm_mem(b.vm), 0, TH_RAM, SPK_MEM_W);
		memcpy(bm, copy, TH_RAM);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		CHECK(fd >= 0, "open %s", path);
		CHECK_OK(spk_snap_mem_apply_diff(&l, fd, spk_vm_mem(b.vm)));
		CHECK(memcmp(bm, spk_mem_ptr(spk_vm_mem(a.vm), 0, TH_RAM, SPK_MEM_R), TH_RAM) == 0,
		      "the diff over its base is not the memory");
		close(fd);
		th_teardown(&b);
		spk_snap_mem_layout_fini(&l);
		spk_snap_close(f);
	}
	unlink(path);
	rmdir(dir);

	/* a set of another VM's layout is refused before anything is read */
	struct spk_mem *other;
	CHECK_OK(spk_mem_new(&other));
	CHECK_OK(spk_mem_add(other, 0, 8192, SPK_MEM_RAM, copy, "other"));
	CHECK_OK(spk_snap_dirty_new(other, &bad));
	CHECK(spk_vm_dirty_log_fetch(a.vm, bad) == -EINVAL, "a foreign set");
	CHECK(strstr(spk_last_error(), "does not match") != NULL, "%s", spk_last_error());
	spk_snap_dirty_free(bad);
	spk_mem_free(other);

	CHECK_OK(spk_vm_dirty_log_stop(a.vm));
	CHECK(spk_vm_dirty_log_fetch(a.vm, e) == -EINVAL, "fetch after stop");
	CHECK_EQ(next_count(&a), 9); /* the guest runs on without the log */
	/* and on again: an empty set to start with */
	CHECK_OK(spk_vm_dirty_log_start(a.vm));
	memset(e->region[0].bits, 0, (e->region[0].pages / 64 + 1) * 8);
	CHECK_OK(spk_vm_dirty_log_fetch(a.vm, e));
	CHECK_EQ(spk_snap_dirty_count(e), 0);
	CHECK_EQ(next_count(&a), 10);
	CHECK_OK(spk_vm_dirty_log_fetch(a.vm, e));
	CHECK(spk_snap_dirty_count(e) >= 2, "after a step: %llu",
	      (unsigned long long)spk_snap_dirty_count(e));

	spk_snap_dirty_free(e);
	spk_snap_dirty_free(d);
	free(copy);
	th_teardown(&a);
}

int main(int argc, char **argv)
{
	static const struct th_case cases[] = {
	    {"memory", test_memory}, {"reset", test_reset}, {"dirty_log", test_dirty_log}};

	return th_main(argc, argv, cases, SPK_ARRAY_SIZE_T(cases));
}
