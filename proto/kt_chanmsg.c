/* The host <-> guest channel messages: the cell message codec and strict
 * msgpack map accessors shared by both sides. */
#include "kt_chanmsg.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "kt_checks.h"
#include "kt_cleanup.h"

void kt_cell_msg_init(kt_cell_msg_t *m)
{
    memset(m, 0, sizeof(*m));
    snprintf(m->sched_name, sizeof(m->sched_name), "eevdf");
    m->sched_enable_timeout_ms = 20000;
    m->settle_ms = 500;
    m->heartbeat_ms = 1000;
}

/* ---- packing helpers ---- */

void kt_mp_pack_str(msgpack_packer *pk, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s ? s : "", n);
}

void kt_mp_pack_kv_str(msgpack_packer *pk, const char *key, const char *value)
{
    kt_mp_pack_str(pk, key);
    kt_mp_pack_str(pk, value);
}

void kt_mp_pack_kv_u64(msgpack_packer *pk, const char *key, uint64_t value)
{
    kt_mp_pack_str(pk, key);
    msgpack_pack_uint64(pk, value);
}

void kt_mp_pack_kv_i64(msgpack_packer *pk, const char *key, int64_t value)
{
    kt_mp_pack_str(pk, key);
    msgpack_pack_int64(pk, value);
}

void kt_mp_pack_kv_double(msgpack_packer *pk, const char *key, double value)
{
    kt_mp_pack_str(pk, key);
    msgpack_pack_double(pk, value);
}

void kt_mp_pack_kv_bool(msgpack_packer *pk, const char *key, bool value)
{
    kt_mp_pack_str(pk, key);
    if (value)
        msgpack_pack_true(pk);
    else
        msgpack_pack_false(pk);
}

/* ---- strict accessors ---- */

const msgpack_object *kt_mp_get(const msgpack_object *map, const char *key)
{
    if (!map || map->type != MSGPACK_OBJECT_MAP)
        return NULL;
    size_t klen = strlen(key);
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object *k = &map->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == klen &&
            memcmp(k->via.str.ptr, key, klen) == 0)
            return &map->via.map.ptr[i].val;
    }
    return NULL;
}

int kt_mp_get_str(const msgpack_object *map, const char *key, char *buf, size_t len)
{
    const msgpack_object *o = kt_mp_get(map, key);
    if (!o)
        return -ENOENT;
    if (o->type != MSGPACK_OBJECT_STR)
        return -EBADMSG;
    if (o->via.str.size >= len)
        return -E2BIG;
    if (memchr(o->via.str.ptr, '\0', o->via.str.size))
        return -EBADMSG;
    memcpy(buf, o->via.str.ptr, o->via.str.size);
    buf[o->via.str.size] = '\0';
    return 0;
}

int kt_mp_get_u64(const msgpack_object *map, const char *key, uint64_t *ret)
{
    const msgpack_object *o = kt_mp_get(map, key);
    if (!o)
        return -ENOENT;
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return -EBADMSG;
    *ret = o->via.u64;
    return 0;
}

int kt_mp_get_i64(const msgpack_object *map, const char *key, int64_t *ret)
{
    const msgpack_object *o = kt_mp_get(map, key);
    if (!o)
        return -ENOENT;
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        if (o->via.u64 > INT64_MAX)
            return -ERANGE;
        *ret = (int64_t)o->via.u64;
        return 0;
    }
    if (o->type != MSGPACK_OBJECT_NEGATIVE_INTEGER)
        return -EBADMSG;
    *ret = o->via.i64;
    return 0;
}

int kt_mp_get_bool(const msgpack_object *map, const char *key, bool *ret)
{
    const msgpack_object *o = kt_mp_get(map, key);
    if (!o)
        return -ENOENT;
    if (o->type != MSGPACK_OBJECT_BOOLEAN)
        return -EBADMSG;
    *ret = o->via.boolean;
    return 0;
}

int kt_mp_get_double(const msgpack_object *map, const char *key, double *ret)
{
    const msgpack_object *o = kt_mp_get(map, key);
    if (!o)
        return -ENOENT;
    switch (o->type) {
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        if (!isfinite(o->via.f64))
            return -EBADMSG;
        *ret = o->via.f64;
        return 0;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        *ret = (double)o->via.u64;
        return 0;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        *ret = (double)o->via.i64;
        return 0;
    default:
        return -EBADMSG;
    }
}

int kt_chanmsg_type(const msgpack_object *obj, char *type, size_t len)
{
    if (!obj || obj->type != MSGPACK_OBJECT_MAP)
        return -EBADMSG;
    int r = kt_mp_get_str(obj, "t", type, len);
    return r < 0 ? -EBADMSG : 0;
}

/* ---- the cell message ---- */

static void s_pack_thresholds(msgpack_packer *pk, const kt_thresholds_t *t)
{
    /* The bpf_callback_ns bounds only when set: thresholds without them stay
     * as they were, and an older decoder reads them as before. */
    unsigned nb = t->n_callback_bounds < KT_MAX_CALLBACK_BOUNDS ? t->n_callback_bounds
                                                                : KT_MAX_CALLBACK_BOUNDS;
    /* So are ktstr's benchmarking bounds and the layering masks. */
    static const char *const opt_keys[] = {"max_wake_cv", "max_throughput_cv",
                                           "min_iteration_rate", "max_migration_ratio"};
    const double opt[] = {t->max_wake_cv, t->max_throughput_cv, t->min_iteration_rate,
                          t->max_migration_ratio};
    static const char *const mask_keys[] = {"set", "from_scheduler", "debug_relaxed"};
    const uint32_t masks[] = {t->set, t->from_scheduler, t->debug_relaxed};
    unsigned n_opt = 0, n_masks = 0;
    for (unsigned i = 0; i < KT_ARRAY_SIZE(opt); i++)
        n_opt += opt[i] > 0;
    for (unsigned i = 0; i < KT_ARRAY_SIZE(masks); i++)
        n_masks += masks[i] != 0;
    msgpack_pack_map(pk, 8 + (t->max_callback_ns > 0) + (nb > 0) + n_opt + n_masks);
    kt_mp_pack_kv_bool(pk, "check_starved", t->check_starved);
    kt_mp_pack_kv_bool(pk, "check_isolation", t->check_isolation);
    kt_mp_pack_kv_bool(pk, "check_spread", t->check_spread);
    kt_mp_pack_kv_double(pk, "max_spread_pct", t->max_spread_pct);
    kt_mp_pack_kv_bool(pk, "check_gap", t->check_gap);
    kt_mp_pack_kv_u64(pk, "max_gap_ms", t->max_gap_ms);
    kt_mp_pack_kv_u64(pk, "max_p99_wake_us", t->max_p99_wake_us);
    kt_mp_pack_kv_double(pk, "min_work_rate", t->min_work_rate);
    if (t->max_callback_ns > 0)
        kt_mp_pack_kv_u64(pk, "max_callback_ns", t->max_callback_ns);
    if (nb > 0) {
        kt_mp_pack_str(pk, "callback_bounds");
        msgpack_pack_map(pk, nb);
        for (unsigned i = 0; i < nb; i++)
            kt_mp_pack_kv_u64(pk, t->callback_bounds[i].prog, t->callback_bounds[i].max_ns);
    }
    for (unsigned i = 0; i < KT_ARRAY_SIZE(opt); i++)
        if (opt[i] > 0)
            kt_mp_pack_kv_double(pk, opt_keys[i], opt[i]);
    for (unsigned i = 0; i < KT_ARRAY_SIZE(masks); i++)
        if (masks[i])
            kt_mp_pack_kv_u64(pk, mask_keys[i], masks[i]);
}

static const char *const s_judge_names[] = {"exit", "tap"};
static const char *const s_check_kinds[] = {"min", "max", "range", "exit"};

/* The payload spec (kt_payload.h) under "payload" in the plan. */
static void s_pack_payload(msgpack_packer *pk, const kt_payload_spec_t *ps)
{
    msgpack_pack_map(pk, 9);
    kt_mp_pack_kv_str(pk, "name", ps->name);
    kt_mp_pack_kv_str(pk, "sha", ps->sha);
    kt_mp_pack_kv_u64(pk, "size", ps->size);
    kt_mp_pack_str(pk, "args");
    msgpack_pack_array(pk, ps->n_args);
    for (unsigned i = 0; i < ps->n_args; i++)
        kt_mp_pack_str(pk, kt_payload_arg(ps, i));
    kt_mp_pack_kv_u64(pk, "timeout_ms", ps->timeout_ms);
    kt_mp_pack_kv_u64(pk, "max_output", ps->max_output);
    kt_mp_pack_kv_str(pk, "judge", s_judge_names[ps->judge == KT_PAYLOAD_JUDGE_TAP]);
    kt_mp_pack_kv_str(pk, "tap_test", ps->tap_test);
    kt_mp_pack_str(pk, "checks");
    msgpack_pack_array(pk, ps->n_checks);
    for (unsigned i = 0; i < ps->n_checks; i++) {
        const kt_payload_check_t *c = &ps->checks[i];
        msgpack_pack_map(pk, 4);
        kt_mp_pack_kv_str(pk, "kind", s_check_kinds[(unsigned)c->kind < 4 ? c->kind : 0]);
        kt_mp_pack_kv_str(pk, "metric", c->metric);
        kt_mp_pack_kv_double(pk, "lo", c->lo);
        kt_mp_pack_kv_double(pk, "hi", c->hi);
    }
}

void kt_plan_pack(msgpack_packer *pk, const kt_plan_t *p)
{
    /* "payload" only when the cell has one: plans without stay as they were. */
    bool payload = kt_payload_present(&p->payload);
    msgpack_pack_map(pk, (payload ? 7 : 6) + 2);
    kt_mp_pack_kv_str(pk, "scenario", p->scenario);
    kt_mp_pack_str(pk, "topology");
    msgpack_pack_map(pk, 4);
    kt_mp_pack_kv_u64(pk, "nodes", p->topology.numa_nodes);
    kt_mp_pack_kv_u64(pk, "llcs", p->topology.llcs);
    kt_mp_pack_kv_u64(pk, "cores", p->topology.cores_per_llc);
    kt_mp_pack_kv_u64(pk, "threads", p->topology.threads_per_core);
    kt_mp_pack_kv_u64(pk, "duration_ms", p->duration_ms);
    kt_mp_pack_str(pk, "cgroups");
    msgpack_pack_array(pk, p->n_cgroups);
    for (unsigned i = 0; i < p->n_cgroups; i++) {
        const kt_plan_cgroup_t *c = &p->cgroups[i];
        char list[KT_MAX_CPUS * 4];
        kt_cpumask_format(&c->cpus, list, sizeof(list));
        msgpack_pack_map(pk, 14);
        kt_mp_pack_kv_str(pk, "name", c->name);
        kt_mp_pack_kv_bool(pk, "has_cpuset", c->has_cpuset);
        kt_mp_pack_kv_str(pk, "cpus", list);
        kt_mp_pack_kv_u64(pk, "workers", c->workers);
        kt_mp_pack_kv_str(pk, "work", kt_work_type_name(c->work));
        kt_mp_pack_kv_u64(pk, "policy", c->policy);
        kt_mp_pack_kv_i64(pk, "nice", c->nice);
        kt_mp_pack_kv_u64(pk, "rt_priority", c->rt_priority);
        kt_mp_pack_kv_u64(pk, "affinity", c->affinity);
        kt_mp_pack_kv_u64(pk, "affinity_count", c->affinity_count);
        kt_cpumask_format(&c->affinity_cpus, list, sizeof(list));
        kt_mp_pack_kv_str(pk, "affinity_cpus", list);
        kt_mp_pack_kv_bool(pk, "deferred", c->deferred);
        kt_mp_pack_kv_u64(pk, "spawn_slots", c->spawn_slots);
        kt_mp_pack_kv_u64(pk, "nest_parent", c->nest_parent);
    }
    kt_mp_pack_kv_u64(pk, "seed", p->seed);
    kt_mp_pack_str(pk, "steps");
    msgpack_pack_array(pk, p->n_steps);
    for (unsigned i = 0; i < p->n_steps; i++) {
        const kt_plan_step_t *st = &p->steps[i];
        msgpack_pack_map(pk, 4);
        kt_mp_pack_kv_u64(pk, "at_ms", st->at_ms);
        kt_mp_pack_kv_u64(pk, "hold_ms", st->hold_ms);
        kt_mp_pack_kv_u64(pk, "loop_ms", st->loop_ms);
        kt_mp_pack_str(pk, "ops");
        msgpack_pack_array(pk, st->n_ops);
        for (unsigned k = 0; k < st->n_ops; k++) {
            const kt_plan_op_t *op = &st->ops[k];
            char list[KT_MAX_CPUS * 4];
            kt_cpumask_format(&op->cpus, list, sizeof(list));
            msgpack_pack_map(pk, 7);
            kt_mp_pack_kv_str(pk, "op", kt_op_kind_name(op->kind));
            kt_mp_pack_kv_u64(pk, "cgroup", op->cgroup);
            kt_mp_pack_kv_u64(pk, "target", op->target);
            kt_mp_pack_kv_bool(pk, "has_cpus", op->has_cpus);
            kt_mp_pack_kv_str(pk, "cpus", list);
            kt_mp_pack_kv_u64(pk, "affinity", op->affinity);
            kt_mp_pack_kv_u64(pk, "count", op->count);
        }
    }
    kt_mp_pack_str(pk, "thresholds");
    s_pack_thresholds(pk, &p->thresholds);
    kt_mp_pack_str(pk, "faults");
    msgpack_pack_array(pk, p->n_faults);
    for (unsigned i = 0; i < p->n_faults; i++) {
        msgpack_pack_map(pk, 3);
        kt_mp_pack_kv_u64(pk, "cgroup", p->faults[i].cgroup);
        kt_mp_pack_kv_u64(pk, "worker", p->faults[i].worker);
        kt_mp_pack_kv_u64(pk, "at_ms", p->faults[i].at_ms);
    }
    if (payload) {
        kt_mp_pack_str(pk, "payload");
        s_pack_payload(pk, &p->payload);
    }
}

int kt_cell_msg_encode(const kt_cell_msg_t *m, msgpack_sbuffer *out)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 7);
    kt_mp_pack_kv_str(&pk, "t", "cell");
    kt_mp_pack_kv_str(&pk, "cell_id", m->cell_id);
    kt_mp_pack_str(&pk, "sched");
    msgpack_pack_map(&pk, 3);
    kt_mp_pack_kv_str(&pk, "name", m->sched_name);
    kt_mp_pack_kv_str(&pk, "path", m->sched_path);
    kt_mp_pack_str(&pk, "args");
    msgpack_pack_array(&pk, m->n_sched_args);
    for (unsigned i = 0; i < m->n_sched_args; i++)
        kt_mp_pack_str(&pk, m->sched_args[i]);
    kt_mp_pack_kv_u64(&pk, "sched_enable_timeout_ms", m->sched_enable_timeout_ms);
    kt_mp_pack_kv_u64(&pk, "settle_ms", m->settle_ms);
    kt_mp_pack_kv_u64(&pk, "heartbeat_ms", m->heartbeat_ms);
    kt_mp_pack_str(&pk, "plan");
    kt_plan_pack(&pk, &m->plan);
    /* msgpack_sbuffer_write only fails on allocation failure, which leaves
     * the buffer's data NULL. */
    return out->data ? 0 : -ENOMEM;
}

#define S_FAIL(why, len, ...)                                                                      \
    do {                                                                                           \
        snprintf((why), (len), __VA_ARGS__);                                                       \
        return -EBADMSG;                                                                           \
    } while (0)

static int s_u32(const msgpack_object *map, const char *key, uint32_t max, uint32_t *ret,
                 char *why, size_t wl)
{
    uint64_t v;
    int r = kt_mp_get_u64(map, key, &v);
    if (r < 0)
        S_FAIL(why, wl, "field '%s': %s", key, r == -ENOENT ? "missing" : "not an unsigned integer");
    if (v > max)
        S_FAIL(why, wl, "field '%s': %llu is over the limit %u", key, (unsigned long long)v, max);
    *ret = (uint32_t)v;
    return 0;
}

static int s_str(const msgpack_object *map, const char *key, char *buf, size_t len, char *why,
                 size_t wl)
{
    int r = kt_mp_get_str(map, key, buf, len);
    if (r == -ENOENT)
        S_FAIL(why, wl, "field '%s': missing", key);
    if (r == -E2BIG)
        S_FAIL(why, wl, "field '%s': longer than %zu bytes", key, len - 1);
    if (r < 0)
        S_FAIL(why, wl, "field '%s': not a string", key);
    return 0;
}

static int s_bool(const msgpack_object *map, const char *key, bool *ret, char *why, size_t wl)
{
    if (kt_mp_get_bool(map, key, ret) < 0)
        S_FAIL(why, wl, "field '%s': missing or not a boolean", key);
    return 0;
}

static int s_double(const msgpack_object *map, const char *key, double lo, double hi, double *ret,
                    char *why, size_t wl)
{
    if (kt_mp_get_double(map, key, ret) < 0)
        S_FAIL(why, wl, "field '%s': missing or not a number", key);
    if (*ret < lo || *ret > hi)
        S_FAIL(why, wl, "field '%s': %g out of range [%g, %g]", key, *ret, lo, hi);
    return 0;
}

static const msgpack_object *s_typed(const msgpack_object *map, const char *key,
                                     msgpack_object_type type)
{
    const msgpack_object *o = kt_mp_get(map, key);
    return o && o->type == type ? o : NULL;
}

#define S_CALLBACK_NS_MAX 1000000000u

/* The optional bpf_callback_ns bounds: absent means off. */
static int s_decode_callback_bounds(const msgpack_object *o, kt_thresholds_t *t, char *why,
                                    size_t wl)
{
    int r;
    t->max_callback_ns = 0;
    t->n_callback_bounds = 0;
    memset(t->callback_bounds, 0, sizeof(t->callback_bounds));
    if (kt_mp_get(o, "max_callback_ns") &&
        (r = s_u32(o, "max_callback_ns", S_CALLBACK_NS_MAX, &t->max_callback_ns, why, wl)) < 0)
        return r;
    const msgpack_object *cb = kt_mp_get(o, "callback_bounds");
    if (!cb)
        return 0;
    if (cb->type != MSGPACK_OBJECT_MAP)
        S_FAIL(why, wl, "field 'callback_bounds': not a map");
    if (cb->via.map.size > KT_MAX_CALLBACK_BOUNDS)
        S_FAIL(why, wl, "field 'callback_bounds': %u entries, limit %d", cb->via.map.size,
               KT_MAX_CALLBACK_BOUNDS);
    for (uint32_t i = 0; i < cb->via.map.size; i++) {
        const msgpack_object *k = &cb->via.map.ptr[i].key, *v = &cb->via.map.ptr[i].val;
        char name[KT_BPF_NAME_MAX];
        if (k->type != MSGPACK_OBJECT_STR || k->via.str.size >= sizeof(name))
            S_FAIL(why, wl, "field 'callback_bounds': key %u is not a program name", i);
        memcpy(name, k->via.str.ptr, k->via.str.size);
        name[k->via.str.size] = '\0';
        if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER || v->via.u64 == 0 ||
            v->via.u64 > S_CALLBACK_NS_MAX)
            S_FAIL(why, wl, "field 'callback_bounds.%s': not an integer in 1..%u", name,
                   S_CALLBACK_NS_MAX);
        r = kt_checks_callback_bound_add(t, name, (uint32_t)v->via.u64);
        if (r == -EEXIST)
            S_FAIL(why, wl, "field 'callback_bounds.%s': named twice", name);
        if (r < 0)
            S_FAIL(why, wl, "field 'callback_bounds': '%s' is not a BPF program name", name);
    }
    return 0;
}

static int s_decode_thresholds(const msgpack_object *o, kt_thresholds_t *t, char *why, size_t wl)
{
    uint32_t v;
    int r;
    if ((r = s_bool(o, "check_starved", &t->check_starved, why, wl)) < 0 ||
        (r = s_bool(o, "check_isolation", &t->check_isolation, why, wl)) < 0 ||
        (r = s_bool(o, "check_spread", &t->check_spread, why, wl)) < 0 ||
        (r = s_double(o, "max_spread_pct", 0, 100, &t->max_spread_pct, why, wl)) < 0 ||
        (r = s_bool(o, "check_gap", &t->check_gap, why, wl)) < 0 ||
        (r = s_u32(o, "max_gap_ms", 3600000, &t->max_gap_ms, why, wl)) < 0 ||
        (r = s_u32(o, "max_p99_wake_us", 3600000000u, &v, why, wl)) < 0 ||
        (r = s_double(o, "min_work_rate", 0, 1e12, &t->min_work_rate, why, wl)) < 0)
        return r;
    t->max_p99_wake_us = v;
    if ((r = s_decode_callback_bounds(o, t, why, wl)) < 0)
        return r;
    /* Optional (absent: off / nothing set), as the encoder leaves them out. */
    struct {
        const char *key;
        double *v, max;
    } opt[] = {
        {"max_wake_cv", &t->max_wake_cv, 1000},
        {"max_throughput_cv", &t->max_throughput_cv, 1000},
        {"min_iteration_rate", &t->min_iteration_rate, 1e12},
        {"max_migration_ratio", &t->max_migration_ratio, 1e6},
    };
    for (unsigned i = 0; i < KT_ARRAY_SIZE(opt); i++) {
        *opt[i].v = 0;
        if (kt_mp_get(o, opt[i].key) &&
            (r = s_double(o, opt[i].key, 0, opt[i].max, opt[i].v, why, wl)) < 0)
            return r;
    }
    struct {
        const char *key;
        uint32_t *v;
    } masks[] = {
        {"set", &t->set},
        {"from_scheduler", &t->from_scheduler},
        {"debug_relaxed", &t->debug_relaxed},
    };
    for (unsigned i = 0; i < KT_ARRAY_SIZE(masks); i++) {
        *masks[i].v = 0;
        if (kt_mp_get(o, masks[i].key) &&
            (r = s_u32(o, masks[i].key, KT_THR_ALL, masks[i].v, why, wl)) < 0)
            return r;
    }
    return 0;
}

static bool s_sha_ok(const char *s)
{
    if (!s[0])
        return true;
    if (strlen(s) != 64)
        return false;
    for (const char *c = s; *c; c++)
        if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f')))
            return false;
    return true;
}

static int s_decode_payload(const msgpack_object *o, kt_payload_spec_t *ps, char *why, size_t wl)
{
    int r;
    uint64_t size;
    char judge[8], kind[8];
    kt_payload_spec_init(ps);
    if ((r = s_str(o, "name", ps->name, sizeof(ps->name), why, wl)) < 0 ||
        (r = s_str(o, "sha", ps->sha, sizeof(ps->sha), why, wl)) < 0 ||
        (r = s_u32(o, "timeout_ms", KT_PAYLOAD_TIMEOUT_MAX_MS, &ps->timeout_ms, why, wl)) < 0 ||
        (r = s_u32(o, "max_output", KT_PAYLOAD_OUTPUT_MAX, &ps->max_output, why, wl)) < 0 ||
        (r = s_str(o, "judge", judge, sizeof(judge), why, wl)) < 0 ||
        (r = s_str(o, "tap_test", ps->tap_test, sizeof(ps->tap_test), why, wl)) < 0)
        return r;
    if (!ps->name[0] || strchr(ps->name, '/') || strcmp(ps->name, ".") == 0 ||
        strcmp(ps->name, "..") == 0)
        S_FAIL(why, wl, "plan.payload.name: '%s' is not a file name", ps->name);
    if (!s_sha_ok(ps->sha))
        S_FAIL(why, wl, "plan.payload.sha: not empty nor 64 lowercase hex digits");
    if (kt_mp_get_u64(o, "size", &size) < 0 || size > (1ull << 32))
        S_FAIL(why, wl, "plan.payload.size: missing, not an unsigned integer or over 4 GiB");
    ps->size = size;
    if (ps->timeout_ms == 0)
        S_FAIL(why, wl, "plan.payload.timeout_ms: must be > 0");
    if (ps->max_output < KT_PAYLOAD_OUTPUT_MIN)
        S_FAIL(why, wl, "plan.payload.max_output: %u is under %u bytes", ps->max_output,
               KT_PAYLOAD_OUTPUT_MIN);
    if (strcmp(judge, "exit") == 0)
        ps->judge = KT_PAYLOAD_JUDGE_EXIT;
    else if (strcmp(judge, "tap") == 0)
        ps->judge = KT_PAYLOAD_JUDGE_TAP;
    else
        S_FAIL(why, wl, "plan.payload.judge: '%s' is neither 'exit' nor 'tap'", judge);

    const msgpack_object *args = s_typed(o, "args", MSGPACK_OBJECT_ARRAY);
    if (!args || args->via.array.size > KT_PAYLOAD_ARGS_MAX)
        S_FAIL(why, wl, "plan.payload.args: missing, not an array or over %d entries",
               KT_PAYLOAD_ARGS_MAX);
    const char *argv[KT_PAYLOAD_ARGS_MAX];
    char argbuf[KT_PAYLOAD_ARGS_BYTES];
    size_t off = 0;
    for (unsigned i = 0; i < args->via.array.size; i++) {
        const msgpack_object *a = &args->via.array.ptr[i];
        if (a->type != MSGPACK_OBJECT_STR || memchr(a->via.str.ptr, '\0', a->via.str.size))
            S_FAIL(why, wl, "plan.payload.args[%u]: not a string without NUL", i);
        if (a->via.str.size + 1 > sizeof(argbuf) - off)
            S_FAIL(why, wl, "plan.payload.args: over %d bytes in all", KT_PAYLOAD_ARGS_BYTES);
        memcpy(argbuf + off, a->via.str.ptr, a->via.str.size);
        argbuf[off + a->via.str.size] = '\0';
        argv[i] = argbuf + off;
        off += a->via.str.size + 1;
    }
    if (kt_payload_args_set(ps, argv, args->via.array.size) < 0)
        S_FAIL(why, wl, "plan.payload.args: over the limits");

    const msgpack_object *checks = s_typed(o, "checks", MSGPACK_OBJECT_ARRAY);
    if (!checks || checks->via.array.size > KT_PAYLOAD_CHECKS_MAX)
        S_FAIL(why, wl, "plan.payload.checks: missing, not an array or over %d entries",
               KT_PAYLOAD_CHECKS_MAX);
    ps->n_checks = checks->via.array.size;
    for (unsigned i = 0; i < ps->n_checks; i++) {
        const msgpack_object *co = &checks->via.array.ptr[i];
        kt_payload_check_t *c = &ps->checks[i];
        if (co->type != MSGPACK_OBJECT_MAP)
            S_FAIL(why, wl, "plan.payload.checks[%u]: not a map", i);
        if ((r = s_str(co, "kind", kind, sizeof(kind), why, wl)) < 0 ||
            (r = s_str(co, "metric", c->metric, sizeof(c->metric), why, wl)) < 0 ||
            (r = s_double(co, "lo", -1e300, 1e300, &c->lo, why, wl)) < 0 ||
            (r = s_double(co, "hi", -1e300, 1e300, &c->hi, why, wl)) < 0)
            return r;
        unsigned k = 0;
        while (k < 4 && strcmp(kind, s_check_kinds[k]) != 0)
            k++;
        if (k == 4)
            S_FAIL(why, wl, "plan.payload.checks[%u].kind: unknown '%s'", i, kind);
        c->kind = (enum kt_payload_check_kind)k;
        bool exit = c->kind == KT_PAYLOAD_CHECK_EXIT;
        if (exit != !c->metric[0])
            S_FAIL(why, wl, "plan.payload.checks[%u].metric: %s", i,
                   exit ? "must be empty for an exit check" : "missing");
        if (exit && (c->lo != c->hi || c->lo < 0 || c->lo > 255 || c->lo != (double)(int)c->lo))
            S_FAIL(why, wl, "plan.payload.checks[%u]: exit status %g is not an integer 0..255", i,
                   c->lo);
        if (c->kind == KT_PAYLOAD_CHECK_RANGE && c->lo > c->hi)
            S_FAIL(why, wl, "plan.payload.checks[%u]: range %g..%g is empty", i, c->lo, c->hi);
    }
    return 0;
}

/* The cgroup fields of the steps era. */
static int s_decode_cgroup_ext(const msgpack_object *co, unsigned i, const kt_plan_t *p,
                               kt_plan_cgroup_t *cg, char *why, size_t wl)
{
    int r;
    uint32_t aff;
    char list[KT_MAX_CPUS * 4];
    if ((r = s_u32(co, "rt_priority", KT_RT_PRIORITY_MAX, &cg->rt_priority, why, wl)) < 0 ||
        (r = s_u32(co, "affinity", KT_AFFINITY__COUNT - 1, &aff, why, wl)) < 0 ||
        (r = s_u32(co, "affinity_count", KT_MAX_CPUS, &cg->affinity_count, why, wl)) < 0 ||
        (r = s_str(co, "affinity_cpus", list, sizeof(list), why, wl)) < 0 ||
        (r = s_bool(co, "deferred", &cg->deferred, why, wl)) < 0 ||
        (r = s_u32(co, "spawn_slots", KT_MAX_WORKERS, &cg->spawn_slots, why, wl)) < 0 ||
        (r = s_u32(co, "nest_parent", i, &cg->nest_parent, why, wl)) < 0)
        return r;
    cg->affinity = (enum kt_affinity_kind)aff;
    /* "a/b" nests in an earlier "a", and only there. */
    const char *slash = strrchr(cg->name, '/');
    const char *par = cg->nest_parent ? p->cgroups[cg->nest_parent - 1].name : NULL;
    if ((slash != NULL) != (par != NULL) ||
        (par && (strlen(par) != (size_t)(slash - cg->name) ||
                 strncmp(par, cg->name, strlen(par)) != 0)))
        S_FAIL(why, wl, "plan.cgroups[%u].nest_parent: '%s' is not nested in %s%s%s", i, cg->name,
               par ? "'" : "any cgroup", par ? par : "", par ? "'" : "");
    bool rt = cg->policy == KT_POLICY_FIFO || cg->policy == KT_POLICY_RR;
    if (rt != (cg->rt_priority != 0))
        S_FAIL(why, wl, "plan.cgroups[%u].rt_priority: %u with policy %s", i, cg->rt_priority,
               kt_sched_policy_name(cg->policy));
    if (kt_cpumask_parse(list, &cg->affinity_cpus) < 0)
        S_FAIL(why, wl, "plan.cgroups[%u].affinity_cpus: bad CPU list '%s'", i, list);
    if (cg->affinity == KT_AFFINITY_EXACT && kt_cpumask_empty(&cg->affinity_cpus))
        S_FAIL(why, wl, "plan.cgroups[%u].affinity_cpus: exact affinity with no CPUs", i);
    if (cg->workers + cg->spawn_slots > KT_MAX_WORKERS_PER_CGROUP)
        S_FAIL(why, wl, "plan.cgroups[%u].spawn_slots: %u workers and %u spawn slots, limit %d",
               i, cg->workers, cg->spawn_slots, KT_MAX_WORKERS_PER_CGROUP);
    return 0;
}

/* Steps: structure and bounds; every index names a cgroup of the plan. */
static int s_decode_steps(const msgpack_object *o, kt_plan_t *p, char *why, size_t wl)
{
    int r;
    p->n_steps = 0;
    if ((r = s_u32(o, "seed", UINT32_MAX, &p->seed, why, wl)) < 0)
        return r;
    const msgpack_object *ss = s_typed(o, "steps", MSGPACK_OBJECT_ARRAY);
    if (!ss)
        S_FAIL(why, wl, "field 'plan.steps': missing or not an array");
    if (ss->via.array.size > KT_MAX_STEPS)
        S_FAIL(why, wl, "field 'plan.steps': %u entries, limit %d", ss->via.array.size,
               KT_MAX_STEPS);
    const uint32_t day = 24 * 3600 * 1000;
    for (unsigned i = 0; i < ss->via.array.size; i++) {
        const msgpack_object *so = &ss->via.array.ptr[i];
        kt_plan_step_t *st = &p->steps[i];
        memset(st, 0, sizeof(*st));
        if (so->type != MSGPACK_OBJECT_MAP)
            S_FAIL(why, wl, "plan.steps[%u]: not a map", i);
        if ((r = s_u32(so, "at_ms", day, &st->at_ms, why, wl)) < 0 ||
            (r = s_u32(so, "hold_ms", day, &st->hold_ms, why, wl)) < 0 ||
            (r = s_u32(so, "loop_ms", day, &st->loop_ms, why, wl)) < 0)
            return r;
        if (st->loop_ms && st->loop_ms < 10)
            S_FAIL(why, wl, "plan.steps[%u].loop_ms: %u, at least 10", i, st->loop_ms);
        if ((uint64_t)st->at_ms + st->hold_ms > p->duration_ms ||
            (i && st->at_ms < p->steps[i - 1].at_ms))
            S_FAIL(why, wl, "plan.steps[%u]: %u ms + %u ms is out of order or past the run", i,
                   st->at_ms, st->hold_ms);
        const msgpack_object *ops = s_typed(so, "ops", MSGPACK_OBJECT_ARRAY);
        if (!ops)
            S_FAIL(why, wl, "field 'plan.steps[%u].ops': missing or not an array", i);
        if (ops->via.array.size > KT_MAX_OPS)
            S_FAIL(why, wl, "field 'plan.steps[%u].ops': %u entries, limit %d", i,
                   ops->via.array.size, KT_MAX_OPS);
        for (unsigned k = 0; k < ops->via.array.size; k++) {
            const msgpack_object *oo = &ops->via.array.ptr[k];
            kt_plan_op_t *op = &st->ops[k];
            if (oo->type != MSGPACK_OBJECT_MAP)
                S_FAIL(why, wl, "plan.steps[%u].ops[%u]: not a map", i, k);
            char kind[32], list[KT_MAX_CPUS * 4];
            uint32_t aff;
            if ((r = s_str(oo, "op", kind, sizeof(kind), why, wl)) < 0 ||
                (r = s_u32(oo, "cgroup", KT_MAX_CGROUPS - 1, &op->cgroup, why, wl)) < 0 ||
                (r = s_u32(oo, "target", KT_MAX_CGROUPS - 1, &op->target, why, wl)) < 0 ||
                (r = s_bool(oo, "has_cpus", &op->has_cpus, why, wl)) < 0 ||
                (r = s_str(oo, "cpus", list, sizeof(list), why, wl)) < 0 ||
                (r = s_u32(oo, "affinity", KT_AFFINITY__COUNT - 1, &aff, why, wl)) < 0 ||
                (r = s_u32(oo, "count", KT_MAX_WORKERS, &op->count, why, wl)) < 0)
                return r;
            if (kt_op_kind_parse(kind, &op->kind) < 0)
                S_FAIL(why, wl, "plan.steps[%u].ops[%u].op: unknown '%s'", i, k, kind);
            if (op->cgroup >= p->n_cgroups || op->target >= p->n_cgroups)
                S_FAIL(why, wl, "plan.steps[%u].ops[%u]: cgroup %u or target %u out of %u", i, k,
                       op->cgroup, op->target, p->n_cgroups);
            if (kt_cpumask_parse(list, &op->cpus) < 0)
                S_FAIL(why, wl, "plan.steps[%u].ops[%u].cpus: bad CPU list '%s'", i, k, list);
            if (op->kind == KT_OP_SET_CPUSET && kt_cpumask_empty(&op->cpus))
                S_FAIL(why, wl, "plan.steps[%u].ops[%u]: set_cpuset with no CPUs", i, k);
            op->affinity = (enum kt_affinity_kind)aff;
            st->n_ops = k + 1;
        }
        p->n_steps = i + 1;
    }
    return 0;
}

int kt_plan_decode(const msgpack_object *o, kt_plan_t *p, char *why, size_t wl)
{
    int r;
    if ((r = s_str(o, "scenario", p->scenario, sizeof(p->scenario), why, wl)) < 0)
        return r;
    const msgpack_object *topo = s_typed(o, "topology", MSGPACK_OBJECT_MAP);
    if (!topo)
        S_FAIL(why, wl, "field 'plan.topology': missing or not a map");
    uint32_t n, l, c, t;
    if ((r = s_u32(topo, "nodes", KT_MAX_CPUS, &n, why, wl)) < 0 ||
        (r = s_u32(topo, "llcs", KT_MAX_CPUS, &l, why, wl)) < 0 ||
        (r = s_u32(topo, "cores", KT_MAX_CPUS, &c, why, wl)) < 0 ||
        (r = s_u32(topo, "threads", 8, &t, why, wl)) < 0)
        return r;
    p->topology = (kt_topology_t){n, l, c, t};
    if (!kt_topology_valid(&p->topology))
        S_FAIL(why, wl, "field 'plan.topology': invalid shape %u,%u,%u,%u", n, l, c, t);
    if ((r = s_u32(o, "duration_ms", 24 * 3600 * 1000, &p->duration_ms, why, wl)) < 0)
        return r;

    const msgpack_object *cgs = s_typed(o, "cgroups", MSGPACK_OBJECT_ARRAY);
    if (!cgs)
        S_FAIL(why, wl, "field 'plan.cgroups': missing or not an array");
    if (cgs->via.array.size > KT_MAX_CGROUPS)
        S_FAIL(why, wl, "field 'plan.cgroups': %u entries, limit %d", cgs->via.array.size,
               KT_MAX_CGROUPS);
    p->n_cgroups = cgs->via.array.size;
    unsigned total = 0;
    for (unsigned i = 0; i < p->n_cgroups; i++) {
        const msgpack_object *co = &cgs->via.array.ptr[i];
        kt_plan_cgroup_t *cg = &p->cgroups[i];
        if (co->type != MSGPACK_OBJECT_MAP)
            S_FAIL(why, wl, "plan.cgroups[%u]: not a map", i);
        char list[KT_MAX_CPUS * 4], work[32];
        uint32_t workers, policy;
        int64_t nice;
        if ((r = s_str(co, "name", cg->name, sizeof(cg->name), why, wl)) < 0 ||
            (r = s_bool(co, "has_cpuset", &cg->has_cpuset, why, wl)) < 0 ||
            (r = s_str(co, "cpus", list, sizeof(list), why, wl)) < 0 ||
            (r = s_u32(co, "workers", KT_MAX_WORKERS_PER_CGROUP, &workers, why, wl)) < 0 ||
            (r = s_str(co, "work", work, sizeof(work), why, wl)) < 0 ||
            (r = s_u32(co, "policy", KT_POLICY_RR, &policy, why, wl)) < 0)
            return r;
        if (kt_mp_get_i64(co, "nice", &nice) < 0 || nice < -20 || nice > 19)
            S_FAIL(why, wl, "plan.cgroups[%u].nice: missing or outside -20..19", i);
        if (!kt_cgroup_name_valid(cg->name))
            S_FAIL(why, wl, "plan.cgroups[%u].name: '%s' is not a valid cgroup name", i, cg->name);

        if (kt_cpumask_parse(list, &cg->cpus) < 0)
            S_FAIL(why, wl, "plan.cgroups[%u].cpus: bad CPU list '%s'", i, list);
        if (kt_work_type_parse(work, &cg->work) < 0)
            S_FAIL(why, wl, "plan.cgroups[%u].work: unknown work type '%s'", i, work);
        cg->workers = workers;
        cg->policy = (enum kt_sched_policy)policy;
        cg->nice = (int)nice;
        total += workers;
        if ((r = s_decode_cgroup_ext(co, i, p, cg, why, wl)) < 0)
            return r;
        total += cg->spawn_slots;
    }
    if (total > KT_MAX_WORKERS)
        S_FAIL(why, wl, "plan: %u workers in all, limit %d", total, KT_MAX_WORKERS);

    const msgpack_object *th = s_typed(o, "thresholds", MSGPACK_OBJECT_MAP);
    if (!th)
        S_FAIL(why, wl, "field 'plan.thresholds': missing or not a map");
    if ((r = s_decode_thresholds(th, &p->thresholds, why, wl)) < 0)
        return r;

    const msgpack_object *fs = s_typed(o, "faults", MSGPACK_OBJECT_ARRAY);
    if (!fs)
        S_FAIL(why, wl, "field 'plan.faults': missing or not an array");
    if (fs->via.array.size > KT_MAX_FAULTS)
        S_FAIL(why, wl, "field 'plan.faults': %u entries, limit %d", fs->via.array.size,
               KT_MAX_FAULTS);
    p->n_faults = fs->via.array.size;
    for (unsigned i = 0; i < p->n_faults; i++) {
        const msgpack_object *fo = &fs->via.array.ptr[i];
        kt_plan_fault_t *f = &p->faults[i];
        if ((r = s_u32(fo, "cgroup", KT_MAX_CGROUPS - 1, &f->cgroup, why, wl)) < 0 ||
            (r = s_u32(fo, "worker", KT_MAX_WORKERS_PER_CGROUP - 1, &f->worker, why, wl)) < 0 ||
            (r = s_u32(fo, "at_ms", 24 * 3600 * 1000, &f->at_ms, why, wl)) < 0)
            return r;
        if (f->cgroup >= p->n_cgroups || f->worker >= p->cgroups[f->cgroup].workers)
            S_FAIL(why, wl, "plan.faults[%u]: names no worker (cgroup %u worker %u)", i, f->cgroup,
                   f->worker);
    }
    if ((r = s_decode_steps(o, p, why, wl)) < 0)
        return r;
    /* Optional: absent means no payload. */
    memset(&p->payload, 0, sizeof(p->payload));
    const msgpack_object *po = kt_mp_get(o, "payload");
    if (po) {
        if (po->type != MSGPACK_OBJECT_MAP)
            S_FAIL(why, wl, "field 'plan.payload': not a map");
        if ((r = s_decode_payload(po, &p->payload, why, wl)) < 0)
            return r;
    }
    return 0;
}

/* msgpack-c allocates a container's slots as soon as it reads the header, so
 * a 5-byte "map of 2^32-1 entries" costs a huge malloc before the decoder
 * sees that the bytes are missing. Walk the headers first: every announced
 * element needs at least one byte, so the elements still owed can never
 * exceed the bytes left. O(len), no allocation. */
bool kt_mp_plausible(const void *data, size_t len)
{
    const uint8_t *p = data;
    size_t i = 0, owed = 1;
    while (owed > 0) {
        if (i >= len)
            return false;
        uint8_t c = p[i++];
        size_t skip = 0, n = 0, w = 0;
        owed--;
        if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3) {
            skip = 0;
        } else if (c >= 0x80 && c <= 0x8f) {
            n = 2 * (size_t)(c & 0x0f);
        } else if (c >= 0x90 && c <= 0x9f) {
            n = c & 0x0f;
        } else if (c >= 0xa0 && c <= 0xbf) {
            skip = c & 0x1f;
        } else {
            switch (c) {
            case 0xc4: case 0xd9: w = 1; break;               /* bin8, str8: 1-byte length */
            case 0xc5: case 0xda: w = 2; break;
            case 0xc6: case 0xdb: w = 4; break;
            case 0xc7: w = 1; skip = 1; break;                 /* ext8: length + type */
            case 0xc8: w = 2; skip = 1; break;
            case 0xc9: w = 4; skip = 1; break;
            case 0xca: skip = 4; break;
            case 0xcb: skip = 8; break;
            case 0xcc: case 0xd0: skip = 1; break;
            case 0xcd: case 0xd1: skip = 2; break;
            case 0xce: case 0xd2: skip = 4; break;
            case 0xcf: case 0xd3: skip = 8; break;
            case 0xd4: skip = 2; break;                        /* fixext: type + data */
            case 0xd5: skip = 3; break;
            case 0xd6: skip = 5; break;
            case 0xd7: skip = 9; break;
            case 0xd8: skip = 17; break;
            case 0xdc: case 0xde: w = 2; break;                /* array16, map16 */
            case 0xdd: case 0xdf: w = 4; break;                /* array32, map32 */
            default: return false;                             /* 0xc1: never used */
            }
            if (w) {
                if (len - i < w)
                    return false;
                size_t v = 0;
                for (size_t k = 0; k < w; k++)
                    v = v << 8 | p[i + k];
                i += w;
                if (c == 0xdc || c == 0xdd)
                    n = v;
                else if (c == 0xde || c == 0xdf)
                    n = 2 * v;
                else
                    skip += v;
            }
        }
        if (skip > len - i)
            return false;
        i += skip;
        if (n > len - i || owed + n > len - i)
            return false;
        owed += n;
    }
    return true;
}

int kt_mp_unpack_one(const void *body, size_t len, msgpack_unpacked *up)
{
    size_t off = 0;
    if (!kt_mp_plausible(body, len))
        return -EBADMSG;
    if (msgpack_unpack_next(up, body, len, &off) != MSGPACK_UNPACK_SUCCESS)
        return -EBADMSG;
    return off == len ? 0 : -EBADMSG;
}

int kt_cell_msg_decode(const void *body, size_t len, kt_cell_msg_t *ret, char *why, size_t wl)
{
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    int r = -EBADMSG;
    kt_cell_msg_t m;
    kt_cell_msg_init(&m);
    if (!kt_mp_plausible(body, len) ||
        msgpack_unpack_next(&up, body, len, &off) != MSGPACK_UNPACK_SUCCESS) {
        snprintf(why, wl, "not a msgpack object");
        goto out;
    }
    if (off != len) {
        snprintf(why, wl, "%zu trailing bytes after the message", len - off);
        goto out;
    }
    const msgpack_object *o = &up.data;
    char type[16];
    if (kt_chanmsg_type(o, type, sizeof(type)) < 0 || strcmp(type, "cell") != 0) {
        snprintf(why, wl, "not a cell message (no \"t\":\"cell\")");
        goto out;
    }
    if ((r = s_str(o, "cell_id", m.cell_id, sizeof(m.cell_id), why, wl)) < 0)
        goto out;
    const msgpack_object *sched = s_typed(o, "sched", MSGPACK_OBJECT_MAP);
    if (!sched) {
        snprintf(why, wl, "field 'sched': missing or not a map");
        r = -EBADMSG;
        goto out;
    }
    if ((r = s_str(sched, "name", m.sched_name, sizeof(m.sched_name), why, wl)) < 0 ||
        (r = s_str(sched, "path", m.sched_path, sizeof(m.sched_path), why, wl)) < 0)
        goto out;
    const msgpack_object *args = s_typed(sched, "args", MSGPACK_OBJECT_ARRAY);
    if (!args || args->via.array.size > KT_SCHED_ARGS_MAX) {
        snprintf(why, wl, "field 'sched.args': missing, not an array or over %d entries",
                 KT_SCHED_ARGS_MAX);
        r = -EBADMSG;
        goto out;
    }
    m.n_sched_args = args->via.array.size;
    for (unsigned i = 0; i < m.n_sched_args; i++) {
        const msgpack_object *a = &args->via.array.ptr[i];
        if (a->type != MSGPACK_OBJECT_STR || a->via.str.size >= KT_SCHED_ARG_LEN ||
            memchr(a->via.str.ptr, '\0', a->via.str.size)) {
            snprintf(why, wl, "sched.args[%u]: not a string under %d bytes", i, KT_SCHED_ARG_LEN);
            r = -EBADMSG;
            goto out;
        }
        memcpy(m.sched_args[i], a->via.str.ptr, a->via.str.size);
        m.sched_args[i][a->via.str.size] = '\0';
    }
    if ((r = s_u32(o, "sched_enable_timeout_ms", 600000, &m.sched_enable_timeout_ms, why, wl)) < 0 ||
        (r = s_u32(o, "settle_ms", 600000, &m.settle_ms, why, wl)) < 0 ||
        (r = s_u32(o, "heartbeat_ms", 60000, &m.heartbeat_ms, why, wl)) < 0)
        goto out;
    if (m.heartbeat_ms == 0) {
        snprintf(why, wl, "field 'heartbeat_ms': must be > 0");
        r = -EBADMSG;
        goto out;
    }
    const msgpack_object *plan = s_typed(o, "plan", MSGPACK_OBJECT_MAP);
    if (!plan) {
        snprintf(why, wl, "field 'plan': missing or not a map");
        r = -EBADMSG;
        goto out;
    }
    if ((r = kt_plan_decode(plan, &m.plan, why, wl)) < 0)
        goto out;
    *ret = m;
    r = 0;
out:
    msgpack_unpacked_destroy(&up);
    return r;
}
