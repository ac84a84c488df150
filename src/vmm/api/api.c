/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `sparkler --api-sock PATH` (or `sparkler api ...`): a microVM configured
 * and started through Firecracker's REST API, or from a Firecracker config
 * file (--config-file, with --no-api for no socket at all).
 *
 * Threads: the HTTP server's (every request, one at a time, under the API
 * lock), the VM's (spk_machine_run, which starts one thread per vCPU), one
 * that feeds stdin to the guest's COM1, and this one, which waits for
 * signals, the VM's end and the metrics timer.
 * Like Firecracker, the process ends when the guest does, with the exit
 * status of `sparkler run`.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include <sparkler/log.h>
#include <sparkler/snapshot.h>

#include "vmm/confine/seccomp_policy.h"

#include "vmm/api/api.h"
#include "vmm/api/mhd.h"

#define ERR_LEN 512

struct opts {
	const char *sock, *id, *config_file, *log_path, *level, *metrics_path, *metadata;
	bool no_api, show_level, show_origin;
	uint64_t max_body, metrics_interval, mmds_limit; /* mmds_limit 0: max_body */
};

struct api_main {
	struct spk_api api;
	struct spk_obs *obs;
	struct spk_api_server *server;
	int wake_fd; /* eventfd: the VM thread ended */

	pthread_mutex_t lock; /* the fields below */
	struct spk_machine *m;
	pthread_t vm_thread;
	bool vm_thread_live, started, vm_done;
	int status;
	char err[ERR_LEN];
	int serial_fd; /* ours to close when >= 0 and not stdout */

	pthread_t stdin_thread; /* stdin -> COM1, as Firecracker does */
	bool stdin_live;
	atomic_bool done;
};

/* ---- the VM thread ------------------------------------------------------------ */

static void *vm_main(void *p)
{
	struct api_main *a = p;
	char err[ERR_LEN] = "";
	uint64_t one = 1;
	int status;

	pthread_setname_np(pthread_self(), "vmm");
	/* on top of the API process's list: making VMs, no HTTP */
	spk_seccomp_install_or_die(SPK_SECCOMP_MONITOR, "vmm");
	status = spk_machine_run(a->m, err, sizeof(err));
	pthread_mutex_lock(&a->lock);
	a->status = status;
	memcpy(a->err, err, sizeof(err));
	a->vm_done = true;
	pthread_mutex_unlock(&a->lock);
	spk_log(SPK_LOG_INFO, "the VM stopped: status %d%s%s", status, *err ? ": " : "", err);
	if (write(a->wake_fd, &one, sizeof(one)) < 0)
		spk_log(SPK_LOG_ERROR, "cannot wake the main thread: %s", strerror(errno));
	return NULL;
}

static int open_serial(const struct spk_vm_resources *r, char *err, size_t len)
{
	int fd;

	if (!r->serial_path)
		return STDOUT_FILENO;
	fd = open(r->serial_path, O_WRONLY | O_CREAT | O_APPEND | O_NONBLOCK | O_CLOEXEC | O_NOCTTY,
	          0644);
	if (fd < 0)
		snprintf(err, len, "serial_out_path %s: %s", r->serial_path,
		         errno == ENXIO ? "a FIFO nobody reads" : strerror(errno));
	return fd < 0 ? -errno : fd;
}

static void close_serial(struct api_main *a)
{
	if (a->serial_fd > STDERR_FILENO)
		close(a->serial_fd);
	a->serial_fd = -1;
}

/* Undo a start whose VM never ran (the machine refused the kernel, say). */
static void unstart(struct api_main *a)
{
	pthread_join(a->vm_thread, NULL);
	pthread_mutex_lock(&a->lock);
	spk_machine_free(a->m);
	a->m = NULL;
	a->vm_thread_live = a->vm_done = false;
	close_serial(a);
	pthread_mutex_unlock(&a->lock);
}

/* Wait until the VM runs (0) or ended before it could (-EINVAL). */
static int wait_running(struct api_main *a, char *err, size_t len)
{
	const struct timespec ms = {0, 1000L * 1000};

	for (;;) {
		enum spk_machine_state s = spk_machine_state(a->m);
		bool done;
		int status;

		if (s == SPK_MACHINE_RUNNING || s == SPK_MACHINE_PAUSED)
			return 0;
		pthread_mutex_lock(&a->lock);
		done = a->vm_done;
		status = a->status;
		if (done)
			snprintf(err, len, "%s", a->err);
		pthread_mutex_unlock(&a->lock);
		/* USAGE: the machine was not built, nothing ran */
		if (done)
			return status == SPK_STATUS_USAGE ? -EINVAL : 0;
		nanosleep(&ms, NULL);
	}
}

/* ---- stdin to the guest's COM1 ------------------------------------------------------ */

/* Hand buf to the running guest's UART, waiting while its FIFO is full. */
static void feed_serial(struct api_main *a, const uint8_t *buf, size_t n)
{
	const struct timespec ms = {0, 1000L * 1000};

	for (size_t done = 0; done < n && !atomic_load(&a->done);) {
		size_t took = 0;

		pthread_mutex_lock(&a->lock);
		if (a->m && a->started && !a->vm_done)
			took = spk_machine_serial_input(a->m, buf + done, n - done);
		pthread_mutex_unlock(&a->lock);
		done += took;
		if (!took)
			nanosleep(&ms, NULL); /* not running yet, or the FIFO is full */
	}
}

static void *stdin_main(void *p)
{
	struct api_main *a = p;
	uint8_t buf[256];

	pthread_setname_np(pthread_self(), "stdin");
	while (!atomic_load(&a->done)) {
		struct pollfd pfd = {.fd = STDIN_FILENO, .events = POLLIN};
		ssize_t n;

		if (poll(&pfd, 1, 100) <= 0)
			continue;
		n = read(STDIN_FILENO, buf, sizeof(buf));
		if (n <= 0)
			break; /* EOF: the guest runs on without input */
		feed_serial(a, buf, (size_t)n);
	}
	return NULL;
}

/* ---- what the API asks of the VM --------------------------------------------------- */

/* Make the machine of cfg (a shallow copy: its strings stay the caller's)
 * and run it on the VM thread until it runs or paused. */
static int start_with(struct api_main *a, struct spk_machine_config cfg,
                      const struct spk_vm_resources *r, char *err, size_t len)
{
	struct spk_machine *m;
	char why[256];
	int rc;

	if (!spk_kvm_usable(why, sizeof(why))) {
		snprintf(err, len, "KVM is not usable: %s", why);
		return -ENODEV;
	}
	if ((cfg.serial_fd = open_serial(r, err, len)) < 0)
		return cfg.serial_fd;
	if ((rc = spk_machine_new(&cfg, &m, err, len)) < 0) {
		if (cfg.serial_fd > STDERR_FILENO)
			close(cfg.serial_fd);
		return rc;
	}
	pthread_mutex_lock(&a->lock);
	a->m = m;
	a->serial_fd = cfg.serial_fd;
	a->vm_done = false;
	rc = -pthread_create(&a->vm_thread, NULL, vm_main, a);
	a->vm_thread_live = rc == 0;
	pthread_mutex_unlock(&a->lock);
	if (rc < 0) {
		snprintf(err, len, "cannot start the VM thread: %s", strerror(-rc));
		pthread_mutex_lock(&a->lock);
		a->m = NULL;
		close_serial(a);
		pthread_mutex_unlock(&a->lock);
		spk_machine_free(m);
		return rc;
	}
	if ((rc = wait_running(a, err, len)) < 0) {
		unstart(a);
		return rc;
	}
	spk_obs_set_machine(a->obs, m);
	spk_obs_set_mmds(a->obs, r->mmds);
	if (spk_obs_has_metrics(a->obs)) /* the API lock is held: stats are stable */
		spk_obs_flush(a->obs, &a->api.stats, SPK_API_RUNNING, "start", why, sizeof(why));
	pthread_mutex_lock(&a->lock);
	a->started = true;
	if (a->vm_done) { /* it ended already: the main thread may have missed that */
		uint64_t one = 1;

		if (write(a->wake_fd, &one, sizeof(one)) < 0)
			spk_log(SPK_LOG_ERROR, "cannot wake the main thread: %s", strerror(errno));
	}
	pthread_mutex_unlock(&a->lock);
	spk_log(SPK_LOG_INFO, "the microVM started: %u vCPUs, %llu MiB%s", cfg.vcpus,
	        (unsigned long long)(cfg.mem >> 20), cfg.restore_state ? ", from a snapshot" : "");
	return 0;
}

static int op_start(void *ctx, const struct spk_vm_resources *r, char *err, size_t len)
{
	struct spk_machine_config cfg = r->m;

	cfg.track_dirty_pages = r->track_dirty_pages; /* machine-config: for Diff snapshots */
	return start_with(ctx, cfg, r, err, len);
}

static int op_snapshot_create(void *ctx, const struct spk_snap_req *q, char *err, size_t len)
{
	struct api_main *a = ctx;
	int rc = -EINVAL;

	pthread_mutex_lock(&a->lock);
	if (a->m && !a->vm_done)
		rc = spk_machine_snapshot(a->m, q->state, q->mem, q->diff, err, len);
	else
		snprintf(err, len, "the microVM is not running");
	pthread_mutex_unlock(&a->lock);
	if (rc == 0)
		spk_log(SPK_LOG_INFO, "snapshot %s (%s) and %s written", q->state,
		        q->diff ? "Diff" : "Full", q->mem);
	return rc;
}

/*
 * The machine the snapshot describes, with this API's serial output, the
 * TAPs of network_overrides, its memory file; then start it (it runs, or
 * waits paused without resume_vm).
 */
static int op_snapshot_load(void *ctx, const struct spk_vm_resources *r,
                            const struct spk_snap_req *q, char *err, size_t len)
{
	struct spk_machine_config cfg;
	int rc;

	spk_machine_config_init(&cfg);
	if ((rc = spk_machine_config_from_snapshot(q->state, &cfg, err, len)) < 0)
		goto out;
	for (uint32_t i = 0; i < q->n_over; i++) {
		uint32_t k = 0;

		while (k < cfg.n_nets && strcmp(cfg.nets[k].id, q->over[i].id) != 0)
			k++;
		if (k == cfg.n_nets) {
			snprintf(err, len, "network_overrides: the snapshot has no interface %s",
			         q->over[i].id);
			rc = -EINVAL;
			goto out;
		}
		snprintf(cfg.nets[k].tap, sizeof(cfg.nets[k].tap), "%s", q->over[i].tap);
		if (q->over[i].has_mac) { /* a clone's MAC */
			memcpy(cfg.nets[k].mac, q->over[i].mac, 6);
			cfg.nets[k].has_mac = true;
		}
	}
	if (q->vsock_cid) { /* a clone's CID and socket */
		struct spk_clone_id id = {.vsock_cid = q->vsock_cid};

		snprintf(id.vsock_uds, sizeof(id.vsock_uds), "%s", q->vsock_uds);
		if ((rc = spk_machine_config_clone(&cfg, &id, err, len)) < 0)
			goto out;
	}
	if ((rc = spk_config_set_str(q->uffd ? &cfg.restore_uffd : &cfg.restore_mem, q->mem)) < 0) {
		snprintf(err, len, "out of memory");
		goto out;
	}
	cfg.start_paused = !q->resume;
	cfg.track_dirty_pages = q->track;
	cfg.mmds = r->mmds;
	rc = start_with(ctx, cfg, r, err, len);
out:
	spk_machine_config_free(&cfg);
	return rc;
}

static enum spk_api_state op_state(void *ctx)
{
	struct api_main *a = ctx;
	enum spk_api_state st = SPK_API_NOT_STARTED;

	pthread_mutex_lock(&a->lock);
	if (a->vm_done && a->started)
		st = SPK_API_EXITED;
	else if (a->m && a->started)
		switch (spk_machine_state(a->m)) {
		case SPK_MACHINE_RUNNING:
			st = SPK_API_RUNNING;
			break;
		case SPK_MACHINE_PAUSED:
			st = SPK_API_PAUSED;
			break;
		case SPK_MACHINE_HALTED:
			st = SPK_API_EXITED;
			break;
		case SPK_MACHINE_NOT_STARTED:
			break;
		}
	pthread_mutex_unlock(&a->lock);
	return st;
}

static int vm_call(struct api_main *a, int (*fn)(struct spk_machine *), char *err, size_t len)
{
	int rc = -EINVAL;

	pthread_mutex_lock(&a->lock);
	if (a->m && !a->vm_done)
		rc = fn(a->m);
	pthread_mutex_unlock(&a->lock);
	if (rc == -EINVAL)
		snprintf(err, len, "the microVM is not running");
	else if (rc == -ETIMEDOUT)
		snprintf(err, len, "a vCPU did not stop within a second");
	else if (rc < 0)
		snprintf(err, len, "%s", strerror(-rc));
	return rc;
}

static int op_pause(void *ctx, char *err, size_t len)
{
	int rc = vm_call(ctx, spk_machine_pause, err, len);

	if (rc == 0)
		spk_log(SPK_LOG_INFO, "the microVM is paused");
	return rc;
}

static int op_resume(void *ctx, char *err, size_t len)
{
	int rc = vm_call(ctx, spk_machine_resume, err, len);

	if (rc == 0)
		spk_log(SPK_LOG_INFO, "the microVM runs again");
	return rc;
}

static int op_ctrl_alt_del(void *ctx, char *err, size_t len)
{
	return vm_call(ctx, spk_machine_ctrl_alt_del, err, len);
}

/* A change to a running device: fn(m, id, ...) under the lock, with the
 * answers for a VM that is not running or has no such device. */
#define ON_DEVICE(a, what, id, err, len, call)                                                     \
	({                                                                                         \
		bool running_;                                                                     \
		int rc_ = -EINVAL;                                                                 \
		pthread_mutex_lock(&(a)->lock);                                                    \
		running_ = (a)->m && !(a)->vm_done;                                                \
		if (running_)                                                                      \
			rc_ = (call);                                                              \
		pthread_mutex_unlock(&(a)->lock);                                                  \
		if (!running_)                                                                     \
			snprintf(err, len, "the microVM is not running");                          \
		else if (rc_ == -ENODEV)                                                           \
			snprintf(err, len, "the running microVM has no %s %s", what, id);          \
		else if (rc_ < 0)                                                                  \
			snprintf(err, len, "%s", spk_last_error());                                \
		rc_;                                                                               \
	})

static int op_swap_drive(void *ctx, const char *id, const char *path, char *err, size_t len)
{
	struct api_main *a = ctx;

	return ON_DEVICE(a, "drive", id, err, len, spk_machine_drive_swap(a->m, id, path));
}

static int op_limit_drive(void *ctx, const char *id, const struct spk_rate_limit *l, char *err,
                          size_t len)
{
	struct api_main *a = ctx;

	return ON_DEVICE(a, "drive", id, err, len, spk_machine_drive_rate_limit(a->m, id, l));
}

static int op_limit_net(void *ctx, const char *id, const struct spk_rate_limit *rx,
                        const struct spk_rate_limit *tx, char *err, size_t len)
{
	struct api_main *a = ctx;

	return ON_DEVICE(a, "network interface", id, err, len,
	                 spk_machine_net_rate_limits(a->m, id, rx, tx));
}

/* The balloon's answers: -ERANGE and -ENODEV say it in Firecracker's words. */
static int balloon_rc(int rc, char *err, size_t len)
{
	if (rc == -ERANGE)
		snprintf(err, len, "Amount of pages requested is too large.");
	else if (rc == -ENODEV)
		snprintf(err, len, "No balloon device found.");
	return rc;
}

static int op_balloon_target(void *ctx, uint32_t amount_mib, char *err, size_t len)
{
	struct api_main *a = ctx;

	return balloon_rc(
	    ON_DEVICE(a, "balloon", "", err, len, spk_machine_balloon_target(a->m, amount_mib)),
	    err, len);
}

static int op_balloon_interval(void *ctx, uint32_t s, char *err, size_t len)
{
	struct api_main *a = ctx;

	return balloon_rc(
	    ON_DEVICE(a, "balloon", "", err, len, spk_machine_balloon_interval(a->m, s)), err, len);
}

static int op_balloon_stats(void *ctx, struct spk_virtio_balloon_stats *out, char *err, size_t len)
{
	struct api_main *a = ctx;

	return balloon_rc(
	    ON_DEVICE(a, "balloon", "", err, len, spk_machine_balloon_stats(a->m, out)), err, len);
}

static int op_balloon_hint(void *ctx, int op, bool ack, uint32_t *host, uint32_t *guest, char *err,
                           size_t len)
{
	struct api_main *a = ctx;

	return balloon_rc(ON_DEVICE(a, "balloon", "", err, len,
	                            spk_machine_balloon_hint(a->m, op, ack, host, guest)),
	                  err, len);
}

static int op_flush_metrics(void *ctx, char *err, size_t len)
{
	struct api_main *a = ctx;

	/* the API lock is held: the stats are stable */
	return spk_obs_flush(a->obs, &a->api.stats, op_state(a), "FlushMetrics", err, len);
}

static int op_set_logger(void *ctx, struct spk_logger_config *cfg, char *err, size_t len)
{
	return spk_obs_set_logger(((struct api_main *)ctx)->obs, cfg, err, len);
}

static int op_set_metrics(void *ctx, struct spk_metrics_config *cfg, char *err, size_t len)
{
	return spk_obs_set_metrics(((struct api_main *)ctx)->obs, cfg, err, len);
}

static const struct spk_api_ops api_ops = {
    .start = op_start,
    .state = op_state,
    .pause = op_pause,
    .resume = op_resume,
    .ctrl_alt_del = op_ctrl_alt_del,
    .swap_drive = op_swap_drive,
    .limit_drive = op_limit_drive,
    .limit_net = op_limit_net,
    .balloon_target = op_balloon_target,
    .balloon_interval = op_balloon_interval,
    .balloon_stats = op_balloon_stats,
    .balloon_hint = op_balloon_hint,
    .flush_metrics = op_flush_metrics,
    .set_logger = op_set_logger,
    .set_metrics = op_set_metrics,
    .snapshot_create = op_snapshot_create,
    .snapshot_load = op_snapshot_load,
};

/* ---- options -------------------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: sparkler --api-sock PATH [options]\n"
	        "       sparkler --config-file FILE --no-api [options]\n"
	        "  --api-sock PATH         serve Firecracker's REST API on this Unix socket\n"
	        "  --config-file FILE      boot at once from a Firecracker config file (JSON)\n"
	        "  --no-api                no API socket (needs --config-file)\n"
	        "  --id ID                 the instance id (default anonymous-instance)\n"
	        "  --log-path PATH         append log lines here (default stderr)\n"
	        "  --level LEVEL           Error, Warning, Info (default), Debug, Trace or Off\n"
	        "  --show-level            put the level in each log line\n"
	        "  --show-log-origin       put the origin in each log line\n"
	        "  --metrics-path PATH     append a JSON metrics line here (like PUT /metrics)\n"
	        "  --metrics-interval SEC  seconds between metrics lines (default 60)\n"
	        "  --http-api-max-payload-size BYTES  largest request body (default %d)\n"
	        "  --mmds-size-limit BYTES  largest MMDS data store, as compact JSON\n"
	        "                          (default: the largest request body)\n"
	        "  --metadata FILE         a JSON file: the MMDS data store at start\n"
	        "  --boot-timer       accepted for Firecracker's command lines (always on)\n"
	        "  --no-seccomp       run without system call filters (debugging only)\n"
	        "Exit status: that of the guest, as for sparkler run (0 powered off, 2 bad\n"
	        "usage or config, 3 reset, 4 crash, 5 stopped from the host). SIGPWR presses\n"
	        "the guest's ACPI power button; SIGINT, SIGTERM, SIGHUP, SIGQUIT stop it.\n",
	        SPK_API_MAX_BODY_DEFAULT);
}

static int bad_opt(const char *opt, const char *arg, const char *why)
{
	fprintf(stderr, "sparkler: %s%s%s: %s\n", opt, arg ? " " : "", arg ? arg : "", why);
	return -1;
}

static bool id_ok(const char *id)
{
	size_t n = strlen(id);

	if (n == 0 || n >= SPK_MACHINE_ID_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!(id[i] == '-' || id[i] == '_' || (id[i] >= '0' && id[i] <= '9') ||
		      ((id[i] | 0x20) >= 'a' && (id[i] | 0x20) <= 'z')))
			return false;
	return true;
}

static int parse_one(struct opts *o, int c, const char *arg, char **argv)
{
	switch (c) {
	case 'a':
		o->sock = arg;
		return 0;
	case 'c':
		o->config_file = arg;
		return 0;
	case 'n':
		o->no_api = true;
		return 0;
	case 'l':
		o->log_path = arg;
		return 0;
	case 'L':
		o->level = arg;
		return 0;
	case 's':
		o->show_level = true;
		return 0;
	case 'o':
		o->show_origin = true;
		return 0;
	case 'M':
		o->metrics_path = arg;
		return 0;
	case 'b':
		return 0; /* --boot-timer: always on */
	case 'S':
		spk_seccomp_enabled = false;
		return 0;
	case 'h':
		usage(stdout);
		exit(0);
	case 'i':
		if (!id_ok(arg))
			return bad_opt("--id", arg, "need 1 to 63 of A-Z, a-z, 0-9, '-' and '_'");
		o->id = arg;
		return 0;
	case 'p':
		if (spk_parse_uint(arg, 64, 64ull << 20, &o->max_body) < 0)
			return bad_opt("--http-api-max-payload-size", arg,
			               "need 64 bytes to 64 MiB");
		return 0;
	case 'm':
		if (spk_parse_uint(arg, 1, 64ull << 20, &o->mmds_limit) < 0)
			return bad_opt("--mmds-size-limit", arg, "need 1 byte to 64 MiB");
		return 0;
	case 'D':
		o->metadata = arg;
		return 0;
	case 'I':
		if (spk_parse_uint(arg, 1, 86400, &o->metrics_interval) < 0)
			return bad_opt("--metrics-interval", arg, "need 1 to 86400 seconds");
		return 0;
	default:
		return bad_opt(argv[optind - 1], NULL, "unknown or incomplete option (see --help)");
	}
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option longs[] = {
	    {"api-sock", required_argument, NULL, 'a'},
	    {"config-file", required_argument, NULL, 'c'},
	    {"no-api", no_argument, NULL, 'n'},
	    {"id", required_argument, NULL, 'i'},
	    {"log-path", required_argument, NULL, 'l'},
	    {"level", required_argument, NULL, 'L'},
	    {"show-level", no_argument, NULL, 's'},
	    {"show-log-origin", no_argument, NULL, 'o'},
	    {"metrics-path", required_argument, NULL, 'M'},
	    {"metrics-interval", required_argument, NULL, 'I'},
	    {"http-api-max-payload-size", required_argument, NULL, 'p'},
	    {"mmds-size-limit", required_argument, NULL, 'm'},
	    {"metadata", required_argument, NULL, 'D'},
	    {"boot-timer", no_argument, NULL, 'b'},
	    {"no-seccomp", no_argument, NULL, 'S'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int c;

	*o = (struct opts){.id = "anonymous-instance",
	                   .max_body = SPK_API_MAX_BODY_DEFAULT,
	                   .metrics_interval = 60};
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1)
		if (parse_one(o, c, optarg, argv) < 0)
			return -1;
	if (optind != argc)
		return bad_opt(argv[optind], NULL, "unexpected argument");
	if (o->no_api && !o->config_file)
		return bad_opt("--no-api", NULL, "needs --config-file: nothing could start the VM");
	if (o->no_api && o->sock)
		return bad_opt("--no-api", NULL, "and --api-sock contradict each other");
	if (!o->no_api && !o->sock)
		return bad_opt("sparkler", NULL, "--api-sock PATH is required (or --no-api)");
	return 0;
}

/* The logger and metrics of the command line; before the config file's. */
static int cli_observers(struct api_main *a, const struct opts *o)
{
	char err[ERR_LEN];
	json_t *body;
	struct spk_res_err e;

	if (o->log_path || o->level) {
		body =
		    json_pack("{s:s?, s:s?, s:b, s:b}", "log_path", o->log_path, "level", o->level,
		              "show_level", o->show_level, "show_log_origin", o->show_origin);
		struct spk_logger_config l;
		int rc = spk_res_logger(body, "--level", &l, &e);

		json_decref(body);
		if (rc < 0)
			return bad_opt("--level", o->level,
			               "use Error, Warning, Info, Debug, Trace or Off");
		if (spk_obs_set_logger(a->obs, &l, err, sizeof(err)) < 0) {
			spk_res_logger_free(&l);
			return bad_opt("--log-path", NULL, err);
		}
		a->api.res.logger = l;
	}
	if (o->metrics_path) {
		struct spk_metrics_config mc = {.set = true, .path = strdup(o->metrics_path)};

		if (!mc.path || spk_obs_set_metrics(a->obs, &mc, err, sizeof(err)) < 0) {
			spk_res_metrics_free(&mc);
			return bad_opt("--metrics-path", NULL, mc.path ? err : "out of memory");
		}
		a->api.res.metrics = mc;
	}
	return 0;
}

/* --metadata FILE: the MMDS data store's first contents (Firecracker's). */
static int load_metadata(struct api_main *a, const char *file)
{
	struct spk_res_err e;
	json_error_t je;
	unsigned status;
	json_t *v = json_load_file(file, JSON_REJECT_DUPLICATES, &je);
	int rc;

	if (!v && je.line > 0) {
		fprintf(stderr, "sparkler: --metadata %s: line %d column %d: %s\n", file, je.line,
		        je.column, je.text);
		return -1;
	}
	if (!v) {
		fprintf(stderr, "sparkler: --metadata %s: %s\n", file, je.text);
		return -1;
	}
	rc = spk_res_mmds_data(&a->api.res, v, false, &status, &e);
	json_decref(v);
	if (rc < 0)
		fprintf(stderr, "sparkler: --metadata %s: %s\n", file,
		        rc == -EFBIG ? "larger than the MMDS size limit (--mmds-size-limit)"
		                     : e.msg);
	return rc < 0 ? -1 : 0;
}

/* A config file: its resources, its logger and metrics, then the boot. */
static int from_config_file(struct api_main *a, const char *file)
{
	char err[ERR_LEN] = "";
	struct spk_vm_resources *r = &a->api.res;

	if (spk_res_load_file(r, file, err, sizeof(err)) < 0) {
		fprintf(stderr, "sparkler: %s\n", err);
		return -1;
	}
	if ((r->logger.set && spk_obs_set_logger(a->obs, &r->logger, err, sizeof(err)) < 0) ||
	    (r->metrics.set && spk_obs_set_metrics(a->obs, &r->metrics, err, sizeof(err)) < 0)) {
		fprintf(stderr, "sparkler: %s: %s\n", file, err);
		return -1;
	}
	pthread_mutex_lock(&a->api.lock);
	int rc = op_start(a, r, err, sizeof(err));
	a->api.started = rc == 0;
	pthread_mutex_unlock(&a->api.lock);
	if (rc < 0)
		fprintf(stderr, "sparkler: %s: cannot boot: %s\n", file, err);
	return rc;
}

/* ---- the main loop ---------------------------------------------------------------------- */

static int64_t now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void flush_metrics(struct api_main *a, const char *why)
{
	struct spk_api_stats st;
	char err[ERR_LEN];

	if (!spk_obs_has_metrics(a->obs))
		return;
	pthread_mutex_lock(&a->api.lock);
	st = a->api.stats;
	pthread_mutex_unlock(&a->api.lock);
	if (spk_obs_flush(a->obs, &st, op_state(a), why, err, sizeof(err)) < 0)
		spk_log(SPK_LOG_WARN, "metrics: %s", err);
}

/* A signal: stop the guest if there is one; true when there is none. */
static bool on_signal(struct api_main *a, int sfd)
{
	struct signalfd_siginfo si;
	bool none;

	if (read(sfd, &si, sizeof(si)) != sizeof(si))
		return false;
	if (si.ssi_signo == SIGPWR) {
		int rc = -EINVAL;

		/* the guest decides; the VM runs on until it powers off */
		pthread_mutex_lock(&a->lock);
		if (a->m && a->started && !a->vm_done)
			rc = spk_machine_power_button(a->m);
		pthread_mutex_unlock(&a->lock);
		fprintf(stderr, "sparkler: SIGPWR: %s\n",
		        rc == 0 ? "pressed the power button" : "no VM running, ignored");
		return false;
	}
	fprintf(stderr, "sparkler: %s: stopping\n", strsignal((int)si.ssi_signo));
	pthread_mutex_lock(&a->lock);
	none = !a->m;
	if (a->m)
		spk_machine_stop(a->m);
	pthread_mutex_unlock(&a->lock);
	return none;
}

/* The VM ended after a successful start: record why, for late requests. */
static bool vm_ended(struct api_main *a)
{
	uint64_t v;
	bool ended;

	if (read(a->wake_fd, &v, sizeof(v)) < 0)
		return false;
	pthread_mutex_lock(&a->lock);
	ended = a->started && a->vm_done;
	pthread_mutex_unlock(&a->lock);
	if (ended) {
		pthread_mutex_lock(&a->api.lock);
		snprintf(a->api.exit_reason, sizeof(a->api.exit_reason), "exit status %d%s%.200s",
		         a->status, *a->err ? ": " : "", a->err);
		pthread_mutex_unlock(&a->api.lock);
	}
	return ended;
}

/* Until the VM ends, or a signal comes before it started: the status. */
static int main_loop(struct api_main *a, int sfd, uint64_t interval_s)
{
	struct pollfd p[2] = {{.fd = sfd, .events = POLLIN}, {.fd = a->wake_fd, .events = POLLIN}};
	int64_t next = now_ms() + (int64_t)interval_s * 1000;

	for (;;) {
		int64_t wait = next - now_ms();

		if (wait <= 0) {
			flush_metrics(a, "periodic");
			next += (int64_t)interval_s * 1000;
			continue;
		}
		if (poll(p, 2, (int)wait) < 0 && errno != EINTR)
			return SPK_STATUS_CRASH;
		if ((p[0].revents & POLLIN) && on_signal(a, sfd))
			return SPK_STATUS_STOPPED;
		if ((p[1].revents & POLLIN) && vm_ended(a))
			return a->status;
	}
}

/* ---- the command --------------------------------------------------------------------- */

static void teardown(struct api_main *a)
{
	spk_api_server_stop(a->server); /* no request runs after this */
	a->server = NULL;
	atomic_store(&a->done, true);
	if (a->stdin_live)
		pthread_join(a->stdin_thread, NULL);
	pthread_mutex_lock(&a->lock);
	bool live = a->vm_thread_live;
	if (live && a->m)
		spk_machine_stop(a->m);
	pthread_mutex_unlock(&a->lock);
	if (live)
		pthread_join(a->vm_thread, NULL);
	flush_metrics(a, "exit");
	spk_obs_set_machine(a->obs, NULL);
	spk_machine_free(a->m);
	a->m = NULL;
	close_serial(a);
	spk_obs_free(a->obs);
	spk_api_destroy(&a->api);
	close(a->wake_fd);
	pthread_mutex_destroy(&a->lock);
}

static int block_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGHUP);
	sigaddset(set, SIGQUIT);
	sigaddset(set, SIGPWR);                /* the power button: on_signal */
	pthread_sigmask(SIG_BLOCK, set, NULL); /* before any thread starts */
	signal(SIGPIPE, SIG_IGN);              /* a FIFO reader that left */
	return signalfd(-1, set, SFD_CLOEXEC);
}

static int setup(struct api_main *a, const struct opts *o)
{
	char err[ERR_LEN];

	if (cli_observers(a, o) < 0)
		return -1;
	/* Firecracker's default: the MMDS may be as large as a request body */
	a->api.res.mmds_limit = o->mmds_limit ? o->mmds_limit : o->max_body;
	if (o->metadata && load_metadata(a, o->metadata) < 0)
		return -1;
	if (o->sock &&
	    spk_api_server_start(&a->api, o->sock, o->max_body, &a->server, err, sizeof(err)) < 0) {
		fprintf(stderr, "sparkler: %s\n", err);
		return -1;
	}
	a->stdin_live = pthread_create(&a->stdin_thread, NULL, stdin_main, a) == 0;
	if (o->config_file && from_config_file(a, o->config_file) < 0)
		return -1;
	spk_log(SPK_LOG_INFO, "sparkler %s: %s%s", SPARKLER_VERSION, o->sock ? "API on " : "",
	        o->sock ? o->sock : "no API");
	return 0;
}

int spk_cmd_api(int argc, char **argv)
{
	struct api_main a;
	struct opts o;
	sigset_t set;
	int sfd, status;

	if (parse_opts(argc, argv, &o) < 0)
		return SPK_STATUS_USAGE;
	if (o.sock) { /* dlopen() before seccomp: mmap of a new file is not allowed after */
		char why[256];

		if (!spk_mhd_load(why, sizeof(why))) {
			fprintf(stderr, "sparkler: --api-sock %s: %s\n", o.sock, why);
			return SPK_STATUS_USAGE;
		}
	}
	spk_seccomp_warn_if_off();
	/* every thread of the API process from here on, and each vCPU and
	 * device thread adds its own, narrower list on top */
	spk_seccomp_install_or_die(SPK_SECCOMP_API, "api");
	sfd = block_signals(&set);
	a = (struct api_main){.serial_fd = -1, .wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)};
	pthread_mutex_init(&a.lock, NULL);
	spk_api_init(&a.api, &api_ops, &a, o.id);
	if (sfd < 0 || a.wake_fd < 0 || spk_obs_new(o.id, &a.obs) < 0) {
		fprintf(stderr, "sparkler: cannot set up: %s\n", strerror(errno));
		return SPK_STATUS_CRASH;
	}
	status = setup(&a, &o) < 0 ? SPK_STATUS_USAGE : main_loop(&a, sfd, o.metrics_interval);
	if (status != SPK_STATUS_OK && status != SPK_STATUS_STOPPED && status != SPK_STATUS_USAGE &&
	    *a.err)
		fprintf(stderr, "sparkler: %s\n", a.err);
	teardown(&a);
	close(sfd);
	return status;
}
