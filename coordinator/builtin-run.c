/* ktstr-coord run: parse and resolve everything first (gauntlet, kernels,
 * schedulers, cells, hosts) and fail fast with file:line errors; then open
 * the run store and the results directory, start the embedded worker when
 * no --workers were given (the same worker code, on a private ipc://
 * endpoint), dispatch, and write the reports. Exit status: 0 every cell
 * passed (skips are fine), 1 any cell failed, 2 any error (and no fail),
 * cells left without a verdict, or nothing could run. */
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
#include "kt_cli.h"
#include "kt_mpjson.h"
#include "kt_coord.h"
#include "kt_dispatch.h"
#include "kt_executor.h"
#include "kt_gauntlet.h"
#include "kt_hosts.h"
#include "kt_image.h"
#include "kt_kcache.h"
#include "kt_kernels.h"
#include "kt_kvm.h"
#include "kt_log.h"
#include "kt_matrix.h"
#include "kt_report.h"
#include "kt_runcell.h"
#include "kt_runexec.h"
#include "kt_runopts.h"
#include "kt_serve.h"
#include "kt_store.h"

static void s_usage(FILE *f)
{
    fprintf(f,
            "usage: ktstr-coord run [--workers FILE|host[:port],...] --gauntlet FILE\n"
            "                       [--results DIR] [--resume RUN_ID] [--junit FILE]\n"
            "                       [--budget SECS] [--curve-secret FILE]\n"
            "                       [--heartbeat MS] [--lost-after MS] [--max-attempts N]\n"
            "                       [--executor vm|null|sleep:MS] [--local-vcpus N]\n"
            "                       [--local-memory MIB] [--accel auto|kvm|tcg]\n"
            "                       [--progress auto|tty|plain|quiet] [-v]\n"
            "                       [--kernel SPEC]... [--kernel-repo DIR] [--kconfig FILE]\n"
            "Runs every cell of a gauntlet on the workers of a hosts file (`host[:port]\n"
            "[name=NAME] [key=PUBLIC_KEY]` per line) or list, or without --workers on\n"
            "this machine through an embedded worker. Results go to\n"
            "{results}/{run_id}/ (run.json, sidecars, console logs) and\n"
            "{results}/ktstr.db; --resume RUN_ID finishes an interrupted run without\n"
            "running its done cells again.\n"
            "  --results DIR       default ./results\n"
            "  --kernel SPEC       repeatable: these kernels instead of the gauntlet's:\n"
            "                      git+URL#REF, A..B (release tags of --kernel-repo, else\n"
            "                      cached kernels), a path, a version, a cache key,\n"
            "                      deb:PACKAGE. Every spec resolves once before any cell\n"
            "                      runs; kernels not cached are built (or fetched) here\n"
            "                      into the cache first (see `ktstr-coord kernel`)\n"
            "  --kconfig FILE      the kernel config fragment of builds and cache keys\n"
            "  --budget SECS       keep the cells that cover the most within this much\n"
            "                      VM time: a cell's median time in earlier runs of the\n"
            "                      --results store, else its estimate\n"
            "  --curve-secret FILE our certificate (ktstr-coord keygen); the hosts file\n"
            "                      gives each worker's public key as key=...\n"
            "  --heartbeat MS      default 1000; --lost-after MS default 5000\n"
            "  --progress          a live line on a terminal (auto), lines, or nothing\n"
            "  -v, --verbose       log everything (on a terminal only warnings show by\n"
            "                      default, so the progress line stays readable)\n"
            "  --executor, --local-vcpus, --local-memory, --accel: the embedded worker\n"
            "                      only (null and sleep run no VM: tests and benches)\n"
            "Exit status: 0 all passed, 1 a cell failed, 2 an error (or no verdict).\n");
}

/* The options selftests shares (ro: --workers, --results, --curve-secret,
 * the embedded worker's, ...) and run's own. */
typedef struct s_opts {
    kt_runopts_t ro;
    const char *gauntlet;
    const char *resume;
    const char *kernel_repo;
    const char *kconfig;
    unsigned n_kernel_specs;
    const char *kernel_specs[64];
    uint64_t budget_ms;
} s_opts_t;

/* ---- resume ---- */

/* The stored run.json's "inputs" and its cell ids. */
static int s_resume_load(kt_store_t *store, const char *run_id, json_t **ret_doc)
{
    char *text = NULL;
    int r = kt_store_run_inputs(store, run_id, &text);
    if (r < 0)
        return r;
    json_error_t jerr;
    json_t *doc = json_loads(text, 0, &jerr);
    free(text);
    if (!doc || !json_is_object(doc)) {
        json_decref(doc);
        return -EBADMSG;
    }
    *ret_doc = doc;
    return 0;
}

static const char *s_jstr(json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

/* Keep exactly the cells the run had (its budget choice included); every
 * one of them must still be in the gauntlet, with the same id. */
static int s_resume_cells(kt_coord_run_t *run, json_t *cells, char *err, size_t err_len)
{
    size_t n = json_array_size(cells);
    if (!n) {
        snprintf(err, err_len, "the stored run lists no cells");
        return -EBADMSG;
    }
    _cleanup_free_ bool *keep = calloc(run->n_cells ? run->n_cells : 1, sizeof(bool));
    if (!keep)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        const char *id = s_jstr(json_array_get(cells, i), "id");
        const char *name = s_jstr(json_array_get(cells, i), "name");
        bool found = false;
        for (unsigned k = 0; id && k < run->n_cells && !found; k++)
            if (strcmp(run->cells[k].spec.cell_id, id) == 0)
                found = keep[k] = true;
        if (!found) {
            snprintf(err, err_len,
                     "cell %s (%.12s) of the run is not in the gauntlet any more: the gauntlet, "
                     "a kernel or a scheduler binary changed since the run began",
                     name ? name : "?", id ? id : "?");
            return -ESTALE;
        }
    }
    unsigned o = 0;
    for (unsigned k = 0; k < run->n_cells; k++)
        if (keep[k])
            run->cells[o++] = run->cells[k];
    run->n_cells = o;
    return 0;
}

/* ---- kernels ---- */

/* The run's kernels, and the folders of dirty-tree builds to remove when
 * the run ends (they are never cached), with the staging locks that keep
 * `kernel clean` off them until then. */
typedef struct s_kernels {
    kt_coord_kernel_t *kernels;
    unsigned n;
    char (*tmp_dirs)[4096];
    int *tmp_locks;
    unsigned n_tmp;
} s_kernels_t;

static void s_kernels_free(s_kernels_t *k)
{
    for (unsigned i = 0; i < k->n_tmp; i++) {
        kt_kcache_rm_rf(k->tmp_dirs[i]);
        close(k->tmp_locks[i]);
    }
    free(k->tmp_dirs);
    free(k->tmp_locks);
    free(k->kernels);
    memset(k, 0, sizeof(*k));
}

/* Every spec (--kernel, else the gauntlet's kernels) resolved once, then
 * the kernels not cached built or fetched here, before anything is
 * dispatched: the cache is the coordinator's, and kernels travel to the
 * workers as sha256 artifacts like any other. Any failure names the spec
 * and stops the run. */
static int s_kernels_ready(const s_opts_t *o, const kt_gauntlet_t *g, s_kernels_t *ret,
                           char *err, size_t err_len)
{
    static char root[PATH_MAX];
    kt_kernels_opts_t ko = {.kernel_repo = o->kernel_repo,
                            .kconfig = o->kconfig ? o->kconfig : kt_kernels_default_kconfig()};
    int r = kt_kcache_root(root, sizeof(root), err, err_len);
    if (r < 0)
        return r;
    ko.cache_root = root;
    kt_kres_t *v = NULL;
    unsigned n = 0;
    if (o->n_kernel_specs) {
        for (unsigned i = 0; i < o->n_kernel_specs && r == 0; i++)
            r = kt_kernels_resolve(&ko, o->kernel_specs[i], NULL, &v, &n, err, err_len);
    } else {
        ko.base_dir = g->dir;
        for (unsigned i = 0; i < g->n_kernels && r == 0; i++) {
            char why[1024];
            r = kt_kernels_resolve(&ko, g->kernels[i].spec, g->kernels[i].label, &v, &n, why,
                                   sizeof(why));
            if (r < 0)
                snprintf(err, err_len, "%.400s: kernels[%u]: %.600s", g->path, i, why);
        }
    }
    unsigned builds = 0;
    for (unsigned i = 0; r == 0 && i < n; i++)
        builds += v[i].need != KT_KRES_READY;
    if (r == 0 && builds)
        kt_log_info("run: %u kernel(s) to build or fetch on this host before the run", builds);
    if (r == 0 && n) {
        ret->kernels = calloc(n, sizeof(*ret->kernels));
        ret->tmp_dirs = calloc(n, sizeof(*ret->tmp_dirs));
        ret->tmp_locks = calloc(n, sizeof(*ret->tmp_locks));
        if (!ret->kernels || !ret->tmp_dirs || !ret->tmp_locks)
            r = -ENOMEM;
    }
    for (unsigned i = 0; r == 0 && i < n; i++) {
        if (v[i].need != KT_KRES_READY) {
            r = kt_kernels_build(&ko, &v[i], err, err_len);
            if (v[i].tmp_dir[0]) {
                ret->tmp_locks[ret->n_tmp] = v[i].tmp_lock;
                snprintf(ret->tmp_dirs[ret->n_tmp++], sizeof(ret->tmp_dirs[0]), "%s",
                         v[i].tmp_dir);
            }
            if (r < 0)
                break;
        }
        r = kt_kernels_to_coord(&v[i], &ret->kernels[ret->n], err, err_len);
        if (r == 0)
            ret->n++;
    }
    free(v);
    if (r == 0 && !ret->n) {
        snprintf(err, err_len, "no kernel to run");
        r = -ENOENT;
    }
    return r;
}

/* ---- the verb ---- */

int builtin_run(int argc, char **argv)
{
    /* In this order: getopt names the candidates of an ambiguous prefix in
     * it. The letters of the shared options are kt_runopts'. */
    static const struct option opts[] = {
        {"workers", required_argument, NULL, 'w'},
        {"gauntlet", required_argument, NULL, 'g'},
        {"results", required_argument, NULL, 'r'},
        {"resume", required_argument, NULL, 'R'},
        {"junit", required_argument, NULL, 'j'},
        {"budget", required_argument, NULL, 'b'},
        {"curve-secret", required_argument, NULL, 'c'},
        {"heartbeat", required_argument, NULL, 'H'},
        {"lost-after", required_argument, NULL, 'L'},
        {"max-attempts", required_argument, NULL, 'M'},
        {"executor", required_argument, NULL, 'e'},
        {"local-vcpus", required_argument, NULL, 'V'},
        {"local-memory", required_argument, NULL, 'm'},
        {"accel", required_argument, NULL, 'a'},
        {"progress", required_argument, NULL, 'p'},
        {"verbose", no_argument, NULL, 'v'},
        {"kernel", required_argument, NULL, 'K'},
        {"kernel-repo", required_argument, NULL, 'G'},
        {"kconfig", required_argument, NULL, 'C'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    s_opts_t o = {0};
    kt_runopts_init(&o.ro, "run", s_usage);
    int c, r, opt_exit;
    optind = 1;
    while ((c = kt_runopts_getopt(&o.ro, argc, argv, "w:g:r:R:j:b:c:H:L:M:e:V:m:a:p:vh", opts,
                                  &opt_exit)) > 0) {
        switch (c) {
        case 'g': o.gauntlet = optarg; break;
        case 'R': o.resume = optarg; break;
        case 'e': o.ro.xo.executor = optarg; break;
        case 'K':
            if (o.n_kernel_specs == KT_ARRAY_SIZE(o.kernel_specs)) {
                fprintf(stderr, "ktstr-coord run: more than %zu --kernel\n",
                        KT_ARRAY_SIZE(o.kernel_specs));
                return 2;
            }
            o.kernel_specs[o.n_kernel_specs++] = optarg;
            break;
        case 'G': o.kernel_repo = optarg; break;
        case 'C': o.kconfig = optarg; break;
        case 'b':
            if (kt_cli_parse_secs(optarg, &o.budget_ms) < 0) {
                fprintf(stderr, "ktstr-coord run: --budget '%s': expected seconds > 0\n", optarg);
                return 2;
            }
            break;
        }
    }
    if (c == KT_RUNOPTS_EXIT)
        return opt_exit;
    if (!o.gauntlet && !o.resume) {
        fprintf(stderr, "ktstr-coord run: --gauntlet FILE is required (or --resume RUN_ID)\n");
        s_usage(stderr);
        return 2;
    }
    enum kt_report_progress progress;
    char err[PATH_MAX + 1024] = "", db[PATH_MAX];
    if (kt_runopts_progress(&o.ro, &progress, err, sizeof(err)) < 0 ||
        kt_runopts_db_path(&o.ro, db, sizeof(db), err, sizeof(err)) < 0) {
        fprintf(stderr, "ktstr-coord run: %s\n", err);
        return 2;
    }
    _cleanup_(kt_store_close) kt_store_t *store = NULL;
    _cleanup_(kt_json_decrefp) json_t *stored = NULL;
    json_t *stored_inputs = NULL;
    if (o.resume) {
        if (access(db, F_OK) != 0) {
            fprintf(stderr, "ktstr-coord run: --resume %s: no run store at '%s' (give the "
                            "--results DIR of that run)\n", o.resume, db);
            return 2;
        }
        r = kt_store_open(db, &store);
        if (r < 0) {
            fprintf(stderr, "ktstr-coord run: cannot open the run store '%s': %s\n", db,
                    strerror(-r));
            return 2;
        }
        r = s_resume_load(store, o.resume, &stored);
        if (r < 0) {
            fprintf(stderr, "ktstr-coord run: --resume %s: %s\n", o.resume,
                    r == -ENOENT ? "no such run in the store"
                                 : "the stored run's inputs cannot be read");
            return 2;
        }
        stored_inputs = json_object_get(stored, "inputs");
        /* What the run was started with, unless given again. */
        if (!o.gauntlet)
            o.gauntlet = s_jstr(stored_inputs, "gauntlet");
        if (!o.ro.workers)
            o.ro.workers = s_jstr(stored_inputs, "workers");
        if (!o.ro.xo.executor)
            o.ro.xo.executor = s_jstr(stored_inputs, "executor");
        if (!o.ro.xo.curve_secret)
            o.ro.xo.curve_secret = s_jstr(stored_inputs, "curve_secret");
        if (!o.ro.xo.local_vcpus)
            o.ro.xo.local_vcpus = (unsigned)json_integer_value(json_object_get(stored_inputs,
                                                                               "local_vcpus"));
        if (!o.kernel_repo)
            o.kernel_repo = s_jstr(stored_inputs, "kernel_repo");
        json_t *ks = json_object_get(stored_inputs, "kernels");
        for (size_t i = 0; !o.n_kernel_specs && i < json_array_size(ks) &&
                           i < KT_ARRAY_SIZE(o.kernel_specs);
             i++)
            if (json_is_string(json_array_get(ks, i)))
                o.kernel_specs[o.n_kernel_specs++] = json_string_value(json_array_get(ks, i));
        if (!o.gauntlet) {
            fprintf(stderr, "ktstr-coord run: --resume %s: the run does not say which gauntlet "
                            "it ran; pass --gauntlet\n", o.resume);
            return 2;
        }
    }

    _cleanup_(kt_gauntlet_free) kt_gauntlet_t *g = NULL;
    r = kt_gauntlet_load(o.gauntlet, &g, err, sizeof(err));
    if (r < 0) {
        fprintf(stderr, "ktstr-coord run: %s\n", err);
        return 2;
    }
    _cleanup_(s_kernels_free) s_kernels_t ks = {0};
    r = s_kernels_ready(&o, g, &ks, err, sizeof(err));
    if (r < 0) {
        fprintf(stderr, "ktstr-coord run: %s\n", err);
        return 2;
    }
    _cleanup_(kt_coord_run_free) kt_coord_run_t run = {0};
    r = kt_coord_run_prepare_kernels(g, ks.kernels, ks.n, &run, err, sizeof(err));
    if (r < 0) {
        fprintf(stderr, "ktstr-coord run: %s\n", err);
        return 2;
    }
    char run_id[40];
    if (o.resume)
        snprintf(run_id, sizeof(run_id), "%s", o.resume);
    else
        kt_coord_run_id_new(run_id);
    if (kt_coord_run_set_id(&run, run_id) < 0) {
        fprintf(stderr, "ktstr-coord run: '%s' is not a run id\n", run_id);
        return 2;
    }
    /* What these cells took in earlier runs of this results folder: the
     * budget and the ETA go by it (leases keep the static estimate). */
    unsigned timed = kt_matrix_learn_results(&run, o.ro.results);
    if (timed)
        kt_log_info("%u of %u cells timed by their earlier runs in %s/ktstr.db", timed,
                    run.n_cells, o.ro.results);
    if (o.resume) {
        r = s_resume_cells(&run, json_object_get(stored, "cells"), err, sizeof(err));
        if (r < 0) {
            fprintf(stderr, "ktstr-coord run: --resume %s: %s\n", o.resume, err);
            return 2;
        }
    } else if (o.budget_ms) {
        unsigned all = run.n_cells;
        kt_matrix_budget(&run, o.budget_ms);
        kt_log_info("budget %.0f s keeps %u of %u cells", (double)o.budget_ms / 1000.0,
                    run.n_cells, all);
    }
    if (!run.n_cells) {
        fprintf(stderr, "ktstr-coord run: the gauntlet has no cells to run\n");
        return 2;
    }

    _cleanup_free_ kt_host_t *hosts = NULL;
    unsigned n_hosts = 0;
    const char *workers = o.ro.workers, *curve_secret = o.ro.xo.curve_secret;
    if (workers) {
        r = kt_runopts_hosts(workers, &hosts, &n_hosts, err, sizeof(err));
        if (r < 0) {
            fprintf(stderr, "ktstr-coord run: %s\n", err);
            return 2;
        }
        if (!n_hosts) {
            fprintf(stderr, "ktstr-coord run: --workers '%s' names no worker\n", workers);
            return 2;
        }
        bool any_key = false;
        for (unsigned i = 0; i < n_hosts; i++) {
            any_key |= hosts[i].curve_public[0] != '\0';
            if (curve_secret && !hosts[i].curve_public[0]) {
                fprintf(stderr, "ktstr-coord run: %s%s%u%sworker %s has no key=PUBLIC_KEY; "
                                "--curve-secret needs every worker's public key\n",
                        hosts[i].line ? workers : "", hosts[i].line ? ":" : "",
                        hosts[i].line, hosts[i].line ? ": " : "", hosts[i].name);
                return 2;
            }
        }
        if (any_key && !curve_secret) {
            fprintf(stderr, "ktstr-coord run: the workers have key= (CURVE) but no "
                            "--curve-secret FILE was given (make one with ktstr-coord keygen)\n");
            return 2;
        }
        if (o.ro.xo.executor || o.ro.xo.local_vcpus || o.ro.xo.local_memory_mib || o.ro.xo.accel)
            kt_log_warn("run: --executor, --local-vcpus, --local-memory and --accel are for the "
                        "embedded worker; the workers decide for themselves, ignoring");
    }
    if (curve_secret) {
        zcert_t *cert = zcert_load(curve_secret);
        if (!cert) {
            fprintf(stderr, "ktstr-coord run: --curve-secret '%s': not a readable certificate "
                            "(make one with ktstr-coord keygen DIR)\n", curve_secret);
            return 2;
        }
        static const char zero_key[] = "0000000000000000000000000000000000000000";
        bool has_secret = strcmp(zcert_secret_txt(cert), zero_key) != 0;
        zcert_destroy(&cert);
        if (!has_secret) {
            fprintf(stderr, "ktstr-coord run: --curve-secret '%s' holds no secret key (give the "
                            "*_secret file)\n", curve_secret);
            return 2;
        }
    }

    /* Everything parsed and resolved: now the results and the store. */
    _cleanup_(kt_report_free) kt_report_t *report = NULL;
    r = kt_runopts_open(&o.ro, db, &run, progress, &store, &report, err, sizeof(err));
    if (r < 0) {
        fprintf(stderr, "ktstr-coord run: %s\n", err);
        return 2;
    }
    _cleanup_(kt_json_decrefp) json_t *inputs = NULL;
    if (stored_inputs) {
        inputs = json_deep_copy(stored_inputs);
    } else {
        char gpath[PATH_MAX];
        const char *gp = realpath(o.gauntlet, gpath) ? gpath : o.gauntlet;
        char wpath[PATH_MAX];
        const char *wp = workers;
        if (wp && access(wp, F_OK) == 0 && realpath(wp, wpath))
            wp = wpath;
        char cpath[PATH_MAX];
        const char *cp = curve_secret;
        if (cp && realpath(cp, cpath))
            cp = cpath;
        inputs = json_pack("{s:s,s:o,s:o,s:I,s:o,s:i,s:i,s:i}", "gauntlet", gp, "workers",
                           wp ? json_string(wp) : json_null(), "executor",
                           n_hosts ? json_null()
                                   : json_string(o.ro.xo.executor ? o.ro.xo.executor : "vm"),
                           "budget_ms", (json_int_t)o.budget_ms, "curve_secret",
                           cp ? json_string(cp) : json_null(), "local_vcpus",
                           (int)o.ro.xo.local_vcpus, "heartbeat_ms",
                           (int)(o.ro.xo.heartbeat_ms ? o.ro.xo.heartbeat_ms : 1000),
                           "lost_after_ms",
                           (int)(o.ro.xo.lost_after_ms ? o.ro.xo.lost_after_ms : 5000));
    }
    if (inputs && !stored_inputs && o.n_kernel_specs) {
        json_t *arr = json_array();
        for (unsigned i = 0; arr && i < o.n_kernel_specs; i++)
            json_array_append_new(arr, json_string(o.kernel_specs[i]));
        json_object_set_new(inputs, "kernels", arr);
        if (o.kernel_repo) {
            char kpath[PATH_MAX];
            json_object_set_new(inputs, "kernel_repo",
                                json_string(realpath(o.kernel_repo, kpath) ? kpath
                                                                           : o.kernel_repo));
        }
    }
    if (!inputs) {
        fprintf(stderr, "ktstr-coord run: out of memory\n");
        return 2;
    }

    _cleanup_free_ bool *todo = calloc(run.n_cells, sizeof(bool));
    if (!todo)
        return 2;
    unsigned n_todo = 0, n_before = 0;
    if (o.resume) {
        for (unsigned i = 0; i < run.n_cells; i++) {
            char verdict[16];
            if (kt_store_cell_verdict(store, run.run_id, run.cells[i].spec.cell_id, verdict,
                                      sizeof(verdict)) == 0) {
                kt_report_load_done(report, i, verdict);
                n_before++;
            } else {
                todo[i] = true;
                n_todo++;
            }
        }
        char *text = NULL;
        if (kt_report_write_run_json(report, inputs, "running", NULL, &text) < 0)
            kt_log_warn("run: cannot write run.json in '%s', ignoring",
                        kt_report_run_dir(report));
        free(text);
        /* The stored inputs stay as they were: they define the run. */
        char *orig = json_dumps(stored, JSON_COMPACT);
        r = orig ? kt_store_run_begin(store, run.run_id, orig) : -ENOMEM;
        free(orig);
        printf("run %s: resuming, %u of %u cell(s) already have a verdict, %u to run\n",
               run.run_id, n_before, run.n_cells, n_todo);
    } else {
        char *text = NULL;
        if (kt_runopts_run_json(report, inputs, &text, err, sizeof(err)) < 0) {
            fprintf(stderr, "ktstr-coord run: %s\n", err);
            return 2;
        }
        r = kt_runopts_store_cells(store, &run, text, todo);
        free(text);
        n_todo = run.n_cells;
        printf("run %s: %u cell(s) on %s; results in %s\n", run.run_id, run.n_cells,
               n_hosts ? "the workers" : "this machine (embedded worker)",
               kt_report_run_dir(report));
    }
    if (r < 0) {
        fprintf(stderr, "ktstr-coord run: run store '%s': %s\n", db, kt_store_error(store));
        return 2;
    }
    fflush(stdout);

    o.ro.xo.hosts = hosts;
    o.ro.xo.n_hosts = n_hosts;
    const char *status = "done";
    int exit_code = kt_runexec(&o.ro.xo, &run, store, report, inputs, todo, n_todo, &status);
    if (strcmp(status, "done") != 0)
        printf("run %s %s; finish it with: ktstr-coord run --resume %s%s%s\n", run.run_id,
               strcmp(status, "interrupted") == 0 ? "was interrupted" : "could not run",
               run.run_id, o.ro.results_set ? " --results " : "",
               o.ro.results_set ? o.ro.results : "");
    return exit_code;
}
