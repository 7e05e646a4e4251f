/* The kernel spec grammar: a table of accepted specs with what each parses
 * to, a table of malformed ones with the words the error must hold, and
 * version ordering (-rc before the release). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kt_kspec.h"

typedef struct s_good {
    const char *text;
    enum kt_kspec_kind kind;
    const char *url; /* url field, NULL: not checked */
    const char *ref;
    const char *lo, *hi; /* formatted versions */
} s_good_t;

static const s_good_t s_goods[] = {
    {"git+file:///srv/linux#v6.12.117", KT_KSPEC_GIT, "file:///srv/linux", "v6.12.117"},
    {"git+/srv/linux#main", KT_KSPEC_GIT, "/srv/linux", "main"},
    {"git+https://git.kernel.org/pub/scm/linux/kernel/git/tj/sched_ext.git#for-6.13",
     KT_KSPEC_GIT, "https://git.kernel.org/pub/scm/linux/kernel/git/tj/sched_ext.git",
     "for-6.13"},
    {"git+../linux#3f2a9c1", KT_KSPEC_GIT, "../linux", "3f2a9c1"},
    {"git+https://h/x.git#refs/tags/v6.12", KT_KSPEC_GIT, "https://h/x.git", "refs/tags/v6.12"},
    {"6.12.110..6.12.117", KT_KSPEC_RANGE, NULL, NULL, "6.12.110", "6.12.117"},
    {"v6.12..v6.13-rc2", KT_KSPEC_RANGE, NULL, NULL, "6.12", "6.13-rc2"},
    {"6.12.112-rc1..6.12.112", KT_KSPEC_RANGE, NULL, NULL, "6.12.112-rc1", "6.12.112"},
    {"6.12..6.12", KT_KSPEC_RANGE, NULL, NULL, "6.12", "6.12"},
    {"/boot/vmlinuz-6.12", KT_KSPEC_PATH, "/boot/vmlinuz-6.12"},
    {"./bzImage", KT_KSPEC_PATH, "./bzImage"},
    {"../linux", KT_KSPEC_PATH, "../linux"},
    {"~/src/linux", KT_KSPEC_PATH, "~/src/linux"},
    {"build/arch/x86/boot/bzImage", KT_KSPEC_PATH, "build/arch/x86/boot/bzImage"},
    {"6.12.117", KT_KSPEC_VERSION, NULL, NULL, "6.12.117"},
    {"6.12", KT_KSPEC_VERSION, NULL, NULL, "6.12"},
    {"v6.13-rc2", KT_KSPEC_VERSION, NULL, NULL, "6.13-rc2"},
    {"6.12.117-tarball-x86_64-kc0123abcd", KT_KSPEC_KEY, "6.12.117-tarball-x86_64-kc0123abcd"},
    {"v6.12.110-git-3f2a9c1-x86_64-kcdeadbeef", KT_KSPEC_KEY,
     "v6.12.110-git-3f2a9c1-x86_64-kcdeadbeef"},
    {"local-3f2a9c1-x86_64-kc00000000", KT_KSPEC_KEY, "local-3f2a9c1-x86_64-kc00000000"},
    {"6.12.57+deb13-cloud-amd64-deb-x86_64", KT_KSPEC_KEY, "6.12.57+deb13-cloud-amd64-deb-x86_64"},
    {"deb:linux-image-6.12.57+deb13-cloud-amd64", KT_KSPEC_DEB,
     "linux-image-6.12.57+deb13-cloud-amd64"},
};

typedef struct s_bad {
    const char *text;
    int r;
    const char *words; /* must appear in the error */
} s_bad_t;

static const s_bad_t s_bads[] = {
    {"", -EINVAL, "empty"},
    {"..", -EINVAL, "needs both ends"},
    {"a..", -EINVAL, "needs both ends"},
    {"..6.12", -EINVAL, "needs both ends"},
    {"6.12..x", -EINVAL, "'x' is not a version"},
    {"six..6.12", -EINVAL, "'six' is not a version"},
    {"6.13..6.12", -EINVAL, "6.13 is newer than 6.12"},
    {"6.12..6.13..6.14", -EINVAL, "not a range of two versions"},
    {"git+#x", -EINVAL, "no URL"},
    {"git+https://h/linux.git", -EINVAL, "needs #REF"},
    {"git+/srv/linux#", -EINVAL, "empty REF"},
    {"git+/srv/linux#a..b", -EINVAL, "not a valid git ref"},
    {"git+/srv/linux#-rf", -EINVAL, "not a valid git ref"},
    {"git+/srv/linux#a b", -EINVAL, "not a valid git ref"},
    {"6", -EINVAL, "not a version"},
    {"6.", -EINVAL, "not a version"},
    {"6.12.", -EINVAL, "not a version"},
    {"6.12.117.1", -EINVAL, "not a version"},
    {"6.12-rc0", -EINVAL, "not a version"},
    {"6.12-rc", -EINVAL, "not a version"},
    {"6.123456", -EINVAL, "not a version"},
    {"v6", -EINVAL, "not a version"},
    {"bzImage", -EINVAL, "a file here is ./bzImage"},
    {"local-3f2a9c1-x86_64-kc0000000", -EINVAL, "not git+URL#REF"},
    {"deb:", -EINVAL, "not a Debian package name"},
    {"deb:Linux_Image", -EINVAL, "not a Debian package name"},
    {" 6.12", -EINVAL, "leading or trailing blanks"},
    {"6.12\n", -EINVAL, "control characters"},
};

static void test_accepted(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(s_goods) / sizeof(s_goods[0]); i++) {
        const s_good_t *g = &s_goods[i];
        kt_kspec_t k;
        char err[512] = "";
        int r = kt_kspec_parse(g->text, &k, err, sizeof(err));
        if (r != 0)
            fail_msg("'%s': %s", g->text, err);
        if (k.kind != g->kind)
            fail_msg("'%s': kind %s, expected %s", g->text, kt_kspec_kind_name(k.kind),
                     kt_kspec_kind_name(g->kind));
        assert_string_equal(k.text, g->text);
        if (g->url)
            assert_string_equal(k.url, g->url);
        if (g->ref)
            assert_string_equal(k.ref, g->ref);
        char v[64];
        if (g->lo) {
            kt_kver_format(&k.lo, v, sizeof(v));
            assert_string_equal(v, g->lo);
        }
        if (g->hi) {
            kt_kver_format(&k.hi, v, sizeof(v));
            assert_string_equal(v, g->hi);
        }
    }
}

static void test_malformed(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(s_bads) / sizeof(s_bads[0]); i++) {
        const s_bad_t *b = &s_bads[i];
        kt_kspec_t k;
        memset(&k, 0x5a, sizeof(k));
        char err[512] = "";
        int r = kt_kspec_parse(b->text, &k, err, sizeof(err));
        if (r != b->r)
            fail_msg("'%s': returned %d, expected %d (err '%s')", b->text, r, b->r, err);
        if (!strstr(err, b->words))
            fail_msg("'%s': error '%s' lacks '%s'", b->text, err, b->words);
        /* Every error names the spec it is about. */
        char named[KT_KSPEC_MAX + 32];
        snprintf(named, sizeof(named), "kernel spec '%s'", b->text);
        if (strncmp(err, named, strlen(named)) != 0)
            fail_msg("'%s': error '%s' does not name the spec", b->text, err);
        /* ret untouched on failure */
        assert_int_equal(((unsigned char *)&k)[0], 0x5a);
        assert_int_equal(((unsigned char *)&k)[sizeof(k) - 1], 0x5a);
    }
}

static void test_overlong(void **state)
{
    (void)state;
    char *text = malloc(KT_KSPEC_MAX + 1);
    assert_non_null(text);
    memset(text, 'a', KT_KSPEC_MAX);
    text[0] = '/';
    text[KT_KSPEC_MAX] = '\0';
    kt_kspec_t k;
    char err[512] = "";
    assert_int_equal(kt_kspec_parse(text, &k, err, sizeof(err)), -ENAMETOOLONG);
    assert_non_null(strstr(err, "longer than 4095 bytes"));
    text[KT_KSPEC_MAX - 1] = '\0'; /* 4095 bytes: the longest path accepted */
    assert_int_equal(kt_kspec_parse(text, &k, err, sizeof(err)), 0);
    assert_int_equal(k.kind, KT_KSPEC_PATH);
    /* An overlong ref and an overlong cache-key-like word. */
    char ref[600];
    snprintf(ref, sizeof(ref), "git+/x#%0300d", 0);
    assert_int_equal(kt_kspec_parse(ref, &k, err, sizeof(err)), -ENAMETOOLONG);
    assert_non_null(strstr(err, "REF longer than 255 bytes"));
    char key[200];
    snprintf(key, sizeof(key), "%0150d-git-3f2a9c1-x86_64-kc00000000", 0);
    assert_false(kt_kspec_key_valid(key));
    free(text);
}

static void test_version_order(void **state)
{
    (void)state;
    /* Ascending, each strictly newer than the one before. */
    static const char *const order[] = {"6.11",         "6.12-rc1",  "6.12-rc7", "6.12",
                                        "6.12.1",       "6.12.9",    "6.12.10",  "6.12.112-rc1",
                                        "6.12.112-rc2", "6.12.112",  "6.13-rc1", "6.13",
                                        "7.0"};
    for (size_t i = 0; i + 1 < sizeof(order) / sizeof(order[0]); i++) {
        kt_kver_t a, b;
        assert_int_equal(kt_kver_parse(order[i], &a), 0);
        assert_int_equal(kt_kver_parse(order[i + 1], &b), 0);
        if (kt_kver_cmp(&a, &b) >= 0 || kt_kver_cmp(&b, &a) <= 0)
            fail_msg("%s should sort before %s", order[i], order[i + 1]);
    }
    kt_kver_t a, b;
    assert_int_equal(kt_kver_parse("6.12", &a), 0);
    assert_int_equal(kt_kver_parse("v6.12.0", &b), 0);
    assert_int_equal(kt_kver_cmp(&a, &b), 0);
    /* A kernelrelease's leading version. */
    assert_int_equal(kt_kver_parse_prefix("6.12.117-ktstr+", &a), 0);
    assert_int_equal(a.patch, 117);
    assert_int_equal(kt_kver_parse_prefix("6.13.0-rc2", &a), 0);
    assert_int_equal(a.rc, 2);
    assert_int_equal(kt_kver_parse_prefix("6.12.57+deb13-cloud-amd64", &a), 0);
    assert_int_equal(a.patch, 57);
    assert_int_equal(kt_kver_parse_prefix("6.12x", &a), -EINVAL);
    assert_int_equal(kt_kver_parse_prefix("linux", &a), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepted),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_overlong),
        cmocka_unit_test(test_version_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
