/* Host-side tests of ktstr-init's modules: topology from fake sysfs trees,
 * kernel log records, the channel over a socketpair, scheduler output
 * capture and process spawning, cgroup files, and the result message. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "kt_chanmsg.h"
#include "kt_checks.h"
#include "kt_frame.h"
#include "kt_guest_cgroup.h"
#include "kt_guest_chan.h"
#include "kt_guest_kmsg.h"
#include "kt_guest_result.h"
#include "kt_guest_sched.h"
#include "kt_guest_sys.h"
#include "kt_guest_topo.h"

/* ---- fake trees ---- */

static void s_mkdirs(const char *path)
{
    char buf[PATH_MAX];
    snprintf(buf, sizeof(buf), "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            mkdir(buf, 0755);
            *p = '/';
        }
    }
    mkdir(buf, 0755);
}

__attribute__((format(printf, 3, 4))) static void s_put(const char *root, const char *text,
                                                        const char *fmt, ...)
{
    char rel[512], path[PATH_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rel, sizeof(rel), fmt, ap);
    va_end(ap);
    snprintf(path, sizeof(path), "%s/%s", root, rel);
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s", path);
    *strrchr(dir, '/') = '\0';
    s_mkdirs(dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "%s\n", text);
    fclose(f);
}

static char *s_tmpdir(void)
{
    char *d = strdup("/tmp/kt-test-guest-XXXXXX");
    assert_non_null(mkdtemp(d));
    return d;
}

static void s_rmrf(const char *d)
{
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d);
    assert_int_equal(system(cmd), 0);
}

/* A sysfs tree for N nodes, L LLCs, C cores per LLC, T threads, numbered as
 * QEMU does; levels: cache levels to create (index0 = L1d ... ). */
static void s_fake_topology(const char *root, unsigned n, unsigned l, unsigned c, unsigned t,
                            unsigned max_level, const char *online)
{
    unsigned cpus = l * c * t;
    char list[64];
    if (online)
        s_put(root, online, "devices/system/cpu/online");
    else {
        snprintf(list, sizeof(list), "0-%u", cpus - 1);
        s_put(root, list, "devices/system/cpu/online");
    }
    for (unsigned cpu = 0; cpu < cpus; cpu++) {
        unsigned llc = cpu / (c * t), core = cpu / t;
        snprintf(list, sizeof(list), "%u-%u", core * t, core * t + t - 1);
        s_put(root, t == 1 ? (snprintf(list, sizeof(list), "%u", cpu), list) : list,
              "devices/system/cpu/cpu%u/topology/thread_siblings_list", cpu);
        snprintf(list, sizeof(list), "%u-%u", llc * c * t, (llc + 1) * c * t - 1);
        s_put(root, list, "devices/system/cpu/cpu%u/topology/package_cpus_list", cpu);
        /* index0 L1d, index1 L1i (per core), index2 L2 (per core), index3 L3 (per LLC) */
        static const unsigned levels[4] = {1, 1, 2, 3};
        for (unsigned i = 0; i < 4 && levels[i] <= max_level; i++) {
            char lv[8];
            snprintf(lv, sizeof(lv), "%u", levels[i]);
            s_put(root, lv, "devices/system/cpu/cpu%u/cache/index%u/level", cpu, i);
            if (levels[i] == 3)
                snprintf(list, sizeof(list), "%u-%u", llc * c * t, (llc + 1) * c * t - 1);
            else
                snprintf(list, sizeof(list), "%u-%u", core * t, core * t + t - 1);
            s_put(root, list, "devices/system/cpu/cpu%u/cache/index%u/shared_cpu_list", cpu, i);
        }
    }
    for (unsigned node = 0; node < n; node++) {
        unsigned per = l / n * c * t;
        snprintf(list, sizeof(list), "%u-%u", node * per, (node + 1) * per - 1);
        s_put(root, list, "devices/system/node/node%u/cpulist", node);
    }
}

static void test_topo_shapes(void **state)
{
    (void)state;
    static const struct {
        unsigned n, l, c, t;
        const char *label;
    } shapes[] = {
        {1, 2, 2, 1, "1n2l2c1t"},
        {2, 2, 2, 2, "2n2l2c2t"},
        {1, 1, 4, 1, "1n1l4c1t"},
        {2, 4, 4, 1, "2n4l4c1t"},
        {1, 3, 3, 2, "1n3l3c2t"},
    };
    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
        char *root = s_tmpdir();
        s_fake_topology(root, shapes[i].n, shapes[i].l, shapes[i].c, shapes[i].t, 3, NULL);
        kt_guest_topo_t t;
        char why[256] = "";
        assert_int_equal(kt_guest_topo_read(root, &t, why, sizeof(why)), 0);
        assert_int_equal(t.nodes, shapes[i].n);
        assert_int_equal(t.llcs, shapes[i].l);
        assert_int_equal(t.cores, shapes[i].c);
        assert_int_equal(t.threads, shapes[i].t);
        assert_int_equal(t.cpus, shapes[i].l * shapes[i].c * shapes[i].t);
        assert_string_equal(t.label, shapes[i].label);
        assert_true(t.uniform);
        assert_int_equal(t.cache_level, 3);
        s_rmrf(root);
        free(root);
    }
}

static void test_topo_fallbacks(void **state)
{
    (void)state;
    /* No L3: the L2 (per core here) is the LLC, so 4 "LLCs" of one core. */
    char *root = s_tmpdir();
    s_fake_topology(root, 1, 2, 2, 1, 2, NULL);
    kt_guest_topo_t t;
    char why[256] = "";
    assert_int_equal(kt_guest_topo_read(root, &t, why, sizeof(why)), 0);
    assert_int_equal(t.cache_level, 2);
    assert_int_equal(t.llcs, 4);
    assert_int_equal(t.cores, 1);
    s_rmrf(root);
    free(root);

    /* No cache information at all: the package is the LLC. */
    root = s_tmpdir();
    s_fake_topology(root, 1, 2, 2, 1, 0, NULL);
    assert_int_equal(kt_guest_topo_read(root, &t, why, sizeof(why)), 0);
    assert_int_equal(t.cache_level, 0);
    assert_int_equal(t.llcs, 2);
    assert_int_equal(t.cores, 2);
    assert_string_equal(t.label, "1n2l2c1t");
    s_rmrf(root);
    free(root);

    /* No node directory (no NUMA): one node. A CPU offline: 3 CPUs, the
     * second LLC has one core, not uniform. */
    root = s_tmpdir();
    s_fake_topology(root, 0, 2, 2, 1, 3, "0-2");
    assert_int_equal(kt_guest_topo_read(root, &t, why, sizeof(why)), 0);
    assert_int_equal(t.nodes, 1);
    assert_int_equal(t.cpus, 3);
    assert_int_equal(t.llcs, 2);
    assert_false(t.uniform);
    s_rmrf(root);
    free(root);
}

static void test_topo_errors(void **state)
{
    (void)state;
    char *root = s_tmpdir();
    kt_guest_topo_t t;
    char why[256] = "";
    assert_int_equal(kt_guest_topo_read(root, &t, why, sizeof(why)), -ENOENT);
    assert_non_null(strstr(why, "devices/system/cpu/online"));
    s_put(root, "0-x", "devices/system/cpu/online");
    assert_int_equal(kt_guest_topo_read(root, &t, why, sizeof(why)), -EBADMSG);
    assert_non_null(strstr(why, "bad CPU list"));
    /* A CPU without its topology directory names the missing file. */
    s_put(root, "0", "devices/system/cpu/online");
    assert_int_equal(kt_guest_topo_read(root, &t, why, sizeof(why)), -ENOENT);
    assert_non_null(strstr(why, "cpu0/topology"));
    s_rmrf(root);
    free(root);
}

static void test_topo_host(void **state)
{
    (void)state;
    kt_guest_topo_t t;
    char why[256] = "";
    if (kt_guest_topo_read("/sys", &t, why, sizeof(why)) < 0) {
        print_message("host sysfs unreadable (%s): skipped\n", why);
        skip();
    }
    assert_int_equal(t.cpus, (unsigned)sysconf(_SC_NPROCESSORS_ONLN));
    assert_true(t.llcs >= 1 && t.cores >= 1 && t.threads >= 1 && t.nodes >= 1);
}

/* ---- kernel log ---- */

static void test_kmsg_parse(void **state)
{
    (void)state;
    static const char rec[] = "3,1234,5678901,-;sched_ext: BPF scheduler \"qmap\" disabled "
                              "(runnable task stall)\n SUBSYSTEM=cpu\n DEVICE=+cpu:1\n";
    kt_kmsg_record_t r;
    assert_int_equal(kt_kmsg_parse(rec, sizeof(rec) - 1, &r), 0);
    assert_int_equal(r.level, 3);
    assert_int_equal(r.seq, 1234);
    assert_int_equal(r.ts_us, 5678901);
    assert_string_equal(r.text, "sched_ext: BPF scheduler \"qmap\" disabled (runnable task stall)");

    /* Prefix with the facility in prio and extra fields before ';'. */
    static const char rec2[] = "14,7,8,c,caller=T1;hello\n";
    assert_int_equal(kt_kmsg_parse(rec2, sizeof(rec2) - 1, &r), 0);
    assert_int_equal(r.level, 6);
    assert_string_equal(r.text, "hello");

    static const char *const bad[] = {"no semicolon", "x,1,2,-;t", "1,,2,-;t", "1,2;t", ";t",
                                      "1,2,3x;t"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(kt_kmsg_parse(bad[i], strlen(bad[i]), &r), -EBADMSG);

    /* Long text is truncated, control bytes blanked. */
    char big[2048];
    int n = snprintf(big, sizeof(big), "6,1,1,-;");
    memset(big + n, 'a', 1500);
    big[n + 10] = '\t';
    assert_int_equal(kt_kmsg_parse(big, (size_t)n + 1500, &r), 0);
    assert_int_equal(strlen(r.text), KT_KMSG_TEXT_MAX - 1);
    assert_int_equal(r.text[10], ' ');
}

static void test_kmsg_classify(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        enum kt_kmsg_kind kind;
    } cases[] = {
        {"sched_ext: BPF scheduler \"qmap\" disabled (runnable task stall)",
         KT_KMSG_SCHED_DISABLED},
        {"sched_ext: BPF scheduler \"simple\" disabled (unregistered from user space)",
         KT_KMSG_SCHED_DISABLED},
        {"sched_ext: BPF scheduler \"simple\" enabled", KT_KMSG_SCHED_EXT},
        {"sched_ext: qmap: kworker/u8:1[42] failed to run for 5.120s", KT_KMSG_SCHED_EXT},
        {"watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [spin:77]", KT_KMSG_KERNEL_PROBLEM},
        {"WARNING: CPU: 1 PID: 42 at kernel/sched/core.c:123 foo+0x1/0x2", KT_KMSG_KERNEL_PROBLEM},
        {"INFO: task kworker:12 blocked for more than 120 seconds.", KT_KMSG_KERNEL_PROBLEM},
        {"rcu: INFO: rcu_sched self-detected stall on CPU", KT_KMSG_KERNEL_PROBLEM},
        {"virtio_console virtio0: port added", KT_KMSG_OTHER},
        {"random: crng init done", KT_KMSG_OTHER},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (kt_kmsg_classify(cases[i].text) != cases[i].kind)
            fail_msg("'%s': kind %d, expected %d", cases[i].text, kt_kmsg_classify(cases[i].text),
                     cases[i].kind);
    }
}

static kt_kmsg_record_t s_rec(unsigned level, uint64_t ts_us, const char *text)
{
    kt_kmsg_record_t r = {.level = level, .ts_us = ts_us};
    snprintf(r.text, sizeof(r.text), "%s", text);
    return r;
}

/* The exit report as the 6.12 kernel printed it when scx_central moved a
 * migration-disabled task (seen in CI), then a normal unregistration. */
static void test_scx_exit(void **state)
{
    (void)state;
    kt_scx_exit_t e = {0};
    kt_kmsg_record_t r = s_rec(4, 10, "sched_ext: \"central\" does not implement cgroup cpu.weight");
    assert_false(kt_scx_exit_feed(&e, &r));
    assert_false(e.seen);
    r = s_rec(3, 3323000, "sched_ext: BPF scheduler \"central\" disabled (runtime error)");
    assert_true(kt_scx_exit_feed(&e, &r));
    assert_true(kt_scx_exit_awaits_message(&e));
    char reason[1024];
    kt_scx_exit_reason(&e, reason, sizeof(reason));
    assert_string_equal(reason, "sched_ext: BPF scheduler \"central\" disabled (runtime error)");
    r = s_rec(3, 3323001, "sched_ext: central: SCX_DSQ_LOCAL[_ON] cannot move migration "
                          "disabled kt:cg_1:0[64] from CPU 3 to 0");
    assert_true(kt_scx_exit_feed(&e, &r));
    assert_false(kt_scx_exit_awaits_message(&e));
    /* The reason is the two lines as the kernel wrote them. */
    kt_scx_exit_reason(&e, reason, sizeof(reason));
    assert_string_equal(reason, "sched_ext: BPF scheduler \"central\" disabled (runtime error); "
                                "sched_ext: central: SCX_DSQ_LOCAL[_ON] cannot move migration "
                                "disabled kt:cg_1:0[64] from CPU 3 to 0");
    assert_string_equal(e.name, "central");
    for (unsigned i = 0; i < KT_SCX_EXIT_BT_MAX + 2; i++) {
        char frame[64];
        snprintf(frame, sizeof(frame), "   frame_%u+0x19/0x3d", i);
        r = s_rec(4, 3323002, frame);
        assert_true(kt_scx_exit_feed(&e, &r));
        assert_true(kt_scx_exit_open(&e));
    }
    r = s_rec(6, 3323100, "reboot: Power down");
    assert_false(kt_scx_exit_feed(&e, &r));
    /* A later report is not the one that failed the cell. */
    r = s_rec(3, 3400000, "sched_ext: BPF scheduler \"central\" disabled (scx_bpf_error)");
    assert_false(kt_scx_exit_feed(&e, &r));
    assert_false(kt_scx_exit_open(&e));
    assert_true(e.seen);
    assert_true(e.error);
    assert_string_equal(e.kind, "runtime error");
    assert_string_equal(e.message, "SCX_DSQ_LOCAL[_ON] cannot move migration disabled "
                                   "kt:cg_1:0[64] from CPU 3 to 0");
    assert_int_equal(e.n_bt, KT_SCX_EXIT_BT_MAX);
    assert_true(e.bt_truncated);
    assert_string_equal(e.bt[0], "frame_0+0x19/0x3d");
    assert_int_equal(e.ts_us, 3323000);

    /* A stall: no frames after the message still closes on the next line. */
    kt_scx_exit_t st = {0};
    r = s_rec(3, 1, "sched_ext: BPF scheduler \"qmap\" disabled (runnable task stall)");
    assert_true(kt_scx_exit_feed(&st, &r));
    r = s_rec(3, 2, "sched_ext: qmap: kworker/u8:1[42] failed to run for 5.120s");
    assert_true(kt_scx_exit_feed(&st, &r));
    r = s_rec(3, 3, "sched_ext: qmap: something else");
    assert_false(kt_scx_exit_feed(&st, &r));
    assert_string_equal(st.kind, "runnable task stall");
    assert_string_equal(st.message, "kworker/u8:1[42] failed to run for 5.120s");
    assert_int_equal(st.n_bt, 0);

    /* A normal unregistration (KERN_INFO) has no message and no frames. */
    kt_scx_exit_t u = {0};
    r = s_rec(6, 1, "sched_ext: BPF scheduler \"simple\" disabled (unregistered from user space)");
    assert_true(kt_scx_exit_feed(&u, &r));
    r = s_rec(4, 2, "   not_a_frame+0x1/0x2");
    assert_false(kt_scx_exit_feed(&u, &r));
    assert_false(u.error);
    assert_false(kt_scx_exit_open(&u));
    assert_false(kt_scx_exit_awaits_message(&u));
    kt_scx_exit_reason(&u, reason, sizeof(reason));
    assert_string_equal(reason, "sched_ext: BPF scheduler \"simple\" disabled (unregistered from "
                                "user space)");
    kt_scx_exit_t none = {0};
    kt_scx_exit_reason(&none, reason, sizeof(reason));
    assert_string_equal(reason, "");
    assert_string_equal(u.kind, "unregistered from user space");
    assert_string_equal(u.message, "");
    assert_int_equal(u.n_bt, 0);
}

/* ---- channel ---- */

static void test_chan_find(void **state)
{
    (void)state;
    char *root = s_tmpdir();
    char dev[64];
    assert_int_equal(kt_guest_chan_find(root, "org.ktstr.0", dev, sizeof(dev)), -ENOENT);
    s_put(root, "org.qemu.guest_agent.0", "class/virtio-ports/vport0p1/name");
    s_put(root, "org.ktstr.0", "class/virtio-ports/vport0p2/name");
    assert_int_equal(kt_guest_chan_find(root, "org.ktstr.0", dev, sizeof(dev)), 0);
    assert_string_equal(dev, "/dev/vport0p2");
    assert_int_equal(kt_guest_chan_find(root, "org.ktstr.1", dev, sizeof(dev)), -ENOENT);
    s_rmrf(root);
    free(root);
}

static void test_chan_roundtrip(void **state)
{
    (void)state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    kt_guest_chan_t *ch = kt_guest_chan_new(sv[0]);
    assert_non_null(ch);
    assert_int_equal(kt_guest_chan_wait_peer(ch, 100), 0);

    /* guest -> host */
    assert_int_equal(kt_guest_chan_send(ch, "hello", 5, 1000), 0);
    void *body;
    size_t len;
    assert_int_equal(kt_frame_read(sv[1], 1024, &body, &len), 0);
    assert_int_equal(len, 5);
    assert_memory_equal(body, "hello", 5);
    free(body);

    /* host -> guest, two frames in one write, then a timeout */
    assert_int_equal(kt_frame_write(sv[1], "ab", 2), 0);
    assert_int_equal(kt_frame_write(sv[1], "", 0), 0);
    assert_int_equal(kt_guest_chan_recv(ch, 1024, 1000, &body, &len), 1);
    assert_int_equal(len, 2);
    assert_memory_equal(body, "ab", 2);
    free(body);
    assert_int_equal(kt_guest_chan_recv(ch, 1024, 1000, &body, &len), 1);
    assert_int_equal(len, 0);
    free(body);
    uint64_t t0 = kt_guest_sys_now_ms();
    assert_int_equal(kt_guest_chan_recv(ch, 1024, 100, &body, &len), 0);
    assert_true(kt_guest_sys_now_ms() - t0 >= 90);

    /* An oversized frame is refused. */
    uint8_t hdr[4] = {0, 0, 8, 0};
    assert_int_equal(write(sv[1], hdr, 4), 4);
    assert_int_equal(kt_guest_chan_recv(ch, 1024, 1000, &body, &len), -EMSGSIZE);

    kt_guest_chan_destroy(&ch);
    assert_null(ch);
    close(sv[1]);
}

static void test_chan_send_bounded(void **state)
{
    (void)state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    kt_guest_chan_t *ch = kt_guest_chan_new(sv[0]);
    /* Nobody reads sv[1]: a big frame cannot go out; the send gives up in
     * time and, having written part of it, marks the stream broken. */
    size_t big = 8u << 20;
    char *buf = calloc(1, big);
    assert_non_null(buf);
    uint64_t t0 = kt_guest_sys_now_ms();
    assert_int_equal(kt_guest_chan_send(ch, buf, big, 200), -EPIPE);
    uint64_t took = kt_guest_sys_now_ms() - t0;
    assert_true(took >= 190 && took < 2000);
    assert_int_equal(kt_guest_chan_send(ch, "x", 1, 200), -EPIPE);
    assert_int_equal(kt_guest_chan_send(ch, buf, KT_FRAME_MAX + 1, 200), -EMSGSIZE);
    free(buf);
    kt_guest_chan_destroy(&ch);
    close(sv[1]);
}

/* ---- scheduler output and process ---- */

typedef struct {
    unsigned n;
    char lines[8][KT_GUEST_SCHED_LINE_MAX];
} s_lines_t;

static void s_collect_line(const char *line, void *ud)
{
    s_lines_t *l = ud;
    if (l->n < 8)
        snprintf(l->lines[l->n++], KT_GUEST_SCHED_LINE_MAX, "%s", line);
}

static void test_outbuf(void **state)
{
    (void)state;
    kt_guest_outbuf_t *o = malloc(sizeof(*o));
    kt_guest_outbuf_init(o);
    s_lines_t l = {0};
    kt_guest_outbuf_feed(o, "local=1 glo", 11, s_collect_line, &l);
    assert_int_equal(l.n, 0);
    kt_guest_outbuf_feed(o, "bal=2\r\nEXIT: runnable task stall\n", 33, s_collect_line, &l);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.lines[0], "local=1 global=2");
    assert_string_equal(l.lines[1], "EXIT: runnable task stall");
    char last[128];
    kt_guest_outbuf_last_line(o, last, sizeof(last));
    assert_string_equal(last, "EXIT: runnable task stall");
    /* A usage error followed by help text: the error line is the reason. */
    kt_guest_outbuf_t *u = malloc(sizeof(*u));
    kt_guest_outbuf_init(u);
    static const char usage[] = "/sched/scx_qmap: invalid option -- '-'\nUsage: ...\n"
                                "  -e COUNT      Trigger scx_bpf_error() after COUNT enqueues\n"
                                "  -h            Display this help and exit\n";
    kt_guest_outbuf_feed(u, usage, sizeof(usage) - 1, NULL, NULL);
    kt_guest_outbuf_error_line(u, last, sizeof(last));
    assert_string_equal(last, "/sched/scx_qmap: invalid option -- '-'");
    kt_guest_outbuf_last_line(u, last, sizeof(last));
    assert_string_equal(last, "  -h            Display this help and exit");
    kt_guest_outbuf_init(u);
    kt_guest_outbuf_feed(u, "all good\nbye\n", 13, NULL, NULL);
    kt_guest_outbuf_error_line(u, last, sizeof(last));
    assert_string_equal(last, "bye");
    free(u);
    kt_guest_outbuf_feed(o, "tail", 4, s_collect_line, &l);
    kt_guest_outbuf_flush(o, s_collect_line, &l);
    assert_int_equal(l.n, 3);
    assert_string_equal(l.lines[2], "tail");

    /* Only the last 4 KiB is kept, newest bytes last. */
    char chunk[1000];
    for (unsigned i = 0; i < 10; i++) {
        memset(chunk, 'a' + (int)i, sizeof(chunk));
        kt_guest_outbuf_feed(o, chunk, sizeof(chunk), NULL, NULL);
    }
    char *tail = malloc(KT_GUEST_SCHED_OUTPUT_MAX + 1);
    kt_guest_outbuf_tail(o, tail, KT_GUEST_SCHED_OUTPUT_MAX + 1);
    assert_int_equal(strlen(tail), KT_GUEST_SCHED_OUTPUT_MAX);
    assert_int_equal(tail[KT_GUEST_SCHED_OUTPUT_MAX - 1], 'j');
    assert_int_equal(tail[0], 'f');
    assert_int_equal(o->total, 11 + 33 + 4 + 10000);
    /* A smaller buffer gets the newest bytes. */
    char small[8];
    kt_guest_outbuf_tail(o, small, sizeof(small));
    assert_string_equal(small, "jjjjjjj");
    free(tail);
    free(o);
}

static void test_sched_spawn(void **state)
{
    (void)state;
    const char *args[] = {"-c", "echo out; echo err >&2; exit 3"};
    pid_t pid;
    int fd;
    assert_int_equal(kt_guest_sched_spawn("/bin/sh", args, 2, &pid, &fd), 0);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_int_equal(kt_guest_sched_exit_code(st), 3);
    char how[64];
    kt_guest_sched_describe_status(st, how, sizeof(how));
    assert_string_equal(how, "exited with status 3");
    kt_guest_outbuf_t *o = malloc(sizeof(*o));
    kt_guest_outbuf_init(o);
    char buf[256];
    ssize_t n;
    while ((n = read(fd, buf, sizeof(buf))) > 0)
        kt_guest_outbuf_feed(o, buf, (size_t)n, NULL, NULL);
    assert_int_equal(n, 0);
    char tail[64];
    kt_guest_outbuf_tail(o, tail, sizeof(tail));
    assert_string_equal(tail, "out\nerr\n");
    close(fd);

    /* Its own process group; a signal death reads as -signal. */
    const char *args2[] = {"-c", "kill -9 $$"};
    assert_int_equal(kt_guest_sched_spawn("/bin/sh", args2, 2, &pid, &fd), 0);
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_int_equal(kt_guest_sched_exit_code(st), -9);
    kt_guest_sched_describe_status(st, how, sizeof(how));
    assert_non_null(strstr(how, "killed by signal 9"));
    close(fd);

    /* A missing binary: the child says so on its output and exits 127. */
    assert_int_equal(kt_guest_sched_spawn("/nonexistent/scx", NULL, 0, &pid, &fd), 0);
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_int_equal(kt_guest_sched_exit_code(st), 127);
    n = read(fd, buf, sizeof(buf) - 1);
    assert_true(n > 0);
    buf[n] = '\0';
    assert_non_null(strstr(buf, "exec of the scheduler failed"));
    close(fd);
    free(o);
}

/* ---- cgroups ---- */

static void test_cgroup_setup(void **state)
{
    (void)state;
    kt_topology_t topo = {1, 2, 2, 1};
    kt_plan_t plan;
    char why[256] = "";
    assert_int_equal(kt_scenario_resolve(kt_scenario_builtin_find("steady_llc"), &topo, 1000, &plan,
                                         why, sizeof(why)),
                     0);
    assert_int_equal(plan.n_cgroups, 2);
    char *root = s_tmpdir();
    /* Not a cgroup2 root. */
    assert_int_equal(kt_guest_cgroup_setup(root, &plan, "0", why, sizeof(why)), -ENOENT);
    assert_non_null(strstr(why, root));
    /* A fake hierarchy: the control files exist as plain files. */
    s_put(root, "cpuset cpu", "cgroup.controllers");
    s_put(root, "", "cgroup.subtree_control");
    s_put(root, "", "ktstr/cgroup.subtree_control");
    for (unsigned i = 0; i < plan.n_cgroups; i++) {
        s_put(root, "", "ktstr/%s/cpuset.cpus", plan.cgroups[i].name);
        s_put(root, "", "ktstr/%s/cpuset.mems", plan.cgroups[i].name);
        s_put(root, "", "ktstr/%s/cgroup.procs", plan.cgroups[i].name);
    }
    assert_int_equal(kt_guest_cgroup_setup(root, &plan, "0", why, sizeof(why)), 0);
    char path[PATH_MAX], buf[64];
    snprintf(path, sizeof(path), "%s/ktstr/%s/cpuset.cpus", root, plan.cgroups[1].name);
    assert_true(kt_guest_sys_read_file(path, buf, sizeof(buf)) > 0);
    assert_string_equal(buf, "2-3");
    snprintf(path, sizeof(path), "%s/ktstr/%s/cpuset.mems", root, plan.cgroups[0].name);
    assert_true(kt_guest_sys_read_file(path, buf, sizeof(buf)) > 0);
    assert_string_equal(buf, "0");
    assert_int_equal(kt_guest_cgroup_attach(root, plan.cgroups[0].name, 4242, why, sizeof(why)), 0);
    snprintf(path, sizeof(path), "%s/ktstr/%s/cgroup.procs", root, plan.cgroups[0].name);
    assert_true(kt_guest_sys_read_file(path, buf, sizeof(buf)) > 0);
    assert_string_equal(buf, "4242");
    /* A missing cgroup names the file. */
    assert_int_equal(kt_guest_cgroup_attach(root, "nope", 1, why, sizeof(why)), -ENOENT);
    assert_non_null(strstr(why, "nope/cgroup.procs"));
    assert_int_equal(kt_guest_cgroup_attach(root, "..", 1, why, sizeof(why)), -EINVAL);
    /* An invalid name in the plan is refused before anything is made. */
    snprintf(plan.cgroups[1].name, sizeof(plan.cgroups[1].name), "a/../b");
    assert_int_equal(kt_guest_cgroup_setup(root, &plan, "0", why, sizeof(why)), -EINVAL);
    assert_non_null(strstr(why, "a/../b"));
    s_rmrf(root);
    free(root);
}

/* ---- messages ---- */

static const msgpack_object *s_get(const msgpack_object *map, const char *key)
{
    const msgpack_object *o = kt_mp_get(map, key);
    if (!o)
        fail_msg("key '%s' missing", key);
    return o;
}

static void s_assert_keys(const msgpack_object *map, const char *const *keys, size_t n)
{
    assert_int_equal(map->type, MSGPACK_OBJECT_MAP);
    assert_int_equal(map->via.map.size, n);
    for (size_t i = 0; i < n; i++)
        s_get(map, keys[i]);
}

static void s_str_eq(const msgpack_object *map, const char *key, const char *want)
{
    char buf[4200];
    assert_int_equal(kt_mp_get_str(map, key, buf, sizeof(buf)), 0);
    assert_string_equal(buf, want);
}

static void test_result_pack(void **state)
{
    (void)state;
    kt_topology_t topo = {1, 2, 2, 1};
    kt_plan_t plan;
    char why[256] = "";
    assert_int_equal(kt_scenario_resolve(kt_scenario_builtin_find("steady_llc"), &topo, 1000, &plan,
                                         why, sizeof(why)),
                     0);
    unsigned n = kt_plan_total_workers(&plan);
    kt_worker_stats_t *ws = calloc(n, sizeof(*ws));
    unsigned i = 0;
    for (unsigned cg = 0; cg < plan.n_cgroups; cg++) {
        for (unsigned k = 0; k < plan.cgroups[cg].workers; k++, i++) {
            ws[i].cgroup = cg;
            ws[i].index = k;
            ws[i].pid = (int32_t)(100 + i);
            ws[i].work_units = i == 0 ? 0 : 1000; /* worker 0 starved */
            ws[i].cpu_time_ns = i == 0 ? 0 : 900000000ull;
            ws[i].wall_time_ns = 1000000000ull;
            ws[i].max_gap_ns = 5000000ull;
            ws[i].wake_lat_p99_ns = 1500;
            /* 4 wakeups of 1 us and 3 us: mean 2 us, stddev 1 us */
            ws[i].wake_count = 4;
            ws[i].wake_lat_sum_ns = 8000;
            ws[i].wake_lat_sumsq = 2 * 1e6 + 2 * 9e6;
            ws[i].iterations = 77;
            kt_cpumask_set(&ws[i].cpus_used, 2 * cg);
        }
    }
    kt_check_report_t *rep = calloc(1, sizeof(*rep));
    int failed = kt_checks_evaluate(&plan, ws, n, rep);
    assert_true(failed >= 1);

    kt_guest_result_t *r = malloc(sizeof(*r));
    kt_guest_result_init(r);
    r->verdict = KT_VERDICT_FAIL;
    snprintf(r->reason, sizeof(r->reason), "bad \xff byte");
    r->phase = "done";
    snprintf(r->kernel, sizeof(r->kernel), "6.12.117");
    r->topo.nodes = 1;
    r->topo.llcs = 2;
    r->topo.cores = 2;
    r->topo.threads = 1;
    r->topo.cpus = 4;
    snprintf(r->topo.label, sizeof(r->topo.label), "1n2l2c1t");
    snprintf(r->sched.name, sizeof(r->sched.name), "scx_qmap");
    snprintf(r->sched.ops, sizeof(r->sched.ops), "qmap");
    snprintf(r->sched.state, sizeof(r->sched.state), "disabled");
    r->sched.exited = true;
    r->sched.exit_status = -9;
    snprintf(r->sched.output, sizeof(r->sched.output), "EXIT: runnable task stall\n");
    kt_guest_result_klog(r, "sched_ext: BPF scheduler \"qmap\" disabled (runnable task stall)");
    kt_kmsg_record_t kr = s_rec(3, 5120000, "sched_ext: BPF scheduler \"qmap\" disabled "
                                            "(runnable task stall)");
    assert_true(kt_scx_exit_feed(&r->sched.exit, &kr));
    kr = s_rec(3, 5120001, "sched_ext: qmap: kt:cg_0:1[77] failed to run for 5.120s");
    assert_true(kt_scx_exit_feed(&r->sched.exit, &kr));
    kr = s_rec(4, 5120002, "  scx_watchdog_workfn+0x1c0/0x1f0");
    assert_true(kt_scx_exit_feed(&r->sched.exit, &kr));
    for (unsigned e = 0; e < KT_GUEST_TIMELINE_MAX + 72; e++)
        kt_guest_result_event(r, e, "event %u", e);
    assert_int_equal(r->n_timeline, KT_GUEST_TIMELINE_MAX);
    r->plan = &plan;
    r->stats = ws;
    r->n_stats = n;
    r->report = rep;
    r->durations.workload_ms = 1000.5;
    /* The thresholds in force: spread from the scheduler layer, gap relaxed
     * by a debug kernel, wake_cv from the scenario. */
    kt_thresholds_t sched = {.max_spread_pct = 25, .set = KT_THR_BIT(KT_THR_SPREAD)};
    kt_thresholds_t scen = {.max_wake_cv = 1.5, .set = KT_THR_BIT(KT_THR_WAKE_CV)};
    kt_thresholds_t in_force;
    kt_thresholds_layer(&sched, &scen, &in_force);
    assert_int_equal(kt_thresholds_relax_for_debug(&in_force), 1);
    r->thresholds = &in_force;

    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    assert_int_equal(kt_guest_result_pack(r, &sb), 0);
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    assert_int_equal(msgpack_unpack_next(&up, sb.data, sb.size, &off), MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(off, sb.size);
    const msgpack_object *o = &up.data;
    static const char *const top[] = {"t", "verdict", "reason", "phase", "kernel", "debug_kernel",
                                      "observed_topology", "scheduler", "kernel_log", "cgroups",
                                      "checks", "failed_checks", "timeline", "durations",
                                      "bpf_progs", "bpf_stats", "thresholds"};
    s_assert_keys(o, top, 17);
    s_str_eq(o, "t", "result");
    s_str_eq(o, "verdict", "fail");
    s_str_eq(o, "reason", "bad ? byte");
    s_str_eq(o, "phase", "done");
    static const char *const topo_keys[] = {"nodes", "llcs", "cores", "threads", "cpus", "label"};
    s_assert_keys(s_get(o, "observed_topology"), topo_keys, 6);
    s_str_eq(s_get(o, "observed_topology"), "label", "1n2l2c1t");
    static const char *const sched_keys[] = {"name", "ops", "state", "enable_ms", "exited",
                                             "exit_status", "output", "exit"};
    const msgpack_object *so = s_get(o, "scheduler");
    s_assert_keys(so, sched_keys, 8);
    static const char *const exit_keys[] = {"kind",      "error",
                                            "message",   "backtrace",
                                            "backtrace_truncated", "kernel_ts_ms"};
    const msgpack_object *eo = s_get(so, "exit");
    s_assert_keys(eo, exit_keys, 6);
    s_str_eq(eo, "kind", "runnable task stall");
    s_str_eq(eo, "message", "kt:cg_0:1[77] failed to run for 5.120s");
    assert_int_equal(s_get(eo, "backtrace")->via.array.size, 1);
    double ets;
    assert_int_equal(kt_mp_get_double(eo, "kernel_ts_ms", &ets), 0);
    assert_true(ets > 5119.9 && ets < 5120.1);
    int64_t es;
    assert_int_equal(kt_mp_get_i64(so, "exit_status", &es), 0);
    assert_int_equal(es, -9);
    s_str_eq(so, "ops", "qmap");
    const msgpack_object *kl = s_get(o, "kernel_log");
    assert_int_equal(kl->type, MSGPACK_OBJECT_ARRAY);
    assert_int_equal(kl->via.array.size, 1);

    const msgpack_object *cgs = s_get(o, "cgroups");
    assert_int_equal(cgs->type, MSGPACK_OBJECT_ARRAY);
    assert_int_equal(cgs->via.array.size, plan.n_cgroups);
    static const char *const cg_keys[] = {"name", "cpuset", "work_type", "workers", "work_units",
                                          "spread_pct", "min_on_cpu_pct", "max_on_cpu_pct",
                                          "max_gap_ms", "cpus_used", "worker_stats"};
    static const char *const w_keys[] = {
        "index", "pid", "work_units", "cpu_time_ms", "wall_time_ms", "on_cpu_pct",
        "off_cpu_pct", "max_gap_ms", "cpus_used", "migrations", "wake_count", "wake_p50_us",
        "wake_p99_us", "wake_max_us", "run_delay_ms", "timeslices", "voluntary_ctxsw",
        "involuntary_ctxsw", "iterations", "wake_mean_us", "wake_cv", "type_figures",
        "policy", "rt_priority"};
    unsigned total = 0;
    for (unsigned c = 0; c < plan.n_cgroups; c++) {
        const msgpack_object *co = &cgs->via.array.ptr[c];
        s_assert_keys(co, cg_keys, 11);
        s_str_eq(co, "name", plan.cgroups[c].name);
        s_str_eq(co, "cpuset", c == 0 ? "0-1" : "2-3");
        s_str_eq(co, "work_type", "spin");
        const msgpack_object *wso = s_get(co, "worker_stats");
        assert_int_equal(wso->via.array.size, plan.cgroups[c].workers);
        for (unsigned k = 0; k < wso->via.array.size; k++) {
            s_assert_keys(&wso->via.array.ptr[k], w_keys, 24);
            /* spin has no figures of its own. */
            s_assert_keys(s_get(&wso->via.array.ptr[k], "type_figures"), NULL, 0);
            double p99;
            assert_int_equal(kt_mp_get_double(&wso->via.array.ptr[k], "wake_p99_us", &p99), 0);
            assert_true(p99 > 1.49 && p99 < 1.51);
        }
        total += wso->via.array.size;
    }
    assert_int_equal(total, n);
    double on;
    const msgpack_object *w01 = &s_get(&cgs->via.array.ptr[0], "worker_stats")->via.array.ptr[1];
    assert_int_equal(kt_mp_get_double(w01, "on_cpu_pct", &on), 0);
    assert_true(on > 89.9 && on < 90.1);

    uint64_t iters;
    double wcv;
    assert_int_equal(kt_mp_get_u64(w01, "iterations", &iters), 0);
    assert_int_equal(iters, 77);
    assert_int_equal(kt_mp_get_double(w01, "wake_cv", &wcv), 0);
    assert_float_equal(wcv, 0.5, 1e-9);

    const msgpack_object *th = s_get(o, "thresholds");
    assert_int_equal(th->via.map.size, 11);
    const msgpack_object *sp = s_get(th, "fairness_spread");
    static const char *const sp_keys[] = {"on", "value", "unit", "source", "on_source"};
    s_assert_keys(sp, sp_keys, 5);
    s_str_eq(sp, "source", "scheduler");
    s_str_eq(sp, "on_source", "default");
    double tv;
    assert_int_equal(kt_mp_get_double(sp, "value", &tv), 0);
    assert_true(tv == 25.0);
    s_str_eq(s_get(th, "max_gap"), "source", "debug-default");
    assert_int_equal(kt_mp_get_double(s_get(th, "max_gap"), "value", &tv), 0);
    assert_true(tv == 3000.0);
    s_str_eq(s_get(th, "wake_cv"), "source", "scenario");
    s_str_eq(s_get(th, "not_starved"), "source", "default");
    bool th_on;
    assert_int_equal(kt_mp_get_bool(s_get(th, "migration_ratio"), "on", &th_on), 0);
    assert_false(th_on);

    const msgpack_object *checks = s_get(o, "checks");
    assert_int_equal(checks->via.array.size, rep->n_results);
    static const char *const ck_keys[] = {"name", "cgroup", "worker", "passed", "measured",
                                          "threshold", "unit", "detail"};
    bool saw_starved_fail = false;
    for (unsigned c = 0; c < checks->via.array.size; c++) {
        const msgpack_object *co = &checks->via.array.ptr[c];
        s_assert_keys(co, ck_keys, 8);
        char name[32];
        bool passed;
        assert_int_equal(kt_mp_get_str(co, "name", name, sizeof(name)), 0);
        assert_int_equal(kt_mp_get_bool(co, "passed", &passed), 0);
        if (strcmp(name, "not_starved") == 0 && !passed) {
            saw_starved_fail = true;
            s_str_eq(co, "cgroup", plan.cgroups[0].name);
        }
    }
    assert_true(saw_starved_fail);
    uint64_t fc;
    assert_int_equal(kt_mp_get_u64(o, "failed_checks", &fc), 0);
    assert_int_equal(fc, (uint64_t)failed);
    const msgpack_object *tl = s_get(o, "timeline");
    assert_int_equal(tl->via.array.size, KT_GUEST_TIMELINE_MAX);
    s_str_eq(&tl->via.array.ptr[0], "event", "event 0");
    s_str_eq(&tl->via.array.ptr[KT_GUEST_TIMELINE_MAX - 1], "event",
             "timeline full, later events dropped");
    static const char *const dur_keys[] = {"sched_enable_ms", "settle_ms", "workload_ms",
                                           "collect_ms"};
    s_assert_keys(s_get(o, "durations"), dur_keys, 4);
    msgpack_unpacked_destroy(&up);
    msgpack_sbuffer_destroy(&sb);

    /* A pass has an empty reason whatever the buffer held; no telemetry ->
     * empty cgroups and checks. */
    r->verdict = KT_VERDICT_PASS;
    r->stats = NULL;
    r->report = NULL;
    msgpack_sbuffer_init(&sb);
    assert_int_equal(kt_guest_result_pack(r, &sb), 0);
    msgpack_unpacked_init(&up);
    off = 0;
    assert_int_equal(msgpack_unpack_next(&up, sb.data, sb.size, &off), MSGPACK_UNPACK_SUCCESS);
    s_str_eq(&up.data, "reason", "");
    s_str_eq(&up.data, "verdict", "pass");
    assert_int_equal(s_get(&up.data, "cgroups")->via.array.size, 0);
    assert_int_equal(s_get(&up.data, "checks")->via.array.size, 0);
    msgpack_unpacked_destroy(&up);
    msgpack_sbuffer_destroy(&sb);
    free(r);
    free(rep);
    free(ws);
}

static void test_small_messages(void **state)
{
    (void)state;
    kt_guest_topo_t t = {.nodes = 2, .llcs = 4, .cores = 4, .threads = 1, .cpus = 16};
    snprintf(t.label, sizeof(t.label), "2n4l4c1t");
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    assert_int_equal(kt_guest_hello_pack(&t, "6.12.117", true, &sb), 0);
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    assert_int_equal(msgpack_unpack_next(&up, sb.data, sb.size, &off), MSGPACK_UNPACK_SUCCESS);
    static const char *const keys[] = {"t", "topology", "cpus_online", "kernel", "debug_kernel"};
    s_assert_keys(&up.data, keys, 5);
    s_str_eq(&up.data, "t", "hello");
    s_str_eq(s_get(&up.data, "topology"), "label", "2n4l4c1t");
    uint64_t v;
    assert_int_equal(kt_mp_get_u64(s_get(&up.data, "topology"), "cpus", &v), 0);
    assert_int_equal(v, 16);
    msgpack_unpacked_destroy(&up);
    msgpack_sbuffer_destroy(&sb);

    msgpack_sbuffer_init(&sb);
    assert_int_equal(kt_guest_event_pack(1234, "run", "released 4 workers", &sb), 0);
    msgpack_unpacked_init(&up);
    off = 0;
    assert_int_equal(msgpack_unpack_next(&up, sb.data, sb.size, &off), MSGPACK_UNPACK_SUCCESS);
    s_str_eq(&up.data, "t", "event");
    s_str_eq(&up.data, "phase", "run");
    assert_int_equal(kt_mp_get_u64(&up.data, "ms", &v), 0);
    assert_int_equal(v, 1234);
    msgpack_unpacked_destroy(&up);
    msgpack_sbuffer_destroy(&sb);

    msgpack_sbuffer_init(&sb);
    assert_int_equal(kt_guest_hb_pack(99, &sb), 0);
    msgpack_unpacked_init(&up);
    off = 0;
    assert_int_equal(msgpack_unpack_next(&up, sb.data, sb.size, &off), MSGPACK_UNPACK_SUCCESS);
    s_str_eq(&up.data, "t", "hb");
    msgpack_unpacked_destroy(&up);
    msgpack_sbuffer_destroy(&sb);
}

static void test_sys_files(void **state)
{
    (void)state;
    char *root = s_tmpdir();
    char path[PATH_MAX], buf[8];
    snprintf(path, sizeof(path), "%s/f", root);
    /* No O_CREAT: writing a missing file fails. */
    assert_int_equal(kt_guest_sys_write_file(path, "x"), -ENOENT);
    s_put(root, "0123456789", "f");
    /* Bounded read: len - 1 bytes, trailing newline stripped when it fits. */
    assert_int_equal(kt_guest_sys_read_file(path, buf, sizeof(buf)), 7);
    assert_string_equal(buf, "0123456");
    char big[64];
    assert_int_equal(kt_guest_sys_read_file(path, big, sizeof(big)), 10);
    assert_string_equal(big, "0123456789");
    assert_int_equal(kt_guest_sys_read_file("/nonexistent/x", big, sizeof(big)), -ENOENT);
    s_rmrf(root);
    free(root);

    /* The orphan reaper reaps a zombie child but not one it is told to keep. */
    pid_t a = fork();
    if (a == 0)
        _exit(0);
    pid_t b = fork();
    if (b == 0)
        _exit(0);
    kt_guest_sys_sleep_ms(100);
    assert_int_equal(kt_guest_sys_reap_orphans(&b, 1), 1);
    int st;
    assert_int_equal(waitpid(a, &st, WNOHANG), -1);
    assert_int_equal(errno, ECHILD);
    assert_int_equal(waitpid(b, &st, 0), b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_topo_shapes),     cmocka_unit_test(test_topo_fallbacks),
        cmocka_unit_test(test_topo_errors),     cmocka_unit_test(test_topo_host),
        cmocka_unit_test(test_kmsg_parse),      cmocka_unit_test(test_kmsg_classify),
        cmocka_unit_test(test_scx_exit),
        cmocka_unit_test(test_chan_find),       cmocka_unit_test(test_chan_roundtrip),
        cmocka_unit_test(test_chan_send_bounded), cmocka_unit_test(test_outbuf),
        cmocka_unit_test(test_sched_spawn),     cmocka_unit_test(test_cgroup_setup),
        cmocka_unit_test(test_result_pack),     cmocka_unit_test(test_small_messages),
        cmocka_unit_test(test_sys_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
