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
    const char *qemu;              /* NULL: $KTSTR_QEMU, else "qemu-system-x86_64" (PATH) */
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
    /* Added. Under TCG the guest's TSC runs at the host's TSC rate, but the
     * guest often fails to calibrate it on a busy host ("tsc: Unable to
     * calibrate against PIT"; on microvm, with no HPET or PM timer, it then
     * hangs). So under TCG the runner passes tsc_early_khz=<rate>
     * tsc=reliable. 0: measure the host's rate (once per process); set it
     * to make the command line reproducible (tests). Ignored under KVM. */
    uint32_t tcg_tsc_khz;
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
    /* Added: QEMU's own first error line (from workdir/qemu.log) when it
     * exited abnormally or stopped the guest, e.g. "KVM internal error.
     * Suberror: 1"; empty otherwise. Also quoted in error_text. */
    char qemu_message[256];
    char qemu_log_path[512];
    bool qemu_exited_early;        /* QEMU exited before the phase's goal */
    char vm_state[32];             /* QMP run state when the guest stopped ("internal-error") */
} kt_vm_outcome_t;

void kt_vm_config_init(kt_vm_config_t *cfg);

/* Builds the QEMU argv for cfg (tests check it). Caller owns the vector
 * (NULL-terminated) and frees it with kt_vm_argv_free. */
int kt_vm_build_argv(const kt_vm_config_t *cfg, const char *chan_sock, const char *qmp_sock,
                     char ***ret_argv);
void kt_vm_argv_free(char ***argv_p);

/* Runs the VM to completion. Returns 0 when the VM ran (look at outcome for
 * the result / timeouts), negative errno when it could not be started.
 *
 * Outcome, in short: got_result with reached == DONE is a clean run.
 * Otherwise error_text says what happened: a phase timeout (timed_out), a
 * silent guest in RUN (timed_out, "hang"), QEMU exiting before its time
 * (qemu_exited_early, qemu_status, e.g. a kernel panic: panic=-1 and
 * -no-reboot make QEMU exit), the guest stopped by QEMU (vm_state, e.g. a
 * KVM internal error), or a host-side failure (error < 0). console_tail
 * holds the end of the console in every case.
 *
 * Synchronous. QEMU is started with PR_SET_PDEATHSIG(SIGKILL), which fires
 * when the *thread* that forked it exits: call this from a thread that lives
 * until it returns (it always does, being synchronous; do not hand the VM
 * to another thread). Blocks no signals; the caller's SIGCHLD disposition
 * must not be SIG_IGN (QEMU is reaped with waitpid). */
int kt_vm_run(const kt_vm_config_t *cfg, kt_vm_outcome_t *ret);

/* The kernel command line the runner uses (before the TCG clock options and
 * cmdline_extra), for logs and tests. */
const char *kt_vm_base_cmdline(enum kt_machine m);
const char *kt_machine_name(enum kt_machine m);
int kt_machine_parse(const char *s, enum kt_machine *ret);

/* The last at most len - 1 bytes of a text file, starting at a line
 * boundary, with control characters other than newline and tab replaced.
 * 0 or negative errno; buf is always NUL-terminated. */
int kt_vm_file_tail(const char *path, char *buf, size_t len);

/* The host's TSC rate in kHz, measured once per process (about 20 ms), or
 * 0 when the host has no constant, non-stop TSC to lend the guest. */
uint32_t kt_vm_host_tsc_khz(void);
