/* Length-prefixed framing for byte streams (the virtio-serial channel): a
 * frame is a 4-byte big-endian length followed by a msgpack body. */
#pragma once

#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

#define KT_FRAME_MAX (16u << 20)

/* Write one frame; loops over partial writes and EINTR. 0 or -errno. */
int kt_frame_write(int fd, const void *body, size_t len);

/* Blocking read of one frame of at most max bytes. Caller owns *ret_body.
 * -EMSGSIZE for an oversized length, -EPIPE at end of stream (also mid-frame),
 * -errno on read errors. */
int kt_frame_read(int fd, size_t max, void **ret_body, size_t *ret_len);

/* Incremental reader for non-blocking streams. */
typedef struct kt_frame_reader kt_frame_reader_t;

kt_frame_reader_t *kt_frame_reader_new(size_t max);
void kt_frame_reader_destroy(kt_frame_reader_t **self_p);
/* Append bytes read from the stream. -EMSGSIZE once a frame announces more
 * than max (the reader is then unusable), -ENOMEM. */
int kt_frame_reader_feed(kt_frame_reader_t *self, const void *data, size_t len);
/* 1 and a frame (caller owns *ret_body) when one is complete, 0 when not. */
int kt_frame_reader_next(kt_frame_reader_t *self, void **ret_body, size_t *ret_len);
