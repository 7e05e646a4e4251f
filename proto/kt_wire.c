/* kt_msg over czmq sockets: [routing id,] signature, type, body. Frames go
 * through libzmq's own send/recv on the czmq socket handle rather than
 * through zmsg_t: the dispatch bench moves tens of thousands of small
 * messages a second on two cores, and a zmsg costs four frame allocations
 * and a list per message. The bytes on the wire are the same. */
#include "kt_wire.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_SIG_LEN (sizeof(KT_PROTO_SIGNATURE) - 1)
/* Bodies under this are copied into the zmq message (libzmq copies small
 * ones anyway); bigger ones are handed over without a copy. */
#define S_ZEROCOPY_MIN 4096
#define S_HWM 10000
#define S_LINGER_MS 200

void kt_wire_socket_setup(zsock_t *sock)
{
    zsock_set_maxmsgsize(sock, (int)KT_MSG_MAX_BYTES);
    zsock_set_linger(sock, S_LINGER_MS);
    zsock_set_sndhwm(sock, S_HWM);
    zsock_set_rcvhwm(sock, S_HWM);
    int type = zsock_type(sock);
    if (type == ZMQ_ROUTER) {
        /* A message for a peer that is gone fails (-EHOSTUNREACH) instead of
         * vanishing; a peer reconnecting under the same routing id takes its
         * old one over. */
        zsock_set_router_mandatory(sock, 1);
        zsock_set_router_handover(sock, 1);
    } else if (type == ZMQ_DEALER) {
        zsock_set_reconnect_ivl(sock, 100);
        zsock_set_reconnect_ivl_max(sock, 2000);
    }
}

static void s_free_sbuffer(void *data, void *hint)
{
    (void)hint;
    free(data);
}

static int s_send_part(void *h, const void *data, size_t len, int flags)
{
    for (;;) {
        if (zmq_send(h, data, len, flags) >= 0)
            return 0;
        if (errno != EINTR)
            return -errno;
    }
}

int kt_wire_send(zsock_t *sock, zframe_t *routing_id, const kt_msg_t *msg)
{
    if (!sock || !msg)
        return -EINVAL;
    const char *name = kt_msg_type_name(msg->type);
    if (!name)
        return -EINVAL;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    int r = kt_msg_encode_body(msg, &sb);
    if (r < 0)
        goto out;
    if (sb.size > KT_MSG_MAX_BYTES) {
        r = -EMSGSIZE;
        goto out;
    }
    void *h = zsock_resolve(sock);
    /* Only the first part can fail for a full queue or an unknown peer;
     * once it is in, libzmq takes the rest of the message whole. */
    bool first = true;
    if (routing_id) {
        r = s_send_part(h, zframe_data(routing_id), zframe_size(routing_id),
                        ZMQ_SNDMORE | ZMQ_DONTWAIT);
        if (r < 0)
            goto out;
        first = false;
    }
    r = s_send_part(h, KT_PROTO_SIGNATURE, S_SIG_LEN, ZMQ_SNDMORE | (first ? ZMQ_DONTWAIT : 0));
    if (r < 0)
        goto out;
    r = s_send_part(h, name, strlen(name), ZMQ_SNDMORE);
    if (r < 0)
        goto out;
    if (sb.size < S_ZEROCOPY_MIN) {
        r = s_send_part(h, sb.data, sb.size, 0);
    } else {
        zmq_msg_t body;
        size_t size = sb.size;
        char *data = msgpack_sbuffer_release(&sb);
        if (zmq_msg_init_data(&body, data, size, s_free_sbuffer, NULL) < 0) {
            free(data);
            r = -ENOMEM;
            goto out;
        }
        while (zmq_msg_send(&body, h, 0) < 0) {
            if (errno != EINTR) {
                r = -errno;
                zmq_msg_close(&body);
                goto out;
            }
        }
        r = 0;
    }
out:
    msgpack_sbuffer_destroy(&sb);
    return r;
}

__attribute__((format(printf, 3, 4))) static int s_bad(char *why, size_t wl, const char *fmt, ...)
{
    if (why && wl) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, wl, fmt, ap);
        va_end(ap);
    }
    return -EBADMSG;
}

/* The type frame, printable, for a reason. */
static void s_printable(const void *data, size_t len, char *buf, size_t size)
{
    const unsigned char *p = data;
    size_t o = 0;
    for (size_t i = 0; i < len && o + 5 < size; i++) {
        if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\'')
            buf[o++] = (char)p[i];
        else
            o += (size_t)snprintf(buf + o, size - o, "\\x%02x", p[i]);
    }
    if (len > 0 && o + 5 >= size && o + 3 < size) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o < size ? o : size - 1] = '\0';
}

int kt_wire_recv(zsock_t *sock, zframe_t **ret_routing_id, kt_msg_t *ret, char *why, size_t why_len)
{
    if (!sock || !ret)
        return -EINVAL;
    if (why && why_len)
        why[0] = '\0';
    void *h = zsock_resolve(sock);
    bool router = zsock_type(sock) == ZMQ_ROUTER;
    const size_t want = router ? 4 : 3;
    zmq_msg_t part[4];
    size_t n = 0, kept = 0;
    int more = 1;
    while (more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, h, n == 0 ? ZMQ_DONTWAIT : 0) < 0) {
            int e = errno;
            zmq_msg_close(&m);
            if (n == 0 && e == EINTR)
                continue;
            if (n == 0)
                return -e;
            /* Parts of a message arrive together; this is the context going
             * away under us. */
            for (size_t i = 0; i < kept; i++)
                zmq_msg_close(&part[i]);
            return -e;
        }
        more = zmq_msg_more(&m);
        /* Extra parts are read and dropped: the whole message is consumed. */
        if (kept < want)
            part[kept++] = m;
        else
            zmq_msg_close(&m);
        n++;
    }

    int r;
    size_t base = 0;
    kt_msg_init(ret, KT_MSG_ERROR);
    if (router) {
        if (ret_routing_id)
            *ret_routing_id = zframe_new(zmq_msg_data(&part[0]), zmq_msg_size(&part[0]));
        base = 1;
    }
    if (n != want) {
        r = s_bad(why, why_len, "%zu frames, want %zu ([routing id,] signature, type, body)",
                  n - base, want - base);
        goto out;
    }
    if (!kt_msg_signature_ok(zmq_msg_data(&part[base]), zmq_msg_size(&part[base]))) {
        char sig[64];
        s_printable(zmq_msg_data(&part[base]), zmq_msg_size(&part[base]), sig, sizeof(sig));
        r = s_bad(why, why_len, "bad signature '%s', want '%s'", sig, KT_PROTO_SIGNATURE);
        goto out;
    }
    enum kt_msg_type type;
    if (kt_msg_type_parse(zmq_msg_data(&part[base + 1]), zmq_msg_size(&part[base + 1]), &type) <
        0) {
        char name[64];
        s_printable(zmq_msg_data(&part[base + 1]), zmq_msg_size(&part[base + 1]), name,
                    sizeof(name));
        r = s_bad(why, why_len, "unknown message type '%s'", name);
        goto out;
    }
    r = kt_msg_decode_body(type, zmq_msg_data(&part[base + 2]), zmq_msg_size(&part[base + 2]), ret,
                           why, why_len);
out:
    for (size_t i = 0; i < kept; i++)
        zmq_msg_close(&part[i]);
    return r;
}

int kt_wire_send_error(zsock_t *sock, zframe_t *routing_id, uint32_t code, const char *fmt, ...)
{
    kt_msg_t m;
    kt_msg_init(&m, KT_MSG_ERROR);
    m.u.error.code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m.u.error.text, sizeof(m.u.error.text), fmt, ap);
    va_end(ap);
    return kt_wire_send(sock, routing_id, &m);
}
