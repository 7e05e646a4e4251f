# EEVDF (no scheduler) runs the steady scenario on tiny-2llc and passes,
# with real telemetry for every worker.
source "$(dirname "$0")/lib.sh"
need_fixture
run_cell steady --kernel "$KERNEL" --topology tiny-2llc --scenario steady --duration 3
expect "exit status 0" eq "$RC" 0
expect "verdict pass" eq "$(field .verdict)" pass
expect "scheduler is eevdf" eq "$(field .scheduler)" eevdf
expect "topology label" eq "$(field .topology)" 1n2l2c1t
expect "guest saw the topology" eq "$(field .observed_topology.label)" 1n2l2c1t
expect "two cgroups" eq "$(field '.cgroups | length')" 2
expect "every worker did work" eq "$(field '[.cgroups[].worker_stats[] | select(.work_units > 0)] | length')" 4
expect "cpu time measured" eq "$(field '[.cgroups[].worker_stats[] | select(.cpu_time_ms > 100)] | length')" 4
expect "checks ran" eq "$(field '[.checks[] | .name] | unique | sort | join(",")')" "fairness_spread,max_gap,not_starved"
expect "accel is tcg or kvm" contains "tcg kvm" "$(field .accel)"
expect "timings present" eq "$(field '.timings.boot_ms > 0 and .timings.run_ms > 0')" true
expect "kernel version" eq "$(field .kernel_version)" 6.12.117
expect "console log kept" test -s "$(field .console_log)"
finish
