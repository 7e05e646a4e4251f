/* Shared base images: content hash, builder election, holding and sweeping.
 *
 * Files in dir for one image hash H (P = {dir}/ktstr-lz4-H):
 *   P              the image; only ever appears by rename() of a finished,
 *                  fsync'ed, 0444 temp file, so the name never shows a half
 *                  image. Users hold LOCK_SH on it while their VMs use it.
 *   P.lock         the builder mutex: exists only while someone builds or
 *                  sweeps H. Whoever holds LOCK_EX on it and finds that the
 *                  name still refers to the inode it locked owns H; it
 *                  unlinks the name before it lets go, so a waiter that
 *                  gets a lock on an unlinked inode knows to look again.
 *   P.tmp.XXXXXX   a build in progress (mkostemp, O_EXCL); only the
 *                  builder mutex holder creates one, so any temp seen by
 *                  someone else holding the mutex belongs to a builder that
 *                  died: the sweep removes those without guessing by age.
 *
 * acquire: open P, LOCK_SH, check P still names that inode (a sweep may
 * have removed it meanwhile), check the image (lz4 block walk to the exact
 * end of the file, then the cpio trailer in the last block): done, built=0.
 * Otherwise try LOCK_EX|LOCK_NB on P.lock: won -> look again under the
 * mutex (someone may have just finished), else build into a temp, rename,
 * built=1. Lost -> block on LOCK_SH on that lock file until the builder is
 * done (or dead: the kernel drops a dead process's locks), then start over;
 * after one such wait, block on LOCK_EX instead, so waiters of a dead
 * builder cannot ping-pong. A damaged image at P (truncated, foreign) fails
 * the check and is replaced by the rebuild's rename.
 *
 * sweep: per H, take the mutex without blocking (busy: a build is running,
 * skip H), remove dead temps, and remove P if LOCK_EX|LOCK_NB on it works
 * (nobody holds it) and it was last acquired min_age ago or more. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <lz4.h>

#include "kt_cleanup.h"
#include "kt_hash.h"
#include "kt_image.h"

#define S_STR_(x) #x
#define S_STR(x) S_STR_(x)
/* Part of every image hash: change it when the bytes an image holds for the
 * same entries change (archive layout, compression). */
#define S_FORMAT_TAG "ktstr-image v1 newc lz4-legacy hc" S_STR(KT_LZ4_HC_LEVEL) "\n"
#define S_LOCK_SUFFIX ".lock"
#define S_TMP_INFIX ".tmp."
#define S_MAX_ATTEMPTS 16
#define S_MAX_SWEEP_NAMES (1u << 20)

struct kt_image {
    int fd;
    char *path;
    char hash[KT_HASH_HEX_SIZE];
    uint64_t size;
    bool built;
};

static _Thread_local char s_last_error[512];

const char *kt_image_last_error(void)
{
    return s_last_error;
}

void kt_image_set_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(s_last_error, sizeof(s_last_error), fmt, ap);
    va_end(ap);
}

static int s_hash_archive(const void *cpio, size_t len, char ret_hex[KT_HASH_HEX_SIZE])
{
    kt_hash_t h;
    int r = kt_hash_init(&h);
    if (r >= 0)
        r = kt_hash_update(&h, S_FORMAT_TAG, strlen(S_FORMAT_TAG));
    if (r >= 0)
        r = kt_hash_update(&h, cpio, len);
    if (r >= 0)
        r = kt_hash_final_hex(&h, ret_hex);
    return r;
}

int kt_image_hash(const kt_image_entry_t *entries, size_t n, char ret_hex[65])
{
    _cleanup_free_ void *cpio = NULL;
    size_t len = 0;

    if (!ret_hex)
        return -EINVAL;
    int r = kt_cpio_build(entries, n, &cpio, &len);
    if (r < 0)
        return r;
    return s_hash_archive(cpio, len, ret_hex);
}

static int s_flock(int fd, int op)
{
    for (;;) {
        if (flock(fd, op) == 0)
            return 0;
        if (errno != EINTR)
            return -errno;
    }
}

/* 0 when path still names the inode fd has open; -ESTALE when it was
 * removed or replaced since. */
static int s_fd_matches_path(int fd, const char *path)
{
    struct stat a, b;

    if (fstat(fd, &a) < 0)
        return -errno;
    if (a.st_nlink == 0)
        return -ESTALE;
    if (lstat(path, &b) < 0)
        return errno == ENOENT ? -ESTALE : -errno;
    return a.st_dev == b.st_dev && a.st_ino == b.st_ino ? 0 : -ESTALE;
}

static uint32_t s_get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int s_pread_all(int fd, void *buf, size_t len, uint64_t off)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = pread(fd, (uint8_t *)buf + got, len - got, (off_t)(off + got));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            return -EBADMSG;
        got += (size_t)n;
    }
    return 0;
}

static int s_write_all(int fd, const void *buf, size_t len)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(fd, (const uint8_t *)buf + done, len - done);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        done += (size_t)n;
    }
    return 0;
}

/* The archive ends with the 124-byte TRAILER!!! record (header, name, NUL,
 * padding) and then zeros up to a 512-byte boundary. tail starts at an
 * 8 MiB block boundary of the archive, so 4- and 512-byte alignment hold
 * relative to it. */
static bool s_tail_has_trailer(const uint8_t *tail, size_t len)
{
    if (len < 124 || len % 512 != 0)
        return false;
    size_t lo = len >= 124 + 512 ? len - 124 - 512 : 0;
    for (size_t pos = len - 124;; pos -= 4) {
        if (memcmp(tail + pos, "070701", 6) == 0 &&
            memcmp(tail + pos + 54, "00000000", 8) == 0 &&  /* filesize */
            memcmp(tail + pos + 94, "0000000B", 8) == 0 &&  /* namesize */
            memcmp(tail + pos + 110, "TRAILER!!!\0", 11) == 0) {
            for (size_t i = pos + 121; i < len; i++)
                if (tail[i] != 0)
                    return false;
            return true;
        }
        if (pos < lo + 4)
            return false;
    }
}

static int s_decompress_block(int fd, uint64_t off, uint32_t csize, uint8_t *cbuf, uint8_t *dst,
                              size_t *ret_len)
{
    int r = s_pread_all(fd, cbuf, csize, off);
    if (r < 0)
        return r;
    int d = LZ4_decompress_safe((const char *)cbuf, (char *)dst, (int)csize, KT_LZ4_LEGACY_BLOCK);
    if (d <= 0)
        return -EBADMSG;
    *ret_len = (size_t)d;
    return 0;
}

/* Cheap completeness check of an image file: the lz4 blocks must add up to
 * exactly the file size, and the archive must end with its trailer (this
 * catches a file cut at a block boundary too). It reads the block headers
 * and decompresses at most the last two blocks. */
static int s_validate(int fd, uint64_t size, const char *path)
{
    const size_t bound = (size_t)LZ4_compressBound(KT_LZ4_LEGACY_BLOCK);
    const uint64_t max_blocks = KT_IMAGE_MAX_BYTES / KT_LZ4_LEGACY_BLOCK;
    _cleanup_free_ uint8_t *cbuf = NULL;
    _cleanup_free_ uint8_t *tail = NULL;
    uint64_t last_off = 0, prev_off = 0, off = 4, nblocks = 0;
    uint32_t last_len = 0, prev_len = 0;
    uint8_t hdr[4];
    int r;

    if (size < 8 || size > 4 + max_blocks * (4 + bound)) {
        kt_image_set_error("image '%s': size %llu is not that of an image", path,
                           (unsigned long long)size);
        return -EBADMSG;
    }
    r = s_pread_all(fd, hdr, 4, 0);
    if (r < 0 || s_get_le32(hdr) != KT_LZ4_LEGACY_MAGIC) {
        kt_image_set_error("image '%s': no lz4 legacy magic", path);
        return r < 0 && r != -EBADMSG ? r : -EBADMSG;
    }
    while (off < size) {
        uint32_t csize;
        if (size - off < 4 || nblocks >= max_blocks)
            goto bad_block;
        r = s_pread_all(fd, hdr, 4, off);
        if (r == -EBADMSG)
            goto bad_block;
        if (r < 0)
            return r;
        csize = s_get_le32(hdr);
        if (csize == 0 || csize > bound || csize > size - off - 4)
            goto bad_block;
        prev_off = last_off;
        prev_len = last_len;
        last_off = off + 4;
        last_len = csize;
        off += 4 + (uint64_t)csize;
        nblocks++;
    }
    if (nblocks == 0)
        goto bad_block;

    cbuf = malloc(bound);
    tail = malloc(2 * (size_t)KT_LZ4_LEGACY_BLOCK);
    if (!cbuf || !tail)
        return -ENOMEM;
    size_t dlast = 0, dprev = 0;
    r = s_decompress_block(fd, last_off, last_len, cbuf, tail + KT_LZ4_LEGACY_BLOCK, &dlast);
    if (r < 0)
        goto bad_data;
    const uint8_t *t = tail + KT_LZ4_LEGACY_BLOCK;
    size_t tlen = dlast;
    if (dlast < 1024 && nblocks > 1) {
        /* The trailer may straddle the last two blocks. */
        r = s_decompress_block(fd, prev_off, prev_len, cbuf, tail, &dprev);
        if (r < 0 || dprev != KT_LZ4_LEGACY_BLOCK)
            goto bad_data;
        t = tail;
        tlen = dprev + dlast;
    }
    if (!s_tail_has_trailer(t, tlen)) {
        kt_image_set_error("image '%s': archive does not end with its cpio trailer (cut short?)",
                           path);
        return -EBADMSG;
    }
    return 0;

bad_block:
    kt_image_set_error("image '%s': lz4 block at offset %llu runs past the end or is malformed "
                       "(half-written image?)",
                       path, (unsigned long long)off);
    return -EBADMSG;
bad_data:
    if (r < 0 && r != -EBADMSG)
        return r;
    kt_image_set_error("image '%s': last lz4 blocks do not decompress", path);
    return -EBADMSG;
}

/* Opens and share-locks a ready image. -ENOENT: none; -EBADMSG: something
 * unusable is there (rebuild); -ESTALE: it went away meanwhile (retry). */
static int s_open_ready(const char *path, int *ret_fd, uint64_t *ret_size)
{
    _cleanup_close_ int fd = -1;
    struct stat st;
    int r;

    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        r = -errno;
        if (r == -ENOENT)
            return r;
        if (r == -ELOOP) {
            kt_image_set_error("image '%s' is a symlink", path);
            return -EBADMSG;
        }
        kt_image_set_error("cannot open image '%s': %s", path, strerror(-r));
        return r;
    }
    r = s_flock(fd, LOCK_SH);
    if (r < 0) {
        kt_image_set_error("cannot lock image '%s': %s", path, strerror(-r));
        return r;
    }
    r = s_fd_matches_path(fd, path);
    if (r < 0)
        return r;
    if (fstat(fd, &st) < 0)
        return -errno;
    if (!S_ISREG(st.st_mode)) {
        kt_image_set_error("image '%s' is not a regular file", path);
        return -EBADMSG;
    }
    if (st.st_uid != geteuid() && st.st_uid != 0) {
        kt_image_set_error("image '%s' belongs to uid %u, not to us or root; refusing it", path,
                           (unsigned)st.st_uid);
        return -EPERM;
    }
    if (st.st_mode & (S_IWGRP | S_IWOTH)) {
        kt_image_set_error("image '%s' is writable by group or others; refusing it", path);
        return -EPERM;
    }
    r = s_validate(fd, (uint64_t)st.st_size, path);
    if (r < 0)
        return r;
    *ret_fd = TAKE_FD(fd);
    *ret_size = (uint64_t)st.st_size;
    return 0;
}

/* Builder mutex on lockpath. op is LOCK_EX, LOCK_EX|LOCK_NB or LOCK_SH.
 * -EAGAIN (only with LOCK_NB): busy, and *ret_fd is still set so the caller
 * can wait on the same inode; -ESTALE: the lock file was removed under us. */
static int s_lock_builder(const char *lockpath, int op, int *ret_fd)
{
    _cleanup_close_ int fd = -1;
    int r;

    fd = open(lockpath, O_RDONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK, 0644);
    if (fd < 0) {
        r = -errno;
        kt_image_set_error("cannot open lock file '%s': %s", lockpath, strerror(-r));
        return r;
    }
    r = s_flock(fd, op);
    if (r == -EWOULDBLOCK) {
        *ret_fd = TAKE_FD(fd);
        return -EAGAIN;
    }
    if (r < 0) {
        kt_image_set_error("cannot lock '%s': %s", lockpath, strerror(-r));
        return r;
    }
    if (op & LOCK_EX) {
        r = s_fd_matches_path(fd, lockpath);
        if (r < 0)
            return r;
    }
    *ret_fd = TAKE_FD(fd);
    return 0;
}

/* Removing the name while still holding LOCK_EX is what tells waiters on
 * this inode that it is dead (see s_fd_matches_path). */
static void s_unlock_builder(const char *lockpath, int *fd)
{
    if (*fd < 0)
        return;
    (void)unlink(lockpath);
    close(*fd);
    *fd = -1;
}

static int s_build(const char *path, const void *cpio, size_t cpio_len, int *ret_fd,
                   uint64_t *ret_size)
{
    _cleanup_free_ void *z = NULL;
    _cleanup_free_ char *tmp = NULL;
    _cleanup_close_ int fd = -1;
    size_t zlen = 0;
    int r;

    r = kt_lz4_legacy_compress(cpio, cpio_len, &z, &zlen);
    if (r < 0)
        return r;
    if (asprintf(&tmp, "%s" S_TMP_INFIX "XXXXXX", path) < 0)
        return -ENOMEM;
    fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        r = -errno;
        kt_image_set_error("cannot create temp image '%s': %s", tmp, strerror(-r));
        return r;
    }
    r = s_write_all(fd, z, zlen);
    if (r < 0) {
        kt_image_set_error("writing temp image '%s': %s", tmp, strerror(-r));
        goto fail;
    }
    if (fchmod(fd, 0444) < 0 || fsync(fd) < 0) {
        r = -errno;
        kt_image_set_error("finishing temp image '%s': %s", tmp, strerror(-r));
        goto fail;
    }
    r = s_flock(fd, LOCK_SH);
    if (r < 0)
        goto fail;
    if (rename(tmp, path) < 0) {
        r = -errno;
        kt_image_set_error("cannot rename '%s' to '%s': %s", tmp, path, strerror(-r));
        goto fail;
    }
    *ret_fd = TAKE_FD(fd);
    *ret_size = zlen;
    return 0;

fail:
    (void)unlink(tmp);
    return r;
}

static int s_image_new(int *fd, const char *path, const char *hash, uint64_t size, bool built,
                       kt_image_t **ret)
{
    kt_image_t *img = calloc(1, sizeof(*img));
    if (!img)
        return -ENOMEM;
    img->path = strdup(path);
    if (!img->path) {
        free(img);
        return -ENOMEM;
    }
    memcpy(img->hash, hash, KT_HASH_HEX_SIZE);
    img->size = size;
    img->built = built;
    img->fd = TAKE_FD(*fd);
    *ret = img;
    return 0;
}

static int s_check_dir(const char *dir)
{
    if (!*dir || strlen(dir) > 4000) {
        kt_image_set_error("image dir '%s' is empty or too long", dir);
        return -EINVAL;
    }
    return 0;
}

int kt_image_acquire(const char *dir, const kt_image_entry_t *entries, size_t n, kt_image_t **ret)
{
    _cleanup_free_ void *cpio = NULL;
    _cleanup_free_ char *path = NULL;
    _cleanup_free_ char *lockpath = NULL;
    char hash[KT_HASH_HEX_SIZE];
    size_t cpio_len = 0;
    bool waited = false;
    int r;

    if (!ret)
        return -EINVAL;
    if (!dir)
        dir = KT_IMAGE_DEFAULT_DIR;
    r = s_check_dir(dir);
    if (r < 0)
        return r;
    /* Hash the very bytes we would pack, so the name always matches the
     * content even if a host file changes between hashing and building. */
    r = kt_cpio_build(entries, n, &cpio, &cpio_len);
    if (r < 0)
        return r;
    r = s_hash_archive(cpio, cpio_len, hash);
    if (r < 0)
        return r;
    if (asprintf(&path, "%s/" KT_IMAGE_PREFIX "%s", dir, hash) < 0)
        return -ENOMEM;
    if (asprintf(&lockpath, "%s" S_LOCK_SUFFIX, path) < 0)
        return -ENOMEM;

    for (int attempt = 0; attempt < S_MAX_ATTEMPTS; attempt++) {
        _cleanup_close_ int fd = -1;
        int lfd = -1;
        uint64_t size = 0;

        r = s_open_ready(path, &fd, &size);
        if (r == 0) {
            /* The sweep ages images from their last use. */
            (void)futimens(fd, NULL);
            return s_image_new(&fd, path, hash, size, false, ret);
        }
        if (r == -ESTALE)
            continue;
        if (r != -ENOENT && r != -EBADMSG)
            return r;

        r = s_lock_builder(lockpath, waited ? LOCK_EX : LOCK_EX | LOCK_NB, &lfd);
        if (r == -EAGAIN) {
            /* Someone is building: wait until they are done (or dead). */
            int w = s_flock(lfd, LOCK_SH);
            close(lfd);
            if (w < 0) {
                kt_image_set_error("waiting on '%s': %s", lockpath, strerror(-w));
                return w;
            }
            waited = true;
            continue;
        }
        if (r == -ESTALE)
            continue;
        if (r < 0)
            return r;

        r = s_open_ready(path, &fd, &size);
        if (r == 0) {
            s_unlock_builder(lockpath, &lfd);
            (void)futimens(fd, NULL);
            return s_image_new(&fd, path, hash, size, false, ret);
        }
        if (r == -ESTALE) {
            s_unlock_builder(lockpath, &lfd);
            continue;
        }
        if (r != -ENOENT && r != -EBADMSG) {
            s_unlock_builder(lockpath, &lfd);
            return r;
        }
        r = s_build(path, cpio, cpio_len, &fd, &size);
        s_unlock_builder(lockpath, &lfd);
        if (r < 0)
            return r;
        return s_image_new(&fd, path, hash, size, true, ret);
    }
    kt_image_set_error("image '%s' kept disappearing or changing over %d attempts", path,
                       S_MAX_ATTEMPTS);
    return -EAGAIN;
}

const char *kt_image_path(const kt_image_t *img)
{
    return img ? img->path : NULL;
}

const char *kt_image_hash_hex(const kt_image_t *img)
{
    return img ? img->hash : NULL;
}

bool kt_image_built(const kt_image_t *img)
{
    return img && img->built;
}

uint64_t kt_image_size(const kt_image_t *img)
{
    return img ? img->size : 0;
}

void kt_image_release(kt_image_t **img_p)
{
    if (!img_p || !*img_p)
        return;
    kt_image_t *img = *img_p;
    if (img->fd >= 0)
        close(img->fd);
    free(img->path);
    free(img);
    *img_p = NULL;
}

/* What a directory entry is to the sweep: an image, a lock or a temp of
 * hash H; anything else with our prefix is left alone. */
enum s_kind { S_KIND_NONE, S_KIND_IMAGE, S_KIND_LOCK, S_KIND_TEMP };

static enum s_kind s_classify(const char *name, char ret_hash[KT_HASH_HEX_SIZE])
{
    size_t plen = strlen(KT_IMAGE_PREFIX);
    if (strncmp(name, KT_IMAGE_PREFIX, plen) != 0 || strlen(name) < plen + KT_HASH_HEX_LEN)
        return S_KIND_NONE;
    memcpy(ret_hash, name + plen, KT_HASH_HEX_LEN);
    ret_hash[KT_HASH_HEX_LEN] = '\0';
    if (!kt_hash_hex_valid(ret_hash))
        return S_KIND_NONE;
    const char *rest = name + plen + KT_HASH_HEX_LEN;
    if (!*rest)
        return S_KIND_IMAGE;
    if (strcmp(rest, S_LOCK_SUFFIX) == 0)
        return S_KIND_LOCK;
    if (strncmp(rest, S_TMP_INFIX, strlen(S_TMP_INFIX)) == 0 &&
        strlen(rest) == strlen(S_TMP_INFIX) + 6)
        return S_KIND_TEMP;
    return S_KIND_NONE;
}

typedef struct s_sweep_name {
    char hash[KT_HASH_HEX_SIZE];
    char *name; /* temp file name, or NULL for "hash seen" */
} s_sweep_name_t;

static int s_cmp_sweep_name(const void *a, const void *b)
{
    return strcmp(((const s_sweep_name_t *)a)->hash, ((const s_sweep_name_t *)b)->hash);
}

static bool s_ignorable(int r)
{
    /* Gone already, or someone else's file in a shared sticky dir. */
    return r == -ENOENT || r == -EPERM || r == -EACCES;
}

/* Removes P if nobody holds it and it is old enough. Called with the
 * builder mutex of its hash held. */
static int s_sweep_image(const char *path, unsigned min_age_s, unsigned *removed)
{
    _cleanup_close_ int fd = -1;
    struct stat st;
    struct timespec now;
    int r;

    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return s_ignorable(-errno) || errno == ELOOP ? 0 : -errno;
    if (fstat(fd, &st) < 0)
        return -errno;
    if (!S_ISREG(st.st_mode))
        return 0;
    r = s_flock(fd, LOCK_EX | LOCK_NB);
    if (r == -EWOULDBLOCK)
        return 0; /* in use */
    if (r < 0)
        return r;
    clock_gettime(CLOCK_REALTIME, &now);
    if (min_age_s && now.tv_sec - st.st_mtim.tv_sec < (time_t)min_age_s)
        return 0;
    if (s_fd_matches_path(fd, path) < 0)
        return 0;
    if (unlink(path) < 0)
        return s_ignorable(-errno) ? 0 : -errno;
    (*removed)++;
    return 0;
}

int kt_image_sweep(const char *dir, unsigned min_age_s, unsigned *ret_removed)
{
    s_sweep_name_t *names = NULL;
    size_t n = 0, cap = 0;
    unsigned removed = 0;
    int first_err = 0;
    int r;

    if (!dir)
        dir = KT_IMAGE_DEFAULT_DIR;
    r = s_check_dir(dir);
    if (r < 0)
        return r;
    DIR *d = opendir(dir); /* glibc opens it O_CLOEXEC */
    if (!d) {
        r = -errno;
        kt_image_set_error("cannot open image dir '%s': %s", dir, strerror(-r));
        return r;
    }
    for (struct dirent *de; (de = readdir(d)) && n < S_MAX_SWEEP_NAMES;) {
        char hash[KT_HASH_HEX_SIZE];
        enum s_kind kind = s_classify(de->d_name, hash);
        if (kind == S_KIND_NONE)
            continue;
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 64;
            s_sweep_name_t *nn = realloc(names, ncap * sizeof(*nn));
            if (!nn) {
                r = -ENOMEM;
                goto out;
            }
            names = nn;
            cap = ncap;
        }
        memcpy(names[n].hash, hash, sizeof(hash));
        names[n].name = NULL;
        if (kind == S_KIND_TEMP) {
            names[n].name = strdup(de->d_name);
            if (!names[n].name) {
                r = -ENOMEM;
                goto out;
            }
        }
        n++;
    }
    if (n)
        qsort(names, n, sizeof(*names), s_cmp_sweep_name);

    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && strcmp(names[j].hash, names[i].hash) == 0)
            j++;
        _cleanup_free_ char *path = NULL;
        _cleanup_free_ char *lockpath = NULL;
        int lfd = -1;

        if (asprintf(&path, "%s/" KT_IMAGE_PREFIX "%s", dir, names[i].hash) < 0 ||
            asprintf(&lockpath, "%s" S_LOCK_SUFFIX, path) < 0) {
            r = -ENOMEM;
            goto out;
        }
        r = s_lock_builder(lockpath, LOCK_EX | LOCK_NB, &lfd);
        if (r == -EAGAIN) {
            close(lfd); /* a build is running: leave this hash alone */
        } else if (r == -ESTALE || s_ignorable(r)) {
            /* raced with another sweep or someone else's lock file */
        } else if (r < 0) {
            if (!first_err)
                first_err = r;
        } else {
            /* Holding the mutex: no builder of this hash is alive, so its
             * temps are dead. A rename may have moved one meanwhile; then
             * the unlink finds nothing. */
            for (size_t k = i; k < j; k++) {
                if (!names[k].name)
                    continue;
                _cleanup_free_ char *tpath = NULL;
                if (asprintf(&tpath, "%s/%s", dir, names[k].name) < 0) {
                    r = -ENOMEM;
                    s_unlock_builder(lockpath, &lfd);
                    goto out;
                }
                if (unlink(tpath) == 0)
                    removed++;
                else if (!s_ignorable(-errno) && !first_err)
                    first_err = -errno;
            }
            r = s_sweep_image(path, min_age_s, &removed);
            if (r < 0 && !first_err) {
                first_err = r;
                kt_image_set_error("sweeping '%s': %s", path, strerror(-r));
            }
            s_unlock_builder(lockpath, &lfd);
        }
        i = j;
    }
    r = first_err;

out:
    closedir(d);
    for (size_t i = 0; i < n; i++)
        free(names[i].name);
    free(names);
    if (r >= 0 && ret_removed)
        *ret_removed = removed;
    return r;
}
