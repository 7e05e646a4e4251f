/* Kernel resolution: a path names a bzImage, a build dir
 * (arch/x86/boot/bzImage in it), or a source dir with an in-tree or build/
 * build. The label defaults to the image's release; the content hash names
 * the artifact; and the commit map: inside a git work tree that is a kernel
 * source tree (a Kconfig and a Makefile at its top) the commit is HEAD's
 * 7-digit short id, with "-dirty" when tracked files differ from HEAD
 * (in the index or the work tree). Untracked files do not count, as for
 * `git describe --dirty` and the kernel's own setlocalversion: a build
 * leaves untracked outputs everywhere. For an O= build dir the tree is the
 * one its `source` link names. A bzImage inside any other repository gets
 * no commit. One libgit2 resolution per call: callers
 * resolve each kernel once per run (the commit map), never per cell. */
#include "kt_kernel_resolve.h"
#include "kt_log.h"

#include <errno.h>
#include <git2.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kt_cleanup.h"
#include "kt_hash.h"
#include "kt_kernel.h"

#define S_SHORT_ID_LEN 7

static pthread_once_t s_git_once = PTHREAD_ONCE_INIT;

/* libgit2 keeps global state (allocators, TLS for errors); initialise it
 * once per process and never shut it down: other threads may use it. */
static void s_git_init(void)
{
    git_libgit2_init();
}

#define s_fail kt_err

/* A libgit2 error code as -errno, with git_error_last()'s text in err. */
static int s_git_fail(char *err, size_t err_len, int code, const char *path, const char *what)
{
    const git_error *e = git_error_last();
    int r = code == GIT_ENOTFOUND       ? -ENOENT
            : code == GIT_EUNBORNBRANCH ? -ENOENT
            : code == GIT_EEXISTS       ? -EEXIST
            : code == GIT_EAMBIGUOUS    ? -EINVAL
            : code == GIT_EBUFS         ? -ENOBUFS
            : code == GIT_ELOCKED       ? -EAGAIN
            : code == GIT_EOWNER        ? -EPERM
            : code == GIT_EINVALID      ? -EINVAL
                                        : -EIO;
    return s_fail(err, err_len, r, "'%s': %s: %s", path, what,
                  e && e->message ? e->message : "libgit2 error");
}

static void s_repo_freep(git_repository **r)
{
    git_repository_free(*r);
}

static void s_ref_freep(git_reference **r)
{
    git_reference_free(*r);
}

static void s_status_freep(git_status_list **s)
{
    git_status_list_free(*s);
}

static bool s_is_file(const char *path);

/* A kernel source tree has a Kconfig and a Makefile at its top. A bzImage
 * copied into some other repository (this project's test fixtures, a
 * dotfiles tree) must not be labelled with that repository's commit. */
static bool s_kernel_tree(const char *workdir)
{
    char p[PATH_MAX];
    if (!workdir)
        return false;
    int w = snprintf(p, sizeof(p), "%s/Kconfig", workdir);
    if (w < 0 || (size_t)w >= sizeof(p) || !s_is_file(p))
        return false;
    w = snprintf(p, sizeof(p), "%s/Makefile", workdir);
    return w > 0 && (size_t)w < sizeof(p) && s_is_file(p);
}

/* The commit of the work tree holding path (only a kernel source tree's
 * when kernel_tree_only); *ret_opened says whether a repository was found
 * and read (a libgit2 resolution was made). */
static int s_commit_of(const char *path, bool kernel_tree_only, char *buf, size_t len,
                       bool *ret_opened, char *err, size_t err_len)
{
    pthread_once(&s_git_once, s_git_init);
    *ret_opened = false;
    struct stat st;
    if (stat(path, &st) < 0)
        return s_fail(err, err_len, -errno, "'%s': %s", path, strerror(errno));
    char start[PATH_MAX];
    if (S_ISDIR(st.st_mode)) {
        snprintf(start, sizeof(start), "%s", path);
    } else {
        const char *slash = strrchr(path, '/');
        if (!slash)
            snprintf(start, sizeof(start), ".");
        else if (slash == path)
            snprintf(start, sizeof(start), "/");
        else
            snprintf(start, sizeof(start), "%.*s", (int)(slash - path), path);
    }
    _cleanup_(s_repo_freep) git_repository *repo = NULL;
    int g = git_repository_open_ext(&repo, start, GIT_REPOSITORY_OPEN_CROSS_FS, NULL);
    if (g == GIT_ENOTFOUND)
        return s_fail(err, err_len, -ENOENT, "'%s' is not in a git work tree", path);
    if (g < 0)
        return s_git_fail(err, err_len, g, path, "cannot open its git repository");
    *ret_opened = true;
    if (git_repository_is_bare(repo))
        return s_fail(err, err_len, -ENOENT, "'%s' is inside a bare repository, not a work tree",
                      path);
    const char *workdir = git_repository_workdir(repo);
    if (kernel_tree_only && !s_kernel_tree(workdir))
        return s_fail(err, err_len, -ENOENT,
                      "'%s' is in the git work tree '%s', which is not a kernel source tree", path,
                      workdir ? workdir : "?");
    _cleanup_(s_ref_freep) git_reference *head = NULL;
    g = git_repository_head(&head, repo);
    if (g == GIT_EUNBORNBRANCH || g == GIT_ENOTFOUND)
        return s_fail(err, err_len, -ENOENT, "'%s': the git work tree has no commit yet", path);
    if (g < 0)
        return s_git_fail(err, err_len, g, path, "cannot read HEAD");
    const git_oid *oid = git_reference_target(head);
    if (!oid)
        return s_fail(err, err_len, -EIO, "'%s': HEAD is not a direct reference", path);
    char hex[GIT_OID_HEXSZ + 1];
    git_oid_tostr(hex, sizeof(hex), oid);

    git_status_options opts = GIT_STATUS_OPTIONS_INIT;
    opts.show = GIT_STATUS_SHOW_INDEX_AND_WORKDIR;
    opts.flags = GIT_STATUS_OPT_EXCLUDE_SUBMODULES;
    _cleanup_(s_status_freep) git_status_list *status = NULL;
    g = git_status_list_new(&status, repo, &opts);
    if (g < 0)
        return s_git_fail(err, err_len, g, path, "cannot read the work tree's status");
    bool dirty = false;
    size_t n = git_status_list_entrycount(status);
    for (size_t i = 0; i < n && !dirty; i++) {
        const git_status_entry *e = git_status_byindex(status, i);
        dirty = e && (e->status & ~(unsigned)(GIT_STATUS_WT_NEW | GIT_STATUS_IGNORED)) != 0;
    }
    int w = snprintf(buf, len, "%.*s%s", S_SHORT_ID_LEN, hex, dirty ? "-dirty" : "");
    if (w < 0 || (size_t)w >= len)
        return s_fail(err, err_len, -ENOBUFS, "'%s': commit buffer too small", path);
    return 0;
}

int kt_git_commit_of(const char *path, char *buf, size_t len, char *err, size_t err_len)
{
    bool opened;
    if (!path || !buf || !len)
        return -EINVAL;
    return s_commit_of(path, false, buf, len, &opened, err, err_len);
}

static bool s_is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static bool s_label_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-' || c == '+';
}

/* Labels name result folders and cells: keep them to file-name-safe bytes. */
static bool s_label_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= 64 || !strcmp(s, ".") || !strcmp(s, ".."))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!s_label_char(s[i]))
            return false;
    return true;
}

int kt_kernel_resolve(const char *path, const char *label, kt_coord_kernel_t *ret,
                      unsigned *lookups, char *err, size_t err_len)
{
    if (!path || !*path || !ret)
        return s_fail(err, err_len, -EINVAL, "kernel: empty path");
    if (label && *label && !s_label_valid(label))
        return s_fail(err, err_len, -EINVAL,
                      "'%s': label '%s' is not valid (1 to 63 of A-Z a-z 0-9 _ . - +)", path,
                      label);
    struct stat st;
    if (stat(path, &st) < 0) {
        int e = errno;
        return s_fail(err, err_len, -e, "kernel '%s': %s", path, strerror(e));
    }
    /* tree: where the commit is read from. */
    char image[PATH_MAX], tree[PATH_MAX];
    if (S_ISREG(st.st_mode)) {
        snprintf(image, sizeof(image), "%s", path);
        snprintf(tree, sizeof(tree), "%s", path);
    } else if (S_ISDIR(st.st_mode)) {
        static const char *const cands[] = {"arch/x86/boot/bzImage", "bzImage",
                                            "build/arch/x86/boot/bzImage"};
        size_t i = 0;
        for (; i < KT_ARRAY_SIZE(cands); i++) {
            int w = snprintf(image, sizeof(image), "%s/%s", path, cands[i]);
            if (w > 0 && (size_t)w < sizeof(image) && s_is_file(image))
                break;
        }
        if (i == KT_ARRAY_SIZE(cands))
            return s_fail(err, err_len, -ENOENT,
                          "kernel '%s': a directory without a kernel image (looked for "
                          "arch/x86/boot/bzImage, bzImage and build/arch/x86/boot/bzImage)",
                          path);
        /* An O= build dir links to its source tree. */
        char src[PATH_MAX];
        int w = snprintf(src, sizeof(src), "%s/%s", path, i == 2 ? "build/source" : "source");
        struct stat lst;
        if (w > 0 && (size_t)w < sizeof(src) && lstat(src, &lst) == 0 && S_ISLNK(lst.st_mode) &&
            stat(src, &lst) == 0 && S_ISDIR(lst.st_mode))
            snprintf(tree, sizeof(tree), "%s", src);
        else
            snprintf(tree, sizeof(tree), "%s", path);
    } else {
        return s_fail(err, err_len, -EINVAL, "kernel '%s': not a file or directory", path);
    }
    char real[PATH_MAX];
    if (!realpath(image, real)) {
        int e = errno;
        return s_fail(err, err_len, -e, "kernel '%s': %s", image, strerror(e));
    }
    kt_coord_kernel_t k = {0};
    int r = kt_kernel_image_version(real, k.version, sizeof(k.version));
    if (r == -ENOEXEC)
        return s_fail(err, err_len, r,
                      "kernel '%s': not a bzImage (no x86 boot header or no version string)", real);
    if (r < 0)
        return s_fail(err, err_len, r, "kernel '%s': %s", real, strerror(-r));
    if (label && *label) {
        snprintf(k.label, sizeof(k.label), "%s", label);
    } else {
        /* The release, with anything a file name should not hold replaced. */
        snprintf(k.label, sizeof(k.label), "%s", k.version);
        for (char *p = k.label; *p; p++)
            if (!s_label_char(*p))
                *p = '_';
        if (!s_label_valid(k.label))
            snprintf(k.label, sizeof(k.label), "kernel");
    }
    snprintf(k.path, sizeof(k.path), "%s", real);
    if (stat(real, &st) < 0) {
        int e = errno;
        return s_fail(err, err_len, -e, "kernel '%s': %s", real, strerror(e));
    }
    k.size = (uint64_t)st.st_size;
    r = kt_hash_sha256_file(real, k.sha);
    if (r < 0)
        return s_fail(err, err_len, r, "kernel '%s': cannot hash it: %s", real, strerror(-r));
    bool opened = false;
    char why[512] = "";
    r = s_commit_of(tree, true, k.commit, sizeof(k.commit), &opened, why, sizeof(why));
    if (opened && lookups)
        (*lookups)++;
    if (r == -ENOENT)
        k.commit[0] = '\0';
    else if (r < 0)
        return s_fail(err, err_len, r, "kernel %s", why);
    *ret = k;
    return 0;
}
