#!/usr/bin/env bats
# spank_berth.so: image entrypoints with pyxis's semantics.  The entrypoint
# runs once per node and step when the container starts; what it exports
# reaches every task, what it writes stays in the container; its output is
# hidden unless --container-entrypoint-log (or it fails).

# shellcheck disable=SC2016
load ../harness/lib
load ../harness/slurm

# entrypoint_image NAME SCRIPT: busybox with /entry.sh as Entrypoint.
entrypoint_image() {
	local name=$1 script=$2 dir
	dir=$(harness_state_dir)/$name
	harness_busybox_spec | ENTRY=$script python3 -c '
import json, os, sys
s = json.load(sys.stdin)
s["config"]["Entrypoint"] = ["/entry.sh"]
s["config"]["Cmd"] = ["echo", "image-cmd"]
s["config"]["Env"] += ["FOO=image"]
s["layers"][0]["entries"].append(
    {"path": "entry.sh", "type": "file", "mode": "0755", "content": os.environ["ENTRY"]})
print(json.dumps(s))' >"$dir.json"
	mkimage "$dir.json" "$dir" >/dev/null
	image_push "$dir" "$REGISTRY/$name:latest"
}

setup_file() {
	require_root
	registry_start
	image_busybox busybox:latest
	# the Docker convention: prepare, then exec "$@"
	entrypoint_image entry '#!/bin/sh
echo entrypoint says hello
echo entrypoint to stderr >&2
export FROM_ENTRY="yes it ran" PATH=/opt/bin:$PATH
unset FOO
echo ran >>/var/entry-ran
exec "$@"
'
	# runs its command as a child, then goes on; starts a "daemon"
	entrypoint_image entrychild '#!/bin/sh
export FROM_ENTRY=child
sleep 2718 &
"$@"
sleep 2719
'
	# never runs its command
	entrypoint_image entryfail '#!/bin/sh
echo cannot set up the container
exit 3
'
	slurm_berth_env e
	slurm_start
	IMG=$REGISTRY#busybox:latest
	export IMG
	for i in entry entrychild entryfail; do
		as_user srun -t 1 -n 1 --container-image="$REGISTRY#$i" true
	done
}

teardown_file() {
	slurm_berth_stop
}

@test "--container-entrypoint: runs once per node, its exports reach every task, output hidden" {
	AS_USER_ENV=(FOO)
	export FOO=job
	run usrun -n 2 --container-image="$REGISTRY#entry" --container-entrypoint --container-writable \
		sh -c 'echo "$SLURM_PROCID|$FROM_ENTRY|$PATH|${FOO-unset}|$(cat /var/entry-ran | wc -l)"'
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(printf '%s\n' "${lines[@]}" | sort | tr '\n' ' ')" = \
		"0|yes it ran|/opt/bin:/usr/sbin:/usr/bin:/sbin:/bin|unset|1 1|yes it ran|/opt/bin:/usr/sbin:/usr/bin:/sbin:/bin|unset|1 " ]
	# the entrypoint's output is not the tasks'
	! grep -q 'entrypoint says hello' <<<"$output"
	# the task's command runs, not the image's Cmd, not through the entrypoint
	! grep -q image-cmd <<<"$output"
}

@test "--container-entrypoint-log shows the entrypoint's output; --container-env names win" {
	AS_USER_ENV=(FROM_ENTRY)
	export FROM_ENTRY=job
	run usrun -n 1 --container-image="$REGISTRY#entry" --container-entrypoint \
		--container-entrypoint-log --container-env=FROM_ENTRY sh -c 'echo "task $FROM_ENTRY"'
	echo "$output"
	[ "$status" -eq 0 ]
	grep -qx 'entrypoint says hello' <<<"$output"
	grep -qx 'entrypoint to stderr' <<<"$output"
	grep -qx 'task job' <<<"$output"
}

@test "off by default (execute_entrypoint=0); plugstack execute_entrypoint=1 and --no-container-entrypoint" {
	run usrun -n 1 --container-image="$REGISTRY#entry" sh -c 'echo "${FROM_ENTRY-none}|$FOO"'
	[ "$output" = "none|image" ]
	local conf=$SLURM_DIR/plugstack.conf
	cp "$conf" "$conf.orig"
	sed -i 's/$/ execute_entrypoint=1/' "$conf"
	run usrun -n 1 --container-image="$REGISTRY#entry" sh -c 'echo "${FROM_ENTRY-none}"'
	local on=$output
	run usrun -n 1 --container-image="$REGISTRY#entry" --no-container-entrypoint \
		sh -c 'echo "${FROM_ENTRY-none}"'
	local off=$output
	AS_USER_ENV=(PYXIS_CONTAINER_ENTRYPOINT)
	export PYXIS_CONTAINER_ENTRYPOINT=0
	run usrun -n 1 --container-image="$REGISTRY#entry" sh -c 'echo "${FROM_ENTRY-none}"'
	local env_off=$output
	mv "$conf.orig" "$conf"
	[ "$on" = "yes it ran" ]
	[ "$off" = none ]
	[ "$env_off" = none ]
}

@test "an entrypoint that runs its command as a child; an image without entrypoint" {
	run usrun -n 1 --container-image="$REGISTRY#entrychild" --container-entrypoint \
		sh -c 'echo "$FROM_ENTRY"'
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$output" = child ]
	# what the entrypoint left running is gone with it
	! pgrep -u berthtest -f '^sleep 271[89]'
	run usrun -n 1 --container-image="$IMG" --container-entrypoint echo plain
	[ "$status" -eq 0 ]
	[ "$output" = plain ]
}

@test "an entrypoint that fails: the step fails, its output and the way out are shown" {
	run usrun -n 2 --container-image="$REGISTRY#entryfail" --container-entrypoint touch /ran
	echo "$output"
	[ "$status" -ne 0 ]
	grep -q "the image's entrypoint '/entry.sh' exited with status 3 before it ran its command" <<<"$output"
	grep -q -- "--no-container-entrypoint skips it" <<<"$output"
	grep -q "entrypoint: cannot set up the container" <<<"$output"
	# reported once per node, not once per task
	[ "$(grep -c 'exited with status 3' <<<"$output")" -eq 1 ]
	run usrun -n 1 --container-image="$REGISTRY#entryfail" --no-container-entrypoint echo fine
	[ "$output" = fine ]
}
