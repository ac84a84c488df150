/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sparkler-bench-bare [--mem MIB] IMAGE: the bare program the process
 * benchmarks hold `sparkler sandbox` to. It does what the sandbox does for
 * a trivial guest, with raw ioctls: create a VM, load a flat image at
 * 1 MiB, enter it at CPL0 in long mode, copy debug-console bytes to stdout
 * and stop at the done hypercall. Exit status 0 when the guest finished.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bare.h"
#include "guest.h"

static ssize_t read_image(const char *path, uint8_t *buf, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	ssize_t n = read(fd, buf, cap);
	int err = errno;
	close(fd);
	return n < 0 ? -err : n;
}

int main(int argc, char **argv)
{
	uint64_t mib = 64;
	uint8_t image[4096];
	struct bare_vm vm;

	if (argc == 4 && strcmp(argv[1], "--mem") == 0)
		mib = strtoull(argv[2], NULL, 10);
	else if (argc != 2)
		mib = 0;
	if (mib < 4) {
		fprintf(stderr, "usage: sparkler-bench-bare [--mem MIB] IMAGE (4 MiB or more)\n");
		return 2;
	}
	ssize_t len = read_image(argv[argc - 1], image, sizeof(image));
	if (len <= 0) {
		fprintf(stderr, "bare: cannot read %s: %s\n", argv[argc - 1], strerror((int)-len));
		return 2;
	}
	int kvm = bare_kvm_open();
	if (kvm < 0 || bare_vm_create(&vm, kvm, mib << 20) < 0 ||
	    bare_vm_load(&vm, image, (size_t)len) < 0 || bare_vm_enter(&vm, 0) < 0 ||
	    bare_vm_run(&vm, STDOUT_FILENO) < 0)
		return 4;
	/* like most monitors, leave the teardown to the kernel's exit */
	return 0;
}
