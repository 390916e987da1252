#!/usr/bin/env bats
# berth run --remap-root: package managers in a Debian image (a seccomp
# filter makes chown and set*id succeed without effect), and nothing of it
# without --remap-root.

# shellcheck disable=SC2016
load ../harness/lib

setup_file() {
	registry_start
	image_debian test/debian:12
	export BERTH_INSECURE_REGISTRIES=$REGISTRY BERTH_MOUNT_LINGER=0
	DEB_IMG=$USER_DIR/work/debian.sqsh
	export DEB_IMG
	as_user "$BERTH" import -q -o "$DEB_IMG" "docker://$REGISTRY/test/debian:12" >/dev/null
	tiny_deb "$USER_DIR/work/tiny.deb"
}

teardown_file() {
	registry_stop_all
}

@test "remap-root: chown, set*id, dpkg -i and apt-get install of a local .deb succeed" {
	run as_user "$BERTH" run --remap-root --writable -v "$USER_DIR/work:/w:ro" "$DEB_IMG" sh -c '
		touch /tmp/x && chown 1:1 /tmp/x && echo chown-ok
		stat -c "%u:%g" /tmp/x
		setpriv --reuid=1 --regid=1 --clear-groups id -u
		grep Seccomp: /proc/self/status
		dpkg -i /w/tiny.deb >/dev/null && echo dpkg-ok
		cat /opt/berth-tiny/hello
		dpkg -r berth-tiny >/dev/null && apt-get install -y /w/tiny.deb >/dev/null 2>&1 && echo apt-ok
		dpkg -s berth-tiny | grep Status'
	echo "$output"
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = chown-ok ]
	# without effect: the only owner there is stays, ids do not change
	[ "${lines[1]}" = 0:0 ]
	[ "${lines[2]}" = 0 ]
	[ "$(echo ${lines[3]})" = "Seccomp: 2" ]
	[ "${lines[4]}" = dpkg-ok ]
	[ "${lines[5]}" = hello ]
	[ "${lines[6]}" = apt-ok ]
	[ "${lines[7]}" = "Status: install ok installed" ]
}

@test "without remap-root: no filter, chown and set*id fail as they do in a one-uid namespace" {
	run as_user "$BERTH" run --writable -v "$USER_DIR/work:/w:ro" "$DEB_IMG" sh -c '
		grep Seccomp: /proc/self/status
		touch /tmp/x; chown 1:1 /tmp/x || echo chown-failed
		setpriv --reuid=1 id -u 2>/dev/null || echo setuid-failed
		dpkg -i /w/tiny.deb >/dev/null 2>&1 || echo dpkg-failed'
	echo "$output"
	[ "$(echo ${lines[0]})" = "Seccomp: 0" ]
	grep -qx chown-failed <<<"$output"
	grep -qx setuid-failed <<<"$output"
	grep -qx dpkg-failed <<<"$output"
}

@test "berth exec into a remap-root container gets the filter too" {
	as_user "$BERTH" create --name rr "$DEB_IMG" >/dev/null
	as_user "$BERTH" run --remap-root rr sleep 2718 &
	local i
	for i in $(seq 50); do pgrep -u "$BERTH_TEST_USER" -f '^sleep 2718' >/dev/null && break; sleep 0.1; done
	run as_user "$BERTH" exec rr sh -c 'touch /tmp/y; chown 1:1 /tmp/y && echo chown-ok; grep Seccomp: /proc/self/status'
	echo "$output"
	# shellcheck disable=SC2046 # by PID, one per word
	kill $(pgrep -u "$BERTH_TEST_USER" -f '^sleep 2718') 2>/dev/null || true
	wait || true
	[ "${lines[0]}" = chown-ok ]
	[ "$(echo ${lines[1]})" = "Seccomp: 2" ]
	for i in $(seq 50); do as_user "$BERTH" rm rr >/dev/null 2>&1 && break; sleep 0.1; done
}
