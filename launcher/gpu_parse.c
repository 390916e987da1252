/* Parsers for the GPU module: driver files and the NVIDIA_* variables. */
#include "config.h"
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "common/error.h"
#include "common/util.h"
#include "launcher/gpu_int.h"

static bool is_version(const char *s, size_t len)
{
	bool dot = false;

	if (len == 0 || !isdigit((unsigned char)s[0]) || !isdigit((unsigned char)s[len - 1]))
		return false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '.')
			dot = true;
		else if (!isdigit((unsigned char)s[i]))
			return false;
	}
	return dot;
}

int gpu_parse_version(const char *text, char **version)
{
	const char *line = strstr(text, "NVRM version:"), *p;

	if (!line || !(p = strstr(line, "Kernel Module")))
		return berth_failx(BERTH_EFORMAT, "NVIDIA driver version file: no 'NVRM version: "
						  "... Kernel Module' line");
	/* "Kernel Module  550.54.15  Tue ..." and, for the open module,
	 * "Kernel Module for x86_64  550.54.15  Release Build ...": the
	 * version is the first dotted number on the line. */
	p += strlen("Kernel Module");
	while (*p && *p != '\n') {
		size_t len;

		p += strspn(p, " \t");
		len = strcspn(p, " \t\n");
		if (is_version(p, len)) {
			*version = strndup(p, len);
			return *version ? 0 : -ENOMEM;
		}
		p += len;
	}
	return berth_failx(BERTH_EFORMAT, "NVIDIA driver version file: no version number on "
					  "the 'NVRM version' line");
}

/* "Key:<spaces/tabs>value" of one information line, or NULL. */
static char *field(const char *text, const char *key)
{
	size_t klen = strlen(key);

	for (const char *l = text; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
		if (strncmp(l, key, klen) == 0 && l[klen] == ':') {
			const char *v = l + klen + 1;
			size_t len;

			v += strspn(v, " \t");
			len = strcspn(v, "\n");
			while (len > 0 && (v[len - 1] == ' ' || v[len - 1] == '\t'))
				len--;
			return strndup(v, len);
		}
	}
	return NULL;
}

int gpu_parse_information(const char *text, const char *what, struct gpu_dev *out)
{
	_cleanup_free_ char *minor = field(text, "Device Minor");
	uint64_t m;

	*out = (struct gpu_dev){0};
	if (!minor || parse_u64(minor, 255, &m) < 0)
		return berth_failx(BERTH_EFORMAT, "GPU information '%s': no valid 'Device Minor'",
				   what);
	out->minor = (unsigned)m;
	out->uuid = field(text, "GPU UUID");
	out->model = field(text, "Model");
	out->busid = field(text, "Bus Location");
	if (!out->uuid || !str_startswith(out->uuid, "GPU-")) {
		free(out->uuid);
		free(out->model);
		free(out->busid);
		*out = (struct gpu_dev){0};
		return berth_failx(BERTH_EFORMAT, "GPU information '%s': no valid 'GPU UUID'", what);
	}
	return 0;
}

static const struct {
	const char *name;
	unsigned cap;
} caps[] = {
	{"compute", GPU_CAP_COMPUTE}, {"utility", GPU_CAP_UTILITY},
	{"video", GPU_CAP_VIDEO},     {"graphics", GPU_CAP_GRAPHICS},
	{"display", GPU_CAP_DISPLAY}, {"compat32", GPU_CAP_COMPAT32},
	{"all", GPU_CAP_ALL_FLAGS},
};

int gpu_parse_caps(const char *text, const char *what, unsigned *out)
{
	_cleanup_strv_ char **v = NULL;

	*out = 0;
	if (!text || !*text) {
		*out = GPU_CAP_DEFAULT;
		return 0;
	}
	v = strv_split(text, ',');
	if (!v)
		return -ENOMEM;
	for (size_t i = 0; v[i]; i++) {
		size_t j;

		for (j = 0; j < ARRAY_SIZE(caps) && !streq(caps[j].name, v[i]); j++)
			;
		if (j == ARRAY_SIZE(caps))
			return berth_failx(BERTH_EINVAL_INPUT,
					   "%s '%s': unknown driver capability '%s' (known: compute, "
					   "utility, video, graphics, display, compat32, all)",
					   what, text, v[i]);
		*out |= caps[j].cap;
	}
	if (!*out)
		return berth_failx(BERTH_EINVAL_INPUT, "%s '%s': no capability", what, text);
	return 0;
}

void gpu_sel_clear(struct gpu_sel *s)
{
	strv_free(s->items);
	*s = (struct gpu_sel){0};
}

static bool valid_item(const char *s)
{
	if (!*s || strlen(s) > 96)
		return false;
	for (const char *c = s; *c; c++)
		if (!isalnum((unsigned char)*c) && *c != '-' && *c != ':' && *c != '/')
			return false;
	return true;
}

int gpu_parse_sel(const char *text, const char *what, struct gpu_sel *out)
{
	*out = (struct gpu_sel){0};
	if (!text || !*text || streq(text, "void"))
		return 0;
	if (streq(text, "none")) {
		out->kind = GPU_SEL_NONE;
		return 0;
	}
	if (streq(text, "all")) {
		out->kind = GPU_SEL_ALL;
		return 0;
	}
	out->items = strv_split(text, ',');
	if (!out->items)
		return -ENOMEM;
	for (size_t i = 0; out->items[i]; i++) {
		const char *it = out->items[i];

		if (!valid_item(it) || streq(it, "all") || streq(it, "none") || streq(it, "void")) {
			int r = berth_failx(BERTH_EINVAL_INPUT,
					    "%s '%s': '%s' is not a GPU index or UUID", what, text,
					    it);

			gpu_sel_clear(out);
			return r;
		}
	}
	if (!out->items[0]) {
		gpu_sel_clear(out);
		return berth_failx(BERTH_EINVAL_INPUT, "%s '%s': no GPU listed", what, text);
	}
	out->kind = GPU_SEL_LIST;
	return 0;
}

static int cmp_unsigned(const void *a, const void *b)
{
	unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;

	return x < y ? -1 : x > y;
}

int gpu_parse_ids(const char *text, const char *what, unsigned **ids, size_t *n)
{
	_cleanup_strv_ char **v = strv_split(text, ',');
	_cleanup_free_ unsigned *out = NULL;
	size_t len = 0;

	if (!v)
		return -ENOMEM;
	for (size_t i = 0; v[i]; i++) {
		char *dash = strchr(v[i], '-');
		uint64_t lo, hi;
		unsigned *grown;

		if (dash)
			*dash = '\0';
		if (parse_u64(v[i], 1023, &lo) < 0 || (dash && parse_u64(dash + 1, 1023, &hi) < 0) ||
		    (dash && hi < lo))
			return berth_failx(BERTH_EINVAL_INPUT, "%s '%s': not a list of GPU ids", what,
					   text);
		if (!dash)
			hi = lo;
		grown = realloc(out, (len + (hi - lo + 1)) * sizeof(*out));
		if (!grown)
			return -ENOMEM;
		out = grown;
		for (uint64_t x = lo; x <= hi; x++)
			out[len++] = (unsigned)x;
	}
	if (len == 0)
		return berth_failx(BERTH_EINVAL_INPUT, "%s '%s': no GPU id", what, text);
	qsort(out, len, sizeof(*out), cmp_unsigned);
	*n = 0;
	for (size_t i = 0; i < len; i++)
		if (*n == 0 || out[*n - 1] != out[i])
			out[(*n)++] = out[i];
	*ids = TAKE_PTR(out);
	return 0;
}

int gpu_vercmp(const char *a, const char *b)
{
	while (*a || *b) {
		unsigned long x = strtoul(a, (char **)&a, 10), y = strtoul(b, (char **)&b, 10);

		if (x != y)
			return x < y ? -1 : 1;
		if (*a == '.')
			a++;
		if (*b == '.')
			b++;
		if ((*a && !isdigit((unsigned char)*a)) || (*b && !isdigit((unsigned char)*b)))
			return strcmp(a, b);
	}
	return 0;
}

/* One "name OP value" constraint; returns 1 true, 0 false, <0 malformed. */
static int constraint(const char *c, const struct gpu_facts *f)
{
	static const char *const ops[] = {">=", "<=", "==", "!=", "=", ">", "<"};
	size_t nlen = strspn(c, "abcdefghijklmnopqrstuvwxyz"), i;
	const char *op = c + nlen, *val, *fact = NULL;
	int cmp;

	for (i = 0; i < ARRAY_SIZE(ops) && !str_startswith(op, ops[i]); i++)
		;
	if (nlen == 0 || i == ARRAY_SIZE(ops))
		return -1;
	val = op + strlen(ops[i]);
	if (!*val || strspn(val, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") !=
			     strlen(val))
		return -1;
	if (!strncmp(c, "cuda", nlen) && nlen == 4)
		fact = f->cuda;
	else if (!strncmp(c, "driver", nlen) && nlen == 6)
		fact = f->driver;
	else if (!strncmp(c, "arch", nlen) && nlen == 4)
		fact = f->arch;
	else if (!strncmp(c, "brand", nlen) && nlen == 5)
		fact = f->brand;
	else
		return -1;
	if (!fact)
		return 0; /* unknown here (arch, brand): the alternative fails */
	if (nlen == 5) {
		if (strcmp(ops[i], "=") && strcmp(ops[i], "==") && strcmp(ops[i], "!="))
			return -1;
		cmp = strcasecmp(fact, val);
	} else {
		if (!is_version(val, strlen(val)) && strspn(val, "0123456789") != strlen(val))
			return -1;
		cmp = gpu_vercmp(fact, val);
	}
	switch (i) {
	case 0: return cmp >= 0;
	case 1: return cmp <= 0;
	case 2: case 4: return cmp == 0;
	case 3: return cmp != 0;
	case 5: return cmp > 0;
	default: return cmp < 0;
	}
}

int gpu_require(const char *expr, const char *what, const struct gpu_facts *f, bool *ok)
{
	_cleanup_strv_ char **alts = strv_split(expr, ' ');
	bool any = false;

	*ok = false;
	if (!alts)
		return -ENOMEM;
	if (!alts[0]) {
		*ok = true; /* an empty requirement asks for nothing */
		return 0;
	}
	for (size_t a = 0; alts[a]; a++) {
		_cleanup_strv_ char **cons = strv_split(alts[a], ',');
		bool all = true;

		if (!cons)
			return -ENOMEM;
		for (size_t c = 0; cons[c]; c++) {
			int r = constraint(cons[c], f);

			if (r < 0)
				return berth_failx(BERTH_EINVAL_INPUT,
						   "%s '%s': malformed constraint '%s' (want e.g. "
						   "'cuda>=12.2' or 'driver>=535')",
						   what, expr, cons[c]);
			all = all && r;
		}
		any = any || all;
	}
	*ok = any;
	return 0;
}
