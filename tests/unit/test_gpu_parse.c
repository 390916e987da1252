/* The GPU module's parsers: driver files, NVIDIA_* variables, Slurm ids,
 * requirements, and CUDA_VISIBLE_DEVICES renumbering. */
#include "config.h"
#include <stdlib.h>
#include <string.h>
#include "common/error.h"
#include "launcher/gpu_int.h"
#include "tests/tap.h"

static void version(void)
{
	char *v = NULL;

	is_int(gpu_parse_version("NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue Mar"
				 "  5 22:23:56 UTC 2024\nGCC version:  gcc version 12.2.0\n",
				 &v),
	       0, "proprietary module version line");
	is_str(v, "550.54.15", "version 550.54.15");
	free(v);
	is_int(gpu_parse_version("NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  "
				 "535.104.05  Release Build  (dvs-builder@U16)  Sat Aug\n",
				 &v),
	       0, "open module version line");
	is_str(v, "535.104.05", "version 535.104.05");
	free(v);
	is_int(gpu_parse_version("hello\n", &v), BERTH_EFORMAT, "no NVRM line refused");
	is_int(gpu_parse_version("NVRM version: NVIDIA UNIX x86_64 Kernel Module  beta  x\n", &v),
	       BERTH_EFORMAT, "NVRM line without a version refused");
}

static void information(void)
{
	struct gpu_dev d;

	is_int(gpu_parse_information("Model: \t\t NVIDIA A100-SXM4-40GB\nIRQ:   \t\t 42\n"
				     "GPU UUID: \t GPU-1c6e9b3a-0c0f-7f43-a2a4-9b1c2d3e4f50\n"
				     "Bus Location: \t 0000:3b:00.0\nDevice Minor: \t 2\n",
				     "info", &d),
	       0, "information file parses");
	is_int(d.minor, 2, "minor 2");
	is_str(d.uuid, "GPU-1c6e9b3a-0c0f-7f43-a2a4-9b1c2d3e4f50", "UUID");
	is_str(d.model, "NVIDIA A100-SXM4-40GB", "model");
	is_str(d.busid, "0000:3b:00.0", "bus location");
	free(d.uuid);
	free(d.model);
	free(d.busid);
	is_int(gpu_parse_information("Model: x\nGPU UUID: GPU-1\n", "info", &d), BERTH_EFORMAT,
	       "missing Device Minor refused");
	is_int(gpu_parse_information("Device Minor: 300\nGPU UUID: GPU-1\n", "info", &d),
	       BERTH_EFORMAT, "minor out of range refused");
	is_int(gpu_parse_information("Device Minor: 1\nGPU UUID: 1234\n", "info", &d), BERTH_EFORMAT,
	       "UUID without GPU- refused");
	ok(strstr(berth_errmsg(BERTH_EFORMAT), "'info'") != NULL, "message names the file");
}

static void caps(void)
{
	unsigned c;

	is_int(gpu_parse_caps(NULL, "X", &c), 0, "unset capabilities");
	is_int(c, GPU_CAP_COMPUTE | GPU_CAP_UTILITY, "default compute,utility");
	is_int(gpu_parse_caps("", "X", &c), 0, "empty capabilities");
	is_int(c, GPU_CAP_DEFAULT, "empty gives the default");
	is_int(gpu_parse_caps("video,graphics", "X", &c), 0, "video,graphics");
	is_int(c, GPU_CAP_VIDEO | GPU_CAP_GRAPHICS, "two capabilities");
	is_int(gpu_parse_caps("all", "X", &c), 0, "all");
	is_int(c, GPU_CAP_ALL_FLAGS, "all is every capability");
	is_int(gpu_parse_caps("compute,computee", "NVIDIA_DRIVER_CAPABILITIES", &c), BERTH_EINVAL_INPUT,
	       "unknown capability refused");
	is_str(berth_errmsg(BERTH_EINVAL_INPUT),
	       "NVIDIA_DRIVER_CAPABILITIES 'compute,computee': unknown driver capability 'computee' "
	       "(known: compute, utility, video, graphics, display, compat32, all)",
	       "message names variable, value and capability");
	is_int(gpu_parse_caps(",,", "X", &c), BERTH_EINVAL_INPUT, "list of nothing refused");
}

static void selection(void)
{
	struct gpu_sel s;

	is_int(gpu_parse_sel(NULL, "X", &s), 0, "unset");
	is_int(s.kind, GPU_SEL_VOID, "unset is void");
	is_int(gpu_parse_sel("void", "X", &s), 0, "void");
	is_int(s.kind, GPU_SEL_VOID, "void is void");
	is_int(gpu_parse_sel("none", "X", &s), 0, "none");
	is_int(s.kind, GPU_SEL_NONE, "none is none");
	is_int(gpu_parse_sel("all", "X", &s), 0, "all");
	is_int(s.kind, GPU_SEL_ALL, "all is all");
	is_int(gpu_parse_sel("0,GPU-1c6e9b3a", "X", &s), 0, "list");
	is_int(s.kind, GPU_SEL_LIST, "list kind");
	is_str(s.items[0], "0", "first item");
	is_str(s.items[1], "GPU-1c6e9b3a", "second item");
	gpu_sel_clear(&s);
	is_int(gpu_parse_sel("0,all", "NVIDIA_VISIBLE_DEVICES", &s), BERTH_EINVAL_INPUT,
	       "all inside a list refused");
	is_int(gpu_parse_sel("0;rm -rf", "NVIDIA_VISIBLE_DEVICES", &s), BERTH_EINVAL_INPUT,
	       "junk refused");
	is_str(berth_errmsg(BERTH_EINVAL_INPUT),
	       "NVIDIA_VISIBLE_DEVICES '0;rm -rf': '0;rm -rf' is not a GPU index or UUID",
	       "message names the item");
	is_int(gpu_parse_sel(",", "X", &s), BERTH_EINVAL_INPUT, "empty list refused");
}

static void ids(void)
{
	unsigned *v = NULL;
	size_t n = 0;

	is_int(gpu_parse_ids("3,0-1,1", "SLURM_STEP_GPUS", &v, &n), 0, "Slurm ids with a range");
	is_int(n, 3, "three distinct ids");
	ok(n == 3 && v[0] == 0 && v[1] == 1 && v[2] == 3, "sorted 0,1,3");
	free(v);
	is_int(gpu_parse_ids("2-1", "S", &v, &n), BERTH_EINVAL_INPUT, "backwards range refused");
	is_int(gpu_parse_ids("a", "S", &v, &n), BERTH_EINVAL_INPUT, "letters refused");
	is_int(gpu_parse_ids("", "S", &v, &n), BERTH_EINVAL_INPUT, "empty refused");
}

static void require(void)
{
	struct gpu_facts f = {.cuda = "12.4", .driver = "550.54.15"};
	bool okk;

	ok(gpu_vercmp("12.10", "12.9") > 0, "12.10 > 12.9");
	ok(gpu_vercmp("12.2", "12.2.0") == 0, "12.2 == 12.2.0");
	ok(gpu_vercmp("535.54.03", "550") < 0, "535.54.03 < 550");
	is_int(gpu_require("cuda>=12.2", "R", &f, &okk), 0, "cuda>=12.2 parses");
	ok(okk, "cuda 12.4 meets cuda>=12.2");
	is_int(gpu_require("cuda>=12.5", "R", &f, &okk), 0, "cuda>=12.5 parses");
	ok(!okk, "cuda 12.4 fails cuda>=12.5");
	is_int(gpu_require("cuda>=12.5 brand=tesla,driver>=470,driver<471", "R", &f, &okk), 0,
	       "CUDA image style expression parses");
	ok(!okk, "neither alternative holds (brand unknown)");
	is_int(gpu_require("cuda>=13.0 driver>=550,driver<551", "R", &f, &okk), 0, "alternatives");
	ok(okk, "the second alternative holds");
	is_int(gpu_require("cuda=12.4", "R", &f, &okk), 0, "equality");
	ok(okk, "cuda=12.4 holds");
	f.brand = "Tesla";
	is_int(gpu_require("brand=tesla", "R", &f, &okk), 0, "brand");
	ok(okk, "brand compares without case");
	is_int(gpu_require("", "R", &f, &okk), 0, "empty requirement");
	ok(okk, "empty requirement holds");
	is_int(gpu_require("cuda>>12", "NVIDIA_REQUIRE_CUDA", &f, &okk), BERTH_EINVAL_INPUT,
	       "bad operator refused");
	is_str(berth_errmsg(BERTH_EINVAL_INPUT),
	       "NVIDIA_REQUIRE_CUDA 'cuda>>12': malformed constraint 'cuda>>12' (want e.g. "
	       "'cuda>=12.2' or 'driver>=535')",
	       "message names the constraint");
	is_int(gpu_require("cuda>=twelve", "R", &f, &okk), BERTH_EINVAL_INPUT, "word version refused");
	is_int(gpu_require("colour=red", "R", &f, &okk), BERTH_EINVAL_INPUT, "unknown name refused");
	is_int(gpu_require("brand>=tesla", "R", &f, &okk), BERTH_EINVAL_INPUT,
	       "ordering a brand refused");
}

/* Host: 4 GPUs, index i has minor 3-i (minors need not follow indexes). */
static void renumber(void)
{
	struct gpu_dev host[4], sel[2];
	struct gpu_plan p = {.vendor = GPU_NVIDIA};
	unsigned alloc[] = {1, 2};
	char *out = NULL;

	for (unsigned i = 0; i < 4; i++)
		host[i] = (struct gpu_dev){.index = i, .minor = 3 - i};
	/* Selected: indexes 1 and 2 (minors 2 and 1). */
	sel[0] = host[1];
	sel[1] = host[2];
	p.sel = sel;
	p.nsel = 2;
	p.host_view = host;
	p.nhost_view = 4;
	is_int(gpu_renumber(&p, "2,1", &out), 0, "no Slurm: host indexes");
	is_str(out, "1,0", "host 2,1 is 1,0 inside");
	free(out);
	is_int(gpu_renumber(&p, "1,3,2", &out), 0, "an unselected GPU");
	is_str(out, "0", "the list ends at the first GPU not inside (as CUDA does)");
	free(out);
	is_int(gpu_renumber(&p, "GPU-abc,1", &out), 0, "UUIDs");
	is_str(out, "GPU-abc,0", "UUIDs kept");
	free(out);
	/* Slurm allocated minors 1,2 = indexes 2,1; the host view is those
	 * in index order: local 0 = index 1, local 1 = index 2. */
	p.alloc = alloc;
	p.nalloc = 2;
	p.host_view = host + 1;
	p.nhost_view = 2;
	is_int(gpu_renumber(&p, "0,1", &out), 0, "Slurm local indexes");
	is_str(out, "0,1", "local indexes map to the same inside");
	free(out);
	is_int(gpu_renumber(&p, "2", &out), 0, "Slurm global id");
	is_str(out, "0", "global id 2 (minor 2 = index 1) is 0 inside");
	free(out);
	is_int(gpu_renumber(&p, "", &out), 0, "empty value");
	is_str(out, "", "stays empty");
	free(out);
}

int main(void)
{
	version();
	information();
	caps();
	selection();
	ids();
	require();
	renumber();
	return tap_done();
}
