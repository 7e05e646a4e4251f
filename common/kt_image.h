/* Shared base images: the files a VM boots with (busybox, ktstr-init, the
 * cell's scheduler) packed as a cpio (newc) archive, compressed in the lz4
 * legacy format the kernel's RD_LZ4 reads, stored once per content hash as
 * {dir}/ktstr-lz4-{hash} (dir = /dev/shm by default).
 *
 * Builder election: the first process creates {path}.lock ... (see
 * kt_image.c); users hold LOCK_SH on the image while their VMs use it, so a
 * sweep never removes an image in use and concurrent VMs never rebuild it. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define KT_IMAGE_DEFAULT_DIR "/dev/shm"
#define KT_IMAGE_PREFIX "ktstr-lz4-"

typedef struct kt_image_entry {
    const char *guest_path;     /* "init", "bin/busybox", "sched/scx_simple" (no leading /) */
    const char *host_path;      /* file to copy; NULL for a directory or symlink */
    const char *link_target;    /* symlink target when non-NULL */
    mode_t mode;                /* permission bits (0755 ...) */
} kt_image_entry_t;

typedef struct kt_image kt_image_t;

/* Content hash (sha256 hex, 64 chars + NUL) over the entries: paths, modes,
 * link targets and file contents, in order. */
int kt_image_hash(const kt_image_entry_t *entries, size_t n, char ret_hex[65]);

/* Build the cpio archive in memory. Parent directories are added as needed.
 * Caller owns *ret_buf. */
int kt_cpio_build(const kt_image_entry_t *entries, size_t n, void **ret_buf, size_t *ret_len);

/* lz4 legacy format (magic 0x184C2102, 8 MiB blocks, HC). Caller owns. */
int kt_lz4_legacy_compress(const void *in, size_t len, void **ret_buf, size_t *ret_len);
/* Inverse, for tests and verification. Caller owns. */
int kt_lz4_legacy_decompress(const void *in, size_t len, size_t max_out, void **ret_buf,
                             size_t *ret_len);

/* Find or build the image for these entries in dir and hold it shared
 * (LOCK_SH) until kt_image_release. Caller owns *ret. */
int kt_image_acquire(const char *dir, const kt_image_entry_t *entries, size_t n, kt_image_t **ret);
const char *kt_image_path(const kt_image_t *img);
const char *kt_image_hash_hex(const kt_image_t *img);
/* True when this acquire built the image (false: it was found ready). */
bool kt_image_built(const kt_image_t *img);
void kt_image_release(kt_image_t **img_p);

/* Remove images in dir that nobody holds and that are older than
 * min_age_s seconds (0: any age). */
int kt_image_sweep(const char *dir, unsigned min_age_s, unsigned *ret_removed);
