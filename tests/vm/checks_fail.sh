# ktstr's benchmarking checks fail for real: a real workload under the
# fixture kernel breaks each one (migration_ratio, throughput_cv,
# iteration_rate, wake_cv) and the verdict names it; the same cells with the
# bound relaxed pass. Two vCPUs (1,2,1,1: two LLCs of one CPU), 2-3 s each.
source "$(dirname "$0")/lib.sh"
need_fixture
TOPO=1,2,1,1

failed_names() { field '[.failed_check_list[].name] | join(",")'; }

# affinity-churn moves to the other CPU after every unit: about one
# migration per pass, far over 0.05.
scenario() {  # scenario FILE NAME WORK CHECKS [FAULTS]
    cat > "$1" <<YAML
name: $2
duration: 3s
checks: {$4}
cgroups:
  - {name: cg_0, workers: 2, work: $3}
${5:-}
YAML
}

scenario "$TMP/mig.yaml" churn_migrates affinity-churn "migration_ratio: 0.05"
run_cell mig --kernel "$KERNEL" --topology $TOPO --scenario "$TMP/mig.yaml"
expect "migration_ratio: verdict fail" eq "$(field .verdict)" fail
expect "migration_ratio: reason names it" contains "$(field .reason)" migration_ratio
expect "migration_ratio: only it failed" eq "$(failed_names)" migration_ratio
expect "migration_ratio: from the scenario" eq "$(field .thresholds.migration_ratio.source)" scenario
expect "iterations reported" test "$(field '.cgroups[0].worker_stats[0].iterations')" -gt 0

scenario "$TMP/mig_ok.yaml" churn_relaxed affinity-churn "migration_ratio: 2"
run_cell mig_ok --kernel "$KERNEL" --topology $TOPO --scenario "$TMP/mig_ok.yaml"
expect "migration_ratio relaxed: verdict pass" eq "$(field .verdict)" pass
expect "migration_ratio relaxed: judged and passed" eq \
    "$(field '[.checks[] | select(.name == "migration_ratio") | .passed] | all')" true

# Worker 1 is stopped (SIGSTOP) after 1 s of 3: its rate is a third of
# worker 0's, a CV of about 0.5. The gap and spread it also breaks are off.
scenario "$TMP/tput.yaml" stopped_rate spin \
    "throughput_cv: 0.1, max_gap: false, fairness_spread: false" \
    "faults: [{cgroup: cg_0, worker: 1, at: 1000ms}]"
run_cell tput --kernel "$KERNEL" --topology $TOPO --scenario "$TMP/tput.yaml"
expect "throughput_cv: verdict fail" eq "$(field .verdict)" fail
expect "throughput_cv: reason names it" contains "$(field .reason)" throughput_cv
expect "throughput_cv: only it failed" eq "$(failed_names)" throughput_cv

# The same cell with the check switched off passes.
scenario "$TMP/tput_off.yaml" stopped_rate_off spin \
    "throughput_cv: false, max_gap: false, fairness_spread: false" \
    "faults: [{cgroup: cg_0, worker: 1, at: 1000ms}]"
run_cell tput_off --kernel "$KERNEL" --topology $TOPO --scenario "$TMP/tput_off.yaml"
expect "throughput_cv off: verdict pass" eq "$(field .verdict)" pass
expect "throughput_cv off: not judged" eq \
    "$(field '[.checks[] | select(.name == "throughput_cv")] | length')" 0

# No spinner passes its loop 1e11 times a second.
scenario "$TMP/iter.yaml" impossible_rate spin "iteration_rate: 1e11"
run_cell iter --kernel "$KERNEL" --topology $TOPO --scenario "$TMP/iter.yaml"
expect "iteration_rate: verdict fail" eq "$(field .verdict)" fail
expect "iteration_rate: reason names it" contains "$(field .reason)" iteration_rate

# Futex ping-pong wake latencies vary: no CV is as low as 1e-6.
scenario "$TMP/wake.yaml" wake_jitter futex-ping-pong "wake_cv: 0.000001"
run_cell wake --kernel "$KERNEL" --topology $TOPO --scenario "$TMP/wake.yaml"
expect "wake_cv: verdict fail" eq "$(field .verdict)" fail
expect "wake_cv: reason names it" contains "$(field .reason)" wake_cv
expect "wake_cv: wakeups measured" test "$(field '.cgroups[0].worker_stats[0].wake_count')" -gt 1
finish
