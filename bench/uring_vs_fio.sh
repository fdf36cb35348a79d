#!/bin/sh
# uring_vs_fio.sh: nvmeperf's io_uring engine against fio's, on the same file, same
# depth, same core: 4 KiB random reads, direct I/O, io_uring.
#
# Each depth runs ROUNDS rounds; a round runs every tool once, one after the other (the
# first tool rotates from round to round), so all tools see the same machine. A virtual
# disk swings by 10-20% from one run to the next, so the ratios are the median of the
# ratios within each round, and each tool's row is its median run (by IOPS).
#
# Per tool and run:
#   IOPS, and CPU per I/O of the whole process (user+sys from /usr/bin/time, start-up
#   included: what `time` shows a user), split into user and system;
#   "thread": the I/O thread's own CPU per I/O in the measured phase (fio's job thread
#   from its usr_cpu/sys_cpu, nvmeperf's workers from total.cpu).
# Goals (issue 14): IOPS >= 1.0x fio's at QD 1, 32 and 128; CPU per I/O <= 0.7x fio's.
#
# The "kernel floor" is nvmeperf's system CPU per I/O over fio's CPU per I/O: the ratio
# nvmeperf would reach if its own user-space code cost nothing. On a virtual disk most
# of the CPU per I/O is the kernel's (block layer, the virtio notify, the wake-up), the
# same work for both tools; when the floor is above the goal no user-space change can
# meet it, and the verdict says so.
#
# nvmeperf registers the file and its buffers; fio does not by default, so fio also runs
# with --registerfiles --fixedbufs ("fio-fixed") and the ratios against both are shown.
#
# Environment:
#   BENCH_FILE  the test file (default /var/tmp/nvmeperf-bench/uring_vs_fio.dat); it
#               must be on a disk-backed file system (not tmpfs). The script creates
#               and writes it once (marking it with BENCH_FILE.nvmeperf-bench); an
#               existing file of another size that it did not create is refused
#   SIZE_MB     its size in MiB (default 1024)
#   NVMEPERF    the nvmeperf binary (default: built from this checkout into a temp dir)
#   DEPTHS      queue depths to run (default "1 32 128")
#   ROUNDS      rounds per depth (default 3; RUNS is the old name)
#   SECONDS_EACH seconds per run (default 10; short runs weigh fio's start-up more)
#   CORE        CPU both tools are pinned to (default 0)
#   FIO_FIXED   0 to skip the fio-fixed runs (default 1)
#   NVMEPERF_BASE  a second nvmeperf binary (an earlier build), row "np-base", run in
#               the same rounds: a same-run before/after comparison
set -eu

BENCH_FILE=${BENCH_FILE:-/var/tmp/nvmeperf-bench/uring_vs_fio.dat}
SIZE_MB=${SIZE_MB:-1024}
DEPTHS=${DEPTHS:-"1 32 128"}
ROUNDS=${ROUNDS:-${RUNS:-3}}
SECONDS_EACH=${SECONDS_EACH:-10}
CORE=${CORE:-0}

die() { echo "uring_vs_fio: $*" >&2; exit 1; }

case $ROUNDS in '' | *[!0-9]* | 0) die "ROUNDS=$ROUNDS: accepted a whole number of rounds, at least 1" ;; esac
case $SIZE_MB in '' | *[!0-9]* | 0) die "SIZE_MB=$SIZE_MB: accepted a whole number of MiB, at least 1" ;; esac
SIZE=$((SIZE_MB * 1024 * 1024))
command -v python3 >/dev/null || die "python3 is needed to read the JSON reports"
[ -x /usr/bin/time ] || die "/usr/bin/time is needed (apt-get install -y time)"
command -v taskset >/dev/null || die "taskset is needed (util-linux)"
if ! command -v fio >/dev/null; then
	echo "uring_vs_fio: installing fio" >&2
	apt-get install -y fio >/dev/null || { apt-get update >/dev/null && apt-get install -y fio >/dev/null; } ||
		die "fio is not installed and apt-get could not install it"
fi

# The test file: the script writes only a file it created itself (marked by a
# "$BENCH_FILE.nvmeperf-bench" file beside it). An existing file of the right size is
# only read; anything else at that path is refused, never replaced.
marker=$BENCH_FILE.nvmeperf-bench
layout=0
if [ -e "$BENCH_FILE" ] || [ -L "$BENCH_FILE" ]; then
	[ -f "$BENCH_FILE" ] && [ ! -L "$BENCH_FILE" ] ||
		die "BENCH_FILE=$BENCH_FILE is not a regular file; give a path for a test file this script may create"
	have=$(stat -c %s "$BENCH_FILE")
	if [ "$have" -ne "$SIZE" ]; then
		[ -f "$marker" ] ||
			die "BENCH_FILE=$BENCH_FILE exists ($have bytes, not the $SIZE of SIZE_MB=$SIZE_MB) and was not written by this script: it is left alone; remove it or give another path"
		layout=1
	fi
else
	layout=1
fi
dir=$(dirname "$BENCH_FILE")
mkdir -p "$dir" || die "cannot create $dir for BENCH_FILE"
fstype=$(stat -f -c %T "$dir")
case $fstype in
tmpfs | ramfs) die "$dir is on $fstype: direct I/O there measures memory, not a disk; set BENCH_FILE" ;;
esac

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM

if [ -z "${NVMEPERF:-}" ]; then
	here=$(cd "$(dirname "$0")/.." && pwd)
	(cd "$here" && go build -o "$work/nvmeperf" ./cmd/nvmeperf) || die "building nvmeperf failed"
	NVMEPERF=$work/nvmeperf
fi

# Lay the file out once with real data: reads of unwritten (fallocated or sparse)
# blocks never reach the disk and would flatter both tools.
if [ "$layout" = 1 ]; then
	echo "uring_vs_fio: writing the $SIZE_MB MiB test file $BENCH_FILE" >&2
	: >"$marker" || die "cannot create $marker"
	rm -f "$BENCH_FILE"
	fio --name=layout --filename="$BENCH_FILE" --size="$SIZE" --rw=write --bs=1m --direct=1 \
		--ioengine=io_uring --iodepth=8 --output=/dev/null || die "writing $BENCH_FILE failed"
fi

# Every run appends one line to $results:
#   depth round tool iops ios user_s sys_s thread_s
results=$work/results

fio_run() { # depth round tool [extra fio options...]
	qd=$1 round=$2 tool=$3
	shift 3
	json=$work/$tool-$qd-$round.json
	/usr/bin/time -f '%U %S' -o "$json.time" \
		fio --name=randread --filename="$BENCH_FILE" --size="$SIZE" --rw=randread --bs=4k \
		--iodepth="$qd" --direct=1 --ioengine=io_uring --time_based --runtime="$SECONDS_EACH" \
		--cpus_allowed="$CORE" --output-format=json --output="$json" "$@" ||
		die "$tool at depth $qd failed"
	python3 - "$json" "$qd $round $tool" >>"$results" <<'PY' || die "$tool at depth $qd: no usable JSON report"
import json, sys
job = json.load(open(sys.argv[1]))["jobs"][0]
r = job["read"]
u, s = map(float, open(sys.argv[1] + ".time").read().split()[-2:])
# usr_cpu and sys_cpu are percentages of the job's runtime (ms).
thread = (job["usr_cpu"] + job["sys_cpu"]) / 100 * job["job_runtime"] / 1000
print(sys.argv[2], r["iops"], r["total_ios"], u, s, thread)
PY
}

np_run() { # depth round tool binary
	qd=$1 round=$2 tool=$3
	json=$work/$tool-$qd-$round.json
	/usr/bin/time -f '%U %S' -o "$json.time" \
		taskset -c "$CORE" "$4" -q "$qd" -o 4096 -w randread -t "$SECONDS_EACH" -c "[$CORE]" --quiet \
		--output-format json --output "$json" "$BENCH_FILE" ||
		die "$tool at depth $qd failed"
	python3 - "$json" "$qd $round $tool" >>"$results" <<'PY' || die "$tool at depth $qd: no usable JSON report"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["status"] == "ok", d.get("error")
a = d["total"]["all"]
u, s = map(float, open(sys.argv[1] + ".time").read().split()[-2:])
cpu = d["total"]["cpu"]
print(sys.argv[2], a["iops"], a["ios"], u, s, cpu["user_seconds"] + cpu["system_seconds"])
PY
}

tools="fio"
[ "${FIO_FIXED:-1}" != 0 ] && tools="$tools fio-fixed"
[ -n "${NVMEPERF_BASE:-}" ] && tools="$tools np-base"
tools="$tools nvmeperf"
ntools=$(echo $tools | wc -w)

run_tool() { # tool depth round
	case $1 in
	fio) fio_run "$2" "$3" fio ;;
	fio-fixed) fio_run "$2" "$3" fio-fixed --registerfiles --fixedbufs ;;
	np-base) np_run "$2" "$3" np-base "$NVMEPERF_BASE" ;;
	nvmeperf) np_run "$2" "$3" nvmeperf "$NVMEPERF" ;;
	esac
}

echo "uring_vs_fio: ${SECONDS_EACH} s runs, $ROUNDS rounds per depth, pinned to CPU $CORE; tools: $tools"
for qd in $DEPTHS; do
	echo "# depth $qd, load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
	round=1
	while [ "$round" -le "$ROUNDS" ]; do
		# Rotate the order so no tool always runs first in a round.
		i=0
		while [ "$i" -lt "$ntools" ]; do
			k=$(((i + round - 1) % ntools + 1))
			run_tool "$(echo $tools | cut -d' ' -f"$k")" "$qd" "$round"
			i=$((i + 1))
		done
		round=$((round + 1))
	done
done

python3 - "$results" "$DEPTHS" <<'PY'
import statistics, sys

GOAL_IOPS, GOAL_CPU = 1.0, 0.7
rows = {}
for line in open(sys.argv[1]):
    qd, rnd, tool, iops, ios, u, s, thread = line.split()
    ios = float(ios)
    rows.setdefault(int(qd), {}).setdefault(tool, {})[int(rnd)] = dict(
        iops=float(iops), cpu=(float(u) + float(s)) * 1e6 / ios, usr=float(u) * 1e6 / ios,
        sys=float(s) * 1e6 / ios, thread=float(thread) * 1e6 / ios)

def median_run(runs):
    """The run with the median IOPS (the lower middle one for an even count)."""
    ordered = sorted(runs.values(), key=lambda r: r["iops"])
    return ordered[(len(ordered) - 1) // 2]

def ratio(tools, a, b, key):
    """Median over rounds of a's value over b's in the same round."""
    rounds = sorted(set(tools[a]) & set(tools[b]))
    return statistics.median(tools[a][r][key] / tools[b][r][key] for r in rounds)

verdicts = []
for qd in map(int, sys.argv[2].split()):
    tools = rows[qd]
    print(f"\ndepth {qd}: median run of each tool; CPU in us per I/O")
    print(f"  {'tool':<10} {'IOPS':>10} {'CPU':>9} {'user':>8} {'system':>8} {'thread':>8}")
    for tool in ("fio", "fio-fixed", "np-base", "nvmeperf"):
        if tool in tools:
            r = median_run(tools[tool])
            print(f"  {tool:<10} {r['iops']:>10.0f} {r['cpu']:>9.2f} {r['usr']:>8.2f} {r['sys']:>8.2f} {r['thread']:>8.2f}")
    print("  ratios, median of the rounds:")
    for a in ("np-base", "nvmeperf"):
        for b in ("fio", "fio-fixed"):
            if a in tools and b in tools:
                print(f"  {a + '/' + b:<20} IOPS {ratio(tools, a, b, 'iops'):.2f}x   CPU per I/O {ratio(tools, a, b, 'cpu'):.2f}x"
                      f"   thread CPU per I/O {ratio(tools, a, b, 'thread'):.2f}x")
    rounds = sorted(set(tools["nvmeperf"]) & set(tools["fio"]))
    floor = statistics.median(tools["nvmeperf"][r]["sys"] / tools["fio"][r]["cpu"] for r in rounds)
    print(f"  kernel floor: nvmeperf's system CPU alone is {floor:.2f}x fio's CPU per I/O")
    iops, cpu = ratio(tools, "nvmeperf", "fio", "iops"), ratio(tools, "nvmeperf", "fio", "cpu")
    if iops >= GOAL_IOPS and cpu <= GOAL_CPU:
        v = "met"
    else:
        parts = []
        if iops < GOAL_IOPS:
            fio_iops = [r["iops"] for r in tools["fio"].values()]
            spread = max(fio_iops) / min(fio_iops) - 1
            parts.append(f"IOPS {iops:.2f}x < {GOAL_IOPS:.2f}x" +
                         (f" (within fio's own run-to-run spread of {100 * spread:.0f}%)" if iops >= 1 - spread else ""))
        if cpu > GOAL_CPU:
            parts.append(f"CPU {cpu:.2f}x > {GOAL_CPU:.2f}x" +
                         (f" (out of reach without less kernel work per I/O: the kernel floor is {floor:.2f}x)" if floor > GOAL_CPU else ""))
        v = "not met: " + "; ".join(parts)
    verdicts.append(f"  QD {qd:<4} IOPS {iops:.2f}x  CPU per I/O {cpu:.2f}x  floor {floor:.2f}x  {v}")
print(f"\nnvmeperf against fio (goals: IOPS >= {GOAL_IOPS:.2f}x, CPU per I/O <= {GOAL_CPU:.2f}x):")
print("\n".join(verdicts))
PY
