/* Inside launcher/gpu*.c: the host's GPUs, the parsers, the plan. */
#ifndef BERTH_GPU_INT_H
#define BERTH_GPU_INT_H

#include <stdbool.h>
#include <stddef.h>
#include "launcher/gpu.h"

enum gpu_vendor { GPU_NONE, GPU_NVIDIA, GPU_AMD };

/* NVIDIA_DRIVER_CAPABILITIES */
enum gpu_cap {
	GPU_CAP_COMPUTE = 1 << 0,
	GPU_CAP_UTILITY = 1 << 1,
	GPU_CAP_VIDEO = 1 << 2,
	GPU_CAP_GRAPHICS = 1 << 3,
	GPU_CAP_DISPLAY = 1 << 4,
	GPU_CAP_COMPAT32 = 1 << 5,
	GPU_CAP_ALL_FLAGS = (1 << 6) - 1,
	GPU_CAP_DEFAULT = GPU_CAP_COMPUTE | GPU_CAP_UTILITY,
};

struct gpu_dev {
	unsigned index; /* NVML / nvidia-smi order: by PCI bus id */
	unsigned minor; /* N of /dev/nvidiaN; AMD: N of /dev/dri/renderDN */
	char *uuid;     /* "GPU-..." (NVIDIA) or the KFD unique id (AMD), or NULL */
	char *model;
	char *busid;    /* "0000:3b:00.0" */
};

struct gpu_host {
	enum gpu_vendor vendor;
	char *driver_version; /* "550.54.15" (NVIDIA) */
	struct gpu_dev *v;
	size_t n;
};

/* A device list: NVIDIA_VISIBLE_DEVICES, --gpus, ROCR_VISIBLE_DEVICES. */
enum gpu_sel_kind { GPU_SEL_VOID, GPU_SEL_NONE, GPU_SEL_ALL, GPU_SEL_LIST };

struct gpu_sel {
	enum gpu_sel_kind kind;
	char **items; /* GPU_SEL_LIST: indexes or UUIDs as given */
};

/* ---- parsers (gpu_parse.c), pure functions on text ---------------------- */

/* "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  ..." */
int gpu_parse_version(const char *text, char **version);
/* One /proc/driver/nvidia/gpus/BUSID/information file. */
int gpu_parse_information(const char *text, const char *what, struct gpu_dev *out);
/* Capability list ("compute,utility", "all"); "" or NULL gives the default. */
int gpu_parse_caps(const char *text, const char *what, unsigned *caps);
/* "all", "none", "void", "", "0,1", "GPU-...". what names the source. */
int gpu_parse_sel(const char *text, const char *what, struct gpu_sel *out);
void gpu_sel_clear(struct gpu_sel *s);
/* "0,2-3" (Slurm's GPU ids) into a sorted, duplicate-free array. */
int gpu_parse_ids(const char *text, const char *what, unsigned **ids, size_t *n);
/* Compare dotted versions numerically ("12.10" > "12.9"); <0, 0, >0. */
int gpu_vercmp(const char *a, const char *b);

struct gpu_facts {
	const char *cuda;   /* "12.4", or NULL if unknown */
	const char *driver; /* "550.54.15" */
	const char *brand;  /* NULL: unknown */
	const char *arch;   /* NULL: unknown */
};

/* NVIDIA_REQUIRE_*: space-separated alternatives of comma-separated
 * constraints NAME OP VALUE (cuda, driver, arch, brand; >=, <=, =, ==,
 * >, <, !=).  *ok tells whether facts meet it; BERTH_EINVAL_INPUT for a
 * malformed expression. */
int gpu_require(const char *expr, const char *what, const struct gpu_facts *f, bool *ok);

/* ---- the host (gpu_host.c) ---------------------------------------------- */

int gpu_host_load(const char *driver_root, struct gpu_host *h);
void gpu_host_clear(struct gpu_host *h);
/* Find a GPU by index ("1"), UUID ("GPU-..."), or a unique UUID prefix. */
const struct gpu_dev *gpu_host_find(const struct gpu_host *h, const char *item);
/* The CUDA version the driver's libcuda reports (cuDriverGetVersion, in a
 * child process), as "12.4". */
int gpu_cuda_version(const char *libcuda_path, char **out);

/* ---- the plan ------------------------------------------------------------ */

enum gpu_item_kind {
	GPU_ITEM_DEV,     /* device node or directory of them, at the same path */
	GPU_ITEM_LIB,     /* library into the lib dir, with its soname links */
	GPU_ITEM_LIB32,   /* the same into lib32 */
	GPU_ITEM_BIN,     /* tool into /usr/bin */
	GPU_ITEM_FILE,    /* ICD json, socket, MPS dir: at the same path */
};

struct gpu_item {
	enum gpu_item_kind kind;
	char *src;    /* absolute host path (driver root included) */
	char *dst;    /* path in the container (LIB: the file name) */
	char **links; /* LIB: soname links to create next to it */
};

struct gpu_plan {
	enum gpu_vendor vendor;
	char *driver_root;
	unsigned caps;
	struct gpu_dev *sel; /* selected GPUs in index order (copies) */
	size_t nsel;
	struct gpu_item *items;
	size_t nitems;
	bool compat;        /* image must provide /usr/local/cuda/compat */
	char *compat_error; /* message when it does not */
	char *driver_version;
	/* Renumbering of CUDA_VISIBLE_DEVICES: the host-side view (in its
	 * order) and whether Slurm's ids are local indexes. */
	struct gpu_dev *host_view;
	size_t nhost_view;
	unsigned *alloc; /* Slurm allocation (minors), or NULL */
	size_t nalloc;
};

int gpu_plan_add(struct gpu_plan *p, enum gpu_item_kind kind, const char *src, const char *dst);

/* Renumber a CUDA_VISIBLE_DEVICES / ROCR_VISIBLE_DEVICES value for the GPUs
 * inside (gpu_env.c); *out NULL means "unset it". */
int gpu_renumber(const struct gpu_plan *p, const char *value, char **out);

#define GPU_DIR "/usr/local/berth-gpu"

/* Run the image's ldconfig for GPU_DIR (gpu_ldconf.c). */
int gpu_ldconfig(int root_fd, bool lib32);

#endif
