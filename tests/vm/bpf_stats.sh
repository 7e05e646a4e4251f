# Scheduler cost: ktstr-init lists scx_simple's struct_ops callbacks with
# their run counts and run times over the workload (bpf_progs, bpf_stats);
# the bpf_callback_ns check passes a generous bound and fails a 1 ns one,
# naming a program; under EEVDF there is no struct_ops program and the same
# 1 ns bound does not fail.
source "$(dirname "$0")/lib.sh"
need_fixture

scenario() {  # scenario FILE BOUND: steady with checks.bpf_callback_ns
    cat > "$1" <<EOF
name: steady_bpf
description: "steady, with a bound on the scheduler's mean ns per callback call"
duration: 3s
checks:
  bpf_callback_ns: $2
cgroups:
  - {name: cg_0, cpuset: all, workers_per_cpu: 0.5, work: spin}
  - {name: cg_1, cpuset: all, workers_per_cpu: 0.5, work: spin}
EOF
}
scenario "$TMP/generous.yaml" 100000000
scenario "$TMP/one_ns.yaml" 1

run_cell simple_generous --kernel "$KERNEL" --topology tiny-2llc --scenario "$TMP/generous.yaml" \
    --scheduler "$BIN/scx_simple" --duration 3
expect "scx_simple, 100 ms bound: exit status 0" eq "$RC" 0
expect "scx_simple, 100 ms bound: verdict pass" eq "$(field .verdict)" pass
expect "stats measured" eq "$(field .bpf_stats.measured)" true
expect "stats turned on by BPF_ENABLE_STATS or the sysctl" \
    contains "bpf_enable_stats sysctl" "$(field .bpf_stats.stats_by)"
expect "simple_enqueue listed, called, with a cost" eq \
    "$(field '[.bpf_progs[] | select(.name == "simple_enqueue" and .type == "struct_ops" and .run_cnt > 0 and .ns_per_call > 0)] | length')" 1
expect "simple_dispatch listed, called, with a cost" eq \
    "$(field '[.bpf_progs[] | select(.name == "simple_dispatch" and .run_cnt > 0 and .ns_per_call > 0 and .run_time_ns > 0)] | length')" 1
expect "every struct_ops program is scx_simple's" eq \
    "$(field '[.bpf_progs[] | select(.type == "struct_ops") | .name | startswith("simple_")] | all')" true
expect "verified instructions recorded" eq \
    "$(field '[.bpf_progs[] | select(.verified_insns > 0)] | length > 0')" true
expect "struct_ops sum: calls and ns per call" eq \
    "$(field '.bpf_stats.struct_ops_calls > 0 and .bpf_stats.ns_per_call > 0 and .bpf_stats.struct_ops_progs >= 2')" true
expect "the check ran and passed per called callback" eq \
    "$(field '[.checks[] | select(.name == "bpf_callback_ns")] | (length > 0 and all(.passed))')" true
echo "# scx_simple under $(field .accel): $(field '[.bpf_progs[] | select(.run_cnt > 0) | "\(.name) \(.ns_per_call | floor) ns x \(.run_cnt)"] | join(", ")'); struct_ops mean $(field '.bpf_stats.ns_per_call | floor') ns per call"

run_cell simple_one_ns --kernel "$KERNEL" --topology tiny-2llc --scenario "$TMP/one_ns.yaml" \
    --scheduler "$BIN/scx_simple" --duration 3
expect "scx_simple, 1 ns bound: exit status 1" eq "$RC" 1
expect "scx_simple, 1 ns bound: verdict fail" eq "$(field .verdict)" fail
expect "the reason names the check and a program" contains "$(field .reason)" "bpf_callback_ns: program 'simple_"
expect "every called callback failed the bound" eq \
    "$(field '[.checks[] | select(.name == "bpf_callback_ns")] | (length > 0 and all(.passed == false) and all(.threshold == 1))')" true

run_cell eevdf_one_ns --kernel "$KERNEL" --topology tiny-2llc --scenario "$TMP/one_ns.yaml" \
    --duration 3
expect "EEVDF, 1 ns bound: exit status 0" eq "$RC" 0
expect "EEVDF, 1 ns bound: verdict pass" eq "$(field .verdict)" pass
expect "EEVDF: stats measured" eq "$(field .bpf_stats.measured)" true
expect "EEVDF: no struct_ops program" eq "$(field '.bpf_stats.struct_ops_progs')" 0
expect "EEVDF: none listed either" eq "$(field '[.bpf_progs[] | select(.type == "struct_ops")] | length')" 0
expect "EEVDF: the check says why it passed" contains \
    "$(field '[.checks[] | select(.name == "bpf_callback_ns") | .detail] | join(";")')" \
    "no struct_ops program is loaded"
finish
