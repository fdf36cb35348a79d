#!/usr/bin/env bash
# vmtest.sh: the QEMU lab. Boots a Debian kernel under TCG with QEMU's NVMe controllers
# (a real, independent NVMe implementation), once with an emulated Intel IOMMU (VFIO)
# and once without (uio_pci_generic), runs scripts/lab/steps/*.sh in the guest and fails
# on any FAIL, missing step or timeout, and on any undefined-behaviour report
# (pci_nvme_ub_*) in QEMU's guest-error log. See docs/lab.md.
#
# Environment: VMTEST_CACHE (default .vmtest), VMTEST_BOOTS ("iommu noiommu"),
# VMTEST_BOOT_TIMEOUT (seconds per boot, 480), VMTEST_STEP_TIMEOUT (per step, 150),
# VMTEST_KEEP=1 keeps the logs, VMTEST_SKIP_NVMEPERF=1 leaves the CLI out, VMTEST_STEPS (space separated step names to run).
# VMTEST_GUEST_ENV: NAME=value words for the steps' environment (e.g. LAB_TCP_BENCH_SECONDS=10).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${VMTEST_CACHE:-$ROOT/.vmtest}
BOOTS=${VMTEST_BOOTS:-iommu noiommu}
BOOT_TIMEOUT=${VMTEST_BOOT_TIMEOUT:-480}
STEP_TIMEOUT=${VMTEST_STEP_TIMEOUT:-150}
SEED=${VMTEST_SEED:-$((RANDOM * 32768 + RANDOM))}
LBA_SIZE=512
IMAGE_MB=128
VARIANT_MB=32 # the lab-mdts and lab-meta namespaces: small, verify runs cover them fast

log() { printf 'vmtest: %s\n' "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/nvmeperf-vmtest.XXXXXX")
cleanup() {
	local rc=$?
	if [[ -n "${QEMU_PID:-}" ]] && kill -0 "$QEMU_PID" 2>/dev/null; then
		kill "$QEMU_PID" 2>/dev/null || true
	fi
	if [[ -n "${WATCH_PID:-}" ]]; then
		kill "$WATCH_PID" 2>/dev/null || true
	fi
	if [[ "${VMTEST_KEEP:-0}" == 1 || $rc -ne 0 ]]; then
		mkdir -p "$CACHE/last"
		cp -f "$WORK"/*.log "$CACHE/last/" 2>/dev/null || true
		log "logs kept in ${CACHE#"$ROOT"/}/last"
	fi
	rm -rf "$WORK"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- tools -----------------------------------------------------------------------------
APT_UPDATED=0
apt_update_once() {
	if [[ $APT_UPDATED == 0 ]]; then
		log "apt-get update"
		timeout 300 apt-get update -qq >"$WORK/apt.log" 2>&1 || die "apt-get update failed (see $WORK/apt.log)"
		APT_UPDATED=1
	fi
}

ensure_tools() {
	local missing=()
	command -v qemu-system-x86_64 >/dev/null || missing+=(qemu-system-x86)
	# busybox-static's binary runs without the guest having a libc (ldd fails on it).
	if [[ ! -x /bin/busybox ]] || ldd /bin/busybox >/dev/null 2>&1; then missing+=(busybox-static); fi
	command -v cpio >/dev/null || missing+=(cpio)
	command -v modinfo >/dev/null || missing+=(kmod)
	command -v mkfs.ext4 >/dev/null || missing+=(e2fsprogs)
	command -v dpkg >/dev/null || die "not a Debian system: dpkg is missing"
	if ((${#missing[@]})); then
		[[ $(id -u) == 0 ]] || die "missing packages ${missing[*]}; install them (apt-get install ${missing[*]}) or run as root"
		apt_update_once
		log "installing ${missing[*]}"
		DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq "${missing[@]}" >>"$WORK/apt.log" 2>&1 ||
			die "apt-get install ${missing[*]} failed (see $WORK/apt.log)"
	fi
	command -v go >/dev/null || [[ -x /usr/local/go/bin/go ]] || die "Go toolchain not found"
	command -v go >/dev/null || PATH=$PATH:/usr/local/go/bin
}

# --- kernel ----------------------------------------------------------------------------
ensure_kernel() {
	local kdir="$CACHE/kernel"
	if [[ -f "$kdir/vmlinuz" && -d "$kdir/modules" ]]; then
		KVER=$(cat "$kdir/version")
		return
	fi
	local pkg
	pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
	if [[ -z "$pkg" ]]; then
		apt_update_once
		pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
	fi
	[[ -n "$pkg" ]] || die "apt-cache depends linux-image-amd64 names no kernel package"
	log "downloading $pkg"
	rm -rf "$kdir" "$CACHE/dl"
	mkdir -p "$CACHE/dl" "$kdir"
	(cd "$CACHE/dl" && timeout 600 apt-get download "$pkg" >"$WORK/kernel-download.log" 2>&1) ||
		{ apt_update_once; (cd "$CACHE/dl" && timeout 600 apt-get download "$pkg" >"$WORK/kernel-download.log" 2>&1); } ||
		die "apt-get download $pkg failed (see $WORK/kernel-download.log)"
	dpkg -x "$CACHE"/dl/*.deb "$CACHE/dl/root"
	KVER=$(ls "$CACHE/dl/root/lib/modules")
	cp "$CACHE/dl/root/boot/vmlinuz-$KVER" "$kdir/vmlinuz"
	mv "$CACHE/dl/root/lib/modules/$KVER" "$kdir/modules"
	echo "$KVER" >"$kdir/version"
	rm -rf "$CACHE/dl"
}

# Modules the guest loads, dependencies first. Names as modinfo spells them.
# ext4 finds crc32c through the crypto API, which would modprobe it: load it first.
GUEST_MODULES=(nvme vfio vfio_iommu_type1 vfio-pci uio uio_pci_generic crc32c_generic ext4 loop nvme-fabrics nvme-tcp configfs nvmet nvmet-tcp)
# Step 68-tcp-bench: null_blk for the nvmet target's null namespace (made through configfs).
GUEST_MODULES+=(null_blk)

# module_order prints module paths so that each follows its dependencies.
module_order() {
	local mdir="$CACHE/kernel/modules" index="$WORK/modindex"
	find "$mdir/kernel" -name '*.ko*' | while read -r f; do
		local b
		b=$(basename "$f")
		b=${b%%.ko*}
		printf '%s %s\n' "${b//-/_}" "$f"
	done >"$index"
	declare -A seen=()
	visit() {
		local name=${1//-/_} path dep
		[[ -n "${seen[$name]:-}" ]] && return
		seen[$name]=1
		path=$(awk -v n="$name" '$1 == n {print $2; exit}' "$index")
		[[ -n "$path" ]] || return 0 # built into the kernel
		local deps
		deps=$(modinfo -F depends "$path")
		for dep in ${deps//,/ }; do visit "$dep"; done
		echo "$path"
	}
	for m in "${GUEST_MODULES[@]}"; do visit "$m"; done
}

# --- binaries --------------------------------------------------------------------------
build_binaries() {
	mkdir -p "$WORK/bin"
	if [[ ${VMTEST_SKIP_NVMEPERF:-0} == 1 ]]; then
		log "VMTEST_SKIP_NVMEPERF=1: not building nvmeperf; steps that need it will SKIP"
	elif ls "$ROOT"/cmd/nvmeperf/*.go >/dev/null 2>&1; then
		log "building nvmeperf"
		(cd "$ROOT" && CGO_ENABLED=0 go build -trimpath -o "$WORK/bin/nvmeperf" ./cmd/nvmeperf) || die "go build ./cmd/nvmeperf failed"
	else
		log "cmd/nvmeperf has no Go files yet: steps that need nvmeperf will SKIP"
	fi
	log "building the driver/pcie guest test"
	(cd "$ROOT" && CGO_ENABLED=0 go test -c -o "$WORK/bin/pcie.test" ./driver/pcie) || die "go test -c ./driver/pcie failed"
}

# --- initramfs -------------------------------------------------------------------------
copy_with_libs() {
	local bin=$1 dest=$2 lib
	install -D -m 0755 "$bin" "$dest/${3:-bin/$(basename "$bin")}"
	for lib in $(ldd "$bin" 2>/dev/null | grep -o '/[^ ]*'); do
		[[ -e "$dest$lib" ]] || install -D -m 0755 "$lib" "$dest$lib"
	done
}

build_initramfs() {
	local rd="$WORK/initramfs" m
	rm -rf "$rd"
	mkdir -p "$rd"/{bin,sbin,dev,proc,sys,tmp,mnt,lab/steps,lib/modules,etc}
	cp /bin/busybox "$rd/bin/busybox"
	mkdir -p "$rd/usr/bin"
	ln -s /bin/busybox "$rd/usr/bin/env" # for #!/usr/bin/env bash
	copy_with_libs "$(command -v bash)" "$rd" bin/bash
	cp "$WORK"/bin/* "$rd/bin/"
	install -m 0755 "$ROOT/scripts/setup.sh" "$rd/bin/setup.sh"
	# Steps 52-uring-bench and 68-tcp-bench: fio with its libraries (~85 MB, so only when
	# one of them runs), and 68's benchmark script for the kernel NVMe/TCP host; without
	# fio on the host they skip.
	install -m 0755 "$ROOT/bench/tcp_vs_kernel.sh" "$rd/bin/tcp_vs_kernel.sh"
	if command -v fio >/dev/null && [[ -z "${VMTEST_STEPS:-}" || " $VMTEST_STEPS " == *" 68-tcp-bench "* ||
		" $VMTEST_STEPS " == *" 52-uring-bench "* ]]; then
		copy_with_libs "$(command -v fio)" "$rd"
	fi
	install -m 0755 "$ROOT/scripts/lab/init" "$rd/init"
	install -m 0644 "$ROOT/scripts/lab/lib.sh" "$rd/lab/lib.sh"
	local steps=()
	for s in "$ROOT"/scripts/lab/steps/*.sh; do
		local name
		name=$(basename "$s" .sh)
		if [[ -n "${VMTEST_STEPS:-}" && " $VMTEST_STEPS " != *" $name "* ]]; then continue; fi
		install -m 0755 "$s" "$rd/lab/steps/"
		steps+=("$name")
	done
	printf '%s\n' "${steps[@]}" >"$WORK/steps"
	: >"$rd/lib/modules/order"
	for m in $(module_order); do
		cp "$m" "$rd/lib/modules/"
		basename "$m" >>"$rd/lib/modules/order"
	done
	(cd "$rd" && find . | LC_ALL=C sort | cpio -o -H newc --quiet | gzip -1) >"$WORK/initramfs.cpio.gz"
}

# --- images ----------------------------------------------------------------------------
# Seven controllers: lab-vfio (userspace target, also the cross-check disk), lab-kernel
# (stays on the kernel driver: io_uring scratch), lab-mounted (ext4 the guest mounts:
# setup.sh must refuse it), lab-mdts (one 4 KiB-LBA namespace, MDTS 2 = 16 KiB: I/O
# larger than that must be split), lab-meta (namespaces with metadata: extended LBA,
# separate metadata with PI type 1, extended LBA with PI type 2 in the first bytes),
# lab-cmb and lab-cmb13 (controller memory buffers, NVMe 1.4 and 1.3 schemes).
make_images() {
	local boot=$1
	rm -f "$WORK"/*.raw
	truncate -s "${IMAGE_MB}M" "$WORK/vfio-$boot.raw" "$WORK/kernel-$boot.raw"
	truncate -s "${VARIANT_MB}M" "$WORK/mdts-$boot.raw" "$WORK/meta1-$boot.raw" "$WORK/meta2-$boot.raw" "$WORK/meta3-$boot.raw"
	truncate -s 64M "$WORK/mounted-$boot.raw"
	truncate -s "${VARIANT_MB}M" "$WORK/cmb-$boot.raw" # lab-cmb (step 70)
	truncate -s "${VARIANT_MB}M" "$WORK/cmb13-$boot.raw" # lab-cmb13 (step 72)
	mkfs.ext4 -q -F -L labmounted "$WORK/mounted-$boot.raw"
}

# nvme_devices BOOT: the -drive/-device arguments of the controllers above.
nvme_devices() {
	local b=$1 raw="format=raw,if=none"
	DEVICES=(
		-drive "file=$WORK/vfio-$b.raw,$raw,id=dvfio" -device "nvme,serial=lab-vfio,drive=dvfio"
		-drive "file=$WORK/kernel-$b.raw,$raw,id=dkernel" -device "nvme,serial=lab-kernel,drive=dkernel"
		-drive "file=$WORK/mounted-$b.raw,$raw,id=dmounted" -device "nvme,serial=lab-mounted,drive=dmounted"
		# MDTS is in units of CAP.MPSMIN (4 KiB): 2 means 2^2 pages, 16 KiB per command.
		-drive "file=$WORK/mdts-$b.raw,$raw,id=dmdts" -device "nvme,id=nmdts,serial=lab-mdts,mdts=2"
		-device "nvme-ns,bus=nmdts,drive=dmdts,nsid=1,logical_block_size=4096,physical_block_size=4096"
		# ms = metadata bytes per block; mset=1 interleaves them with the data (extended
		# LBA), mset=0 puts them in a separate buffer (MPTR); pi = protection type,
		# pil=1 puts the 8 PI bytes first in the metadata instead of last.
		-drive "file=$WORK/meta1-$b.raw,$raw,id=dmeta1" -drive "file=$WORK/meta2-$b.raw,$raw,id=dmeta2"
		-drive "file=$WORK/meta3-$b.raw,$raw,id=dmeta3" -device "nvme,id=nmeta,serial=lab-meta"
		-device "nvme-ns,bus=nmeta,drive=dmeta1,nsid=1,ms=8,mset=1"
		-device "nvme-ns,bus=nmeta,drive=dmeta2,nsid=2,ms=8,pi=1"
		-device "nvme-ns,bus=nmeta,drive=dmeta3,nsid=3,ms=16,mset=1,pi=2,pil=1"
		# lab-cmb: a 16 MiB controller memory buffer in BAR 2 (NVMe 1.4 scheme: CAP.CMBS,
		# CMBMSC), where nvmeperf puts its I/O submission queues (step 70).
		-drive "file=$WORK/cmb-$b.raw,$raw,id=dcmb" -device "nvme,serial=lab-cmb,drive=dcmb,cmb_size_mb=16"
		# lab-cmb13: the same with legacy-cmb=on, the NVMe 1.3 scheme (no CAP.CMBS, no
		# CMBMSC: the CMB is decoded at BAR 2's address from the start; step 72).
		-drive "file=$WORK/cmb13-$b.raw,$raw,id=dcmb13" -device "nvme,serial=lab-cmb13,drive=dcmb13,cmb_size_mb=16,legacy-cmb=on"
	)
}

# --- boot ------------------------------------------------------------------------------
run_boot() {
	local boot=$1 cmdline iommu=()
	# kernel-irqchip=split is what intremap=on needs under KVM; TCG accepts it too.
	local machine=(-machine "q35,kernel-irqchip=split,accel=tcg")
	cmdline="console=ttyS0 panic=-1 loglevel=4 lab_mode=$boot lab_step_timeout=$STEP_TIMEOUT lab_seed=$SEED lab_lba=$LBA_SIZE"
	# NAME=value words the kernel hands to init as environment (seen by every step).
	cmdline+="${VMTEST_GUEST_ENV:+ $VMTEST_GUEST_ENV}"
	if [[ $boot == iommu ]]; then
		iommu=(-device "intel-iommu,intremap=on")
		cmdline+=" intel_iommu=on iommu=pt"
	fi
	make_images "$boot"
	nvme_devices "$boot"
	log "boot $boot: starting QEMU (timeout ${BOOT_TIMEOUT}s)"
	local start=$SECONDS rc=0
	# -d guest_errors: QEMU's NVMe model logs every access the spec leaves undefined
	# (pci_nvme_ub_*) to the -D file; check_ub fails the boot on any of them.
	: >"$WORK/qemu-$boot.guest-errors"
	timeout -k 10 "$BOOT_TIMEOUT" qemu-system-x86_64 "${machine[@]}" "${iommu[@]}" \
		-cpu max -smp 2 -m 1G -nographic -no-reboot -nodefaults -serial stdio \
		-d guest_errors -D "$WORK/qemu-$boot.guest-errors" \
		-kernel "$CACHE/kernel/vmlinuz" -initrd "$WORK/initramfs.cpio.gz" -append "$cmdline" \
		"${DEVICES[@]}" </dev/null >"$WORK/$boot.log" 2>&1 &
	QEMU_PID=$!
	watch_steps "$boot" "$QEMU_PID" &
	WATCH_PID=$!
	wait "$QEMU_PID" || rc=$?
	QEMU_PID=
	wait "$WATCH_PID" 2>/dev/null || true
	WATCH_PID=
	log "boot $boot: QEMU exited with $rc after $((SECONDS - start))s"
	grep -a 'LAB-' "$WORK/$boot.log" | sed "s/^/  [$boot] /" >&2 || true
	check_boot "$boot" "$rc"
	check_ub "$boot"
}

# watch_steps BOOT PID: while QEMU runs, notes how many undefined-behaviour lines and
# other lines the guest-error log holds whenever a step begins (LAB-BEGIN on the
# console), so check_ub can say which steps caused them. Polled five times a second, so
# a few lines may land in a neighbouring step.
watch_steps() {
	local boot=$1 pid=$2 seen=0 n name
	: >"$WORK/ub-marks-$boot"
	while kill -0 "$pid" 2>/dev/null; do
		# grep -c exits 1 on no match, which set -e would take for a failure.
		n=$(grep -ac '^LAB-BEGIN ' "$WORK/$boot.log" 2>/dev/null || true)
		if ((${n:-0} > seen)); then
			name=$(grep -a '^LAB-BEGIN ' "$WORK/$boot.log" | sed -n "${n}p" | tr -d '\r' | cut -d' ' -f2 || true)
			echo "$name $(guest_error_counts "$boot")" >>"$WORK/ub-marks-$boot"
			seen=$n
		fi
		sleep 0.2
	done
	echo "(end) $(guest_error_counts "$boot")" >>"$WORK/ub-marks-$boot"
}

# guest_error_counts BOOT: "UB OTHER", the pci_nvme_ub_ lines and all other lines so far.
guest_error_counts() {
	local f="$WORK/qemu-$1.guest-errors" all ub
	all=$(wc -l <"$f" 2>/dev/null || true)
	ub=$(grep -ac 'pci_nvme_ub_' "$f" 2>/dev/null || true)
	echo "${ub:-0} $((${all:-0} - ${ub:-0}))"
}

# check_ub BOOT: fails the boot on any pci_nvme_ub_ line in QEMU's guest-error log:
# prints the count, the counts by kind, by step (approximate) and the first lines.
check_ub() {
	local boot=$1 f="$WORK/qemu-$1.guest-errors" n other
	[[ -f "$f" ]] || { FAILURES+=("$boot: QEMU wrote no guest-error log"); return; }
	# Every grep here may match nothing (exit 1): || true keeps set -e and pipefail quiet.
	n=$(grep -ac 'pci_nvme_ub_' "$f" || true)
	other=$(grep -avc 'pci_nvme_ub_' "$f" || true)
	# Keep a bounded excerpt with the logs: the full file can be hundreds of MB.
	{
		echo "pci_nvme_ub_ lines: $n, other guest-error lines: $other"
		ub_kinds "$f"
		echo "--- by step (approximate)"
		ub_by_step "$boot"
		echo "--- first other lines"
		grep -av -m 20 'pci_nvme_ub_' "$f" || true
		echo "--- first lines"
		head -n 200 "$f"
	} >"$WORK/$boot-guest-errors.log"
	if ((other > 0)); then
		# Not undefined behaviour of the NVMe model (e.g. a DMA the IOMMU rejected):
		# reported, not failed on.
		log "boot $boot: $other other guest-error line(s) from QEMU, first: $(grep -avm1 'pci_nvme_ub_' "$f" || true)"
	fi
	if ((n == 0)); then
		log "boot $boot: QEMU reported no NVMe undefined behaviour (pci_nvme_ub_*)"
		((other == 0)) || ub_by_step "$boot" | sed "s/^/  [$boot] by step: /" >&2
		return 0
	fi
	log "boot $boot: QEMU reported $n NVMe undefined-behaviour access(es):"
	ub_kinds "$f" | sed "s/^/  [$boot] /" >&2
	ub_by_step "$boot" | sed "s/^/  [$boot] by step: /" >&2
	{ grep -a -m 5 'pci_nvme_ub_' "$f" || true; } | sed "s/^/  [$boot] /" >&2
	FAILURES+=("$boot: QEMU reported $n pci_nvme_ub_ undefined-behaviour access(es) (see ${boot}-guest-errors.log)")
}

# ub_kinds FILE: count of each pci_nvme_ub_ kind, most frequent first.
ub_kinds() {
	{ grep -ao 'pci_nvme_ub_[a-z0-9_]*' "$1" || true; } | sort | uniq -c | sort -rn
}

# ub_by_step BOOT: "step: U undefined-behaviour, O other" for each step during which
# the guest-error log grew.
ub_by_step() {
	local prev="(boot)" pu=0 po=0 name u o
	while read -r name u o; do
		if ((u > pu || o > po)); then
			echo "$prev: $((u - pu)) undefined-behaviour, $((o - po)) other"
		fi
		prev=$name pu=$u po=$o
	done <"$WORK/ub-marks-$1"
	return 0
}

FAILURES=()
PASSED=0
check_boot() {
	local boot=$1 rc=$2 log="$WORK/$1.log" name line
	if [[ $rc == 124 || $rc == 137 ]]; then
		FAILURES+=("$boot: timed out after ${BOOT_TIMEOUT}s")
	fi
	grep -aq '^LAB-DONE' "$log" || FAILURES+=("$boot: guest never reported LAB-DONE (last lines: $(tail -n 5 "$log" | tr -d '\r' | tr '\n' '|'))")
	while read -r name; do
		line=$(grep -a "^LAB-STEP $name " "$log" | tail -n 1 | tr -d '\r' || true)
		case "$line" in
		"LAB-STEP $name PASS"*) PASSED=$((PASSED + 1)) ;;
		"LAB-STEP $name SKIP"*) SKIPS+=("$boot: ${line#LAB-STEP }") ;;
		"") FAILURES+=("$boot: step $name missing") ;;
		*) FAILURES+=("$boot: ${line#LAB-STEP }") ;;
		esac
	done <"$WORK/steps"
	check_images "$boot"
}

# The guest writes verify-format blocks to the lab-vfio disk; check them from the host.
check_images() {
	local boot=$1
	[[ -x "$WORK/bin/nvmeperf" ]] || return 0
	grep -aq "^LAB-VERIFY-IMAGE vfio" "$WORK/$boot.log" || return 0
	if ! "$WORK/bin/nvmeperf" verify-image --help >/dev/null 2>&1; then
		SKIPS+=("$boot: host image check: nvmeperf has no verify-image subcommand yet")
		return 0
	fi
	if "$WORK/bin/nvmeperf" verify-image --require-written --seed "$SEED" --lba-size "$LBA_SIZE" "$WORK/vfio-$boot.raw" >"$WORK/verify-image-$boot.log" 2>&1; then
		log "boot $boot: host verify-image of the lab-vfio disk passed"
	else
		FAILURES+=("$boot: host verify-image of the lab-vfio disk failed: $(tail -n 3 "$WORK/verify-image-$boot.log" | tr '\n' ' ')")
	fi
}

main() {
	local t0=$SECONDS
	SKIPS=()
	ensure_tools
	mkdir -p "$CACHE"
	ensure_kernel
	log "kernel $KVER"
	build_binaries
	build_initramfs
	for boot in $BOOTS; do
		case $boot in iommu | noiommu) ;; *) die "VMTEST_BOOTS: unknown boot $boot (iommu, noiommu)" ;; esac
		run_boot "$boot"
	done
	log "---- summary ($((SECONDS - t0))s, seed $SEED) ----"
	local s
	for s in "${SKIPS[@]}"; do log "SKIP $s"; done
	for s in "${FAILURES[@]}"; do log "FAIL $s"; done
	# A closing count in the plain form CI readers recognise.
	echo "vmtest: $PASSED passed, ${#FAILURES[@]} failed, ${#SKIPS[@]} skipped"
	if ((${#FAILURES[@]})); then
		exit 1
	fi
}

main "$@"
