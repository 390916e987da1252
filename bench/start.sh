#!/bin/bash
# bench/start.sh: start-up time of `berth run IMG /bin/true` against
#   - the floor: unshare -Urm + squashfuse + chroot + exec, scripted;
#   - Charliecloud's ch-run on the same squashfs (Debian package charliecloud);
# for a 5 MB and a 2 GB image, berth cold (mount_linger=0: a fresh mount
# each run) and warm (runs join the lingering keeper); and the RSS of
# berth's FUSE server.  Medians of N runs, as the unprivileged user.
# Usage (as root): bench/start.sh [-n N] [--write]   (--write appends to bench/RESULTS.md)
set -euo pipefail
N=30 WRITE=0
while (($#)); do
	case $1 in
	-n) N=$2; shift ;;
	--write) WRITE=1 ;;
	*) echo "usage: $0 [-n N] [--write]" >&2; exit 2 ;;
	esac
	shift
done
HERE=$(cd "$(dirname "$0")" && pwd)
USER_=${BENCH_USER:-berthtest}
WORK=/var/tmp/berth-bench-start
SRC=${BERTH:-}
for c in "$SRC" "$HERE/../build/berth" "$HERE/../berth"; do
	[[ -n $c && -x $c ]] && { SRC=$c; break; }
done
[[ -x $SRC ]] || { echo "build berth first (or set BERTH)" >&2; exit 1; }
for t in squashfuse ch-run mksquashfs busybox; do
	command -v "$t" >/dev/null || { echo "missing $t" >&2; exit 1; }
done
mkdir -p "$WORK"
chmod 0755 "$WORK"
install -m 0755 "$SRC" "$WORK/berth"
# The image side, next to berth where it looks first (a .sqsh run never
# starts it; copied so the bench's berth is complete).
[[ -x ${SRC%/*}/berth-image ]] && install -m 0755 "${SRC%/*}/berth-image" "$WORK/berth-image"

mkimage() { # NAME MB
	local d=$WORK/$1.d
	[[ -f $WORK/$1.sqsh ]] && return 0
	rm -rf --one-file-system "$d"
	mkdir -p "$d"/{bin,etc,tmp,proc,sys,dev,home,.berth}
	cp "$(command -v busybox)" "$d/bin/busybox"
	ln -s busybox "$d/bin/sh"
	ln -s busybox "$d/bin/true"
	echo '{"config": {"config": {"Env": ["PATH=/bin"]}}}' >"$d/.berth/image.json"
	# ch-run binds these and needs them present
	echo 'root:x:0:0:root:/root:/bin/sh' >"$d/etc/passwd"
	echo 'root:x:0:' >"$d/etc/group"
	touch "$d/etc/hosts" "$d/etc/resolv.conf"
	mkdir -p "$d/mnt" "$d/var/tmp" "$d/run"
	mkdir -p "$d/data"
	# incompressible payload, in 64 MB files, uncompressed in the image
	local left=$2 i=0
	while ((left > 0)); do
		local mb=$((left < 64 ? left : 64))
		head -c "${mb}M" /dev/urandom >"$d/data/blob$i"
		left=$((left - mb)) i=$((i + 1))
	done
	mksquashfs "$d" "$WORK/$1.sqsh" -noappend -all-root -quiet -noD -noF >/dev/null
	chmod 0644 "$WORK/$1.sqsh"
	rm -rf --one-file-system "$d"
}
mkimage small 3
mkimage large 2048

# The measuring loop runs as the user, in one process tree, so runuser's
# own cost is not counted.
cat >"$WORK/loop.sh" <<'LOOP'
#!/bin/bash
# loop.sh N CMD...: print the median wall time of CMD in ms
n=$1; shift
ts=()
for ((i = 0; i < n; i++)); do
	s=$EPOCHREALTIME
	"$@" >/dev/null 2>&1 || { echo "FAILED: $*" >&2; exit 1; }
	e=$EPOCHREALTIME
	ts+=("$(echo "($e - $s) * 1000" | bc -l)")
done
printf '%s\n' "${ts[@]}" | sort -g | awk '{a[NR]=$1} END {m = NR % 2 ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2; printf "%.1f\n", m}'
LOOP
cat >"$WORK/floor.sh" <<'FLOOR'
#!/bin/sh
# unshare -Urm + squashfuse + chroot + exec; umount so squashfuse exits
m=$(mktemp -d /tmp/floor.XXXXXX)
unshare -Urm sh -c 'squashfuse "$1" "$2" && chroot "$2" /bin/true; umount "$2"' sh "$1" "$m"
rmdir "$m"
FLOOR
chmod 0755 "$WORK/loop.sh" "$WORK/floor.sh"

as_user() {
	runuser -u "$USER_" -- env -i HOME="$(getent passwd "$USER_" | cut -d: -f6)" USER="$USER_" \
		PATH=/usr/bin:/bin:/usr/sbin:/sbin XDG_RUNTIME_DIR="$WORK/run" XDG_CACHE_HOME="$WORK/cache" "$@"
}
mkdir -p "$WORK/run" "$WORK/cache"
chown "$USER_:" "$WORK/run" "$WORK/cache"
B=$WORK/berth
declare -A R
for img in small large; do
	I=$WORK/$img.sqsh
	R[floor_$img]=$(as_user "$WORK/loop.sh" "$N" "$WORK/floor.sh" "$I")
	R[chrun_$img]=$(as_user "$WORK/loop.sh" "$N" ch-run "$I" -- /bin/true)
	R[cold_$img]=$(as_user env BERTH_MOUNT_LINGER=0 "$WORK/loop.sh" "$N" "$B" run "$I" /bin/true)
	as_user env BERTH_MOUNT_LINGER=30 "$B" run "$I" /bin/true
	R[warm_$img]=$(as_user env BERTH_MOUNT_LINGER=30 "$WORK/loop.sh" "$N" "$B" run "$I" /bin/true)
done
# RSS of the FUSE server after reading the whole large image
as_user env BERTH_MOUNT_LINGER=30 "$B" run "$WORK/large.sqsh" sh -c 'cat /data/* >/dev/null'
rss=$(for p in $(pgrep -u "$USER_" -x berth-squashfus); do awk '/VmRSS/{print $2}' "/proc/$p/status"; done | sort -n | tail -1)
# stop the lingering keepers
for p in $(pgrep -u "$USER_" -x berth-keeper); do
	if grep -q "$WORK" "/proc/$p/cmdline" 2>/dev/null; then kill "$p"; fi
done

ratio() { echo "scale=2; $1 / $2" | bc -l; }
table() {
	echo "### berth run IMG /bin/true: start-up ($(date -u +%Y-%m-%d), $(uname -r), $(nproc) cores, N=$N, medians)"
	echo
	echo "| image | floor (unshare+squashfuse+chroot) | ch-run $(USER=x ch-run --version 2>&1 | head -1) | berth cold (linger 0) | berth warm (linger) | cold/floor | warm/floor | cold/ch-run | warm/ch-run |"
	echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
	for img in small large; do
		echo "| $img ($(du -h "$WORK/$img.sqsh" | cut -f1)) | ${R[floor_$img]} ms | ${R[chrun_$img]} ms | ${R[cold_$img]} ms | ${R[warm_$img]} ms | $(ratio "${R[cold_$img]}" "${R[floor_$img]}") | $(ratio "${R[warm_$img]}" "${R[floor_$img]}") | $(ratio "${R[cold_$img]}" "${R[chrun_$img]}") | $(ratio "${R[warm_$img]}" "${R[chrun_$img]}") |"
	done
	echo
	echo "Large vs small, berth cold: $(ratio "${R[cold_large]}" "${R[cold_small]}"); warm: $(ratio "${R[warm_large]}" "${R[warm_small]}")."
	echo "FUSE server RSS after reading the 2 GB image: $((rss / 1024)) MiB."
}
table
if ((WRITE)); then
	{
		[[ -s $HERE/RESULTS.md ]] || echo "# berth benchmark results"
		echo
		echo "## Start-up (bench/start.sh)"
		echo
		table
	} >>"$HERE/RESULTS.md"
fi
