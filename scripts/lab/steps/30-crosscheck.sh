#!/bin/bash
# Data cross-check between the userspace driver and the kernel's: what one writes with
# --verify, the other reads back with --verify-read (same seed), both directions. The
# host then checks the disk image itself with nvmeperf verify-image.
# shellcheck source=/dev/null
. /lab/lib.sh
need_nvmeperf
TRID="trtype:PCIe traddr:$LAB_VFIO_ADDR"
SEED=${LAB_SEED:-1}
# Sequential I/O over a bounded count covers a known range and finishes fast under TCG.
ARGS=(--quiet --seed "$SEED" -o 4096 -q 8 -d 2000 -t 30)

# userspace write -> kernel read
bind_userspace
check "userspace verify-write" "$NVMEPERF" "${ARGS[@]}" -w write --verify -r "$TRID"
bind_kernel
check "kernel verify-read of /dev/$LAB_VFIO_BLK" "$NVMEPERF" "${ARGS[@]}" -w read --verify-read "/dev/$LAB_VFIO_BLK"

# kernel write -> userspace read
check "kernel verify-write to /dev/$LAB_VFIO_BLK" "$NVMEPERF" "${ARGS[@]}" -w write --verify --allow-destructive "/dev/$LAB_VFIO_BLK"
bind_userspace
check "userspace verify-read" "$NVMEPERF" "${ARGS[@]}" -w read --verify-read -r "$TRID"

# A different seed must not verify: the check can fail.
refuse "verify-read with a wrong seed" "$NVMEPERF" --quiet --seed $((SEED + 1)) -o 4096 -q 8 -d 2000 -t 30 -w read --verify-read -r "$TRID"

# Leave the disk for the host's verify-image check, bound to the kernel (QEMU flushes
# the raw image at power-off either way).
bind_kernel
echo "LAB-VERIFY-IMAGE vfio seed=$SEED"
pass "$LAB_USERSPACE_DRIVER"
