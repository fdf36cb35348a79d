#!/bin/bash
# Submission queues in an NVMe 1.3 controller memory buffer: lab-cmb13 has
# cmb_size_mb=16 with legacy-cmb=on, QEMU's pre-1.4 scheme: CAP.CMBS clear, CMBLOC and
# CMBSZ readable at once, no CMBMSC, the CMB decoded at BAR 2's bus address from the
# start. nvmeperf must find it without CMBMSC (writing that register, which such a
# controller lacks, would be undefined behaviour in QEMU's log, checked by the host),
# put every I/O SQ there and pass verified I/O, and keep the SQs in host memory with -D.
# The simulator's cmblegacy:1 models the same scheme for the unit tests.
# shellcheck source=/dev/null
. /lab/lib.sh
need_nvmeperf
[ -n "${LAB_CMB13_ADDR:-}" ] || skip "no lab-cmb13 controller (scripts/vmtest.sh lists none)"
bind_userspace_addr "$LAB_CMB13_ADDR"
TRID="trtype:PCIe traddr:$LAB_CMB13_ADDR"
SEED=${LAB_SEED:-1}

# stat NAME: a --transport-stats value in $LAB_OUT, summed over jobs.
stat() { awk -v k="$1:" '$1 == k { s += $2 } END { print s + 0 }' "$LAB_OUT"; }

info "BAR 2 (start end flags): $(sed -n 3p "/sys/bus/pci/devices/$LAB_CMB13_ADDR/resource")"
check "nvmeperf list" "$NVMEPERF" list
l=$(list_of "$LAB_CMB13_ADDR")
info "list: $(grep 'CMB:' <<<"$l")"
grep -q 'CMB: 16 MiB (16777216 bytes) in BAR 2 at offset 0x0, supports SQS.*; I/O SQs in the CMB$' <<<"$l" ||
	LAB_FAILED+=("nvmeperf list: lab-cmb13 does not show a 16 MiB CMB in BAR 2 with SQS holding the I/O SQs")
# Two queue pairs from each of two cores: four SQs in the CMB.
if try "verify fill, SQs in the legacy CMB" "$NVMEPERF" --quiet --seed "$SEED" -r "$TRID" -c 0x3 -P 2 -q 16 -o 131072 -w write --verify -d 25% -t 60 --transport-stats; then
	n=$(stat sq_in_cmb)
	info "fill: sq_in_cmb=$n"
	[ "$n" -eq 4 ] || LAB_FAILED+=("verify fill: sq_in_cmb $n, want 4 (2 cores x 2 queue pairs)")
fi
if try "verify randrw, SQs in the legacy CMB" "$NVMEPERF" --quiet --seed "$SEED" -r "$TRID" -q 32 -o 8192 -w randrw -M 50 --verify -d 25% -t 60 --doorbell per-command --transport-stats; then
	n=$(stat sq_in_cmb)
	info "randrw: sq_in_cmb=$n completions=$(stat completions)"
	[ "$n" -eq 1 ] || LAB_FAILED+=("verify randrw: sq_in_cmb $n, want 1")
fi
if try "-D: SQs in host memory" "$NVMEPERF" --quiet --seed "$SEED" -r "$TRID" -q 16 -o 8192 -w read --verify-read -d 25% -t 60 --transport-stats -D; then
	n=$(stat sq_in_cmb)
	[ "$n" -eq 0 ] || LAB_FAILED+=("-D: sq_in_cmb $n, want 0")
	[ "$(stat completions)" -gt 0 ] || LAB_FAILED+=("-D: no completions")
fi
conclude "I/O SQs in QEMU's legacy (NVMe 1.3) CMB: verify passed without CMBMSC, -D keeps them in host memory"
