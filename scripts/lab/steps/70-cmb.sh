#!/bin/bash
# Submission queues in QEMU's controller memory buffer: lab-cmb has cmb_size_mb=16 (BAR
# 2, NVMe 1.4 scheme: CAP.CMBS, enabled through CMBMSC with the BAR's bus address).
# nvmeperf must put every I/O SQ there by default (sq_in_cmb in --transport-stats and in
# the JSON), pass verified I/O with the commands fetched from the CMB — together with
# shadow doorbells, which QEMU offers too — and keep the SQs in host memory with -D and
# --no-sq-cmb. nvmeperf list (text and JSON) must show the CMB. QEMU's
# undefined-behaviour log (pci_nvme_ub_*) is checked by the host.
# shellcheck source=/dev/null
. /lab/lib.sh
need_nvmeperf
[ -n "$LAB_CMB_ADDR" ] || skip "no lab-cmb controller (scripts/vmtest.sh lists none)"
bind_userspace_addr "$LAB_CMB_ADDR"
TRID="trtype:PCIe traddr:$LAB_CMB_ADDR"
SEED=${LAB_SEED:-1}
T=${LAB_PERF_SECONDS:-1}

# stat NAME: a --transport-stats value in $LAB_OUT, summed over jobs.
stat() { awk -v k="$1:" '$1 == k { s += $2 } END { print s + 0 }' "$LAB_OUT"; }
# json_sum KEY: a transport_stats key in the JSON in $LAB_OUT, summed over jobs.
json_sum() { grep -o "\"$1\": *[0-9]*" "$LAB_OUT" | awk -F: '{ s += $2 } END { print s + 0 }'; }

info "BAR 2 (start end flags): $(sed -n 3p "/sys/bus/pci/devices/$LAB_CMB_ADDR/resource")"
# nvmeperf list, text and JSON: lab-cmb's 16 MiB CMB in BAR 2 with SQS, the I/O SQs
# there; lab-vfio (bound for userspace too) has none.
bind_userspace
check "nvmeperf list" "$NVMEPERF" list
list_of "$LAB_CMB_ADDR" | while read -r l; do info "list: $l"; done
l=$(list_of "$LAB_CMB_ADDR")
grep -q 'CMB: 16 MiB (16777216 bytes) in BAR 2 at offset 0x0, supports SQS.*; I/O SQs in the CMB$' <<<"$l" ||
	LAB_FAILED+=("nvmeperf list: lab-cmb does not show a 16 MiB CMB in BAR 2 with SQS holding the I/O SQs")
l=$(list_of "$LAB_VFIO_ADDR")
grep -q 'CMB: none$' <<<"$l" || LAB_FAILED+=("nvmeperf list: lab-vfio does not show CMB: none")
# json_of ADDR: the lines of the list JSON in $LAB_OUT about the controller at ADDR.
json_of() { awk -v a="\"address\": \"$1\"" '/"address": / { on = index($0, a) > 0 } on' "$LAB_OUT"; }
check "nvmeperf list (JSON)" "$NVMEPERF" list --output-format json
j=$(json_of "$LAB_CMB_ADDR")
for k in '"size_bytes": 16777216' '"bar": 2' '"sqs": true' '"sq_in_cmb": true'; do
	grep -qF "$k" <<<"$j" || LAB_FAILED+=("nvmeperf list JSON: lab-cmb has no $k")
done
j=$(json_of "$LAB_VFIO_ADDR")
for k in '"size_bytes": 0' '"sq_in_cmb": false'; do
	grep -qF "$k" <<<"$j" || LAB_FAILED+=("nvmeperf list JSON: lab-vfio has no $k")
done

# Two queue pairs from each of two cores: four SQs in the CMB.
if try "verify fill, SQs in the CMB" "$NVMEPERF" --quiet --seed "$SEED" -r "$TRID" -c 0x3 -P 2 -q 16 -o 131072 -w write --verify -d 25% -t 60 --transport-stats; then
	n=$(stat sq_in_cmb)
	info "fill: sq_in_cmb=$n, shadow updates sq=$(stat sq_shadow_doorbell_updates)"
	[ "$n" -eq 4 ] || LAB_FAILED+=("verify fill: sq_in_cmb $n, want 4 (2 cores x 2 queue pairs)")
fi
if try "verify randrw, SQs in the CMB" "$NVMEPERF" --quiet --seed "$SEED" -r "$TRID" -q 32 -o 8192 -w randrw -M 50 --verify -d 25% -t 60 --doorbell per-command --transport-stats; then
	n=$(stat sq_in_cmb)
	sh=$(stat sq_shadow_doorbell_updates)
	info "randrw: sq_in_cmb=$n completions=$(stat completions) shadow updates sq=$sh skipped=$(stat shadow_doorbell_skips)"
	[ "$n" -eq 1 ] || LAB_FAILED+=("verify randrw: sq_in_cmb $n, want 1")
	[ "$sh" -gt 0 ] || LAB_FAILED+=("verify randrw: no shadow doorbell update with the SQ in the CMB")
fi
if try "verify-read, SQs in the CMB (JSON)" "$NVMEPERF" --seed "$SEED" -r "$TRID" -q 16 -o 131072 -w read --verify-read -d 25% -t 60 --output-format json; then
	n=$(json_sum sq_in_cmb)
	info "JSON: sq_in_cmb=$n"
	[ "$n" -eq 1 ] || LAB_FAILED+=("JSON transport_stats sq_in_cmb $n, want 1")
	grep -q '"sq_in_cmb": *true' "$LAB_OUT" || LAB_FAILED+=("JSON devices[]: no \"sq_in_cmb\": true")
	info "JSON device: $(grep -o '"cmb_bytes": *[0-9]*' "$LAB_OUT" | head -n 1)"
fi
for flag in -D --no-sq-cmb; do
	if try "$flag: SQs in host memory" "$NVMEPERF" --quiet --seed "$SEED" -r "$TRID" -q 16 -o 8192 -w randrw -M 50 --verify -d 25% -t 60 --transport-stats "$flag"; then
		n=$(stat sq_in_cmb)
		[ "$n" -eq 0 ] || LAB_FAILED+=("$flag: sq_in_cmb $n, want 0")
		[ "$(stat completions)" -gt 0 ] || LAB_FAILED+=("$flag: no completions")
	fi
done
try "randread, SQs in the CMB" "$NVMEPERF" --quiet -t "$T" -r "$TRID" -q 32 -o 4096 -w randread --transport-stats &&
	info "randread: $(grep -E 'IOPS|Total' "$LAB_OUT" | tail -n 1)"
conclude "I/O SQs in QEMU's CMB: verify passed, -D and --no-sq-cmb keep them in host memory"
