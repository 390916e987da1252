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

# pull REF DIR: copy REF from a test registry into an OCI layout (tag x).
pull() {
	skopeo copy --quiet --src-tls-verify=false "docker://$1" "oci:$2:x"
}

@test "edgecases image flattens to exactly its expected tree" {
	skip_unless umoci
	image_edgecases test/edge:1
	[ -s "$EDGECASES_EXPECT" ]
	pull "$REGISTRY/test/edge:1" "$BATS_TEST_TMPDIR/oci"
	# umoci applies the layers independently of mkimage.py (as root: owners and
	# device nodes are kept); its result must be the sidecar, line for line.
	umoci unpack --image "$BATS_TEST_TMPDIR/oci:x" "$BATS_TEST_TMPDIR/b" >/dev/null
	diff "$EDGECASES_EXPECT" <(treelist "$BATS_TEST_TMPDIR/b/rootfs")
	diff "$EDGECASES_EXPECT.xattrs" <(treelist --xattrs "$BATS_TEST_TMPDIR/b/rootfs")
	# The sidecar has the edge cases it promises.
	grep -qP '^/usr/bin/suid\tfile\t4755\t' "$EDGECASES_EXPECT"
	grep -qP '^/sticky\tdir\t1777\t1234\t1234\t' "$EDGECASES_EXPECT"
	grep -qP '^/shared/orig\tfile\t.*\t/shared/link-to-lower\t' "$EDGECASES_EXPECT"
	grep -qP '^/dev/null\tchar\t0666\t0\t0\t1,3\t' "$EDGECASES_EXPECT"
	grep -qP '^/run/fifo\tfifo\t' "$EDGECASES_EXPECT"
	grep -qP '^/etc/dangling\tsymlink\t.*\t/nonexistent/target\t' "$EDGECASES_EXPECT"
	grep -qP '^/etc/hostname\tuser.berth.test=layer2$' "$EDGECASES_EXPECT.xattrs"
	grep -qP '^/long-d+/f{120}\.txt\t' "$EDGECASES_EXPECT"
	grep -qP '^/dir-to-file\tfile\t' "$EDGECASES_EXPECT"
	grep -qP '^/file-to-dir/inner\tfile\t' "$EDGECASES_EXPECT"
	run ! grep -qE '^/(data/gone/|data/deleted-file|opq/old|opq/z|usr/bin/tool-link2)' "$EDGECASES_EXPECT"
	# berthtest can read the layout (for oci-dir:// imports).
	as_user test -r "$EDGECASES_OCI/index.json"
}

@test "treelist of a squashfs matches the tree it was made from" {
	skip_unless umoci mksquashfs sqfs2tar
	image_edgecases test/edge:2
	umoci unpack --image "$EDGECASES_OCI:latest" "$BATS_TEST_TMPDIR/b" >/dev/null
	mksquashfs "$BATS_TEST_TMPDIR/b/rootfs" "$BATS_TEST_TMPDIR/e.sqsh" -quiet -no-progress >/dev/null
	diff "$EDGECASES_EXPECT" <(treelist "$BATS_TEST_TMPDIR/e.sqsh")
	diff "$EDGECASES_EXPECT.xattrs" <(treelist --xattrs "$BATS_TEST_TMPDIR/e.sqsh")
	# and a changed tree does not match
	chmod 0700 "$BATS_TEST_TMPDIR/b/rootfs/usr/bin/tool"
	run ! diff -q "$EDGECASES_EXPECT" <(treelist "$BATS_TEST_TMPDIR/b/rootfs")
}

@test "zstd image has zstd layers and the registry serves them" {
	image_zstd test/zstd:1
	run skopeo inspect --raw --tls-verify=false "docker://$REGISTRY/test/zstd:1"
	[ "$status" -eq 0 ]
	[ "$(grep -o 'tar+zstd' <<<"$output" | wc -l)" -eq 2 ]
	pull "$REGISTRY/test/zstd:1" "$BATS_TEST_TMPDIR/oci"
	local blob
	blob=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["layers"][1]["digest"][7:])' "$output")
	zstd -dc "$BATS_TEST_TMPDIR/oci/blobs/sha256/$blob" | tar -xOf - etc/zstd-marker | grep -qx 'zstd layers'
}

@test "multiarch image is an index with amd64 and arm64" {
	image_multiarch test/multi:1
	run skopeo inspect --raw --tls-verify=false "docker://$REGISTRY/test/multi:1"
	[ "$status" -eq 0 ]
	[[ $output == *'"mediaType":"application/vnd.oci.image.index.v1+json"'* ]]
	run skopeo inspect --tls-verify=false --override-arch arm64 "docker://$REGISTRY/test/multi:1"
	[[ $output == *'"Architecture": "arm64"'* ]]
	run skopeo inspect --tls-verify=false --override-arch amd64 "docker://$REGISTRY/test/multi:1"
	[[ $output == *'"Architecture": "amd64"'* ]]
}

@test "debian image is a bookworm root file system" {
	skip_unless umoci
	image_debian test/debian:12
	pull "$REGISTRY/test/debian:12" "$BATS_TEST_TMPDIR/oci"
	umoci unpack --image "$BATS_TEST_TMPDIR/oci:x" "$BATS_TEST_TMPDIR/d" >/dev/null
	local root=$BATS_TEST_TMPDIR/d/rootfs
	grep -q '^12\.' "$root/etc/debian_version"
	[ -x "$root/usr/bin/apt-get" ]
	[ -x "$root/bin/bash" ]
	# Nothing of the host's /dev, /proc or /sys got in.
	[ "$(find "$root/dev" "$root/proc" "$root/sys" -mindepth 1 | wc -l)" -eq 0 ]
	chroot "$root" /bin/sh -c 'echo inside' | grep -qx inside
}

@test "registry_stop_all stops the registries" {
	local pids
	pids=$(cat "$BATS_FILE_TMPDIR/pids")
	[ -n "$pids" ]
	registry_stop_all
	for p in $pids; do
		run ! kill -0 "$p"
	done
	run curl -s --max-time 2 "http://$REGISTRY/v2/"
	[ "$status" -ne 0 ]
}

@test "README command 1 (tests/demo.sh) pulls, converts and runs an image as the user" {
	require_root
	# --no-deps: tests/run installed them; the demo then builds (a no-op
	# after tests/run's build), starts its own registry and cleans up.
	# a clean environment, as a user typing it: nothing of this test run's
	run timeout 600 env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
		bash "$BERTH_SRCDIR/tests/demo.sh" --no-deps
	echo "$output" | tail -20
	[ "$status" -eq 0 ]
	[[ $output == *"berthtest\$ berth run docker://"*"echo hello"$'\n'"hello"* ]]
	[[ $output == *"==> Done: the image was pulled, converted and run without root."* ]]
}
