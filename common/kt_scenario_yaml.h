/* YAML scenario files (libfyaml). Every error reads
 * "FILE:LINE:COL: what is wrong" and points at the offending node. */
#pragma once

#include <stddef.h>

#include "kt_scenario.h"

struct fy_node;

/* Load one scenario from a YAML file. -errno; err gets file:line:col text.
 * A `payload:`'s relative binary resolves against the file's folder. */
int kt_scenario_yaml_load(const char *path, kt_scenario_t *ret, char *err, size_t err_len);

/* Parse from memory; `origin` names the text in errors (a file name). */
int kt_scenario_yaml_parse(const char *text, size_t len, const char *origin, kt_scenario_t *ret,
                           char *err, size_t err_len);

/* Parse one scenario mapping node (for scenarios inlined in other YAML
 * files, such as gauntlets). */
int kt_scenario_yaml_from_node(struct fy_node *node, const char *origin, kt_scenario_t *ret,
                               char *err, size_t err_len);

/* The same, with the folder a `payload:`'s relative binary resolves against
 * (the binary must then exist and be executable; NULL: kept as written). */
int kt_scenario_yaml_from_node_in(struct fy_node *node, const char *origin, const char *base_dir,
                                  kt_scenario_t *ret, char *err, size_t err_len);

/* A payload map (a scenario's `payload:`, a gauntlet's `payloads:` entry):
 *   binary: PATH          required; relative to base_dir (NULL: kept as written,
 *                         unchecked); the guest runs it as /payload/{file name}
 *   args: [a, b] | "a b"  optional
 *   checks: ["ops>=1000", "lat.p99=1..5", "exit==0"]   optional, kt_payload_check_parse
 *   judge: exit | tap     optional, exit by default
 *   tap_test: NAME        optional, judge: tap only
 *   timeout: 30s          optional, 60 s by default
 *   output_bytes: N       optional, bytes of output kept
 * extra: NULL-terminated keys (at most 4) the caller reads itself from the
 * same map: allowed here, not read. path names the map in errors
 * ("payload", "payloads[1]"). ret and ret_binary are set only on success. */
int kt_payload_yaml_from_node(struct fy_node *node, struct fy_node *key, const char *origin,
                              const char *base_dir, const char *path, const char *const *extra,
                              kt_payload_spec_t *ret, char *ret_binary, size_t binary_len,
                              char *err, size_t err_len);

/* Parse a `checks:` map (the scenario's syntax) as a threshold layer: the
 * defaults with the keys given applied and marked in ret->set, for
 * kt_thresholds_merge (a gauntlet scheduler's `checks:`). key is the map's
 * key node (for errors about a missing value), origin names the file. */
int kt_thresholds_yaml_from_node(struct fy_node *node, struct fy_node *key, const char *origin,
                                 kt_thresholds_t *ret, char *err, size_t err_len);

/* Parse durations "3s", "250ms", "2m", "1.5s" or a bare number of ms. */
int kt_duration_parse_ms(const char *text, uint32_t *ret_ms);
