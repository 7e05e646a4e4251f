/* ktstr-init's BPF cost: the deltas over the workload phase from hand-made
 * snapshots (matched by id, programs loaded or unloaded during the phase,
 * counters that went backwards, truncation), the struct_ops sum, the
 * packing into the result, and a read-only snapshot of this host's programs
 * where the host lets us list them. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "kt_chanmsg.h"
#include "kt_guest_bpf.h"
#include "kt_guest_result.h"

static void s_prog(kt_guest_bpf_snap_t *s, uint32_t id, const char *name, bool struct_ops,
                   uint64_t cnt, uint64_t ns)
{
    assert_true(s->n < KT_GUEST_BPF_PROGS_MAX);
    kt_bpf_prog_cost_t *p = &s->progs[s->n++];
    memset(p, 0, sizeof(*p));
    p->id = id;
    snprintf(p->name, sizeof(p->name), "%s", name);
    snprintf(p->type, sizeof(p->type), "%s", struct_ops ? "struct_ops" : "syscall");
    p->struct_ops = struct_ops;
    p->verified_insns = 100 + id;
    p->run_cnt = cnt;
    p->run_time_ns = ns;
}

static const kt_bpf_prog_cost_t *s_find(const kt_guest_bpf_t *b, const char *name)
{
    for (unsigned i = 0; i < b->n_progs; i++)
        if (strcmp(b->progs[i].name, name) == 0)
            return &b->progs[i];
    return NULL;
}

/* scx_simple-like: callbacks called before and during the workload, one
 * program that ran only before (its delta is 0), one loaded during the
 * phase, one unloaded during it. */
static void s_scx_simple(kt_guest_bpf_t *b)
{
    kt_guest_bpf_init(b);
    snprintf(b->stats_by, sizeof(b->stats_by), "bpf_enable_stats");
    kt_guest_bpf_snap_t *x = &b->before, *y = &b->after;
    s_prog(x, 5, "simple_init", true, 1, 50000);
    s_prog(x, 6, "simple_enqueue", true, 100, 300000);
    s_prog(x, 7, "simple_dispatch", true, 50, 100000);
    s_prog(x, 8, "gone_prog", false, 9, 900);
    x->at_ns = 1000000000;
    s_prog(y, 5, "simple_init", true, 1, 50000);
    s_prog(y, 6, "simple_enqueue", true, 1100, 2800000); /* +1000 calls, +2.5 ms */
    s_prog(y, 7, "simple_dispatch", true, 4050, 4100000); /* +4000, +4 ms */
    s_prog(y, 9, "new_prog", false, 10, 20000);           /* loaded during the phase */
    y->at_ns = 4000000000;
}

static void test_delta(void **state)
{
    (void)state;
    kt_guest_bpf_t *b = malloc(sizeof(*b));
    assert_non_null(b);
    s_scx_simple(b);
    kt_guest_bpf_delta(b);
    assert_int_equal(b->n_progs, 4);
    assert_int_equal(b->unloaded, 1);
    assert_false(b->truncated);
    assert_true(b->interval_ms == 3000.0);

    const kt_bpf_prog_cost_t *p = s_find(b, "simple_enqueue");
    assert_non_null(p);
    assert_int_equal(p->id, 6);
    assert_int_equal(p->run_cnt, 1000);
    assert_int_equal(p->run_time_ns, 2500000);
    assert_int_equal(p->verified_insns, 106);
    assert_string_equal(p->type, "struct_ops");
    assert_true(kt_bpf_prog_ns_per_call(p) == 2500.0);
    p = s_find(b, "simple_dispatch");
    assert_int_equal(p->run_cnt, 4000);
    assert_true(kt_bpf_prog_ns_per_call(p) == 1000.0);
    p = s_find(b, "simple_init");
    assert_int_equal(p->run_cnt, 0);
    assert_int_equal(p->run_time_ns, 0);
    assert_true(kt_bpf_prog_ns_per_call(p) == 0.0);
    /* Loaded during the phase: counted from its load. */
    p = s_find(b, "new_prog");
    assert_int_equal(p->run_cnt, 10);
    assert_int_equal(p->run_time_ns, 20000);
    assert_null(s_find(b, "gone_prog"));

    /* The struct_ops sum: 5000 calls, 6.5 ms -> 1300 ns per call; the
     * syscall program is not in it. */
    assert_int_equal(b->n_struct_ops, 3);
    assert_int_equal(b->struct_ops_calls, 5000);
    assert_int_equal(b->struct_ops_run_time_ns, 6500000);
    assert_true(kt_guest_bpf_struct_ops_ns_per_call(b) == 1300.0);

    /* Feeds the check: 1 ns fails both called callbacks, 5000 passes. */
    kt_check_report_t *r = calloc(1, sizeof(*r));
    assert_non_null(r);
    kt_thresholds_t t = {.max_callback_ns = 1};
    assert_int_equal(kt_checks_evaluate_bpf(&t, b->progs, b->n_progs, r), 2);
    memset(r, 0, sizeof(*r));
    t.max_callback_ns = 5000;
    assert_int_equal(kt_checks_evaluate_bpf(&t, b->progs, b->n_progs, r), 0);
    assert_int_equal(r->n_results, 2);
    free(r);

    /* Recomputing starts over. */
    kt_guest_bpf_delta(b);
    assert_int_equal(b->n_progs, 4);
    assert_int_equal(b->struct_ops_calls, 5000);
    free(b);
}

static void test_delta_edges(void **state)
{
    (void)state;
    kt_guest_bpf_t *b = malloc(sizeof(*b));
    assert_non_null(b);

    /* EEVDF: nothing loaded, before or after. */
    kt_guest_bpf_init(b);
    kt_guest_bpf_delta(b);
    assert_int_equal(b->n_progs, 0);
    assert_int_equal(b->n_struct_ops, 0);
    assert_int_equal(b->unloaded, 0);
    assert_true(kt_guest_bpf_struct_ops_ns_per_call(b) == 0.0);

    /* A counter that went backwards (a reused id would do it) is 0, never
     * a huge unsigned wrap. */
    kt_guest_bpf_init(b);
    s_prog(&b->before, 3, "p", true, 100, 5000);
    s_prog(&b->after, 3, "p", true, 90, 4000);
    kt_guest_bpf_delta(b);
    assert_int_equal(b->n_progs, 1);
    assert_int_equal(b->progs[0].run_cnt, 0);
    assert_int_equal(b->progs[0].run_time_ns, 0);
    assert_true(b->interval_ms == 0.0);

    /* A full snapshot that says it was cut: the delta says so too. */
    kt_guest_bpf_init(b);
    for (uint32_t i = 0; i < KT_GUEST_BPF_PROGS_MAX; i++) {
        char name[16];
        snprintf(name, sizeof(name), "p%u", i);
        s_prog(&b->before, i + 1, name, i % 2 == 0, i, 10ull * i);
        s_prog(&b->after, i + 1, name, i % 2 == 0, 2ull * i, 30ull * i);
    }
    b->after.truncated = true;
    kt_guest_bpf_delta(b);
    assert_true(b->truncated);
    assert_int_equal(b->n_progs, KT_GUEST_BPF_PROGS_MAX);
    assert_int_equal(b->n_struct_ops, KT_GUEST_BPF_PROGS_MAX / 2);
    uint64_t calls = 0, ns = 0;
    for (uint32_t i = 0; i < KT_GUEST_BPF_PROGS_MAX; i += 2) {
        calls += i;
        ns += 20ull * i;
    }
    assert_int_equal(b->struct_ops_calls, calls);
    assert_int_equal(b->struct_ops_run_time_ns, ns);
    assert_true(kt_guest_bpf_struct_ops_ns_per_call(b) == 20.0);

    /* end without begin has nothing to subtract from. */
    kt_guest_bpf_init(b);
    assert_int_equal(kt_guest_bpf_end(b), -ENODATA);
    assert_false(b->measured);
    free(b);
}

static const msgpack_object *s_get(const msgpack_object *map, const char *key)
{
    const msgpack_object *o = kt_mp_get(map, key);
    if (!o)
        fail_msg("key '%s' missing", key);
    return o;
}

static void s_unpack(const kt_guest_result_t *r, msgpack_sbuffer *sb, msgpack_unpacked *up)
{
    msgpack_sbuffer_init(sb);
    assert_int_equal(kt_guest_result_pack(r, sb), 0);
    msgpack_unpacked_init(up);
    size_t off = 0;
    assert_int_equal(msgpack_unpack_next(up, sb->data, sb->size, &off), MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(off, sb->size);
}

static void test_pack(void **state)
{
    (void)state;
    kt_guest_result_t *r = malloc(sizeof(*r));
    kt_guest_bpf_t *b = malloc(sizeof(*b));
    assert_non_null(r);
    assert_non_null(b);
    kt_guest_result_init(r);

    /* Before the workload ended: an empty list and why. */
    msgpack_sbuffer sb;
    msgpack_unpacked up;
    s_unpack(r, &sb, &up);
    const msgpack_object *o = &up.data;
    assert_int_equal(s_get(o, "bpf_progs")->type, MSGPACK_OBJECT_ARRAY);
    assert_int_equal(s_get(o, "bpf_progs")->via.array.size, 0);
    const msgpack_object *st = s_get(o, "bpf_stats");
    bool measured = true;
    assert_int_equal(kt_mp_get_bool(st, "measured", &measured), 0);
    assert_false(measured);
    char buf[200];
    assert_int_equal(kt_mp_get_str(st, "error", buf, sizeof(buf)), 0);
    assert_string_equal(buf, "not measured: the workload phase did not end");
    msgpack_unpacked_destroy(&up);
    msgpack_sbuffer_destroy(&sb);

    s_scx_simple(b);
    kt_guest_bpf_delta(b);
    b->measured = true;
    r->bpf = b;
    s_unpack(r, &sb, &up);
    o = &up.data;
    const msgpack_object *progs = s_get(o, "bpf_progs");
    assert_int_equal(progs->via.array.size, 4);
    static const char *const keys[] = {"name",    "type",        "verified_insns",
                                       "run_cnt", "run_time_ns", "ns_per_call"};
    bool saw = false;
    for (uint32_t i = 0; i < progs->via.array.size; i++) {
        const msgpack_object *p = &progs->via.array.ptr[i];
        assert_int_equal(p->via.map.size, 6);
        for (size_t k = 0; k < 6; k++)
            s_get(p, keys[k]);
        assert_int_equal(kt_mp_get_str(p, "name", buf, sizeof(buf)), 0);
        if (strcmp(buf, "simple_enqueue") != 0)
            continue;
        saw = true;
        uint64_t v;
        double d;
        assert_int_equal(kt_mp_get_u64(p, "run_cnt", &v), 0);
        assert_int_equal(v, 1000);
        assert_int_equal(kt_mp_get_u64(p, "run_time_ns", &v), 0);
        assert_int_equal(v, 2500000);
        assert_int_equal(kt_mp_get_u64(p, "verified_insns", &v), 0);
        assert_int_equal(v, 106);
        assert_int_equal(kt_mp_get_double(p, "ns_per_call", &d), 0);
        assert_true(d == 2500.0);
        assert_int_equal(kt_mp_get_str(p, "type", buf, sizeof(buf)), 0);
        assert_string_equal(buf, "struct_ops");
    }
    assert_true(saw);
    st = s_get(o, "bpf_stats");
    assert_int_equal(st->via.map.size, 11);
    assert_int_equal(kt_mp_get_bool(st, "measured", &measured), 0);
    assert_true(measured);
    assert_int_equal(kt_mp_get_str(st, "stats_by", buf, sizeof(buf)), 0);
    assert_string_equal(buf, "bpf_enable_stats");
    uint64_t v;
    double d;
    assert_int_equal(kt_mp_get_u64(st, "struct_ops_progs", &v), 0);
    assert_int_equal(v, 3);
    assert_int_equal(kt_mp_get_u64(st, "struct_ops_calls", &v), 0);
    assert_int_equal(v, 5000);
    assert_int_equal(kt_mp_get_u64(st, "struct_ops_run_time_ns", &v), 0);
    assert_int_equal(v, 6500000);
    assert_int_equal(kt_mp_get_double(st, "ns_per_call", &d), 0);
    assert_true(d == 1300.0);
    assert_int_equal(kt_mp_get_u64(st, "unloaded", &v), 0);
    assert_int_equal(v, 1);
    assert_int_equal(kt_mp_get_double(st, "interval_ms", &d), 0);
    assert_true(d == 3000.0);
    msgpack_unpacked_destroy(&up);
    msgpack_sbuffer_destroy(&sb);
    free(r);
    free(b);
}

/* The real snapshot, read-only, on this host: where the host lets us list
 * BPF programs (root, not in a container that forbids bpf()), every entry
 * has a name that fits, a known type name, and ids in increasing order. */
static void test_snapshot_host(void **state)
{
    (void)state;
    kt_guest_bpf_snap_t *s = malloc(sizeof(*s));
    assert_non_null(s);
    char why[160] = "";
    int r = kt_guest_bpf_snapshot(s, why, sizeof(why));
    if (r == -EPERM || r == -ENOSYS || r == -EACCES) {
        print_message("# bpf() not allowed here (%s): the snapshot is tested in the VM\n", why);
        free(s);
        skip();
    }
    if (r < 0)
        fail_msg("snapshot: %s", why);
    assert_true(s->at_ns > 0);
    for (unsigned i = 0; i < s->n; i++) {
        assert_true(strlen(s->progs[i].name) < KT_BPF_NAME_MAX);
        assert_true(s->progs[i].type[0] != '\0');
        if (i > 0)
            assert_true(s->progs[i].id > s->progs[i - 1].id);
    }
    print_message("# %u BPF programs loaded on this host\n", s->n);
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_delta),
        cmocka_unit_test(test_delta_edges),
        cmocka_unit_test(test_pack),
        cmocka_unit_test(test_snapshot_host),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
