#!/usr/bin/env bash
# Host-path throughput, side by side on this machine in one run:
#   nvmeperf on the simulated controller's null model (the full NVMe queue protocol:
#   SQ entries, doorbells, phase-bit completions), 1 worker, QD 128, 4 KiB randread,
#   with batched and per-command doorbells;
#   fio's null engine (no device at all) at the same depth.
# Target: nvmeperf (batched) >= 1.5x fio's IOPS.
# Usage: bench/null_vs_fio.sh [seconds]   (default 10)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}

if ! command -v fio >/dev/null; then
  echo "installing fio (Debian package)" >&2
  if [ "$(id -u)" -ne 0 ]; then echo "fio missing and not root: apt-get install fio" >&2; exit 1; fi
  apt-get update -qq >/dev/null && apt-get install -y -qq fio >/dev/null
fi
command -v jq >/dev/null || { [ "$(id -u)" -eq 0 ] && apt-get install -y -qq jq >/dev/null; } || true
make -s build >/dev/null
bin=bin/nvmeperf

cpus=$(nproc)
worker=0
# The simulated device thread runs on another core when there is one (nvmeperf
# pins it to a core no worker uses); fio gets the same worker core.
json_field() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

run_nvmeperf() { # $1 = doorbell policy
  "$bin" -q 128 -o 4096 -w randread -t "$secs" -c "[$worker]" --doorbell "$1" \
    -r 'trtype:sim model:null store:discard nssize:1g' --output-format json --quiet |
    json_field 'd["total"]["all"]["iops"]'
}
run_fio() {
  taskset -c "$worker" fio --name=null --ioengine=null --rw=randread --bs=4k --iodepth=128 \
    --size=1g --time_based --runtime="$secs" --output-format=json 2>/dev/null |
    json_field 'd["jobs"][0]["read"]["iops"]'
}

echo "machine: $cpus CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "workload: 1 worker on CPU $worker, QD 128, 4 KiB randread, ${secs}s each"
np_batched=$(run_nvmeperf per-poll)
np_percmd=$(run_nvmeperf per-command)
fio_iops=$(run_fio)
printf '%-44s %14s\n' "engine" "IOPS"
printf '%-44s %14.0f\n' "nvmeperf sim null, batched doorbells" "$np_batched"
printf '%-44s %14.0f\n' "nvmeperf sim null, per-command doorbells" "$np_percmd"
printf '%-44s %14.0f\n' "fio --ioengine=null" "$fio_iops"
python3 - "$np_batched" "$np_percmd" "$fio_iops" <<'PY'
import sys
b, c, f = map(float, sys.argv[1:])
print(f"nvmeperf batched / fio null:        {b/f:5.2f}x (target >= 1.5x)")
print(f"batched / per-command doorbells:    {b/c:5.2f}x")
PY
