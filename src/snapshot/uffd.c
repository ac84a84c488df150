// SPDX-License-Identifier: Apache-2.0
/*
 * Guest memory served through userfaultfd (snapshot.h: spk_vm_restore_opts).
 *
 * Restore replaces each region's host memory, at the same address (the KVM
 * slots name host addresses), by fresh anonymous memory registered with a
 * userfaultfd in MISSING mode. The first touch of a page, by the guest
 * (KVM's fault), by a device model or by the restore itself, then waits in
 * the kernel until someone fills the page:
 *
 * - the library's own handler, a thread the VM owns: it reads the page from
 *   the memory file (pread, so the file is never mapped or written) and
 *   answers UFFDIO_COPY, or UFFDIO_ZEROPAGE for a page of zeros (holes of
 *   the sparse file). A page the monitor gives back (madvise DONTNEED: the
 *   balloon) arrives as UFFD_EVENT_REMOVE and is zero from then on. It can
 *   record the pages it serves (a working set) and copy a recorded working
 *   set in before any vCPU runs (prefetch);
 * - or an external handler (Firecracker's handshake): the descriptor and
 *   the region list go to a Unix socket, and that process answers.
 *
 * Everything that can fail (the descriptor, the file, the working set, the
 * connection) is done before memory changes. The new regions are mapped
 * elsewhere and moved into place with mremap, then registered (a move
 * drops a registration without UFFD_FEATURE_EVENT_REMAP).
 *
 * A fault the handler cannot serve at once (EAGAIN: the address space is
 * changing while a REMOVE is delivered) is woken with UFFDIO_WAKE: the
 * faulting thread touches the page again and a new fault comes, so no
 * fault is ever left waiting. A page the file cannot give (a read error)
 * is served as zeros and counted: the guest must not hang on it.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <sparkler/snapshot.h>
#include <sparkler/vm.h>

#include "core/backend.h"
#include "core/internal.h"
#include "snapshot/snap_internal.h"

#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC_NEW _IO(0xAA, 0x00)
#endif
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

#define PAGE         ((uint64_t)4096)
#define WSET_MAGIC   "SPKWSET\n"
#define WSET_VERSION 1u
#define WSET_HDR     32u /* magic, version, page size, file size, count */
#define UMSG_BATCH   16

struct uregion {
	uint8_t *host;
	uint64_t size, offset; /* offset: in the memory file */
	uint64_t *removed;     /* pages given back: zero when touched again */
	uint64_t *seen;        /* pages already in the working set */
};

struct spk_snap_uffd {
	int uffd, mem_fd, stop_fd, sock, pidfd;
	bool external, record;
	pid_t handler_pid;
	uint64_t file_size;
	size_t n;
	struct uregion r[SPK_MEM_MAX_REGIONS];
	/* the prefetch list (file offsets), read before memory changes */
	uint64_t *prefetch;
	size_t n_prefetch;

	pthread_t thread;
	bool thread_live;
	atomic_bool loading;      /* external: the restore still waits on the handler */
	atomic_bool handler_gone; /* external: its process exited */

	pthread_mutex_t lock; /* stats and the working set */
	struct spk_snap_uffd_stats st;
	uint64_t *ws;
	size_t ws_n, ws_cap;
	uint8_t page[PAGE]; /* the thread's buffer */
};

static bool bit_get(const uint64_t *b, uint64_t i)
{
	return b[i / 64] >> (i % 64) & 1;
}

static void bit_set(uint64_t *b, uint64_t i)
{
	b[i / 64] |= 1ull << (i % 64);
}

/* ---- the descriptor ---------------------------------------------------------------- */

/* A userfaultfd that sees kernel faults (never UFFD_USER_MODE_ONLY); -errno
 * with the reason. */
static int uffd_open(void)
{
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	int sys_err = errno, dev_err, dev;
	char sysctl[8] = "?";

	if (fd >= 0)
		return fd;
	dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	if (dev >= 0) {
		fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
		dev_err = errno;
		close(dev);
		if (fd >= 0)
			return fd;
	} else {
		dev_err = errno;
	}
	int s = open("/proc/sys/vm/unprivileged_userfaultfd", O_RDONLY | O_CLOEXEC);
	if (s >= 0) {
		ssize_t got = read(s, sysctl, sizeof(sysctl) - 1);
		sysctl[got > 0 ? got : 0] = 0;
		sysctl[strcspn(sysctl, "\n")] = 0;
		close(s);
	}
	return spk_fail(sys_err == ENOSYS ? ENOSYS : EPERM,
	                "userfaultfd cannot be used here: userfaultfd(2): %s "
	                "(/proc/sys/vm/unprivileged_userfaultfd is %s; without it the process "
	                "needs CAP_SYS_PTRACE), /dev/userfaultfd: %s (KVM's faults need a "
	                "descriptor without UFFD_USER_MODE_ONLY)",
	                strerror(sys_err), sysctl, strerror(dev_err));
}

/* The API handshake: features and ioctls we need. */
static int uffd_api(int fd)
{
	struct uffdio_api api = {.api = UFFD_API, .features = UFFD_FEATURE_EVENT_REMOVE};

	if (ioctl(fd, UFFDIO_API, &api) < 0)
		return spk_fail(errno, "userfaultfd: UFFDIO_API with EVENT_REMOVE: %s",
		                strerror(errno));
	if (!(api.ioctls & (1ull << _UFFDIO_REGISTER)))
		return spk_fail(ENOSYS, "userfaultfd: this kernel has no UFFDIO_REGISTER");
	return 0;
}

int spk_snap_uffd_check(void)
{
	int fd = uffd_open(), rc;

	if (fd < 0)
		return fd;
	rc = uffd_api(fd);
	close(fd);
	return rc;
}

/* ---- working-set files ------------------------------------------------------------ */

/* Read and check a working-set file against the layout: offsets into *out. */
static int wset_read(const char *path, const struct spk_snap_mem_layout *l, uint64_t **out,
                     size_t *n_out)
{
	uint8_t hdr[WSET_HDR], tail[4];
	uint64_t n, fsize, *offs = NULL;
	struct stat st;
	uint32_t crc;
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc;

	if (fd < 0)
		return spk_fail(errno, "snapshot: working set %s: %s", path, strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size < WSET_HDR + 4) {
		rc = spk_fail(EINVAL,
		              "snapshot: working set %s: not a working-set file (%lld bytes)", path,
		              (long long)st.st_size);
		goto out;
	}
	if ((rc = spk_snap_pio(fd, hdr, WSET_HDR, 0, false, path)) < 0)
		goto out;
	n = spk_get_le(hdr + 24, 8);
	fsize = spk_get_le(hdr + 16, 8);
	if (memcmp(hdr, WSET_MAGIC, 8) != 0 || spk_get_le(hdr + 8, 4) != WSET_VERSION ||
	    spk_get_le(hdr + 12, 4) != PAGE) {
		rc = spk_fail(EINVAL,
		              "snapshot: working set %s: bad magic, version or page size "
		              "(field 'version' %u, 'page_size' %u)",
		              path, (unsigned)spk_get_le(hdr + 8, 4),
		              (unsigned)spk_get_le(hdr + 12, 4));
		goto out;
	}
	if (fsize != l->file_size) {
		rc = spk_fail(EINVAL,
		              "snapshot: working set %s: recorded for a memory file of %" PRIu64
		              " bytes, this one has %" PRIu64 " (field 'file_size')",
		              path, fsize, l->file_size);
		goto out;
	}
	if (n > l->file_size / PAGE || (uint64_t)st.st_size != WSET_HDR + n * 8 + 4) {
		rc = spk_fail(EINVAL,
		              "snapshot: working set %s: %" PRIu64 " pages (field 'count') do not "
		              "fit the file's %lld bytes or the memory file",
		              path, n, (long long)st.st_size);
		goto out;
	}
	if (n && !(offs = malloc(n * 8))) {
		rc = spk_fail(ENOMEM, "snapshot: out of memory");
		goto out;
	}
	if ((n && (rc = spk_snap_pio(fd, offs, n * 8, WSET_HDR, false, path)) < 0) ||
	    (rc = spk_snap_pio(fd, tail, 4, WSET_HDR + n * 8, false, path)) < 0)
		goto out;
	crc = spk_snap_crc32(spk_snap_crc32(0, hdr, WSET_HDR), offs, n * 8);
	if (crc != spk_get_le(tail, 4)) {
		rc = spk_fail(EINVAL, "snapshot: working set %s: CRC 0x%08x, the file says 0x%08x",
		              path, crc, (unsigned)spk_get_le(tail, 4));
		goto out;
	}
	for (uint64_t i = 0; i < n; i++) {
		uint64_t off = spk_get_le((const uint8_t *)&offs[i], 8);
		size_t k = 0;

		while (k < l->n_regions && !(off >= l->region[k].offset &&
		                             off - l->region[k].offset < l->region[k].size))
			k++;
		if (off % PAGE || k == l->n_regions) {
			rc = spk_fail(EINVAL,
			              "snapshot: working set %s: page %" PRIu64 " at 0x%" PRIx64
			              " is not a page of a region of the memory file",
			              path, i, off);
			goto out;
		}
		offs[i] = off;
	}
	*out = offs;
	*n_out = (size_t)n;
	offs = NULL;
	rc = 0;
out:
	free(offs);
	close(fd);
	return rc;
}

int spk_vm_uffd_working_set_save(struct spk_vm *vm, const char *path)
{
	struct spk_snap_uffd *u;
	uint8_t hdr[WSET_HDR], tail[4];
	uint8_t *buf = NULL;
	size_t n, len;
	int rc;

	if (!spk_vm_ok(vm, "save a working set"))
		return -EINVAL;
	if (!path)
		return spk_fail(EINVAL, "snapshot: a working set needs a path");
	pthread_mutex_lock(&vm->lock);
	u = vm->mem_backend;
	if (!u || u->external) {
		pthread_mutex_unlock(&vm->lock);
		return spk_fail(ENOENT, "snapshot: the VM's memory is not served by the library's "
		                        "userfaultfd handler");
	}
	if (!u->record) {
		pthread_mutex_unlock(&vm->lock);
		return spk_fail(EINVAL, "snapshot: the restore did not record a working set "
		                        "(spk_snap_restore_opts.record)");
	}
	pthread_mutex_lock(&u->lock);
	n = u->ws_n;
	len = WSET_HDR + n * 8 + 4;
	if ((buf = malloc(len))) {
		memcpy(hdr, WSET_MAGIC, 8);
		spk_put_le(hdr + 8, WSET_VERSION, 4);
		spk_put_le(hdr + 12, PAGE, 4);
		spk_put_le(hdr + 16, u->file_size, 8);
		spk_put_le(hdr + 24, n, 8);
		memcpy(buf, hdr, WSET_HDR);
		for (size_t i = 0; i < n; i++)
			spk_put_le(buf + WSET_HDR + i * 8, u->ws[i], 8);
	}
	pthread_mutex_unlock(&u->lock);
	pthread_mutex_unlock(&vm->lock);
	if (!buf)
		return spk_fail(ENOMEM, "snapshot: out of memory");
	spk_put_le(tail, spk_snap_crc32(0, buf, len - 4), 4);
	memcpy(buf + len - 4, tail, 4);
	rc = spk_snap_write_file(path, buf, len, false);
	free(buf);
	return rc;
}

int spk_vm_uffd_stats(struct spk_vm *vm, struct spk_snap_uffd_stats *out)
{
	struct spk_snap_uffd *u;
	int rc = 0;

	if (!spk_vm_ok(vm, "get userfaultfd statistics"))
		return -EINVAL;
	if (!out)
		return spk_fail(EINVAL, "snapshot: userfaultfd statistics without an out pointer");
	pthread_mutex_lock(&vm->lock);
	u = vm->mem_backend;
	if (!u || u->external) {
		rc = spk_fail(ENOENT, "snapshot: the VM's memory is not served by the library's "
		                      "userfaultfd handler");
	} else {
		pthread_mutex_lock(&u->lock);
		*out = u->st;
		pthread_mutex_unlock(&u->lock);
	}
	pthread_mutex_unlock(&vm->lock);
	return rc;
}

/* ---- serving pages ----------------------------------------------------------------- */

static bool zero_page(const uint8_t *p)
{
	const uint64_t *q = (const uint64_t *)p;

	for (size_t i = 0; i < PAGE / 8; i++)
		if (q[i])
			return false;
	return true;
}

static void count(struct spk_snap_uffd *u, uint64_t *field)
{
	pthread_mutex_lock(&u->lock);
	(*field)++;
	pthread_mutex_unlock(&u->lock);
}

/* A page of the working set, once (record on). */
static void record(struct spk_snap_uffd *u, size_t k, uint64_t pg)
{
	if (!u->record)
		return;
	pthread_mutex_lock(&u->lock);
	if (!bit_get(u->r[k].seen, pg)) {
		if (u->ws_n == u->ws_cap) {
			size_t cap = u->ws_cap ? u->ws_cap * 2 : 1024;
			uint64_t *ws = realloc(u->ws, cap * sizeof(*ws));

			if (!ws) { /* the set is a hint: an incomplete one still works */
				pthread_mutex_unlock(&u->lock);
				return;
			}
			u->ws = ws;
			u->ws_cap = cap;
		}
		bit_set(u->r[k].seen, pg);
		u->ws[u->ws_n++] = u->r[k].offset + pg * PAGE;
	}
	pthread_mutex_unlock(&u->lock);
}

/*
 * Fill page pg of region k (buf: a page of scratch). 0 when filled (or it
 * was already there), -EAGAIN when the kernel asks to try again.
 */
static int fill(struct spk_snap_uffd *u, size_t k, uint64_t pg, uint8_t *buf, bool prefetch)
{
	struct uregion *r = &u->r[k];
	uint64_t at = (uint64_t)(uintptr_t)r->host + pg * PAGE;
	bool zero = bit_get(r->removed, pg);
	ssize_t got = 0;
	int rc;

	if (!zero) {
		got = pread(u->mem_fd, buf, PAGE, (off_t)(r->offset + pg * PAGE));
		if (got != (ssize_t)PAGE) {
			spk_log(SPK_LOG_ERROR,
			        "userfaultfd: reading page 0x%" PRIx64 " of the memory file: %s",
			        r->offset + pg * PAGE, got < 0 ? strerror(errno) : "short read");
			count(u, &u->st.errors);
			zero = true;
		} else {
			zero = zero_page(buf);
		}
	}
	if (zero) {
		struct uffdio_zeropage z = {.range = {.start = at, .len = PAGE}};
		rc = ioctl(u->uffd, UFFDIO_ZEROPAGE, &z);
	} else {
		struct uffdio_copy c = {.dst = at, .src = (uint64_t)(uintptr_t)buf, .len = PAGE};
		rc = ioctl(u->uffd, UFFDIO_COPY, &c);
	}
	if (rc < 0 && errno == EEXIST)
		return 0; /* filled by someone else meanwhile (a prefetch, a fault) */
	if (rc < 0 && errno == EAGAIN)
		return -EAGAIN;
	if (rc < 0) {
		spk_log(SPK_LOG_ERROR, "userfaultfd: filling 0x%" PRIx64 ": %s", at,
		        strerror(errno));
		return -errno;
	}
	pthread_mutex_lock(&u->lock);
	if (zero)
		u->st.zeroed++;
	else
		u->st.copied++;
	if (prefetch)
		u->st.prefetched++;
	pthread_mutex_unlock(&u->lock);
	record(u, k, pg);
	return 0;
}

/* The region and page of a host address; false outside every region. */
static bool locate(const struct spk_snap_uffd *u, uint64_t addr, size_t *k, uint64_t *pg)
{
	for (size_t i = 0; i < u->n; i++) {
		uint64_t base = (uint64_t)(uintptr_t)u->r[i].host;

		if (addr >= base && addr - base < u->r[i].size) {
			*k = i;
			*pg = (addr - base) / PAGE;
			return true;
		}
	}
	return false;
}

static void on_fault(struct spk_snap_uffd *u, uint64_t addr)
{
	size_t k;
	uint64_t pg;

	addr &= ~(PAGE - 1);
	count(u, &u->st.faults);
	if (locate(u, addr, &k, &pg) && fill(u, k, pg, u->page, false) == 0)
		return;
	/* not ours to fill, or not now: wake the thread, it faults again */
	struct uffdio_range wr = {.start = addr, .len = PAGE};
	if (ioctl(u->uffd, UFFDIO_WAKE, &wr) < 0)
		spk_log(SPK_LOG_ERROR, "userfaultfd: waking 0x%" PRIx64 ": %s", addr,
		        strerror(errno));
}

/* [start, end) given back by the monitor: those pages are zero from now on. */
static void on_remove(struct spk_snap_uffd *u, uint64_t start, uint64_t end)
{
	for (size_t k = 0; k < u->n; k++) {
		uint64_t base = (uint64_t)(uintptr_t)u->r[k].host, top = base + u->r[k].size;
		uint64_t a = start > base ? start : base, b = end < top ? end : top;

		if (a >= b)
			continue;
		pthread_mutex_lock(&u->lock);
		for (uint64_t pg = (a - base) / PAGE; pg < (b - base + PAGE - 1) / PAGE; pg++) {
			bit_set(u->r[k].removed, pg);
			u->st.removed++;
		}
		pthread_mutex_unlock(&u->lock);
	}
}

static void *serve(void *arg)
{
	struct spk_snap_uffd *u = arg;
	struct uffd_msg msg[UMSG_BATCH];
	struct pollfd p[2] = {{.fd = u->uffd, .events = POLLIN},
	                      {.fd = u->stop_fd, .events = POLLIN}};
	sigset_t all;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL); /* kicks are for vCPU threads */
	for (;;) {
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			spk_log(SPK_LOG_ERROR, "userfaultfd: poll: %s", strerror(errno));
			return NULL;
		}
		if (p[1].revents)
			return NULL;
		ssize_t got = read(u->uffd, msg, sizeof(msg));
		if (got < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			spk_log(SPK_LOG_ERROR, "userfaultfd: read: %s", strerror(errno));
			return NULL;
		}
		for (size_t i = 0; i < (size_t)got / sizeof(msg[0]); i++) {
			if (msg[i].event == UFFD_EVENT_PAGEFAULT)
				on_fault(u, msg[i].arg.pagefault.address);
			else if (msg[i].event == UFFD_EVENT_REMOVE)
				on_remove(u, msg[i].arg.remove.start, msg[i].arg.remove.end);
		}
	}
}

/* ---- the external handler ------------------------------------------------------------ */

/* Connect to the handler's socket (before memory changes). */
static int ext_connect(struct spk_snap_uffd *u, const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct ucred cred;
	socklen_t cl = sizeof(cred);

	if (strlen(path) >= sizeof(sa.sun_path))
		return spk_fail(EINVAL,
		                "snapshot: Uffd handler socket %s: a path of at most %zu bytes",
		                path, sizeof(sa.sun_path) - 1);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	u->sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (u->sock < 0)
		return spk_fail(errno, "snapshot: Uffd handler socket: %s", strerror(errno));
	if (connect(u->sock, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return spk_fail(errno, "snapshot: cannot connect to the Uffd handler at %s: %s",
		                path, strerror(errno));
	/* the handler's process, to notice its exit instead of waiting forever */
	if (getsockopt(u->sock, SOL_SOCKET, SO_PEERCRED, &cred, &cl) == 0 && cred.pid > 0) {
		u->handler_pid = cred.pid;
		u->pidfd = (int)syscall(SYS_pidfd_open, cred.pid, 0);
		if (u->pidfd < 0 && errno == ESRCH)
			return spk_fail(EPIPE,
			                "snapshot: the Uffd handler at %s (pid %d) has exited",
			                path, (int)cred.pid);
	}
	if (u->pidfd < 0)
		spk_log(SPK_LOG_WARN,
		        "userfaultfd: cannot watch the handler at %s (pid %d): a handler that "
		        "exits during the load leaves it waiting",
		        path, (int)u->handler_pid);
	return 0;
}

/* Firecracker's message: the regions as JSON, the uffd as SCM_RIGHTS. */
static int ext_send(struct spk_snap_uffd *u)
{
	char json[SPK_MEM_MAX_REGIONS * 160 + 8];
	size_t len = 0;
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} ctl = {0};
	struct iovec iov;
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	struct cmsghdr *c;

	len += (size_t)snprintf(json + len, sizeof(json) - len, "[");
	for (size_t k = 0; k < u->n; k++)
		len += (size_t)snprintf(json + len, sizeof(json) - len,
		                        "%s{\"base_host_virt_addr\":%" PRIu64 ",\"size\":%" PRIu64
		                        ",\"offset\":%" PRIu64 ",\"page_size\":%" PRIu64
		                        ",\"page_size_kib\":%" PRIu64 "}",
		                        k ? "," : "", (uint64_t)(uintptr_t)u->r[k].host,
		                        u->r[k].size, u->r[k].offset, PAGE, PAGE);
	len += (size_t)snprintf(json + len, sizeof(json) - len, "]");
	iov.iov_base = json;
	iov.iov_len = len;
	mh.msg_control = ctl.buf;
	mh.msg_controllen = sizeof(ctl.buf);
	c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &u->uffd, sizeof(int));
	ssize_t sent = sendmsg(u->sock, &mh, MSG_NOSIGNAL);
	if (sent < 0)
		return spk_fail(
		    errno == ECONNRESET ? EPIPE : errno,
		    "snapshot: the Uffd handler (pid %d) did not take the handshake: %s",
		    (int)u->handler_pid, strerror(errno));
	if ((size_t)sent != len)
		return spk_fail(EPIPE, "snapshot: the Uffd handler (pid %d) took %zd of %zu bytes",
		                (int)u->handler_pid, sent, len);
	return 0;
}

/* The external handler's watch: its exit during the load unblocks the load. */
static void *watch(void *arg)
{
	struct spk_snap_uffd *u = arg;
	struct pollfd p[2] = {{.fd = u->pidfd, .events = POLLIN},
	                      {.fd = u->stop_fd, .events = POLLIN}};
	sigset_t all;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	while (poll(p, 2, -1) < 0)
		if (errno != EINTR)
			return NULL;
	if (p[1].revents || !p[0].revents)
		return NULL;
	atomic_store(&u->handler_gone, true);
	if (atomic_load(&u->loading)) {
		/* nobody will serve the restore's faults: end the registration,
		 * which wakes them (the VM is destroyed after the failed load) */
		for (size_t k = 0; k < u->n; k++) {
			struct uffdio_range r = {.start = (uint64_t)(uintptr_t)u->r[k].host,
			                         .len = u->r[k].size};
			ioctl(u->uffd, UFFDIO_UNREGISTER, &r);
		}
	} else {
		spk_log(SPK_LOG_ERROR,
		        "userfaultfd: the Uffd handler (pid %d) exited: the guest's memory "
		        "faults are no longer served",
		        (int)u->handler_pid);
	}
	return NULL;
}

/* ---- set-up and teardown --------------------------------------------------------------- */

void spk_snap_uffd_free(struct spk_snap_uffd *u)
{
	uint64_t one = 1;

	if (!u)
		return;
	if (u->thread_live) {
		if (write(u->stop_fd, &one, sizeof(one)) != sizeof(one))
			spk_log(SPK_LOG_ERROR, "userfaultfd: stopping the handler: %s",
			        strerror(errno));
		pthread_join(u->thread, NULL);
	}
	for (size_t k = 0; k < SPK_MEM_MAX_REGIONS; k++) {
		free(u->r[k].removed);
		free(u->r[k].seen);
	}
	if (u->uffd >= 0)
		close(u->uffd);
	if (u->mem_fd >= 0)
		close(u->mem_fd);
	if (u->stop_fd >= 0)
		close(u->stop_fd);
	if (u->sock >= 0)
		close(u->sock);
	if (u->pidfd >= 0)
		close(u->pidfd);
	free(u->prefetch);
	free(u->ws);
	pthread_mutex_destroy(&u->lock);
	free(u);
}

static void uffd_free_cb(void *p)
{
	spk_snap_uffd_free(p);
}

void spk_snap_uffd_detach(struct spk_vm *vm)
{
	void *old;

	pthread_mutex_lock(&vm->lock);
	old = vm->mem_backend;
	vm->mem_backend = NULL;
	vm->mem_backend_free = NULL;
	pthread_mutex_unlock(&vm->lock);
	spk_snap_uffd_free(old);
}

int spk_snap_uffd_new(const struct spk_snap_mem_layout *l, int mem_fd,
                      const struct spk_snap_restore_opts *o, struct spk_snap_uffd **out)
{
	struct spk_snap_uffd *u = calloc(1, sizeof(*u));
	int rc;

	*out = NULL;
	if (!u) {
		if (mem_fd >= 0)
			close(mem_fd);
		return spk_fail(ENOMEM, "snapshot: out of memory");
	}
	pthread_mutex_init(&u->lock, NULL);
	u->uffd = u->stop_fd = u->sock = u->pidfd = -1;
	u->mem_fd = mem_fd;
	u->external = o->backend == SPK_SNAP_BACKEND_UFFD_EXTERNAL;
	u->record = o->record;
	u->file_size = l->file_size;
	u->n = l->n_regions;
	for (size_t k = 0; k < u->n; k++) {
		size_t words = (size_t)(l->region[k].size / PAGE / 64 + 1);

		u->r[k].size = l->region[k].size;
		u->r[k].offset = l->region[k].offset;
		u->r[k].removed = calloc(words, 8);
		u->r[k].seen = calloc(words, 8);
		if (!u->r[k].removed || !u->r[k].seen) {
			rc = spk_fail(ENOMEM, "snapshot: out of memory");
			goto err;
		}
	}
	if ((u->uffd = uffd_open()) < 0) {
		rc = u->uffd;
		goto err;
	}
	if ((rc = uffd_api(u->uffd)) < 0)
		goto err;
	if ((u->stop_fd = eventfd(0, EFD_CLOEXEC)) < 0) {
		rc = spk_fail(errno, "snapshot: eventfd: %s", strerror(errno));
		goto err;
	}
	if (o->prefetch && (rc = wset_read(o->prefetch, l, &u->prefetch, &u->n_prefetch)) < 0)
		goto err;
	if (u->external && (rc = ext_connect(u, o->uffd_socket)) < 0)
		goto err;
	*out = u;
	return 0;
err:
	spk_snap_uffd_free(u);
	return rc;
}

/* Anonymous memory in place of each region, registered with the uffd. */
static int place(struct spk_snap_uffd *u, const struct spk_mem_region *const *r)
{
	void *maps[SPK_MEM_MAX_REGIONS] = {0};
	int rc = 0;

	for (size_t k = 0; k < u->n; k++) {
		maps[k] = mmap(NULL, u->r[k].size, PROT_READ | PROT_WRITE,
		               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (maps[k] == MAP_FAILED) {
			maps[k] = NULL;
			rc = spk_fail(errno, "snapshot: memory: anonymous memory for %s: %s",
			              r[k]->name, strerror(errno));
			goto undo;
		}
	}
	for (size_t k = 0; k < u->n; k++) {
		if (mremap(maps[k], u->r[k].size, u->r[k].size, MREMAP_MAYMOVE | MREMAP_FIXED,
		           r[k]->host) == MAP_FAILED) {
			rc = spk_fail(errno, "snapshot: memory: placing region %s: %s", r[k]->name,
			              strerror(errno));
			goto undo;
		}
		maps[k] = NULL;
		u->r[k].host = r[k]->host;
	}
	for (size_t k = 0; k < u->n; k++) {
		struct uffdio_register reg = {
		    .range = {.start = (uint64_t)(uintptr_t)u->r[k].host, .len = u->r[k].size},
		    .mode = UFFDIO_REGISTER_MODE_MISSING};
		uint64_t want =
		    (1ull << _UFFDIO_COPY) | (1ull << _UFFDIO_ZEROPAGE) | (1ull << _UFFDIO_WAKE);

		if (ioctl(u->uffd, UFFDIO_REGISTER, &reg) < 0)
			return spk_fail(errno,
			                "snapshot: memory: registering %s with userfaultfd: %s",
			                r[k]->name, strerror(errno));
		if ((reg.ioctls & want) != want)
			return spk_fail(
			    ENOSYS, "snapshot: memory: userfaultfd offers no COPY/ZEROPAGE for %s",
			    r[k]->name);
	}
	return 0;
undo:
	for (size_t k = 0; k < u->n; k++)
		if (maps[k])
			munmap(maps[k], u->r[k].size);
	return rc;
}

static int prefetch(struct spk_snap_uffd *u)
{
	uint8_t *buf = malloc(PAGE);

	if (!buf)
		return spk_fail(ENOMEM, "snapshot: out of memory");
	for (size_t i = 0; i < u->n_prefetch; i++) {
		uint64_t off = u->prefetch[i];
		size_t k = 0;

		while (k < u->n && !(off >= u->r[k].offset && off - u->r[k].offset < u->r[k].size))
			k++;
		if (k == u->n)
			continue; /* checked when read: cannot happen */
		/* EAGAIN: the page is left to its fault */
		int rc = fill(u, k, (off - u->r[k].offset) / PAGE, buf, true);
		if (rc < 0 && rc != -EAGAIN) {
			free(buf);
			return spk_fail(-rc, "snapshot: prefetching page 0x%" PRIx64 ": %s", off,
			                strerror(-rc));
		}
	}
	free(buf);
	return 0;
}

/* The handler took the descriptor and serves: the first page of every
 * region touched here (or its exit noticed by watch()). */
static int ext_probe(struct spk_snap_uffd *u)
{
	for (size_t k = 0; k < u->n && !atomic_load(&u->handler_gone); k++)
		(void)*(volatile uint8_t *)u->r[k].host;
	if (atomic_load(&u->handler_gone))
		return spk_fail(EPIPE,
		                "snapshot: the Uffd handler (pid %d) exited before serving the "
		                "guest's memory",
		                (int)u->handler_pid);
	return 0;
}

int spk_snap_uffd_start(struct spk_snap_uffd *u, struct spk_vm *vm)
{
	const struct spk_mem_region *r[SPK_MEM_MAX_REGIONS], *all;
	size_t n = spk_mem_regions(spk_vm_mem(vm), &all), k = 0;
	int rc;

	/* the populated regions, in order: the caller matched them to the layout */
	for (size_t i = 0; i < n && k < u->n; i++)
		if (all[i].type != SPK_MEM_UNPOPULATED)
			r[k++] = &all[i];
	if (k != u->n) {
		spk_snap_uffd_free(u);
		return spk_fail(EINVAL, "snapshot: memory: the VM's regions changed");
	}
	spk_snap_uffd_detach(vm);
	if ((rc = place(u, r)) < 0)
		goto err;
	atomic_store(&u->loading, true);
	if (!u->external) {
		rc = -pthread_create(&u->thread, NULL, serve, u);
	} else {
		if ((rc = ext_send(u)) < 0)
			goto err;
		if (u->pidfd >= 0)
			rc = -pthread_create(&u->thread, NULL, watch, u);
	}
	if (rc < 0) {
		rc = spk_fail(-rc, "snapshot: cannot start the userfaultfd thread: %s",
		              strerror(-rc));
		goto err;
	}
	u->thread_live = !u->external || u->pidfd >= 0;
	if ((rc = u->external ? ext_probe(u) : prefetch(u)) < 0)
		goto err;
	pthread_mutex_lock(&vm->lock);
	vm->mem_backend = u;
	vm->mem_backend_free = uffd_free_cb;
	pthread_mutex_unlock(&vm->lock);
	return 0;
err:
	spk_snap_uffd_free(u);
	return rc;
}

int spk_snap_uffd_loaded(struct spk_vm *vm)
{
	struct spk_snap_uffd *u;
	int rc = 0;

	pthread_mutex_lock(&vm->lock);
	u = vm->mem_backend;
	if (u) {
		atomic_store(&u->loading, false);
		if (atomic_load(&u->handler_gone))
			rc = spk_fail(EPIPE,
			              "snapshot: the Uffd handler (pid %d) exited during the load",
			              (int)u->handler_pid);
	}
	pthread_mutex_unlock(&vm->lock);
	return rc;
}
