#!/usr/bin/env bats
# berth run with mount_linger 0: no keeper, the run builds its container
# itself and becomes the payload (doc/decisions.md "Cold start without a
# keeper").  What a user sees must not change: ps and exec find the
# container, processes left in it keep the image mounted, nothing stays
# behind; and what the faster start changed: the host's /etc files are
# files of a fresh writable layer, the image is read by several threads.

# shellcheck disable=SC2030,SC2031,SC2016,SC2034
load ../harness/lib
load run_lib
bats_require_minimum_version 1.5.0

setup_file() {
	run_setup_images
	# data: four files of random bytes (several FUSE readers at once);
	# tmp/keep: a mountpoint the image has with content
	run_image data '{"Env": ["PATH=/bin"]}' \
		'mkdir -p data && for i in 1 2 3 4; do head -c 6M /dev/urandom >data/f$i; done
		 echo kept >tmp/keep'
	# Debian's layout: /etc/localtime a link into zoneinfo
	run_image tzlink '{"Env": ["PATH=/bin"]}' \
		'mkdir -p usr/share/zoneinfo/Etc && echo image-zone >usr/share/zoneinfo/Etc/UTC
		 ln -s /usr/share/zoneinfo/Etc/UTC etc/localtime'
	export BERTH_MOUNT_LINGER=0
	OUT=$(harness_rundir)/direct-out
	mkdir -p "$OUT"
	chown "$BERTH_TEST_USER:" "$OUT"
	export OUT
}

@test "no keeper: berth becomes the payload; ps lists it, exec joins it by PID, its record goes" {
	as_user "$BERTH" run "$IMG" sh -c 'echo here >/tmp/mark; exec sleep 3601' 3>&- &
	local bg=$! payload
	payload=$(wait_for 'sleep 3601')
	[ -z "$(ls -A "$(run_runtime_dir)/keepers" 2>/dev/null)" ]
	[ -z "$(pgrep -u "$BERTH_TEST_USER" -x berth-keeper)" ]
	run as_user "$BERTH" ps
	echo "$output"
	[[ $output == *" running "*" $payload "*"$IMG"* ]]
	# the same container: its private /tmp, its overlay
	run as_user "$BERTH" exec "$payload" cat /tmp/mark
	[ "$status" -eq 0 ]
	[ "$output" = here ]
	kill "$payload"
	wait "$bg" || true
	assert_no_leftovers
	run as_user "$BERTH" ps
	[[ $output != *"$IMG"* ]]
	[ -z "$(ls -A "$(run_runtime_dir)/running")" ]
}

@test "a process left behind by the payload keeps the image mounted until it ends" {
	rm -f "$OUT/late"
	# the payload exits at once; its child reads the image a second later
	run as_user "$BERTH" run -v "$OUT:/out" "$IMGDIR/data.sqsh" \
		sh -c '(sleep 1; md5sum /data/f2 >/out/late) >/dev/null 2>&1 &'
	[ "$status" -eq 0 ]
	[ ! -e "$OUT/late" ]
	for _ in $(seq 50); do [[ -s $OUT/late ]] && break; sleep 0.1; done
	[ "$(cut -d' ' -f1 "$OUT/late")" = "$(as_user "$BERTH" run "$IMGDIR/data.sqsh" md5sum /data/f2 | cut -d' ' -f1)" ]
	assert_no_leftovers "$IMGDIR/data.sqsh"
}

@test "files read at once by several processes come back intact" {
	local want got
	want=$(as_user "$BERTH" run "$IMGDIR/data.sqsh" sh -c 'for i in 1 2 3 4; do md5sum /data/f$i; done')
	got=$(as_user "$BERTH" run "$IMGDIR/data.sqsh" sh -c \
		'for i in 1 2 3 4; do md5sum /data/f$i >/tmp/m$i & done; wait; cat /tmp/m1 /tmp/m2 /tmp/m3 /tmp/m4')
	[ "$got" = "$want" ]
	# and the same bytes as the files the image was made from: compare one
	# with a fresh unsquash
	rm -rf --one-file-system "$OUT/unsq"
	unsquashfs -q -d "$OUT/unsq" "$IMGDIR/data.sqsh" /data/f3 >/dev/null
	[[ $got == *"$(md5sum <"$OUT/unsq/data/f3" | cut -d' ' -f1)  /data/f3"* ]]
	rm -rf --one-file-system "$OUT/unsq"
}

@test "a fresh writable layer: the host's hosts, resolv.conf, localtime are its own files (sed -i works)" {
	local f
	for f in hosts resolv.conf localtime; do
		[[ -f /etc/$f ]] || continue
		run as_user "$BERTH" run "$IMG" sh -c "grep /etc/$f /proc/self/mountinfo; md5sum </etc/$f"
		[ "$output" = "$(md5sum </etc/$f)" ]
	done
	run as_user "$BERTH" run "$IMG" sh -c \
		'echo "10.0.0.8 one" >>/etc/hosts && sed -i "s/10.0.0.8 one/10.0.0.8 two/" /etc/hosts && grep 10.0.0.8 /etc/hosts'
	[ "$status" -eq 0 ]
	[ "$output" = "10.0.0.8 two" ]
	! grep -q 10.0.0.8 /etc/hosts
	# read-only: bound over the image's, and read-only
	run as_user "$BERTH" run --readonly "$IMG" sh -c 'grep -c " /etc/hosts " /proc/self/mountinfo; echo x >>/etc/hosts'
	[ "$status" -ne 0 ]
	[ "${lines[0]}" = 1 ]
}

@test "an image whose /etc/localtime is a link: the container's is the host's, the zone file untouched" {
	[[ -f /etc/localtime ]] || skip "the host has no /etc/localtime"
	run as_user "$BERTH" run "$IMGDIR/tzlink.sqsh" sh -c \
		'md5sum </etc/localtime; cat /usr/share/zoneinfo/Etc/UTC'
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "$(md5sum </etc/localtime)" ]
	[ "${lines[1]}" = image-zone ]
}

@test "a mountpoint the image has with content is not hidden once its mount is removed" {
	run as_user "$BERTH" run -v umount:/tmp "$IMGDIR/data.sqsh" cat /tmp/keep
	[ "$status" -eq 0 ]
	[ "$output" = kept ]
	# and an empty one is still a plain, writable directory
	run as_user "$BERTH" run -v umount:/tmp "$IMG" sh -c 'ls -A /tmp; touch /tmp/x && echo ok'
	[ "$output" = ok ]
}
