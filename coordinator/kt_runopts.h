/* What `ktstr-coord run` and `ktstr-coord selftests` share before a run is
 * handed to kt_runexec: the options about where and how cells run
 * (--workers, --results, --junit, --curve-secret, --heartbeat, --lost-after,
 * --max-attempts, --accel, --local-vcpus, --local-memory, --progress, -v),
 * the workers' list, and the results directory with its run store, report
 * and first run.json. Each verb keeps its own usage text, option table,
 * checks and order; the failures here fill err with the words both verbs
 * print after "ktstr-coord VERB: " (kt_runopts_getopt prints them itself). */
#pragma once

#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "kt_coord.h"
#include "kt_hosts.h"
#include "kt_report.h"
#include "kt_runexec.h"
#include "kt_store.h"

/* The shared options answer getopt with these letters in both verbs'
 * tables (each verb keeps its own table, in its own order, since getopt
 * names an ambiguous prefix's candidates in that order): --workers 'w',
 * --results 'r', --junit 'j', --curve-secret 'c', --heartbeat 'H',
 * --lost-after 'L', --max-attempts 'M', --accel 'a', --local-vcpus 'V',
 * --local-memory 'm', --progress 'p', --verbose 'v', --help 'h'. */

typedef struct kt_runopts {
    void (*usage)(FILE *f);     /* the verb's usage text */
    const char *workers;        /* a hosts file or host[:port],...; NULL: the embedded worker */
    const char *results;        /* "results" unless --results */
    bool results_set;
    const char *progress;       /* NULL: auto */
    bool verbose;
    /* junit, curve_secret, heartbeat_ms, lost_after_ms, max_attempts, accel,
     * local_vcpus, local_memory_mib from the options; the verb fills in the
     * rest (verb, hosts, executor). */
    kt_runexec_opts_t xo;
} kt_runopts_t;

/* The defaults: results in ./results, everything else unset. verb names
 * the verb in messages ("ktstr-coord VERB: ..."), usage prints its text. */
void kt_runopts_init(kt_runopts_t *o, const char *verb, void (*usage)(FILE *f));

#define KT_RUNOPTS_DONE (-1)    /* the options ended, nothing left over */
#define KT_RUNOPTS_EXIT (-2)    /* the verb exits with *ret_exit */

/* getopt_long over argv with the verb's optstring and longopts (which hold
 * the shared options above), taking the shared options into o on the way.
 * Returns the next of the verb's own options, KT_RUNOPTS_DONE, or
 * KT_RUNOPTS_EXIT after --help (usage on stdout, *ret_exit 0) or a usage
 * error (*ret_exit 2): a refused value says why on stderr, an unknown
 * option gets the usage on stderr, an argument left over both. The one
 * place in this file that prints: it is the verbs' command line. */
int kt_runopts_getopt(kt_runopts_t *o, int argc, char **argv, const char *optstring,
                      const struct option *longopts, int *ret_exit);

/* Takes getopt's answer c with its argument when c is one of the shared
 * options. Returns 1 taken, 0 not a shared option (the verb's usage error),
 * or -EINVAL with err naming the option and what it expects. */
int kt_runopts_take(kt_runopts_t *o, int c, const char *arg, char *err, size_t err_len);

/* --progress as the report's mode, and the log level that goes with it:
 * everything with -v; on a live progress line only warnings, so the line
 * stays readable. Returns 0, or -EINVAL with err. */
int kt_runopts_progress(const kt_runopts_t *o, enum kt_report_progress *ret, char *err,
                        size_t err_len);

/* --workers: a hosts file when it is a regular file, else a host[:port]
 * list (a path-like name that is no file is an error, not a host). The
 * caller frees *ret_hosts; an empty list is the caller's to refuse.
 * Returns 0 or -errno with err. */
int kt_runopts_hosts(const char *workers, kt_host_t **ret_hosts, unsigned *ret_n, char *err,
                     size_t err_len);

/* {results}/ktstr.db into db. Returns 0, or -ENAMETOOLONG with err. */
int kt_runopts_db_path(const kt_runopts_t *o, char *db, size_t db_len, char *err,
                       size_t err_len);

/* The results directory (made when missing), the run store db (opened
 * unless *store is already open) and the run's report in
 * {results}/{run_id}/. Returns 0, or -errno with err; what was opened stays
 * in *store / *ret_report for the caller's cleanup. */
int kt_runopts_open(const kt_runopts_t *o, const char *db, kt_coord_run_t *run,
                    enum kt_report_progress progress, kt_store_t **store,
                    kt_report_t **ret_report, char *err, size_t err_len);

/* The run's first run.json, "running", from inputs; *ret_text (the
 * caller's to free) is what was written, for the store. Returns 0, or
 * -errno with err. */
int kt_runopts_run_json(kt_report_t *report, json_t *inputs, char **ret_text, char *err,
                        size_t err_len);

/* Begins the run in store with run_json and adds every cell of run, each
 * marked in todo (run->n_cells of them). Returns 0, or the store's -errno
 * (kt_store_error says why). */
int kt_runopts_store_cells(kt_store_t *store, const kt_coord_run_t *run, const char *run_json,
                           bool *todo);
