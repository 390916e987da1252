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
	! grep -q "$state" /proc/mounts
	! kill -0 "$keeper" 2>/dev/null
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
