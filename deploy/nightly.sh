#!/usr/bin/env bash
# A nightly sweep: one `ktstr-coord run` of a gauntlet (over the kernels it
# names, or the --kernel specs given here, e.g. a release range of a kernel
# repository), then `ktstr-coord compare` of this run against the previous
# one in the same results folder, kept beside the run as compare.txt and
# compare.json. Run it from cron or deploy/ktstr-nightly.timer.
#
# usage: deploy/nightly.sh --gauntlet FILE [--results DIR] [--fetch]
#                          [any other `ktstr-coord run` option: --workers FILE,
#                           --kernel-repo DIR --kernel SPEC..., --budget SECS,
#                           --curve-secret FILE, --junit FILE...]
#   --fetch   `git fetch --tags` the --kernel-repo first (new release tags
#             then enter an A..B range whose end is a version not yet tagged)
#
# Exit status: 0 no regression against the previous run (cells that failed
# before may still fail), 1 a regression (a cell that passed the previous
# night failed or errored), 2 the run itself ended in error or could not
# start, or the comparison failed. The first night has nothing to compare
# and exits with the run's status.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
coord=${KTSTR_COORD:-$here/build/coordinator/ktstr-coord}
[ -x "$coord" ] || { echo "nightly: $coord not built; run deploy/setup.sh first" >&2; exit 2; }

results=results
fetch=0
repo=""
args=()
while [ $# -gt 0 ]; do
    case $1 in
    --results) [ $# -ge 2 ] || { echo "nightly: --results needs a folder" >&2; exit 2; }
        results=$2; shift 2 ;;
    --results=*) results=${1#--results=}; shift ;;
    --fetch) fetch=1; shift ;;
    --kernel-repo) [ $# -ge 2 ] || { echo "nightly: --kernel-repo needs a folder" >&2; exit 2; }
        repo=$2; args+=("$1" "$2"); shift 2 ;;
    *) args+=("$1"); shift ;;
    esac
done
if [ "$fetch" = 1 ]; then
    [ -n "$repo" ] || { echo "nightly: --fetch needs --kernel-repo DIR" >&2; exit 2; }
    git -C "$repo" fetch --tags --quiet ||
        echo "nightly: warning: git fetch --tags in '$repo' failed; sweeping the tags it has" >&2
fi

mkdir -p "$results" || exit 2
runs_in() {  # how many runs the store of $results holds (0 without one)
    [ -f "$results/ktstr.db" ] || { echo 0; return; }
    "$coord" history --runs --results "$results" --json | jq length
}
before=$(runs_in) || exit 2
"$coord" run --results "$results" --progress plain "${args[@]}"
rc=$?
after=$(runs_in) || exit 2
if [ "$after" -le "$before" ]; then
    echo "nightly: no run was made (ktstr-coord run: status $rc)" >&2
    exit 2
fi
if [ "$rc" -ge 2 ]; then
    echo "nightly: the run ended with status $rc (error); no comparison" >&2
    exit 2
fi
if [ "$after" -lt 2 ]; then
    echo "nightly: first run in '$results': nothing to compare yet"
    exit "$rc"
fi
latest=$("$coord" history --runs --results "$results" --json | jq -r '.[-1].run_id')
"$coord" compare latest~1 latest --results "$results" --json > "$results/$latest/compare.json"
"$coord" compare latest~1 latest --results "$results" | tee "$results/$latest/compare.txt"
cmp=${PIPESTATUS[0]}
case $cmp in
0) echo "nightly: run $latest: no regression against the previous run" ;;
1) echo "nightly: run $latest: REGRESSIONS against the previous run (see $results/$latest/compare.txt)" ;;
*) echo "nightly: comparing run $latest failed (status $cmp)" >&2; exit 2 ;;
esac
exit "$cmp"
