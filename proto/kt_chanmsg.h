/* The messages on the host <-> guest channel (virtio-serial port
 * "org.ktstr.0"), each a msgpack map with a "t" key, in kt_frame frames.
 *
 * host -> guest:  {"t":"cell", ...kt_cell_msg_t...}
 * guest -> host:  {"t":"hello", "topology":{nodes,llcs,cores,threads,cpus},
 *                  "cpus_online":N, "kernel":"6.12.117", "debug_kernel":bool}
 *                 {"t":"event", "ms":uptime_ms, "phase":"...", "msg":"..."}
 *                 {"t":"hb", "ms":uptime_ms}
 *                 {"t":"result", "verdict":"pass|fail|error|skip", "reason":"...",
 *                  ...result fields, see worker/guest/README...}
 * Decoders check every field's type, range and size. */
#pragma once

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>

#include "kt_scenario.h"

#define KT_CELL_ID_MAX 65
#define KT_SCHED_ARGS_MAX 32
#define KT_SCHED_ARG_LEN 128
#define KT_PATH_MAX 256

typedef struct kt_cell_msg {
    char cell_id[KT_CELL_ID_MAX];
    char sched_name[KT_NAME_MAX];          /* "eevdf" for none */
    char sched_path[KT_PATH_MAX];          /* path in the guest, "" for EEVDF */
    unsigned n_sched_args;
    char sched_args[KT_SCHED_ARGS_MAX][KT_SCHED_ARG_LEN];
    uint32_t sched_enable_timeout_ms;      /* wait for state = enabled */
    uint32_t settle_ms;                    /* after enable, before workloads */
    uint32_t heartbeat_ms;
    kt_plan_t plan;
} kt_cell_msg_t;

void kt_cell_msg_init(kt_cell_msg_t *m);

/* Appends the encoded map to out. 0 or -ENOMEM. */
int kt_cell_msg_encode(const kt_cell_msg_t *m, msgpack_sbuffer *out);
/* Strict decode of a whole frame body. -EBADMSG with a reason naming the
 * field in why. */
int kt_cell_msg_decode(const void *body, size_t len, kt_cell_msg_t *ret, char *why, size_t why_len);

/* The plan alone, as it appears under "plan" in the cell message; also
 * carried inside the fleet's ASSIGN. Decode is as strict as the cell's. */
void kt_plan_pack(msgpack_packer *pk, const kt_plan_t *p);
int kt_plan_decode(const msgpack_object *o, kt_plan_t *ret, char *why, size_t why_len);

/* The "t" of a decoded frame, copied into type (at most len bytes). 0,
 * or -EBADMSG when the body is not a map with a string "t". */
int kt_chanmsg_type(const msgpack_object *obj, char *type, size_t len);

/* True when every container and string the bytes announce could fit in
 * them: run before msgpack-c, which allocates on the announced sizes. */
bool kt_mp_plausible(const void *data, size_t len);
/* Unpack exactly one object filling the whole body (plausibility-checked).
 * 0 or -EBADMSG. The caller initialised up and destroys it. */
int kt_mp_unpack_one(const void *body, size_t len, msgpack_unpacked *up);

/* Helpers for reading msgpack maps strictly (NULL when absent). */
const msgpack_object *kt_mp_get(const msgpack_object *map, const char *key);
int kt_mp_get_str(const msgpack_object *map, const char *key, char *buf, size_t len);
int kt_mp_get_u64(const msgpack_object *map, const char *key, uint64_t *ret);
int kt_mp_get_i64(const msgpack_object *map, const char *key, int64_t *ret);
int kt_mp_get_bool(const msgpack_object *map, const char *key, bool *ret);
int kt_mp_get_double(const msgpack_object *map, const char *key, double *ret);

/* Packing helpers used by both sides. */
void kt_mp_pack_str(msgpack_packer *pk, const char *s);
void kt_mp_pack_kv_str(msgpack_packer *pk, const char *key, const char *value);
void kt_mp_pack_kv_u64(msgpack_packer *pk, const char *key, uint64_t value);
void kt_mp_pack_kv_i64(msgpack_packer *pk, const char *key, int64_t value);
void kt_mp_pack_kv_double(msgpack_packer *pk, const char *key, double value);
void kt_mp_pack_kv_bool(msgpack_packer *pk, const char *key, bool value);
