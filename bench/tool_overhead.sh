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
# Each is run RUNS times; the run with the most IOPS is shown. CPU per I/O is the whole
# process's user+sys CPU (/usr/bin/time, whole run) divided by the I/Os; for nvmeperf
# also its worker threads' CPU per I/O over the measured phase (JSON total.cpu), which
# leaves out the simulator's device thread.
# Targets (issue 14): inline >= 4x fio's IOPS, threaded >= 2x.
#
# Environment: SECONDS_EACH (default 5), RUNS (3), DEPTH (128), CORE (0),
#   NVMEPERF (default: built from this checkout into a temp dir),
#   NVMEPERF_BASE (optional: an earlier build; its inline and threaded rows run
#   alternately with NVMEPERF's, run by run, for a same-run before/after comparison).
# The load average is printed before each tool: IOPS on a shared machine follow the
# share of a core a run gets, so compare ratios from one run of the script.
set -eu

SECONDS_EACH=${SECONDS_EACH:-5}
RUNS=${RUNS:-3}
DEPTH=${DEPTH:-128}
CORE=${CORE:-0}

die() { echo "tool_overhead: $*" >&2; exit 1; }

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

# Each *_once prints "IOPS PROCESS_NS_PER_IO WORKER_NS_PER_IO" (worker "-" for fio).
fio_once() {
	/usr/bin/time -f '%U %S' -o "$work/fio.time" \
		taskset -c "$CORE" fio --name=null --ioengine=null --rw=randread --bs=4k --iodepth="$DEPTH" \
		--size=1g --time_based --runtime="$SECONDS_EACH" --output-format=json --output="$work/fio.json" ||
		die "fio failed"
	python3 - "$work/fio.json" "$work/fio.time" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["jobs"][0]["read"]
u, s = map(float, open(sys.argv[2]).read().split()[-2:])
print(r["iops"], (u + s) * 1e9 / r["total_ios"] if r["total_ios"] else 0, "-")
PY
}

np_once() { # trid [binary]
	/usr/bin/time -f '%U %S' -o "$work/np.time" \
		"${2:-$NVMEPERF}" -q "$DEPTH" -o 4096 -w randread -t "$SECONDS_EACH" -c "[$CORE]" -r "$1" --quiet \
		--output-format json --output "$work/np.json" || die "nvmeperf -r '$1' failed"
	python3 - "$work/np.json" "$work/np.time" <<'PY' || die "nvmeperf -r '$1': no usable JSON report"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["status"] == "ok", d.get("error")
a = d["total"]["all"]
u, s = map(float, open(sys.argv[2]).read().split()[-2:])
print(a["iops"], (u + s) * 1e9 / a["ios"] if a["ios"] else 0, d["total"].get("cpu", {}).get("ns_per_io", "-"))
PY
}

best_of() {
	best=""
	i=0
	while [ "$i" -lt "$RUNS" ]; do
		line=$("$@") || return 1
		if [ -z "$best" ] || awk -v a="$line" -v b="$best" 'BEGIN { split(a, x, " "); split(b, y, " "); exit !(x[1] > y[1]) }'; then
			best=$line
		fi
		i=$((i + 1))
	done
	echo "$best"
}

echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "workload: 4 KiB randread, QD $DEPTH, ${SECONDS_EACH}s, best of $RUNS, worker on CPU $CORE"
row() { # label "IOPS PROC WORKER" fio_iops
	printf '%-40s %12.0f %7.2fx %14.1f %14s\n' "$1" "$(echo "$2" | cut -d' ' -f1)" \
		"$(awk -v a="$(echo "$2" | cut -d' ' -f1)" -v b="$3" 'BEGIN { print b ? a / b : 0 }')" \
		"$(echo "$2" | cut -d' ' -f2)" "$(echo "$2" | awk '{ if ($3 == "-") print "-"; else printf "%.1f", $3 }')"
}
printf '%-40s %12s %8s %14s %14s\n' tool IOPS "x fio" "process ns/IO" "worker ns/IO"
load() { echo "# load average: $(cut -d' ' -f1-3 /proc/loadavg)"; }

# best_ab TRID: best of RUNS for NVMEPERF_BASE and NVMEPERF, alternating run by run;
# prints the base's best line, then the current one's.
best_ab() {
	b="" n=""
	i=0
	while [ "$i" -lt "$RUNS" ]; do
		l=$(np_once "$1" "$NVMEPERF_BASE") || return 1
		b=$(printf '%s\n%s\n' "$b" "$l" | sort -g -r -k1,1 | head -n 1)
		l=$(np_once "$1") || return 1
		n=$(printf '%s\n%s\n' "$n" "$l" | sort -g -r -k1,1 | head -n 1)
		i=$((i + 1))
	done
	echo "$b"
	echo "$n"
}

# np_rows LABEL TRID FIO_IOPS: the row (and the base's row before it, when asked).
np_rows() {
	if [ -n "${NVMEPERF_BASE:-}" ]; then
		ab=$(best_ab "$2") || die "nvmeperf -r '$2' failed"
		row "$1 [base]" "$(echo "$ab" | head -n 1)" "$3"
		row "$1" "$(echo "$ab" | tail -n 1)" "$3"
	else
		row "$1" "$(best_of np_once "$2")" "$3"
	fi
}
load

f=$(best_of fio_once)
fio_iops=$(echo "$f" | cut -d' ' -f1)
row "fio --ioengine=null" "$f" "$fio_iops"

# The inline simulator mode: tried first, skipped with the reason when refused.
inline='trtype:sim model:null store:discard mode:inline'
if "$NVMEPERF" -q 1 -o 4096 -w randread -d 100 -t 5 -r "$inline" --quiet --output-format json \
	--output "$work/inline.json" >/dev/null 2>"$work/inline.err"; then
	load
	np_rows "nvmeperf sim null, inline (one core)" "$inline" "$fio_iops"
else
	printf '%-40s skipped: the simulator refused mode:inline (%s)\n' \
		"nvmeperf sim null, inline (one core)" "$(head -n1 "$work/inline.err" | cut -c1-100)"
fi

load
np_rows "nvmeperf sim null, threaded" 'trtype:sim model:null store:discard' "$fio_iops"
echo "targets: inline >= 4x fio, threaded >= 2x fio (process ns/IO of threaded includes the simulator's device thread)"
