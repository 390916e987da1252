/* GPU locality (NUMA node, local cores) with hwloc; `berth gpus`;
 * --gpu-affinity.
 *
 * hwloc's PCI view of the real machine comes first; a GPU it does not
 * know (a driver root that is not "/", as in the tests) is looked up in
 * DRIVER_ROOT/sys/bus/pci/devices/BUSID/{local_cpulist,numa_node}, the
 * same sysfs files hwloc reads. */
#include "config.h"
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

static int topo_load(hwloc_topology_t *t)
{
	if (hwloc_topology_init(t) < 0)
		return berth_fail(-errno, "hwloc: init");
	hwloc_topology_set_io_types_filter(*t, HWLOC_TYPE_FILTER_KEEP_IMPORTANT);
	if (hwloc_topology_load(*t) < 0) {
		int r = berth_fail(-errno, "hwloc: load the topology");

		hwloc_topology_destroy(*t);
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
		if (hwloc_bitmap_list_sscanf(l->cpus, t) < 0)
			hwloc_bitmap_zero(l->cpus);
	}
	free(TAKE_PTR(t));
	if (read_file(nn, 4096, &t, NULL) == 0)
		l->numa = atoi(t);
}

static void locate(hwloc_topology_t t, const char *root, const char *busid, struct locality *l)
{
	hwloc_obj_t o = busid ? hwloc_get_pcidev_by_busidstring(t, busid) : NULL;

	hwloc_bitmap_zero(l->cpus);
	l->numa = -1;
	if (o && (o = hwloc_get_non_io_ancestor_obj(t, o)) && o->cpuset) {
		hwloc_bitmap_copy(l->cpus, o->cpuset);
		if (o->nodeset && hwloc_bitmap_weight(o->nodeset) == 1)
			l->numa = hwloc_bitmap_first(o->nodeset);
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
	l.cpus = hwloc_bitmap_alloc();
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
		if (!hwloc_bitmap_iszero(l.cpus))
			hwloc_bitmap_list_asprintf(&cpus, l.cpus);
		if (l.numa >= 0)
			snprintf(numa, sizeof(numa), "%d", l.numa);
		fprintf(out, "%-5u %-14s %-42s %-13s %-5s %-10s %s\n", d->index, dev,
			d->uuid ? d->uuid : "-", d->busid ? d->busid : "-", numa, cpus ? cpus : "-",
			d->model ? d->model : "-");
		free(cpus);
	}
	hwloc_bitmap_free(l.cpus);
	hwloc_topology_destroy(t);
	gpu_host_clear(&h);
	return 0;
}

/* Union of the selected GPUs' local cores, within what we may use. */
static int wanted_cpus(const struct gpu_plan *p, hwloc_topology_t t, hwloc_bitmap_t want)
{
	struct locality l = {.cpus = hwloc_bitmap_alloc()};

	if (!l.cpus)
		return -ENOMEM;
	hwloc_bitmap_zero(want);
	for (size_t i = 0; i < p->nsel; i++) {
		locate(t, p->driver_root, p->sel[i].busid, &l);
		hwloc_bitmap_or(want, want, l.cpus);
	}
	hwloc_bitmap_free(l.cpus);
	hwloc_bitmap_and(want, want, hwloc_topology_get_allowed_cpuset(t));
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
	cur = hwloc_bitmap_alloc();
	want = hwloc_bitmap_alloc();
	r = cur && want ? 0 : -ENOMEM;
	if (r == 0 && hwloc_get_cpubind(t, cur, HWLOC_CPUBIND_PROCESS) < 0)
		r = berth_fail(-errno, "read the CPU affinity");
	if (r == 0 && !hwloc_bitmap_isequal(cur, hwloc_topology_get_allowed_cpuset(t))) {
		/* Slurm (or taskset, numactl) chose already: theirs stands. */
		log_debug("--gpu-affinity: already bound to a subset of the allowed CPUs");
	} else if (r == 0 && (r = wanted_cpus(p, t, want)) == 0) {
		if (hwloc_bitmap_iszero(want))
			log_debug("--gpu-affinity: the GPUs' local cores are unknown or not ours");
		else if (hwloc_set_cpubind(t, want, HWLOC_CPUBIND_PROCESS) < 0)
			r = berth_fail(-errno, "bind to the cores local to the GPUs");
	}
	hwloc_bitmap_free(cur);
	hwloc_bitmap_free(want);
	hwloc_topology_destroy(t);
	return r;
}
