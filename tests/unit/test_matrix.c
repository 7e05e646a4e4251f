/* Matrix expansion: the example gives 28 cells with the right
 * names, arguments, sizes and estimates; constraints filter; ids are
 * content hashes, stable across runs and changed by any content; budget
 * selection is greedy for coverage, within the budget and deterministic;
 * a from_kernel scheduler is each kernel's own binary. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "kt_cleanup.h"
#include "kt_coord.h"
#include "kt_gauntlet.h"
#include "kt_hash.h"
#include "kt_matrix.h"

#define S_DIR KT_FIXTURES "/gauntlets"

static void s_gauntlet_freep(kt_gauntlet_t **g)
{
    kt_gauntlet_free(g);
}

#define _cleanup_gauntlet_ __attribute__((cleanup(s_gauntlet_freep)))
#define _cleanup_run_ __attribute__((cleanup(kt_coord_run_free)))

static void s_prepare_file(const char *path, kt_gauntlet_t **g, kt_coord_run_t *run)
{
    char err[1024] = "";
    if (kt_gauntlet_load(path, g, err, sizeof(err)) < 0)
        fail_msg("load: %s", err);
    if (kt_coord_run_prepare(*g, run, err, sizeof(err)) < 0)
        fail_msg("prepare: %s", err);
}

static const kt_coord_cell_t *s_find(const kt_coord_run_t *run, const char *name)
{
    for (unsigned i = 0; i < run->n_cells; i++)
        if (strcmp(run->cells[i].spec.cell_name, name) == 0)
            return &run->cells[i];
    return NULL;
}

static void test_example_28_cells(void **state)
{
    (void)state;
    _cleanup_gauntlet_ kt_gauntlet_t *g = NULL;
    _cleanup_run_ kt_coord_run_t run = {0};
    s_prepare_file(S_DIR "/example.yaml", &g, &run);
    /* 1 kernel x (1 + 6 profiles) x 2 topologies x 2 scenarios. */
    assert_int_equal(run.n_cells, 28);
    assert_int_equal(run.n_filtered, 0);
    assert_int_equal(run.n_kernels, 1);
    assert_string_equal(run.kernels[0].label, "6.12.117-fake");
    assert_string_equal(run.kernels[0].version, "6.12.117-fake");
    assert_int_equal(run.kernels[0].size, 4096);
    assert_int_equal(run.n_scheds, 2);
    assert_string_equal(run.scheds[0].sha, "");
    assert_string_equal(run.scheds[0].path, "");
    char sha[KT_HASH_HEX_SIZE];
    assert_int_equal(kt_hash_sha256_file(S_DIR "/fake/scx_qmap", sha), 0);
    assert_string_equal(run.scheds[1].sha, sha);
    assert_string_equal(run.run_id, "");

    /* Names: scenario, topology, scheduler+profile, kernel. */
    assert_string_equal(run.cells[0].spec.cell_name,
                        "gauntlet/steady/tiny-1llc/eevdf/6.12.117-fake");
    const char *names[] = {
        "gauntlet/steady/tiny-1llc/eevdf/6.12.117-fake",
        "gauntlet/steady/tiny-1llc/scx_qmap/6.12.117-fake",
        "gauntlet/steady/tiny-1llc/scx_qmap+slice-short/6.12.117-fake",
        "gauntlet/steady/tiny-1llc/scx_qmap+batch/6.12.117-fake",
        "gauntlet/steady/tiny-1llc/scx_qmap+slice-short+batch/6.12.117-fake",
        "gauntlet/steady/tiny-1llc/scx_qmap+batch+boost/6.12.117-fake",
        "gauntlet/steady/tiny-1llc/scx_qmap+slice-short+batch+boost/6.12.117-fake",
        "gauntlet/steady/tiny-2llc/eevdf/6.12.117-fake",
    };
    for (unsigned i = 0; i < KT_ARRAY_SIZE(names); i++)
        assert_string_equal(run.cells[i].spec.cell_name, names[i]);
    assert_string_equal(run.cells[27].spec.cell_name,
                        "gauntlet/pipe_pingpong/tiny-2llc/scx_qmap+slice-short+batch+boost/"
                        "6.12.117-fake");
    /* Every name and id distinct; ids are sha256 hex. */
    for (unsigned i = 0; i < run.n_cells; i++) {
        assert_true(kt_hash_hex_valid(run.cells[i].spec.cell_id));
        for (unsigned j = 0; j < i; j++) {
            assert_string_not_equal(run.cells[i].spec.cell_name, run.cells[j].spec.cell_name);
            assert_string_not_equal(run.cells[i].spec.cell_id, run.cells[j].spec.cell_id);
        }
    }

    /* One cell in full. */
    const kt_coord_cell_t *c =
        s_find(&run, "gauntlet/pipe_pingpong/tiny-2llc/scx_qmap+slice-short+batch+boost/"
                     "6.12.117-fake");
    assert_non_null(c);
    const kt_cellspec_t *s = &c->spec;
    assert_int_equal(c->kernel, 0);
    assert_int_equal(c->sched, 1);
    assert_string_equal(s->sched_name, "scx_qmap");
    assert_string_equal(s->sched_sha, sha);
    assert_int_equal(s->sched_size, run.scheds[1].size);
    /* Base arguments (none) then each enabled flag's, in declaration order. */
    assert_string_equal(s->sched_args, "-s 5000 -b 8 -H");
    assert_string_equal(s->profile, "slice-short+batch+boost");
    assert_string_equal(s->topology_preset, "tiny-2llc");
    assert_string_equal(s->kernel_label, "6.12.117-fake");
    assert_string_equal(s->kernel_version, "6.12.117-fake");
    assert_string_equal(s->kernel_sha, run.kernels[0].sha);
    assert_int_equal(s->kernel_size, 4096);
    assert_string_equal(s->kernel_commit, run.kernels[0].commit);
    assert_string_equal(s->plan.scenario, "pipe_pingpong");
    /* The gauntlet's duration overrides the scenario's. */
    assert_int_equal(s->plan.duration_ms, 3000);
    const kt_topology_preset_t *p = kt_topology_preset_find("tiny-2llc");
    assert_true(kt_topology_equal(&s->plan.topology, &p->topo));
    assert_int_equal(c->vcpus, kt_topology_cpus(&p->topo));
    assert_int_equal(c->memory_mib, kt_topology_memory_mib(&p->topo, 0));
    assert_int_equal(s->memory_mib, c->memory_mib);
    assert_int_equal(c->est_ms, kt_matrix_estimate_ms(c));
    /* A sched_ext cell costs more than the same EEVDF cell. */
    const kt_coord_cell_t *e = s_find(&run, "gauntlet/pipe_pingpong/tiny-2llc/eevdf/6.12.117-fake");
    assert_non_null(e);
    assert_string_equal(e->spec.sched_args, "");
    assert_string_equal(e->spec.profile, "default");
    assert_string_equal(e->spec.sched_sha, "");
    assert_true(c->est_ms > e->est_ms);
    assert_true(e->est_ms > 3000);
    const kt_coord_cell_t *d = s_find(&run, "gauntlet/steady/tiny-1llc/scx_qmap/6.12.117-fake");
    assert_non_null(d);
    assert_string_equal(d->spec.profile, "default");
    assert_string_equal(d->spec.sched_args, "");

    assert_int_equal(kt_coord_run_set_id(&run, "20250101-000000-abcdef"), 0);
    for (unsigned i = 0; i < run.n_cells; i++)
        assert_string_equal(run.cells[i].spec.run_id, "20250101-000000-abcdef");
    assert_int_equal(kt_coord_run_set_id(&run, "a/b"), -EINVAL);
    assert_int_equal(kt_coord_run_set_id(&run, ""), -EINVAL);
    char id[40];
    kt_coord_run_id_new(id);
    assert_int_equal(strlen(id), 22);
    assert_int_equal(kt_coord_run_set_id(&run, id), 0);
}

static void test_filtering_and_repeat(void **state)
{
    (void)state;
    _cleanup_gauntlet_ kt_gauntlet_t *g = NULL;
    _cleanup_run_ kt_coord_run_t run = {0};
    s_prepare_file(S_DIR "/two_kernels.yaml", &g, &run);
    /* Scenario x topology pairs that fit: steady 3, steady_llc 2 (not on
     * tiny-1llc), two_spinners 3 = 8; x (eevdf 1 + scx_qmap 2 profiles) x
     * 2 kernels x repeat 2. */
    assert_int_equal(run.n_cells, 8 * 3 * 2 * 2);
    assert_int_equal(run.n_filtered, 1 * 3 * 2 * 2);
    for (unsigned i = 0; i < run.n_cells; i++) {
        const kt_cellspec_t *s = &run.cells[i].spec;
        assert_false(strcmp(s->plan.scenario, "steady_llc") == 0 &&
                     strcmp(s->topology_preset, "tiny-1llc") == 0);
    }
    assert_string_equal(run.kernels[1].label, "older");
    assert_string_equal(run.kernels[1].version, "6.1.0-fake");
    /* Repetitions are named /r1, /r2 and have different ids. */
    const kt_coord_cell_t *r1 =
        s_find(&run, "gauntlet/steady_llc/1n2l2c2t/scx_qmap+batch/older/r1");
    const kt_coord_cell_t *r2 =
        s_find(&run, "gauntlet/steady_llc/1n2l2c2t/scx_qmap+batch/older/r2");
    assert_non_null(r1);
    assert_non_null(r2);
    assert_string_not_equal(r1->spec.cell_id, r2->spec.cell_id);
    assert_string_equal(r1->spec.sched_args, "-v -b 8");
    assert_string_equal(r1->spec.topology_preset, "");
    assert_int_equal(r1->vcpus, 8);
    assert_int_equal(r1->memory_mib, 512);
    /* No gauntlet duration: each scenario's own. */
    assert_int_equal(r1->spec.plan.duration_ms, 5000);
    const kt_coord_cell_t *t =
        s_find(&run, "gauntlet/two_spinners/tiny-1llc/eevdf/6.12.117-fake/r2");
    assert_non_null(t);
    assert_int_equal(t->spec.plan.duration_ms, 2000);
    assert_int_equal(t->kernel, 0);
}

/* Parses the text as S_DIR/g.yaml and prepares a run. */
static int s_prepare_text(const char *text, kt_gauntlet_t **g, kt_coord_run_t *run, char *err,
                          size_t len)
{
    int r = kt_gauntlet_parse(text, strlen(text), "g.yaml", S_DIR, g, err, len);
    return r < 0 ? r : kt_coord_run_prepare(*g, run, err, len);
}

static void test_ids_are_stable_content_hashes(void **state)
{
    (void)state;
#define S_BASE                                                                                     \
    "kernels: [fake/bzImage]\n"                                                                    \
    "schedulers:\n"                                                                                \
    "  - {name: eevdf}\n"                                                                          \
    "  - {name: scx_qmap, binary: fake/scx_qmap, args: [-v],\n"                                    \
    "     flags: [{name: batch, args: [-b, '8']}]}\n"                                              \
    "topologies: [tiny-1llc, tiny-2llc]\n"                                                         \
    "scenarios: [steady]\n"                                                                        \
    "duration: %s\n"
    char text[1024], err[1024];
    kt_gauntlet_t *g1 = NULL, *g2 = NULL, *g3 = NULL;
    kt_coord_run_t r1 = {0}, r2 = {0}, r3 = {0};
    snprintf(text, sizeof(text), S_BASE, "3s");
    assert_int_equal(s_prepare_text(text, &g1, &r1, err, sizeof(err)), 0);
    assert_int_equal(s_prepare_text(text, &g2, &r2, err, sizeof(err)), 0);
    assert_int_equal(r1.n_cells, 6);
    /* Same content, same ids: another run, another order of the file. */
    for (unsigned i = 0; i < r1.n_cells; i++)
        assert_string_equal(r1.cells[i].spec.cell_id, r2.cells[i].spec.cell_id);
    /* A different duration changes the plan, so every id. */
    snprintf(text, sizeof(text), S_BASE, "4s");
    assert_int_equal(s_prepare_text(text, &g3, &r3, err, sizeof(err)), 0);
    for (unsigned i = 0; i < r1.n_cells; i++)
        assert_string_not_equal(r1.cells[i].spec.cell_id, r3.cells[i].spec.cell_id);
    kt_coord_run_free(&r3);
    kt_gauntlet_free(&g3);
    /* Listing order of the topologies does not change a cell's id. */
    const char *swapped = "kernels: [fake/bzImage]\n"
                          "schedulers:\n"
                          "  - {name: eevdf}\n"
                          "  - {name: scx_qmap, binary: fake/scx_qmap, args: [-v],\n"
                          "     flags: [{name: batch, args: [-b, '8']}]}\n"
                          "topologies: [tiny-2llc, tiny-1llc]\n"
                          "scenarios: [steady]\n"
                          "duration: 3s\n";
    assert_int_equal(s_prepare_text(swapped, &g3, &r3, err, sizeof(err)), 0);
    for (unsigned i = 0; i < r1.n_cells; i++) {
        const kt_coord_cell_t *same = s_find(&r3, r1.cells[i].spec.cell_name);
        assert_non_null(same);
        assert_string_equal(same->spec.cell_id, r1.cells[i].spec.cell_id);
    }
    /* A different scheduler binary changes the scx cells only. */
    kt_coord_run_free(&r3);
    kt_gauntlet_free(&g3);
    snprintf(text, sizeof(text),
             "kernels: [fake/bzImage]\n"
             "schedulers:\n"
             "  - {name: eevdf}\n"
             "  - {name: scx_qmap, binary: fake/bzImage-other, args: [-v],\n"
             "     flags: [{name: batch, args: [-b, '8']}]}\n"
             "topologies: [tiny-1llc, tiny-2llc]\n"
             "scenarios: [steady]\n"
             "duration: 3s\n");
    assert_int_equal(s_prepare_text(text, &g3, &r3, err, sizeof(err)), 0);
    for (unsigned i = 0; i < r1.n_cells; i++) {
        bool eevdf = strcmp(r1.cells[i].spec.sched_name, "eevdf") == 0;
        assert_int_equal(strcmp(r1.cells[i].spec.cell_id, r3.cells[i].spec.cell_id) == 0, eevdf);
    }
    kt_coord_run_free(&r1);
    kt_coord_run_free(&r2);
    kt_coord_run_free(&r3);
    kt_gauntlet_free(&g1);
    kt_gauntlet_free(&g2);
    kt_gauntlet_free(&g3);
}

static void test_prepare_errors(void **state)
{
    (void)state;
    char err[1024];
    kt_gauntlet_t *g = NULL;
    kt_coord_run_t run = {0};
    /* Two kernel entries whose images have the same release: labels clash. */
    assert_int_equal(s_prepare_text("kernels: [fake/bzImage, fake]\n"
                                    "topologies: [tiny-1llc]\nscenarios: [steady]\n",
                                    &g, &run, err, sizeof(err)),
                     -EEXIST);
    assert_string_equal(err, "g.yaml: kernels[1] ('" KT_FIXTURES "/gauntlets/fake/bzImage') is "
                             "the same image as kernels[0]");
    assert_null(run.cells);
    kt_gauntlet_free(&g);
    /* A scenario whose cpusets do not fit a topology its constraints allow. */
    assert_int_equal(s_prepare_text("kernels: [fake/bzImage]\ntopologies: [tiny-1llc]\n"
                                    "scenarios:\n  - {name: pin, cgroups: [{name: c, cpuset: "
                                    "'llc:1', workers: 1}]}\n",
                                    &g, &run, err, sizeof(err)),
                     -EINVAL);
    assert_non_null(strstr(err, "g.yaml: scenario 'pin' on topology 'tiny-1llc': "));
    assert_non_null(strstr(err, "(constraints such as min_llcs in the scenario leave such "
                                "topologies out)"));
    kt_gauntlet_free(&g);
    /* A kernel path that is not a bzImage. */
    assert_int_equal(s_prepare_text("kernels: [fake/scx_qmap]\ntopologies: [tiny-1llc]\n"
                                    "scenarios: [steady]\n",
                                    &g, &run, err, sizeof(err)),
                     -ENOEXEC);
    assert_string_equal(err, "g.yaml: kernels[0]: kernel '" KT_FIXTURES "/gauntlets/fake/scx_qmap"
                             "': not a bzImage (no x86 boot header or no version string)");
    kt_gauntlet_free(&g);
    /* More cells than the limit. */
    char text[4096];
    size_t off = (size_t)snprintf(text, sizeof(text),
                                  "kernels: [fake/bzImage]\nschedulers:\n  - name: q\n"
                                  "    binary: fake/scx_qmap\n    flags:\n");
    for (unsigned i = 0; i < 12; i++)
        off += (size_t)snprintf(text + off, sizeof(text) - off, "      - {name: f%u}\n", i);
    snprintf(text + off, sizeof(text) - off,
             "topologies: [tiny-1llc, tiny-2llc, odd-3llc]\nscenarios: [steady, pipe_pingpong]\n");
    assert_int_equal(s_prepare_text(text, &g, &run, err, sizeof(err)), -E2BIG);
    assert_string_equal(err, "g.yaml: 24576 cells, more than the limit of 16384 (fewer flags, "
                             "topologies or scenarios, or split the gauntlet)");
    kt_gauntlet_free(&g);
}

/* A gauntlet's work_type replaces every cgroup's type before resolution: the
 * group rule rounds per-CPU counts up, the names carry +{type}, the ids
 * change with the plans; an explicit count that does not divide is refused
 * with the scenario, type and topology named. */
static void test_work_type_override(void **state)
{
    (void)state;
    char err[1024];
    kt_gauntlet_t *g1 = NULL, *g2 = NULL;
    kt_coord_run_t r1 = {0}, r2 = {0};
    const char *plain = "kernels: [fake/bzImage]\ntopologies: [tiny-2llc]\n"
                        "scenarios: [steady, pipe_pingpong]\n";
    char text[512];
    snprintf(text, sizeof(text), "%swork_type: mutex-contention\n", plain);
    assert_int_equal(s_prepare_text(plain, &g1, &r1, err, sizeof(err)), 0);
    if (s_prepare_text(text, &g2, &r2, err, sizeof(err)) < 0)
        fail_msg("%s", err);
    assert_int_equal(r2.n_cells, 2);
    const kt_coord_cell_t *st = s_find(&r2, "gauntlet/steady+mutex-contention/tiny-2llc/eevdf/"
                                            "6.12.117-fake");
    const kt_coord_cell_t *pp = s_find(&r2, "gauntlet/pipe_pingpong+mutex-contention/tiny-2llc/"
                                            "eevdf/6.12.117-fake");
    assert_non_null(st);
    assert_non_null(pp);
    /* steady: 2 + 2 spinners become a group of 4 per cgroup; pipe_pingpong's
     * 4 (one per CPU) stay 4. */
    assert_string_equal(st->spec.plan.scenario, "steady");
    assert_int_equal(st->spec.plan.n_cgroups, 2);
    for (unsigned i = 0; i < 2; i++) {
        assert_int_equal(st->spec.plan.cgroups[i].work, KT_WORK_MUTEX_CONTENTION);
        assert_int_equal(st->spec.plan.cgroups[i].workers, 4);
    }
    assert_int_equal(pp->spec.plan.cgroups[0].work, KT_WORK_MUTEX_CONTENTION);
    assert_int_equal(pp->spec.plan.cgroups[0].workers, 4);
    /* Not the cells without it; the gauntlet's scenarios are untouched. */
    for (unsigned i = 0; i < r1.n_cells; i++)
        for (unsigned j = 0; j < r2.n_cells; j++)
            assert_string_not_equal(r1.cells[i].spec.cell_id, r2.cells[j].spec.cell_id);
    assert_int_equal(g2->scenarios[0].cgroups[0].work, KT_WORK_SPIN);
    kt_coord_run_free(&r1);
    kt_coord_run_free(&r2);
    kt_gauntlet_free(&g1);
    kt_gauntlet_free(&g2);

    kt_gauntlet_t *g = NULL;
    kt_coord_run_t run = {0};
    assert_int_equal(s_prepare_text("kernels: [fake/bzImage]\ntopologies: [tiny-1llc]\n"
                                    "scenarios:\n  - {name: three, cgroups: [{name: c, "
                                    "workers: 3}]}\nwork_type: cache-pipe\n",
                                    &g, &run, err, sizeof(err)),
                     -EINVAL);
    assert_string_equal(err, "g.yaml: scenario 'three' with work_type cache-pipe on topology "
                             "'tiny-1llc': cgroup 'c': cache-pipe workers come in groups of 2, "
                             "3 given");
    assert_null(run.cells);
    kt_gauntlet_free(&g);
}

/* A scheduler's `checks:` is the layer between the defaults and each
 * scenario's: its cells carry the merged thresholds, marked by source. */
static void test_scheduler_checks(void **state)
{
    (void)state;
    char err[1024] = "";
    kt_gauntlet_t *g = NULL;
    kt_coord_run_t run = {0};
    const char *text =
        "kernels: [fake/bzImage]\ntopologies: [tiny-2llc]\n"
        "schedulers:\n"
        "  - name: eevdf\n"
        "  - name: scx_qmap\n    binary: fake/scx_qmap\n"
        "    checks: {fairness_spread: 30, max_gap: false, migration_ratio: 0.5, wake_cv: 2}\n"
        "scenarios:\n"
        "  - {name: plain, cgroups: [{name: a, workers: 2}]}\n"
        "  - {name: strict, checks: {fairness_spread: false, migration_ratio: 0.25},\n"
        "     cgroups: [{name: a, workers: 2}]}\n";
    if (s_prepare_text(text, &g, &run, err, sizeof(err)) < 0)
        fail_msg("%s", err);
    assert_int_equal(run.n_cells, 4);
    const kt_coord_cell_t *ep = s_find(&run, "gauntlet/plain/tiny-2llc/eevdf/6.12.117-fake");
    const kt_coord_cell_t *qp = s_find(&run, "gauntlet/plain/tiny-2llc/scx_qmap/6.12.117-fake");
    const kt_coord_cell_t *qs = s_find(&run, "gauntlet/strict/tiny-2llc/scx_qmap/6.12.117-fake");
    assert_non_null(ep);
    assert_non_null(qp);
    assert_non_null(qs);
    /* eevdf has no layer: defaults. */
    const kt_thresholds_t *t = &ep->spec.plan.thresholds;
    assert_true(t->check_spread && t->max_spread_pct == 15 && t->check_gap);
    assert_int_equal(t->set, 0);
    /* scx_qmap alone: its values, from the scheduler. */
    t = &qp->spec.plan.thresholds;
    assert_true(t->check_spread && t->max_spread_pct == 30);
    assert_false(t->check_gap);
    assert_true(t->max_migration_ratio == 0.5 && t->max_wake_cv == 2);
    assert_int_equal(kt_thresholds_source(t, KT_THR_SPREAD), KT_THR_FROM_SCHEDULER);
    assert_int_equal(kt_thresholds_source(t, KT_THR_GAP_ON), KT_THR_FROM_SCHEDULER);
    assert_int_equal(kt_thresholds_source(t, KT_THR_GAP), KT_THR_FROM_DEFAULT);
    /* The scenario wins where it speaks and leaves the rest. */
    t = &qs->spec.plan.thresholds;
    assert_false(t->check_spread);
    assert_true(t->max_spread_pct == 30);
    assert_true(t->max_migration_ratio == 0.25 && t->max_wake_cv == 2);
    assert_false(t->check_gap);
    assert_int_equal(kt_thresholds_source(t, KT_THR_MIGRATION_RATIO), KT_THR_FROM_SCENARIO);
    assert_int_equal(kt_thresholds_source(t, KT_THR_SPREAD_ON), KT_THR_FROM_SCENARIO);
    assert_int_equal(kt_thresholds_source(t, KT_THR_WAKE_CV), KT_THR_FROM_SCHEDULER);
    /* The thresholds are part of the cell's identity. */
    const kt_coord_cell_t *es = s_find(&run, "gauntlet/strict/tiny-2llc/eevdf/6.12.117-fake");
    assert_string_not_equal(es->spec.cell_id, qs->spec.cell_id);
    kt_coord_run_free(&run);
    kt_gauntlet_free(&g);

    /* A bad value in a scheduler's checks is refused at its place. */
    assert_int_equal(s_prepare_text("kernels: [fake/bzImage]\ntopologies: [tiny-2llc]\n"
                                    "schedulers:\n  - {name: eevdf, checks: {wake_cv: 0}}\n"
                                    "scenarios: [steady]\n",
                                    &g, &run, err, sizeof(err)),
                     -EINVAL);
    assert_string_equal(err, "g.yaml:4:37: checks.wake_cv: must be more than 0 (false disables "
                             "it)");
    kt_gauntlet_free(&g);
}

static uint64_t s_est_total(const kt_coord_run_t *run)
{
    uint64_t t = 0;
    for (unsigned i = 0; i < run->n_cells; i++)
        t += run->cells[i].est_ms;
    return t;
}

static bool s_covers(const kt_coord_run_t *run, const char *what, const char *value)
{
    for (unsigned i = 0; i < run->n_cells; i++) {
        const kt_cellspec_t *s = &run->cells[i].spec;
        char prof[256];
        snprintf(prof, sizeof(prof), "%s+%s", s->sched_name, s->profile);
        const char *v = !strcmp(what, "scenario") ? s->plan.scenario
                        : !strcmp(what, "preset") ? s->topology_preset
                        : !strcmp(what, "kernel") ? s->kernel_label
                                                  : prof;
        if (strcmp(v, value) == 0)
            return true;
    }
    return false;
}

static void test_budget(void **state)
{
    (void)state;
    _cleanup_gauntlet_ kt_gauntlet_t *g = NULL;
    _cleanup_run_ kt_coord_run_t full = {0};
    s_prepare_file(S_DIR "/example.yaml", &g, &full);
    uint64_t all = s_est_total(&full);
    uint32_t max_cell = 0, min_cell = UINT32_MAX;
    for (unsigned i = 0; i < full.n_cells; i++) {
        if (full.cells[i].est_ms > max_cell)
            max_cell = full.cells[i].est_ms;
        if (full.cells[i].est_ms < min_cell)
            min_cell = full.cells[i].est_ms;
    }

    char err[256];
    kt_coord_run_t a = {0}, b = {0};
    /* A budget for about 8 cells: within it, covering every scenario,
     * topology and profile value (7 profiles need 7 cells). */
    uint64_t budget = (uint64_t)max_cell * 8;
    assert_int_equal(kt_coord_run_prepare(g, &a, err, sizeof(err)), 0);
    assert_int_equal(kt_coord_run_prepare(g, &b, err, sizeof(err)), 0);
    unsigned ka = kt_matrix_budget(&a, budget);
    unsigned kb = kt_matrix_budget(&b, budget);
    assert_int_equal(ka, a.n_cells);
    assert_true(ka >= 8 && ka < full.n_cells);
    assert_true(s_est_total(&a) <= budget);
    /* Nothing else fits: every cell left out is bigger than what remains. */
    for (unsigned i = 0; i < full.n_cells; i++) {
        bool kept = false;
        for (unsigned j = 0; j < a.n_cells; j++)
            kept |= strcmp(a.cells[j].spec.cell_id, full.cells[i].spec.cell_id) == 0;
        if (!kept)
            assert_true(s_est_total(&a) + full.cells[i].est_ms > budget);
    }
    /* Deterministic. */
    assert_int_equal(ka, kb);
    for (unsigned i = 0; i < ka; i++)
        assert_string_equal(a.cells[i].spec.cell_id, b.cells[i].spec.cell_id);
    /* Coverage. */
    assert_true(s_covers(&a, "scenario", "steady"));
    assert_true(s_covers(&a, "scenario", "pipe_pingpong"));
    assert_true(s_covers(&a, "preset", "tiny-1llc"));
    assert_true(s_covers(&a, "preset", "tiny-2llc"));
    const char *profiles[] = {"eevdf+default",
                              "scx_qmap+default",
                              "scx_qmap+slice-short",
                              "scx_qmap+batch",
                              "scx_qmap+slice-short+batch",
                              "scx_qmap+batch+boost",
                              "scx_qmap+slice-short+batch+boost"};
    for (unsigned i = 0; i < KT_ARRAY_SIZE(profiles); i++)
        if (!s_covers(&a, "profile", profiles[i]))
            fail_msg("budget left out profile %s", profiles[i]);
    /* Kept cells keep the expansion order. */
    for (unsigned i = 1; i < a.n_cells; i++) {
        unsigned pi = 0, pj = 0;
        for (unsigned k = 0; k < full.n_cells; k++) {
            if (!strcmp(full.cells[k].spec.cell_id, a.cells[i - 1].spec.cell_id))
                pi = k;
            if (!strcmp(full.cells[k].spec.cell_id, a.cells[i].spec.cell_id))
                pj = k;
        }
        assert_true(pi < pj);
    }
    kt_coord_run_free(&a);
    kt_coord_run_free(&b);

    /* Budgets at the edges: nothing fits, everything fits. */
    assert_int_equal(kt_coord_run_prepare(g, &a, err, sizeof(err)), 0);
    assert_int_equal(kt_matrix_budget(&a, min_cell - 1), 0);
    assert_int_equal(a.n_cells, 0);
    kt_coord_run_free(&a);
    assert_int_equal(kt_coord_run_prepare(g, &a, err, sizeof(err)), 0);
    assert_int_equal(kt_matrix_budget(&a, all), full.n_cells);
    for (unsigned i = 0; i < full.n_cells; i++)
        assert_string_equal(a.cells[i].spec.cell_id, full.cells[i].spec.cell_id);
    kt_coord_run_free(&a);
    /* A small budget prefers cheap cells that cover new values: the first
     * pick of a one-cell budget is an EEVDF cell (cheapest). */
    assert_int_equal(kt_coord_run_prepare(g, &a, err, sizeof(err)), 0);
    assert_int_equal(kt_matrix_budget(&a, max_cell), 1);
    assert_string_equal(a.cells[0].spec.sched_name, "eevdf");
    kt_coord_run_free(&a);
    /* Times measured in earlier runs (hist_ms) replace the estimates: cells
     * that took a tenth of theirs fit ten to the budget of one... */
    assert_int_equal(kt_coord_run_prepare(g, &a, err, sizeof(err)), 0);
    for (unsigned i = 0; i < a.n_cells; i++)
        a.cells[i].hist_ms = max_cell / 10;
    assert_int_equal(kt_matrix_budget(&a, max_cell), 10);
    /* ... and keep their static estimate for the lease. */
    assert_true(a.cells[0].est_ms >= min_cell);
    kt_coord_run_free(&a);
}

/* Payload entries are a scenario-like axis: cells gauntlet/{payload}/...,
 * the binary hashed once and named in each plan by its sha, alone (no
 * cgroups, its timeout as the duration) or beside a scenario (its cgroups,
 * filtered by its constraints); a scenario's own payload: reaches its
 * cells; the ids of the other cells do not move. */
static void test_payload_cells(void **state)
{
    (void)state;
#define S_HEAD "kernels: [fake/bzImage]\ntopologies: [tiny-1llc, tiny-2llc]\nduration: 3s\n"
    const char *text = S_HEAD
        "scenarios:\n"
        "  - steady\n"
        "  - {name: own, cgroups: [{name: a, workers: 2}], payload: {binary: fake/scx_qmap}}\n"
        "payloads:\n"
        "  - {name: bench, binary: fake/scx_qmap, checks: [\"ops>=10\"], timeout: 7s}\n"
        "  - {name: bench_busy, binary: ./fake/scx_qmap, args: [\"-x\"], scenario: steady}\n"
        "  - name: llc2\n"
        "    binary: fake/scx_qmap\n"
        "    scenario: {name: two, constraints: {min_llcs: 2}, cgroups: [{name: a, workers: 2}]}\n";
    char err[1024] = "";
    _cleanup_gauntlet_ kt_gauntlet_t *g = NULL;
    _cleanup_run_ kt_coord_run_t run = {0};
    if (s_prepare_text(text, &g, &run, err, sizeof(err)) < 0)
        fail_msg("%s", err);
    assert_int_equal(g->n_payloads, 3);
    /* steady 2 + own 2 + bench 2 + bench_busy 2 + llc2 1 (not on tiny-1llc). */
    assert_int_equal(run.n_cells, 9);
    assert_int_equal(run.n_filtered, 1);
    /* One binary, hashed once, shipped like a scheduler. */
    assert_int_equal(run.n_payloads, 1);
    char sha[KT_HASH_HEX_SIZE];
    assert_int_equal(kt_hash_sha256_file(S_DIR "/fake/scx_qmap", sha), 0);
    assert_string_equal(run.payloads[0].sha, sha);
    assert_string_equal(run.payloads[0].name, "scx_qmap");
    assert_int_equal(run.payloads[0].size, 97);

    const kt_coord_cell_t *c = s_find(&run, "gauntlet/bench/tiny-1llc/eevdf/6.12.117-fake");
    assert_non_null(c);
    const kt_plan_t *p = &c->spec.plan;
    assert_string_equal(p->scenario, "bench");
    assert_int_equal(p->n_cgroups, 0);
    assert_int_equal(p->duration_ms, 7000);
    assert_string_equal(p->payload.name, "scx_qmap");
    assert_string_equal(p->payload.sha, sha);
    assert_int_equal(p->payload.size, 97);
    assert_int_equal(p->payload.timeout_ms, 7000);
    assert_int_equal(p->payload.n_checks, 1);
    assert_string_equal(p->payload.checks[0].metric, "ops");
    assert_true(p->thresholds.check_starved); /* the defaults, as for any cell */

    c = s_find(&run, "gauntlet/bench_busy/tiny-2llc/eevdf/6.12.117-fake");
    assert_non_null(c);
    p = &c->spec.plan;
    assert_string_equal(p->scenario, "bench_busy");
    assert_true(p->n_cgroups > 0);
    assert_int_equal(p->duration_ms, 3000);
    assert_int_equal(p->payload.n_args, 1);
    assert_string_equal(kt_payload_arg(&p->payload, 0), "-x");
    assert_string_equal(p->payload.sha, sha);
    assert_non_null(s_find(&run, "gauntlet/llc2/tiny-2llc/eevdf/6.12.117-fake"));
    assert_null(s_find(&run, "gauntlet/llc2/tiny-1llc/eevdf/6.12.117-fake"));

    /* A scenario's own payload: in its cells, by sha. */
    c = s_find(&run, "gauntlet/own/tiny-1llc/eevdf/6.12.117-fake");
    assert_non_null(c);
    assert_string_equal(c->spec.plan.scenario, "own");
    assert_string_equal(c->spec.plan.payload.sha, sha);
    assert_int_equal(c->spec.plan.n_cgroups, 1);

    /* The steady cells keep the ids they have without payloads; the
     * payload's cells differ from the scenario's beside them, and an
     * edited payload is a new cell. */
    _cleanup_gauntlet_ kt_gauntlet_t *g2 = NULL;
    _cleanup_run_ kt_coord_run_t r2 = {0};
    if (s_prepare_text(S_HEAD "scenarios: [steady]\n", &g2, &r2, err, sizeof(err)) < 0)
        fail_msg("%s", err);
    assert_int_equal(r2.n_payloads, 0);
    const char *steady = "gauntlet/steady/tiny-1llc/eevdf/6.12.117-fake";
    assert_string_equal(s_find(&run, steady)->spec.cell_id, s_find(&r2, steady)->spec.cell_id);
    assert_string_not_equal(
        s_find(&run, steady)->spec.cell_id,
        s_find(&run, "gauntlet/bench_busy/tiny-1llc/eevdf/6.12.117-fake")->spec.cell_id);
    _cleanup_gauntlet_ kt_gauntlet_t *g3 = NULL;
    _cleanup_run_ kt_coord_run_t r3 = {0};
    if (s_prepare_text(S_HEAD "payloads:\n"
                              "  - {name: bench, binary: fake/scx_qmap, checks: [\"ops>=11\"], "
                              "timeout: 7s}\n",
                       &g3, &r3, err, sizeof(err)) < 0)
        fail_msg("%s", err);
    assert_int_equal(r3.n_cells, 2); /* payloads alone: no scenarios needed */
    const char *bench = "gauntlet/bench/tiny-1llc/eevdf/6.12.117-fake";
    assert_string_not_equal(s_find(&run, bench)->spec.cell_id, s_find(&r3, bench)->spec.cell_id);

    /* The binary is checked again when the run is prepared. */
    _cleanup_gauntlet_ kt_gauntlet_t *g4 = NULL;
    _cleanup_run_ kt_coord_run_t r4 = {0};
    const char *one = S_HEAD "payloads: [{name: b, binary: fake/scx_qmap}]\n";
    assert_int_equal(kt_gauntlet_parse(one, strlen(one), "g.yaml", S_DIR, &g4, err, sizeof(err)),
                     0);
    snprintf(g4->payloads[0].binary, sizeof(g4->payloads[0].binary), "%s", S_DIR "/fake/gone");
    assert_int_equal(kt_coord_run_prepare(g4, &r4, err, sizeof(err)), -ENOENT);
    assert_string_equal(err, "g.yaml: payloads[0] ('b'): '" S_DIR
                             "/fake/gone': No such file or directory");
#undef S_HEAD
}

/* Writes len bytes of data to dir/rel, creating dir/rel's folder. */
static void s_put(const char *dir, const char *rel, const void *data, size_t len)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, rel);
    char *slash = strrchr(path, '/');
    *slash = '\0';
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "mkdir -p '%s'", path);
    assert_int_equal(system(cmd), 0);
    *slash = '/';
    FILE *f = fopen(path, "we");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static size_t s_slurp(const char *path, char *buf, size_t len)
{
    FILE *f = fopen(path, "re");
    assert_non_null(f);
    size_t n = fread(buf, 1, len, f);
    fclose(f);
    return n;
}

/* from_kernel: bin/NAME beside each kernel's bzImage, hashed per kernel; a
 * kernel without it stops the run before anything runs, naming it. */
static void test_from_kernel(void **state)
{
    (void)state;
    char dir[] = "/tmp/kt-matrix-fk.XXXXXX";
    assert_non_null(mkdtemp(dir));
    static char img[8192];
    size_t n = s_slurp(S_DIR "/fake/bzImage", img, sizeof(img));
    s_put(dir, "k1/bzImage", img, n);
    n = s_slurp(S_DIR "/fake/bzImage-other", img, sizeof(img));
    s_put(dir, "k2/bzImage", img, n);
    s_put(dir, "k1/bin/scx_simple", "one\n", 4);
    s_put(dir, "k2/bin/scx_simple", "two\n", 4);
    const char *text = "kernels: [k1/bzImage, k2/bzImage]\n"
                       "schedulers:\n"
                       "  - {name: eevdf}\n"
                       "  - {name: simple, from_kernel: scx_simple}\n"
                       "topologies: [tiny-1llc]\n"
                       "scenarios: [steady]\n";
    char err[1024] = "";
    kt_gauntlet_t *g = NULL;
    kt_coord_run_t run = {0};
    if (kt_gauntlet_parse(text, strlen(text), "g.yaml", dir, &g, err, sizeof(err)) < 0 ||
        kt_coord_run_prepare(g, &run, err, sizeof(err)) < 0)
        fail_msg("%s", err);
    assert_int_equal(run.n_kernels, 2);
    assert_int_equal(run.n_cells, 4);
    assert_int_equal(run.n_gscheds, 2);
    assert_int_equal(run.n_scheds, 3); /* eevdf, then simple per kernel */
    char want[2][KT_SHA_HEX], p[512];
    for (unsigned k = 0; k < 2; k++) {
        snprintf(p, sizeof(p), "%s/k%u/bin/scx_simple", dir, k + 1);
        assert_int_equal(kt_hash_sha256_file(p, want[k]), 0);
    }
    assert_string_not_equal(want[0], want[1]);
    unsigned simple = 0;
    for (unsigned i = 0; i < run.n_cells; i++) {
        const kt_coord_cell_t *c = &run.cells[i];
        const kt_coord_sched_t *rs = &run.scheds[c->sched];
        assert_string_equal(rs->name, c->spec.sched_name);
        if (strcmp(c->spec.sched_name, "eevdf") == 0) {
            assert_string_equal(c->spec.sched_sha, "");
            assert_int_equal(rs->kernel, -1);
            continue;
        }
        simple++;
        assert_int_equal(rs->kernel, (int)c->kernel);
        assert_string_equal(c->spec.sched_sha, want[c->kernel]);
        assert_int_equal(c->spec.sched_size, 4);
        snprintf(p, sizeof(p), "%s/k%u/bin/scx_simple", dir, c->kernel + 1);
        assert_string_equal(rs->path, p);
        assert_non_null(strstr(c->spec.cell_name, "/simple/"));
    }
    assert_int_equal(simple, 2);
    kt_coord_run_free(&run);

    /* The second kernel lacks it: the run is refused, naming the kernel. */
    snprintf(p, sizeof(p), "%s/k2/bin/scx_simple", dir);
    assert_int_equal(unlink(p), 0);
    assert_int_equal(kt_coord_run_prepare(g, &run, err, sizeof(err)), -ENOENT);
    char msg[1200];
    snprintf(msg, sizeof(msg),
             "g.yaml: schedulers[1] ('simple'): from_kernel: kernel '6.1.0-fake' has no "
             "'%s' beside its bzImage: No such file or directory",
             p);
    assert_string_equal(err, msg);
    assert_null(run.cells);
    kt_gauntlet_free(&g);
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_example_28_cells),
        cmocka_unit_test(test_filtering_and_repeat),
        cmocka_unit_test(test_ids_are_stable_content_hashes),
        cmocka_unit_test(test_prepare_errors),
        cmocka_unit_test(test_work_type_override),
        cmocka_unit_test(test_scheduler_checks),
        cmocka_unit_test(test_budget),
        cmocka_unit_test(test_payload_cells),
        cmocka_unit_test(test_from_kernel),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
