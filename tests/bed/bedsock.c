/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bedsock: a socket pipe for the bed's vsock checks, built static by
 * tests/bed/bed.py and run both in the L2 guest (AF_VSOCK) and in the L1
 * (AF_UNIX, sparkler's host side of vsock); busybox nc has neither.
 *
 *   bedsock [-r] vsock-listen PORT | vsock-connect CID PORT
 *   bedsock [-r] unix-listen PATH  | unix-connect PATH [PORT]
 *
 * One connection: stdin goes to the socket (then a half-close), the socket
 * goes to stdout until the peer closes; -r: receive only (stdin unused, no
 * half-close). unix-connect with PORT first speaks
 * sparkler's (Firecracker's) "CONNECT PORT\n" / "OK ...\n" handshake.
 * Every wait is bounded by alarm(): 300 s.
 */
#include <errno.h>
#include <linux/vm_sockets.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static void die(const char *what)
{
	fprintf(stderr, "bedsock: %s: %s\n", what, strerror(errno));
	exit(1);
}

static int unix_addr(const char *path, struct sockaddr_un *a)
{
	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(a->sun_path)) {
		fprintf(stderr, "bedsock: path too long\n");
		exit(2);
	}
	strcpy(a->sun_path, path);
	return socket(AF_UNIX, SOCK_STREAM, 0);
}

static int open_conn(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";
	int fd, c;

	if (!strcmp(mode, "vsock-listen") && argc == 3) {
		struct sockaddr_vm a = {.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY,
					.svm_port = (unsigned)atoi(argv[2])};
		if ((fd = socket(AF_VSOCK, SOCK_STREAM, 0)) < 0 ||
		    bind(fd, (struct sockaddr *)&a, sizeof(a)) || listen(fd, 1))
			die("vsock listen");
		if ((c = accept(fd, NULL, NULL)) < 0)
			die("vsock accept");
		return c;
	}
	if (!strcmp(mode, "vsock-connect") && argc == 4) {
		struct sockaddr_vm a = {.svm_family = AF_VSOCK, .svm_cid = (unsigned)atoi(argv[2]),
					.svm_port = (unsigned)atoi(argv[3])};
		if ((fd = socket(AF_VSOCK, SOCK_STREAM, 0)) < 0 ||
		    connect(fd, (struct sockaddr *)&a, sizeof(a)))
			die("vsock connect");
		return fd;
	}
	if (!strcmp(mode, "unix-listen") && argc == 3) {
		struct sockaddr_un a;
		if ((fd = unix_addr(argv[2], &a)) < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) ||
		    listen(fd, 1))
			die("unix listen");
		if ((c = accept(fd, NULL, NULL)) < 0)
			die("unix accept");
		return c;
	}
	if (!strcmp(mode, "unix-connect") && (argc == 3 || argc == 4)) {
		struct sockaddr_un a;
		if ((fd = unix_addr(argv[2], &a)) < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)))
			die("unix connect");
		if (argc == 4) {
			char line[64];
			size_t n = 0;
			dprintf(fd, "CONNECT %s\n", argv[3]);
			while (n < sizeof(line) - 1) { /* the reply, up to its newline */
				ssize_t r = read(fd, line + n, 1);
				if (r <= 0)
					die("no answer to CONNECT");
				if (line[n++] == '\n')
					break;
			}
			line[n] = 0;
			if (strncmp(line, "OK ", 3) != 0) {
				fprintf(stderr, "bedsock: CONNECT answered '%s'\n", line);
				exit(1);
			}
		}
		return fd;
	}
	fprintf(stderr, "usage: bedsock [-r] vsock-listen PORT | vsock-connect CID PORT | "
			"unix-listen PATH | unix-connect PATH [PORT]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	char buf[65536];
	int in_open = 1;
	int fd;

	alarm(300);
	if (argc > 1 && !strcmp(argv[1], "-r")) {
		in_open = 0;
		argv++;
		argc--;
	}
	fd = open_conn(argc, argv);
	for (;;) {
		struct pollfd p[2] = {{.fd = fd, .events = POLLIN}, {.fd = 0, .events = POLLIN}};
		if (poll(p, in_open ? 2 : 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			die("poll");
		}
		if (p[0].revents) {
			ssize_t n = read(fd, buf, sizeof(buf));
			if (n < 0)
				die("read socket");
			if (n == 0)
				break;
			for (ssize_t off = 0; off < n;) {
				ssize_t w = write(1, buf + off, (size_t)(n - off));
				if (w <= 0)
					die("write stdout");
				off += w;
			}
		}
		if (in_open && p[1].revents) {
			ssize_t n = read(0, buf, sizeof(buf));
			if (n < 0)
				die("read stdin");
			if (n == 0) {
				in_open = 0;
				shutdown(fd, SHUT_WR);
				continue;
			}
			for (ssize_t off = 0; off < n;) {
				ssize_t w = write(fd, buf + off, (size_t)(n - off));
				if (w <= 0)
					die("write socket");
				off += w;
			}
		}
	}
	return 0;
}
