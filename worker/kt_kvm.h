/* KVM check: /dev/kvm present and openable, KVM_GET_API_VERSION = 12, and a
 * canary boot of a real kernel that must reach ktstr-init within a bound.
 * --accel auto falls back to TCG and says why; --accel kvm refuses. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "kt_vm.h"

typedef struct kt_kvm_status {
    bool present;                  /* /dev/kvm exists */
    bool openable;
    int api_version;               /* -1 when not read */
    bool usable;                   /* canary boot reached ktstr-init under KVM */
    uint64_t canary_ms;            /* boot time of the canary that decided */
    char reason[256];              /* why not usable, or "ok" */
} kt_kvm_status_t;

typedef struct kt_host_info {
    unsigned cpus;
    unsigned llcs;
    uint64_t memory_mib;
} kt_host_info_t;

/* CPUs online, last-level cache groups (distinct shared_cpu_list of each
 * online CPU's highest-level cache; L3 on usual hosts) and MemTotal. */
int kt_host_info_read(kt_host_info_t *ret);

/* Device-level checks only (no boot). */
void kt_kvm_probe_device(kt_kvm_status_t *ret);

/* Full check including the canary boot of `kernel` with `initrd` (an image
 * holding ktstr-init), under KVM, bounded by KT_KVM_CANARY_BOUND_MS. The
 * canary's console.log and qemu.log go to workdir (NULL: a temporary
 * directory, removed afterwards). Fills *ret in every case; returns 0 when
 * the check ran (look at ret->usable and ret->reason), -EINVAL for missing
 * arguments. A TCG canary is kt_canary_boot(KT_ACCEL_TCG, ...). */
int kt_kvm_check(const char *kernel, const char *initrd, const char *workdir, kt_kvm_status_t *ret);

/* Added: one canary boot under accel: the guest (ktstr-init) must say
 * hello on the channel (or at least print KTSTR_INIT_READY on the console)
 * within bound_ms; it is then told to shut down. */
#define KT_KVM_CANARY_BOUND_MS 20000u
#define KT_TCG_CANARY_BOUND_MS 120000u

typedef struct kt_canary {
    bool ok;                       /* the guest reached ktstr-init */
    bool hello;                    /* ... and said hello on the channel */
    uint64_t boot_ms;              /* QEMU spawned -> hello (0 when none) */
    uint64_t total_ms;             /* the whole canary, power-off included */
    char reason[256];              /* "ok" or what happened, quoting QEMU */
} kt_canary_t;

int kt_canary_boot(enum kt_accel accel, const char *kernel, const char *initrd,
                   const char *workdir, uint32_t bound_ms, kt_canary_t *ret);

/* Resolve AUTO to KVM or TCG given the status; -ENODEV for KVM requested
 * but unusable. */
int kt_accel_resolve(enum kt_accel requested, const kt_kvm_status_t *st, enum kt_accel *ret);

/* The accelerator VMs on this host will use. TCG when asked; otherwise KVM
 * only after a canary boot of `kernel` with an image holding ktstr-init (in
 * image_dir, NULL: $KTSTR_IMAGE_DIR or /dev/shm) reached ktstr-init under
 * KVM. The verdict is a property of the host: with use_cache it is kept per
 * boot for an hour in /dev/shm/ktstr-accel-{uid}-{boot_id}
 * (KTSTR_NO_ACCEL_CACHE=1 disables it); only a canary that reached
 * ktstr-init can make it say KVM. kernel may be NULL: no canary, so no KVM.
 * ret_status receives the reason (ending in "(cached)" when it came from the
 * cache). -ENODEV when KVM was requested and is unusable. */
int kt_accel_choose(enum kt_accel requested, const char *kernel, const char *image_dir,
                    bool use_cache, enum kt_accel *ret, kt_kvm_status_t *ret_status);
