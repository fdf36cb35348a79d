#!/bin/bash
# The lab-meta controller's namespaces with metadata, through this boot's userspace
# driver: verify round trips (write the pattern, read it back with a read-only verify
# pass) through each, with end-to-end protection as SPDK perf's -e sets it:
#   ns 1: 512+8 extended LBA (metadata interleaved), no protection information
#   ns 2: 512 with 8 bytes of separate metadata (MPTR), PI type 1
#   ns 3: 512+16 extended LBA, PI type 2 in the first 8 metadata bytes
# PRACT=1: the controller generates and strips PI; PRACT=0: nvmeperf generates it and
# the controller checks the PRCHK fields. Every case runs; the step fails naming each one
# that failed.
# shellcheck source=/dev/null
. /lab/lib.sh
need_nvmeperf
bind_userspace_addr "$LAB_META_ADDR"
SEED=${LAB_SEED:-1}

check "nvmeperf list" "$NVMEPERF" list
list_of "$LAB_META_ADDR" | while read -r l; do info "list: $l"; done

# roundtrip NS [ARGS...]: 1 MiB of sequential 4 KiB --verify writes from LBA 0 to
# namespace NS, then a --verify-read pass over them.
roundtrip() {
	local ns=$1 trid="trtype:PCIe traddr:$LAB_META_ADDR ns:$1"
	shift
	try "ns $ns $* write --verify" "$NVMEPERF" --quiet --seed "$SEED" -q 4 -o 4096 -d 256 -w write --verify "$@" -r "$trid" &&
		try "ns $ns $* read --verify-read" "$NVMEPERF" --quiet --seed "$SEED" -q 4 -o 4096 -d 256 -w read --verify-read "$@" -r "$trid"
}

roundtrip 1
roundtrip 2 -e 'PRACT=1'
roundtrip 2 -e 'PRACT=0,PRCHK=GUARD|REFTAG'
roundtrip 3 -e 'PRACT=1'
roundtrip 3 -e 'PRACT=0,PRCHK=GUARD|REFTAG|APPTAG'
conclude "$LAB_USERSPACE_DRIVER"
