#!/usr/bin/env bats
# MPI in containers on the harness's Slurm: PMIx (Open MPI) and PMI-2
# (MPICH) under srun, shared memory and CMA between the ranks of a node,
# the PMIx rendezvous directories, sbatch with a named container over
# several steps, and `berth run` under an outer mpirun.
#
# The test program (tests/harness/mpi/mpi_check.c) checks an allreduce, a
# token ring and a 4 MiB message, and prints its user namespace.  Open MPI
# runs with OMPI_MCA_btl=self,vader only (no TCP to hide a failure) and
# btl_vader_single_copy_mechanism=cma, MPICH with UCX_TLS=self,sm.

# shellcheck disable=SC2016
load ../harness/lib
load ../harness/slurm
load ../harness/mpi

setup_file() {
	require_root
	skip_unless mpirun srun
	mpi_import
	export BERTH_MOUNT_LINGER=1
	RUNTIME=/run/berth-mpi$$
	export RUNTIME
	export SPANK_BERTH_ARGS="runtime_path=$RUNTIME container_scope=job"
	slurm_start
	sed -i 's/^optional /required /' "$SLURM_DIR/plugstack.conf"
	HOST_USERNS=$(as_user readlink /proc/self/ns/user)
	export HOST_USERNS
}

teardown_file() {
	slurm_stop
	[[ -n ${RUNTIME:-} ]] && rm -rf --one-file-system "$RUNTIME"
}

SHM_ONLY=(OMPI_MCA_btl=self,vader OMPI_MCA_btl_vader_single_copy_mechanism=cma)

usrun() {
	as_user env "${SHM_ONLY[@]}" srun -Q -t 2 "$@"
}

# check_ranks N OUTPUT: N ranks passed every check, agree on the size and
# the allreduce, and share one user namespace that is not the host's.
check_ranks() {
	local n=$1 out=$2 ns
	echo "$out"
	[ "$(grep -c "size $n .* allreduce $((n * (n + 1) / 2)) ring ok big ok\$" <<<"$out")" -eq "$n" ]
	for ((r = 0; r < n; r++)); do
		grep -q "^rank $r size $n " <<<"$out"
	done
	ns=$(grep -o 'userns [^ ]*' <<<"$out" | sort -u)
	[ "$(wc -l <<<"$ns")" -eq 1 ]
	[ "${ns#userns }" != "$HOST_USERNS" ]
	! grep -qiE 'PMIX ERROR|OPAL ERROR|FAIL' <<<"$out"
}

@test "srun --mpi=list offers pmix and pmi2; the test program passes natively" {
	run as_user srun --mpi=list
	echo "$output"
	grep -qw pmix <<<"$output"
	grep -qw pmi2 <<<"$output"
	run usrun --mpi=pmix -n 2 "$MPI_PROGS/mpi_check"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(grep -c "size 2 .* ring ok big ok\$" <<<"$output")" -eq 2 ]
}

@test "srun --mpi=pmix -n 2: Open MPI over shared memory with CMA, one user namespace" {
	run usrun --mpi=pmix -n 2 --container-image="$MPI_SQSH" /app
	[ "$status" -eq 0 ]
	check_ranks 2 "$output"
	# four ranks on two CPUs, and the 4 MiB message again through CMA
	run usrun --mpi=pmix -n 4 --overcommit --container-image="$MPI_SQSH" /app
	[ "$status" -eq 0 ]
	check_ranks 4 "$output"
}

@test "srun --mpi=pmix: PMIx variables unchanged, PMIX_MCA_* set, rendezvous dirs bound" {
	run as_user env FI_BERTH_TEST=host srun -Q -t 1 --mpi=pmix -n 2 \
		--container-image="$MPI_SQSH" sh -c '
		step=$SLURM_JOB_ID.$SLURM_STEP_ID
		echo "$SLURM_PROCID ns=$PMIX_NAMESPACE rank=$PMIX_RANK host=$PMIX_HOSTNAME"
		echo "$SLURM_PROCID tmpdir=$PMIX_SERVER_TMPDIR step=$step"
		echo "$SLURM_PROCID mca=$PMIX_MCA_psec/$PMIX_MCA_gds mode=$PMIX_SECURITY_MODE/$PMIX_GDS_MODULE"
		echo "$SLURM_PROCID fi=$FI_BERTH_TEST ucx=$UCX_BERTH_TEST map=${SLURM_PMIX_MAPPING_SERV:+set}"
		echo "$SLURM_PROCID uri=${PMIX_SERVER_URI4%%;*}"
		for d in "$PMIX_SERVER_TMPDIR" "$PMIX_DSTORE_21_BASE_PATH" "$PMIX_DSTORE_ESH_BASE_PATH" \
			"'"$SLURM_DIR"'/tmp/spmix_appdir_$(id -u)_$step"; do
			test -d "$d" && echo "$SLURM_PROCID dir ok $d" || echo "$SLURM_PROCID dir MISSING $d"
		done
		grep -F " ${PMIX_SERVER_TMPDIR%/} " /proc/self/mountinfo | grep -q nosuid,nodev,noexec &&
			echo "$SLURM_PROCID mounted"'
	echo "$output"
	[ "$status" -eq 0 ]
	local r job
	job=$(sed -n 's/^0 tmpdir=.* step=\([0-9]*\)\..*/\1/p' <<<"$output")
	for r in 0 1; do
		grep -qx "$r ns=slurm.pmix.$job.0 rank=$r host=$(hostname -s)" <<<"$output"
		grep -qx "$r tmpdir=$SLURM_DIR/spool/pmix.$job.0/ step=$job.0" <<<"$output"
		grep -qx "$r mca=native/ds21,ds12,hash mode=native/ds21,ds12,hash" <<<"$output"
		grep -qx "$r fi=host ucx=image map=set" <<<"$output"
		grep -qx "$r uri=pmix-server.[0-9]*" <<<"$output"
		[ "$(grep -c "^$r dir ok " <<<"$output")" -eq 4 ]
		grep -qx "$r mounted" <<<"$output"
	done
	! grep -q MISSING <<<"$output"
	# only the step's directory: the rest of slurmd's spool stays outside
	[ -e "$SLURM_DIR/spool/cred_state" ]
	run usrun -n 1 --container-image="$MPI_SQSH" test ! -e "$SLURM_DIR/spool/cred_state"
	[ "$status" -eq 0 ]
}

@test "srun --mpi=pmi2 -n 2: MPICH over shared memory; PMI_FD, PMI_RANK, PMI_SIZE survive" {
	run as_user env UCX_TLS=self,sm srun -Q -t 1 --mpi=pmi2 -n 2 \
		--container-image="$MPI_SQSH" sh -c '
		echo "pmi $PMI_RANK/$PMI_SIZE fd=$(readlink /proc/self/fd/$PMI_FD | cut -d: -f1)"
		exec /app-mpich'
	[ "$status" -eq 0 ]
	check_ranks 2 "$output"
	grep -qx "pmi 0/2 fd=socket" <<<"$output"
	grep -qx "pmi 1/2 fd=socket" <<<"$output"
}

@test "sbatch: a multi-step MPI job in one named container" {
	local out=$USER_DIR/work/mpi-job.out
	as_user sh -c "cat >'$USER_DIR/work/mpi-job.sh'" <<-EOF
		#!/bin/sh
		#SBATCH -n 2 -t 2
		export ${SHM_ONLY[*]}
		srun --mpi=pmix --container-image=$MPI_SQSH --container-name=mpijob \
			sh -c 'echo step0 >/step-file; exec /app'
		srun --mpi=pmix --container-name=mpijob \
			sh -c 'test -d "\$PMIX_SERVER_TMPDIR" && echo "pmixdir \$SLURM_STEP_ID \$PMIX_SERVER_TMPDIR"; cat /step-file; exec /app'
		UCX_TLS=self,sm srun --mpi=pmi2 --container-name=mpijob /app-mpich
	EOF
	run as_user sbatch --wait -o "$out" "$USER_DIR/work/mpi-job.sh"
	cat "$out"
	[ "$status" -eq 0 ]
	[ "$(grep -c "size 2 .* ring ok big ok\$" "$out")" -eq 6 ]
	# the second step saw its own PMIx directory and the first step's file
	[ "$(grep -c "^pmixdir 1 $SLURM_DIR/spool/pmix\.[0-9]*\.1/\$" "$out")" -eq 2 ]
	[ "$(grep -c '^step0$' "$out")" -eq 2 ]
	# one user namespace for all steps: the named container was joined
	[ "$(grep -o 'userns [^ ]*' "$out" | sort -u | wc -l)" -eq 1 ]
	! grep -qiE 'PMIX ERROR|FAIL' "$out"
}

@test "srun --container-readonly: a missing mount point is a warning; SLURM_PMIX_TMPDIR=/tmp works" {
	# The image has no slurmd spool and no TmpFS path, and a read-only
	# container cannot create them: warnings name both.  Open MPI puts its
	# session directory below Slurm's client directory, so that one must
	# exist: SLURM_PMIX_TMPDIR=/tmp (the container's /tmp) gives one.
	run as_user env "${SHM_ONLY[@]}" SLURM_PMIX_TMPDIR=/tmp srun -Q -t 1 --mpi=pmix -n 2 \
		--container-readonly --container-image="$MPI_SQSH" /app
	echo "$output"
	[ "$status" -eq 0 ]
	grep -q "no mount point for '$SLURM_DIR/spool/pmix\..*the image is read-only" <<<"$output"
	[ "$(grep -c "size 2 .* ring ok big ok\$" <<<"$output")" -eq 2 ]
	run usrun --mpi=pmix -n 2 --container-readonly --container-image="$MPI_SQSH" /app
	echo "$output"
	[ "$status" -ne 0 ]
	grep -q "no mount point for '$SLURM_DIR/tmp/spmix_appdir_" <<<"$output"
}

@test "berth run under mpirun: ranks of a node share one container" {
	run as_user env "${SHM_ONLY[@]}" mpirun -n 2 --oversubscribe \
		-x OMPI_MCA_btl -x OMPI_MCA_btl_vader_single_copy_mechanism \
		"$BERTH" run "$MPI_SQSH" /app
	[ "$status" -eq 0 ]
	check_ranks 2 "$output"
	# Open MPI's session directory (PMIX_SERVER_TMPDIR) is bound
	run as_user mpirun -n 1 "$BERTH" run "$MPI_SQSH" sh -c \
		'test -d "$PMIX_SERVER_TMPDIR" && grep -qF " $PMIX_SERVER_TMPDIR " /proc/self/mountinfo && echo bound'
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$output" = bound ]
}

@test "mpi_inject_verbs: the host's verbs config and providers replace the image's" {
	local fake=$USER_DIR/verbs-root
	mpi_fake_verbs_root "$fake"
	local show='cat /etc/libibverbs.d/fake.driver 2>/dev/null || echo no-fake-driver
		ls /usr/lib/x86_64-linux-gnu/libibverbs/'
	# off (the default): the image's own providers
	run as_user env BERTH_GPU_DRIVER_ROOT="$fake" "$BERTH" run "$MPI_SQSH" sh -c "$show"
	echo "$output"
	[ "$status" -eq 0 ]
	grep -q no-fake-driver <<<"$output"
	grep -q '^libmlx5-rdmav34.so$' <<<"$output"
	# on: berth run and srun both see the host's
	run as_user env BERTH_GPU_DRIVER_ROOT="$fake" BERTH_MPI_INJECT_VERBS=yes \
		"$BERTH" run "$MPI_SQSH" sh -c "$show"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$output" = "$(printf 'driver fake\nlibfake-rdmav34.so')" ]
	run as_user env BERTH_GPU_DRIVER_ROOT="$fake" BERTH_MPI_INJECT_VERBS=yes \
		srun -Q -t 1 -n 1 --container-image="$MPI_SQSH" sh -c "$show; touch /etc/libibverbs.d/x 2>&1 || echo read-only"
	echo "$output"
	[ "$status" -eq 0 ]
	grep -qx 'driver fake' <<<"$output"
	grep -qx 'libfake-rdmav34.so' <<<"$output"
	grep -qx 'read-only' <<<"$output"
	# on, but a host without verbs: nothing added, nothing broken
	run as_user env BERTH_GPU_DRIVER_ROOT="$USER_DIR/work" BERTH_MPI_INJECT_VERBS=yes \
		"$BERTH" run "$MPI_SQSH" sh -c "$show"
	[ "$status" -eq 0 ]
	grep -q no-fake-driver <<<"$output"
	# a bad value is refused, naming the key
	run as_user env BERTH_MPI_INJECT_VERBS=maybe "$BERTH" run "$MPI_SQSH" true
	echo "$output"
	[ "$status" -ne 0 ]
	grep -q mpi_inject_verbs <<<"$output"
}
