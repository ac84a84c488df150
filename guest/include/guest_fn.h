/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Function sandboxes, the guest's side (the host's is sparkler/fn.h, the
 * wire format sparkler/fn_abi.h). A function guest has no main(): the SDK
 * provides it. It boots (CPL0, briefly), moves to CPL3 on its own stack,
 * runs the program's guest_fn_init() if there is one, tells the host it
 * is ready and then waits for calls; every exported function runs at CPL3
 * (natively even where KVM emulates kernel-mode code).
 *
 *   SPK_EXPORT(add, "ii:i")
 *   {
 *           return guest_fn_ret_i64(c, guest_fn_i64(c, 0) + guest_fn_i64(c, 1));
 *   }
 *
 * A signature lists the argument types, ':' and the result type: 'i'
 * int64_t, 'd' double, 'b' bytes (pointer and length), 's' string
 * (pointer and length, NUL-terminated), and 'v' for no result. The SDK
 * checks every call's frame against it (and the host does before it
 * sends one) before the function runs. A function returns 0 after setting
 * its result, or a non-zero error code the host's call reports.
 *
 * The C library. Linked with musl (guest/meson.build's musl guests), the
 * program uses printf, malloc, qsort, string functions as usual: the SDK
 * answers the system calls musl makes (write/writev to fds 1 and 2 go to
 * the console, brk/mmap/munmap from a heap between the program's end and
 * the top of guest RAM, clock_gettime from the host, exit, arch_prctl for
 * the thread pointer; ioctl is -ENOTTY, the rest -ENOSYS). Guest RAM is
 * the memory cap: a heap that meets it fails with ENOMEM.
 *
 * One vCPU: the function runtime runs on vCPU 0 only.
 */
#ifndef GUEST_FN_H
#define GUEST_FN_H

#include <guest.h>
#include <sparkler/fn_abi.h>

struct guest_fn_call;
typedef int (*guest_fn_t)(struct guest_fn_call *c);

struct guest_fn_export {
	const char *name;
	const char *sig;
	guest_fn_t fn;
};

/* Define and export function name with signature sig; the body follows. */
#define SPK_EXPORT(name, sig)                                                                      \
	static int name(struct guest_fn_call *c);                                                  \
	static const struct guest_fn_export spk_export_##name                                      \
	    __attribute__((used, section("spk_fn_exports"), aligned(8))) = {#name, sig, name};     \
	static int name(struct guest_fn_call *c __attribute__((unused)))

/* Optional: runs once at CPL3 before the guest says it is ready (its
 * state is what every call starts from). Non-zero fails the host's open. */
int guest_fn_init(void) __attribute__((weak));

/* Arguments, by position (the SDK checked their types against the
 * signature; asking for the wrong type or position gives 0/NULL). */
int64_t guest_fn_i64(const struct guest_fn_call *c, unsigned i);
double guest_fn_f64(const struct guest_fn_call *c, unsigned i);
const void *guest_fn_bytes(const struct guest_fn_call *c, unsigned i, size_t *len);
const char *guest_fn_str(const struct guest_fn_call *c, unsigned i, size_t *len);

/* Set the result; 0, or -22 (wrong type for the signature), -7 (does not
 * fit the call buffer). They return what the function may return. */
int guest_fn_ret_i64(struct guest_fn_call *c, int64_t v);
int guest_fn_ret_f64(struct guest_fn_call *c, double v);
int guest_fn_ret_bytes(struct guest_fn_call *c, const void *p, size_t len);
int guest_fn_ret_str(struct guest_fn_call *c, const char *s);

/* The bytes free for a result (after the arguments). */
size_t guest_fn_ret_room(const struct guest_fn_call *c);

/* A host function's result (data points into the host buffer: valid
 * until the next host call). */
struct guest_fn_result {
	char type;
	int64_t i64;
	double f64;
	const void *data;
	size_t len;
};

/*
 * Call host function name with signature sig; the arguments follow as
 * the signature says: 'i' int64_t, 'd' double, 'b' const void * then
 * size_t, 's' const char *. 0 and *res (may be NULL) filled, or a
 * negative errno: -22 bad signature or arguments (also the host's answer
 * when they do not match the host function's signature), -7 they do not
 * fit the host buffer, -71 the host's result does not check, or the host
 * function's own error. Calling a name the host did not register ends the
 * call (the host's spk_fn_call fails with -EPROTO).
 */
int64_t guest_fn_host(const char *name, const char *sig, struct guest_fn_result *res, ...);

/* The host buffer's frame, for tests that play a hostile guest. */
struct spk_fn_frame *guest_fn_host_frame(void);

/* Nanoseconds of the host's monotonic clock (one exit). */
uint64_t guest_fn_time_ns(void);

#endif
