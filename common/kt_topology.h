/* CPU topologies: N NUMA nodes, L LLCs, C cores per LLC, T threads per core,
 * label "{N}n{L}l{C}c{T}t", ktstr's 24 named presets, and CPU masks. CPU
 * numbering follows QEMU's -smp enumeration with one LLC per socket:
 * cpu = ((llc * C) + core) * T + thread, LLCs spread evenly over nodes. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KT_MAX_CPUS 256
#define KT_CPUMASK_WORDS (KT_MAX_CPUS / 64)

typedef struct kt_cpumask {
    uint64_t bits[KT_CPUMASK_WORDS];
} kt_cpumask_t;

typedef struct kt_topology {
    unsigned numa_nodes;
    unsigned llcs;
    unsigned cores_per_llc;
    unsigned threads_per_core;
} kt_topology_t;

typedef struct kt_topology_preset {
    const char *name;
    const char *description;
    kt_topology_t topo;
} kt_topology_preset_t;

/* The label buffer needs at most this many bytes. */
#define KT_TOPOLOGY_LABEL_MAX 48

unsigned kt_topology_cpus(const kt_topology_t *t);
bool kt_topology_valid(const kt_topology_t *t);
/* "{N}n{L}l{C}c{T}t" into buf (KT_TOPOLOGY_LABEL_MAX bytes); returns buf. */
char *kt_topology_label(const kt_topology_t *t, char *buf, size_t len);
bool kt_topology_equal(const kt_topology_t *a, const kt_topology_t *b);

/* Accepts a preset name, "N,L,C,T" or a label "1n2l2c1t". -EINVAL for
 * malformed text, -ERANGE for a shape over KT_MAX_CPUS or with a zero, or
 * LLCs not divisible by nodes. */
int kt_topology_parse(const char *text, kt_topology_t *ret);

const kt_topology_preset_t *kt_topology_presets(size_t *ret_count);
const kt_topology_preset_t *kt_topology_preset_find(const char *name);
/* The preset name for a shape, or NULL when it matches none. */
const char *kt_topology_preset_name(const kt_topology_t *t);

/* Masks of the CPUs of one LLC / one NUMA node / all CPUs. */
void kt_topology_llc_mask(const kt_topology_t *t, unsigned llc, kt_cpumask_t *ret);
void kt_topology_node_mask(const kt_topology_t *t, unsigned node, kt_cpumask_t *ret);
void kt_topology_all_mask(const kt_topology_t *t, kt_cpumask_t *ret);
unsigned kt_topology_llc_of_cpu(const kt_topology_t *t, unsigned cpu);
unsigned kt_topology_node_of_llc(const kt_topology_t *t, unsigned llc);

/* Memory a VM with this topology gets: max(64 MiB x vCPUs, 256 MiB, extra). */
uint64_t kt_topology_memory_mib(const kt_topology_t *t, uint64_t scenario_mib);

/* CPU masks. */
void kt_cpumask_zero(kt_cpumask_t *m);
void kt_cpumask_set(kt_cpumask_t *m, unsigned cpu);
bool kt_cpumask_test(const kt_cpumask_t *m, unsigned cpu);
unsigned kt_cpumask_weight(const kt_cpumask_t *m);
bool kt_cpumask_empty(const kt_cpumask_t *m);
bool kt_cpumask_subset(const kt_cpumask_t *sub, const kt_cpumask_t *super);
void kt_cpumask_or(kt_cpumask_t *dst, const kt_cpumask_t *src);
/* Kernel list format "0-3,8,10-11" <-> mask. Parse: -EINVAL / -ERANGE. */
int kt_cpumask_parse(const char *text, kt_cpumask_t *ret);
/* Returns the length written (truncated to len - 1 like snprintf). */
int kt_cpumask_format(const kt_cpumask_t *m, char *buf, size_t len);
