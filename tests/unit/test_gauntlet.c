/* Gauntlet files: the example reads into the model (paths resolved
 * against the file's folder, flags, requires, presets, built-in, file and
 * inline scenarios), flag profiles are the power set minus unmet requires
 * (6 for scx_qmap), and every malformed input is refused with
 * FILE:LINE:COL and what is wrong. */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "kt_gauntlet.h"

#define S_DIR KT_FIXTURES "/gauntlets"

static void s_freep(kt_gauntlet_t **g)
{
    kt_gauntlet_free(g);
}

#define _cleanup_gauntlet_ __attribute__((cleanup(s_freep)))

static char s_real_dir[PATH_MAX];

static int s_setup(void **state)
{
    (void)state;
    if (!realpath(S_DIR, s_real_dir))
        return -1;
    return 0;
}

static void s_expect_path(const char *got, const char *rel)
{
    char want[PATH_MAX + 64];
    snprintf(want, sizeof(want), "%s/%s", s_real_dir, rel);
    assert_string_equal(got, want);
}

/* Kernel entries given as specs keep their text; path entries keep their
 * path, which is also their spec. */
static void test_kernel_specs(void **state)
{
    (void)state;
    static const char text[] = "kernels:\n"
                               "  - 6.12.110..6.12.117\n"
                               "  - {spec: 'git+../linux#v6.13', label: next}\n"
                               "  - fake/bzImage\n"
                               "  - {spec: deb:linux-image-6.12.57+deb13-cloud-amd64}\n"
                               "topologies: [tiny-1llc]\nscenarios: [steady]\n";
    _cleanup_gauntlet_ kt_gauntlet_t *g = NULL;
    char err[1024] = "";
    if (kt_gauntlet_parse(text, sizeof(text) - 1, "g.yaml", s_real_dir, &g, err, sizeof(err)) < 0)
        fail_msg("%s", err);
    assert_int_equal(g->n_kernels, 4);
    assert_string_equal(g->kernels[0].spec, "6.12.110..6.12.117");
    assert_string_equal(g->kernels[0].path, "");
    assert_string_equal(g->kernels[1].spec, "git+../linux#v6.13");
    assert_string_equal(g->kernels[1].label, "next");
    s_expect_path(g->kernels[2].path, "fake/bzImage");
    assert_string_equal(g->kernels[2].spec, g->kernels[2].path);
    assert_string_equal(g->kernels[3].spec, "deb:linux-image-6.12.57+deb13-cloud-amd64");
}

static void test_example(void **state)
{
    (void)state;
    _cleanup_gauntlet_ kt_gauntlet_t *g = NULL;
    char err[1024] = "";
    if (kt_gauntlet_load(S_DIR "/example.yaml", &g, err, sizeof(err)) < 0)
        fail_msg("%s", err);
    s_expect_path(g->path, "example.yaml");
    assert_string_equal(g->dir, s_real_dir);
    assert_int_equal(g->n_kernels, 1);
    s_expect_path(g->kernels[0].path, "fake/bzImage");
    assert_string_equal(g->kernels[0].label, "");
    assert_int_equal(g->n_scheds, 2);
    assert_string_equal(g->scheds[0].name, "eevdf");
    assert_string_equal(g->scheds[0].binary, "");
    assert_int_equal(g->scheds[0].n_flags, 0);
    const kt_gauntlet_sched_t *q = &g->scheds[1];
    assert_string_equal(q->name, "scx_qmap");
    s_expect_path(q->binary, "fake/scx_qmap");
    assert_int_equal(q->n_args, 0);
    assert_int_equal(q->n_flags, 3);
    assert_string_equal(q->flags[0].name, "slice-short");
    assert_int_equal(q->flags[0].n_args, 2);
    assert_string_equal(q->flags[0].args[0], "-s");
    assert_string_equal(q->flags[0].args[1], "5000");
    assert_int_equal(q->flags[0].n_requires, 0);
    assert_string_equal(q->flags[1].name, "batch");
    assert_string_equal(q->flags[2].name, "boost");
    assert_int_equal(q->flags[2].n_args, 1);
    assert_string_equal(q->flags[2].args[0], "-H");
    assert_int_equal(q->flags[2].n_requires, 1);
    assert_string_equal(q->flags[2].requires[0], "batch");
    assert_int_equal(g->n_topologies, 2);
    assert_string_equal(g->topologies[0].name, "tiny-1llc");
    assert_true(g->topologies[0].preset);
    assert_string_equal(g->topologies[1].name, "tiny-2llc");
    assert_int_equal(g->topologies[1].topo.llcs, 2);
    assert_int_equal(g->n_scenarios, 2);
    assert_string_equal(g->scenarios[0].name, "steady");
    assert_string_equal(g->scenarios[1].name, "pipe_pingpong");
    assert_int_equal(g->duration_ms, 3000);
    assert_int_equal(g->repeat, 1);
    kt_gauntlet_free(&g);
    assert_null(g);
    kt_gauntlet_free(&g);
}

static void test_profiles(void **state)
{
    (void)state;
    _cleanup_gauntlet_ kt_gauntlet_t *g = NULL;
    char err[1024] = "";
    assert_int_equal(kt_gauntlet_load(S_DIR "/example.yaml", &g, err, sizeof(err)), 0);
    uint32_t masks[64];
    /* eevdf: only the default profile. */
    assert_int_equal(kt_gauntlet_profiles(&g->scheds[0], masks, 64), 1);
    assert_int_equal(masks[0], 0);
    /* scx_qmap: 8 subsets of 3 flags, minus {boost} and {slice-short,
     * boost} whose boost lacks batch: 6. */
    unsigned n = kt_gauntlet_profiles(&g->scheds[1], masks, 64);
    assert_int_equal(n, 6);
    const char *want[] = {"default",           "slice-short", "batch",
                          "slice-short+batch", "batch+boost", "slice-short+batch+boost"};
    for (unsigned i = 0; i < n; i++) {
        char name[128];
        kt_gauntlet_profile_name(&g->scheds[1], masks[i], name, sizeof(name));
        assert_string_equal(name, want[i]);
        /* boost (bit 2) never without batch (bit 1). */
        assert_false((masks[i] & 4) && !(masks[i] & 2));
    }
    /* The count does not depend on the output room. */
    assert_int_equal(kt_gauntlet_profiles(&g->scheds[1], NULL, 0), 6);
    assert_int_equal(kt_gauntlet_profiles(&g->scheds[1], masks, 2), 6);

    /* Chains and cycles of requires. */
    kt_gauntlet_sched_t s;
    memset(&s, 0, sizeof(s));
    snprintf(s.name, sizeof(s.name), "x");
    s.n_flags = 4;
    const char *names[] = {"a", "b", "c", "d"};
    for (unsigned i = 0; i < 4; i++)
        snprintf(s.flags[i].name, sizeof(s.flags[i].name), "%s", names[i]);
    /* c requires b requires a; d requires c and a. */
    snprintf(s.flags[1].requires[0], KT_NAME_MAX, "a");
    s.flags[1].n_requires = 1;
    snprintf(s.flags[2].requires[0], KT_NAME_MAX, "b");
    s.flags[2].n_requires = 1;
    snprintf(s.flags[3].requires[0], KT_NAME_MAX, "c");
    snprintf(s.flags[3].requires[1], KT_NAME_MAX, "a");
    s.flags[3].n_requires = 2;
    /* {}, {a}, {a,b}, {a,b,c}, {a,b,c,d}. */
    assert_int_equal(kt_gauntlet_profiles(&s, masks, 64), 5);
    char name[128];
    kt_gauntlet_profile_name(&s, masks[4], name, sizeof(name));
    assert_string_equal(name, "a+b+c+d");
    /* a and b require each other: only both or neither. */
    memset(&s, 0, sizeof(s));
    s.n_flags = 2;
    snprintf(s.flags[0].name, KT_NAME_MAX, "a");
    snprintf(s.flags[1].name, KT_NAME_MAX, "b");
    snprintf(s.flags[0].requires[0], KT_NAME_MAX, "b");
    snprintf(s.flags[1].requires[0], KT_NAME_MAX, "a");
    s.flags[0].n_requires = s.flags[1].n_requires = 1;
    assert_int_equal(kt_gauntlet_profiles(&s, masks, 64), 2);
    assert_int_equal(masks[1], 3);
    /* 12 independent flags: the whole power set. */
    memset(&s, 0, sizeof(s));
    s.n_flags = KT_GAUNTLET_MAX_FLAGS;
    for (unsigned i = 0; i < s.n_flags; i++)
        snprintf(s.flags[i].name, KT_NAME_MAX, "f%u", i);
    assert_int_equal(kt_gauntlet_profiles(&s, NULL, 0), 1u << KT_GAUNTLET_MAX_FLAGS);
    /* A name that does not fit is cut, never overflowed. */
    kt_gauntlet_profile_name(&s, 0xfff, name, 8);
    assert_true(strlen(name) < 8);
}

static void test_two_kernels(void **state)
{
    (void)state;
    _cleanup_gauntlet_ kt_gauntlet_t *g = NULL;
    char err[1024] = "";
    if (kt_gauntlet_load(S_DIR "/two_kernels.yaml", &g, err, sizeof(err)) < 0)
        fail_msg("%s", err);
    assert_int_equal(g->n_kernels, 2);
    s_expect_path(g->kernels[0].path, "fake/bzImage");
    s_expect_path(g->kernels[1].path, "fake/bzImage-other");
    assert_string_equal(g->kernels[1].label, "older");
    assert_int_equal(g->scheds[1].n_args, 1);
    assert_string_equal(g->scheds[1].args[0], "-v");
    assert_int_equal(g->n_topologies, 3);
    assert_false(g->topologies[2].preset);
    assert_string_equal(g->topologies[2].name, "1n2l2c2t");
    assert_int_equal(g->topologies[2].topo.threads_per_core, 2);
    assert_int_equal(g->n_scenarios, 3);
    /* From ../scenarios/steady_llc.yaml, relative to the gauntlet. */
    assert_string_equal(g->scenarios[1].name, "steady_llc");
    assert_int_equal(g->scenarios[1].constraints.min_llcs, 2);
    assert_string_equal(g->scenarios[2].name, "two_spinners");
    assert_int_equal(g->scenarios[2].duration_ms, 2000);
    assert_int_equal(g->scenarios[2].cgroups[0].workers, 2);
    assert_int_equal(g->duration_ms, 0);
    assert_int_equal(g->repeat, 2);
}

/* Parses text as if it were S_DIR/g.yaml. */
static int s_parse(const char *text, kt_gauntlet_t **g, char *err, size_t len)
{
    return kt_gauntlet_parse(text, strlen(text), "g.yaml", s_real_dir, g, err, len);
}

#define S_HEAD "kernels: [fake/bzImage]\n"
#define S_TAIL "topologies: [tiny-1llc]\nscenarios: [steady]\n"

static unsigned s_mismatches;

/* Reports every mismatch of a table of cases, then the test fails once. */
static void s_expect(const char *text, const char *want)
{
    kt_gauntlet_t *g = (kt_gauntlet_t *)0x1;
    char err[1024] = "";
    int r = s_parse(text, &g, err, sizeof(err));
    if (r != -EINVAL || strcmp(err, want) != 0) {
        print_error("for:\n%s\nr=%d err='%s'\nwant '%s'\n", text, r, err, want);
        s_mismatches++;
    }
    assert_ptr_equal(g, (kt_gauntlet_t *)0x1);
}

static void test_errors(void **state)
{
    (void)state;
    /* Structure. */
    s_expect("", "g.yaml: empty document: expected a gauntlet mapping");
    s_expect("- a\n", "g.yaml:1:1: expected a mapping for a gauntlet, got a sequence");
    s_expect(S_HEAD S_TAIL "kernel: x\n",
             "g.yaml:4:1: unknown key 'kernel' in a gauntlet (did you mean 'kernels'?)");
    s_expect(S_HEAD S_TAIL "colour: red\n",
             "g.yaml:4:1: unknown key 'colour' in a gauntlet (known: kernels, schedulers, "
             "topologies, scenarios, duration, repeat, work_type, payloads)");
    s_expect(S_HEAD S_TAIL "work_type: spinn\n",
             "g.yaml:4:12: work_type: unknown work type 'spinn' (known: spin, yield, mixed, "
             "bursty, io-sync, pipe-pingpong, futex-pingpong, cache-pressure, cache-yield, "
             "cache-pipe, futex-fan-out, fan-out-compute, sequence, fork-exit, nice-sweep, "
             "affinity-churn, policy-churn, page-fault-churn, mutex-contention)");
    s_expect(S_HEAD S_TAIL "work_type: [spin]\n",
             "g.yaml:4:12: work_type: expected a work type, got a sequence");
    s_expect(S_TAIL, "g.yaml:1:1: missing key 'kernels' in the gauntlet");
    s_expect(S_HEAD "scenarios: [steady]\n",
             "g.yaml:1:1: missing key 'topologies' in the gauntlet");
    s_expect(S_HEAD "topologies: [tiny-1llc]\n",
             "g.yaml:1:1: missing key 'scenarios' (or 'payloads') in the gauntlet");
    /* The wording shared with the scenario reader (kt_yaml): an alias
     * without an anchor is named, a key is shown whole up to 63 bytes, a
     * key holding a NUL byte is refused as such. */
    s_expect(S_HEAD S_TAIL "repeat: *r\n", "g.yaml:4:10: repeat: alias '*r' names no anchor");
    s_expect(
        S_HEAD S_TAIL "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk: 1\n",
        "g.yaml:4:1: unknown key 'kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk' in "
        "a gauntlet (known: kernels, schedulers, topologies, scenarios, duration, repeat, "
        "work_type, payloads)");
    s_expect(S_HEAD S_TAIL "\"re\\0peat\": 1\n", "g.yaml:4:2: a key contains a NUL byte");
    s_expect(S_HEAD "topologies: [tiny-1llc]\n"
                    "scenarios: [{name: x, cgroups: [{name: a, workers: *n}]}]\n",
             "g.yaml:3:53: cgroups[0].workers: alias '*n' names no anchor");
    s_expect(S_HEAD S_TAIL "---\nkernels: []\n",
             "g.yaml:5:1: a second YAML document: a gauntlet file holds one");
    s_expect("kernels: [a\n", "g.yaml:2:1: flow sequence without a closing bracket");
    /* Kernels. */
    s_expect("kernels: []\n" S_TAIL, "g.yaml:1:10: kernels: expected at least one kernel");
    s_expect("kernels: fake/bzImage\n" S_TAIL,
             "g.yaml:1:10: kernels: expected a sequence of kernel, got a scalar");
    s_expect("kernels: [nope/bzImage]\n" S_TAIL,
             "g.yaml:1:11: kernels[0]: '" KT_FIXTURES "/gauntlets/nope/bzImage': No such file or "
             "directory");
    s_expect("kernels:\n  - label: x\n" S_TAIL,
             "g.yaml:2:5: kernels[0]: a kernel needs exactly one of 'path' and 'spec'");
    s_expect("kernels:\n  - {path: fake/bzImage, lable: x}\n" S_TAIL,
             "g.yaml:2:26: kernels[0]: unknown key 'lable' in a kernel (did you mean 'label'?)");
    s_expect("kernels:\n  - {path: fake/bzImage, label: 'a b'}\n" S_TAIL,
             "g.yaml:2:34: kernels[0].label: 'a b' is not a valid label (1 to 63 of A-Z a-z 0-9 "
             "_ . - +)");
    s_expect("kernels: [fake/bzImage, fake/../fake/bzImage]\n" S_TAIL,
             "g.yaml:1:25: kernels[1]: '" KT_FIXTURES "/gauntlets/fake/bzImage' is already "
             "kernels[0]");
    s_expect("kernels:\n  - {path: fake/bzImage, label: k}\n  - {path: fake/bzImage-other, "
             "label: k}\n" S_TAIL,
             "g.yaml:3:5: kernels[1]: label 'k' is already used by kernels[0]");
    /* Kernel specs are checked at load time, with the spec's position. */
    s_expect("kernels: [6.13..6.12]\n" S_TAIL,
             "g.yaml:1:11: kernels[0]: kernel spec '6.13..6.12': 6.13 is newer than 6.12");
    s_expect("kernels:\n  - {spec: 'git+../linux', label: x}\n" S_TAIL,
             "g.yaml:2:13: kernels[0].spec: kernel spec 'git+../linux': git+URL needs #REF (a "
             "branch, tag or commit)");
    s_expect("kernels:\n  - {spec: 6.12, path: fake/bzImage}\n" S_TAIL,
             "g.yaml:2:5: kernels[0]: a kernel needs exactly one of 'path' and 'spec'");
    s_expect("kernels: [[fake/bzImage]]\n" S_TAIL,
             "g.yaml:1:11: kernels[0]: expected a path, a kernel spec or {path|spec, label}, "
             "got a sequence");
    /* Schedulers. */
    s_expect(S_HEAD "schedulers: [{name: scx_qmap}]\n" S_TAIL,
             "g.yaml:2:21: schedulers[0]: scheduler 'scx_qmap' needs a 'binary', or "
             "'from_kernel' for each kernel's own build (only eevdf runs without one)");
    s_expect(S_HEAD
             "schedulers: [{name: scx_qmap, binary: fake/scx_qmap, from_kernel: q}]\n" S_TAIL,
             "g.yaml:2:67: schedulers[0]: a scheduler has a 'binary' or 'from_kernel', not both");
    s_expect(S_HEAD "schedulers: [{name: eevdf, from_kernel: scx_simple}]\n" S_TAIL,
             "g.yaml:2:41: schedulers[0].from_kernel: eevdf is the kernel's own scheduler and "
             "takes no binary");
    s_expect(S_HEAD "schedulers: [{name: q, from_kernel: ../q}]\n" S_TAIL,
             "g.yaml:2:37: schedulers[0].from_kernel: '../q' is not a valid name (1 to 63 of "
             "A-Z a-z 0-9 _ . -, not . or ..)");
    s_expect(S_HEAD "schedulers: [{name: scx_qmap, binary: fake/scx_none}]\n" S_TAIL,
             "g.yaml:2:39: schedulers[0].binary: '" KT_FIXTURES "/gauntlets/fake/scx_none': No "
             "such file or directory");
    s_expect(S_HEAD "schedulers: [{name: scx_qmap, binary: fake}]\n" S_TAIL,
             "g.yaml:2:39: schedulers[0].binary: '" KT_FIXTURES "/gauntlets/fake' is not a "
             "regular file");
    s_expect(S_HEAD "schedulers: [{name: eevdf, binary: fake/scx_qmap}]\n" S_TAIL,
             "g.yaml:2:36: schedulers[0].binary: eevdf is the kernel's own scheduler and takes "
             "no binary");
    s_expect(S_HEAD "schedulers: [{name: eevdf, flags: [{name: a}]}]\n" S_TAIL,
             "g.yaml:2:35: schedulers[0].flags: eevdf takes no flags");
    s_expect(S_HEAD "schedulers: [{name: 'a/b'}]\n" S_TAIL,
             "g.yaml:2:22: schedulers[0].name: 'a/b' is not a valid name (1 to 63 of A-Z a-z "
             "0-9 _ . -, not . or ..)");
    s_expect(S_HEAD "schedulers: [{name: eevdf}, {name: eevdf}]\n" S_TAIL,
             "g.yaml:2:29: schedulers[1]: scheduler 'eevdf' is already schedulers[0]");
    s_expect(S_HEAD
             "schedulers:\n  - name: q\n    binary: fake/scx_qmap\n    args: ['-s 5']\n" S_TAIL,
             "g.yaml:5:13: schedulers[0].args[0]: '-s 5': an argument may not be empty or hold "
             "blanks (the worker splits arguments on blanks)");
    s_expect(S_HEAD
             "schedulers:\n  - name: q\n    binary: fake/scx_qmap\n    args: [\"\"]\n" S_TAIL,
             "g.yaml:5:13: schedulers[0].args[0]: '': an argument may not be empty or hold "
             "blanks (the worker splits arguments on blanks)");
    s_expect(S_HEAD "schedulers:\n  - name: q\n    binary: fake/scx_qmap\n    flags:\n"
                    "      - {name: a, requires: [b]}\n" S_TAIL,
             "g.yaml:6:9: schedulers[0].flags[0]: flag 'a' requires 'b', which is not a flag of "
             "this scheduler");
    s_expect(S_HEAD "schedulers:\n  - name: q\n    binary: fake/scx_qmap\n    flags:\n"
                    "      - {name: a, requires: [a]}\n" S_TAIL,
             "g.yaml:6:9: schedulers[0].flags[0]: flag 'a' requires 'a', itself");
    s_expect(S_HEAD "schedulers:\n  - name: q\n    binary: fake/scx_qmap\n    flags:\n"
                    "      - {name: a}\n      - {name: a}\n" S_TAIL,
             "g.yaml:7:9: schedulers[0].flags[1]: flag 'a' is declared twice");
    s_expect(S_HEAD "schedulers:\n  - name: q\n    binary: fake/scx_qmap\n    flags:\n"
                    "      - {name: default}\n" S_TAIL,
             "g.yaml:6:16: schedulers[0].flags[0].name: 'default' names the profile with no "
             "flag");
    s_expect(S_HEAD "schedulers:\n  - name: q\n    binary: fake/scx_qmap\n    flags:\n"
                    "      - {name: a, arg: [x]}\n" S_TAIL,
             "g.yaml:6:19: schedulers[0].flags[0]: unknown key 'arg' in a flag (did you mean "
             "'args'?)");
    /* Topologies. */
    s_expect(S_HEAD "topologies: [tiny-9llc]\nscenarios: [steady]\n",
             "g.yaml:2:14: topologies[0]: 'tiny-9llc' is not a preset, N,L,C,T or a label like "
             "1n2l2c1t");
    s_expect(S_HEAD "topologies: ['1,0,1,1']\nscenarios: [steady]\n",
             "g.yaml:2:15: topologies[0]: '1,0,1,1': no zero, at most 256 CPUs, LLCs a multiple "
             "of the nodes");
    s_expect(S_HEAD "topologies: [tiny-2llc, '1,2,2,1']\nscenarios: [steady]\n",
             "g.yaml:2:26: topologies[1]: '1,2,2,1' is the same shape as topologies[0] "
             "(tiny-2llc)");
    s_expect(S_HEAD "topologies: [[1, 2]]\nscenarios: [steady]\n",
             "g.yaml:2:14: topologies[0]: expected a preset or N,L,C,T, got a sequence");
    /* Scenarios. */
    s_expect(S_HEAD "topologies: [tiny-1llc]\nscenarios: [stedy]\n",
             "g.yaml:3:13: scenarios[0]: 'stedy' is not a built-in scenario (steady, steady_llc, "
             "oversubscribed, pipe_pingpong, futex_pingpong, cpuset_apply, cpuset_clear, "
             "cpuset_resize, cpuset_swap, cgroup_add, cgroup_remove, cgroup_spawn, "
             "affinity_change, affinity_pinned, affinity_cross, host_contention, mixed_workloads, "
             "nested_steady, nested_task_move) nor a path to a YAML file");
    s_expect(S_HEAD "topologies: [tiny-1llc]\nscenarios: [steady, steady]\n",
             "g.yaml:3:21: scenarios[1]: scenario 'steady' is already scenarios[0]");
    s_expect(S_HEAD "topologies: [tiny-1llc]\nscenarios: [none.yaml]\n",
             "g.yaml:3:13: scenarios[0]: '" KT_FIXTURES "/gauntlets/none.yaml': No such file or "
             "directory");
    s_expect(S_HEAD "topologies: [tiny-1llc]\nscenarios: [../scenarios/bad_unknown_key.yaml]\n",
             "g.yaml:3:13: scenarios[0]: " KT_FIXTURES "/scenarios/bad_unknown_key.yaml:7:5: "
             "cgroups[1]: unknown key 'wrkers' in cgroup (did you mean 'workers'?)");
    s_expect(S_HEAD "topologies: [tiny-1llc]\nscenarios:\n  - name: x\n    cgroups: []\n",
             "g.yaml:5:14: cgroups: 0 entries, expected 1..32");
    /* duration and repeat. */
    s_expect(S_HEAD S_TAIL "duration: 3 s\n",
             "g.yaml:4:11: duration: '3 s' is not a duration (a whole number of ms, or with a "
             "unit: 250ms, 3s, 1.5s, 2m, 1h)");
    s_expect(S_HEAD S_TAIL "duration: 25h\n", "g.yaml:4:11: duration: '25h' is out of range "
                                              "1ms..86400000ms");
    s_expect(S_HEAD S_TAIL "repeat: 0\n", "g.yaml:4:9: repeat: 0 is out of range 1..100");
    s_expect(S_HEAD S_TAIL "repeat: '2'\n",
             "g.yaml:4:10: repeat: expected an integer, got the string '2'");
    /* Text that is not printable UTF-8 is refused before libfyaml sees it. */
    s_expect(S_HEAD "\xff", "g.yaml:2:1: invalid UTF-8 byte 0xff");
    s_expect(S_HEAD "x: \x01\n", "g.yaml:2:4: character U+0001 is not allowed in YAML");
    assert_int_equal(s_mismatches, 0);
}

/* Bounds: more entries than the limits, oversized text, the libfyaml hang. */
static void test_bounds(void **state)
{
    (void)state;
    char err[1024];
    kt_gauntlet_t *g = NULL;
    /* 65 topologies. */
    char text[8192];
    size_t off = (size_t)snprintf(text, sizeof(text), S_HEAD "scenarios: [steady]\ntopologies:\n");
    for (unsigned i = 0; i < 65; i++)
        off += (size_t)snprintf(text + off, sizeof(text) - off, "  - '1,%u,1,1'\n", i + 1);
    assert_int_equal(s_parse(text, &g, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "g.yaml:4:3: topologies: 65 entries, more than the limit of 64");
    /* 13 flags. */
    off = (size_t)snprintf(text, sizeof(text),
                           S_HEAD S_TAIL "schedulers:\n  - name: q\n    binary: fake/scx_qmap\n"
                                         "    flags:\n");
    for (unsigned i = 0; i < 13; i++)
        off += (size_t)snprintf(text + off, sizeof(text) - off, "      - {name: f%u}\n", i);
    assert_int_equal(s_parse(text, &g, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "g.yaml:8:7: schedulers[0].flags: 13 entries, more than the limit "
                             "of 12");
    /* Arguments of every flag together over the wire's 511 bytes. */
    off = (size_t)snprintf(text, sizeof(text),
                           S_HEAD S_TAIL "schedulers:\n  - name: q\n    binary: fake/scx_qmap\n"
                                         "    flags:\n");
    for (unsigned i = 0; i < 5; i++)
        off += (size_t)snprintf(text + off, sizeof(text) - off,
                                "      - {name: f%u, args: [%0120u]}\n", i, i);
    assert_int_equal(s_parse(text, &g, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "g.yaml:8:7: schedulers[0].flags: with every flag on the arguments "
                             "take 604 bytes, more than 511");
    /* Over the file size limit. */
    size_t big = (1u << 20) + 1;
    char *huge = malloc(big);
    assert_non_null(huge);
    memset(huge, '#', big);
    assert_int_equal(kt_gauntlet_parse(huge, big, "g.yaml", s_real_dir, &g, err, sizeof(err)),
                     -EFBIG);
    free(huge);
    /* libfyaml 0.7.12 loops forever on a directive before invalid UTF-8:
     * refused at once. */
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    assert_int_equal(kt_gauntlet_parse("%\x9f", 2, "g.yaml", s_real_dir, &g, err, sizeof(err)),
                     -EINVAL);
    clock_gettime(CLOCK_MONOTONIC, &b);
    assert_string_equal(err, "g.yaml:1:2: invalid UTF-8 byte 0x9f");
    assert_true(b.tv_sec - a.tv_sec < 2);
    /* An alias bomb stays bounded: 64 scenarios at most, each parsed once. */
    assert_int_equal(s_parse(S_HEAD "topologies: [tiny-1llc]\n"
                                    "scenarios: &s [steady, *s]\n",
                             &g, err, sizeof(err)),
                     -EINVAL);
}

static void test_load_errors(void **state)
{
    (void)state;
    kt_gauntlet_t *g = NULL;
    char err[1024];
    assert_int_equal(kt_gauntlet_load(S_DIR "/missing.yaml", &g, err, sizeof(err)), -ENOENT);
    assert_string_equal(err, S_DIR "/missing.yaml: No such file or directory");
    assert_int_equal(kt_gauntlet_load(S_DIR, &g, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, S_DIR ": not a regular file");
    /* Errors name the file as it was given. */
    assert_int_equal(kt_gauntlet_load(S_DIR "/bad_requires.yaml", &g, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, S_DIR "/bad_requires.yaml:11:9: schedulers[1].flags[1]: flag "
                                   "'boost' requires 'batch', which is not a flag of this "
                                   "scheduler");
    assert_null(g);
}

/* Accepted spellings: aliases, bare kernel paths, N,L,C,T and labels,
 * schedulers left out (eevdf), args as an empty list. */
static void test_accepted_forms(void **state)
{
    (void)state;
    _cleanup_gauntlet_ kt_gauntlet_t *g = NULL;
    char err[1024] = "";
    const char *text = "kernels:\n"
                       "  - &k fake/bzImage\n"
                       "topologies: ['2,4,2,1', 1n1l2c2t, smt-2llc]\n"
                       "scenarios:\n"
                       "  - &inline {name: mine, cgroups: [{name: c, workers: 1}]}\n"
                       "  - futex_pingpong\n"
                       "duration: 1500ms\n"
                       "repeat: 3\n"
                       "work_type: futex_fan_out\n";
    if (s_parse(text, &g, err, sizeof(err)) < 0)
        fail_msg("%s", err);
    assert_int_equal(g->n_scheds, 1);
    assert_string_equal(g->scheds[0].name, "eevdf");
    assert_string_equal(g->scheds[0].from_kernel, "");
    assert_string_equal(g->topologies[0].name, "2n4l2c1t");
    assert_int_equal(g->topologies[0].topo.numa_nodes, 2);
    assert_string_equal(g->topologies[1].name, "1n1l2c2t");
    assert_string_equal(g->topologies[2].name, "smt-2llc");
    assert_true(g->topologies[2].preset);
    assert_string_equal(g->scenarios[0].name, "mine");
    assert_int_equal(g->duration_ms, 1500);
    assert_int_equal(g->repeat, 3);
    assert_true(g->override_work);
    assert_int_equal(g->work_type, KT_WORK_FUTEX_FAN_OUT);
    assert_string_equal(g->path, "g.yaml");
    kt_gauntlet_free(&g);
    /* from_kernel names a file in each kernel's bin/: not checked here (the
     * run resolves it per kernel), no binary. */
    text = "kernels: [fake/bzImage]\n"
           "schedulers: [{name: simple, from_kernel: scx_simple, args: [-v]}]\n"
           "topologies: [tiny-1llc]\nscenarios: [steady]\n";
    if (s_parse(text, &g, err, sizeof(err)) < 0)
        fail_msg("%s", err);
    assert_string_equal(g->scheds[0].name, "simple");
    assert_string_equal(g->scheds[0].from_kernel, "scx_simple");
    assert_string_equal(g->scheds[0].binary, "");
    assert_int_equal(g->scheds[0].n_args, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_example),        cmocka_unit_test(test_kernel_specs),
        cmocka_unit_test(test_profiles),
        cmocka_unit_test(test_two_kernels),    cmocka_unit_test(test_errors),
        cmocka_unit_test(test_bounds),         cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_accepted_forms),
    };
    return cmocka_run_group_tests(tests, s_setup, NULL);
}
