/* A prepared run, dispatched and reported (see kt_runexec.h). */
#include "kt_runexec.h"

#include <czmq.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kt_cleanup.h"
#include "kt_cli.h"
#include "kt_dispatch.h"
#include "kt_executor.h"
#include "kt_kvm.h"
#include "kt_log.h"
#include "kt_serve.h"

/* ---- dispatcher events -> report ---- */

#define S_RUN_JSON_EVERY_MS 30000

typedef struct s_events {
    kt_report_t *report;
    json_t *inputs;
    int64_t run_json_at;    /* run.json rewritten now and then, for readers mid-run */
} s_events_t;

static void s_ev_cell_done(void *ud, const kt_coord_cell_t *cell, unsigned attempt,
                           const char *worker, const char *verdict, const char *reason,
                           const char *sidecar_json, size_t sidecar_len, const char *console,
                           size_t console_len)
{
    s_events_t *ev = ud;
    kt_report_cell_done(ev->report, cell, attempt, worker, verdict, reason);
}

__attribute__((format(printf, 2, 3))) static void s_ev_note(void *ud, const char *fmt, ...)
{
    s_events_t *ev = ud;
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    kt_report_note(ev->report, buf);
}

static int s_ev_write(void *ud, const kt_dispatch_result_t *r, char *ret_path, size_t len)
{
    s_events_t *ev = ud;
    return kt_report_write_result(ev->report, r, ret_path, len);
}

static void s_ev_status(void *ud, const kt_dispatch_status_t *st)
{
    s_events_t *ev = ud;
    kt_report_status(ev->report, st);
    int64_t now = zclock_mono();
    if (now - ev->run_json_at >= S_RUN_JSON_EVERY_MS) {
        ev->run_json_at = now;
        if (kt_report_write_run_json(ev->report, ev->inputs, "running", NULL, NULL) < 0)
            kt_log_debug("run: run.json not refreshed, ignoring");
    }
}

/* ---- the embedded worker ---- */

/* auto: KVM only when the device works and a canary boot of the run's first
 * kernel reaches ktstr-init under it (as `ktstr-worker check` decides). */
static int s_resolve_accel(const char *want, const char *kernel, enum kt_accel *ret,
                           uint32_t *ret_canary_ms, char *why, size_t why_len)
{
    *ret_canary_ms = 0;
    if (strcmp(want, "tcg") == 0) {
        *ret = KT_ACCEL_TCG;
        snprintf(why, why_len, "tcg requested");
        return 0;
    }
    if (strcmp(want, "kvm") != 0 && strcmp(want, "auto") != 0) {
        snprintf(why, why_len, "--accel '%s': expected auto, kvm or tcg", want);
        return -EINVAL;
    }
    enum kt_accel requested = strcmp(want, "kvm") == 0 ? KT_ACCEL_KVM : KT_ACCEL_AUTO;
    kt_kvm_status_t st;
    int r = kt_accel_choose(requested, kernel, NULL, true, ret, &st);
    if (r < 0) {
        snprintf(why, why_len, "--accel kvm, but KVM is unusable: %s", st.reason);
        return r;
    }
    if (*ret == KT_ACCEL_KVM)
        *ret_canary_ms = (uint32_t)st.canary_ms;
    snprintf(why, why_len, "%s%s", *ret == KT_ACCEL_TCG && requested == KT_ACCEL_AUTO
                                        ? "KVM not usable, TCG: "
                                        : "",
             st.reason);
    return 0;
}

typedef struct s_local {
    char dir[96];           /* an ipc:// path must fit a sockaddr_un */
    char endpoint[128];
    char work_dir[PATH_MAX];
    kt_vm_executor_config_t vmcfg;
    char accel_reason[400];
    kt_serve_config_t cfg;
    kt_host_t host;
} s_local_t;

/* The embedded worker keeps each cell's own output (full console log, QEMU
 * log, its sidecar) under {run_dir}/worker-local/; its socket lives in a
 * private directory of its own. */
static int s_local_start(const kt_runexec_opts_t *o, const kt_coord_run_t *run,
                         const char *run_dir, s_local_t *l, zactor_t **ret_actor)
{
    const char *verb = o->verb ? o->verb : "run";
    const char *tmp = getenv("TMPDIR");
    if (!tmp || !*tmp || strlen(tmp) > 60)
        tmp = "/tmp";
    snprintf(l->dir, sizeof(l->dir), "%s/ktstr-coord-XXXXXX", tmp);
    if (!mkdtemp(l->dir))
        return kt_log_error_errno(-errno, "%s: cannot make a private directory in '%s': %m",
                                  verb, tmp);
    snprintf(l->endpoint, sizeof(l->endpoint), "ipc://%s/worker.ipc", l->dir);
    if (snprintf(l->work_dir, sizeof(l->work_dir), "%s/worker-local", run_dir) >=
        (int)sizeof(l->work_dir))
        return kt_log_error_errno(-ENAMETOOLONG, "%s: '%s' is too long a path", verb, run_dir);

    unsigned largest = 1;
    for (unsigned i = 0; i < run->n_cells; i++)
        if (run->cells[i].vcpus > largest)
            largest = run->cells[i].vcpus;
    kt_host_info_t hi = {0};
    kt_host_info_read(&hi);
    /* VM cells are CPU-bound; under TCG two vCPUs already saturate a core,
     * so by default this machine runs about one VM at a time: as many vCPUs
     * as it has CPUs, but never less than the largest cell. */
    unsigned vcpus = o->local_vcpus ? o->local_vcpus : (hi.cpus > largest ? hi.cpus : largest);

    const char *ex = o->executor ? o->executor : "vm";
    memset(&l->cfg, 0, sizeof(l->cfg));
    if (strcmp(ex, "vm") == 0) {
        if (!run->n_kernels) {
            kt_log_error("%s: no kernel to run", verb);
            return -EINVAL;
        }
        char why[400];
        enum kt_accel accel;
        uint32_t canary_ms = 0;
        int r = s_resolve_accel(o->accel ? o->accel : "auto", run->kernels[0].path, &accel,
                                &canary_ms, why, sizeof(why));
        if (r < 0) {
            kt_log_error("%s: %s", verb, why);
            return r;
        }
        kt_log_info("embedded worker: accel=%s (%s)", kt_accel_name(accel), why);
        l->vmcfg.accel = accel;
        snprintf(l->accel_reason, sizeof(l->accel_reason), "%s", why);
        l->vmcfg.accel_reason = l->accel_reason;
        l->vmcfg.work_dir = l->work_dir;
        l->vmcfg.image_dir = NULL;
        l->cfg.executor = kt_executor_vm(&l->vmcfg);
        l->cfg.accel_name = kt_accel_name(accel);
        l->cfg.canary_ms = canary_ms;
    } else if (strcmp(ex, "null") == 0) {
        l->cfg.executor = kt_executor_null();
        l->cfg.accel_name = "tcg";
    } else if (strncmp(ex, "sleep:", 6) == 0) {
        uint64_t ms;
        if (kt_cli_parse_u64(ex + 6, 0, 3600 * 1000, &ms) < 0) {
            kt_log_error("%s: --executor '%s': sleep:MS takes milliseconds (0..3600000)", verb,
                         ex);
            return -EINVAL;
        }
        l->cfg.executor = kt_executor_sleep((uint32_t)ms);
        l->cfg.accel_name = "tcg";
    } else {
        kt_log_error("%s: --executor '%s': expected vm, null or sleep:MS", verb, ex);
        return -EINVAL;
    }
    l->cfg.bind = l->endpoint;
    l->cfg.worker_id = "local";
    l->cfg.capacity_vcpus = vcpus;
    l->cfg.capacity_memory_mib = o->local_memory_mib;
    l->cfg.heartbeat_ms = o->heartbeat_ms;
    l->cfg.lost_after_ms = o->lost_after_ms;
    zactor_t *actor = kt_serve_actor_new(&l->cfg);
    if (!actor)
        return kt_log_error_errno(-EIO, "%s: the embedded worker did not start (see above)",
                                  verb);
    memset(&l->host, 0, sizeof(l->host));
    snprintf(l->host.host, sizeof(l->host.host), "localhost");
    snprintf(l->host.endpoint, sizeof(l->host.endpoint), "%s", l->endpoint);
    snprintf(l->host.name, sizeof(l->host.name), "local");
    *ret_actor = actor;
    return 0;
}

static void s_local_cleanup(s_local_t *l)
{
    if (!l->dir[0])
        return;
    char sock[128];
    snprintf(sock, sizeof(sock), "%s/worker.ipc", l->dir);
    unlink(sock);
    if (rmdir(l->dir) < 0 && errno != ENOENT)
        kt_log_debug("run: '%s' left behind: %m", l->dir);
}

static void s_actor_destroyp(zactor_t **a)
{
    zactor_destroy(a);
}

int kt_runexec(const kt_runexec_opts_t *o, kt_coord_run_t *run, kt_store_t *store,
               kt_report_t *report, json_t *inputs, const bool *todo, unsigned n_todo,
               const char **ret_status)
{
    const char *verb = o->verb ? o->verb : "run";
    s_local_t local = {0};
    _cleanup_(s_actor_destroyp) zactor_t *actor = NULL;
    if (!o->n_hosts && n_todo) {
        int r = s_local_start(o, run, kt_report_run_dir(report), &local, &actor);
        if (r < 0) {
            s_local_cleanup(&local);
            kt_store_run_end(store, run->run_id, "failed");
            if (ret_status)
                *ret_status = "failed";
            return 2;
        }
    }

    s_events_t events = {.report = report, .inputs = inputs, .run_json_at = zclock_mono()};
    kt_dispatch_config_t dc = {
        .hosts = o->n_hosts ? o->hosts : &local.host,
        .n_hosts = o->n_hosts ? o->n_hosts : 1,
        .curve_secret = o->n_hosts ? o->curve_secret : NULL,
        .heartbeat_ms = o->heartbeat_ms,
        .lost_after_ms = o->lost_after_ms,
        .max_attempts = o->max_attempts ? o->max_attempts : 3,
        .store = store,
        .events = {.cell_done = s_ev_cell_done,
                   .note = s_ev_note,
                   .userdata = &events,
                   .write_result = s_ev_write,
                   .status = s_ev_status},
    };
    kt_dispatch_summary_t sum = {0};
    const char *status = "done";
    if (n_todo) {
        int r = kt_dispatch_run(&dc, run, todo, &sum);
        if (r == -EINTR) {
            status = "interrupted";
            kt_report_note(report, "interrupted");
        } else if (r < 0) {
            status = "failed";
            fprintf(stderr, "ktstr-coord %s: nothing could run: %s\n", verb,
                    sum.why[0] ? sum.why : strerror(-r));
        }
    }
    zactor_destroy(&actor);
    s_local_cleanup(&local);

    if (kt_report_write_run_json(report, inputs, status, &sum, NULL) < 0)
        kt_log_warn("%s: cannot write run.json in '%s'", verb, kt_report_run_dir(report));
    kt_report_summary(report, &sum);
    if (o->junit) {
        int jr = kt_report_junit(report, o->junit);
        if (jr < 0)
            fprintf(stderr, "ktstr-coord %s: cannot write --junit '%s': %s\n", verb, o->junit,
                    strerror(-jr));
    }
    char html[PATH_MAX + 16];
    snprintf(html, sizeof(html), "%s/report.html", kt_report_run_dir(report));
    int hr = kt_report_html(report, html);
    if (hr < 0)
        kt_log_warn("%s: cannot write '%s': %s", verb, html, strerror(-hr));
    kt_store_run_end(store, run->run_id, status);
    if (ret_status)
        *ret_status = status;
    return kt_report_exit_code(report);
}
