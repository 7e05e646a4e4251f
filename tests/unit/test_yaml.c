/* YAML scenario files: the built-in scenarios written as YAML parse to the
 * same kt_scenario_t, every key lands in its field, and malformed files are
 * refused with the exact file:line:col and message. */
#include <errno.h>
#include <libfyaml.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kt_scenario_yaml.h"

#define S_DIR KT_FIXTURES "/scenarios"

static void s_assert_cgroup_equal(const kt_cgroup_spec_t *a, const kt_cgroup_spec_t *b)
{
    assert_string_equal(a->name, b->name);
    assert_int_equal(a->cpuset.kind, b->cpuset.kind);
    assert_int_equal(a->cpuset.index, b->cpuset.index);
    assert_string_equal(a->cpuset.list, b->cpuset.list);
    assert_int_equal(a->workers, b->workers);
    assert_true(a->workers_per_cpu == b->workers_per_cpu);
    assert_int_equal(a->work, b->work);
    assert_int_equal(a->policy, b->policy);
    assert_int_equal(a->nice, b->nice);
}

static void s_assert_scenario_equal(const kt_scenario_t *a, const kt_scenario_t *b)
{
    assert_string_equal(a->name, b->name);
    assert_string_equal(a->description, b->description);
    assert_int_equal(a->duration_ms, b->duration_ms);
    assert_int_equal(a->memory_mib, b->memory_mib);
    assert_int_equal(a->constraints.min_llcs, b->constraints.min_llcs);
    assert_int_equal(a->constraints.max_llcs, b->constraints.max_llcs);
    assert_int_equal(a->constraints.min_cpus, b->constraints.min_cpus);
    assert_int_equal(a->constraints.max_cpus, b->constraints.max_cpus);
    assert_int_equal(a->constraints.min_numa, b->constraints.min_numa);
    assert_int_equal(a->constraints.max_numa, b->constraints.max_numa);
    assert_int_equal(a->constraints.requires_smt, b->constraints.requires_smt);
    assert_int_equal(a->thresholds.check_starved, b->thresholds.check_starved);
    assert_int_equal(a->thresholds.check_isolation, b->thresholds.check_isolation);
    assert_int_equal(a->thresholds.check_spread, b->thresholds.check_spread);
    assert_true(a->thresholds.max_spread_pct == b->thresholds.max_spread_pct);
    assert_int_equal(a->thresholds.check_gap, b->thresholds.check_gap);
    assert_int_equal(a->thresholds.max_gap_ms, b->thresholds.max_gap_ms);
    assert_int_equal(a->thresholds.max_p99_wake_us, b->thresholds.max_p99_wake_us);
    assert_true(a->thresholds.min_work_rate == b->thresholds.min_work_rate);
    assert_int_equal(a->n_cgroups, b->n_cgroups);
    for (unsigned i = 0; i < a->n_cgroups; i++)
        s_assert_cgroup_equal(&a->cgroups[i], &b->cgroups[i]);
    assert_int_equal(a->n_faults, b->n_faults);
    for (unsigned i = 0; i < a->n_faults; i++) {
        assert_string_equal(a->faults[i].cgroup, b->faults[i].cgroup);
        assert_int_equal(a->faults[i].worker, b->faults[i].worker);
        assert_int_equal(a->faults[i].at_ms, b->faults[i].at_ms);
    }
}

static void test_builtins_match_yaml(void **state)
{
    (void)state;
    unsigned n;
    const kt_scenario_t *builtins = kt_scenario_builtins(&n);
    assert_int_equal(n, 19);
    for (unsigned i = 0; i < n; i++) {
        char path[512], err[512] = "";
        snprintf(path, sizeof(path), "%s/%s.yaml", S_DIR, builtins[i].name);
        kt_scenario_t s;
        int r = kt_scenario_yaml_load(path, &s, err, sizeof(err));
        if (r < 0)
            fail_msg("%s: %s", path, err);
        const kt_scenario_t *b = kt_scenario_builtin_find(s.name);
        assert_non_null(b);
        assert_ptr_equal(b, &builtins[i]);
        s_assert_scenario_equal(&s, b);

        /* And they resolve to the same plan on a topology where they fit. */
        kt_topology_t t;
        assert_int_equal(kt_topology_parse("numa2-4llc", &t), 0);
        kt_plan_t pa, pb;
        char why[256];
        assert_int_equal(kt_scenario_resolve(&s, &t, 0, &pa, why, sizeof(why)), 0);
        assert_int_equal(kt_scenario_resolve(b, &t, 0, &pb, why, sizeof(why)), 0);
        assert_int_equal(pa.n_cgroups, pb.n_cgroups);
        assert_int_equal(kt_plan_total_workers(&pa), kt_plan_total_workers(&pb));
        for (unsigned j = 0; j < pa.n_cgroups; j++) {
            assert_string_equal(pa.cgroups[j].name, pb.cgroups[j].name);
            assert_memory_equal(&pa.cgroups[j].cpus, &pb.cgroups[j].cpus, sizeof(kt_cpumask_t));
        }
    }
}

static void test_full_file(void **state)
{
    (void)state;
    kt_scenario_t s;
    char err[512] = "";
    int r = kt_scenario_yaml_load(S_DIR "/full.yaml", &s, err, sizeof(err));
    if (r < 0)
        fail_msg("%s", err);
    assert_string_equal(s.name, "full.scenario-1");
    assert_string_equal(s.description, "all keys");
    assert_int_equal(s.duration_ms, 1500);
    assert_int_equal(s.memory_mib, 768);
    assert_int_equal(s.constraints.min_llcs, 2);
    assert_int_equal(s.constraints.max_llcs, 8);
    assert_int_equal(s.constraints.min_cpus, 4);
    assert_int_equal(s.constraints.max_cpus, 64);
    assert_int_equal(s.constraints.min_numa, 1);
    assert_int_equal(s.constraints.max_numa, 2);
    assert_true(s.constraints.requires_smt);
    assert_false(s.thresholds.check_starved);
    assert_true(s.thresholds.check_isolation);
    assert_true(s.thresholds.check_spread);
    assert_true(s.thresholds.max_spread_pct == 25.5);
    assert_true(s.thresholds.check_gap);
    assert_int_equal(s.thresholds.max_gap_ms, 3000);
    assert_int_equal(s.thresholds.max_p99_wake_us, 750);
    assert_true(s.thresholds.min_work_rate == 100.0);

    assert_int_equal(s.n_cgroups, 4);
    const kt_cgroup_spec_t *c = s.cgroups;
    assert_string_equal(c[0].name, "per");
    assert_int_equal(c[0].cpuset.kind, KT_CPUSET_PER_LLC);
    assert_int_equal(c[0].workers, 2);
    assert_true(c[0].workers_per_cpu == 0);
    assert_int_equal(c[0].work, KT_WORK_YIELD);
    assert_int_equal(c[0].policy, KT_POLICY_BATCH);
    assert_int_equal(c[0].nice, -5);
    assert_string_equal(c[1].name, "one_llc");
    assert_int_equal(c[1].cpuset.kind, KT_CPUSET_LLC);
    assert_int_equal(c[1].cpuset.index, 1);
    assert_int_equal(c[1].workers, 0);
    assert_true(c[1].workers_per_cpu == 0.25);
    assert_int_equal(c[1].work, KT_WORK_BURSTY);
    assert_int_equal(c[1].policy, KT_POLICY_IDLE);
    assert_int_equal(c[1].nice, 19);
    assert_int_equal(c[2].cpuset.kind, KT_CPUSET_NODE);
    assert_int_equal(c[2].cpuset.index, 0);
    assert_int_equal(c[2].work, KT_WORK_PIPE_PINGPONG);
    assert_int_equal(c[2].policy, KT_POLICY_NORMAL);
    assert_int_equal(c[3].cpuset.kind, KT_CPUSET_LIST);
    assert_string_equal(c[3].cpuset.list, "0-1,3");
    assert_int_equal(c[3].work, KT_WORK_IO_SYNC);

    assert_int_equal(s.n_faults, 2);
    assert_string_equal(s.faults[0].cgroup, "listed");
    assert_int_equal(s.faults[0].worker, 0);
    assert_int_equal(s.faults[0].at_ms, 0);
    assert_string_equal(s.faults[1].cgroup, "per_1");
    assert_int_equal(s.faults[1].worker, 1);
    assert_int_equal(s.faults[1].at_ms, 1000);

    /* The per-llc fault resolves against a topology with that LLC. */
    kt_topology_t t;
    kt_plan_t p;
    char why[256] = "";
    assert_int_equal(kt_topology_parse("smt-2llc", &t), 0);
    r = kt_scenario_resolve(&s, &t, 0, &p, why, sizeof(why));
    if (r < 0)
        fail_msg("%s", why);
    assert_int_equal(p.n_faults, 2);
    assert_string_equal(p.cgroups[p.faults[1].cgroup].name, "per_1");
}

/* Loading `file` fails with exactly "PATH:line:col: msg" (msg NULL: any
 * message, for libfyaml's own wording) and leaves the output untouched. */
static void s_expect_file_error(const char *file, int line, int col, const char *msg)
{
    char path[512], err[512] = "", want[1024];
    snprintf(path, sizeof(path), "%s/%s", S_DIR, file);
    kt_scenario_t s, before;
    memset(&s, 0xa5, sizeof(s));
    before = s;
    int r = kt_scenario_yaml_load(path, &s, err, sizeof(err));
    assert_int_equal(r, -EINVAL);
    snprintf(want, sizeof(want), "%s:%d:%d: %s", path, line, col, msg ? msg : "");
    if (msg) {
        assert_string_equal(err, want);
    } else {
        if (strncmp(err, want, strlen(want)) != 0 || strlen(err) == strlen(want))
            fail_msg("error '%s' does not start with '%s' and a message", err, want);
    }
    assert_memory_equal(&s, &before, sizeof(s));
}

static void test_malformed_files(void **state)
{
    (void)state;
    s_expect_file_error("bad_unknown_key.yaml", 7, 5,
                        "cgroups[1]: unknown key 'wrkers' in cgroup (did you mean 'workers'?)");
    s_expect_file_error("bad_work_type.yaml", 7, 11,
                        "cgroups[1].work: unknown work type 'spinn' (known: spin, yield, mixed, "
                        "bursty, io-sync, pipe-pingpong, futex-pingpong, cache-pressure, "
                        "cache-yield, cache-pipe, futex-fan-out, fan-out-compute, sequence, "
                        "fork-exit, nice-sweep, affinity-churn, policy-churn, page-fault-churn, "
                        "mutex-contention)");
    s_expect_file_error("bad_duration.yaml", 3, 11,
                        "duration: '3x' is not a duration (a whole number of ms, or with a unit: "
                        "250ms, 3s, 1.5s, 2m, 1h)");
    s_expect_file_error("bad_pingpong_odd.yaml", 7, 14,
                        "cgroups[0].workers: futex-pingpong workers come in groups of 2, 3 given");
    s_expect_file_error("bad_fault.yaml", 8, 13, "faults[0].cgroup: no cgroup named 'victm'");
    s_expect_file_error("bad_type.yaml", 7, 15,
                        "cgroups[0].workers: expected an integer, got the string '2'");
    s_expect_file_error("bad_constraints.yaml", 5, 13,
                        "constraints.max_llcs: 2 is below min_llcs 4");
    s_expect_file_error("bad_name.yaml", 4, 11,
                        "cgroups[0].name: 'a/../b' is not a valid cgroup name (names of A-Z a-z "
                        "0-9 _ . -, nested ones joined by '/', at most 63 bytes)");
    s_expect_file_error("bad_missing_cgroups.yaml", 2, 1, "missing key 'cgroups' in scenario");
    s_expect_file_error("bad_two_documents.yaml", 6, 1,
                        "a second YAML document: a scenario file holds one");
    s_expect_file_error("bad_checks.yaml", 5, 20,
                        "checks.fairness_spread: 150 is out of range 0..100");
    /* The YAML itself is broken: libfyaml's diagnostics give the position. */
    s_expect_file_error("bad_syntax.yaml", 5, 1, NULL);
    s_expect_file_error("bad_duplicate_key.yaml", 5, 1, NULL);
}

static void test_missing_file(void **state)
{
    (void)state;
    char err[512];
    kt_scenario_t s;
    int r = kt_scenario_yaml_load(S_DIR "/no_such_file.yaml", &s, err, sizeof(err));
    assert_int_equal(r, -ENOENT);
    assert_string_equal(err, S_DIR "/no_such_file.yaml: No such file or directory");
    r = kt_scenario_yaml_load(S_DIR, &s, err, sizeof(err));
    assert_true(r < 0);
    assert_string_equal(err, S_DIR ": not a regular file");
}

static unsigned s_mismatches;

/* Parsing `text` fails with "t.yaml:" + want. Mismatches are counted, so
 * that one run lists them all; the test asserts none at its end. */
static void s_expect(const char *text, const char *want)
{
    char err[512] = "", full[640];
    kt_scenario_t s;
    int r = kt_scenario_yaml_parse(text, strlen(text), "t.yaml", &s, err, sizeof(err));
    snprintf(full, sizeof(full), "t.yaml:%s", want);
    if (r != -EINVAL || strcmp(err, full) != 0) {
        print_error("for:\n%s\nwant %d '%s'\ngot  %d '%s'\n", text, -EINVAL, full, r, err);
        s_mismatches++;
    }
}

static int s_parse(const char *text, kt_scenario_t *s)
{
    char err[512] = "";
    int r = kt_scenario_yaml_parse(text, strlen(text), "t.yaml", s, err, sizeof(err));
    if (r < 0)
        print_error("parse failed: %s\n", err);
    return r;
}

#define CG "cgroups: [{name: a, workers: 1}]\n"

static void test_types_and_ranges(void **state)
{
    (void)state;
    s_expect("name: x\nnmae: y\n" CG, "2:1: unknown key 'nmae' in scenario (did you mean 'name'?)");
    s_expect("name: x\nzzz: 1\n" CG,
             "2:1: unknown key 'zzz' in scenario (known: name, description, duration, memory_mib, "
             "constraints, checks, cgroups, faults, steps, payload)");
    s_expect("- a\n", "1:1: expected a mapping for scenario, got a sequence");
    s_expect("just a scalar\n", "1:1: expected a mapping for scenario, got a scalar");
    s_expect(CG, "1:1: missing key 'name' in scenario");
    s_expect("name: ''\n" CG,
             "1:8: name: '' is not a valid name (1 to 63 of A-Z a-z 0-9 _ . -, not . or ..)");
    s_expect("name: ..\n" CG,
             "1:7: name: '..' is not a valid name (1 to 63 of A-Z a-z 0-9 _ . -, not . or ..)");
    s_expect("name: "
             "a234567890123456789012345678901234567890123456789012345678901234\n" CG,
             "1:7: name: 'a234567890123456789012345678901234567890123456789012345678901234' is "
             "not a valid name (1 to 63 of A-Z a-z 0-9 _ . -, not . or ..)");
    s_expect("name:\n" CG, "1:1: name: expected a name, got nothing");
    s_expect("name: [x]\n" CG, "1:7: name: expected a name, got a sequence");
    s_expect("name: x\nduration: 0\n" CG, "2:11: duration: '0' is out of range 1ms..86400000ms");
    s_expect("name: x\nduration: 25h\n" CG,
             "2:11: duration: '25h' is out of range 1ms..86400000ms");
    s_expect("name: x\nduration: 10us\n" CG,
             "2:11: duration: '10us' is not a duration (a whole number of ms, or with a unit: "
             "250ms, 3s, 1.5s, 2m, 1h)");
    s_expect("name: x\nmemory_mib: -1\n" CG, "2:13: memory_mib: -1 is out of range 1..1048576");
    s_expect("name: x\nmemory_mib: 1.5\n" CG, "2:13: memory_mib: expected an integer, got '1.5'");
    s_expect("name: x\ndescription: {a: 1}\n" CG,
             "2:14: description: expected a string, got a mapping");
    char longdesc[512];
    snprintf(longdesc, sizeof(longdesc), "name: x\ndescription: %0200d\n" CG, 0);
    s_expect(longdesc, "2:14: description: longer than 159 bytes");

    s_expect("name: x\nconstraints: {min_cpus: 300}\n" CG,
             "2:25: constraints.min_cpus: 300 is out of range 0..256");
    s_expect("name: x\nconstraints: {requires_smt: yes}\n" CG,
             "2:29: constraints.requires_smt: expected true or false, got 'yes'");
    s_expect("name: x\nconstraints: {requires_smt: \"true\"}\n" CG,
             "2:30: constraints.requires_smt: expected true or false, got 'true'");
    s_expect("name: x\nconstraints: [1]\n" CG,
             "2:14: constraints: expected a mapping for constraints, got a sequence");
    s_expect("name: x\nconstraints: {min_lcs: 1}\n" CG,
             "2:15: constraints: unknown key 'min_lcs' in constraints (did you mean 'min_llcs'?)");

    s_expect("name: x\nchecks: {max_gap: 2x}\n" CG,
             "2:19: checks.max_gap: '2x' is not a duration (a whole number of ms, or with a "
             "unit: 250ms, 3s, 1.5s, 2m, 1h)");
    s_expect("name: x\nchecks: {wake_p99: 500}\n" CG,
             "2:20: checks.wake_p99: '500' is not a latency with a unit (500us, 2ms)");
    s_expect("name: x\nchecks: {wake_p99: true}\n" CG,
             "2:20: checks.wake_p99: has no default: give a latency such as 500us");
    s_expect("name: x\nchecks: {work_rate: 0}\n" CG,
             "2:21: checks.work_rate: must be more than 0 (false disables it)");
    s_expect("name: x\nchecks: {not_starved: 1}\n" CG,
             "2:23: checks.not_starved: expected true or false, got '1'");
    s_expect("name: x\nchecks: {fairness_spread: .nan}\n" CG,
             "2:27: checks.fairness_spread: expected a number, got '.nan'");
    s_expect("name: x\nchecks: {fairness_spread: 0x10}\n" CG,
             "2:27: checks.fairness_spread: expected a number, got '0x10'");

    s_expect("name: x\ncgroups: []\n", "2:10: cgroups: 0 entries, expected 1..32");
    s_expect("name: x\ncgroups:\n", "2:1: cgroups: expected a sequence of cgroups, got nothing");
    s_expect("name: x\ncgroups: {name: a}\n",
             "2:10: cgroups: expected a sequence of cgroups, got a mapping");
    s_expect("name: x\ncgroups: [{name: a, workers: 1}, 7]\n",
             "2:34: cgroups[1]: expected a mapping for cgroup, got a scalar");
    s_expect("name: x\ncgroups:\n  - workers: 1\n", "3:5: cgroups[0]: missing key 'name'");
    s_expect("name: x\ncgroups:\n  - name: a\n",
             "3:5: cgroups[0]: missing key 'workers' (or 'workers_per_cpu')");
    s_expect("name: x\ncgroups:\n  - name: a\n    workers: 1\n    workers_per_cpu: 1\n",
             "5:5: cgroups[0]: give workers or workers_per_cpu, not both");
    s_expect("name: x\ncgroups:\n  - name: a\n    workers: -1\n",
             "4:14: cgroups[0].workers: -1 is out of range 0..256");
    s_expect("name: x\ncgroups:\n  - name: a\n    workers: 257\n",
             "4:14: cgroups[0].workers: 257 is out of range 0..256");
    s_expect("name: x\ncgroups:\n  - name: a\n    workers: 99999999999999999999999\n",
             "4:14: cgroups[0].workers: 99999999999999999999999 is out of range 0..256");
    s_expect("name: x\ncgroups:\n  - name: a\n    workers:\n",
             "4:5: cgroups[0].workers: expected an integer, got nothing");
    s_expect("name: x\ncgroups:\n  - name: a\n    workers_per_cpu: 0\n",
             "4:22: cgroups[0].workers_per_cpu: must be more than 0");
    s_expect("name: x\ncgroups:\n  - name: a\n    workers_per_cpu: -1\n",
             "4:22: cgroups[0].workers_per_cpu: -1 is out of range 0..256");
    s_expect("name: x\ncgroups:\n  - name: a\n    workers: 1\n    nice: 20\n",
             "5:11: cgroups[0].nice: 20 is out of range -20..19");
    s_expect("name: x\ncgroups:\n  - name: a\n    workers: 1\n    policy: rt\n",
             "5:13: cgroups[0].policy: unknown policy 'rt' (known: normal, batch, idle, fifo, rr)");
    s_expect("name: x\ncgroups:\n  - name: a\n    workers: 1\n    cpuset: \"llc:\"\n",
             "5:14: cgroups[0].cpuset: 'llc:': expected llc:N with N in 0..255");
    s_expect("name: x\ncgroups:\n  - name: a\n    workers: 1\n    cpuset: node:256\n",
             "5:13: cgroups[0].cpuset: 'node:256': expected node:N with N in 0..255");
    s_expect("name: x\ncgroups:\n  - name: a\n    workers: 1\n    cpuset: 0-3,999\n",
             "5:13: cgroups[0].cpuset: CPU list '0-3,999' names a CPU over 255");
    s_expect("name: x\ncgroups:\n  - name: a\n    workers: 1\n    cpuset: some\n",
             "5:13: cgroups[0].cpuset: 'some' is not a cpuset (all, llc:N, node:N, per-llc, "
             "range:LO..HI, disjoint:I/N, overlap:I/N:F, or a CPU list such as 0-3,6)");
    s_expect("name: x\ncgroups:\n  - name: a\n    workers: 1\n    cpuset: \"0-1\\n7\"\n",
             "5:14: cgroups[0].cpuset: '0-1?7' is not a cpuset (all, llc:N, node:N, per-llc, "
             "range:LO..HI, disjoint:I/N, overlap:I/N:F, or a CPU list such as 0-3,6)");
    s_expect("name: x\ncgroups:\n  - {name: a, workers: 1}\n  - {name: a, workers: 2}\n",
             "4:12: cgroups[1].name: 'a' is already the name of cgroups[0]");
    s_expect("name: x\ncgroups:\n  - name: a\n    workers: 2\n    work: pipe-pingpong\n"
             "    work: spin\n",
             "6:5: duplicate key");

    s_expect("name: x\n" CG "faults: {cgroup: a}\n",
             "3:9: faults: expected a sequence of faults, got a mapping");
    s_expect("name: x\n" CG "faults:\n  - {worker: 0}\n", "4:5: faults[0]: missing key 'cgroup'");
    s_expect("name: x\n" CG "faults:\n  - {cgroup: a, worker: 256}\n",
             "4:25: faults[0].worker: 256 is out of range 0..255");
    s_expect("name: x\nduration: 1s\n" CG "faults:\n  - {cgroup: a, at: 1s}\n",
             "5:21: faults[0].at: 1000 ms is not before the end of the run (1000 ms)");
    s_expect("name: x\n" CG "faults:\n  - {cgroup: a, when: 1s}\n",
             "4:17: faults[0]: unknown key 'when' in fault (known: cgroup, worker, at)");
    s_expect("name: x\n" CG
             "faults: [{cgroup: a}, {cgroup: a}, {cgroup: a}, {cgroup: a}, {cgroup: a},"
             " {cgroup: a}, {cgroup: a}, {cgroup: a}, {cgroup: a}]\n",
             "3:9: faults: 9 entries, limit 8");

    /* Keys are plain names; aliases must name an anchor. */
    s_expect("name: x\n? [a]\n: 1\n" CG,
             "2:3: a key in scenario is a sequence, expected a plain name");
    s_expect("name: x\ncgroups: [{name: a, workers: *n}]\n",
             "2:31: cgroups[0].workers: alias '*n' names no anchor");
    /* A key too long for any known one is shown cut with "..."; one holding
     * a NUL byte is refused as such (the gauntlet reader shares this). */
    s_expect(
        "name: x\n" CG "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk: 1\n",
        "3:1: unknown key 'kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk...' "
        "in scenario (known: name, description, duration, memory_mib, constraints, checks, "
        "cgroups, faults, steps, payload)");
    s_expect("name: x\n" CG "\"na\\0me\": 1\n", "3:2: a key contains a NUL byte");
    assert_int_equal(s_mismatches, 0);
}

static void test_accepted_forms(void **state)
{
    (void)state;
    kt_scenario_t s;
    /* Aliases are followed. */
    s_expect("name: &n x\nw: &w 2\n" CG,
             "2:1: unknown key 'w' in scenario (known: name, description, duration, memory_mib, "
             "constraints, checks, cgroups, faults, steps, payload)");
    assert_int_equal(s_parse("name: &n x\ncgroups: [{name: *n, workers: 2}]\n", &s), 0);
    assert_string_equal(s.cgroups[0].name, "x");
    assert_int_equal(s.cgroups[0].workers, 2);
    /* Durations in every unit; a bare integer is milliseconds. */
    assert_int_equal(s_parse("name: x\nduration: 2m\n" CG, &s), 0);
    assert_int_equal(s.duration_ms, 120000);
    assert_int_equal(s_parse("name: x\nduration: 250\n" CG, &s), 0);
    assert_int_equal(s.duration_ms, 250);
    assert_int_equal(s_parse("name: x\nduration: \"1.5s\"\n" CG, &s), 0);
    assert_int_equal(s.duration_ms, 1500);
    /* Booleans toggle checks and keep the default thresholds. */
    assert_int_equal(s_parse("name: x\nchecks: {fairness_spread: false, max_gap: false, "
                             "not_starved: false, cpuset_isolation: false}\n" CG,
                             &s),
                     0);
    assert_false(s.thresholds.check_spread);
    assert_false(s.thresholds.check_gap);
    assert_false(s.thresholds.check_starved);
    assert_false(s.thresholds.check_isolation);
    assert_true(s.thresholds.max_spread_pct == 15.0);
    assert_int_equal(s.thresholds.max_gap_ms, 2000);
    assert_int_equal(s_parse("name: x\nchecks: {fairness_spread: True, max_gap: TRUE, "
                             "wake_p99: 2ms, work_rate: 1e3}\n" CG,
                             &s),
                     0);
    assert_true(s.thresholds.check_spread);
    assert_true(s.thresholds.check_gap);
    assert_int_equal(s.thresholds.max_p99_wake_us, 2000);
    assert_true(s.thresholds.min_work_rate == 1000.0);
    assert_int_equal(s_parse("name: x\nchecks: {wake_p99: false, work_rate: false}\n" CG, &s), 0);
    assert_int_equal(s.thresholds.max_p99_wake_us, 0);
    assert_true(s.thresholds.min_work_rate == 0);
    /* Work types by alias and with underscores; a plain number as a list. */
    assert_int_equal(s_parse("name: x\ncgroups: [{name: a, workers: 2, work: futex-ping-pong, "
                             "cpuset: 3}]\n",
                             &s),
                     0);
    assert_int_equal(s.cgroups[0].work, KT_WORK_FUTEX_PINGPONG);
    assert_int_equal(s.cgroups[0].cpuset.kind, KT_CPUSET_LIST);
    assert_string_equal(s.cgroups[0].cpuset.list, "3");
    /* An empty faults list is no faults; defaults fill the rest. */
    assert_int_equal(s_parse("name: x\nfaults: []\n" CG, &s), 0);
    assert_int_equal(s.n_faults, 0);
    assert_int_equal(s.duration_ms, 5000);
    assert_int_equal(s.cgroups[0].work, KT_WORK_SPIN);
    assert_int_equal(s.cgroups[0].cpuset.kind, KT_CPUSET_ALL);
    kt_thresholds_t def;
    kt_thresholds_default(&def);
    assert_memory_equal(&s.thresholds, &def, sizeof(def));
    /* 32 cgroups is the limit, 33 is refused. */
    char text[4096];
    size_t off = (size_t)snprintf(text, sizeof(text), "name: many\ncgroups:\n");
    for (int i = 0; i < KT_MAX_CGROUPS; i++)
        off += (size_t)snprintf(text + off, sizeof(text) - off, "  - {name: c%d, workers: 1}\n", i);
    assert_int_equal(s_parse(text, &s), 0);
    assert_int_equal(s.n_cgroups, KT_MAX_CGROUPS);
    snprintf(text + off, sizeof(text) - off, "  - {name: c99, workers: 1}\n");
    s_expect(text, "3:3: cgroups: 33 entries, expected 1..32");
    assert_int_equal(s_mismatches, 0);
}

static void test_parse_errors_of_yaml(void **state)
{
    (void)state;
    char err[512];
    kt_scenario_t s;
    /* Positions come from libfyaml; the message is its own. */
    const char *text = "name: x\ncgroups: [{name: a, workers: 1}\n";
    assert_int_equal(kt_scenario_yaml_parse(text, strlen(text), "m.yaml", &s, err, sizeof(err)),
                     -EINVAL);
    assert_string_equal(err, "m.yaml:3:1: flow sequence without a closing bracket");
    /* Tabs: refused before libfyaml sees them, except in quotes, in
     * comments and as trailing blanks. `? e:<TAB>-` (found by fuzz_scenario_
     * yaml) made libfyaml 0.7.12 crash in fy_parser_destroy. */
    text = "name: x\ncgroups:\n\t- {name: a, workers: 1}\n";
    assert_int_equal(kt_scenario_yaml_parse(text, strlen(text), "m.yaml", &s, err, sizeof(err)),
                     -EINVAL);
    assert_string_equal(err, "m.yaml:3:1: a tab outside quotes and comments: indent and separate "
                             "with spaces");
    text = "# Mm54).\nname:\n- ? - e:\t- ? - namdpingpodpingponicei2\n";
    assert_int_equal(kt_scenario_yaml_parse(text, strlen(text), "m.yaml", &s, err, sizeof(err)),
                     -EINVAL);
    assert_string_equal(err, "m.yaml:3:9: a tab outside quotes and comments: indent and separate "
                             "with spaces");
    text = "name: x\t\t\n# a\tcomment\ndescription: \"a\ttab \\\" \\\\\" # c\td\n"
           "cgroups: [{name: a, workers: 1}] \t# after\twork\n";
    if (kt_scenario_yaml_parse(text, strlen(text), "m.yaml", &s, err, sizeof(err)) < 0)
        fail_msg("tabs in quotes, comments and trailing blanks: %s", err);
    assert_string_equal(s.description, "a\ttab \" \\");
    text = "name: x\ndescription: it's\tplain\ncgroups: [{name: a, workers: 1}]\n";
    assert_int_equal(kt_scenario_yaml_parse(text, strlen(text), "m.yaml", &s, err, sizeof(err)),
                     -EINVAL);
    assert_string_equal(err, "m.yaml:2:18: a tab outside quotes and comments: indent and "
                             "separate with spaces");
    text = "name: \"x\\q\"\n";
    assert_int_equal(kt_scenario_yaml_parse(text, strlen(text), "m.yaml", &s, err, sizeof(err)),
                     -EINVAL);
    assert_string_equal(err, "m.yaml:1:9: invalid escape 'q' in double-quoted string");
    /* Empty and comment-only texts. */
    assert_int_equal(kt_scenario_yaml_parse("", 0, "m.yaml", &s, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "m.yaml: empty document: expected a scenario mapping");
    text = "# nothing\n";
    assert_int_equal(kt_scenario_yaml_parse(text, strlen(text), "m.yaml", &s, err, sizeof(err)),
                     -EINVAL);
    assert_string_equal(err, "m.yaml: empty document: expected a scenario mapping");
    /* A NUL byte in a scalar (only possible through an escape). */
    text = "name: \"a\\0b\"\n" CG;
    assert_int_equal(kt_scenario_yaml_parse(text, strlen(text), "m.yaml", &s, err, sizeof(err)),
                     -EINVAL);
    assert_string_equal(err, "m.yaml:1:8: name: contains a NUL byte");
    /* Text that is not printable UTF-8 is refused before libfyaml sees it
     * (libfyaml 0.7.12 loops forever on "%\x9f"). */
    static const struct {
        const char *text;
        const char *err;
    } bytes[] = {
        {"%\x9f", "m.yaml:1:2: invalid UTF-8 byte 0x9f"},
        {"name: x\nd: \x01\n", "m.yaml:2:4: character U+0001 is not allowed in YAML"},
        {"name: x\n  \xc3\xa9: \xed\xa0\x80\n", "m.yaml:2:6: invalid UTF-8 byte 0xed"},
        {"name: \xc0\xaf\n", "m.yaml:1:7: invalid UTF-8 byte 0xc0"},
        {"name: \xf4\x90\x80\x80\n", "m.yaml:1:7: invalid UTF-8 byte 0xf4"},
        {"name: \xe2\x82", "m.yaml:1:7: invalid UTF-8 byte 0xe2"},
        {"x\xef\xbf\xbe", "m.yaml:1:2: character U+FFFE is not allowed in YAML"},
        {"a: b\x7f", "m.yaml:1:5: character U+007F is not allowed in YAML"},
    };
    for (size_t i = 0; i < sizeof(bytes) / sizeof(bytes[0]); i++) {
        text = bytes[i].text;
        assert_int_equal(kt_scenario_yaml_parse(text, strlen(text), "m.yaml", &s, err, sizeof(err)),
                         -EINVAL);
        assert_string_equal(err, bytes[i].err);
    }
    /* A NUL byte inside the text is a control character too. */
    assert_int_equal(kt_scenario_yaml_parse("name: x\0", 8, "m.yaml", &s, err, sizeof(err)),
                     -EINVAL);
    assert_string_equal(err, "m.yaml:1:8: character U+0000 is not allowed in YAML");
    /* A byte order mark and non-ASCII text are fine. */
    text = "\xef\xbb\xbfname: x\ndescription: \"d\xc3\xa9j\xc3\xa0 vu \xe2\x82\xac\"\n" CG;
    assert_int_equal(kt_scenario_yaml_parse(text, strlen(text), "m.yaml", &s, err, sizeof(err)), 0);
    assert_string_equal(s.description, "d\xc3\xa9j\xc3\xa0 vu \xe2\x82\xac");
    /* Oversized input is refused before parsing. */
    size_t big = (1u << 20) + 1;
    char *buf = malloc(big);
    assert_non_null(buf);
    memset(buf, '#', big);
    assert_int_equal(kt_scenario_yaml_parse(buf, big, "big.yaml", &s, err, sizeof(err)), -EFBIG);
    assert_true(strncmp(err, "big.yaml: ", 10) == 0);
    free(buf);
    /* A tiny error buffer is never overrun; NULL is allowed. */
    char tiny[8];
    text = "name: x\nbogus: 1\n" CG;
    assert_int_equal(kt_scenario_yaml_parse(text, strlen(text), "m.yaml", &s, tiny, sizeof(tiny)),
                     -EINVAL);
    assert_string_equal(tiny, "m.yaml:");
    assert_int_equal(kt_scenario_yaml_parse(text, strlen(text), "m.yaml", &s, NULL, 0), -EINVAL);
}

static void test_from_node(void **state)
{
    (void)state;
    /* A gauntlet-like file with scenarios inlined. */
    const char *text = "scenarios:\n"
                       "  - name: one\n"
                       "    cgroups: [{name: a, workers: 2}]\n"
                       "  - name: two\n"
                       "    cgroups:\n"
                       "      - {name: a, workers: 2, work: spinn}\n";
    struct fy_document *doc = fy_document_build_from_string(NULL, text, FY_NT);
    assert_non_null(doc);
    struct fy_node *list =
        fy_node_mapping_lookup_by_string(fy_document_root(doc), "scenarios", FY_NT);
    assert_non_null(list);
    kt_scenario_t s;
    char err[512] = "";
    assert_int_equal(kt_scenario_yaml_from_node(fy_node_sequence_get_by_index(list, 0), "g.yaml",
                                                &s, err, sizeof(err)),
                     0);
    assert_string_equal(s.name, "one");
    assert_int_equal(s.cgroups[0].workers, 2);
    assert_int_equal(kt_scenario_yaml_from_node(fy_node_sequence_get_by_index(list, 1), "g.yaml",
                                                &s, err, sizeof(err)),
                     -EINVAL);
    assert_string_equal(err, "g.yaml:6:37: cgroups[0].work: unknown work type 'spinn' (known: "
                             "spin, yield, mixed, bursty, io-sync, pipe-pingpong, "
                             "futex-pingpong, cache-pressure, cache-yield, cache-pipe, "
                             "futex-fan-out, fan-out-compute, sequence, fork-exit, nice-sweep, "
                             "affinity-churn, policy-churn, page-fault-churn, mutex-contention)");
    assert_int_equal(kt_scenario_yaml_from_node(NULL, "g.yaml", &s, err, sizeof(err)), -EINVAL);
    fy_document_destroy(doc);
}

static void test_duration_parse(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int r;
        uint32_t ms;
    } cases[] = {
        {"3s", 0, 3000},
        {"250ms", 0, 250},
        {"2m", 0, 120000},
        {"1.5s", 0, 1500},
        {"1000", 0, 1000},
        {"0", 0, 0},
        {"1h", 0, 3600000},
        {"0.001s", 0, 1},
        {"0.25m", 0, 15000},
        {"4294967295", 0, UINT32_MAX},
        {"4294967296", -ERANGE, 0},
        {"1193h", 0, 4294800000u},
        {"1194h", -ERANGE, 0},
        {"999999999999h", -ERANGE, 0},
        {"3x", -EINVAL, 0},
        {"", -EINVAL, 0},
        {"s", -EINVAL, 0},
        {"1.s", -EINVAL, 0},
        {".5s", -EINVAL, 0},
        {"1..5s", -EINVAL, 0},
        {"-1s", -EINVAL, 0},
        {"1 s", -EINVAL, 0},
        {"1.0005s", -EINVAL, 0},
        {"1.5", -EINVAL, 0},
        {"500us", -EINVAL, 0},
        {"1S", -EINVAL, 0},
        {"1e3", -EINVAL, 0},
        {"1sec", -EINVAL, 0},
        {"0x10", -EINVAL, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint32_t ms = 12345;
        int r = kt_duration_parse_ms(cases[i].text, &ms);
        if (r != cases[i].r)
            fail_msg("'%s': got %d, want %d", cases[i].text, r, cases[i].r);
        if (r == 0 && ms != cases[i].ms)
            fail_msg("'%s': got %u ms, want %u", cases[i].text, ms, cases[i].ms);
        if (r < 0 && ms != 12345)
            fail_msg("'%s': output changed on failure", cases[i].text);
    }
}

/* checks.bpf_callback_ns: a number bounds every struct_ops program, a
 * mapping bounds '*' and programs by name, false turns it off. */
static void test_bpf_callback_ns(void **state)
{
    (void)state;
    kt_scenario_t s;
    assert_int_equal(s_parse("name: x\n" CG, &s), 0);
    assert_int_equal(s.thresholds.max_callback_ns, 0);
    assert_int_equal(s.thresholds.n_callback_bounds, 0);
    assert_int_equal(s_parse("name: x\nchecks: {bpf_callback_ns: 5000}\n" CG, &s), 0);
    assert_int_equal(s.thresholds.max_callback_ns, 5000);
    assert_int_equal(s.thresholds.n_callback_bounds, 0);
    assert_int_equal(s_parse("name: x\nchecks:\n  bpf_callback_ns:\n    \"*\": 7000\n"
                             "    simple_enqueue: 2000\n    simple.disp_: 1\n" CG,
                             &s),
                     0);
    assert_int_equal(s.thresholds.max_callback_ns, 7000);
    assert_int_equal(s.thresholds.n_callback_bounds, 2);
    assert_string_equal(s.thresholds.callback_bounds[0].prog, "simple_enqueue");
    assert_int_equal(s.thresholds.callback_bounds[0].max_ns, 2000);
    assert_string_equal(s.thresholds.callback_bounds[1].prog, "simple.disp_");
    assert_int_equal(s.thresholds.callback_bounds[1].max_ns, 1);
    /* Names only: no bound for all struct_ops programs. */
    assert_int_equal(s_parse("name: x\nchecks: {bpf_callback_ns: {simple_init: 9}}\n" CG, &s), 0);
    assert_int_equal(s.thresholds.max_callback_ns, 0);
    assert_int_equal(s.thresholds.n_callback_bounds, 1);
    assert_int_equal(s_parse("name: x\nchecks: {bpf_callback_ns: false, max_gap: 3s}\n" CG, &s),
                     0);
    assert_int_equal(s.thresholds.max_callback_ns, 0);
    assert_int_equal(s.thresholds.n_callback_bounds, 0);
    assert_int_equal(s.thresholds.max_gap_ms, 3000);

    s_mismatches = 0;
    s_expect("name: x\nchecks: {bpf_callback_ns: true}\n" CG,
             "2:27: checks.bpf_callback_ns: has no default: give ns per call such as 5000");
    s_expect("name: x\nchecks: {bpf_callback_ns: 0}\n" CG,
             "2:27: checks.bpf_callback_ns: 0 is out of range 1..1000000000");
    s_expect("name: x\nchecks: {bpf_callback_ns: 1000000001}\n" CG,
             "2:27: checks.bpf_callback_ns: 1000000001 is out of range 1..1000000000");
    s_expect("name: x\nchecks: {bpf_callback_ns: 5us}\n" CG,
             "2:27: checks.bpf_callback_ns: expected an integer, got '5us'");
    s_expect("name: x\nchecks: {bpf_callback_ns: [1]}\n" CG,
             "2:27: checks.bpf_callback_ns: expected an integer, got a sequence");
    s_expect("name: x\nchecks: {bpf_callback_ns: {}}\n" CG,
             "2:27: checks.bpf_callback_ns: an empty mapping: give '*' or program names with ns");
    s_expect("name: x\nchecks: {bpf_callback_ns: {simple-enqueue: 5}}\n" CG,
             "2:28: checks.bpf_callback_ns: 'simple-enqueue' is not a BPF program name (1 to 15 "
             "of A-Z a-z 0-9 _ .) nor '*'");
    s_expect("name: x\nchecks: {bpf_callback_ns: {sixteen_chars_xx: 5}}\n" CG,
             "2:28: checks.bpf_callback_ns: 'sixteen_chars_xx' is not a BPF program name (1 to "
             "15 of A-Z a-z 0-9 _ .) nor '*'");
    s_expect("name: x\nchecks: {bpf_callback_ns: {a: 0}}\n" CG,
             "2:31: checks.bpf_callback_ns.a: 0 is out of range 1..1000000000");
    s_expect("name: x\nchecks: {bpf_callback_ns: {a: x}}\n" CG,
             "2:31: checks.bpf_callback_ns.a: expected an integer, got 'x'");
    s_expect("name: x\nchecks: {bpf_callback_ns: {a: 1, b: 1, c: 1, d: 1, e: 1, f: 1, g: 1, "
             "h: 1, i: 1}}\n" CG,
             "2:76: checks.bpf_callback_ns: more than 8 program names");
    s_expect("name: x\nchecks: {bpf_calback_ns: 5}\n" CG,
             "2:10: checks: unknown key 'bpf_calback_ns' in checks (did you mean "
             "'bpf_callback_ns'?)");
    assert_int_equal(s_mismatches, 0);
}

/* ktstr's benchmarking checks: numbers above 0, false switches off, true
 * has no default; every key given marks its fields set (and only those). */
static void test_benchmark_checks(void **state)
{
    (void)state;
    s_mismatches = 0;
    s_expect("name: x\nchecks: {wake_cv: true}\n" CG,
             "2:19: checks.wake_cv: has no default: give the largest wake latency CV (stddev / "
             "mean), such as 1.5");
    s_expect("name: x\nchecks: {throughput_cv: 0}\n" CG,
             "2:25: checks.throughput_cv: must be more than 0 (false disables it)");
    s_expect("name: x\nchecks: {iteration_rate: -5}\n" CG,
             "2:26: checks.iteration_rate: -5 is out of range 0..1e+12");
    s_expect("name: x\nchecks: {migration_ratio: lots}\n" CG,
             "2:27: checks.migration_ratio: expected a number, got 'lots'");
    s_expect("name: x\nchecks: {wake_cv: 2000}\n" CG,
             "2:19: checks.wake_cv: 2000 is out of range 0..1000");
    s_expect("name: x\nchecks: {wake_cv: \"1\"}\n" CG,
             "2:20: checks.wake_cv: expected a number, got the string '1'");
    s_expect("name: x\nchecks: {migration_ratio: [1]}\n" CG,
             "2:27: checks.migration_ratio: expected a number, got a sequence");
    s_expect("name: x\nchecks: {wake_vc: 1}\n" CG,
             "2:10: checks: unknown key 'wake_vc' in checks (did you mean 'wake_cv'?)");
    assert_int_equal(s_mismatches, 0);

    kt_scenario_t s;
    assert_int_equal(s_parse("name: x\n" CG, &s), 0);
    assert_int_equal(s.thresholds.set, 0);
    assert_true(s.thresholds.max_wake_cv == 0 && s.thresholds.max_throughput_cv == 0 &&
                s.thresholds.min_iteration_rate == 0 && s.thresholds.max_migration_ratio == 0);
    assert_int_equal(s_parse("name: x\nchecks: {wake_cv: 1.5, throughput_cv: 0.25, "
                             "iteration_rate: 1e3, migration_ratio: 0.5}\n" CG,
                             &s),
                     0);
    assert_true(s.thresholds.max_wake_cv == 1.5);
    assert_true(s.thresholds.max_throughput_cv == 0.25);
    assert_true(s.thresholds.min_iteration_rate == 1000.0);
    assert_true(s.thresholds.max_migration_ratio == 0.5);
    assert_int_equal(s.thresholds.set,
                     KT_THR_BIT(KT_THR_WAKE_CV) | KT_THR_BIT(KT_THR_THROUGHPUT_CV) |
                         KT_THR_BIT(KT_THR_ITERATION_RATE) | KT_THR_BIT(KT_THR_MIGRATION_RATIO));
    /* false: off, and set (it switches off what a scheduler layer set). */
    assert_int_equal(s_parse("name: x\nchecks: {wake_cv: false, migration_ratio: false}\n" CG,
                             &s),
                     0);
    assert_true(s.thresholds.max_wake_cv == 0 && s.thresholds.max_migration_ratio == 0);
    assert_int_equal(s.thresholds.set,
                     KT_THR_BIT(KT_THR_WAKE_CV) | KT_THR_BIT(KT_THR_MIGRATION_RATIO));
    /* fairness_spread: false sets only the switch, a number both; true only
     * the switch, so the threshold below stays. */
    assert_int_equal(s_parse("name: x\nchecks: {fairness_spread: false, max_gap: 500ms, "
                             "not_starved: true, wake_p99: 1ms}\n" CG,
                             &s),
                     0);
    assert_int_equal(s.thresholds.set,
                     KT_THR_BIT(KT_THR_SPREAD_ON) | KT_THR_BIT(KT_THR_GAP_ON) |
                         KT_THR_BIT(KT_THR_GAP) | KT_THR_BIT(KT_THR_STARVED) |
                         KT_THR_BIT(KT_THR_WAKE_P99));
    assert_int_equal(s_parse("name: x\nchecks: {fairness_spread: true, bpf_callback_ns: 900}\n" CG,
                             &s),
                     0);
    assert_int_equal(s.thresholds.set, KT_THR_BIT(KT_THR_SPREAD_ON) |
                                           KT_THR_BIT(KT_THR_CALLBACK_NS) |
                                           KT_THR_BIT(KT_THR_CALLBACK_BOUNDS));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_builtins_match_yaml),  cmocka_unit_test(test_full_file),
        cmocka_unit_test(test_malformed_files),      cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_types_and_ranges),     cmocka_unit_test(test_accepted_forms),
        cmocka_unit_test(test_parse_errors_of_yaml), cmocka_unit_test(test_from_node),
        cmocka_unit_test(test_duration_parse),       cmocka_unit_test(test_bpf_callback_ns),
        cmocka_unit_test(test_benchmark_checks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
