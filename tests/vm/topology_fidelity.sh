# The guest sees the topology that was asked for: CPUs, LLC groups, SMT
# siblings and NUMA nodes read from its sysfs.
source "$(dirname "$0")/lib.sh"
need_fixture
# steady_llc without the fairness spread: smt-2llc and numa2-4llc run 8 and 16
# vCPUs on this test's host, and under TCG on a small host the spread then
# measures the host's contention between vCPU threads, not the guest's
# scheduler. Isolation, starvation and gaps are still judged.
cat > "$TMP/steady_llc.yaml" <<'YAML'
name: steady_llc_topology
duration: 2s
constraints: {min_llcs: 2}
checks:
  fairness_spread: false
cgroups:
  - name: llc
    cpuset: per-llc
    workers_per_cpu: 1
    work: spin
YAML
for t in tiny-2llc:1n2l2c1t smt-2llc:1n2l2c2t numa2-4llc:2n4l4c1t; do
    preset=${t%%:*}; label=${t##*:}
    run_cell "topo_$preset" --kernel "$KERNEL" --topology "$preset" --scenario "$TMP/steady_llc.yaml"
    expect "$preset: exit status 0" eq "$RC" 0
    expect "$preset: guest sees $label" eq "$(field .observed_topology.label)" "$label"
    expect "$preset: one cgroup per LLC" eq "$(field '.cgroups | length')" "$(field .observed_topology.llcs)"
    expect "$preset: isolation checked" contains "$(field '[.checks[].name] | join(",")')" cpuset_isolation
done
finish
