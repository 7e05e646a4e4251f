/* libfyaml helpers shared by every YAML reader (scenarios, gauntlets):
 * positions of nodes for FILE:LINE:COL errors, node kinds, YAML nulls, and a
 * diag that collects errors instead of printing them. */
#include "kt_yaml.h"

#include <string.h>

#include "kt_cleanup.h"

static void s_diag_discard(struct fy_diag *diag, void *user, const char *buf, size_t len)
{
    (void)diag;
    (void)user;
    (void)buf;
    (void)len;
}

/* A diag that keeps errors (with their position) instead of printing them. */
struct fy_diag *kt_yaml_diag_new(void)
{
    struct fy_diag_cfg cfg;
    fy_diag_cfg_default(&cfg);
    cfg.fp = NULL;
    cfg.output_fn = s_diag_discard;
    cfg.colorize = false;
    struct fy_diag *d = fy_diag_create(&cfg);
    if (d)
        fy_diag_set_collect_errors(d, true);
    return d;
}

void kt_yaml_diag_freep(struct fy_diag **d)
{
    if (*d)
        fy_diag_destroy(*d);
}

/* 1-based position of a node. Scalars carry their token; for collections
 * libfyaml knows the start but exports it only through its reports, so ask
 * it for one, and fall back on the first child (a collection whose last
 * value is empty has no end token and libfyaml then reports nothing). */
bool kt_yaml_node_pos(struct fy_node *n, int *ret_line, int *ret_col)
{
    if (!n)
        return false;
    if (fy_node_is_scalar(n) || fy_node_is_alias(n)) {
        struct fy_token *t = fy_node_get_scalar_token(n);
        const struct fy_mark *m = t ? fy_token_start_mark(t) : NULL;
        if (!m)
            return false;
        *ret_line = m->line + 1;
        *ret_col = m->column + 1;
        return true;
    }
    _cleanup_(kt_yaml_diag_freep) struct fy_diag *d = kt_yaml_diag_new();
    if (d) {
        fy_diag_node_report(d, n, FYET_ERROR, "position");
        void *it = NULL;
        struct fy_diag_error *e = fy_diag_errors_iterate(d, &it);
        if (e && e->line > 0 && e->column > 0) {
            *ret_line = e->line;
            *ret_col = e->column;
            return true;
        }
    }
    void *it = NULL;
    if (fy_node_is_mapping(n)) {
        struct fy_node_pair *p = fy_node_mapping_iterate(n, &it);
        return p && kt_yaml_node_pos(fy_node_pair_key(p), ret_line, ret_col);
    }
    if (fy_node_is_sequence(n))
        return kt_yaml_node_pos(fy_node_sequence_iterate(n, &it), ret_line, ret_col);
    return false;
}

const char *kt_yaml_kind(struct fy_node *n)
{
    if (!n)
        return "nothing";
    if (fy_node_is_mapping(n))
        return "a mapping";
    if (fy_node_is_sequence(n))
        return "a sequence";
    return "a scalar";
}

bool kt_yaml_is_null(struct fy_node *n)
{
    if (!n || fy_node_is_null(n))
        return true;
    if (!fy_node_is_scalar(n) || fy_node_get_style(n) != FYNS_PLAIN)
        return false;
    size_t len;
    const char *s = fy_node_get_scalar(n, &len);
    if (!s || len == 0)
        return true;
    static const char *const nulls[] = {"~", "null", "Null", "NULL"};
    for (size_t i = 0; i < KT_ARRAY_SIZE(nulls); i++)
        if (len == strlen(nulls[i]) && memcmp(s, nulls[i], len) == 0)
            return true;
    return false;
}
