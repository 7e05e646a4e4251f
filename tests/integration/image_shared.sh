#!/bin/bash
# Shared base images across processes: three kt-image-tool processes ask for
# the same image at the same instant and hold it; exactly one builds, the
# others wait and reuse it, one image file exists, a sweep while they hold
# it removes nothing, and a sweep once they are gone removes it. Boots
# nothing. Env: KT_BUILD (build dir), KT_SRC (source dir).
set -u

: "${KT_BUILD:?KT_BUILD must point at the build dir}"
tool=${KT_IMAGE_TOOL:-$KT_BUILD/tests/kt-image-tool}
[ -x "$tool" ] || { echo "Bail out! kt-image-tool not found at '$tool'"; exit 1; }
for prog in lz4 cpio; do
    command -v "$prog" >/dev/null || { echo "# SKIP: $prog not installed"; exit 77; }
done
[ -x /bin/busybox ] || { echo "# SKIP: /bin/busybox not installed"; exit 77; }

dir=$(mktemp -d /tmp/kt-image-shared.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$dir"
}
trap cleanup EXIT

failures=0
n=0
check() { # description, then a command that must succeed
    local what=$1
    shift
    n=$((n + 1))
    if "$@"; then
        echo "ok $n - $what"
    else
        echo "not ok $n - $what"
        failures=$((failures + 1))
    fi
}

images() { find "$dir/img" -maxdepth 1 -name 'ktstr-lz4-*' -printf '%f\n' | sort; }

mkdir -p "$dir/img" "$dir/in"
head -c $((2 << 20)) /dev/urandom > "$dir/in/blob"
printf '#!/bin/sh\nexec /bin/sh\n' > "$dir/in/init"
specs=(
    "init=$dir/in/init:0755"
    "bin/busybox=/bin/busybox:0755"
    "bin/sh->busybox"
    "sched/blob=$dir/in/blob:0644"
    "dev/:0755"
)

# The three start at the same wall-clock instant (--start-at) and each holds
# the image for 1.5 s after acquiring it.
start_at=$(( $(date +%s%3N) + 700 ))
for i in 1 2 3; do
    "$tool" acquire --dir "$dir/img" --hold-ms 1500 --start-at "$start_at" "${specs[@]}" \
        > "$dir/out.$i" 2> "$dir/err.$i" &
    pids+=($!)
done

# While they hold it, a sweep must leave it alone: wait for the image to
# appear (they hold it 1.5 s from then), sweep, and look again.
for _ in $(seq 200); do
    [ -n "$(images)" ] && break
    sleep 0.05
done
"$tool" sweep --dir "$dir/img" > "$dir/sweep.held" 2>&1
sweep_held_rc=$?
after_held_sweep=$(images)

rcs=()
for p in "${pids[@]}"; do
    wait "$p"
    rcs+=($?)
done
pids=()

for i in 1 2 3; do
    sed "s/^/# proc $i: /" "$dir/out.$i" "$dir/err.$i"
done
check "all three acquires succeed (rc ${rcs[*]})" \
    test "${rcs[*]}" = "0 0 0"
built1=$(cat "$dir"/out.* | grep -c '^built=1 ')
built0=$(cat "$dir"/out.* | grep -c '^built=0 ')
check "exactly one process built the image (built=1: $built1, built=0: $built0)" \
    test "$built1" -eq 1 -a "$built0" -eq 2
npaths=$(sed -n 's/.* path=\([^ ]*\) .*/\1/p' "$dir"/out.* | sort -u | wc -l)
check "all three got the same image path" test "$npaths" -eq 1
check "the sweep while held ran and removed nothing ($(cat "$dir/sweep.held"))" \
    grep -qx 'removed=0' "$dir/sweep.held"
check "the sweep ran (rc $sweep_held_rc)" test "$sweep_held_rc" -eq 0
check "the held image was still there right after that sweep" \
    test -n "$after_held_sweep"

path=$(sed -n 's/.* path=\([^ ]*\) .*/\1/p' "$dir/out.1")
hash=$("$tool" hash "${specs[@]}")
check "the image is named by its content hash" \
    test "$path" = "$dir/img/ktstr-lz4-$hash"
check "exactly one file in the image dir: the image ($(images | tr '\n' ' '))" \
    test "$(images)" = "ktstr-lz4-$hash"

# The kernel's reader is lz4 legacy + newc; check with the system tools.
listing=$(lz4 -d -c "$path" 2>/dev/null | cpio -t --quiet 2>/dev/null | tr '\n' ' ')
check "lz4 -d | cpio -t lists the entries ($listing)" \
    test "$listing" = "init bin bin/busybox bin/sh sched sched/blob dev "
mkdir "$dir/x"
(cd "$dir/x" && lz4 -d -c "$path" | cpio -idm --quiet 2>/dev/null)
check "extracted busybox is byte-identical" cmp -s /bin/busybox "$dir/x/bin/busybox"
check "extracted blob is byte-identical" cmp -s "$dir/in/blob" "$dir/x/sched/blob"
check "modes survive (init 755, blob 644)" \
    test "$(stat -c %a "$dir/x/init") $(stat -c %a "$dir/x/sched/blob")" = "755 644"

# A fourth acquire finds it ready.
"$tool" acquire --dir "$dir/img" "${specs[@]}" > "$dir/out.4" 2>&1
check "a later acquire reuses it ($(cat "$dir/out.4" | cut -c1-40))" grep -q '^built=0 ' "$dir/out.4"

# Nothing holds it now: the sweep removes it and leaves nothing behind.
"$tool" sweep --dir "$dir/img" > "$dir/sweep.free" 2>&1
check "sweep with nothing held removes it ($(cat "$dir/sweep.free"))" \
    grep -qx 'removed=1' "$dir/sweep.free"
check "the image dir is empty afterwards" test -z "$(images)"

# Bad input is an error that names the culprit, and builds nothing.
"$tool" acquire --dir "$dir/img" "init=$dir/in/missing:0755" > /dev/null 2> "$dir/err.bad"
bad_rc=$?
check "a missing host file fails (rc $bad_rc) naming it: $(cat "$dir/err.bad")" \
    grep -q "'$dir/in/missing'" "$dir/err.bad"
test "$bad_rc" -eq 1 || { echo "# expected rc 1, got $bad_rc"; failures=$((failures + 1)); }
check "and leaves no file behind" test -z "$(images)"

echo "1..$n"
[ "$failures" -eq 0 ]
