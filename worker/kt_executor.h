/* How a worker runs an assigned cell. The daemon does not care what happens
 * inside: the VM executor boots the cell through kt_runcell; the null and
 * sleep executors exist for benchmarks and protocol tests (they finish at
 * once, or hold a slot for a fixed time without using CPU) and always say so
 * in their sidecars ("executor": "null"). */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kt_msg.h"
#include "kt_vm.h"

typedef struct kt_exec_result {
    char verdict[8];
    char reason[1024];
    char *sidecar;          /* JSON text, caller owns */
    size_t sidecar_len;
    char *console;          /* console excerpt, caller owns, may be NULL */
    size_t console_len;
} kt_exec_result_t;

void kt_exec_result_clear(kt_exec_result_t *r);

typedef struct kt_executor {
    const char *name;       /* "vm", "null", "sleep" */
    /* Runs the cell to completion (called on a worker thread). kernel and
     * sched are local paths of verified artifacts (sched NULL for EEVDF); a
     * payload cell's binary (plan.payload.sha) is a verified artifact in the
     * same directory as the kernel, named by its sha.
     * cancel is set when the coordinator cancels the attempt. */
    int (*run)(void *userdata, const kt_cellspec_t *spec, uint32_t attempt, const char *kernel,
               const char *sched, atomic_bool *cancel, kt_exec_result_t *ret);
    void *userdata;
} kt_executor_t;

typedef struct kt_vm_executor_config {
    enum kt_accel accel;    /* resolved: KVM or TCG */
    const char *accel_reason; /* why (the canary's verdict), copied into sidecars */
    const char *work_dir;   /* sidecars and console logs of this worker */
    const char *image_dir;  /* NULL: default */
    unsigned boot_tries;    /* boots of a cell's VM at most (kt_runcell_boot_retryable);
                             * 0: 1 + KT_RUNCELL_BOOT_RETRIES */
} kt_vm_executor_config_t;

/* cfg must outlive the executor. */
kt_executor_t kt_executor_vm(const kt_vm_executor_config_t *cfg);
kt_executor_t kt_executor_null(void);
/* sleep_ms is stored in a static per process; benches set it once. */
kt_executor_t kt_executor_sleep(uint32_t sleep_ms);
