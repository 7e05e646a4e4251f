/* The kernel cache: ${KTSTR_CACHE_DIR:-$HOME/.cache/ktstr}/kernels/{key}/
 * holds bzImage, vmlinux, config, bin/ (static sched_ext schedulers) and
 * metadata.json (version, source, commit, config and kconfig hashes,
 * built_at, sched_progs, and the sha256 of every file). An entry is built
 * in kernels/.tmp-XXXXXX, its metadata written last, and renamed into
 * place under an flock on kernels/.lock-{key}, so a reader sees a whole
 * entry or none. An entry whose files or metadata do not match is corrupt:
 * reported, never used. Each staging folder is flock'ed (the folder
 * itself) by its maker for as long as it is in use, so a folder left by a
 * crashed build is one nobody holds: kt_kcache_sweep removes those. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kt_kspec.h"

#define KT_KCACHE_ARCH "x86_64"
#define KT_KCACHE_MAX_PROGS 16
#define KT_KCACHE_MAX_FILES 256

enum kt_kcache_source {
    KT_KCACHE_TARBALL,
    KT_KCACHE_GIT,
    KT_KCACHE_LOCAL,
    KT_KCACHE_DEB,
};

typedef struct kt_kcache_meta {
    char key[KT_KSPEC_KEY_MAX];
    char version[64];          /* kernelrelease */
    enum kt_kcache_source source;
    char source_loc[4096];     /* URL or path (deb: the package) */
    char ref[KT_KSPEC_REF_MAX]; /* git ref, "" otherwise */
    char commit[48];           /* short hash, "" when none */
    char config_hash[65];      /* sha256 of the kernel's .config ("" when none) */
    char kconfig_hash[65];     /* sha256 of deploy/ktstr.kconfig ("" for deb) */
    char built_at[32];         /* UTC, 2025-01-31T12:00:00Z; install: now if "" */
    unsigned n_sched_progs;
    char sched_progs[KT_KCACHE_MAX_PROGS][64];
} kt_kcache_meta_t;

typedef struct kt_kcache_entry {
    kt_kcache_meta_t meta;
    char dir[4096];
    char bzimage[4096];
    uint64_t size;             /* bytes of its files */
    bool corrupt;
    char why[512];             /* what is wrong when corrupt */
    bool stale;                /* kconfig_hash differs from the current fragment's */
} kt_kcache_entry_t;

const char *kt_kcache_source_name(enum kt_kcache_source s);

/* The kernels folder of the cache, made (mkdir -p) when missing. */
int kt_kcache_root(char *buf, size_t len, char *err, size_t err_len);

/* A cache key: tarball "{version}-tarball-{arch}-kc{h}", git
 * "{ref}-git-{sha7}-{arch}-kc{h}", local "local-{sha7}-{arch}-kc{h}", deb
 * "{version}-deb-{arch}" (h: the first 8 hex of kconfig_hash). name is the
 * version (tarball, deb) or the ref (git: characters a key cannot hold
 * become '_'). -EINVAL when the result is not a valid key (a dirty commit,
 * a short hash that is not 7 hex). */
int kt_kcache_key(enum kt_kcache_source s, const char *name, const char *commit,
                  const char *kconfig_hash, char *buf, size_t len);

/* A new empty staging folder root/.tmp-XXXXXX, locked while *ret_lock is
 * open: the caller closes it once the folder is installed or removed (or,
 * for a build used uncached, when the run is done with it). -errno. */
int kt_kcache_staging(const char *root, char *buf, size_t len, int *ret_lock, char *err,
                      size_t err_len);

/* Staging folders (root/.tmp-*) that no live process holds: left by a
 * crash. Removes them when rm, else only counts them; returns how
 * many, or -errno. */
int kt_kcache_sweep(const char *root, bool rm, char *err, size_t err_len);

/* Installs staging (which must hold a bzImage) as meta->key: under the
 * key's lock, an intact entry already there wins (staging is removed,
 * returns 1); a corrupt one is moved aside and removed; otherwise every
 * file is hashed, metadata.json written last and staging renamed into
 * place (returns 0). built_at is now unless meta gives one. A dirty commit is refused
 * (-EPERM): a dirty tree is never cached. ret (may be NULL) gets the
 * installed entry. */
int kt_kcache_install(const char *root, const char *staging, const kt_kcache_meta_t *meta,
                      kt_kcache_entry_t *ret, char *err, size_t err_len);

/* As kt_kcache_install, but an entry already there (intact or not) is
 * replaced by staging in one step once staging is complete (a forced
 * rebuild): a failure leaves the old entry as it was. Returns 0. */
int kt_kcache_replace(const char *root, const char *staging, const kt_kcache_meta_t *meta,
                      kt_kcache_entry_t *ret, char *err, size_t err_len);

/* Reads and verifies root/key. -ENOENT when absent; 0 with ret->corrupt
 * set (and why) when it is there but broken; stale set when kconfig_hash
 * (may be NULL) is given and differs. */
int kt_kcache_lookup(const char *root, const char *key, const char *kconfig_hash,
                     kt_kcache_entry_t *ret, char *err, size_t err_len);

/* Every entry, newest built first (corrupt ones last). Caller owns *ret. */
int kt_kcache_list(const char *root, const char *kconfig_hash, kt_kcache_entry_t **ret,
                   unsigned *ret_n, char *err, size_t err_len);

/* Removes root/key under its lock. -ENOENT when absent. */
int kt_kcache_remove(const char *root, const char *key, char *err, size_t err_len);

/* Removes entries: with keep >= 0 all intact entries but the newest keep;
 * with corrupt every corrupt one; with neither, everything. Returns the
 * number removed. */
int kt_kcache_clean(const char *root, int keep, bool corrupt, char *err, size_t err_len);

/* rm -rf path (no symlink followed). */
int kt_kcache_rm_rf(const char *path);
