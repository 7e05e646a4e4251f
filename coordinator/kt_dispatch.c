/* The coordinator's dispatcher: one thread, one zmq_poll loop over a DEALER
 * per worker endpoint (and a monitor PAIR per DEALER, for CURVE handshake
 * failures). Per message the work is O(1): cells wait in a few FIFO queues,
 * one per size class (vCPUs, memory), largest class first; a worker's cells
 * are an intrusive list; cell ids are found through a hash table. The store,
 * when there is one, sees every attempt and result; results are acknowledged
 * to a worker only after the store has them (see s_flush_acks).
 *
 * Fencing: a cell's attempt number only grows. A RESULT counts only when it
 * is for the cell's current attempt on the worker that holds it (or, after a
 * --resume, for the attempt the previous coordinator left running); anything
 * else is stale: recorded, acknowledged so the worker forgets it, never
 * counted. */
#include "kt_dispatch.h"

#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "kt_cleanup.h"
#include "kt_log.h"
#include "kt_metrics.h"
#include "kt_sidecar.h"
#include "kt_wire.h"

#define S_NIL (-1)
#define S_RECV_BATCH 256         /* messages per socket per loop turn */
#define S_MAX_ZOMBIES 64         /* cancelled attempts still holding a slot */
#define S_DEFAULT_LEASE_SLACK_MS (300u * 1000)
#define S_WHY_MAX 512
#define S_MAX_DEFERRED 4096
#define S_STALL_NOTE_MS 60000    /* say why cells wait when nothing moved this long */
#define S_GARBAGE_NOTES 3        /* bad messages noted one by one per worker, then every 1000th */

enum s_cell_state {
    C_IDLE = 0,   /* not part of this dispatch (done before, or not in todo) */
    C_QUEUED,
    C_HELD,       /* --resume: waits for a journaled result of its last attempt first */
    C_ASSIGNED,
    C_DONE,
};

enum s_worker_state {
    W_CONNECTING = 0, /* OPEN sent, no HELLO yet */
    W_UP,
    W_DRAINING,       /* takes nothing new, finishes what it has */
    W_REFUSED,        /* said no for good (version, duplicate, 4xx) */
};

static const char *const s_wstate_names[] = {"connecting", "up", "draining", "refused"};

typedef struct s_cell {
    uint8_t state;
    bool accepted;      /* the worker ACCEPTed the current attempt */
    bool last_lost;     /* the last begun attempt ended without a result */
    bool orphan_ok;     /* --resume: attempt `attempt` may still report (never marked lost) */
    uint32_t attempt;   /* last begun attempt, 0 for none */
    uint32_t losses;
    uint32_t refusals;
    int32_t worker;
    int32_t next, prev; /* in a class queue or in a worker's list */
    uint32_t cls;
    uint64_t queued_us, assigned_us;
    char *history;      /* why its attempts were lost; allocated on the first loss */
} s_cell_t;

typedef struct s_class {
    unsigned vcpus;
    uint64_t mem;
    int32_t head, tail;
    unsigned n;
} s_class_t;

typedef struct s_artifact {
    const char *sha;
    const char *path;
    uint64_t size;
    int fd;
} s_artifact_t;

typedef struct s_zombie {
    uint32_t cell, attempt;
    unsigned vcpus;
    uint64_t mem;
} s_zombie_t;

typedef struct s_worker {
    const kt_host_t *host;
    unsigned idx;
    zsock_t *sock;
    zsock_t *mon;
    enum s_worker_state state;
    bool need_reset;    /* socket to be replaced before the next poll */
    bool ever_hello;
    bool silent_noted;
    bool auth_failed;
    bool dirty;         /* capacity went up: try to assign */
    uint64_t session;
    unsigned sessions;
    char worker_id[KT_ID_MAX];
    uint64_t instance;
    char arch[16];
    char accel[8];
    unsigned host_cpus, max_vcpus;
    uint32_t canary_ms;
    uint64_t host_mem;
    unsigned cap_vcpus, out_vcpus;  /* what we may use there, what we use */
    uint64_t cap_mem, out_mem;
    unsigned best_vcpus;            /* the most it ever offered us */
    uint64_t best_mem;
    unsigned n_out;
    int32_t head, tail;
    s_zombie_t zombies[S_MAX_ZOMBIES];
    unsigned n_zombies;
    uint64_t last_rx_us, open_tx_us, hb_seq;
    uint64_t garbage;
    bool *has;                      /* per run artifact: the worker has it */
    unsigned done;
    char why[S_WHY_MAX];
} s_worker_t;

typedef struct s_ack {
    uint32_t worker;
    uint32_t cell;
    uint32_t attempt;
    unsigned sessions; /* the session it belongs to */
} s_ack_t;

/* A stale result whose attempt is still the store's latest for its cell:
 * recorded once the next attempt begins (or the cell ends), so the store
 * never mistakes it for the cell's result. */
typedef struct s_deferred {
    uint32_t cell, attempt;
    char worker[KT_ID_MAX];
    char verdict[8];
    char reason[256];
} s_deferred_t;

typedef struct s_dispatch {
    const kt_dispatch_config_t *cfg;
    kt_coord_run_t *run;
    uint32_t hb_ms, lost_ms, status_ms, no_worker_ms;
    unsigned max_attempts;
    s_cell_t *cells;
    unsigned n_cells;
    s_class_t *classes;
    unsigned n_classes;
    s_worker_t *workers;
    unsigned n_workers;
    s_artifact_t *arts;
    unsigned n_arts;
    int32_t *map;
    uint32_t map_mask;
    zmq_pollitem_t *items;
    int32_t *item_worker; /* >= 0: worker socket, < 0: -(worker + 1) monitor */
    unsigned n_items;
    bool items_dirty;
    kt_msg_t *rx, *tx;
    uint8_t *chunk_buf;
    s_ack_t *acks;
    unsigned n_acks, cap_acks;
    s_deferred_t *deferred;
    unsigned n_deferred;
    zcert_t *cert;
    unsigned total, n_queued, n_running, n_done;
    uint64_t est_left_ms;
    kt_dispatch_summary_t sum;
    bool queue_grew, changed, oversize_dirty;
    unsigned n_held;
    uint64_t all_heard_us;
    uint64_t t0_us, now_us, next_hb_us, next_status_us, next_lease_us, next_gone_us, last_up_us;
    uint64_t last_move_us;  /* last assignment or result */
    bool any_up_ever;
    unsigned rr;          /* round-robin start for assignment */
    unsigned mon_seq;
    char coord_id[KT_ID_MAX];
    kt_dispatch_worker_status_t *wst;
} s_dispatch_t;

/* Bounded copy that always terminates (and says nothing about truncation:
 * the fields it copies between are bounded the same way by the decoder). */
static void s_copy(char *dst, size_t size, const char *src)
{
    size_t n = strnlen(src, size - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static uint64_t s_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

__attribute__((format(printf, 2, 3))) static void s_note(s_dispatch_t *d, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (d->cfg->events.note)
        d->cfg->events.note(d->cfg->events.userdata, "%s", buf);
    else
        kt_log_info("%s", buf);
}

static const char *s_wname(const s_worker_t *w)
{
    return w->host->name[0] ? w->host->name : w->host->endpoint;
}

static const char *s_cname(const s_dispatch_t *d, unsigned ci)
{
    return d->run->cells[ci].spec.cell_name;
}

/* ---- cell id map ---- */

static uint64_t s_hash_id(const char *id)
{
    /* Cell ids are sha256 hex: their first 16 digits are already uniform;
     * fold the whole string anyway (FNV-1a) so odd ids cannot cluster. */
    uint64_t h = 1469598103934665603ull;
    for (const unsigned char *p = (const unsigned char *)id; *p; p++)
        h = (h ^ *p) * 1099511628211ull;
    return h;
}

static int s_map_build(s_dispatch_t *d)
{
    uint32_t size = 16;
    while (size < d->n_cells * 2u + 1)
        size <<= 1;
    d->map = malloc(sizeof(*d->map) * size);
    if (!d->map)
        return -ENOMEM;
    for (uint32_t i = 0; i < size; i++)
        d->map[i] = S_NIL;
    d->map_mask = size - 1;
    for (unsigned i = 0; i < d->n_cells; i++) {
        uint32_t h = (uint32_t)s_hash_id(d->run->cells[i].spec.cell_id) & d->map_mask;
        while (d->map[h] != S_NIL) {
            if (strcmp(d->run->cells[d->map[h]].spec.cell_id, d->run->cells[i].spec.cell_id) == 0)
                return -EEXIST;
            h = (h + 1) & d->map_mask;
        }
        d->map[h] = (int32_t)i;
    }
    return 0;
}

static int32_t s_cell_find(const s_dispatch_t *d, const char *id)
{
    uint32_t h = (uint32_t)s_hash_id(id) & d->map_mask;
    while (d->map[h] != S_NIL) {
        if (strcmp(d->run->cells[d->map[h]].spec.cell_id, id) == 0)
            return d->map[h];
        h = (h + 1) & d->map_mask;
    }
    return S_NIL;
}

/* ---- queues ---- */

static void s_queue_push(s_dispatch_t *d, unsigned ci, bool front)
{
    s_cell_t *c = &d->cells[ci];
    s_class_t *q = &d->classes[c->cls];
    c->state = C_QUEUED;
    c->worker = S_NIL;
    c->queued_us = d->now_us;
    if (front) {
        c->prev = S_NIL;
        c->next = q->head;
        if (q->head != S_NIL)
            d->cells[q->head].prev = (int32_t)ci;
        q->head = (int32_t)ci;
        if (q->tail == S_NIL)
            q->tail = (int32_t)ci;
    } else {
        c->next = S_NIL;
        c->prev = q->tail;
        if (q->tail != S_NIL)
            d->cells[q->tail].next = (int32_t)ci;
        q->tail = (int32_t)ci;
        if (q->head == S_NIL)
            q->head = (int32_t)ci;
    }
    q->n++;
    d->n_queued++;
    d->queue_grew = true;
}

static void s_queue_remove(s_dispatch_t *d, unsigned ci)
{
    s_cell_t *c = &d->cells[ci];
    s_class_t *q = &d->classes[c->cls];
    if (c->prev != S_NIL)
        d->cells[c->prev].next = c->next;
    else
        q->head = c->next;
    if (c->next != S_NIL)
        d->cells[c->next].prev = c->prev;
    else
        q->tail = c->prev;
    c->next = c->prev = S_NIL;
    q->n--;
    d->n_queued--;
}

static void s_held_remove(s_dispatch_t *d, unsigned ci)
{
    if (d->cells[ci].state == C_HELD)
        d->n_held--;
}

/* --resume: cells whose last attempt may sit finished in a worker's journal
 * wait until every worker has had a heartbeat's time to re-offer it (or
 * 2 x lost_after), so they are not run again for nothing. */
static void s_held_release(s_dispatch_t *d)
{
    if (!d->n_held)
        return;
    bool all = true;
    for (unsigned i = 0; i < d->n_workers && all; i++) {
        const s_worker_t *w = &d->workers[i];
        all = w->ever_hello || w->state == W_REFUSED || w->auth_failed;
    }
    if (all && !d->all_heard_us)
        d->all_heard_us = d->now_us;
    bool go = (d->all_heard_us && d->now_us - d->all_heard_us >= (uint64_t)d->hb_ms * 1000) ||
              d->now_us - d->t0_us >= (uint64_t)d->lost_ms * 2000;
    if (!go)
        return;
    for (unsigned i = 0; i < d->n_cells; i++)
        if (d->cells[i].state == C_HELD) {
            d->n_held--;
            s_queue_push(d, i, true);
        }
}

static void s_worker_list_add(s_dispatch_t *d, s_worker_t *w, unsigned ci)
{
    s_cell_t *c = &d->cells[ci];
    c->prev = w->tail;
    c->next = S_NIL;
    if (w->tail != S_NIL)
        d->cells[w->tail].next = (int32_t)ci;
    w->tail = (int32_t)ci;
    if (w->head == S_NIL)
        w->head = (int32_t)ci;
    w->n_out++;
}

static void s_worker_list_remove(s_dispatch_t *d, s_worker_t *w, unsigned ci)
{
    s_cell_t *c = &d->cells[ci];
    if (c->prev != S_NIL)
        d->cells[c->prev].next = c->next;
    else
        w->head = c->next;
    if (c->next != S_NIL)
        d->cells[c->next].prev = c->prev;
    else
        w->tail = c->prev;
    c->next = c->prev = S_NIL;
    w->n_out--;
}

static int s_class_cmp(const void *a, const void *b)
{
    const s_class_t *x = a, *y = b;
    if (x->vcpus != y->vcpus)
        return x->vcpus > y->vcpus ? -1 : 1;
    if (x->mem != y->mem)
        return x->mem > y->mem ? -1 : 1;
    return 0;
}

static int s_classes_build(s_dispatch_t *d)
{
    d->classes = calloc(d->n_cells ? d->n_cells : 1, sizeof(*d->classes));
    if (!d->classes)
        return -ENOMEM;
    for (unsigned i = 0; i < d->n_cells; i++) {
        const kt_coord_cell_t *cc = &d->run->cells[i];
        bool found = false;
        for (unsigned k = 0; k < d->n_classes && !found; k++)
            found = d->classes[k].vcpus == cc->vcpus && d->classes[k].mem == cc->memory_mib;
        if (!found) {
            d->classes[d->n_classes].vcpus = cc->vcpus;
            d->classes[d->n_classes].mem = cc->memory_mib;
            d->n_classes++;
        }
    }
    qsort(d->classes, d->n_classes, sizeof(*d->classes), s_class_cmp);
    for (unsigned k = 0; k < d->n_classes; k++)
        d->classes[k].head = d->classes[k].tail = S_NIL;
    for (unsigned i = 0; i < d->n_cells; i++) {
        const kt_coord_cell_t *cc = &d->run->cells[i];
        for (unsigned k = 0; k < d->n_classes; k++)
            if (d->classes[k].vcpus == cc->vcpus && d->classes[k].mem == cc->memory_mib) {
                d->cells[i].cls = k;
                break;
            }
    }
    return 0;
}

/* ---- store ---- */

static void s_store_attempt_begin(s_dispatch_t *d, unsigned ci, unsigned attempt,
                                  const char *worker)
{
    if (!d->cfg->store)
        return;
    int r = kt_store_attempt_begin(d->cfg->store, d->run->run_id,
                                   d->run->cells[ci].spec.cell_id, attempt, worker);
    if (r < 0)
        s_note(d, "run store: attempt %u of %s not recorded: %s", attempt, s_cname(d, ci),
               strerror(-r));
}

static void s_store_attempt_lost(s_dispatch_t *d, unsigned ci, unsigned attempt, const char *why)
{
    if (!d->cfg->store)
        return;
    int r = kt_store_attempt_lost(d->cfg->store, d->run->run_id, d->run->cells[ci].spec.cell_id,
                                  attempt, why);
    if (r < 0)
        s_note(d, "run store: lost attempt %u of %s not recorded: %s", attempt, s_cname(d, ci),
               strerror(-r));
}

/* Records a result; *accepted says whether the store counted it. Without a
 * store, the dispatcher's own fencing decides (accepted = expect). */
static int s_store_result(s_dispatch_t *d, unsigned ci, unsigned attempt, const char *worker,
                          const char *verdict, const char *reason, const char *sidecar_path,
                          const char *metrics_json, bool expect, bool *accepted)
{
    *accepted = expect;
    if (!d->cfg->store)
        return 0;
    bool acc = false;
    int r = kt_store_result(d->cfg->store, d->run->run_id, d->run->cells[ci].spec.cell_id,
                            attempt, worker, verdict, reason, sidecar_path, metrics_json, &acc);
    if (r < 0) {
        s_note(d, "run store: result of %s attempt %u not recorded: %s", s_cname(d, ci), attempt,
               strerror(-r));
        return r;
    }
    *accepted = acc;
    return 0;
}

static void s_deferred_flush(s_dispatch_t *d, unsigned ci)
{
    for (unsigned i = 0; i < d->n_deferred;) {
        s_deferred_t *s = &d->deferred[i];
        if (s->cell != ci) {
            i++;
            continue;
        }
        bool acc;
        s_store_result(d, ci, s->attempt, s->worker, s->verdict, s->reason, NULL, NULL, false,
                       &acc);
        if (acc)
            s_note(d, "run store took a stale result of %s attempt %u as the cell's result",
                   s_cname(d, ci), s->attempt);
        d->deferred[i] = d->deferred[--d->n_deferred];
    }
}

/* ---- sending ---- */

static int s_send(s_dispatch_t *d, s_worker_t *w, const kt_msg_t *m)
{
    if (!w->sock)
        return -ENOTCONN;
    int r = kt_wire_send(w->sock, NULL, m);
    if (r < 0 && r != -EAGAIN)
        s_note(d, "worker %s: sending %s failed: %s", s_wname(w), kt_msg_type_name(m->type),
               strerror(-r));
    return r;
}

static void s_send_open(s_dispatch_t *d, s_worker_t *w)
{
    kt_msg_init(d->tx, KT_MSG_OPEN);
    d->tx->u.open.version = KT_PROTO_VERSION;
    snprintf(d->tx->u.open.coordinator_id, sizeof(d->tx->u.open.coordinator_id), "%s",
             d->coord_id);
    d->tx->u.open.session = w->session;
    s_send(d, w, d->tx);
    w->open_tx_us = d->now_us;
}

/* ---- worker sockets ---- */

static void s_worker_close(s_dispatch_t *d, s_worker_t *w, int linger_ms)
{
    if (w->sock) {
        zmq_socket_monitor(zsock_resolve(w->sock), NULL, 0);
        zsock_set_linger(w->sock, linger_ms);
        zsock_destroy(&w->sock);
    }
    zsock_destroy(&w->mon);
    d->items_dirty = true;
}

static uint64_t s_random64(void)
{
    uint64_t v = 0;
    if (getrandom(&v, sizeof(v), 0) != (ssize_t)sizeof(v))
        v = s_now_us() ^ ((uint64_t)getpid() << 32);
    return v ? v : 1;
}

static int s_worker_open(s_dispatch_t *d, s_worker_t *w)
{
    zsock_t *s = zsock_new(ZMQ_DEALER);
    if (!s)
        return -ENOMEM;
    kt_wire_socket_setup(s);
    zsock_set_sndtimeo(s, 0);
    zsock_set_rcvtimeo(s, 0);
    if (d->cert) {
        zcert_apply(d->cert, s);
        zsock_set_curve_serverkey(s, w->host->curve_public);
    }
    char ep[96];
    snprintf(ep, sizeof(ep), "inproc://kt-dispatch-mon-%p-%u", (void *)d, ++d->mon_seq);
    int events = ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                 ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_SUCCEEDED;
    if (zmq_socket_monitor(zsock_resolve(s), ep, events) == 0) {
        w->mon = zsock_new(ZMQ_PAIR);
        if (w->mon && zsock_connect(w->mon, "%s", ep) < 0)
            zsock_destroy(&w->mon);
    }
    if (zsock_connect(s, "%s", w->host->endpoint) < 0) {
        int e = errno ? errno : EINVAL;
        zmq_socket_monitor(zsock_resolve(s), NULL, 0);
        zsock_destroy(&w->mon);
        zsock_destroy(&s);
        snprintf(w->why, sizeof(w->why), "cannot connect to '%s': %s", w->host->endpoint,
                 zmq_strerror(e));
        return -e;
    }
    w->sock = s;
    w->state = W_CONNECTING;
    w->session = s_random64();
    d->items_dirty = true;
    s_send_open(d, w);
    return 0;
}

/* ---- capacity ---- */

static void s_worker_release(s_dispatch_t *d, s_worker_t *w, unsigned ci)
{
    const kt_coord_cell_t *cc = &d->run->cells[ci];
    s_worker_list_remove(d, w, ci);
    w->out_vcpus -= cc->vcpus <= w->out_vcpus ? cc->vcpus : w->out_vcpus;
    w->out_mem -= cc->memory_mib <= w->out_mem ? cc->memory_mib : w->out_mem;
    d->n_running--;
    w->dirty = true;
}

static void s_zombie_release(s_worker_t *w, unsigned ci, unsigned attempt)
{
    for (unsigned i = 0; i < w->n_zombies; i++)
        if (w->zombies[i].cell == ci && w->zombies[i].attempt == attempt) {
            w->out_vcpus -= w->zombies[i].vcpus <= w->out_vcpus ? w->zombies[i].vcpus
                                                                 : w->out_vcpus;
            w->out_mem -= w->zombies[i].mem <= w->out_mem ? w->zombies[i].mem : w->out_mem;
            w->zombies[i] = w->zombies[--w->n_zombies];
            w->dirty = true;
            return;
        }
}

/* ---- cell endings ---- */

static void s_count_verdict(s_dispatch_t *d, const char *verdict)
{
    d->sum.done++;
    if (strcmp(verdict, "pass") == 0)
        d->sum.pass++;
    else if (strcmp(verdict, "fail") == 0)
        d->sum.fail++;
    else if (strcmp(verdict, "skip") == 0)
        d->sum.skip++;
    else
        d->sum.error++;
}

static void s_cell_done(s_dispatch_t *d, unsigned ci, const char *verdict)
{
    s_cell_t *c = &d->cells[ci];
    c->state = C_DONE;
    d->n_done++;
    uint32_t est = kt_coord_cell_expect_ms(&d->run->cells[ci]);
    d->est_left_ms -= est <= d->est_left_ms ? est : d->est_left_ms;
    s_count_verdict(d, verdict);
    d->changed = true;
}

/* A verdict the coordinator reaches on its own (lost too often, fits no
 * worker, no worker at all): recorded as an attempt of its own by
 * "coordinator", so the lost attempts before it keep their rows. */
static void s_cell_error(s_dispatch_t *d, unsigned ci, const char *reason)
{
    s_cell_t *c = &d->cells[ci];
    const kt_coord_cell_t *cc = &d->run->cells[ci];
    if (c->state == C_QUEUED)
        s_queue_remove(d, ci);
    s_held_remove(d, ci);
    unsigned attempt = c->attempt + 1;
    c->attempt = attempt;
    c->last_lost = false;
    c->orphan_ok = false;
    s_store_attempt_begin(d, ci, attempt, "coordinator");
    s_deferred_flush(d, ci);
    kt_dispatch_result_t res = {
        .cell = cc,
        .index = ci,
        .attempt = attempt,
        .worker = "coordinator",
        .verdict = "error",
        .reason = reason,
        .queue_ms = (d->now_us - c->queued_us) / 1000,
        .from_coordinator = true,
    };
    char path[4096] = "";
    if (d->cfg->events.write_result) {
        int r = d->cfg->events.write_result(d->cfg->events.userdata, &res, path, sizeof(path));
        if (r < 0)
            s_note(d, "%s: sidecar not written: %s", cc->spec.cell_name, strerror(-r));
    }
    bool acc;
    s_store_result(d, ci, attempt, "coordinator", "error", reason, path[0] ? path : NULL, NULL,
                   true, &acc);
    s_cell_done(d, ci, "error");
    if (d->cfg->events.cell_done)
        d->cfg->events.cell_done(d->cfg->events.userdata, cc, attempt, "coordinator", "error",
                                 reason, NULL, 0, NULL, 0);
    d->last_move_us = d->now_us;
}

static void s_history_add(s_cell_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void s_history_add(s_cell_t *c, const char *fmt, ...)
{
    if (!c->history) {
        c->history = calloc(1, S_WHY_MAX);
        if (!c->history)
            return;
    }
    size_t n = strlen(c->history);
    if (n + 4 >= S_WHY_MAX)
        return;
    if (n)
        n += (size_t)snprintf(c->history + n, S_WHY_MAX - n, "; ");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->history + n, S_WHY_MAX - n, fmt, ap);
    va_end(ap);
}

/* The current attempt ended without a result (worker lost, lease expired):
 * fence it and queue the cell again, or give up after max_attempts. */
static void s_cell_lost(s_dispatch_t *d, s_worker_t *w, unsigned ci, const char *why)
{
    s_cell_t *c = &d->cells[ci];
    s_worker_release(d, w, ci);
    s_store_attempt_lost(d, ci, c->attempt, why);
    c->last_lost = true;
    c->orphan_ok = false;
    c->losses++;
    s_history_add(c, "attempt %u on %s: %s", c->attempt, s_wname(w), why);
    if (c->losses >= d->max_attempts) {
        char reason[S_WHY_MAX + 64];
        snprintf(reason, sizeof(reason), "lost %u times: %s", c->losses,
                 c->history ? c->history : why);
        s_note(d, "%s: %s", s_cname(d, ci), reason);
        s_cell_error(d, ci, reason);
        return;
    }
    d->sum.requeued++;
    s_queue_push(d, ci, true);
    d->oversize_dirty = true;
    d->changed = true;
}

/* Every cell the worker holds goes back to the queue; its socket is replaced
 * (after this loop turn) so nothing queued for the old session leaks into a
 * new one. */
static void s_worker_lost(s_dispatch_t *d, s_worker_t *w, const char *why)
{
    unsigned n = w->n_out;
    snprintf(w->why, sizeof(w->why), "%s", why);
    if (n || w->state == W_UP)
        s_note(d, "worker %s lost (%s)%s%u cell(s) requeued", s_wname(w), why, n ? ": " : ", ",
               n);
    while (w->head != S_NIL)
        s_cell_lost(d, w, (unsigned)w->head, why);
    w->n_zombies = 0;
    w->out_vcpus = 0;
    w->out_mem = 0;
    w->cap_vcpus = 0;
    w->cap_mem = 0;
    w->state = W_CONNECTING;
    w->need_reset = true;
    d->changed = true;
}

/* ---- assignment ---- */

static bool s_worker_takes(const s_worker_t *w)
{
    return w->state == W_UP && !w->need_reset;
}

static bool s_assign(s_dispatch_t *d, s_worker_t *w, unsigned ci)
{
    s_cell_t *c = &d->cells[ci];
    const kt_coord_cell_t *cc = &d->run->cells[ci];
    unsigned attempt = c->attempt + 1;
    if (attempt > KT_MSG_MAX_ATTEMPT) {
        s_cell_error(d, ci, "attempt numbers exhausted");
        return true;
    }
    kt_msg_init(d->tx, KT_MSG_ASSIGN);
    d->tx->u.assign.attempt = attempt;
    uint64_t lease = (uint64_t)cc->est_ms * 2 +
                     (d->cfg->lease_slack_ms ? d->cfg->lease_slack_ms : S_DEFAULT_LEASE_SLACK_MS);
    d->tx->u.assign.lease_ms = lease > KT_MSG_MAX_LEASE_MS ? KT_MSG_MAX_LEASE_MS : (uint32_t)lease;
    memcpy(&d->tx->u.assign.spec, &cc->spec, sizeof(cc->spec));
    int r = s_send(d, w, d->tx);
    if (r < 0) {
        /* Its queue is full (not reading) or the message is refused locally:
         * take nothing more until it shows life. */
        w->cap_vcpus = w->out_vcpus;
        w->cap_mem = w->out_mem;
        if (r == -EMSGSIZE) {
            s_cell_error(d, ci, "its ASSIGN message is over the protocol's size limits");
            return true;
        }
        return false;
    }
    s_queue_remove(d, ci);
    c->attempt = attempt;
    c->state = C_ASSIGNED;
    c->accepted = false;
    c->last_lost = false;
    c->orphan_ok = false;
    c->worker = (int32_t)w->idx;
    c->assigned_us = d->now_us;
    s_worker_list_add(d, w, ci);
    w->out_vcpus += cc->vcpus;
    w->out_mem += cc->memory_mib;
    d->n_running++;
    s_store_attempt_begin(d, ci, attempt, w->worker_id);
    s_deferred_flush(d, ci);
    if (d->cfg->events.assigned)
        d->cfg->events.assigned(d->cfg->events.userdata, cc, attempt, w->worker_id);
    d->changed = true;
    d->last_move_us = d->now_us;
    return true;
}

/* Fill the worker with the largest queued cells that fit what it has free. */
static void s_fill_worker(s_dispatch_t *d, s_worker_t *w)
{
    w->dirty = false;
    unsigned k = 0;
    while (k < d->n_classes && d->n_queued) {
        s_class_t *q = &d->classes[k];
        unsigned free_v = w->cap_vcpus > w->out_vcpus ? w->cap_vcpus - w->out_vcpus : 0;
        uint64_t free_m = w->cap_mem > w->out_mem ? w->cap_mem - w->out_mem : 0;
        if (!q->n || q->vcpus > free_v || q->mem > free_m ||
            (w->max_vcpus && q->vcpus > w->max_vcpus)) {
            k++;
            continue;
        }
        if (!s_assign(d, w, (unsigned)q->head))
            return;
    }
}

/* Cells that fit no worker: once every worker has spoken (or lost_after has
 * passed since the start), a class bigger than the biggest VM any worker
 * takes ends as `error` without a boot. */
static void s_check_oversize(s_dispatch_t *d)
{
    bool all_heard = true;
    unsigned max_v = 0;
    uint64_t max_m = 0;
    const char *best = "";
    for (unsigned i = 0; i < d->n_workers; i++) {
        const s_worker_t *w = &d->workers[i];
        if (!w->ever_hello && w->state != W_REFUSED && !w->auth_failed)
            all_heard = false;
        if (!w->ever_hello)
            continue;
        unsigned v = w->max_vcpus ? w->max_vcpus : w->best_vcpus;
        if (v > w->best_vcpus && w->best_vcpus)
            v = w->best_vcpus;
        if (v > max_v) {
            max_v = v;
            best = s_wname(w);
        }
        /* Never offered any memory yet (busy with another coordinator):
         * judge by what the host has, not by zero. */
        uint64_t m = w->best_mem ? w->best_mem : w->host_mem;
        if (m > max_m)
            max_m = m;
    }
    if (!d->any_up_ever)
        return;
    if (!all_heard && d->now_us - d->t0_us < (uint64_t)d->lost_ms * 1000)
        return;
    for (unsigned k = 0; k < d->n_classes; k++) {
        s_class_t *q = &d->classes[k];
        if (!q->n || (q->vcpus <= max_v && q->mem <= max_m))
            continue;
        char reason[512];
        if (q->vcpus > max_v)
            snprintf(reason, sizeof(reason),
                     "needs %u vCPUs; the largest VM any worker takes is %u vCPUs (%s)", q->vcpus,
                     max_v, best);
        else
            snprintf(reason, sizeof(reason),
                     "needs %llu MiB of memory; no worker offers more than %llu MiB", 
                     (unsigned long long)q->mem, (unsigned long long)max_m);
        s_note(d, "%u cell(s) fit no worker: %s", q->n, reason);
        while (q->head != S_NIL)
            s_cell_error(d, (unsigned)q->head, reason);
    }
}

static void s_assign_pass(s_dispatch_t *d)
{
    if (!d->n_queued)
        return;
    bool all = d->queue_grew;
    d->queue_grew = false;
    for (unsigned n = 0; n < d->n_workers && d->n_queued; n++) {
        s_worker_t *w = &d->workers[(d->rr + n) % d->n_workers];
        if (s_worker_takes(w) && (all || w->dirty))
            s_fill_worker(d, w);
    }
    d->rr = d->n_workers ? (d->rr + 1) % d->n_workers : 0;
}

/* ---- messages from workers ---- */

static void s_on_hello(s_dispatch_t *d, s_worker_t *w, const kt_msg_t *m)
{
    const __typeof__(m->u.hello) *h = &m->u.hello;
    if (h->version != KT_PROTO_VERSION) {
        kt_msg_init(d->tx, KT_MSG_REFUSE);
        d->tx->u.refuse.code = KT_CODE_VERSION;
        snprintf(d->tx->u.refuse.reason, sizeof(d->tx->u.refuse.reason),
                 "protocol version %u not supported (this coordinator speaks %u)", h->version,
                 KT_PROTO_VERSION);
        s_send(d, w, d->tx);
        snprintf(w->why, sizeof(w->why), "speaks protocol version %u, we speak %u", h->version,
                 KT_PROTO_VERSION);
        s_note(d, "worker %s refused: %s", s_wname(w), w->why);
        if (w->n_out)
            s_worker_lost(d, w, w->why);
        w->state = W_REFUSED;
        return;
    }
    if (w->state == W_UP || w->state == W_DRAINING) {
        if (w->instance == h->instance && strcmp(w->worker_id, h->worker_id) == 0) {
            /* An answer to a repeated OPEN of this same session. */
            goto welcome;
        }
        char why[200];
        snprintf(why, sizeof(why), "it restarted (instance %016llx -> %016llx)",
                 (unsigned long long)w->instance, (unsigned long long)h->instance);
        s_worker_lost(d, w, why);
        w->need_reset = false; /* the new session is on this very socket */
    }
    for (unsigned i = 0; i < d->n_workers; i++) {
        const s_worker_t *o = &d->workers[i];
        if (o != w && (o->state == W_UP || o->state == W_DRAINING) && o->instance == h->instance &&
            strcmp(o->worker_id, h->worker_id) == 0) {
            snprintf(w->why, sizeof(w->why),
                     "same worker as %.200s (id '%.64s'): listed twice, using it once", s_wname(o),
                     h->worker_id);
            s_note(d, "worker %s: %s", s_wname(w), w->why);
            w->state = W_REFUSED;
            return;
        }
    }
    s_copy(w->worker_id, sizeof(w->worker_id), h->worker_id);
    w->instance = h->instance;
    s_copy(w->arch, sizeof(w->arch), h->arch);
    s_copy(w->accel, sizeof(w->accel), h->accel);
    w->host_cpus = h->host_cpus;
    w->max_vcpus = h->max_vcpus;
    w->canary_ms = h->canary_ms;
    w->host_mem = h->memory_mib;
    w->cap_vcpus = h->free_vcpus;
    w->cap_mem = h->free_memory_mib;
    if (w->cap_vcpus > w->best_vcpus)
        w->best_vcpus = w->cap_vcpus;
    if (w->cap_mem > w->best_mem)
        w->best_mem = w->cap_mem;
    w->out_vcpus = 0;
    w->out_mem = 0;
    w->n_zombies = 0;
    for (unsigned a = 0; a < d->n_arts; a++) {
        w->has[a] = false;
        for (unsigned i = 0; i < h->n_artifacts; i++)
            if (strcmp(h->artifacts[i].sha, d->arts[a].sha) == 0)
                w->has[a] = true;
    }
    w->state = h->draining ? W_DRAINING : W_UP;
    w->sessions++;
    if (!w->ever_hello)
        d->sum.workers_used++;
    w->ever_hello = true;
    w->silent_noted = false;
    w->auth_failed = false;
    d->oversize_dirty = true;
    w->why[0] = '\0';
    w->dirty = true;
    d->any_up_ever = true;
    d->changed = true;
    s_note(d, "worker %s up: id=%s %s %u CPUs accel=%s, offers %u vCPUs / %llu MiB (VMs up to %u "
              "vCPUs)%s%s",
           s_wname(w), h->worker_id, h->arch, h->host_cpus, h->accel, h->free_vcpus,
           (unsigned long long)h->free_memory_mib, h->max_vcpus,
           h->pending_results ? ", re-offering journaled results" : "",
           h->draining ? ", draining" : "");
welcome:
    kt_msg_init(d->tx, KT_MSG_WELCOME);
    d->tx->u.welcome.session = w->session;
    d->tx->u.welcome.heartbeat_ms = d->hb_ms;
    d->tx->u.welcome.lost_after_ms = d->lost_ms;
    s_send(d, w, d->tx);
}

static void s_on_heartbeat(s_dispatch_t *d, s_worker_t *w, const kt_msg_t *m)
{
    const __typeof__(m->u.heartbeat) *hb = &m->u.heartbeat;
    unsigned mine_v = 0;
    uint64_t mine_m = 0;
    for (unsigned i = 0; i < hb->n_running; i++) {
        int32_t ci = s_cell_find(d, hb->running[i].cell_id);
        if (ci == S_NIL)
            continue;
        const s_cell_t *c = &d->cells[ci];
        if (c->state == C_ASSIGNED && c->worker == (int32_t)w->idx &&
            c->attempt == hb->running[i].attempt) {
            mine_v += d->run->cells[ci].vcpus;
            mine_m += d->run->cells[ci].memory_mib;
        }
    }
    /* Cancelled attempts it no longer lists have given their slot back. */
    for (unsigned z = 0; z < w->n_zombies;) {
        bool listed = false;
        for (unsigned i = 0; i < hb->n_running && !listed; i++)
            listed = hb->running[i].attempt == w->zombies[z].attempt &&
                     s_cell_find(d, hb->running[i].cell_id) == (int32_t)w->zombies[z].cell;
        if (listed) {
            mine_v += w->zombies[z].vcpus;
            mine_m += w->zombies[z].mem;
            z++;
        } else {
            s_zombie_release(w, w->zombies[z].cell, w->zombies[z].attempt);
        }
    }
    unsigned cap_v = hb->free_vcpus + mine_v;
    uint64_t cap_m = hb->free_memory_mib + mine_m;
    if (cap_v > w->cap_vcpus || cap_m > w->cap_mem)
        w->dirty = true;
    w->cap_vcpus = cap_v;
    w->cap_mem = cap_m;
    if (cap_v > w->best_vcpus)
        w->best_vcpus = cap_v;
    if (cap_m > w->best_mem)
        w->best_mem = cap_m;
}

static void s_on_accept(s_dispatch_t *d, s_worker_t *w, const kt_msg_t *m)
{
    int32_t ci = s_cell_find(d, m->u.accept.cell_id);
    if (ci == S_NIL)
        return;
    s_cell_t *c = &d->cells[ci];
    if (c->state != C_ASSIGNED || c->worker != (int32_t)w->idx || c->attempt != m->u.accept.attempt)
        return;
    if (m->u.accept.ok) {
        c->accepted = true;
        return;
    }
    /* Refused (full, draining, cannot fetch): not a loss, but never leave a
     * cell bouncing forever. */
    s_worker_release(d, w, (unsigned)ci);
    char why[600];
    snprintf(why, sizeof(why), "refused by %.200s: %.300s", s_wname(w), m->u.accept.reason);
    s_store_attempt_lost(d, (unsigned)ci, c->attempt, why);
    c->last_lost = true;
    c->refusals++;
    /* Take nothing more from it until its next heartbeat says what is free. */
    w->cap_vcpus = w->out_vcpus;
    w->cap_mem = w->out_mem;
    w->dirty = false;
    unsigned limit = d->n_workers * 4 > 8 ? d->n_workers * 4 : 8;
    if (c->refusals >= limit) {
        char reason[700];
        snprintf(reason, sizeof(reason), "refused %u times, last %s", c->refusals, why);
        s_cell_error(d, (unsigned)ci, reason);
        return;
    }
    kt_log_debug("cell=%s attempt=%u %s", s_cname(d, (unsigned)ci), c->attempt, why);
    s_queue_push(d, (unsigned)ci, true);
    d->changed = true;
}

static void s_on_fetch(s_dispatch_t *d, s_worker_t *w, const kt_msg_t *m)
{
    const __typeof__(m->u.fetch) *f = &m->u.fetch;
    s_artifact_t *a = NULL;
    unsigned ai = 0;
    for (; ai < d->n_arts; ai++)
        if (strcmp(d->arts[ai].sha, f->sha) == 0) {
            a = &d->arts[ai];
            break;
        }
    if (!a) {
        kt_wire_send_error(w->sock, NULL, KT_CODE_UNKNOWN_TYPE, "no artifact %s in this run",
                           f->sha);
        s_note(d, "worker %s asked for artifact %.12s that this run does not have", s_wname(w),
               f->sha);
        return;
    }
    if (f->offset > a->size) {
        kt_wire_send_error(w->sock, NULL, KT_CODE_BAD_MESSAGE,
                           "offset %llu past the end of artifact %s (%llu bytes)",
                           (unsigned long long)f->offset, f->sha, (unsigned long long)a->size);
        return;
    }
    if (a->fd < 0) {
        a->fd = open(a->path, O_RDONLY | O_CLOEXEC);
        if (a->fd < 0) {
            int e = errno;
            kt_wire_send_error(w->sock, NULL, KT_CODE_INTERNAL, "cannot read artifact %s: %s",
                               f->sha, strerror(e));
            s_note(d, "artifact '%s' cannot be opened: %s", a->path, strerror(e));
            return;
        }
    }
    uint64_t off = f->offset;
    unsigned credit = f->credit ? f->credit : 1;
    if (credit > KT_FETCH_MAX_CREDIT)
        credit = KT_FETCH_MAX_CREDIT;
    for (unsigned k = 0; k < credit; k++) {
        uint64_t left = a->size - off;
        uint32_t len = left > KT_CHUNK_MAX ? KT_CHUNK_MAX : (uint32_t)left;
        size_t got = 0;
        while (got < len) {
            ssize_t n = pread(a->fd, d->chunk_buf + got, len - got, (off_t)(off + got));
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                kt_wire_send_error(w->sock, NULL, KT_CODE_INTERNAL,
                                   "artifact %s: short read at %llu", f->sha,
                                   (unsigned long long)(off + got));
                s_note(d, "artifact '%s' changed or unreadable (short read at %llu of %llu)",
                       a->path, (unsigned long long)(off + got), (unsigned long long)a->size);
                return;
            }
            got += (size_t)n;
        }
        kt_msg_init(d->tx, KT_MSG_CHUNK);
        snprintf(d->tx->u.chunk.sha, sizeof(d->tx->u.chunk.sha), "%s", a->sha);
        d->tx->u.chunk.offset = off;
        d->tx->u.chunk.total = a->size;
        d->tx->u.chunk.len = len;
        d->tx->u.chunk.data = d->chunk_buf;
        d->tx->u.chunk.last = off + len == a->size;
        if (s_send(d, w, d->tx) < 0)
            return;
        off += len;
        if (off == a->size) {
            if (!w->has[ai])
                kt_log_debug("worker=%s artifact=%.12s sent (%llu bytes)", s_wname(w), a->sha,
                             (unsigned long long)a->size);
            w->has[ai] = true;
            return;
        }
    }
}

static bool s_sidecar_run_is(const char *json, size_t len, const char *run_id)
{
    json_error_t err;
    json_t *doc = json_loadb(json, len, 0, &err);
    if (!doc)
        return false;
    const char *r = json_string_value(json_object_get(doc, "run_id"));
    bool same = r && strcmp(r, run_id) == 0;
    json_decref(doc);
    return same;
}

static void s_ack_push(s_dispatch_t *d, s_worker_t *w, unsigned ci, unsigned attempt)
{
    if (d->n_acks == d->cap_acks) {
        unsigned cap = d->cap_acks ? d->cap_acks * 2 : 256;
        s_ack_t *n = realloc(d->acks, sizeof(*n) * cap);
        if (!n)
            return; /* not acked: the worker offers it again, then it is stale */
        d->acks = n;
        d->cap_acks = cap;
    }
    d->acks[d->n_acks++] = (s_ack_t){w->idx, ci, attempt, w->sessions};
}

static void s_on_result(s_dispatch_t *d, s_worker_t *w, const kt_msg_t *m)
{
    const __typeof__(m->u.result) *res = &m->u.result;
    int32_t cix = s_cell_find(d, res->cell_id);
    if (cix == S_NIL) {
        s_note(d, "worker %s offered a result for cell %.12s, which is not in run %s; left with "
                  "the worker",
               s_wname(w), res->cell_id, d->run->run_id);
        return;
    }
    unsigned ci = (unsigned)cix;
    s_cell_t *c = &d->cells[ci];
    const kt_coord_cell_t *cc = &d->run->cells[ci];
    bool current = c->state == C_ASSIGNED && c->worker == (int32_t)w->idx &&
                   c->attempt == res->attempt;
    /* After --resume: the previous coordinator's attempt, journaled by the
     * worker, finishes the cell if it belongs to this run. */
    bool orphan = c->state == C_HELD && c->orphan_ok && c->attempt == res->attempt &&
                  s_sidecar_run_is(res->sidecar, res->sidecar_len, d->run->run_id);
    if (!current && !orphan) {
        d->sum.stale++;
        s_zombie_release(w, ci, res->attempt);
        bool latest = res->attempt == c->attempt && c->state != C_DONE && c->state != C_IDLE;
        if (latest && d->cfg->store) {
            if (d->n_deferred < S_MAX_DEFERRED) {
                s_deferred_t *s = &d->deferred[d->n_deferred++];
                s->cell = ci;
                s->attempt = res->attempt;
                s_copy(s->worker, sizeof(s->worker), w->worker_id);
                s_copy(s->verdict, sizeof(s->verdict), res->verdict);
                s_copy(s->reason, sizeof(s->reason), res->reason);
            }
        } else {
            bool acc;
            s_store_result(d, ci, res->attempt, w->worker_id, res->verdict, res->reason, NULL,
                           NULL, false, &acc);
        }
        s_note(d, "stale result for %s attempt %u from %s (%s; current attempt %u): recorded, "
                  "not counted",
               cc->spec.cell_name, res->attempt, s_wname(w), res->verdict, c->attempt);
        s_ack_push(d, w, ci, res->attempt);
        return;
    }

    uint64_t run_ms = c->assigned_us ? (d->now_us - c->assigned_us) / 1000 : 0;
    uint64_t queue_ms = c->assigned_us > c->queued_us ? (c->assigned_us - c->queued_us) / 1000 : 0;
    kt_dispatch_result_t r = {
        .cell = cc,
        .index = ci,
        .attempt = res->attempt,
        .worker = w->worker_id,
        .verdict = res->verdict,
        .reason = res->reason,
        .sidecar = res->sidecar,
        .sidecar_len = res->sidecar_len,
        .console = res->console,
        .console_len = res->console_len,
        .queue_ms = queue_ms,
        .run_ms = run_ms,
    };
    char path[4096] = "";
    if (d->cfg->events.write_result) {
        int wr = d->cfg->events.write_result(d->cfg->events.userdata, &r, path, sizeof(path));
        if (wr < 0)
            s_note(d, "%s: sidecar not written: %s", cc->spec.cell_name, strerror(-wr));
    }
    bool acc;
    /* The figures the store keeps for compare and history. */
    _cleanup_free_ char *metrics =
        d->cfg->store ? kt_metrics_json(res->sidecar, res->sidecar_len) : NULL;
    int sr = s_store_result(d, ci, res->attempt, w->worker_id, res->verdict, res->reason,
                            path[0] ? path : NULL, metrics, true, &acc);
    if (sr < 0) {
        /* Not recorded: no ack; the cell runs again rather than vanish. */
        if (current)
            s_cell_lost(d, w, ci, "the run store could not record its result");
        return;
    }
    if (current)
        s_worker_release(d, w, ci);
    else
        s_held_remove(d, ci);
    if (!acc) {
        /* The store knows better (a result from another invocation). */
        char v[16] = "";
        d->sum.stale++;
        if (d->cfg->store &&
            kt_store_cell_verdict(d->cfg->store, d->run->run_id, cc->spec.cell_id, v,
                                  sizeof(v)) == 0) {
            s_note(d, "%s already has a result (%s) in the run store; this one is stale",
                   cc->spec.cell_name, v);
            s_cell_done(d, ci, v);
        } else {
            s_note(d, "run store refused the result of %s attempt %u; running it again",
                   cc->spec.cell_name, res->attempt);
            s_queue_push(d, ci, true);
        }
        s_ack_push(d, w, ci, res->attempt);
        return;
    }
    w->done++;
    d->last_move_us = d->now_us;
    s_cell_done(d, ci, res->verdict);
    if (d->cfg->events.cell_done)
        d->cfg->events.cell_done(d->cfg->events.userdata, cc, res->attempt, w->worker_id,
                                 res->verdict, res->reason, res->sidecar, res->sidecar_len,
                                 res->console, res->console_len);
    s_ack_push(d, w, ci, res->attempt);
}

static void s_on_refuse(s_dispatch_t *d, s_worker_t *w, const kt_msg_t *m)
{
    snprintf(w->why, sizeof(w->why), "refused the session (%u %s): %s", m->u.refuse.code,
             kt_msg_code_name(m->u.refuse.code), m->u.refuse.reason);
    if (w->state == W_UP || w->state == W_DRAINING) {
        char why[S_WHY_MAX];
        snprintf(why, sizeof(why), "%s", w->why);
        s_worker_lost(d, w, why);
        return;
    }
    if (m->u.refuse.code >= 500 || m->u.refuse.code == KT_CODE_GONE) {
        s_note(d, "worker %s %s; trying again", s_wname(w), w->why);
        return; /* the next OPEN round may get in */
    }
    s_note(d, "worker %s %s", s_wname(w), w->why);
    w->state = W_REFUSED;
    d->changed = true;
}

static void s_handle(s_dispatch_t *d, s_worker_t *w, const kt_msg_t *m)
{
    if (w->state == W_REFUSED)
        return;
    if (w->state == W_CONNECTING && m->type != KT_MSG_HELLO && m->type != KT_MSG_REFUSE &&
        m->type != KT_MSG_ERROR)
        return; /* from a session before this one */
    switch (m->type) {
    case KT_MSG_HELLO: s_on_hello(d, w, m); break;
    case KT_MSG_REFUSE: s_on_refuse(d, w, m); break;
    case KT_MSG_HEARTBEAT: s_on_heartbeat(d, w, m); break;
    case KT_MSG_ACCEPT: s_on_accept(d, w, m); break;
    case KT_MSG_FETCH: s_on_fetch(d, w, m); break;
    case KT_MSG_PROGRESS: break; /* a beat; phases are in the sidecar's timeline */
    case KT_MSG_RESULT: s_on_result(d, w, m); break;
    case KT_MSG_DRAIN:
        if (w->state == W_UP) {
            w->state = W_DRAINING;
            s_note(d, "worker %s is draining (%u running): no new cells go there", s_wname(w),
                   m->u.drain.running);
            d->changed = true;
        }
        break;
    case KT_MSG_ERROR:
        if (m->u.error.code == KT_CODE_GONE || m->u.error.code == KT_CODE_NO_SESSION) {
            if (w->state == W_UP || w->state == W_DRAINING) {
                char why[320];
                snprintf(why, sizeof(why), "it no longer knows our session (%u: %s)",
                         m->u.error.code, m->u.error.text);
                s_worker_lost(d, w, why);
            }
            break;
        }
        s_note(d, "worker %s says error %u (%s): %s", s_wname(w), m->u.error.code,
               kt_msg_code_name(m->u.error.code), m->u.error.text);
        break;
    default:
        kt_wire_send_error(w->sock, NULL, KT_CODE_NO_SESSION, "%s is not a worker's message",
                           kt_msg_type_name(m->type));
        s_note(d, "worker %s sent %s, which only a coordinator sends; ignoring", s_wname(w),
               kt_msg_type_name(m->type));
        break;
    }
}

static void s_worker_read(s_dispatch_t *d, s_worker_t *w)
{
    char why[256];
    for (unsigned n = 0; n < S_RECV_BATCH && w->sock && !w->need_reset; n++) {
        int r = kt_wire_recv(w->sock, NULL, d->rx, why, sizeof(why));
        if (r == -EAGAIN)
            return;
        if (r == -EBADMSG) {
            /* Not a beat: a peer that only sends garbage is lost in time. */
            w->garbage++;
            if (w->garbage <= S_GARBAGE_NOTES || w->garbage % 1000 == 0)
                s_note(d, "worker %s (%s) sent a message we cannot read (%llu so far): %s; "
                          "ignoring it",
                       s_wname(w), w->host->endpoint, (unsigned long long)w->garbage, why);
            continue;
        }
        if (r < 0) {
            if (r != -EINTR)
                s_note(d, "worker %s: receive failed: %s", s_wname(w), strerror(-r));
            return;
        }
        w->last_rx_us = d->now_us;
        s_handle(d, w, d->rx);
        kt_msg_clear(d->rx);
    }
}

static void s_monitor_read(s_dispatch_t *d, s_worker_t *w)
{
    for (;;) {
        zmq_msg_t ev, addr;
        zmq_msg_init(&ev);
        if (zmq_msg_recv(&ev, zsock_resolve(w->mon), ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&ev);
            return;
        }
        uint16_t event = 0;
        uint32_t value = 0;
        if (zmq_msg_size(&ev) >= 6) {
            memcpy(&event, zmq_msg_data(&ev), 2);
            memcpy(&value, (char *)zmq_msg_data(&ev) + 2, 4);
        }
        bool more = zmq_msg_more(&ev);
        zmq_msg_close(&ev);
        if (more) {
            zmq_msg_init(&addr);
            zmq_msg_recv(&addr, zsock_resolve(w->mon), 0);
            zmq_msg_close(&addr);
        }
        bool first = !w->auth_failed;
        switch (event) {
        case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
            w->auth_failed = true;
            snprintf(w->why, sizeof(w->why),
                     "refused our key (not in its allow list; ZAP status %u)", value);
            if (first)
                s_note(d, "worker %s %s", s_wname(w), w->why);
            d->changed = true;
            break;
        case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
        case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
            w->auth_failed = true;
            if (d->cert)
                snprintf(w->why, sizeof(w->why),
                         "CURVE handshake failed (%s 0x%x): is key= in the hosts file its "
                         "public key, and does it run with --curve-secret?",
                         event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL ? "protocol error"
                                                                      : "error",
                         value);
            else
                snprintf(w->why, sizeof(w->why),
                         "handshake failed (%s 0x%x): does it require CURVE (pass "
                         "--curve-secret and key= in the hosts file)?",
                         event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL ? "protocol error"
                                                                      : "error",
                         value);
            if (first)
                s_note(d, "worker %s: %s", s_wname(w), w->why);
            d->changed = true;
            break;
        case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
            w->auth_failed = false;
            break;
        default: break;
        }
    }
}

/* ---- acks, timers, status ---- */

static void s_flush_acks(s_dispatch_t *d)
{
    /* Every kt_store_* call above committed its own transaction: what is
     * acknowledged here is on disk (WAL). */
    for (unsigned i = 0; i < d->n_acks; i++) {
        const s_ack_t *a = &d->acks[i];
        s_worker_t *w = &d->workers[a->worker];
        if (w->sessions != a->sessions || w->need_reset || !w->sock)
            continue; /* that session is gone; the worker offers it again */
        kt_msg_init(d->tx, KT_MSG_RESULT_ACK);
        snprintf(d->tx->u.ack.cell_id, sizeof(d->tx->u.ack.cell_id), "%s",
                 d->run->cells[a->cell].spec.cell_id);
        d->tx->u.ack.attempt = a->attempt;
        s_send(d, w, d->tx);
    }
    d->n_acks = 0;
}

static void s_send_heartbeats(s_dispatch_t *d)
{
    for (unsigned i = 0; i < d->n_workers; i++) {
        s_worker_t *w = &d->workers[i];
        if ((w->state != W_UP && w->state != W_DRAINING) || w->need_reset)
            continue;
        kt_msg_init(d->tx, KT_MSG_HEARTBEAT);
        __typeof__(d->tx->u.heartbeat) *hb = &d->tx->u.heartbeat;
        hb->seq = ++w->hb_seq;
        unsigned n = 0;
        for (int32_t ci = w->head; ci != S_NIL && n < KT_MSG_MAX_RUNNING; ci = d->cells[ci].next) {
            snprintf(hb->running[n].cell_id, sizeof(hb->running[n].cell_id), "%s",
                     d->run->cells[ci].spec.cell_id);
            hb->running[n].attempt = d->cells[ci].attempt;
            n++;
        }
        hb->n_running = n;
        s_send(d, w, d->tx);
    }
}

static void s_check_liveness(s_dispatch_t *d)
{
    uint64_t lost_us = (uint64_t)d->lost_ms * 1000;
    for (unsigned i = 0; i < d->n_workers; i++) {
        s_worker_t *w = &d->workers[i];
        if (w->need_reset)
            continue;
        if (w->state == W_UP || w->state == W_DRAINING) {
            if (d->now_us - w->last_rx_us > lost_us) {
                char why[96];
                snprintf(why, sizeof(why), "silent for %llu ms",
                         (unsigned long long)((d->now_us - w->last_rx_us) / 1000));
                s_worker_lost(d, w, why);
            }
        } else if (w->state == W_CONNECTING && d->now_us - w->open_tx_us > lost_us) {
            if (!w->silent_noted && !w->auth_failed) {
                s_note(d, "worker %s (%s) has not answered OPEN for %u ms; still trying",
                       s_wname(w), w->host->endpoint, d->lost_ms);
                if (!w->why[0])
                    snprintf(w->why, sizeof(w->why), "no answer from '%s'", w->host->endpoint);
            }
            w->silent_noted = true;
            /* A fresh socket: a peer that restarted gets a clean OPEN. */
            w->need_reset = true;
        }
    }
}

static void s_check_leases(s_dispatch_t *d)
{
    for (unsigned i = 0; i < d->n_workers; i++) {
        s_worker_t *w = &d->workers[i];
        int32_t ci = w->head;
        while (ci != S_NIL) {
            int32_t next = d->cells[ci].next;
            const kt_coord_cell_t *cc = &d->run->cells[ci];
            s_cell_t *c = &d->cells[ci];
            uint64_t lease = (uint64_t)cc->est_ms * 2 + (d->cfg->lease_slack_ms
                                                             ? d->cfg->lease_slack_ms
                                                             : S_DEFAULT_LEASE_SLACK_MS);
            if (d->now_us - c->assigned_us > lease * 1000) {
                kt_msg_init(d->tx, KT_MSG_CANCEL);
                snprintf(d->tx->u.ack.cell_id, sizeof(d->tx->u.ack.cell_id), "%s",
                         cc->spec.cell_id);
                d->tx->u.ack.attempt = c->attempt;
                s_send(d, w, d->tx);
                unsigned att = c->attempt;
                char why[128];
                snprintf(why, sizeof(why), "lease of %llu ms expired",
                         (unsigned long long)lease);
                s_cell_lost(d, w, (unsigned)ci, why);
                /* It may still be running there: keep its slot charged. */
                if (w->n_zombies < S_MAX_ZOMBIES) {
                    w->zombies[w->n_zombies++] =
                        (s_zombie_t){(uint32_t)ci, att, cc->vcpus, cc->memory_mib};
                    w->out_vcpus += cc->vcpus;
                    w->out_mem += cc->memory_mib;
                }
            }
            ci = next;
        }
    }
}

/* Cells wait, none runs, and nothing has moved for a minute: say what each
 * worker offers, so an operator sees why (busy with other coordinators,
 * draining, too small, gone). */
static void s_check_stall(s_dispatch_t *d)
{
    if (!d->n_queued || d->n_running ||
        d->now_us - d->last_move_us < (uint64_t)S_STALL_NOTE_MS * 1000)
        return;
    d->last_move_us = d->now_us;
    char buf[768];
    size_t o = 0;
    for (unsigned i = 0; i < d->n_workers && o < sizeof(buf); i++) {
        const s_worker_t *w = &d->workers[i];
        int n = snprintf(buf + o, sizeof(buf) - o, "%s%s %s %u/%u vCPUs", o ? ", " : "",
                         s_wname(w), s_wstate_names[w->state], w->out_vcpus, w->cap_vcpus);
        if (n < 0)
            break;
        o += (size_t)n;
    }
    s_note(d, "%u cell(s) waiting, %u running, nothing assigned for %u s; workers (ours/offered): "
              "%s",
           d->n_queued, d->n_running, S_STALL_NOTE_MS / 1000, buf);
}

static void s_status(s_dispatch_t *d, bool force)
{
    if (!d->cfg->events.status || (!force && !d->changed))
        return;
    d->changed = false;
    for (unsigned i = 0; i < d->n_workers; i++) {
        const s_worker_t *w = &d->workers[i];
        kt_dispatch_worker_status_t *s = &d->wst[i];
        s->name = s_wname(w);
        s->endpoint = w->host->endpoint;
        s->state = w->ever_hello && w->state == W_CONNECTING ? "lost" : s_wstate_names[w->state];
        if (w->auth_failed && w->state == W_CONNECTING)
            s->state = "refused";
        s->worker_id = w->worker_id;
        s->arch = w->arch;
        s->accel = w->accel;
        s->host_cpus = w->host_cpus;
        s->max_vcpus = w->max_vcpus;
        s->canary_ms = w->canary_ms;
        s->running = w->n_out;
        s->used_vcpus = w->out_vcpus;
        s->cap_vcpus = w->cap_vcpus;
        s->done = w->done;
        s->sessions = w->sessions;
        s->why = w->why;
    }
    kt_dispatch_status_t st = {
        .total = d->total,
        .done = d->sum.done,
        .pass = d->sum.pass,
        .fail = d->sum.fail,
        .error = d->sum.error,
        .skip = d->sum.skip,
        .running = d->n_running,
        .queued = d->n_queued,
        .requeued = d->sum.requeued,
        .stale = d->sum.stale,
        .elapsed_ms = (d->now_us - d->t0_us) / 1000,
        .est_left_ms = d->est_left_ms,
        .n_workers = d->n_workers,
        .workers = d->wst,
    };
    d->cfg->events.status(d->cfg->events.userdata, &st);
}

static void s_items_rebuild(s_dispatch_t *d)
{
    d->n_items = 0;
    for (unsigned i = 0; i < d->n_workers; i++) {
        s_worker_t *w = &d->workers[i];
        if (w->sock) {
            d->items[d->n_items] = (zmq_pollitem_t){zsock_resolve(w->sock), 0, ZMQ_POLLIN, 0};
            d->item_worker[d->n_items++] = (int32_t)i;
        }
        if (w->mon) {
            d->items[d->n_items] = (zmq_pollitem_t){zsock_resolve(w->mon), 0, ZMQ_POLLIN, 0};
            d->item_worker[d->n_items++] = -(int32_t)i - 1;
        }
    }
    d->items_dirty = false;
}

/* No worker has a session and none has for no_worker_ms (or every one of
 * them refused us): 1 to give up. */
static int s_check_no_worker(s_dispatch_t *d)
{
    bool any_live = false, all_final = true;
    for (unsigned i = 0; i < d->n_workers; i++) {
        const s_worker_t *w = &d->workers[i];
        if ((w->state == W_UP || w->state == W_DRAINING) && !w->need_reset)
            any_live = true;
        if (w->state != W_REFUSED && !w->auth_failed)
            all_final = false;
    }
    if (any_live) {
        d->last_up_us = d->now_us;
        return 0;
    }
    if (all_final && !d->any_up_ever)
        return 1;
    return d->now_us - d->last_up_us > (uint64_t)d->no_worker_ms * 1000 ? 1 : 0;
}

static void s_why_nothing(s_dispatch_t *d)
{
    size_t o = 0;
    bool all_auth = d->n_workers > 0;
    for (unsigned i = 0; i < d->n_workers; i++) {
        const s_worker_t *w = &d->workers[i];
        if (!w->auth_failed)
            all_auth = false;
        const char *why = w->why[0] ? w->why : "no answer";
        int n = snprintf(d->sum.why + o, sizeof(d->sum.why) - o, "%sworker %s%s %s",
                         o ? "; " : "", s_wname(w), w->auth_failed ? "" : ":", why);
        if (n < 0 || (size_t)n >= sizeof(d->sum.why) - o)
            break;
        o += (size_t)n;
    }
    (void)all_auth;
}

static int s_setup(s_dispatch_t *d, const kt_dispatch_config_t *cfg, kt_coord_run_t *run,
                   const bool *todo)
{
    d->cfg = cfg;
    d->run = run;
    d->hb_ms = cfg->heartbeat_ms ? cfg->heartbeat_ms : 1000;
    d->lost_ms = cfg->lost_after_ms ? cfg->lost_after_ms : 5000;
    if (d->lost_ms <= d->hb_ms)
        d->lost_ms = d->hb_ms * 2;
    d->status_ms = cfg->status_ms ? cfg->status_ms : 250;
    d->no_worker_ms = cfg->no_worker_timeout_ms ? cfg->no_worker_timeout_ms : 60000;
    d->max_attempts = cfg->max_attempts ? cfg->max_attempts : 3;
    snprintf(d->coord_id, sizeof(d->coord_id), "%s",
             cfg->coordinator_id && cfg->coordinator_id[0] ? cfg->coordinator_id : run->run_id);
    if (!d->coord_id[0])
        snprintf(d->coord_id, sizeof(d->coord_id), "ktstr-coord-%d", (int)getpid());
    d->n_cells = run->n_cells;
    d->n_workers = cfg->n_hosts;
    d->now_us = d->t0_us = d->last_up_us = s_now_us();
    d->cells = calloc(d->n_cells ? d->n_cells : 1, sizeof(*d->cells));
    d->workers = calloc(d->n_workers ? d->n_workers : 1, sizeof(*d->workers));
    d->wst = calloc(d->n_workers ? d->n_workers : 1, sizeof(*d->wst));
    d->items = calloc(d->n_workers * 2 + 1, sizeof(*d->items));
    d->item_worker = calloc(d->n_workers * 2 + 1, sizeof(*d->item_worker));
    d->rx = malloc(sizeof(*d->rx));
    d->tx = malloc(sizeof(*d->tx));
    d->chunk_buf = malloc(KT_CHUNK_MAX);
    d->deferred = calloc(S_MAX_DEFERRED, sizeof(*d->deferred));
    d->arts = calloc(run->n_kernels + run->n_scheds + run->n_payloads + 1, sizeof(*d->arts));
    if (!d->cells || !d->workers || !d->wst || !d->items || !d->item_worker || !d->rx || !d->tx ||
        !d->chunk_buf || !d->deferred || !d->arts)
        return -ENOMEM;
    kt_msg_init(d->rx, KT_MSG_ERROR);
    int r = s_classes_build(d);
    if (r < 0)
        return r;
    r = s_map_build(d);
    if (r == -EEXIST) {
        snprintf(d->sum.why, sizeof(d->sum.why), "two cells of the run have the same id");
        return -EINVAL;
    }
    if (r < 0)
        return r;
    for (unsigned i = 0; i < run->n_kernels; i++)
        d->arts[d->n_arts++] = (s_artifact_t){run->kernels[i].sha, run->kernels[i].path,
                                              run->kernels[i].size, -1};
    for (unsigned i = 0; i < run->n_scheds; i++)
        if (run->scheds[i].sha[0] && run->scheds[i].path[0])
            d->arts[d->n_arts++] = (s_artifact_t){run->scheds[i].sha, run->scheds[i].path,
                                                  run->scheds[i].size, -1};
    for (unsigned i = 0; i < run->n_payloads; i++)
        if (run->payloads[i].sha[0] && run->payloads[i].path[0])
            d->arts[d->n_arts++] = (s_artifact_t){run->payloads[i].sha, run->payloads[i].path,
                                                  run->payloads[i].size, -1};
    for (unsigned i = 0; i < d->n_cells; i++) {
        s_cell_t *c = &d->cells[i];
        c->worker = S_NIL;
        c->next = c->prev = S_NIL;
        if (strcmp(run->cells[i].spec.run_id, run->run_id) != 0)
            snprintf(run->cells[i].spec.run_id, sizeof(run->cells[i].spec.run_id), "%s",
                     run->run_id);
        if (todo && !todo[i])
            continue;
        if (cfg->store) {
            unsigned last = 0;
            if (kt_store_last_attempt(cfg->store, run->run_id, run->cells[i].spec.cell_id,
                                      &last) == 0 &&
                last) {
                c->attempt = last;
                c->orphan_ok = true;
            }
        }
        d->total++;
        d->est_left_ms += kt_coord_cell_expect_ms(&run->cells[i]);
        if (c->orphan_ok) {
            c->state = C_HELD;
            c->queued_us = d->now_us;
            d->n_held++;
        } else {
            s_queue_push(d, i, false);
        }
    }
    for (unsigned i = 0; i < d->n_workers; i++) {
        s_worker_t *w = &d->workers[i];
        w->host = &cfg->hosts[i];
        w->idx = i;
        w->head = w->tail = S_NIL;
        w->has = calloc(d->n_arts ? d->n_arts : 1, sizeof(bool));
        if (!w->has)
            return -ENOMEM;
    }
    if (cfg->curve_secret) {
        d->cert = zcert_load(cfg->curve_secret);
        if (!d->cert) {
            snprintf(d->sum.why, sizeof(d->sum.why), "cannot load the CURVE certificate '%s'",
                     cfg->curve_secret);
            return -ENOENT;
        }
        for (unsigned i = 0; i < d->n_workers; i++)
            if (!cfg->hosts[i].curve_public[0]) {
                snprintf(d->sum.why, sizeof(d->sum.why),
                         "worker %s has no key= (its public key), needed with --curve-secret",
                         cfg->hosts[i].name[0] ? cfg->hosts[i].name : cfg->hosts[i].endpoint);
                return -EINVAL;
            }
    }
    return 0;
}

static void s_teardown(s_dispatch_t *d, bool graceful)
{
    for (unsigned i = 0; i < d->n_workers; i++) {
        s_worker_close(d, &d->workers[i], graceful ? 1000 : 0);
        free(d->workers[i].has);
    }
    for (unsigned i = 0; i < d->n_cells; i++)
        free(d->cells ? d->cells[i].history : NULL);
    for (unsigned i = 0; i < d->n_arts; i++)
        if (d->arts[i].fd >= 0)
            close(d->arts[i].fd);
    zcert_destroy(&d->cert);
    free(d->cells);
    free(d->classes);
    free(d->workers);
    free(d->wst);
    free(d->arts);
    free(d->map);
    free(d->items);
    free(d->item_worker);
    free(d->rx);
    free(d->tx);
    free(d->chunk_buf);
    free(d->acks);
    free(d->deferred);
}

int kt_dispatch_run(const kt_dispatch_config_t *cfg, kt_coord_run_t *run, const bool *todo,
                    kt_dispatch_summary_t *ret)
{
    if (!cfg || !run || !ret || (cfg->n_hosts && !cfg->hosts))
        return -EINVAL;
    s_dispatch_t d = {0};
    int r = s_setup(&d, cfg, run, todo);
    if (r < 0) {
        if (!d.sum.why[0])
            snprintf(d.sum.why, sizeof(d.sum.why), "%s", strerror(-r));
        *ret = d.sum;
        s_teardown(&d, false);
        return r;
    }
    if (!d.n_workers && d.total) {
        snprintf(d.sum.why, sizeof(d.sum.why), "no workers given");
        *ret = d.sum;
        s_teardown(&d, false);
        return -EHOSTUNREACH;
    }
    for (unsigned i = 0; i < d.n_workers; i++) {
        r = s_worker_open(&d, &d.workers[i]);
        if (r < 0) {
            snprintf(d.sum.why, sizeof(d.sum.why), "worker %.200s: %.300s",
                     s_wname(&d.workers[i]), d.workers[i].why);
            *ret = d.sum;
            s_teardown(&d, false);
            return r;
        }
    }
    d.next_hb_us = d.now_us + (uint64_t)d.hb_ms * 1000;
    d.next_status_us = d.now_us;
    d.next_lease_us = d.now_us + 1000000;
    d.last_move_us = d.now_us;
    d.changed = true;
    r = 0;
    while (d.n_done < d.total) {
        if (zsys_interrupted) {
            r = -EINTR;
            break;
        }
        for (unsigned i = 0; i < d.n_workers; i++) {
            s_worker_t *w = &d.workers[i];
            if (w->need_reset) {
                w->need_reset = false;
                s_worker_close(&d, w, 0);
                if (s_worker_open(&d, w) < 0)
                    w->state = W_REFUSED;
            }
        }
        if (d.items_dirty)
            s_items_rebuild(&d);
        uint64_t next = d.next_hb_us < d.next_status_us ? d.next_hb_us : d.next_status_us;
        long timeout_ms = next > d.now_us ? (long)((next - d.now_us + 999) / 1000) : 0;
        if (timeout_ms > 100)
            timeout_ms = 100;
        int n = zmq_poll(d.items, (int)d.n_items, timeout_ms);
        if (n < 0 && errno != EINTR) {
            r = -errno;
            snprintf(d.sum.why, sizeof(d.sum.why), "zmq_poll: %s", zmq_strerror(errno));
            break;
        }
        d.now_us = s_now_us();
        for (unsigned i = 0; n > 0 && i < d.n_items; i++) {
            if (!(d.items[i].revents & ZMQ_POLLIN))
                continue;
            int32_t wi = d.item_worker[i];
            if (wi >= 0)
                s_worker_read(&d, &d.workers[wi]);
            else if (d.workers[-wi - 1].mon)
                s_monitor_read(&d, &d.workers[-wi - 1]);
        }
        if (d.oversize_dirty) {
            d.oversize_dirty = false;
            s_check_oversize(&d);
        }
        s_assign_pass(&d);
        s_flush_acks(&d);
        if (d.now_us >= d.next_hb_us) {
            s_send_heartbeats(&d);
            s_check_liveness(&d);
            d.next_hb_us = d.now_us + (uint64_t)d.hb_ms * 1000;
        }
        if (d.now_us >= d.next_lease_us) {
            s_check_leases(&d);
            s_check_oversize(&d);
            s_check_stall(&d);
            s_held_release(&d);
            d.next_lease_us = d.now_us + (d.n_held ? 100000 : 1000000);
        }
        if (d.n_done < d.total && d.now_us >= d.next_gone_us && s_check_no_worker(&d)) {
            s_why_nothing(&d);
            if (!d.any_up_ever) {
                bool all_auth = true;
                for (unsigned i = 0; i < d.n_workers; i++)
                    all_auth &= d.workers[i].auth_failed;
                r = all_auth ? -EACCES : -EHOSTUNREACH;
                break;
            }
            char reason[700];
            snprintf(reason, sizeof(reason), "no worker available for %u s (%s)",
                     d.no_worker_ms / 1000, d.sum.why);
            for (unsigned k = 0; k < d.n_classes; k++)
                while (d.classes[k].head != S_NIL)
                    s_cell_error(&d, (unsigned)d.classes[k].head, reason);
            for (unsigned i = 0; i < d.n_cells && d.n_held; i++)
                if (d.cells[i].state == C_HELD)
                    s_cell_error(&d, i, reason);
        }
        if (d.now_us >= d.next_gone_us)
            d.next_gone_us = d.now_us + 200000;
        if (d.now_us >= d.next_status_us) {
            s_status(&d, false);
            d.next_status_us = d.now_us + (uint64_t)d.status_ms * 1000;
        }
    }
    s_flush_acks(&d);
    d.now_us = s_now_us();
    d.sum.wall_ms = (d.now_us - d.t0_us) / 1000;
    s_status(&d, true);
    *ret = d.sum;
    s_teardown(&d, r == 0);
    return r;
}
