/* ktstr-coord selftests without VMs: the runner's listing (both forms, from
 * text and from fake runners run for real), test selection, the cells a run
 * gets (payload, TAP judge, names, ids), and such a cell through the fleet's
 * ASSIGN codec. */
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

#include "kt_hash.h"
#include "kt_msg.h"
#include "kt_selftests.h"

#define S_FAKE KT_FIXTURES "/gauntlets/fake"

static const char s_skip_listing[] =
    "===== START =====\n"
    "TEST: create_dsq\n"
    "DESCRIPTION: Create and destroy a dsq in a loop\n"
    "OUTPUT:\n"
    "ok 1 create_dsq # SKIP \n"
    "=====  END  =====\n"
    "===== START =====\n"
    "TEST: minimal\n"
    "DESCRIPTION: Verify we can load a fully minimal scheduler\n"
    "OUTPUT:\n"
    "ok 2 minimal # SKIP \n"
    "=====  END  =====\n"
    "===== START =====\n"
    "TEST: example\n"
    "OUTPUT:\n"
    "ok 3 example # SKIP \n"
    "=====  END  =====\n"
    "\n\n=============================\n\nRESULTS:\n\nPASSED:  0\nSKIPPED: 3\nFAILED:  0\n";

static void t_parse_skip_listing(void **state)
{
    kt_selftest_t t[8];
    unsigned n = 0;
    char why[256];
    assert_int_equal(kt_selftests_parse_list(s_skip_listing, strlen(s_skip_listing), false, t, 8,
                                             &n, why, sizeof(why)),
                     0);
    assert_int_equal(n, 3);
    assert_string_equal(t[0].name, "create_dsq");
    assert_string_equal(t[0].description, "Create and destroy a dsq in a loop");
    assert_string_equal(t[1].name, "minimal");
    assert_string_equal(t[2].name, "example");
    assert_string_equal(t[2].description, "");
}

static void t_parse_one_per_line(void **state)
{
    kt_selftest_t t[8];
    unsigned n = 0;
    char why[256];
    const char *text = "create_dsq\n  minimal \r\n\nexample";
    assert_int_equal(kt_selftests_parse_list(text, strlen(text), true, t, 8, &n, why, sizeof(why)),
                     0);
    assert_int_equal(n, 3);
    assert_string_equal(t[1].name, "minimal");
    /* Help text is not a listing: a line with blanks is no name. */
    const char *help = "The runner for sched_ext tests.\nUsage: runner [-t TEST] [-h]\n";
    assert_int_equal(kt_selftests_parse_list(help, strlen(help), true, t, 8, &n, why, sizeof(why)),
                     -EBADMSG);
    assert_non_null(strstr(why, "line 1"));
    /* Duplicates, nothing, too many. */
    const char *dup = "a\nb\na\n";
    assert_int_equal(kt_selftests_parse_list(dup, strlen(dup), true, t, 8, &n, why, sizeof(why)),
                     -EBADMSG);
    assert_non_null(strstr(why, "listed twice"));
    assert_int_equal(kt_selftests_parse_list("\n\n", 2, true, t, 8, &n, why, sizeof(why)),
                     -EBADMSG);
    assert_int_equal(kt_selftests_parse_list("", 0, false, t, 8, &n, why, sizeof(why)), -EBADMSG);
    const char *three = "a\nb\nc\n";
    assert_int_equal(kt_selftests_parse_list(three, strlen(three), true, t, 2, &n, why,
                                             sizeof(why)),
                     -E2BIG);
    /* A TEST: line with a name that is not one. */
    const char *bad = "TEST: rm -rf /\n";
    assert_int_equal(kt_selftests_parse_list(bad, strlen(bad), false, t, 8, &n, why, sizeof(why)),
                     -EBADMSG);
}

/* A fake runner: a shell script standing in for the static binary. */
static void s_write_runner(const char *path, const char *body)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "#!/bin/sh\n%s\n", body);
    fclose(f);
    assert_int_equal(chmod(path, 0755), 0);
}

static void t_list_runs_the_runner(void **state)
{
    char dir[] = "/tmp/kt-test-selftests-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128], marker[160];
    snprintf(path, sizeof(path), "%s/runner", dir);
    snprintf(marker, sizeof(marker), "%s/ran-a-test", dir);
    kt_selftest_t *t = NULL;
    unsigned n = 0;
    char why[512];

    /* 6.12: no -l (usage on stderr, exit 1); -s -t with a filter that
     * matches nothing lists every test as skipped. A run of a real test
     * would leave the marker. */
    char body[1024];
    snprintf(body, sizeof(body),
             "case \"$1\" in\n"
             "-l) echo \"invalid option -- 'l'\" >&2; exit 1;;\n"
             "-s) [ \"$2\" = -t ] || exit 3\n"
             "    case \"$3\" in *minimal*) touch %s;; esac\n"
             "    printf 'TEST: minimal\\nDESCRIPTION: d1\\nok 1 minimal # SKIP\\n'\n"
             "    printf 'TEST: exit\\nDESCRIPTION: d2\\nok 2 exit # SKIP\\n'; exit 0;;\n"
             "esac\ntouch %s; exit 0",
             marker, marker);
    s_write_runner(path, body);
    assert_int_equal(kt_selftests_list(path, &t, &n, why, sizeof(why)), 0);
    assert_int_equal(n, 2);
    assert_string_equal(t[0].name, "minimal");
    assert_string_equal(t[1].description, "d2");
    assert_int_equal(access(marker, F_OK), -1);
    free(t);
    t = NULL;

    /* A newer runner: -l lists one name per line. */
    s_write_runner(path, "[ \"$1\" = -l ] && printf 'a\\nb\\nc\\n' && exit 0; exit 9");
    assert_int_equal(kt_selftests_list(path, &t, &n, why, sizeof(why)), 0);
    assert_int_equal(n, 3);
    assert_string_equal(t[2].name, "c");
    free(t);
    t = NULL;

    /* A runner that lists nothing, one that fails, a missing one. */
    s_write_runner(path, "exit 0");
    assert_int_equal(kt_selftests_list(path, &t, &n, why, sizeof(why)), -EBADMSG);
    assert_non_null(strstr(why, "listed no tests"));
    s_write_runner(path, "exit 5");
    assert_int_equal(kt_selftests_list(path, &t, &n, why, sizeof(why)), -EBADMSG);
    assert_non_null(strstr(why, "-s -t: exit status 5"));
    assert_non_null(strstr(why, "-l: exit status 5"));
    unlink(path);
    assert_int_equal(kt_selftests_list(path, &t, &n, why, sizeof(why)), -ENOENT);
    assert_null(t);
    unlink(marker);
    rmdir(dir);
}

static void t_selected(void **state)
{
    const char *filters[] = {"select_cpu", "dsq"};
    const char *names[] = {"minimal"};
    assert_true(kt_selftests_selected("anything", NULL, 0, NULL, 0));
    assert_true(kt_selftests_selected("minimal", filters, 2, names, 1));
    assert_true(kt_selftests_selected("create_dsq", filters, 2, names, 1));
    assert_true(kt_selftests_selected("select_cpu_vtime", filters, 2, names, 1));
    assert_false(kt_selftests_selected("maximal", filters, 2, names, 1));
    assert_false(kt_selftests_selected("minimal_x", NULL, 0, names, 1));
}

static void t_prepare(void **state)
{
    kt_selftest_t tests[2] = {{.name = "minimal"}, {.name = "select_cpu_dfl"}};
    kt_selftests_config_t cfg = {.runner = S_FAKE "/scx_qmap", .kernel = S_FAKE "/bzImage",
                                 .timeout_ms = 30000};
    assert_int_equal(kt_topology_parse("tiny-2llc", &cfg.topology), 0);
    kt_coord_run_t run = {0};
    char err[512] = "";
    int r = kt_selftests_prepare(&cfg, tests, 2, &run, err, sizeof(err));
    if (r < 0)
        fail_msg("%s", err);
    assert_int_equal(run.n_cells, 2);
    assert_int_equal(run.n_kernels, 1);
    assert_int_equal(run.n_payloads, 1);
    char sha[KT_HASH_HEX_SIZE];
    assert_int_equal(kt_hash_sha256_file(S_FAKE "/scx_qmap", sha), 0);
    assert_string_equal(run.payloads[0].sha, sha);
    const kt_cellspec_t *s = &run.cells[1].spec;
    assert_string_equal(s->cell_name, "selftests/select_cpu_dfl/tiny-2llc/6.12.117-fake");
    assert_string_equal(s->sched_name, "eevdf");
    assert_string_equal(s->sched_sha, "");
    assert_int_equal(s->plan.n_cgroups, 0);
    const kt_payload_spec_t *p = &s->plan.payload;
    assert_string_equal(p->name, "scx_qmap");
    assert_string_equal(p->sha, sha);
    assert_int_equal(p->n_args, 2);
    assert_string_equal(kt_payload_arg(p, 0), "-t");
    assert_string_equal(kt_payload_arg(p, 1), "select_cpu_dfl");
    assert_int_equal(p->judge, KT_PAYLOAD_JUDGE_TAP);
    assert_string_equal(p->tap_test, "select_cpu_dfl");
    assert_int_equal(p->timeout_ms, 30000);
    assert_int_equal(s->plan.duration_ms, 30000);
    assert_true(s->memory_mib > 0);
    assert_true(kt_hash_hex_valid(s->cell_id));
    assert_string_not_equal(run.cells[0].spec.cell_id, s->cell_id);

    /* Same inputs, same ids; another timeout, another id. */
    kt_coord_run_t again = {0};
    assert_int_equal(kt_selftests_prepare(&cfg, tests, 2, &again, err, sizeof(err)), 0);
    assert_string_equal(again.cells[1].spec.cell_id, s->cell_id);
    kt_coord_run_free(&again);
    cfg.timeout_ms = 31000;
    assert_int_equal(kt_selftests_prepare(&cfg, tests, 2, &again, err, sizeof(err)), 0);
    assert_string_not_equal(again.cells[1].spec.cell_id, s->cell_id);
    kt_coord_run_free(&again);

    /* The cell through ASSIGN (what a worker decodes). */
    kt_msg_t m;
    kt_msg_init(&m, KT_MSG_ASSIGN);
    m.u.assign.attempt = 1;
    m.u.assign.lease_ms = 60000;
    m.u.assign.spec = *s;
    snprintf(m.u.assign.spec.run_id, sizeof(m.u.assign.spec.run_id), "r1");
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    assert_int_equal(kt_msg_encode_body(&m, &sb), 0);
    static kt_msg_t back;
    char why[256] = "";
    r = kt_msg_decode_body(KT_MSG_ASSIGN, sb.data, sb.size, &back, why, sizeof(why));
    if (r < 0)
        fail_msg("%s", why);
    assert_string_equal(back.u.assign.spec.plan.payload.sha, sha);
    assert_string_equal(back.u.assign.spec.plan.payload.tap_test, "select_cpu_dfl");
    assert_int_equal(back.u.assign.spec.plan.payload.judge, KT_PAYLOAD_JUDGE_TAP);
    kt_msg_clear(&back);
    msgpack_sbuffer_destroy(&sb);

    /* Bad inputs. */
    cfg.runner = S_FAKE "/no-such-runner";
    assert_int_equal(kt_selftests_prepare(&cfg, tests, 2, &again, err, sizeof(err)), -ENOENT);
    assert_non_null(strstr(err, "no-such-runner"));
    cfg.runner = S_FAKE "/scx_qmap";
    cfg.kernel = S_FAKE "/no-such-kernel";
    assert_true(kt_selftests_prepare(&cfg, tests, 2, &again, err, sizeof(err)) < 0);
    assert_non_null(strstr(err, "--kernel"));
    assert_int_equal(kt_selftests_prepare(&cfg, tests, 0, &again, err, sizeof(err)), -EINVAL);
    kt_coord_run_free(&run);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_parse_skip_listing),
        cmocka_unit_test(t_parse_one_per_line),
        cmocka_unit_test(t_list_runs_the_runner),
        cmocka_unit_test(t_selected),
        cmocka_unit_test(t_prepare),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
