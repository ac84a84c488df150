/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Snapshots (issue 15), in this process through the library:
 * - create: spk_vm_snapshot of a paused 128 MiB counting guest (state and
 *   sparse memory file, no fsync); the limit is writing the same pages
 *   the memory file holds with pwrite;
 * - restore to the first guest instruction, 128 MiB and 2 GiB: a new VM,
 *   its memory and vCPU, spk_vm_restore (memory mapped MAP_PRIVATE, loaded
 *   on touch) and KVM_RUN to the guest's next exit. Lazy loading means the
 *   2 GiB row should cost what the 128 MiB one does. The limit: a bare KVM
 *   program (raw ioctls, no libsparkler) making a VM of the same size and
 *   running it to its first exit;
 * - in-place reset with N pages dirtied (the monitor writes N pages, so
 *   the dirty log has N + the guest's few): spk_snap_reset_apply; the
 *   limit is copying N pages with memcpy;
 * - clones per second of a 64 MiB guest: spk_vm_clone of N clones (each a
 *   new VM and vCPU, the restore, a new VM generation ID), each run to its
 *   first exit; the limit is the bare program doing the same KVM calls
 *   for N VMs with the memory file mapped MAP_PRIVATE over each one's
 *   memory, each run to its first exit. Destroying the clones is not
 *   timed.
 * p50 of several runs in the cell.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <sparkler/sparkler.h>

#include "bare.h"
#include "bench.h"
#include "guest.h"

#define SNAP_GUEST SPK_BENCH_GUEST_DIR "/t_snap_count.elf"
#define TABLES     0x10000ull
#define MAP        (4ull << 30)

static double now_us(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double median(double *v, int n)
{
	if (n <= 0)
		return 0;
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return v[n / 2];
}

/* A VM with mem bytes of RAM and t_snap_count loaded, vCPU 0 at its entry
 * (restore: its registers come from the snapshot). */
static int make_vm(uint64_t mem, bool restore, struct spk_vm **vm, struct spk_vcpu **vcpu)
{
	const struct spk_vm_config cfg = {.max_vcpus = 1, .console_fd = -1};
	struct spk_x86_long_mode lm;
	struct spk_elf_info elf;
	int rc;

	if ((rc = spk_vm_create(&cfg, vm)) < 0)
		return rc;
	if ((rc = spk_vm_add_memory(*vm, 0, mem, SPK_MEM_RAM, "ram", NULL)) < 0 ||
	    (rc = spk_vcpu_create(*vm, 0, vcpu)) < 0)
		return rc;
	if (restore)
		return 0;
	const struct spk_x86_entry entry = {.cpl = 0};
	struct spk_x86_entry e = entry;
	if ((rc = spk_x86_build_long_mode(spk_vm_mem(*vm), TABLES, MAP, &lm)) < 0 ||
	    (rc = spk_elf_load_file(spk_vm_mem(*vm), SNAP_GUEST, 16 << 20, &elf)) < 0)
		return rc;
	e.rip = elf.entry;
	return spk_x86_vcpu_enter_long_mode(*vcpu, &lm, &e);
}

/* Run to the guest's next count (a ucall). */
static int next_count(struct spk_vcpu *vcpu)
{
	struct spk_exit e;

	for (int i = 0; i < 1000; i++) {
		int rc = spk_vcpu_run(vcpu, &e);

		if (rc < 0)
			return rc;
		if (e.kind == SPK_EXIT_HYPERCALL && e.hypercall.nr == SPK_HC_UCALL) {
			spk_exit_complete_read(&e, 0);
			return 0;
		}
		if (e.kind != SPK_EXIT_NONE)
			return -EIO;
	}
	return -EIO;
}

static void fail(const char *what)
{
	fprintf(stderr, "sparkler-bench: snap: %s: %s\n", what, spk_last_error());
}

static void put_row(struct report *r, const char *name, const char *unit, double spk, double limit,
                    const char *note)
{
	struct row *row = report_row(r, name, unit, 1);

	if (!row)
		return;
	row->spk = spk > 0 ? cell_value(spk) : cell_text("failed");
	row->qemu = cell_text("n/a");
	row->limit = limit > 0 ? cell_value(limit) : cell_text("n/a");
	row_note(row, "%s", note);
}

/* The bare program's VM of mem bytes, to its first exit: µs. */
static double bare_first_exit(uint64_t mem)
{
	struct guest_code g;
	struct bare_vm b;
	double t0, t = 0;
	int kvm = bare_kvm_open();

	if (kvm < 0)
		return 0;
	guest_oneexit64(&g);
	t0 = now_us();
	if (bare_vm_create(&b, kvm, mem) == 0) {
		if (bare_vm_load(&b, g.bytes, g.len) == 0 && bare_vm_enter(&b, 0) == 0 &&
		    bare_vm_run(&b, -1) >= 0)
			t = now_us() - t0;
		bare_vm_destroy(&b);
	}
	close(kvm);
	return t;
}

static double restore_once(uint64_t mem, const char *state, const char *memfile)
{
	struct spk_vm *vm = NULL;
	struct spk_vcpu *vcpu;
	double t0 = now_us(), t = 0;

	if (make_vm(mem, true, &vm, &vcpu) == 0 && spk_vm_restore(vm, NULL, state, memfile) == 0 &&
	    next_count(vcpu) == 0)
		t = now_us() - t0;
	else
		fail("restore");
	spk_vm_destroy(vm);
	return t;
}

/* Save a counting guest of mem bytes after 3 counts; create time in *create. */
static int saved(const struct bench_opts *o, uint64_t mem, const char *tag, char *state,
                 char *memfile, double *create)
{
	struct spk_vm *vm = NULL;
	struct spk_vcpu *vcpu;
	char name[64];
	int rc;

	snprintf(name, sizeof(name), "snap-%s.state", tag);
	bench_path(o, name, state);
	snprintf(name, sizeof(name), "snap-%s.mem", tag);
	bench_path(o, name, memfile);
	if ((rc = make_vm(mem, false, &vm, &vcpu)) < 0)
		goto out;
	for (int i = 0; i < 3 && rc == 0; i++)
		rc = next_count(vcpu);
	double t0 = now_us();
	if (rc == 0)
		rc = spk_vm_snapshot(vm, NULL, state, memfile, 0);
	*create = now_us() - t0;
out:
	if (rc < 0)
		fail("save");
	spk_vm_destroy(vm);
	return rc;
}

/* pwrite of the memory file's data blocks into a scratch file: µs. */
static double write_limit(const struct bench_opts *o, const char *memfile)
{
	char path[PATH_MAX];
	int in = open(memfile, O_RDONLY | O_CLOEXEC), out;
	double t = 0;
	char *buf = malloc(1 << 20);

	bench_path(o, "snap-limit.mem", path);
	out = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (in >= 0 && out >= 0 && buf) {
		off_t size = lseek(in, 0, SEEK_END), off = 0;
		double t0 = now_us();

		if (ftruncate(out, size) == 0)
			while ((off = lseek(in, off, SEEK_DATA)) >= 0 && off < size) {
				ssize_t n = pread(in, buf, 1 << 20, off);

				if (n <= 0 || pwrite(out, buf, (size_t)n, off) != n)
					break;
				off += n;
			}
		t = now_us() - t0;
	}
	free(buf);
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	unlink(path);
	return t;
}

static void reset_rows(const struct bench_opts *o, struct report *r)
{
	static const unsigned pages[] = {1, 64, 1024, 8192};
	struct spk_snap_reset *rp = NULL;
	struct spk_vm *vm = NULL;
	struct spk_vcpu *vcpu;
	uint8_t page[4096];
	int reps = o->quick ? 5 : 21;

	memset(page, 0x5a, sizeof(page));
	if (make_vm(128ull << 20, false, &vm, &vcpu) < 0 || next_count(vcpu) < 0 ||
	    spk_snap_reset_new(vm, NULL, NULL, &rp) < 0) {
		fail("reset point");
		goto out;
	}
	for (size_t k = 0; k < sizeof(pages) / sizeof(pages[0]); k++) {
		double v[32], lim[32];
		uint64_t copied = 0;
		int n = 0;
		char name[96], note[512];

		for (int rep = 0; rep < reps; rep++) {
			/* from 16 MiB up: above the guest's own pages */
			for (unsigned p = 0; p < pages[k]; p++)
				spk_mem_write(spk_vm_mem(vm), (16ull << 20) + p * 4096ull, page,
				              4096);
			if (next_count(vcpu) < 0)
				break;
			double t0 = now_us();
			if (spk_snap_reset_apply(rp) < 0) {
				fail("reset");
				break;
			}
			v[n] = now_us() - t0;
			copied = spk_snap_reset_pages(rp);
			/* the limit: memcpy of as many pages */
			size_t len = copied * 4096;
			char *a = malloc(len), *b = malloc(len);
			if (a && b) {
				memset(a, 1, len);
				memset(b, 2, len);
				t0 = now_us();
				memcpy(b, a, len);
				__asm__ volatile("" ::"r"(b) : "memory");
				lim[n] = now_us() - t0;
			} else {
				lim[n] = 0;
			}
			free(a);
			free(b);
			n++;
		}
		snprintf(name, sizeof(name), "In-place reset, %u pages dirtied", pages[k]);
		snprintf(
		    note, sizeof(note),
		    "%llu pages copied back per reset (the monitor wrote %u, the guest the "
		    "rest); p50 of %d. Limit: memcpy of as many pages. spk_snap_reset_apply: "
		    "fetch the dirty log, copy the pages back from the memory file, reload the "
		    "VM and vCPU state.",
		    (unsigned long long)copied, pages[k], n);
		put_row(r, name, "µs", median(v, n), median(lim, n), note);
	}
out:
	spk_snap_reset_free(rp);
	spk_vm_destroy(vm);
}

/* ---- clones per second ---- */

#define CLONE_MEM (64ull << 20)
#define CLONE_MAX 32

struct bench_clones {
	struct spk_vcpu *vcpu[CLONE_MAX];
};

static int clone_build(void *ctx, uint32_t k, const struct spk_clone_id *id,
                       struct spk_clone_vm *out)
{
	struct bench_clones *b = ctx;
	int rc = make_vm(CLONE_MEM, true, &out->vm, &b->vcpu[k]);

	if (rc < 0)
		spk_vm_destroy(out->vm);
	return rc;
}

static void clone_destroy(void *ctx, uint32_t k, struct spk_clone_vm *vm)
{
	spk_vm_destroy(vm->vm);
}

/* n clones of state/memfile, each to its first exit: clones per second. */
static double clones_once(const char *state, const char *memfile, uint32_t n)
{
	static const struct spk_clone_ops ops = {clone_build, clone_destroy};
	struct spk_clone_id ids[CLONE_MAX] = {0};
	struct spk_clone_vm out[CLONE_MAX];
	struct bench_clones b = {0};
	double t0 = now_us(), t = 0;
	uint32_t ran = 0;

	if (spk_vm_clone(state, memfile, n, ids, &ops, &b, out) < 0) {
		fail("clone");
		return 0;
	}
	while (ran < n && next_count(b.vcpu[ran]) == 0)
		ran++;
	t = now_us() - t0;
	for (uint32_t k = 0; k < n; k++)
		spk_vm_destroy(out[k].vm);
	if (ran < n) {
		fail("a clone's first run");
		return 0;
	}
	return n / (t / 1e6);
}

/* The bare program: n VMs, the memory file mapped MAP_PRIVATE over each
 * one's memory, each to its first exit: VMs per second. */
static double bare_clones_once(const char *memfile, uint32_t n)
{
	struct bare_vm vms[CLONE_MAX];
	struct guest_code g;
	uint32_t made = 0;
	int kvm = bare_kvm_open(), fd = open(memfile, O_RDONLY | O_CLOEXEC);
	double t0, t = 0;
	bool ok = kvm >= 0 && fd >= 0;

	guest_oneexit64(&g);
	t0 = now_us();
	for (; ok && made < n; made++) {
		struct bare_vm *v = &vms[made];

		if (bare_vm_create(v, kvm, CLONE_MEM) < 0) {
			ok = false;
			break;
		}
		ok = mmap(v->mem, CLONE_MEM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, fd,
		          0) == v->mem &&
		     bare_vm_load(v, g.bytes, g.len) == 0 && bare_vm_enter(v, 0) == 0 &&
		     bare_vm_run(v, -1) >= 0;
	}
	if (ok)
		t = now_us() - t0;
	while (made > 0)
		bare_vm_destroy(&vms[--made]);
	if (fd >= 0)
		close(fd);
	if (kvm >= 0)
		close(kvm);
	return t > 0 ? n / (t / 1e6) : 0;
}

static void clone_rows(const struct bench_opts *o, struct report *r)
{
	uint32_t n = o->quick ? 8 : CLONE_MAX;
	int reps = o->quick ? 3 : 7;
	char state[PATH_MAX], memfile[PATH_MAX], note[512];
	double v[16], lim[16], create;
	int nv = 0, nl = 0;

	if (saved(o, CLONE_MEM, "clones", state, memfile, &create) < 0) {
		put_row(r, "Clones per second, 64 MiB guest", "clones/s", 0, 0, "the save failed");
		return;
	}
	for (int i = 0; i < reps; i++) {
		double c = clones_once(state, memfile, n), b = bare_clones_once(memfile, n);

		if (c > 0)
			v[nv++] = c;
		if (b > 0)
			lim[nl++] = b;
	}
	snprintf(note, sizeof(note),
	         "spk_vm_clone of %u clones of one snapshot (per clone: a new VM, memory and "
	         "vCPU, the checked restore with its memory file mapped MAP_PRIVATE, a new VM "
	         "generation ID), each run to its first exit; p50 of %d batches. Limit: the bare "
	         "program's %u VMs with the same file mapped MAP_PRIVATE, each to its first exit.",
	         n, nv, n);
	put_row(r, "Clones per second, 64 MiB guest", "clones/s", median(v, nv), median(lim, nl),
	        note);
	unlink(state);
	unlink(memfile);
}

void bench_snap(const struct bench_opts *o, struct report *r)
{
	static const struct {
		uint64_t mem;
		const char *tag, *name;
	} sizes[] = {{128ull << 20, "128m", "Restore to first instruction, 128 MiB"},
	             {2ull << 30, "2g", "Restore to first instruction, 2 GiB"}};
	int reps = o->quick ? 5 : 15;
	char state[PATH_MAX], memfile[PATH_MAX];
	double create = 0;

	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		double v[32], lim[32];
		int n = 0, nl = 0;

		if (saved(o, sizes[s].mem, sizes[s].tag, state, memfile, &create) < 0) {
			put_row(r, sizes[s].name, "µs", 0, 0, "the save failed");
			continue;
		}
		if (s == 0) {
			double w = write_limit(o, memfile);
			put_row(r, "Snapshot create, 128 MiB", "µs", create, w,
			        "spk_vm_snapshot of a paused counting guest (state file and sparse "
			        "memory file, no fsync). Limit: pwrite of the memory file's data "
			        "blocks to another file.");
		}
		for (int i = 0; i < reps; i++) {
			double t = restore_once(sizes[s].mem, state, memfile);
			double b = bare_first_exit(sizes[s].mem);

			if (t > 0)
				v[n++] = t;
			if (b > 0)
				lim[nl++] = b;
		}
		put_row(r, sizes[s].name, "µs", median(v, n), median(lim, nl),
		        "New VM (memory, vCPU), spk_vm_restore (checks, MAP_PRIVATE of the memory "
		        "file, VM and vCPU state), KVM_RUN to the guest's next exit. Limit: the "
		        "bare program's VM of the same size to its first exit.");
		unlink(state);
		unlink(memfile);
	}
	reset_rows(o, r);
	clone_rows(o, r);
}
