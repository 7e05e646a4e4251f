/* garbage_peer: a misbehaving fleet peer for fleet_garbage.sh.
 *
 *   kt-garbage-peer coordinator ENDPOINT [--server-key Z85 --cert SECRET]
 *       A DEALER that connects to a worker (as a coordinator would) and
 *       sends malformed messages one by one: one frame, two frames, five
 *       frames, a bad signature, an unknown type, a body that is not
 *       msgpack, a truncated body, a body that is not a map, a field of the
 *       wrong type, an oversized frame; after each it prints what came back
 *       (the protocol wants an ERROR). Then a well-formed OPEN: the worker
 *       must still answer it (HELLO, or REFUSE with a reason). Exit 0 when it
 *       did, 1 when the worker went silent.
 *
 *   kt-garbage-peer worker BIND [--cert SECRET] [--seconds N]
 *       A ROUTER that poses as a worker: it answers every message a
 *       coordinator sends (OPEN, HEARTBEAT...) with garbage, rotating
 *       through the same kinds, for N seconds (default 600) or until
 *       SIGTERM. Prints one line per message received and what it answered.
 *
 * --cert is a CURVE secret certificate (ktstr-coord keygen's NAME.key_secret);
 * --server-key the worker's public key (Z85). Exit 2 on usage errors. */
#include <czmq.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kt_msg.h"
#include "kt_wire.h"

/* One kind of garbage: the frames after the routing id. */
typedef struct s_garbage {
    const char *name;
    zmsg_t *(*make)(void);
} s_garbage_t;

static zmsg_t *s_frames(const char *sig, const char *type, const void *body, size_t len)
{
    zmsg_t *m = zmsg_new();
    if (sig)
        zmsg_addmem(m, sig, strlen(sig));
    if (type)
        zmsg_addmem(m, type, strlen(type));
    if (body)
        zmsg_addmem(m, body, len);
    return m;
}

/* A well-formed OPEN body, for the variants that spoil one part of it. */
static void s_open_body(msgpack_sbuffer *sb)
{
    kt_msg_t m;
    kt_msg_init(&m, KT_MSG_OPEN);
    m.u.open.version = KT_PROTO_VERSION;
    snprintf(m.u.open.coordinator_id, sizeof(m.u.open.coordinator_id), "garbage-peer");
    m.u.open.session = 1;
    msgpack_sbuffer_init(sb);
    kt_msg_encode_body(&m, sb);
}

static zmsg_t *s_one_frame(void)
{
    return s_frames("not a ktstr message", NULL, NULL, 0);
}

static zmsg_t *s_two_frames(void)
{
    return s_frames(KT_PROTO_SIGNATURE, "OPEN", NULL, 0);
}

static zmsg_t *s_five_frames(void)
{
    zmsg_t *m = s_frames(KT_PROTO_SIGNATURE, "OPEN", "\x80", 1);
    zmsg_addstr(m, "extra");
    zmsg_addstr(m, "frames");
    return m;
}

static zmsg_t *s_bad_signature(void)
{
    msgpack_sbuffer sb;
    s_open_body(&sb);
    zmsg_t *m = s_frames("KTSTR0", "OPEN", sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return m;
}

static zmsg_t *s_unknown_type(void)
{
    return s_frames(KT_PROTO_SIGNATURE, "BOGUS", "\x80", 1);
}

static zmsg_t *s_not_msgpack(void)
{
    /* 0xc1 is the one byte msgpack never uses. */
    return s_frames(KT_PROTO_SIGNATURE, "OPEN", "\xc1\xc1\xff\x00garbage", 11);
}

static zmsg_t *s_truncated(void)
{
    msgpack_sbuffer sb;
    s_open_body(&sb);
    zmsg_t *m = s_frames(KT_PROTO_SIGNATURE, "OPEN", sb.data, sb.size / 2);
    msgpack_sbuffer_destroy(&sb);
    return m;
}

static zmsg_t *s_not_a_map(void)
{
    return s_frames(KT_PROTO_SIGNATURE, "OPEN", "\x93\x01\x02\x03", 4);
}

static zmsg_t *s_wrong_type(void)
{
    /* {"version": "one", "coordinator_id": 7, "session": -1} */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3);
    msgpack_pack_str_with_body(&pk, "version", 7);
    msgpack_pack_str_with_body(&pk, "one", 3);
    msgpack_pack_str_with_body(&pk, "coordinator_id", 14);
    msgpack_pack_int(&pk, 7);
    msgpack_pack_str_with_body(&pk, "session", 7);
    msgpack_pack_int(&pk, -1);
    zmsg_t *m = s_frames(KT_PROTO_SIGNATURE, "OPEN", sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return m;
}

static zmsg_t *s_session_less(void)
{
    /* A well-formed HEARTBEAT before any OPEN: no session to belong to. */
    kt_msg_t hb;
    kt_msg_init(&hb, KT_MSG_HEARTBEAT);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    kt_msg_encode_body(&hb, &sb);
    zmsg_t *m = s_frames(KT_PROTO_SIGNATURE, "HEARTBEAT", sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return m;
}

static zmsg_t *s_huge_string(void)
{
    /* A map announcing a 1 GiB string in 16 bytes. */
    static const unsigned char body[] = {0x81, 0xa7, 'v', 'e', 'r', 's', 'i', 'o', 'n',
                                         0xdb, 0x40, 0x00, 0x00, 0x00, 'x', 'y'};
    return s_frames(KT_PROTO_SIGNATURE, "OPEN", body, sizeof(body));
}

static const s_garbage_t s_kinds[] = {
    {"one frame", s_one_frame},
    {"two frames (no body)", s_two_frames},
    {"five frames", s_five_frames},
    {"bad signature", s_bad_signature},
    {"unknown type", s_unknown_type},
    {"body not msgpack", s_not_msgpack},
    {"truncated body", s_truncated},
    {"body not a map", s_not_a_map},
    {"fields of the wrong type", s_wrong_type},
    {"string length over the message", s_huge_string},
    {"heartbeat without a session", s_session_less},
};
#define S_N_KINDS (sizeof(s_kinds) / sizeof(s_kinds[0]))

static int s_curve_client(zsock_t *sock, const char *cert_path, const char *server_key)
{
    if (!cert_path && !server_key)
        return 0;
    if (!cert_path || !server_key) {
        fprintf(stderr, "garbage-peer: --cert and --server-key go together\n");
        return -EINVAL;
    }
    zcert_t *cert = zcert_load(cert_path);
    if (!cert) {
        fprintf(stderr, "garbage-peer: cannot load the certificate '%s'\n", cert_path);
        return -ENOENT;
    }
    zcert_apply(cert, sock);
    zcert_destroy(&cert);
    zsock_set_curve_serverkey(sock, server_key);
    return 0;
}

/* Prints whatever the worker answers within wait_ms; true when it answered. */
static bool s_show_replies(zsock_t *sock, const char *after, int wait_ms)
{
    bool any = false;
    zpoller_t *p = zpoller_new(sock, NULL);
    while (zpoller_wait(p, wait_ms)) {
        kt_msg_t m;
        char why[256] = "";
        int r = kt_wire_recv(sock, NULL, &m, why, sizeof(why));
        if (r == -EAGAIN)
            continue;
        any = true;
        if (r < 0) {
            printf("after %s: an answer we cannot read: %s\n", after, why);
            continue;
        }
        if (m.type == KT_MSG_ERROR)
            printf("after %s: ERROR %u %s\n", after, m.u.error.code, m.u.error.text);
        else if (m.type == KT_MSG_REFUSE)
            printf("after %s: REFUSE %u %s\n", after, m.u.refuse.code, m.u.refuse.reason);
        else if (m.type == KT_MSG_HELLO)
            printf("after %s: HELLO worker_id=%s\n", after, m.u.hello.worker_id);
        else
            printf("after %s: %s\n", after, kt_msg_type_name(m.type));
        kt_msg_clear(&m);
        wait_ms = 100;
    }
    zpoller_destroy(&p);
    if (!any)
        printf("after %s: no answer\n", after);
    fflush(stdout);
    return any;
}

static int s_as_coordinator(const char *endpoint, const char *cert, const char *server_key)
{
    zsock_t *sock = zsock_new(ZMQ_DEALER);
    if (!sock)
        return 1;
    /* Only the oversized frame needs a larger limit than the protocol's:
     * our own side must be allowed to send it. */
    zsock_set_linger(sock, 0);
    if (s_curve_client(sock, cert, server_key) < 0 || zsock_connect(sock, "%s", endpoint) < 0) {
        fprintf(stderr, "garbage-peer: cannot connect to '%s'\n", endpoint);
        zsock_destroy(&sock);
        return 2;
    }
    for (size_t i = 0; i < S_N_KINDS; i++) {
        zmsg_t *m = s_kinds[i].make();
        if (zmsg_send(&m, sock) < 0) {
            fprintf(stderr, "garbage-peer: send (%s): %s\n", s_kinds[i].name, zmq_strerror(errno));
            zmsg_destroy(&m);
        }
        s_show_replies(sock, s_kinds[i].name, i == 0 ? 3000 : 700);
    }
    /* Over ZMQ_MAXMSGSIZE: the worker's libzmq drops the connection; the
     * DEALER reconnects by itself and the worker must still be there. */
    size_t big = KT_MSG_MAX_BYTES + 4096;
    char *buf = calloc(1, big);
    if (buf) {
        zmsg_t *m = s_frames(KT_PROTO_SIGNATURE, "OPEN", buf, big);
        zmsg_send(&m, sock);
        free(buf);
        s_show_replies(sock, "a frame over the size limit", 700);
    }
    /* Now a real OPEN: the worker must still talk to us. */
    kt_msg_t open;
    kt_msg_init(&open, KT_MSG_OPEN);
    open.u.open.version = KT_PROTO_VERSION;
    snprintf(open.u.open.coordinator_id, sizeof(open.u.open.coordinator_id), "garbage-peer");
    open.u.open.session = 1;
    bool answered = false;
    for (int t = 0; t < 5 && !answered; t++) {
        kt_wire_send(sock, NULL, &open);
        answered = s_show_replies(sock, "a well-formed OPEN", 1000);
    }
    zsock_destroy(&sock);
    printf("%s\n", answered ? "WORKER_ANSWERED=1" : "WORKER_ANSWERED=0");
    return answered ? 0 : 1;
}

static int s_as_worker(const char *bind, const char *cert_path, int seconds)
{
    zsock_t *sock = zsock_new(ZMQ_ROUTER);
    if (!sock)
        return 1;
    zsock_set_linger(sock, 0);
    zsock_set_router_mandatory(sock, 0);
    if (cert_path) {
        zcert_t *cert = zcert_load(cert_path);
        if (!cert) {
            fprintf(stderr, "garbage-peer: cannot load the certificate '%s'\n", cert_path);
            zsock_destroy(&sock);
            return 2;
        }
        zcert_apply(cert, sock);
        zcert_destroy(&cert);
        zsock_set_curve_server(sock, 1);
    }
    if (zsock_bind(sock, "%s", bind) < 0) {
        fprintf(stderr, "garbage-peer: cannot bind '%s': %s\n", bind, zmq_strerror(errno));
        zsock_destroy(&sock);
        return 2;
    }
    printf("garbage-peer: posing as a worker on %s\n", bind);
    fflush(stdout);
    zpoller_t *p = zpoller_new(sock, NULL);
    int64_t end = zclock_mono() + (int64_t)seconds * 1000;
    unsigned n = 0;
    while (!zsys_interrupted && zclock_mono() < end) {
        if (!zpoller_wait(p, 200))
            continue;
        zmsg_t *in = zmsg_recv(sock);
        if (!in)
            break;
        zframe_t *id = zmsg_pop(in);
        char *sig = zmsg_size(in) >= 1 ? zframe_strdup(zmsg_first(in)) : NULL;
        char *type = zmsg_size(in) >= 2 ? zframe_strdup(zmsg_next(in)) : NULL;
        const s_garbage_t *g = &s_kinds[n % S_N_KINDS];
        printf("received %s (%zu frames); answered: %s\n", type ? type : "?", zmsg_size(in),
               g->name);
        fflush(stdout);
        free(sig);
        free(type);
        zmsg_destroy(&in);
        zmsg_t *out = g->make();
        zmsg_prepend(out, &id);
        zmsg_send(&out, sock);
        n++;
    }
    zpoller_destroy(&p);
    zsock_destroy(&sock);
    printf("garbage-peer: %u messages answered with garbage\n", n);
    return 0;
}

static void s_usage(FILE *f)
{
    fprintf(f, "usage: kt-garbage-peer coordinator ENDPOINT [--cert SECRET --server-key Z85]\n"
               "       kt-garbage-peer worker BIND [--cert SECRET] [--seconds N]\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"cert", required_argument, NULL, 'c'},
        {"server-key", required_argument, NULL, 'k'},
        {"seconds", required_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    const char *cert = NULL, *server_key = NULL;
    int seconds = 600, c;
    while ((c = getopt_long(argc, argv, "c:k:s:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            cert = optarg;
            break;
        case 'k':
            server_key = optarg;
            break;
        case 's':
            seconds = atoi(optarg);
            if (seconds < 1 || seconds > 86400) {
                fprintf(stderr, "garbage-peer: --seconds '%s': expected 1..86400\n", optarg);
                return 2;
            }
            break;
        case 'h':
            s_usage(stdout);
            return 0;
        default:
            s_usage(stderr);
            return 2;
        }
    }
    if (argc - optind != 2) {
        s_usage(stderr);
        return 2;
    }
    zsys_init();
    if (strcmp(argv[optind], "coordinator") == 0)
        return s_as_coordinator(argv[optind + 1], cert, server_key);
    if (strcmp(argv[optind], "worker") == 0)
        return s_as_worker(argv[optind + 1], cert, seconds);
    s_usage(stderr);
    return 2;
}
