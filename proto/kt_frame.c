/* Length-prefixed frames over byte streams. */
#include "kt_frame.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int s_write_all(int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int s_read_all(int fd, void *buf, size_t len)
{
    uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = read(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            return -EPIPE;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int kt_frame_write(int fd, const void *body, size_t len)
{
    if (len > KT_FRAME_MAX)
        return -EMSGSIZE;
    uint8_t hdr[4] = {(uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8), (uint8_t)len};
    /* One buffer so a frame is never interleaved with another writer's. */
    uint8_t *buf = malloc(len + 4);
    if (!buf)
        return -ENOMEM;
    memcpy(buf, hdr, 4);
    if (len)
        memcpy(buf + 4, body, len);
    int r = s_write_all(fd, buf, len + 4);
    free(buf);
    return r;
}

int kt_frame_read(int fd, size_t max, void **ret_body, size_t *ret_len)
{
    uint8_t hdr[4];
    int r = s_read_all(fd, hdr, 4);
    if (r < 0)
        return r;
    size_t len = (size_t)hdr[0] << 24 | (size_t)hdr[1] << 16 | (size_t)hdr[2] << 8 | hdr[3];
    if (len > max || len > KT_FRAME_MAX)
        return -EMSGSIZE;
    void *body = malloc(len ? len : 1);
    if (!body)
        return -ENOMEM;
    r = s_read_all(fd, body, len);
    if (r < 0) {
        free(body);
        return r;
    }
    *ret_body = body;
    *ret_len = len;
    return 0;
}

struct kt_frame_reader {
    size_t max;
    uint8_t *buf;
    size_t len;
    size_t cap;
    bool broken;
};

kt_frame_reader_t *kt_frame_reader_new(size_t max)
{
    kt_frame_reader_t *self = calloc(1, sizeof(*self));
    if (!self)
        return NULL;
    self->max = max > KT_FRAME_MAX ? KT_FRAME_MAX : max;
    return self;
}

void kt_frame_reader_destroy(kt_frame_reader_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free((*self_p)->buf);
    free(*self_p);
    *self_p = NULL;
}

static size_t s_announced(const kt_frame_reader_t *self)
{
    const uint8_t *h = self->buf;
    return (size_t)h[0] << 24 | (size_t)h[1] << 16 | (size_t)h[2] << 8 | h[3];
}

int kt_frame_reader_feed(kt_frame_reader_t *self, const void *data, size_t len)
{
    if (self->broken)
        return -EMSGSIZE;
    if (self->len + len > self->cap) {
        size_t cap = self->cap ? self->cap : 4096;
        while (cap < self->len + len)
            cap *= 2;
        /* Never buffer more than one maximal frame plus what follows it. */
        if (cap > 2 * (self->max + 4) + 65536)
            cap = self->len + len;
        uint8_t *nb = realloc(self->buf, cap);
        if (!nb)
            return -ENOMEM;
        self->buf = nb;
        self->cap = cap;
    }
    memcpy(self->buf + self->len, data, len);
    self->len += len;
    if (self->len >= 4 && s_announced(self) > self->max) {
        self->broken = true;
        return -EMSGSIZE;
    }
    return 0;
}

int kt_frame_reader_next(kt_frame_reader_t *self, void **ret_body, size_t *ret_len)
{
    if (self->broken)
        return -EMSGSIZE;
    if (self->len < 4)
        return 0;
    size_t flen = s_announced(self);
    if (flen > self->max) {
        self->broken = true;
        return -EMSGSIZE;
    }
    if (self->len < flen + 4)
        return 0;
    void *body = malloc(flen ? flen : 1);
    if (!body)
        return -ENOMEM;
    memcpy(body, self->buf + 4, flen);
    memmove(self->buf, self->buf + 4 + flen, self->len - 4 - flen);
    self->len -= 4 + flen;
    *ret_body = body;
    *ret_len = flen;
    return 1;
}
