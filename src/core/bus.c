// SPDX-License-Identifier: Apache-2.0
/*
 * The bus router (DESIGN.md section 2). Each space is an array of pointers
 * to entries sorted by base: entries are allocated one by one and never
 * move, because each owns the mutex its device runs under.
 *
 * Registration takes the bus lock. Once the bus is frozen the tables never
 * change again, so vCPU threads look up devices with a plain binary search
 * and no bus-wide lock; the release store of `frozen` publishes the final
 * tables to them. Before the freeze, lookups take the bus lock so that a
 * stray access cannot see a half-grown table.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sparkler/bus.h>
#include <sparkler/mem.h>

#include "core/internal.h"

/* A range that clips an access is a guest bug or probe: log the first few
 * such misses per device, then only every MISS_LOG_EVERY-th, so that a
 * hostile guest cannot flood the log. */
#define MISS_LOG_FIRST 8
#define MISS_LOG_EVERY 1024

struct bus_entry {
	uint64_t base;
	uint64_t len;
	uint64_t last; /* base + len - 1: no overflow for a range ending at 2^64 */
	char name[SPK_BUS_NAME_MAX];
	struct spk_bus_ops ops;
	void *opaque;
	unsigned flags;
	pthread_mutex_t lock; /* the device's lock, unless SPK_BUS_LOCKLESS */
	uint64_t clipped;     /* accesses that ran past the end (atomic) */
};

struct bus_table {
	struct bus_entry **entries; /* sorted by base */
	size_t n;
	size_t cap;
	int miss; /* enum spk_bus_miss; atomic: may change after the freeze */
};

struct spk_bus {
	pthread_mutex_t lock; /* serialises registrations */
	bool frozen;          /* atomic */
	struct bus_table tables[SPK_BUS__COUNT];
	/* a VM's bus (spk_bus_attach_vm): MMIO may not cover its RAM, PIO
	 * not its hypercall port */
	const struct spk_mem *mem;
	int hc_port; /* -1: none */
};

/* Where each space ends: PIO has 16-bit ports; system register numbers
 * are the architecture's (x86 MSRs are 32 bits, arm64 encodings are not). */
static const uint64_t space_last[SPK_BUS__COUNT] = {
    [SPK_BUS_MMIO] = UINT64_MAX,
    [SPK_BUS_PIO] = 0xffff,
    [SPK_BUS_SYSREG] = UINT64_MAX,
};

static const char *const space_names[SPK_BUS__COUNT] = {
    [SPK_BUS_MMIO] = "MMIO",
    [SPK_BUS_PIO] = "PIO",
    [SPK_BUS_SYSREG] = "SYSREG",
};

const char *spk_bus_space_name(enum spk_bus_space space)
{
	return (unsigned)space < SPK_BUS__COUNT ? space_names[space] : "UNKNOWN";
}

static bool space_ok(enum spk_bus_space space)
{
	return (unsigned)space < SPK_BUS__COUNT;
}

int spk_bus_new(struct spk_bus **out)
{
	struct spk_bus *bus;
	int rc;

	if (!out)
		return spk_fail(EINVAL, "bus: new without an out pointer");
	bus = calloc(1, sizeof(*bus));
	if (!bus)
		return spk_fail(ENOMEM, "bus: out of memory");
	rc = pthread_mutex_init(&bus->lock, NULL);
	if (rc)
		goto err_free;
	bus->hc_port = -1;
	bus->tables[SPK_BUS_MMIO].miss = SPK_MISS_FAULT;
	bus->tables[SPK_BUS_PIO].miss = SPK_MISS_IGNORE;
	bus->tables[SPK_BUS_SYSREG].miss = SPK_MISS_EXIT;
	*out = bus;
	return 0;

err_free:
	free(bus);
	return spk_fail(rc, "bus: cannot create the bus lock: %s", strerror(rc));
}

static void table_free(struct bus_table *t)
{
	for (size_t i = 0; i < t->n; i++) {
		pthread_mutex_destroy(&t->entries[i]->lock);
		free(t->entries[i]);
	}
	free(t->entries);
}

void spk_bus_free(struct spk_bus *bus)
{
	if (!bus)
		return;
	for (unsigned s = 0; s < SPK_BUS__COUNT; s++)
		table_free(&bus->tables[s]);
	pthread_mutex_destroy(&bus->lock);
	free(bus);
}

/* Index of the first entry whose base is above addr. */
static size_t upper_bound(const struct bus_table *t, uint64_t addr)
{
	size_t lo = 0, hi = t->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (t->entries[mid]->base <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* The entry covering addr, or NULL. The caller guarantees a stable table. */
static struct bus_entry *table_find(const struct bus_table *t, uint64_t addr)
{
	size_t i = upper_bound(t, addr);

	if (i == 0 || addr > t->entries[i - 1]->last)
		return NULL;
	return t->entries[i - 1];
}

/*
 * Look addr up in space. Lock-free once frozen; before that under the bus
 * lock. The entry itself stays valid until spk_bus_free(): entries never
 * move or go away.
 */
static struct bus_entry *bus_find(const struct spk_bus *bus, enum spk_bus_space space,
                                  uint64_t addr)
{
	pthread_mutex_t *lock = (pthread_mutex_t *)&bus->lock;
	struct bus_entry *e = NULL;

	if (__atomic_load_n(&bus->frozen, __ATOMIC_ACQUIRE))
		return table_find(&bus->tables[space], addr);
	pthread_mutex_lock(lock);
	e = table_find(&bus->tables[space], addr);
	pthread_mutex_unlock(lock);
	return e;
}

/* ---- registration ---- */

static int check_range(enum spk_bus_space space, uint64_t base, uint64_t len, const char *name,
                       uint64_t *last)
{
	if (len == 0)
		return spk_fail(EINVAL, "bus: %s range 0x%" PRIx64 "+0 of \"%s\" is empty",
		                space_names[space], base, name);
	if (!spk_add_ok(base, len - 1, last))
		return spk_fail(EINVAL, "bus: %s range 0x%" PRIx64 "+0x%" PRIx64 " of \"%s\" wraps",
		                space_names[space], base, len, name);
	if (*last > space_last[space])
		return spk_fail(EINVAL,
		                "bus: %s range 0x%" PRIx64 "+0x%" PRIx64 " of \"%s\" runs past the "
		                "end of the space (0x%" PRIx64 ")",
		                space_names[space], base, len, name, space_last[space]);
	return 0;
}

void spk_bus_attach_vm(struct spk_bus *bus, const struct spk_mem *mem, int hc_port)
{
	bus->mem = mem;
	bus->hc_port = hc_port;
}

/* A VM's bus: a range no access could ever reach is refused. */
static int check_dead(const struct spk_bus *bus, enum spk_bus_space space, uint64_t base,
                      uint64_t last, const char *name)
{
	const struct spk_mem_region *r;
	size_t n;

	if (space == SPK_BUS_PIO && bus->hc_port >= 0 && base <= (uint64_t)bus->hc_port &&
	    last >= (uint64_t)bus->hc_port)
		return spk_fail(EINVAL,
		                "bus: PIO range 0x%" PRIx64 "-0x%" PRIx64 " of \"%s\" covers the "
		                "hypercall port 0x%x, which the library always takes first",
		                base, last, name, bus->hc_port);
	if (space != SPK_BUS_MMIO || !bus->mem)
		return 0;
	n = spk_mem_regions(bus->mem, &r);
	for (size_t i = 0; i < n; i++) {
		uint64_t rlast = r[i].gpa + (r[i].size - 1);

		if (base <= rlast && last >= r[i].gpa)
			return spk_fail(EINVAL,
			                "bus: MMIO range 0x%" PRIx64 "-0x%" PRIx64
			                " of \"%s\" overlaps "
			                "guest memory \"%s\" at 0x%" PRIx64 "+0x%" PRIx64
			                ": the guest would reach the memory, never the device",
			                base, last, name, r[i].name, r[i].gpa, r[i].size);
	}
	return 0;
}

static int overlap_error(enum spk_bus_space space, uint64_t base, uint64_t len, const char *name,
                         const struct bus_entry *old)
{
	return spk_fail(EEXIST,
	                "bus: %s range 0x%" PRIx64 "+0x%" PRIx64 " of \"%s\" overlaps 0x%" PRIx64
	                "+0x%" PRIx64 " of \"%s\"",
	                space_names[space], base, len, name, old->base, old->len, old->name);
}

/* Where [base, last] goes in t, or -EEXIST if it overlaps a neighbour. */
static int find_slot(const struct bus_table *t, enum spk_bus_space space, uint64_t base,
                     uint64_t last, uint64_t len, const char *name, size_t *slot)
{
	size_t i = upper_bound(t, base);

	/* Sorted and disjoint: only the neighbours on each side can overlap. */
	if (i > 0 && t->entries[i - 1]->last >= base)
		return overlap_error(space, base, len, name, t->entries[i - 1]);
	if (i < t->n && t->entries[i]->base <= last)
		return overlap_error(space, base, len, name, t->entries[i]);
	*slot = i;
	return 0;
}

static int table_grow(struct bus_table *t)
{
	size_t cap = t->cap ? t->cap * 2 : 16;
	struct bus_entry **v;

	if (t->n < t->cap)
		return 0;
	/* an array of pointers: entries own mutexes and must not move */
	v = realloc(t->entries, cap * sizeof(*v)); // NOLINT(bugprone-sizeof-expression)
	if (!v)
		return spk_fail(ENOMEM, "bus: out of memory for %zu devices", cap);
	t->entries = v;
	t->cap = cap;
	return 0;
}

static int entry_new(uint64_t base, uint64_t len, uint64_t last, const char *name,
                     const struct spk_bus_ops *ops, void *opaque, unsigned flags,
                     struct bus_entry **out)
{
	struct bus_entry *e = calloc(1, sizeof(*e));
	int rc;

	if (!e)
		return spk_fail(ENOMEM, "bus: out of memory for device \"%s\"", name);
	rc = pthread_mutex_init(&e->lock, NULL);
	if (rc) {
		free(e);
		return spk_fail(rc, "bus: cannot create the lock of \"%s\": %s", name,
		                strerror(rc));
	}
	e->base = base;
	e->len = len;
	e->last = last;
	/* Truncation is intended: names are for messages only. */
	snprintf(e->name, sizeof(e->name), "%.*s", SPK_BUS_NAME_MAX - 1, name);
	e->ops = *ops;
	e->opaque = opaque;
	e->flags = flags;
	*out = e;
	return 0;
}

/* Insert a checked range into t under the bus lock. */
static int table_insert(struct bus_table *t, enum spk_bus_space space, uint64_t base, uint64_t len,
                        uint64_t last, const char *name, const struct spk_bus_ops *ops,
                        void *opaque, unsigned flags)
{
	struct bus_entry *e = NULL;
	size_t slot = 0;
	int rc;

	rc = find_slot(t, space, base, last, len, name, &slot);
	if (rc)
		return rc;
	rc = table_grow(t);
	if (rc)
		return rc;
	rc = entry_new(base, len, last, name, ops, opaque, flags, &e);
	if (rc)
		return rc;
	memmove(&t->entries[slot + 1], &t->entries[slot],
	        (t->n - slot) * sizeof(*t->entries)); // NOLINT(bugprone-sizeof-expression)
	t->entries[slot] = e;
	t->n++;
	return 0;
}

int spk_bus_register(struct spk_bus *bus, enum spk_bus_space space, uint64_t base, uint64_t len,
                     const char *name, const struct spk_bus_ops *ops, void *opaque, unsigned flags)
{
	uint64_t last = 0;
	int rc;

	if (!bus || !space_ok(space))
		return spk_fail(EINVAL, "bus: register \"%s\" %s", name ? name : "(null)",
		                bus ? "in an unknown space" : "without a bus");
	if (!name || !name[0] || !ops)
		return spk_fail(EINVAL, "bus: %s range 0x%" PRIx64 "+0x%" PRIx64 " without %s",
		                space_names[space], base, len, ops ? "a name" : "ops");
	if (flags & ~(unsigned)SPK_BUS_LOCKLESS)
		return spk_fail(EINVAL, "bus: device \"%s\" has unknown flags 0x%x", name, flags);
	rc = check_range(space, base, len, name, &last);
	if (rc)
		return rc;
	rc = check_dead(bus, space, base, last, name);
	if (rc)
		return rc;
	pthread_mutex_lock(&bus->lock);
	if (bus->frozen)
		rc = spk_fail(EBUSY,
		              "bus: cannot register \"%s\" at %s 0x%" PRIx64 "+0x%" PRIx64
		              ": the bus is frozen (the VM has run)",
		              name, space_names[space], base, len);
	else
		rc = table_insert(&bus->tables[space], space, base, len, last, name, ops, opaque,
		                  flags);
	pthread_mutex_unlock(&bus->lock);
	return rc;
}

void spk_bus_freeze(struct spk_bus *bus)
{
	if (!bus)
		return;
	pthread_mutex_lock(&bus->lock);
	__atomic_store_n(&bus->frozen, true, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&bus->lock);
}

bool spk_bus_frozen(const struct spk_bus *bus)
{
	return bus && __atomic_load_n(&bus->frozen, __ATOMIC_ACQUIRE);
}

int spk_bus_set_miss_policy(struct spk_bus *bus, enum spk_bus_space space, enum spk_bus_miss policy)
{
	if (!bus || !space_ok(space))
		return spk_fail(EINVAL, "bus: set miss policy %s",
		                bus ? "of an unknown space" : "without a bus");
	if ((unsigned)policy > SPK_MISS_FATAL)
		return spk_fail(EINVAL, "bus: unknown %s miss policy %d", space_names[space],
		                (int)policy);
	__atomic_store_n(&bus->tables[space].miss, (int)policy, __ATOMIC_RELAXED);
	return 0;
}

enum spk_bus_miss spk_bus_miss_policy(const struct spk_bus *bus, enum spk_bus_space space)
{
	/* Deny by default: a caller asking about nonsense gets strict mode. */
	if (!bus || !space_ok(space))
		return SPK_MISS_FATAL;
	return (enum spk_bus_miss)__atomic_load_n(&bus->tables[space].miss, __ATOMIC_RELAXED);
}

/* ---- routing ---- */

static uint64_t width_mask(unsigned width)
{
	return width >= 8 ? UINT64_MAX : (UINT64_C(1) << (8 * width)) - 1;
}

static bool width_ok(unsigned width)
{
	return width == 1 || width == 2 || width == 4 || width == 8;
}

/* The access [addr, addr + width) runs past the end of e: a logged miss. */
static int clipped_miss(struct bus_entry *e, enum spk_bus_space space, const char *dir,
                        uint64_t addr, unsigned width)
{
	uint64_t n = __atomic_fetch_add(&e->clipped, 1, __ATOMIC_RELAXED);

	if (n < MISS_LOG_FIRST || (n + 1) % MISS_LOG_EVERY == 0)
		spk_log(SPK_LOG_WARN,
		        "bus: %s %s at 0x%" PRIx64 " width %u runs past the end of \"%s\""
		        " (0x%" PRIx64 "+0x%" PRIx64 "); clipped access #%" PRIu64 "%s",
		        space_names[space], dir, addr, width, e->name, e->base, e->len, n + 1,
		        n + 1 == MISS_LOG_FIRST ? ", logging only every 1024th from now" : "");
	return -ENOENT; /* logged above, rate-limited; no spk_fail on the hot path */
}

/*
 * The last address an access touches. MMIO and PIO addresses count bytes;
 * a SYSREG address is a register number, and one access reaches one
 * register whatever its width (an MSR is 8 bytes wide but one number).
 * False when the access wraps past 2^64.
 */
static bool access_last(enum spk_bus_space space, uint64_t addr, unsigned width, uint64_t *last)
{
	if (space == SPK_BUS_SYSREG) {
		*last = addr;
		return true;
	}
	return spk_add_ok(addr, width - 1, last);
}

/*
 * Find the device taking the access at addr, or fail: -EINVAL for bad
 * arguments, -ENOENT for a miss.
 */
static int route(struct spk_bus *bus, enum spk_bus_space space, uint64_t addr, unsigned width,
                 const char *dir, struct bus_entry **out)
{
	struct bus_entry *e = NULL;
	uint64_t end;

	if (!bus || !space_ok(space))
		return spk_fail(EINVAL, "bus: %s at 0x%" PRIx64 " %s", dir, addr,
		                bus ? "in an unknown space" : "without a bus");
	if (!width_ok(width))
		return spk_fail(EINVAL, "bus: %s %s at 0x%" PRIx64 " has bad width %u",
		                space_names[space], dir, addr, width);
	e = bus_find(bus, space, addr);
	if (!e)
		return -ENOENT; /* the common case for empty ports: no message to format */
	if (!access_last(space, addr, width, &end) || end > e->last)
		return clipped_miss(e, space, dir, addr, width);
	*out = e;
	return 0;
}

static void entry_lock(struct bus_entry *e)
{
	if (!(e->flags & SPK_BUS_LOCKLESS))
		pthread_mutex_lock(&e->lock);
}

static void entry_unlock(struct bus_entry *e)
{
	if (!(e->flags & SPK_BUS_LOCKLESS))
		pthread_mutex_unlock(&e->lock);
}

/* Devices always see where the access really went, whoever made it. */
static struct spk_bus_access who_of(const struct spk_bus_access *who, uint64_t addr)
{
	return (struct spk_bus_access){.vcpu = who ? who->vcpu : UINT32_MAX, .addr = addr};
}

int spk_bus_read(struct spk_bus *bus, enum spk_bus_space space, uint64_t addr, unsigned width,
                 uint64_t *value, const struct spk_bus_access *who)
{
	struct spk_bus_access w = who_of(who, addr);
	struct bus_entry *e = NULL;
	uint64_t v = UINT64_MAX;
	int rc;

	if (!value)
		return spk_fail(EINVAL, "bus: read at 0x%" PRIx64 " without a value pointer", addr);
	rc = route(bus, space, addr, width, "read", &e);
	if (rc)
		return rc;
	if (e->ops.read) {
		entry_lock(e);
		v = e->ops.read(e->opaque, addr - e->base, width, &w);
		entry_unlock(e);
	}
	*value = v & width_mask(width);
	return 0;
}

int spk_bus_write(struct spk_bus *bus, enum spk_bus_space space, uint64_t addr, unsigned width,
                  uint64_t value, const struct spk_bus_access *who)
{
	struct spk_bus_access w = who_of(who, addr);
	struct bus_entry *e = NULL;
	int rc;

	rc = route(bus, space, addr, width, "write", &e);
	if (rc)
		return rc;
	if (e->ops.write) {
		entry_lock(e);
		e->ops.write(e->opaque, addr - e->base, width, value & width_mask(width), &w);
		entry_unlock(e);
	}
	return 0;
}

const char *spk_bus_owner(const struct spk_bus *bus, enum spk_bus_space space, uint64_t addr)
{
	const struct bus_entry *e;

	if (!bus || !space_ok(space))
		return NULL;
	e = bus_find(bus, space, addr);
	return e ? e->name : NULL;
}

void spk_bus_for_each(const struct spk_bus *bus, enum spk_bus_space space,
                      void (*fn)(uint64_t base, uint64_t len, const char *name, void *ctx),
                      void *ctx)
{
	const struct bus_table *t;

	if (!bus || !space_ok(space) || !fn)
		return;
	t = &bus->tables[space];
	/*
	 * No lock: fn may register devices (it must not race other threads
	 * doing so, like any pre-freeze access). Re-read the table on every
	 * step because such a registration may grow it.
	 */
	for (size_t i = 0; i < t->n; i++) {
		const struct bus_entry *e = t->entries[i];

		fn(e->base, e->len, e->name, ctx);
	}
}
