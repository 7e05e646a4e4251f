/* Scenarios written as YAML with libfyaml's node API, in the grammar of
 * kt_scenario_yaml.c, so that reading the text back gives the same
 * kt_scenario_t. Values at their default are left out to keep the files
 * short; everything else is written. */
#include "kt_scenario_emit.h"

#include <ctype.h>
#include <errno.h>
#include <libfyaml.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kt_cleanup.h"

typedef struct s_emit {
    struct fy_document *doc;
    int r; /* the first failure; every helper does nothing once it is set */
    char *err;
    size_t err_len;
} s_emit_t;

static void s_oom(s_emit_t *e)
{
    if (e->r == 0) {
        e->r = -ENOMEM;
        snprintf(e->err, e->err_len, "out of memory building the YAML document");
    }
}

__attribute__((format(printf, 2, 3))) static void s_invalid(s_emit_t *e, const char *fmt, ...)
{
    if (e->r)
        return;
    e->r = -EINVAL;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->err, e->err_len, fmt, ap);
    va_end(ap);
}

static struct fy_node *s_checked(s_emit_t *e, struct fy_node *n)
{
    if (!n)
        s_oom(e);
    return n;
}

/* A scalar the emitter may write plain: numbers, booleans and durations
 * this file formats. */
static struct fy_node *s_plain(s_emit_t *e, const char *text)
{
    if (e->r)
        return NULL;
    return s_checked(e, fy_node_create_scalar_copy(e->doc, text, strlen(text)));
}

__attribute__((format(printf, 2, 3))) static struct fy_node *s_plainf(s_emit_t *e, const char *fmt,
                                                                      ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    return s_plain(e, buf);
}

/* Text that reads back as the same string when written plain: no blank at
 * either end, no YAML indicator at the start, no ": " or " #" inside, and
 * not a word a YAML reader takes for a null, a boolean or a number. */
static bool s_plain_safe(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || !(isalnum((unsigned char)s[0]) || s[0] == '_' || s[0] == '.'))
        return false;
    if (s[n - 1] == ' ' || s[n - 1] == ':')
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!isalnum(c) && !strchr("_.-/,:+=()<>%' ", c))
            return false;
        if (c == ':' && s[i + 1] == ' ')
            return false;
        if (c == ' ' && s[i + 1] == '#')
            return false;
    }
    static const char *const words[] = {"null",  "Null",  "NULL", "true", "True", "TRUE", "false",
                                        "False", "FALSE", "yes",  "Yes",  "YES",  "no",   "No",
                                        "NO",    "on",    "On",   "ON",   "off",  "Off",  "OFF",
                                        ".inf",  ".Inf",  ".INF", ".nan", ".NaN", ".NAN"};
    for (size_t i = 0; i < KT_ARRAY_SIZE(words); i++)
        if (strcmp(s, words[i]) == 0)
            return false;
    return strspn(s, "0123456789.eE+-") != n;
}

/* A string value. libfyaml 0.7.12 writes a created scalar plain whatever
 * its text ("  x" loses its blanks, "- x" turns into a sequence, "null"
 * into a null) and has no call to choose a scalar's style; a double-quoted
 * scalar built from YAML source keeps its style when written, so text that
 * is not safe plain goes that way, escaped. */
static struct fy_node *s_text(s_emit_t *e, const char *text)
{
    if (e->r)
        return NULL;
    if (s_plain_safe(text))
        return s_plain(e, text);
    size_t n = strlen(text);
    _cleanup_free_ char *q = malloc(n * 4 + 3);
    if (!q) {
        s_oom(e);
        return NULL;
    }
    char *p = q;
    *p++ = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c == '"' || c == '\\') {
            *p++ = '\\';
            *p++ = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            p += sprintf(p, "\\x%02x", c);
        } else {
            *p++ = (char)c;
        }
    }
    *p++ = '"';
    *p = '\0';
    /* The node points into the text, which the document frees with itself
     * (and libfyaml frees on a failure too). */
    size_t qlen = (size_t)(p - q);
    struct fy_node *node = fy_node_build_from_malloc_string(e->doc, TAKE_PTR(q), qlen);
    if (!node)
        s_invalid(e, "cannot write '%s' as a YAML string (invalid UTF-8?)", text);
    return node;
}

static struct fy_node *s_map(s_emit_t *e)
{
    return e->r ? NULL : s_checked(e, fy_node_create_mapping(e->doc));
}

static struct fy_node *s_seq(s_emit_t *e)
{
    return e->r ? NULL : s_checked(e, fy_node_create_sequence(e->doc));
}

/* map[key] = val; val is the map's (or freed) from here on. */
static void s_put(s_emit_t *e, struct fy_node *map, const char *key, struct fy_node *val)
{
    struct fy_node *k = e->r || !map || !val ? NULL : s_text(e, key);
    if (k && fy_node_mapping_append(map, k, val) == 0)
        return;
    if (k) {
        s_oom(e);
        fy_node_free(k);
    }
    if (val)
        fy_node_free(val);
}

static void s_append(s_emit_t *e, struct fy_node *seq, struct fy_node *val)
{
    if (!e->r && seq && val && fy_node_sequence_append(seq, val) == 0)
        return;
    if (!e->r && seq && val)
        s_oom(e);
    if (val)
        fy_node_free(val);
}

/* The shortest decimal text strtod reads back to exactly v ("0.5", not
 * "0.50000000000000000"). */
static void s_double_text(double v, char *buf, size_t len)
{
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, len, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            return;
    }
}

static struct fy_node *s_number(s_emit_t *e, double v, const char *path)
{
    if (!isfinite(v)) {
        s_invalid(e, "%s: %g is not a finite number", path, v);
        return NULL;
    }
    char buf[40];
    s_double_text(v, buf, sizeof(buf));
    return s_plain(e, buf);
}

/* "3s" when whole seconds, else "250ms" (also "0ms"). */
static struct fy_node *s_duration(s_emit_t *e, uint32_t ms)
{
    if (ms && ms % 1000 == 0)
        return s_plainf(e, "%us", ms / 1000);
    return s_plainf(e, "%ums", ms);
}

static void s_cpuset_text(s_emit_t *e, const kt_cpuset_spec_t *cs, const char *path, char *buf,
                          size_t len)
{
    char lo[40], hi[40], ov[40];
    switch (cs->kind) {
    case KT_CPUSET_ALL:
        snprintf(buf, len, "all");
        return;
    case KT_CPUSET_LLC:
        snprintf(buf, len, "llc:%u", cs->index);
        return;
    case KT_CPUSET_NODE:
        snprintf(buf, len, "node:%u", cs->index);
        return;
    case KT_CPUSET_PER_LLC:
        snprintf(buf, len, "per-llc");
        return;
    case KT_CPUSET_LIST:
        if (!cs->list[0])
            s_invalid(e, "%s: an exact cpuset with an empty CPU list", path);
        snprintf(buf, len, "%s", cs->list);
        return;
    case KT_CPUSET_RANGE:
        if (!isfinite(cs->lo) || !isfinite(cs->hi)) {
            s_invalid(e, "%s: range bounds are not finite numbers", path);
            return;
        }
        s_double_text(cs->lo, lo, sizeof(lo));
        s_double_text(cs->hi, hi, sizeof(hi));
        snprintf(buf, len, "range:%s..%s", lo, hi);
        return;
    case KT_CPUSET_DISJOINT:
        snprintf(buf, len, "disjoint:%u/%u", cs->index, cs->of);
        return;
    case KT_CPUSET_OVERLAP:
        if (!isfinite(cs->overlap)) {
            s_invalid(e, "%s: the overlap is not a finite number", path);
            return;
        }
        s_double_text(cs->overlap, ov, sizeof(ov));
        snprintf(buf, len, "overlap:%u/%u:%s", cs->index, cs->of, ov);
        return;
    }
    s_invalid(e, "%s: unknown cpuset kind %d", path, (int)cs->kind);
}

static struct fy_node *s_cpuset(s_emit_t *e, const kt_cpuset_spec_t *cs, const char *path)
{
    char buf[sizeof(cs->list) + 16];
    s_cpuset_text(e, cs, path, buf, sizeof(buf));
    return s_text(e, buf);
}

static struct fy_node *s_affinity(s_emit_t *e, const kt_affinity_spec_t *a, const char *path)
{
    char buf[sizeof(a->list) + 16];
    switch (a->kind) {
    case KT_AFFINITY_RANDOM:
        snprintf(buf, sizeof(buf), "random:%u", a->count);
        break;
    case KT_AFFINITY_EXACT:
        if (!a->list[0])
            s_invalid(e, "%s: an exact affinity with an empty CPU list", path);
        snprintf(buf, sizeof(buf), "exact:%s", a->list);
        break;
    case KT_AFFINITY_INHERIT:
    case KT_AFFINITY_LLC:
    case KT_AFFINITY_CROSS:
    case KT_AFFINITY_SINGLE:
        snprintf(buf, sizeof(buf), "%s", kt_affinity_kind_name(a->kind));
        break;
    default:
        s_invalid(e, "%s: unknown affinity kind %d", path, (int)a->kind);
        return NULL;
    }
    return s_text(e, buf);
}

static struct fy_node *s_cgroup(s_emit_t *e, const kt_cgroup_spec_t *cg, unsigned idx)
{
    char path[64];
    snprintf(path, sizeof(path), "cgroups[%u]", idx);
    struct fy_node *m = s_map(e);
    s_put(e, m, "name", s_text(e, cg->name));
    if (cg->cpuset.kind != KT_CPUSET_ALL) {
        char sub[80];
        snprintf(sub, sizeof(sub), "%s.cpuset", path);
        s_put(e, m, "cpuset", s_cpuset(e, &cg->cpuset, sub));
    }
    if (cg->workers || cg->workers_per_cpu == 0)
        s_put(e, m, "workers", s_plainf(e, "%u", cg->workers));
    else
        s_put(e, m, "workers_per_cpu", s_number(e, cg->workers_per_cpu, path));
    if ((unsigned)cg->work >= KT_WORK__COUNT)
        s_invalid(e, "%s.work: unknown work type %d", path, (int)cg->work);
    s_put(e, m, "work", s_text(e, kt_work_type_name(cg->work)));
    if (cg->policy != KT_POLICY_NORMAL) {
        const char *name = kt_sched_policy_name(cg->policy);
        if (strcmp(name, "unknown") == 0)
            s_invalid(e, "%s.policy: unknown policy %d", path, (int)cg->policy);
        s_put(e, m, "policy", s_text(e, name));
    }
    if (cg->rt_priority)
        s_put(e, m, "rt_priority", s_plainf(e, "%u", cg->rt_priority));
    if (cg->nice)
        s_put(e, m, "nice", s_plainf(e, "%d", cg->nice));
    if (cg->affinity.kind != KT_AFFINITY_INHERIT) {
        char sub[80];
        snprintf(sub, sizeof(sub), "%s.affinity", path);
        s_put(e, m, "affinity", s_affinity(e, &cg->affinity, sub));
    }
    if (cg->deferred)
        s_put(e, m, "deferred", s_plain(e, "true"));
    return m;
}

static struct fy_node *s_op(s_emit_t *e, const kt_op_spec_t *op, const char *path)
{
    if ((unsigned)op->kind >= KT_OP__COUNT) {
        s_invalid(e, "%s: unknown op kind %d", path, (int)op->kind);
        return NULL;
    }
    char sub[128];
    struct fy_node *m = s_map(e);
    s_put(e, m, "op", s_text(e, kt_op_kind_name(op->kind)));
    s_put(e, m, "cgroup", s_text(e, op->cgroup));
    switch (op->kind) {
    case KT_OP_SWAP_CPUSETS:
    case KT_OP_MOVE_TASKS:
        s_put(e, m, "target", s_text(e, op->target));
        break;
    case KT_OP_SET_CPUSET:
        snprintf(sub, sizeof(sub), "%s.cpuset", path);
        s_put(e, m, "cpuset", s_cpuset(e, &op->cpuset, sub));
        break;
    case KT_OP_SET_AFFINITY:
        snprintf(sub, sizeof(sub), "%s.affinity", path);
        s_put(e, m, "affinity", s_affinity(e, &op->affinity, sub));
        break;
    case KT_OP_SPAWN:
        s_put(e, m, "workers", s_plainf(e, "%u", op->workers));
        break;
    default:
        break;
    }
    return m;
}

static struct fy_node *s_step(s_emit_t *e, const kt_step_spec_t *st, unsigned idx)
{
    char path[64], sub[96];
    snprintf(path, sizeof(path), "steps[%u]", idx);
    if (st->n_ops > KT_MAX_OPS) {
        s_invalid(e, "%s: %u ops, limit %d", path, st->n_ops, KT_MAX_OPS);
        return NULL;
    }
    struct fy_node *m = s_map(e);
    struct fy_node *ops = s_seq(e);
    for (unsigned i = 0; i < st->n_ops; i++) {
        snprintf(sub, sizeof(sub), "%s.ops[%u]", path, i);
        s_append(e, ops, s_op(e, &st->ops[i], sub));
    }
    s_put(e, m, "ops", ops);
    switch (st->hold) {
    case KT_HOLD_FRAC:
        snprintf(sub, sizeof(sub), "%s.hold", path);
        s_put(e, m, "hold", s_number(e, st->frac, sub));
        break;
    case KT_HOLD_FIXED:
        s_put(e, m, "hold", s_duration(e, st->ms));
        break;
    case KT_HOLD_LOOP:
        s_put(e, m, "hold", s_plainf(e, "loop:%ums", st->ms));
        break;
    default:
        s_invalid(e, "%s.hold: unknown hold kind %d", path, (int)st->hold);
    }
    return m;
}

static struct fy_node *s_constraints(s_emit_t *e, const kt_constraints_t *c)
{
    const struct {
        const char *key;
        unsigned v;
    } bounds[] = {{"min_llcs", c->min_llcs}, {"max_llcs", c->max_llcs}, {"min_cpus", c->min_cpus},
                  {"max_cpus", c->max_cpus}, {"min_numa", c->min_numa}, {"max_numa", c->max_numa}};
    struct fy_node *m = s_map(e);
    for (size_t i = 0; i < KT_ARRAY_SIZE(bounds); i++)
        if (bounds[i].v)
            s_put(e, m, bounds[i].key, s_plainf(e, "%u", bounds[i].v));
    if (c->requires_smt)
        s_put(e, m, "requires_smt", s_plain(e, "true"));
    return m;
}

/* The checks that differ from kt_thresholds_default, in s_checks' keys and
 * units; NULL (and nothing to write) when none does. */
static struct fy_node *s_checks(s_emit_t *e, const kt_thresholds_t *t)
{
    kt_thresholds_t d;
    kt_thresholds_default(&d);
    if (t->n_callback_bounds > KT_MAX_CALLBACK_BOUNDS) {
        s_invalid(e, "checks.bpf_callback_ns: %u program bounds, limit %d", t->n_callback_bounds,
                  KT_MAX_CALLBACK_BOUNDS);
        return NULL;
    }
    bool spread = t->check_spread != d.check_spread ||
                  (t->check_spread && t->max_spread_pct != d.max_spread_pct);
    bool gap = t->check_gap != d.check_gap || (t->check_gap && t->max_gap_ms != d.max_gap_ms);
    if (t->check_starved == d.check_starved && t->check_isolation == d.check_isolation && !spread &&
        !gap && !t->max_p99_wake_us && t->min_work_rate == 0 && !t->max_callback_ns &&
        !t->n_callback_bounds)
        return NULL;
    struct fy_node *m = s_map(e);
    if (t->check_starved != d.check_starved)
        s_put(e, m, "not_starved", s_plain(e, t->check_starved ? "true" : "false"));
    if (t->check_isolation != d.check_isolation)
        s_put(e, m, "cpuset_isolation", s_plain(e, t->check_isolation ? "true" : "false"));
    if (spread)
        s_put(e, m, "fairness_spread",
              t->check_spread ? s_number(e, t->max_spread_pct, "checks.fairness_spread")
                              : s_plain(e, "false"));
    if (gap)
        s_put(e, m, "max_gap",
              t->check_gap ? s_plainf(e, "%ums", t->max_gap_ms) : s_plain(e, "false"));
    if (t->max_p99_wake_us)
        s_put(e, m, "wake_p99",
              t->max_p99_wake_us % 1000 == 0 ? s_plainf(e, "%ums", t->max_p99_wake_us / 1000)
                                             : s_plainf(e, "%uus", t->max_p99_wake_us));
    if (t->min_work_rate != 0)
        s_put(e, m, "work_rate", s_number(e, t->min_work_rate, "checks.work_rate"));
    if (t->n_callback_bounds) {
        struct fy_node *b = s_map(e);
        if (t->max_callback_ns)
            s_put(e, b, "*", s_plainf(e, "%u", t->max_callback_ns));
        for (unsigned i = 0; i < t->n_callback_bounds; i++)
            s_put(e, b, t->callback_bounds[i].prog,
                  s_plainf(e, "%u", t->callback_bounds[i].max_ns));
        s_put(e, m, "bpf_callback_ns", b);
    } else if (t->max_callback_ns) {
        s_put(e, m, "bpf_callback_ns", s_plainf(e, "%u", t->max_callback_ns));
    }
    return m;
}

/* A payload check in kt_payload_check_parse's grammar, with the shortest
 * numbers that read back exactly ("ops>=1000", not "ops>=1000.0000000000"). */
static void s_payload_check_text(const kt_payload_check_t *c, char *buf, size_t len)
{
    char lo[40], hi[40];
    s_double_text(c->lo, lo, sizeof(lo));
    s_double_text(c->hi, hi, sizeof(hi));
    switch (c->kind) {
    case KT_PAYLOAD_CHECK_MIN:
        snprintf(buf, len, "%s>=%s", c->metric, lo);
        break;
    case KT_PAYLOAD_CHECK_MAX:
        snprintf(buf, len, "%s<=%s", c->metric, hi);
        break;
    case KT_PAYLOAD_CHECK_RANGE:
        if (c->lo == c->hi)
            snprintf(buf, len, "%s==%s", c->metric, lo);
        else
            snprintf(buf, len, "%s=%s..%s", c->metric, lo, hi);
        break;
    case KT_PAYLOAD_CHECK_EXIT:
        snprintf(buf, len, "exit==%d", (int)c->lo);
        break;
    default:
        buf[0] = '\0';
    }
}

/* binary is the host path kept with the scenario (the file name alone when
 * there is none); arguments always as a sequence, one string each. */
static struct fy_node *s_payload(s_emit_t *e, const kt_scenario_t *s)
{
    const kt_payload_spec_t *p = &s->payload;
    if (p->n_args > KT_PAYLOAD_ARGS_MAX || p->n_checks > KT_PAYLOAD_CHECKS_MAX) {
        s_invalid(e, "payload: %u arguments, %u checks: over the limits %d, %d", p->n_args,
                  p->n_checks, KT_PAYLOAD_ARGS_MAX, KT_PAYLOAD_CHECKS_MAX);
        return NULL;
    }
    struct fy_node *m = s_map(e);
    s_put(e, m, "binary", s_text(e, s->payload_binary[0] ? s->payload_binary : p->name));
    if (p->n_args) {
        struct fy_node *args = s_seq(e);
        for (unsigned i = 0; i < p->n_args; i++) {
            const char *a = kt_payload_arg(p, i);
            s_append(e, args, s_text(e, a ? a : ""));
        }
        s_put(e, m, "args", args);
    }
    if (p->n_checks) {
        struct fy_node *checks = s_seq(e);
        for (unsigned i = 0; i < p->n_checks; i++) {
            char text[160];
            s_payload_check_text(&p->checks[i], text, sizeof(text));
            if (!text[0]) {
                s_invalid(e, "payload.checks[%u]: unknown kind %d", i, (int)p->checks[i].kind);
                break;
            }
            s_append(e, checks, s_text(e, text));
        }
        s_put(e, m, "checks", checks);
    }
    if (p->judge == KT_PAYLOAD_JUDGE_TAP)
        s_put(e, m, "judge", s_plain(e, "tap"));
    if (p->tap_test[0])
        s_put(e, m, "tap_test", s_text(e, p->tap_test));
    if (p->timeout_ms != KT_PAYLOAD_TIMEOUT_DEFAULT_MS)
        s_put(e, m, "timeout", s_duration(e, p->timeout_ms));
    if (p->max_output != KT_PAYLOAD_OUTPUT_DEFAULT)
        s_put(e, m, "output_bytes", s_plainf(e, "%u", p->max_output));
    return m;
}

static struct fy_node *s_scenario(s_emit_t *e, const kt_scenario_t *s)
{
    if (s->n_cgroups > KT_MAX_CGROUPS || s->n_faults > KT_MAX_FAULTS || s->n_steps > KT_MAX_STEPS) {
        s_invalid(e, "scenario '%s': %u cgroups, %u faults, %u steps: over the limits %d, %d, %d",
                  s->name, s->n_cgroups, s->n_faults, s->n_steps, KT_MAX_CGROUPS, KT_MAX_FAULTS,
                  KT_MAX_STEPS);
        return NULL;
    }
    struct fy_node *root = s_map(e);
    s_put(e, root, "name", s_text(e, s->name));
    if (s->description[0])
        s_put(e, root, "description", s_text(e, s->description));
    s_put(e, root, "duration", s_duration(e, s->duration_ms));
    if (s->memory_mib)
        s_put(e, root, "memory_mib", s_plainf(e, "%llu", (unsigned long long)s->memory_mib));
    static const kt_constraints_t none;
    if (memcmp(&s->constraints, &none, sizeof(none)) != 0)
        s_put(e, root, "constraints", s_constraints(e, &s->constraints));
    struct fy_node *checks = s_checks(e, &s->thresholds);
    if (checks)
        s_put(e, root, "checks", checks);
    bool payload = kt_payload_present(&s->payload);
    if (payload)
        s_put(e, root, "payload", s_payload(e, s));
    /* Without cgroups the payload is the whole workload: no key then. */
    if (s->n_cgroups || !payload) {
        struct fy_node *cgroups = s_seq(e);
        for (unsigned i = 0; i < s->n_cgroups; i++)
            s_append(e, cgroups, s_cgroup(e, &s->cgroups[i], i));
        s_put(e, root, "cgroups", cgroups);
    }
    if (s->n_faults) {
        struct fy_node *faults = s_seq(e);
        for (unsigned i = 0; i < s->n_faults; i++) {
            const kt_fault_t *f = &s->faults[i];
            struct fy_node *m = s_map(e);
            s_put(e, m, "cgroup", s_text(e, f->cgroup));
            s_put(e, m, "worker", s_plainf(e, "%u", f->worker));
            s_put(e, m, "at", s_plainf(e, "%ums", f->at_ms));
            s_append(e, faults, m);
        }
        s_put(e, root, "faults", faults);
    }
    if (s->n_steps) {
        struct fy_node *steps = s_seq(e);
        for (unsigned i = 0; i < s->n_steps; i++)
            s_append(e, steps, s_step(e, &s->steps[i], i));
        s_put(e, root, "steps", steps);
    }
    return root;
}

static void s_document_freep(struct fy_document **d)
{
    if (*d)
        fy_document_destroy(*d);
}

int kt_scenario_emit_yaml(const kt_scenario_t *s, char **ret_text, char *err, size_t err_len)
{
    char dummy[1];
    s_emit_t e = {.err = err ? err : dummy, .err_len = err ? err_len : sizeof(dummy)};
    _cleanup_(s_document_freep) struct fy_document *doc = fy_document_create(NULL);
    if (!doc) {
        s_oom(&e);
        return e.r;
    }
    e.doc = doc;
    struct fy_node *root = s_scenario(&e, s);
    if (e.r == 0 && fy_document_set_root(doc, root) != 0)
        s_oom(&e);
    else if (e.r == 0)
        root = NULL;
    if (root)
        fy_node_free(root);
    if (e.r < 0)
        return e.r;
    char *text = fy_emit_document_to_string(doc, FYECF_MODE_BLOCK | FYECF_INDENT_2 |
                                                     FYECF_WIDTH_INF | FYECF_DOC_START_MARK_OFF);
    if (!text) {
        s_oom(&e);
        return e.r;
    }
    *ret_text = text;
    return 0;
}

void kt_scenario_emit_constraints(const kt_constraints_t *c, char *buf, size_t len)
{
    const struct {
        const char *what;
        unsigned lo, hi;
    } b[] = {{"llcs", c->min_llcs, c->max_llcs},
             {"cpus", c->min_cpus, c->max_cpus},
             {"numa", c->min_numa, c->max_numa}};
    size_t off = 0;
    buf[0] = '\0';
#define S_ADD(...)                                                                                 \
    do {                                                                                           \
        if (off < len)                                                                             \
            off += (size_t)snprintf(buf + off, len - off, __VA_ARGS__);                            \
    } while (0)
    for (size_t i = 0; i < KT_ARRAY_SIZE(b); i++) {
        const char *sep = off ? " " : "";
        if (b[i].lo && b[i].lo == b[i].hi)
            S_ADD("%s%s=%u", sep, b[i].what, b[i].lo);
        else if (b[i].lo && b[i].hi)
            S_ADD("%s%s=%u..%u", sep, b[i].what, b[i].lo, b[i].hi);
        else if (b[i].lo)
            S_ADD("%s%s>=%u", sep, b[i].what, b[i].lo);
        else if (b[i].hi)
            S_ADD("%s%s<=%u", sep, b[i].what, b[i].hi);
    }
    if (c->requires_smt)
        S_ADD("%ssmt", off ? " " : "");
#undef S_ADD
    if (!off)
        snprintf(buf, len, "-");
}
