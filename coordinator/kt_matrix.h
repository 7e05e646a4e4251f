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
 * scheduler values not yet covered) per estimated second until budget_ms of
 * estimated time is used. Returns the cells kept. */
unsigned kt_matrix_budget(kt_coord_run_t *run, uint64_t budget_ms);

/* Estimated wall time of a cell (boot + duration + margins), for budget and ETA. */
uint32_t kt_matrix_estimate_ms(const kt_coord_cell_t *cell);
