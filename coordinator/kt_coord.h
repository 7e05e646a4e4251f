/* The coordinator's shared model: a run is a list of cells, each a cellspec
 * (what the worker needs) plus what only the coordinator knows (artifact
 * paths, size for packing, a time estimate for the budget). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kt_msg.h"

typedef struct kt_coord_kernel {
    char label[64];             /* from the image's release unless given */
    char version[64];
    char commit[48];            /* short hash, "-dirty" suffix; "" when not in git */
    char path[4096];            /* bzImage */
    char sha[KT_SHA_HEX];
    uint64_t size;
} kt_coord_kernel_t;

typedef struct kt_coord_sched {
    char name[KT_NAME_MAX];     /* "eevdf" or the binary's name */
    char path[4096];            /* "" for EEVDF */
    char sha[KT_SHA_HEX];
    uint64_t size;
} kt_coord_sched_t;

typedef struct kt_coord_cell {
    kt_cellspec_t spec;
    unsigned kernel;            /* index into run->kernels */
    unsigned sched;             /* index into run->scheds */
    unsigned vcpus;
    uint64_t memory_mib;
    uint32_t est_ms;            /* expected wall time, for the budget and ETA */
} kt_coord_cell_t;

typedef struct kt_coord_run {
    char run_id[40];
    char gauntlet_path[4096];
    unsigned n_kernels;
    kt_coord_kernel_t *kernels;
    unsigned n_scheds;
    kt_coord_sched_t *scheds;
    unsigned n_cells;
    kt_coord_cell_t *cells;
    unsigned commit_lookups;    /* libgit2 resolutions done (tests count them) */
} kt_coord_run_t;

void kt_coord_run_free(kt_coord_run_t *run);
