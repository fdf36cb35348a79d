#!/bin/bash
# driver/pcie on its own: Probe, Open through this boot's userspace driver, a minimal
# admin queue (Identify, Number of Queues) and an I/O queue writing and reading back
# through DMA, also across the hugepage boundaries of a 5 MiB buffer. Runs the package's test binary, so it needs no driver core or CLI.
# shellcheck source=/dev/null
. /lab/lib.sh
[ -x "$LAB_PCIE_TEST" ] || fail "$LAB_PCIE_TEST missing from the initramfs"
bind_userspace
check "driver/pcie guest test" env PCIE_GUEST_ADDR="$LAB_VFIO_ADDR" PCIE_GUEST_SERIAL="$LAB_VFIO_SERIAL" \
	"$LAB_PCIE_TEST" -test.run '^TestGuestController$' -test.v -test.count=1
grep -q -- '--- PASS: TestGuestController' "$LAB_OUT" || fail "TestGuestController did not pass (skipped?)"
grep -E 'MQES|identify:|number of queues|I/O queue|hugepage|IOVA|contiguous|5 MiB' "$LAB_OUT" | sed 's/^ *guest_test.go:[0-9]*: //' | while read -r l; do info "$l"; done
pass "$LAB_USERSPACE_DRIVER"
