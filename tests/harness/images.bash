# shellcheck shell=bash
# Fixture images (sourced by lib.bash).  Each builder makes its OCI layout once
# per test run (in $BERTH_TESTS_RUNDIR/images, readable by berthtest, so tests
# can also import the layout directly), then pushes it:
#
#   image_edgecases REPO:TAG [REGISTRY]  3 layers of whiteouts, opaque dirs,
#       type changes, hard links (also across layers), symlinks (absolute,
#       relative, dangling), uid 1234 owners, setuid/setgid/sticky, FIFO,
#       device nodes, a user.* xattr, a >100-char name, a UTF-8 name.
#       Exports EDGECASES_OCI (the layout) and EDGECASES_EXPECT: the flattened
#       tree it must give, as tests/harness/treelist.py prints one, e.g.
#         diff "$EDGECASES_EXPECT" <(treelist --exclude /.berth IMAGE.sqsh)
#       plus $EDGECASES_EXPECT.xattrs (compare with treelist --xattrs).
#   image_zstd REPO:TAG [REGISTRY]       busybox in zstd-compressed layers;
#       /etc/zstd-marker says "zstd layers".  Exports ZSTD_OCI.
#   image_multiarch REPO:TAG [REGISTRY]  an OCI index: linux/amd64 (busybox,
#       /etc/platform = amd64) and linux/arm64/v8 (/etc/platform = arm64).
#       Exports MULTIARCH_OCI.
#   image_debian REPO:TAG [REGISTRY]     debootstrap --variant=minbase bookworm
#       from this machine's apt mirror (needs root once; cached in
#       /var/cache/berth-tests).  Exports DEBIAN_OCI.
#   tiny_deb OUT.deb                     a one-file Debian package (dpkg-deb) whose
#       /opt/berth-tiny/hello belongs to uid:gid 1:1, so installing it chowns.
#   treelist ARGS...                     tests/harness/treelist.py

: "${BERTH_TESTS_CACHE:=/var/cache/berth-tests}"

treelist() {
	python3 "$HARNESS_DIR/treelist.py" "$@"
}

# harness_fixture NAME SPEC [MKIMAGE-ARGS...]: build the layout once per run;
# print its directory.  A lock keeps concurrent test files from racing.
harness_fixture() {
	local name=$1 spec=$2 dir
	shift 2
	dir=$(harness_rundir)/images/$name
	mkdir -p "${dir%/*}"
	chmod 0755 "${dir%/*}"
	(
		flock 9
		if [[ ! -f $dir/index.json ]]; then
			rm -rf "$dir.tmp"
			mkimage "$spec" "$dir.tmp" "$@" >/dev/null || exit 1
			chmod -R a+rX "$dir.tmp"
			mv "$dir.tmp" "$dir"
		fi
	) 9>"$dir.lock" || harness_die "building the $name image failed" || return 1
	echo "$dir"
}

harness_registry_of() {
	local reg=${1:-${REGISTRY:-}}
	[[ -n $reg ]] || harness_die "no registry (call registry_start first)" || return 1
	echo "$reg"
}

image_edgecases() {
	local ref=$1 reg expect
	reg=$(harness_registry_of "${2:-}") || return 1
	skip_unless skopeo || return 1
	expect=$(harness_rundir)/images/edgecases.expect
	EDGECASES_OCI=$(harness_fixture edgecases "$HARNESS_DIR/images/edgecases.json" \
		--expect "$expect") || return 1
	EDGECASES_EXPECT=$expect
	export EDGECASES_OCI EDGECASES_EXPECT
	image_push "$EDGECASES_OCI" "$reg/$ref"
}

image_zstd() {
	local ref=$1 reg
	reg=$(harness_registry_of "${2:-}") || return 1
	skip_unless skopeo zstd busybox || return 1
	ZSTD_OCI=$(harness_fixture zstd "$HARNESS_DIR/images/zstd.json") || return 1
	export ZSTD_OCI
	image_push "$ZSTD_OCI" "$reg/$ref"
}

image_multiarch() {
	local ref=$1 reg
	reg=$(harness_registry_of "${2:-}") || return 1
	skip_unless skopeo busybox || return 1
	MULTIARCH_OCI=$(harness_fixture multiarch "$HARNESS_DIR/images/multiarch.json") || return 1
	export MULTIARCH_OCI
	image_push "$MULTIARCH_OCI" "$reg/$ref"
}

# The Debian mirror this machine's apt uses (deb822 .sources or sources.list).
harness_apt_mirror() {
	local f uri
	for f in /etc/apt/sources.list.d/*.sources; do
		[[ -f $f ]] || continue
		uri=$(awk '
			/^$/ { if (deb && bw && u) { print u; exit } deb = bw = 0; u = "" }
			/^Types:.*deb( |$)/ { deb = 1 }
			/^Suites:.*bookworm( |$)/ { bw = 1 }
			/^URIs:/ { u = $2 }
			END { if (deb && bw && u) print u }' "$f" | head -n 1)
		[[ -n $uri ]] && { echo "$uri"; return 0; }
	done
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[[ -f $f ]] || continue
		uri=$(awk '$1 == "deb" && $0 ~ / bookworm / {
			for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' "$f")
		[[ -n $uri ]] && { echo "$uri"; return 0; }
	done
	echo http://deb.debian.org/debian
}

# The debootstrapped tree as one tar, built once per machine.  debootstrap
# mounts /proc and /sys in its target: it runs in a private mount namespace so
# those mounts die with it, and the tree never holds a host mount.
harness_debian_tar() {
	local tar=$BERTH_TESTS_CACHE/debian-bookworm-minbase.tar work
	[[ -f $tar ]] && { echo "$tar"; return 0; }
	work=$BERTH_TESTS_CACHE/debootstrap.$$
	rm -rf --one-file-system "$work"
	mkdir -p "$work"
	if ! unshare --mount --propagation private -- \
		debootstrap --variant=minbase bookworm "$work/root" "$(harness_apt_mirror)" \
		</dev/null >"$work.log" 2>&1; then
		tail -n 20 "$work.log" >&2
		rm -rf --one-file-system "$work"
		harness_die "debootstrap failed (log: $work.log)" || return 1
	fi
	# Images ship an empty /dev, /proc, /sys and no apt caches.
	rm -rf --one-file-system "$work"/root/var/cache/apt/archives/*.deb \
		"$work"/root/var/lib/apt/lists/* "$work"/root/dev/* "$work"/root/proc/* \
		"$work"/root/sys/*
	tar --numeric-owner --xattrs --xattrs-include='*' --format=posix --sort=name \
		--pax-option=delete=atime,delete=ctime -C "$work/root" -cf "$tar.tmp" . &&
		mv "$tar.tmp" "$tar"
	rm -rf --one-file-system "$work" "$work.log"
	[[ -f $tar ]] || harness_die "taring the Debian tree failed" || return 1
	echo "$tar"
}

image_debian() {
	local ref=$1 reg tar dir
	reg=$(harness_registry_of "${2:-}") || return 1
	skip_unless skopeo || return 1
	dir=$BERTH_TESTS_CACHE/debian-oci
	if [[ ! -f $dir/index.json && ! -f $BERTH_TESTS_CACHE/debian-bookworm-minbase.tar ]]; then
		require_root || return 1
		skip_unless debootstrap unshare || return 1
	fi
	mkdir -p "$BERTH_TESTS_CACHE"
	chmod 0755 "$BERTH_TESTS_CACHE"
	(
		flock 9
		if [[ ! -f $dir/index.json ]]; then
			tar=$(harness_debian_tar) || exit 1
			printf '{"config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": ["bash"]}, "layers": [{"tar": "%s"}]}\n' \
				"$tar" >"$BERTH_TESTS_CACHE/debian.json"
			rm -rf "$dir.tmp"
			mkimage "$BERTH_TESTS_CACHE/debian.json" "$dir.tmp" >/dev/null || exit 1
			chmod -R a+rX "$dir.tmp"
			mv "$dir.tmp" "$dir"
		fi
	) 9>"$BERTH_TESTS_CACHE/lock" || harness_die "building the Debian image failed" || return 1
	DEBIAN_OCI=$dir
	export DEBIAN_OCI
	image_push "$DEBIAN_OCI" "$reg/$ref"
}

tiny_deb() {
	local out=$1 d
	skip_unless dpkg-deb || return 1
	d=$(mktemp -d)
	mkdir -p "$d/DEBIAN" "$d/opt/berth-tiny"
	printf '%s\n' 'Package: berth-tiny' 'Version: 1.0' 'Architecture: all' \
		'Maintainer: berth tests <tests@example.invalid>' \
		'Description: one file owned by uid 1, for remap-root tests' >"$d/DEBIAN/control"
	echo hello >"$d/opt/berth-tiny/hello"
	# as root: the file's owner goes into the package; as a user: root's
	chown -R 1:1 "$d/opt/berth-tiny" 2>/dev/null || true
	dpkg-deb --build "$d" "$out" >/dev/null || { rm -rf "$d"; return 1; }
	chmod 0644 "$out"
	rm -rf "$d"
}
