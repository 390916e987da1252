#!/usr/bin/env bats
# Slurm's native `srun --container=BUNDLE` with berth as the OCI runtime:
# the documented etc/slurm/oci.conf (paths adjusted to the test's berth and
# state root) on the harness's single-node Slurm 22.05.

# shellcheck disable=SC2016
load ../harness/lib
load ../harness/slurm

setup_file() {
	require_root
	registry_start
	local dir=$BATS_FILE_TMPDIR/marked
	harness_busybox_spec | python3 -c '
import json, sys
s = json.load(sys.stdin)
s["layers"][0]["entries"].append({"path": "etc/berth-marker", "type": "file",
                                  "content": "inside the oci test image\n"})
json.dump(s, sys.stdout)' >"$dir.json"
	mkimage "$dir.json" "$dir" >/dev/null
	image_push "$dir" "$REGISTRY/test/ocimarked:1"
	export BERTH_INSECURE_REGISTRIES=$REGISTRY
	export BUNDLE=$USER_DIR/work/slurm-bundle
	rm -rf --one-file-system "$BUNDLE"
	as_user "$BERTH" bundle "$REGISTRY/test/ocimarked:1" "$BUNDLE" >/dev/null
	# The documented oci.conf, pointed at the berth under test and a state
	# root of this run.
	export OCI_ROOT_BASE=$USER_DIR/oci
	sed -e "s|/usr/bin/berth|$BERTH|g" -e "s|/tmp/berth-oci-%u|$OCI_ROOT_BASE-%u|g" \
		"$BERTH_SRCDIR/etc/slurm/oci.conf" >"$BATS_FILE_TMPDIR/oci.conf"
	export SLURM_OCI_CONF=$BATS_FILE_TMPDIR/oci.conf
	slurm_start
}

teardown_file() {
	slurm_stop
	registry_stop_all
}

@test "oci.conf: every RunTime line of the shipped file is what Slurm 22.05 accepts" {
	grep -q '^RunTimeRun=' "$BERTH_SRCDIR/etc/slurm/oci.conf"
	for k in RunTimeQuery RunTimeKill RunTimeDelete; do
		grep -q "^$k=" "$BERTH_SRCDIR/etc/slurm/oci.conf"
	done
	# Only the patterns 22.05 knows.
	[ -z "$(grep -E '^RunTime' "$BERTH_SRCDIR/etc/slurm/oci.conf" | grep -oE '%[A-Za-z]' | grep -vE '%[bnujst]')" ]
}

@test "srun --container=BUNDLE runs the command in the image, as the user" {
	run as_user srun -n 1 -t 1 --container="$BUNDLE" sh -c 'cat /etc/berth-marker; id -u; echo "job=$SLURM_JOB_ID"'
	echo "$output"
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "inside the oci test image" ]
	[ "${lines[1]}" = "$(id -u berthtest)" ]
	[[ ${lines[2]} =~ ^job=[0-9]+$ ]]
	[ ! -e /etc/berth-marker ]
}

@test "srun --container: RunTimeDelete leaves no state behind" {
	run as_user srun -n 1 -t 1 --container="$BUNDLE" cat /etc/berth-marker
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$output" = "inside the oci test image" ]
	[ -d "$OCI_ROOT_BASE-berthtest" ]
	[ "$(stat -c %U "$OCI_ROOT_BASE-berthtest")" = berthtest ]
	# slurmstepd deletes after srun has its output: give it a moment.
	for _ in $(seq 1 50); do
		[ -z "$(find "$OCI_ROOT_BASE-berthtest" -mindepth 1 -maxdepth 1)" ] && break
		sleep 0.1
	done
	[ -z "$(find "$OCI_ROOT_BASE-berthtest" -mindepth 1 -maxdepth 1)" ]
}

@test "srun --container: Slurm 22.05 itself allows one task per node (measured fact)" {
	run as_user srun -n 2 -t 1 --container="$BUNDLE" true
	[ "$status" -ne 0 ]
	grep -q '_modify_config: unexpected number of tasks 2 > 1' "$SLURM_DIR/slurmd.log"
}

@test "srun --container: the task's exit status comes back" {
	run as_user srun -n 1 -t 1 --container="$BUNDLE" sh -c 'exit 3'
	echo "$output"
	[ "$status" -eq 3 ]
}

@test "srun --container: a command missing from the image fails the step with berth's message" {
	run -127 as_user srun -n 1 -t 1 --container="$BUNDLE" /no/such/program
	echo "$output"
	[[ $output == *"berth: '/no/such/program': command not found in the image"* ]]
}
