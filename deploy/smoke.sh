#!/usr/bin/env bash
# The smoke set: a few cells on this machine through ktstr-worker run-cell,
# one verdict line each and a summary. Exit 0 only when every cell passed.
# Kernel: $KTSTR_KERNEL, else the sched_ext test kernel in ../shared/kernels
# when present (with its example schedulers), else Debian's cloud kernel.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
worker=${KTSTR_WORKER:-$here/build/worker/ktstr-worker}
out=${KTSTR_RESULTS:-$here/results/smoke-$(date +%Y%m%d-%H%M%S)}
fixture=$here/../shared/kernels/sched-ext-6.12.117
[ -x "$worker" ] || { echo "smoke: $worker not built; run deploy/setup.sh first" >&2; exit 2; }

kernel=${KTSTR_KERNEL:-}
bindir=""
if [ -z "$kernel" ] && [ -f "$fixture/bzImage" ]; then
    kernel=$fixture/bzImage
    bindir=$fixture/bin
fi
if [ -z "$kernel" ]; then
    kernel=$("$here/deploy/fetch-debian-kernel.sh") || { echo "smoke: no kernel" >&2; exit 2; }
fi
mkdir -p "$out"
echo "smoke: kernel '$kernel', results in '$out'"

cells=(
    "--topology tiny-2llc --scenario steady"
    "--topology tiny-2llc --scenario steady_llc"
    "--topology tiny-1llc --scenario pipe_pingpong"
)
if [ -n "$bindir" ]; then
    cells+=("--topology tiny-2llc --scenario steady --scheduler $bindir/scx_simple")
    cells+=("--topology tiny-2llc --scenario futex_pingpong --scheduler $bindir/scx_simple")
fi

pass=0; other=0
for c in "${cells[@]}"; do
    # shellcheck disable=SC2086
    "$worker" run-cell --kernel "$kernel" $c --duration 3 --out "$out"
    rc=$?
    if [ $rc -eq 0 ]; then pass=$((pass + 1)); else other=$((other + 1)); fi
done
echo "smoke: $pass passed, $other not passed; sidecars in $out"
[ $other -eq 0 ]
