/* Gauntlet files (YAML): kernels x schedulers (with flag profiles) x
 * topologies x scenarios, a duration and repetitions. Relative paths resolve
 * against the file's folder. Errors read "FILE:LINE:COL: ...". */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kt_scenario.h"
#include "kt_topology.h"

#define KT_GAUNTLET_MAX_FLAGS 12
#define KT_GAUNTLET_MAX_ARGS 16

typedef struct kt_gauntlet_kernel {
    char spec[4096];            /* a kernel spec (kt_kspec.h); a path entry's is its path */
    char path[4096];            /* absolute; "" for an entry given as a spec */
    char label[64];             /* "" : from the image (a range's members: their versions) */
} kt_gauntlet_kernel_t;

typedef struct kt_gauntlet_flag {
    char name[KT_NAME_MAX];
    unsigned n_args;
    char args[KT_GAUNTLET_MAX_ARGS][128];
    unsigned n_requires;
    char requires[KT_GAUNTLET_MAX_FLAGS][KT_NAME_MAX];
} kt_gauntlet_flag_t;

typedef struct kt_gauntlet_sched {
    char name[KT_NAME_MAX];     /* "eevdf" (no binary) or a name */
    char binary[4096];          /* absolute, "" for eevdf and from_kernel */
    /* `from_kernel: NAME`: each kernel's own build of the scheduler, the file
     * bin/NAME beside its bzImage (a kernel cache entry's, or the layout of
     * ../shared/kernels); "" otherwise. Resolved per kernel by the run. */
    char from_kernel[KT_NAME_MAX];
    unsigned n_args;            /* always-on arguments */
    char args[KT_GAUNTLET_MAX_ARGS][128];
    unsigned n_flags;
    kt_gauntlet_flag_t flags[KT_GAUNTLET_MAX_FLAGS];
    /* `checks:`: a threshold layer (checks.set = 0 when absent) merged
     * between the defaults and the scenario's (kt_thresholds_layer). */
    kt_thresholds_t checks;
} kt_gauntlet_sched_t;

typedef struct kt_gauntlet_topology {
    char name[KT_NAME_MAX];     /* preset name, or the label for N,L,C,T */
    bool preset;
    kt_topology_t topo;
} kt_gauntlet_topology_t;

/* A payload entry: a static binary run in the guest as a cell's workload,
 * alone or beside a scenario's workers; one matrix axis value. */
typedef struct kt_gauntlet_payload {
    char name[KT_NAME_MAX];     /* names its cells: gauntlet/{name}/... */
    char binary[4096];          /* absolute */
    kt_payload_spec_t spec;     /* spec.name: the binary's file name; sha "" (hashed by
                                 * kt_coord_run_prepare) */
    bool has_scenario;
    kt_scenario_t scenario;     /* run beside, when has_scenario (it has no payload) */
} kt_gauntlet_payload_t;

typedef struct kt_gauntlet {
    char path[4096];
    char dir[4096];
    unsigned n_kernels;
    kt_gauntlet_kernel_t *kernels;
    unsigned n_scheds;
    kt_gauntlet_sched_t *scheds;
    unsigned n_topologies;
    kt_gauntlet_topology_t *topologies;
    unsigned n_scenarios;
    kt_scenario_t *scenarios;
    unsigned n_payloads;        /* `payloads:`: a scenario-like axis (0 when absent) */
    kt_gauntlet_payload_t *payloads;
    uint32_t duration_ms;       /* 0: each scenario's */
    unsigned repeat;            /* >= 1 */
    /* work_type: every cgroup of every scenario runs this work type (as
     * `ktstr-worker run-cell --work-type`); cells then read
     * gauntlet/{scenario}+{type}/... */
    bool override_work;
    enum kt_work_type work_type;
} kt_gauntlet_t;

int kt_gauntlet_load(const char *path, kt_gauntlet_t **ret, char *err, size_t err_len);
int kt_gauntlet_parse(const char *text, size_t len, const char *origin, const char *base_dir,
                      kt_gauntlet_t **ret, char *err, size_t err_len);
void kt_gauntlet_free(kt_gauntlet_t **g_p);

/* A scheduler's flag profiles: the power set of its flags minus those with
 * an unmet `requires`, named "default" (no flag) or "a+b" in declaration
 * order. ret_masks[i] has bit f set when flag f is on. Returns the count. */
unsigned kt_gauntlet_profiles(const kt_gauntlet_sched_t *s, uint32_t *ret_masks, unsigned max);
void kt_gauntlet_profile_name(const kt_gauntlet_sched_t *s, uint32_t mask, char *buf, size_t len);
