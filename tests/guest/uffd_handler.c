// SPDX-License-Identifier: Apache-2.0
/*
 * An external page-fault handler speaking Firecracker's Uffd handshake, for
 * the tests: `uffd_handler MODE SOCKET MEMFILE`.
 *
 * It listens on SOCKET, prints "ready" on stdout (the test waits for that
 * line, not for a time), accepts one connection and, by MODE:
 *   serve        takes the message (the JSON array of GuestRegionUffdMapping
 *                and the userfaultfd as SCM_RIGHTS), checks it, and serves
 *                every fault from MEMFILE (UFFDIO_COPY, UFFDIO_ZEROPAGE for
 *                pages of zeros and for pages given back by a REMOVE event)
 *                until the monitor closes the connection; prints "served N";
 *   close-early  closes the connection and exits without reading it;
 *   exit-early   takes the message and exits without serving anything.
 * Exit status 0, or 1 with a line on stderr naming what was wrong.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define PAGE        4096u
#define MAX_REGIONS 32

struct region {
	uint64_t base, size, offset, page_size;
	uint8_t *removed; /* a byte per page: given back, zero from now on */
};

static struct region reg[MAX_REGIONS];
static size_t n_reg;

static int die(const char *what)
{
	fprintf(stderr, "uffd_handler: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* The number after "key": in s (from *at), moving *at past it. */
static bool field(const char *s, const char **at, const char *key, uint64_t *v)
{
	char pat[64];
	const char *p;
	char *end;

	snprintf(pat, sizeof(pat), "\"%s\":", key);
	p = strstr(*at, pat);
	if (!p)
		return false;
	errno = 0;
	*v = strtoull(p + strlen(pat), &end, 10);
	if (errno || end == p + strlen(pat))
		return false;
	*at = end;
	(void)s;
	return true;
}

/* The JSON array, as Firecracker sends it: every field of every region. */
static void parse(const char *json)
{
	const char *at = json;
	uint64_t kib;

	if (json[0] != '[') {
		fprintf(stderr, "uffd_handler: not a JSON array: %.60s\n", json);
		exit(1);
	}
	while (strstr(at, "base_host_virt_addr") && n_reg < MAX_REGIONS) {
		struct region *r = &reg[n_reg];

		if (!field(json, &at, "base_host_virt_addr", &r->base) ||
		    !field(json, &at, "size", &r->size) ||
		    !field(json, &at, "offset", &r->offset) ||
		    !field(json, &at, "page_size", &r->page_size) ||
		    !field(json, &at, "page_size_kib", &kib)) {
			fprintf(stderr, "uffd_handler: region %zu: a field is missing: %s\n", n_reg,
			        json);
			exit(1);
		}
		if (r->page_size != PAGE || kib != PAGE || r->size % PAGE || r->base % PAGE) {
			fprintf(stderr, "uffd_handler: region %zu: odd sizes: %s\n", n_reg, json);
			exit(1);
		}
		r->removed = calloc(r->size / PAGE, 1);
		if (!r->removed)
			die("calloc");
		n_reg++;
	}
	if (!n_reg) {
		fprintf(stderr, "uffd_handler: no region in %s\n", json);
		exit(1);
	}
}

static int receive(int conn)
{
	char json[8192] = {0};
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = {.iov_base = json, .iov_len = sizeof(json) - 1};
	struct msghdr mh = {.msg_iov = &iov,
	                    .msg_iovlen = 1,
	                    .msg_control = ctl.buf,
	                    .msg_controllen = sizeof(ctl.buf)};
	struct cmsghdr *c;
	int uffd;

	if (recvmsg(conn, &mh, 0) <= 0)
		die("recvmsg");
	c = CMSG_FIRSTHDR(&mh);
	if (!c || c->cmsg_type != SCM_RIGHTS) {
		fprintf(stderr, "uffd_handler: no descriptor with the message\n");
		exit(1);
	}
	memcpy(&uffd, CMSG_DATA(c), sizeof(int));
	parse(json);
	return uffd;
}

static void serve_page(int uffd, int mem, uint64_t addr, uint8_t *buf)
{
	struct region *r = NULL;
	int rc;

	addr &= ~(uint64_t)(PAGE - 1);
	for (size_t k = 0; k < n_reg; k++)
		if (addr >= reg[k].base && addr - reg[k].base < reg[k].size)
			r = &reg[k];
	if (!r) {
		fprintf(stderr, "uffd_handler: a fault at 0x%" PRIx64 " outside the regions\n",
		        addr);
		exit(1);
	}
	uint64_t pg = (addr - r->base) / PAGE;
	bool zero = r->removed[pg];
	if (!zero) {
		if (pread(mem, buf, PAGE, (off_t)(r->offset + pg * PAGE)) != PAGE)
			die("pread");
		zero = true;
		for (size_t i = 0; i < PAGE && zero; i++)
			zero = buf[i] == 0;
	}
	if (zero) {
		struct uffdio_zeropage z = {.range = {.start = addr, .len = PAGE}};
		rc = ioctl(uffd, UFFDIO_ZEROPAGE, &z);
	} else {
		struct uffdio_copy cp = {.dst = addr, .src = (uint64_t)(uintptr_t)buf, .len = PAGE};
		rc = ioctl(uffd, UFFDIO_COPY, &cp);
	}
	if (rc < 0 && errno == EAGAIN) { /* the address space changes: it faults again */
		struct uffdio_range w = {.start = addr, .len = PAGE};
		rc = ioctl(uffd, UFFDIO_WAKE, &w);
	}
	if (rc < 0 && errno != EEXIST)
		die("UFFDIO_COPY/ZEROPAGE");
}

static void on_remove(uint64_t start, uint64_t end)
{
	for (size_t k = 0; k < n_reg; k++)
		for (uint64_t a = start & ~(uint64_t)(PAGE - 1); a < end; a += PAGE)
			if (a >= reg[k].base && a - reg[k].base < reg[k].size)
				reg[k].removed[(a - reg[k].base) / PAGE] = 1;
}

int main(int argc, char **argv)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	static uint8_t buf[PAGE];
	unsigned long served = 0;
	int lfd, conn, uffd, mem;

	if (argc != 4 || strlen(argv[2]) >= sizeof(sa.sun_path)) {
		fprintf(stderr,
		        "usage: uffd_handler serve|close-early|exit-early SOCKET MEMFILE\n");
		return 2;
	}
	if ((mem = open(argv[3], O_RDONLY)) < 0)
		die(argv[3]);
	strcpy(sa.sun_path, argv[2]);
	unlink(argv[2]);
	if ((lfd = socket(AF_UNIX, SOCK_STREAM, 0)) < 0 ||
	    bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 1) < 0)
		die(argv[2]);
	printf("ready\n");
	fflush(stdout);
	if ((conn = accept(lfd, NULL, NULL)) < 0)
		die("accept");
	if (strcmp(argv[1], "close-early") == 0) {
		close(conn);
		return 0;
	}
	uffd = receive(conn);
	if (strcmp(argv[1], "exit-early") == 0)
		return 0;
	for (;;) {
		struct pollfd p[2] = {{.fd = uffd, .events = POLLIN},
		                      {.fd = conn, .events = POLLIN}};
		struct uffd_msg msg[16];

		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			die("poll");
		}
		if (p[1].revents) /* the monitor hung up: the VM is gone */
			break;
		ssize_t got = read(uffd, msg, sizeof(msg));
		if (got < 0 && errno == EAGAIN)
			continue;
		if (got < 0)
			die("read");
		for (size_t i = 0; i < (size_t)got / sizeof(msg[0]); i++) {
			if (msg[i].event == UFFD_EVENT_PAGEFAULT) {
				serve_page(uffd, mem, msg[i].arg.pagefault.address, buf);
				served++;
			} else if (msg[i].event == UFFD_EVENT_REMOVE) {
				on_remove(msg[i].arg.remove.start, msg[i].arg.remove.end);
			}
		}
	}
	printf("served %lu\n", served);
	return 0;
}
