/* Kernel specs to kernels (kt_kernels.h). Resolution reads, never builds:
 * a git ref is read with libgit2 (a local repository directly, a remote one
 * with ls-remote), its version from the Makefile at that commit, its key
 * from ref, commit and the kconfig fragment's hash, then the cache is
 * asked. Builds happen on the coordinator host: the cache lives there and
 * kernels already travel to workers as sha256 artifacts, so a worker never
 * needs a source tree, a compiler or the cache. */
#include "kt_kernels.h"
#include "kt_log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <git2.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kt_cleanup.h"
#include "kt_config.h"
#include "kt_hash.h"
#include "kt_kernel.h"
#include "kt_kernel_resolve.h"
#ifdef KT_HAVE_KBUILD
#include "kt_kbuild.h"
#endif

#define S_MAX_RESOLVED 256

static pthread_once_t s_git_once = PTHREAD_ONCE_INIT;

static void s_git_init(void)
{
    git_libgit2_init();
}

#define s_fail kt_err

static const char *s_git_msg(void)
{
    const git_error *e = git_error_last();
    return e && e->message ? e->message : "libgit2 error";
}

static void s_repo_freep(git_repository **r)
{
    git_repository_free(*r);
}

static void s_object_freep(git_object **o)
{
    git_object_free(*o);
}

static void s_remote_freep(git_remote **r)
{
    git_remote_free(*r);
}

bool kt_kernels_can_build(void)
{
#ifdef KT_HAVE_KBUILD
    return true;
#else
    return false;
#endif
}

const char *kt_kernels_default_kconfig(void)
{
    const char *env = getenv("KTSTR_KCONFIG");
    return env && *env ? env : KT_SOURCE_DIR "/deploy/ktstr.kconfig";
}

int kt_kernels_kconfig_hash(const char *kconfig, char out[65], char *err, size_t err_len)
{
#ifdef KT_HAVE_KBUILD
    return kt_kbuild_kconfig_hash(kconfig, out, err, err_len);
#else
    int r = kt_hash_sha256_file(kconfig, out);
    if (r < 0)
        return s_fail(err, err_len, r, "kconfig fragment '%s': %s", kconfig, strerror(-r));
    return 0;
#endif
}

static bool s_label_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-' || c == '+';
}

/* A label from text (a version, a ref): file-name-safe bytes only. */
static void s_label_from(char *buf, size_t len, const char *text)
{
    snprintf(buf, len, "%s", text && *text ? text : "kernel");
    for (char *p = buf; *p; p++)
        if (!s_label_char(*p))
            *p = '_';
    if (!strcmp(buf, ".") || !strcmp(buf, ".."))
        snprintf(buf, len, "kernel");
}

/* VERSION.PATCHLEVEL.SUBLEVEL EXTRAVERSION from a top-level Makefile's
 * text, as the kernel's own `make kernelversion` prints it. */
static int s_makefile_version(const char *text, size_t len, char *buf, size_t buf_len)
{
    char parts[4][32] = {"", "", "", ""};
    static const char *const names[] = {"VERSION", "PATCHLEVEL", "SUBLEVEL", "EXTRAVERSION"};
    const char *p = text, *end = text + len;
    /* The variables are set in the first lines; do not read a whole tree's
     * worth of Makefile. */
    for (unsigned line = 0; p < end && line < 64; line++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t ll = nl ? (size_t)(nl - p) : (size_t)(end - p);
        for (unsigned i = 0; i < 4; i++) {
            size_t nl2 = strlen(names[i]);
            if (ll > nl2 && strncmp(p, names[i], nl2) == 0 && (p[nl2] == ' ' || p[nl2] == '=')) {
                const char *q = p + nl2, *qe = p + ll;
                while (q < qe && *q == ' ')
                    q++;
                if (q < qe && *q == '=')
                    q++;
                while (q < qe && (*q == ' ' || *q == '\t'))
                    q++;
                while (qe > q && (qe[-1] == ' ' || qe[-1] == '\t' || qe[-1] == '\r'))
                    qe--;
                snprintf(parts[i], sizeof(parts[i]), "%.*s", (int)(qe - q), q);
            }
        }
        p += ll + 1;
    }
    if (!parts[0][0] || !parts[1][0])
        return -ENOEXEC;
    int w = snprintf(buf, buf_len, "%s.%s%s%s%s", parts[0], parts[1], parts[2][0] ? "." : "",
                     parts[2], parts[3]);
    return w < 0 || (size_t)w >= buf_len ? -ENOBUFS : 0;
}

/* The kernel version of the tree at commit: Kconfig and Makefile at its top. */
static int s_commit_version(git_repository *repo, const git_oid *oid, char *buf, size_t len)
{
    git_commit *c = NULL;
    git_tree *tree = NULL;
    git_tree_entry *kc = NULL, *mk = NULL;
    git_blob *blob = NULL;
    int r = -ENOEXEC;
    if (git_commit_lookup(&c, repo, oid) < 0 || git_commit_tree(&tree, c) < 0) {
        r = -EIO;
        goto out;
    }
    if (git_tree_entry_bypath(&kc, tree, "Kconfig") < 0 ||
        git_tree_entry_bypath(&mk, tree, "Makefile") < 0 ||
        git_blob_lookup(&blob, repo, git_tree_entry_id(mk)) < 0)
        goto out;
    r = s_makefile_version(git_blob_rawcontent(blob), (size_t)git_blob_rawsize(blob), buf, len);
out:
    git_blob_free(blob);
    git_tree_entry_free(mk);
    git_tree_entry_free(kc);
    git_tree_free(tree);
    git_commit_free(c);
    return r;
}

/* A git URL that names a repository on this machine: its path. */
static bool s_local_url(const kt_kernels_opts_t *o, const char *url, char *buf, size_t len)
{
    const char *p = url;
    if (strncmp(url, "file://", 7) == 0)
        p = url + 7;
    else if (strstr(url, "://") || (strchr(url, ':') && !strchr(url, '/')))
        return false;
    else if (strchr(url, ':') && strchr(url, ':') < strchr(url, '/'))
        return false; /* scp-like host:path */
    int w = p[0] == '/' || !o->base_dir ? snprintf(buf, len, "%s", p)
                                         : snprintf(buf, len, "%s/%s", o->base_dir, p);
    return w > 0 && (size_t)w < len;
}

/* Fills key, cached, stale, need, path for a kernel to be built from git or
 * a clean source tree. */
static int s_keyed(const kt_kernels_opts_t *o, kt_kres_t *k, char *err, size_t err_len)
{
    char kc[65];
    k->need = KT_KRES_BUILD;
    int r = kt_kernels_kconfig_hash(o->kconfig, kc, err, err_len);
    if (r < 0)
        return s_fail(err, err_len, r,
                      "kernel spec '%s': cannot hash the kconfig fragment '%s' for its cache key "
                      "(give --kconfig FILE)",
                      k->spec, o->kconfig);
    char sha7[8];
    snprintf(sha7, sizeof(sha7), "%.7s", k->commit);
    r = kt_kcache_key(k->source, k->ref, sha7, kc, k->key, sizeof(k->key));
    if (r < 0)
        return s_fail(err, err_len, r, "kernel spec '%s': no cache key for ref '%s' commit '%s'",
                      k->spec, k->ref, k->commit);
    kt_kcache_entry_t *e = calloc(1, sizeof(*e));
    if (!e)
        return -ENOMEM;
    char why[512];
    r = o->cache_root ? kt_kcache_lookup(o->cache_root, k->key, kc, e, why, sizeof(why)) : -ENOENT;
    if (r == 0 && !e->corrupt && !o->force) {
        k->cached = true;
        k->stale = e->stale;
        k->need = KT_KRES_READY;
        snprintf(k->path, sizeof(k->path), "%s", e->bzimage);
        if (e->meta.version[0])
            snprintf(k->version, sizeof(k->version), "%s", e->meta.version);
    } else if (r == 0 && e->corrupt && !o->quiet) {
        fprintf(stderr, "kernel %s: the cache entry is corrupt (%s): it will be rebuilt\n",
                k->key, e->why);
    }
    free(e);
    return 0;
}

/* A git commit of repo (opened at repo_path, named by ref) as a kernel. */
static int s_from_commit(const kt_kernels_opts_t *o, git_repository *repo, const char *repo_loc,
                         const char *ref, const git_oid *oid, const char *spec, const char *label,
                         kt_kres_t *k, char *err, size_t err_len)
{
    memset(k, 0, sizeof(*k));
    snprintf(k->spec, sizeof(k->spec), "%s", spec);
    k->source = KT_KCACHE_GIT;
    snprintf(k->repo, sizeof(k->repo), "%s", repo_loc);
    snprintf(k->ref, sizeof(k->ref), "%s", ref);
    git_oid_tostr(k->oid, sizeof(k->oid), oid);
    snprintf(k->commit, sizeof(k->commit), "%.7s", k->oid);
    int r = s_commit_version(repo, oid, k->version, sizeof(k->version));
    if (r == -ENOEXEC)
        return s_fail(err, err_len, -ENOEXEC,
                      "kernel spec '%s': %s at %s is not a kernel source tree (no top-level "
                      "Kconfig and Makefile with VERSION and PATCHLEVEL)",
                      spec, ref, k->commit);
    if (r < 0)
        return s_fail(err, err_len, r, "kernel spec '%s': cannot read commit %s: %s", spec,
                      k->commit, s_git_msg());
    s_label_from(k->label, sizeof(k->label), label && *label ? label : k->version);
    return s_keyed(o, k, err, err_len);
}

static int s_push(kt_kres_t **v, unsigned *n, kt_kres_t **ret)
{
    if (*n >= S_MAX_RESOLVED)
        return -E2BIG;
    kt_kres_t *nv = realloc(*v, (*n + 1) * sizeof(**v));
    if (!nv)
        return -ENOMEM;
    *v = nv;
    *ret = &nv[(*n)++];
    return 0;
}

static int s_open_repo(const char *path, const char *spec, git_repository **ret, char *err,
                       size_t err_len)
{
    pthread_once(&s_git_once, s_git_init);
    int g = git_repository_open_ext(ret, path, GIT_REPOSITORY_OPEN_NO_SEARCH, NULL);
    if (g < 0)
        return s_fail(err, err_len, g == GIT_ENOTFOUND ? -ENOENT : -EIO,
                      "kernel spec '%s': '%s' is not a git repository: %s", spec, path,
                      s_git_msg());
    return 0;
}

/* ls-remote: the commit a remote's ref names (a peeled tag preferred). */
static int s_remote_ref(const char *url, const char *ref, git_oid *ret, char *err, size_t err_len,
                        const char *spec)
{
    pthread_once(&s_git_once, s_git_init);
    _cleanup_(s_remote_freep) git_remote *rem = NULL;
    if (git_remote_create_anonymous(&rem, NULL, url) < 0 ||
        git_remote_connect(rem, GIT_DIRECTION_FETCH, NULL, NULL, NULL) < 0)
        return s_fail(err, err_len, -EIO, "kernel spec '%s': cannot reach '%s': %s", spec, url,
                      s_git_msg());
    const git_remote_head **heads;
    size_t n;
    if (git_remote_ls(&heads, &n, rem) < 0)
        return s_fail(err, err_len, -EIO, "kernel spec '%s': cannot list '%s': %s", spec, url,
                      s_git_msg());
    char cands[4][KT_KSPEC_REF_MAX + 16];
    snprintf(cands[0], sizeof(cands[0]), "refs/tags/%s^{}", ref);
    snprintf(cands[1], sizeof(cands[1]), "refs/tags/%s", ref);
    snprintf(cands[2], sizeof(cands[2]), "refs/heads/%s", ref);
    snprintf(cands[3], sizeof(cands[3]), "%s", ref);
    for (unsigned c = 0; c < 4; c++)
        for (size_t i = 0; i < n; i++)
            if (strcmp(heads[i]->name, cands[c]) == 0) {
                *ret = heads[i]->oid;
                return 0;
            }
    if (strlen(ref) == GIT_OID_HEXSZ && git_oid_fromstr(ret, ref) == 0)
        return 0;
    return s_fail(err, err_len, -ENOENT,
                  "kernel spec '%s': '%s' has no branch or tag '%s' (a commit must be given "
                  "as its full 40-digit id for a remote repository)",
                  spec, url, ref);
}

static int s_git_spec(const kt_kernels_opts_t *o, const kt_kspec_t *s, const char *label,
                      kt_kres_t **v, unsigned *n, char *err, size_t err_len)
{
    char local[PATH_MAX];
    kt_kres_t *k;
    int r;
    if (s_local_url(o, s->url, local, sizeof(local))) {
        char real[PATH_MAX];
        if (!realpath(local, real))
            return s_fail(err, err_len, -errno, "kernel spec '%s': '%s': %s", s->text, local,
                          strerror(errno));
        _cleanup_(s_repo_freep) git_repository *repo = NULL;
        if ((r = s_open_repo(real, s->text, &repo, err, err_len)) < 0)
            return r;
        _cleanup_(s_object_freep) git_object *obj = NULL, *peeled = NULL;
        if (git_revparse_single(&obj, repo, s->ref) < 0)
            return s_fail(err, err_len, -ENOENT,
                          "kernel spec '%s': '%s' has no branch, tag or commit '%s'", s->text,
                          real, s->ref);
        if (git_object_peel(&peeled, obj, GIT_OBJECT_COMMIT) < 0)
            return s_fail(err, err_len, -EINVAL, "kernel spec '%s': '%s' is not a commit",
                          s->text, s->ref);
        if ((r = s_push(v, n, &k)) < 0)
            return s_fail(err, err_len, r, "kernel spec '%s': too many kernels", s->text);
        r = s_from_commit(o, repo, real, s->ref, git_object_id(peeled), s->text, label, k, err,
                          err_len);
        if (r < 0)
            (*n)--;
        return r;
    }
    git_oid oid;
    if ((r = s_remote_ref(s->url, s->ref, &oid, err, err_len, s->text)) < 0)
        return r;
    if ((r = s_push(v, n, &k)) < 0)
        return s_fail(err, err_len, r, "kernel spec '%s': too many kernels", s->text);
    memset(k, 0, sizeof(*k));
    snprintf(k->spec, sizeof(k->spec), "%s", s->text);
    k->source = KT_KCACHE_GIT;
    snprintf(k->repo, sizeof(k->repo), "%s", s->url);
    snprintf(k->ref, sizeof(k->ref), "%s", s->ref);
    git_oid_tostr(k->oid, sizeof(k->oid), &oid);
    snprintf(k->commit, sizeof(k->commit), "%.7s", k->oid);
    /* The version is known once fetched; until then the ref labels it. */
    s_label_from(k->label, sizeof(k->label), label && *label ? label : s->ref);
    r = s_keyed(o, k, err, err_len);
    if (r < 0)
        (*n)--;
    return r;
}

typedef struct s_tag {
    kt_kver_t ver;
    char name[KT_KSPEC_REF_MAX];
    git_oid oid;
} s_tag_t;

typedef struct s_tags {
    git_repository *repo;
    const kt_kver_t *lo, *hi; /* hi NULL: exactly lo */
    s_tag_t *v;
    unsigned n, cap;
    int r;
} s_tags_t;

static int s_tag_cb(const char *name, git_oid *oid, void *payload)
{
    s_tags_t *t = payload;
    const char *shortname = name + (strncmp(name, "refs/tags/", 10) == 0 ? 10 : 0);
    kt_kver_t ver;
    /* Release tags only: vX.Y[.Z][-rcN], nothing else. */
    if (shortname[0] != 'v' || kt_kver_parse(shortname, &ver) < 0)
        return 0;
    if (t->hi ? kt_kver_cmp(&ver, t->lo) < 0 || kt_kver_cmp(&ver, t->hi) > 0
              : kt_kver_cmp(&ver, t->lo) != 0 || ver.has_patch != t->lo->has_patch)
        return 0;
    git_object *obj = NULL, *peeled = NULL;
    if (git_object_lookup(&obj, t->repo, oid, GIT_OBJECT_ANY) < 0 ||
        git_object_peel(&peeled, obj, GIT_OBJECT_COMMIT) < 0) {
        git_object_free(obj);
        return 0; /* a tag of a tree or blob is no kernel */
    }
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 16;
        s_tag_t *nv = t->cap <= 4096 ? realloc(t->v, t->cap * sizeof(*nv)) : NULL;
        if (!nv) {
            git_object_free(peeled);
            git_object_free(obj);
            t->r = -ENOMEM;
            return -1;
        }
        t->v = nv;
    }
    s_tag_t *e = &t->v[t->n++];
    e->ver = ver;
    snprintf(e->name, sizeof(e->name), "%s", shortname);
    git_oid_cpy(&e->oid, git_object_id(peeled));
    git_object_free(peeled);
    git_object_free(obj);
    return 0;
}

static int s_tag_cmp(const void *a, const void *b)
{
    const s_tag_t *x = a, *y = b;
    int c = kt_kver_cmp(&x->ver, &y->ver);
    return c ? c : strcmp(x->name, y->name);
}

/* The release tags of o->kernel_repo in [lo, hi] (hi NULL: lo exactly), in
 * version order, each resolved as a git kernel. */
static int s_repo_tags(const kt_kernels_opts_t *o, const kt_kspec_t *s, const kt_kver_t *lo,
                       const kt_kver_t *hi, const char *label, kt_kres_t **v, unsigned *n,
                       char *err, size_t err_len)
{
    char real[PATH_MAX];
    if (!realpath(o->kernel_repo, real))
        return s_fail(err, err_len, -errno, "kernel spec '%s': --kernel-repo '%s': %s", s->text,
                      o->kernel_repo, strerror(errno));
    _cleanup_(s_repo_freep) git_repository *repo = NULL;
    int r = s_open_repo(real, s->text, &repo, err, err_len);
    if (r < 0)
        return r;
    s_tags_t t = {.repo = repo, .lo = lo, .hi = hi};
    if (git_tag_foreach(repo, s_tag_cb, &t) < 0 && t.r == 0)
        t.r = s_fail(err, err_len, -EIO, "kernel spec '%s': cannot list the tags of '%s': %s",
                     s->text, real, s_git_msg());
    if (t.r < 0) {
        free(t.v);
        return t.r;
    }
    if (!t.n) {
        free(t.v);
        return s_fail(err, err_len, -ENOENT, "kernel spec '%s': no release tag (vX.Y[.Z][-rcN]) "
                      "%s in '%s'", s->text, hi ? "in that range" : "of that version", real);
    }
    qsort(t.v, t.n, sizeof(*t.v), s_tag_cmp);
    for (unsigned i = 0; i < t.n && r == 0; i++) {
        kt_kres_t *k;
        if ((r = s_push(v, n, &k)) < 0) {
            r = s_fail(err, err_len, r, "kernel spec '%s': more than %d kernels", s->text,
                       S_MAX_RESOLVED);
            break;
        }
        r = s_from_commit(o, repo, real, t.v[i].name, &t.v[i].oid, s->text,
                          hi ? NULL : label, k, err, err_len);
        if (r < 0)
            (*n)--;
    }
    free(t.v);
    return r;
}

/* An intact cache entry as a READY kernel. */
static void s_from_entry(const kt_kcache_entry_t *e, const char *spec, const char *label,
                         kt_kres_t *k)
{
    memset(k, 0, sizeof(*k));
    snprintf(k->spec, sizeof(k->spec), "%s", spec);
    snprintf(k->version, sizeof(k->version), "%s", e->meta.version);
    snprintf(k->commit, sizeof(k->commit), "%s", e->meta.commit);
    snprintf(k->key, sizeof(k->key), "%s", e->meta.key);
    snprintf(k->path, sizeof(k->path), "%s", e->bzimage);
    snprintf(k->ref, sizeof(k->ref), "%s", e->meta.ref);
    snprintf(k->repo, sizeof(k->repo), "%s", e->meta.source_loc);
    k->source = e->meta.source;
    k->cached = true;
    k->stale = e->stale;
    k->need = KT_KRES_READY;
    s_label_from(k->label, sizeof(k->label), label && *label ? label : e->meta.version);
}

/* Cached kernels whose version is in [lo, hi] (hi NULL: matches lo, "6.12"
 * matching any 6.12.x), newest version first when one is wanted; one entry
 * per version (the fresh one over a stale one, then the newest built). */
static int s_cache_versions(const kt_kernels_opts_t *o, const kt_kspec_t *s, const char *label,
                            bool one, kt_kres_t **v, unsigned *n, char *err, size_t err_len)
{
    char kc[65] = "";
    if (o->kconfig && kt_kernels_kconfig_hash(o->kconfig, kc, NULL, 0) < 0)
        kc[0] = '\0';
    kt_kcache_entry_t *all = NULL;
    unsigned na = 0;
    int r = o->cache_root ? kt_kcache_list(o->cache_root, kc, &all, &na, err, err_len) : 0;
    if (r < 0)
        return r;
    /* Picked entries, as indexes into all, sorted by version. */
    _cleanup_free_ unsigned *pick = calloc(na ? na : 1, sizeof(*pick));
    _cleanup_free_ kt_kver_t *vers = calloc(na ? na : 1, sizeof(*vers));
    if (!pick || !vers) {
        free(all);
        return -ENOMEM;
    }
    unsigned np = 0;
    for (unsigned i = 0; i < na; i++) {
        kt_kver_t ver;
        if (all[i].corrupt || kt_kver_parse_prefix(all[i].meta.version, &ver) < 0)
            continue;
        bool in;
        if (s->kind == KT_KSPEC_RANGE)
            in = kt_kver_cmp(&ver, &s->lo) >= 0 && kt_kver_cmp(&ver, &s->hi) <= 0;
        else
            in = ver.major == s->lo.major && ver.minor == s->lo.minor &&
                 (!s->lo.has_patch || ver.patch == s->lo.patch) && ver.rc == s->lo.rc;
        if (!in)
            continue;
        /* One per version: the list is newest built first, so the first
         * seen stays unless it is stale and this one is not. */
        unsigned j = 0;
        while (j < np && strcmp(all[pick[j]].meta.version, all[i].meta.version) != 0)
            j++;
        if (j < np) {
            if (all[pick[j]].stale && !all[i].stale)
                pick[j] = i;
            continue;
        }
        vers[np] = ver;
        pick[np++] = i;
    }
    /* Version order (insertion sort: a cache is small). */
    for (unsigned i = 1; i < np; i++)
        for (unsigned j = i; j > 0 && kt_kver_cmp(&vers[j - 1], &vers[j]) > 0; j--) {
            kt_kver_t tv = vers[j];
            vers[j] = vers[j - 1];
            vers[j - 1] = tv;
            unsigned tp = pick[j];
            pick[j] = pick[j - 1];
            pick[j - 1] = tp;
        }
    if (np && one) {
        /* The newest version; among equals the first listed: newest built. */
        unsigned best = 0;
        for (unsigned i = 1; i < np; i++)
            if (kt_kver_cmp(&vers[i], &vers[best]) > 0)
                best = i;
        pick[0] = pick[best];
        np = 1;
    }
    for (unsigned i = 0; i < np && r == 0; i++) {
        kt_kres_t *k;
        if ((r = s_push(v, n, &k)) < 0)
            r = s_fail(err, err_len, r, "kernel spec '%s': too many kernels", s->text);
        else
            s_from_entry(&all[pick[i]], s->text, one ? label : NULL, k);
    }
    free(all);
    if (r == 0 && !np)
        r = s_fail(err, err_len, -ENOENT,
                   "kernel spec '%s': no cached kernel %s in '%s' (build one with `ktstr-coord "
                   "kernel build`, or give --kernel-repo DIR to use its release tags)",
                   s->text, s->kind == KT_KSPEC_RANGE ? "in that range" : "of that version",
                   o->cache_root ? o->cache_root : "(no cache)");
    return r;
}

static int s_path_spec(const kt_kernels_opts_t *o, const kt_kspec_t *s, const char *label,
                       kt_kres_t **v, unsigned *n, char *err, size_t err_len)
{
    char path[PATH_MAX];
    if (s->url[0] == '~' && (s->url[1] == '/' || !s->url[1])) {
        const char *home = getenv("HOME");
        if (!home)
            return s_fail(err, err_len, -ENOENT, "kernel spec '%s': HOME is not set", s->text);
        snprintf(path, sizeof(path), "%s%s", home, s->url + 1);
    } else if (s->url[0] == '/' || !o->base_dir) {
        snprintf(path, sizeof(path), "%s", s->url);
    } else if (snprintf(path, sizeof(path), "%s/%s", o->base_dir, s->url) >= (int)sizeof(path)) {
        return s_fail(err, err_len, -ENAMETOOLONG, "kernel spec '%s': path too long", s->text);
    }
    struct stat st;
    if (stat(path, &st) < 0)
        return s_fail(err, err_len, -errno, "kernel spec '%s': '%s': %s", s->text, path,
                      strerror(errno));
    kt_kres_t *k;
    int r = s_push(v, n, &k);
    if (r < 0)
        return s_fail(err, err_len, r, "kernel spec '%s': too many kernels", s->text);
    memset(k, 0, sizeof(*k));
    snprintf(k->spec, sizeof(k->spec), "%s", s->text);
    char why[1024];
    kt_coord_kernel_t ck;
    r = kt_kernel_resolve(path, label, &ck, NULL, why, sizeof(why));
    if (r == 0) {
        k->need = KT_KRES_READY;
        snprintf(k->path, sizeof(k->path), "%s", ck.path);
        snprintf(k->label, sizeof(k->label), "%s", ck.label);
        snprintf(k->version, sizeof(k->version), "%s", ck.version);
        snprintf(k->commit, sizeof(k->commit), "%s", ck.commit);
        k->source = KT_KCACHE_LOCAL;
        return 0;
    }
    /* A source tree without a build in it: build it (keyed by its commit
     * when clean; a dirty tree or one outside git is built uncached). */
    char mk[PATH_MAX + 16], kc[PATH_MAX + 16];
    snprintf(mk, sizeof(mk), "%s/Makefile", path);
    snprintf(kc, sizeof(kc), "%s/Kconfig", path);
    if (!S_ISDIR(st.st_mode) || access(mk, R_OK) < 0 || access(kc, R_OK) < 0) {
        (*n)--;
        return s_fail(err, err_len, r, "kernel spec '%s': %s", s->text, why);
    }
    if (!realpath(path, k->repo)) {
        (*n)--;
        return s_fail(err, err_len, -errno, "kernel spec '%s': '%s': %s", s->text, path,
                      strerror(errno));
    }
    k->source = KT_KCACHE_LOCAL;
    k->need = KT_KRES_BUILD;
    _cleanup_free_ char *text = NULL;
    FILE *f = fopen(mk, "re");
    if (f) {
        text = calloc(1, 8192);
        size_t got = text ? fread(text, 1, 8191, f) : 0;
        fclose(f);
        if (text && s_makefile_version(text, got, k->version, sizeof(k->version)) < 0)
            k->version[0] = '\0';
    }
    char cwhy[512];
    r = kt_git_commit_of(k->repo, k->commit, sizeof(k->commit), cwhy, sizeof(cwhy));
    if (r < 0 && r != -ENOENT) {
        (*n)--;
        return s_fail(err, err_len, r, "kernel spec '%s': %s", s->text, cwhy);
    }
    if (r == -ENOENT)
        k->commit[0] = '\0';
    s_label_from(k->label, sizeof(k->label), label && *label ? label : k->version);
    size_t cl = strlen(k->commit);
    if (!cl || (cl > 6 && strcmp(k->commit + cl - 6, "-dirty") == 0))
        return 0; /* no key: never cached */
    r = s_keyed(o, k, err, err_len);
    if (r < 0)
        (*n)--;
    return r;
}

static int s_deb_spec(const kt_kernels_opts_t *o, const kt_kspec_t *s, const char *label,
                      kt_kres_t **v, unsigned *n, char *err, size_t err_len)
{
    kt_kres_t *k;
    int r = s_push(v, n, &k);
    if (r < 0)
        return s_fail(err, err_len, r, "kernel spec '%s': too many kernels", s->text);
    memset(k, 0, sizeof(*k));
    snprintf(k->spec, sizeof(k->spec), "%s", s->text);
    k->source = KT_KCACHE_DEB;
    k->need = KT_KRES_FETCH;
    snprintf(k->repo, sizeof(k->repo), "%s", s->url);
    /* linux-image-{kernelrelease}: the release (and so the key) is in the
     * name; a meta package (linux-image-cloud-amd64) is known once fetched. */
    const char *rel = strncmp(s->url, "linux-image-", 12) == 0 ? s->url + 12 : NULL;
    if (!rel || rel[0] < '0' || rel[0] > '9') {
        s_label_from(k->label, sizeof(k->label), label && *label ? label : s->url);
        return 0;
    }
    snprintf(k->version, sizeof(k->version), "%s", rel);
    s_label_from(k->label, sizeof(k->label), label && *label ? label : rel);
    if (kt_kcache_key(KT_KCACHE_DEB, rel, NULL, NULL, k->key, sizeof(k->key)) < 0) {
        k->key[0] = '\0';
        return 0;
    }
    kt_kcache_entry_t *e = calloc(1, sizeof(*e));
    if (!e)
        return -ENOMEM;
    char why[512];
    if (o->cache_root && !o->force &&
        kt_kcache_lookup(o->cache_root, k->key, NULL, e, why, sizeof(why)) == 0 && !e->corrupt)
        s_from_entry(e, s->text, label, k);
    free(e);
    return 0;
}

int kt_kernels_resolve(const kt_kernels_opts_t *o, const char *spec, const char *label,
                       kt_kres_t **v, unsigned *n, char *err, size_t err_len)
{
    kt_kspec_t *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    int r = kt_kspec_parse(spec, s, err, err_len);
    if (r < 0) {
        free(s);
        return r;
    }
    switch (s->kind) {
    case KT_KSPEC_GIT: r = s_git_spec(o, s, label, v, n, err, err_len); break;
    case KT_KSPEC_RANGE:
        r = o->kernel_repo ? s_repo_tags(o, s, &s->lo, &s->hi, label, v, n, err, err_len)
                           : s_cache_versions(o, s, label, false, v, n, err, err_len);
        break;
    case KT_KSPEC_PATH: r = s_path_spec(o, s, label, v, n, err, err_len); break;
    case KT_KSPEC_VERSION: {
        unsigned before = *n;
        char why[1024];
        r = s_cache_versions(o, s, label, true, v, n, why, sizeof(why));
        /* Not cached: the repository's tag of that version, to be built. */
        if (r == -ENOENT && o->kernel_repo) {
            *n = before;
            r = s_repo_tags(o, s, &s->lo, NULL, label, v, n, err, err_len);
        } else if (r < 0) {
            snprintf(err, err_len, "%s", why);
        }
        break;
    }
    case KT_KSPEC_KEY: {
        kt_kcache_entry_t *e = calloc(1, sizeof(*e));
        char kc[65] = "";
        if (!e) {
            r = -ENOMEM;
            break;
        }
        if (o->kconfig && kt_kernels_kconfig_hash(o->kconfig, kc, NULL, 0) < 0)
            kc[0] = '\0';
        char why[512];
        r = o->cache_root ? kt_kcache_lookup(o->cache_root, s->url, kc, e, why, sizeof(why))
                          : -ENOENT;
        if (r == -ENOENT)
            r = s_fail(err, err_len, r, "kernel spec '%s': no such kernel in the cache '%s'",
                       spec, o->cache_root ? o->cache_root : "(none)");
        else if (r < 0)
            r = s_fail(err, err_len, r, "kernel spec '%s': %s", spec, why);
        else if (e->corrupt)
            r = s_fail(err, err_len, -EBADMSG,
                       "kernel spec '%s': the cache entry is corrupt (%s); remove it with "
                       "`ktstr-coord kernel clean --corrupt`",
                       spec, e->why);
        kt_kres_t *k;
        if (r == 0 && (r = s_push(v, n, &k)) == 0)
            s_from_entry(e, spec, label, k);
        free(e);
        break;
    }
    case KT_KSPEC_DEB: r = s_deb_spec(o, s, label, v, n, err, err_len); break;
    }
    free(s);
    return r;
}

/* ---- building and fetching ---- */

/* Runs argv in cwd, its output on stderr (or nowhere when quiet); the exit
 * status, or -errno. */
static int s_spawn(const char *const *argv, const char *cwd, bool quiet)
{
    pid_t pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0) {
        if (cwd && chdir(cwd) < 0)
            _exit(127);
        int fd = quiet ? open("/dev/null", O_WRONLY | O_CLOEXEC) : STDERR_FILENO;
        if (fd >= 0)
            dup2(fd, STDOUT_FILENO);
        if (quiet && fd >= 0)
            dup2(fd, STDERR_FILENO);
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -errno;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* The first file in dir whose name starts with prefix and ends with
 * suffix, into buf. */
static int s_find(const char *dir, const char *prefix, const char *suffix, char *buf, size_t len)
{
    DIR *d = opendir(dir);
    if (!d)
        return -errno;
    int r = -ENOENT;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t nl = strlen(de->d_name), sl = strlen(suffix);
        if (strncmp(de->d_name, prefix, strlen(prefix)) == 0 && nl > sl &&
            strcmp(de->d_name + nl - sl, suffix) == 0) {
            snprintf(buf, len, "%s/%s", dir, de->d_name);
            r = 0;
            break;
        }
    }
    closedir(d);
    return r;
}

static int s_copy(const char *from, const char *to)
{
    _cleanup_close_ int in = open(from, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return -errno;
    _cleanup_close_ int out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0)
        return -errno;
    char buf[65536];
    ssize_t got;
    while ((got = read(in, buf, sizeof(buf))) > 0)
        for (ssize_t off = 0; off < got;) {
            ssize_t w = write(out, buf + off, (size_t)(got - off));
            if (w < 0)
                return -errno;
            off += w;
        }
    return got < 0 ? -errno : 0;
}

/* deb:PACKAGE: apt-get download, dpkg-deb -x, then boot/vmlinuz-*, its
 * config-* and System.map-* into a cache entry of source kind deb. */
/* Installs the staging dir stage as the cache entry of m and points k at
 * it. Under --force the new entry replaces the old in one step: the key is
 * never without one, and a failed rebuild leaves the old as it was. The
 * staging dir is removed on failure. */
static int s_install(const kt_kernels_opts_t *o, kt_kres_t *k, const char *stage,
                     const kt_kcache_meta_t *m, char *err, size_t err_len)
{
    kt_kcache_entry_t *e = calloc(1, sizeof(*e));
    if (!e) {
        kt_kcache_rm_rf(stage);
        return -ENOMEM;
    }
    int r = o->force ? kt_kcache_replace(o->cache_root, stage, m, e, err, err_len)
                     : kt_kcache_install(o->cache_root, stage, m, e, err, err_len);
    if (r < 0) {
        kt_kcache_rm_rf(stage);
        free(e);
        return r;
    }
    char spec[KT_KSPEC_MAX], label[64];
    snprintf(spec, sizeof(spec), "%s", k->spec);
    snprintf(label, sizeof(label), "%s", k->label);
    s_from_entry(e, spec, label, k);
    free(e);
    return 0;
}

static int s_fetch_deb(const kt_kernels_opts_t *o, kt_kres_t *k, char *err, size_t err_len)
{
    char work[PATH_MAX], stage[PATH_MAX] = "";
    _cleanup_close_ int work_lock = -1, stage_lock = -1;
    int r = kt_kcache_staging(o->cache_root, work, sizeof(work), &work_lock, err, err_len);
    if (r < 0)
        return r;
    char pkg[KT_KSPEC_MAX];
    snprintf(pkg, sizeof(pkg), "%s", k->repo);
    /* A meta package: the versioned image package it depends on (the name
     * was checked as a Debian package name: no quote can be in it). */
    if (strncmp(pkg, "linux-image-", 12) != 0 || pkg[12] < '0' || pkg[12] > '9') {
        char cmd[512];
        snprintf(cmd, sizeof(cmd),
                 "apt-cache depends '%.200s' 2>/dev/null | awk '/Depends: linux-image-[0-9]/ "
                 "{print $2; exit}'",
                 pkg);
        FILE *p = popen(cmd, "re");
        char line[256] = "";
        if (p) {
            if (!fgets(line, sizeof(line), p))
                line[0] = '\0';
            pclose(p);
        }
        line[strcspn(line, "\n")] = '\0';
        if (line[0])
            snprintf(pkg, sizeof(pkg), "%s", line);
    }
    if (!o->quiet)
        fprintf(stderr, "kernel %s: apt-get download %s\n", k->spec, pkg);
    const char *dl[] = {"apt-get", "download", "-q", pkg, NULL};
    r = s_spawn(dl, work, o->quiet);
    char deb[PATH_MAX], unpacked[PATH_MAX + 16], boot[PATH_MAX + 32];
    if (r == 0 && (r = s_find(work, "", ".deb", deb, sizeof(deb))) < 0)
        r = 1;
    if (r != 0) {
        kt_kcache_rm_rf(work);
        return s_fail(err, err_len, r < 0 ? r : -EIO,
                      "kernel spec '%s': `apt-get download %s` failed (%s)", k->spec, pkg,
                      r < 0 ? strerror(-r) : "see its output above");
    }
    snprintf(unpacked, sizeof(unpacked), "%s/unpacked", work);
    const char *x[] = {"dpkg-deb", "-x", deb, unpacked, NULL};
    r = s_spawn(x, NULL, o->quiet);
    snprintf(boot, sizeof(boot), "%s/boot", unpacked);
    char vmlinuz[PATH_MAX + 64], config[PATH_MAX + 192], smap[PATH_MAX + 192];
    if (r != 0 || s_find(boot, "vmlinuz-", "", vmlinuz, sizeof(vmlinuz)) < 0) {
        kt_kcache_rm_rf(work);
        return s_fail(err, err_len, -EIO, "kernel spec '%s': no boot/vmlinuz-* in %s", k->spec,
                      pkg);
    }
    kt_kcache_meta_t m = {0};
    const char *rel = strrchr(vmlinuz, '/') + 1 + strlen("vmlinuz-");
    snprintf(m.version, sizeof(m.version), "%s", rel);
    m.source = KT_KCACHE_DEB;
    snprintf(m.source_loc, sizeof(m.source_loc), "%s", pkg);
    r = kt_kcache_key(KT_KCACHE_DEB, m.version, NULL, NULL, m.key, sizeof(m.key));
    if (r == 0)
        r = kt_kcache_staging(o->cache_root, stage, sizeof(stage), &stage_lock, err, err_len);
    char dst[PATH_MAX + 16];
    if (r == 0) {
        snprintf(dst, sizeof(dst), "%s/bzImage", stage);
        r = s_copy(vmlinuz, dst);
    }
    snprintf(config, sizeof(config), "%s/config-%s", boot, m.version);
    if (r == 0 && access(config, R_OK) == 0) {
        snprintf(dst, sizeof(dst), "%s/config", stage);
        r = s_copy(config, dst);
        if (r == 0)
            r = kt_hash_sha256_file(dst, m.config_hash);
    }
    snprintf(smap, sizeof(smap), "%s/System.map-%s", boot, m.version);
    if (r == 0 && access(smap, R_OK) == 0) {
        snprintf(dst, sizeof(dst), "%s/System.map", stage);
        r = s_copy(smap, dst);
    }
    kt_kcache_rm_rf(work);
    if (r < 0) {
        if (stage[0])
            kt_kcache_rm_rf(stage);
        return s_fail(err, err_len, r, "kernel spec '%s': cannot stage %s: %s", k->spec, pkg,
                      strerror(-r));
    }
    return s_install(o, k, stage, &m, err, err_len);
}

#ifdef KT_HAVE_KBUILD
/* The tree of commit k->oid into dir: straight from a repository on this
 * machine, or cloned from a remote one first. */
static int s_checkout(const kt_kernels_opts_t *o, kt_kres_t *k, const char *dir, char *err,
                      size_t err_len)
{
    pthread_once(&s_git_once, s_git_init);
    _cleanup_(s_repo_freep) git_repository *repo = NULL;
    char local[PATH_MAX];
    int g;
    if (s_local_url(o, k->repo, local, sizeof(local)) || k->repo[0] == '/') {
        if (k->repo[0] == '/')
            snprintf(local, sizeof(local), "%s", k->repo);
        g = git_repository_open_ext(&repo, local, GIT_REPOSITORY_OPEN_NO_SEARCH, NULL);
    } else {
        char clone[PATH_MAX + 16];
        snprintf(clone, sizeof(clone), "%s/.git-clone", dir);
        git_clone_options co = GIT_CLONE_OPTIONS_INIT;
        co.bare = 1;
        if (!o->quiet)
            fprintf(stderr, "kernel %s: cloning %s\n", k->spec, k->repo);
        g = git_clone(&repo, k->repo, clone, &co);
    }
    if (g < 0)
        return s_fail(err, err_len, -EIO, "kernel spec '%s': cannot open '%s': %s", k->spec,
                      k->repo, s_git_msg());
    git_oid oid;
    _cleanup_(s_object_freep) git_object *commit = NULL;
    /* A cached entry (a --force rebuild of a key or version spec) records
     * the short hash only. */
    const char *id = k->oid[0] ? k->oid : k->commit;
    if (git_oid_fromstrn(&oid, id, strlen(id)) < 0 ||
        git_object_lookup_prefix(&commit, repo, &oid, strlen(id), GIT_OBJECT_COMMIT) < 0)
        return s_fail(err, err_len, -ENOENT, "kernel spec '%s': commit %s not in '%s': %s",
                      k->spec, id, k->repo, s_git_msg());
    git_checkout_options opts = GIT_CHECKOUT_OPTIONS_INIT;
    opts.checkout_strategy = GIT_CHECKOUT_FORCE;
    opts.target_directory = dir;
    if (!o->quiet)
        fprintf(stderr, "kernel %s: checking out %s (%s) into '%s'\n", k->spec, k->ref, k->commit,
                dir);
    if (git_checkout_tree(repo, commit, &opts) < 0)
        return s_fail(err, err_len, -EIO, "kernel spec '%s': cannot check out %s: %s", k->spec,
                      k->commit, s_git_msg());
    return 0;
}
#endif

int kt_kernels_build(const kt_kernels_opts_t *o, kt_kres_t *k, char *err, size_t err_len)
{
    /* --force rebuilds a cached kernel whose source is known (a tree or a
     * git ref); one named only by version or key has nothing to build from. */
    bool rebuild = o->force && k->need == KT_KRES_READY && k->cached && k->repo[0] &&
                   (k->source == KT_KCACHE_GIT || k->source == KT_KCACHE_LOCAL ||
                    k->source == KT_KCACHE_TARBALL);
    if (k->need == KT_KRES_READY && !rebuild)
        return 0;
    if (!o->cache_root)
        return s_fail(err, err_len, -EINVAL, "kernel spec '%s': no kernel cache", k->spec);
    if (k->need == KT_KRES_FETCH)
        return s_fetch_deb(o, k, err, err_len);
#ifndef KT_HAVE_KBUILD
    return s_fail(err, err_len, -ENOTSUP,
                  "kernel spec '%s': needs a build (%s %s), but ktstr-coord was built without "
                  "the kernel build pipeline",
                  k->spec, k->ref[0] ? k->ref : k->repo, k->commit);
#else
    char src[PATH_MAX] = "", out[PATH_MAX];
    _cleanup_close_ int src_lock = -1, out_lock = -1;
    int r;
    if (k->source == KT_KCACHE_GIT) {
        if ((r = kt_kcache_staging(o->cache_root, src, sizeof(src), &src_lock, err, err_len)) <
            0)
            return r;
        if ((r = s_checkout(o, k, src, err, err_len)) < 0) {
            kt_kcache_rm_rf(src);
            return r;
        }
    }
    if ((r = kt_kcache_staging(o->cache_root, out, sizeof(out), &out_lock, err, err_len)) < 0) {
        if (src[0])
            kt_kcache_rm_rf(src);
        return r;
    }
    kt_kbuild_opts_t bo = {.source_dir = src[0] ? src : k->repo, .out_dir = out,
                           .kconfig = o->kconfig, .jobs = o->jobs, .quiet = o->quiet};
    kt_kbuild_result_t res = {0};
    if (!o->quiet)
        fprintf(stderr, "kernel %s: building %s%s%s into '%s'\n", k->spec, bo.source_dir,
                k->commit[0] ? " at " : "", k->commit, out);
    r = kt_kbuild_run(&bo, &res, err, err_len);
    if (src[0])
        kt_kcache_rm_rf(src);
    if (r < 0) {
        kt_kcache_rm_rf(out);
        return r;
    }
    snprintf(k->version, sizeof(k->version), "%s", res.version);
    if (!k->key[0]) {
        /* A dirty tree (or one outside git): this run only; its lock
         * goes with it, so the sweep leaves it alone until then. */
        snprintf(k->tmp_dir, sizeof(k->tmp_dir), "%s", out);
        k->tmp_lock = TAKE_FD(out_lock);
        if (snprintf(k->path, sizeof(k->path), "%.4000s/bzImage", out) >= (int)sizeof(k->path))
            return s_fail(err, err_len, -ENAMETOOLONG, "'%s': path too long", out);
        k->need = KT_KRES_READY;
        if (!o->quiet)
            fprintf(stderr,
                    "kernel %s: %s tree: built in '%s' for this run only, not cached\n",
                    k->spec, k->commit[0] ? "dirty" : "untracked", out);
        return 0;
    }
    kt_kcache_meta_t m = {0};
    snprintf(m.key, sizeof(m.key), "%s", k->key);
    snprintf(m.version, sizeof(m.version), "%s", res.version);
    m.source = k->source;
    snprintf(m.source_loc, sizeof(m.source_loc), "%s", k->repo);
    snprintf(m.ref, sizeof(m.ref), "%s", k->source == KT_KCACHE_GIT ? k->ref : "");
    snprintf(m.commit, sizeof(m.commit), "%s", k->commit);
    char p[PATH_MAX + 16];
    snprintf(p, sizeof(p), "%s/config", out);
    if (kt_hash_sha256_file(p, m.config_hash) < 0)
        m.config_hash[0] = '\0';
    if ((r = kt_kernels_kconfig_hash(o->kconfig, m.kconfig_hash, err, err_len)) < 0) {
        kt_kcache_rm_rf(out);
        return r;
    }
    for (unsigned i = 0; i < res.n_sched_progs && i < KT_KCACHE_MAX_PROGS; i++)
        snprintf(m.sched_progs[m.n_sched_progs++], sizeof(m.sched_progs[0]), "%s",
                 res.sched_progs[i]);
    if ((r = s_install(o, k, out, &m, err, err_len)) < 0)
        return r;
    if (!o->quiet)
        fprintf(stderr, "kernel %s: installed as %s\n", k->spec, k->key);
    return 0;
#endif
}

int kt_kernels_to_coord(const kt_kres_t *k, kt_coord_kernel_t *ret, char *err, size_t err_len)
{
    if (k->need != KT_KRES_READY)
        return s_fail(err, err_len, -EINVAL, "kernel spec '%s': not built", k->spec);
    kt_coord_kernel_t ck;
    char why[1024];
    int r = kt_kernel_resolve(k->path, k->label, &ck, NULL, why, sizeof(why));
    if (r < 0)
        return s_fail(err, err_len, r, "kernel spec '%s': %s", k->spec, why);
    /* The commit the cache (or the source tree) recorded: a cache entry is
     * in no git tree. */
    if (k->commit[0])
        snprintf(ck.commit, sizeof(ck.commit), "%s", k->commit);
    *ret = ck;
    return 0;
}
