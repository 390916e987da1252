#!/usr/bin/env bats
# spank_berth.so: named containers across steps, sbatch, bad input, and
# that a node is clean after the steps.

# shellcheck disable=SC2016
load ../harness/lib
load ../harness/slurm

setup_file() {
	require_root
	registry_start
	image_busybox busybox:latest
	slurm_berth_env j
	slurm_start
	IMG=$REGISTRY#busybox:latest
	export IMG
	# warm the cache: later timings and bad-input tests need no pull
	as_user srun -t 1 -n 1 --container-image="$IMG" true
}

teardown_file() {
	slurm_berth_stop
}

# Processes of this test file's jobs: their environment names our cluster
# (keepers and FUSE servers inherit the job's environment).
our_processes() {
	local p
	for p in $(ps -u berthtest -o pid=); do
		tr '\0' '\n' </proc/"$p"/environ 2>/dev/null | grep -qxF "SLURM_CONF=$SLURM_CONF" &&
			echo "$p $(tr '\0' ' ' </proc/"$p"/cmdline)"
	done
	return 0
}

# Wait (up to 15 s) until nothing of ours is left on the node: no process,
# no keeper listening under the runtime dir, no keeper state, no job.
node_clean() {
	local i
	for i in $(seq 75); do
		if [[ -z $(our_processes) ]] && ! grep -q "$RUNTIME" /proc/net/unix &&
			[[ -z $(ls -A "$RUNTIME/1001/keepers" 2>/dev/null) ]] &&
			[[ -z $(squeue -h -u berthtest) ]]; then
			return 0
		fi
		sleep 0.2
	done
	our_processes >&2
	grep "$RUNTIME" /proc/net/unix >&2
	ls -la "$RUNTIME/1001/keepers" >&2
	squeue >&2
	return 1
}

# bad_input "expected message" srun-options...: non-zero, the message, and
# no job or step left behind.
bad_input() {
	local want=$1
	shift
	run usrun -n 1 "$@" true
	echo "status $status: $output"
	[ "$status" -ne 0 ]
	grep -qF -- "$want" <<<"$output"
	# no job or step left behind
	local i
	for i in $(seq 50); do
		[ -z "$(squeue -h -u berthtest)" ] && return 0
		sleep 0.1
	done
	squeue >&2
	return 1
}

@test "named container: writable layer kept for the job's later steps, removed at job end" {
	run as_user salloc -t 2 -n 1 sh -c "
		srun --container-image='$IMG' --container-name=keep sh -c 'echo kept >/root-file; echo \$SLURM_JOB_ID'
		srun --container-name=keep cat /root-file
		srun --container-name=keep:create true && echo CREATED-TWICE
		srun --container-image='$IMG' true
		srun --container-name=other cat /root-file 2>&1 || echo no-such-container"
	echo "$output"
	[ "$status" -eq 0 ]
	grep -q '^kept$' <<<"$output"
	! grep -q CREATED-TWICE <<<"$output"
	grep -q 'keep:create: the container already exists' <<<"$output"
	grep -q "no such container, and --container-image is not set" <<<"$output"
	# container_scope=job: the epilog removed it
	local i
	for i in $(seq 50); do
		[[ -z $(ls -A "$RUNTIME/1001/containers" 2>/dev/null) ]] && break
		sleep 0.2
	done
	[ -z "$(ls -A "$RUNTIME/1001/containers" 2>/dev/null)" ]
	node_clean
}

@test "named container: joining a running one, :exec and :no_exec" {
	run as_user salloc -t 2 -n 2 --overcommit sh -c "
		srun --container-image='$IMG' --container-name=live true
		srun --container-name=live:exec true || echo EXEC-STOPPED-REFUSED
		srun --overlap -n 1 --container-name=live sh -c 'echo running >/tmp/flag; sleep 4' &
		sleep 2
		srun --overlap -n 1 --container-name=live:exec cat /tmp/flag
		srun --overlap -n 1 --container-name=live:no_exec true || echo NO-EXEC-REFUSED
		wait"
	echo "$output"
	[ "$status" -eq 0 ]
	grep -q EXEC-STOPPED-REFUSED <<<"$output"
	grep -q 'live:exec: the container is not running' <<<"$output"
	grep -q '^running$' <<<"$output"
	grep -q NO-EXEC-REFUSED <<<"$output"
	node_clean
}

@test "named containers: 5 created at once, then reused by 50 quick steps" {
	run as_user salloc -t 3 -n 2 --overcommit sh -c "
		for i in 1 2 3 4 5; do
			srun --overlap -n 1 --container-image='$IMG' --container-name=c\$i sh -c 'echo \$0 >/name' c\$i &
		done
		wait
		for i in \$(seq 50); do
			srun --overlap -n 1 --container-name=c\$((i % 5 + 1)) cat /name
		done | sort | uniq -c"
	echo "$output"
	[ "$status" -eq 0 ]
	local n
	for n in 1 2 3 4 5; do
		grep -Eq "^ *10 c$n\$" <<<"$output"
	done
	node_clean
}

@test "sbatch: the batch script runs in the container; #SBATCH image quoting" {
	local out=$USER_DIR/work/sbatch-%j.out i
	# '#' starts a comment for sbatch's #SBATCH parser: quote the value,
	# escape the '#', or write REGISTRY/IMAGE.
	for form in "\"$IMG\"" "${IMG/\#/\\#}" "${IMG/\#//}"; do
		as_user sh -c "cat >'$USER_DIR/work/job.sh'" <<-EOF
			#!/bin/sh
			#SBATCH --container-image=$form
			#SBATCH -t 1
			test -x /bin/busybox && test ! -e /etc/debian_version && echo in-container
		EOF
		run as_user sbatch --parsable -o "$out" "$USER_DIR/work/job.sh"
		echo "$form: $output"
		[ "$status" -eq 0 ]
		local id=${output%%;*}
		for i in $(seq 100); do
			[[ -s ${out/\%j/$id} ]] && ! squeue -h -j "$id" | grep -q . && break
			sleep 0.2
		done
		cat "${out/\%j/$id}"
		[ "$(cat "${out/\%j/$id}")" = in-container ]
	done
	# the unquoted form loses everything after '#'
	as_user sh -c "printf '#!/bin/sh\n#SBATCH --container-image=%s\ntrue\n' '$IMG' >'$USER_DIR/work/bad.sh'"
	run as_user sbatch --wait -t 1 -o /dev/null "$USER_DIR/work/bad.sh"
	[ "$status" -ne 0 ]
	node_clean
}

@test "bad image input: empty, overlong, a directory, /dev/urandom, unpullable" {
	bad_input "--container-image: argument required" --container-image=
	bad_input "longer than 2048 characters" --container-image="$(head -c 3000 /dev/zero | tr '\0' a)"
	bad_input "/tmp" --container-image=/tmp
	bad_input "/dev/urandom" --container-image=/dev/urandom
	bad_input "$REGISTRY" --container-image="$REGISTRY#no/such:image"
}

@test "bad mounts: empty, ':', '/tmp:', missing source, '..', proc and devpts" {
	bad_input "--container-mounts: argument required" --container-image="$IMG" --container-mounts=
	bad_input "empty source" --container-image="$IMG" --container-mounts=:
	bad_input "empty target" --container-image="$IMG" --container-mounts=/tmp:
	bad_input "/nonexistent-src" --container-image="$IMG" --container-mounts=/nonexistent-src:/x
	bad_input "contains '..'" --container-image="$IMG" --container-mounts=/tmp:/a/../../b
	bad_input "proc filesystems cannot be bound" --container-image="$IMG" --container-mounts=/proc/self:/p
	bad_input "devpts filesystems cannot be bound" --container-image="$IMG" --container-mounts=/dev/pts:/p
}

@test "bad options: workdir, readonly+writable, env lists, names" {
	bad_input "--container-workdir: argument required" --container-image="$IMG" --container-workdir=
	bad_input "both --container-writable and --container-readonly" --container-image="$IMG" \
		--container-writable --container-readonly
	bad_input "empty name in the list" --container-image="$IMG" --container-env=A,,B
	bad_input "empty name in the list" --container-image="$IMG" --container-env=A,
	bad_input "empty name" --container-name=:exec
	bad_input "flag must be auto, create, exec or no_exec" --container-name=x:start
	bad_input "no such container" --container-name=never-made
	bad_input "'pid' is not one of net, ipc, uts" --container-image="$IMG" --container-unshare=net,pid
	bad_input "empty entry in the list" --container-image="$IMG" --container-unshare=net,
	AS_USER_ENV=(BERTH_CONTAINER_REMAP_ROOT)
	export BERTH_CONTAINER_REMAP_ROOT=maybe
	bad_input "BERTH_CONTAINER_REMAP_ROOT=maybe: not a boolean" --container-image="$IMG"
	node_clean
}

@test "after the steps: no processes, mounts or keeper state left on the node" {
	run usrun -n 2 --container-image="$IMG" --container-writable sh -c 'echo x >/y; cat /y'
	[ "$status" -eq 0 ]
	node_clean
	# the runtime directory holds nothing but the lock
	[ -z "$(ls -A "$RUNTIME/1001/keepers")" ]
}
