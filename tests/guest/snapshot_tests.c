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
 * In-place reset, memory part, in one VM: snapshot after step 3, let the
 * guest run on and scribble, then copy the pages back and reload its
 * registers: it counts 4 again, and memory is the snapshot's bit for bit.
 * The dirty set here is every page (KVM's dirty log, which would name
 * only the written ones, is the backend's part, not written yet).
 */
static void test_reset(void)
{
	struct th a;
	struct snap sn;
	struct spk_snap_dirty *d;

	snap_at_3(&a, &sn);
	uint64_t at_snapshot = mem_hash(&a);

	for (uint64_t i = 4; i <= 40; i++)
		CHECK_EQ(next_count(&a), i);
	CHECK(mem_hash(&a) != at_snapshot, "the guest changed nothing");
	CHECK_OK(spk_snap_dirty_new(spk_vm_mem(a.vm), &d));
	CHECK_OK(spk_snap_dirty_mark(d, 0, TH_RAM));
	CHECK_OK(spk_snap_mem_reset(&sn.l, sn.fd, spk_vm_mem(a.vm), d));
	CHECK_EQ(mem_hash(&a), at_snapshot);
	snap_regs(&a, &sn);
	for (uint64_t i = 4; i <= 6; i++)
		CHECK_EQ(next_count(&a), i);

	spk_snap_dirty_free(d);
	snap_fini(&sn);
	th_teardown(&a);
}

int main(int argc, char **argv)
{
	static const struct th_case cases[] = {{"memory", test_memory}, {"reset", test_reset}};

	return th_main(argc, argv, cases, SPK_ARRAY_SIZE_T(cases));
}
