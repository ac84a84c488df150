/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libmicrohttpd, loaded only when the API socket is served. Linked in,
 * it drags GnuTLS and eight more libraries into every sparkler process,
 * API or not: 0.9 ms more from exec to main() and 2.9 MiB more resident
 * memory for `sparkler run` and `sparkler sandbox`, which never speak
 * HTTP (measured with `perf stat` on an empty program linked with and
 * without -lmicrohttpd). So api_server.c calls it through this table,
 * filled by dlopen() before seccomp is installed and before the jail's
 * pivot_root (after which the library's file is out of reach).
 */
#ifndef SPK_VMM_MHD_H
#define SPK_VMM_MHD_H

#include <stddef.h>

#include <microhttpd.h>

struct spk_mhd {
	__typeof__(MHD_start_daemon) *start_daemon;
	__typeof__(MHD_quiesce_daemon) *quiesce_daemon;
	__typeof__(MHD_stop_daemon) *stop_daemon;
	__typeof__(MHD_create_response_from_buffer) *create_response_from_buffer;
	__typeof__(MHD_add_response_header) *add_response_header;
	__typeof__(MHD_queue_response) *queue_response;
	__typeof__(MHD_destroy_response) *destroy_response;
	__typeof__(MHD_lookup_connection_value) *lookup_connection_value;
	__typeof__(MHD_get_connection_info) *get_connection_info;
};

/* Load the library and every function above, once (later calls return
 * the first answer). NULL with a one-line reason in err when the library
 * or one of its functions is missing. Thread-safe. */
const struct spk_mhd *spk_mhd_load(char *err, size_t errlen);

#endif
