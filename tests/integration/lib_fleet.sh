# Helpers for the fleet tests (fleet_netns, fleet_faults, fleet_curve,
# fleet_resume, fleet_garbage): the tools, worker daemons in namespaces,
# CURVE certificates, hosts files and gauntlets, and questions to the run
# store. Sources lib_netns.sh (namespaces, cleanup, TAP helpers).
# Env: KT_BUILD, KT_SRC, KT_WORKER, KT_COORD (set by tests/integration/meson.build).

. "$(dirname "${BASH_SOURCE[0]}")/lib_netns.sh"

: "${KT_BUILD:?KT_BUILD must point at the build dir}"
: "${KT_SRC:?KT_SRC must point at the source dir}"
KT_WORKER=${KT_WORKER:-$KT_BUILD/worker/ktstr-worker}
FIXTURE_DIR=${KT_FIXTURE_KERNEL_DIR:-$KT_SRC/../shared/kernels/sched-ext-6.12.117}
FIXTURE_KERNEL=$FIXTURE_DIR/bzImage
FIXTURE_BIN=$FIXTURE_DIR/bin
FLEET_PORT=7461
FLEET_WPID=()

skip() {
    echo "# SKIP: $*"
    exit 77
}
bail() {
    echo "Bail out! $*"
    exit 1
}

# The parts of the fleet these tests drive must exist; while they are being
# written a test says which one is missing and skips, it never passes.
fleet_require() {
    if [ -z "${KT_COORD:-}" ]; then
        skip "ktstr-coord is not built yet (KT_COORD is unset: coordinator/main.c missing)"
    fi
    [ -x "$KT_COORD" ] || skip "ktstr-coord not found at '$KT_COORD'"
    [ -x "$KT_WORKER" ] || bail "ktstr-worker not found at '$KT_WORKER'"
    "$KT_WORKER" serve --help >/dev/null 2>&1 ||
        skip "'ktstr-worker serve' does not exist yet (worker/builtin-serve.c)"
    "$KT_COORD" run --help >/dev/null 2>&1 ||
        skip "'ktstr-coord run' does not exist yet (coordinator/builtin-run.c)"
    command -v sqlite3 >/dev/null || skip "the sqlite3 command is not installed (apt-get install sqlite3)"
    command -v jq >/dev/null || skip "jq is not installed"
    [ -r "$FIXTURE_KERNEL" ] || skip "the fixture kernel is not at '$FIXTURE_KERNEL'"
    netns_require
    FLEET_DIR=$(mktemp -d /tmp/kt-fleet.XXXXXX)
    # Kept on failure when KT_KEEP=1, to read the logs.
    at_exit 'fleet_dump_on_failure; [ "${KT_KEEP:-0}" = 1 ] && echo "# kept $FLEET_DIR" || rm -rf "$FLEET_DIR"'
}

# On failure, the tail of every log this test made, so CI output says why.
fleet_dump_on_failure() {
    [ "$NETNS_TAP_FAILED" -gt 0 ] || [ "${FLEET_FAILED_EARLY:-0}" = 1 ] || return 0
    local f
    for f in "$FLEET_DIR"/*.log "$FLEET_DIR"/*.out "$FLEET_DIR"/*.err; do
        [ -s "$f" ] || continue
        echo "# --- tail of $f"
        tail -n 25 "$f" | sed 's/^/#   /'
    done
}

# fleet_keygen NAME: a certificate in $FLEET_DIR/keys; prints the public key.
# Z85 keys may contain '#'; while the hosts parser takes any '#' for the
# start of a comment (reported), keys with one are drawn again so the tests
# exercise the fleet rather than trip over that. KT_KEYS_WITH_HASH=1 keeps
# the first key whatever it holds.
fleet_keygen() {
    local key k
    for ((k = 0; k < 50; k++)); do
        key=$("$KT_COORD" keygen "$FLEET_DIR/keys" --name "$1" --force 2>>"$FLEET_DIR/keygen.log") ||
            return 1
        case $key in
        *'#'*) [ "${KT_KEYS_WITH_HASH:-0}" = 1 ] && break ;;
        *) break ;;
        esac
    done
    echo "$key"
}

# fleet_worker_start I ID ARGS...: ktstr-worker serve in namespace I, bound
# to its address; waits until it listens. FLEET_WPID[I] is its pid, its log
# $FLEET_DIR/worker-ID.log (appended: a restarted worker keeps its history).
fleet_worker_start() {
    local i=$1 id=$2 addr
    shift 2
    addr=$(netns_addr "$i")
    mkdir -p "$FLEET_DIR/cache-$id"
    ip netns exec "$(netns_name "$i")" "$KT_WORKER" serve --bind "tcp://$addr:$FLEET_PORT" \
        --id "$id" --cache "$FLEET_DIR/cache-$id" "$@" >>"$FLEET_DIR/worker-$id.log" 2>&1 &
    FLEET_WPID[$i]=$!
    NETNS_PIDS+=("$!")
    if ! wait_tcp "$addr" 15 "$FLEET_PORT"; then
        echo "# worker $id did not listen on $addr:$FLEET_PORT; its log:"
        tail -n 20 "$FLEET_DIR/worker-$id.log" | sed 's/^/#   /'
        return 1
    fi
}

# fleet_worker_kill I [SIGNAL]: signal worker I (default KILL) and reap it.
fleet_worker_kill() {
    local pid=${FLEET_WPID[$1]}
    kill "-${2:-KILL}" "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    return 0
}

# fleet_hosts FILE I:ID:KEY...: a hosts file naming workers at their
# namespace addresses (KEY may be empty).
fleet_hosts() {
    local file=$1 spec i id key
    shift
    echo "# written by $(basename "$0")" >"$file"
    for spec in "$@"; do
        # Not `IFS=: read`: bash drops a trailing ':' from the last field,
        # and a Z85 key may end in ':'.
        i=${spec%%:*}
        spec=${spec#*:}
        id=${spec%%:*}
        key=
        [ "$id" != "$spec" ] && key=${spec#*:}
        printf '%s:%s name=%s%s\n' "$(netns_addr "$i")" "$FLEET_PORT" "$id" \
            "${key:+ key=$key}" >>"$file"
    done
}

# The results folder of the run the coordinator made in results dir $1: the
# only folder with a run.json.
run_dir_of() {
    local d
    for d in "$1"/*/; do
        [ -f "$d/run.json" ] && { echo "${d%/}"; return 0; }
    done
    return 1
}
run_id_of() {
    local d
    d=$(run_dir_of "$1") || return 1
    basename "$d"
}

# db RESULTS SQL: a read-only query of the run store.
db() { sqlite3 -readonly -batch -noheader "$1/ktstr.db" "$2"; }

# Sidecars on disk for a run, one path a line.
sidecars_of() { find "$1" -name '*.ktstr.json' -type f | sort; }

# The cell names `ktstr-coord list` gives for a gauntlet, sorted.
cells_of() { "$KT_COORD" list --gauntlet "$1" 2>/dev/null | sort; }

# sqlite3 against the live store: the coordinator writes it (WAL) while we read.
dbw() { sqlite3 -readonly -batch -noheader -cmd ".timeout 5000" "$1/ktstr.db" "$2" 2>/dev/null; }

# Attempts of run $2 running now on worker $3 (results dir $1).
running_on() {
    dbw "$1" "SELECT count(*) FROM attempts WHERE run_id = '$2' AND worker = '$3' AND state = 'running'"
}
# Waits up to $4 s until worker $3 runs a cell of run $2; prints that cell's id.
wait_running_on() {
    local k id
    for ((k = 0; k < $4 * 10; k++)); do
        id=$(dbw "$1" "SELECT cell_id FROM attempts WHERE run_id = '$2' AND worker = '$3' AND state = 'running' LIMIT 1")
        [ -n "$id" ] && { echo "$id"; return 0; }
        sleep 0.1
    done
    return 1
}
# Waits up to $2 s for the coordinator writing results dir $1 to make its run
# folder; prints the run id.
wait_run_id() {
    local k id
    for ((k = 0; k < $2 * 10; k++)); do
        id=$(run_id_of "$1") && [ -f "$1/ktstr.db" ] && { echo "$id"; return 0; }
        sleep 0.1
    done
    return 1
}
now_ms() { date +%s%3N; }

# check_exactly_once RESULTS RUN_ID NCELLS LABEL: the store holds NCELLS cells
# for the run, each with exactly one accepted (not stale) result, the one
# the cell points at, and one sidecar per cell on disk.
check_exactly_once() {
    local r=$1 run=$2 n=$3 what=$4 got bad files names
    got=$(dbw "$r" "SELECT count(*) FROM cells WHERE run_id = '$run'")
    tap_check "$what: the store holds the run's $n cells ($got)" test "$got" = "$n"
    bad=$(dbw "$r" "SELECT count(*) FROM cells c WHERE c.run_id = '$run' AND
        (SELECT count(*) FROM results x WHERE x.run_id = c.run_id AND x.cell_id = c.cell_id
         AND x.stale = 0) != 1")
    tap_check "$what: every cell has exactly one accepted result (cells without: $bad)" test "$bad" = 0
    bad=$(dbw "$r" "SELECT count(*) FROM cells c LEFT JOIN results x ON x.id = c.result_id
        WHERE c.run_id = '$run' AND (x.id IS NULL OR x.stale != 0 OR x.cell_id != c.cell_id)")
    tap_check "$what: each cell's verdict is its accepted result ($bad wrong)" test "$bad" = 0
    files=$(sidecars_of "$r/$run" | wc -l)
    names=$(sidecars_of "$r/$run" | xargs -r -n 64 jq -r '.cell_id' 2>/dev/null | sort -u | wc -l)
    tap_check "$what: $n sidecars on disk, one per cell ($files files, $names cells)" \
        test "$files" = "$n" -a "$names" = "$n"
}
