/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The host's side of the function-call frames (fn_abi.h): signatures, and
 * encoding and decoding values in a buffer's data area. Pure functions on
 * caller memory (no VM), so that fuzz/fuzz_fn.c drives them directly.
 * Every failure leaves a message (spk_fail).
 */
#ifndef SPK_FN_FRAME_H
#define SPK_FN_FRAME_H

#include <stdint.h>

#include <sparkler/fn.h>

struct fn_sig {
	char name[SPK_FN_NAME_MAX];
	char sig[SPK_FN_SIG_MAX];
	unsigned nargs;
	char rtype;
};

/* Check "types:result" for name: 0 and *out, or -EINVAL. */
int fn_sig_parse(const char *name, const char *sig, struct fn_sig *out);

/*
 * A call's frame: the arguments checked against s, their bytes into
 * data[0, size), *f filled (index, args, args_end). 0, -EINVAL (count,
 * types, NULL with a length), -E2BIG (does not fit).
 */
int fn_frame_encode(struct spk_fn_frame *f, uint8_t *data, uint64_t size, const struct fn_sig *s,
                    uint32_t index, const struct spk_fn_value *args, unsigned nargs);

/*
 * A guest's answer in *f (a copy) and data[0, size): the status, then a
 * result of s's type inside the data area (strings with their NUL),
 * copied into out (size + 1 bytes; result points there). 0, -EREMOTEIO
 * (the function's error: result->i64), -EPROTO (anything else wrong).
 */
int fn_frame_decode_result(const struct spk_fn_frame *f, const uint8_t *data, uint64_t size,
                           const struct fn_sig *s, uint8_t *out, struct spk_fn_value *result);

/*
 * A host call's arguments in *f (a copy) and data[0, size), for host
 * function s: the bytes they use copied into scratch (size + 1 bytes; the
 * values point there). 0, -EINVAL (count or types: the guest's error to
 * handle), -EPROTO (outside the data area, no NUL).
 */
int fn_frame_decode_args(const struct spk_fn_frame *f, const uint8_t *data, uint64_t size,
                         const struct fn_sig *s, uint8_t *scratch, struct spk_fn_value *args);

/*
 * A host function's result r (of type rtype) into *ret and data[0, size);
 * *used: the bytes of data written. 0, -EPROTO (wrong type, NULL with a
 * length), -E2BIG. No message: the guest gets the code.
 */
int fn_frame_encode_result(struct spk_fn_abi_val *ret, uint8_t *data, uint64_t size, char rtype,
                           const struct spk_fn_value *r, uint64_t *used);

#endif
