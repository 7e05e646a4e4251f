/* Kernel specs resolved to kernels: what each spec of kt_kspec.h expands to
 * (a range to several), with label, version, commit, cache key and whether
 * the cache holds it, without building anything (kt_kernels_resolve); then
 * the kernels that need one built or fetched into the cache on this host
 * (kt_kernels_build), so that every kernel of a run is a bzImage on the
 * coordinator before any cell is dispatched. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "kt_coord.h"
#include "kt_kcache.h"
#include "kt_kspec.h"

typedef struct kt_kernels_opts {
    const char *cache_root;  /* kt_kcache_root()'s folder */
    const char *kernel_repo; /* --kernel-repo DIR (ranges and versions over its tags), or NULL */
    const char *kconfig;     /* deploy/ktstr.kconfig: its hash is in the keys of builds */
    const char *base_dir;    /* relative paths resolve here; NULL: the working folder */
    unsigned jobs;           /* make -j for builds; 0: online CPUs */
    bool force;              /* build even when cached */
    bool quiet;              /* no progress lines on stderr */
} kt_kernels_opts_t;

enum kt_kres_build {
    KT_KRES_READY,    /* path is a bzImage */
    KT_KRES_BUILD,    /* a git commit or source dir to build */
    KT_KRES_FETCH,    /* a Debian package to fetch */
};

typedef struct kt_kres {
    char spec[KT_KSPEC_MAX];  /* the spec it came from */
    char label[64];
    char version[64];         /* "" when unknown before a build (a remote ref) */
    char commit[48];          /* short hash, "-dirty"; "" when none */
    char key[KT_KSPEC_KEY_MAX]; /* cache key; "" when it has none (a path, a dirty tree) */
    bool cached;              /* an intact cache entry: path is its bzImage */
    bool stale;               /* cached with another kconfig fragment than ours */
    enum kt_kres_build need;
    char path[4096];          /* READY: the bzImage */
    /* What to build or fetch. */
    enum kt_kcache_source source;
    char repo[4096];          /* git: URL or repository path; local: the source dir; deb: package */
    char ref[KT_KSPEC_REF_MAX];
    char oid[41];             /* the full commit id, "" when not known yet (remote) */
    char tmp_dir[4096];       /* a dirty build's folder: the caller removes it after the run */
    int tmp_lock;             /* with tmp_dir set: its staging lock, the caller closes it after */
} kt_kres_t;

/* The fragment's hash (as the build pipeline computes it); -errno. */
int kt_kernels_kconfig_hash(const char *kconfig, char out[65], char *err, size_t err_len);

/* The default fragment: $KTSTR_KCONFIG, else deploy/ktstr.kconfig of the
 * source tree this was built from. */
const char *kt_kernels_default_kconfig(void);

/* Appends what spec (with an optional label; a range numbers nothing, its
 * members are labelled by version) expands to onto *v (realloc'd; caller
 * owns), *n counting. Reads the cache, repositories and paths; builds and
 * fetches nothing. -errno with "kernel spec 'SPEC': what" in err. */
int kt_kernels_resolve(const kt_kernels_opts_t *o, const char *spec, const char *label,
                       kt_kres_t **v, unsigned *n, char *err, size_t err_len);

/* Builds (or fetches) k when it is not READY, installs it into the cache
 * (a dirty tree's build stays in k->tmp_dir, uncached, for this run only),
 * and makes k READY with path, version and key set. -ENOTSUP when this
 * binary has no build pipeline. */
int kt_kernels_build(const kt_kernels_opts_t *o, kt_kres_t *k, char *err, size_t err_len);

/* A READY kernel as the run's kernel: the image's version, sha256 and size,
 * label and commit from k. */
int kt_kernels_to_coord(const kt_kres_t *k, kt_coord_kernel_t *ret, char *err, size_t err_len);

/* True when this binary was built with the kernel build pipeline. */
bool kt_kernels_can_build(void);
