/* The guest end of the host channel (see kt_guest_chan.h). */
#include "kt_guest_chan.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kt_frame.h"
#include "kt_guest_sys.h"

struct kt_guest_chan {
    int fd;
    pthread_mutex_t send_lock;
    bool broken;
    kt_frame_reader_t *reader;
    size_t reader_max;
};

int kt_guest_chan_find(const char *sysfs_root, const char *name, char *ret_dev, size_t len)
{
    char dir[256];
    snprintf(dir, sizeof(dir), "%s/class/virtio-ports", sysfs_root);
    DIR *d = opendir(dir);
    if (!d)
        return -ENOENT;
    int r = -ENOENT;
    unsigned seen = 0;
    struct dirent *de;
    while ((de = readdir(d)) && seen++ < 1024) {
        if (de->d_name[0] == '.')
            continue;
        char path[512], buf[128];
        if (snprintf(path, sizeof(path), "%s/%s/name", dir, de->d_name) >= (int)sizeof(path))
            continue;
        if (kt_guest_sys_read_file(path, buf, sizeof(buf)) < 0 || strcmp(buf, name) != 0)
            continue;
        snprintf(ret_dev, len, "/dev/%s", de->d_name);
        r = 0;
        break;
    }
    closedir(d);
    return r;
}

kt_guest_chan_t *kt_guest_chan_new(int fd)
{
    kt_guest_chan_t *self = calloc(1, sizeof(*self));
    if (!self)
        return NULL;
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    self->fd = fd;
    pthread_mutex_init(&self->send_lock, NULL);
    return self;
}

int kt_guest_chan_open(const char *dev, kt_guest_chan_t **ret)
{
    int fd = open(dev, O_RDWR | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0)
        return -errno;
    kt_guest_chan_t *self = kt_guest_chan_new(fd);
    if (!self) {
        close(fd);
        return -ENOMEM;
    }
    *ret = self;
    return 0;
}

void kt_guest_chan_destroy(kt_guest_chan_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    kt_guest_chan_t *self = *self_p;
    if (self->fd >= 0)
        close(self->fd);
    kt_frame_reader_destroy(&self->reader);
    pthread_mutex_destroy(&self->send_lock);
    free(self);
    *self_p = NULL;
}

static int s_remaining(uint64_t deadline_ms)
{
    uint64_t now = kt_guest_sys_now_ms();
    return now >= deadline_ms ? 0 : (int)(deadline_ms - now);
}

int kt_guest_chan_wait_peer(kt_guest_chan_t *self, unsigned timeout_ms)
{
    uint64_t deadline = kt_guest_sys_now_ms() + timeout_ms;
    for (;;) {
        struct pollfd p = {.fd = self->fd, .events = POLLOUT};
        int n = poll(&p, 1, 0);
        if (n > 0 && !(p.revents & POLLHUP))
            return 0;
        if (s_remaining(deadline) == 0)
            return -ETIMEDOUT;
        kt_guest_sys_sleep_ms(20);
    }
}

/* Writes everything or fails; *written tells how much went out. */
static int s_write_all(int fd, const uint8_t *p, size_t len, uint64_t deadline, size_t *written)
{
    *written = 0;
    while (*written < len) {
        ssize_t n = write(fd, p + *written, len - *written);
        if (n > 0) {
            *written += (size_t)n;
            continue;
        }
        if (n < 0 && errno != EAGAIN && errno != EINTR)
            return -errno;
        int left = s_remaining(deadline);
        if (left == 0)
            return -ETIMEDOUT;
        struct pollfd pf = {.fd = fd, .events = POLLOUT};
        int r = poll(&pf, 1, left < 50 ? left : 50);
        /* A virtio port without a host end polls POLLHUP at once: wait. */
        if (r > 0 && (pf.revents & POLLHUP) && !(pf.revents & POLLOUT))
            kt_guest_sys_sleep_ms(20);
    }
    return 0;
}

int kt_guest_chan_send(kt_guest_chan_t *self, const void *body, size_t len, unsigned timeout_ms)
{
    if (len > KT_FRAME_MAX)
        return -EMSGSIZE;
    uint8_t *buf = malloc(len + 4);
    if (!buf)
        return -ENOMEM;
    buf[0] = (uint8_t)(len >> 24);
    buf[1] = (uint8_t)(len >> 16);
    buf[2] = (uint8_t)(len >> 8);
    buf[3] = (uint8_t)len;
    if (len)
        memcpy(buf + 4, body, len);
    uint64_t deadline = kt_guest_sys_now_ms() + timeout_ms;
    pthread_mutex_lock(&self->send_lock);
    int r;
    if (self->broken) {
        r = -EPIPE;
    } else {
        size_t written;
        r = s_write_all(self->fd, buf, len + 4, deadline, &written);
        if (r < 0 && written > 0) {
            self->broken = true;
            r = -EPIPE;
        }
    }
    pthread_mutex_unlock(&self->send_lock);
    free(buf);
    return r;
}

int kt_guest_chan_send_sbuf(kt_guest_chan_t *self, const msgpack_sbuffer *sb, unsigned timeout_ms)
{
    return kt_guest_chan_send(self, sb->data, sb->size, timeout_ms);
}

int kt_guest_chan_recv(kt_guest_chan_t *self, size_t max, unsigned timeout_ms, void **ret_body,
                       size_t *ret_len)
{
    if (!self->reader || self->reader_max != max) {
        kt_frame_reader_destroy(&self->reader);
        self->reader = kt_frame_reader_new(max);
        if (!self->reader)
            return -ENOMEM;
        self->reader_max = max;
    }
    uint64_t deadline = kt_guest_sys_now_ms() + timeout_ms;
    for (;;) {
        int r = kt_frame_reader_next(self->reader, ret_body, ret_len);
        if (r != 0)
            return r;
        uint8_t buf[4096];
        ssize_t n = read(self->fd, buf, sizeof(buf));
        if (n > 0) {
            if ((r = kt_frame_reader_feed(self->reader, buf, (size_t)n)) < 0)
                return r;
            continue;
        }
        if (n < 0 && errno != EAGAIN && errno != EINTR)
            return -errno;
        int left = s_remaining(deadline);
        if (left == 0)
            return 0;
        if (n == 0) {
            /* No host end (virtio) or the peer closed (socket): nothing to
             * read until one connects. */
            kt_guest_sys_sleep_ms(left < 20 ? (unsigned)left : 20);
            continue;
        }
        struct pollfd pf = {.fd = self->fd, .events = POLLIN};
        poll(&pf, 1, left);
    }
}
