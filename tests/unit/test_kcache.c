/* The kernel cache: key shapes, atomic install (staging renamed into place,
 * metadata with every file's sha256, an intact entry wins over a second
 * install), the per-key lock (an install waits for it), a dirty tree
 * refused, corrupt entries detected (a truncated file, broken metadata, a
 * missing bzImage) and replaced on the next install, the stale mark,
 * clean (--keep N, --corrupt, everything), the sweep of staging folders
 * left by dead builds, and a forced rebuild's replace. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "kt_kcache.h"
#include "kt_test_git.h"

#define S_KC "0123abcd0123abcd0123abcd0123abcd0123abcd0123abcd0123abcd0123abcd"
#define S_KC2 "ffffffff0123abcd0123abcd0123abcd0123abcd0123abcd0123abcd0123abcd"

static char *s_tmp;
static char s_root[1024];

static int s_setup(void **state)
{
    (void)state;
    s_tmp = kt_test_tmpdir("kcache");
    snprintf(s_root, sizeof(s_root), "%s/cache/kernels", s_tmp);
    setenv("KTSTR_CACHE_DIR", "", 1);
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s/cache", s_tmp);
    setenv("KTSTR_CACHE_DIR", dir, 1);
    char got[4096], err[512];
    assert_int_equal(kt_kcache_root(got, sizeof(got), err, sizeof(err)), 0);
    assert_string_equal(got, s_root);
    return 0;
}

static int s_teardown(void **state)
{
    (void)state;
    kt_test_rm_rf(s_tmp);
    free(s_tmp);
    s_tmp = NULL;
    return 0;
}

/* A staging folder with what a build leaves (bzImage, vmlinux, config,
 * bin/scx_simple); salt makes the content differ. */
static void s_stage(char *dir, size_t len, unsigned salt)
{
    char err[512];
    int lock = -1;
    assert_int_equal(kt_kcache_staging(s_root, dir, len, &lock, err, sizeof(err)), 0);
    /* Dropped at once: these tests install or abandon it in this process. */
    close(lock);
    char p[4096];
    snprintf(p, sizeof(p), "%s/bzImage", dir);
    kt_test_fake_bzimage(p, "6.12.117", salt);
    snprintf(p, sizeof(p), "%s/vmlinux", dir);
    kt_test_writef(p, "ELF stand-in %u\n", salt);
    snprintf(p, sizeof(p), "%s/config", dir);
    kt_test_writef(p, "CONFIG_SCHED_CLASS_EXT=y\n# %u\n", salt);
    snprintf(p, sizeof(p), "%s/bin/scx_simple", dir);
    kt_test_writef(p, "#!/bin/true %u\n", salt);
}

static void s_meta(kt_kcache_meta_t *m, const char *commit, const char *kc)
{
    memset(m, 0, sizeof(*m));
    snprintf(m->version, sizeof(m->version), "6.12.117");
    m->source = KT_KCACHE_GIT;
    snprintf(m->source_loc, sizeof(m->source_loc), "file:///srv/linux");
    snprintf(m->ref, sizeof(m->ref), "v6.12.117");
    snprintf(m->commit, sizeof(m->commit), "%s", commit);
    snprintf(m->kconfig_hash, sizeof(m->kconfig_hash), "%s", kc);
    m->n_sched_progs = 1;
    snprintf(m->sched_progs[0], sizeof(m->sched_progs[0]), "scx_simple");
    assert_int_equal(kt_kcache_key(KT_KCACHE_GIT, m->ref, commit, kc, m->key, sizeof(m->key)), 0);
}

__attribute__((format(printf, 1, 2))) static bool s_exists(const char *fmt, ...)
{
    char p[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p, sizeof(p), fmt, ap);
    va_end(ap);
    struct stat st;
    return stat(p, &st) == 0;
}

static void test_keys(void **state)
{
    (void)state;
    char k[KT_KSPEC_KEY_MAX];
    assert_int_equal(kt_kcache_key(KT_KCACHE_TARBALL, "6.12.117", NULL, S_KC, k, sizeof(k)), 0);
    assert_string_equal(k, "6.12.117-tarball-x86_64-kc0123abcd");
    assert_int_equal(kt_kcache_key(KT_KCACHE_GIT, "refs/heads/for-6.13", "3f2a9c1", S_KC, k,
                                   sizeof(k)),
                     0);
    assert_string_equal(k, "refs_heads_for-6.13-git-3f2a9c1-x86_64-kc0123abcd");
    assert_int_equal(kt_kcache_key(KT_KCACHE_LOCAL, NULL, "3f2a9c1", S_KC, k, sizeof(k)), 0);
    assert_string_equal(k, "local-3f2a9c1-x86_64-kc0123abcd");
    assert_int_equal(kt_kcache_key(KT_KCACHE_DEB, "6.12.57+deb13-cloud-amd64", NULL, NULL, k,
                                   sizeof(k)),
                     0);
    assert_string_equal(k, "6.12.57+deb13-cloud-amd64-deb-x86_64");
    /* Every key made parses back as a key. */
    assert_true(kt_kspec_key_valid(k));
    /* A dirty tree has no key; nor a commit that is not 7 hex, nor no kconfig hash. */
    assert_int_equal(kt_kcache_key(KT_KCACHE_LOCAL, NULL, "3f2a9c1-dirty", S_KC, k, sizeof(k)),
                     -EINVAL);
    assert_int_equal(kt_kcache_key(KT_KCACHE_GIT, "main", "3f2a9cZ", S_KC, k, sizeof(k)), -EINVAL);
    assert_int_equal(kt_kcache_key(KT_KCACHE_TARBALL, "6.12", NULL, "", k, sizeof(k)), -EINVAL);
}

static void test_install_and_lookup(void **state)
{
    (void)state;
    char staging[1100], err[512] = "";
    kt_kcache_meta_t m;
    s_meta(&m, "3f2a9c1", S_KC);
    s_stage(staging, sizeof(staging), 1);
    kt_kcache_entry_t *e = calloc(1, sizeof(*e));
    assert_non_null(e);
    int r = kt_kcache_install(s_root, staging, &m, e, err, sizeof(err));
    if (r != 0)
        fail_msg("install: %s", err);
    assert_false(s_exists("%s", staging)); /* renamed into place */
    assert_false(e->corrupt);
    assert_string_equal(e->meta.key, "v6.12.117-git-3f2a9c1-x86_64-kc0123abcd");
    assert_true(s_exists("%s/metadata.json", e->dir));

    memset(e, 0, sizeof(*e));
    assert_int_equal(kt_kcache_lookup(s_root, m.key, S_KC, e, err, sizeof(err)), 0);
    assert_false(e->corrupt);
    assert_false(e->stale);
    assert_string_equal(e->meta.version, "6.12.117");
    assert_string_equal(e->meta.commit, "3f2a9c1");
    assert_string_equal(e->meta.ref, "v6.12.117");
    assert_string_equal(e->meta.source_loc, "file:///srv/linux");
    assert_int_equal(e->meta.source, KT_KCACHE_GIT);
    assert_string_equal(e->meta.kconfig_hash, S_KC);
    assert_int_equal(e->meta.n_sched_progs, 1);
    assert_string_equal(e->meta.sched_progs[0], "scx_simple");
    assert_int_equal(strlen(e->meta.built_at), 20);
    assert_int_equal(e->size, 4096 + strlen("ELF stand-in 1\n") +
                                  strlen("CONFIG_SCHED_CLASS_EXT=y\n# 1\n") +
                                  strlen("#!/bin/true 1\n"));
    char want[4096];
    snprintf(want, sizeof(want), "%s/%s/bzImage", s_root, m.key);
    assert_string_equal(e->bzimage, want);

    /* A second install of the same key: the intact entry stands. */
    s_stage(staging, sizeof(staging), 2);
    assert_int_equal(kt_kcache_install(s_root, staging, &m, NULL, err, sizeof(err)), 1);
    assert_false(s_exists("%s", staging));
    memset(e, 0, sizeof(*e));
    assert_int_equal(kt_kcache_lookup(s_root, m.key, NULL, e, err, sizeof(err)), 0);
    assert_false(e->corrupt);
    assert_int_equal(e->size, 4096 + strlen("ELF stand-in 1\n") +
                                  strlen("CONFIG_SCHED_CLASS_EXT=y\n# 1\n") +
                                  strlen("#!/bin/true 1\n"));

    /* The stale mark: another kconfig fragment than the entry's. */
    assert_int_equal(kt_kcache_lookup(s_root, m.key, S_KC2, e, err, sizeof(err)), 0);
    assert_true(e->stale);

    /* Absent keys and non-keys. */
    assert_int_equal(kt_kcache_lookup(s_root, "local-1234567-x86_64-kc00000000", NULL, e, err,
                                      sizeof(err)),
                     -ENOENT);
    assert_non_null(strstr(err, "is not in the cache"));
    assert_int_equal(kt_kcache_lookup(s_root, "../etc", NULL, e, err, sizeof(err)), -EINVAL);
    free(e);
}

static void test_dirty_refused(void **state)
{
    (void)state;
    char staging[1100], err[512] = "";
    kt_kcache_meta_t m;
    s_meta(&m, "3f2a9c1", S_KC);
    snprintf(m.commit, sizeof(m.commit), "3f2a9c1-dirty");
    s_stage(staging, sizeof(staging), 3);
    assert_int_equal(kt_kcache_install(s_root, staging, &m, NULL, err, sizeof(err)), -EPERM);
    assert_non_null(strstr(err, "dirty tree, which is never cached"));
    assert_true(s_exists("%s/bzImage", staging)); /* left for the caller's run */
    kt_test_rm_rf(staging);
    /* Nor a staging folder without a bzImage. */
    s_meta(&m, "1111111", S_KC);
    s_stage(staging, sizeof(staging), 3);
    char p[4096];
    snprintf(p, sizeof(p), "%s/bzImage", staging);
    unlink(p);
    assert_int_equal(kt_kcache_install(s_root, staging, &m, NULL, err, sizeof(err)), -ENOENT);
    kt_test_rm_rf(staging);
}

/* Installs a fresh entry for commit and breaks it with how. */
static void s_broken(const char *commit, const char *how, const char *why)
{
    char staging[1100], err[512] = "", p[4096];
    kt_kcache_meta_t m;
    s_meta(&m, commit, S_KC);
    s_stage(staging, sizeof(staging), 4);
    assert_int_equal(kt_kcache_install(s_root, staging, &m, NULL, err, sizeof(err)), 0);
    if (!strcmp(how, "truncate")) {
        snprintf(p, sizeof(p), "%s/%s/vmlinux", s_root, m.key);
        assert_int_equal(truncate(p, 3), 0);
    } else if (!strcmp(how, "metadata")) {
        snprintf(p, sizeof(p), "%s/%s/metadata.json", s_root, m.key);
        kt_test_writef(p, "{\"key\": \"%s\", \"version\": ", m.key);
    } else if (!strcmp(how, "bzImage")) {
        snprintf(p, sizeof(p), "%s/%s/bzImage", s_root, m.key);
        assert_int_equal(unlink(p), 0);
    } else if (!strcmp(how, "bin")) {
        snprintf(p, sizeof(p), "%s/%s/bin/scx_simple", s_root, m.key);
        kt_test_writef(p, "#!/bin/false\n");
    }
    kt_kcache_entry_t *e = calloc(1, sizeof(*e));
    assert_int_equal(kt_kcache_lookup(s_root, m.key, NULL, e, err, sizeof(err)), 0);
    if (!e->corrupt || !strstr(e->why, why))
        fail_msg("%s: corrupt=%d why='%s', expected '%s'", how, e->corrupt, e->why, why);
    /* The next install replaces the corrupt entry. */
    s_stage(staging, sizeof(staging), 5);
    assert_int_equal(kt_kcache_install(s_root, staging, &m, NULL, err, sizeof(err)), 0);
    memset(e, 0, sizeof(*e));
    assert_int_equal(kt_kcache_lookup(s_root, m.key, NULL, e, err, sizeof(err)), 0);
    assert_false(e->corrupt);
    /* And break it again for the listing test. */
    if (!strcmp(how, "truncate")) {
        snprintf(p, sizeof(p), "%s/%s/vmlinux", s_root, m.key);
        assert_int_equal(truncate(p, 3), 0);
    }
    free(e);
}

static void test_corrupt(void **state)
{
    (void)state;
    s_broken("2222222", "truncate", "vmlinux: sha256 differs");
    s_broken("3333333", "metadata", "metadata.json:");
    s_broken("4444444", "bzImage", "bzImage: missing");
    s_broken("5555555", "bin", "bin/scx_simple: sha256 differs");
    /* A listing marks the broken entry corrupt, and shows the rest. */
    kt_kcache_entry_t *v = NULL;
    unsigned n = 0;
    char err[512];
    assert_int_equal(kt_kcache_list(s_root, S_KC, &v, &n, err, sizeof(err)), 0);
    unsigned corrupt = 0;
    for (unsigned i = 0; i < n; i++)
        if (v[i].corrupt) {
            corrupt++;
            assert_non_null(strstr(v[i].meta.key, "2222222"));
        }
    assert_int_equal(corrupt, 1);
    /* corrupt entries sort last */
    assert_true(v[n - 1].corrupt);
    free(v);
}

static void test_lock(void **state)
{
    (void)state;
    char staging[1100], err[512] = "", p[4096];
    kt_kcache_meta_t m;
    s_meta(&m, "6666666", S_KC);
    s_stage(staging, sizeof(staging), 6);
    snprintf(p, sizeof(p), "%s/.lock-%s", s_root, m.key);
    int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(flock(fd, LOCK_EX), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int r = kt_kcache_install(s_root, staging, &m, NULL, err, sizeof(err));
        _exit(r == 0 ? 0 : 1);
    }
    /* While we hold the lock, the install waits and nothing appears. */
    struct timespec ts = {0, 300 * 1000 * 1000};
    nanosleep(&ts, NULL);
    int status;
    assert_int_equal(waitpid(pid, &status, WNOHANG), 0);
    snprintf(p, sizeof(p), "%s/%s", s_root, m.key);
    struct stat st;
    assert_int_equal(stat(p, &st), -1);
    assert_int_equal(flock(fd, LOCK_UN), 0);
    close(fd);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(stat(p, &st), 0);
}

static void test_clean(void **state)
{
    (void)state;
    kt_test_rm_rf(s_root);
    char err[512], staging[1100];
    assert_int_equal(mkdir(s_root, 0755), 0);
    /* Three intact entries built a day apart, and a corrupt one. */
    static const char *const commits[] = {"aaaaaaa", "bbbbbbb", "ccccccc"};
    for (unsigned i = 0; i < 3; i++) {
        kt_kcache_meta_t m;
        s_meta(&m, commits[i], S_KC);
        snprintf(m.built_at, sizeof(m.built_at), "2025-01-0%uT00:00:00Z", i + 1);
        s_stage(staging, sizeof(staging), 10 + i);
        assert_int_equal(kt_kcache_install(s_root, staging, &m, NULL, err, sizeof(err)), 0);
    }
    s_broken("ddddddd", "truncate", "sha256 differs");
    /* A staging folder left by a crash is not an entry. */
    s_stage(staging, sizeof(staging), 20);

    kt_kcache_entry_t *v = NULL;
    unsigned n = 0;
    assert_int_equal(kt_kcache_list(s_root, NULL, &v, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 4);
    /* ddddddd was installed now: newest; then ccccccc, bbbbbbb... but it is
     * corrupt, so it sorts last. */
    assert_non_null(strstr(v[0].meta.key, "ccccccc"));
    assert_non_null(strstr(v[3].meta.key, "ddddddd"));
    free(v);

    /* --keep 1: the newest intact entry stays; the corrupt one too. */
    assert_int_equal(kt_kcache_clean(s_root, 1, false, err, sizeof(err)), 2);
    assert_int_equal(kt_kcache_list(s_root, NULL, &v, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 2);
    assert_non_null(strstr(v[0].meta.key, "ccccccc"));
    assert_true(v[1].corrupt);
    free(v);
    /* --corrupt: only the corrupt one goes. */
    assert_int_equal(kt_kcache_clean(s_root, -1, true, err, sizeof(err)), 1);
    assert_int_equal(kt_kcache_list(s_root, NULL, &v, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 1);
    assert_false(v[0].corrupt);
    free(v);
    /* Neither: everything. */
    assert_int_equal(kt_kcache_clean(s_root, -1, false, err, sizeof(err)), 1);
    assert_int_equal(kt_kcache_list(s_root, NULL, &v, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 0);
    free(v);
    assert_true(s_exists("%s/bzImage", staging)); /* clean leaves staging alone */
    assert_int_equal(kt_kcache_remove(s_root, "local-1234567-x86_64-kc00000000", err,
                                      sizeof(err)),
                     -ENOENT);
}

/* Staging folders left over: one a live build holds (this process, its
 * lock open) survives the sweep; one whose maker died (a child that exits
 * without cleaning up, as a crash would) is removed; entries and lock
 * files are never touched. */
static void test_sweep(void **state)
{
    (void)state;
    kt_test_rm_rf(s_root);
    assert_int_equal(mkdir(s_root, 0755), 0);
    char err[512] = "", held[1100], dead[1100], staging[1100];
    kt_kcache_meta_t m;
    s_meta(&m, "3f2a9c1", S_KC);
    s_stage(staging, sizeof(staging), 1);
    assert_int_equal(kt_kcache_install(s_root, staging, &m, NULL, err, sizeof(err)), 0);

    int lock = -1;
    assert_int_equal(kt_kcache_staging(s_root, held, sizeof(held), &lock, err, sizeof(err)), 0);
    assert_true(lock >= 0);
    kt_test_writef(strcat(strcpy(staging, held), "/build.log"), "building\n");

    int pipefd[2];
    assert_int_equal(pipe(pipefd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int l;
        char d[1100], p[1200];
        if (kt_kcache_staging(s_root, d, sizeof(d), &l, err, sizeof(err)) < 0)
            _exit(1);
        snprintf(p, sizeof(p), "%s/bzImage", d);
        FILE *f = fopen(p, "w");
        if (f)
            fclose(f);
        if (write(pipefd[1], d, strlen(d) + 1) < 0)
            _exit(1);
        _exit(0); /* the lock goes with the process */
    }
    close(pipefd[1]);
    ssize_t got = read(pipefd[0], dead, sizeof(dead) - 1);
    close(pipefd[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_true(got > 0);
    dead[got] = '\0';
    assert_true(s_exists("%s/bzImage", dead));

    /* Counting removes nothing. */
    assert_int_equal(kt_kcache_sweep(s_root, false, err, sizeof(err)), 1);
    assert_true(s_exists("%s", dead));
    /* The dead build's folder goes, the held one stays with its files. */
    int r = kt_kcache_sweep(s_root, true, err, sizeof(err));
    if (r != 1)
        fail_msg("sweep: %d %s", r, err);
    assert_false(s_exists("%s", dead));
    assert_true(s_exists("%s/build.log", held));
    assert_true(s_exists("%s/.lock-%s", s_root, m.key));
    kt_kcache_entry_t *e = calloc(1, sizeof(*e));
    assert_non_null(e);
    assert_int_equal(kt_kcache_lookup(s_root, m.key, NULL, e, err, sizeof(err)), 0);
    assert_false(e->corrupt);
    free(e);
    assert_int_equal(kt_kcache_sweep(s_root, false, err, sizeof(err)), 0);
    /* Released: now it is a leftover too. */
    close(lock);
    assert_int_equal(kt_kcache_sweep(s_root, true, err, sizeof(err)), 1);
    assert_false(s_exists("%s", held));
    assert_int_equal(kt_kcache_sweep(s_root, true, err, sizeof(err)), 0);
}

/* The config's salt line of an entry ("# N"), to tell builds apart. */
static unsigned s_entry_salt(const char *key)
{
    char p[4096], line[128];
    unsigned salt = 0;
    snprintf(p, sizeof(p), "%s/%s/config", s_root, key);
    FILE *f = fopen(p, "r");
    assert_non_null(f);
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "# %u", &salt) == 1)
            break;
    fclose(f);
    return salt;
}

/* A forced rebuild's install: the new entry takes the old one's place
 * (intact or corrupt, or none); staging that cannot be installed leaves the
 * old entry as it was; nothing is left over. */
static void test_replace(void **state)
{
    (void)state;
    kt_test_rm_rf(s_root);
    assert_int_equal(mkdir(s_root, 0755), 0);
    char err[512] = "", staging[1100], p[4096];
    kt_kcache_meta_t m;
    s_meta(&m, "4444444", S_KC);
    s_stage(staging, sizeof(staging), 1);
    assert_int_equal(kt_kcache_replace(s_root, staging, &m, NULL, err, sizeof(err)), 0);
    assert_int_equal(s_entry_salt(m.key), 1);

    kt_kcache_entry_t *e = calloc(1, sizeof(*e));
    assert_non_null(e);
    s_stage(staging, sizeof(staging), 2);
    int r = kt_kcache_replace(s_root, staging, &m, e, err, sizeof(err));
    if (r != 0)
        fail_msg("replace: %d %s", r, err);
    assert_false(e->corrupt);
    assert_int_equal(s_entry_salt(m.key), 2);
    assert_false(s_exists("%s", staging));
    assert_int_equal(kt_kcache_sweep(s_root, false, err, sizeof(err)), 0);

    /* A staging folder without a bzImage (a build that made none): refused,
     * the entry there stays intact. */
    s_stage(staging, sizeof(staging), 3);
    snprintf(p, sizeof(p), "%s/bzImage", staging);
    assert_int_equal(unlink(p), 0);
    assert_int_equal(kt_kcache_replace(s_root, staging, &m, NULL, err, sizeof(err)), -ENOENT);
    memset(e, 0, sizeof(*e));
    assert_int_equal(kt_kcache_lookup(s_root, m.key, NULL, e, err, sizeof(err)), 0);
    assert_false(e->corrupt);
    assert_int_equal(s_entry_salt(m.key), 2);
    kt_kcache_rm_rf(staging);

    /* Over a corrupt entry. */
    snprintf(p, sizeof(p), "%s/%s/vmlinux", s_root, m.key);
    assert_int_equal(truncate(p, 3), 0);
    s_stage(staging, sizeof(staging), 4);
    assert_int_equal(kt_kcache_replace(s_root, staging, &m, NULL, err, sizeof(err)), 0);
    memset(e, 0, sizeof(*e));
    assert_int_equal(kt_kcache_lookup(s_root, m.key, NULL, e, err, sizeof(err)), 0);
    assert_false(e->corrupt);
    assert_int_equal(s_entry_salt(m.key), 4);
    assert_int_equal(kt_kcache_sweep(s_root, false, err, sizeof(err)), 0);
    free(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys),    cmocka_unit_test(test_install_and_lookup),
        cmocka_unit_test(test_dirty_refused), cmocka_unit_test(test_corrupt),
        cmocka_unit_test(test_lock),    cmocka_unit_test(test_clean),
        cmocka_unit_test(test_sweep),   cmocka_unit_test(test_replace),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
