/* The coordinator's shared model: a run is a list of cells, each a cellspec
 * (what the worker needs) plus what only the coordinator knows (artifact
 * paths, size for packing, a time estimate for the budget). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kt_gauntlet.h"
#include "kt_msg.h"

typedef struct kt_coord_kernel {
    char label[64]; /* from the image's release unless given */
    char version[64];
    char commit[48]; /* short hash, "-dirty" suffix; "" when not in git */
    char path[4096]; /* bzImage */
    char sha[KT_SHA_HEX];
    uint64_t size;
} kt_coord_kernel_t;

typedef struct kt_coord_sched {
    char name[KT_NAME_MAX]; /* "eevdf" or the binary's name */
    char path[4096];        /* "" for EEVDF */
    char sha[KT_SHA_HEX];
    uint64_t size;
    int kernel;             /* from_kernel: the run kernel it belongs to; else -1 */
} kt_coord_sched_t;

typedef struct kt_coord_cell {
    kt_cellspec_t spec;
    unsigned kernel; /* index into run->kernels */
    unsigned sched;  /* index into run->scheds */
    unsigned vcpus;
    uint64_t memory_mib;
    uint32_t est_ms; /* expected wall time (static), for leases, budget and ETA */
    uint32_t hist_ms; /* the median time this cell took in earlier runs of the run
                       * store; 0: unknown. Budget and ETA prefer it; leases
                       * keep est_ms (a worker may be slower than the last one) */
} kt_coord_cell_t;

/* What a cell is expected to take, for the budget and the ETA. */
static inline uint32_t kt_coord_cell_expect_ms(const kt_coord_cell_t *c)
{
    return c->hist_ms ? c->hist_ms : c->est_ms;
}

typedef struct kt_coord_run {
    char run_id[40];
    char gauntlet_path[4096];
    unsigned n_kernels;
    kt_coord_kernel_t *kernels;
    unsigned n_scheds;
    kt_coord_sched_t *scheds;
    /* The gauntlet's schedulers by kernel: sched_map[k * n_gscheds + s] is
     * the index in scheds of gauntlet scheduler s on run kernel k (a
     * from_kernel scheduler has one binary per kernel). NULL: scheds is the
     * gauntlet's list itself (kt_coord_run_sched). */
    unsigned n_gscheds;
    unsigned *sched_map;
    unsigned n_cells;
    kt_coord_cell_t *cells;
    unsigned commit_lookups; /* libgit2 resolutions done (tests count them) */
    unsigned n_filtered;     /* cells the scenarios' constraints excluded */
    /* Payload binaries the cells' plans name by sha (plan.payload.sha):
     * shipped to workers like the schedulers. NULL / 0 when none. */
    unsigned n_payloads;
    kt_coord_sched_t *payloads;
} kt_coord_run_t;

/* The index in run->scheds of gauntlet scheduler s on run kernel k. */
static inline unsigned kt_coord_run_sched(const kt_coord_run_t *run, unsigned k, unsigned s)
{
    return run->sched_map ? run->sched_map[(size_t)k * run->n_gscheds + s] : s;
}

/* Frees what run holds and zeroes it; NULL-safe, usable as a _cleanup_. */
void kt_coord_run_free(kt_coord_run_t *run);

/* Builds a run from a gauntlet: resolves each kernel once (label, version,
 * sha256, and the commit map: one libgit2 lookup per kernel, not per cell;
 * spec entries from the kernel cache, building nothing),
 * hashes each scheduler binary and each payload binary (the gauntlet's
 * payloads and its scenarios' payload:) once into run->payloads, then
 * expands the matrix. run_id is left
 * empty (kt_coord_run_set_id). On failure ret is untouched and err reads
 * "FILE: kernels[i]: what" or the matrix's error. */
int kt_coord_run_prepare(const kt_gauntlet_t *g, kt_coord_run_t *ret, char *err, size_t err_len);
/* The same with the kernels resolved (and built) already, replacing the
 * gauntlet's: `run` resolves --kernel specs or the gauntlet's once, builds
 * what is missing, then calls this. kernels is copied. */
int kt_coord_run_prepare_kernels(const kt_gauntlet_t *g, const kt_coord_kernel_t *kernels,
                                 unsigned n_kernels, kt_coord_run_t *ret, char *err,
                                 size_t err_len);

/* Adds the payload binary at path to run->payloads (an array of cap entries
 * the caller allocated), stat'ed and hashed once: a path already there is
 * found, not hashed again. *ret_index gets its index; its name is the file
 * name, which the guest runs as /payload/{name}. -errno with why reading
 * "'PATH': what" (no file, not regular, unreadable, name too long, -E2BIG
 * past cap). The selftests' runner and a gauntlet's payloads go this way. */
int kt_coord_run_add_payload(kt_coord_run_t *run, unsigned cap, const char *path,
                             unsigned *ret_index, char *why, size_t why_len);
/* A plan's payload spec names the binary at run->payloads[index]: its sha
 * and size. */
void kt_coord_payload_stamp(const kt_coord_run_t *run, unsigned index, kt_payload_spec_t *spec);

/* A new run id "YYYYMMDD-HHMMSS-xxxxxx" (UTC, 6 random hex digits). */
void kt_coord_run_id_new(char buf[40]);
/* Sets run->run_id and every cell's spec.run_id. -EINVAL for an id that is
 * not 1..39 of [A-Za-z0-9_.-]. */
int kt_coord_run_set_id(kt_coord_run_t *run, const char *run_id);
