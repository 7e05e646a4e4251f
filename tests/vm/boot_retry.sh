# A cell whose VM never reached ktstr-init is booted again when the cause may
# be the host's, and the sidecar says so; when QEMU refuses to start it is
# not. QEMU is a wrapper ($KTSTR_QEMU) around the real one that, by
# $KT_FAKE_QEMU_MODE, on some of its boots:
#   crash     starts the real QEMU, lets the guest boot for a second, then
#             dies by SIGSEGV without a word (as QEMU 7.2's TCG did in CI,
#             in memory_region_dispatch_write)
#   panic     boots the real kernel with an rdinit that does not exist: a
#             real "Kernel panic - not syncing" before init
#   refuse    prints QEMU's error for a missing firmware and exits 1
# It counts its boots in $KT_FAKE_QEMU_COUNT; KT_FAKE_QEMU_BAD says which
# boots misbehave ("1": the first; "all"). Last, one crash through
# ktstr-coord's embedded worker: the report shows the second boot.
source "$(dirname "$0")/lib.sh"
need_fixture
command -v qemu-system-x86_64 >/dev/null || { echo "SKIP: no qemu-system-x86_64"; exit 77; }

wrapper=$TMP/qemu
cat >"$wrapper" <<'EOF'
#!/bin/bash
n=$(($(cat "$KT_FAKE_QEMU_COUNT" 2>/dev/null || echo 0) + 1))
echo "$n" >"$KT_FAKE_QEMU_COUNT"
if [ "$KT_FAKE_QEMU_BAD" = all ] || [ "$KT_FAKE_QEMU_BAD" = "$n" ]; then
    case $KT_FAKE_QEMU_MODE in
    crash)
        qemu-system-x86_64 "$@" &
        q=$!
        sleep 1
        exec 2>/dev/null # bash's "Killed" notice is not QEMU's word
        kill -9 "$q"
        wait "$q"
        kill -SEGV $$
        ;;
    panic)
        args=()
        while [ $# -gt 0 ]; do
            if [ "$1" = -append ]; then args+=("$1" "$2 rdinit=/ktstr-no-such-init"); shift 2; continue; fi
            args+=("$1"); shift
        done
        exec qemu-system-x86_64 "${args[@]}"
        ;;
    refuse)
        echo "qemu-system-x86_64: could not load PC BIOS 'bios-256k.bin'" >&2
        exit 1
        ;;
    esac
fi
exec qemu-system-x86_64 "$@"
EOF
chmod +x "$wrapper"

# boot_cell NAME MODE BAD [run-cell options...]
boot_cell() {
    local name=$1 mode=$2 bad=$3
    shift 3
    rm -f "$TMP/$name.count"
    KTSTR_QEMU=$wrapper KT_FAKE_QEMU_MODE=$mode KT_FAKE_QEMU_BAD=$bad \
        KT_FAKE_QEMU_COUNT=$TMP/$name.count \
        run_cell "$name" --kernel "$KERNEL" --topology tiny-1llc --scenario steady \
        --duration 2 --accel tcg "$@"
    BOOTS=$(cat "$TMP/$name.count" 2>/dev/null || echo 0)
}

# 1. QEMU crashes on the first boot: the second passes, the first is on record.
boot_cell crash_once crash 1
expect "crash once: exit status 0" eq "$RC" 0
expect "crash once: verdict pass" eq "$(field .verdict)" pass
expect "crash once: two boots" eq "$BOOTS" 2
expect "crash once: one retry on record" eq "$(field '.boot_retries | length')" 1
expect "crash once: its cause is QEMU's signal" contains "$(field '.boot_retries[0].cause')" \
    "killed by signal 11 (Segmentation fault) during boot"
log=$(field '.boot_retries[0].console_log')
# (loglevel=5: a second into a TCG boot the console may still be empty)
expect "crash once: the failed boot's console is kept" test -f "$log"
expect "crash once: ... beside the sidecar" eq "$(dirname "$log")" "$TMP/crash_once"
expect "crash once: and the good boot's" test -s "$(field .console_log)"

# 2. A real kernel panic before init on the first boot, then a good boot.
boot_cell panic_once panic 1
expect "panic once: verdict pass" eq "$(field .verdict)" pass
expect "panic once: two boots" eq "$BOOTS" 2
expect "panic once: the cause is the kernel's panic" contains "$(field '.boot_retries[0].cause')" \
    "the kernel failed before init: Kernel panic - not syncing"
expect "panic once: the failed boot's console has the panic" \
    grep -q "Kernel panic - not syncing" "$(field '.boot_retries[0].console_log')"

# 3. A kernel that panics at every boot: a fail after two boots, in the
#    kernel's words, both boots on record.
boot_cell panic_always panic all
expect "panic always: exit status 1" eq "$RC" 1
expect "panic always: verdict fail" eq "$(field .verdict)" fail
expect "panic always: phase boot" eq "$(field .phase)" boot
expect "panic always: the reason is the panic" contains "$(field .reason)" "Kernel panic - not syncing"
expect "panic always: two boots" eq "$BOOTS" 2
expect "panic always: the first on record" eq "$(field '.boot_retries | length')" 1

# 4. QEMU crashes every time: an error after 1 + --boot-retries boots.
boot_cell crash_always crash all --boot-retries 2
expect "crash always: exit status 2" eq "$RC" 2
expect "crash always: verdict error" eq "$(field .verdict)" error
expect "crash always: the reason is QEMU's signal" contains "$(field .reason)" "signal 11"
expect "crash always: three boots (--boot-retries 2)" eq "$BOOTS" 3
expect "crash always: two retries on record" eq "$(field '.boot_retries | length')" 2

# 5. --boot-retries 0: one boot only, no record.
boot_cell crash_noretry crash 1 --boot-retries 0
expect "no retries: verdict error" eq "$(field .verdict)" error
expect "no retries: one boot" eq "$BOOTS" 1
expect "no retries: nothing on record" eq "$(field '.boot_retries')" null

# 6. QEMU refuses to start (it says why): that repeats, no second boot.
boot_cell refuse refuse all
expect "refuse: verdict error" eq "$(field .verdict)" error
expect "refuse: QEMU's words in the reason" contains "$(field .reason)" "could not load PC BIOS"
expect "refuse: one boot" eq "$BOOTS" 1
expect "refuse: nothing on record" eq "$(field '.boot_retries')" null

# 7. Through the coordinator's embedded worker: the run shows the second boot.
cat >"$TMP/g.yaml" <<EOF
kernels:
  - path: $KERNEL
schedulers:
  - name: eevdf
topologies: [tiny-1llc]
scenarios: [steady]
duration: 2s
EOF
rm -f "$TMP/coord.count"
KTSTR_QEMU=$wrapper KT_FAKE_QEMU_MODE=crash KT_FAKE_QEMU_BAD=1 KT_FAKE_QEMU_COUNT=$TMP/coord.count \
    "$KT_COORD" run --gauntlet "$TMP/g.yaml" --results "$TMP/results" --accel tcg \
    --progress plain >"$TMP/coord.out" 2>&1
crc=$?
grep -v ' info: ' "$TMP/coord.out" | tail -n 12 | sed 's/^/# /'
expect "coordinator: exit status 0" eq "$crc" 0
expect "coordinator: two boots" eq "$(cat "$TMP/coord.count" 2>/dev/null)" 2
expect "coordinator: the progress line says 2 boots" grep -q "attempt 1, 2 boots," "$TMP/coord.out"
expect "coordinator: the summary counts it" grep -q "booted again: 1 cell(s)" "$TMP/coord.out"
SIDECAR=$(ls "$TMP"/results/*/*/*.ktstr.json 2>/dev/null | head -n1)
expect "coordinator: the run's sidecar keeps boot_retries" eq "$(field '.boot_retries | length')" 1
expect "coordinator: run.json says boots 2" eq \
    "$(jq -r '.cells[0].boots' "$TMP"/results/*/run.json 2>/dev/null)" 2
finish
