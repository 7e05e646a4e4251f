/* kt-kcache-seed: installs a bzImage into the kernel cache
 * ($KTSTR_CACHE_DIR) through kt_kcache_install, as a build would, so the
 * integration tests can resolve and run cached kernels without building
 * one. Prints the key.
 *   kt-kcache-seed BZIMAGE tarball|git|local|deb NAME COMMIT KCONFIG [BUILT_AT]
 * NAME: the version (tarball, deb) or ref (git); COMMIT "-" for none. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kt_cleanup.h"
#include "kt_kcache.h"
#include "kt_kernel.h"
#include "kt_kernels.h"

int main(int argc, char **argv)
{
    if (argc < 6 || argc > 7) {
        fprintf(stderr, "usage: kt-kcache-seed BZIMAGE tarball|git|local|deb NAME COMMIT KCONFIG "
                        "[BUILT_AT]\n");
        return 2;
    }
    static const char *const kinds[] = {"tarball", "git", "local", "deb"};
    unsigned kind = 0;
    while (kind < 4 && strcmp(argv[2], kinds[kind]) != 0)
        kind++;
    if (kind == 4) {
        fprintf(stderr, "kt-kcache-seed: unknown kind '%s'\n", argv[2]);
        return 2;
    }
    char root[PATH_MAX], err[1024], staging[PATH_MAX], dst[PATH_MAX + 16];
    _cleanup_close_ int lock = -1;
    if (kt_kcache_root(root, sizeof(root), err, sizeof(err)) < 0 ||
        kt_kcache_staging(root, staging, sizeof(staging), &lock, err, sizeof(err)) < 0) {
        fprintf(stderr, "kt-kcache-seed: %s\n", err);
        return 1;
    }
    kt_kcache_meta_t m = {0};
    m.source = (enum kt_kcache_source)kind;
    const char *commit = strcmp(argv[4], "-") ? argv[4] : "";
    snprintf(m.commit, sizeof(m.commit), "%s", commit);
    snprintf(m.source_loc, sizeof(m.source_loc), "%s", argv[1]);
    if (kind == 1)
        snprintf(m.ref, sizeof(m.ref), "%s", argv[3]);
    if (kind != 3 && kt_kernels_kconfig_hash(argv[5], m.kconfig_hash, err, sizeof(err)) < 0) {
        fprintf(stderr, "kt-kcache-seed: %s\n", err);
        return 1;
    }
    if (argc == 7)
        snprintf(m.built_at, sizeof(m.built_at), "%s", argv[6]);
    int r = kt_kernel_image_version(argv[1], m.version, sizeof(m.version));
    if (r < 0) {
        fprintf(stderr, "kt-kcache-seed: '%s': not a bzImage\n", argv[1]);
        return 1;
    }
    r = kt_kcache_key(m.source, argv[3], commit, m.kconfig_hash, m.key, sizeof(m.key));
    if (r < 0) {
        fprintf(stderr, "kt-kcache-seed: no key for %s %s %s\n", argv[2], argv[3], argv[4]);
        return 1;
    }
    snprintf(dst, sizeof(dst), "%s/bzImage", staging);
    char cmd[3 * PATH_MAX];
    snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", argv[1], dst);
    if (system(cmd) != 0) {
        fprintf(stderr, "kt-kcache-seed: cannot copy '%s'\n", argv[1]);
        return 1;
    }
    r = kt_kcache_install(root, staging, &m, NULL, err, sizeof(err));
    if (r < 0) {
        fprintf(stderr, "kt-kcache-seed: %s\n", err);
        return 1;
    }
    printf("%s\n", m.key);
    return 0;
}
