/* SPDX-License-Identifier: Apache-2.0 */
#include "harness.h"

void th_setup(struct th *t, const char *name, const struct th_opts *o)
{
	static const struct th_opts none = {0};
	char path[512];

	o = o ? o : &none;
	memset(t, 0, sizeof(*t));
	struct spk_vm_config cfg = {
		.max_vcpus = o->max_vcpus ? o->max_vcpus : 1,
		.irqchip = o->irqchip,
		.msr_exits = o->msr_exits,
		.n_msr_exits = o->n_msr_exits,
		.console_fd = o->console_fd,
		.cpuid_policy = o->cpuid_policy,
		.cpuid_opaque = o->cpuid_opaque,
		.no_assists = o->no_assists,
	};
	CHECK_OK(spk_vm_create(&cfg, &t->vm));
	CHECK_OK(spk_vm_add_memory(t->vm, 0, TH_RAM, SPK_MEM_RAM, "ram", NULL));
	CHECK_OK(spk_x86_build_long_mode(spk_vm_mem(t->vm), TH_TABLES, TH_MAP, &t->lm));
	snprintf(path, sizeof(path), "%s/%s.elf", GUEST_DIR, name);
	CHECK_OK(spk_elf_load_file(spk_vm_mem(t->vm), path, 16 << 20, &t->elf));
	CHECK_OK(spk_vcpu_create(t->vm, 0, &t->vcpu));
	const struct spk_x86_entry entry = {.rip = t->elf.entry, .cpl = 0};
	CHECK_OK(spk_x86_vcpu_enter_long_mode(t->vcpu, &t->lm, &entry));
}

void th_teardown(struct th *t)
{
	spk_vm_destroy(t->vm);
	t->vm = NULL;
}

void th_fail_on_assert(struct th *t, const struct spk_exit *e)
{
	struct spk_ucall uc;

	if (e->kind != SPK_EXIT_HYPERCALL || e->hypercall.nr != SPK_HC_UCALL)
		return;
	if (spk_ucall_decode(t->vcpu, e, &uc) == 0 && uc.type == SPK_UCALL_ASSERT) {
		fprintf(stderr, "guest assert failed: %s at %s:%llu (0x%llx vs 0x%llx)\n", uc.expr,
			uc.file, (unsigned long long)uc.line, (unsigned long long)uc.args[3],
			(unsigned long long)uc.args[4]);
		exit(1);
	}
}

void th_run(struct th *t, struct spk_exit *e)
{
	do {
		CHECK_OK(spk_vcpu_run(t->vcpu, e));
	} while (e->kind == SPK_EXIT_NONE);
	th_fail_on_assert(t, e);
}

struct spk_ucall th_expect_ucall(struct th *t, struct spk_exit *e, uint64_t type)
{
	char line[256];
	struct spk_ucall uc;

	spk_exit_format(e, line, sizeof(line));
	CHECK(e->kind == SPK_EXIT_HYPERCALL && e->hypercall.nr == SPK_HC_UCALL,
	      "expected a ucall, got %s", line);
	CHECK_OK(spk_ucall_decode(t->vcpu, e, &uc));
	CHECK(uc.type == type, "expected ucall type %llu, got %llu (%s)",
	      (unsigned long long)type, (unsigned long long)uc.type, line);
	return uc;
}

void th_run_to_done(struct th *t)
{
	struct spk_exit e;

	th_run(t, &e);
	struct spk_ucall uc = th_expect_ucall(t, &e, SPK_UCALL_DONE);
	CHECK_EQ(uc.args[0], 0);
}

int th_main(int argc, char **argv, const struct th_case *cases, size_t n)
{
	char why[256];

	if (argc != 2) {
		fprintf(stderr, "usage: %s CASE|--list\n", argv[0]);
		return 2;
	}
	if (strcmp(argv[1], "--list") == 0) {
		for (size_t i = 0; i < n; i++)
			printf("%s\n", cases[i].name);
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		if (strcmp(argv[1], cases[i].name) != 0)
			continue;
		if (!spk_kvm_usable(why, sizeof(why))) {
			printf("SKIP %s: KVM is not usable here: %s\n", cases[i].name, why);
			return 77;
		}
		printf("running %s on KVM kind '%s'\n", cases[i].name, spk_host_kvm_kind());
		cases[i].fn();
		printf("PASS %s (KVM kind '%s')\n", cases[i].name, spk_host_kvm_kind());
		return 0;
	}
	fprintf(stderr, "unknown case '%s'\n", argv[1]);
	return 2;
}

static void th_log_line(enum spk_log_level level, const char *msg, void *opaque)
{
	struct th_log *l = opaque;

	fprintf(stderr, "log: %s\n", msg);
	pthread_mutex_lock(&l->lock);
	if (l->n < TH_LOG_LINES && level <= l->keep)
		snprintf(l->line[l->n++], sizeof(l->line[0]), "%s", msg);
	pthread_mutex_unlock(&l->lock);
}

void th_log_capture(struct th_log *l, enum spk_log_level keep)
{
	memset(l, 0, sizeof(*l));
	pthread_mutex_init(&l->lock, NULL);
	l->keep = keep;
	spk_log_set(th_log_line, l, keep > SPK_LOG_INFO ? keep : SPK_LOG_INFO);
}

void th_log_stop(struct th_log *l)
{
	spk_log_set(NULL, NULL, SPK_LOG_WARN);
	pthread_mutex_destroy(&l->lock);
}

unsigned th_log_count(struct th_log *l, const char *const *want)
{
	unsigned n = 0;

	pthread_mutex_lock(&l->lock);
	for (unsigned i = 0; i < l->n; i++) {
		bool all = true;

		for (const char *const *w = want; *w; w++)
			all = all && strstr(l->line[i], *w);
		n += all;
	}
	pthread_mutex_unlock(&l->lock);
	return n;
}
