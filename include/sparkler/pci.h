/* SPDX-License-Identifier: Apache-2.0 */
/*
 * PCI: a host bridge with bus 0, configuration mechanism #1 (ports
 * 0xCF8/0xCFC) and ECAM, and devices with type-0 headers, a capability
 * list, memory BARs, INTx and MSI-X.
 *
 * The host registers three things on the VM's bus, once: the two config
 * ports, the ECAM window, and the whole BAR window as one MMIO range. It
 * dispatches window accesses to BARs itself, by address, so a guest that
 * moves a BAR needs no change to the (frozen) bus. A BAR is decoded only
 * while the device's Memory Space bit is set and the BAR lies wholly
 * inside the window; anywhere else it is not decoded (logged once).
 *
 * The monitor places every BAR at creation (naturally aligned, from the
 * bottom of the window up) as firmware would, so a guest that keeps the
 * assignment (Linux does, given the host bridge's _CRS) never sizes or
 * moves anything.
 *
 * Guest input is hostile: every config access is bounded to the 4 KiB of
 * the function, reads of absent devices return all-ones, and bad values
 * are logged (rate-limited) with the device's name and address.
 *
 * Locks: each device has a config lock (config space, BAR placement) and
 * an MSI-X lock (the table, pending bits, delivery), taken in that order;
 * device callbacks are called without the MSI-X lock. bar_read/bar_write
 * run with no PCI lock held; bar_moved runs under the config lock.
 *
 * The contract (the library's rules: vcpu.h). Set-up, host-side and
 * snapshot calls refuse NULL handles and pointers with a message (-EINVAL,
 * or the neutral value each names). The calls device code makes on the
 * exit path (spk_pci_dev_command, spk_pci_dev_bar_addr, spk_pci_cfg_set /
 * _get, spk_pci_msix_enabled / _signal, spk_pci_intx) take a non-NULL
 * device as a precondition: NULL is undefined (exit path). Nothing here
 * is signal-safe.
 */
#ifndef SPARKLER_PCI_H
#define SPARKLER_PCI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sparkler/bus.h>
#include <sparkler/devices.h>
#include <sparkler/vm.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SPK_PCI_SLOTS      32
#define SPK_PCI_CFG_SIZE   4096 /* ECAM; mechanism #1 reaches the first 256 bytes */
#define SPK_PCI_BARS       6
#define SPK_PCI_INTX_LINES 8 /* GSIs intx_gsi .. intx_gsi + 7 */
#define SPK_PCI_MSIX_MAX   2048

/* Standard config space registers (type 0 header). */
enum {
	SPK_PCI_VENDOR_ID = 0x00,
	SPK_PCI_DEVICE_ID = 0x02,
	SPK_PCI_COMMAND = 0x04,
	SPK_PCI_STATUS = 0x06,
	SPK_PCI_REVISION = 0x08,
	SPK_PCI_CLASS_PROG = 0x09,
	SPK_PCI_CACHE_LINE = 0x0c,
	SPK_PCI_LATENCY = 0x0d,
	SPK_PCI_HEADER_TYPE = 0x0e,
	SPK_PCI_BAR0 = 0x10,
	SPK_PCI_SUBSYS_VENDOR = 0x2c,
	SPK_PCI_SUBSYS_ID = 0x2e,
	SPK_PCI_ROM = 0x30,
	SPK_PCI_CAP_PTR = 0x34,
	SPK_PCI_INT_LINE = 0x3c,
	SPK_PCI_INT_PIN = 0x3d,
};

#define SPK_PCI_CMD_IO         0x0001
#define SPK_PCI_CMD_MEMORY     0x0002
#define SPK_PCI_CMD_MASTER     0x0004
#define SPK_PCI_CMD_INTX_OFF   0x0400
#define SPK_PCI_STATUS_INTX    0x0008
#define SPK_PCI_STATUS_CAPS    0x0010
#define SPK_PCI_CAP_ID_VENDOR  0x09
#define SPK_PCI_CAP_ID_MSIX    0x11
#define SPK_PCI_MSIX_ENABLE    0x8000 /* message control */
#define SPK_PCI_MSIX_MASKALL   0x4000
#define SPK_PCI_MSIX_ENTRY     16  /* bytes per table entry */
#define SPK_PCI_MSIX_CTRL_MASK 0x1 /* vector control */

/* BAR flags. */
enum {
	SPK_PCI_BAR_64 = 1u << 0,       /* a 64-bit memory BAR (uses bar and bar + 1) */
	SPK_PCI_BAR_PREFETCH = 1u << 1, /* prefetchable */
};

struct spk_pci_host;
struct spk_pci_dev;

/* The GSI of INTx pin (1 = INTA .. 4 = INTD) of slot: what the DSDT's
 * _PRT says and what the host raises. */
static inline uint32_t spk_pci_intx_gsi(uint32_t base, unsigned slot, unsigned pin)
{
	return base + (slot + pin - 1) % SPK_PCI_INTX_LINES;
}

struct spk_pci_host_config {
	struct spk_bus *bus; /* where to register the ports and windows */
	/* MSI routes and irqfds, ioeventfds of devices; NULL: no KVM (tests),
	 * MSI-X messages then go to msi(). */
	struct spk_vm *vm;
	uint64_t ecam;                  /* ECAM base of bus 0 (1 MiB); 0 for none */
	uint64_t mmio_start, mmio_size; /* the BAR window */
	bool no_cf8;                    /* leave ports 0xCF8-0xCFF alone */
	/* INTx lines: intx.set(ctx, spk_pci_intx_gsi(intx.gsi, slot, pin), level). */
	struct spk_irq_line intx;
	void (*msi)(void *ctx, const struct spk_msi *msi);
	void *msi_ctx;
};

/* The sparkler PC's host bridge on vm (platform.h): its bus, ECAM, the BAR
 * window and INTx through the VM's irqchip from SPK_PC_PCI_INTX_GSI. A
 * value borrowing vm; thread-safe. NULL vm: a config with no bus (with
 * spk_vm_bus's message), which spk_pci_host_new refuses. */
struct spk_pci_host_config spk_pc_pci_host_config(struct spk_vm *vm);

/* Create the host and its bridge in slot 0, and register on cfg->bus
 * (before the VM first runs: the bus freezes). cfg is copied; bus and vm
 * are borrowed. 0 and *out (the caller owns it), or -EINVAL (NULL cfg or
 * out, no bus, a bad window) or the bus's error, with a message. */
int spk_pci_host_new(const struct spk_pci_host_config *cfg, struct spk_pci_host **out);
/* Free the host (not its devices). No vCPU may be running. Takes NULL. */
void spk_pci_host_free(struct spk_pci_host *h);

/* What a device does with accesses to its BARs and config space. */
struct spk_pci_dev_ops {
	/* A guest access to a BAR at off (width 1, 2, 4 or 8, inside the BAR). */
	uint64_t (*bar_read)(void *opaque, unsigned bar, uint64_t off, unsigned width);
	void (*bar_write)(void *opaque, unsigned bar, uint64_t off, unsigned width, uint64_t value);
	/* BAR bar is now decoded at addr, or no longer decoded (addr 0):
	 * re-register ioeventfds. Under the config lock. Optional. */
	void (*bar_moved)(void *opaque, unsigned bar, uint64_t addr);
	/* A config write hit a capability added with notify: off and width
	 * of the write, after the writable bits were stored. Optional. */
	void (*cfg_written)(void *opaque, uint32_t off, unsigned width);
	/* Before a config read of such a capability: refresh its bytes with
	 * spk_pci_cfg_set(). Optional. */
	void (*cfg_reading)(void *opaque, uint32_t off, unsigned width);
};

struct spk_pci_dev_config {
	const char *name; /* "virtio-rng": log lines say "virtio-rng (00:03.0)" */
	uint16_t vendor, device;
	uint16_t subsys_vendor, subsys_id;
	uint8_t revision;
	uint32_t class_code; /* base << 16 | sub << 8 | prog-if */
	uint8_t irq_pin;     /* 0: no INTx, 1: INTA */
	const struct spk_pci_dev_ops *ops;
	void *opaque;
};

/* A device with no host yet; cfg is copied (ops and opaque are borrowed).
 * 0 and *out (the caller owns it), or -EINVAL (NULL cfg or out, no name
 * or ops, a bad pin or vendor) / -ENOMEM with a message. Set up from one
 * thread (add_* and host_add). */
int spk_pci_dev_new(const struct spk_pci_dev_config *cfg, struct spk_pci_dev **out);
/* Free a device: only after the VM stopped running. Removes its MSI
 * routes and irqfds (while its host lives), and takes it off its host's
 * slot and BAR window, so the host (freed before or after it, either
 * order) never reaches it again: a later config read of its slot reads
 * all ones. Takes NULL. */
void spk_pci_dev_free(struct spk_pci_dev *d);

/* Before spk_pci_host_add: a memory BAR of size bytes (a power of two,
 * at least 16); a 64-bit one uses bar and bar + 1. 0, or -EINVAL (NULL,
 * bad bar/size/flags), -EBUSY (already on a host), with a message. */
int spk_pci_dev_add_bar(struct spk_pci_dev *d, unsigned bar, uint64_t size, unsigned flags);
/*
 * Before spk_pci_host_add: append a capability. data is all of it (len
 * bytes, at least 2, a multiple of 4 is not needed); its first two bytes
 * (id, next) are filled in. wmask (len bytes, or NULL for read-only) says
 * which bits the guest may write. notify: call the device's cfg_written
 * / cfg_reading for accesses to it. *off receives its config offset.
 * data and wmask are copied. 0, or -EINVAL (NULL d or data, len < 2),
 * -EBUSY (already on a host), -ENOSPC (no room below 0x100), with a
 * message.
 */
int spk_pci_dev_add_cap(struct spk_pci_dev *d, uint8_t id, const void *data, uint8_t len,
                        const void *wmask, bool notify, uint8_t *off);
/* Before spk_pci_host_add: an MSI-X capability with nvec vectors, its
 * table at table_off and the pending bits at pba_off of BAR bar (8-byte
 * aligned, inside the BAR, not overlapping). The PCI layer owns both.
 * 0, or -EINVAL (NULL, bad layout) / -EBUSY / -ENOMEM with a message. */
int spk_pci_dev_add_msix(struct spk_pci_dev *d, uint16_t nvec, unsigned bar, uint32_t table_off,
                         uint32_t pba_off);

/* Put the device in slot (1-31), or the first free one (slot < 0); place
 * its BARs in the window. *slot_out (may be NULL) receives the slot.
 * Before the VM first runs. The host does not own d (free it after the
 * host). 0, or -EINVAL (NULL h or d), -EEXIST (d already on a bus), or
 * the slot's or the window's refusal (-errno), with a message; on failure
 * d is on no host. */
int spk_pci_host_add(struct spk_pci_host *h, struct spk_pci_dev *d, int slot, unsigned *slot_out);

/* ---- for device code, from any thread ---- */

/* "virtio-rng (00:03.0)", owned by d. NULL d: "(no device)" and no
 * message (it is called while building other messages). */
const char *spk_pci_dev_name(const struct spk_pci_dev *d);
/* The host's VM (borrowed), or NULL: none (tests, not on a host yet), or
 * NULL d (with a message). */
struct spk_vm *spk_pci_dev_vm(const struct spk_pci_dev *d);
/* The command register (lock-free copy). */
uint16_t spk_pci_dev_command(const struct spk_pci_dev *d);
/* Where BAR bar is decoded now, or 0. */
uint64_t spk_pci_dev_bar_addr(struct spk_pci_dev *d, unsigned bar);

/* Set / read config bytes (from cfg_reading / cfg_written: under the config lock). */
void spk_pci_cfg_set(struct spk_pci_dev *d, uint32_t off, const void *buf, size_t len);
void spk_pci_cfg_get(struct spk_pci_dev *d, uint32_t off, void *buf, size_t len);

/*
 * Interrupts. spk_pci_msix_signal sends vector (0 ok, also when masked:
 * it is then pending and goes when unmasked); -ENOTCONN when MSI-X is
 * disabled (use INTx), -EINVAL for a vector beyond the table. Through
 * an irqfd on an MSI route when there is a VM (KVM_SIGNAL_MSI if a route
 * cannot be made).
 */
bool spk_pci_msix_enabled(struct spk_pci_dev *d);
int spk_pci_msix_signal(struct spk_pci_dev *d, uint16_t vector);
/* Drive the device's INTx pin (ignored without a pin or with INTx disabled). */
void spk_pci_intx(struct spk_pci_dev *d, bool level);

/* A host-side config access (tests, debugging): as the guest would, and
 * as thread-safe as the guest's accesses. Absent slots and bad offsets
 * read all-ones; NULL h reads all-ones / writes nothing, with a message. */
uint32_t spk_pci_host_cfg_read(struct spk_pci_host *h, unsigned slot, uint32_t off, unsigned width);
void spk_pci_host_cfg_write(struct spk_pci_host *h, unsigned slot, uint32_t off, unsigned width,
                            uint32_t value);

/*
 * ---- snapshots (snapshot.h) ----
 * A function's state (its slot, config space, MSI-X table and pending
 * bits) goes into its owner's section as fields "pci.*". Loading is two
 * steps so the owner can check its whole section first: state_read checks
 * every value (a config byte may differ from this device's only in bits
 * the guest can write) and keeps them aside; state_apply makes them the
 * device's (BARs decoded where they say, MSI-X as the control word says)
 * and frees them; state_free drops them unapplied (takes NULL).
 * All three before the VM runs (restores) or while it is paused (save).
 * save and read: 0 or -errno with a message (-EINVAL for NULLs; read
 * leaves *out untouched on failure). apply always consumes st; with a NULL
 * d or st it applies nothing and sets a message.
 */
struct spk_snap_writer;
struct spk_snap_reader;
struct spk_pci_dev_state;
int spk_pci_dev_state_save(struct spk_pci_dev *d, struct spk_snap_writer *w);
int spk_pci_dev_state_read(struct spk_pci_dev *d, struct spk_snap_reader *r,
                           struct spk_pci_dev_state **out);
void spk_pci_dev_state_apply(struct spk_pci_dev *d, struct spk_pci_dev_state *st);
void spk_pci_dev_state_free(struct spk_pci_dev_state *st);
/* The host bridge's state (its address latch and its own function); opaque: the host. */
const struct spk_dev_state_ops *spk_pci_host_state_ops(void);

#ifdef __cplusplus
}
#endif
#endif
