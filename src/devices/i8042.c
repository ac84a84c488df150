// SPDX-License-Identifier: Apache-2.0
/*
 * An i8042 keyboard controller with a keyboard and no AUX (mouse) port,
 * at Firecracker's level: enough for Linux's i8042 and atkbd drivers to
 * probe without timeouts, for Ctrl+Alt+Del from the host, and for the
 * reset line (command 0xFE), Linux's "reboot=k" path.
 *
 * Port 0x64 reads the status register and takes controller commands;
 * port 0x60 reads the output buffer and takes a command's parameter byte
 * or, otherwise, a byte for the keyboard. The real output buffer holds one
 * byte; the keyboard behind it queues more. We model both as one bounded
 * queue (16 bytes, Linux's I8042_BUFFER_SIZE: i8042_flush gives up on a
 * controller that yields more, so a longer queue would look like no
 * controller at all).
 *
 * IRQ 1 is "output buffer full && CTR.KBDINT". The line drops each time
 * the guest reads a byte and rises again if more are queued: Linux's
 * handler reads one byte per interrupt and the IOAPIC pin is
 * edge-triggered, so each byte needs its own edge.
 *
 * Without an AUX port, AUX commands are accepted and swallowed (0xD3 and
 * 0xD4 parameters included, so they are not taken for keyboard commands)
 * and the AUX interface test fails: Linux then skips the mouse instead of
 * probing it with timeouts. Its AUX loop test (0xD3) still times out once;
 * "i8042.noaux" avoids that, as with Firecracker.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <sparkler/devices.h>
#include <sparkler/snapshot.h>
#include <sparkler/platform.h>

#include "core/internal.h"
#include "devices/devlog.h"

#define I8042_QUEUE 16

/* status register */
#define STR_OBF     0x01
#define STR_SYS     0x04 /* system flag: set once self-test passed */
#define STR_CMD     0x08 /* the last write went to the command port */
#define STR_KEYLOCK 0x10 /* 1 = keyboard not inhibited by the key switch */

/* command byte (CTR) */
#define CTR_KBDINT 0x01
#define CTR_SYS    0x04
#define CTR_KBDDIS 0x10
#define CTR_AUXDIS 0x20
#define CTR_XLATE  0x40
/* A BIOS leaves translation on (Linux then binds "AT Translated Set 2
 * keyboard" and expects set 1 scancodes), the keyboard interrupt on and
 * the absent AUX port disabled. */
#define CTR_DEFAULT (CTR_KBDINT | CTR_SYS | CTR_AUXDIS | CTR_XLATE)

/* controller commands */
#define CMD_READ_RAM   0x20 /* 0x20: the CTR, 0x21-0x3f: internal RAM */
#define CMD_WRITE_RAM  0x60 /* likewise, 0x60-0x7f, parameter follows */
#define CMD_AUX_DIS    0xa7
#define CMD_AUX_EN     0xa8
#define CMD_AUX_TEST   0xa9
#define CMD_SELF_TEST  0xaa
#define CMD_KBD_TEST   0xab
#define CMD_KBD_DIS    0xad
#define CMD_KBD_EN     0xae
#define CMD_READ_INP   0xc0
#define CMD_READ_OUTP  0xd0
#define CMD_WRITE_OUTP 0xd1
#define CMD_WRITE_KBD  0xd2 /* parameter appears as if the keyboard sent it */
#define CMD_WRITE_AUX  0xd3 /* AUX loop: no AUX, swallowed */
#define CMD_SEND_AUX   0xd4 /* to the mouse: no AUX, swallowed */
#define CMD_PULSE      0xf0 /* 0xf0-0xff: pulse output lines; bit 0 low = reset */

/* keyboard commands and replies */
#define KBD_SET_LEDS  0xed
#define KBD_ECHO      0xee
#define KBD_SCANCODES 0xf0
#define KBD_GET_ID    0xf2
#define KBD_TYPEMATIC 0xf3
#define KBD_RESEND    0xfe
#define KBD_RESET     0xff
#define KBD_ACK       0xfa
#define KBD_BAT_OK    0xaa

struct spk_i8042 {
	pthread_mutex_t lock;
	struct spk_irq_line irq;
	spk_stop_fn stop;
	void *stop_ctx;

	uint8_t queue[I8042_QUEUE]; /* ring */
	unsigned head, count;
	uint8_t last;    /* what the data port reads when the queue is empty */
	uint8_t ram[32]; /* ram[0] is the CTR */
	uint8_t outp;    /* output port */
	uint8_t status;  /* STR_CMD only; the rest is derived */
	uint8_t cmd;     /* controller command awaiting its parameter, or 0 */
	uint8_t kbd_cmd; /* keyboard command awaiting its parameter, or 0 */
	bool irq_level;

	struct spk_dev_ratelimit rl;
};

#define CTR(k) ((k)->ram[0])

static void update_irq(struct spk_i8042 *k)
{
	bool level = k->count && (CTR(k) & CTR_KBDINT);

	if (level == k->irq_level)
		return;
	k->irq_level = level;
	spk_irq_set(&k->irq, level);
}

static unsigned queue_room(const struct spk_i8042 *k)
{
	return I8042_QUEUE - k->count;
}

static void push(struct spk_i8042 *k, uint8_t byte)
{
	if (!queue_room(k)) {
		spk_dev_log(&k->rl, "i8042", SPK_LOG_WARN,
		            "i8042: output queue full, byte 0x%02x dropped", byte);
		return;
	}
	k->queue[(k->head + k->count) % I8042_QUEUE] = byte;
	k->count++;
}

static uint8_t pop(struct spk_i8042 *k)
{
	if (k->count) {
		k->last = k->queue[k->head];
		k->head = (k->head + 1) % I8042_QUEUE;
		k->count--;
	}
	return k->last;
}

/* A controller command's reply replaces whatever waited in the output
 * buffer, so the guest's next read is the reply it asked for. */
static void reply(struct spk_i8042 *k, uint8_t byte)
{
	k->head = 0;
	k->count = 0;
	push(k, byte);
}

static uint8_t read_status(const struct spk_i8042 *k)
{
	uint8_t s = k->status | STR_KEYLOCK;

	if (k->count)
		s |= STR_OBF;
	if (CTR(k) & CTR_SYS)
		s |= STR_SYS;
	return s;
}

/* The keyboard's answer to a command byte. */
static void kbd_command(struct spk_i8042 *k, uint8_t byte)
{
	bool xlate = CTR(k) & CTR_XLATE;

	if (k->kbd_cmd) {
		/* The parameter of SET_LEDS, SCANCODES or TYPEMATIC. */
		uint8_t cmd = k->kbd_cmd;

		k->kbd_cmd = 0;
		push(k, KBD_ACK);
		if (cmd == KBD_SCANCODES && byte == 0)
			push(k, xlate ? 0x41 : 0x02); /* "set 2", translated or not */
		return;
	}
	switch (byte) {
	case KBD_SET_LEDS:
	case KBD_SCANCODES:
	case KBD_TYPEMATIC:
		k->kbd_cmd = byte;
		push(k, KBD_ACK);
		break;
	case KBD_ECHO:
		push(k, KBD_ECHO);
		break;
	case KBD_GET_ID:
		/* An MF2 keyboard: 0xab 0x83, the controller translating the
		 * second byte to 0x41 when translation is on. */
		push(k, KBD_ACK);
		push(k, 0xab);
		push(k, xlate ? 0x41 : 0x83);
		break;
	case KBD_RESET:
		push(k, KBD_ACK);
		push(k, KBD_BAT_OK);
		break;
	default:
		if (byte >= 0xf4) { /* enable, disable, defaults, set-3 modes, resend */
			push(k, KBD_ACK);
			break;
		}
		spk_dev_log(&k->rl, "i8042", SPK_LOG_WARN, "i8042: unknown keyboard command 0x%02x",
		            byte);
		push(k, KBD_RESEND); /* what a keyboard says to garbage */
		break;
	}
}

/* The parameter byte of controller command k->cmd. */
static void cmd_param(struct spk_i8042 *k, uint8_t byte)
{
	uint8_t cmd = k->cmd;

	k->cmd = 0;
	if (cmd >= CMD_WRITE_RAM && cmd < CMD_WRITE_RAM + sizeof(k->ram)) {
		k->ram[cmd - CMD_WRITE_RAM] = byte;
		return;
	}
	switch (cmd) {
	case CMD_WRITE_OUTP:
		/* Bit 0 low would reset the CPU on a real board; nothing
		 * uses that path, and 0xfe does the same job. */
		k->outp = byte;
		break;
	case CMD_WRITE_KBD:
		push(k, byte);
		break;
	default: /* CMD_WRITE_AUX, CMD_SEND_AUX: there is no AUX device */
		break;
	}
}

/* Returns true when the guest pulsed the reset line. */
static bool controller_command(struct spk_i8042 *k, uint8_t cmd)
{
	k->cmd = 0; /* a new command cancels a pending parameter */
	if (cmd >= CMD_READ_RAM && cmd < CMD_READ_RAM + sizeof(k->ram)) {
		reply(k, k->ram[cmd - CMD_READ_RAM]);
		return false;
	}
	if ((cmd >= CMD_WRITE_RAM && cmd < CMD_WRITE_RAM + sizeof(k->ram)) ||
	    (cmd >= CMD_WRITE_OUTP && cmd <= CMD_SEND_AUX)) {
		k->cmd = cmd;
		return false;
	}
	if (cmd >= CMD_PULSE)
		return !(cmd & 1);
	switch (cmd) {
	case CMD_AUX_DIS:
		CTR(k) |= CTR_AUXDIS;
		break;
	case CMD_AUX_EN:
		CTR(k) &= ~CTR_AUXDIS;
		break;
	case CMD_AUX_TEST:
		reply(k, 0x02); /* "clock line stuck high": nothing plugged in */
		break;
	case CMD_SELF_TEST:
		CTR(k) |= CTR_SYS;
		reply(k, 0x55);
		break;
	case CMD_KBD_TEST:
		reply(k, 0x00);
		break;
	case CMD_KBD_DIS:
		CTR(k) |= CTR_KBDDIS;
		break;
	case CMD_KBD_EN:
		CTR(k) &= ~CTR_KBDDIS;
		break;
	case CMD_READ_INP:
		reply(k, 0x80); /* keyboard not inhibited */
		break;
	case CMD_READ_OUTP:
		reply(k, k->outp);
		break;
	default:
		spk_dev_log(&k->rl, "i8042", SPK_LOG_WARN,
		            "i8042: unknown controller command 0x%02x ignored", cmd);
		break;
	}
	return false;
}

/* One byte written at port; true when it pulsed the reset line. */
static bool write_port(struct spk_i8042 *k, uint64_t port, uint8_t byte)
{
	if (port == SPK_PC_I8042_CMD) {
		k->status |= STR_CMD;
		return controller_command(k, byte);
	}
	if (port == SPK_PC_I8042_DATA) {
		k->status &= ~STR_CMD;
		if (k->cmd)
			cmd_param(k, byte);
		else
			kbd_command(k, byte);
		return false;
	}
	spk_dev_log(&k->rl, "i8042", SPK_LOG_WARN, "i8042: write 0x%02x to port 0x%llx ignored",
	            byte, (unsigned long long)port);
	return false;
}

static uint8_t read_port(struct spk_i8042 *k, uint64_t port)
{
	uint8_t byte;

	if (port == SPK_PC_I8042_CMD)
		return read_status(k);
	if (port != SPK_PC_I8042_DATA)
		return 0xff;
	byte = pop(k);
	/* Drop the line so that the next byte, if any, brings a new edge. */
	if (k->irq_level) {
		k->irq_level = false;
		spk_irq_set(&k->irq, false);
	}
	return byte;
}

/* The port byte i of an access is at: the ops are registered at 0x60 and
 * at 0x64, so only the absolute address tells them apart. */
static bool port_of(const struct spk_bus_access *who, unsigned i, uint64_t *port)
{
	if (!who || who->addr + i < who->addr) /* no wrap to port 0 */
		return false;
	*port = who->addr + i;
	return true;
}

static uint64_t i8042_read(void *opaque, uint64_t offset, unsigned width,
                           const struct spk_bus_access *who)
{
	struct spk_i8042 *k = opaque;
	uint64_t value = 0;
	uint64_t port;

	if (width > 8)
		width = 8;
	pthread_mutex_lock(&k->lock);
	for (unsigned i = 0; i < width; i++) {
		uint8_t byte = port_of(who, i, &port) ? read_port(k, port) : 0xff;

		value |= (uint64_t)byte << (8 * i);
	}
	update_irq(k);
	pthread_mutex_unlock(&k->lock);
	return value;
}

static void i8042_write(void *opaque, uint64_t offset, unsigned width, uint64_t value,
                        const struct spk_bus_access *who)
{
	struct spk_i8042 *k = opaque;
	bool reset = false;
	uint64_t port;

	if (width > 8)
		width = 8;
	pthread_mutex_lock(&k->lock);
	for (unsigned i = 0; i < width; i++) {
		if (port_of(who, i, &port))
			reset |= write_port(k, port, (uint8_t)(value >> (8 * i)));
	}
	update_irq(k);
	pthread_mutex_unlock(&k->lock);
	/* Outside the lock: stop may do anything, even reach the device. */
	if (reset && k->stop)
		k->stop(k->stop_ctx, SPK_EXIT_RESET);
}

static const struct spk_bus_ops i8042_ops = {.read = i8042_read, .write = i8042_write};

const struct spk_bus_ops *spk_i8042_ops(void)
{
	return &i8042_ops;
}

/* Make and break codes of Ctrl, Alt, Del, in that order. */
static const uint8_t cad_set1[] = {0x1d, 0x38, 0xe0, 0x53, 0xe0, 0xd3, 0xb8, 0x9d};
static const uint8_t cad_set2[] = {0x14, 0x11, 0xe0, 0x71, 0xe0, 0xf0,
                                   0x71, 0xf0, 0x11, 0xf0, 0x14};

int spk_i8042_ctrl_alt_del(struct spk_i8042 *k)
{
	const uint8_t *seq;
	size_t len;

	if (!k)
		return spk_fail(EINVAL, "i8042: no device");
	pthread_mutex_lock(&k->lock);
	/* With translation off (i8042.direct) the guest expects set 2. */
	if (CTR(k) & CTR_XLATE) {
		seq = cad_set1;
		len = sizeof(cad_set1);
	} else {
		seq = cad_set2;
		len = sizeof(cad_set2);
	}
	if (queue_room(k) < len) {
		unsigned room = queue_room(k);

		pthread_mutex_unlock(&k->lock);
		return spk_fail(ENOSPC, "i8042: room for %u bytes, Ctrl+Alt+Del needs %zu", room,
		                len);
	}
	for (size_t i = 0; i < len; i++)
		push(k, seq[i]);
	update_irq(k);
	pthread_mutex_unlock(&k->lock);
	return 0;
}

int spk_i8042_new(const struct spk_i8042_config *cfg, struct spk_i8042 **out)
{
	struct spk_i8042 *k;
	int rc;

	if (!out)
		return spk_fail(EINVAL, "i8042: no place for the device");
	*out = NULL;
	if (!cfg)
		return spk_fail(EINVAL, "i8042: no config");
	k = calloc(1, sizeof(*k));
	if (!k)
		return spk_fail(ENOMEM, "i8042: out of memory");
	rc = pthread_mutex_init(&k->lock, NULL);
	if (rc) {
		free(k);
		return spk_fail(rc, "i8042: mutex: %s", strerror(rc));
	}
	k->irq = cfg->kbd_irq;
	k->stop = cfg->stop;
	k->stop_ctx = cfg->stop_ctx;
	CTR(k) = CTR_DEFAULT;
	k->outp = 0x03; /* reset line high (no reset), A20 enabled */
	*out = k;
	return 0;
}

void spk_i8042_free(struct spk_i8042 *k)
{
	if (!k)
		return;
	pthread_mutex_destroy(&k->lock);
	free(k);
}

/* ---- state (include/sparkler/snapshot.h) ---- */

static int i8042_save(void *opaque, struct spk_snap_writer *w)
{
	struct spk_i8042 *k = opaque;
	uint8_t q[I8042_QUEUE];

	pthread_mutex_lock(&k->lock);
	for (unsigned i = 0; i < k->count; i++)
		q[i] = k->queue[(k->head + i) % I8042_QUEUE];
	spk_snap_put_bytes(w, "queue", q, k->count);
	spk_snap_put_u8(w, "last", k->last);
	spk_snap_put_bytes(w, "ram", k->ram, sizeof(k->ram));
	spk_snap_put_u8(w, "outp", k->outp);
	spk_snap_put_u8(w, "status", k->status);
	spk_snap_put_u8(w, "cmd", k->cmd);
	spk_snap_put_u8(w, "kbd_cmd", k->kbd_cmd);
	pthread_mutex_unlock(&k->lock);
	return spk_snap_writer_error(w);
}

/* Commands that wait for a parameter byte. */
static bool takes_param(uint8_t cmd)
{
	return (cmd >= CMD_WRITE_RAM && cmd < CMD_WRITE_RAM + 0x20) || cmd == CMD_WRITE_OUTP ||
	       cmd == CMD_WRITE_KBD || cmd == CMD_WRITE_AUX || cmd == CMD_SEND_AUX;
}

static bool kbd_takes_param(uint8_t cmd)
{
	return cmd == KBD_SET_LEDS || cmd == KBD_SCANCODES || cmd == KBD_TYPEMATIC;
}

static int i8042_load(void *opaque, struct spk_snap_reader *r)
{
	struct spk_i8042 *k = opaque;
	uint8_t ram[32], last, outp, cmd, kbd_cmd;
	const void *q;
	size_t n;
	uint64_t status;
	int rc;

	if ((rc = spk_snap_get_blob(r, "queue", &q, &n)))
		return rc;
	if (n > I8042_QUEUE)
		return spk_snap_bad(r, "queue", "%zu bytes, the queue holds %d", n, I8042_QUEUE);
	if ((rc = spk_snap_get_u8(r, "last", &last)) ||
	    (rc = spk_snap_get_bytes(r, "ram", ram, sizeof(ram))) ||
	    (rc = spk_snap_get_u8(r, "outp", &outp)) ||
	    (rc = spk_snap_get_mask(r, "status", STR_CMD, &status)) ||
	    (rc = spk_snap_get_u8(r, "cmd", &cmd)) ||
	    (rc = spk_snap_get_u8(r, "kbd_cmd", &kbd_cmd)))
		return rc;
	if (cmd && !takes_param(cmd))
		return spk_snap_bad(r, "cmd", "0x%02x is not a command that waits for a parameter",
		                    cmd);
	if (kbd_cmd && !kbd_takes_param(kbd_cmd))
		return spk_snap_bad(r, "kbd_cmd",
		                    "0x%02x is not a keyboard command that waits for a parameter",
		                    kbd_cmd);
	if ((rc = spk_snap_reader_done(r)))
		return rc;

	pthread_mutex_lock(&k->lock);
	memcpy(k->queue, q, n);
	k->head = 0;
	k->count = (unsigned)n;
	k->last = last;
	memcpy(k->ram, ram, sizeof(ram));
	k->outp = outp;
	k->status = (uint8_t)status;
	k->cmd = cmd;
	k->kbd_cmd = kbd_cmd;
	update_irq(k);
	pthread_mutex_unlock(&k->lock);
	return 0;
}

static const struct spk_dev_state_ops i8042_state = {"i8042", 1, i8042_save, i8042_load};

const struct spk_dev_state_ops *spk_i8042_state_ops(void)
{
	return &i8042_state;
}
