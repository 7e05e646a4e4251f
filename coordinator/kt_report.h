/* What a run leaves behind and shows while it goes: the results layout
 * ({results}/{run_id}/run.json, {kernel_label}-{commit}/{cell}.ktstr.json
 * sidecars with their console logs), the live progress line on a TTY (plain
 * lines otherwise), the summary table at the end and the JUnit XML. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>

#include "kt_coord.h"
#include "kt_dispatch.h"

enum kt_report_progress {
    KT_REPORT_PROGRESS_AUTO = 0, /* TTY line when out is a terminal, else plain lines */
    KT_REPORT_PROGRESS_TTY,
    KT_REPORT_PROGRESS_PLAIN,
    KT_REPORT_PROGRESS_QUIET,    /* notes and the summary only */
};

typedef struct kt_report_config {
    const char *results_dir;     /* {results}; {results}/{run_id}/ is made */
    const kt_coord_run_t *run;   /* must outlive the report */
    FILE *out;                   /* progress, notes, summary (NULL: stdout) */
    enum kt_report_progress progress;
} kt_report_config_t;

typedef struct kt_report kt_report_t;

int kt_report_new(const kt_report_config_t *cfg, kt_report_t **ret);
void kt_report_free(kt_report_t **r_p);

/* {results}/{run_id} */
const char *kt_report_run_dir(const kt_report_t *r);

/* The directory and file stem of a cell's sidecar:
 * {run_dir}/{kernel_label}-{commit|nocommit}/{cell name, / as __}. */
int kt_report_cell_paths(const kt_report_t *r, const kt_coord_cell_t *cell, char *dir,
                         size_t dir_len, char *stem, size_t stem_len);

/* run.json, atomically: the run's inputs (caller's object, borrowed), its
 * kernels, schedulers and cells (with their verdicts so far), versions, the
 * workers as the last status snapshot saw them, and when given the summary.
 * status: running | done | interrupted | failed. ret_text (may be NULL)
 * receives the JSON text (caller owns). */
int kt_report_write_run_json(kt_report_t *r, json_t *inputs, const char *status,
                             const kt_dispatch_summary_t *sum, char **ret_text);

/* The dispatcher's write_result: the worker's sidecar plus run_id, attempt,
 * worker, kernel_commit, cell_name and timings.queue_ms (a coordinator's own
 * verdict gets a sidecar made here), and the console excerpt beside it. */
int kt_report_write_result(kt_report_t *r, const kt_dispatch_result_t *res, char *ret_path,
                           size_t len);

/* A cell that ended in an earlier invocation of this run (--resume) with
 * this verdict (the store's): its sidecar, when it is there, gives the
 * reason, worker and time for the summary and JUnit. 0, or -ENOENT when the
 * sidecar is missing (the cell still counts with the verdict). */
int kt_report_load_done(kt_report_t *r, unsigned cell_index, const char *verdict);

/* Lines: a finished cell, a note (also appended to {run_dir}/events.log),
 * a status snapshot (redraws the TTY line, or prints a plain status line
 * every 10 s; the workers in it are kept for run.json). */
void kt_report_cell_done(kt_report_t *r, const kt_coord_cell_t *cell, unsigned attempt,
                         const char *worker, const char *verdict, const char *reason);
void kt_report_note(kt_report_t *r, const char *line);
void kt_report_status(kt_report_t *r, const kt_dispatch_status_t *st);

/* The summary table (every cell of the run, earlier invocations included). */
void kt_report_summary(kt_report_t *r, const kt_dispatch_summary_t *sum);

/* JUnit XML: one testcase per cell, failure / error / skipped with the
 * reason. Written atomically. */
int kt_report_junit(kt_report_t *r, const char *path);

/* An HTML page of the run, atomically at path: the counts, a grid of
 * verdicts (rows scenario/topology, columns profile/kernel[/repeat]), each
 * square linked to its sidecar, and a table of every cell that did not
 * pass with its reason and links to its sidecar and console log (relative
 * to the run folder, so the folder can be moved or served as is). */
int kt_report_html(kt_report_t *r, const char *path);

/* Counts over every cell of the run known to the report (this invocation
 * and loaded ones). */
void kt_report_counts(const kt_report_t *r, unsigned *pass, unsigned *fail, unsigned *error,
                      unsigned *skip, unsigned *missing);

/* 0 all pass (skips are fine), 1 any fail, 2 any error (and no fail) or
 * cells without a verdict. */
int kt_report_exit_code(const kt_report_t *r);

/* An XML-safe copy of s (escaped, control characters and invalid UTF-8
 * replaced): caller owns. Exposed for the tests. */
char *kt_report_xml_escape(const char *s);
