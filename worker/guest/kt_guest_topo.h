/* The CPU topology the guest kernel sees, read from sysfs: online CPUs, LLC
 * groups (L3 shared_cpu_list, else the highest cache level, else the
 * package), SMT siblings and NUMA nodes with CPUs. The host compares it with
 * the topology it asked QEMU for. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "kt_topology.h"

typedef struct kt_guest_topo {
    unsigned nodes;      /* NUMA nodes with at least one online CPU (1 without NUMA) */
    unsigned llcs;       /* distinct LLC groups */
    unsigned cores;      /* cores per LLC (of the first LLC) */
    unsigned threads;    /* threads per core (of the first core) */
    unsigned cpus;       /* online CPUs */
    bool uniform;        /* every LLC has `cores` cores, every core `threads` threads */
    unsigned cache_level; /* the cache level taken as LLC, 0 when the package was used */
    kt_cpumask_t online;
    char label[KT_TOPOLOGY_LABEL_MAX];
} kt_guest_topo_t;

/* Reads sysfs under root ("/sys" in the guest; a fake tree in tests).
 * -ENOENT / -EBADMSG with a reason naming the file in why. */
int kt_guest_topo_read(const char *root, kt_guest_topo_t *ret, char *why, size_t why_len);
