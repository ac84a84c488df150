/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for the metadata service's guest side: the frames a
 * guest sends to the MMDS (ARP, IPv4, TCP, HTTP) and the HTTP parser
 * alone. The input is a list of records, each [op][len lo][len hi][bytes]:
 *   op & 3 == 0  the bytes as a raw frame;
 *   op & 3 == 1  the bytes as the TCP segment of an IPv4 frame to the MMDS
 *                with correct checksums (the fuzzer gets past them), from
 *                one of 4 guest ports ((op >> 2) & 3); with op & 0x10 its
 *                ACK field is what the stack sent last (the fuzzer cannot
 *                guess the random initial sequence number);
 *   op & 3 == 2  frames out into a buffer of 60 + 16 * bytes[0] bytes,
 *                until none is left; with op & 4 first the test clock
 *                moves on by 8 * bytes[1] ms and the retransmission
 *                timers run (spk_mmds_stack_timer);
 *   op & 3 == 3  the bytes as one HTTP request (spk_mmds_http).
 * Every frame that comes back must fit its buffer and carry valid IPv4
 * and TCP checksums (else abort); the sanitizers catch the rest. A fresh
 * stack per input, one store for all (V2 every other input).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mmds/mmds.h"
#include "mmds/stack.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MMDS_IP 0xa9fea9feu
#define MAX_OUT 2048

static struct spk_mmds *store;
static uint8_t frame[70000], out[MAX_OUT];
static uint32_t last_end; /* the sequence number after the last segment out */

static uint16_t be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static uint16_t csum(const uint8_t *p, size_t n, uint32_t acc)
{
	for (size_t i = 0; i + 1 < n; i += 2)
		acc += be16(p + i);
	if (n & 1)
		acc += (uint32_t)p[n - 1] << 8;
	while (acc >> 16)
		acc = (acc & 0xffff) + (acc >> 16);
	return (uint16_t)~acc;
}

static uint64_t fake_ms = 1000000;
static uint64_t fake_clock(void)
{
	return fake_ms;
}

static void init(void)
{
	json_t *d = json_loads("{\"latest\":{\"meta-data\":{\"ami-id\":\"ami-1\",\"n\":1,"
	                       "\"o\":{\"k\":\"v\"}},\"l\":[\"a\",{\"b\":null}]}}",
	                       0, NULL);

	if (spk_mmds_new(SPK_MMDS_LIMIT_DEFAULT, &store) < 0 || !d || spk_mmds_put(store, d) < 0)
		abort();
	json_decref(d);
	spk_mmds_set_clock(store, fake_clock);
}

/* A TCP segment (seg, n bytes) in a checked IPv4 frame to the MMDS. */
static size_t wrap_tcp(const uint8_t *seg, size_t n, unsigned port, bool ack_last)
{
	uint8_t *ip = frame + 14, *t = ip + 20;
	uint32_t src = 0x0a000002u, acc;

	if (n > 1400)
		n = 1400;
	memcpy(frame, (const uint8_t[]){6, 1, 0x23, 0x45, 0x67, 1, 2, 0, 0, 0, 0, 1, 8, 0}, 14);
	memset(ip, 0, 20);
	ip[0] = 0x45;
	put16(ip + 2, (uint16_t)(20 + n));
	ip[8] = 64;
	ip[9] = 6;
	memcpy(ip + 12, (const uint8_t[]){10, 0, 0, 2, 169, 254, 169, 254}, 8);
	put16(ip + 10, csum(ip, 20, 0));
	memcpy(t, seg, n);
	if (n >= 20) {
		put16(t, (uint16_t)(40000 + port)); /* a few connections, not thousands */
		if (ack_last) {
			put16(t + 8, (uint16_t)(last_end >> 16));
			put16(t + 10, (uint16_t)last_end);
		}
		put16(t + 16, 0);
		acc = (src >> 16) + (src & 0xffff) + (MMDS_IP >> 16) + (MMDS_IP & 0xffff) + 6 +
		      (uint32_t)n;
		put16(t + 16, csum(t, n, acc));
	}
	return 14 + 20 + n;
}

/* What the stack sends must be a well-formed frame that fits. */
static void drain(struct spk_mmds_stack *s, size_t cap)
{
	for (unsigned i = 0; i < 100000; i++) {
		size_t n = spk_mmds_stack_rx(s, out, cap);
		const uint8_t *ip = out + 14;

		if (!n)
			return;
		if (n > cap || n < 42)
			abort();
		if (be16(out + 12) == 0x0806)
			continue;
		if (be16(out + 12) != 0x0800 || csum(ip, 20, 0) != 0 || be16(ip + 2) != n - 14)
			abort();
		uint32_t s32 = MMDS_IP, d32 = (uint32_t)ip[16] << 24 | (uint32_t)ip[17] << 16 |
		                              (uint32_t)ip[18] << 8 | ip[19];
		uint32_t acc = (s32 >> 16) + (s32 & 0xffff) + (d32 >> 16) + (d32 & 0xffff) + 6 +
		               (uint32_t)(n - 34);
		if (csum(ip + 20, n - 34, acc) != 0)
			abort();
		const uint8_t *t = ip + 20;
		last_end = ((uint32_t)be16(t + 4) << 16 | be16(t + 6)) +
		           (uint32_t)(n - 34 - (size_t)(t[12] >> 4) * 4) + !!(t[13] & 3);
	}
	abort(); /* a stack that never runs dry */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static unsigned runs;
	struct spk_mmds_config c = {(runs++ & 1) ? SPK_MMDS_V2 : SPK_MMDS_V1, MMDS_IP, false};
	struct spk_mmds_stack *s;
	size_t i = 0;

	if (!store)
		init();
	spk_mmds_set_config(store, &c);
	if (spk_mmds_stack_new(store, &s) < 0)
		abort();
	while (i + 3 <= size) {
		uint8_t op = data[i];
		size_t len = (size_t)data[i + 1] | (size_t)data[i + 2] << 8, n;

		i += 3;
		if (len > size - i)
			len = size - i;
		switch (op & 3) {
		case 0:
			memcpy(frame, data + i, len);
			if (spk_mmds_stack_match(s, frame, len))
				spk_mmds_stack_tx(s, frame, len);
			break;
		case 1:
			n = wrap_tcp(data + i, len, op >> 2 & 3, op & 0x10);
			if (spk_mmds_stack_match(s, frame, n))
				spk_mmds_stack_tx(s, frame, n);
			break;
		case 2:
			if ((op & 4) && len > 1) {
				fake_ms += 8 * (uint64_t)data[i + 1];
				if (spk_mmds_stack_timer(s) > SPK_MMDS_RTO_MAX_MS)
					abort(); /* a timer beyond the backoff's bound */
			}
			drain(s, 60 + 16 * (size_t)(len ? data[i] : 0));
			break;
		default: {
			char *resp = NULL;
			size_t rl = 0;
			bool close;
			long took = spk_mmds_http(store, (const char *)data + i, len, 2500, &resp,
			                          &rl, &close);

			if (took > (long)len || (took > 0 && (!resp || rl < 12)))
				abort();
			free(resp);
		}
		}
		i += len;
	}
	drain(s, 1526);
	spk_mmds_stack_free(s);
	return 0;
}
