# The run store keeps each cell's figures, and `ktstr-coord compare` and
# `history` read them back: two runs of one gauntlet (EEVDF and scx_simple,
# the fixture kernel's own build of it (from_kernel), steady, on the fixture
# kernel through the embedded worker), the second
# with EEVDF's fairness_spread bound tightened to 0.01 % in the gauntlet, so
# its cell must fail. compare names that regression and only that one,
# exits 1, and compares real figures; a run against itself exits 0;
# history shows the change and follows a figure across the runs.
source "$(dirname "$0")/lib.sh"
need_fixture
COORD=${KT_COORD:-$KT_BUILD/coordinator/ktstr-coord}
if [ ! -x "$COORD" ]; then
    echo "SKIP: needs $COORD"
    exit 77
fi
g() {  # g FILE [EEVDF_CHECKS]
    {
        echo "kernels: [\"$KERNEL\"]"
        echo "schedulers:"
        echo "  - name: eevdf"
        [ -n "${2:-}" ] && echo "    checks: $2"
        echo "  - name: scx_simple"
        echo "    from_kernel: scx_simple" # the fixture's own build: $BIN/scx_simple
        echo "topologies: [tiny-2llc]"
        echo "scenarios: [steady]"
        echo "duration: 2s"
    } > "$1"
}
g "$TMP/a.yaml"
g "$TMP/b.yaml" "{fairness_spread: 0.01}"
R=$TMP/results
"$COORD" run --gauntlet "$TMP/a.yaml" --results "$R" --progress plain > "$TMP/a.out" 2>&1
expect "run A: every cell passed" eq "$?" 0
runa=$(ls -d "$R"/*/ | head -n1)
expect "run A: scx_simple is the kernel's own build (from_kernel)" \
    eq "$(jq -r '.schedulers[] | select(.name == "scx_simple") | "\(.kernel) \(.path)"' \
          "$runa/run.json" 2> /dev/null)" "6.12.117 $(realpath "$BIN/scx_simple")"
expect "run A: sched_ext ran it" eq "$(jq -r .scheduler_state.ops \
    "$runa"/*/gauntlet__steady__tiny-2llc__scx_simple__*.ktstr.json 2> /dev/null)" simple
"$COORD" run --gauntlet "$TMP/b.yaml" --results "$R" --progress plain > "$TMP/b.out" 2>&1
expect "run B: a cell failed" eq "$?" 1
runs=($(sqlite3 "$R/ktstr.db" "SELECT run_id FROM runs ORDER BY started_ms"))
expect "two runs in the store" eq "${#runs[@]}" 2
A=${runs[0]:-none} B=${runs[1]:-none}

expect "a metrics row for each of the 4 results" \
    eq "$(sqlite3 "$R/ktstr.db" "SELECT count(*) FROM metrics m JOIN results r ON r.id = m.result_id
                                  WHERE json_extract(m.json, '$.\"cgroup.cg_0.work_units\"') > 0")" 4

"$COORD" compare --results "$R" > "$TMP/cmp.txt" 2> "$TMP/cmp.err"
expect "compare (latest~1 -> latest): exit 1 on a regression" eq "$?" 1
cat "$TMP/cmp.txt" | head -n 20
expect "compare names run A and run B" grep -q "A: run $A" "$TMP/cmp.txt"
expect "compare lists EEVDF's cell as a regression, with the failing check" \
    grep -Eq "^  gauntlet/steady/tiny-2llc/eevdf  pass -> fail  .*fairness_spread" "$TMP/cmp.txt"
expect "scx_simple's cell is no regression" \
    eq "$(grep -c "^  gauntlet/steady/tiny-2llc/scx_simple  pass -> " "$TMP/cmp.txt")" 0

"$COORD" compare "$A" "$B" --results "$R" --json > "$TMP/cmp.json" 2> "$TMP/cmp.err"
expect "compare --json A B: exit 1" eq "$?" 1
j() { jq -r "$1" "$TMP/cmp.json" 2> /dev/null; }
expect "one regression" eq "$(j .counts.regression)" 1
expect "one test the same" eq "$(j .counts.same)" 1
expect "matched by test (one kernel each)" eq "$(j .matched_by)" test
expect "the regression is EEVDF's steady cell" \
    eq "$(j '.cells[] | select(.kind == "regression") | .key')" gauntlet/steady/tiny-2llc/eevdf
expect "real figures compared (more than 20)" test "$(j .figures_compared)" -gt 20

# Each run leaves report.html: run B's marks EEVDF's square F, and every
# link in it (sidecars, console logs, run.json) names a file of the run.
html=$R/$B/report.html
expect "run B: report.html written" test -s "$html"
expect "report.html: EEVDF's cell is a fail square" \
    grep -q 'class="fail"><a class="v" href="[^"]*steady__tiny-2llc__eevdf[^"]*" [^>]*>F</a>' "$html"
missing=0
for h in $(grep -o 'href="[^"]*"' "$html" | sed 's/^href="//; s/"$//'); do
    [ -f "$R/$B/$h" ] || { echo "   missing: $h"; missing=$((missing + 1)); }
done
expect "report.html: every link names a file of the run" eq "$missing" 0

"$COORD" compare "$A" "$A" --results "$R" > "$TMP/same.txt" 2>&1
expect "a run against itself: exit 0" eq "$?" 0
expect "a run against itself: 2 the same" grep -q "2 same" "$TMP/same.txt"

"$COORD" history 'gauntlet/steady/*/eevdf/*' --results "$R" --metric cgroup.cg_0.work_units \
    > "$TMP/hist.txt" 2>&1
expect "history: exit 0" eq "$?" 0
cat "$TMP/hist.txt"
expect "history: one row per run" eq "$(grep -c "^  20" "$TMP/hist.txt")" 2
expect "history: the change and its run" grep -q "pass -> fail in run $B" "$TMP/hist.txt"
"$COORD" history 'gauntlet/steady/*/eevdf/*' --results "$R" --metric cgroup.cg_0.work_units \
    --json > "$TMP/hist.json" 2>&1
expect "history --json: the figure in both runs" \
    eq "$(jq '[.[0].runs[].figures["cgroup.cg_0.work_units"] | select(. > 0)] | length' \
          "$TMP/hist.json")" 2
"$COORD" history --runs --results "$R" > "$TMP/runs.txt" 2>&1
expect "history --runs: run B with its fail" grep -q "^$B .* 1 pass, 1 fail, 0 error" "$TMP/runs.txt"

# --budget times each cell by its earlier runs: the total list prints is the
# sum of the cells' median times in the store (one sample for EEVDF's cell
# of a.yaml, whose id run B's tightened checks changed; two for scx_simple's).
"$COORD" list --gauntlet "$TMP/a.yaml" --results "$R" --budget 3600 > /dev/null 2> "$TMP/list.err"
cat "$TMP/list.err"
expect "list --budget: both cells timed by their earlier runs" \
    grep -q "2 of 2 cells timed by their earlier runs" "$TMP/list.err"
want=$(sqlite3 "$R/ktstr.db" "SELECT round(sum(t) / 1000.0) FROM (SELECT avg(json_extract(m.json,
        '$.\"timing.total_ms\"')) AS t FROM results r JOIN metrics m ON m.result_id = r.id
        WHERE r.cell_id IN (SELECT cell_id FROM cells WHERE run_id = '$A') GROUP BY r.cell_id)")
got=$(sed -n 's/.*(estimated \([0-9]*\) s of.*/\1/p' "$TMP/list.err")
expect "list --budget: the total is the stored times' ($want s, got ${got:-none})" \
    test "${got:-0}" -ge "$(( ${want%.*} - 1 ))" -a "${got:-0}" -le "$(( ${want%.*} + 1 ))"
"$COORD" list --gauntlet "$TMP/a.yaml" --results "$TMP/none" --budget 3600 > /dev/null \
    2> "$TMP/list2.err"
expect "list --budget without a store: estimates" eq "$(grep -c "timed by" "$TMP/list2.err")" 0

"$COORD" compare nosuch --results "$R" > /dev/null 2> "$TMP/bad.err"
expect "an unknown run: exit 2" eq "$?" 2
expect "an unknown run is named" grep -q "no run 'nosuch'" "$TMP/bad.err"
"$COORD" history --results "$TMP/none" > /dev/null 2> "$TMP/bad.err"
expect "no store: exit 2" eq "$?" 2
expect "no store: says where it looked" grep -q "$TMP/none/ktstr.db" "$TMP/bad.err"
finish
