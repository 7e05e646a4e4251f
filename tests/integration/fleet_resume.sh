#!/bin/bash
# SIGKILL the coordinator mid-run, then `ktstr-coord run --resume RUN_ID`:
# the cells that had a verdict are not run again (no new attempt, the same
# accepted result, the same sidecar bytes), the rest finish, every cell ends
# with exactly one accepted result. The results the workers finished while
# no coordinator listened wait in their journals and are taken (or their
# cells rerun) on resume, never counted twice.
# Three CURVE workers in network namespaces, sleep executor (1.5 s a cell).
# Env: KT_BUILD, KT_SRC, KT_WORKER, KT_COORD.
set -u
. "$(dirname "$0")/lib_fleet.sh"
fleet_require
netns_setup 3

d=$FLEET_DIR
fleet_keygen coord >/dev/null || bail "ktstr-coord keygen failed: $(cat "$d/keygen.log")"
mkdir -p "$d/allow"
cp "$d/keys/coord.key" "$d/allow/"
hosts=()
for i in 1 2 3; do
    key=$(fleet_keygen "w$i") || bail "keygen w$i failed"
    fleet_worker_start "$i" "w$i" --executor sleep:1500 --vcpus 4 --memory 4096 \
        --curve-secret "$d/keys/w$i.key_secret" --allow "$d/allow" || bail "worker w$i did not start"
    hosts+=("$i:w$i:$key")
done
fleet_hosts "$d/hosts" "${hosts[@]}"
cat >"$d/g.yaml" <<EOF
kernels:
  - path: $FIXTURE_KERNEL
schedulers:
  - name: eevdf
  - name: scx_simple
    binary: $FIXTURE_BIN/scx_simple
topologies: [tiny-1llc, tiny-2llc, "1,4,1,1"]
scenarios: [steady, steady_llc, pipe_pingpong, futex_pingpong, oversubscribed]
duration: 1s
EOF
n=$(cells_of "$d/g.yaml" | wc -l)
[ "$n" -ge 12 ] || bail "ktstr-coord list gives $n cells"
r=$d/r

"$KT_COORD" run --workers "$d/hosts" --gauntlet "$d/g.yaml" --results "$r" \
    --curve-secret "$d/keys/coord.key_secret" --progress plain >"$d/coord-1.out" 2>"$d/coord-1.err" &
cpid=$!
NETNS_PIDS+=("$cpid")
run=$(wait_run_id "$r" 20) || { FLEET_FAILED_EARLY=1; bail "no run folder after 20 s"; }
done_count() { dbw "$r" "SELECT count(*) FROM cells WHERE run_id = '$run' AND result_id IS NOT NULL"; }
enough_done() { [ "$(done_count)" -ge 8 ]; }
if ! wait_until 60 enough_done; then
    FLEET_FAILED_EARLY=1
    bail "fewer than 8 cells done after 60 s ($(done_count))"
fi
kill -9 "$cpid"
wait "$cpid" 2>/dev/null
t_kill=$(now_ms)

# What was done when the coordinator died: cell id, result id, attempts.
dbw "$r" "SELECT c.cell_id, c.result_id, (SELECT count(*) FROM attempts a WHERE a.run_id = c.run_id
    AND a.cell_id = c.cell_id), x.sidecar_path FROM cells c JOIN results x ON x.id = c.result_id
    WHERE c.run_id = '$run' ORDER BY c.cell_id" >"$d/done-before"
ndone=$(wc -l <"$d/done-before")
dbw "$r" "SELECT cell_id, attempt FROM attempts WHERE run_id = '$run' AND state = 'running'" \
    >"$d/running-before"
running=$(wc -l <"$d/running-before")
echo "# killed the coordinator (SIGKILL) with $ndone of $n cells done, $running attempt(s) running"
tap_check "the coordinator died mid-run ($ndone of $n done)" test "$ndone" -ge 8 -a "$ndone" -lt "$n"
: >"$d/sums-before"
while IFS='|' read -r cell rid att path; do
    [ -f "$path" ] && echo "$cell $(sha256sum <"$path" | cut -c1-64)" >>"$d/sums-before"
done <"$d/done-before"
tap_check "every done cell's sidecar is on disk ($(wc -l <"$d/sums-before") of $ndone)" \
    test "$(wc -l <"$d/sums-before")" -eq "$ndone"

# Let the workers finish what they ran: those results go to their journals.
sleep 3
tap_check "the workers outlive their coordinator" kill -0 "${FLEET_WPID[1]}" "${FLEET_WPID[2]}" "${FLEET_WPID[3]}"

timeout 180 "$KT_COORD" run --resume "$run" --results "$r" --progress plain \
    >"$d/coord-2.out" 2>"$d/coord-2.err"
rc=$?
tap_check "--resume $run completes with every cell passed (rc=$rc)" test "$rc" -eq 0
grep -m1 "resuming" "$d/coord-2.out" | sed 's/^/# /'
check_exactly_once "$r" "$run" "$n" resume

# No done cell was run again: same result row, no attempt after the kill,
# the same sidecar bytes.
rerun=0
changed=0
while IFS='|' read -r cell rid att path; do
    now=$(dbw "$r" "SELECT c.result_id, (SELECT count(*) FROM attempts a WHERE a.run_id = c.run_id
        AND a.cell_id = c.cell_id AND a.begun_ms >= $t_kill) FROM cells c
        WHERE c.run_id = '$run' AND c.cell_id = '$cell'")
    if [ "$now" != "$rid|0" ]; then
        rerun=$((rerun + 1))
        echo "# cell ${cell:0:12}: result $rid before, now result|new attempts = $now"
    fi
done <"$d/done-before"
tap_check "no cell done before the kill was assigned again ($rerun of $ndone were)" test "$rerun" -eq 0
while read -r cell sum; do
    path=$(dbw "$r" "SELECT x.sidecar_path FROM cells c JOIN results x ON x.id = c.result_id
        WHERE c.run_id = '$run' AND c.cell_id = '$cell'")
    [ "$(sha256sum <"$path" | cut -c1-64)" = "$sum" ] || changed=$((changed + 1))
done <"$d/sums-before"
tap_check "their sidecars are unchanged ($changed changed)" test "$changed" -eq 0
# The cells that were running at the kill finished on their workers while no
# coordinator listened: their journaled results are taken on resume.
journaled=0
while IFS='|' read -r cell att; do
    got=$(dbw "$r" "SELECT x.attempt FROM cells c JOIN results x ON x.id = c.result_id
        WHERE c.run_id = '$run' AND c.cell_id = '$cell'")
    [ "$got" = "$att" ] && journaled=$((journaled + 1))
done <"$d/running-before"
tap_check "the $running cell(s) running at the kill were taken from the workers' journals, not rerun ($journaled)" \
    test "$journaled" -eq "$running"
status=$(dbw "$r" "SELECT status || ' ' || resumes FROM runs WHERE run_id = '$run'")
tap_check "the store says the run is done after one resume ($status)" test "$status" = "done 1"
tap_check "run.json says done" test "$(jq -r .status "$r/$run/run.json")" = done
newly=$(grep -cE '^\[ *[0-9]+/ *[0-9]+\] ' "$d/coord-2.out")
tap_check "the resumed coordinator reported only the $((n - ndone)) cells left ($newly)" \
    test "$newly" -eq "$((n - ndone))"

tap_done
