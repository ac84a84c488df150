/* SPDX-License-Identifier: Apache-2.0 */
/* PCI internals shared by host.c, dev.c and msix.c. Not installed. */
#ifndef SPK_PCI_INTERNAL_H
#define SPK_PCI_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <sparkler/pci.h>

#include "devices/devlog.h"

#define PCI_NAME_MAX 48

struct pci_bar {
	uint64_t size; /* 0: not implemented */
	unsigned flags;
	uint64_t addr; /* where it is decoded now, 0 if not */
	bool warned;   /* logged once that the guest put it somewhere odd */
};

struct msix_vec {
	uint32_t addr_lo, addr_hi, data, ctrl;
	bool pending;
	/* delivery through KVM: an MSI route and an irqfd on it */
	int gsi;    /* -1: no route yet */
	int fd;     /* the irqfd's eventfd (made with the table), -1 if it could not be */
	bool irqfd; /* fd is registered as an irqfd on gsi */
	bool stale; /* address or data changed since the route was made */
};

struct msix {
	uint16_t nvec;
	unsigned bar;
	uint32_t table_off, pba_off;
	uint8_t cap; /* config offset of the capability */
	bool enabled, masked;
	struct msix_vec *vec;
	bool warned_addr;
};

struct spk_pci_dev {
	char base_name[PCI_NAME_MAX];
	char name[PCI_NAME_MAX]; /* "virtio-rng (00:03.0)" once placed */
	struct spk_pci_host *host;
	unsigned slot;
	struct spk_pci_dev_ops ops;
	void *opaque;
	uint8_t irq_pin;

	pthread_mutex_t cfg_lock;
	uint8_t cfg[SPK_PCI_CFG_SIZE];
	uint8_t wmask[SPK_PCI_CFG_SIZE];
	uint8_t w1c[SPK_PCI_CFG_SIZE];
	uint16_t notify_lo, notify_hi; /* [lo, hi): the notify capabilities, 0/0 none */
	uint8_t last_cap;              /* offset of the last capability, 0 none */
	uint16_t next_cap;             /* where the next capability goes */
	struct pci_bar bars[SPK_PCI_BARS];
	atomic_uint command;
	struct spk_dev_ratelimit rl;

	/* interrupts: MSI-X state and the INTx pin, under irq_lock */
	pthread_mutex_t irq_lock;
	struct msix msix;
	bool has_msix;
	bool intx_want; /* what the device drives */
	bool intx_out;  /* what reaches the host (not disabled by the command register) */
};

/* dev.c */
uint32_t spk_pci_dev_cfg_read(struct spk_pci_dev *d, uint32_t off, unsigned width);
void spk_pci_dev_cfg_write(struct spk_pci_dev *d, uint32_t off, unsigned width, uint32_t value);
void spk_pci_dev_placed(struct spk_pci_dev *d, struct spk_pci_host *h, unsigned slot);
/* Write BAR bar's address register (placement by the monitor). */
void spk_pci_dev_set_bar(struct spk_pci_dev *d, unsigned bar, uint64_t addr);
uint64_t spk_pci_dev_bar_read(struct spk_pci_dev *d, unsigned bar, uint64_t off, unsigned width);
void spk_pci_dev_bar_write(struct spk_pci_dev *d, unsigned bar, uint64_t off, unsigned width,
                           uint64_t value);

/* host.c: decode the device's BAR bar at addr from now on (0: not at all).
 * Returns where it is decoded: addr, or 0 when refused (overlap). */
uint64_t spk_pci_host_bar_update(struct spk_pci_host *h, struct spk_pci_dev *d, unsigned bar,
                                 uint64_t addr);
bool spk_pci_host_in_window(const struct spk_pci_host *h, uint64_t addr, uint64_t size);
struct spk_vm *spk_pci_host_vm(const struct spk_pci_host *h);
void spk_pci_host_msi(struct spk_pci_host *h, const struct spk_msi *msi);
void spk_pci_host_intx(struct spk_pci_host *h, unsigned slot, unsigned pin, bool level);

/* host.c, for state.c: the CONFIG_ADDRESS latch (set it if set), the bridge */
#define SPK_PCI_CF8_KEPT 0x80fffffcu
uint32_t spk_pci_host_cf8(struct spk_pci_host *h, const uint32_t *set);
struct spk_pci_dev *spk_pci_host_bridge(struct spk_pci_host *h);
/* host.c: take a device being freed off its slot and the BAR window. */
void spk_pci_host_detach(struct spk_pci_host *h, struct spk_pci_dev *d);
/* dev.c: decode the BARs where the config space says (after a state load) */
void spk_pci_dev_update_bars(struct spk_pci_dev *d);

/* msix.c */
int spk_pci_msix_init(struct spk_pci_dev *d, uint16_t nvec, unsigned bar, uint32_t table_off,
                      uint32_t pba_off);
void spk_pci_msix_fini(struct spk_pci_dev *d);
/* true when [off, off + width) of BAR bar is the table or the PBA */
bool spk_pci_msix_owns(struct spk_pci_dev *d, unsigned bar, uint64_t off);
uint64_t spk_pci_msix_bar_read(struct spk_pci_dev *d, uint64_t off, unsigned width);
void spk_pci_msix_bar_write(struct spk_pci_dev *d, uint64_t off, unsigned width, uint64_t value);
/* The message control word was written (under the config lock). */
void spk_pci_msix_control(struct spk_pci_dev *d, uint16_t ctrl);
/* INTx after a command register write */
void spk_pci_intx_update(struct spk_pci_dev *d);

#endif
