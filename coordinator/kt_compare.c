/* Two runs of the store side by side (see kt_compare.h). */
#include "kt_compare.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kt_metrics.h"

const char *kt_cmp_kind_name(enum kt_cmp_kind k)
{
    static const char *const names[KT_CMP__COUNT] = {
        [KT_CMP_SAME] = "same",       [KT_CMP_REGRESSION] = "regression",
        [KT_CMP_FIX] = "fix",         [KT_CMP_CHANGED] = "changed",
        [KT_CMP_ONLY_A] = "only_a",   [KT_CMP_ONLY_B] = "only_b",
    };
    return (unsigned)k < KT_CMP__COUNT ? names[k] : "unknown";
}

static char *s_dup(const char *s)
{
    return strdup(s ? s : "");
}

static void s_cell_free(kt_cmp_cell_t *c)
{
    free(c->key);
    free(c->name);
    free(c->kernel_label);
    free(c->kernel_commit);
    free(c->verdict);
    free(c->reason);
    json_decref(c->metrics);
}

static void s_side_free(kt_cmp_side_t *side)
{
    for (size_t i = 0; i < side->n_cells; i++)
        s_cell_free(&side->cells[i]);
    free(side->cells);
    free(side->tests);
    side->cells = NULL;
    side->tests = NULL;
    side->n_cells = side->n_tests = 0;
}

void kt_compare_free(kt_compare_t *c)
{
    if (!c)
        return;
    s_side_free(&c->a);
    s_side_free(&c->b);
    free(c->pairs);
    free(c->metrics);
    memset(c, 0, sizeof(*c));
}

typedef struct s_load {
    kt_cmp_side_t *side;
    size_t cap;
    int err;
} s_load_t;

static int s_load_row(const kt_store_row_t *row, void *userdata)
{
    s_load_t *l = userdata;
    kt_cmp_side_t *side = l->side;
    if (side->n_cells == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        kt_cmp_cell_t *cells = realloc(side->cells, cap * sizeof(*cells));
        if (!cells)
            return l->err = -ENOMEM;
        side->cells = cells;
        l->cap = cap;
    }
    kt_cmp_cell_t *c = &side->cells[side->n_cells];
    memset(c, 0, sizeof(*c));
    c->name = s_dup(row->name);
    c->kernel_label = s_dup(row->kernel_label);
    c->kernel_commit = s_dup(row->kernel_commit);
    c->verdict = s_dup(row->verdict);
    c->reason = s_dup(row->reason);
    if (row->metrics_json)
        c->metrics = json_loads(row->metrics_json, 0, NULL);
    side->n_cells++;
    if (!c->name || !c->kernel_label || !c->kernel_commit || !c->verdict || !c->reason)
        return l->err = -ENOMEM;
    side->started_ms = row->run_started_ms;
    if (side->n_cells == 1) {
        snprintf(side->kernel_label, sizeof(side->kernel_label), "%s", c->kernel_label);
        side->one_kernel = true;
    } else if (strcmp(side->kernel_label, c->kernel_label) != 0) {
        side->one_kernel = false;
    }
    return 0;
}

static int s_load(kt_store_t *s, const char *run_id, kt_cmp_side_t *side, char *err, size_t len)
{
    snprintf(side->run_id, sizeof(side->run_id), "%s", run_id);
    s_load_t l = {.side = side};
    int r = kt_store_run_rows(s, run_id, s_load_row, &l);
    if (l.err)
        r = l.err;
    if (r < 0)
        snprintf(err, len, "run %s: %s", run_id,
                 r == -ENOMEM ? "out of memory" : kt_store_error(s));
    if (!side->n_cells)
        side->one_kernel = false;
    return r;
}

/* The name without a repeat's "/r{k}" and, when the runs each have one
 * kernel, without "/{label}" before it. */
static int s_keys(kt_cmp_side_t *side, bool by_test)
{
    for (size_t i = 0; i < side->n_cells; i++) {
        kt_cmp_cell_t *c = &side->cells[i];
        size_t n = strlen(c->name), ln = strlen(c->kernel_label);
        const char *slash = strrchr(c->name, '/');
        if (slash && slash[1] == 'r' && slash[2] >= '1' && slash[2] <= '9' &&
            strspn(slash + 2, "0123456789") == strlen(slash + 2))
            n = (size_t)(slash - c->name);
        if (by_test && ln && n > ln + 1 && c->name[n - ln - 1] == '/' &&
            strncmp(c->name + n - ln, c->kernel_label, ln) == 0)
            n -= ln + 1;
        c->key = strndup(c->name, n);
        if (!c->key)
            return -ENOMEM;
    }
    return 0;
}

/* Groups the sorted cells of a side into tests. */
static int s_tests(kt_cmp_side_t *side)
{
    side->tests = calloc(side->n_cells + 1, sizeof(*side->tests));
    if (!side->tests)
        return -ENOMEM;
    for (size_t i = 0; i < side->n_cells; i++) {
        const kt_cmp_cell_t *c = &side->cells[i];
        kt_cmp_test_t *t = side->n_tests ? &side->tests[side->n_tests - 1] : NULL;
        if (!t || strcmp(t->key, c->key) != 0) {
            t = &side->tests[side->n_tests++];
            t->key = c->key;
            t->cells = c;
            t->reason = "";
        }
        t->n++;
        if (strcmp(c->verdict, "pass") == 0) {
            t->n_pass++;
        } else {
            t->n_fail += strcmp(c->verdict, "fail") == 0;
            t->n_error += strcmp(c->verdict, "error") == 0;
            if (!t->reason[0])
                t->reason = c->reason;
        }
    }
    for (size_t i = 0; i < side->n_tests; i++) {
        kt_cmp_test_t *t = &side->tests[i];
        t->verdict = t->n_pass == t->n ? "pass"
                     : t->n_fail       ? "fail"
                     : t->n_error      ? "error"
                                       : t->cells[0].verdict;
    }
    return 0;
}

static int s_cell_cmp(const void *x, const void *y)
{
    const kt_cmp_cell_t *a = x, *b = y;
    return strcmp(a->key, b->key);
}

static bool s_bad(const char *verdict)
{
    return strcmp(verdict, "fail") == 0 || strcmp(verdict, "error") == 0;
}

static enum kt_cmp_kind s_kind(const kt_cmp_test_t *a, const kt_cmp_test_t *b)
{
    if (!b)
        return KT_CMP_ONLY_A;
    if (!a)
        return KT_CMP_ONLY_B;
    if (strcmp(a->verdict, b->verdict) == 0)
        return KT_CMP_SAME;
    if (strcmp(a->verdict, "pass") == 0 && s_bad(b->verdict))
        return KT_CMP_REGRESSION;
    if (s_bad(a->verdict) && strcmp(b->verdict, "pass") == 0)
        return KT_CMP_FIX;
    return KT_CMP_CHANGED;
}

static int s_metric_cmp(const void *x, const void *y)
{
    const kt_cmp_metric_t *a = x, *b = y;
    if ((a->sense < 0) != (b->sense < 0))
        return a->sense < 0 ? -1 : 1;
    double ma = fabs(a->change_pct), mb = fabs(b->change_pct);
    if (ma != mb)
        return ma > mb ? -1 : 1;
    int r = strcmp(a->a->key, b->a->key);
    return r ? r : strcmp(a->name, b->name);
}

static int s_dbl_cmp(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}

/* The test's samples of a figure, sorted; how many. */
static unsigned s_samples(const kt_cmp_test_t *t, const char *name, double *v, unsigned max)
{
    unsigned n = 0;
    for (size_t i = 0; i < t->n && n < max; i++) {
        const json_t *x = json_object_get(t->cells[i].metrics, name);
        if (json_is_number(x))
            v[n++] = json_number_value(x);
    }
    qsort(v, n, sizeof(*v), s_dbl_cmp);
    return n;
}

static double s_median(const double *v, unsigned n)
{
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

#define S_MAX_SAMPLES 64

static int s_metrics(kt_compare_t *c, const kt_cmp_test_t *a, const kt_cmp_test_t *b,
                     double min_change_pct, size_t *cap)
{
    json_t *seen = json_object();
    if (!seen)
        return -ENOMEM;
    double va[S_MAX_SAMPLES], vb[S_MAX_SAMPLES];
    int r = 0;
    for (size_t i = 0; i < a->n && r == 0; i++) {
        if (!json_is_object(a->cells[i].metrics))
            continue;
        const char *name;
        json_t *v;
        json_object_foreach(a->cells[i].metrics, name, v) {
            if (json_object_get(seen, name))
                continue;
            json_object_set_new(seen, name, json_true());
            unsigned na = s_samples(a, name, va, S_MAX_SAMPLES);
            unsigned nb = s_samples(b, name, vb, S_MAX_SAMPLES);
            if (!na || !nb)
                continue;
            c->n_compared++;
            double x = s_median(va, na), y = s_median(vb, nb);
            if (x == y)
                continue;
            double pct = x != 0 ? (y - x) / fabs(x) * 100.0 : (y > x ? INFINITY : -INFINITY);
            if (fabs(pct) < min_change_pct)
                continue;
            /* With samples on both sides: moved only when the ranges part. */
            if (na >= 2 && nb >= 2 && va[0] <= vb[nb - 1] && vb[0] <= va[na - 1]) {
                c->n_overlap++;
                continue;
            }
            if (c->n_metrics == *cap) {
                size_t ncap = *cap ? *cap * 2 : 64;
                kt_cmp_metric_t *m = realloc(c->metrics, ncap * sizeof(*m));
                if (!m) {
                    r = -ENOMEM;
                    break;
                }
                c->metrics = m;
                *cap = ncap;
            }
            kt_cmp_metric_t *m = &c->metrics[c->n_metrics++];
            m->a = a;
            snprintf(m->name, sizeof(m->name), "%s", name);
            m->va = x;
            m->vb = y;
            m->na = na;
            m->nb = nb;
            m->change_pct = pct;
            m->sense = kt_metrics_direction(name) * (y > x ? 1 : -1);
        }
    }
    json_decref(seen);
    return r;
}

int kt_compare_runs(kt_store_t *s, const char *run_a, const char *run_b, double min_change_pct,
                    kt_compare_t *ret, char *err, size_t err_len)
{
    memset(ret, 0, sizeof(*ret));
    int r;
    if ((r = s_load(s, run_a, &ret->a, err, err_len)) < 0 ||
        (r = s_load(s, run_b, &ret->b, err, err_len)) < 0)
        goto fail;
    ret->by_test = ret->a.one_kernel && ret->b.one_kernel;
    if ((r = s_keys(&ret->a, ret->by_test)) < 0 || (r = s_keys(&ret->b, ret->by_test)) < 0) {
        snprintf(err, err_len, "out of memory");
        goto fail;
    }
    qsort(ret->a.cells, ret->a.n_cells, sizeof(kt_cmp_cell_t), s_cell_cmp);
    qsort(ret->b.cells, ret->b.n_cells, sizeof(kt_cmp_cell_t), s_cell_cmp);
    if (s_tests(&ret->a) < 0 || s_tests(&ret->b) < 0) {
        r = -ENOMEM;
        snprintf(err, err_len, "out of memory");
        goto fail;
    }
    ret->pairs = calloc(ret->a.n_tests + ret->b.n_tests + 1, sizeof(*ret->pairs));
    if (!ret->pairs) {
        r = -ENOMEM;
        snprintf(err, err_len, "out of memory");
        goto fail;
    }
    size_t i = 0, j = 0, cap = 0;
    while (i < ret->a.n_tests || j < ret->b.n_tests) {
        const kt_cmp_test_t *a = i < ret->a.n_tests ? &ret->a.tests[i] : NULL;
        const kt_cmp_test_t *b = j < ret->b.n_tests ? &ret->b.tests[j] : NULL;
        int order = !a ? 1 : !b ? -1 : strcmp(a->key, b->key);
        if (order < 0)
            b = NULL, i++;
        else if (order > 0)
            a = NULL, j++;
        else
            i++, j++;
        kt_cmp_pair_t *p = &ret->pairs[ret->n_pairs++];
        p->a = a;
        p->b = b;
        p->kind = s_kind(a, b);
        ret->count[p->kind]++;
        if (a && b && (r = s_metrics(ret, a, b, min_change_pct, &cap)) < 0) {
            snprintf(err, err_len, "out of memory");
            goto fail;
        }
    }
    if (ret->n_metrics)
        qsort(ret->metrics, ret->n_metrics, sizeof(kt_cmp_metric_t), s_metric_cmp);
    return 0;
fail:
    kt_compare_free(ret);
    return r;
}

typedef struct s_pick {
    char ids[64][256]; /* the newest 64, in a ring */
    size_t total;
} s_pick_t;

static int s_pick_run(const kt_store_run_t *run, void *userdata)
{
    s_pick_t *p = userdata;
    snprintf(p->ids[p->total % 64], sizeof(p->ids[0]), "%s", run->run_id ? run->run_id : "");
    p->total++;
    return 0;
}

int kt_store_pick_run(kt_store_t *s, const char *spec, char *buf, size_t len, char *err,
                      size_t err_len)
{
    unsigned back = 0;
    if (strncmp(spec, "latest", 6) != 0 || (spec[6] && spec[6] != '~')) {
        snprintf(buf, len, "%s", spec);
        return 0;
    }
    if (spec[6] == '~') {
        char *end;
        errno = 0;
        unsigned long v = strtoul(spec + 7, &end, 10);
        if (errno || end == spec + 7 || *end || v > 63) {
            snprintf(err, err_len, "'%s': expected latest or latest~N with N 0..63", spec);
            return -EINVAL;
        }
        back = (unsigned)v;
    }
    s_pick_t *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    int r = kt_store_runs(s, s_pick_run, p);
    if (r < 0) {
        snprintf(err, err_len, "listing runs: %s", kt_store_error(s));
    } else if (back >= p->total) {
        snprintf(err, err_len, "'%s': the store has %zu run(s)", spec, p->total);
        r = -ENOENT;
    } else {
        snprintf(buf, len, "%s", p->ids[(p->total - 1 - back) % 64]);
    }
    free(p);
    return r;
}
