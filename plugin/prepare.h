/* Between prepare.c (the child process) and node.c (what it does). */
#ifndef BERTH_PLUGIN_PREPARE_H
#define BERTH_PLUGIN_PREPARE_H

#include "plugin/plugin.h"

struct prep_ctx {
	const struct pconf *pconf;
	const struct args *args;
	const struct job *job;
	struct prep_result *res;
};

/* As the job's user, in the job's environment and working directory:
 * resolve the image, find or start the keeper, fill p->res.  Returns 0 or
 * a negative code with the message recorded. */
int prepare_container(struct prep_ctx *p, struct launcher_container **out);

/* Run the site's importer: "IMPORTER get URI" prints the squashfs path. */
int importer_get(const struct pconf *pc, const char *uri, char **path);
/* "IMPORTER release" (errors only logged: it must be idempotent). */
void importer_release(const struct pconf *pc);

/* Run as the job's user (prepare_as_user): remove the job's named
 * containers (container_scope=job); the importer's release. */
int node_cleanup_job(const struct pconf *pc, const struct job *job);
int node_release(const struct pconf *pc, const struct job *job);

#endif
