/* Artifact cache by sha256: verified on arrival, renamed into place. */
#include "kt_artifacts.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kt_cleanup.h"

#define S_PART_SUFFIX ".part"
#define S_STALE_PART_SECS 3600

struct kt_artifacts {
    char dir[PATH_MAX];
};

struct kt_artifact_in {
    kt_artifacts_t *cache;
    char sha[KT_HASH_HEX_SIZE];
    char tmp[PATH_MAX];
    int fd;
    uint64_t size;
    uint64_t received;
    kt_hash_t hash;
};

static atomic_uint s_part_counter;

static int s_mkdir_p(const char *path, mode_t mode)
{
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
        return -ENAMETOOLONG;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, mode) < 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(buf, mode) < 0 && errno != EEXIST)
        return -errno;
    struct stat st;
    if (stat(buf, &st) < 0)
        return -errno;
    return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

/* Temporary files of processes that died mid-transfer. */
static void s_sweep_parts(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    time_t now = time(NULL);
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t n = strlen(de->d_name);
        if (de->d_name[0] != '.' || n < sizeof(S_PART_SUFFIX) ||
            strcmp(de->d_name + n - strlen(S_PART_SUFFIX), S_PART_SUFFIX) != 0)
            continue;
        struct stat st;
        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
            S_ISREG(st.st_mode) && now - st.st_mtime > S_STALE_PART_SECS)
            unlinkat(dirfd(d), de->d_name, 0);
    }
    closedir(d);
}

int kt_artifacts_open(const char *cache_dir, kt_artifacts_t **ret)
{
    if (!cache_dir || !*cache_dir)
        return -EINVAL;
    kt_artifacts_t *self = calloc(1, sizeof(*self));
    if (!self)
        return -ENOMEM;
    if (snprintf(self->dir, sizeof(self->dir), "%s/artifacts", cache_dir) >=
        (int)sizeof(self->dir)) {
        free(self);
        return -ENAMETOOLONG;
    }
    int r = s_mkdir_p(self->dir, 0755);
    if (r < 0) {
        free(self);
        return r;
    }
    s_sweep_parts(self->dir);
    *ret = self;
    return 0;
}

void kt_artifacts_destroy(kt_artifacts_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free(*self_p);
    *self_p = NULL;
}

const char *kt_artifacts_dir(const kt_artifacts_t *self)
{
    return self->dir;
}

int kt_artifacts_path(const kt_artifacts_t *self, const char *sha, char *buf, size_t len)
{
    if (!sha || !kt_hash_hex_valid(sha))
        return -EINVAL;
    if (snprintf(buf, len, "%s/%s", self->dir, sha) >= (int)len)
        return -ENAMETOOLONG;
    struct stat st;
    if (stat(buf, &st) < 0)
        return -errno;
    return S_ISREG(st.st_mode) ? 0 : -ENOENT;
}

bool kt_artifacts_has(const kt_artifacts_t *self, const char *sha, uint64_t size)
{
    char path[PATH_MAX];
    if (kt_artifacts_path(self, sha, path, sizeof(path)) < 0)
        return false;
    if (size == 0)
        return true;
    struct stat st;
    return stat(path, &st) == 0 && (uint64_t)st.st_size == size;
}

int kt_artifacts_list(const kt_artifacts_t *self, char (*ret)[KT_HASH_HEX_SIZE], unsigned max,
                      unsigned *ret_n)
{
    DIR *d = opendir(self->dir);
    if (!d)
        return -errno;
    unsigned n = 0;
    struct dirent *de;
    while (n < max && (de = readdir(d))) {
        if (!kt_hash_hex_valid(de->d_name))
            continue;
        memcpy(ret[n++], de->d_name, KT_HASH_HEX_SIZE);
    }
    closedir(d);
    *ret_n = n;
    return 0;
}

int kt_artifacts_verify(const kt_artifacts_t *self, const char *sha)
{
    char path[PATH_MAX], got[KT_HASH_HEX_SIZE];
    int r = kt_artifacts_path(self, sha, path, sizeof(path));
    if (r < 0)
        return r;
    r = kt_hash_sha256_file(path, got);
    if (r < 0)
        return r;
    if (strcmp(got, sha) != 0) {
        unlink(path);
        return -EBADMSG;
    }
    return 0;
}

int kt_artifact_in_begin(kt_artifacts_t *self, const char *sha, uint64_t size,
                         kt_artifact_in_t **ret)
{
    if (!sha || !kt_hash_hex_valid(sha) || size == 0)
        return -EINVAL;
    if (size > KT_ARTIFACT_MAX_BYTES)
        return -EFBIG;
    kt_artifact_in_t *in = calloc(1, sizeof(*in));
    if (!in)
        return -ENOMEM;
    in->cache = self;
    in->size = size;
    in->fd = -1;
    snprintf(in->sha, sizeof(in->sha), "%s", sha);
    unsigned seq = atomic_fetch_add(&s_part_counter, 1);
    if (snprintf(in->tmp, sizeof(in->tmp), "%s/.%s.%d.%u" S_PART_SUFFIX, self->dir, sha,
                 (int)getpid(), seq) >= (int)sizeof(in->tmp)) {
        free(in);
        return -ENAMETOOLONG;
    }
    in->fd = open(in->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (in->fd < 0) {
        int r = -errno;
        free(in);
        return r;
    }
    int r = kt_hash_init(&in->hash);
    if (r < 0) {
        kt_artifact_in_abort(&in);
        return r;
    }
    *ret = in;
    return 0;
}

int kt_artifact_in_write(kt_artifact_in_t *in, uint64_t offset, const void *data, size_t len)
{
    if (offset != in->received)
        return -EPROTO;
    if (len > in->size - in->received)
        return -EFBIG;
    const uint8_t *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t n = write(in->fd, p, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        p += n;
        left -= (size_t)n;
    }
    int r = kt_hash_update(&in->hash, data, len);
    if (r < 0)
        return r;
    in->received += len;
    return 0;
}

uint64_t kt_artifact_in_received(const kt_artifact_in_t *in)
{
    return in->received;
}

uint64_t kt_artifact_in_size(const kt_artifact_in_t *in)
{
    return in->size;
}

const char *kt_artifact_in_sha(const kt_artifact_in_t *in)
{
    return in->sha;
}

int kt_artifact_in_commit(kt_artifact_in_t **in_p, char *why, size_t why_len)
{
    kt_artifact_in_t *in = *in_p;
    char got[KT_HASH_HEX_SIZE], final[PATH_MAX];
    int r;
    if (in->received != in->size) {
        snprintf(why, why_len, "%llu of %llu bytes arrived", (unsigned long long)in->received, (unsigned long long)in->size);
        r = -EBADMSG;
        goto out;
    }
    if ((r = kt_hash_final_hex(&in->hash, got)) < 0) {
        snprintf(why, why_len, "hashing failed");
        goto out;
    }
    if (strcmp(got, in->sha) != 0) {
        snprintf(why, why_len, "sha256 mismatch (the bytes hash to %.12s)", got);
        r = -EBADMSG;
        goto out;
    }
    if (fchmod(in->fd, 0755) < 0 || close(in->fd) < 0) {
        r = -errno;
        in->fd = -1;
        snprintf(why, why_len, "'%s': %s", in->tmp, strerror(-r));
        goto out;
    }
    in->fd = -1;
    if (snprintf(final, sizeof(final), "%s/%s", in->cache->dir, in->sha) >= (int)sizeof(final)) {
        r = -ENAMETOOLONG;
        snprintf(why, why_len, "path too long");
        goto out;
    }
    if (rename(in->tmp, final) < 0) {
        r = -errno;
        snprintf(why, why_len, "rename into '%s': %s", final, strerror(-r));
        goto out;
    }
    in->tmp[0] = '\0';
    r = 0;
out:
    kt_artifact_in_abort(in_p);
    return r;
}

void kt_artifact_in_abort(kt_artifact_in_t **in_p)
{
    if (!in_p || !*in_p)
        return;
    kt_artifact_in_t *in = *in_p;
    if (in->fd >= 0)
        close(in->fd);
    if (in->tmp[0])
        unlink(in->tmp);
    free(in);
    *in_p = NULL;
}
