#!/bin/bash
# Benchmark: one big layer -> squashfs with berth's converter, against
# mksquashfs on the same tree with the same compressor and thread count.
#
#   bench/convert.sh [BUILD_DIR]        (BUILD_DIR holds bench/berth-convert)
#
# Environment: BENCH_DIR (scratch, default /var/tmp/berth-bench-convert: ~8 GB),
# RUNS (default 3), THREADS (default: all CPUs), CONFIGS (default
# "lz4 zstd:1 zstd:3 zstd:9 gzip:6 zstd:15"), SLOW_RUNS (runs for zstd:15
# and gzip, default 1).  The layer is built from /usr/lib/x86_64-linux-gnu,
# /usr/share and /usr/include of this machine (real binaries, libraries and
# text, ~2 GB, ~70k files); nothing of it is committed.
#
# Measured with /usr/bin/time: wall time, CPU time (user + sys), peak RSS;
# medians over RUNS, page cache warm (one untimed warm-up read first).
# Read speed: the image mounted with squashfuse (as run-time would) and
# every file read once through tar, single reader (median of the runs).
set -euo pipefail

BUILD=${1:-.}
CONVERT=$BUILD/bench/berth-convert
BENCH_DIR=${BENCH_DIR:-/var/tmp/berth-bench-convert}
RUNS=${RUNS:-3}
SLOW_RUNS=${SLOW_RUNS:-1}
THREADS=${THREADS:-$(nproc)}
CONFIGS=${CONFIGS:-"lz4 zstd:1 zstd:3 zstd:9 gzip:6 zstd:15"}
SOURCES=(usr/lib/x86_64-linux-gnu usr/share usr/include)

[ -x "$CONVERT" ] || { echo "build first: $CONVERT missing" >&2; exit 2; }
for t in mksquashfs squashfuse /usr/bin/time; do
	command -v "$t" >/dev/null || { echo "needs $t" >&2; exit 2; }
done
mkdir -p "$BENCH_DIR"
cd "$BENCH_DIR"

if [ ! -f layer.tar ]; then
	echo "building layer.tar from ${SOURCES[*]} ..." >&2
	# Sorted like the tars docker/buildkit write (Go walks directories in
	# lexical order), which also decides where squashfs puts the data.
	tar -C / --sort=name --numeric-owner -cf layer.tar.part "${SOURCES[@]}" 2>/dev/null || true
	mv layer.tar.part layer.tar
fi
if [ ! -f layer.tar.gz ]; then
	echo "compressing layer.tar.gz (gzip -6, as registries serve) ..." >&2
	gzip -6 -c layer.tar > layer.tar.gz.part && mv layer.tar.gz.part layer.tar.gz
fi
if [ ! -d tree ]; then
	mkdir tree.part && tar -C tree.part --numeric-owner -xf layer.tar && mv tree.part tree
fi

# "wall cpu rss_kib" of one run of "$@"
measure() {
	/usr/bin/time -f '%e %U %S %M' -o time.out "$@" >/dev/null 2>run.err ||
		{ cat run.err >&2; exit 1; }
	awk '{ printf "%.2f %.2f %d\n", $1, $2 + $3, $4 }' time.out
}

# Median of column $1 over lines on stdin.
median() { sort -n -k"$1" | awk -v c="$1" '{ v[NR] = $c } END { print v[int((NR + 1) / 2)] }'; }

# run LABEL N CMD... -> "LABEL wall cpu rss size" (medians)
run() {
	local label=$1 n=$2 out=$3
	shift 3
	: >runs.txt
	for ((i = 0; i < n; i++)); do
		rm -f "$out"
		measure "$@" >>runs.txt
	done
	printf '%s %s %s %s %s\n' "$label" "$(median 1 <runs.txt)" "$(median 2 <runs.txt)" \
		"$(median 3 <runs.txt)" "$(stat -c %s "$out")"
}

# Seconds to read every file of the image through squashfuse (single
# reader), median of $2 runs.
read_speed() {
	local img=$1 n=$2 t0 t1
	mkdir -p mnt
	: >reads.txt
	for ((i = 0; i < n; i++)); do
		squashfuse "$img" mnt
		t0=$(date +%s.%N)
		tar -C mnt -cf - . | wc -c >/dev/null
		t1=$(date +%s.%N)
		fusermount3 -u mnt 2>/dev/null || fusermount -u mnt
		echo "$t1 - $t0" | bc >>reads.txt
	done
	median 1 <reads.txt
}

cat layer.tar layer.tar.gz >/dev/null # warm the page cache
echo "# $(date -u +%F) $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))," \
	"threads=$THREADS, layer: $(du -sh --apparent-size layer.tar | cut -f1) tar," \
	"$(du -sh --apparent-size layer.tar.gz | cut -f1) gzip, $(find tree -type f | wc -l) files"
echo "# label wall_s cpu_s rss_kib size_bytes [read_s]"
for cfg in $CONFIGS; do
	comp=${cfg%%:*}
	level=${cfg#*:}
	[ "$level" = "$cfg" ] && level=0
	n=$RUNS
	case $cfg in zstd:15 | zstd:19 | gzip* | xz*) n=$SLOW_RUNS ;; esac
	bargs=(-c "$comp" -t "$THREADS")
	margs=(-comp "$comp" -processors "$THREADS" -noappend -no-progress -quiet)
	if [ "$level" != 0 ]; then
		bargs+=(-l "$level")
		case $comp in
		zstd) margs+=(-Xcompression-level "$level") ;;
		gzip) margs+=(-Xcompression-level "$level") ;;
		esac
	fi
	line=$(run "berth-gz-layer:$cfg" "$n" b.sqsh "$CONVERT" "${bargs[@]}" b.sqsh \
		"layer.tar.gz:application/vnd.oci.image.layer.v1.tar+gzip")
	echo "$line $(read_speed b.sqsh "$n")"
	run "berth-tar-layer:$cfg" "$n" b.sqsh "$CONVERT" "${bargs[@]}" b.sqsh \
		"layer.tar:application/vnd.oci.image.layer.v1.tar"
	line=$(run "berth-pack-dir:$cfg" "$n" b.sqsh "$CONVERT" "${bargs[@]}" -d tree b.sqsh)
	echo "$line $(read_speed b.sqsh "$n")"
	line=$(run "mksquashfs-dir:$cfg" "$n" m.sqsh mksquashfs tree m.sqsh "${margs[@]}")
	echo "$line $(read_speed m.sqsh "$n")"
done
rm -f b.sqsh m.sqsh time.out run.err runs.txt reads.txt
