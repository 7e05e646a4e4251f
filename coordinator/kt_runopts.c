/* The options and setup `ktstr-coord run` and `ktstr-coord selftests`
 * share (see kt_runopts.h). */
#include "kt_runopts.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kt_cleanup.h"
#include "kt_cli.h"
#include "kt_log.h"

void kt_runopts_init(kt_runopts_t *o, const char *verb, void (*usage)(FILE *f))
{
    *o = (kt_runopts_t){.usage = usage, .results = "results", .xo = {.verb = verb}};
}

int kt_runopts_getopt(kt_runopts_t *o, int argc, char **argv, const char *optstring,
                      const struct option *longopts, int *ret_exit)
{
    int c, r;
    *ret_exit = 2;
    while ((c = getopt_long(argc, argv, optstring, longopts, NULL)) != -1) {
        if (c == 'h') {
            o->usage(stdout);
            *ret_exit = 0;
            return KT_RUNOPTS_EXIT;
        }
        if (c == '?') {
            o->usage(stderr);
            return KT_RUNOPTS_EXIT;
        }
        /* Room for the whole value in the message, however long. */
        size_t err_len = (optarg ? strlen(optarg) : 0) + 128;
        _cleanup_free_ char *err = malloc(err_len);
        if (!err)
            return KT_RUNOPTS_EXIT;
        r = kt_runopts_take(o, c, optarg, err, err_len);
        if (r < 0) {
            fprintf(stderr, "ktstr-coord %s: %s\n", o->xo.verb, err);
            return KT_RUNOPTS_EXIT;
        }
        if (r == 0)
            return c;
    }
    if (optind != argc) {
        fprintf(stderr, "ktstr-coord %s: unexpected argument '%s'\n", o->xo.verb, argv[optind]);
        o->usage(stderr);
        return KT_RUNOPTS_EXIT;
    }
    return KT_RUNOPTS_DONE;
}

int kt_runopts_take(kt_runopts_t *o, int c, const char *arg, char *err, size_t err_len)
{
    uint64_t v;
    switch (c) {
    case 'w': o->workers = arg; return 1;
    case 'r':
        o->results = arg;
        o->results_set = true;
        return 1;
    case 'j': o->xo.junit = arg; return 1;
    case 'c': o->xo.curve_secret = arg; return 1;
    case 'a': o->xo.accel = arg; return 1;
    case 'p': o->progress = arg; return 1;
    case 'v': o->verbose = true; return 1;
    case 'H':
    case 'L':
        if (kt_cli_parse_u64(arg, 10, 600000, &v) < 0) {
            snprintf(err, err_len, "--%s '%s': expected 10..600000 ms",
                     c == 'H' ? "heartbeat" : "lost-after", arg);
            return -EINVAL;
        }
        if (c == 'H')
            o->xo.heartbeat_ms = (uint32_t)v;
        else
            o->xo.lost_after_ms = (uint32_t)v;
        return 1;
    case 'M':
        if (kt_cli_parse_u64(arg, 1, 100, &v) < 0) {
            snprintf(err, err_len, "--max-attempts '%s': expected 1..100", arg);
            return -EINVAL;
        }
        o->xo.max_attempts = (unsigned)v;
        return 1;
    case 'V':
        if (kt_cli_parse_u64(arg, 1, 4096, &v) < 0) {
            snprintf(err, err_len, "--local-vcpus '%s': expected 1..4096", arg);
            return -EINVAL;
        }
        o->xo.local_vcpus = (unsigned)v;
        return 1;
    case 'm':
        if (kt_cli_parse_u64(arg, 64, 1u << 30, &v) < 0) {
            snprintf(err, err_len, "--local-memory '%s': expected MiB >= 64", arg);
            return -EINVAL;
        }
        o->xo.local_memory_mib = v;
        return 1;
    default: return 0;
    }
}

int kt_runopts_progress(const kt_runopts_t *o, enum kt_report_progress *ret, char *err,
                        size_t err_len)
{
    enum kt_report_progress progress = KT_REPORT_PROGRESS_AUTO;
    if (o->progress) {
        /* In the enum's order. */
        static const char *const names[] = {"auto", "tty", "plain", "quiet"};
        unsigned k = 0;
        while (k < 4 && strcmp(o->progress, names[k]) != 0)
            k++;
        if (k == 4) {
            snprintf(err, err_len, "--progress '%s': expected auto, tty, plain or quiet",
                     o->progress);
            return -EINVAL;
        }
        progress = (enum kt_report_progress)k;
    }
    bool tty = progress == KT_REPORT_PROGRESS_TTY ||
               (progress == KT_REPORT_PROGRESS_AUTO && isatty(STDOUT_FILENO) == 1);
    if (o->verbose)
        kt_log_set_level(KT_LOG_DEBUG);
    else if (tty && kt_log_get_level() > KT_LOG_WARN)
        kt_log_set_level(KT_LOG_WARN);
    *ret = progress;
    return 0;
}

int kt_runopts_hosts(const char *workers, kt_host_t **ret_hosts, unsigned *ret_n, char *err,
                     size_t err_len)
{
    struct stat sb;
    if (stat(workers, &sb) == 0 && S_ISREG(sb.st_mode))
        return kt_hosts_load(workers, ret_hosts, ret_n, err, err_len);
    if (strchr(workers, '/') && !strchr(workers, ':')) {
        snprintf(err, err_len, "--workers '%s': no such file", workers);
        return -ENOENT;
    }
    return kt_hosts_parse_list(workers, ret_hosts, ret_n, err, err_len);
}

int kt_runopts_db_path(const kt_runopts_t *o, char *db, size_t db_len, char *err,
                       size_t err_len)
{
    if ((size_t)snprintf(db, db_len, "%s/ktstr.db", o->results) >= db_len) {
        snprintf(err, err_len, "--results '%s': path too long", o->results);
        return -ENAMETOOLONG;
    }
    return 0;
}

int kt_runopts_open(const kt_runopts_t *o, const char *db, kt_coord_run_t *run,
                    enum kt_report_progress progress, kt_store_t **store,
                    kt_report_t **ret_report, char *err, size_t err_len)
{
    struct stat sb;
    if (stat(o->results, &sb) < 0 && mkdir(o->results, 0755) < 0 && errno != EEXIST) {
        int r = -errno;
        snprintf(err, err_len, "cannot make '%s': %s", o->results, strerror(-r));
        return r;
    }
    int r;
    if (!*store) {
        r = kt_store_open(db, store);
        if (r < 0) {
            snprintf(err, err_len, "cannot open the run store '%s': %s", db, strerror(-r));
            return r;
        }
    }
    kt_report_config_t rc = {.results_dir = o->results, .run = run, .out = stdout,
                             .progress = progress};
    r = kt_report_new(&rc, ret_report);
    if (r < 0)
        snprintf(err, err_len, "cannot make '%s/%s': %s", o->results, run->run_id,
                 strerror(-r));
    return r;
}

int kt_runopts_run_json(kt_report_t *report, json_t *inputs, char **ret_text, char *err,
                        size_t err_len)
{
    char *text = NULL;
    int r = kt_report_write_run_json(report, inputs, "running", NULL, &text);
    if (r < 0 || !text) {
        free(text);
        r = r < 0 ? r : -ENOMEM;
        snprintf(err, err_len, "cannot write '%s/run.json': %s", kt_report_run_dir(report),
                 strerror(-r));
        return r;
    }
    *ret_text = text;
    return 0;
}

int kt_runopts_store_cells(kt_store_t *store, const kt_coord_run_t *run, const char *run_json,
                           bool *todo)
{
    int r = kt_store_run_begin(store, run->run_id, run_json);
    for (unsigned i = 0; r == 0 && i < run->n_cells; i++) {
        const kt_cellspec_t *sp = &run->cells[i].spec;
        r = kt_store_cell_add(store, run->run_id, sp->cell_id, sp->cell_name, sp->kernel_label,
                              sp->kernel_version, sp->kernel_commit);
        todo[i] = true;
    }
    return r;
}
