/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Guest tests of virtio-net and virtio-vsock: guest-SDK programs
 * (guest/tests/virtio_net*.c, virtio_vsock*.c) drive the real devices at
 * CPL3 while this host side plays the network and the host programs:
 *
 *   - net: a TAP made here (persistent, IPv6 off so the kernel keeps
 *     quiet on it, link down: the device brings it up), read and written
 *     through a packet socket bound to it; deleted at the end;
 *   - vsock: Unix sockets at uds_path (host to guest, CONNECT) and
 *     uds_path_PORT (guest to host).
 *
 * Usage: network_tests CASE. Exit status 77 (skip) where /dev/kvm or
 * /dev/net/tun is not usable.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <linux/if_packet.h>
#include <linux/if_tun.h>
#include <net/ethernet.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <sparkler/evloop.h>
#include <sparkler/pci.h>
#include <sparkler/platform.h>
#include <sparkler/virtio.h>
#include <sparkler/virtio_net.h>
#include <sparkler/virtio_vsock.h>

#include "harness.h"

#include "../../guest/tests/net_frames.h"
#include "../../guest/tests/vsock_data.h"

#define SKIP 77

/* ---- the VM ------------------------------------------------------------------------------ */


struct nt {
	struct th t;
	struct spk_exit e; /* the last exit: the vCPU completes it at the next run */
	struct spk_evloop *loop;
	struct spk_pci_host *pci;
	struct spk_virtio_net *net;
	struct spk_virtio_vsock *vsock;

	struct th_log log;
};

/* How many captured log lines contain s. */
static unsigned log_count(struct nt *v, const char *s)
{
	return th_log_count(&v->log, (const char *const[]){s, NULL});
}

static void nt_setup(struct nt *v, const char *guest)
{
	const struct th_opts o = {.irqchip = SPK_IRQCHIP_KERNEL};

	memset(v, 0, sizeof(*v));
	th_log_capture(&v->log, SPK_LOG_WARN);
	th_setup(&v->t, guest, &o);
	CHECK_OK(spk_evloop_new("virtio", &v->loop));
	const struct spk_pci_host_config hc = spk_pc_pci_host_config(v->t.vm);
	CHECK_OK(spk_pci_host_new(&hc, &v->pci));
}

static void nt_teardown(struct nt *v)
{
	spk_evloop_stop(v->loop);
	spk_virtio_net_free(v->net);
	spk_virtio_vsock_free(v->vsock);
	spk_pci_host_free(v->pci);
	spk_evloop_free(v->loop);
	th_teardown(&v->t);
	th_log_stop(&v->log);
}

/* Run to the guest's SYNC stage: its value. */
static uint64_t run_to_sync(struct nt *v, uint64_t stage)
{
	th_run(&v->t, &v->e);
	struct spk_ucall uc = th_expect_ucall(&v->t, &v->e, SPK_UCALL_SYNC);
	CHECK_EQ(uc.args[0], stage);
	return uc.args[1];
}

/* ---- a TAP and a packet socket on it ---------------------------------------------------- */

static char tap_name[IFNAMSIZ];

static int tun_attach(const char *name)
{
	struct ifreq ifr = {.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR};
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		int err = errno;

		close(fd);
		return -err;
	}
	return fd;
}

static void tap_delete(void)
{
	char cmd[64];
	int fd;

	if (!*tap_name)
		return;
	fd = tun_attach(tap_name);
	if (fd >= 0 && ioctl(fd, TUNSETPERSIST, 0) < 0)
		fprintf(stderr, "deleting TAP %s: %s\n", tap_name, strerror(errno));
	if (fd < 0) { /* a failed test left the device holding it */
		snprintf(cmd, sizeof(cmd), "ip link del %s 2>/dev/null", tap_name);
		if (system(cmd) != 0)
			fprintf(stderr, "could not delete TAP %s\n", tap_name);
	} else {
		close(fd);
	}
	*tap_name = '\0';
}

static void write_file(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);

	if (fd < 0)
		return; /* no IPv6 here: nothing to silence */
	if (write(fd, s, strlen(s)) < 0)
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
	close(fd);
}

/* A persistent TAP with IPv6 off, link down; deleted at exit. Skips the
 * test where TAPs cannot be made. */
static void tap_create(void)
{
	char path[128];
	int fd;

	snprintf(tap_name, sizeof(tap_name), "spkt%u", (unsigned)getpid() % 1000000);
	fd = tun_attach(tap_name);
	if (fd == -ENOENT || fd == -ENODEV || fd == -EPERM || fd == -EACCES) {
		printf("SKIP: /dev/net/tun is not usable here (%s)\n", strerror(-fd));
		exit(SKIP);
	}
	CHECK(fd >= 0, "making TAP %s: %s", tap_name, strerror(-fd));
	CHECK(ioctl(fd, TUNSETPERSIST, 1) == 0, "TUNSETPERSIST: %s", strerror(errno));
	close(fd);
	atexit(tap_delete);
	snprintf(path, sizeof(path), "/proc/sys/net/ipv6/conf/%s/disable_ipv6", tap_name);
	write_file(path, "1");
}

static short if_flags(const char *name)
{
	struct ifreq ifr = {0};
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	CHECK(s >= 0 && ioctl(s, SIOCGIFFLAGS, &ifr) == 0, "flags of %s: %s", name,
	      strerror(errno));
	close(s);
	return ifr.ifr_flags;
}

static int packet_socket(const char *ifname)
{
	int s = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));
	struct sockaddr_ll a = {.sll_family = AF_PACKET,
	                        .sll_protocol = htons(ETH_P_ALL),
	                        .sll_ifindex = (int)if_nametoindex(ifname)};

	CHECK(s >= 0, "packet socket: %s", strerror(errno));
	CHECK(a.sll_ifindex > 0, "TAP %s has no index", ifname);
	CHECK(bind(s, (struct sockaddr *)&a, sizeof(a)) == 0, "bind: %s", strerror(errno));
	return s;
}

/* The next frame of type NF_TO_HOST the guest sent: its sequence number,
 * or -1 after timeout_ms without one. */
static int host_receive(int s, int timeout_ms)
{
	uint8_t f[2048];

	for (;;) {
		struct pollfd p = {.fd = s, .events = POLLIN};
		struct sockaddr_ll from;
		socklen_t fl = sizeof(from);

		if (poll(&p, 1, timeout_ms) <= 0)
			return -1;
		ssize_t n = recvfrom(s, f, sizeof(f), 0, (struct sockaddr *)&from, &fl);
		CHECK(n >= 0, "recvfrom: %s", strerror(errno));
		if (from.sll_pkttype == PACKET_OUTGOING)
			continue; /* ours, on their way to the guest */
		int seq = nf_parse(f, (uint32_t)n, nf_broadcast, NF_TO_HOST);
		CHECK(seq != -2, "a bad frame of %zd bytes from the guest", n);
		if (seq >= 0)
			return seq;
	}
}

static void host_send(int s, unsigned seq)
{
	uint8_t f[2048];
	uint32_t n =
	    nf_frame(f, (const uint8_t[6]){0x02, 0, 0, 0, 0, 0x99}, nf_guest_mac, NF_TO_GUEST, seq);

	CHECK(send(s, f, n, 0) == (ssize_t)n, "send: %s", strerror(errno));
}

static void add_net(struct nt *v, const char *tap)
{
	struct spk_virtio_net_config nc = {.pci = v->pci,
	                                   .slot = -1,
	                                   .mem = spk_vm_mem(v->t.vm),
	                                   .loop = v->loop,
	                                   .tap = tap,
	                                   .tap_fd = -1,
	                                   .has_mac = true};

	memcpy(nc.mac, nf_guest_mac, 6);
	CHECK_OK(spk_virtio_net_new(&nc, &v->net));
	CHECK_OK(spk_evloop_start(v->loop));
}

/* ---- virtio-net ----------------------------------------------------------------------------- */

/* t_virtio_net with its device on fd, a socket pair standing in for the
 * TAP (nc's other fields are the caller's); the loop started. */
static void net_on_pair(struct nt *v, struct spk_virtio_net_config *nc, int fd)
{
	nt_setup(v, "t_virtio_net");
	nc->pci = v->pci;
	nc->mem = spk_vm_mem(v->t.vm);
	nc->loop = v->loop;
	nc->tap_fd = fd;
	memcpy(nc->mac, nf_guest_mac, 6);
	CHECK_OK(spk_virtio_net_new(nc, &v->net));
	CHECK_OK(spk_evloop_start(v->loop));
}

/* The same on a TAP called name that the device opens (or makes); the
 * test skips where /dev/net/tun is not usable. The loop not started. */
static void net_on_tap(struct nt *v, struct spk_virtio_net_config *nc, const char *name)
{
	nt_setup(v, "t_virtio_net");
	nc->pci = v->pci;
	nc->mem = spk_vm_mem(v->t.vm);
	nc->loop = v->loop;
	nc->tap = name;
	int rc = spk_virtio_net_new(nc, &v->net);
	if (rc == -EPERM || rc == -ENOENT || rc == -ENODEV || rc == -EACCES) {
		printf("SKIP: /dev/net/tun is not usable here: %s\n", spk_last_error());
		exit(SKIP);
	}
	CHECK_OK(rc);
}

static void case_net(void)
{
	struct spk_virtio_net_stats st;
	struct nt v;
	int s;

	tap_create();
	CHECK(!(if_flags(tap_name) & IFF_UP), "the new TAP is down");
	nt_setup(&v, "t_virtio_net");
	add_net(&v, tap_name);
	CHECK(if_flags(tap_name) & IFF_UP, "the device brought %s up", tap_name);
	s = packet_socket(tap_name);
	run_to_sync(&v, 2);
	for (int i = 0; i < 64; i++)
		CHECK_EQ(host_receive(s, 10000), i);
	for (unsigned i = 0; i < 64; i++)
		host_send(s, i);
	th_run_to_done(&v.t);
	spk_virtio_net_get_stats(v.net, &st);
	printf("stats: rx %llu frames %llu bytes (%llu dropped), tx %llu frames %llu bytes\n",
	       (unsigned long long)st.rx_frames, (unsigned long long)st.rx_bytes,
	       (unsigned long long)st.rx_dropped, (unsigned long long)st.tx_frames,
	       (unsigned long long)st.tx_bytes);
	CHECK_EQ(st.tx_frames, 64);
	CHECK(st.rx_frames >= 64, "rx frames %llu", (unsigned long long)st.rx_frames);
	CHECK_EQ(st.tx_dropped, 0);
	CHECK(v.log.n == 0, "no warnings, got: %s", v.log.line[0]);
	close(s);
	nt_teardown(&v);
	CHECK(if_nametoindex(tap_name) != 0, "a persistent TAP stays");
	tap_delete();
}

static void case_net_hostile(void)
{
	static const char *const once[] = {
	    "a frame of 70000 bytes to transmit",
	    "offloads that were not negotiated",
	    "a frame of 5 bytes to transmit",
	    "has 1 device-writable buffers; device needs reset",
	    "queue 1: transmit chain 0 of 8 bytes is shorter than the 12-byte header",
	    "queue 0: receive chain 0 has 1 device-readable buffers; device needs reset",
	};
	struct nt v;
	int s;

	tap_create();
	nt_setup(&v, "t_virtio_net_hostile");
	add_net(&v, tap_name);
	s = packet_socket(tap_name);
	run_to_sync(&v, 2);
	CHECK_EQ(host_receive(s, 10000), 1);
	CHECK_EQ(host_receive(s, 200), -1); /* and nothing of the dropped ones */
	host_send(s, 10);                   /* 1030 bytes: too big for the guest's buffer */
	host_send(s, 0);                    /* 60: fits */
	run_to_sync(&v, 3);
	CHECK_EQ(host_receive(s, 10000), 2);
	th_run_to_done(&v.t);
	for (size_t i = 0; i < SPK_ARRAY_SIZE_T(once); i++)
		CHECK(log_count(&v, once[i]) == 1, "one line with '%s', got %u", once[i],
		      log_count(&v, once[i]));
	CHECK(log_count(&v, "is larger than the guest's receive buffer of 64 bytes; dropped") == 1,
	      "the frame too big for the receive buffer was logged");
	close(s);
	nt_teardown(&v);
	tap_delete();
}

/* A TAP that is not there is made, up, with a random local MAC; it goes
 * with the device. A bad name is refused with a reason. */
static void case_net_create(void)
{
	struct spk_virtio_net_config nc = {.slot = -1, .tap_fd = -1};
	struct spk_virtio_net *bad;
	char name[IFNAMSIZ];
	uint8_t mac[6];
	struct nt v;

	snprintf(name, sizeof(name), "spkc%u", (unsigned)getpid() % 1000000);
	net_on_tap(&v, &nc, name);
	CHECK(if_nametoindex(name) != 0, "TAP %s was made", name);
	CHECK(if_flags(name) & IFF_UP, "and is up");
	CHECK(strcmp(spk_virtio_net_ifname(v.net), name) == 0, "ifname %s",
	      spk_virtio_net_ifname(v.net));
	spk_virtio_net_mac(v.net, mac);
	CHECK((mac[0] & 3) == 2, "a local unicast MAC: %02x:...", mac[0]);
	nc.tap = "this-name-is-far-too-long";
	CHECK(spk_virtio_net_new(&nc, &bad) == -EINVAL, "a long name");
	CHECK(strstr(spk_last_error(), "is not a TAP name") != NULL, "%s", spk_last_error());
	nc.tap = name;
	CHECK(spk_virtio_net_new(&nc, &bad) == -EBUSY, "the TAP is taken");
	CHECK(strstr(spk_last_error(), "another process has it open") != NULL, "%s",
	      spk_last_error());
	printf("refused: %s\n", spk_last_error());
	nt_teardown(&v);
	CHECK(if_nametoindex(name) == 0, "TAP %s went with the device", name);
}

/* ---- virtio-vsock -----------------------------------------------------------------------------
 */

static char uds[64];

static void uds_cleanup(void)
{
	char p[128];

	unlink(uds);
	for (unsigned port = VD_HOST_PORT; port <= VD_OPEN_PORT; port++) {
		snprintf(p, sizeof(p), "%s_%u", uds, port);
		unlink(p);
	}
}

static void uds_init(void)
{
	snprintf(uds, sizeof(uds), "/tmp/spk-vsock-%u.sock", (unsigned)getpid());
	uds_cleanup();
	atexit(uds_cleanup);
}

static struct sockaddr_un uds_addr(unsigned port)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};

	if (port)
		snprintf(a.sun_path, sizeof(a.sun_path), "%s_%u", uds, port);
	else
		snprintf(a.sun_path, sizeof(a.sun_path), "%s", uds);
	return a;
}

/* A host program listening on uds_path_PORT. */
static int uds_listen(unsigned port)
{
	struct sockaddr_un a = uds_addr(port);
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	CHECK(s >= 0 && bind(s, (struct sockaddr *)&a, sizeof(a)) == 0 && listen(s, 16) == 0,
	      "listening on %s: %s", a.sun_path, strerror(errno));
	return s;
}

/* A blocking socket that gives up after 60 s of silence. */
static int patient(int s)
{
	struct timeval tv = {.tv_sec = 60};

	CHECK(s >= 0, "socket: %s", strerror(errno));
	setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	return s;
}

static void read_all(int s, uint8_t *buf, size_t n)
{
	for (size_t got = 0; got < n;) {
		ssize_t r = read(s, buf + got, n - got);

		CHECK(r > 0, "read %zu of %zu bytes, then %zd: %s", got, n, r,
		      r < 0 ? strerror(errno) : "EOF");
		got += (size_t)r;
	}
}

static void write_all(int s, const uint8_t *buf, size_t n)
{
	for (size_t done = 0; done < n;) {
		ssize_t w = write(s, buf + done, n - done);

		CHECK(w > 0, "write: %s", strerror(errno));
		done += (size_t)w;
	}
}

static void expect_eof(int s, const char *what)
{
	uint8_t b;
	ssize_t r = read(s, &b, 1);

	CHECK(r == 0, "%s: expected EOF, read %zd (%s)", what, r, r < 0 ? strerror(errno) : "data");
}

/* Guest to host: the program at uds_path_5000 takes VD_TO_HOST bytes,
 * answers VD_FROM_HOST, and closes. */
static void *g2h_main(void *p)
{
	int l = *(int *)p, s = patient(accept4(l, NULL, NULL, SOCK_CLOEXEC));
	uint8_t *buf = malloc(VD_TO_HOST);

	read_all(s, buf, VD_TO_HOST);
	for (uint32_t i = 0; i < VD_TO_HOST; i++)
		CHECK(buf[i] == vd_to_host(i), "byte %u from the guest: 0x%x", i, buf[i]);
	for (uint32_t i = 0; i < VD_FROM_HOST; i++)
		buf[i] = vd_from_host(i);
	write_all(s, buf, VD_FROM_HOST);
	close(s);
	free(buf);
	return NULL;
}

static int uds_connect(const char *line)
{
	struct sockaddr_un a = uds_addr(0);
	int s = patient(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));

	CHECK(connect(s, (struct sockaddr *)&a, sizeof(a)) == 0, "connect %s: %s", a.sun_path,
	      strerror(errno));
	if (line)
		write_all(s, (const uint8_t *)line, strlen(line));
	return s;
}

/* "OK <port>\n", read a byte at a time: the port. */
static unsigned read_ok(int s)
{
	char line[32];
	unsigned port = 0;
	size_t n = 0;

	while (n < sizeof(line) - 1) {
		CHECK(read(s, line + n, 1) == 1, "reading the OK line: %s", strerror(errno));
		if (line[n++] == '\n')
			break;
	}
	line[n] = '\0';
	CHECK(sscanf(line, "OK %u\n", &port) == 1, "not an OK line: '%s'", line);
	return port;
}

struct h2g {
	unsigned port; /* from the OK line */
};

/* Host to guest: a port nobody listens on, a bad line, then an echo. */
static void *h2g_main(void *p)
{
	struct h2g *h = p;
	uint8_t *buf = malloc(VD_ECHO);
	char line[32];
	int s;

	s = uds_connect("CONN"); /* a line in two pieces */
	usleep(50000);
	write_all(s, (const uint8_t *)"ECT 7000\n", 9);
	expect_eof(s, "a port nobody listens on in the guest");
	close(s);
	s = uds_connect("HELLO 6000\n");
	expect_eof(s, "not a CONNECT line");
	close(s);
	snprintf(line, sizeof(line), "connect %u\n", VD_GUEST_PORT);
	s = uds_connect(line);
	h->port = read_ok(s);
	for (uint32_t i = 0; i < VD_ECHO; i++)
		buf[i] = vd_echo(i);
	write_all(s, buf, VD_ECHO);
	read_all(s, buf, VD_ECHO);
	for (uint32_t i = 0; i < VD_ECHO; i++)
		CHECK(buf[i] == (vd_echo(i) ^ 0x5a), "echoed byte %u: 0x%x", i, buf[i]);
	expect_eof(s, "after the guest's SHUTDOWN");
	close(s);
	free(buf);
	return NULL;
}

static void add_vsock(struct nt *v, uint32_t max_conns)
{
	const struct spk_virtio_vsock_config vc = {.pci = v->pci,
	                                           .slot = -1,
	                                           .mem = spk_vm_mem(v->t.vm),
	                                           .loop = v->loop,
	                                           .guest_cid = VD_CID,
	                                           .uds_path = uds,
	                                           .max_conns = max_conns};

	CHECK_OK(spk_virtio_vsock_new(&vc, &v->vsock));
	CHECK_OK(spk_evloop_start(v->loop));
}

static struct spk_virtio_vsock_stats vsock_idle_stats(struct nt *v)
{
	struct spk_virtio_vsock_stats st;

	for (int i = 0; i < 100; i++) { /* the last RST may still be on its way */
		spk_virtio_vsock_get_stats(v->vsock, &st);
		if (st.open == 0)
			break;
		usleep(10000);
	}
	return st;
}

static void case_vsock(void)
{
	pthread_t g2h, h2g;
	struct h2g hg = {0};
	struct nt v;
	int l;

	uds_init();
	l = uds_listen(VD_HOST_PORT);
	nt_setup(&v, "t_virtio_vsock");
	add_vsock(&v, 0);
	CHECK(pthread_create(&g2h, NULL, g2h_main, &l) == 0, "thread");
	run_to_sync(&v, 2);
	CHECK(pthread_create(&h2g, NULL, h2g_main, &hg) == 0, "thread");
	uint64_t port = run_to_sync(&v, 3); /* the host port the guest saw */
	th_run_to_done(&v.t);
	pthread_join(g2h, NULL);
	pthread_join(h2g, NULL);
	CHECK_EQ(hg.port, port); /* the OK line names it */
	struct spk_virtio_vsock_stats st = vsock_idle_stats(&v);
	printf("stats: %llu opened, %llu refused, %llu bytes to the guest, %llu from it; "
	       "host port %u\n",
	       (unsigned long long)st.opened, (unsigned long long)st.refused,
	       (unsigned long long)st.rx_bytes, (unsigned long long)st.tx_bytes, hg.port);
	CHECK_EQ(st.rx_bytes, VD_FROM_HOST + VD_ECHO);
	CHECK_EQ(st.tx_bytes, VD_TO_HOST + VD_ECHO);
	CHECK_EQ(st.opened, 3); /* to 5000, to 7000 (refused by the guest), to 6000 */
	CHECK_EQ(st.open, 0);
	CHECK(v.log.n == 0, "no warnings, got: %s", v.log.line[0]);
	close(l);
	nt_teardown(&v);
	CHECK(access(uds, F_OK) != 0, "%s was removed", uds);
}

/* The host programs of the hostile guest: accept, never read. */
struct keeper {
	int l[2];
	int fds[32];
	unsigned n;
	atomic_bool stop;
};

static void *keeper_main(void *p)
{
	struct keeper *k = p;

	while (!atomic_load(&k->stop)) {
		struct pollfd pf[2] = {{.fd = k->l[0], .events = POLLIN},
		                       {.fd = k->l[1], .events = POLLIN}};
		if (poll(pf, 2, 50) <= 0)
			continue;
		for (int i = 0; i < 2; i++)
			if ((pf[i].revents & POLLIN) && k->n < SPK_ARRAY_SIZE_T(k->fds))
				k->fds[k->n++] = accept4(k->l[i], NULL, NULL, SOCK_CLOEXEC);
	}
	return NULL;
}

static void case_vsock_hostile(void)
{
	static const char *const once[] = {
	    "a packet of type 1, operation 99",
	    "a packet of type 2, operation 1",
	    "a packet from CID 99",
	    "too many connections (the limit is 4): refused one to port 5002",
	    "too many connections (the limit is 4): refused one from the host",
	    "beyond the credit",
	    "queue 1: packet of 20 bytes is shorter than the 44-byte header; device needs reset",
	    "claims 100 bytes of data and carries 0 (at most 65536); device needs reset",
	    "has 1 device-writable buffers; device needs reset",
	    "queue 0: receive chain 0 has 1 device-readable buffers",
	};
	struct keeper k = {0};
	pthread_t kt;
	struct nt v;

	uds_init();
	k.l[0] = uds_listen(VD_SILENT_PORT);
	k.l[1] = uds_listen(VD_OPEN_PORT);
	CHECK(pthread_create(&kt, NULL, keeper_main, &k) == 0, "thread");
	nt_setup(&v, "t_virtio_vsock_hostile");
	add_vsock(&v, VD_MAX_CONNS);
	run_to_sync(&v, 2);
	int s = uds_connect(NULL);
	uint8_t b;
	if (send(s, "CONNECT 9\n", 10, MSG_NOSIGNAL) < 0)
		CHECK(errno == EPIPE || errno == ECONNRESET, "send: %s", strerror(errno));
	ssize_t r = read(s, &b, 1); /* hung up on, maybe with our line unread: EOF or a reset */
	CHECK(r == 0 || (r < 0 && errno == ECONNRESET), "over the limit: read %zd (%s)", r,
	      r < 0 ? strerror(errno) : "data");
	close(s);
	th_run_to_done(&v.t);
	atomic_store(&k.stop, true);
	pthread_join(kt, NULL);
	for (size_t i = 0; i < SPK_ARRAY_SIZE_T(once); i++)
		CHECK(log_count(&v, once[i]) == 1, "one line with '%s', got %u", once[i],
		      log_count(&v, once[i]));
	struct spk_virtio_vsock_stats st = vsock_idle_stats(&v);
	CHECK(st.refused >= 1, "the connection over the limit was refused");
	CHECK_EQ(st.open, 0);
	nt_teardown(&v);
	for (unsigned i = 0; i < k.n; i++)
		close(k.fds[i]);
	close(k.l[0]);
	close(k.l[1]);
}

/* CPU seconds the event loop's thread ("virtio") has used so far. */
static double loop_cpu(void)
{
	char path[300], buf[512], comm[32];
	double total = 0;
	bool found = false;
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;

	CHECK(d != NULL, "/proc/self/task: %s", strerror(errno));
	while ((e = readdir(d))) {
		snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
		FILE *f = fopen(path, "r");
		if (!f)
			continue;
		bool loop = fgets(comm, sizeof(comm), f) && strcmp(comm, "virtio\n") == 0;
		fclose(f);
		snprintf(path, sizeof(path), "/proc/self/task/%s/stat", e->d_name);
		if (!loop || !(f = fopen(path, "r")))
			continue;
		found = true;
		unsigned long ut = 0, st = 0;
		if (fgets(buf, sizeof(buf), f)) {
			char *p = strrchr(buf, ')'); /* fields 14, 15 after the name */
			if (p)
				sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
				       &ut, &st);
		}
		fclose(f);
		total += (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
	}
	closedir(d);
	CHECK(found, "no thread named virtio");
	return total;
}

/* The host end of a "TAP" that is a socket pair: frames behind a 12-byte header. */
static int pair_receive(int s, int timeout_ms)
{
	uint8_t f[NF_HDR + 2048];
	struct pollfd p = {.fd = s, .events = POLLIN};

	if (poll(&p, 1, timeout_ms) <= 0)
		return -1;
	ssize_t n = read(s, f, sizeof(f));
	CHECK(n >= NF_HDR, "a frame of %zd bytes", n);
	for (int i = 0; i < NF_HDR; i++)
		CHECK(f[i] == 0, "the header the device writes is all zeros: byte %d is 0x%x", i,
		      f[i]);
	int seq = nf_parse(f + NF_HDR, (uint32_t)(n - NF_HDR), nf_broadcast, NF_TO_HOST);
	CHECK(seq >= 0, "a bad frame of %zd bytes", n);
	return seq;
}

static void pair_send(int s, unsigned seq)
{
	uint8_t f[NF_HDR + 2048] = {0};
	uint32_t n = nf_frame(f + NF_HDR, (const uint8_t[6]){0x02, 0, 0, 0, 0, 0x99}, nf_guest_mac,
	                      NF_TO_GUEST, seq);

	CHECK(write(s, f, NF_HDR + n) == (ssize_t)(NF_HDR + n), "write: %s", strerror(errno));
}

/* The rest of t_virtio_net on a socket pair: the host's 64 frames to the
 * guest, the guest to its end; every frame counted both ways, none dropped. */
static void pair_finish(struct nt *v, int peer, struct spk_virtio_net_stats *st)
{
	for (unsigned i = 0; i < 64; i++)
		pair_send(peer, i);
	th_run_to_done(&v->t);
	spk_virtio_net_get_stats(v->net, st);
	CHECK_EQ(st->tx_frames, 64);
	CHECK_EQ(st->rx_frames, 64);
	CHECK_EQ(st->tx_dropped + st->rx_dropped, 0);
}

struct slow_reader {
	int s;
	double loop_cpu; /* while the "TAP" was full */
};

/* Leaves the device facing a full "TAP" for a while, then takes all 64 frames. */
static void *slow_reader_main(void *p)
{
	struct slow_reader *r = p;
	double before;

	usleep(300000); /* the device fills the socket and waits for EPOLLOUT */
	before = loop_cpu();
	usleep(500000);
	r->loop_cpu = loop_cpu() - before;
	for (int i = 0; i < 64; i++)
		CHECK_EQ(pair_receive(r->s, 10000), i);
	return NULL;
}

/* A "TAP" that is a socket pair with a tiny buffer: the device must wait
 * for room (EPOLLOUT) without spinning or losing a frame. */
static void case_net_backpressure(void)
{
	struct spk_virtio_net_config nc = {.slot = -1, .has_mac = true};
	struct slow_reader r;
	struct spk_virtio_net_stats st;
	int sv[2], small = 4096;
	pthread_t thr;
	struct nt v;

	CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0, "socketpair");
	CHECK(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)) == 0, "SO_SNDBUF");
	net_on_pair(&v, &nc, sv[0]);
	r = (struct slow_reader){.s = sv[1]};
	CHECK(pthread_create(&thr, NULL, slow_reader_main, &r) == 0, "thread");
	run_to_sync(&v, 2);
	pthread_join(thr, NULL);
	printf("the loop used %.3f s of CPU in 0.5 s facing a full socket\n", r.loop_cpu);
	CHECK(r.loop_cpu < 0.1, "the loop spun while the socket was full: %.3f s", r.loop_cpu);
	pair_finish(&v, sv[1], &st);
	CHECK(v.log.n == 0, "no warnings, got: %s", v.log.line[0]);
	nt_teardown(&v); /* closes sv[0] */
	close(sv[1]);
}

static uint64_t mono_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

struct timed_reader {
	int s;
	uint64_t at[64]; /* when frame i arrived */
};

static void *timed_reader_main(void *p)
{
	struct timed_reader *r = p;

	for (int i = 0; i < 64; i++) {
		CHECK_EQ(pair_receive(r->s, 30000), i);
		r->at[i] = mono_ns();
	}
	return NULL;
}

/* Rate limits on both directions (Firecracker's rx/tx_rate_limiter): the
 * guest's 64 frames leave no faster than the transmit buckets allow, the
 * host's 64 reach the guest all the same, nothing is dropped, and both
 * limiters report that they throttled. The check is a bound that a slow
 * machine only makes easier: frame k is out no earlier than the buckets
 * (full from before the device existed) could have paid for it. */
static void case_net_rate_limit(void)
{
	struct spk_virtio_net_config nc = {
	    .slot = -1,
	    .has_mac = true,
	    .tx_rate_limit = {.ops = {8, 4, 40}},                             /* 200 frames/s */
	    .rx_rate_limit = {.ops = {8, 0, 40}, .bandwidth = {16 << 10, 0, 40}}, /* 400 KiB/s */
	};
	struct spk_virtio_net_stats st;
	struct timed_reader r = {0};
	uint64_t start = mono_ns();
	pthread_t thr;
	int sv[2];
	struct nt v;

	CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0, "socketpair");
	net_on_pair(&v, &nc, sv[0]);
	r.s = sv[1];
	CHECK(pthread_create(&thr, NULL, timed_reader_main, &r) == 0, "thread");
	run_to_sync(&v, 2);
	pthread_join(thr, NULL);
	for (unsigned k = 0; k < 64; k++) {
		/* size 8 + burst 4 + one in flight + 8 per 40 ms since start */
		uint64_t paid = 8 + 4 + 1 + (r.at[k] - start) * 8 / 40000000ull;

		CHECK(k + 1 <= paid, "frame %u left %.1f ms after the start: faster than the limit",
		      k, (double)(r.at[k] - start) / 1e6);
	}
	printf("64 frames out in %.1f ms (the limit allows them no sooner than %.1f ms)\n",
	       (double)(r.at[63] - start) / 1e6, (64.0 - 13) * 40 / 8);
	pair_finish(&v, sv[1], &st);
	CHECK_EQ(st.tx_rate.ops, 64);
	CHECK_EQ(st.rx_rate.ops, 64);
	CHECK(st.tx_rate.throttled > 0, "the transmit limiter never throttled");
	CHECK(st.rx_rate.throttled > 0, "the receive limiter never throttled");
	CHECK(v.log.n == 0, "no warnings, got: %s", v.log.line[0]);
	nt_teardown(&v); /* closes sv[0] */
	close(sv[1]);
}

/* The TAP is deleted under a device: the loop does not spin on the error
 * the TAP reports from then on (logged once, when it is noticed). */
static void case_net_gone(void)
{
	struct spk_virtio_net_config nc = {.slot = -1, .tap_fd = -1};
	char name[IFNAMSIZ], cmd[64];
	struct rusage a, b;
	struct nt v;

	snprintf(name, sizeof(name), "spkg%u", (unsigned)getpid() % 1000000);
	net_on_tap(&v, &nc, name);
	CHECK_OK(spk_evloop_start(v.loop));
	snprintf(cmd, sizeof(cmd), "ip link del %s", name);
	CHECK(system(cmd) == 0, "%s", cmd);
	usleep(200000);
	getrusage(RUSAGE_SELF, &a);
	usleep(500000);
	getrusage(RUSAGE_SELF, &b);
	double cpu = (double)(b.ru_utime.tv_sec - a.ru_utime.tv_sec + b.ru_stime.tv_sec -
	                      a.ru_stime.tv_sec) +
	             (double)(b.ru_utime.tv_usec - a.ru_utime.tv_usec + b.ru_stime.tv_usec -
	                      a.ru_stime.tv_usec) /
	                 1e6;
	printf("CPU in 0.5 s after the TAP went: %.3f s\n", cpu);
	CHECK(cpu < 0.1, "the loop spins: %.3f s of CPU in 0.5 s", cpu);
	CHECK(log_count(&v, "no more frames in either direction") <= 1, "at most one line");
	nt_teardown(&v);
}

/* Firecracker's `mtu` on a TAP the device opens by name: the TAP gets it
 * (SIOCSIFMTU, read back from sysfs). */
static void case_net_mtu(void)
{
	struct spk_virtio_net_config nc = {.slot = -1, .tap_fd = -1, .mtu = 1280, .has_mac = true};
	char name[IFNAMSIZ], path[96], got[16] = "";
	struct nt v;
	FILE *fp;

	snprintf(name, sizeof(name), "spkm%u", (unsigned)getpid() % 1000000);
	memcpy(nc.mac, nf_guest_mac, 6);
	net_on_tap(&v, &nc, name);
	snprintf(path, sizeof(path), "/sys/class/net/%s/mtu", name);
	CHECK((fp = fopen(path, "r")) != NULL, "%s: %s", path, strerror(errno));
	CHECK(fgets(got, sizeof(got), fp) != NULL, "%s is empty", path);
	fclose(fp);
	CHECK(atoi(got) == 1280, "the TAP's MTU is %s, not 1280", got);
	nt_teardown(&v);
}

/* ------------------------------------------------------------------------------------------- */

static const struct th_case cases[] = {
    {"net", case_net},
    {"net_hostile", case_net_hostile},
    {"net_create", case_net_create},
    {"net_gone", case_net_gone},
    {"net_backpressure", case_net_backpressure},
    {"net_rate_limit", case_net_rate_limit},
    {"net_mtu", case_net_mtu},
    {"vsock", case_vsock},
    {"vsock_hostile", case_vsock_hostile},
};

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN); /* a peer that hangs up fails a CHECK, not the process */
	return th_main(argc, argv, cases, SPK_ARRAY_SIZE_T(cases));
}
