/* Matrix expansion and budget selection.
 *
 * Cells come out in name order of the parts: scenario, topology, scheduler
 * and profile, kernel, repetition. A cell's id is the sha256 of its content
 * (kernel image hash, scheduler name and binary hash, profile and argument
 * string, topology label, the msgpack-encoded plan, repetition index), so
 * the same cell has the same id in every run. A name reads
 * gauntlet/{scenario}/{topology}/{profile}/{kernel_label}, where the topology
 * is the preset name (or the label of an N,L,C,T shape), the profile is the
 * scheduler's name followed by its enabled flags ("eevdf", "scx_qmap",
 * "scx_qmap+batch+boost"), and "/r{k}" is added (k = 1..repeat) when the
 * gauntlet repeats cells. A gauntlet's work_type replaces every cgroup's
 * work type before resolution (kt_scenario_override_work); the scenario part
 * of the name then reads {scenario}+{type}, and the id changes with the
 * plan.
 *
 * The gauntlet's payload entries extend the scenario axis after the
 * scenarios: a payload's cells read gauntlet/{payload}/..., their plan is
 * named after the payload (with the scenario beside it resolved into its
 * cgroups, or none: the payload alone, its timeout as the duration), and
 * the plan's payload names the binary by its sha, so a changed binary is a
 * new cell id. A scenario's own payload: goes into its cells the same way. */
#include "kt_matrix.h"
#include "kt_store.h"

#include <errno.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kt_chanmsg.h"
#include "kt_cleanup.h"
#include "kt_hash.h"

/* A cell is ~5.5 KiB (its plan): this bounds a run at ~90 MiB. */
#define S_MAX_CELLS 16384

/* Boot, scheduler start and collection under TCG on a loaded host, from
 * the single-host runs of issue 2: a small kernel reaches ktstr-init in
 * ~2 s, each vCPU adds ~150 ms, a sched_ext scheduler needs ~1.5 s to load
 * and enable, collecting and powering off ~0.5 s. */
#define S_EST_BOOT_MS 2000u
#define S_EST_PER_VCPU_MS 150u
#define S_EST_SCHED_MS 1500u
#define S_EST_COLLECT_MS 500u

uint32_t kt_matrix_estimate_ms(const kt_coord_cell_t *cell)
{
    uint64_t ms = S_EST_BOOT_MS + (uint64_t)S_EST_PER_VCPU_MS * cell->vcpus + S_EST_COLLECT_MS +
                  cell->spec.plan.duration_ms;
    if (cell->spec.sched_sha[0])
        ms += S_EST_SCHED_MS;
    return ms > UINT32_MAX ? UINT32_MAX : (uint32_t)ms;
}

static void s_sbuffer_destroyp(msgpack_sbuffer *b)
{
    msgpack_sbuffer_destroy(b);
}

static int s_hash_field(kt_hash_t *h, const char *s)
{
    /* Length-prefixed: no field can run into the next. */
    uint32_t n = (uint32_t)strlen(s);
    int r = kt_hash_update(h, &n, sizeof(n));
    return r < 0 ? r : kt_hash_update(h, s, n);
}

/* The content hash of a cell (see the header comment of this file). */
static int s_cell_id(const kt_coord_cell_t *cell, unsigned rep, char ret[KT_SHA_HEX])
{
    const kt_cellspec_t *s = &cell->spec;
    _cleanup_(s_sbuffer_destroyp) msgpack_sbuffer plan;
    msgpack_sbuffer_init(&plan);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &plan, msgpack_sbuffer_write);
    kt_plan_pack(&pk, &s->plan);
    if (!plan.data)
        return -ENOMEM;
    char topo[KT_TOPOLOGY_LABEL_MAX], repbuf[16];
    kt_topology_label(&s->plan.topology, topo, sizeof(topo));
    snprintf(repbuf, sizeof(repbuf), "%u", rep);
    kt_hash_t h;
    int r = kt_hash_init(&h);
    const char *fields[] = {"ktstr-cell-v1", s->kernel_sha, s->sched_name, s->sched_sha,
                            s->profile,      s->sched_args, topo,          repbuf};
    for (size_t i = 0; r >= 0 && i < KT_ARRAY_SIZE(fields); i++)
        r = s_hash_field(&h, fields[i]);
    uint32_t n = (uint32_t)plan.size;
    if (r >= 0)
        r = kt_hash_update(&h, &n, sizeof(n));
    if (r >= 0)
        r = kt_hash_update(&h, plan.data, plan.size);
    if (r >= 0)
        r = kt_hash_final_hex(&h, ret);
    return r < 0 ? r : 0;
}

/* Base arguments, then each enabled flag's in declaration order. */
static int s_sched_args(const kt_gauntlet_sched_t *s, uint32_t mask, char *buf, size_t len)
{
    size_t off = 0;
    buf[0] = '\0';
    for (unsigned i = 0; i < s->n_args; i++) {
        int w = snprintf(buf + off, len - off, "%s%s", off ? " " : "", s->args[i]);
        if (w < 0 || (size_t)w >= len - off)
            return -ENOBUFS;
        off += (size_t)w;
    }
    for (unsigned f = 0; f < s->n_flags; f++) {
        if (!(mask & (1u << f)))
            continue;
        for (unsigned i = 0; i < s->flags[f].n_args; i++) {
            int w = snprintf(buf + off, len - off, "%s%s", off ? " " : "", s->flags[f].args[i]);
            if (w < 0 || (size_t)w >= len - off)
                return -ENOBUFS;
            off += (size_t)w;
        }
    }
    return 0;
}

/* One value of the scenario axis: a scenario (maybe with its own payload:)
 * or a gauntlet payload entry (maybe with a scenario beside). */
typedef struct s_row {
    const char *name;                 /* the cell name's first part */
    const kt_scenario_t *scen;        /* NULL: the payload alone */
    const kt_payload_spec_t *payload; /* NULL: none */
    const char *binary;               /* the payload's host path (run->payloads[].path) */
} s_row_t;

static int s_cmp_cell_id(const void *a, const void *b)
{
    const kt_coord_cell_t *const *x = a, *const *y = b;
    return strcmp((*x)->spec.cell_id, (*y)->spec.cell_id);
}

int kt_matrix_expand(const kt_gauntlet_t *g, kt_coord_run_t *run, unsigned *ret_filtered, char *err,
                     size_t err_len)
{
    char dummy[1];
    if (!err) {
        err = dummy;
        err_len = sizeof(dummy);
    }
    /* The run's kernels, not the gauntlet's entries: a range spec is one
     * entry and many kernels. */
    if (!g || !run || !run->n_kernels ||
        (run->sched_map ? run->n_gscheds : run->n_scheds) != g->n_scheds) {
        snprintf(err, err_len, "matrix: kernels and schedulers are not resolved");
        return -EINVAL;
    }
    /* Profiles per scheduler, counted first so the size is known. */
    _cleanup_free_ uint32_t *masks =
        calloc((size_t)g->n_scheds << KT_GAUNTLET_MAX_FLAGS, sizeof(*masks));
    _cleanup_free_ unsigned *n_profiles = calloc(g->n_scheds ? g->n_scheds : 1, sizeof(unsigned));
    if (!masks || !n_profiles) {
        snprintf(err, err_len, "matrix: out of memory");
        return -ENOMEM;
    }
    uint64_t total_profiles = 0;
    for (unsigned s = 0; s < g->n_scheds; s++) {
        n_profiles[s] =
            kt_gauntlet_profiles(&g->scheds[s], masks + ((size_t)s << KT_GAUNTLET_MAX_FLAGS),
                                 1u << KT_GAUNTLET_MAX_FLAGS);
        total_profiles += n_profiles[s];
    }
    /* The scenario axis: the scenarios, then the payload entries. */
    unsigned n_rows = g->n_scenarios + g->n_payloads;
    _cleanup_free_ s_row_t *rows = calloc(n_rows ? n_rows : 1, sizeof(*rows));
    if (!rows) {
        snprintf(err, err_len, "matrix: out of memory");
        return -ENOMEM;
    }
    for (unsigned i = 0; i < g->n_scenarios; i++) {
        const kt_scenario_t *sc = &g->scenarios[i];
        rows[i] = (s_row_t){sc->name, sc, NULL, NULL};
        if (kt_payload_present(&sc->payload))
            rows[i].payload = &sc->payload, rows[i].binary = sc->payload_binary;
    }
    for (unsigned i = 0; i < g->n_payloads; i++) {
        const kt_gauntlet_payload_t *gp = &g->payloads[i];
        rows[g->n_scenarios + i] =
            (s_row_t){gp->name, gp->has_scenario ? &gp->scenario : NULL, &gp->spec, gp->binary};
    }
    unsigned fitting = 0, filtered = 0;
    for (unsigned sc = 0; sc < n_rows; sc++)
        for (unsigned t = 0; t < g->n_topologies; t++)
            if (!rows[sc].scen ||
                kt_scenario_fits(rows[sc].scen, &g->topologies[t].topo, NULL, 0) == 0)
                fitting++;
            else
                filtered++;
    uint64_t want = (uint64_t)fitting * total_profiles * run->n_kernels * g->repeat;
    if (want > S_MAX_CELLS) {
        snprintf(err, err_len,
                 "%s: %llu cells, more than the limit of %u (fewer flags, topologies or "
                 "scenarios, or split the gauntlet)",
                 g->path, (unsigned long long)want, S_MAX_CELLS);
        return -E2BIG;
    }
    kt_coord_cell_t *cells = calloc(want ? want : 1, sizeof(*cells));
    if (!cells) {
        snprintf(err, err_len, "matrix: out of memory for %llu cells", (unsigned long long)want);
        return -ENOMEM;
    }
    unsigned n = 0;
    int r = 0;
    _cleanup_free_ kt_scenario_t *overridden =
        g->override_work ? malloc(sizeof(*overridden)) : NULL;
    if (g->override_work && !overridden) {
        free(cells);
        snprintf(err, err_len, "matrix: out of memory");
        return -ENOMEM;
    }
    static const kt_thresholds_t no_layer; /* a payload alone: no scenario layer */
    const char *wt = g->override_work ? kt_work_type_name(g->work_type) : NULL;
    for (unsigned sc = 0; sc < n_rows && r == 0; sc++) {
        const s_row_t *row = &rows[sc];
        const kt_scenario_t *scen = row->scen;
        if (overridden && scen) {
            *overridden = *scen;
            kt_scenario_override_work(overridden, g->work_type);
            scen = overridden;
        }
        const char *row_wt = scen ? wt : NULL;
        unsigned pidx = 0;
        if (row->payload) {
            for (pidx = 0; pidx < run->n_payloads; pidx++)
                if (strcmp(run->payloads[pidx].path, row->binary) == 0)
                    break;
            if (pidx == run->n_payloads) {
                snprintf(err, err_len, "matrix: payload '%s' of '%s' is not hashed", row->binary,
                         row->name);
                r = -EINVAL;
                break;
            }
        }
        for (unsigned t = 0; t < g->n_topologies && r == 0; t++) {
            const kt_gauntlet_topology_t *topo = &g->topologies[t];
            if (scen && kt_scenario_fits(scen, &topo->topo, NULL, 0) != 0)
                continue;
            kt_plan_t plan;
            char why[256];
            if (scen) {
                r = kt_scenario_resolve(scen, &topo->topo, g->duration_ms, &plan, why, sizeof(why));
            } else {
                /* The payload is the whole workload: it runs until it ends,
                 * at most its timeout, which is also the estimate. */
                memset(&plan, 0, sizeof(plan));
                plan.topology = topo->topo;
                plan.duration_ms = row->payload->timeout_ms;
                kt_thresholds_default(&plan.thresholds);
            }
            if (r < 0) {
                if (sc >= g->n_scenarios)
                    snprintf(err, err_len,
                             "%s: payload '%s' with scenario '%s'%s%s on topology '%s': %s",
                             g->path, row->name, scen->name, wt ? " and work_type " : "",
                             wt ? wt : "", topo->name, why);
                else if (wt)
                    snprintf(err, err_len,
                             "%s: scenario '%s' with work_type %s on topology '%s': %s", g->path,
                             scen->name, wt, topo->name, why);
                else
                    snprintf(err, err_len,
                             "%s: scenario '%s' on topology '%s': %s (constraints such as "
                             "min_llcs in the scenario leave such topologies out)",
                             g->path, scen->name, topo->name, why);
                break;
            }
            if (row->payload) {
                plan.payload = *row->payload;
                kt_coord_payload_stamp(run, pidx, &plan.payload);
            }
            /* A payload entry's cells are its own, whatever runs beside. */
            if (sc >= g->n_scenarios)
                snprintf(plan.scenario, sizeof(plan.scenario), "%s", row->name);
            for (unsigned s = 0; s < g->n_scheds && r == 0; s++) {
                const kt_gauntlet_sched_t *gs = &g->scheds[s];
                for (unsigned p = 0; p < n_profiles[s] && r == 0; p++) {
                    uint32_t mask = masks[((size_t)s << KT_GAUNTLET_MAX_FLAGS) + p];
                    char profile[128], args[512];
                    kt_gauntlet_profile_name(gs, mask, profile, sizeof(profile));
                    if (s_sched_args(gs, mask, args, sizeof(args)) < 0) {
                        snprintf(err, err_len,
                                 "%s: scheduler '%s' profile '%s': arguments "
                                 "longer than 511 bytes",
                                 g->path, gs->name, profile);
                        r = -E2BIG;
                        break;
                    }
                    for (unsigned k = 0; k < run->n_kernels && r == 0; k++) {
                        const kt_coord_kernel_t *kern = &run->kernels[k];
                        unsigned si = kt_coord_run_sched(run, k, s);
                        const kt_coord_sched_t *rs = &run->scheds[si];
                        for (unsigned rep = 0; rep < g->repeat; rep++) {
                            kt_coord_cell_t *c = &cells[n];
                            kt_cellspec_t *spec = &c->spec;
                            c->kernel = k;
                            c->sched = si;
                            c->vcpus = kt_topology_cpus(&topo->topo);
                            c->memory_mib =
                                kt_topology_memory_mib(&topo->topo, scen ? scen->memory_mib : 0);
                            snprintf(spec->kernel_label, sizeof(spec->kernel_label), "%s",
                                     kern->label);
                            snprintf(spec->kernel_version, sizeof(spec->kernel_version), "%s",
                                     kern->version);
                            snprintf(spec->kernel_commit, sizeof(spec->kernel_commit), "%s",
                                     kern->commit);
                            snprintf(spec->kernel_sha, sizeof(spec->kernel_sha), "%s", kern->sha);
                            spec->kernel_size = kern->size;
                            snprintf(spec->sched_name, sizeof(spec->sched_name), "%s", rs->name);
                            snprintf(spec->sched_sha, sizeof(spec->sched_sha), "%s", rs->sha);
                            spec->sched_size = rs->size;
                            snprintf(spec->sched_args, sizeof(spec->sched_args), "%s", args);
                            snprintf(spec->profile, sizeof(spec->profile), "%s", profile);
                            snprintf(spec->topology_preset, sizeof(spec->topology_preset), "%s",
                                     topo->preset ? topo->name : "");
                            spec->memory_mib = c->memory_mib;
                            spec->plan = plan;
                            /* defaults -> scheduler -> scenario */
                            kt_thresholds_layer(&gs->checks, scen ? &scen->thresholds : &no_layer,
                                                &spec->plan.thresholds);
                            char repbuf[16] = "";
                            if (g->repeat > 1)
                                snprintf(repbuf, sizeof(repbuf), "/r%u", rep + 1);
                            int w = snprintf(spec->cell_name, sizeof(spec->cell_name),
                                             "gauntlet/%s%s%s/%s/%s%s%s/%s%s", row->name,
                                             row_wt ? "+" : "", row_wt ? row_wt : "", topo->name,
                                             rs->name, mask ? "+" : "", mask ? profile : "",
                                             kern->label, repbuf);
                            if (w < 0 || (size_t)w >= sizeof(spec->cell_name)) {
                                snprintf(err, err_len,
                                         "%s: the cell name of scenario '%s', topology '%s', "
                                         "profile '%s', kernel '%s' is longer than %zu bytes",
                                         g->path, row->name, topo->name, profile, kern->label,
                                         sizeof(spec->cell_name) - 1);
                                r = -ENAMETOOLONG;
                                break;
                            }
                            if ((r = s_cell_id(c, rep, spec->cell_id)) < 0) {
                                snprintf(err, err_len, "matrix: cannot hash a cell: %s",
                                         strerror(-r));
                                break;
                            }
                            c->est_ms = kt_matrix_estimate_ms(c);
                            n++;
                        }
                    }
                }
            }
        }
    }
    if (r == 0 && n > 1) {
        /* Content hashes of distinct cells differ unless two parts of the
         * gauntlet describe the same thing twice: refuse that. */
        _cleanup_free_ kt_coord_cell_t **by_id = malloc(n * sizeof(*by_id));
        if (!by_id) {
            r = -ENOMEM;
            snprintf(err, err_len, "matrix: out of memory");
        }
        for (unsigned i = 0; r == 0 && i < n; i++)
            by_id[i] = &cells[i];
        if (r == 0)
            qsort(by_id, n, sizeof(*by_id), s_cmp_cell_id);
        for (unsigned i = 1; r == 0 && i < n; i++)
            if (strcmp(by_id[i - 1]->spec.cell_id, by_id[i]->spec.cell_id) == 0) {
                snprintf(err, err_len, "%s: cells '%s' and '%s' are the same cell", g->path,
                         by_id[i - 1]->spec.cell_name, by_id[i]->spec.cell_name);
                r = -EEXIST;
            }
    }
    if (r < 0) {
        free(cells);
        return r;
    }
    free(run->cells);
    run->cells = cells;
    run->n_cells = n;
    run->n_filtered = filtered * (unsigned)(total_profiles * run->n_kernels * g->repeat);
    if (ret_filtered)
        *ret_filtered = run->n_filtered;
    return 0;
}

/* Coverage features of a cell: each part alone and the pairs of parts. */
#define S_FEATURES 11

static uint64_t s_fnv(const char *tag, const char *a, const char *b)
{
    uint64_t h = 1469598103934665603ull;
    const char *parts[] = {tag, a, b};
    for (size_t p = 0; p < 3; p++) {
        for (const char *s = parts[p] ? parts[p] : ""; *s; s++) {
            h ^= (unsigned char)*s;
            h *= 1099511628211ull;
        }
        h ^= 0xff;
        h *= 1099511628211ull;
    }
    return h ? h : 1;
}

static void s_features(const kt_coord_cell_t *c, uint64_t f[S_FEATURES])
{
    const kt_cellspec_t *s = &c->spec;
    char topo[KT_TOPOLOGY_LABEL_MAX], prof[KT_NAME_MAX + 130];
    kt_topology_label(&s->plan.topology, topo, sizeof(topo));
    snprintf(prof, sizeof(prof), "%s+%s", s->sched_name, s->profile);
    const char *scen = s->plan.scenario, *kern = s->kernel_sha;
    f[0] = s_fnv("scenario", scen, NULL);
    f[1] = s_fnv("topology", topo, NULL);
    f[2] = s_fnv("profile", prof, NULL);
    f[3] = s_fnv("kernel", kern, NULL);
    f[4] = s_fnv("sched", s->sched_name, NULL);
    f[5] = s_fnv("scen-topo", scen, topo);
    f[6] = s_fnv("scen-prof", scen, prof);
    f[7] = s_fnv("topo-prof", topo, prof);
    f[8] = s_fnv("kern-scen", kern, scen);
    f[9] = s_fnv("kern-topo", kern, topo);
    f[10] = s_fnv("kern-prof", kern, prof);
}

/* An open-addressing set of non-zero 64-bit keys. */
typedef struct s_set {
    uint64_t *slots;
    size_t cap;
} s_set_t;

static bool s_set_has(const s_set_t *s, uint64_t k)
{
    for (size_t i = k & (s->cap - 1);; i = (i + 1) & (s->cap - 1)) {
        if (s->slots[i] == k)
            return true;
        if (s->slots[i] == 0)
            return false;
    }
}

static void s_set_add(s_set_t *s, uint64_t k)
{
    size_t i = k & (s->cap - 1);
    while (s->slots[i] && s->slots[i] != k)
        i = (i + 1) & (s->cap - 1);
    s->slots[i] = k;
}

/* Singles weigh more than pairs: first every value once, then combinations. */
static uint64_t s_gain(const s_set_t *covered, const uint64_t f[S_FEATURES])
{
    uint64_t g = 0;
    for (unsigned i = 0; i < S_FEATURES; i++)
        if (!s_set_has(covered, f[i]))
            g += i < 5 ? 16 : 1;
    return g;
}

/* Score: new coverage per estimated second, scaled to stay an integer so
 * the choice is exact and deterministic. */
static uint64_t s_score(uint64_t gain, uint32_t est_ms)
{
    return gain * 1000000000ull / (est_ms ? est_ms : 1);
}

unsigned kt_matrix_budget(kt_coord_run_t *run, uint64_t budget_ms)
{
    unsigned n = run->n_cells;
    if (n == 0)
        return 0;
    uint64_t *feat = malloc((size_t)n * S_FEATURES * sizeof(*feat));
    uint64_t *score = malloc((size_t)n * sizeof(*score));
    bool *kept = calloc(n, sizeof(*kept));
    s_set_t covered = {0};
    covered.cap = 64;
    while (covered.cap < (size_t)n * S_FEATURES * 2)
        covered.cap <<= 1;
    covered.slots = calloc(covered.cap, sizeof(*covered.slots));
    if (!feat || !score || !kept || !covered.slots) {
        /* Without memory to choose, keep the first cells that fit. */
        free(feat);
        free(score);
        free(kept);
        free(covered.slots);
        uint64_t used = 0;
        unsigned k = 0;
        for (unsigned i = 0; i < n; i++)
            if (used + kt_coord_cell_expect_ms(&run->cells[i]) <= budget_ms) {
                used += kt_coord_cell_expect_ms(&run->cells[i]);
                run->cells[k++] = run->cells[i];
            }
        run->n_cells = k;
        return k;
    }
    for (unsigned i = 0; i < n; i++) {
        s_features(&run->cells[i], feat + (size_t)i * S_FEATURES);
        score[i] = UINT64_MAX; /* not computed yet: an upper bound */
    }
    uint64_t used = 0;
    /* Lazy greedy: coverage gains only shrink as cells are kept, so a
     * cached score is an upper bound and the best fresh score wins. */
    for (;;) {
        unsigned best = n;
        for (unsigned i = 0; i < n; i++) {
            if (kept[i] || used + kt_coord_cell_expect_ms(&run->cells[i]) > budget_ms)
                continue;
            if (best == n || score[i] > score[best])
                best = i;
        }
        if (best == n)
            break;
        uint64_t fresh =
            s_score(s_gain(&covered, feat + (size_t)best * S_FEATURES), kt_coord_cell_expect_ms(&run->cells[best]));
        if (fresh != score[best]) {
            /* Stale bound: store the fresh score and look again. */
            score[best] = fresh;
            continue;
        }
        /* Once nothing adds coverage, fill in expansion order. */
        if (fresh == 0) {
            for (unsigned i = 0; i < n; i++) {
                if (!kept[i] && used + kt_coord_cell_expect_ms(&run->cells[i]) <= budget_ms) {
                    kept[i] = true;
                    used += kt_coord_cell_expect_ms(&run->cells[i]);
                }
            }
            break;
        }
        kept[best] = true;
        used += kt_coord_cell_expect_ms(&run->cells[best]);
        for (unsigned f = 0; f < S_FEATURES; f++)
            s_set_add(&covered, feat[(size_t)best * S_FEATURES + f]);
    }
    unsigned k = 0;
    for (unsigned i = 0; i < n; i++)
        if (kept[i])
            run->cells[k++] = run->cells[i];
    run->n_cells = k;
    free(feat);
    free(score);
    free(kept);
    free(covered.slots);
    return k;
}

unsigned kt_matrix_learn_times(kt_coord_run_t *run, struct kt_store *store)
{
    unsigned known = 0;
    for (unsigned i = 0; store && i < run->n_cells; i++) {
        uint64_t ms;
        kt_coord_cell_t *c = &run->cells[i];
        if (kt_store_cell_ms(store, c->spec.cell_id, 5, &ms) == 0 && ms > 0) {
            c->hist_ms = ms > UINT32_MAX ? UINT32_MAX : (uint32_t)ms;
            known++;
        }
    }
    return known;
}

unsigned kt_matrix_learn_results(kt_coord_run_t *run, const char *results_dir)
{
    char err[512];
    _cleanup_(kt_store_close) kt_store_t *store = NULL;
    if (!results_dir || kt_store_open_results(results_dir, &store, err, sizeof(err)) < 0)
        return 0;
    return kt_matrix_learn_times(run, store);
}
