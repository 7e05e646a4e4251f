/* A cell's figures from its sidecar (see kt_metrics.h). */
#include "kt_metrics.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_NAME_MAX 256

/* Sets name = v unless v is not a finite number. A name already taken gets
 * #2, #3... in the order the sidecar lists them, so that per-phase entries
 * of one check line up between two runs of the same cell. */
static void s_put(json_t *out, const char *name, double v)
{
    if (!isfinite(v))
        return;
    char key[S_NAME_MAX + 8];
    snprintf(key, sizeof(key), "%.*s", S_NAME_MAX, name);
    for (unsigned i = 2; json_object_get(out, key) && i < 1000; i++)
        snprintf(key, sizeof(key), "%.*s#%u", S_NAME_MAX, name, i);
    json_object_set_new(out, key, json_real(v));
}

static bool s_num(const json_t *obj, const char *key, double *ret)
{
    const json_t *v = json_object_get(obj, key);
    if (!json_is_number(v))
        return false;
    *ret = json_number_value(v);
    return true;
}

static void s_copy(json_t *out, const json_t *obj, const char *prefix, const char *key)
{
    double v;
    if (!s_num(obj, key, &v))
        return;
    char name[S_NAME_MAX];
    snprintf(name, sizeof(name), "%s.%s", prefix, key);
    s_put(out, name, v);
}

static void s_cgroups(json_t *out, const json_t *cgroups)
{
    static const char *const keys[] = {"work_units", "spread_pct", "max_gap_ms", "min_on_cpu_pct",
                                       "max_on_cpu_pct"};
    size_t i;
    const json_t *cg;
    json_array_foreach(cgroups, i, cg) {
        const char *name = json_string_value(json_object_get(cg, "name"));
        if (!name || !*name)
            continue;
        char prefix[S_NAME_MAX];
        snprintf(prefix, sizeof(prefix), "cgroup.%s", name);
        for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++)
            s_copy(out, cg, prefix, keys[k]);
        const json_t *ws = json_object_get(cg, "worker_stats");
        if (!json_is_array(ws) || json_array_size(ws) == 0)
            continue;
        double migrations = 0, invol = 0, delay = 0, p99 = -1, v;
        unsigned n_delay = 0;
        size_t j;
        const json_t *w;
        json_array_foreach(ws, j, w) {
            if (s_num(w, "migrations", &v))
                migrations += v;
            if (s_num(w, "involuntary_ctxsw", &v))
                invol += v;
            if (s_num(w, "run_delay_ms", &v)) {
                delay += v;
                n_delay++;
            }
            double wakes;
            if (s_num(w, "wake_count", &wakes) && wakes > 0 && s_num(w, "wake_p99_us", &v) &&
                v > p99)
                p99 = v;
        }
        char name_buf[S_NAME_MAX + 32];
        snprintf(name_buf, sizeof(name_buf), "%s.migrations", prefix);
        s_put(out, name_buf, migrations);
        snprintf(name_buf, sizeof(name_buf), "%s.involuntary_ctxsw", prefix);
        s_put(out, name_buf, invol);
        if (n_delay) {
            snprintf(name_buf, sizeof(name_buf), "%s.run_delay_ms", prefix);
            s_put(out, name_buf, delay / n_delay);
        }
        if (p99 >= 0) {
            snprintf(name_buf, sizeof(name_buf), "%s.wake_p99_us", prefix);
            s_put(out, name_buf, p99);
        }
    }
}

static void s_checks(json_t *out, const json_t *checks)
{
    size_t i;
    const json_t *c;
    json_array_foreach(checks, i, c) {
        const char *name = json_string_value(json_object_get(c, "name"));
        const char *cg = json_string_value(json_object_get(c, "cgroup"));
        double v;
        if (!name || !*name || !s_num(c, "measured", &v))
            continue;
        char key[S_NAME_MAX];
        if (cg && *cg && strcmp(cg, "-") != 0)
            snprintf(key, sizeof(key), "check.%s.%s", name, cg);
        else
            snprintf(key, sizeof(key), "check.%s", name);
        s_put(out, key, v);
    }
}

json_t *kt_metrics_from_sidecar(const json_t *sidecar)
{
    json_t *out = json_object();
    if (!out || !json_is_object(sidecar))
        return out;
    const json_t *t = json_object_get(sidecar, "timings");
    static const char *const timings[] = {"boot_ms", "run_ms", "collect_ms", "total_ms"};
    for (size_t k = 0; json_is_object(t) && k < sizeof(timings) / sizeof(timings[0]); k++)
        s_copy(out, t, "timing", timings[k]);
    const json_t *cgs = json_object_get(sidecar, "cgroups");
    if (json_is_array(cgs))
        s_cgroups(out, cgs);
    const json_t *checks = json_object_get(sidecar, "checks");
    if (json_is_array(checks))
        s_checks(out, checks);
    const json_t *bpf = json_object_get(sidecar, "bpf_stats");
    if (json_is_object(bpf) && json_is_true(json_object_get(bpf, "measured"))) {
        s_copy(out, bpf, "bpf", "ns_per_call");
        s_copy(out, bpf, "bpf", "struct_ops_calls");
    }
    const json_t *pm = json_object_get(json_object_get(sidecar, "payload"), "metrics");
    if (json_is_object(pm)) {
        const char *key;
        const json_t *v;
        json_object_foreach((json_t *)pm, key, v) {
            if (!json_is_number(v))
                continue;
            char name[S_NAME_MAX];
            snprintf(name, sizeof(name), "payload.%s", key);
            s_put(out, name, json_number_value(v));
        }
    }
    return out;
}

char *kt_metrics_json(const char *sidecar, size_t len)
{
    if (!sidecar || !len)
        return NULL;
    json_t *doc = json_loadb(sidecar, len, 0, NULL);
    if (!json_is_object(doc)) {
        json_decref(doc);
        return NULL;
    }
    json_t *m = kt_metrics_from_sidecar(doc);
    json_decref(doc);
    if (!m)
        return NULL;
    char *text = json_dumps(m, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(10));
    json_decref(m);
    return text;
}

static bool s_ends(const char *s, const char *suffix)
{
    size_t ls = strlen(s), lx = strlen(suffix);
    return ls >= lx && strcmp(s + ls - lx, suffix) == 0;
}

int kt_metrics_direction(const char *name)
{
    /* A #N suffix (per-phase repeat) does not change the figure's sense. */
    char base[S_NAME_MAX + 8];
    snprintf(base, sizeof(base), "%s", name);
    char *hash = strrchr(base, '#');
    if (hash)
        *hash = '\0';
    static const struct {
        const char *text;
        bool prefix; /* else a suffix */
        int dir;
    } rules[] = {
        {".work_units", false, 1},
        {".min_on_cpu_pct", false, 1},
        {".spread_pct", false, -1},
        {".max_gap_ms", false, -1},
        {".run_delay_ms", false, -1},
        {".wake_p99_us", false, -1},
        {"timing.", true, -1},
        {"bpf.ns_per_call", true, -1},
        {"check.not_starved", true, 1},
        {"check.work_rate", true, 1},
        {"check.iteration_rate", true, 1},
        {"check.fairness_spread", true, -1},
        {"check.max_gap", true, -1},
        {"check.cpuset_isolation", true, -1},
        {"check.wake_p99", true, -1},
        {"check.wake_cv", true, -1},
        {"check.throughput_cv", true, -1},
        {"check.migration_ratio", true, -1},
        {"check.bpf_callback_ns", true, -1},
    };
    for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++) {
        bool hit = rules[i].prefix ? strncmp(base, rules[i].text, strlen(rules[i].text)) == 0
                                   : s_ends(base, rules[i].text);
        if (hit && (!rules[i].prefix || strncmp(base, "check.", 6) != 0 ||
                    base[strlen(rules[i].text)] == '.' || base[strlen(rules[i].text)] == '\0'))
            return rules[i].dir;
    }
    return 0;
}
