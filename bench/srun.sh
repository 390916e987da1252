#!/bin/bash
# bench/srun.sh: what spank_berth.so adds to a Slurm step.
# Median wall time of `srun -n 2 true` against
# `srun -n 2 --container-image=IMG true` with the image cached, on the
# harness's single-node Slurm (needs root for the cluster; the steps run as
# the unprivileged test user).  Optional: BENCH_BIG_SQSH=/path/big.sqsh adds
# the same measurement for a large image (per-step cost must not grow with
# image size).  Usage: bash bench/srun.sh [RUNS]   (default 21)
set -euo pipefail
RUNS=${1:-21}
cd "$(dirname "$0")/.."
export BERTH_TESTS_RUNDIR=${BERTH_TESTS_RUNDIR:-/var/tmp/berth-tests/bench-srun-$$}
export BATS_FILE_TMPDIR=$BERTH_TESTS_RUNDIR/state BATS_ROOT_PID=$$
mkdir -p "$BATS_FILE_TMPDIR"
skip() { echo "bench/srun.sh: cannot run: $*" >&2; exit 1; }
# shellcheck source=tests/harness/lib.bash
source tests/harness/lib.bash
# shellcheck source=tests/harness/slurm.bash
source tests/harness/slurm.bash
cleanup() {
	slurm_stop
	registry_stop_all
	rm -rf --one-file-system "/run/berth-bench-$$"
}
trap cleanup EXIT
registry_start
image_busybox bench:latest
export BERTH_INSECURE_REGISTRIES=$REGISTRY
export SPANK_BERTH_ARGS="runtime_path=/run/berth-bench-$$"
slurm_start
sed -i 's/^optional /required /' "$SLURM_DIR/plugstack.conf"
IMG=$REGISTRY#bench:latest

# median_ms CMD...: median wall time of RUNS runs, in ms (one warm-up run).
median_ms() {
	local i t0 t1
	local -a t=()
	as_user "$@" >/dev/null 2>&1 || { echo "bench: failed: $*" >&2; return 1; }
	for ((i = 0; i < RUNS; i++)); do
		t0=$(date +%s%N)
		as_user "$@" >/dev/null 2>&1
		t1=$(date +%s%N)
		t+=($(((t1 - t0) / 1000000)))
		sleep "${BENCH_PAUSE:-0}"
	done
	printf '%s\n' "${t[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
}

plain=$(median_ms srun -Q -n 2 true)
cached=$(median_ms srun -Q -n 2 --container-image="$IMG" true)
echo "runs: $RUNS (median)"
echo "srun -n 2 true:                          $plain ms"
echo "srun -n 2 --container-image=IMG true:    $cached ms  (+$((cached - plain)) ms, busybox image, cached)"
# A fresh keeper (squashfuse mount, overlay, binds) every step: the
# previous one lingers 1 s and is gone before the next step starts.
# (mount_linger=0 is not used: the launcher's keeper deadlocks at start
# with it, see the plugin report.)
cold=$(BERTH_MOUNT_LINGER=1 BENCH_PAUSE=2 median_ms srun -Q -n 2 --container-image="$IMG" true)
echo "same, new keeper every step:             $cold ms  (+$((cold - plain)) ms)"
if [[ -n ${BENCH_BIG_SQSH:-} ]]; then
	big=$(median_ms srun -Q -n 2 --container-image="$BENCH_BIG_SQSH" true)
	echo "srun -n 2 --container-image=BIG true:    $big ms  (+$((big - plain)) ms, $(du -h "$BENCH_BIG_SQSH" | cut -f1) squashfs)"
fi
