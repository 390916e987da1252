# shellcheck shell=bash
# Building berth and preparing the host; shared by tests/run and tests/demo.sh.

# The test user, and /dev/fuse as common distributions have it (root only).
harness_setup_host() {
	[[ $(id -u) == 0 ]] || return 0
	if ! id berthtest >/dev/null 2>&1; then
		useradd --create-home --shell /bin/bash berthtest || return 1
	fi
	if [[ -c /dev/fuse ]]; then
		chmod 0666 /dev/fuse
	fi
}

# harness_build SRCDIR BUILDDIR LOGDIR CONFIGURE-ARGS...: autogen (when
# configure is missing or stale), configure (when BUILDDIR is unconfigured or
# was configured with other arguments) and make -j${BERTH_TESTS_JOBS:-2}.
harness_build() {
	local src=$1 dir=$2 logs=$3 a name cfg
	shift 3
	name=${dir##*/}
	if [[ ! -x $src/configure || $src/configure.ac -nt $src/configure ]]; then
		(cd "$src" && ./autogen.sh) >"$logs/autogen-$name.log" 2>&1 || {
			tail -n 20 "$logs/autogen-$name.log"
			return 1
		}
	fi
	mkdir -p "$dir"
	if [[ -x $dir/config.status ]]; then
		cfg=" $("$dir/config.status" --config | tr -d "'") "
		for a in "$@"; do
			[[ $cfg == *" $a "* ]] || rm -f "$dir/Makefile"
		done
	fi
	if [[ ! -f $dir/Makefile ]]; then
		(cd "$dir" && "$src/configure" "$@") >"$logs/configure-$name.log" 2>&1 || {
			tail -n 20 "$logs/configure-$name.log"
			return 1
		}
	fi
	make -C "$dir" -j"${BERTH_TESTS_JOBS:-2}" >"$logs/make-$name.log" 2>&1 || {
		grep -E -A3 'error|Error' "$logs/make-$name.log" | head -n 40
		return 1
	}
}

# install_berth BUILDDIR: $BERTH in a directory berthtest can reach (the
# source tree may sit in a directory the test user cannot read), with
# berth-image next to it, where berth looks first (doc/decisions.md).
install_berth() {
	mkdir -p "$BERTH_TESTS_RUNDIR/bin"
	cp "$1/berth" "$BERTH_TESTS_RUNDIR/bin/berth"
	cp "$1/berth-image" "$BERTH_TESTS_RUNDIR/bin/berth-image"
	chmod -R a+rX "$BERTH_TESTS_RUNDIR"
	export BERTH=$BERTH_TESTS_RUNDIR/bin/berth BERTH_BUILDDIR=$1
	if [[ -f $1/.libs/spank_berth.so ]]; then
		export SPANK_BERTH_SO=$1/.libs/spank_berth.so
	fi
}
