#!/bin/bash
# Benchmark: cold `berth import` of a large multi-layer image from a local
# registry, against the two peers the issue names, and a cached re-import.
#
#   bench/import.sh [BUILD_DIR]      (BUILD_DIR holds ./berth, ./berth-image)
#
#   berth     BERTH_INSECURE_REGISTRIES=REG berth import docker://REG#bench/big:1
#   (a) oci   skopeo copy -> oci:DIR:tag; umoci raw unpack --rootless;
#             mksquashfs -comp lz4 -processors 2 (berth's default compressor)
#   (b) ch    ch-image pull; ch-convert -i ch-image -o squash (its mksquashfs
#             call gets "-comp lz4 -processors 2" appended by a PATH shim, so
#             all three write lz4)
#   re-import berth import of the same reference again (cache hit)
#
# Every tool starts cold: a fresh cache/storage directory per run (nothing
# is dropped system-wide, so the page cache holds the registry's blobs).
# ch-image 0.31 only speaks HTTPS to registries (registry.py builds
# "https://host:port/v2" unconditionally), so it pulls from a second
# docker-registry serving the same storage over TLS with a self-signed
# certificate, trusted through REQUESTS_CA_BUNDLE (its --tls-no-verify still
# failed certificate verification here); berth and skopeo use the plain-HTTP
# one.
#
# Environment: BENCH_DIR (default /var/tmp/berth-bench; the image is cached
# in $BENCH_DIR/import, ~0.7 GB, and reused), RUNS (default 3: medians),
# REIMPORT_RUNS (default 5), BENCH_KEEP=1 keeps the work directory (outputs,
# unpacked trees, caches; ~6 GB) and prints where it is.  The markdown
# section is printed and appended to RESULTS_MD (default bench/RESULTS.md;
# RESULTS_MD= only prints it).
#
# The image: 3 gzip layers made with tar from this machine's
# /usr/lib/x86_64-linux-gnu, /usr/share and /usr/include (~2.1 GB, ~86k
# files), written as an OCI layout by hand and pushed with skopeo; the
# config has a history entry per layer, which ch-image requires.
set -euo pipefail

BUILD=$(cd "${1:-.}" && pwd)
BERTH=$BUILD/berth
BENCH_DIR=${BENCH_DIR:-/var/tmp/berth-bench}
RUNS=${RUNS:-3}
REIMPORT_RUNS=${REIMPORT_RUNS:-5}
CACHE=$BENCH_DIR/import
SOURCES=(usr/lib/x86_64-linux-gnu usr/share usr/include)
REPO=bench/big
TAG=1
# ch-image is Python; pyenv shims may shadow the Debian python3 it needs.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
export USER=${USER:-$(id -un)}

[ -x "$BERTH" ] || { echo "build first: $BERTH missing" >&2; exit 2; }
for t in docker-registry skopeo umoci mksquashfs ch-image ch-convert openssl curl /usr/bin/time; do
	command -v "$t" >/dev/null || { echo "needs $t" >&2; exit 2; }
done
mkdir -p "$CACHE"
WORK=$(mktemp -d "$BENCH_DIR/import-work.XXXXXX")

cleanup() {
	local pid
	for pid in $(cat "$WORK/pids" 2>/dev/null); do
		kill "$pid" 2>/dev/null || true
	done
	# The raw measurements outlive a failed run.
	cp "$WORK/steps" "$CACHE/last-steps" 2>/dev/null || true
	if [ "${BENCH_KEEP:-0}" = 1 ]; then
		echo "kept $WORK" >&2
	else
		# umoci's rootless unpack leaves read-only dirs: make them writable.
		chmod -R u+rwX "$WORK" 2>/dev/null || true
		rm -rf --one-file-system "$WORK"
	fi
}
trap cleanup EXIT

free_port() {
	local port hex
	for _ in $(seq 1 50); do
		port=$((20000 + RANDOM % 40000))
		printf -v hex ':%04X ' "$port"
		if ! awk '{print $2 " "}' /proc/net/tcp /proc/net/tcp6 | grep -q "$hex"; then
			echo "$port"
			return 0
		fi
	done
	return 1
}

# registry NAME [tls]: start docker-registry on $CACHE/registry, print its port.
registry() {
	local name=$1 tls=${2:-} port pid conf=$WORK/registry-$1.yml scheme=http
	port=$(free_port)
	{
		echo "version: 0.1"
		echo "log: {level: warn, accesslog: {disabled: true}}"
		echo "storage:"
		echo "  filesystem: {rootdirectory: $CACHE/registry}"
		echo "http:"
		echo "  addr: 127.0.0.1:$port"
		if [ -n "$tls" ]; then
			echo "  tls: {certificate: $WORK/tls.crt, key: $WORK/tls.key}"
			scheme=https
		fi
	} >"$conf"
	docker-registry serve "$conf" </dev/null >>"$WORK/registry-$name.log" 2>&1 &
	pid=$!
	# Called in $(...): the PID list lives in a file, not a variable.
	echo "$pid" >>"$WORK/pids"
	for _ in $(seq 1 100); do
		if curl -ks -o /dev/null --max-time 2 "$scheme://127.0.0.1:$port/v2/"; then
			echo "$port"
			return 0
		fi
		sleep 0.1
	done
	echo "registry $name did not start: $(tail -n 3 "$WORK/registry-$name.log")" >&2
	return 1
}

sha() { sha256sum "$1" | cut -d' ' -f1; }

# Write blob FILE into the OCI layout $1, print its digest.
blob_add() {
	local d
	d=$(sha "$2")
	mv "$2" "$1/blobs/sha256/$d"
	echo "$d"
}

build_image() {
	local lay=$WORK/layout i src t diffs="" layers="" hist="" d size cfg man
	echo "building the image from ${SOURCES[*]} (once; cached in $CACHE) ..." >&2
	mkdir -p "$lay/blobs/sha256"
	for i in "${!SOURCES[@]}"; do
		src=${SOURCES[$i]}
		t=$WORK/layer$i.tar
		# Sorted like the tars buildkit writes; sockets are skipped by tar.
		tar -C / --sort=name --numeric-owner -cf "$t" "$src" 2>/dev/null || [ -s "$t" ]
	done
	for i in "${!SOURCES[@]}"; do
		t=$WORK/layer$i.tar
		(sha "$t" >"$t.diffid" && gzip -6 -n <"$t" >"$t.gz" && rm "$t") &
	done
	wait
	for i in "${!SOURCES[@]}"; do
		t=$WORK/layer$i.tar
		size=$(stat -c %s "$t.gz")
		d=$(blob_add "$lay" "$t.gz")
		diffs+="${diffs:+,}\"sha256:$(cat "$t.diffid")\""
		hist+="${hist:+,}{\"created\":\"2026-01-01T00:00:00Z\",\"created_by\":\"tar -c /${SOURCES[$i]}\"}"
		layers+="${layers:+,}{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"sha256:$d\",\"size\":$size}"
	done
	printf '{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/usr/bin:/bin"],"Cmd":["/bin/sh"]},"rootfs":{"type":"layers","diff_ids":[%s]},"history":[%s]}' \
		"$diffs" "$hist" >"$WORK/config.json"
	size=$(stat -c %s "$WORK/config.json")
	cfg=$(blob_add "$lay" "$WORK/config.json")
	printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[%s]}' \
		"$cfg" "$size" "$layers" >"$WORK/manifest.json"
	size=$(stat -c %s "$WORK/manifest.json")
	man=$(blob_add "$lay" "$WORK/manifest.json")
	printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"%s"}}]}' \
		"$man" "$size" "$TAG" >"$lay/index.json"
	echo '{"imageLayoutVersion":"1.0.0"}' >"$lay/oci-layout"
	skopeo copy -q --dest-tls-verify=false "oci:$lay:$TAG" "docker://$REG/$REPO:$TAG"
	rm -rf "$lay"
	touch "$CACHE/image-v2.done"
}

# timed LABEL CMD...: run CMD under /usr/bin/time, append "LABEL wall cpu rss_kb".
timed() {
	local label=$1
	shift
	/usr/bin/time -o "$WORK/time.out" -f '%e %U %S %M' "$@" >>"$WORK/cmd.log" 2>&1 || {
		echo "FAILED: $label: $*; log: $(tail -n 5 "$WORK/cmd.log")" >&2
		return 1
	}
	awk -v l="$label" '{printf "%s %.2f %.2f %d\n", l, $1, $2 + $3, $4}' "$WORK/time.out" >>"$WORK/steps"
}

openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 \
	-addext subjectAltName=IP:127.0.0.1 -keyout "$WORK/tls.key" -out "$WORK/tls.crt" 2>/dev/null
mkdir -p "$CACHE/registry"
REG=127.0.0.1:$(registry plain)
# v2: config with "history" (ch-image refuses an image without it).
[ -f "$CACHE/image-v2.done" ] || build_image
REG_TLS=127.0.0.1:$(registry tls tls)
REF=docker://$REG#$REPO:$TAG

# mksquashfs shim for ch-convert: same compressor and threads as the others.
# ch-convert puts its own directory first in PATH, so it runs from a prefix
# of symlinks ($WORK/shim/{bin,lib}) whose bin/ holds the shim.
mkdir -p "$WORK/shim/bin" "$WORK/shim/lib"
ln -s /usr/lib/charliecloud "$WORK/shim/lib/charliecloud"
ln -s "$(command -v ch-convert)" "$WORK/shim/bin/ch-convert"
ln -s "$(command -v ch-image)" "$WORK/shim/bin/ch-image"
cat >"$WORK/shim/bin/mksquashfs" <<'EOF'
#!/bin/sh
# After SOURCE DEST: ch-convert ends its call with -e, which takes the rest.
src=$1 dst=$2
shift 2
exec /usr/bin/mksquashfs "$src" "$dst" -comp lz4 -processors 2 "$@"
EOF
chmod +x "$WORK/shim/bin/mksquashfs"

: >"$WORK/steps"
export BERTH_INSECURE_REGISTRIES=$REG
for run in $(seq 1 "$RUNS"); do
	r=$WORK/run$run
	mkdir -p "$r"
	echo "run $run/$RUNS: berth ..." >&2
	BERTH_CACHE_DIR=$r/berth-cache timed "berth.import" "$BERTH" import --quiet "$REF"
	echo "run $run/$RUNS: skopeo+umoci+mksquashfs ..." >&2
	timed "oci.skopeo" skopeo copy -q --src-tls-verify=false "docker://$REG/$REPO:$TAG" "oci:$r/oci:$TAG"
	timed "oci.umoci" umoci raw unpack --rootless --image "$r/oci:$TAG" "$r/rootfs"
	timed "oci.mksquashfs" mksquashfs "$r/rootfs" "$r/oci.sqsh" -noappend -comp lz4 -processors 2 -quiet
	if [ "$run" = 1 ]; then
		UNPACKED=$(du -sb --apparent-size "$r/rootfs" | cut -f1)
		FILES=$(find "$r/rootfs" | wc -l)
	fi
	chmod -R u+rwX "$r/rootfs" "$r/oci" && rm -rf --one-file-system "$r/rootfs" "$r/oci" "$r/oci.sqsh"
	echo "run $run/$RUNS: ch-image+ch-convert ..." >&2
	# ch-convert finds the storage through `ch-image gestalt storage-path`.
	export CH_IMAGE_STORAGE=$r/ch
	REQUESTS_CA_BUNDLE=$WORK/tls.crt timed "ch.pull" ch-image pull "$REG_TLS/$REPO:$TAG" big
	timed "ch.convert" "$WORK/shim/bin/ch-convert" -i ch-image -o squash big "$r/ch.sqsh"
	rm -rf --one-file-system "$r/ch" "$r/ch.sqsh"
	if [ "$run" = 1 ]; then
		for _ in $(seq 1 "$REIMPORT_RUNS"); do
			BERTH_CACHE_DIR=$r/berth-cache timed "berth.reimport" "$BERTH" import --quiet "$REF"
		done
		SQSH=$(BERTH_CACHE_DIR=$r/berth-cache "$BERTH" import --quiet "$REF")
		SQSH_SIZE=$(stat -c %s "$SQSH")
	fi
	[ "$run" = 1 ] || rm -rf --one-file-system "$r/berth-cache"
done

# ---- report --------------------------------------------------------------
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
# col LABELPREFIX FIELD AGG: per run, sum (wall, cpu) or max (rss) over steps.
per_run() {
	awk -v p="$1" -v f="$2" -v agg="$3" -v runs="$4" '
		index($1, p) == 1 { n[$1]++; v = $f; k = n[$1];
			if (agg == "max") { if (v > s[k]) s[k] = v } else s[k] += v }
		END { for (k = 1; k <= runs; k++) print s[k] }' "$WORK/steps"
}
stat_of() { per_run "$1" "$2" "$3" "$4" | median; }
IMG_BYTES=$(du -sb --apparent-size "$CACHE/registry" | cut -f1)
declare -A W C M
for tool in berth.import oci. ch.; do
	W[$tool]=$(stat_of "$tool" 2 sum "$RUNS")
	C[$tool]=$(stat_of "$tool" 3 sum "$RUNS")
	M[$tool]=$(stat_of "$tool" 4 max "$RUNS")
done
W[re]=$(awk '$1 == "berth.reimport" {print $2}' "$WORK/steps" | median)
C[re]=$(awk '$1 == "berth.reimport" {print $3}' "$WORK/steps" | median)
M[re]=$(awk '$1 == "berth.reimport" {print $4}' "$WORK/steps" | median)
mib() { awk -v k="$1" 'BEGIN {printf "%.0f MiB", k / 1024}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
faster=oci.
awk -v a="${W[ch.]}" -v b="${W[oci.]}" 'BEGIN {exit !(a < b)}' && faster=ch.
declare -A NAME=([berth.import]="berth import (cold)" [oci.]="skopeo + umoci + mksquashfs"
	[ch.]="ch-image pull + ch-convert" [re]="berth import (cached)")

report() {
cat <<EOF

## Import (bench/import.sh)

### Cold import of a 3-layer image from a local registry ($(date +%F), N=$RUNS, medians)

Machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(free -g | awk '/^Mem:/ {print $2}') GiB RAM, kernel $(uname -r), Debian $(cat /etc/debian_version);
load average at the end $(cut -d' ' -f1-3 /proc/loadavg) (the cores are shared with other helpers' builds and tests).
Image: 3 gzip layers (${SOURCES[*]}), $(awk -v b="$IMG_BYTES" 'BEGIN {printf "%.0f", b / 1048576}') MiB in the registry,
$(awk -v b="$UNPACKED" 'BEGIN {printf "%.2f", b / 1073741824}') GiB / $FILES entries unpacked; berth's squashfs: $(awk -v b="$SQSH_SIZE" 'BEGIN {printf "%.0f", b / 1048576}') MiB.
Versions: berth $(git -C "$(dirname "$0")" rev-parse --short HEAD), skopeo $(skopeo --version | cut -d' ' -f3), umoci $(umoci --version | awk '{print $NF}'), mksquashfs $(mksquashfs -version 2>/dev/null | head -1 | awk '{print $3}'), charliecloud $(ch-image --version 2>&1); all lz4, 2 compression threads.

| tool | wall | CPU (user+sys) | peak RSS | wall vs $(echo "${NAME[$faster]}") |
| --- | --- | --- | --- | --- |
EOF
for tool in berth.import oci. ch. re; do
	rel=$(ratio "${W[$tool]}" "${W[$faster]}")
	[ "$tool" = re ] && rel="-"
	printf '| %s | %.2f s | %.2f s | %s | %s |\n' "${NAME[$tool]}" "${W[$tool]}" "${C[$tool]}" \
		"$(mib "${M[$tool]}")" "$rel"
done
met() { awk -v a="$1" -v b="$2" 'BEGIN {print (a < b) ? "met" : "MISSED"}'; }
echo
echo "Targets: cold import <= 0.5x the faster peer: $(ratio "${W[berth.import]}" "${W[$faster]}")x," \
	"$(met "$(ratio "${W[berth.import]}" "${W[$faster]}")" 0.501);" \
	"re-import < 0.1 s: ${W[re]} s, $(met "${W[re]}" 0.1);" \
	"peak RSS < 256 MiB: $(mib "${M[berth.import]}"), $(met "${M[berth.import]}" 262144)." \
	"CPU time berth/faster peer: $(ratio "${C[berth.import]}" "${C[$faster]}")."
echo
echo "Per step (median wall / CPU / peak RSS):"
echo
for step in oci.skopeo oci.umoci oci.mksquashfs ch.pull ch.convert; do
	printf -- '- %s: %.2f s / %.2f s / %s\n' "$step" \
		"$(awk -v s="$step" '$1 == s {print $2}' "$WORK/steps" | median)" \
		"$(awk -v s="$step" '$1 == s {print $3}' "$WORK/steps" | median)" \
		"$(mib "$(awk -v s="$step" '$1 == s {print $4}' "$WORK/steps" | median)")"
done
echo
echo "Raw steps (label wall cpu rss_kb):"
echo
sed 's/^/    /' "$WORK/steps"
}
# RESULTS_MD= (empty) only prints the section.
RESULTS_MD=${RESULTS_MD-$(dirname "$0")/RESULTS.md}
if [ -n "$RESULTS_MD" ]; then
	report | tee -a "$RESULTS_MD"
else
	report
fi
