#!/usr/bin/env bats
# berth oci (the OCI runtime commands) and berth bundle, as berthtest:
# state transitions, kill, delete, exit codes, config.json fields, refusals.

# shellcheck disable=SC2016
load ../harness/lib

setup_file() {
	registry_start
	image_busybox test/busybox:1
	export BERTH_INSECURE_REGISTRIES=$REGISTRY
	export IMAGE=$REGISTRY/test/busybox:1
	export BASE=$USER_DIR/work/base-bundle
	rm -rf --one-file-system "$BASE"
	as_user "$BERTH" bundle "$IMAGE" "$BASE" >/dev/null
}

teardown_file() {
	registry_stop_all
}

setup() {
	ROOT=$USER_DIR/work/state$BATS_TEST_NUMBER
	B=$USER_DIR/work/bundle$BATS_TEST_NUMBER
	rm -rf --one-file-system "$B"
	OUT=$USER_DIR/work/out$BATS_TEST_NUMBER
}

# bundle_with PYTHON: a copy of the base bundle, config.json edited by the
# python statements (the config is `c`).
bundle_with() {
	as_user cp -r "$BASE" "$B"
	as_user python3 -c 'import json, os, sys
p = sys.argv[1] + "/config.json"
c = json.load(open(p))
exec(sys.argv[2])
json.dump(c, open(p, "w"))' "$B" "$1"
}

oci() {
	as_user "$BERTH" oci --root "$ROOT" "$@"
}

status_of() {
	oci state "$1" | python3 -c 'import json,sys; s=json.load(sys.stdin); print(s["status"], s["pid"])'
}

@test "bundle: config.json runs the image's Cmd with its Env; rootfs is empty; the image is named" {
	run python3 -c 'import json,sys; c=json.load(open(sys.argv[1]))
print(c["process"]["args"], c["process"]["env"], c["process"]["cwd"], c["root"]["path"])
print(c["annotations"]["org.berth.image"])' "$BASE/config.json"
	echo "$output"
	[ "${lines[0]}" = "['sh'] ['PATH=/usr/sbin:/usr/bin:/sbin:/bin'] / rootfs" ]
	[[ ${lines[1]} == "$USER_DIR"/cache/berth/images/*.sqsh ]]
	[ -f "${lines[1]}" ]
	[ -z "$(ls -A "$BASE/rootfs")" ]
}

@test "bundle: refuses a non-empty directory and a bad image, leaving nothing" {
	as_user mkdir -p "$B"
	as_user touch "$B/keep"
	run as_user "$BERTH" bundle "$IMAGE" "$B"
	[ "$status" -eq 1 ]
	[ "$output" = "berth: bundle directory '$B' is not empty" ]
	[ "$(ls -A "$B")" = keep ]
	run as_user "$BERTH" bundle "$REGISTRY/test/nosuch:1" "$B.2"
	[ "$status" -eq 1 ]
	[ "${#lines[@]}" -eq 1 ]
	[ ! -e "$B.2" ]
}

@test "run: output, exit status, args/env/cwd from config.json; stopped afterwards, then deleted" {
	bundle_with 'c["process"]["args"] = ["sh", "-c", "echo \"$GREETING from $(pwd) as $(id -u)\"; exit 3"]
c["process"]["env"] += ["GREETING=hello"]
c["process"]["cwd"] = "/tmp"'
	run oci run -b "$B" c1
	echo "$output"
	[ "$status" -eq 3 ]
	[ "$output" = "hello from /tmp as $(id -u berthtest)" ]
	[ "$(status_of c1)" = "stopped 0" ]
	run oci delete c1
	[ "$status" -eq 0 ]
	run oci state c1
	[ "$status" -eq 1 ]
	[ "$output" = "berth: container 'c1' does not exist" ]
}

@test "run: a signal's death is 128+N; --rm leaves no state" {
	bundle_with 'c["process"]["args"] = ["sh", "-c", "kill -9 $$"]'
	run oci run --rm -b "$B" c1
	[ "$status" -eq 137 ]
	[ ! -e "$ROOT/c1" ]
}

@test "create/start/state/kill/delete: created -> running -> stopped" {
	bundle_with 'c["process"]["args"] = ["sh", "-c", "echo started > /tmp/x; echo started; exec sleep 300"]'
	as_user "$BERTH" oci --root "$ROOT" create -b "$B" --pid-file "$USER_DIR/work/pid$BATS_TEST_NUMBER" c1 \
		>"$OUT" 2>&1 </dev/null
	read -r st pid < <(status_of c1)
	[ "$st" = created ]
	[ "$pid" = "$(cat "$USER_DIR/work/pid$BATS_TEST_NUMBER")" ]
	kill -0 "$pid"
	# Nothing ran yet.
	[ ! -s "$OUT" ]
	run oci start c1
	[ "$status" -eq 0 ]
	for _ in $(seq 1 50); do [ -s "$OUT" ] && break; sleep 0.1; done
	[ "$(cat "$OUT")" = started ]
	[ "$(status_of c1)" = "running $pid" ]
	run oci start c1
	[ "$status" -eq 1 ]
	[ "$output" = "berth: container 'c1' is not in the created state" ]
	run oci delete c1
	[ "$status" -eq 1 ]
	[[ $output == *"is running (stop it, or delete --force)" ]]
	run oci kill c1 TERM
	[ "$status" -eq 0 ]
	for _ in $(seq 1 50); do [[ $(status_of c1) == stopped* ]] && break; sleep 0.1; done
	[ "$(status_of c1)" = "stopped 0" ]
	run oci kill c1
	[ "$status" -eq 1 ]
	[ "$output" = "berth: container 'c1' is not running" ]
	run oci delete c1
	[ "$status" -eq 0 ]
	[ ! -e "$ROOT/c1" ]
}

@test "kill --all and delete --force end the whole process tree" {
	bundle_with 'c["process"]["args"] = ["sh", "-c", "sleep 301 & sleep 302 & wait"]'
	as_user "$BERTH" oci --root "$ROOT" create -b "$B" c1 >"$OUT" 2>&1 </dev/null
	oci start c1
	sleep 0.5
	pgrep -u berthtest -f 'sleep 30[12]' >/dev/null
	run oci delete --force c1
	[ "$status" -eq 0 ]
	sleep 0.3
	run ! pgrep -u berthtest -f 'sleep 30[12]'
	[ ! -e "$ROOT/c1" ]
}

@test "process.user 0:0 is root in a user namespace; the caller's uid is itself" {
	bundle_with 'c["process"]["user"] = {"uid": 0, "gid": 0}
c["linux"]["uidMappings"][0]["containerID"] = 0
c["linux"]["gidMappings"][0]["containerID"] = 0
c["process"]["args"] = ["sh", "-c", "id -u; cat /proc/self/uid_map"]'
	run oci run --rm -b "$B" c1
	echo "$output"
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = 0 ]
	read -r inside outside count <<<"${lines[1]}"
	[ "$inside $outside $count" = "0 $(id -u berthtest) 1" ]
}

@test "namespaces: uts with hostname, pid (berth's init is pid 1), network (loopback only), ipc" {
	bundle_with 'c["hostname"] = "ocibox"
c["linux"]["namespaces"] += [{"type": "uts"}, {"type": "pid"}, {"type": "network"}, {"type": "ipc"}]
c["process"]["args"] = ["sh", "-c", "hostname; echo $$; tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d \" \"; readlink /proc/self/ns/ipc"]'
	run oci run --rm -b "$B" c1
	echo "$output"
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = ocibox ]
	# pid 1 is berth's minimal init (reaps, forwards signals); the process is 2.
	[ "${lines[1]}" = 2 ]
	[ "${lines[2]}" = lo ]
	[ "${#lines[@]}" -eq 4 ]
	[ "${lines[3]}" != "$(readlink /proc/self/ns/ipc)" ]
}

@test "mounts: a bind mount, read-only enforced; a tmpfs" {
	local data=$USER_DIR/work/data$BATS_TEST_NUMBER
	as_user mkdir -p "$data"
	as_user sh -c "echo payload > '$data/f'"
	as_user cp -r "$BASE" "$B"
	as_user python3 -c 'import json,sys
p=sys.argv[1]+"/config.json"; c=json.load(open(p))
c["mounts"]=[{"destination":"/data","type":"bind","source":sys.argv[2],"options":["rbind","ro"]},
             {"destination":"/scratch","type":"tmpfs","source":"tmpfs"}]
c["process"]["args"]=["sh","-c","cat /data/f; touch /data/new 2>/dev/null && echo wrote; touch /scratch/ok && echo tmpfs-ok"]
json.dump(c,open(p,"w"))' "$B" "$data"
	run oci run --rm -b "$B" c1
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$output" = "payload
tmpfs-ok" ]
	[ ! -e "$data/new" ]
}

@test "refusals: one line naming the field, exit 1, no state left" {
	bundle_with 'c["process"]["terminal"] = True'
	run oci run -b "$B" c1
	[ "$status" -eq 1 ]
	[[ $output == "berth: bundle '$B': config.json: process.terminal: "* ]]
	[ ! -e "$ROOT/c1" ]
	rm -rf --one-file-system "$B"
	bundle_with 'c["process"]["user"] = {"uid": 4242, "gid": 4242}'
	run oci create -b "$B" c1
	[ "$status" -eq 1 ]
	[[ $output == *"config.json: process.user 4242:4242: an unprivileged runtime runs as the caller"* ]]
	[ ! -e "$ROOT/c1" ]
	rm -rf --one-file-system "$B"
	bundle_with 'del c["annotations"]'
	run oci run -b "$B" c1
	[ "$status" -eq 1 ]
	[[ $output == *"root.path '$B/rootfs' is a directory: berth runs squashfs images"* ]]
	run oci run -b "$USER_DIR/work/nonexistent" c1
	[ "$status" -eq 1 ]
	[ "$output" = "berth: bundle '$USER_DIR/work/nonexistent': No such file or directory" ]
}

@test "ids: bad ids, duplicate ids and unknown ids are refused" {
	run oci run -b "$BASE" ../escape
	[ "$status" -eq 1 ]
	[[ $output == "berth: container id '../escape': "* ]]
	bundle_with 'c["process"]["args"] = ["sleep", "300"]'
	as_user "$BERTH" oci --root "$ROOT" create -b "$B" c1 >/dev/null 2>&1 </dev/null
	run oci create -b "$B" c1
	[ "$status" -eq 1 ]
	[ "$output" = "berth: container 'c1' already exists" ]
	run oci state nosuch
	[ "$status" -eq 1 ]
	[ "$output" = "berth: container 'nosuch' does not exist" ]
	run oci kill c1 NOSIG
	[ "$status" -eq 2 ]
	oci delete c1
	[ ! -e "$ROOT/c1" ]
}

@test "as root (Slurm runs state/kill/delete as root): berth acts as the state root's owner" {
	require_root
	bundle_with 'c["process"]["args"] = ["sleep", "300"]'
	as_user "$BERTH" oci --root "$ROOT" create -b "$B" c1 >/dev/null 2>&1 </dev/null
	run "$BERTH" oci --root "$ROOT" state c1
	echo "$output"
	[ "$status" -eq 0 ]
	[[ $output == *'"status":"created"'* ]]
	"$BERTH" oci --root "$ROOT" start c1
	run "$BERTH" oci --root "$ROOT" delete --force c1
	[ "$status" -eq 0 ]
	[ ! -e "$ROOT/c1" ]
	# A state root that belongs to root is refused, not used as root.
	mkdir -p "$USER_DIR/work/rootowned$BATS_TEST_NUMBER"
	run "$BERTH" oci --root "$USER_DIR/work/rootowned$BATS_TEST_NUMBER" state c1
	[ "$status" -eq 1 ]
	[[ $output == *"belongs to root: berth runs containers for unprivileged users only" ]]
}
