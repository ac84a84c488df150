/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The Linux microVM: builds the VM from a spk_machine_config (memory, ACPI,
 * legacy devices, kernel, vCPUs), runs it, restarts it on reset when asked.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sparkler/acpi.h>
#include <sparkler/devices.h>
#include <sparkler/linux.h>
#include <sparkler/platform.h>
#include <sparkler/snapshot.h>
#include <sparkler/pci.h>
#include <sparkler/virtio.h>
#include <sparkler/virtio_balloon.h>
#include <sparkler/virtio_blk.h>
#include <sparkler/virtio_net.h>
#include <sparkler/virtio_vsock.h>

#include "mmds/stack.h"
#include "vmm/machine/machine.h"
#include "vmm/confine/seccomp_policy.h"

#define KERNEL_MAX (512ull << 20)
#define INITRD_MAX (2ull << 30)

/* One boot of the machine: a VM and its devices. */
struct vm_instance {
	struct spk_vm *vm;
	struct spk_uart *uart;
	struct spk_i8042 *kbd;
	struct spk_rtc *rtc;
	struct spk_pl031 *pl031; /* arm64's RTC */
	struct spk_acpi_pm *pm;
	struct spk_boot_timer *timer;
	struct spk_vmgenid *genid; /* the VM generation ID (ACPI \_SB.VGEN) */
	struct spk_cpu_policy cpu;
	atomic_uint holes_logged;
	/* PCI and virtio: the host bridge, the devices' event loop, the devices */
	struct spk_pci_host *pci;
	struct spk_evloop *loop;
	struct spk_virtio_rng *rng;
	struct spk_virtio_console *vcon;
	struct spk_virtio_blk *disks[SPK_MACHINE_MAX_DRIVES];
	struct spk_virtio_net *nets[SPK_MACHINE_MAX_NETS];
	struct spk_mmds_stack *mmds[SPK_MACHINE_MAX_NETS]; /* the nets' metadata service ends */
	struct spk_virtio_vsock *vsock;
	struct spk_virtio_balloon *balloon;
	struct spk_snap_devices *devs; /* every device's state, for snapshots */
};

/* A device as the bus sees it, with its accesses counted for the metrics;
 * the entry (found by name) outlives each boot's device. */
struct counted_dev {
	char name[SPK_BUS_NAME_MAX];
	struct spk_bus_ops shim;
	const struct spk_bus_ops *ops;
	void *dev;
	atomic_uint_least64_t reads, writes;
};

#define MAX_COUNTED_DEVS 32

struct spk_machine {
	struct spk_machine_config cfg;
	void *kernel, *initrd;
	size_t kernel_size, initrd_size;

	pthread_mutex_t lock; /* current, state */
	struct vm_instance *current;
	enum spk_machine_state state;
	atomic_bool stop_host;
	atomic_bool timed_out;
	uint64_t exits[SPK_EXIT__COUNT]; /* of VMs that have ended */
	struct counted_dev devs[MAX_COUNTED_DEVS];
	size_t n_devs; /* grows under lock */
	struct spk_machine_debugger dbg; /* set before the run */
};

static void set_err(char *err, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (!err || !len)
		return;
	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
}

/* ---- configuration -------------------------------------------------------- */

void spk_machine_config_init(struct spk_machine_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->vcpus = 1;
	cfg->mem = 512ull << 20;
	cfg->serial_fd = STDOUT_FILENO;
	cfg->virtio_console_fd = STDOUT_FILENO;
}

int spk_config_set_str(char **dst, const char *src)
{
	char *copy = NULL;

	if (src && !(copy = strdup(src)))
		return -ENOMEM;
	free(*dst);
	*dst = copy;
	return 0;
}

void spk_machine_config_free(struct spk_machine_config *cfg)
{
	free(cfg->kernel);
	free(cfg->initrd);
	free(cfg->cmdline);
	for (uint32_t i = 0; i < cfg->n_drives && i < SPK_MACHINE_MAX_DRIVES; i++)
		free(cfg->drives[i].path);
	free(cfg->vsock.uds_path);
	free(cfg->restore_state);
	free(cfg->restore_mem);
	free(cfg->restore_uffd);
	memset(cfg, 0, sizeof(*cfg));
}

static int copy_config(struct spk_machine_config *dst, const struct spk_machine_config *src)
{
	*dst = *src;
	dst->kernel = dst->initrd = dst->cmdline = dst->vsock.uds_path = NULL;
	dst->restore_state = dst->restore_mem = dst->restore_uffd = NULL;
	for (uint32_t i = 0; i < SPK_MACHINE_MAX_DRIVES; i++)
		dst->drives[i].path = NULL;
	if (spk_config_set_str(&dst->kernel, src->kernel) ||
	    spk_config_set_str(&dst->initrd, src->initrd) ||
	    spk_config_set_str(&dst->cmdline, src->cmdline) ||
	    spk_config_set_str(&dst->vsock.uds_path, src->vsock.uds_path) ||
	    spk_config_set_str(&dst->restore_state, src->restore_state) ||
	    spk_config_set_str(&dst->restore_mem, src->restore_mem) ||
	    spk_config_set_str(&dst->restore_uffd, src->restore_uffd))
		return -ENOMEM;
	for (uint32_t i = 0; i < src->n_drives && i < SPK_MACHINE_MAX_DRIVES; i++)
		if (spk_config_set_str(&dst->drives[i].path, src->drives[i].path))
			return -ENOMEM;
	return 0;
}

int spk_machine_config_check(const struct spk_machine_config *c, char *err, size_t errlen)
{
	if (!c->restore_state && (!c->kernel || !*c->kernel)) {
		set_err(err, errlen, "no kernel: the boot source needs a kernel image path");
		return -EINVAL;
	}
	if (c->vcpus < 1 || c->vcpus > 255) {
		set_err(err, errlen, "%u vCPUs: need 1 to 255", c->vcpus);
		return -EINVAL;
	}
	if (c->mem < SPK_PC_MEM_MIN || c->mem > SPK_PC_MEM_MAX || c->mem % 4096) {
		set_err(err, errlen, "memory of %llu bytes: need whole pages from %llu MiB to %llu GiB",
			(unsigned long long)c->mem, SPK_PC_MEM_MIN >> 20, SPK_PC_MEM_MAX >> 30);
		return -EINVAL;
	}
	if (c->n_drives > SPK_MACHINE_MAX_DRIVES || c->n_nets > SPK_MACHINE_MAX_NETS) {
		set_err(err, errlen, "at most %d drives and %d network interfaces",
			SPK_MACHINE_MAX_DRIVES, SPK_MACHINE_MAX_NETS);
		return -EINVAL;
	}
	for (uint32_t i = 0; i < c->n_drives; i++)
		if (!c->drives[i].path || !*c->drives[i].path) {
			set_err(err, errlen, "drive %s has no path", c->drives[i].id);
			return -EINVAL;
		}
	if (c->balloon.enabled && c->balloon.amount_mib > c->mem >> 20) {
		set_err(err, errlen, "a balloon of %u MiB in %llu MiB of memory: Amount of pages "
			"requested is too large.", c->balloon.amount_mib,
			(unsigned long long)(c->mem >> 20));
		return -EINVAL;
	}
#ifdef __aarch64__
	return spk_arm64_machine_check(c, err, errlen);
#endif
	return 0;
}

/* ---- creation -------------------------------------------------------------- */

static int load_file(const char *what, const char *path, uint64_t max, void **data, size_t *size,
		     char *err, size_t errlen)
{
	const char *why;
	int rc = spk_read_file(path, max, data, size, &why);

	if (rc < 0)
		set_err(err, errlen, "%s %s: %s%s", what, path, why,
			rc == -EFBIG ? (max >> 30 ? " (2 GiB)" : " (512 MiB)") : "");
	return rc;
}

int spk_machine_new(const struct spk_machine_config *cfg, struct spk_machine **out, char *err,
		    size_t errlen)
{
	struct spk_machine *m;
	int rc = spk_machine_config_check(cfg, err, errlen);

	if (rc < 0)
		return rc;
	m = calloc(1, sizeof(*m));
	if (!m) {
		set_err(err, errlen, "out of memory");
		return -ENOMEM;
	}
	pthread_mutex_init(&m->lock, NULL);
	if (copy_config(&m->cfg, cfg) < 0) {
		set_err(err, errlen, "out of memory");
		rc = -ENOMEM;
		goto err_free;
	}
	/* a restored VM needs no kernel: its memory is the snapshot's */
	if (!cfg->restore_state)
		rc = load_file("--kernel", cfg->kernel, KERNEL_MAX, &m->kernel, &m->kernel_size,
		               err, errlen);
	if (rc == 0 && cfg->initrd && !cfg->restore_state)
		rc = load_file("--initrd", cfg->initrd, INITRD_MAX, &m->initrd, &m->initrd_size, err,
			       errlen);
	if (rc < 0)
		goto err_free;
	*out = m;
	return 0;

err_free:
	spk_machine_free(m);
	return rc;
}

void spk_machine_free(struct spk_machine *m)
{
	if (!m)
		return;
	spk_machine_config_free(&m->cfg);
	free(m->kernel);
	free(m->initrd);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

/* ---- device glue ------------------------------------------------------------ */

static void serial_tx(void *ctx, const uint8_t *buf, size_t n)
{
	struct spk_machine *m = ctx;

	if (m->cfg.serial_fd < 0)
		return;
	for (size_t done = 0; done < n;) {
		ssize_t w = write(m->cfg.serial_fd, buf + done, n - done);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return; /* the console went away: drop the output */
		done += (size_t)w;
	}
}

static void device_stop(void *ctx, enum spk_exit_kind kind)
{
	struct vm_instance *v = ctx;

	spk_vm_request_stop(v->vm, kind);
}

static void boot_timer_report(void *ctx, uint64_t ns)
{
	fprintf(stderr, "\r\nsparkler: boot timer: the guest reached init %.3f ms after sparkler "
			"started\r\n", ns / 1e6);
}

struct bus_reg {
	enum spk_bus_space space;
	uint64_t base, len;
	const char *name;
	const struct spk_bus_ops *ops;
	void *dev;
};

static uint64_t counted_read(void *opaque, uint64_t off, unsigned width,
			     const struct spk_bus_access *who)
{
	struct counted_dev *c = opaque;

	atomic_fetch_add_explicit(&c->reads, 1, memory_order_relaxed);
	return c->ops->read(c->dev, off, width, who);
}

static void counted_write(void *opaque, uint64_t off, unsigned width, uint64_t v,
			  const struct spk_bus_access *who)
{
	struct counted_dev *c = opaque;

	atomic_fetch_add_explicit(&c->writes, 1, memory_order_relaxed);
	c->ops->write(c->dev, off, width, v, who);
}

/* The counting entry for a bus name, pointed at this boot's device. */
static struct counted_dev *counted(struct spk_machine *m, const struct bus_reg *r)
{
	struct counted_dev *c = NULL;

	pthread_mutex_lock(&m->lock);
	for (size_t i = 0; i < m->n_devs && !c; i++)
		if (strcmp(m->devs[i].name, r->name) == 0)
			c = &m->devs[i];
	if (!c && m->n_devs < MAX_COUNTED_DEVS) {
		c = &m->devs[m->n_devs];
		snprintf(c->name, sizeof(c->name), "%s", r->name);
		m->n_devs++;
	}
	pthread_mutex_unlock(&m->lock);
	if (c) {
		c->ops = r->ops;
		c->dev = r->dev;
		c->shim = (struct spk_bus_ops){.read = r->ops->read ? counted_read : NULL,
					       .write = r->ops->write ? counted_write : NULL};
	}
	return c;
}

static int register_all(struct spk_machine *m, struct spk_bus *bus, const struct bus_reg *regs,
			size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct counted_dev *c = counted(m, &regs[i]);
		int rc = spk_bus_register(bus, regs[i].space, regs[i].base, regs[i].len, regs[i].name,
					  c ? &c->shim : regs[i].ops, c ? (void *)c : regs[i].dev,
					  SPK_BUS_LOCKLESS);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* The VM generation ID changed: GPE 1, whose \_GPE._E01 notifies \_SB.VGEN. */
static int vmgenid_notify(void *ctx)
{
	return spk_acpi_pm_raise_gpe(ctx, SPK_PC_GPE_VMGENID);
}

static int add_legacy_devices(struct spk_machine *m, struct vm_instance *v)
{
	const struct spk_uart_config uc = {.name = "com1", .irq = spk_vm_irq(v->vm, SPK_PC_COM1_IRQ),
					   .tx = serial_tx, .tx_ctx = m};
	const struct spk_i8042_config kc = {.kbd_irq = spk_vm_irq(v->vm, 1), .stop = device_stop,
					    .stop_ctx = v};
	const struct spk_acpi_pm_config pc = {.s5_slp_typ = SPK_PC_S5_SLP_TYP,
					      .reset_value = SPK_PC_RESET_VALUE,
					      .stop = device_stop, .stop_ctx = v,
					      .sci = spk_vm_irq(v->vm, SPK_PC_SCI_IRQ)};
	const struct spk_boot_timer_config tc = {
	    .start = {spk_process_start.tv_sec, spk_process_start.tv_nsec},
	    .report = boot_timer_report};
	const struct spk_rtc_config rtc_cfg = {0};
	int rc;

	if ((rc = spk_uart_new(&uc, &v->uart)) < 0 || (rc = spk_i8042_new(&kc, &v->kbd)) < 0 ||
	    (rc = spk_rtc_new(&rtc_cfg, &v->rtc)) < 0 || (rc = spk_acpi_pm_new(&pc, &v->pm)) < 0 ||
	    (rc = spk_boot_timer_new(&tc, &v->timer)) < 0)
		return rc;
	spk_acpi_pm_set_ports(v->pm, SPK_PC_PM1A_EVT, SPK_PC_PM1A_CNT, SPK_PC_GPE0_BLK,
			      SPK_PC_RESET_PORT);
	const struct spk_vmgenid_config gc = {.mem = spk_vm_mem(v->vm), .gpa = SPK_PC_VMGENID,
					      .notify = vmgenid_notify, .notify_ctx = v->pm};
	if ((rc = spk_vmgenid_new(&gc, &v->genid)) < 0)
		return rc;
	const struct bus_reg regs[] = {
		{SPK_BUS_PIO, SPK_PC_COM1, 8, "com1", spk_uart_ops(), v->uart},
		{SPK_BUS_PIO, SPK_PC_I8042_DATA, 1, "i8042-data", spk_i8042_ops(), v->kbd},
		{SPK_BUS_PIO, SPK_PC_I8042_CMD, 1, "i8042-cmd", spk_i8042_ops(), v->kbd},
		{SPK_BUS_PIO, SPK_PC_RTC, 2, "rtc", spk_rtc_ops(), v->rtc},
		{SPK_BUS_PIO, SPK_PC_PM1A_EVT, 4, "pm1a-evt", spk_acpi_pm_ops(), v->pm},
		{SPK_BUS_PIO, SPK_PC_PM1A_CNT, 2, "pm1a-cnt", spk_acpi_pm_ops(), v->pm},
		{SPK_BUS_PIO, SPK_PC_GPE0_BLK, 4, "gpe0", spk_acpi_pm_ops(), v->pm},
		{SPK_BUS_PIO, SPK_PC_RESET_PORT, 1, "acpi-reset", spk_acpi_pm_ops(), v->pm},
		{SPK_BUS_MMIO, SPK_PC_BOOT_TIMER, 0x1000, "boot-timer", spk_boot_timer_ops(),
		 v->timer},
	};
	return register_all(m, spk_vm_bus(v->vm), regs, sizeof(regs) / sizeof(regs[0]));
}

static int add_acpi(struct vm_instance *v, uint32_t ncpus, uint64_t *rsdp)
{
	struct spk_acpi_config c;

	spk_acpi_pc_config(&c, ncpus, true); /* PCI0 with its _PRT, and the MCFG */
	struct spk_acpi_info info;
	int rc = spk_acpi_build(spk_vm_mem(v->vm), SPK_PC_ACPI_START, SPK_PC_ACPI_TABLES_END,
				&c, &info);

	*rsdp = info.rsdp;
	return rc;
}

/* ---- PCI and virtio ------------------------------------------------------------ */

static void write_all(int fd, const uint8_t *buf, size_t n)
{
	for (size_t done = 0; fd >= 0 && done < n;) {
		ssize_t w = write(fd, buf + done, n - done);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return; /* the console went away: drop the output */
		done += (size_t)w;
	}
}

static void virtio_console_out(void *ctx, const uint8_t *buf, size_t n)
{
	struct spk_machine *m = ctx;

	write_all(m->cfg.virtio_console_fd, buf, n);
}

/* The device thread filters itself before its first event. */
static void loop_seccomp(void *opaque)
{
	spk_seccomp_install_or_die(SPK_SECCOMP_DEVICE, "virtio-loop");
}

/* --disk and the API's drives: virtio-blk devices, in order (drive0 first). */
static int add_disks(struct spk_machine *m, struct vm_instance *v)
{
	for (uint32_t i = 0; i < m->cfg.n_drives; i++) {
		const struct spk_drive_config *d = &m->cfg.drives[i];
		const struct spk_virtio_blk_config bc = {.pci = v->pci, .slot = -1,
							 .mem = spk_vm_mem(v->vm), .loop = v->loop,
							 .path = d->path, .id = d->id,
							 .read_only = d->read_only,
							 .rate_limit = d->rate_limit};
		int rc = spk_virtio_blk_new(&bc, &v->disks[i]);

		if (rc < 0)
			return rc;
	}
	return 0;
}

/* The metadata service on network interface i: its frames go to a stack
 * of its own instead of the TAP. */
static int add_mmds(struct spk_machine *m, struct vm_instance *v, uint32_t i)
{
	struct spk_virtio_net_hook h = {.match = spk_mmds_stack_match,
	                                .tx = spk_mmds_stack_tx,
	                                .rx = spk_mmds_stack_rx,
	                                .timer = spk_mmds_stack_timer};
	int rc = spk_mmds_stack_new(m->cfg.mmds, &v->mmds[i]);

	if (rc < 0)
		return rc;
	h.opaque = v->mmds[i];
	return spk_virtio_net_set_hook(v->nets[i], &h);
}

/* --net and the API's network interfaces: virtio-net on TAPs; --vsock. */
static int add_network(struct spk_machine *m, struct vm_instance *v)
{
	const struct spk_vsock_config *vs = &m->cfg.vsock;
	int rc;

	for (uint32_t i = 0; i < m->cfg.n_nets; i++) {
		const struct spk_net_config *n = &m->cfg.nets[i];
		struct spk_virtio_net_config nc = {.pci = v->pci, .slot = -1, .mem = spk_vm_mem(v->vm),
						   .loop = v->loop, .tap = n->tap, .tap_fd = -1,
						   .has_mac = n->has_mac,
						   .mtu = n->mtu,
						   .rx_rate_limit = n->rx_rate_limit,
						   .tx_rate_limit = n->tx_rate_limit};

		memcpy(nc.mac, n->mac, sizeof(nc.mac));
		if ((rc = spk_virtio_net_new(&nc, &v->nets[i])) < 0)
			return rc;
		if (n->mmds && m->cfg.mmds && (rc = add_mmds(m, v, i)) < 0)
			return rc;
	}
	if (!vs->enabled)
		return 0;
	const struct spk_virtio_vsock_config vc = {.pci = v->pci, .slot = -1,
						   .mem = spk_vm_mem(v->vm), .loop = v->loop,
						   .guest_cid = vs->guest_cid,
						   .uds_path = vs->uds_path};
	return spk_virtio_vsock_new(&vc, &v->vsock);
}

static int add_virtio(struct spk_machine *m, struct vm_instance *v)
{
	struct spk_mem *mem = spk_vm_mem(v->vm);
	int rc;

	if ((rc = spk_evloop_new("virtio", &v->loop)) < 0)
		return rc;
	spk_evloop_on_start(v->loop, loop_seccomp, NULL);
	if (m->cfg.entropy) {
		const struct spk_virtio_rng_config rc_ = {.pci = v->pci, .slot = -1, .mem = mem,
							  .loop = v->loop,
							  .rate_limit = m->cfg.entropy_rate_limit};
		if ((rc = spk_virtio_rng_new(&rc_, &v->rng)) < 0)
			return rc;
	}
	if (m->cfg.virtio_console) {
		const struct spk_virtio_console_config cc = {.pci = v->pci, .slot = -1, .mem = mem,
							     .loop = v->loop,
							     .output = virtio_console_out,
							     .output_ctx = m};
		if ((rc = spk_virtio_console_new(&cc, &v->vcon)) < 0)
			return rc;
	}
	if ((rc = add_disks(m, v)) < 0)
		return rc;
	if ((rc = add_network(m, v)) < 0)
		return rc;
	if (m->cfg.balloon.enabled) {
		const struct spk_balloon_config *bc = &m->cfg.balloon;
		const struct spk_virtio_balloon_config vb = {
			.pci = v->pci, .slot = -1, .mem = mem, .loop = v->loop,
			.target_pages = bc->amount_mib * (uint32_t)((1u << 20) >> SPK_BALLOON_PAGE_SHIFT),
			.deflate_on_oom = bc->deflate_on_oom,
			.stats_interval_s = bc->stats_interval_s,
			.free_page_reporting = bc->free_page_reporting,
			.free_page_hinting = bc->free_page_hinting};
		if ((rc = spk_virtio_balloon_new(&vb, &v->balloon)) < 0)
			return rc;
	}
	return spk_evloop_start(v->loop);
}

static bool wants_virtio(const struct spk_machine_config *c)
{
	return c->entropy || c->virtio_console || c->n_drives || c->n_nets || c->vsock.enabled ||
	       c->balloon.enabled;
}

/* The host bridge always; the virtio devices the config asks for. */
static int add_pci(struct spk_machine *m, struct vm_instance *v)
{
#ifdef __aarch64__
	const struct spk_pci_host_config hc = spk_arm64_pci_host_config(v->vm);
#else
	const struct spk_pci_host_config hc = spk_pc_pci_host_config(v->vm);
#endif
	int rc = spk_pci_host_new(&hc, &v->pci);

	if (rc < 0 || !wants_virtio(&m->cfg))
		return rc;
	return add_virtio(m, v);
}

/* Before the VM goes: the devices hold irqfds and ioeventfds on it. */
static void destroy_pci(struct vm_instance *v)
{
	spk_evloop_stop(v->loop);
	spk_virtio_rng_free(v->rng);
	spk_virtio_console_free(v->vcon);
	for (uint32_t i = 0; i < SPK_MACHINE_MAX_DRIVES; i++)
		spk_virtio_blk_free(v->disks[i]);
	for (uint32_t i = 0; i < SPK_MACHINE_MAX_NETS; i++) {
		spk_virtio_net_free(v->nets[i]); /* first: its hook is the stack */
		spk_mmds_stack_free(v->mmds[i]);
	}
	spk_virtio_vsock_free(v->vsock);
	spk_virtio_balloon_free(v->balloon);
	spk_evloop_free(v->loop);
	spk_pci_host_free(v->pci);
}

static void destroy_instance(struct spk_machine *m, struct vm_instance *v)
{
	pthread_mutex_lock(&m->lock);
	if (m->current == v)
		m->current = NULL;
	if (v->vm) {
		/* keep the exit counts of this boot for the metrics */
		for (uint32_t i = 0; i < spk_vm_max_vcpus(v->vm); i++) {
			struct spk_vcpu *vcpu = spk_vm_vcpu(v->vm, i);
			struct spk_vcpu_stats st;

			if (!vcpu)
				continue;
			spk_vcpu_get_stats(vcpu, &st);
			for (int k = 0; k < SPK_EXIT__COUNT; k++)
				m->exits[k] += st.count[k];
		}
	}
	pthread_mutex_unlock(&m->lock);
	spk_snap_devices_free(v->devs);
	destroy_pci(v);
	spk_vm_destroy(v->vm);
	spk_uart_free(v->uart);
	spk_i8042_free(v->kbd);
	spk_rtc_free(v->rtc);
	spk_pl031_free(v->pl031);
	spk_acpi_pm_free(v->pm);
	spk_boot_timer_free(v->timer);
	spk_vmgenid_free(v->genid);
	free(v);
}

static int add_vcpus(struct vm_instance *v, uint32_t n, const struct spk_linux_boot *boot)
{
	struct spk_vcpu *vcpu;
	int rc;

	for (uint32_t i = 0; i < n; i++) {
		if ((rc = spk_vcpu_create(v->vm, i, &vcpu)) < 0)
			return rc;
		/* vCPU 0 starts at the kernel's entry; the others wait for
		 * the guest's INIT/SIPI in the in-kernel LAPIC */
		rc = i == 0 ? spk_linux_setup_vcpu(vcpu, spk_vm_mem(v->vm), boot)
			    : spk_vcpu_ready(vcpu);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* ---- snapshots ---------------------------------------------------------------------- */

/*
 * The machine's config as a pseudo-device of the snapshot ("machine", kind
 * sparkler_machine): what a load needs to build the same VM. Loading it
 * into a machine only checks that the machine is that one.
 */
static void put_cfg(struct spk_snap_writer *w, const struct spk_machine_config *c)
{
	char f[32];

	spk_snap_put_u32(w, "vcpus", c->vcpus);
	spk_snap_put_u64(w, "mem", c->mem);
	spk_snap_put_u32(w, "template", (uint32_t)c->template);
	spk_snap_put_u8(w, "entropy", c->entropy);
	spk_snap_put_u8(w, "virtio_console", c->virtio_console);
	spk_snap_put_u32(w, "drives", c->n_drives);
	for (uint32_t i = 0; i < c->n_drives; i++) {
		snprintf(f, sizeof(f), "d%u.id", i);
		spk_snap_put_str(w, f, c->drives[i].id);
		snprintf(f, sizeof(f), "d%u.path", i);
		spk_snap_put_str(w, f, c->drives[i].path ? c->drives[i].path : "");
		snprintf(f, sizeof(f), "d%u.read_only", i);
		spk_snap_put_u8(w, f, c->drives[i].read_only);
	}
	spk_snap_put_u32(w, "nets", c->n_nets);
	for (uint32_t i = 0; i < c->n_nets; i++) {
		snprintf(f, sizeof(f), "n%u.id", i);
		spk_snap_put_str(w, f, c->nets[i].id);
		snprintf(f, sizeof(f), "n%u.tap", i);
		spk_snap_put_str(w, f, c->nets[i].tap);
		snprintf(f, sizeof(f), "n%u.mac", i);
		spk_snap_put_bytes(w, f, c->nets[i].mac, 6);
		snprintf(f, sizeof(f), "n%u.has_mac", i);
		spk_snap_put_u8(w, f, c->nets[i].has_mac);
	}
	spk_snap_put_u8(w, "vsock", c->vsock.enabled);
	spk_snap_put_u32(w, "vsock.cid", c->vsock.guest_cid);
	spk_snap_put_str(w, "vsock.uds", c->vsock.uds_path ? c->vsock.uds_path : "");
	spk_snap_put_u8(w, "balloon", c->balloon.enabled);
	spk_snap_put_u32(w, "balloon.amount_mib", c->balloon.amount_mib);
	spk_snap_put_u8(w, "balloon.deflate_on_oom", c->balloon.deflate_on_oom);
	spk_snap_put_u32(w, "balloon.stats_interval_s", c->balloon.stats_interval_s);
	spk_snap_put_u8(w, "balloon.free_page_reporting", c->balloon.free_page_reporting);
	spk_snap_put_u8(w, "balloon.free_page_hinting", c->balloon.free_page_hinting);
}

static int get_strdup(struct spk_snap_reader *r, const char *name, char **out)
{
	char *buf = malloc(SPK_SNAP_STR_MAX);
	int rc;

	if (!buf)
		return -ENOMEM;
	rc = spk_snap_get_str(r, name, buf, SPK_SNAP_STR_MAX);
	if (rc == 0 && buf[0] && !(*out = strdup(buf)))
		rc = -ENOMEM;
	free(buf);
	return rc;
}

/* Read the fields put_cfg wrote into c (strings allocated: c's). */
static int get_cfg(struct spk_snap_reader *r, struct spk_machine_config *c)
{
	uint32_t tmpl = 0;
	char f[32];
	int rc;

	if ((rc = spk_snap_get_u32_max(r, "vcpus", 255, &c->vcpus)) ||
	    (rc = spk_snap_get_u64(r, "mem", &c->mem)) ||
	    (rc = spk_snap_get_u32(r, "template", &tmpl)) ||
	    (rc = spk_snap_get_bool(r, "entropy", &c->entropy)) ||
	    (rc = spk_snap_get_bool(r, "virtio_console", &c->virtio_console)) ||
	    (rc = spk_snap_get_u32_max(r, "drives", SPK_MACHINE_MAX_DRIVES, &c->n_drives)))
		return rc;
	c->template = (enum spk_cpu_template)tmpl;
	for (uint32_t i = 0; i < c->n_drives; i++) {
		snprintf(f, sizeof(f), "d%u.id", i);
		if ((rc = spk_snap_get_str(r, f, c->drives[i].id, sizeof(c->drives[i].id))))
			return rc;
		snprintf(f, sizeof(f), "d%u.path", i);
		if ((rc = get_strdup(r, f, &c->drives[i].path)))
			return rc;
		snprintf(f, sizeof(f), "d%u.read_only", i);
		if ((rc = spk_snap_get_bool(r, f, &c->drives[i].read_only)))
			return rc;
	}
	if ((rc = spk_snap_get_u32_max(r, "nets", SPK_MACHINE_MAX_NETS, &c->n_nets)))
		return rc;
	for (uint32_t i = 0; i < c->n_nets; i++) {
		snprintf(f, sizeof(f), "n%u.id", i);
		if ((rc = spk_snap_get_str(r, f, c->nets[i].id, sizeof(c->nets[i].id))))
			return rc;
		snprintf(f, sizeof(f), "n%u.tap", i);
		if ((rc = spk_snap_get_str(r, f, c->nets[i].tap, sizeof(c->nets[i].tap))))
			return rc;
		snprintf(f, sizeof(f), "n%u.mac", i);
		if ((rc = spk_snap_get_bytes(r, f, c->nets[i].mac, 6)))
			return rc;
		snprintf(f, sizeof(f), "n%u.has_mac", i);
		if ((rc = spk_snap_get_bool(r, f, &c->nets[i].has_mac)))
			return rc;
	}
	if ((rc = spk_snap_get_bool(r, "vsock", &c->vsock.enabled)) ||
	    (rc = spk_snap_get_u32(r, "vsock.cid", &c->vsock.guest_cid)) ||
	    (rc = get_strdup(r, "vsock.uds", &c->vsock.uds_path)) ||
	    (rc = spk_snap_get_bool(r, "balloon", &c->balloon.enabled)) ||
	    (rc = spk_snap_get_u32(r, "balloon.amount_mib", &c->balloon.amount_mib)) ||
	    (rc = spk_snap_get_bool(r, "balloon.deflate_on_oom", &c->balloon.deflate_on_oom)) ||
	    (rc = spk_snap_get_u32(r, "balloon.stats_interval_s", &c->balloon.stats_interval_s)) ||
	    (rc = spk_snap_get_bool(r, "balloon.free_page_reporting",
	                            &c->balloon.free_page_reporting)) ||
	    (rc = spk_snap_get_bool(r, "balloon.free_page_hinting", &c->balloon.free_page_hinting)))
		return rc;
	return spk_snap_reader_done(r);
}

static int machine_save(void *opaque, struct spk_snap_writer *w)
{
	const struct spk_machine *m = opaque;

	put_cfg(w, &m->cfg);
	return spk_snap_writer_error(w);
}

/* Loading into a machine: the saved config must be this machine's shape. */
static int machine_check(void *opaque, struct spk_snap_reader *r)
{
	const struct spk_machine *m = opaque;
	struct spk_machine_config c;
	int rc;

	spk_machine_config_init(&c);
	rc = get_cfg(r, &c);
	if (rc == 0 &&
	    (c.vcpus != m->cfg.vcpus || c.mem != m->cfg.mem || c.n_drives != m->cfg.n_drives ||
	     c.n_nets != m->cfg.n_nets || c.vsock.enabled != m->cfg.vsock.enabled ||
	     c.entropy != m->cfg.entropy || c.virtio_console != m->cfg.virtio_console ||
	     c.balloon.enabled != m->cfg.balloon.enabled))
		rc = spk_snap_bad(r, "vcpus", "the snapshot's machine is not this one");
	spk_machine_config_free(&c);
	return rc;
}

static const struct spk_dev_state_ops machine_state = {"sparkler_machine", 1, machine_save,
                                                       machine_check};

/* Into a config: the load op of spk_machine_config_from_snapshot. */
static int machine_read(void *opaque, struct spk_snap_reader *r)
{
	return get_cfg(r, opaque);
}

int spk_machine_config_from_snapshot(const char *state, struct spk_machine_config *cfg, char *err,
                                     size_t errlen)
{
	static const struct spk_dev_state_ops read_ops = {"sparkler_machine", 1, NULL,
	                                                  machine_read};
	struct spk_snap_file *f;
	int rc = spk_snap_open(state, &f);
	bool opened = rc == 0;

	if (opened) {
		rc = spk_snap_load_device(f, "machine", &read_ops, cfg);
		spk_snap_close(f);
	}
	if (rc == 0)
		rc = spk_config_set_str(&cfg->restore_state, state);
	/* -ENOENT from the open is a missing file; from the load, no section */
	if (rc < 0)
		set_err(err, errlen, "snapshot %s: %s", state,
		        opened && rc == -ENOENT
		            ? "it has no machine section (not a sparkler run/API snapshot)"
		            : spk_last_error());
	return rc;
}

/* A virtio device: its state, and its quiesce (blk's requests in flight
 * finish before the snapshot saves vCPUs and memory). */
static int state_virtio(struct spk_snap_devices *d, const char *name, struct spk_virtio *vd)
{
	int rc = spk_snap_devices_add(d, name, spk_virtio_state_ops(vd), vd);

	return rc ? rc : spk_snap_devices_add_quiesce(d, name, spk_virtio_quiesce, vd);
}

int spk_machine_config_clone(struct spk_machine_config *cfg, const struct spk_clone_id *id,
                             char *err, size_t errlen)
{
	struct spk_clone_id one = *id;

	/* the checks of one clone's fields; a CID of 0 is "keep the snapshot's" */
	if (!one.vsock_cid && cfg->vsock.enabled) {
		one.vsock_cid = cfg->vsock.guest_cid;
		snprintf(one.vsock_uds, sizeof(one.vsock_uds), "%s",
		         cfg->vsock.uds_path ? cfg->vsock.uds_path : "");
	}
	if (one.vsock_cid && !cfg->vsock.enabled) {
		set_err(err, errlen, "the snapshot has no vsock device to give CID %u", one.vsock_cid);
		return -EINVAL;
	}
	if (spk_clone_ids_check(&one, 1) < 0) {
		set_err(err, errlen, "%s", spk_last_error());
		return -EINVAL;
	}
	for (uint32_t i = 0; i < id->n_nets; i++) {
		uint32_t k = 0;

		while (k < cfg->n_nets && strcmp(cfg->nets[k].id, id->nets[i].iface) != 0)
			k++;
		if (k == cfg->n_nets) {
			set_err(err, errlen, "the snapshot has no network interface %s",
			        id->nets[i].iface);
			return -EINVAL;
		}
		snprintf(cfg->nets[k].tap, sizeof(cfg->nets[k].tap), "%s", id->nets[i].tap);
		memcpy(cfg->nets[k].mac, id->nets[i].mac, 6);
		cfg->nets[k].has_mac = true;
	}
	if (id->vsock_cid) {
		cfg->vsock.guest_cid = id->vsock_cid;
		if (spk_config_set_str(&cfg->vsock.uds_path, id->vsock_uds) < 0) {
			set_err(err, errlen, "out of memory");
			return -ENOMEM;
		}
	}
	return 0;
}

int spk_machine_clone_id(const struct spk_machine_config *cfg, uint32_t k,
                         struct spk_clone_id *out, char *err, size_t errlen)
{
	struct spk_clone_id base = {0}, *all;
	int rc;

	if (k == 0 || k >= SPK_CLONE_MAX) {
		set_err(err, errlen, "clone %u: need 1 to %d", k, SPK_CLONE_MAX - 1);
		return -EINVAL;
	}
	if (cfg->vsock.enabled) {
		base.vsock_cid = cfg->vsock.guest_cid;
		snprintf(base.vsock_uds, sizeof(base.vsock_uds), "%s",
		         cfg->vsock.uds_path ? cfg->vsock.uds_path : "");
	}
	base.n_nets = cfg->n_nets;
	for (uint32_t i = 0; i < cfg->n_nets; i++) {
		snprintf(base.nets[i].iface, sizeof(base.nets[i].iface), "%s", cfg->nets[i].id);
		snprintf(base.nets[i].tap, sizeof(base.nets[i].tap), "%s", cfg->nets[i].tap);
		memcpy(base.nets[i].mac, cfg->nets[i].mac, 6);
		if (!cfg->nets[i].has_mac) /* the snapshot's device had a random one */
			base.nets[i].mac[0] = 0x02;
	}
	if (!(all = calloc(k + 1, sizeof(*all)))) {
		set_err(err, errlen, "out of memory");
		return -ENOMEM;
	}
	rc = spk_clone_ids_derive(&base, k + 1, all);
	if (rc == 0)
		*out = all[k];
	else
		set_err(err, errlen, "%s", spk_last_error());
	free(all);
	return rc;
}

/* Every device of the instance, named, for spk_vm_snapshot / spk_vm_restore. */
static int add_state(struct spk_machine *m, struct vm_instance *v)
{
	struct spk_snap_devices *d;
	char name[16];
	int rc;

	if ((rc = spk_snap_devices_new(&d)) < 0)
		return rc;
	v->devs = d;
	if ((rc = spk_snap_devices_add(d, "machine", &machine_state, m)) ||
	    (rc = spk_snap_devices_add(d, "com1", spk_uart_state_ops(), v->uart)) ||
	    (rc = spk_snap_devices_add(d, "i8042", spk_i8042_state_ops(), v->kbd)) ||
	    (rc = spk_snap_devices_add(d, "rtc", spk_rtc_state_ops(), v->rtc)) ||
	    (rc = spk_snap_devices_add(d, "acpi_pm", spk_acpi_pm_state_ops(), v->pm)) ||
	    /* after acpi_pm: its load gives a new ID and raises acpi_pm's GPE 1 */
	    (rc = spk_snap_devices_add(d, "vmgenid", spk_vmgenid_state_ops(), v->genid)) ||
	    (rc = spk_snap_devices_add(d, "boot_timer", spk_boot_timer_state_ops(), v->timer)) ||
	    (rc = spk_snap_devices_add(d, "pci", spk_pci_host_state_ops(), v->pci)))
		return rc;
	if (v->rng && (rc = state_virtio(d, "rng", spk_virtio_rng_dev(v->rng))))
		return rc;
	if (v->vcon && (rc = state_virtio(d, "console", spk_virtio_console_dev(v->vcon))))
		return rc;
	for (uint32_t i = 0; i < SPK_MACHINE_MAX_DRIVES; i++) {
		snprintf(name, sizeof(name), "vd%u", i);
		if (v->disks[i] && (rc = state_virtio(d, name, spk_virtio_blk_dev(v->disks[i]))))
			return rc;
	}
	for (uint32_t i = 0; i < SPK_MACHINE_MAX_NETS; i++) {
		snprintf(name, sizeof(name), "net%u", i);
		if (v->nets[i] && (rc = state_virtio(d, name, spk_virtio_net_dev(v->nets[i]))))
			return rc;
	}
	if (v->vsock && (rc = state_virtio(d, "vsock", spk_virtio_vsock_dev(v->vsock))))
		return rc;
	if (v->balloon && (rc = state_virtio(d, "balloon", spk_virtio_balloon_dev(v->balloon))))
		return rc;
	return 0;
}

/* The same machine as the snapshot's, its state loaded from the files. */
static int build_restored(struct spk_machine *m, struct vm_instance *v)
{
	const struct spk_machine_config *c = &m->cfg;
	const struct spk_snap_restore_opts o = {
	    .backend = c->restore_uffd       ? SPK_SNAP_BACKEND_UFFD_EXTERNAL
	               : c->restore_uffd_own ? SPK_SNAP_BACKEND_UFFD
	                                     : SPK_SNAP_BACKEND_FILE,
	    .uffd_socket = c->restore_uffd};
	struct spk_vcpu *vcpu;
	int rc;

	if ((rc = add_legacy_devices(m, v)) < 0 || (rc = add_pci(m, v)) < 0)
		return rc;
	for (uint32_t i = 0; i < c->vcpus; i++)
		if ((rc = spk_vcpu_create(v->vm, i, &vcpu)) < 0)
			return rc;
	if ((rc = add_state(m, v)) < 0 ||
	    (rc = spk_vm_restore_opts(v->vm, v->devs, c->restore_state,
	                              c->restore_uffd ? NULL : c->restore_mem, &o)) < 0)
		return rc;
	if (c->track_dirty_pages)
		rc = spk_vm_dirty_log_start(v->vm);
	return rc;
}

int spk_machine_snapshot(struct spk_machine *m, const char *state, const char *mem, bool diff,
                         char *err, size_t errlen)
{
	int rc;

	pthread_mutex_lock(&m->lock);
	if (!m->current) {
		rc = -EINVAL;
		set_err(err, errlen, "the microVM is not running");
	} else if (m->state != SPK_MACHINE_PAUSED) {
		rc = -EBUSY;
		set_err(err, errlen, "the microVM must be paused");
	} else {
		/*
		 * The devices' event loop stops for the snapshot: with the vCPUs
		 * paused, it is what still writes guest memory (a TAP's frames into
		 * the rx queue), and a frame received between the memory and the
		 * device state would leave the file's used ring behind the saved
		 * index (a load refuses it). Handlers resume after, with whatever
		 * arrived meanwhile (epoll is level-triggered).
		 */
		struct spk_evloop *loop = m->current->loop;

		spk_evloop_stop(loop);
		if ((rc = spk_vm_snapshot(m->current->vm, m->current->devs, state, mem,
		                          (diff ? SPK_SNAP_DIFF : 0) | SPK_SNAP_FSYNC)) < 0)
			set_err(err, errlen, "%s", spk_last_error());
		if (loop && spk_evloop_start(loop) < 0) {
			spk_log(SPK_LOG_ERROR, "the devices' event loop did not restart: %s",
			        spk_last_error());
			if (rc == 0) {
				rc = -EIO;
				set_err(err, errlen, "the devices' event loop did not restart");
			}
		}
	}
	pthread_mutex_unlock(&m->lock);
	return rc;
}

#ifdef __aarch64__
/* The arm64 machine (machine_arm64.c): the kernel first, as on the PC,
 * then the UART and the RTC on the MMIO bus, and the PCI host with the virtio devices. */
static int build_arm64(struct spk_machine *m, struct vm_instance *v)
{
	const struct spk_machine_config *c = &m->cfg;
	const struct spk_uart_config uc = {.name = "uart0",
					   .irq = spk_vm_irq(v->vm, SPK_ARM64_MACHINE_UART_SPI),
					   .tx = serial_tx, .tx_ctx = m};
	const struct spk_pl031_config rc_ = {.irq = spk_vm_irq(v->vm, SPK_ARM64_MACHINE_RTC_SPI)};
	int rc;

	if ((rc = spk_arm64_machine_boot(v->vm, c, m->kernel, m->kernel_size, m->initrd,
					 m->initrd_size)) < 0 ||
	    (rc = spk_uart_new(&uc, &v->uart)) < 0 || (rc = spk_pl031_new(&rc_, &v->pl031)) < 0)
		return rc;
	const struct bus_reg regs[] = {
		{SPK_BUS_MMIO, SPK_ARM64_MACHINE_UART, SPK_ARM64_MACHINE_DEV_SIZE, "uart0",
		 spk_uart_ops(), v->uart},
		{SPK_BUS_MMIO, SPK_ARM64_MACHINE_RTC, SPK_ARM64_MACHINE_DEV_SIZE, "rtc0",
		 spk_pl031_ops(), v->pl031},
	};
	if ((rc = register_all(m, spk_vm_bus(v->vm), regs, 2)) < 0)
		return rc;
	return add_pci(m, v);
}
#endif

/* Everything before the first instruction; a failure here starts nothing. */
static int build_instance(struct spk_machine *m, struct vm_instance *v)
{
	const struct spk_machine_config *c = &m->cfg;
	struct spk_linux_boot boot;
	uint64_t rsdp = 0;
	int rc;

#ifdef __aarch64__
	if ((rc = spk_arm64_machine_vm(c, &v->vm)) < 0)
		return rc;
	return build_arm64(m, v);
#endif

	v->cpu = (struct spk_cpu_policy){.ncpus = c->vcpus, .template = c->template,
					 .clear_cx16 = strcmp(spk_host_kvm_kind(), "pvm") == 0};
	const struct spk_vm_config vc = {.max_vcpus = c->vcpus,
					 .irqchip = SPK_IRQCHIP_KERNEL,
					 .cpuid_policy = spk_cpuid_policy,
					 .cpuid_opaque = &v->cpu};
	if ((rc = spk_vm_create(&vc, &v->vm)) < 0 || (rc = spk_pc_add_ram(v->vm, c->mem)) < 0)
		return rc;
	if (c->restore_state)
		return build_restored(m, v);
	if ((rc = add_acpi(v, c->vcpus, &rsdp)) < 0)
		return rc;
	const struct spk_linux_config lc = {
		.kernel = m->kernel, .kernel_size = m->kernel_size,
		.initrd = m->initrd, .initrd_size = m->initrd_size,
		.cmdline = c->cmdline ? c->cmdline : SPK_MACHINE_DEFAULT_CMDLINE,
		.mem_size = c->mem, .rsdp = rsdp, .no_pvh = c->no_pvh,
	};
	/* the kernel and initrd first: a guest that does not fit opens no
	 * disk, makes no TAP and starts no device thread */
	if ((rc = spk_linux_load(spk_vm_mem(v->vm), &lc, &boot)) < 0 ||
	    (rc = add_legacy_devices(m, v)) < 0 || (rc = add_pci(m, v)) < 0 ||
	    (rc = add_vcpus(v, c->vcpus, &boot)) < 0 || (rc = add_state(m, v)) < 0)
		return rc;
	if (c->track_dirty_pages)
		rc = spk_vm_dirty_log_start(v->vm);
	return rc;
}

/* ---- exits ------------------------------------------------------------------- */

static enum spk_action machine_on_exit(struct spk_vcpu *vcpu, struct spk_exit *e, void *opaque)
{
	struct spk_machine *m = opaque;
	struct vm_instance *v = m->current;

	if (m->dbg.on_exit) {
		enum spk_action act = m->dbg.on_exit(m->dbg.ctx, vcpu, e);
		if (act != SPK_ACT_DEFAULT)
			return act;
	}
	switch (e->kind) {
	case SPK_EXIT_NESTED_PAGE_FAULT: {
		/* a driver probing an address with nothing behind it: what a
		 * PC does (reads all-ones, writes vanish), logged a few times */
		unsigned n = atomic_fetch_add(&v->holes_logged, 1);
		if (n < 16)
			spk_log(SPK_LOG_WARN, "vCPU %u: %s of %u bytes at 0x%llx hits no device "
					      "(RIP 0x%llx)%s",
				e->vcpu, e->npf.access & SPK_ACCESS_WRITE ? "write" : "read",
				e->npf.width, (unsigned long long)e->npf.addr,
				(unsigned long long)e->pc, n == 15 ? "; not logging more" : "");
		return SPK_ACT_CONTINUE;
	}
	case SPK_EXIT_HYPERCALL:
		/* Linux does not speak our hypercalls */
		spk_exit_complete_read(e, SPK_HC_ENOSYS);
		return SPK_ACT_CONTINUE;
	case SPK_EXIT_CANCELLED:
		if (atomic_load(&m->stop_host) || atomic_load(&m->timed_out))
			return SPK_ACT_STOP_VM;
		return SPK_ACT_CONTINUE;
	default:
		return SPK_ACT_DEFAULT;
	}
}

/* Where a reset came from, for the one line a user sees. */
static const char *reset_source(const struct spk_exit *e, char *buf, size_t len)
{
	switch (e->reset.source) {
	case SPK_SOURCE_TRIPLE_FAULT:
		snprintf(buf, len, "triple fault on vCPU %u", e->vcpu);
		break;
	case SPK_SOURCE_HYPERCALL:
		snprintf(buf, len, "reset hypercall from vCPU %u", e->vcpu);
		break;
	case SPK_SOURCE_SYSTEM_EVENT:
		snprintf(buf, len, "KVM system event on vCPU %u", e->vcpu);
		break;
	default:
		snprintf(buf, len, "a device: the i8042 reset line or the ACPI reset register");
		break;
	}
	return buf;
}

static int status_of(struct spk_machine *m, const struct spk_run_result *res, bool *restart,
		     char *err, size_t errlen)
{
	*restart = false;
	if (atomic_load(&m->timed_out)) {
		set_err(err, errlen, "the guest ran past --timeout %llus",
			(unsigned long long)m->cfg.timeout);
		return SPK_STATUS_CRASH;
	}
	if (atomic_load(&m->stop_host)) {
		set_err(err, errlen, "stopped from the host");
		return SPK_STATUS_STOPPED;
	}
	if (res->unhandled) {
		set_err(err, errlen, "guest crashed: %s", res->report);
		return SPK_STATUS_CRASH;
	}
	switch (res->kind) {
	case SPK_EXIT_SYSTEM_DOWN:
		return SPK_STATUS_OK;
	case SPK_EXIT_RESET: {
		char why[96];
		reset_source(&res->exit, why, sizeof(why));
		if (m->cfg.reboot && !m->cfg.restore_state) {
			fprintf(stderr, "\r\nsparkler: the guest reset (%s): restarting it\r\n", why);
			*restart = true;
			return SPK_STATUS_OK;
		}
		set_err(err, errlen, "the guest reset (%s)", why);
		return SPK_STATUS_RESET;
	}
	case SPK_EXIT_CPU_DOWN:
		set_err(err, errlen, "every vCPU stopped");
		return SPK_STATUS_CRASH;
	default:
		set_err(err, errlen, "the run ended with %s", spk_exit_name(res->kind));
		return SPK_STATUS_CRASH;
	}
}

/* ---- running --------------------------------------------------------------------- */


/* --timeout: mark the run timed out and kick the VM of the moment. */
static void timeout_fire(void *ctx)
{
	struct spk_machine *m = ctx;

	atomic_store(&m->timed_out, true);
	pthread_mutex_lock(&m->lock);
	if (m->current)
		spk_kick_all(m->current->vm);
	pthread_mutex_unlock(&m->lock);
}

/* Each vCPU thread filters itself before the guest's first instruction. */
static void vcpu_seccomp(struct spk_vcpu *vcpu, void *opaque)
{
	char name[16];

	snprintf(name, sizeof(name), "vcpu%u", spk_vcpu_id(vcpu));
	spk_seccomp_install_or_die(SPK_SECCOMP_VCPU, name);
}

static int boot_once(struct spk_machine *m, bool *restart, char *err, size_t errlen)
{
	struct spk_run_ops ops = {.on_exit = machine_on_exit, .start_paused = m->cfg.start_paused,
				  .thread_start = vcpu_seccomp};
	struct vm_instance *v = calloc(1, sizeof(*v));
	struct spk_run_result res;
	int rc, status;

	if (!v) {
		set_err(err, errlen, "out of memory");
		return SPK_STATUS_CRASH;
	}
	rc = build_instance(m, v);
	if (rc < 0) {
		set_err(err, errlen, "%s", spk_last_error());
		destroy_instance(m, v);
		return rc == -ENODEV ? SPK_STATUS_CRASH : SPK_STATUS_USAGE;
	}
	pthread_mutex_lock(&m->lock);
	m->current = v;
	m->state = m->cfg.start_paused ? SPK_MACHINE_PAUSED : SPK_MACHINE_RUNNING;
	pthread_mutex_unlock(&m->lock);
	if (atomic_load(&m->stop_host)) /* stopped while we were building */
		spk_kick_all(v->vm);
	if (m->cfg.start_note[0]) {
		fprintf(stderr, "%s\n", m->cfg.start_note);
		m->cfg.start_note[0] = 0; /* once, not on every --reboot */
	}
	if (m->dbg.vm_start && m->dbg.vm_start(m->dbg.ctx, v->vm))
		ops.start_paused = true; /* a debugger sees the first instruction */
	rc = spk_vm_run(v->vm, &ops, m, &res);
	if (rc < 0) {
		set_err(err, errlen, "%s", spk_last_error());
		status = SPK_STATUS_CRASH;
	} else {
		status = status_of(m, &res, restart, err, errlen);
	}
	spk_log_assist_totals(v->vm);
	if (m->dbg.vm_end)
		m->dbg.vm_end(m->dbg.ctx, status,
			      !(status == SPK_STATUS_OK && *restart && !atomic_load(&m->stop_host)));
	destroy_instance(m, v);
	return status;
}

int spk_machine_run(struct spk_machine *m, char *err, size_t errlen)
{
	struct spk_watchdog *wd = NULL;
	bool restart;
	int status;

	if (spk_watchdog_start(m->cfg.timeout, timeout_fire, m, &wd) < 0)
		spk_log(SPK_LOG_WARN, "no thread for --timeout: the guest runs without one");
	do {
		status = boot_once(m, &restart, err, errlen);
	} while (status == SPK_STATUS_OK && restart && !atomic_load(&m->stop_host));
	spk_watchdog_stop(wd);
	pthread_mutex_lock(&m->lock);
	m->state = SPK_MACHINE_HALTED;
	pthread_mutex_unlock(&m->lock);
	return status;
}

/* ---- control from other threads ---------------------------------------------------- */

void spk_machine_set_debugger(struct spk_machine *m, const struct spk_machine_debugger *d)
{
	m->dbg = *d;
}

void spk_machine_stop(struct spk_machine *m)
{
	atomic_store(&m->stop_host, true);
	pthread_mutex_lock(&m->lock);
	if (m->current) {
		spk_vm_resume(m->current->vm); /* a paused VM must see the kick */
		spk_kick_all(m->current->vm);
	}
	pthread_mutex_unlock(&m->lock);
}

int spk_machine_pause(struct spk_machine *m)
{
	int rc = -EINVAL;

	pthread_mutex_lock(&m->lock);
	if (m->current && (rc = spk_vm_pause(m->current->vm)) == 0)
		m->state = SPK_MACHINE_PAUSED;
	pthread_mutex_unlock(&m->lock);
	return rc;
}

int spk_machine_resume(struct spk_machine *m)
{
	int rc = -EINVAL;

	pthread_mutex_lock(&m->lock);
	if (m->current && (rc = spk_vm_resume(m->current->vm)) == 0)
		m->state = SPK_MACHINE_RUNNING;
	pthread_mutex_unlock(&m->lock);
	return rc;
}

size_t spk_machine_console_input(struct spk_machine *m, const uint8_t *buf, size_t n)
{
	size_t took = 0;

	pthread_mutex_lock(&m->lock);
	if (m->current && m->current->vcon)
		took = spk_virtio_console_input(m->current->vcon, buf, n);
	pthread_mutex_unlock(&m->lock);
	return took;
}

size_t spk_machine_serial_input(struct spk_machine *m, const uint8_t *buf, size_t n)
{
	size_t took = 0;

	pthread_mutex_lock(&m->lock);
	if (m->current)
		took = spk_uart_receive(m->current->uart, buf, n);
	pthread_mutex_unlock(&m->lock);
	return took;
}

int spk_machine_ctrl_alt_del(struct spk_machine *m)
{
	int rc = -EINVAL;

	pthread_mutex_lock(&m->lock);
	if (m->current)
		rc = spk_i8042_ctrl_alt_del(m->current->kbd);
	pthread_mutex_unlock(&m->lock);
	return rc;
}

int spk_machine_power_button(struct spk_machine *m)
{
	int rc = -EINVAL;

	/* m->lock keeps the instance (and its PM device) alive; the device
	 * takes its own lock and raises the SCI if the guest enabled GPE 0 */
	pthread_mutex_lock(&m->lock);
	if (m->current && m->current->pm) {
		spk_acpi_pm_power_button(m->current->pm);
		rc = 0;
	}
	pthread_mutex_unlock(&m->lock);
	return rc;
}

/* Under m->lock: the running disk (is_net false) or network device of that
 * id, its index in *i; NULL with *rc -EINVAL (not running) or -ENODEV. */
static void *running_dev(struct spk_machine *m, bool is_net, const char *id, uint32_t *i, int *rc)
{
	uint32_t n = is_net ? m->cfg.n_nets : m->cfg.n_drives;

	*rc = m->current ? -ENODEV : -EINVAL;
	for (*i = 0; m->current && *i < n; (*i)++) {
		const char *name = is_net ? m->cfg.nets[*i].id : m->cfg.drives[*i].id;
		void *dev = is_net ? (void *)m->current->nets[*i] : (void *)m->current->disks[*i];

		if (strcmp(name, id) == 0) {
			*rc = dev ? 0 : -ENODEV;
			return dev;
		}
	}
	return NULL;
}

int spk_machine_drive_swap(struct spk_machine *m, const char *id, const char *path)
{
	struct spk_virtio_blk *b;
	uint32_t i;
	int rc;

	pthread_mutex_lock(&m->lock);
	if ((b = running_dev(m, false, id, &i, &rc)))
		rc = spk_virtio_blk_swap(b, path);
	/* a rebuild (--reboot) takes the new file too */
	if (b && rc == 0 && spk_config_set_str(&m->cfg.drives[i].path, path))
		spk_log(SPK_LOG_WARN, "drive %s: out of memory: a reboot would use the old file", id);
	pthread_mutex_unlock(&m->lock);
	return rc;
}

int spk_machine_drive_rate_limit(struct spk_machine *m, const char *id,
                                 const struct spk_rate_limit *l)
{
	struct spk_virtio_blk *b;
	uint32_t i;
	int rc;

	pthread_mutex_lock(&m->lock);
	if ((b = running_dev(m, false, id, &i, &rc)))
		rc = spk_virtio_blk_set_rate_limit(b, l);
	if (b && rc == 0) /* a rebuild (--reboot) takes it too */
		m->cfg.drives[i].rate_limit = *l;
	pthread_mutex_unlock(&m->lock);
	return rc;
}

int spk_machine_net_rate_limits(struct spk_machine *m, const char *id,
                                const struct spk_rate_limit *rx, const struct spk_rate_limit *tx)
{
	struct spk_virtio_net *n;
	uint32_t i;
	int rc;

	pthread_mutex_lock(&m->lock);
	if ((n = running_dev(m, true, id, &i, &rc)))
		rc = spk_virtio_net_set_rate_limits(n, rx, tx);
	if (n && rc == 0 && rx)
		m->cfg.nets[i].rx_rate_limit = *rx;
	if (n && rc == 0 && tx)
		m->cfg.nets[i].tx_rate_limit = *tx;
	pthread_mutex_unlock(&m->lock);
	return rc;
}

/* The running balloon, or NULL with *rc set (-EINVAL: not running). */
static struct spk_virtio_balloon *running_balloon(struct spk_machine *m, int *rc)
{
	*rc = !m->current ? -EINVAL : !m->current->balloon ? -ENODEV : 0;
	return *rc ? NULL : m->current->balloon;
}

int spk_machine_balloon_target(struct spk_machine *m, uint32_t amount_mib)
{
	struct spk_virtio_balloon *b;
	int rc;

	if (amount_mib > m->cfg.mem >> 20)
		return -ERANGE;
	pthread_mutex_lock(&m->lock);
	if ((b = running_balloon(m, &rc)) &&
	    (rc = spk_virtio_balloon_set_target(b, amount_mib << (20 - SPK_BALLOON_PAGE_SHIFT))) == 0)
		m->cfg.balloon.amount_mib = amount_mib; /* a rebuild (--reboot) takes it too */
	pthread_mutex_unlock(&m->lock);
	return rc;
}

int spk_machine_balloon_interval(struct spk_machine *m, uint32_t s)
{
	struct spk_virtio_balloon *b;
	int rc;

	pthread_mutex_lock(&m->lock);
	if ((b = running_balloon(m, &rc)) && (rc = spk_virtio_balloon_set_stats_interval(b, s)) == 0)
		m->cfg.balloon.stats_interval_s = s;
	pthread_mutex_unlock(&m->lock);
	return rc;
}

int spk_machine_balloon_hint(struct spk_machine *m, int op, bool ack, uint32_t *host,
                             uint32_t *guest)
{
	struct spk_virtio_balloon *b;
	int rc;

	pthread_mutex_lock(&m->lock);
	if ((b = running_balloon(m, &rc))) {
		if (op == 0)
			rc = spk_virtio_balloon_hint_start(b, ack);
		else if (op == 1)
			rc = spk_virtio_balloon_hint_stop(b);
		if (rc == 0)
			rc = spk_virtio_balloon_hint_status(b, host, guest);
	}
	pthread_mutex_unlock(&m->lock);
	return rc;
}

int spk_machine_balloon_stats(struct spk_machine *m, struct spk_virtio_balloon_stats *out)
{
	struct spk_virtio_balloon *b;
	int rc;

	pthread_mutex_lock(&m->lock);
	if ((b = running_balloon(m, &rc)))
		spk_virtio_balloon_get_stats(b, out);
	pthread_mutex_unlock(&m->lock);
	return rc;
}

enum spk_machine_state spk_machine_state(struct spk_machine *m)
{
	pthread_mutex_lock(&m->lock);
	enum spk_machine_state s = m->state;
	pthread_mutex_unlock(&m->lock);
	return s;
}

void spk_machine_exit_counts(struct spk_machine *m, uint64_t counts[SPK_EXIT__COUNT])
{
	pthread_mutex_lock(&m->lock);
	memcpy(counts, m->exits, sizeof(m->exits));
	if (m->current) {
		for (uint32_t i = 0; i < spk_vm_max_vcpus(m->current->vm); i++) {
			struct spk_vcpu *vcpu = spk_vm_vcpu(m->current->vm, i);
			struct spk_vcpu_stats st;

			if (!vcpu)
				continue;
			spk_vcpu_get_stats(vcpu, &st);
			for (int k = 0; k < SPK_EXIT__COUNT; k++)
				counts[k] += st.count[k];
		}
	}
	pthread_mutex_unlock(&m->lock);
}

size_t spk_machine_device_counts(struct spk_machine *m, struct spk_machine_dev_count *out,
				 size_t n)
{
	size_t total;

	pthread_mutex_lock(&m->lock);
	total = m->n_devs;
	for (size_t i = 0; i < total && i < n; i++) {
		snprintf(out[i].name, sizeof(out[i].name), "%s", m->devs[i].name);
		out[i].reads = atomic_load_explicit(&m->devs[i].reads, memory_order_relaxed);
		out[i].writes = atomic_load_explicit(&m->devs[i].writes, memory_order_relaxed);
	}
	pthread_mutex_unlock(&m->lock);
	return total;
}
