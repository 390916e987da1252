#!/usr/bin/env bats
# The berth command line: help, version, usage errors, config, doctor.

# Bats runs each test in a subshell; single quotes are for the inner shell.
# shellcheck disable=SC2030,SC2031,SC2016,SC2034
load ../harness/lib

@test "berth --version prints the version" {
	run as_user "$BERTH" --version
	[ "$status" -eq 0 ]
	[[ $output =~ ^berth\ [0-9]+\.[0-9]+\.[0-9]+$ ]]
}

@test "berth --help lists the commands" {
	run as_user "$BERTH" --help
	[ "$status" -eq 0 ]
	[[ $output == *"Usage: berth"* ]]
	[[ $output == *"config"* ]]
	[[ $output == *"doctor"* ]]
}

@test "every listed command answers --help with exit 0" {
	local cmds
	cmds=$(as_user "$BERTH" --help | awk '/^Commands:/{c=1; next} /^$/{c=0} c {print $1}')
	[ -n "$cmds" ]
	for c in $cmds; do
		run as_user "$BERTH" "$c" --help
		echo "berth $c --help: status $status"
		[ "$status" -eq 0 ]
		[[ $output == *"Usage: berth $c"* ]]
	done
}

@test "berth with no command is a usage error" {
	run as_user "$BERTH"
	[ "$status" -eq 2 ]
	[[ $output == *"Usage: berth"* ]]
}

@test "an unknown command exits 2 with one line" {
	run as_user "$BERTH" no-such-command
	[ "$status" -eq 2 ]
	[ "${#lines[@]}" -eq 1 ]
	[[ $output == "berth: "*"no-such-command"* ]]
}

@test "an unknown option exits 2" {
	run as_user "$BERTH" --no-such-option
	[ "$status" -eq 2 ]
}

@test "berth config shows an environment override and its source" {
	export BERTH_MAX_CONNECTIONS=3
	run as_user "$BERTH" config
	[ "$status" -eq 0 ]
	echo "$output" | grep -E '^max_connections +(= )?3 .*environment BERTH_MAX_CONNECTIONS'
	echo "$output" | grep -E '^compression .*default'
}

@test "berth config shows a value from BERTH_CONFIG with its file and line" {
	local conf=$USER_DIR/work/good.conf
	printf '# comment\n\nmax_connections = 5\n' >"$conf"
	chmod 0644 "$conf"
	export BERTH_CONFIG=$conf
	run as_user "$BERTH" config
	[ "$status" -eq 0 ]
	echo "$output" | grep -E "^max_connections +(= )?5 .*$conf:3"
}

@test "a bad config line gives FILE:LINE and exit 1" {
	local conf=$USER_DIR/work/bad.conf
	printf 'max_connections = 4\nthis is not a setting\n' >"$conf"
	chmod 0644 "$conf"
	export BERTH_CONFIG=$conf
	run as_user "$BERTH" config
	[ "$status" -eq 1 ]
	[ "${#lines[@]}" -eq 1 ]
	[[ $output == "berth: $conf:2: "* ]]
}

@test "a bad config value names the key, file and line" {
	local conf=$USER_DIR/work/badval.conf
	printf '\nmax_connections = lots\n' >"$conf"
	chmod 0644 "$conf"
	export BERTH_CONFIG=$conf
	run as_user "$BERTH" config
	[ "$status" -eq 1 ]
	[ "${#lines[@]}" -eq 1 ]
	[[ $output == "berth: $conf:2: "*max_connections*lots* ]]
}

@test "an unknown config key names the key, file and line" {
	local conf=$USER_DIR/work/badkey.conf
	printf 'no_such_key = 1\n' >"$conf"
	chmod 0644 "$conf"
	export BERTH_CONFIG=$conf
	run as_user "$BERTH" config
	[ "$status" -eq 1 ]
	[[ $output == "berth: $conf:1: "*no_such_key* ]]
}

@test "a bad environment value is named" {
	export BERTH_MAX_CONNECTIONS=many
	run as_user "$BERTH" config
	[ "$status" -eq 1 ]
	[ "${#lines[@]}" -eq 1 ]
	[[ $output == *BERTH_MAX_CONNECTIONS*many* ]]
}

@test "a missing BERTH_CONFIG file is an error naming it" {
	export BERTH_CONFIG=$USER_DIR/work/does-not-exist.conf
	run as_user "$BERTH" config
	[ "$status" -eq 1 ]
	[[ $output == *does-not-exist.conf* ]]
}

@test "berth doctor as the test user says berth can run here" {
	run as_user "$BERTH" doctor
	echo "$output"
	[ "$status" -eq 0 ]
	[[ ${lines[-1]} == "berth can run containers here" ]]
	[[ $output == *"/dev/fuse"* ]]
}

@test "berth doctor fails and names /dev/fuse when the user cannot open it" {
	require_root
	skip_unless unshare
	# /dev/fuse at mode 0600, seen only by this test: a private mount namespace
	# binds a root-only node of the same device over it, so concurrent tests
	# on this host keep their FUSE.
	local node=$BATS_TEST_TMPDIR/fuse
	mknod -m 0600 "$node" c 10 229
	AS_USER_WRAP=(unshare --mount --propagation private --
		sh -c 'mount --bind "$0" /dev/fuse && exec "$@"' "$node")
	run as_user "$BERTH" doctor
	echo "$output"
	[ "$status" -eq 1 ]
	echo "$output" | grep -E '^FAIL.*/dev/fuse'
	[[ $output == *"berth cannot run containers here"* ]]
	[[ $output != *"berth can run containers here"* ]]
	# The host's /dev/fuse is untouched.
	[ "$(stat -c %a /dev/fuse)" = 666 ]
}

@test "a user config under someone else's HOME is skipped, not fatal" {
	# slurmstepd runs OCI hooks as the user with HOME=/root
	require_root
	mkdir -p "$BATS_FILE_TMPDIR/otherhome/.config/berth"
	echo 'max_connections = 3' >"$BATS_FILE_TMPDIR/otherhome/.config/berth/berth.conf"
	chmod 0700 "$BATS_FILE_TMPDIR/otherhome"
	run as_user env HOME="$BATS_FILE_TMPDIR/otherhome" "$BERTH" config
	[ "$status" -eq 0 ]
	echo "$output" | grep -E '^max_connections +(= )?8 .*default'
}

@test "a readable user config file is read" {
	harness_user_dir
	as_user mkdir -p "$USER_DIR/work/ownhome/.config/berth"
	as_user sh -c "echo 'max_connections = 3' >'$USER_DIR/work/ownhome/.config/berth/berth.conf'"
	run as_user env HOME="$USER_DIR/work/ownhome" "$BERTH" config
	[ "$status" -eq 0 ]
	echo "$output" | grep -E "^max_connections +(= )?3 .*ownhome/.config/berth/berth.conf:1"
}

@test "berth doctor names a missing berth-image and fails" {
	harness_user_dir
	as_user mkdir -p "$USER_DIR/work/lonely"
	cp "$BERTH" "$USER_DIR/work/lonely/berth"
	chmod 0755 "$USER_DIR/work/lonely/berth"
	run as_user "$USER_DIR/work/lonely/berth" doctor
	echo "$output"
	[ "$status" -eq 1 ]
	echo "$output" | grep -E "^FAIL +image helper +image helper '.*/berth-image'"
	# and with berth-image beside it, the same line is ok
	run as_user "$BERTH" doctor
	echo "$output" | grep -E "^ok +image helper +$(dirname "$BERTH")/berth-image"
}
