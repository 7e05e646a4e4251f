/* Scenarios written as YAML (kt_scenario_emit_yaml) read back through
 * kt_scenario_yaml_parse to the same kt_scenario_t, field by field: every
 * built-in scenario, and hand-built ones that use every part of the model
 * (cpuset, affinity and hold kinds, policies, every op, faults, constraints,
 * checks moved or switched off). Defaults stay out of the text, awkward
 * strings are quoted, and values the format cannot hold are refused. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kt_checks.h"
#include "kt_scenario_emit.h"
#include "kt_scenario_yaml.h"

/* ---- field-by-field comparison; the first difference, named by path ---- */

__attribute__((format(printf, 3, 4))) static bool s_differ(char *buf, size_t len, const char *fmt,
                                                           ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
    return false;
}

static bool s_double_eq(double a, double b)
{
    return fabs(a - b) <= 1e-12 * fmax(1.0, fmax(fabs(a), fabs(b)));
}

#define S_INT(path, field)                                                                         \
    do {                                                                                           \
        if ((long long)a->field != (long long)b->field)                                            \
            return s_differ(buf, len, "%s%s: %lld != %lld", path, "." #field, (long long)a->field, \
                            (long long)b->field);                                                  \
    } while (0)
#define S_DBL(path, field)                                                                         \
    do {                                                                                           \
        if (!s_double_eq(a->field, b->field))                                                      \
            return s_differ(buf, len, "%s%s: %.17g != %.17g", path, "." #field, a->field,          \
                            b->field);                                                             \
    } while (0)
#define S_STR(path, field)                                                                         \
    do {                                                                                           \
        if (strcmp(a->field, b->field) != 0)                                                       \
            return s_differ(buf, len, "%s%s: '%s' != '%s'", path, "." #field, a->field, b->field); \
    } while (0)

static bool s_cpuset_equal(const char *p, const kt_cpuset_spec_t *a, const kt_cpuset_spec_t *b,
                           char *buf, size_t len)
{
    S_INT(p, kind);
    S_INT(p, index);
    S_INT(p, of);
    S_DBL(p, lo);
    S_DBL(p, hi);
    S_DBL(p, overlap);
    S_STR(p, list);
    return true;
}

static bool s_affinity_equal(const char *p, const kt_affinity_spec_t *a,
                             const kt_affinity_spec_t *b, char *buf, size_t len)
{
    S_INT(p, kind);
    S_INT(p, count);
    S_STR(p, list);
    return true;
}

/* A check's threshold is compared only while the check is on: the YAML
 * writes a check that is off as `false`, without its unused threshold. */
static bool s_thresholds_equal(const kt_thresholds_t *a, const kt_thresholds_t *b, char *buf,
                               size_t len)
{
    const char *p = "thresholds";
    S_INT(p, check_starved);
    S_INT(p, check_isolation);
    S_INT(p, check_spread);
    if (a->check_spread)
        S_DBL(p, max_spread_pct);
    S_INT(p, check_gap);
    if (a->check_gap)
        S_INT(p, max_gap_ms);
    S_INT(p, max_p99_wake_us);
    S_DBL(p, min_work_rate);
    S_INT(p, max_callback_ns);
    S_INT(p, n_callback_bounds);
    for (unsigned i = 0; i < a->n_callback_bounds; i++) {
        char q[64];
        snprintf(q, sizeof(q), "thresholds.callback_bounds[%u]", i);
        S_STR(q, callback_bounds[i].prog);
        S_INT(q, callback_bounds[i].max_ns);
    }
    return true;
}

static bool s_cgroup_equal(const char *p, const kt_cgroup_spec_t *a, const kt_cgroup_spec_t *b,
                           char *buf, size_t len)
{
    char q[128];
    S_STR(p, name);
    snprintf(q, sizeof(q), "%s.cpuset", p);
    if (!s_cpuset_equal(q, &a->cpuset, &b->cpuset, buf, len))
        return false;
    S_INT(p, workers);
    S_DBL(p, workers_per_cpu);
    S_INT(p, work);
    S_INT(p, policy);
    S_INT(p, rt_priority);
    S_INT(p, nice);
    snprintf(q, sizeof(q), "%s.affinity", p);
    if (!s_affinity_equal(q, &a->affinity, &b->affinity, buf, len))
        return false;
    S_INT(p, deferred);
    return true;
}

static bool s_op_equal(const char *p, const kt_op_spec_t *a, const kt_op_spec_t *b, char *buf,
                       size_t len)
{
    char q[160];
    S_INT(p, kind);
    S_STR(p, cgroup);
    S_STR(p, target);
    snprintf(q, sizeof(q), "%s.cpuset", p);
    if (!s_cpuset_equal(q, &a->cpuset, &b->cpuset, buf, len))
        return false;
    snprintf(q, sizeof(q), "%s.affinity", p);
    if (!s_affinity_equal(q, &a->affinity, &b->affinity, buf, len))
        return false;
    S_INT(p, workers);
    return true;
}

/* The payload: its spec field by field, arguments one by one, and the
 * host path it was read with. */
static bool s_payload_equal(const kt_scenario_t *sa, const kt_scenario_t *sb, char *buf,
                            size_t len)
{
    const kt_payload_spec_t *a = &sa->payload, *b = &sb->payload;
    const char *p = "payload";
    S_STR(p, name);
    S_STR(p, sha);
    S_INT(p, n_args);
    for (unsigned i = 0; i < a->n_args; i++)
        if (strcmp(kt_payload_arg(a, i), kt_payload_arg(b, i)) != 0)
            return s_differ(buf, len, "payload.args[%u]: '%s' != '%s'", i, kt_payload_arg(a, i),
                            kt_payload_arg(b, i));
    S_INT(p, timeout_ms);
    S_INT(p, max_output);
    S_INT(p, judge);
    S_STR(p, tap_test);
    S_INT(p, n_checks);
    for (unsigned i = 0; i < a->n_checks; i++) {
        char q[40];
        snprintf(q, sizeof(q), "payload.checks[%u]", i);
        S_INT(q, checks[i].kind);
        S_STR(q, checks[i].metric);
        S_DBL(q, checks[i].lo);
        S_DBL(q, checks[i].hi);
    }
    if (strcmp(sa->payload_binary, sb->payload_binary) != 0)
        return s_differ(buf, len, "payload_binary: '%s' != '%s'", sa->payload_binary,
                        sb->payload_binary);
    return true;
}

/* True when a and b are the same scenario; else false and the first
 * difference in buf ("cgroups[1].nice: -5 != 0"). */
static bool s_scenario_equal(const kt_scenario_t *a, const kt_scenario_t *b, char *buf, size_t len)
{
    const char *p = "scenario";
    char q[96];
    S_STR(p, name);
    S_STR(p, description);
    S_INT(p, duration_ms);
    S_INT(p, memory_mib);
    S_INT(p, constraints.min_llcs);
    S_INT(p, constraints.max_llcs);
    S_INT(p, constraints.min_cpus);
    S_INT(p, constraints.max_cpus);
    S_INT(p, constraints.min_numa);
    S_INT(p, constraints.max_numa);
    S_INT(p, constraints.requires_smt);
    if (!s_thresholds_equal(&a->thresholds, &b->thresholds, buf, len))
        return false;
    S_INT(p, n_cgroups);
    for (unsigned i = 0; i < a->n_cgroups; i++) {
        snprintf(q, sizeof(q), "cgroups[%u]", i);
        if (!s_cgroup_equal(q, &a->cgroups[i], &b->cgroups[i], buf, len))
            return false;
    }
    S_INT(p, n_faults);
    for (unsigned i = 0; i < a->n_faults; i++) {
        snprintf(q, sizeof(q), "faults[%u]", i);
        S_STR(q, faults[i].cgroup);
        S_INT(q, faults[i].worker);
        S_INT(q, faults[i].at_ms);
    }
    if (!s_payload_equal(a, b, buf, len))
        return false;
    S_INT(p, n_steps);
    for (unsigned i = 0; i < a->n_steps; i++) {
        snprintf(q, sizeof(q), "steps[%u]", i);
        S_INT(q, steps[i].n_ops);
        S_INT(q, steps[i].hold);
        S_DBL(q, steps[i].frac);
        S_INT(q, steps[i].ms);
        for (unsigned j = 0; j < a->steps[i].n_ops; j++) {
            char o[128];
            snprintf(o, sizeof(o), "steps[%u].ops[%u]", i, j);
            if (!s_op_equal(o, &a->steps[i].ops[j], &b->steps[i].ops[j], buf, len))
                return false;
        }
    }
    return true;
}

/* Emits s, parses the text back and compares; the text on failure. */
static void s_round_trip(const kt_scenario_t *s)
{
    char *text = NULL, err[1024] = "";
    int r = kt_scenario_emit_yaml(s, &text, err, sizeof(err));
    if (r < 0)
        fail_msg("emit '%s': %d: %s", s->name, r, err);
    assert_non_null(text);
    kt_scenario_t *back = malloc(sizeof(*back));
    assert_non_null(back);
    r = kt_scenario_yaml_parse(text, strlen(text), s->name, back, err, sizeof(err));
    if (r < 0) {
        print_message("---- emitted YAML of '%s' ----\n%s----\n", s->name, text);
        free(text);
        free(back);
        fail_msg("parse back '%s': %s", s->name, err);
    }
    char diff[512];
    if (!s_scenario_equal(s, back, diff, sizeof(diff))) {
        print_message("---- emitted YAML of '%s' ----\n%s----\n", s->name, text);
        free(text);
        free(back);
        fail_msg("'%s' read back differs: %s", s->name, diff);
    }
    free(text);
    free(back);
}

static kt_cgroup_spec_t s_cg(const char *name, unsigned workers)
{
    kt_cgroup_spec_t c = {.workers = workers, .work = KT_WORK_SPIN};
    snprintf(c.name, sizeof(c.name), "%s", name);
    return c;
}

/* A scenario with two plain cgroups, to which each case adds its feature. */
static kt_scenario_t *s_base(const char *name)
{
    kt_scenario_t *s = malloc(sizeof(*s));
    assert_non_null(s);
    kt_scenario_init(s, name);
    s->cgroups[s->n_cgroups++] = s_cg("cg_0", 2);
    s->cgroups[s->n_cgroups++] = s_cg("cg_1", 2);
    return s;
}

/* ---- what the parser has known from the start ---- */

static void test_builtins_round_trip(void **state)
{
    (void)state;
    unsigned n;
    const kt_scenario_t *all = kt_scenario_builtins(&n);
    assert_true(n >= 5);
    for (unsigned i = 0; i < n; i++)
        s_round_trip(&all[i]);
}

/* Every key of the original format, each away from its default. */
static void test_classic_fields_round_trip(void **state)
{
    (void)state;
    kt_scenario_t *s = s_base("classic.full-1");
    snprintf(s->description, sizeof(s->description), "every classic key");
    s->duration_ms = 1500;
    s->memory_mib = 768;
    s->constraints = (kt_constraints_t){2, 8, 4, 64, 1, 2, true};
    s->thresholds.check_starved = false;
    s->thresholds.max_spread_pct = 25.5;
    s->thresholds.max_gap_ms = 3250;
    s->thresholds.max_p99_wake_us = 750;
    s->thresholds.min_work_rate = 123.456;
    s->thresholds.max_callback_ns = 5000;
    assert_int_equal(kt_checks_callback_bound_add(&s->thresholds, "qmap_enqueue", 2000), 0);
    assert_int_equal(kt_checks_callback_bound_add(&s->thresholds, "qmap_dispatch", 9000), 0);
    s->cgroups[0].cpuset.kind = KT_CPUSET_PER_LLC;
    s->cgroups[0].work = KT_WORK_YIELD;
    s->cgroups[0].policy = KT_POLICY_BATCH;
    s->cgroups[0].nice = -5;
    s->cgroups[1].cpuset = (kt_cpuset_spec_t){.kind = KT_CPUSET_LLC, .index = 1};
    s->cgroups[1].workers = 0;
    s->cgroups[1].workers_per_cpu = 0.1; /* not exact in binary: printed to round-trip */
    s->cgroups[1].work = KT_WORK_BURSTY;
    s->cgroups[1].policy = KT_POLICY_IDLE;
    s->cgroups[1].nice = 19;
    kt_cgroup_spec_t node = s_cg("node0", 4);
    node.cpuset = (kt_cpuset_spec_t){.kind = KT_CPUSET_NODE, .index = 0};
    node.work = KT_WORK_PIPE_PINGPONG;
    s->cgroups[s->n_cgroups++] = node;
    kt_cgroup_spec_t listed = s_cg("listed", 1);
    listed.cpuset.kind = KT_CPUSET_LIST;
    snprintf(listed.cpuset.list, sizeof(listed.cpuset.list), "0-1,3");
    listed.work = KT_WORK_IO_SYNC;
    s->cgroups[s->n_cgroups++] = listed;
    s->faults[s->n_faults++] = (kt_fault_t){.cgroup = "listed", .worker = 0, .at_ms = 0};
    s->faults[s->n_faults++] = (kt_fault_t){.cgroup = "cg_0_1", .worker = 1, .at_ms = 1250};
    s_round_trip(s);

    /* Every work type, by its canonical name. */
    for (unsigned t = 0; t < KT_WORK__COUNT; t++) {
        kt_scenario_init(s, "work");
        s->cgroups[s->n_cgroups++] = s_cg("cg", 20); /* a multiple of every group size */
        s->cgroups[0].work = (enum kt_work_type)t;
        s_round_trip(s);
    }
    free(s);
}

/* Checks switched off; the bpf bound as one number. */
static void test_checks_off_round_trip(void **state)
{
    (void)state;
    kt_scenario_t *s = s_base("checks_off");
    s->thresholds.check_starved = false;
    s->thresholds.check_isolation = false;
    s->thresholds.check_spread = false;
    s->thresholds.check_gap = false;
    s_round_trip(s);
    kt_thresholds_default(&s->thresholds);
    s->thresholds.max_callback_ns = 750;
    s->thresholds.max_p99_wake_us = 2500;
    s_round_trip(s);
    /* Program bounds without a '*' bound. */
    kt_thresholds_default(&s->thresholds);
    assert_int_equal(kt_checks_callback_bound_add(&s->thresholds, "simple_enqueue", 1), 0);
    s_round_trip(s);
    free(s);
}

/* Strings that a plain scalar would change: nulls, booleans, numbers,
 * indicators, blanks at the ends, quotes, control characters, UTF-8. */
static void test_awkward_strings(void **state)
{
    (void)state;
    static const char *const texts[] = {
        "null",
        "~",
        "true",
        "no",
        "123",
        "1e5",
        "- dash",
        "# hash",
        "a: b",
        "a #b",
        "  lead",
        "trail ",
        "'single'",
        "\"double\" and \\back",
        "tab\tnew\nline",
        "été",
        "*star",
        "&amp",
        "!tag",
        "{flow}",
        "[seq]",
        "%pct",
        "@at",
        "`tick",
        "|pipe",
        ">fold",
        "?q",
        ",comma",
        "",
        "plain words, with a comma: fine",
    };
    kt_scenario_t *s = s_base("awkward");
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        snprintf(s->description, sizeof(s->description), "%s", texts[i]);
        s_round_trip(s);
    }
    /* Names from the whole allowed alphabet, including those YAML would
     * read as something else. */
    static const char *const names[] = {"null", "true", "0", "1.5", "-x", ".hidden", "a-b.c_d"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        kt_scenario_init(s, names[i]);
        s->cgroups[s->n_cgroups++] = s_cg(names[i], 1);
        s_round_trip(s);
    }
    free(s);
}

/* Defaults stay out of the text; what is set is written. */
static void test_defaults_left_out(void **state)
{
    (void)state;
    kt_scenario_t *s = s_base("short");
    char *text = NULL, err[256];
    assert_int_equal(kt_scenario_emit_yaml(s, &text, err, sizeof(err)), 0);
    assert_string_equal(text, "name: short\n"
                              "duration: 5s\n"
                              "cgroups:\n"
                              "- name: cg_0\n"
                              "  workers: 2\n"
                              "  work: spin\n"
                              "- name: cg_1\n"
                              "  workers: 2\n"
                              "  work: spin\n");
    free(text);

    s->duration_ms = 2500;
    s->cgroups[1].workers = 0;
    s->cgroups[1].workers_per_cpu = 0.5;
    s->cgroups[1].nice = -3;
    s->constraints.min_llcs = 2;
    s->thresholds.max_gap_ms = 3000;
    assert_int_equal(kt_scenario_emit_yaml(s, &text, err, sizeof(err)), 0);
    assert_string_equal(text, "name: short\n"
                              "duration: 2500ms\n"
                              "constraints:\n"
                              "  min_llcs: 2\n"
                              "checks:\n"
                              "  max_gap: 3000ms\n"
                              "cgroups:\n"
                              "- name: cg_0\n"
                              "  workers: 2\n"
                              "  work: spin\n"
                              "- name: cg_1\n"
                              "  workers_per_cpu: 0.5\n"
                              "  work: spin\n"
                              "  nice: -3\n");
    free(text);
    free(s);
}

/* Values the format cannot hold are refused with the field named, and the
 * output is left alone. */
static void test_refused(void **state)
{
    (void)state;
    kt_scenario_t *s = s_base("bad");
    char *text = (char *)"untouched", err[256] = "";
    s->cgroups[1].cpuset.kind = (enum kt_cpuset_kind)99;
    assert_int_equal(kt_scenario_emit_yaml(s, &text, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "cgroups[1].cpuset: unknown cpuset kind 99");
    assert_string_equal(text, "untouched");

    s->cgroups[1].cpuset.kind = KT_CPUSET_ALL;
    s->cgroups[0].workers = 0;
    s->cgroups[0].workers_per_cpu = NAN;
    assert_int_equal(kt_scenario_emit_yaml(s, &text, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "cgroups[0]: nan is not a finite number");

    s->cgroups[0].workers_per_cpu = 1;
    s->cgroups[0].work = KT_WORK__COUNT;
    assert_int_equal(kt_scenario_emit_yaml(s, &text, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "cgroups[0].work: unknown work type 19");

    s->cgroups[0].work = KT_WORK_SPIN;
    s->n_steps = 1;
    s->steps[0].n_ops = 1;
    s->steps[0].ops[0].kind = KT_OP__COUNT;
    assert_int_equal(kt_scenario_emit_yaml(s, &text, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "steps[0].ops[0]: unknown op kind 9");
    assert_string_equal(text, "untouched");
    free(s);
}

static void test_constraints_text(void **state)
{
    (void)state;
    char buf[128];
    kt_constraints_t c = {0};
    kt_scenario_emit_constraints(&c, buf, sizeof(buf));
    assert_string_equal(buf, "-");
    c = (kt_constraints_t){.min_llcs = 2, .min_cpus = 2, .requires_smt = true};
    kt_scenario_emit_constraints(&c, buf, sizeof(buf));
    assert_string_equal(buf, "llcs>=2 cpus>=2 smt");
    c = (kt_constraints_t){
        .max_llcs = 1, .min_cpus = 4, .max_cpus = 64, .min_numa = 2, .max_numa = 2};
    kt_scenario_emit_constraints(&c, buf, sizeof(buf));
    assert_string_equal(buf, "llcs<=1 cpus=4..64 numa=2");
    char small[8];
    kt_scenario_emit_constraints(&c, small, sizeof(small));
    assert_int_equal(strlen(small), sizeof(small) - 1);
}

/* ---- the fields of steps, ops, affinities and the new cpusets and
 * policies: these need the parser to know them ---- */

static void test_cpuset_kinds_round_trip(void **state)
{
    (void)state;
    const kt_cpuset_spec_t sets[] = {
        {.kind = KT_CPUSET_RANGE, .lo = 0, .hi = 0.5},
        {.kind = KT_CPUSET_RANGE, .lo = 1.0 / 3, .hi = 1},
        {.kind = KT_CPUSET_DISJOINT, .index = 1, .of = 3},
        {.kind = KT_CPUSET_OVERLAP, .index = 1, .of = 2, .overlap = 0.25},
        {.kind = KT_CPUSET_OVERLAP, .index = 0, .of = 4, .overlap = 1},
    };
    kt_scenario_t *s = s_base("cpusets");
    for (size_t i = 0; i < sizeof(sets) / sizeof(sets[0]); i++) {
        s->cgroups[1].cpuset = sets[i];
        s_round_trip(s);
    }
    free(s);
}

static void test_policies_round_trip(void **state)
{
    (void)state;
    kt_scenario_t *s = s_base("policies");
    s->cgroups[0].policy = KT_POLICY_FIFO;
    s->cgroups[0].rt_priority = 10;
    s->cgroups[1].policy = KT_POLICY_RR;
    s->cgroups[1].rt_priority = KT_RT_PRIORITY_MAX;
    s_round_trip(s);
    free(s);
}

static void test_affinity_kinds_round_trip(void **state)
{
    (void)state;
    kt_scenario_t *s = s_base("affinities");
    for (unsigned k = 0; k < KT_AFFINITY__COUNT; k++) {
        kt_affinity_spec_t a = {.kind = (enum kt_affinity_kind)k};
        if (k == KT_AFFINITY_RANDOM)
            a.count = 3;
        if (k == KT_AFFINITY_EXACT)
            snprintf(a.list, sizeof(a.list), "0-1,3");
        s->cgroups[0].affinity = a;
        s_round_trip(s);
    }
    free(s);
}

static void test_deferred_round_trip(void **state)
{
    (void)state;
    kt_scenario_t *s = s_base("deferred");
    s->cgroups[1].deferred = true;
    s->n_steps = 1;
    s->steps[0] = (kt_step_spec_t){.n_ops = 1, .hold = KT_HOLD_FRAC, .frac = 0.5};
    s->steps[0].ops[0] = (kt_op_spec_t){.kind = KT_OP_ADD_CGROUP, .cgroup = "cg_1"};
    s_round_trip(s);
    free(s);
}

static kt_op_spec_t s_op(enum kt_op_kind kind, const char *cgroup, const char *target)
{
    kt_op_spec_t op = {.kind = kind};
    snprintf(op.cgroup, sizeof(op.cgroup), "%s", cgroup);
    snprintf(op.target, sizeof(op.target), "%s", target ? target : "");
    return op;
}

/* Every op kind, every hold kind. */
static void test_steps_round_trip(void **state)
{
    (void)state;
    kt_scenario_t *s = s_base("steps");
    s->duration_ms = 10000;
    kt_cgroup_spec_t late = s_cg("cg_late", 2);
    late.deferred = true;
    s->cgroups[s->n_cgroups++] = late;

    kt_step_spec_t *st = &s->steps[s->n_steps++];
    st->hold = KT_HOLD_FRAC;
    st->frac = 0.25;
    st->ops[st->n_ops] = s_op(KT_OP_SET_CPUSET, "cg_0", NULL);
    st->ops[st->n_ops++].cpuset =
        (kt_cpuset_spec_t){.kind = KT_CPUSET_DISJOINT, .index = 0, .of = 2};
    st->ops[st->n_ops] = s_op(KT_OP_SET_CPUSET, "cg_1", NULL);
    st->ops[st->n_ops++].cpuset = (kt_cpuset_spec_t){.kind = KT_CPUSET_LLC, .index = 1};
    st->ops[st->n_ops++] = s_op(KT_OP_ADD_CGROUP, "cg_late", NULL);

    st = &s->steps[s->n_steps++];
    st->hold = KT_HOLD_FIXED;
    st->ms = 2000;
    st->ops[st->n_ops++] = s_op(KT_OP_SWAP_CPUSETS, "cg_0", "cg_1");
    st->ops[st->n_ops] = s_op(KT_OP_SPAWN, "cg_0", NULL);
    st->ops[st->n_ops++].workers = 2;
    st->ops[st->n_ops] = s_op(KT_OP_SET_AFFINITY, "cg_0", NULL);
    st->ops[st->n_ops++].affinity = (kt_affinity_spec_t){.kind = KT_AFFINITY_SINGLE};
    st->ops[st->n_ops] = s_op(KT_OP_SET_AFFINITY, "cg_1", NULL);
    st->ops[st->n_ops++].affinity = (kt_affinity_spec_t){.kind = KT_AFFINITY_RANDOM, .count = 2};

    st = &s->steps[s->n_steps++];
    st->hold = KT_HOLD_FIXED;
    st->ms = 500;
    st->ops[st->n_ops++] = s_op(KT_OP_MOVE_TASKS, "cg_0", "cg_1");
    st->ops[st->n_ops++] = s_op(KT_OP_STOP, "cg_late", NULL);

    st = &s->steps[s->n_steps++];
    st->hold = KT_HOLD_LOOP;
    st->ms = 500;
    st->ops[st->n_ops++] = s_op(KT_OP_CLEAR_CPUSET, "cg_0", NULL);
    st->ops[st->n_ops++] = s_op(KT_OP_REMOVE_CGROUP, "cg_late", NULL);
    st->ops[st->n_ops] = s_op(KT_OP_SET_CPUSET, "cg_1", NULL);
    st->ops[st->n_ops].cpuset = (kt_cpuset_spec_t){.kind = KT_CPUSET_LIST};
    snprintf(st->ops[st->n_ops++].cpuset.list, sizeof(st->ops[0].cpuset.list), "0,2");
    s_round_trip(s);

    /* Each op kind appears in the steps above. */
    bool seen[KT_OP__COUNT] = {false};
    for (unsigned i = 0; i < s->n_steps; i++)
        for (unsigned j = 0; j < s->steps[i].n_ops; j++)
            seen[s->steps[i].ops[j].kind] = true;
    for (unsigned k = 0; k < KT_OP__COUNT; k++)
        if (!seen[k])
            fail_msg("op %s is not covered", kt_op_kind_name((enum kt_op_kind)k));
    free(s);
}

static void s_set_payload(kt_scenario_t *s, const char *binary)
{
    kt_payload_spec_init(&s->payload);
    const char *base = strrchr(binary, '/');
    snprintf(s->payload.name, sizeof(s->payload.name), "%s", base ? base + 1 : binary);
    snprintf(s->payload_binary, sizeof(s->payload_binary), "%s", binary);
}

static void s_add_check(kt_scenario_t *s, const char *text)
{
    kt_payload_check_t c;
    char why[256];
    if (kt_payload_check_parse(text, &c, why, sizeof(why)) < 0)
        fail_msg("check '%s': %s", text, why);
    assert_int_equal(kt_payload_check_add(&s->payload, &c), 0);
}

/* A payload beside workers with every key away from its default, one with
 * no cgroups at all, and the short text of a payload with defaults. */
static void test_payload_round_trip(void **state)
{
    (void)state;
    kt_scenario_t *s = s_base("with_payload");
    s_set_payload(s, "../bin/bench");
    static const char *const args[] = {"-n", "4", "two words", "null", "--x=1", "# not a comment"};
    assert_int_equal(kt_payload_args_set(&s->payload, args, 6), 0);
    s_add_check(s, "ops>=1000");
    s_add_check(s, "lat.p99<=2.5");
    s_add_check(s, "ratio=0.1..0.3");
    s_add_check(s, "runs.0.n==7");
    s_add_check(s, "exit==3");
    s->payload.judge = KT_PAYLOAD_JUDGE_TAP;
    snprintf(s->payload.tap_test, sizeof(s->payload.tap_test), "%s", "minimal test");
    s->payload.timeout_ms = 2500;
    s->payload.max_output = 4096;
    s_round_trip(s);

    kt_scenario_init(s, "payload_alone");
    s_set_payload(s, "bench");
    s_add_check(s, "score>=1e-3");
    s_round_trip(s);
    char *text = NULL, err[256];
    assert_int_equal(kt_scenario_emit_yaml(s, &text, err, sizeof(err)), 0);
    assert_string_equal(text, "name: payload_alone\n"
                              "duration: 5s\n"
                              "payload:\n"
                              "  binary: bench\n"
                              "  checks:\n"
                              "  - score>=0.001\n");
    free(text);
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_builtins_round_trip),
        cmocka_unit_test(test_classic_fields_round_trip),
        cmocka_unit_test(test_checks_off_round_trip),
        cmocka_unit_test(test_awkward_strings),
        cmocka_unit_test(test_defaults_left_out),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_constraints_text),
        cmocka_unit_test(test_cpuset_kinds_round_trip),
        cmocka_unit_test(test_policies_round_trip),
        cmocka_unit_test(test_affinity_kinds_round_trip),
        cmocka_unit_test(test_deferred_round_trip),
        cmocka_unit_test(test_steps_round_trip),
        cmocka_unit_test(test_payload_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
