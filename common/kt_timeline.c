/* The plan's steps replayed: see kt_timeline.h. */
#include "kt_timeline.h"

#include <stdlib.h>
#include <string.h>

/* A loop's applications past this many are not replayed one by one: its
 * random affinities are then judged against the whole cgroup. */
#define S_MAX_REPLAY 4096

static void s_mask_and(kt_cpumask_t *dst, const kt_cpumask_t *src)
{
    for (unsigned i = 0; i < KT_CPUMASK_WORDS; i++)
        dst->bits[i] &= src->bits[i];
}

/* The n-th set CPU of m (n < weight). */
static unsigned s_nth_cpu(const kt_cpumask_t *m, unsigned n)
{
    for (unsigned c = 0; c < KT_MAX_CPUS; c++)
        if (kt_cpumask_test(m, c) && n-- == 0)
            return c;
    return 0;
}

/* splitmix64: a well-mixed draw from the seed and the slot's coordinates. */
static uint64_t s_mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

void kt_sim_effective(const kt_sim_t *s, unsigned cg, kt_cpumask_t *ret)
{
    const kt_plan_t *p = s->plan;
    unsigned par = p->cgroups[cg].nest_parent;
    if (par && par - 1 < cg)
        kt_sim_effective(s, par - 1, ret);
    else
        kt_topology_all_mask(&p->topology, ret);
    if (!s->cg_has_cpuset[cg])
        return;
    kt_cpumask_t m = s->cg_own[cg];
    s_mask_and(&m, ret);
    if (!kt_cpumask_empty(&m))
        *ret = m;
}

bool kt_sim_affinity_mask(const kt_sim_t *s, unsigned slot, enum kt_affinity_kind kind,
                          unsigned count, const kt_cpumask_t *exact, const kt_cpumask_t *within,
                          unsigned salt, kt_cpumask_t *ret)
{
    const kt_plan_t *p = s->plan;
    unsigned idx = s->slot_index[slot];
    unsigned w = kt_cpumask_weight(within);
    kt_cpumask_zero(ret);
    switch (kind) {
    case KT_AFFINITY_INHERIT:
    case KT_AFFINITY__COUNT:
        return false;
    case KT_AFFINITY_CROSS:
        kt_topology_all_mask(&p->topology, ret);
        return true;
    case KT_AFFINITY_EXACT:
        *ret = *exact;
        return true;
    case KT_AFFINITY_SINGLE:
        if (w)
            kt_cpumask_set(ret, s_nth_cpu(within, idx % w));
        return true;
    case KT_AFFINITY_LLC: {
        /* The LLCs the cgroup's CPUs touch, in order; worker i on the
         * (i mod n)-th, within the cgroup's CPUs. */
        unsigned llcs[KT_MAX_CPUS], n = 0;
        for (unsigned c = 0; c < KT_MAX_CPUS; c++) {
            if (!kt_cpumask_test(within, c))
                continue;
            unsigned l = kt_topology_llc_of_cpu(&p->topology, c);
            bool seen = false;
            for (unsigned i = 0; i < n; i++)
                seen |= llcs[i] == l;
            if (!seen)
                llcs[n++] = l;
        }
        if (n) {
            kt_topology_llc_mask(&p->topology, llcs[idx % n], ret);
            s_mask_and(ret, within);
        }
        return true;
    }
    case KT_AFFINITY_RANDOM: {
        /* A partial Fisher-Yates over the cgroup's CPUs. */
        unsigned cpus[KT_MAX_CPUS], n = 0;
        for (unsigned c = 0; c < KT_MAX_CPUS; c++)
            if (kt_cpumask_test(within, c))
                cpus[n++] = c;
        unsigned want = count < n ? count : n;
        uint64_t x = s_mix(((uint64_t)p->seed << 32) ^ ((uint64_t)s->slot_home[slot] << 24) ^
                           ((uint64_t)idx << 12) ^ salt);
        for (unsigned i = 0; i < want; i++) {
            x = s_mix(x);
            unsigned j = i + (unsigned)(x % (n - i));
            unsigned t = cpus[i];
            cpus[i] = cpus[j];
            cpus[j] = t;
            kt_cpumask_set(ret, cpus[i]);
        }
        return true;
    }
    }
    return false;
}

void kt_sim_allowed(const kt_sim_t *s, unsigned slot, kt_cpumask_t *ret)
{
    kt_sim_effective(s, s->slot_cg[slot], ret);
    if (!s->slot_has_user[slot])
        return;
    kt_cpumask_t m = s->slot_user[slot];
    s_mask_and(&m, ret);
    if (!kt_cpumask_empty(&m))
        *ret = m;
}

/* Starts a pending slot in its cgroup with the cgroup's declared affinity. */
static void s_start_slot(kt_sim_t *s, unsigned slot)
{
    const kt_plan_cgroup_t *c = &s->plan->cgroups[s->slot_home[slot]];
    kt_cpumask_t within;
    s->slot_state[slot] = KT_SLOT_RUNNING;
    s->slot_cg[slot] = s->slot_home[slot];
    kt_sim_effective(s, s->slot_cg[slot], &within);
    s->slot_has_user[slot] = kt_sim_affinity_mask(s, slot, c->affinity, c->affinity_count,
                                                  &c->affinity_cpus, &within, 0,
                                                  &s->slot_user[slot]);
}

void kt_sim_init(kt_sim_t *s, const kt_plan_t *p)
{
    memset(s, 0, sizeof(*s));
    s->plan = p;
    unsigned slot = 0;
    for (unsigned cg = 0; cg < p->n_cgroups; cg++) {
        const kt_plan_cgroup_t *c = &p->cgroups[cg];
        s->cg_state[cg] = c->deferred ? KT_CG_PENDING : KT_CG_ALIVE;
        s->cg_has_cpuset[cg] = c->has_cpuset;
        s->cg_own[cg] = c->cpus;
        for (unsigned k = 0; k < c->workers + c->spawn_slots && slot < KT_MAX_WORKERS; k++) {
            s->slot_home[slot] = (uint8_t)cg;
            s->slot_index[slot] = (uint16_t)k;
            s->slot_cg[slot] = (uint8_t)cg;
            s->slot_state[slot] = KT_SLOT_PENDING;
            slot++;
        }
    }
    s->n_slots = slot;
    for (unsigned i = 0; i < s->n_slots; i++) {
        const kt_plan_cgroup_t *c = &p->cgroups[s->slot_home[i]];
        if (!c->deferred && s->slot_index[i] < c->workers)
            s_start_slot(s, i);
    }
}

void kt_sim_apply(kt_sim_t *s, const kt_plan_op_t *op, unsigned salt)
{
    const kt_plan_t *p = s->plan;
    unsigned cg = op->cgroup, tg = op->target;
    switch (op->kind) {
    case KT_OP_ADD_CGROUP:
        s->cg_state[cg] = KT_CG_ALIVE;
        for (unsigned i = 0; i < s->n_slots; i++)
            if (s->slot_home[i] == cg && s->slot_index[i] < p->cgroups[cg].workers &&
                s->slot_state[i] == KT_SLOT_PENDING)
                s_start_slot(s, i);
        break;
    case KT_OP_REMOVE_CGROUP:
    case KT_OP_STOP:
        for (unsigned i = 0; i < s->n_slots; i++)
            if (s->slot_cg[i] == cg && s->slot_state[i] == KT_SLOT_RUNNING)
                s->slot_state[i] = KT_SLOT_STOPPED;
        if (op->kind == KT_OP_REMOVE_CGROUP)
            s->cg_state[cg] = KT_CG_REMOVED;
        break;
    case KT_OP_SET_CPUSET:
        s->cg_has_cpuset[cg] = true;
        s->cg_own[cg] = op->cpus;
        break;
    case KT_OP_CLEAR_CPUSET:
        s->cg_has_cpuset[cg] = false;
        kt_cpumask_zero(&s->cg_own[cg]);
        break;
    case KT_OP_SWAP_CPUSETS: {
        bool h = s->cg_has_cpuset[cg];
        kt_cpumask_t m = s->cg_own[cg];
        s->cg_has_cpuset[cg] = s->cg_has_cpuset[tg];
        s->cg_own[cg] = s->cg_own[tg];
        s->cg_has_cpuset[tg] = h;
        s->cg_own[tg] = m;
        break;
    }
    case KT_OP_SPAWN: {
        unsigned want = op->count;
        for (unsigned i = 0; i < s->n_slots && want; i++) {
            if (s->slot_home[i] == cg && s->slot_index[i] >= p->cgroups[cg].workers &&
                s->slot_state[i] == KT_SLOT_PENDING) {
                s_start_slot(s, i);
                want--;
            }
        }
        s->cg_spawned[cg] += op->count - want;
        break;
    }
    case KT_OP_SET_AFFINITY: {
        kt_cpumask_t within;
        kt_sim_effective(s, cg, &within);
        for (unsigned i = 0; i < s->n_slots; i++) {
            if (s->slot_cg[i] != cg || s->slot_state[i] != KT_SLOT_RUNNING)
                continue;
            s->slot_has_user[i] = kt_sim_affinity_mask(s, i, op->affinity, op->count, &op->cpus,
                                                       &within, salt, &s->slot_user[i]);
        }
        break;
    }
    case KT_OP_MOVE_TASKS:
        for (unsigned i = 0; i < s->n_slots; i++)
            if (s->slot_cg[i] == cg && s->slot_state[i] == KT_SLOT_RUNNING)
                s->slot_cg[i] = (uint8_t)tg;
        break;
    case KT_OP__COUNT:
        break;
    }
}

unsigned kt_step_applications(const kt_plan_step_t *st)
{
    if (!st->loop_ms)
        return 1;
    return st->hold_ms ? 1 + (st->hold_ms - 1) / st->loop_ms : 1;
}

/* Records the state into phase ph; union with what is there when merge. */
static void s_record(kt_timeline_t *t, const kt_sim_t *s, unsigned ph, bool merge)
{
    const kt_plan_t *p = s->plan;
    for (unsigned cg = 0; cg < p->n_cgroups; cg++) {
        kt_cpumask_t m;
        kt_sim_effective(s, cg, &m);
        if (merge) {
            kt_cpumask_or(&t->cg_cpus[ph][cg], &m);
            t->cg_alive[ph][cg] |= s->cg_state[cg] == KT_CG_ALIVE;
        } else {
            t->cg_cpus[ph][cg] = m;
            t->cg_alive[ph][cg] = s->cg_state[cg] == KT_CG_ALIVE;
        }
    }
    for (unsigned i = 0; i < s->n_slots; i++) {
        kt_cpumask_t m;
        kt_sim_allowed(s, i, &m);
        if (merge) {
            kt_cpumask_or(&t->slot_allowed[ph][i], &m);
        } else {
            t->slot_allowed[ph][i] = m;
            t->slot_cg[ph][i] = s->slot_cg[i];
            t->slot_state[ph][i] = s->slot_state[i];
        }
    }
}

kt_timeline_t *kt_timeline_build(const kt_plan_t *p)
{
    kt_timeline_t *t = calloc(1, sizeof(*t));
    kt_sim_t *s = malloc(sizeof(*s));
    if (!t || !s) {
        free(t);
        free(s);
        return NULL;
    }
    kt_sim_init(s, p);
    t->n_slots = s->n_slots;
    memcpy(t->slot_home, s->slot_home, sizeof(t->slot_home));
    memcpy(t->slot_index, s->slot_index, sizeof(t->slot_index));
    unsigned n_steps = p->n_steps < KT_MAX_STEPS ? p->n_steps : KT_MAX_STEPS;
    t->n_phases = n_steps + 1;
    t->start_ms[0] = 0;
    t->end_ms[0] = n_steps ? p->steps[0].at_ms : p->duration_ms;
    s_record(t, s, 0, false);
    for (unsigned k = 0; k < n_steps; k++) {
        const kt_plan_step_t *st = &p->steps[k];
        unsigned ph = k + 1;
        t->start_ms[ph] = st->at_ms;
        t->end_ms[ph] = k + 1 < n_steps ? p->steps[k + 1].at_ms : p->duration_ms;
        unsigned apps = kt_step_applications(st);
        unsigned replay = apps < S_MAX_REPLAY ? apps : S_MAX_REPLAY;
        for (unsigned a = 0; a < replay; a++) {
            for (unsigned o = 0; o < st->n_ops; o++)
                kt_sim_apply(s, &st->ops[o], a);
            s_record(t, s, ph, a > 0);
        }
        if (apps > replay) {
            /* Past the replay bound, a random affinity may have been any
             * subset of the cgroup's CPUs. */
            for (unsigned i = 0; i < s->n_slots; i++) {
                kt_cpumask_t m;
                kt_sim_effective(s, s->slot_cg[i], &m);
                kt_cpumask_or(&t->slot_allowed[ph][i], &m);
            }
        }
    }
    free(s);
    return t;
}

bool kt_plan_has_timeline(const kt_plan_t *p)
{
    if (p->n_steps)
        return true;
    for (unsigned i = 0; i < p->n_cgroups; i++)
        if (p->cgroups[i].affinity != KT_AFFINITY_INHERIT || p->cgroups[i].deferred ||
            p->cgroups[i].spawn_slots)
            return true;
    return false;
}
