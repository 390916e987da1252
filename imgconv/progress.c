/* Progress of an import.  On a terminal (IMGCONV_PROGRESS): one status
 * line redrawn in place (layers done, bytes, rate, phase) with a permanent
 * line per finished layer.  Otherwise one log line per step, which is what
 * batch logs and Slurm's log want.  IMGCONV_QUIET: nothing. */
#include "config.h"
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "common/log.h"
#include "common/util.h"
#include "imgconv/fetch.h"

#define REDRAW_NS 100000000ull /* 10 redraws a second at most */

struct progress {
	unsigned flags;
	char *what;
	size_t n;
	uint64_t *sizes, *have;
	bool *done;
	char **names;
	uint64_t start, last_draw, cached_bytes;
	bool line_shown;
	/* The download thread reports bytes while the main thread converts. */
	pthread_mutex_t mu;
};

struct progress *progress_new(unsigned flags, const char *what)
{
	struct progress *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	pthread_mutex_init(&p->mu, NULL);
	p->flags = flags;
	p->what = strdup(what);
	p->start = now_ns();
	return p;
}

void progress_free(struct progress *p)
{
	if (!p)
		return;
	progress_end(p);
	free(p->what);
	free(p->sizes);
	free(p->have);
	free(p->done);
	strv_free(p->names);
	pthread_mutex_destroy(&p->mu);
	free(p);
}

static bool quiet(const struct progress *p)
{
	return !p || (p->flags & IMGCONV_QUIET);
}

static bool tty(const struct progress *p)
{
	return p->flags & IMGCONV_PROGRESS;
}

static void clear_line(struct progress *p)
{
	if (p->line_shown) {
		fputs("\r\033[K", stderr);
		p->line_shown = false;
	}
}

static void draw(struct progress *p, bool force)
{
	uint64_t now = now_ns(), total = 0, have = 0, secs;
	char a[16], b[16], c[16];
	size_t done = 0;

	if (!force && now - p->last_draw < REDRAW_NS)
		return;
	p->last_draw = now;
	for (size_t i = 0; i < p->n; i++) {
		total += p->sizes[i];
		have += p->have[i];
		done += p->done[i];
	}
	secs = (now - p->start) / 1000000000ull;
	format_bytes(have, a, sizeof(a));
	format_bytes(total, b, sizeof(b));
	format_bytes((have - (have < p->cached_bytes ? have : p->cached_bytes)) /
			     (secs ? secs : 1), c, sizeof(c));
	fprintf(stderr, "\r\033[K%s: layers %zu/%zu  %s / %s  %s/s", p->what, done, p->n, a, b, c);
	fflush(stderr);
	p->line_shown = true;
}

void progress_step(struct progress *p, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (quiet(p))
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&p->mu);
	if (tty(p)) {
		clear_line(p);
		fprintf(stderr, "\r\033[K%s: %s", p->what, msg);
		fflush(stderr);
		p->line_shown = true;
	} else {
		log_info("%s: %s", p->what, msg);
	}
	pthread_mutex_unlock(&p->mu);
}

static void layers_locked(struct progress *p, size_t n, const uint64_t *sizes,
			  const char *const *names)
{
	free(p->sizes), free(p->have), free(p->done);
	strv_free(p->names);
	p->names = NULL;
	for (size_t i = 0; i < n; i++)
		strv_push(&p->names, names[i]);
	p->sizes = calloc(n + 1, sizeof(*p->sizes));
	p->have = calloc(n + 1, sizeof(*p->have));
	p->done = calloc(n + 1, sizeof(*p->done));
	if (!p->sizes || !p->have || !p->done || strv_length(p->names) != n) {
		p->n = 0;
		return;
	}
	memcpy(p->sizes, sizes, n * sizeof(*sizes));
	p->n = n;
	p->start = now_ns();
	p->cached_bytes = 0;
}

void progress_layers(struct progress *p, size_t n, const uint64_t *sizes,
		     const char *const *names)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	layers_locked(p, n, sizes, names);
	pthread_mutex_unlock(&p->mu);
}

void progress_layer_bytes(struct progress *p, size_t i, uint64_t have)
{
	if (quiet(p))
		return;
	pthread_mutex_lock(&p->mu);
	if (i < p->n) {
		p->have[i] = have;
		if (tty(p))
			draw(p, false);
	}
	pthread_mutex_unlock(&p->mu);
}

static void done_locked(struct progress *p, size_t i, bool cached)
{
	char sz[16];

	if (i >= p->n)
		return;
	p->have[i] = p->sizes[i];
	p->done[i] = true;
	if (cached)
		p->cached_bytes += p->sizes[i];
	format_bytes(p->sizes[i], sz, sizeof(sz));
	if (tty(p)) {
		clear_line(p);
		fprintf(stderr, "  %s: %s%s\n", p->names[i], sz, cached ? " (cached)" : "");
		draw(p, true);
	} else {
		log_info("%s: %s: %s %s", p->what, p->names[i], sz,
			 cached ? "in the cache" : "downloaded");
	}
}

void progress_layer_done(struct progress *p, size_t i, bool cached)
{
	if (quiet(p))
		return;
	pthread_mutex_lock(&p->mu);
	done_locked(p, i, cached);
	pthread_mutex_unlock(&p->mu);
}

void progress_end(struct progress *p)
{
	if (quiet(p) || !tty(p))
		return;
	pthread_mutex_lock(&p->mu);
	if (p->line_shown) {
		fputc('\n', stderr);
		p->line_shown = false;
	}
	pthread_mutex_unlock(&p->mu);
}
