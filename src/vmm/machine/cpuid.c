/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The CPUID policy of `sparkler run`: a topology for N vCPUs (one core per
 * vCPU, no SMT), the hypervisor bit, a template that hides features, and
 * what these hosts' KVM cannot emulate (CX16 on PVM, see PLATFORM notes),
 * and the kernel options a stock kernel needs on PVM hosts.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/vmm.h"

#define BIT(n) (1u << (n))

static unsigned order(uint32_t n)
{
	unsigned s = 0;

	while ((1u << s) < n)
		s++;
	return s;
}

/* Leaf 0xB / 0x1F: level 0 SMT (1 thread), level 1 core (ncpus), then none. */
static void topology_leaf(struct spk_cpuid_entry *e, uint32_t ncpus, uint32_t id)
{
	switch (e->index) {
	case 0:
		e->eax = 0;
		e->ebx = 1;
		e->ecx = (1u << 8) | 0;
		break;
	case 1:
		e->eax = order(ncpus);
		e->ebx = ncpus;
		e->ecx = (2u << 8) | 1;
		break;
	default:
		e->eax = e->ebx = 0;
		e->ecx = e->index & 0xff;
		break;
	}
	e->edx = id;
}

static void apply_topology(struct spk_cpuid_entry *e, uint32_t n, uint32_t ncpus, uint32_t id)
{
	for (uint32_t i = 0; i < n; i++) {
		switch (e[i].function) {
		case 1:
			/* logical processors per package; HTT says the field is valid */
			e[i].ebx = (e[i].ebx & 0xff00ffffu) | ((ncpus & 0xff) << 16);
			if (ncpus > 1)
				e[i].edx |= BIT(28);
			else
				e[i].edx &= ~BIT(28);
			e[i].ecx |= BIT(31); /* running under a hypervisor */
			break;
		case 4: {
			/* cores per package - 1; caches shared by one core (L1/L2) or all (L3) */
			uint32_t level = (e[i].eax >> 5) & 7;
			uint32_t share = level >= 3 ? ncpus - 1 : 0;
			e[i].eax = (e[i].eax & 0x3fff) | (share << 14) | ((ncpus - 1) << 26);
			break;
		}
		case 0xb:
		case 0x1f:
			topology_leaf(&e[i], ncpus, id);
			break;
		case 0x80000008:
			e[i].ecx = (e[i].ecx & ~0xffu) | ((ncpus - 1) & 0xff);
			break;
		default:
			break;
		}
	}
}

/* Features a conservative guest does without: AVX-512, TSX, SGX, MPX, PKU,
 * AMX, and the host's power and debug-store interfaces. */
static void apply_minimal(struct spk_cpuid_entry *e, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		struct spk_cpuid_entry *x = &e[i];

		if (x->function == 1) {
			x->ecx &= ~(BIT(2) | BIT(3) | BIT(4) | BIT(5) | BIT(6) | BIT(7) | BIT(8) |
				    BIT(14) | BIT(15) | BIT(18));
			x->edx &= ~(BIT(21) | BIT(22) | BIT(29) | BIT(31));
		} else if (x->function == 7 && x->index == 0) {
			x->ebx &= ~(BIT(2) | BIT(4) | BIT(11) | BIT(12) | BIT(14) | BIT(15) | BIT(16) |
				    BIT(17) | BIT(21) | BIT(26) | BIT(27) | BIT(28) | BIT(30) | BIT(31));
			x->ecx &= ~(BIT(1) | BIT(3) | BIT(4) | BIT(5) | BIT(6) | BIT(11) | BIT(12) |
				    BIT(14) | BIT(16) | BIT(30));
			x->edx &= ~(BIT(2) | BIT(3) | BIT(8) | BIT(16) | BIT(22) | BIT(24) | BIT(25));
		} else if (x->function == 0xd && x->index == 0) {
			x->eax &= 0x7; /* XSAVE state: x87, SSE, AVX only */
		} else if (x->function == 6) {
			x->eax = x->ebx = x->ecx = x->edx = 0; /* thermal and power */
		}
	}
}

/*
 * KVM_GET_SUPPORTED_CPUID may list leaf 0xB / 0x1F with sub-leaf 0 only
 * (it does on these hosts); a guest then reads zeros for sub-leaf 1, no
 * core level, and sees one vCPU per package. Add sub-leaves 1 (core) and
 * 2 (the end) so that apply_topology fills them in.
 */
static int add_topology_subleaves(struct spk_cpuid_entry *e, uint32_t *n, uint32_t cap,
				  uint32_t leaf)
{
	if (!spk_cpuid_find(e, *n, leaf, 0))
		return 0;
	for (uint32_t sub = 1; sub <= 2; sub++) {
		if (spk_cpuid_find(e, *n, leaf, sub))
			continue;
		if (*n >= cap)
			return -ENOSPC;
		e[(*n)++] = (struct spk_cpuid_entry){.function = leaf, .index = sub,
						     .flags = SPK_CPUID_FLAG_SIGNIFICANT_INDEX};
	}
	return 0;
}

int spk_cpuid_policy(void *opaque, uint32_t vcpu_id, struct spk_cpuid_entry *e, uint32_t *n,
		     uint32_t cap)
{
	const struct spk_cpu_policy *p = opaque;
	int rc;

	if ((rc = add_topology_subleaves(e, n, cap, 0xb)) < 0 ||
	    (rc = add_topology_subleaves(e, n, cap, 0x1f)) < 0)
		return rc;
	apply_topology(e, *n, p->ncpus, vcpu_id);
	if (p->template == SPK_CPU_TEMPLATE_MINIMAL)
		apply_minimal(e, *n);
	if (p->clear_cx16) {
		struct spk_cpuid_entry *l1 = spk_cpuid_find(e, *n, 1, 0);

		if (l1)
			l1->ecx &= ~BIT(13);
	}
	return 0;
}

int spk_cpu_template_parse(const char *s, enum spk_cpu_template *t)
{
	if (strcmp(s, "host") == 0)
		*t = SPK_CPU_TEMPLATE_HOST;
	else if (strcmp(s, "minimal") == 0)
		*t = SPK_CPU_TEMPLATE_MINIMAL;
	else
		return -1;
	return 0;
}

/*
 * On PVM hosts guest CPL0 code goes through KVM's emulator, which cannot
 * run xsave/xrstor (the kernel's FPU switching: noxsave keeps it on
 * fxsave, which CPUID cannot hide there), and everything runs so slowly
 * that the soft-lockup watchdog fires (nowatchdog).
 */
static const char *const pvm_options[] = {"noxsave", "nowatchdog"};

#define KERNEL_CMDLINE_MAX 2048

/* Is there a word in s[0..len) named like opt (the word, or what precedes its '=')? */
static bool has_option(const char *s, size_t len, const char *opt)
{
	size_t n = strlen(opt), i = 0;

	while (i < len) {
		while (i < len && s[i] == ' ')
			i++;
		size_t start = i;
		while (i < len && s[i] != ' ')
			i++;
		size_t w = i - start;
		if (w >= n && strncmp(s + start, opt, n) == 0 && (w == n || s[start + n] == '='))
			return true;
	}
	return false;
}

int spk_pvm_cmdline(const char *cmdline, char **out, char *added, size_t added_len)
{
	const char *cmd = cmdline ? cmdline : "";
	const char *init_args = strstr(cmd, " -- ");
	size_t head = init_args ? (size_t)(init_args - cmd) : strlen(cmd);
	size_t total = strlen(cmd) + 1, add_at = 0;
	char *buf;

	*out = NULL;
	if (added && added_len)
		added[0] = 0;
	for (size_t i = 0; i < sizeof(pvm_options) / sizeof(pvm_options[0]); i++)
		if (!has_option(cmd, head, pvm_options[i]))
			total += strlen(pvm_options[i]) + 1;
	if (total > KERNEL_CMDLINE_MAX)
		return -E2BIG;
	buf = malloc(total);
	if (!buf)
		return -ENOMEM;
	memcpy(buf, cmd, head);
	size_t at = head;
	for (size_t i = 0; i < sizeof(pvm_options) / sizeof(pvm_options[0]); i++) {
		size_t n = strlen(pvm_options[i]);

		if (has_option(cmd, head, pvm_options[i]))
			continue;
		if (at)
			buf[at++] = ' ';
		memcpy(buf + at, pvm_options[i], n);
		at += n;
		if (added && added_len > add_at + 1) {
			int w = snprintf(added + add_at, added_len - add_at, "%s%s",
			                 add_at ? " " : "", pvm_options[i]);
			add_at = w > 0 ? add_at + (size_t)w : add_at;
			if (add_at >= added_len)
				add_at = added_len - 1;
		}
	}
	memcpy(buf + at, cmd + head, strlen(cmd + head) + 1); /* init's arguments and the NUL */
	*out = buf;
	return 0;
}
