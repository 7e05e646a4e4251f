/* The fleet's message table: every message type round-trips with every field
 * set (also at its limits: 1024 artifacts, 256 running cells, a 256 KiB
 * CHUNK, a 2 MiB sidecar, strings filled to their buffers), and the strict
 * decoders refuse every truncation, every missing field, every field of a
 * wrong msgpack type, oversized strings, arrays and blobs, shas that are not
 * hex, values out of range, inconsistent fields, unknown type names and
 * containers announcing 2^32 entries (without a huge allocation).
 *
 * Malformed bodies are made from valid ones: a sample is decoded into a
 * msgpack object tree and packed again with one field removed or replaced,
 * so every field the encoder writes is covered by walking the tree rather
 * than by a hand-kept list. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "kt_chanmsg.h"
#include "kt_msg.h"

/* ---- the largest single allocation, to catch msgpack-c allocating for
 * announced sizes (under ASan such an allocation aborts the test anyway) ---- */
#ifndef __SANITIZE_ADDRESS__
void *__libc_malloc(size_t n);
void *__libc_calloc(size_t n, size_t size);
void *__libc_realloc(void *p, size_t n);

static size_t s_biggest_alloc;

void *malloc(size_t n)
{
    if (n > s_biggest_alloc)
        s_biggest_alloc = n;
    return __libc_malloc(n);
}

void *calloc(size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size)
        s_biggest_alloc = SIZE_MAX;
    else if (n * size > s_biggest_alloc)
        s_biggest_alloc = n * size;
    return __libc_calloc(n, size);
}

void *realloc(void *p, size_t n)
{
    if (n > s_biggest_alloc)
        s_biggest_alloc = n;
    return __libc_realloc(p, n);
}
#define S_TRACKS_ALLOC 1
#else
static size_t s_biggest_alloc;
#define S_TRACKS_ALLOC 0
#endif

#define S_SHA_A "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define S_SHA_B "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
#define S_SHA_C "00000000000000000000000000000000000000000000000000000000000000ff"

static void s_fill(char *buf, size_t size, char ch)
{
    memset(buf, ch, size - 1);
    buf[size - 1] = '\0';
}

static void s_hex(char *buf, unsigned i)
{
    snprintf(buf, KT_SHA_HEX, "%064x", i + 1);
}

/* A resolved plan; at its limits when big. */
static void s_plan(kt_plan_t *p, bool big)
{
    memset(p, 0, sizeof(*p));
    kt_topology_t t;
    if (!big) {
        assert_int_equal(kt_topology_parse("numa2-4llc", &t), 0);
        char why[256] = "";
        kt_scenario_t s;
        kt_scenario_init(&s, "sample");
        kt_cgroup_spec_t a = {.name = "a",
                              .cpuset = {.kind = KT_CPUSET_PER_LLC},
                              .workers = 2,
                              .work = KT_WORK_PIPE_PINGPONG,
                              .policy = KT_POLICY_BATCH,
                              .nice = -7};
        kt_cgroup_spec_t b = {.name = "b", .workers = 3, .work = KT_WORK_IO_SYNC};
        s.cgroups[s.n_cgroups++] = a;
        s.cgroups[s.n_cgroups++] = b;
        s.faults[s.n_faults++] = (kt_fault_t){"b", 2, 1500};
        s.thresholds.max_spread_pct = 12.5;
        s.thresholds.min_work_rate = 3.25;
        if (kt_scenario_resolve(&s, &t, 3000, p, why, sizeof(why)) < 0)
            fail_msg("%s", why);
        return;
    }
    t = (kt_topology_t){1, 1, 8, 1};
    snprintf(p->scenario, sizeof(p->scenario), "%s", "steady");
    p->topology = t;
    p->duration_ms = 24 * 3600 * 1000;
    p->n_cgroups = KT_MAX_CGROUPS;
    for (unsigned i = 0; i < KT_MAX_CGROUPS; i++) {
        kt_plan_cgroup_t *c = &p->cgroups[i];
        snprintf(c->name, sizeof(c->name), "%063u", i);
        kt_topology_all_mask(&t, &c->cpus);
        c->has_cpuset = true;
        c->workers = KT_MAX_WORKERS / KT_MAX_CGROUPS;
        c->nice = -20;
    }
    kt_thresholds_default(&p->thresholds);
    p->n_faults = KT_MAX_FAULTS;
    for (unsigned i = 0; i < KT_MAX_FAULTS; i++)
        p->faults[i] = (kt_plan_fault_t){i, 15, 1000 * i};
}

static void s_spec(kt_cellspec_t *s, bool big)
{
    memset(s, 0, sizeof(*s));
    snprintf(s->cell_id, sizeof(s->cell_id), "%s", S_SHA_A);
    snprintf(s->run_id, sizeof(s->run_id), "20250101-120000-abcd");
    snprintf(s->kernel_label, sizeof(s->kernel_label), "6.12.117");
    snprintf(s->kernel_version, sizeof(s->kernel_version), "6.12.117 #1 SMP");
    snprintf(s->kernel_commit, sizeof(s->kernel_commit), "3f2a9c1-dirty");
    snprintf(s->kernel_sha, sizeof(s->kernel_sha), "%s", S_SHA_B);
    s->kernel_size = 12345678;
    snprintf(s->sched_name, sizeof(s->sched_name), "scx_qmap");
    snprintf(s->sched_sha, sizeof(s->sched_sha), "%s", S_SHA_C);
    s->sched_size = 654321;
    snprintf(s->sched_args, sizeof(s->sched_args), "-s 5000 -b 8");
    snprintf(s->profile, sizeof(s->profile), "slice-short+batch");
    snprintf(s->topology_preset, sizeof(s->topology_preset), "numa2-4llc");
    s->memory_mib = 1024;
    snprintf(s->cell_name, sizeof(s->cell_name),
             "gauntlet/steady/numa2-4llc/slice-short+batch/6.12.117");
    s_plan(&s->plan, big);
    if (big) {
        /* Every string filled to its buffer. */
        memset(s->cell_name, 'n', sizeof(s->cell_name) - 1);
        for (size_t i = 8; i < sizeof(s->cell_name) - 1; i += 9)
            s->cell_name[i] = '/';
        s_fill(s->run_id, sizeof(s->run_id), 'r');
        s_fill(s->kernel_label, sizeof(s->kernel_label), 'l');
        s_fill(s->kernel_version, sizeof(s->kernel_version), 'v');
        s_fill(s->kernel_commit, sizeof(s->kernel_commit), 'c');
        s->kernel_size = KT_ARTIFACT_MAX_BYTES;
        s_fill(s->sched_name, sizeof(s->sched_name), 's');
        s->sched_size = KT_ARTIFACT_MAX_BYTES;
        s_fill(s->sched_args, sizeof(s->sched_args), 'a');
        s_fill(s->profile, sizeof(s->profile), 'p');
        s_fill(s->topology_preset, sizeof(s->topology_preset), 't');
        s->memory_mib = 1u << 24;
    }
}

/* The bytes CHUNK samples point to (the msg does not own them). */
static uint8_t *s_chunk_data;

/* Every field set to something other than its zero value. */
static void s_sample(enum kt_msg_type type, bool big, kt_msg_t *m)
{
    kt_msg_init(m, type);
    switch (type) {
    case KT_MSG_OPEN:
        m->u.open.version = big ? 65535 : KT_PROTO_VERSION;
        snprintf(m->u.open.coordinator_id, KT_ID_MAX, "coord@build-host:1234");
        if (big)
            s_fill(m->u.open.coordinator_id, KT_ID_MAX, 'k');
        m->u.open.session = big ? UINT64_MAX : 0x1234567890abcdefull;
        break;
    case KT_MSG_HELLO: {
        __typeof__(m->u.hello) *h = &m->u.hello;
        h->version = KT_PROTO_VERSION;
        snprintf(h->worker_id, sizeof(h->worker_id), "worker-3.lab");
        h->instance = 0xfeedfacecafebeefull;
        snprintf(h->arch, sizeof(h->arch), "x86_64");
        h->host_cpus = 64;
        h->host_llcs = 8;
        h->memory_mib = 262144;
        snprintf(h->accel, sizeof(h->accel), big ? "kvm" : "tcg");
        h->canary_ms = 1850;
        h->max_vcpus = 32;
        h->free_vcpus = 48;
        h->free_memory_mib = 200000;
        h->pending_results = 3;
        h->draining = true;
        h->n_artifacts = big ? KT_MSG_MAX_ARTIFACTS : 3;
        h->artifacts = calloc(h->n_artifacts, sizeof(*h->artifacts));
        assert_non_null(h->artifacts);
        for (unsigned i = 0; i < h->n_artifacts; i++)
            s_hex(h->artifacts[i].sha, i);
        if (big) {
            s_fill(h->worker_id, sizeof(h->worker_id), 'w');
            s_fill(h->arch, sizeof(h->arch), 'x');
        }
        break;
    }
    case KT_MSG_WELCOME:
        m->u.welcome.session = 77;
        m->u.welcome.heartbeat_ms = big ? 60000 : 1000;
        m->u.welcome.lost_after_ms = big ? 600000 : 5000;
        break;
    case KT_MSG_REFUSE:
        m->u.refuse.code = big ? 599 : KT_CODE_VERSION;
        snprintf(m->u.refuse.reason, sizeof(m->u.refuse.reason), "protocol version 2 only");
        if (big)
            s_fill(m->u.refuse.reason, sizeof(m->u.refuse.reason), 'e');
        break;
    case KT_MSG_HEARTBEAT:
        m->u.heartbeat.seq = big ? UINT64_MAX : 42;
        m->u.heartbeat.free_vcpus = 12;
        m->u.heartbeat.free_memory_mib = 4096;
        m->u.heartbeat.n_running = big ? KT_MSG_MAX_RUNNING : 2;
        for (unsigned i = 0; i < m->u.heartbeat.n_running; i++) {
            s_hex(m->u.heartbeat.running[i].cell_id, 1000 + i);
            m->u.heartbeat.running[i].attempt = 1 + i % 3;
        }
        break;
    case KT_MSG_ASSIGN:
        m->u.assign.attempt = big ? KT_MSG_MAX_ATTEMPT : 2;
        m->u.assign.lease_ms = big ? KT_MSG_MAX_LEASE_MS : 90000;
        s_spec(&m->u.assign.spec, big);
        break;
    case KT_MSG_ACCEPT:
        snprintf(m->u.accept.cell_id, KT_SHA_HEX, "%s", S_SHA_A);
        m->u.accept.attempt = 3;
        m->u.accept.ok = big;
        snprintf(m->u.accept.reason, sizeof(m->u.accept.reason), "needs 16 vCPUs, 8 free");
        if (big)
            s_fill(m->u.accept.reason, sizeof(m->u.accept.reason), 'r');
        break;
    case KT_MSG_FETCH:
        snprintf(m->u.fetch.sha, KT_SHA_HEX, "%s", S_SHA_B);
        m->u.fetch.offset = big ? KT_ARTIFACT_MAX_BYTES : 262144;
        m->u.fetch.credit = big ? KT_FETCH_MAX_CREDIT : 4;
        break;
    case KT_MSG_CHUNK:
        snprintf(m->u.chunk.sha, KT_SHA_HEX, "%s", S_SHA_B);
        if (!s_chunk_data) {
            s_chunk_data = malloc(KT_CHUNK_MAX);
            assert_non_null(s_chunk_data);
            for (unsigned i = 0; i < KT_CHUNK_MAX; i++)
                s_chunk_data[i] = (uint8_t)(i * 7 + (i >> 8));
        }
        m->u.chunk.data = s_chunk_data;
        m->u.chunk.len = big ? KT_CHUNK_MAX : 100;
        m->u.chunk.offset = big ? 3 * KT_CHUNK_MAX : 1000;
        m->u.chunk.total = big ? 4 * KT_CHUNK_MAX : 5000;
        m->u.chunk.last = big;
        break;
    case KT_MSG_PROGRESS:
        snprintf(m->u.progress.cell_id, KT_SHA_HEX, "%s", S_SHA_C);
        m->u.progress.attempt = 1;
        snprintf(m->u.progress.phase, sizeof(m->u.progress.phase),
                 big ? "collecting_logs" : "booting");
        break;
    case KT_MSG_RESULT: {
        __typeof__(m->u.result) *r = &m->u.result;
        snprintf(r->cell_id, KT_SHA_HEX, "%s", S_SHA_A);
        r->attempt = 2;
        snprintf(r->verdict, sizeof(r->verdict), big ? "error" : "fail");
        snprintf(r->reason, sizeof(r->reason), "check fairness: spread 31%% over 15%%");
        if (big)
            s_fill(r->reason, sizeof(r->reason), 'q');
        /* The msg owns these: kt_msg_clear frees them. */
        size_t sl = big ? KT_MSG_MAX_SIDECAR : 40, cl = big ? KT_MSG_MAX_CONSOLE : 9;
        r->sidecar = malloc(sl + 1);
        r->console = malloc(cl + 1);
        assert_non_null(r->sidecar);
        assert_non_null(r->console);
        for (size_t i = 0; i < sl; i++)
            r->sidecar[i] = (char)('a' + i % 26);
        memcpy(r->sidecar, "{\"verdict\":\"fail\"}", 18);
        r->sidecar[sl] = '\0';
        for (size_t i = 0; i < cl; i++)
            r->console[i] = (char)(i % 251); /* NUL and high bytes included */
        r->console[cl] = '\0';
        r->sidecar_len = sl;
        r->console_len = cl;
        break;
    }
    case KT_MSG_RESULT_ACK:
    case KT_MSG_CANCEL:
        snprintf(m->u.ack.cell_id, KT_SHA_HEX, "%s", S_SHA_B);
        m->u.ack.attempt = big ? KT_MSG_MAX_ATTEMPT : 2;
        break;
    case KT_MSG_DRAIN:
        m->u.drain.running = big ? 1u << 20 : 5;
        break;
    case KT_MSG_ERROR:
        m->u.error.code = big ? 599 : KT_CODE_BAD_MESSAGE;
        snprintf(m->u.error.text, sizeof(m->u.error.text), "ASSIGN: field 'spec.cell_id': missing");
        if (big)
            s_fill(m->u.error.text, sizeof(m->u.error.text), 'x');
        break;
    default:
        fail_msg("no sample for type %d", type);
    }
}

static kt_msg_t *s_new(void)
{
    kt_msg_t *m = calloc(1, sizeof(*m));
    assert_non_null(m);
    return m;
}

static void s_encode(const kt_msg_t *m, msgpack_sbuffer *sb)
{
    msgpack_sbuffer_init(sb);
    int r = kt_msg_encode_body(m, sb);
    if (r < 0)
        fail_msg("encoding %s: %d", kt_msg_type_name(m->type), r);
}

static int s_decode(enum kt_msg_type type, const void *body, size_t len, kt_msg_t *m, char *why,
                    size_t wl)
{
    why[0] = '\0';
    int r = kt_msg_decode_body(type, body, len, m, why, wl);
    if (r < 0 && why[0] == '\0')
        fail_msg("%s: refused (%d) without a reason", kt_msg_type_name(type), r);
    return r;
}

/* Same bytes when encoded: every field the encoder writes came back. */
static void s_assert_same_encoding(const kt_msg_t *a, const kt_msg_t *b)
{
    msgpack_sbuffer x, y;
    s_encode(a, &x);
    s_encode(b, &y);
    assert_int_equal(x.size, y.size);
    assert_memory_equal(x.data, y.data, x.size);
    msgpack_sbuffer_destroy(&x);
    msgpack_sbuffer_destroy(&y);
}

/* Field by field: the encoding comparison alone would miss an encoder that
 * writes one field's value under another's key. */
#define EQ_STR(f) assert_string_equal(a->f, b->f)
#define EQ_INT(f) assert_true(a->f == b->f)

static void s_assert_spec_equal(const kt_cellspec_t *a, const kt_cellspec_t *b)
{
    EQ_STR(cell_id);
    EQ_STR(cell_name);
    EQ_STR(run_id);
    EQ_STR(kernel_label);
    EQ_STR(kernel_version);
    EQ_STR(kernel_commit);
    EQ_STR(kernel_sha);
    EQ_INT(kernel_size);
    EQ_STR(sched_name);
    EQ_STR(sched_sha);
    EQ_INT(sched_size);
    EQ_STR(sched_args);
    EQ_STR(profile);
    EQ_STR(topology_preset);
    EQ_INT(memory_mib);
    /* The plan's own codec is tested field by field in test_chanmsg. */
    EQ_STR(plan.scenario);
    assert_true(kt_topology_equal(&a->plan.topology, &b->plan.topology));
    EQ_INT(plan.duration_ms);
    EQ_INT(plan.n_cgroups);
    EQ_INT(plan.n_faults);
    for (unsigned i = 0; i < a->plan.n_cgroups; i++) {
        EQ_STR(plan.cgroups[i].name);
        assert_memory_equal(&a->plan.cgroups[i].cpus, &b->plan.cgroups[i].cpus,
                            sizeof(kt_cpumask_t));
        EQ_INT(plan.cgroups[i].workers);
        EQ_INT(plan.cgroups[i].nice);
    }
}

static void s_assert_msg_equal(const kt_msg_t *x, const kt_msg_t *y)
{
    assert_int_equal(x->type, y->type);
    switch (x->type) {
    case KT_MSG_OPEN: {
        const __typeof__(x->u.open) *a = &x->u.open, *b = &y->u.open;
        EQ_INT(version);
        EQ_STR(coordinator_id);
        EQ_INT(session);
        break;
    }
    case KT_MSG_HELLO: {
        const __typeof__(x->u.hello) *a = &x->u.hello, *b = &y->u.hello;
        EQ_INT(version);
        EQ_STR(worker_id);
        EQ_INT(instance);
        EQ_STR(arch);
        EQ_INT(host_cpus);
        EQ_INT(host_llcs);
        EQ_INT(memory_mib);
        EQ_STR(accel);
        EQ_INT(canary_ms);
        EQ_INT(max_vcpus);
        EQ_INT(free_vcpus);
        EQ_INT(free_memory_mib);
        EQ_INT(pending_results);
        EQ_INT(draining);
        EQ_INT(n_artifacts);
        for (uint32_t i = 0; i < a->n_artifacts; i++)
            EQ_STR(artifacts[i].sha);
        break;
    }
    case KT_MSG_WELCOME: {
        const __typeof__(x->u.welcome) *a = &x->u.welcome, *b = &y->u.welcome;
        EQ_INT(session);
        EQ_INT(heartbeat_ms);
        EQ_INT(lost_after_ms);
        break;
    }
    case KT_MSG_REFUSE: {
        const __typeof__(x->u.refuse) *a = &x->u.refuse, *b = &y->u.refuse;
        EQ_INT(code);
        EQ_STR(reason);
        break;
    }
    case KT_MSG_HEARTBEAT: {
        const __typeof__(x->u.heartbeat) *a = &x->u.heartbeat, *b = &y->u.heartbeat;
        EQ_INT(seq);
        EQ_INT(free_vcpus);
        EQ_INT(free_memory_mib);
        EQ_INT(n_running);
        for (uint32_t i = 0; i < a->n_running; i++) {
            EQ_STR(running[i].cell_id);
            EQ_INT(running[i].attempt);
        }
        break;
    }
    case KT_MSG_ASSIGN: {
        const __typeof__(x->u.assign) *a = &x->u.assign, *b = &y->u.assign;
        EQ_INT(attempt);
        EQ_INT(lease_ms);
        s_assert_spec_equal(&a->spec, &b->spec);
        break;
    }
    case KT_MSG_ACCEPT: {
        const __typeof__(x->u.accept) *a = &x->u.accept, *b = &y->u.accept;
        EQ_STR(cell_id);
        EQ_INT(attempt);
        EQ_INT(ok);
        EQ_STR(reason);
        break;
    }
    case KT_MSG_FETCH: {
        const __typeof__(x->u.fetch) *a = &x->u.fetch, *b = &y->u.fetch;
        EQ_STR(sha);
        EQ_INT(offset);
        EQ_INT(credit);
        break;
    }
    case KT_MSG_CHUNK: {
        const __typeof__(x->u.chunk) *a = &x->u.chunk, *b = &y->u.chunk;
        EQ_STR(sha);
        EQ_INT(offset);
        EQ_INT(total);
        EQ_INT(len);
        EQ_INT(last);
        assert_memory_equal(a->data, b->data, a->len);
        break;
    }
    case KT_MSG_PROGRESS: {
        const __typeof__(x->u.progress) *a = &x->u.progress, *b = &y->u.progress;
        EQ_STR(cell_id);
        EQ_INT(attempt);
        EQ_STR(phase);
        break;
    }
    case KT_MSG_RESULT: {
        const __typeof__(x->u.result) *a = &x->u.result, *b = &y->u.result;
        EQ_STR(cell_id);
        EQ_INT(attempt);
        EQ_STR(verdict);
        EQ_STR(reason);
        EQ_INT(sidecar_len);
        assert_memory_equal(a->sidecar, b->sidecar, a->sidecar_len);
        EQ_INT(console_len);
        assert_memory_equal(a->console, b->console, a->console_len);
        break;
    }
    case KT_MSG_RESULT_ACK:
    case KT_MSG_CANCEL: {
        const __typeof__(x->u.ack) *a = &x->u.ack, *b = &y->u.ack;
        EQ_STR(cell_id);
        EQ_INT(attempt);
        break;
    }
    case KT_MSG_DRAIN: {
        const __typeof__(x->u.drain) *a = &x->u.drain, *b = &y->u.drain;
        EQ_INT(running);
        break;
    }
    case KT_MSG_ERROR: {
        const __typeof__(x->u.error) *a = &x->u.error, *b = &y->u.error;
        EQ_INT(code);
        EQ_STR(text);
        break;
    }
    default:
        fail_msg("type %d", x->type);
    }
}

/* Top-level and spec-level scalars; plan fields have their own test. */
static bool s_nondefault(const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_BOOLEAN:
        return o->via.boolean;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        return o->via.u64 != 0;
    case MSGPACK_OBJECT_STR:
        return o->via.str.size != 0;
    case MSGPACK_OBJECT_BIN:
        return o->via.bin.size != 0;
    case MSGPACK_OBJECT_ARRAY:
        return o->via.array.size != 0;
    case MSGPACK_OBJECT_MAP:
        return o->via.map.size != 0;
    default:
        return true;
    }
}

static void s_check_fields_set(const msgpack_object *small, const msgpack_object *big,
                               const char *what)
{
    assert_int_equal(small->type, MSGPACK_OBJECT_MAP);
    assert_int_equal(small->via.map.size, big->via.map.size);
    for (uint32_t i = 0; i < small->via.map.size; i++) {
        const msgpack_object_kv *kv = &small->via.map.ptr[i];
        char key[64];
        snprintf(key, sizeof(key), "%.*s", (int)kv->key.via.str.size, kv->key.via.str.ptr);
        const msgpack_object *bv = kt_mp_get(big, key);
        assert_non_null(bv);
        if (!s_nondefault(&kv->val) && !s_nondefault(bv))
            fail_msg("%s: field '%s' has its zero value in both samples", what, key);
        if (strcmp(key, "spec") == 0)
            s_check_fields_set(&kv->val, bv, "ASSIGN.spec");
    }
}

static void test_type_names(void **state)
{
    (void)state;
    for (int t = 1; t < KT_MSG__COUNT; t++) {
        const char *n = kt_msg_type_name((enum kt_msg_type)t);
        assert_non_null(n);
        enum kt_msg_type back = 0;
        assert_int_equal(kt_msg_type_parse(n, strlen(n), &back), 0);
        assert_int_equal(back, t);
        /* Not a prefix, not a longer name, not another case. */
        assert_int_equal(kt_msg_type_parse(n, strlen(n) - 1, &back), -EBADMSG);
        char longer[32], lower[32];
        snprintf(longer, sizeof(longer), "%sX", n);
        assert_int_equal(kt_msg_type_parse(longer, strlen(longer), &back), -EBADMSG);
        snprintf(lower, sizeof(lower), "%s", n);
        for (char *p = lower; *p; p++)
            if (*p >= 'A' && *p <= 'Z')
                *p = (char)(*p - 'A' + 'a');
        assert_int_equal(kt_msg_type_parse(lower, strlen(lower), &back), -EBADMSG);
    }
    assert_string_equal(kt_msg_type_name(KT_MSG_RESULT_ACK), "RESULT_ACK");
    assert_null(kt_msg_type_name(0));
    assert_null(kt_msg_type_name(KT_MSG__COUNT));
    assert_null(kt_msg_type_name((enum kt_msg_type) - 1));
    enum kt_msg_type t;
    assert_int_equal(kt_msg_type_parse("", 0, &t), -EBADMSG);
    assert_int_equal(kt_msg_type_parse("HELLO\0", 6, &t), -EBADMSG);
    assert_int_equal(kt_msg_type_parse(NULL, 0, &t), -EBADMSG);

    assert_true(kt_msg_signature_ok("KTSTR1", 6));
    assert_false(kt_msg_signature_ok("KTSTR1", 5));
    assert_false(kt_msg_signature_ok("KTSTR1\0", 7));
    assert_false(kt_msg_signature_ok("KTSTR2", 6));
    assert_false(kt_msg_signature_ok("ktstr1", 6));
    assert_false(kt_msg_signature_ok("", 0));
    assert_false(kt_msg_signature_ok(NULL, 0));

    assert_true(kt_msg_sha_valid(S_SHA_A));
    assert_false(kt_msg_sha_valid(""));
    assert_false(kt_msg_sha_valid(NULL));
    char sha[80];
    snprintf(sha, sizeof(sha), "%s", S_SHA_A);
    sha[10] = 'A';
    assert_false(kt_msg_sha_valid(sha));
    snprintf(sha, sizeof(sha), "%s0", S_SHA_A);
    assert_false(kt_msg_sha_valid(sha));
    sha[63] = '\0';
    assert_false(kt_msg_sha_valid(sha));

    assert_string_equal(kt_msg_code_name(KT_CODE_VERSION), "protocol version not supported");
    assert_string_equal(kt_msg_code_name(418), "unknown");
}

static void test_round_trip_every_type(void **state)
{
    (void)state;
    kt_msg_t *m = s_new(), *back = s_new();
    char why[512];
    for (int t = 1; t < KT_MSG__COUNT; t++) {
        for (int big = 0; big <= 1; big++) {
            s_sample((enum kt_msg_type)t, big, m);
            msgpack_sbuffer sb;
            s_encode(m, &sb);
            assert_true(sb.size <= KT_MSG_MAX_BYTES);
            memset(back, 0x5a, sizeof(*back));
            int r = s_decode((enum kt_msg_type)t, sb.data, sb.size, back, why, sizeof(why));
            if (r < 0)
                fail_msg("%s (%s): %s", kt_msg_type_name((enum kt_msg_type)t),
                         big ? "big" : "small", why);
            assert_int_equal(back->type, t);
            s_assert_msg_equal(m, back);
            s_assert_same_encoding(m, back);
            /* A decoded message holds nothing of the encoder's buffer. */
            memset(sb.data, 0xee, sb.size);
            s_assert_same_encoding(m, back);
            msgpack_sbuffer_destroy(&sb);
            kt_msg_clear(back);
            kt_msg_clear(m);
        }
    }
    free(m);
    free(back);
}

static void test_fields_carried(void **state)
{
    (void)state;
    kt_msg_t *m = s_new(), *back = s_new();
    char why[512];
    msgpack_sbuffer sb;

    /* Every top-level and spec field is set in one of the samples, so the
     * round trip above compares real values, not zeros. */
    for (int t = 1; t < KT_MSG__COUNT; t++) {
        msgpack_sbuffer sa, sbig;
        s_sample((enum kt_msg_type)t, false, m);
        s_encode(m, &sa);
        kt_msg_clear(m);
        s_sample((enum kt_msg_type)t, true, m);
        s_encode(m, &sbig);
        kt_msg_clear(m);
        msgpack_unpacked ua, ub;
        msgpack_unpacked_init(&ua);
        msgpack_unpacked_init(&ub);
        assert_int_equal(kt_mp_unpack_one(sa.data, sa.size, &ua), 0);
        assert_int_equal(kt_mp_unpack_one(sbig.data, sbig.size, &ub), 0);
        s_check_fields_set(&ua.data, &ub.data, kt_msg_type_name((enum kt_msg_type)t));
        msgpack_unpacked_destroy(&ua);
        msgpack_unpacked_destroy(&ub);
        msgpack_sbuffer_destroy(&sa);
        msgpack_sbuffer_destroy(&sbig);
    }

    /* Spot checks on the decoded structs. */
    s_sample(KT_MSG_HELLO, true, m);
    s_encode(m, &sb);
    assert_int_equal(s_decode(KT_MSG_HELLO, sb.data, sb.size, back, why, sizeof(why)), 0);
    assert_int_equal(back->u.hello.n_artifacts, KT_MSG_MAX_ARTIFACTS);
    assert_string_equal(back->u.hello.artifacts[1023].sha, m->u.hello.artifacts[1023].sha);
    assert_string_equal(back->u.hello.accel, "kvm");
    assert_int_equal(strlen(back->u.hello.worker_id), KT_ID_MAX - 1);
    assert_true(back->u.hello.draining);
    assert_int_equal(back->u.hello.instance, 0xfeedfacecafebeefull);
    msgpack_sbuffer_destroy(&sb);
    kt_msg_clear(back);
    assert_null(back->u.hello.artifacts);
    assert_int_equal(back->u.hello.n_artifacts, 0);
    kt_msg_clear(m);

    /* A CHUNK's data points into the message's own copy of the body. */
    s_sample(KT_MSG_CHUNK, true, m);
    s_encode(m, &sb);
    assert_int_equal(s_decode(KT_MSG_CHUNK, sb.data, sb.size, back, why, sizeof(why)), 0);
    assert_int_equal(back->u.chunk.len, KT_CHUNK_MAX);
    assert_non_null(back->_body);
    assert_true((const char *)back->u.chunk.data > (const char *)back->_body &&
                (const char *)back->u.chunk.data + back->u.chunk.len <=
                    (const char *)back->_body + sb.size);
    memset(sb.data, 0, sb.size);
    assert_memory_equal(back->u.chunk.data, s_chunk_data, KT_CHUNK_MAX);
    assert_true(back->u.chunk.last);
    assert_int_equal(back->u.chunk.offset, 3 * KT_CHUNK_MAX);
    msgpack_sbuffer_destroy(&sb);
    kt_msg_clear(back);
    assert_null(back->_body);
    assert_null(back->u.chunk.data);
    kt_msg_clear(m);

    /* RESULT: a 2 MiB sidecar, a console with NUL and high bytes; both
     * NUL-terminated copies. */
    s_sample(KT_MSG_RESULT, true, m);
    s_encode(m, &sb);
    assert_int_equal(s_decode(KT_MSG_RESULT, sb.data, sb.size, back, why, sizeof(why)), 0);
    assert_int_equal(back->u.result.sidecar_len, KT_MSG_MAX_SIDECAR);
    assert_memory_equal(back->u.result.sidecar, m->u.result.sidecar, KT_MSG_MAX_SIDECAR + 1);
    assert_int_equal(back->u.result.console_len, KT_MSG_MAX_CONSOLE);
    assert_memory_equal(back->u.result.console, m->u.result.console, KT_MSG_MAX_CONSOLE);
    assert_int_equal(back->u.result.console[KT_MSG_MAX_CONSOLE], '\0');
    assert_string_equal(back->u.result.verdict, "error");
    msgpack_sbuffer_destroy(&sb);
    kt_msg_clear(back);
    assert_null(back->u.result.sidecar);
    assert_null(back->u.result.console);
    kt_msg_clear(m);

    /* A null executor's RESULT: empty console reads back as NULL, an empty
     * sidecar as "". */
    kt_msg_init(m, KT_MSG_RESULT);
    snprintf(m->u.result.cell_id, KT_SHA_HEX, "%s", S_SHA_A);
    m->u.result.attempt = 1;
    snprintf(m->u.result.verdict, sizeof(m->u.result.verdict), "pass");
    s_encode(m, &sb);
    assert_int_equal(s_decode(KT_MSG_RESULT, sb.data, sb.size, back, why, sizeof(why)), 0);
    assert_null(back->u.result.console);
    assert_int_equal(back->u.result.console_len, 0);
    assert_non_null(back->u.result.sidecar);
    assert_string_equal(back->u.result.sidecar, "");
    assert_string_equal(back->u.result.reason, "");
    msgpack_sbuffer_destroy(&sb);
    kt_msg_clear(back);

    /* ASSIGN carries the plan whole, and the vCPUs follow its topology. */
    s_sample(KT_MSG_ASSIGN, false, m);
    s_encode(m, &sb);
    assert_int_equal(s_decode(KT_MSG_ASSIGN, sb.data, sb.size, back, why, sizeof(why)), 0);
    const kt_plan_t *p = &m->u.assign.spec.plan, *q = &back->u.assign.spec.plan;
    assert_true(kt_topology_equal(&p->topology, &q->topology));
    assert_int_equal(p->n_cgroups, q->n_cgroups);
    assert_int_equal(q->n_cgroups, 5); /* per-LLC a_0..a_3, then b */
    assert_memory_equal(&p->cgroups[2].cpus, &q->cgroups[2].cpus, sizeof(kt_cpumask_t));
    assert_int_equal(q->cgroups[0].nice, -7);
    assert_int_equal(q->faults[0].at_ms, 1500);
    assert_true(q->thresholds.max_spread_pct == 12.5);
    assert_int_equal(kt_cellspec_vcpus(&back->u.assign.spec), 16);
    assert_string_equal(back->u.assign.spec.kernel_commit, "3f2a9c1-dirty");
    assert_string_equal(back->u.assign.spec.sched_args, "-s 5000 -b 8");
    msgpack_sbuffer_destroy(&sb);
    kt_msg_clear(back);
    kt_msg_clear(m);

    /* The cellspec alone (the store and the journal keep it). */
    kt_cellspec_t *spec = calloc(1, sizeof(*spec)), *sback = calloc(1, sizeof(*sback));
    assert_non_null(spec);
    assert_non_null(sback);
    s_spec(spec, true);
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    kt_cellspec_pack(&pk, spec);
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    assert_int_equal(kt_mp_unpack_one(sb.data, sb.size, &up), 0);
    why[0] = '\0';
    if (kt_cellspec_decode(&up.data, sback, why, sizeof(why)) < 0)
        fail_msg("%s", why);
    assert_string_equal(sback->cell_name, spec->cell_name);
    assert_string_equal(sback->sched_args, spec->sched_args);
    assert_int_equal(sback->kernel_size, KT_ARTIFACT_MAX_BYTES);
    assert_int_equal(sback->plan.n_cgroups, KT_MAX_CGROUPS);
    assert_int_equal(kt_cellspec_vcpus(sback), 8);
    assert_int_equal(kt_cellspec_decode(&up.data.via.map.ptr[0].val, sback, why, sizeof(why)),
                     -EBADMSG);
    assert_non_null(strstr(why, "not a map"));
    msgpack_unpacked_destroy(&up);
    msgpack_sbuffer_destroy(&sb);
    free(spec);
    free(sback);
    free(m);
    free(back);
}

static void test_unknown_keys_ignored(void **state)
{
    (void)state;
    kt_msg_t *m = s_new(), *back = s_new();
    char why[512];
    for (int t = 1; t < KT_MSG__COUNT; t++) {
        s_sample((enum kt_msg_type)t, false, m);
        msgpack_sbuffer sb;
        s_encode(m, &sb);
        msgpack_unpacked up;
        msgpack_unpacked_init(&up);
        assert_int_equal(kt_mp_unpack_one(sb.data, sb.size, &up), 0);
        /* The same map with a newer peer's fields first and last. */
        msgpack_sbuffer sb2;
        msgpack_sbuffer_init(&sb2);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb2, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, up.data.via.map.size + 2);
        kt_mp_pack_kv_str(&pk, "zz_future", "x");
        for (uint32_t i = 0; i < up.data.via.map.size; i++) {
            msgpack_pack_object(&pk, up.data.via.map.ptr[i].key);
            msgpack_pack_object(&pk, up.data.via.map.ptr[i].val);
        }
        kt_mp_pack_str(&pk, "aa_future");
        msgpack_pack_map(&pk, 1);
        kt_mp_pack_kv_u64(&pk, "n", 1);
        int r = s_decode((enum kt_msg_type)t, sb2.data, sb2.size, back, why, sizeof(why));
        if (r < 0)
            fail_msg("%s with unknown keys: %s", kt_msg_type_name((enum kt_msg_type)t), why);
        s_assert_msg_equal(m, back);
        kt_msg_clear(back);
        kt_msg_clear(m);
        msgpack_unpacked_destroy(&up);
        msgpack_sbuffer_destroy(&sb);
        msgpack_sbuffer_destroy(&sb2);
    }
    free(m);
    free(back);
}

static void test_truncated_every_length(void **state)
{
    (void)state;
    kt_msg_t *m = s_new(), *back = s_new();
    char why[512];
    unsigned tried = 0;
    for (int t = 1; t < KT_MSG__COUNT; t++) {
        s_sample((enum kt_msg_type)t, false, m);
        msgpack_sbuffer sb;
        s_encode(m, &sb);
        for (size_t len = 0; len < sb.size; len++) {
            /* A copy of exactly len bytes, so ASan sees any read past it. */
            char *copy = malloc(len ? len : 1);
            assert_non_null(copy);
            memcpy(copy, sb.data, len);
            int r = s_decode((enum kt_msg_type)t, copy, len, back, why, sizeof(why));
            free(copy);
            if (r != -EBADMSG)
                fail_msg("%s truncated to %zu of %zu bytes: got %d",
                         kt_msg_type_name((enum kt_msg_type)t), len, sb.size, r);
            tried++;
        }
        /* And one byte too many. */
        char *longer = malloc(sb.size + 1);
        assert_non_null(longer);
        memcpy(longer, sb.data, sb.size);
        longer[sb.size] = (char)0xc0;
        assert_int_equal(s_decode((enum kt_msg_type)t, longer, sb.size + 1, back, why, sizeof(why)),
                         -EBADMSG);
        assert_non_null(strstr(why, "not one whole msgpack object"));
        free(longer);
        msgpack_sbuffer_destroy(&sb);
        kt_msg_clear(m);
    }
    assert_true(tried > 2500);
    /* Not a map at all. */
    static const uint8_t arr[] = {0x91, 0x01};
    assert_int_equal(s_decode(KT_MSG_DRAIN, arr, sizeof(arr), back, why, sizeof(why)), -EBADMSG);
    assert_string_equal(why, "DRAIN: body is an array, not a map");
    assert_int_equal(s_decode(KT_MSG_DRAIN, NULL, 0, back, why, sizeof(why)), -EBADMSG);
    assert_string_equal(why, "DRAIN: empty body");
    free(m);
    free(back);
}

/* ---- mutations of a valid message ---- */

typedef struct s_msg {
    enum kt_msg_type type;
    msgpack_sbuffer sb;
    msgpack_unpacked up;
} s_msg_t;

static void s_msg_sample(s_msg_t *x, enum kt_msg_type type)
{
    kt_msg_t *m = s_new();
    s_sample(type, false, m);
    x->type = type;
    s_encode(m, &x->sb);
    kt_msg_clear(m);
    free(m);
    msgpack_unpacked_init(&x->up);
    assert_int_equal(kt_mp_unpack_one(x->sb.data, x->sb.size, &x->up), 0);
}

static void s_msg_destroy(s_msg_t *x)
{
    msgpack_unpacked_destroy(&x->up);
    msgpack_sbuffer_destroy(&x->sb);
}

/* A path names a field: "spec.plan.cgroups.1.work"; numbers index arrays. */
#define S_MAX_DEPTH 8

typedef struct s_path {
    char text[128];
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
    kt_msg_t *m = s_new();
    int r = s_decode(x->type, sb.data, sb.size, m, why, wl);
    /* A refused message holds nothing: clearing it is a no-op. */
    kt_msg_clear(m);
    free(m);
    msgpack_sbuffer_destroy(&sb);
    return r;
}

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

static const msgpack_object *s_val_bin(s_val_t *v, size_t len)
{
    msgpack_packer *pk = s_val_begin(v);
    char *s = calloc(1, len + 1);
    assert_non_null(s);
    msgpack_pack_bin(pk, len);
    msgpack_pack_bin_body(pk, s, len);
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

static const msgpack_object *s_val_u64(s_val_t *v, uint64_t u)
{
    msgpack_packer *pk = s_val_begin(v);
    msgpack_pack_uint64(pk, u);
    return s_val_end(v);
}

static const msgpack_object *s_val_bool(s_val_t *v, bool b)
{
    msgpack_packer *pk = s_val_begin(v);
    if (b)
        msgpack_pack_true(pk);
    else
        msgpack_pack_false(pk);
    return s_val_end(v);
}

static const msgpack_object *s_val_repeat(s_val_t *v, const msgpack_object *o, uint32_t n)
{
    msgpack_packer *pk = s_val_begin(v);
    msgpack_pack_array(pk, n);
    for (uint32_t i = 0; i < n; i++)
        msgpack_pack_object(pk, *o);
    return s_val_end(v);
}

#define S_MAX_PATHS 1024

static void s_collect(const msgpack_object *o, const char *prefix, char (*paths)[128], size_t *n)
{
    if (o->type == MSGPACK_OBJECT_MAP) {
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            const msgpack_object_kv *kv = &o->via.map.ptr[i];
            assert_int_equal(kv->key.type, MSGPACK_OBJECT_STR);
            char path[128];
            snprintf(path, sizeof(path), "%s%s%.*s", prefix, *prefix ? "." : "",
                     (int)kv->key.via.str.size, kv->key.via.str.ptr);
            assert_true(*n < S_MAX_PATHS);
            snprintf(paths[(*n)++], 128, "%s", path);
            s_collect(&kv->val, path, paths, n);
        }
    } else if (o->type == MSGPACK_OBJECT_ARRAY) {
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            char path[128];
            snprintf(path, sizeof(path), "%s.%u", prefix, i);
            assert_true(*n < S_MAX_PATHS);
            snprintf(paths[(*n)++], 128, "%s", path);
            s_collect(&o->via.array.ptr[i], path, paths, n);
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

static void test_missing_fields(void **state)
{
    (void)state;
    static char paths[S_MAX_PATHS][128];
    char why[512];
    unsigned removed = 0;
    for (int t = 1; t < KT_MSG__COUNT; t++) {
        s_msg_t x;
        s_msg_sample(&x, (enum kt_msg_type)t);
        size_t n = 0;
        s_collect(&x.up.data, "", paths, &n);
        assert_true(n > 0);
        for (size_t i = 0; i < n; i++) {
            const char *last = strrchr(paths[i], '.');
            last = last ? last + 1 : paths[i];
            /* Dropping an array element leaves a valid, shorter array. */
            if (last[0] >= '0' && last[0] <= '9')
                continue;
            int r = s_mutate(&x, paths[i], NULL, why, sizeof(why));
            if (r != -EBADMSG)
                fail_msg("%s without '%s': got %d, want -EBADMSG", kt_msg_type_name(x.type),
                         paths[i], r);
            if (!strstr(why, last) || !strstr(why, "missing"))
                fail_msg("%s without '%s': reason '%s' does not name it", kt_msg_type_name(x.type),
                         paths[i], why);
            if (strncmp(why, kt_msg_type_name(x.type), strlen(kt_msg_type_name(x.type))) != 0)
                fail_msg("%s without '%s': reason '%s' does not name the message",
                         kt_msg_type_name(x.type), paths[i], why);
            removed++;
        }
        s_msg_destroy(&x);
    }
    assert_true(removed > 120);
}

static void test_wrong_types(void **state)
{
    (void)state;
    static char paths[S_MAX_PATHS][128];

    s_val_t vals[9];
    msgpack_packer *pk;
    const msgpack_object *nil, *tru, *pos, *neg, *flt, *str, *arr, *map, *bin;
    pk = s_val_begin(&vals[0]);
    msgpack_pack_nil(pk);
    nil = s_val_end(&vals[0]);
    tru = s_val_bool(&vals[1], true);
    pos = s_val_int(&vals[2], 1);
    neg = s_val_int(&vals[3], -1);
    pk = s_val_begin(&vals[4]);
    msgpack_pack_double(pk, 1.5);
    flt = s_val_end(&vals[4]);
    str = s_val_text(&vals[5], "1");
    pk = s_val_begin(&vals[6]);
    msgpack_pack_array(pk, 0);
    arr = s_val_end(&vals[6]);
    pk = s_val_begin(&vals[7]);
    msgpack_pack_map(pk, 0);
    map = s_val_end(&vals[7]);
    bin = s_val_bin(&vals[8], 1);

    unsigned tried = 0;
    char why[512];
    for (int t = 1; t < KT_MSG__COUNT; t++) {
        s_msg_t x;
        s_msg_sample(&x, (enum kt_msg_type)t);
        size_t n = 0;
        s_collect(&x.up.data, "", paths, &n);
        for (size_t i = 0; i < n; i++) {
            const msgpack_object *orig = s_lookup(&x.up.data, paths[i]);
            assert_non_null(orig);
            const char *last = strrchr(paths[i], '.');
            last = last ? last + 1 : paths[i];
            /* Where another type is the same value: numbers where a double
             * is stored, signed nice, a sidecar or console as str or bin. */
            bool dbl = orig->type == MSGPACK_OBJECT_FLOAT64;
            bool nice = strcmp(last, "nice") == 0;
            bool blob = strcmp(last, "sidecar") == 0 || strcmp(last, "console") == 0;
            const msgpack_object *wrong[9];
            size_t nw = 0;
            wrong[nw++] = nil;
            if (orig->type != MSGPACK_OBJECT_BOOLEAN)
                wrong[nw++] = tru;
            if (orig->type != MSGPACK_OBJECT_POSITIVE_INTEGER && !dbl && !nice)
                wrong[nw++] = pos;
            if (orig->type != MSGPACK_OBJECT_NEGATIVE_INTEGER && !nice)
                wrong[nw++] = neg;
            if (!dbl)
                wrong[nw++] = flt;
            if (orig->type != MSGPACK_OBJECT_STR && !blob)
                wrong[nw++] = str;
            if (orig->type != MSGPACK_OBJECT_ARRAY)
                wrong[nw++] = arr;
            if (orig->type != MSGPACK_OBJECT_MAP)
                wrong[nw++] = map;
            if (orig->type != MSGPACK_OBJECT_BIN && !blob)
                wrong[nw++] = bin;
            for (size_t w = 0; w < nw; w++) {
                int r = s_mutate(&x, paths[i], wrong[w], why, sizeof(why));
                if (r != -EBADMSG)
                    fail_msg("%s '%s' as msgpack type %d: got %d, want -EBADMSG",
                             kt_msg_type_name(x.type), paths[i], wrong[w]->type, r);
                tried++;
            }
        }
        s_msg_destroy(&x);
    }
    assert_true(tried > 1000);
    for (int i = 0; i < 9; i++)
        s_val_destroy(&vals[i]);
}

/* Mutating `path` of a sample of `type` to `val` is refused, with `reason`
 * in the why text. */
static void s_refused(enum kt_msg_type type, const char *path, const msgpack_object *val,
                      const char *reason)
{
    s_msg_t x;
    s_msg_sample(&x, type);
    char why[512];
    int r = s_mutate(&x, path, val, why, sizeof(why));
    if (r != -EBADMSG)
        fail_msg("%s '%s': got %d, want -EBADMSG", kt_msg_type_name(type), path, r);
    if (!strstr(why, reason))
        fail_msg("%s '%s': reason '%s' lacks '%s'", kt_msg_type_name(type), path, why, reason);
    s_msg_destroy(&x);
}

static void s_accepted(enum kt_msg_type type, const char *path, const msgpack_object *val)
{
    s_msg_t x;
    s_msg_sample(&x, type);
    char why[512];
    int r = s_mutate(&x, path, val, why, sizeof(why));
    if (r != 0)
        fail_msg("%s '%s': got %d (%s), want 0", kt_msg_type_name(type), path, r, why);
    s_msg_destroy(&x);
}

#define REFUSED(type, path, mk, reason)                                                            \
    do {                                                                                           \
        s_val_t v_;                                                                                \
        s_refused((type), (path), mk, (reason));                                                   \
        s_val_destroy(&v_);                                                                        \
    } while (0)
#define ACCEPTED(type, path, mk)                                                                   \
    do {                                                                                           \
        s_val_t v_;                                                                                \
        s_accepted((type), (path), mk);                                                            \
        s_val_destroy(&v_);                                                                        \
    } while (0)

/* Every string field at its buffer's limit and one byte over. */
static void test_string_sizes(void **state)
{
    (void)state;
    static const struct {
        enum kt_msg_type type;
        const char *path;
        size_t max;
        char ch;
    } f[] = {
        {KT_MSG_OPEN, "coordinator_id", KT_ID_MAX - 1, 'c'},
        {KT_MSG_HELLO, "worker_id", KT_ID_MAX - 1, 'w'},
        {KT_MSG_HELLO, "arch", 15, 'a'},
        {KT_MSG_REFUSE, "reason", 255, 'r'},
        {KT_MSG_ASSIGN, "spec.cell_name", 255, 'n'},
        {KT_MSG_ASSIGN, "spec.run_id", 39, 'r'},
        {KT_MSG_ASSIGN, "spec.kernel_label", 63, 'l'},
        {KT_MSG_ASSIGN, "spec.kernel_version", 63, 'v'},
        {KT_MSG_ASSIGN, "spec.kernel_commit", 47, 'c'},
        {KT_MSG_ASSIGN, "spec.sched_name", KT_NAME_MAX - 1, 's'},
        {KT_MSG_ASSIGN, "spec.sched_args", 511, 'a'},
        {KT_MSG_ASSIGN, "spec.profile", 127, 'p'},
        {KT_MSG_ASSIGN, "spec.topology_preset", KT_NAME_MAX - 1, 't'},
        {KT_MSG_ACCEPT, "reason", 255, 'r'},
        {KT_MSG_PROGRESS, "phase", 15, 'p'},
        {KT_MSG_RESULT, "reason", 1023, 'r'},
        {KT_MSG_ERROR, "text", 255, 'e'},
    };
    for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
        ACCEPTED(f[i].type, f[i].path, s_val_str(&v_, f[i].max, f[i].ch));
        char reason[64];
        snprintf(reason, sizeof(reason), "%zu bytes, longer than %zu", f[i].max + 1, f[i].max);
        REFUSED(f[i].type, f[i].path, s_val_str(&v_, f[i].max + 1, f[i].ch), reason);
        /* Far over: 1 MiB where a few bytes fit. */
        REFUSED(f[i].type, f[i].path, s_val_str(&v_, 1u << 20, f[i].ch), "longer than");
        /* A NUL inside would cut the C string short. */
        REFUSED(f[i].type, f[i].path, s_val_str(&v_, 3, '\0'), "NUL");
    }
    /* Strings that must not be empty. */
    static const struct {
        enum kt_msg_type type;
        const char *path;
    } ne[] = {
        {KT_MSG_OPEN, "coordinator_id"},
        {KT_MSG_HELLO, "worker_id"},
        {KT_MSG_HELLO, "arch"},
        {KT_MSG_HELLO, "accel"},
        {KT_MSG_REFUSE, "reason"},
        {KT_MSG_ASSIGN, "spec.cell_name"},
        {KT_MSG_ASSIGN, "spec.run_id"},
        {KT_MSG_ASSIGN, "spec.kernel_label"},
        {KT_MSG_ASSIGN, "spec.sched_name"},
        {KT_MSG_ASSIGN, "spec.profile"},
        {KT_MSG_PROGRESS, "phase"},
        {KT_MSG_RESULT, "verdict"},
    };
    for (size_t i = 0; i < sizeof(ne) / sizeof(ne[0]); i++)
        REFUSED(ne[i].type, ne[i].path, s_val_text(&v_, ""), "empty");
    /* Strings that may be. */
    ACCEPTED(KT_MSG_ASSIGN, "spec.kernel_commit", s_val_text(&v_, ""));
    ACCEPTED(KT_MSG_ASSIGN, "spec.kernel_version", s_val_text(&v_, ""));
    ACCEPTED(KT_MSG_ASSIGN, "spec.topology_preset", s_val_text(&v_, ""));
    ACCEPTED(KT_MSG_ASSIGN, "spec.sched_args", s_val_text(&v_, ""));
    ACCEPTED(KT_MSG_RESULT, "reason", s_val_text(&v_, ""));
    ACCEPTED(KT_MSG_ERROR, "text", s_val_text(&v_, ""));

    /* Names that become paths or log fields. */
    REFUSED(KT_MSG_HELLO, "worker_id", s_val_text(&v_, "a b"), "byte 0x20");
    REFUSED(KT_MSG_HELLO, "worker_id", s_val_text(&v_, "../x"), "byte 0x2f");
    REFUSED(KT_MSG_HELLO, "worker_id", s_val_text(&v_, "x\ny"), "byte 0x0a");
    REFUSED(KT_MSG_OPEN, "coordinator_id", s_val_text(&v_, "c\\d"), "byte 0x5c");
    REFUSED(KT_MSG_ASSIGN, "spec.run_id", s_val_text(&v_, "run/1"), "'spec.run_id'");
    REFUSED(KT_MSG_ASSIGN, "spec.kernel_label", s_val_text(&v_, "6.12 rc1"), "kernel_label");
    REFUSED(KT_MSG_ASSIGN, "spec.cell_name", s_val_text(&v_, "gauntlet/../../etc"), "'..'");
    REFUSED(KT_MSG_ASSIGN, "spec.cell_name", s_val_text(&v_, "/abs/path"), "component");
    REFUSED(KT_MSG_ASSIGN, "spec.cell_name", s_val_text(&v_, "a//b"), "component");
    REFUSED(KT_MSG_ASSIGN, "spec.cell_name", s_val_text(&v_, "a/./b"), "component");
    REFUSED(KT_MSG_ASSIGN, "spec.cell_name", s_val_text(&v_, "a/b/"), "component");
    REFUSED(KT_MSG_ASSIGN, "spec.cell_name", s_val_text(&v_, "a\tb"), "not printable");
    ACCEPTED(KT_MSG_ASSIGN, "spec.cell_name", s_val_text(&v_, "gauntlet/x/y/llc+steal/6.12..rc1"));
    REFUSED(KT_MSG_ASSIGN, "spec.kernel_version", s_val_text(&v_, "6.12\x01"), "not printable");
    ACCEPTED(KT_MSG_RESULT, "reason", s_val_text(&v_, "spread 31 % \xc3\xa9\ttab\nline"));
}

static void test_sha_fields(void **state)
{
    (void)state;
    static const struct {
        enum kt_msg_type type;
        const char *path;
    } f[] = {
        {KT_MSG_HELLO, "artifacts.1"},   {KT_MSG_HEARTBEAT, "running.1.cell_id"},
        {KT_MSG_ASSIGN, "spec.cell_id"}, {KT_MSG_ASSIGN, "spec.kernel_sha"},
        {KT_MSG_ACCEPT, "cell_id"},      {KT_MSG_FETCH, "sha"},
        {KT_MSG_CHUNK, "sha"},           {KT_MSG_PROGRESS, "cell_id"},
        {KT_MSG_RESULT, "cell_id"},      {KT_MSG_RESULT_ACK, "cell_id"},
        {KT_MSG_CANCEL, "cell_id"},
    };
    char sha[80];
    for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
        const char *want = strncmp(f[i].path, "artifacts", 9) == 0 ? "entry 1" : "hex";
        ACCEPTED(f[i].type, f[i].path, s_val_text(&v_, S_SHA_C));
        snprintf(sha, sizeof(sha), "%s", S_SHA_A);
        sha[5] = 'A'; /* uppercase */
        REFUSED(f[i].type, f[i].path, s_val_text(&v_, sha), want);
        sha[5] = 'g';
        REFUSED(f[i].type, f[i].path, s_val_text(&v_, sha), want);
        sha[63] = '\0'; /* 63 digits */
        REFUSED(f[i].type, f[i].path, s_val_text(&v_, sha + 1), want);
        snprintf(sha, sizeof(sha), "%s0", S_SHA_A); /* 65 digits */
        REFUSED(f[i].type, f[i].path, s_val_text(&v_, sha), want);
        REFUSED(f[i].type, f[i].path, s_val_text(&v_, ""), want);
        REFUSED(f[i].type, f[i].path, s_val_str(&v_, 64, '\0'), want);
    }
    /* EEVDF has no scheduler binary: an empty sched_sha with size 0. */
    s_msg_t x;
    s_msg_sample(&x, KT_MSG_ASSIGN);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    s_path_t p1, p2;
    s_path_parse("spec.sched_sha", &p1);
    s_path_parse("spec.sched_size", &p2);
    s_val_t e, z;
    s_repack(&pk, &x.up.data, &p1, 0, s_val_text(&e, ""));
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    assert_int_equal(kt_mp_unpack_one(sb.data, sb.size, &up), 0);
    msgpack_sbuffer sb2;
    msgpack_sbuffer_init(&sb2);
    msgpack_packer_init(&pk, &sb2, msgpack_sbuffer_write);
    s_repack(&pk, &up.data, &p2, 0, s_val_int(&z, 0));
    kt_msg_t *m = s_new();
    char why[512];
    if (s_decode(KT_MSG_ASSIGN, sb2.data, sb2.size, m, why, sizeof(why)) < 0)
        fail_msg("EEVDF spec: %s", why);
    assert_string_equal(m->u.assign.spec.sched_sha, "");
    kt_msg_clear(m);
    /* An empty sha with a size, or a sha with size 0, is refused. */
    assert_int_equal(s_decode(KT_MSG_ASSIGN, sb.data, sb.size, m, why, sizeof(why)), -EBADMSG);
    assert_non_null(strstr(why, "both empty or both set"));
    free(m);
    s_val_destroy(&e);
    s_val_destroy(&z);
    msgpack_unpacked_destroy(&up);
    msgpack_sbuffer_destroy(&sb);
    msgpack_sbuffer_destroy(&sb2);
    s_msg_destroy(&x);
    REFUSED(KT_MSG_ASSIGN, "spec.sched_size", s_val_int(&v_, 0), "both empty or both set");
    REFUSED(KT_MSG_ASSIGN, "spec.kernel_sha", s_val_text(&v_, ""), "'spec.kernel_sha'");
}

static void test_arrays_and_blobs(void **state)
{
    (void)state;
    s_val_t w;
    /* HELLO artifacts: 1024 fit, 1025 do not, nor 2^20. */
    const msgpack_object *sha = s_val_text(&w, S_SHA_A);
    ACCEPTED(KT_MSG_HELLO, "artifacts", s_val_repeat(&v_, sha, KT_MSG_MAX_ARTIFACTS));
    REFUSED(KT_MSG_HELLO, "artifacts", s_val_repeat(&v_, sha, KT_MSG_MAX_ARTIFACTS + 1),
            "1025 entries, limit 1024");
    REFUSED(KT_MSG_HELLO, "artifacts", s_val_repeat(&v_, sha, 50000), "50000 entries, limit 1024");
    s_val_destroy(&w);

    /* HEARTBEAT running: 256 fit, 257 do not. */
    s_msg_t x;
    s_msg_sample(&x, KT_MSG_HEARTBEAT);
    const msgpack_object *r0 = s_lookup(&x.up.data, "running.0");
    ACCEPTED(KT_MSG_HEARTBEAT, "running", s_val_repeat(&v_, r0, KT_MSG_MAX_RUNNING));
    REFUSED(KT_MSG_HEARTBEAT, "running", s_val_repeat(&v_, r0, KT_MSG_MAX_RUNNING + 1),
            "257 entries, limit 256");
    REFUSED(KT_MSG_HEARTBEAT, "running.1.attempt", s_val_int(&v_, 0), "running[1].attempt");
    s_msg_destroy(&x);

    /* CHUNK data: KT_CHUNK_MAX fits (with total and last to match), one more
     * byte does not; bin only. */
    REFUSED(KT_MSG_CHUNK, "data", s_val_bin(&v_, KT_CHUNK_MAX + 1), "over the limit 262144");
    REFUSED(KT_MSG_CHUNK, "data", s_val_str(&v_, 10, 'x'), "a string, not binary");

    /* RESULT sidecar and console: at and over their limits, str or bin. */
    ACCEPTED(KT_MSG_RESULT, "sidecar", s_val_str(&v_, KT_MSG_MAX_SIDECAR, '{'));
    ACCEPTED(KT_MSG_RESULT, "sidecar", s_val_bin(&v_, 0));
    REFUSED(KT_MSG_RESULT, "sidecar", s_val_str(&v_, KT_MSG_MAX_SIDECAR + 1, '{'),
            "2097153 bytes, over the limit 2097152");
    REFUSED(KT_MSG_RESULT, "sidecar", s_val_bin(&v_, 10), "NUL");
    ACCEPTED(KT_MSG_RESULT, "console", s_val_bin(&v_, KT_MSG_MAX_CONSOLE));
    ACCEPTED(KT_MSG_RESULT, "console", s_val_str(&v_, 100, 'c'));
    REFUSED(KT_MSG_RESULT, "console", s_val_bin(&v_, KT_MSG_MAX_CONSOLE + 1),
            "over the limit 65536");
}

static void test_ranges_and_consistency(void **state)
{
    (void)state;
    /* Versions, sessions and instances. */
    REFUSED(KT_MSG_OPEN, "version", s_val_int(&v_, 0), "0 outside 1..65535");
    REFUSED(KT_MSG_OPEN, "version", s_val_int(&v_, 65536), "outside");
    REFUSED(KT_MSG_OPEN, "session", s_val_int(&v_, 0), "'session': 0 outside");
    ACCEPTED(KT_MSG_OPEN, "session", s_val_u64(&v_, UINT64_MAX));
    REFUSED(KT_MSG_HELLO, "instance", s_val_int(&v_, 0), "'instance'");
    REFUSED(KT_MSG_HELLO, "version", s_val_int(&v_, 0), "'version'");
    REFUSED(KT_MSG_HELLO, "host_cpus", s_val_int(&v_, 0), "'host_cpus'");
    REFUSED(KT_MSG_HELLO, "accel", s_val_text(&v_, "hvf"), "neither kvm nor tcg");
    REFUSED(KT_MSG_HELLO, "canary_ms", s_val_int(&v_, 600001), "'canary_ms'");
    REFUSED(KT_MSG_HELLO, "memory_mib", s_val_u64(&v_, UINT64_MAX), "'memory_mib'");
    /* Timers. */
    REFUSED(KT_MSG_WELCOME, "heartbeat_ms", s_val_int(&v_, 9), "'heartbeat_ms'");
    REFUSED(KT_MSG_WELCOME, "heartbeat_ms", s_val_int(&v_, 5000), "not over heartbeat_ms 5000");
    REFUSED(KT_MSG_WELCOME, "lost_after_ms", s_val_int(&v_, 600001), "'lost_after_ms'");
    REFUSED(KT_MSG_WELCOME, "session", s_val_int(&v_, 0), "'session'");
    /* Codes. */
    REFUSED(KT_MSG_REFUSE, "code", s_val_int(&v_, 399), "399 outside 400..599");
    REFUSED(KT_MSG_ERROR, "code", s_val_int(&v_, 200), "200 outside 400..599");
    REFUSED(KT_MSG_ERROR, "code", s_val_int(&v_, 600), "outside");
    /* Attempts and leases. */
    REFUSED(KT_MSG_ASSIGN, "attempt", s_val_int(&v_, 0), "'attempt': 0 outside 1..1000");
    REFUSED(KT_MSG_ASSIGN, "attempt", s_val_int(&v_, 1001), "'attempt'");
    REFUSED(KT_MSG_ASSIGN, "lease_ms", s_val_int(&v_, 0), "'lease_ms'");
    REFUSED(KT_MSG_ASSIGN, "lease_ms", s_val_u64(&v_, KT_MSG_MAX_LEASE_MS + 1ull), "'lease_ms'");
    REFUSED(KT_MSG_RESULT_ACK, "attempt", s_val_int(&v_, 0), "'attempt'");
    REFUSED(KT_MSG_CANCEL, "attempt", s_val_int(&v_, 1001), "'attempt'");
    REFUSED(KT_MSG_ASSIGN, "spec.kernel_size", s_val_int(&v_, 0), "'spec.kernel_size'");
    REFUSED(KT_MSG_ASSIGN, "spec.kernel_size", s_val_u64(&v_, KT_ARTIFACT_MAX_BYTES + 1),
            "'spec.kernel_size'");
    REFUSED(KT_MSG_ASSIGN, "spec.memory_mib", s_val_int(&v_, 0), "'spec.memory_mib'");
    /* The plan inside is as strict as the guest channel's. */
    REFUSED(KT_MSG_ASSIGN, "spec.plan.topology.nodes", s_val_int(&v_, 3), "invalid shape");
    REFUSED(KT_MSG_ASSIGN, "spec.plan.cgroups.0.nice", s_val_int(&v_, -21), "outside -20..19");
    REFUSED(KT_MSG_ASSIGN, "spec.plan.faults.0.worker", s_val_int(&v_, 9), "'spec.plan'");
    /* ACCEPT refused without a reason. */
    ACCEPTED(KT_MSG_ACCEPT, "reason", s_val_text(&v_, "needs 16 vCPUs"));
    REFUSED(KT_MSG_ACCEPT, "reason", s_val_text(&v_, ""), "empty, but ok is false");
    /* FETCH credit. */
    REFUSED(KT_MSG_FETCH, "credit", s_val_int(&v_, 0), "'credit'");
    REFUSED(KT_MSG_FETCH, "credit", s_val_int(&v_, KT_FETCH_MAX_CREDIT + 1), "'credit'");
    REFUSED(KT_MSG_FETCH, "offset", s_val_u64(&v_, KT_ARTIFACT_MAX_BYTES + 1), "'offset'");
    /* CHUNK: offset + len within total, last exactly at the end. The small
     * sample is 100 bytes at 1000 of 5000, not last. */
    REFUSED(KT_MSG_CHUNK, "total", s_val_int(&v_, 1099), "runs past total 1099");
    ACCEPTED(KT_MSG_CHUNK, "total", s_val_int(&v_, 1101));
    REFUSED(KT_MSG_CHUNK, "total", s_val_int(&v_, 1100),
            "'last': false, but the chunk ends at 1100 of 1100");
    REFUSED(KT_MSG_CHUNK, "last", s_val_bool(&v_, true),
            "'last': true, but the chunk ends at 1100 of 5000");
    REFUSED(KT_MSG_CHUNK, "offset", s_val_u64(&v_, UINT64_MAX - 10), "'offset'");
    REFUSED(KT_MSG_CHUNK, "data", s_val_bin(&v_, 0), "empty, and not the last chunk");
    /* PROGRESS phases are lowercase words; RESULT verdicts are the four. */
    ACCEPTED(KT_MSG_PROGRESS, "phase", s_val_text(&v_, "fetching"));
    REFUSED(KT_MSG_PROGRESS, "phase", s_val_text(&v_, "Booting"), "not a lowercase word");
    REFUSED(KT_MSG_PROGRESS, "phase", s_val_text(&v_, "boot-ing"), "not a lowercase word");
    static const char *const verdicts[] = {"pass", "fail", "error", "skip"};
    for (size_t i = 0; i < 4; i++)
        ACCEPTED(KT_MSG_RESULT, "verdict", s_val_text(&v_, verdicts[i]));
    REFUSED(KT_MSG_RESULT, "verdict", s_val_text(&v_, "PASS"), "not pass, fail, error or skip");
    REFUSED(KT_MSG_RESULT, "verdict", s_val_text(&v_, "passed"), "not pass, fail, error or skip");
    REFUSED(KT_MSG_RESULT, "verdict", s_val_text(&v_, "timeout"), "not pass");
    /* A reason quoting the peer's value stays one line without control bytes. */
    REFUSED(KT_MSG_RESULT, "verdict", s_val_text(&v_, "pas\n\x1b"),
            "'pas?"
            "?' is not pass");
    /* Integers do not wrap into narrower fields. */
    REFUSED(KT_MSG_DRAIN, "running", s_val_u64(&v_, (1ull << 32) + 5), "'running'");
    REFUSED(KT_MSG_HEARTBEAT, "free_vcpus", s_val_u64(&v_, 1ull << 32), "'free_vcpus'");
    ACCEPTED(KT_MSG_HEARTBEAT, "seq", s_val_u64(&v_, UINT64_MAX));
}

static void test_unknown_type(void **state)
{
    (void)state;
    kt_msg_t *m = s_new();
    char why[512];
    static const uint8_t map0[] = {0x80};
    assert_int_equal(s_decode(0, map0, sizeof(map0), m, why, sizeof(why)), -EBADMSG);
    assert_non_null(strstr(why, "unknown message type 0"));
    assert_int_equal(s_decode(KT_MSG__COUNT, map0, sizeof(map0), m, why, sizeof(why)), -EBADMSG);
    assert_int_equal(s_decode((enum kt_msg_type)999, map0, sizeof(map0), m, why, sizeof(why)),
                     -EBADMSG);
    /* A body of one type is not accepted as another. */
    kt_msg_t *x = s_new();
    s_sample(KT_MSG_RESULT_ACK, false, x);
    msgpack_sbuffer sb;
    s_encode(x, &sb);
    assert_int_equal(s_decode(KT_MSG_CANCEL, sb.data, sb.size, m, why, sizeof(why)), 0);
    assert_int_equal(s_decode(KT_MSG_PROGRESS, sb.data, sb.size, m, why, sizeof(why)), -EBADMSG);
    assert_string_equal(why, "PROGRESS: field 'phase': missing");
    assert_int_equal(s_decode(KT_MSG_ASSIGN, sb.data, sb.size, m, why, sizeof(why)), -EBADMSG);
    msgpack_sbuffer_destroy(&sb);
    free(x);
    free(m);
}

/* Containers announcing 2^32-1 entries in a few bytes: refused before
 * msgpack-c allocates their slots. */
static void test_hostile_counts(void **state)
{
    (void)state;
    kt_msg_t *m = s_new();
    char why[512];
    static const uint8_t map32[] = {0xdf, 0xff, 0xff, 0xff, 0xff};
    static const uint8_t map32k[] = {0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 'k', 0x01};
    static const uint8_t arr32[] = {0xdd, 0xff, 0xff, 0xff, 0xff, 0x01};
    static const uint8_t str32[] = {0xdb, 0xff, 0xff, 0xff, 0xff, 'a'};
    static const uint8_t bin32[] = {0xc6, 0xff, 0xff, 0xff, 0xff, 'a'};
    static const uint8_t map16[] = {0xde, 0xff, 0xff, 0x01, 0x02};
    const struct {
        const uint8_t *b;
        size_t n;
    } bodies[] = {{map32, sizeof(map32)}, {map32k, sizeof(map32k)}, {arr32, sizeof(arr32)},
                  {str32, sizeof(str32)}, {bin32, sizeof(bin32)},   {map16, sizeof(map16)}};
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        for (int t = 1; t < KT_MSG__COUNT; t++) {
            s_biggest_alloc = 0;
            assert_int_equal(
                s_decode((enum kt_msg_type)t, bodies[i].b, bodies[i].n, m, why, sizeof(why)),
                -EBADMSG);
            if (S_TRACKS_ALLOC && s_biggest_alloc > (1u << 20))
                fail_msg("body %zu as %s: an allocation of %zu bytes", i,
                         kt_msg_type_name((enum kt_msg_type)t), s_biggest_alloc);
        }
    }
    /* Inside a valid HELLO: the artifacts array announces 2^32-1 entries
     * and the map goes on. */
    kt_msg_t *h = s_new();
    s_sample(KT_MSG_HELLO, false, h);
    h->u.hello.n_artifacts = 0;
    msgpack_sbuffer sb;
    s_encode(h, &sb);
    kt_msg_clear(h);
    free(h);
    assert_true(sb.size > 10 && (uint8_t)sb.data[sb.size - 1] == 0x90); /* the empty array last */
    msgpack_sbuffer_write(&sb, "\0\0\0\0\0", 4);
    sb.data[sb.size - 5] = (char)0xdd;
    memset(sb.data + sb.size - 4, 0xff, 4);
    s_biggest_alloc = 0;
    assert_int_equal(s_decode(KT_MSG_HELLO, sb.data, sb.size, m, why, sizeof(why)), -EBADMSG);
    if (S_TRACKS_ALLOC && s_biggest_alloc > (1u << 20))
        fail_msg("nested array32: an allocation of %zu bytes", s_biggest_alloc);
    msgpack_sbuffer_destroy(&sb);
    /* A body over the message limit is refused before it is parsed. */
    uint8_t *huge = calloc(1, KT_MSG_MAX_BYTES + 1);
    assert_non_null(huge);
    huge[0] = 0x81;
    assert_int_equal(s_decode(KT_MSG_CHUNK, huge, KT_MSG_MAX_BYTES + 1, m, why, sizeof(why)),
                     -EBADMSG);
    assert_non_null(strstr(why, "over the limit"));
    free(huge);
    free(m);
}

static void test_encode_limits(void **state)
{
    (void)state;
    kt_msg_t *m = s_new();
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    kt_msg_init(m, KT_MSG_HELLO);
    m->u.hello.n_artifacts = KT_MSG_MAX_ARTIFACTS + 1;
    kt_msg_artifact_ref_t *refs = calloc(KT_MSG_MAX_ARTIFACTS + 1, sizeof(*refs));
    m->u.hello.artifacts = refs;
    assert_int_equal(kt_msg_encode_body(m, &sb), -EMSGSIZE);
    m->u.hello.artifacts = NULL;
    free(refs);
    m->u.hello.n_artifacts = 1; /* a count without an array */
    assert_int_equal(kt_msg_encode_body(m, &sb), -EMSGSIZE);
    kt_msg_init(m, KT_MSG_HEARTBEAT);
    m->u.heartbeat.n_running = KT_MSG_MAX_RUNNING + 1;
    assert_int_equal(kt_msg_encode_body(m, &sb), -EMSGSIZE);
    kt_msg_init(m, KT_MSG_CHUNK);
    m->u.chunk.len = KT_CHUNK_MAX + 1;
    static uint8_t big[KT_CHUNK_MAX + 1];
    m->u.chunk.data = big;
    assert_int_equal(kt_msg_encode_body(m, &sb), -EMSGSIZE);
    kt_msg_init(m, KT_MSG_RESULT);
    m->u.result.sidecar_len = KT_MSG_MAX_SIDECAR + 1;
    m->u.result.sidecar = (char *)big;
    assert_int_equal(kt_msg_encode_body(m, &sb), -EMSGSIZE);
    m->u.result.sidecar = NULL;
    m->u.result.sidecar_len = 0;
    m->u.result.console_len = KT_MSG_MAX_CONSOLE + 1;
    assert_int_equal(kt_msg_encode_body(m, &sb), -EMSGSIZE);
    m->type = 0;
    assert_int_equal(kt_msg_encode_body(m, &sb), -EINVAL);
    m->type = KT_MSG__COUNT;
    assert_int_equal(kt_msg_encode_body(m, &sb), -EINVAL);
    /* Nothing was written by a refused encode. */
    assert_int_equal(sb.size, 0);

    /* Fixed-size fields without their NUL are packed to their size, not
     * past it. */
    kt_msg_init(m, KT_MSG_ERROR);
    m->u.error.code = 500;
    memset(m->u.error.text, 'x', sizeof(m->u.error.text));
    assert_int_equal(kt_msg_encode_body(m, &sb), 0);
    kt_msg_t *back = s_new();
    char why[512];
    assert_int_equal(s_decode(KT_MSG_ERROR, sb.data, sb.size, back, why, sizeof(why)), -EBADMSG);
    assert_non_null(strstr(why, "256 bytes, longer than 255"));
    msgpack_sbuffer_destroy(&sb);
    free(back);
    free(m);
}

static double s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The dispatch bench wants 10,000 cells/s end to end on two cores; each
 * cell is an ASSIGN and a RESULT (plus small ACCEPT/ACK), so the codec must
 * take microseconds. The bound asserted here is loose (sanitizer builds,
 * a loaded machine); the figure is printed. */
static void test_codec_speed(void **state)
{
    (void)state;
    kt_msg_t *m = s_new(), *back = s_new();
    char why[512];
    enum kt_msg_type types[2] = {KT_MSG_ASSIGN, KT_MSG_RESULT};
    for (int k = 0; k < 2; k++) {
        if (types[k] == KT_MSG_ASSIGN) {
            s_sample(KT_MSG_ASSIGN, false, m);
        } else {
            kt_msg_init(m, KT_MSG_RESULT);
            snprintf(m->u.result.cell_id, KT_SHA_HEX, "%s", S_SHA_A);
            m->u.result.attempt = 1;
            snprintf(m->u.result.verdict, sizeof(m->u.result.verdict), "pass");
            static char sidecar[] = "{\"executor\":\"null\",\"verdict\":\"pass\"}";
            m->u.result.sidecar = sidecar;
            m->u.result.sidecar_len = strlen(sidecar);
        }
        const int n = 20000;
        size_t bytes = 0;
        double t0 = s_now();
        for (int i = 0; i < n; i++) {
            msgpack_sbuffer sb;
            msgpack_sbuffer_init(&sb);
            assert_int_equal(kt_msg_encode_body(m, &sb), 0);
            bytes = sb.size;
            int r = kt_msg_decode_body(types[k], sb.data, sb.size, back, why, sizeof(why));
            if (r < 0)
                fail_msg("%s", why);
            kt_msg_clear(back);
            msgpack_sbuffer_destroy(&sb);
        }
        double us = (s_now() - t0) * 1e6 / n;
        print_message("# codec: %s (%zu bytes) encode+decode %.2f us\n", kt_msg_type_name(types[k]),
                      bytes, us);
        assert_true(us < 500);
        if (types[k] == KT_MSG_RESULT) {
            m->u.result.sidecar = NULL;
            m->u.result.sidecar_len = 0;
        }
        kt_msg_clear(m);
    }
    free(m);
    free(back);
}

static int s_teardown(void **state)
{
    (void)state;
    free(s_chunk_data);
    s_chunk_data = NULL;
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_type_names),
        cmocka_unit_test(test_round_trip_every_type),
        cmocka_unit_test(test_fields_carried),
        cmocka_unit_test(test_unknown_keys_ignored),
        cmocka_unit_test(test_truncated_every_length),
        cmocka_unit_test(test_missing_fields),
        cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_string_sizes),
        cmocka_unit_test(test_sha_fields),
        cmocka_unit_test(test_arrays_and_blobs),
        cmocka_unit_test(test_ranges_and_consistency),
        cmocka_unit_test(test_unknown_type),
        cmocka_unit_test(test_hostile_counts),
        cmocka_unit_test(test_encode_limits),
        cmocka_unit_test(test_codec_speed),
    };
    return cmocka_run_group_tests(tests, NULL, s_teardown);
}
