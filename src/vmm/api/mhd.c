/* SPDX-License-Identifier: Apache-2.0 */
/* libmicrohttpd through dlopen(): see mhd.h for why. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "vmm/api/mhd.h"

/* The soname of the libmicrohttpd we compiled against (Debian 12:
 * libmicrohttpd12), then the -dev package's unversioned link. */
static const char *const sonames[] = {"libmicrohttpd.so.12", "libmicrohttpd.so"};

static struct spk_mhd table;
static const struct spk_mhd *loaded;
static char why[256];
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void *sym(void *lib, const char *name, bool *ok)
{
	void *p = dlsym(lib, name);

	if (!p && *ok) {
		snprintf(why, sizeof(why), "%s has no %s", sonames[0], name);
		*ok = false;
	}
	return p;
}

static void load(void)
{
	void *lib = NULL;
	bool ok = true;

	for (size_t i = 0; i < sizeof(sonames) / sizeof(sonames[0]) && !lib; i++)
		lib = dlopen(sonames[i], RTLD_NOW | RTLD_LOCAL);
	if (!lib) {
		const char *e = dlerror();

		snprintf(why, sizeof(why), "cannot load %s (Debian package libmicrohttpd12): %s",
		         sonames[0], e ? e : "not found");
		return;
	}
	/* dlsym() returns void *, which POSIX lets us store into a function
	 * pointer; through a void ** the compiler does not object */
#define LOAD(field, name) *(void **)(&table.field) = sym(lib, name, &ok)
	LOAD(start_daemon, "MHD_start_daemon");
	LOAD(quiesce_daemon, "MHD_quiesce_daemon");
	LOAD(stop_daemon, "MHD_stop_daemon");
	LOAD(create_response_from_buffer, "MHD_create_response_from_buffer");
	LOAD(add_response_header, "MHD_add_response_header");
	LOAD(queue_response, "MHD_queue_response");
	LOAD(destroy_response, "MHD_destroy_response");
	LOAD(lookup_connection_value, "MHD_lookup_connection_value");
	LOAD(get_connection_info, "MHD_get_connection_info");
#undef LOAD
	if (!ok) {
		dlclose(lib);
		return;
	}
	loaded = &table; /* the library stays loaded for the process's life */
}

const struct spk_mhd *spk_mhd_load(char *err, size_t errlen)
{
	pthread_once(&once, load);
	if (!loaded && err && errlen)
		snprintf(err, errlen, "%s", why);
	return loaded;
}
