/* cgroup2 setup for the plan (see kt_guest_cgroup.h). */
#include "kt_guest_cgroup.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kt_guest_sys.h"
#include "kt_log.h"

#define s_valid_name kt_cgroup_name_valid

/* Enables one controller in dir's subtree_control. */
static int s_enable(const char *dir, const char *controller)
{
    char path[600], text[32];
    snprintf(path, sizeof(path), "%s/cgroup.subtree_control", dir);
    snprintf(text, sizeof(text), "+%s", controller);
    return kt_guest_sys_write_file(path, text);
}

int kt_guest_cgroup_setup(const char *root, const kt_plan_t *plan, const char *mems, char *why,
                          size_t wl)
{
    bool need_cpuset = false;
    for (unsigned i = 0; i < plan->n_cgroups; i++) {
        if (!s_valid_name(plan->cgroups[i].name)) {
            snprintf(why, wl, "plan cgroup %u: '%s' is not a valid cgroup name", i,
                     plan->cgroups[i].name);
            return -EINVAL;
        }
        need_cpuset |= plan->cgroups[i].has_cpuset;
    }
    char path[512], parent[384];
    snprintf(path, sizeof(path), "%s/cgroup.controllers", root);
    if (!kt_guest_sys_exists(path)) {
        snprintf(why, wl, "no cgroup2 hierarchy at '%s'", root);
        return -ENOENT;
    }
    snprintf(parent, sizeof(parent), "%s/%s", root, KT_GUEST_CGROUP_PARENT);
    if (mkdir(parent, 0755) < 0 && errno != EEXIST) {
        int r = -errno;
        snprintf(why, wl, "mkdir '%s': %s", parent, strerror(-r));
        return r;
    }
    const char *levels[] = {root, parent};
    for (unsigned l = 0; l < 2; l++) {
        int r = s_enable(levels[l], "cpuset");
        if (r < 0 && need_cpuset) {
            snprintf(why, wl, "enabling cpuset in '%s/cgroup.subtree_control': %s", levels[l],
                     strerror(-r));
            return r;
        }
        if (r < 0)
            kt_log_warn("enabling cpuset in '%s' failed: %s, ignoring", levels[l], strerror(-r));
        r = s_enable(levels[l], "cpu");
        if (r < 0)
            kt_log_warn("enabling cpu in '%s' failed: %s, ignoring", levels[l], strerror(-r));
    }
    for (unsigned i = 0; i < plan->n_cgroups; i++) {
        if (plan->cgroups[i].deferred)
            continue;
        int r = kt_guest_cgroup_create(root, plan, i, mems, why, wl);
        if (r < 0)
            return r;
    }
    return 0;
}

static int s_write_cpuset(const char *dir, const char *name, const kt_cpumask_t *cpus,
                          const char *mems, char *why, size_t wl)
{
    char list[KT_MAX_CPUS * 4], path[576];
    if (cpus) {
        kt_cpumask_format(cpus, list, sizeof(list));
        if (!list[0]) {
            snprintf(why, wl, "cgroup '%s' has a cpuset with no CPU", name);
            return -EINVAL;
        }
    } else {
        list[0] = '\0'; /* cleared: the parent's CPUs */
    }
    /* mems first: a cpuset with CPUs but no mems takes no tasks. */
    const char *files[2][2] = {{"cpuset.mems", mems}, {"cpuset.cpus", list}};
    for (unsigned f = cpus ? 0 : 1; f < 2; f++) {
        if (snprintf(path, sizeof(path), "%s/%s", dir, files[f][0]) >= (int)sizeof(path)) {
            snprintf(why, wl, "cgroup path under '%.300s' is too long", dir);
            return -ENAMETOOLONG;
        }
        int r = kt_guest_sys_write_file(path, files[f][1]);
        if (r < 0) {
            snprintf(why, wl, "writing '%s' to '%s': %s", files[f][1], path, strerror(-r));
            return r;
        }
    }
    return 0;
}

int kt_guest_cgroup_create(const char *root, const kt_plan_t *plan, unsigned i, const char *mems,
                           char *why, size_t wl)
{
    const kt_plan_cgroup_t *c = &plan->cgroups[i];
    if (!s_valid_name(c->name)) {
        snprintf(why, wl, "plan cgroup %u: '%s' is not a valid cgroup name", i, c->name);
        return -EINVAL;
    }
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/%s/%s", root, KT_GUEST_CGROUP_PARENT, c->name);
    if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
        int r = -errno;
        snprintf(why, wl, "mkdir '%s': %s", dir, strerror(-r));
        return r;
    }
    /* A parent hands cpuset and cpu on to the cgroups nested in it. */
    bool parent = false;
    for (unsigned k = 0; k < plan->n_cgroups; k++)
        parent |= plan->cgroups[k].nest_parent == i + 1;
    if (parent) {
        int r = s_enable(dir, "cpuset");
        if (r < 0) {
            snprintf(why, wl, "enabling cpuset in '%s/cgroup.subtree_control': %s", dir,
                     strerror(-r));
            return r;
        }
        if ((r = s_enable(dir, "cpu")) < 0)
            kt_log_warn("enabling cpu in '%s' failed: %s, ignoring", dir, strerror(-r));
    }
    return c->has_cpuset ? s_write_cpuset(dir, c->name, &c->cpus, mems, why, wl) : 0;
}

int kt_guest_cgroup_set_cpus(const char *root, const char *name, const kt_cpumask_t *cpus,
                             const char *mems, char *why, size_t wl)
{
    if (!s_valid_name(name)) {
        snprintf(why, wl, "'%s' is not a valid cgroup name", name);
        return -EINVAL;
    }
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/%s/%s", root, KT_GUEST_CGROUP_PARENT, name);
    return s_write_cpuset(dir, name, cpus, mems, why, wl);
}

int kt_guest_cgroup_remove(const char *root, const char *name, char *why, size_t wl)
{
    if (!s_valid_name(name)) {
        snprintf(why, wl, "'%s' is not a valid cgroup name", name);
        return -EINVAL;
    }
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/%s/%s", root, KT_GUEST_CGROUP_PARENT, name);
    /* Tasks that just exited may hold it a moment longer. */
    for (unsigned tries = 0;; tries++) {
        if (rmdir(dir) == 0 || errno == ENOENT)
            return 0;
        if (errno != EBUSY || tries >= 100) {
            int r = -errno;
            snprintf(why, wl, "rmdir '%s': %s", dir, strerror(-r));
            return r;
        }
        kt_guest_sys_sleep_ms(10);
    }
}

int kt_guest_cgroup_attach(const char *root, const char *name, pid_t pid, char *why, size_t wl)
{
    if (!s_valid_name(name)) {
        snprintf(why, wl, "'%s' is not a valid cgroup name", name);
        return -EINVAL;
    }
    char path[512], text[24];
    snprintf(path, sizeof(path), "%s/%s/%s/cgroup.procs", root, KT_GUEST_CGROUP_PARENT, name);
    snprintf(text, sizeof(text), "%d", (int)pid);
    int r = kt_guest_sys_write_file(path, text);
    if (r < 0)
        snprintf(why, wl, "writing pid %d to '%s': %s", (int)pid, path, strerror(-r));
    return r;
}
