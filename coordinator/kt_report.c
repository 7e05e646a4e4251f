/* The results of a run on disk and on the terminal. Sidecars are the
 * worker's JSON with what only the coordinator knows added (run, attempt,
 * worker, commit, queue time); the verdict and reason in them are the ones
 * the dispatcher accepted, so the files, the store and the summary agree. */
#include "kt_report.h"

#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <git2.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "kt_cleanup.h"
#include "kt_config.h"
#include "kt_sidecar.h"
#include "kt_topology.h"

#define S_PLAIN_STATUS_MS 10000
#define S_TABLE_ROWS_MAX 60
#define S_LIST_FAILED_MAX 50
#define S_REASON_SHOWN 160

typedef struct s_rec {
    bool done;
    char verdict[8];
    char worker[KT_ID_MAX];
    unsigned attempt;
    unsigned boots;         /* VM boots of the accepted attempt (sidecar boot_retries + 1) */
    uint64_t time_ms;
    char *reason;
    char *sidecar_path;
} s_rec_t;

/* 1 + the failed boots the worker tried again (its sidecar's boot_retries). */
static unsigned s_boots(const json_t *doc)
{
    return 1 + (unsigned)json_array_size(json_object_get(doc, "boot_retries"));
}

struct kt_report {
    const kt_coord_run_t *run;
    FILE *out;
    bool tty;
    bool quiet;
    bool line_shown;        /* a progress line is on the terminal now */
    char results_dir[PATH_MAX];
    char run_dir[PATH_MAX];
    char started[32];
    s_rec_t *recs;
    unsigned n_done;
    uint64_t last_plain_ms;
    char last_line[1024];   /* the progress line, redrawn after other lines */
    time_t t0;
    json_t *workers;        /* the last status snapshot's workers */
    FILE *events;           /* {run_dir}/events.log */
};

static uint64_t s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void s_iso_time(time_t t, char *buf, size_t len)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int s_mkdir_p(const char *path)
{
    char buf[PATH_MAX];
    int n = snprintf(buf, sizeof(buf), "%s", path);
    if (n < 0 || (size_t)n >= sizeof(buf))
        return -ENAMETOOLONG;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) < 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(buf, 0755) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

/* Writes text to path through a temp file and rename. */
static int s_write_atomic(const char *path, const char *text, size_t len)
{
    char tmp[PATH_MAX + 32];
    snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid());
    _cleanup_close_ int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, text + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            int e = errno;
            unlink(tmp);
            return -e;
        }
        off += (size_t)w;
    }
    if (rename(tmp, path) < 0) {
        int e = errno;
        unlink(tmp);
        return -e;
    }
    return 0;
}

int kt_report_new(const kt_report_config_t *cfg, kt_report_t **ret)
{
    if (!cfg || !cfg->run || !cfg->results_dir || !ret)
        return -EINVAL;
    kt_report_t *r = calloc(1, sizeof(*r));
    if (!r)
        return -ENOMEM;
    r->run = cfg->run;
    r->out = cfg->out ? cfg->out : stdout;
    r->recs = calloc(cfg->run->n_cells ? cfg->run->n_cells : 1, sizeof(*r->recs));
    if (!r->recs) {
        free(r);
        return -ENOMEM;
    }
    switch (cfg->progress) {
    case KT_REPORT_PROGRESS_TTY: r->tty = true; break;
    case KT_REPORT_PROGRESS_PLAIN: break;
    case KT_REPORT_PROGRESS_QUIET: r->quiet = true; break;
    default: r->tty = isatty(fileno(r->out)) == 1 && getenv("TERM") && strcmp(getenv("TERM"), "dumb");
    }
    snprintf(r->results_dir, sizeof(r->results_dir), "%s", cfg->results_dir);
    int n = snprintf(r->run_dir, sizeof(r->run_dir), "%s/%s", cfg->results_dir,
                     cfg->run->run_id);
    int e = 0;
    if (n < 0 || (size_t)n >= sizeof(r->run_dir))
        e = -ENAMETOOLONG;
    else
        e = s_mkdir_p(r->run_dir);
    if (e < 0) {
        kt_report_free(&r);
        return e;
    }
    r->t0 = time(NULL);
    s_iso_time(r->t0, r->started, sizeof(r->started));
    char ev[PATH_MAX + 16];
    snprintf(ev, sizeof(ev), "%s/events.log", r->run_dir);
    r->events = fopen(ev, "ae");
    *ret = r;
    return 0;
}

void kt_report_free(kt_report_t **r_p)
{
    if (!r_p || !*r_p)
        return;
    kt_report_t *r = *r_p;
    for (unsigned i = 0; r->recs && i < r->run->n_cells; i++) {
        free(r->recs[i].reason);
        free(r->recs[i].sidecar_path);
    }
    free(r->recs);
    json_decref(r->workers);
    if (r->events)
        fclose(r->events);
    free(r);
    *r_p = NULL;
}

const char *kt_report_run_dir(const kt_report_t *r)
{
    return r->run_dir;
}

int kt_report_cell_paths(const kt_report_t *r, const kt_coord_cell_t *cell, char *dir,
                         size_t dir_len, char *stem, size_t stem_len)
{
    char kdir[160], raw[160];
    snprintf(raw, sizeof(raw), "%s-%s", cell->spec.kernel_label[0] ? cell->spec.kernel_label
                                                                     : "kernel",
             cell->spec.kernel_commit[0] ? cell->spec.kernel_commit : "nocommit");
    kt_sidecar_file_stem(raw, kdir, sizeof(kdir));
    int n = snprintf(dir, dir_len, "%s/%s", r->run_dir, kdir);
    if (n < 0 || (size_t)n >= dir_len)
        return -ENAMETOOLONG;
    kt_sidecar_file_stem(cell->spec.cell_name, stem, stem_len);
    return 0;
}

static unsigned s_index(const kt_report_t *r, const kt_coord_cell_t *cell)
{
    ptrdiff_t i = cell - r->run->cells;
    return i >= 0 && (size_t)i < r->run->n_cells ? (unsigned)i : UINT_MAX;
}

/* ---- terminal ---- */

static void s_clear_line(kt_report_t *r)
{
    if (r->tty && r->line_shown) {
        fputs("\r\033[K", r->out);
        r->line_shown = false;
    }
}

static void s_redraw(kt_report_t *r)
{
    if (r->tty && r->last_line[0] && !r->quiet) {
        fputs(r->last_line, r->out);
        r->line_shown = true;
    }
    fflush(r->out);
}

void kt_report_note(kt_report_t *r, const char *line)
{
    if (r->events) {
        char ts[32];
        s_iso_time(time(NULL), ts, sizeof(ts));
        fprintf(r->events, "%s %s\n", ts, line);
        fflush(r->events);
    }
    s_clear_line(r);
    fprintf(r->out, "note: %s\n", line);
    s_redraw(r);
}

static void s_short_reason(const char *reason, char *buf, size_t len)
{
    size_t o = 0;
    const char *p = reason ? reason : "";
    for (; *p && o + 1 < len; p++)
        buf[o++] = (*p == '\n' || *p == '\r' || *p == '\t') ? ' ' : *p;
    buf[o] = '\0';
    if (*p && len > 4)
        memcpy(buf + len - 4, "...", 4);
}

static void s_duration(uint64_t ms, char *buf, size_t len)
{
    if (ms < 10000)
        snprintf(buf, len, "%.1fs", (double)ms / 1000.0);
    else if (ms < 3600000)
        snprintf(buf, len, "%um%02us", (unsigned)(ms / 60000), (unsigned)(ms / 1000 % 60));
    else
        snprintf(buf, len, "%uh%02um", (unsigned)(ms / 3600000), (unsigned)(ms / 60000 % 60));
}

void kt_report_cell_done(kt_report_t *r, const kt_coord_cell_t *cell, unsigned attempt,
                         const char *worker, const char *verdict, const char *reason)
{
    unsigned i = s_index(r, cell);
    if (i == UINT_MAX)
        return;
    s_rec_t *rec = &r->recs[i];
    if (!rec->done)
        r->n_done++;
    rec->done = true;
    snprintf(rec->verdict, sizeof(rec->verdict), "%s", verdict);
    snprintf(rec->worker, sizeof(rec->worker), "%s", worker ? worker : "");
    rec->attempt = attempt;
    if (!rec->reason || strcmp(rec->reason, reason ? reason : "") != 0) {
        free(rec->reason);
        rec->reason = strdup(reason ? reason : "");
    }
    if (r->quiet)
        return;
    char t[16], why[S_REASON_SHOWN + 4], boots[24] = "";
    s_duration(rec->time_ms, t, sizeof(t));
    s_short_reason(reason, why, sizeof(why));
    if (rec->boots > 1)
        snprintf(boots, sizeof(boots), ", %u boots", rec->boots);
    s_clear_line(r);
    fprintf(r->out, "[%*u/%u] %-5s %s (%s, attempt %u%s, %s)%s%s\n",
            r->run->n_cells >= 100 ? (r->run->n_cells >= 1000 ? 4 : 3) : 2, r->n_done,
            r->run->n_cells, verdict, cell->spec.cell_name, worker, attempt, boots, t,
            strcmp(verdict, "pass") && why[0] ? ": " : "", strcmp(verdict, "pass") ? why : "");
    s_redraw(r);
}

static unsigned s_term_width(const kt_report_t *r)
{
    struct winsize ws;
    if (ioctl(fileno(r->out), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 20)
        return ws.ws_col;
    return 100;
}

static void s_eta(const kt_dispatch_status_t *st, char *buf, size_t len)
{
    unsigned left = st->total - st->done;
    if (!left) {
        snprintf(buf, len, "0s");
        return;
    }
    uint64_t eta;
    if (st->done >= 1)
        eta = st->elapsed_ms * left / st->done;
    else if (st->running)
        eta = st->est_left_ms / st->running;
    else {
        snprintf(buf, len, "?");
        return;
    }
    s_duration(eta, buf, len);
}

static json_t *s_workers_json(const kt_dispatch_status_t *st)
{
    json_t *ws = json_array();
    for (unsigned i = 0; ws && i < st->n_workers; i++) {
        const kt_dispatch_worker_status_t *w = &st->workers[i];
        json_array_append_new(
            ws, json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:i,s:i,s:i,s:i,s:i,s:s}", "name", w->name,
                          "endpoint", w->endpoint, "state", w->state, "worker_id", w->worker_id,
                          "arch", w->arch, "accel", w->accel, "host_cpus", (int)w->host_cpus,
                          "max_vcpus", (int)w->max_vcpus, "canary_ms", (int)w->canary_ms, "done",
                          (int)w->done, "sessions", (int)w->sessions, "why",
                          w->why ? w->why : ""));
    }
    return ws;
}

void kt_report_status(kt_report_t *r, const kt_dispatch_status_t *st)
{
    if (!st)
        return;
    json_t *ws = s_workers_json(st);
    if (ws) {
        json_decref(r->workers);
        r->workers = ws;
    }
    if (r->quiet)
        return;
    char eta[16];
    s_eta(st, eta, sizeof(eta));
    char line[1024];
    size_t o = 0;
#define S_ADD(...)                                                                                 \
    do {                                                                                           \
        if (o < sizeof(line)) {                                                                    \
            int _n = snprintf(line + o, sizeof(line) - o, __VA_ARGS__);                            \
            if (_n > 0)                                                                            \
                o += (size_t)_n;                                                                   \
        }                                                                                          \
    } while (0)
    S_ADD("%u/%u done  pass %u fail %u error %u", st->done, st->total, st->pass, st->fail,
          st->error);
    if (st->skip)
        S_ADD(" skip %u", st->skip);
    S_ADD(" | %u running, %u queued", st->running, st->queued);
    if (st->requeued || st->stale)
        S_ADD(", %u requeued, %u stale", st->requeued, st->stale);
    S_ADD(" |");
    for (unsigned i = 0; i < st->n_workers; i++) {
        const kt_dispatch_worker_status_t *w = &st->workers[i];
        if (strcmp(w->state, "up") == 0)
            S_ADD(" %s %u/%u", w->name, w->used_vcpus, w->cap_vcpus);
        else
            S_ADD(" %s %s", w->name, w->state);
    }
    S_ADD(" | ETA %s", eta);
#undef S_ADD
    if (o >= sizeof(line))
        o = sizeof(line) - 1;
    line[o] = '\0';
    if (r->tty) {
        unsigned width = s_term_width(r) - 1;
        if (strlen(line) > width)
            line[width] = '\0';
        s_clear_line(r);
        snprintf(r->last_line, sizeof(r->last_line), "%s", line);
        s_redraw(r);
        return;
    }
    uint64_t now = s_now_ms();
    if (r->last_plain_ms && now - r->last_plain_ms < S_PLAIN_STATUS_MS)
        return;
    r->last_plain_ms = now;
    fprintf(r->out, "progress: %s\n", line);
    fflush(r->out);
}

/* ---- sidecars ---- */

static json_t *s_base_doc(const kt_report_t *r, const kt_coord_cell_t *cell)
{
    const kt_cellspec_t *sp = &cell->spec;
    char topo[KT_TOPOLOGY_LABEL_MAX], ts[32];
    kt_topology_label(&sp->plan.topology, topo, sizeof(topo));
    s_iso_time(time(NULL), ts, sizeof(ts));
    json_t *doc = json_object();
    if (!doc)
        return NULL;
    json_object_set_new(doc, "executor", json_string("none"));
    json_object_set_new(doc, "test_name", json_string(sp->cell_name));
    json_object_set_new(doc, "scenario", json_string(sp->plan.scenario));
    json_object_set_new(doc, "topology", json_string(topo));
    json_object_set_new(doc, "topology_preset",
                        sp->topology_preset[0] ? json_string(sp->topology_preset) : json_null());
    json_object_set_new(doc, "scheduler", json_string(sp->sched_name));
    json_object_set_new(doc, "sched_args", json_string(sp->sched_args));
    json_object_set_new(doc, "flags", json_string(sp->profile[0] ? sp->profile : "default"));
    json_object_set_new(doc, "kernel_label", json_string(sp->kernel_label));
    json_object_set_new(doc, "kernel_version", json_string(sp->kernel_version));
    json_object_set_new(doc, "memory_mib", json_integer((json_int_t)cell->memory_mib));
    json_object_set_new(doc, "vcpus", json_integer(cell->vcpus));
    json_object_set_new(doc, "project_version", json_string(KT_VERSION));
    json_object_set_new(doc, "timestamp", json_string(ts));
    (void)r;
    return doc;
}

int kt_report_write_result(kt_report_t *r, const kt_dispatch_result_t *res, char *ret_path,
                           size_t len)
{
    const kt_coord_cell_t *cell = res->cell;
    unsigned idx = s_index(r, cell);
    if (idx == UINT_MAX)
        return -EINVAL;
    char dir[PATH_MAX], stem[600];
    int e = kt_report_cell_paths(r, cell, dir, sizeof(dir), stem, sizeof(stem));
    if (e < 0)
        return e;
    if ((e = s_mkdir_p(dir)) < 0)
        return e;
    json_t *doc = NULL;
    bool unparsed = false;
    if (res->sidecar && res->sidecar_len) {
        json_error_t jerr;
        doc = json_loadb(res->sidecar, res->sidecar_len, 0, &jerr);
        if (doc && !json_is_object(doc)) {
            json_decref(doc);
            doc = NULL;
        }
        unparsed = doc == NULL;
    }
    if (!doc)
        doc = s_base_doc(r, cell);
    if (!doc)
        return -ENOMEM;
    if (unparsed)
        json_object_set_new(doc, "worker_sidecar_problem",
                            json_string("the worker's sidecar is not a JSON object; this one "
                                        "was made by the coordinator"));
    const kt_cellspec_t *sp = &cell->spec;
    json_object_set_new(doc, "run_id", json_string(r->run->run_id));
    json_object_set_new(doc, "cell_id", json_string(sp->cell_id));
    json_object_set_new(doc, "cell_name", json_string(sp->cell_name));
    json_object_set_new(doc, "attempt", json_integer(res->attempt));
    json_object_set_new(doc, "worker", json_string(res->worker));
    json_object_set_new(doc, "kernel_commit",
                        sp->kernel_commit[0] ? json_string(sp->kernel_commit) : json_null());
    json_object_set_new(doc, "verdict", json_string(res->verdict));
    json_object_set_new(doc, "reason", json_string(res->reason));
    json_object_set_new(doc, "passed", json_boolean(strcmp(res->verdict, "pass") == 0));
    json_object_set_new(doc, "skipped", json_boolean(strcmp(res->verdict, "skip") == 0));
    if (res->from_coordinator)
        json_object_set_new(doc, "verdict_by", json_string("coordinator"));
    json_t *timings = json_object_get(doc, "timings");
    if (!json_is_object(timings)) {
        timings = json_object();
        json_object_set_new(doc, "timings", timings);
    }
    json_object_set_new(timings, "queue_ms", json_integer((json_int_t)res->queue_ms));
    if (!res->from_coordinator)
        json_object_set_new(timings, "dispatch_ms", json_integer((json_int_t)res->run_ms));

    if (res->console && res->console_len) {
        char cpath[PATH_MAX + 700];
        snprintf(cpath, sizeof(cpath), "%s/%s.console.log", dir, stem);
        const char *wc = json_string_value(json_object_get(doc, "console_log"));
        if (wc)
            json_object_set_new(doc, "worker_console_log", json_string(wc));
        if (s_write_atomic(cpath, res->console, res->console_len) == 0)
            json_object_set_new(doc, "console_log", json_string(cpath));
        else
            json_object_del(doc, "console_log");
    }
    char path[PATH_MAX];
    e = kt_sidecar_write(dir, stem, doc, path, sizeof(path));
    json_t *total = json_object_get(timings, "total_ms");
    if (!json_is_integer(total))
        total = json_object_get(timings, "run_ms");
    s_rec_t *rec = &r->recs[idx];
    rec->time_ms = json_is_integer(total) ? (uint64_t)json_integer_value(total) : res->run_ms;
    rec->boots = s_boots(doc);
    json_decref(doc);
    if (e < 0)
        return e;
    free(rec->sidecar_path);
    rec->sidecar_path = strdup(path);
    if (ret_path && len)
        snprintf(ret_path, len, "%s", path);
    return 0;
}

int kt_report_load_done(kt_report_t *r, unsigned i, const char *verdict)
{
    if (i >= r->run->n_cells || !kt_verdict_valid(verdict))
        return -EINVAL;
    const kt_coord_cell_t *cell = &r->run->cells[i];
    s_rec_t *rec = &r->recs[i];
    if (!rec->done)
        r->n_done++;
    rec->done = true;
    snprintf(rec->verdict, sizeof(rec->verdict), "%s", verdict);
    char dir[PATH_MAX], stem[600], path[PATH_MAX + 700];
    int e = kt_report_cell_paths(r, cell, dir, sizeof(dir), stem, sizeof(stem));
    if (e < 0)
        return e;
    snprintf(path, sizeof(path), "%s/%s.ktstr.json", dir, stem);
    json_error_t jerr;
    json_t *doc = json_load_file(path, 0, &jerr);
    if (!doc || !json_is_object(doc)) {
        json_decref(doc);
        free(rec->reason);
        rec->reason = strdup("(its sidecar is missing)");
        return -ENOENT;
    }
    const char *w = json_string_value(json_object_get(doc, "worker"));
    snprintf(rec->worker, sizeof(rec->worker), "%s", w ? w : "");
    json_t *a = json_object_get(doc, "attempt");
    rec->attempt = json_is_integer(a) ? (unsigned)json_integer_value(a) : 0;
    const char *why = json_string_value(json_object_get(doc, "reason"));
    free(rec->reason);
    rec->reason = strdup(why ? why : "");
    json_t *t = json_object_get(json_object_get(doc, "timings"), "total_ms");
    if (!json_is_integer(t))
        t = json_object_get(json_object_get(doc, "timings"), "run_ms");
    rec->time_ms = json_is_integer(t) ? (uint64_t)json_integer_value(t) : 0;
    rec->boots = s_boots(doc);
    free(rec->sidecar_path);
    rec->sidecar_path = strdup(path);
    json_decref(doc);
    return 0;
}

/* ---- run.json ---- */

static json_t *s_versions(void)
{
    int zmaj, zmin, zpat, gmaj = 0, gmin = 0, gpat = 0;
    zmq_version(&zmaj, &zmin, &zpat);
    git_libgit2_version(&gmaj, &gmin, &gpat);
    char zmq[32], czmq[32], git[32];
    snprintf(zmq, sizeof(zmq), "%d.%d.%d", zmaj, zmin, zpat);
    snprintf(czmq, sizeof(czmq), "%d.%d.%d", CZMQ_VERSION_MAJOR, CZMQ_VERSION_MINOR,
             CZMQ_VERSION_PATCH);
    snprintf(git, sizeof(git), "%d.%d.%d", gmaj, gmin, gpat);
    return json_pack("{s:s,s:i,s:s,s:s,s:s,s:s,s:s}", "ktstr", KT_VERSION, "protocol",
                     KT_PROTO_VERSION, "libzmq", zmq, "czmq", czmq, "sqlite",
                     sqlite3_libversion(), "libgit2", git, "jansson", JANSSON_VERSION);
}

int kt_report_write_run_json(kt_report_t *r, json_t *inputs, const char *status,
                             const kt_dispatch_summary_t *sum, char **ret_text)
{
    const kt_coord_run_t *run = r->run;
    json_t *doc = json_object();
    json_t *kernels = json_array(), *scheds = json_array(), *cells = json_array();
    if (!doc || !kernels || !scheds || !cells) {
        json_decref(doc);
        json_decref(kernels);
        json_decref(scheds);
        json_decref(cells);
        return -ENOMEM;
    }
    struct utsname un;
    uname(&un);
    json_object_set_new(doc, "run_id", json_string(run->run_id));
    json_object_set_new(doc, "status", json_string(status));
    json_object_set_new(doc, "started", json_string(r->started));
    if (strcmp(status, "running") != 0) {
        char ts[32];
        s_iso_time(time(NULL), ts, sizeof(ts));
        json_object_set_new(doc, "finished", json_string(ts));
    }
    json_object_set_new(doc, "gauntlet", json_string(run->gauntlet_path));
    json_object_set_new(doc, "results_dir", json_string(r->results_dir));
    json_object_set_new(doc, "coordinator",
                        json_pack("{s:s,s:s,s:s,s:i}", "hostname", un.nodename, "kernel",
                                  un.release, "arch", un.machine, "pid", (int)getpid()));
    json_object_set_new(doc, "versions", s_versions());
    if (inputs)
        json_object_set(doc, "inputs", inputs);
    for (unsigned i = 0; i < run->n_kernels; i++) {
        const kt_coord_kernel_t *k = &run->kernels[i];
        json_array_append_new(kernels,
                              json_pack("{s:s,s:s,s:o,s:s,s:s,s:I}", "label", k->label, "version",
                                        k->version, "commit",
                                        k->commit[0] ? json_string(k->commit) : json_null(),
                                        "path", k->path, "sha256", k->sha, "size",
                                        (json_int_t)k->size));
    }
    for (unsigned i = 0; i < run->n_scheds; i++) {
        const kt_coord_sched_t *s = &run->scheds[i];
        json_t *o = json_pack("{s:s,s:o,s:o}", "name", s->name, "path",
                              s->path[0] ? json_string(s->path) : json_null(), "sha256",
                              s->sha[0] ? json_string(s->sha) : json_null());
        /* A kernel's own build of the scheduler (from_kernel): which kernel. */
        if (o && run->sched_map && s->kernel >= 0 && (unsigned)s->kernel < run->n_kernels)
            json_object_set_new(o, "kernel", json_string(run->kernels[s->kernel].label));
        json_array_append_new(scheds, o);
    }
    for (unsigned i = 0; i < run->n_cells; i++) {
        const kt_coord_cell_t *c = &run->cells[i];
        const s_rec_t *rec = &r->recs[i];
        json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:i,s:I,s:i}", "id", c->spec.cell_id,
                              "name", c->spec.cell_name, "kernel", c->spec.kernel_label,
                              "scheduler", c->spec.sched_name, "profile", c->spec.profile,
                              "scenario", c->spec.plan.scenario, "vcpus", (int)c->vcpus,
                              "memory_mib", (json_int_t)c->memory_mib, "est_ms", (int)c->est_ms);
        if (o && rec->done) {
            json_object_set_new(o, "verdict", json_string(rec->verdict));
            json_object_set_new(o, "attempt", json_integer(rec->attempt));
            json_object_set_new(o, "boots", json_integer(rec->boots ? rec->boots : 1));
            json_object_set_new(o, "worker", json_string(rec->worker));
            if (rec->sidecar_path)
                json_object_set_new(o, "sidecar", json_string(rec->sidecar_path));
        }
        json_array_append_new(cells, o);
    }
    json_object_set_new(doc, "kernels", kernels);
    json_object_set_new(doc, "schedulers", scheds);
    json_object_set_new(doc, "n_cells", json_integer(run->n_cells));
    json_object_set_new(doc, "cells", cells);
    json_object_set_new(doc, "workers", r->workers ? json_deep_copy(r->workers) : json_array());
    if (sum) {
        unsigned pass, fail, error, skip, missing;
        kt_report_counts(r, &pass, &fail, &error, &skip, &missing);
        json_object_set_new(
            doc, "summary",
            json_pack("{s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:I,s:i}", "cells", (int)run->n_cells,
                      "pass", (int)pass, "fail", (int)fail, "error", (int)error, "skip",
                      (int)skip, "missing", (int)missing, "requeued", (int)sum->requeued,
                      "stale", (int)sum->stale, "wall_ms", (json_int_t)sum->wall_ms,
                      "exit_status", kt_report_exit_code(r)));
    }
    char *text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(doc);
    if (!text)
        return -ENOMEM;
    char path[PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/run.json", r->run_dir);
    int e = s_write_atomic(path, text, strlen(text));
    if (ret_text)
        *ret_text = text;
    else
        free(text);
    return e;
}

/* ---- summary, JUnit, exit ---- */

void kt_report_counts(const kt_report_t *r, unsigned *pass, unsigned *fail, unsigned *error,
                      unsigned *skip, unsigned *missing)
{
    unsigned p = 0, f = 0, e = 0, s = 0, m = 0;
    for (unsigned i = 0; i < r->run->n_cells; i++) {
        const s_rec_t *rec = &r->recs[i];
        if (!rec->done)
            m++;
        else if (strcmp(rec->verdict, "pass") == 0)
            p++;
        else if (strcmp(rec->verdict, "fail") == 0)
            f++;
        else if (strcmp(rec->verdict, "skip") == 0)
            s++;
        else
            e++;
    }
    *pass = p;
    *fail = f;
    *error = e;
    *skip = s;
    *missing = m;
}

int kt_report_exit_code(const kt_report_t *r)
{
    unsigned p, f, e, s, m;
    kt_report_counts(r, &p, &f, &e, &s, &m);
    if (f)
        return 1;
    if (e || m)
        return 2;
    return 0;
}

typedef struct s_group {
    char key[300];
    unsigned pass, fail, error, skip, missing;
} s_group_t;

void kt_report_summary(kt_report_t *r, const kt_dispatch_summary_t *sum)
{
    const kt_coord_run_t *run = r->run;
    s_clear_line(r);
    r->last_line[0] = '\0';
    FILE *o = r->out;
    fprintf(o, "\nrun %s: %u cell(s)\n", run->run_id, run->n_cells);
    if (run->n_cells <= S_TABLE_ROWS_MAX) {
        size_t wn = 4, ww = 6;
        for (unsigned i = 0; i < run->n_cells; i++) {
            size_t n = strlen(run->cells[i].spec.cell_name);
            wn = n > wn ? n : wn;
            n = strlen(r->recs[i].worker);
            ww = n > ww ? n : ww;
        }
        fprintf(o, "  %-7s %-*s %-*s %7s %7s  %s\n", "VERDICT", (int)wn, "CELL", (int)ww, "WORKER",
                "ATTEMPT", "TIME", "REASON");
        for (unsigned i = 0; i < run->n_cells; i++) {
            const s_rec_t *rec = &r->recs[i];
            char t[16] = "-", why[S_REASON_SHOWN + 4] = "";
            if (rec->done)
                s_duration(rec->time_ms, t, sizeof(t));
            if (rec->done && strcmp(rec->verdict, "pass") != 0)
                s_short_reason(rec->reason, why, sizeof(why));
            char att[16] = "-";
            if (rec->done)
                snprintf(att, sizeof(att), "%u", rec->attempt);
            fprintf(o, "  %-7s %-*s %-*s %7s %7s  %s\n", rec->done ? rec->verdict : "-",
                    (int)wn, run->cells[i].spec.cell_name, (int)ww,
                    rec->worker[0] ? rec->worker : "-", att, t,
                    rec->done ? why : "no verdict (not run to the end)");
        }
    } else {
        /* By scheduler profile and kernel, then the cells that did not pass. */
        s_group_t *g = calloc(run->n_cells, sizeof(*g));
        unsigned ng = 0;
        for (unsigned i = 0; g && i < run->n_cells; i++) {
            const kt_cellspec_t *sp = &run->cells[i].spec;
            char key[300];
            snprintf(key, sizeof(key), "%s %s %s", sp->sched_name,
                     sp->profile[0] ? sp->profile : "default", sp->kernel_label);
            unsigned k = 0;
            while (k < ng && strcmp(g[k].key, key) != 0)
                k++;
            if (k == ng)
                snprintf(g[ng++].key, sizeof(g[0].key), "%s", key);
            const s_rec_t *rec = &r->recs[i];
            if (!rec->done)
                g[k].missing++;
            else if (!strcmp(rec->verdict, "pass"))
                g[k].pass++;
            else if (!strcmp(rec->verdict, "fail"))
                g[k].fail++;
            else if (!strcmp(rec->verdict, "skip"))
                g[k].skip++;
            else
                g[k].error++;
        }
        size_t wk = 30;
        for (unsigned k = 0; k < ng; k++)
            wk = strlen(g[k].key) > wk ? strlen(g[k].key) : wk;
        fprintf(o, "  %-*s %6s %6s %6s %6s %8s\n", (int)wk, "SCHEDULER PROFILE KERNEL", "PASS",
                "FAIL", "ERROR", "SKIP", "NO-RUN");
        for (unsigned k = 0; k < ng; k++)
            fprintf(o, "  %-*s %6u %6u %6u %6u %8u\n", (int)wk, g[k].key, g[k].pass, g[k].fail,
                    g[k].error, g[k].skip, g[k].missing);
        free(g);
        unsigned listed = 0;
        for (unsigned i = 0; i < run->n_cells; i++) {
            const s_rec_t *rec = &r->recs[i];
            if (rec->done && !strcmp(rec->verdict, "pass"))
                continue;
            if (listed++ == S_LIST_FAILED_MAX) {
                fprintf(o, "  ... (see run.json and the sidecars for the rest)\n");
                break;
            }
            char why[S_REASON_SHOWN + 4] = "";
            s_short_reason(rec->done ? rec->reason : "no verdict", why, sizeof(why));
            fprintf(o, "  %-5s %s: %s\n", rec->done ? rec->verdict : "-",
                    run->cells[i].spec.cell_name, why);
        }
    }
    unsigned p, f, e, s, m;
    kt_report_counts(r, &p, &f, &e, &s, &m);
    char wall[16];
    s_duration(sum ? sum->wall_ms : 0, wall, sizeof(wall));
    fprintf(o, "total: %u pass, %u fail, %u error, %u skip", p, f, e, s);
    if (m)
        fprintf(o, ", %u without a verdict", m);
    if (sum)
        fprintf(o, "; this invocation: %u cell(s) in %s, %u requeued, %u stale result(s)",
                sum->done, wall, sum->requeued, sum->stale);
    fprintf(o, "\n");
    unsigned rebooted = 0;
    for (unsigned i = 0; i < run->n_cells; i++)
        rebooted += r->recs[i].done && r->recs[i].boots > 1;
    if (rebooted)
        fprintf(o, "booted again: %u cell(s) whose VM did not reach ktstr-init at first "
                   "(boot_retries in their sidecars)\n",
                rebooted);
    fprintf(o, "results: %s\n", r->run_dir);
    fflush(o);
}

char *kt_report_xml_escape(const char *s)
{
    if (!s)
        s = "";
    size_t n = strlen(s);
    char *out = malloc(n * 6 + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned char c = *p;
        if (c < 0x80) {
            switch (c) {
            case '&': memcpy(out + o, "&amp;", 5); o += 5; break;
            case '<': memcpy(out + o, "&lt;", 4); o += 4; break;
            case '>': memcpy(out + o, "&gt;", 4); o += 4; break;
            case '"': memcpy(out + o, "&quot;", 6); o += 6; break;
            case '\'': memcpy(out + o, "&apos;", 6); o += 6; break;
            case '\n': memcpy(out + o, "&#10;", 5); o += 5; break;
            case '\t': memcpy(out + o, "&#9;", 4); o += 4; break;
            default: out[o++] = c < 0x20 || c == 0x7f ? '?' : (char)c;
            }
            p++;
            continue;
        }
        /* A well-formed UTF-8 sequence passes; anything else becomes '?'. */
        unsigned len = c >= 0xf0 && c <= 0xf4 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 && c < 0xe0 ? 2 : 0;
        bool ok = len > 0;
        for (unsigned k = 1; ok && k < len; k++)
            ok = (p[k] & 0xc0) == 0x80;
        if (ok && len == 3 && c == 0xe0 && p[1] < 0xa0)
            ok = false; /* overlong */
        if (ok && len == 3 && c == 0xed && p[1] >= 0xa0)
            ok = false; /* surrogate */
        if (ok && len == 4 && ((c == 0xf0 && p[1] < 0x90) || (c == 0xf4 && p[1] >= 0x90)))
            ok = false;
        if (ok && len == 3 && c == 0xef && p[1] == 0xbf && (p[2] == 0xbe || p[2] == 0xbf))
            ok = false; /* U+FFFE, U+FFFF are not XML characters */
        if (!ok) {
            out[o++] = '?';
            p++;
            continue;
        }
        memcpy(out + o, p, len);
        o += len;
        p += len;
    }
    out[o] = '\0';
    return out;
}

/* Closes an open_memstream (which sets *buf and *len only then) and writes
 * what it holds to path atomically. */
static int s_memstream_commit(FILE *f, char **buf, size_t *len, const char *path)
{
    int rc = fclose(f) != 0 ? -EIO : s_write_atomic(path, *buf, *len);
    free(*buf);
    *buf = NULL;
    return rc;
}

int kt_report_junit(kt_report_t *r, const char *path)
{
    const kt_coord_run_t *run = r->run;
    char *buf = NULL;
    size_t blen = 0;
    FILE *f = open_memstream(&buf, &blen);
    if (!f)
        return -ENOMEM;
    unsigned p, fl, e, s, m;
    kt_report_counts(r, &p, &fl, &e, &s, &m);
    double total_s = 0;
    for (unsigned i = 0; i < run->n_cells; i++)
        total_s += (double)r->recs[i].time_ms / 1000.0;
    _cleanup_free_ char *rid = kt_report_xml_escape(run->run_id);
    char ts[32];
    s_iso_time(r->t0, ts, sizeof(ts));
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    fprintf(f, "<testsuites name=\"ktstr\" tests=\"%u\" failures=\"%u\" errors=\"%u\" "
               "skipped=\"%u\" time=\"%.3f\">\n",
            run->n_cells, fl, e + m, s, total_s);
    fprintf(f, "  <testsuite name=\"ktstr.%s\" tests=\"%u\" failures=\"%u\" errors=\"%u\" "
               "skipped=\"%u\" time=\"%.3f\" timestamp=\"%s\">\n",
            rid ? rid : "", run->n_cells, fl, e + m, s, total_s, ts);
    for (unsigned i = 0; i < run->n_cells; i++) {
        const kt_cellspec_t *sp = &run->cells[i].spec;
        const s_rec_t *rec = &r->recs[i];
        char cls[200];
        snprintf(cls, sizeof(cls), "gauntlet.%s.%s", sp->plan.scenario,
                 sp->topology_preset[0] ? sp->topology_preset : "custom");
        _cleanup_free_ char *name = kt_report_xml_escape(sp->cell_name);
        _cleanup_free_ char *cname = kt_report_xml_escape(cls);
        _cleanup_free_ char *why = kt_report_xml_escape(
            rec->done ? rec->reason : "no verdict: the run ended before this cell did (resume "
                                      "it with --resume)");
        _cleanup_free_ char *side = kt_report_xml_escape(rec->sidecar_path ? rec->sidecar_path
                                                                           : "");
        _cleanup_free_ char *worker = kt_report_xml_escape(rec->worker);
        if (!name || !cname || !why || !side || !worker) {
            fclose(f);
            free(buf);
            return -ENOMEM;
        }
        fprintf(f, "    <testcase classname=\"%s\" name=\"%s\" time=\"%.3f\">\n", cname, name,
                (double)rec->time_ms / 1000.0);
        if (!rec->done)
            fprintf(f, "      <error type=\"no-verdict\" message=\"%s\"/>\n", why);
        else if (!strcmp(rec->verdict, "fail"))
            fprintf(f, "      <failure type=\"fail\" message=\"%s\">%s</failure>\n", why, why);
        else if (!strcmp(rec->verdict, "error"))
            fprintf(f, "      <error type=\"error\" message=\"%s\">%s</error>\n", why, why);
        else if (!strcmp(rec->verdict, "skip"))
            fprintf(f, "      <skipped message=\"%s\"/>\n", why);
        if (rec->done)
            fprintf(f, "      <system-out>sidecar: %s&#10;worker: %s&#10;attempt: %u</system-out>\n",
                    side, worker, rec->attempt);
        fprintf(f, "    </testcase>\n");
    }
    fprintf(f, "  </testsuite>\n</testsuites>\n");
    return s_memstream_commit(f, &buf, &blen, path);
}

/* ---- HTML ---- */

/* The parts of gauntlet/{scenario}/{topology}/{profile}/{kernel}[/r{k}]:
 * the row (scenario/topology) and the column (profile/kernel[/r{k}]). */
static void s_grid_keys(const char *name, char *row, size_t row_len, char *col, size_t col_len)
{
    const char *p = strncmp(name, "gauntlet/", 9) == 0 ? name + 9 : name;
    const char *s1 = strchr(p, '/');
    const char *s2 = s1 ? strchr(s1 + 1, '/') : NULL;
    if (!s2) {
        snprintf(row, row_len, "%s", p);
        snprintf(col, col_len, "-");
        return;
    }
    snprintf(row, row_len, "%.*s", (int)(s2 - p), p);
    snprintf(col, col_len, "%s", s2 + 1);
}

static int s_key_index(char (*keys)[256], unsigned *n, const char *key)
{
    for (unsigned i = 0; i < *n; i++)
        if (strcmp(keys[i], key) == 0)
            return (int)i;
    snprintf(keys[*n], 256, "%s", key);
    return (int)(*n)++;
}

/* The sidecar's path from the run folder (its links stay valid when the
 * folder moves); the console log beside it. */
static const char *s_rel(const kt_report_t *r, const char *path)
{
    size_t n = strlen(r->run_dir);
    if (path && strncmp(path, r->run_dir, n) == 0 && path[n] == '/')
        return path + n + 1;
    return path ? path : "";
}

static void s_console_of(const char *sidecar, char *buf, size_t len)
{
    size_t n = strlen(sidecar), sl = strlen(".ktstr.json");
    if (n > sl && strcmp(sidecar + n - sl, ".ktstr.json") == 0)
        snprintf(buf, len, "%.*s.console.log", (int)(n - sl), sidecar);
    else
        buf[0] = '\0';
}

int kt_report_html(kt_report_t *r, const char *path)
{
    const kt_coord_run_t *run = r->run;
    unsigned n = run->n_cells;
    char (*rows)[256] = calloc(n + 1, sizeof(*rows));
    char (*cols)[256] = calloc(n + 1, sizeof(*cols));
    int *at = calloc((size_t)n * 2 + 1, sizeof(*at));
    char *buf = NULL;
    size_t blen = 0;
    FILE *f = rows && cols && at ? open_memstream(&buf, &blen) : NULL;
    if (!f) {
        free(rows);
        free(cols);
        free(at);
        return -ENOMEM;
    }
    unsigned n_rows = 0, n_cols = 0;
    for (unsigned i = 0; i < n; i++) {
        char row[256], col[256];
        s_grid_keys(run->cells[i].spec.cell_name, row, sizeof(row), col, sizeof(col));
        at[2 * i] = s_key_index(rows, &n_rows, row);
        at[2 * i + 1] = s_key_index(cols, &n_cols, col);
    }
    unsigned p, fl, e, sk, m;
    kt_report_counts(r, &p, &fl, &e, &sk, &m);
    _cleanup_free_ char *rid = kt_report_xml_escape(run->run_id);
    _cleanup_free_ char *gp = kt_report_xml_escape(run->gauntlet_path);
    fprintf(f, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">\n"
               "<title>ktstr run %s</title>\n<style>\n"
               "body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}\n"
               "td,th{border:1px solid #ccc;padding:.2em .5em;font-size:90%%;text-align:left;"
               "vertical-align:top}\n"
               "th.col{writing-mode:vertical-rl;transform:rotate(180deg);white-space:nowrap}\n"
               "a.v{display:block;text-align:center;text-decoration:none;color:#000;"
               "font-weight:bold}\n"
               ".pass{background:#b7e4b0}.fail{background:#f4a6a0}.error{background:#f7d27c}"
               ".skip{background:#ddd}.none{background:#fff}\n"
               "</style></head><body>\n",
            rid ? rid : "");
    fprintf(f, "<h1>ktstr run %s</h1>\n<p>gauntlet %s, started %s; %u cells: "
               "<span class=\"pass\">%u pass</span>, <span class=\"fail\">%u fail</span>, "
               "<span class=\"error\">%u error</span>, <span class=\"skip\">%u skip</span>, "
               "%u without a verdict. <a href=\"run.json\">run.json</a></p>\n",
            rid ? rid : "", gp ? gp : "", r->started, n, p, fl, e, sk, m);
    /* The grid: one square per cell, found through an index. */
    size_t squares = (size_t)n_rows * n_cols;
    int *sq = squares <= 1000000 ? malloc((squares + 1) * sizeof(*sq)) : NULL;
    for (size_t k = 0; sq && k < squares; k++)
        sq[k] = -1;
    for (unsigned i = 0; sq && i < n; i++)
        sq[(size_t)at[2 * i] * n_cols + (size_t)at[2 * i + 1]] = (int)i;
    if (!sq)
        fprintf(f, "<p>(%u x %u verdicts: too many to draw as a grid)</p>\n", n_rows, n_cols);
    else
        fprintf(f, "<h2>Verdicts</h2>\n<table>\n<tr><th>scenario/topology</th>");
    for (unsigned c = 0; sq && c < n_cols; c++) {
        _cleanup_free_ char *t = kt_report_xml_escape(cols[c]);
        fprintf(f, "<th class=\"col\">%s</th>", t ? t : "");
    }
    if (sq)
        fprintf(f, "</tr>\n");
    for (unsigned rw = 0; sq && rw < n_rows; rw++) {
        _cleanup_free_ char *t = kt_report_xml_escape(rows[rw]);
        fprintf(f, "<tr><th>%s</th>", t ? t : "");
        for (unsigned c = 0; c < n_cols; c++) {
            int ix = sq[(size_t)rw * n_cols + c];
            if (ix < 0) {
                fprintf(f, "<td></td>");
                continue;
            }
            unsigned i = (unsigned)ix;
            const s_rec_t *rec = &r->recs[i];
            const char *v = rec->done ? rec->verdict : "none";
            _cleanup_free_ char *why = kt_report_xml_escape(rec->done ? rec->reason : "no verdict");
            _cleanup_free_ char *name = kt_report_xml_escape(run->cells[i].spec.cell_name);
            _cleanup_free_ char *href = kt_report_xml_escape(s_rel(r, rec->sidecar_path));
            fprintf(f, "<td class=\"%s\"><a class=\"v\" href=\"%s\" title=\"%s: %s\">%c</a></td>",
                    v, href ? href : "", name ? name : "", why ? why : "",
                    rec->done ? (char)(v[0] - 'a' + 'A') : '-');
        }
        fprintf(f, "</tr>\n");
    }
    if (sq)
        fprintf(f, "</table>\n");
    free(sq);
    /* What did not pass. */
    fprintf(f, "<h2>Cells that did not pass</h2>\n<table>\n<tr><th>cell</th><th>verdict</th>"
               "<th>worker</th><th>attempt</th><th>time</th><th>reason</th><th>files</th></tr>\n");
    unsigned shown = 0;
    for (unsigned i = 0; i < n; i++) {
        const s_rec_t *rec = &r->recs[i];
        if (rec->done && strcmp(rec->verdict, "pass") == 0)
            continue;
        shown++;
        const char *v = rec->done ? rec->verdict : "none";
        char console[PATH_MAX + 16] = "";
        if (rec->sidecar_path)
            s_console_of(s_rel(r, rec->sidecar_path), console, sizeof(console));
        _cleanup_free_ char *name = kt_report_xml_escape(run->cells[i].spec.cell_name);
        _cleanup_free_ char *why = kt_report_xml_escape(
            rec->done ? rec->reason : "no verdict: the run ended before this cell did");
        _cleanup_free_ char *worker = kt_report_xml_escape(rec->worker);
        _cleanup_free_ char *side = kt_report_xml_escape(s_rel(r, rec->sidecar_path));
        _cleanup_free_ char *cons = kt_report_xml_escape(console);
        fprintf(f, "<tr><td>%s</td><td class=\"%s\">%s</td><td>%s</td><td>%u</td>"
                   "<td>%.1f s</td><td>%s</td><td>",
                name ? name : "", v, v, worker ? worker : "", rec->attempt,
                (double)rec->time_ms / 1000.0, why ? why : "");
        if (side && *side)
            fprintf(f, "<a href=\"%s\">sidecar</a>", side);
        if (cons && *cons)
            fprintf(f, " <a href=\"%s\">console</a>", cons);
        fprintf(f, "</td></tr>\n");
    }
    if (!shown)
        fprintf(f, "<tr><td colspan=\"7\">every cell passed</td></tr>\n");
    fprintf(f, "</table>\n</body></html>\n");
    free(rows);
    free(cols);
    free(at);
    return s_memstream_commit(f, &buf, &blen, path);
}
