#!/usr/bin/env bats
# berth run --readonly on images that lack the mountpoints berth needs
# (scratch-built images: no /proc, /dev, /sys, /tmp, /etc, home): they are
# added for the container without writing to the image, which stays
# read-only; user mounts onto missing targets stay refused.

# shellcheck disable=SC2030,SC2031,SC2016,SC2034
load ../harness/lib
load run_lib
bats_require_minimum_version 1.5.0

setup_file() {
	run_setup_images
	export BERTH_MOUNT_LINGER=0
	# Nothing but busybox, a symlink at the top and the image config; a
	# dangling /etc/resolv.conf (as systemd-resolved images have) in a second.
	run_image scratch '{"Env": ["PATH=/bin", "IMG_VAR=scratch"]}' \
		'rm -rf proc sys dev tmp etc home root work; ln -s bin sbin'
	run_image dangling '{"Env": ["PATH=/bin"]}' \
		'rm -rf proc tmp; rm etc/group; ln -s ../run/systemd/resolve/stub-resolv.conf etc/resolv.conf; mkdir -p usr/share; echo keep >usr/share/f'
}

@test "a scratch image runs read-only: /proc, /dev, /sys, /tmp, home and /etc files are there" {
	local home=/home/$BERTH_TEST_USER
	run as_user "$BERTH" run --readonly "$IMGDIR/scratch.sqsh" sh -c '
		echo $IMG_VAR; echo "sbin=$(readlink /sbin)"; ls /.berth
		test -r /proc/self/status && echo proc
		test -c /dev/null && test -d /dev/shm && echo dev
		test -d /sys/kernel && echo sys
		touch /tmp/t && echo tmp
		id -un; echo "$HOME"; test -d "$HOME" && echo home
		wc -l </etc/hosts'
	echo "$output"
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = scratch ]
	[ "${lines[1]}" = sbin=bin ]
	[ "${lines[2]}" = image.json ]
	for w in proc dev sys tmp home; do grep -qx "$w" <<<"$output"; done
	grep -qx "$BERTH_TEST_USER" <<<"$output"
	grep -qx "$home" <<<"$output"
	[ "${lines[-1]}" -eq "$(wc -l </etc/hosts)" ]
	# the image, and what berth added to it, stay read-only
	for path in /newfile /etc/newfile /bin/newfile; do
		run as_user "$BERTH" run --readonly "$IMGDIR/scratch.sqsh" touch "$path"
		[ "$status" -ne 0 ]
		[[ $output == *"Read-only file system"* ]]
	done
	run as_user "$BERTH" run --readonly --pid "$IMGDIR/scratch.sqsh" sh -c 'echo $$; ls /proc | grep -c "^[0-9]"'
	[ "${lines[0]}" = 2 ]
	[ "${lines[1]}" -le 5 ]
	assert_no_leftovers
}

@test "read-only: a dangling /etc symlink becomes the host's file; the image's other entries stay" {
	run as_user "$BERTH" run --readonly "$IMGDIR/dangling.sqsh" sh -c '
		cat /etc/resolv.conf; echo ==; grep -c "^root:" /etc/passwd; grep "^$(id -gn):" /etc/group | cut -d: -f3
		cat /usr/share/f; test -d /proc/self && echo proc; test -d /tmp && echo tmp'
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(sed '/^==$/,$d' <<<"$output")" = "$(cat /etc/resolv.conf)" ]
	[[ $output == *$'==\n1\n'"$(id -g "$BERTH_TEST_USER")"$'\nkeep\nproc\ntmp' ]]
	assert_no_leftovers
}

@test "read-only: a user mount onto a missing target is still refused with one line" {
	local d=$USER_DIR/work/rodata
	mkdir -p "$d"
	chown "$BERTH_TEST_USER:" "$d"
	run as_user "$BERTH" run --readonly -v "$d:/data" "$IMGDIR/scratch.sqsh" true
	[ "$status" -eq 1 ]
	[ "${#lines[@]}" -eq 1 ]
	[[ $output == "berth: mount target '/data' does not exist in the read-only image"* ]]
	run as_user "$BERTH" run --readonly -v tmpfs:/scratch "$IMGDIR/scratch.sqsh" true
	[ "$status" -eq 1 ]
	[[ $output == "berth: mount target '/scratch' does not exist in the read-only image"* ]]
	# the same mounts in a writable container create their targets
	run as_user "$BERTH" run -v "$d:/data" -v tmpfs:/scratch "$IMGDIR/scratch.sqsh" sh -c 'test -d /data && grep -q " /scratch tmpfs" /proc/self/mounts && echo ok'
	[ "$output" = ok ]
	assert_no_leftovers
}

@test "read-only image with its mountpoints: home is bound, nothing of the image is mirrored" {
	run as_user "$BERTH" run --readonly "$IMG" sh -c 'ls -d "$HOME"; grep -c " / tmpfs " /proc/self/mounts; mount | grep -c "on /bin "'
	echo "$output"
	[ "${lines[0]}" = "/home/$BERTH_TEST_USER" ]
	# the root stays the image's mount; only /home (lacking the user's
	# directory) and /etc (lacking hosts, resolv.conf) were covered
	[ "${lines[1]}" = 0 ]
	[ "${lines[2]}" = 0 ]
	run as_user "$BERTH" run --readonly --no-mount-home "$IMG" ls "/home/$BERTH_TEST_USER"
	[ "$status" -ne 0 ]
}
