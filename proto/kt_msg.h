/* The fleet's wire protocol: one table of messages between ktstr-coord
 * (DEALER, connects) and ktstr-worker serve (ROUTER, binds). A message is one
 * ZMQ multipart message [signature, type, body]: signature "KTSTR1", type the
 * message name ("HELLO"), body a msgpack map. Decoders check every field's
 * type, range and size; anything else is -EBADMSG with a reason, never a
 * crash. proto/PROTOCOL.md describes fields, states and timers. */
#pragma once

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kt_scenario.h"

#define KT_PROTO_SIGNATURE "KTSTR1"
#define KT_PROTO_VERSION 2
#define KT_MSG_MAX_BYTES (4u << 20)   /* ZMQ_MAXMSGSIZE on every socket */
#define KT_CHUNK_MAX (256u << 10)     /* artifact bytes per CHUNK */
#define KT_MSG_MAX_RUNNING 256        /* cells listed in one HEARTBEAT */
#define KT_MSG_MAX_ARTIFACTS 1024     /* hashes listed in one HELLO */
#define KT_MSG_MAX_SIDECAR (2u << 20) /* sidecar JSON carried in RESULT */
#define KT_MSG_MAX_CONSOLE (64u << 10)
#define KT_ID_MAX 64                  /* worker / coordinator ids */
#define KT_SHA_HEX 65
#define KT_FETCH_MAX_CREDIT 64         /* CHUNKs one FETCH may ask for */
#define KT_ARTIFACT_MAX_BYTES (1ull << 32) /* kernel or scheduler binary */
#define KT_MSG_MAX_ATTEMPT 1000
#define KT_MSG_MAX_LEASE_MS (7u * 24 * 3600 * 1000)

/* Status codes of REFUSE and ERROR, grouped as in HTTP: 4xx the peer's
 * fault (do not resend as is), 5xx ours (may succeed later or elsewhere). */
enum kt_msg_code {
    KT_CODE_OK = 200,
    KT_CODE_BAD_MESSAGE = 400,     /* signature, frames or body not understood */
    KT_CODE_FORBIDDEN = 403,       /* not allowed (key, id) */
    KT_CODE_UNKNOWN_TYPE = 404,    /* not found: a message type or an artifact */
    KT_CODE_NO_SESSION = 409,      /* not valid in this session state (no WELCOME yet) */
    KT_CODE_GONE = 410,            /* session expired or replaced: OPEN again */
    KT_CODE_TOO_LARGE = 413,       /* over a size limit */
    KT_CODE_VERSION = 426,         /* protocol version not supported */
    KT_CODE_OVERSOLD = 429,        /* ASSIGN beyond the free capacity */
    KT_CODE_INTERNAL = 500,
    KT_CODE_UNAVAILABLE = 503,     /* draining, or an artifact cannot be had */
    KT_CODE_STORAGE = 507,         /* artifact cache or journal full */
};

enum kt_msg_type {
    KT_MSG_OPEN = 1,      /* coord -> worker: start a session */
    KT_MSG_HELLO,         /* worker -> coord: who I am, what I can do */
    KT_MSG_WELCOME,       /* coord -> worker: session accepted */
    KT_MSG_REFUSE,        /* either: session refused, with a reason */
    KT_MSG_HEARTBEAT,     /* both ways, every heartbeat_ms */
    KT_MSG_ASSIGN,        /* coord -> worker: run this cell (attempt, lease) */
    KT_MSG_ACCEPT,        /* worker -> coord: assignment taken (or refused: ok=false) */
    KT_MSG_FETCH,         /* worker -> coord: send me artifact bytes */
    KT_MSG_CHUNK,         /* coord -> worker: artifact bytes */
    KT_MSG_PROGRESS,      /* worker -> coord: booting / running / collecting */
    KT_MSG_RESULT,        /* worker -> coord: a finished cell */
    KT_MSG_RESULT_ACK,    /* coord -> worker: stored; worker may forget it */
    KT_MSG_CANCEL,        /* coord -> worker: stop this cell attempt */
    KT_MSG_DRAIN,         /* worker -> coord: finishing, taking nothing new */
    KT_MSG_ERROR,         /* either: a message was not understood */
    KT_MSG__COUNT,
};

/* "HELLO"...; NULL for a value outside the table. */
const char *kt_msg_type_name(enum kt_msg_type t);
/* 0, or -EBADMSG for a name that is not in the table (exact, case-sensitive). */
int kt_msg_type_parse(const char *name, size_t len, enum kt_msg_type *ret);

/* Everything a worker needs to run one cell of a run. */
typedef struct kt_cellspec {
    char cell_id[KT_SHA_HEX];
    char cell_name[256];            /* gauntlet/{scenario}/{preset}/{profile}/{kernel_label} */
    char run_id[40];
    char kernel_label[64];
    char kernel_version[64];
    char kernel_commit[48];         /* "" when unknown */
    char kernel_sha[KT_SHA_HEX];
    uint64_t kernel_size;
    char sched_name[KT_NAME_MAX];   /* "eevdf" for none */
    char sched_sha[KT_SHA_HEX];     /* "" for EEVDF */
    uint64_t sched_size;
    char sched_args[512];
    char profile[128];              /* flag profile name, "default" */
    char topology_preset[KT_NAME_MAX]; /* "" for an explicit shape */
    uint64_t memory_mib;
    kt_plan_t plan;                 /* resolved against the topology */
} kt_cellspec_t;

typedef struct kt_msg_artifact_ref {
    char sha[KT_SHA_HEX];
} kt_msg_artifact_ref_t;

typedef struct kt_msg_running {
    char cell_id[KT_SHA_HEX];
    uint32_t attempt;
} kt_msg_running_t;

typedef struct kt_msg {
    enum kt_msg_type type;
    union {
        struct {
            uint32_t version;
            char coordinator_id[KT_ID_MAX];
            uint64_t session;
        } open;
        struct {
            uint32_t version;
            char worker_id[KT_ID_MAX];
            uint64_t instance;          /* random per worker process start */
            char arch[16];
            uint32_t host_cpus, host_llcs;
            uint64_t memory_mib;
            char accel[8];              /* "kvm" | "tcg" */
            uint32_t canary_ms;
            uint32_t max_vcpus;         /* per VM */
            uint32_t free_vcpus;
            uint64_t free_memory_mib;
            uint32_t pending_results;   /* journaled, will be re-offered */
            bool draining;
            uint32_t n_artifacts;
            kt_msg_artifact_ref_t *artifacts;  /* owned by the msg */
        } hello;
        struct {
            uint64_t session;
            uint32_t heartbeat_ms;
            uint32_t lost_after_ms;
        } welcome;
        struct {
            uint32_t code;              /* 4xx: peer's fault, 5xx: ours */
            char reason[256];
        } refuse;
        struct {
            uint64_t seq;
            uint32_t free_vcpus;
            uint64_t free_memory_mib;
            uint32_t n_running;
            kt_msg_running_t running[KT_MSG_MAX_RUNNING];
        } heartbeat;
        struct {
            uint32_t attempt;
            uint32_t lease_ms;
            kt_cellspec_t spec;
        } assign;
        struct {
            char cell_id[KT_SHA_HEX];
            uint32_t attempt;
            bool ok;
            char reason[256];
        } accept;
        struct {
            char sha[KT_SHA_HEX];
            uint64_t offset;
            uint32_t credit;            /* chunks the worker can take now */
        } fetch;
        struct {
            char sha[KT_SHA_HEX];
            uint64_t offset;
            uint64_t total;
            uint32_t len;
            const uint8_t *data;        /* points into the received body */
            bool last;
        } chunk;
        struct {
            char cell_id[KT_SHA_HEX];
            uint32_t attempt;
            char phase[16];
        } progress;
        struct {
            char cell_id[KT_SHA_HEX];
            uint32_t attempt;
            char verdict[8];
            char reason[1024];
            char *sidecar;              /* JSON text, owned by the msg */
            size_t sidecar_len;
            char *console;              /* excerpt, owned by the msg */
            size_t console_len;
        } result;
        struct {
            char cell_id[KT_SHA_HEX];
            uint32_t attempt;
        } ack;                          /* RESULT_ACK and CANCEL */
        struct {
            uint32_t running;
        } drain;
        struct {
            uint32_t code;
            char text[256];
        } error;
    } u;
    /* Keeps chunk.data alive: the decoder's copy of the body. */
    void *_body;
} kt_msg_t;

/* msg->type must be set; fields zeroed. */
void kt_msg_init(kt_msg_t *msg, enum kt_msg_type type);
/* Frees what the message owns (hello.artifacts, result.sidecar/console, _body)
 * and NULLs those pointers; the other fields stay. */
void kt_msg_clear(kt_msg_t *msg);

/* Encode the body (the msgpack map), appended to out. 0, -EMSGSIZE for a
 * count or blob over its limit (the peer would refuse it), -EINVAL for a
 * type outside the table, -ENOMEM. */
int kt_msg_encode_body(const kt_msg_t *msg, msgpack_sbuffer *out);
/* Decode a body of the given type into ret (kt_msg_init'ed here; call
 * kt_msg_clear after use). A CHUNK keeps its own copy of the body
 * (ret->_body) for chunk.data; RESULT's sidecar and console are
 * NUL-terminated copies. -EBADMSG with a reason naming the field in why
 * (ret then holds nothing to free). */
int kt_msg_decode_body(enum kt_msg_type type, const void *body, size_t len, kt_msg_t *ret,
                       char *why, size_t why_len);

/* Validate a signature frame. */
bool kt_msg_signature_ok(const void *data, size_t len);

/* 64 lowercase hex digits (a sha256, a cell id). */
bool kt_msg_sha_valid(const char *s);
/* "bad message", ...; "unknown" for a code outside the table. */
const char *kt_msg_code_name(uint32_t code);

/* cellspec on its own (also used by the run store / journal). */
void kt_cellspec_pack(msgpack_packer *pk, const kt_cellspec_t *spec);
int kt_cellspec_decode(const msgpack_object *o, kt_cellspec_t *ret, char *why, size_t why_len);
/* vCPUs a cell needs (its topology's CPUs). */
unsigned kt_cellspec_vcpus(const kt_cellspec_t *spec);
