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

/* One result as the dispatcher hands it to the report, before it is stored:
 * a worker's RESULT, or a verdict the coordinator reached itself (the cell
 * was lost max_attempts times, fits no worker, or no worker came). */
typedef struct kt_dispatch_result {
    const kt_coord_cell_t *cell;
    unsigned index;             /* into run->cells */
    unsigned attempt;
    const char *worker;         /* worker id; "coordinator" for our own verdicts */
    const char *verdict;
    const char *reason;
    const char *sidecar;        /* the worker's sidecar JSON; NULL for our own verdicts */
    size_t sidecar_len;
    const char *console;        /* console excerpt, may be NULL */
    size_t console_len;
    uint64_t queue_ms;          /* queued (or requeued) -> assigned, this attempt */
    uint64_t run_ms;            /* assigned -> result, this attempt */
    bool from_coordinator;
} kt_dispatch_result_t;

/* A worker as the dispatcher sees it (status snapshots). */
typedef struct kt_dispatch_worker_status {
    const char *name;           /* hosts file name (or host:port) */
    const char *endpoint;
    const char *state;          /* connecting | up | draining | lost | refused */
    const char *worker_id;      /* "" until HELLO */
    const char *arch;
    const char *accel;
    unsigned host_cpus;
    unsigned max_vcpus;
    uint32_t canary_ms;
    unsigned running;           /* our cells there now */
    unsigned used_vcpus, cap_vcpus;  /* ours / what we may use there */
    unsigned done;              /* results accepted from it */
    unsigned sessions;          /* sessions opened (reconnects + 1) */
    const char *why;            /* last refusal / loss / auth problem, "" */
} kt_dispatch_worker_status_t;

typedef struct kt_dispatch_status {
    unsigned total;             /* cells to run this time */
    unsigned done, pass, fail, error, skip;
    unsigned running, queued;
    unsigned requeued, stale;
    uint64_t elapsed_ms;
    uint64_t est_left_ms;       /* sum of est_ms over queued and running cells */
    unsigned n_workers;
    const kt_dispatch_worker_status_t *workers;
} kt_dispatch_status_t;

typedef struct kt_dispatch_events {
    /* A cell ended (accepted result, or error after max attempts). */
    void (*cell_done)(void *ud, const kt_coord_cell_t *cell, unsigned attempt, const char *worker,
                      const char *verdict, const char *reason, const char *sidecar_json,
                      size_t sidecar_len, const char *console, size_t console_len);
    /* Anything worth a line: worker joined/lost, requeue, stale result... */
    void (*note)(void *ud, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
    void *userdata;
    /* Optional. Called for a result the dispatcher is about to accept,
     * before the store records it: write the sidecar and console log and put
     * the sidecar's path in ret_path (recorded in the store). A failure is
     * noted; the result is still stored. */
    int (*write_result)(void *ud, const kt_dispatch_result_t *r, char *ret_path, size_t len);
    /* Optional. An ASSIGN for this attempt went out to worker (benchmarks
     * take assign -> result latency from here to cell_done). */
    void (*assigned)(void *ud, const kt_coord_cell_t *cell, unsigned attempt, const char *worker);
    /* Optional. A snapshot every status_ms while something changes, and once
     * at the end. Valid during the call only. */
    void (*status)(void *ud, const kt_dispatch_status_t *st);
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
    uint32_t status_ms;             /* status snapshots (0: 250 ms) */
    const char *coordinator_id;     /* sent in OPEN; NULL: the run id (a worker re-offers
                                     * journaled results to the same coordinator id) */
} kt_dispatch_config_t;

typedef struct kt_dispatch_summary {
    unsigned done, pass, fail, error, skip;
    unsigned requeued, stale;
    uint64_t wall_ms;
    unsigned workers_used;          /* workers that opened a session */
    char why[512];                  /* why nothing could run (with a -errno return) */
} kt_dispatch_summary_t;

/* Runs the cells of run whose bit in todo is set (NULL: all) to completion.
 * 0, or -errno when nothing could run at all (no worker reachable:
 * -EHOSTUNREACH; every worker refused our key: -EACCES; ret->why says
 * which and why), -EINTR when interrupted (SIGINT/SIGTERM: cells not done
 * stay undone, for --resume). run->cells[].spec.run_id is set to run_id. */
int kt_dispatch_run(const kt_dispatch_config_t *cfg, kt_coord_run_t *run, const bool *todo,
                    kt_dispatch_summary_t *ret);
