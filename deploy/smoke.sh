#!/usr/bin/env bash
# The smoke set: a small gauntlet run on this machine through ktstr-coord
# (its embedded worker, the same code a fleet worker runs), with a line per
# cell, a summary table, sidecars, run.json and a JUnit file.
# Kernel: $KTSTR_KERNEL, else the sched_ext test kernel in ../shared/kernels
# when present (deploy/smoke.yaml: EEVDF and scx_simple, 8 cells), else
# Debian's cloud kernel fetched with apt (EEVDF only, 7 cells).
# Extra arguments go to `ktstr-coord run` (e.g. --accel tcg, --progress plain).
# Exit status: ktstr-coord's (0 all passed, 1 a cell failed, 2 an error).
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
coord=${KTSTR_COORD:-$here/build/coordinator/ktstr-coord}
results=${KTSTR_RESULTS:-$here/results}
fixture=$here/../shared/kernels/sched-ext-6.12.117
[ -x "$coord" ] || { echo "smoke: $coord not built; run deploy/setup.sh first" >&2; exit 2; }

kernel=${KTSTR_KERNEL:-}
gauntlet=""
if [ -z "$kernel" ] && [ -f "$fixture/bzImage" ] && [ -x "$fixture/bin/scx_simple" ]; then
    gauntlet=$here/deploy/smoke.yaml
else
    if [ -z "$kernel" ]; then
        kernel=$("$here/deploy/fetch-debian-kernel.sh") || { echo "smoke: no kernel" >&2; exit 2; }
    fi
    [ -r "$kernel" ] || { echo "smoke: cannot read kernel '$kernel'" >&2; exit 2; }
    gauntlet=$(mktemp /tmp/ktstr-smoke-XXXXXX.yaml)
    trap 'rm -f "$gauntlet"' EXIT
    cat >"$gauntlet" <<EOF
# smoke.sh: a kernel without the sched_ext test schedulers: EEVDF only.
kernels:
  - path: "$kernel"
schedulers:
  - name: eevdf
topologies: [tiny-1llc, tiny-2llc]
scenarios: [steady, steady_llc, pipe_pingpong, cpuset_apply]
duration: 3s
EOF
fi
mkdir -p "$results" || exit 2
echo "smoke: gauntlet '$gauntlet', results in '$results'"
"$coord" run --gauntlet "$gauntlet" --results "$results" --junit "$results/smoke.junit.xml" "$@"
rc=$?
echo "smoke: exit status $rc (0 all passed, 1 a cell failed, 2 an error); JUnit in $results/smoke.junit.xml"
exit $rc
