#!/usr/bin/env bash
# setup.sh: prepare NVMe controllers for nvmeperf's userspace driver, like SPDK's
# scripts/setup.sh.
#
#   setup.sh [config]  reserve hugepages and bind NVMe controllers to vfio-pci
#                      (uio_pci_generic when the machine has no IOMMU)
#   setup.sh reset     bind them back to the kernel nvme driver
#   setup.sh status    table of NVMe controllers and hugepages
#
# Environment:
#   HUGEMEM      MB of 2 MiB hugepages to reserve (default 2048)
#   PCI_ALLOWED  space-separated PCI addresses to touch (default: every NVMe controller)
#   PCI_BLOCKED  space-separated PCI addresses never to touch
#   DRIVER_OVERRIDE  vfio-pci or uio_pci_generic instead of the automatic choice
#
# It refuses to unbind a controller whose namespaces (or their partitions) are mounted,
# used as swap, held by device-mapper/LVM/md, or open by a process, and says which.
set -euo pipefail

SYS=/sys
PCI=$SYS/bus/pci
HUGEMEM=${HUGEMEM:-2048}
NVME_CLASS=0x010802
ERRORS=0

msg() { printf '%s\n' "$*"; }
err() {
	printf 'setup.sh: error: %s\n' "$*" >&2
	ERRORS=$((ERRORS + 1))
}
die() {
	printf 'setup.sh: %s\n' "$*" >&2
	exit 1
}

usage() {
	sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'
}

# canon ADDR: 0000:04:00.0 form, lower case; empty when ADDR is not a PCI address.
canon() {
	local a=${1,,}
	[[ $a =~ ^[0-9a-f]{2}:[0-1][0-9a-f]\.[0-7]$ ]] && a=0000:$a
	[[ $a =~ ^[0-9a-f]{4,8}:[0-9a-f]{2}:[0-1][0-9a-f]\.[0-7]$ ]] && printf '%s' "$a"
	return 0
}

canon_list() {
	local a c out=()
	for a in $1; do
		c=$(canon "$a")
		[[ -n $c ]] || die "$2: '$a' is not a PCI address (expected domain:bus:device.function, e.g. 0000:04:00.0)"
		out+=("$c")
	done
	printf '%s ' "${out[@]}"
}

ALLOWED=$(canon_list "${PCI_ALLOWED:-}" PCI_ALLOWED)
BLOCKED=$(canon_list "${PCI_BLOCKED:-}" PCI_BLOCKED)

nvme_controllers() {
	local d
	for d in "$PCI"/devices/*; do
		[[ -f $d/class ]] && [[ $(<"$d/class") == "$NVME_CLASS" ]] && basename "$d"
	done
	return 0
}

driver_of() {
	local l
	if l=$(readlink "$PCI/devices/$1/driver" 2>/dev/null); then basename "$l"; else echo ""; fi
}

# selected ADDR: true when this run should touch ADDR.
selected() {
	[[ " $BLOCKED " == *" $1 "* ]] && return 1
	[[ -z ${ALLOWED// /} || " $ALLOWED " == *" $1 "* ]]
}

# block_devices ADDR: the kernel block devices of the controller's namespaces.
block_devices() {
	local e name out=()
	for e in "$PCI/devices/$1"/nvme/nvme*/nvme*; do
		[[ -e $e ]] || continue
		name=$(basename "$e")
		if [[ $name =~ ^nvme([0-9]+)c[0-9]+n([0-9]+)$ ]]; then
			name=nvme${BASH_REMATCH[1]}n${BASH_REMATCH[2]}
		elif [[ ! $name =~ ^nvme[0-9]+n[0-9]+$ ]]; then
			continue
		fi
		[[ " ${out[*]} " == *" $name "* ]] || out+=("$name")
	done
	printf '%s ' "${out[@]}"
}

# char_devices ADDR: the controller's character devices (nvmeN and ngXnY).
char_devices() {
	local c
	for c in "$PCI/devices/$1"/nvme/nvme*; do
		[[ -e $c ]] && printf '%s ' "$(basename "$c")"
	done
	local b
	for b in $(block_devices "$1"); do printf 'ng%s ' "${b#nvme}"; done
}

# holder_name H: what a holder device is, for messages.
holder_name() {
	if [[ -f $SYS/block/$1/dm/name ]]; then
		local uuid
		uuid=$(cat "$SYS/block/$1/dm/uuid" 2>/dev/null || true)
		if [[ $uuid == LVM-* ]]; then
			echo "LVM volume $(<"$SYS/block/$1/dm/name") ($1)"
		else
			echo "device-mapper $(<"$SYS/block/$1/dm/name") ($1)"
		fi
	elif [[ $1 == md* ]]; then
		echo "md RAID $1"
	else
		echo "$1"
	fi
}

# in_use ADDR: prints why the controller's namespaces are in use; nothing when free.
in_use() {
	local blk dev devt mp mps h pid fd target sw reasons=()
	local devs=() chars
	for blk in $(block_devices "$1"); do
		devs+=("$blk")
		for dev in "$SYS/block/$blk/$blk"*; do
			[[ -f $dev/partition ]] && devs+=("$(basename "$dev")")
		done
	done
	for dev in "${devs[@]}"; do
		devt=$(cat "$SYS/class/block/$dev/dev" 2>/dev/null || true)
		if [[ -z $devt ]]; then
			reasons+=("cannot read the device number of /dev/$dev, so cannot tell whether it is in use")
		else
			# mountinfo names the device by major:minor, whatever path was mounted.
			mps=$(awk -v d="$devt" '$3 == d {print $5}' /proc/self/mountinfo) ||
				reasons+=("cannot read /proc/self/mountinfo, so cannot tell whether /dev/$dev is mounted")
			while read -r mp; do
				[[ -n $mp ]] && reasons+=("/dev/$dev is mounted on $mp")
			done <<<"$mps"
		fi
		if [[ -r /proc/swaps ]]; then
			while read -r sw _; do
				[[ $sw != Filename && $(readlink -f "$sw") == "/dev/$dev" ]] && reasons+=("/dev/$dev is in use as swap")
			done </proc/swaps
		fi
		for h in "$SYS/class/block/$dev"/holders/*; do
			[[ -e $h ]] && reasons+=("/dev/$dev is held by $(holder_name "$(basename "$h")")")
		done
	done
	# Processes holding a namespace, partition or the controller's char devices open.
	chars=$(char_devices "$1")
	for fd in /proc/[0-9]*/fd/*; do
		target=$(readlink "$fd" 2>/dev/null) || continue
		[[ $target == /dev/* ]] || continue
		target=${target#/dev/}
		if [[ " ${devs[*]} $chars " == *" $target "* ]]; then
			pid=${fd#/proc/}
			pid=${pid%%/*}
			[[ $pid == "$$" || $pid == "$BASHPID" ]] && continue
			reasons+=("/dev/$target is open by process $pid ($(cat "/proc/$pid/comm" 2>/dev/null || echo '?'))")
		fi
	done
	if ((${#reasons[@]})); then printf '%s\n' "${reasons[@]}" | sort -u; fi
}

userspace_driver() {
	if [[ -n ${DRIVER_OVERRIDE:-} ]]; then
		case $DRIVER_OVERRIDE in
		vfio-pci | uio_pci_generic) echo "$DRIVER_OVERRIDE" ;;
		*) die "DRIVER_OVERRIDE='$DRIVER_OVERRIDE': accepted values are vfio-pci and uio_pci_generic" ;;
		esac
	elif [[ -n $(ls -A "$SYS/kernel/iommu_groups" 2>/dev/null) ]]; then
		echo vfio-pci
	else
		echo uio_pci_generic
	fi
}

load_driver() {
	[[ -d $PCI/drivers/$1 ]] && return 0
	local mod=${1//-/_}
	modprobe "$mod" 2>/dev/null || true
	[[ -d $PCI/drivers/$1 ]] || { err "driver $1 is not available (modprobe $mod failed)"; return 1; }
}

# bind ADDR DRIVER: moves ADDR to DRIVER through driver_override.
bind() {
	local addr=$1 want=$2 cur
	cur=$(driver_of "$addr")
	if [[ $cur == "$want" ]]; then
		msg "$addr: already bound to $want"
		return 0
	fi
	printf '%s' "$want" >"$PCI/devices/$addr/driver_override"
	if [[ -n $cur ]]; then
		printf '%s' "$addr" >"$PCI/devices/$addr/driver/unbind"
	fi
	printf '%s' "$addr" >"$PCI/drivers_probe" 2>/dev/null || true
	for _ in $(seq 1 50); do
		[[ $(driver_of "$addr") == "$want" ]] && break
		sleep 0.1
	done
	cur=$(driver_of "$addr")
	if [[ $cur != "$want" ]]; then
		err "$addr: binding to $want failed (now bound to ${cur:-no driver}); see dmesg"
		return 1
	fi
	msg "$addr: bound to $want (was ${3:-no driver})"
}

check_free() {
	local reasons
	reasons=$(in_use "$1")
	if [[ -n $reasons ]]; then
		err "$1: refusing to unbind from the nvme driver: $(echo "$reasons" | paste -sd ';' | sed 's/;/; /g')"
		return 1
	fi
}

hugepages() {
	local want have file=/proc/sys/vm/nr_hugepages
	[[ $HUGEMEM =~ ^[0-9]+$ ]] || die "HUGEMEM='$HUGEMEM' must be a number of MB"
	want=$(((HUGEMEM + 1) / 2))
	have=$(<"$file")
	if ((have >= want)); then
		msg "hugepages: $have x 2 MiB already reserved (HUGEMEM=$HUGEMEM needs $want)"
		return 0
	fi
	echo "$want" >"$file"
	have=$(<"$file")
	if ((have < want)); then
		err "hugepages: asked for $want x 2 MiB, the kernel reserved only $have (memory fragmented or too small: lower HUGEMEM or reboot)"
		return 1
	fi
	msg "hugepages: $have x 2 MiB reserved"
}

check_requested() {
	local a all
	all=" $(nvme_controllers | tr '\n' ' ') "
	for a in $ALLOWED; do
		if [[ ! -d $PCI/devices/$a ]]; then
			err "PCI_ALLOWED: no PCI device at $a"
		elif [[ $all != *" $a "* ]]; then
			err "PCI_ALLOWED: $a is not an NVMe controller (class $(<"$PCI/devices/$a/class"), want $NVME_CLASS)"
		fi
	done
}

require_root() { [[ $(id -u) == 0 ]] || die "$1 needs root (binding drivers and reserving hugepages write to sysfs)"; }

cmd_config() {
	require_root config
	check_requested
	local drv addr cur touched=0
	drv=$(userspace_driver)
	hugepages || true
	load_driver "$drv" || exit 1
	for addr in $(nvme_controllers); do
		if ! selected "$addr"; then
			[[ " $BLOCKED " == *" $addr "* ]] && msg "$addr: skipped (PCI_BLOCKED)"
			continue
		fi
		touched=1
		cur=$(driver_of "$addr")
		if [[ $cur == nvme ]]; then
			check_free "$addr" || continue
		fi
		bind "$addr" "$drv" "$cur" || true
	done
	((touched)) || msg "no NVMe controllers selected: nothing to bind"
	((ERRORS == 0)) || { printf 'setup.sh: %d error(s)\n' "$ERRORS" >&2; exit 1; }
}

cmd_reset() {
	require_root reset
	check_requested
	local addr cur touched=0
	load_driver nvme || exit 1
	for addr in $(nvme_controllers); do
		selected "$addr" || continue
		touched=1
		cur=$(driver_of "$addr")
		# An empty driver_override lets the kernel pick by ID table again.
		printf '\n' >"$PCI/devices/$addr/driver_override"
		if [[ $cur == nvme ]]; then
			msg "$addr: already bound to nvme"
			continue
		fi
		bind "$addr" nvme "$cur" || true
	done
	((touched)) || msg "no NVMe controllers selected: nothing to reset"
	((ERRORS == 0)) || { printf 'setup.sh: %d error(s)\n' "$ERRORS" >&2; exit 1; }
}

cmd_status() {
	local addr group
	row() { printf '%-14s %-11s %-16s %-5s %-6s %s\n' "$@"; }
	row ADDRESS VENDOR:DEV DRIVER NUMA IOMMU "BLOCK DEVICES"
	for addr in $(nvme_controllers); do
		group=-
		[[ -e $PCI/devices/$addr/iommu_group ]] && group=$(basename "$(readlink "$PCI/devices/$addr/iommu_group")")
		local bd
		bd=$(block_devices "$addr")
		row "$addr" "$(sed 's/0x//' "$PCI/devices/$addr/vendor"):$(sed 's/0x//' "$PCI/devices/$addr/device")" \
			"$(driver_of "$addr" | sed 's/^$/-/')" "$(cat "$PCI/devices/$addr/numa_node" 2>/dev/null || echo -)" "$group" "${bd:--}"
	done
	awk '/^HugePages_Total/ {t=$2} /^HugePages_Free/ {f=$2} /^Hugepagesize/ {s=$2" "$3}
		END {printf "hugepages: %d total, %d free, %s each\n", t, f, s}' /proc/meminfo
}

case ${1:-config} in
config) cmd_config ;;
reset) cmd_reset ;;
status) cmd_status ;;
-h | --help | help) usage ;;
*)
	usage >&2
	die "unknown command '$1' (config, reset, status)"
	;;
esac
