# Helpers for the fleet tests: worker hosts as network namespaces on this
# machine, each joined to the root namespace by its own veth pair
# (point-to-point, /32 both sides), so that a test can cut one worker's link
# without touching the others. Addresses come from 198.51.100.0/24 (TEST-NET-2,
# a documentation range): the root side is 198.51.100.1 on every pair, worker
# i is 198.51.100.(10+i). Nothing is routed anywhere else: traffic stays on
# loopback and these pairs.
#
# Source it, then:
#   netns_require                  exit 77 (with the reason) unless root with `ip netns`
#   netns_setup N                  namespaces 1..N (takes a machine-wide lock first)
#   netns_name I / netns_addr I / netns_veth I
#   netns_exec I CMD...            run CMD inside namespace I
#   netns_spawn I LOG CMD...       start CMD in namespace I in the background;
#                                  sets NETNS_PID (killed at exit)
#   netns_link_down I / netns_link_up I
#   at_exit 'shell code'           run at exit (before the namespaces go)
#   tap_ok/tap_fail/tap_check/tap_done  TAP lines and the exit status
# Everything made here (namespaces, veths, processes spawned) is removed by an
# EXIT trap, also when the test fails or is interrupted.

NETNS_PREFIX=ktstr-t$$
NETNS_VETH_PREFIX=ktv$$
NETNS_ROOT_ADDR=198.51.100.1
NETNS_LOCK=${KT_NETNS_LOCK:-/run/lock/ktstr-netns.lock}
NETNS_COUNT=0
NETNS_BLACKHOLE=0
NETNS_PIDS=()
NETNS_AT_EXIT=()
NETNS_TAP_N=0
NETNS_TAP_FAILED=0

netns_require() {
    if [ "$(id -u)" -ne 0 ]; then
        echo "# SKIP: network namespaces need root (running as uid $(id -u))"
        exit 77
    fi
    if ! command -v ip >/dev/null; then
        echo "# SKIP: 'ip' (iproute2) is not installed"
        exit 77
    fi
    # Probe: some containers forbid creating namespaces even to root.
    local probe=${NETNS_PREFIX}-probe
    if ! ip netns add "$probe" 2>/dev/null; then
        echo "# SKIP: 'ip netns add' is not permitted here"
        exit 77
    fi
    ip netns del "$probe" 2>/dev/null
    return 0
}

netns_name() { echo "${NETNS_PREFIX}-$1"; }
netns_addr() { echo "198.51.100.$((10 + $1))"; }
netns_veth() { echo "${NETNS_VETH_PREFIX}-$1"; }

at_exit() { NETNS_AT_EXIT+=("$1"); }

netns_cleanup() {
    local rc=$? i p hook
    trap - EXIT INT TERM
    for hook in "${NETNS_AT_EXIT[@]}"; do
        eval "$hook" || true
    done
    for p in "${NETNS_PIDS[@]}"; do
        kill -9 "$p" 2>/dev/null
    done
    for ((i = 1; i <= NETNS_COUNT; i++)); do
        # Only processes inside our own namespaces: those we started there.
        for p in $(ip netns pids "$(netns_name "$i")" 2>/dev/null); do
            kill -9 "$p" 2>/dev/null
        done
    done
    wait 2>/dev/null
    for ((i = 1; i <= NETNS_COUNT; i++)); do
        ip link del "$(netns_veth "$i")" 2>/dev/null
        ip netns del "$(netns_name "$i")" 2>/dev/null
    done
    NETNS_COUNT=0
    if [ "${NETNS_BLACKHOLE:-0}" = 1 ]; then
        ip route del blackhole 198.51.100.0/24 2>/dev/null
        NETNS_BLACKHOLE=0
    fi
    return "$rc"
}
trap netns_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Another test (or a bench) using the same addresses at the same time would
# fight over the routes: one holder at a time, machine-wide.
netns_lock() {
    mkdir -p "$(dirname "$NETNS_LOCK")"
    exec {NETNS_LOCK_FD}>"$NETNS_LOCK"
    if ! flock -w "${KT_NETNS_LOCK_WAIT:-600}" "$NETNS_LOCK_FD"; then
        echo "Bail out! could not take '$NETNS_LOCK' within ${KT_NETNS_LOCK_WAIT:-600} s"
        exit 1
    fi
}

netns_setup() {
    local n=$1 i ns veth addr
    if [ "$n" -lt 1 ] || [ "$n" -gt 200 ]; then
        echo "Bail out! netns_setup: $n namespaces (1..200)"
        exit 1
    fi
    netns_lock
    # A safety net: whatever happens to the per-worker routes (a cut link
    # removes its route), packets for this range are dropped here and never
    # follow the default route off the machine.
    if [ -z "$(ip route show 198.51.100.0/24 2>/dev/null)" ]; then
        ip route add blackhole 198.51.100.0/24 || {
            echo "Bail out! cannot add the blackhole route for 198.51.100.0/24"
            exit 1
        }
        NETNS_BLACKHOLE=1
    elif ! ip route show 198.51.100.0/24 | grep -q '^blackhole'; then
        echo "Bail out! this machine already routes 198.51.100.0/24: $(ip route show 198.51.100.0/24)"
        exit 1
    fi
    # Leftovers of a test that was SIGKILLed (its trap never ran) would hold
    # our addresses: remove veths on 198.51.100.1 whose owner is gone.
    netns_sweep_stale
    for ((i = 1; i <= n; i++)); do
        ns=$(netns_name "$i")
        veth=$(netns_veth "$i")
        addr=$(netns_addr "$i")
        NETNS_COUNT=$i
        if ! ip netns add "$ns" ||
            ! ip link add "$veth" type veth peer name eth0 netns "$ns" ||
            ! ip addr add "$NETNS_ROOT_ADDR/32" peer "$addr/32" dev "$veth" ||
            ! ip link set "$veth" up ||
            ! ip -n "$ns" link set lo up ||
            ! ip -n "$ns" addr add "$addr/32" peer "$NETNS_ROOT_ADDR/32" dev eth0 ||
            ! ip -n "$ns" link set eth0 up; then
            echo "Bail out! cannot set up namespace $ns ($addr over $veth)"
            exit 1
        fi
    done
    # Wait until every pair carries traffic (DAD does not apply to IPv4, but
    # the link takes a moment to come up).
    for ((i = 1; i <= n; i++)); do
        netns_wait_link "$i" 5 || {
            echo "Bail out! link to $(netns_name "$i") did not come up"
            exit 1
        }
    done
}

netns_sweep_stale() {
    local dev pid ns
    for dev in $(ip -o link show type veth 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1); do
        case $dev in
        ktv[0-9]*-[0-9]*) ;;
        *) continue ;;
        esac
        pid=${dev#ktv}
        pid=${pid%%-*}
        [ -d "/proc/$pid" ] && continue
        ip link del "$dev" 2>/dev/null
    done
    for ns in $(ip netns list 2>/dev/null | awk '{print $1}'); do
        case $ns in
        ktstr-t[0-9]*-[0-9]*) ;;
        *) continue ;;
        esac
        pid=${ns#ktstr-t}
        pid=${pid%%-*}
        [ -d "/proc/$pid" ] && continue
        ip netns del "$ns" 2>/dev/null
    done
}

netns_wait_link() {
    local i=$1 secs=$2 k state
    for ((k = 0; k < secs * 10; k++)); do
        state=$(ip -n "$(netns_name "$i")" -o link show eth0 2>/dev/null)
        case $state in *LOWER_UP*) return 0 ;; esac
        sleep 0.1
    done
    return 1
}

netns_exec() {
    local i=$1
    shift
    ip netns exec "$(netns_name "$i")" "$@"
}

# `ip netns exec` execs the command, so $! is the command itself: a SIGKILL
# to NETNS_PID reaches it.
netns_spawn() {
    local i=$1 log=$2
    shift 2
    ip netns exec "$(netns_name "$i")" "$@" >"$log" 2>&1 &
    NETNS_PID=$!
    NETNS_PIDS+=("$NETNS_PID")
}

# A cut link: the root side goes down, packets vanish without a reset (the
# blackhole route catches what the root namespace sends), as when a cable is
# pulled; TCP connections stay open and resume when the link comes back with
# its route.
netns_link_down() { ip link set "$(netns_veth "$1")" down; }
netns_link_up() {
    ip link set "$(netns_veth "$1")" up
    netns_wait_link "$1" 5
}

# Waits up to $2 seconds for something to accept TCP connections at $1:$3.
wait_tcp() {
    local host=$1 secs=$2 port=$3 k
    for ((k = 0; k < secs * 10; k++)); do
        if timeout 1 bash -c "exec 3<>/dev/tcp/$host/$port" 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

# Waits up to $1 seconds for the command $2... to succeed.
wait_until() {
    local secs=$1 k
    shift
    for ((k = 0; k < secs * 10; k++)); do
        "$@" && return 0
        sleep 0.1
    done
    return 1
}

tap_ok() {
    NETNS_TAP_N=$((NETNS_TAP_N + 1))
    echo "ok $NETNS_TAP_N - $1"
}
tap_fail() {
    NETNS_TAP_N=$((NETNS_TAP_N + 1))
    NETNS_TAP_FAILED=$((NETNS_TAP_FAILED + 1))
    echo "not ok $NETNS_TAP_N - $1"
}
# tap_check DESCRIPTION COMMAND...: ok when the command succeeds.
tap_check() {
    local what=$1
    shift
    if "$@"; then tap_ok "$what"; else tap_fail "$what"; fi
}
tap_done() {
    echo "1..$NETNS_TAP_N"
    [ "$NETNS_TAP_FAILED" -eq 0 ] && exit 0
    echo "# $NETNS_TAP_FAILED of $NETNS_TAP_N checks failed"
    exit 1
}
