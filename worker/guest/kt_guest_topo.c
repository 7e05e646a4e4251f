/* Guest topology from sysfs (see kt_guest_topo.h). */
#include "kt_guest_topo.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kt_guest_sys.h"

#define S_MAX_CACHE_INDEX 16

static int s_read_mask(const char *path, kt_cpumask_t *ret, char *why, size_t wl)
{
    char buf[KT_MAX_CPUS * 4];
    int r = kt_guest_sys_read_file(path, buf, sizeof(buf));
    if (r < 0) {
        snprintf(why, wl, "cannot read '%s': %s", path, strerror(-r));
        return r;
    }
    if (kt_cpumask_parse(buf, ret) < 0) {
        snprintf(why, wl, "'%s': bad CPU list '%.64s'", path, buf);
        return -EBADMSG;
    }
    return 0;
}

static void s_and(kt_cpumask_t *dst, const kt_cpumask_t *src)
{
    for (unsigned i = 0; i < KT_CPUMASK_WORDS; i++)
        dst->bits[i] &= src->bits[i];
}

static bool s_mask_eq(const kt_cpumask_t *a, const kt_cpumask_t *b)
{
    return memcmp(a->bits, b->bits, sizeof(a->bits)) == 0;
}

/* The cache index of cpu whose level is 3, else the one with the highest
 * level; -ENOENT when the CPU has no cache directory. */
static int s_llc_index(const char *root, unsigned cpu, unsigned *ret_level)
{
    int best = -ENOENT;
    unsigned best_level = 0;
    for (unsigned i = 0; i < S_MAX_CACHE_INDEX; i++) {
        char path[256], buf[16];
        snprintf(path, sizeof(path), "%s/devices/system/cpu/cpu%u/cache/index%u/level", root, cpu,
                 i);
        if (kt_guest_sys_read_file(path, buf, sizeof(buf)) < 0)
            continue;
        unsigned level = (unsigned)strtoul(buf, NULL, 10);
        if (level > best_level) {
            best_level = level;
            best = (int)i;
        }
        if (level == 3)
            break;
    }
    if (best >= 0)
        *ret_level = best_level;
    return best;
}

typedef struct s_groups {
    unsigned n;
    kt_cpumask_t masks[KT_MAX_CPUS];
} s_groups_t;

static unsigned s_group_add(s_groups_t *g, const kt_cpumask_t *m)
{
    for (unsigned i = 0; i < g->n; i++)
        if (s_mask_eq(&g->masks[i], m))
            return i;
    g->masks[g->n] = *m;
    return g->n++;
}

static unsigned s_count_nodes(const char *root, const kt_cpumask_t *online)
{
    char dir[256];
    snprintf(dir, sizeof(dir), "%s/devices/system/node", root);
    DIR *d = opendir(dir);
    if (!d)
        return 1;
    unsigned n = 0, seen = 0;
    struct dirent *de;
    while ((de = readdir(d)) && seen++ < 4096) {
        if (strncmp(de->d_name, "node", 4) != 0 || !de->d_name[4])
            continue;
        char *end;
        strtoul(de->d_name + 4, &end, 10);
        if (*end)
            continue;
        char path[512], why[64];
        kt_cpumask_t m;
        if (snprintf(path, sizeof(path), "%s/%s/cpulist", dir, de->d_name) >= (int)sizeof(path))
            continue;
        if (s_read_mask(path, &m, why, sizeof(why)) < 0)
            continue;
        s_and(&m, online);
        if (!kt_cpumask_empty(&m))
            n++;
    }
    closedir(d);
    return n ? n : 1;
}

int kt_guest_topo_read(const char *root, kt_guest_topo_t *ret, char *why, size_t wl)
{
    kt_guest_topo_t t;
    memset(&t, 0, sizeof(t));
    char path[256];
    int r;
    snprintf(path, sizeof(path), "%s/devices/system/cpu/online", root);
    if ((r = s_read_mask(path, &t.online, why, wl)) < 0)
        return r;
    t.cpus = kt_cpumask_weight(&t.online);
    if (t.cpus == 0) {
        snprintf(why, wl, "'%s' lists no CPU", path);
        return -EBADMSG;
    }

    /* Static: two arrays of KT_MAX_CPUS masks are 16 KiB; the reader is not
     * reentrant anyway (one caller, at boot). */
    static s_groups_t llcs, cores;
    llcs.n = cores.n = 0;
    static unsigned core_llc[KT_MAX_CPUS];
    bool have_level = false;
    for (unsigned cpu = 0; cpu < KT_MAX_CPUS; cpu++) {
        if (!kt_cpumask_test(&t.online, cpu))
            continue;
        kt_cpumask_t llc, sib;
        unsigned level = 0;
        int idx = s_llc_index(root, cpu, &level);
        if (idx >= 0) {
            snprintf(path, sizeof(path),
                     "%s/devices/system/cpu/cpu%u/cache/index%d/shared_cpu_list", root, cpu, idx);
            have_level = true;
            if (level > t.cache_level)
                t.cache_level = level;
        } else {
            snprintf(path, sizeof(path), "%s/devices/system/cpu/cpu%u/topology/package_cpus_list",
                     root, cpu);
        }
        if ((r = s_read_mask(path, &llc, why, wl)) < 0)
            return r;
        snprintf(path, sizeof(path), "%s/devices/system/cpu/cpu%u/topology/thread_siblings_list",
                 root, cpu);
        if ((r = s_read_mask(path, &sib, why, wl)) < 0)
            return r;
        s_and(&llc, &t.online);
        s_and(&sib, &t.online);
        unsigned l = s_group_add(&llcs, &llc);
        unsigned before = cores.n;
        unsigned c = s_group_add(&cores, &sib);
        if (c == before)
            core_llc[c] = l;
    }
    if (!have_level)
        t.cache_level = 0;
    t.llcs = llcs.n;
    t.threads = kt_cpumask_weight(&cores.masks[0]);
    for (unsigned c = 0; c < cores.n; c++)
        if (core_llc[c] == 0)
            t.cores++;
    t.uniform = true;
    for (unsigned l = 0; l < llcs.n && t.uniform; l++) {
        unsigned n = 0;
        for (unsigned c = 0; c < cores.n; c++)
            n += core_llc[c] == l;
        t.uniform = n == t.cores;
    }
    for (unsigned c = 0; c < cores.n && t.uniform; c++)
        t.uniform = kt_cpumask_weight(&cores.masks[c]) == t.threads;
    t.nodes = s_count_nodes(root, &t.online);
    kt_topology_t shape = {t.nodes, t.llcs, t.cores, t.threads};
    kt_topology_label(&shape, t.label, sizeof(t.label));
    *ret = t;
    return 0;
}
