#!/usr/bin/env bats
# PBS: the OpenPBS hook (etc/pbs/berth_hook.py) driven as the MOM drives it,
# through the stand-in pbs module (tests/pbs/), the Torque/PBS classic
# prologue and epilogue run as the MOM runs them, and `berth pbs-wrap`.
# The MOM side runs as root; every job belongs to berthtest.

# shellcheck disable=SC2016
load ../harness/lib

MOM=$BERTH_SRCDIR/tests/pbs/mom.py
HOOK=$BERTH_SRCDIR/etc/pbs/berth_hook.py

setup_file() {
	require_root
	registry_start
	# busybox plus a marker file and an Env that tries to override PBS_JOBID:
	# the job must see the marker (it ran in the image) and its own job id.
	local dir=$BATS_FILE_TMPDIR/marked
	harness_busybox_spec | python3 -c '
import json, sys
s = json.load(sys.stdin)
s["layers"][0]["entries"].append({"path": "etc/berth-marker", "type": "file",
                                  "content": "inside the pbs test image\n"})
s["config"]["Env"].append("PBS_JOBID=from-the-image")
json.dump(s, sys.stdout)' >"$dir.json"
	mkimage "$dir.json" "$dir" >/dev/null
	image_push "$dir" "$REGISTRY/test/pbsmarked:1"
	export IMAGE=$REGISTRY/test/pbsmarked:1
	export BERTH_INSECURE_REGISTRIES=$REGISTRY
	printf '{"berth": "%s", "import_timeout": 120}\n' "$BERTH" >"$BATS_FILE_TMPDIR/hook.json"
}

teardown() {
	rm -rf --one-file-system "$RUNDIR"
}

teardown_file() {
	registry_stop_all
}

setup() {
	RESULT=$BATS_TEST_TMPDIR/result.json
	JOBID="$BATS_TEST_NUMBER.pbsserver"
	# A short runtime dir: keeper sockets live below it (sun_path limit).
	RUNDIR=$(mktemp -d /tmp/berth-pbs.XXXXXX)
	chown berthtest: "$RUNDIR"
	JOBDIR=$USER_DIR/work/job$BATS_TEST_NUMBER
	mkdir -p "$JOBDIR"
	chown berthtest: "$JOBDIR"
}

# event TYPE [JSON-FIELDS]: write an event for job $JOBID owned by berthtest
# whose -v variables are $VARS (NAME=VALUE lines) and resources $RES (JSON).
event() {
	local type=$1 extra=${2:-{\}}
	python3 - "$type" "$JOBID" "$extra" "${VARS:-}" "${RES:-{\}}" >"$BATS_TEST_TMPDIR/event.json" <<-'EOF'
		import json, sys
		typ, jobid, extra, vars_, res = sys.argv[1:]
		v = dict(l.split("=", 1) for l in vars_.splitlines() if l)
		ev = {"type": typ, "job": {"id": jobid, "euser": "berthtest", "egroup": "berthtest",
		      "Variable_List": v, "Resource_List": json.loads(res)}}
		ev.update(json.loads(extra))
		print(json.dumps(ev))
	EOF
}

# mom [--exec]: run the hook on the event as root, result in $RESULT.
# shellcheck disable=SC2120
mom() {
	python3 "$MOM" "$HOOK" "$BATS_TEST_TMPDIR/event.json" --config "$BATS_FILE_TMPDIR/hook.json" \
		--result "$RESULT" "$@"
}

field() {
	python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); v=r
for k in sys.argv[2:]: v=v[int(k)] if isinstance(v, list) else v[k]
print(json.dumps(v) if not isinstance(v, str) else v)' "$RESULT" "$@"
}

# The job's -v variables as a user sets them.
job_vars() {
	cat <<-EOF
		PBS_O_WORKDIR=$JOBDIR
		XDG_CACHE_HOME=$USER_DIR/cache
		XDG_RUNTIME_DIR=$RUNDIR
		BERTH_INSECURE_REGISTRIES=$REGISTRY
	EOF
	printf '%s\n' "$@"
}

# The job environment the MOM builds for the launch event, as JSON.
launch_env() {
	python3 - "$JOBID" "$JOBDIR" "$USER_DIR" "$REGISTRY" "$RUNDIR" "$@" <<-'EOF'
		import json, sys
		jobid, jobdir, ud, reg, rundir = sys.argv[1:6]
		env = {"HOME": "/home/berthtest", "USER": "berthtest", "LOGNAME": "berthtest",
		       "PATH": "/usr/bin:/bin", "SHELL": "/bin/sh", "PBS_JOBID": jobid,
		       "PBS_JOBNAME": "STDIN", "PBS_O_WORKDIR": jobdir, "PBS_JOBDIR": jobdir,
		       "PBS_NODEFILE": "/var/spool/pbs/aux/" + jobid, "PBS_ENVIRONMENT": "PBS_BATCH",
		       "XDG_CACHE_HOME": ud + "/cache", "XDG_RUNTIME_DIR": rundir,
		       "BERTH_INSECURE_REGISTRIES": reg}
		for a in sys.argv[6:]:
		    k, v = a.split("=", 1)
		    env[k] = v
		print(json.dumps(env))
	EOF
}

# What the test job writes: proof it ran in the image, as whom, where.
JOB_SCRIPT='cat /etc/berth-marker > "$PBS_O_WORKDIR/out"
echo "jobid=$PBS_JOBID" >> "$PBS_O_WORKDIR/out"
echo "uid=$(id -u)" >> "$PBS_O_WORKDIR/out"
echo "pwd=$(pwd)" >> "$PBS_O_WORKDIR/out"'

check_job_output() {
	cat "$JOBDIR/out"
	[ "$(sed -n 1p "$JOBDIR/out")" = "inside the pbs test image" ]
	[ "$(sed -n 2p "$JOBDIR/out")" = "jobid=$JOBID" ]
	[ "$(sed -n 3p "$JOBDIR/out")" = "uid=$(id -u berthtest)" ]
	[ "$(sed -n 4p "$JOBDIR/out")" = "pwd=$JOBDIR" ]
	[ "$(stat -c %U "$JOBDIR/out")" = berthtest ]
	# The host has no marker: the command really ran in the image.
	[ ! -e /etc/berth-marker ]
}

cached_images() {
	as_user "$BERTH" images 2>/dev/null | grep -c pbsmarked || true
}

@test "hook begin: imports the job's image as the job owner, once per node" {
	VARS=$(job_vars "BERTH_IMAGE=$IMAGE") event execjob_begin
	run mom
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(field accepted)" = true ]
	[ "$(cached_images)" -ge 1 ]
	# Nothing in the user's cache belongs to root.
	[ -z "$(find "$USER_DIR/cache" -not -user berthtest -print -quit)" ]
	[[ $(field joblog 0) == "berth: image $IMAGE ready on "* ]]
	# A second job on the node finds it cached (no second squashfs).
	run mom
	[ "$status" -eq 0 ]
	[ "$(find "$USER_DIR/cache/berth/images" -name '*.sqsh' | wc -l)" -eq 1 ]
}

@test "hook begin: an image that cannot be pulled rejects and deletes the job, naming it" {
	VARS=$(job_vars "BERTH_IMAGE=$REGISTRY/test/nosuchimage:1") event execjob_begin
	run mom
	echo "$output"
	[ "$status" -eq 3 ]
	[ "$(field accepted)" = false ]
	[ "$(field deleted)" = true ]
	msg=$(field message)
	[[ $msg == "berth: cannot import image '$REGISTRY/test/nosuchimage:1' on "*": "* ]]
	[[ $(field joblog 0) == "$msg" ]]
	[ -z "$(find "$USER_DIR/cache/berth/images" -name '*nosuch*' 2>/dev/null)" ]
}

@test "hook begin: a malformed reference is rejected with berth's one-line reason" {
	VARS=$(job_vars "BERTH_IMAGE=Bad Image::") event execjob_begin
	run mom
	[ "$status" -eq 3 ]
	msg=$(field message)
	echo "$msg"
	[[ $msg == "berth: cannot import image 'Bad Image::' on "*": berth: "* ]]
	[[ $msg != *$'\n'* ]]
}

@test "hook begin: an import that outlives import_timeout rejects instead of hanging" {
	# A registry that accepts the connection and never answers.
	local port
	port=$(harness_free_port)
	python3 -c 'import socket,sys,time
s=socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(5)
c=[]
while True: c.append(s.accept()[0])' "$port" 3>&- &
	local pid=$!
	printf '{"berth": "%s", "import_timeout": 3}\n' "$BERTH" >"$BATS_TEST_TMPDIR/hook.json"
	VARS=$(job_vars "BERTH_IMAGE=127.0.0.1:$port/slow/image:1" \
		"BERTH_INSECURE_REGISTRIES=127.0.0.1:$port") event execjob_begin
	SECONDS=0
	run python3 "$MOM" "$HOOK" "$BATS_TEST_TMPDIR/event.json" --config "$BATS_TEST_TMPDIR/hook.json" \
		--result "$BATS_TEST_TMPDIR/result.json"
	kill "$pid"
	RESULT=$BATS_TEST_TMPDIR/result.json
	echo "$output"
	[ "$status" -eq 3 ]
	((SECONDS < 30))
	[[ $(field message) == *"timed out after 3 s" ]]
}

@test "hook: jobs without a container are accepted untouched" {
	VARS=$(job_vars) event execjob_begin
	run mom
	[ "$status" -eq 0 ]
	[ "$(field joblog)" = "[]" ]
	event execjob_launch "{\"progname\": \"/bin/sh\", \"argv\": [\"-sh\"], \"env\": $(launch_env)}"
	run mom
	[ "$status" -eq 0 ]
	[ "$(field progname)" = /bin/sh ]
	[ "$(field argv)" = '["-sh"]' ]
}

@test "hook launch: the job script (on stdin) runs in the image, PBS_* kept, in its directory" {
	VARS=$(job_vars "BERTH_IMAGE=$IMAGE") event execjob_begin
	mom
	event execjob_launch "{\"progname\": \"/bin/sh\", \"argv\": [\"-sh\"], \"env\": $(launch_env "BERTH_IMAGE=$IMAGE")}"
	run mom --exec <<<"$JOB_SCRIPT"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(field progname)" = "$BERTH" ]
	[ "$(field argv)" = "[\"berth\", \"pbs-wrap\", \"--image\", \"$IMAGE\", \"--\", \"/bin/sh\"]" ]
	check_job_output
}

@test "hook launch: a job script passed by path (mom_priv/jobs/ID.SC) is bound into the container" {
	local jobs=$USER_DIR/pbs_home/mom_priv/jobs
	mkdir -p "$jobs"
	printf '%s\n' "$JOB_SCRIPT" >"$jobs/$JOBID.SC"
	chown -R berthtest: "$USER_DIR/pbs_home"
	VARS=$(job_vars "BERTH_IMAGE=$IMAGE") event execjob_begin
	mom
	event execjob_launch "{\"progname\": \"/bin/sh\", \"argv\": [\"sh\", \"$jobs/$JOBID.SC\"], \"env\": $(launch_env "BERTH_IMAGE=$IMAGE")}"
	run mom --exec </dev/null
	echo "$output"
	[ "$status" -eq 0 ]
	check_job_output
}

@test "hook launch: -l container_image=... works like BERTH_IMAGE and reaches the job" {
	RES="{\"container_image\": \"$IMAGE\"}" VARS=$(job_vars) event execjob_begin
	run mom
	[ "$status" -eq 0 ]
	RES="{\"container_image\": \"$IMAGE\"}" event execjob_launch \
		"{\"progname\": \"/bin/sh\", \"argv\": [\"-sh\"], \"env\": $(launch_env)}"
	run mom --exec <<<"$JOB_SCRIPT"'
echo "image=$BERTH_IMAGE" >> "$PBS_O_WORKDIR/out"'
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(field env BERTH_IMAGE)" = "$IMAGE" ]
	check_job_output
	[ "$(sed -n 5p "$JOBDIR/out")" = "image=$IMAGE" ]
}

@test "hook launch: BERTH_MOUNTS binds host directories (';' separates specs), ro enforced" {
	local data=$USER_DIR/data$BATS_TEST_NUMBER
	mkdir -p "$data/a" "$data/b"
	echo from-a >"$data/a/file"
	chown -R berthtest: "$data"
	VARS=$(job_vars "BERTH_IMAGE=$IMAGE") event execjob_begin
	mom
	event execjob_launch "{\"progname\": \"/bin/sh\", \"argv\": [\"-sh\"], \"env\": $(launch_env "BERTH_IMAGE=$IMAGE" "BERTH_MOUNTS=$data/a:/data/a:ro;$data/b:/data/b")}"
	run mom --exec <<<'cat /data/a/file > "$PBS_O_WORKDIR/out"
echo x > /data/a/new 2>/dev/null && echo wrote-ro >> "$PBS_O_WORKDIR/out"
echo from-b > /data/b/file'
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(cat "$JOBDIR/out")" = from-a ]
	[ "$(cat "$data/b/file")" = from-b ]
	[ ! -e "$data/a/new" ]
}

@test "hook launch: the job's exit status is the command's" {
	VARS=$(job_vars "BERTH_IMAGE=$IMAGE") event execjob_begin
	mom
	event execjob_launch "{\"progname\": \"/bin/sh\", \"argv\": [\"-sh\"], \"env\": $(launch_env "BERTH_IMAGE=$IMAGE")}"
	run mom --exec <<<'exit 7'
	[ "$status" -eq 7 ]
}

@test "hook launch: a task that already is 'berth ...' is left alone (pbsdsh berth pbs-wrap)" {
	VARS=$(job_vars "BERTH_IMAGE=$IMAGE") event execjob_launch \
		"{\"progname\": \"$BERTH\", \"argv\": [\"berth\", \"pbs-wrap\", \"hostname\"], \"env\": $(launch_env "BERTH_IMAGE=$IMAGE")}"
	run mom
	[ "$status" -eq 0 ]
	[ "$(field argv)" = '["berth", "pbs-wrap", "hostname"]' ]
}

@test "hook end: stops the job's lingering container and removes its runtime state" {
	VARS=$(job_vars "BERTH_IMAGE=$IMAGE") event execjob_begin
	mom
	event execjob_launch "{\"progname\": \"/bin/sh\", \"argv\": [\"-sh\"], \"env\": $(launch_env "BERTH_IMAGE=$IMAGE" BERTH_MOUNT_LINGER=600)}"
	run mom --exec <<<'true'
	[ "$status" -eq 0 ]
	local state
	state=$(find "$RUNDIR" -maxdepth 2 -type d -name "pbs-$BATS_TEST_NUMBER")
	echo "state: $state"
	[ -n "$state" ]
	# The keeper lingers (600 s) after the job's last process.
	run as_user env BERTH_RUNTIME_DIR="$state" "$BERTH" ps
	echo "$output"
	[[ ${lines[1]} == *" running "* ]]
	local keeper
	keeper=$(awk 'NR == 2 {print $3}' <<<"$output")
	kill -0 "$keeper"
	VARS=$(job_vars "BERTH_IMAGE=$IMAGE") event execjob_end
	run mom
	echo "$output"
	[ "$status" -eq 0 ]
	[ ! -e "$state" ]
	run ! grep -q "$state" /proc/mounts
	run ! kill -0 "$keeper"
}

@test "hook: a broken hook config rejects with a message naming the file" {
	echo '{not json' >"$BATS_TEST_TMPDIR/bad.json"
	VARS=$(job_vars "BERTH_IMAGE=$IMAGE") event execjob_begin
	run python3 "$MOM" "$HOOK" "$BATS_TEST_TMPDIR/event.json" --config "$BATS_TEST_TMPDIR/bad.json" \
		--result "$BATS_TEST_TMPDIR/result.json"
	RESULT=$BATS_TEST_TMPDIR/result.json
	[ "$status" -eq 3 ]
	[[ $(field message) == "berth hook: config '$BATS_TEST_TMPDIR/bad.json': "* ]]
}

# ---- Torque / PBS classic: prologue, job starter, epilogue -----------------

# torque_script FILE [#PBS lines...]: a job script with directives.
torque_script() {
	local f=$1
	shift
	{
		echo '#!/bin/sh'
		printf '%s\n' "$@"
		echo "$JOB_SCRIPT"
	} >"$f"
	chmod 0644 "$f"
}

# mom_run SCRIPT ARGS...: as the MOM runs prologue/epilogue: root, empty
# environment, in mom_priv/, stdin from /dev/null.
mom_run() {
	local priv=$BATS_TEST_TMPDIR/mom_priv
	mkdir -p "$priv/jobs"
	cp "$BERTH_SRCDIR/etc/pbs/prologue" "$BERTH_SRCDIR/etc/pbs/epilogue" "$priv/"
	local script=$1
	shift
	(cd "$priv" && env -i BERTH="$BERTH" "./$script" "$@" </dev/null)
}

@test "prologue: imports the image named by '#PBS -v' as the job owner (Torque argument order)" {
	local script=$BATS_TEST_TMPDIR/job.sh
	torque_script "$script" \
		"#PBS -v BERTH_IMAGE=$IMAGE,XDG_CACHE_HOME=$USER_DIR/cache,BERTH_INSECURE_REGISTRIES='$REGISTRY'" \
		"#PBS -l walltime=00:01:00"
	run mom_run prologue "$JOBID" berthtest berthtest jobname "walltime=00:01:00" batch acct "$script" "$(hostname)"
	echo "$output"
	[ "$status" -eq 0 ]
	[ -z "$output" ]
	[ "$(cached_images)" -ge 1 ]
	[ -z "$(find "$USER_DIR/cache" -not -user berthtest -print -quit)" ]
}

@test "prologue: PBS classic (3 arguments) reads mom_priv/jobs/ID.SC" {
	local priv=$BATS_TEST_TMPDIR/mom_priv
	mkdir -p "$priv/jobs"
	torque_script "$priv/jobs/$JOBID.SC" \
		"#PBS -v BERTH_IMAGE=\"$IMAGE\",XDG_CACHE_HOME=$USER_DIR/cache,BERTH_INSECURE_REGISTRIES=$REGISTRY"
	run mom_run prologue "$JOBID" berthtest berthtest
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(cached_images)" -ge 1 ]
}

@test "prologue: a job without BERTH_IMAGE passes without running berth" {
	local script=$BATS_TEST_TMPDIR/job.sh
	torque_script "$script" "#PBS -l walltime=00:01:00"
	run mom_run prologue "$JOBID" berthtest berthtest jobname "" batch acct "$script"
	[ "$status" -eq 0 ]
	[ -z "$output" ]
}

@test "prologue: an image that cannot be pulled aborts the job (exit 1) with one line naming it" {
	local script=$BATS_TEST_TMPDIR/job.sh
	torque_script "$script" \
		"#PBS -v BERTH_IMAGE=$REGISTRY/test/nosuch:1,XDG_CACHE_HOME=$USER_DIR/cache,BERTH_INSECURE_REGISTRIES=$REGISTRY"
	run mom_run prologue "$JOBID" berthtest berthtest jobname "" batch acct "$script"
	echo "$output"
	[ "$status" -eq 1 ]
	[ "${#lines[@]}" -eq 1 ]
	[[ $output == "berth prologue: job $JOBID: cannot import image '$REGISTRY/test/nosuch:1' on "*": berth: "* ]]
}

@test "prologue: refuses root jobs and unknown users" {
	local script=$BATS_TEST_TMPDIR/job.sh
	torque_script "$script" "#PBS -v BERTH_IMAGE=$IMAGE"
	run mom_run prologue "$JOBID" root root jobname "" batch acct "$script"
	[ "$status" -eq 1 ]
	[[ $output == *"refusing to run containers for root jobs"* ]]
	run mom_run prologue "$JOBID" nosuchuser nogroup jobname "" batch acct "$script"
	[ "$status" -eq 1 ]
	[[ $output == *"user 'nosuchuser' unknown"* ]]
}

@test "job starter: berth pbs-wrap runs the Torque job in the image; epilogue cleans up" {
	local script=$BATS_TEST_TMPDIR/job.sh
	torque_script "$script" \
		"#PBS -v BERTH_IMAGE=$IMAGE,XDG_CACHE_HOME=$USER_DIR/cache,XDG_RUNTIME_DIR=$RUNDIR,BERTH_INSECURE_REGISTRIES=$REGISTRY"
	run mom_run prologue "$JOBID" berthtest berthtest jobname "" batch acct "$script"
	[ "$status" -eq 0 ]
	# $job_starter: the MOM runs "starter SHELL" as the user in the job's
	# environment, the script on stdin.
	AS_USER_ENV=(PBS_JOBID PBS_O_WORKDIR BERTH_IMAGE XDG_RUNTIME_DIR)
	cd "$JOBDIR"
	PBS_JOBID=$JOBID PBS_O_WORKDIR=$JOBDIR BERTH_IMAGE=$IMAGE XDG_RUNTIME_DIR=$RUNDIR \
		BERTH_MOUNT_LINGER=600 run as_user sh -c 'cd "$PBS_O_WORKDIR" && exec "$0" pbs-wrap /bin/sh' "$BERTH" <<<"$JOB_SCRIPT"
	echo "$output"
	[ "$status" -eq 0 ]
	check_job_output
	local state
	state=$RUNDIR/berth-$(id -u berthtest)/pbs-$BATS_TEST_NUMBER
	[ -d "$state" ]
	run mom_run epilogue "$JOBID" berthtest berthtest jobname 1234 "" "" batch acct 0 "$script"
	echo "$output"
	[ "$status" -eq 0 ]
	[ ! -e "$state" ]
}

@test "pbs-wrap: without an image the command runs on the host, unchanged" {
	run as_user "$BERTH" pbs-wrap sh -c 'test -e /etc/berth-marker && echo in-image || echo on-host; exit 4'
	[ "$status" -eq 4 ]
	[ "$output" = on-host ]
	run -127 as_user "$BERTH" pbs-wrap /nonexistent/cmd
	[[ $output == "berth: pbs-wrap: /nonexistent/cmd: No such file or directory" ]]
}

@test "pbs-wrap: ranks (pbsdsh/mpiexec style) share one container per node and keep PBS_*" {
	AS_USER_ENV=(PBS_JOBID PBS_TASKNUM BERTH_IMAGE XDG_RUNTIME_DIR)
	export PBS_JOBID=$JOBID BERTH_IMAGE=$IMAGE XDG_RUNTIME_DIR=$RUNDIR BERTH_MOUNT_LINGER=600
	as_user "$BERTH" import --quiet "$IMAGE" >/dev/null
	local i
	for i in 1 2 3; do
		PBS_TASKNUM=$i as_user "$BERTH" pbs-wrap sh -c 'echo "$PBS_TASKNUM $PBS_JOBID $(cat /etc/berth-marker) $(readlink /proc/self/ns/mnt)"' \
			>"$BATS_TEST_TMPDIR/rank$i" &
	done
	wait
	cat "$BATS_TEST_TMPDIR"/rank*
	for i in 1 2 3; do
		[[ $(cat "$BATS_TEST_TMPDIR/rank$i") == "$i $JOBID inside the pbs test image mnt:"* ]]
	done
	[ "$(cut -d' ' -f7 "$BATS_TEST_TMPDIR"/rank* | sort -u | wc -l)" -eq 1 ]
	run as_user "$BERTH" pbs-wrap --cleanup "$JOBID"
	[ "$status" -eq 0 ]
	[ ! -e "$RUNDIR/berth-$(id -u berthtest)/pbs-$BATS_TEST_NUMBER" ]
}

@test "pbs-wrap: bad input gets one line and a usage exit" {
	run as_user "$BERTH" pbs-wrap
	[ "$status" -eq 2 ]
	[[ $output == "berth: pbs-wrap: missing CMD"* ]]
	run as_user "$BERTH" pbs-wrap --cleanup 1.srv true
	[ "$status" -eq 2 ]
	run as_user "$BERTH" pbs-wrap --cleanup .srv
	[ "$status" -eq 1 ]
	[[ $output == "berth: job id '.srv': not a PBS job id" ]]
	AS_USER_ENV=(PBS_JOBID)
	export BERTH_IMAGE=$IMAGE PBS_JOBID=$JOBID
	run as_user "$BERTH" pbs-wrap -w relative/dir true
	echo "$output"
	[ "$status" -eq 1 ]
	[[ $output == "berth: workdir 'relative/dir' is not an absolute path" ]]
}
