#!/usr/bin/env bats
# The harness itself: registries, image building and pushing, the test user.

# Bats runs each test in a subshell; single quotes are for the inner shell.
# shellcheck disable=SC2030,SC2031,SC2016,SC2034
load ../harness/lib

setup_file() {
	registry_start
	registry_start_auth
}

teardown_file() {
	registry_stop_all
}

@test "as_user runs as berthtest with a clean environment" {
	require_root
	export BERTH_FOO=bar NOT_PASSED=x
	run as_user sh -c 'echo "$(id -un) $HOME $BERTH_FOO ${NOT_PASSED:-unset} $(pwd)"'
	[ "$status" -eq 0 ]
	[ "$output" = "berthtest /home/berthtest bar unset $USER_DIR/work" ]
}

@test "as_user passes the variables named in AS_USER_ENV" {
	export EXTRA_VAR=42
	AS_USER_ENV=(EXTRA_VAR)
	run as_user sh -c 'echo "$EXTRA_VAR"'
	[ "$output" = 42 ]
}

@test "\$BERTH is runnable by the test user" {
	run as_user "$BERTH" --version
	[ "$status" -eq 0 ]
	[[ $output == "berth "* ]]
}

@test "registry serves a pushed busybox image" {
	image_busybox test/busybox:1
	run skopeo inspect --tls-verify=false "docker://$REGISTRY/test/busybox:1"
	[ "$status" -eq 0 ]
	[[ $output == *'"Architecture": "amd64"'* ]]
	run skopeo inspect --tls-verify=false "docker://$REGISTRY/test/busybox:nonexistent"
	[ "$status" -ne 0 ]
}

@test "busybox image layer holds a working static busybox" {
	image_busybox test/busybox:2
	local out=$BATS_TEST_TMPDIR/bb
	skopeo copy --quiet --src-tls-verify=false "docker://$REGISTRY/test/busybox:2" "oci:$out:x"
	local layer
	layer=$(python3 -c 'import json,sys; d=sys.argv[1]; i=json.load(open(d+"/index.json")); m=json.load(open(d+"/blobs/sha256/"+i["manifests"][0]["digest"][7:])); print(m["layers"][0]["digest"][7:])' "$out")
	mkdir "$BATS_TEST_TMPDIR/root"
	tar -xzf "$out/blobs/sha256/$layer" -C "$BATS_TEST_TMPDIR/root" bin/busybox bin/sh
	run "$BATS_TEST_TMPDIR/root/bin/busybox" echo hello
	[ "$output" = hello ]
	[ "$(readlink "$BATS_TEST_TMPDIR/root/bin/sh")" = /bin/busybox ]
}

@test "auth registry refuses anonymous access" {
	image_busybox test/private:1 "$REGISTRY_AUTH"
	run curl -s -o /dev/null -w '%{http_code}' "http://$REGISTRY_AUTH/v2/test/private/manifests/1"
	[ "$output" = 401 ]
	run skopeo inspect --tls-verify=false --no-creds "docker://$REGISTRY_AUTH/test/private:1"
	[ "$status" -ne 0 ]
}

@test "auth registry accepts the credentials and refuses a wrong password" {
	image_busybox test/private:2 "$REGISTRY_AUTH"
	run skopeo inspect --tls-verify=false --creds "$REGISTRY_USER:$REGISTRY_PASS" \
		"docker://$REGISTRY_AUTH/test/private:2"
	[ "$status" -eq 0 ]
	[[ $output == *'"Architecture": "amd64"'* ]]
	run skopeo inspect --tls-verify=false --creds "$REGISTRY_USER:wrong$REGISTRY_PASS" \
		"docker://$REGISTRY_AUTH/test/private:2"
	[ "$status" -ne 0 ]
}

@test "mkimage output is deterministic" {
	local spec=$BATS_TEST_TMPDIR/spec.json
	cat >"$spec" <<-'JSON'
		{"config": {"Cmd": ["/bin/x"]}, "layers": [
		 {"entries": [{"path": "a", "type": "dir"}, {"path": "a/f", "content": "hi\n", "uid": 1234}]},
		 {"compression": "none", "entries": [{"path": "a/f", "type": "whiteout"}]}]}
	JSON
	d1=$(mkimage "$spec" "$BATS_TEST_TMPDIR/o1")
	d2=$(mkimage "$spec" "$BATS_TEST_TMPDIR/o2")
	[ -n "$d1" ]
	[ "$d1" = "$d2" ]
	diff -r "$BATS_TEST_TMPDIR/o1" "$BATS_TEST_TMPDIR/o2"
}

@test "registry_stop_all stops the registries" {
	local pids
	pids=$(cat "$BATS_FILE_TMPDIR/pids")
	[ -n "$pids" ]
	registry_stop_all
	for p in $pids; do
		! kill -0 "$p" 2>/dev/null
	done
	run curl -s --max-time 2 "http://$REGISTRY/v2/"
	[ "$status" -ne 0 ]
}
