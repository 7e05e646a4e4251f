/* A cell's figures as the run store keeps them: a flat JSON object of
 * name -> number taken from its sidecar, so runs can be compared and a
 * figure followed across runs (`ktstr-coord compare`, `history --metric`)
 * without reading every sidecar again.
 *
 * Names (stable; cgroup and check names as in the sidecar):
 *   timing.{boot_ms,run_ms,collect_ms,total_ms}
 *   cgroup.{cg}.{work_units,spread_pct,max_gap_ms,min_on_cpu_pct,max_on_cpu_pct}
 *   cgroup.{cg}.{migrations,involuntary_ctxsw}     summed over its workers
 *   cgroup.{cg}.run_delay_ms                        mean over its workers
 *   cgroup.{cg}.wake_p99_us                         worst of its workers that woke
 *   check.{name}[.{cg}]                             the measured value of each
 *                                                   check evaluated; a second
 *                                                   one of the same name and
 *                                                   cgroup (per phase) gets #2...
 *   bpf.{ns_per_call,struct_ops_calls}              when measured
 *   payload.{metric}                                a payload's numeric metrics */
#pragma once

#include <jansson.h>
#include <stddef.h>

/* The figures of one sidecar (a parsed JSON object): a new object, empty
 * when the sidecar has none (an error before the workload ran). NULL only
 * when out of memory. */
json_t *kt_metrics_from_sidecar(const json_t *sidecar);

/* The same from sidecar text, as a compact JSON string the caller frees.
 * NULL when the text is not a JSON object (nothing to keep) or out of
 * memory. */
char *kt_metrics_json(const char *sidecar, size_t len);

/* Direction of a figure, for saying which way a change went: +1 when a
 * larger value is better (work units, calls), -1 when smaller is better
 * (latency, gaps, spread, run delay, cost), 0 when neither. */
int kt_metrics_direction(const char *name);
