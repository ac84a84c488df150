/* SPDX-License-Identifier: Apache-2.0 */
/* libsparkler: everything in one include. */
#ifndef SPARKLER_SPARKLER_H
#define SPARKLER_SPARKLER_H

#include <sparkler/abi.h>
#include <sparkler/bus.h>
#include <sparkler/exit.h>
#include <sparkler/hypercall.h>
#include <sparkler/loader.h>
#include <sparkler/log.h>
#include <sparkler/mem.h>
#include <sparkler/vcpu.h>
#include <sparkler/vm.h>
#include <sparkler/x86.h>

#define SPARKLER_VERSION "0.1.0"

#endif
