/* Topology shapes, presets and CPU masks. */
#include "kt_topology.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kt_cleanup.h"

/* ktstr's gauntlet presets: same names and shapes. */
static const kt_topology_preset_t s_presets[] = {
    {"tiny-1llc", "4 CPUs, 1 LLC", {1, 1, 4, 1}},
    {"tiny-2llc", "4 CPUs, 2 LLCs", {1, 2, 2, 1}},
    {"odd-3llc", "9 CPUs, 3 LLCs (odd)", {1, 3, 3, 1}},
    {"odd-5llc", "15 CPUs, 5 LLCs (prime)", {1, 5, 3, 1}},
    {"odd-7llc", "14 CPUs, 7 LLCs (prime)", {1, 7, 2, 1}},
    {"smt-2llc", "8 CPUs, 2 LLCs with SMT", {1, 2, 2, 2}},
    {"smt-3llc", "12 CPUs, 3 LLCs with SMT", {1, 3, 2, 2}},
    {"medium-4llc", "32 CPUs, 4 LLCs", {1, 4, 4, 2}},
    {"medium-8llc", "64 CPUs, 8 LLCs", {1, 8, 4, 2}},
    {"large-4llc", "128 CPUs, 4 LLCs", {1, 4, 16, 2}},
    {"large-8llc", "128 CPUs, 8 LLCs", {1, 8, 8, 2}},
    {"near-max-llc", "240 CPUs, 15 LLCs (near max)", {1, 15, 8, 2}},
    {"max-cpu", "252 CPUs, 14 LLCs (near KVM vCPU limit)", {1, 14, 9, 2}},
    {"medium-4llc-nosmt", "32 CPUs, 4 LLCs (no SMT)", {1, 4, 8, 1}},
    {"medium-8llc-nosmt", "64 CPUs, 8 LLCs (no SMT)", {1, 8, 8, 1}},
    {"large-4llc-nosmt", "128 CPUs, 4 LLCs (no SMT)", {1, 4, 32, 1}},
    {"large-8llc-nosmt", "128 CPUs, 8 LLCs (no SMT)", {1, 8, 16, 1}},
    {"near-max-llc-nosmt", "240 CPUs, 15 LLCs (no SMT)", {1, 15, 16, 1}},
    {"max-cpu-nosmt", "252 CPUs, 14 LLCs (no SMT)", {1, 14, 18, 1}},
    {"numa2-4llc", "16 CPUs, 4 LLCs, 2 NUMA nodes", {2, 4, 4, 1}},
    {"numa2-8llc", "128 CPUs, 8 LLCs, 2 NUMA nodes with SMT", {2, 8, 8, 2}},
    {"numa2-8llc-nosmt", "128 CPUs, 8 LLCs, 2 NUMA nodes", {2, 8, 16, 1}},
    {"numa4-8llc", "32 CPUs, 8 LLCs, 4 NUMA nodes", {4, 8, 4, 1}},
    {"numa4-12llc", "192 CPUs, 12 LLCs, 4 NUMA nodes with SMT", {4, 12, 8, 2}},
};

unsigned kt_topology_cpus(const kt_topology_t *t)
{
    return t->llcs * t->cores_per_llc * t->threads_per_core;
}

bool kt_topology_valid(const kt_topology_t *t)
{
    if (t->numa_nodes == 0 || t->llcs == 0 || t->cores_per_llc == 0 || t->threads_per_core == 0)
        return false;
    if (t->llcs % t->numa_nodes != 0)
        return false;
    /* Guard the product against overflow before comparing. */
    if (t->llcs > KT_MAX_CPUS || t->cores_per_llc > KT_MAX_CPUS || t->threads_per_core > 8)
        return false;
    return kt_topology_cpus(t) <= KT_MAX_CPUS;
}

char *kt_topology_label(const kt_topology_t *t, char *buf, size_t len)
{
    snprintf(buf, len, "%un%ul%uc%ut", t->numa_nodes, t->llcs, t->cores_per_llc,
             t->threads_per_core);
    return buf;
}

bool kt_topology_equal(const kt_topology_t *a, const kt_topology_t *b)
{
    return a->numa_nodes == b->numa_nodes && a->llcs == b->llcs &&
           a->cores_per_llc == b->cores_per_llc && a->threads_per_core == b->threads_per_core;
}

const kt_topology_preset_t *kt_topology_presets(size_t *ret_count)
{
    *ret_count = KT_ARRAY_SIZE(s_presets);
    return s_presets;
}

const kt_topology_preset_t *kt_topology_preset_find(const char *name)
{
    for (size_t i = 0; i < KT_ARRAY_SIZE(s_presets); i++)
        if (strcmp(s_presets[i].name, name) == 0)
            return &s_presets[i];
    return NULL;
}

const char *kt_topology_preset_name(const kt_topology_t *t)
{
    for (size_t i = 0; i < KT_ARRAY_SIZE(s_presets); i++)
        if (kt_topology_equal(&s_presets[i].topo, t))
            return s_presets[i].name;
    return NULL;
}

static int s_parse_uint(const char **p, unsigned *ret)
{
    if (!isdigit((unsigned char)**p))
        return -EINVAL;
    char *end;
    errno = 0;
    unsigned long v = strtoul(*p, &end, 10);
    if (errno || v > 100000)
        return -ERANGE;
    *p = end;
    *ret = (unsigned)v;
    return 0;
}

int kt_topology_parse(const char *text, kt_topology_t *ret)
{
    if (!text || !*text)
        return -EINVAL;
    const kt_topology_preset_t *preset = kt_topology_preset_find(text);
    if (preset) {
        *ret = preset->topo;
        return 0;
    }
    unsigned v[4];
    const char *p = text;
    bool label = false;
    static const char seps_label[] = {'n', 'l', 'c', 't'};
    for (int i = 0; i < 4; i++) {
        int r = s_parse_uint(&p, &v[i]);
        if (r < 0)
            return r;
        if (i == 0)
            label = (*p == 'n');
        if (label) {
            if (*p != seps_label[i])
                return -EINVAL;
            p++;
        } else if (i < 3) {
            if (*p != ',')
                return -EINVAL;
            p++;
        }
    }
    if (*p != '\0')
        return -EINVAL;
    kt_topology_t t = {v[0], v[1], v[2], v[3]};
    if (!kt_topology_valid(&t))
        return -ERANGE;
    *ret = t;
    return 0;
}

void kt_topology_llc_mask(const kt_topology_t *t, unsigned llc, kt_cpumask_t *ret)
{
    unsigned per = t->cores_per_llc * t->threads_per_core;
    kt_cpumask_zero(ret);
    if (llc >= t->llcs)
        return;
    for (unsigned c = llc * per; c < (llc + 1) * per; c++)
        kt_cpumask_set(ret, c);
}

unsigned kt_topology_node_of_llc(const kt_topology_t *t, unsigned llc)
{
    return llc / (t->llcs / t->numa_nodes);
}

unsigned kt_topology_llc_of_cpu(const kt_topology_t *t, unsigned cpu)
{
    return cpu / (t->cores_per_llc * t->threads_per_core);
}

void kt_topology_node_mask(const kt_topology_t *t, unsigned node, kt_cpumask_t *ret)
{
    kt_cpumask_zero(ret);
    for (unsigned l = 0; l < t->llcs; l++) {
        if (kt_topology_node_of_llc(t, l) != node)
            continue;
        kt_cpumask_t m;
        kt_topology_llc_mask(t, l, &m);
        kt_cpumask_or(ret, &m);
    }
}

void kt_topology_all_mask(const kt_topology_t *t, kt_cpumask_t *ret)
{
    kt_cpumask_zero(ret);
    for (unsigned c = 0; c < kt_topology_cpus(t) && c < KT_MAX_CPUS; c++)
        kt_cpumask_set(ret, c);
}

uint64_t kt_topology_memory_mib(const kt_topology_t *t, uint64_t scenario_mib)
{
    uint64_t m = 64ull * kt_topology_cpus(t);
    if (m < 256)
        m = 256;
    if (scenario_mib > m)
        m = scenario_mib;
    return m;
}

void kt_cpumask_zero(kt_cpumask_t *m)
{
    memset(m, 0, sizeof(*m));
}

void kt_cpumask_set(kt_cpumask_t *m, unsigned cpu)
{
    if (cpu < KT_MAX_CPUS)
        m->bits[cpu / 64] |= 1ull << (cpu % 64);
}

bool kt_cpumask_test(const kt_cpumask_t *m, unsigned cpu)
{
    return cpu < KT_MAX_CPUS && (m->bits[cpu / 64] >> (cpu % 64)) & 1;
}

unsigned kt_cpumask_weight(const kt_cpumask_t *m)
{
    unsigned w = 0;
    for (int i = 0; i < KT_CPUMASK_WORDS; i++)
        w += (unsigned)__builtin_popcountll(m->bits[i]);
    return w;
}

bool kt_cpumask_empty(const kt_cpumask_t *m)
{
    return kt_cpumask_weight(m) == 0;
}

bool kt_cpumask_subset(const kt_cpumask_t *sub, const kt_cpumask_t *super)
{
    for (int i = 0; i < KT_CPUMASK_WORDS; i++)
        if (sub->bits[i] & ~super->bits[i])
            return false;
    return true;
}

void kt_cpumask_or(kt_cpumask_t *dst, const kt_cpumask_t *src)
{
    for (int i = 0; i < KT_CPUMASK_WORDS; i++)
        dst->bits[i] |= src->bits[i];
}

int kt_cpumask_parse(const char *text, kt_cpumask_t *ret)
{
    kt_cpumask_t m;
    kt_cpumask_zero(&m);
    const char *p = text;
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p == '\0' || (*p == '\n' && p[1] == '\0')) {
        *ret = m;
        return 0;
    }
    for (;;) {
        unsigned a, b;
        int r = s_parse_uint(&p, &a);
        if (r < 0)
            return r;
        b = a;
        if (*p == '-') {
            p++;
            r = s_parse_uint(&p, &b);
            if (r < 0)
                return r;
        }
        if (a > b)
            return -EINVAL;
        if (b >= KT_MAX_CPUS)
            return -ERANGE;
        for (unsigned c = a; c <= b; c++)
            kt_cpumask_set(&m, c);
        if (*p == ',') {
            p++;
            continue;
        }
        /* One trailing newline, as sysfs files end, and nothing after it. */
        if (*p == '\0' || (*p == '\n' && p[1] == '\0'))
            break;
        return -EINVAL;
    }
    *ret = m;
    return 0;
}

int kt_cpumask_format(const kt_cpumask_t *m, char *buf, size_t len)
{
    size_t n = 0;
    if (len)
        buf[0] = '\0';
    for (unsigned c = 0; c < KT_MAX_CPUS;) {
        if (!kt_cpumask_test(m, c)) {
            c++;
            continue;
        }
        unsigned e = c;
        while (e + 1 < KT_MAX_CPUS && kt_cpumask_test(m, e + 1))
            e++;
        char part[32];
        int w = e == c ? snprintf(part, sizeof(part), "%s%u", n ? "," : "", c)
                       : snprintf(part, sizeof(part), "%s%u-%u", n ? "," : "", c, e);
        if (n + (size_t)w < len)
            memcpy(buf + n, part, (size_t)w + 1);
        n += (size_t)w;
        c = e + 1;
    }
    return (int)n;
}
