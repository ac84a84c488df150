/* SPDX-License-Identifier: Apache-2.0 */
/* The jail (jail.c): namespaces, pivot_root, limits, no capabilities. */
#ifndef SPK_VMM_JAIL_H
#define SPK_VMM_JAIL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/resource.h>
#include <sys/types.h>

struct spk_jail {
	const char *dir;  /* the new root */
	uid_t uid;        /* not 0 */
	gid_t gid;        /* not 0 */
	bool new_netns;   /* an empty network namespace (no TAP reachable) */
	rlim_t max_files; /* RLIMIT_NOFILE; 0 for the default 2048 */
};

/*
 * Enter the jail. Returns 0 in the jailed process (PID 1 of its PID
 * namespace, root = dir, uid:gid, no capabilities, no other fds, empty
 * environment); the calling process stays outside, waits, and exits with
 * the jailed one's status (it never returns). -errno with a reason in err
 * when the jail could not be made (nothing was started).
 */
int spk_jail_enter(const struct spk_jail *j, char *err, size_t errlen);

#endif
