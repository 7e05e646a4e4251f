/* The worker daemon against a fake coordinator: a DEALER in the test that
 * speaks the wire protocol (OPEN/HELLO/WELCOME, ASSIGN/ACCEPT, FETCH/CHUNK,
 * PROGRESS, RESULT/RESULT_ACK, CANCEL, DRAIN, ERROR). Cells run on the null
 * and sleep executors, so no VM boots. Also the artifact cache and the result
 * journal on their own. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "kt_artifacts.h"
#include "kt_hash.h"
#include "kt_journal.h"
#include "kt_log.h"
#include "kt_serve.h"
#include "kt_wire.h"

/* ---- helpers ---- */

static char *s_tmpdir(void)
{
    char tmpl[] = "/tmp/kt-test-serve-XXXXXX";
    char *d = mkdtemp(tmpl);
    assert_non_null(d);
    return strdup(d);
}

static void s_rm_rf(const char *path)
{
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
    assert_int_equal(system(cmd), 0);
}

static unsigned s_count_files(const char *dir, const char *suffix)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    unsigned n = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name), sl = strlen(suffix);
        if (de->d_name[0] != '.' && l >= sl && strcmp(de->d_name + l - sl, suffix) == 0)
            n++;
    }
    closedir(d);
    return n;
}

/* Entries in the journal of a stopped worker's cache (a running daemon
 * holds it): its on-disk layout is the journal's business. */
static unsigned s_journal_entries(const char *cache)
{
    kt_journal_t *j = NULL;
    assert_int_equal(kt_journal_open(cache, &j), 0);
    unsigned n = kt_journal_count(j);
    kt_journal_destroy(&j);
    return n;
}

static uint64_t s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* An artifact the fake coordinator can serve: bytes and their sha256. With
 * corrupt set, it serves the bytes with one bit flipped. */
typedef struct s_art {
    uint8_t *data;
    size_t len;
    char sha[KT_HASH_HEX_SIZE];
    bool corrupt;
} s_art_t;

static void s_art_make(s_art_t *a, size_t len, unsigned seed)
{
    a->data = malloc(len);
    assert_non_null(a->data);
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < len; i++) {
        x = x * 1103515245u + 12345u;
        a->data[i] = (uint8_t)(x >> 16);
    }
    a->len = len;
    a->corrupt = false;
    assert_int_equal(kt_hash_sha256_buf(a->data, len, a->sha), 0);
}

/* The fake coordinator. */
typedef struct s_fc {
    zsock_t *sock;
    char id[KT_ID_MAX];
    uint64_t session;
    kt_msg_t *msg;          /* the last message waited for */
    bool beat;              /* send HEARTBEATs while waiting */
    uint64_t last_beat_ms;
    s_art_t *arts[4];
    unsigned n_arts;
    unsigned counts[KT_MSG__COUNT];
    unsigned chunks_sent;
} s_fc_t;

/* Every live fake coordinator beats while any of them waits. */
static s_fc_t *s_live[8];

static s_fc_t *s_fc_new(const char *endpoint, const char *id)
{
    s_fc_t *fc = calloc(1, sizeof(*fc));
    assert_non_null(fc);
    fc->msg = calloc(1, sizeof(*fc->msg));
    assert_non_null(fc->msg);
    fc->sock = zsock_new(ZMQ_DEALER);
    assert_non_null(fc->sock);
    kt_wire_socket_setup(fc->sock);
    assert_int_equal(zsock_connect(fc->sock, "%s", endpoint), 0);
    snprintf(fc->id, sizeof(fc->id), "%s", id);
    fc->session = 42;
    fc->beat = true;
    for (unsigned i = 0; i < 8; i++)
        if (!s_live[i]) {
            s_live[i] = fc;
            break;
        }
    return fc;
}

static void s_fc_destroy(s_fc_t **fc_p)
{
    s_fc_t *fc = *fc_p;
    if (!fc)
        return;
    for (unsigned i = 0; i < 8; i++)
        if (s_live[i] == fc)
            s_live[i] = NULL;
    zsock_destroy(&fc->sock);
    kt_msg_clear(fc->msg);
    free(fc->msg);
    free(fc);
    *fc_p = NULL;
}

static void s_fc_send(s_fc_t *fc, const kt_msg_t *m)
{
    assert_int_equal(kt_wire_send(fc->sock, NULL, m), 0);
}

static void s_fc_beat(s_fc_t *fc)
{
    kt_msg_t *m = calloc(1, sizeof(*m));
    kt_msg_init(m, KT_MSG_HEARTBEAT);
    s_fc_send(fc, m);
    free(m);
    fc->last_beat_ms = s_now_ms();
}

static void s_fc_serve_fetch(s_fc_t *fc, const kt_msg_t *f)
{
    s_art_t *a = NULL;
    for (unsigned i = 0; i < fc->n_arts; i++)
        if (strcmp(fc->arts[i]->sha, f->u.fetch.sha) == 0)
            a = fc->arts[i];
    assert_non_null(a);
    uint64_t off = f->u.fetch.offset;
    for (unsigned k = 0; k < f->u.fetch.credit && off < a->len; k++) {
        size_t len = a->len - off > KT_CHUNK_MAX ? KT_CHUNK_MAX : a->len - off;
        uint8_t *buf = malloc(len);
        memcpy(buf, a->data + off, len);
        if (a->corrupt && off == 0)
            buf[len / 2] ^= 0x10;
        kt_msg_t m;
        kt_msg_init(&m, KT_MSG_CHUNK);
        snprintf(m.u.chunk.sha, sizeof(m.u.chunk.sha), "%s", a->sha);
        m.u.chunk.offset = off;
        m.u.chunk.total = a->len;
        m.u.chunk.len = (uint32_t)len;
        m.u.chunk.data = buf;
        m.u.chunk.last = off + len == a->len;
        s_fc_send(fc, &m);
        free(buf);
        off += len;
        fc->chunks_sent++;
    }
}

/* Waits for a message of type want, answering FETCH and beating on the way;
 * every message seen is counted. */
static bool s_fc_wait(s_fc_t *fc, enum kt_msg_type want, int timeout_ms)
{
    uint64_t deadline = s_now_ms() + (uint64_t)timeout_ms;
    zpoller_t *p = zpoller_new(fc->sock, NULL);
    bool got = false;
    while (!got && s_now_ms() < deadline) {
        for (unsigned i = 0; i < 8; i++)
            if (s_live[i] && s_live[i]->sock && s_live[i]->beat &&
                s_now_ms() - s_live[i]->last_beat_ms >= 50)
                s_fc_beat(s_live[i]);
        if (zpoller_wait(p, 20) != fc->sock)
            continue;
        for (;;) {
            kt_msg_clear(fc->msg);
            char why[256];
            int r = kt_wire_recv(fc->sock, NULL, fc->msg, why, sizeof(why));
            if (r == -EAGAIN)
                break;
            if (r < 0)
                fail_msg("fake coordinator got a bad message: %s", why);
            fc->counts[fc->msg->type]++;
            if (fc->msg->type == KT_MSG_FETCH && fc->n_arts)
                s_fc_serve_fetch(fc, fc->msg);
            if (fc->msg->type == want) {
                got = true;
                break;
            }
        }
    }
    zpoller_destroy(&p);
    return got;
}

/* Nothing of type `type` arrives within ms (everything else is counted). */
static void s_fc_quiet(s_fc_t *fc, enum kt_msg_type type, int ms)
{
    unsigned before = fc->counts[type];
    s_fc_wait(fc, KT_MSG__COUNT, ms);
    assert_int_equal(fc->counts[type], before);
}

static void s_fc_open(s_fc_t *fc)
{
    kt_msg_t m;
    kt_msg_init(&m, KT_MSG_OPEN);
    m.u.open.version = KT_PROTO_VERSION;
    snprintf(m.u.open.coordinator_id, sizeof(m.u.open.coordinator_id), "%s", fc->id);
    m.u.open.session = fc->session;
    s_fc_send(fc, &m);
    assert_true(s_fc_wait(fc, KT_MSG_HELLO, 3000));
    kt_msg_init(&m, KT_MSG_WELCOME);
    m.u.welcome.session = fc->session;
    m.u.welcome.heartbeat_ms = 50;
    m.u.welcome.lost_after_ms = 400;
    s_fc_send(fc, &m);
}

/* A cell of run `run`: steady on tiny-1llc (or 2 LLCs x 2 cores when big),
 * EEVDF, its kernel the artifact a. */
static void s_spec(kt_cellspec_t *sp, const char *run, unsigned n, const s_art_t *a, bool big)
{
    memset(sp, 0, sizeof(*sp));
    char text[64];
    snprintf(text, sizeof(text), "cell-%s-%u", run, n);
    assert_int_equal(kt_hash_sha256_buf(text, strlen(text), sp->cell_id), 0);
    snprintf(sp->cell_name, sizeof(sp->cell_name), "gauntlet/steady/%s/default/test-%u",
             big ? "2x2" : "tiny-1llc", n);
    snprintf(sp->run_id, sizeof(sp->run_id), "%s", run);
    snprintf(sp->kernel_label, sizeof(sp->kernel_label), "test");
    snprintf(sp->kernel_version, sizeof(sp->kernel_version), "6.12.0-test");
    snprintf(sp->kernel_sha, sizeof(sp->kernel_sha), "%s", a->sha);
    sp->kernel_size = a->len;
    snprintf(sp->sched_name, sizeof(sp->sched_name), "eevdf");
    snprintf(sp->profile, sizeof(sp->profile), "default");
    kt_topology_t t = {1, big ? 2 : 1, 2, 1};
    if (!big)
        snprintf(sp->topology_preset, sizeof(sp->topology_preset), "%s",
                 kt_topology_preset_name(&t) ? kt_topology_preset_name(&t) : "");
    char why[256];
    assert_int_equal(
        kt_scenario_resolve(kt_scenario_builtin_find("steady"), &t, 1000, &sp->plan, why,
                            sizeof(why)),
        0);
    sp->memory_mib = 256;
}

static void s_fc_assign(s_fc_t *fc, const kt_cellspec_t *sp, uint32_t attempt)
{
    kt_msg_t *m = calloc(1, sizeof(*m));
    kt_msg_init(m, KT_MSG_ASSIGN);
    m->u.assign.attempt = attempt;
    m->u.assign.lease_ms = 60000;
    m->u.assign.spec = *sp;
    s_fc_send(fc, m);
    free(m);
}

static void s_fc_ack(s_fc_t *fc, const char *cell_id, uint32_t attempt, enum kt_msg_type type)
{
    kt_msg_t m;
    kt_msg_init(&m, type);
    snprintf(m.u.ack.cell_id, sizeof(m.u.ack.cell_id), "%s", cell_id);
    m.u.ack.attempt = attempt;
    s_fc_send(fc, &m);
}

/* The daemon under test. */
typedef struct s_w {
    kt_serve_config_t cfg;
    zactor_t *actor;
    char *cache;
    char endpoint[256];
    char journal[PATH_MAX];
} s_w_t;

static void s_w_start(s_w_t *w, kt_executor_t exec, uint32_t vcpus, uint64_t mem)
{
    if (!w->cache)
        w->cache = s_tmpdir();
    w->cfg.bind = "tcp://127.0.0.1:*";
    w->cfg.worker_id = "w-test";
    w->cfg.cache_dir = w->cache;
    w->cfg.executor = exec;
    w->cfg.accel_name = "tcg";
    w->cfg.capacity_vcpus = vcpus;
    w->cfg.capacity_memory_mib = mem;
    w->cfg.heartbeat_ms = 50;
    w->cfg.lost_after_ms = 400;
    w->actor = kt_serve_actor_new(&w->cfg);
    assert_non_null(w->actor);
    zstr_send(w->actor, "ENDPOINT");
    char *ep = zstr_recv(w->actor);
    assert_non_null(ep);
    snprintf(w->endpoint, sizeof(w->endpoint), "%s", ep);
    free(ep);
    snprintf(w->journal, sizeof(w->journal), "%s/journal", w->cache);
}

/* A STATUS field of the daemon. */
static long s_w_status(s_w_t *w, const char *key)
{
    zstr_send(w->actor, "STATUS");
    char *st = zstr_recv(w->actor);
    assert_non_null(st);
    char pat[64];
    snprintf(pat, sizeof(pat), "%s=", key);
    const char *p = strstr(st, pat);
    assert_non_null(p);
    long v = strtol(p + strlen(pat), NULL, 10);
    free(st);
    return v;
}

static void s_w_stop(s_w_t *w, bool keep_cache)
{
    zactor_destroy(&w->actor);
    if (!keep_cache) {
        s_rm_rf(w->cache);
        free(w->cache);
        w->cache = NULL;
    }
}

/* ---- the artifact cache ---- */

static void test_artifacts(void **state)
{
    char *dir = s_tmpdir();
    kt_artifacts_t *c = NULL;
    assert_int_equal(kt_artifacts_open(dir, &c), 0);
    s_art_t a;
    s_art_make(&a, 3 * 1000 + 7, 1);
    assert_false(kt_artifacts_has(c, a.sha, 0));

    kt_artifact_in_t *in = NULL;
    assert_int_equal(kt_artifact_in_begin(c, a.sha, a.len, &in), 0);
    assert_int_equal(kt_artifact_in_write(in, 0, a.data, 1000), 0);
    /* Out of order and past the end are refused, nothing written. */
    assert_int_equal(kt_artifact_in_write(in, 2000, a.data + 2000, 1000), -EPROTO);
    assert_int_equal(kt_artifact_in_write(in, 1000, a.data + 1000, a.len), -EFBIG);
    assert_int_equal(kt_artifact_in_received(in), 1000);
    assert_int_equal(kt_artifact_in_write(in, 1000, a.data + 1000, a.len - 1000), 0);
    char why[256] = "";
    assert_int_equal(kt_artifact_in_commit(&in, why, sizeof(why)), 0);
    assert_null(in);
    assert_true(kt_artifacts_has(c, a.sha, a.len));
    assert_false(kt_artifacts_has(c, a.sha, a.len + 1));
    char path[PATH_MAX];
    assert_int_equal(kt_artifacts_path(c, a.sha, path, sizeof(path)), 0);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0755);
    assert_int_equal((size_t)st.st_size, a.len);
    assert_int_equal(kt_artifacts_verify(c, a.sha), 0);

    /* Bytes that do not hash to the name are discarded. */
    s_art_t b;
    s_art_make(&b, 5000, 2);
    assert_int_equal(kt_artifact_in_begin(c, b.sha, b.len, &in), 0);
    b.data[17] ^= 1;
    assert_int_equal(kt_artifact_in_write(in, 0, b.data, b.len), 0);
    assert_int_equal(kt_artifact_in_commit(&in, why, sizeof(why)), -EBADMSG);
    assert_non_null(strstr(why, "sha256 mismatch"));
    assert_false(kt_artifacts_has(c, b.sha, 0));
    /* Too few bytes. */
    assert_int_equal(kt_artifact_in_begin(c, b.sha, b.len, &in), 0);
    assert_int_equal(kt_artifact_in_write(in, 0, b.data, 10), 0);
    assert_int_equal(kt_artifact_in_commit(&in, why, sizeof(why)), -EBADMSG);
    /* No temporary file stays behind. */
    char adir[PATH_MAX];
    snprintf(adir, sizeof(adir), "%s/artifacts", dir);
    DIR *d = opendir(adir);
    struct dirent *de;
    unsigned n = 0;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
            n++;
    closedir(d);
    assert_int_equal(n, 1);

    char list[4][KT_HASH_HEX_SIZE];
    unsigned nl = 0;
    assert_int_equal(kt_artifacts_list(c, list, 4, &nl), 0);
    assert_int_equal(nl, 1);
    assert_string_equal(list[0], a.sha);

    assert_int_equal(kt_artifact_in_begin(c, "nothex", 10, &in), -EINVAL);
    assert_int_equal(kt_artifact_in_begin(c, a.sha, 0, &in), -EINVAL);
    assert_int_equal(kt_artifact_in_begin(c, a.sha, KT_ARTIFACT_MAX_BYTES + 1, &in), -EFBIG);
    assert_int_equal(kt_artifacts_path(c, "../etc/passwd", path, sizeof(path)), -EINVAL);

    /* A cached file that rotted is caught by verify and removed. */
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, "x", 1, 5), 1);
    close(fd);
    assert_int_equal(kt_artifacts_verify(c, a.sha), -EBADMSG);
    assert_false(kt_artifacts_has(c, a.sha, 0));

    kt_artifacts_destroy(&c);
    assert_null(c);
    free(a.data);
    free(b.data);
    s_rm_rf(dir);
    free(dir);
}

/* ---- the journal ---- */

static void s_entry(kt_journal_entry_t *e, const char *coord, const char *run, unsigned n,
                    uint32_t attempt)
{
    memset(e, 0, sizeof(*e));
    snprintf(e->coordinator_id, sizeof(e->coordinator_id), "%s", coord);
    snprintf(e->run_id, sizeof(e->run_id), "%s", run);
    char text[32];
    snprintf(text, sizeof(text), "j%u", n);
    kt_hash_sha256_buf(text, strlen(text), e->cell_id);
    e->attempt = attempt;
    snprintf(e->verdict, sizeof(e->verdict), "fail");
    snprintf(e->reason, sizeof(e->reason), "check spread failed");
    e->sidecar = strdup("{\"verdict\":\"fail\"}");
    e->sidecar_len = strlen(e->sidecar);
    e->console = strdup("boot...\nKernel panic\n");
    e->console_len = strlen(e->console);
    e->finished_ms = 1234;
}

static void test_journal(void **state)
{
    char *dir = s_tmpdir();
    kt_journal_t *j = NULL;
    assert_int_equal(kt_journal_open(dir, &j), 0);
    assert_int_equal(kt_journal_count(j), 0);
    kt_journal_entry_t a, b;
    s_entry(&a, "coord-1", "run-a", 1, 1);
    s_entry(&b, "coord-1", "run-b", 1, 2); /* same cell, another run and attempt */
    assert_int_equal(kt_journal_put(j, &a), 0);
    assert_int_equal(kt_journal_put(j, &b), 0);
    assert_int_equal(kt_journal_count(j), 2);
    assert_non_null(kt_journal_find(j, "run-a", a.cell_id, 1));
    assert_null(kt_journal_find(j, "run-a", a.cell_id, 2));
    char jdir[PATH_MAX];
    snprintf(jdir, sizeof(jdir), "%s/journal", dir);

    /* Bad entries are refused. */
    kt_journal_entry_t bad = a;
    snprintf(bad.verdict, sizeof(bad.verdict), "maybe");
    assert_int_equal(kt_journal_put(j, &bad), -EINVAL);
    bad = a;
    bad.attempt = 0;
    assert_int_equal(kt_journal_put(j, &bad), -EINVAL);
    bad = a;
    bad.sidecar_len = KT_MSG_MAX_SIDECAR + 1;
    assert_int_equal(kt_journal_put(j, &bad), -E2BIG);
    kt_journal_destroy(&j);

    /* Reloaded from disk; a foreign file is set aside, not loaded. */
    char junk[PATH_MAX + 32];
    snprintf(junk, sizeof(junk), "%s/garbage.result", jdir);
    FILE *f = fopen(junk, "we");
    fputs("not msgpack", f);
    fclose(f);
    assert_int_equal(kt_journal_open(dir, &j), 0);
    assert_int_equal(kt_journal_count(j), 2);
    assert_int_equal(kt_journal_bad(j), 1);
    assert_int_equal(s_count_files(jdir, ".bad"), 1);
    kt_journal_entry_t *m = kt_journal_find(j, "run-b", b.cell_id, 2);
    assert_non_null(m);
    assert_null(m->sidecar);
    assert_string_equal(m->coordinator_id, "coord-1");
    assert_string_equal(m->verdict, "fail");
    kt_journal_entry_t full;
    assert_int_equal(kt_journal_read(j, m, &full), 0);
    assert_int_equal(full.sidecar_len, b.sidecar_len);
    assert_memory_equal(full.sidecar, b.sidecar, b.sidecar_len);
    assert_string_equal(full.console, b.console);
    assert_string_equal(full.reason, "check spread failed");
    assert_int_equal(full.finished_ms, 1234);
    kt_journal_entry_clear(&full);

    assert_int_equal(kt_journal_remove(j, "run-a", a.cell_id, 1), 0);
    assert_int_equal(kt_journal_remove(j, "run-a", a.cell_id, 1), -ENOENT);
    assert_int_equal(kt_journal_count(j), 1);
    kt_journal_destroy(&j);
    assert_int_equal(s_journal_entries(dir), 1);
    kt_journal_entry_clear(&a);
    kt_journal_entry_clear(&b);
    s_rm_rf(dir);
    free(dir);
}

/* ---- the daemon ---- */

/* OPEN/HELLO/WELCOME; ASSIGN -> ACCEPT -> FETCH/CHUNK -> PROGRESS -> RESULT;
 * the result is journaled until RESULT_ACK. A second cell with the same
 * kernel fetches nothing. */
static void test_session_flow(void **state)
{
    s_w_t w = {0};
    s_w_start(&w, kt_executor_null(), 8, 8192);
    s_fc_t *fc = s_fc_new(w.endpoint, "coord-flow");
    s_art_t k;
    s_art_make(&k, 2 * KT_CHUNK_MAX + 1000, 3); /* three chunks */
    fc->arts[fc->n_arts++] = &k;

    kt_msg_t m;
    kt_msg_init(&m, KT_MSG_OPEN);
    m.u.open.version = KT_PROTO_VERSION;
    snprintf(m.u.open.coordinator_id, sizeof(m.u.open.coordinator_id), "coord-flow");
    m.u.open.session = 7;
    s_fc_send(fc, &m);
    assert_true(s_fc_wait(fc, KT_MSG_HELLO, 3000));
    assert_string_equal(fc->msg->u.hello.worker_id, "w-test");
    assert_int_equal(fc->msg->u.hello.version, KT_PROTO_VERSION);
    assert_int_equal(fc->msg->u.hello.free_vcpus, 8);
    assert_int_equal(fc->msg->u.hello.free_memory_mib, 8192);
    assert_int_equal(fc->msg->u.hello.max_vcpus, 8);
    assert_string_equal(fc->msg->u.hello.accel, "tcg");
    assert_int_equal(fc->msg->u.hello.n_artifacts, 0);
    assert_int_equal(fc->msg->u.hello.pending_results, 0);
    assert_false(fc->msg->u.hello.draining);
    assert_true(fc->msg->u.hello.instance != 0);
    kt_msg_init(&m, KT_MSG_WELCOME);
    m.u.welcome.session = 7;
    m.u.welcome.heartbeat_ms = 50;
    m.u.welcome.lost_after_ms = 400;
    s_fc_send(fc, &m);
    /* Heartbeats come, with the free capacity. */
    assert_true(s_fc_wait(fc, KT_MSG_HEARTBEAT, 1000));
    assert_int_equal(fc->msg->u.heartbeat.free_vcpus, 8);
    assert_int_equal(fc->msg->u.heartbeat.n_running, 0);

    kt_cellspec_t sp;
    s_spec(&sp, "run-flow", 1, &k, false);
    s_fc_assign(fc, &sp, 1);
    assert_true(s_fc_wait(fc, KT_MSG_ACCEPT, 3000));
    assert_true(fc->msg->u.accept.ok);
    assert_string_equal(fc->msg->u.accept.cell_id, sp.cell_id);
    assert_int_equal(fc->msg->u.accept.attempt, 1);
    assert_true(s_fc_wait(fc, KT_MSG_RESULT, 5000));
    assert_true(fc->counts[KT_MSG_FETCH] >= 1);
    assert_int_equal(fc->chunks_sent, 3);
    assert_true(fc->counts[KT_MSG_PROGRESS] >= 1);
    assert_string_equal(fc->msg->u.result.cell_id, sp.cell_id);
    assert_int_equal(fc->msg->u.result.attempt, 1);
    assert_string_equal(fc->msg->u.result.verdict, "pass");
    json_error_t jerr;
    json_t *doc = json_loadb(fc->msg->u.result.sidecar, fc->msg->u.result.sidecar_len, 0, &jerr);
    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(doc, "executor")), "null");
    assert_string_equal(json_string_value(json_object_get(doc, "worker")), "w-test");
    assert_string_equal(json_string_value(json_object_get(doc, "run_id")), "run-flow");
    assert_string_equal(json_string_value(json_object_get(doc, "cell_id")), sp.cell_id);
    assert_int_equal(json_integer_value(json_object_get(doc, "attempt")), 1);
    assert_non_null(json_object_get(json_object_get(doc, "timings"), "worker_queue_ms"));
    json_decref(doc);

    /* Verified and cached under its hash. */
    char art[PATH_MAX + 80];
    snprintf(art, sizeof(art), "%s/artifacts/%s", w.cache, k.sha);
    assert_int_equal(access(art, X_OK), 0);
    /* Journaled until acknowledged. */
    assert_int_equal(s_w_status(&w, "journal"), 1);
    s_fc_ack(fc, sp.cell_id, 1, KT_MSG_RESULT_ACK);
    uint64_t until = s_now_ms() + 2000;
    while (s_w_status(&w, "journal") && s_now_ms() < until)
        s_fc_wait(fc, KT_MSG__COUNT, 20);
    assert_int_equal(s_w_status(&w, "journal"), 0);

    /* Same kernel again: no FETCH. A repeated ASSIGN is accepted once. */
    unsigned fetches = fc->counts[KT_MSG_FETCH];
    kt_cellspec_t sp2;
    s_spec(&sp2, "run-flow", 2, &k, false);
    s_fc_assign(fc, &sp2, 1);
    s_fc_assign(fc, &sp2, 1);
    assert_true(s_fc_wait(fc, KT_MSG_RESULT, 3000));
    assert_string_equal(fc->msg->u.result.cell_id, sp2.cell_id);
    /* The repeat either finds it running (one RESULT) or finished and
     * unacknowledged (the same RESULT again): never a second run. */
    s_fc_wait(fc, KT_MSG__COUNT, 300);
    assert_true(fc->counts[KT_MSG_RESULT] == 2 || fc->counts[KT_MSG_RESULT] == 3);
    assert_int_equal(fc->counts[KT_MSG_ACCEPT], 3);
    assert_int_equal(s_w_status(&w, "journal"), 1);
    s_fc_ack(fc, sp2.cell_id, 1, KT_MSG_RESULT_ACK);
    s_fc_quiet(fc, KT_MSG_RESULT, 300);
    assert_int_equal(s_w_status(&w, "journal"), 0);
    assert_int_equal(fc->counts[KT_MSG_FETCH], fetches);

    /* Messages before a session, and a coordinator's message in the wrong
     * direction, are answered with ERROR; the session survives. */
    s_fc_t *stranger = s_fc_new(w.endpoint, "stranger");
    stranger->beat = false;
    s_fc_assign(stranger, &sp2, 1);
    assert_true(s_fc_wait(stranger, KT_MSG_ERROR, 2000));
    assert_int_equal(stranger->msg->u.error.code, KT_CODE_GONE);
    kt_msg_init(&m, KT_MSG_PROGRESS);
    snprintf(m.u.progress.cell_id, sizeof(m.u.progress.cell_id), "%s", sp2.cell_id);
    m.u.progress.attempt = 1;
    snprintf(m.u.progress.phase, sizeof(m.u.progress.phase), "running");
    s_fc_send(fc, &m);
    assert_true(s_fc_wait(fc, KT_MSG_ERROR, 2000));
    assert_int_equal(fc->msg->u.error.code, KT_CODE_BAD_MESSAGE);
    assert_true(s_fc_wait(fc, KT_MSG_HEARTBEAT, 1000));
    s_fc_destroy(&stranger);

    s_fc_destroy(&fc);
    s_w_stop(&w, false);
    free(k.data);
}

/* A chunk with a flipped bit: the artifact fails its sha256, is not cached,
 * and the cell ends in error saying so. */
static void test_corrupt_chunk(void **state)
{
    s_w_t w = {0};
    s_w_start(&w, kt_executor_null(), 8, 8192);
    s_fc_t *fc = s_fc_new(w.endpoint, "coord-corrupt");
    s_art_t k;
    s_art_make(&k, KT_CHUNK_MAX + 77, 4);
    k.corrupt = true;
    fc->arts[fc->n_arts++] = &k;
    s_fc_open(fc);
    kt_cellspec_t sp;
    s_spec(&sp, "run-corrupt", 1, &k, false);
    s_fc_assign(fc, &sp, 1);
    assert_true(s_fc_wait(fc, KT_MSG_RESULT, 5000));
    assert_string_equal(fc->msg->u.result.verdict, "error");
    assert_non_null(strstr(fc->msg->u.result.reason, "sha256 mismatch"));
    char art[PATH_MAX + 80];
    snprintf(art, sizeof(art), "%s/artifacts/%s", w.cache, k.sha);
    assert_int_not_equal(access(art, F_OK), 0);
    /* The capacity came back. */
    assert_int_equal(s_w_status(&w, "free_vcpus"), 8);
    assert_int_equal(s_w_status(&w, "cells"), 0);
    s_fc_destroy(&fc);
    s_w_stop(&w, false);
    free(k.data);
}

/* Two coordinators share 4 vCPUs and 1536 MiB: whatever would oversell is
 * refused, whoever asks. */
static void test_capacity_two_sessions(void **state)
{
    s_w_t w = {0};
    s_w_start(&w, kt_executor_sleep(600), 4, 1536);
    s_art_t k;
    s_art_make(&k, 4096, 5);
    s_fc_t *a = s_fc_new(w.endpoint, "coord-a");
    s_fc_t *b = s_fc_new(w.endpoint, "coord-b");
    a->arts[a->n_arts++] = &k;
    b->arts[b->n_arts++] = &k;
    s_fc_open(a);
    s_fc_open(b);

    kt_cellspec_t big_a, small_b, small_b2;
    s_spec(&big_a, "run-a", 1, &k, true); /* 4 vCPUs */
    big_a.memory_mib = 512;
    s_fc_assign(a, &big_a, 1);
    assert_true(s_fc_wait(a, KT_MSG_ACCEPT, 2000));
    assert_true(a->msg->u.accept.ok);
    s_spec(&small_b, "run-b", 1, &k, false); /* 2 vCPUs */
    s_fc_assign(b, &small_b, 1);
    assert_true(s_fc_wait(b, KT_MSG_ACCEPT, 2000));
    assert_false(b->msg->u.accept.ok);
    assert_non_null(strstr(b->msg->u.accept.reason, "no capacity"));
    /* The heartbeat to b shows nothing free. */
    assert_true(s_fc_wait(b, KT_MSG_HEARTBEAT, 1000));
    assert_int_equal(b->msg->u.heartbeat.free_vcpus, 0);
    assert_int_equal(b->msg->u.heartbeat.n_running, 0);
    assert_true(s_fc_wait(a, KT_MSG_HEARTBEAT, 1000));
    assert_int_equal(a->msg->u.heartbeat.n_running, 1);

    assert_true(s_fc_wait(a, KT_MSG_RESULT, 5000));
    s_fc_ack(a, big_a.cell_id, 1, KT_MSG_RESULT_ACK);

    /* Memory: 2 x 768 MiB fit 1536, a third does not, from either side. */
    s_spec(&small_b, "run-b", 2, &k, false);
    small_b.memory_mib = 768;
    s_spec(&small_b2, "run-b", 3, &k, false);
    small_b2.memory_mib = 768;
    s_fc_assign(b, &small_b, 1);
    assert_true(s_fc_wait(b, KT_MSG_ACCEPT, 2000));
    assert_true(b->msg->u.accept.ok);
    kt_cellspec_t mid_a;
    s_spec(&mid_a, "run-a", 2, &k, false);
    mid_a.memory_mib = 768;
    s_fc_assign(a, &mid_a, 1);
    assert_true(s_fc_wait(a, KT_MSG_ACCEPT, 2000));
    assert_true(a->msg->u.accept.ok);
    s_fc_assign(b, &small_b2, 1);
    assert_true(s_fc_wait(b, KT_MSG_ACCEPT, 2000));
    assert_false(b->msg->u.accept.ok);
    assert_int_equal(s_w_status(&w, "free_memory_mib"), 0);
    assert_int_equal(s_w_status(&w, "free_vcpus"), 0);

    assert_true(s_fc_wait(a, KT_MSG_RESULT, 5000));
    assert_true(s_fc_wait(b, KT_MSG_RESULT, 5000));
    assert_string_equal(b->msg->u.result.cell_id, small_b.cell_id);
    /* Each result went to the coordinator that assigned it only. */
    assert_int_equal(a->counts[KT_MSG_RESULT], 2);
    assert_int_equal(b->counts[KT_MSG_RESULT], 1);
    assert_int_equal(s_w_status(&w, "free_vcpus"), 4);
    assert_int_equal(s_w_status(&w, "free_memory_mib"), 1536);

    /* Too big for any VM here. */
    kt_cellspec_t huge;
    s_spec(&huge, "run-a", 9, &k, true);
    huge.plan.topology.cores_per_llc = 4; /* 8 vCPUs */
    s_fc_assign(a, &huge, 1);
    assert_true(s_fc_wait(a, KT_MSG_ACCEPT, 2000));
    assert_false(a->msg->u.accept.ok);
    assert_non_null(strstr(a->msg->u.accept.reason, "at most 4 per VM"));

    s_fc_destroy(&a);
    s_fc_destroy(&b);
    s_w_stop(&w, false);
    free(k.data);
}

/* A coordinator that goes silent is expired; its running cell finishes into
 * the journal and is offered to the next session of the same coordinator
 * id, never to another coordinator. */
static void test_expire_and_reoffer(void **state)
{
    s_w_t w = {0};
    s_w_start(&w, kt_executor_sleep(700), 4, 4096);
    s_art_t k;
    s_art_make(&k, 1000, 6);
    s_fc_t *a = s_fc_new(w.endpoint, "coord-x");
    a->arts[a->n_arts++] = &k;
    s_fc_open(a);
    kt_cellspec_t sp;
    s_spec(&sp, "run-x", 1, &k, false);
    s_fc_assign(a, &sp, 3);
    assert_true(s_fc_wait(a, KT_MSG_ACCEPT, 2000));
    assert_true(a->msg->u.accept.ok);
    while (s_fc_wait(a, KT_MSG_PROGRESS, 2000) && strcmp(a->msg->u.progress.phase, "running"))
        ;
    assert_string_equal(a->msg->u.progress.phase, "running");
    /* Silence: a neither beats nor reads. */
    zsock_destroy(&a->sock);
    uint64_t until = s_now_ms() + 3000;
    while (s_w_status(&w, "sessions") != 0 && s_now_ms() < until)
        usleep(20000);
    assert_int_equal(s_w_status(&w, "sessions"), 0);
    /* The cell keeps running and lands in the journal. */
    until = s_now_ms() + 3000;
    while (s_w_status(&w, "journal") != 1 && s_now_ms() < until)
        usleep(20000);
    assert_int_equal(s_w_status(&w, "journal"), 1);
    assert_int_equal(s_w_status(&w, "cells"), 0);

    /* Another coordinator gets nothing. */
    s_fc_t *other = s_fc_new(w.endpoint, "coord-other");
    s_fc_open(other);
    assert_int_equal(other->counts[KT_MSG_HELLO], 1);
    assert_int_equal(other->msg->u.hello.pending_results, 0);
    s_fc_quiet(other, KT_MSG_RESULT, 300);

    /* The same coordinator again: HELLO counts it, the RESULT comes. */
    s_fc_t *a2 = s_fc_new(w.endpoint, "coord-x");
    kt_msg_t m;
    kt_msg_init(&m, KT_MSG_OPEN);
    m.u.open.version = KT_PROTO_VERSION;
    snprintf(m.u.open.coordinator_id, sizeof(m.u.open.coordinator_id), "coord-x");
    m.u.open.session = 99;
    s_fc_send(a2, &m);
    assert_true(s_fc_wait(a2, KT_MSG_HELLO, 2000));
    assert_int_equal(a2->msg->u.hello.pending_results, 1);
    kt_msg_init(&m, KT_MSG_WELCOME);
    m.u.welcome.session = 99;
    m.u.welcome.heartbeat_ms = 50;
    m.u.welcome.lost_after_ms = 400;
    s_fc_send(a2, &m);
    assert_true(s_fc_wait(a2, KT_MSG_RESULT, 2000));
    assert_string_equal(a2->msg->u.result.cell_id, sp.cell_id);
    assert_int_equal(a2->msg->u.result.attempt, 3);
    assert_string_equal(a2->msg->u.result.verdict, "pass");
    assert_non_null(strstr(a2->msg->u.result.sidecar, "\"executor\":\"sleep\""));
    s_fc_ack(a2, sp.cell_id, 3, KT_MSG_RESULT_ACK);
    until = s_now_ms() + 2000;
    while (s_w_status(&w, "journal") != 0 && s_now_ms() < until)
        s_fc_wait(a2, KT_MSG__COUNT, 20);
    assert_int_equal(s_w_status(&w, "journal"), 0);
    s_fc_quiet(other, KT_MSG_RESULT, 100);

    a->sock = NULL;
    s_fc_destroy(&a);
    s_fc_destroy(&a2);
    s_fc_destroy(&other);
    s_w_stop(&w, false);
    free(k.data);
}

/* A result not acknowledged when the worker stops is journaled, and the
 * next worker process on that cache offers it again. */
static void test_restart_reoffers_journal(void **state)
{
    s_w_t w = {0};
    s_w_start(&w, kt_executor_null(), 4, 4096);
    s_art_t k;
    s_art_make(&k, 1000, 7);
    s_fc_t *a = s_fc_new(w.endpoint, "coord-r");
    a->arts[a->n_arts++] = &k;
    s_fc_open(a);
    kt_cellspec_t sp;
    s_spec(&sp, "run-r", 1, &k, false);
    s_fc_assign(a, &sp, 1);
    assert_true(s_fc_wait(a, KT_MSG_RESULT, 3000));
    s_fc_destroy(&a);
    s_w_stop(&w, true);
    assert_int_equal(s_journal_entries(w.cache), 1);

    s_w_start(&w, kt_executor_null(), 4, 4096);
    s_fc_t *a2 = s_fc_new(w.endpoint, "coord-r");
    s_fc_open(a2);
    assert_int_equal(a2->counts[KT_MSG_HELLO], 1);
    assert_true(s_fc_wait(a2, KT_MSG_RESULT, 2000));
    assert_string_equal(a2->msg->u.result.cell_id, sp.cell_id);
    /* Not acked: offered again after lost_after. */
    assert_true(s_fc_wait(a2, KT_MSG_RESULT, 2000));
    assert_string_equal(a2->msg->u.result.cell_id, sp.cell_id);
    s_fc_ack(a2, sp.cell_id, 1, KT_MSG_RESULT_ACK);
    uint64_t until = s_now_ms() + 2000;
    while (s_w_status(&w, "journal") && s_now_ms() < until)
        s_fc_wait(a2, KT_MSG__COUNT, 20);
    assert_int_equal(s_w_status(&w, "journal"), 0);
    s_fc_destroy(&a2);
    s_w_stop(&w, false);
    free(k.data);
}

/* Many journaled results are offered a window at a time: more come as the
 * coordinator acknowledges, none twice while unacknowledged, all in the end. */
static void test_offer_window(void **state)
{
    enum { N = 100 };
    s_w_t w = {0};
    s_w_start(&w, kt_executor_null(), 4, 4096);
    s_art_t k;
    s_art_make(&k, 1000, 12);
    s_fc_t *a = s_fc_new(w.endpoint, "coord-win");
    a->arts[a->n_arts++] = &k;
    s_fc_open(a);
    kt_cellspec_t sp;
    for (unsigned i = 0; i < N; i++) {
        s_spec(&sp, "run-win", i, &k, false);
        s_fc_assign(a, &sp, 1);
        assert_true(s_fc_wait(a, KT_MSG_RESULT, 3000));
    }
    s_fc_destroy(&a);
    s_w_stop(&w, true);
    assert_int_equal(s_journal_entries(w.cache), N);

    s_w_start(&w, kt_executor_null(), 4, 4096);
    a = s_fc_new(w.endpoint, "coord-win");
    s_fc_open(a);
    assert_int_equal(a->msg->u.hello.pending_results, N);
    /* Unacknowledged, a window's worth arrives and stops there. */
    s_fc_wait(a, KT_MSG__COUNT, 250);
    assert_int_equal(a->counts[KT_MSG_RESULT], 64);
    char seen[N][KT_SHA_HEX];
    unsigned n_seen = 0, acked = 0;
    uint64_t until = s_now_ms() + 5000;
    while (acked < N && s_now_ms() < until) {
        if (!s_fc_wait(a, KT_MSG_RESULT, 200))
            continue;
        bool dup = false;
        for (unsigned i = 0; i < n_seen; i++)
            dup |= strcmp(seen[i], a->msg->u.result.cell_id) == 0;
        if (dup)
            continue; /* a re-offer after lost_after: allowed, not counted */
        snprintf(seen[n_seen++], KT_SHA_HEX, "%s", a->msg->u.result.cell_id);
        s_fc_ack(a, a->msg->u.result.cell_id, 1, KT_MSG_RESULT_ACK);
        acked++;
    }
    assert_int_equal(acked, N);
    until = s_now_ms() + 2000;
    while (s_w_status(&w, "journal") != 0 && s_now_ms() < until)
        s_fc_wait(a, KT_MSG__COUNT, 20);
    assert_int_equal(s_w_status(&w, "journal"), 0);
    s_fc_destroy(&a);
    s_w_stop(&w, false);
    free(k.data);
}

/* DRAIN: every session hears it, new cells are refused, the running one
 * finishes and is delivered, and once acked the actor says DRAINED. */
static void test_drain(void **state)
{
    s_w_t w = {0};
    s_w_start(&w, kt_executor_sleep(400), 4, 4096);
    s_art_t k;
    s_art_make(&k, 1000, 8);
    s_fc_t *a = s_fc_new(w.endpoint, "coord-d");
    a->arts[a->n_arts++] = &k;
    s_fc_open(a);
    kt_cellspec_t sp, sp2;
    s_spec(&sp, "run-d", 1, &k, false);
    s_fc_assign(a, &sp, 1);
    assert_true(s_fc_wait(a, KT_MSG_ACCEPT, 2000));
    assert_true(a->msg->u.accept.ok);
    zstr_send(w.actor, "DRAIN");
    assert_true(s_fc_wait(a, KT_MSG_DRAIN, 2000));
    assert_int_equal(a->msg->u.drain.running, 1);
    s_spec(&sp2, "run-d", 2, &k, false);
    s_fc_assign(a, &sp2, 1);
    assert_true(s_fc_wait(a, KT_MSG_ACCEPT, 2000));
    assert_false(a->msg->u.accept.ok);
    assert_non_null(strstr(a->msg->u.accept.reason, "draining"));
    /* A new session learns it in HELLO. */
    s_fc_t *b = s_fc_new(w.endpoint, "coord-d2");
    s_fc_open(b);
    assert_int_equal(b->counts[KT_MSG_HELLO], 1);
    s_fc_destroy(&b);

    assert_true(s_fc_wait(a, KT_MSG_RESULT, 3000));
    assert_string_equal(a->msg->u.result.cell_id, sp.cell_id);
    /* Not drained while the result is unacknowledged. */
    zpoller_t *p = zpoller_new(w.actor, NULL);
    assert_null(zpoller_wait(p, 200));
    s_fc_ack(a, sp.cell_id, 1, KT_MSG_RESULT_ACK);
    assert_true(zpoller_wait(p, 3000) == w.actor);
    char *msg = zstr_recv(w.actor);
    assert_string_equal(msg, "DRAINED");
    free(msg);
    zpoller_destroy(&p);
    assert_int_equal(s_w_status(&w, "journal"), 0);
    s_fc_destroy(&a);
    s_w_stop(&w, false);
    free(k.data);
}

/* CANCEL: a sleeping cell stops and its result says it was cancelled; a
 * CANCEL for an unknown cell changes nothing. */
static void test_cancel(void **state)
{
    s_w_t w = {0};
    s_w_start(&w, kt_executor_sleep(20000), 4, 4096);
    s_art_t k;
    s_art_make(&k, 1000, 9);
    s_fc_t *a = s_fc_new(w.endpoint, "coord-c");
    a->arts[a->n_arts++] = &k;
    s_fc_open(a);
    kt_cellspec_t sp;
    s_spec(&sp, "run-c", 1, &k, false);
    s_fc_assign(a, &sp, 2);
    assert_true(s_fc_wait(a, KT_MSG_PROGRESS, 2000));
    if (strcmp(a->msg->u.progress.phase, "running") != 0)
        assert_true(s_fc_wait(a, KT_MSG_PROGRESS, 2000));
    assert_string_equal(a->msg->u.progress.phase, "running");
    kt_cellspec_t other;
    s_spec(&other, "run-c", 5, &k, false);
    s_fc_ack(a, other.cell_id, 1, KT_MSG_CANCEL);
    uint64_t t0 = s_now_ms();
    s_fc_ack(a, sp.cell_id, 2, KT_MSG_CANCEL);
    assert_true(s_fc_wait(a, KT_MSG_RESULT, 3000));
    assert_true(s_now_ms() - t0 < 3000);
    assert_string_equal(a->msg->u.result.verdict, "error");
    assert_non_null(strstr(a->msg->u.result.reason, "cancelled"));
    assert_non_null(strstr(a->msg->u.result.sidecar, "\"cancelled\":true"));
    s_fc_ack(a, sp.cell_id, 2, KT_MSG_RESULT_ACK);
    s_fc_destroy(&a);
    s_w_stop(&w, false);
    free(k.data);
}

/* Garbage frames: each gets one log line and an ERROR, and the worker goes
 * on serving. */
static void test_garbage(void **state)
{
    s_w_t w = {0};
    s_w_start(&w, kt_executor_null(), 4, 4096);
    zsock_t *g = zsock_new(ZMQ_DEALER);
    assert_int_equal(zsock_connect(g, "%s", w.endpoint), 0);
    zstr_sendx(g, "hello", "world", NULL);                       /* bad signature, 2 frames */
    zstr_sendx(g, KT_PROTO_SIGNATURE, "NOPE", "x", NULL);        /* unknown type */
    zstr_sendx(g, KT_PROTO_SIGNATURE, "OPEN", "\xc1\xff", NULL); /* body not msgpack */
    zstr_sendx(g, KT_PROTO_SIGNATURE, "OPEN", "\x80", NULL);     /* empty map */
    zstr_send(g, "");                                            /* one empty frame */
    zpoller_t *p = zpoller_new(g, NULL);
    unsigned errors = 0;
    uint64_t until = s_now_ms() + 2000;
    while (errors < 5 && s_now_ms() < until) {
        if (zpoller_wait(p, 50) != g)
            continue;
        kt_msg_t m;
        char why[256];
        while (kt_wire_recv(g, NULL, &m, why, sizeof(why)) == 0) {
            assert_int_equal(m.type, KT_MSG_ERROR);
            assert_int_equal(m.u.error.code, KT_CODE_BAD_MESSAGE);
            errors++;
            kt_msg_clear(&m);
        }
    }
    zpoller_destroy(&p);
    assert_int_equal(errors, 5);
    assert_int_equal(s_w_status(&w, "garbage"), 5);
    zsock_destroy(&g);

    s_fc_t *a = s_fc_new(w.endpoint, "coord-after-garbage");
    s_fc_open(a);
    assert_true(s_fc_wait(a, KT_MSG_HEARTBEAT, 1000));
    s_fc_destroy(&a);
    s_w_stop(&w, false);
}

/* A non-loopback bind without CURVE or --insecure does not start. With
 * CURVE, an allowed coordinator key gets a session and an unknown one
 * nothing. */
static void test_bind_and_curve(void **state)
{
    char *cache = s_tmpdir();
    kt_serve_config_t cfg = {.bind = "tcp://*:0",
                             .worker_id = "w-sec",
                             .cache_dir = cache,
                             .executor = kt_executor_null(),
                             .accel_name = "tcg",
                             .capacity_vcpus = 2,
                             .capacity_memory_mib = 1024};
    assert_null(kt_serve_actor_new(&cfg));
    cfg.bind = "tcp://127.0.0.1:*";
    cfg.curve_secret = "/nonexistent/secret";
    assert_null(kt_serve_actor_new(&cfg)); /* CURVE without --allow */

    char *keys = s_tmpdir();
    char allow[PATH_MAX], wsec[PATH_MAX + 32], wpub[PATH_MAX + 32], cpub[PATH_MAX + 32];
    snprintf(allow, sizeof(allow), "%s/allow", keys);
    assert_int_equal(mkdir(allow, 0700), 0);
    zcert_t *wcert = zcert_new();
    zcert_t *ccert = zcert_new();
    zcert_t *stranger = zcert_new();
    snprintf(wpub, sizeof(wpub), "%s/worker.key", keys);
    snprintf(wsec, sizeof(wsec), "%s/worker.key_secret", keys);
    snprintf(cpub, sizeof(cpub), "%s/coordinator.key", allow);
    assert_int_equal(zcert_save(wcert, wpub), 0);
    assert_int_equal(zcert_save_public(ccert, cpub), 0);

    /* A public key alone is not a secret key. */
    cfg.curve_secret = cpub;
    cfg.allow_dir = allow;
    assert_null(kt_serve_actor_new(&cfg));

    cfg.curve_secret = wsec;
    cfg.bind = "tcp://127.0.0.1:*";
    zactor_t *actor = kt_serve_actor_new(&cfg);
    assert_non_null(actor);
    zstr_send(actor, "ENDPOINT");
    char *ep = zstr_recv(actor);

    s_fc_t *ok = calloc(1, sizeof(*ok));
    ok->msg = calloc(1, sizeof(*ok->msg));
    ok->sock = zsock_new(ZMQ_DEALER);
    kt_wire_socket_setup(ok->sock);
    zcert_apply(ccert, ok->sock);
    zsock_set_curve_serverkey(ok->sock, zcert_public_txt(wcert));
    assert_int_equal(zsock_connect(ok->sock, "%s", ep), 0);
    snprintf(ok->id, sizeof(ok->id), "coord-curve");
    ok->session = 1;
    s_fc_open(ok);
    assert_string_equal(ok->msg->u.hello.worker_id, "w-sec");

    s_fc_t *bad = calloc(1, sizeof(*bad));
    bad->msg = calloc(1, sizeof(*bad->msg));
    bad->sock = zsock_new(ZMQ_DEALER);
    kt_wire_socket_setup(bad->sock);
    zcert_apply(stranger, bad->sock);
    zsock_set_curve_serverkey(bad->sock, zcert_public_txt(wcert));
    assert_int_equal(zsock_connect(bad->sock, "%s", ep), 0);
    snprintf(bad->id, sizeof(bad->id), "coord-stranger");
    kt_msg_t m;
    kt_msg_init(&m, KT_MSG_OPEN);
    m.u.open.version = KT_PROTO_VERSION;
    snprintf(m.u.open.coordinator_id, sizeof(m.u.open.coordinator_id), "coord-stranger");
    m.u.open.session = 5;
    kt_wire_send(bad->sock, NULL, &m); /* queued; the handshake never completes */
    bad->beat = false;
    assert_false(s_fc_wait(bad, KT_MSG_HELLO, 800));
    free(ep);
    /* The worker logged (and counted) the refused handshake. */
    zstr_send(actor, "STATUS");
    char *st = zstr_recv(actor);
    assert_non_null(strstr(st, "sessions=1 "));
    assert_null(strstr(st, "garbage=0"));
    free(st);

    s_fc_destroy(&ok);
    s_fc_destroy(&bad);
    zactor_destroy(&actor);
    zcert_destroy(&wcert);
    zcert_destroy(&ccert);
    zcert_destroy(&stranger);
    s_rm_rf(keys);
    s_rm_rf(cache);
    free(keys);
    free(cache);
}

/* $TERM stops now: a running cell is abandoned (the coordinator will run it
 * again), not reported as a result that did not happen, and not journaled. */
static void test_term_abandons_running(void **state)
{
    s_w_t w = {0};
    s_w_start(&w, kt_executor_sleep(20000), 4, 4096);
    s_art_t k;
    s_art_make(&k, 1000, 10);
    s_fc_t *a = s_fc_new(w.endpoint, "coord-t");
    a->arts[a->n_arts++] = &k;
    s_fc_open(a);
    kt_cellspec_t sp;
    s_spec(&sp, "run-t", 1, &k, false);
    s_fc_assign(a, &sp, 1);
    while (s_fc_wait(a, KT_MSG_PROGRESS, 2000) && strcmp(a->msg->u.progress.phase, "running"))
        ;
    assert_string_equal(a->msg->u.progress.phase, "running");
    uint64_t t0 = s_now_ms();
    s_w_stop(&w, true);
    assert_true(s_now_ms() - t0 < 1500);
    s_fc_quiet(a, KT_MSG_RESULT, 300);
    assert_int_equal(s_journal_entries(w.cache), 0);
    s_fc_destroy(&a);
    s_rm_rf(w.cache);
    free(w.cache);
    free(k.data);
}

/* The same coordinator on a new connection takes over the old session: the
 * running cell's result goes to the new one. */
static void test_reconnect_takes_over(void **state)
{
    s_w_t w = {0};
    s_w_start(&w, kt_executor_sleep(500), 4, 4096);
    s_art_t k;
    s_art_make(&k, 1000, 11);
    s_fc_t *a = s_fc_new(w.endpoint, "coord-re");
    a->arts[a->n_arts++] = &k;
    s_fc_open(a);
    kt_cellspec_t sp;
    s_spec(&sp, "run-re", 1, &k, false);
    s_fc_assign(a, &sp, 1);
    while (s_fc_wait(a, KT_MSG_PROGRESS, 2000) && strcmp(a->msg->u.progress.phase, "running"))
        ;
    s_fc_t *a2 = s_fc_new(w.endpoint, "coord-re");
    a2->session = 43;
    s_fc_open(a2);
    assert_int_equal(s_w_status(&w, "sessions"), 1);
    assert_true(s_fc_wait(a2, KT_MSG_HEARTBEAT, 1000));
    assert_int_equal(a2->msg->u.heartbeat.n_running, 1);
    assert_string_equal(a2->msg->u.heartbeat.running[0].cell_id, sp.cell_id);
    assert_true(s_fc_wait(a2, KT_MSG_RESULT, 3000));
    assert_string_equal(a2->msg->u.result.cell_id, sp.cell_id);
    s_fc_quiet(a, KT_MSG_RESULT, 100);
    /* The old connection is forgotten: it is told to OPEN again. */
    s_fc_beat(a);
    assert_true(s_fc_wait(a, KT_MSG_ERROR, 1000));
    assert_int_equal(a->msg->u.error.code, KT_CODE_GONE);
    s_fc_ack(a2, sp.cell_id, 1, KT_MSG_RESULT_ACK);
    s_fc_destroy(&a);
    s_fc_destroy(&a2);
    s_w_stop(&w, false);
    free(k.data);
}

/* Two daemons cannot share one cache (the journal is per process). */
static void test_cache_lock(void **state)
{
    s_w_t w = {0};
    s_w_start(&w, kt_executor_null(), 2, 1024);
    kt_serve_config_t cfg = w.cfg;
    assert_null(kt_serve_actor_new(&cfg));
    s_w_stop(&w, false);
}

int main(void)
{
    kt_log_set_level(getenv("KT_TEST_DEBUG") ? KT_LOG_DEBUG : KT_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_artifacts),
        cmocka_unit_test(test_journal),
        cmocka_unit_test(test_session_flow),
        cmocka_unit_test(test_corrupt_chunk),
        cmocka_unit_test(test_capacity_two_sessions),
        cmocka_unit_test(test_expire_and_reoffer),
        cmocka_unit_test(test_restart_reoffers_journal),
        cmocka_unit_test(test_offer_window),
        cmocka_unit_test(test_drain),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_bind_and_curve),
        cmocka_unit_test(test_cache_lock),
        cmocka_unit_test(test_term_abandons_running),
        cmocka_unit_test(test_reconnect_takes_over),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
