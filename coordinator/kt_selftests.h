/* The kernel's sched_ext selftests as cells: list the tests of a runner
 * (tools/testing/selftests/sched_ext `runner`, a static binary), and make
 * one payload cell per test whose payload is `runner -t NAME`, judged by
 * NAME's TAP line (the runner exits 0 even when a test fails). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kt_coord.h"

#define KT_SELFTEST_NAME_MAX 64
#define KT_SELFTEST_DESC_MAX 256
#define KT_SELFTESTS_MAX 1024
#define KT_SELFTESTS_DEFAULT_TIMEOUT_MS 120000u

typedef struct kt_selftest {
    char name[KT_SELFTEST_NAME_MAX];
    char description[KT_SELFTEST_DESC_MAX];   /* "" when the listing has none */
} kt_selftest_t;

/* A runner's listing: either one test name per line (`runner -l`), or the
 * blocks of `runner -s -t NOMATCH` (every test printed as skipped:
 * "TEST: name", "DESCRIPTION: text", "ok N name # SKIP"). Names are 1..63 of
 * [A-Za-z0-9_.+-]; a duplicate is an error. 0 with at least one test,
 * -EBADMSG with why otherwise. */
int kt_selftests_parse_list(const char *text, size_t len, bool one_per_line, kt_selftest_t *out,
                            unsigned max, unsigned *ret_n, char *why, size_t why_len);

/* Lists the runner's tests by running it on this host without running a
 * test: `-s -t` with a filter no name contains (every runner since 6.12
 * prints each test as skipped), else `-l` (newer runners; 6.12 has none).
 * Bounded: 10 s, 1 MiB of output. Caller owns *ret. -errno with why
 * (-EBADMSG: neither gave a listing). */
int kt_selftests_list(const char *runner, kt_selftest_t **ret, unsigned *ret_n, char *why,
                      size_t why_len);

/* True when name is one of tests (exact), or contains one of filters; true
 * when both lists are empty. */
bool kt_selftests_selected(const char *name, const char *const *filters, unsigned n_filters,
                           const char *const *tests, unsigned n_tests);

typedef struct kt_selftests_config {
    const char *runner;             /* the runner binary on this host */
    const char *kernel;             /* bzImage, build or source dir */
    const char *kernel_label;       /* NULL: from the image */
    kt_topology_t topology;
    const char *topology_preset;    /* NULL: the preset of topology, if any */
    uint32_t timeout_ms;            /* per test (0: KT_SELFTESTS_DEFAULT_TIMEOUT_MS) */
    uint32_t max_output;            /* 0: KT_PAYLOAD_OUTPUT_DEFAULT */
} kt_selftests_config_t;

/* A run with one cell per test: the kernel resolved (label, version, sha,
 * commit), no scheduler (the tests load their own), the runner as the
 * payload of every cell (`-t NAME`, judged by NAME's TAP line, killed at
 * the timeout), cells named selftests/{name}/{topology}/{kernel_label} with
 * ids hashed from the kernel, the runner and the test. run_id is left empty.
 * -errno with err. */
int kt_selftests_prepare(const kt_selftests_config_t *cfg, const kt_selftest_t *tests, unsigned n,
                         kt_coord_run_t *ret, char *err, size_t err_len);
