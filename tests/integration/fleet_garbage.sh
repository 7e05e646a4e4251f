#!/bin/bash
# Peers that send garbage: the other side logs a line naming the peer, goes
# on, and the run completes.
#   - kt-garbage-peer as a coordinator, authenticated (its key is allowed),
#     sends a real worker malformed messages mid-run: wrong frame counts, a
#     bad signature, an unknown type, bodies that are not msgpack, truncated,
#     not a map, with fields of the wrong type or impossible lengths, a
#     message before OPEN, a frame over ZMQ_MAXMSGSIZE. The worker answers
#     ERROR (or drops the oversized connection), logs each, still answers a
#     well-formed OPEN afterwards, and keeps running the real run's cells.
#   - raw bytes (not ZMTP) to a worker's port: it stays up.
#   - kt-garbage-peer as a worker: listed in hosts.txt, it answers everything
#     the coordinator sends with garbage. The coordinator logs it, names it,
#     and runs the gauntlet on the two real workers.
# Namespaces: real workers at .11 and .12, the fake one at .13; CURVE
# throughout. Env: KT_BUILD, KT_SRC, KT_WORKER, KT_COORD, KT_GARBAGE_PEER.
set -u
. "$(dirname "$0")/lib_fleet.sh"
peer=${KT_GARBAGE_PEER:-$KT_BUILD/tests/kt-garbage-peer}
[ -x "$peer" ] || skip "kt-garbage-peer is not built at '$peer' (tests/meson.build builds it as helper 'garbage_peer')"
fleet_require
netns_setup 3

d=$FLEET_DIR
fleet_keygen coord >/dev/null || bail "ktstr-coord keygen failed: $(cat "$d/keygen.log")"
fleet_keygen garbage >/dev/null || bail "keygen garbage failed"
mkdir -p "$d/allow"
cp "$d/keys/coord.key" "$d/keys/garbage.key" "$d/allow/"
declare -A pub
for i in 1 2 3; do
    pub[$i]=$(fleet_keygen "w$i") || bail "keygen w$i failed"
done
for i in 1 2; do
    fleet_worker_start "$i" "w$i" --executor sleep:1500 --vcpus 4 --memory 4096 \
        --curve-secret "$d/keys/w$i.key_secret" --allow "$d/allow" || bail "worker w$i did not start"
done
netns_spawn 3 "$d/fake-worker.log" "$peer" worker "tcp://$(netns_addr 3):$FLEET_PORT" \
    --cert "$d/keys/w3.key_secret" --seconds 300
fake_pid=$NETNS_PID
wait_tcp "$(netns_addr 3)" 10 "$FLEET_PORT" || bail "the fake worker does not listen: $(cat "$d/fake-worker.log")"
fleet_hosts "$d/hosts" "1:w1:${pub[1]}" "2:w2:${pub[2]}" "3:fake:${pub[3]}"

cat >"$d/g.yaml" <<EOF
kernels:
  - path: $FIXTURE_KERNEL
schedulers:
  - name: eevdf
  - name: scx_simple
    binary: $FIXTURE_BIN/scx_simple
topologies: [tiny-1llc, tiny-2llc]
scenarios: [steady, pipe_pingpong, futex_pingpong]
duration: 1s
EOF
n=$(cells_of "$d/g.yaml" | wc -l)
[ "$n" -ge 12 ] || bail "ktstr-coord list gives $n cells"

"$KT_COORD" run --workers "$d/hosts" --gauntlet "$d/g.yaml" --results "$d/r" \
    --curve-secret "$d/keys/coord.key_secret" --progress plain >"$d/coord.out" 2>"$d/coord.err" &
cpid=$!
NETNS_PIDS+=("$cpid")
run=$(wait_run_id "$d/r" 20) || { FLEET_FAILED_EARLY=1; bail "no run folder after 20 s"; }
wait_running_on "$d/r" "$run" w1 30 >/dev/null || echo "# note: w1 ran nothing in the first 30 s"

# Garbage to w1 while it runs the real run's cells.
timeout 120 "$peer" coordinator "tcp://$(netns_addr 1):$FLEET_PORT" --cert "$d/keys/garbage.key_secret" \
    --server-key "${pub[1]}" >"$d/garbage-to-w1.out" 2>&1
rc=$?
t_garbage=$(now_ms)
sed 's/^/# /' "$d/garbage-to-w1.out"
tap_check "w1 still answers a well-formed OPEN after the garbage (rc=$rc)" test "$rc" -eq 0
errors=$(grep -c ': ERROR 4[0-9][0-9] ' "$d/garbage-to-w1.out")
tap_check "w1 answered each malformed message with a 4xx ERROR ($errors of 11)" test "$errors" -ge 11
logged=$(grep -ciE 'bad message.*peer=|peer=.*bad message' "$d/worker-w1.log")
tap_check "w1 logged a line naming the peer for each ($logged)" test "$logged" -ge 10

# Bytes that are not ZMTP at all.
head -c 65536 /dev/urandom >"$d/noise"
timeout 5 bash -c "cat '$d/noise' >/dev/tcp/$(netns_addr 2)/$FLEET_PORT" 2>/dev/null
printf 'GET / HTTP/1.0\r\n\r\n' | timeout 5 bash -c "cat >/dev/tcp/$(netns_addr 2)/$FLEET_PORT" 2>/dev/null
sleep 0.5
tap_check "w2 survives raw bytes on its port" kill -0 "${FLEET_WPID[2]}"

for ((k = 0; k < 1200; k++)); do
    kill -0 "$cpid" 2>/dev/null || break
    sleep 0.1
done
if kill -0 "$cpid" 2>/dev/null; then
    kill -9 "$cpid"
    rc=124
else
    wait "$cpid"
    rc=$?
fi
tap_check "the run completes with every cell passed despite the fake worker (rc=$rc)" test "$rc" -eq 0
check_exactly_once "$d/r" "$run" "$n" garbage
fake_cells=$(dbw "$d/r" "SELECT count(*) FROM attempts WHERE run_id = '$run' AND worker = 'fake'")
tap_check "nothing was assigned to the fake worker ($fake_cells)" test "$fake_cells" = 0
answered=$(grep -c '^received' "$d/fake-worker.log")
tap_check "the coordinator did talk to the fake worker ($answered messages answered with garbage)" \
    test "$answered" -ge 1
tap_check "the coordinator logged the fake worker's garbage, naming it" \
    grep -qiE "fake.*(cannot read|bad|garbage|malformed|not understood|invalid)|(cannot read|bad|garbage|malformed|not understood|invalid).*fake" \
    "$d/coord.out" "$d/coord.err"
grep -iE "fake" "$d/coord.out" "$d/coord.err" | head -n 3 | sed 's/^/# /'
tap_check "w1 and w2 are still up" kill -0 "${FLEET_WPID[1]}" "${FLEET_WPID[2]}"
w1_cells=$(dbw "$d/r" "SELECT count(*) FROM results WHERE run_id = '$run' AND worker = 'w1'
    AND stale = 0 AND received_ms > $t_garbage")
tap_check "w1 kept running the run's cells after the garbage ($w1_cells accepted since)" \
    test "$w1_cells" -ge 1
kill "$fake_pid" 2>/dev/null

tap_done
