#!/bin/bash
# 68-tcp-bench.sh: bench/tcp_vs_kernel.sh in the guest — nvmeperf's NVMe/TCP host
# against the kernel's nvme-tcp host (fio, io_uring, direct I/O on the block device),
# both against the same target, once against `nvmeperf serve` (sim null namespace) and
# once against the kernel's nvmet-tcp (null_blk namespace), on loopback. Rows: 4 KiB
# randread at QD 1 and 32, randwrite at QD 32. Asserts both hosts produced IOPS > 0 and
# CPU per I/O figures on every row, and that the script cleaned up (no controller,
# nvmet subsystem, port or null_blk device left). The table goes to the console as
# LAB-INFO lines. Under TCG the absolute numbers measure the emulator; both hosts run
# under the same conditions in one run, so their ratio is what to read.
# LAB_TCP_BENCH_SECONDS (2) and LAB_TCP_BENCH_RUNS (1) lengthen it, LAB_TCP_BENCH_BACKEND=file
# gives nvmet a file-backed namespace instead (all through VMTEST_GUEST_ENV).
set -u
# shellcheck source=/dev/null
. /lab/lib.sh

SCRIPT=${LAB_TCP_BENCH:-/bin/tcp_vs_kernel.sh}
SECS=${LAB_TCP_BENCH_SECONDS:-2}
RUNS=${LAB_TCP_BENCH_RUNS:-1}
OUT=/tmp/lab-68-tcp-bench
# nvmet's namespace: null (a null_blk device) or file (64 MiB on the guest's tmpfs).
BACKEND=${LAB_TCP_BENCH_BACKEND:-null}
SIZE=1024
[ "$BACKEND" = file ] && SIZE=64
ROWS="randread:1 randread:32 randwrite:32"
TARGETS="serve nvmet"

need_nvmeperf
# NVMe/TCP over loopback does not involve the IOMMU: one boot is enough (as 60 and 65).
[ "${LAB_MODE:-}" = iommu ] && skip "NVMe/TCP runs in the noiommu boot only (it does not depend on the IOMMU)"
[ -x "$SCRIPT" ] || fail "$SCRIPT is not in the guest (scripts/vmtest.sh installs bench/tcp_vs_kernel.sh)"
command -v fio >/dev/null || skip "fio is not in the guest: the host had no fio to copy (make test-tools installs it)"
[ -e /dev/nvme-fabrics ] && [ -d /sys/module/nvme_tcp ] || skip "the guest lacks nvme-fabrics/nvme-tcp (the lab's guest modules)"
[ -d /sys/module/nvmet_tcp ] || skip "the guest lacks nvmet-tcp (the lab's guest modules)"
[ -d /sys/module/null_blk ] || skip "the guest lacks null_blk (the lab's guest modules)"
mkdir -p "$OUT" || fail "cannot create $OUT"
ip link set lo up 2>/dev/null || ifconfig lo 127.0.0.1 up 2>/dev/null

# A usage error names the value and exits 2 before touching anything.
rc=0
"$SCRIPT" --rows randread:0 >"$OUT/usage.err" 2>&1 || rc=$?
[ "$rc" -eq 2 ] || fail "tcp_vs_kernel.sh --rows randread:0: exit $rc, want 2: $(tail -n 1 "$OUT/usage.err")"
grep -q "randread:0" "$OUT/usage.err" || fail "the usage error does not name the value: $(cat "$OUT/usage.err")"

info "tcp_vs_kernel.sh: targets '$TARGETS', rows '$ROWS', $SECS s per run, best of $RUNS"
rc=0
"$SCRIPT" --nvmeperf "$NVMEPERF" --target "$TARGETS" --rows "$ROWS" --seconds "$SECS" --runs "$RUNS" \
	--backend "$BACKEND" --size "$SIZE" --results "$OUT/results.tsv" --prefix "LAB-INFO $LAB_STEP: " 2>"$OUT/bench.err" || rc=$?
sed 's/^/  /' "$OUT/bench.err"
[ "$rc" -eq 0 ] || fail "tcp_vs_kernel.sh exited $rc: $(tail -n 1 "$OUT/bench.err")"

# Cleanup on the success path: nothing of the benchmark's left in the kernel.
for c in /sys/class/nvme/nvme*; do
	[ "$(cat "$c/transport" 2>/dev/null)" = tcp ] && fail "controller $(basename "$c") ($(cat "$c/subsysnqn")) still connected after the benchmark"
done
for d in /sys/kernel/config/nvmet/subsystems/*tcp-bench*; do
	[ -e "$d" ] && fail "an nvmet subsystem of the benchmark is left: $d"
done
[ -e /sys/kernel/config/nvmet/ports/4430 ] && fail "the benchmark's nvmet port 4430 is left"
[ -e /sys/kernel/config/nullb/nvmeperf-tcp-bench ] && fail "the benchmark's null_blk device is left"

# Every target x row x host: IOPS > 0 and positive CPU-per-I/O figures (self, process,
# system; host too against serve).
want=0
for t in $TARGETS; do
	for r in $ROWS; do
		for h in kernel nvmeperf; do
			want=$((want + 1))
			line=$(awk -F'\t' -v t="$t" -v p="${r%%:*}" -v q="${r#*:}" -v h="$h" \
				'$1 == t && $2 == p && $3 == q && $4 == h' "$OUT/results.tsv")
			[ -n "$line" ] || fail "no result for $h on $t $r"
			echo "$line" | awk -F'\t' -v t="$t" '
				function pos(x) { return x != "-" && x + 0 > 0 }
				{ ok = $5 > 0 && pos($6) && pos($7) && pos($8) && (t != "serve" || pos($9)); exit !ok }' ||
				fail "$h on $t $r: want IOPS > 0 and CPU per I/O figures, got: $(echo "$line" | tr '\t' ' ')"
		done
	done
done
pass "nvmeperf host and kernel nvme-tcp host (fio io_uring) against nvmeperf serve and nvmet-tcp: $want results, IOPS and CPU per I/O each; cleaned up"
