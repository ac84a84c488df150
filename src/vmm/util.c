/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "vmm/confine/seccomp_policy.h"
#include "vmm/vmm.h"

int spk_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end;

	if (!s || !*s || *s == '-' || *s == '+')
		return -1;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

int spk_parse_size(const char *s, uint64_t *out, const char **err)
{
	char *end;
	unsigned shift = 0;

	if (!s || !*s || *s == '-' || *s == '+') {
		*err = "not a size";
		return -1;
	}
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s) {
		*err = "not a number";
		return -1;
	}
	switch (*end) {
	case '\0':
		break;
	case 'K': case 'k':
		shift = 10;
		break;
	case 'M': case 'm':
		shift = 20;
		break;
	case 'G': case 'g':
		shift = 30;
		break;
	default:
		*err = "unknown suffix (use K, M or G)";
		return -1;
	}
	if (*end && end[1] && !(end[1] == 'i' && end[2] == 'B' && !end[3]) &&
	    !(end[1] == 'B' && !end[2])) {
		*err = "trailing characters";
		return -1;
	}
	if (shift && v > (UINT64_MAX >> shift)) {
		*err = "too large";
		return -1;
	}
	*out = (uint64_t)v << shift;
	return 0;
}

void spk_print_stats(FILE *f, struct spk_vm *vm)
{
	uint64_t count[SPK_EXIT__COUNT] = {0}, run[SPK_EXIT__COUNT] = {0},
		 handle[SPK_EXIT__COUNT] = {0}, total = 0, handled = 0;

	for (uint32_t i = 0; i < spk_vm_max_vcpus(vm); i++) {
		struct spk_vcpu *v = spk_vm_vcpu(vm, i);
		struct spk_vcpu_stats st;

		if (!v)
			continue;
		spk_vcpu_get_stats(v, &st);
		for (int k = 0; k < SPK_EXIT__COUNT; k++) {
			count[k] += st.count[k];
			run[k] += st.run_ns[k];
			handle[k] += st.handle_ns[k];
			total += st.count[k];
		}
		handled += st.handled;
	}
	/* "per exit" is the whole round trip: KVM_RUN time (the guest's work
	 * since the previous exit plus the kernel's part) and ours after it. */
	fprintf(f, "\n| exit kind | count | mean us per exit | of which guest+KVM | of which monitor |\n"
		   "|---|---:|---:|---:|---:|\n");
	for (int k = 0; k < SPK_EXIT__COUNT; k++)
		if (count[k])
			fprintf(f, "| %s | %llu | %.2f | %.2f | %.2f |\n",
				spk_exit_name((enum spk_exit_kind)k), (unsigned long long)count[k],
				(double)(run[k] + handle[k]) / 1e3 / (double)count[k],
				run[k] / 1e3 / (double)count[k], handle[k] / 1e3 / (double)count[k]);
	fprintf(f, "| all | %llu | | | (%llu handled inside the library) |\n",
		(unsigned long long)total, (unsigned long long)handled);
}

/* The VM's instruction assists summed over its vCPUs; false when none ran. */
static bool assist_totals(struct spk_vm *vm, struct spk_assist_stats *sum)
{
	uint64_t all = 0;

	memset(sum, 0, sizeof(*sum));
	for (uint32_t i = 0; i < spk_vm_max_vcpus(vm); i++) {
		struct spk_vcpu *v = spk_vm_vcpu(vm, i);
		struct spk_assist_stats st;

		if (!v)
			continue;
		spk_vcpu_get_assist_stats(v, &st);
		for (int k = 0; k < SPK_ASSIST__COUNT; k++) {
			sum->count[k] += st.count[k];
			all += st.count[k];
		}
		sum->faults += st.faults;
		sum->refetch_mismatch += st.refetch_mismatch;
	}
	return all || sum->refetch_mismatch;
}

void spk_print_assist_stats(FILE *f, struct spk_vm *vm)
{
	struct spk_assist_stats sum;

	if (!assist_totals(vm, &sum)) {
		fprintf(f, "\ninstruction assists: none\n");
		return;
	}
	fprintf(f, "\n| assisted instruction | count |\n|---|---:|\n");
	for (int k = 0; k < SPK_ASSIST__COUNT; k++)
		if (sum.count[k])
			fprintf(f, "| %s | %llu |\n", spk_assist_name(k),
			        (unsigned long long)sum.count[k]);
	fprintf(f, "| (faults injected) | %llu |\n| (bytes changed, ran again) | %llu |\n",
	        (unsigned long long)sum.faults, (unsigned long long)sum.refetch_mismatch);
}

void spk_log_assist_totals(struct spk_vm *vm)
{
	struct spk_assist_stats sum;
	char line[512];
	size_t at = 0;

	if (!assist_totals(vm, &sum))
		return;
	for (int k = 0; k < SPK_ASSIST__COUNT && at < sizeof(line); k++)
		if (sum.count[k])
			at += (size_t)snprintf(line + at, sizeof(line) - at, "%s%s %llu",
			                       at ? ", " : "", spk_assist_name(k),
			                       (unsigned long long)sum.count[k]);
	if (at >= sizeof(line))
		at = sizeof(line) - 1;
	snprintf(line + at, sizeof(line) - at, "%s%llu faults injected, %llu ran again",
	         at ? "; " : "", (unsigned long long)sum.faults,
	         (unsigned long long)sum.refetch_mismatch);
	/* \r: the terminal may be raw while the guest runs */
	fprintf(stderr, "\r\nsparkler: instruction assists (KVM could not emulate these): %s\r\n",
	        line);
}

int spk_read_file(const char *path, uint64_t max, void **data, size_t *size, const char **err)
{
	struct stat st;
	uint8_t *buf = NULL;
	size_t done = 0;
	int fd, rc = 0;

	*data = NULL;
	*size = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		*err = strerror(errno);
		return -errno;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		rc = S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
		*err = S_ISDIR(st.st_mode) ? "is a directory" : "not a regular file";
		goto out;
	}
	if ((uint64_t)st.st_size > max) {
		rc = -EFBIG;
		*err = "larger than the limit";
		goto out;
	}
	buf = malloc(st.st_size ? (size_t)st.st_size : 1);
	if (!buf) {
		rc = -ENOMEM;
		*err = "out of memory";
		goto out;
	}
	while (done < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + done, (size_t)st.st_size - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = n < 0 ? -errno : -EIO;
			*err = n < 0 ? strerror(errno) : "the file shrank while being read";
			goto out;
		}
		done += (size_t)n;
	}
	*data = buf;
	*size = done;
	buf = NULL;
out:
	free(buf);
	close(fd);
	return rc;
}

struct spk_watchdog {
	uint64_t seconds;
	void (*fire)(void *ctx);
	void *ctx;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool done;
};

static void *watchdog_main(void *p)
{
	struct spk_watchdog *w = p;
	struct timespec until;

	/* a timed wait, then fire(): a flag and a kick */
	pthread_setname_np(pthread_self(), "watchdog");
	spk_seccomp_install_or_die(SPK_SECCOMP_TIMER, "watchdog");
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += (time_t)w->seconds;
	pthread_mutex_lock(&w->lock);
	while (!w->done)
		if (pthread_cond_timedwait(&w->cond, &w->lock, &until) == ETIMEDOUT)
			break;
	bool fire = !w->done;
	pthread_mutex_unlock(&w->lock);
	if (fire)
		w->fire(w->ctx);
	return NULL;
}

int spk_watchdog_start(uint64_t seconds, void (*fire)(void *ctx), void *ctx,
		       struct spk_watchdog **out)
{
	struct spk_watchdog *w;

	*out = NULL;
	if (!seconds)
		return 0;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	*w = (struct spk_watchdog){.seconds = seconds, .fire = fire, .ctx = ctx};
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
	int rc = pthread_create(&w->thread, NULL, watchdog_main, w);
	if (rc) {
		pthread_cond_destroy(&w->cond);
		pthread_mutex_destroy(&w->lock);
		free(w);
		return -rc;
	}
	*out = w;
	return 0;
}

void spk_watchdog_stop(struct spk_watchdog *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	w->done = true;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
	pthread_join(w->thread, NULL);
	pthread_cond_destroy(&w->cond);
	pthread_mutex_destroy(&w->lock);
	free(w);
}

void spk_kick_all(struct spk_vm *vm)
{
	for (uint32_t i = 0; i < spk_vm_max_vcpus(vm); i++)
		if (spk_vm_vcpu(vm, i))
			spk_vcpu_kick(spk_vm_vcpu(vm, i));
}

/* path's directory part, up to and with its last '/' ("" for none), plus
 * a name of our own: into tmp (sizeof sun_path); false if it does not fit. */
static bool temp_name(const char *path, unsigned tries, char *tmp, size_t n)
{
	const char *slash = strrchr(path, '/');
	size_t dir = slash ? (size_t)(slash - path) + 1 : 0;
	int len = snprintf(tmp, n, "%.*s.spk-%x-%x", (int)dir, path, (unsigned)getpid(), tries);

	return len > 0 && (size_t)len < n;
}

/* rename(2), but never over an existing path: with RENAME_NOREPLACE, or,
 * where the file system does not have it, a check right before. */
static int no_replace_rename(const char *from, const char *to)
{
	struct stat st;

	if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL)
		return -1;
	if (lstat(to, &st) == 0) {
		errno = EEXIST;
		return -1;
	}
	return rename(from, to);
}

int spk_listen_unix(const char *path, int flags, int backlog, char *err, size_t errlen)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd, rc;

	if (!*path || strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "a Unix socket path needs 1 to %zu bytes",
		         sizeof(sa.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | flags, 0);
	if (fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return rc;
	}
	/* a name left by a process that died between bind and rename: another */
	for (unsigned tries = 0;; tries++) {
		if (!temp_name(path, tries, sa.sun_path, sizeof(sa.sun_path))) {
			snprintf(err, errlen,
			         "no room for a temporary name next to it (a Unix "
			         "socket path has at most %zu bytes)",
			         sizeof(sa.sun_path) - 1);
			rc = -ENAMETOOLONG;
			goto err_close;
		}
		if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			break;
		if (errno != EADDRINUSE || tries >= 16) {
			rc = -errno;
			snprintf(err, errlen, "%s", strerror(errno));
			goto err_close;
		}
	}
	if (listen(fd, backlog) < 0 || no_replace_rename(sa.sun_path, path) < 0) {
		rc = -errno;
		snprintf(err, errlen, "%s", strerror(errno));
		unlink(sa.sun_path);
		goto err_close;
	}
	return fd;

err_close:
	close(fd);
	return rc;
}
