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
#include "kt_hash.h"
#include "kt_kernel_resolve.h"
#include "kt_matrix.h"

void kt_coord_run_free(kt_coord_run_t *run)
{
    if (!run)
        return;
    free(run->kernels);
    free(run->scheds);
    free(run->payloads);
    free(run->cells);
    memset(run, 0, sizeof(*run));
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
    run.kernels = calloc(g->n_kernels ? g->n_kernels : 1, sizeof(*run.kernels));
    run.scheds = calloc(g->n_scheds ? g->n_scheds : 1, sizeof(*run.scheds));
    if (!run.kernels || !run.scheds) {
        snprintf(err, err_len, "%s: out of memory", g->path);
        return -ENOMEM;
    }
    /* The commit map: one resolution per kernel; every cell of that kernel
     * copies the result. */
    for (unsigned i = 0; i < g->n_kernels; i++) {
        char why[1024];
        kt_coord_kernel_t *k = &run.kernels[i];
        int r = kt_kernel_resolve(g->kernels[i].path, g->kernels[i].label, k, &run.commit_lookups,
                                  why, sizeof(why));
        if (r < 0) {
            snprintf(err, err_len, "%s: kernels[%u]: %s", g->path, i, why);
            return r;
        }
        run.n_kernels++;
        for (unsigned j = 0; j < i; j++) {
            if (strcmp(run.kernels[j].sha, k->sha) == 0) {
                snprintf(err, err_len, "%s: kernels[%u] ('%s') is the same image as kernels[%u]",
                         g->path, i, k->path, j);
                return -EEXIST;
            }
            if (strcmp(run.kernels[j].label, k->label) == 0) {
                snprintf(err, err_len,
                         "%s: kernels[%u] and kernels[%u] are both labelled '%s' (set 'label:' "
                         "on one of them)",
                         g->path, j, i, k->label);
                return -EEXIST;
            }
        }
    }
    for (unsigned i = 0; i < g->n_scheds; i++) {
        const kt_gauntlet_sched_t *gs = &g->scheds[i];
        kt_coord_sched_t *s = &run.scheds[i];
        snprintf(s->name, sizeof(s->name), "%s", gs->name);
        if (gs->binary[0]) {
            struct stat st;
            int e = stat(gs->binary, &st) < 0 ? errno : S_ISREG(st.st_mode) ? 0 : EINVAL;
            if (e) {
                snprintf(err, err_len, "%s: schedulers[%u]: '%s': %s", g->path, i, gs->binary,
                         e == EINVAL ? "not a regular file" : strerror(e));
                return -e;
            }
            snprintf(s->path, sizeof(s->path), "%s", gs->binary);
            s->size = (uint64_t)st.st_size;
            int r = kt_hash_sha256_file(gs->binary, s->sha);
            if (r < 0) {
                snprintf(err, err_len, "%s: schedulers[%u]: cannot hash '%s': %s", g->path, i,
                         gs->binary, strerror(-r));
                return r;
            }
        }
        run.n_scheds++;
    }
    int r = kt_matrix_expand(g, &run, NULL, err, err_len);
    if (r < 0)
        return r;
    *ret = run;
    memset(&run, 0, sizeof(run));
    return 0;
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
