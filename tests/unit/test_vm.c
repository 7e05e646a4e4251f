/* Unit tests of the VM runner: the QEMU command line for each shape, machine
 * and accelerator, refused configurations, and the runner's phases against a
 * fake QEMU (this executable re-executed, see kt_fake_qemu.h): a clean run,
 * the canary shutdown, timeouts, a hang, QEMU dying or stopping the guest,
 * bad frames, a handler abort, a QEMU that ignores quit, and no zombies.
 * Each failed boot is also judged by kt_runcell_boot_retryable: booted again
 * only when nothing of the cell ran and the cause may be the emulator. */
#include <errno.h>
#include <fcntl.h>
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
#include "kt_runcell.h"
#include "kt_topology.h"
#include "kt_vm.h"

/* ---- argv helpers ---- */

static char **s_argv(const kt_vm_config_t *cfg, int expect)
{
    char **argv = NULL;
    int r = kt_vm_build_argv(cfg, "/w/chan.sock", "/w/qmp.sock", &argv);
    assert_int_equal(r, expect);
    if (expect < 0)
        assert_null(argv);
    return argv;
}

/* The value after the n-th (0-based) occurrence of flag, or NULL. */
static const char *s_after(char **argv, const char *flag, int n)
{
    for (char **p = argv; *p; p++)
        if (strcmp(*p, flag) == 0 && p[1] && n-- == 0)
            return p[1];
    return NULL;
}

static int s_count(char **argv, const char *flag)
{
    int n = 0;
    for (char **p = argv; *p; p++)
        n += strcmp(*p, flag) == 0;
    return n;
}

static bool s_has(char **argv, const char *value)
{
    for (char **p = argv; *p; p++)
        if (strcmp(*p, value) == 0)
            return true;
    return false;
}

static void s_cfg(kt_vm_config_t *cfg, const char *preset)
{
    kt_vm_config_init(cfg);
    cfg->kernel = "/k/bzImage";
    cfg->initrd = "/k/initrd";
    cfg->workdir = "/w";
    cfg->tcg_tsc_khz = 2000000;
    const kt_topology_preset_t *p = kt_topology_preset_find(preset);
    assert_non_null(p);
    cfg->topology = p->topo;
    cfg->memory_mib = kt_topology_memory_mib(&p->topo, 0);
}

static void test_argv_tiny_2llc(void **state)
{
    kt_vm_config_t cfg;
    s_cfg(&cfg, "tiny-2llc");
    char **argv = s_argv(&cfg, 0);
    assert_string_equal(argv[0], "qemu-system-x86_64");
    assert_string_equal(s_after(argv, "-smp", 0), "4,sockets=2,cores=2,threads=1");
    assert_int_equal(s_count(argv, "-numa"), 0);
    assert_int_equal(s_count(argv, "-object"), 0);
    assert_string_equal(s_after(argv, "-m", 0), "256");
    assert_string_equal(s_after(argv, "-M", 0), "q35");
    assert_string_equal(s_after(argv, "-kernel", 0), "/k/bzImage");
    assert_string_equal(s_after(argv, "-initrd", 0), "/k/initrd");
    for (const char *f = "-nodefaults\0-no-user-config\0-no-reboot\0"; *f; f += strlen(f) + 1)
        assert_true(s_has(argv, f));
    assert_string_equal(s_after(argv, "-display", 0), "none");
    const char *append = s_after(argv, "-append", 0);
    assert_non_null(strstr(append, "console=ttyS0"));
    assert_non_null(strstr(append, "panic=-1"));
    /* The console goes to a file in the workdir, QMP and the channel to the
     * given sockets, the port has its name. */
    assert_true(s_has(argv, "file,id=ktcon,path=/w/console.log"));
    assert_string_equal(s_after(argv, "-serial", 0), "chardev:ktcon");
    assert_true(s_has(argv, "socket,id=ktqmp,path=/w/qmp.sock,server=on,wait=off"));
    assert_string_equal(s_after(argv, "-mon", 0), "chardev=ktqmp,mode=control");
    assert_true(s_has(argv, "socket,id=ktchan,path=/w/chan.sock,server=on,wait=off"));
    assert_true(s_has(argv, "virtserialport,bus=ktvser.0,chardev=ktchan,name=org.ktstr.0"));
    kt_vm_argv_free(&argv);
    assert_null(argv);
}

static void test_argv_smt_2llc(void **state)
{
    kt_vm_config_t cfg;
    s_cfg(&cfg, "smt-2llc");
    char **argv = s_argv(&cfg, 0);
    assert_string_equal(s_after(argv, "-smp", 0), "8,sockets=2,cores=2,threads=2");
    assert_string_equal(s_after(argv, "-m", 0), "512");
    kt_vm_argv_free(&argv);
}

static unsigned long long s_size_of(const char *obj)
{
    const char *p = strstr(obj, "size=");
    assert_non_null(p);
    char *end;
    unsigned long long v = strtoull(p + 5, &end, 10);
    assert_string_equal(end, "M");
    return v;
}

static void test_argv_numa2_4llc(void **state)
{
    kt_vm_config_t cfg;
    s_cfg(&cfg, "numa2-4llc");
    cfg.memory_mib = 1025; /* odd: node 0 takes the remainder */
    char **argv = s_argv(&cfg, 0);
    assert_string_equal(s_after(argv, "-smp", 0), "16,sockets=4,cores=4,threads=1");
    assert_string_equal(s_after(argv, "-m", 0), "1025");
    assert_int_equal(s_count(argv, "-object"), 2);
    const char *m0 = s_after(argv, "-object", 0), *m1 = s_after(argv, "-object", 1);
    assert_non_null(strstr(m0, "memory-backend-ram,id=ktmem0,"));
    assert_non_null(strstr(m1, "memory-backend-ram,id=ktmem1,"));
    assert_int_equal(s_size_of(m0), 513);
    assert_int_equal(s_size_of(m1), 512);
    assert_int_equal(s_size_of(m0) + s_size_of(m1), 1025);
    assert_int_equal(s_count(argv, "-numa"), 2 + 4);
    assert_true(s_has(argv, "node,nodeid=0,memdev=ktmem0"));
    assert_true(s_has(argv, "node,nodeid=1,memdev=ktmem1"));
    /* Two sockets (LLCs) per node, in order. */
    assert_true(s_has(argv, "cpu,node-id=0,socket-id=0"));
    assert_true(s_has(argv, "cpu,node-id=0,socket-id=1"));
    assert_true(s_has(argv, "cpu,node-id=1,socket-id=2"));
    assert_true(s_has(argv, "cpu,node-id=1,socket-id=3"));
    assert_string_equal(s_after(argv, "-M", 0), "q35");
    kt_vm_argv_free(&argv);
}

static void test_argv_numa4_8llc(void **state)
{
    kt_vm_config_t cfg;
    s_cfg(&cfg, "numa4-8llc");
    cfg.memory_mib = 2048;
    char **argv = s_argv(&cfg, 0);
    assert_string_equal(s_after(argv, "-smp", 0), "32,sockets=8,cores=4,threads=1");
    unsigned long long sum = 0;
    for (int i = 0; i < 4; i++)
        sum += s_size_of(s_after(argv, "-object", i));
    assert_int_equal(sum, 2048);
    for (unsigned s = 0; s < 8; s++) {
        char want[64];
        snprintf(want, sizeof(want), "cpu,node-id=%u,socket-id=%u", s / 2, s);
        assert_true(s_has(argv, want));
    }
    kt_vm_argv_free(&argv);
}

static void test_argv_machine(void **state)
{
    kt_vm_config_t cfg;
    s_cfg(&cfg, "tiny-2llc");
    char **argv = s_argv(&cfg, 0);
    assert_true(s_has(argv, "virtio-serial-pci,id=ktvser"));
    assert_false(s_has(argv, "virtio-serial-device,id=ktvser"));
    kt_vm_argv_free(&argv);

    cfg.machine = KT_MACHINE_MICROVM;
    argv = s_argv(&cfg, 0);
    assert_string_equal(s_after(argv, "-M", 0), "microvm");
    assert_true(s_has(argv, "virtio-serial-device,id=ktvser"));
    assert_false(s_has(argv, "virtio-serial-pci,id=ktvser"));
    kt_vm_argv_free(&argv);

    /* microvm has no SRAT: a NUMA shape there is refused, not flattened. */
    s_cfg(&cfg, "numa2-4llc");
    cfg.machine = KT_MACHINE_MICROVM;
    s_argv(&cfg, -EOPNOTSUPP);
}

static void test_argv_accel(void **state)
{
    kt_vm_config_t cfg;
    s_cfg(&cfg, "tiny-1llc");
    cfg.accel = KT_ACCEL_KVM;
    char **argv = s_argv(&cfg, 0);
    assert_string_equal(s_after(argv, "-accel", 0), "kvm");
    assert_string_equal(s_after(argv, "-cpu", 0), "host");
    assert_null(strstr(s_after(argv, "-append", 0), "tsc"));
    kt_vm_argv_free(&argv);

    cfg.accel = KT_ACCEL_TCG;
    argv = s_argv(&cfg, 0);
    assert_string_equal(s_after(argv, "-accel", 0), "tcg,thread=multi");
    assert_string_equal(s_after(argv, "-cpu", 0), "max");
    assert_non_null(strstr(s_after(argv, "-append", 0), " tsc_early_khz=2000000 tsc=reliable"));
    kt_vm_argv_free(&argv);

    cfg.accel = KT_ACCEL_AUTO; /* the caller resolves AUTO first */
    s_argv(&cfg, -EINVAL);
}

static void test_argv_cmdline_and_escapes(void **state)
{
    kt_vm_config_t cfg;
    s_cfg(&cfg, "tiny-1llc");
    cfg.workdir = "/tmp/a,b";
    cfg.cmdline_extra = "ktmode=x sched_ext.foo=1";
    cfg.qemu = "/opt/qemu/bin/qemu-system-x86_64";
    char **argv = NULL;
    assert_int_equal(kt_vm_build_argv(&cfg, "/tmp/a,b/chan.sock", "/tmp/a,b/qmp.sock", &argv), 0);
    assert_string_equal(argv[0], "/opt/qemu/bin/qemu-system-x86_64");
    /* QEMU option values double a comma. */
    assert_true(s_has(argv, "file,id=ktcon,path=/tmp/a,,b/console.log"));
    assert_true(s_has(argv, "socket,id=ktchan,path=/tmp/a,,b/chan.sock,server=on,wait=off"));
    const char *append = s_after(argv, "-append", 0);
    size_t al = strlen(append), el = strlen(cfg.cmdline_extra);
    assert_true(al > el);
    assert_string_equal(append + al - el, cfg.cmdline_extra);
    assert_int_equal(
        strncmp(append, kt_vm_base_cmdline(cfg.machine), strlen(kt_vm_base_cmdline(cfg.machine))),
        0);
    kt_vm_argv_free(&argv);
}

static void test_argv_refused(void **state)
{
    kt_vm_config_t cfg;
    s_cfg(&cfg, "tiny-2llc");
    cfg.topology = (kt_topology_t){0, 1, 1, 1};
    s_argv(&cfg, -EINVAL);
    cfg.topology = (kt_topology_t){2, 3, 1, 1}; /* LLCs not divisible by nodes */
    assert_true(kt_vm_build_argv(&cfg, "c", "q", &(char **){NULL}) < 0);
    cfg.topology = (kt_topology_t){1, 16, 16, 2}; /* 512 CPUs */
    assert_true(kt_vm_build_argv(&cfg, "c", "q", &(char **){NULL}) < 0);
    s_cfg(&cfg, "numa4-8llc");
    cfg.memory_mib = 64; /* 16 MiB per node */
    s_argv(&cfg, -ERANGE);
    s_cfg(&cfg, "tiny-2llc");
    cfg.kernel = NULL;
    s_argv(&cfg, -EINVAL);
    s_cfg(&cfg, "tiny-2llc");
    cfg.machine = (enum kt_machine)7;
    s_argv(&cfg, -EINVAL);
}

static void test_names(void **state)
{
    enum kt_accel a;
    enum kt_machine m;
    assert_int_equal(kt_accel_parse("kvm", &a), 0);
    assert_int_equal(a, KT_ACCEL_KVM);
    assert_int_equal(kt_accel_parse("tcg", &a), 0);
    assert_int_equal(a, KT_ACCEL_TCG);
    assert_int_equal(kt_accel_parse("auto", &a), 0);
    assert_int_equal(a, KT_ACCEL_AUTO);
    assert_int_equal(kt_accel_parse("KVM", &a), -EINVAL);
    assert_int_equal(kt_accel_parse("", &a), -EINVAL);
    assert_string_equal(kt_accel_name(KT_ACCEL_KVM), "kvm");
    assert_int_equal(kt_machine_parse("microvm", &m), 0);
    assert_int_equal(m, KT_MACHINE_MICROVM);
    assert_int_equal(kt_machine_parse("pc", &m), -EINVAL);
    assert_string_equal(kt_vm_phase_name(KT_VM_PHASE_BOOT), "boot");
    assert_string_equal(kt_vm_phase_name(KT_VM_PHASE_COLLECT), "collect");
}

/* ---- file tail ---- */

static char s_dir[64];

static void s_write(const char *path, const char *text)
{
    FILE *f = fopen(path, "we");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_file_tail(void **state)
{
    char path[128], buf[32];
    snprintf(path, sizeof(path), "%s/tail.txt", s_dir);
    s_write(path, "first line that is long\r\nsecond\r\nthird\x01\x7f\r\n");
    assert_int_equal(kt_vm_file_tail(path, buf, sizeof(buf)), 0);
    /* Cut at a line start, \r dropped, control bytes shown as '?'. */
    assert_string_equal(buf, "second\nthird??\n");
    char big[256];
    assert_int_equal(kt_vm_file_tail(path, big, sizeof(big)), 0);
    assert_string_equal(big, "first line that is long\nsecond\nthird??\n");
    assert_int_equal(kt_vm_file_tail("/nonexistent/x", buf, sizeof(buf)), -ENOENT);
    assert_string_equal(buf, "");
}

/* ---- the runner against the fake QEMU ---- */

static char s_self[4096];

typedef struct s_seen {
    char types[16][16];
    unsigned n;
    int abort_on; /* index at which to return -ECANCELED, -1 never */
} s_seen_t;

static int s_on_msg(void *ud, const char *type, const void *body, size_t len)
{
    s_seen_t *s = ud;
    assert_non_null(body);
    assert_true(len > 0);
    if (s->n < 16)
        snprintf(s->types[s->n], sizeof(s->types[0]), "%s", type);
    if ((int)s->n++ == s->abort_on)
        return -ECANCELED;
    return 0;
}

static uint64_t s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static const unsigned char s_cell[] = "\x82\xa1t\xa4"
                                      "cell\xa2id\xa3"
                                      "abc";

static void s_run_cfg(kt_vm_config_t *cfg, s_seen_t *seen, const char *mode)
{
    static char kernel[128];
    snprintf(kernel, sizeof(kernel), "%s/bzImage", s_dir);
    s_write(kernel, "not a kernel");
    kt_vm_config_init(cfg);
    cfg->qemu = s_self;
    cfg->kernel = kernel;
    cfg->initrd = kernel;
    cfg->workdir = s_dir;
    cfg->tcg_tsc_khz = 1000000;
    cfg->topology = (kt_topology_t){1, 1, 2, 1};
    cfg->boot_timeout_ms = 5000;
    cfg->run_timeout_ms = 5000;
    cfg->collect_timeout_ms = 5000;
    cfg->cell_msg = s_cell;
    cfg->cell_msg_len = sizeof(s_cell) - 1;
    cfg->on_message = s_on_msg;
    cfg->userdata = seen;
    memset(seen, 0, sizeof(*seen));
    seen->abort_on = -1;
    setenv("KT_FAKE_MODE", mode, 1);
    for (const char *f = "received.cell\0received.ack\0received.shutdown\0"; *f;
         f += strlen(f) + 1) {
        char p[128];
        snprintf(p, sizeof(p), "%s/%s", s_dir, f);
        unlink(p);
    }
}

static size_t s_slurp(const char *name, unsigned char *buf, size_t len)
{
    char p[128];
    snprintf(p, sizeof(p), "%s/%s", s_dir, name);
    FILE *f = fopen(p, "re");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, len, f);
    fclose(f);
    return n;
}

static void s_assert_no_children(void)
{
    int st;
    assert_int_equal(waitpid(-1, &st, WNOHANG), -1);
    assert_int_equal(errno, ECHILD);
}

static void test_run_ok(void **state)
{
    kt_vm_config_t cfg;
    s_seen_t seen;
    kt_vm_outcome_t out;
    s_run_cfg(&cfg, &seen, "ok");
    assert_int_equal(kt_vm_run(&cfg, &out), 0);
    assert_int_equal(out.reached, KT_VM_PHASE_DONE);
    assert_true(out.got_hello);
    assert_true(out.got_result);
    assert_false(out.timed_out);
    assert_false(out.qemu_exited_early);
    assert_int_equal(out.error, 0);
    assert_string_equal(out.error_text, "");
    assert_true(WIFEXITED(out.qemu_status) && WEXITSTATUS(out.qemu_status) == 0);
    /* Every message reached the handler, in order. */
    assert_int_equal(seen.n, 4);
    assert_string_equal(seen.types[0], "hello");
    assert_string_equal(seen.types[1], "hb");
    assert_string_equal(seen.types[2], "event");
    assert_string_equal(seen.types[3], "result");
    /* The guest got the cell byte for byte, then an ack. */
    unsigned char got[256];
    size_t n = s_slurp("received.cell", got, sizeof(got));
    assert_int_equal(n, sizeof(s_cell) - 1);
    assert_memory_equal(got, s_cell, n);
    n = s_slurp("received.ack", got, sizeof(got));
    assert_int_equal(n, 7);
    assert_memory_equal(got,
                        "\x81\xa1t\xa3"
                        "ack",
                        7);
    assert_non_null(strstr(out.console_tail, "fake-qemu: booting\nline two\n"));
    assert_non_null(strstr(out.console_path, "/console.log"));
    assert_true(out.boot_ms < 5000);
    /* The sockets are gone afterwards. */
    char p[128];
    snprintf(p, sizeof(p), "%s/chan.sock", s_dir);
    assert_int_equal(access(p, F_OK), -1);
    assert_false(kt_runcell_boot_retryable(&out, NULL, 0));
    s_assert_no_children();
}

static void test_run_canary_shutdown(void **state)
{
    kt_vm_config_t cfg;
    s_seen_t seen;
    kt_vm_outcome_t out;
    s_run_cfg(&cfg, &seen, "ok");
    cfg.cell_msg = NULL;
    cfg.cell_msg_len = 0;
    assert_int_equal(kt_vm_run(&cfg, &out), 0);
    assert_int_equal(out.reached, KT_VM_PHASE_DONE);
    assert_true(out.got_hello);
    assert_false(out.got_result);
    unsigned char got[64];
    size_t n = s_slurp("received.shutdown", got, sizeof(got));
    assert_int_equal(n, 12);
    assert_memory_equal(got, "\x81\xa1t\xa8shutdown", 12);
    assert_int_equal(s_slurp("received.cell", got, sizeof(got)), 0);
    s_assert_no_children();
}

static void test_run_boot_timeout(void **state)
{
    kt_vm_config_t cfg;
    s_seen_t seen;
    kt_vm_outcome_t out;
    s_run_cfg(&cfg, &seen, "silent");
    cfg.boot_timeout_ms = 700;
    uint64_t t0 = s_now();
    assert_int_equal(kt_vm_run(&cfg, &out), 0);
    uint64_t took = s_now() - t0;
    assert_int_equal(out.reached, KT_VM_PHASE_BOOT);
    assert_true(out.timed_out);
    assert_false(out.got_hello);
    assert_non_null(strstr(out.error_text, "boot timeout"));
    /* Stopped through QMP quit (the fake exits 0 on it), well before the
     * SIGKILL grace. */
    assert_true(WIFEXITED(out.qemu_status) && WEXITSTATUS(out.qemu_status) == 0);
    assert_true(took >= 700 && took < 1600);
    assert_non_null(strstr(out.console_tail, "KTSTR_INIT_READY"));
    char why[320];
    assert_true(kt_runcell_boot_retryable(&out, why, sizeof(why)));
    assert_non_null(strstr(why, "boot timeout"));
    s_assert_no_children();
}

static void test_run_stubborn_qemu_is_killed(void **state)
{
    kt_vm_config_t cfg;
    s_seen_t seen;
    kt_vm_outcome_t out;
    s_run_cfg(&cfg, &seen, "stubborn");
    cfg.boot_timeout_ms = 300;
    uint64_t t0 = s_now();
    assert_int_equal(kt_vm_run(&cfg, &out), 0);
    uint64_t took = s_now() - t0;
    assert_true(out.timed_out);
    assert_true(WIFSIGNALED(out.qemu_status));
    assert_int_equal(WTERMSIG(out.qemu_status), SIGKILL);
    /* 300 ms boot, about 1 s of grace after quit, then SIGKILL. */
    assert_true(took >= 1200 && took < 3000);
    /* Killed by the runner after its boot timeout: the timeout is the cause. */
    assert_true(kt_runcell_boot_retryable(&out, NULL, 0));
    s_assert_no_children();
}

static void test_run_qemu_aborts(void **state)
{
    kt_vm_config_t cfg;
    s_seen_t seen;
    kt_vm_outcome_t out;
    s_run_cfg(&cfg, &seen, "abort");
    assert_int_equal(kt_vm_run(&cfg, &out), 0);
    assert_int_equal(out.reached, KT_VM_PHASE_BOOT);
    assert_true(out.qemu_exited_early);
    assert_false(out.timed_out);
    assert_true(WIFSIGNALED(out.qemu_status));
    assert_int_equal(WTERMSIG(out.qemu_status), SIGABRT);
    /* QEMU's own first error line is quoted. */
    assert_string_equal(out.qemu_message,
                        "qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69");
    assert_non_null(strstr(out.error_text, "during boot"));
    assert_non_null(strstr(out.error_text, "failed to set MSR 0x10a"));
    /* QEMU said why it gave up: that repeats, no second boot. */
    char why[320];
    assert_false(kt_runcell_boot_retryable(&out, why, sizeof(why)));
    assert_string_equal(why, "");
    s_assert_no_children();
}

static void test_run_guest_panic(void **state)
{
    kt_vm_config_t cfg;
    s_seen_t seen;
    kt_vm_outcome_t out;
    s_run_cfg(&cfg, &seen, "panic");
    assert_int_equal(kt_vm_run(&cfg, &out), 0);
    assert_true(out.qemu_exited_early);
    assert_string_equal(out.qemu_message, "");
    assert_non_null(strstr(out.error_text, "qemu exited with status 0 during boot"));
    assert_non_null(strstr(out.error_text, "Kernel panic - not syncing: Attempted to kill init!"));
    assert_non_null(strstr(out.console_tail, "Kernel panic"));
    char why[320];
    assert_true(kt_runcell_boot_retryable(&out, why, sizeof(why)));
    assert_string_equal(why, "the kernel failed before init: "
                             "Kernel panic - not syncing: Attempted to kill init! exitcode=0x100");
    s_assert_no_children();
}

static void test_run_qemu_segv(void **state)
{
    kt_vm_config_t cfg;
    s_seen_t seen;
    kt_vm_outcome_t out;
    s_run_cfg(&cfg, &seen, "segv");
    assert_int_equal(kt_vm_run(&cfg, &out), 0);
    assert_int_equal(out.reached, KT_VM_PHASE_BOOT);
    assert_false(out.got_hello);
    assert_true(out.qemu_exited_early);
    assert_false(out.timed_out);
    assert_true(WIFSIGNALED(out.qemu_status));
    assert_int_equal(WTERMSIG(out.qemu_status), SIGSEGV);
    assert_string_equal(out.qemu_message, "");
    assert_string_equal(out.error_text,
                        "qemu was killed by signal 11 (Segmentation fault) during boot");
    char why[320];
    assert_true(kt_runcell_boot_retryable(&out, why, sizeof(why)));
    assert_string_equal(why, out.error_text);
    s_assert_no_children();
}

static void test_run_internal_error(void **state)
{
    kt_vm_config_t cfg;
    s_seen_t seen;
    kt_vm_outcome_t out;
    s_run_cfg(&cfg, &seen, "internal");
    cfg.boot_timeout_ms = 4000;
    uint64_t t0 = s_now();
    assert_int_equal(kt_vm_run(&cfg, &out), 0);
    /* Noticed from the STOP event, not by waiting for the boot bound. */
    assert_true(s_now() - t0 < 2000);
    assert_false(out.timed_out);
    assert_string_equal(out.vm_state, "internal-error");
    assert_string_equal(out.qemu_message, "KVM internal error. Suberror: 1");
    assert_non_null(strstr(out.error_text, "internal-error"));
    assert_non_null(strstr(out.error_text, "KVM internal error. Suberror: 1"));
    /* KVM refusing the guest repeats. */
    assert_false(kt_runcell_boot_retryable(&out, NULL, 0));
    s_assert_no_children();
}

static void test_run_timeout_and_hang(void **state)
{
    kt_vm_config_t cfg;
    s_seen_t seen;
    kt_vm_outcome_t out;
    s_run_cfg(&cfg, &seen, "hello-hang");
    cfg.run_timeout_ms = 600;
    assert_int_equal(kt_vm_run(&cfg, &out), 0);
    assert_int_equal(out.reached, KT_VM_PHASE_RUN);
    assert_true(out.got_hello);
    assert_true(out.timed_out);
    assert_non_null(strstr(out.error_text, "run timeout"));
    /* The guest said hello: the cell ran, a second boot would hide a hang. */
    assert_false(kt_runcell_boot_retryable(&out, NULL, 0));

    s_run_cfg(&cfg, &seen, "hello-hang");
    cfg.run_timeout_ms = 10000;
    cfg.heartbeat_timeout_ms = 400;
    uint64_t t0 = s_now();
    assert_int_equal(kt_vm_run(&cfg, &out), 0);
    assert_true(s_now() - t0 < 3000);
    assert_int_equal(out.reached, KT_VM_PHASE_RUN);
    assert_true(out.timed_out);
    assert_non_null(strstr(out.error_text, "run hang"));
    s_assert_no_children();
}

static void test_run_collect_timeout(void **state)
{
    kt_vm_config_t cfg;
    s_seen_t seen;
    kt_vm_outcome_t out;
    s_run_cfg(&cfg, &seen, "no-poweroff");
    cfg.collect_timeout_ms = 500;
    assert_int_equal(kt_vm_run(&cfg, &out), 0);
    assert_int_equal(out.reached, KT_VM_PHASE_COLLECT);
    assert_true(out.got_result);
    assert_true(out.timed_out);
    assert_non_null(strstr(out.error_text, "collect timeout"));
    s_assert_no_children();
}

static void test_run_bad_frames(void **state)
{
    kt_vm_config_t cfg;
    s_seen_t seen;
    kt_vm_outcome_t out;
    s_run_cfg(&cfg, &seen, "garbage");
    assert_int_equal(kt_vm_run(&cfg, &out), 0);
    assert_int_equal(out.error, -EBADMSG);
    assert_non_null(strstr(out.error_text, "malformed message"));
    assert_false(out.got_result);

    s_run_cfg(&cfg, &seen, "oversize");
    assert_int_equal(kt_vm_run(&cfg, &out), 0);
    assert_int_equal(out.error, -EMSGSIZE);
    assert_false(out.got_result);
    s_assert_no_children();
}

static void test_run_handler_abort(void **state)
{
    kt_vm_config_t cfg;
    s_seen_t seen;
    kt_vm_outcome_t out;
    s_run_cfg(&cfg, &seen, "ok");
    seen.abort_on = 0; /* refuse the hello */
    assert_int_equal(kt_vm_run(&cfg, &out), 0);
    assert_int_equal(out.error, -ECANCELED);
    assert_false(out.got_hello);
    assert_non_null(strstr(out.error_text, "\"hello\""));
    s_assert_no_children();
}

static void test_run_refused(void **state)
{
    kt_vm_config_t cfg;
    s_seen_t seen;
    kt_vm_outcome_t out;
    s_run_cfg(&cfg, &seen, "ok");
    cfg.qemu = "/nonexistent/qemu-system-x86_64";
    assert_int_equal(kt_vm_run(&cfg, &out), -ENOENT);
    assert_non_null(strstr(out.error_text, "/nonexistent/qemu-system-x86_64"));

    s_run_cfg(&cfg, &seen, "ok");
    cfg.kernel = "/nonexistent/bzImage";
    assert_int_equal(kt_vm_run(&cfg, &out), -ENOENT);
    assert_non_null(strstr(out.error_text, "'/nonexistent/bzImage'"));

    s_run_cfg(&cfg, &seen, "ok");
    char longdir[200];
    memset(longdir, 'x', sizeof(longdir) - 1);
    longdir[0] = '/';
    longdir[sizeof(longdir) - 1] = '\0';
    cfg.workdir = longdir;
    assert_true(kt_vm_run(&cfg, &out) < 0);
    assert_int_equal(out.reached, KT_VM_PHASE_START);
    s_assert_no_children();
}

static int s_setup(void **state)
{
    snprintf(s_dir, sizeof(s_dir), "/tmp/kt-test-vm-XXXXXX");
    if (!mkdtemp(s_dir))
        return -1;
    ssize_t n = readlink("/proc/self/exe", s_self, sizeof(s_self) - 1);
    if (n <= 0)
        return -1;
    s_self[n] = '\0';
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
        cmocka_unit_test(test_argv_tiny_2llc),
        cmocka_unit_test(test_argv_smt_2llc),
        cmocka_unit_test(test_argv_numa2_4llc),
        cmocka_unit_test(test_argv_numa4_8llc),
        cmocka_unit_test(test_argv_machine),
        cmocka_unit_test(test_argv_accel),
        cmocka_unit_test(test_argv_cmdline_and_escapes),
        cmocka_unit_test(test_argv_refused),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_file_tail),
        cmocka_unit_test(test_run_ok),
        cmocka_unit_test(test_run_canary_shutdown),
        cmocka_unit_test(test_run_boot_timeout),
        cmocka_unit_test(test_run_stubborn_qemu_is_killed),
        cmocka_unit_test(test_run_qemu_aborts),
        cmocka_unit_test(test_run_guest_panic),
        cmocka_unit_test(test_run_qemu_segv),
        cmocka_unit_test(test_run_internal_error),
        cmocka_unit_test(test_run_timeout_and_hang),
        cmocka_unit_test(test_run_collect_timeout),
        cmocka_unit_test(test_run_bad_frames),
        cmocka_unit_test(test_run_handler_abort),
        cmocka_unit_test(test_run_refused),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
