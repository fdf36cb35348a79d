#!/bin/sh
# tool_overhead.sh: what a benchmark tool itself costs per I/O, measured the way users
# compare tools. In one run, on the same core, 4 KiB random reads at one queue depth:
#   fio --ioengine=null                    (no device at all: fio's own path)
#   nvmeperf -r 'trtype:sim model:null store:discard mode:inline'
#                                          (the simulated controller runs on the
#                                          worker's thread: nvmeperf's whole path on
#                                          one core, the counterpart of fio's null
#                                          engine; skipped, with the reason, if the
#                                          simulator refuses mode:inline)
#   nvmeperf -r 'trtype:sim model:null store:discard'
#                                          (threaded simulator: its device thread runs
#                                          on another core when there is one)
# store:discard: like fio's null engine, nothing moves data (the default store keeps a
# 1 GiB namespace in memory and copies every 4 KiB read).
# The tools run in ROUNDS rounds, each tool once per round (the first one rotating), so
# all see the same machine; each row is the tool's median run (by IOPS) and "x fio" the
# median of its IOPS over fio's in the same round. CPU per I/O is the whole process's
# user+sys CPU (/usr/bin/time, whole run) divided by the I/Os; for nvmeperf also its
# worker threads' CPU per I/O over the measured phase (JSON total.cpu), which leaves out
# the simulator's device thread.
# Targets (issue 14): inline >= 4x fio's IOPS, threaded >= 2x; the last lines say which
# hold.
#
# Environment: SECONDS_EACH (default 5), ROUNDS (3; RUNS is the old name), DEPTH (128),
#   CORE (0), NVMEPERF (default: built from this checkout into a temp dir),
#   NVMEPERF_BASE (optional: an earlier build; its inline and threaded rows run in the
#   same rounds, for a same-run before/after comparison).
# The load average is printed before each round: IOPS on a shared machine follow the
# share of a core a run gets, so compare ratios from one run of the script.
set -eu

SECONDS_EACH=${SECONDS_EACH:-5}
ROUNDS=${ROUNDS:-${RUNS:-3}}
DEPTH=${DEPTH:-128}
CORE=${CORE:-0}

die() { echo "tool_overhead: $*" >&2; exit 1; }

case $ROUNDS in '' | *[!0-9]* | 0) die "ROUNDS=$ROUNDS: accepted a whole number of rounds, at least 1" ;; esac

command -v python3 >/dev/null || die "python3 is needed to read the JSON reports"
[ -x /usr/bin/time ] || die "/usr/bin/time is needed (apt-get install -y time)"
command -v taskset >/dev/null || die "taskset is needed (util-linux)"
if ! command -v fio >/dev/null; then
	echo "tool_overhead: installing fio" >&2
	apt-get install -y fio >/dev/null || { apt-get update >/dev/null && apt-get install -y fio >/dev/null; } ||
		die "fio is not installed and apt-get could not install it"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM

if [ -z "${NVMEPERF:-}" ]; then
	here=$(cd "$(dirname "$0")/.." && pwd)
	(cd "$here" && go build -o "$work/nvmeperf" ./cmd/nvmeperf) || die "building nvmeperf failed"
	NVMEPERF=$work/nvmeperf
fi

# Every run appends "round tool iops process_ns_per_io worker_ns_per_io" (worker "-"
# for fio) to $results.
results=$work/results

fio_run() { # round
	/usr/bin/time -f '%U %S' -o "$work/fio.time" \
		taskset -c "$CORE" fio --name=null --ioengine=null --rw=randread --bs=4k --iodepth="$DEPTH" \
		--size=1g --time_based --runtime="$SECONDS_EACH" --output-format=json --output="$work/fio.json" ||
		die "fio failed"
	python3 - "$work/fio.json" "$work/fio.time" "$1" >>"$results" <<'PY' || die "fio: no usable JSON report"
import json, sys
r = json.load(open(sys.argv[1]))["jobs"][0]["read"]
u, s = map(float, open(sys.argv[2]).read().split()[-2:])
print(sys.argv[3], "fio", r["iops"], (u + s) * 1e9 / r["total_ios"] if r["total_ios"] else 0, "-")
PY
}

np_run() { # round tool trid binary
	/usr/bin/time -f '%U %S' -o "$work/np.time" \
		"$4" -q "$DEPTH" -o 4096 -w randread -t "$SECONDS_EACH" -c "[$CORE]" -r "$3" --quiet \
		--output-format json --output "$work/np.json" || die "nvmeperf -r '$3' failed"
	python3 - "$work/np.json" "$work/np.time" "$1 $2" >>"$results" <<'PY' || die "nvmeperf -r '$3': no usable JSON report"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["status"] == "ok", d.get("error")
a = d["total"]["all"]
u, s = map(float, open(sys.argv[2]).read().split()[-2:])
print(sys.argv[3], a["iops"], (u + s) * 1e9 / a["ios"] if a["ios"] else 0, d["total"]["cpu"]["ns_per_io"])
PY
}

inline='trtype:sim model:null store:discard mode:inline'
threaded='trtype:sim model:null store:discard'
tools="fio"
# The inline simulator mode: tried first, skipped with the reason when refused.
if "$NVMEPERF" -q 1 -o 4096 -w randread -d 100 -t 5 -r "$inline" --quiet --output-format json \
	--output "$work/inline.json" >/dev/null 2>"$work/inline.err"; then
	[ -n "${NVMEPERF_BASE:-}" ] && tools="$tools inline-base"
	tools="$tools inline"
else
	inline_refused=$(head -n1 "$work/inline.err" | cut -c1-100)
fi
[ -n "${NVMEPERF_BASE:-}" ] && tools="$tools threaded-base"
tools="$tools threaded"
ntools=$(echo $tools | wc -w)

run_tool() { # tool round
	case $1 in
	fio) fio_run "$2" ;;
	inline-base) np_run "$2" "$1" "$inline" "$NVMEPERF_BASE" ;;
	inline) np_run "$2" "$1" "$inline" "$NVMEPERF" ;;
	threaded-base) np_run "$2" "$1" "$threaded" "$NVMEPERF_BASE" ;;
	threaded) np_run "$2" "$1" "$threaded" "$NVMEPERF" ;;
	esac
}

echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "workload: 4 KiB randread, QD $DEPTH, ${SECONDS_EACH}s runs, $ROUNDS rounds (each tool once per round), worker on CPU $CORE"
round=1
while [ "$round" -le "$ROUNDS" ]; do
	echo "# round $round, load average: $(cut -d' ' -f1-3 /proc/loadavg)"
	i=0
	while [ "$i" -lt "$ntools" ]; do
		run_tool "$(echo $tools | cut -d' ' -f$(((i + round - 1) % ntools + 1)))" "$round"
		i=$((i + 1))
	done
	round=$((round + 1))
done

python3 - "$results" "${inline_refused:-}" <<'PY'
import statistics, sys

runs = {}
for line in open(sys.argv[1]):
    rnd, tool, iops, proc, worker = line.split()
    runs.setdefault(tool, {})[int(rnd)] = (float(iops), float(proc), None if worker == "-" else float(worker))

labels = [("fio", "fio --ioengine=null"),
          ("inline-base", "nvmeperf sim null, inline (one core) [base]"),
          ("inline", "nvmeperf sim null, inline (one core)"),
          ("threaded-base", "nvmeperf sim null, threaded [base]"),
          ("threaded", "nvmeperf sim null, threaded")]

def x_fio(tool):
    rounds = sorted(set(runs[tool]) & set(runs["fio"]))
    return statistics.median(runs[tool][r][0] / runs["fio"][r][0] for r in rounds)

print(f"{'tool (median run)':<45} {'IOPS':>12} {'x fio':>8} {'process ns/IO':>14} {'worker ns/IO':>13}")
for tool, label in labels:
    if tool == "inline" and sys.argv[2]:
        print(f"{label:<45} skipped: the simulator refused mode:inline ({sys.argv[2]})")
    if tool not in runs:
        continue
    ordered = sorted(runs[tool].values(), key=lambda r: r[0])
    iops, proc, worker = ordered[(len(ordered) - 1) // 2]
    print(f"{label:<45} {iops:>12.0f} {x_fio(tool):>7.2f}x {proc:>14.1f} {'-' if worker is None else f'{worker:.1f}':>13}")
print("x fio: the median over rounds of IOPS over fio's in the same round; process ns/IO of threaded includes the simulator's device thread")
for tool, goal in (("inline", 4.0), ("threaded", 2.0)):
    if tool in runs:
        r = x_fio(tool)
        print(f"target: {tool} >= {goal:.0f}x fio: {'met' if r >= goal else 'not met'} ({r:.2f}x)")
PY
