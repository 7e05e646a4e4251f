/* Matrix expansion: kernels x schedulers x profiles x topologies x
 * scenarios x repetitions into cells, filtered by scenario constraints, with
 * stable cell ids (a hash of the cell's content) and names
 * gauntlet/{scenario}/{preset}/{profile}/{kernel_label}; and greedy budget
 * selection for coverage. */
#pragma once

#include <stdint.h>

#include "kt_coord.h"
#include "kt_gauntlet.h"

/* Fills run->cells from the gauntlet; run->kernels and run->scheds must be
 * resolved already (same order as the gauntlet's). Cells a scenario's
 * constraints exclude are left out (ret_filtered counts them). */
int kt_matrix_expand(const kt_gauntlet_t *g, kt_coord_run_t *run, unsigned *ret_filtered,
                     char *err, size_t err_len);

/* Keep cells greedily by new coverage (scenario, topology, profile, kernel,
 * scheduler values not yet covered) per expected second until budget_ms of
 * expected time is used (kt_coord_cell_expect_ms: what the cell took in
 * earlier runs when known, else the estimate). Returns the cells kept. */
unsigned kt_matrix_budget(kt_coord_run_t *run, uint64_t budget_ms);

struct kt_store;
/* Sets each cell's hist_ms from the run store (the median of its last 5
 * times); returns how many cells it knew. */
unsigned kt_matrix_learn_times(kt_coord_run_t *run, struct kt_store *store);
/* The same from the run store of a results folder, when it has one. */
unsigned kt_matrix_learn_results(kt_coord_run_t *run, const char *results_dir);

/* Estimated wall time of a cell (boot + duration + margins), for budget and ETA. */
uint32_t kt_matrix_estimate_ms(const kt_coord_cell_t *cell);
