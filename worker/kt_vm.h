/* The VM runner: boots one QEMU VM with direct kernel boot, the requested
 * topology, a console log file, QMP, and the host <-> guest channel
 * (virtio-serial port org.ktstr.0 over a unix socket), then drives the
 * channel: waits for the guest's "hello", sends the cell message, collects
 * heartbeats, events and the "result", and waits for power-off. Every phase
 * (boot, run, collect) has a timeout; on timeout the runner keeps the console
 * tail, stops QEMU (QMP quit, then SIGKILL) and reports the phase. QEMU is
 * started with PR_SET_PDEATHSIG(SIGKILL) so it never outlives the worker. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kt_topology.h"

enum kt_accel {
    KT_ACCEL_AUTO = 0,
    KT_ACCEL_KVM,
    KT_ACCEL_TCG,
};

enum kt_machine {
    KT_MACHINE_Q35 = 0,
    KT_MACHINE_MICROVM,
};

enum kt_vm_phase {
    KT_VM_PHASE_START = 0,   /* spawning QEMU */
    KT_VM_PHASE_BOOT,        /* QEMU started -> guest hello */
    KT_VM_PHASE_RUN,         /* cell sent -> result */
    KT_VM_PHASE_COLLECT,     /* result -> QEMU exited */
    KT_VM_PHASE_DONE,
};

const char *kt_accel_name(enum kt_accel a);
int kt_accel_parse(const char *s, enum kt_accel *ret);
const char *kt_vm_phase_name(enum kt_vm_phase p);

/* Called for every guest message; type is the message's "t". body/len is
 * the raw msgpack frame (valid during the call). Return <0 to abort the VM. */
typedef int (*kt_vm_msg_fn)(void *userdata, const char *type, const void *body, size_t len);

typedef struct kt_vm_config {
    const char *qemu;              /* NULL: "qemu-system-x86_64" */
    const char *kernel;            /* bzImage */
    const char *initrd;            /* lz4 cpio image */
    const char *cmdline_extra;     /* appended to the kernel command line */
    kt_topology_t topology;
    uint64_t memory_mib;
    enum kt_accel accel;           /* KVM or TCG (AUTO is resolved by the caller) */
    enum kt_machine machine;
    const char *workdir;           /* existing dir: console.log, sockets, qemu.log */
    /* Sent after the guest's hello; NULL: send {"t":"shutdown"} instead
     * (used by the canary boot). */
    const void *cell_msg;
    size_t cell_msg_len;
    uint32_t boot_timeout_ms;      /* QEMU start -> hello */
    uint32_t run_timeout_ms;       /* cell sent -> result (no heartbeat needed) */
    uint32_t collect_timeout_ms;   /* result -> QEMU exit */
    uint32_t heartbeat_timeout_ms; /* 0: off; else silence in RUN this long is a hang */
    kt_vm_msg_fn on_message;
    void *userdata;
} kt_vm_config_t;

typedef struct kt_vm_outcome {
    enum kt_vm_phase reached;      /* the last phase entered */
    bool timed_out;                /* in phase `reached` */
    bool got_hello;
    bool got_result;
    int qemu_status;               /* waitpid status, -1 if not reaped */
    int error;                     /* negative errno for infrastructure errors, 0 if none */
    char error_text[256];          /* what went wrong, for the reason */
    uint64_t start_ms;             /* spawning QEMU */
    uint64_t boot_ms;              /* QEMU spawned -> hello */
    uint64_t run_ms;               /* cell sent -> result */
    uint64_t collect_ms;           /* result -> QEMU exit */
    char console_path[512];
    char console_tail[4096];       /* last lines of the console */
} kt_vm_outcome_t;

void kt_vm_config_init(kt_vm_config_t *cfg);

/* Builds the QEMU argv for cfg (tests check it). Caller owns the vector
 * (NULL-terminated) and frees it with kt_vm_argv_free. */
int kt_vm_build_argv(const kt_vm_config_t *cfg, const char *chan_sock, const char *qmp_sock,
                     char ***ret_argv);
void kt_vm_argv_free(char ***argv_p);

/* Runs the VM to completion. Returns 0 when the VM ran (look at outcome for
 * the result / timeouts), negative errno when it could not be started. */
int kt_vm_run(const kt_vm_config_t *cfg, kt_vm_outcome_t *ret);
