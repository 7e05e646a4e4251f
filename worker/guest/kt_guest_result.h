/* What ktstr-init sends to the host: hello, heartbeats, events and the
 * result message (documented key by key in worker/guest/README.md). The
 * result is a plain struct filled by the cell runner and packed here, so the
 * packing is tested on the host. */
#pragma once

#include <msgpack.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

#include "kt_checks.h"
#include "kt_guest_bpf.h"
#include "kt_guest_kmsg.h"
#include "kt_guest_payload.h"
#include "kt_guest_sched.h"
#include "kt_guest_topo.h"

enum kt_verdict {
    KT_VERDICT_PASS = 0,
    KT_VERDICT_FAIL,
    KT_VERDICT_ERROR,
    KT_VERDICT_SKIP,
};

const char *kt_verdict_name(enum kt_verdict v);

#define KT_GUEST_TIMELINE_MAX 512
#define KT_GUEST_EVENT_LEN 160
#define KT_GUEST_KLOG_MAX 64
#define KT_GUEST_KLOG_LEN 256
#define KT_GUEST_REASON_MAX 1024
#define KT_GUEST_KERNEL_MAX 65

typedef struct kt_guest_event {
    uint64_t ms;                         /* since the cell was received */
    char text[KT_GUEST_EVENT_LEN];
    /* A stimulus (a step's op): op != "". */
    char op[16];
    int step;
    unsigned phase;
    char cgroup[KT_NAME_MAX];
} kt_guest_event_t;

typedef struct kt_guest_sched_info {
    char name[KT_NAME_MAX];
    char ops[64];                        /* root/ops once enabled, "" otherwise */
    char state[32];                      /* sched_ext state at the end, "none" */
    double enable_ms;                    /* exec -> state enabled; 0 when never */
    bool exited;                         /* the process ended during the cell */
    int exit_status;                     /* exit code, -signal, 0 while running */
    char output[KT_GUEST_SCHED_OUTPUT_MAX]; /* last 4 KiB of stdout + stderr */
    kt_scx_exit_t exit;                  /* the kernel's exit report, "exit" */
} kt_guest_sched_info_t;

typedef struct kt_guest_result {
    enum kt_verdict verdict;
    char reason[KT_GUEST_REASON_MAX];
    const char *phase;                   /* channel topology sched_start cgroups run collect done */
    char kernel[KT_GUEST_KERNEL_MAX];
    bool debug_kernel;
    kt_guest_topo_t topo;
    kt_guest_sched_info_t sched;
    unsigned n_klog;
    char klog[KT_GUEST_KLOG_MAX][KT_GUEST_KLOG_LEN];
    unsigned n_timeline;
    kt_guest_event_t timeline[KT_GUEST_TIMELINE_MAX];
    /* Telemetry: "cgroups" lists the plan's cgroups only when stats is set
     * (the workers ran and were collected); "checks" only when report is. */
    const kt_plan_t *plan;
    const kt_worker_stats_t *stats;
    size_t n_stats;
    const kt_check_report_t *report;
    /* "thresholds": those in force (after the debug relaxation) and where
     * each came from; an empty map while NULL (no cell yet). */
    const kt_thresholds_t *thresholds;
    struct {
        double sched_enable_ms, settle_ms, workload_ms, collect_ms;
    } durations;
    /* ---- bpf: "bpf_progs" and "bpf_stats", always; NULL until the
     * workload phase ended (then measured or not, with the reason) ---- */
    const kt_guest_bpf_t *bpf;
    /* ---- payload cells: "payload" is in the result only when set ---- */
    const kt_guest_payload_t *payload;
} kt_guest_result_t;

void kt_guest_result_init(kt_guest_result_t *r);

/* Appends to the timeline (bounded: once full, the last entry says so). */
__attribute__((format(printf, 3, 4))) void kt_guest_result_event(kt_guest_result_t *r, uint64_t ms,
                                                                 const char *fmt, ...);
/* A stimulus event: a step's op applied at ms (phase: the one it opens). */
__attribute__((format(printf, 7, 8))) void
kt_guest_result_stimulus(kt_guest_result_t *r, uint64_t ms, unsigned step, unsigned phase,
                         const char *op, const char *cgroup, const char *fmt, ...);
/* Keeps one kernel log line (bounded; truncated to KT_GUEST_KLOG_LEN). */
void kt_guest_result_klog(kt_guest_result_t *r, const char *line);

/* Each appends one msgpack map to out. 0 or -ENOMEM. Strings are made valid
 * UTF-8 (invalid bytes become '?') since the host turns them into JSON. */
int kt_guest_result_pack(const kt_guest_result_t *r, msgpack_sbuffer *out);
int kt_guest_hello_pack(const kt_guest_topo_t *t, const char *kernel, bool debug_kernel,
                        msgpack_sbuffer *out);
int kt_guest_hb_pack(uint64_t uptime_ms, msgpack_sbuffer *out);
int kt_guest_event_pack(uint64_t uptime_ms, const char *phase, const char *msg,
                        msgpack_sbuffer *out);
