#!/bin/bash
# Faults in a fleet of three workers in network namespaces (CURVE, the sleep
# executor: each cell holds its worker's only slot for 2 s, no VM), the
# coordinator outside. Every run must end with every cell accepted exactly
# once: one accepted result per cell in the store, one sidecar per cell.
#   A. SIGKILL a worker while it runs a cell: its cells finish elsewhere as
#      attempt 2, none lost, none doubled.
#   B. Kill a worker mid-cell and start it again at once under the same id
#      (a new process: a new instance): the coordinator opens a new session
#      with it and goes on; its lost cells run again, it takes new ones.
#   C. Cut a worker's link for 10 s while it runs a cell: the coordinator
#      declares it lost after 5 s and requeues its cell; the worker finishes
#      the cell alone and journals the result; when the link is back it
#      re-offers it and the store records it as stale, never counted.
# Env: KT_BUILD, KT_SRC, KT_WORKER, KT_COORD.
set -u
. "$(dirname "$0")/lib_fleet.sh"
fleet_require
netns_setup 3

d=$FLEET_DIR
HOLD_MS=2000
fleet_keygen coord >/dev/null || bail "ktstr-coord keygen failed: $(cat "$d/keygen.log")"
mkdir -p "$d/allow"
cp "$d/keys/coord.key" "$d/allow/"
declare -A pub
for i in 1 2 3; do
    pub[$i]=$(fleet_keygen "w$i") || bail "keygen w$i failed"
done
start_worker() { # I
    fleet_worker_start "$1" "w$1" --executor "sleep:$HOLD_MS" --vcpus 4 --memory 4096 \
        --curve-secret "$d/keys/w$1.key_secret" --allow "$d/allow"
}
for i in 1 2 3; do
    start_worker "$i" || bail "worker w$i did not start"
done
fleet_hosts "$d/hosts" "1:w1:${pub[1]}" "2:w2:${pub[2]}" "3:w3:${pub[3]}"

# 28 cells of 4 vCPUs: each worker (4 vCPUs) runs one at a time.
gauntlet() { # FILE REPEAT
    cat >"$1" <<EOF
kernels:
  - path: $FIXTURE_KERNEL
schedulers:
  - name: eevdf
  - name: scx_simple
    binary: $FIXTURE_BIN/scx_simple
topologies: [tiny-1llc, tiny-2llc, "1,4,1,1"]
scenarios: [steady, steady_llc, pipe_pingpong, futex_pingpong, oversubscribed]
duration: 1s
repeat: $2
EOF
}
gauntlet "$d/g.yaml" 1
gauntlet "$d/g2.yaml" 2
n1=$(cells_of "$d/g.yaml" | wc -l)
n2=$(cells_of "$d/g2.yaml" | wc -l)
[ "$n1" -ge 12 ] && [ "$n2" -gt "$n1" ] || bail "unexpected cell counts: $n1, $n2"
echo "# $n1 cells (runs A and B), $n2 cells (run C), $HOLD_MS ms each"

coord_start() { # NAME GAUNTLET
    "$KT_COORD" run --workers "$d/hosts" --gauntlet "$2" --results "$d/r-$1" \
        --curve-secret "$d/keys/coord.key_secret" --progress plain >"$d/coord-$1.out" 2>"$d/coord-$1.err" &
    COORD_PID=$!
    NETNS_PIDS+=("$COORD_PID")
}
coord_wait() { # SECONDS: sets COORD_RC (124 when it had to be killed)
    local k
    for ((k = 0; k < $1 * 10; k++)); do
        kill -0 "$COORD_PID" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$COORD_PID" 2>/dev/null; then
        kill -9 "$COORD_PID"
        wait "$COORD_PID" 2>/dev/null
        COORD_RC=124
    else
        wait "$COORD_PID"
        COORD_RC=$?
    fi
}

# ---- A. SIGKILL a worker mid-cell.
coord_start a "$d/g.yaml"
run=$(wait_run_id "$d/r-a" 20) || { FLEET_FAILED_EARLY=1; bail "run A: no run folder after 20 s"; }
if cell=$(wait_running_on "$d/r-a" "$run" w1 30); then
    sleep 0.5 # into the cell
    t_kill=$(now_ms)
    fleet_worker_kill 1 KILL
    echo "# A: killed w1 (SIGKILL) while it ran cell ${cell:0:12}"
    tap_ok "A: w1 ran a cell when it was killed"
else
    tap_fail "A: w1 never ran a cell within 30 s"
fi
coord_wait 180
tap_check "A: the run completes with every cell passed (rc=$COORD_RC)" test "$COORD_RC" -eq 0
check_exactly_once "$d/r-a" "$run" "$n1" A
lost=$(dbw "$d/r-a" "SELECT count(*) FROM attempts WHERE run_id = '$run' AND worker = 'w1'
    AND state IN ('lost', 'fenced')")
tap_check "A: the store records w1's interrupted attempt(s) as lost ($lost)" test "$lost" -ge 1
bad=$(dbw "$d/r-a" "SELECT count(*) FROM attempts a JOIN cells c USING (run_id, cell_id)
    JOIN results x ON x.id = c.result_id
    WHERE a.run_id = '$run' AND a.worker = 'w1' AND a.state IN ('lost', 'fenced')
    AND (x.worker = 'w1' OR x.attempt <= a.attempt)")
tap_check "A: each of w1's lost cells was accepted later, from another worker, as a later attempt" \
    test "$bad" = 0
late=$(dbw "$d/r-a" "SELECT count(*) FROM results WHERE run_id = '$run' AND worker = 'w1'
    AND received_ms > ${t_kill:-0} + 100")
tap_check "A: nothing from w1 after its death ($late)" test "$late" = 0
tap_check "A: the coordinator said that w1 was lost" \
    grep -qiE "w1.*(lost|silent|gone)|(lost|silent|gone).*w1" "$d/coord-a.out" "$d/coord-a.err"
tap_check "A: w2 and w3 are still up" kill -0 "${FLEET_WPID[2]}" "${FLEET_WPID[3]}"

# ---- B. Restart a worker under the same id, mid-run.
start_worker 1 || bail "w1 did not start again"
coord_start b "$d/g.yaml"
run=$(wait_run_id "$d/r-b" 20) || bail "run B: no run folder"
if cell=$(wait_running_on "$d/r-b" "$run" w2 30); then
    sleep 0.5
    fleet_worker_kill 2 KILL
    t_restart=$(now_ms)
    start_worker 2
    tap_check "B: w2 killed mid-cell and started again under the same id" test $? -eq 0
else
    tap_fail "B: w2 never ran a cell within 30 s"
    t_restart=$(now_ms)
fi
coord_wait 180
tap_check "B: the run completes with every cell passed (rc=$COORD_RC)" test "$COORD_RC" -eq 0
check_exactly_once "$d/r-b" "$run" "$n1" B
ups=$(grep -cE "worker w2 (up|back)" "$d/coord-b.out" "$d/coord-b.err" | awk -F: '{s += $2} END {print s}')
tap_check "B: the coordinator opened a second session with w2 (w2 up $ups times)" test "$ups" -ge 2
after=$(dbw "$d/r-b" "SELECT count(*) FROM results WHERE run_id = '$run' AND worker = 'w2'
    AND stale = 0 AND received_ms > $t_restart")
tap_check "B: the restarted w2 ran cells of the run ($after accepted)" test "$after" -ge 1
lost=$(dbw "$d/r-b" "SELECT count(*) FROM attempts WHERE run_id = '$run' AND worker = 'w2'
    AND state IN ('lost', 'fenced') AND begun_ms < $t_restart")
tap_check "B: the attempt the old w2 ran was given up ($lost lost/fenced)" test "$lost" -ge 1

# ---- C. Cut a worker's link for 10 s.
coord_start c "$d/g2.yaml"
run=$(wait_run_id "$d/r-c" 20) || bail "run C: no run folder"
if cell=$(wait_running_on "$d/r-c" "$run" w3 30); then
    sleep 0.3
    netns_link_down 3
    t_cut=$(now_ms)
    echo "# C: cut w3's link while it ran cell ${cell:0:12}"
    sleep 10
    netns_link_up 3
    echo "# C: link back after $((($(now_ms) - t_cut) / 1000)) s"
    tap_ok "C: w3's link was cut for 10 s mid-cell"
else
    tap_fail "C: w3 never ran a cell within 30 s"
fi
coord_wait 240
tap_check "C: the run completes with every cell passed (rc=$COORD_RC)" test "$COORD_RC" -eq 0
check_exactly_once "$d/r-c" "$run" "$n2" C
requeued=$(dbw "$d/r-c" "SELECT count(*) FROM attempts WHERE run_id = '$run' AND worker = 'w3'
    AND state IN ('lost', 'fenced')")
tap_check "C: w3's cells were requeued when it went silent ($requeued attempts lost)" \
    test "$requeued" -ge 1
stale=$(dbw "$d/r-c" "SELECT count(*) FROM results WHERE run_id = '$run' AND stale != 0")
tap_check "C: w3's late result was recorded as stale ($stale stale)" test "$stale" -ge 1
stale_w3=$(dbw "$d/r-c" "SELECT count(*) FROM results WHERE run_id = '$run' AND stale != 0
    AND worker = 'w3'")
tap_check "C: ...and it came from w3 ($stale_w3)" test "$stale_w3" -ge 1
counted=$(dbw "$d/r-c" "SELECT count(*) FROM results x JOIN cells c ON c.result_id = x.id
    WHERE x.run_id = '$run' AND x.stale != 0")
tap_check "C: no stale result is a cell's verdict ($counted)" test "$counted" = 0
tap_check "C: the coordinator noted the stale result" \
    grep -qi "stale" "$d/coord-c.out" "$d/coord-c.err"
tap_check "C: all three workers are still up" kill -0 "${FLEET_WPID[1]}" "${FLEET_WPID[2]}" "${FLEET_WPID[3]}"

tap_done
