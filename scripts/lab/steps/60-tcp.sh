#!/bin/sh
# 60-tcp.sh: Linux's NVMe/TCP host against `nvmeperf serve`. The guest serves a
# simulated controller on loopback, connects the kernel's nvme-tcp host to it by writing
# a connect string to /dev/nvme-fabrics, and benchmarks the block device the kernel
# creates with nvmeperf through io_uring: random reads and writes with --verify, large
# writes that need R2T and several H2CData PDUs, a read-only verify pass — once without
# digests and once with header and data digests. The target must end with no protocol
# error. Needs the nvme-fabrics and nvme-tcp modules (and crc32c) in the guest.
# POSIX sh for busybox; exits non-zero at the first failure, saying why.
set -u

if [ -r /lab/lib.sh ]; then
	# shellcheck source=/dev/null
	. /lab/lib.sh
else
	LAB_STEP=${LAB_STEP:-60-tcp}
	pass() { echo "LAB-STEP $LAB_STEP PASS${1:+: $*}"; exit 0; }
	fail() { echo "LAB-STEP $LAB_STEP FAIL: $*"; exit 1; }
	skip() { echo "LAB-STEP $LAB_STEP SKIP: $*"; exit 0; }
	info() { echo "LAB-INFO $LAB_STEP: $*"; }
fi
NVMEPERF=${NVMEPERF:-/bin/nvmeperf}
T=${LAB_SECONDS:-2}
OUT=/tmp/lab-60-tcp
PORT=4420
NQN=nqn.2026-11.io.nvmeperf:lab
HOSTNQN=nqn.2014-08.org.nvmexpress:uuid:6e766d65-7065-7266-2d6c-61622d746370

[ -x "$NVMEPERF" ] || fail "$NVMEPERF is not executable"
# NVMe/TCP over loopback does not involve the IOMMU or the PCIe binding: one boot is
# enough, and keeps the lab's run time within bounds.
[ "${LAB_MODE:-}" = iommu ] && skip "NVMe/TCP runs in the noiommu boot only (it does not depend on the IOMMU)"
mkdir -p "$OUT" || fail "cannot create $OUT"

# The fabrics host modules: loaded by the guest init when the lab lists them, else try
# the module files directly.
if [ ! -e /dev/nvme-fabrics ] || [ ! -d /sys/module/nvme_tcp ]; then
	for m in crc32c_generic nvme-fabrics nvme_fabrics nvme-tcp nvme_tcp; do
		for f in /lib/modules/"$m".ko*; do
			[ -e "$f" ] && insmod "$f" 2>/dev/null
		done
	done
fi
[ -e /dev/nvme-fabrics ] || skip "no /dev/nvme-fabrics: the guest kernel lacks nvme-fabrics (add nvme-fabrics and nvme-tcp to the lab's guest modules)"
[ -d /sys/module/nvme_tcp ] || skip "the nvme-tcp module is not loaded in the guest (add nvme-tcp to the lab's guest modules)"

# Loopback must be up for 127.0.0.1.
ip link set lo up 2>/dev/null || ifconfig lo 127.0.0.1 up 2>/dev/null

SERVE_PID=""
CTRL=""
cleanup() {
	if [ -n "$CTRL" ] && [ -e "/sys/class/nvme/$CTRL/delete_controller" ]; then
		echo 1 >"/sys/class/nvme/$CTRL/delete_controller" 2>/dev/null
	fi
	CTRL=""
	if [ -n "$SERVE_PID" ]; then
		kill -INT "$SERVE_PID" 2>/dev/null
		wait "$SERVE_PID" 2>/dev/null
	fi
	SERVE_PID=""
}
trap cleanup EXIT

# start_serve NAME ARGS...: nvmeperf serve in the background, waiting until it listens.
start_serve() {
	name=$1
	shift
	info "$name: nvmeperf serve $*"
	"$NVMEPERF" serve --listen "127.0.0.1:$PORT" --nqn "$NQN" "$@" >"$OUT/$name.serve.out" 2>"$OUT/$name.serve.err" &
	SERVE_PID=$!
	i=0
	while ! grep -q 'connect:' "$OUT/$name.serve.err" 2>/dev/null; do
		kill -0 "$SERVE_PID" 2>/dev/null || { cat "$OUT/$name.serve.err" >&2; fail "$name: nvmeperf serve exited: $(tail -n 1 "$OUT/$name.serve.err")"; }
		i=$((i + 1))
		[ "$i" -le 200 ] || fail "$name: nvmeperf serve is not listening after 20 s"
		sleep 0.1
	done
}

# stop_serve NAME: stop the target and check its summary: I/O served, no TermReq sent.
stop_serve() {
	name=$1
	kill -INT "$SERVE_PID" 2>/dev/null
	wait "$SERVE_PID"
	SERVE_PID=""
	cat "$OUT/$name.serve.err"
	summary=$(grep 'I/O commands' "$OUT/$name.serve.err" | tail -n 1)
	[ -n "$summary" ] || fail "$name: nvmeperf serve printed no summary"
	echo "$summary" | grep -q ' 0 I/O commands' && fail "$name: the target served no I/O: $summary"
	echo "$summary" | grep -q ' 0 connections ended by protocol errors' || fail "$name: protocol errors: $summary"
}

# connect NAME OPTIONS: the kernel host connects; sets CTRL (nvmeN) and BLK (nvmeNnM).
connect() {
	name=$1
	opts="transport=tcp,traddr=127.0.0.1,trsvcid=$PORT,nqn=$NQN,hostnqn=$HOSTNQN,nr_io_queues=2${2:+,$2}"
	info "$name: echo $opts > /dev/nvme-fabrics"
	echo "$opts" >/dev/nvme-fabrics || fail "$name: the kernel refused the connect string (see dmesg: $(dmesg | tail -n 3 | tr '\n' ' '))"
	CTRL="" BLK=""
	i=0
	while [ -z "$BLK" ]; do
		for c in /sys/class/nvme/nvme*; do
			[ "$(cat "$c/subsysnqn" 2>/dev/null)" = "$NQN" ] || continue
			[ "$(cat "$c/transport" 2>/dev/null)" = "tcp" ] || continue
			CTRL=$(basename "$c")
			for e in "$c"/nvme*; do
				e=$(basename "$e" | sed -E 's/^nvme([0-9]+)c[0-9]+n([0-9]+)$/nvme\1n\2/')
				case $e in nvme*n*) [ -b "/dev/$e" ] && BLK=$e ;; esac
			done
		done
		i=$((i + 1))
		[ "$i" -le 200 ] || fail "$name: no block device for $NQN after 20 s (controller '${CTRL:-none}'; dmesg: $(dmesg | tail -n 3 | tr '\n' ' '))"
		[ -n "$BLK" ] || sleep 0.1
	done
	info "$name: controller $CTRL, block device /dev/$BLK"
}

disconnect() {
	[ -n "$CTRL" ] || return 0
	echo 1 >"/sys/class/nvme/$CTRL/delete_controller" || fail "deleting controller $CTRL"
	CTRL=""
}

# step NAME ARGS...: run nvmeperf, keep its output, stop on failure.
step() {
	name=$1
	shift
	info "$name: nvmeperf $*"
	if ! "$NVMEPERF" "$@" >"$OUT/$name.out" 2>"$OUT/$name.err"; then
		cat "$OUT/$name.out" "$OUT/$name.err" >&2
		fail "$name: nvmeperf $* exited non-zero"
	fi
	tail -n 5 "$OUT/$name.out"
}

# Round NAME CONNECT-OPTIONS: one target, one kernel host, the benchmark runs.
round() {
	r=$1
	# MAXH2CDATA 32 KiB makes every 128 KiB write four H2CData PDUs after one R2T.
	start_serve "$r" -r 'trtype:sim nssize:128m store:mem' --max-h2c-data 32k
	connect "$r" "$2"
	B=/dev/$BLK
	# The served namespace is a fresh simulator: nothing to protect, but a leftover
	# signature must not fail CI.
	W=--allow-destructive
	step "$r-randread" -q 32 -o 4096 -w randread -t "$T" "$B"
	step "$r-verify-randrw" -q 32 -o 4096 -w randrw -M 50 -t "$T" --verify $W "$B"
	step "$r-verify-fill-128k" -q 8 -o 131072 -w write -d 1024 --verify $W "$B"
	step "$r-verify-read" -q 32 -o 4096 -w randread -t "$T" --verify-read "$B"
	step "$r-json" -q 16 -o 16384 -w randwrite -t "$T" --output-format json $W "$B"
	grep -Eq '"status": *"ok"' "$OUT/$r-json.out" ||
		fail "$r-json: the JSON report's status is not ok: $(grep -E '"(status|error)"' "$OUT/$r-json.out" | head -n 2)"
	disconnect
	stop_serve "$r"
}

round plain ""
round digests "hdr_digest,data_digest"

pass "Linux nvme-tcp host against nvmeperf serve, with and without digests, verify clean"
