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
#include <linux/kvm.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <limits.h>

#include <sparkler/acpi.h>
#include <sparkler/evloop.h>
#include <sparkler/pci.h>
#include <sparkler/platform.h>
#include <sparkler/snapshot.h>
#include <sparkler/virtio.h>
#include <sparkler/virtio_blk.h>
#include <sparkler/virtio_vsock.h>

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

/* ---- whole-VM snapshots, restored in another process ------------------------------------ */

/* One step of t_snap_cpl3: the count, the TSC it read, the ticks after it. */
struct step {
	uint64_t count, tsc, ticks;
};

static uint32_t expect_pio(struct th *t, uint16_t port)
{
	struct spk_exit e;

	th_run(t, &e);
	th_fail_on_assert(t, &e);
	CHECK(e.kind == SPK_EXIT_PIO && e.pio.is_write && e.pio.port == port && e.pio.width == 4,
	      "wanted outl 0x%x, got %s (port 0x%x)", port, spk_exit_name(e.kind),
	      e.kind == SPK_EXIT_PIO ? e.pio.port : 0);
	uint32_t v;
	memcpy(&v, e.pio.data, 4);
	return v;
}

static struct step cpl3_step(struct th *t)
{
	struct step s;

	s.count = expect_pio(t, 0x530);
	s.tsc = expect_pio(t, 0x531);
	s.tsc |= (uint64_t)expect_pio(t, 0x532) << 32;
	s.ticks = expect_pio(t, 0x533);
	return s;
}

static void cpl3_setup(struct th *t)
{
	const struct th_opts o = {.irqchip = SPK_IRQCHIP_KERNEL};

	th_setup(t, "t_snap_cpl3", &o);
	CHECK_OK(spk_bus_set_miss_policy(spk_vm_bus(t->vm), SPK_BUS_PIO, SPK_MISS_EXIT));
}

/* Run argv as a child (this program again) and wait: its exit status. */
static int run_child(char *const argv[])
{
	int status = 0;
	pid_t pid = fork();

	CHECK(pid >= 0, "fork");
	if (pid == 0) {
		execv("/proc/self/exe", argv);
		_exit(127);
	}
	CHECK(waitpid(pid, &status, 0) == pid, "waitpid");
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* The child: restore STATE (MEM) into a fresh VM and check it goes on from step. */
static int child_cpl3(int argc, char **argv)
{
	struct step at, s;
	struct th b;

	CHECK(argc == 7, "child-cpl3 STATE MEM COUNT TSC TICKS");
	at.count = strtoull(argv[4], NULL, 0);
	at.tsc = strtoull(argv[5], NULL, 0);
	at.ticks = strtoull(argv[6], NULL, 0);
	cpl3_setup(&b);
	CHECK_OK(spk_vm_restore(b.vm, NULL, argv[2], argv[3]));
	CHECK_EQ(spk_vcpu_state(b.vcpu), SPK_VCPU_READY);
	uint64_t tsc = at.tsc, ticks = at.ticks;
	for (uint64_t i = 1; i <= 5; i++) {
		s = cpl3_step(&b);
		if (i == 1)
			printf("child: first TSC %llu cycles after the saved one\n",
			       (unsigned long long)(s.tsc - at.tsc));
		CHECK_EQ(s.count, at.count + i);                             /* the count goes on */
		CHECK(s.tsc > tsc, "the TSC went back: 0x%llx after 0x%llx", /* never back */
		      (unsigned long long)s.tsc, (unsigned long long)tsc);
		CHECK(s.ticks > ticks, "no timer interrupt: ticks %llu after %llu",
		      (unsigned long long)s.ticks, (unsigned long long)ticks);
		tsc = s.tsc;
		ticks = s.ticks;
	}
	printf("child: counted %llu..%llu, TSC 0x%llx -> 0x%llx, ticks %llu -> %llu\n",
	       (unsigned long long)at.count + 1, (unsigned long long)s.count,
	       (unsigned long long)at.tsc, (unsigned long long)s.tsc, (unsigned long long)at.ticks,
	       (unsigned long long)s.ticks);
	th_teardown(&b);
	return 0;
}

/*
 * A guest counting at CPL3 with the LAPIC timer ticking is saved whole
 * (vCPU, LAPIC, IOAPIC/PIC/PIT, clock, memory) after step 3 and restored
 * in another process: the count goes on from 4, its TSC never goes back,
 * the timer's interrupts still arrive. The first VM goes on by itself.
 */
static void test_cpl3(void)
{
	char dir[64], state[128], mem[128], a1[32], a2[32], a3[32];
	struct step s = {0};
	struct th a;

	snprintf(dir, sizeof(dir), "/tmp/spk-snap-vm-XXXXXX");
	CHECK(mkdtemp(dir) != NULL, "mkdtemp");
	snprintf(state, sizeof(state), "%s/state", dir);
	snprintf(mem, sizeof(mem), "%s/mem", dir);
	cpl3_setup(&a);
	for (uint64_t i = 1; i <= 3; i++) {
		s = cpl3_step(&a);
		CHECK_EQ(s.count, i);
	}
	CHECK_OK(spk_vm_snapshot(a.vm, NULL, state, mem, SPK_SNAP_FSYNC));
	/* a diff needs the log */
	CHECK(spk_vm_snapshot(a.vm, NULL, state, mem, SPK_SNAP_DIFF) == -EINVAL,
	      "diff without log");
	/* the saved VM goes on */
	CHECK_EQ(cpl3_step(&a).count, 4);
	th_teardown(&a);

	snprintf(a1, sizeof(a1), "%llu", (unsigned long long)s.count);
	snprintf(a2, sizeof(a2), "0x%llx", (unsigned long long)s.tsc);
	snprintf(a3, sizeof(a3), "%llu", (unsigned long long)s.ticks);
	char *argv[] = {"snapshot_tests", "child-cpl3", state, mem, a1, a2, a3, NULL};
	CHECK_EQ(run_child(argv), 0);
	/* twice: the files are not changed by a restore */
	CHECK_EQ(run_child(argv), 0);
	unlink(state);
	unlink(mem);
	rmdir(dir);
}

/* The counting guest at CPL0 without the in-kernel irqchip, in this process. */
static void test_vcpu_state(void)
{
	char dir[64], state[128], mem[128];
	struct th a, b;

	snprintf(dir, sizeof(dir), "/tmp/spk-snap-vm-XXXXXX");
	CHECK(mkdtemp(dir) != NULL, "mkdtemp");
	snprintf(state, sizeof(state), "%s/state", dir);
	snprintf(mem, sizeof(mem), "%s/mem", dir);
	th_setup(&a, "t_snap_count", NULL);
	for (uint64_t i = 1; i <= 3; i++)
		CHECK_EQ(next_count(&a), i);
	CHECK_OK(spk_vm_snapshot(a.vm, NULL, state, mem, 0));
	th_setup(&b, "t_snap_count", NULL);
	CHECK_OK(spk_vm_restore(b.vm, NULL, state, NULL)); /* the memory file the state names */
	for (uint64_t i = 4; i <= 6; i++)
		CHECK_EQ(next_count(&b), i);
	CHECK_EQ(next_count(&a), 4);
	th_teardown(&b);

	/* a VM with the in-kernel irqchip cannot take it, nor one without vCPU 0's twin */
	struct th c;
	const struct th_opts ko = {.irqchip = SPK_IRQCHIP_KERNEL};
	th_setup(&c, "t_snap_count", &ko);
	CHECK(spk_vm_restore(c.vm, NULL, state, NULL) == -EINVAL, "irqchip mismatch");
	CHECK(strstr(spk_last_error(), "irqchip") != NULL, "%s", spk_last_error());
	th_teardown(&c);

	/* in-place reset of the whole VM, memory by the dirty log */
	struct spk_snap_reset *rp;
	uint64_t h0 = mem_hash(&a);
	CHECK_OK(spk_snap_reset_new(a.vm, NULL, NULL, &rp));
	for (int round = 0; round < 3; round++) {
		for (uint64_t i = 5; i <= 30; i++)
			CHECK_EQ(next_count(&a), i);
		CHECK_OK(spk_snap_reset_apply(rp));
		CHECK_EQ(mem_hash(&a), h0);
		printf("reset round %d: %llu pages copied back\n", round,
		       (unsigned long long)spk_snap_reset_pages(rp));
		CHECK(spk_snap_reset_pages(rp) < 64, "too many pages");
	}
	CHECK_EQ(next_count(&a), 5);

	/* a reset right after an exit the library answered itself (the
	 * console write before count 8): its registers, pending in the run
	 * area, must not outlive the reset */
	spk_vcpu_set_flags(a.vcpu, SPK_VCPU_RETURN_HANDLED);
	struct spk_exit e;
	bool saw_none = false;
	for (int i = 0; i < 64 && !saw_none; i++) {
		CHECK_OK(spk_vcpu_run(a.vcpu, &e));
		saw_none = e.kind == SPK_EXIT_NONE;
	}
	CHECK(saw_none, "the console write came back as NONE");
	CHECK_OK(spk_snap_reset_apply(rp));
	spk_vcpu_set_flags(a.vcpu, 0);
	CHECK_EQ(next_count(&a), 5);
	spk_snap_reset_free(rp);
	th_teardown(&a);
	unlink(state);
	unlink(mem);
	rmdir(dir);
}

/* ---- hostile state files ---------------------------------------------------------------- */

struct blob {
	uint8_t *p;
	size_t n;
};

static struct blob slurp(const char *path)
{
	struct blob b = {0};
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	CHECK(fd >= 0 && fstat(fd, &st) == 0, "open %s", path);
	b.n = (size_t)st.st_size;
	b.p = malloc(b.n);
	CHECK(b.p && pread(fd, b.p, b.n, 0) == (ssize_t)b.n, "read %s", path);
	close(fd);
	return b;
}

static void spit(const char *path, const struct blob *b)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	CHECK(fd >= 0 && write(fd, b->p, b->n) == (ssize_t)b->n, "write %s", path);
	close(fd);
}

static uint32_t crc32_ieee(uint32_t crc, const uint8_t *p, size_t n)
{
	crc = ~crc;
	for (size_t i = 0; i < n; i++) {
		crc ^= p[i];
		for (int k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0xedb88320u & -(crc & 1));
	}
	return ~crc;
}

/*
 * The value of field name in the first section of type (for bytes: its
 * data, after the length), and that section's offset. The file layout:
 * docs/snapshots.md.
 */
static size_t field_at(const struct blob *b, uint32_t type, const char *name, size_t *sec)
{
	for (size_t off = 16; off + 24 <= b->n;) {
		uint32_t t;
		uint64_t len;

		memcpy(&t, b->p + off, 4);
		memcpy(&len, b->p + off + 8, 8);
		if (t == type) {
			for (size_t f = off + 24; f < off + 24 + len;) {
				uint8_t nl = b->p[f], ft = b->p[f + 1 + nl];
				size_t v = f + 2 + nl, vlen;
				uint32_t bl;

				if (ft >= 5) {
					memcpy(&bl, b->p + v, 4);
					v += 4;
					vlen = bl;
				} else {
					vlen = ft == 1 ? 1 : ft == 2 ? 2 : ft == 3 ? 4 : 8;
				}
				if (nl == strlen(name) && memcmp(b->p + f + 1, name, nl) == 0) {
					*sec = off;
					return v;
				}
				f = v + vlen;
			}
		}
		off += 24 + len;
	}
	CHECK(0, "no field %s in a section of type %u", name, type);
	return 0;
}

static void fix_crc(struct blob *b, size_t sec)
{
	uint64_t len;
	uint32_t crc;

	memcpy(&len, b->p + sec + 8, 8);
	crc = crc32_ieee(crc32_ieee(0, b->p + sec, 16), b->p + sec + 24, len);
	memcpy(b->p + sec + 16, &crc, 4);
}

static int hide_cx16(void *opaque, uint32_t vcpu, struct spk_cpuid_entry *e, uint32_t *n,
                     uint32_t cap)
{
	struct spk_cpuid_entry *l1 = spk_cpuid_find(e, *n, 1, 0);

	if (l1)
		l1->ecx &= ~(1u << 13);
	return 0;
}

/* Restore bad into a fresh counting VM: refused, naming want (all of them). */
static void expect_refused(const char *bad, const char *mem, const char *w1, const char *w2)
{
	struct th t;

	th_setup(&t, "t_snap_count", NULL);
	int rc = spk_vm_restore(t.vm, NULL, bad, mem);
	CHECK(rc < 0, "a hostile file was accepted (%s, %s)", w1, w2);
	CHECK(strstr(spk_last_error(), w1) && strstr(spk_last_error(), w2), "%s", spk_last_error());
	printf("refused: %s\n", spk_last_error());
	/* refused before memory or the vCPU changed: the VM runs its own guest from the start */
	CHECK_EQ(next_count(&t), 1);
	th_teardown(&t);
}

/*
 * State files with values KVM refuses or that are out of range, CRCs
 * fixed so they get past the format checks: each refused with the section
 * and field named, before anything of the VM changed.
 */
static void test_hostile(void)
{
	char dir[64], state[128], mem[128], bad[128];
	struct blob b, h;
	size_t sec, v;
	struct th a;

	printf("kvm kind: %s\n", spk_host_kvm_kind());
	snprintf(dir, sizeof(dir), "/tmp/spk-snap-bad-XXXXXX");
	CHECK(mkdtemp(dir) != NULL, "mkdtemp");
	snprintf(state, sizeof(state), "%s/state", dir);
	snprintf(mem, sizeof(mem), "%s/mem", dir);
	snprintf(bad, sizeof(bad), "%s/bad", dir);
	th_setup(&a, "t_snap_count", NULL);
	CHECK_EQ(next_count(&a), 1);
	CHECK_OK(spk_vm_snapshot(a.vm, NULL, state, mem, 0));
	th_teardown(&a);
	b = slurp(state);

	/* CR0.PG without CR0.PE: KVM_SET_SREGS(2) refuses it (cr0 after 8
	 * segments and 2 tables) */
	h = (struct blob){malloc(b.n), b.n};
	memcpy(h.p, b.p, b.n);
	v = field_at(&h, SPK_SNAP_SEC_VCPU, "sregs", &sec);
	uint64_t cr0 = 0x80000000ull;
	memcpy(h.p + v + 8 * 24 + 2 * 16, &cr0, 8);
	fix_crc(&h, sec);
	spit(bad, &h);
	{
		/* KVM's refusal comes after the checks: the VM is then INVALID */
		struct th t;
		th_setup(&t, "t_snap_count", NULL);
		CHECK(spk_vm_restore(t.vm, NULL, bad, mem) < 0, "bad cr0 accepted");
		CHECK(strstr(spk_last_error(), "field 'sregs'") &&
		          strstr(spk_last_error(), "KVM refused"),
		      "%s", spk_last_error());
		printf("refused: %s\n", spk_last_error());
		CHECK_EQ(spk_vcpu_state(t.vcpu), SPK_VCPU_INVALID);
		th_teardown(&t);
	}

	/* one field changed (CRC fixed unless the change is a flipped bit), refused */
	const struct {
		uint32_t type;
		const char *field;
		size_t at;
		uint32_t value, len; /* len 0: xor the byte with value, CRC left */
		const char *w1, *w2;
	} cases[] = {
	    {SPK_SNAP_SEC_VCPU, "msrs", 4, 1, 1, "field 'msrs'", "reserved"},
	    {SPK_SNAP_SEC_VCPU, "events", offsetof(struct kvm_vcpu_events, flags), 0x80000000u, 4,
	     "field 'events'", "flags"},
	    {SPK_SNAP_SEC_VCPU, "fpu_kind", 0, 7, 1, "field 'fpu_kind'", "7"},
	    {SPK_SNAP_SEC_VCPU, "id", 0, 5, 1, "vCPU 0", "no section"}, /* a vCPU it lacks */
	    {SPK_SNAP_SEC_VM, "irqchip", 0, 1, 1, "field 'irqchip'", "does not have"},
	    {SPK_SNAP_SEC_VCPU, "regs", 3, 0x10, 0, "section 2", "crc"},
	};
	for (size_t i = 0; i < SPK_ARRAY_SIZE_T(cases); i++) {
		memcpy(h.p, b.p, b.n);
		v = field_at(&h, cases[i].type, cases[i].field, &sec) + cases[i].at;
		if (cases[i].len) {
			memcpy(h.p + v, &cases[i].value, cases[i].len); /* little-endian */
			fix_crc(&h, sec);
		} else {
			h.p[v] ^= (uint8_t)cases[i].value;
		}
		spit(bad, &h);
		expect_refused(bad, mem, cases[i].w1, cases[i].w2);
	}

	/* a host whose guests lack a CPUID bit the saved guest saw (CX16, which
	 * a policy can hide on every KVM kind) */
	{
		struct th t;
		const struct th_opts o = {.cpuid_policy = hide_cx16};

		th_setup(&t, "t_snap_count", &o);
		CHECK(spk_vm_restore(t.vm, NULL, state, mem) < 0, "a missing CPUID bit accepted");
		CHECK(strstr(spk_last_error(), "field 'cpuid'") &&
		          strstr(spk_last_error(), "ECX bit 13"),
		      "%s", spk_last_error());
		printf("refused: %s\n", spk_last_error());
		CHECK_EQ(next_count(&t), 1);
		th_teardown(&t);
	}
	free(h.p);
	free(b.p);
	unlink(bad);
	unlink(state);
	unlink(mem);
	rmdir(dir);
}

/* ---- clones ----------------------------------------------------------------------------- */

/* A VM for t_snap_genid: PCI host, vsock, the VMGENID at the PC's place. */
struct clone_vm {
	struct th t;
	struct spk_exit e; /* the last exit: the library completes it at the next run */
	struct spk_evloop *loop;
	struct spk_pci_host *pci;
	struct spk_virtio_vsock *vsock;
	struct spk_vmgenid *genid;
	struct spk_snap_devices *devs;
	unsigned notified;
};

static int count_notify(void *ctx)
{
	((struct clone_vm *)ctx)->notified++;
	return 0;
}

/* tables: build the ACPI tables into its memory (the origin; a clone's
 * memory is the snapshot's, tables and all) */
static void clone_vm_build(struct clone_vm *c, uint32_t cid, const char *uds, bool tables,
                           bool irqchip)
{
	const struct th_opts o = {.irqchip = irqchip ? SPK_IRQCHIP_KERNEL : SPK_IRQCHIP_NONE};

	memset(c, 0, sizeof(*c));
	th_setup(&c->t, "t_snap_genid", &o);
	struct spk_mem *mem = spk_vm_mem(c->t.vm);
	if (tables) {
		struct spk_acpi_config ac;

		spk_acpi_pc_config(&ac, 1, false);
		CHECK_OK(spk_acpi_build(mem, SPK_PC_ACPI_START, SPK_PC_ACPI_TABLES_END, &ac, NULL));
	}
	CHECK_OK(spk_evloop_new("virtio", &c->loop));
	const struct spk_pci_host_config hc = spk_pc_pci_host_config(c->t.vm);
	CHECK_OK(spk_pci_host_new(&hc, &c->pci));
	const struct spk_virtio_vsock_config vc = {.pci = c->pci,
	                                           .slot = -1,
	                                           .mem = mem,
	                                           .loop = c->loop,
	                                           .guest_cid = cid,
	                                           .uds_path = uds};
	CHECK_OK(spk_virtio_vsock_new(&vc, &c->vsock));
	const struct spk_vmgenid_config gc = {mem, SPK_PC_VMGENID, count_notify, c};
	CHECK_OK(spk_vmgenid_new(&gc, &c->genid));
	struct spk_virtio *vd = spk_virtio_vsock_dev(c->vsock);
	CHECK_OK(spk_snap_devices_new(&c->devs));
	CHECK_OK(spk_snap_devices_add(c->devs, "pci", spk_pci_host_state_ops(), c->pci));
	CHECK_OK(spk_snap_devices_add(c->devs, "vsock", spk_virtio_state_ops(vd), vd));
	CHECK_OK(spk_snap_devices_add(c->devs, "vmgenid", spk_vmgenid_state_ops(), c->genid));
	CHECK_OK(spk_evloop_start(c->loop));
}

static void clone_vm_free(struct clone_vm *c)
{
	spk_evloop_stop(c->loop);
	spk_snap_devices_free(c->devs);
	spk_virtio_vsock_free(c->vsock);
	spk_pci_host_free(c->pci);
	spk_evloop_free(c->loop);
	spk_vmgenid_free(c->genid);
	th_teardown(&c->t);
}

struct clone_ctx {
	struct clone_vm vms[4];
	uint32_t built, destroyed, fail_at; /* fail_at: the build of that clone fails */
	uint32_t unlike_at; /* that clone is built without the irqchip: its restore fails */
};

static int clone_build(void *ctx, uint32_t k, const struct spk_clone_id *id,
                       struct spk_clone_vm *out)
{
	struct clone_ctx *x = ctx;

	CHECK(k < SPK_ARRAY_SIZE_T(x->vms), "clone %u", k);
	if (k == x->fail_at)
		return -EMFILE;
	clone_vm_build(&x->vms[k], id->vsock_cid, id->vsock_uds, false, k != x->unlike_at);
	x->built++;
	*out = (struct spk_clone_vm){x->vms[k].t.vm, x->vms[k].devs, x->vms[k].genid, &x->vms[k]};
	return 0;
}

static void clone_destroy(void *ctx, uint32_t k, struct spk_clone_vm *vm)
{
	struct clone_ctx *x = ctx;

	CHECK(vm->user == &x->vms[k], "clone %u: not the VM built", k);
	clone_vm_free(&x->vms[k]);
	x->destroyed++;
}

static const struct spk_clone_ops clone_ops = {clone_build, clone_destroy};

/* One step of t_snap_genid: the count; the ID it read must be want, at the PC's address. */
static uint64_t genid_step(struct clone_vm *c, uint8_t want[SPK_VMGENID_LEN])
{
	uint8_t seen[SPK_VMGENID_LEN];

	th_run(&c->t, &c->e);
	struct spk_ucall uc = th_expect_ucall(&c->t, &c->e, SPK_UCALL_SYNC);
	CHECK_EQ(uc.args[0], 1);
	CHECK_EQ(uc.args[4], SPK_PC_VMGENID); /* found through the tables' ADDR */
	memcpy(seen, &uc.args[2], 8);
	memcpy(seen + 8, &uc.args[3], 8);
	CHECK_OK(spk_vmgenid_get(c->genid, want));
	CHECK(memcmp(seen, want, SPK_VMGENID_LEN) == 0, "the guest read another ID");
	return uc.args[1];
}

/* Kilobytes of one smaps field of the mapping that holds addr. */
static unsigned long smaps_kb(const void *addr, const char *field)
{
	FILE *fp = fopen("/proc/self/smaps", "r");
	char line[512];
	bool in = false;
	unsigned long kb = ULONG_MAX;

	CHECK(fp != NULL, "smaps");
	while (fgets(line, sizeof(line), fp)) {
		unsigned long lo, hi;

		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 &&
		    strchr(line, '-') < strchr(line, ' ')) {
			in = (uintptr_t)addr >= lo && (uintptr_t)addr < hi;
			continue;
		}
		if (in && strncmp(line, field, strlen(field)) == 0 && line[strlen(field)] == ':') {
			kb = strtoul(line + strlen(field) + 1, NULL, 10);
			break;
		}
	}
	fclose(fp);
	CHECK(kb != ULONG_MAX, "no %s for %p in smaps", field, addr);
	return kb;
}

/* The vsock device's CID as a snapshot of clone c saves it (what its config space reads). */
static uint32_t saved_cid(struct clone_vm *c, const char *dir)
{
	char state[128], mem[128], *text = NULL, *p;
	size_t len = 0;
	struct spk_snap_file *f;
	unsigned cid = 0;

	snprintf(state, sizeof(state), "%s/again", dir);
	snprintf(mem, sizeof(mem), "%s/again.mem", dir);
	CHECK_OK(spk_vm_snapshot(c->t.vm, c->devs, state, mem, 0));
	CHECK_OK(spk_snap_open(state, &f));
	FILE *out = open_memstream(&text, &len);
	spk_snap_file_dump(f, out, true);
	fclose(out);
	p = strstr(text, "guest_cid");
	CHECK(p && sscanf(p, "guest_cid u32 %u", &cid) == 1, "no guest_cid in the dump");
	free(text);
	spk_snap_close(f);
	unlink(state);
	unlink(mem);
	return cid;
}

/*
 * Clones: a guest that found its VM generation ID through the ACPI tables
 * is snapshotted and cloned twice with spk_vm_clone. Each clone counts on
 * from 4 at its own pace, sees the ID its monitor gave it (a new one, not
 * the origin's, not the other clone's) at the address the tables give,
 * has its own vsock CID, and its memory stays shared with the other's
 * until written (smaps); the file never changes. Bad identities and a
 * failing build leave nothing made.
 */
static void test_clones(void)
{
	char dir[64], state[128], mem[128], uds[128];
	uint8_t ida[SPK_VMGENID_LEN], idb[SPK_VMGENID_LEN], idc[SPK_VMGENID_LEN];
	struct clone_vm a;
	struct clone_ctx x = {.fail_at = UINT32_MAX, .unlike_at = UINT32_MAX};
	struct spk_clone_vm out[4];
	struct spk_clone_id base = {.vsock_cid = 10}, ids[2], bad[2];

	printf("kvm kind: %s\n", spk_host_kvm_kind());
	snprintf(dir, sizeof(dir), "/tmp/spk-snap-clone-XXXXXX");
	CHECK(mkdtemp(dir) != NULL, "mkdtemp");
	snprintf(state, sizeof(state), "%s/state", dir);
	snprintf(mem, sizeof(mem), "%s/mem", dir);
	snprintf(uds, sizeof(uds), "%s/vs", dir);
	clone_vm_build(&a, 3, uds, true, true);
	for (uint64_t i = 1; i <= 3; i++)
		CHECK_EQ(genid_step(&a, ida), i);
	CHECK_OK(spk_vm_snapshot(a.t.vm, a.devs, state, mem, 0));
	clone_vm_free(&a);
	int fd = open(mem, O_RDONLY | O_CLOEXEC);
	CHECK(fd >= 0, "open %s", mem);
	uint64_t before = file_hash(fd);

	/* bad input: refused before anything is built */
	snprintf(base.vsock_uds, sizeof(base.vsock_uds), "%s/vs", dir);
	CHECK_OK(spk_clone_ids_derive(&base, 2, ids));
	CHECK_EQ(ids[0].vsock_cid, 10);
	CHECK_EQ(ids[1].vsock_cid, 11);
	CHECK(strcmp(ids[1].vsock_uds + strlen(ids[1].vsock_uds) - 5, "/vs.1") == 0, "%s",
	      ids[1].vsock_uds);
	CHECK(spk_vm_clone(state, NULL, 0, ids, &clone_ops, &x, out) == -EINVAL, "n = 0");
	CHECK(spk_vm_clone(state, NULL, SPK_CLONE_MAX + 1, ids, &clone_ops, &x, out) == -EINVAL,
	      "n too large");
	memcpy(bad, ids, sizeof(bad));
	bad[1].vsock_cid = 10;
	CHECK(spk_vm_clone(state, NULL, 2, bad, &clone_ops, &x, out) == -EINVAL, "same CIDs");
	CHECK(strstr(spk_last_error(), "clone 1: field 'vsock_cid'"), "%s", spk_last_error());
	printf("refused: %s\n", spk_last_error());
	bad[1].vsock_cid = 2;
	CHECK(spk_vm_clone(state, NULL, 2, bad, &clone_ops, &x, out) == -EINVAL, "CID 2");
	CHECK(spk_vm_clone(state, NULL, 2, ids, NULL, &x, out) == -EINVAL, "no ops");
	CHECK(spk_vm_clone(NULL, NULL, 2, ids, &clone_ops, &x, out) == -EINVAL, "no state");
	CHECK(spk_vm_clone(mem, NULL, 2, ids, &clone_ops, &x, out) < 0, "not a state file");
	CHECK_EQ(x.built, 0);
	/* a build that fails at the second clone: the first is destroyed */
	x.fail_at = 1;
	CHECK(spk_vm_clone(state, NULL, 2, ids, &clone_ops, &x, out) == -EMFILE, "failing build");
	CHECK(strstr(spk_last_error(), "clone 1: the build function failed: Too many open files"),
	      "%s", spk_last_error());
	printf("refused: %s\n", spk_last_error());
	CHECK_EQ(x.built, 1);
	CHECK_EQ(x.destroyed, 1);
	CHECK(out[0].vm == NULL, "a destroyed clone left in out");
	/* a restore that fails at the second clone (a VM built unlike the
	 * snapshot's): both clones destroyed */
	x = (struct clone_ctx){.fail_at = UINT32_MAX, .unlike_at = 1};
	CHECK(spk_vm_clone(state, NULL, 2, ids, &clone_ops, &x, out) == -EINVAL, "unlike VM");
	CHECK(strstr(spk_last_error(), "clone 1: ") && strstr(spk_last_error(), "irqchip"), "%s",
	      spk_last_error());
	printf("refused: %s\n", spk_last_error());
	CHECK_EQ(x.built, 2);
	CHECK_EQ(x.destroyed, 2);
	CHECK(out[0].vm == NULL && out[1].vm == NULL, "a destroyed clone left in out");

	/* two clones */
	x = (struct clone_ctx){.fail_at = UINT32_MAX, .unlike_at = UINT32_MAX};
	CHECK_OK(spk_vm_clone(state, NULL, 2, ids, &clone_ops, &x, out));
	struct clone_vm *b = out[0].user, *c = out[1].user;
	CHECK(b->notified >= 1 && c->notified >= 1, "no VMGENID notification");
	for (uint64_t i = 4; i <= 20; i++)
		CHECK_EQ(genid_step(b, idb), i);
	for (uint64_t i = 4; i <= 6; i++)
		CHECK_EQ(genid_step(c, idc), i);
	CHECK_EQ(genid_step(b, idb), 21);
	CHECK_EQ(genid_step(c, idc), 7);
	CHECK(memcmp(idb, ida, SPK_VMGENID_LEN) && memcmp(idc, ida, SPK_VMGENID_LEN) &&
	          memcmp(idb, idc, SPK_VMGENID_LEN),
	      "two of the origin's and clones' VMGENIDs are the same");
	CHECK(mem_hash(&b->t) != mem_hash(&c->t), "the clones' memories are the same");

	/* memory: shared with the other clone until written; b wrote more than c */
	const void *hb = spk_mem_ptr(spk_vm_mem(b->t.vm), 0, 1, SPK_MEM_R);
	const void *hc = spk_mem_ptr(spk_vm_mem(c->t.vm), 0, 1, SPK_MEM_R);
	unsigned long b_dirty = smaps_kb(hb, "Private_Dirty"),
	              c_dirty = smaps_kb(hc, "Private_Dirty");
	unsigned long b_shared = smaps_kb(hb, "Shared_Clean"),
	              c_shared = smaps_kb(hc, "Shared_Clean");
	printf("clone b: Rss %lu kB, Private_Dirty %lu kB, Shared_Clean %lu kB; "
	       "clone c: Private_Dirty %lu kB, Shared_Clean %lu kB (of %llu kB)\n",
	       smaps_kb(hb, "Rss"), b_dirty, b_shared, c_dirty, c_shared, TH_RAM >> 10);
	/* mem_hash read every page of both: all 4096 pages are mapped, and
	 * those neither wrote are the same page cache pages in both */
	CHECK(b_shared >= (TH_RAM >> 10) / 2 && c_shared >= (TH_RAM >> 10) / 2,
	      "pages not shared between clones");
	/* written: the count, 16 scribble pages, the stack, the ID page */
	CHECK(b_dirty > c_dirty && b_dirty < 256 && c_dirty < 256, "copied pages: %lu, %lu kB",
	      b_dirty, c_dirty);

	/* an in-place reset of a clone is a new generation too */
	struct spk_snap_reset *rp;
	uint8_t at_reset[SPK_VMGENID_LEN], after[SPK_VMGENID_LEN];
	CHECK_OK(spk_snap_reset_new(b->t.vm, b->devs, NULL, &rp));
	CHECK_EQ(genid_step(b, at_reset), 22);
	CHECK_OK(spk_snap_reset_apply(rp));
	CHECK_EQ(genid_step(b, after), 22);
	CHECK(memcmp(at_reset, after, SPK_VMGENID_LEN) != 0, "the reset kept the VMGENID");
	spk_snap_reset_free(rp);

	/* each clone's vsock device has its CID */
	CHECK_EQ(saved_cid(b, dir), 10);
	CHECK_EQ(saved_cid(c, dir), 11);
	CHECK_EQ(file_hash(fd), before);
	close(fd);
	clone_destroy(&x, 1, &out[1]);
	clone_destroy(&x, 0, &out[0]);
	unlink(state);
	unlink(mem);
	rmdir(dir);
}

/* ---- userfaultfd: the library's handler, prefetch, Firecracker's handshake ----------- */

/* Skip (77) where userfaultfd cannot serve KVM's faults, saying why. */
static void need_uffd(void)
{
	if (spk_snap_uffd_check() < 0) {
		printf("SKIP: %s\n", spk_last_error());
		exit(77);
	}
}

/* t_snap_count stopped after step 3 and saved whole into dir (state, mem). */
static void uffd_snap(char *dir, size_t dlen, char *state, char *mem, size_t len)
{
	struct th a;

	snprintf(dir, dlen, "/tmp/spk-snap-uffd-XXXXXX");
	CHECK(mkdtemp(dir) != NULL, "mkdtemp");
	snprintf(state, len, "%s/state", dir);
	snprintf(mem, len, "%s/mem", dir);
	th_setup(&a, "t_snap_count", NULL);
	for (uint64_t i = 1; i <= 3; i++)
		CHECK_EQ(next_count(&a), i);
	CHECK_OK(spk_vm_snapshot(a.vm, NULL, state, mem, 0));
	th_teardown(&a);
}

static void uffd_restore(struct th *b, const char *state, const char *mem,
                         const struct spk_snap_restore_opts *o)
{
	th_setup(b, "t_snap_count", NULL);
	CHECK_OK(spk_vm_restore_opts(b->vm, NULL, state, mem, o));
}

/* The child: restore with a prefetch of WSET, count on, say how many faults. */
static int child_uffd(int argc, char **argv)
{
	const struct spk_snap_restore_opts o = {.backend = SPK_SNAP_BACKEND_UFFD,
	                                        .prefetch = argv[4]};
	struct spk_snap_uffd_stats st;
	struct th b;

	CHECK(argc == 5, "child-uffd STATE MEM WSET");
	uffd_restore(&b, argv[2], argv[3], &o);
	CHECK_OK(spk_vm_uffd_stats(b.vm, &st));
	CHECK(st.prefetched > 0, "nothing prefetched");
	uint64_t before = st.faults;
	for (uint64_t i = 4; i <= 8; i++)
		CHECK_EQ(next_count(&b), i);
	CHECK_OK(spk_vm_uffd_stats(b.vm, &st));
	printf("child: %llu pages prefetched, %llu faults before the first run, %llu after 5 "
	       "steps\n",
	       (unsigned long long)st.prefetched, (unsigned long long)before,
	       (unsigned long long)st.faults);
	th_teardown(&b);
	return 0;
}

/*
 * The library's handler: a VM restored through userfaultfd has memory
 * equal to the file's (hashed; holes served as zeros), counts on from 4,
 * records the pages it touched; a page given back (MADV_DONTNEED) is zero
 * when touched again; another process prefetches that working set before
 * its first run and counts on too; destroy stops the handler's thread.
 */
static void test_uffd(void)
{
	char dir[64], state[128], mem[128], wset[128];
	const struct spk_snap_restore_opts rec = {.backend = SPK_SNAP_BACKEND_UFFD, .record = true};
	struct spk_snap_uffd_stats st;
	struct th b, c;

	need_uffd();
	uffd_snap(dir, sizeof(dir), state, mem, sizeof(state));
	snprintf(wset, sizeof(wset), "%s/wset", dir);

	/* memory equal to a File restore's, page for page */
	th_setup(&c, "t_snap_count", NULL);
	CHECK_OK(spk_vm_restore(c.vm, NULL, state, mem));
	uffd_restore(&b, state, mem, NULL);
	CHECK(spk_vm_uffd_stats(b.vm, &st) == -ENOENT, "stats of a File restore");
	th_teardown(&b);
	uffd_restore(&b, state, mem, &rec);
	CHECK_OK(spk_vm_uffd_stats(b.vm, &st));
	CHECK_EQ(st.faults, 0); /* nothing touched yet */
	for (uint64_t i = 4; i <= 8; i++)
		CHECK_EQ(next_count(&b), i);
	CHECK_OK(spk_vm_uffd_stats(b.vm, &st));
	CHECK(st.faults > 0 && st.copied > 0, "faults %llu copied %llu",
	      (unsigned long long)st.faults, (unsigned long long)st.copied);
	printf("uffd: %llu faults, %llu copied, %llu zero pages after 5 steps\n",
	       (unsigned long long)st.faults, (unsigned long long)st.copied,
	       (unsigned long long)st.zeroed);
	CHECK_OK(spk_vm_uffd_working_set_save(b.vm, wset));
	for (uint64_t i = 4; i <= 8; i++)
		CHECK_EQ(next_count(&c), i);
	CHECK_EQ(mem_hash(&b), mem_hash(&c)); /* every page through the handler */
	CHECK_OK(spk_vm_uffd_stats(b.vm, &st));
	CHECK_EQ(st.copied + st.zeroed, TH_RAM / 4096);

	/* a page given back reads as zeros, not as the file's */
	uint8_t *p = spk_mem_ptr(spk_vm_mem(b.vm), 0x200000, 4096, SPK_MEM_R | SPK_MEM_W);
	CHECK(p != NULL, "guest page");
	memset(p, 0xa5, 4096);
	CHECK_OK(madvise(p, 4096, MADV_DONTNEED));
	CHECK_EQ(p[0], 0);
	CHECK_EQ(p[4095], 0);
	CHECK_OK(spk_vm_uffd_stats(b.vm, &st));
	CHECK(st.removed >= 1, "no REMOVE event");
	th_teardown(&b); /* stops and joins the handler's thread */
	th_teardown(&c);

	/* the working set, prefetched by another process before its first run */
	char *argv[] = {"snapshot_tests", "child-uffd", state, mem, wset, NULL};
	CHECK_EQ(run_child(argv), 0);

	/* a diff state file: its base's full file served, the diff's pages over it */
	char dstate[160], dmem[160], full[160];
	struct th a;
	snprintf(dstate, sizeof(dstate), "%s/dstate", dir);
	snprintf(dmem, sizeof(dmem), "%s/dmem", dir);
	snprintf(full, sizeof(full), "%s/fstate", dir);
	th_setup(&a, "t_snap_count", NULL);
	CHECK_OK(spk_vm_dirty_log_start(a.vm));
	for (uint64_t i = 1; i <= 3; i++)
		CHECK_EQ(next_count(&a), i);
	CHECK_OK(spk_vm_snapshot(a.vm, NULL, full, mem, 0));
	CHECK_EQ(next_count(&a), 4);
	CHECK_OK(spk_vm_snapshot(a.vm, NULL, dstate, dmem, SPK_SNAP_DIFF));
	th_teardown(&a);
	uffd_restore(&b, dstate, mem, &rec);
	for (uint64_t i = 5; i <= 7; i++)
		CHECK_EQ(next_count(&b), i);
	th_teardown(&b);
	const struct spk_snap_restore_opts ext = {.backend = SPK_SNAP_BACKEND_UFFD_EXTERNAL,
	                                          .uffd_socket = "/nonexistent.sock"};
	th_setup(&b, "t_snap_count", NULL);
	CHECK(spk_vm_restore_opts(b.vm, NULL, dstate, NULL, &ext) == -EINVAL, "external + diff");
	CHECK(strstr(spk_last_error(), "diff") != NULL, "%s", spk_last_error());
	th_teardown(&b);
	unlink(dstate);
	unlink(dmem);
	unlink(full);
	unlink(wset);
	unlink(state);
	unlink(mem);
	rmdir(dir);
}

/* Write b, flip nothing or a byte at off: a working set made hostile. */
static void uffd_expect_bad(const char *state, const char *mem, const char *bad, const char *want)
{
	const struct spk_snap_restore_opts o = {.backend = SPK_SNAP_BACKEND_UFFD, .prefetch = bad};
	struct th b;

	th_setup(&b, "t_snap_count", NULL);
	uint64_t h = mem_hash(&b);
	CHECK(spk_vm_restore_opts(b.vm, NULL, state, mem, &o) == -EINVAL, "%s accepted", want);
	CHECK(strstr(spk_last_error(), want) != NULL, "wanted '%s' in: %s", want, spk_last_error());
	CHECK_EQ(mem_hash(&b), h); /* nothing changed */
	th_teardown(&b);
}

/* Options that do not fit and hostile working-set files: refused before
 * memory changes, each with a line naming why. */
static void test_uffd_hostile(void)
{
	char dir[64], state[128], mem[128], wset[128], bad[160];
	struct spk_snap_restore_opts o = {.backend = SPK_SNAP_BACKEND_FILE, .prefetch = "x"};
	struct th b;

	need_uffd();
	uffd_snap(dir, sizeof(dir), state, mem, sizeof(state));
	snprintf(wset, sizeof(wset), "%s/wset", dir);
	snprintf(bad, sizeof(bad), "%s/bad", dir);
	th_setup(&b, "t_snap_count", NULL);
	CHECK(spk_vm_restore_opts(b.vm, NULL, state, mem, &o) == -EINVAL, "prefetch with File");
	o = (struct spk_snap_restore_opts){.backend = SPK_SNAP_BACKEND_UFFD_EXTERNAL};
	CHECK(spk_vm_restore_opts(b.vm, NULL, state, mem, &o) == -EINVAL, "external, no socket");
	o.backend = (enum spk_snap_mem_backend)7;
	CHECK(spk_vm_restore_opts(b.vm, NULL, state, mem, &o) == -EINVAL, "backend 7");
	o = (struct spk_snap_restore_opts){.backend = SPK_SNAP_BACKEND_UFFD};
	CHECK(spk_vm_uffd_working_set_save(b.vm, wset) == -ENOENT, "no handler yet");
	CHECK_OK(spk_vm_restore_opts(b.vm, NULL, state, mem, &o));
	CHECK(spk_vm_uffd_working_set_save(b.vm, wset) == -EINVAL, "not recording");
	/* a second restore replaces the first's handler */
	o.record = true;
	CHECK_OK(spk_vm_restore_opts(b.vm, NULL, state, mem, &o));
	CHECK_EQ(next_count(&b), 4);
	CHECK_OK(spk_vm_uffd_working_set_save(b.vm, wset));
	th_teardown(&b);

	struct blob w = slurp(wset), x;
	CHECK(w.n > 36, "working set of %zu bytes", w.n);
	x = w;
	x.n = w.n - 1; /* truncated */
	spit(bad, &x);
	uffd_expect_bad(state, mem, bad, "field 'count'");
	x.n = w.n;
	x.p[w.n - 1] ^= 1; /* the CRC */
	spit(bad, &x);
	uffd_expect_bad(state, mem, bad, "CRC");
	x.p[w.n - 1] ^= 1;
	x.p[16] ^= 0x10; /* another memory file's size */
	spit(bad, &x);
	uffd_expect_bad(state, mem, bad, "field 'file_size'");
	x.p[16] ^= 0x10;
	x.p[32] |= 1; /* an offset not page-aligned */
	uint32_t crc = crc32_ieee(0, x.p, w.n - 4);
	memcpy(x.p + w.n - 4, &crc, 4);
	spit(bad, &x);
	uffd_expect_bad(state, mem, bad, "is not a page");
	memset(x.p + 24, 0xff, 8); /* a count that overflows */
	spit(bad, &x);
	uffd_expect_bad(state, mem, bad, "field 'count'");
	x.p[0] = 'X';
	spit(bad, &x);
	uffd_expect_bad(state, mem, bad, "magic");
	free(w.p);
	unlink(bad);
	unlink(wset);
	unlink(state);
	unlink(mem);
	rmdir(dir);
}

/* The test's external handler, started with MODE and waited for ("ready"). */
static pid_t start_handler(const char *mode, const char *sock, const char *mem, FILE **out)
{
	int pfd[2];
	char line[64];
	pid_t pid;

	CHECK_OK(pipe(pfd));
	pid = fork();
	CHECK(pid >= 0, "fork");
	if (pid == 0) {
		dup2(pfd[1], 1);
		close(pfd[0]);
		execl(UFFD_HANDLER, "uffd_handler", mode, sock, mem, (char *)NULL);
		_exit(127);
	}
	close(pfd[1]);
	*out = fdopen(pfd[0], "r");
	CHECK(*out && fgets(line, sizeof(line), *out) && strcmp(line, "ready\n") == 0,
	      "the handler did not start");
	return pid;
}

static int wait_handler(pid_t pid, FILE *out, char *line, size_t len)
{
	int status;

	line[0] = 0;
	if (!fgets(line, (int)len, out))
		line[0] = 0;
	fclose(out);
	CHECK(waitpid(pid, &status, 0) == pid, "waitpid");
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/*
 * Firecracker's handshake with an external handler (tests/guest/
 * uffd_handler.c): it gets the regions and the descriptor, serves every
 * fault from the memory file, and the VM counts on. A handler that hangs
 * up without reading, one that exits without serving, a socket nobody
 * listens on: -EPIPE or -ENOENT naming it, no hang.
 */
static void test_uffd_external(void)
{
	char dir[64], state[128], mem[128], sock[160], line[64];
	struct spk_snap_restore_opts o = {.backend = SPK_SNAP_BACKEND_UFFD_EXTERNAL};
	FILE *out;
	struct th b;
	pid_t pid;

	need_uffd();
	uffd_snap(dir, sizeof(dir), state, mem, sizeof(state));
	snprintf(sock, sizeof(sock), "%s/uffd.sock", dir);
	o.uffd_socket = sock;

	pid = start_handler("serve", sock, mem, &out);
	uffd_restore(&b, state, NULL, &o);
	CHECK(spk_vm_uffd_stats(b.vm, &(struct spk_snap_uffd_stats){0}) == -ENOENT,
	      "stats of an external handler");
	for (uint64_t i = 4; i <= 8; i++)
		CHECK_EQ(next_count(&b), i);
	th_teardown(&b); /* the handler sees the hang-up and ends */
	CHECK_EQ(wait_handler(pid, out, line, sizeof(line)), 0);
	CHECK(strncmp(line, "served ", 7) == 0 && atoi(line + 7) > 0, "handler said '%s'", line);
	printf("external handler: %s", line);

	const char *modes[] = {"close-early", "exit-early"};
	for (size_t m = 0; m < 2; m++) {
		pid = start_handler(modes[m], sock, mem, &out);
		th_setup(&b, "t_snap_count", NULL);
		int rc = spk_vm_restore_opts(b.vm, NULL, state, NULL, &o);
		printf("%s: %d: %s\n", modes[m], rc, spk_last_error());
		CHECK(rc == -EPIPE, "%s: %d", modes[m], rc);
		CHECK(strstr(spk_last_error(), "Uffd handler") != NULL, "%s", spk_last_error());
		th_teardown(&b);
		CHECK_EQ(wait_handler(pid, out, line, sizeof(line)), 0);
	}

	/* nobody listening */
	unlink(sock);
	th_setup(&b, "t_snap_count", NULL);
	uint64_t h = mem_hash(&b);
	CHECK(spk_vm_restore_opts(b.vm, NULL, state, NULL, &o) == -ENOENT, "missing socket");
	CHECK(strstr(spk_last_error(), sock) != NULL, "%s", spk_last_error());
	CHECK_EQ(mem_hash(&b), h);
	th_teardown(&b);
	unlink(state);
	unlink(mem);
	rmdir(dir);
}

/* ---- virtio-blk and virtio-rng across a snapshot, restored in another process --------- */

#define IO_IMAGE (1ull << 20)

/* A VM running t_snap_io: in-kernel irqchip, PCI host, blk on image, rng. */
struct io {
	struct th t;
	struct spk_evloop *loop;
	struct spk_pci_host *pci;
	struct spk_virtio_blk *blk;
	struct spk_virtio_rng *rng;
	struct spk_snap_devices *devs;
};

static void io_setup(struct io *x, const char *image)
{
	const struct th_opts o = {.irqchip = SPK_IRQCHIP_KERNEL};

	memset(x, 0, sizeof(*x));
	th_setup(&x->t, "t_snap_io", &o);
	CHECK_OK(spk_evloop_new("virtio", &x->loop));
	const struct spk_pci_host_config hc = spk_pc_pci_host_config(x->t.vm);
	CHECK_OK(spk_pci_host_new(&hc, &x->pci));
	const struct spk_virtio_blk_config bc = {.pci = x->pci,
	                                         .slot = -1,
	                                         .mem = spk_vm_mem(x->t.vm),
	                                         .loop = x->loop,
	                                         .path = image,
	                                         .id = "snapdisk"};
	CHECK_OK(spk_virtio_blk_new(&bc, &x->blk));
	const struct spk_virtio_rng_config rc = {
	    .pci = x->pci, .slot = -1, .mem = spk_vm_mem(x->t.vm), .loop = x->loop};
	CHECK_OK(spk_virtio_rng_new(&rc, &x->rng));
	CHECK_OK(spk_evloop_start(x->loop));
	/* the devices a snapshot saves, blk quiesced first */
	struct spk_virtio *bd = spk_virtio_blk_dev(x->blk), *rd = spk_virtio_rng_dev(x->rng);
	CHECK_OK(spk_snap_devices_new(&x->devs));
	CHECK_OK(spk_snap_devices_add(x->devs, "pci", spk_pci_host_state_ops(), x->pci));
	CHECK_OK(spk_snap_devices_add(x->devs, "blk", spk_virtio_state_ops(bd), bd));
	CHECK_OK(spk_snap_devices_add_quiesce(x->devs, "blk", spk_virtio_quiesce, bd));
	CHECK_OK(spk_snap_devices_add(x->devs, "rng", spk_virtio_state_ops(rd), rd));
	CHECK(spk_snap_devices_add_quiesce(x->devs, "nope", spk_virtio_quiesce, rd) == -ENOENT,
	      "quiesce of a device not in the set");
	CHECK(spk_snap_devices_add_quiesce(x->devs, "blk", spk_virtio_quiesce, bd) == -EEXIST,
	      "a second quiesce");
}

static void io_teardown(struct io *x)
{
	spk_evloop_stop(x->loop);
	spk_virtio_blk_free(x->blk);
	spk_virtio_rng_free(x->rng);
	spk_pci_host_free(x->pci);
	spk_evloop_free(x->loop);
	spk_snap_devices_free(x->devs);
	th_teardown(&x->t);
}

/* Run to SYNC stage; its args; the exit kept in *e for an answer. */
static struct spk_ucall io_sync(struct io *x, uint64_t stage, struct spk_exit *e)
{
	th_run(&x->t, e);
	struct spk_ucall uc = th_expect_ucall(&x->t, e, SPK_UCALL_SYNC);
	CHECK_EQ(uc.args[0], stage);
	return uc;
}

/* One step k: the write's SYNC 10, then SYNC 11 (answered verify or not). */
static void io_step(struct io *x, uint64_t k, bool verify, uint64_t *birqs, uint64_t *rirqs)
{
	struct spk_exit e;
	struct spk_ucall uc = io_sync(x, 10, &e);

	CHECK_EQ(uc.args[1], k);
	CHECK_OK(spk_exit_complete_read(&e, 0));
	uc = io_sync(x, 11, &e);
	CHECK_EQ(uc.args[1], k);
	/* an interrupt per request, at least (one more after a restore) */
	CHECK(uc.args[2] > *birqs && uc.args[3] > *rirqs, "step %llu: irqs blk %llu rng %llu",
	      (unsigned long long)k, (unsigned long long)uc.args[2],
	      (unsigned long long)uc.args[3]);
	*birqs = uc.args[2];
	*rirqs = uc.args[3];
	CHECK_OK(spk_exit_complete_read(&e, verify ? 1 : 0));
	if (verify) {
		uc = io_sync(x, 12, &e);
		CHECK_EQ(uc.args[1], k);
		CHECK_OK(spk_exit_complete_read(&e, 0));
	}
}

/* Sector k of the image holds block k's pattern (or zeros: want false). */
static bool io_block(const char *image, uint64_t k)
{
	uint64_t w[64];
	int fd = open(image, O_RDONLY | O_CLOEXEC);

	CHECK(fd >= 0, "open %s", image);
	CHECK(pread(fd, w, sizeof(w), (off_t)(k * 512)) == (ssize_t)sizeof(w), "pread");
	close(fd);
	for (unsigned i = 0; i < 64; i++)
		if (w[i] != (0x5350414e00000000ull ^ (k << 16) ^ (i * 8)))
			return false;
	return true;
}

static void copy_file(const char *from, const char *to)
{
	static uint8_t buf[65536];
	int in = open(from, O_RDONLY | O_CLOEXEC), out;
	ssize_t n;

	out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	CHECK(in >= 0 && out >= 0, "copy %s to %s", from, to);
	while ((n = read(in, buf, sizeof(buf))) > 0)
		CHECK(write(out, buf, (size_t)n) == n, "write");
	close(in);
	close(out);
}

/* The child: restore STATE (MEM) with the disk COPY; steps 5.. go on. */
static int child_io(int argc, char **argv)
{
	uint64_t birqs = 0, rirqs = 0;
	struct io x;

	CHECK(argc == 5, "child-io STATE MEM IMAGE");
	io_setup(&x, argv[4]);
	CHECK_OK(spk_vm_restore(x.t.vm, x.devs, argv[2], argv[3]));
	/* the guest is past SYNC 10 of step 4: its write completed at the
	 * snapshot, its interrupt arrives now; then SYNC 11 of step 4 */
	struct spk_exit e;
	struct spk_ucall uc = io_sync(&x, 11, &e);
	CHECK_EQ(uc.args[1], 4);
	birqs = uc.args[2];
	rirqs = uc.args[3];
	CHECK_OK(spk_exit_complete_read(&e, 0));
	for (uint64_t k = 5; k <= 7; k++)
		io_step(&x, k, k == 7, &birqs, &rirqs);
	io_teardown(&x);
	for (uint64_t k = 1; k <= 7; k++)
		CHECK(io_block(argv[4], k), "the restored VM's disk lacks block %llu",
		      (unsigned long long)k);
	CHECK(!io_block(argv[4], 8), "block 8 was never written");
	printf("child: blocks 1..7 on the disk, %llu blk and %llu rng interrupts\n",
	       (unsigned long long)birqs, (unsigned long long)rirqs);
	return 0;
}

/*
 * A guest driving virtio-blk and virtio-rng with MSI-X is snapshotted with
 * its fourth write in flight (at SYNC 10, before it waits): the snapshot
 * quiesces the disk first, so the write is on the disk and its completion
 * in the saved memory. The disk is copied then (what a user of snapshots
 * does); the first VM goes on writing to the original. Another process
 * restores the state with the copy: the write's interrupt arrives, the
 * guest goes on with blocks 5..7 and rng bytes, and reads 1..7 back. The
 * copy has 1..4 at the snapshot (every write before it) and not the first
 * VM's later ones; the original has the first VM's.
 */
static void test_io(void)
{
	char dir[64], state[128], mem[128], image[128], copy[128];
	uint64_t birqs = 0, rirqs = 0;
	struct spk_exit e;
	struct io a;
	int fd;

	snprintf(dir, sizeof(dir), "/tmp/spk-snap-io-XXXXXX");
	CHECK(mkdtemp(dir) != NULL, "mkdtemp");
	snprintf(state, sizeof(state), "%s/state", dir);
	snprintf(mem, sizeof(mem), "%s/mem", dir);
	snprintf(image, sizeof(image), "%s/disk", dir);
	snprintf(copy, sizeof(copy), "%s/disk.snap", dir);
	CHECK((fd = open(image, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) >= 0, "image");
	CHECK_OK(ftruncate(fd, IO_IMAGE));
	close(fd);

	io_setup(&a, image);
	for (uint64_t k = 1; k <= 3; k++)
		io_step(&a, k, k == 3, &birqs, &rirqs);
	struct spk_ucall uc = io_sync(&a, 10, &e); /* write 4 submitted, maybe in flight */
	CHECK_EQ(uc.args[1], 4);
	CHECK_OK(spk_exit_complete_read(&e, 0));
	CHECK_OK(spk_vm_snapshot(a.t.vm, a.devs, state, mem, 0));
	copy_file(image, copy);
	for (uint64_t k = 1; k <= 4; k++)
		CHECK(io_block(copy, k), "the snapshot's disk lacks block %llu (written before it)",
		      (unsigned long long)k);
	/* the first VM goes on: its step 4 and 5 to the original disk */
	uc = io_sync(&a, 11, &e);
	CHECK_EQ(uc.args[1], 4);
	CHECK_OK(spk_exit_complete_read(&e, 0));
	io_step(&a, 5, false, &(uint64_t){uc.args[2]}, &(uint64_t){uc.args[3]});
	io_teardown(&a);
	CHECK(io_block(image, 5), "the first VM's block 5");
	CHECK(!io_block(copy, 5), "the snapshot's disk got a write made after it");

	char *argv[] = {"snapshot_tests", "child-io", state, mem, copy, NULL};
	CHECK_EQ(run_child(argv), 0);
	unlink(copy);
	unlink(image);
	unlink(state);
	unlink(mem);
	rmdir(dir);
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "child-cpl3") == 0)
		return child_cpl3(argc, argv);
	if (argc > 1 && strcmp(argv[1], "child-io") == 0)
		return child_io(argc, argv);
	if (argc > 1 && strcmp(argv[1], "child-uffd") == 0)
		return child_uffd(argc, argv);
	static const struct th_case cases[] = {{"memory", test_memory},
	                                       {"reset", test_reset},
	                                       {"dirty_log", test_dirty_log},
	                                       {"cpl3", test_cpl3},
	                                       {"vcpu_state", test_vcpu_state},
	                                       {"hostile", test_hostile},
	                                       {"clones", test_clones},
	                                       {"uffd", test_uffd},
	                                       {"uffd_hostile", test_uffd_hostile},
	                                       {"uffd_external", test_uffd_external},
	                                       {"io", test_io}};

	return th_main(argc, argv, cases, SPK_ARRAY_SIZE_T(cases));
}
