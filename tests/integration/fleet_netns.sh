#!/bin/bash
# A real gauntlet across a fleet: three `ktstr-worker serve` in network
# namespaces (198.51.100.11-13, CURVE both ways), the coordinator outside,
# 12 EEVDF cells over 2 kernels (the sched_ext fixture and Debian's cloud
# kernel), booted in VMs under TCG. Every cell exactly once (store and
# sidecars), both kernels, more than one worker used, each sidecar from a
# VM (executor vm, accelerator tcg, a console log), no QEMU left behind.
# The machine has 2 cores: the cells are 2-vCPU shapes, each worker takes one
# at a time (--vcpus 2), so at most three small VMs run at once.
# Env: KT_BUILD, KT_SRC, KT_WORKER, KT_COORD.
set -u
. "$(dirname "$0")/lib_fleet.sh"
fleet_require
command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 is not installed"
for prog in lz4 cpio; do
    command -v "$prog" >/dev/null || skip "$prog is not installed"
done
[ -x /bin/busybox ] || skip "/bin/busybox is not installed"
cache=${KTSTR_CACHE_DIR:-$HOME/.cache/ktstr}/debian-kernel
if ! debian=$("$KT_SRC/deploy/fetch-debian-kernel.sh" "$cache" 2>"$FLEET_DIR/fetch.err"); then
    skip "could not fetch Debian's cloud kernel with apt: $(tail -n 2 "$FLEET_DIR/fetch.err")"
fi
netns_setup 3

d=$FLEET_DIR
mkdir -p "$d/img" "$d/allow"
fleet_keygen coord >/dev/null || bail "ktstr-coord keygen failed: $(cat "$d/keygen.log")"
cp "$d/keys/coord.key" "$d/allow/"
hosts=()
for i in 1 2 3; do
    key=$(fleet_keygen "w$i") || bail "keygen w$i failed"
    fleet_worker_start "$i" "w$i" --accel tcg --vcpus 2 --memory 2048 --image-dir "$d/img" \
        --curve-secret "$d/keys/w$i.key_secret" --allow "$d/allow" || bail "worker w$i did not start"
    hosts+=("$i:w$i:$key")
done
fleet_hosts "$d/hosts" "${hosts[@]}"

cat >"$d/g.yaml" <<EOF
kernels:
  - path: $FIXTURE_KERNEL
  - path: $debian
schedulers:
  - name: eevdf
topologies: ["1,1,2,1", "1,2,1,1"]
scenarios: [steady, pipe_pingpong, futex_pingpong]
duration: 1s
EOF
cells_of "$d/g.yaml" >"$d/cells"
n=$(wc -l <"$d/cells")
tap_check "the gauntlet has 12 cells over 2 kernels ($n)" test "$n" -eq 12

t0=$(date +%s)
timeout 540 "$KT_COORD" run --workers "$d/hosts" --gauntlet "$d/g.yaml" --results "$d/r" \
    --curve-secret "$d/keys/coord.key_secret" --progress plain >"$d/coord.out" 2>"$d/coord.err"
rc=$?
echo "# run: rc=$rc in $(($(date +%s) - t0)) s"
sed -n '/VERDICT/,$p' "$d/coord.out" | sed 's/^/# /'
run=$(run_id_of "$d/r") || bail "no run folder in '$d/r'"
r=$d/r

# The VMs' verdicts are the kernels' and scheduler's business; the fleet's is
# that every cell got one, from a VM, exactly once, and none is an error.
tap_check "the coordinator exits 0 or 1, not 2 (rc=$rc)" test "$rc" -eq 0 -o "$rc" -eq 1
check_exactly_once "$r" "$run" "$n" netns
errors=$(dbw "$r" "SELECT count(*) FROM verdicts WHERE run_id = '$run' AND verdict = 'error'")
tap_check "no cell ended in error ($errors)" test "$errors" = 0
dbw "$r" "SELECT verdict, count(*) FROM verdicts WHERE run_id = '$run' GROUP BY verdict" |
    sed 's/^/# verdicts: /'
names_ok=$(dbw "$r" "SELECT name FROM cells WHERE run_id = '$run' ORDER BY name" | diff - <(sort "$d/cells") >/dev/null && echo 1)
tap_check "the store's cells are the ones 'ktstr-coord list' gives" test "${names_ok:-0}" = 1
labels=$(dbw "$r" "SELECT count(DISTINCT kernel_label) FROM cells WHERE run_id = '$run'")
tap_check "both kernels ran ($labels labels)" test "$labels" -eq 2
workers=$(dbw "$r" "SELECT count(DISTINCT worker) FROM verdicts WHERE run_id = '$run'")
tap_check "the cells were spread over the fleet ($workers workers)" test "$workers" -ge 2

rj=$(jq -r '[.status, (.workers | length), ([.workers[].done] | add)] | join(" ")' "$r/$run/run.json" 2>/dev/null)
tap_check "run.json: done, the 3 workers, their done counts add up to $n ($rj)" test "$rj" = "done 3 $n"
sidecars_of "$r/$run" >"$d/sidecars"
bad=0
while read -r f; do
    ok=$(jq -r '[.executor // "vm", .accel, .worker, (has("kernel_commit")|tostring), .kernel_version] | join(" ")' "$f")
    case $ok in
    "vm tcg w"[123]" true "?*) ;;
    *)
        bad=$((bad + 1))
        echo "# $f: executor accel worker has-commit version = $ok"
        ;;
    esac
done <"$d/sidecars"
tap_check "every sidecar is a VM's (tcg), names its worker and carries kernel_commit ($bad not)" \
    test "$bad" -eq 0
deb=$(xargs -r jq -r '.kernel_version' <"$d/sidecars" | grep -c deb12)
tap_check "half the cells ran Debian's kernel ($deb of $n)" test "$deb" -eq $((n / 2))
logs=$(find "$r/$run" -name '*console*' -type f | wc -l)
tap_check "console logs were kept ($logs)" test "$logs" -ge "$n"

# Drain the workers (SIGTERM): they exit and leave no QEMU.
for i in 1 2 3; do kill -TERM "${FLEET_WPID[$i]}" 2>/dev/null; done
gone() { ! kill -0 "${FLEET_WPID[1]}" 2>/dev/null && ! kill -0 "${FLEET_WPID[2]}" 2>/dev/null &&
    ! kill -0 "${FLEET_WPID[3]}" 2>/dev/null; }
tap_check "the workers drain and exit on SIGTERM" wait_until 30 gone
qemu=$(pgrep -f "qemu-system.*$d" | wc -l)
tap_check "no QEMU left ($qemu)" test "$qemu" -eq 0

tap_done
