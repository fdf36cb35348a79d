#!/bin/sh
# 65-tcp-host.sh: nvmeperf's NVMe/TCP host against Linux's nvmet-tcp target, the
# independent peer. The guest configures nvmet through configfs — one subsystem with a
# file-backed namespace on the guest's tmpfs (buffered I/O: tmpfs has no O_DIRECT), one
# TCP port on loopback — and nvmeperf runs against it: a verify fill, random reads and
# writes with --verify without and with header and data digests (-H -I), 128 KiB writes
# beyond the target's in-capsule size (R2T), and a run through the discovery controller
# (a trid without subnqn). Needs configfs, nvmet and nvmet-tcp in the guest.
# POSIX sh for busybox; exits at the first failure, saying why.
set -u

if [ -r /lab/lib.sh ]; then
	# shellcheck source=/dev/null
	. /lab/lib.sh
else
	LAB_STEP=${LAB_STEP:-65-tcp-host}
	pass() { echo "LAB-STEP $LAB_STEP PASS${1:+: $*}"; exit 0; }
	fail() { echo "LAB-STEP $LAB_STEP FAIL: $*"; exit 1; }
	skip() { echo "LAB-STEP $LAB_STEP SKIP: $*"; exit 0; }
	info() { echo "LAB-INFO $LAB_STEP: $*"; }
fi
NVMEPERF=${NVMEPERF:-/bin/nvmeperf}
T=${LAB_SECONDS:-3}
OUT=/tmp/lab-65-tcp-host
PORT=4421
NQN=nqn.2026-11.io.nvmeperf:lab-nvmet
IMG=/tmp/lab-65-nvmet.img
CFG=/sys/kernel/config/nvmet

[ -x "$NVMEPERF" ] || fail "$NVMEPERF is not executable"
# NVMe/TCP over loopback does not involve the IOMMU or the PCIe binding: one boot is
# enough, and keeps the lab's run time within bounds.
[ "${LAB_MODE:-}" = iommu ] && skip "NVMe/TCP runs in the noiommu boot only (it does not depend on the IOMMU)"
mkdir -p "$OUT" || fail "cannot create $OUT"

if [ ! -d /sys/module/nvmet_tcp ]; then
	for m in configfs nvmet nvmet-tcp nvmet_tcp; do
		for f in /lib/modules/"$m".ko*; do
			[ -e "$f" ] && insmod "$f" 2>/dev/null
		done
	done
fi
[ -d /sys/kernel/config ] || skip "no /sys/kernel/config: the guest kernel lacks configfs"
grep -q ' /sys/kernel/config ' /proc/mounts || mount -t configfs none /sys/kernel/config ||
	fail "cannot mount configfs on /sys/kernel/config"
[ -d /sys/module/nvmet ] || skip "the nvmet module is not loaded in the guest (add nvmet to the lab's guest modules)"
[ -d /sys/module/nvmet_tcp ] || skip "the nvmet-tcp module is not loaded in the guest (add nvmet-tcp to the lab's guest modules)"
[ -d "$CFG" ] || fail "nvmet is loaded but $CFG does not exist"

ip link set lo up 2>/dev/null || ifconfig lo 127.0.0.1 up 2>/dev/null

S=$CFG/subsystems/$NQN
P=$CFG/ports/65
cleanup() {
	rm -f "$P/subsystems/$NQN" 2>/dev/null
	rmdir "$P" 2>/dev/null
	[ -e "$S/namespaces/1/enable" ] && echo 0 >"$S/namespaces/1/enable" 2>/dev/null
	rmdir "$S/namespaces/1" 2>/dev/null
	rmdir "$S" 2>/dev/null
	rm -f "$IMG"
}
trap cleanup EXIT

# The target: a 64 MiB file on tmpfs as namespace 1, any host allowed, TCP on loopback.
dd if=/dev/zero of="$IMG" bs=1M count=64 2>/dev/null || fail "cannot create the 64 MiB backing file $IMG"
mkdir "$S" || fail "cannot create nvmet subsystem $S"
echo 1 >"$S/attr_allow_any_host" || fail "attr_allow_any_host"
mkdir "$S/namespaces/1" || fail "cannot create namespace 1"
echo -n "$IMG" >"$S/namespaces/1/device_path" || fail "device_path $IMG"
if [ -e "$S/namespaces/1/buffered_io" ]; then
	echo 1 >"$S/namespaces/1/buffered_io" || fail "buffered_io"
fi
echo 1 >"$S/namespaces/1/enable" || fail "enabling namespace 1 (dmesg: $(dmesg | tail -n 2 | tr '\n' ' '))"
mkdir "$P" || fail "cannot create nvmet port $P"
echo tcp >"$P/addr_trtype" && echo ipv4 >"$P/addr_adrfam" && echo 127.0.0.1 >"$P/addr_traddr" &&
	echo "$PORT" >"$P/addr_trsvcid" || fail "configuring port $P"
ln -s "$S" "$P/subsystems/$NQN" || fail "linking $NQN to the port (dmesg: $(dmesg | tail -n 2 | tr '\n' ' '))"
info "nvmet-tcp serves $NQN (64 MiB file on tmpfs) on 127.0.0.1:$PORT"

TRID="trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:$PORT subnqn:$NQN"
DISC="trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:$PORT"

# step NAME ARGS...: run nvmeperf with JSON, keep its output, stop unless status ok.
step() {
	name=$1
	shift
	info "$name: nvmeperf $*"
	if ! "$NVMEPERF" "$@" --output-format json >"$OUT/$name.out" 2>"$OUT/$name.err"; then
		cat "$OUT/$name.out" "$OUT/$name.err" >&2
		fail "$name: nvmeperf $* exited non-zero: $(tail -n 1 "$OUT/$name.err")"
	fi
	grep -Eq '"status": *"ok"' "$OUT/$name.out" ||
		fail "$name: the JSON report's status is not ok: $(grep -E '"(status|error)"' "$OUT/$name.out" | head -n 2)"
	grep -Eq '"mismatched": *0' "$OUT/$name.out" ||
		fail "$name: verify mismatches: $(grep -E '"(checked|mismatched)"' "$OUT/$name.out" | head -n 2)"
	info "$name: $(grep -Eo '"iops": *[0-9.]+' "$OUT/$name.out" | tail -n 1)"
}

step fill -q 16 -o 131072 -w write -d 512 --verify -r "$TRID"
step verify-read -q 32 -o 4096 -w randread -t "$T" --verify-read -r "$TRID"
step verify-randrw -q 32 -o 4096 -w randrw -M 50 -t "$T" --verify -r "$TRID"
step verify-randrw-digests -q 32 -o 16384 -w randrw -M 50 -t "$T" --verify -H -I -r "$TRID"
step verify-128k-digests -q 8 -o 131072 -w randrw -M 50 -t "$T" --verify -H -I -r "$TRID"
step discovery -q 16 -o 4096 -w randrw -M 50 -t "$T" --verify -k 2000 -r "$DISC"

pass "nvmeperf's NVMe/TCP host against Linux nvmet-tcp: verify clean with and without digests, R2T writes, discovery"
