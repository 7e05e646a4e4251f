/* Length-prefixed frames: blocking write/read over pipes, the incremental
 * reader fed byte by byte and in odd chunks, oversized lengths and
 * truncated streams. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "kt_frame.h"

static void s_pipe(int fds[2])
{
    assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
}

static void s_fill(uint8_t *buf, size_t len, unsigned seed)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)(i * 31 + seed);
}

struct s_writer {
    int fd;
    size_t n;
    const size_t *lens;
    int r;
};

static void *s_writer_main(void *arg)
{
    struct s_writer *w = arg;
    w->r = 0;
    for (size_t i = 0; i < w->n && w->r == 0; i++) {
        uint8_t *buf = malloc(w->lens[i] ? w->lens[i] : 1);
        if (!buf) {
            w->r = -ENOMEM;
            break;
        }
        s_fill(buf, w->lens[i], (unsigned)i);
        w->r = kt_frame_write(w->fd, buf, w->lens[i]);
        free(buf);
    }
    close(w->fd);
    return NULL;
}

/* Frames larger than the pipe buffer need a concurrent reader. */
static void test_pipe_round_trip(void **state)
{
    (void)state;
    static const size_t lens[] = {0, 1, 3, 4, 5, 4096, 65535, 65536, 65537, 1u << 20, 7};
    int fds[2];
    s_pipe(fds);
    struct s_writer w = {fds[1], sizeof(lens) / sizeof(lens[0]), lens, -1};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, s_writer_main, &w), 0);
    for (size_t i = 0; i < w.n; i++) {
        void *body = NULL;
        size_t len = 12345;
        assert_int_equal(kt_frame_read(fds[0], KT_FRAME_MAX, &body, &len), 0);
        assert_int_equal(len, lens[i]);
        uint8_t *want = malloc(len ? len : 1);
        assert_non_null(want);
        s_fill(want, len, (unsigned)i);
        assert_memory_equal(body, want, len ? len : 0);
        free(want);
        free(body);
    }
    /* Then the writer closed: a clean end of stream. */
    void *body = NULL;
    size_t len = 0;
    assert_int_equal(kt_frame_read(fds[0], KT_FRAME_MAX, &body, &len), -EPIPE);
    assert_null(body);
    pthread_join(th, NULL);
    assert_int_equal(w.r, 0);
    close(fds[0]);
}

static void test_wire_format(void **state)
{
    (void)state;
    int fds[2];
    s_pipe(fds);
    assert_int_equal(kt_frame_write(fds[1], "abc", 3), 0);
    uint8_t raw[16];
    assert_int_equal(read(fds[0], raw, sizeof(raw)), 7);
    static const uint8_t want[] = {0, 0, 0, 3, 'a', 'b', 'c'};
    assert_memory_equal(raw, want, sizeof(want));
    close(fds[0]);
    close(fds[1]);
}

static void s_write_raw(int fd, const void *buf, size_t len)
{
    assert_int_equal(write(fd, buf, len), (ssize_t)len);
}

static void test_oversized(void **state)
{
    (void)state;
    int fds[2];
    void *body = (void *)0x1;
    size_t len = 77;
    /* The announced length is checked against the caller's max, before any
     * allocation or read of the body. */
    s_pipe(fds);
    static const uint8_t hdr17[] = {0, 0, 0, 17};
    s_write_raw(fds[1], hdr17, 4);
    assert_int_equal(kt_frame_read(fds[0], 16, &body, &len), -EMSGSIZE);
    assert_ptr_equal(body, (void *)0x1);
    assert_int_equal(len, 77);
    close(fds[0]);
    close(fds[1]);

    /* Exactly max is fine. */
    s_pipe(fds);
    uint8_t frame16[20] = {0, 0, 0, 16};
    s_write_raw(fds[1], frame16, sizeof(frame16));
    assert_int_equal(kt_frame_read(fds[0], 16, &body, &len), 0);
    assert_int_equal(len, 16);
    free(body);
    close(fds[0]);
    close(fds[1]);

    /* A hostile 4 GiB length, whatever max the caller gives. */
    s_pipe(fds);
    static const uint8_t huge[] = {0xff, 0xff, 0xff, 0xff};
    s_write_raw(fds[1], huge, 4);
    assert_int_equal(kt_frame_read(fds[0], SIZE_MAX, &body, &len), -EMSGSIZE);
    close(fds[0]);
    close(fds[1]);

    /* The writer refuses what no reader would take. */
    s_pipe(fds);
    assert_int_equal(kt_frame_write(fds[1], "", (size_t)KT_FRAME_MAX + 1), -EMSGSIZE);
    close(fds[0]);
    close(fds[1]);
}

static void test_truncated(void **state)
{
    (void)state;
    void *body = NULL;
    size_t len = 0;
    int fds[2];
    /* Nothing at all, part of a header, a header and part of a body. */
    static const uint8_t partial[] = {0, 0, 0, 10, 1, 2, 3};
    static const size_t cuts[] = {0, 1, 3, 4, 7};
    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        s_pipe(fds);
        if (cuts[i])
            s_write_raw(fds[1], partial, cuts[i]);
        close(fds[1]);
        assert_int_equal(kt_frame_read(fds[0], KT_FRAME_MAX, &body, &len), -EPIPE);
        assert_null(body);
        close(fds[0]);
    }
    /* A read error comes back as -errno. */
    assert_int_equal(kt_frame_read(-1, KT_FRAME_MAX, &body, &len), -EBADF);
    assert_int_equal(kt_frame_write(-1, "x", 1), -EBADF);

    /* Writing to a pipe nobody reads: -EPIPE, not a signal. */
    struct sigaction ign = {.sa_handler = SIG_IGN}, old;
    sigaction(SIGPIPE, &ign, &old);
    s_pipe(fds);
    close(fds[0]);
    assert_int_equal(kt_frame_write(fds[1], "x", 1), -EPIPE);
    close(fds[1]);
    sigaction(SIGPIPE, &old, NULL);
}

/* Three frames back to back, as bytes. */
static size_t s_stream(uint8_t *buf, const size_t *lens, size_t n)
{
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        size_t l = lens[i];
        buf[off++] = (uint8_t)(l >> 24);
        buf[off++] = (uint8_t)(l >> 16);
        buf[off++] = (uint8_t)(l >> 8);
        buf[off++] = (uint8_t)l;
        s_fill(buf + off, l, (unsigned)i);
        off += l;
    }
    return off;
}

static void s_check_frame(void *body, size_t len, size_t want_len, unsigned seed)
{
    uint8_t want[8192];
    assert_true(want_len <= sizeof(want));
    assert_int_equal(len, want_len);
    s_fill(want, want_len, seed);
    assert_memory_equal(body, want, want_len ? want_len : 0);
    free(body);
}

static void test_reader_byte_by_byte(void **state)
{
    (void)state;
    static const size_t lens[] = {5, 0, 300, 1, 4096};
    uint8_t stream[8192];
    size_t total = s_stream(stream, lens, 5);
    kt_frame_reader_t *rd = kt_frame_reader_new(4096);
    assert_non_null(rd);
    size_t got = 0, ends[5], off = 0;
    for (size_t i = 0; i < 5; i++) {
        off += 4 + lens[i];
        ends[i] = off;
    }
    for (size_t i = 0; i < total; i++) {
        assert_int_equal(kt_frame_reader_feed(rd, &stream[i], 1), 0);
        void *body;
        size_t len;
        int r = kt_frame_reader_next(rd, &body, &len);
        /* A frame comes out exactly when its last byte went in. */
        if (got < 5 && i + 1 == ends[got]) {
            assert_int_equal(r, 1);
            s_check_frame(body, len, lens[got], (unsigned)got);
            got++;
            /* An empty frame right after: it is complete once its header is. */
        } else {
            assert_int_equal(r, 0);
        }
    }
    assert_int_equal(got, 5);
    void *body;
    size_t len;
    assert_int_equal(kt_frame_reader_next(rd, &body, &len), 0);
    kt_frame_reader_destroy(&rd);
    assert_null(rd);
    kt_frame_reader_destroy(&rd); /* NULL-safe */
    kt_frame_reader_destroy(NULL);
}

static void test_reader_chunks(void **state)
{
    (void)state;
    static const size_t lens[] = {100, 7, 0, 2000, 3, 1500, 0, 64};
    const size_t nf = sizeof(lens) / sizeof(lens[0]);
    uint8_t stream[8192];
    size_t total = s_stream(stream, lens, nf);
    /* Chunk sizes from 1 up to the whole stream, in one feed. */
    static const size_t chunks[] = {1, 2, 3, 5, 7, 64, 1000, 4096, 8192};
    for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
        kt_frame_reader_t *rd = kt_frame_reader_new(2000);
        assert_non_null(rd);
        size_t got = 0;
        for (size_t off = 0; off < total; off += chunks[c]) {
            size_t n = total - off < chunks[c] ? total - off : chunks[c];
            assert_int_equal(kt_frame_reader_feed(rd, stream + off, n), 0);
            void *body;
            size_t len;
            int r;
            while ((r = kt_frame_reader_next(rd, &body, &len)) == 1) {
                assert_true(got < nf);
                s_check_frame(body, len, lens[got], (unsigned)got);
                got++;
            }
            assert_int_equal(r, 0);
        }
        assert_int_equal(got, nf);
        kt_frame_reader_destroy(&rd);
    }
}

static void test_reader_oversized(void **state)
{
    (void)state;
    kt_frame_reader_t *rd = kt_frame_reader_new(16);
    assert_non_null(rd);
    /* A good frame, then one announcing max + 1: the good one is still
     * delivered if taken first, then the reader refuses for good. */
    static const uint8_t good[] = {0, 0, 0, 2, 'o', 'k'};
    assert_int_equal(kt_frame_reader_feed(rd, good, sizeof(good)), 0);
    void *body;
    size_t len;
    assert_int_equal(kt_frame_reader_next(rd, &body, &len), 1);
    assert_int_equal(len, 2);
    assert_memory_equal(body, "ok", 2);
    free(body);
    static const uint8_t bad[] = {0, 0, 0, 17};
    /* Fed a byte at a time, it is refused when the fourth byte arrives. */
    for (int i = 0; i < 3; i++)
        assert_int_equal(kt_frame_reader_feed(rd, &bad[i], 1), 0);
    assert_int_equal(kt_frame_reader_feed(rd, &bad[3], 1), -EMSGSIZE);
    assert_int_equal(kt_frame_reader_next(rd, &body, &len), -EMSGSIZE);
    assert_int_equal(kt_frame_reader_feed(rd, good, sizeof(good)), -EMSGSIZE);
    assert_int_equal(kt_frame_reader_next(rd, &body, &len), -EMSGSIZE);
    kt_frame_reader_destroy(&rd);

    /* Exactly max passes; the reader's max is capped at KT_FRAME_MAX. */
    rd = kt_frame_reader_new(16);
    uint8_t f16[20] = {0, 0, 0, 16};
    assert_int_equal(kt_frame_reader_feed(rd, f16, sizeof(f16)), 0);
    assert_int_equal(kt_frame_reader_next(rd, &body, &len), 1);
    assert_int_equal(len, 16);
    free(body);
    kt_frame_reader_destroy(&rd);
    rd = kt_frame_reader_new(SIZE_MAX);
    static const uint8_t huge[] = {0x01, 0x00, 0x00, 0x01}; /* 16 MiB + 1 */
    assert_int_equal(kt_frame_reader_feed(rd, huge, 4), -EMSGSIZE);
    kt_frame_reader_destroy(&rd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pipe_round_trip),     cmocka_unit_test(test_wire_format),
        cmocka_unit_test(test_oversized),           cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_reader_byte_by_byte), cmocka_unit_test(test_reader_chunks),
        cmocka_unit_test(test_reader_oversized),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
