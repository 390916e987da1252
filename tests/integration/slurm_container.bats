#!/usr/bin/env bats
# spank_berth.so on the harness's Slurm: srun --container-image as the
# unprivileged user, pyxis's behaviour, bad input, and a clean node after.

# shellcheck disable=SC2016
load ../harness/lib
load ../harness/slurm

# A busybox image with what pyxis users rely on: Env (PYTORCH_VERSION, FOO),
# WorkingDir, and a symlink that points out of the root.
torchish_spec() {
	harness_busybox_spec | python3 -c '
import json, sys
s = json.load(sys.stdin)
s["config"]["Env"] += ["FOO=image", "PYTORCH_VERSION=2.1"]
s["config"]["WorkingDir"] = "/workspace"
s["layers"][0]["entries"] += [
    {"path": "workspace", "type": "dir"},
    {"path": "evil", "type": "symlink", "target": "../../../../../tmp/berth-escape"},
]
print(json.dumps(s))'
}

setup_file() {
	require_root
	registry_start
	image_busybox busybox:latest
	image_busybox busybox:once
	local dir
	dir=$(harness_state_dir)/torchish
	torchish_spec >"$dir.json"
	mkimage "$dir.json" "$dir" >/dev/null
	image_push "$dir" "$REGISTRY/torchish:latest"
	slurm_berth_env t
	rm -rf --one-file-system "$USER_DIR/cache"
	as_user mkdir -p "$USER_DIR/cache"
	slurm_start
	IMG=$REGISTRY#busybox:latest
	export IMG
	as_user "$BERTH" import -q -o "$USER_DIR/work/bb.sqsh" "docker://$IMG" >/dev/null
}

teardown_file() {
	slurm_berth_stop
	rm -rf --one-file-system /tmp/berth-escape
}

# Lines of the slurmd log matching a pattern.
log_count() {
	grep -c -- "$1" "$SLURM_DIR/slurmd.log" || true
}

@test "registry#image: two tasks share one user namespace, one import per node" {
	run usrun -n 2 --container-image="$REGISTRY#busybox:once" sh -c 'readlink /proc/self/ns/user; id -u'
	echo "$output"
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 4 ]
	# both tasks in one user namespace, not the host's
	local ns
	ns=$(printf '%s\n' "${lines[@]}" | grep '^user:' | sort -u)
	[ "$(wc -l <<<"$ns")" -eq 1 ]
	[ "$ns" != "$(readlink /proc/self/ns/user)" ]
	[ "$(printf '%s\n' "${lines[@]}" | grep -c '^1001$')" -eq 2 ]
	[ "$(log_count "busybox:once, imported")" -eq 1 ]
	[ "$(log_count "busybox:once, ")" -eq 1 ]
}

@test "the timing line goes to Slurm's log and srun -v, not to the task's output" {
	run usrun -n 1 --container-image="$IMG" echo out
	[ "$status" -eq 0 ]
	[ "$output" = out ]
	run as_user srun -t 1 -v -n 1 --container-image="$IMG" echo out
	[ "$status" -eq 0 ]
	grep -Eq 'berth: container ready in [0-9]+ ms \(image .*busybox:latest, cached\)' <<<"$output"
	grep -q 'container ready in' "$SLURM_DIR/slurmd.log"
}

@test "docker:// form, a .sqsh path and a relative .sqsh path" {
	run usrun -n 1 --container-image="docker://$IMG" cat /bin/busybox.probe
	[ "$status" -ne 0 ] # busybox has no such file: the command ran in the image
	run usrun -n 1 --container-image="docker://$IMG" test -x /bin/busybox
	[ "$status" -eq 0 ]
	run usrun -n 1 --container-image="$USER_DIR/work/bb.sqsh" test -x /bin/busybox
	[ "$status" -eq 0 ]
	run usrun -n 1 --container-image=./bb.sqsh sh -c 'test ! -e /etc/debian_version'
	[ "$status" -eq 0 ]
}

@test "tasks on a node see the same mounts (one mount namespace)" {
	run usrun -n 2 --container-image="$IMG" sh -c '
		[ "$SLURM_PROCID" = 0 ] && echo shared >/tmp/marker
		for i in $(seq 50); do [ -e /tmp/marker ] && break; sleep 0.1; done
		cat /tmp/marker; readlink /proc/self/ns/mnt'
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(printf '%s\n' "${lines[@]}" | grep -c '^shared$')" -eq 2 ]
	[ "$(printf '%s\n' "${lines[@]}" | grep '^mnt:' | sort -u | wc -l)" -eq 1 ]
	[ ! -e /tmp/marker ] || [ "$(cat /tmp/marker)" != shared ]
}

@test "workdir: --container-workdir, the image's WorkingDir, missing one refused" {
	run usrun -n 1 --container-image="$IMG" --container-workdir=/etc pwd
	[ "$status" -eq 0 ]
	[ "$output" = /etc ]
	run usrun -n 1 --container-image="$REGISTRY#torchish" pwd
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$output" = /workspace ]
	run usrun -n 1 --container-image="$IMG" --container-workdir=/nonexistent true
	echo "$output"
	[ "$status" -ne 0 ]
	grep -q "container-workdir '/nonexistent': does not exist" <<<"$output"
}

@test "mounts: dir, file, ro, tmpfs, spaces, relative source" {
	as_user mkdir -p "$USER_DIR/work/m dir"
	as_user sh -c "echo hostfile >'$USER_DIR/work/m dir/f'"
	run usrun -n 1 --container-image="$IMG" \
		--container-mounts="$USER_DIR/work/m dir:/data,$USER_DIR/work/m dir/f:/etc/hostfile:ro,tmpfs:/scratch,./m dir:/rel:ro" \
		sh -c 'cat /data/f /etc/hostfile /rel/f; echo w >/data/new; echo x >/scratch/t && cat /scratch/t
		       echo nope >/rel/g 2>/dev/null && echo WROTE-RO; true'
	echo "$output"
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = hostfile ]
	[ "${lines[1]}" = hostfile ]
	[ "${lines[2]}" = hostfile ]
	[ "${lines[3]}" = x ]
	! grep -q WROTE-RO <<<"$output"
	[ "$(cat "$USER_DIR/work/m dir/new")" = w ]
	[ ! -e "$USER_DIR/work/m dir/g" ]
}

@test "mounts: '..' and symlink escapes are refused or stay inside the container" {
	as_user mkdir -p "$USER_DIR/work/esc"
	run usrun -n 1 --container-image="$IMG" --container-mounts="$USER_DIR/work/esc:/../../tmp/x" true
	[ "$status" -ne 0 ]
	grep -q "contains '..'" <<<"$output"
	rm -rf --one-file-system /tmp/berth-escape
	# /evil is a symlink in the image to ../../../../../tmp/berth-escape
	run usrun -n 1 --container-image="$REGISTRY#torchish" --container-mounts="$USER_DIR/work/esc:/evil/x" true
	echo "$output"
	[ ! -e /tmp/berth-escape/x ]
	[ ! -e /tmp/berth-escape ]
}

@test "remap-root: uid 0 inside, mapped to the user" {
	run usrun -n 1 --container-image="$IMG" --container-remap-root sh -c 'id -u; cat /proc/self/uid_map'
	echo "$output"
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = 0 ]
	[ "$(echo ${lines[1]})" = "0 1001 1" ]
	run usrun -n 1 --container-image="$IMG" --no-container-remap-root id -u
	echo "$output"
	[ "$output" = 1001 ]
}

@test "environment: image Env wins, --container-env keeps the job's, variables as options" {
	AS_USER_ENV=(FOO)
	export FOO=job
	run usrun -n 1 --container-image="$REGISTRY#torchish" sh -c 'echo $FOO'
	[ "$output" = image ]
	run usrun -n 1 --container-image="$REGISTRY#torchish" --container-env=FOO sh -c 'echo $FOO'
	echo "$output"
	[ "$output" = job ]
	AS_USER_ENV=(FOO BERTH_CONTAINER_ENV PYXIS_CONTAINER_IMAGE)
	export BERTH_CONTAINER_ENV=FOO PYXIS_CONTAINER_IMAGE="$REGISTRY#torchish"
	run usrun -n 1 sh -c 'echo $FOO'
	[ "$output" = job ]
	# the command line wins over the variables
	run usrun -n 1 --container-image="$IMG" --container-env=PATH sh -c 'test -e /workspace || echo plain'
	[ "$output" = plain ]
	# SLURM_* pass through; PATH is the image's
	run usrun -n 1 --container-image="$REGISTRY#torchish" sh -c 'echo $SLURM_JOB_ID; echo $PATH'
	[[ ${lines[0]} =~ ^[0-9]+$ ]]
	[ "${lines[1]}" = /usr/sbin:/usr/bin:/sbin:/bin ]
}

@test "PyTorch images get RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT per task" {
	run usrun -n 2 --container-image="$REGISTRY#torchish" sh -c \
		'echo "$SLURM_PROCID $RANK $LOCAL_RANK $WORLD_SIZE $MASTER_ADDR $MASTER_PORT $SLURM_JOB_ID"'
	echo "$output"
	[ "$status" -eq 0 ]
	local l
	for l in "${lines[@]}"; do
		read -r procid rank local world addr port job <<<"$l"
		[ "$rank" = "$procid" ]
		[ "$local" = "$procid" ]
		[ "$world" = 2 ]
		[ "$addr" = "$SLURM_NODE" ]
		[ "$port" = $((job % 4536 + 61000)) ]
	done
	run usrun -n 1 --container-image="$IMG" sh -c 'echo "${RANK-unset}"'
	[ "$output" = unset ]
}

@test "no options: nothing happens; stray container options are named" {
	run usrun -n 1 --container-workdir=/etc --container-mounts=/tmp:/x pwd
	echo "$output"
	[ "$status" -eq 0 ]
	grep -q 'ignoring --container-mounts because neither --container-image nor --container-name is set' <<<"$output"
	grep -q 'ignoring --container-workdir' <<<"$output"
	[ "${lines[-1]}" = "$USER_DIR/work" ]
}
