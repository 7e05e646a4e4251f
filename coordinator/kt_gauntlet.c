/* Gauntlet files (YAML, libfyaml) onto kt_gauntlet_t.
 *
 *   kernels:                        required, 1..S_MAX_KERNELS
 *     - path: ../bzImage            a bzImage, a build dir or a source dir
 *       label: sched-ext            optional (default: the image's release)
 *     - ../other/bzImage            a string naming a file or folder (relative
 *                                   to this file) is the same as {path: ...};
 *     - 6.12.110..6.12.117          any other string is a kernel spec
 *                                   (kt_kspec.h), checked here, resolved by run
 *     - {spec: "git+../linux#v6.13", label: next}
 *   schedulers:                     optional, default [{name: eevdf}]
 *     - name: eevdf                 the kernel's own scheduler: no binary
 *     - name: scx_qmap              [A-Za-z0-9_.-], unique
 *       binary: ../bin/scx_qmap     required for anything but eevdf, or else
 *       from_kernel: scx_qmap       each kernel's own build: bin/scx_qmap beside
 *                                   its bzImage (a cache entry, ../shared/kernels)
 *       args: ["-v"]                always passed
 *       flags:                      0..KT_GAUNTLET_MAX_FLAGS
 *         - {name: batch, args: ["-b", "8"]}
 *         - {name: boost, args: ["-H"], requires: [batch]}
 *       checks: {fairness_spread: 25}  optional: the scenario `checks:` syntax; a
 *                                   layer between the defaults and each scenario's
 *                                   checks (which win where they speak)
 *   topologies: [tiny-1llc, "1,2,2,1", 1n2l4c2t]    required: presets, N,L,C,T or labels
 *   scenarios:                      required: built-in names, YAML files, inline maps
 *     - steady
 *     - scenarios/mine.yaml         relative to the gauntlet's folder
 *     - {name: x, cgroups: [...]}   the scenario file format, inline
 *   payloads:                       optional (scenarios or payloads, or both): each
 *     - name: bench                 a matrix axis beside the scenarios, its cells named
 *       binary: bin/bench           gauntlet/{name}/...; binary relative to this file,
 *       args: ["-n", "4"]           hashed and shipped to the workers; the rest is a
 *       checks: ["ops>=1000"]       scenario's payload: map (kt_scenario_yaml.h)
 *       scenario: steady            optional: workers beside it (a scenarios entry's
 *                                   forms); without one the payload runs alone
 *   duration: 3s                    optional: overrides every scenario's duration
 *   repeat: 1                       optional: 1..S_MAX_REPEAT repetitions per cell
 *   work_type: mutex-contention     optional: every cgroup of every scenario runs
 *                                   this type instead of its own (applied before
 *                                   resolution: grouped types round per-CPU counts
 *                                   up, refuse explicit ones that do not divide);
 *                                   the scenario part of cell names reads
 *                                   {scenario}+{type}
 *
 * Strict like the scenario reader: unknown keys, wrong types, values out of
 * range, duplicates and missing files are errors reading
 * "FILE:LINE:COL: path: what". Scheduler arguments may not hold blanks: the
 * worker splits the argument string on blanks. */
#include "kt_gauntlet.h"

#include <errno.h>
#include <libfyaml.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kt_cleanup.h"
#include "kt_fileio.h"
#include "kt_kspec.h"
#include "kt_scenario_yaml.h"
#include "kt_yaml.h"

#define S_MAX_KERNELS 64
#define S_MAX_SCHEDS 64
#define S_MAX_TOPOLOGIES 64
#define S_MAX_SCENARIOS 64
#define S_MAX_PAYLOADS 64
#define S_MAX_REPEAT 100
#define S_MAX_DURATION_MS (24u * 3600u * 1000u)
/* The worker's argument string (kt_cellspec_t.sched_args) holds 511 bytes. */
#define S_MAX_ARGS_TEXT 511
#define S_PATH_MAX 96
#define S_SUB_MAX 160

/* A non-null scalar's text in buf; errors name what was expected. */
static int s_string(kt_yaml_ctx_t *c, struct fy_node *n, struct fy_node *key, const char *path,
                    const char *what, char *buf, size_t buf_len, bool *ret_plain)
{
    const char *s;
    size_t len;
    int r = kt_yaml_scalar(c, n, key, path, what, &s, &len, ret_plain);
    if (r < 0)
        return r;
    if (len >= buf_len)
        return kt_yaml_fail(c, n, key, "%s: '%.40s...' is longer than %zu bytes", path, s,
                            buf_len - 1);
    snprintf(buf, buf_len, "%.*s", (int)len, s);
    return 0;
}

static int s_name(kt_yaml_ctx_t *c, struct fy_node *n, struct fy_node *key, const char *path,
                  char *buf, size_t len)
{
    char tmp[KT_NAME_MAX + 64];
    int r = s_string(c, n, key, path, "a name", tmp, sizeof(tmp), NULL);
    if (r < 0)
        return r;
    if (!kt_name_valid(tmp))
        return kt_yaml_fail(
            c, n, key, "%s: '%s' is not a valid name (1 to %d of A-Z a-z 0-9 _ . -, not . or ..)",
            path, tmp, KT_NAME_MAX - 1);
    snprintf(buf, len, "%.*s", KT_NAME_MAX - 1, tmp);
    return 0;
}

/* A whole number lo..hi written as a plain scalar. */
static int s_uint(kt_yaml_ctx_t *c, struct fy_node *n, struct fy_node *key, const char *path,
                  unsigned lo, unsigned hi, unsigned *ret)
{
    char buf[32];
    bool plain;
    int r = s_string(c, n, key, path, "an integer", buf, sizeof(buf), &plain);
    if (r < 0)
        return r;
    if (!plain || strspn(buf, "0123456789") != strlen(buf))
        return kt_yaml_fail(c, n, key, "%s: expected an integer, got %s'%s'", path,
                            plain ? "" : "the string ", buf);
    errno = 0;
    unsigned long v = strtoul(buf, NULL, 10);
    if (errno || v < lo || v > hi)
        return kt_yaml_fail(c, n, key, "%s: %s is out of range %u..%u", path, buf, lo, hi);
    *ret = (unsigned)v;
    return 0;
}

/* A sequence of 1..max items (0..max when allow_empty). */
static int s_sequence(kt_yaml_ctx_t *c, struct fy_node **n, struct fy_node *key, const char *path,
                      const char *what, unsigned max, bool allow_empty, unsigned *ret_count)
{
    int r = kt_yaml_deref(c, n, key, path);
    if (r < 0)
        return r;
    if (!*n || !fy_node_is_sequence(*n))
        return kt_yaml_fail(c, *n, key, "%s: expected a sequence of %s, got %s", path, what,
                            kt_yaml_is_null(*n) ? "nothing" : kt_yaml_kind(*n));
    int count = fy_node_sequence_item_count(*n);
    if (count < 0)
        return kt_yaml_fail(c, *n, key, "%s: unreadable sequence", path);
    if (count == 0 && !allow_empty)
        return kt_yaml_fail(c, *n, key, "%s: expected at least one %s", path, what);
    if ((unsigned)count > max)
        return kt_yaml_fail(c, *n, key, "%s: %d entries, more than the limit of %u", path, count,
                            max);
    *ret_count = (unsigned)count;
    return 0;
}

/* A path relative to the gauntlet's folder, made absolute and checked to
 * exist (what: "a file", "a file or directory"). */
static int s_path(kt_yaml_ctx_t *c, struct fy_node *n, struct fy_node *key, const char *path,
                  bool dir_ok, char *buf, size_t buf_len)
{
    char raw[4096];
    int r = s_string(c, n, key, path, "a path", raw, sizeof(raw), NULL);
    if (r < 0)
        return r;
    return kt_yaml_real_path(c, n, key, path, raw, dir_ok, false, buf, buf_len);
}

static bool s_label_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= 64 || !strcmp(s, ".") || !strcmp(s, ".."))
        return false;
    return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-+") == n;
}

/* A kernel spec (kt_kspec.h) in a string node, checked now so a typo is
 * FILE:LINE:COL; what it names is resolved by the run. */
static int s_kernel_spec(kt_yaml_ctx_t *c, struct fy_node *n, struct fy_node *key, const char *path,
                         kt_gauntlet_kernel_t *k)
{
    int r = s_string(c, n, key, path, "a kernel spec", k->spec, sizeof(k->spec), NULL);
    if (r < 0)
        return r;
    kt_kspec_t *spec = calloc(1, sizeof(*spec));
    if (!spec)
        return -ENOMEM;
    char why[512];
    r = kt_kspec_parse(k->spec, spec, why, sizeof(why));
    free(spec);
    if (r < 0)
        return kt_yaml_fail(c, n, key, "%s: %s", path, why);
    return 0;
}

static int s_kernels(kt_yaml_ctx_t *c, struct fy_node *n, struct fy_node *key, kt_gauntlet_t *g)
{
    unsigned count;
    int r = s_sequence(c, &n, key, "kernels", "kernel", S_MAX_KERNELS, false, &count);
    if (r < 0)
        return r;
    g->kernels = calloc(count, sizeof(*g->kernels));
    if (!g->kernels)
        return -ENOMEM;
    void *it = NULL;
    for (unsigned i = 0; i < count; i++) {
        struct fy_node *item = fy_node_sequence_iterate(n, &it);
        char path[S_PATH_MAX];
        snprintf(path, sizeof(path), "kernels[%u]", i);
        kt_gauntlet_kernel_t *k = &g->kernels[i];
        if ((r = kt_yaml_deref(c, &item, n, path)) < 0)
            return r;
        if (item && fy_node_is_mapping(item)) {
            kt_yaml_field_t f[] = {{"path"}, {"spec"}, {"label"}};
            if ((r = kt_yaml_fields(c, item, n, path, "a kernel", f, KT_ARRAY_SIZE(f))) < 0)
                return r;
            kt_yaml_field_t *x = KT_YAML_F(f, "path"), *sp = KT_YAML_F(f, "spec");
            if (!x == !sp)
                return kt_yaml_fail(c, item, n,
                                    "%s: a kernel needs exactly one of 'path' and 'spec'", path);
            char sub[S_SUB_MAX];
            if (x) {
                snprintf(sub, sizeof(sub), "%.100s.path", path);
                if ((r = s_path(c, x->value, x->key, sub, true, k->path, sizeof(k->path))) < 0)
                    return r;
                snprintf(k->spec, sizeof(k->spec), "%s", k->path);
            } else {
                snprintf(sub, sizeof(sub), "%.100s.spec", path);
                if ((r = s_kernel_spec(c, sp->value, sp->key, sub, k)) < 0)
                    return r;
            }
            if ((x = KT_YAML_F(f, "label"))) {
                snprintf(sub, sizeof(sub), "%.100s.label", path);
                if ((r = s_string(c, x->value, x->key, sub, "a label", k->label, sizeof(k->label),
                                  NULL)) < 0)
                    return r;
                if (!s_label_valid(k->label))
                    return kt_yaml_fail(
                        c, x->value, x->key,
                        "%s: '%s' is not a valid label (1 to 63 of A-Z a-z 0-9 _ . - +)", sub,
                        k->label);
            }
        } else if (item && fy_node_is_scalar(item) && !kt_yaml_is_null(item)) {
            /* A file or folder next to the gauntlet stays a path, as before
             * specs; anything else must be a spec. */
            char raw[4096], joined[8192];
            struct stat st;
            if ((r = s_string(c, item, n, path, "a path or kernel spec", raw, sizeof(raw),
                              NULL)) < 0)
                return r;
            snprintf(joined, sizeof(joined), "%s/%s", c->base_dir, raw);
            kt_kspec_t *ks = calloc(1, sizeof(*ks));
            if (!ks)
                return -ENOMEM;
            bool as_path = raw[0] == '/' || stat(joined, &st) == 0 ||
                           (kt_kspec_parse(raw, ks, NULL, 0) == 0 && ks->kind == KT_KSPEC_PATH);
            free(ks);
            if (as_path) {
                if ((r = s_path(c, item, n, path, true, k->path, sizeof(k->path))) < 0)
                    return r;
                snprintf(k->spec, sizeof(k->spec), "%s", k->path);
            } else if ((r = s_kernel_spec(c, item, n, path, k)) < 0) {
                return r;
            }
        } else {
            return kt_yaml_fail(c, item, n,
                                "%s: expected a path, a kernel spec or {path|spec, label}, "
                                "got %s",
                                path, kt_yaml_is_null(item) ? "nothing" : kt_yaml_kind(item));
        }
        for (unsigned j = 0; j < i; j++) {
            if (strcmp(g->kernels[j].spec, k->spec) == 0)
                return kt_yaml_fail(c, item, n, "%s: '%s' is already kernels[%u]", path, k->spec,
                                    j);
            if (*k->label && strcmp(g->kernels[j].label, k->label) == 0)
                return kt_yaml_fail(c, item, n, "%s: label '%s' is already used by kernels[%u]",
                                    path, k->label, j);
        }
        g->n_kernels++;
    }
    return 0;
}

/* A list of scheduler arguments into args[] (no blanks: the worker splits
 * on them). */
static int s_args(kt_yaml_ctx_t *c, struct fy_node *n, struct fy_node *key, const char *path,
                  char (*args)[128], unsigned *ret_n)
{
    unsigned count;
    int r = s_sequence(c, &n, key, path, "argument", KT_GAUNTLET_MAX_ARGS, true, &count);
    if (r < 0)
        return r;
    void *it = NULL;
    for (unsigned i = 0; i < count; i++) {
        struct fy_node *item = fy_node_sequence_iterate(n, &it);
        char sub[S_SUB_MAX];
        snprintf(sub, sizeof(sub), "%.120s[%u]", path, i);
        if ((r = s_string(c, item, n, sub, "an argument", args[i], 128, NULL)) < 0)
            return r;
        if (!args[i][0] || strpbrk(args[i], " \t\r\n\v\f"))
            return kt_yaml_fail(c, item, n,
                                "%s: '%s': an argument may not be empty or hold blanks (the worker "
                                "splits arguments on blanks)",
                                sub, args[i]);
    }
    *ret_n = count;
    return 0;
}

static int s_flag(kt_yaml_ctx_t *c, struct fy_node *item, struct fy_node *seq, const char *path,
                  kt_gauntlet_flag_t *f)
{
    kt_yaml_field_t fl[] = {{"name"}, {"args"}, {"requires"}};
    int r = kt_yaml_fields(c, item, seq, path, "a flag", fl, KT_ARRAY_SIZE(fl));
    if (r < 0)
        return r;
    if ((r = kt_yaml_deref(c, &item, seq, path)) < 0)
        return r;
    char sub[S_SUB_MAX];
    kt_yaml_field_t *x = KT_YAML_F(fl, "name");
    if (!x)
        return kt_yaml_fail(c, item, seq, "%s: missing key 'name' in a flag", path);
    snprintf(sub, sizeof(sub), "%.100s.name", path);
    if ((r = s_name(c, x->value, x->key, sub, f->name, sizeof(f->name))) < 0)
        return r;
    if (strcmp(f->name, "default") == 0)
        return kt_yaml_fail(c, x->value, x->key, "%s: 'default' names the profile with no flag",
                            sub);
    if ((x = KT_YAML_F(fl, "args"))) {
        snprintf(sub, sizeof(sub), "%.100s.args", path);
        if ((r = s_args(c, x->value, x->key, sub, f->args, &f->n_args)) < 0)
            return r;
    }
    if ((x = KT_YAML_F(fl, "requires"))) {
        snprintf(sub, sizeof(sub), "%.100s.requires", path);
        struct fy_node *rq = x->value;
        unsigned count;
        if ((r = s_sequence(c, &rq, x->key, sub, "flag name", KT_GAUNTLET_MAX_FLAGS, true,
                            &count)) < 0)
            return r;
        void *it = NULL;
        for (unsigned i = 0; i < count; i++) {
            struct fy_node *ri = fy_node_sequence_iterate(rq, &it);
            char sub2[S_SUB_MAX];
            snprintf(sub2, sizeof(sub2), "%.120s[%u]", sub, i);
            if ((r = s_name(c, ri, rq, sub2, f->requires[i], sizeof(f->requires[i]))) < 0)
                return r;
        }
        f->n_requires = count;
    }
    return 0;
}

static int s_flag_index(const kt_gauntlet_sched_t *s, const char *name)
{
    for (unsigned i = 0; i < s->n_flags; i++)
        if (strcmp(s->flags[i].name, name) == 0)
            return (int)i;
    return -1;
}

static int s_sched(kt_yaml_ctx_t *c, struct fy_node *item, struct fy_node *seq, const char *path,
                   kt_gauntlet_sched_t *s)
{
    kt_yaml_field_t f[] = {{"name"}, {"binary"}, {"from_kernel"}, {"args"}, {"flags"}, {"checks"}};
    int r = kt_yaml_fields(c, item, seq, path, "a scheduler", f, KT_ARRAY_SIZE(f));
    if (r < 0)
        return r;
    if ((r = kt_yaml_deref(c, &item, seq, path)) < 0)
        return r;
    char sub[S_SUB_MAX];
    kt_yaml_field_t *x = KT_YAML_F(f, "name");
    if (!x)
        return kt_yaml_fail(c, item, seq, "%s: missing key 'name' in a scheduler", path);
    snprintf(sub, sizeof(sub), "%.100s.name", path);
    if ((r = s_name(c, x->value, x->key, sub, s->name, sizeof(s->name))) < 0)
        return r;
    bool eevdf = strcmp(s->name, "eevdf") == 0;
    struct fy_node *name_node = x->value;
    kt_yaml_field_t *fk = KT_YAML_F(f, "from_kernel");
    if ((x = KT_YAML_F(f, "binary"))) {
        snprintf(sub, sizeof(sub), "%.100s.binary", path);
        if (eevdf)
            return kt_yaml_fail(c, x->value, x->key,
                                "%s: eevdf is the kernel's own scheduler and takes no binary", sub);
        if (fk)
            return kt_yaml_fail(c, fk->value, fk->key,
                                "%s: a scheduler has a 'binary' or 'from_kernel', not both", path);
        if ((r = s_path(c, x->value, x->key, sub, false, s->binary, sizeof(s->binary))) < 0)
            return r;
    } else if (fk) {
        snprintf(sub, sizeof(sub), "%.100s.from_kernel", path);
        if (eevdf)
            return kt_yaml_fail(c, fk->value, fk->key,
                                "%s: eevdf is the kernel's own scheduler and takes no binary", sub);
        if ((r = s_name(c, fk->value, fk->key, sub, s->from_kernel, sizeof(s->from_kernel))) < 0)
            return r;
    } else if (!eevdf) {
        return kt_yaml_fail(c, name_node, item,
                            "%s: scheduler '%s' needs a 'binary', or 'from_kernel' for each "
                            "kernel's own build (only eevdf runs without one)",
                            path, s->name);
    }
    if ((x = KT_YAML_F(f, "args"))) {
        snprintf(sub, sizeof(sub), "%.100s.args", path);
        if (eevdf && !kt_yaml_is_null(x->value))
            return kt_yaml_fail(c, x->value, x->key, "%s: eevdf takes no arguments", sub);
        if ((r = s_args(c, x->value, x->key, sub, s->args, &s->n_args)) < 0)
            return r;
    }
    /* The scheduler's threshold layer, between the defaults and each
     * scenario's `checks:` (kt_thresholds_layer). */
    if ((x = KT_YAML_F(f, "checks")) &&
        (r = kt_thresholds_yaml_from_node(x->value, x->key, c->origin, &s->checks, c->err,
                                          c->err_len)) < 0)
        return r;
    if (!(x = KT_YAML_F(f, "flags")))
        return 0;
    snprintf(sub, sizeof(sub), "%.100s.flags", path);
    struct fy_node *fs = x->value;
    unsigned count;
    if ((r = s_sequence(c, &fs, x->key, sub, "flag", KT_GAUNTLET_MAX_FLAGS, true, &count)) < 0)
        return r;
    if (eevdf && count)
        return kt_yaml_fail(c, fs, x->key, "%s: eevdf takes no flags", sub);
    struct fy_node *items[KT_GAUNTLET_MAX_FLAGS];
    void *it = NULL;
    for (unsigned i = 0; i < count; i++) {
        items[i] = fy_node_sequence_iterate(fs, &it);
        char fp[S_SUB_MAX];
        snprintf(fp, sizeof(fp), "%.120s[%u]", sub, i);
        if ((r = s_flag(c, items[i], fs, fp, &s->flags[i])) < 0)
            return r;
        if (s_flag_index(s, s->flags[i].name) >= 0)
            return kt_yaml_fail(c, items[i], fs, "%s: flag '%s' is declared twice", fp,
                                s->flags[i].name);
        s->n_flags++;
    }
    /* requires name flags of the same scheduler, not the flag itself. */
    for (unsigned i = 0; i < s->n_flags; i++) {
        const kt_gauntlet_flag_t *fl = &s->flags[i];
        for (unsigned j = 0; j < fl->n_requires; j++) {
            int k = s_flag_index(s, fl->requires[j]);
            if (k < 0 || (unsigned)k == i)
                return kt_yaml_fail(c, items[i], fs, "%s[%u]: flag '%s' requires '%s', %s", sub, i,
                                    fl->name, fl->requires[j],
                                    k < 0 ? "which is not a flag of this scheduler" : "itself");
        }
    }
    /* The profile name and the argument string with every flag on must fit
     * the wire's fields. */
    size_t name_len = 0;
    for (unsigned i = 0; i < s->n_flags; i++)
        name_len += strlen(s->flags[i].name) + 1;
    if (name_len > 128)
        return kt_yaml_fail(
            c, fs, x->key,
            "%s: with every flag on the profile name takes %zu bytes, more than 127 "
            "(use shorter flag names)",
            sub, name_len - 1);
    size_t total = 0;
    for (unsigned i = 0; i < s->n_args; i++)
        total += strlen(s->args[i]) + 1;
    for (unsigned i = 0; i < s->n_flags; i++)
        for (unsigned j = 0; j < s->flags[i].n_args; j++)
            total += strlen(s->flags[i].args[j]) + 1;
    if (total > S_MAX_ARGS_TEXT + 1)
        return kt_yaml_fail(c, fs, x->key,
                            "%s: with every flag on the arguments take %zu bytes, more than %d",
                            sub, total - 1, S_MAX_ARGS_TEXT);
    return 0;
}

static int s_scheds(kt_yaml_ctx_t *c, struct fy_node *n, struct fy_node *key, kt_gauntlet_t *g)
{
    unsigned count;
    int r = s_sequence(c, &n, key, "schedulers", "scheduler", S_MAX_SCHEDS, false, &count);
    if (r < 0)
        return r;
    g->scheds = calloc(count, sizeof(*g->scheds));
    if (!g->scheds)
        return -ENOMEM;
    void *it = NULL;
    for (unsigned i = 0; i < count; i++) {
        struct fy_node *item = fy_node_sequence_iterate(n, &it);
        char path[S_PATH_MAX];
        snprintf(path, sizeof(path), "schedulers[%u]", i);
        if ((r = s_sched(c, item, n, path, &g->scheds[i])) < 0)
            return r;
        for (unsigned j = 0; j < i; j++)
            if (strcmp(g->scheds[j].name, g->scheds[i].name) == 0)
                return kt_yaml_fail(c, item, n, "%s: scheduler '%s' is already schedulers[%u]",
                                    path, g->scheds[i].name, j);
        g->n_scheds++;
    }
    return 0;
}

static int s_topologies(kt_yaml_ctx_t *c, struct fy_node *n, struct fy_node *key, kt_gauntlet_t *g)
{
    unsigned count;
    int r = s_sequence(c, &n, key, "topologies", "topology", S_MAX_TOPOLOGIES, false, &count);
    if (r < 0)
        return r;
    g->topologies = calloc(count, sizeof(*g->topologies));
    if (!g->topologies)
        return -ENOMEM;
    void *it = NULL;
    for (unsigned i = 0; i < count; i++) {
        struct fy_node *item = fy_node_sequence_iterate(n, &it);
        char path[S_PATH_MAX], text[64];
        snprintf(path, sizeof(path), "topologies[%u]", i);
        if ((r = s_string(c, item, n, path, "a preset or N,L,C,T", text, sizeof(text), NULL)) < 0)
            return r;
        kt_gauntlet_topology_t *t = &g->topologies[i];
        r = kt_topology_parse(text, &t->topo);
        if (r == -ERANGE)
            return kt_yaml_fail(c, item, n,
                                "%s: '%s': no zero, at most %d CPUs, LLCs a multiple of the nodes",
                                path, text, KT_MAX_CPUS);
        if (r < 0)
            return kt_yaml_fail(c, item, n,
                                "%s: '%s' is not a preset, N,L,C,T or a label like 1n2l2c1t", path,
                                text);
        const kt_topology_preset_t *p = kt_topology_preset_find(text);
        t->preset = p != NULL;
        if (p)
            snprintf(t->name, sizeof(t->name), "%s", p->name);
        else
            kt_topology_label(&t->topo, t->name, sizeof(t->name));
        for (unsigned j = 0; j < i; j++)
            if (kt_topology_equal(&g->topologies[j].topo, &t->topo))
                return kt_yaml_fail(c, item, n, "%s: '%s' is the same shape as topologies[%u] (%s)",
                                    path, text, j, g->topologies[j].name);
        g->n_topologies++;
    }
    return 0;
}

static bool s_is_scenario_path(const char *s)
{
    size_t n = strlen(s);
    return strchr(s, '/') || (n > 5 && strcmp(s + n - 5, ".yaml") == 0) ||
           (n > 4 && strcmp(s + n - 4, ".yml") == 0);
}

/* One scenario: a built-in name, a YAML file (relative to the gauntlet) or
 * an inline mapping (whose payload binary resolves against the gauntlet). */
static int s_scenario_item(kt_yaml_ctx_t *c, struct fy_node *item, struct fy_node *parent,
                           const char *path, kt_scenario_t *s)
{
    int r;
    if ((r = kt_yaml_deref(c, &item, parent, path)) < 0)
        return r;
    if (item && fy_node_is_mapping(item))
        return kt_scenario_yaml_from_node_in(item, c->origin, c->base_dir, s, c->err, c->err_len);
    if (!item || !fy_node_is_scalar(item) || kt_yaml_is_null(item))
        return kt_yaml_fail(
            c, item, parent,
            "%s: expected a built-in name, a YAML file or a scenario mapping, got %s", path,
            kt_yaml_is_null(item) ? "nothing" : kt_yaml_kind(item));
    char text[4096];
    if ((r = s_string(c, item, parent, path, "a scenario", text, sizeof(text), NULL)) < 0)
        return r;
    const kt_scenario_t *b = kt_scenario_builtin_find(text);
    if (b) {
        *s = *b;
        return 0;
    }
    if (s_is_scenario_path(text)) {
        char file[4096];
        if ((r = s_path(c, item, parent, path, false, file, sizeof(file))) < 0)
            return r;
        char why[1024];
        if ((r = kt_scenario_yaml_load(file, s, why, sizeof(why))) < 0)
            return kt_yaml_fail(c, item, parent, "%s: %s", path, why);
        return 0;
    }
    unsigned nb;
    const kt_scenario_t *all = kt_scenario_builtins(&nb);
    char known[512] = "";
    size_t off = 0;
    for (unsigned j = 0; j < nb && off < sizeof(known); j++)
        off +=
            (size_t)snprintf(known + off, sizeof(known) - off, "%s%s", j ? ", " : "", all[j].name);
    return kt_yaml_fail(c, item, parent,
                        "%s: '%s' is not a built-in scenario (%s) nor a path to a YAML file", path,
                        text, known);
}

static int s_scenarios(kt_yaml_ctx_t *c, struct fy_node *n, struct fy_node *key, kt_gauntlet_t *g)
{
    unsigned count;
    int r = s_sequence(c, &n, key, "scenarios", "scenario", S_MAX_SCENARIOS, false, &count);
    if (r < 0)
        return r;
    g->scenarios = calloc(count, sizeof(*g->scenarios));
    if (!g->scenarios)
        return -ENOMEM;
    void *it = NULL;
    for (unsigned i = 0; i < count; i++) {
        struct fy_node *item = fy_node_sequence_iterate(n, &it);
        char path[S_PATH_MAX];
        snprintf(path, sizeof(path), "scenarios[%u]", i);
        kt_scenario_t *s = &g->scenarios[i];
        if ((r = s_scenario_item(c, item, n, path, s)) < 0)
            return r;
        for (unsigned j = 0; j < i; j++)
            if (strcmp(g->scenarios[j].name, s->name) == 0)
                return kt_yaml_fail(c, item, n, "%s: scenario '%s' is already scenarios[%u]", path,
                                    s->name, j);
        g->n_scenarios++;
    }
    return 0;
}

/* payloads: each a payload map (kt_payload_yaml_from_node) with a name and
 * an optional scenario to run beside. Names are unique among payloads and
 * scenarios: both name cells (gauntlet/{name}/...). */
static int s_payloads(kt_yaml_ctx_t *c, struct fy_node *n, struct fy_node *key, kt_gauntlet_t *g)
{
    unsigned count;
    int r = s_sequence(c, &n, key, "payloads", "payload", S_MAX_PAYLOADS, false, &count);
    if (r < 0)
        return r;
    g->payloads = calloc(count, sizeof(*g->payloads));
    if (!g->payloads)
        return -ENOMEM;
    static const char *const extra[] = {"name", "scenario", NULL};
    void *it = NULL;
    for (unsigned i = 0; i < count; i++) {
        struct fy_node *item = fy_node_sequence_iterate(n, &it);
        char path[S_PATH_MAX], sub[S_SUB_MAX];
        snprintf(path, sizeof(path), "payloads[%u]", i);
        kt_gauntlet_payload_t *p = &g->payloads[i];
        if ((r = kt_yaml_deref(c, &item, n, path)) < 0)
            return r;
        if ((r = kt_payload_yaml_from_node(item, n, c->origin, c->base_dir, path, extra, &p->spec,
                                           p->binary, sizeof(p->binary), c->err, c->err_len)) < 0)
            return r;
        struct fy_node *name = fy_node_mapping_lookup_value_by_string(item, "name", FY_NT);
        struct fy_node *name_key = fy_node_mapping_lookup_key_by_string(item, "name", FY_NT);
        if (!name_key)
            return kt_yaml_fail(c, item, n, "%s: missing key 'name' (it names the payload's cells)",
                                path);
        snprintf(sub, sizeof(sub), "%s.name", path);
        if ((r = s_name(c, name, name_key, sub, p->name, sizeof(p->name))) < 0)
            return r;
        for (unsigned j = 0; j < i; j++)
            if (strcmp(g->payloads[j].name, p->name) == 0)
                return kt_yaml_fail(c, name, name_key, "%s: payload '%s' is already payloads[%u]",
                                    sub, p->name, j);
        for (unsigned j = 0; j < g->n_scenarios; j++)
            if (strcmp(g->scenarios[j].name, p->name) == 0)
                return kt_yaml_fail(c, name, name_key,
                                    "%s: '%s' is also the name of scenarios[%u] (both name cells)",
                                    sub, p->name, j);
        struct fy_node *sc = fy_node_mapping_lookup_value_by_string(item, "scenario", FY_NT);
        struct fy_node *sc_key = fy_node_mapping_lookup_key_by_string(item, "scenario", FY_NT);
        if (sc_key) {
            snprintf(sub, sizeof(sub), "%s.scenario", path);
            if ((r = s_scenario_item(c, sc, sc_key, sub, &p->scenario)) < 0)
                return r;
            if (kt_payload_present(&p->scenario.payload))
                return kt_yaml_fail(c, sc, sc_key,
                                    "%s: scenario '%s' has a payload of its own (a cell runs one)",
                                    sub, p->scenario.name);
            p->has_scenario = true;
        }
        g->n_payloads++;
    }
    return 0;
}

static int s_gauntlet(kt_yaml_ctx_t *c, struct fy_node *root, kt_gauntlet_t *g)
{
    kt_yaml_field_t f[] = {{"kernels"},  {"schedulers"}, {"topologies"}, {"scenarios"},
                           {"duration"}, {"repeat"},     {"work_type"},  {"payloads"}};
    int r = kt_yaml_fields(c, root, NULL, "", "a gauntlet", f, KT_ARRAY_SIZE(f));
    if (r < 0)
        return r;
    if ((r = kt_yaml_deref(c, &root, NULL, "")) < 0)
        return r;
    kt_yaml_field_t *x;
    if (!(x = KT_YAML_F(f, "kernels")))
        return kt_yaml_fail(c, root, NULL, "missing key 'kernels' in the gauntlet");
    if ((r = s_kernels(c, x->value, x->key, g)) < 0)
        return r;
    if ((x = KT_YAML_F(f, "schedulers"))) {
        if ((r = s_scheds(c, x->value, x->key, g)) < 0)
            return r;
    } else {
        g->scheds = calloc(1, sizeof(*g->scheds));
        if (!g->scheds)
            return -ENOMEM;
        snprintf(g->scheds[0].name, sizeof(g->scheds[0].name), "eevdf");
        g->n_scheds = 1;
    }
    if (!(x = KT_YAML_F(f, "topologies")))
        return kt_yaml_fail(c, root, NULL, "missing key 'topologies' in the gauntlet");
    if ((r = s_topologies(c, x->value, x->key, g)) < 0)
        return r;
    kt_yaml_field_t *payloads = KT_YAML_F(f, "payloads");
    if (!(x = KT_YAML_F(f, "scenarios")) && !payloads)
        return kt_yaml_fail(c, root, NULL,
                            "missing key 'scenarios' (or 'payloads') in the gauntlet");
    if (x && (r = s_scenarios(c, x->value, x->key, g)) < 0)
        return r;
    if (payloads && (r = s_payloads(c, payloads->value, payloads->key, g)) < 0)
        return r;
    if ((x = KT_YAML_F(f, "duration"))) {
        char text[40];
        if ((r = s_string(c, x->value, x->key, "duration", "a duration", text, sizeof(text),
                          NULL)) < 0)
            return r;
        uint32_t ms;
        r = kt_duration_parse_ms(text, &ms);
        if (r == -ERANGE || (r == 0 && (ms < 1 || ms > S_MAX_DURATION_MS)))
            return kt_yaml_fail(c, x->value, x->key, "duration: '%s' is out of range 1ms..%ums",
                                text, S_MAX_DURATION_MS);
        if (r < 0)
            return kt_yaml_fail(c, x->value, x->key,
                                "duration: '%s' is not a duration (a whole number of ms, or with a "
                                "unit: 250ms, 3s, 1.5s, 2m, 1h)",
                                text);
        g->duration_ms = ms;
    }
    g->repeat = 1;
    if ((x = KT_YAML_F(f, "repeat")) &&
        (r = s_uint(c, x->value, x->key, "repeat", 1, S_MAX_REPEAT, &g->repeat)) < 0)
        return r;
    if ((x = KT_YAML_F(f, "work_type"))) {
        char text[40];
        if ((r = s_string(c, x->value, x->key, "work_type", "a work type", text, sizeof(text),
                          NULL)) < 0)
            return r;
        if (kt_work_type_parse(text, &g->work_type) < 0) {
            char known[400] = "";
            size_t off = 0;
            for (unsigned i = 0; i < KT_WORK__COUNT && off < sizeof(known); i++)
                off += (size_t)snprintf(known + off, sizeof(known) - off, "%s%s", i ? ", " : "",
                                        kt_work_type_name((enum kt_work_type)i));
            return kt_yaml_fail(c, x->value, x->key,
                                "work_type: unknown work type '%s' (known: %s)", text, known);
        }
        g->override_work = true;
    }
    return 0;
}

void kt_gauntlet_free(kt_gauntlet_t **g_p)
{
    if (!g_p || !*g_p)
        return;
    kt_gauntlet_t *g = *g_p;
    free(g->kernels);
    free(g->scheds);
    free(g->topologies);
    free(g->scenarios);
    free(g->payloads);
    free(g);
    *g_p = NULL;
}

int kt_gauntlet_parse(const char *text, size_t len, const char *origin, const char *base_dir,
                      kt_gauntlet_t **ret, char *err, size_t err_len)
{
    if (!text || !ret)
        return -EINVAL;
    kt_yaml_ctx_t c =
        kt_yaml_ctx(origin ? origin : "<gauntlet>", base_dir ? base_dir : ".", err, err_len);
    _cleanup_(kt_yaml_doc_close) kt_yaml_doc_t doc = {0};
    int r = kt_yaml_doc_load(&c, text, len, "gauntlet", &doc);
    if (r < 0)
        return r;
    _cleanup_(kt_gauntlet_free) kt_gauntlet_t *g = calloc(1, sizeof(*g));
    r = g ? s_gauntlet(&c, doc.root, g) : -ENOMEM;
    if (r == -ENOMEM)
        snprintf(c.err, c.err_len, "%s: out of memory", c.origin);
    if (r < 0)
        return r;
    snprintf(g->path, sizeof(g->path), "%s", c.origin);
    snprintf(g->dir, sizeof(g->dir), "%s", c.base_dir);
    *ret = TAKE_PTR(g);
    return 0;
}

int kt_gauntlet_load(const char *path, kt_gauntlet_t **ret, char *err, size_t err_len)
{
    if (!path || !ret)
        return -EINVAL;
    /* Relative paths inside resolve against the file's folder. */
    _cleanup_free_ char *buf = NULL;
    size_t len;
    char real[PATH_MAX], dir[PATH_MAX];
    int r = kt_yaml_file_read(path, &buf, &len, dir, sizeof(dir), real, err, err_len);
    if (r < 0)
        return r;
    kt_gauntlet_t *g = NULL;
    r = kt_gauntlet_parse(buf, len, path, dir, &g, err, err_len);
    if (r < 0)
        return r;
    /* Errors name the file as given; the model keeps the absolute path. */
    snprintf(g->path, sizeof(g->path), "%s", real);
    *ret = g;
    return 0;
}

static bool s_mask_ok(const kt_gauntlet_sched_t *s, uint32_t mask)
{
    for (unsigned f = 0; f < s->n_flags; f++) {
        if (!(mask & (1u << f)))
            continue;
        for (unsigned j = 0; j < s->flags[f].n_requires; j++) {
            int k = s_flag_index(s, s->flags[f].requires[j]);
            if (k < 0 || !(mask & (1u << k)))
                return false;
        }
    }
    return true;
}

/* Profiles ordered by how many flags they enable, then by mask: default
 * first, then each flag alone in declaration order, then pairs... */
unsigned kt_gauntlet_profiles(const kt_gauntlet_sched_t *s, uint32_t *ret_masks, unsigned max)
{
    unsigned nf = s->n_flags > KT_GAUNTLET_MAX_FLAGS ? KT_GAUNTLET_MAX_FLAGS : s->n_flags;
    unsigned count = 0;
    for (unsigned bits = 0; bits <= nf; bits++) {
        for (uint32_t mask = 0; mask < (1u << nf); mask++) {
            if ((unsigned)__builtin_popcount(mask) != bits || !s_mask_ok(s, mask))
                continue;
            if (ret_masks && count < max)
                ret_masks[count] = mask;
            count++;
        }
    }
    return count;
}

void kt_gauntlet_profile_name(const kt_gauntlet_sched_t *s, uint32_t mask, char *buf, size_t len)
{
    if (!len)
        return;
    buf[0] = '\0';
    if (mask == 0) {
        snprintf(buf, len, "default");
        return;
    }
    size_t off = 0;
    for (unsigned f = 0; f < s->n_flags && f < 32; f++) {
        if (!(mask & (1u << f)))
            continue;
        int w = snprintf(buf + off, len - off, "%s%s", off ? "+" : "", s->flags[f].name);
        if (w < 0 || (size_t)w >= len - off)
            return;
        off += (size_t)w;
    }
}
