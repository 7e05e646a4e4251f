/* The run model: building a run from a gauntlet (kernels resolved once,
 * schedulers hashed once, then the matrix), run ids, and freeing. */
#include "kt_coord.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <sodium.h>

#include "kt_cleanup.h"
#include "kt_fileio.h"
#include "kt_hash.h"
#include "kt_kcache.h"
#include "kt_kernel_resolve.h"
#include "kt_kernels.h"
#include "kt_matrix.h"

void kt_coord_run_free(kt_coord_run_t *run)
{
    if (!run)
        return;
    free(run->kernels);
    free(run->scheds);
    free(run->sched_map);
    free(run->payloads);
    free(run->cells);
    memset(run, 0, sizeof(*run));
}

static int s_finish(const kt_gauntlet_t *g, kt_coord_run_t *runp, kt_coord_run_t *ret, char *err,
                    size_t err_len);

static int s_grow(kt_coord_run_t *run, unsigned *cap)
{
    unsigned nc = *cap * 2;
    kt_coord_kernel_t *nv = nc <= 4096 ? realloc(run->kernels, nc * sizeof(*nv)) : NULL;
    if (!nv)
        return -ENOMEM;
    run->kernels = nv;
    *cap = nc;
    return 0;
}

/* Two kernels of a run may not be the same image nor share a label: the
 * label names cells and result folders. */
static int s_check_kernels(const kt_coord_run_t *run, const char *origin, char *err,
                           size_t err_len)
{
    for (unsigned i = 0; i < run->n_kernels; i++)
        for (unsigned j = 0; j < i; j++) {
            const kt_coord_kernel_t *a = &run->kernels[j], *b = &run->kernels[i];
            if (strcmp(a->sha, b->sha) == 0) {
                snprintf(err, err_len, "%s: kernels[%u] ('%s') is the same image as kernels[%u]",
                         origin, i, b->path, j);
                return -EEXIST;
            }
            if (strcmp(a->label, b->label) == 0) {
                snprintf(err, err_len,
                         "%s: kernels[%u] and kernels[%u] are both labelled '%s' (set 'label:' "
                         "on one of them)",
                         origin, j, i, b->label);
                return -EEXIST;
            }
        }
    return 0;
}

int kt_coord_run_prepare(const kt_gauntlet_t *g, kt_coord_run_t *ret, char *err, size_t err_len)
{
    char dummy[1];
    if (!err) {
        err = dummy;
        err_len = sizeof(dummy);
    }
    if (!g || !ret)
        return -EINVAL;
    _cleanup_(kt_coord_run_free) kt_coord_run_t run = {0};
    snprintf(run.gauntlet_path, sizeof(run.gauntlet_path), "%s", g->path);
    unsigned cap = g->n_kernels ? g->n_kernels : 1;
    run.kernels = calloc(cap, sizeof(*run.kernels));
    if (!run.kernels) {
        snprintf(err, err_len, "%s: out of memory", g->path);
        return -ENOMEM;
    }
    /* The commit map: one resolution per kernel; every cell of that kernel
     * copies the result. Path entries resolve here; spec entries through
     * the cache (nothing is built: `run` builds before it calls
     * kt_coord_run_prepare_kernels). */
    kt_kernels_opts_t ko = {.kconfig = kt_kernels_default_kconfig(), .base_dir = g->dir,
                            .quiet = true};
    char root[4096];
    if (kt_kcache_root(root, sizeof(root), NULL, 0) == 0)
        ko.cache_root = root;
    for (unsigned i = 0; i < g->n_kernels; i++) {
        char why[2048];
        if (g->kernels[i].path[0]) {
            if (run.n_kernels >= cap && s_grow(&run, &cap) < 0)
                return -ENOMEM;
            kt_coord_kernel_t *k = &run.kernels[run.n_kernels];
            int r = kt_kernel_resolve(g->kernels[i].path, g->kernels[i].label, k,
                                      &run.commit_lookups, why, sizeof(why));
            if (r < 0) {
                snprintf(err, err_len, "%s: kernels[%u]: %s", g->path, i, why);
                return r;
            }
            run.n_kernels++;
            continue;
        }
        kt_kres_t *v = NULL;
        unsigned n = 0;
        int r = kt_kernels_resolve(&ko, g->kernels[i].spec, g->kernels[i].label, &v, &n, why,
                                   sizeof(why));
        for (unsigned j = 0; r == 0 && j < n; j++) {
            if (v[j].need != KT_KRES_READY) {
                snprintf(why, sizeof(why),
                         "kernel spec '%.200s': %s %s is not cached (`ktstr-coord run` builds it; "
                         "or `ktstr-coord kernel build`)",
                         v[j].spec, v[j].label, v[j].commit);
                r = -ENOENT;
                break;
            }
            if (run.n_kernels >= cap && (r = s_grow(&run, &cap)) < 0)
                break;
            r = kt_kernels_to_coord(&v[j], &run.kernels[run.n_kernels], why, sizeof(why));
            if (r == 0)
                run.n_kernels++;
        }
        free(v);
        if (r < 0) {
            snprintf(err, err_len, "%s: kernels[%u]: %s", g->path, i, why);
            return r;
        }
    }
    int r = s_check_kernels(&run, g->path, err, err_len);
    if (r < 0)
        return r;
    return s_finish(g, &run, ret, err, err_len);
}

int kt_coord_run_prepare_kernels(const kt_gauntlet_t *g, const kt_coord_kernel_t *kernels,
                                 unsigned n_kernels, kt_coord_run_t *ret, char *err,
                                 size_t err_len)
{
    char dummy[1];
    if (!err) {
        err = dummy;
        err_len = sizeof(dummy);
    }
    if (!g || !ret || !kernels || !n_kernels)
        return -EINVAL;
    _cleanup_(kt_coord_run_free) kt_coord_run_t run = {0};
    snprintf(run.gauntlet_path, sizeof(run.gauntlet_path), "%s", g->path);
    run.kernels = calloc(n_kernels, sizeof(*run.kernels));
    if (!run.kernels)
        return -ENOMEM;
    memcpy(run.kernels, kernels, n_kernels * sizeof(*kernels));
    run.n_kernels = n_kernels;
    int r = s_check_kernels(&run, "--kernel", err, err_len);
    if (r < 0)
        return r;
    return s_finish(g, &run, ret, err, err_len);
}

/* Schedulers hashed once, then the matrix; moves run into ret. */
static int s_finish(const kt_gauntlet_t *g, kt_coord_run_t *runp, kt_coord_run_t *ret, char *err,
                    size_t err_len)
{
    _cleanup_(kt_coord_run_free) kt_coord_run_t run = *runp;
    memset(runp, 0, sizeof(*runp));
    snprintf(run.gauntlet_path, sizeof(run.gauntlet_path), "%s", g->path);
    /* One binary per scheduler, or per scheduler and kernel for those the
     * kernels carry themselves (from_kernel). */
    size_t n_bins = 0;
    for (unsigned i = 0; i < g->n_scheds; i++)
        n_bins += g->scheds[i].from_kernel[0] ? run.n_kernels : 1;
    run.scheds = calloc(n_bins ? n_bins : 1, sizeof(*run.scheds));
    run.sched_map = calloc((size_t)run.n_kernels * g->n_scheds + 1, sizeof(*run.sched_map));
    if (!run.scheds || !run.sched_map) {
        snprintf(err, err_len, "%s: out of memory", g->path);
        return -ENOMEM;
    }
    run.n_gscheds = g->n_scheds;
    for (unsigned i = 0; i < g->n_scheds; i++) {
        const kt_gauntlet_sched_t *gs = &g->scheds[i];
        unsigned per = gs->from_kernel[0] ? run.n_kernels : 1;
        for (unsigned k = 0; k < per; k++) {
            kt_coord_sched_t *s = &run.scheds[run.n_scheds];
            snprintf(s->name, sizeof(s->name), "%s", gs->name);
            s->kernel = gs->from_kernel[0] ? (int)k : -1;
            char from[4200] = "";
            const char *bin = gs->binary;
            if (gs->from_kernel[0]) {
                char kdir[4096];
                kt_path_dir(run.kernels[k].path, kdir, sizeof(kdir));
                snprintf(from, sizeof(from), "%s/bin/%s", kdir, gs->from_kernel);
                bin = from;
            }
            if (bin[0]) {
                struct stat st;
                int e = stat(bin, &st) < 0 ? errno : S_ISREG(st.st_mode) ? 0 : EINVAL;
                if (e) {
                    const char *why = e == EINVAL ? "not a regular file" : strerror(e);
                    if (gs->from_kernel[0])
                        snprintf(err, err_len,
                                 "%s: schedulers[%u] ('%s'): from_kernel: kernel '%s' has no "
                                 "'%s' beside its bzImage: %s",
                                 g->path, i, gs->name, run.kernels[k].label, bin, why);
                    else
                        snprintf(err, err_len, "%s: schedulers[%u]: '%s': %s", g->path, i, bin,
                                 why);
                    return -e;
                }
                snprintf(s->path, sizeof(s->path), "%s", bin);
                s->size = (uint64_t)st.st_size;
                int r = kt_hash_sha256_file(bin, s->sha);
                if (r < 0) {
                    snprintf(err, err_len, "%s: schedulers[%u]: cannot hash '%s': %s", g->path, i,
                             bin, strerror(-r));
                    return r;
                }
            }
            for (unsigned kk = 0; kk < run.n_kernels; kk++)
                if (!gs->from_kernel[0] || kk == k)
                    run.sched_map[(size_t)kk * g->n_scheds + i] = run.n_scheds;
            run.n_scheds++;
        }
    }
    /* Payload binaries, each hashed once: the payload entries' and those of
     * scenarios that declare a payload: (the matrix finds them by path). */
    unsigned cap = g->n_payloads + g->n_scenarios;
    run.payloads = calloc(cap ? cap : 1, sizeof(*run.payloads));
    if (!run.payloads) {
        snprintf(err, err_len, "%s: out of memory", g->path);
        return -ENOMEM;
    }
    unsigned idx;
    char why[4400];
    for (unsigned i = 0; i < g->n_scenarios; i++) {
        const kt_scenario_t *sc = &g->scenarios[i];
        if (!kt_payload_present(&sc->payload))
            continue;
        int r = kt_coord_run_add_payload(&run, cap, sc->payload_binary, &idx, why, sizeof(why));
        if (r < 0) {
            snprintf(err, err_len, "%s: scenario '%s': payload %s", g->path, sc->name, why);
            return r;
        }
    }
    for (unsigned i = 0; i < g->n_payloads; i++) {
        int r = kt_coord_run_add_payload(&run, cap, g->payloads[i].binary, &idx, why, sizeof(why));
        if (r < 0) {
            snprintf(err, err_len, "%s: payloads[%u] ('%s'): %s", g->path, i, g->payloads[i].name,
                     why);
            return r;
        }
    }
    int r = kt_matrix_expand(g, &run, NULL, err, err_len);
    if (r < 0)
        return r;
    *ret = run;
    memset(&run, 0, sizeof(run));
    return 0;
}

int kt_coord_run_add_payload(kt_coord_run_t *run, unsigned cap, const char *path,
                             unsigned *ret_index, char *why, size_t why_len)
{
    for (unsigned i = 0; i < run->n_payloads; i++)
        if (strcmp(run->payloads[i].path, path) == 0) {
            *ret_index = i;
            return 0;
        }
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    if (!*base || strlen(base) >= KT_PAYLOAD_NAME_MAX || !strcmp(base, ".") ||
        !strcmp(base, "..")) {
        snprintf(why, why_len, "'%s': its file name must be 1..%d bytes", path,
                 KT_PAYLOAD_NAME_MAX - 1);
        return -EINVAL;
    }
    if (strlen(path) >= sizeof(run->payloads[0].path)) {
        snprintf(why, why_len, "'%.200s...': longer than %zu bytes", path,
                 sizeof(run->payloads[0].path) - 1);
        return -ENAMETOOLONG;
    }
    if (run->n_payloads >= cap) {
        snprintf(why, why_len, "'%s': more than %u payload binaries", path, cap);
        return -E2BIG;
    }
    struct stat st;
    if (stat(path, &st) < 0) {
        int e = errno;
        snprintf(why, why_len, "'%s': %s", path, strerror(e));
        return -e;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(why, why_len, "'%s': not a regular file", path);
        return -EINVAL;
    }
    kt_coord_sched_t *pl = &run->payloads[run->n_payloads];
    memset(pl, 0, sizeof(*pl));
    int r = kt_hash_sha256_file(path, pl->sha);
    if (r < 0) {
        snprintf(why, why_len, "'%s': cannot hash it: %s", path, strerror(-r));
        return r;
    }
    snprintf(pl->name, sizeof(pl->name), "%s", base);
    snprintf(pl->path, sizeof(pl->path), "%s", path);
    pl->size = (uint64_t)st.st_size;
    *ret_index = run->n_payloads++;
    return 0;
}

void kt_coord_payload_stamp(const kt_coord_run_t *run, unsigned index, kt_payload_spec_t *spec)
{
    const kt_coord_sched_t *pl = &run->payloads[index];
    snprintf(spec->sha, sizeof(spec->sha), "%s", pl->sha);
    spec->size = pl->size;
}

void kt_coord_run_id_new(char buf[40])
{
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    uint32_t rnd = 0;
    if (sodium_init() >= 0)
        rnd = randombytes_uniform(1u << 24);
    snprintf(buf, 40, "%04d%02d%02d-%02d%02d%02d-%06x", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, rnd);
}

int kt_coord_run_set_id(kt_coord_run_t *run, const char *run_id)
{
    if (!run || !run_id)
        return -EINVAL;
    size_t n = strlen(run_id);
    if (n == 0 || n >= sizeof(run->run_id) || !strcmp(run_id, ".") || !strcmp(run_id, "..") ||
        strspn(run_id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") != n)
        return -EINVAL;
    snprintf(run->run_id, sizeof(run->run_id), "%s", run_id);
    for (unsigned i = 0; i < run->n_cells; i++)
        snprintf(run->cells[i].spec.run_id, sizeof(run->cells[i].spec.run_id), "%s", run_id);
    return 0;
}
