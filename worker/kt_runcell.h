/* Running one cell on this host: resolve the scenario against the topology,
 * build (or find) the shared base image, boot the VM, drive ktstr-init, and
 * turn what came back into a verdict and a sidecar. The embedded worker of
 * ktstr-coord and `ktstr-worker run-cell` both go through here. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "kt_scenario.h"
#include "kt_vm.h"

typedef struct kt_cell_request {
    const char *kernel;            /* bzImage */
    const char *kernel_label;      /* NULL: the image's release */
    const char *kernel_commit;     /* NULL: unknown */
    kt_topology_t topology;
    const kt_scenario_t *scenario;  /* or NULL with plan set */
    const kt_plan_t *plan;         /* already resolved (fleet cells): skips fit/resolve */
    uint64_t memory_mib;           /* with plan: the VM's memory; 0: the topology default */
    const char *cell_id;           /* NULL: hashed from the cell's content */
    const char *scheduler;         /* sched_ext binary, NULL for EEVDF */
    const char *sched_args;        /* split on blanks, NULL for none */
    const char *profile;           /* flag profile name, NULL: "default" */
    uint32_t duration_ms;          /* 0: the scenario's */
    enum kt_accel accel;           /* AUTO runs the KVM check first */
    const char *accel_reason;      /* why accel was chosen, when the caller chose it */
    enum kt_machine machine;
    const char *out_dir;           /* sidecar and console log go here */
    const char *cell_name;         /* NULL: cell/{scenario}/{topo}/{sched}/{kernel} */
    const char *image_dir;         /* NULL: $KTSTR_IMAGE_DIR, else /dev/shm */
    const char *init_path;         /* NULL: kt_runcell_find_init() */
    const char *busybox_path;      /* NULL: /bin/busybox */
    const char *run_id;            /* NULL for a standalone cell */
    unsigned attempt;              /* 0 is taken as 1 */
    double timeout_scale;          /* 0: 1.0 for KVM, 4.0 for TCG */
    /* Boots of a VM that never reached ktstr-init are tried again this many
     * times when kt_runcell_boot_retryable() says the cause may be the host's
     * (kt_cell_request_init: KT_RUNCELL_BOOT_RETRIES; 0: never). */
    unsigned boot_retries;
    /* --work-type: every cgroup runs this work type instead of its own
     * (kt_scenario_override_work before resolution; with plan,
     * kt_plan_override_work). The sidecar records it as work_type_override
     * (absent without one) and the default cell name reads
     * cell/{scenario}+{type}/... */
    bool override_work;
    enum kt_work_type work_type;
    /* ---- payload cells (kt_payload.h) ---- */
    const kt_payload_spec_t *payload; /* with scenario (workers beside it) or alone (the plan
                                       * is then the payload only); with plan: NULL, the
                                       * plan carries it */
    const char *payload_path;      /* the binary on this host, for payload or plan->payload */
} kt_cell_request_t;

typedef struct kt_cell_outcome {
    char verdict[8];
    char reason[1024];
    char phase[16];
    char cell_id[65];
    char sidecar_path[4096];
    enum kt_accel accel;
} kt_cell_outcome_t;

#define KT_RUNCELL_BOOT_RETRIES 1

void kt_cell_request_init(kt_cell_request_t *req);

/* Whether a VM whose outcome is vo should be booted once more. Only when it
 * never reached ktstr-init (no hello: nothing of the cell ran, nothing was
 * measured) and the cause may be the emulator rather than the kernel: QEMU
 * died by a signal the runner did not send (QEMU 7.2's TCG has crashed here
 * in memory_region_dispatch_write during boot), the guest oopsed or panicked
 * before init (a TCG vCPU running stale code over a half-patched jump), or
 * the boot timed out. Not when QEMU itself refused to start (an exit status
 * with its message: a bad option or a missing firmware repeats), the guest
 * was stopped by QEMU (internal-error: KVM refusing the guest repeats), or
 * the VM could not be spawned. why (may be NULL) gets the cause in words. */
bool kt_runcell_boot_retryable(const kt_vm_outcome_t *vo, char *why, size_t len);

/* Path of the ktstr-init binary to put into images: $KTSTR_INIT, else the
 * build tree's, else the installed one. NULL when none exists. */
const char *kt_runcell_find_init(void);

/* Runs the cell. Returns 0 when a verdict was reached and a sidecar written
 * (whatever the verdict), negative errno when not even that was possible
 * (outcome->reason says why). */
int kt_runcell(const kt_cell_request_t *req, kt_cell_outcome_t *ret);
