/* The dispatcher in-process, against real worker daemons (kt_serve actors
 * with the null and sleep executors) and against fake workers driven by
 * hand (a ROUTER in a thread): every cell done exactly once and recorded in
 * the store; a worker destroyed mid-run (its cells finish on the other); a
 * late result from a fenced attempt recorded stale and never counted; a
 * cell lost max_attempts times ends as error; a cell bigger than every
 * worker ends as error without an assignment; a worker that refuses our
 * CURVE key gets nothing run and the reason says so. */
#include <czmq.h>
#include <errno.h>
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <zmq.h>

#include "kt_dispatch.h"
#include "kt_executor.h"
#include "kt_hash.h"
#include "kt_report.h"
#include "kt_scenario.h"
#include "kt_serve.h"
#include "kt_store.h"
#include "kt_topology.h"
#include "kt_wire.h"

#define T_HB_MS 50
#define T_LOST_MS 300
#define T_MAX_CELLS 64

static char s_dir[64];
static unsigned s_seq;

/* ---- a run built by hand ---- */

typedef struct t_env {
    kt_coord_run_t run;
    kt_store_t *store;
    char db[320];
    unsigned done[T_MAX_CELLS];
    unsigned assigned[T_MAX_CELLS];
    char verdict[T_MAX_CELLS][8];
    char reason[T_MAX_CELLS][600];
    char worker[T_MAX_CELLS][KT_ID_MAX];
    unsigned n_done;
    unsigned notes;
    char last_notes[8][600];
    /* destroy this actor when it is handed its kill_at-th cell */
    zactor_t **kill_actor;
    const char *kill_worker;
    unsigned kill_at, kill_seen;
    int killed_cell;
    pthread_t killer;
    bool killer_started;
} t_env_t;

static int s_index(const t_env_t *e, const kt_coord_cell_t *cell)
{
    ptrdiff_t i = cell - e->run.cells;
    assert_true(i >= 0 && (size_t)i < e->run.n_cells);
    return (int)i;
}

static void t_cell_done(void *ud, const kt_coord_cell_t *cell, unsigned attempt,
                        const char *worker, const char *verdict, const char *reason,
                        const char *sidecar, size_t sidecar_len, const char *console,
                        size_t console_len)
{
    t_env_t *e = ud;
    int i = s_index(e, cell);
    e->done[i]++;
    e->n_done++;
    snprintf(e->verdict[i], sizeof(e->verdict[i]), "%s", verdict);
    snprintf(e->reason[i], sizeof(e->reason[i]), "%s", reason);
    snprintf(e->worker[i], sizeof(e->worker[i]), "%s", worker);
}

__attribute__((format(printf, 2, 3))) static void t_note(void *ud, const char *fmt, ...)
{
    t_env_t *e = ud;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->last_notes[e->notes % 8], sizeof(e->last_notes[0]), fmt, ap);
    va_end(ap);
    e->notes++;
}

static void *t_kill_thread(void *arg)
{
    zactor_destroy((zactor_t **)arg);
    return NULL;
}

/* An executor that holds its cell (ignoring cancel, as a VM stuck in boot
 * would) until released or 10 s have passed. */
static atomic_bool s_hold_release;

static int t_hold_run(void *userdata, const kt_cellspec_t *spec, uint32_t attempt,
                      const char *kernel, const char *sched, atomic_bool *cancel,
                      kt_exec_result_t *ret)
{
    memset(ret, 0, sizeof(*ret));
    for (unsigned i = 0; i < 1000 && !atomic_load(&s_hold_release); i++)
        zclock_sleep(10);
    snprintf(ret->verdict, sizeof(ret->verdict), "pass");
    snprintf(ret->reason, sizeof(ret->reason), "held");
    ret->sidecar = strdup("{\"executor\":\"hold\"}");
    ret->sidecar_len = ret->sidecar ? strlen(ret->sidecar) : 0;
    return ret->sidecar ? 0 : -ENOMEM;
}

static void t_assigned(void *ud, const kt_coord_cell_t *cell, unsigned attempt,
                       const char *worker)
{
    t_env_t *e = ud;
    e->assigned[s_index(e, cell)]++;
    if (e->kill_actor && *e->kill_actor && strcmp(worker, e->kill_worker) == 0 &&
        ++e->kill_seen == e->kill_at) {
        /* It holds this cell now (its ASSIGN is out): it dies with it, on
         * another thread (stopping waits for its running cells a while). */
        e->killed_cell = s_index(e, cell);
        assert_int_equal(pthread_create(&e->killer, NULL, t_kill_thread, e->kill_actor), 0);
        e->killer_started = true;
    }
}

static bool t_notes_have(const t_env_t *e, const char *needle)
{
    for (unsigned i = 0; i < 8 && i < e->notes; i++)
        if (strstr(e->last_notes[i], needle))
            return true;
    return false;
}

/* A fake "kernel" artifact of a few hundred KiB (two CHUNKs and a bit). */
static void t_kernel_file(char *path, size_t len, char sha[KT_SHA_HEX], uint64_t *size)
{
    snprintf(path, len, "%s/kernel-%u.img", s_dir, ++s_seq);
    FILE *f = fopen(path, "we");
    assert_non_null(f);
    uint64_t n = KT_CHUNK_MAX * 2 + 12345;
    for (uint64_t i = 0; i < n; i++)
        fputc((int)((i * 2654435761u) >> 13) & 0xff, f);
    fclose(f);
    assert_int_equal(kt_hash_sha256_file(path, sha), 0);
    *size = n;
}

/* n cells; topos[i] (NULL: tiny-1llc, 4 vCPUs) */
static void t_env_init(t_env_t *e, unsigned n, const kt_topology_t *topos)
{
    memset(e, 0, sizeof(*e));
    assert_true(n <= T_MAX_CELLS);
    kt_coord_run_t *run = &e->run;
    snprintf(run->run_id, sizeof(run->run_id), "test-run-%u", ++s_seq);
    run->n_kernels = 1;
    run->kernels = calloc(1, sizeof(*run->kernels));
    run->n_scheds = 1;
    run->scheds = calloc(1, sizeof(*run->scheds));
    run->n_cells = n;
    run->cells = calloc(n, sizeof(*run->cells));
    assert_non_null(run->kernels);
    assert_non_null(run->scheds);
    assert_non_null(run->cells);
    kt_coord_kernel_t *k = &run->kernels[0];
    snprintf(k->label, sizeof(k->label), "6.12.117");
    snprintf(k->version, sizeof(k->version), "6.12.117");
    t_kernel_file(k->path, sizeof(k->path), k->sha, &k->size);
    snprintf(run->scheds[0].name, sizeof(run->scheds[0].name), "eevdf");
    const kt_scenario_t *steady = kt_scenario_builtin_find("steady");
    assert_non_null(steady);
    for (unsigned i = 0; i < n; i++) {
        kt_coord_cell_t *c = &run->cells[i];
        kt_topology_t t = topos ? topos[i] : kt_topology_preset_find("tiny-1llc")->topo;
        char why[256], seed[64], label[KT_TOPOLOGY_LABEL_MAX];
        assert_int_equal(kt_scenario_resolve(steady, &t, 1000, &c->spec.plan, why, sizeof(why)),
                         0);
        snprintf(seed, sizeof(seed), "%s-cell-%u", run->run_id, i);
        assert_int_equal(kt_hash_sha256_buf(seed, strlen(seed), c->spec.cell_id), 0);
        kt_topology_label(&t, label, sizeof(label));
        snprintf(c->spec.cell_name, sizeof(c->spec.cell_name), "gauntlet/steady/%s/eevdf-%u/%s",
                 label, i, k->label);
        snprintf(c->spec.run_id, sizeof(c->spec.run_id), "%s", run->run_id);
        snprintf(c->spec.kernel_label, sizeof(c->spec.kernel_label), "%s", k->label);
        snprintf(c->spec.kernel_version, sizeof(c->spec.kernel_version), "%s", k->version);
        snprintf(c->spec.kernel_sha, sizeof(c->spec.kernel_sha), "%s", k->sha);
        c->spec.kernel_size = k->size;
        snprintf(c->spec.sched_name, sizeof(c->spec.sched_name), "eevdf");
        snprintf(c->spec.profile, sizeof(c->spec.profile), "eevdf");
        c->vcpus = kt_topology_cpus(&t);
        c->memory_mib = kt_topology_memory_mib(&t, 0);
        c->spec.memory_mib = c->memory_mib;
        c->est_ms = 1000;
    }
    snprintf(e->db, sizeof(e->db), "%s/%s.db", s_dir, run->run_id);
    assert_int_equal(kt_store_open(e->db, &e->store), 0);
    assert_int_equal(kt_store_run_begin(e->store, run->run_id, "{}"), 0);
    for (unsigned i = 0; i < n; i++)
        assert_int_equal(kt_store_cell_add(e->store, run->run_id, run->cells[i].spec.cell_id,
                                           run->cells[i].spec.cell_name, "6.12.117", NULL,
                                           NULL),
                         0);
}

static void t_env_free(t_env_t *e)
{
    kt_store_close(&e->store);
    unlink(e->run.kernels[0].path);
    kt_coord_run_free(&e->run);
}

static kt_dispatch_config_t t_config(t_env_t *e, const kt_host_t *hosts, unsigned n)
{
    return (kt_dispatch_config_t){
        .hosts = hosts,
        .n_hosts = n,
        .heartbeat_ms = T_HB_MS,
        .lost_after_ms = T_LOST_MS,
        .max_attempts = 3,
        .no_worker_timeout_ms = 5000,
        .store = e->store,
        .events = {.cell_done = t_cell_done, .note = t_note, .assigned = t_assigned,
                   .userdata = e},
    };
}

static void t_host(kt_host_t *h, const char *name, const char *endpoint)
{
    memset(h, 0, sizeof(*h));
    snprintf(h->host, sizeof(h->host), "localhost");
    snprintf(h->name, sizeof(h->name), "%s", name);
    snprintf(h->endpoint, sizeof(h->endpoint), "%s", endpoint);
}

static int t_count_metrics(const kt_store_row_t *row, void *userdata)
{
    unsigned *n = userdata;
    *n += row->metrics_json != NULL && row->metrics_json[0] == '{';
    return 0;
}

/* Every cell done exactly once, and the store agrees and kept the figures
 * (kt_metrics) of each sidecar a worker sent. */
static void t_check_exactly_once(t_env_t *e, const char *want_verdict)
{
    unsigned with_metrics = 0, from_workers = 0;
    assert_int_equal(kt_store_run_rows(e->store, e->run.run_id, t_count_metrics, &with_metrics), 0);
    for (unsigned i = 0; i < e->run.n_cells; i++)
        from_workers += e->assigned[i] > 0; /* else the coordinator's own error */
    assert_int_equal(with_metrics, from_workers);
    for (unsigned i = 0; i < e->run.n_cells; i++) {
        assert_int_equal(e->done[i], 1);
        if (want_verdict)
            assert_string_equal(e->verdict[i], want_verdict);
        char v[16];
        assert_int_equal(kt_store_cell_verdict(e->store, e->run.run_id,
                                               e->run.cells[i].spec.cell_id, v, sizeof(v)),
                         0);
        assert_string_equal(v, e->verdict[i]);
    }
}

/* ---- real workers ---- */

typedef struct t_worker {
    char endpoint[128];
    char cache[256];
    kt_serve_config_t cfg;
    zactor_t *actor;
} t_worker_t;

static void t_worker_start(t_worker_t *w, const char *id, kt_executor_t ex, unsigned vcpus)
{
    memset(w, 0, sizeof(*w));
    snprintf(w->endpoint, sizeof(w->endpoint), "inproc://test-dispatch-%s-%d-%u", id,
             (int)getpid(), ++s_seq);
    snprintf(w->cache, sizeof(w->cache), "%s/cache-%s-%u", s_dir, id, s_seq);
    w->cfg.bind = w->endpoint;
    w->cfg.worker_id = id;
    w->cfg.cache_dir = w->cache;
    w->cfg.executor = ex;
    w->cfg.accel_name = "tcg";
    w->cfg.capacity_vcpus = vcpus;
    w->cfg.capacity_memory_mib = 8192;
    w->cfg.heartbeat_ms = T_HB_MS;
    w->cfg.lost_after_ms = T_LOST_MS;
    w->actor = kt_serve_actor_new(&w->cfg);
    assert_non_null(w->actor);
}

static void test_all_cells_once(void **state)
{
    t_env_t e;
    t_env_init(&e, 12, NULL);
    t_worker_t a, b;
    /* Each cell holds its slot 300 ms: worker a alone would need 1.5 s for
     * the first ten, so b, which opens its session within milliseconds,
     * gets cells too (with cells that end at once, a could take them all
     * before b's session opened on a loaded machine). */
    t_worker_start(&a, "wa", kt_executor_sleep(300), 8);
    t_worker_start(&b, "wb", kt_executor_sleep(300), 4);
    kt_host_t hosts[2];
    t_host(&hosts[0], "a", a.endpoint);
    t_host(&hosts[1], "b", b.endpoint);
    kt_dispatch_config_t cfg = t_config(&e, hosts, 2);
    kt_dispatch_summary_t sum;
    /* First all but cells 3 and 7 (as a run that is resumed later)... */
    bool todo[12];
    for (unsigned i = 0; i < 12; i++)
        todo[i] = i != 3 && i != 7;
    assert_int_equal(kt_dispatch_run(&cfg, &e.run, todo, &sum), 0);
    assert_int_equal(sum.done, 10);
    assert_int_equal(sum.pass, 10);
    assert_int_equal(sum.fail + sum.error + sum.skip, 0);
    assert_int_equal(sum.stale, 0);
    assert_int_equal(sum.requeued, 0);
    assert_int_equal(sum.workers_used, 2);
    for (unsigned i = 0; i < 12; i++) {
        assert_int_equal(e.done[i], todo[i] ? 1 : 0);
        assert_int_equal(e.assigned[i], todo[i] ? 1 : 0);
    }
    char v[16];
    assert_int_equal(kt_store_cell_verdict(e.store, e.run.run_id, e.run.cells[3].spec.cell_id, v,
                                           sizeof(v)),
                     -ENOENT);
    /* ... then the other two. (A pause first: a RESULT_ACK still in flight
     * when the next session opens gets its result re-offered, and stale.) */
    zclock_sleep(200);
    for (unsigned i = 0; i < 12; i++)
        todo[i] = !todo[i];
    assert_int_equal(kt_dispatch_run(&cfg, &e.run, todo, &sum), 0);
    assert_int_equal(sum.done, 2);
    t_check_exactly_once(&e, "pass");
    for (unsigned i = 0; i < 12; i++)
        assert_int_equal(e.assigned[i], 1);
    unsigned stale = 99;
    assert_int_equal(kt_store_stale_count(e.store, e.run.run_id, &stale), 0);
    assert_int_equal(stale, 0);
    /* Both workers took cells. */
    unsigned on_a = 0;
    for (unsigned i = 0; i < 12; i++)
        on_a += strcmp(e.worker[i], "wa") == 0;
    assert_true(on_a > 0 && on_a < 12);
    zactor_destroy(&a.actor);
    zactor_destroy(&b.actor);
    t_env_free(&e);
}

static void test_worker_destroyed_mid_run(void **state)
{
    t_env_t e;
    t_env_init(&e, 6, NULL);
    t_worker_t a, b;
    atomic_store(&s_hold_release, false);
    t_worker_start(&a, "wa", kt_executor_sleep(100), 4);
    t_worker_start(&b, "wb", (kt_executor_t){.name = "hold", .run = t_hold_run}, 4);
    kt_host_t hosts[2];
    t_host(&hosts[0], "a", a.endpoint);
    t_host(&hosts[1], "b", b.endpoint);
    e.kill_actor = &b.actor;
    e.kill_worker = "wb";
    e.kill_at = 1;
    e.killed_cell = -1;
    kt_dispatch_config_t cfg = t_config(&e, hosts, 2);
    kt_dispatch_summary_t sum;
    assert_int_equal(kt_dispatch_run(&cfg, &e.run, NULL, &sum), 0);
    assert_int_equal(sum.done, 6);
    assert_int_equal(sum.pass, 6);
    t_check_exactly_once(&e, "pass");
    /* b held a cell when it went: that one was requeued and ran on a. */
    assert_true(e.killed_cell >= 0);
    assert_int_equal(sum.requeued, 1);
    assert_int_equal(e.assigned[e.killed_cell], 2);
    for (unsigned i = 0; i < 6; i++)
        assert_string_equal(e.worker[i], "wa");
    assert_true(t_notes_have(&e, "lost"));
    unsigned last = 0;
    assert_int_equal(kt_store_last_attempt(e.store, e.run.run_id,
                                           e.run.cells[e.killed_cell].spec.cell_id, &last),
                     0);
    assert_int_equal(last, 2);
    atomic_store(&s_hold_release, true);
    assert_true(e.killer_started);
    pthread_join(e.killer, NULL);
    assert_null(b.actor);
    zactor_destroy(&a.actor);
    t_env_free(&e);
}

/* ---- a fake worker, by hand ---- */

enum t_fake_mode {
    FAKE_SILENT, /* every session: HELLO, take one cell, then say nothing */
    FAKE_LATE,   /* session 1: take a cell, go silent; session 2: re-offer its result late */
    FAKE_GARBAGE, /* garbage first, then an honest worker that passes every cell at once */
};

typedef struct t_fake {
    enum t_fake_mode mode;
    char endpoint[128];
    uint32_t free_vcpus;
    atomic_uint sessions, assigns, acks;
    atomic_bool late_acked;
    char cell_id[KT_SHA_HEX];
    uint32_t attempt;
    char run_id[40];
} t_fake_t;

/* Frames straight onto the ROUTER: [rid, parts...]. */
static void t_fake_raw(zsock_t *router, zframe_t *rid, unsigned n, const char *const *parts)
{
    void *h = zsock_resolve(router);
    zmq_send(h, zframe_data(rid), zframe_size(rid), ZMQ_SNDMORE | ZMQ_DONTWAIT);
    for (unsigned i = 0; i < n; i++)
        zmq_send(h, parts[i], strlen(parts[i]), i + 1 < n ? ZMQ_SNDMORE : 0);
}

static void t_fake_garbage(zsock_t *router, zframe_t *rid)
{
    static const char *const one[] = {"hello?"};
    static const char *const badsig[] = {"KTSTR9", "HELLO", "\x80"};
    static const char *const badtype[] = {KT_PROTO_SIGNATURE, "HOWDY", "\x80"};
    static const char *const badbody[] = {KT_PROTO_SIGNATURE, "HELLO", "\xc1\xc1\xc1"};
    static const char *const five[] = {KT_PROTO_SIGNATURE, "HELLO", "a", "b", "c"};
    t_fake_raw(router, rid, 1, one);
    t_fake_raw(router, rid, 3, badsig);
    t_fake_raw(router, rid, 3, badtype);
    t_fake_raw(router, rid, 3, badbody);
    t_fake_raw(router, rid, 5, five);
}

/* No cmocka asserts in the fake's thread: a send to a session the
 * coordinator has replaced fails, and that is fine. */
static void t_fake_send(zsock_t *router, zframe_t *rid, kt_msg_t *m)
{
    (void)kt_wire_send(router, rid, m);
}

static void t_fake_actor(zsock_t *pipe, void *args)
{
    t_fake_t *f = args;
    zsock_t *router = zsock_new(ZMQ_ROUTER);
    kt_wire_socket_setup(router);
    if (zsock_bind(router, "%s", f->endpoint) != 0)
        abort();
    zsock_signal(pipe, 0);
    zpoller_t *p = zpoller_new(pipe, router, NULL);
    kt_msg_t *m = malloc(sizeof(*m)), *out = malloc(sizeof(*out));
    zframe_t *live = NULL; /* the session kept alive with heartbeats */
    int64_t next_hb = 0;
    uint64_t seq = 0;
    for (;;) {
        void *which = zpoller_wait(p, 10);
        if (which == pipe)
            break;
        if (live && zclock_mono() >= next_hb) {
            kt_msg_init(out, KT_MSG_HEARTBEAT);
            out->u.heartbeat.seq = ++seq;
            /* The honest fake is always free again at once; the late one
             * takes nothing more. */
            out->u.heartbeat.free_vcpus = f->mode == FAKE_GARBAGE ? f->free_vcpus : 0;
            out->u.heartbeat.free_memory_mib = 4096;
            t_fake_send(router, live, out);
            next_hb = zclock_mono() + T_HB_MS;
        }
        if (which != router)
            continue;
        zframe_t *rid = NULL;
        char why[256];
        if (kt_wire_recv(router, &rid, m, why, sizeof(why)) < 0) {
            zframe_destroy(&rid);
            continue;
        }
        unsigned session = atomic_load(&f->sessions);
        switch (m->type) {
        case KT_MSG_OPEN:
            session = atomic_fetch_add(&f->sessions, 1) + 1;
            if (f->mode == FAKE_GARBAGE)
                t_fake_garbage(router, rid);
            kt_msg_init(out, KT_MSG_HELLO);
            out->u.hello.version = KT_PROTO_VERSION;
            snprintf(out->u.hello.worker_id, sizeof(out->u.hello.worker_id), "fake");
            out->u.hello.instance = 42;
            snprintf(out->u.hello.arch, sizeof(out->u.hello.arch), "x86_64");
            out->u.hello.host_cpus = 2;
            out->u.hello.host_llcs = 1;
            out->u.hello.memory_mib = 4096;
            snprintf(out->u.hello.accel, sizeof(out->u.hello.accel), "tcg");
            out->u.hello.max_vcpus = 4;
            out->u.hello.free_vcpus = f->mode == FAKE_LATE && session > 1 ? 0 : f->free_vcpus;
            out->u.hello.free_memory_mib = 4096;
            out->u.hello.pending_results = f->mode == FAKE_LATE && session > 1;
            t_fake_send(router, rid, out);
            break;
        case KT_MSG_WELCOME:
            if (f->mode == FAKE_GARBAGE && !live) {
                live = zframe_dup(rid);
                next_hb = 0;
            }
            if (f->mode == FAKE_LATE && session > 1 && f->cell_id[0] && !live) {
                kt_msg_init(out, KT_MSG_RESULT);
                snprintf(out->u.result.cell_id, sizeof(out->u.result.cell_id), "%s",
                         f->cell_id);
                out->u.result.attempt = f->attempt;
                snprintf(out->u.result.verdict, sizeof(out->u.result.verdict), "fail");
                snprintf(out->u.result.reason, sizeof(out->u.result.reason), "late");
                char sidecar[200];
                snprintf(sidecar, sizeof(sidecar), "{\"run_id\":\"%s\",\"executor\":\"fake\"}",
                         f->run_id);
                out->u.result.sidecar = sidecar;
                out->u.result.sidecar_len = strlen(sidecar);
                t_fake_send(router, rid, out);
                live = zframe_dup(rid);
                next_hb = 0;
            }
            break;
        case KT_MSG_ASSIGN:
            atomic_fetch_add(&f->assigns, 1);
            if (f->mode == FAKE_SILENT || !f->cell_id[0]) {
                snprintf(f->cell_id, sizeof(f->cell_id), "%s", m->u.assign.spec.cell_id);
                snprintf(f->run_id, sizeof(f->run_id), "%s", m->u.assign.spec.run_id);
                f->attempt = m->u.assign.attempt;
            }
            kt_msg_init(out, KT_MSG_ACCEPT);
            snprintf(out->u.accept.cell_id, sizeof(out->u.accept.cell_id), "%s",
                     m->u.assign.spec.cell_id);
            out->u.accept.attempt = m->u.assign.attempt;
            out->u.accept.ok = true;
            t_fake_send(router, rid, out);
            if (f->mode == FAKE_GARBAGE) {
                /* Garbage between the messages of a live session too. */
                t_fake_garbage(router, rid);
                kt_msg_init(out, KT_MSG_RESULT);
                snprintf(out->u.result.cell_id, sizeof(out->u.result.cell_id), "%s",
                         m->u.assign.spec.cell_id);
                out->u.result.attempt = m->u.assign.attempt;
                snprintf(out->u.result.verdict, sizeof(out->u.result.verdict), "pass");
                static char sidecar[] = "{\"executor\":\"fake\"}";
                out->u.result.sidecar = sidecar;
                out->u.result.sidecar_len = strlen(sidecar);
                t_fake_send(router, rid, out);
            }
            break;
        case KT_MSG_RESULT_ACK:
            atomic_fetch_add(&f->acks, 1);
            if (strcmp(m->u.ack.cell_id, f->cell_id) == 0 && m->u.ack.attempt == f->attempt)
                atomic_store(&f->late_acked, true);
            break;
        default:
            break;
        }
        kt_msg_clear(m);
        zframe_destroy(&rid);
    }
    zframe_destroy(&live);
    free(m);
    free(out);
    zpoller_destroy(&p);
    zsock_destroy(&router);
}

static zactor_t *t_fake_start(t_fake_t *f, enum t_fake_mode mode, uint32_t free_vcpus)
{
    memset(f, 0, sizeof(*f));
    f->mode = mode;
    f->free_vcpus = free_vcpus;
    snprintf(f->endpoint, sizeof(f->endpoint), "inproc://test-dispatch-fake-%d-%u", (int)getpid(),
             ++s_seq);
    zactor_t *a = zactor_new(t_fake_actor, f);
    assert_non_null(a);
    return a;
}

static void test_late_result_is_stale(void **state)
{
    t_env_t e;
    t_env_init(&e, 4, NULL);
    t_fake_t f;
    zactor_t *fake = t_fake_start(&f, FAKE_LATE, 4);
    t_worker_t a;
    t_worker_start(&a, "wa", kt_executor_sleep(300), 8);
    kt_host_t hosts[2];
    t_host(&hosts[0], "fake", f.endpoint);
    t_host(&hosts[1], "a", a.endpoint);
    kt_dispatch_config_t cfg = t_config(&e, hosts, 2);
    kt_dispatch_summary_t sum;
    assert_int_equal(kt_dispatch_run(&cfg, &e.run, NULL, &sum), 0);
    /* The fake took one cell, went silent, was declared lost; the cell ran
     * again on a; the fake's late result (a "fail") counted for nothing. */
    assert_true(f.cell_id[0]);
    assert_true(atomic_load(&f.sessions) >= 2);
    assert_int_equal(sum.done, 4);
    assert_int_equal(sum.pass, 4);
    assert_int_equal(sum.fail, 0);
    assert_true(sum.requeued >= 1);
    t_check_exactly_once(&e, "pass");
    for (unsigned i = 0; i < 4; i++)
        assert_string_equal(e.worker[i], "wa");
    /* Give the fake's result time to arrive if the run ended first: it
     * must still end up as stale in the store. */
    if (sum.stale == 0) {
        print_message("late result arrived after the run ended; not checkable here\n");
        fail();
    }
    assert_int_equal(sum.stale, 1);
    unsigned stale = 0;
    assert_int_equal(kt_store_stale_count(e.store, e.run.run_id, &stale), 0);
    assert_int_equal(stale, 1);
    zclock_sleep(100);
    assert_true(atomic_load(&f.late_acked));
    zactor_destroy(&fake);
    zactor_destroy(&a.actor);
    t_env_free(&e);
}

static void test_max_attempts_error(void **state)
{
    t_env_t e;
    t_env_init(&e, 1, NULL);
    t_fake_t f;
    zactor_t *fake = t_fake_start(&f, FAKE_SILENT, 4);
    kt_host_t host;
    t_host(&host, "fake", f.endpoint);
    kt_dispatch_config_t cfg = t_config(&e, &host, 1);
    kt_dispatch_summary_t sum;
    assert_int_equal(kt_dispatch_run(&cfg, &e.run, NULL, &sum), 0);
    assert_int_equal(sum.done, 1);
    assert_int_equal(sum.error, 1);
    assert_int_equal(sum.requeued, 2);
    assert_int_equal(atomic_load(&f.assigns), 3);
    assert_int_equal(e.done[0], 1);
    assert_string_equal(e.verdict[0], "error");
    assert_string_equal(e.worker[0], "coordinator");
    assert_non_null(strstr(e.reason[0], "lost 3 times"));
    assert_non_null(strstr(e.reason[0], "silent"));
    char v[16];
    assert_int_equal(kt_store_cell_verdict(e.store, e.run.run_id, e.run.cells[0].spec.cell_id, v,
                                           sizeof(v)),
                     0);
    assert_string_equal(v, "error");
    unsigned last = 0;
    assert_int_equal(kt_store_last_attempt(e.store, e.run.run_id, e.run.cells[0].spec.cell_id,
                                           &last),
                     0);
    assert_int_equal(last, 4); /* three lost attempts, then the coordinator's verdict */
    zactor_destroy(&fake);
    t_env_free(&e);
}

static void test_oversize_cell_error(void **state)
{
    kt_topology_t topos[3];
    assert_int_equal(kt_topology_parse("1,1,2,1", &topos[0]), 0); /* 2 vCPUs */
    topos[1] = kt_topology_preset_find("tiny-1llc")->topo;         /* 4 vCPUs */
    assert_int_equal(kt_topology_parse("1,1,2,1", &topos[2]), 0);
    t_env_t e;
    t_env_init(&e, 3, topos);
    t_worker_t a;
    t_worker_start(&a, "small", kt_executor_null(), 2);
    kt_host_t host;
    t_host(&host, "small", a.endpoint);
    kt_dispatch_config_t cfg = t_config(&e, &host, 1);
    kt_dispatch_summary_t sum;
    assert_int_equal(kt_dispatch_run(&cfg, &e.run, NULL, &sum), 0);
    assert_int_equal(sum.done, 3);
    assert_int_equal(sum.pass, 2);
    assert_int_equal(sum.error, 1);
    assert_string_equal(e.verdict[1], "error");
    assert_non_null(strstr(e.reason[1], "needs 4 vCPUs"));
    assert_int_equal(e.assigned[1], 0);
    assert_int_equal(e.assigned[0], 1);
    t_check_exactly_once(&e, NULL);
    zactor_destroy(&a.actor);
    t_env_free(&e);
}

static void test_curve_refused(void **state)
{
    t_env_t e;
    t_env_init(&e, 2, NULL);
    char wsec[300], csec[300], allow[300], cpub[400];
    zcert_t *wc = zcert_new(), *cc = zcert_new(), *other = zcert_new();
    snprintf(wsec, sizeof(wsec), "%s/worker-%u.key", s_dir, ++s_seq);
    snprintf(csec, sizeof(csec), "%s/coord-%u.key", s_dir, s_seq);
    snprintf(allow, sizeof(allow), "%s/allow-%u", s_dir, s_seq);
    assert_int_equal(zcert_save(wc, wsec), 0);
    assert_int_equal(zcert_save(cc, csec), 0);
    assert_int_equal(mkdir(allow, 0700), 0);
    snprintf(cpub, sizeof(cpub), "%s/someone-else.key", allow);
    assert_int_equal(zcert_save_public(other, cpub), 0);

    t_worker_t w;
    memset(&w, 0, sizeof(w));
    snprintf(w.endpoint, sizeof(w.endpoint), "ipc://%s/curve-%u.ipc", s_dir, s_seq);
    snprintf(w.cache, sizeof(w.cache), "%s/cache-curve-%u", s_dir, s_seq);
    w.cfg.bind = w.endpoint;
    w.cfg.worker_id = "locked";
    w.cfg.cache_dir = w.cache;
    w.cfg.executor = kt_executor_null();
    w.cfg.accel_name = "tcg";
    w.cfg.capacity_vcpus = 8;
    w.cfg.capacity_memory_mib = 8192;
    w.cfg.heartbeat_ms = T_HB_MS;
    w.cfg.lost_after_ms = T_LOST_MS;
    w.cfg.curve_secret = wsec;
    w.cfg.allow_dir = allow;
    w.actor = kt_serve_actor_new(&w.cfg);
    assert_non_null(w.actor);

    kt_host_t host;
    t_host(&host, "locked", w.endpoint);
    snprintf(host.curve_public, sizeof(host.curve_public), "%s", zcert_public_txt(wc));
    kt_dispatch_config_t cfg = t_config(&e, &host, 1);
    cfg.curve_secret = csec;
    kt_dispatch_summary_t sum;
    int64_t t0 = zclock_mono();
    int r = kt_dispatch_run(&cfg, &e.run, NULL, &sum);
    assert_int_equal(r, -EACCES);
    assert_true(zclock_mono() - t0 < 4000);
    assert_int_equal(sum.done, 0);
    assert_int_equal(e.assigned[0] + e.assigned[1], 0);
    assert_non_null(strstr(sum.why, "refused our key"));
    assert_non_null(strstr(sum.why, "locked"));

    /* With our key allowed, the same worker runs the cells. */
    snprintf(cpub, sizeof(cpub), "%s/coordinator.key", allow);
    assert_int_equal(zcert_save_public(cc, cpub), 0);
    zactor_destroy(&w.actor);
    w.actor = kt_serve_actor_new(&w.cfg);
    assert_non_null(w.actor);
    assert_int_equal(kt_dispatch_run(&cfg, &e.run, NULL, &sum), 0);
    assert_int_equal(sum.pass, 2);
    t_check_exactly_once(&e, "pass");
    zactor_destroy(&w.actor);
    zcert_destroy(&wc);
    zcert_destroy(&cc);
    zcert_destroy(&other);
    t_env_free(&e);
}

static void test_garbage_survived(void **state)
{
    t_env_t e;
    t_env_init(&e, 3, NULL);
    t_fake_t f;
    zactor_t *fake = t_fake_start(&f, FAKE_GARBAGE, 4);
    kt_host_t host;
    t_host(&host, "noisy", f.endpoint);
    kt_dispatch_config_t cfg = t_config(&e, &host, 1);
    kt_dispatch_summary_t sum;
    assert_int_equal(kt_dispatch_run(&cfg, &e.run, NULL, &sum), 0);
    assert_int_equal(sum.pass, 3);
    t_check_exactly_once(&e, "pass");
    /* Each bad message was read and named, none taken for a beat. */
    bool named = false;
    for (unsigned i = 0; i < 8 && i < e.notes; i++)
        named |= strstr(e.last_notes[i], "noisy") && strstr(e.last_notes[i], "cannot read");
    assert_true(named);
    assert_true(e.notes >= 3);
    zactor_destroy(&fake);
    t_env_free(&e);
}

static void test_no_worker(void **state)
{
    t_env_t e;
    t_env_init(&e, 1, NULL);
    kt_host_t host;
    char ep[300];
    snprintf(ep, sizeof(ep), "ipc://%s/nobody-%u.ipc", s_dir, ++s_seq);
    t_host(&host, "nobody", ep);
    kt_dispatch_config_t cfg = t_config(&e, &host, 1);
    cfg.no_worker_timeout_ms = 600;
    kt_dispatch_summary_t sum;
    assert_int_equal(kt_dispatch_run(&cfg, &e.run, NULL, &sum), -EHOSTUNREACH);
    assert_int_equal(sum.done, 0);
    assert_int_equal(e.done[0], 0);
    assert_non_null(strstr(sum.why, "nobody"));
    t_env_free(&e);
}

/* ---- the report: sidecars, JUnit, exit status ---- */

static void test_report_files(void **state)
{
    t_env_t e;
    t_env_init(&e, 4, NULL);
    snprintf(e.run.cells[0].spec.kernel_commit, sizeof(e.run.cells[0].spec.kernel_commit),
             "3f2a9c1-dirty");
    char results[128];
    snprintf(results, sizeof(results), "%s/results-%u", s_dir, ++s_seq);
    char *said = NULL;
    size_t said_len = 0;
    FILE *out = open_memstream(&said, &said_len);
    assert_non_null(out);
    kt_report_config_t rc = {.results_dir = results, .run = &e.run, .out = out,
                             .progress = KT_REPORT_PROGRESS_PLAIN};
    kt_report_t *r = NULL;
    assert_int_equal(kt_report_new(&rc, &r), 0);
    assert_int_equal(kt_report_exit_code(r), 2); /* nothing has a verdict yet */

    /* A worker's result: its sidecar keeps its fields and gains ours; the
     * verdict is the accepted one even if the JSON said otherwise. */
    const char *ws = "{\"executor\":\"vm\",\"verdict\":\"fail\",\"timings\":{\"total_ms\":4200},"
                     "\"console_log\":\"/w/c.log\",\"checks\":[1,2],"
                     "\"boot_retries\":[{\"boot\":1,\"cause\":\"qemu was killed by signal 11\"}]}";
    kt_dispatch_result_t res = {.cell = &e.run.cells[0], .index = 0, .attempt = 2,
                                .worker = "w1", .verdict = "pass", .reason = "",
                                .sidecar = ws, .sidecar_len = strlen(ws),
                                .console = "line 1\nline 2\n", .console_len = 14,
                                .queue_ms = 77, .run_ms = 4300};
    char path[4096];
    assert_int_equal(kt_report_write_result(r, &res, path, sizeof(path)), 0);
    char want_dir[512];
    snprintf(want_dir, sizeof(want_dir), "%s/%s/6.12.117-3f2a9c1-dirty/", results, e.run.run_id);
    assert_memory_equal(path, want_dir, strlen(want_dir));
    json_error_t jerr;
    json_t *doc = json_load_file(path, 0, &jerr);
    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(doc, "run_id")), e.run.run_id);
    assert_string_equal(json_string_value(json_object_get(doc, "worker")), "w1");
    assert_string_equal(json_string_value(json_object_get(doc, "verdict")), "pass");
    assert_true(json_is_true(json_object_get(doc, "passed")));
    assert_int_equal(json_integer_value(json_object_get(doc, "attempt")), 2);
    assert_string_equal(json_string_value(json_object_get(doc, "kernel_commit")), "3f2a9c1-dirty");
    assert_string_equal(json_string_value(json_object_get(doc, "cell_name")),
                        e.run.cells[0].spec.cell_name);
    assert_string_equal(json_string_value(json_object_get(doc, "executor")), "vm");
    assert_int_equal(json_array_size(json_object_get(doc, "checks")), 2);
    json_t *t = json_object_get(doc, "timings");
    assert_int_equal(json_integer_value(json_object_get(t, "queue_ms")), 77);
    assert_int_equal(json_integer_value(json_object_get(t, "total_ms")), 4200);
    assert_string_equal(json_string_value(json_object_get(doc, "worker_console_log")), "/w/c.log");
    const char *clog = json_string_value(json_object_get(doc, "console_log"));
    assert_non_null(clog);
    FILE *cf = fopen(clog, "re");
    assert_non_null(cf);
    char line[64] = "";
    assert_non_null(fgets(line, sizeof(line), cf));
    assert_string_equal(line, "line 1\n");
    fclose(cf);
    json_decref(doc);
    kt_report_cell_done(r, &e.run.cells[0], 2, "w1", "pass", "");
    /* Its VM needed a second boot: the progress line says so. */
    fflush(out);
    assert_non_null(strstr(said, "(w1, attempt 2, 2 boots, 4.2s)"));

    /* The coordinator's own verdict, and a fail and a skip with awkward reasons. */
    kt_dispatch_result_t lost = {.cell = &e.run.cells[1], .index = 1, .attempt = 4,
                                 .worker = "coordinator", .verdict = "error",
                                 .reason = "lost 3 times: <a & b>", .from_coordinator = true};
    assert_int_equal(kt_report_write_result(r, &lost, path, sizeof(path)), 0);
    doc = json_load_file(path, 0, &jerr);
    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(doc, "verdict_by")), "coordinator");
    assert_string_equal(json_string_value(json_object_get(doc, "scenario")), "steady");
    assert_true(json_is_null(json_object_get(doc, "kernel_commit")));
    json_decref(doc);
    kt_report_cell_done(r, &e.run.cells[1], 4, "coordinator", "error", lost.reason);
    assert_int_equal(kt_report_exit_code(r), 2);
    kt_report_cell_done(r, &e.run.cells[2], 1, "w2", "fail",
                        "check \"spread\" failed:\x01 \xff\xfe 15% > 10%");
    kt_report_cell_done(r, &e.run.cells[3], 1, "w2", "skip", "needs SMT");
    assert_int_equal(kt_report_exit_code(r), 1); /* a fail wins over an error */
    unsigned p, f, er, sk, m;
    kt_report_counts(r, &p, &f, &er, &sk, &m);
    assert_int_equal(p, 1);
    assert_int_equal(f, 1);
    assert_int_equal(er, 1);
    assert_int_equal(sk, 1);
    assert_int_equal(m, 0);

    char junit[256];
    snprintf(junit, sizeof(junit), "%s/junit.xml", results);
    assert_int_equal(kt_report_junit(r, junit), 0);
    FILE *jf = fopen(junit, "re");
    assert_non_null(jf);
    char buf[16384];
    size_t n = fread(buf, 1, sizeof(buf) - 1, jf);
    buf[n] = '\0';
    fclose(jf);
    assert_non_null(strstr(buf, "tests=\"4\" failures=\"1\" errors=\"1\" skipped=\"1\""));
    assert_non_null(strstr(buf, "<failure type=\"fail\" message=\"check &quot;spread&quot; "
                                "failed:? ?? 15% &gt; 10%\""));
    assert_non_null(strstr(buf, "message=\"lost 3 times: &lt;a &amp; b&gt;\""));
    assert_non_null(strstr(buf, "<skipped message=\"needs SMT\"/>"));
    for (const char *q = buf; *q; q++)
        assert_true((unsigned char)*q >= 0x20 || *q == '\n');

    /* The HTML page: counts, a square per cell linked to its sidecar by a
     * path relative to the run folder, the cells that did not pass with
     * their reasons escaped, and only printable text. */
    char html[256];
    snprintf(html, sizeof(html), "%s/%s/report.html", results, e.run.run_id);
    assert_int_equal(kt_report_html(r, html), 0);
    FILE *hf = fopen(html, "re");
    assert_non_null(hf);
    n = fread(buf, 1, sizeof(buf) - 1, hf);
    buf[n] = '\0';
    fclose(hf);
    assert_non_null(strstr(buf, "4 cells: <span class=\"pass\">1 pass</span>"));
    assert_non_null(strstr(buf, "<td class=\"pass\"><a class=\"v\" href=\"6.12.117-3f2a9c1-dirty/"));
    assert_non_null(strstr(buf, ">P</a>"));
    assert_non_null(strstr(buf, ">F</a>"));
    assert_non_null(strstr(buf, ">E</a>"));
    assert_non_null(strstr(buf, "lost 3 times: &lt;a &amp; b&gt;"));
    assert_non_null(strstr(buf, "check &quot;spread&quot; failed:? ?? 15% &gt; 10%"));
    assert_null(strstr(buf, results)); /* links are relative */
    assert_null(strstr(buf, "every cell passed"));
    for (const char *q = buf; *q; q++)
        assert_true((unsigned char)*q >= 0x20 || *q == '\n');

    assert_int_equal(kt_report_write_run_json(r, NULL, "done", NULL, NULL), 0);
    char rj[512];
    snprintf(rj, sizeof(rj), "%s/%s/run.json", results, e.run.run_id);
    doc = json_load_file(rj, 0, &jerr);
    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(doc, "status")), "done");
    assert_int_equal(json_array_size(json_object_get(doc, "cells")), 4);
    assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(doc,
                                                                                         "cells"),
                                                                         2),
                                                          "verdict")),
                        "fail");
    json_t *cells = json_object_get(doc, "cells");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(cells, 0), "boots")), 2);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(cells, 3), "boots")), 1);
    json_decref(doc);

    /* The summary counts the cells booted again. */
    kt_report_summary(r, NULL);
    fflush(out);
    assert_non_null(strstr(said, "booted again: 1 cell(s) whose VM did not reach ktstr-init"));
    kt_report_free(&r);
    fclose(out);
    free(said);
    t_env_free(&e);
}

static void test_xml_escape(void **state)
{
    char *x = kt_report_xml_escape("a<b>&\"c'\td\ne\x01\x7f \xc3\xa9 \xc3 \xed\xa0\x80 \xf0\x9f\x98\x80 "
                                   "\xef\xbf\xbf");
    assert_non_null(x);
    assert_string_equal(x, "a&lt;b&gt;&amp;&quot;c&apos;&#9;d&#10;e?? \xc3\xa9 ? ??? "
                           "\xf0\x9f\x98\x80 ???");
    free(x);
}

static int t_setup(void **state)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(s_dir, sizeof(s_dir), "%s/test-dispatch-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(s_dir))
        return -1;
    return 0;
}

static int t_teardown(void **state)
{
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", s_dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all_cells_once),
        cmocka_unit_test(test_worker_destroyed_mid_run),
        cmocka_unit_test(test_late_result_is_stale),
        cmocka_unit_test(test_max_attempts_error),
        cmocka_unit_test(test_oversize_cell_error),
        cmocka_unit_test(test_curve_refused),
        cmocka_unit_test(test_garbage_survived),
        cmocka_unit_test(test_no_worker),
        cmocka_unit_test(test_report_files),
        cmocka_unit_test(test_xml_escape),
    };
    return cmocka_run_group_tests(tests, t_setup, t_teardown);
}
