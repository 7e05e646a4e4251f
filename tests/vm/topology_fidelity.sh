# The guest sees the topology that was asked for: CPUs, LLC groups, SMT
# siblings and NUMA nodes read from its sysfs.
source "$(dirname "$0")/lib.sh"
need_fixture
for t in tiny-2llc:1n2l2c1t smt-2llc:1n2l2c2t numa2-4llc:2n4l4c1t; do
    preset=${t%%:*}; label=${t##*:}
    run_cell "topo_$preset" --kernel "$KERNEL" --topology "$preset" --scenario steady_llc --duration 2
    expect "$preset: exit status 0" eq "$RC" 0
    expect "$preset: guest sees $label" eq "$(field .observed_topology.label)" "$label"
    expect "$preset: one cgroup per LLC" eq "$(field '.cgroups | length')" "$(field .observed_topology.llcs)"
    expect "$preset: isolation checked" contains "$(field '[.checks[].name] | join(",")')" cpuset_isolation
done
finish
