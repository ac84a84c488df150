/*
 * Test frames shared by the virtio-net guests and their host test
 * (tests/guest/net_tests.c): an Ethernet header, a 2-byte sequence number,
 * then bytes that depend on the sequence number and their position. The
 * length depends on the sequence number too (60 to 1514 bytes).
 */
#ifndef NET_FRAMES_H
#define NET_FRAMES_H

#include <stdint.h>

#define NF_HDR       12 /* struct virtio_net_hdr_v1 */
#define NF_ETH       14
#define NF_TO_HOST   0x88b5 /* local experimental Ethernet types */
#define NF_TO_GUEST  0x88b6
#define NF_F_MAC     (1ull << 5)
#define NF_F_STATUS  (1ull << 16)
#define NF_FRAME_MIN 60
#define NF_FRAME_MAX 1514

static const uint8_t nf_guest_mac[6] = {0x02, 0x53, 0x50, 0x4b, 0x00, 0x01};
static const uint8_t nf_broadcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

static inline uint32_t nf_len(unsigned seq)
{
	return NF_FRAME_MIN + (seq * 97u) % (NF_FRAME_MAX - NF_FRAME_MIN + 1);
}

static inline uint8_t nf_byte(unsigned seq, uint32_t i)
{
	return (uint8_t)(seq * 31u + i * 7u + 1u);
}

/* Write frame seq at f: its length. */
static inline uint32_t nf_frame(uint8_t *f, const uint8_t src[6], const uint8_t dst[6],
                                uint16_t type, unsigned seq)
{
	uint32_t n = nf_len(seq);

	for (int i = 0; i < 6; i++) {
		f[i] = dst[i];
		f[6 + i] = src[i];
	}
	f[12] = (uint8_t)(type >> 8);
	f[13] = (uint8_t)type;
	f[14] = (uint8_t)(seq >> 8);
	f[15] = (uint8_t)seq;
	for (uint32_t i = 16; i < n; i++)
		f[i] = nf_byte(seq, i);
	return n;
}

/* The sequence number of a frame of this type to dst, checked byte by
 * byte; -1 for a frame of another type (someone else's traffic), -2 for
 * a bad one. */
static inline int nf_parse(const uint8_t *f, uint32_t n, const uint8_t dst[6], uint16_t type)
{
	if (n < NF_ETH + 2 || f[12] != (uint8_t)(type >> 8) || f[13] != (uint8_t)type)
		return -1;
	for (int i = 0; i < 6; i++)
		if (f[i] != dst[i])
			return -1;
	unsigned seq = (unsigned)f[14] << 8 | f[15];
	if (n != nf_len(seq))
		return -2;
	for (uint32_t i = 16; i < n; i++)
		if (f[i] != nf_byte(seq, i))
			return -2;
	return (int)seq;
}

#ifdef GUEST_H /* the guests' side */

/* A zero virtio_net_hdr, then frame seq: the frame's length. */
static inline uint32_t nf_build(uint8_t *buf, const uint8_t src[6], const uint8_t dst[6],
                                uint16_t type, unsigned seq)
{
	memset(buf, 0, NF_HDR);
	return nf_frame(buf + NF_HDR, src, dst, type, seq);
}

/* What the device must say about a received frame: no offloads, one buffer. */
static inline void nf_check_hdr(const uint8_t *h)
{
	GUEST_ASSERT_EQ(h[0], 0);               /* flags */
	GUEST_ASSERT_EQ(h[1], 0);               /* gso_type */
	GUEST_ASSERT_EQ(h[10] | h[11] << 8, 1); /* num_buffers */
}

static inline int nf_check(const uint8_t *f, uint32_t n, const uint8_t dst[6], uint16_t type)
{
	int seq = nf_parse(f, n, dst, type);

	GUEST_ASSERT(seq != -2);
	return seq;
}

#endif
#endif
