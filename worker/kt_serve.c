/* ktstr-worker serve: one ROUTER socket, a session per coordinator (keyed by
 * the peer's routing id), cells run by a pool of runner threads, finished
 * results journaled before they are sent and forgotten only on RESULT_ACK.
 *
 * Threads: everything protocol-side happens on the actor's thread (a zloop:
 * the actor pipe, the ROUTER, the runners' completion eventfd and one timer).
 * A runner thread only calls the executor and hands the finished cell back
 * through a mutex-protected queue plus an eventfd; it never touches a socket.
 *
 * Pipe commands besides $TERM and DRAIN: "ENDPOINT" (replies the bound
 * endpoint, with the real port when the bind asked for ":*") and "STATUS"
 * (replies "sessions=N cells=N running=N fetching=N journal=N free_vcpus=N
 * free_memory_mib=N draining=0|1 garbage=N"). When a drain has finished the
 * actor sends "DRAINED" and waits for $TERM. */
#include "kt_serve.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "kt_artifacts.h"
#include "kt_cleanup.h"
#include "kt_hash.h"
#include "kt_journal.h"
#include "kt_kvm.h"
#include "kt_log.h"
#include "kt_sidecar.h"
#include "kt_wire.h"

#define S_MAX_SESSIONS 64
#define S_MAX_RUNS 16              /* runs remembered per session */
#define S_MAX_CELLS 4096           /* accepted and not finished, all sessions */
#define S_BATCH 256                /* messages handled per wakeup of the ROUTER */
#define S_FETCH_WINDOW 8           /* chunks in flight per transfer */
#define S_FETCH_RETRIES 3
#define S_OFFER_WINDOW 64          /* journaled results offered and not yet acked */
#define S_RUNNER_IDLE_MS 30000     /* an idle runner thread exits after this */
#define S_DRAIN_ACK_BOUND_MS 60000 /* drained: how long to wait for the last acks */
#define S_GARBAGE_LOG_PER_SEC 10

/* PROGRESS phases the worker reports. */
#define S_PHASE_FETCHING "fetching"
#define S_PHASE_RUNNING "running"

typedef struct s_server s_server_t;

typedef struct s_session {
    uint64_t serial;                /* ours, never reused */
    zframe_t *rid;
    char key[KT_ID_MAX * 2 + 520];  /* hex of the routing id */
    char peer[17];                  /* its first 16 hex digits, for logs */
    char coordinator_id[KT_ID_MAX];
    uint64_t session;               /* the coordinator's number */
    bool welcomed;
    uint64_t last_rx_ms, last_hb_ms, hb_seq;
    unsigned n_offered;             /* results sent and not acked */
    uint32_t hb_ms, lost_ms;        /* ours, merged with the WELCOME's */
    uint64_t scanned_gen;           /* offer_gen when the journal was last scanned for it */
    bool window_full;               /* that scan stopped at S_OFFER_WINDOW */
    unsigned n_runs;
    char runs[S_MAX_RUNS][40];      /* runs this session assigned or was offered */
} s_session_t;

enum s_cell_state {
    S_CELL_FETCHING = 0,            /* waiting for artifacts */
    S_CELL_RUNNING,                 /* handed to the runner pool */
};

typedef struct s_cell {
    kt_cellspec_t spec;
    uint32_t attempt;
    char key[160];
    char coordinator_id[KT_ID_MAX];
    uint64_t session_serial;        /* who assigned it (may be gone) */
    unsigned vcpus;
    uint64_t memory_mib;
    enum s_cell_state state;
    atomic_bool cancel;
    bool cancel_requested;
    uint64_t assigned_ms, fetched_ms, started_ms, finished_ms, lease_deadline_ms;
    bool lease_warned;
    unsigned fetch_failures;
    char kernel_path[PATH_MAX];
    char sched_path[PATH_MAX];
    /* Filled by the runner. */
    int rc;
    kt_exec_result_t res;
    struct s_cell *next;            /* pool queues */
} s_cell_t;

typedef struct s_fetch {
    char sha[KT_SHA_HEX];
    kt_artifact_in_t *in;
    uint64_t session_serial;
    uint64_t requested_to;          /* bytes asked for so far */
    unsigned in_flight;             /* chunks asked and not arrived */
    uint64_t last_rx_ms;
    uint64_t started_ms;
    unsigned retries;
} s_fetch_t;

/* Runner threads and the queues between them and the loop. */
typedef struct s_pool {
    pthread_mutex_t lock;
    pthread_cond_t work;
    s_cell_t *jobs_head, *jobs_tail;
    s_cell_t *done_head, *done_tail;
    int efd;
    unsigned n_threads, n_idle, refs;
    bool stop;
    kt_executor_t exec;
} s_pool_t;

struct s_server {
    const kt_serve_config_t *cfg;
    zsock_t *pipe;
    zsock_t *router;
    zactor_t *auth;
    zsock_t *monitor;               /* CURVE handshake failures, for the log */
    zloop_t *loop;
    s_pool_t *pool;
    kt_artifacts_t *artifacts;
    kt_journal_t *journal;
    int lock_fd;
    char cache_dir[PATH_MAX];
    char endpoint[512];
    char worker_id[KT_ID_MAX];
    uint64_t instance;
    char arch[16];
    kt_host_info_t host;
    uint32_t cap_vcpus, max_vcpus, heartbeat_ms, lost_after_ms;
    uint32_t tick_ms;
    int tick_id;
    uint64_t cap_memory_mib;
    uint32_t used_vcpus;
    uint64_t used_memory_mib;
    zhashx_t *sessions;             /* key -> s_session_t (owned) */
    zhashx_t *cells;                /* "run/cell/attempt" -> s_cell_t (owned while not running) */
    zhashx_t *fetches;              /* sha -> s_fetch_t (owned) */
    zhashx_t *have;                 /* "sha:size" of artifacts known cached */
    unsigned n_running;
    uint64_t next_serial;
    unsigned n_unoffered;           /* journal entries offered to nobody */
    uint64_t offer_gen;             /* bumped when something new may be offerable */
    uint64_t last_reoffer_scan_ms;
    bool draining, drained_sent;
    uint64_t drain_idle_since_ms;
    /* Garbage logging, rate-limited. */
    uint64_t garbage, garbage_window_ms;
    unsigned garbage_in_window, garbage_suppressed;
    enum kt_log_level cell_log_level;
    bool inline_exec;               /* the null executor runs on the loop */
    char error[512];                /* why start-up failed */
};

static uint64_t s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t s_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void s_hex(const uint8_t *data, size_t len, char *out, size_t out_len)
{
    static const char digits[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < len && o + 2 < out_len; i++) {
        out[o++] = digits[data[i] >> 4];
        out[o++] = digits[data[i] & 0xf];
    }
    out[o] = '\0';
}

static bool s_printable(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return false;
    return true;
}

/* snprintf without the truncation warning: every caller here bounds its
 * text on purpose (a reason wrapped into a longer one keeps its head). */
static void s_fmt(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void s_fmt(char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
}

/* ---- the runner pool ---- */

static void s_cell_free(s_cell_t *cell)
{
    if (!cell)
        return;
    kt_exec_result_clear(&cell->res);
    free(cell);
}

static void s_pool_free(s_pool_t *p)
{
    s_cell_t *c, *n;
    for (c = p->done_head; c; c = n) {
        n = c->next;
        s_cell_free(c);
    }
    for (c = p->jobs_head; c; c = n) {
        n = c->next;
        s_cell_free(c);
    }
    if (p->efd >= 0)
        close(p->efd);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->work);
    free(p);
}

/* Drops one reference; the last one frees. Called with the lock held;
 * returns with it released. */
static void s_pool_unref_locked(s_pool_t *p)
{
    bool last = --p->refs == 0;
    pthread_mutex_unlock(&p->lock);
    if (last)
        s_pool_free(p);
}

static void *s_runner(void *arg)
{
    s_pool_t *p = arg;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!p->jobs_head && !p->stop) {
            struct timespec until;
            clock_gettime(CLOCK_MONOTONIC, &until);
            until.tv_sec += S_RUNNER_IDLE_MS / 1000;
            p->n_idle++;
            int r = pthread_cond_timedwait(&p->work, &p->lock, &until);
            p->n_idle--;
            if (r == ETIMEDOUT && !p->jobs_head)
                goto out;
        }
        if (!p->jobs_head)
            break;
        s_cell_t *job = p->jobs_head;
        p->jobs_head = job->next;
        if (!p->jobs_head)
            p->jobs_tail = NULL;
        job->next = NULL;
        pthread_mutex_unlock(&p->lock);

        job->started_ms = s_now_ms();
        job->rc = p->exec.run(p->exec.userdata, &job->spec, job->attempt, job->kernel_path,
                              job->sched_path[0] ? job->sched_path : NULL, &job->cancel,
                              &job->res);
        job->finished_ms = s_now_ms();

        pthread_mutex_lock(&p->lock);
        bool was_empty = !p->done_head;
        if (p->done_tail)
            p->done_tail->next = job;
        else
            p->done_head = job;
        p->done_tail = job;
        if (was_empty) {
            uint64_t one = 1;
            ssize_t w = write(p->efd, &one, sizeof(one));
            (void)w; /* a full counter still wakes the loop */
        }
    }
out:
    p->n_threads--;
    s_pool_unref_locked(p);
    return NULL;
}

static int s_pool_new(kt_executor_t exec, s_pool_t **ret)
{
    s_pool_t *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (p->efd < 0) {
        int r = -errno;
        free(p);
        return r;
    }
    pthread_mutex_init(&p->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->work, &ca);
    pthread_condattr_destroy(&ca);
    p->exec = exec;
    p->refs = 1;
    *ret = p;
    return 0;
}

static int s_pool_submit(s_pool_t *p, s_cell_t *job)
{
    pthread_mutex_lock(&p->lock);
    job->next = NULL;
    if (p->jobs_tail)
        p->jobs_tail->next = job;
    else
        p->jobs_head = job;
    p->jobs_tail = job;
    int r = 0;
    if (p->n_idle == 0) {
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        p->refs++;
        p->n_threads++;
        r = -pthread_create(&t, &attr, s_runner, p);
        pthread_attr_destroy(&attr);
        if (r < 0) {
            p->refs--;
            p->n_threads--;
            /* With no runner at all the job would wait forever. */
            if (p->n_threads == 0) {
                p->jobs_head = job->next;
                if (!p->jobs_head)
                    p->jobs_tail = NULL;
                pthread_mutex_unlock(&p->lock);
                return r;
            }
            r = 0;
        }
    } else
        pthread_cond_signal(&p->work);
    pthread_mutex_unlock(&p->lock);
    return r;
}

static s_cell_t *s_pool_take_done(s_pool_t *p)
{
    uint64_t v;
    ssize_t n = read(p->efd, &v, sizeof(v));
    (void)n;
    pthread_mutex_lock(&p->lock);
    s_cell_t *list = p->done_head;
    p->done_head = p->done_tail = NULL;
    pthread_mutex_unlock(&p->lock);
    return list;
}

/* ---- sessions ---- */

static void s_session_destroy(void **item)
{
    s_session_t *s = *item;
    if (s) {
        zframe_destroy(&s->rid);
        free(s);
    }
    *item = NULL;
}

static void s_key_of(zframe_t *rid, char *buf, size_t len)
{
    s_hex(zframe_data(rid), zframe_size(rid), buf, len);
}

static s_session_t *s_session_by_serial(s_server_t *srv, uint64_t serial)
{
    if (!serial)
        return NULL;
    for (s_session_t *s = zhashx_first(srv->sessions); s; s = zhashx_next(srv->sessions))
        if (s->serial == serial)
            return s;
    return NULL;
}

/* A welcomed session of this coordinator, preferring `prefer`. */
static s_session_t *s_session_for(s_server_t *srv, const char *coordinator_id, uint64_t prefer)
{
    s_session_t *best = NULL;
    for (s_session_t *s = zhashx_first(srv->sessions); s; s = zhashx_next(srv->sessions)) {
        if (!s->welcomed || strcmp(s->coordinator_id, coordinator_id) != 0)
            continue;
        if (s->serial == prefer)
            return s;
        if (!best || s->last_rx_ms > best->last_rx_ms)
            best = s;
    }
    return best;
}

static bool s_session_has_run(const s_session_t *s, const char *run_id)
{
    for (unsigned i = 0; i < s->n_runs; i++)
        if (strcmp(s->runs[i], run_id) == 0)
            return true;
    return false;
}

static void s_session_add_run(s_server_t *srv, s_session_t *s, const char *run_id)
{
    if (s_session_has_run(s, run_id))
        return;
    srv->offer_gen++;
    if (s->n_runs == S_MAX_RUNS) {
        memmove(s->runs[0], s->runs[1], sizeof(s->runs[0]) * (S_MAX_RUNS - 1));
        s->n_runs--;
    }
    snprintf(s->runs[s->n_runs++], sizeof(s->runs[0]), "%s", run_id);
}

static int s_send(s_server_t *srv, s_session_t *s, const kt_msg_t *m)
{
    int r = kt_wire_send(srv->router, s->rid, m);
    if (r < 0)
        kt_log_debug("send %s to peer=%s failed: %s", kt_msg_type_name(m->type), s->peer,
                     strerror(-r));
    return r;
}

/* ---- journal bookkeeping ---- */

static void s_entry_set_offered(s_server_t *srv, kt_journal_entry_t *e, s_session_t *s)
{
    uint64_t to = s ? s->serial : 0;
    if (e->offered_to == to)
        return;
    if (e->offered_to == 0)
        srv->n_unoffered--;
    else {
        s_session_t *old = s_session_by_serial(srv, e->offered_to);
        if (old && old->n_offered)
            old->n_offered--;
    }
    if (to == 0) {
        srv->n_unoffered++;
        srv->offer_gen++;
    } else
        s->n_offered++;
    e->offered_to = to;
    e->offered_at_ms = s ? s_now_ms() : 0;
}

static bool s_entry_for_session(const kt_journal_entry_t *e, const s_session_t *s)
{
    return strcmp(e->coordinator_id, s->coordinator_id) == 0 || s_session_has_run(s, e->run_id);
}

/* Sends a journaled result (read back from its file) to s. */
static int s_offer_entry(s_server_t *srv, s_session_t *s, kt_journal_entry_t *meta)
{
    kt_journal_entry_t full;
    int r = kt_journal_read(srv->journal, meta, &full);
    if (r < 0) {
        kt_log_warn("journal entry cell=%.12s attempt=%u unreadable: %s, ignoring", meta->cell_id,
                    meta->attempt, strerror(-r));
        return r;
    }
    kt_msg_t m;
    kt_msg_init(&m, KT_MSG_RESULT);
    snprintf(m.u.result.cell_id, sizeof(m.u.result.cell_id), "%s", full.cell_id);
    m.u.result.attempt = full.attempt;
    snprintf(m.u.result.verdict, sizeof(m.u.result.verdict), "%s", full.verdict);
    snprintf(m.u.result.reason, sizeof(m.u.result.reason), "%s", full.reason);
    m.u.result.sidecar = full.sidecar;
    m.u.result.sidecar_len = full.sidecar_len;
    m.u.result.console = full.console;
    m.u.result.console_len = full.console_len;
    r = s_send(srv, s, &m);
    kt_journal_entry_clear(&full);
    s_session_add_run(srv, s, meta->run_id);
    s_entry_set_offered(srv, meta, s);
    kt_log_debug("offered journaled result cell=%.12s attempt=%u to coordinator=%s",
                 meta->cell_id, meta->attempt, s->coordinator_id);
    return r;
}

/* Offers what the journal holds for s, within the offer window. The
 * journal is scanned again only when something may have become offerable
 * (offer_gen moved) or the window has room after it was full: results of a
 * coordinator that never comes back must not cost a scan per ACK. */
static void s_offer_more(s_server_t *srv, s_session_t *s)
{
    if (!s->welcomed || srv->n_unoffered == 0)
        return;
    if (s->scanned_gen == srv->offer_gen && !(s->window_full && s->n_offered < S_OFFER_WINDOW))
        return;
    uint64_t gen = srv->offer_gen;
    s->window_full = false;
    for (kt_journal_entry_t *e = kt_journal_first(srv->journal); e && srv->n_unoffered > 0;
         e = kt_journal_next(srv->journal)) {
        if (e->offered_to != 0 || !s_entry_for_session(e, s))
            continue;
        if (s->n_offered >= S_OFFER_WINDOW) {
            s->window_full = true;
            break;
        }
        s_offer_entry(srv, s, e);
    }
    s->scanned_gen = gen;
}

static void s_offer_all(s_server_t *srv)
{
    if (srv->n_unoffered == 0)
        return;
    for (s_session_t *s = zhashx_first(srv->sessions); s; s = zhashx_next(srv->sessions)) {
        /* s_offer_more iterates the journal, not the sessions. */
        s_offer_more(srv, s);
    }
}

/* Unoffers everything offered to s (it went away or reconnected). */
static void s_unoffer_session(s_server_t *srv, s_session_t *s)
{
    for (kt_journal_entry_t *e = kt_journal_first(srv->journal); e;
         e = kt_journal_next(srv->journal))
        if (e->offered_to == s->serial)
            s_entry_set_offered(srv, e, NULL);
    s->n_offered = 0;
}

/* ---- cells ---- */

static void s_cell_key(char *buf, size_t len, const char *run_id, const char *cell_id,
                       uint32_t attempt)
{
    snprintf(buf, len, "%s/%s/%u", run_id, cell_id, attempt);
}

/* A cell this session may name by (cell_id, attempt) alone. */
static s_cell_t *s_cell_for_session(s_server_t *srv, s_session_t *s, const char *cell_id,
                                    uint32_t attempt)
{
    char key[160];
    for (unsigned i = 0; i < s->n_runs; i++) {
        s_cell_key(key, sizeof(key), s->runs[i], cell_id, attempt);
        s_cell_t *c = zhashx_lookup(srv->cells, key);
        if (c)
            return c;
    }
    for (s_cell_t *c = zhashx_first(srv->cells); c; c = zhashx_next(srv->cells))
        if (c->attempt == attempt && strcmp(c->spec.cell_id, cell_id) == 0 &&
            strcmp(c->coordinator_id, s->coordinator_id) == 0)
            return c;
    return NULL;
}

static void s_send_progress(s_server_t *srv, s_cell_t *cell, const char *phase)
{
    s_session_t *s = s_session_for(srv, cell->coordinator_id, cell->session_serial);
    if (!s)
        return;
    kt_msg_t m;
    kt_msg_init(&m, KT_MSG_PROGRESS);
    snprintf(m.u.progress.cell_id, sizeof(m.u.progress.cell_id), "%s", cell->spec.cell_id);
    m.u.progress.attempt = cell->attempt;
    snprintf(m.u.progress.phase, sizeof(m.u.progress.phase), "%s", phase);
    s_send(srv, s, &m);
}

/* A sidecar of our own for a cell that ended before (or without) its
 * executor's: the verdict and reason are in res already. */
static void s_local_sidecar(s_server_t *srv, s_cell_t *cell, const char *phase)
{
    char topo[KT_TOPOLOGY_LABEL_MAX];
    kt_topology_label(&cell->spec.plan.topology, topo, sizeof(topo));
    json_t *doc = json_pack("{s:s, s:s, s:s, s:I, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:b, "
                            "s:b}",
                            "executor", srv->cfg->executor.name ? srv->cfg->executor.name : "?",
                            "test_name", cell->spec.cell_name, "cell_id", cell->spec.cell_id,
                            "attempt", (json_int_t)cell->attempt, "run_id", cell->spec.run_id,
                            "scenario", cell->spec.plan.scenario, "topology", topo, "scheduler",
                            cell->spec.sched_name, "kernel_label", cell->spec.kernel_label,
                            "verdict", cell->res.verdict, "reason", cell->res.reason, "phase",
                            phase, "passed", false, "skipped", false);
    free(cell->res.sidecar);
    cell->res.sidecar = doc ? json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    cell->res.sidecar_len = cell->res.sidecar ? strlen(cell->res.sidecar) : 0;
    json_decref(doc);
}

/* The fleet's fields into the executor's sidecar: who ran it, under what,
 * how long it queued and fetched, whether it was cancelled. */
static void s_patch_sidecar(s_server_t *srv, s_cell_t *cell)
{
    json_error_t jerr;
    json_t *doc = cell->res.sidecar
                      ? json_loadb(cell->res.sidecar, cell->res.sidecar_len, 0, &jerr)
                      : NULL;
    if (!json_is_object(doc)) {
        json_decref(doc);
        char why[300];
        s_fmt(why, sizeof(why), "%s", cell->res.reason);
        s_fmt(cell->res.reason, sizeof(cell->res.reason),
                 "the executor's sidecar is not a JSON object (%s); verdict was '%s': %s",
                 cell->res.sidecar ? jerr.text : "none", cell->res.verdict, why);
        snprintf(cell->res.verdict, sizeof(cell->res.verdict), "error");
        s_local_sidecar(srv, cell, "collect");
        doc = cell->res.sidecar ? json_loadb(cell->res.sidecar, cell->res.sidecar_len, 0, &jerr)
                                : NULL;
        if (!doc)
            return;
    }
    json_object_set_new(doc, "worker", json_string(srv->worker_id));
    char inst[20];
    snprintf(inst, sizeof(inst), "%016llx", (unsigned long long)srv->instance);
    json_object_set_new(doc, "worker_instance", json_string(inst));
    if (!json_object_get(doc, "executor"))
        json_object_set_new(doc, "executor", json_string(srv->cfg->executor.name));
    if (!json_object_get(doc, "accel") && srv->cfg->accel_name)
        json_object_set_new(doc, "accel", json_string(srv->cfg->accel_name));
    json_object_set_new(doc, "attempt", json_integer(cell->attempt));
    json_object_set_new(doc, "run_id", json_string(cell->spec.run_id));
    json_object_set_new(doc, "cell_id", json_string(cell->spec.cell_id));
    json_object_set_new(doc, "verdict", json_string(cell->res.verdict));
    json_object_set_new(doc, "reason", json_string(cell->res.reason));
    json_object_set_new(doc, "passed", json_boolean(strcmp(cell->res.verdict, "pass") == 0));
    json_object_set_new(doc, "skipped", json_boolean(strcmp(cell->res.verdict, "skip") == 0));
    if (cell->cancel_requested)
        json_object_set_new(doc, "cancelled", json_true());
    json_t *timings = json_object_get(doc, "timings");
    if (!json_is_object(timings)) {
        timings = json_object();
        json_object_set_new(doc, "timings", timings);
    }
    uint64_t started = cell->started_ms ? cell->started_ms : cell->finished_ms;
    json_object_set_new(timings, "worker_queue_ms",
                        json_integer((json_int_t)(started - cell->assigned_ms)));
    json_object_set_new(timings, "artifact_fetch_ms",
                        json_integer((json_int_t)(cell->fetched_ms ? cell->fetched_ms -
                                                                         cell->assigned_ms
                                                                   : 0)));
    json_object_set_new(timings, "worker_total_ms",
                        json_integer((json_int_t)(cell->finished_ms - cell->assigned_ms)));
    char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(doc);
    if (!text)
        return;
    if (strlen(text) > KT_MSG_MAX_SIDECAR) {
        free(text);
        char why[300];
        s_fmt(why, sizeof(why), "%s", cell->res.reason);
        s_fmt(cell->res.reason, sizeof(cell->res.reason),
                 "%s (the full sidecar exceeded %u bytes and stays on worker %s)", why,
                 KT_MSG_MAX_SIDECAR, srv->worker_id);
        s_local_sidecar(srv, cell, "collect");
        return;
    }
    free(cell->res.sidecar);
    cell->res.sidecar = text;
    cell->res.sidecar_len = strlen(text);
}

static void s_release(s_server_t *srv, s_cell_t *cell)
{
    srv->used_vcpus -= cell->vcpus;
    srv->used_memory_mib -= cell->memory_mib;
}

/* A cell is over (ran, or could not): journal, release, send, forget. The
 * cell must be out of the cells table or about to be removed here. */
static void s_cell_complete(s_server_t *srv, s_cell_t *cell)
{
    if (!cell->finished_ms)
        cell->finished_ms = s_now_ms();
    kt_exec_result_t *res = &cell->res;
    if (cell->rc < 0 || !kt_verdict_valid(res->verdict)) {
        char why[300];
        s_fmt(why, sizeof(why), "%s", res->reason);
        s_fmt(res->reason, sizeof(res->reason), "the %s executor failed: %s%s%s",
                 srv->cfg->executor.name, cell->rc < 0 ? strerror(-cell->rc) : "no verdict",
                 why[0] ? ": " : "", why);
        snprintf(res->verdict, sizeof(res->verdict), "error");
        s_local_sidecar(srv, cell, "executor");
    }
    if (cell->cancel_requested && !strstr(res->reason, "cancel")) {
        size_t n = strlen(res->reason);
        snprintf(res->reason + n, sizeof(res->reason) - n, "%s(the coordinator cancelled "
                 "this attempt)", n ? " " : "");
    }
    s_patch_sidecar(srv, cell);
    if (res->console_len > KT_MSG_MAX_CONSOLE) {
        /* Keep the tail: that is where a failure shows. */
        memmove(res->console, res->console + res->console_len - KT_MSG_MAX_CONSOLE,
                KT_MSG_MAX_CONSOLE);
        res->console_len = KT_MSG_MAX_CONSOLE;
    }

    kt_journal_entry_t *old =
        kt_journal_find(srv->journal, cell->spec.run_id, cell->spec.cell_id, cell->attempt);
    if (old) {
        s_entry_set_offered(srv, old, NULL);
        srv->n_unoffered--;
    }
    kt_journal_entry_t e;
    memset(&e, 0, sizeof(e));
    snprintf(e.coordinator_id, sizeof(e.coordinator_id), "%s", cell->coordinator_id);
    snprintf(e.run_id, sizeof(e.run_id), "%s", cell->spec.run_id);
    snprintf(e.cell_id, sizeof(e.cell_id), "%s", cell->spec.cell_id);
    e.attempt = cell->attempt;
    snprintf(e.verdict, sizeof(e.verdict), "%s", res->verdict);
    s_fmt(e.reason, sizeof(e.reason), "%s", res->reason);
    e.finished_ms = s_wall_ms();
    e.sidecar = res->sidecar ? res->sidecar : (char *)"{}";
    e.sidecar_len = res->sidecar ? res->sidecar_len : 2;
    e.console = res->console;
    e.console_len = res->console ? res->console_len : 0;
    int r = kt_journal_put(srv->journal, &e);
    kt_journal_entry_t *je = NULL;
    if (r < 0)
        kt_log_error("cell=%.12s attempt=%u: cannot journal the result in '%s': %s; sending it "
                     "unjournaled",
                     cell->spec.cell_id, cell->attempt, kt_journal_dir(srv->journal),
                     strerror(-r));
    else {
        je = kt_journal_find(srv->journal, e.run_id, e.cell_id, e.attempt);
        if (je) {
            srv->n_unoffered++;
            srv->offer_gen++;
        }
    }

    s_release(srv, cell);
    if (cell->state == S_CELL_RUNNING && srv->n_running)
        srv->n_running--;
    zhashx_delete(srv->cells, cell->key);

    kt_log(srv->cell_log_level, "cell=%.12s attempt=%u %s %s in %llu ms%s%s", cell->spec.cell_id,
           cell->attempt, cell->spec.cell_name, res->verdict,
           (unsigned long long)(cell->finished_ms - cell->assigned_ms),
           res->reason[0] ? ": " : "", res->reason);

    s_session_t *s = s_session_for(srv, cell->coordinator_id, cell->session_serial);
    if (s) {
        kt_msg_t m;
        kt_msg_init(&m, KT_MSG_RESULT);
        snprintf(m.u.result.cell_id, sizeof(m.u.result.cell_id), "%s", cell->spec.cell_id);
        m.u.result.attempt = cell->attempt;
        snprintf(m.u.result.verdict, sizeof(m.u.result.verdict), "%s", res->verdict);
        snprintf(m.u.result.reason, sizeof(m.u.result.reason), "%s", res->reason);
        m.u.result.sidecar = e.sidecar;
        m.u.result.sidecar_len = e.sidecar_len;
        m.u.result.console = res->console;
        m.u.result.console_len = res->console ? res->console_len : 0;
        s_send(srv, s, &m);
        s_session_add_run(srv, s, cell->spec.run_id);
        if (je)
            s_entry_set_offered(srv, je, s);
    } else if (je)
        kt_log_info("cell=%.12s attempt=%u finished with no session of coordinator=%s: "
                    "journaled until it comes back",
                    cell->spec.cell_id, cell->attempt, cell->coordinator_id);
    s_cell_free(cell);
}

/* Ends a cell that never reached its executor. */
static void s_cell_abort(s_server_t *srv, s_cell_t *cell, const char *phase, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void s_cell_abort(s_server_t *srv, s_cell_t *cell, const char *phase, const char *fmt, ...)
{
    snprintf(cell->res.verdict, sizeof(cell->res.verdict), "error");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cell->res.reason, sizeof(cell->res.reason), fmt, ap);
    va_end(ap);
    cell->rc = 0;
    s_local_sidecar(srv, cell, phase);
    s_cell_complete(srv, cell);
}

/* ---- artifacts ---- */

static void s_fetch_destroy(void **item)
{
    s_fetch_t *f = *item;
    if (f) {
        kt_artifact_in_abort(&f->in);
        free(f);
    }
    *item = NULL;
}

static void s_fetch_request(s_server_t *srv, s_fetch_t *f)
{
    s_session_t *s = s_session_by_serial(srv, f->session_serial);
    if (!s)
        return;
    uint64_t size = kt_artifact_in_size(f->in);
    if (f->requested_to < kt_artifact_in_received(f->in)) {
        f->requested_to = kt_artifact_in_received(f->in);
        f->in_flight = 0;
    }
    if (f->requested_to >= size || f->in_flight > S_FETCH_WINDOW / 2)
        return;
    uint64_t left = (size - f->requested_to + KT_CHUNK_MAX - 1) / KT_CHUNK_MAX;
    uint32_t credit = S_FETCH_WINDOW - f->in_flight;
    if (credit > left)
        credit = (uint32_t)left;
    kt_msg_t m;
    kt_msg_init(&m, KT_MSG_FETCH);
    snprintf(m.u.fetch.sha, sizeof(m.u.fetch.sha), "%s", f->sha);
    m.u.fetch.offset = f->requested_to;
    m.u.fetch.credit = credit;
    s_send(srv, s, &m);
    f->requested_to += (uint64_t)credit * KT_CHUNK_MAX;
    if (f->requested_to > size)
        f->requested_to = size;
    f->in_flight += credit;
}

static void s_cell_prepare(s_server_t *srv, s_cell_t *cell);

/* Every cell still waiting for artifacts looks again (one arrived or a
 * transfer failed). */
static void s_recheck_fetching(s_server_t *srv)
{
    s_cell_t *waiting[S_MAX_CELLS];
    unsigned n = 0;
    for (s_cell_t *c = zhashx_first(srv->cells); c && n < S_MAX_CELLS; c = zhashx_next(srv->cells))
        if (c->state == S_CELL_FETCHING)
            waiting[n++] = c;
    for (unsigned i = 0; i < n; i++)
        s_cell_prepare(srv, waiting[i]);
}

/* A transfer ended without the artifact: cells waiting on it fail with why
 * unless they can fetch it from their own session. */
static void s_fetch_fail(s_server_t *srv, s_fetch_t *f, bool bad_bytes, const char *why)
{
    char sha[KT_SHA_HEX];
    snprintf(sha, sizeof(sha), "%s", f->sha);
    kt_log_warn("artifact %.12s: %s", sha, why);
    zhashx_delete(srv->fetches, sha);
    s_cell_t *waiting[S_MAX_CELLS];
    unsigned n = 0;
    for (s_cell_t *c = zhashx_first(srv->cells); c && n < S_MAX_CELLS; c = zhashx_next(srv->cells))
        if (c->state == S_CELL_FETCHING &&
            (strcmp(c->spec.kernel_sha, sha) == 0 || strcmp(c->spec.sched_sha, sha) == 0 ||
             strcmp(c->spec.plan.payload.sha, sha) == 0))
            waiting[n++] = c;
    for (unsigned i = 0; i < n; i++) {
        s_cell_t *c = waiting[i];
        if (bad_bytes || ++c->fetch_failures >= S_FETCH_RETRIES ||
            !s_session_for(srv, c->coordinator_id, c->session_serial))
            s_cell_abort(srv, c, "artifact", "artifact %s: %s", sha, why);
        else
            s_cell_prepare(srv, c);
    }
}

static int s_fetch_start(s_server_t *srv, s_session_t *s, const char *sha, uint64_t size)
{
    s_fetch_t *f = calloc(1, sizeof(*f));
    if (!f)
        return -ENOMEM;
    int r = kt_artifact_in_begin(srv->artifacts, sha, size, &f->in);
    if (r < 0) {
        free(f);
        return r;
    }
    snprintf(f->sha, sizeof(f->sha), "%s", sha);
    f->session_serial = s->serial;
    f->started_ms = f->last_rx_ms = s_now_ms();
    zhashx_insert(srv->fetches, sha, f);
    kt_log_debug("artifact %.12s: fetching %llu bytes from coordinator=%s", sha,
                 (unsigned long long)size, s->coordinator_id);
    s_fetch_request(srv, f);
    return 0;
}

/* Cached artifacts already seen on disk this run: a stat per cell and
 * artifact is measurable at thousands of cells a second. */
static bool s_have(s_server_t *srv, const char *sha, uint64_t size)
{
    char key[KT_SHA_HEX + 24];
    snprintf(key, sizeof(key), "%s:%llu", sha, (unsigned long long)size);
    if (zhashx_lookup(srv->have, key))
        return true;
    if (!kt_artifacts_has(srv->artifacts, sha, size))
        return false;
    zhashx_insert(srv->have, key, (void *)1);
    return true;
}

/* Needs: 0 ready (path set), 1 waiting, <0 cannot. */
static int s_need_artifact(s_server_t *srv, s_cell_t *cell, const char *sha, uint64_t size,
                           char *path, size_t path_len, char *why, size_t why_len)
{
    if (s_have(srv, sha, size))
        return snprintf(path, path_len, "%s/%s", kt_artifacts_dir(srv->artifacts), sha) <
                       (int)path_len
                   ? 0
                   : -ENAMETOOLONG;
    if (zhashx_lookup(srv->fetches, sha))
        return 1;
    s_session_t *s = s_session_for(srv, cell->coordinator_id, cell->session_serial);
    if (!s) {
        snprintf(why, why_len, "not cached and no session of coordinator %s to fetch it from",
                 cell->coordinator_id);
        return -ENOTCONN;
    }
    int r = s_fetch_start(srv, s, sha, size);
    if (r < 0) {
        snprintf(why, why_len, "cannot start receiving it (%llu bytes): %s",
                 (unsigned long long)size, strerror(-r));
        return r;
    }
    return 1;
}

static void s_cell_start(s_server_t *srv, s_cell_t *cell)
{
    cell->state = S_CELL_RUNNING;
    if (!cell->fetched_ms)
        cell->fetched_ms = s_now_ms();
    srv->n_running++;
    if (srv->inline_exec) {
        /* The null executor returns at once: a thread handoff would only
         * measure the handoff. */
        cell->started_ms = s_now_ms();
        cell->rc = srv->cfg->executor.run(srv->cfg->executor.userdata, &cell->spec, cell->attempt,
                                          cell->kernel_path,
                                          cell->sched_path[0] ? cell->sched_path : NULL,
                                          &cell->cancel, &cell->res);
        cell->finished_ms = s_now_ms();
        s_cell_complete(srv, cell);
        return;
    }
    int r = s_pool_submit(srv->pool, cell);
    if (r < 0) {
        srv->n_running--;
        cell->state = S_CELL_FETCHING;
        s_cell_abort(srv, cell, "setup", "cannot start a runner thread: %s", strerror(-r));
        return;
    }
    s_send_progress(srv, cell, S_PHASE_RUNNING);
}

static void s_cell_prepare(s_server_t *srv, s_cell_t *cell)
{
    char why[300] = "";
    int rk = s_need_artifact(srv, cell, cell->spec.kernel_sha, cell->spec.kernel_size,
                             cell->kernel_path, sizeof(cell->kernel_path), why, sizeof(why));
    if (rk < 0) {
        s_cell_abort(srv, cell, "artifact", "kernel %.12s: %s", cell->spec.kernel_sha, why);
        return;
    }
    int rs = 0;
    if (cell->spec.sched_sha[0]) {
        rs = s_need_artifact(srv, cell, cell->spec.sched_sha, cell->spec.sched_size,
                             cell->sched_path, sizeof(cell->sched_path), why, sizeof(why));
        if (rs < 0) {
            s_cell_abort(srv, cell, "artifact", "scheduler %.12s: %s", cell->spec.sched_sha, why);
            return;
        }
    }
    /* A payload cell's binary: the VM executor finds it beside the kernel
     * in the artifact cache, by its sha. */
    int rp = 0;
    const kt_payload_spec_t *pl = &cell->spec.plan.payload;
    if (kt_payload_present(pl)) {
        char ppath[PATH_MAX];
        rp = s_need_artifact(srv, cell, pl->sha, pl->size, ppath, sizeof(ppath), why, sizeof(why));
        if (rp < 0) {
            s_cell_abort(srv, cell, "artifact", "payload %.12s: %s", pl->sha, why);
            return;
        }
    }
    if (rk == 0 && rs == 0 && rp == 0)
        s_cell_start(srv, cell);
}

/* ---- messages ---- */

static void s_fill_capacity(s_server_t *srv, uint32_t *vcpus, uint64_t *mem)
{
    *vcpus = srv->cap_vcpus - srv->used_vcpus;
    *mem = srv->cap_memory_mib - srv->used_memory_mib;
}

static unsigned s_count_for(s_server_t *srv, const char *coordinator_id)
{
    unsigned n = 0;
    for (kt_journal_entry_t *e = kt_journal_first(srv->journal); e;
         e = kt_journal_next(srv->journal))
        if (strcmp(e->coordinator_id, coordinator_id) == 0)
            n++;
    return n;
}

static void s_send_hello(s_server_t *srv, s_session_t *s)
{
    kt_msg_t m;
    kt_msg_init(&m, KT_MSG_HELLO);
    m.u.hello.version = KT_PROTO_VERSION;
    snprintf(m.u.hello.worker_id, sizeof(m.u.hello.worker_id), "%s", srv->worker_id);
    m.u.hello.instance = srv->instance;
    snprintf(m.u.hello.arch, sizeof(m.u.hello.arch), "%s", srv->arch);
    m.u.hello.host_cpus = srv->host.cpus;
    m.u.hello.host_llcs = srv->host.llcs;
    m.u.hello.memory_mib = srv->host.memory_mib;
    snprintf(m.u.hello.accel, sizeof(m.u.hello.accel), "%s",
             srv->cfg->accel_name ? srv->cfg->accel_name : "tcg");
    m.u.hello.canary_ms = srv->cfg->canary_ms;
    m.u.hello.max_vcpus = srv->max_vcpus;
    s_fill_capacity(srv, &m.u.hello.free_vcpus, &m.u.hello.free_memory_mib);
    m.u.hello.pending_results = s_count_for(srv, s->coordinator_id);
    m.u.hello.draining = srv->draining;
    char(*list)[KT_HASH_HEX_SIZE] = calloc(KT_MSG_MAX_ARTIFACTS, sizeof(*list));
    kt_msg_artifact_ref_t *refs = calloc(KT_MSG_MAX_ARTIFACTS, sizeof(*refs));
    unsigned n = 0;
    if (list && refs && kt_artifacts_list(srv->artifacts, list, KT_MSG_MAX_ARTIFACTS, &n) == 0) {
        for (unsigned i = 0; i < n; i++)
            memcpy(refs[i].sha, list[i], KT_SHA_HEX);
        m.u.hello.n_artifacts = n;
        m.u.hello.artifacts = refs;
    }
    s_send(srv, s, &m);
    free(list);
    free(refs);
}

static void s_send_heartbeat(s_server_t *srv, s_session_t *s)
{
    kt_msg_t m;
    kt_msg_init(&m, KT_MSG_HEARTBEAT);
    m.u.heartbeat.seq = ++s->hb_seq;
    s_fill_capacity(srv, &m.u.heartbeat.free_vcpus, &m.u.heartbeat.free_memory_mib);
    unsigned n = 0;
    for (s_cell_t *c = zhashx_first(srv->cells); c && n < KT_MSG_MAX_RUNNING;
         c = zhashx_next(srv->cells)) {
        if (strcmp(c->coordinator_id, s->coordinator_id) != 0)
            continue;
        snprintf(m.u.heartbeat.running[n].cell_id, KT_SHA_HEX, "%s", c->spec.cell_id);
        m.u.heartbeat.running[n].attempt = c->attempt;
        n++;
    }
    m.u.heartbeat.n_running = n;
    s_send(srv, s, &m);
    s->last_hb_ms = s_now_ms();
}

static void s_send_drain(s_server_t *srv, s_session_t *s)
{
    kt_msg_t m;
    kt_msg_init(&m, KT_MSG_DRAIN);
    m.u.drain.running = (uint32_t)zhashx_size(srv->cells);
    s_send(srv, s, &m);
}

static void s_session_expire(s_server_t *srv, s_session_t *s, const char *why)
{
    unsigned mine = 0;
    for (s_cell_t *c = zhashx_first(srv->cells); c; c = zhashx_next(srv->cells))
        if (c->session_serial == s->serial)
            mine++;
    kt_log_info("session coordinator=%s peer=%s ended (%s); %u of its cells keep running, "
                "their results go to the journal",
                s->coordinator_id, s->peer, why, mine);
    s_unoffer_session(srv, s);
    uint64_t serial = s->serial;
    char key[sizeof(s->key)];
    snprintf(key, sizeof(key), "%s", s->key);
    zhashx_delete(srv->sessions, key);
    /* Transfers from it cannot go on. */
    s_fetch_t *dead[S_MAX_CELLS];
    unsigned n = 0;
    for (s_fetch_t *f = zhashx_first(srv->fetches); f && n < S_MAX_CELLS;
         f = zhashx_next(srv->fetches))
        if (f->session_serial == serial)
            dead[n++] = f;
    for (unsigned i = 0; i < n; i++)
        s_fetch_fail(srv, dead[i], false, "the session it came from ended");
}

static void s_on_open(s_server_t *srv, zframe_t *rid, const char *key, kt_msg_t *m)
{
    const char *cid = m->u.open.coordinator_id;
    if (m->u.open.version != KT_PROTO_VERSION) {
        kt_msg_t r;
        kt_msg_init(&r, KT_MSG_REFUSE);
        r.u.refuse.code = KT_CODE_VERSION;
        snprintf(r.u.refuse.reason, sizeof(r.u.refuse.reason),
                 "protocol version %u: this worker speaks %d", m->u.open.version,
                 KT_PROTO_VERSION);
        kt_wire_send(srv->router, rid, &r);
        kt_log_warn("refused coordinator=%s: protocol version %u", cid, m->u.open.version);
        return;
    }
    if (!cid[0] || !s_printable(cid)) {
        kt_msg_t r;
        kt_msg_init(&r, KT_MSG_REFUSE);
        r.u.refuse.code = KT_CODE_BAD_MESSAGE;
        snprintf(r.u.refuse.reason, sizeof(r.u.refuse.reason),
                 "coordinator_id must be non-empty printable text");
        kt_wire_send(srv->router, rid, &r);
        return;
    }
    s_session_t *s = zhashx_lookup(srv->sessions, key);
    s_session_t *old_same_peer = s;
    /* The same coordinator from another connection: it reconnected. Its
     * cells, transfers and offers move to the new session. */
    s_session_t *prev = NULL;
    for (s_session_t *o = zhashx_first(srv->sessions); o; o = zhashx_next(srv->sessions))
        if (o != s && strcmp(o->coordinator_id, cid) == 0) {
            prev = o;
            break;
        }
    if (!s && zhashx_size(srv->sessions) >= S_MAX_SESSIONS && !prev) {
        kt_msg_t r;
        kt_msg_init(&r, KT_MSG_REFUSE);
        r.u.refuse.code = KT_CODE_UNAVAILABLE;
        snprintf(r.u.refuse.reason, sizeof(r.u.refuse.reason), "this worker has %d sessions",
                 S_MAX_SESSIONS);
        kt_wire_send(srv->router, rid, &r);
        return;
    }
    uint64_t old_serials[2] = {old_same_peer ? old_same_peer->serial : 0,
                               prev ? prev->serial : 0};
    if (old_same_peer)
        s_unoffer_session(srv, old_same_peer);
    if (prev) {
        kt_log_info("coordinator=%s reconnected: peer %s -> new connection", cid, prev->peer);
        s_unoffer_session(srv, prev);
        zhashx_delete(srv->sessions, prev->key);
    }
    if (!s) {
        s = calloc(1, sizeof(*s));
        if (!s)
            return;
        s->rid = zframe_dup(rid);
        snprintf(s->key, sizeof(s->key), "%s", key);
        snprintf(s->peer, sizeof(s->peer), "%.16s", key);
        zhashx_insert(srv->sessions, key, s);
    }
    s->serial = ++srv->next_serial;
    snprintf(s->coordinator_id, sizeof(s->coordinator_id), "%s", cid);
    s->session = m->u.open.session;
    s->welcomed = false;
    s->last_rx_ms = s_now_ms();
    s->n_offered = 0;
    s->scanned_gen = 0;
    s->window_full = false;
    s->hb_ms = srv->heartbeat_ms;
    s->lost_ms = srv->lost_after_ms;
    for (s_cell_t *c = zhashx_first(srv->cells); c; c = zhashx_next(srv->cells))
        if (c->session_serial && (c->session_serial == old_serials[0] ||
                                  c->session_serial == old_serials[1])) {
            c->session_serial = s->serial;
            s_session_add_run(srv, s, c->spec.run_id);
        }
    for (s_fetch_t *f = zhashx_first(srv->fetches); f; f = zhashx_next(srv->fetches))
        if (f->session_serial && (f->session_serial == old_serials[0] ||
                                  f->session_serial == old_serials[1])) {
            f->session_serial = s->serial;
            f->in_flight = 0;
            f->requested_to = kt_artifact_in_received(f->in);
        }
    kt_log_debug("OPEN coordinator=%s peer=%s session=%llu", cid, s->peer,
                 (unsigned long long)s->session);
    s_send_hello(srv, s);
}

static int s_on_tick(zloop_t *loop, int timer_id, void *arg);

/* The timer ticks at a quarter of the shortest heartbeat any session needs
 * (5 to 250 ms): beats go out on time and silence is noticed promptly. */
static void s_set_tick(s_server_t *srv, uint32_t heartbeat_ms)
{
    uint32_t tick = heartbeat_ms / 4;
    if (tick > 250)
        tick = 250;
    if (tick < 5)
        tick = 5;
    if (srv->tick_ms && tick >= srv->tick_ms)
        return;
    if (srv->tick_ms)
        zloop_timer_end(srv->loop, srv->tick_id);
    srv->tick_ms = tick;
    srv->tick_id = zloop_timer(srv->loop, tick, 0, s_on_tick, srv);
}

static void s_on_welcome(s_server_t *srv, s_session_t *s, kt_msg_t *m)
{
    bool first = !s->welcomed;
    s->welcomed = true;
    /* Beat as often as either side wants; give up on silence only as late
     * as either side would. */
    s->hb_ms = m->u.welcome.heartbeat_ms && m->u.welcome.heartbeat_ms < srv->heartbeat_ms
                   ? m->u.welcome.heartbeat_ms
                   : srv->heartbeat_ms;
    s->lost_ms = m->u.welcome.lost_after_ms > srv->lost_after_ms ? m->u.welcome.lost_after_ms
                                                                  : srv->lost_after_ms;
    s_set_tick(srv, s->hb_ms);
    if (first)
        kt_log_info("session open coordinator=%s peer=%s session=%llu", s->coordinator_id,
                    s->peer, (unsigned long long)s->session);
    /* Transfers moved here by a reconnect pick up where they were. */
    for (s_fetch_t *f = zhashx_first(srv->fetches); f; f = zhashx_next(srv->fetches))
        if (f->session_serial == s->serial && f->in_flight == 0)
            s_fetch_request(srv, f);
    if (srv->draining)
        s_send_drain(srv, s);
    s_send_heartbeat(srv, s);
    s_offer_more(srv, s);
}

static void s_reply_accept(s_server_t *srv, s_session_t *s, const kt_msg_t *a, bool ok,
                           const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void s_reply_accept(s_server_t *srv, s_session_t *s, const kt_msg_t *a, bool ok,
                           const char *fmt, ...)
{
    kt_msg_t m;
    kt_msg_init(&m, KT_MSG_ACCEPT);
    snprintf(m.u.accept.cell_id, sizeof(m.u.accept.cell_id), "%s", a->u.assign.spec.cell_id);
    m.u.accept.attempt = a->u.assign.attempt;
    m.u.accept.ok = ok;
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(m.u.accept.reason, sizeof(m.u.accept.reason), fmt, ap);
        va_end(ap);
    }
    s_send(srv, s, &m);
    if (!ok)
        kt_log_debug("refused cell=%.12s attempt=%u from coordinator=%s: %s",
                     a->u.assign.spec.cell_id, a->u.assign.attempt, s->coordinator_id,
                     m.u.accept.reason);
}

static void s_on_assign(s_server_t *srv, s_session_t *s, kt_msg_t *m)
{
    const kt_cellspec_t *spec = &m->u.assign.spec;
    uint32_t attempt = m->u.assign.attempt;
    if (!kt_hash_hex_valid(spec->cell_id)) {
        s_reply_accept(srv, s, m, false, "bad cell: cell_id is not 64 lowercase hex digits");
        return;
    }
    if (attempt == 0) {
        s_reply_accept(srv, s, m, false, "bad cell: attempt 0 (attempts count from 1)");
        return;
    }
    if (!kt_hash_hex_valid(spec->kernel_sha) || spec->kernel_size == 0 ||
        spec->kernel_size > KT_ARTIFACT_MAX_BYTES) {
        s_reply_accept(srv, s, m, false, "bad cell: kernel_sha/kernel_size");
        return;
    }
    if (spec->sched_sha[0] && (!kt_hash_hex_valid(spec->sched_sha) || spec->sched_size == 0 ||
                               spec->sched_size > KT_ARTIFACT_MAX_BYTES)) {
        s_reply_accept(srv, s, m, false, "bad cell: sched_sha/sched_size");
        return;
    }
    const kt_payload_spec_t *pl = &spec->plan.payload;
    if (kt_payload_present(pl) && (!kt_hash_hex_valid(pl->sha) || pl->size == 0 ||
                                   pl->size > KT_ARTIFACT_MAX_BYTES)) {
        s_reply_accept(srv, s, m, false, "bad cell: plan.payload sha/size");
        return;
    }
    if (!s_printable(spec->run_id) || !s_printable(spec->cell_name)) {
        s_reply_accept(srv, s, m, false, "bad cell: run_id or cell_name has control characters");
        return;
    }
    unsigned vcpus = kt_cellspec_vcpus(spec);
    uint64_t mem = spec->memory_mib ? spec->memory_mib
                                    : kt_topology_memory_mib(&spec->plan.topology, 0);
    if (vcpus == 0) {
        s_reply_accept(srv, s, m, false, "bad cell: its topology has no CPUs");
        return;
    }
    s_session_add_run(srv, s, spec->run_id);
    char key[160];
    s_cell_key(key, sizeof(key), spec->run_id, spec->cell_id, attempt);
    if (zhashx_lookup(srv->cells, key)) {
        /* A repeated ASSIGN (the coordinator did not see our ACCEPT). */
        s_reply_accept(srv, s, m, true, "already running here");
        return;
    }
    kt_journal_entry_t *done = kt_journal_find(srv->journal, spec->run_id, spec->cell_id, attempt);
    if (done) {
        s_reply_accept(srv, s, m, true, "already finished here; result re-sent");
        s_offer_entry(srv, s, done);
        return;
    }
    if (srv->draining) {
        s_reply_accept(srv, s, m, false, "draining: this worker takes no new cells");
        return;
    }
    if (vcpus > srv->max_vcpus) {
        s_reply_accept(srv, s, m, false, "needs %u vCPUs; this worker runs at most %u per VM",
                       vcpus, srv->max_vcpus);
        return;
    }
    uint32_t free_v;
    uint64_t free_m;
    s_fill_capacity(srv, &free_v, &free_m);
    if (vcpus > free_v || mem > free_m) {
        s_reply_accept(srv, s, m, false,
                       "no capacity: needs %u vCPUs and %llu MiB, %u vCPUs and %llu MiB free",
                       vcpus, (unsigned long long)mem, free_v, (unsigned long long)free_m);
        return;
    }
    if (zhashx_size(srv->cells) >= S_MAX_CELLS ||
        kt_journal_count(srv->journal) + zhashx_size(srv->cells) >= KT_JOURNAL_MAX_ENTRIES) {
        s_reply_accept(srv, s, m, false,
                       "%u unacknowledged results and %zu cells here: acknowledge results first",
                       kt_journal_count(srv->journal), zhashx_size(srv->cells));
        return;
    }
    s_cell_t *cell = calloc(1, sizeof(*cell));
    if (!cell) {
        s_reply_accept(srv, s, m, false, "worker out of memory");
        return;
    }
    cell->spec = *spec;
    cell->attempt = attempt;
    snprintf(cell->key, sizeof(cell->key), "%s", key);
    snprintf(cell->coordinator_id, sizeof(cell->coordinator_id), "%s", s->coordinator_id);
    cell->session_serial = s->serial;
    cell->vcpus = vcpus;
    cell->memory_mib = mem;
    cell->assigned_ms = s_now_ms();
    cell->lease_deadline_ms = m->u.assign.lease_ms ? cell->assigned_ms + m->u.assign.lease_ms : 0;
    atomic_init(&cell->cancel, false);
    srv->used_vcpus += vcpus;
    srv->used_memory_mib += mem;
    zhashx_insert(srv->cells, key, cell);
    s_reply_accept(srv, s, m, true, NULL);
    kt_log(srv->cell_log_level, "cell=%.12s attempt=%u %s accepted from coordinator=%s",
           spec->cell_id, attempt, spec->cell_name, s->coordinator_id);
    bool need_fetch = !s_have(srv, spec->kernel_sha, spec->kernel_size) ||
                      (spec->sched_sha[0] && !s_have(srv, spec->sched_sha, spec->sched_size)) ||
                      (kt_payload_present(pl) && !s_have(srv, pl->sha, pl->size));
    if (need_fetch)
        s_send_progress(srv, cell, S_PHASE_FETCHING);
    s_cell_prepare(srv, cell);
    /* A run this session now owns may have results waiting here. */
    s_offer_more(srv, s);
}

static void s_on_chunk(s_server_t *srv, s_session_t *s, kt_msg_t *m)
{
    s_fetch_t *f = zhashx_lookup(srv->fetches, m->u.chunk.sha);
    if (!f || f->session_serial != s->serial) {
        kt_log_debug("CHUNK for artifact %.12s we are not fetching from peer=%s, ignoring",
                     m->u.chunk.sha, s->peer);
        return;
    }
    f->last_rx_ms = s_now_ms();
    uint64_t received = kt_artifact_in_received(f->in);
    if (m->u.chunk.total != kt_artifact_in_size(f->in)) {
        char why[200];
        snprintf(why, sizeof(why), "the coordinator says %llu bytes, the cell said %llu",
                 (unsigned long long)m->u.chunk.total,
                 (unsigned long long)kt_artifact_in_size(f->in));
        s_fetch_fail(srv, f, true, why);
        s_recheck_fetching(srv);
        return;
    }
    if (f->in_flight)
        f->in_flight--;
    if (m->u.chunk.offset < received) {
        kt_log_debug("artifact %.12s: duplicate chunk at %llu, ignoring", f->sha,
                     (unsigned long long)m->u.chunk.offset);
        return;
    }
    if (m->u.chunk.offset > received) {
        /* A chunk went missing (dropped at a full queue): ask again from
         * where the bytes stop. */
        kt_log_debug("artifact %.12s: gap at %llu (chunk at %llu), re-requesting", f->sha,
                     (unsigned long long)received, (unsigned long long)m->u.chunk.offset);
        f->requested_to = received;
        f->in_flight = 0;
        s_fetch_request(srv, f);
        return;
    }
    int r = kt_artifact_in_write(f->in, m->u.chunk.offset, m->u.chunk.data, m->u.chunk.len);
    if (r < 0) {
        char why[200];
        snprintf(why, sizeof(why), "writing %u bytes at %llu into '%s': %s", m->u.chunk.len,
                 (unsigned long long)m->u.chunk.offset, kt_artifacts_dir(srv->artifacts),
                 strerror(-r));
        s_fetch_fail(srv, f, r == -EFBIG, why);
        s_recheck_fetching(srv);
        return;
    }
    if (kt_artifact_in_received(f->in) < kt_artifact_in_size(f->in)) {
        if (m->u.chunk.last) {
            s_fetch_fail(srv, f, true, "the coordinator marked a chunk last before the end");
            s_recheck_fetching(srv);
            return;
        }
        if (f->in_flight == 0 || kt_artifact_in_received(f->in) >= f->requested_to) {
            f->requested_to = kt_artifact_in_received(f->in);
            f->in_flight = 0;
        }
        s_fetch_request(srv, f);
        return;
    }
    char why[300] = "";
    uint64_t took = s_now_ms() - f->started_ms;
    char sha[KT_SHA_HEX];
    snprintf(sha, sizeof(sha), "%s", f->sha);
    r = kt_artifact_in_commit(&f->in, why, sizeof(why));
    if (r < 0) {
        s_fetch_fail(srv, f, r == -EBADMSG, why);
        s_recheck_fetching(srv);
        return;
    }
    kt_log_info("artifact %.12s: received and verified in %llu ms", sha, (unsigned long long)took);
    zhashx_delete(srv->fetches, sha);
    s_recheck_fetching(srv);
}

static void s_on_ack(s_server_t *srv, s_session_t *s, kt_msg_t *m)
{
    const char *cell_id = m->u.ack.cell_id;
    uint32_t attempt = m->u.ack.attempt;
    kt_journal_entry_t *e = NULL;
    for (unsigned i = 0; i < s->n_runs && !e; i++)
        e = kt_journal_find(srv->journal, s->runs[i], cell_id, attempt);
    if (!e)
        for (kt_journal_entry_t *x = kt_journal_first(srv->journal); x;
             x = kt_journal_next(srv->journal))
            if (x->attempt == attempt && strcmp(x->cell_id, cell_id) == 0 &&
                (x->offered_to == s->serial || s_entry_for_session(x, s))) {
                e = x;
                break;
            }
    if (!e) {
        kt_log_debug("RESULT_ACK for cell=%.12s attempt=%u we do not hold (already acked)",
                     cell_id, attempt);
        return;
    }
    s_entry_set_offered(srv, e, NULL);
    srv->n_unoffered--;
    char run[40];
    snprintf(run, sizeof(run), "%s", e->run_id);
    int r = kt_journal_remove(srv->journal, run, cell_id, attempt);
    if (r < 0)
        kt_log_warn("journal: cannot remove cell=%.12s attempt=%u: %s, ignoring", cell_id,
                    attempt, strerror(-r));
    s_offer_more(srv, s);
}

static void s_on_cancel(s_server_t *srv, s_session_t *s, kt_msg_t *m)
{
    s_cell_t *c = s_cell_for_session(srv, s, m->u.ack.cell_id, m->u.ack.attempt);
    if (!c) {
        kt_log_debug("CANCEL for cell=%.12s attempt=%u that is not running here",
                     m->u.ack.cell_id, m->u.ack.attempt);
        return;
    }
    c->cancel_requested = true;
    atomic_store(&c->cancel, true);
    kt_log_info("cell=%.12s attempt=%u cancelled by coordinator=%s%s", c->spec.cell_id,
                c->attempt, s->coordinator_id,
                c->state == S_CELL_RUNNING ? " (it runs to its end; the result says so)" : "");
    if (c->state == S_CELL_FETCHING)
        s_cell_abort(srv, c, "cancelled", "cancelled by the coordinator before it started");
}

/* One line per bad message, at most S_GARBAGE_LOG_PER_SEC a second. */
static void s_garbage_as(s_server_t *srv, const char *what, const char *peer, const char *why)
{
    srv->garbage++;
    uint64_t now = s_now_ms();
    if (now - srv->garbage_window_ms >= 1000) {
        if (srv->garbage_suppressed)
            kt_log_warn("%u more bad messages or refused peers in the last second (not shown)",
                        srv->garbage_suppressed);
        srv->garbage_window_ms = now;
        srv->garbage_in_window = 0;
        srv->garbage_suppressed = 0;
    }
    if (srv->garbage_in_window++ < S_GARBAGE_LOG_PER_SEC)
        kt_log_warn("%s%s: %s, ignoring", what, peer, why);
    else
        srv->garbage_suppressed++;
}

static void s_garbage(s_server_t *srv, const char *peer, const char *why)
{
    s_garbage_as(srv, "bad message from peer=", peer, why);
}

static void s_handle(s_server_t *srv, zframe_t *rid, kt_msg_t *m)
{
    char key[sizeof(((s_session_t *)0)->key)];
    s_key_of(rid, key, sizeof(key));
    if (m->type == KT_MSG_OPEN) {
        s_on_open(srv, rid, key, m);
        return;
    }
    s_session_t *s = zhashx_lookup(srv->sessions, key);
    if (!s) {
        /* ERROR never answers ERROR: two confused peers would ping-pong. */
        if (m->type != KT_MSG_ERROR && m->type != KT_MSG_REFUSE)
            kt_wire_send_error(srv->router, rid, KT_CODE_GONE, "no session (expired or never opened): send OPEN (%s)",
                             kt_msg_type_name(m->type));
        return;
    }
    s->last_rx_ms = s_now_ms();
    if (!s->welcomed && m->type != KT_MSG_WELCOME && m->type != KT_MSG_REFUSE &&
        m->type != KT_MSG_HEARTBEAT && m->type != KT_MSG_ERROR) {
        kt_wire_send_error(srv->router, rid, KT_CODE_NO_SESSION, "session not welcomed yet (%s)",
                         kt_msg_type_name(m->type));
        return;
    }
    switch (m->type) {
    case KT_MSG_WELCOME:
        s_on_welcome(srv, s, m);
        break;
    case KT_MSG_REFUSE:
        kt_log_warn("coordinator=%s refused this worker: %u %s", s->coordinator_id,
                    m->u.refuse.code, m->u.refuse.reason);
        s_session_expire(srv, s, "refused by the coordinator");
        break;
    case KT_MSG_HEARTBEAT:
        break;
    case KT_MSG_ASSIGN:
        s_on_assign(srv, s, m);
        break;
    case KT_MSG_CHUNK:
        s_on_chunk(srv, s, m);
        break;
    case KT_MSG_RESULT_ACK:
        s_on_ack(srv, s, m);
        break;
    case KT_MSG_CANCEL:
        s_on_cancel(srv, s, m);
        break;
    case KT_MSG_ERROR:
        kt_log_warn("coordinator=%s reports an error: %u %s", s->coordinator_id,
                    m->u.error.code, m->u.error.text);
        break;
    default:
        char why[64];
        snprintf(why, sizeof(why), "%s, which only a worker sends", kt_msg_type_name(m->type));
        s_garbage(srv, s->peer, why);
        kt_wire_send_error(srv->router, rid, KT_CODE_BAD_MESSAGE, "%s is not a coordinator's message",
                         kt_msg_type_name(m->type));
        break;
    }
}

/* ---- the loop ---- */

static int s_on_router(zloop_t *loop, zsock_t *sock, void *arg)
{
    s_server_t *srv = arg;
    for (int i = 0; i < S_BATCH; i++) {
        zframe_t *rid = NULL;
        kt_msg_t m;
        char why[256] = "";
        int r = kt_wire_recv(sock, &rid, &m, why, sizeof(why));
        if (r == -EAGAIN) {
            zframe_destroy(&rid);
            break;
        }
        if (r < 0 && r != -EBADMSG) {
            zframe_destroy(&rid);
            if (r != -EINTR)
                kt_log_warn("receiving on %s: %s", srv->endpoint, strerror(-r));
            break;
        }
        if (r < 0) {
            char peer[17] = "?";
            if (rid)
                s_hex(zframe_data(rid), zframe_size(rid), peer, sizeof(peer));
            s_garbage(srv, peer, why[0] ? why : strerror(-r));
            if (rid && r == -EBADMSG)
                kt_wire_send_error(srv->router, rid, KT_CODE_BAD_MESSAGE, "%s", why);
            zframe_destroy(&rid);
            continue;
        }
        if (!rid) {
            kt_msg_clear(&m);
            continue;
        }
        s_handle(srv, rid, &m);
        kt_msg_clear(&m);
        zframe_destroy(&rid);
    }
    return 0;
}

static int s_on_done(zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    s_server_t *srv = arg;
    s_cell_t *list = s_pool_take_done(srv->pool);
    while (list) {
        s_cell_t *c = list;
        list = c->next;
        c->next = NULL;
        s_cell_complete(srv, c);
    }
    return 0;
}

static void s_drain_begin(s_server_t *srv)
{
    if (srv->draining)
        return;
    srv->draining = true;
    kt_log_info("draining: %zu cells to finish, taking no new ones",
                zhashx_size(srv->cells));
    for (s_session_t *s = zhashx_first(srv->sessions); s; s = zhashx_next(srv->sessions))
        if (s->welcomed)
            s_send_drain(srv, s);
}

/* Drained when no cell is left and nothing journaled can still be
 * acknowledged by a live session (or the ack bound passed). */
static bool s_drain_done(s_server_t *srv, uint64_t now)
{
    if (zhashx_size(srv->cells) > 0) {
        srv->drain_idle_since_ms = 0;
        return false;
    }
    if (!srv->drain_idle_since_ms)
        srv->drain_idle_since_ms = now;
    if (now - srv->drain_idle_since_ms >= S_DRAIN_ACK_BOUND_MS)
        return true;
    for (kt_journal_entry_t *e = kt_journal_first(srv->journal); e;
         e = kt_journal_next(srv->journal)) {
        if (e->offered_to && s_session_by_serial(srv, e->offered_to))
            return false;
        for (s_session_t *s = zhashx_first(srv->sessions); s; s = zhashx_next(srv->sessions))
            if (s->welcomed && s_entry_for_session(e, s))
                return false;
    }
    return true;
}

static int s_on_tick(zloop_t *loop, int timer_id, void *arg)
{
    s_server_t *srv = arg;
    uint64_t now = s_now_ms();
    s_session_t *expired[S_MAX_SESSIONS];
    unsigned n_exp = 0;
    for (s_session_t *s = zhashx_first(srv->sessions); s; s = zhashx_next(srv->sessions)) {
        if (now - s->last_rx_ms >= s->lost_ms) {
            if (n_exp < S_MAX_SESSIONS)
                expired[n_exp++] = s;
            continue;
        }
        if (s->welcomed && now - s->last_hb_ms >= s->hb_ms)
            s_send_heartbeat(srv, s);
    }
    for (unsigned i = 0; i < n_exp; i++) {
        char why[64];
        snprintf(why, sizeof(why), "silent for %llu ms",
                 (unsigned long long)(now - expired[i]->last_rx_ms));
        s_session_expire(srv, expired[i], why);
    }

    /* Stalled transfers: ask again, then give up. */
    s_fetch_t *stalled[64];
    unsigned n_st = 0;
    uint64_t stall_ms = srv->lost_after_ms > 2000 ? srv->lost_after_ms : 2000;
    for (s_fetch_t *f = zhashx_first(srv->fetches); f && n_st < 64;
         f = zhashx_next(srv->fetches))
        if (now - f->last_rx_ms >= stall_ms)
            stalled[n_st++] = f;
    for (unsigned i = 0; i < n_st; i++) {
        s_fetch_t *f = stalled[i];
        if (++f->retries > S_FETCH_RETRIES) {
            s_fetch_fail(srv, f, false, "no bytes arrived after repeated requests");
            s_recheck_fetching(srv);
            continue;
        }
        f->last_rx_ms = now;
        f->requested_to = kt_artifact_in_received(f->in);
        f->in_flight = 0;
        s_fetch_request(srv, f);
    }

    for (s_cell_t *c = zhashx_first(srv->cells); c; c = zhashx_next(srv->cells))
        if (c->lease_deadline_ms && !c->lease_warned && now > c->lease_deadline_ms) {
            c->lease_warned = true;
            kt_log_warn("cell=%.12s attempt=%u is past its lease (%llu ms); the coordinator may "
                        "have given it to another worker",
                        c->spec.cell_id, c->attempt,
                        (unsigned long long)(c->lease_deadline_ms - c->assigned_ms));
        }

    /* Offers not acknowledged within lost_after: offer again. */
    if (now - srv->last_reoffer_scan_ms >= srv->lost_after_ms / 2) {
        srv->last_reoffer_scan_ms = now;
        for (kt_journal_entry_t *e = kt_journal_first(srv->journal); e;
             e = kt_journal_next(srv->journal))
            if (e->offered_to && now - e->offered_at_ms >= srv->lost_after_ms)
                s_entry_set_offered(srv, e, NULL);
    }
    s_offer_all(srv);

    if (srv->draining && !srv->drained_sent && s_drain_done(srv, now)) {
        srv->drained_sent = true;
        kt_log_info("drained: no cells left, %u results stay in the journal",
                    kt_journal_count(srv->journal));
        zstr_send(srv->pipe, "DRAINED");
    }
    return 0;
}

static int s_on_pipe(zloop_t *loop, zsock_t *pipe, void *arg)
{
    s_server_t *srv = arg;
    char *cmd = zstr_recv(pipe);
    if (!cmd)
        return -1;
    int r = 0;
    if (strcmp(cmd, "$TERM") == 0)
        r = -1;
    else if (strcmp(cmd, "DRAIN") == 0)
        s_drain_begin(srv);
    else if (strcmp(cmd, "ENDPOINT") == 0)
        zstr_send(pipe, srv->endpoint);
    else if (strcmp(cmd, "STATUS") == 0) {
        uint32_t fv;
        uint64_t fm;
        s_fill_capacity(srv, &fv, &fm);
        zstr_sendf(pipe,
                   "sessions=%zu cells=%zu running=%u fetching=%zu journal=%u free_vcpus=%u "
                   "free_memory_mib=%llu draining=%d garbage=%llu",
                   zhashx_size(srv->sessions), zhashx_size(srv->cells), srv->n_running,
                   zhashx_size(srv->fetches), kt_journal_count(srv->journal), fv,
                   (unsigned long long)fm, srv->draining ? 1 : 0,
                   (unsigned long long)srv->garbage);
    } else
        kt_log_warn("serve: unknown pipe command '%.40s', ignoring", cmd);
    free(cmd);
    return r;
}

/* ---- start-up and tear-down ---- */

static bool s_bind_is_loopback(const char *ep)
{
    if (strncmp(ep, "ipc://", 6) == 0 || strncmp(ep, "inproc://", 9) == 0)
        return true;
    if (strncmp(ep, "tcp://", 6) != 0)
        return false;
    const char *host = ep + 6;
    const char *semi = strchr(host, ';'); /* "source;destination" is for connects */
    if (semi)
        return false;
    const char *colon = strrchr(host, ':');
    if (!colon)
        return false;
    size_t n = (size_t)(colon - host);
    char h[256];
    if (n == 0 || n >= sizeof(h))
        return false;
    memcpy(h, host, n);
    h[n] = '\0';
    if (h[0] == '[' && n > 2 && h[n - 1] == ']') {
        memmove(h, h + 1, n - 2);
        h[n - 2] = '\0';
    }
    return strncmp(h, "127.", 4) == 0 || strcmp(h, "localhost") == 0 || strcmp(h, "::1") == 0 ||
           strcmp(h, "lo") == 0;
}

static int s_mkdir_p(const char *path, mode_t mode)
{
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
        return -ENAMETOOLONG;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, mode) < 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(buf, mode) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

static void s_default_cache(char *buf, size_t len)
{
    if (geteuid() == 0) {
        snprintf(buf, len, "/var/cache/ktstr");
        return;
    }
    const char *xdg = getenv("XDG_CACHE_HOME");
    const char *home = getenv("HOME");
    if (xdg && *xdg)
        snprintf(buf, len, "%s/ktstr", xdg);
    else if (home && *home)
        snprintf(buf, len, "%s/.cache/ktstr", home);
    else
        snprintf(buf, len, "/tmp/ktstr-cache-%u", (unsigned)getuid());
}

static int s_fail(s_server_t *srv, int r, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int s_fail(s_server_t *srv, int r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(srv->error, sizeof(srv->error), fmt, ap);
    va_end(ap);
    return r < 0 ? r : -EINVAL;
}

/* A peer that failed the CURVE handshake never reaches s_handle: say so in
 * the log (rate-limited like garbage), so an operator sees why a
 * coordinator gets nothing here. */
static int s_on_monitor(zloop_t *loop, zsock_t *sock, void *arg)
{
    s_server_t *srv = arg;
    zmsg_t *msg = zmsg_recv(sock);
    if (!msg)
        return 0;
    zframe_t *ev = zmsg_first(msg);
    zframe_t *addr = zmsg_next(msg);
    if (ev && zframe_size(ev) >= 6) {
        const uint8_t *d = zframe_data(ev);
        uint16_t event;
        uint32_t value;
        memcpy(&event, d, sizeof(event));
        memcpy(&value, d + 2, sizeof(value));
        char where[128] = "?";
        if (addr)
            snprintf(where, sizeof(where), "%.*s", (int)zframe_size(addr),
                     (const char *)zframe_data(addr));
        char why[200];
        if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
            snprintf(why, sizeof(why),
                     "CURVE: the coordinator's key is not in '%s' (ZAP status %u)",
                     srv->cfg->allow_dir, value);
        else
            snprintf(why, sizeof(why), "CURVE handshake failed (%s 0x%x)",
                     event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL ? "protocol" : "no detail",
                     value);
        s_garbage_as(srv, "refused a connection on endpoint=", where, why);
    }
    zmsg_destroy(&msg);
    return 0;
}

static int s_curve_setup(s_server_t *srv)
{
    const kt_serve_config_t *cfg = srv->cfg;
    struct stat st;
    if (stat(cfg->allow_dir, &st) < 0 || !S_ISDIR(st.st_mode))
        return s_fail(srv, -ENOTDIR, "--allow '%s': not a directory of coordinator public keys",
                      cfg->allow_dir);
    zcert_t *cert = zcert_load(cfg->curve_secret);
    if (!cert)
        return s_fail(srv, -ENOENT, "--curve-secret '%s': not a readable CURVE certificate",
                      cfg->curve_secret);
    static const char zero_key[] = "0000000000000000000000000000000000000000";
    if (strcmp(zcert_secret_txt(cert), zero_key) == 0) {
        zcert_destroy(&cert);
        return s_fail(srv, -EINVAL,
                      "--curve-secret '%s' holds no secret key (pass the *_secret file)",
                      cfg->curve_secret);
    }
    srv->auth = zactor_new(zauth, NULL);
    if (!srv->auth) {
        zcert_destroy(&cert);
        return s_fail(srv, -ENOMEM, "cannot start the CURVE authenticator");
    }
    zstr_sendx(srv->auth, "CURVE", cfg->allow_dir, NULL);
    zsock_wait(srv->auth);
    zcert_apply(cert, srv->router);
    zsock_set_curve_server(srv->router, 1);
    char ep[64];
    snprintf(ep, sizeof(ep), "inproc://kt-serve-monitor-%p", (void *)srv);
    if (zmq_socket_monitor(zsock_resolve(srv->router), ep,
                           ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                               ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) == 0) {
        srv->monitor = zsock_new(ZMQ_PAIR);
        if (srv->monitor && zsock_connect(srv->monitor, "%s", ep) < 0)
            zsock_destroy(&srv->monitor);
    }
    kt_log_info("CURVE on: worker key %s, coordinators allowed from '%s'",
                zcert_public_txt(cert), cfg->allow_dir);
    zcert_destroy(&cert);
    return 0;
}

static int s_server_start(s_server_t *srv)
{
    const kt_serve_config_t *cfg = srv->cfg;
    int r;
    if (!cfg->bind || !*cfg->bind)
        return s_fail(srv, -EINVAL, "no bind endpoint");
    if (!cfg->executor.run)
        return s_fail(srv, -EINVAL, "no executor");
    if ((cfg->curve_secret && !cfg->allow_dir) || (!cfg->curve_secret && cfg->allow_dir))
        return s_fail(srv, -EINVAL, "CURVE needs both --curve-secret FILE and --allow DIR");
    if (!cfg->curve_secret && !cfg->insecure && !s_bind_is_loopback(cfg->bind))
        return s_fail(srv, -EPERM,
                      "refusing to bind '%s' without CURVE: anyone who can reach it could run "
                      "code here; pass --curve-secret FILE --allow DIR, or --insecure",
                      cfg->bind);

    if (cfg->cache_dir && *cfg->cache_dir)
        snprintf(srv->cache_dir, sizeof(srv->cache_dir), "%s", cfg->cache_dir);
    else
        s_default_cache(srv->cache_dir, sizeof(srv->cache_dir));
    if ((r = s_mkdir_p(srv->cache_dir, 0755)) < 0)
        return s_fail(srv, r, "cache '%s': %s", srv->cache_dir, strerror(-r));
    char lock[PATH_MAX + 16];
    snprintf(lock, sizeof(lock), "%s/serve.lock", srv->cache_dir);
    srv->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (srv->lock_fd < 0)
        return s_fail(srv, -errno, "cache lock '%s': %s", lock, strerror(errno));
    if (flock(srv->lock_fd, LOCK_EX | LOCK_NB) < 0)
        return s_fail(srv, -EBUSY,
                      "cache '%s' is in use by another ktstr-worker serve (each needs its own "
                      "--cache: the journal is not shared)",
                      srv->cache_dir);
    if ((r = kt_artifacts_open(srv->cache_dir, &srv->artifacts)) < 0)
        return s_fail(srv, r, "artifact cache in '%s': %s", srv->cache_dir, strerror(-r));
    if ((r = kt_journal_open(srv->cache_dir, &srv->journal)) < 0)
        return s_fail(srv, r, "journal in '%s': %s", srv->cache_dir, strerror(-r));
    srv->n_unoffered = kt_journal_count(srv->journal);
    srv->offer_gen = 1;
    if (kt_journal_count(srv->journal) || kt_journal_bad(srv->journal))
        kt_log_info("journal: %u unacknowledged results to re-offer%s%u unreadable set aside)",
                    kt_journal_count(srv->journal), kt_journal_bad(srv->journal) ? " (" : " (",
                    kt_journal_bad(srv->journal));

    if (cfg->worker_id && *cfg->worker_id)
        snprintf(srv->worker_id, sizeof(srv->worker_id), "%s", cfg->worker_id);
    else if (gethostname(srv->worker_id, sizeof(srv->worker_id)) < 0 || !srv->worker_id[0])
        snprintf(srv->worker_id, sizeof(srv->worker_id), "worker");
    srv->worker_id[sizeof(srv->worker_id) - 1] = '\0';
    for (const char *p = srv->worker_id; *p; p++)
        if (*p <= 0x20 || *p > 0x7e || *p == '/' || *p == '\\')
            return s_fail(srv, -EINVAL,
                          "worker id '%s': printable ASCII without blanks or slashes only",
                          srv->worker_id);
    if (sodium_init() < 0)
        return s_fail(srv, -EIO, "libsodium failed to initialise");
    while (!srv->instance)
        randombytes_buf(&srv->instance, sizeof(srv->instance));
    struct utsname un;
    uname(&un);
    s_fmt(srv->arch, sizeof(srv->arch), "%s", un.machine);
    if (kt_host_info_read(&srv->host) < 0)
        kt_log_warn("cannot read the host's CPUs and memory, ignoring");
    /* HELLO says at least one of each. */
    if (!srv->host.cpus)
        srv->host.cpus = 1;
    if (!srv->host.llcs)
        srv->host.llcs = 1;
    if (!srv->host.memory_mib)
        srv->host.memory_mib = 1;
    srv->cap_vcpus = cfg->capacity_vcpus ? cfg->capacity_vcpus : srv->host.cpus;
    if (!srv->cap_vcpus)
        srv->cap_vcpus = 1;
    srv->cap_memory_mib =
        cfg->capacity_memory_mib ? cfg->capacity_memory_mib : srv->host.memory_mib * 3 / 4;
    srv->max_vcpus = cfg->max_vcpus_per_vm ? cfg->max_vcpus_per_vm : srv->cap_vcpus;
    if (srv->max_vcpus > srv->cap_vcpus)
        srv->max_vcpus = srv->cap_vcpus;
    srv->heartbeat_ms = cfg->heartbeat_ms ? cfg->heartbeat_ms : 1000;
    srv->lost_after_ms = cfg->lost_after_ms ? cfg->lost_after_ms : 5000;
    srv->cell_log_level =
        cfg->executor.name && strcmp(cfg->executor.name, "vm") == 0 ? KT_LOG_INFO : KT_LOG_DEBUG;
    srv->inline_exec = cfg->executor.name && strcmp(cfg->executor.name, "null") == 0;

    srv->router = zsock_new(ZMQ_ROUTER);
    if (!srv->router)
        return s_fail(srv, -ENOMEM, "cannot create the ROUTER socket");
    kt_wire_socket_setup(srv->router);
    zsock_set_router_handover(srv->router, 1);
    if (cfg->curve_secret && (r = s_curve_setup(srv)) < 0)
        return r;
    if (zsock_bind(srv->router, "%s", cfg->bind) < 0)
        return s_fail(srv, -errno, "cannot bind '%s': %s", cfg->bind, zmq_strerror(errno));
    char *last = zsock_last_endpoint(srv->router);
    snprintf(srv->endpoint, sizeof(srv->endpoint), "%s", last ? last : cfg->bind);
    free(last);

    if ((r = s_pool_new(cfg->executor, &srv->pool)) < 0)
        return s_fail(srv, r, "cannot create the runner pool: %s", strerror(-r));
    srv->sessions = zhashx_new();
    srv->cells = zhashx_new();
    srv->fetches = zhashx_new();
    srv->have = zhashx_new();
    srv->loop = zloop_new();
    if (!srv->sessions || !srv->cells || !srv->fetches || !srv->have || !srv->loop)
        return s_fail(srv, -ENOMEM, "out of memory");
    zhashx_set_destructor(srv->sessions, s_session_destroy);
    zhashx_set_destructor(srv->fetches, s_fetch_destroy);
    zloop_set_nonstop(srv->loop, true);
    zloop_reader(srv->loop, srv->pipe, s_on_pipe, srv);
    zloop_reader(srv->loop, srv->router, s_on_router, srv);
    if (srv->monitor)
        zloop_reader(srv->loop, srv->monitor, s_on_monitor, srv);
    zmq_pollitem_t item = {NULL, srv->pool->efd, ZMQ_POLLIN, 0};
    zloop_poller(srv->loop, &item, s_on_done, srv);
    s_set_tick(srv, srv->heartbeat_ms);
    kt_log_info("serving on %s worker=%s executor=%s accel=%s capacity=%u vCPUs %llu MiB "
                "(max %u per VM) cache='%s'",
                srv->endpoint, srv->worker_id, cfg->executor.name,
                cfg->accel_name ? cfg->accel_name : "tcg", srv->cap_vcpus,
                (unsigned long long)srv->cap_memory_mib, srv->max_vcpus, srv->cache_dir);
    return 0;
}

static void s_server_stop(s_server_t *srv)
{
    if (srv->pool) {
        /* Stop now: results already back are journaled and sent; cells not
         * yet handed to a runner end here; running ones are told to cancel
         * and left to their runners, which free them when the executor
         * returns. Their results are dropped: the coordinator sees this
         * worker gone and runs them again, a cancelled result would only
         * claim something that did not happen. */
        s_pool_t *p = srv->pool;
        pthread_mutex_lock(&p->lock);
        p->stop = true;
        for (s_cell_t *c = p->jobs_head; c; c = c->next)
            c->state = S_CELL_FETCHING;
        p->jobs_head = p->jobs_tail = NULL;
        s_cell_t *done = p->done_head;
        p->done_head = p->done_tail = NULL;
        pthread_cond_broadcast(&p->work);
        pthread_mutex_unlock(&p->lock);
        while (done) {
            s_cell_t *c = done;
            done = c->next;
            c->next = NULL;
            s_cell_complete(srv, c);
        }
        if (srv->cells) {
            s_cell_t *orphans[S_MAX_CELLS];
            unsigned n = 0;
            for (s_cell_t *c = zhashx_first(srv->cells); c && n < S_MAX_CELLS;
                 c = zhashx_next(srv->cells))
                if (c->state == S_CELL_RUNNING)
                    orphans[n++] = c;
            for (unsigned i = 0; i < n; i++) {
                atomic_store(&orphans[i]->cancel, true);
                zhashx_delete(srv->cells, orphans[i]->key);
            }
            if (n)
                kt_log_warn("stopping with %u cells still running: they are abandoned and the "
                            "coordinator will run them again",
                            n);
        }
        pthread_mutex_lock(&p->lock);
        s_pool_unref_locked(p);
        srv->pool = NULL;
    }
    if (srv->cells) {
        for (s_cell_t *c = zhashx_first(srv->cells); c; c = zhashx_next(srv->cells))
            s_cell_free(c);
        zhashx_destroy(&srv->cells);
    }
    zloop_destroy(&srv->loop);
    zhashx_destroy(&srv->fetches);
    zhashx_destroy(&srv->have);
    zhashx_destroy(&srv->sessions);
    if (srv->router && srv->monitor)
        zmq_socket_monitor(zsock_resolve(srv->router), NULL, 0);
    zsock_destroy(&srv->monitor);
    zsock_destroy(&srv->router);
    zactor_destroy(&srv->auth);
    kt_journal_destroy(&srv->journal);
    kt_artifacts_destroy(&srv->artifacts);
    if (srv->lock_fd >= 0)
        close(srv->lock_fd);
    srv->lock_fd = -1;
}

/* The actor body; error (may be NULL) receives why start-up failed. */
static void s_actor_run(zsock_t *pipe, const kt_serve_config_t *cfg, char *error, size_t len)
{
    s_server_t *srv = calloc(1, sizeof(*srv));
    if (!srv) {
        if (error)
            snprintf(error, len, "out of memory");
        zsock_signal(pipe, 1);
        goto wait_term;
    }
    srv->cfg = cfg;
    srv->pipe = pipe;
    srv->lock_fd = -1;
    if (s_server_start(srv) < 0) {
        kt_log_error("serve: %s", srv->error);
        if (error)
            snprintf(error, len, "%s", srv->error);
        s_server_stop(srv);
        free(srv);
        zsock_signal(pipe, 1);
        goto wait_term;
    }
    zsock_signal(pipe, 0);
    zloop_start(srv->loop);
    s_server_stop(srv);
    free(srv);
    return;
wait_term:
    for (;;) {
        char *cmd = zstr_recv(pipe);
        bool term = !cmd || strcmp(cmd, "$TERM") == 0;
        free(cmd);
        if (term)
            return;
    }
}

void kt_serve_actor(zsock_t *pipe, void *args)
{
    s_actor_run(pipe, args, NULL, 0);
}

typedef struct s_actor_args {
    const kt_serve_config_t *cfg;
    char error[512];
} s_actor_args_t;

static void s_actor_shim(zsock_t *pipe, void *args)
{
    s_actor_args_t *a = args;
    s_actor_run(pipe, a->cfg, a->error, sizeof(a->error));
    /* On success nobody else holds a; on failure the creator frees it. */
    if (!a->error[0])
        free(a);
}

zactor_t *kt_serve_actor_new(const kt_serve_config_t *cfg)
{
    s_actor_args_t *a = calloc(1, sizeof(*a));
    if (!a)
        return NULL;
    a->cfg = cfg;
    zactor_t *actor = zactor_new(s_actor_shim, a);
    if (!actor) {
        free(a);
        return NULL;
    }
    if (a->error[0]) {
        zactor_destroy(&actor);
        free(a);
        return NULL;
    }
    return actor;
}

int kt_serve_main(const kt_serve_config_t *cfg)
{
    /* Signals arrive on a signalfd; runner threads and czmq's inherit the
     * mask, so none of them is interrupted. */
    zsys_handler_set(NULL);
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    pthread_sigmask(SIG_BLOCK, &mask, NULL);
    _cleanup_close_ int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sfd < 0) {
        kt_log_error("serve: signalfd: %m");
        return 1;
    }
    zactor_t *actor = kt_serve_actor_new(cfg);
    if (!actor)
        return 1;
    zpoller_t *poller = zpoller_new(actor, NULL);
    int status = 0;
    bool draining = false;
    for (;;) {
        void *which = zpoller_wait(poller, 200);
        if (which == actor) {
            char *msg = zstr_recv(actor);
            bool drained = msg && strcmp(msg, "DRAINED") == 0;
            free(msg);
            if (drained)
                break;
        }
        struct signalfd_siginfo si;
        bool stop = false;
        while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
            if (si.ssi_signo == SIGTERM && !draining) {
                draining = true;
                kt_log_info("SIGTERM: draining (finishing running cells, taking no new ones); "
                            "a second SIGTERM or SIGINT stops now");
                zstr_send(actor, "DRAIN");
            } else {
                kt_log_info("%s: stopping now", si.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM");
                stop = true;
            }
        }
        if (stop)
            break;
        if (zpoller_terminated(poller)) {
            status = 1;
            break;
        }
    }
    zpoller_destroy(&poller);
    zactor_destroy(&actor);
    return status;
}
