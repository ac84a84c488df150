/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The gdb stub's protocol side: the socket, one gdb session at a time on
 * the stub's own thread, and the commands. The VM side (memory,
 * breakpoints, DEBUG exits, pause and resume) is gdb_target.c; the states
 * are in gdb_internal.h.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "vmm/gdb/gdb_internal.h"
#include "vmm/confine/seccomp_policy.h"
#include "vmm/vmm.h"

void stub_say(const char *fmt, ...)
{
	char line[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "sparkler: gdb: %s\n", line);
}

static void set_err(char *err, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
}

/* ---- the socket ------------------------------------------------------------ */

struct listen_addr {
	bool is_unix;
	char host[128];
	char port[8];
	const char *path;
};

static int parse_listen(const char *spec, struct listen_addr *a, char *err, size_t errlen)
{
	memset(a, 0, sizeof(*a));
	if (!spec || !*spec) {
		set_err(err, errlen, "--gdb needs tcp:[HOST:]PORT or unix:PATH");
		return -1;
	}
	if (strncmp(spec, "unix:", 5) == 0) {
		a->is_unix = true;
		a->path = spec + 5;
		if (!*a->path || strlen(a->path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
			set_err(err, errlen, "--gdb %s: the socket path is empty or too long",
			        spec);
			return -1;
		}
		return 0;
	}
	if (strncmp(spec, "tcp:", 4) != 0) {
		set_err(err, errlen, "--gdb %s: use tcp:[HOST:]PORT or unix:PATH", spec);
		return -1;
	}
	const char *rest = spec + 4, *colon = strrchr(rest, ':');
	const char *port = colon ? colon + 1 : rest;
	size_t hlen = colon ? (size_t)(colon - rest) : 0;

	if (hlen >= 2 && rest[0] == '[' && rest[hlen - 1] == ']') { /* [::1]:1234 */
		rest++;
		hlen -= 2;
	}
	if (hlen >= sizeof(a->host) || strlen(port) >= sizeof(a->port)) {
		set_err(err, errlen, "--gdb %s: host or port too long", spec);
		return -1;
	}
	char *end;
	errno = 0;
	unsigned long p = strtoul(port, &end, 10);
	if (!*port || *end || errno || p > 65535) {
		set_err(err, errlen, "--gdb %s: the port must be a number from 0 to 65535", spec);
		return -1;
	}
	memcpy(a->host, hlen ? rest : "127.0.0.1", hlen ? hlen : 10);
	snprintf(a->port, sizeof(a->port), "%lu", p);
	return 0;
}

int spk_gdb_check_listen(const char *spec, char *err, size_t errlen)
{
	struct listen_addr a;

	return parse_listen(spec, &a, err, errlen);
}

static int listen_unix(struct spk_gdb *g, const char *path, char *err, size_t errlen)
{
	struct stat st;
	char why[160];
	int fd;

	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			set_err(err, errlen, "--gdb unix:%s: the path exists and is not a socket",
			        path);
			return -EEXIST;
		}
		unlink(path); /* a socket left by an earlier run */
	}
	fd = spk_listen_unix(path, 0, 1, why, sizeof(why));
	if (fd < 0) {
		set_err(err, errlen, "--gdb unix:%s: %s", path, why);
		return fd;
	}
	g->listen_fd = fd;
	g->unix_path = strdup(path);
	snprintf(g->where, sizeof(g->where), "unix:%s", path);
	return 0;
}

static int bind_first(const struct addrinfo *ai, int *fd_out)
{
	int e = EADDRNOTAVAIL;

	for (; ai; ai = ai->ai_next) {
		int one = 1, fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0);

		if (fd < 0) {
			e = errno;
			continue;
		}
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 1) == 0) {
			*fd_out = fd;
			return 0;
		}
		e = errno;
		close(fd);
	}
	return -e;
}

static int listen_tcp(struct spk_gdb *g, const struct listen_addr *a, char *err, size_t errlen)
{
	const struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
	struct addrinfo *res;
	struct sockaddr_storage ss = {0}; /* family 0 if getsockname fails */
	socklen_t sl = sizeof(ss);
	char host[INET6_ADDRSTRLEN] = "?";
	int rc = getaddrinfo(a->host, a->port, &hints, &res);

	if (rc) {
		set_err(err, errlen, "--gdb tcp:%s:%s: %s", a->host, a->port, gai_strerror(rc));
		return -EINVAL;
	}
	rc = bind_first(res, &g->listen_fd);
	freeaddrinfo(res);
	if (rc < 0) {
		set_err(err, errlen, "--gdb tcp:%s:%s: %s", a->host, a->port, strerror(-rc));
		return rc;
	}
	getsockname(g->listen_fd, (struct sockaddr *)&ss, &sl);
	unsigned port = 0;
	if (ss.ss_family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;
		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		port = ntohs(in->sin_port);
	} else if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		port = ntohs(in6->sin6_port);
	}
	snprintf(g->where, sizeof(g->where), "tcp:%s:%u", host, port);
	return 0;
}

/* ---- sending ------------------------------------------------------------------ */

static void drop_client(struct spk_gdb *g)
{
	if (g->client_fd >= 0)
		close(g->client_fd);
	g->client_fd = -1;
}

static int send_raw(struct spk_gdb *g, const char *buf, size_t len)
{
	while (len && g->client_fd >= 0) {
		ssize_t n = send(g->client_fd, buf, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return g->client_fd >= 0 ? 0 : -1;
}

static void send_packet(struct spk_gdb *g, const char *payload, size_t len)
{
	g->out_len = gdb_frame(g->out, sizeof(g->out), payload, len);
	if (g->out_len && send_raw(g, g->out, g->out_len) < 0)
		drop_client(g);
}

static void reply_str(struct spk_gdb *g, const char *s)
{
	send_packet(g, s, strlen(s));
}

static void reply_err(struct spk_gdb *g, int e)
{
	char buf[8];

	snprintf(buf, sizeof(buf), "E%02x", e & 0xff);
	reply_str(g, buf);
}
static size_t format_stop(struct spk_gdb *g, const struct stop *s, char *out, size_t cap)
{
	int n = snprintf(out, cap, "T%02xthread:%x;", s->sig, s->vcpu + 1);

	switch (s->why) {
	case WHY_SWBREAK:
		if (g->swbreak_ok)
			n += snprintf(out + n, cap - (size_t)n, "swbreak:;");
		break;
	case WHY_HWBREAK:
		if (g->hwbreak_ok)
			n += snprintf(out + n, cap - (size_t)n, "hwbreak:;");
		break;
	case WHY_WATCH:
	case WHY_RWATCH:
	case WHY_AWATCH:
		n += snprintf(out + n, cap - (size_t)n, "%s:%llx;",
		              s->why == WHY_WATCH    ? "watch"
		              : s->why == WHY_RWATCH ? "rwatch"
		                                     : "awatch",
		              (unsigned long long)s->addr);
		break;
	default:
		break;
	}
	return (size_t)n;
}

/* Send the stop reply gdb waits for, if there is one. */
static void report_stop(struct spk_gdb *g)
{
	char buf[128];
	size_t n = 0;

	pthread_mutex_lock(&g->lock);
	if (g->state == ST_STOPPED && g->stop_owed) {
		g->stop_owed = false;
		g->g_tid = GDB_TID_ANY; /* the stopped thread is the current one */
		n = format_stop(g, &g->stop, buf, sizeof(buf));
	}
	pthread_mutex_unlock(&g->lock);
	if (n)
		send_packet(g, buf, n);
}

/* ---- command handlers ------------------------------------------------------------------ */

static bool stopped(struct spk_gdb *g)
{
	pthread_mutex_lock(&g->lock);
	bool s = g->state == ST_STOPPED && g->vm;
	pthread_mutex_unlock(&g->lock);
	return s;
}

static void cmd_qsupported(struct spk_gdb *g, const char *pkt)
{
	g->swbreak_ok = strstr(pkt, "swbreak+") != NULL;
	g->hwbreak_ok = strstr(pkt, "hwbreak+") != NULL;
	char buf[160];
	snprintf(buf, sizeof(buf),
	         "PacketSize=%x;qXfer:features:read+;QStartNoAckMode+;swbreak+;hwbreak+;"
	         "vContSupported+",
	         GDB_PACKET_MAX);
	reply_str(g, buf);
}

static void cmd_stop_reason(struct spk_gdb *g)
{
	char buf[128];

	pthread_mutex_lock(&g->lock);
	size_t n = format_stop(g, &g->stop, buf, sizeof(buf));
	if (g->state == ST_ENDED) /* the guest is gone: how it ended */
		n = (size_t)snprintf(buf, sizeof(buf), "W%02x", g->exit_status & 0xff);
	pthread_mutex_unlock(&g->lock);
	send_packet(g, buf, n);
}

static void cmd_read_regs(struct spk_gdb *g)
{
	struct gdb_x86_state s;
	size_t n;

	if (stub_get_state(stub_gen_vcpu(g), &s) < 0 ||
	    !(n = gdb_x86_regs_hex(&s, g->reply, REPLY_MAX)))
		return reply_err(g, EIO);
	send_packet(g, g->reply, n);
}

static void cmd_read_reg(struct spk_gdb *g, unsigned reg)
{
	struct gdb_x86_state s;
	size_t n;

	if (!gdb_x86_reg_size(reg))
		return reply_err(g, EINVAL);
	if (stub_get_state(stub_gen_vcpu(g), &s) < 0)
		return reply_err(g, EIO);
	n = gdb_x86_reg_hex(&s, reg, g->reply);
	send_packet(g, g->reply, n);
}

/* Write back whichever half changed. */
static int put_state(struct spk_vcpu *v, const struct gdb_x86_state *old,
                     const struct gdb_x86_state *s)
{
	if (memcmp(&old->regs, &s->regs, sizeof(s->regs)) != 0 &&
	    spk_vcpu_set_regs(v, &s->regs) < 0)
		return -1;
	/* padding can only make this say "changed": one KVM_SET_SREGS too many */
	if (memcmp(&old->sregs, &s->sregs, sizeof(s->sregs)) != 0 && // NOLINT(bugprone-suspicious-memory-comparison)
	    spk_vcpu_set_sregs(v, &s->sregs) < 0)
		return -1;
	return 0;
}

static void cmd_write_regs(struct spk_gdb *g, const struct gdb_cmd *c, bool one)
{
	struct spk_vcpu *v = stub_gen_vcpu(g);
	struct gdb_x86_state old, s;
	uint8_t val[16];
	const char *why = NULL;
	int rc;

	if (stub_get_state(v, &old) < 0)
		return reply_err(g, EIO);
	s = old;
	if (one) {
		unsigned size = gdb_x86_reg_size(c->reg);
		if (!size || c->data_len != 2 * size ||
		    gdb_hex_decode(val, c->data, c->data_len) < 0)
			return reply_err(g, EINVAL);
		rc = gdb_x86_reg_set(&s, c->reg, val, size, &why);
	} else {
		rc = gdb_x86_regs_set(&s, c->data, c->data_len, &why);
	}
	if (rc < 0)
		return reply_err(g, EINVAL);
	if (put_state(v, &old, &s) < 0) {
		stub_say("register write refused: %s", spk_last_error());
		return reply_err(g, EIO);
	}
	reply_str(g, "OK");
}

static void cmd_read_mem(struct spk_gdb *g, const struct gdb_cmd *c)
{
	uint8_t *buf = g->mem;
	struct gdb_x86_state s;
	uint64_t len =
	    c->len < REPLY_MAX / 2 ? c->len : REPLY_MAX / 2; /* short reads are allowed */

	if (len == 0)
		return reply_str(g, "");
	if (stub_get_state(stub_gen_vcpu(g), &s) < 0)
		return reply_err(g, EIO);
	uint64_t got = stub_read_virt(g, &s.sregs, c->addr, buf, len);
	if (got == 0)
		return reply_err(g, EFAULT);
	send_packet(g, g->reply, gdb_hex_encode(g->reply, buf, got));
}

static void cmd_write_mem(struct spk_gdb *g, const struct gdb_cmd *c)
{
	uint8_t *buf = g->mem;
	struct gdb_x86_state s;

	if (c->len > sizeof(g->mem))
		return reply_err(g, EINVAL);
	int rc = c->kind == GDB_CMD_WRITE_MEM ? gdb_hex_decode(buf, c->data, c->data_len)
	                                      : gdb_unescape_bin(buf, c->len, c->data, c->data_len);
	if (rc < 0)
		return reply_err(g, EINVAL);
	if (c->len == 0)
		return reply_str(g, "OK"); /* gdb probes X with an empty write */
	if (stub_get_state(stub_gen_vcpu(g), &s) < 0)
		return reply_err(g, EIO);
	if (stub_write_virt(g, &s.sregs, c->addr, buf, c->len) < 0)
		return reply_err(g, EFAULT);
	reply_str(g, "OK");
}

static void cmd_point(struct spk_gdb *g, const struct gdb_cmd *c)
{
	struct gdb_x86_state s;
	int rc;

	if (c->kind == GDB_CMD_REMOVE_BP) {
		rc = stub_point_remove(g, c->bp_type, c->addr, c->len);
	} else {
		if (stub_get_state(stub_gen_vcpu(g), &s) < 0)
			return reply_err(g, EIO);
		rc = stub_point_insert(g, c->bp_type, c->addr, c->len, &s.sregs);
	}
	if (rc < 0)
		return reply_err(g, -rc);
	reply_str(g, "OK");
}

/* Set rip of a vCPU (c ADDR, s ADDR). */
static int set_pc(struct spk_vcpu *v, uint64_t pc)
{
	struct spk_x86_regs r;

	if (!v || spk_vcpu_get_regs(v, &r) < 0)
		return -1;
	r.rip = pc;
	return spk_vcpu_set_regs(v, &r);
}

/* The vCPU gdb's legacy c/s mean (Hc, else the general one). */
static struct spk_vcpu *cont_vcpu(struct spk_gdb *g)
{
	struct spk_vcpu *v = stub_vcpu_of_tid(g, g->c_tid);

	return v ? v : stub_gen_vcpu(g);
}

/* PVM: a vCPU in user mode cannot be single-stepped (the #DB goes to the guest). */
static bool can_step(struct spk_gdb *g, struct spk_vcpu *v)
{
	return !g->pvm || !stub_user_mode(v);
}

/*
 * The signal of C sig, S sig, vCont;C sig and vCont;S sig. A VM has no
 * signals to deliver: gdb passes one on when the last stop was a signal
 * (here always SIGTRAP or SIGINT, i.e. "the stop itself"), and
 * `signal N` / `queue-signal` would ask for one. We do what QEMU's
 * system-mode stub does: handle_cont_with_sig (gdbstub/gdbstub.c) only
 * records it in gdbserver_state.signal, which only user-mode emulation
 * (gdbstub/user.c, gdb_handlesig) delivers; system mode resumes with
 * vm_start() (gdbstub/system.c, gdb_continue) and the vCont form with
 * gdb_continue_partial, neither of which looks at it. So: accept any
 * signal, resume or step exactly as c and s would, inject nothing.
 */
static void ignore_signal(uint8_t sig)
{
	(void)sig;
}

static void cmd_resume(struct spk_gdb *g, const struct gdb_cmd *c)
{
	struct spk_vcpu *v = cont_vcpu(g);
	bool step = c->kind == GDB_CMD_STEP;

	if (c->has_sig)
		ignore_signal(c->sig); /* C sig, S sig: as c and s (see ignore_signal) */

	if (!v)
		return reply_err(g, ESRCH);
	if (step && !can_step(g, v)) {
		stub_say("vCPU %u runs user-mode code, which cannot be single-stepped on this host",
		         spk_vcpu_id(v));
		return reply_err(g, EPERM);
	}
	if (c->has_addr && set_pc(v, c->addr) < 0)
		return reply_err(g, EIO);
	pthread_mutex_lock(&g->lock);
	for (int i = 0; i < MAX_VCPUS; i++)
		g->cpu[i] = (struct vcpu_ctl){.pending = g->cpu[i].pending};
	g->cpu[spk_vcpu_id(v)].step = step;
	pthread_mutex_unlock(&g->lock);
	if (!stub_resume(g))
		report_stop(g); /* a watchpoint hit kept from the last stop */
}

/* The first vCont action that names this thread, or the default one; NULL if none. */
static const struct gdb_vcont_action *vcont_for(const struct gdb_cmd *c, int64_t tid)
{
	for (unsigned i = 0; i < c->n_actions; i++)
		if (c->actions[i].tid == tid || c->actions[i].tid == GDB_TID_ALL)
			return &c->actions[i];
	return NULL;
}

static void cmd_vcont(struct spk_gdb *g, const struct gdb_cmd *c)
{
	struct vcpu_ctl ctl[MAX_VCPUS] = {0};

	for (uint32_t i = 0; i < spk_vm_max_vcpus(g->vm) && i < MAX_VCPUS; i++) {
		struct spk_vcpu *v = spk_vm_vcpu(g->vm, i);
		const struct gdb_vcont_action *a = vcont_for(c, (int64_t)i + 1);

		if (a)
			ignore_signal(a->sig); /* vCont;C sig / S sig: as c and s */
		if (!v || !a || a->op == 'c')
			continue; /* no action: it runs too (all-stop: every vCPU resumes) */
		if (!can_step(g, v)) {
			stub_say(
			    "vCPU %u runs user-mode code, which cannot be single-stepped on this "
			    "host",
			    i);
			return reply_err(g, EPERM);
		}
		ctl[i].step = a->op == 's';
		ctl[i].range = a->op == 'r';
		ctl[i].start = a->start;
		ctl[i].end = a->end;
	}
	pthread_mutex_lock(&g->lock);
	for (int i = 0; i < MAX_VCPUS; i++) {
		ctl[i].pending = g->cpu[i].pending;
		g->cpu[i] = ctl[i];
	}
	pthread_mutex_unlock(&g->lock);
	if (!stub_resume(g))
		report_stop(g); /* a watchpoint hit kept from the last stop */
}

static void cmd_set_thread(struct spk_gdb *g, const struct gdb_cmd *c)
{
	if (c->tid > 0 && !stub_vcpu_of_tid(g, c->tid))
		return reply_err(g, ESRCH);
	if (c->thread_op == 'g')
		g->g_tid = c->tid;
	else
		g->c_tid = c->tid;
	reply_str(g, "OK");
}

static void cmd_threads(struct spk_gdb *g)
{
	size_t n = 0;

	for (uint32_t i = 0; g->vm && i < spk_vm_max_vcpus(g->vm) && i < MAX_VCPUS; i++)
		if (spk_vm_vcpu(g->vm, i))
			n += (size_t)snprintf(g->reply + n, REPLY_MAX - n, "%c%x", n ? ',' : 'm',
			                      i + 1);
	if (!n)
		return reply_str(g, "l");
	send_packet(g, g->reply, n);
}

static void cmd_thread_extra(struct spk_gdb *g, const struct gdb_cmd *c)
{
	struct spk_vcpu *v = stub_vcpu_of_tid(g, c->tid);
	char text[64];

	if (!v)
		return reply_err(g, ESRCH);
	snprintf(text, sizeof(text), "vCPU %u, %s", spk_vcpu_id(v),
	         stub_user_mode(v) ? "user mode (CPL3)" : "kernel mode");
	send_packet(g, g->reply, gdb_hex_encode(g->reply, (const uint8_t *)text, strlen(text)));
}

static void cmd_xfer(struct spk_gdb *g, const struct gdb_cmd *c)
{
	size_t len = gdb_x86_xml(c->annex, g->xml, sizeof(g->xml));
	const char *xml = g->xml;

	if (!len)
		return reply_err(g, ENOENT);
	if (c->addr >= len)
		return reply_str(g, "l");
	uint64_t n = len - c->addr;
	uint64_t want = c->len < REPLY_MAX / 2 ? c->len : REPLY_MAX / 2; /* room to escape */
	bool last = n <= want;
	if (!last)
		n = want;
	g->reply[0] = last ? 'l' : 'm';
	size_t o = gdb_escape_bin(g->reply + 1, REPLY_MAX - 1, (const uint8_t *)xml + c->addr, n);
	send_packet(g, g->reply, o + 1);
}

/* Commands that need the VM stopped (memory, registers, resumes, breakpoints). */
static bool needs_stop(enum gdb_cmd_kind k)
{
	switch (k) {
	case GDB_CMD_READ_REGS:
	case GDB_CMD_WRITE_REGS:
	case GDB_CMD_READ_REG:
	case GDB_CMD_WRITE_REG:
	case GDB_CMD_READ_MEM:
	case GDB_CMD_WRITE_MEM:
	case GDB_CMD_WRITE_MEM_BIN:
	case GDB_CMD_CONTINUE:
	case GDB_CMD_STEP:
	case GDB_CMD_VCONT:
	case GDB_CMD_INSERT_BP:
	case GDB_CMD_REMOVE_BP:
	case GDB_CMD_THREAD_EXTRA:
		return true;
	default:
		return false;
	}
}

/* false when the session is over (detach, kill). */
static bool dispatch_vm(struct spk_gdb *g, const struct gdb_cmd *c)
{
	switch (c->kind) {
	case GDB_CMD_READ_REGS:
		cmd_read_regs(g);
		break;
	case GDB_CMD_WRITE_REGS:
	case GDB_CMD_WRITE_REG:
		cmd_write_regs(g, c, c->kind == GDB_CMD_WRITE_REG);
		break;
	case GDB_CMD_READ_REG:
		cmd_read_reg(g, c->reg);
		break;
	case GDB_CMD_READ_MEM:
		cmd_read_mem(g, c);
		break;
	case GDB_CMD_WRITE_MEM:
	case GDB_CMD_WRITE_MEM_BIN:
		cmd_write_mem(g, c);
		break;
	case GDB_CMD_CONTINUE:
	case GDB_CMD_STEP:
		cmd_resume(g, c);
		break;
	case GDB_CMD_VCONT:
		cmd_vcont(g, c);
		break;
	case GDB_CMD_INSERT_BP:
	case GDB_CMD_REMOVE_BP:
		cmd_point(g, c);
		break;
	case GDB_CMD_THREAD_EXTRA:
		cmd_thread_extra(g, c);
		break;
	default:
		break;
	}
	return true;
}

static bool dispatch(struct spk_gdb *g, const char *pkt, size_t len)
{
	struct gdb_cmd c;

	gdb_parse(pkt, len, &c);
	if (needs_stop(c.kind) && !stopped(g)) {
		reply_err(g, EBUSY);
		return true;
	}
	switch (c.kind) {
	case GDB_CMD_UNSUPPORTED:
		reply_str(g, "");
		return true;
	case GDB_CMD_MALFORMED:
		reply_err(g, EINVAL);
		return true;
	case GDB_CMD_QSUPPORTED:
		cmd_qsupported(g, pkt);
		return true;
	case GDB_CMD_STOP_REASON:
		cmd_stop_reason(g);
		return true;
	case GDB_CMD_VCONT_QUERY:
		reply_str(g, "vCont;c;C;s;S;r");
		return true;
	case GDB_CMD_SET_THREAD:
		cmd_set_thread(g, &c);
		return true;
	case GDB_CMD_THREAD_ALIVE:
		reply_str(g, stub_vcpu_of_tid(g, c.tid) ? "OK" : "E03");
		return true;
	case GDB_CMD_CURRENT_THREAD: {
		struct spk_vcpu *v = stub_gen_vcpu(g);
		char buf[24];
		snprintf(buf, sizeof(buf), "QC%x", v ? spk_vcpu_id(v) + 1 : 1);
		reply_str(g, buf);
		return true;
	}
	case GDB_CMD_THREADS_FIRST:
		cmd_threads(g);
		return true;
	case GDB_CMD_THREADS_NEXT:
		reply_str(g, "l");
		return true;
	case GDB_CMD_XFER_FEATURES:
		cmd_xfer(g, &c);
		return true;
	case GDB_CMD_ATTACHED:
		reply_str(g, "1"); /* gdb attached to a running VM: quitting detaches */
		return true;
	case GDB_CMD_SYMBOL:
		reply_str(g, "OK");
		return true;
	case GDB_CMD_NOACK:
		reply_str(g, "OK");
		g->noack = true;
		return true;
	case GDB_CMD_DETACH:
		reply_str(g, "OK");
		stub_say("gdb detached; the guest runs on");
		return false;
	case GDB_CMD_VKILL:
		reply_str(g, "OK");
		/* fall through */
	case GDB_CMD_KILL:
		stub_say("gdb killed the guest");
		if (g->cfg.kill)
			g->cfg.kill(g->cfg.opaque);
		pthread_mutex_lock(&g->lock);
		stub_set_state(g, ST_ENDED); /* nothing to resume: it is going away */
		pthread_mutex_unlock(&g->lock);
		return false;
	default:
		return dispatch_vm(g, &c);
	}
}

/* ---- the session ------------------------------------------------------------------------ */

/* Handle one byte from gdb; false when the session is over. */
static bool on_byte(struct spk_gdb *g, uint8_t byte)
{
	switch (gdb_rx_byte(&g->rx, byte)) {
	case GDB_RX_NAK:
		if (g->out_len && send_raw(g, g->out, g->out_len) < 0)
			drop_client(g);
		return g->client_fd >= 0;
	case GDB_RX_INTERRUPT:
		pthread_mutex_lock(&g->vm_lock);
		if (g->vm && stub_stop(g, SIGINT_GDB) == 0)
			report_stop(g);
		pthread_mutex_unlock(&g->vm_lock);
		return g->client_fd >= 0;
	case GDB_RX_BAD_CHECKSUM:
		if (!g->noack)
			send_raw(g, "-", 1);
		return true;
	case GDB_RX_TOO_LONG:
		if (!g->noack)
			send_raw(g, "+", 1);
		reply_err(g, E2BIG);
		return true;
	case GDB_RX_PACKET:
		if (!g->noack && send_raw(g, "+", 1) < 0)
			return false;
		pthread_mutex_lock(&g->vm_lock);
		bool go_on = dispatch(g, g->rx.buf, g->rx.len);
		pthread_mutex_unlock(&g->vm_lock);
		return go_on && g->client_fd >= 0;
	default:
		return true;
	}
}

/* The VM is gone: tell gdb how it ended. */
static void report_end(struct spk_gdb *g)
{
	char buf[8];

	pthread_mutex_lock(&g->lock);
	bool owed = g->stop_owed;
	g->stop_owed = false;
	int status = g->exit_status;
	pthread_mutex_unlock(&g->lock);
	if (owed) {
		snprintf(buf, sizeof(buf), "W%02x", status & 0xff);
		reply_str(g, buf);
	}
}

/* Events from vCPUs and the embedder; false when the stub should end the session. */
static bool on_wake(struct spk_gdb *g)
{
	char drain[64];

	while (read(g->wake[0], drain, sizeof(drain)) > 0) {
	}
	pthread_mutex_lock(&g->lock);
	bool end = g->quit || g->final_end;
	pthread_mutex_unlock(&g->lock);
	if (end) {
		report_end(g);
		return false;
	}
	report_stop(g);
	return g->client_fd >= 0;
}

/* Another debugger knocks while one is attached: turn it away, unless the
 * attached one has just gone (its end of file is waiting to be read). */
static void turn_away(struct spk_gdb *g)
{
	char b;

	if (recv(g->client_fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) == 0)
		return; /* served next, after this session ends */
	int fd = accept4(g->listen_fd, NULL, NULL, SOCK_CLOEXEC);

	if (fd >= 0) {
		stub_say("a second debugger tried to connect; one at a time");
		close(fd);
	}
}

static void session_begin(struct spk_gdb *g)
{
	int one = 1;

	setsockopt(g->client_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	struct timeval tmo = {.tv_sec = 10};
	setsockopt(g->client_fd, SOL_SOCKET, SO_SNDTIMEO, &tmo, sizeof(tmo));
	gdb_rx_init(&g->rx);
	g->noack = g->swbreak_ok = g->hwbreak_ok = false;
	g->g_tid = g->c_tid = GDB_TID_ANY;
	g->out_len = 0;
	stub_say("debugger connected on %s", g->where);
	pthread_mutex_lock(&g->vm_lock);
	pthread_mutex_lock(&g->lock);
	while (!g->vm_live && !g->quit && !g->final_end) { /* `run` is still building it */
		pthread_mutex_unlock(&g->vm_lock);
		pthread_cond_wait(&g->cond, &g->lock);
		pthread_mutex_unlock(&g->lock);
		pthread_mutex_lock(&g->vm_lock);
		pthread_mutex_lock(&g->lock);
	}
	bool free_running = g->state == ST_FREE && g->vm_live;
	pthread_mutex_unlock(&g->lock);
	if (free_running) /* attaching to a running VM: gdb expects it stopped */
		stub_stop(g, SIGTRAP_GDB);
	pthread_mutex_unlock(&g->vm_lock);
}

static void session_end(struct spk_gdb *g, bool lost)
{
	if (lost)
		stub_say("the debugger went away%s; the guest runs on",
		         gdb_rx_mid_packet(&g->rx) ? " in the middle of a packet" : "");
	drop_client(g);
	pthread_mutex_lock(&g->vm_lock);
	stub_release(g);
	pthread_mutex_unlock(&g->vm_lock);
}

/* Serve one connection until it ends; false when the stub itself should end. */
static bool serve(struct spk_gdb *g)
{
	uint8_t buf[4096];
	bool lost = true, go_on = true;

	session_begin(g);
	while (go_on) {
		struct pollfd p[3] = {
		    {g->client_fd, POLLIN, 0}, {g->wake[0], POLLIN, 0}, {g->listen_fd, POLLIN, 0}};
		if (poll(p, 3, -1) < 0)
			continue;
		if (p[1].revents && !on_wake(g)) {
			lost = g->client_fd < 0; /* a send failed */
			go_on = false;
			break;
		}
		if (p[2].revents && !p[0].revents) /* the attached one's input first */
			turn_away(g);
		if (!p[0].revents)
			continue;
		ssize_t n = recv(g->client_fd, buf, sizeof(buf), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		for (ssize_t i = 0; i < n && go_on; i++)
			if (!on_byte(g, buf[i])) {
				go_on = false;
				lost = g->client_fd < 0; /* a send failed: it went away */
			}
	}
	session_end(g, lost && go_on);
	pthread_mutex_lock(&g->lock);
	bool more = !g->quit && !g->final_end;
	pthread_mutex_unlock(&g->lock);
	return more;
}

static void *stub_main(void *p)
{
	struct spk_gdb *g = p;

	/* named for ps, top and /proc/PID/task/TID/comm (tests/linux/seccomp_test.py) */
	pthread_setname_np(pthread_self(), "gdb-stub");
	/* the stub parses hostile packets: it gets the device allowlist */
	spk_seccomp_install_or_die(SPK_SECCOMP_DEVICE, "gdb-stub");

	for (;;) {
		struct pollfd fds[2] = {{g->listen_fd, POLLIN, 0}, {g->wake[0], POLLIN, 0}};

		if (poll(fds, 2, -1) < 0)
			continue;
		if (fds[1].revents) {
			char drain[64];
			while (read(g->wake[0], drain, sizeof(drain)) > 0) {
			}
			pthread_mutex_lock(&g->lock);
			bool end = g->quit || g->final_end;
			pthread_mutex_unlock(&g->lock);
			if (end)
				break;
		}
		if (!fds[0].revents)
			continue;
		g->client_fd = accept4(g->listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (g->client_fd < 0)
			continue;
		if (!serve(g))
			break;
	}
	return NULL;
}

/* ---- the embedder's side ------------------------------------------------------------------ */

int spk_gdb_start(const struct spk_gdb_config *cfg, struct spk_gdb **out, char *err, size_t errlen)
{
	struct listen_addr a;
	struct spk_gdb *g;
	int rc;

	if (parse_listen(cfg->listen, &a, err, errlen) < 0)
		return -EINVAL;
	g = calloc(1, sizeof(*g));
	if (!g) {
		set_err(err, errlen, "out of memory");
		return -ENOMEM;
	}
	g->cfg = *cfg;
	g->listen_fd = g->client_fd = g->wake[0] = g->wake[1] = -1;
	pthread_mutex_init(&g->lock, NULL);
	pthread_mutex_init(&g->vm_lock, NULL);
	pthread_cond_init(&g->cond, NULL);
	g->pvm = strcmp(spk_host_kvm_kind(), "pvm") == 0;
	rc = a.is_unix ? listen_unix(g, a.path, err, errlen) : listen_tcp(g, &a, err, errlen);
	if (rc < 0)
		goto err_free;
	if (pipe2(g->wake, O_CLOEXEC | O_NONBLOCK) < 0) {
		rc = -errno;
		set_err(err, errlen, "gdb: pipe: %s", strerror(errno));
		goto err_free;
	}
	/* no signal is for this thread: the process's handlers run elsewhere */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	rc = -pthread_create(&g->thread, NULL, stub_main, g);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc < 0) {
		set_err(err, errlen, "gdb: cannot start a thread: %s", strerror(-rc));
		goto err_free;
	}
	g->have_thread = true;
	stub_say("listening on %s%s", g->where,
	         cfg->no_wait ? ""
	                      : "; the guest waits for the debugger before its first instruction");
	*out = g;
	return 0;

err_free:
	spk_gdb_free(g);
	return rc;
}

bool spk_gdb_vm_start(struct spk_gdb *g, struct spk_vm *vm)
{
	bool paused;

	if (!g)
		return false;
	pthread_mutex_lock(&g->vm_lock);
	pthread_mutex_lock(&g->lock);
	g->vm = vm;
	g->vm_live = true;
	pthread_cond_broadcast(&g->cond);
	if (!g->started_once && !g->cfg.no_wait) {
		g->stop = (struct stop){.valid = true, .vcpu = 0, .sig = SIGTRAP_GDB};
		stub_set_state(g, ST_STOPPED);
	}
	g->started_once = true;
	paused = g->state == ST_STOPPED;
	bool attached = g->state == ST_RUNNING;
	stub_compute_common(g);
	pthread_mutex_unlock(&g->lock);
	if (attached) /* a restart while gdb is attached: the same settings */
		stub_apply_debug(g);
	pthread_mutex_unlock(&g->vm_lock);
	return paused;
}

void spk_gdb_vm_end(struct spk_gdb *g, int status, bool final)
{
	if (!g)
		return;
	pthread_mutex_lock(&g->lock);
	g->vm_live = false; /* ends a pause or resume that is waiting */
	pthread_mutex_unlock(&g->lock);
	pthread_mutex_lock(&g->vm_lock);
	pthread_mutex_lock(&g->lock);
	g->vm = NULL;
	g->exit_status = status;
	if (final) {
		g->final_end = true;
		stub_set_state(g, ST_ENDED);
	}
	pthread_cond_broadcast(&g->cond);
	/* int3 bytes went with the VM's memory */
	for (int i = 0; i < MAX_POINTS; i++)
		g->points[i].int3 = false;
	pthread_mutex_unlock(&g->lock);
	pthread_mutex_unlock(&g->vm_lock);
	stub_wake(g);
}

void spk_gdb_free(struct spk_gdb *g)
{
	if (!g)
		return;
	if (g->have_thread) {
		pthread_mutex_lock(&g->lock);
		g->quit = true;
		pthread_cond_broadcast(&g->cond);
		pthread_mutex_unlock(&g->lock);
		stub_wake(g);
		pthread_join(g->thread, NULL);
	}
	drop_client(g);
	if (g->listen_fd >= 0)
		close(g->listen_fd);
	if (g->unix_path) {
		unlink(g->unix_path);
		free(g->unix_path);
	}
	for (int i = 0; i < 2; i++)
		if (g->wake[i] >= 0)
			close(g->wake[i]);
	pthread_cond_destroy(&g->cond);
	pthread_mutex_destroy(&g->vm_lock);
	pthread_mutex_destroy(&g->lock);
	free(g);
}
