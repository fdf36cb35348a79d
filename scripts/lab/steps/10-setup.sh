#!/bin/bash
# scripts/setup.sh against real sysfs: status, binding to this boot's userspace driver,
# idempotence, PCI_BLOCKED, refusing a controller whose namespace is mounted, open or swap,
# and reset back to the kernel driver.
# shellcheck source=/dev/null
. /lab/lib.sh
[ -n "$LAB_MOUNT_BLK" ] || fail "lab-mounted controller not found"

check "status" "$LAB_SETUP" status
for a in "$LAB_VFIO_ADDR" "$LAB_KERNEL_ADDR" "$LAB_MOUNT_ADDR"; do
	grep -q "^$a " "$LAB_OUT" || fail "status does not list $a"
done
grep -q "$LAB_MOUNT_BLK" "$LAB_OUT" || fail "status does not list block device $LAB_MOUNT_BLK"
grep -q '^hugepages:' "$LAB_OUT" || fail "status has no hugepages summary"

refuse "unknown command" "$LAB_SETUP" frobnicate
refuse "bad PCI_ALLOWED" env PCI_ALLOWED=nonsense "$LAB_SETUP" config
grep -q "PCI_ALLOWED: 'nonsense'" "$LAB_OUT" || fail "bad PCI_ALLOWED message does not name the value"

# The mounted namespace must be refused, by name and reason, and left on nvme.
check "mount ext4" mount -t ext4 "/dev/$LAB_MOUNT_BLK" /mnt/lab
refuse "unbinding a mounted controller" env PCI_ALLOWED="$LAB_MOUNT_ADDR" HUGEMEM=64 "$LAB_SETUP" config
grep -q "$LAB_MOUNT_ADDR: refusing.*/dev/$LAB_MOUNT_BLK is mounted on /mnt/lab" "$LAB_OUT" || fail "refusal does not say /dev/$LAB_MOUNT_BLK is mounted on /mnt/lab"
[ "$(driver_of "$LAB_MOUNT_ADDR")" = nvme ] || fail "mounted controller was unbound"
check "umount" umount /mnt/lab

# A namespace held open by a process is refused too.
(
	exec 9<"/dev/$LAB_MOUNT_BLK"
	sleep 30
) &
holder=$!
refuse "unbinding an open controller" env PCI_ALLOWED="$LAB_MOUNT_ADDR" HUGEMEM=64 "$LAB_SETUP" config
kill "$holder"
grep -q "/dev/$LAB_MOUNT_BLK is open by process $holder" "$LAB_OUT" || fail "refusal does not name process $holder holding /dev/$LAB_MOUNT_BLK"
[ "$(driver_of "$LAB_MOUNT_ADDR")" = nvme ] || fail "open controller was unbound"

# A namespace in use as swap is refused: the kernel scratch namespace (io_uring's, which
# step 50 overwrites anyway) becomes swap for a moment.
check "mkswap" mkswap "$LAB_BLK"
check "swapon" swapon "$LAB_BLK"
refuse "unbinding a controller used as swap" env PCI_ALLOWED="$LAB_KERNEL_ADDR" HUGEMEM=64 "$LAB_SETUP" config
swapoff "$LAB_BLK" || fail "swapoff $LAB_BLK"
grep -q "$LAB_KERNEL_ADDR: refusing.*$LAB_BLK is in use as swap" "$LAB_OUT" || fail "refusal does not say $LAB_BLK is in use as swap"
[ "$(driver_of "$LAB_KERNEL_ADDR")" = nvme ] || fail "swap controller was unbound"

# Bind all but the blocked kernel controller: lab-mounted is free now and moves too.
check "config with PCI_BLOCKED" env PCI_BLOCKED="$LAB_KERNEL_ADDR" HUGEMEM=256 "$LAB_SETUP" config
grep -q "$LAB_KERNEL_ADDR: skipped (PCI_BLOCKED)" "$LAB_OUT" || fail "blocked controller not reported as skipped"
[ "$(driver_of "$LAB_KERNEL_ADDR")" = nvme ] || fail "PCI_BLOCKED controller was unbound"
for a in "$LAB_VFIO_ADDR" "$LAB_MOUNT_ADDR"; do
	[ "$(driver_of "$a")" = "$LAB_USERSPACE_DRIVER" ] || fail "$a bound to $(driver_of "$a"), want $LAB_USERSPACE_DRIVER"
done
[ "$(cat /proc/sys/vm/nr_hugepages)" -ge 128 ] || fail "HUGEMEM=256 left $(cat /proc/sys/vm/nr_hugepages) hugepages"
if [ "$LAB_USERSPACE_DRIVER" = vfio-pci ]; then
	g=$(basename "$(readlink "/sys/bus/pci/devices/$LAB_VFIO_ADDR/iommu_group")")
	[ -c "/dev/vfio/$g" ] || fail "/dev/vfio/$g missing after binding to vfio-pci"
fi

# Idempotent: a second run changes nothing and says so.
check "config again" env PCI_BLOCKED="$LAB_KERNEL_ADDR" HUGEMEM=256 "$LAB_SETUP" config
grep -q "$LAB_VFIO_ADDR: already bound to $LAB_USERSPACE_DRIVER" "$LAB_OUT" || fail "second config run did not say already bound"
grep -q "hugepages: .* already reserved" "$LAB_OUT" || fail "second config run did not say hugepages already reserved"

# Reset lab-mounted; the filesystem is readable again through the kernel.
check "reset" env PCI_ALLOWED="$LAB_MOUNT_ADDR" "$LAB_SETUP" reset
[ "$(driver_of "$LAB_MOUNT_ADDR")" = nvme ] || fail "reset left $LAB_MOUNT_ADDR on $(driver_of "$LAB_MOUNT_ADDR")"
check "reset again" env PCI_ALLOWED="$LAB_MOUNT_ADDR" "$LAB_SETUP" reset
grep -q "already bound to nvme" "$LAB_OUT" || fail "second reset did not say already bound"
LAB_MOUNT_BLK=$(blk_by_serial "$LAB_MOUNT_SERIAL") || fail "no block device for $LAB_MOUNT_ADDR after reset"
check "mount after reset" mount -t ext4 -o ro "/dev/$LAB_MOUNT_BLK" /mnt/lab
check "umount" umount /mnt/lab
pass "$LAB_USERSPACE_DRIVER"
