/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The function-sandbox ABI (fn.h on the host, guest_fn.h in the guest
 * SDK): what a guest and its host exchange. Freestanding (only
 * <stdint.h>), shared by both sides; every field is little-endian.
 *
 * The guest owns two buffers in its own memory, a call buffer and a host
 * buffer, each a struct spk_fn_frame followed by a data area; it names
 * them, and its table of exported functions, once in SPK_FN_OP_READY.
 * Everything in them is hostile to the side that reads it: the host
 * checks each offset and length against the data area before it reads or
 * writes, and so does the guest SDK.
 *
 * A call: the host writes the frame (index of the export, arguments;
 * bytes and strings in the data area, at offsets from its start) into the
 * call buffer and lets the guest run; the guest runs the function, writes
 * the result (bytes after args_end) and status, and makes SPK_FN_OP_RETURN.
 * A host call from the guest: the same in the host buffer, with the host
 * function's name, and SPK_FN_OP_HOST; the host writes the result back
 * there and the hypercall returns 0 or a negative errno.
 */
#ifndef SPARKLER_FN_ABI_H
#define SPARKLER_FN_ABI_H

#include <stdint.h>

/* The sub-operation of SPK_HC_FN, in rdi; further arguments in rsi, rdx, ... */
enum spk_fn_op {
	SPK_FN_OP_READY = 1, /* (ready gpa): initialised; returns when the first call is there */
	SPK_FN_OP_RETURN =
	    2, /* (): the call's result is in the call buffer; returns at the next call */
	SPK_FN_OP_HOST = 3,    /* (): call the host function the host buffer names -> 0 or -errno */
	SPK_FN_OP_FAULT = 4,   /* (vector, error code, rip, cr2): the guest took an exception */
	SPK_FN_OP_EXIT = 5,    /* (status): the guest program exited (exit(3)) */
	SPK_FN_OP_MEMSIZE = 6, /* () -> bytes of guest RAM (from 0) */
	SPK_FN_OP_TIME = 7,    /* (clock: 0 realtime, 1 monotonic) -> nanoseconds */
};

#define SPK_FN_MAGIC       0x314e4653u /* "SFN1" */
#define SPK_FN_MAX_ARGS    8
#define SPK_FN_NAME_MAX    64 /* function names, with the NUL */
#define SPK_FN_SIG_MAX     16 /* signatures ("ii:i"), with the NUL */
#define SPK_FN_MAX_EXPORTS 256

/* Value types; a signature is the argument types, ':' and the result's,
 * e.g. "sb:i" (a string and a byte buffer in, an integer out). */
#define SPK_FN_T_I64   'i' /* v: the value */
#define SPK_FN_T_F64   'd' /* v: the IEEE-754 bits */
#define SPK_FN_T_BYTES 'b' /* v: offset in the data area, len: bytes */
#define SPK_FN_T_STR   's' /* as bytes; a NUL follows the len bytes */
#define SPK_FN_T_VOID  'v' /* results only */

struct spk_fn_abi_val {
	uint32_t type;
	uint32_t reserved;
	uint64_t v;
	uint64_t len;
};

/* Status the guest leaves in spk_fn_frame.status. */
enum spk_fn_status {
	SPK_FN_ST_OK = 0,
	SPK_FN_ST_BAD_FRAME = 1, /* the guest SDK refused the frame (magic, index, args) */
	SPK_FN_ST_FAILED = 2,    /* the function returned an error: its code in ret.v */
	SPK_FN_ST_NO_RESULT = 3, /* the function set no result of its declared type */
	SPK_FN_ST_TOO_BIG = 4,   /* the result does not fit the data area */
};

struct spk_fn_frame {
	uint32_t magic;
	uint32_t index; /* calls: the export's index in the ready table */
	uint32_t nargs;
	int32_t status;             /* SPK_FN_ST_* (host calls: 0 or the host function's -errno) */
	uint64_t args_end;          /* first byte of the data area the arguments do not use */
	char name[SPK_FN_NAME_MAX]; /* host calls: the host function's name */
	struct spk_fn_abi_val args[SPK_FN_MAX_ARGS];
	struct spk_fn_abi_val ret;
};
/* The data area starts this many bytes into a buffer. */
#define SPK_FN_DATA_OFFSET 512

/* One exported function, as the guest's table lists it. */
struct spk_fn_abi_export {
	uint64_t name; /* gpa of a NUL-terminated name */
	uint64_t sig;  /* gpa of a NUL-terminated signature */
};

/* What SPK_FN_OP_READY points at. */
struct spk_fn_ready {
	uint32_t magic;
	uint32_t n_exports;
	uint64_t exports;             /* gpa of n_exports struct spk_fn_abi_export */
	uint64_t call_buf, call_size; /* gpa and bytes of the call buffer */
	uint64_t host_buf, host_size; /* the host buffer */
};

#endif
