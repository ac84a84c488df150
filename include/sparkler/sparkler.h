/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libsparkler: every public header in one include (tests/headers.sh checks
 * that each one also compiles alone, as C99, C11 and C++).
 */
#ifndef SPARKLER_SPARKLER_H
#define SPARKLER_SPARKLER_H

#include <sparkler/abi.h>
#include <sparkler/arm64.h>
#include <sparkler/acpi.h>
#include <sparkler/arm64_boot.h>
#include <sparkler/assist.h>
#include <sparkler/bus.h>
#include <sparkler/devices.h>
#include <sparkler/evloop.h>
#include <sparkler/exit.h>
#include <sparkler/fdt.h>
#include <sparkler/fn.h>
#include <sparkler/fn_abi.h>
#include <sparkler/hypercall.h>
#include <sparkler/linux.h>
#include <sparkler/loader.h>
#include <sparkler/log.h>
#include <sparkler/mem.h>
#include <sparkler/pci.h>
#include <sparkler/platform.h>
#include <sparkler/ratelimit.h>
#include <sparkler/snapshot.h>
#include <sparkler/vcpu.h>
#include <sparkler/virtio.h>
#include <sparkler/virtio_blk.h>
#include <sparkler/virtio_balloon.h>
#include <sparkler/virtio_net.h>
#include <sparkler/virtio_vsock.h>
#include <sparkler/vm.h>
#include <sparkler/x86.h>

#define SPARKLER_VERSION "0.1.0"

#endif
