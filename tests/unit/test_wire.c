/* kt_wire over real sockets: a DEALER (the coordinator's side) and a ROUTER
 * (the worker's) on inproc, and on loopback TCP where the transport's own
 * limit matters. Round trips with the routing id both ways (also a 256 KiB
 * CHUNK and a 2 MiB RESULT, which take the zero-copy path); garbage (1
 * frame, 5 frames, a bad signature, an unknown type, a bad body) is consumed
 * with -EBADMSG and a reason, and the next good message still arrives; a
 * frame over ZMQ_MAXMSGSIZE never reaches the reader; a full queue gives
 * -EAGAIN instead of blocking; an unknown peer gives -EHOSTUNREACH. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "kt_wire.h"

#define S_SHA_A "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

typedef struct s_pair {
    zsock_t *router;
    zsock_t *dealer;
    char endpoint[128];
} s_pair_t;

static int s_pair_new(void **state)
{
    static unsigned n;
    s_pair_t *p = calloc(1, sizeof(*p));
    assert_non_null(p);
    p->router = zsock_new(ZMQ_ROUTER);
    p->dealer = zsock_new(ZMQ_DEALER);
    assert_non_null(p->router);
    assert_non_null(p->dealer);
    kt_wire_socket_setup(p->router);
    kt_wire_socket_setup(p->dealer);
    snprintf(p->endpoint, sizeof(p->endpoint), "inproc://test-wire-%u", n++);
    assert_int_equal(zsock_bind(p->router, "%s", p->endpoint), 0);
    assert_int_equal(zsock_connect(p->dealer, "%s", p->endpoint), 0);
    *state = p;
    return 0;
}

static int s_pair_free(void **state)
{
    s_pair_t *p = *state;
    zsock_destroy(&p->dealer);
    zsock_destroy(&p->router);
    free(p);
    return 0;
}

/* Waits for something to read: true when there is. */
static bool s_wait(zsock_t *sock, int ms)
{
    zmq_pollitem_t it = {.socket = zsock_resolve(sock), .events = ZMQ_POLLIN};
    return zmq_poll(&it, 1, ms) == 1;
}

static int s_recv(zsock_t *sock, zframe_t **rid, kt_msg_t *m, char *why, size_t wl)
{
    if (!s_wait(sock, 2000))
        fail_msg("nothing arrived within 2 s");
    return kt_wire_recv(sock, rid, m, why, wl);
}

static void s_send_raw(zsock_t *sock, const char *const *frames, const size_t *lens, size_t n)
{
    void *h = zsock_resolve(sock);
    for (size_t i = 0; i < n; i++)
        assert_true(zmq_send(h, frames[i], lens[i], i + 1 < n ? ZMQ_SNDMORE : 0) >= 0);
}

static void s_hello(kt_msg_t *m)
{
    kt_msg_init(m, KT_MSG_HELLO);
    m->u.hello.version = KT_PROTO_VERSION;
    snprintf(m->u.hello.worker_id, sizeof(m->u.hello.worker_id), "w1");
    m->u.hello.instance = 99;
    snprintf(m->u.hello.arch, sizeof(m->u.hello.arch), "x86_64");
    m->u.hello.host_cpus = 2;
    m->u.hello.host_llcs = 1;
    m->u.hello.memory_mib = 4096;
    snprintf(m->u.hello.accel, sizeof(m->u.hello.accel), "tcg");
    m->u.hello.max_vcpus = 2;
}

static void s_ack(kt_msg_t *m, uint32_t attempt)
{
    kt_msg_init(m, KT_MSG_RESULT_ACK);
    snprintf(m->u.ack.cell_id, KT_SHA_HEX, "%s", S_SHA_A);
    m->u.ack.attempt = attempt;
}

static void test_round_trip(void **state)
{
    s_pair_t *p = *state;
    kt_msg_t *m = calloc(1, sizeof(*m)), *back = calloc(1, sizeof(*back));
    assert_non_null(m);
    assert_non_null(back);
    char why[512];
    zframe_t *rid = NULL;

    /* Nothing there: -EAGAIN at once, on both sides. */
    assert_int_equal(kt_wire_recv(p->router, &rid, back, why, sizeof(why)), -EAGAIN);
    assert_int_equal(kt_wire_recv(p->dealer, NULL, back, why, sizeof(why)), -EAGAIN);
    assert_null(rid);

    s_hello(m);
    assert_int_equal(kt_wire_send(p->dealer, NULL, m), 0);
    int r = s_recv(p->router, &rid, back, why, sizeof(why));
    if (r < 0)
        fail_msg("%s", why);
    assert_int_equal(back->type, KT_MSG_HELLO);
    assert_string_equal(back->u.hello.worker_id, "w1");
    assert_int_equal(back->u.hello.instance, 99);
    assert_non_null(rid);
    assert_true(zframe_size(rid) > 0);
    kt_msg_clear(back);

    /* The answer goes back by the routing id, which stays the caller's. */
    kt_msg_init(m, KT_MSG_WELCOME);
    m->u.welcome.session = 7;
    m->u.welcome.heartbeat_ms = 1000;
    m->u.welcome.lost_after_ms = 5000;
    assert_int_equal(kt_wire_send(p->router, rid, m), 0);
    assert_non_null(zframe_data(rid));
    r = s_recv(p->dealer, NULL, back, why, sizeof(why));
    if (r < 0)
        fail_msg("%s", why);
    assert_int_equal(back->type, KT_MSG_WELCOME);
    assert_int_equal(back->u.welcome.session, 7);
    assert_int_equal(back->u.welcome.lost_after_ms, 5000);

    /* A 256 KiB CHUNK and a 2 MiB RESULT: the zero-copy path. */
    uint8_t *data = malloc(KT_CHUNK_MAX);
    assert_non_null(data);
    for (unsigned i = 0; i < KT_CHUNK_MAX; i++)
        data[i] = (uint8_t)(i ^ (i >> 9));
    kt_msg_init(m, KT_MSG_CHUNK);
    snprintf(m->u.chunk.sha, KT_SHA_HEX, "%s", S_SHA_A);
    m->u.chunk.data = data;
    m->u.chunk.len = KT_CHUNK_MAX;
    m->u.chunk.total = KT_CHUNK_MAX;
    m->u.chunk.last = true;
    assert_int_equal(kt_wire_send(p->router, rid, m), 0);
    r = s_recv(p->dealer, NULL, back, why, sizeof(why));
    if (r < 0)
        fail_msg("%s", why);
    assert_int_equal(back->type, KT_MSG_CHUNK);
    assert_int_equal(back->u.chunk.len, KT_CHUNK_MAX);
    assert_memory_equal(back->u.chunk.data, data, KT_CHUNK_MAX);
    kt_msg_clear(back);
    free(data);

    kt_msg_init(m, KT_MSG_RESULT);
    snprintf(m->u.result.cell_id, KT_SHA_HEX, "%s", S_SHA_A);
    m->u.result.attempt = 1;
    snprintf(m->u.result.verdict, sizeof(m->u.result.verdict), "pass");
    m->u.result.sidecar = malloc(KT_MSG_MAX_SIDECAR + 1);
    assert_non_null(m->u.result.sidecar);
    memset(m->u.result.sidecar, 'j', KT_MSG_MAX_SIDECAR);
    m->u.result.sidecar[KT_MSG_MAX_SIDECAR] = '\0';
    m->u.result.sidecar_len = KT_MSG_MAX_SIDECAR;
    assert_int_equal(kt_wire_send(p->dealer, NULL, m), 0);
    zframe_t *rid2 = NULL;
    r = s_recv(p->router, &rid2, back, why, sizeof(why));
    if (r < 0)
        fail_msg("%s", why);
    assert_true(zframe_eq(rid, rid2));
    assert_int_equal(back->u.result.sidecar_len, KT_MSG_MAX_SIDECAR);
    assert_string_equal(back->u.result.sidecar, m->u.result.sidecar);
    kt_msg_clear(back);
    kt_msg_clear(m);
    zframe_destroy(&rid2);

    /* ERROR, the answer to what was not understood. */
    assert_int_equal(kt_wire_send_error(p->router, rid, KT_CODE_BAD_MESSAGE, "HELLO: %s", "bad"),
                     0);
    r = s_recv(p->dealer, NULL, back, why, sizeof(why));
    assert_int_equal(r, 0);
    assert_int_equal(back->type, KT_MSG_ERROR);
    assert_int_equal(back->u.error.code, 400);
    assert_string_equal(back->u.error.text, "HELLO: bad");

    /* A message the encoder refuses is not sent at all. */
    kt_msg_init(m, KT_MSG_HEARTBEAT);
    m->u.heartbeat.n_running = KT_MSG_MAX_RUNNING + 1;
    assert_int_equal(kt_wire_send(p->dealer, NULL, m), -EMSGSIZE);
    m->type = KT_MSG__COUNT;
    assert_int_equal(kt_wire_send(p->dealer, NULL, m), -EINVAL);
    assert_false(s_wait(p->router, 50));

    /* A ROUTER send to a peer that is not there fails instead of vanishing. */
    zframe_t *nobody = zframe_new("nobody", 6);
    s_ack(m, 1);
    assert_int_equal(kt_wire_send(p->router, nobody, m), -EHOSTUNREACH);
    zframe_destroy(&nobody);
    /* ...and the pair still works after it. */
    assert_int_equal(kt_wire_send(p->router, rid, m), 0);
    assert_int_equal(s_recv(p->dealer, NULL, back, why, sizeof(why)), 0);
    assert_int_equal(back->type, KT_MSG_RESULT_ACK);

    zframe_destroy(&rid);
    free(m);
    free(back);
}

/* Sends one garbage message, then a good one: the reader gets -EBADMSG with
 * a reason containing want, and then the good message. */
static void s_garbage_then_good(zsock_t *from, zsock_t *to, bool to_router,
                                const char *const *frames, const size_t *lens, size_t n,
                                const char *want)
{
    kt_msg_t *m = calloc(1, sizeof(*m)), *back = calloc(1, sizeof(*back));
    assert_non_null(m);
    assert_non_null(back);
    char why[512];
    s_send_raw(from, frames, lens, n);
    s_ack(m, 2);
    zframe_t *rid = NULL;
    if (to_router) {
        assert_int_equal(kt_wire_send(from, NULL, m), 0);
    } else {
        /* The router's sends name the dealer: frames[0] is its routing id. */
        zframe_t *dest = zframe_new(frames[0], lens[0]);
        assert_int_equal(kt_wire_send(from, dest, m), 0);
        zframe_destroy(&dest);
    }
    memset(back, 0x33, sizeof(*back));
    int r = s_recv(to, to_router ? &rid : NULL, back, why, sizeof(why));
    if (r != -EBADMSG)
        fail_msg("garbage (%zu frames, want '%s'): got %d", n, want, r);
    if (!strstr(why, want))
        fail_msg("garbage: reason '%s' lacks '%s'", why, want);
    /* A refused message leaves nothing to free, and the sender's routing id
     * so that the reader can answer ERROR. */
    kt_msg_clear(back);
    if (to_router) {
        assert_non_null(rid);
        assert_int_equal(kt_wire_send_error(to, rid, KT_CODE_BAD_MESSAGE, "%s", why), 0);
        zframe_destroy(&rid);
    }
    r = s_recv(to, to_router ? &rid : NULL, back, why, sizeof(why));
    if (r < 0)
        fail_msg("the good message after garbage: %d %s", r, why);
    assert_int_equal(back->type, KT_MSG_RESULT_ACK);
    assert_int_equal(back->u.ack.attempt, 2);
    zframe_destroy(&rid);
    if (to_router) {
        /* The ERROR answer reached the sender of the garbage. */
        assert_int_equal(s_recv(from, NULL, back, why, sizeof(why)), 0);
        assert_int_equal(back->type, KT_MSG_ERROR);
        assert_int_equal(back->u.error.code, KT_CODE_BAD_MESSAGE);
        assert_non_null(strstr(back->u.error.text, want));
    }
    assert_false(s_wait(to, 0));
    free(m);
    free(back);
}

static void test_garbage(void **state)
{
    s_pair_t *p = *state;
    static const uint8_t good_body[] = {0x82, 0xa7, 'c', 'e', 'l', 'l', '_', 'i', 'd', 0xa0,
                                        0xa7, 'a',  't', 't', 'e', 'm', 'p', 't', 0x01};
    const char *body = (const char *)good_body;
    size_t bl = sizeof(good_body);

    /* Dealer -> router. */
    {
        const char *f[] = {"KTSTR1"};
        size_t l[] = {6};
        s_garbage_then_good(p->dealer, p->router, true, f, l, 1, "1 frames, want 3");
    }
    {
        const char *f[] = {"KTSTR1", "CANCEL", body, "x", "y"};
        size_t l[] = {6, 6, bl, 1, 1};
        s_garbage_then_good(p->dealer, p->router, true, f, l, 5, "5 frames, want 3");
    }
    {
        const char *f[] = {"", "", ""};
        size_t l[] = {0, 0, 0};
        s_garbage_then_good(p->dealer, p->router, true, f, l, 3, "bad signature ''");
    }
    {
        const char *f[] = {"KTSTR9\x01", "CANCEL", body};
        size_t l[] = {7, 6, bl};
        s_garbage_then_good(p->dealer, p->router, true, f, l, 3,
                            "bad signature 'KTSTR9\\x01', want 'KTSTR1'");
    }
    {
        const char *f[] = {"KTSTR1", "CANCEL_ALL", body};
        size_t l[] = {6, 10, bl};
        s_garbage_then_good(p->dealer, p->router, true, f, l, 3,
                            "unknown message type 'CANCEL_ALL'");
    }
    {
        const char *f[] = {"KTSTR1", "CANCEL", "\xc1"};
        size_t l[] = {6, 6, 1};
        s_garbage_then_good(p->dealer, p->router, true, f, l, 3, "CANCEL: body is not one whole");
    }
    {
        /* A well-formed body whose cell_id is empty. */
        const char *f[] = {"KTSTR1", "CANCEL", body};
        size_t l[] = {6, 6, bl};
        s_garbage_then_good(p->dealer, p->router, true, f, l, 3,
                            "CANCEL: field 'cell_id': not 64 lowercase hex");
    }
    {
        char big[300];
        memset(big, 'T', sizeof(big));
        const char *f[] = {"KTSTR1", big, body};
        size_t l[] = {6, sizeof(big), bl};
        s_garbage_then_good(p->dealer, p->router, true, f, l, 3, "unknown message type 'TTTT");
    }

    /* Router -> dealer: learn the dealer's routing id first. */
    kt_msg_t *m = calloc(1, sizeof(*m));
    assert_non_null(m);
    char why[512];
    zframe_t *rid = NULL;
    s_ack(m, 1);
    assert_int_equal(kt_wire_send(p->dealer, NULL, m), 0);
    assert_int_equal(s_recv(p->router, &rid, m, why, sizeof(why)), 0);
    char id[256];
    size_t idl = zframe_size(rid);
    assert_true(idl < sizeof(id));
    memcpy(id, zframe_data(rid), idl);
    zframe_destroy(&rid);
    {
        const char *f[] = {id, "KTSTR1", "CANCEL"};
        size_t l[] = {idl, 6, 6};
        s_garbage_then_good(p->router, p->dealer, false, f, l, 3, "2 frames, want 3");
    }
    {
        const char *f[] = {id, "KTSTR1", "WELCOME", "\x80"};
        size_t l[] = {idl, 6, 7, 1};
        s_garbage_then_good(p->router, p->dealer, false, f, l, 4,
                            "WELCOME: field 'session': missing");
    }
    free(m);
}

/* A sender that does not read: sends stop with -EAGAIN at the high-water
 * mark instead of blocking the caller's loop. */
static void test_full_queue(void **state)
{
    s_pair_t *p = *state;
    kt_msg_t *m = calloc(1, sizeof(*m));
    assert_non_null(m);
    s_ack(m, 1);
    int r = 0;
    unsigned sent = 0;
    while (sent < 100000 && (r = kt_wire_send(p->dealer, NULL, m)) == 0)
        sent++;
    assert_int_equal(r, -EAGAIN);
    /* inproc queues hold the sender's and the receiver's HWM. */
    assert_true(sent >= 10000 && sent <= 20000 + 100);
    /* Every message that was taken arrives whole. */
    char why[512];
    unsigned got = 0;
    zframe_t *rid = NULL;
    while (s_wait(p->router, 100)) {
        int rr = kt_wire_recv(p->router, &rid, m, why, sizeof(why));
        zframe_destroy(&rid);
        if (rr == -EAGAIN)
            continue;
        assert_int_equal(rr, 0);
        assert_int_equal(m->type, KT_MSG_RESULT_ACK);
        got++;
    }
    assert_int_equal(got, sent);
    free(m);
}

/* Over TCP, a frame over ZMQ_MAXMSGSIZE makes libzmq drop the connection:
 * the oversized message never reaches the reader, and the dealer's
 * reconnection carries the next one. */
static void test_maxmsgsize_tcp(void **state)
{
    (void)state;
    zsock_t *router = zsock_new(ZMQ_ROUTER), *dealer = zsock_new(ZMQ_DEALER);
    assert_non_null(router);
    assert_non_null(dealer);
    kt_wire_socket_setup(router);
    kt_wire_socket_setup(dealer);
    int port = zsock_bind(router, "tcp://127.0.0.1:*");
    assert_true(port > 0);
    assert_int_equal(zsock_connect(dealer, "tcp://127.0.0.1:%d", port), 0);
    kt_msg_t *m = calloc(1, sizeof(*m)), *back = calloc(1, sizeof(*back));
    assert_non_null(m);
    assert_non_null(back);
    char why[512];
    zframe_t *rid = NULL;
    s_ack(m, 1);
    assert_int_equal(kt_wire_send(dealer, NULL, m), 0);
    assert_int_equal(s_recv(router, &rid, back, why, sizeof(why)), 0);
    zframe_destroy(&rid);

    size_t big = KT_MSG_MAX_BYTES + 1;
    char *body = calloc(1, big);
    assert_non_null(body);
    const char *f[] = {"KTSTR1", "RESULT", body};
    size_t l[] = {6, 6, big};
    s_send_raw(dealer, f, l, 3);
    free(body);
    assert_false(s_wait(router, 300));

    s_ack(m, 3);
    assert_int_equal(kt_wire_send(dealer, NULL, m), 0);
    assert_true(s_wait(router, 5000));
    assert_int_equal(kt_wire_recv(router, &rid, back, why, sizeof(why)), 0);
    assert_int_equal(back->type, KT_MSG_RESULT_ACK);
    assert_int_equal(back->u.ack.attempt, 3);
    zframe_destroy(&rid);
    free(m);
    free(back);
    zsock_destroy(&dealer);
    zsock_destroy(&router);
}

static double s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* What one small message costs through the transport and codec (printed;
 * bound loose for sanitizer builds). */
static void test_throughput(void **state)
{
    s_pair_t *p = *state;
    kt_msg_t *m = calloc(1, sizeof(*m)), *back = calloc(1, sizeof(*back));
    assert_non_null(m);
    assert_non_null(back);
    char why[512];
    const unsigned n = 20000, batch = 1000;
    double t0 = s_now();
    for (unsigned i = 0; i < n; i += batch) {
        for (unsigned j = 0; j < batch; j++) {
            s_ack(m, 1 + (i + j) % 3);
            assert_int_equal(kt_wire_send(p->dealer, NULL, m), 0);
        }
        for (unsigned j = 0; j < batch; j++) {
            zframe_t *rid = NULL;
            int r = kt_wire_recv(p->router, &rid, back, why, sizeof(why));
            if (r == -EAGAIN) {
                assert_true(s_wait(p->router, 2000));
                j--;
                continue;
            }
            assert_int_equal(r, 0);
            assert_int_equal(back->u.ack.attempt, 1 + (i + j) % 3);
            zframe_destroy(&rid);
        }
    }
    double us = (s_now() - t0) * 1e6 / n;
    print_message("# wire: RESULT_ACK dealer->router over inproc: %.2f us per message (%.0f/s)\n",
                  us, 1e6 / us);
    assert_true(us < 1000);
    free(m);
    free(back);
}

int main(void)
{
    zsys_init();
    zsys_set_linger(0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, s_pair_new, s_pair_free),
        cmocka_unit_test_setup_teardown(test_garbage, s_pair_new, s_pair_free),
        cmocka_unit_test_setup_teardown(test_full_queue, s_pair_new, s_pair_free),
        cmocka_unit_test(test_maxmsgsize_tcp),
        cmocka_unit_test_setup_teardown(test_throughput, s_pair_new, s_pair_free),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
