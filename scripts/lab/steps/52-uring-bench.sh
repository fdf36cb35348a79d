#!/bin/sh
# 52-uring-bench.sh: nvmeperf's io_uring engine against fio's on an NVMe namespace the
# kernel drives (the lab-kernel controller, $LAB_BLK): 4 KiB random reads, direct I/O,
# QD 1, 32 and 128, both pinned to CPU 0, in alternating rounds (the first tool
# alternates). The guest counterpart of bench/uring_vs_fio.sh, in busybox sh and awk
# (the guest has no python3). Per run: IOPS, whole-process CPU per I/O (busybox time:
# user and system), the I/O thread's own CPU per I/O (fio's job thread from usr_cpu and
# sys_cpu, nvmeperf's workers from total.cpu) and nvmeperf's ratios to fio in that round;
# per depth the median ratios. The kernel floor is nvmeperf's system CPU per I/O over
# fio's CPU per I/O, as in the host script.
#
# Under TCG, guest code runs emulated while QEMU's NVMe model runs natively, so a
# doorbell costs little next to the tools' own code: closer to a real NVMe drive than
# the virtio disk of a KVM guest, where the notify's trap dominates (docs/io_uring.md).
# Absolute numbers measure the emulator. The step asserts that both tools produced
# IOPS and CPU figures on every run, never a performance ratio: on a shared machine
# those are for reading, not for failing a build.
# LAB_URING_BENCH_SECONDS (2), LAB_URING_BENCH_ROUNDS (1) and LAB_URING_BENCH_DEPTHS
# ("1 32 128") change it (through VMTEST_GUEST_ENV).
set -u
# shellcheck source=/dev/null
. /lab/lib.sh

SECS=${LAB_URING_BENCH_SECONDS:-2}
ROUNDS=${LAB_URING_BENCH_ROUNDS:-1}
DEPTHS=${LAB_URING_BENCH_DEPTHS:-1 32 128}
OUT=/tmp/lab-52-uring-bench

need_nvmeperf
# One boot is enough: the kernel drives this controller the same way in both.
[ "${LAB_MODE:-}" = iommu ] && skip "runs in the noiommu boot only (the kernel's nvme driver does not depend on the IOMMU)"
command -v fio >/dev/null || skip "fio is not in the guest: the host had no fio to copy (make test-tools installs it)"
[ -b "${LAB_BLK:-}" ] || fail "LAB_BLK (${LAB_BLK:-unset}) is not a block device"
mkdir -p "$OUT" || fail "cannot create $OUT"
info "$LAB_BLK: scheduler $(cat "/sys/block/${LAB_BLK#/dev/}/queue/scheduler"), $SECS s runs, $ROUNDS round(s), depths $DEPTHS"

# jnum FILE KEY [last]: the first (or last) number after "KEY": in a JSON file.
jnum() {
	if [ "${3:-}" = last ]; then
		grep "\"$2\"" "$1" | tail -n 1
	else
		grep -m 1 "\"$2\"" "$1"
	fi | sed 's/.*: *//; s/[^0-9.eE+-]//g'
}

# fio_run QD ROUND: one fio run; appends "iops ios user_s sys_s thread_s" to fio-QD-ROUND.
fio_run() {
	j=$OUT/fio-$1-$2.json
	busybox time -f '%U %S' -o "$j.time" fio --name=randread --filename="$LAB_BLK" --rw=randread --bs=4k \
		--iodepth="$1" --direct=1 --ioengine=io_uring --time_based --runtime="$SECS" --cpus_allowed=0 \
		--output-format=json --output="$j" >"$j.err" 2>&1 || fail "fio at QD $1: $(tail -n 1 "$j.err")"
	rt=$(jnum "$j" job_runtime) # ms
	echo "$(jnum "$j" iops) $(jnum "$j" total_ios) $(tail -n 1 "$j.time") $(jnum "$j" usr_cpu) $(jnum "$j" sys_cpu) $rt" |
		awk '{ print $1, $2, $3, $4, ($5 + $6) / 100 * $7 / 1000 }' >"$OUT/fio-$1-$2"
}

# np_run QD ROUND: one nvmeperf run, the same figures (total.all and total.cpu are the
# last "iops", "ios" and CPU keys of the report).
np_run() {
	j=$OUT/np-$1-$2.json
	busybox time -f '%U %S' -o "$j.time" taskset -c 0 "$NVMEPERF" -q "$1" -o 4096 -w randread -t "$SECS" -c '[0]' \
		--quiet --output-format json --output "$j" "$LAB_BLK" >"$j.err" 2>&1 || fail "nvmeperf at QD $1: $(tail -n 1 "$j.err")"
	grep -q '"status": "ok"' "$j" || fail "nvmeperf at QD $1: status not ok: $(grep '"status"' "$j")"
	echo "$(jnum "$j" iops last) $(jnum "$j" ios last) $(tail -n 1 "$j.time") $(jnum "$j" user_seconds last) $(jnum "$j" system_seconds last)" |
		awk '{ print $1, $2, $3, $4, $5 + $6 }' >"$OUT/np-$1-$2"
}

# median: the median of the numbers on stdin (the lower middle one for an even count).
median() { sort -g | awk '{ v[NR] = $1 } END { printf "%.2f\n", v[int((NR + 1) / 2)] }'; }

runs=0
for qd in $DEPTHS; do
	r=1
	while [ "$r" -le "$ROUNDS" ]; do
		if [ $((r % 2)) -eq 1 ]; then fio_run "$qd" "$r"; np_run "$qd" "$r"; else np_run "$qd" "$r"; fio_run "$qd" "$r"; fi
		for tool in fio np; do
			awk -v t="$tool" '{ ok = $1 > 0 && $2 > 0 && $3 + $4 > 0 && $5 > 0; exit !ok }' "$OUT/$tool-$qd-$r" ||
				fail "$tool at QD $qd round $r: want IOPS, I/Os and CPU figures, got: $(cat "$OUT/$tool-$qd-$r")"
		done
		# The round's line and ratios: IOPS, CPU per I/O, thread CPU per I/O, floor.
		paste -d ' ' "$OUT/fio-$qd-$r" "$OUT/np-$qd-$r" | awk -v qd="$qd" -v r="$r" -v p="LAB-INFO $LAB_STEP:" '{
			fcpu = ($3 + $4) * 1e6 / $2; fthr = $5 * 1e6 / $2
			ncpu = ($8 + $9) * 1e6 / $7; nthr = $10 * 1e6 / $7
			printf "%s QD %s round %s: fio %.0f IOPS, CPU %.1f us/IO (user %.1f, system %.1f), thread %.1f | nvmeperf %.0f IOPS, CPU %.1f us/IO (user %.1f, system %.1f), thread %.1f\n",
				p, qd, r, $1, fcpu, $3 * 1e6 / $2, $4 * 1e6 / $2, fthr, $6, ncpu, $8 * 1e6 / $7, $9 * 1e6 / $7, nthr
			print $6 / $1, ncpu / fcpu, nthr / fthr, $9 * 1e6 / $7 / fcpu
		}' >"$OUT/round"
		head -n 1 "$OUT/round"
		tail -n 1 "$OUT/round" >>"$OUT/ratios-$qd"
		runs=$((runs + 2))
		r=$((r + 1))
	done
	info "QD $qd: nvmeperf/fio, median of $ROUNDS round(s): IOPS $(cut -d' ' -f1 "$OUT/ratios-$qd" | median)x, CPU per I/O $(cut -d' ' -f2 "$OUT/ratios-$qd" | median)x, thread CPU per I/O $(cut -d' ' -f3 "$OUT/ratios-$qd" | median)x, kernel floor $(cut -d' ' -f4 "$OUT/ratios-$qd" | median)x"
done
pass "nvmeperf and fio (io_uring) on $LAB_BLK at QD $DEPTHS: $runs runs, IOPS and CPU per I/O each"
