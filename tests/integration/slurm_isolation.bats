#!/usr/bin/env bats
# spank_berth.so: what a container may change about its namespaces:
# --container-remap-root with working package managers (a seccomp filter
# for chown and set*id), and the opt-in --container-unshare=net,ipc,uts.

# shellcheck disable=SC2016
load ../harness/lib
load ../harness/slurm

setup_file() {
	require_root
	registry_start
	image_busybox busybox:latest
	image_debian test/debian:12
	slurm_berth_env i
	slurm_start
	IMG=$REGISTRY#busybox:latest
	DEB=$REGISTRY#test/debian:12
	export IMG DEB
	tiny_deb "$USER_DIR/work/tiny.deb"
	as_user srun -t 5 -n 1 --container-image="$DEB" true
	as_user srun -t 1 -n 1 --container-image="$IMG" true
}

teardown_file() {
	slurm_berth_stop
}

@test "remap-root: chown, set*id, dpkg -i and apt-get install work in every task" {
	run usrun -n 2 --container-image="$DEB" --container-remap-root --container-writable \
		--container-mounts="$USER_DIR/work:/w:ro" sh -c '
		touch /tmp/x$SLURM_PROCID && chown 1:1 /tmp/x$SLURM_PROCID && echo chown-ok
		setpriv --reuid=1 --regid=1 --clear-groups id -u
		if [ $SLURM_PROCID = 0 ]; then
			dpkg -i /w/tiny.deb >/dev/null && cat /opt/berth-tiny/hello
			dpkg -r berth-tiny >/dev/null && apt-get install -y /w/tiny.deb >/dev/null 2>&1 &&
				echo apt-ok
		fi'
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(grep -c '^chown-ok$' <<<"$output")" -eq 2 ]
	[ "$(grep -c '^0$' <<<"$output")" -eq 2 ]
	grep -qx hello <<<"$output"
	grep -qx apt-ok <<<"$output"
}

@test "without remap-root: no filter, chown fails as it does in a one-uid namespace" {
	run usrun -n 1 --container-image="$DEB" --container-writable sh -c '
		grep Seccomp: /proc/self/status; touch /tmp/x; chown 1:1 /tmp/x || echo chown-failed'
	echo "$output"
	[ "$(echo ${lines[0]})" = "Seccomp: 0" ]
	grep -qx chown-failed <<<"$output"
}

@test "--container-unshare=net: loopback only, up, shared by the node's tasks" {
	run usrun -n 2 --container-image="$IMG" --container-unshare=net sh -c '
		echo "links $(ip -o link | wc -l)"
		ip -o link show lo | grep -q "[<,]UP[,>]" && echo lo-up
		echo "devs $(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d " " | tr "\n" " ")"
		readlink /proc/self/ns/net
		if [ $SLURM_PROCID = 0 ]; then
			echo pong | nc -l -p 47111 & sleep 0.5
			nc 127.0.0.1 47111 </dev/null
		fi'
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(grep -c '^links 1$' <<<"$output")" -eq 2 ]
	[ "$(grep -c '^lo-up$' <<<"$output")" -eq 2 ]
	[ "$(grep -c '^devs lo $' <<<"$output")" -eq 2 ]
	grep -qx pong <<<"$output"
	local ns
	ns=$(grep '^net:' <<<"$output" | sort -u)
	[ "$(wc -l <<<"$ns")" -eq 1 ]
	[ "$ns" != "$(readlink /proc/self/ns/net)" ]
	# the default is the host's network namespace
	run usrun -n 1 --container-image="$IMG" readlink /proc/self/ns/net
	[ "$output" = "$(readlink /proc/self/ns/net)" ]
}

@test "--container-unshare=ipc,uts: System V IPC of its own, the node's host name" {
	local id
	id=$(as_user ipcmk -M 4096 | grep -o '[0-9]*$')
	[ -n "$id" ]
	run usrun -n 2 --container-image="$IMG" --container-unshare=ipc,uts sh -c '
		awk "NR > 1 { print \"shm\", \$2 }" /proc/sysvipc/shm; readlink /proc/self/ns/ipc; hostname'
	local unshared=$output
	run usrun -n 1 --container-image="$IMG" sh -c \
		'awk "NR > 1 { print \"shm\", \$2 }" /proc/sysvipc/shm; readlink /proc/self/ns/ipc'
	local shared=$output
	as_user ipcrm -m "$id"
	echo "unshared: $unshared"
	echo "shared: $shared"
	! grep -qx "shm $id" <<<"$unshared"
	grep -qx "shm $id" <<<"$shared"
	[ "$(grep '^ipc:' <<<"$unshared" | sort -u | wc -l)" -eq 1 ]
	! grep -qxF "$(readlink /proc/self/ns/ipc)" <<<"$unshared"
	grep -qxF "$(readlink /proc/self/ns/ipc)" <<<"$shared"
	[ "$(grep -c "^$(hostname)\$" <<<"$unshared")" -eq 2 ]
}
