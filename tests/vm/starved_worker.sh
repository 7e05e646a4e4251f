# A worker stopped before it starts (SIGSTOP) must fail not_starved, and one
# stopped mid-run must fail max_gap: the checks can fail for real.
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
finish
