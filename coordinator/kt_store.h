/* The run store: SQLite (WAL) at {results}/ktstr.db with runs, cells,
 * attempts, verdicts and metrics. Every result is accepted exactly once:
 * a result for a fenced (superseded) attempt is recorded as stale. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

typedef struct kt_store kt_store_t;

int kt_store_open(const char *path, kt_store_t **ret);
void kt_store_close(kt_store_t **s_p);

/* A run and its inputs (run.json text). */
int kt_store_run_begin(kt_store_t *s, const char *run_id, const char *inputs_json);
int kt_store_run_end(kt_store_t *s, const char *run_id, const char *status);
/* Register a cell of a run (idempotent). */
int kt_store_cell_add(kt_store_t *s, const char *run_id, const char *cell_id, const char *name,
                      const char *kernel_label, const char *kernel_commit);
/* An attempt was assigned to a worker; older attempts of the cell are fenced. */
int kt_store_attempt_begin(kt_store_t *s, const char *run_id, const char *cell_id,
                           unsigned attempt, const char *worker);
/* An attempt ended without a result (worker lost, cancelled). */
int kt_store_attempt_lost(kt_store_t *s, const char *run_id, const char *cell_id, unsigned attempt,
                          const char *why);
/* Record a result. *ret_accepted is false when the attempt was fenced or the
 * cell already has a result (then the result is kept as stale). */
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
