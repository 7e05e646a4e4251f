/* The options and setup ktstr-coord run and selftests share (kt_runopts)
 * and the CLI number readers under them (kt_cli): every range edge taken
 * or refused with the words the verbs print, the verbs' option loop (their
 * own options out, --help, usage errors, strays), --workers as a file, a list or
 * a missing path, and the results directory, store, report, run.json and
 * cells that a run begins with. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
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
#include <sqlite3.h>

#include "kt_cleanup.h"
#include "kt_cli.h"
#include "kt_hash.h"
#include "kt_log.h"
#include "kt_runopts.h"

static char s_dir[64];

static int s_setup(void **state)
{
    (void)state;
    snprintf(s_dir, sizeof(s_dir), "/tmp/kt-test-runopts.XXXXXX");
    return mkdtemp(s_dir) ? 0 : -1;
}

static int s_rm_rf(const char *path)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
    return system(cmd);
}

static int s_teardown(void **state)
{
    (void)state;
    return s_rm_rf(s_dir) == 0 ? 0 : -1;
}

static void test_cli_parse_u64(void **state)
{
    (void)state;
    uint64_t v = 7;
    assert_int_equal(kt_cli_parse_u64("10", 10, 20, &v), 0);
    assert_int_equal(v, 10);
    assert_int_equal(kt_cli_parse_u64("20", 10, 20, &v), 0);
    assert_int_equal(v, 20);
    v = 7;
    assert_int_equal(kt_cli_parse_u64("9", 10, 20, &v), -EINVAL);
    assert_int_equal(kt_cli_parse_u64("21", 10, 20, &v), -EINVAL);
    assert_int_equal(kt_cli_parse_u64("-1", 0, UINT64_MAX, &v), -EINVAL);
    assert_int_equal(kt_cli_parse_u64("", 0, 20, &v), -EINVAL);
    assert_int_equal(kt_cli_parse_u64("12ms", 0, 20, &v), -EINVAL);
    assert_int_equal(kt_cli_parse_u64("99999999999999999999999", 0, UINT64_MAX, &v), -EINVAL);
    assert_int_equal(v, 7); /* untouched on failure */
}

static void test_cli_parse_secs(void **state)
{
    (void)state;
    uint64_t ms = 1;
    assert_int_equal(kt_cli_parse_secs("1.5", &ms), 0);
    assert_int_equal(ms, 1500);
    assert_int_equal(kt_cli_parse_secs("2592000", &ms), 0); /* 30 days */
    assert_int_equal(ms, 2592000000ull);
    ms = 1;
    assert_int_equal(kt_cli_parse_secs("0", &ms), -EINVAL);
    assert_int_equal(kt_cli_parse_secs("-3", &ms), -EINVAL);
    assert_int_equal(kt_cli_parse_secs("2592001", &ms), -EINVAL);
    assert_int_equal(kt_cli_parse_secs("nan", &ms), -EINVAL);
    assert_int_equal(kt_cli_parse_secs("5s", &ms), -EINVAL);
    assert_int_equal(ms, 1);
}

/* Takes c with arg: 1 and no message, or -EINVAL and exactly want. */
static void s_take(kt_runopts_t *o, int c, const char *arg, int want_r, const char *want_err)
{
    char err[256] = "";
    assert_int_equal(kt_runopts_take(o, c, arg, err, sizeof(err)), want_r);
    assert_string_equal(err, want_err ? want_err : "");
}

static void test_take(void **state)
{
    (void)state;
    kt_runopts_t o;
    kt_runopts_init(&o, "selftests", NULL);
    assert_string_equal(o.xo.verb, "selftests");
    assert_string_equal(o.results, "results");
    assert_false(o.results_set);

    s_take(&o, 'w', "a:1,b:2", 1, NULL);
    s_take(&o, 'r', "out", 1, NULL);
    s_take(&o, 'j', "j.xml", 1, NULL);
    s_take(&o, 'c', "c_secret", 1, NULL);
    s_take(&o, 'a', "tcg", 1, NULL);
    s_take(&o, 'p', "plain", 1, NULL);
    s_take(&o, 'v', NULL, 1, NULL);
    assert_string_equal(o.workers, "a:1,b:2");
    assert_string_equal(o.results, "out");
    assert_true(o.results_set);
    assert_string_equal(o.xo.junit, "j.xml");
    assert_string_equal(o.xo.curve_secret, "c_secret");
    assert_string_equal(o.xo.accel, "tcg");
    assert_string_equal(o.progress, "plain");
    assert_true(o.verbose);

    s_take(&o, 'H', "10", 1, NULL);
    s_take(&o, 'L', "600000", 1, NULL);
    s_take(&o, 'M', "100", 1, NULL);
    s_take(&o, 'V', "4096", 1, NULL);
    s_take(&o, 'm', "64", 1, NULL);
    assert_int_equal(o.xo.heartbeat_ms, 10);
    assert_int_equal(o.xo.lost_after_ms, 600000);
    assert_int_equal(o.xo.max_attempts, 100);
    assert_int_equal(o.xo.local_vcpus, 4096);
    assert_int_equal(o.xo.local_memory_mib, 64);

    s_take(&o, 'H', "9", -EINVAL, "--heartbeat '9': expected 10..600000 ms");
    s_take(&o, 'L', "600001", -EINVAL, "--lost-after '600001': expected 10..600000 ms");
    s_take(&o, 'M', "0", -EINVAL, "--max-attempts '0': expected 1..100");
    s_take(&o, 'V', "4097", -EINVAL, "--local-vcpus '4097': expected 1..4096");
    s_take(&o, 'm', "63", -EINVAL, "--local-memory '63': expected MiB >= 64");
    /* A refused value leaves the one taken before. */
    assert_int_equal(o.xo.heartbeat_ms, 10);
    assert_int_equal(o.xo.local_memory_mib, 64);

    /* Not shared: the verb's own (or getopt's '?'). */
    s_take(&o, 'g', "x", 0, NULL);
    s_take(&o, 'e', "null", 0, NULL);
    s_take(&o, '?', NULL, 0, NULL);
}

static FILE *s_usage_to;
static unsigned s_usage_calls;

static void s_usage(FILE *f)
{
    s_usage_to = f;
    s_usage_calls++;
}

/* The options as a verb gets them: run's table, in part. */
static const struct option s_opts[] = {
    {"workers", required_argument, NULL, 'w'},   {"gauntlet", required_argument, NULL, 'g'},
    {"results", required_argument, NULL, 'r'},   {"heartbeat", required_argument, NULL, 'H'},
    {"max-attempts", required_argument, NULL, 'M'}, {"verbose", no_argument, NULL, 'v'},
    {"help", no_argument, NULL, 'h'},            {0},
};

/* Runs kt_runopts_getopt over args to its end; the verb's own options
 * land in own (letters), the last answer and exit status in ret_c/ret_exit. */
static void s_getopt(kt_runopts_t *o, const char *const *args, char *own, int *ret_c,
                     int *ret_exit)
{
    char *argv[16];
    int argc = 0;
    argv[argc++] = (char *)"run";
    for (; args[argc - 1]; argc++)
        argv[argc] = (char *)args[argc - 1];
    argv[argc] = NULL;
    kt_runopts_init(o, "run", s_usage);
    s_usage_to = NULL;
    s_usage_calls = 0;
    optind = 1;
    opterr = 0;
    size_t n = 0;
    int c, ex = -1;
    while ((c = kt_runopts_getopt(o, argc, argv, "w:g:r:H:M:vh", s_opts, &ex)) > 0)
        own[n++] = (char)c;
    own[n] = '\0';
    *ret_c = c;
    *ret_exit = ex;
}

static void test_getopt(void **state)
{
    (void)state;
    kt_runopts_t o;
    char own[16];
    int c, ex;

    s_getopt(&o, (const char *const[]){"--workers", "a:1", "-g", "g.yaml", "--heartbeat", "50",
                                       "-v", NULL},
             own, &c, &ex);
    assert_int_equal(c, KT_RUNOPTS_DONE);
    assert_string_equal(own, "g");
    assert_string_equal(o.workers, "a:1");
    assert_int_equal(o.xo.heartbeat_ms, 50);
    assert_true(o.verbose);
    assert_int_equal(s_usage_calls, 0);

    s_getopt(&o, (const char *const[]){"-g", "x", "--help", "-g", "y", NULL}, own, &c, &ex);
    assert_int_equal(c, KT_RUNOPTS_EXIT);
    assert_int_equal(ex, 0);
    assert_string_equal(own, "g");
    assert_ptr_equal(s_usage_to, stdout);

    s_getopt(&o, (const char *const[]){"--bogus", NULL}, own, &c, &ex);
    assert_int_equal(c, KT_RUNOPTS_EXIT);
    assert_int_equal(ex, 2);
    assert_ptr_equal(s_usage_to, stderr);

    /* A refused value says why (on stderr), without the usage. */
    s_getopt(&o, (const char *const[]){"--max-attempts", "0", NULL}, own, &c, &ex);
    assert_int_equal(c, KT_RUNOPTS_EXIT);
    assert_int_equal(ex, 2);
    assert_int_equal(s_usage_calls, 0);

    s_getopt(&o, (const char *const[]){"-g", "x", "stray", NULL}, own, &c, &ex);
    assert_int_equal(c, KT_RUNOPTS_EXIT);
    assert_int_equal(ex, 2);
    assert_string_equal(own, "g");
    assert_ptr_equal(s_usage_to, stderr);
    assert_int_equal(s_usage_calls, 1);
}

static void test_progress(void **state)
{
    (void)state;
    enum kt_log_level before = kt_log_get_level();
    kt_runopts_t o;
    kt_runopts_init(&o, "run", NULL);
    enum kt_report_progress p = KT_REPORT_PROGRESS_TTY;
    char err[256] = "";
    assert_int_equal(kt_runopts_progress(&o, &p, err, sizeof(err)), 0);
    assert_int_equal(p, KT_REPORT_PROGRESS_AUTO);
    static const char *const names[] = {"auto", "tty", "plain", "quiet"};
    for (unsigned i = 0; i < 4; i++) {
        o.progress = names[i];
        assert_int_equal(kt_runopts_progress(&o, &p, err, sizeof(err)), 0);
        assert_int_equal(p, (enum kt_report_progress)i);
    }
    p = KT_REPORT_PROGRESS_QUIET;
    o.progress = "loud";
    assert_int_equal(kt_runopts_progress(&o, &p, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "--progress 'loud': expected auto, tty, plain or quiet");
    assert_int_equal(p, KT_REPORT_PROGRESS_QUIET);

    /* A live line keeps the log to warnings; -v logs everything. */
    kt_log_set_level(KT_LOG_INFO);
    o.progress = "tty";
    assert_int_equal(kt_runopts_progress(&o, &p, err, sizeof(err)), 0);
    assert_int_equal(kt_log_get_level(), KT_LOG_WARN);
    o.verbose = true;
    assert_int_equal(kt_runopts_progress(&o, &p, err, sizeof(err)), 0);
    assert_int_equal(kt_log_get_level(), KT_LOG_DEBUG);
    kt_log_set_level(before);
}

static void test_hosts(void **state)
{
    (void)state;
    kt_host_t *h = NULL;
    unsigned n = 0;
    char err[512] = "", path[256];

    assert_int_equal(kt_runopts_hosts("a.lab:7500,b.lab", &h, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 2);
    assert_string_equal(h[0].endpoint, "tcp://a.lab:7500");
    assert_string_equal(h[1].endpoint, "tcp://b.lab:7461");
    free(h);
    h = NULL;

    snprintf(path, sizeof(path), "%s/hosts.txt", s_dir);
    FILE *f = fopen(path, "we");
    assert_non_null(f);
    fputs("# lab\nw1.lab name=one\n", f);
    fclose(f);
    assert_int_equal(kt_runopts_hosts(path, &h, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 1);
    assert_string_equal(h[0].name, "one");
    assert_int_equal(h[0].line, 2);
    free(h);
    h = NULL;

    /* A path that is no file is not taken for a host name. */
    snprintf(path, sizeof(path), "%s/missing.txt", s_dir);
    assert_int_equal(kt_runopts_hosts(path, &h, &n, err, sizeof(err)), -ENOENT);
    char want[512];
    snprintf(want, sizeof(want), "--workers '%s': no such file", path);
    assert_string_equal(err, want);
    assert_null(h);
}

static void test_db_path(void **state)
{
    (void)state;
    kt_runopts_t o;
    kt_runopts_init(&o, "run", NULL);
    char db[64], err[512] = "";
    assert_int_equal(kt_runopts_db_path(&o, db, sizeof(db), err, sizeof(err)), 0);
    assert_string_equal(db, "results/ktstr.db");
    o.results = "a/results/directory/deeper/than/this/small/buffer/holds";
    assert_int_equal(kt_runopts_db_path(&o, db, sizeof(db), err, sizeof(err)), -ENAMETOOLONG);
    assert_string_equal(err, "--results 'a/results/directory/deeper/than/this/small/buffer/holds': "
                             "path too long");
}

/* A run of n cells by hand, enough for the report and the store. */
static void s_run(kt_coord_run_t *run, unsigned n)
{
    memset(run, 0, sizeof(*run));
    run->n_kernels = 1;
    run->kernels = calloc(1, sizeof(*run->kernels));
    run->n_scheds = 1;
    run->scheds = calloc(1, sizeof(*run->scheds));
    run->n_cells = n;
    run->cells = calloc(n, sizeof(*run->cells));
    assert_non_null(run->kernels);
    assert_non_null(run->scheds);
    assert_non_null(run->cells);
    snprintf(run->kernels[0].label, sizeof(run->kernels[0].label), "6.12.117");
    snprintf(run->scheds[0].name, sizeof(run->scheds[0].name), "eevdf");
    char run_id[40];
    kt_coord_run_id_new(run_id);
    assert_int_equal(kt_coord_run_set_id(run, run_id), 0);
    for (unsigned i = 0; i < n; i++) {
        kt_cellspec_t *s = &run->cells[i].spec;
        snprintf(s->cell_name, sizeof(s->cell_name), "g/steady/1n1l1c1t/eevdf/%u", i);
        assert_int_equal(kt_hash_sha256_buf(s->cell_name, strlen(s->cell_name), s->cell_id), 0);
        snprintf(s->run_id, sizeof(s->run_id), "%s", run->run_id);
        snprintf(s->kernel_label, sizeof(s->kernel_label), "6.12.117");
        snprintf(s->kernel_version, sizeof(s->kernel_version), "6.12.117");
    }
}

static int s_count_cells(const char *db, const char *run_id)
{
    sqlite3 *h = NULL;
    sqlite3_stmt *st = NULL;
    int n = -1;
    if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(h, "SELECT count(*) FROM cells WHERE run_id = ?", -1, &st, NULL) ==
            SQLITE_OK &&
        sqlite3_bind_text(st, 1, run_id, -1, SQLITE_STATIC) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(h);
    return n;
}

static void test_open_and_begin(void **state)
{
    (void)state;
    kt_coord_run_t run;
    s_run(&run, 3);
    kt_runopts_t o;
    kt_runopts_init(&o, "selftests", NULL);
    char results[128], db[PATH_MAX], err[PATH_MAX + 256] = "";
    snprintf(results, sizeof(results), "%s/results", s_dir);
    o.results = results;
    assert_int_equal(kt_runopts_db_path(&o, db, sizeof(db), err, sizeof(err)), 0);

    kt_store_t *store = NULL;
    kt_report_t *report = NULL;
    assert_int_equal(kt_runopts_open(&o, db, &run, KT_REPORT_PROGRESS_QUIET, &store, &report, err,
                                     sizeof(err)),
                     0);
    assert_non_null(store);
    assert_non_null(report);
    struct stat sb;
    assert_int_equal(stat(results, &sb), 0);
    assert_true(S_ISDIR(sb.st_mode));

    json_t *inputs = json_pack("{s:s}", "gauntlet", "g.yaml");
    assert_non_null(inputs);
    char *text = NULL;
    assert_int_equal(kt_runopts_run_json(report, inputs, &text, err, sizeof(err)), 0);
    assert_non_null(text);
    char rj[PATH_MAX];
    snprintf(rj, sizeof(rj), "%s/run.json", kt_report_run_dir(report));
    assert_int_equal(access(rj, R_OK), 0);

    bool todo[3] = {false, false, false};
    assert_int_equal(kt_runopts_store_cells(store, &run, text, todo), 0);
    assert_true(todo[0] && todo[1] && todo[2]);
    char *stored = NULL;
    assert_int_equal(kt_store_run_inputs(store, run.run_id, &stored), 0);
    assert_string_equal(stored, text);
    free(stored);
    free(text);
    json_decref(inputs);
    kt_report_free(&report);
    kt_store_close(&store);
    assert_int_equal(s_count_cells(db, run.run_id), 3);

    /* An open store is kept (run --resume opens it first). */
    assert_int_equal(kt_store_open(db, &store), 0);
    kt_store_t *kept = store;
    assert_int_equal(kt_runopts_open(&o, db, &run, KT_REPORT_PROGRESS_QUIET, &store, &report, err,
                                     sizeof(err)),
                     0);
    assert_ptr_equal(store, kept);
    kt_report_free(&report);
    kt_store_close(&store);
    kt_coord_run_free(&run);
}

static void test_open_refused(void **state)
{
    (void)state;
    kt_coord_run_t run;
    s_run(&run, 1);
    char file[128], results[192], db[PATH_MAX], err[PATH_MAX + 256] = "";
    snprintf(file, sizeof(file), "%s/plain-file", s_dir);
    FILE *f = fopen(file, "we");
    assert_non_null(f);
    fclose(f);
    snprintf(results, sizeof(results), "%s/results", file);
    kt_runopts_t o;
    kt_runopts_init(&o, "run", NULL);
    o.results = results;
    assert_int_equal(kt_runopts_db_path(&o, db, sizeof(db), err, sizeof(err)), 0);
    kt_store_t *store = NULL;
    kt_report_t *report = NULL;
    assert_int_equal(kt_runopts_open(&o, db, &run, KT_REPORT_PROGRESS_QUIET, &store, &report, err,
                                     sizeof(err)),
                     -ENOTDIR);
    char want[512];
    snprintf(want, sizeof(want), "cannot make '%s': %s", results, strerror(ENOTDIR));
    assert_string_equal(err, want);
    assert_null(store);
    assert_null(report);
    kt_coord_run_free(&run);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cli_parse_u64),
        cmocka_unit_test(test_cli_parse_secs),
        cmocka_unit_test(test_take),
        cmocka_unit_test(test_getopt),
        cmocka_unit_test(test_progress),
        cmocka_unit_test(test_hosts),
        cmocka_unit_test(test_db_path),
        cmocka_unit_test(test_open_and_begin),
        cmocka_unit_test(test_open_refused),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
