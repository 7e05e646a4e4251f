/* The run store: SQLite (WAL) at {results}/ktstr.db with runs, cells,
 * attempts, verdicts and metrics. Every result is accepted exactly once:
 * a result for a fenced (superseded) attempt is recorded as stale. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct kt_store kt_store_t;

/* Opens (creating it and its schema when new, migrating an older schema)
 * the store at path; several processes may hold it open. -errno;
 * kt_store_open_why also says why (SQLite's message, a schema version from
 * a newer ktstr-coord). */
int kt_store_open(const char *path, kt_store_t **ret);
int kt_store_open_why(const char *path, kt_store_t **ret, char *err, size_t err_len);
/* The store of a results folder that runs have written: -ENOENT (err says
 * there is none, naming the path) rather than creating an empty one. */
int kt_store_open_results(const char *results_dir, kt_store_t **ret, char *err, size_t err_len);
void kt_store_close(kt_store_t **s_p);
/* The last failure's text (SQLite's message and what was being done). */
const char *kt_store_error(const kt_store_t *s);

/* A run and its inputs (run.json text). Beginning a run the store knows
 * is a resume: its cells, attempts and results stay. */
int kt_store_run_begin(kt_store_t *s, const char *run_id, const char *inputs_json);
int kt_store_run_end(kt_store_t *s, const char *run_id, const char *status);
/* A run's inputs (run.json text as given to kt_store_run_begin); caller
 * owns *ret_json. -ENOENT for a run the store does not know. */
int kt_store_run_inputs(kt_store_t *s, const char *run_id, char **ret_json);
/* Register a cell of a run (idempotent) with its kernel's label, release
 * and commit (each may be NULL: unknown). */
int kt_store_cell_add(kt_store_t *s, const char *run_id, const char *cell_id, const char *name,
                      const char *kernel_label, const char *kernel_version,
                      const char *kernel_commit);
/* An attempt was assigned to a worker; older attempts of the cell are fenced.
 * Attempts start at 1; -ESTALE for one older than the cell's current. */
int kt_store_attempt_begin(kt_store_t *s, const char *run_id, const char *cell_id, unsigned attempt,
                           const char *worker);
/* An attempt ended without a result (worker lost, cancelled). */
int kt_store_attempt_lost(kt_store_t *s, const char *run_id, const char *cell_id, unsigned attempt,
                          const char *why);
/* Record a result. It is accepted only for the cell's current attempt (the
 * latest begun, even if since marked lost) while the cell has no accepted
 * result; otherwise it is kept as stale and *ret_accepted is false. */
int kt_store_result(kt_store_t *s, const char *run_id, const char *cell_id, unsigned attempt,
                    const char *worker, const char *verdict, const char *reason,
                    const char *sidecar_path, const char *metrics_json, bool *ret_accepted);
/* The final verdict of a cell in a run, or -ENOENT when it has none. */
int kt_store_cell_verdict(kt_store_t *s, const char *run_id, const char *cell_id, char *buf,
                          unsigned len);
/* Count of stale results recorded for a run (tests). */
int kt_store_stale_count(kt_store_t *s, const char *run_id, unsigned *ret);
/* Highest attempt number recorded for a cell (0 when none). */
int kt_store_last_attempt(kt_store_t *s, const char *run_id, const char *cell_id, unsigned *ret);

/* ---- queries (ktstr-coord history and compare) ---- */

/* A cell's accepted result. Strings may be NULL (unknown); they live until
 * the callback returns. */
typedef struct kt_store_row {
    const char *run_id;
    int64_t run_started_ms;
    const char *cell_id, *name;
    const char *kernel_label, *kernel_version, *kernel_commit;
    unsigned attempt;
    const char *worker, *verdict, *reason, *sidecar_path;
    const char *metrics_json; /* kt_metrics' object; NULL when none was kept */
} kt_store_row_t;

/* A callback returning non-zero stops the walk; the walk returns that. */
typedef int (*kt_store_row_fn)(const kt_store_row_t *row, void *userdata);

/* Every cell of a run that has a result, by name. -ENOENT (and
 * kt_store_error says so) for a run the store does not know. */
int kt_store_run_rows(kt_store_t *s, const char *run_id, kt_store_row_fn fn, void *userdata);

/* The results of the cells whose name matches glob (SQLite GLOB: * ? [..];
 * NULL or "" for all) in the last_runs newest runs (0: all), by name, then
 * oldest run first. *ret_n (may be NULL): how many rows were walked. */
int kt_store_history(kt_store_t *s, const char *glob, unsigned last_runs, kt_store_row_fn fn,
                     void *userdata, unsigned *ret_n);

typedef struct kt_store_run {
    const char *run_id, *status;
    int64_t started_ms, ended_ms; /* ended 0 while running or interrupted */
    unsigned cells, pass, fail, error;
} kt_store_run_t;
typedef int (*kt_store_run_fn)(const kt_store_run_t *run, void *userdata);

/* Every run, oldest first. */
int kt_store_runs(kt_store_t *s, kt_store_run_fn fn, void *userdata);

/* The median of the total times (timing.total_ms) of a cell's last
 * max_runs accepted results in any run (cell ids are stable across runs);
 * -ENOENT when none was recorded. */
int kt_store_cell_ms(kt_store_t *s, const char *cell_id, unsigned max_runs, uint64_t *ret_ms);

/* A store time (ms since the epoch) as "2026-11-26 09:21:10Z"; "-" for 0. */
void kt_store_when(int64_t ms, char *buf, size_t len);
