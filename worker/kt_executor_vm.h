/* The VM executor's translation of a fleet cellspec into a kt_runcell
 * request, on its own so it can be checked without booting anything. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "kt_executor.h"
#include "kt_runcell.h"

/* Validates spec (ids, topology and its preset, plan, memory, scheduler
 * presence against sched_sha, accel resolved) and fills req for kt_runcell.
 * req points into spec, cfg, kernel, sched and out_dir, which must outlive
 * it. out_dir receives {cfg->work_dir}/{cell_id}-{attempt} (not created).
 * -EINVAL with why naming the field on a bad spec. */
int kt_executor_vm_request(const kt_vm_executor_config_t *cfg, const kt_cellspec_t *spec,
                           uint32_t attempt, const char *kernel, const char *sched,
                           kt_cell_request_t *req, char *out_dir, size_t out_dir_len, char *why,
                           size_t why_len);

/* The last max bytes of a file, starting after a line break when the cut
 * falls inside a line. Caller owns *ret (NUL-terminated). */
int kt_executor_file_tail(const char *path, size_t max, char **ret, size_t *ret_len);
