/* The worker's artifact cache: kernels and scheduler binaries by content,
 * stored as {cache}/artifacts/{sha256} (mode 0755). An incoming artifact is
 * written chunk by chunk to a temporary file in the same folder, hashed as
 * it arrives, and renamed into place only when its size and sha256 match the
 * name it was announced under: a file under a hash name is always that
 * content. Several worker processes may share the folder (rename is atomic,
 * temporary names are per process). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kt_hash.h"
#include "kt_msg.h" /* KT_ARTIFACT_MAX_BYTES: the largest artifact a peer may announce */

typedef struct kt_artifacts kt_artifacts_t;
typedef struct kt_artifact_in kt_artifact_in_t;

/* Opens (creating it when missing) {cache_dir}/artifacts and removes
 * temporary files older than an hour left by dead processes. */
int kt_artifacts_open(const char *cache_dir, kt_artifacts_t **ret);
void kt_artifacts_destroy(kt_artifacts_t **self_p);
const char *kt_artifacts_dir(const kt_artifacts_t *self);

/* True when a regular file named sha is cached (and, size > 0, has that
 * size). */
bool kt_artifacts_has(const kt_artifacts_t *self, const char *sha, uint64_t size);
/* The cached file's path. -EINVAL for a malformed sha, -ENOENT when absent. */
int kt_artifacts_path(const kt_artifacts_t *self, const char *sha, char *buf, size_t len);
/* Up to max cached hashes, in no particular order. */
int kt_artifacts_list(const kt_artifacts_t *self, char (*ret)[KT_HASH_HEX_SIZE], unsigned max,
                      unsigned *ret_n);
/* Re-hashes a cached file: 0 when it still matches its name, -EBADMSG (and
 * the file is removed) when not. */
int kt_artifacts_verify(const kt_artifacts_t *self, const char *sha);

/* Starts receiving an artifact of size bytes. -EINVAL for a malformed sha
 * or a size of 0, -EFBIG over KT_ARTIFACT_MAX_BYTES. Caller owns *ret. */
int kt_artifact_in_begin(kt_artifacts_t *self, const char *sha, uint64_t size,
                         kt_artifact_in_t **ret);
/* Appends bytes. They must start where the previous ones ended (-EPROTO,
 * nothing written) and stay within the announced size (-EFBIG). */
int kt_artifact_in_write(kt_artifact_in_t *in, uint64_t offset, const void *data, size_t len);
uint64_t kt_artifact_in_received(const kt_artifact_in_t *in);
uint64_t kt_artifact_in_size(const kt_artifact_in_t *in);
const char *kt_artifact_in_sha(const kt_artifact_in_t *in);
/* All bytes arrived: checks the sha256 and renames the file into place
 * (0755). Consumes *in_p in every case. -EBADMSG with why for a size or hash
 * mismatch (the bytes are discarded), other -errno for I/O. */
int kt_artifact_in_commit(kt_artifact_in_t **in_p, char *why, size_t why_len);
/* Discards a transfer; NULL-safe. */
void kt_artifact_in_abort(kt_artifact_in_t **in_p);
