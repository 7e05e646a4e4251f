/* Executors: the null and sleep executors' results and sidecars, a cancelled
 * sleep, and the VM executor up to (never including) a boot: the cellspec
 * validation and its translation into a kt_runcell request, and a bad cell
 * ending in an error sidecar without QEMU. */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "kt_executor.h"
#include "kt_executor_vm.h"
#include "kt_hash.h"
#include "kt_log.h"

static uint64_t s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void s_spec(kt_cellspec_t *sp)
{
    memset(sp, 0, sizeof(*sp));
    kt_hash_sha256_buf("a cell", 6, sp->cell_id);
    snprintf(sp->cell_name, sizeof(sp->cell_name), "gauntlet/steady/tiny-2llc/default/6.12");
    snprintf(sp->run_id, sizeof(sp->run_id), "run-e");
    snprintf(sp->kernel_label, sizeof(sp->kernel_label), "6.12");
    snprintf(sp->kernel_version, sizeof(sp->kernel_version), "6.12.117");
    snprintf(sp->kernel_commit, sizeof(sp->kernel_commit), "3f2a9c1-dirty");
    kt_hash_sha256_buf("kernel", 6, sp->kernel_sha);
    sp->kernel_size = 100;
    snprintf(sp->sched_name, sizeof(sp->sched_name), "scx_qmap");
    kt_hash_sha256_buf("sched", 5, sp->sched_sha);
    sp->sched_size = 10;
    snprintf(sp->sched_args, sizeof(sp->sched_args), "-s 5000");
    snprintf(sp->profile, sizeof(sp->profile), "slice-short");
    snprintf(sp->topology_preset, sizeof(sp->topology_preset), "tiny-2llc");
    const kt_topology_preset_t *p = kt_topology_preset_find("tiny-2llc");
    assert_non_null(p);
    char why[256];
    assert_int_equal(kt_scenario_resolve(kt_scenario_builtin_find("steady"), &p->topo, 2000,
                                         &sp->plan, why, sizeof(why)),
                     0);
    sp->memory_mib = 512;
}

static json_t *s_doc(const kt_exec_result_t *r)
{
    json_error_t err;
    assert_non_null(r->sidecar);
    assert_int_equal(strlen(r->sidecar), r->sidecar_len);
    json_t *doc = json_loadb(r->sidecar, r->sidecar_len, 0, &err);
    assert_non_null(doc);
    return doc;
}

static void test_null(void **state)
{
    kt_cellspec_t sp;
    s_spec(&sp);
    kt_executor_t e = kt_executor_null();
    assert_string_equal(e.name, "null");
    kt_exec_result_t r;
    atomic_bool cancel = false;
    assert_int_equal(e.run(e.userdata, &sp, 2, "/k", "/s", &cancel, &r), 0);
    assert_string_equal(r.verdict, "pass");
    assert_non_null(strstr(r.reason, "no VM"));
    assert_null(r.console);
    json_t *doc = s_doc(&r);
    assert_string_equal(json_string_value(json_object_get(doc, "executor")), "null");
    assert_string_equal(json_string_value(json_object_get(doc, "cell_id")), sp.cell_id);
    assert_int_equal(json_integer_value(json_object_get(doc, "attempt")), 2);
    assert_string_equal(json_string_value(json_object_get(doc, "test_name")), sp.cell_name);
    assert_string_equal(json_string_value(json_object_get(doc, "kernel_commit")), "3f2a9c1-dirty");
    assert_string_equal(json_string_value(json_object_get(doc, "topology")), "1n2l2c1t");
    assert_string_equal(json_string_value(json_object_get(doc, "flags")), "slice-short");
    assert_string_equal(json_string_value(json_object_get(doc, "verdict")), "pass");
    assert_true(json_is_true(json_object_get(doc, "passed")));
    json_decref(doc);
    kt_exec_result_clear(&r);
    assert_null(r.sidecar);
}

static void test_sleep(void **state)
{
    kt_cellspec_t sp;
    s_spec(&sp);
    sp.kernel_commit[0] = '\0';
    kt_executor_t e = kt_executor_sleep(150);
    assert_string_equal(e.name, "sleep");
    kt_exec_result_t r;
    atomic_bool cancel = false;
    uint64_t t0 = s_now_ms();
    clock_t c0 = clock();
    assert_int_equal(e.run(e.userdata, &sp, 1, "/k", NULL, &cancel, &r), 0);
    uint64_t took = s_now_ms() - t0;
    double cpu_ms = (double)(clock() - c0) * 1000.0 / CLOCKS_PER_SEC;
    assert_true(took >= 150);
    assert_true(took < 1000);
    /* Holding the slot costs no CPU to speak of. */
    assert_true(cpu_ms < 20.0);
    assert_string_equal(r.verdict, "pass");
    json_t *doc = s_doc(&r);
    assert_string_equal(json_string_value(json_object_get(doc, "executor")), "sleep");
    assert_int_equal(json_integer_value(json_object_get(doc, "sleep_ms")), 150);
    assert_true(json_is_null(json_object_get(doc, "kernel_commit")));
    assert_true(json_integer_value(json_object_get(json_object_get(doc, "timings"), "run_ms")) >=
                150);
    json_decref(doc);
    kt_exec_result_clear(&r);
}

struct s_canceller {
    atomic_bool *flag;
    unsigned after_ms;
};

static void *s_cancel_later(void *arg)
{
    struct s_canceller *c = arg;
    usleep(c->after_ms * 1000);
    atomic_store(c->flag, true);
    return NULL;
}

static void test_sleep_cancelled(void **state)
{
    kt_cellspec_t sp;
    s_spec(&sp);
    kt_executor_t e = kt_executor_sleep(10000);
    kt_exec_result_t r;
    atomic_bool cancel = false;
    struct s_canceller c = {&cancel, 100};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, s_cancel_later, &c), 0);
    uint64_t t0 = s_now_ms();
    assert_int_equal(e.run(e.userdata, &sp, 1, "/k", NULL, &cancel, &r), 0);
    pthread_join(t, NULL);
    assert_true(s_now_ms() - t0 < 2000);
    assert_string_equal(r.verdict, "error");
    assert_non_null(strstr(r.reason, "cancelled"));
    kt_exec_result_clear(&r);
}

static void test_vm_request(void **state)
{
    kt_cellspec_t sp;
    s_spec(&sp);
    kt_vm_executor_config_t cfg = {.accel = KT_ACCEL_TCG, .work_dir = "/var/tmp/w",
                                   .image_dir = "/dev/shm/x"};
    kt_cell_request_t req;
    char out[PATH_MAX], why[512];
    assert_int_equal(kt_executor_vm_request(&cfg, &sp, 3, "/cache/k", "/cache/s", &req, out,
                                            sizeof(out), why, sizeof(why)),
                     0);
    char want[PATH_MAX];
    snprintf(want, sizeof(want), "/var/tmp/w/%s-3", sp.cell_id);
    assert_string_equal(out, want);
    assert_string_equal(req.out_dir, want);
    assert_string_equal(req.kernel, "/cache/k");
    assert_string_equal(req.scheduler, "/cache/s");
    assert_string_equal(req.sched_args, "-s 5000");
    assert_string_equal(req.profile, "slice-short");
    assert_string_equal(req.kernel_label, "6.12");
    assert_string_equal(req.kernel_commit, "3f2a9c1-dirty");
    assert_string_equal(req.cell_id, sp.cell_id);
    assert_string_equal(req.cell_name, sp.cell_name);
    assert_string_equal(req.run_id, "run-e");
    assert_string_equal(req.image_dir, "/dev/shm/x");
    assert_ptr_equal(req.plan, &sp.plan);
    assert_int_equal(req.memory_mib, 512);
    assert_int_equal(req.attempt, 3);
    assert_int_equal(req.accel, KT_ACCEL_TCG);
    assert_true(kt_topology_equal(&req.topology, &sp.plan.topology));

    /* EEVDF: no scheduler, no commit. */
    kt_cellspec_t e = sp;
    e.sched_sha[0] = '\0';
    e.sched_size = 0;
    e.sched_args[0] = '\0';
    e.kernel_commit[0] = '\0';
    assert_int_equal(kt_executor_vm_request(&cfg, &e, 1, "/k", NULL, &req, out, sizeof(out), why,
                                            sizeof(why)),
                     0);
    assert_null(req.scheduler);
    assert_null(req.sched_args);
    assert_null(req.kernel_commit);

#define S_BAD(mutate, sched, needle)                                                               \
    do {                                                                                           \
        kt_cellspec_t b = sp;                                                                      \
        mutate;                                                                                    \
        why[0] = '\0';                                                                             \
        assert_int_equal(kt_executor_vm_request(&cfg, &b, 1, "/k", sched, &req, out, sizeof(out), \
                                                why, sizeof(why)),                                 \
                         -EINVAL);                                                                 \
        if (!strstr(why, needle))                                                                  \
            fail_msg("'%s' does not mention '%s'", why, needle);                                   \
    } while (0)
    S_BAD(b.cell_id[3] = 'X', "/s", "cell_id");
    S_BAD(b.cell_name[0] = '\0', "/s", "cell_name");
    S_BAD((void)0, NULL, "scheduler");
    S_BAD((b.sched_sha[0] = '\0', b.sched_size = 0), "/s", "EEVDF");
    S_BAD(snprintf(b.topology_preset, sizeof(b.topology_preset), "tiny-1llc"), "/s",
          "topology_preset");
    S_BAD(snprintf(b.topology_preset, sizeof(b.topology_preset), "no-such"), "/s",
          "not a preset");
    S_BAD(b.plan.topology.llcs = 0, "/s", "plan.topology");
    S_BAD(b.plan.duration_ms = 0, "/s", "duration");
    S_BAD(b.plan.n_cgroups = 0, "/s", "cgroups");
    S_BAD(b.memory_mib = 64, "/s", "memory_mib");
    S_BAD(b.memory_mib = 1ull << 40, "/s", "memory_mib");
    S_BAD(snprintf(b.sched_args, sizeof(b.sched_args), "-s\n5"), "/s", "control");
#undef S_BAD
    assert_int_equal(kt_executor_vm_request(&cfg, &sp, 0, "/k", "/s", &req, out, sizeof(out), why,
                                            sizeof(why)),
                     -EINVAL);
    assert_int_equal(kt_executor_vm_request(&cfg, &sp, 1, NULL, "/s", &req, out, sizeof(out), why,
                                            sizeof(why)),
                     -EINVAL);
    cfg.accel = KT_ACCEL_AUTO;
    assert_int_equal(kt_executor_vm_request(&cfg, &sp, 1, "/k", "/s", &req, out, sizeof(out), why,
                                            sizeof(why)),
                     -EINVAL);
    assert_non_null(strstr(why, "accelerator"));
}

/* A bad cell never reaches QEMU: the result is an error with a sidecar
 * that says why. */
static void test_vm_bad_cell_no_boot(void **state)
{
    kt_cellspec_t sp;
    s_spec(&sp);
    snprintf(sp.topology_preset, sizeof(sp.topology_preset), "tiny-1llc");
    /* A QEMU that would fail the test if it ran. */
    setenv("KTSTR_QEMU", "/nonexistent/qemu-must-not-run", 1);
    kt_vm_executor_config_t cfg = {.accel = KT_ACCEL_TCG, .work_dir = "/nonexistent/work"};
    kt_executor_t e = kt_executor_vm(&cfg);
    assert_string_equal(e.name, "vm");
    kt_exec_result_t r;
    atomic_bool cancel = false;
    assert_int_equal(e.run(e.userdata, &sp, 1, "/k", "/s", &cancel, &r), 0);
    assert_string_equal(r.verdict, "error");
    assert_non_null(strstr(r.reason, "bad cell: topology_preset"));
    json_t *doc = s_doc(&r);
    assert_string_equal(json_string_value(json_object_get(doc, "executor")), "vm");
    assert_string_equal(json_string_value(json_object_get(doc, "phase")), "setup");
    assert_string_equal(json_string_value(json_object_get(doc, "verdict")), "error");
    json_decref(doc);
    kt_exec_result_clear(&r);
}

static void test_file_tail(void **state)
{
    char path[] = "/tmp/kt-test-tail-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *text = "first line\nsecond line\nthird\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    char *t;
    size_t n;
    assert_int_equal(kt_executor_file_tail(path, 1000, &t, &n), 0);
    assert_string_equal(t, text);
    assert_int_equal(n, strlen(text));
    free(t);
    /* The cut lands inside "second line": the excerpt starts after it. */
    assert_int_equal(kt_executor_file_tail(path, 14, &t, &n), 0);
    assert_string_equal(t, "third\n");
    assert_int_equal(n, 6);
    free(t);
    unlink(path);
    assert_int_equal(kt_executor_file_tail(path, 10, &t, &n), -ENOENT);
}

int main(void)
{
    kt_log_set_level(KT_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_null),
        cmocka_unit_test(test_sleep),
        cmocka_unit_test(test_sleep_cancelled),
        cmocka_unit_test(test_vm_request),
        cmocka_unit_test(test_vm_bad_cell_no_boot),
        cmocka_unit_test(test_file_tail),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
