# shellcheck shell=bash
# Helpers for berth's integration tests (bats).  Load with:  load ../harness/lib
#
#   $BERTH                  the built berth binary, copied where berthtest can run it
#   as_user CMD...          run CMD as the unprivileged user berthtest (clean env)
#   AS_USER_ENV=(VAR ...)   extra variables as_user passes through (BERTH_* always pass)
#   AS_USER_WRAP=(CMD ...)  root-side prefix for as_user (e.g. unshare --mount ...)
#   $USER_DIR               per-test-file directory owned by berthtest
#   require_root, skip_unless CMD   skip, or fail with BERTH_TESTS_MUST_WORK=1
#   registry_start          plain-HTTP registry; exports REGISTRY=127.0.0.1:PORT
#   registry_start_auth     htpasswd registry; exports REGISTRY_AUTH, REGISTRY_USER, REGISTRY_PASS
#   registry_stop_all       stop every registry this file started (teardown_file)
#   image_busybox REPO:TAG [REGISTRY]   build a busybox-static image and push it
#   image_push DIR REF      push the OCI layout DIR (tag "latest") to docker://REF
#   mkimage SPEC DIR [ARGS] run tests/harness/mkimage.py
#   image_edgecases, image_zstd, image_multiarch, image_debian, treelist:
#                           see tests/harness/images.bash
#
# Every process the harness starts is recorded by PID and stopped by PID.

# `run !` and `run -N` need bats >= 1.5; saying so silences bats' BW02 warning.
if declare -F bats_require_minimum_version >/dev/null; then
	bats_require_minimum_version 1.5.0
fi

HARNESS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BERTH_SRCDIR=$(cd "$HARNESS_DIR/../.." && pwd)
export HARNESS_DIR BERTH_SRCDIR
: "${BERTH_TEST_USER:=berthtest}"
: "${BERTH_TESTS_ROOT:=/var/tmp/berth-tests}"
export BERTH_TEST_USER BERTH_TESTS_ROOT

# Fail the test with a message on stderr (bats shows it).
harness_die() {
	echo "harness: $*" >&2
	return 1
}

# skip, unless BERTH_TESTS_MUST_WORK=1 (CI on a complete machine), where a
# missing prerequisite is a failure: nothing may silently go untested.
harness_skip() {
	if [[ ${BERTH_TESTS_MUST_WORK:-0} == 1 ]]; then
		echo "harness: cannot skip with BERTH_TESTS_MUST_WORK=1: $*" >&2
		return 1
	fi
	skip "$*"
}

require_root() {
	[[ $(id -u) == 0 ]] || harness_skip "needs root"
}

skip_unless() {
	local c
	for c in "$@"; do
		command -v "$c" >/dev/null 2>&1 || harness_skip "needs $c"
	done
}

# A directory of this test run that berthtest can traverse.  tests/run creates
# it and removes it at the end; a bare `bats FILE` gets one per bats process.
harness_rundir() {
	if [[ -z ${BERTH_TESTS_RUNDIR:-} ]]; then
		BERTH_TESTS_RUNDIR=$BERTH_TESTS_ROOT/adhoc-${BATS_ROOT_PID:-$$}
		export BERTH_TESTS_RUNDIR
	fi
	if [[ ! -d $BERTH_TESTS_RUNDIR ]]; then
		mkdir -p "$BERTH_TESTS_RUNDIR"
		chmod 0755 "$BERTH_TESTS_ROOT" "$BERTH_TESTS_RUNDIR"
		harness_prune_adhoc
	fi
	echo "$BERTH_TESTS_RUNDIR"
}

# Remove run dirs of bats processes that are gone (a bare `bats` run cannot
# clean up after itself).  Never crosses into a mount a dead test left behind.
harness_prune_adhoc() {
	local d pid
	for d in "$BERTH_TESTS_ROOT"/adhoc-*; do
		[[ -d $d ]] || continue
		pid=${d##*/adhoc-}
		[[ $pid =~ ^[0-9]+$ ]] || continue
		kill -0 "$pid" 2>/dev/null && continue
		rm -rf --one-file-system "$d" 2>/dev/null || true
	done
}

# $BERTH: the binary under test.  tests/run sets it; otherwise the newest
# build found in the source tree is copied into the run dir, because the
# source tree itself may not be readable by berthtest.
harness_find_berth() {
	local cand src="" dir
	[[ -n ${BERTH:-} && -x $BERTH ]] && return 0
	for cand in "${BERTH_BUILDDIR:-}/berth" "$BERTH_SRCDIR/build/berth" "$BERTH_SRCDIR/berth"; do
		if [[ -x $cand && ( -z $src || $cand -nt $src ) ]]; then
			src=$cand
		fi
	done
	[[ -n $src ]] || harness_die "no built berth found (build first, or set BERTH)" || return 1
	dir=$(harness_rundir)/bin
	mkdir -p "$dir"
	chmod 0755 "$dir"
	# berth-image (the image side) next to it: berth looks there first.
	local f
	for f in berth berth-image; do
		if [[ ! -x $dir/$f || ${src%/berth}/$f -nt $dir/$f ]]; then
			cp "${src%/berth}/$f" "$dir/$f.tmp.$$" && mv -f "$dir/$f.tmp.$$" "$dir/$f"
			chmod 0755 "$dir/$f"
		fi
	done
	BERTH=$dir/berth
	export BERTH
}

# Per-test-file directory owned by berthtest, with the user's cache and runtime
# dirs inside it, so test files (and concurrent runs) never share state.
harness_user_dir() {
	local base
	base=$(basename "${BATS_TEST_FILENAME:-adhoc}" .bats)
	USER_DIR=$(harness_rundir)/u/$base
	if [[ ! -d $USER_DIR ]]; then
		mkdir -p "$USER_DIR/cache" "$USER_DIR/run" "$USER_DIR/work"
		chmod 0755 "$(harness_rundir)/u"
		if [[ $(id -u) == 0 ]]; then
			chown -R "$BERTH_TEST_USER:" "$USER_DIR"
		fi
		chmod 0700 "$USER_DIR/run"
	fi
	export USER_DIR
}

# as_user CMD...: CMD as berthtest, clean environment: HOME, USER, LOGNAME,
# PATH, LANG, XDG_CACHE_HOME/XDG_RUNTIME_DIR (per test file), every exported
# BERTH_* variable, SLURM_CONF, and the variables named in the array AS_USER_ENV.
# Runs in $USER_DIR/work.  When not root, runs CMD as the current user.
# As root, the array AS_USER_WRAP (if set) is a command prefix run as root
# before dropping privileges, e.g. an `unshare --mount` that changes the
# user's view of the host without touching it for anyone else.
as_user() {
	local -a env
	local v home user=$BERTH_TEST_USER
	harness_user_dir
	[[ $(id -u) == 0 ]] || user=$(id -un)
	home=$(getent passwd "$user" | cut -d: -f6)
	env=(HOME="${home:-/home/$user}" USER="$user" LOGNAME="$user"
		PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin LANG=C.UTF-8
		XDG_CACHE_HOME="$USER_DIR/cache" XDG_RUNTIME_DIR="$USER_DIR/run")
	while IFS= read -r v; do
		env+=("$v=${!v}")
	done < <(compgen -e | grep -E '^BERTH_' || true)
	for v in SLURM_CONF "${AS_USER_ENV[@]}"; do
		[[ -n ${!v+set} ]] && env+=("$v=${!v}")
	done
	if [[ $(id -u) != 0 ]]; then
		(cd "$USER_DIR/work" && env -i "${env[@]}" "$@")
		return
	fi
	(cd "$USER_DIR/work" && "${AS_USER_WRAP[@]}" setpriv --reuid="$BERTH_TEST_USER" --regid="$BERTH_TEST_USER" \
		--init-groups -- env -i "${env[@]}" "$@")
}

# ---- registries -----------------------------------------------------------

# A TCP port nobody listens on.  Random, so concurrent runs rarely collide;
# registry_start retries when the registry fails to bind anyway.
harness_free_port() {
	local port
	local hex
	for _ in $(seq 1 50); do
		port=$((20000 + RANDOM % 40000))
		printf -v hex ':%04X ' "$port"
		# Column 2 of /proc/net/tcp* is ADDR:PORT (hex) of every socket.
		if ! awk '{print $2 " "}' /proc/net/tcp /proc/net/tcp6 2>/dev/null | grep -q "$hex"; then
			echo "$port"
			return 0
		fi
	done
	harness_die "no free port found"
}

harness_state_dir() {
	local d=${BATS_FILE_TMPDIR:-${BATS_TMPDIR:-/tmp}/berth-harness-$$}
	mkdir -p "$d"
	echo "$d"
}

# Wait until URL answers with one of the expected HTTP codes (default 200 401).
harness_wait_http() {
	local url=$1 pid=$2 code
	for _ in $(seq 1 100); do
		code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url" 2>/dev/null) || true
		[[ $code == 200 || $code == 401 ]] && return 0
		kill -0 "$pid" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

# harness_registry_run NAME [HTPASSWD]: start one docker-registry, print its port.
harness_registry_run() {
	local name=$1 htpasswd=${2:-} dir port pid
	dir=$(harness_state_dir)/registry-$name
	mkdir -p "$dir/data"
	for _ in 1 2 3 4 5; do
		port=$(harness_free_port) || return 1
		{
			echo "version: 0.1"
			echo "log: {level: warn, accesslog: {disabled: true}}"
			echo "storage:"
			echo "  filesystem: {rootdirectory: $dir/data}"
			echo "  delete: {enabled: true}"
			echo "http:"
			echo "  addr: 127.0.0.1:$port"
			if [[ -n $htpasswd ]]; then
				echo "auth:"
				echo "  htpasswd: {realm: berth-test, path: $htpasswd}"
			fi
		} >"$dir/config.yml"
		# fd 3 closed: bats waits for it; the registry must not hold it.
		docker-registry serve "$dir/config.yml" </dev/null >>"$dir/log" 2>&1 3>&- &
		pid=$!
		echo "$pid" >>"$(harness_state_dir)/pids"
		if harness_wait_http "http://127.0.0.1:$port/v2/" "$pid"; then
			echo "$port"
			return 0
		fi
		harness_kill_pid "$pid"
	done
	harness_die "registry $name did not start; log: $(tail -n 5 "$dir/log")"
}

harness_kill_pid() {
	local pid=$1
	kill "$pid" 2>/dev/null || return 0
	for _ in $(seq 1 50); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	kill -9 "$pid" 2>/dev/null || true
}

registry_start() {
	local port
	skip_unless docker-registry skopeo curl || return 1
	port=$(harness_registry_run plain) || return 1
	REGISTRY=127.0.0.1:$port
	export REGISTRY
}

registry_start_auth() {
	local port dir
	skip_unless docker-registry skopeo curl htpasswd || return 1
	dir=$(harness_state_dir)
	REGISTRY_USER=berthuser
	REGISTRY_PASS=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
	htpasswd -Bbn "$REGISTRY_USER" "$REGISTRY_PASS" >"$dir/htpasswd" 2>/dev/null ||
		harness_die "htpasswd failed" || return 1
	port=$(harness_registry_run auth "$dir/htpasswd") || return 1
	REGISTRY_AUTH=127.0.0.1:$port
	export REGISTRY_AUTH REGISTRY_USER REGISTRY_PASS
}

registry_stop_all() {
	local f pid
	f=$(harness_state_dir)/pids
	[[ -f $f ]] || return 0
	while read -r pid; do
		harness_kill_pid "$pid"
	done <"$f"
	rm -f "$f"
}

# ---- images ---------------------------------------------------------------

mkimage() {
	python3 "$HARNESS_DIR/mkimage.py" "$@"
}

# image_push DIR REF: push the OCI layout DIR (ref name "latest") to REF
# (HOST:PORT/REPO:TAG); credentials are used when HOST is $REGISTRY_AUTH.
image_push() {
	local dir=$1 ref=$2
	local -a creds=()
	if [[ -n ${REGISTRY_AUTH:-} && $ref == "$REGISTRY_AUTH"/* ]]; then
		creds=(--dest-creds "$REGISTRY_USER:$REGISTRY_PASS")
	fi
	skopeo copy --quiet --all --dest-tls-verify=false "${creds[@]}" \
		"oci:$dir:latest" "docker://$ref" >&2
}

# The JSON spec of a busybox-static image: /bin/busybox plus every applet as a
# symlink, a passwd/group, and the usual top-level dirs.
harness_busybox_spec() {
	python3 - "$(command -v busybox)" <<-'EOF'
		import json, subprocess, sys
		bb = sys.argv[1]
		entries = [{"path": d, "type": "dir"} for d in
		           ("bin", "sbin", "usr", "usr/bin", "usr/sbin", "etc", "root",
		            "home", "proc", "sys", "dev", "var", "run")]
		entries.append({"path": "tmp", "type": "dir", "mode": "1777"})
		entries.append({"path": "bin/busybox", "type": "file", "source": bb, "mode": "0755"})
		apps = subprocess.run([bb, "--list-full"], stdout=subprocess.PIPE,
		                      check=True, text=True).stdout.split()
		for a in sorted(set(apps)):
		    if a != "bin/busybox":
		        entries.append({"path": a, "type": "symlink", "target": "/bin/busybox"})
		entries.append({"path": "etc/passwd", "type": "file",
		                "content": "root:x:0:0:root:/root:/bin/sh\n"
		                           "nobody:x:65534:65534:nobody:/:/bin/false\n"})
		entries.append({"path": "etc/group", "type": "file",
		                "content": "root:x:0:\nnogroup:x:65534:\n"})
		print(json.dumps({"architecture": "amd64", "os": "linux",
		                  "config": {"Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
		                             "Cmd": ["sh"], "WorkingDir": "/"},
		                  "layers": [{"entries": entries}]}))
	EOF
}

# image_busybox REPO:TAG [REGISTRY]: build (once per test file) and push.
image_busybox() {
	local ref=$1 reg=${2:-${REGISTRY:-}} dir
	[[ -n $reg ]] || harness_die "image_busybox: no registry (call registry_start)" || return 1
	skip_unless busybox skopeo || return 1
	dir=$(harness_state_dir)/busybox-oci
	if [[ ! -f $dir/index.json ]]; then
		harness_busybox_spec >"$dir.json" || return 1
		mkimage "$dir.json" "$dir" >/dev/null || return 1
	fi
	image_push "$dir" "$reg/$ref"
}

# shellcheck source=tests/harness/images.bash
source "$HARNESS_DIR/images.bash"

harness_rundir >/dev/null
harness_find_berth || true
harness_user_dir
