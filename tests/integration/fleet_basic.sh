#!/usr/bin/env bash
# fleet_basic: `ktstr-coord run` against two `ktstr-worker serve` processes
# on loopback ports (null executor: no VM boots) over a gauntlet of 96 cells
# and 2 kernels. Every cell must end exactly once: one accepted result per
# cell in the run store and no stale one, one sidecar per cell on disk (in
# its kernel's folder, with the run id, attempt and worker), run.json
# complete, the JUnit file valid with one testcase per cell, exit status 0,
# and both workers used. Also: `ktstr-coord list` prints the issue's 28
# cells, and a run that fails to parse says FILE:LINE and runs nothing.
# Env: KT_COORD, KT_WORKER, KT_SRC (set by meson).
set -uo pipefail

if [ -z "${KT_COORD:-}" ] || [ ! -x "${KT_COORD:-}" ]; then
    echo "SKIP: ktstr-coord is not built (KT_COORD unset)"
    exit 77
fi
: "${KT_WORKER:?KT_WORKER must name ktstr-worker}"
: "${KT_SRC:?KT_SRC must name the source tree}"
for tool in jq sqlite3 ss; do
    if ! command -v "$tool" >/dev/null; then
        echo "SKIP: '$tool' is not installed (deploy/setup.sh installs it)"
        exit 77
    fi
done

fixtures=$KT_SRC/tests/fixtures/gauntlets
tmp=$(mktemp -d /tmp/kt-fleet-basic.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do
        kill -INT "$p" 2>/dev/null
    done
    for p in "${pids[@]}"; do
        wait "$p" 2>/dev/null
    done
    rm -rf "$tmp"
}
trap cleanup EXIT

fails=0
check() { # check DESCRIPTION COMMAND...
    local what=$1
    shift
    if "$@"; then
        echo "ok: $what"
    else
        echo "FAIL: $what"
        fails=$((fails + 1))
    fi
}

# A free loopback port (nothing listening on it now).
free_port() {
    local p
    for _ in $(seq 1 50); do
        p=$((20000 + RANDOM % 30000))
        if ! ss -Hltn "sport = :$p" | grep -q .; then
            echo "$p"
            return 0
        fi
    done
    return 1
}

start_worker() { # start_worker ID PORT
    local id=$1 port=$2
    "$KT_WORKER" serve --bind "tcp://127.0.0.1:$port" --id "$id" --executor null \
        --vcpus 8 --memory 4096 --cache "$tmp/cache-$id" --heartbeat 200 --lost-after 2000 \
        >"$tmp/$id.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 1 100); do
        if ss -Hltn "sport = :$port" | grep -q .; then
            return 0
        fi
        sleep 0.05
    done
    echo "worker $id did not listen on $port:"
    cat "$tmp/$id.log"
    return 1
}

# list: the issue's example is 28 cells, nothing run.
n=$("$KT_COORD" list --gauntlet "$fixtures/example.yaml" 2>/dev/null | wc -l)
check "list prints the example's 28 cells (got $n)" test "$n" -eq 28

# A gauntlet error is FILE:LINE and nothing runs.
bad=$tmp/bad.yaml
printf 'kernels:\n  - path: %s/fake/bzImage\nschedulers:\n  - name: eevdf\ntopologies: [tiny-9llc]\nscenarios: [steady]\n' \
    "$fixtures" >"$bad"
"$KT_COORD" run --gauntlet "$bad" --results "$tmp/bad-results" --executor null \
    >"$tmp/bad.out" 2>&1
rc=$?
check "a bad gauntlet exits 2 (got $rc)" test "$rc" -eq 2
check "its error names the file and line" grep -q "bad.yaml:5" "$tmp/bad.out"
check "nothing ran for it" test ! -e "$tmp/bad-results/ktstr.db"

p1=$(free_port) && p2=$(free_port) || { echo "no free port"; exit 1; }
while [ "$p2" = "$p1" ]; do p2=$(free_port); done
start_worker w1 "$p1" || exit 1
start_worker w2 "$p2" || exit 1
cat >"$tmp/hosts.txt" <<EOF
# two local workers
127.0.0.1:$p1 name=w1
127.0.0.1:$p2   name=w2   # trailing comment
EOF

gauntlet=$fixtures/two_kernels.yaml
want=$("$KT_COORD" list --gauntlet "$gauntlet" 2>/dev/null | sort)
nwant=$(echo "$want" | wc -l)
check "the gauntlet has at least 12 cells ($nwant)" test "$nwant" -ge 12

start=$(date +%s.%N)
"$KT_COORD" run --workers "$tmp/hosts.txt" --gauntlet "$gauntlet" --results "$tmp/res" \
    --junit "$tmp/junit.xml" --heartbeat 200 --lost-after 2000 --progress plain \
    >"$tmp/run.out" 2>&1
rc=$?
end=$(date +%s.%N)
echo "run took $(echo "$end - $start" | bc 2>/dev/null || echo '?') s"
check "run exits 0 (got $rc)" test "$rc" -eq 0
if [ "$rc" -ne 0 ]; then
    tail -n 40 "$tmp/run.out"
fi

run_id=$(sed -n 's/^run \([^ :]*\): .*/\1/p' "$tmp/run.out" | head -n1)
rdir=$tmp/res/$run_id
check "run id printed ($run_id)" test -n "$run_id"
check "run.json present" test -s "$rdir/run.json"
if [ -s "$rdir/run.json" ]; then
    check "run.json: status done" test "$(jq -r .status "$rdir/run.json")" = done
    check "run.json: $nwant cells" test "$(jq '.cells | length' "$rdir/run.json")" -eq "$nwant"
    check "run.json: summary all pass" \
        test "$(jq '.summary.pass' "$rdir/run.json")" -eq "$nwant"
    check "run.json: 2 kernels" test "$(jq '.kernels | length' "$rdir/run.json")" -eq 2
    check "run.json: both workers up and used" \
        test "$(jq '[.workers[] | select(.done > 0)] | length' "$rdir/run.json")" -eq 2
    check "run.json: versions" test "$(jq -r .versions.protocol "$rdir/run.json")" = 2
    got=$(jq -r '.cells[].name' "$rdir/run.json" | sort)
    check "run.json names are exactly the listed cells" test "$got" = "$want"
fi

# Sidecars: one per cell, in its kernel's folder, each cell once.
nside=$(find "$rdir" -name '*.ktstr.json' | wc -l)
check "one sidecar per cell ($nside of $nwant)" test "$nside" -eq "$nwant"
nkdir=$(find "$rdir" -mindepth 1 -maxdepth 1 -type d | wc -l)
check "two kernel folders ($nkdir)" test "$nkdir" -eq 2
# The fixture kernels live in this git tree: LABEL-COMMIT, the commit as the
# sidecars carry it (a tree outside git would give LABEL-nocommit).
commit=$(find "$rdir" -path '*/older-*' -name '*.ktstr.json' | head -n1 |
    xargs jq -r '.kernel_commit // "nocommit"')
check "kernel folders are LABEL-COMMIT (older-$commit)" test -d "$rdir/older-$commit"
check "every sidecar of a kernel folder carries its commit" \
    test "$(find "$rdir/older-$commit" -name '*.ktstr.json' -exec jq -r '.kernel_commit // "nocommit"' {} + |
        sort -u)" = "$commit"
ids=$(find "$rdir" -name '*.ktstr.json' -exec jq -r .cell_id {} + | sort)
check "sidecar cell ids unique" test "$(echo "$ids" | sort -u | wc -l)" -eq "$nwant"
bad_side=$(find "$rdir" -name '*.ktstr.json' -exec jq -r --arg r "$run_id" \
    'select(.run_id != $r or .attempt != 1 or .verdict != "pass" or .executor != "null"
            or (.worker != "w1" and .worker != "w2") or (.timings.queue_ms | type) != "number"
            or (.cell_name | startswith("gauntlet/")) != true) | .cell_name' {} + | wc -l)
check "every sidecar: run id, attempt 1, pass, null executor, worker, queue time" \
    test "$bad_side" -eq 0

# The store: exactly one accepted result per cell, no stale one.
db=$tmp/res/ktstr.db
q() { sqlite3 -batch -noheader "$db" "$1"; }
check "store: $nwant cells" test "$(q "SELECT COUNT(*) FROM cells WHERE run_id='$run_id'")" -eq "$nwant"
check "store: one accepted result per cell" \
    test "$(q "SELECT COUNT(*) FROM results WHERE run_id='$run_id' AND stale=0")" -eq "$nwant"
check "store: accepted results cover every cell" \
    test "$(q "SELECT COUNT(DISTINCT cell_id) FROM results WHERE run_id='$run_id' AND stale=0")" -eq "$nwant"
check "store: no stale result" \
    test "$(q "SELECT COUNT(*) FROM results WHERE run_id='$run_id' AND stale=1")" -eq 0
check "store: every cell has its result" \
    test "$(q "SELECT COUNT(*) FROM cells WHERE run_id='$run_id' AND result_id IS NULL")" -eq 0
check "store: one attempt per cell" \
    test "$(q "SELECT COUNT(*) FROM attempts WHERE run_id='$run_id'")" -eq "$nwant"
check "store: run done" test "$(q "SELECT status FROM runs WHERE run_id='$run_id'")" = done
check "store: sidecar paths recorded and present" \
    test "$(q "SELECT sidecar_path FROM verdicts WHERE run_id='$run_id'" |
        while read -r f; do [ -s "$f" ] && echo x; done | wc -l)" -eq "$nwant"

# JUnit: well-formed, one testcase per cell, nothing failed.
if command -v xmllint >/dev/null; then
    check "junit is well-formed XML" xmllint --noout "$tmp/junit.xml"
elif command -v python3 >/dev/null; then
    check "junit is well-formed XML" python3 -c 'import sys, xml.dom.minidom as m; m.parse(sys.argv[1])' "$tmp/junit.xml"
fi
check "junit: $nwant testcases" test "$(grep -c '<testcase ' "$tmp/junit.xml")" -eq "$nwant"
check "junit: no failure or error" test "$(grep -c '<failure\|<error' "$tmp/junit.xml")" -eq 0
check "junit: totals" grep -q "tests=\"$nwant\" failures=\"0\" errors=\"0\"" "$tmp/junit.xml"

# Both workers did some of it.
for w in w1 w2; do
    n=$(find "$rdir" -name '*.ktstr.json' -exec jq -r .worker {} + | grep -c "^$w\$")
    check "worker $w ran cells ($n)" test "$n" -gt 0
done
check "summary table printed" grep -q "^total: $nwant pass, 0 fail, 0 error" "$tmp/run.out"

if [ "$fails" -ne 0 ]; then
    echo "--- run output (tail)"
    tail -n 30 "$tmp/run.out"
    echo "--- worker logs (tail)"
    tail -n 10 "$tmp/w1.log" "$tmp/w2.log"
    echo "fleet_basic: $fails check(s) failed"
    exit 1
fi
echo "fleet_basic: all checks passed"
