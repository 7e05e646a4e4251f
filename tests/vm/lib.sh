# Shared helpers for the vm suite: fixture lookup, running cells, assertions.
# Sourced by each test; the test exits 0 pass, 1 fail, 77 skip.
set -uo pipefail
: "${KT_SRC:?}" "${KT_BUILD:?}" "${KT_WORKER:?}"
FIXTURE=${KT_FIXTURE_KERNEL_DIR:-$KT_SRC/../shared/kernels/sched-ext-6.12.117}
KERNEL=$FIXTURE/bzImage
BIN=$FIXTURE/bin
TMP=$(mktemp -d /tmp/ktstr-vmtest.XXXXXX)
export KTSTR_IMAGE_DIR=$TMP/shm
mkdir -p "$KTSTR_IMAGE_DIR"
trap 'rm -rf "$TMP"' EXIT
failures=0

need_fixture() {
    if [ ! -f "$KERNEL" ]; then
        echo "SKIP: the sched_ext test kernel is not at $KERNEL"
        exit 77
    fi
}

# run_cell NAME ARGS...: runs a cell into $TMP/NAME, sets RC and SIDECAR.
run_cell() {
    local name=$1; shift
    mkdir -p "$TMP/$name"
    "$KT_WORKER" run-cell --out "$TMP/$name" "$@" > "$TMP/$name/stdout" 2> "$TMP/$name/stderr"
    RC=$?
    SIDECAR=$(ls "$TMP/$name"/*.ktstr.json 2>/dev/null | head -n1)
    echo "[$name] rc=$RC $(cat "$TMP/$name/stdout")"
    if [ -z "$SIDECAR" ]; then
        echo "[$name] no sidecar written; stderr:"; tail -n 20 "$TMP/$name/stderr"
    fi
}

# field EXPR: jq over the last sidecar.
field() { jq -r "$1" "$SIDECAR" 2>/dev/null; }

expect() {  # expect DESCRIPTION COMMAND...
    local what=$1; shift
    if "$@"; then
        echo "ok - $what"
    else
        echo "not ok - $what"
        failures=$((failures + 1))
        if [ -n "${SIDECAR:-}" ] && [ -f "$SIDECAR" ]; then
            jq '{verdict, reason, phase, accel, failed_check_list, console_tail}' "$SIDECAR" | head -n 40
        fi
    fi
}

eq() { [ "$1" = "$2" ] || { echo "   expected '$2', got '$1'"; return 1; }; }
contains() { case "$1" in *"$2"*) return 0 ;; *) echo "   '$1' lacks '$2'"; return 1 ;; esac; }

finish() {
    if [ "$failures" -gt 0 ]; then
        echo "$failures check(s) failed"
        exit 1
    fi
    exit 0
}
