/* Scenarios written out as YAML, in the format kt_scenario_yaml.c reads
 * (`ktstr-coord scenarios --yaml NAME`), and their constraints in short. */
#pragma once

#include <stddef.h>

#include "kt_scenario.h"

/* Builds s as one YAML document (block style) that kt_scenario_yaml_parse
 * reads back to the same scenario. Values at their default are left out
 * (policy normal, nice 0, affinity inherit, the default thresholds, no
 * constraints); work, duration and every step's hold are always written.
 * A check that is off is written `false` and loses its threshold, which is
 * unused while it is off. Caller owns *ret_text (free()). -EINVAL for a
 * value the format cannot hold (an unknown enum value, a count over its
 * limit, a number that is not finite), -ENOMEM; err names the field
 * ("cgroups[1].cpuset: ..."). *ret_text is untouched on failure. */
int kt_scenario_emit_yaml(const kt_scenario_t *s, char **ret_text, char *err, size_t err_len);

/* The constraints in short, for listings: "llcs>=2 cpus=4..64 numa<=2 smt",
 * or "-" when there are none. */
void kt_scenario_emit_constraints(const kt_constraints_t *c, char *buf, size_t len);
