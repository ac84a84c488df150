/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Guest tests of PCI and virtio: guest-SDK programs (guest/tests/virtio_*.c,
 * eventfd.c) drive the real devices through the guest's virtio-PCI driver,
 * in a VM with KVM's irqchip, the PCI host, an event loop thread and
 * virtio-rng and virtio-console. Usage: virtio_tests CASE. Exit status 77
 * (skip) where /dev/kvm is not usable.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <sparkler/evloop.h>
#include <sparkler/pci.h>
#include <sparkler/platform.h>
#include <sparkler/virtio.h>

#include "harness.h"

/* ---- the VM ------------------------------------------------------------------------- */


/* The PCI host's INTx lines, passed on to KVM and watched: rising edges and the level. */
struct intx_watch {
	struct spk_irq_line kvm;
	atomic_uint raised;
	atomic_bool level;
	atomic_uint gsi; /* of the last change */
};

static void intx_set(void *ctx, uint32_t gsi, bool level)
{
	struct intx_watch *w = ctx;

	atomic_store(&w->gsi, gsi);
	if (level && !atomic_exchange(&w->level, true))
		atomic_fetch_add(&w->raised, 1);
	else if (!level)
		atomic_store(&w->level, false);
	w->kvm.set(w->kvm.ctx, gsi, level);
}

struct vt {
	struct th t;
	struct spk_evloop *loop;
	struct spk_pci_host *pci;
	struct spk_virtio_rng *rng;
	struct spk_virtio_console *con;
	struct intx_watch intx;

	pthread_mutex_t lock; /* out */
	pthread_cond_t cond;
	char out[8192];
	size_t out_len;
	struct th_log log;
};

static void console_out(void *ctx, const uint8_t *buf, size_t n)
{
	struct vt *v = ctx;

	pthread_mutex_lock(&v->lock);
	if (n > sizeof(v->out) - 1 - v->out_len)
		n = sizeof(v->out) - 1 - v->out_len;
	memcpy(v->out + v->out_len, buf, n);
	v->out_len += n;
	pthread_cond_broadcast(&v->cond);
	pthread_mutex_unlock(&v->lock);
}

static void vt_setup(struct vt *v, const char *guest, bool rng, bool con)
{
	const struct th_opts o = {.irqchip = SPK_IRQCHIP_KERNEL};

	memset(v, 0, sizeof(*v));
	pthread_mutex_init(&v->lock, NULL);
	pthread_cond_init(&v->cond, NULL);
	th_log_capture(&v->log, SPK_LOG_WARN);
	th_setup(&v->t, guest, &o);
	v->intx.kvm = spk_vm_irq(v->t.vm, SPK_PC_PCI_INTX_GSI);
	CHECK_OK(spk_evloop_new("virtio", &v->loop));
	struct spk_pci_host_config hc = spk_pc_pci_host_config(v->t.vm);
	hc.intx = (struct spk_irq_line){.set = intx_set, .ctx = &v->intx, .gsi = SPK_PC_PCI_INTX_GSI};
	CHECK_OK(spk_pci_host_new(&hc, &v->pci));
	struct spk_mem *mem = spk_vm_mem(v->t.vm);
	if (rng) {
		const struct spk_virtio_rng_config rc = {
		    .pci = v->pci, .slot = -1, .mem = mem, .loop = v->loop};
		CHECK_OK(spk_virtio_rng_new(&rc, &v->rng));
	}
	if (con) {
		const struct spk_virtio_console_config cc = {.pci = v->pci,
		                                             .slot = -1,
		                                             .mem = mem,
		                                             .loop = v->loop,
		                                             .output = console_out,
		                                             .output_ctx = v};
		CHECK_OK(spk_virtio_console_new(&cc, &v->con));
	}
	CHECK_OK(spk_evloop_start(v->loop));
}

static void vt_teardown(struct vt *v)
{
	spk_evloop_stop(v->loop);
	spk_virtio_rng_free(v->rng);
	spk_virtio_console_free(v->con);
	spk_pci_host_free(v->pci);
	spk_evloop_free(v->loop);
	th_teardown(&v->t);
	th_log_stop(&v->log);
	pthread_cond_destroy(&v->cond);
	pthread_mutex_destroy(&v->lock);
}


static void print_stats(struct vt *v)
{
	struct spk_vcpu_stats st;

	spk_vcpu_get_stats(v->t.vcpu, &st);
	printf("exits: MMIO %llu, PIO %llu, HYPERCALL %llu\n",
	       (unsigned long long)st.count[SPK_EXIT_MMIO],
	       (unsigned long long)st.count[SPK_EXIT_PIO],
	       (unsigned long long)st.count[SPK_EXIT_HYPERCALL]);
}

/* ---- entropy ------------------------------------------------------------------------- */

static void case_rng(void)
{
	struct vt v;

	vt_setup(&v, "t_virtio_rng", true, true);
	th_run_to_done(&v.t);
	CHECK_EQ(spk_virtio_rng_bytes(v.rng), 2 * 4 * 256);
	CHECK(v.log.n == 0, "no warnings, got: %s", v.log.line[0]);
	print_stats(&v);
	vt_teardown(&v);
}

/* ---- console ------------------------------------------------------------------------- */

/* Waits for the guest's hello, then types the answer in two pieces. */
static void *typist(void *p)
{
	struct vt *v = p;
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 60;
	pthread_mutex_lock(&v->lock);
	while (!strstr(v->out, "hello from hvc0\n"))
		if (pthread_cond_timedwait(&v->cond, &v->lock, &until) == ETIMEDOUT)
			break;
	pthread_mutex_unlock(&v->lock);
	CHECK_EQ(spk_virtio_console_input(v->con, (const uint8_t *)"ping ", 5), 5);
	usleep(10000);
	CHECK_EQ(spk_virtio_console_input(v->con, (const uint8_t *)"from host\n", 10), 10);
	return NULL;
}

static void case_console(void)
{
	pthread_t thr;
	struct vt v;

	vt_setup(&v, "t_virtio_console", false, true);
	CHECK(pthread_create(&thr, NULL, typist, &v) == 0, "thread");
	th_run_to_done(&v.t);
	pthread_join(thr, NULL);
	CHECK(strcmp(v.out, "hello from hvc0\necho: ping from host\n") == 0, "console got '%s'",
	      v.out);
	CHECK(v.log.n == 0, "no warnings, got: %s", v.log.line[0]);
	vt_teardown(&v);
}

/* ---- hostile guests ---------------------------------------------------------------------- */

static void run_hostile(uint64_t which, const char *why)
{
	struct spk_exit e;
	struct vt v;

	vt_setup(&v, "t_virtio_hostile", true, true);
	th_run(&v.t, &e);
	struct spk_ucall uc = th_expect_ucall(&v.t, &e, SPK_UCALL_SYNC);
	CHECK_EQ(uc.args[0], 1);
	CHECK_OK(spk_exit_complete_read(&e, which));
	th_run_to_done(&v.t);
	const char *const want[] = {"virtio-rng (00:0", "queue 0", why, "needs reset", NULL};
	CHECK(th_log_count(&v.log, want) == 1,
	      "one log line naming the device, queue 0 and '%s'; "
	      "got %u lines, the first: %s",
	      why, v.log.n, v.log.line[0]);
	CHECK(v.log.n == 1, "only that line, got %u", v.log.n);
	CHECK(strcmp(v.out, "console ok\n") == 0, "the console still works: '%s'", v.out);
	CHECK_EQ(spk_virtio_rng_bytes(v.rng), 64); /* after the reset */
	printf("logged: %s\n", v.log.line[0]);
	vt_teardown(&v);
}

static void case_hostile_loop(void)
{
	run_hostile(1, "longer than the queue size 8");
}

static void case_hostile_head(void)
{
	run_hostile(2, "head index 300 is beyond the queue size 8");
}

static void case_hostile_next(void)
{
	run_hostile(3, "next index 200 is beyond the queue size 8");
}

static void case_hostile_outside_ram(void)
{
	run_hostile(4, "descriptor 0: writable buffer 0x80000000+0x40 is outside guest RAM");
}

static void case_hostile_wraps(void)
{
	run_hostile(5, "0xfffffffffffff000+0x2000 wraps around");
}

static void case_hostile_too_long(void)
{
	run_hostile(6, "indirect table of 12 descriptors is longer than the queue size 8");
}

static void case_hostile_nested(void)
{
	run_hostile(7, "nested tables");
}

/* ---- the guest moves a BAR ------------------------------------------------------------------ */

static uint64_t mmio_exits(struct vt *v)
{
	struct spk_vcpu_stats st;

	spk_vcpu_get_stats(v->t.vcpu, &st);
	return st.count[SPK_EXIT_MMIO];
}

/* Between SYNC stage and stage + 1 the guest kicked 100 times. */
static void count_kicks(struct vt *v, uint64_t stage)
{
	struct spk_exit e;

	th_run(&v->t, &e);
	CHECK_EQ(th_expect_ucall(&v->t, &e, SPK_UCALL_SYNC).args[0], stage);
	uint64_t before = mmio_exits(v);
	th_run(&v->t, &e);
	CHECK_EQ(th_expect_ucall(&v->t, &e, SPK_UCALL_SYNC).args[0], stage + 1);
	uint64_t exits = mmio_exits(v) - before;
	printf("100 kicks: %llu MMIO exits\n", (unsigned long long)exits);
	CHECK(exits < 10, "the kicks went through the ioeventfd: %llu MMIO exits",
	      (unsigned long long)exits);
}

static void case_bar_move(void)
{
	struct vt v;

	vt_setup(&v, "t_virtio_bar", true, false);
	count_kicks(&v, 1);
	count_kicks(&v, 3);
	th_run_to_done(&v.t);
	const char *const want[] = {"virtio-rng (00:01.0)", "BAR 0 at 0x10000000", "outside", NULL};
	CHECK(th_log_count(&v.log, want) == 1, "the refused BAR was logged: %s", v.log.line[0]);
	CHECK_EQ(spk_virtio_rng_bytes(v.rng), 3 * 64);
	vt_teardown(&v);
}

/* ---- MSI-X through KVM --------------------------------------------------------------------- */

static void case_msix(void)
{
	struct vt v;

	vt_setup(&v, "t_virtio_irq", true, false);
	th_run_to_done(&v.t);
	const char *const want[] = {"virtio-rng", "0x80000000+0x8", "needs reset", NULL};
	CHECK(th_log_count(&v.log, want) == 1, "the violation was logged: %s", v.log.line[0]);
	print_stats(&v);
	vt_teardown(&v);
}

/* ---- legacy INTx through the IOAPIC ---------------------------------------------------------- */

/* At the guest's SYNC stage (windows, SYNC 50, skipped): the line's rising edges so far
 * and its level now; returns the guest's value. */
static uint64_t intx_at(struct vt *v, uint64_t stage, unsigned raised, bool level)
{
	struct spk_exit e;
	struct spk_ucall uc;

	do {
		th_run(&v->t, &e);
		uc = th_expect_ucall(&v->t, &e, SPK_UCALL_SYNC);
	} while (uc.args[0] == 50 && stage != 50);
	CHECK_EQ(uc.args[0], stage);
	CHECK_EQ(atomic_load(&v->intx.raised), raised);
	CHECK_EQ(atomic_load(&v->intx.level), level);
	return uc.args[1];
}

/*
 * virtio-rng without MSI-X (guest/tests/virtio_intx.c): INTA on the GSI the
 * _PRT names, level triggered and active low at the IOAPIC; the line is low
 * once the guest has read the ISR; an EOI before the ISR read gets exactly
 * one more interrupt; a request under a masked pin raises the line and is
 * delivered on unmask. Handler calls per request: 1 on KVM; on PVM one
 * more, with an empty ISR: PVM EOIs a level interrupt as it injects it (a
 * kvm_eoi trace event with no guest EOI write, measured), so the IOAPIC
 * sends it again while the line is still up, before the handler has read
 * the ISR. Any other count (a storm, a lost interrupt) fails the test.
 */
static void case_intx(void)
{
	struct vt v;
	const uint64_t per = strcmp(spk_host_kvm_kind(), "pvm") == 0 ? 2 : 1;

	vt_setup(&v, "t_virtio_intx", true, false);
	uint64_t gsi = intx_at(&v, 1, 0, false);
	CHECK(gsi >= SPK_PC_PCI_INTX_GSI && gsi < SPK_PC_PCI_INTX_GSI + SPK_PCI_INTX_LINES,
	      "guest's GSI %llu", (unsigned long long)gsi);
	/* one request */
	CHECK_EQ(intx_at(&v, 2, 1, false), per);
	/* on the pin the guest programmed */
	CHECK_EQ(atomic_load(&v.intx.gsi), gsi);
	/* EOI before the ISR read: once more, while the line is up */
	CHECK_EQ(intx_at(&v, 3, 2, false), 2 * per + 1);
	/* masked: the line up, nothing delivered */
	CHECK_EQ(intx_at(&v, 4, 3, true), 2 * per + 1);
	/* unmasked: delivered, the line low */
	CHECK_EQ(intx_at(&v, 5, 3, false), 3 * per + 1);
	th_run_to_done(&v.t);
	CHECK_EQ(atomic_load(&v.intx.raised), 3);
	CHECK(!atomic_load(&v.intx.level), "the line is low at the end");
	CHECK_EQ(spk_virtio_rng_bytes(v.rng), 3 * 32);
	CHECK(v.log.n == 0, "no warnings, got: %s", v.log.line[0]);
	print_stats(&v);
	vt_teardown(&v);
}

/* ---- the KVM glue alone ---------------------------------------------------------------------- */

struct sink {
	unsigned writes;
	uint64_t addr, value;
};

static void sink_write(void *opaque, uint64_t off, unsigned width, uint64_t value,
                       const struct spk_bus_access *who)
{
	struct sink *s = opaque;

	s->writes++;
	s->addr = who->addr;
	s->value = value;
}

static const struct spk_bus_ops sink_ops = {.write = sink_write};

static uint64_t efd_count(int fd)
{
	uint64_t n = 0;

	if (read(fd, &n, sizeof(n)) != sizeof(n))
		return 0; /* EAGAIN: zero */
	return n;
}

static void expect_sync(struct th *t, struct spk_exit *e, uint64_t stage)
{
	th_run(t, e);
	struct spk_ucall uc = th_expect_ucall(t, e, SPK_UCALL_SYNC);
	CHECK_EQ(uc.args[0], stage);
}

static void glue_errors(struct spk_vm *vm, int fd)
{
	struct spk_ioeventfd bad = {.space = SPK_BUS_PIO, .addr = 0x710, .len = 3, .fd = fd};
	uint32_t gsi;

	CHECK(spk_vm_ioeventfd_add(vm, &bad) == -EINVAL, "length 3");
	bad = (struct spk_ioeventfd){.space = SPK_BUS_SYSREG, .addr = 0x10, .len = 4, .fd = fd};
	CHECK(spk_vm_ioeventfd_add(vm, &bad) == -EINVAL, "SYSREG");
	bad = (struct spk_ioeventfd){
	    .space = SPK_BUS_PIO, .addr = 0x710, .len = 1, .fd = fd, .match = true, .value = 0x100};
	CHECK(spk_vm_ioeventfd_add(vm, &bad) == -EINVAL, "match wider than the write");
	CHECK(spk_vm_msi_route_add(vm, &(struct spk_msi){.addr = 0x1000}, &gsi) == -EINVAL,
	      "not an MSI address");
	CHECK(strstr(spk_last_error(), "0x1000") != NULL, "names it: %s", spk_last_error());
	CHECK(spk_vm_msi_route_del(vm, 999) == -ENOENT, "no such route");
	CHECK(spk_vm_msi_route_set(vm, 5, &(struct spk_msi){.addr = 0xfee00000}) == -ENOENT,
	      "GSI 5 is the IOAPIC's");

	struct spk_vm *plain;
	CHECK_OK(spk_vm_create(NULL, &plain));
	CHECK(spk_vm_irqfd_add(plain, 30, fd) == -EINVAL, "irqfd without an irqchip");
	CHECK(strstr(spk_last_error(), "irqchip") != NULL, "says why: %s", spk_last_error());
	CHECK(spk_vm_signal_msi(plain, &(struct spk_msi){.addr = 0xfee00000}) == -EINVAL, "MSI");
	spk_vm_destroy(plain);
}

static void case_eventfd(void)
{
	const struct th_opts o = {.irqchip = SPK_IRQCHIP_KERNEL};
	struct sink ports = {0}, mmio = {0};
	struct spk_exit e;
	struct th t;
	int fd[5];

	for (int i = 0; i < 5; i++)
		CHECK((fd[i] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) >= 0, "eventfd");
	th_setup(&t, "t_eventfd", &o);
	CHECK_OK(spk_bus_register(spk_vm_bus(t.vm), SPK_BUS_PIO, 0x700, 4, "ports", &sink_ops,
	                          &ports, 0));
	CHECK_OK(spk_bus_register(spk_vm_bus(t.vm), SPK_BUS_MMIO, 0xd0000000, 0x1000, "mmio",
	                          &sink_ops, &mmio, 0));
	const struct spk_ioeventfd io[4] = {
	    {.space = SPK_BUS_PIO, .addr = 0x700, .len = 1, .fd = fd[0]},
	    {.space = SPK_BUS_PIO,
	     .addr = 0x702,
	     .len = 2,
	     .fd = fd[1],
	     .match = true,
	     .value = 0x5a5a},
	    {.space = SPK_BUS_MMIO, .addr = 0xd0000000, .len = 4, .fd = fd[2]},
	    {.space = SPK_BUS_MMIO,
	     .addr = 0xd0000010,
	     .len = 8,
	     .fd = fd[3],
	     .match = true,
	     .value = 0x0123456789abcdefull},
	};
	for (int i = 0; i < 4; i++)
		CHECK_OK(spk_vm_ioeventfd_add(t.vm, &io[i]));
	CHECK(spk_vm_ioeventfd_add(t.vm, &io[0]) == -EEXIST, "twice");
	glue_errors(t.vm, fd[4]);

	expect_sync(&t, &e, 1);
	CHECK_EQ(efd_count(fd[0]), 3);
	CHECK_EQ(efd_count(fd[1]), 2);
	CHECK_EQ(efd_count(fd[2]), 2);
	CHECK_EQ(efd_count(fd[3]), 1);
	CHECK_EQ(ports.writes, 1);
	CHECK_EQ(ports.addr, 0x702);
	CHECK_EQ(ports.value, 0x1111);
	CHECK_EQ(mmio.writes, 1);
	CHECK_EQ(mmio.addr, 0xd0000010);
	CHECK_EQ(mmio.value, 42);
	CHECK_OK(spk_vm_ioeventfd_del(t.vm, &io[0]));

	expect_sync(&t, &e, 2);
	CHECK_EQ(efd_count(fd[0]), 0);
	CHECK_EQ(ports.writes, 2);
	CHECK_EQ(ports.value, 9);

	expect_sync(&t, &e, 3);
	uint32_t gsi = 0;
	const uint64_t one = 1;
	CHECK_OK(
	    spk_vm_msi_route_add(t.vm, &(struct spk_msi){.addr = 0xfee00000, .data = 0x60}, &gsi));
	CHECK(gsi >= SPK_VM_FIRST_MSI_GSI, "an MSI GSI: %u", gsi);
	CHECK_OK(spk_vm_irqfd_add(t.vm, gsi, fd[4]));
	CHECK(write(fd[4], &one, sizeof(one)) == sizeof(one), "irqfd write");
	CHECK_OK(spk_vm_signal_msi(t.vm, &(struct spk_msi){.addr = 0xfee00000, .data = 0x61}));
	CHECK_OK(spk_vm_irq_line(t.vm, 20, true)); /* the default IOAPIC routes are still there */
	CHECK_OK(spk_vm_irq_line(t.vm, 20, false));

	expect_sync(&t, &e, 4);
	CHECK_OK(
	    spk_vm_msi_route_set(t.vm, gsi, &(struct spk_msi){.addr = 0xfee00000, .data = 0x63}));
	CHECK(write(fd[4], &one, sizeof(one)) == sizeof(one), "irqfd write");
	th_run_to_done(&t);
	CHECK_OK(spk_vm_irqfd_del(t.vm, gsi, fd[4]));
	CHECK_OK(spk_vm_msi_route_del(t.vm, gsi));
	th_teardown(&t);
	for (int i = 0; i < 5; i++)
		close(fd[i]);
}

/* ------------------------------------------------------------------------------------------- */

static const struct th_case cases[] = {
    {"rng", case_rng},
    {"console", case_console},
    {"hostile_loop", case_hostile_loop},
    {"hostile_head", case_hostile_head},
    {"hostile_next", case_hostile_next},
    {"hostile_outside_ram", case_hostile_outside_ram},
    {"hostile_wraps", case_hostile_wraps},
    {"hostile_too_long", case_hostile_too_long},
    {"hostile_nested", case_hostile_nested},
    {"msix", case_msix},
    {"intx", case_intx},
    {"bar_move", case_bar_move},
    {"eventfd", case_eventfd},
};

int main(int argc, char **argv)
{
	return th_main(argc, argv, cases, SPK_ARRAY_SIZE_T(cases));
}
