#!/bin/bash
# bench/mpi.sh: MPI over shared memory, native srun vs in a berth container.
# On the harness's single-node Slurm (needs root for the cluster; the steps
# run as the unprivileged test user): bench/mpi_bench.c (ping-pong latency,
# windowed bandwidth, allreduce; Open MPI, OMPI_MCA_btl=self,vader with CMA)
# as `srun --mpi=pmix -n 2 mpi_bench` and as `srun --mpi=pmix -n 2
# --container-image=IMG /bench` (the same binary, in the harness's Open MPI
# image), alternating, ROUNDS times each.  Prints the median of every value
# per mode and the container's overhead in percent, as a markdown table.
# Usage: bash bench/mpi.sh [ROUNDS] [ITER_SCALE]   (default 7, 0.5)
set -euo pipefail
ROUNDS=${1:-7}
SCALE=${2:-0.5}
cd "$(dirname "$0")/.."
export BERTH_TESTS_RUNDIR=${BERTH_TESTS_RUNDIR:-/var/tmp/berth-tests/bench-mpi-$$}
export BATS_FILE_TMPDIR=$BERTH_TESTS_RUNDIR/state BATS_ROOT_PID=$$
mkdir -p "$BATS_FILE_TMPDIR"
chmod 0755 "$BERTH_TESTS_RUNDIR"
skip() { echo "bench/mpi.sh: cannot run: $*" >&2; exit 1; }
# shellcheck source=tests/harness/lib.bash
source tests/harness/lib.bash
# shellcheck source=tests/harness/slurm.bash
source tests/harness/slurm.bash
# shellcheck source=tests/harness/mpi.bash
source tests/harness/mpi.bash
cleanup() {
	slurm_stop
	rm -rf --one-file-system "/run/berth-bench-$$"
}
trap cleanup EXIT
mpi_import
export SPANK_BERTH_ARGS="runtime_path=/run/berth-bench-$$"
slurm_start
sed -i 's/^optional /required /' "$SLURM_DIR/plugstack.conf"

out=$BERTH_TESTS_RUNDIR/results
mkdir -p "$out"
chmod 0777 "$out"
step() {
	as_user env OMPI_MCA_btl=self,vader OMPI_MCA_btl_vader_single_copy_mechanism=cma \
		srun -Q --mpi=pmix -n 2 "$@"
}
# warm-up: the image import, the page cache, the first keeper
step --container-image="$MPI_SQSH" /bench 0.05 >/dev/null
step "$MPI_PROGS/mpi_bench" 0.05 >/dev/null
# A failed round (a busy machine, a step that could not launch) is left out
# for both modes, so the medians stay paired.
for ((i = 0; i < ROUNDS; i++)); do
	if ! step "$MPI_PROGS/mpi_bench" "$SCALE" >"$out/native.$i" ||
		! step --container-image="$MPI_SQSH" /bench "$SCALE" >"$out/container.$i"; then
		echo "bench/mpi.sh: round $i failed, left out" >&2
		rm -f "$out/native.$i" "$out/container.$i"
	fi
done

# One line per test and size: native median, container median, overhead.
cat "$out"/native.* | sed 's/^/native /' >"$out/all"
cat "$out"/container.* | sed 's/^/container /' >>"$out/all"
echo "rounds: $ROUNDS, iteration scale $SCALE, medians; overhead > 0: container slower"
echo
echo "| test | size (bytes) | native | in container | overhead |"
echo "| --- | --- | --- | --- | --- |"
awk '
	{ k = $1 " " $2 " " $3; v[k, ++n[k]] = $4; key[$2 " " $3] = 1 }
	function median(k,   m, i, j, t, a) {
		m = n[k]
		for (i = 1; i <= m; i++) a[i] = v[k, i]
		for (i = 2; i <= m; i++)
			for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
		return m % 2 ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
	}
	END {
		for (k in key) {
			split(k, p, " ")
			nat = median("native " k); con = median("container " k)
			unit = p[1] == "bandwidth" ? "MB/s" : "us"
			over = p[1] == "bandwidth" ? (nat / con - 1) * 100 : (con / nat - 1) * 100
			printf "%s|%012d| %s | %d | %.2f %s | %.2f %s | %+.1f %% |\n", p[1], p[2], p[1], p[2], nat, unit, con, unit, over
		}
	}' "$out/all" | sort | cut -d'|' -f3- | sed 's/^/|/'
