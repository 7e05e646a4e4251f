/* The cell message: a round trip of a resolved plan with faults and
 * scheduler arguments, and a strict decoder that refuses every truncation,
 * every missing field, every field of the wrong type, oversized arrays and
 * strings, trailing bytes, an unknown "t" and faults that name no worker.
 *
 * Malformed messages are made from a valid one: it is decoded into a
 * msgpack object tree and packed again with one field removed or replaced
 * (s_mutate), so every field the encoder writes is covered by walking the
 * tree rather than by a hand-kept list. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kt_chanmsg.h"
#include "kt_checks.h"

static void s_sample(kt_cell_msg_t *m)
{
    kt_cell_msg_init(m);
    snprintf(m->cell_id, sizeof(m->cell_id), "%s",
             "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
    snprintf(m->sched_name, sizeof(m->sched_name), "scx_simple");
    snprintf(m->sched_path, sizeof(m->sched_path), "/bin/scx_simple");
    static const char *const args[] = {"-v", "--slice-us=5000", "", "a b\tc"};
    m->n_sched_args = 4;
    for (unsigned i = 0; i < 4; i++)
        snprintf(m->sched_args[i], sizeof(m->sched_args[i]), "%s", args[i]);
    m->sched_enable_timeout_ms = 15000;
    m->settle_ms = 250;
    m->heartbeat_ms = 500;

    kt_scenario_t s;
    kt_scenario_init(&s, "sample");
    kt_cgroup_spec_t per = {.name = "per",
                            .cpuset = {.kind = KT_CPUSET_PER_LLC},
                            .workers = 2,
                            .work = KT_WORK_PIPE_PINGPONG,
                            .policy = KT_POLICY_BATCH,
                            .nice = -7};
    kt_cgroup_spec_t list = {.name = "list",
                             .cpuset = {.kind = KT_CPUSET_LIST, .list = "1,3,9-11"},
                             .workers_per_cpu = 1.0,
                             .work = KT_WORK_MIXED,
                             .policy = KT_POLICY_IDLE,
                             .nice = 19};
    kt_cgroup_spec_t all = {.name = "all", .workers = 3, .work = KT_WORK_IO_SYNC};
    /* The steps era: a real-time, randomly pinned parent-less cgroup, a
     * nested pair (the child deferred), and steps over them. */
    kt_cgroup_spec_t rt = {.name = "rt",
                           .workers = 2,
                           .policy = KT_POLICY_FIFO,
                           .rt_priority = 7,
                           .affinity = {.kind = KT_AFFINITY_RANDOM, .count = 3}};
    kt_cgroup_spec_t outer = {.name = "outer"};
    kt_cgroup_spec_t inner = {.name = "outer/in",
                              .workers = 1,
                              .deferred = true,
                              .policy = KT_POLICY_RR,
                              .rt_priority = 3,
                              .affinity = {.kind = KT_AFFINITY_EXACT, .list = "2-5"}};
    s.cgroups[s.n_cgroups++] = per;
    s.cgroups[s.n_cgroups++] = list;
    s.cgroups[s.n_cgroups++] = all;
    s.cgroups[s.n_cgroups++] = rt;
    s.cgroups[s.n_cgroups++] = outer;
    s.cgroups[s.n_cgroups++] = inner;
    kt_step_spec_t *st = &s.steps[s.n_steps++];
    st->hold = KT_HOLD_FRAC;
    st->frac = 0.25;
    st->ops[st->n_ops++] = (kt_op_spec_t){.kind = KT_OP_ADD_CGROUP, .cgroup = "outer/in"};
    st->ops[st->n_ops++] = (kt_op_spec_t){.kind = KT_OP_SPAWN, .cgroup = "rt", .workers = 2};
    st->ops[st->n_ops++] = (kt_op_spec_t){
        .kind = KT_OP_SET_CPUSET, .cgroup = "all", .cpuset = {.kind = KT_CPUSET_LLC, .index = 1}};
    st = &s.steps[s.n_steps++];
    st->hold = KT_HOLD_LOOP;
    st->ms = 250;
    st->ops[st->n_ops++] = (kt_op_spec_t){.kind = KT_OP_SWAP_CPUSETS, .cgroup = "all", .target = "list"};
    st->ops[st->n_ops++] = (kt_op_spec_t){
        .kind = KT_OP_SET_AFFINITY, .cgroup = "rt", .affinity = {.kind = KT_AFFINITY_SINGLE}};
    s.faults[s.n_faults++] = (kt_fault_t){"per_3", 1, 0};
    s.faults[s.n_faults++] = (kt_fault_t){"all", 2, 1500};
    s.thresholds.max_spread_pct = 12.5;
    s.thresholds.max_gap_ms = 2500;
    s.thresholds.max_p99_wake_us = 750;
    s.thresholds.min_work_rate = 33.25;
    s.thresholds.check_isolation = false;
    kt_topology_t t;
    assert_int_equal(kt_topology_parse("numa2-4llc", &t), 0);
    char why[256] = "";
    int r = kt_scenario_resolve(&s, &t, 3000, &m->plan, why, sizeof(why));
    if (r < 0)
        fail_msg("%s", why);
}

static void s_assert_msg_equal(const kt_cell_msg_t *a, const kt_cell_msg_t *b)
{
    assert_string_equal(a->cell_id, b->cell_id);
    assert_string_equal(a->sched_name, b->sched_name);
    assert_string_equal(a->sched_path, b->sched_path);
    assert_int_equal(a->n_sched_args, b->n_sched_args);
    for (unsigned i = 0; i < a->n_sched_args; i++)
        assert_string_equal(a->sched_args[i], b->sched_args[i]);
    assert_int_equal(a->sched_enable_timeout_ms, b->sched_enable_timeout_ms);
    assert_int_equal(a->settle_ms, b->settle_ms);
    assert_int_equal(a->heartbeat_ms, b->heartbeat_ms);
    const kt_plan_t *p = &a->plan, *q = &b->plan;
    assert_string_equal(p->scenario, q->scenario);
    assert_true(kt_topology_equal(&p->topology, &q->topology));
    assert_int_equal(p->duration_ms, q->duration_ms);
    assert_int_equal(p->n_cgroups, q->n_cgroups);
    for (unsigned i = 0; i < p->n_cgroups; i++) {
        const kt_plan_cgroup_t *x = &p->cgroups[i], *y = &q->cgroups[i];
        assert_string_equal(x->name, y->name);
        assert_int_equal(x->has_cpuset, y->has_cpuset);
        assert_memory_equal(&x->cpus, &y->cpus, sizeof(x->cpus));
        assert_int_equal(x->workers, y->workers);
        assert_int_equal(x->work, y->work);
        assert_int_equal(x->policy, y->policy);
        assert_int_equal(x->nice, y->nice);
        assert_int_equal(x->rt_priority, y->rt_priority);
        assert_int_equal(x->affinity, y->affinity);
        assert_int_equal(x->affinity_count, y->affinity_count);
        assert_memory_equal(&x->affinity_cpus, &y->affinity_cpus, sizeof(x->affinity_cpus));
        assert_int_equal(x->deferred, y->deferred);
        assert_int_equal(x->spawn_slots, y->spawn_slots);
        assert_int_equal(x->nest_parent, y->nest_parent);
    }
    assert_int_equal(p->seed, q->seed);
    assert_int_equal(p->n_steps, q->n_steps);
    for (unsigned i = 0; i < p->n_steps; i++) {
        const kt_plan_step_t *x = &p->steps[i], *y = &q->steps[i];
        assert_int_equal(x->at_ms, y->at_ms);
        assert_int_equal(x->hold_ms, y->hold_ms);
        assert_int_equal(x->loop_ms, y->loop_ms);
        assert_int_equal(x->n_ops, y->n_ops);
        for (unsigned k = 0; k < x->n_ops; k++) {
            assert_int_equal(x->ops[k].kind, y->ops[k].kind);
            assert_int_equal(x->ops[k].cgroup, y->ops[k].cgroup);
            assert_int_equal(x->ops[k].target, y->ops[k].target);
            assert_int_equal(x->ops[k].has_cpus, y->ops[k].has_cpus);
            assert_memory_equal(&x->ops[k].cpus, &y->ops[k].cpus, sizeof(kt_cpumask_t));
            assert_int_equal(x->ops[k].affinity, y->ops[k].affinity);
            assert_int_equal(x->ops[k].count, y->ops[k].count);
        }
    }
    assert_int_equal(p->thresholds.check_starved, q->thresholds.check_starved);
    assert_int_equal(p->thresholds.check_isolation, q->thresholds.check_isolation);
    assert_int_equal(p->thresholds.check_spread, q->thresholds.check_spread);
    assert_true(p->thresholds.max_spread_pct == q->thresholds.max_spread_pct);
    assert_int_equal(p->thresholds.check_gap, q->thresholds.check_gap);
    assert_int_equal(p->thresholds.max_gap_ms, q->thresholds.max_gap_ms);
    assert_int_equal(p->thresholds.max_p99_wake_us, q->thresholds.max_p99_wake_us);
    assert_true(p->thresholds.min_work_rate == q->thresholds.min_work_rate);
    assert_true(p->thresholds.max_wake_cv == q->thresholds.max_wake_cv);
    assert_true(p->thresholds.max_throughput_cv == q->thresholds.max_throughput_cv);
    assert_true(p->thresholds.min_iteration_rate == q->thresholds.min_iteration_rate);
    assert_true(p->thresholds.max_migration_ratio == q->thresholds.max_migration_ratio);
    assert_int_equal(p->thresholds.set, q->thresholds.set);
    assert_int_equal(p->thresholds.from_scheduler, q->thresholds.from_scheduler);
    assert_int_equal(p->thresholds.debug_relaxed, q->thresholds.debug_relaxed);
    assert_int_equal(p->n_faults, q->n_faults);
    for (unsigned i = 0; i < p->n_faults; i++) {
        assert_int_equal(p->faults[i].cgroup, q->faults[i].cgroup);
        assert_int_equal(p->faults[i].worker, q->faults[i].worker);
        assert_int_equal(p->faults[i].at_ms, q->faults[i].at_ms);
    }
}

static int s_decode(const void *buf, size_t len, kt_cell_msg_t *m, char *why, size_t wl)
{
    why[0] = '\0';
    return kt_cell_msg_decode(buf, len, m, why, wl);
}

static void test_round_trip(void **state)
{
    (void)state;
    kt_cell_msg_t *m = malloc(sizeof(*m)), *back = malloc(sizeof(*back));
    assert_non_null(m);
    assert_non_null(back);
    s_sample(m);
    /* The sample covers what the codec must carry. */
    assert_int_equal(m->plan.n_cgroups, 9); /* 4 per-llc + list, all, rt, outer, outer/in */
    assert_int_equal(m->plan.n_steps, 2);
    assert_int_equal(m->plan.n_faults, 2);
    assert_string_equal(m->plan.cgroups[m->plan.faults[0].cgroup].name, "per_3");
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    assert_int_equal(kt_cell_msg_encode(m, &sb), 0);
    char why[256];
    memset(back, 0x77, sizeof(*back));
    int r = s_decode(sb.data, sb.size, back, why, sizeof(why));
    if (r < 0)
        fail_msg("%s", why);
    s_assert_msg_equal(m, back);
    assert_string_equal(back->plan.cgroups[1].name, "per_1");
    char list[64];
    kt_cpumask_format(&back->plan.cgroups[4].cpus, list, sizeof(list));
    assert_string_equal(list, "1,3,9-11");
    assert_int_equal(back->plan.cgroups[0].nice, -7);
    assert_true(back->plan.thresholds.min_work_rate == 33.25);

    /* The message type reads back from the decoded object. */
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    assert_int_equal(msgpack_unpack_next(&up, sb.data, sb.size, NULL), MSGPACK_UNPACK_SUCCESS);
    char type[8];
    assert_int_equal(kt_chanmsg_type(&up.data, type, sizeof(type)), 0);
    assert_string_equal(type, "cell");
    assert_int_equal(kt_chanmsg_type(&up.data, type, 4), -EBADMSG); /* does not fit */
    msgpack_unpacked_destroy(&up);
    msgpack_sbuffer_destroy(&sb);

    /* The limits themselves round-trip: 32 arguments of 127 bytes, 32
     * cgroups, 8 faults, 64-byte names. */
    kt_cell_msg_init(m);
    memset(m->cell_id, 'c', KT_CELL_ID_MAX - 1);
    memset(m->sched_name, 'n', KT_NAME_MAX - 1);
    memset(m->sched_path, 'p', KT_PATH_MAX - 1);
    m->n_sched_args = KT_SCHED_ARGS_MAX;
    for (unsigned i = 0; i < KT_SCHED_ARGS_MAX; i++)
        memset(m->sched_args[i], 'a' + (int)(i % 26), KT_SCHED_ARG_LEN - 1);
    kt_topology_t t = {1, 1, 8, 1};
    m->plan.topology = t;
    m->plan.duration_ms = 24 * 3600 * 1000;
    m->plan.n_cgroups = KT_MAX_CGROUPS;
    for (unsigned i = 0; i < KT_MAX_CGROUPS; i++) {
        kt_plan_cgroup_t *c = &m->plan.cgroups[i];
        snprintf(c->name, sizeof(c->name), "%063u", i);
        kt_topology_all_mask(&t, &c->cpus);
        c->workers = KT_MAX_WORKERS / KT_MAX_CGROUPS;
        c->nice = -20;
    }
    m->plan.n_faults = KT_MAX_FAULTS;
    for (unsigned i = 0; i < KT_MAX_FAULTS; i++)
        m->plan.faults[i] = (kt_plan_fault_t){i, 15, 1000 * i};
    msgpack_sbuffer_init(&sb);
    assert_int_equal(kt_cell_msg_encode(m, &sb), 0);
    r = s_decode(sb.data, sb.size, back, why, sizeof(why));
    if (r < 0)
        fail_msg("%s", why);
    s_assert_msg_equal(m, back);
    msgpack_sbuffer_destroy(&sb);
    free(m);
    free(back);
}

/* ---- mutations of a valid message ---- */

typedef struct s_msg {
    msgpack_sbuffer sb;
    msgpack_unpacked up;
} s_msg_t;

static void s_msg_sample(s_msg_t *x)
{
    kt_cell_msg_t *m = malloc(sizeof(*m));
    assert_non_null(m);
    s_sample(m);
    msgpack_sbuffer_init(&x->sb);
    assert_int_equal(kt_cell_msg_encode(m, &x->sb), 0);
    free(m);
    msgpack_unpacked_init(&x->up);
    assert_int_equal(msgpack_unpack_next(&x->up, x->sb.data, x->sb.size, NULL),
                     MSGPACK_UNPACK_SUCCESS);
}

static void s_msg_destroy(s_msg_t *x)
{
    msgpack_unpacked_destroy(&x->up);
    msgpack_sbuffer_destroy(&x->sb);
}

/* A path names a field: "plan.cgroups.1.work"; numbers index arrays. */
#define S_MAX_DEPTH 6

typedef struct s_path {
    char text[96];
    unsigned n;
    char part[S_MAX_DEPTH][32];
} s_path_t;

static void s_path_parse(const char *text, s_path_t *p)
{
    memset(p, 0, sizeof(*p));
    snprintf(p->text, sizeof(p->text), "%s", text);
    const char *s = text;
    while (*s && p->n < S_MAX_DEPTH) {
        size_t l = strcspn(s, ".");
        snprintf(p->part[p->n++], sizeof(p->part[0]), "%.*s", (int)l, s);
        s += l + (s[l] == '.');
    }
}

static bool s_key_is(const msgpack_object *k, const char *name)
{
    return k->type == MSGPACK_OBJECT_STR && k->via.str.size == strlen(name) &&
           memcmp(k->via.str.ptr, name, k->via.str.size) == 0;
}

/* Packs o with the field at path[depth..] removed (repl NULL) or replaced. */
static void s_repack(msgpack_packer *pk, const msgpack_object *o, const s_path_t *p, unsigned depth,
                     const msgpack_object *repl)
{
    if (depth == p->n) {
        msgpack_pack_object(pk, *o);
        return;
    }
    const char *part = p->part[depth];
    bool last = depth + 1 == p->n;
    if (o->type == MSGPACK_OBJECT_MAP) {
        uint32_t size = o->via.map.size;
        if (last && !repl)
            for (uint32_t i = 0; i < o->via.map.size; i++)
                size -= s_key_is(&o->via.map.ptr[i].key, part);
        msgpack_pack_map(pk, size);
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            const msgpack_object_kv *kv = &o->via.map.ptr[i];
            if (!s_key_is(&kv->key, part)) {
                msgpack_pack_object(pk, kv->key);
                msgpack_pack_object(pk, kv->val);
            } else if (!last) {
                msgpack_pack_object(pk, kv->key);
                s_repack(pk, &kv->val, p, depth + 1, repl);
            } else if (repl) {
                msgpack_pack_object(pk, kv->key);
                msgpack_pack_object(pk, *repl);
            }
        }
        return;
    }
    if (o->type == MSGPACK_OBJECT_ARRAY) {
        uint32_t idx = (uint32_t)strtoul(part, NULL, 10);
        bool drop = last && !repl && idx < o->via.array.size;
        msgpack_pack_array(pk, o->via.array.size - drop);
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            if (i != idx)
                msgpack_pack_object(pk, o->via.array.ptr[i]);
            else if (!last)
                s_repack(pk, &o->via.array.ptr[i], p, depth + 1, repl);
            else if (repl)
                msgpack_pack_object(pk, *repl);
        }
        return;
    }
    fail_msg("path '%s' goes through a scalar", p->text);
}

/* Decodes the sample with `path` removed or replaced; returns the result
 * and the reason. */
static int s_mutate(const s_msg_t *x, const char *path, const msgpack_object *repl, char *why,
                    size_t wl)
{
    s_path_t p;
    s_path_parse(path, &p);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    s_repack(&pk, &x->up.data, &p, 0, repl);
    kt_cell_msg_t *m = malloc(sizeof(*m));
    assert_non_null(m);
    int r = s_decode(sb.data, sb.size, m, why, wl);
    free(m);
    msgpack_sbuffer_destroy(&sb);
    return r;
}

/* A value built by packing, kept alive in its own buffer. */
typedef struct s_val {
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_unpacked up;
} s_val_t;

static msgpack_packer *s_val_begin(s_val_t *v)
{
    msgpack_sbuffer_init(&v->sb);
    msgpack_packer_init(&v->pk, &v->sb, msgpack_sbuffer_write);
    msgpack_unpacked_init(&v->up);
    return &v->pk;
}

static const msgpack_object *s_val_end(s_val_t *v)
{
    assert_int_equal(msgpack_unpack_next(&v->up, v->sb.data, v->sb.size, NULL),
                     MSGPACK_UNPACK_SUCCESS);
    return &v->up.data;
}

static void s_val_destroy(s_val_t *v)
{
    msgpack_unpacked_destroy(&v->up);
    msgpack_sbuffer_destroy(&v->sb);
}

static const msgpack_object *s_val_str(s_val_t *v, size_t len, char ch)
{
    msgpack_packer *pk = s_val_begin(v);
    char *s = malloc(len + 1);
    assert_non_null(s);
    memset(s, ch, len);
    msgpack_pack_str(pk, len);
    msgpack_pack_str_body(pk, s, len);
    free(s);
    return s_val_end(v);
}

static const msgpack_object *s_val_text(s_val_t *v, const char *text)
{
    msgpack_packer *pk = s_val_begin(v);
    kt_mp_pack_str(pk, text);
    return s_val_end(v);
}

static const msgpack_object *s_val_int(s_val_t *v, int64_t i)
{
    msgpack_packer *pk = s_val_begin(v);
    msgpack_pack_int64(pk, i);
    return s_val_end(v);
}

static const msgpack_object *s_val_double(s_val_t *v, double d)
{
    msgpack_packer *pk = s_val_begin(v);
    msgpack_pack_double(pk, d);
    return s_val_end(v);
}

/* An array of n copies of o. */
static const msgpack_object *s_val_repeat(s_val_t *v, const msgpack_object *o, uint32_t n)
{
    msgpack_packer *pk = s_val_begin(v);
    msgpack_pack_array(pk, n);
    for (uint32_t i = 0; i < n; i++)
        msgpack_pack_object(pk, *o);
    return s_val_end(v);
}

/* Every path of the tree: map fields and array elements. */
static void s_collect(const msgpack_object *o, const char *prefix, char (*paths)[96], size_t *n,
                      size_t max)
{
    if (o->type == MSGPACK_OBJECT_MAP) {
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            const msgpack_object_kv *kv = &o->via.map.ptr[i];
            assert_int_equal(kv->key.type, MSGPACK_OBJECT_STR);
            char path[96];
            snprintf(path, sizeof(path), "%s%s%.*s", prefix, *prefix ? "." : "",
                     (int)kv->key.via.str.size, kv->key.via.str.ptr);
            assert_true(*n < max);
            snprintf(paths[(*n)++], 96, "%s", path);
            s_collect(&kv->val, path, paths, n, max);
        }
    } else if (o->type == MSGPACK_OBJECT_ARRAY) {
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            char path[96];
            snprintf(path, sizeof(path), "%s.%u", prefix, i);
            assert_true(*n < max);
            snprintf(paths[(*n)++], 96, "%s", path);
            s_collect(&o->via.array.ptr[i], path, paths, n, max);
        }
    }
}

static const msgpack_object *s_lookup(const msgpack_object *o, const char *path)
{
    s_path_t p;
    s_path_parse(path, &p);
    for (unsigned d = 0; d < p.n && o; d++) {
        if (o->type == MSGPACK_OBJECT_MAP) {
            const msgpack_object *next = NULL;
            for (uint32_t i = 0; i < o->via.map.size; i++)
                if (s_key_is(&o->via.map.ptr[i].key, p.part[d]))
                    next = &o->via.map.ptr[i].val;
            o = next;
        } else if (o->type == MSGPACK_OBJECT_ARRAY) {
            uint32_t idx = (uint32_t)strtoul(p.part[d], NULL, 10);
            o = idx < o->via.array.size ? &o->via.array.ptr[idx] : NULL;
        } else {
            o = NULL;
        }
    }
    return o;
}

static void test_truncated_every_length(void **state)
{
    (void)state;
    s_msg_t x;
    s_msg_sample(&x);
    kt_cell_msg_t *m = malloc(sizeof(*m));
    assert_non_null(m);
    char why[256];
    for (size_t len = 0; len < x.sb.size; len++) {
        /* A copy of exactly len bytes, so ASan sees any read past it. */
        char *copy = malloc(len ? len : 1);
        assert_non_null(copy);
        memcpy(copy, x.sb.data, len);
        int r = s_decode(copy, len, m, why, sizeof(why));
        free(copy);
        if (r != -EBADMSG)
            fail_msg("truncated to %zu of %zu bytes: got %d", len, x.sb.size, r);
        assert_string_equal(why, "not a msgpack object");
    }
    /* Trailing bytes after a complete message. */
    char *longer = malloc(x.sb.size + 1);
    assert_non_null(longer);
    memcpy(longer, x.sb.data, x.sb.size);
    longer[x.sb.size] = (char)0xc0; /* a msgpack nil */
    assert_int_equal(s_decode(longer, x.sb.size + 1, m, why, sizeof(why)), -EBADMSG);
    assert_string_equal(why, "1 trailing bytes after the message");
    free(longer);
    free(m);
    s_msg_destroy(&x);
}

static void test_missing_fields(void **state)
{
    (void)state;
    s_msg_t x;
    s_msg_sample(&x);
    static char paths[512][96];
    size_t n = 0;
    s_collect(&x.up.data, "", paths, &n, 512);
    assert_true(n > 60);
    unsigned removed = 0;
    char why[256];
    for (size_t i = 0; i < n; i++) {
        const char *last = strrchr(paths[i], '.');
        last = last ? last + 1 : paths[i];
        /* Dropping an array element leaves a valid, shorter array. */
        if (last[0] >= '0' && last[0] <= '9')
            continue;
        int r = s_mutate(&x, paths[i], NULL, why, sizeof(why));
        if (r != -EBADMSG)
            fail_msg("without '%s': got %d, want -EBADMSG", paths[i], r);
        /* The reason names the missing field. */
        if (strcmp(last, "t") != 0 && !strstr(why, last))
            fail_msg("without '%s': reason '%s' does not name it", paths[i], why);
        removed++;
    }
    assert_true(removed > 40);
    s_msg_destroy(&x);
}

static void test_wrong_types(void **state)
{
    (void)state;
    s_msg_t x;
    s_msg_sample(&x);
    static char paths[512][96];
    size_t n = 0;
    s_collect(&x.up.data, "", paths, &n, 512);

    /* One value of each msgpack type. */
    s_val_t vals[8];
    msgpack_packer *pk;
    const msgpack_object *nil, *tru, *pos, *neg, *flt, *str, *arr, *map;
    pk = s_val_begin(&vals[0]);
    msgpack_pack_nil(pk);
    nil = s_val_end(&vals[0]);
    pk = s_val_begin(&vals[1]);
    msgpack_pack_true(pk);
    tru = s_val_end(&vals[1]);
    pos = s_val_int(&vals[2], 1);
    neg = s_val_int(&vals[3], -1);
    flt = s_val_double(&vals[4], 1.5);
    str = s_val_text(&vals[5], "1");
    pk = s_val_begin(&vals[6]);
    msgpack_pack_array(pk, 0);
    arr = s_val_end(&vals[6]);
    pk = s_val_begin(&vals[7]);
    msgpack_pack_map(pk, 0);
    map = s_val_end(&vals[7]);

    unsigned tried = 0;
    char why[256];
    for (size_t i = 0; i < n; i++) {
        const msgpack_object *orig = s_lookup(&x.up.data, paths[i]);
        assert_non_null(orig);
        /* The types that are not the field's own: numbers accept integers
         * where a double is stored, and nice is signed. */
        const msgpack_object *wrong[8];
        size_t nw = 0;
        wrong[nw++] = nil;
        if (orig->type != MSGPACK_OBJECT_BOOLEAN)
            wrong[nw++] = tru;
        if (orig->type == MSGPACK_OBJECT_BOOLEAN || orig->type == MSGPACK_OBJECT_STR ||
            orig->type == MSGPACK_OBJECT_ARRAY || orig->type == MSGPACK_OBJECT_MAP)
            wrong[nw++] = pos;
        if (orig->type == MSGPACK_OBJECT_POSITIVE_INTEGER && !strstr(paths[i], "nice"))
            wrong[nw++] = neg;
        if (orig->type != MSGPACK_OBJECT_FLOAT64)
            wrong[nw++] = flt;
        if (orig->type != MSGPACK_OBJECT_STR)
            wrong[nw++] = str;
        if (orig->type != MSGPACK_OBJECT_ARRAY)
            wrong[nw++] = arr;
        if (orig->type != MSGPACK_OBJECT_MAP)
            wrong[nw++] = map;
        for (size_t w = 0; w < nw; w++) {
            int r = s_mutate(&x, paths[i], wrong[w], why, sizeof(why));
            if (r != -EBADMSG)
                fail_msg("'%s' as msgpack type %d: got %d, want -EBADMSG", paths[i], wrong[w]->type,
                         r);
            assert_true(why[0] != '\0');
            tried++;
        }
    }
    assert_true(tried > 300);
    for (int i = 0; i < 8; i++)
        s_val_destroy(&vals[i]);
    s_msg_destroy(&x);
}

/* Mutating `path` to `val` is refused, with `reason` in the why text. */
static void s_refused(const s_msg_t *x, const char *path, const msgpack_object *val,
                      const char *reason)
{
    char why[256];
    int r = s_mutate(x, path, val, why, sizeof(why));
    if (r != -EBADMSG)
        fail_msg("'%s': got %d, want -EBADMSG", path, r);
    if (!strstr(why, reason))
        fail_msg("'%s': reason '%s' lacks '%s'", path, why, reason);
}

static void s_accepted(const s_msg_t *x, const char *path, const msgpack_object *val)
{
    char why[256];
    int r = s_mutate(x, path, val, why, sizeof(why));
    if (r != 0)
        fail_msg("'%s': got %d (%s), want 0", path, r, why);
}

static void test_sizes_and_ranges(void **state)
{
    (void)state;
    s_msg_t x;
    s_msg_sample(&x);
    s_val_t v, w;

    /* Strings at and over their buffers. */
    s_accepted(&x, "cell_id", s_val_str(&v, KT_CELL_ID_MAX - 1, 'a'));
    s_val_destroy(&v);
    s_refused(&x, "cell_id", s_val_str(&v, KT_CELL_ID_MAX, 'a'), "longer than 64 bytes");
    s_val_destroy(&v);
    s_refused(&x, "cell_id", s_val_str(&v, 1u << 20, 'a'), "longer than 64 bytes");
    s_val_destroy(&v);
    s_refused(&x, "sched.name", s_val_str(&v, KT_NAME_MAX, 'n'), "'name': longer than 63");
    s_val_destroy(&v);
    s_refused(&x, "sched.path", s_val_str(&v, KT_PATH_MAX, '/'), "'path': longer than 255");
    s_val_destroy(&v);
    s_accepted(&x, "sched.args.0", s_val_str(&v, KT_SCHED_ARG_LEN - 1, 'x'));
    s_val_destroy(&v);
    s_refused(&x, "sched.args.0", s_val_str(&v, KT_SCHED_ARG_LEN, 'x'), "sched.args[0]");
    s_val_destroy(&v);
    s_refused(&x, "sched.args.1", s_val_str(&v, 3, '\0'), "sched.args[1]");
    s_val_destroy(&v);
    s_refused(&x, "cell_id", s_val_str(&v, 3, '\0'), "'cell_id': not a string");
    s_val_destroy(&v);
    s_refused(&x, "plan.cgroups.0.name", s_val_str(&v, KT_NAME_MAX, 'c'), "longer than 63");
    s_val_destroy(&v);
    s_refused(&x, "plan.cgroups.0.cpus", s_val_str(&v, KT_MAX_CPUS * 4, '1'), "longer than");
    s_val_destroy(&v);

    /* Arrays at and over their limits. */
    s_accepted(&x, "sched.args", s_val_repeat(&v, s_val_text(&w, "-v"), KT_SCHED_ARGS_MAX));
    s_val_destroy(&v);
    s_refused(&x, "sched.args", s_val_repeat(&v, &w.up.data, KT_SCHED_ARGS_MAX + 1),
              "over 32 entries");
    s_val_destroy(&v);
    s_val_destroy(&w);
    const msgpack_object *cg0 = s_lookup(&x.up.data, "plan.cgroups.2");
    s_refused(&x, "plan.cgroups", s_val_repeat(&v, cg0, KT_MAX_CGROUPS + 1),
              "33 entries, limit 32");
    s_val_destroy(&v);
    s_refused(&x, "plan.cgroups", s_val_repeat(&v, cg0, 100000), "100000 entries, limit 32");
    s_val_destroy(&v);
    const msgpack_object *f0 = s_lookup(&x.up.data, "plan.faults.0");
    s_accepted(&x, "plan.faults", s_val_repeat(&v, f0, KT_MAX_FAULTS));
    s_val_destroy(&v);
    s_refused(&x, "plan.faults", s_val_repeat(&v, f0, KT_MAX_FAULTS + 1), "9 entries, limit 8");
    s_val_destroy(&v);

    /* Values out of range. */
    s_accepted(&x, "plan.cgroups.0.nice", s_val_int(&v, -20));
    s_val_destroy(&v);
    s_refused(&x, "plan.cgroups.0.nice", s_val_int(&v, -21), "outside -20..19");
    s_val_destroy(&v);
    s_refused(&x, "plan.cgroups.0.nice", s_val_int(&v, 20), "outside -20..19");
    s_val_destroy(&v);
    s_refused(&x, "plan.cgroups.0.policy", s_val_int(&v, KT_POLICY_RR + 1), "over the limit");
    s_val_destroy(&v);
    s_refused(&x, "plan.cgroups.0.workers", s_val_int(&v, KT_MAX_WORKERS_PER_CGROUP + 1),
              "over the limit");
    s_val_destroy(&v);
    s_refused(&x, "plan.cgroups.0.work", s_val_text(&v, "spinn"), "unknown work type 'spinn'");
    s_val_destroy(&v);
    s_refused(&x, "plan.cgroups.0.cpus", s_val_text(&v, "0-3,x"), "bad CPU list");
    s_val_destroy(&v);
    s_refused(&x, "plan.cgroups.0.cpus", s_val_text(&v, "0-256"), "bad CPU list");
    s_val_destroy(&v);
    s_refused(&x, "plan.cgroups.0.name", s_val_text(&v, "a/../b"), "not a valid cgroup name");
    s_val_destroy(&v);
    s_refused(&x, "plan.cgroups.0.name", s_val_text(&v, "a/b"), "'a/b' is not nested in any cgroup");
    s_val_destroy(&v);
    s_refused(&x, "plan.cgroups.0.name", s_val_text(&v, ".."), "not a valid cgroup name");
    s_val_destroy(&v);
    s_refused(&x, "plan.cgroups.0.name", s_val_text(&v, ""), "not a valid cgroup name");
    s_val_destroy(&v);
    s_refused(&x, "plan.topology.threads", s_val_int(&v, 9), "over the limit");
    s_val_destroy(&v);
    s_refused(&x, "plan.topology.nodes", s_val_int(&v, 0), "invalid shape 0,4,4,1");
    s_val_destroy(&v);
    s_refused(&x, "plan.topology.nodes", s_val_int(&v, 3), "invalid shape 3,4,4,1");
    s_val_destroy(&v);
    s_refused(&x, "plan.topology.cores", s_val_int(&v, 200), "invalid shape");
    s_val_destroy(&v);
    s_refused(&x, "plan.duration_ms", s_val_int(&v, 24 * 3600 * 1000 + 1), "over the limit");
    s_val_destroy(&v);
    s_refused(&x, "heartbeat_ms", s_val_int(&v, 0), "must be > 0");
    s_val_destroy(&v);
    s_refused(&x, "sched_enable_timeout_ms", s_val_int(&v, 600001), "over the limit");
    s_val_destroy(&v);
    s_refused(&x, "sched_enable_timeout_ms", s_val_int(&v, INT64_MAX), "over the limit");
    s_val_destroy(&v);
    s_refused(&x, "plan.thresholds.max_spread_pct", s_val_double(&v, 100.5), "out of range");
    s_val_destroy(&v);
    s_refused(&x, "plan.thresholds.max_spread_pct", s_val_double(&v, NAN), "max_spread_pct");
    s_val_destroy(&v);
    s_refused(&x, "plan.thresholds.min_work_rate", s_val_double(&v, -1), "out of range");
    s_val_destroy(&v);
    s_refused(&x, "plan.thresholds.min_work_rate", s_val_double(&v, INFINITY), "min_work_rate");
    s_val_destroy(&v);
    s_accepted(&x, "plan.thresholds.max_spread_pct", s_val_int(&v, 20));
    s_val_destroy(&v);

    /* Too many workers in all: 32 cgroups of 17. */
    msgpack_packer *pk = s_val_begin(&w);
    msgpack_pack_map(pk, 14);
    kt_mp_pack_kv_str(pk, "name", "many");
    kt_mp_pack_kv_bool(pk, "has_cpuset", false);
    kt_mp_pack_kv_str(pk, "cpus", "0-15");
    kt_mp_pack_kv_u64(pk, "workers", 17);
    kt_mp_pack_kv_str(pk, "work", "spin");
    kt_mp_pack_kv_u64(pk, "policy", 0);
    kt_mp_pack_kv_i64(pk, "nice", 0);
    kt_mp_pack_kv_u64(pk, "rt_priority", 0);
    kt_mp_pack_kv_u64(pk, "affinity", 0);
    kt_mp_pack_kv_u64(pk, "affinity_count", 0);
    kt_mp_pack_kv_str(pk, "affinity_cpus", "");
    kt_mp_pack_kv_bool(pk, "deferred", false);
    kt_mp_pack_kv_u64(pk, "spawn_slots", 0);
    kt_mp_pack_kv_u64(pk, "nest_parent", 0);
    s_refused(&x, "plan.cgroups", s_val_repeat(&v, s_val_end(&w), KT_MAX_CGROUPS),
              "544 workers in all, limit 512");
    s_val_destroy(&v);
    s_val_destroy(&w);
    s_msg_destroy(&x);
}

static void test_faults_and_type(void **state)
{
    (void)state;
    s_msg_t x;
    s_msg_sample(&x);
    s_val_t v;
    /* Fault 1 names cgroup 5 ("all", 3 workers): worker 3 does not exist,
     * nor does cgroup 6. */
    s_accepted(&x, "plan.faults.1.worker", s_val_int(&v, 2));
    s_val_destroy(&v);
    s_refused(&x, "plan.faults.1.worker", s_val_int(&v, 3),
              "plan.faults[1]: names no worker (cgroup 5 worker 3)");
    s_val_destroy(&v);
    s_refused(&x, "plan.faults.1.cgroup", s_val_int(&v, 6),
              "plan.faults[1]: names no worker (cgroup 6 worker 2)");
    s_val_destroy(&v);
    s_refused(&x, "plan.faults.1.cgroup", s_val_int(&v, KT_MAX_CGROUPS), "over the limit");
    s_val_destroy(&v);
    s_refused(&x, "plan.faults.0", s_val_int(&v, 1), "");
    s_val_destroy(&v);

    /* The message type. */
    s_refused(&x, "t", s_val_text(&v, "cellx"), "not a cell message");
    s_val_destroy(&v);
    s_refused(&x, "t", s_val_text(&v, "result"), "not a cell message");
    s_val_destroy(&v);
    s_refused(&x, "t", s_val_text(&v, "cell-but-very-long-type"), "not a cell message");
    s_val_destroy(&v);
    s_refused(&x, "t", s_val_int(&v, 1), "not a cell message");
    s_val_destroy(&v);

    /* Bodies that are not a map. */
    kt_cell_msg_t *m = malloc(sizeof(*m));
    assert_non_null(m);
    char why[256];
    static const uint8_t array[] = {0x91, 0xa1, 't'};
    assert_int_equal(s_decode(array, sizeof(array), m, why, sizeof(why)), -EBADMSG);
    assert_string_equal(why, "not a cell message (no \"t\":\"cell\")");
    static const uint8_t empty_map[] = {0x80};
    assert_int_equal(s_decode(empty_map, sizeof(empty_map), m, why, sizeof(why)), -EBADMSG);
    assert_int_equal(s_decode("", 0, m, why, sizeof(why)), -EBADMSG);
    /* A failed decode leaves the output alone. */
    memset(m, 0x42, sizeof(*m));
    kt_cell_msg_t *before = malloc(sizeof(*before));
    assert_non_null(before);
    memcpy(before, m, sizeof(*m));
    assert_int_equal(s_decode(array, sizeof(array), m, why, sizeof(why)), -EBADMSG);
    assert_memory_equal(m, before, sizeof(*m));
    free(before);
    free(m);
    s_msg_destroy(&x);
}

/* Containers that announce more entries than there are bytes left. msgpack-c
 * allocates a container's slots when it reads the header (2^32-1 map
 * entries: 256 GiB), before it sees the bytes are missing. Without a
 * sanitizer malloc fails and the decode returns -EBADMSG; under ASan (the
 * sanitizer CI build) the allocation aborts the test, as it aborts the
 * fuzzer, until the decoder checks announced counts against the bytes left
 * before unpacking. */
static void test_hostile_counts(void **state)
{
    (void)state;
    kt_cell_msg_t *m = malloc(sizeof(*m));
    assert_non_null(m);
    char why[256];
    static const uint8_t map32[] = {0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 't'};
    assert_int_equal(s_decode(map32, sizeof(map32), m, why, sizeof(why)), -EBADMSG);
    static const uint8_t array32[] = {0x81, 0xa1, 't', 0xdd, 0xff, 0xff, 0xff, 0xff};
    assert_int_equal(s_decode(array32, sizeof(array32), m, why, sizeof(why)), -EBADMSG);
    free(m);
}

static void test_accessors(void **state)
{
    (void)state;
    s_val_t v;
    msgpack_packer *pk = s_val_begin(&v);
    msgpack_pack_map(pk, 7);
    kt_mp_pack_kv_str(pk, "s", "hello");
    kt_mp_pack_str(pk, "z");
    msgpack_pack_str(pk, 3);
    msgpack_pack_str_body(pk, "a\0b", 3);
    kt_mp_pack_kv_u64(pk, "big", UINT64_MAX);
    kt_mp_pack_kv_i64(pk, "neg", -5);
    kt_mp_pack_kv_bool(pk, "b", true);
    kt_mp_pack_kv_double(pk, "d", 2.5);
    kt_mp_pack_kv_double(pk, "nan", NAN);
    const msgpack_object *o = s_val_end(&v);
    char buf[8];
    uint64_t u;
    int64_t i;
    bool b;
    double d;
    assert_int_equal(kt_mp_get_str(o, "s", buf, sizeof(buf)), 0);
    assert_string_equal(buf, "hello");
    assert_int_equal(kt_mp_get_str(o, "s", buf, 5), -E2BIG);
    assert_int_equal(kt_mp_get_str(o, "s", buf, 6), 0);
    assert_int_equal(kt_mp_get_str(o, "z", buf, sizeof(buf)), -EBADMSG);
    assert_int_equal(kt_mp_get_str(o, "nope", buf, sizeof(buf)), -ENOENT);
    assert_int_equal(kt_mp_get_str(o, "big", buf, sizeof(buf)), -EBADMSG);
    assert_int_equal(kt_mp_get_u64(o, "big", &u), 0);
    assert_true(u == UINT64_MAX);
    assert_int_equal(kt_mp_get_u64(o, "neg", &u), -EBADMSG);
    assert_int_equal(kt_mp_get_i64(o, "neg", &i), 0);
    assert_int_equal(i, -5);
    assert_int_equal(kt_mp_get_i64(o, "big", &i), -ERANGE);
    assert_int_equal(kt_mp_get_bool(o, "b", &b), 0);
    assert_true(b);
    assert_int_equal(kt_mp_get_bool(o, "s", &b), -EBADMSG);
    assert_int_equal(kt_mp_get_double(o, "d", &d), 0);
    assert_true(d == 2.5);
    assert_int_equal(kt_mp_get_double(o, "neg", &d), 0);
    assert_true(d == -5.0);
    assert_int_equal(kt_mp_get_double(o, "nan", &d), -EBADMSG);
    assert_int_equal(kt_mp_get_double(o, "s", &d), -EBADMSG);
    assert_null(kt_mp_get(o, "missing"));
    assert_null(kt_mp_get(NULL, "s"));
    assert_null(kt_mp_get(kt_mp_get(o, "s"), "s")); /* not a map */
    s_val_destroy(&v);
}

/* A map value built by a packer: {name: ns, ...}. */
static const msgpack_object *s_val_bounds(s_val_t *v, const char *const *names, unsigned n)
{
    msgpack_packer *pk = s_val_begin(v);
    msgpack_pack_map(pk, n);
    for (unsigned i = 0; i < n; i++)
        kt_mp_pack_kv_u64(pk, names[i], 100 + i);
    return s_val_end(v);
}

/* bpf_callback_ns bounds: absent means off (a plan without them carries no
 * such key), set they round-trip, and bad ones are refused by name. */
static void test_callback_bounds(void **state)
{
    (void)state;
    kt_cell_msg_t *m = malloc(sizeof(*m)), *back = malloc(sizeof(*back));
    assert_non_null(m);
    assert_non_null(back);
    s_sample(m);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    assert_int_equal(kt_cell_msg_encode(m, &sb), 0);
    assert_null(memmem(sb.data, sb.size, "callback", 8));
    char why[256];
    memset(back, 0x77, sizeof(*back));
    if (s_decode(sb.data, sb.size, back, why, sizeof(why)) < 0)
        fail_msg("%s", why);
    assert_int_equal(back->plan.thresholds.max_callback_ns, 0);
    assert_int_equal(back->plan.thresholds.n_callback_bounds, 0);
    msgpack_sbuffer_destroy(&sb);

    kt_thresholds_t *t = &m->plan.thresholds;
    t->max_callback_ns = 5000;
    assert_int_equal(kt_checks_callback_bound_add(t, "simple_enqueue", 2000), 0);
    assert_int_equal(kt_checks_callback_bound_add(t, "simple_dispatch", 1000000000), 0);
    s_msg_t x;
    msgpack_sbuffer_init(&x.sb);
    assert_int_equal(kt_cell_msg_encode(m, &x.sb), 0);
    memset(back, 0x77, sizeof(*back));
    if (s_decode(x.sb.data, x.sb.size, back, why, sizeof(why)) < 0)
        fail_msg("%s", why);
    s_assert_msg_equal(m, back);
    const kt_thresholds_t *bt = &back->plan.thresholds;
    assert_int_equal(bt->max_callback_ns, 5000);
    assert_int_equal(bt->n_callback_bounds, 2);
    assert_string_equal(bt->callback_bounds[0].prog, "simple_enqueue");
    assert_int_equal(bt->callback_bounds[0].max_ns, 2000);
    assert_string_equal(bt->callback_bounds[1].prog, "simple_dispatch");
    assert_int_equal(bt->callback_bounds[1].max_ns, 1000000000);

    msgpack_unpacked_init(&x.up);
    assert_int_equal(msgpack_unpack_next(&x.up, x.sb.data, x.sb.size, NULL),
                     MSGPACK_UNPACK_SUCCESS);
    s_val_t v;
    /* Either may be left out. */
    s_accepted(&x, "plan.thresholds.max_callback_ns", NULL);
    s_accepted(&x, "plan.thresholds.callback_bounds", NULL);
    s_accepted(&x, "plan.thresholds.max_callback_ns", s_val_int(&v, 0));
    s_val_destroy(&v);
    s_refused(&x, "plan.thresholds.max_callback_ns", s_val_int(&v, -1), "'max_callback_ns'");
    s_val_destroy(&v);
    s_refused(&x, "plan.thresholds.max_callback_ns", s_val_int(&v, 1000000001), "over the limit");
    s_val_destroy(&v);
    s_refused(&x, "plan.thresholds.max_callback_ns", s_val_text(&v, "5us"), "'max_callback_ns'");
    s_val_destroy(&v);
    s_refused(&x, "plan.thresholds.callback_bounds", s_val_int(&v, 5), "not a map");
    s_val_destroy(&v);
    s_refused(&x, "plan.thresholds.callback_bounds.simple_enqueue", s_val_int(&v, 0),
              "'callback_bounds.simple_enqueue': not an integer in 1..1000000000");
    s_val_destroy(&v);
    s_refused(&x, "plan.thresholds.callback_bounds.simple_enqueue", s_val_double(&v, 1.5),
              "callback_bounds.simple_enqueue");
    s_val_destroy(&v);
    s_refused(&x, "plan.thresholds.callback_bounds.simple_enqueue", s_val_int(&v, 1000000001),
              "callback_bounds.simple_enqueue");
    s_val_destroy(&v);
    static const char *const bad[] = {"bad-name"};
    s_refused(&x, "plan.thresholds.callback_bounds", s_val_bounds(&v, bad, 1),
              "'bad-name' is not a BPF program name");
    s_val_destroy(&v);
    static const char *const empty[] = {""};
    s_refused(&x, "plan.thresholds.callback_bounds", s_val_bounds(&v, empty, 1),
              "is not a BPF program name");
    s_val_destroy(&v);
    static const char *const longer[] = {"sixteen_chars_xx"};
    s_refused(&x, "plan.thresholds.callback_bounds", s_val_bounds(&v, longer, 1),
              "key 0 is not a program name");
    s_val_destroy(&v);
    static const char *const twice[] = {"a", "b", "a"};
    s_refused(&x, "plan.thresholds.callback_bounds", s_val_bounds(&v, twice, 3),
              "'callback_bounds.a': named twice");
    s_val_destroy(&v);
    static const char *const nine[] = {"a", "b", "c", "d", "e", "f", "g", "h", "i"};
    s_accepted(&x, "plan.thresholds.callback_bounds", s_val_bounds(&v, nine, 8));
    s_val_destroy(&v);
    s_refused(&x, "plan.thresholds.callback_bounds", s_val_bounds(&v, nine, 9),
              "9 entries, limit 8");
    s_val_destroy(&v);
    s_msg_destroy(&x);
    free(m);
    free(back);
}

/* ktstr's benchmarking bounds and the layering masks: absent means off /
 * nothing set (a plan without them carries no such key), set they
 * round-trip, and bad ones are refused by name. */
static void test_benchmark_thresholds(void **state)
{
    (void)state;
    kt_cell_msg_t *m = malloc(sizeof(*m)), *back = malloc(sizeof(*back));
    assert_non_null(m);
    assert_non_null(back);
    s_sample(m);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    assert_int_equal(kt_cell_msg_encode(m, &sb), 0);
    assert_null(memmem(sb.data, sb.size, "_cv", 3));
    assert_null(memmem(sb.data, sb.size, "from_scheduler", 14));
    msgpack_sbuffer_destroy(&sb);

    kt_thresholds_t *t = &m->plan.thresholds;
    t->max_wake_cv = 1.25;
    t->max_throughput_cv = 0.2;
    t->min_iteration_rate = 1500.5;
    t->max_migration_ratio = 0.75;
    t->set = KT_THR_BIT(KT_THR_WAKE_CV) | KT_THR_BIT(KT_THR_SPREAD) | KT_THR_BIT(KT_THR_GAP_ON);
    t->from_scheduler = KT_THR_BIT(KT_THR_SPREAD);
    t->debug_relaxed = KT_THR_BIT(KT_THR_GAP);
    s_msg_t x;
    msgpack_sbuffer_init(&x.sb);
    assert_int_equal(kt_cell_msg_encode(m, &x.sb), 0);
    char why[256];
    memset(back, 0x77, sizeof(*back));
    if (s_decode(x.sb.data, x.sb.size, back, why, sizeof(why)) < 0)
        fail_msg("%s", why);
    s_assert_msg_equal(m, back);
    assert_true(back->plan.thresholds.min_iteration_rate == 1500.5);
    assert_int_equal(kt_thresholds_source(&back->plan.thresholds, KT_THR_SPREAD),
                     KT_THR_FROM_SCHEDULER);
    assert_int_equal(kt_thresholds_source(&back->plan.thresholds, KT_THR_GAP),
                     KT_THR_FROM_DEBUG_DEFAULT);

    msgpack_unpacked_init(&x.up);
    assert_int_equal(msgpack_unpack_next(&x.up, x.sb.data, x.sb.size, NULL),
                     MSGPACK_UNPACK_SUCCESS);
    s_val_t v;
    s_accepted(&x, "plan.thresholds.max_wake_cv", NULL);
    s_accepted(&x, "plan.thresholds.set", NULL);
    s_accepted(&x, "plan.thresholds.min_iteration_rate", s_val_int(&v, 10));
    s_val_destroy(&v);
    s_refused(&x, "plan.thresholds.max_wake_cv", s_val_double(&v, -0.5), "'max_wake_cv'");
    s_val_destroy(&v);
    s_refused(&x, "plan.thresholds.max_throughput_cv", s_val_double(&v, NAN),
              "'max_throughput_cv'");
    s_val_destroy(&v);
    s_refused(&x, "plan.thresholds.min_iteration_rate", s_val_text(&v, "fast"),
              "'min_iteration_rate'");
    s_val_destroy(&v);
    s_refused(&x, "plan.thresholds.max_migration_ratio", s_val_double(&v, 2e6), "out of range");
    s_val_destroy(&v);
    s_refused(&x, "plan.thresholds.set", s_val_int(&v, 1 << KT_THR__COUNT), "'set'");
    s_val_destroy(&v);
    s_refused(&x, "plan.thresholds.debug_relaxed", s_val_text(&v, "x"), "'debug_relaxed'");
    s_val_destroy(&v);
    s_msg_destroy(&x);
    free(m);
    free(back);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),       cmocka_unit_test(test_truncated_every_length),
        cmocka_unit_test(test_missing_fields),   cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_sizes_and_ranges), cmocka_unit_test(test_faults_and_type),
        cmocka_unit_test(test_accessors),        cmocka_unit_test(test_hostile_counts),
        cmocka_unit_test(test_callback_bounds),  cmocka_unit_test(test_benchmark_thresholds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
