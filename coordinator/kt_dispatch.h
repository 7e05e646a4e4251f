/* Dispatch: sessions with every worker, packing cells by vCPUs and memory
 * (largest first, never oversubscribing a worker), artifacts shipped once per
 * worker by sha256 with credit-based chunking, heartbeats both ways, lost
 * workers' cells requeued as attempt+1 with the old attempt fenced, at most
 * max_attempts, every result accepted exactly once (through the store). */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "kt_coord.h"
#include "kt_hosts.h"
#include "kt_store.h"

typedef struct kt_dispatch_events {
    /* A cell ended (accepted result, or error after max attempts). */
    void (*cell_done)(void *ud, const kt_coord_cell_t *cell, unsigned attempt, const char *worker,
                      const char *verdict, const char *reason, const char *sidecar_json,
                      size_t sidecar_len, const char *console, size_t console_len);
    /* Anything worth a line: worker joined/lost, requeue, stale result... */
    void (*note)(void *ud, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
    void *userdata;
} kt_dispatch_events_t;

typedef struct kt_dispatch_config {
    const kt_host_t *hosts;         /* endpoints to connect to */
    unsigned n_hosts;
    const char *curve_secret;       /* our cert (secret) file, NULL: plain */
    uint32_t heartbeat_ms;          /* 1000 */
    uint32_t lost_after_ms;         /* 5000 */
    unsigned max_attempts;          /* 3 */
    uint32_t lease_slack_ms;        /* added to a cell's estimate for its lease */
    uint32_t no_worker_timeout_ms;  /* give up when no worker answers this long (0: 60 s) */
    kt_store_t *store;              /* may be NULL (benchmarks) */
    kt_dispatch_events_t events;
} kt_dispatch_config_t;

typedef struct kt_dispatch_summary {
    unsigned done, pass, fail, error, skip;
    unsigned requeued, stale;
    uint64_t wall_ms;
} kt_dispatch_summary_t;

/* Runs the cells of run whose bit in todo is set (NULL: all) to completion.
 * 0, or -errno when nothing could run at all (no worker reachable). */
int kt_dispatch_run(const kt_dispatch_config_t *cfg, kt_coord_run_t *run, const bool *todo,
                    kt_dispatch_summary_t *ret);
