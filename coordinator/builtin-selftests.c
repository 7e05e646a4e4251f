/* ktstr-coord selftests: the kernel's sched_ext selftests, one cell per
 * test. Lists the runner's tests on this host (running none), makes a
 * payload cell of each selected test (`runner -t NAME`, judged by NAME's
 * TAP line: ok pass, not ok fail, # SKIP skip, none error; killed at the
 * timeout: error), and runs them like `ktstr-coord run` does: through the
 * workers of --workers or an embedded worker, with sidecars, the run store,
 * run.json, the summary and JUnit. Exit status 0 every test passed or was
 * skipped, 1 one failed, 2 an error. */
#include <czmq.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "builtins.h"
#include "kt_cleanup.h"
#include "kt_mpjson.h"
#include "kt_coord.h"
#include "kt_hosts.h"
#include "kt_log.h"
#include "kt_report.h"
#include "kt_runexec.h"
#include "kt_runopts.h"
#include "kt_selftests.h"
#include "kt_store.h"

#define S_MAX_SELECT 64

static void s_usage(FILE *f)
{
    fprintf(f,
            "usage: ktstr-coord selftests --runner PATH --kernel PATH [--workers FILE|LIST]\n"
            "           [--results DIR] [--filter SUBSTR]... [--test NAME]... [--timeout SECS]\n"
            "           [--topology PRESET|N,L,C,T] [--junit FILE] [--list]\n"
            "           [--curve-secret FILE] [--heartbeat MS] [--lost-after MS]\n"
            "           [--max-attempts N] [--accel auto|kvm|tcg] [--local-vcpus N]\n"
            "           [--local-memory MIB] [--progress auto|tty|plain|quiet] [-v]\n"
            "Runs the kernel's sched_ext selftests (tools/testing/selftests/sched_ext\n"
            "`runner`, a static binary) one cell per test: the runner lists its tests on\n"
            "this host (running none), then each test runs in its own VM as\n"
            "`runner -t NAME` and is judged by its TAP line (ok: pass, not ok: fail,\n"
            "# SKIP: skip, no line: error); the runner's exit status is not trusted.\n"
            "  --kernel PATH       a bzImage, or a kernel build or source directory\n"
            "  --filter SUBSTR     tests whose name contains SUBSTR (repeatable)\n"
            "  --test NAME         this test (repeatable); without --filter/--test: all\n"
            "  --timeout SECS      per test, default 120; then it is killed: error\n"
            "  --topology          default tiny-1llc\n"
            "  --list              print the tests (name, description) and exit\n"
            "The other options are ktstr-coord run's. Note: the runner's -t matches by\n"
            "substring, so a test whose name is inside another's runs both in one VM;\n"
            "only NAME's line judges the cell.\n"
            "Exit status: 0 all passed or skipped, 1 a test failed, 2 an error.\n");
}

int builtin_selftests(int argc, char **argv)
{
    /* In this order: getopt names the candidates of an ambiguous prefix in
     * it. The letters of the shared options are kt_runopts'. */
    static const struct option opts[] = {
        {"runner", required_argument, NULL, 'R'},
        {"kernel", required_argument, NULL, 'k'},
        {"workers", required_argument, NULL, 'w'},
        {"results", required_argument, NULL, 'r'},
        {"filter", required_argument, NULL, 'f'},
        {"test", required_argument, NULL, 't'},
        {"timeout", required_argument, NULL, 'T'},
        {"topology", required_argument, NULL, 'o'},
        {"junit", required_argument, NULL, 'j'},
        {"list", no_argument, NULL, 'l'},
        {"curve-secret", required_argument, NULL, 'c'},
        {"heartbeat", required_argument, NULL, 'H'},
        {"lost-after", required_argument, NULL, 'L'},
        {"max-attempts", required_argument, NULL, 'M'},
        {"accel", required_argument, NULL, 'a'},
        {"local-vcpus", required_argument, NULL, 'V'},
        {"local-memory", required_argument, NULL, 'm'},
        {"progress", required_argument, NULL, 'p'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    const char *runner = NULL, *kernel = NULL, *topology = "tiny-1llc";
    const char *filters[S_MAX_SELECT], *names[S_MAX_SELECT];
    unsigned n_filters = 0, n_names = 0;
    bool list_only = false;
    kt_runopts_t o;
    kt_runopts_init(&o, "selftests", s_usage);
    uint32_t timeout_ms = KT_SELFTESTS_DEFAULT_TIMEOUT_MS;
    int c, r, exit_code;
    optind = 1;
    while ((c = kt_runopts_getopt(&o, argc, argv, "vh", opts, &exit_code)) > 0) {
        switch (c) {
        case 'R': runner = optarg; break;
        case 'k': kernel = optarg; break;
        case 'o': topology = optarg; break;
        case 'l': list_only = true; break;
        case 'f':
        case 't':
            if ((c == 'f' ? n_filters : n_names) >= S_MAX_SELECT) {
                fprintf(stderr, "ktstr-coord selftests: more than %d --%s\n", S_MAX_SELECT,
                        c == 'f' ? "filter" : "test");
                return 2;
            }
            if (!*optarg) {
                fprintf(stderr, "ktstr-coord selftests: --%s: empty\n",
                        c == 'f' ? "filter" : "test");
                return 2;
            }
            if (c == 'f')
                filters[n_filters++] = optarg;
            else
                names[n_names++] = optarg;
            break;
        case 'T': {
            char *end;
            double secs = strtod(optarg, &end);
            if (*end || end == optarg || !(secs >= 1) || secs > KT_PAYLOAD_TIMEOUT_MAX_MS / 1000) {
                fprintf(stderr, "ktstr-coord selftests: --timeout '%s': expected seconds in "
                                "[1, %u]\n", optarg, KT_PAYLOAD_TIMEOUT_MAX_MS / 1000);
                return 2;
            }
            timeout_ms = (uint32_t)(secs * 1000);
            break;
        }
        }
    }
    if (c == KT_RUNOPTS_EXIT)
        return exit_code;
    if (!runner || (!kernel && !list_only)) {
        fprintf(stderr, "ktstr-coord selftests: --runner PATH and --kernel PATH are required\n");
        s_usage(stderr);
        return 2;
    }
    enum kt_report_progress progress;
    char err[PATH_MAX + 1024] = "";
    if (kt_runopts_progress(&o, &progress, err, sizeof(err)) < 0) {
        fprintf(stderr, "ktstr-coord selftests: %s\n", err);
        return 2;
    }

    /* The tests, from the runner itself. */
    _cleanup_free_ kt_selftest_t *all = NULL;
    unsigned n_all = 0;
    r = kt_selftests_list(runner, &all, &n_all, err, sizeof(err));
    if (r < 0) {
        fprintf(stderr, "ktstr-coord selftests: %s\n", err);
        return 2;
    }
    for (unsigned i = 0; i < n_names; i++) {
        bool found = false;
        for (unsigned k = 0; k < n_all && !found; k++)
            found = strcmp(all[k].name, names[i]) == 0;
        if (!found) {
            fprintf(stderr, "ktstr-coord selftests: --test '%s': the runner has no such test "
                            "(--list shows them)\n", names[i]);
            return 2;
        }
    }
    _cleanup_free_ kt_selftest_t *sel = calloc(n_all, sizeof(*sel));
    if (!sel)
        return 2;
    unsigned n_sel = 0;
    for (unsigned i = 0; i < n_all; i++)
        if (kt_selftests_selected(all[i].name, filters, n_filters, names, n_names))
            sel[n_sel++] = all[i];
    if (list_only) {
        for (unsigned i = 0; i < n_sel; i++)
            printf("%-32s %s\n", sel[i].name, sel[i].description);
        return 0;
    }
    if (!n_sel) {
        fprintf(stderr, "ktstr-coord selftests: no test of the runner's %u matches the "
                        "filters\n", n_all);
        return 2;
    }

    kt_selftests_config_t cfg = {.runner = runner, .kernel = kernel, .timeout_ms = timeout_ms};
    if (kt_topology_parse(topology, &cfg.topology) < 0) {
        fprintf(stderr, "ktstr-coord selftests: --topology '%s': not a preset name, N,L,C,T or "
                        "a label like 1n2l2c1t\n", topology);
        return 2;
    }
    _cleanup_(kt_coord_run_free) kt_coord_run_t run = {0};
    r = kt_selftests_prepare(&cfg, sel, n_sel, &run, err, sizeof(err));
    if (r < 0) {
        fprintf(stderr, "ktstr-coord selftests: %s\n", err);
        return 2;
    }
    char run_id[40];
    kt_coord_run_id_new(run_id);
    if (kt_coord_run_set_id(&run, run_id) < 0)
        return 2;

    _cleanup_free_ kt_host_t *hosts = NULL;
    unsigned n_hosts = 0;
    kt_runexec_opts_t *xo = &o.xo;
    if (o.workers) {
        r = kt_runopts_hosts(o.workers, &hosts, &n_hosts, err, sizeof(err));
        if (r < 0 || !n_hosts) {
            fprintf(stderr, "ktstr-coord selftests: %s\n",
                    r < 0 ? err : "--workers names no worker");
            return 2;
        }
        for (unsigned i = 0; i < n_hosts; i++) {
            if (xo->curve_secret && !hosts[i].curve_public[0]) {
                fprintf(stderr, "ktstr-coord selftests: worker %s has no key=PUBLIC_KEY; "
                                "--curve-secret needs every worker's public key\n",
                        hosts[i].name);
                return 2;
            }
            if (!xo->curve_secret && hosts[i].curve_public[0]) {
                fprintf(stderr, "ktstr-coord selftests: worker %s has key= (CURVE) but no "
                                "--curve-secret FILE was given\n", hosts[i].name);
                return 2;
            }
        }
        xo->hosts = hosts;
        xo->n_hosts = n_hosts;
    }

    /* Everything resolved: the results, the store, the report. */
    char db[PATH_MAX];
    _cleanup_(kt_store_close) kt_store_t *store = NULL;
    _cleanup_(kt_report_free) kt_report_t *report = NULL;
    if (kt_runopts_db_path(&o, db, sizeof(db), err, sizeof(err)) < 0 ||
        kt_runopts_open(&o, db, &run, progress, &store, &report, err, sizeof(err)) < 0) {
        fprintf(stderr, "ktstr-coord selftests: %s\n", err);
        return 2;
    }
    char rpath[PATH_MAX], kpath[PATH_MAX];
    json_t *tests = json_array();
    for (unsigned i = 0; tests && i < n_sel; i++)
        json_array_append_new(tests, json_pack("{s:s,s:s}", "name", sel[i].name, "description",
                                               sel[i].description));
    _cleanup_(kt_json_decrefp) json_t *inputs = json_pack(
        "{s:{s:s,s:s,s:s,s:o,s:I,s:s},s:o,s:o,s:i,s:i}", "selftests", "runner",
        realpath(runner, rpath) ? rpath : runner, "runner_sha", run.payloads[0].sha, "kernel",
        realpath(kernel, kpath) ? kpath : kernel, "tests", tests ? tests : json_array(),
        "timeout_ms", (json_int_t)timeout_ms, "topology", topology, "workers",
        o.workers ? json_string(o.workers) : json_null(), "executor",
        n_hosts ? json_null() : json_string("vm"), "heartbeat_ms",
        (int)(xo->heartbeat_ms ? xo->heartbeat_ms : 1000), "lost_after_ms",
        (int)(xo->lost_after_ms ? xo->lost_after_ms : 5000));
    if (!inputs) {
        fprintf(stderr, "ktstr-coord selftests: out of memory\n");
        return 2;
    }
    char *text = NULL;
    if (kt_runopts_run_json(report, inputs, &text, err, sizeof(err)) < 0) {
        fprintf(stderr, "ktstr-coord selftests: %s\n", err);
        return 2;
    }
    _cleanup_free_ bool *todo = calloc(run.n_cells, sizeof(bool));
    if (!todo) {
        free(text);
        return 2;
    }
    r = kt_runopts_store_cells(store, &run, text, todo);
    free(text);
    if (r < 0) {
        fprintf(stderr, "ktstr-coord selftests: run store '%s': %s\n", db, kt_store_error(store));
        return 2;
    }
    printf("selftests %s: %u of the runner's %u test(s) on %s, %u s timeout each; results in "
           "%s\n", run.run_id, run.n_cells, n_all,
           n_hosts ? "the workers" : "this machine (embedded worker)", timeout_ms / 1000,
           kt_report_run_dir(report));
    fflush(stdout);
    return kt_runexec(xo, &run, store, report, inputs, todo, run.n_cells, NULL);
}
