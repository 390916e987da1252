#!/usr/bin/env bats
# berth run as the unprivileged user: output, exit codes, signals, env and
# entrypoint rules, mounts, writable/read-only, remap-root, PID and UTS
# namespaces, and that nothing is left behind.

# shellcheck disable=SC2030,SC2031,SC2016,SC2034
load ../harness/lib
load run_lib
bats_require_minimum_version 1.5.0

setup_file() {
	run_setup_images
	export BERTH_MOUNT_LINGER=0
}

@test "run prints the command's output and passes its exit status" {
	run as_user "$BERTH" run "$IMG" sh -c 'echo hello; exit 7'
	[ "$status" -eq 7 ]
	[ "$output" = hello ]
	assert_no_leftovers
}

@test "a payload killed by signal N makes berth exit 128+N" {
	run as_user "$BERTH" run "$IMG" sh -c 'kill -KILL $$'
	[ "$status" -eq 137 ]
	run as_user "$BERTH" run "$IMG" sh -c 'kill -SEGV $$'
	[ "$status" -eq 139 ]
}

# $1: extra berth run options.  The signals go to berth's own process:
# the oldest with the script on its command line (berth itself, or the
# payload once berth has exec'd into it).
signals_reach_payload() {
	local f=$USER_DIR/work/sig.out
	rm -f "$f"
	as_user "$BERTH" run "$@" -v "$USER_DIR/work:/out" "$IMG" sh -c \
		'trap "echo usr1 >>/out/sig.out" USR1; trap "echo term >>/out/sig.out; cat /bin/busybox >/dev/null && echo read-ok >>/out/sig.out; exit 3" TERM; echo ready >>/out/sig.out; while :; do sleep 0.1; done' 3>&- &
	local bg=$!
	for _ in $(seq 50); do grep -q ready "$f" 2>/dev/null && break; sleep 0.1; done
	local pid
	pid=$(pgrep -o -u "$BERTH_TEST_USER" -f -- 'echo ready >>/out/sig.out')
	kill -USR1 "$pid"
	sleep 0.3
	kill -TERM "$pid"
	wait "$bg" || status=$?
	[ "${status:-0}" -eq 3 ]
	grep -qx usr1 "$f"
	grep -qx term "$f"
	grep -qx read-ok "$f"
	assert_no_leftovers
}

@test "SIGTERM, SIGUSR1 to berth reach the payload; it exits on the mount, not after it" {
	signals_reach_payload
}

@test "berth run execs in place: the payload has berth's pid" {
	# the container shares the host's PID namespace: the payload's $$ is
	# the pid the shell started berth as
	run as_user sh -c 'echo $$; exec "$1" run "$2" sh -c "echo \$\$"' sh "$BERTH" "$IMG"
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "${lines[1]}" ]
	run as_user sh -c 'echo $$; exec "$1" run --pid "$2" sh -c "echo \$\$"' sh "$BERTH" "$IMG"
	[ "$status" -eq 0 ]
	[ "${lines[1]}" = 2 ] # berth-init's child: berth stays outside and waits
	assert_no_leftovers
}

@test "with --pid berth stays as the parent and forwards SIGTERM and SIGUSR1" {
	signals_reach_payload --pid
}

@test "SIGKILL of berth takes the payload, the mounts and the FUSE server along" {
	as_user "$BERTH" run "$IMG" sleep 3141 3>&- &
	for _ in $(seq 50); do pgrep -u "$BERTH_TEST_USER" -f '^sleep 3141' >/dev/null && break; sleep 0.1; done
	pgrep -u "$BERTH_TEST_USER" -f '^sleep 3141'
	kill -KILL "$(pgrep -o -u "$BERTH_TEST_USER" -f -- 'sleep 3141')"
	wait || true
	assert_no_leftovers 'sleep 3141'
	assert_no_leftovers
}

@test "SIGKILL of berth --pid takes the payload, the mounts and the FUSE server along" {
	as_user "$BERTH" run --pid "$IMG" sleep 3142 3>&- &
	for _ in $(seq 50); do pgrep -u "$BERTH_TEST_USER" -f '^sleep 3142' >/dev/null && break; sleep 0.1; done
	pgrep -u "$BERTH_TEST_USER" -f '^sleep 3142'
	kill -KILL "$(pgrep -u "$BERTH_TEST_USER" -f -- "berth run --pid $IMG sleep 3142" | head -1)"
	wait || true
	assert_no_leftovers 'sleep 3142'
	assert_no_leftovers
}

@test "command not found in the image exits 127 with one line" {
	run -127 as_user "$BERTH" run "$IMG" no-such-command
	[ "$output" = "berth: 'no-such-command': command not found in the image" ]
	assert_no_leftovers
}

@test "workdir: the image's by default, -w DIR, a missing one refused" {
	run as_user "$BERTH" run "$IMG" pwd
	[ "$output" = /work ]
	run as_user "$BERTH" run -w /tmp "$IMG" pwd
	[ "$output" = /tmp ]
	run as_user "$BERTH" run -w /nowhere "$IMG" pwd
	[ "$status" -eq 1 ]
	[ "$output" = "berth: workdir '/nowhere': does not exist in the container" ]
	assert_no_leftovers
}

@test "environment: image Env over the host, PATH from the image, pass-through, -e and --env-file last" {
	local ef=$USER_DIR/work/env.list
	printf '# comment\nFROM_FILE=f\n\nIMG_VAR=file\n' >"$ef"
	chmod 0644 "$ef"
	AS_USER_ENV=(IMG_VAR SLURM_JOB_ID FOO)
	IMG_VAR=host SLURM_JOB_ID=77 FOO=hostfoo run as_user "$BERTH" run "$IMG" env
	[[ $output == *"IMG_VAR=image"* ]]
	[[ $output == *"PATH=/bin"* ]]
	[[ $output == *"SLURM_JOB_ID=77"* ]]
	[[ $output == *"HOME=/home/$BERTH_TEST_USER"* ]]
	[[ $output == *"FOO=hostfoo"* ]]
	IMG_VAR=host FOO=hostfoo run as_user "$BERTH" run -e NEW=1 -e FOO --env-file "$ef" "$IMG" env
	[[ $output == *"NEW=1"* ]]
	[[ $output == *"FOO=hostfoo"* ]]
	[[ $output == *"FROM_FILE=f"* ]]
	[[ $output == *"IMG_VAR=file"* ]]
}

@test "entrypoint and cmd follow Docker's rules" {
	local e=$IMGDIR/entry.sqsh
	run as_user "$BERTH" run "$e"
	[ "$output" = "ep c1 c2" ]
	run as_user "$BERTH" run "$e" x y
	[ "$output" = "ep x y" ]
	run as_user "$BERTH" run --no-entrypoint "$e" echo plain
	[ "$output" = "plain" ]
	run as_user "$BERTH" run --entrypoint /bin/echo "$e"
	[ "$output" = "" ]
	run as_user "$BERTH" run --entrypoint /bin/echo "$e" -- a b
	[ "$output" = "a b" ]
	run as_user "$BERTH" run "$IMG"
	[ "$output" = "default-cmd" ]
}

@test "remap-root: root inside with --remap-root, the caller's uid without" {
	local uid
	uid=$(id -u "$BERTH_TEST_USER")
	run as_user "$BERTH" run --remap-root "$IMG" sh -c 'id -u; cat /proc/self/uid_map'
	[ "${lines[0]}" = 0 ]
	[[ ${lines[1]} =~ ^\ +0\ +$uid\ +1$ ]]
	run as_user "$BERTH" run --no-remap-root "$IMG" sh -c 'id -u; id -un; cat /proc/self/uid_map'
	[ "${lines[0]}" = "$uid" ]
	[ "${lines[1]}" = "$BERTH_TEST_USER" ]
	[[ ${lines[2]} =~ ^\ +$uid\ +$uid\ +1$ ]]
}

@test "writable overlay (kernel and fuse) vs read-only, for both uid maps" {
	for overlay in kernel fuse; do
		for remap in --remap-root --no-remap-root; do
			BERTH_OVERLAY=$overlay run as_user "$BERTH" run $remap "$IMG" sh -c \
				'echo changed >>/etc/passwd && touch /newfile && mkdir -p /usr/x && mount | head -1'
			echo "$overlay $remap: $output"
			[ "$status" -eq 0 ]
			[[ $output == *"$overlay"* ]] || [[ $overlay == kernel && $output == overlay* ]]
		done
	done
	run as_user "$BERTH" run --readonly "$IMG" touch /newfile
	[ "$status" -ne 0 ]
	[[ $output == *"Read-only file system"* ]]
	run as_user "$BERTH" run "$IMG" cat /newfile
	[ "$status" -ne 0 ]
	assert_no_leftovers
}

@test "binds: ro is really read-only, rw writes through, flags apply" {
	local d=$USER_DIR/work/bind
	mkdir -p "$d"
	echo host >"$d/f"
	chown -R "$BERTH_TEST_USER:" "$d"
	run as_user "$BERTH" run -v "$d:/data:ro" "$IMG" sh -c 'cat /data/f; echo x >/data/f'
	[ "$status" -ne 0 ]
	[[ $output == host*"Read-only file system"* ]]
	run as_user "$BERTH" run -v "$d:/data:ro" --remap-root "$IMG" sh -c 'mount -o remount,rw /data'
	[ "$status" -ne 0 ]
	run as_user "$BERTH" run -v "$d:/mnt/deep/data" "$IMG" sh -c 'echo new >/mnt/deep/data/f'
	[ "$status" -eq 0 ]
	[ "$(cat "$d/f")" = new ]
	run as_user "$BERTH" run -v "$d:/data:nosuid+nodev" "$IMG" sh -c 'grep " /data " /proc/self/mounts'
	[[ $output == *nosuid*nodev* ]]
	run as_user "$BERTH" run -v "$d/f:/etc/hostfile:ro" -v tmpfs:/scratch "$IMG" sh -c 'cat /etc/hostfile; grep " /scratch " /proc/self/mounts'
	[[ ${lines[0]} == new ]]
	[[ ${lines[1]} == *tmpfs* ]]
	assert_no_leftovers
}

@test "umount: removes berth's /tmp or an earlier -v mount; the root, /proc, non-mounts refused" {
	run as_user "$BERTH" run --readonly -v umount:/tmp "$IMG" sh -c 'grep -c " /tmp " /proc/self/mounts; touch /tmp/x'
	[ "$status" -ne 0 ]
	[ "${lines[0]}" = 0 ]
	[[ $output == *"Read-only file system"* ]]
	run as_user "$BERTH" run -v tmpfs:/work -v umount:/work -v umount:/sys "$IMG" sh -c 'grep -c -e " /work " -e " /sys " /proc/self/mounts; ls /sys | wc -l'
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = 0 ]
	[ "${lines[1]}" = 0 ]
	local sub
	sub=$(awk '$5 ~ "^/dev/." {print $5; exit}' /proc/self/mountinfo)
	for spec in /:"the container's root cannot be removed" /proc/:"berth needs /proc" \
		/bin:"not a mount point" /nowhere:"no such path in the container" \
		${sub:+"$sub:a host mount below a bound directory cannot be removed in a user namespace"}; do
		run as_user "$BERTH" run -v "umount:${spec%%:*}" "$IMG" true
		echo "$spec: $status: $output"
		[ "$status" -eq 1 ]
		[ "$output" = "berth: umount '${spec%%:*}': ${spec#*:}" ]
	done
	assert_no_leftovers
}

@test "mount targets through symlinks in the image land inside the container" {
	local d=$USER_DIR/work/esc
	mkdir -p "$d"
	echo inside >"$d/marker"
	chown -R "$BERTH_TEST_USER:" "$d"
	run as_user "$BERTH" run -v "$d:/etc/escape/sub" "$IMG" sh -c 'cat /host/sub/marker'
	[ "$status" -eq 0 ]
	[ "$output" = inside ]
	[ ! -e /host/sub ]
	run as_user "$BERTH" run -v "$d:/etc/relescape" "$IMG" sh -c 'cat /outside/marker'
	[ "$output" = inside ]
	[ ! -e /outside ]
	run as_user "$BERTH" run --readonly -v "$d:/etc/escape" "$IMG" true
	[ "$status" -ne 0 ]
	[[ $output == "berth: mount target '/etc/escape' does not exist in the read-only image"* ]]
}

@test "the caller is in /etc/passwd and /etc/group; hosts and resolv.conf from the host" {
	run as_user "$BERTH" run "$IMG" sh -c 'grep "^$(id -un):" /etc/passwd; cat /etc/hosts'
	[[ ${lines[0]} == "$BERTH_TEST_USER:x:$(id -u "$BERTH_TEST_USER"):"*":/home/$BERTH_TEST_USER:"* ]]
	[[ $output == *"$(head -1 /etc/hosts)"* ]]
	run as_user "$BERTH" run --readonly "$IMG" sh -c 'id -un; id -gn'
	[ "${lines[0]}" = "$BERTH_TEST_USER" ]
	run as_user "$BERTH" run "$IMG" ls "/home/$BERTH_TEST_USER"
	[ "$status" -eq 0 ]
	run as_user "$BERTH" run --no-mount-home "$IMG" ls "/home/$BERTH_TEST_USER"
	[ "$status" -ne 0 ]
}

@test "/etc/localtime, hosts and resolv.conf are the host's, byte for byte, writable or not" {
	local f want
	for f in localtime hosts resolv.conf; do
		[[ -f /etc/$f ]] || continue
		want=$(md5sum </etc/$f)
		run as_user "$BERTH" run "$IMG" sh -c "md5sum </etc/$f"
		[ "$output" = "$want" ]
		run as_user "$BERTH" run --readonly "$IMG" sh -c "md5sum </etc/$f"
		[ "$output" = "$want" ]
	done
	# a writable container can still edit them (its own copy)
	run as_user "$BERTH" run "$IMG" sh -c 'echo "10.0.0.9 extra" >>/etc/hosts && grep -c extra /etc/hosts'
	[ "$output" = 1 ]
	! grep -q '10.0.0.9 extra' /etc/hosts
}

@test "a fresh writable layer: passwd and group are real files (adduser renames over them)" {
	run as_user "$BERTH" run "$IMG" sh -c 'cp /etc/passwd /etc/passwd+ && echo "x:x:5:5::/:/bin/sh" >>/etc/passwd+ && mv /etc/passwd+ /etc/passwd && grep -c "^x:" /etc/passwd && grep -c "^$(id -un):" /etc/passwd'
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = 1 ]
	[ "${lines[1]}" = 1 ]
	# the image's /etc stays merged under the new files: its own links too
	run as_user "$BERTH" run "$IMG" sh -c 'readlink /etc/escape; readlink /etc/relescape'
	[ "${lines[0]}" = /../../../host ]
	[ "${lines[1]}" = ../../../../outside ]
}

@test "a terminal stays the caller's: the payload's stdin and stdout are the caller's tty" {
	command -v script >/dev/null || skip "no script(1)"
	run as_user script -qec "$BERTH run $IMG sh -c 'tty; test -t 0 && test -t 1 && echo both-tty; read l; echo got \$l'" /dev/null <<<"typed"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ $output == */dev/pts/[0-9]* ]]
	[[ $output == *both-tty* ]]
	[[ $output == *"got typed"* ]]
	run as_user sh -c "echo piped | $BERTH run $IMG sh -c 'test -t 0 || cat'"
	[ "$output" = piped ]
}

@test "--pid: own PID namespace with an init; --hostname: own UTS namespace" {
	run as_user "$BERTH" run --pid "$IMG" sh -c 'echo $$; ps -o pid,comm | wc -l'
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = 2 ]
	[ "${lines[1]}" -le 5 ]
	run as_user "$BERTH" run --pid "$IMG" sh -c 'sleep 100 & exit 5'
	[ "$status" -eq 5 ]
	run as_user "$BERTH" run --hostname boxy "$IMG" hostname
	[ "$output" = boxy ]
	run as_user "$BERTH" run "$IMG" hostname
	[ "$output" = "$(hostname)" ]
	assert_no_leftovers
}

@test "--unshare net,ipc,uts: loopback only, own IPC, own UTS; bad lists refused" {
	run as_user "$BERTH" run --unshare net,ipc,uts "$IMG" sh -c '
		ip -o link | wc -l; ip -o link show lo | grep -q "[<,]UP[,>]" && echo lo-up
		readlink /proc/self/ns/net; readlink /proc/self/ns/ipc; hostname'
	echo "$output"
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = 1 ]
	[ "${lines[1]}" = lo-up ]
	[ "${lines[2]}" != "$(readlink /proc/self/ns/net)" ]
	[ "${lines[3]}" != "$(readlink /proc/self/ns/ipc)" ]
	[ "${lines[4]}" = "$(hostname)" ]
	run as_user "$BERTH" run "$IMG" sh -c 'readlink /proc/self/ns/net; readlink /proc/self/ns/ipc'
	[ "${lines[0]}" = "$(readlink /proc/self/ns/net)" ]
	[ "${lines[1]}" = "$(readlink /proc/self/ns/ipc)" ]
	for bad in pid net, ""; do
		run as_user "$BERTH" run --unshare "$bad" "$IMG" true
		[ "$status" -eq 2 ]
		[ "${#lines[@]}" -eq 1 ]
		[[ $output == *"--unshare '$bad'"* ]]
	done
	assert_no_leftovers
}

@test "runs of one image share one keeper and mount while it lingers" {
	BERTH_MOUNT_LINGER=3 run as_user sh -c "$BERTH run $IMG readlink /proc/self/ns/mnt; $BERTH run $IMG readlink /proc/self/ns/mnt"
	[ "${lines[0]}" = "${lines[1]}" ]
	local first=${lines[0]}
	BERTH_MOUNT_LINGER=3 run as_user sh -c "$BERTH run --readonly $IMG readlink /proc/self/ns/mnt"
	[ "$output" != "$first" ]
	assert_no_leftovers
}

# xattrs through berth's FUSE server, read from the host through the
# payload's /proc/PID/root (the same user may look into its container).
payload_xattrs() { # IMAGE FILE
	as_user "$BERTH" run "$1" sleep 3737 3>&- &
	local pid i
	for i in $(seq 50); do pid=$(pgrep -o -u "$BERTH_TEST_USER" -f '^sleep 3737') && break; sleep 0.1; done
	run as_user python3 -c 'import os, sys
p = sys.argv[1]
try:
    print(" ".join(f"{k}={os.getxattr(p, k).decode()}" for k in sorted(os.listxattr(p))) or "none")
except OSError as e:
    print(os.strerror(e.errno))' "/proc/$pid/root$2"
	kill "$pid"
	wait || true
}

@test "the image's xattrs are readable in the container; an image without any has none" {
	run_image xattr '{}' 'echo x >etc/marked; python3 -c "import os; os.setxattr(\"etc/marked\", \"user.berth.test\", b\"yes\")"'
	unsquashfs -lls "$IMGDIR/xattr.sqsh" >/dev/null
	payload_xattrs "$IMGDIR/xattr.sqsh" /etc/marked
	[ "$output" = "user.berth.test=yes" ]
	payload_xattrs "$IMG" /bin/busybox
	[ "$output" = "Operation not supported" ]
	assert_no_leftovers 'sleep 3737'
}
