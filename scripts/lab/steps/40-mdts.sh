#!/bin/bash
# The lab-mdts controller: one namespace of 4 KiB blocks behind MDTS 2 (16 KiB per
# command), through this boot's userspace driver. Verify round trips (write the pattern,
# then read it back with a read-only verify pass) at sizes up to MDTS and above it, where
# nvmeperf must split each I/O into several commands, and with -O (SPDK perf's I/O unit
# size). Every case runs; the step fails naming each one that failed.
# shellcheck source=/dev/null
. /lab/lib.sh
need_nvmeperf
bind_userspace_addr "$LAB_MDTS_ADDR"
TRID="trtype:PCIe traddr:$LAB_MDTS_ADDR"
SEED=${LAB_SEED:-1}

check "nvmeperf list" "$NVMEPERF" list
list_of "$LAB_MDTS_ADDR" | while read -r l; do info "list: $l"; done

# roundtrip SIZE MIB [ARGS...]: sequential --verify writes over MIB MiB from LBA 0, then
# a --verify-read pass over the same range.
roundtrip() {
	local size=$1 mib=$2 n
	shift 2
	n=$((mib * 1048576 / size))
	try "-o $size $* write --verify" "$NVMEPERF" --quiet --seed "$SEED" -q 4 -o "$size" -d "$n" -w write --verify "$@" -r "$TRID" &&
		try "-o $size $* read --verify-read" "$NVMEPERF" --quiet --seed "$SEED" -q 4 -o "$size" -d "$n" -w read --verify-read "$@" -r "$TRID"
}

# Within MDTS: one command per I/O.
roundtrip 4096 1
roundtrip 16384 2
# Above MDTS: 4 and 64 commands per I/O.
roundtrip 65536 4
roundtrip 1048576 8
# SPDK perf's -O: 64 KiB I/Os issued as 8 KiB units.
roundtrip 65536 2 -O 8192
# Random mixed I/O above MDTS, many in flight: 64 x 64 KiB of buffers span hugepages.
try "-q 64 -o 65536 randrw --verify" "$NVMEPERF" --quiet --seed "$SEED" -q 64 -o 65536 -w randrw -M 50 --verify -t 1 -r "$TRID"
# An I/O smaller than a block is refused, not issued.
if "$NVMEPERF" --quiet -q 1 -o 512 -w read -d 1 -r "$TRID" >"$LAB_OUT" 2>&1; then
	LAB_FAILED+=("-o 512 on a 4096-byte-block namespace succeeded; it must be refused")
fi
conclude "$LAB_USERSPACE_DRIVER"
