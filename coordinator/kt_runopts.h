/* What `ktstr-coord run` and `ktstr-coord selftests` share before a run is
 * handed to kt_runexec: the options about where and how cells run
 * (--workers, --results, --junit, --curve-secret, --heartbeat, --lost-after,
 * --max-attempts, --accel, --local-vcpus, --local-memory, --progress, -v),
 * the workers' list, and the results directory with its run store, report
 * and first run.json. Each verb keeps its own usage text, checks and order;
 * the failures here fill err with the words both verbs print after
 * "ktstr-coord VERB: ". */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "kt_coord.h"
#include "kt_hosts.h"
#include "kt_report.h"
#include "kt_runexec.h"
#include "kt_store.h"

/* The shared long options, for a verb's `struct option` table (getopt.h);
 * each answers with the same short letter in both verbs. */
#define KT_RUNOPTS_LONG_OPTIONS                                                                   \
    {"workers", required_argument, NULL, 'w'}, {"results", required_argument, NULL, 'r'},        \
    {"junit", required_argument, NULL, 'j'}, {"curve-secret", required_argument, NULL, 'c'},     \
    {"heartbeat", required_argument, NULL, 'H'}, {"lost-after", required_argument, NULL, 'L'},   \
    {"max-attempts", required_argument, NULL, 'M'}, {"accel", required_argument, NULL, 'a'},     \
    {"local-vcpus", required_argument, NULL, 'V'}, {"local-memory", required_argument, NULL, 'm'},\
    {"progress", required_argument, NULL, 'p'}, {"verbose", no_argument, NULL, 'v'}

typedef struct kt_runopts {
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

/* The defaults: results in ./results, everything else unset. */
void kt_runopts_init(kt_runopts_t *o, const char *verb);

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
