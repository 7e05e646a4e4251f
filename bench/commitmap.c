/* bench-commitmap: what the commit map saves. A kernel's commit (HEAD plus
 * the dirty check over every tracked file) read with libgit2 once per
 * kernel, as kt_coord_run_prepare does, against once per cell, for runs of
 * 28, 100 and 1000 cells over K kernels in synthetic git work trees (a few
 * commits, F tracked files, an untracked bzImage as a build leaves it).
 * Both sides run in the same process on the same trees; the figures are
 * medians of R repetitions. Then the real path: kt_coord_run_prepare on a
 * gauntlet of those kernels, with its lookup count. The last line is
 * key=value pairs.
 *
 *   bench-commitmap [--files F (1000)] [--kernels K (2)] [--reps R (1)]
 * KT_BENCH_KEEP=1 keeps the trees (the folder is printed). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "../tests/unit/kt_test_git.h"
#include "kt_coord.h"
#include "kt_gauntlet.h"
#include "kt_kernel_resolve.h"

#define S_MAX_KERNELS 8
#define S_MAX_REPS 15

static double s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int s_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double s_median(double *v, unsigned n)
{
    qsort(v, n, sizeof(*v), s_cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Dates a file an hour back. Files written in the same second as the index
 * are "racily clean": git and libgit2 must read them to tell, which a real
 * tree checked out a while ago does not pay. */
static void s_age(const char *path)
{
    struct timeval tv[2];
    gettimeofday(&tv[0], NULL);
    tv[0].tv_sec -= 3600;
    tv[1] = tv[0];
    if (utimes(path, tv) < 0)
        kt_test_die("utimes '%s': %s", path, strerror(errno));
}

/* A work tree like a (small) kernel tree: 16 files a folder as in Linux, a few
 * commits, a bzImage left untracked by the build. */
static void s_make_tree(const char *dir, unsigned files, unsigned salt, char *ret_head)
{
    git_repository *repo = kt_test_git_init(dir);
    char **paths = calloc(files, sizeof(*paths));
    if (!paths)
        kt_test_die("out of memory");
    for (unsigned i = 0; i < files; i++) {
        if (asprintf(&paths[i], "sub%03u/dir%02u/file%05u.c", i / 256, i / 16 % 16, i) < 0)
            kt_test_die("asprintf");
        char full[4096];
        snprintf(full, sizeof(full), "%s/%s", dir, paths[i]);
        kt_test_writef(full, "/* file %u of tree %u */\nint f%u(void) { return %u; }\n", i, salt, i,
                       i);
        s_age(full);
    }
    /* The top-level files that make it a kernel source tree. */
    snprintf(paths[0], strlen(paths[0]) + 1, "Kconfig");
    snprintf(paths[1], strlen(paths[1]) + 1, "Makefile");
    for (unsigned i = 0; i < 2; i++) {
        char full[4096];
        snprintf(full, sizeof(full), "%s/%s", dir, paths[i]);
        kt_test_writef(full, "# %s of tree %u\n", paths[i], salt);
        s_age(full);
    }
    kt_test_git_commit(repo, (const char *const *)paths, files, "import", NULL);
    /* A few more commits touching some files. */
    for (unsigned c = 0; c < 4; c++) {
        const char *changed[8];
        unsigned n = 0;
        for (unsigned i = c; i < files && n < 8; i += files / 8 + 1, n++) {
            char full[4096];
            snprintf(full, sizeof(full), "%s/%s", dir, paths[i]);
            kt_test_writef(full, "/* file %u, change %u */\n", i, c);
            s_age(full);
            changed[n] = paths[i];
        }
        kt_test_git_commit(repo, changed, n, "change", ret_head);
    }
    char img[4096];
    snprintf(img, sizeof(img), "%s/arch/x86/boot/bzImage", dir);
    kt_test_fake_bzimage(img, "6.12.0-bench", salt);
    for (unsigned i = 0; i < files; i++)
        free(paths[i]);
    free(paths);
    git_repository_free(repo);
}

/* n commit lookups spread over the kernels (cell i uses kernel i % k). */
static double s_lookups_ms(char dirs[][4096], unsigned k, unsigned n)
{
    char commit[48], err[512];
    double t0 = s_now_ms();
    for (unsigned i = 0; i < n; i++)
        if (kt_git_commit_of(dirs[i % k], commit, sizeof(commit), err, sizeof(err)) < 0)
            kt_test_die("%s", err);
    return s_now_ms() - t0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"files", required_argument, NULL, 'f'},
        {"kernels", required_argument, NULL, 'k'},
        {"reps", required_argument, NULL, 'r'},
        {0},
    };
    unsigned files = 1000, k = 2, reps = 1;
    int c;
    while ((c = getopt_long(argc, argv, "f:k:r:", opts, NULL)) != -1) {
        unsigned long v = optarg ? strtoul(optarg, NULL, 10) : 0;
        switch (c) {
        case 'f':
            files = (unsigned)(v < 16 ? 16 : v > 100000 ? 100000 : v);
            break;
        case 'k':
            k = (unsigned)(v < 1 ? 1 : v > S_MAX_KERNELS ? S_MAX_KERNELS : v);
            break;
        case 'r':
            reps = (unsigned)(v < 1 ? 1 : v > S_MAX_REPS ? S_MAX_REPS : v);
            break;
        default:
            fprintf(stderr, "usage: bench-commitmap [--files F] [--kernels K] [--reps R]\n");
            return 2;
        }
    }
    char *tmp = kt_test_tmpdir("commitmap");
    char dirs[S_MAX_KERNELS][4096];
    char head[S_MAX_KERNELS][41];
    double t0 = s_now_ms();
    for (unsigned i = 0; i < k; i++) {
        snprintf(dirs[i], sizeof(dirs[i]), "%s/linux%u", tmp, i);
        s_make_tree(dirs[i], files, i, head[i]);
    }
    char reps_text[32] = "one run each";
    if (reps > 1)
        snprintf(reps_text, sizeof(reps_text), "medians of %u runs", reps);
    printf("commitmap: %u kernels, each a git work tree of %u tracked files and 5 commits "
           "(built in %.0f ms); %s\n",
           k, files, s_now_ms() - t0, reps_text);
    /* Warm the page cache and libgit2 once so neither side pays for it. */
    s_lookups_ms(dirs, k, k);

    static const unsigned cells[] = {28, 100, 1000};
    double per_kernel[3], per_cell[3];
    printf("%8s %16s %16s %10s %22s\n", "cells", "per-kernel ms", "per-cell ms", "ratio",
           "lookups kernel/cell");
    for (unsigned i = 0; i < 3; i++) {
        double a[S_MAX_REPS], b[S_MAX_REPS];
        for (unsigned r = 0; r < reps; r++) {
            /* Once per kernel: k lookups, then every cell copies its
             * kernel's result (the copy is what prepare does, included). */
            double s = s_now_ms();
            char commits[S_MAX_KERNELS][48], err[512];
            for (unsigned j = 0; j < k; j++)
                if (kt_git_commit_of(dirs[j], commits[j], sizeof(commits[j]), err, sizeof(err)) < 0)
                    kt_test_die("%s", err);
            char *sink = malloc((size_t)cells[i] * 48);
            if (!sink)
                kt_test_die("out of memory");
            for (unsigned n = 0; n < cells[i]; n++)
                memcpy(sink + (size_t)n * 48, commits[n % k], 48);
            free(sink);
            a[r] = s_now_ms() - s;
            b[r] = s_lookups_ms(dirs, k, cells[i]);
        }
        per_kernel[i] = s_median(a, reps);
        per_cell[i] = s_median(b, reps);
        printf("%8u %16.2f %16.2f %9.1fx %14u/%u\n", cells[i], per_kernel[i], per_cell[i],
               per_cell[i] / (per_kernel[i] > 0 ? per_kernel[i] : 1e-3), k, cells[i]);
    }

    /* The real path: a gauntlet over these kernels (1 + 6 profiles x 2
     * topologies x 2 scenarios per kernel). */
    char sched[4200], gpath[4200];
    snprintf(sched, sizeof(sched), "%s/bin/scx_qmap", tmp);
    kt_test_writef(sched, "#!/bin/sh\n");
    snprintf(gpath, sizeof(gpath), "%s/g.yaml", tmp);
    char kernels[1024] = "";
    size_t off = 0;
    for (unsigned i = 0; i < k; i++)
        off += (size_t)snprintf(kernels + off, sizeof(kernels) - off,
                                "%s{path: linux%u, label: k%u}", i ? ", " : "", i, i);
    kt_test_writef(gpath,
                   "kernels: [%s]\n"
                   "schedulers:\n"
                   "  - name: eevdf\n"
                   "  - name: scx_qmap\n"
                   "    binary: bin/scx_qmap\n"
                   "    flags:\n"
                   "      - {name: slice-short, args: [\"-s\", \"5000\"]}\n"
                   "      - {name: batch, args: [\"-b\", \"8\"]}\n"
                   "      - {name: boost, args: [\"-H\"], requires: [batch]}\n"
                   "topologies: [tiny-1llc, tiny-2llc]\n"
                   "scenarios: [steady, pipe_pingpong]\n",
                   kernels);
    kt_gauntlet_t *g = NULL;
    char err[1024];
    if (kt_gauntlet_load(gpath, &g, err, sizeof(err)) < 0)
        kt_test_die("%s", err);
    double pr[S_MAX_REPS];
    unsigned lookups = 0, n_cells = 0;
    for (unsigned r = 0; r < reps; r++) {
        kt_coord_run_t run = {0};
        double s = s_now_ms();
        if (kt_coord_run_prepare(g, &run, err, sizeof(err)) < 0)
            kt_test_die("%s", err);
        pr[r] = s_now_ms() - s;
        lookups = run.commit_lookups;
        n_cells = run.n_cells;
        for (unsigned i = 0; i < run.n_cells; i++)
            if (strncmp(run.cells[i].spec.kernel_commit, head[run.cells[i].kernel], 7) != 0)
                kt_test_die("cell %s: commit %s, HEAD %s", run.cells[i].spec.cell_name,
                            run.cells[i].spec.kernel_commit, head[run.cells[i].kernel]);
        kt_coord_run_free(&run);
    }
    double prep = s_median(pr, reps);
    printf("kt_coord_run_prepare: %u cells over %u kernels in %.2f ms with %u libgit2 lookups "
           "(every cell carries its kernel's HEAD)\n",
           n_cells, k, prep, lookups);
    kt_gauntlet_free(&g);
    if (getenv("KT_BENCH_KEEP"))
        fprintf(stderr, "kept '%s'\n", tmp);
    else
        kt_test_rm_rf(tmp);
    free(tmp);

    printf("kernels=%u files=%u per_kernel_ms_28=%.3f per_cell_ms_28=%.3f ratio_28=%.1f "
           "per_kernel_ms_100=%.3f per_cell_ms_100=%.3f ratio_100=%.1f per_kernel_ms_1000=%.3f "
           "per_cell_ms_1000=%.3f ratio_1000=%.1f prepare_ms=%.3f prepare_cells=%u "
           "prepare_lookups=%u\n",
           k, files, per_kernel[0], per_cell[0], per_cell[0] / per_kernel[0], per_kernel[1],
           per_cell[1], per_cell[1] / per_kernel[1], per_kernel[2], per_cell[2],
           per_cell[2] / per_kernel[2], prep, n_cells, lookups);
    return lookups == k ? 0 : 1;
}
