#!/usr/bin/env bats
# berth exec into running containers, as the unprivileged user: with --pid it
# joins the container's PID namespace (ps, /proc, kill see the container's
# processes only), without --pid the host's; exit status and signals pass.

# shellcheck disable=SC2030,SC2031,SC2016,SC2034
load ../harness/lib
load run_lib
bats_require_minimum_version 1.5.0

setup_file() {
	run_setup_images
	export BERTH_MOUNT_LINGER=0
}

# wait_exit PID: its exit status, within 10 s (a hang fails the test).
wait_exit() {
	for _ in $(seq 100); do
		kill -0 "$1" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$1" 2>/dev/null; then
		echo "process $1 did not exit" >&2
		return 99
	fi
	wait "$1"
}

@test "exec into a --pid container: its PID namespace, its /proc, exit status, kill inside" {
	as_user "$BERTH" run --pid --name px "$IMG" sleep 3001 3>&- &
	local bg=$! payload
	payload=$(wait_for 'sleep 3001')
	run as_user "$BERTH" exec px ps -o pid,comm
	echo "$output"
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 4 ]
	[[ ${lines[1]} =~ ^\ *1\ berth-init$ ]]
	[[ ${lines[2]} =~ ^\ *2\ sleep$ ]]
	[[ ${lines[3]} =~ ^\ *[0-9]+\ ps$ ]]
	run as_user "$BERTH" exec px sh -c 'readlink /proc/self/ns/pid; ls /proc | grep -c "^[0-9]"; cat /proc/2/cmdline | tr "\0" " "'
	[ "${lines[0]}" = "$(readlink "/proc/$payload/ns/pid")" ]
	[ "${lines[0]}" != "$(readlink /proc/self/ns/pid)" ]
	[ "${lines[1]}" -le 5 ]
	[ "${lines[2]}" = "sleep 3001 " ]
	# by the host PID of any process of the container: the same view
	run as_user "$BERTH" exec "$payload" cat /proc/1/comm
	[ "$output" = berth-init ]
	run as_user "$BERTH" exec px sh -c 'exit 9'
	[ "$status" -eq 9 ]
	run as_user "$BERTH" exec px sh -c 'kill -KILL $$'
	[ "$status" -eq 137 ]
	# kill in the container reaches its processes; TERM to pid 1 is passed
	# on to the payload, whose status then ends `berth run`
	run as_user "$BERTH" exec px kill -TERM 1
	[ "$status" -eq 0 ]
	wait_exit "$bg" || status=$?
	[ "$status" -eq 143 ]
	run as_user "$BERTH" exec px true
	[ "$status" -eq 1 ]
	[ "$output" = "berth: container 'px' is not running" ]
	run as_user "$BERTH" rm px
	assert_no_leftovers
}

@test "signals to berth exec reach the command in the PID namespace; its end ends the exec" {
	as_user "$BERTH" run --pid --name py "$IMG" sleep 3003 3>&- &
	local bg=$! ex out=$USER_DIR/work/exec-sig.out
	wait_for 'sleep 3003' >/dev/null
	rm -f "$out"
	as_user "$BERTH" exec py sh -c 'trap "echo usr1 >>/tmp/s" USR1; trap "echo term >>/tmp/s; cat /tmp/s; exit 4" TERM; echo ready >/tmp/s; while :; do sleep 0.1; done' >"$out" 3>&- &
	ex=$!
	for _ in $(seq 50); do as_user "$BERTH" exec py test -e /tmp/s && break; sleep 0.1; done
	local berth_exec
	berth_exec=$(wait_for "$BERTH exec py sh")
	kill -USR1 "$berth_exec"
	sleep 0.3
	kill -TERM "$berth_exec"
	wait_exit "$ex" || status=$?
	[ "$status" -eq 4 ]
	[ "$(cat "$out")" = "ready"$'\n'"usr1"$'\n'"term" ]
	# the container's pid 1 ends: every process in its namespace goes
	as_user "$BERTH" exec py sleep 3004 3>&- &
	ex=$!
	wait_for 'sleep 3004' >/dev/null
	kill -TERM "$(wait_for 'sleep 3003')"
	wait_exit "$bg" || true
	status=0
	wait_exit "$ex" || status=$?
	[ "$status" -eq 137 ]
	run as_user "$BERTH" rm py
	assert_no_leftovers
}

@test "exec into a container without --pid shares the host's PID namespace" {
	as_user "$BERTH" run --name nx "$IMG" sleep 3002 3>&- &
	local bg=$! payload
	payload=$(wait_for 'sleep 3002')
	run as_user "$BERTH" exec nx sh -c 'readlink /proc/self/ns/pid; cat /proc/'"$payload"'/cmdline | tr "\0" " "; cat /root/x 2>/dev/null; exit 3'
	[ "$status" -eq 3 ]
	[ "${lines[0]}" = "$(readlink /proc/self/ns/pid)" ]
	[ "${lines[1]}" = "sleep 3002 " ]
	run as_user "$BERTH" exec "$payload" sh -c 'echo in >/root/x; kill '"$payload"
	[ "$status" -eq 0 ]
	wait_exit "$bg" || status=$?
	[ "$status" -eq 143 ]
	run as_user "$BERTH" run nx cat /root/x
	[ "$output" = in ]
	run as_user "$BERTH" rm nx
	assert_no_leftovers
}

teardown() {
	# a failed test must not leave its payloads running
	local p
	for p in $(pgrep -u "$BERTH_TEST_USER" -f '^sleep 300[0-9]'); do kill -KILL "$p" || true; done
}
