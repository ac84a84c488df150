/* SPDX-License-Identifier: Apache-2.0 */
/*
 * KVM backend: ioeventfds, irqfds, GSI routing and KVM_SIGNAL_MSI (the
 * ioeventfd, irqfd, msi_route_* and signal_msi ops behind vm.h's
 * functions, core/backend.h), the plumbing that lets virtio devices run
 * without a vCPU exit per doorbell or interrupt.
 *
 * The routing table is ours: KVM_SET_GSI_ROUTING replaces the whole
 * table, so the VM keeps a copy that starts with KVM's own default (GSI n
 * to IOAPIC pin n for 0-23, and to PIC pin n % 8 for 0-15; but GSI 0, the
 * PIT, to IOAPIC pin 2, see default_routes) and appends one MSI entry per
 * route. Every change is made on a copy first and only
 * committed when KVM took the new table.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "kvm/kvm.h"

#define IOAPIC_PINS  24
#define PIC_PINS     16
#define MAX_GSI      4096 /* KVM_MAX_IRQ_ROUTES */
#define MSI_ADDR_LO  0xfee00000u
#define MSI_ADDR_TOP 0xfff00000u /* x86 MSI addresses lie in [MSI_ADDR_LO, here) */

static int need_irqchip(struct spk_vm *vm, const char *what)
{
	if (!vm)
		return spk_fail(EINVAL, "vm: %s without a VM", what);
	if (vm->irqchip != SPK_IRQCHIP_KERNEL)
		return spk_fail(EINVAL, "vm: %s needs the in-kernel irqchip (SPK_IRQCHIP_KERNEL)",
		                what);
	return 0;
}

/* ---- ioeventfd ------------------------------------------------------------ */

static int check_ioeventfd(const struct spk_ioeventfd *io)
{
	if (io->space != SPK_BUS_MMIO && io->space != SPK_BUS_PIO)
		return spk_fail(EINVAL, "vm: ioeventfd at 0x%" PRIx64 " in %s: only MMIO and PIO",
		                io->addr, spk_bus_space_name(io->space));
	if (io->fd < 0)
		return spk_fail(EBADF, "vm: ioeventfd at %s 0x%" PRIx64 " without an eventfd",
		                spk_bus_space_name(io->space), io->addr);
	bool any = io->len == 0 && io->space == SPK_BUS_MMIO && !io->match;
	if (!any && io->len != 1 && io->len != 2 && io->len != 4 && io->len != 8)
		return spk_fail(EINVAL, "vm: ioeventfd at %s 0x%" PRIx64 ": bad length %u",
		                spk_bus_space_name(io->space), io->addr, io->len);
	if (io->space == SPK_BUS_PIO && (io->addr > 0xffff || io->addr + io->len > 0x10000))
		return spk_fail(EINVAL, "vm: ioeventfd at port 0x%" PRIx64 "+%u is not a port",
		                io->addr, io->len);
	if (io->match && io->len < 8 && io->value >> (8 * io->len))
		return spk_fail(EINVAL,
		                "vm: ioeventfd at %s 0x%" PRIx64 ": match value 0x%" PRIx64
		                " is wider than %u bytes",
		                spk_bus_space_name(io->space), io->addr, io->value, io->len);
	return 0;
}

static int ioeventfd(struct spk_vm *svm, const struct spk_ioeventfd *io, bool assign)
{
	const char *what = assign ? "add" : "remove";
	struct kvm_ioeventfd k = {
	    .datamatch = io ? io->value : 0,
	    .addr = io ? io->addr : 0,
	    .len = io ? io->len : 0,
	    .fd = io ? io->fd : -1,
	};
	int rc;

	if (!svm || !io)
		return spk_fail(EINVAL, "vm: ioeventfd %s without a VM or a description", what);
	if ((rc = check_ioeventfd(io)) < 0)
		return rc;
	struct spk_kvm_vm *vm = spk_kvm_vm(svm);

	if (io->space == SPK_BUS_PIO)
		k.flags |= KVM_IOEVENTFD_FLAG_PIO;
	if (io->match)
		k.flags |= KVM_IOEVENTFD_FLAG_DATAMATCH;
	if (!assign)
		k.flags |= KVM_IOEVENTFD_FLAG_DEASSIGN;
	rc = spk_kvm_ioctl(vm->vm_fd, KVM_IOEVENTFD, &k);
	if (rc < 0)
		return spk_fail(-rc, "kvm: KVM_IOEVENTFD %s %s 0x%" PRIx64 "+%u%s: %s", what,
		                spk_bus_space_name(io->space), io->addr, io->len,
		                io->match ? " (with match)" : "", strerror(-rc));
	return 0;
}

/* The ioeventfd op (the core checked the VM). */
int spk_kvm_ioeventfd(struct spk_vm *vm, const struct spk_ioeventfd *io, bool assign)
{
	return ioeventfd(vm, io, assign);
}

/* ---- MSI ---------------------------------------------------------------------- */

static int check_msi(const struct spk_msi *msi, const char *what)
{
	if (!msi)
		return spk_fail(EINVAL, "vm: %s without a message", what);
	if (msi->addr < MSI_ADDR_LO || msi->addr >= MSI_ADDR_TOP)
		return spk_fail(
		    EINVAL, "vm: %s: MSI address 0x%" PRIx64 " is outside 0xfee00000-0xfeefffff",
		    what, msi->addr);
	return 0;
}

/* The signal_msi op: the core checked the VM, its irqchip and msi. */
int spk_kvm_signal_msi(struct spk_vm *vm, const struct spk_msi *msi)
{
	int rc = check_msi(msi, "signal");

	if (rc < 0)
		return rc;
	struct kvm_msi k = {
	    .address_lo = (uint32_t)msi->addr,
	    .address_hi = (uint32_t)(msi->addr >> 32),
	    .data = msi->data,
	};
	rc = spk_kvm_ioctl(spk_kvm_vm(vm)->vm_fd, KVM_SIGNAL_MSI, &k);
	if (rc < 0)
		return spk_fail(-rc, "kvm: KVM_SIGNAL_MSI to 0x%" PRIx64 " data 0x%x: %s",
		                msi->addr, msi->data, strerror(-rc));
	return 0;
}

/* ---- GSI routing --------------------------------------------------------------- */

static struct kvm_irq_routing_entry irqchip_entry(uint32_t gsi, uint32_t chip, uint32_t pin)
{
	return (struct kvm_irq_routing_entry){
	    .gsi = gsi,
	    .type = KVM_IRQ_ROUTING_IRQCHIP,
	    .u.irqchip = {.irqchip = chip, .pin = pin},
	};
}

static struct kvm_irq_routing_entry msi_entry(uint32_t gsi, const struct spk_msi *msi)
{
	return (struct kvm_irq_routing_entry){
	    .gsi = gsi,
	    .type = KVM_IRQ_ROUTING_MSI,
	    .u.msi = {.address_lo = (uint32_t)msi->addr,
	              .address_hi = (uint32_t)(msi->addr >> 32),
	              .data = msi->data},
	};
}

static int grow_routes(struct spk_kvm_vm *vm, uint32_t need)
{
	if (need <= vm->cap_routes && vm->routes)
		return 0;
	uint32_t cap = vm->cap_routes ? vm->cap_routes * 2 : 64;
	while (cap < need)
		cap *= 2;
	struct kvm_irq_routing_entry *v = realloc(vm->routes, cap * sizeof(*v));
	if (!v)
		return spk_fail(ENOMEM, "vm: out of memory for %u GSI routes", cap);
	vm->routes = v;
	vm->cap_routes = cap;
	return 0;
}

/*
 * KVM's own default table (virt/kvm/irqchip.c, arch/x86/kvm/irq_comm.c:
 * GSI n to IOAPIC pin n for 0-23 and to PIC pin n % 8 for 0-15) with one
 * change, as QEMU makes it: GSI 0, where KVM's PIT raises its interrupt,
 * goes to IOAPIC pin 2, matching the MADT's ISA IRQ 0 -> GSI 2 override,
 * and GSI 2 (the PICs' cascade) has no route. With KVM's default a guest
 * that takes the PIT through the IOAPIC, as the MADT tells it to, would
 * never see it.
 */
static int default_routes(struct spk_kvm_vm *vm)
{
	int rc = grow_routes(vm, IOAPIC_PINS + PIC_PINS + 16);

	if (rc < 0)
		return rc;
	vm->n_routes = 0;
	for (uint32_t gsi = 0; gsi < IOAPIC_PINS; gsi++) {
		if (gsi == 2)
			continue;
		if (gsi < PIC_PINS)
			vm->routes[vm->n_routes++] = irqchip_entry(
			    gsi, gsi < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE, gsi % 8);
		vm->routes[vm->n_routes++] =
		    irqchip_entry(gsi, KVM_IRQCHIP_IOAPIC, gsi == 0 ? 2 : gsi);
	}
	return 0;
}

/* Hand the table to KVM. */
static int commit_routes(struct spk_kvm_vm *vm, const char *what)
{
	size_t size = sizeof(struct kvm_irq_routing) + vm->n_routes * sizeof(*vm->routes);
	struct kvm_irq_routing *t = calloc(1, size);
	int rc;

	if (!t)
		return spk_fail(ENOMEM, "vm: out of memory for the GSI routing table");
	t->nr = vm->n_routes;
	memcpy(t->entries, vm->routes, vm->n_routes * sizeof(*vm->routes));
	rc = spk_kvm_ioctl(vm->vm_fd, KVM_SET_GSI_ROUTING, t);
	free(t);
	if (rc < 0)
		return spk_fail(-rc, "kvm: KVM_SET_GSI_ROUTING (%s, %u entries): %s", what,
		                vm->n_routes, strerror(-rc));
	return 0;
}

int spk_kvm_routes_init(struct spk_vm *svm)
{
	struct spk_kvm_vm *vm = spk_kvm_vm(svm);
	int rc;

	pthread_mutex_lock(&vm->routes_lock);
	rc = default_routes(vm);
	if (rc == 0)
		rc = commit_routes(vm, "the irqchip's default routes");
	pthread_mutex_unlock(&vm->routes_lock);
	return rc;
}

/* Index of gsi's MSI entry, or -1. */
static int find_msi(const struct spk_kvm_vm *vm, uint32_t gsi)
{
	for (uint32_t i = 0; i < vm->n_routes; i++)
		if (vm->routes[i].gsi == gsi && vm->routes[i].type == KVM_IRQ_ROUTING_MSI)
			return (int)i;
	return -1;
}

/* The lowest GSI from SPK_VM_FIRST_MSI_GSI that no entry uses. */
static int free_gsi(const struct spk_kvm_vm *vm, uint32_t *out)
{
	for (uint32_t gsi = SPK_VM_FIRST_MSI_GSI; gsi < MAX_GSI; gsi++) {
		if (find_msi(vm, gsi) < 0) {
			*out = gsi;
			return 0;
		}
	}
	return spk_fail(ENOSPC, "vm: all %d GSIs are routed", MAX_GSI);
}

/* The msi_route_* ops (the core checked the VM). */
int spk_kvm_msi_route_add(struct spk_vm *svm, const struct spk_msi *msi, uint32_t *gsi)
{
	uint32_t g = 0;
	int rc;

	if ((rc = need_irqchip(svm, "an MSI route")) < 0 || (rc = check_msi(msi, "route")) < 0)
		return rc;
	if (!gsi)
		return spk_fail(EINVAL, "vm: MSI route without a place for its GSI");
	struct spk_kvm_vm *vm = spk_kvm_vm(svm);

	pthread_mutex_lock(&vm->routes_lock);
	if (!vm->routes && (rc = default_routes(vm)) < 0)
		goto out;
	if ((rc = free_gsi(vm, &g)) < 0 || (rc = grow_routes(vm, vm->n_routes + 1)) < 0)
		goto out;
	vm->routes[vm->n_routes++] = msi_entry(g, msi);
	rc = commit_routes(vm, "add an MSI route");
	if (rc < 0)
		vm->n_routes--;
	else
		*gsi = g;
out:
	pthread_mutex_unlock(&vm->routes_lock);
	return rc;
}

int spk_kvm_msi_route_set(struct spk_vm *svm, uint32_t gsi, const struct spk_msi *msi)
{
	int rc, i;

	if ((rc = need_irqchip(svm, "an MSI route")) < 0 || (rc = check_msi(msi, "route")) < 0)
		return rc;
	struct spk_kvm_vm *vm = spk_kvm_vm(svm);

	pthread_mutex_lock(&vm->routes_lock);
	i = vm->routes ? find_msi(vm, gsi) : -1;
	if (i < 0) {
		rc = spk_fail(ENOENT, "vm: GSI %u has no MSI route to change", gsi);
	} else {
		struct kvm_irq_routing_entry old = vm->routes[i];

		vm->routes[i] = msi_entry(gsi, msi);
		rc = commit_routes(vm, "change an MSI route");
		if (rc < 0)
			vm->routes[i] = old;
	}
	pthread_mutex_unlock(&vm->routes_lock);
	return rc;
}

int spk_kvm_msi_route_del(struct spk_vm *svm, uint32_t gsi)
{
	int rc, i;

	if ((rc = need_irqchip(svm, "an MSI route")) < 0)
		return rc;
	struct spk_kvm_vm *vm = spk_kvm_vm(svm);

	pthread_mutex_lock(&vm->routes_lock);
	i = vm->routes ? find_msi(vm, gsi) : -1;
	if (i < 0) {
		rc = spk_fail(ENOENT, "vm: GSI %u has no MSI route to remove", gsi);
	} else {
		struct kvm_irq_routing_entry old = vm->routes[i];

		vm->routes[i] = vm->routes[vm->n_routes - 1];
		vm->n_routes--;
		rc = commit_routes(vm, "remove an MSI route");
		if (rc < 0) {
			vm->routes[vm->n_routes++] = vm->routes[i];
			vm->routes[i] = old;
		}
	}
	pthread_mutex_unlock(&vm->routes_lock);
	return rc;
}

/* ---- irqfd ------------------------------------------------------------------------ */

static int irqfd(struct spk_vm *svm, uint32_t gsi, int fd, bool assign)
{
	const char *what = assign ? "add" : "remove";
	struct kvm_irqfd k = {.fd = (uint32_t)fd, .gsi = gsi};
	int rc;

	if ((rc = need_irqchip(svm, "an irqfd")) < 0)
		return rc;
	if (fd < 0)
		return spk_fail(EBADF, "vm: irqfd %s for GSI %u without an eventfd", what, gsi);
	if (gsi >= MAX_GSI)
		return spk_fail(EINVAL, "vm: irqfd %s: GSI %u is not below %d", what, gsi, MAX_GSI);
	struct spk_kvm_vm *vm = spk_kvm_vm(svm);

	if (!assign)
		k.flags = KVM_IRQFD_FLAG_DEASSIGN;
	rc = spk_kvm_ioctl(vm->vm_fd, KVM_IRQFD, &k);
	if (rc < 0)
		return spk_fail(-rc, "kvm: KVM_IRQFD %s GSI %u fd %d: %s", what, gsi, fd,
		                strerror(-rc));
	return 0;
}

/* The irqfd op (the core checked the VM). */
int spk_kvm_irqfd(struct spk_vm *vm, uint32_t gsi, int fd, bool assign)
{
	return irqfd(vm, gsi, fd, assign);
}
