#!/bin/sh
# uring_vs_fio.sh: nvmeperf's io_uring engine against fio's, side by side on the same
# file, same depth, same core: 4 KiB random reads, direct I/O, io_uring, 10 s each,
# best of RUNS (3) by IOPS. Prints IOPS and CPU per I/O (user+sys of each whole
# process, from /usr/bin/time, over the whole run) for both, nvmeperf's own worker-thread
# CPU per I/O from its JSON (measured phase only), and nvmeperf's ratio to fio.
# Goals (issue 14): IOPS >= 1.0x fio's at QD 1, 32 and 128; CPU per I/O <= 0.7x fio's.
# nvmeperf registers the file and its buffers; fio does not by default, so fio also runs
# with --registerfiles --fixedbufs ("fio-fixed") and the ratios against both are shown.
# The load average is printed before each depth: on a shared machine compare only
# ratios from one run of the script.
#
# Environment:
#   BENCH_FILE  the 1 GiB test file (default /var/tmp/nvmeperf-bench/uring_vs_fio.dat);
#               it must be on a disk-backed file system (not tmpfs) and is written once
#   NVMEPERF    the nvmeperf binary (default: built from this checkout into a temp dir)
#   DEPTHS      queue depths to run (default "1 32 128")
#   RUNS        runs per tool and depth; the best (highest IOPS) is shown (default 3)
#   SECONDS_EACH seconds per run (default 10)
#   CORE        CPU both tools are pinned to (default 0)
#   SKIP_NVMEPERF=1  run only the fio half (while the CLI cannot take a file yet)
#   FIO_FIXED   0 to skip the fio --registerfiles --fixedbufs rows (default 1)
#   NVMEPERF_BASE  a second nvmeperf binary (an earlier build) to run alternately with
#               NVMEPERF, row "np-base": a same-run before/after comparison
set -eu

BENCH_FILE=${BENCH_FILE:-/var/tmp/nvmeperf-bench/uring_vs_fio.dat}
DEPTHS=${DEPTHS:-"1 32 128"}
RUNS=${RUNS:-3}
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

# best_of CMD...: runs "run_once N" RUNS times and keeps the line with the most IOPS
# (field 1 of each "IOPS CPU_S CPU_US_PER_IO [OWN_NS_PER_IO]" line).
best_of() {
	best=""
	i=1
	while [ "$i" -le "$RUNS" ]; do
		line=$("$@" "$i") || return 1
		if [ -z "$best" ] || awk -v a="$line" -v b="$best" 'BEGIN { split(a, x, " "); split(b, y, " "); exit !(x[1] > y[1]) }'; then
			best=$line
		fi
		i=$((i + 1))
	done
	echo "$best"
}

fio_once() { # depth run [extra fio options...]
	json=$work/fio-$1-$2.json
	qd=$1 run=$2
	shift 2
	/usr/bin/time -f '%U %S' -o "$work/fio-$qd-$run.time" \
		fio --name=randread --filename="$BENCH_FILE" --size="$SIZE" --rw=randread --bs=4k \
		--iodepth="$qd" --direct=1 --ioengine=io_uring --time_based --runtime="$SECONDS_EACH" \
		--cpus_allowed="$CORE" --output-format=json --output="$json" "$@" ||
		die "fio at depth $qd failed"
	python3 - "$json" "$work/fio-$qd-$run.time" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["jobs"][0]["read"]
u, s = map(float, open(sys.argv[2]).read().split()[-2:])
print(r["iops"], u + s, (u + s) * 1e6 / r["total_ios"] if r["total_ios"] else 0)
PY
}

fio_fixed_once() { fio_once "$1" "$2" --registerfiles --fixedbufs; }

np_once() { # depth run [binary]
	json=$work/nvmeperf-$1-$2.json
	/usr/bin/time -f '%U %S' -o "$work/nvmeperf-$1-$2.time" \
		taskset -c "$CORE" "${3:-$NVMEPERF}" -q "$1" -o 4096 -w randread -t "$SECONDS_EACH" -c "[$CORE]" --quiet \
		--output-format json --output "$json" "$BENCH_FILE" ||
		die "nvmeperf at depth $1 failed"
	python3 - "$json" "$work/nvmeperf-$1-$2.time" <<'PY' || die "nvmeperf at depth $1: no usable JSON report"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["status"] == "ok", d.get("error")
a = d["total"]["all"]
u, s = map(float, open(sys.argv[2]).read().split()[-2:])
own = d["total"].get("cpu", {}).get("ns_per_io", 0)
print(a["iops"], u + s, (u + s) * 1e6 / a["ios"] if a["ios"] else 0, own)
PY
}

np_base_once() { np_once "$1" "base-$2" "$NVMEPERF_BASE"; }

ratio() { # label iops per fio_iops fio_per
	awk -v l="$1" -v a="$2" -v pa="$3" -v b="$4" -v pb="$5" 'BEGIN {
		printf "%-6s %-9s %11.2fx %10s %11.2fx   (goals: IOPS >= 1.00x, CPU per I/O <= 0.70x)\n",
			"", l, b ? a / b : 0, "", pb ? pa / pb : 0 }'
}

printf '%-6s %-9s %12s %10s %12s %14s\n' depth tool IOPS "CPU s" "CPU us/IO" "worker ns/IO"
for qd in $DEPTHS; do
	echo "# load average: $(cut -d' ' -f1-3 /proc/loadavg)"
	f=$(best_of fio_once "$qd") || exit 1
	set -- $f
	fio_iops=$1 fio_per=$3
	printf '%-6s %-9s %12.0f %10.2f %12.3f %14s\n' "$qd" fio "$1" "$2" "$3" -
	ffix_iops=""
	if [ "${FIO_FIXED:-1}" != 0 ]; then
		f=$(best_of fio_fixed_once "$qd") || exit 1
		set -- $f
		ffix_iops=$1 ffix_per=$3
		printf '%-6s %-9s %12.0f %10.2f %12.3f %14s\n' "$qd" fio-fixed "$1" "$2" "$3" -
	fi

	[ "${SKIP_NVMEPERF:-0}" = 1 ] && continue

	if [ -n "${NVMEPERF_BASE:-}" ]; then
		# Base and current alternate run by run, so both see the same machine.
		nb="" n=""
		i=1
		while [ "$i" -le "$RUNS" ]; do
			l=$(np_base_once "$qd" "$i") || exit 1
			nb=$(printf '%s\n%s\n' "$nb" "$l" | sort -g -r -k1,1 | head -n 1)
			l=$(np_once "$qd" "$i") || exit 1
			n=$(printf '%s\n%s\n' "$n" "$l" | sort -g -r -k1,1 | head -n 1)
			i=$((i + 1))
		done
		set -- $nb
		printf '%-6s %-9s %12.0f %10.2f %12.3f %14.0f\n' "$qd" np-base "$1" "$2" "$3" "$4"
		ratio "/fio" "$1" "$3" "$fio_iops" "$fio_per"
	else
		n=$(best_of np_once "$qd") || exit 1
	fi
	set -- $n
	printf '%-6s %-9s %12.0f %10.2f %12.3f %14.0f\n' "$qd" nvmeperf "$1" "$2" "$3" "$4"
	ratio "/fio" "$1" "$3" "$fio_iops" "$fio_per"
	if [ -n "$ffix_iops" ]; then
		ratio "/fio-fixed" "$1" "$3" "$ffix_iops" "$ffix_per"
	fi
done
