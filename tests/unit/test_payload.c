/* Payload cells: the readers of a payload's output (JSON metrics, TAP
 * lines), the check expressions and their evaluation, the bounded capture,
 * the payload spec in the cell message (round trip, absent = none, strict
 * rejects), and the guest's payload process (real child processes: exit
 * status, signal, timeout, bounded output, metrics). */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "kt_chanmsg.h"
#include "kt_checks.h"
#include "kt_guest_payload.h"
#include "kt_payload.h"

/* ---- JSON metrics ---- */

static unsigned s_metrics(const char *text, kt_payload_metric_t *m, bool *trunc, int *rc)
{
    unsigned n = 99;
    *rc = kt_payload_json_metrics(text, strlen(text), m, KT_PAYLOAD_METRICS_MAX, &n, trunc);
    return n;
}

static double s_metric(const kt_payload_metric_t *m, unsigned n, const char *name)
{
    for (unsigned i = 0; i < n; i++)
        if (strcmp(m[i].name, name) == 0)
            return m[i].value;
    fail_msg("metric '%s' not found", name);
    return NAN;
}

static void t_json_nested(void **state)
{
    kt_payload_metric_t m[KT_PAYLOAD_METRICS_MAX];
    bool tr;
    int rc;
    unsigned n = s_metrics("{\"ops\": 123, \"lat\": {\"p99\": 4.5, \"p50\": -1e-3}, \"ok\": true, "
                           "\"name\": \"x\", \"none\": null, \"runs\": [1, {\"b\": 2.25}, [7]]}\n",
                           m, &tr, &rc);
    assert_int_equal(rc, 0);
    assert_false(tr);
    assert_int_equal(n, 6);
    assert_true(s_metric(m, n, "ops") == 123);
    assert_true(s_metric(m, n, "lat.p99") == 4.5);
    assert_true(s_metric(m, n, "lat.p50") == -1e-3);
    assert_true(s_metric(m, n, "runs.0") == 1);
    assert_true(s_metric(m, n, "runs.1.b") == 2.25);
    assert_true(s_metric(m, n, "runs.2.0") == 7);
}

static void t_json_last_object(void **state)
{
    kt_payload_metric_t m[KT_PAYLOAD_METRICS_MAX];
    bool tr;
    int rc;
    /* Log lines, a first object, then the one that counts (pretty printed,
     * with a nested object opening a line of its own). */
    const char *text = "starting {not json}\n"
                       "{\"ops\": 1}\n"
                       "[INFO] warming up\n"
                       "{\n"
                       "  \"ops\": 2,\n"
                       "  \"lat\":\n"
                       "{ \"p99\": 9 }\n"
                       "}\n\n  \n";
    unsigned n = s_metrics(text, m, &tr, &rc);
    assert_int_equal(rc, 0);
    assert_int_equal(n, 2);
    assert_true(s_metric(m, n, "ops") == 2);
    assert_true(s_metric(m, n, "lat.p99") == 9);

    /* Something after the JSON: not "the last JSON object". */
    n = s_metrics("{\"ops\": 1}\ndone\n", m, &tr, &rc);
    assert_int_equal(rc, -ENOENT);
    assert_int_equal(n, 0);
    /* A top-level array and a bare text without JSON. */
    n = s_metrics("[3, 4]", m, &tr, &rc);
    assert_int_equal(rc, 0);
    assert_int_equal(n, 2);
    assert_true(s_metric(m, n, "1") == 4);
    n = s_metrics("no json here\n", m, &tr, &rc);
    assert_int_equal(rc, -ENOENT);
    n = s_metrics("", m, &tr, &rc);
    assert_int_equal(rc, -ENOENT);
    /* JSON without numbers is JSON all the same. */
    n = s_metrics("{\"a\": \"b\"}", m, &tr, &rc);
    assert_int_equal(rc, 0);
    assert_int_equal(n, 0);
}

static void t_json_invalid(void **state)
{
    kt_payload_metric_t m[KT_PAYLOAD_METRICS_MAX];
    bool tr;
    int rc;
    static const char *const bad[] = {
        "{\"a\": 1,}", "{\"a\" 1}", "{\"a\": 01}", "{\"a\": 1.}", "{\"a\": .5}", "{\"a\": +1}",
        "{\"a\": 1e}", "{a: 1}", "{\"a\": tru}", "{\"a\": \"x\ny\"}", "{\"a\": \"\\x\"}",
        "{\"a\": \"\\u12g4\"}", "{\"a\": [1 2]}", "{\"a\": 1", "{\"a\": 1}}", "{\"a\": NaN}",
        "{\"a\": \"unterminated}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        s_metrics(bad[i], m, &tr, &rc);
        if (rc != -ENOENT)
            fail_msg("'%s' was accepted", bad[i]);
    }
    /* Escapes are decoded in keys; \u becomes '?'. */
    unsigned n = s_metrics("{\"a\\\"b\": 1, \"c\\u00e9\": 2, \"d\\/e\": 3}", m, &tr, &rc);
    assert_int_equal(rc, 0);
    assert_int_equal(n, 3);
    assert_true(s_metric(m, n, "a\"b") == 1);
    assert_true(s_metric(m, n, "c?") == 2);
    assert_true(s_metric(m, n, "d/e") == 3);
}

static void t_json_bounds(void **state)
{
    kt_payload_metric_t m[KT_PAYLOAD_METRICS_MAX];
    bool tr;
    int rc;
    /* Deeper than the bound: refused, not a stack overflow. */
    char deep[200] = "";
    for (int i = 0; i < 40; i++)
        strcat(deep, "[");
    strcat(deep, "1");
    for (int i = 0; i < 40; i++)
        strcat(deep, "]");
    s_metrics(deep, m, &tr, &rc);
    assert_int_equal(rc, -ENOENT);
    /* 31 levels are fine. */
    char ok[200] = "";
    for (int i = 0; i < 31; i++)
        strcat(ok, "[");
    strcat(ok, "5");
    for (int i = 0; i < 31; i++)
        strcat(ok, "]");
    unsigned n = s_metrics(ok, m, &tr, &rc);
    assert_int_equal(rc, 0);
    assert_int_equal(n, 1);

    /* More leaves than kept: truncated, the first ones kept. */
    size_t cap = 64 + 16 * (KT_PAYLOAD_METRICS_MAX + 10);
    char *many = malloc(cap);
    assert_non_null(many);
    size_t o = (size_t)snprintf(many, cap, "{");
    for (int i = 0; i < KT_PAYLOAD_METRICS_MAX + 10; i++)
        o += (size_t)snprintf(many + o, cap - o, "%s\"k%d\": %d", i ? ", " : "", i, i);
    snprintf(many + o, cap - o, "}");
    n = s_metrics(many, m, &tr, &rc);
    free(many);
    assert_int_equal(rc, 0);
    assert_true(tr);
    assert_int_equal(n, KT_PAYLOAD_METRICS_MAX);
    assert_true(s_metric(m, n, "k0") == 0);

    /* A name too long to keep is dropped (and says so); a key seen twice
     * keeps its last value; an overflowing number is no metric. */
    char longkey[200];
    snprintf(longkey, sizeof(longkey), "{\"%0100d\": 1, \"x\": 1, \"x\": 2, \"big\": 1e999}", 0);
    n = s_metrics(longkey, m, &tr, &rc);
    assert_int_equal(rc, 0);
    assert_true(tr);
    assert_int_equal(n, 1);
    assert_true(s_metric(m, n, "x") == 2);
}

/* ---- TAP ---- */

static const char s_runner_out[] =
    "===== START =====\n"
    "TEST: minimal\n"
    "DESCRIPTION: Verify we can load a fully minimal scheduler\n"
    "OUTPUT:\n"
    "ok 1 minimal # \n"
    "=====  END  =====\n"
    "===== START =====\n"
    "TEST: select_cpu_dfl\n"
    "OUTPUT:\n"
    "ok 2 select_cpu_dfl # SKIP \n"
    "=====  END  =====\n"
    "===== START =====\n"
    "TEST: select_cpu_dfl_nodispatch\n"
    "OUTPUT:\n"
    "ERR: select_cpu_dfl_nodispatch.c:50\n"
    "Expected skel->data->saw_local (false) == true (true)\n"
    "not ok 3 select_cpu_dfl_nodispatch # \n"
    "=====  END  =====\n"
    "\n\n=============================\n\nRESULTS:\n\nPASSED:  1\nSKIPPED: 1\nFAILED:  1\n";

static void t_tap_runner(void **state)
{
    kt_payload_tap_t t;
    size_t len = strlen(s_runner_out);
    kt_payload_tap_scan(s_runner_out, len, "minimal", &t);
    assert_int_equal(t.status, KT_PAYLOAD_TAP_PASS);
    assert_string_equal(t.line, "ok 1 minimal # ");
    assert_int_equal(t.pass, 1);
    assert_int_equal(t.skip, 1);
    assert_int_equal(t.fail, 1);
    /* A name that is a prefix of another is judged by its own line only. */
    kt_payload_tap_scan(s_runner_out, len, "select_cpu_dfl", &t);
    assert_int_equal(t.status, KT_PAYLOAD_TAP_SKIP);
    kt_payload_tap_scan(s_runner_out, len, "select_cpu_dfl_nodispatch", &t);
    assert_int_equal(t.status, KT_PAYLOAD_TAP_FAIL);
    assert_string_equal(t.line, "not ok 3 select_cpu_dfl_nodispatch # ");
    kt_payload_tap_scan(s_runner_out, len, "exit", &t);
    assert_int_equal(t.status, KT_PAYLOAD_TAP_NONE);
    /* Every line: one failure fails it. */
    kt_payload_tap_scan(s_runner_out, len, NULL, &t);
    assert_int_equal(t.status, KT_PAYLOAD_TAP_FAIL);
    kt_payload_tap_scan(s_runner_out, len, "", &t);
    assert_int_equal(t.status, KT_PAYLOAD_TAP_FAIL);
}

static void t_tap_standard(void **state)
{
    kt_payload_tap_t t;
    const char *text = "TAP version 13\n1..5\nok 1 - first\nok 2 - second # skip no device\n"
                       "not ok 3 - third # TODO later\n  not ok 1 - a subtest\n"
                       "okay this is not TAP\nok\nnot ok 5 - fifth # SKIP\r\n";
    kt_payload_tap_scan(text, strlen(text), NULL, &t);
    assert_int_equal(t.pass, 3); /* first, third (TODO), bare ok */
    assert_int_equal(t.skip, 2);
    assert_int_equal(t.fail, 0);
    assert_int_equal(t.status, KT_PAYLOAD_TAP_PASS);
    assert_string_equal(t.line, "ok 1 - first");
    kt_payload_tap_scan(text, strlen(text), "second", &t);
    assert_int_equal(t.status, KT_PAYLOAD_TAP_SKIP);
    kt_payload_tap_scan(text, strlen(text), "a subtest", &t);
    assert_int_equal(t.status, KT_PAYLOAD_TAP_NONE);
    /* Only skips: skip. Bail out: a failure, even of a named test. */
    const char *skips = "ok 1 a # SKIP x\nok 2 b # skip\n";
    kt_payload_tap_scan(skips, strlen(skips), NULL, &t);
    assert_int_equal(t.status, KT_PAYLOAD_TAP_SKIP);
    const char *bail = "ok 1 a\nBail out! no kernel support\n";
    kt_payload_tap_scan(bail, strlen(bail), "a", &t);
    assert_int_equal(t.status, KT_PAYLOAD_TAP_FAIL);
    assert_string_equal(t.line, "Bail out! no kernel support");
    kt_payload_tap_scan("", 0, NULL, &t);
    assert_int_equal(t.status, KT_PAYLOAD_TAP_NONE);
    /* Control characters in a kept line are made printable. */
    const char *ctl = "not ok 1 x\033[0m\n";
    kt_payload_tap_scan(ctl, strlen(ctl), NULL, &t);
    assert_string_equal(t.line, "not ok 1 x?[0m");
}

/* ---- checks: parsing and evaluation ---- */

static void t_check_parse(void **state)
{
    kt_payload_check_t c;
    char why[256], text[128];
    assert_int_equal(kt_payload_check_parse("ops>=1000", &c, why, sizeof(why)), 0);
    assert_int_equal(c.kind, KT_PAYLOAD_CHECK_MIN);
    assert_string_equal(c.metric, "ops");
    assert_true(c.lo == 1000);
    kt_payload_check_format(&c, text, sizeof(text));
    assert_string_equal(text, "ops>=1000");
    assert_int_equal(kt_payload_check_parse("lat.p99 <= 4.5", &c, why, sizeof(why)), 0);
    assert_int_equal(c.kind, KT_PAYLOAD_CHECK_MAX);
    assert_string_equal(c.metric, "lat.p99");
    assert_true(c.hi == 4.5);
    assert_int_equal(kt_payload_check_parse("x=1..2.5", &c, why, sizeof(why)), 0);
    assert_int_equal(c.kind, KT_PAYLOAD_CHECK_RANGE);
    assert_true(c.lo == 1 && c.hi == 2.5);
    kt_payload_check_format(&c, text, sizeof(text));
    assert_string_equal(text, "x=1..2.5");
    assert_int_equal(kt_payload_check_parse("x==-3", &c, why, sizeof(why)), 0);
    assert_int_equal(c.kind, KT_PAYLOAD_CHECK_RANGE);
    assert_true(c.lo == -3 && c.hi == -3);
    assert_int_equal(kt_payload_check_parse("exit==3", &c, why, sizeof(why)), 0);
    assert_int_equal(c.kind, KT_PAYLOAD_CHECK_EXIT);
    assert_true(c.lo == 3);
    assert_string_equal(c.metric, "");
    kt_payload_check_format(&c, text, sizeof(text));
    assert_string_equal(text, "exit==3");
    assert_int_equal(kt_payload_check_parse("exit=0", &c, why, sizeof(why)), 0);

    static const char *const bad[] = {"ops", "ops>1", "ops<1", ">=1", "ops>=", "ops>=abc",
                                      "ops>=1x", "x=2..1", "x>=1..2", "exit>=1", "exit==256",
                                      "exit==-1", "exit==1.5", "a b>=1", "x>=nan", "x>=inf"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        why[0] = '\0';
        if (kt_payload_check_parse(bad[i], &c, why, sizeof(why)) != -EINVAL)
            fail_msg("'%s' was accepted", bad[i]);
        assert_non_null(strstr(why, "check '"));
    }
}

static void s_outcome(kt_payload_outcome_t *o, int code, int sig)
{
    memset(o, 0, sizeof(*o));
    o->started = true;
    o->exited = true;
    o->exit_code = sig ? -1 : code;
    o->signal = sig;
    o->n_metrics = 2;
    snprintf(o->metrics[0].name, sizeof(o->metrics[0].name), "ops");
    o->metrics[0].value = 123;
    snprintf(o->metrics[1].name, sizeof(o->metrics[1].name), "lat.p99");
    o->metrics[1].value = 4.5;
}

static void s_add_check(kt_payload_spec_t *s, const char *text)
{
    kt_payload_check_t c;
    char why[256];
    assert_int_equal(kt_payload_check_parse(text, &c, why, sizeof(why)), 0);
    assert_int_equal(kt_payload_check_add(s, &c), 0);
}

static void t_check_evaluate(void **state)
{
    kt_payload_spec_t spec;
    kt_payload_spec_init(&spec);
    snprintf(spec.name, sizeof(spec.name), "bench");
    kt_payload_outcome_t o;
    static kt_check_report_t r;
    char reason[512];
    kt_plan_t plan;
    memset(&plan, 0, sizeof(plan));

    /* Exit 0 with no check: the implicit exit==0 passes. */
    s_outcome(&o, 0, 0);
    memset(&r, 0, sizeof(r));
    assert_int_equal(kt_checks_evaluate_payload(&spec, &o, &r), 0);
    assert_int_equal(r.n_results, 1);
    assert_int_equal(r.results[0].id, KT_CHECK_PAYLOAD_EXIT);
    assert_true(r.results[0].passed);
    assert_string_equal(kt_check_name(r.results[0].id), "payload_exit");

    /* Exit 3: fails, and the reason says so. */
    s_outcome(&o, 3, 0);
    memset(&r, 0, sizeof(r));
    assert_int_equal(kt_checks_evaluate_payload(&spec, &o, &r), 1);
    kt_check_report_reason(&r, &plan, reason, sizeof(reason));
    assert_non_null(strstr(reason, "payload_exit: payload 'bench' exited with status 3, "
                                   "expected 0"));
    /* ... unless exit==3 is what was asked. */
    s_add_check(&spec, "exit==3");
    memset(&r, 0, sizeof(r));
    assert_int_equal(kt_checks_evaluate_payload(&spec, &o, &r), 0);
    assert_int_equal(r.n_results, 1);
    /* A signal never matches an exit status. */
    s_outcome(&o, 0, 11);
    memset(&r, 0, sizeof(r));
    assert_int_equal(kt_checks_evaluate_payload(&spec, &o, &r), 1);
    kt_check_report_reason(&r, &plan, reason, sizeof(reason));
    assert_non_null(strstr(reason, "killed by signal 11"));

    /* Metrics: a bound broken, one held, one absent. */
    kt_payload_spec_init(&spec);
    snprintf(spec.name, sizeof(spec.name), "bench");
    s_add_check(&spec, "ops>=1000");
    s_add_check(&spec, "lat.p99=1..5");
    s_add_check(&spec, "missing<=1");
    s_outcome(&o, 0, 0);
    memset(&r, 0, sizeof(r));
    assert_int_equal(kt_checks_evaluate_payload(&spec, &o, &r), 2);
    kt_check_report_reason(&r, &plan, reason, sizeof(reason));
    assert_non_null(strstr(reason, "payload_metric: ops>=1000: measured 123"));
    assert_non_null(strstr(reason, "no metric 'missing'"));
    assert_null(strstr(reason, "lat.p99"));

    /* Timed out, killed or not started: nothing (judged elsewhere). */
    o.timed_out = true;
    memset(&r, 0, sizeof(r));
    assert_int_equal(kt_checks_evaluate_payload(&spec, &o, &r), 0);
    assert_int_equal(r.n_results, 0);
    o.timed_out = false;
    o.killed = true;
    assert_int_equal(kt_checks_evaluate_payload(&spec, &o, &r), 0);
    assert_int_equal(r.n_results, 0);

    /* TAP: a "not ok" fails; the exit status is not judged unless asked. */
    kt_payload_spec_init(&spec);
    snprintf(spec.name, sizeof(spec.name), "runner");
    spec.judge = KT_PAYLOAD_JUDGE_TAP;
    s_outcome(&o, 1, 0);
    o.tap.status = KT_PAYLOAD_TAP_FAIL;
    o.tap.fail = 1;
    snprintf(o.tap.line, sizeof(o.tap.line), "not ok 3 foo # ");
    memset(&r, 0, sizeof(r));
    assert_int_equal(kt_checks_evaluate_payload(&spec, &o, &r), 1);
    assert_int_equal(r.n_results, 1);
    assert_int_equal(r.results[0].id, KT_CHECK_PAYLOAD_TAP);
    kt_check_report_reason(&r, &plan, reason, sizeof(reason));
    assert_string_equal(reason, "payload_tap: not ok 3 foo # ");
    o.tap.status = KT_PAYLOAD_TAP_PASS;
    memset(&r, 0, sizeof(r));
    assert_int_equal(kt_checks_evaluate_payload(&spec, &o, &r), 0);
    assert_int_equal(r.n_results, 1);
    assert_true(r.results[0].passed);
}

/* ---- arguments and capture ---- */

static void t_args(void **state)
{
    kt_payload_spec_t s;
    kt_payload_spec_init(&s);
    char why[128];
    assert_int_equal(kt_payload_args_split(&s, " -t  'a b' \"c\\\"d\" e\\ f ''", why, sizeof(why)),
                     0);
    assert_int_equal(s.n_args, 5);
    assert_string_equal(kt_payload_arg(&s, 0), "-t");
    assert_string_equal(kt_payload_arg(&s, 1), "a b");
    assert_string_equal(kt_payload_arg(&s, 2), "c\"d");
    assert_string_equal(kt_payload_arg(&s, 3), "e f");
    assert_string_equal(kt_payload_arg(&s, 4), "");
    assert_null(kt_payload_arg(&s, 5));
    assert_int_equal(kt_payload_args_split(&s, "'open", why, sizeof(why)), -EINVAL);
    assert_int_equal(kt_payload_args_split(&s, NULL, why, sizeof(why)), 0);
    assert_int_equal(s.n_args, 0);
    char many[200] = "";
    for (int i = 0; i < KT_PAYLOAD_ARGS_MAX + 1; i++)
        strcat(many, "x ");
    assert_int_equal(kt_payload_args_split(&s, many, why, sizeof(why)), -E2BIG);
    char big[KT_PAYLOAD_ARGS_BYTES + 10];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(kt_payload_args_split(&s, big, why, sizeof(why)), -E2BIG);
}

static void t_capture(void **state)
{
    kt_payload_capture_t c;
    char head[2048], tail[2048];
    assert_int_equal(kt_payload_capture_init(&c, 10), 0); /* clamped to the minimum */
    assert_int_equal(c.cap_head + c.cap_tail, KT_PAYLOAD_OUTPUT_MIN);
    kt_payload_capture_feed(&c, "hello ", 6);
    kt_payload_capture_feed(&c, "world", 5);
    assert_int_equal(kt_payload_capture_head(&c, head, sizeof(head)), 11);
    assert_string_equal(head, "hello world");
    assert_int_equal(kt_payload_capture_tail(&c, tail, sizeof(tail)), 0);
    assert_int_equal(kt_payload_capture_dropped(&c), 0);
    /* 3000 numbered bytes in uneven pieces: head = the first 512, tail = the
     * last 512, dropped = the rest. */
    kt_payload_capture_free(&c);
    assert_int_equal(kt_payload_capture_init(&c, 1024), 0);
    char data[3000];
    for (int i = 0; i < 3000; i++)
        data[i] = (char)('a' + i % 26);
    size_t off = 0, piece = 1;
    while (off < sizeof(data)) {
        size_t n = piece < sizeof(data) - off ? piece : sizeof(data) - off;
        kt_payload_capture_feed(&c, data + off, n);
        off += n;
        piece = piece * 3 % 700 + 1;
    }
    assert_int_equal(c.total, 3000);
    assert_int_equal(kt_payload_capture_head(&c, head, sizeof(head)), 512);
    assert_memory_equal(head, data, 512);
    assert_int_equal(kt_payload_capture_tail(&c, tail, sizeof(tail)), 512);
    assert_memory_equal(tail, data + 3000 - 512, 512);
    assert_int_equal(kt_payload_capture_dropped(&c), 3000 - 1024);
    /* A short buffer gets the newest bytes of the tail. */
    char small[11];
    assert_int_equal(kt_payload_capture_tail(&c, small, sizeof(small)), 10);
    assert_memory_equal(small, data + 2990, 10);
    kt_payload_capture_free(&c);
}

/* ---- the payload in the cell message ---- */

static void s_msg_with_payload(kt_cell_msg_t *m)
{
    kt_cell_msg_init(m);
    snprintf(m->cell_id, sizeof(m->cell_id), "%064d", 7);
    kt_plan_t *p = &m->plan;
    snprintf(p->scenario, sizeof(p->scenario), "bench_only");
    assert_int_equal(kt_topology_parse("tiny-2llc", &p->topology), 0);
    p->duration_ms = 5000;
    kt_thresholds_default(&p->thresholds);
    kt_payload_spec_t *s = &p->payload;
    kt_payload_spec_init(s);
    snprintf(s->name, sizeof(s->name), "bench");
    snprintf(s->sha, sizeof(s->sha), "%064x", 0xabc);
    s->size = 762512;
    static const char *const args[] = {"-t", "a b", ""};
    assert_int_equal(kt_payload_args_set(s, args, 3), 0);
    s->timeout_ms = 5000;
    s->max_output = 4096;
    s->judge = KT_PAYLOAD_JUDGE_TAP;
    snprintf(s->tap_test, sizeof(s->tap_test), "minimal");
    s_add_check(s, "ops>=1000");
    s_add_check(s, "lat.p99=0.5..4");
    s_add_check(s, "exit==3");
}

static void s_encode(const kt_cell_msg_t *m, msgpack_sbuffer *sb)
{
    msgpack_sbuffer_init(sb);
    assert_int_equal(kt_cell_msg_encode(m, sb), 0);
}

static void t_msg_round_trip(void **state)
{
    static kt_cell_msg_t m, back;
    s_msg_with_payload(&m);
    msgpack_sbuffer sb;
    s_encode(&m, &sb);
    char why[256] = "";
    int r = kt_cell_msg_decode(sb.data, sb.size, &back, why, sizeof(why));
    if (r < 0)
        fail_msg("%s", why);
    msgpack_sbuffer_destroy(&sb);
    const kt_payload_spec_t *a = &m.plan.payload, *b = &back.plan.payload;
    assert_string_equal(a->name, b->name);
    assert_string_equal(a->sha, b->sha);
    assert_int_equal(a->size, b->size);
    assert_int_equal(b->n_args, 3);
    for (unsigned i = 0; i < 3; i++)
        assert_string_equal(kt_payload_arg(a, i), kt_payload_arg(b, i));
    assert_int_equal(a->timeout_ms, b->timeout_ms);
    assert_int_equal(a->max_output, b->max_output);
    assert_int_equal(b->judge, KT_PAYLOAD_JUDGE_TAP);
    assert_string_equal(b->tap_test, "minimal");
    assert_int_equal(b->n_checks, 3);
    for (unsigned i = 0; i < 3; i++) {
        assert_int_equal(a->checks[i].kind, b->checks[i].kind);
        assert_string_equal(a->checks[i].metric, b->checks[i].metric);
        assert_true(a->checks[i].lo == b->checks[i].lo && a->checks[i].hi == b->checks[i].hi);
    }
    assert_int_equal(back.plan.n_cgroups, 0);

    /* No payload: no "payload" key at all (older peers see what they
     * always saw), and it decodes as none. */
    memset(&m.plan.payload, 0, sizeof(m.plan.payload));
    s_encode(&m, &sb);
    assert_null(memmem(sb.data, sb.size, "payload", 7));
    memset(&back, 0x5a, sizeof(back));
    assert_int_equal(kt_cell_msg_decode(sb.data, sb.size, &back, why, sizeof(why)), 0);
    assert_false(kt_payload_present(&back.plan.payload));
    assert_int_equal(back.plan.payload.n_checks, 0);
    msgpack_sbuffer_destroy(&sb);
}

/* Re-packs the message with the payload map edited: key replaced by the
 * packer's value (or removed when pack is NULL). */
typedef void (*s_packer_fn)(msgpack_packer *pk);

static void s_pack_obj(msgpack_packer *pk, const msgpack_object *o);

static void s_pack_map_edited(msgpack_packer *pk, const msgpack_object *o, const char *const *path,
                              const char *key, s_packer_fn pack)
{
    uint32_t n = o->via.map.size;
    bool here = !path[0];
    bool found = false;
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object_kv *kv = &o->via.map.ptr[i];
        if (here && kv->key.via.str.size == strlen(key) &&
            memcmp(kv->key.via.str.ptr, key, kv->key.via.str.size) == 0)
            found = true;
    }
    if (here && found && !pack)
        n--;
    if (here && !found && pack)
        n++;
    msgpack_pack_map(pk, n);
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object_kv *kv = &o->via.map.ptr[i];
        bool is_key = kv->key.via.str.size == strlen(here ? key : path[0]) &&
                      memcmp(kv->key.via.str.ptr, here ? key : path[0], kv->key.via.str.size) == 0;
        if (here && is_key) {
            if (pack) {
                s_pack_obj(pk, &kv->key);
                pack(pk);
            }
            continue;
        }
        s_pack_obj(pk, &kv->key);
        if (!here && is_key)
            s_pack_map_edited(pk, &kv->val, path + 1, key, pack);
        else
            s_pack_obj(pk, &kv->val);
    }
    if (here && !found && pack) {
        kt_mp_pack_str(pk, key);
        pack(pk);
    }
}

static void s_pack_obj(msgpack_packer *pk, const msgpack_object *o)
{
    msgpack_pack_object(pk, *o);
}

static int s_decode_edited(const kt_cell_msg_t *m, const char *const *path, const char *key,
                           s_packer_fn pack, char *why, size_t wl)
{
    msgpack_sbuffer sb;
    s_encode(m, &sb);
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    assert_int_equal(kt_mp_unpack_one(sb.data, sb.size, &up), 0);
    msgpack_sbuffer out;
    msgpack_sbuffer_init(&out);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &out, msgpack_sbuffer_write);
    s_pack_map_edited(&pk, &up.data, path, key, pack);
    static kt_cell_msg_t back;
    why[0] = '\0';
    int r = kt_cell_msg_decode(out.data, out.size, &back, why, wl);
    msgpack_unpacked_destroy(&up);
    msgpack_sbuffer_destroy(&sb);
    msgpack_sbuffer_destroy(&out);
    return r;
}

static void s_p_int(msgpack_packer *pk) { msgpack_pack_int(pk, -1); }
static void s_p_str(msgpack_packer *pk) { kt_mp_pack_str(pk, "x"); }
static void s_p_empty(msgpack_packer *pk) { kt_mp_pack_str(pk, ""); }
static void s_p_slash(msgpack_packer *pk) { kt_mp_pack_str(pk, "../etc/x"); }
static void s_p_dotdot(msgpack_packer *pk) { kt_mp_pack_str(pk, ".."); }
static void s_p_badsha(msgpack_packer *pk) { kt_mp_pack_str(pk, "ABC"); }
static void s_p_zero(msgpack_packer *pk) { msgpack_pack_uint32(pk, 0); }
static void s_p_huge(msgpack_packer *pk) { msgpack_pack_uint64(pk, 1ull << 40); }
static void s_p_judge(msgpack_packer *pk) { kt_mp_pack_str(pk, "vibes"); }
static void s_p_small(msgpack_packer *pk) { msgpack_pack_uint32(pk, 10); }
static void s_p_longname(msgpack_packer *pk)
{
    char n[KT_PAYLOAD_NAME_MAX + 1];
    memset(n, 'a', sizeof(n) - 1);
    n[sizeof(n) - 1] = '\0';
    kt_mp_pack_str(pk, n);
}
static void s_p_args_many(msgpack_packer *pk)
{
    msgpack_pack_array(pk, KT_PAYLOAD_ARGS_MAX + 1);
    for (int i = 0; i < KT_PAYLOAD_ARGS_MAX + 1; i++)
        kt_mp_pack_str(pk, "a");
}
static void s_p_args_long(msgpack_packer *pk)
{
    char a[600];
    memset(a, 'a', sizeof(a) - 1);
    a[sizeof(a) - 1] = '\0';
    msgpack_pack_array(pk, 2);
    kt_mp_pack_str(pk, a);
    kt_mp_pack_str(pk, a);
}
static void s_p_args_nul(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 1);
    msgpack_pack_str(pk, 3);
    msgpack_pack_str_body(pk, "a\0b", 3);
}
static void s_p_args_int(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 1);
    msgpack_pack_int(pk, 1);
}
static void s_p_check(msgpack_packer *pk, const char *kind, const char *metric, double lo,
                      double hi)
{
    msgpack_pack_array(pk, 1);
    msgpack_pack_map(pk, 4);
    kt_mp_pack_kv_str(pk, "kind", kind);
    kt_mp_pack_kv_str(pk, "metric", metric);
    kt_mp_pack_kv_double(pk, "lo", lo);
    kt_mp_pack_kv_double(pk, "hi", hi);
}
static void s_p_check_kind(msgpack_packer *pk) { s_p_check(pk, "above", "x", 1, 1); }
static void s_p_check_exit_metric(msgpack_packer *pk) { s_p_check(pk, "exit", "x", 1, 1); }
static void s_p_check_exit_frac(msgpack_packer *pk) { s_p_check(pk, "exit", "", 1.5, 1.5); }
static void s_p_check_exit_range(msgpack_packer *pk) { s_p_check(pk, "exit", "", 300, 300); }
static void s_p_check_nometric(msgpack_packer *pk) { s_p_check(pk, "min", "", 1, 1); }
static void s_p_check_empty_range(msgpack_packer *pk) { s_p_check(pk, "range", "x", 2, 1); }
static void s_p_check_nan(msgpack_packer *pk) { s_p_check(pk, "min", "x", NAN, 1); }
static void s_p_checks_many(msgpack_packer *pk)
{
    msgpack_pack_array(pk, KT_PAYLOAD_CHECKS_MAX + 1);
    for (int i = 0; i < KT_PAYLOAD_CHECKS_MAX + 1; i++) {
        msgpack_pack_map(pk, 4);
        kt_mp_pack_kv_str(pk, "kind", "min");
        kt_mp_pack_kv_str(pk, "metric", "x");
        kt_mp_pack_kv_double(pk, "lo", 1);
        kt_mp_pack_kv_double(pk, "hi", 1);
    }
}

static void t_msg_strict(void **state)
{
    static kt_cell_msg_t m;
    s_msg_with_payload(&m);
    static const char *const plan_path[] = {"plan", NULL};
    static const char *const payload_path[] = {"plan", "payload", NULL};
    static const struct {
        const char *key;
        s_packer_fn pack;
        const char *want;
    } cases[] = {
        {"name", NULL, "'name': missing"},
        {"name", s_p_int, "'name': not a string"},
        {"name", s_p_empty, "not a file name"},
        {"name", s_p_slash, "not a file name"},
        {"name", s_p_dotdot, "not a file name"},
        {"name", s_p_longname, "'name': longer than"},
        {"sha", NULL, "'sha': missing"},
        {"sha", s_p_badsha, "plan.payload.sha"},
        {"size", NULL, "plan.payload.size"},
        {"size", s_p_huge, "plan.payload.size"},
        {"size", s_p_str, "plan.payload.size"},
        {"args", NULL, "plan.payload.args"},
        {"args", s_p_str, "plan.payload.args"},
        {"args", s_p_args_many, "plan.payload.args"},
        {"args", s_p_args_long, "over 1024 bytes"},
        {"args", s_p_args_nul, "args[0]"},
        {"args", s_p_args_int, "args[0]"},
        {"timeout_ms", NULL, "'timeout_ms': missing"},
        {"timeout_ms", s_p_zero, "timeout_ms: must be > 0"},
        {"timeout_ms", s_p_huge, "'timeout_ms': "},
        {"max_output", s_p_small, "max_output"},
        {"max_output", s_p_huge, "max_output"},
        {"judge", s_p_judge, "neither 'exit' nor 'tap'"},
        {"judge", NULL, "'judge': missing"},
        {"tap_test", NULL, "'tap_test': missing"},
        {"checks", NULL, "plan.payload.checks"},
        {"checks", s_p_checks_many, "plan.payload.checks"},
        {"checks", s_p_check_kind, "unknown 'above'"},
        {"checks", s_p_check_exit_metric, "must be empty for an exit check"},
        {"checks", s_p_check_exit_frac, "not an integer 0..255"},
        {"checks", s_p_check_exit_range, "not an integer 0..255"},
        {"checks", s_p_check_nometric, "metric: missing"},
        {"checks", s_p_check_empty_range, "is empty"},
        {"checks", s_p_check_nan, "'lo'"},
    };
    char why[256];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int r = s_decode_edited(&m, payload_path, cases[i].key, cases[i].pack, why, sizeof(why));
        if (r != -EBADMSG || !strstr(why, cases[i].want))
            fail_msg("case %zu (%s): r=%d why='%s', wanted '%s'", i, cases[i].key, r, why,
                     cases[i].want);
    }
    /* "payload" itself of the wrong type. */
    int r = s_decode_edited(&m, plan_path, "payload", s_p_str, why, sizeof(why));
    assert_int_equal(r, -EBADMSG);
    assert_non_null(strstr(why, "'plan.payload': not a map"));
    /* Unedited it decodes (the cases above fail for their own reason). */
    r = s_decode_edited(&m, payload_path, "tap_test", s_p_str, why, sizeof(why));
    assert_int_equal(r, 0);
}

/* ---- the guest's payload process, with real children ---- */

static kt_guest_payload_t *s_run_sh(kt_payload_spec_t *spec, const char *script,
                                    uint32_t timeout_ms)
{
    kt_payload_spec_init(spec);
    snprintf(spec->name, sizeof(spec->name), "sh");
    const char *argv[] = {"-c", script};
    assert_int_equal(kt_payload_args_set(spec, argv, 2), 0);
    spec->max_output = 4096;
    spec->timeout_ms = timeout_ms;
    kt_guest_payload_t *p = NULL;
    char why[256];
    int r = kt_guest_payload_start(spec, "/bin", &p, why, sizeof(why));
    if (r < 0)
        fail_msg("start: %s", why);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        if (kt_guest_payload_poll(p, 20) == 1)
            break;
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        double ms = (double)(t.tv_sec - t0.tv_sec) * 1000 + (double)(t.tv_nsec - t0.tv_nsec) / 1e6;
        if (ms > timeout_ms) {
            kt_guest_payload_kill(p, true);
            break;
        }
    }
    kt_guest_payload_finish(p);
    return p;
}

static void t_guest_exit_and_metrics(void **state)
{
    kt_payload_spec_t spec;
    kt_guest_payload_t *p = s_run_sh(&spec,
                                     "echo starting; echo oops >&2; "
                                     "printf '{\"ops\": 123, \"lat\": {\"p99\": 4.5}}\\n'; exit 3",
                                     10000);
    const kt_payload_outcome_t *o = kt_guest_payload_outcome(p);
    assert_true(o->started && o->exited);
    assert_false(o->timed_out);
    assert_int_equal(o->exit_code, 3);
    assert_int_equal(o->signal, 0);
    assert_false(o->killed);
    assert_true(o->wall_ms >= 0 && o->wall_ms < 10000);
    /* stderr is not in the JSON reader's way. */
    assert_true(o->json);
    assert_int_equal(o->n_metrics, 2);
    assert_non_null(kt_payload_metric_find(o, "lat.p99"));
    assert_true(kt_payload_metric_find(o, "ops")->value == 123);
    assert_non_null(strstr(kt_guest_payload_output_head(p), "starting\n"));
    assert_non_null(strstr(kt_guest_payload_output_head(p), "oops\n"));
    assert_int_equal(o->output_bytes, strlen("starting\noops\n{\"ops\": 123, \"lat\": "
                                             "{\"p99\": 4.5}}\n"));
    char how[128];
    kt_guest_payload_describe(o, spec.timeout_ms, how, sizeof(how));
    assert_string_equal(how, "exited with status 3");
    kt_guest_payload_destroy(&p);
    assert_null(p);
}

static void t_guest_signal_and_tap(void **state)
{
    kt_payload_spec_t spec;
    kt_guest_payload_t *p = s_run_sh(&spec, "echo 'ok 1 a'; echo 'not ok 2 b'; kill -SEGV $$",
                                     10000);
    const kt_payload_outcome_t *o = kt_guest_payload_outcome(p);
    assert_true(o->exited);
    assert_int_equal(o->signal, 11);
    assert_int_equal(o->exit_code, -1);
    assert_int_equal(o->tap.status, KT_PAYLOAD_TAP_FAIL);
    assert_int_equal(o->tap.pass, 1);
    assert_int_equal(o->tap.fail, 1);
    assert_false(o->json);
    kt_guest_payload_destroy(&p);
}

static void t_guest_timeout_kills_group(void **state)
{
    kt_payload_spec_t spec;
    /* A child of the payload holds the pipe too: killing the group ends
     * both, and finish does not wait on the pipe forever. */
    char marker[64];
    snprintf(marker, sizeof(marker), "/tmp/kt-payload-test-%d", (int)getpid());
    char script[256];
    snprintf(script, sizeof(script), "sleep 30 & echo started; sleep 30; touch %s", marker);
    kt_guest_payload_t *p = s_run_sh(&spec, script, 300);
    const kt_payload_outcome_t *o = kt_guest_payload_outcome(p);
    assert_true(o->timed_out);
    assert_true(o->killed);
    assert_true(o->exited);
    assert_int_equal(o->signal, SIGKILL);
    assert_non_null(strstr(kt_guest_payload_output_head(p), "started"));
    assert_int_equal(access(marker, F_OK), -1);
    char how[128];
    kt_guest_payload_describe(o, spec.timeout_ms, how, sizeof(how));
    assert_string_equal(how, "timed out after 300 ms: killed");
    kt_guest_payload_destroy(&p);
}

static void t_guest_bounded_output(void **state)
{
    kt_payload_spec_t spec;
    /* 200000 bytes through a 4 KiB capture: head and tail kept, the
     * middle counted, control characters made printable. */
    kt_guest_payload_t *p = s_run_sh(&spec,
                                     "printf 'HEAD\\001'; i=0; while [ $i -lt 2000 ]; do "
                                     "printf '%099d\\n' $i; i=$((i+1)); done; printf 'TAIL'",
                                     20000);
    const kt_payload_outcome_t *o = kt_guest_payload_outcome(p);
    assert_int_equal(o->exit_code, 0);
    assert_int_equal(o->output_bytes, 5 + 2000 * 100 + 4);
    const char *head = kt_guest_payload_output_head(p);
    const char *tail = kt_guest_payload_output_tail(p);
    assert_int_equal(strncmp(head, "HEAD?", 5), 0);
    assert_int_equal(strlen(head), 2048);
    assert_int_equal(strlen(tail), 2048);
    assert_string_equal(tail + strlen(tail) - 4, "TAIL");
    assert_int_equal(kt_guest_payload_output_dropped(p), o->output_bytes - 4096);
    kt_guest_payload_destroy(&p);
}

static void t_guest_stdout_is_a_terminal(void **state)
{
    /* Line-buffered like on a terminal: a forked child does not write its
     * parent's pending output again. */
    kt_payload_spec_t spec;
    kt_guest_payload_t *p = s_run_sh(&spec, "if [ -t 1 ]; then echo tty; else echo pipe; fi; "
                                            "[ -t 2 ] || echo 'stderr is no tty' >&2",
                                     10000);
    assert_string_equal(kt_guest_payload_output_head(p), "tty\nstderr is no tty\n");
    kt_guest_payload_destroy(&p);
}

static void t_guest_missing_binary(void **state)
{
    kt_payload_spec_t spec;
    kt_payload_spec_init(&spec);
    snprintf(spec.name, sizeof(spec.name), "no-such-payload");
    kt_guest_payload_t *p = NULL;
    char why[256];
    assert_int_equal(kt_guest_payload_start(&spec, "/nonexistent", &p, why, sizeof(why)), -ENOENT);
    assert_null(p);
    assert_non_null(strstr(why, "'/nonexistent/no-such-payload' is missing"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_json_nested),
        cmocka_unit_test(t_json_last_object),
        cmocka_unit_test(t_json_invalid),
        cmocka_unit_test(t_json_bounds),
        cmocka_unit_test(t_tap_runner),
        cmocka_unit_test(t_tap_standard),
        cmocka_unit_test(t_check_parse),
        cmocka_unit_test(t_check_evaluate),
        cmocka_unit_test(t_args),
        cmocka_unit_test(t_capture),
        cmocka_unit_test(t_msg_round_trip),
        cmocka_unit_test(t_msg_strict),
        cmocka_unit_test(t_guest_exit_and_metrics),
        cmocka_unit_test(t_guest_signal_and_tap),
        cmocka_unit_test(t_guest_timeout_kills_group),
        cmocka_unit_test(t_guest_bounded_output),
        cmocka_unit_test(t_guest_stdout_is_a_terminal),
        cmocka_unit_test(t_guest_missing_binary),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
