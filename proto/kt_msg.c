/* The fleet's message table: a msgpack codec for every message of
 * proto/kt_msg.h, and decoders that check every field's presence, type,
 * size and range before a peer's value reaches the daemon or coordinator.
 * Unknown keys are ignored (a newer peer may add fields); unknown message
 * types are not. PROTOCOL.md lists the fields and their limits. */
#include "kt_msg.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kt_chanmsg.h"
#include "kt_topology.h"

static const char *const s_type_names[KT_MSG__COUNT] = {
    [KT_MSG_OPEN] = "OPEN",           [KT_MSG_HELLO] = "HELLO",
    [KT_MSG_WELCOME] = "WELCOME",     [KT_MSG_REFUSE] = "REFUSE",
    [KT_MSG_HEARTBEAT] = "HEARTBEAT", [KT_MSG_ASSIGN] = "ASSIGN",
    [KT_MSG_ACCEPT] = "ACCEPT",       [KT_MSG_FETCH] = "FETCH",
    [KT_MSG_CHUNK] = "CHUNK",         [KT_MSG_PROGRESS] = "PROGRESS",
    [KT_MSG_RESULT] = "RESULT",       [KT_MSG_RESULT_ACK] = "RESULT_ACK",
    [KT_MSG_CANCEL] = "CANCEL",       [KT_MSG_DRAIN] = "DRAIN",
    [KT_MSG_ERROR] = "ERROR",
};

const char *kt_msg_type_name(enum kt_msg_type t)
{
    if ((int)t <= 0 || t >= KT_MSG__COUNT)
        return NULL;
    return s_type_names[t];
}

int kt_msg_type_parse(const char *name, size_t len, enum kt_msg_type *ret)
{
    if (!name)
        return -EBADMSG;
    for (int t = 1; t < KT_MSG__COUNT; t++) {
        const char *n = s_type_names[t];
        if (strlen(n) == len && memcmp(n, name, len) == 0) {
            *ret = (enum kt_msg_type)t;
            return 0;
        }
    }
    return -EBADMSG;
}

static const struct {
    uint32_t code;
    const char *name;
} s_codes[] = {
    {KT_CODE_OK, "ok"},
    {KT_CODE_BAD_MESSAGE, "bad message"},
    {KT_CODE_FORBIDDEN, "forbidden"},
    {KT_CODE_UNKNOWN_TYPE, "not found"},
    {KT_CODE_NO_SESSION, "no session"},
    {KT_CODE_GONE, "session gone"},
    {KT_CODE_TOO_LARGE, "too large"},
    {KT_CODE_VERSION, "protocol version not supported"},
    {KT_CODE_OVERSOLD, "over capacity"},
    {KT_CODE_INTERNAL, "internal error"},
    {KT_CODE_UNAVAILABLE, "unavailable"},
    {KT_CODE_STORAGE, "out of storage"},
};

const char *kt_msg_code_name(uint32_t code)
{
    for (size_t i = 0; i < sizeof(s_codes) / sizeof(s_codes[0]); i++)
        if (s_codes[i].code == code)
            return s_codes[i].name;
    return "unknown";
}

bool kt_msg_signature_ok(const void *data, size_t len)
{
    return data && len == strlen(KT_PROTO_SIGNATURE) && memcmp(data, KT_PROTO_SIGNATURE, len) == 0;
}

bool kt_msg_sha_valid(const char *s)
{
    if (!s)
        return false;
    for (int i = 0; i < KT_SHA_HEX - 1; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
    }
    return s[KT_SHA_HEX - 1] == '\0';
}

unsigned kt_cellspec_vcpus(const kt_cellspec_t *spec)
{
    return kt_topology_cpus(&spec->plan.topology);
}

/* Only the union member of the type is touched: HEARTBEAT's and ASSIGN's
 * are tens of KiB, and zeroing them for every RESULT_ACK shows in the
 * dispatch bench. */
static size_t s_member_size(enum kt_msg_type type)
{
    kt_msg_t *m = NULL;
    switch (type) {
    case KT_MSG_OPEN:
        return sizeof(m->u.open);
    case KT_MSG_HELLO:
        return sizeof(m->u.hello);
    case KT_MSG_WELCOME:
        return sizeof(m->u.welcome);
    case KT_MSG_REFUSE:
        return sizeof(m->u.refuse);
    case KT_MSG_HEARTBEAT:
        return sizeof(m->u.heartbeat);
    case KT_MSG_ASSIGN:
        return sizeof(m->u.assign);
    case KT_MSG_ACCEPT:
        return sizeof(m->u.accept);
    case KT_MSG_FETCH:
        return sizeof(m->u.fetch);
    case KT_MSG_CHUNK:
        return sizeof(m->u.chunk);
    case KT_MSG_PROGRESS:
        return sizeof(m->u.progress);
    case KT_MSG_RESULT:
        return sizeof(m->u.result);
    case KT_MSG_RESULT_ACK:
    case KT_MSG_CANCEL:
        return sizeof(m->u.ack);
    case KT_MSG_DRAIN:
        return sizeof(m->u.drain);
    case KT_MSG_ERROR:
        return sizeof(m->u.error);
    default:
        return sizeof(m->u);
    }
}

void kt_msg_init(kt_msg_t *msg, enum kt_msg_type type)
{
    msg->type = type;
    msg->_body = NULL;
    memset(&msg->u, 0, s_member_size(type));
}

void kt_msg_clear(kt_msg_t *msg)
{
    if (!msg)
        return;
    switch (msg->type) {
    case KT_MSG_HELLO:
        free(msg->u.hello.artifacts);
        msg->u.hello.artifacts = NULL;
        msg->u.hello.n_artifacts = 0;
        break;
    case KT_MSG_RESULT:
        free(msg->u.result.sidecar);
        msg->u.result.sidecar = NULL;
        msg->u.result.sidecar_len = 0;
        free(msg->u.result.console);
        msg->u.result.console = NULL;
        msg->u.result.console_len = 0;
        break;
    case KT_MSG_CHUNK:
        msg->u.chunk.data = NULL;
        msg->u.chunk.len = 0;
        break;
    default:
        break;
    }
    free(msg->_body);
    msg->_body = NULL;
}

/* ---- encoding ---- */

/* Fixed-size fields are packed up to their first NUL or their size, so a
 * field filled to the brim cannot run into the next one. */
static void s_pack_bstr(msgpack_packer *pk, const char *key, const char *buf, size_t size)
{
    size_t n = strnlen(buf, size);
    kt_mp_pack_str(pk, key);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, buf, n);
}

#define S_PACK_STR(pk, key, field) s_pack_bstr((pk), (key), (field), sizeof(field))

static void s_pack_key(msgpack_packer *pk, const char *key)
{
    kt_mp_pack_str(pk, key);
}

static void s_pack_kv_u64(msgpack_packer *pk, const char *key, uint64_t v)
{
    s_pack_key(pk, key);
    msgpack_pack_uint64(pk, v);
}

static void s_pack_kv_bool(msgpack_packer *pk, const char *key, bool v)
{
    s_pack_key(pk, key);
    if (v)
        msgpack_pack_true(pk);
    else
        msgpack_pack_false(pk);
}

void kt_cellspec_pack(msgpack_packer *pk, const kt_cellspec_t *spec)
{
    msgpack_pack_map(pk, 16);
    S_PACK_STR(pk, "cell_id", spec->cell_id);
    S_PACK_STR(pk, "cell_name", spec->cell_name);
    S_PACK_STR(pk, "run_id", spec->run_id);
    S_PACK_STR(pk, "kernel_label", spec->kernel_label);
    S_PACK_STR(pk, "kernel_version", spec->kernel_version);
    S_PACK_STR(pk, "kernel_commit", spec->kernel_commit);
    S_PACK_STR(pk, "kernel_sha", spec->kernel_sha);
    s_pack_kv_u64(pk, "kernel_size", spec->kernel_size);
    S_PACK_STR(pk, "sched_name", spec->sched_name);
    S_PACK_STR(pk, "sched_sha", spec->sched_sha);
    s_pack_kv_u64(pk, "sched_size", spec->sched_size);
    S_PACK_STR(pk, "sched_args", spec->sched_args);
    S_PACK_STR(pk, "profile", spec->profile);
    S_PACK_STR(pk, "topology_preset", spec->topology_preset);
    s_pack_kv_u64(pk, "memory_mib", spec->memory_mib);
    s_pack_key(pk, "plan");
    kt_plan_pack(pk, &spec->plan);
}

static void s_pack_cell_attempt(msgpack_packer *pk, const char *cell_id, size_t size,
                                uint32_t attempt)
{
    s_pack_bstr(pk, "cell_id", cell_id, size);
    s_pack_kv_u64(pk, "attempt", attempt);
}

int kt_msg_encode_body(const kt_msg_t *m, msgpack_sbuffer *out)
{
    msgpack_packer pk_, *pk = &pk_;
    msgpack_packer_init(pk, out, msgpack_sbuffer_write);

    switch (m->type) {
    case KT_MSG_OPEN:
        msgpack_pack_map(pk, 3);
        s_pack_kv_u64(pk, "version", m->u.open.version);
        S_PACK_STR(pk, "coordinator_id", m->u.open.coordinator_id);
        s_pack_kv_u64(pk, "session", m->u.open.session);
        break;
    case KT_MSG_HELLO: {
        const __typeof__(m->u.hello) *h = &m->u.hello;
        if (h->n_artifacts > KT_MSG_MAX_ARTIFACTS || (h->n_artifacts && !h->artifacts))
            return -EMSGSIZE;
        msgpack_pack_map(pk, 15);
        s_pack_kv_u64(pk, "version", h->version);
        S_PACK_STR(pk, "worker_id", h->worker_id);
        s_pack_kv_u64(pk, "instance", h->instance);
        S_PACK_STR(pk, "arch", h->arch);
        s_pack_kv_u64(pk, "host_cpus", h->host_cpus);
        s_pack_kv_u64(pk, "host_llcs", h->host_llcs);
        s_pack_kv_u64(pk, "memory_mib", h->memory_mib);
        S_PACK_STR(pk, "accel", h->accel);
        s_pack_kv_u64(pk, "canary_ms", h->canary_ms);
        s_pack_kv_u64(pk, "max_vcpus", h->max_vcpus);
        s_pack_kv_u64(pk, "free_vcpus", h->free_vcpus);
        s_pack_kv_u64(pk, "free_memory_mib", h->free_memory_mib);
        s_pack_kv_u64(pk, "pending_results", h->pending_results);
        s_pack_kv_bool(pk, "draining", h->draining);
        s_pack_key(pk, "artifacts");
        msgpack_pack_array(pk, h->n_artifacts);
        for (uint32_t i = 0; i < h->n_artifacts; i++) {
            size_t n = strnlen(h->artifacts[i].sha, KT_SHA_HEX);
            msgpack_pack_str(pk, n);
            msgpack_pack_str_body(pk, h->artifacts[i].sha, n);
        }
        break;
    }
    case KT_MSG_WELCOME:
        msgpack_pack_map(pk, 3);
        s_pack_kv_u64(pk, "session", m->u.welcome.session);
        s_pack_kv_u64(pk, "heartbeat_ms", m->u.welcome.heartbeat_ms);
        s_pack_kv_u64(pk, "lost_after_ms", m->u.welcome.lost_after_ms);
        break;
    case KT_MSG_REFUSE:
        msgpack_pack_map(pk, 2);
        s_pack_kv_u64(pk, "code", m->u.refuse.code);
        S_PACK_STR(pk, "reason", m->u.refuse.reason);
        break;
    case KT_MSG_HEARTBEAT: {
        const __typeof__(m->u.heartbeat) *hb = &m->u.heartbeat;
        if (hb->n_running > KT_MSG_MAX_RUNNING)
            return -EMSGSIZE;
        msgpack_pack_map(pk, 4);
        s_pack_kv_u64(pk, "seq", hb->seq);
        s_pack_kv_u64(pk, "free_vcpus", hb->free_vcpus);
        s_pack_kv_u64(pk, "free_memory_mib", hb->free_memory_mib);
        s_pack_key(pk, "running");
        msgpack_pack_array(pk, hb->n_running);
        for (uint32_t i = 0; i < hb->n_running; i++) {
            msgpack_pack_map(pk, 2);
            s_pack_cell_attempt(pk, hb->running[i].cell_id, KT_SHA_HEX, hb->running[i].attempt);
        }
        break;
    }
    case KT_MSG_ASSIGN:
        msgpack_pack_map(pk, 3);
        s_pack_kv_u64(pk, "attempt", m->u.assign.attempt);
        s_pack_kv_u64(pk, "lease_ms", m->u.assign.lease_ms);
        s_pack_key(pk, "spec");
        kt_cellspec_pack(pk, &m->u.assign.spec);
        break;
    case KT_MSG_ACCEPT:
        msgpack_pack_map(pk, 4);
        s_pack_cell_attempt(pk, m->u.accept.cell_id, KT_SHA_HEX, m->u.accept.attempt);
        s_pack_kv_bool(pk, "ok", m->u.accept.ok);
        S_PACK_STR(pk, "reason", m->u.accept.reason);
        break;
    case KT_MSG_FETCH:
        msgpack_pack_map(pk, 3);
        S_PACK_STR(pk, "sha", m->u.fetch.sha);
        s_pack_kv_u64(pk, "offset", m->u.fetch.offset);
        s_pack_kv_u64(pk, "credit", m->u.fetch.credit);
        break;
    case KT_MSG_CHUNK: {
        const __typeof__(m->u.chunk) *c = &m->u.chunk;
        if (c->len > KT_CHUNK_MAX || (c->len && !c->data))
            return -EMSGSIZE;
        msgpack_pack_map(pk, 5);
        S_PACK_STR(pk, "sha", c->sha);
        s_pack_kv_u64(pk, "offset", c->offset);
        s_pack_kv_u64(pk, "total", c->total);
        s_pack_key(pk, "data");
        msgpack_pack_bin(pk, c->len);
        msgpack_pack_bin_body(pk, c->data, c->len);
        s_pack_kv_bool(pk, "last", c->last);
        break;
    }
    case KT_MSG_PROGRESS:
        msgpack_pack_map(pk, 3);
        s_pack_cell_attempt(pk, m->u.progress.cell_id, KT_SHA_HEX, m->u.progress.attempt);
        S_PACK_STR(pk, "phase", m->u.progress.phase);
        break;
    case KT_MSG_RESULT: {
        const __typeof__(m->u.result) *r = &m->u.result;
        if (r->sidecar_len > KT_MSG_MAX_SIDECAR || r->console_len > KT_MSG_MAX_CONSOLE ||
            (r->sidecar_len && !r->sidecar) || (r->console_len && !r->console))
            return -EMSGSIZE;
        msgpack_pack_map(pk, 6);
        s_pack_cell_attempt(pk, r->cell_id, KT_SHA_HEX, r->attempt);
        S_PACK_STR(pk, "verdict", r->verdict);
        S_PACK_STR(pk, "reason", r->reason);
        s_pack_key(pk, "sidecar");
        msgpack_pack_str(pk, r->sidecar_len);
        msgpack_pack_str_body(pk, r->sidecar ? r->sidecar : "", r->sidecar_len);
        /* A console excerpt is whatever the guest printed: bytes, not text. */
        s_pack_key(pk, "console");
        msgpack_pack_bin(pk, r->console_len);
        msgpack_pack_bin_body(pk, r->console ? r->console : "", r->console_len);
        break;
    }
    case KT_MSG_RESULT_ACK:
    case KT_MSG_CANCEL:
        msgpack_pack_map(pk, 2);
        s_pack_cell_attempt(pk, m->u.ack.cell_id, KT_SHA_HEX, m->u.ack.attempt);
        break;
    case KT_MSG_DRAIN:
        msgpack_pack_map(pk, 1);
        s_pack_kv_u64(pk, "running", m->u.drain.running);
        break;
    case KT_MSG_ERROR:
        msgpack_pack_map(pk, 2);
        s_pack_kv_u64(pk, "code", m->u.error.code);
        S_PACK_STR(pk, "text", m->u.error.text);
        break;
    default:
        return -EINVAL;
    }
    /* msgpack_sbuffer_write only fails on allocation failure, which leaves
     * the buffer's data NULL. */
    return out->data ? 0 : -ENOMEM;
}

/* ---- decoding ---- */

/* Where a reason goes and how it starts: "ASSIGN: field 'spec.kernel_sha': ". */
typedef struct s_ctx {
    const char *type;
    const char *obj; /* "" or "spec." */
    char *why;
    size_t wl;
} s_ctx_t;

__attribute__((format(printf, 3, 4))) static int s_fail(const s_ctx_t *c, const char *key,
                                                        const char *fmt, ...)
{
    if (!c->why || !c->wl)
        return -EBADMSG;
    int n = key ? snprintf(c->why, c->wl, "%s: field '%s%s': ", c->type, c->obj, key)
                : snprintf(c->why, c->wl, "%s: ", c->type);
    if (n >= 0 && (size_t)n < c->wl) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->why + n, c->wl - (size_t)n, fmt, ap);
        va_end(ap);
    }
    /* Reasons quote the peer's values and end up in log lines: one line,
     * no terminal control bytes. */
    for (char *p = c->why; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    return -EBADMSG;
}

static const char *s_type_word(msgpack_object_type t)
{
    switch (t) {
    case MSGPACK_OBJECT_NIL:
        return "nil";
    case MSGPACK_OBJECT_BOOLEAN:
        return "a boolean";
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        return "an integer";
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return "a negative integer";
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        return "a float";
    case MSGPACK_OBJECT_STR:
        return "a string";
    case MSGPACK_OBJECT_ARRAY:
        return "an array";
    case MSGPACK_OBJECT_MAP:
        return "a map";
    case MSGPACK_OBJECT_BIN:
        return "binary";
    case MSGPACK_OBJECT_EXT:
        return "an extension";
    default:
        return "unknown";
    }
}

static const msgpack_object *s_field(const s_ctx_t *c, const msgpack_object *map, const char *key,
                                     msgpack_object_type type, const char *want, int *r)
{
    const msgpack_object *o = kt_mp_get(map, key);
    if (!o) {
        *r = s_fail(c, key, "missing");
        return NULL;
    }
    if (o->type != type) {
        *r = s_fail(c, key, "%s, not %s", s_type_word(o->type), want);
        return NULL;
    }
    return o;
}

static int s_u64(const s_ctx_t *c, const msgpack_object *map, const char *key, uint64_t lo,
                 uint64_t hi, uint64_t *ret)
{
    int r = 0;
    const msgpack_object *o =
        s_field(c, map, key, MSGPACK_OBJECT_POSITIVE_INTEGER, "an unsigned integer", &r);
    if (!o)
        return r;
    if (o->via.u64 < lo || o->via.u64 > hi)
        return s_fail(c, key, "%llu outside %llu..%llu", (unsigned long long)o->via.u64,
                      (unsigned long long)lo, (unsigned long long)hi);
    *ret = o->via.u64;
    return 0;
}

static int s_u32(const s_ctx_t *c, const msgpack_object *map, const char *key, uint32_t lo,
                 uint32_t hi, uint32_t *ret)
{
    uint64_t v;
    int r = s_u64(c, map, key, lo, hi, &v);
    if (r < 0)
        return r;
    *ret = (uint32_t)v;
    return 0;
}

static int s_bool(const s_ctx_t *c, const msgpack_object *map, const char *key, bool *ret)
{
    int r = 0;
    const msgpack_object *o = s_field(c, map, key, MSGPACK_OBJECT_BOOLEAN, "a boolean", &r);
    if (!o)
        return r;
    *ret = o->via.boolean;
    return 0;
}

enum {
    S_ANY = 0,
    S_NONEMPTY = 1 << 0,
    S_PRINTABLE = 1 << 1, /* ASCII 0x20..0x7e */
    S_TOKEN = 1 << 2,     /* ASCII 0x21..0x7e, no '/' or '\' */
};

static int s_str(const s_ctx_t *c, const msgpack_object *map, const char *key, char *buf,
                 size_t size, unsigned flags)
{
    int r = 0;
    const msgpack_object *o = s_field(c, map, key, MSGPACK_OBJECT_STR, "a string", &r);
    if (!o)
        return r;
    uint32_t n = o->via.str.size;
    const char *p = o->via.str.ptr;
    if (n >= size)
        return s_fail(c, key, "%u bytes, longer than %zu", n, size - 1);
    if ((flags & S_NONEMPTY) && n == 0)
        return s_fail(c, key, "empty");
    for (uint32_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (ch == 0)
            return s_fail(c, key, "contains a NUL byte");
        if ((flags & S_PRINTABLE) && (ch < 0x20 || ch > 0x7e))
            return s_fail(c, key, "byte 0x%02x at %u is not printable ASCII", ch, i);
        if ((flags & S_TOKEN) && (ch <= 0x20 || ch > 0x7e || ch == '/' || ch == '\\'))
            return s_fail(c, key,
                          "byte 0x%02x at %u is not allowed (printable ASCII, no blank "
                          "or slash)",
                          ch, i);
    }
    memcpy(buf, p, n);
    buf[n] = '\0';
    return 0;
}

static bool s_sha_obj_valid(const msgpack_object *o)
{
    if (o->type != MSGPACK_OBJECT_STR || o->via.str.size != KT_SHA_HEX - 1)
        return false;
    for (uint32_t i = 0; i < o->via.str.size; i++) {
        char ch = o->via.str.ptr[i];
        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f')))
            return false;
    }
    return true;
}

/* A sha256 (or cell id): 64 lowercase hex digits; "" too when allow_empty. */
static int s_sha(const s_ctx_t *c, const msgpack_object *map, const char *key, char *buf,
                 bool allow_empty)
{
    int r = 0;
    const msgpack_object *o = s_field(c, map, key, MSGPACK_OBJECT_STR, "a string", &r);
    if (!o)
        return r;
    if (allow_empty && o->via.str.size == 0) {
        buf[0] = '\0';
        return 0;
    }
    if (!s_sha_obj_valid(o))
        return s_fail(c, key, "not 64 lowercase hex digits%s", allow_empty ? " or empty" : "");
    memcpy(buf, o->via.str.ptr, KT_SHA_HEX - 1);
    buf[KT_SHA_HEX - 1] = '\0';
    return 0;
}

/* A blob sent as str or bin: a NUL-terminated malloc'ed copy (caller owns). */
static int s_blob(const s_ctx_t *c, const msgpack_object *map, const char *key, size_t max,
                  bool text, char **ret, size_t *ret_len)
{
    const msgpack_object *o = kt_mp_get(map, key);
    if (!o)
        return s_fail(c, key, "missing");
    const char *p;
    size_t n;
    if (o->type == MSGPACK_OBJECT_STR) {
        p = o->via.str.ptr;
        n = o->via.str.size;
    } else if (o->type == MSGPACK_OBJECT_BIN) {
        p = o->via.bin.ptr;
        n = o->via.bin.size;
    } else {
        return s_fail(c, key, "%s, not a string or binary", s_type_word(o->type));
    }
    if (n > max)
        return s_fail(c, key, "%zu bytes, over the limit %zu", n, max);
    if (text && memchr(p, '\0', n))
        return s_fail(c, key, "contains a NUL byte");
    char *copy = malloc(n + 1);
    if (!copy)
        return s_fail(c, key, "out of memory for %zu bytes", n);
    memcpy(copy, p, n);
    copy[n] = '\0';
    *ret = copy;
    *ret_len = n;
    return 0;
}

static int s_cell_attempt(const s_ctx_t *c, const msgpack_object *o, char *cell_id,
                          uint32_t *attempt)
{
    int r;
    if ((r = s_sha(c, o, "cell_id", cell_id, false)) < 0 ||
        (r = s_u32(c, o, "attempt", 1, KT_MSG_MAX_ATTEMPT, attempt)) < 0)
        return r;
    return 0;
}

/* cell_name becomes a path under the results folder: relative, no empty,
 * "." or ".." component. */
static bool s_cell_name_ok(const char *name)
{
    if (name[0] == '/')
        return false;
    const char *s = name;
    for (;;) {
        size_t l = strcspn(s, "/");
        if (l == 0 || (l == 1 && s[0] == '.') || (l == 2 && s[0] == '.' && s[1] == '.'))
            return false;
        if (!s[l])
            return true;
        s += l + 1;
    }
}

static int s_cellspec(const s_ctx_t *c, const msgpack_object *o, kt_cellspec_t *sp)
{
    int r;
    if ((r = s_sha(c, o, "cell_id", sp->cell_id, false)) < 0 ||
        (r = s_str(c, o, "cell_name", sp->cell_name, sizeof(sp->cell_name),
                   S_NONEMPTY | S_PRINTABLE)) < 0 ||
        (r = s_str(c, o, "run_id", sp->run_id, sizeof(sp->run_id), S_NONEMPTY | S_TOKEN)) < 0 ||
        (r = s_str(c, o, "kernel_label", sp->kernel_label, sizeof(sp->kernel_label),
                   S_NONEMPTY | S_TOKEN)) < 0 ||
        (r = s_str(c, o, "kernel_version", sp->kernel_version, sizeof(sp->kernel_version),
                   S_PRINTABLE)) < 0 ||
        (r = s_str(c, o, "kernel_commit", sp->kernel_commit, sizeof(sp->kernel_commit), S_TOKEN)) <
            0 ||
        (r = s_sha(c, o, "kernel_sha", sp->kernel_sha, false)) < 0 ||
        (r = s_u64(c, o, "kernel_size", 1, KT_ARTIFACT_MAX_BYTES, &sp->kernel_size)) < 0 ||
        (r = s_str(c, o, "sched_name", sp->sched_name, sizeof(sp->sched_name),
                   S_NONEMPTY | S_TOKEN)) < 0 ||
        (r = s_sha(c, o, "sched_sha", sp->sched_sha, true)) < 0 ||
        (r = s_u64(c, o, "sched_size", 0, KT_ARTIFACT_MAX_BYTES, &sp->sched_size)) < 0 ||
        (r = s_str(c, o, "sched_args", sp->sched_args, sizeof(sp->sched_args), S_ANY)) < 0 ||
        (r = s_str(c, o, "profile", sp->profile, sizeof(sp->profile), S_NONEMPTY | S_TOKEN)) < 0 ||
        (r = s_str(c, o, "topology_preset", sp->topology_preset, sizeof(sp->topology_preset),
                   S_TOKEN)) < 0 ||
        (r = s_u64(c, o, "memory_mib", 1, 1ull << 24, &sp->memory_mib)) < 0)
        return r;
    if (!s_cell_name_ok(sp->cell_name))
        return s_fail(c, "cell_name", "'%s' has an empty, '.' or '..' component", sp->cell_name);
    /* EEVDF ships nothing; a sched_ext scheduler ships a binary. */
    if (!sp->sched_sha[0] != (sp->sched_size == 0))
        return s_fail(c, "sched_size", "%llu with sched_sha '%s' (both empty or both set)",
                      (unsigned long long)sp->sched_size, sp->sched_sha);
    int rr = 0;
    const msgpack_object *plan = s_field(c, o, "plan", MSGPACK_OBJECT_MAP, "a map", &rr);
    if (!plan)
        return rr;
    char inner[256];
    inner[0] = '\0';
    if (kt_plan_decode(plan, &sp->plan, inner, sizeof(inner)) < 0)
        return s_fail(c, "plan", "%s", inner);
    return 0;
}

int kt_cellspec_decode(const msgpack_object *o, kt_cellspec_t *ret, char *why, size_t why_len)
{
    s_ctx_t c = {.type = "cellspec", .obj = "", .why = why, .wl = why_len};
    if (!o || o->type != MSGPACK_OBJECT_MAP)
        return s_fail(&c, NULL, "not a map");
    memset(ret, 0, sizeof(*ret));
    int r = s_cellspec(&c, o, ret);
    if (r < 0)
        memset(ret, 0, sizeof(*ret));
    return r;
}

static int s_decode_hello(const s_ctx_t *c, const msgpack_object *o, kt_msg_t *m)
{
    __typeof__(m->u.hello) *h = &m->u.hello;
    int r;
    if ((r = s_u32(c, o, "version", 1, 65535, &h->version)) < 0 ||
        (r = s_str(c, o, "worker_id", h->worker_id, sizeof(h->worker_id), S_NONEMPTY | S_TOKEN)) <
            0 ||
        (r = s_u64(c, o, "instance", 1, UINT64_MAX, &h->instance)) < 0 ||
        (r = s_str(c, o, "arch", h->arch, sizeof(h->arch), S_NONEMPTY | S_TOKEN)) < 0 ||
        (r = s_u32(c, o, "host_cpus", 1, 1u << 20, &h->host_cpus)) < 0 ||
        (r = s_u32(c, o, "host_llcs", 1, 1u << 20, &h->host_llcs)) < 0 ||
        (r = s_u64(c, o, "memory_mib", 1, 1ull << 32, &h->memory_mib)) < 0 ||
        (r = s_str(c, o, "accel", h->accel, sizeof(h->accel), S_NONEMPTY)) < 0 ||
        (r = s_u32(c, o, "canary_ms", 0, 600000, &h->canary_ms)) < 0 ||
        (r = s_u32(c, o, "max_vcpus", 0, 1u << 20, &h->max_vcpus)) < 0 ||
        (r = s_u32(c, o, "free_vcpus", 0, 1u << 20, &h->free_vcpus)) < 0 ||
        (r = s_u64(c, o, "free_memory_mib", 0, 1ull << 32, &h->free_memory_mib)) < 0 ||
        (r = s_u32(c, o, "pending_results", 0, 1u << 20, &h->pending_results)) < 0 ||
        (r = s_bool(c, o, "draining", &h->draining)) < 0)
        return r;
    if (strcmp(h->accel, "kvm") != 0 && strcmp(h->accel, "tcg") != 0)
        return s_fail(c, "accel", "'%s' is neither kvm nor tcg", h->accel);
    const msgpack_object *a = s_field(c, o, "artifacts", MSGPACK_OBJECT_ARRAY, "an array", &r);
    if (!a)
        return r;
    if (a->via.array.size > KT_MSG_MAX_ARTIFACTS)
        return s_fail(c, "artifacts", "%u entries, limit %d", a->via.array.size,
                      KT_MSG_MAX_ARTIFACTS);
    if (a->via.array.size) {
        h->artifacts = calloc(a->via.array.size, sizeof(*h->artifacts));
        if (!h->artifacts)
            return s_fail(c, "artifacts", "out of memory");
    }
    for (uint32_t i = 0; i < a->via.array.size; i++) {
        const msgpack_object *e = &a->via.array.ptr[i];
        if (!s_sha_obj_valid(e))
            return s_fail(c, "artifacts", "entry %u is not 64 lowercase hex digits", i);
        memcpy(h->artifacts[i].sha, e->via.str.ptr, KT_SHA_HEX - 1);
        h->artifacts[i].sha[KT_SHA_HEX - 1] = '\0';
        h->n_artifacts = i + 1;
    }
    return 0;
}

static int s_decode_heartbeat(const s_ctx_t *c, const msgpack_object *o, kt_msg_t *m)
{
    __typeof__(m->u.heartbeat) *hb = &m->u.heartbeat;
    int r;
    if ((r = s_u64(c, o, "seq", 0, UINT64_MAX, &hb->seq)) < 0 ||
        (r = s_u32(c, o, "free_vcpus", 0, 1u << 20, &hb->free_vcpus)) < 0 ||
        (r = s_u64(c, o, "free_memory_mib", 0, 1ull << 32, &hb->free_memory_mib)) < 0)
        return r;
    const msgpack_object *a = s_field(c, o, "running", MSGPACK_OBJECT_ARRAY, "an array", &r);
    if (!a)
        return r;
    if (a->via.array.size > KT_MSG_MAX_RUNNING)
        return s_fail(c, "running", "%u entries, limit %d", a->via.array.size, KT_MSG_MAX_RUNNING);
    char obj[32];
    s_ctx_t ec = *c;
    ec.obj = obj;
    for (uint32_t i = 0; i < a->via.array.size; i++) {
        const msgpack_object *e = &a->via.array.ptr[i];
        snprintf(obj, sizeof(obj), "running[%u].", i);
        if (e->type != MSGPACK_OBJECT_MAP)
            return s_fail(c, "running", "entry %u is %s, not a map", i, s_type_word(e->type));
        if ((r = s_cell_attempt(&ec, e, hb->running[i].cell_id, &hb->running[i].attempt)) < 0)
            return r;
    }
    hb->n_running = a->via.array.size;
    return 0;
}

static int s_decode_chunk(const s_ctx_t *c, const msgpack_object *o, kt_msg_t *m)
{
    __typeof__(m->u.chunk) *ch = &m->u.chunk;
    int r;
    if ((r = s_sha(c, o, "sha", ch->sha, false)) < 0 ||
        (r = s_u64(c, o, "offset", 0, KT_ARTIFACT_MAX_BYTES, &ch->offset)) < 0 ||
        (r = s_u64(c, o, "total", 0, KT_ARTIFACT_MAX_BYTES, &ch->total)) < 0 ||
        (r = s_bool(c, o, "last", &ch->last)) < 0)
        return r;
    const msgpack_object *d = s_field(c, o, "data", MSGPACK_OBJECT_BIN, "binary", &r);
    if (!d)
        return r;
    if (d->via.bin.size > KT_CHUNK_MAX)
        return s_fail(c, "data", "%u bytes, over the limit %u", d->via.bin.size, KT_CHUNK_MAX);
    uint64_t end = ch->offset + d->via.bin.size;
    if (end > ch->total)
        return s_fail(c, "data", "offset %llu + %u bytes runs past total %llu",
                      (unsigned long long)ch->offset, d->via.bin.size,
                      (unsigned long long)ch->total);
    if (ch->last != (end == ch->total))
        return s_fail(c, "last", "%s, but the chunk ends at %llu of %llu",
                      ch->last ? "true" : "false", (unsigned long long)end,
                      (unsigned long long)ch->total);
    if (d->via.bin.size == 0 && !ch->last)
        return s_fail(c, "data", "empty, and not the last chunk");
    ch->len = d->via.bin.size;
    ch->data = (const uint8_t *)d->via.bin.ptr;
    return 0;
}

static int s_decode_result(const s_ctx_t *c, const msgpack_object *o, kt_msg_t *m)
{
    __typeof__(m->u.result) *res = &m->u.result;
    int r;
    if ((r = s_cell_attempt(c, o, res->cell_id, &res->attempt)) < 0 ||
        (r = s_str(c, o, "verdict", res->verdict, sizeof(res->verdict), S_NONEMPTY)) < 0 ||
        (r = s_str(c, o, "reason", res->reason, sizeof(res->reason), S_ANY)) < 0)
        return r;
    static const char *const verdicts[] = {"pass", "fail", "error", "skip"};
    bool known = false;
    for (size_t i = 0; i < sizeof(verdicts) / sizeof(verdicts[0]); i++)
        known |= strcmp(res->verdict, verdicts[i]) == 0;
    if (!known)
        return s_fail(c, "verdict", "'%s' is not pass, fail, error or skip", res->verdict);
    if ((r = s_blob(c, o, "sidecar", KT_MSG_MAX_SIDECAR, true, &res->sidecar, &res->sidecar_len)) <
            0 ||
        (r = s_blob(c, o, "console", KT_MSG_MAX_CONSOLE, false, &res->console, &res->console_len)) <
            0)
        return r;
    if (res->console_len == 0) {
        free(res->console);
        res->console = NULL;
    }
    return 0;
}

static bool s_phase_ok(const char *p)
{
    for (; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || *p == '_'))
            return false;
    return true;
}

static int s_decode(const s_ctx_t *c, const msgpack_object *o, kt_msg_t *m)
{
    int r;
    switch (m->type) {
    case KT_MSG_OPEN:
        if ((r = s_u32(c, o, "version", 1, 65535, &m->u.open.version)) < 0 ||
            (r = s_str(c, o, "coordinator_id", m->u.open.coordinator_id,
                       sizeof(m->u.open.coordinator_id), S_NONEMPTY | S_TOKEN)) < 0 ||
            (r = s_u64(c, o, "session", 1, UINT64_MAX, &m->u.open.session)) < 0)
            return r;
        return 0;
    case KT_MSG_HELLO:
        return s_decode_hello(c, o, m);
    case KT_MSG_WELCOME:
        if ((r = s_u64(c, o, "session", 1, UINT64_MAX, &m->u.welcome.session)) < 0 ||
            (r = s_u32(c, o, "heartbeat_ms", 10, 60000, &m->u.welcome.heartbeat_ms)) < 0 ||
            (r = s_u32(c, o, "lost_after_ms", 20, 600000, &m->u.welcome.lost_after_ms)) < 0)
            return r;
        if (m->u.welcome.lost_after_ms <= m->u.welcome.heartbeat_ms)
            return s_fail(c, "lost_after_ms", "%u is not over heartbeat_ms %u",
                          m->u.welcome.lost_after_ms, m->u.welcome.heartbeat_ms);
        return 0;
    case KT_MSG_REFUSE:
        if ((r = s_u32(c, o, "code", 400, 599, &m->u.refuse.code)) < 0 ||
            (r = s_str(c, o, "reason", m->u.refuse.reason, sizeof(m->u.refuse.reason),
                       S_NONEMPTY)) < 0)
            return r;
        return 0;
    case KT_MSG_HEARTBEAT:
        return s_decode_heartbeat(c, o, m);
    case KT_MSG_ASSIGN: {
        if ((r = s_u32(c, o, "attempt", 1, KT_MSG_MAX_ATTEMPT, &m->u.assign.attempt)) < 0 ||
            (r = s_u32(c, o, "lease_ms", 1, KT_MSG_MAX_LEASE_MS, &m->u.assign.lease_ms)) < 0)
            return r;
        const msgpack_object *spec = s_field(c, o, "spec", MSGPACK_OBJECT_MAP, "a map", &r);
        if (!spec)
            return r;
        s_ctx_t sc = *c;
        sc.obj = "spec.";
        memset(&m->u.assign.spec, 0, sizeof(m->u.assign.spec));
        return s_cellspec(&sc, spec, &m->u.assign.spec);
    }
    case KT_MSG_ACCEPT:
        if ((r = s_cell_attempt(c, o, m->u.accept.cell_id, &m->u.accept.attempt)) < 0 ||
            (r = s_bool(c, o, "ok", &m->u.accept.ok)) < 0 ||
            (r = s_str(c, o, "reason", m->u.accept.reason, sizeof(m->u.accept.reason), S_ANY)) < 0)
            return r;
        if (!m->u.accept.ok && !m->u.accept.reason[0])
            return s_fail(c, "reason", "empty, but ok is false");
        return 0;
    case KT_MSG_FETCH:
        if ((r = s_sha(c, o, "sha", m->u.fetch.sha, false)) < 0 ||
            (r = s_u64(c, o, "offset", 0, KT_ARTIFACT_MAX_BYTES, &m->u.fetch.offset)) < 0 ||
            (r = s_u32(c, o, "credit", 1, KT_FETCH_MAX_CREDIT, &m->u.fetch.credit)) < 0)
            return r;
        return 0;
    case KT_MSG_CHUNK:
        return s_decode_chunk(c, o, m);
    case KT_MSG_PROGRESS:
        if ((r = s_cell_attempt(c, o, m->u.progress.cell_id, &m->u.progress.attempt)) < 0 ||
            (r = s_str(c, o, "phase", m->u.progress.phase, sizeof(m->u.progress.phase),
                       S_NONEMPTY)) < 0)
            return r;
        if (!s_phase_ok(m->u.progress.phase))
            return s_fail(c, "phase", "'%s' is not a lowercase word", m->u.progress.phase);
        return 0;
    case KT_MSG_RESULT:
        return s_decode_result(c, o, m);
    case KT_MSG_RESULT_ACK:
    case KT_MSG_CANCEL:
        return s_cell_attempt(c, o, m->u.ack.cell_id, &m->u.ack.attempt);
    case KT_MSG_DRAIN:
        return s_u32(c, o, "running", 0, 1u << 20, &m->u.drain.running);
    case KT_MSG_ERROR:
        if ((r = s_u32(c, o, "code", 400, 599, &m->u.error.code)) < 0 ||
            (r = s_str(c, o, "text", m->u.error.text, sizeof(m->u.error.text), S_ANY)) < 0)
            return r;
        return 0;
    default:
        return s_fail(c, NULL, "unknown message type");
    }
}

int kt_msg_decode_body(enum kt_msg_type type, const void *body, size_t len, kt_msg_t *ret,
                       char *why, size_t why_len)
{
    const char *name = kt_msg_type_name(type);
    s_ctx_t c = {.type = name ? name : "?", .obj = "", .why = why, .wl = why_len};
    if (why && why_len)
        why[0] = '\0';
    if (!name) {
        kt_msg_init(ret, KT_MSG_ERROR);
        return s_fail(&c, NULL, "unknown message type %d", (int)type);
    }
    kt_msg_init(ret, type);
    if (!body || len == 0)
        return s_fail(&c, NULL, "empty body");
    if (len > KT_MSG_MAX_BYTES)
        return s_fail(&c, NULL, "body of %zu bytes, over the limit %u", len, KT_MSG_MAX_BYTES);

    /* chunk.data points into the body, so a CHUNK decodes from its own copy. */
    if (type == KT_MSG_CHUNK) {
        ret->_body = malloc(len);
        if (!ret->_body)
            return s_fail(&c, NULL, "out of memory for %zu bytes", len);
        memcpy(ret->_body, body, len);
        body = ret->_body;
    }

    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    int r;
    if (kt_mp_unpack_one(body, len, &up) < 0) {
        r = s_fail(&c, NULL, "body is not one whole msgpack object (%zu bytes)", len);
    } else if (up.data.type != MSGPACK_OBJECT_MAP) {
        r = s_fail(&c, NULL, "body is %s, not a map", s_type_word(up.data.type));
    } else {
        r = s_decode(&c, &up.data, ret);
    }
    msgpack_unpacked_destroy(&up);
    if (r < 0) {
        kt_msg_clear(ret);
        kt_msg_init(ret, type);
    }
    return r;
}
