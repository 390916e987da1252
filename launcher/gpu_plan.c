/* Deciding what a container gets: which GPUs, which driver files. */
#include "config.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "common/error.h"
#include "common/log.h"
#include "common/util.h"
#include "launcher/gpu_int.h"
#include "launcher/gpu_libs.h"

static const char *env_get(char *const *env, const char *name)
{
	size_t n = strlen(name);

	for (size_t i = 0; env && env[i]; i++)
		if (strncmp(env[i], name, n) == 0 && env[i][n] == '=')
			return env[i] + n + 1;
	return NULL;
}

/* The job's value wins over the image's (as with enroot and pyxis). */
static const char *var(const struct gpu_request *req, const char *name)
{
	const char *v = env_get(req->env, name);

	return v ? v : env_get(req->image_env, name);
}

int gpu_plan_add(struct gpu_plan *p, enum gpu_item_kind kind, const char *src, const char *dst)
{
	struct gpu_item *nv = realloc(p->items, (p->nitems + 1) * sizeof(*nv));

	if (!nv)
		return -ENOMEM;
	p->items = nv;
	nv[p->nitems] = (struct gpu_item){.kind = kind, .src = strdup(src), .dst = strdup(dst)};
	if (!nv[p->nitems].src || !nv[p->nitems].dst) {
		free(nv[p->nitems].src);
		free(nv[p->nitems].dst);
		return -ENOMEM;
	}
	p->nitems++;
	return 0;
}

static void devs_free(struct gpu_dev *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].uuid);
		free(v[i].model);
		free(v[i].busid);
	}
	free(v);
}

void gpu_plan_free(struct gpu_plan *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->nitems; i++) {
		free(p->items[i].src);
		free(p->items[i].dst);
		strv_free(p->items[i].links);
	}
	free(p->items);
	devs_free(p->sel, p->nsel);
	devs_free(p->host_view, p->nhost_view);
	free(p->alloc);
	free(p->driver_root);
	free(p->driver_version);
	free(p->compat_error);
	free(p);
}

static int dev_copy(const struct gpu_dev *d, struct gpu_dev **v, size_t *n)
{
	struct gpu_dev *nv = realloc(*v, (*n + 1) * sizeof(*nv));

	if (!nv)
		return -ENOMEM;
	*v = nv;
	nv[*n] = (struct gpu_dev){.index = d->index, .minor = d->minor,
				  .uuid = d->uuid ? strdup(d->uuid) : NULL,
				  .model = d->model ? strdup(d->model) : NULL,
				  .busid = d->busid ? strdup(d->busid) : NULL};
	(*n)++;
	return 0;
}

static bool allocated(const struct gpu_plan *p, const struct gpu_dev *d)
{
	if (!p->alloc)
		return true;
	for (size_t i = 0; i < p->nalloc; i++)
		if (p->alloc[i] == d->minor)
			return true;
	return false;
}

static bool selected(const struct gpu_plan *p, const struct gpu_dev *d)
{
	for (size_t i = 0; i < p->nsel; i++)
		if (p->sel[i].index == d->index)
			return true;
	return false;
}

/* Resolve the selection against the host's GPUs into p->sel (index order). */
static int select_gpus(struct gpu_plan *p, const struct gpu_host *h, const struct gpu_sel *s,
		       const char *what, const char *text)
{
	for (size_t i = 0; s->kind == GPU_SEL_LIST && s->items[i]; i++) {
		const char *it = s->items[i];
		const struct gpu_dev *d;

		if (str_startswith(it, "MIG-") || strchr(it, ':'))
			return berth_failx(BERTH_EUNSUPPORTED,
					   "%s '%s': MIG device '%s' is not supported by berth", what,
					   text, it);
		d = gpu_host_find(h, it);
		if (!d)
			return berth_failx(BERTH_EINVAL_INPUT,
					   "%s '%s': no GPU '%s' on this node (%zu GPU%s, indexes "
					   "0-%zu; see 'berth gpus')",
					   what, text, it, h->n, h->n == 1 ? "" : "s", h->n ? h->n - 1 : 0);
		if (!allocated(p, d))
			return berth_failx(BERTH_EINVAL_INPUT,
					   "%s '%s': GPU %u (%s) is not allocated to this job "
					   "(SLURM_STEP_GPUS/SLURM_JOB_GPUS)",
					   what, text, d->index, d->uuid ? d->uuid : d->busid);
	}
	for (size_t g = 0; g < h->n; g++) {
		const struct gpu_dev *d = &h->v[g];
		bool want = s->kind == GPU_SEL_ALL && allocated(p, d);

		for (size_t i = 0; !want && s->kind == GPU_SEL_LIST && s->items[i]; i++)
			want = gpu_host_find(h, s->items[i]) == d;
		if (want && !selected(p, d) && dev_copy(d, &p->sel, &p->nsel) < 0)
			return -ENOMEM;
	}
	/* What the job saw before the container: its allocation (Slurm's
	 * local indexes) or the whole node.  gpu_env.c renumbers from it. */
	for (size_t g = 0; g < h->n; g++)
		if (allocated(p, &h->v[g]) && dev_copy(&h->v[g], &p->host_view, &p->nhost_view) < 0)
			return -ENOMEM;
	return 0;
}

static int slurm_alloc(struct gpu_plan *p, const struct gpu_request *req, const struct gpu_host *h)
{
	const char *name = "SLURM_STEP_GPUS", *v = env_get(req->env, name);
	int r;

	if (!v) {
		name = "SLURM_JOB_GPUS";
		v = env_get(req->env, name);
	}
	if (!v || !*v)
		return 0;
	if ((r = gpu_parse_ids(v, name, &p->alloc, &p->nalloc)) < 0)
		return r;
	for (size_t i = 0; i < p->nalloc; i++) {
		bool found = false;

		for (size_t g = 0; g < h->n; g++)
			found = found || h->v[g].minor == p->alloc[i];
		if (!found)
			return berth_failx(BERTH_EHOST,
					   "%s '%s': GPU %u (/dev/nvidia%u) is not on this node", name,
					   v, p->alloc[i], p->alloc[i]);
	}
	return 1;
}

static int add_dev(struct gpu_plan *p, const char *name, bool required, const char *why)
{
	_cleanup_free_ char *dst = xasprintf("/dev/%s", name),
			    *src = dst ? path_join(p->driver_root, dst) : NULL;

	if (!src)
		return -ENOMEM;
	if (access(src, F_OK) < 0) {
		if (required)
			return berth_failx(BERTH_EHOST, "%s: device '%s' is missing", why, src);
		return 0;
	}
	return gpu_plan_add(p, GPU_ITEM_DEV, src, dst);
}

static int nvidia_devices(struct gpu_plan *p)
{
	static const char *const ctl[] = {"nvidia-uvm", "nvidia-uvm-tools", "nvidia-modeset",
					  "nvidia-caps"};
	int r = add_dev(p, "nvidiactl", true, "NVIDIA driver");

	for (size_t i = 0; r == 0 && i < ARRAY_SIZE(ctl); i++)
		r = add_dev(p, ctl[i], false, NULL);
	for (size_t i = 0; r == 0 && i < p->nsel; i++) {
		char name[32], why[160];

		snprintf(name, sizeof(name), "nvidia%u", p->sel[i].minor);
		snprintf(why, sizeof(why), "GPU %u (%s)", p->sel[i].index, p->sel[i].uuid);
		r = add_dev(p, name, true, why);
	}
	return r;
}

/* NVIDIA_REQUIRE_* against the driver; with CUDA_VERSION of the image
 * meeting it instead, the image's forward-compat driver is needed. */
static int check_require(struct gpu_plan *p, const struct gpu_request *req, const char *libcuda)
{
	char *const *srcs[] = {req->env, req->image_env};
	_cleanup_free_ char *cuda = NULL;
	const char *dis = var(req, "NVIDIA_DISABLE_REQUIRE");
	bool off = false;

	if (dis && *dis && parse_bool(dis, &off) < 0)
		off = true;
	if (off)
		return 0;
	for (size_t s = 0; s < ARRAY_SIZE(srcs); s++) {
		for (size_t i = 0; srcs[s] && srcs[s][i]; i++) {
			const char *e = srcs[s][i], *eq = strchr(e, '=');
			_cleanup_free_ char *name = NULL;
			struct gpu_facts f = {.driver = p->driver_version};
			const char *img_cuda;
			bool ok;
			int r;

			if (!str_startswith(e, "NVIDIA_REQUIRE_") || !eq)
				continue;
			name = strndup(e, (size_t)(eq - e));
			if (!name)
				return -ENOMEM;
			if (s == 1 && env_get(req->env, name))
				continue; /* the job's value replaced it */
			if (!cuda && libcuda && strstr(eq, "cuda") &&
			    (r = gpu_cuda_version(libcuda, &cuda)) < 0)
				return r;
			f.cuda = cuda;
			if ((r = gpu_require(eq + 1, name, &f, &ok)) < 0)
				return r;
			if (ok)
				continue;
			img_cuda = var(req, "CUDA_VERSION");
			f.cuda = img_cuda;
			if (img_cuda && gpu_require(eq + 1, name, &f, &ok) == 0 && ok && !p->compat) {
				p->compat = true;
				p->compat_error = xasprintf(
					"image requires '%s' (%s) but driver %s supports CUDA %s, and "
					"the image has no newer driver in /usr/local/cuda/compat",
					eq + 1, name, p->driver_version, cuda ? cuda : "(unknown)");
				continue;
			}
			return berth_failx(BERTH_EHOST,
					   "image requires '%s' (%s) but driver %s supports CUDA %s "
					   "(set NVIDIA_DISABLE_REQUIRE=1 to skip the check)",
					   eq + 1, name, p->driver_version, cuda ? cuda : "(unknown)");
		}
	}
	return 0;
}

static int plan_nvidia(struct gpu_plan *p, const struct gpu_request *req)
{
	_cleanup_free_ char *libcuda = NULL;
	int r = gpu_parse_caps(var(req, "NVIDIA_DRIVER_CAPABILITIES"), "NVIDIA_DRIVER_CAPABILITIES",
			       &p->caps);

	if (r < 0 || (r = nvidia_devices(p)) < 0)
		return r;
	if ((r = gpu_libs_plan(p, req->env, &libcuda)) < 0)
		return r;
	return check_require(p, req, libcuda);
}

static int plan_amd(struct gpu_plan *p)
{
	int r = add_dev(p, "kfd", true, "AMD GPUs");

	for (size_t i = 0; r == 0 && i < p->nsel; i++) {
		char name[32], why[64];

		snprintf(name, sizeof(name), "dri/renderD%u", p->sel[i].minor);
		snprintf(why, sizeof(why), "AMD GPU %u", p->sel[i].index);
		r = add_dev(p, name, true, why);
	}
	return r;
}

/* Which text selects GPUs, and whether the user asked explicitly. */
static const char *selection_text(const struct gpu_request *req, enum gpu_vendor v, bool alloc,
				  const char **what, bool *explicit)
{
	const char *t;

	*explicit = true;
	*what = "--gpus";
	if (req->gpus)
		return req->gpus;
	if (v == GPU_AMD)
		return NULL; /* AMD GPUs come with --gpus only */
	*what = "NVIDIA_VISIBLE_DEVICES";
	if ((t = env_get(req->env, *what)))
		return t;
	*explicit = false;
	if (alloc)
		return "all"; /* a Slurm GPU allocation asks for its GPUs */
	return env_get(req->image_env, *what);
}

static int plan_build(struct gpu_plan *p, const struct gpu_request *req, const struct gpu_host *h)
{
	struct gpu_sel s = {0};
	const char *what, *text;
	bool explicit;
	int r = h->vendor == GPU_NVIDIA ? slurm_alloc(p, req, h) : 0;

	if (r < 0)
		return r;
	text = selection_text(req, h->vendor, r > 0, &what, &explicit);
	if ((r = gpu_parse_sel(text, what, &s)) < 0)
		return r;
	if (s.kind == GPU_SEL_VOID || (h->vendor == GPU_NONE && !(explicit && s.kind != GPU_SEL_NONE))) {
		gpu_sel_clear(&s);
		return 0;
	}
	if (h->vendor == GPU_NONE) {
		gpu_sel_clear(&s);
		return berth_failx(BERTH_EHOST, "%s '%s': this node has no GPU (no NVIDIA driver "
						"and no /dev/kfd below '%s')",
				   what, text, req->driver_root);
	}
	if (h->vendor == GPU_AMD && s.kind == GPU_SEL_ALL && env_get(req->env, "ROCR_VISIBLE_DEVICES")) {
		gpu_sel_clear(&s);
		what = "ROCR_VISIBLE_DEVICES";
		text = env_get(req->env, what);
		if ((r = gpu_parse_sel(text, what, &s)) < 0)
			return r;
	}
	r = select_gpus(p, h, &s, what, text);
	gpu_sel_clear(&s);
	if (r < 0)
		return r;
	if (explicit && s.kind == GPU_SEL_ALL && p->nsel == 0 && h->n == 0)
		log_debug("%s=all: the driver lists no GPU", what);
	return h->vendor == GPU_NVIDIA ? plan_nvidia(p, req) : plan_amd(p);
}

int gpu_plan(const struct gpu_request *req, struct gpu_plan **out)
{
	struct gpu_host h;
	struct gpu_plan *p;
	int r;

	*out = NULL;
	if ((r = gpu_host_load(req->driver_root, &h)) < 0)
		return r;
	p = calloc(1, sizeof(*p));
	if (!p || !(p->driver_root = strdup(req->driver_root))) {
		free(p);
		gpu_host_clear(&h);
		return -ENOMEM;
	}
	p->vendor = h.vendor;
	p->driver_version = h.driver_version ? strdup(h.driver_version) : NULL;
	r = plan_build(p, req, &h);
	gpu_host_clear(&h);
	if (r < 0 || p->nitems == 0) {
		gpu_plan_free(p);
		return r;
	}
	*out = p;
	return 0;
}

void gpu_plan_describe(const struct gpu_plan *p, FILE *f)
{
	static const char *const kind[] = {"dev", "lib", "lib32", "bin", "file"};

	if (!p)
		return;
	fprintf(f, "gpu vendor=%d caps=%#x compat=%d driver=%s\n", p->vendor, p->caps, p->compat,
		p->driver_version ? p->driver_version : "");
	for (size_t i = 0; i < p->nsel; i++)
		fprintf(f, "gpu %u minor=%u %s\n", p->sel[i].index, p->sel[i].minor,
			p->sel[i].uuid ? p->sel[i].uuid : "");
	for (size_t i = 0; i < p->nitems; i++) {
		fprintf(f, "%s %s -> %s", kind[p->items[i].kind], p->items[i].src, p->items[i].dst);
		for (size_t l = 0; p->items[i].links && p->items[i].links[l]; l++)
			fprintf(f, " %s", p->items[i].links[l]);
		fputc('\n', f);
	}
}
