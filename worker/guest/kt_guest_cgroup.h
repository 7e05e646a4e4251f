/* The plan's cgroups inside the guest: cgroup2 directories under
 * <root>/ktstr/<name> with their cpusets, and moving worker processes in. */
#pragma once

#include <stddef.h>
#include <sys/types.h>

#include "kt_scenario.h"

#define KT_GUEST_CGROUP_ROOT "/sys/fs/cgroup"
#define KT_GUEST_CGROUP_PARENT "ktstr"

/* Enables cpuset and cpu in <root>/cgroup.subtree_control and
 * <root>/ktstr/cgroup.subtree_control (cpu may be missing; cpuset may only
 * be missing when no plan cgroup has a cpuset), creates <root>/ktstr/<name>
 * for every plan cgroup not deferred and writes cpuset.cpus (its CPU list) and
 * cpuset.mems (mems, e.g. "0-1") when it has a cpuset. -errno with a reason
 * naming the file in why. */
int kt_guest_cgroup_setup(const char *root, const kt_plan_t *plan, const char *mems, char *why,
                          size_t why_len);

/* Creates <root>/ktstr/<name> for plan cgroup i (parents first: nested
 * names), enables cpuset and cpu in it when cgroups nest in it, and writes
 * its cpuset. kt_guest_cgroup_setup calls it for every cgroup that is not
 * deferred; an add_cgroup op for the others. */
int kt_guest_cgroup_create(const char *root, const kt_plan_t *plan, unsigned i, const char *mems,
                           char *why, size_t why_len);

/* cpuset.cpus of <root>/ktstr/<name> = cpus (mems written first), or ""
 * (the parent's) when cpus is NULL. */
int kt_guest_cgroup_set_cpus(const char *root, const char *name, const kt_cpumask_t *cpus,
                             const char *mems, char *why, size_t why_len);

/* rmdir <root>/ktstr/<name>, retrying a moment while it is busy. */
int kt_guest_cgroup_remove(const char *root, const char *name, char *why, size_t why_len);

/* Writes pid into <root>/ktstr/<name>/cgroup.procs. -errno with a reason. */
int kt_guest_cgroup_attach(const char *root, const char *name, pid_t pid, char *why,
                           size_t why_len);
