# shellcheck shell=bash
# Helpers for the run*.bats files: squashfs images built here (busybox-static
# plus /.berth/image.json, as imgconv writes them) and leftover checks.

# run_image NAME CONFIG_JSON [EXTRA_SETUP_SHELL]: $IMGDIR/NAME.sqsh
run_image() {
	local name=$1 cfg=$2 extra=${3:-} d
	d=$IMGDIR/$name.d
	rm -rf --one-file-system "$d"
	mkdir -p "$d"/{bin,etc,tmp,proc,sys,dev,home,root,work,.berth}
	cp "$(command -v busybox)" "$d/bin/busybox"
	for a in $("$d/bin/busybox" --list); do
		[[ $a == busybox ]] || ln -s busybox "$d/bin/$a"
	done
	printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n' >"$d/etc/passwd"
	printf 'root:x:0:\nnogroup:x:65534:\n' >"$d/etc/group"
	printf '{"reference": "test/%s:1", "manifest_digest": "sha256:0", "config": {"config": %s}}\n' \
		"$name" "$cfg" >"$d/.berth/image.json"
	if [[ -n $extra ]]; then (cd "$d" && eval "$extra"); fi
	mksquashfs "$d" "$IMGDIR/$name.sqsh" -noappend -all-root -quiet >/dev/null
	chmod 0644 "$IMGDIR/$name.sqsh"
	rm -rf --one-file-system "$d"
}

run_setup_images() {
	IMGDIR=$(harness_rundir)/img-$(basename "$BATS_TEST_FILENAME" .bats)
	export IMGDIR
	mkdir -p "$IMGDIR"
	chmod 0755 "$IMGDIR"
	run_image plain '{"Env": ["PATH=/bin", "IMG_VAR=image", "HOME=/root", "SLURM_JOB_ID=img"],
		"Cmd": ["/bin/sh", "-c", "echo default-cmd"], "WorkingDir": "/work"}' \
		'ln -s /../../../host etc/escape; ln -s ../../../../outside etc/relescape'
	run_image entry '{"Entrypoint": ["/bin/echo", "ep"], "Cmd": ["c1", "c2"]}'
	IMG=$IMGDIR/plain.sqsh
	export IMG
}

# The user's runtime dir as berth computes it (XDG_RUNTIME_DIR from as_user).
run_runtime_dir() {
	echo "$USER_DIR/run/berth-$(id -u "$BERTH_TEST_USER")"
}

# Nothing of ours may remain: keeper state, processes with our image path or
# marker in their command line, or mounts visible on the host.
# Waits up to 5 s (a keeper lingers BERTH_MOUNT_LINGER seconds).
assert_no_leftovers() {
	local marker=${1:-$IMGDIR} i keepers procs mounts
	for i in $(seq 50); do
		keepers=$(ls -A "$(run_runtime_dir)/keepers" 2>/dev/null || true)
		procs=$(pgrep -u "$BERTH_TEST_USER" -f -- "$marker" || true)
		mounts=$(grep -F -- "$USER_DIR" /proc/self/mountinfo || true)
		[[ -z $keepers && -z $procs && -z $mounts ]] && return 0
		sleep 0.1
	done
	echo "left behind: keepers='$keepers' procs='$procs' mounts='$mounts'" >&2
	[[ -n $procs ]] && ps -o pid,ppid,comm,args -p "${procs//$'\n'/,}" >&2
	return 1
}

# wait_for PATTERN: the pid of the user's process whose command line starts
# with PATTERN, once it runs.
wait_for() {
	local pid
	for _ in $(seq 100); do
		pid=$(pgrep -o -u "$BERTH_TEST_USER" -f "^$1") && { echo "$pid"; return 0; }
		sleep 0.1
	done
	return 1
}

# Stop the test user's processes whose command line matches $1, by PID
# (a payload is berth's grandchild or berth itself: $! is not its pid).
kill_user_procs() {
	local pids
	pids=$(pgrep -u "$BERTH_TEST_USER" -f -- "$1" || true)
	# shellcheck disable=SC2086 # one pid per word
	[[ -z $pids ]] || kill $pids 2>/dev/null || true
}
