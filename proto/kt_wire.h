/* Sending and receiving kt_msg over czmq sockets: the [signature, type,
 * body] framing, with an optional routing-id frame first on ROUTER sockets.
 * Every failure is a negative errno and a reason, never a crash. */
#pragma once

#include <czmq.h>

#include "kt_msg.h"

/* Encode and send. routing_id (may be NULL) is prepended for ROUTER sockets.
 * 0 or -errno. */
int kt_wire_send(zsock_t *sock, zframe_t *routing_id, const kt_msg_t *msg);

/* Receive one message. On a ROUTER socket *ret_routing_id receives the peer's
 * routing id (caller owns; pass NULL on DEALER sockets). -EBADMSG with a
 * reason for a bad signature, unknown type, wrong frame count or bad body
 * (the message is consumed either way); -EAGAIN when nothing was there. */
int kt_wire_recv(zsock_t *sock, zframe_t **ret_routing_id, kt_msg_t *ret, char *why, size_t why_len);

/* Apply the protocol's socket options (ZMQ_MAXMSGSIZE, linger, HWMs). */
void kt_wire_socket_setup(zsock_t *sock);
