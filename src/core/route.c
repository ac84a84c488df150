/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Routing of the accesses a backend hands over (SPK_STEP_ROUTE, see
 * core/backend.h): MMIO against the memory map and the bus, port I/O and
 * system registers against the bus, each with its space's miss policy,
 * and hypercalls against the library's numbers and the embedder's table.
 * What is handled here is completed at once through the backend; what is
 * not becomes the exit the caller gets, with the completion prepared.
 */
#include <string.h>

#include "core/backend.h"
#include "core/internal.h"

static bool valid_width(unsigned w, unsigned max)
{
	return w <= max && w && (w & (w - 1)) == 0;
}

static void miss_fatal(struct spk_exit *exit, const char *space, uint64_t addr, unsigned width,
                       bool is_write)
{
	spk_exit_set_internal(exit, SPK_INTERNAL_STRICT_MISS, addr,
	                      "%s %s of %u bytes at 0x%llx hits no device", space,
	                      is_write ? "write" : "read", width, (unsigned long long)addr);
}

/* ---- PIO -------------------------------------------------------------- */

/* Route every element of a (rep) port access; false if the first missed. */
static bool pio_to_bus(struct spk_vcpu *vcpu, uint16_t port, unsigned width, bool is_write,
                       uint32_t count, uint8_t *data)
{
	struct spk_bus_access who = {.vcpu = vcpu->id, .addr = port};

	for (uint32_t i = 0; i < count; i++) {
		uint8_t *p = data + (size_t)i * width;
		uint64_t v = 0;
		int rc;

		if (is_write)
			rc = spk_bus_write(vcpu->vm->bus, SPK_BUS_PIO, port, width,
			                   spk_get_le(p, width), &who);
		else
			rc = spk_bus_read(vcpu->vm->bus, SPK_BUS_PIO, port, width, &v, &who);
		if (rc < 0) {
			if (i == 0)
				return false;
			v = ~0ull; /* a later element missing reads as an empty port */
		}
		if (!is_write)
			spk_put_le(p, v, width);
	}
	return true;
}

static bool route_pio(struct spk_vcpu *vcpu, struct spk_exit *exit)
{
	uint16_t port = exit->pio.port;
	unsigned width = exit->pio.width;
	bool is_write = exit->pio.is_write;
	uint32_t count = exit->pio.count;
	uint8_t *data = exit->pio.data;

	/* the backend checked these; a bad one must not reach the loop */
	if (!valid_width(width, 4) || count == 0 || count > 4096 || !data) {
		spk_exit_set_internal(exit, SPK_INTERNAL_BAD_EXIT, 0,
		                      "PIO exit with width %u count %u", width, count);
		return false;
	}
	if (pio_to_bus(vcpu, port, width, is_write, count, data))
		return true;
	switch (spk_bus_miss_policy(vcpu->vm->bus, SPK_BUS_PIO)) {
	case SPK_MISS_IGNORE:
		if (!is_write)
			memset(data, 0xff, (size_t)width * count);
		return true;
	case SPK_MISS_FATAL:
		miss_fatal(exit, "PIO", port, width, is_write);
		return false;
	default:
		break;
	}
	if (!is_write) {
		memset(data, 0xff, (size_t)width * count); /* if nobody completes it */
		exit->priv.flags = SPK_COMPLETE_PIO;
	}
	return false;
}

/* ---- MMIO --------------------------------------------------------------- */

static bool mmio_to_bus(struct spk_vcpu *vcpu, uint64_t addr, unsigned len, bool is_write,
                        uint8_t *data)
{
	struct spk_bus_access who = {.vcpu = vcpu->id, .addr = addr};
	uint64_t v = 0;

	if (valid_width(len, 8)) {
		if (is_write)
			return spk_bus_write(vcpu->vm->bus, SPK_BUS_MMIO, addr, len,
			                     spk_get_le(data, len), &who) == 0;
		if (spk_bus_read(vcpu->vm->bus, SPK_BUS_MMIO, addr, len, &v, &who) < 0)
			return false;
		spk_put_le(data, v, len);
		return true;
	}
	/* KVM splits page-crossing accesses into odd sizes: go byte by byte */
	if (!spk_bus_owner(vcpu->vm->bus, SPK_BUS_MMIO, addr))
		return false;
	for (unsigned i = 0; i < len; i++) {
		who.addr = addr + i;
		if (is_write)
			spk_bus_write(vcpu->vm->bus, SPK_BUS_MMIO, addr + i, 1, data[i], &who);
		else if (spk_bus_read(vcpu->vm->bus, SPK_BUS_MMIO, addr + i, 1, &v, &who) == 0)
			data[i] = (uint8_t)v;
		else
			data[i] = 0xff;
	}
	return true;
}

static void make_npf(struct spk_exit *exit, uint64_t addr, unsigned len, bool is_write,
                     const uint8_t *data, bool readonly)
{
	exit->kind = SPK_EXIT_NESTED_PAGE_FAULT;
	exit->npf.addr = addr;
	exit->npf.access = is_write ? SPK_ACCESS_WRITE : SPK_ACCESS_READ;
	exit->npf.width = (uint8_t)len;
	exit->npf.readonly = readonly;
	if (is_write) {
		memcpy(exit->npf.data, data, len);
	} else {
		memset(exit->npf.data, 0xff, sizeof(exit->npf.data));
		exit->priv.flags = SPK_COMPLETE_NPF;
	}
}

/* A value the core answered goes back to the guest now (and not again:
 * the flags are cleared for an exit returned under RETURN_HANDLED). */
static bool complete_now(struct spk_vcpu *vcpu, struct spk_exit *exit, uint32_t flags)
{
	exit->priv.flags = flags;
	vcpu->vm->ops->vcpu_complete(vcpu, exit);
	exit->priv.flags = SPK_COMPLETE_NONE;
	return true;
}

static bool route_mmio(struct spk_vcpu *vcpu, struct spk_exit *exit)
{
	uint64_t addr = exit->mmio.addr;
	unsigned len = exit->mmio.width;
	bool is_write = exit->mmio.is_write;
	uint8_t data[8];

	if (len == 0 || len > 8) {
		spk_exit_set_internal(exit, SPK_INTERNAL_BAD_EXIT, 0,
		                      "MMIO exit of %u bytes at 0x%llx", len,
		                      (unsigned long long)addr);
		return false;
	}
	/* npf.data overlaps mmio.data in the union: work on a copy */
	memcpy(data, exit->mmio.data, sizeof(data));
	const struct spk_mem_region *r = spk_mem_find(vcpu->vm->mem, addr);
	if (r) {
		/* memory, yet the guest exited: a write to ROM or an unpopulated region */
		make_npf(exit, addr, len, is_write, data, r->type == SPK_MEM_READONLY);
		return false;
	}
	if (mmio_to_bus(vcpu, addr, len, is_write, exit->mmio.data))
		return is_write || complete_now(vcpu, exit, SPK_COMPLETE_MMIO);

	switch (spk_bus_miss_policy(vcpu->vm->bus, SPK_BUS_MMIO)) {
	case SPK_MISS_IGNORE:
		if (is_write)
			return true;
		memset(exit->mmio.data, 0xff, len);
		return complete_now(vcpu, exit, SPK_COMPLETE_MMIO);
	case SPK_MISS_FATAL:
		miss_fatal(exit, "MMIO", addr, len, is_write);
		return false;
	case SPK_MISS_FAULT:
		make_npf(exit, addr, len, is_write, data, false);
		return false;
	case SPK_MISS_EXIT:
	default:
		break;
	}
	if (!is_write) {
		memset(exit->mmio.data, 0xff, sizeof(exit->mmio.data));
		exit->priv.flags = SPK_COMPLETE_MMIO;
	}
	return false;
}

/* ---- system registers ------------------------------------------------------ */

static bool route_sysreg(struct spk_vcpu *vcpu, struct spk_exit *exit)
{
	uint64_t id = exit->sysreg.id;
	bool is_write = exit->sysreg.is_write;
	struct spk_bus_access who = {.vcpu = vcpu->id, .addr = id};
	uint64_t v = 0;
	int rc;

	exit->sysreg.fault = false;
	if (is_write)
		rc = spk_bus_write(vcpu->vm->bus, SPK_BUS_SYSREG, id, 8, exit->sysreg.value, &who);
	else
		rc = spk_bus_read(vcpu->vm->bus, SPK_BUS_SYSREG, id, 8, &v, &who);
	if (rc == 0) {
		if (is_write)
			return true;
		exit->sysreg.value = v;
		return complete_now(vcpu, exit, SPK_COMPLETE_SYSREG);
	}
	switch (spk_bus_miss_policy(vcpu->vm->bus, SPK_BUS_SYSREG)) {
	case SPK_MISS_IGNORE:
		if (is_write)
			return true;
		exit->sysreg.value = ~0ull;
		return complete_now(vcpu, exit, SPK_COMPLETE_SYSREG);
	case SPK_MISS_FATAL:
		miss_fatal(exit, "SYSREG", id, 8, is_write);
		return false;
	default:
		break;
	}
	if (!is_write)
		exit->sysreg.value = 0;
	exit->priv.flags = SPK_COMPLETE_SYSREG;
	return false;
}

/* ---- hypercalls ---------------------------------------------------------- */

/* What each number does is hypercall.c's; the result goes back at once. */
static bool route_hypercall(struct spk_vcpu *vcpu, struct spk_exit *exit)
{
	struct spk_vm *vm = vcpu->vm;
	uint64_t args[6], rax = 0;
	const struct spk_hc_ctx c = {.vcpu = vcpu,
	                             .vcpu_id = vcpu->id,
	                             .mem = vm->mem,
	                             .console_fd = vm->console_fd,
	                             .table = vm->hc};

	memcpy(args, exit->hypercall.args, sizeof(args));
	if (!spk_hypercall_dispatch(&c, exit->hypercall.nr, args, exit, &rax))
		return false;
	exit->priv.hc_ret = rax;
	return complete_now(vcpu, exit, SPK_COMPLETE_HC_PRIV);
}

bool spk_route_exit(struct spk_vcpu *vcpu, struct spk_exit *exit)
{
	switch (exit->kind) {
	case SPK_EXIT_PIO:
		return route_pio(vcpu, exit);
	case SPK_EXIT_MMIO:
		return route_mmio(vcpu, exit);
	case SPK_EXIT_SYSREG:
		return route_sysreg(vcpu, exit);
	case SPK_EXIT_HYPERCALL:
		return route_hypercall(vcpu, exit);
	default:
		spk_exit_set_internal(exit, SPK_INTERNAL_BAD_EXIT, (uint64_t)exit->kind,
		                      "the backend asked to route a %s exit",
		                      spk_exit_name(exit->kind));
		return false;
	}
}
