#!/bin/bash
# berth's end-to-end demonstration (README command 1):
#   bash tests/demo.sh [--no-deps]
# Installs the build dependencies (as root; otherwise says what to install),
# builds berth, then shows it doing its job as the unprivileged user berthtest:
# a busybox image is pushed to a registry on 127.0.0.1, imported with
# `berth import` and run with `berth run ... echo hello`.  While this build of
# berth has no import/run commands yet, it shows `berth --version` and
# `berth doctor` instead.  Everything it starts is stopped by PID at the end.
set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=tests/harness/build.bash
source "$SRC/tests/harness/build.bash"

say() {
	if [[ -t 1 ]]; then printf '\n\033[1m==> %s\033[0m\n' "$*"; else printf '\n==> %s\n' "$*"; fi
}
# berth ARGS as the test user, echoing the command line first.
user_berth() {
	printf '%s$ berth %s\n' "$who" "$*"
	as_user "$BERTH" "$@"
}

if [[ ${1:-} != --no-deps ]]; then
	say "Dependencies"
	bash "$SRC/tests/deps.sh"
fi
harness_setup_host

BUILDDIR=$SRC/build
[[ -f $SRC/config.status ]] && BUILDDIR=$SRC
mkdir -p /var/tmp/berth-tests
chmod 0755 /var/tmp/berth-tests
BERTH_TESTS_RUNDIR=$(mktemp -d /var/tmp/berth-tests/demo.XXXXXX)
chmod 0755 "$BERTH_TESTS_RUNDIR"
export BERTH_TESTS_RUNDIR
LOGDIR=$BERTH_TESTS_RUNDIR/logs
mkdir -p "$LOGDIR"

say "Building berth in $BUILDDIR"
if ! harness_build "$SRC" "$BUILDDIR" "$LOGDIR"; then
	echo "demo: build failed" >&2
	exit 1
fi

# The harness's helpers (registry, images, as_user) outside bats.
install_berth "$BUILDDIR"
export BATS_TEST_FILENAME=demo
# shellcheck source=tests/harness/lib.bash
source "$SRC/tests/harness/lib.bash"
skip() { echo "demo: cannot run: $*" >&2; exit 1; }

cleanup() {
	registry_stop_all
	rm -rf --one-file-system "$BERTH_TESTS_RUNDIR" "$(harness_state_dir)"
}
trap cleanup EXIT

who=$(id -un)
[[ $(id -u) == 0 ]] && who=berthtest
say "berth $("$BERTH" --version | cut -d' ' -f2), run as the unprivileged user $who"
commands=$("$BERTH" --help | awk '/^Commands:/ {c = 1; next} /^$/ {c = 0} c {print $1}')
if grep -qx import <<<"$commands" && grep -qx run <<<"$commands"; then
	say "Starting a registry on loopback and pushing a busybox image"
	registry_start
	image_busybox demo/busybox:1
	echo "registry: http://$REGISTRY (plain HTTP, so declared insecure below)"
	export BERTH_INSECURE_REGISTRIES=$REGISTRY
	ref="docker://$REGISTRY#demo/busybox:1"
	say "Importing the image"
	user_berth import "$ref"
	say "Running a command inside it"
	out=$(user_berth run "$ref" echo hello)
	echo "$out"
	if [[ ${out##*$'\n'} != hello ]]; then
		echo "demo: expected 'hello' from the container" >&2
		exit 1
	fi
	say "Done: the image was pulled, converted and run without root."
else
	say "This build has no 'berth import'/'berth run' yet; showing what it has"
	user_berth --version
	user_berth doctor
	say "Done."
fi
