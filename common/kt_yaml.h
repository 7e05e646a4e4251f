/* libfyaml helpers shared by the YAML readers. */
#pragma once

#include <libfyaml.h>
#include <stdbool.h>

/* A diag that keeps errors (with their position) instead of printing them. */
struct fy_diag *kt_yaml_diag_new(void);
void kt_yaml_diag_freep(struct fy_diag **d);
/* 1-based position of a node; false when it has none (an empty value). */
bool kt_yaml_node_pos(struct fy_node *n, int *ret_line, int *ret_col);
/* "a mapping", "a sequence", "a scalar" or "nothing", for messages. */
const char *kt_yaml_kind(struct fy_node *n);
/* An absent node, a plain empty scalar or ~/null/Null/NULL. */
bool kt_yaml_is_null(struct fy_node *n);
