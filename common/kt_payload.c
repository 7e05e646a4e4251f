/* Payload cells: spec helpers, the JSON metrics and TAP readers, the check
 * expressions and the bounded output capture (see kt_payload.h).
 *
 * The JSON reader is a small validating recursive-descent parser rather
 * than jansson: ktstr-init links statically and allocates nothing here, the
 * depth and the number of metrics are bounded, and the same code runs in
 * the host's unit tests. */
#include "kt_payload.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define S_JSON_DEPTH_MAX 32
#define S_JSON_CANDIDATES_MAX 256

void kt_payload_spec_init(kt_payload_spec_t *s)
{
    memset(s, 0, sizeof(*s));
    s->timeout_ms = KT_PAYLOAD_TIMEOUT_DEFAULT_MS;
    s->max_output = KT_PAYLOAD_OUTPUT_DEFAULT;
    s->judge = KT_PAYLOAD_JUDGE_EXIT;
}

/* ---- arguments ---- */

int kt_payload_args_set(kt_payload_spec_t *s, const char *const *argv, unsigned n)
{
    if (n > KT_PAYLOAD_ARGS_MAX)
        return -E2BIG;
    size_t off = 0;
    for (unsigned i = 0; i < n; i++) {
        size_t l = strlen(argv[i]);
        if (l + 1 > sizeof(s->args) - off)
            return -E2BIG;
        memcpy(s->args + off, argv[i], l + 1);
        off += l + 1;
    }
    memset(s->args + off, 0, sizeof(s->args) - off);
    s->n_args = n;
    return 0;
}

const char *kt_payload_arg(const kt_payload_spec_t *s, unsigned i)
{
    if (i >= s->n_args)
        return NULL;
    const char *p = s->args;
    const char *end = s->args + sizeof(s->args);
    for (unsigned k = 0; k < i; k++) {
        const char *z = memchr(p, '\0', (size_t)(end - p));
        if (!z || z + 1 >= end)
            return NULL;
        p = z + 1;
    }
    return memchr(p, '\0', (size_t)(end - p)) ? p : NULL;
}

int kt_payload_args_split(kt_payload_spec_t *s, const char *text, char *why, size_t wl)
{
    char buf[KT_PAYLOAD_ARGS_BYTES];
    const char *argv[KT_PAYLOAD_ARGS_MAX];
    unsigned n = 0;
    size_t o = 0;
    const char *p = text ? text : "";
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\n')
            p++;
        if (!*p)
            break;
        if (n == KT_PAYLOAD_ARGS_MAX) {
            snprintf(why, wl, "more than %d arguments", KT_PAYLOAD_ARGS_MAX);
            return -E2BIG;
        }
        argv[n++] = buf + o;
        char quote = 0;
        for (; *p && (quote || (*p != ' ' && *p != '\t' && *p != '\n')); p++) {
            char ch = *p;
            if (quote && ch == quote) {
                quote = 0;
                continue;
            }
            if (!quote && (ch == '\'' || ch == '"')) {
                quote = ch;
                continue;
            }
            if (ch == '\\' && quote != '\'' && p[1]) {
                ch = *++p;
            }
            if (o + 2 > sizeof(buf)) {
                snprintf(why, wl, "arguments longer than %d bytes in all",
                         KT_PAYLOAD_ARGS_BYTES - 1);
                return -E2BIG;
            }
            buf[o++] = ch;
        }
        if (quote) {
            snprintf(why, wl, "unterminated %c quote", quote);
            return -EINVAL;
        }
        buf[o++] = '\0';
    }
    int r = kt_payload_args_set(s, argv, n);
    if (r < 0)
        snprintf(why, wl, "arguments over %d bytes in all", KT_PAYLOAD_ARGS_BYTES);
    return r;
}

/* ---- checks ---- */

static bool s_metric_name_ok(const char *s, size_t n)
{
    if (n == 0 || n >= KT_PAYLOAD_METRIC_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= ' ' || c == '<' || c == '>' || c == '=' || c >= 0x7f)
            return false;
    }
    return true;
}

static int s_number(const char *text, double *ret)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (end == text || *end || errno || !isfinite(v))
        return -EINVAL;
    *ret = v;
    return 0;
}

int kt_payload_check_parse(const char *text, kt_payload_check_t *ret, char *why, size_t wl)
{
    kt_payload_check_t c;
    memset(&c, 0, sizeof(c));
    const char *op = strpbrk(text, "<>=");
    if (!op) {
        snprintf(why, wl, "check '%s': expected METRIC>=N, METRIC<=N, METRIC=A..B or exit==N",
                 text);
        return -EINVAL;
    }
    size_t nlen = (size_t)(op - text);
    while (nlen && (text[nlen - 1] == ' ' || text[nlen - 1] == '\t'))
        nlen--;
    const char *value;
    enum { GE, LE, EQ } kind;
    if (strncmp(op, ">=", 2) == 0) {
        kind = GE;
        value = op + 2;
    } else if (strncmp(op, "<=", 2) == 0) {
        kind = LE;
        value = op + 2;
    } else if (strncmp(op, "==", 2) == 0) {
        kind = EQ;
        value = op + 2;
    } else if (op[0] == '=') {
        kind = EQ;
        value = op + 1;
    } else {
        snprintf(why, wl, "check '%s': '%c' alone is not an operator (use >= or <=)", text,
                 op[0]);
        return -EINVAL;
    }
    while (*value == ' ' || *value == '\t')
        value++;
    if (!s_metric_name_ok(text, nlen)) {
        snprintf(why, wl, "check '%s': the metric name must be 1..%d printable characters "
                 "without blanks, '<', '>' or '='", text, KT_PAYLOAD_METRIC_NAME_MAX - 1);
        return -EINVAL;
    }
    memcpy(c.metric, text, nlen);
    c.metric[nlen] = '\0';
    char vbuf[64];
    size_t vl = strlen(value);
    while (vl && (value[vl - 1] == ' ' || value[vl - 1] == '\t'))
        vl--;
    if (vl == 0 || vl >= sizeof(vbuf)) {
        snprintf(why, wl, "check '%s': missing or overlong value", text);
        return -EINVAL;
    }
    memcpy(vbuf, value, vl);
    vbuf[vl] = '\0';
    if (strcmp(c.metric, "exit") == 0) {
        char *end;
        errno = 0;
        long code = strtol(vbuf, &end, 10);
        if (kind != EQ || *end || end == vbuf || errno || code < 0 || code > 255) {
            snprintf(why, wl, "check '%s': the exit status takes exit==N with N in 0..255", text);
            return -EINVAL;
        }
        c.kind = KT_PAYLOAD_CHECK_EXIT;
        c.metric[0] = '\0';
        c.lo = c.hi = (double)code;
        *ret = c;
        return 0;
    }
    char *dots = strstr(vbuf, "..");
    if (dots) {
        if (kind != EQ) {
            snprintf(why, wl, "check '%s': a range A..B goes with '=' (METRIC=A..B)", text);
            return -EINVAL;
        }
        *dots = '\0';
        if (s_number(vbuf, &c.lo) < 0 || s_number(dots + 2, &c.hi) < 0 || c.lo > c.hi) {
            snprintf(why, wl, "check '%s': expected a range A..B of numbers with A <= B", text);
            return -EINVAL;
        }
        c.kind = KT_PAYLOAD_CHECK_RANGE;
        *ret = c;
        return 0;
    }
    double v;
    if (s_number(vbuf, &v) < 0) {
        snprintf(why, wl, "check '%s': '%s' is not a number", text, vbuf);
        return -EINVAL;
    }
    c.lo = c.hi = v;
    c.kind = kind == GE ? KT_PAYLOAD_CHECK_MIN
                        : kind == LE ? KT_PAYLOAD_CHECK_MAX : KT_PAYLOAD_CHECK_RANGE;
    *ret = c;
    return 0;
}

void kt_payload_check_format(const kt_payload_check_t *c, char *buf, size_t len)
{
    switch (c->kind) {
    case KT_PAYLOAD_CHECK_MIN:
        snprintf(buf, len, "%s>=%.17g", c->metric, c->lo);
        break;
    case KT_PAYLOAD_CHECK_MAX:
        snprintf(buf, len, "%s<=%.17g", c->metric, c->hi);
        break;
    case KT_PAYLOAD_CHECK_RANGE:
        if (c->lo == c->hi)
            snprintf(buf, len, "%s==%.17g", c->metric, c->lo);
        else
            snprintf(buf, len, "%s=%.17g..%.17g", c->metric, c->lo, c->hi);
        break;
    case KT_PAYLOAD_CHECK_EXIT:
        snprintf(buf, len, "exit==%d", (int)c->lo);
        break;
    default:
        snprintf(buf, len, "?");
    }
}

int kt_payload_check_add(kt_payload_spec_t *s, const kt_payload_check_t *c)
{
    if (s->n_checks >= KT_PAYLOAD_CHECKS_MAX)
        return -E2BIG;
    s->checks[s->n_checks++] = *c;
    return 0;
}

/* ---- JSON metrics ---- */

typedef struct s_json {
    const char *p, *end;
    unsigned depth;
    bool collect;
    char path[KT_PAYLOAD_METRIC_NAME_MAX];
    size_t path_len;
    bool path_overflow;           /* the current path does not fit */
    kt_payload_metric_t *out;
    unsigned max, n;
    bool truncated;
} s_json_t;

static void s_ws(s_json_t *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static bool s_hex4(const char *p)
{
    for (int i = 0; i < 4; i++)
        if (!isxdigit((unsigned char)p[i]))
            return false;
    return true;
}

/* A string; its decoded text (escapes resolved, \u as '?') into buf when
 * buf is set, *ret_fits false when it did not fit. */
static int s_string(s_json_t *j, char *buf, size_t len, bool *ret_fits)
{
    size_t o = 0;
    bool fits = true;
    if (j->p >= j->end || *j->p != '"')
        return -EBADMSG;
    j->p++;
    for (;;) {
        if (j->p >= j->end)
            return -EBADMSG;
        unsigned char c = (unsigned char)*j->p++;
        if (c == '"')
            break;
        if (c < 0x20)
            return -EBADMSG;
        if (c == '\\') {
            if (j->p >= j->end)
                return -EBADMSG;
            char e = *j->p++;
            switch (e) {
            case '"': case '\\': case '/': c = (unsigned char)e; break;
            case 'b': c = '\b'; break;
            case 'f': c = '\f'; break;
            case 'n': c = '\n'; break;
            case 'r': c = '\r'; break;
            case 't': c = '\t'; break;
            case 'u':
                if (j->end - j->p < 4 || !s_hex4(j->p))
                    return -EBADMSG;
                j->p += 4;
                c = '?';
                break;
            default:
                return -EBADMSG;
            }
        }
        if (buf) {
            if (o + 1 < len)
                buf[o++] = (char)c;
            else
                fits = false;
        }
    }
    if (buf && len)
        buf[o] = '\0';
    if (ret_fits)
        *ret_fits = fits;
    return 0;
}

static void s_metric_put(s_json_t *j, double v)
{
    if (!j->collect)
        return;
    if (j->path_overflow || j->path_len == 0) {
        j->truncated = true;
        return;
    }
    for (unsigned i = 0; i < j->n; i++) {
        if (strcmp(j->out[i].name, j->path) == 0) {
            j->out[i].value = v;
            return;
        }
    }
    if (j->n >= j->max) {
        j->truncated = true;
        return;
    }
    memcpy(j->out[j->n].name, j->path, j->path_len + 1);
    j->out[j->n].value = v;
    j->n++;
}

static int s_number_token(s_json_t *j)
{
    const char *s = j->p;
    const char *p = s;
    if (p < j->end && *p == '-')
        p++;
    if (p >= j->end || !isdigit((unsigned char)*p))
        return -EBADMSG;
    if (*p == '0')
        p++;
    else
        while (p < j->end && isdigit((unsigned char)*p))
            p++;
    if (p < j->end && *p == '.') {
        p++;
        if (p >= j->end || !isdigit((unsigned char)*p))
            return -EBADMSG;
        while (p < j->end && isdigit((unsigned char)*p))
            p++;
    }
    if (p < j->end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < j->end && (*p == '+' || *p == '-'))
            p++;
        if (p >= j->end || !isdigit((unsigned char)*p))
            return -EBADMSG;
        while (p < j->end && isdigit((unsigned char)*p))
            p++;
    }
    j->p = p;
    if (!j->collect)
        return 0;
    char buf[128];
    size_t n = (size_t)(p - s);
    if (n >= sizeof(buf)) {
        j->truncated = true;
        return 0;
    }
    memcpy(buf, s, n);
    buf[n] = '\0';
    double v = strtod(buf, NULL);
    if (isfinite(v))
        s_metric_put(j, v);
    else
        j->truncated = true;
    return 0;
}

/* Appends ".seg" (or "seg" at the root) to the path; returns the old length. */
static size_t s_path_push(s_json_t *j, const char *seg, bool seg_fits)
{
    size_t old = j->path_len;
    if (j->path_overflow)
        return old;
    size_t sl = strlen(seg);
    size_t need = old + (old ? 1 : 0) + sl;
    if (!seg_fits || need >= sizeof(j->path)) {
        j->path_overflow = true;
        return old;
    }
    if (old)
        j->path[j->path_len++] = '.';
    memcpy(j->path + j->path_len, seg, sl + 1);
    j->path_len += sl;
    return old;
}

static void s_path_pop(s_json_t *j, size_t old, bool was_overflow)
{
    j->path_overflow = was_overflow;
    j->path_len = old;
    j->path[old] = '\0';
}

static int s_value(s_json_t *j);

static int s_object(s_json_t *j)
{
    j->p++; /* '{' */
    s_ws(j);
    if (j->p < j->end && *j->p == '}') {
        j->p++;
        return 0;
    }
    for (;;) {
        char key[KT_PAYLOAD_METRIC_NAME_MAX];
        bool fits = true;
        s_ws(j);
        if (s_string(j, key, sizeof(key), &fits) < 0)
            return -EBADMSG;
        s_ws(j);
        if (j->p >= j->end || *j->p != ':')
            return -EBADMSG;
        j->p++;
        bool was = j->path_overflow;
        size_t old = s_path_push(j, key, fits);
        int r = s_value(j);
        s_path_pop(j, old, was);
        if (r < 0)
            return r;
        s_ws(j);
        if (j->p >= j->end)
            return -EBADMSG;
        if (*j->p == ',') {
            j->p++;
            continue;
        }
        if (*j->p == '}') {
            j->p++;
            return 0;
        }
        return -EBADMSG;
    }
}

static int s_array(s_json_t *j)
{
    j->p++; /* '[' */
    s_ws(j);
    if (j->p < j->end && *j->p == ']') {
        j->p++;
        return 0;
    }
    for (unsigned idx = 0;; idx++) {
        char seg[16];
        snprintf(seg, sizeof(seg), "%u", idx);
        bool was = j->path_overflow;
        size_t old = s_path_push(j, seg, true);
        int r = s_value(j);
        s_path_pop(j, old, was);
        if (r < 0)
            return r;
        s_ws(j);
        if (j->p >= j->end)
            return -EBADMSG;
        if (*j->p == ',') {
            j->p++;
            continue;
        }
        if (*j->p == ']') {
            j->p++;
            return 0;
        }
        return -EBADMSG;
    }
}

static int s_literal(s_json_t *j, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, word, n) != 0)
        return -EBADMSG;
    j->p += n;
    return 0;
}

static int s_value(s_json_t *j)
{
    s_ws(j);
    if (j->p >= j->end)
        return -EBADMSG;
    int r;
    switch (*j->p) {
    case '{':
    case '[':
        if (++j->depth > S_JSON_DEPTH_MAX)
            return -E2BIG;
        r = *j->p == '{' ? s_object(j) : s_array(j);
        j->depth--;
        return r;
    case '"':
        return s_string(j, NULL, 0, NULL);
    case 't':
        return s_literal(j, "true");
    case 'f':
        return s_literal(j, "false");
    case 'n':
        return s_literal(j, "null");
    default:
        return s_number_token(j);
    }
}

/* Does [start, end) hold exactly one JSON value (blanks around it allowed)? */
static int s_parse_whole(const char *start, const char *end, s_json_t *j)
{
    j->p = start;
    j->end = end;
    j->depth = 0;
    j->path_len = 0;
    j->path[0] = '\0';
    j->path_overflow = false;
    int r = s_value(j);
    if (r < 0)
        return r;
    s_ws(j);
    return j->p == end ? 0 : -EBADMSG;
}

int kt_payload_json_metrics(const char *text, size_t len, kt_payload_metric_t *out, unsigned max,
                            unsigned *ret_n, bool *ret_truncated)
{
    *ret_n = 0;
    *ret_truncated = false;
    const char *end = text + len;
    /* Trailing blanks and NULs do not count. */
    while (end > text && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\n' ||
                          end[-1] == '\r' || end[-1] == '\0'))
        end--;
    if (end == text)
        return -ENOENT;
    s_json_t j = {.collect = false};
    const char *found = NULL;
    unsigned tried = 0;
    /* Candidates from the last line backwards: a value that starts a line
     * and runs to the end. A nested value's suffix carries its parents'
     * closing brackets, so only the outermost one parses whole. */
    for (const char *p = end - 1; p >= text && tried < S_JSON_CANDIDATES_MAX; p--) {
        if (*p != '{' && *p != '[')
            continue;
        const char *q = p;
        while (q > text && (q[-1] == ' ' || q[-1] == '\t'))
            q--;
        if (q != text && q[-1] != '\n' && q[-1] != '\r')
            continue;
        tried++;
        if (s_parse_whole(p, end, &j) == 0) {
            found = p;
            break;
        }
    }
    if (!found)
        return -ENOENT;
    j.collect = true;
    j.out = out;
    j.max = max;
    j.n = 0;
    j.truncated = false;
    if (s_parse_whole(found, end, &j) < 0)
        return -ENOENT;
    *ret_n = j.n;
    *ret_truncated = j.truncated;
    return 0;
}

const kt_payload_metric_t *kt_payload_metric_find(const kt_payload_outcome_t *o, const char *name)
{
    for (unsigned i = 0; i < o->n_metrics && i < KT_PAYLOAD_METRICS_MAX; i++)
        if (strcmp(o->metrics[i].name, name) == 0)
            return &o->metrics[i];
    return NULL;
}

/* ---- TAP ---- */

const char *kt_payload_tap_status_name(enum kt_payload_tap_status s)
{
    switch (s) {
    case KT_PAYLOAD_TAP_PASS: return "pass";
    case KT_PAYLOAD_TAP_FAIL: return "fail";
    case KT_PAYLOAD_TAP_SKIP: return "skip";
    case KT_PAYLOAD_TAP_NONE: break;
    }
    return "none";
}

static void s_tap_keep_line(kt_payload_tap_t *t, const char *line, size_t n)
{
    if (n >= sizeof(t->line))
        n = sizeof(t->line) - 1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)line[i];
        t->line[i] = c < 0x20 || c == 0x7f ? '?' : (char)c;
    }
    t->line[n] = '\0';
}

/* One line: 1 pass, 2 fail, 3 skip, 0 not a result line; desc set. */
static int s_tap_line(const char *line, size_t n, const char **ret_desc, size_t *ret_desc_len)
{
    size_t i;
    bool ok;
    if (n >= 6 && memcmp(line, "not ok", 6) == 0) {
        ok = false;
        i = 6;
    } else if (n >= 2 && memcmp(line, "ok", 2) == 0) {
        ok = true;
        i = 2;
    } else {
        return 0;
    }
    if (i < n && line[i] != ' ' && line[i] != '\t' && line[i] != '#')
        return 0; /* "okay", "oki" */
    while (i < n && (line[i] == ' ' || line[i] == '\t'))
        i++;
    while (i < n && isdigit((unsigned char)line[i]))
        i++;
    while (i < n && (line[i] == ' ' || line[i] == '\t'))
        i++;
    if (i + 1 < n && line[i] == '-' && (line[i + 1] == ' ' || line[i + 1] == '\t'))
        i += 2;
    while (i < n && (line[i] == ' ' || line[i] == '\t'))
        i++;
    const char *hash = memchr(line + i, '#', n - i);
    size_t dend = hash ? (size_t)(hash - line) : n;
    size_t d = dend;
    while (d > i && (line[d - 1] == ' ' || line[d - 1] == '\t' || line[d - 1] == '\r'))
        d--;
    *ret_desc = line + i;
    *ret_desc_len = d - i;
    bool skip = false, todo = false;
    if (hash) {
        const char *p = hash + 1;
        const char *e = line + n;
        while (p < e && (*p == ' ' || *p == '\t'))
            p++;
        if (e - p >= 4 && strncasecmp(p, "skip", 4) == 0)
            skip = true;
        else if (e - p >= 4 && strncasecmp(p, "todo", 4) == 0)
            todo = true;
    }
    if (skip)
        return 3;
    if (!ok && !todo)
        return 2;
    return 1;
}

void kt_payload_tap_scan(const char *text, size_t len, const char *test, kt_payload_tap_t *ret)
{
    memset(ret, 0, sizeof(*ret));
    bool named = test && test[0];
    size_t tl = named ? strlen(test) : 0;
    bool have_pass = false, have_skip = false, have_fail = false;
    char first_pass[KT_PAYLOAD_TAP_LINE_MAX] = "", first_skip[KT_PAYLOAD_TAP_LINE_MAX] = "";
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        const char *line = p;
        p = nl ? nl + 1 : end;
        while (n && (line[n - 1] == '\r' || line[n - 1] == '\0'))
            n--;
        const char *desc = NULL;
        size_t dl = 0;
        int kind;
        if (n >= 9 && memcmp(line, "Bail out!", 9) == 0) {
            kind = 2;
            desc = NULL;
        } else {
            kind = s_tap_line(line, n, &desc, &dl);
        }
        if (kind == 0)
            continue;
        if (kind == 1)
            ret->pass++;
        else if (kind == 2)
            ret->fail++;
        else
            ret->skip++;
        bool mine = !named || (desc && dl == tl && memcmp(desc, test, tl) == 0) ||
                    (!desc && kind == 2); /* a bail out fails the named test too */
        if (!mine)
            continue;
        if (kind == 2 && !have_fail) {
            have_fail = true;
            s_tap_keep_line(ret, line, n);
        } else if (kind == 1 && !have_pass) {
            have_pass = true;
            kt_payload_tap_t tmp;
            s_tap_keep_line(&tmp, line, n);
            memcpy(first_pass, tmp.line, sizeof(first_pass));
        } else if (kind == 3 && !have_skip) {
            have_skip = true;
            kt_payload_tap_t tmp;
            s_tap_keep_line(&tmp, line, n);
            memcpy(first_skip, tmp.line, sizeof(first_skip));
        }
    }
    if (have_fail) {
        ret->status = KT_PAYLOAD_TAP_FAIL;
    } else if (have_pass) {
        ret->status = KT_PAYLOAD_TAP_PASS;
        memcpy(ret->line, first_pass, sizeof(ret->line));
    } else if (have_skip) {
        ret->status = KT_PAYLOAD_TAP_SKIP;
        memcpy(ret->line, first_skip, sizeof(ret->line));
    }
}

/* ---- output capture ---- */

int kt_payload_capture_init(kt_payload_capture_t *c, size_t max)
{
    memset(c, 0, sizeof(*c));
    if (max < KT_PAYLOAD_OUTPUT_MIN)
        max = KT_PAYLOAD_OUTPUT_MIN;
    if (max > KT_PAYLOAD_OUTPUT_MAX)
        max = KT_PAYLOAD_OUTPUT_MAX;
    c->buf = malloc(max);
    if (!c->buf)
        return -ENOMEM;
    c->cap_head = max / 2;
    c->cap_tail = max - c->cap_head;
    return 0;
}

void kt_payload_capture_free(kt_payload_capture_t *c)
{
    free(c->buf);
    c->buf = NULL;
}

void kt_payload_capture_feed(kt_payload_capture_t *c, const void *data, size_t len)
{
    const char *d = data;
    c->total += len;
    if (!c->buf)
        return;
    if (c->head_len < c->cap_head) {
        size_t n = c->cap_head - c->head_len;
        if (n > len)
            n = len;
        memcpy(c->buf + c->head_len, d, n);
        c->head_len += n;
        d += n;
        len -= n;
    }
    if (len >= c->cap_tail) {
        memcpy(c->buf + c->cap_head, d + len - c->cap_tail, c->cap_tail);
        c->tail_start = 0;
        c->tail_len = c->cap_tail;
        return;
    }
    char *ring = c->buf + c->cap_head;
    for (size_t i = 0; i < len; i++) {
        size_t pos = (c->tail_start + c->tail_len) % c->cap_tail;
        ring[pos] = d[i];
        if (c->tail_len < c->cap_tail)
            c->tail_len++;
        else
            c->tail_start = (c->tail_start + 1) % c->cap_tail;
    }
}

size_t kt_payload_capture_head(const kt_payload_capture_t *c, char *buf, size_t len)
{
    if (!len)
        return 0;
    size_t n = c->buf ? c->head_len : 0;
    if (n > len - 1)
        n = len - 1;
    if (n)
        memcpy(buf, c->buf, n);
    buf[n] = '\0';
    return n;
}

size_t kt_payload_capture_tail(const kt_payload_capture_t *c, char *buf, size_t len)
{
    if (!len)
        return 0;
    size_t n = c->buf ? c->tail_len : 0;
    size_t skip = 0;
    if (n > len - 1) {
        skip = n - (len - 1);
        n = len - 1;
    }
    const char *ring = c->buf ? c->buf + c->cap_head : NULL;
    for (size_t i = 0; i < n; i++)
        buf[i] = ring[(c->tail_start + skip + i) % c->cap_tail];
    buf[n] = '\0';
    return n;
}

uint64_t kt_payload_capture_dropped(const kt_payload_capture_t *c)
{
    uint64_t kept = c->head_len + c->tail_len;
    return c->total > kept ? c->total - kept : 0;
}
