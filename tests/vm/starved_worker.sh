# A worker stopped before it starts (SIGSTOP) must fail not_starved, and one
# stopped mid-run must fail max_gap; a cgroup whose workers get unequal CPU
# must fail fairness_spread; bounds no run can meet fail wake_p99 and
# work_rate: the checks can fail for real.
source "$(dirname "$0")/lib.sh"
need_fixture
cat > "$TMP/starve.yaml" <<'YAML'
name: starve_one
duration: 3s
cgroups:
  - name: cg_0
    workers: 2
    work: spin
faults:
  - {cgroup: cg_0, worker: 0, at: 0ms}
YAML
run_cell starve --kernel "$KERNEL" --topology tiny-1llc --scenario "$TMP/starve.yaml"
expect "exit status 1" eq "$RC" 1
expect "verdict fail" eq "$(field .verdict)" fail
expect "not_starved failed" contains "$(field '[.failed_check_list[].name] | join(",")')" not_starved
expect "reason names it" contains "$(field .reason)" not_starved

cat > "$TMP/gap.yaml" <<'YAML'
name: stop_mid_run
duration: 4s
checks:
  max_gap: 1000ms
  fairness_spread: false
cgroups:
  - name: cg_0
    workers: 2
    work: spin
faults:
  - {cgroup: cg_0, worker: 1, at: 1000ms}
YAML
run_cell gap --kernel "$KERNEL" --topology tiny-1llc --scenario "$TMP/gap.yaml"
expect "exit status 1" eq "$RC" 1
expect "max_gap failed" contains "$(field '[.failed_check_list[].name] | join(",")')" max_gap

# Four spinners pinned one per CPU, and three more pinned to CPU 0 in
# another cgroup: the first cgroup's worker on CPU 0 gets a quarter of it,
# the others a whole CPU each.
cat > "$TMP/spread.yaml" <<'YAML'
name: unequal_shares
duration: 3s
cgroups:
  - {name: pinned, workers: 4, affinity: single}
  - {name: crowd, workers: 3, affinity: "exact:0"}
YAML
run_cell spread --kernel "$KERNEL" --topology tiny-2llc --scenario "$TMP/spread.yaml"
expect "unequal shares: fairness_spread failed in 'pinned'" contains \
    "$(field '[.checks[] | select(.passed == false) | .name + "@" + .cgroup] | join(",")')" \
    "fairness_spread@pinned"
expect "...over 40 points" test "$(field '[.checks[] | select(.name == "fairness_spread" and .cgroup == "pinned") | .measured | floor] | .[0]')" -gt 40

cat > "$TMP/bounds.yaml" <<'YAML'
name: impossible_bounds
duration: 2s
checks: {wake_p99: 1us, work_rate: 1000000000000}
cgroups:
  - {name: pp, work: futex-pingpong, workers: 2}
YAML
run_cell bounds --kernel "$KERNEL" --topology tiny-2llc --scenario "$TMP/bounds.yaml"
expect "a 1 us p99 wake bound fails wake_p99" contains \
    "$(field '[.failed_check_list[].name] | join(",")')" wake_p99
expect "an impossible work rate fails work_rate" contains \
    "$(field '[.failed_check_list[].name] | join(",")')" work_rate
finish
