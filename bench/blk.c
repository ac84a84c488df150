/* SPDX-License-Identifier: Apache-2.0 */
/*
 * virtio-blk throughput: a guest driver at CPL3 (guest/tests/virtio_blk_bench.c)
 * keeps 32 requests in flight on a virtio-blk device over an image in the
 * bench folder, in-process through the library, as `sparkler run` wires
 * it (PCI host, event loop thread, ioeventfd kicks). The limit is the
 * host's own reads and writes of the same file, with the same request
 * size and offsets, through io_uring with the same 32 requests in flight;
 * the host's pread/pwrite one request at a time is measured too and told
 * in the notes. All go through the host's page cache (the image is written
 * first, so it is cached): the rows measure the path from the guest's
 * ring to the file, not the disk. Throughput rows are MiB/s; the random
 * 4 KiB rows are also told as IOPS.
 *
 * The rate limiter's row: the same sequential reads with the disk's
 * bandwidth capped (Firecracker's rate_limiter: a bucket of a tenth of a
 * second's bytes, refilled every 100 ms), side by side with the cap and
 * with what the bucket allows over that run (its first full bucket
 * included); the note has the uncapped figure.
 */
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sparkler/evloop.h>
#include <sparkler/pci.h>
#include <sparkler/platform.h>
#include <sparkler/sparkler.h>
#include <sparkler/virtio_blk.h>

#include "bench.h"
#include "spawn.h"

#ifndef SPK_BENCH_GUEST_DIR
#error "SPK_BENCH_GUEST_DIR: where the guest programs are (bench/meson.build)"
#endif

#define BLK_VM_MEM (64ull << 20)
#define BLK_TABLES 0x10000ull
#define BLK_MAP    (4ull << 30) /* identity map: RAM and the PCI window */
#define QD         32           /* the guest's requests in flight */

enum { SEQ_READ = 1, SEQ_WRITE, RAND_READ, RAND_WRITE };

struct blk_row {
	const char *name;
	int kind;
	uint32_t bs;
};

static const struct blk_row rows[] = {
    {"virtio-blk sequential read, 128 KiB requests", SEQ_READ, 128 << 10},
    {"virtio-blk sequential write, 128 KiB requests", SEQ_WRITE, 128 << 10},
    {"virtio-blk random read, 4 KiB requests", RAND_READ, 4 << 10},
    {"virtio-blk random write, 4 KiB requests", RAND_WRITE, 4 << 10},
};
#define NROWS (sizeof(rows) / sizeof(rows[0]))

struct blk_plan {
	uint64_t image;    /* bytes */
	int seq_passes;    /* over the whole image per sequential run */
	uint64_t rand_ops; /* requests per random run */
	int reps;          /* runs of each (guest, host) pair */
};

/* MiB/s of each run: the io_uring engine, the sync engine, the host at QD
 * (io_uring) and one request at a time (pread/pwrite). */
struct blk_results {
	struct samples uring[NROWS], sync[NROWS], host[NROWS], host_qd1[NROWS];
	const char *why; /* when the device could not run */
};

/* ---- the VM ------------------------------------------------------------------- */

struct blk_vm {
	struct spk_vm *vm;
	struct spk_vcpu *cpu;
	struct spk_evloop *loop;
	struct spk_pci_host *pci;
	struct spk_virtio_blk *blk;
	struct spk_exit e; /* the last exit: a SYNC's answer goes back through it */
};

static void blk_vm_destroy(struct blk_vm *v)
{
	spk_evloop_stop(v->loop);
	spk_virtio_blk_free(v->blk);
	spk_pci_host_free(v->pci);
	spk_evloop_free(v->loop);
	spk_vm_destroy(v->vm);
	*v = (struct blk_vm){0};
}

static int fail(struct blk_vm *v, const char *what)
{
	fprintf(stderr, "sparkler-bench: blk: %s: %s\n", what, spk_last_error());
	blk_vm_destroy(v);
	return -1;
}

/* The rate limiter's row: the cap, and its bucket's refill time. */
#define CAP_MIBS      64
#define CAP_REFILL_MS 100

static int add_device(struct blk_vm *v, const char *image, enum spk_blk_engine engine,
                      uint64_t cap_mibs)
{
	const struct spk_pci_host_config hc = spk_pc_pci_host_config(v->vm);
	const struct spk_virtio_blk_config bc = {
	    .slot = -1, .mem = spk_vm_mem(v->vm), .path = image, .id = "bench", .engine = engine};
	struct spk_virtio_blk_config c = bc;
	int rc;

	if ((rc = spk_evloop_new("virtio", &v->loop)) < 0 ||
	    (rc = spk_pci_host_new(&hc, &v->pci)) < 0)
		return rc;
	c.pci = v->pci;
	c.loop = v->loop;
	if (cap_mibs)
		c.rate_limit.bandwidth =
		    (struct spk_token_bucket){.size = (cap_mibs << 20) * CAP_REFILL_MS / 1000,
		                              .refill_time_ms = CAP_REFILL_MS};
	if ((rc = spk_virtio_blk_new(&c, &v->blk)) < 0)
		return rc;
	return spk_evloop_start(v->loop);
}

static int blk_vm_create(struct blk_vm *v, const char *image, enum spk_blk_engine engine,
                         uint64_t cap_mibs)
{
	const struct spk_vm_config vc = {.max_vcpus = 1, .irqchip = SPK_IRQCHIP_KERNEL};
	struct spk_x86_long_mode lm;
	struct spk_elf_info elf;
	char path[PATH_MAX];

	*v = (struct blk_vm){0};
	snprintf(path, sizeof(path), "%s/t_virtio_blk_bench.elf", SPK_BENCH_GUEST_DIR);
	if (spk_vm_create(&vc, &v->vm) < 0)
		return fail(v, "spk_vm_create");
	if (spk_vm_add_memory(v->vm, 0, BLK_VM_MEM, SPK_MEM_RAM, "ram", NULL) < 0 ||
	    spk_x86_build_long_mode(spk_vm_mem(v->vm), BLK_TABLES, BLK_MAP, &lm) < 0 ||
	    spk_elf_load_file(spk_vm_mem(v->vm), path, BLK_VM_MEM, &elf) < 0)
		return fail(v, "the guest");
	if (add_device(v, image, engine, cap_mibs) < 0)
		return fail(v, "the device");
	const struct spk_x86_entry entry = {.rip = elf.entry, .cpl = 0};
	if (spk_vcpu_create(v->vm, 0, &v->cpu) < 0 ||
	    spk_x86_vcpu_enter_long_mode(v->cpu, &lm, &entry) < 0)
		return fail(v, "the vCPU");
	return 0;
}

/* Run to the guest's SYNC stage, answer it; what the guest sent, or -1. */
static int64_t guest_sync(struct blk_vm *v, uint64_t stage, uint64_t answer)
{
	struct spk_exit *e = &v->e;
	struct spk_ucall uc;
	char line[256];

	do {
		if (spk_vcpu_run(v->cpu, e) < 0) {
			fprintf(stderr, "sparkler-bench: blk: run: %s\n", spk_last_error());
			return -1;
		}
	} while (e->kind == SPK_EXIT_NONE);
	if (e->kind == SPK_EXIT_HYPERCALL && spk_ucall_decode(v->cpu, e, &uc) == 0 &&
	    uc.type == SPK_UCALL_SYNC && uc.args[0] == stage) {
		spk_exit_complete_read(e, answer);
		return (int64_t)uc.args[1];
	}
	if (e->kind == SPK_EXIT_HYPERCALL && spk_ucall_decode(v->cpu, e, &uc) == 0 &&
	    uc.type == SPK_UCALL_ASSERT)
		fprintf(stderr,
		        "sparkler-bench: blk: guest assert: %s at %s:%llu (0x%llx vs 0x%llx)\n",
		        uc.expr, uc.file, (unsigned long long)uc.line,
		        (unsigned long long)uc.args[3], (unsigned long long)uc.args[4]);
	else {
		spk_exit_format(e, line, sizeof(line));
		fprintf(stderr, "sparkler-bench: blk: expected SYNC %llu, got %s\n",
		        (unsigned long long)stage, line);
	}
	return -1;
}

/* One run in the guest: MiB/s, or -1. */
static double guest_run(struct blk_vm *v, const struct blk_row *row, uint64_t n)
{
	if (guest_sync(v, 1, (uint64_t)row->kind) < 0 || guest_sync(v, 2, row->bs) < 0 ||
	    guest_sync(v, 3, n) < 0 || guest_sync(v, 4, 0) < 0)
		return -1;
	double t0 = now_ns();
	int64_t errors = guest_sync(v, 5, 0);
	double t = now_ns() - t0;
	if (errors != 0) {
		fprintf(stderr, "sparkler-bench: blk: %lld requests failed\n", (long long)errors);
		return -1;
	}
	return (double)n * row->bs / (1 << 20) / (t / 1e9);
}

/* ---- the host's own reads and writes (the limit) ------------------------------------ */

/* The guest's offsets: sequential, or its LCG over the image in bs units. */
struct offsets {
	uint64_t blocks, rng, i;
	uint32_t bs;
	bool seq;
};

static struct offsets offsets_of(const struct blk_row *row, uint64_t image)
{
	return (struct offsets){.blocks = image / row->bs,
	                        .rng = 0x2545f4914f6cdd1dull,
	                        .bs = row->bs,
	                        .seq = row->kind == SEQ_READ || row->kind == SEQ_WRITE};
}

static off_t next_offset(struct offsets *o)
{
	uint64_t block;

	if (o->seq)
		block = o->i++ % o->blocks;
	else {
		o->rng = o->rng * 6364136223846793005ull + 1442695040888963407ull;
		block = (o->rng >> 17) % o->blocks;
	}
	return (off_t)(block * o->bs);
}

static bool is_read(const struct blk_row *row)
{
	return row->kind == SEQ_READ || row->kind == RAND_READ;
}

/* The guest's memory: QD buffers of up to 128 KiB, one after the other. */
static uint8_t host_buf[QD * (128 << 10)] __attribute__((aligned(4096)));

/* One request at a time with pread/pwrite: MiB/s, or -1. */
static double host_run_qd1(int fd, const struct blk_row *row, uint64_t n, uint64_t image)
{
	struct offsets o = offsets_of(row, image);
	bool rd = is_read(row);

	memset(host_buf, 0x5a, sizeof(host_buf));
	double t0 = now_ns();
	for (uint64_t i = 0; i < n; i++) {
		off_t off = next_offset(&o);
		uint8_t *p = host_buf + (i % QD) * row->bs;
		ssize_t got = rd ? pread(fd, p, row->bs, off) : pwrite(fd, p, row->bs, off);
		if (got != (ssize_t)row->bs)
			return -1;
	}
	double t = now_ns() - t0;
	return (double)n * row->bs / (1 << 20) / (t / 1e9);
}

/* Queue requests until QD are in flight or n are submitted; each takes a free buffer. */
static void uring_fill(struct io_uring *ring, int fd, const struct blk_row *row, uint64_t n,
                       struct offsets *o, unsigned *free_slots, unsigned *n_free,
                       uint64_t *submitted)
{
	while (*submitted < n && *n_free) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(ring);

		if (!sqe)
			return;
		unsigned slot = free_slots[--*n_free];
		uint8_t *p = host_buf + (size_t)slot * row->bs;
		off_t off = next_offset(o);
		if (is_read(row))
			io_uring_prep_read(sqe, fd, p, row->bs, (uint64_t)off);
		else
			io_uring_prep_write(sqe, fd, p, row->bs, (uint64_t)off);
		io_uring_sqe_set_data64(sqe, slot);
		++*submitted;
	}
}

/* QD requests in flight through io_uring, like the device's io_uring engine: MiB/s, or -1. */
static double host_run_uring(struct io_uring *ring, int fd, const struct blk_row *row, uint64_t n,
                             uint64_t image)
{
	struct offsets o = offsets_of(row, image);
	unsigned free_slots[QD], n_free = QD;
	uint64_t submitted = 0, done = 0;

	for (unsigned k = 0; k < QD; k++)
		free_slots[k] = k;
	memset(host_buf, 0x5a, sizeof(host_buf));
	double t0 = now_ns();
	while (done < n) {
		struct io_uring_cqe *cqe;

		uring_fill(ring, fd, row, n, &o, free_slots, &n_free, &submitted);
		if (io_uring_submit_and_wait(ring, 1) < 0)
			return -1;
		while (io_uring_peek_cqe(ring, &cqe) == 0) {
			bool ok = cqe->res == (int)row->bs;

			free_slots[n_free++] = (unsigned)io_uring_cqe_get_data64(cqe);
			io_uring_cqe_seen(ring, cqe);
			if (!ok)
				return -1;
			done++;
		}
	}
	double t = now_ns() - t0;
	return (double)n * row->bs / (1 << 20) / (t / 1e9);
}

/* Both host runs of one row: at QD through io_uring, then one at a time. */
static void host_runs(struct io_uring *ring, int fd, const struct blk_row *row, uint64_t n,
                      uint64_t image, struct samples *qd, struct samples *qd1)
{
	double v = ring ? host_run_uring(ring, fd, row, n, image) : -1;

	if (v > 0)
		samples_add(qd, v);
	v = host_run_qd1(fd, row, n, image);
	if (v > 0)
		samples_add(qd1, v);
}

/* ---- the runs ---------------------------------------------------------------------- */

static int make_image(const char *path, uint64_t size)
{
	static uint8_t chunk[1 << 20];
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	if (fd < 0)
		return -1;
	for (size_t i = 0; i < sizeof(chunk); i++)
		chunk[i] = (uint8_t)(i * 131 + 7);
	for (uint64_t off = 0; off < size; off += sizeof(chunk))
		if (pwrite(fd, chunk, sizeof(chunk), (off_t)off) != (ssize_t)sizeof(chunk)) {
			close(fd);
			return -1;
		}
	return fd;
}

static uint64_t ops_of(const struct blk_plan *p, const struct blk_row *row)
{
	bool seq = row->kind == SEQ_READ || row->kind == SEQ_WRITE;

	return seq ? p->image / row->bs * (uint64_t)p->seq_passes : p->rand_ops;
}

/* Every row on one VM with this engine; the host's runs paired with the io_uring ones. */
static int measure_engine(const struct blk_plan *p, const char *image, int fd,
                          enum spk_blk_engine engine, struct blk_results *res)
{
	struct blk_vm v;
	bool uring = engine == SPK_BLK_ENGINE_IO_URING;
	struct io_uring ring;
	bool have_ring = uring && io_uring_queue_init(QD, &ring, 0) == 0;

	if (uring && !have_ring)
		fprintf(stderr, "sparkler-bench: blk: no io_uring for the host's runs\n");
	if (blk_vm_create(&v, image, engine, 0) < 0) {
		if (have_ring)
			io_uring_queue_exit(&ring);
		return -1;
	}
	for (size_t i = 0; i < NROWS; i++) {
		uint64_t n = ops_of(p, &rows[i]);

		for (int rep = 0; rep < p->reps; rep++) {
			struct io_uring *hr = have_ring ? &ring : NULL;

			if (uring && rep % 2)
				host_runs(hr, fd, &rows[i], n, p->image, &res->host[i],
				          &res->host_qd1[i]);
			double guest = guest_run(&v, &rows[i], n);
			if (uring && rep % 2 == 0)
				host_runs(hr, fd, &rows[i], n, p->image, &res->host[i],
				          &res->host_qd1[i]);
			if (guest <= 0) {
				blk_vm_destroy(&v);
				if (have_ring)
					io_uring_queue_exit(&ring);
				return -1;
			}
			samples_add(uring ? &res->uring[i] : &res->sync[i], guest);
		}
	}
	if (have_ring)
		io_uring_queue_exit(&ring);
	int rc = guest_sync(&v, 1, 0) < 0 ? -1 : 0; /* done */
	blk_vm_destroy(&v);
	return rc;
}

/* A cell of MiB/s samples as requests per second of bs bytes. */
static struct cell iops_of(struct cell c, uint32_t bs)
{
	double k = (double)(1 << 20) / bs;

	if (c.ok) {
		c.v *= k;
		c.min *= k;
		c.max *= k;
	}
	return c;
}

static void add_rows(struct report *r, const struct blk_plan *p, struct blk_results *res)
{
	struct cell spk[NROWS], host[NROWS];
	int first = r->n_rows;

	for (size_t i = 0; i < NROWS; i++) {
		struct row *row = report_row(r, rows[i].name, "MiB/s", 0);
		struct cell sync = cell_samples(res->sync[i].v, res->sync[i].n);
		struct cell qd1 = cell_samples(res->host_qd1[i].v, res->host_qd1[i].n);

		if (!row)
			return;
		row->spk = spk[i] =
		    res->why ? cell_text(res->why) : cell_samples(res->uring[i].v, res->uring[i].n);
		row->qemu = cell_text("n/a");
		row->limit = host[i] = cell_samples(res->host[i].v, res->host[i].n);
		row_note(row,
		         "%sA CPL3 guest driver keeps %d requests in flight on a %llu MiB image "
		         "(page-cached); sparkler is the io_uring engine (the sync engine, "
		         "preadv/pwritev on the event loop thread: %s%.0f MiB/s). The limit is "
		         "the host's own %s of the same file through io_uring with the same %d "
		         "requests in flight, same request size, offsets and buffers; the host's "
		         "%s one request at a time: %s%.0f MiB/s. Median of %d runs of %llu "
		         "requests.",
		         i == 0 ? "In-process, the device as `sparkler run` wires it (PCI, event "
		                  "loop thread, ioeventfd kicks, used-ring polling). "
		                : "",
		         QD, (unsigned long long)(p->image >> 20), sync.ok ? "" : "failed, ",
		         sync.ok ? sync.v : 0.0, is_read(&rows[i]) ? "reads" : "writes", QD,
		         is_read(&rows[i]) ? "pread" : "pwrite", qd1.ok ? "" : "failed, ",
		         qd1.ok ? qd1.v : 0.0, p->reps, (unsigned long long)ops_of(p, &rows[i]));
	}
	for (size_t i = 0; i < NROWS; i++) {
		char name[96];

		if (rows[i].kind != RAND_READ && rows[i].kind != RAND_WRITE)
			continue;
		snprintf(name, sizeof(name), "%s, IOPS", rows[i].name);
		struct row *row = report_row(r, name, "requests/s", 0);
		if (!row)
			return;
		row->spk = iops_of(spk[i], rows[i].bs);
		row->qemu = cell_text("n/a");
		row->limit = iops_of(host[i], rows[i].bs);
		row_note(row, "The runs of [%d] as requests per second (MiB/s x %u).",
		         first + (int)i + 1, (unsigned)((1u << 20) / rows[i].bs));
	}
}

/* Sequential reads through a capped disk: MiB/s of each run, in s. */
static int measure_capped(const struct blk_plan *p, const char *image, struct samples *s)
{
	struct blk_vm v;
	uint64_t n = p->image / rows[0].bs;

	if (blk_vm_create(&v, image, SPK_BLK_ENGINE_IO_URING, CAP_MIBS) < 0)
		return -1;
	for (int rep = 0; rep < p->reps; rep++) {
		double mibs = guest_run(&v, &rows[0], n);

		if (mibs <= 0) {
			blk_vm_destroy(&v);
			return -1;
		}
		samples_add(s, mibs);
	}
	int rc = guest_sync(&v, 1, 0) < 0 ? -1 : 0;
	blk_vm_destroy(&v);
	return rc;
}

static void add_capped_row(struct report *r, const struct blk_plan *p, struct samples *capped,
                           struct blk_results *res, bool ok)
{
	struct row *row = report_row(r, "virtio-blk sequential read, rate-limited", "MiB/s", 1);
	struct cell free_run = cell_samples(res->uring[0].v, res->uring[0].n);
	/* what the bucket lets through in a run: a full bucket at once, then the rate */
	double total = (double)p->image / (1 << 20), bucket = CAP_MIBS * CAP_REFILL_MS / 1000.0;
	double allowed = total <= bucket ? 0 : total / ((total - bucket) / CAP_MIBS);

	if (!row)
		return;
	row->spk = ok ? cell_samples(capped->v, capped->n) : cell_text("failed");
	row->qemu = cell_text("n/a");
	row->limit = cell_value(CAP_MIBS);
	row_note(
	    row,
	    "The first row's reads with the disk's bandwidth capped at %d MiB/s "
	    "(rate_limiter bandwidth: size %.1f MiB, refill_time %d ms). The limit column "
	    "is the cap; over a run of %.0f MiB the bucket allows at most %.1f MiB/s (its first "
	    "full bucket at once): sparkler reached %.1f%% of that. Uncapped: %s%.0f "
	    "MiB/s. Median of %d runs.",
	    CAP_MIBS, bucket, CAP_REFILL_MS, total, allowed,
	    ok && allowed > 0 ? 100.0 * row->spk.v / allowed : 0.0, free_run.ok ? "" : "failed, ",
	    free_run.ok ? free_run.v : 0.0, p->reps);
}

void bench_blk(const struct bench_opts *o, struct report *r)
{
	const struct blk_plan p = {
	    .image = o->quick ? 64ull << 20 : 256ull << 20,
	    .seq_passes = o->quick ? 1 : 2,
	    .rand_ops = o->quick ? 16384 : 32768,
	    .reps = 3,
	};
	static struct blk_results res;
	struct samples capped = {0};
	bool capped_ok = false;
	char image[PATH_MAX];
	int fd;

	memset(&res, 0, sizeof(res));
	bench_path(o, "blk-bench.img", image);
	fd = make_image(image, p.image);
	if (fd < 0) {
		fprintf(stderr, "sparkler-bench: blk: cannot write %s: %s\n", image,
		        strerror(errno));
		res.why = "failed";
	} else if (measure_engine(&p, image, fd, SPK_BLK_ENGINE_IO_URING, &res) < 0) {
		res.why = "failed";
	} else if (measure_engine(&p, image, fd, SPK_BLK_ENGINE_SYNC, &res) < 0) {
		memset(res.sync, 0, sizeof(res.sync));
	}
	if (!res.why)
		capped_ok = measure_capped(&p, image, &capped) == 0;
	add_rows(r, &p, &res);
	add_capped_row(r, &p, &capped, &res, capped_ok);
	if (fd >= 0)
		close(fd);
	unlink(image);
}
