# shellcheck shell=bash
# Helpers for lab steps (scripts/lab/steps/*.sh), sourced as /lab/lib.sh in the guest.
# The guest init exports LAB_* (see docs/lab.md).
: "${LAB_SETUP:=/bin/setup.sh}" "${NVMEPERF:=/bin/nvmeperf}"
# A step reports once: pass, fail or skip print "LAB-STEP <name> ..." and exit.

LAB_STEP=${LAB_STEP:-$(basename "$0" .sh)}

pass() { echo "LAB-STEP $LAB_STEP PASS${1:+: $*}"; exit 0; }
fail() { echo "LAB-STEP $LAB_STEP FAIL: $*"; exit 1; }
skip() { echo "LAB-STEP $LAB_STEP SKIP: $*"; exit 0; }
info() { echo "LAB-INFO $LAB_STEP: $*"; }

# check WHAT CMD...: runs CMD with its output on the console (and in $LAB_OUT); fails
# the step naming WHAT when it exits non-zero.
LAB_OUT=/tmp/$LAB_STEP.cmd
check() {
	local what=$1 rc=0
	shift
	echo "+ $*"
	"$@" >"$LAB_OUT" 2>&1 || rc=$?
	cat "$LAB_OUT"
	[ "$rc" -eq 0 ] || fail "$what: exit $rc: $(tail -n 1 "$LAB_OUT")"
}

# refuse WHAT CMD...: CMD must exit non-zero.
refuse() {
	local what=$1 rc=0
	shift
	echo "+ (must fail) $*"
	"$@" >"$LAB_OUT" 2>&1 || rc=$?
	cat "$LAB_OUT"
	[ "$rc" -ne 0 ] || fail "$what: succeeded but must not"
}

# driver_of ADDR: the driver the PCI function is bound to, or "none".
driver_of() {
	local l
	l=$(readlink "/sys/bus/pci/devices/$1/driver" 2>/dev/null) || { echo none; return; }
	basename "$l"
}

need_nvmeperf() { [ -x "$NVMEPERF" ] || skip "nvmeperf is not built yet (cmd/nvmeperf)"; }

# bind_userspace: the lab-vfio controller on the userspace driver of this boot.
bind_userspace() {
	check "bind $LAB_VFIO_ADDR" env PCI_ALLOWED="$LAB_VFIO_ADDR" HUGEMEM="${HUGEMEM:-256}" "$LAB_SETUP" config
	[ "$(driver_of "$LAB_VFIO_ADDR")" = "$LAB_USERSPACE_DRIVER" ] || fail "$LAB_VFIO_ADDR bound to $(driver_of "$LAB_VFIO_ADDR"), want $LAB_USERSPACE_DRIVER"
}

# blk_by_serial SERIAL: the block device (nvmeXnY) of the kernel-bound controller with
# SERIAL, waiting up to 10 s for it; names can change across a rebind.
blk_by_serial() {
	local c e i
	for i in $(seq 1 100); do
		for c in /sys/class/nvme/nvme*; do
			[ "$(tr -d ' ' <"$c/serial" 2>/dev/null)" = "$1" ] || continue
			for e in "$c"/nvme*; do
				e=$(basename "$e")
				if [[ $e =~ ^nvme([0-9]+)c[0-9]+n([0-9]+)$ ]]; then
					e=nvme${BASH_REMATCH[1]}n${BASH_REMATCH[2]}
				elif [[ ! $e =~ ^nvme[0-9]+n[0-9]+$ ]]; then
					continue
				fi
				[ -b "/dev/$e" ] && { echo "$e"; return 0; }
			done
		done
		sleep 0.1
	done
	echo "LAB-WARN no block device for serial $1 after $((i / 10))s" >&2
	return 1
}

# bind_kernel: the lab-vfio controller back on the nvme driver; updates LAB_VFIO_BLK.
bind_kernel() {
	check "reset $LAB_VFIO_ADDR" env PCI_ALLOWED="$LAB_VFIO_ADDR" "$LAB_SETUP" reset
	export LAB_VFIO_BLK
	LAB_VFIO_BLK=$(blk_by_serial "$LAB_VFIO_SERIAL") || fail "no block device for $LAB_VFIO_ADDR after reset"
}

# try WHAT CMD...: like check, but a failure is noted and the step goes on, so one run
# shows every case that fails; conclude ends the step.
LAB_FAILED=()
try() {
	local what=$1 rc=0
	shift
	echo "+ $*"
	"$@" >"$LAB_OUT" 2>&1 || rc=$?
	cat "$LAB_OUT"
	if [ "$rc" -ne 0 ]; then
		LAB_FAILED+=("$what: exit $rc: $(tail -n 1 "$LAB_OUT")")
		info "FAILED $what: exit $rc: $(tail -n 1 "$LAB_OUT")"
		return 1
	fi
	info "ok $what"
}

# conclude [MESSAGE]: FAIL naming every failed try, else PASS.
conclude() {
	local n=${#LAB_FAILED[@]} all
	if [ "$n" -gt 0 ]; then
		all=$(printf '%s; ' "${LAB_FAILED[@]}")
		fail "$n case(s) failed: ${all%; }"
	fi
	pass "$@"
}

# bind_userspace_addr ADDR: a lab controller other than lab-vfio on this boot's
# userspace driver.
bind_userspace_addr() {
	[ -n "$1" ] || fail "controller not found (see LAB-ENV)"
	check "bind $1" env PCI_ALLOWED="$1" HUGEMEM="${HUGEMEM:-256}" "$LAB_SETUP" config
	[ "$(driver_of "$1")" = "$LAB_USERSPACE_DRIVER" ] || fail "$1 bound to $(driver_of "$1"), want $LAB_USERSPACE_DRIVER"
}

# list_of ADDR: the lines of the last `nvmeperf list` output ($LAB_OUT) about the
# controller at ADDR: its own line and its namespaces'.
list_of() {
	awk -v a="$1" '$1 ~ /^[0-9a-f]+:[0-9a-f]+:[0-9a-f]+\.[0-7]$/ { on = ($1 == a) } on' "$LAB_OUT"
}
