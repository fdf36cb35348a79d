#!/usr/bin/env bash
# vmtest.sh: the QEMU lab. Boots a Debian kernel under TCG with QEMU's NVMe controllers
# (a real, independent NVMe implementation), once with an emulated Intel IOMMU (VFIO)
# and once without (uio_pci_generic), runs scripts/lab/steps/*.sh in the guest and fails
# on any FAIL, missing step or timeout. See docs/lab.md.
#
# Environment: VMTEST_CACHE (default .vmtest), VMTEST_BOOTS ("iommu noiommu"),
# VMTEST_BOOT_TIMEOUT (seconds per boot, 240), VMTEST_STEP_TIMEOUT (per step, 150),
# VMTEST_KEEP=1 keeps the logs, VMTEST_SKIP_NVMEPERF=1 leaves the CLI out, VMTEST_STEPS (space separated step names to run).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${VMTEST_CACHE:-$ROOT/.vmtest}
BOOTS=${VMTEST_BOOTS:-iommu noiommu}
BOOT_TIMEOUT=${VMTEST_BOOT_TIMEOUT:-240}
STEP_TIMEOUT=${VMTEST_STEP_TIMEOUT:-150}
SEED=${VMTEST_SEED:-$((RANDOM * 32768 + RANDOM))}
LBA_SIZE=512
IMAGE_MB=128

log() { printf 'vmtest: %s\n' "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/nvmeperf-vmtest.XXXXXX")
cleanup() {
	local rc=$?
	if [[ -n "${QEMU_PID:-}" ]] && kill -0 "$QEMU_PID" 2>/dev/null; then
		kill "$QEMU_PID" 2>/dev/null || true
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
GUEST_MODULES=(nvme vfio vfio_iommu_type1 vfio-pci uio uio_pci_generic crc32c_generic ext4 loop)

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
# Three controllers: lab-vfio (userspace target, also the cross-check disk), lab-kernel
# (stays on the kernel driver: io_uring scratch), lab-mounted (ext4 the guest mounts:
# setup.sh must refuse it).
make_images() {
	local boot=$1
	rm -f "$WORK"/*.raw
	truncate -s "${IMAGE_MB}M" "$WORK/vfio-$boot.raw" "$WORK/kernel-$boot.raw"
	truncate -s 64M "$WORK/mounted-$boot.raw"
	mkfs.ext4 -q -F -L labmounted "$WORK/mounted-$boot.raw"
}

# --- boot ------------------------------------------------------------------------------
run_boot() {
	local boot=$1 cmdline iommu=()
	# kernel-irqchip=split is what intremap=on needs under KVM; TCG accepts it too.
	local machine=(-machine "q35,kernel-irqchip=split,accel=tcg")
	cmdline="console=ttyS0 panic=-1 loglevel=4 lab_mode=$boot lab_step_timeout=$STEP_TIMEOUT lab_seed=$SEED lab_lba=$LBA_SIZE"
	if [[ $boot == iommu ]]; then
		iommu=(-device "intel-iommu,intremap=on")
		cmdline+=" intel_iommu=on iommu=pt"
	fi
	make_images "$boot"
	log "boot $boot: starting QEMU (timeout ${BOOT_TIMEOUT}s)"
	local start=$SECONDS rc=0
	timeout -k 10 "$BOOT_TIMEOUT" qemu-system-x86_64 "${machine[@]}" "${iommu[@]}" \
		-cpu max -smp 2 -m 1G -nographic -no-reboot -nodefaults -serial stdio \
		-kernel "$CACHE/kernel/vmlinuz" -initrd "$WORK/initramfs.cpio.gz" -append "$cmdline" \
		-drive "file=$WORK/vfio-$boot.raw,if=none,id=dvfio,format=raw" -device "nvme,serial=lab-vfio,drive=dvfio" \
		-drive "file=$WORK/kernel-$boot.raw,if=none,id=dkernel,format=raw" -device "nvme,serial=lab-kernel,drive=dkernel" \
		-drive "file=$WORK/mounted-$boot.raw,if=none,id=dmounted,format=raw" -device "nvme,serial=lab-mounted,drive=dmounted" \
		</dev/null >"$WORK/$boot.log" 2>&1 &
	QEMU_PID=$!
	wait "$QEMU_PID" || rc=$?
	QEMU_PID=
	log "boot $boot: QEMU exited with $rc after $((SECONDS - start))s"
	grep -a 'LAB-' "$WORK/$boot.log" | sed "s/^/  [$boot] /" >&2 || true
	check_boot "$boot" "$rc"
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
