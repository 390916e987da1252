/* berth's configuration: built-in defaults, then the system file
 * (SYSCONFDIR/berth/berth.conf), then the user's file
 * (~/.config/berth/berth.conf) -- or only $BERTH_CONFIG when set -- then
 * BERTH_<KEY> environment variables, which win.  Lists are comma-separated.
 *
 * File syntax: "key = value" lines; '#' starts a comment line; values may use
 * "~/" and ${HOME} ${USER} ${UID}.  A bad line is an error naming file:line. */
#ifndef BERTH_CONF_H
#define BERTH_CONF_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct berth_config {
	char *cache_dir;
	char *runtime_dir;
	char *credentials_file;
	char **registry_mirrors;    /* "docker.io=mirror.example:5000" or a host */
	char **insecure_registries; /* hosts spoken to over plain HTTP */
	char *default_registry;
	uint64_t max_connections;
	char *compression;          /* lz4 | zstd | gzip | xz */
	uint64_t compression_level; /* 0: compressor's default */
	uint64_t mount_linger;      /* seconds a keeper outlives its last user */
	char *overlay;              /* auto | kernel | fuse */
	bool writable;
	bool mount_home;
	bool remap_root;
	char *gpu_driver_root;
	bool mpi_inject_verbs;      /* host verbs config + providers (launcher/mpi.h) */
	char *log_level;

	/* Where each value came from, by key index ("default", "FILE:LINE",
	 * "environment BERTH_X", or what berth_config_set was given). */
	char *source[32];
};

enum berth_config_flags {
	BERTH_CONFIG_NO_FILES = 1 << 0, /* defaults + environment only */
	BERTH_CONFIG_NO_ENV = 1 << 1,   /* ignore BERTH_* variables */
	BERTH_CONFIG_ALL_FLAGS = (1 << 2) - 1,
};

/* Load defaults, files and environment.  On a bad file line or value returns
 * BERTH_ECONFIG with the message "FILE:LINE: ..." recorded. */
int berth_config_load(struct berth_config **out, unsigned flags);
void berth_config_free(struct berth_config *cfg);

/* Set one key from text (file, environment, plugin argument, CLI option). */
int berth_config_set(struct berth_config *cfg, const char *key, const char *value,
		     const char *source);

/* Read a config file into cfg. -ENOENT when missing (not recorded as error). */
int berth_config_read_file(struct berth_config *cfg, const char *path);

/* "key = value    # source" for every key. */
void berth_config_print(const struct berth_config *cfg, FILE *out);

/* Is key a known key? */
bool berth_config_known(const char *key);

#endif
