# shellcheck shell=bash
# The Open MPI test image (load after lib):
#   load ../harness/lib
#   load ../harness/mpi
#
#   mpi_programs DIR     compile tests/harness/mpi/mpi_check.c (Open MPI:
#                        mpi_check, MPICH: mpi_check_mpich) and
#                        bench/mpi_bench.c (Open MPI) with the host's
#                        mpicc.openmpi / mpicc.mpich into DIR
#   image_mpi            Debian bookworm minbase + openmpi-bin + libpmix2 +
#                        libmpich12 (debootstrap once per machine, cached in
#                        /var/cache/berth-tests) plus /app (mpi_check),
#                        /app-mpich and /bench (mpi_bench) as a second
#                        layer.  Exports
#                        MPI_OCI, the OCI layout (readable by berthtest),
#                        and MPI_PROGS, the host copies of the programs.
#   mpi_import           image_mpi, then `berth import` it as berthtest;
#                        exports MPI_SQSH, the squashfs in the user's cache.
#
# The programs are compiled on the host against Debian's Open MPI, the same
# package version the image holds, so the binaries match the image's libmpi.

: "${BERTH_TESTS_CACHE:=/var/cache/berth-tests}"
# Open MPI (PMIx) and MPICH's library (PMI-2: Debian's Open MPI has no PMI-2 client).
MPI_IMAGE_PACKAGES=openmpi-bin,libpmix2,libmpich12

mpi_programs() {
	local dir=$1
	skip_unless mpicc.openmpi mpicc.mpich || return 1
	mkdir -p "$dir"
	mpicc.openmpi -O2 -Wall -Werror -o "$dir/mpi_check" "$HARNESS_DIR/mpi/mpi_check.c" &&
		mpicc.mpich -O2 -Wall -Werror -o "$dir/mpi_check_mpich" "$HARNESS_DIR/mpi/mpi_check.c" &&
		mpicc.openmpi -O2 -Wall -Werror -o "$dir/mpi_bench" "$BERTH_SRCDIR/bench/mpi_bench.c" ||
		harness_die "mpicc failed" || return 1
	chmod 0755 "$dir"/mpi_*
}

# Debian bookworm with Open MPI as one tar, built once per machine (the same
# private-mount-namespace debootstrap as harness_debian_tar).
harness_openmpi_tar() {
	local tar work
	# Named by the package list, so a changed list builds a new tree.
	tar=$BERTH_TESTS_CACHE/debian-bookworm-mpi-$(echo "$MPI_IMAGE_PACKAGES" | sha256sum | cut -c1-8).tar
	[[ -f $tar ]] && { echo "$tar"; return 0; }
	require_root || return 1
	skip_unless debootstrap unshare || return 1
	work=$BERTH_TESTS_CACHE/debootstrap-mpi.$$
	rm -rf --one-file-system "$work"
	mkdir -p "$work"
	if ! unshare --mount --propagation private -- \
		debootstrap --variant=minbase --include="$MPI_IMAGE_PACKAGES" bookworm \
		"$work/root" "$(harness_apt_mirror)" </dev/null >"$work.log" 2>&1; then
		tail -n 20 "$work.log" >&2
		rm -rf --one-file-system "$work"
		harness_die "debootstrap of the Open MPI image failed (log: $work.log)" || return 1
	fi
	rm -rf --one-file-system "$work"/root/var/cache/apt/archives/*.deb \
		"$work"/root/var/lib/apt/lists/* "$work"/root/dev/* "$work"/root/proc/* \
		"$work"/root/sys/*
	tar --numeric-owner --xattrs --xattrs-include='*' --format=posix --sort=name \
		--pax-option=delete=atime,delete=ctime -C "$work/root" -cf "$tar.tmp" . &&
		mv "$tar.tmp" "$tar"
	rm -rf --one-file-system "$work" "$work.log"
	[[ -f $tar ]] || harness_die "taring the Open MPI tree failed" || return 1
	echo "$tar"
}

image_mpi() {
	local progs tar key dir spec old
	skip_unless mpicc.openmpi mpicc.mpich || return 1
	progs=$(harness_rundir)/images/mpi-progs
	mkdir -p "${progs%/*}"
	chmod 0755 "${progs%/*}"
	(
		flock 9
		[[ -x $progs/mpi_check && -x $progs/mpi_check_mpich && -x $progs/mpi_bench ]] ||
			mpi_programs "$progs"
	) 9>"$(harness_rundir)/images/mpi-progs.lock" || return 1
	mkdir -p "$BERTH_TESTS_CACHE"
	chmod 0755 "$BERTH_TESTS_CACHE"
	tar=$(harness_openmpi_tar) || return 1
	# The image's Env names variables that the host's must win over.
	spec=$(printf '%s\n' '{"config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",' \
		'   "PMIX_HOSTNAME=image-host", "FI_BERTH_TEST=image", "UCX_BERTH_TEST=image"], "Cmd": ["/app"]},' \
		' "layers": [{"tar": "'"$tar"'", "compression": "none"},' \
		'  {"entries": [{"path": "app", "type": "file", "mode": "0755", "source": "'"$progs/mpi_check"'"},' \
		'               {"path": "app-mpich", "type": "file", "mode": "0755", "source": "'"$progs/mpi_check_mpich"'"},' \
		'               {"path": "bench", "type": "file", "mode": "0755", "source": "'"$progs/mpi_bench"'"}]}]}')
	# The layout is cached per spec and program build.
	key=$({ echo "$spec"; cat "$progs"/mpi_*; } | sha256sum | cut -c1-16)
	dir=$BERTH_TESTS_CACHE/openmpi-oci-$key
	(
		flock 9
		if [[ ! -f $dir/index.json ]]; then
			echo "$spec" >"$dir.json"
			rm -rf "$dir.tmp"
			mkimage "$dir.json" "$dir.tmp" >/dev/null || exit 1
			chmod -R a+rX "$dir.tmp"
			for old in "$BERTH_TESTS_CACHE"/openmpi-oci-*; do
				[[ $old == "$dir"* ]] || rm -rf --one-file-system "$old"
			done
			mv "$dir.tmp" "$dir"
		fi
	) 9>"$BERTH_TESTS_CACHE/lock-openmpi" || harness_die "building the Open MPI image failed" || return 1
	MPI_OCI=$dir
	MPI_PROGS=$progs
	export MPI_OCI MPI_PROGS
}

mpi_import() {
	image_mpi || return 1
	MPI_SQSH=$(as_user "$BERTH" import --quiet "oci-dir://$MPI_OCI") ||
		harness_die "berth import of the Open MPI image failed" || return 1
	export MPI_SQSH
}

# mpi_fake_verbs_root DIR: a host tree for mpi_inject_verbs (read below
# gpu_driver_root): /etc/libibverbs.d/fake.driver, a real libibverbs.so.1
# (ldconfig only lists ELF files) with an ld.so.cache naming it, and a
# provider directory holding libfake-rdmav34.so.
mpi_fake_verbs_root() {
	local dir=$1 lib=/usr/lib/x86_64-linux-gnu host
	host=$(ldconfig -p | awk '$1 == "libibverbs.so.1" && /x86-64/ {print $NF; exit}')
	[[ -n $host ]] || harness_skip "needs libibverbs1 on the host" || return 1
	mkdir -p "$dir/etc/libibverbs.d" "$dir$lib/libibverbs"
	echo "driver fake" >"$dir/etc/libibverbs.d/fake.driver"
	cp "$(readlink -f "$host")" "$dir$lib/libibverbs.so.1"
	echo "fake provider" >"$dir$lib/libibverbs/libfake-rdmav34.so"
	echo "$lib" >"$dir/etc/ld.so.conf"
	ldconfig -r "$dir" || harness_die "ldconfig -r $dir failed" || return 1
	chmod -R a+rX "$dir"
}
