/* The kernel cache (kt_kcache.h). An entry is trusted only as far as its
 * metadata.json vouches for it: every file it lists must be there with the
 * sha256 it records, and the metadata must name the folder's key. The
 * metadata is written last inside the staging folder and the folder is
 * renamed into place, so a crash leaves a .tmp-* folder, never a half
 * entry; the per-key flock makes check-then-install one step between two
 * coordinators building the same kernel. */
#include "kt_kcache.h"
#include "kt_log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kt_cleanup.h"
#include "kt_hash.h"

#define S_META "metadata.json"
#define S_META_MAX (1u << 20)
#define S_STAGING_PREFIX ".tmp-"
#define S_STAGING_LOCK ".staging.lock"

static const char *const s_source_names[] = {"tarball", "git", "local", "deb"};

#define s_fail kt_err

static void s_json_decrefp(json_t **j)
{
    json_decref(*j);
}

const char *kt_kcache_source_name(enum kt_kcache_source s)
{
    return (unsigned)s < KT_ARRAY_SIZE(s_source_names) ? s_source_names[s] : "?";
}

static int s_mkdir_p(const char *path)
{
    char p[PATH_MAX];
    if (snprintf(p, sizeof(p), "%s", path) >= (int)sizeof(p))
        return -ENAMETOOLONG;
    for (char *s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(p, 0755) < 0 && errno != EEXIST)
            return -errno;
        *s = '/';
    }
    if (mkdir(p, 0755) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

int kt_kcache_root(char *buf, size_t len, char *err, size_t err_len)
{
    const char *base = getenv("KTSTR_CACHE_DIR");
    int w;
    if (base && *base) {
        w = snprintf(buf, len, "%s/kernels", base);
    } else {
        const char *home = getenv("HOME");
        if (!home || !*home)
            return s_fail(err, err_len, -ENOENT,
                          "kernel cache: neither KTSTR_CACHE_DIR nor HOME is set");
        w = snprintf(buf, len, "%s/.cache/ktstr/kernels", home);
    }
    if (w < 0 || (size_t)w >= len)
        return s_fail(err, err_len, -ENAMETOOLONG, "kernel cache: path too long");
    int r = s_mkdir_p(buf);
    if (r < 0)
        return s_fail(err, err_len, r, "kernel cache '%s': cannot make it: %s", buf, strerror(-r));
    return 0;
}

static bool s_hex_n(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

int kt_kcache_key(enum kt_kcache_source s, const char *name, const char *commit,
                  const char *kconfig_hash, char *buf, size_t len)
{
    char clean[KT_KSPEC_KEY_MAX];
    if (s != KT_KCACHE_LOCAL) {
        if (!name || !*name)
            return -EINVAL;
        /* Leave room for the rest of the key. */
        snprintf(clean, sizeof(clean), "%.80s", name);
        for (char *p = clean; *p; p++)
            if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                  (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' || *p == '-' || *p == '+'))
                *p = '_';
    }
    if (s != KT_KCACHE_DEB &&
        (!kconfig_hash || strlen(kconfig_hash) < 8 || !s_hex_n(kconfig_hash, 8)))
        return -EINVAL;
    if ((s == KT_KCACHE_GIT || s == KT_KCACHE_LOCAL) &&
        (!commit || strlen(commit) != 7 || !s_hex_n(commit, 7)))
        return -EINVAL;
    int w;
    switch (s) {
    case KT_KCACHE_TARBALL:
        w = snprintf(buf, len, "%s-tarball-%s-kc%.8s", clean, KT_KCACHE_ARCH, kconfig_hash);
        break;
    case KT_KCACHE_GIT:
        w = snprintf(buf, len, "%s-git-%s-%s-kc%.8s", clean, commit, KT_KCACHE_ARCH,
                     kconfig_hash);
        break;
    case KT_KCACHE_LOCAL:
        w = snprintf(buf, len, "local-%s-%s-kc%.8s", commit, KT_KCACHE_ARCH, kconfig_hash);
        break;
    case KT_KCACHE_DEB: w = snprintf(buf, len, "%s-deb-%s", clean, KT_KCACHE_ARCH); break;
    default: return -EINVAL;
    }
    if (w < 0 || (size_t)w >= len)
        return -ENAMETOOLONG;
    return kt_kspec_key_valid(buf) ? 0 : -EINVAL;
}

/* The folder-wide staging lock: held shared while a staging folder is made
 * and locked, exclusive while the sweep looks, so the sweep never sees a
 * folder between its mkdtemp and its flock. */
static int s_staging_lock(const char *root, int how, int *ret_fd, char *err, size_t err_len)
{
    char p[PATH_MAX];
    if (snprintf(p, sizeof(p), "%s/" S_STAGING_LOCK, root) >= (int)sizeof(p))
        return s_fail(err, err_len, -ENAMETOOLONG, "kernel cache '%s': path too long", root);
    int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return s_fail(err, err_len, -errno, "kernel cache: cannot open '%s': %s", p,
                      strerror(errno));
    while (flock(fd, how) < 0) {
        if (errno == EINTR)
            continue;
        int e = errno;
        close(fd);
        return s_fail(err, err_len, -e, "kernel cache: cannot lock '%s': %s", p, strerror(e));
    }
    *ret_fd = fd;
    return 0;
}

/* An exclusive flock on the folder itself (it follows the folder through
 * renames); blocking unless nb. -EWOULDBLOCK when nb and someone holds it. */
static int s_lock_dir(const char *dir, bool nb, int *ret_fd)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    while (flock(fd, LOCK_EX | (nb ? LOCK_NB : 0)) < 0) {
        if (errno == EINTR)
            continue;
        int e = errno;
        close(fd);
        return e == EAGAIN ? -EWOULDBLOCK : -e;
    }
    *ret_fd = fd;
    return 0;
}

/* Keeps the sweep off dir while it moves to a .tmp- name: our lock, or
 * else someone else's (whoever installed it may not have closed its
 * staging lock yet; waiting for it could wait for ourselves). */
static int s_hold_dir(const char *dir, int *ret_fd)
{
    int r = s_lock_dir(dir, true, ret_fd);
    if (r == -EWOULDBLOCK) {
        *ret_fd = -1;
        return 0;
    }
    return r;
}

/* mkdtemp(tmpl) and its lock, under the shared staging lock. */
static int s_staging_make(const char *root, char *tmpl, int *ret_lock, char *err, size_t err_len)
{
    _cleanup_close_ int gl = -1;
    int r = s_staging_lock(root, LOCK_SH, &gl, err, err_len);
    if (r < 0)
        return r;
    if (!mkdtemp(tmpl))
        return s_fail(err, err_len, -errno, "kernel cache '%s': cannot make a staging folder: %s",
                      root, strerror(errno));
    r = s_lock_dir(tmpl, false, ret_lock);
    if (r < 0) {
        rmdir(tmpl);
        return s_fail(err, err_len, r, "kernel cache: cannot lock the staging folder '%s': %s",
                      tmpl, strerror(-r));
    }
    return 0;
}

int kt_kcache_staging(const char *root, char *buf, size_t len, int *ret_lock, char *err,
                      size_t err_len)
{
    int w = snprintf(buf, len, "%s/" S_STAGING_PREFIX "XXXXXX", root);
    if (w < 0 || (size_t)w >= len)
        return s_fail(err, err_len, -ENAMETOOLONG, "kernel cache '%s': path too long", root);
    return s_staging_make(root, buf, ret_lock, err, err_len);
}

static int s_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path) < 0 && errno != ENOENT ? -1 : 0;
}

int kt_kcache_rm_rf(const char *path)
{
    struct stat st;
    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : -errno;
    return nftw(path, s_rm_one, 16, FTW_DEPTH | FTW_PHYS) < 0 ? -errno : 0;
}

/* The key's lock, taken exclusively; the fd holds it. */
static int s_lock(const char *root, const char *key, int *ret_fd, char *err, size_t err_len)
{
    char p[PATH_MAX];
    if (snprintf(p, sizeof(p), "%s/.lock-%s", root, key) >= (int)sizeof(p))
        return s_fail(err, err_len, -ENAMETOOLONG, "kernel cache: path too long");
    int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return s_fail(err, err_len, -errno, "kernel cache: cannot open '%s': %s", p,
                      strerror(errno));
    while (flock(fd, LOCK_EX) < 0) {
        if (errno == EINTR)
            continue;
        int e = errno;
        close(fd);
        return s_fail(err, err_len, -e, "kernel cache: cannot lock '%s': %s", p, strerror(e));
    }
    *ret_fd = fd;
    return 0;
}

/* The files of dir (relative paths, recursively, metadata.json left out)
 * with their sha256 into files; *size adds up their bytes. */
static int s_hash_tree(const char *dir, const char *rel, json_t *files, uint64_t *size, char *err,
                       size_t err_len)
{
    char p[PATH_MAX];
    if (snprintf(p, sizeof(p), "%s%s%s", dir, *rel ? "/" : "", rel) >= (int)sizeof(p))
        return s_fail(err, err_len, -ENAMETOOLONG, "'%s': path too long", dir);
    DIR *d = opendir(p);
    if (!d)
        return s_fail(err, err_len, -errno, "'%s': %s", p, strerror(errno));
    int r = 0;
    struct dirent *de;
    while (r == 0 && (de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        if (!*rel && !strcmp(de->d_name, S_META))
            continue;
        char sub[PATH_MAX], full[PATH_MAX];
        if (snprintf(sub, sizeof(sub), "%s%s%s", rel, *rel ? "/" : "", de->d_name) >=
                (int)sizeof(sub) ||
            snprintf(full, sizeof(full), "%s/%s", dir, sub) >= (int)sizeof(full)) {
            r = s_fail(err, err_len, -ENAMETOOLONG, "'%s': path too long", dir);
            break;
        }
        struct stat st;
        if (lstat(full, &st) < 0) {
            r = s_fail(err, err_len, -errno, "'%s': %s", full, strerror(errno));
        } else if (S_ISDIR(st.st_mode)) {
            r = s_hash_tree(dir, sub, files, size, err, err_len);
        } else if (S_ISREG(st.st_mode)) {
            if (json_object_size(files) >= KT_KCACHE_MAX_FILES) {
                r = s_fail(err, err_len, -E2BIG, "'%s': more than %d files", dir,
                           KT_KCACHE_MAX_FILES);
                break;
            }
            char sha[KT_HASH_HEX_SIZE];
            r = kt_hash_sha256_file(full, sha);
            if (r < 0)
                r = s_fail(err, err_len, r, "'%s': cannot hash it: %s", full, strerror(-r));
            else if (json_object_set_new(files, sub, json_string(sha)) < 0)
                r = -ENOMEM;
            *size += (uint64_t)st.st_size;
        } else {
            r = s_fail(err, err_len, -EINVAL, "'%s': not a regular file or folder", full);
        }
    }
    closedir(d);
    return r;
}

static json_t *s_meta_json(const kt_kcache_meta_t *m, json_t *files)
{
    json_t *progs = json_array();
    for (unsigned i = 0; progs && i < m->n_sched_progs; i++)
        json_array_append_new(progs, json_string(m->sched_progs[i]));
    json_t *src = json_pack("{s:s,s:s,s:s?}", "kind", kt_kcache_source_name(m->source),
                            m->source == KT_KCACHE_TARBALL || m->source == KT_KCACHE_GIT ? "url"
                                                                                         : "path",
                            m->source_loc, "ref", m->ref[0] ? m->ref : NULL);
    if (!progs || !src) {
        json_decref(progs);
        json_decref(src);
        return NULL;
    }
    return json_pack("{s:i,s:s,s:s,s:o,s:s?,s:s?,s:s?,s:s,s:o,s:s,s:O}", "format", 1, "key",
                     m->key, "version", m->version, "source", src, "commit",
                     m->commit[0] ? m->commit : NULL, "config_hash",
                     m->config_hash[0] ? m->config_hash : NULL, "kconfig_hash",
                     m->kconfig_hash[0] ? m->kconfig_hash : NULL, "built_at", m->built_at,
                     "sched_progs", progs, "arch", KT_KCACHE_ARCH, "files", files);
}

static int s_write_meta(const char *dir, json_t *doc, char *err, size_t err_len)
{
    char tmp[PATH_MAX], dst[PATH_MAX];
    if (snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, S_META) >= (int)sizeof(tmp) ||
        snprintf(dst, sizeof(dst), "%s/%s", dir, S_META) >= (int)sizeof(dst))
        return s_fail(err, err_len, -ENAMETOOLONG, "'%s': path too long", dir);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return s_fail(err, err_len, -errno, "'%s': %s", tmp, strerror(errno));
    int r = json_dumpfd(doc, fd, JSON_INDENT(2) | JSON_SORT_KEYS) < 0 ? -EIO : 0;
    if (r == 0 && write(fd, "\n", 1) != 1)
        r = -EIO;
    if (r == 0 && fsync(fd) < 0)
        r = -errno;
    if (close(fd) < 0 && r == 0)
        r = -errno;
    if (r == 0 && rename(tmp, dst) < 0)
        r = -errno;
    if (r < 0) {
        unlink(tmp);
        return s_fail(err, err_len, r, "'%s': cannot write it: %s", dst, strerror(-r));
    }
    return 0;
}

static void s_copy_str(json_t *o, const char *k, char *buf, size_t len)
{
    const char *s = json_string_value(json_object_get(o, k));
    snprintf(buf, len, "%s", s ? s : "");
}

/* Reads dir/metadata.json into e->meta and checks every file it lists. On
 * any mismatch e->corrupt is set with the reason; returns 0 either way
 * (-errno only for a failure to look). */
static int s_verify(const char *dir, const char *key, kt_kcache_entry_t *e)
{
    char p[PATH_MAX];
    snprintf(e->dir, sizeof(e->dir), "%s", dir);
    snprintf(e->meta.key, sizeof(e->meta.key), "%s", key);
    if (snprintf(p, sizeof(p), "%s/%s", dir, S_META) >= (int)sizeof(p))
        return -ENAMETOOLONG;
    struct stat st;
    if (stat(p, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > S_META_MAX) {
        e->corrupt = true;
        snprintf(e->why, sizeof(e->why), "%s: %s", S_META,
                 errno == ENOENT ? "missing" : "unreadable or too large");
        return 0;
    }
    json_error_t jerr;
    _cleanup_(s_json_decrefp) json_t *doc = json_load_file(p, JSON_REJECT_DUPLICATES, &jerr);
    json_t *files = doc ? json_object_get(doc, "files") : NULL;
    json_t *src = doc ? json_object_get(doc, "source") : NULL;
    if (!doc || !json_is_object(doc) || !json_is_object(files) || !json_is_object(src) ||
        !json_is_string(json_object_get(doc, "version")) ||
        !json_is_string(json_object_get(doc, "key"))) {
        e->corrupt = true;
        snprintf(e->why, sizeof(e->why), "%s: %s", S_META,
                 doc ? "missing key, version, source or files" : jerr.text);
        return 0;
    }
    kt_kcache_meta_t *m = &e->meta;
    if (strcmp(json_string_value(json_object_get(doc, "key")), key) != 0) {
        e->corrupt = true;
        snprintf(e->why, sizeof(e->why), "%s names the key '%s', not its folder's", S_META,
                 json_string_value(json_object_get(doc, "key")));
        return 0;
    }
    s_copy_str(doc, "version", m->version, sizeof(m->version));
    s_copy_str(doc, "commit", m->commit, sizeof(m->commit));
    s_copy_str(doc, "config_hash", m->config_hash, sizeof(m->config_hash));
    s_copy_str(doc, "kconfig_hash", m->kconfig_hash, sizeof(m->kconfig_hash));
    s_copy_str(doc, "built_at", m->built_at, sizeof(m->built_at));
    s_copy_str(src, "ref", m->ref, sizeof(m->ref));
    s_copy_str(src, json_object_get(src, "url") ? "url" : "path", m->source_loc,
               sizeof(m->source_loc));
    const char *kind = json_string_value(json_object_get(src, "kind"));
    unsigned s = 0;
    while (kind && s < KT_ARRAY_SIZE(s_source_names) && strcmp(kind, s_source_names[s]) != 0)
        s++;
    if (!kind || s == KT_ARRAY_SIZE(s_source_names)) {
        e->corrupt = true;
        snprintf(e->why, sizeof(e->why), "%s: unknown source kind", S_META);
        return 0;
    }
    m->source = (enum kt_kcache_source)s;
    json_t *progs = json_object_get(doc, "sched_progs");
    size_t i;
    json_t *v;
    json_array_foreach(progs, i, v)
    {
        if (m->n_sched_progs < KT_KCACHE_MAX_PROGS && json_is_string(v))
            snprintf(m->sched_progs[m->n_sched_progs++], sizeof(m->sched_progs[0]), "%s",
                     json_string_value(v));
    }
    if (!json_object_get(files, "bzImage")) {
        e->corrupt = true;
        snprintf(e->why, sizeof(e->why), "%s lists no bzImage", S_META);
        return 0;
    }
    const char *name;
    e->size = 0;
    json_object_foreach(files, name, v)
    {
        const char *want = json_string_value(v);
        char f[PATH_MAX], got[KT_HASH_HEX_SIZE];
        /* A listed name that climbs out of the entry is no name of ours. */
        if (!want || !*name || name[0] == '/' || strstr(name, "..") ||
            snprintf(f, sizeof(f), "%s/%s", dir, name) >= (int)sizeof(f)) {
            e->corrupt = true;
            snprintf(e->why, sizeof(e->why), "%s: bad file entry '%s'", S_META, name);
            return 0;
        }
        if (stat(f, &st) < 0 || !S_ISREG(st.st_mode)) {
            e->corrupt = true;
            snprintf(e->why, sizeof(e->why), "%s: missing", name);
            return 0;
        }
        int r = kt_hash_sha256_file(f, got);
        if (r < 0 || strcmp(got, want) != 0) {
            e->corrupt = true;
            snprintf(e->why, sizeof(e->why), "%s: %s", name,
                     r < 0 ? "unreadable" : "sha256 differs from metadata.json");
            return 0;
        }
        e->size += (uint64_t)st.st_size;
    }
    snprintf(e->bzimage, sizeof(e->bzimage), "%s/bzImage", dir);
    return 0;
}

int kt_kcache_lookup(const char *root, const char *key, const char *kconfig_hash,
                     kt_kcache_entry_t *ret, char *err, size_t err_len)
{
    if (!kt_kspec_key_valid(key))
        return s_fail(err, err_len, -EINVAL, "'%s' is not a kernel cache key", key);
    char dir[PATH_MAX];
    if (snprintf(dir, sizeof(dir), "%s/%s", root, key) >= (int)sizeof(dir))
        return s_fail(err, err_len, -ENAMETOOLONG, "kernel cache: path too long");
    struct stat st;
    if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
        return s_fail(err, err_len, -ENOENT, "kernel '%s' is not in the cache '%s'", key, root);
    _cleanup_free_ kt_kcache_entry_t *e = calloc(1, sizeof(*e));
    if (!e)
        return -ENOMEM;
    int r = s_verify(dir, key, e);
    if (r < 0)
        return s_fail(err, err_len, r, "kernel cache '%s': %s", dir, strerror(-r));
    e->stale = !e->corrupt && kconfig_hash && *kconfig_hash && e->meta.kconfig_hash[0] &&
               strcmp(kconfig_hash, e->meta.kconfig_hash) != 0;
    *ret = *e;
    return 0;
}

static void s_now_iso(char *buf, size_t len)
{
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Moves root/key out of the way (to a .tmp- name, so that a crash leaves
 * something the sweep removes) and removes it. Called under the key's
 * lock. The entry is locked before it moves: the sweep leaves it to us. */
static int s_discard(const char *root, const char *key)
{
    char from[PATH_MAX], to[PATH_MAX];
    if (snprintf(from, sizeof(from), "%s/%s", root, key) >= (int)sizeof(from) ||
        snprintf(to, sizeof(to), "%s/" S_STAGING_PREFIX "rm-XXXXXX", root) >= (int)sizeof(to))
        return -ENAMETOOLONG;
    _cleanup_close_ int held = -1;
    int r = s_hold_dir(from, &held);
    if (r < 0)
        return r;
    _cleanup_close_ int empty = -1;
    if ((r = s_staging_make(root, to, &empty, NULL, 0)) < 0)
        return r;
    /* rename(2) onto an empty folder replaces it. */
    if (rename(from, to) < 0) {
        int e = errno;
        rmdir(to);
        return -e;
    }
    return kt_kcache_rm_rf(to);
}

/* staging takes dst's place in one step (renameat2 RENAME_EXCHANGE), the
 * old entry moved to staging's name and removed; where the file system
 * cannot exchange, the old entry is moved aside first and put back if
 * staging cannot follow. Called under the key's lock. */
static int s_replace(const char *root, const char *staging, const char *dst)
{
    _cleanup_close_ int held = -1;
    int r = s_hold_dir(dst, &held);
    if (r < 0)
        return r;
    if (renameat2(AT_FDCWD, staging, AT_FDCWD, dst, RENAME_EXCHANGE) == 0) {
        kt_kcache_rm_rf(staging);
        return 0;
    }
    if (errno != EINVAL && errno != ENOSYS)
        return -errno;
    char aside[PATH_MAX];
    if (snprintf(aside, sizeof(aside), "%s/" S_STAGING_PREFIX "rm-XXXXXX", root) >=
        (int)sizeof(aside))
        return -ENAMETOOLONG;
    _cleanup_close_ int empty = -1;
    if ((r = s_staging_make(root, aside, &empty, NULL, 0)) < 0)
        return r;
    if (rename(dst, aside) < 0) {
        r = -errno;
        rmdir(aside);
        return r;
    }
    if (rename(staging, dst) < 0) {
        r = -errno;
        if (rename(aside, dst) < 0)
            kt_log_error("kernel cache: cannot put '%s' back as '%s': %s", aside, dst,
                         strerror(errno));
        return r;
    }
    kt_kcache_rm_rf(aside);
    return 0;
}

static int s_install(const char *root, const char *staging, const kt_kcache_meta_t *meta,
                     bool replace, kt_kcache_entry_t *ret, char *err, size_t err_len)
{
    if (!root || !staging || !meta)
        return -EINVAL;
    if (!kt_kspec_key_valid(meta->key))
        return s_fail(err, err_len, -EINVAL, "'%s' is not a kernel cache key", meta->key);
    size_t cl = strlen(meta->commit);
    if (cl >= 6 && strcmp(meta->commit + cl - 6, "-dirty") == 0)
        return s_fail(err, err_len, -EPERM,
                      "kernel '%s': commit %s is a dirty tree, which is never cached", meta->key,
                      meta->commit);
    char p[PATH_MAX];
    struct stat st;
    if (snprintf(p, sizeof(p), "%s/bzImage", staging) >= (int)sizeof(p) || stat(p, &st) < 0 ||
        !S_ISREG(st.st_mode))
        return s_fail(err, err_len, -ENOENT, "kernel '%s': no bzImage in '%s'", meta->key,
                      staging);
    _cleanup_close_ int lock = -1;
    int r = s_lock(root, meta->key, &lock, err, err_len);
    if (r < 0)
        return r;
    _cleanup_free_ kt_kcache_entry_t *have = calloc(1, sizeof(*have));
    if (!have)
        return -ENOMEM;
    char dst[PATH_MAX];
    if (snprintf(dst, sizeof(dst), "%s/%s", root, meta->key) >= (int)sizeof(dst))
        return s_fail(err, err_len, -ENAMETOOLONG, "kernel cache: path too long");
    bool exists = stat(dst, &st) == 0;
    if (exists && replace) {
        /* Replaced below, once staging is complete: a failure before then
         * leaves the old entry as it was. */
    } else if (exists) {
        r = s_verify(dst, meta->key, have);
        if (r == 0 && !have->corrupt) {
            /* Someone else installed it while we built: theirs stands. */
            kt_kcache_rm_rf(staging);
            if (ret)
                *ret = *have;
            return 1;
        }
        r = s_discard(root, meta->key);
        if (r < 0)
            return s_fail(err, err_len, r, "kernel cache: cannot remove the corrupt '%s': %s",
                          dst, strerror(-r));
    }
    _cleanup_(s_json_decrefp) json_t *files = json_object();
    if (!files)
        return -ENOMEM;
    uint64_t size = 0;
    r = s_hash_tree(staging, "", files, &size, err, err_len);
    if (r < 0)
        return r;
    kt_kcache_meta_t m = *meta;
    if (!m.built_at[0])
        s_now_iso(m.built_at, sizeof(m.built_at));
    _cleanup_(s_json_decrefp) json_t *doc = s_meta_json(&m, files);
    if (!doc)
        return s_fail(err, err_len, -ENOMEM, "kernel '%s': out of memory", meta->key);
    r = s_write_meta(staging, doc, err, err_len);
    if (r < 0)
        return r;
    if (chmod(staging, 0755) < 0)
        return s_fail(err, err_len, -errno, "kernel cache '%s': %s", staging, strerror(errno));
    if (exists && replace) {
        r = s_replace(root, staging, dst);
        if (r < 0)
            return s_fail(err, err_len, r, "kernel cache: cannot replace '%s' with '%s': %s", dst,
                          staging, strerror(-r));
    } else if (rename(staging, dst) < 0) {
        return s_fail(err, err_len, -errno, "kernel cache: cannot move '%s' to '%s': %s",
                      staging, dst, strerror(errno));
    }
    if (ret) {
        memset(have, 0, sizeof(*have));
        r = s_verify(dst, meta->key, have);
        if (r < 0 || have->corrupt)
            return s_fail(err, err_len, -EIO, "kernel cache '%s': corrupt right after install: %s",
                          dst, have->why);
        *ret = *have;
    }
    return 0;
}

int kt_kcache_install(const char *root, const char *staging, const kt_kcache_meta_t *meta,
                      kt_kcache_entry_t *ret, char *err, size_t err_len)
{
    return s_install(root, staging, meta, false, ret, err, err_len);
}

int kt_kcache_replace(const char *root, const char *staging, const kt_kcache_meta_t *meta,
                      kt_kcache_entry_t *ret, char *err, size_t err_len)
{
    return s_install(root, staging, meta, true, ret, err, err_len);
}

static int s_entry_cmp(const void *a, const void *b)
{
    const kt_kcache_entry_t *x = a, *y = b;
    if (x->corrupt != y->corrupt)
        return x->corrupt ? 1 : -1;
    int c = strcmp(y->meta.built_at, x->meta.built_at);
    return c ? c : strcmp(x->meta.key, y->meta.key);
}

int kt_kcache_list(const char *root, const char *kconfig_hash, kt_kcache_entry_t **ret,
                   unsigned *ret_n, char *err, size_t err_len)
{
    DIR *d = opendir(root);
    if (!d) {
        if (errno == ENOENT) {
            *ret = NULL;
            *ret_n = 0;
            return 0;
        }
        return s_fail(err, err_len, -errno, "kernel cache '%s': %s", root, strerror(errno));
    }
    kt_kcache_entry_t *v = NULL;
    unsigned n = 0, cap = 0;
    int r = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue; /* ., .., .tmp-*, .lock-* */
        char dir[PATH_MAX];
        struct stat st;
        if (snprintf(dir, sizeof(dir), "%s/%s", root, de->d_name) >= (int)sizeof(dir) ||
            stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            kt_kcache_entry_t *nv = realloc(v, cap * sizeof(*v));
            if (!nv) {
                r = -ENOMEM;
                break;
            }
            v = nv;
        }
        kt_kcache_entry_t *e = &v[n];
        memset(e, 0, sizeof(*e));
        if (!kt_kspec_key_valid(de->d_name)) {
            snprintf(e->dir, sizeof(e->dir), "%s", dir);
            snprintf(e->meta.key, sizeof(e->meta.key), "%.127s", de->d_name);
            e->corrupt = true;
            snprintf(e->why, sizeof(e->why), "the folder's name is not a cache key");
        } else if ((r = s_verify(dir, de->d_name, e)) < 0) {
            r = s_fail(err, err_len, r, "kernel cache '%s': %s", dir, strerror(-r));
            break;
        }
        e->stale = !e->corrupt && kconfig_hash && *kconfig_hash && e->meta.kconfig_hash[0] &&
                   strcmp(kconfig_hash, e->meta.kconfig_hash) != 0;
        n++;
    }
    closedir(d);
    if (r < 0) {
        free(v);
        return r;
    }
    if (n)
        qsort(v, n, sizeof(*v), s_entry_cmp);
    *ret = v;
    *ret_n = n;
    return 0;
}

int kt_kcache_remove(const char *root, const char *key, char *err, size_t err_len)
{
    /* Names from a listing may be invalid keys (a corrupt entry): refuse
     * only what could leave the folder. */
    if (!key || !*key || key[0] == '.' || strchr(key, '/'))
        return s_fail(err, err_len, -EINVAL, "'%s' is not a kernel cache entry", key ? key : "");
    _cleanup_close_ int lock = -1;
    int r = s_lock(root, key, &lock, err, err_len);
    if (r < 0)
        return r;
    r = s_discard(root, key);
    if (r == -ENOENT)
        return s_fail(err, err_len, r, "kernel '%s' is not in the cache '%s'", key, root);
    if (r < 0)
        return s_fail(err, err_len, r, "kernel cache: cannot remove '%s/%s': %s", root, key,
                      strerror(-r));
    return 0;
}

int kt_kcache_clean(const char *root, int keep, bool corrupt, char *err, size_t err_len)
{
    kt_kcache_entry_t *v = NULL;
    unsigned n = 0;
    int r = kt_kcache_list(root, NULL, &v, &n, err, err_len);
    if (r < 0)
        return r;
    int removed = 0;
    unsigned intact = 0;
    for (unsigned i = 0; i < n && r >= 0; i++) {
        bool drop;
        if (v[i].corrupt)
            drop = corrupt || keep < 0;
        else
            drop = keep >= 0 ? intact++ >= (unsigned)keep : !corrupt;
        if (!drop)
            continue;
        r = kt_kcache_remove(root, v[i].meta.key, err, err_len);
        if (r == 0)
            removed++;
    }
    free(v);
    return r < 0 ? r : removed;
}

int kt_kcache_sweep(const char *root, bool rm, char *err, size_t err_len)
{
    _cleanup_close_ int gl = -1;
    int r = s_staging_lock(root, LOCK_EX, &gl, err, err_len);
    if (r < 0)
        return r;
    DIR *d = opendir(root);
    if (!d)
        return s_fail(err, err_len, -errno, "kernel cache '%s': %s", root, strerror(errno));
    int found = 0;
    struct dirent *de;
    while (r == 0 && (de = readdir(d))) {
        if (strncmp(de->d_name, S_STAGING_PREFIX, strlen(S_STAGING_PREFIX)) != 0)
            continue;
        char dir[PATH_MAX];
        if (snprintf(dir, sizeof(dir), "%s/%s", root, de->d_name) >= (int)sizeof(dir))
            continue;
        _cleanup_close_ int held = -1;
        int l = s_lock_dir(dir, true, &held);
        if (l == -EWOULDBLOCK || l == -ENOENT || l == -ENOTDIR || l == -ELOOP)
            continue; /* in use, gone meanwhile, or not a folder */
        if (l < 0) {
            r = s_fail(err, err_len, l, "kernel cache: cannot lock '%s': %s", dir,
                       strerror(-l));
            break;
        }
        /* Nobody holds it: whoever made it is gone. */
        if (rm && (l = kt_kcache_rm_rf(dir)) < 0) {
            r = s_fail(err, err_len, l, "kernel cache: cannot remove '%s': %s", dir,
                       strerror(-l));
            break;
        }
        found++;
    }
    closedir(d);
    return r < 0 ? r : found;
}
