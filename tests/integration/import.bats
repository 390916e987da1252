#!/usr/bin/env bats
# berth import / images / inspect / rmi / cache prune, as the unprivileged
# user, against the harness registries (plain and htpasswd) and
# import_faultd.py, a loopback registry that misbehaves on purpose.

# shellcheck disable=SC2030,SC2031,SC2016,SC2034
load ../harness/lib
bats_require_minimum_version 1.5.0

setup_file() {
	registry_start
	registry_start_auth
	image_busybox test/busybox:1
	image_busybox test/busybox:1 "$REGISTRY_AUTH"
	BB_OCI=$(harness_state_dir)/busybox-oci
	export BB_OCI
	faultd_start
	push_multiarch
	export BERTH_INSECURE_REGISTRIES="$REGISTRY,$REGISTRY_AUTH,$FAULTD,127.0.0.2:${FAULTD#*:}"
}

teardown_file() {
	registry_stop_all
}

# A two-platform image (an OCI index): test/multi:1, Cmd "amd" / "arm".
push_multiarch() {
	local dir spec
	dir=$(harness_state_dir)/multi
	spec='{"platforms": [
	  {"architecture": "amd64", "os": "linux", "config": {"Cmd": ["amd"]},
	   "layers": [{"entries": [{"path": "arch", "content": "amd64"}]}]},
	  {"architecture": "arm64", "variant": "v8", "os": "linux", "config": {"Cmd": ["arm"]},
	   "layers": [{"entries": [{"path": "arch", "content": "arm64"}]}]}]}'
	echo "$spec" >"$dir.json"
	mkimage "$dir.json" "$dir" >/dev/null
	image_push "$dir" "$REGISTRY/test/multi:1"
}

# import_faultd.py serving the busybox layout; its pid goes to the harness's
# list so registry_stop_all stops it.
faultd_start() {
	local dir
	dir=$(harness_state_dir)
	rm -f "$dir/faultd.port"
	: >"$dir/faultd.log"
	python3 "$BATS_TEST_DIRNAME/import_faultd.py" "$BB_OCI" "$dir/faultd.port" \
		"$dir/faultd.log" --lifetime 1200 --user fuser --password fpass \
		</dev/null >"$dir/faultd.out" 2>&1 3>&- &
	echo $! >>"$dir/pids"
	for _ in $(seq 1 100); do
		[[ -s $dir/faultd.port ]] && break
		sleep 0.1
	done
	FAULTD=127.0.0.1:$(cat "$dir/faultd.port")
	FAULTD_LOG=$dir/faultd.log
	export FAULTD FAULTD_LOG
}

# Every test gets its own cache, so one test's image is no other's hit.
setup() {
	BERTH_CACHE_DIR=$USER_DIR/cache-$BATS_TEST_NUMBER
	rm -rf --one-file-system "$BERTH_CACHE_DIR"
	mkdir -p "$BERTH_CACHE_DIR"
	chown "$BERTH_TEST_USER:" "$BERTH_CACHE_DIR" 2>/dev/null || true
	export BERTH_CACHE_DIR
}

cache() { echo "$BERTH_CACHE_DIR"; }

# Kill (SIGKILL) pid and its descendants, by pid.
kill_tree() {
	local p
	for p in $(ps -o pid= --ppid "$1"); do
		kill_tree "$p"
	done
	kill -KILL "$1" 2>/dev/null || true
}

# The files a failed import must not leave: images and temporaries.
cache_state() {
	find "$(cache)/images" "$(cache)/tmp" -type f 2>/dev/null | sort
}

log_lines() { wc -l <"$FAULTD_LOG"; }

# A credentials file owned by berthtest with the given mode.
write_creds() {
	local file=$USER_DIR/work/$1 mode=$2
	shift 2
	printf '%s\n' "$@" >"$file"
	chown "$BERTH_TEST_USER:" "$file" 2>/dev/null || true
	chmod "$mode" "$file"
	echo "$file"
}

# A failure: exit 1, exactly one line on stderr naming the image, nothing on
# stdout, no image or temporary file left.
expect_failure() {
	local ref=$1 pattern=$2 before
	before=$(cache_state)
	run --separate-stderr as_user "$BERTH" import --quiet "$ref"
	echo "status=$status stdout=$output stderr=$stderr"
	[ "$status" -eq 1 ]
	[ -z "$output" ]
	[ "$(printf '%s\n' "$stderr" | wc -l)" -eq 1 ]
	[[ $stderr == "berth: "*"'$ref'"* ]]
	[[ $stderr == *"$pattern"* ]]
	[ "$(cache_state)" == "$before" ]
}

@test "import busybox: prints the squashfs path in the cache, and only that" {
	run --separate-stderr as_user "$BERTH" import "$REGISTRY/test/busybox:1"
	echo "$stderr"
	[ "$status" -eq 0 ]
	[[ $output == "$(cache)/images/sha256-"*.sqsh ]]
	[ "$(printf '%s\n' "$output" | wc -l)" -eq 1 ]
	[ -f "$output" ]
	[ "$(stat -c %U "$output")" == "$BERTH_TEST_USER" ]
	# not a terminal: one progress line per step on stderr
	[[ $stderr == *"resolving 1"* ]]
	[[ $stderr == *"converting 1 layer"* ]]
	run rdsquashfs -l /bin "$output"
	[[ $output == *" busybox"* ]]
}

@test "berth images lists the import; inspect prints its config" {
	run as_user "$BERTH" import --quiet "docker://$REGISTRY#test/busybox:1"
	[ "$status" -eq 0 ]
	run as_user "$BERTH" images
	echo "$output"
	[ "$status" -eq 0 ]
	[[ ${lines[0]} == REFERENCE* ]]
	[[ $output == *"$REGISTRY/test/busybox:1"*"sha256:"* ]]
	run --separate-stderr as_user "$BERTH" inspect "$REGISTRY/test/busybox:1"
	echo "$output $stderr"
	[ "$status" -eq 0 ]
	python3 -c 'import json,sys; c=json.loads(sys.argv[1]); assert c["Cmd"]==["sh"], c' "$output"
	path=$(as_user "$BERTH" import --quiet "$REGISTRY/test/busybox:1")
	run as_user "$BERTH" inspect "$path"
	[ "$status" -eq 0 ]
	[[ $output == *'"WorkingDir": "/"'* ]]
}

@test "a second import is a cache hit: manifest only, no blob GET; blobs are reused" {
	local ref=$FAULTD/ok/hit:1 n
	run as_user "$BERTH" import --quiet "$ref"
	[ "$status" -eq 0 ]
	first=$output
	n=$(log_lines)
	run as_user "$BERTH" import --quiet "$ref"
	[ "$status" -eq 0 ]
	[ "$output" == "$first" ]
	tail -n +$((n + 1)) "$FAULTD_LOG"
	[ "$(tail -n +$((n + 1)) "$FAULTD_LOG" | grep -c /manifests/)" -eq 1 ]
	! tail -n +$((n + 1)) "$FAULTD_LOG" | grep -q /blobs/
	# the image removed, its verified blobs still serve a new conversion
	run as_user "$BERTH" rmi "$ref"
	[ "$status" -eq 0 ]
	n=$(log_lines)
	run as_user "$BERTH" import --quiet "$ref"
	[ "$status" -eq 0 ]
	[ "$output" == "$first" ]
	[ -f "$first" ]
	! tail -n +$((n + 1)) "$FAULTD_LOG" | grep -q /blobs/
}

@test "an @sha256 reference: imports, then needs no network at all" {
	local digest n
	digest=$(skopeo inspect --raw --tls-verify=false "docker://$REGISTRY/test/busybox:1" |
		sha256sum | cut -d' ' -f1)
	run as_user "$BERTH" import --quiet "$FAULTD/ok/bydigest@sha256:$digest"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ $output == */sha256-$digest.sqsh ]]
	n=$(log_lines)
	run as_user "$BERTH" import --quiet "docker://$FAULTD#ok/other@sha256:$digest"
	[ "$status" -eq 0 ]
	[[ $output == */sha256-$digest.sqsh ]]
	[ "$(log_lines)" -eq "$n" ]
}

@test "auth registry: without credentials one line with a hint" {
	BERTH_CREDENTIALS_FILE=$USER_DIR/work/none expect_failure \
		"$REGISTRY_AUTH/test/busybox:1" "machine $REGISTRY_AUTH login USER password SECRET"
}

@test "auth registry: netrc credentials with mode 0600 work" {
	local f
	f=$(write_creds creds-ok 0600 "machine $REGISTRY_AUTH login $REGISTRY_USER password $REGISTRY_PASS")
	BERTH_CREDENTIALS_FILE=$f run --separate-stderr as_user "$BERTH" -vv import "$REGISTRY_AUTH/test/busybox:1"
	echo "$stderr"
	[ "$status" -eq 0 ]
	[ -f "$output" ]
	# the secret never shows, not even at -v
	[[ $stderr != *"$REGISTRY_PASS"* ]]
}

@test "auth registry: wrong password is refused naming the credentials file" {
	local f
	f=$(write_creds creds-bad 0600 "machine $REGISTRY_AUTH login $REGISTRY_USER password nope")
	BERTH_CREDENTIALS_FILE=$f expect_failure "$REGISTRY_AUTH/test/busybox:1" "credentials from $f"
}

@test "a credentials file readable by others is refused with the fix" {
	local f
	f=$(write_creds creds-open 0644 "machine $REGISTRY_AUTH login $REGISTRY_USER password $REGISTRY_PASS")
	BERTH_CREDENTIALS_FILE=$f expect_failure "$REGISTRY_AUTH/test/busybox:1" "chmod 600 $f"
	[[ $stderr != *"$REGISTRY_PASS"* ]]
}

@test "Bearer token flow with netrc credentials, token refresh on expiry" {
	local f n
	f=$(write_creds creds-tok 0600 "machine $FAULTD login fuser password fpass")
	n=$(log_lines)
	BERTH_CREDENTIALS_FILE=$f run --separate-stderr as_user "$BERTH" -vv import "$FAULTD/token/app:1"
	echo "$stderr"
	[ "$status" -eq 0 ]
	[[ $stderr != *fpass* && $stderr != *"tok-"* ]]
	# a token serves two requests here: manifest, blob, then a 401 and a new token
	[ "$(tail -n +$((n + 1)) "$FAULTD_LOG" | grep -c '^GET [^ ]* /token.* 200 ')" -ge 2 ]
}

@test "Bearer token flow without credentials: a hint" {
	BERTH_CREDENTIALS_FILE=$USER_DIR/work/none expect_failure "$FAULTD/token/app:2" "credentials"
}

@test "a redirect to another host does not carry the Authorization header" {
	local f
	f=$(write_creds creds-redir 0600 "machine $FAULTD login fuser password fpass")
	BERTH_CREDENTIALS_FILE=$f run as_user "$BERTH" import --quiet "$FAULTD/redirect/app:1"
	[ "$status" -eq 0 ]
	grep ' 307 ' "$FAULTD_LOG" | grep -q 'auth=yes'
	grep -q '^GET 127.0.0.2:[0-9]* /direct/' "$FAULTD_LOG"
	! grep '^GET 127.0.0.2:[0-9]* /direct/' "$FAULTD_LOG" | grep -q 'auth=yes'
}

@test "multi-arch index: host platform by default, --arch picks another" {
	run as_user "$BERTH" import --quiet --arch amd64 "$REGISTRY/test/multi:1"
	[ "$status" -eq 0 ]
	amd=$output
	run as_user "$BERTH" import --quiet --arch arm64 "$REGISTRY/test/multi:1"
	[ "$status" -eq 0 ]
	arm=$output
	[ "$amd" != "$arm" ]
	[ "$(as_user "$BERTH" inspect "$arm" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Cmd"][0])')" == arm ]
	if [[ $(uname -m) == x86_64 ]]; then
		run as_user "$BERTH" import --quiet "$REGISTRY/test/multi:1"
		[ "$output" == "$amd" ]
	fi
}

@test "multi-arch index: a missing platform lists the available ones" {
	run --separate-stderr as_user "$BERTH" import --quiet --arch s390x "$REGISTRY/test/multi:1"
	echo "$stderr"
	[ "$status" -eq 1 ]
	[[ $stderr == *"linux/s390x"*"linux/amd64, linux/arm64/v8"* ]]
}

@test "docker-archive (skopeo's Docker layout) and a tar of an OCI layout" {
	local tar=$USER_DIR/work/bb-docker.tar oci_tar=$USER_DIR/work/bb-oci.tar
	rm -f "$tar"
	skopeo copy --quiet "oci:$BB_OCI:latest" "docker-archive:$tar:test/busybox:1"
	tar -C "$BB_OCI" -cf "$oci_tar" .
	chmod 0644 "$tar" "$oci_tar"
	run --separate-stderr as_user "$BERTH" import "docker-archive://$tar"
	echo "$stderr"
	[ "$status" -eq 0 ]
	[ -f "$output" ]
	[ "$(as_user "$BERTH" inspect "$output" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Cmd"][0])')" == sh ]
	run as_user "$BERTH" import --quiet "docker-archive://$oci_tar"
	[ "$status" -eq 0 ]
	[ -f "$output" ]
	run rdsquashfs -l /bin "$output"
	[[ $output == *" busybox"* ]]
}

@test "docker-archive: a broken archive is one line, cache unchanged" {
	head -c 5000 /dev/urandom >"$USER_DIR/work/junk.tar"
	chmod 0644 "$USER_DIR/work/junk.tar"
	expect_failure "docker-archive://$USER_DIR/work/junk.tar" "junk.tar"
}

@test "oci-dir, with and without a tag; an unknown tag fails" {
	cp -r "$BB_OCI" "$USER_DIR/work/layout"
	chmod -R a+rX "$USER_DIR/work/layout"
	run as_user "$BERTH" import --quiet "oci-dir://$USER_DIR/work/layout"
	[ "$status" -eq 0 ]
	first=$output
	run as_user "$BERTH" import --quiet "oci-dir://$USER_DIR/work/layout:latest"
	[ "$status" -eq 0 ]
	[ "$output" == "$first" ]
	expect_failure "oci-dir://$USER_DIR/work/layout:nope" "no image tagged 'nope'"
}

@test "oci-dir: a corrupted layer blob is a digest mismatch" {
	local l=$USER_DIR/work/badlayout blob
	cp -r "$BB_OCI" "$l"
	blob=$(python3 -c 'import json,sys; d=sys.argv[1]; i=json.load(open(d+"/index.json"))["manifests"][0]["digest"][7:]; m=json.load(open(d+"/blobs/sha256/"+i)); print(m["layers"][0]["digest"][7:])' "$l")
	printf 'X' | dd of="$l/blobs/sha256/$blob" bs=1 seek=100 conv=notrunc 2>/dev/null
	chmod -R a+rX "$l"
	expect_failure "oci-dir://$l" "digest mismatch"
}

@test "a truncated transfer resumes with a Range request" {
	run as_user "$BERTH" import --quiet "$FAULTD/truncate/app:1"
	[ "$status" -eq 0 ]
	grep -q '/v2/truncate/app/blobs/.* 206 range=bytes=[1-9][0-9]*-' "$FAULTD_LOG"
}

@test "500 and 503 answers are retried" {
	run as_user "$BERTH" import --quiet "$FAULTD/flaky/app:1"
	[ "$status" -eq 0 ]
	grep -q '/v2/flaky/app/blobs/.* 503 ' "$FAULTD_LOG"
}

@test "registry_mirrors: a dead mirror is skipped, the next one serves the image" {
	local n port
	port=$(harness_free_port)
	n=$(log_lines)
	BERTH_REGISTRY_MIRRORS="$REGISTRY=127.0.0.1:$port,$REGISTRY=$FAULTD" \
		BERTH_INSECURE_REGISTRIES="$BERTH_INSECURE_REGISTRIES,127.0.0.1:$port" \
		run --separate-stderr as_user "$BERTH" import --quiet "$REGISTRY/test/busybox:1"
	echo "$stderr"
	[ "$status" -eq 0 ]
	[ -f "$output" ]
	tail -n +$((n + 1)) "$FAULTD_LOG" | grep -q '/v2/test/busybox/manifests/1 200'
	tail -n +$((n + 1)) "$FAULTD_LOG" | grep -q '/v2/test/busybox/blobs/'
}

@test "registry_mirrors: a bare mirror serves Docker Hub names (library/ added)" {
	local n
	n=$(log_lines)
	BERTH_REGISTRY_MIRRORS=$FAULTD run --separate-stderr as_user "$BERTH" import --quiet "busybox:1"
	echo "$stderr"
	[ "$status" -eq 0 ]
	tail -n +$((n + 1)) "$FAULTD_LOG" | grep -q '/v2/library/busybox/manifests/1 200'
	run as_user "$BERTH" images
	[[ $output == *"registry-1.docker.io/library/busybox:1"* ]]
}

@test "404: unknown image or tag" {
	expect_failure "$FAULTD/missing/app:1" "not found"
	expect_failure "$REGISTRY/test/busybox:nosuchtag" "HTTP 404"
}

@test "429: reported with the retry-after once retries are exhausted" {
	expect_failure "$FAULTD/ratelimit/app:1" "HTTP 429) after 4 attempts; the registry asks to retry after 1 s"
}

@test "digest mismatch: both digests named, partial deleted" {
	expect_failure "$FAULTD/wrong/app:1" "digest mismatch"
	[[ $stderr =~ sha256:[0-9a-f]{64}.*sha256:[0-9a-f]{64} ]]
	[ -z "$(ls "$(cache)/tmp")" ]
}

@test "a damaged lower layer fails after the top one is converted: one line, nothing published" {
	local dir=$USER_DIR/work/badlower b64
	# A gzip layer cut in half; its digest is right, so the registry takes it.
	b64=$(python3 -c 'import base64, gzip, io, random, tarfile
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w") as t:
    data = random.Random(1).randbytes(200000)
    ti = tarfile.TarInfo("lower")
    ti.size = len(data)
    t.addfile(ti, io.BytesIO(data))
z = gzip.compress(buf.getvalue(), mtime=0)
print(base64.b64encode(z[:len(z) // 2]).decode())')
	cat >"$dir.json" <<-SPEC
	{"architecture": "amd64", "os": "linux", "config": {"Cmd": ["x"]},
	 "layers": [{"blob_b64": "$b64"},
	            {"entries": [{"path": "top", "generate": {"size": 3000000, "seed": "t"}}]}]}
	SPEC
	mkimage "$dir.json" "$dir" >/dev/null
	image_push "$dir" "$REGISTRY/test/badlower:1"
	expect_failure "$REGISTRY/test/badlower:1" "layer 1 of 2"
	[[ $stderr == *"truncated"* ]]
}

@test "a blob longer than announced is refused" {
	expect_failure "$FAULTD/huge/app:1" "more than the"
}

@test "unsupported media type: a foreign layer" {
	expect_failure "$FAULTD/foreign/app:1" "foreign"
}

@test "unreachable registry" {
	local port
	port=$(harness_free_port)
	BERTH_INSECURE_REGISTRIES=127.0.0.1:$port expect_failure "127.0.0.1:$port/x/y:1" "connect"
}

@test "malformed references: one line naming the input, exit 1" {
	for ref in 'Ubuntu:1' 'ubuntu:-bad' 'ubuntu@sha256:abc' 'docker://a#b#c' 'host:99999/x' 'ftp://x/y'; do
		run --separate-stderr as_user "$BERTH" import "$ref"
		echo "$ref: $status $stderr"
		[ "$status" -eq 1 ]
		[[ $stderr == "berth: invalid image reference '$ref': "* ]]
	done
	run as_user "$BERTH" import --arch 'x y' "$REGISTRY/test/busybox:1"
	[ "$status" -eq 1 ]
	[[ $output == *"invalid --arch 'x y'"* ]]
}

@test "a .sqsh path is checked and returned; a non-squashfs file is refused" {
	local sq
	sq=$(as_user "$BERTH" import --quiet "$REGISTRY/test/busybox:1")
	cp "$sq" "$USER_DIR/work/copy.sqsh"
	chmod 0644 "$USER_DIR/work/copy.sqsh"
	run as_user "$BERTH" import "$USER_DIR/work/copy.sqsh"
	[ "$status" -eq 0 ]
	[ "$output" == "$USER_DIR/work/copy.sqsh" ]
	echo "not squashfs" >"$USER_DIR/work/fake.sqsh"
	run as_user "$BERTH" import "$USER_DIR/work/fake.sqsh"
	[ "$status" -eq 1 ]
	[[ $output == *"fake.sqsh"* ]]
}

@test "--output writes the file there and prints it" {
	local out=$USER_DIR/work/out.sqsh
	run --separate-stderr as_user "$BERTH" import --quiet --output "$out" "$FAULTD/ok/output:1"
	[ "$status" -eq 0 ]
	[ "$output" == "$out" ]
	[ -z "$stderr" ]
	run rdsquashfs -l /bin "$out"
	[ "$status" -eq 0 ]
	[[ $output == *" busybox"* ]]
}

@test "two imports of one image at once convert it once" {
	local n
	n=$(log_lines)
	as_user "$BERTH" import --quiet "$FAULTD/slow/same:1" >"$USER_DIR/work/a.out" 2>&1 &
	a=$!
	as_user "$BERTH" import --quiet "$FAULTD/slow/same:1" >"$USER_DIR/work/b.out" 2>&1 &
	b=$!
	wait "$a"
	wait "$b"
	cat "$USER_DIR/work/a.out" "$USER_DIR/work/b.out"
	[ "$(cat "$USER_DIR/work/a.out")" == "$(cat "$USER_DIR/work/b.out")" ]
	[ -f "$(cat "$USER_DIR/work/a.out")" ]
	# each blob fetched once: the second import waited and reused the image
	[ "$(tail -n +$((n + 1)) "$FAULTD_LOG" | grep -c '/v2/slow/same/blobs/')" -eq 2 ]
}

@test "a killed import leaves nothing trusted; cache prune cleans up" {
	as_user "$BERTH" import --quiet "$FAULTD/slow/killed:1" >/dev/null 2>&1 &
	pid=$!
	sleep 1
	kill_tree "$pid"
	wait "$pid" || true
	[ -z "$(ls "$(cache)/images")" ]
	[ -n "$(ls "$(cache)/tmp")" ]
	run as_user "$BERTH" cache prune
	echo "$output"
	[ "$status" -eq 0 ]
	[ -z "$(ls "$(cache)/tmp")" ]
	run as_user "$BERTH" import --quiet "$FAULTD/slow/killed:1"
	[ "$status" -eq 0 ]
	[ -f "$output" ]
}

@test "rmi removes an image, cache prune frees its blobs" {
	local path digest
	path=$(as_user "$BERTH" import --quiet "$REGISTRY/test/busybox:1")
	digest=$(basename "$path" .sqsh)
	digest=sha256:${digest#sha256-}
	run as_user "$BERTH" rmi "${digest:7:16}"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ $output == "removed $digest" ]]
	[ ! -e "$path" ]
	run as_user "$BERTH" images --quiet
	[[ $output != *"$digest"* ]]
	[ -n "$(ls "$(cache)/blobs/sha256")" ]
	run as_user "$BERTH" cache prune
	echo "$output"
	[ "$status" -eq 0 ]
	[[ $output == "removed "* ]]
	[ -z "$(ls "$(cache)/blobs/sha256")" ]
	run as_user "$BERTH" rmi "$digest"
	[ "$status" -eq 1 ]
	[[ $output == *"no cached image"* ]]
	run as_user "$BERTH" inspect "$REGISTRY/test/never:1"
	[ "$status" -eq 1 ]
	[[ $output == *"not in the cache"* ]]
}

@test "on a terminal the progress line is redrawn; --quiet prints nothing" {
	skip_unless script
	run as_user script -qec "$BERTH import $FAULTD/ok/tty:1" /dev/null
	[ "$status" -eq 0 ]
	[[ $output == *$'\r'* ]]
	[[ $output == *"layers "*"/s"* ]]
	run --separate-stderr as_user "$BERTH" import --quiet "$FAULTD/ok/tty:2"
	[ -z "$stderr" ]
}
