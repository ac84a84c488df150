/* SPDX-License-Identifier: Apache-2.0 */
/* The allowlists as libseccomp rules (seccomp_rules.c), for seccomp-gen. */
#ifndef SPK_VMM_SECCOMP_RULES_H
#define SPK_VMM_SECCOMP_RULES_H

#include <seccomp.h>

#include "vmm/confine/seccomp_policy.h"

/* Add profile p's rules to ctx (made with seccomp_init(SCMP_ACT_TRAP)).
 * 0 or a negative libseccomp error. */
int spk_seccomp_rules(scmp_filter_ctx ctx, enum spk_seccomp_profile p);

#endif
