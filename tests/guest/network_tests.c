/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Guest tests of virtio-net: guest-SDK programs (guest/tests/virtio_net*.c)
 * drive the real device at CPL3 while this host side plays the network: a
 * TAP made here (persistent, IPv6 off so the kernel keeps quiet on it,
 * link down: the device brings it up), read and written through a packet
 * socket bound to it, and deleted at the end.
 *
 * Usage: network_tests CASE. Exit status 77 (skip) where /dev/kvm or
 * /dev/net/tun is not usable.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <linux/if_packet.h>
#include <linux/if_tun.h>
#include <net/ethernet.h>
#include <poll.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <sparkler/evloop.h>
#include <sparkler/pci.h>
#include <sparkler/platform.h>
#include <sparkler/virtio.h>
#include <sparkler/virtio_net.h>

#include "harness.h"

#include "../../guest/tests/net_frames.h"

#define SKIP 77

/* ---- the VM ------------------------------------------------------------------------------ */

#define LOG_LINES 64

struct nt {
	struct th t;
	struct spk_evloop *loop;
	struct spk_pci_host *pci;
	struct spk_virtio_net *net;

	pthread_mutex_t lock; /* log */
	char log[LOG_LINES][256];
	unsigned nlog;
};

static void capture(enum spk_log_level level, const char *msg, void *opaque)
{
	struct nt *v = opaque;

	fprintf(stderr, "log: %s\n", msg);
	pthread_mutex_lock(&v->lock);
	if (v->nlog < LOG_LINES)
		snprintf(v->log[v->nlog++], sizeof(v->log[0]), "%s", msg);
	pthread_mutex_unlock(&v->lock);
}

/* How many captured log lines contain s. */
static unsigned log_count(struct nt *v, const char *s)
{
	unsigned n = 0;

	pthread_mutex_lock(&v->lock);
	for (unsigned i = 0; i < v->nlog; i++)
		n += strstr(v->log[i], s) != NULL;
	pthread_mutex_unlock(&v->lock);
	return n;
}

static void nt_setup(struct nt *v, const char *guest)
{
	const struct th_opts o = {.irqchip = SPK_IRQCHIP_KERNEL};

	memset(v, 0, sizeof(*v));
	pthread_mutex_init(&v->lock, NULL);
	spk_log_set(capture, v, SPK_LOG_WARN);
	th_setup(&v->t, guest, &o);
	CHECK_OK(spk_evloop_new("virtio", &v->loop));
	const struct spk_pci_host_config hc = {
	    .bus = spk_vm_bus(v->t.vm),
	    .vm = v->t.vm,
	    .ecam = SPK_PC_PCI_ECAM,
	    .mmio_start = SPK_PC_PCI_MMIO_START,
	    .mmio_size = SPK_PC_PCI_MMIO_SIZE,
	    .intx = spk_vm_irq(v->t.vm, 16),
	};
	CHECK_OK(spk_pci_host_new(&hc, &v->pci));
}

static void nt_teardown(struct nt *v)
{
	spk_evloop_stop(v->loop);
	spk_virtio_net_free(v->net);
	spk_pci_host_free(v->pci);
	spk_evloop_free(v->loop);
	th_teardown(&v->t);
	spk_log_set(NULL, NULL, SPK_LOG_WARN);
	pthread_mutex_destroy(&v->lock);
}

/* Run to the guest's SYNC stage. */
static void run_to_sync(struct nt *v, uint64_t stage)
{
	struct spk_exit e;

	th_run(&v->t, &e);
	CHECK_EQ(th_expect_ucall(&v->t, &e, SPK_UCALL_SYNC).args[0], stage);
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
	int fd;

	if (!*tap_name || (fd = tun_attach(tap_name)) < 0)
		return;
	if (ioctl(fd, TUNSETPERSIST, 0) < 0)
		fprintf(stderr, "deleting TAP %s: %s\n", tap_name, strerror(errno));
	close(fd);
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
	CHECK(v.nlog == 0, "no warnings, got: %s", v.log[0]);
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
	nt_setup(&v, "t_virtio_net");
	nc.pci = v.pci;
	nc.mem = spk_vm_mem(v.t.vm);
	nc.loop = v.loop;
	nc.tap = name;
	int rc = spk_virtio_net_new(&nc, &v.net);
	if (rc == -EPERM || rc == -ENOENT || rc == -ENODEV || rc == -EACCES) {
		printf("SKIP: /dev/net/tun is not usable here: %s\n", spk_last_error());
		exit(SKIP);
	}
	CHECK_OK(rc);
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

/* ------------------------------------------------------------------------------------------- */

static const struct {
	const char *name;
	void (*fn)(void);
} cases[] = {
    {"net", case_net},
    {"net_hostile", case_net_hostile},
    {"net_create", case_net_create},
};

int main(int argc, char **argv)
{
	char why[256];

	if (argc != 2) {
		fprintf(stderr, "usage: %s CASE|--list\n", argv[0]);
		return 2;
	}
	if (strcmp(argv[1], "--list") == 0) {
		for (size_t i = 0; i < SPK_ARRAY_SIZE_T(cases); i++)
			printf("%s\n", cases[i].name);
		return 0;
	}
	for (size_t i = 0; i < SPK_ARRAY_SIZE_T(cases); i++) {
		if (strcmp(argv[1], cases[i].name) != 0)
			continue;
		if (!spk_kvm_usable(why, sizeof(why))) {
			printf("SKIP %s: KVM is not usable here: %s\n", cases[i].name, why);
			return SKIP;
		}
		printf("running %s on KVM kind '%s'\n", cases[i].name, spk_host_kvm_kind());
		cases[i].fn();
		printf("PASS %s (KVM kind '%s')\n", cases[i].name, spk_host_kvm_kind());
		return 0;
	}
	fprintf(stderr, "unknown case '%s'\n", argv[1]);
	return 2;
}
