/* libfyaml helpers shared by every YAML reader (scenarios, gauntlets):
 * positions of nodes for FILE:LINE:COL errors, node kinds, YAML nulls, a
 * diag that collects errors instead of printing them, and the strict
 * reader's pieces: loading one document, errors at a node, aliases,
 * scalars, and the keys of a mapping matched against the known ones. */
#include "kt_yaml.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kt_cleanup.h"
#include "kt_fileio.h"

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

/* YAML text is printable Unicode (YAML 1.2, 5.1): UTF-8, no C0 control
 * character but tab, LF and CR, no DEL, C1 (but NEL), surrogate or
 * non-character U+FFFE/U+FFFF. Checked before libfyaml sees the text:
 * libfyaml 0.7.12 loops forever on a directive followed by invalid UTF-8
 * ("%\x9f"), and takes control characters in plain scalars. Returns 0, or
 * -EILSEQ with the 1-based position and a description of the first bad
 * character. */
int kt_yaml_check_text(const char *text, size_t len, int *ret_line, int *ret_col, char *what,
                       size_t what_len)
{
    const unsigned char *p = (const unsigned char *)text;
    int line = 1, col = 1;
    /* Per line: inside a comment, inside a quoted scalar (a quote opens one
     * only where a token starts), after a backslash in double quotes. */
    bool comment = false, esc = false;
    unsigned char quote = 0, prev = '\n';
    for (size_t i = 0; i < len; col++) {
        unsigned c = p[i];
        size_t n = c < 0x80             ? 1
                   : (c & 0xe0) == 0xc0 ? 2
                   : (c & 0xf0) == 0xe0 ? 3
                   : (c & 0xf8) == 0xf0 ? 4
                                        : 0;
        uint32_t cp = n == 1 ? c : n == 2 ? c & 0x1f : n == 3 ? c & 0x0f : c & 0x07;
        bool ok = n != 0 && i + n <= len;
        for (size_t k = 1; ok && k < n; k++) {
            ok = (p[i + k] & 0xc0) == 0x80;
            cp = cp << 6 | (p[i + k] & 0x3f);
        }
        /* Shortest form only, within Unicode, no surrogates. */
        static const uint32_t min_cp[] = {0, 0, 0x80, 0x800, 0x10000};
        ok = ok && cp >= min_cp[n] && cp <= 0x10ffff && !(cp >= 0xd800 && cp <= 0xdfff);
        if (!ok) {
            snprintf(what, what_len, "invalid UTF-8 byte 0x%02x", c);
            goto bad;
        }
        bool printable = cp == '\t' || cp == '\n' || cp == '\r' || (cp >= 0x20 && cp <= 0x7e) ||
                         cp == 0x85 || (cp >= 0xa0 && cp != 0xfffe && cp != 0xffff);
        if (!printable) {
            snprintf(what, what_len, "character U+%04X is not allowed in YAML", (unsigned)cp);
            goto bad;
        }
        if (cp == '\n') {
            line++;
            col = 0;
            comment = esc = false;
            quote = 0;
        } else if (comment) {
        } else if (quote) {
            if (esc)
                esc = false;
            else if (quote == '"' && cp == '\\')
                esc = true;
            else if (cp == quote)
                quote = 0;
        } else if ((cp == '\'' || cp == '"') && strchr(" \t\n[{,:-?", prev)) {
            quote = (unsigned char)cp;
        } else if (cp == '#' && (prev == ' ' || prev == '\t' || prev == '\n')) {
            comment = true;
        } else if (cp == '\t') {
            size_t j = i + 1;
            while (j < len && (p[j] == ' ' || p[j] == '\t'))
                j++;
            if (j < len && p[j] != '\n' && p[j] != '\r' && p[j] != '#') {
                snprintf(what, what_len,
                         "a tab outside quotes and comments: indent and separate with spaces");
                goto bad;
            }
        }
        prev = n == 1 ? c : 'x';
        i += n;
        continue;
    bad:
        *ret_line = line;
        *ret_col = col;
        return -EILSEQ;
    }
    return 0;
}

int kt_yaml_fail(kt_yaml_ctx_t *c, struct fy_node *node, struct fy_node *fallback, const char *fmt,
                 ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    /* Values are quoted in messages: keep control characters out of them,
     * an error is one line. */
    for (char *p = msg; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    int line, col;
    if (kt_yaml_node_pos(node, &line, &col) || kt_yaml_node_pos(fallback, &line, &col))
        snprintf(c->err, c->err_len, "%s:%d:%d: %s", c->origin, line, col, msg);
    else
        snprintf(c->err, c->err_len, "%s: %s", c->origin, msg);
    return -EINVAL;
}

int kt_yaml_deref(kt_yaml_ctx_t *c, struct fy_node **n, struct fy_node *key, const char *path)
{
    if (!*n || !fy_node_is_alias(*n))
        return 0;
    struct fy_node *t = fy_node_resolve_alias(*n);
    if (t) {
        *n = t;
        return 0;
    }
    size_t len;
    const char *a = fy_node_get_scalar(*n, &len);
    return kt_yaml_fail(c, *n, key, "%s: alias '*%.*s' names no anchor", path,
                        a ? (int)(len > 64 ? 64 : len) : 0, a ? a : "");
}

int kt_yaml_scalar(kt_yaml_ctx_t *c, struct fy_node *n, struct fy_node *key, const char *path,
                   const char *what, const char **ret_text, size_t *ret_len, bool *ret_plain)
{
    struct fy_node *t = n;
    int r = kt_yaml_deref(c, &t, key, path);
    if (r < 0)
        return r;
    if (kt_yaml_is_null(t))
        return kt_yaml_fail(c, n, key, "%s: expected %s, got nothing", path, what);
    if (!fy_node_is_scalar(t))
        return kt_yaml_fail(c, n, key, "%s: expected %s, got %s", path, what, kt_yaml_kind(t));
    size_t len;
    const char *s = fy_node_get_scalar(t, &len);
    if (!s)
        return kt_yaml_fail(c, n, key, "%s: expected %s", path, what);
    if (memchr(s, '\0', len))
        return *path ? kt_yaml_fail(c, n, key, "%s: contains a NUL byte", path)
                     : kt_yaml_fail(c, n, key, "%s contains a NUL byte", what);
    *ret_text = s;
    *ret_len = len;
    if (ret_plain)
        *ret_plain = fy_node_get_style(t) == FYNS_PLAIN;
    return 0;
}

int kt_yaml_value(kt_yaml_ctx_t *c, struct fy_node *n, struct fy_node *key, const char *path,
                  const char *what, char *buf, size_t buf_len, bool *ret_fits, bool *ret_plain)
{
    const char *s;
    size_t len;
    int r = kt_yaml_scalar(c, n, key, path, what, &s, &len, ret_plain);
    if (r < 0)
        return r;
    *ret_fits = len < buf_len;
    if (!*ret_fits)
        len = buf_len - 1;
    memcpy(buf, s, len);
    buf[len] = '\0';
    return 0;
}

int kt_yaml_real_path(kt_yaml_ctx_t *c, struct fy_node *n, struct fy_node *key, const char *path,
                      const char *raw, bool dir_ok, bool exec, char *ret, size_t ret_len)
{
    char joined[8192];
    if (raw[0] == '/')
        snprintf(joined, sizeof(joined), "%s", raw);
    else
        snprintf(joined, sizeof(joined), "%s/%s", c->base_dir, raw);
    struct stat st;
    if (stat(joined, &st) < 0)
        return kt_yaml_fail(c, n, key, "%s: '%s': %s", path, joined, strerror(errno));
    if (!S_ISREG(st.st_mode) && !(dir_ok && S_ISDIR(st.st_mode)))
        return kt_yaml_fail(c, n, key, "%s: '%s' is not a %s", path, joined,
                            dir_ok ? "file or directory" : "regular file");
    if (exec && access(joined, X_OK) < 0)
        return kt_yaml_fail(c, n, key, "%s: '%s' is not executable", path, joined);
    char real[PATH_MAX];
    if (!realpath(joined, real))
        return kt_yaml_fail(c, n, key, "%s: '%s': %s", path, joined, strerror(errno));
    if (strlen(real) >= ret_len)
        return kt_yaml_fail(c, n, key, "%s: '%s' is longer than %zu bytes", path, real,
                            ret_len - 1);
    snprintf(ret, ret_len, "%s", real);
    return 0;
}

bool kt_yaml_is_bool(struct fy_node *n, bool *ret)
{
    if (n && fy_node_is_alias(n))
        n = fy_node_resolve_alias(n);
    if (!n || !fy_node_is_scalar(n) || fy_node_get_style(n) != FYNS_PLAIN)
        return false;
    size_t len;
    const char *s = fy_node_get_scalar(n, &len);
    if (!s)
        return false;
    static const char *const t[] = {"true", "True", "TRUE"}, *const f[] = {"false", "False",
                                                                           "FALSE"};
    for (size_t i = 0; i < KT_ARRAY_SIZE(t); i++) {
        if (len == strlen(t[i]) && memcmp(s, t[i], len) == 0) {
            *ret = true;
            return true;
        }
        if (len == strlen(f[i]) && memcmp(s, f[i], len) == 0) {
            *ret = false;
            return true;
        }
    }
    return false;
}

static unsigned s_edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 31 || lb > 31)
        return 99;
    unsigned d[32][32];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = (unsigned)i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = (unsigned)j;
    for (size_t i = 1; i <= la; i++) {
        for (size_t j = 1; j <= lb; j++) {
            unsigned best = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < best)
                best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best)
                best = d[i][j - 1] + 1;
            d[i][j] = best;
        }
    }
    return d[la][lb];
}

/* The text of key k as messages show it ("..." marks a cut one); *ret_known
 * says whether it can name a field at all. */
static int s_key_name(kt_yaml_ctx_t *c, struct fy_node *k, struct fy_node *map, const char *path,
                      char *buf, size_t buf_len, const char **ret_more, bool *ret_known)
{
    *ret_more = "";
    bool fits;
    int r = kt_yaml_value(c, k, map, path, "a key", buf, buf_len, &fits, NULL);
    if (r < 0)
        return r;
    *ret_more = fits ? "" : "...";
    *ret_known = fits;
    return 0;
}

int kt_yaml_fields(kt_yaml_ctx_t *c, struct fy_node *map, struct fy_node *key, const char *path,
                   const char *what, kt_yaml_field_t *fields, size_t n_fields)
{
    int r = kt_yaml_deref(c, &map, key, path);
    if (r < 0)
        return r;
    const char *sep = *path ? ": " : "";
    if (!map || !fy_node_is_mapping(map))
        return kt_yaml_fail(c, map, key, "%s%sexpected a mapping for %s, got %s", path, sep, what,
                            kt_yaml_is_null(map) ? "nothing" : kt_yaml_kind(map));
    void *it = NULL;
    struct fy_node_pair *p;
    while ((p = fy_node_mapping_iterate(map, &it))) {
        struct fy_node *k = fy_node_pair_key(p);
        if (!k || !fy_node_is_scalar(k) || fy_node_is_alias(k) || kt_yaml_is_null(k))
            return kt_yaml_fail(c, k, map, "%s%sa key in %s is %s, expected a plain name", path,
                                sep, what,
                                !k || kt_yaml_is_null(k) ? "empty"
                                : fy_node_is_alias(k)    ? "an alias"
                                                         : kt_yaml_kind(k));
        char name[64];
        const char *more;
        bool known;
        if ((r = s_key_name(c, k, map, path, name, sizeof(name), &more, &known)) < 0)
            return r;
        size_t i = 0;
        for (; known && i < n_fields; i++)
            if (strcmp(name, fields[i].name) == 0)
                break;
        if (known && i < n_fields) {
            fields[i].key = k;
            fields[i].value = fy_node_pair_value(p);
            continue;
        }
        const char *hint = NULL;
        unsigned best = 3;
        for (size_t j = 0; known && j < n_fields; j++) {
            unsigned d = s_edit_distance(name, fields[j].name);
            if (d < best) {
                best = d;
                hint = fields[j].name;
            }
        }
        if (hint)
            return kt_yaml_fail(c, k, map, "%s%sunknown key '%s' in %s (did you mean '%s'?)", path,
                                sep, name, what, hint);
        char list[256] = "";
        size_t off = 0;
        for (size_t j = 0; j < n_fields && off < sizeof(list); j++)
            off += (size_t)snprintf(list + off, sizeof(list) - off, "%s%s", j ? ", " : "",
                                    fields[j].name);
        return kt_yaml_fail(c, k, map, "%s%sunknown key '%s%s' in %s (known: %s)", path, sep, name,
                            more, what, list);
    }
    return 0;
}

kt_yaml_field_t *kt_yaml_field(kt_yaml_field_t *fields, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(fields[i].name, name) == 0)
            return fields[i].key ? &fields[i] : NULL;
    return NULL;
}

int kt_yaml_file_read(const char *path, char **ret_buf, size_t *ret_len, char *ret_dir,
                      size_t dir_len, char *ret_real, char *err, size_t err_len)
{
    _cleanup_free_ char *buf = NULL;
    size_t len = 0;
    int r = kt_read_file_reported(path, KT_YAML_FILE_MAX, &buf, &len, err, err_len);
    if (r < 0)
        return r;
    if (ret_real && !realpath(path, ret_real)) {
        r = -errno;
        if (err)
            snprintf(err, err_len, "%s: %s", path, strerror(-r));
        return r;
    }
    kt_path_dir(ret_real ? ret_real : path, ret_dir, dir_len);
    *ret_buf = TAKE_PTR(buf);
    *ret_len = len;
    return 0;
}

void kt_yaml_doc_close(kt_yaml_doc_t *d)
{
    if (d->doc)
        fy_parse_document_destroy(d->parser, d->doc);
    if (d->parser)
        fy_parser_destroy(d->parser);
    kt_yaml_diag_freep(&d->diag);
    *d = (kt_yaml_doc_t){0};
}

int kt_yaml_doc_load(kt_yaml_ctx_t *c, const char *text, size_t len, const char *what,
                     kt_yaml_doc_t *ret_doc)
{
    kt_yaml_doc_t *d = ret_doc;
    *d = (kt_yaml_doc_t){0};
    if (!text)
        return -EINVAL;
    if (len > KT_YAML_FILE_MAX) {
        snprintf(c->err, c->err_len, "%s: %zu bytes, larger than the limit of %u", c->origin, len,
                 KT_YAML_FILE_MAX);
        return -EFBIG;
    }
    int line, col;
    char bad[128];
    if (kt_yaml_check_text(text, len, &line, &col, bad, sizeof(bad)) < 0) {
        snprintf(c->err, c->err_len, "%s:%d:%d: %s", c->origin, line, col, bad);
        return -EINVAL;
    }
    d->diag = kt_yaml_diag_new();
    if (!d->diag) {
        snprintf(c->err, c->err_len, "%s: out of memory", c->origin);
        return -ENOMEM;
    }
    /* Duplicate keys stay errors (libfyaml's default). */
    struct fy_parse_cfg cfg = {.flags = FYPCF_QUIET, .diag = d->diag};
    d->parser = fy_parser_create(&cfg);
    if (!d->parser || fy_parser_set_string(d->parser, text, len) < 0) {
        snprintf(c->err, c->err_len, "%s: cannot set up the YAML parser", c->origin);
        return -ENOMEM;
    }
    d->doc = fy_parse_load_document(d->parser);
    void *it = NULL;
    struct fy_diag_error *e;
    if (!d->doc || fy_parser_get_stream_error(d->parser)) {
        e = fy_diag_errors_iterate(d->diag, &it);
        if (e && e->line > 0)
            snprintf(c->err, c->err_len, "%s:%d:%d: %s", c->origin, e->line, e->column,
                     e->msg ? e->msg : "invalid YAML");
        else if (e && e->msg)
            snprintf(c->err, c->err_len, "%s: invalid YAML: %s", c->origin, e->msg);
        else if (e || fy_parser_get_stream_error(d->parser))
            snprintf(c->err, c->err_len, "%s: invalid YAML", c->origin);
        else
            snprintf(c->err, c->err_len, "%s: empty document: expected a %s mapping", c->origin,
                     what);
        return -EINVAL;
    }
    struct fy_document *extra = fy_parse_load_document(d->parser);
    if (extra || fy_parser_get_stream_error(d->parser)) {
        e = fy_diag_errors_iterate(d->diag, &it);
        struct fy_node *root = extra ? fy_document_root(extra) : NULL;
        int r = -EINVAL;
        if (e && e->line > 0)
            snprintf(c->err, c->err_len, "%s:%d:%d: %s", c->origin, e->line, e->column,
                     e->msg ? e->msg : "invalid YAML");
        else
            r = kt_yaml_fail(c, root, NULL, "a second YAML document: a %s file holds one", what);
        if (extra)
            fy_parse_document_destroy(d->parser, extra);
        return r;
    }
    d->root = fy_document_root(d->doc);
    if (!d->root)
        return kt_yaml_fail(c, NULL, NULL, "empty document: expected a %s mapping", what);
    return 0;
}
