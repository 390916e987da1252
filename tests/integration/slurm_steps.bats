#!/usr/bin/env bats
# spank_berth.so: a step's container from start to end: keepers that do not
# linger (mount_linger=0), and --container-save writing the container to a
# squashfs that a later step runs.

# shellcheck disable=SC2016
load ../harness/lib
load ../harness/slurm

setup_file() {
	require_root
	registry_start
	image_busybox busybox:latest
	export BERTH_INSECURE_REGISTRIES=$REGISTRY
	export BERTH_MOUNT_LINGER=1
	RUNTIME=/run/berth-s$$
	export RUNTIME
	export SPANK_BERTH_ARGS="runtime_path=$RUNTIME container_scope=job"
	slurm_start
	IMG=$REGISTRY#busybox:latest
	export IMG
	as_user srun -t 1 -n 1 --container-image="$IMG" true
}

teardown_file() {
	slurm_stop
	registry_stop_all
	[[ -n ${RUNTIME:-} ]] && rm -rf --one-file-system "$RUNTIME"
}

usrun() {
	as_user srun -Q -t 1 "$@"
}

# No keeper left under the runtime dir (keepers remove their state dir).
no_keepers() {
	local i
	for i in $(seq 50); do
		[[ -z $(ls -A "$RUNTIME/1001/keepers" 2>/dev/null) ]] && return 0
		sleep 0.2
	done
	ls -la "$RUNTIME/1001/keepers" >&2
	return 1
}

@test "mount_linger=0: steps start, tasks join, named containers carry over, nothing lingers" {
	export BERTH_MOUNT_LINGER=0
	local i
	for i in 1 2 3; do
		# a deadlock in launcher_create would hang here: timeout fails it
		run as_user timeout 60 srun -Q -t 1 -n 2 --container-image="$IMG" sh -c 'echo task $SLURM_PROCID'
		echo "$output"
		[ "$status" -eq 0 ]
		[ "$(printf '%s\n' "${lines[@]}" | sort | tr '\n' ' ')" = "task 0 task 1 " ]
	done
	run as_user timeout 120 salloc -Q -t 2 -n 1 sh -c "
		srun --container-image='$IMG' --container-name=l0 sh -c 'echo carried >/f'
		srun --container-name=l0 cat /f"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$output" = carried ]
	no_keepers
}
