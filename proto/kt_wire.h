/* Sending and receiving kt_msg over czmq sockets: the [signature, type,
 * body] framing, with an optional routing-id frame first on ROUTER sockets.
 * Every failure is a negative errno and a reason, never a crash. */
#pragma once

#include <czmq.h>

#include "kt_msg.h"

/* Encode and send, without blocking. routing_id (may be NULL; not taken) is
 * prepended for ROUTER sockets. 0 or -errno: -EAGAIN when the peer's queue
 * is full (high-water mark: it is not reading), -EHOSTUNREACH on a ROUTER
 * for a routing id that is not connected, -EMSGSIZE for a message over the
 * limits; nothing was sent then. */
int kt_wire_send(zsock_t *sock, zframe_t *routing_id, const kt_msg_t *msg);

/* Receive one message, without blocking (poll first). On a ROUTER socket
 * *ret_routing_id receives the peer's routing id (caller owns; pass NULL on
 * DEALER sockets), also when the message is bad, so the caller can answer
 * ERROR. -EBADMSG with a reason for a bad signature, unknown type, wrong
 * frame count or bad body (the message is consumed either way; ret holds
 * nothing to free); -EAGAIN when nothing was there. On success call
 * kt_msg_clear(ret) after use. */
int kt_wire_recv(zsock_t *sock, zframe_t **ret_routing_id, kt_msg_t *ret, char *why, size_t why_len);

/* Send ERROR {code, text}: the answer to a message that was not understood.
 * 0 or -errno as kt_wire_send. */
int kt_wire_send_error(zsock_t *sock, zframe_t *routing_id, uint32_t code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Apply the protocol's socket options: ZMQ_MAXMSGSIZE (a bigger frame drops
 * the peer's connection), linger 200 ms, HWMs 10000 messages; on ROUTER,
 * router_mandatory and router_handover; on DEALER, reconnect backoff 100 ms
 * to 2 s. Call before bind/connect. */
void kt_wire_socket_setup(zsock_t *sock);
