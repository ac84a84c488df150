/* SPDX-License-Identifier: Apache-2.0 */
/*
 * virtio-vsock (virtio 1.2 section 5.10), stream sockets, with the host
 * side on Unix sockets as Firecracker has it:
 *
 *   - host to guest: connect to uds_path, write "CONNECT <port>\n", read
 *     "OK <host port>\n" once the guest accepted; then the socket is the
 *     stream. If the guest refuses, the socket is closed.
 *   - guest to host: a guest connection to host (CID 2) port P connects
 *     to the Unix socket "<uds_path>_<P>", where a host program listens;
 *     if none does, the guest gets a reset (ECONNRESET).
 *
 * Flow control is virtio-vsock's credit: each connection buffers at most
 * 256 KiB of the guest's data for a host program that reads slowly, and
 * the guest is sent no more than it gave credit for. At most max_conns
 * connections are open at once (host programs waiting for their CONNECT
 * line count); more are refused (reset, or the host socket closed).
 * A device reset by the driver closes every connection.
 */
#ifndef SPARKLER_VIRTIO_VSOCK_H
#define SPARKLER_VIRTIO_VSOCK_H

#include <stdint.h>

#include <sparkler/virtio.h>

#ifdef __cplusplus
extern "C" {
#endif

struct spk_virtio_vsock_config {
	struct spk_pci_host *pci;
	int slot; /* -1: the first free */
	struct spk_mem *mem;
	struct spk_evloop *loop; /* required */
	uint32_t guest_cid;      /* 3 to 2^32 - 2 */
	/* Where host programs connect. A stale socket there is replaced; a
	 * socket someone listens on, or any other file, is refused. Removed
	 * when the device is freed. */
	const char *uds_path;
	uint32_t max_conns; /* 0: 128; at most 4096 */
};

struct spk_virtio_vsock_stats {
	uint64_t opened;   /* connections made, either way */
	uint64_t refused;  /* not made: the limit, nobody at uds_path_PORT */
	uint64_t rx_bytes; /* host to guest */
	uint64_t tx_bytes; /* guest to host */
	uint32_t open;     /* connections open now */
	uint64_t transport_resets; /* TRANSPORT_RESET events sent after restores */
};

/*
 * The contract (the library's rules: vcpu.h). NULL device or pointer
 * arguments are refused with a message: -EINVAL, a NULL return, or
 * (get_stats) nothing done and *st zeroed. Every call here is thread-safe
 * (the device's lock) and none is signal-safe.
 */
struct spk_virtio_vsock;
/* Listen on uds_path and make the device, any time before the VM runs;
 * cfg is copied (pci, mem and loop are borrowed and must outlive the
 * device). 0 and *out (the caller owns it), or -errno with
 * spk_last_error() (*out untouched). */
int spk_virtio_vsock_new(const struct spk_virtio_vsock_config *cfg, struct spk_virtio_vsock **out);
/* After the loop stopped and no vCPU runs: closes every connection and
 * removes uds_path. Takes NULL. */
void spk_virtio_vsock_free(struct spk_virtio_vsock *v);
/* Its virtio device (owned by v, valid until spk_virtio_vsock_free). */
struct spk_virtio *spk_virtio_vsock_dev(struct spk_virtio_vsock *v);
/* Copy the counters so far into *st (one consistent moment). */
void spk_virtio_vsock_get_stats(struct spk_virtio_vsock *v, struct spk_virtio_vsock_stats *st);

#ifdef __cplusplus
}
#endif
#endif
