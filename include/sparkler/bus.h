/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The bus router. Three address spaces (MMIO, PIO, system registers), each
 * a sorted table of non-overlapping ranges. Devices register before the VM
 * starts; the table is then frozen and lookups take no lock (binary
 * search). A device sees the offset inside its range, never the absolute
 * address, and runs under its own lock.
 */
#ifndef SPARKLER_BUS_H
#define SPARKLER_BUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum spk_bus_space {
	SPK_BUS_MMIO = 0,
	SPK_BUS_PIO,
	SPK_BUS_SYSREG,
	SPK_BUS__COUNT
};

/*
 * What happens to an access that no device claims.
 *   SPK_MISS_IGNORE: reads return all-ones, writes are dropped (what real
 *                    PCs do for ports). Default for PIO.
 *   SPK_MISS_EXIT:   the raw exit (MMIO, PIO, SYSREG) goes to the caller.
 *                    Default for SYSREG.
 *   SPK_MISS_FAULT:  a NESTED_PAGE_FAULT exit goes to the caller. Default
 *                    for MMIO; for PIO and SYSREG it means SPK_MISS_EXIT.
 *   SPK_MISS_FATAL:  strict mode: an INTERNAL_ERROR exit naming the access.
 */
enum spk_bus_miss {
	SPK_MISS_IGNORE = 0,
	SPK_MISS_EXIT,
	SPK_MISS_FAULT,
	SPK_MISS_FATAL,
};

/* Who is accessing: handed to every device callback. */
struct spk_bus_access {
	uint32_t vcpu;  /* the vCPU id, or UINT32_MAX from the host */
	uint64_t addr;  /* the absolute address, for log lines only */
};

/*
 * Device callbacks. width is 1, 2, 4 or 8; values are little-endian and
 * zero-extended. The access lies entirely inside the device's range.
 * Either callback may be NULL: reads then return all-ones, writes drop.
 */
struct spk_bus_ops {
	uint64_t (*read)(void *opaque, uint64_t offset, unsigned width,
			 const struct spk_bus_access *who);
	void (*write)(void *opaque, uint64_t offset, unsigned width, uint64_t value,
		      const struct spk_bus_access *who);
};

/* Registration flags. */
enum {
	/* The device does its own locking: call it without the bus lock. */
	SPK_BUS_LOCKLESS = 1u << 0,
};

#define SPK_BUS_NAME_MAX 32

struct spk_bus;

int spk_bus_new(struct spk_bus **out);
void spk_bus_free(struct spk_bus *bus);

/*
 * Register [base, base + len) in space. Refuses (-EINVAL) a zero length, a
 * range that wraps or runs past the space's end (PIO: port 0xffff), a
 * missing name or ops; on a VM's bus (spk_vm_bus) also ranges no access
 * could reach: MMIO over the VM's memory, PIO over SPK_HC_PORT. Refuses
 * (-EEXIST) an overlap, with a message naming both devices; -EBUSY once
 * the bus is frozen (the VM's first run): devices cannot be unregistered,
 * since vCPU threads look them up without a lock. The name is copied
 * (truncated to SPK_BUS_NAME_MAX - 1 bytes); ops and opaque must stay
 * valid until spk_bus_free() (for a VM's bus: spk_vm_destroy()).
 * Thread-safe.
 */
int spk_bus_register(struct spk_bus *bus, enum spk_bus_space space, uint64_t base, uint64_t len,
		     const char *name, const struct spk_bus_ops *ops, void *opaque,
		     unsigned flags);

/* Set the miss policy of a space (before or after freezing). */
int spk_bus_set_miss_policy(struct spk_bus *bus, enum spk_bus_space space,
			    enum spk_bus_miss policy);
enum spk_bus_miss spk_bus_miss_policy(const struct spk_bus *bus, enum spk_bus_space space);

/* Freeze every table: no more registrations. Idempotent. */
void spk_bus_freeze(struct spk_bus *bus);
bool spk_bus_frozen(const struct spk_bus *bus);

/*
 * Route an access. Returns 0 when a device took it (*value filled for
 * reads), -ENOENT when no device covers [addr, addr + width) (a miss sets
 * no spk_last_error() message: misses are the hot path of guests that probe
 * empty ports), -EINVAL for a bad width or an unknown space. A range that covers the start but not
 * the end of the access counts as a miss, logged with the device's name.
 * In SYSREG an address is a register number: an access of any width
 * covers the one register addr.
 * Lock-free lookup once frozen; before that the caller must not race
 * registrations.
 */
int spk_bus_read(struct spk_bus *bus, enum spk_bus_space space, uint64_t addr, unsigned width,
		 uint64_t *value, const struct spk_bus_access *who);
int spk_bus_write(struct spk_bus *bus, enum spk_bus_space space, uint64_t addr, unsigned width,
		  uint64_t value, const struct spk_bus_access *who);

/* The name of the device covering addr, or NULL. */
const char *spk_bus_owner(const struct spk_bus *bus, enum spk_bus_space space, uint64_t addr);

/* Call fn for each range of space in address order. */
void spk_bus_for_each(const struct spk_bus *bus, enum spk_bus_space space,
		      void (*fn)(uint64_t base, uint64_t len, const char *name, void *ctx),
		      void *ctx);

const char *spk_bus_space_name(enum spk_bus_space space);

#ifdef __cplusplus
}
#endif
#endif
