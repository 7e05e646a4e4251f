/* msgpack -> JSON conversion with a depth bound. */
#include "kt_mpjson.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

/* Guest text (kernel log lines, scheduler output) may hold invalid UTF-8:
 * keep it readable rather than dropping the whole result. */
static json_t *s_string(const char *p, size_t n)
{
    json_t *s = json_stringn(p, n);
    if (s)
        return s;
    char *copy = malloc(n + 1);
    if (!copy)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        copy[i] = (c >= 0x20 && c < 0x7f) || c == '\n' || c == '\t' ? (char)c : '?';
    }
    copy[n] = '\0';
    s = json_stringn(copy, n);
    free(copy);
    return s;
}

json_t *kt_mpjson_from_object(const msgpack_object *o, unsigned max_depth)
{
    if (max_depth == 0)
        return NULL;
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        return json_null();
    case MSGPACK_OBJECT_BOOLEAN:
        return json_boolean(o->via.boolean);
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        if (o->via.u64 > (uint64_t)INT64_MAX)
            return json_real((double)o->via.u64);
        return json_integer((json_int_t)o->via.u64);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return json_integer((json_int_t)o->via.i64);
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        /* JSON has no NaN/Inf. */
        return isfinite(o->via.f64) ? json_real(o->via.f64) : json_null();
    case MSGPACK_OBJECT_STR:
        return s_string(o->via.str.ptr, o->via.str.size);
    case MSGPACK_OBJECT_BIN: {
        json_t *s;
        char *hex = malloc((size_t)o->via.bin.size * 2 + 1);
        if (!hex)
            return NULL;
        for (uint32_t i = 0; i < o->via.bin.size; i++)
            snprintf(hex + 2 * i, 3, "%02x", (unsigned char)o->via.bin.ptr[i]);
        hex[(size_t)o->via.bin.size * 2] = '\0';
        s = json_string(hex);
        free(hex);
        return s;
    }
    case MSGPACK_OBJECT_ARRAY: {
        json_t *a = json_array();
        for (uint32_t i = 0; a && i < o->via.array.size; i++) {
            json_t *v = kt_mpjson_from_object(&o->via.array.ptr[i], max_depth - 1);
            if (!v || json_array_append_new(a, v) < 0) {
                json_decref(a);
                return NULL;
            }
        }
        return a;
    }
    case MSGPACK_OBJECT_MAP: {
        json_t *m = json_object();
        for (uint32_t i = 0; m && i < o->via.map.size; i++) {
            const msgpack_object_kv *kv = &o->via.map.ptr[i];
            if (kv->key.type != MSGPACK_OBJECT_STR || kv->key.via.str.size > 256 ||
                memchr(kv->key.via.str.ptr, '\0', kv->key.via.str.size)) {
                json_decref(m);
                return NULL;
            }
            char key[257];
            memcpy(key, kv->key.via.str.ptr, kv->key.via.str.size);
            key[kv->key.via.str.size] = '\0';
            json_t *v = kt_mpjson_from_object(&kv->val, max_depth - 1);
            if (!v || json_object_set_new(m, key, v) < 0) {
                json_decref(m);
                return NULL;
            }
        }
        return m;
    }
    default:
        return NULL;
    }
}
