// SPDX-License-Identifier: Apache-2.0
/*
 * The snapshot state file: writer, checked reader, section cursors.
 *
 * Layout (little-endian; docs/snapshots.md has the full description):
 *
 *	file     := magic[8] "SPKSNAP\n", u32 format_version, u32 reserved (0),
 *	            section*
 *	section  := u32 type, u32 flags (0), u64 length, u32 crc, u32 reserved (0),
 *	            payload[length]
 *	payload  := field*
 *	field    := u8 name_len (1..63), name, u8 ftype, value
 *	value    := u8 | u16 | u32 | u64 | u32 len, bytes[len]   (by ftype)
 *
 * crc is CRC-32 (IEEE) over the section's type, flags and length (16 bytes)
 * and then the payload, so a flipped bit anywhere in a section, its header
 * included, is caught. The file ends with an END section whose one field
 * counts the sections before it, so a file cut at a section boundary is
 * refused too.
 *
 * The reader takes nothing on trust: the whole file is read and checked
 * (spk_snap_open_buf) before any section is handed out, and each
 * refusal is one line naming the section (index, type, offset) and the
 * field.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <sparkler/snapshot.h>
#include <sparkler/sparkler.h>

#include "core/internal.h"
#include "snapshot/snap_internal.h"

#define PREAMBLE  16
#define SEC_HDR   24
#define NAME_MAX_ (SPK_SNAP_NAME_MAX - 1)

/* ---- CRC-32 (IEEE 802.3, reflected, as zlib's crc32) ---- */

static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int k = 0; k < 8; k++)
			c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
		crc_table[i] = c;
	}
}

uint32_t spk_snap_crc32(uint32_t crc, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	pthread_once(&crc_once, crc_init);
	crc = ~crc;
	while (len--)
		crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return ~crc;
}

/* ---- names ---- */

const char *spk_snap_type_name(uint32_t type)
{
	switch (type) {
	case SPK_SNAP_SEC_HEADER:
		return "header";
	case SPK_SNAP_SEC_VM:
		return "vm";
	case SPK_SNAP_SEC_VCPU:
		return "vcpu";
	case SPK_SNAP_SEC_MEMORY:
		return "memory";
	case SPK_SNAP_SEC_DEVICE:
		return "device";
	case SPK_SNAP_SEC_END:
		return "end";
	}
	return "unknown";
}

const char *spk_snap_ftype_name(uint32_t type)
{
	static const char *const names[] = {"?", "u8", "u16", "u32", "u64", "bytes", "str"};

	return type >= 1 && type <= SPK_SNAP_STR ? names[type] : "unknown";
}

static bool type_known(uint32_t type)
{
	return strcmp(spk_snap_type_name(type), "unknown") != 0;
}

static bool type_repeats(uint32_t type)
{
	return type == SPK_SNAP_SEC_VCPU || type == SPK_SNAP_SEC_DEVICE;
}

bool spk_snap_name_ok(const char *name)
{
	size_t n = name ? strlen(name) : 0;

	if (n == 0 || n > NAME_MAX_)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.'))
			return false;
	}
	return true;
}

static bool str_ok(const uint8_t *p, size_t n)
{
	if (n >= SPK_SNAP_STR_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (p[i] < 0x20 || p[i] > 0x7e)
			return false;
	return true;
}

/* ---- the header's host fields ---- */

static void cpuid_raw(uint32_t leaf, uint32_t r[4])
{
#if defined(__x86_64__) || defined(__i386__)
	__asm__ volatile("cpuid"
	                 : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3])
	                 : "a"(leaf), "c"(0));
#else
	r[0] = r[1] = r[2] = r[3] = 0;
	(void)leaf;
#endif
}

void spk_snap_header_host(struct spk_snap_header *h)
{
	uint32_t r[4];
	struct utsname u;

	if (!h) {
		spk_fail(EINVAL, "snapshot: header_host needs a header");
		return;
	}
	memset(h, 0, sizeof(*h));
	h->format_version = SPK_SNAP_FORMAT_VERSION;
	snprintf(h->sparkler_version, sizeof(h->sparkler_version), "%s", SPARKLER_VERSION);
	cpuid_raw(0, r);
	memcpy(h->cpu_vendor, &r[1], 4);
	memcpy(h->cpu_vendor + 4, &r[3], 4);
	memcpy(h->cpu_vendor + 8, &r[2], 4);
	for (int i = 0; i < 12; i++)
		if (h->cpu_vendor[i] < 0x20 || h->cpu_vendor[i] > 0x7e)
			h->cpu_vendor[i] = '?';
	if (r[0] >= 1) {
		cpuid_raw(1, r);
		uint32_t fam = (r[0] >> 8) & 0xf, model = (r[0] >> 4) & 0xf;

		if (fam == 0xf)
			fam += (r[0] >> 20) & 0xff;
		if (fam == 0x6 || fam >= 0xf)
			model |= ((r[0] >> 16) & 0xf) << 4;
		h->cpu_family = fam;
		h->cpu_model = model;
		h->cpu_stepping = r[0] & 0xf;
	}
	if (uname(&u) == 0) {
		snprintf(h->host_kernel, sizeof(h->host_kernel), "%s", u.release);
		for (char *c = h->host_kernel; *c; c++)
			if (*c < 0x20 || *c > 0x7e)
				*c = '?';
	}
	h->created = (uint64_t)time(NULL);
}

/* ---- writer ---- */

struct spk_snap_writer {
	uint8_t *buf;
	size_t len, cap;
	int err;
	bool finished;
	size_t open;        /* offset of the open section's header, or SIZE_MAX */
	uint32_t last_type; /* of the last section begun */
	size_t sections;
};

int spk_snap_writer_new(struct spk_snap_writer **out)
{
	struct spk_snap_writer *w;

	if (!out)
		return spk_fail(EINVAL, "snapshot: writer: no out pointer");
	w = calloc(1, sizeof(*w));
	if (!w)
		return spk_fail(ENOMEM, "snapshot: writer: out of memory");
	w->open = SIZE_MAX;
	*out = w;
	return 0;
}

void spk_snap_writer_free(struct spk_snap_writer *w)
{
	if (!w)
		return;
	free(w->buf);
	free(w);
}

int spk_snap_writer_error(const struct spk_snap_writer *w)
{
	return w ? w->err : spk_fail(EINVAL, "snapshot: writer_error needs a writer");
}

__attribute__((format(printf, 3, 4))) static int wfail(struct spk_snap_writer *w, int err,
                                                       const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (!w->err)
		w->err = spk_fail(err, "snapshot: writing: %s", msg);
	return w->err;
}

static int wput(struct spk_snap_writer *w, const void *p, size_t n)
{
	if (w->err)
		return w->err;
	if (n > SPK_SNAP_MAX_FILE || w->len > SPK_SNAP_MAX_FILE - n)
		return wfail(w, EFBIG, "the state file would pass %u bytes", SPK_SNAP_MAX_FILE);
	if (w->len + n > w->cap) {
		size_t cap = w->cap ? w->cap : 4096;
		uint8_t *nb;

		while (cap < w->len + n)
			cap *= 2;
		nb = realloc(w->buf, cap);
		if (!nb)
			return wfail(w, ENOMEM, "out of memory");
		w->buf = nb;
		w->cap = cap;
	}
	memcpy(w->buf + w->len, p, n);
	w->len += n;
	return 0;
}

static int wput_le(struct spk_snap_writer *w, uint64_t v, unsigned n)
{
	uint8_t b[8];

	spk_put_le(b, v, n);
	return wput(w, b, n);
}

static int wstart(struct spk_snap_writer *w)
{
	if (w->err)
		return w->err;
	if (w->finished)
		return wfail(w, EINVAL, "the file is finished");
	if (w->len == 0) {
		wput(w, SPK_SNAP_MAGIC, 8);
		wput_le(w, SPK_SNAP_FORMAT_VERSION, 4);
		wput_le(w, 0, 4);
	}
	return w->err;
}

int spk_snap_section_begin(struct spk_snap_writer *w, uint32_t type)
{
	static const uint8_t zero[SEC_HDR];

	if (!w)
		return spk_fail(EINVAL, "snapshot: writing: no writer");
	if (wstart(w))
		return w->err;
	if (w->open != SIZE_MAX)
		return wfail(w, EINVAL, "section %s begun inside another",
		             spk_snap_type_name(type));
	if (!type_known(type) || type == SPK_SNAP_SEC_END)
		return wfail(w, EINVAL, "section type %" PRIu32 " is not one to write", type);
	if (w->sections == 0 && type != SPK_SNAP_SEC_HEADER)
		return wfail(w, EINVAL, "the first section must be the header, not %s",
		             spk_snap_type_name(type));
	if (w->sections && (type < w->last_type || (type == w->last_type && !type_repeats(type))))
		return wfail(w, EINVAL, "section %s after %s is out of order",
		             spk_snap_type_name(type), spk_snap_type_name(w->last_type));
	if (w->sections + 1 >= SPK_SNAP_MAX_SECTIONS)
		return wfail(w, EFBIG, "more than %d sections", SPK_SNAP_MAX_SECTIONS - 1);
	w->open = w->len;
	w->last_type = type;
	if (wput(w, zero, SEC_HDR))
		return w->err;
	spk_put_le(w->buf + w->open, type, 4);
	return 0;
}

int spk_snap_section_end(struct spk_snap_writer *w)
{
	uint8_t *h;
	uint64_t length;

	if (!w)
		return spk_fail(EINVAL, "snapshot: writing: no writer");
	if (w->err)
		return w->err;
	if (w->open == SIZE_MAX)
		return wfail(w, EINVAL, "no section is open");
	h = w->buf + w->open;
	length = w->len - w->open - SEC_HDR;
	spk_put_le(h + 8, length, 8);
	spk_put_le(h + 16, spk_snap_crc32(spk_snap_crc32(0, h, 16), h + SEC_HDR, length), 4);
	w->open = SIZE_MAX;
	w->sections++;
	return 0;
}

static int field_head(struct spk_snap_writer *w, const char *name, uint8_t ftype)
{
	uint8_t n;

	if (!w)
		return spk_fail(EINVAL, "snapshot: writing: no writer");
	if (w->err)
		return w->err;
	if (w->open == SIZE_MAX)
		return wfail(w, EINVAL, "field '%s' outside a section", name ? name : "(null)");
	if (!spk_snap_name_ok(name))
		return wfail(w, EINVAL, "bad field name '%s' (1-%d of a-z 0-9 _ .)",
		             name ? name : "(null)", NAME_MAX_);
	n = (uint8_t)strlen(name);
	wput(w, &n, 1);
	wput(w, name, n);
	return wput(w, &ftype, 1);
}

int spk_snap_put_u8(struct spk_snap_writer *w, const char *name, uint8_t v)
{
	return field_head(w, name, SPK_SNAP_U8) ?: wput_le(w, v, 1);
}

int spk_snap_put_u16(struct spk_snap_writer *w, const char *name, uint16_t v)
{
	return field_head(w, name, SPK_SNAP_U16) ?: wput_le(w, v, 2);
}

int spk_snap_put_u32(struct spk_snap_writer *w, const char *name, uint32_t v)
{
	return field_head(w, name, SPK_SNAP_U32) ?: wput_le(w, v, 4);
}

int spk_snap_put_u64(struct spk_snap_writer *w, const char *name, uint64_t v)
{
	return field_head(w, name, SPK_SNAP_U64) ?: wput_le(w, v, 8);
}

int spk_snap_put_bytes(struct spk_snap_writer *w, const char *name, const void *p, size_t len)
{
	if (w && !w->err && len > UINT32_MAX)
		return wfail(w, EFBIG, "field '%s': %zu bytes", name ? name : "(null)", len);
	if (w && !w->err && len && !p)
		return wfail(w, EINVAL, "field '%s': no bytes", name ? name : "(null)");
	return field_head(w, name, SPK_SNAP_BYTES) ?: wput_le(w, len, 4) ?: wput(w, p, len);
}

int spk_snap_put_str(struct spk_snap_writer *w, const char *name, const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (w && !w->err && (!s || !str_ok((const uint8_t *)s, n)))
		return wfail(w, EINVAL,
		             "field '%s': not a string of printable ASCII under %d bytes",
		             name ? name : "(null)", SPK_SNAP_STR_MAX);
	return field_head(w, name, SPK_SNAP_STR) ?: wput_le(w, n, 4) ?: wput(w, s, n);
}

int spk_snap_put_header(struct spk_snap_writer *w, const struct spk_snap_header *h)
{
	uint8_t *cpuid = NULL, *caps = NULL;
	int rc;

	if (!w || !h)
		return spk_fail(EINVAL, "snapshot: writing: no writer or header");
	if (h->n_cpuid > SPK_SNAP_MAX_CPUID || h->n_caps > SPK_SNAP_MAX_CAPS)
		return wfail(w, EINVAL, "header: %" PRIu32 " CPUID leaves, %" PRIu32 " caps",
		             h->n_cpuid, h->n_caps);
	cpuid = calloc(h->n_cpuid ? h->n_cpuid : 1, 24);
	caps = calloc(h->n_caps ? h->n_caps : 1, 8);
	if (!cpuid || !caps) {
		rc = wfail(w, ENOMEM, "out of memory");
		goto out;
	}
	for (uint32_t i = 0; i < h->n_cpuid; i++) {
		const struct spk_snap_cpuid *c = &h->cpuid[i];
		uint32_t v[6] = {c->function, c->index, c->eax, c->ebx, c->ecx, c->edx};

		for (int k = 0; k < 6; k++)
			spk_put_le(cpuid + i * 24 + k * 4, v[k], 4);
	}
	for (uint32_t i = 0; i < h->n_caps; i++) {
		spk_put_le(caps + i * 8, h->caps[i].cap, 4);
		spk_put_le(caps + i * 8 + 4, h->caps[i].value, 4);
	}
	spk_snap_section_begin(w, SPK_SNAP_SEC_HEADER);
	spk_snap_put_str(w, "sparkler_version", h->sparkler_version);
	spk_snap_put_str(w, "cpu_vendor", h->cpu_vendor);
	spk_snap_put_u32(w, "cpu_family", h->cpu_family);
	spk_snap_put_u32(w, "cpu_model", h->cpu_model);
	spk_snap_put_u32(w, "cpu_stepping", h->cpu_stepping);
	spk_snap_put_str(w, "host_kernel", h->host_kernel);
	spk_snap_put_u64(w, "created", h->created);
	spk_snap_put_bytes(w, "cpuid", cpuid, (size_t)h->n_cpuid * 24);
	spk_snap_put_bytes(w, "kvm_caps", caps, (size_t)h->n_caps * 8);
	rc = spk_snap_section_end(w);
out:
	free(cpuid);
	free(caps);
	return rc;
}

int spk_snap_writer_finish(struct spk_snap_writer *w, const void **buf, size_t *len)
{
	if (!w || !buf || !len)
		return spk_fail(EINVAL, "snapshot: writing: no writer or out pointer");
	if (!w->finished) {
		if (w->err)
			return w->err;
		if (w->open != SIZE_MAX)
			return wfail(w, EINVAL, "a section is still open");
		if (w->sections == 0)
			return wfail(w, EINVAL, "no header section");
		size_t before = w->sections;

		/* END may follow anything: bypass the order check */
		w->last_type = SPK_SNAP_SEC_END;
		w->open = w->len;
		{
			static const uint8_t zero[SEC_HDR];

			wput(w, zero, SEC_HDR);
		}
		if (w->err)
			return w->err;
		spk_put_le(w->buf + w->open, SPK_SNAP_SEC_END, 4);
		spk_snap_put_u32(w, "sections", (uint32_t)before);
		if (spk_snap_section_end(w))
			return w->err;
		w->finished = true;
	}
	*buf = w->buf;
	*len = w->len;
	return 0;
}

int spk_snap_pio(int fd, void *p, size_t n, uint64_t off, bool write, const char *what)
{
	uint8_t *b = p;

	while (n) {
		ssize_t k = write ? pwrite(fd, b, n, (off_t)off) : pread(fd, b, n, (off_t)off);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return spk_fail(k < 0 ? errno : EIO, "snapshot: %s %s: %s",
			                write ? "writing" : "reading", what,
			                k < 0 ? strerror(errno) : "the file is short");
		b += k;
		n -= (size_t)k;
		off += (uint64_t)k;
	}
	return 0;
}

int spk_snap_write_file(const char *path, const void *buf, size_t len, bool do_fsync)
{
	int fd, rc;

	if (!path)
		return spk_fail(EINVAL, "snapshot: no file name");
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return spk_fail(errno, "snapshot: %s: %s", path, strerror(errno));
	rc = spk_snap_pio(fd, (void *)buf, len, 0, true, path);
	if (!rc && do_fsync)
		rc = spk_snap_fsync(fd, path);
	close(fd);
	return rc;
}

int spk_snap_fsync(int fd, const char *path)
{
	char *copy;
	int dfd;

	if (fsync(fd) < 0)
		return spk_fail(errno, "snapshot: fsync %s: %s", path, strerror(errno));
	copy = strdup(path);
	if (!copy)
		return spk_fail(ENOMEM, "snapshot: out of memory");
	dfd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(copy);
	if (dfd >= 0) {
		/* the directory entry of a new file; some file systems refuse */
		(void)fsync(dfd);
		close(dfd);
	}
	return 0;
}

int spk_snap_writer_save(struct spk_snap_writer *w, const char *path, bool do_fsync)
{
	const void *buf = NULL;
	size_t len = 0;
	int rc = spk_snap_writer_finish(w, &buf, &len);

	return rc ? rc : spk_snap_write_file(path, buf, len, do_fsync);
}

/* ---- reader ---- */

struct sec {
	uint32_t type, crc, fields;
	uint64_t off, len; /* header offset; payload length */
	char kind[SPK_SNAP_NAME_MAX], name[SPK_SNAP_NAME_MAX];
};

struct spk_snap_file {
	uint8_t *buf;
	size_t len;
	uint32_t version;
	struct sec *secs;
	size_t n;
	struct spk_snap_header hdr;
};

/* One decoded field. */
struct field {
	char name[SPK_SNAP_NAME_MAX];
	uint8_t type;
	uint64_t value;      /* u8..u64 */
	const uint8_t *data; /* bytes, str */
	uint32_t dlen;
};

/*
 * Decode the field at *pos of payload p (len bytes). 0 and *pos past it,
 * or -1 with why filled (the field's name in it when it was readable).
 */
static int field_next(const uint8_t *p, size_t len, size_t *pos, struct field *f, char *why,
                      size_t whylen)
{
	size_t at = *pos, nl;
	static const unsigned widths[] = {0, 1, 2, 4, 8};

	memset(f, 0, sizeof(*f));
	if (at >= len) {
		snprintf(why, whylen, "no field at payload byte %zu: the section ends", at);
		return -1;
	}
	nl = p[at++];
	if (nl == 0 || nl > NAME_MAX_ || nl > len - at) {
		snprintf(why, whylen, "field at payload byte %zu: name length %zu %s", *pos, nl,
		         nl > len - at ? "runs past the section" : "is not 1-63");
		return -1;
	}
	memcpy(f->name, p + at, nl);
	f->name[nl] = 0;
	at += nl;
	if (!spk_snap_name_ok(f->name)) {
		snprintf(why, whylen, "field at payload byte %zu: the name is not a-z 0-9 _ .",
		         *pos);
		return -1;
	}
	if (at >= len) {
		snprintf(why, whylen, "field '%s': no type byte: the section ends", f->name);
		return -1;
	}
	f->type = p[at++];
	if (f->type >= SPK_SNAP_U8 && f->type <= SPK_SNAP_U64) {
		unsigned n = widths[f->type];

		if (n > len - at) {
			snprintf(why, whylen, "field '%s': its %s runs past the section", f->name,
			         spk_snap_ftype_name(f->type));
			return -1;
		}
		f->value = spk_get_le(p + at, n);
		at += n;
	} else if (f->type == SPK_SNAP_BYTES || f->type == SPK_SNAP_STR) {
		if (4 > len - at) {
			snprintf(why, whylen, "field '%s': its length runs past the section",
			         f->name);
			return -1;
		}
		f->dlen = (uint32_t)spk_get_le(p + at, 4);
		at += 4;
		if (f->dlen > len - at) {
			snprintf(why, whylen,
			         "field '%s': length %" PRIu32
			         " runs past the section (%zu bytes left)",
			         f->name, f->dlen, len - at);
			return -1;
		}
		f->data = p + at;
		at += f->dlen;
		if (f->type == SPK_SNAP_STR && !str_ok(f->data, f->dlen)) {
			snprintf(why, whylen,
			         "field '%s': not a string of printable ASCII under %d bytes",
			         f->name, SPK_SNAP_STR_MAX);
			return -1;
		}
	} else {
		snprintf(why, whylen, "field '%s': unknown field type %u", f->name, f->type);
		return -1;
	}
	*pos = at;
	return 0;
}

static const uint8_t *payload(const struct spk_snap_file *f, size_t i)
{
	return f->buf + f->secs[i].off + SEC_HDR;
}

static void sec_where(const struct spk_snap_file *f, size_t i, char *buf, size_t len)
{
	const struct sec *s = &f->secs[i];

	if (s->type == SPK_SNAP_SEC_DEVICE && s->name[0])
		snprintf(buf, len, "section %zu (device '%s', %s)", i, s->name, s->kind);
	else
		snprintf(buf, len, "section %zu (%s at offset %" PRIu64 ")", i,
		         spk_snap_type_name(s->type), s->off);
}

/* Find field name in section i (anywhere); 1 found, 0 not, -1 bad (cannot happen after open). */
static int find_field(const struct spk_snap_file *f, size_t i, const char *name, struct field *out)
{
	size_t pos = 0;
	char why[160];

	while (pos < f->secs[i].len) {
		if (field_next(payload(f, i), f->secs[i].len, &pos, out, why, sizeof(why)) < 0)
			return -1;
		if (strcmp(out->name, name) == 0)
			return 1;
	}
	return 0;
}

__attribute__((format(printf, 3, 4))) static int sec_fail(const struct spk_snap_file *f, size_t i,
                                                          const char *fmt, ...)
{
	char where[160], msg[256];
	va_list ap;

	sec_where(f, i, where, sizeof(where));
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return spk_fail(EINVAL, "snapshot: %s: %s", where, msg);
}

static int hdr_str(const struct spk_snap_file *f, size_t i, const char *name, char *buf, size_t max,
                   bool required)
{
	struct field fl;
	int found = find_field(f, i, name, &fl);

	if (found <= 0)
		return required ? sec_fail(f, i, "field '%s' is missing", name) : 0;
	if (fl.type != SPK_SNAP_STR)
		return sec_fail(f, i, "field '%s': a %s, not a str", name,
		                spk_snap_ftype_name(fl.type));
	if (fl.dlen >= max)
		return sec_fail(f, i, "field '%s': %" PRIu32 " bytes, at most %zu", name, fl.dlen,
		                max - 1);
	memcpy(buf, fl.data, fl.dlen);
	buf[fl.dlen] = 0;
	return 0;
}

static int hdr_num(const struct spk_snap_file *f, size_t i, const char *name, uint8_t type,
                   uint64_t *v, bool required)
{
	struct field fl;
	int found = find_field(f, i, name, &fl);

	if (found <= 0)
		return required ? sec_fail(f, i, "field '%s' is missing", name) : 0;
	if (fl.type != type)
		return sec_fail(f, i, "field '%s': a %s, not a %s", name,
		                spk_snap_ftype_name(fl.type), spk_snap_ftype_name(type));
	*v = fl.value;
	return 0;
}

static int hdr_blob(const struct spk_snap_file *f, size_t i, const char *name, unsigned entry,
                    unsigned max, struct field *fl, uint32_t *n)
{
	int found = find_field(f, i, name, fl);

	*n = 0;
	if (found <= 0)
		return 0;
	if (fl->type != SPK_SNAP_BYTES)
		return sec_fail(f, i, "field '%s': a %s, not bytes", name,
		                spk_snap_ftype_name(fl->type));
	if (fl->dlen % entry || fl->dlen / entry > max)
		return sec_fail(f, i, "field '%s': %" PRIu32 " bytes, not up to %u entries of %u",
		                name, fl->dlen, max, entry);
	*n = fl->dlen / entry;
	return 0;
}

/* The HEADER section's fields; unknown ones are a later version's and skipped. */
static int parse_header(struct spk_snap_file *f)
{
	struct spk_snap_header *h = &f->hdr;
	struct field fl;
	uint64_t v = 0;
	int rc;

	h->format_version = f->version;
	if ((rc = hdr_str(f, 0, "sparkler_version", h->sparkler_version,
	                  sizeof(h->sparkler_version), true)) ||
	    (rc = hdr_str(f, 0, "cpu_vendor", h->cpu_vendor, sizeof(h->cpu_vendor), true)) ||
	    (rc = hdr_str(f, 0, "host_kernel", h->host_kernel, sizeof(h->host_kernel), false)))
		return rc;
	if ((rc = hdr_num(f, 0, "cpu_family", SPK_SNAP_U32, &v, true)))
		return rc;
	h->cpu_family = (uint32_t)v;
	if ((rc = hdr_num(f, 0, "cpu_model", SPK_SNAP_U32, &v, true)))
		return rc;
	h->cpu_model = (uint32_t)v;
	v = 0;
	if ((rc = hdr_num(f, 0, "cpu_stepping", SPK_SNAP_U32, &v, false)))
		return rc;
	h->cpu_stepping = (uint32_t)v;
	v = 0;
	if ((rc = hdr_num(f, 0, "created", SPK_SNAP_U64, &h->created, false)))
		return rc;
	if ((rc = hdr_blob(f, 0, "cpuid", 24, SPK_SNAP_MAX_CPUID, &fl, &h->n_cpuid)))
		return rc;
	for (uint32_t k = 0; k < h->n_cpuid; k++) {
		const uint8_t *e = fl.data + k * 24;

		h->cpuid[k] = (struct spk_snap_cpuid){
		    (uint32_t)spk_get_le(e, 4),      (uint32_t)spk_get_le(e + 4, 4),
		    (uint32_t)spk_get_le(e + 8, 4),  (uint32_t)spk_get_le(e + 12, 4),
		    (uint32_t)spk_get_le(e + 16, 4), (uint32_t)spk_get_le(e + 20, 4)};
	}
	if ((rc = hdr_blob(f, 0, "kvm_caps", 8, SPK_SNAP_MAX_CAPS, &fl, &h->n_caps)))
		return rc;
	for (uint32_t k = 0; k < h->n_caps; k++)
		h->caps[k] = (struct spk_snap_cap){(uint32_t)spk_get_le(fl.data + k * 8, 4),
		                                   (uint32_t)spk_get_le(fl.data + k * 8 + 4, 4)};
	return 0;
}

/* A DEVICE section starts with kind, name, version. */
static int parse_device(struct spk_snap_file *f, size_t i)
{
	struct sec *s = &f->secs[i];
	static const char *const want[] = {"kind", "name", "version"};
	static const uint8_t types[] = {SPK_SNAP_STR, SPK_SNAP_STR, SPK_SNAP_U32};
	size_t pos = 0;
	char why[160];

	for (int k = 0; k < 3; k++) {
		struct field fl;

		if (field_next(payload(f, i), s->len, &pos, &fl, why, sizeof(why)) < 0)
			return sec_fail(f, i, "%s", why);
		if (strcmp(fl.name, want[k]) != 0 || fl.type != types[k])
			return sec_fail(f, i, "field %d is '%s' (%s), not '%s' (%s)", k, fl.name,
			                spk_snap_ftype_name(fl.type), want[k],
			                spk_snap_ftype_name(types[k]));
		if (k < 2) {
			char *dst = k == 0 ? s->kind : s->name;

			memcpy(dst, fl.data, fl.dlen < NAME_MAX_ ? fl.dlen : NAME_MAX_);
			if (fl.dlen > NAME_MAX_ || !spk_snap_name_ok(dst))
				return sec_fail(
				    f, i, "field '%s': '%.*s' is not a name (1-63 of a-z 0-9 _ .)",
				    want[k], (int)(fl.dlen > 64 ? 64 : fl.dlen),
				    (const char *)fl.data);
		}
	}
	for (size_t j = 0; j < i; j++)
		if (f->secs[j].type == SPK_SNAP_SEC_DEVICE && strcmp(f->secs[j].name, s->name) == 0)
			return sec_fail(f, i, "field 'name': device '%s' is also section %zu",
			                s->name, j);
	return 0;
}

static int check_section(struct spk_snap_file *f, size_t i)
{
	struct sec *s = &f->secs[i];
	const uint8_t *h = f->buf + s->off;
	uint32_t crc;
	size_t pos = 0;
	char why[160];

	if (spk_get_le(h + 4, 4) != 0)
		return sec_fail(f, i, "field 'flags': %" PRIu64 ", must be 0",
		                (uint64_t)spk_get_le(h + 4, 4));
	if (spk_get_le(h + 20, 4) != 0)
		return sec_fail(f, i, "field 'reserved': must be 0");
	crc = spk_snap_crc32(spk_snap_crc32(0, h, 16), h + SEC_HDR, s->len);
	if (crc != s->crc)
		return sec_fail(
		    f, i, "field 'crc': 0x%08" PRIx32 " in the file, 0x%08" PRIx32 " computed",
		    s->crc, crc);
	if (!type_known(s->type))
		return sec_fail(f, i,
		                "field 'type': %" PRIu32 " is unknown (a newer sparkler's file?)",
		                s->type);
	if (i == 0 && s->type != SPK_SNAP_SEC_HEADER)
		return sec_fail(f, i, "field 'type': the first section must be the header");
	if (i > 0) {
		uint32_t prev = f->secs[i - 1].type;

		if (s->type < prev || (s->type == prev && !type_repeats(s->type)))
			return sec_fail(f, i, "field 'type': %s after %s is out of order",
			                spk_snap_type_name(s->type), spk_snap_type_name(prev));
	}
	/* a device's name first, so that later messages can name it */
	if (s->type == SPK_SNAP_SEC_DEVICE) {
		int rc = parse_device(f, i);

		if (rc)
			return rc;
	}
	while (pos < s->len) {
		struct field fl;

		if (field_next(payload(f, i), s->len, &pos, &fl, why, sizeof(why)) < 0)
			return sec_fail(f, i, "%s", why);
		s->fields++;
	}
	return 0;
}

static int parse(struct spk_snap_file *f)
{
	size_t at = PREAMBLE, cap = 0;
	bool ended = false;
	int rc;

	if (f->len < PREAMBLE || memcmp(f->buf, SPK_SNAP_MAGIC, 8) != 0)
		return spk_fail(EINVAL, "snapshot: not a sparkler snapshot (field 'magic')");
	f->version = (uint32_t)spk_get_le(f->buf + 8, 4);
	if (f->version == 0 || f->version > SPK_SNAP_FORMAT_VERSION)
		return spk_fail(EINVAL,
		                "snapshot: field 'format_version': %" PRIu32
		                ", this sparkler reads 1 to %d (a newer sparkler's file?)",
		                f->version, SPK_SNAP_FORMAT_VERSION);
	if (spk_get_le(f->buf + 12, 4) != 0)
		return spk_fail(EINVAL, "snapshot: field 'reserved' of the file header must be 0");
	while (at < f->len) {
		struct sec *s;

		if (ended)
			return spk_fail(EINVAL,
			                "snapshot: %zu bytes after the end section at offset %zu",
			                f->len - at, at);
		if (f->n >= SPK_SNAP_MAX_SECTIONS)
			return spk_fail(EINVAL, "snapshot: more than %d sections",
			                SPK_SNAP_MAX_SECTIONS);
		if (f->n == cap) {
			size_t nc = cap ? cap * 2 : 16;
			struct sec *ns = realloc(f->secs, nc * sizeof(*ns));

			if (!ns)
				return spk_fail(ENOMEM, "snapshot: out of memory");
			f->secs = ns;
			cap = nc;
		}
		s = &f->secs[f->n];
		memset(s, 0, sizeof(*s));
		s->off = at;
		if (f->len - at < SEC_HDR)
			return spk_fail(
			    EINVAL,
			    "snapshot: section %zu at offset %zu: the file ends inside its "
			    "header (truncated)",
			    f->n, at);
		s->type = (uint32_t)spk_get_le(f->buf + at, 4);
		s->len = spk_get_le(f->buf + at + 8, 8);
		s->crc = (uint32_t)spk_get_le(f->buf + at + 16, 4);
		if (s->len > f->len - at - SEC_HDR)
			return spk_fail(
			    EINVAL,
			    "snapshot: section %zu (%s at offset %zu): field 'length': %" PRIu64
			    " bytes, %zu left in the file (truncated?)",
			    f->n, spk_snap_type_name(s->type), at, s->len, f->len - at - SEC_HDR);
		f->n++;
		if ((rc = check_section(f, f->n - 1)))
			return rc;
		if (s->type == SPK_SNAP_SEC_END) {
			struct field fl;

			if (find_field(f, f->n - 1, "sections", &fl) != 1 ||
			    fl.type != SPK_SNAP_U32 || fl.value != f->n - 1)
				return sec_fail(f, f->n - 1,
				                "field 'sections': does not count the %zu sections "
				                "before it",
				                f->n - 1);
			ended = true;
		}
		at += SEC_HDR + s->len;
	}
	if (f->n == 0)
		return spk_fail(EINVAL, "snapshot: no sections (truncated)");
	if (!ended)
		return spk_fail(EINVAL, "snapshot: no end section after section %zu (truncated)",
		                f->n - 1);
	return parse_header(f);
}

int spk_snap_open_buf(const void *buf, size_t len, struct spk_snap_file **out)
{
	struct spk_snap_file *f;
	int rc;

	if (!out || (!buf && len))
		return spk_fail(EINVAL, "snapshot: no buffer or out pointer");
	*out = NULL;
	if (len > SPK_SNAP_MAX_FILE)
		return spk_fail(EFBIG,
		                "snapshot: %zu bytes, more than the %u a state file may have", len,
		                SPK_SNAP_MAX_FILE);
	f = calloc(1, sizeof(*f));
	if (!f || !(f->buf = malloc(len ? len : 1))) {
		free(f);
		return spk_fail(ENOMEM, "snapshot: out of memory");
	}
	if (len)
		memcpy(f->buf, buf, len);
	f->len = len;
	if ((rc = parse(f)) < 0) {
		spk_snap_close(f);
		return rc;
	}
	*out = f;
	return 0;
}

int spk_snap_open(const char *path, struct spk_snap_file **out)
{
	struct stat st;
	uint8_t *buf = NULL;
	size_t got = 0;
	int fd, rc;

	if (!path || !out)
		return spk_fail(EINVAL, "snapshot: no file name or out pointer");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return spk_fail(errno, "snapshot: %s: %s", path, strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		rc = spk_fail(EINVAL, "snapshot: %s: not a regular file", path);
		goto out;
	}
	if ((uint64_t)st.st_size > SPK_SNAP_MAX_FILE) {
		rc = spk_fail(EFBIG,
		              "snapshot: %s: %lld bytes, more than the %u a state file may have",
		              path, (long long)st.st_size, SPK_SNAP_MAX_FILE);
		goto out;
	}
	buf = malloc(st.st_size ? (size_t)st.st_size : 1);
	if (!buf) {
		rc = spk_fail(ENOMEM, "snapshot: out of memory");
		goto out;
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	rc = spk_snap_open_buf(buf, got, out);
out:
	free(buf);
	close(fd);
	return rc;
}

void spk_snap_close(struct spk_snap_file *f)
{
	if (!f)
		return;
	free(f->secs);
	free(f->buf);
	free(f);
}

const struct spk_snap_header *spk_snap_file_header(const struct spk_snap_file *f)
{
	if (!f) {
		spk_fail(EINVAL, "snapshot: file_header needs a file");
		return NULL;
	}
	return &f->hdr;
}

size_t spk_snap_file_sections(const struct spk_snap_file *f)
{
	if (!f) {
		spk_fail(EINVAL, "snapshot: file_sections needs a file");
		return 0;
	}
	return f->n;
}

int spk_snap_file_section(const struct spk_snap_file *f, size_t i,
                          struct spk_snap_section_info *out)
{
	if (!f || !out || i >= f->n)
		return spk_fail(EINVAL, "snapshot: no section %zu", i);
	memset(out, 0, sizeof(*out));
	out->type = f->secs[i].type;
	out->offset = f->secs[i].off;
	out->length = f->secs[i].len;
	out->crc = f->secs[i].crc;
	out->fields = f->secs[i].fields;
	memcpy(out->kind, f->secs[i].kind, sizeof(out->kind));
	memcpy(out->name, f->secs[i].name, sizeof(out->name));
	return 0;
}

static void dump_field(FILE *out, const struct field *fl)
{
	fprintf(out, "    %-24s %-5s ", fl->name, spk_snap_ftype_name(fl->type));
	if (fl->type == SPK_SNAP_STR) {
		fprintf(out, "\"%.*s\"\n", (int)fl->dlen, (const char *)fl->data);
	} else if (fl->type == SPK_SNAP_BYTES) {
		fprintf(out, "%" PRIu32 " bytes:", fl->dlen);
		for (uint32_t k = 0; k < fl->dlen && k < 16; k++)
			fprintf(out, " %02x", fl->data[k]);
		fprintf(out, "%s\n", fl->dlen > 16 ? " ..." : "");
	} else {
		fprintf(out, "%" PRIu64 " (0x%" PRIx64 ")\n", fl->value, fl->value);
	}
}

void spk_snap_file_dump(const struct spk_snap_file *f, FILE *out, bool fields)
{
	const struct spk_snap_header *h;
	char why[160];

	if (!f || !out) {
		spk_fail(EINVAL, "snapshot: file_dump needs a file and a stream");
		return;
	}
	h = &f->hdr;
	fprintf(out, "format version:   %" PRIu32 "\n", h->format_version);
	fprintf(out, "sparkler version: %s\n", h->sparkler_version);
	fprintf(out,
	        "cpu:              %s family %" PRIu32 " model %" PRIu32 " stepping %" PRIu32 "\n",
	        h->cpu_vendor, h->cpu_family, h->cpu_model, h->cpu_stepping);
	fprintf(out, "host kernel:      %s\n", h->host_kernel[0] ? h->host_kernel : "(not given)");
	fprintf(out, "created:          %" PRIu64 " (Unix time)\n", h->created);
	fprintf(out, "guest cpuid:      %" PRIu32 " leaves\n", h->n_cpuid);
	fprintf(out, "kvm capabilities: %" PRIu32 "\n", h->n_caps);
	fprintf(out, "sections:         %zu\n", f->n);
	for (size_t i = 0; i < f->n; i++) {
		const struct sec *s = &f->secs[i];
		size_t pos = 0;

		fprintf(out,
		        "  %3zu %-7s offset %-8" PRIu64 " length %-8" PRIu64 " crc %08" PRIx32
		        " fields %" PRIu32,
		        i, spk_snap_type_name(s->type), s->off, s->len, s->crc, s->fields);
		if (s->type == SPK_SNAP_SEC_DEVICE)
			fprintf(out, " %s (%s)", s->name, s->kind);
		fputc('\n', out);
		while (fields && pos < s->len) {
			struct field fl;

			if (field_next(payload(f, i), s->len, &pos, &fl, why, sizeof(why)) < 0)
				break;
			dump_field(out, &fl);
		}
	}
}

/* ---- section cursors ---- */

struct spk_snap_reader {
	const struct spk_snap_file *f;
	size_t sec;
	size_t pos;
};

int spk_snap_reader_new(const struct spk_snap_file *f, size_t section, struct spk_snap_reader **out)
{
	struct spk_snap_reader *r;

	if (!f || !out || section >= f->n)
		return spk_fail(EINVAL, "snapshot: no section %zu to read", section);
	r = calloc(1, sizeof(*r));
	if (!r)
		return spk_fail(ENOMEM, "snapshot: out of memory");
	r->f = f;
	r->sec = section;
	*out = r;
	return 0;
}

void spk_snap_reader_free(struct spk_snap_reader *r)
{
	free(r);
}

int spk_snap_bad(struct spk_snap_reader *r, const char *field, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (!r)
		return spk_fail(EINVAL, "snapshot: field '%s': %s", field ? field : "?", msg);
	return sec_fail(r->f, r->sec, "field '%s': %s", field ? field : "?", msg);
}

/* The next field, if it has this name and type. The cursor moves only
 * when the caller takes it (r->pos = *next), so a refused read leaves it. */
static int get(struct spk_snap_reader *r, const char *name, uint8_t type, struct field *fl,
               size_t *next)
{
	char why[160];

	if (!r || !name)
		return spk_fail(EINVAL, "snapshot: no reader or field name");
	*next = r->pos;
	if (field_next(payload(r->f, r->sec), r->f->secs[r->sec].len, next, fl, why, sizeof(why)) <
	    0)
		return spk_snap_bad(r, name, "missing (%s)", why);
	if (strcmp(fl->name, name) != 0)
		return spk_snap_bad(r, name, "missing: found '%s' in its place", fl->name);
	if (fl->type != type)
		return spk_snap_bad(r, name, "a %s, not a %s", spk_snap_ftype_name(fl->type),
		                    spk_snap_ftype_name(type));
	return 0;
}

static int get_uint(struct spk_snap_reader *r, const char *name, uint8_t type, uint64_t *v)
{
	struct field fl;
	size_t next = 0;
	int rc = get(r, name, type, &fl, &next);

	if (rc)
		return rc;
	r->pos = next;
	*v = fl.value;
	return 0;
}

int spk_snap_get_u8(struct spk_snap_reader *r, const char *name, uint8_t *v)
{
	uint64_t x = 0;
	int rc = get_uint(r, name, SPK_SNAP_U8, &x);

	if (!rc)
		*v = (uint8_t)x;
	return rc;
}

int spk_snap_get_u16(struct spk_snap_reader *r, const char *name, uint16_t *v)
{
	uint64_t x = 0;
	int rc = get_uint(r, name, SPK_SNAP_U16, &x);

	if (!rc)
		*v = (uint16_t)x;
	return rc;
}

int spk_snap_get_u32(struct spk_snap_reader *r, const char *name, uint32_t *v)
{
	uint64_t x = 0;
	int rc = get_uint(r, name, SPK_SNAP_U32, &x);

	if (!rc)
		*v = (uint32_t)x;
	return rc;
}

int spk_snap_get_u64(struct spk_snap_reader *r, const char *name, uint64_t *v)
{
	return get_uint(r, name, SPK_SNAP_U64, v);
}

int spk_snap_get_max(struct spk_snap_reader *r, const char *name, uint64_t max, uint64_t *v)
{
	struct field fl;
	char why[160];
	size_t pos;

	if (!r || !name)
		return spk_fail(EINVAL, "snapshot: no reader or field name");
	/* any unsigned width: peek at the type */
	pos = r->pos;
	if (field_next(payload(r->f, r->sec), r->f->secs[r->sec].len, &pos, &fl, why, sizeof(why)) <
	    0)
		return spk_snap_bad(r, name, "missing (%s)", why);
	if (strcmp(fl.name, name) != 0)
		return spk_snap_bad(r, name, "missing: found '%s' in its place", fl.name);
	if (fl.type < SPK_SNAP_U8 || fl.type > SPK_SNAP_U64)
		return spk_snap_bad(r, name, "a %s, not a number", spk_snap_ftype_name(fl.type));
	if (fl.value > max)
		return spk_snap_bad(r, name, "%" PRIu64 " is more than %" PRIu64, fl.value, max);
	r->pos = pos;
	*v = fl.value;
	return 0;
}

int spk_snap_get_bytes(struct spk_snap_reader *r, const char *name, void *buf, size_t len)
{
	struct field fl;
	size_t next = 0;
	int rc = get(r, name, SPK_SNAP_BYTES, &fl, &next);

	if (rc)
		return rc;
	if (fl.dlen != len)
		return spk_snap_bad(r, name, "%" PRIu32 " bytes, not %zu", fl.dlen, len);
	if (len)
		memcpy(buf, fl.data, len);
	r->pos = next;
	return 0;
}

int spk_snap_get_blob(struct spk_snap_reader *r, const char *name, const void **p, size_t *len)
{
	struct field fl;
	size_t next = 0;
	int rc = get(r, name, SPK_SNAP_BYTES, &fl, &next);

	if (rc)
		return rc;
	*p = fl.data;
	*len = fl.dlen;
	r->pos = next;
	return 0;
}

int spk_snap_get_str(struct spk_snap_reader *r, const char *name, char *buf, size_t max)
{
	struct field fl;
	size_t next = 0;
	int rc = get(r, name, SPK_SNAP_STR, &fl, &next);

	if (rc)
		return rc;
	if (fl.dlen >= max)
		return spk_snap_bad(r, name, "%" PRIu32 " bytes, at most %zu", fl.dlen,
		                    max ? max - 1 : 0);
	if (fl.dlen)
		memcpy(buf, fl.data, fl.dlen);
	buf[fl.dlen] = 0;
	r->pos = next;
	return 0;
}

int spk_snap_reader_done(struct spk_snap_reader *r)
{
	struct field fl;
	char why[160];
	size_t pos;

	if (!r)
		return spk_fail(EINVAL, "snapshot: no reader");
	pos = r->pos;
	if (pos >= r->f->secs[r->sec].len)
		return 0;
	if (field_next(payload(r->f, r->sec), r->f->secs[r->sec].len, &pos, &fl, why, sizeof(why)) <
	    0)
		return sec_fail(r->f, r->sec, "%s", why);
	return spk_snap_bad(r, fl.name, "not a field this device version has");
}

/* ---- devices ---- */

int spk_snap_save_device(struct spk_snap_writer *w, const char *name,
                         const struct spk_dev_state_ops *ops, void *opaque)
{
	int rc;

	if (!w || !ops || !ops->save || !ops->load || !ops->kind)
		return spk_fail(EINVAL, "snapshot: device '%s': no state ops",
		                name ? name : "(null)");
	if (w->err)
		return w->err;
	if (!spk_snap_name_ok(name) || !spk_snap_name_ok(ops->kind))
		return wfail(w, EINVAL, "device '%s' (%s): not a name (1-63 of a-z 0-9 _ .)",
		             name ? name : "(null)", ops->kind);
	spk_snap_section_begin(w, SPK_SNAP_SEC_DEVICE);
	spk_snap_put_str(w, "kind", ops->kind);
	spk_snap_put_str(w, "name", name);
	if (spk_snap_put_u32(w, "version", ops->version))
		return w->err;
	rc = ops->save(opaque, w);
	if (rc < 0 && !w->err)
		w->err = rc; /* the device's own refusal (-EBUSY): sticky too */
	if (w->err)
		return w->err;
	return spk_snap_section_end(w);
}

int spk_snap_load_device(const struct spk_snap_file *f, const char *name,
                         const struct spk_dev_state_ops *ops, void *opaque)
{
	struct spk_snap_reader *r = NULL;
	uint32_t version;
	char s[SPK_SNAP_NAME_MAX];
	int rc;

	if (!f || !name || !ops || !ops->load || !ops->kind)
		return spk_fail(EINVAL, "snapshot: device '%s': no state ops",
		                name ? name : "(null)");
	for (size_t i = 0; i < f->n; i++) {
		if (f->secs[i].type != SPK_SNAP_SEC_DEVICE || strcmp(f->secs[i].name, name) != 0)
			continue;
		if ((rc = spk_snap_reader_new(f, i, &r)))
			return rc;
		if ((rc = spk_snap_get_str(r, "kind", s, sizeof(s))) ||
		    (rc = spk_snap_get_str(r, "name", s, sizeof(s))) ||
		    (rc = spk_snap_get_u32(r, "version", &version)))
			goto out;
		if (strcmp(f->secs[i].kind, ops->kind) != 0) {
			rc = spk_snap_bad(r, "kind", "a %s, this device is a %s", f->secs[i].kind,
			                  ops->kind);
			goto out;
		}
		if (version != ops->version) {
			rc = spk_snap_bad(r, "version",
			                  "%" PRIu32 ", this %s reads version %" PRIu32, version,
			                  ops->kind, ops->version);
			goto out;
		}
		rc = ops->load(opaque, r);
		goto out;
	}
	return spk_fail(ENOENT, "snapshot: no device '%s' (%s) in the file", name, ops->kind);
out:
	spk_snap_reader_free(r);
	return rc;
}

int spk_snap_peek(struct spk_snap_reader *r, char name[SPK_SNAP_NAME_MAX], uint8_t *type)
{
	struct field fl;
	char why[160];
	size_t pos;

	if (!r || r->pos >= r->f->secs[r->sec].len)
		return -ENOENT;
	pos = r->pos;
	if (field_next(payload(r->f, r->sec), r->f->secs[r->sec].len, &pos, &fl, why, sizeof(why)) <
	    0)
		return sec_fail(r->f, r->sec, "%s", why);
	memcpy(name, fl.name, SPK_SNAP_NAME_MAX);
	*type = fl.type;
	return 0;
}

int spk_snap_get_u8_max(struct spk_snap_reader *r, const char *name, uint8_t max, uint8_t *v)
{
	uint64_t x = 0;
	int rc = spk_snap_get_max(r, name, max, &x);

	if (!rc)
		*v = (uint8_t)x;
	return rc;
}

int spk_snap_get_u16_max(struct spk_snap_reader *r, const char *name, uint16_t max, uint16_t *v)
{
	uint64_t x = 0;
	int rc = spk_snap_get_max(r, name, max, &x);

	if (!rc)
		*v = (uint16_t)x;
	return rc;
}

int spk_snap_get_u32_max(struct spk_snap_reader *r, const char *name, uint32_t max, uint32_t *v)
{
	uint64_t x = 0;
	int rc = spk_snap_get_max(r, name, max, &x);

	if (!rc)
		*v = (uint32_t)x;
	return rc;
}

int spk_snap_get_bool(struct spk_snap_reader *r, const char *name, bool *v)
{
	uint64_t x = 0;
	int rc = spk_snap_get_max(r, name, 1, &x);

	if (rc)
		return rc;
	*v = x;
	return 0;
}

int spk_snap_get_mask(struct spk_snap_reader *r, const char *name, uint64_t mask, uint64_t *v)
{
	uint64_t x = 0;
	int rc = spk_snap_get_max(r, name, UINT64_MAX, &x);

	if (rc)
		return rc;
	if (x & ~mask)
		return spk_snap_bad(r, name, "0x%" PRIx64 " has bits outside 0x%" PRIx64, x, mask);
	*v = x;
	return 0;
}
