/* Kernel specs: the text a user gives to --kernel or a gauntlet's kernels:
 * list, parsed (no I/O) into what it names. Tried in this order:
 *
 *   git+URL#REF     a git repository (file://, a local path, https://...)
 *                   at a branch, tag or commit
 *   A..B            an inclusive range of release versions (v optional on
 *                   either end): tags of --kernel-repo, or cached kernels
 *   PATH            has a '/' or starts with '.' or '~': a bzImage file, a
 *                   build dir or a source dir
 *   VERSION         6.12.117, 6.12 (the newest cached 6.12.x), 6.13-rc2;
 *                   a leading v is allowed
 *   KEY             a cache key: {version}-tarball-{arch}-kc{h},
 *                   {ref}-git-{sha7}-{arch}-kc{h}, local-{sha7}-{arch}-kc{h},
 *                   {version}-deb-{arch}
 *   deb:PACKAGE     a Debian kernel image package, fetched with apt
 *
 * Every failure says which spec and what is wrong with it. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define KT_KSPEC_MAX 4096 /* the longest spec, with its NUL */
#define KT_KSPEC_REF_MAX 256
#define KT_KSPEC_KEY_MAX 128

enum kt_kspec_kind {
    KT_KSPEC_GIT,
    KT_KSPEC_RANGE,
    KT_KSPEC_PATH,
    KT_KSPEC_VERSION,
    KT_KSPEC_KEY,
    KT_KSPEC_DEB,
};

/* A release: major.minor[.patch][-rcN]. has_patch false for "6.12" (the
 * newest 6.12.x when looking one up; 6.12.0 when comparing). rc 0: not a
 * release candidate. */
typedef struct kt_kver {
    unsigned major, minor, patch, rc;
    bool has_patch;
} kt_kver_t;

typedef struct kt_kspec {
    enum kt_kspec_kind kind;
    char text[KT_KSPEC_MAX];     /* the spec as given */
    char url[KT_KSPEC_MAX];      /* GIT: the URL; PATH: the path; DEB: the package;
                                  * KEY: the key */
    char ref[KT_KSPEC_REF_MAX];  /* GIT: the ref */
    kt_kver_t lo, hi;            /* RANGE: both ends; VERSION: lo */
} kt_kspec_t;

/* Parses text into *ret. -EINVAL (or -ENAMETOOLONG for a spec longer than
 * KT_KSPEC_MAX - 1) with "kernel spec 'TEXT': what" in err; ret untouched
 * on failure. */
int kt_kspec_parse(const char *text, kt_kspec_t *ret, char *err, size_t err_len);

/* A release version: [v]X.Y[.Z][-rcN], nothing after it. -EINVAL if not. */
int kt_kver_parse(const char *text, kt_kver_t *ret);
/* The leading release of a kernelrelease string ("6.12.117-ktstr+",
 * "6.13.0-rc2"): what follows it must be empty or start with '-', '+' or
 * '_'. -EINVAL if it does not start with one. */
int kt_kver_parse_prefix(const char *text, kt_kver_t *ret);
/* <0, 0, >0 as a is older, the same, newer than b: -rcN before the release,
 * a missing patch reads as 0. */
int kt_kver_cmp(const kt_kver_t *a, const kt_kver_t *b);
/* "6.12.117", "6.13-rc2" (no patch printed when has_patch is false). */
void kt_kver_format(const kt_kver_t *v, char *buf, size_t len);
/* The name of a kind ("git", "range", "path", "version", "key", "deb"). */
const char *kt_kspec_kind_name(enum kt_kspec_kind kind);
/* True when s has the shape of a cache key (as kt_kspec_parse reads one). */
bool kt_kspec_key_valid(const char *s);
