/* Topologies: the 24 presets, the three spellings of a shape, what is
 * refused, LLC/node masks, the VM memory rule and CPU lists. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kt_topology.h"

static void s_mask_str(const kt_cpumask_t *m, char *buf, size_t len)
{
    kt_cpumask_format(m, buf, len);
}

#define assert_mask(m, want)                                                                       \
    do {                                                                                           \
        char _b[1024];                                                                             \
        s_mask_str((m), _b, sizeof(_b));                                                           \
        assert_string_equal(_b, (want));                                                           \
    } while (0)

/* ktstr's presets, by name and shape (N, L, C, T) and CPU count. */
static const struct {
    const char *name;
    unsigned n, l, c, t, cpus;
} s_expected[] = {
    {"tiny-1llc", 1, 1, 4, 1, 4},
    {"tiny-2llc", 1, 2, 2, 1, 4},
    {"odd-3llc", 1, 3, 3, 1, 9},
    {"odd-5llc", 1, 5, 3, 1, 15},
    {"odd-7llc", 1, 7, 2, 1, 14},
    {"smt-2llc", 1, 2, 2, 2, 8},
    {"smt-3llc", 1, 3, 2, 2, 12},
    {"medium-4llc", 1, 4, 4, 2, 32},
    {"medium-8llc", 1, 8, 4, 2, 64},
    {"large-4llc", 1, 4, 16, 2, 128},
    {"large-8llc", 1, 8, 8, 2, 128},
    {"near-max-llc", 1, 15, 8, 2, 240},
    {"max-cpu", 1, 14, 9, 2, 252},
    {"medium-4llc-nosmt", 1, 4, 8, 1, 32},
    {"medium-8llc-nosmt", 1, 8, 8, 1, 64},
    {"large-4llc-nosmt", 1, 4, 32, 1, 128},
    {"large-8llc-nosmt", 1, 8, 16, 1, 128},
    {"near-max-llc-nosmt", 1, 15, 16, 1, 240},
    {"max-cpu-nosmt", 1, 14, 18, 1, 252},
    {"numa2-4llc", 2, 4, 4, 1, 16},
    {"numa2-8llc", 2, 8, 8, 2, 128},
    {"numa2-8llc-nosmt", 2, 8, 16, 1, 128},
    {"numa4-8llc", 4, 8, 4, 1, 32},
    {"numa4-12llc", 4, 12, 8, 2, 192},
};

static void test_presets(void **state)
{
    (void)state;
    size_t n;
    const kt_topology_preset_t *p = kt_topology_presets(&n);
    assert_int_equal(n, 24);
    assert_int_equal(n, sizeof(s_expected) / sizeof(s_expected[0]));
    for (size_t i = 0; i < n; i++) {
        const kt_topology_preset_t *want = kt_topology_preset_find(s_expected[i].name);
        if (!want)
            fail_msg("preset '%s' missing", s_expected[i].name);
        kt_topology_t t = {s_expected[i].n, s_expected[i].l, s_expected[i].c, s_expected[i].t};
        assert_true(kt_topology_equal(&want->topo, &t));
        assert_int_equal(kt_topology_cpus(&t), s_expected[i].cpus);
        assert_true(kt_topology_valid(&p[i].topo));

        /* The name parses to the shape, and the shape names the preset. */
        kt_topology_t parsed;
        assert_int_equal(kt_topology_parse(p[i].name, &parsed), 0);
        assert_true(kt_topology_equal(&parsed, &p[i].topo));
        assert_string_equal(kt_topology_preset_name(&p[i].topo), p[i].name);
        for (size_t j = 0; j < i; j++) {
            assert_string_not_equal(p[i].name, p[j].name);
            assert_false(kt_topology_equal(&p[i].topo, &p[j].topo));
        }

        /* The description agrees with the shape it describes. */
        const char *d = p[i].description;
        assert_int_equal(strtoul(d, NULL, 10), kt_topology_cpus(&p[i].topo));
        const char *l = strstr(d, "CPUs, ");
        assert_non_null(l);
        assert_int_equal(strtoul(l + 6, NULL, 10), p[i].topo.llcs);
        if (strstr(d, "no SMT"))
            assert_int_equal(p[i].topo.threads_per_core, 1);
        else if (strstr(d, "SMT"))
            assert_int_equal(p[i].topo.threads_per_core, 2);
        bool numa = strstr(d, "NUMA nodes") != NULL;
        assert_int_equal(numa, p[i].topo.numa_nodes > 1);
    }
    assert_null(kt_topology_preset_find("tiny-3llc"));
    assert_null(kt_topology_preset_find(""));
    kt_topology_t odd = {1, 1, 3, 1};
    assert_null(kt_topology_preset_name(&odd));
}

static void test_label_forms(void **state)
{
    (void)state;
    char buf[KT_TOPOLOGY_LABEL_MAX];
    kt_topology_t t = {2, 4, 4, 1}, p;
    assert_string_equal(kt_topology_label(&t, buf, sizeof(buf)), "2n4l4c1t");
    assert_int_equal(kt_topology_parse("2n4l4c1t", &p), 0);
    assert_true(kt_topology_equal(&p, &t));
    assert_int_equal(kt_topology_parse("2,4,4,1", &p), 0);
    assert_true(kt_topology_equal(&p, &t));
    assert_int_equal(kt_topology_parse("numa2-4llc", &p), 0);
    assert_true(kt_topology_equal(&p, &t));

    /* Every preset's label round-trips, and fits the label buffer. */
    size_t n;
    const kt_topology_preset_t *ps = kt_topology_presets(&n);
    for (size_t i = 0; i < n; i++) {
        kt_topology_label(&ps[i].topo, buf, sizeof(buf));
        assert_int_equal(kt_topology_parse(buf, &p), 0);
        assert_true(kt_topology_equal(&p, &ps[i].topo));
    }
    /* The longest label of a valid shape fits KT_TOPOLOGY_LABEL_MAX. */
    kt_topology_t big = {256, 256, 1, 1};
    assert_true(kt_topology_valid(&big));
    assert_true(strlen(kt_topology_label(&big, buf, sizeof(buf))) < KT_TOPOLOGY_LABEL_MAX);
    assert_string_equal(buf, "256n256l1c1t");
    /* Shapes that are no preset still parse. */
    assert_int_equal(kt_topology_parse("1n3l1c1t", &p), 0);
    assert_int_equal(kt_topology_cpus(&p), 3);
    assert_int_equal(kt_topology_parse("1,1,256,1", &p), 0);
    assert_int_equal(kt_topology_cpus(&p), 256);
    assert_int_equal(kt_topology_parse("1,2,16,8", &p), 0);
    assert_int_equal(kt_topology_cpus(&p), 256);
}

static void test_malformed_shapes(void **state)
{
    (void)state;
    static const char *const malformed[] = {
        "",          "1,2,3",    "1,2,3,4,5", "1n2l3c",   "1n2l3c4",  "1n2l3c4t5",   "a,b,c,d",
        "1,2,2,1x",  "1, 2,2,1", " 1,2,2,1",  "-1,2,2,1", "1,2,2,-1", "1n,2l,2c,1t", "1n2l2c1tx",
        "1N2L2C1T",  "1,2,2,1,", "1;2;2;1",   "tiny",     "1l2n2c1t", "1n2l2c1t ",   "+1,2,2,1",
        "0x1,2,2,1", "1,,2,2",   "nnnn",
    };
    for (size_t i = 0; i < sizeof(malformed) / sizeof(malformed[0]); i++) {
        kt_topology_t t = {9, 9, 9, 9};
        int r = kt_topology_parse(malformed[i], &t);
        if (r != -EINVAL)
            fail_msg("'%s': got %d, want -EINVAL", malformed[i], r);
        assert_int_equal(t.numa_nodes, 9);
    }
    assert_int_equal(kt_topology_parse(NULL, &(kt_topology_t){0}), -EINVAL);

    static const char *const out_of_range[] = {
        "0,1,1,1",      "1,0,1,1",
        "1,1,0,1",      "1,1,1,0",
        "0n1l1c1t",     "1,1,257,1",
        "1,16,16,2",    "1,257,1,1",
        "2,3,2,1",      "4,2,1,1",
        "1,1,1,9",      "1,65536,65536,1",
        "1,1,100001,1", "99999999999999999999,1,1,1",
        "1n300l1c1t",   "3n4l1c1t",
    };
    for (size_t i = 0; i < sizeof(out_of_range) / sizeof(out_of_range[0]); i++) {
        kt_topology_t t = {9, 9, 9, 9};
        int r = kt_topology_parse(out_of_range[i], &t);
        if (r != -ERANGE)
            fail_msg("'%s': got %d, want -ERANGE", out_of_range[i], r);
        assert_int_equal(t.numa_nodes, 9);
    }

    kt_topology_t zero = {0, 0, 0, 0};
    assert_false(kt_topology_valid(&zero));
    kt_topology_t over = {1, 1, 257, 1};
    assert_false(kt_topology_valid(&over));
    /* Products that would overflow 32 bits are refused before multiplying. */
    kt_topology_t wrap = {1, 65536, 65536, 1};
    assert_false(kt_topology_valid(&wrap));
}

static void test_masks(void **state)
{
    (void)state;
    kt_topology_t t;
    kt_cpumask_t m;
    assert_int_equal(kt_topology_parse("numa2-4llc", &t), 0);
    kt_topology_llc_mask(&t, 0, &m);
    assert_mask(&m, "0-3");
    kt_topology_llc_mask(&t, 3, &m);
    assert_mask(&m, "12-15");
    kt_topology_llc_mask(&t, 4, &m);
    assert_true(kt_cpumask_empty(&m));
    kt_topology_node_mask(&t, 0, &m);
    assert_mask(&m, "0-7");
    kt_topology_node_mask(&t, 1, &m);
    assert_mask(&m, "8-15");
    kt_topology_node_mask(&t, 2, &m);
    assert_true(kt_cpumask_empty(&m));
    kt_topology_all_mask(&t, &m);
    assert_mask(&m, "0-15");
    assert_int_equal(kt_topology_node_of_llc(&t, 1), 0);
    assert_int_equal(kt_topology_node_of_llc(&t, 2), 1);
    assert_int_equal(kt_topology_llc_of_cpu(&t, 7), 1);
    assert_int_equal(kt_topology_llc_of_cpu(&t, 8), 2);

    /* SMT siblings are adjacent: cpu = ((llc * C) + core) * T + thread. */
    assert_int_equal(kt_topology_parse("smt-2llc", &t), 0);
    kt_topology_llc_mask(&t, 1, &m);
    assert_mask(&m, "4-7");
    assert_int_equal(kt_topology_llc_of_cpu(&t, 3), 0);
    assert_int_equal(kt_topology_llc_of_cpu(&t, 4), 1);

    assert_int_equal(kt_topology_parse("numa4-8llc", &t), 0);
    kt_topology_node_mask(&t, 3, &m);
    assert_mask(&m, "24-31");
    for (unsigned l = 0; l < t.llcs; l++)
        assert_int_equal(kt_topology_node_of_llc(&t, l), l / 2);

    /* Every preset: LLC masks partition all CPUs, node masks too, and each
     * CPU's LLC holds it. */
    size_t n;
    const kt_topology_preset_t *ps = kt_topology_presets(&n);
    for (size_t i = 0; i < n; i++) {
        const kt_topology_t *pt = &ps[i].topo;
        kt_cpumask_t all, u, v;
        kt_topology_all_mask(pt, &all);
        assert_int_equal(kt_cpumask_weight(&all), kt_topology_cpus(pt));
        kt_cpumask_zero(&u);
        unsigned total = 0;
        for (unsigned l = 0; l < pt->llcs; l++) {
            kt_topology_llc_mask(pt, l, &v);
            assert_int_equal(kt_cpumask_weight(&v), pt->cores_per_llc * pt->threads_per_core);
            total += kt_cpumask_weight(&v);
            kt_cpumask_or(&u, &v);
        }
        assert_int_equal(total, kt_topology_cpus(pt));
        assert_memory_equal(&u, &all, sizeof(u));
        kt_cpumask_zero(&u);
        total = 0;
        for (unsigned nd = 0; nd < pt->numa_nodes; nd++) {
            kt_topology_node_mask(pt, nd, &v);
            assert_int_equal(kt_cpumask_weight(&v), kt_topology_cpus(pt) / pt->numa_nodes);
            total += kt_cpumask_weight(&v);
            kt_cpumask_or(&u, &v);
        }
        assert_int_equal(total, kt_topology_cpus(pt));
        assert_memory_equal(&u, &all, sizeof(u));
        for (unsigned c = 0; c < kt_topology_cpus(pt); c++) {
            kt_topology_llc_mask(pt, kt_topology_llc_of_cpu(pt, c), &v);
            assert_true(kt_cpumask_test(&v, c));
        }
    }
}

static void test_memory_rule(void **state)
{
    (void)state;
    kt_topology_t t;
    assert_int_equal(kt_topology_parse("tiny-1llc", &t), 0);
    assert_int_equal(kt_topology_memory_mib(&t, 0), 256); /* 4 x 64 = 256 */
    assert_int_equal(kt_topology_memory_mib(&t, 100), 256);
    assert_int_equal(kt_topology_memory_mib(&t, 2048), 2048);
    assert_int_equal(kt_topology_parse("1,1,2,1", &t), 0);
    assert_int_equal(kt_topology_memory_mib(&t, 0), 256); /* 128 < 256 floor */
    assert_int_equal(kt_topology_parse("smt-2llc", &t), 0);
    assert_int_equal(kt_topology_memory_mib(&t, 0), 512);
    assert_int_equal(kt_topology_memory_mib(&t, 511), 512);
    assert_int_equal(kt_topology_memory_mib(&t, 513), 513);
    assert_int_equal(kt_topology_parse("numa2-4llc", &t), 0);
    assert_int_equal(kt_topology_memory_mib(&t, 0), 1024);
    assert_int_equal(kt_topology_parse("max-cpu", &t), 0);
    assert_int_equal(kt_topology_memory_mib(&t, 0), 252 * 64);
}

static void test_cpumask_lists(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
        unsigned weight;
    } ok[] = {
        {"0-3,8,10-11", "0-3,8,10-11", 7},
        {"0", "0", 1},
        {"255", "255", 1},
        {"0-255", "0-255", 256},
        {"3,2,1,0", "0-3", 4},
        {"0-1,1-2", "0-2", 3},
        {"5-5", "5", 1},
        {"0,2,4,6", "0,2,4,6", 4},
        {"", "", 0},
        {"\n", "", 0},
        {"0-3\n", "0-3", 4}, /* as sysfs writes it */
        {"  1", "1", 1},
        {"63-64,127-128", "63-64,127-128", 4},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        kt_cpumask_t m;
        int r = kt_cpumask_parse(ok[i].in, &m);
        if (r != 0)
            fail_msg("'%s': got %d", ok[i].in, r);
        assert_mask(&m, ok[i].out);
        assert_int_equal(kt_cpumask_weight(&m), ok[i].weight);
    }
    static const struct {
        const char *in;
        int r;
    } bad[] = {
        {"256", -ERANGE},   {"0-256", -ERANGE},       {"3-1", -EINVAL},  {"a", -EINVAL},
        {"1,", -EINVAL},    {",1", -EINVAL},          {"1-", -EINVAL},   {"1--2", -EINVAL},
        {"1 2", -EINVAL},   {"-1", -EINVAL},          {"1,,2", -EINVAL}, {"0x1", -EINVAL},
        {"1-2-3", -EINVAL}, {"99999999999", -ERANGE},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        kt_cpumask_t m;
        memset(&m, 0x5a, sizeof(m));
        kt_cpumask_t before = m;
        int r = kt_cpumask_parse(bad[i].in, &m);
        if (r != bad[i].r)
            fail_msg("'%s': got %d, want %d", bad[i].in, r, bad[i].r);
        assert_memory_equal(&m, &before, sizeof(m));
    }

    /* Random masks survive format -> parse unchanged. */
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (int round = 0; round < 2000; round++) {
        kt_cpumask_t m, back;
        kt_cpumask_zero(&m);
        for (int w = 0; w < KT_CPUMASK_WORDS; w++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            /* Sparse, dense and run-heavy masks in turn. */
            uint64_t bits = x;
            if (round % 3 == 1)
                bits &= x >> 3;
            else if (round % 3 == 2)
                bits = (x & 0xff) ? ~0ull << (x & 63) : 0;
            m.bits[w] = bits;
        }
        char buf[KT_MAX_CPUS * 4];
        int len = kt_cpumask_format(&m, buf, sizeof(buf));
        assert_int_equal(len, (int)strlen(buf));
        assert_int_equal(kt_cpumask_parse(buf, &back), 0);
        assert_memory_equal(&m, &back, sizeof(m));
    }

    /* Formatting into a short buffer: the full length is returned, the text
     * is a NUL-terminated prefix of the full text. */
    kt_cpumask_t m;
    assert_int_equal(kt_cpumask_parse("0,2,4,6,8,10", &m), 0);
    char small[6], full[64];
    int n = kt_cpumask_format(&m, full, sizeof(full));
    assert_string_equal(full, "0,2,4,6,8,10");
    assert_int_equal(kt_cpumask_format(&m, small, sizeof(small)), n);
    assert_true(strlen(small) < sizeof(small));
    assert_true(strncmp(full, small, strlen(small)) == 0);

    /* Set operations. */
    kt_cpumask_t a, b;
    assert_int_equal(kt_cpumask_parse("0-3", &a), 0);
    assert_int_equal(kt_cpumask_parse("1-2", &b), 0);
    assert_true(kt_cpumask_subset(&b, &a));
    assert_false(kt_cpumask_subset(&a, &b));
    kt_cpumask_set(&b, 200);
    assert_false(kt_cpumask_subset(&b, &a));
    kt_cpumask_or(&a, &b);
    assert_mask(&a, "0-3,200");
    kt_cpumask_set(&a, KT_MAX_CPUS); /* out of range: ignored */
    assert_false(kt_cpumask_test(&a, KT_MAX_CPUS));
    assert_int_equal(kt_cpumask_weight(&a), 5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_presets),          cmocka_unit_test(test_label_forms),
        cmocka_unit_test(test_malformed_shapes), cmocka_unit_test(test_masks),
        cmocka_unit_test(test_memory_rule),      cmocka_unit_test(test_cpumask_lists),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
