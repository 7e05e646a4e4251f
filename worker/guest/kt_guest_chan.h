/* The guest end of the host channel: the virtio-serial port named
 * "org.ktstr.0", carrying kt_frame frames (4-byte big-endian length +
 * msgpack body). The fd is non-blocking so every send and receive is bounded:
 * a host that stops reading cannot wedge the supervisor. Sends are
 * serialised (one frame is never interleaved with another). */
#pragma once

#include <msgpack.h>
#include <stddef.h>

#define KT_GUEST_CHAN_NAME "org.ktstr.0"

typedef struct kt_guest_chan kt_guest_chan_t;

/* Finds the port whose <root>/class/virtio-ports/<port>/name is name and
 * writes "/dev/<port>" into ret_dev. -ENOENT when there is none (yet). */
int kt_guest_chan_find(const char *sysfs_root, const char *name, char *ret_dev, size_t len);

/* Opens the device O_RDWR | O_CLOEXEC | O_NONBLOCK. Caller owns *ret. */
int kt_guest_chan_open(const char *dev, kt_guest_chan_t **ret);
/* Wraps an fd (taking it over; tests use a socketpair). NULL on ENOMEM. */
kt_guest_chan_t *kt_guest_chan_new(int fd);
void kt_guest_chan_destroy(kt_guest_chan_t **self_p);

/* Waits until the host end is connected (a virtio port polls POLLHUP while
 * nobody holds the host side). 0 or -ETIMEDOUT. */
int kt_guest_chan_wait_peer(kt_guest_chan_t *self, unsigned timeout_ms);

/* Sends one frame within timeout_ms. 0, -ETIMEDOUT (nothing was written),
 * -EPIPE once a frame was cut in the middle by a timeout or an error: the
 * stream is then out of step and every later send fails. */
int kt_guest_chan_send(kt_guest_chan_t *self, const void *body, size_t len, unsigned timeout_ms);
int kt_guest_chan_send_sbuf(kt_guest_chan_t *self, const msgpack_sbuffer *sb, unsigned timeout_ms);

/* Receives one frame of at most max bytes. 1 and the body (caller owns),
 * 0 on timeout, -EMSGSIZE for an oversized frame, -errno. Only one thread
 * may receive. */
int kt_guest_chan_recv(kt_guest_chan_t *self, size_t max, unsigned timeout_ms, void **ret_body,
                       size_t *ret_len);
