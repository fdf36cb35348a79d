#!/bin/sh
# 50-uring-passthru.sh: the kernel path in the lab guest. Drives the scratch NVMe
# namespace through io_uring as a block device ($LAB_BLK, /dev/nvmeXnY) and through
# NVMe passthrough on its generic character device ($LAB_NG, /dev/ngXnY): random
# reads and writes, a write-then-check verify run and a read-only verify pass through
# passthrough, a JSON run that must report status ok, and the controller's SMART /
# Health log before and after write runs (admin passthrough on /dev/nvmeX).
# POSIX sh for busybox; exits non-zero at the first failure, saying why.
set -u

# The harness's helpers (pass/fail/skip/info, "LAB-STEP" lines) when present; the same
# contract otherwise, so the step also runs by hand.
if [ -r /lab/lib.sh ]; then
	# shellcheck source=/dev/null
	. /lab/lib.sh
else
	LAB_STEP=${LAB_STEP:-50-uring-passthru}
	pass() { echo "LAB-STEP $LAB_STEP PASS${1:+: $*}"; exit 0; }
	fail() { echo "LAB-STEP $LAB_STEP FAIL: $*"; exit 1; }
	info() { echo "LAB-INFO $LAB_STEP: $*"; }
fi
NVMEPERF=${NVMEPERF:-/bin/nvmeperf}
T=${LAB_SECONDS:-3}
OUT=/tmp/lab-50-uring

[ -n "${LAB_NG:-}" ] || fail "LAB_NG (the scratch namespace's /dev/ngXnY) is not set"
[ -n "${LAB_BLK:-}" ] || fail "LAB_BLK (the scratch namespace's /dev/nvmeXnY) is not set"
[ -c "$LAB_NG" ] || fail "$LAB_NG is not a character device"
[ -b "$LAB_BLK" ] || fail "$LAB_BLK is not a block device"
[ -x "$NVMEPERF" ] || fail "$NVMEPERF is not executable"
mkdir -p "$OUT" || fail "cannot create $OUT"

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

# The namespace is scratch: writes need --allow-destructive only if an earlier step
# left something that looks like a file system, but pass it so leftovers never fail CI.
W=--allow-destructive

step blk-randread -q 32 -o 4096 -w randread -t "$T" "$LAB_BLK"
step blk-randwrite -q 32 -o 4096 -w randwrite -t "$T" $W "$LAB_BLK"
step ng-randread -q 32 -o 4096 -w randread -t "$T" "$LAB_NG"
step ng-randwrite -q 32 -o 4096 -w randwrite -t "$T" $W "$LAB_NG"
step ng-randrw-128k -q 8 -o 131072 -w randrw -M 70 -t "$T" $W "$LAB_NG"

# Verify through passthrough: writes carry the verify pattern and every read is
# checked against it.
step ng-verify-randrw -q 32 -o 4096 -w randrw -M 50 -t "$T" --verify $W "$LAB_NG"

# Write the whole namespace with the pattern (passthrough), then check it read-only
# through the block device and passthrough: the two paths must agree on the data.
name=$(basename "$LAB_BLK")
sectors=$(cat "/sys/class/block/$name/size" 2>/dev/null) || fail "cannot read /sys/class/block/$name/size"
bytes=$((sectors * 512))
if [ "$bytes" -le $((4 * 1024 * 1024 * 1024)) ]; then
	ios=$((bytes / 131072))
	step ng-verify-fill -q 16 -o 131072 -w write -d "$ios" --verify $W "$LAB_NG"
	step blk-verify-read -q 32 -o 4096 -w randread -t "$T" --verify-read "$LAB_BLK"
	step ng-verify-read -q 32 -o 4096 -w randread -t "$T" --verify-read "$LAB_NG"
else
	info "skipping the full-namespace verify: $LAB_BLK holds $bytes bytes (more than 4 GiB)"
fi

# JSON: the run must say status ok and name the passthrough transport.
step ng-json -q 32 -o 4096 -w randread -t "$T" --output-format json "$LAB_NG"
grep -Eq '"status": *"ok"' "$OUT/ng-json.out" ||
	fail "ng-json: the JSON report's status is not ok: $(grep -E '"(status|error)"' "$OUT/ng-json.out" | head -n 2)"
grep -q 'io_uring-passthru' "$OUT/ng-json.out" ||
	fail "ng-json: the JSON report does not name the io_uring-passthru transport"
step blk-json -q 32 -o 4096 -w randread -t "$T" --output-format json "$LAB_BLK"
grep -Eq '"status": *"ok"' "$OUT/blk-json.out" ||
	fail "blk-json: the JSON report's status is not ok: $(grep -E '"(status|error)"' "$OUT/blk-json.out" | head -n 2)"

# Health (issue 13): a write run on the block device and on the generic device reports
# the SMART / Health log of the controller behind it, read through admin passthrough on
# /dev/nvmeX before and after; the difference counts the run's writes.
# diffkey FILE KEY: KEY's value in the first health entry's "difference" object.
diffkey() {
	awk -v k="\"$2\":" '/"difference": \{/ { d = 1 } d && $1 == k { gsub(/[^0-9]/, "", $2); print $2; exit }' "$1"
}
for dev in "$LAB_BLK" "$LAB_NG"; do
	name=health-$(basename "$dev")
	step "$name" -q 16 -o 4096 -w randwrite -d 2000 -t 60 $W --output-format json "$dev"
	f=$OUT/$name.out
	grep -Eq '"device": *"/dev/nvme[0-9]+"' "$f" && grep -Eq '"before": *\{' "$f" && grep -Eq '"after": *\{' "$f" ||
		fail "$name: no health entry with before and after for the controller behind $dev: $(grep -A 3 '"health"' "$f" | tr -d '\n')"
	grep -q '"error": *".*run' "$f" && fail "$name: health error: $(grep '"error"' "$f")"
	cmds=$(diffkey "$f" host_write_commands)
	units=$(diffkey "$f" data_units_written)
	info "$name: the controller counted $cmds write commands and $units data units written"
	[ "${cmds:-0}" -ge 2000 ] && [ "${units:-0}" -ge 1 ] ||
		fail "$name: health difference has $cmds host write commands and $units data units written; want at least 2000 and 1"
done
step health-text -q 16 -o 4096 -w randwrite -d 500 -t 60 $W --health "$LAB_BLK"
grep -Eq '^Health of /dev/nvme[0-9]+ over the run: .* [0-9]+ written' "$OUT/health-text.out" ||
	fail "health-text: --health printed no health line: $(tail -n 3 "$OUT/health-text.out")"

pass "io_uring on $LAB_BLK and passthrough on $LAB_NG"
