/* Running a prepared run: the embedded worker when no workers are given
 * (the same worker code as `ktstr-worker serve`, on a private ipc://
 * endpoint), the dispatcher with the report as its events, and the end of
 * the run (run.json, summary, JUnit, the store's status). `ktstr-coord run`
 * and `ktstr-coord selftests` both end here, so a selftest run is printed,
 * stored and reported exactly as a gauntlet is. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "kt_coord.h"
#include "kt_hosts.h"
#include "kt_report.h"
#include "kt_store.h"

typedef struct kt_runexec_opts {
    const char *verb;               /* for messages: "run", "selftests" */
    const kt_host_t *hosts;         /* NULL / 0: the embedded worker */
    unsigned n_hosts;
    const char *curve_secret;
    uint32_t heartbeat_ms, lost_after_ms;   /* 0: defaults */
    unsigned max_attempts;          /* 0: 3 */
    /* The embedded worker only. */
    const char *executor;           /* "vm" (NULL), "null", "sleep:MS" */
    const char *accel;              /* "auto" (NULL), "kvm", "tcg" */
    unsigned local_vcpus;           /* 0: the host's CPUs, at least the largest cell */
    uint64_t local_memory_mib;      /* 0: 3/4 of the host's */
    const char *junit;              /* NULL: none */
} kt_runexec_opts_t;

/* Runs the cells of run whose todo bit is set (n_todo of them; 0 runs
 * nothing and only finishes the reports), with report as the dispatcher's
 * events (run.json is rewritten every 30 s from inputs), then writes the
 * final run.json, the summary, the JUnit file and ends the run in store.
 * ret_status (may be NULL) receives "done", "interrupted" or "failed".
 * Returns the exit status: kt_report_exit_code, or 2 when the embedded
 * worker could not start. */
int kt_runexec(const kt_runexec_opts_t *o, kt_coord_run_t *run, kt_store_t *store,
               kt_report_t *report, json_t *inputs, const bool *todo, unsigned n_todo,
               const char **ret_status);
