/* cgroup2 setup for the plan (see kt_guest_cgroup.h). */
#include "kt_guest_cgroup.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "kt_guest_sys.h"
#include "kt_log.h"

static bool s_valid_name(const char *name)
{
    return name[0] && !strchr(name, '/') && strcmp(name, ".") != 0 && strcmp(name, "..") != 0 &&
           strlen(name) < KT_NAME_MAX;
}

/* Enables one controller in dir's subtree_control. */
static int s_enable(const char *dir, const char *controller)
{
    char path[512], text[32];
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
        const kt_plan_cgroup_t *c = &plan->cgroups[i];
        char dir[512];
        snprintf(dir, sizeof(dir), "%s/%s", parent, c->name);
        if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
            int r = -errno;
            snprintf(why, wl, "mkdir '%s': %s", dir, strerror(-r));
            return r;
        }
        if (!c->has_cpuset)
            continue;
        char list[KT_MAX_CPUS * 4];
        kt_cpumask_format(&c->cpus, list, sizeof(list));
        if (!list[0]) {
            snprintf(why, wl, "cgroup '%s' has a cpuset with no CPU", c->name);
            return -EINVAL;
        }
        /* mems first: a cpuset with CPUs but no mems takes no tasks. */
        const char *files[2][2] = {{"cpuset.mems", mems}, {"cpuset.cpus", list}};
        for (unsigned f = 0; f < 2; f++) {
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
    }
    return 0;
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
