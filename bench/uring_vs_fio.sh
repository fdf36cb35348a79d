#!/bin/sh
# uring_vs_fio.sh: nvmeperf's io_uring engine against fio's, side by side on the same
# file, same depth, same core: 4 KiB random reads, direct I/O, io_uring, 10 s each.
# Prints IOPS and CPU seconds per I/O (user+sys of each process, from /usr/bin/time)
# for both, and nvmeperf's ratio to fio. The goal is nvmeperf >= 1.1x fio's IOPS per
# CPU second.
#
# Environment:
#   BENCH_FILE  the 1 GiB test file (default /var/tmp/nvmeperf-bench/uring_vs_fio.dat);
#               it must be on a disk-backed file system (not tmpfs) and is written once
#   NVMEPERF    the nvmeperf binary (default: built from this checkout into a temp dir)
#   DEPTHS      queue depths to run (default "32 128")
#   SECONDS_EACH seconds per run (default 10)
#   CORE        CPU both tools are pinned to (default 0)
#   SKIP_NVMEPERF=1  run only the fio half (while the CLI cannot take a file yet)
set -eu

BENCH_FILE=${BENCH_FILE:-/var/tmp/nvmeperf-bench/uring_vs_fio.dat}
DEPTHS=${DEPTHS:-"32 128"}
SECONDS_EACH=${SECONDS_EACH:-10}
CORE=${CORE:-0}
SIZE=$((1024 * 1024 * 1024))

die() { echo "uring_vs_fio: $*" >&2; exit 1; }

command -v python3 >/dev/null || die "python3 is needed to read the JSON reports"
[ -x /usr/bin/time ] || die "/usr/bin/time is needed (apt-get install -y time)"
if ! command -v fio >/dev/null; then
	echo "uring_vs_fio: installing fio" >&2
	apt-get install -y fio >/dev/null || { apt-get update >/dev/null && apt-get install -y fio >/dev/null; } ||
		die "fio is not installed and apt-get could not install it"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM

if [ "${SKIP_NVMEPERF:-0}" != 1 ] && [ -z "${NVMEPERF:-}" ]; then
	here=$(cd "$(dirname "$0")/.." && pwd)
	(cd "$here" && go build -o "$work/nvmeperf" ./cmd/nvmeperf) || die "building nvmeperf failed"
	NVMEPERF=$work/nvmeperf
fi

dir=$(dirname "$BENCH_FILE")
mkdir -p "$dir"
fstype=$(stat -f -c %T "$dir")
case $fstype in
tmpfs | ramfs) die "$dir is on $fstype: direct I/O there measures memory, not a disk; set BENCH_FILE" ;;
esac

# Lay the file out once with real data: reads of unwritten (fallocated or sparse)
# blocks never reach the disk and would flatter both tools.
have=$(stat -c %s "$BENCH_FILE" 2>/dev/null || echo 0)
if [ "$have" -ne "$SIZE" ]; then
	echo "uring_vs_fio: writing the 1 GiB test file $BENCH_FILE" >&2
	rm -f "$BENCH_FILE"
	fio --name=layout --filename="$BENCH_FILE" --size="$SIZE" --rw=write --bs=1m --direct=1 \
		--ioengine=io_uring --iodepth=8 --output=/dev/null || die "writing $BENCH_FILE failed"
fi

# cpu_seconds FILE: user+sys seconds recorded by /usr/bin/time -f '%U %S'.
cpu_seconds() { awk 'END { print $1 + $2 }' "$1"; }

printf '%-6s %-9s %12s %14s %14s\n' depth tool IOPS "CPU s" "CPU us/IO"
for qd in $DEPTHS; do
	fio_json=$work/fio-$qd.json
	/usr/bin/time -f '%U %S' -o "$work/fio-$qd.time" \
		fio --name=randread --filename="$BENCH_FILE" --size="$SIZE" --rw=randread --bs=4k \
		--iodepth="$qd" --direct=1 --ioengine=io_uring --time_based --runtime="$SECONDS_EACH" \
		--cpus_allowed="$CORE" --output-format=json --output="$fio_json" ||
		die "fio at depth $qd failed"
	fio_iops=$(python3 -c 'import json,sys; j=json.load(open(sys.argv[1]))["jobs"][0]["read"]; print(j["iops"])' "$fio_json")
	fio_ios=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["jobs"][0]["read"]["total_ios"])' "$fio_json")
	fio_cpu=$(cpu_seconds "$work/fio-$qd.time")
	fio_per=$(awk -v c="$fio_cpu" -v n="$fio_ios" 'BEGIN { printf "%.3f", n ? c * 1e6 / n : 0 }')
	printf '%-6s %-9s %12.0f %14s %14s\n' "$qd" fio "$fio_iops" "$fio_cpu" "$fio_per"

	[ "${SKIP_NVMEPERF:-0}" = 1 ] && continue

	np_json=$work/nvmeperf-$qd.json
	/usr/bin/time -f '%U %S' -o "$work/nvmeperf-$qd.time" \
		"$NVMEPERF" -q "$qd" -o 4096 -w randread -t "$SECONDS_EACH" -c "[$CORE]" --quiet \
		--output-format json --output "$np_json" "$BENCH_FILE" ||
		die "nvmeperf at depth $qd failed"
	np_iops=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["status"]=="ok", d.get("error"); print(d["total"]["all"]["iops"])' "$np_json") ||
		die "nvmeperf at depth $qd: no usable JSON report"
	np_ios=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["total"]["all"]["ios"])' "$np_json")
	np_cpu=$(cpu_seconds "$work/nvmeperf-$qd.time")
	np_per=$(awk -v c="$np_cpu" -v n="$np_ios" 'BEGIN { printf "%.3f", n ? c * 1e6 / n : 0 }')
	printf '%-6s %-9s %12.0f %14s %14s\n' "$qd" nvmeperf "$np_iops" "$np_cpu" "$np_per"

	# IOPS per CPU second is the fair comparison when the two use different CPU.
	awk -v a="$np_iops" -v b="$fio_iops" -v pa="$np_per" -v pb="$fio_per" 'BEGIN {
		printf "%-6s %-9s %11.2fx %14s %13.2fx  (nvmeperf/fio; IOPS per CPU second: %.2fx, goal >= 1.10x)\n",
			"", "ratio", b ? a / b : 0, "", pb ? pa / pb : 0, pa ? pb / pa : 0 }'
done
