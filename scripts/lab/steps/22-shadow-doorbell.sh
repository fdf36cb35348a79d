#!/bin/bash
# Shadow doorbells: QEMU's NVMe controller offers Doorbell Buffer Config (OACS bit 8),
# so nvmeperf's I/O queues update shadow doorbells and ring the registers only when the
# controller's EventIdx asks. --transport-stats must show shadow updates and skipped
# register writes, data must verify, and --no-shadow-doorbell must turn it all off.
# shellcheck source=/dev/null
. /lab/lib.sh
need_nvmeperf
bind_userspace
TRID="trtype:PCIe traddr:$LAB_VFIO_ADDR"
T=${LAB_PERF_SECONDS:-1}
SEED=${LAB_SEED:-1} # the lab's one seed, so the host's image check still holds

# stat NAME: the value of a --transport-stats line in $LAB_OUT (summed over jobs).
stat() { awk -v k="$1:" '$1 == k { s += $2 } END { print s + 0 }' "$LAB_OUT"; }

# QEMU publishes each EventIdx as soon as it has looked at a queue, so a host that rings
# once per poll finds it caught up and rings nearly every time. Per-command doorbells
# move the tail several times before QEMU runs again: those moves skip the register.
check "shadow doorbells" "$NVMEPERF" --quiet -t "$T" -r "$TRID" -q 32 -o 4096 -w randread --doorbell per-command --transport-stats
sq=$(stat sq_shadow_doorbell_updates)
cq=$(stat cq_shadow_doorbell_updates)
skips=$(stat shadow_doorbell_skips)
info "shadow updates sq=$sq cq=$cq, register writes sq=$(stat sq_mmio_doorbell_updates) cq=$(stat cq_mmio_doorbell_updates), skipped=$skips"
[ "$sq" -gt 0 ] && [ "$cq" -gt 0 ] || fail "no shadow doorbell updates: does QEMU's controller not offer Doorbell Buffer Config?"
[ "$skips" -gt 0 ] || fail "shadow doorbells in use but no doorbell register write was skipped"

# Data through shadow doorbells: a region written with the lab's seed, then read and
# written back at random, every read checked.
check "verify fill" "$NVMEPERF" --quiet --seed "$SEED" -r "$TRID" -q 16 -o 131072 -w write --verify -d 5% -t 60
check "verify round trip" "$NVMEPERF" --quiet --seed "$SEED" -r "$TRID" -q 16 -o 8192 -w randrw -M 50 --verify -d 5% -t 60 --doorbell per-command --transport-stats
[ "$(stat sq_shadow_doorbell_updates)" -gt 0 ] || fail "the verify run updated no shadow doorbell"
info "verify run: $(stat shadow_doorbell_skips) register writes skipped of $(($(stat sq_shadow_doorbell_updates) + $(stat cq_shadow_doorbell_updates)))"

check "--no-shadow-doorbell" "$NVMEPERF" --quiet -t "$T" -r "$TRID" -q 32 -o 4096 -w randread --transport-stats --no-shadow-doorbell
[ "$(stat sq_shadow_doorbell_updates)" -eq 0 ] && [ "$(stat shadow_doorbell_skips)" -eq 0 ] ||
	fail "--no-shadow-doorbell still updated shadow doorbells"
[ "$(stat sq_mmio_doorbell_updates)" -gt 0 ] || fail "--no-shadow-doorbell rang no doorbell register"
pass "shadow doorbells: $skips of $((sq + cq)) register writes skipped"
