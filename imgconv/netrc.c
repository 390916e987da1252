/* Registry credentials from a netrc-format file (the format curl, git and
 * enroot read): "machine HOST login USER password SECRET", "default ...".
 * The file must not be readable by group or others, like ssh's keys: a
 * leaked registry password is worse than a refused import.  Secrets never
 * reach a message or a log line. */
#include "config.h"
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common/error.h"
#include "common/util.h"
#include "imgconv/fetch.h"

struct entry {
	char *machine; /* NULL for "default" */
	char *login;
	char *password;
};

static void wipe_free(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

/* Next token: whitespace-separated, or "double quoted" with \" escapes. */
static char *next_token(const char **pp)
{
	const char *p = *pp;
	char *out, *o;

	p += strspn(p, " \t\r\n");
	if (!*p) {
		*pp = p;
		return NULL;
	}
	out = o = malloc(strlen(p) + 1);
	if (!out)
		return NULL;
	if (*p == '"') {
		for (p++; *p && *p != '"'; p++) {
			if (*p == '\\' && p[1])
				p++;
			*o++ = *p;
		}
		if (*p == '"')
			p++;
	} else {
		while (*p && !strchr(" \t\r\n", *p))
			*o++ = *p++;
	}
	*o = '\0';
	*pp = p;
	return out;
}

/* Does entry e fit host (with or without its port) and user? */
static int score(const struct entry *e, const char *host, const char *user)
{
	const char *colon = strrchr(host, ':');
	int s;

	if (user && (!e->login || strcmp(e->login, user) != 0))
		return 0;
	if (!e->machine)
		s = 1;
	else if (streq(e->machine, host))
		s = 3;
	else if (colon && strlen(e->machine) == (size_t)(colon - host) &&
		 strncmp(e->machine, host, (size_t)(colon - host)) == 0)
		s = 2;
	else
		return 0;
	return e->password ? s : 0;
}

static int check_mode(const char *file, int fd)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return berth_fail(-errno, "credentials file '%s'", file);
	if (st.st_mode & 077)
		return berth_failx(BERTH_EAUTH,
				   "credentials file '%s' is accessible by other users (mode %04o); "
				   "refusing to use it: run 'chmod 600 %s'",
				   file, (unsigned)(st.st_mode & 07777), file);
	if (st.st_uid != getuid())
		return berth_failx(BERTH_EAUTH,
				   "credentials file '%s' is not owned by you; refusing to use it",
				   file);
	return 0;
}

static int read_secret_file(const char *file, char **text)
{
	int fd = open(file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	size_t len;
	int r;

	if (fd < 0)
		return errno == ENOENT ? -ENOENT : berth_fail(-errno, "credentials file '%s'", file);
	r = check_mode(file, fd);
	close(fd);
	if (r < 0)
		return r;
	r = read_file(file, 1 << 20, text, &len);
	return r < 0 ? berth_fail(r, "credentials file '%s'", file) : 0;
}

int creds_lookup(const char *file, const char *host, const char *user, char **login,
		 char **password)
{
	struct entry cur = {0}, best = {0};
	int best_score = 0, r, in_entry = 0;
	char *text = NULL, *tok;
	const char *p;

	*login = *password = NULL;
	if (!file || !*file)
		return -ENOENT;
	r = read_secret_file(file, &text);
	if (r < 0)
		return r;
	p = text;
	for (;;) {
		tok = next_token(&p);
		if (!tok || streq(tok, "machine") || streq(tok, "default")) {
			int s = in_entry ? score(&cur, host, user) : 0;

			if (s > best_score) {
				wipe_free(best.machine), wipe_free(best.login), wipe_free(best.password);
				best = cur;
				best_score = s;
			} else {
				wipe_free(cur.machine), wipe_free(cur.login), wipe_free(cur.password);
			}
			memset(&cur, 0, sizeof(cur));
			in_entry = tok != NULL;
			if (tok && streq(tok, "machine"))
				cur.machine = next_token(&p);
			if (!tok)
				break;
		} else if (in_entry && (streq(tok, "login") || streq(tok, "password") ||
					streq(tok, "account"))) {
			char **field = streq(tok, "login") ? &cur.login
				       : streq(tok, "password") ? &cur.password : NULL;
			char *v = next_token(&p);

			if (field) {
				wipe_free(*field);
				*field = v;
			} else {
				wipe_free(v);
			}
		} else if (streq(tok, "macdef")) {
			/* A macro runs to the next empty line. */
			const char *end = strstr(p, "\n\n");

			p = end ? end + 2 : p + strlen(p);
		}
		wipe_free(tok);
	}
	wipe_free(text);
	wipe_free(best.machine);
	if (!best_score) {
		wipe_free(best.login);
		wipe_free(best.password);
		return -ENOENT;
	}
	*login = best.login ? best.login : strdup("");
	*password = best.password;
	return *login ? 0 : -ENOMEM;
}
