#!/usr/bin/env bats
# Bad input to berth run/create/exec/rm: one clear line naming the input,
# a non-zero exit, and nothing left behind.

# shellcheck disable=SC2030,SC2031,SC2016,SC2034
load ../harness/lib
load run_lib
bats_require_minimum_version 1.5.0

setup_file() {
	run_setup_images
	export BERTH_MOUNT_LINGER=0
	head -c 100000 /dev/urandom >"$IMGDIR/corrupt.sqsh"
	chmod 0644 "$IMGDIR/corrupt.sqsh"
}

one_line() {
	echo "status $status: $output"
	[ "$status" -ne 0 ]
	[ "${#lines[@]}" -eq 1 ]
	[[ ${lines[0]} == "berth: "* ]]
}

@test "missing .sqsh file" {
	run as_user "$BERTH" run "$IMGDIR/missing.sqsh" true
	one_line
	[[ $output == *"'$IMGDIR/missing.sqsh'"*"No such file"* ]]
}

@test "corrupt .sqsh file" {
	run as_user "$BERTH" run "$IMGDIR/corrupt.sqsh" true
	one_line
	[[ $output == *"'$IMGDIR/corrupt.sqsh'"* ]]
	assert_no_leftovers
}

@test "unknown named container for exec and rm" {
	run as_user "$BERTH" exec nosuch true
	one_line
	[[ $output == *"'nosuch'"* ]]
	run as_user "$BERTH" rm nosuch
	one_line
	[[ $output == *"'nosuch'"* ]]
}

@test "malformed mount specs" {
	for spec in "" ":" "/tmp:" "/tmp:rel" "/tmp:/x:bogus" "/tmp:/x:ro+rw" "/tmp,"; do
		run as_user "$BERTH" run -v "$spec" "$IMG" true
		one_line
		[[ $output == *"mount '$spec'"* ]]
	done
}

@test "malformed env specs and env files" {
	for spec in "" "=x" "A B=1"; do
		run as_user "$BERTH" run -e "$spec" "$IMG" true
		one_line
		[[ $output == *"'$spec'"* ]]
	done
	run as_user "$BERTH" run --env-file /nonexistent "$IMG" true
	one_line
	[[ $output == *"'/nonexistent'"* ]]
}

@test "mount source missing" {
	run as_user "$BERTH" run -v /no/such/dir:/x "$IMG" true
	one_line
	[[ $output == *"mount source '/no/such/dir'"*"No such file"* ]]
	assert_no_leftovers
}

@test "missing target in a read-only image" {
	run as_user "$BERTH" run --readonly -v /tmp:/not/there "$IMG" true
	one_line
	[[ $output == *"'/not/there'"*"read-only"* ]]
	assert_no_leftovers
}

@test "/dev/fuse unusable points at berth doctor" {
	local blocker=$IMGDIR/fuse-blocker
	: >"$blocker"
	chmod 0000 "$blocker"
	AS_USER_WRAP=(unshare --mount --propagation private -- sh -c 'mount --bind "$0" /dev/fuse && exec "$@"' "$blocker")
	run as_user "$BERTH" run "$IMG" true
	one_line
	[[ $output == *"/dev/fuse"*"berth doctor"* ]]
	assert_no_leftovers
}

# A user namespace (all ids mapped, so the test user exists in it) whose
# user.max_user_namespaces is 0: berth, run inside it, cannot make its own.
# Made as root, changing nothing outside it.  Python for want of a tool that
# maps a range without /etc/subuid (unshare --map-users runs newuidmap).
NO_USERNS_PY='
import ctypes, os, sys
go, ready = os.pipe(), os.pipe()
pid = os.fork()
if pid == 0:
    if ctypes.CDLL(None, use_errno=True).unshare(0x10000000) != 0:
        os._exit(90)
    os.write(ready[1], b"u")
    os.read(go[0], 1)
    with open("/proc/sys/user/max_user_namespaces", "w") as f:
        f.write("0")
    os.execvp(sys.argv[1], sys.argv[1:])
os.read(ready[0], 1)
for m in ("uid_map", "gid_map"):
    with open("/proc/%d/%s" % (pid, m), "w") as f:
        f.write("0 0 4294967295")
os.write(go[1], b"g")
sys.exit(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
'

@test "user namespaces disabled point at berth doctor" {
	[[ $(id -u) == 0 ]] || skip "needs root to make a user namespace with the limit"
	AS_USER_WRAP=(python3 -c "$NO_USERNS_PY")
	run as_user sh -c 'cat /proc/sys/user/max_user_namespaces; id -un'
	[ "$output" = "0"$'\n'"$BERTH_TEST_USER" ]
	run as_user "$BERTH" run "$IMG" true
	one_line
	[[ $output == *"create user namespace: disabled or at its limit"*"berth doctor"* ]]
	assert_no_leftovers
}

@test "a SIGKILLed keeper's state is removed by the next berth call" {
	BERTH_MOUNT_LINGER=600 run as_user "$BERTH" run "$IMG" true
	[ "$status" -eq 0 ]
	local keeper
	keeper=$(as_user "$BERTH" ps | awk 'NR == 2 {print $3}')
	[[ $keeper =~ ^[0-9]+$ ]]
	[ -n "$(ls -A "$(run_runtime_dir)/keepers")" ]
	kill -KILL "$keeper"
	for _ in $(seq 50); do kill -0 "$keeper" 2>/dev/null || break; sleep 0.1; done
	[ -n "$(ls -A "$(run_runtime_dir)/keepers")" ]
	run as_user "$BERTH" ps
	[ "${#lines[@]}" -eq 1 ]
	[ -z "$(ls -A "$(run_runtime_dir)/keepers")" ]
	assert_no_leftovers
}

@test "named container: create, persistence across runs, exec into it, ps, rm" {
	run as_user "$BERTH" create --name box "$IMG"
	[ "$status" -eq 0 ]
	run as_user "$BERTH" run box sh -c 'echo kept >/root/state'
	[ "$status" -eq 0 ]
	run as_user "$BERTH" run box cat /root/state
	[ "$output" = kept ]
	run as_user "$BERTH" ps
	[[ $output == *box*stopped* ]]
	as_user "$BERTH" run box sleep 2718 3>&- >/dev/null &
	for _ in $(seq 50); do pgrep -u "$BERTH_TEST_USER" -f '^sleep 2718' >/dev/null && break; sleep 0.1; done
	run as_user "$BERTH" exec box cat /root/state
	[ "$output" = kept ]
	run as_user "$BERTH" exec "$(pgrep -u "$BERTH_TEST_USER" -f '^sleep 2718')" sh -c 'echo $HOME; ls /root'
	[[ $output == *state* ]]
	run as_user "$BERTH" ps
	[[ $output == *box*running* ]]
	run as_user "$BERTH" rm box
	one_line
	[[ $output == *"'box' is running"* ]]
	kill_user_procs '^sleep 2718'
	wait || true
	assert_no_leftovers
	run as_user "$BERTH" run box sh -c 'rm /bin/wc; echo added >/added'
	run as_user "$BERTH" export box "$USER_DIR/work/box.sqsh"
	[ "$status" -eq 0 ]
	run as_user "$BERTH" run "$USER_DIR/work/box.sqsh" sh -c 'cat /root/state /added; test ! -e /bin/wc && echo wc-gone; ls /proc | wc -l'
	[ "${lines[0]}" = kept ]
	[ "${lines[1]}" = added ]
	[ "${lines[2]}" = wc-gone ]
	unsquashfs -l "$USER_DIR/work/box.sqsh" | grep -q '/.berth/image.json'
	! unsquashfs -l "$USER_DIR/work/box.sqsh" | grep -q 'squashfs-root/proc/'
	run as_user "$BERTH" rm box
	[ "$status" -eq 0 ]
	[ ! -e "$(run_runtime_dir)/containers/box" ]
	run as_user "$BERTH" export box "$USER_DIR/work/gone.sqsh"
	one_line
	[ ! -e "$USER_DIR/work/gone.sqsh" ]
	run as_user "$BERTH" run --name tmpbox --rm "$IMG" sh -c 'echo hi >/x; cat /x'
	[ "$output" = hi ]
	[ ! -e "$(run_runtime_dir)/containers/tmpbox" ]
	run as_user "$BERTH" exec box true
	one_line
}

@test "exec into a process that is not in a container is refused" {
	run as_user "$BERTH" exec $$ true
	one_line
	run as_user "$BERTH" exec 999999999 true
	one_line
}

teardown() {
	# a failed test must not leave its background payload running
	kill_user_procs '^sleep 2718'
}
