#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# The core is architecture-neutral (src/core/backend.h): no file under
# src/core/ includes a backend's header (src/kvm/, src/kvm-arm64/, ...) or
# the kernel's KVM API, or names a backend's own symbols. test_backend.c
# checks the same at link time.
root=${1:-.}
bad=$(grep -rnE '^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"]((\.\./)*kvm[^/]*/|linux/kvm\.h)' \
	"$root/src/core" 2>/dev/null)
sym=$(grep -rnE '\bspk_(kvm|x86)_[a-z_]+\(' "$root/src/core" 2>/dev/null)
if [ -n "$bad" ] || [ -n "$sym" ]; then
	echo "src/core/ reaches into a backend:"
	[ -n "$bad" ] && echo "$bad"
	[ -n "$sym" ] && echo "$sym"
	exit 1
fi
echo "src/core/: no backend include or symbol ($(ls "$root/src/core" | wc -l) files)"
