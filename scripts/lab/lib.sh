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

# bind_kernel: the lab-vfio controller back on the nvme driver, its block device present.
bind_kernel() {
	check "reset $LAB_VFIO_ADDR" env PCI_ALLOWED="$LAB_VFIO_ADDR" "$LAB_SETUP" reset
	local i
	for i in $(seq 1 100); do
		[ -b "/dev/$LAB_VFIO_BLK" ] && return 0
		sleep 0.1
	done
	fail "/dev/$LAB_VFIO_BLK did not come back after reset (waited $((i / 10))s)"
}
