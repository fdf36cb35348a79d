#!/bin/bash
# nvmeperf through the userspace driver on this boot's binding (vfio-pci or
# uio_pci_generic): list, the workload patterns, latency tracking, JSON, several cores
# and queue pairs, and I/O sizes from 512 B to MDTS so that every PRP shape is used
# (one page, two pages, a PRP list, a list spanning pages, unaligned 512 B).
# shellcheck source=/dev/null
. /lab/lib.sh
need_nvmeperf
bind_userspace
TRID="trtype:PCIe traddr:$LAB_VFIO_ADDR"
T=${LAB_PERF_SECONDS:-1}
# One seed for every write, so the host can verify the whole disk image afterwards.
SEED=${LAB_SEED:-1}

check "nvmeperf list" "$NVMEPERF" list
grep -q "$LAB_VFIO_ADDR" "$LAB_OUT" || fail "nvmeperf list does not show $LAB_VFIO_ADDR"
grep -E "MQES|MDTS|queues|$LAB_VFIO_ADDR" "$LAB_OUT" | while read -r l; do info "list: $l"; done

perf() {
	check "nvmeperf $*" "$NVMEPERF" --quiet --seed "$SEED" -t "$T" -r "$TRID" "$@"
	local iops
	iops=$(grep -iE 'total|iops' "$LAB_OUT" | tail -n 1)
	info "$* => ${iops:-?}"
}

perf -q 32 -o 4096 -w randread
perf -q 32 -o 4096 -w randwrite
perf -q 16 -o 4096 -w randrw -M 70 -LL
grep -q '%' "$LAB_OUT" || fail "-LL printed no latency percentiles"
perf -q 16 -o 4096 -w randread -c 0x3 -P 2
check "json report" "$NVMEPERF" --quiet -t "$T" -r "$TRID" -q 8 -o 4096 -w randread --output-format json
head -c 1 "$LAB_OUT" | grep -q '{' || fail "--output-format json did not print a JSON object"
grep -q '"iops"' "$LAB_OUT" || fail "JSON report has no iops field"

# Every PRP shape, each size written and read back with verification.
for size in 512 4096 8192 12288 65536 131072 262144 524288; do
	perf -q 4 -o "$size" -w randrw -M 50 --verify
done
# A first PRP entry that is not page aligned.
perf -q 4 -o 8192 -w randrw -M 50 --verify -A 512
# 64 x 64 KiB of I/O buffers: one DMA allocation larger than a 2 MiB hugepage, which
# under UIO must be physically contiguous across hugepages.
perf -q 64 -o 65536 -w randrw -M 50 --verify
pass "$LAB_USERSPACE_DRIVER"
