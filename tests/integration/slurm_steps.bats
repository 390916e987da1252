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
	slurm_berth_env s
	slurm_start
	IMG=$REGISTRY#busybox:latest
	export IMG
	as_user srun -t 1 -n 1 --container-image="$IMG" true
}

teardown_file() {
	slurm_berth_stop
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

@test "--container-save: the step's changes in a squashfs that a later step runs" {
	local work=$USER_DIR/work
	rm -f "$work/saved.sqsh"
	# relative to the job's directory; two tasks, both changes kept
	run usrun -n 2 --container-image="$IMG" --container-writable --container-save=saved.sqsh \
		sh -c 'echo change$SLURM_PROCID >/marker$SLURM_PROCID; [ $SLURM_PROCID = 1 ] || rm /linuxrc'
	echo "$output"
	[ "$status" -eq 0 ]
	[ -s "$work/saved.sqsh" ]
	# the user's file, no temporary left beside it
	[ "$(stat -c %U "$work/saved.sqsh")" = berthtest ]
	[ -z "$(find "$work" -name 'saved.sqsh?*')" ]
	run usrun -n 1 --container-image=./saved.sqsh sh -c 'cat /marker0 /marker1; test ! -e /linuxrc && echo deleted'
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$output" = "$(printf 'change0\nchange1\ndeleted')" ]
	# nothing mounted on the container is in the file: /proc, /dev, the job's dir
	run unsquashfs -lls "$work/saved.sqsh"
	! grep -Eq 'squashfs-root/(proc|dev|sys)/.' <<<"$output"
	! grep -q "squashfs-root$work/" <<<"$output"
	# saving again replaces the file; the image's config comes along
	run usrun -n 1 --container-image="$work/saved.sqsh" --container-save="$work/saved.sqsh" \
		sh -c 'echo again >/marker0'
	[ "$status" -eq 0 ]
	run usrun -n 1 --container-image="$work/saved.sqsh" sh -c 'cat /marker0; echo $PATH'
	[ "${lines[0]}" = again ]
	[ "${lines[1]}" = /usr/sbin:/usr/bin:/sbin:/bin ]
	# a read-only container saves its image as it is
	run usrun -n 1 --container-image="$IMG" --container-readonly --container-save=ro.sqsh true
	[ "$status" -eq 0 ]
	run usrun -n 1 --container-image=./ro.sqsh sh -c 'test -x /bin/busybox && echo ok'
	[ "$output" = ok ]
	no_keepers
}

@test "--container-save of a named container, in a batch script" {
	local work=$USER_DIR/work
	rm -f "$work/named.sqsh" "$work/batch.sqsh"
	run as_user salloc -Q -t 2 -n 1 sh -c "
		srun --container-image='$IMG' --container-name=sv sh -c 'echo first >/f'
		srun --container-name=sv --container-save=named.sqsh sh -c 'echo second >>/f'"
	echo "$output"
	[ "$status" -eq 0 ]
	run usrun -n 1 --container-image="$work/named.sqsh" cat /f
	[ "$output" = "$(printf 'first\nsecond')" ]
	as_user sh -c "printf '#!/bin/sh\necho batch >/b\n' >'$work/save.sh'"
	run as_user sbatch --wait -Q -t 1 -o /dev/null --container-image="$IMG" \
		--container-save="$work/batch.sqsh" "$work/save.sh"
	[ "$status" -eq 0 ]
	run usrun -n 1 --container-image="$work/batch.sqsh" cat /b
	[ "$output" = batch ]
}

@test "--container-save bad input: a directory, no such or unwritable directory, empty" {
	local cases=(
		"/tmp|'/tmp' is a directory"
		"$USER_DIR/work/|the target is a directory"
		"/nonexistent-dir/x.sqsh|directory '/nonexistent-dir': No such file or directory"
		"/root/x.sqsh|cannot write in '/root': Permission denied"
		"|--container-save: argument required"
	) c
	for c in "${cases[@]}"; do
		run usrun -n 1 --container-image="$IMG" --container-save="${c%%|*}" touch /ran
		echo "$c: $status: $output"
		[ "$status" -ne 0 ]
		grep -qF -- "${c#*|}" <<<"$output"
	done
	[ ! -e /root/x.sqsh ]
	[ -z "$(squeue -h -u berthtest)" ]
}

@test "--container-save failing at the end: a clear line in srun's output, nothing half-written" {
	local out=$USER_DIR/work/late
	as_user mkdir -p "$out"
	# the task puts a directory where the file was to go
	run usrun -n 1 --container-image="$IMG" --container-mounts="$out:/late" \
		--container-save="$out/x.sqsh" mkdir /late/x.sqsh
	echo "$output"
	grep -q "save the container as '$out/x.sqsh': it is a directory" <<<"$output"
	[ "$(ls -A "$out")" = x.sqsh ]
	[ -z "$(ls -A "$out/x.sqsh")" ]
	no_keepers
}
