#!/usr/bin/env bats
# The Slurm harness: a single-node cluster the unprivileged user submits to.

# shellcheck disable=SC2016
load ../harness/lib
load ../harness/slurm

setup_file() {
	slurm_start
}

teardown_file() {
	slurm_stop
}

@test "srun -n 2 hostname as berthtest prints two lines" {
	run as_user srun -n 2 -t 1 hostname
	echo "$output"
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 2 ]
	[ "${lines[0]}" = "$(hostname)" ]
	[ "${lines[1]}" = "$(hostname)" ]
}

@test "srun tasks run as berthtest, not root" {
	run as_user srun -n 1 id -un
	[ "$status" -eq 0 ]
	[ "$output" = berthtest ]
}

@test "srun passes the task's exit status back" {
	run as_user srun -n 1 sh -c 'exit 3'
	[ "$status" -ne 0 ]
}

@test "sbatch job runs and writes its output file" {
	local out=$USER_DIR/work/job-$BATS_TEST_NUMBER.out
	run as_user sbatch --parsable -o "$out" -t 1 --wrap 'echo "job $SLURM_JOB_ID on $(hostname) as $(id -un)"'
	echo "$output"
	[ "$status" -eq 0 ]
	local id=${output%%;*}
	[[ $id =~ ^[0-9]+$ ]]
	for _ in $(seq 1 150); do
		[[ -s $out ]] && ! squeue -h -j "$id" 2>/dev/null | grep -q . && break
		sleep 0.2
	done
	cat "$out"
	[ "$(cat "$out")" = "job $id on $(hostname) as berthtest" ]
	[ "$(stat -c %U "$out")" = berthtest ]
}
