/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Legacy PC devices for Linux guests: 8250 UART, i8042, CMOS RTC, ACPI PM
 * (power off, reset) and the boot timer. Each is an object with bus ops;
 * the caller registers it (spk_bus_register) at the range it wants, with
 * the object as opaque and SPK_BUS_LOCKLESS: every device has its own lock
 * because the host side (stdin, signals, the API) reaches it too.
 *
 * The contract of every device below (the library's rules: vcpu.h):
 * - spk_X_new(cfg, out): any time, any thread; copies what it needs from
 *   cfg (the callbacks' ctx pointers stay the caller's and must outlive
 *   the device). 0 and *out, or -EINVAL (NULL cfg or out, a bad field)
 *   or -ENOMEM with a message, *out NULL. The caller owns the device.
 * - spk_X_free(dev): takes NULL; after the device is off every bus (or
 *   its VM destroyed) and no host thread calls it any more. Not
 *   thread-safe against the device's other calls.
 * - spk_X_ops() and spk_X_state_ops(): static tables, any time, any
 *   thread. Their callbacks are the exit path: the bus passes the device
 *   it was registered with, and a NULL device there is undefined.
 * - The host-side calls (receive, power button, Ctrl+Alt+Del, ...) take
 *   the device's lock: thread-safe, also against the guest's accesses on
 *   vCPU threads; none is signal-safe. A NULL device is refused with a
 *   message (-EINVAL, or the neutral value the function names).
 */
#ifndef SPARKLER_DEVICES_H
#define SPARKLER_DEVICES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <sparkler/bus.h>
#include <sparkler/exit.h>

#ifdef __cplusplus
extern "C" {
#endif

struct spk_vm;
struct spk_dev_state_ops; /* snapshot.h: every device has one */

/* An interrupt line a device drives. */
struct spk_irq_line {
	void (*set)(void *ctx, uint32_t gsi, bool level);
	void *ctx;
	uint32_t gsi;
};

static inline void spk_irq_set(const struct spk_irq_line *l, bool level)
{
	if (l && l->set)
		l->set(l->ctx, l->gsi, level);
}

/* A line of the VM's in-kernel irqchip (spk_vm_irq_line): a value that
 * borrows vm, valid until spk_vm_destroy(). Any time, thread-safe; setting
 * it is as thread-safe as spk_vm_irq_line() (a failure is logged once per
 * GSI). NULL vm: a line that goes nowhere (set is NULL), with a message. */
struct spk_irq_line spk_vm_irq(struct spk_vm *vm, uint32_t gsi);

/* What a device asks the VM to do: SYSTEM_DOWN or RESET. */
typedef void (*spk_stop_fn)(void *ctx, enum spk_exit_kind kind);

/* ---- 8250/16550A UART (8 ports) ---- */
struct spk_uart;
struct spk_uart_config {
	const char *name;            /* for log lines: "com1" */
	struct spk_irq_line irq;
	/* Bytes the guest transmits (THR writes), in order. May be NULL. */
	void (*tx)(void *ctx, const uint8_t *buf, size_t n);
	void *tx_ctx;
};
int spk_uart_new(const struct spk_uart_config *cfg, struct spk_uart **out);
void spk_uart_free(struct spk_uart *u);
const struct spk_bus_ops *spk_uart_ops(void);
/* Host input (a keyboard): queue up to n bytes into the 16-byte receive
 * FIFO, raise the interrupt if enabled; returns how many were taken (none
 * in loopback mode). buf is only read during the call. Thread-safe. NULL
 * u or buf: 0, with a message. */
size_t spk_uart_receive(struct spk_uart *u, const uint8_t *buf, size_t n);
/* How many bytes spk_uart_receive() would take now (0 in loopback mode).
 * Thread-safe. NULL: 0, with a message. */
size_t spk_uart_rx_room(struct spk_uart *u);
/* Its state, for snapshots (opaque: the device). */
const struct spk_dev_state_ops *spk_uart_state_ops(void);

/* ---- i8042 keyboard controller (ports 0x60 and 0x64) ---- */
struct spk_i8042;
struct spk_i8042_config {
	struct spk_irq_line kbd_irq; /* IRQ 1 */
	spk_stop_fn stop;            /* RESET on command 0xFE */
	void *stop_ctx;
};
int spk_i8042_new(const struct spk_i8042_config *cfg, struct spk_i8042 **out);
void spk_i8042_free(struct spk_i8042 *k);
/* Register ops at 0x60 and at 0x64, one byte each, both with opaque k:
 * the device tells them apart by spk_bus_access.addr. */
const struct spk_bus_ops *spk_i8042_ops(void);
/* Type Ctrl+Alt+Del (the scancodes, in the set the guest expects, with
 * IRQ 1), as Firecracker does. 0, or -EINVAL (NULL), -ENOSPC (the output
 * buffer is full), with a message. Thread-safe. */
int spk_i8042_ctrl_alt_del(struct spk_i8042 *k);
/* Its state, for snapshots (opaque: the device). */
const struct spk_dev_state_ops *spk_i8042_state_ops(void);

/* ---- MC146818 CMOS RTC (ports 0x70, 0x71) ---- */
struct spk_rtc;
struct spk_rtc_config {
	/* The wall clock; NULL means time(NULL) (tests pass a fixed one). */
	time_t (*now)(void *ctx);
	void *now_ctx;
};
int spk_rtc_new(const struct spk_rtc_config *cfg, struct spk_rtc **out);
void spk_rtc_free(struct spk_rtc *r);
const struct spk_bus_ops *spk_rtc_ops(void); /* register 2 ports at 0x70 */
/* Its state, for snapshots (opaque: the device). */
const struct spk_dev_state_ops *spk_rtc_state_ops(void);

/* ---- ARM PL031 real-time clock (MMIO, 4 KiB; the arm64 machine's) ---- */
struct spk_pl031;
struct spk_pl031_config {
	struct spk_irq_line irq; /* the match interrupt (level) */
	/* The wall clock; NULL means time(NULL) (tests pass their own). */
	time_t (*now)(void *ctx);
	void *now_ctx;
};
int spk_pl031_new(const struct spk_pl031_config *cfg, struct spk_pl031 **out);
void spk_pl031_free(struct spk_pl031 *p);
const struct spk_bus_ops *spk_pl031_ops(void); /* register 0x1000 bytes */
/* Its state, for snapshots (opaque: the device). */
const struct spk_dev_state_ops *spk_pl031_state_ops(void);

/* ---- ACPI PM1a event/control blocks, the GPE0 block and the reset register ---- */
struct spk_acpi_pm;
struct spk_acpi_pm_config {
	uint8_t s5_slp_typ; /* SLP_TYP value of \_S5 (platform.h) */
	uint8_t reset_value; /* the FADT reset value */
	spk_stop_fn stop;    /* SYSTEM_DOWN on S5, RESET on the reset value */
	void *stop_ctx;
	struct spk_irq_line sci; /* the SCI (level): PM1 and GPE0 events */
};
int spk_acpi_pm_new(const struct spk_acpi_pm_config *cfg, struct spk_acpi_pm **out);
void spk_acpi_pm_free(struct spk_acpi_pm *p);
/* Register at PM1a_EVT (4 ports), at PM1a_CNT (2 ports), at GPE0_BLK (4
 * ports) and at the reset port (1), all with opaque p; told apart by
 * spk_bus_access.addr, so set_ports says which is which (default: the
 * platform's, platform.h). set_ports: before the ports are registered (or
 * while no vCPU runs); thread-safe; NULL p: nothing, with a message. */
const struct spk_bus_ops *spk_acpi_pm_ops(void);
void spk_acpi_pm_set_ports(struct spk_acpi_pm *p, uint16_t evt, uint16_t cnt, uint16_t gpe0,
                           uint16_t reset);
/* Press the power button (control method, \_SB.PWRB): sets GPE0_STS bit 0
 * and raises the SCI if GPE 0 is enabled. Thread-safe. NULL: nothing,
 * with a message. */
void spk_acpi_pm_power_button(struct spk_acpi_pm *p);
/* Set GPE gpe's status bit (0: the power button, SPK_PC_GPE_VMGENID: the
 * VM generation ID changed) and raise the SCI if the guest enabled it; an
 * edge the guest's \_GPE._Exx method answers. 0, or -EINVAL (NULL, a GPE
 * that is not wired) with a message. Thread-safe. */
int spk_acpi_pm_raise_gpe(struct spk_acpi_pm *p, unsigned gpe);
/* Its state, for snapshots (opaque: the device). */
const struct spk_dev_state_ops *spk_acpi_pm_state_ops(void);

/* ---- boot timer (MMIO, one page) ---- */
struct spk_boot_timer;
/* A CLOCK_MONOTONIC time, as struct timespec holds it (which strict C99
 * does not declare: this header compiles without POSIX). */
struct spk_timespec {
	int64_t tv_sec;
	int64_t tv_nsec;
};
/* start: the monotonic time to count from (process start). report: called
 * once when the guest writes SPK_PC_BOOT_TIMER_MAGIC, with the time. */
struct spk_boot_timer_config {
	struct spk_timespec start;
	void (*report)(void *ctx, uint64_t ns_since_start);
	void *report_ctx;
};
int spk_boot_timer_new(const struct spk_boot_timer_config *cfg, struct spk_boot_timer **out);
void spk_boot_timer_free(struct spk_boot_timer *t);
const struct spk_bus_ops *spk_boot_timer_ops(void);
/* Its state, for snapshots (opaque: the device). */
const struct spk_dev_state_ops *spk_boot_timer_state_ops(void);

#ifdef __cplusplus
}
#endif
#endif
