/* Shared base images: the files a VM boots with (busybox, ktstr-init, the
 * cell's scheduler) packed as a cpio (newc) archive, compressed in the lz4
 * legacy format the kernel's RD_LZ4 reads, stored once per content hash as
 * {dir}/ktstr-lz4-{hash} (dir = /dev/shm by default).
 *
 * An image is published only by rename() of a finished temp file, so its
 * name never shows a half image. Builders elect themselves with flock
 * LOCK_EX on {path}.lock (re-checked by inode so a lock file removed under
 * a waiter is never trusted); late arrivals first wait on LOCK_SH of that
 * lock file and then find the image ready. Users hold LOCK_SH on the image
 * while their VMs use it, so a sweep (LOCK_EX|LOCK_NB) never removes an
 * image in use and concurrent VMs never rebuild or copy it. Every image is
 * checked (lz4 block walk + cpio trailer) before use; a damaged one is
 * rebuilt. See kt_image.c for the details.
 *
 * Files: kt_hash.c (sha256), kt_cpio.c (newc archive), kt_lz4img.c (lz4
 * legacy frames), kt_image.c (hash, election, sweep). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define KT_IMAGE_DEFAULT_DIR "/dev/shm"
#define KT_IMAGE_PREFIX "ktstr-lz4-"

/* Bounds on what an image may hold: uncompressed archive bytes, entries,
 * and guest path length. */
#define KT_IMAGE_MAX_BYTES (256u << 20)
#define KT_IMAGE_MAX_ENTRIES 4096u
#define KT_IMAGE_MAX_PATH 1024u

/* lz4 legacy frame: magic, then blocks of [le32 compressed size][LZ4 block],
 * each at most 8 MiB uncompressed, independent of each other. */
#define KT_LZ4_LEGACY_MAGIC 0x184C2102u
#define KT_LZ4_LEGACY_BLOCK (8u << 20)
/* LZ4HC level for images: see the report in kt_lz4img.c for the numbers. */
#define KT_LZ4_HC_LEVEL 9

typedef struct kt_image_entry {
    const char *guest_path;     /* "init", "bin/busybox", "sched/scx_simple" (no leading /) */
    const char *host_path;      /* file to copy; NULL for a directory or symlink */
    const char *link_target;    /* symlink target when non-NULL */
    mode_t mode;                /* permission bits (0755 ...); symlinks are always 0777 */
} kt_image_entry_t;

typedef struct kt_image kt_image_t;

/* Content hash (sha256 hex, 64 chars + NUL) over the entries: paths, modes,
 * link targets and file contents, in order. It is the sha256 of the exact
 * cpio archive the image holds (plus a format tag), so it changes whenever
 * any byte the guest would see changes, and nothing else moves it. */
int kt_image_hash(const kt_image_entry_t *entries, size_t n, char ret_hex[65]);

/* Build the cpio archive in memory. Parent directories are added as needed
 * (0755 unless the entries list the directory itself). Every member has
 * uid/gid 0 and mtime 0, inode numbers count from 1 and the archive is
 * padded to 512 bytes, so the bytes depend only on the entries.
 * Caller owns *ret_buf. */
int kt_cpio_build(const kt_image_entry_t *entries, size_t n, void **ret_buf, size_t *ret_len);

/* One member of a newc archive as kt_cpio_walk sees it; pointers point into
 * the walked buffer. */
typedef struct kt_cpio_member {
    const char *name;
    uint32_t ino, mode, uid, gid, nlink, mtime;
    uint32_t devmajor, devminor, rdevmajor, rdevminor;
    const void *data;
    size_t size;
} kt_cpio_member_t;

/* Called per member (not for the trailer); a negative return stops the walk
 * and is returned. */
typedef int (*kt_cpio_visit_fn)(const kt_cpio_member_t *m, void *userdata);

/* Walk a newc archive strictly (magic, hex fields, name bounds, data in
 * bounds) up to its TRAILER!!!. -EBADMSG on a malformed or truncated archive
 * (kt_image_last_error says where). ret_end (optional): offset just past the
 * trailer record. */
int kt_cpio_walk(const void *buf, size_t len, kt_cpio_visit_fn fn, void *userdata,
                 size_t *ret_end);

/* lz4 legacy format (magic 0x184C2102, 8 MiB blocks, HC). Caller owns. */
int kt_lz4_legacy_compress(const void *in, size_t len, void **ret_buf, size_t *ret_len);
/* Same with an explicit LZ4HC level (1..12). Caller owns. */
int kt_lz4_legacy_compress_level(const void *in, size_t len, int level, void **ret_buf,
                                 size_t *ret_len);
/* Inverse, for tests and verification. Caller owns. */
int kt_lz4_legacy_decompress(const void *in, size_t len, size_t max_out, void **ret_buf,
                             size_t *ret_len);

/* Find or build the image for these entries in dir (NULL: /dev/shm) and
 * hold it shared (LOCK_SH) until kt_image_release: keep it for as long as a
 * VM may read kt_image_path(). Waits (blocking flock) while another process
 * builds the same image. Caller owns *ret. */
int kt_image_acquire(const char *dir, const kt_image_entry_t *entries, size_t n, kt_image_t **ret);
const char *kt_image_path(const kt_image_t *img);
const char *kt_image_hash_hex(const kt_image_t *img);
/* True when this acquire built the image (false: it was found ready). */
bool kt_image_built(const kt_image_t *img);
/* Size of the image file in bytes. */
uint64_t kt_image_size(const kt_image_t *img);
void kt_image_release(kt_image_t **img_p);

/* Remove images in dir that nobody holds and that are older than
 * min_age_s seconds (0: any age), plus temp files of builders that died.
 * An image's age counts from its last acquire. ret_removed (optional):
 * images and temp files removed. */
int kt_image_sweep(const char *dir, unsigned min_age_s, unsigned *ret_removed);

/* What and where of the last failure of a kt_image/kt_cpio/kt_lz4 call in
 * this thread ("" when none): the entry, path or offset at fault. Library
 * code does not log; callers put this in their one log line. */
const char *kt_image_last_error(void);
/* Used by kt_cpio.c, kt_lz4img.c and kt_image.c to record that text. */
__attribute__((format(printf, 1, 2))) void kt_image_set_error(const char *fmt, ...);
