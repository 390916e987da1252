/* GPU locality (NUMA node, local cores) with hwloc; `berth gpus`;
 * --gpu-affinity.
 *
 * hwloc's PCI view of the real machine comes first; a GPU it does not
 * know (a driver root that is not "/", as in the tests) is looked up in
 * DRIVER_ROOT/sys/bus/pci/devices/BUSID/{local_cpulist,numa_node}, the
 * same sysfs files hwloc reads.
 *
 * libhwloc (and its libxml2 and ICU) is dlopen'ed on first use: a run
 * without --gpu-affinity and every other command never map it
 * (doc/decisions.md, "Lean run path"). */
#include "config.h"
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <hwloc.h>
#include "common/error.h"
#include "common/log.h"
#include "common/util.h"
#include "launcher/gpu_int.h"

struct locality {
	hwloc_bitmap_t cpus; /* empty when unknown */
	int numa;            /* -1 when unknown */
};

/* hwloc 2.x: ABI 15.  Only real (not inline) functions: the header's
 * inline helpers would link against libhwloc directly. */
#define HWLOC_SONAME "libhwloc.so.15"
#define HWLOC_FUNCS(X)                                                                  \
	X(get_api_version) X(topology_init) X(topology_set_io_types_filter)             \
	X(topology_load) X(topology_destroy) X(topology_get_allowed_cpuset)             \
	X(get_obj_by_depth) X(get_cpubind) X(set_cpubind) X(bitmap_alloc)              \
	X(bitmap_free) X(bitmap_zero) X(bitmap_copy) X(bitmap_or) X(bitmap_and)        \
	X(bitmap_weight) X(bitmap_first) X(bitmap_iszero) X(bitmap_isequal)            \
	X(bitmap_list_sscanf) X(bitmap_list_asprintf)

static struct {
#define X(f) __typeof__(hwloc_##f) *f;
	HWLOC_FUNCS(X)
#undef X
} hw;

static int hwloc_open(void)
{
	static void *lib;

	if (lib)
		return 0;
	lib = dlopen(HWLOC_SONAME, RTLD_NOW | RTLD_LOCAL);
	if (!lib)
		return berth_failx(BERTH_EHOST, "hwloc: %s", dlerror());
#define X(f)                                                            \
	if (!(hw.f = (__typeof__(hw.f))dlsym(lib, "hwloc_" #f))) {      \
		int r = berth_failx(BERTH_EHOST, "hwloc: %s", dlerror()); \
		dlclose(lib);                                           \
		lib = NULL;                                             \
		return r;                                               \
	}
	HWLOC_FUNCS(X)
#undef X
	if (hw.get_api_version() >> 16 != HWLOC_API_VERSION >> 16) {
		dlclose(lib);
		lib = NULL;
		return berth_failx(BERTH_EHOST, "hwloc: %s has API %#x, berth was built for %#x",
				   HWLOC_SONAME, hw.get_api_version(), HWLOC_API_VERSION);
	}
	return 0;
}

/* hwloc_get_pcidev_by_busidstring and hwloc_get_non_io_ancestor_obj,
 * through the table. */
static hwloc_obj_t pcidev_by_busid(hwloc_topology_t t, const char *busid)
{
	unsigned dom = 0, bus, dev, fn;
	hwloc_obj_t o;

	if (sscanf(busid, "%x:%x:%x.%x", &dom, &bus, &dev, &fn) != 4 &&
	    (dom = 0, sscanf(busid, "%x:%x.%x", &bus, &dev, &fn) != 3))
		return NULL;
	for (unsigned i = 0; (o = hw.get_obj_by_depth(t, HWLOC_TYPE_DEPTH_PCI_DEVICE, i)); i++)
		if (o->attr->pcidev.domain == dom && o->attr->pcidev.bus == bus &&
		    o->attr->pcidev.dev == dev && o->attr->pcidev.func == fn)
			return o;
	return NULL;
}

static hwloc_obj_t non_io_ancestor(hwloc_obj_t o)
{
	while (o && !o->cpuset)
		o = o->parent;
	return o;
}

static int topo_load(hwloc_topology_t *t)
{
	int r = hwloc_open();

	if (r < 0)
		return r;
	if (hw.topology_init(t) < 0)
		return berth_fail(-errno, "hwloc: init");
	hw.topology_set_io_types_filter(*t, HWLOC_TYPE_FILTER_KEEP_IMPORTANT);
	if (hw.topology_load(*t) < 0) {
		r = berth_fail(-errno, "hwloc: load the topology");
		hw.topology_destroy(*t);
		return r;
	}
	return 0;
}

static void from_sysfs(const char *root, const char *busid, struct locality *l)
{
	_cleanup_free_ char *dir = xasprintf("%s/sys/bus/pci/devices/%s", root, busid),
			    *cl = dir ? path_join(dir, "local_cpulist") : NULL,
			    *nn = dir ? path_join(dir, "numa_node") : NULL, *t = NULL;

	if (!cl || !nn)
		return;
	if (read_file(cl, 4096, &t, NULL) == 0) {
		t[strcspn(t, "\n")] = '\0';
		if (hw.bitmap_list_sscanf(l->cpus, t) < 0)
			hw.bitmap_zero(l->cpus);
	}
	free(TAKE_PTR(t));
	if (read_file(nn, 4096, &t, NULL) == 0)
		l->numa = atoi(t);
}

static void locate(hwloc_topology_t t, const char *root, const char *busid, struct locality *l)
{
	hwloc_obj_t o = busid ? pcidev_by_busid(t, busid) : NULL;

	hw.bitmap_zero(l->cpus);
	l->numa = -1;
	if (o && (o = non_io_ancestor(o)) && o->cpuset) {
		hw.bitmap_copy(l->cpus, o->cpuset);
		if (o->nodeset && hw.bitmap_weight(o->nodeset) == 1)
			l->numa = hw.bitmap_first(o->nodeset);
		return;
	}
	if (busid)
		from_sysfs(root, busid, l);
}

int gpu_list(const char *driver_root, FILE *out)
{
	struct gpu_host h;
	hwloc_topology_t t;
	struct locality l = {0};
	int r = gpu_host_load(driver_root, &h);

	if (r < 0)
		return r;
	if (h.vendor == GPU_NONE) {
		fprintf(out, "no GPU below driver root '%s'\n", driver_root);
		return 0;
	}
	if ((r = topo_load(&t)) < 0) {
		gpu_host_clear(&h);
		return r;
	}
	l.cpus = hw.bitmap_alloc();
	if (h.vendor == GPU_NVIDIA)
		fprintf(out, "NVIDIA driver %s, %zu GPU%s\n", h.driver_version, h.n,
			h.n == 1 ? "" : "s");
	else
		fprintf(out, "AMD (/dev/kfd), %zu GPU%s\n", h.n, h.n == 1 ? "" : "s");
	fprintf(out, "%-5s %-14s %-42s %-13s %-5s %-10s %s\n", "INDEX", "DEVICE", "UUID", "BUS",
		"NUMA", "CPUS", "MODEL");
	for (size_t i = 0; l.cpus && i < h.n; i++) {
		const struct gpu_dev *d = &h.v[i];
		char dev[32], *cpus = NULL, numa[16] = "-";

		snprintf(dev, sizeof(dev), h.vendor == GPU_NVIDIA ? "nvidia%u" : "dri/renderD%u",
			 d->minor);
		locate(t, driver_root, d->busid, &l);
		if (!hw.bitmap_iszero(l.cpus))
			hw.bitmap_list_asprintf(&cpus, l.cpus);
		if (l.numa >= 0)
			snprintf(numa, sizeof(numa), "%d", l.numa);
		fprintf(out, "%-5u %-14s %-42s %-13s %-5s %-10s %s\n", d->index, dev,
			d->uuid ? d->uuid : "-", d->busid ? d->busid : "-", numa, cpus ? cpus : "-",
			d->model ? d->model : "-");
		free(cpus);
	}
	hw.bitmap_free(l.cpus);
	hw.topology_destroy(t);
	gpu_host_clear(&h);
	return 0;
}

/* Union of the selected GPUs' local cores, within what we may use. */
static int wanted_cpus(const struct gpu_plan *p, hwloc_topology_t t, hwloc_bitmap_t want)
{
	struct locality l = {.cpus = hw.bitmap_alloc()};

	if (!l.cpus)
		return -ENOMEM;
	hw.bitmap_zero(want);
	for (size_t i = 0; i < p->nsel; i++) {
		locate(t, p->driver_root, p->sel[i].busid, &l);
		hw.bitmap_or(want, want, l.cpus);
	}
	hw.bitmap_free(l.cpus);
	hw.bitmap_and(want, want, hw.topology_get_allowed_cpuset(t));
	return 0;
}

int gpu_bind_cpus(const struct gpu_plan *p)
{
	hwloc_topology_t t;
	hwloc_bitmap_t cur, want;
	int r;

	if (!p || p->nsel == 0)
		return 0;
	if ((r = topo_load(&t)) < 0)
		return r;
	cur = hw.bitmap_alloc();
	want = hw.bitmap_alloc();
	r = cur && want ? 0 : -ENOMEM;
	if (r == 0 && hw.get_cpubind(t, cur, HWLOC_CPUBIND_PROCESS) < 0)
		r = berth_fail(-errno, "read the CPU affinity");
	if (r == 0 && !hw.bitmap_isequal(cur, hw.topology_get_allowed_cpuset(t))) {
		/* Slurm (or taskset, numactl) chose already: theirs stands. */
		log_debug("--gpu-affinity: already bound to a subset of the allowed CPUs");
	} else if (r == 0 && (r = wanted_cpus(p, t, want)) == 0) {
		if (hw.bitmap_iszero(want))
			log_debug("--gpu-affinity: the GPUs' local cores are unknown or not ours");
		else if (hw.set_cpubind(t, want, HWLOC_CPUBIND_PROCESS) < 0)
			r = berth_fail(-errno, "bind to the cores local to the GPUs");
	}
	hw.bitmap_free(cur);
	hw.bitmap_free(want);
	hw.topology_destroy(t);
	return r;
}
