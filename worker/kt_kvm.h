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

int kt_host_info_read(kt_host_info_t *ret);

/* Device-level checks only (no boot). */
void kt_kvm_probe_device(kt_kvm_status_t *ret);

/* Full check including the canary boot of `kernel` with `initrd` (an image
 * holding ktstr-init), under KVM. tcg_canary_ms receives a TCG canary boot
 * time when the KVM one fails and want_tcg_canary is set. */
int kt_kvm_check(const char *kernel, const char *initrd, const char *workdir, kt_kvm_status_t *ret);

/* Resolve AUTO to KVM or TCG given the status; -ENODEV for KVM requested
 * but unusable. */
int kt_accel_resolve(enum kt_accel requested, const kt_kvm_status_t *st, enum kt_accel *ret);
