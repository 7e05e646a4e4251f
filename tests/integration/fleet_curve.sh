#!/bin/bash
# CURVE between the coordinator and its workers (DESIGN.md §4, issue 3):
#   1. a worker refuses to bind a non-loopback address without CURVE unless
#      --insecure is given (and with --insecure, or on loopback, it starts);
#   2. a coordinator whose key is not in the worker's allow directory gets
#      nothing run and says why: exit 2, naming the worker and the key;
#   3. a coordinator that has a wrong key for the worker (hosts.txt key=)
#      gets nothing run either (the worker is authenticated too);
#   4. with the right keys both ways the same gauntlet runs.
# The worker lives in a network namespace at 198.51.100.11 (null executor:
# no VM is booted). Env: KT_BUILD, KT_SRC, KT_WORKER, KT_COORD.
set -u
. "$(dirname "$0")/lib_fleet.sh"
fleet_require
netns_setup 2

d=$FLEET_DIR
coord_pub=$(fleet_keygen coord) || bail "ktstr-coord keygen failed: $(cat "$d/keygen.log")"
rogue_pub=$(fleet_keygen rogue) || bail "keygen rogue failed"
w1_pub=$(fleet_keygen w1) || bail "keygen w1 failed"
mkdir -p "$d/allow"
cp "$d/keys/coord.key" "$d/allow/"

cat >"$d/g.yaml" <<EOF
kernels:
  - path: $FIXTURE_KERNEL
schedulers:
  - name: eevdf
topologies: [tiny-1llc, tiny-2llc]
scenarios: [steady]
duration: 1s
EOF
ncells=$(cells_of "$d/g.yaml" | wc -l)
[ "$ncells" -ge 1 ] || bail "ktstr-coord list gives no cells for $d/g.yaml"

# 1. No CURVE on a non-loopback address: refused at start, never listening.
addr2=$(netns_addr 2)
timeout 20 ip netns exec "$(netns_name 2)" "$KT_WORKER" serve --bind "tcp://$addr2:$FLEET_PORT" \
    --id plain --cache "$d/cache-plain" --executor null >"$d/plain.out" 2>&1
rc=$?
tap_check "serve on $addr2 without CURVE or --insecure exits non-zero at once (rc=$rc)" \
    test "$rc" -ne 0 -a "$rc" -ne 124
says_why() { grep -qi -- 'curve' "$d/plain.out" && grep -q -- '--insecure' "$d/plain.out"; }
tap_check "...and says why (names CURVE and --insecure)" says_why
fleet_worker_start 2 insecure --executor null --insecure
tap_check "with --insecure the same bind is accepted and listens" test $? -eq 0
fleet_worker_kill 2
netns_exec 2 "$KT_WORKER" serve --bind "tcp://127.0.0.1:$FLEET_PORT" --id loop \
    --cache "$d/cache-loop" --executor null >"$d/loop.log" 2>&1 &
loop_pid=$!
NETNS_PIDS+=("$loop_pid")
sleep 1.5
tap_check "on loopback without CURVE a worker starts (no --insecure needed)" kill -0 "$loop_pid"
kill -9 "$loop_pid" 2>/dev/null
wait "$loop_pid" 2>/dev/null

# The CURVE worker for the rest.
fleet_worker_start 1 w1 --executor null --vcpus 4 --curve-secret "$d/keys/w1.key_secret" --allow "$d/allow" ||
    bail "the CURVE worker did not start"

# 2. A coordinator whose key the worker does not allow.
fleet_hosts "$d/hosts-good" "1:w1:$w1_pub"
t0=$(date +%s)
timeout 120 "$KT_COORD" run --workers "$d/hosts-good" --gauntlet "$d/g.yaml" --results "$d/r-rogue" \
    --curve-secret "$d/keys/rogue.key_secret" >"$d/rogue.out" 2>"$d/rogue.err"
rc=$?
t1=$(date +%s)
echo "# rogue coordinator: rc=$rc after $((t1 - t0)) s; its last lines:"
tail -n 4 "$d/rogue.err" | sed 's/^/#   /'
tap_check "coordinator with a key not in the allow dir exits 2 (rc=$rc)" test "$rc" -eq 2
tap_check "...naming the worker (w1 or $(netns_addr 1))" \
    grep -qE "w1|$(netns_addr 1)" "$d/rogue.out" "$d/rogue.err"
tap_check "...and the key problem" \
    grep -qiE 'key|curve|auth|denied|not allowed|forbidden' "$d/rogue.out" "$d/rogue.err"
n=$(sidecars_of "$d/r-rogue" 2>/dev/null | wc -l)
tap_check "...and nothing ran: no sidecar ($n)" test "$n" -eq 0
if [ -f "$d/r-rogue/ktstr.db" ]; then
    n=$(db "$d/r-rogue" "SELECT count(*) FROM attempts" 2>/dev/null || echo "?")
    tap_check "...no attempt in the run store ($n)" test "$n" = 0
fi
tap_check "the worker is still up" kill -0 "${FLEET_WPID[1]}"

# 3. The right coordinator key, but a wrong key for the worker: the
#    coordinator cannot authenticate it and must not talk to it.
fleet_hosts "$d/hosts-wrongkey" "1:w1:$rogue_pub"
timeout 120 "$KT_COORD" run --workers "$d/hosts-wrongkey" --gauntlet "$d/g.yaml" \
    --results "$d/r-wrongkey" --curve-secret "$d/keys/coord.key_secret" \
    >"$d/wrongkey.out" 2>"$d/wrongkey.err"
rc=$?
echo "# coordinator with a wrong worker key: rc=$rc; its last lines:"
tail -n 4 "$d/wrongkey.err" | sed 's/^/#   /'
tap_check "a wrong key for the worker: exit 2 (rc=$rc)" test "$rc" -eq 2
tap_check "...naming the worker" grep -qE "w1|$(netns_addr 1)" "$d/wrongkey.out" "$d/wrongkey.err"
n=$(sidecars_of "$d/r-wrongkey" 2>/dev/null | wc -l)
tap_check "...and nothing ran ($n sidecars)" test "$n" -eq 0

# 4. Everything right: the gauntlet runs.
timeout 120 "$KT_COORD" run --workers "$d/hosts-good" --gauntlet "$d/g.yaml" --results "$d/r-good" \
    --curve-secret "$d/keys/coord.key_secret" >"$d/good.out" 2>"$d/good.err"
rc=$?
tap_check "the allowed coordinator with the worker's key runs the gauntlet (rc=$rc)" test "$rc" -eq 0
n=$(sidecars_of "$d/r-good" | wc -l)
tap_check "...every cell has its sidecar ($n of $ncells)" test "$n" -eq "$ncells"

tap_done
