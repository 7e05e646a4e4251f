/* Test helpers for the coordinator's kernel tests (and bench/commitmap.c):
 * temporary folders, stand-in bzImages (an x86 boot header and a version
 * string, nothing that boots) and git repositories made with libgit2, so
 * the tests need no git binary or git configuration. Header-only: every
 * function is static. Failures abort the test program (tests only). */
#pragma once

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <git2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

__attribute__((format(printf, 1, 2), noreturn)) static inline void kt_test_die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "test helper: ");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    abort();
}

static inline void kt_test_git_check(int r, const char *what)
{
    if (r < 0) {
        const git_error *e = git_error_last();
        kt_test_die("%s: %s", what, e && e->message ? e->message : "libgit2 error");
    }
}

/* A new empty folder under $TMPDIR (or /tmp); caller frees the string. */
static inline char *kt_test_tmpdir(const char *tag)
{
    const char *base = getenv("TMPDIR");
    char *path = NULL;
    if (asprintf(&path, "%s/kt-%s-XXXXXX", base && *base ? base : "/tmp", tag) < 0)
        kt_test_die("asprintf");
    if (!mkdtemp(path))
        kt_test_die("mkdtemp '%s': %s", path, strerror(errno));
    return path;
}

static inline int kt_test_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static inline void kt_test_rm_rf(const char *path)
{
    if (path)
        nftw(path, kt_test_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* mkdir -p of the folder part of path. */
static inline void kt_test_mkdirs_for(const char *path)
{
    char buf[4096];
    snprintf(buf, sizeof(buf), "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) < 0 && errno != EEXIST)
            kt_test_die("mkdir '%s': %s", buf, strerror(errno));
        *p = '/';
    }
}

static inline void kt_test_write(const char *path, const void *data, size_t len)
{
    kt_test_mkdirs_for(path);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || write(fd, data, len) != (ssize_t)len || close(fd) < 0)
        kt_test_die("write '%s': %s", path, strerror(errno));
}

__attribute__((format(printf, 2, 3))) static inline void kt_test_writef(const char *path,
                                                                        const char *fmt, ...)
{
    char *text = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&text, fmt, ap);
    va_end(ap);
    if (n < 0)
        kt_test_die("vasprintf");
    kt_test_write(path, text, (size_t)n);
    free(text);
}

/* A 4 KiB stand-in bzImage: "HdrS" at 0x202 and the release at the
 * kernel_version offset, which is all kt_kernel_image_version reads. salt
 * changes the content (and so the sha256) without changing the version. */
static inline void kt_test_fake_bzimage(const char *path, const char *version, unsigned salt)
{
    unsigned char b[4096];
    memset(b, 0, sizeof(b));
    memcpy(b + 0x202, "HdrS", 4);
    unsigned off = 0x200;
    b[0x20e] = off & 0xff;
    b[0x20f] = (unsigned char)(off >> 8);
    snprintf((char *)b + off + 0x200, 256, "%s (test@ktstr) #%u SMP", version, salt);
    memcpy(b + 4000, &salt, sizeof(salt));
    kt_test_write(path, b, sizeof(b));
}

/* git init at dir, with the library initialised. */
static inline git_repository *kt_test_git_init(const char *dir)
{
    git_libgit2_init();
    git_repository *repo = NULL;
    kt_test_git_check(git_repository_init(&repo, dir, 0), "git init");
    return repo;
}

/* Stages the named files (relative to the work tree) and commits them on
 * HEAD; returns the new commit's 40-digit id in ret_hex (41 bytes). */
static inline void kt_test_git_commit(git_repository *repo, const char *const *files,
                                      size_t n_files, const char *message, char *ret_hex)
{
    git_index *idx = NULL;
    kt_test_git_check(git_repository_index(&idx, repo), "index");
    for (size_t i = 0; i < n_files; i++)
        kt_test_git_check(git_index_add_bypath(idx, files[i]), files[i]);
    kt_test_git_check(git_index_write(idx), "index write");
    git_oid tree_id, commit_id;
    kt_test_git_check(git_index_write_tree(&tree_id, idx), "write tree");
    git_index_free(idx);
    git_tree *tree = NULL;
    kt_test_git_check(git_tree_lookup(&tree, repo, &tree_id), "tree lookup");
    git_signature *sig = NULL;
    kt_test_git_check(git_signature_new(&sig, "ktstr test", "test@ktstr.invalid", 1700000000, 0),
                      "signature");
    git_commit *parent = NULL;
    git_oid head_id;
    int n_parents = 0;
    if (git_reference_name_to_id(&head_id, repo, "HEAD") == 0) {
        kt_test_git_check(git_commit_lookup(&parent, repo, &head_id), "parent");
        n_parents = 1;
    }
    const git_commit *parents[1] = {parent};
    kt_test_git_check(git_commit_create(&commit_id, repo, "HEAD", sig, sig, NULL, message, tree,
                                        (size_t)n_parents, parents),
                      "commit");
    git_commit_free(parent);
    git_signature_free(sig);
    git_tree_free(tree);
    if (ret_hex)
        git_oid_tostr(ret_hex, 41, &commit_id);
}

/* Points HEAD at a commit directly (a detached HEAD). */
static inline void kt_test_git_detach(git_repository *repo, const char *hex)
{
    git_oid id;
    kt_test_git_check(git_oid_fromstr(&id, hex), "oid");
    kt_test_git_check(git_repository_set_head_detached(repo, &id), "detach");
}
