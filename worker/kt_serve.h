/* ktstr-worker serve: the worker daemon. Binds a ROUTER socket, serves any
 * number of coordinator sessions, shares its capacity (vCPUs, memory) among
 * them and never oversells it, fetches artifacts by sha256 into its cache,
 * runs cells on executor threads, journals finished results until they are
 * acknowledged and re-offers them to a coordinator that comes back. SIGTERM
 * (or kt_serve_drain) drains: running cells finish, nothing new is taken. */
#pragma once

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>

#include "kt_executor.h"

typedef struct kt_serve_config {
    const char *bind;               /* "tcp://ADDR:7461" (ADDR * for all), "ipc://...", "inproc://..." */
    const char *worker_id;          /* NULL: hostname */
    const char *cache_dir;          /* artifacts and journal; NULL: /var/cache/ktstr or ~/.cache/ktstr */
    kt_executor_t executor;
    const char *accel_name;         /* advertised: "kvm" | "tcg" */
    uint32_t canary_ms;
    uint32_t capacity_vcpus;        /* 0: host CPUs (x4 under TCG is NOT assumed) */
    uint64_t capacity_memory_mib;   /* 0: 3/4 of host memory */
    uint32_t max_vcpus_per_vm;      /* 0: capacity_vcpus */
    uint32_t heartbeat_ms;          /* 0: 1000 */
    uint32_t lost_after_ms;         /* 0: 5000 */
    const char *curve_secret;       /* our secret cert file; NULL: no CURVE */
    const char *allow_dir;          /* coordinator public certs allowed */
    bool insecure;                  /* allow a non-loopback bind without CURVE */
} kt_serve_config_t;

/* The daemon as a czmq actor (for the coordinator's embedded worker and for
 * tests): the pipe receives "$TERM" (stop now) or "DRAIN"; it signals ready
 * once bound, or sends an error string and exits when it cannot bind.
 * cfg (and what it points to) must outlive the actor. */
zactor_t *kt_serve_actor_new(const kt_serve_config_t *cfg);
void kt_serve_actor(zsock_t *pipe, void *args);

/* Blocking entry for `ktstr-worker serve`: runs until SIGINT, drains on
 * SIGTERM. Returns the exit status. */
int kt_serve_main(const kt_serve_config_t *cfg);
