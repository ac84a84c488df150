/*
 * What the virtio-vsock guests and their host test (tests/guest/
 * network_tests.c) send each other: sizes, ports and byte patterns.
 */
#ifndef VSOCK_DATA_H
#define VSOCK_DATA_H

#include <stdint.h>

#define VD_CID        42
#define VD_HOST_PORT  5000 /* the guest connects to uds_path_5000 */
#define VD_GUEST_PORT 6000 /* the host connects to this port of the guest */
#define VD_NO_PORT    7000 /* nobody listens in the guest */
#define VD_TO_HOST    (300u << 10)
#define VD_FROM_HOST  (200u << 10)
#define VD_ECHO       (100u << 10)

/* hostile test: uds_path_5001 never reads, uds_path_5002 accepts */
#define VD_SILENT_PORT 5001
#define VD_OPEN_PORT   5002
#define VD_MAX_CONNS   4

static inline uint8_t vd_to_host(uint32_t i)
{
	return (uint8_t)(i * 7u + 13u + (i >> 12));
}

static inline uint8_t vd_from_host(uint32_t i)
{
	return (uint8_t)(i * 11u + 3u + (i >> 10));
}

static inline uint8_t vd_echo(uint32_t i)
{
	return (uint8_t)(i * 13u + 5u + (i >> 9));
}

#endif
