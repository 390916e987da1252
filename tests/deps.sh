#!/bin/bash
# Install every Debian 12 package berth needs to build and test.
#   bash tests/deps.sh            as root: apt-get install what is missing
#                                 otherwise: print what to install, exit 1 if anything is
#   bash tests/deps.sh --list     print the package list
set -euo pipefail

PACKAGES=(
	# build
	autoconf automake libtool pkg-config make gcc
	libslurm-dev libhwloc-dev libarchive-dev zlib1g-dev libzstd-dev libisal-dev libsquashfuse-dev libsquashfs-dev
	libcurl4-openssl-dev libjansson-dev libssl-dev libfuse3-dev
	# static archives berth links (configure --disable-static-run does without)
	liblz4-dev liblzo2-dev liblzma-dev
	# run: FUSE, squashfs, overlay
	fuse3 squashfuse fuse-overlayfs squashfs-tools squashfs-tools-ng uidmap
	# test harness: registry, images, Slurm, the test runner
	docker-registry skopeo umoci busybox-static debootstrap apache2-utils zstd
	slurm-wlm slurmd slurmctld slurm-client munge
	# MPI tests and bench: Open MPI over PMIx (Slurm's mpi_pmix_v4.so loads libpmix2),
	# MPICH for PMI-2 (Debian's Open MPI has no PMI-2 client)
	openmpi-bin libopenmpi-dev libpmix2 libpmix-dev mpich libmpich-dev
	bats python3 curl util-linux passwd tar gzip ca-certificates
)

if [[ ${1:-} == --list ]]; then
	printf '%s\n' "${PACKAGES[@]}"
	exit 0
fi

missing=()
for p in "${PACKAGES[@]}"; do
	if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
		missing+=("$p")
	fi
done
if ((${#missing[@]} == 0)); then
	echo "deps: all ${#PACKAGES[@]} packages installed"
	exit 0
fi
if [[ $(id -u) != 0 ]]; then
	echo "deps: missing Debian packages; as root run:" >&2
	echo "  apt-get install ${missing[*]}" >&2
	exit 1
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt_install() {
	apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
}
# The package lists may be stale or absent on a fresh machine: update once, retry.
if ! apt_install; then
	apt-get update -q </dev/null
	apt_install
fi
