/* Unit tests of the KVM check: accelerator resolution, the device probe on
 * this host (without assuming KVM works here), the host facts, and the
 * canary's verdicts against a fake QEMU (this executable re-executed through
 * $KTSTR_QEMU, see kt_fake_qemu.h): a guest that says hello, QEMU aborting
 * with its MSR error, QEMU stopping the guest with a KVM internal error, a
 * guest that reaches init but never says hello, and the bound. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "kt_fake_qemu.h"
#include "kt_kvm.h"

static char s_dir[64];
static char s_self[4096];
static char s_kernel[128];

static void test_accel_resolve(void **state)
{
    kt_kvm_status_t yes = {.present = true, .openable = true, .api_version = 12, .usable = true};
    kt_kvm_status_t no = {.present = true, .openable = true, .api_version = 12, .usable = false};
    const struct {
        enum kt_accel req;
        const kt_kvm_status_t *st;
        int r;
        enum kt_accel want;
    } cases[] = {
        {KT_ACCEL_AUTO, &yes, 0, KT_ACCEL_KVM}, {KT_ACCEL_AUTO, &no, 0, KT_ACCEL_TCG},
        {KT_ACCEL_AUTO, NULL, 0, KT_ACCEL_TCG}, {KT_ACCEL_KVM, &yes, 0, KT_ACCEL_KVM},
        {KT_ACCEL_KVM, &no, -ENODEV, 0},        {KT_ACCEL_KVM, NULL, -ENODEV, 0},
        {KT_ACCEL_TCG, &yes, 0, KT_ACCEL_TCG},  {KT_ACCEL_TCG, &no, 0, KT_ACCEL_TCG},
        {(enum kt_accel)9, &yes, -EINVAL, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        enum kt_accel got = (enum kt_accel)77;
        int r = kt_accel_resolve(cases[i].req, cases[i].st, &got);
        assert_int_equal(r, cases[i].r);
        if (r == 0)
            assert_int_equal(got, cases[i].want);
        else
            assert_int_equal(got, 77); /* untouched on failure */
    }
    assert_int_equal(kt_accel_resolve(KT_ACCEL_AUTO, &yes, NULL), -EINVAL);
}

static void test_probe_device(void **state)
{
    kt_kvm_status_t st;
    memset(&st, 0xa5, sizeof(st));
    kt_kvm_probe_device(&st);
    struct stat sb;
    bool exists = stat("/dev/kvm", &sb) == 0;
    assert_int_equal(st.present, exists && S_ISCHR(sb.st_mode));
    assert_false(st.usable); /* only a canary boot may say so */
    assert_int_equal(st.canary_ms, 0);
    assert_true(strlen(st.reason) > 0 && strlen(st.reason) < sizeof(st.reason));
    if (!st.present) {
        assert_false(st.openable);
        assert_int_equal(st.api_version, -1);
        assert_non_null(strstr(st.reason, "/dev/kvm"));
    } else if (st.openable) {
        /* KVM's API version has been 12 since 2.6.22. */
        assert_int_equal(st.api_version, 12);
        assert_string_equal(st.reason, "device ok, no canary boot yet");
    } else {
        assert_non_null(strstr(st.reason, "cannot open /dev/kvm"));
    }
    print_message("# /dev/kvm: present=%d openable=%d api=%d (%s)\n", st.present, st.openable,
                  st.api_version, st.reason);
}

static void test_host_info(void **state)
{
    kt_host_info_t h;
    assert_int_equal(kt_host_info_read(&h), 0);
    assert_int_equal(h.cpus, (unsigned)sysconf(_SC_NPROCESSORS_ONLN));
    uint64_t phys = (uint64_t)sysconf(_SC_PHYS_PAGES) * (uint64_t)sysconf(_SC_PAGESIZE) >> 20;
    assert_true(h.memory_mib > 0);
    assert_true(h.memory_mib <= phys + 1 && h.memory_mib + 1 >= phys);
    if (access("/sys/devices/system/cpu/cpu0/cache/index0/level", R_OK) == 0) {
        assert_true(h.llcs >= 1);
        assert_true(h.llcs <= h.cpus);
    }
    print_message("# host: cpus=%u llcs=%u memory=%llu MiB\n", h.cpus, h.llcs,
                  (unsigned long long)h.memory_mib);
}

static void test_check_needs_inputs(void **state)
{
    kt_kvm_status_t st;
    int r = kt_kvm_check(NULL, NULL, NULL, &st);
    assert_false(st.usable);
    if (st.present && st.openable && st.api_version == 12) {
        assert_int_equal(r, -EINVAL);
        assert_non_null(strstr(st.reason, "no kernel"));
    } else {
        assert_int_equal(r, 0); /* the device said no before any boot */
    }
    kt_canary_t c;
    assert_int_equal(kt_canary_boot(KT_ACCEL_AUTO, s_kernel, s_kernel, NULL, 1000, &c), -EINVAL);
    assert_false(c.ok);
}

static void s_canary(const char *mode, uint32_t bound, kt_canary_t *c)
{
    setenv("KT_FAKE_MODE", mode, 1);
    setenv("KTSTR_QEMU", s_self, 1);
    assert_int_equal(kt_canary_boot(KT_ACCEL_KVM, s_kernel, s_kernel, s_dir, bound, c), 0);
    unsetenv("KTSTR_QEMU");
    int st;
    assert_int_equal(waitpid(-1, &st, WNOHANG), -1); /* no zombie left */
}

static void test_canary_verdicts(void **state)
{
    kt_canary_t c;
    s_canary("ok", 5000, &c);
    assert_true(c.ok);
    assert_true(c.hello);
    assert_string_equal(c.reason, "ok");
    assert_true(c.boot_ms < 5000);
    assert_true(c.total_ms >= c.boot_ms);
    /* The guest was told to shut down, not sent a cell. */
    char p[128];
    snprintf(p, sizeof(p), "%s/received.shutdown", s_dir);
    assert_int_equal(access(p, R_OK), 0);

    s_canary("abort", 5000, &c);
    assert_false(c.ok);
    assert_non_null(strstr(c.reason, "canary boot under kvm failed"));
    assert_non_null(strstr(c.reason, "failed to set MSR 0x10a to 0x69"));
    assert_true(c.total_ms < 3000);

    s_canary("internal", 5000, &c);
    assert_false(c.ok);
    assert_non_null(strstr(c.reason, "KVM internal error. Suberror: 1"));
    assert_true(c.total_ms < 3000);

    /* Reached ktstr-init (KTSTR_INIT_READY on the console) but no hello:
     * the accelerator works, the channel does not; the bound ends it. */
    s_canary("silent", 600, &c);
    assert_true(c.ok);
    assert_false(c.hello);
    assert_non_null(strstr(c.reason, "never said hello"));
    assert_true(c.total_ms >= 600);
}

/* The whole check with a fake QEMU in place of the real one; only where the
 * device itself passes (the canary is not run otherwise). */
static void test_check_with_canary(void **state)
{
    kt_kvm_status_t st;
    kt_kvm_probe_device(&st);
    if (!(st.present && st.openable && st.api_version == 12)) {
        print_message("# /dev/kvm unusable at device level here: %s\n", st.reason);
        skip();
    }
    setenv("KTSTR_QEMU", s_self, 1);
    setenv("KT_FAKE_MODE", "abort", 1);
    assert_int_equal(kt_kvm_check(s_kernel, s_kernel, s_dir, &st), 0);
    assert_false(st.usable);
    assert_non_null(strstr(st.reason, "failed to set MSR"));
    enum kt_accel a;
    assert_int_equal(kt_accel_resolve(KT_ACCEL_KVM, &st, &a), -ENODEV);
    assert_int_equal(kt_accel_resolve(KT_ACCEL_AUTO, &st, &a), 0);
    assert_int_equal(a, KT_ACCEL_TCG);

    setenv("KT_FAKE_MODE", "ok", 1);
    assert_int_equal(kt_kvm_check(s_kernel, s_kernel, NULL, &st), 0);
    unsetenv("KTSTR_QEMU");
    assert_true(st.usable);
    assert_string_equal(st.reason, "ok");
    assert_int_equal(kt_accel_resolve(KT_ACCEL_AUTO, &st, &a), 0);
    assert_int_equal(a, KT_ACCEL_KVM);
}

static int s_setup(void **state)
{
    snprintf(s_dir, sizeof(s_dir), "/tmp/kt-test-kvm-XXXXXX");
    if (!mkdtemp(s_dir))
        return -1;
    ssize_t n = readlink("/proc/self/exe", s_self, sizeof(s_self) - 1);
    if (n <= 0)
        return -1;
    s_self[n] = '\0';
    snprintf(s_kernel, sizeof(s_kernel), "%s/bzImage", s_dir);
    FILE *f = fopen(s_kernel, "we");
    if (!f)
        return -1;
    fputs("not a kernel", f);
    fclose(f);
    return 0;
}

static int s_teardown(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", s_dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "-nodefaults") == 0)
        return fake_qemu_main(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accel_resolve),   cmocka_unit_test(test_probe_device),
        cmocka_unit_test(test_host_info),       cmocka_unit_test(test_check_needs_inputs),
        cmocka_unit_test(test_canary_verdicts), cmocka_unit_test(test_check_with_canary),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
