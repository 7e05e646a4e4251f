/* The kernel spec grammar (kt_kspec.h): pure parsing, no I/O, so the same
 * answer comes back for the same text wherever it is parsed (a gauntlet at
 * load time, --kernel, `kernel resolve`). What a spec names on disk or in
 * the cache is the resolver's business (coordinator/kt_kernels.c). */
#include "kt_kspec.h"
#include "kt_log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Version parts beyond this are typos, not kernels (and cannot overflow). */
#define S_NUM_MAX 99999u

#define s_fail kt_err

static bool s_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool s_hex(char c)
{
    return s_digit(c) || (c >= 'a' && c <= 'f');
}

/* Reads a decimal number at *p (1 to 5 digits); advances *p. */
static bool s_num(const char **p, unsigned *ret)
{
    const char *s = *p;
    unsigned v = 0, n = 0;
    while (s_digit(*s)) {
        v = v * 10 + (unsigned)(*s - '0');
        s++;
        if (++n > 5 || v > S_NUM_MAX)
            return false;
    }
    if (!n)
        return false;
    *p = s;
    *ret = v;
    return true;
}

/* [v]X.Y[.Z][-rcN] at text; *ret_end is where it stopped. */
static int s_kver(const char *text, kt_kver_t *ret, const char **ret_end)
{
    const char *p = text;
    kt_kver_t v = {0};
    if (*p == 'v')
        p++;
    if (!s_num(&p, &v.major) || *p++ != '.' || !s_num(&p, &v.minor))
        return -EINVAL;
    if (*p == '.' && s_digit(p[1])) {
        p++;
        if (!s_num(&p, &v.patch))
            return -EINVAL;
        v.has_patch = true;
    }
    if (strncmp(p, "-rc", 3) == 0 && s_digit(p[3])) {
        p += 3;
        if (!s_num(&p, &v.rc) || v.rc == 0)
            return -EINVAL;
    }
    *ret = v;
    *ret_end = p;
    return 0;
}

int kt_kver_parse(const char *text, kt_kver_t *ret)
{
    const char *end;
    kt_kver_t v;
    if (!text || !ret || s_kver(text, &v, &end) < 0 || *end)
        return -EINVAL;
    *ret = v;
    return 0;
}

int kt_kver_parse_prefix(const char *text, kt_kver_t *ret)
{
    const char *end;
    kt_kver_t v;
    if (!text || !ret || text[0] == 'v' || s_kver(text, &v, &end) < 0)
        return -EINVAL;
    if (*end && *end != '-' && *end != '+' && *end != '_')
        return -EINVAL;
    *ret = v;
    return 0;
}

int kt_kver_cmp(const kt_kver_t *a, const kt_kver_t *b)
{
    unsigned pa = a->has_patch ? a->patch : 0, pb = b->has_patch ? b->patch : 0;
    if (a->major != b->major)
        return a->major < b->major ? -1 : 1;
    if (a->minor != b->minor)
        return a->minor < b->minor ? -1 : 1;
    if (pa != pb)
        return pa < pb ? -1 : 1;
    /* -rcN comes before the release (rc 0), and rc1 before rc2. */
    if (a->rc != b->rc) {
        if (!a->rc || !b->rc)
            return a->rc ? -1 : 1;
        return a->rc < b->rc ? -1 : 1;
    }
    return 0;
}

void kt_kver_format(const kt_kver_t *v, char *buf, size_t len)
{
    char patch[16] = "", rc[16] = "";
    if (v->has_patch)
        snprintf(patch, sizeof(patch), ".%u", v->patch);
    if (v->rc)
        snprintf(rc, sizeof(rc), "-rc%u", v->rc);
    snprintf(buf, len, "%u.%u%s%s", v->major, v->minor, patch, rc);
}

const char *kt_kspec_kind_name(enum kt_kspec_kind kind)
{
    switch (kind) {
    case KT_KSPEC_GIT: return "git";
    case KT_KSPEC_RANGE: return "range";
    case KT_KSPEC_PATH: return "path";
    case KT_KSPEC_VERSION: return "version";
    case KT_KSPEC_KEY: return "key";
    case KT_KSPEC_DEB: return "deb";
    }
    return "?";
}

static bool s_key_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || s_digit(c) || c == '.' ||
           c == '_' || c == '-' || c == '+';
}

static bool s_arch_char(char c)
{
    return (c >= 'a' && c <= 'z') || s_digit(c) || c == '_';
}

/* s[0..n) ends with "-ARCH" (ARCH of [a-z0-9_]); returns where '-' is, or
 * 0 when it does not. */
static size_t s_strip_arch(const char *s, size_t n)
{
    size_t i = n;
    while (i > 0 && s_arch_char(s[i - 1]))
        i--;
    if (i == n || i == 0 || s[i - 1] != '-')
        return 0;
    return i - 1;
}

bool kt_kspec_key_valid(const char *s)
{
    if (!s)
        return false;
    size_t n = strlen(s);
    if (n < 8 || n >= KT_KSPEC_KEY_MAX || s[0] == '.' || s[0] == '-')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!s_key_char(s[i]))
            return false;
    /* {version}-deb-{arch} */
    size_t a = s_strip_arch(s, n);
    if (a > 4 && strncmp(s + a - 4, "-deb", 4) == 0)
        return true;
    /* Every other shape ends in -{arch}-kc{8 hex}. */
    if (n < 12 || strncmp(s + n - 11, "-kc", 3) != 0)
        return false;
    for (size_t i = n - 8; i < n; i++)
        if (!s_hex(s[i]))
            return false;
    a = s_strip_arch(s, n - 11);
    if (!a)
        return false;
    /* local-{sha7} */
    if (a == 13 && strncmp(s, "local-", 6) == 0) {
        for (size_t i = 6; i < 13; i++)
            if (!s_hex(s[i]))
                return false;
        return true;
    }
    /* {version}-tarball */
    if (a > 8 && strncmp(s + a - 8, "-tarball", 8) == 0)
        return true;
    /* {ref}-git-{sha7} */
    if (a > 12 && strncmp(s + a - 12, "-git-", 5) == 0) {
        for (size_t i = a - 7; i < a; i++)
            if (!s_hex(s[i]))
                return false;
        return true;
    }
    return false;
}

static bool s_has_ctl(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    return false;
}

/* Debian package names: [a-z0-9][a-z0-9+.-]+ (Debian policy 5.6.1). */
static bool s_deb_name_valid(const char *s)
{
    size_t n = strlen(s);
    if (n < 2 || n > 200 || !((s[0] >= 'a' && s[0] <= 'z') || s_digit(s[0])))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || s_digit(s[i]) || s[i] == '+' || s[i] == '.' ||
              s[i] == '-'))
            return false;
    return true;
}

static int s_git(const char *text, kt_kspec_t *k, char *err, size_t err_len)
{
    const char *rest = text + 4;
    const char *hash = strrchr(rest, '#');
    if (!hash)
        return s_fail(err, err_len, -EINVAL,
                      "kernel spec '%s': git+URL needs #REF (a branch, tag or commit)", text);
    if (hash == rest)
        return s_fail(err, err_len, -EINVAL, "kernel spec '%s': git+URL#REF with no URL", text);
    const char *ref = hash + 1;
    if (!*ref)
        return s_fail(err, err_len, -EINVAL, "kernel spec '%s': empty REF after '#'", text);
    size_t rl = strlen(ref);
    if (rl >= sizeof(k->ref))
        return s_fail(err, err_len, -ENAMETOOLONG, "kernel spec '%s': REF longer than %zu bytes",
                      text, sizeof(k->ref) - 1);
    /* git check-ref-format's rules that matter here, and no blanks: the ref
     * names cache keys and log lines. */
    if (ref[0] == '-' || ref[0] == '/' || ref[rl - 1] == '/' || ref[rl - 1] == '.' ||
        strstr(ref, "..") || strstr(ref, "//") || strpbrk(ref, " ~^:?*[\\"))
        return s_fail(err, err_len, -EINVAL, "kernel spec '%s': '%s' is not a valid git ref",
                      text, ref);
    if (strpbrk(rest, " \t"))
        return s_fail(err, err_len, -EINVAL, "kernel spec '%s': blanks in the URL", text);
    snprintf(k->url, sizeof(k->url), "%.*s", (int)(hash - rest), rest);
    snprintf(k->ref, sizeof(k->ref), "%s", ref);
    k->kind = KT_KSPEC_GIT;
    return 0;
}

static int s_range(const char *text, const char *dots, kt_kspec_t *k, char *err, size_t err_len)
{
    char lo[64], hi[64];
    size_t ll = (size_t)(dots - text);
    const char *h = dots + 2;
    if (ll == 0 || !*h)
        return s_fail(err, err_len, -EINVAL,
                      "kernel spec '%s': a range needs both ends (A..B, e.g. 6.12.110..6.12.117)",
                      text);
    if (ll >= sizeof(lo) || strlen(h) >= sizeof(hi) || strstr(h, ".."))
        return s_fail(err, err_len, -EINVAL, "kernel spec '%s': not a range of two versions",
                      text);
    snprintf(lo, sizeof(lo), "%.*s", (int)ll, text);
    snprintf(hi, sizeof(hi), "%s", h);
    if (kt_kver_parse(lo, &k->lo) < 0)
        return s_fail(err, err_len, -EINVAL,
                      "kernel spec '%s': '%s' is not a version (X.Y[.Z][-rcN])", text, lo);
    if (kt_kver_parse(hi, &k->hi) < 0)
        return s_fail(err, err_len, -EINVAL,
                      "kernel spec '%s': '%s' is not a version (X.Y[.Z][-rcN])", text, hi);
    if (kt_kver_cmp(&k->lo, &k->hi) > 0)
        return s_fail(err, err_len, -EINVAL, "kernel spec '%s': %s is newer than %s", text, lo,
                      hi);
    k->kind = KT_KSPEC_RANGE;
    return 0;
}

int kt_kspec_parse(const char *text, kt_kspec_t *ret, char *err, size_t err_len)
{
    if (!text || !*text)
        return s_fail(err, err_len, -EINVAL, "kernel spec '': empty");
    size_t n = strlen(text);
    if (n >= KT_KSPEC_MAX)
        return s_fail(err, err_len, -ENAMETOOLONG,
                      "kernel spec '%.40s...': longer than %d bytes", text, KT_KSPEC_MAX - 1);
    if (s_has_ctl(text))
        return s_fail(err, err_len, -EINVAL, "kernel spec '%s': control characters", text);
    if (text[0] == ' ' || text[0] == '\t' || text[n - 1] == ' ' || text[n - 1] == '\t')
        return s_fail(err, err_len, -EINVAL, "kernel spec '%s': leading or trailing blanks",
                      text);
    /* Built whole, copied out only on success: ret is untouched on failure. */
    kt_kspec_t k = {0};
    snprintf(k.text, sizeof(k.text), "%s", text);
    int r;
    const char *dots;
    if (strncmp(text, "git+", 4) == 0) {
        r = s_git(text, &k, err, err_len);
    } else if (strncmp(text, "deb:", 4) != 0 && !strchr(text, '/') &&
               (dots = strstr(text, ".."))) {
        r = s_range(text, dots, &k, err, err_len);
    } else if (strchr(text, '/') || text[0] == '.' || text[0] == '~') {
        k.kind = KT_KSPEC_PATH;
        snprintf(k.url, sizeof(k.url), "%s", text);
        r = 0;
    } else if (kt_kver_parse(text, &k.lo) == 0) {
        k.kind = KT_KSPEC_VERSION;
        r = 0;
    } else if (kt_kspec_key_valid(text)) {
        k.kind = KT_KSPEC_KEY;
        snprintf(k.url, sizeof(k.url), "%s", text);
        r = 0;
    } else if (strncmp(text, "deb:", 4) == 0) {
        if (!s_deb_name_valid(text + 4))
            return s_fail(err, err_len, -EINVAL,
                          "kernel spec '%s': '%s' is not a Debian package name", text, text + 4);
        k.kind = KT_KSPEC_DEB;
        snprintf(k.url, sizeof(k.url), "%s", text + 4);
        r = 0;
    } else if (s_digit(text[0]) || (text[0] == 'v' && s_digit(text[1]))) {
        r = s_fail(err, err_len, -EINVAL,
                   "kernel spec '%s': not a version (X.Y[.Z][-rcN], e.g. 6.12.117 or 6.12) "
                   "nor a cache key",
                   text);
    } else {
        r = s_fail(err, err_len, -EINVAL,
                   "kernel spec '%s': not git+URL#REF, A..B, a path, a version, a cache key "
                   "or deb:PACKAGE (a file here is ./%s)",
                   text, text);
    }
    if (r < 0)
        return r;
    *ret = k;
    return 0;
}
