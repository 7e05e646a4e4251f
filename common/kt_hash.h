/* Content hashing: sha256 (libsodium) over buffers, files and streams, with
 * lowercase hex output. Used for artifact names (kernels, schedulers) and the
 * shared base images (kt_image.h). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sodium.h>

#define KT_HASH_BYTES 32
#define KT_HASH_HEX_LEN 64
#define KT_HASH_HEX_SIZE (KT_HASH_HEX_LEN + 1)

/* Incremental sha256. Plain struct so it can live on the stack; no cleanup
 * needed. */
typedef struct kt_hash {
    crypto_hash_sha256_state state;
} kt_hash_t;

int kt_hash_init(kt_hash_t *h);
int kt_hash_update(kt_hash_t *h, const void *buf, size_t len);
/* Finishes the hash; h must be re-initialised before reuse. */
int kt_hash_final(kt_hash_t *h, uint8_t ret_raw[KT_HASH_BYTES]);
int kt_hash_final_hex(kt_hash_t *h, char ret_hex[KT_HASH_HEX_SIZE]);

int kt_hash_sha256_buf(const void *buf, size_t len, char ret_hex[KT_HASH_HEX_SIZE]);
/* Hashes the whole of an open fd from its current offset to EOF. */
int kt_hash_sha256_fd(int fd, char ret_hex[KT_HASH_HEX_SIZE]);
/* Hashes a regular file (symlinks followed); -EISDIR/-EINVAL for anything
 * that is not a regular file. */
int kt_hash_sha256_file(const char *path, char ret_hex[KT_HASH_HEX_SIZE]);

/* Writes the lowercase hex of len raw bytes to out (2*len + 1 bytes). */
void kt_hash_to_hex(const uint8_t *raw, size_t len, char *out);
/* True for exactly 64 lowercase hex digits followed by NUL. */
bool kt_hash_hex_valid(const char *s);
