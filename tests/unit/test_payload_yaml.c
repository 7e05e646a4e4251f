/* Payloads declared in files: a scenario's `payload:` map (from memory, kept
 * as written; from a file, resolved against its folder and checked) and a
 * gauntlet's `payloads:` list (binaries against the gauntlet's folder, an
 * optional scenario beside). Good input gives the spec field by field; bad
 * input gives the exact FILE:LINE:COL error naming the key. */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "kt_gauntlet.h"
#include "kt_scenario_yaml.h"

static unsigned s_mismatches;

/* A folder with an executable bin/bench, a non-executable bin/data and a
 * bzImage stand-in (the gauntlet reads kernels only when a run is prepared). */
static char s_dir[PATH_MAX];

static void s_write(const char *rel, const char *text, mode_t mode)
{
    char path[PATH_MAX + 64];
    snprintf(path, sizeof(path), "%s/%s", s_dir, rel);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(chmod(path, mode), 0);
}

static int s_setup(void **state)
{
    (void)state;
    char tmpl[] = "/tmp/kt-payload-yaml-XXXXXX";
    if (!mkdtemp(tmpl))
        return -1;
    if (!realpath(tmpl, s_dir))
        return -1;
    char bin[PATH_MAX + 8];
    snprintf(bin, sizeof(bin), "%s/bin", s_dir);
    if (mkdir(bin, 0755) < 0)
        return -1;
    s_write("bin/bench", "#!/bin/sh\necho '{\"ops\": 1}'\n", 0755);
    s_write("bin/data", "not a program\n", 0644);
    s_write("bzImage", "not a kernel\n", 0644);
    return 0;
}

static int s_teardown(void **state)
{
    (void)state;
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", s_dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ---- scenario `payload:` ---- */

static void s_expect(const char *text, const char *want)
{
    char err[512] = "", full[640];
    kt_scenario_t *s = malloc(sizeof(*s));
    assert_non_null(s);
    int r = kt_scenario_yaml_parse(text, strlen(text), "t.yaml", s, err, sizeof(err));
    snprintf(full, sizeof(full), "t.yaml:%s", want);
    if (r != -EINVAL || strcmp(err, full) != 0) {
        print_error("for:\n%s\nwant %d '%s'\ngot  %d '%s'\n", text, -EINVAL, full, r, err);
        s_mismatches++;
    }
    free(s);
}

static kt_scenario_t *s_parse_ok(const char *text)
{
    char err[512] = "";
    kt_scenario_t *s = malloc(sizeof(*s));
    assert_non_null(s);
    if (kt_scenario_yaml_parse(text, strlen(text), "t.yaml", s, err, sizeof(err)) < 0)
        fail_msg("for:\n%s\nerror: %s", text, err);
    return s;
}

static void test_scenario_payload_fields(void **state)
{
    (void)state;
    kt_scenario_t *s = s_parse_ok("name: p\n"
                                  "cgroups: [{name: a, workers: 2}]\n"
                                  "payload:\n"
                                  "  binary: ../bin/bench\n"
                                  "  args: [\"-n\", 4, \"two words\"]\n"
                                  "  checks: [\"ops>=1000\", \"lat.p99<=2.5\", \"r=1..3\", "
                                  "\"exit==3\"]\n"
                                  "  judge: tap\n"
                                  "  tap_test: minimal\n"
                                  "  timeout: 1500ms\n"
                                  "  output_bytes: 4096\n");
    const kt_payload_spec_t *p = &s->payload;
    assert_true(kt_payload_present(p));
    assert_string_equal(p->name, "bench");
    assert_string_equal(s->payload_binary, "../bin/bench"); /* from memory: as written */
    assert_string_equal(p->sha, "");
    assert_int_equal(p->n_args, 3);
    assert_string_equal(kt_payload_arg(p, 0), "-n");
    assert_string_equal(kt_payload_arg(p, 1), "4");
    assert_string_equal(kt_payload_arg(p, 2), "two words");
    assert_int_equal(p->n_checks, 4);
    assert_int_equal(p->checks[0].kind, KT_PAYLOAD_CHECK_MIN);
    assert_string_equal(p->checks[0].metric, "ops");
    assert_true(p->checks[0].lo == 1000);
    assert_int_equal(p->checks[1].kind, KT_PAYLOAD_CHECK_MAX);
    assert_true(p->checks[1].hi == 2.5);
    assert_int_equal(p->checks[2].kind, KT_PAYLOAD_CHECK_RANGE);
    assert_true(p->checks[2].lo == 1 && p->checks[2].hi == 3);
    assert_int_equal(p->checks[3].kind, KT_PAYLOAD_CHECK_EXIT);
    assert_true(p->checks[3].lo == 3);
    assert_int_equal(p->judge, KT_PAYLOAD_JUDGE_TAP);
    assert_string_equal(p->tap_test, "minimal");
    assert_int_equal(p->timeout_ms, 1500);
    assert_int_equal(p->max_output, 4096);
    assert_int_equal(s->n_cgroups, 1);
    free(s);

    /* Defaults; args as one string with quoting. */
    s = s_parse_ok("name: p\ncgroups: [{name: a, workers: 2}]\n"
                   "payload: {binary: bench, args: \"-t 'a b' c\"}\n");
    assert_int_equal(s->payload.n_args, 3);
    assert_string_equal(kt_payload_arg(&s->payload, 1), "a b");
    assert_int_equal(s->payload.timeout_ms, KT_PAYLOAD_TIMEOUT_DEFAULT_MS);
    assert_int_equal(s->payload.max_output, KT_PAYLOAD_OUTPUT_DEFAULT);
    assert_int_equal(s->payload.judge, KT_PAYLOAD_JUDGE_EXIT);
    assert_int_equal(s->payload.n_checks, 0);
    free(s);

    /* The payload alone: no cgroups key, or an empty list; it resolves to a
     * plan without cgroups (the caller sets the plan's payload). */
    s = s_parse_ok("name: alone\npayload: {binary: bench}\n");
    assert_int_equal(s->n_cgroups, 0);
    kt_topology_t t;
    assert_int_equal(kt_topology_parse("tiny-1llc", &t), 0);
    kt_plan_t *plan = malloc(sizeof(*plan));
    assert_non_null(plan);
    char why[256] = "";
    assert_int_equal(kt_scenario_resolve(s, &t, 0, plan, why, sizeof(why)), 0);
    assert_int_equal(plan->n_cgroups, 0);
    assert_false(kt_payload_present(&plan->payload));
    free(s);
    s = s_parse_ok("name: alone\ncgroups: []\npayload: {binary: bench}\n");
    assert_int_equal(s->n_cgroups, 0);
    /* Without a payload no cgroups is still refused at resolve. */
    kt_scenario_init(s, "bad");
    assert_int_equal(kt_scenario_resolve(s, &t, 0, plan, why, sizeof(why)), -EINVAL);
    assert_string_equal(why, "scenario 'bad' has no cgroups");
    free(plan);
    free(s);
}

static void test_scenario_payload_errors(void **state)
{
    (void)state;
    s_mismatches = 0;
#define CG "cgroups: [{name: a, workers: 1}]\n"
    /* A quoted value's position is its first character inside the quotes. */
    s_expect("name: x\n" CG "payload: {args: [a]}\n",
             "3:10: payload: missing key 'binary' (the static binary to run)");
    s_expect("name: x\n" CG "payload: {binary: b, chekcs: []}\n",
             "3:22: payload: unknown key 'chekcs' in a payload (did you mean 'checks'?)");
    s_expect("name: x\n" CG "payload: {binary: b, name: n}\n",
             "3:22: payload: unknown key 'name' in a payload (known: binary, args, checks, judge, "
             "tap_test, timeout, output_bytes)");
    s_expect("name: x\n" CG "payload: bench\n",
             "3:10: payload: expected a mapping for a payload, got a scalar");
    s_expect("name: x\n" CG "payload: {binary: \"..\"}\n",
             "3:20: payload.binary: '..': the file name must be 1..63 bytes, not . or ..");
    s_expect("name: x\n" CG "payload: {binary: b, args: {a: 1}}\n",
             "3:28: payload.args: expected a sequence of arguments or a string, got a mapping");
    s_expect("name: x\n" CG "payload: {binary: b, args: \"'open\"}\n",
             "3:29: payload.args: unterminated ' quote");
    s_expect("name: x\n" CG "payload: {binary: b, args: [a, [b]]}\n",
             "3:32: payload.args[1]: expected an argument, got a sequence");
    s_expect("name: x\n" CG "payload: {binary: b, checks: [\"ops>=1\", \"ops>>1\"]}\n",
             "3:42: payload.checks[1]: check 'ops>>1': '>' alone is not an operator (use >= "
             "or <=)");
    s_expect("name: x\n" CG "payload: {binary: b, checks: \"ops>=1\"}\n",
             "3:31: payload.checks: expected a sequence of checks (\"METRIC>=N\"), got a scalar");
    s_expect("name: x\n" CG "payload: {binary: b, judge: tcp}\n",
             "3:29: payload.judge: 'tcp' is not exit or tap");
    s_expect("name: x\n" CG "payload: {binary: b, tap_test: t}\n",
             "3:22: payload.tap_test: only with judge: tap");
    s_expect("name: x\n" CG "payload: {binary: b, timeout: 0s}\n",
             "3:31: payload.timeout: '0s' is out of range 1ms..86400000ms");
    s_expect("name: x\n" CG "payload: {binary: b, output_bytes: 10}\n",
             "3:36: payload.output_bytes: 10 is out of range 1024..524288");
    /* No payload: cgroups stay required and non-empty. */
    s_expect("name: x\n", "1:1: missing key 'cgroups' in scenario");
    s_expect("name: x\ncgroups: []\n", "2:10: cgroups: 0 entries, expected 1..32");
#undef CG
    assert_int_equal(s_mismatches, 0);
}

/* From a file: the binary resolves against the file's folder and must be
 * an executable regular file. */
static void test_scenario_payload_file(void **state)
{
    (void)state;
    s_write("ok.yaml", "name: ok\npayload: {binary: bin/bench, checks: [\"ops>=1\"]}\n", 0644);
    s_write("missing.yaml", "name: m\npayload: {binary: bin/nope}\n", 0644);
    s_write("notexec.yaml", "name: n\npayload:\n  binary: bin/data\n", 0644);
    s_write("dir.yaml", "name: d\npayload:\n  binary: bin\n", 0644);
    char path[PATH_MAX + 32], want[PATH_MAX * 2 + 128], err[PATH_MAX * 2 + 256] = "";
    kt_scenario_t *s = malloc(sizeof(*s));
    assert_non_null(s);
    snprintf(path, sizeof(path), "%s/ok.yaml", s_dir);
    if (kt_scenario_yaml_load(path, s, err, sizeof(err)) < 0)
        fail_msg("%s", err);
    snprintf(want, sizeof(want), "%s/bin/bench", s_dir);
    assert_string_equal(s->payload_binary, want);
    assert_string_equal(s->payload.name, "bench");

    snprintf(path, sizeof(path), "%s/missing.yaml", s_dir);
    assert_int_equal(kt_scenario_yaml_load(path, s, err, sizeof(err)), -EINVAL);
    snprintf(want, sizeof(want),
             "%s:2:19: payload.binary: '%s/bin/nope': No such file or directory", path, s_dir);
    assert_string_equal(err, want);
    snprintf(path, sizeof(path), "%s/notexec.yaml", s_dir);
    assert_int_equal(kt_scenario_yaml_load(path, s, err, sizeof(err)), -EINVAL);
    snprintf(want, sizeof(want), "%s:3:11: payload.binary: '%s/bin/data' is not executable", path,
             s_dir);
    assert_string_equal(err, want);
    snprintf(path, sizeof(path), "%s/dir.yaml", s_dir);
    assert_int_equal(kt_scenario_yaml_load(path, s, err, sizeof(err)), -EINVAL);
    snprintf(want, sizeof(want), "%s:3:11: payload.binary: '%s/bin' is not a regular file", path,
             s_dir);
    assert_string_equal(err, want);
    free(s);
}

/* ---- gauntlet `payloads:` ---- */

#define G_HEAD "kernels: [bzImage]\ntopologies: [tiny-1llc]\n"

static kt_gauntlet_t *s_gauntlet_ok(const char *text)
{
    char err[1024] = "";
    kt_gauntlet_t *g = NULL;
    if (kt_gauntlet_parse(text, strlen(text), "g.yaml", s_dir, &g, err, sizeof(err)) < 0)
        fail_msg("for:\n%s\nerror: %s", text, err);
    return g;
}

/* The error is exactly want, or (prefix) starts with it: for messages that
 * list the built-in scenarios, which grow. */
static void s_gexpect_at(const char *text, const char *want, bool prefix)
{
    char err[1024] = "", full[1200];
    kt_gauntlet_t *g = NULL;
    int r = kt_gauntlet_parse(text, strlen(text), "g.yaml", s_dir, &g, err, sizeof(err));
    snprintf(full, sizeof(full), "g.yaml:%s", want);
    bool same = prefix ? strncmp(err, full, strlen(full)) == 0 : strcmp(err, full) == 0;
    if (r != -EINVAL || !same) {
        print_error("for:\n%s\nwant %d '%s'\ngot  %d '%s'\n", text, -EINVAL, full, r, err);
        s_mismatches++;
    }
    kt_gauntlet_free(&g);
}

static void s_gexpect(const char *text, const char *want)
{
    s_gexpect_at(text, want, false);
}

static void test_gauntlet_payloads(void **state)
{
    (void)state;
    kt_gauntlet_t *g =
        s_gauntlet_ok(G_HEAD "payloads:\n"
                             "  - name: alone\n"
                             "    binary: bin/bench\n"
                             "    args: \"-n 3\"\n"
                             "    checks: [\"ops>=5\", \"exit==0\"]\n"
                             "    timeout: 20s\n"
                             "  - {name: busy, binary: bin/bench, scenario: steady}\n"
                             "  - name: inline\n"
                             "    binary: bin/bench\n"
                             "    scenario: {name: s1, cgroups: [{name: a, "
                             "workers: 1}]}\n");
    assert_int_equal(g->n_scenarios, 0);
    assert_int_equal(g->n_payloads, 3);
    char want[PATH_MAX + 32];
    snprintf(want, sizeof(want), "%s/bin/bench", s_dir);
    const kt_gauntlet_payload_t *p = &g->payloads[0];
    assert_string_equal(p->name, "alone");
    assert_string_equal(p->binary, want);
    assert_string_equal(p->spec.name, "bench");
    assert_int_equal(p->spec.n_args, 2);
    assert_int_equal(p->spec.n_checks, 2);
    assert_int_equal(p->spec.timeout_ms, 20000);
    assert_false(p->has_scenario);
    assert_true(g->payloads[1].has_scenario);
    assert_string_equal(g->payloads[1].scenario.name, "steady");
    assert_true(g->payloads[2].has_scenario);
    assert_string_equal(g->payloads[2].scenario.name, "s1");
    kt_gauntlet_free(&g);

    /* An inline scenario's payload resolves against the gauntlet too. */
    g = s_gauntlet_ok(G_HEAD "scenarios: [{name: s, payload: {binary: bin/bench}}]\n");
    assert_string_equal(g->scenarios[0].payload_binary, want);
    kt_gauntlet_free(&g);
}

static void test_gauntlet_payload_errors(void **state)
{
    (void)state;
    s_mismatches = 0;
    s_gexpect(G_HEAD, "1:1: missing key 'scenarios' (or 'payloads') in the gauntlet");
    s_gexpect(G_HEAD "payloads: []\n", "3:11: payloads: expected at least one payload");
    s_gexpect(G_HEAD "payloads: [{binary: bin/bench}]\n",
              "3:12: payloads[0]: missing key 'name' (it names the payload's cells)");
    s_gexpect(G_HEAD "payloads: [{name: b, binary: bin/bench, senario: steady}]\n",
              "3:41: payloads[0]: unknown key 'senario' in a payload (did you mean 'scenario'?)");
    s_gexpect(G_HEAD "payloads: [{name: \"a b\", binary: bin/bench}]\n",
              "3:20: payloads[0].name: 'a b' is not a valid name (1 to 63 of A-Z a-z 0-9 _ . -, "
              "not . or ..)");
    s_gexpect(G_HEAD "payloads:\n  - {name: b, binary: bin/bench}\n  - {name: b, binary: "
                     "bin/bench}\n",
              "5:12: payloads[1].name: payload 'b' is already payloads[0]");
    s_gexpect(G_HEAD "scenarios: [steady]\npayloads: [{name: steady, binary: bin/bench}]\n",
              "4:19: payloads[0].name: 'steady' is also the name of scenarios[0] (both name "
              "cells)");
    char want[PATH_MAX + 128];
    snprintf(want, sizeof(want),
             "3:30: payloads[0].binary: '%s/bin/nope': No such file or directory", s_dir);
    s_gexpect(G_HEAD "payloads: [{name: b, binary: bin/nope}]\n", want);
    s_gexpect_at(G_HEAD "payloads: [{name: b, binary: bin/bench, scenario: nope}]\n",
                 "3:51: payloads[0].scenario: 'nope' is not a built-in scenario (steady, ", true);
    s_gexpect(G_HEAD "payloads:\n  - name: b\n    binary: bin/bench\n"
                     "    scenario: {name: s, cgroups: [{name: a, workers: 1}], payload: {binary: "
                     "bin/bench}}\n",
              "6:15: payloads[0].scenario: scenario 's' has a payload of its own (a cell runs "
              "one)");
    s_gexpect(G_HEAD "payloads: [{name: b, binary: bin/bench, checks: [\"x<1\"]}]\n",
              "3:51: payloads[0].checks[0]: check 'x<1': '<' alone is not an operator (use >= "
              "or <=)");
    assert_int_equal(s_mismatches, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scenario_payload_fields),
        cmocka_unit_test(test_scenario_payload_errors),
        cmocka_unit_test(test_scenario_payload_file),
        cmocka_unit_test(test_gauntlet_payloads),
        cmocka_unit_test(test_gauntlet_payload_errors),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
