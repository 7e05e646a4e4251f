/* sha256 over buffers, fds and files via libsodium's crypto_hash_sha256. */
#include "kt_hash.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kt_cleanup.h"

static int s_sodium_ready(void)
{
    /* Idempotent and thread-safe; 1 means "already initialised". */
    return sodium_init() < 0 ? -EIO : 0;
}

int kt_hash_init(kt_hash_t *h)
{
    int r = s_sodium_ready();
    if (r < 0)
        return r;
    return crypto_hash_sha256_init(&h->state) == 0 ? 0 : -EIO;
}

int kt_hash_update(kt_hash_t *h, const void *buf, size_t len)
{
    if (len == 0)
        return 0;
    return crypto_hash_sha256_update(&h->state, buf, len) == 0 ? 0 : -EIO;
}

int kt_hash_final(kt_hash_t *h, uint8_t ret_raw[KT_HASH_BYTES])
{
    return crypto_hash_sha256_final(&h->state, ret_raw) == 0 ? 0 : -EIO;
}

void kt_hash_to_hex(const uint8_t *raw, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[raw[i] >> 4];
        out[2 * i + 1] = digits[raw[i] & 0xf];
    }
    out[2 * len] = '\0';
}

int kt_hash_final_hex(kt_hash_t *h, char ret_hex[KT_HASH_HEX_SIZE])
{
    uint8_t raw[KT_HASH_BYTES];
    int r = kt_hash_final(h, raw);
    if (r < 0)
        return r;
    kt_hash_to_hex(raw, sizeof(raw), ret_hex);
    return 0;
}

int kt_hash_sha256_buf(const void *buf, size_t len, char ret_hex[KT_HASH_HEX_SIZE])
{
    kt_hash_t h;
    int r = kt_hash_init(&h);
    if (r < 0)
        return r;
    r = kt_hash_update(&h, buf, len);
    if (r < 0)
        return r;
    return kt_hash_final_hex(&h, ret_hex);
}

int kt_hash_sha256_fd(int fd, char ret_hex[KT_HASH_HEX_SIZE])
{
    _cleanup_free_ uint8_t *buf = NULL;
    const size_t bufsz = 1 << 20;
    kt_hash_t h;
    int r;

    if (fd < 0)
        return -EBADF;
    buf = malloc(bufsz);
    if (!buf)
        return -ENOMEM;
    r = kt_hash_init(&h);
    if (r < 0)
        return r;
    for (;;) {
        ssize_t n = read(fd, buf, bufsz);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            break;
        r = kt_hash_update(&h, buf, (size_t)n);
        if (r < 0)
            return r;
    }
    return kt_hash_final_hex(&h, ret_hex);
}

int kt_hash_sha256_file(const char *path, char ret_hex[KT_HASH_HEX_SIZE])
{
    _cleanup_close_ int fd = -1;
    struct stat st;

    if (!path)
        return -EINVAL;
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return -errno;
    if (fstat(fd, &st) < 0)
        return -errno;
    if (S_ISDIR(st.st_mode))
        return -EISDIR;
    if (!S_ISREG(st.st_mode))
        return -EINVAL;
    return kt_hash_sha256_fd(fd, ret_hex);
}

bool kt_hash_hex_valid(const char *s)
{
    if (!s)
        return false;
    for (size_t i = 0; i < KT_HASH_HEX_LEN; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
    }
    return s[KT_HASH_HEX_LEN] == '\0';
}
