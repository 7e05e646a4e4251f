/* msgpack -> JSON (jansson), for turning guest results into sidecars. */
#pragma once

#include <jansson.h>
#include <msgpack.h>

/* Converts o; maps need string keys; binary becomes a string of hex, depth
 * is bounded by max_depth. Caller owns the result; NULL on a bad object. */
json_t *kt_mpjson_from_object(const msgpack_object *o, unsigned max_depth);

/* For _cleanup_(kt_json_decrefp) on json_t * locals. */
static inline void kt_json_decrefp(json_t **j)
{
    json_decref(*j);
}
