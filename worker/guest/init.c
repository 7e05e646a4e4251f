/* ktstr-init: the static PID 1 of a test VM. It mounts the basics, says
 * KTSTR_INIT_READY on the console, greets the host over the virtio-serial
 * port, receives one cell, starts the scheduler under test, runs the plan's
 * workers in their cgroups, watches the scheduler and the kernel log, judges
 * the telemetry, sends the result and powers off.
 *
 * Threads: main runs the cell; the supervisor sends heartbeats, reads the
 * host's messages and is the watchdog; the monitor watches the scheduler
 * (process, sched_ext state, kernel log, output) and reaps orphans. All three
 * run SCHED_FIFO, which sched_ext does not schedule, so a broken scheduler can
 * starve the workers but not the verdict. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kt_chanmsg.h"
#include "kt_checks.h"
#include "kt_cleanup.h"
#include "kt_guest_bpf.h"
#include "kt_guest_cgroup.h"
#include "kt_guest_chan.h"
#include "kt_guest_kmsg.h"
#include "kt_guest_payload.h"
#include "kt_guest_result.h"
#include "kt_guest_sched.h"
#include "kt_guest_sys.h"
#include "kt_guest_topo.h"
#include "kt_log.h"
#include "kt_timeline.h"
#include "kt_workload.h"

#define S_PORT_WAIT_MS 3000
#define S_PEER_WAIT_MS 60000
#define S_CELL_WAIT_MS 120000
#define S_HELLO_TIMEOUT_MS 10000
#define S_EVENT_TIMEOUT_MS 500
#define S_RESULT_TIMEOUT_MS 10000
#define S_ACK_WAIT_MS 2000
#define S_CELL_MAX_BYTES (1u << 20)
#define S_MONITOR_PERIOD_MS 50
#define S_REAP_PERIOD_MS 1000
#define S_REASON_GRACE_MS 1000
#define S_BACKTRACE_GRACE_MS 100

/* Above any worker's (fifo / rr workers get 1..KT_RT_PRIORITY_MAX). */
#define S_PRIO_SUPERVISOR 99
#define S_PRIO_MONITOR 98
#define S_PRIO_MAIN 97

typedef struct s_cell {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    kt_guest_chan_t *chan;
    kt_cell_msg_t msg;
    uint64_t t0_ms;                  /* monotonic, when the cell arrived */

    /* Everything below is under lock. */
    kt_guest_result_t res;
    const char *phase;
    uint64_t deadline_ms;            /* watchdog bound of the phase; 0 none */
    uint32_t bound_ms;
    const char *end_phase;           /* phase of the first failure or error */
    bool result_sent;
    bool acked;
    bool stop;

    /* The scheduler process. */
    pid_t sched_pid;
    int sched_out_fd;
    bool sched_watched;              /* its exit / a disable is a failure */
    bool sched_active;               /* enabled: leaving "enabled" is a failure */
    bool sched_exited;
    int sched_status;
    uint64_t sched_spawn_ms;
    kt_guest_outbuf_t sched_out;

    /* Findings. */
    bool sched_failed;
    uint64_t sched_fail_ms;
    char sched_exit_reason[384];
    char sched_state_reason[128];
    bool kernel_failed;
    char kernel_reason[300];
    bool harness_error;
    char harness_reason[512];

    /* Workers not to be reaped by the orphan reaper. */
    pid_t *keep;
    size_t n_keep;

    /* The payload of a payload cell (main thread only; its pid under lock
     * for the reaper). */
    kt_guest_payload_t *payload;
    pid_t payload_pid;
    bool payload_skip;
    char payload_skip_reason[256];

    kt_guest_bpf_t bpf;              /* BPF program cost (main thread) */
    int kmsg_fd;
    kt_guest_topo_t topo;
    bool topo_ok;
    char topo_why[256];
} s_cell_t;

static uint64_t s_ms(const s_cell_t *c)
{
    return kt_guest_sys_now_ms() - c->t0_ms;
}

static void s_send_event(s_cell_t *c, const char *phase, const char *text)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    if (kt_guest_event_pack(kt_guest_sys_uptime_ms(), phase, text, &sb) == 0)
        kt_guest_chan_send_sbuf(c->chan, &sb, S_EVENT_TIMEOUT_MS);
    msgpack_sbuffer_destroy(&sb);
}

/* Timeline entry + console line + event to the host. */
__attribute__((format(printf, 2, 3))) static void s_event(s_cell_t *c, const char *fmt, ...)
{
    char text[KT_GUEST_EVENT_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&c->lock);
    uint64_t ms = s_ms(c);
    kt_guest_result_event(&c->res, ms, "%s", text);
    const char *phase = c->phase;
    pthread_mutex_unlock(&c->lock);
    kt_log_info("event ms=%llu phase=%s: %s", (unsigned long long)ms, phase, text);
    s_send_event(c, phase, text);
}

/* Test hook for the watchdog: `ktstr.hang=<phase>` on the kernel command
 * line makes the main thread hang on entering that phase. */
static char s_hang_phase[32];

/* Test hook for the per-phase isolation check: `ktstr.skip_op=<op>` makes
 * ktstr-init record that op as applied without doing it (a cpuset change
 * that never takes effect, as a scheduler that keeps tasks on CPUs they
 * lost would look). */
static char s_skip_op[32];

static void s_read_hang_hook(void)
{
    char cmdline[1024];
    if (kt_guest_sys_read_file("/proc/cmdline", cmdline, sizeof(cmdline)) < 0)
        return;
    const char *so = strstr(cmdline, "ktstr.skip_op=");
    if (so) {
        so += strlen("ktstr.skip_op=");
        size_t n = strcspn(so, " \t\n");
        snprintf(s_skip_op, sizeof(s_skip_op), "%.*s", (int)(n < 31 ? n : 31), so);
    }
    const char *p = strstr(cmdline, "ktstr.hang=");
    if (!p)
        return;
    p += strlen("ktstr.hang=");
    size_t n = strcspn(p, " \t\n");
    if (n >= sizeof(s_hang_phase))
        n = sizeof(s_hang_phase) - 1;
    memcpy(s_hang_phase, p, n);
    s_hang_phase[n] = '\0';
}

static void s_set_phase(s_cell_t *c, const char *phase, uint64_t bound_ms)
{
    pthread_mutex_lock(&c->lock);
    c->phase = phase;
    c->bound_ms = (uint32_t)(bound_ms > UINT32_MAX ? UINT32_MAX : bound_ms);
    c->deadline_ms = kt_guest_sys_now_ms() + bound_ms;
    pthread_mutex_unlock(&c->lock);
    if (s_hang_phase[0] && strcmp(s_hang_phase, phase) == 0) {
        kt_log_warn("test hook ktstr.hang=%s: the main thread hangs here", phase);
        for (;;)
            pause();
    }
}

/* Call with the lock held. */
static void s_mark_end_phase(s_cell_t *c)
{
    if (!c->end_phase)
        c->end_phase = c->phase;
}

/* A harness problem: the cell's verdict becomes error (unless the scheduler
 * or kernel failed, which stays a fail). Only the first one is kept. */
__attribute__((format(printf, 2, 3))) static void s_harness_error(s_cell_t *c, const char *fmt, ...)
{
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&c->lock);
    bool first = !c->harness_error;
    if (first) {
        c->harness_error = true;
        snprintf(c->harness_reason, sizeof(c->harness_reason), "%s", text);
        s_mark_end_phase(c);
    }
    pthread_mutex_unlock(&c->lock);
    kt_log_error("harness error: %s", text);
    s_event(c, "error: %s", text);
}

/* Records a scheduler failure found by the monitor. Lock held. */
static bool s_sched_fail_locked(s_cell_t *c, const char *source)
{
    if (c->sched_failed || !c->sched_watched)
        return false;
    c->sched_failed = true;
    c->sched_fail_ms = s_ms(c);
    s_mark_end_phase(c);
    pthread_cond_broadcast(&c->cond);
    (void)source;
    return true;
}

/* The scheduler's failure in the kernel's words when it gave them, else the
 * process's exit, else the state change. Lock held. */
static void s_sched_reason(const s_cell_t *c, char *buf, size_t len)
{
    if (c->res.sched.exit.seen)
        kt_scx_exit_reason(&c->res.sched.exit, buf, len);
    else if (c->sched_exit_reason[0])
        snprintf(buf, len, "%s", c->sched_exit_reason);
    else
        snprintf(buf, len, "%s", c->sched_state_reason);
}

/* Appends sep + text to the string in buf, truncating at len - 1. */
static void s_append(char *buf, size_t len, const char *sep, const char *text)
{
    size_t off = strnlen(buf, len);
    const char *parts[2] = {off ? sep : "", text};
    for (unsigned p = 0; p < 2; p++) {
        size_t n = strlen(parts[p]);
        if (off + 1 >= len)
            break;
        if (n > len - 1 - off)
            n = len - 1 - off;
        memcpy(buf + off, parts[p], n);
        off += n;
        buf[off] = '\0';
    }
}

/* Fills c->res's verdict, reason and scheduler fields. Lock held. */
static void s_compose_locked(s_cell_t *c, const char *watchdog)
{
    kt_guest_result_t *r = &c->res;
    char checks[512] = "";
    bool checks_failed = r->report && r->report->n_failed > 0;
    if (checks_failed)
        kt_check_report_reason(r->report, &c->msg.plan, checks, sizeof(checks));
    r->reason[0] = '\0';
    if (c->sched_failed || c->kernel_failed) {
        r->verdict = KT_VERDICT_FAIL;
        if (c->sched_failed) {
            char s[512];
            s_sched_reason(c, s, sizeof(s));
            s_append(r->reason, sizeof(r->reason), "; ", s);
        }
        if (c->kernel_failed)
            s_append(r->reason, sizeof(r->reason), "; ", c->kernel_reason);
        if (checks_failed)
            s_append(r->reason, sizeof(r->reason), "; ", checks);
        if (watchdog)
            s_append(r->reason, sizeof(r->reason), "; ", watchdog);
        if (c->harness_error)
            s_append(r->reason, sizeof(r->reason), "; also: ", c->harness_reason);
    } else if (c->harness_error || watchdog) {
        r->verdict = KT_VERDICT_ERROR;
        s_append(r->reason, sizeof(r->reason), "; ",
                 c->harness_error ? c->harness_reason : watchdog);
        if (c->harness_error && watchdog)
            s_append(r->reason, sizeof(r->reason), "; ", watchdog);
    } else if (checks_failed) {
        r->verdict = KT_VERDICT_FAIL;
        s_append(r->reason, sizeof(r->reason), "; ", checks);
    } else if (c->payload_skip) {
        r->verdict = KT_VERDICT_SKIP;
        s_append(r->reason, sizeof(r->reason), "; ", c->payload_skip_reason);
    } else {
        r->verdict = KT_VERDICT_PASS;
    }
    r->phase = c->end_phase ? c->end_phase : (watchdog ? c->phase : "done");

    kt_guest_sched_info_t *s = &r->sched;
    snprintf(s->name, sizeof(s->name), "%s", c->msg.sched_name);
    if (c->msg.sched_path[0] && kt_guest_sched_state(s->state, sizeof(s->state)) < 0)
        snprintf(s->state, sizeof(s->state), "none");
    if (!c->msg.sched_path[0])
        snprintf(s->state, sizeof(s->state), "none");
    s->exited = c->sched_exited;
    s->exit_status = c->sched_exited ? kt_guest_sched_exit_code(c->sched_status) : 0;
    kt_guest_outbuf_tail(&c->sched_out, s->output, sizeof(s->output));
}

/* Waits on c->cond for at most ms. Lock held. */
static void s_cond_wait_ms(s_cell_t *c, long ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_nsec += ms * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&c->cond, &c->lock, &ts);
}

/* Sends the result once (main at the end, or the watchdog), waits briefly
 * for the host's ack and powers off. */
__attribute__((noreturn)) static void s_finish(s_cell_t *c, const char *watchdog)
{
    pthread_mutex_lock(&c->lock);
    if (c->result_sent) {
        /* The other thread is finishing: it powers off. */
        pthread_mutex_unlock(&c->lock);
        for (;;)
            pause();
    }
    /* Give the kernel a moment to say why the scheduler failed. */
    const kt_scx_exit_t *ex = &c->res.sched.exit;
    if (c->sched_failed && !watchdog) {
        uint64_t until = c->t0_ms + c->sched_fail_ms + S_REASON_GRACE_MS;
        /* An error exit prints "disabled (runtime error)" and then the
         * message that says what went wrong (the scx_bpf_error text, the
         * stalled task): wait for that line too, which follows at once. */
        while ((!ex->seen || kt_scx_exit_awaits_message(ex)) && kt_guest_sys_now_ms() < until)
            s_cond_wait_ms(c, 50);
        /* Its backtrace follows the message at once. */
        uint64_t bt_until = kt_guest_sys_now_ms() + S_BACKTRACE_GRACE_MS;
        while (kt_scx_exit_open(ex) && kt_guest_sys_now_ms() < bt_until)
            s_cond_wait_ms(c, 20);
        /* The watchdog may have finished while the lock was released. */
        if (c->result_sent) {
            pthread_mutex_unlock(&c->lock);
            for (;;)
                pause();
        }
    }
    c->result_sent = true;
    s_compose_locked(c, watchdog);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    int r = kt_guest_result_pack(&c->res, &sb);
    kt_log_info("result verdict=%s phase=%s reason='%s'", kt_verdict_name(c->res.verdict),
                c->res.phase, c->res.reason);
    pthread_mutex_unlock(&c->lock);
    if (r < 0) {
        kt_log_error("packing the result failed: %s", strerror(-r));
    } else {
        r = kt_guest_chan_send_sbuf(c->chan, &sb, S_RESULT_TIMEOUT_MS);
        if (r < 0)
            kt_log_error("sending the result (%zu bytes) failed: %s", sb.size, strerror(-r));
        else
            kt_log_info("result sent (%zu bytes)", sb.size);
    }
    msgpack_sbuffer_destroy(&sb);
    /* The supervisor reads the ack; when this is the supervisor (watchdog),
     * nobody does, so just give the host a moment. */
    uint64_t until = kt_guest_sys_now_ms() + (watchdog ? 200 : S_ACK_WAIT_MS);
    pthread_mutex_lock(&c->lock);
    while (!c->acked && kt_guest_sys_now_ms() < until) {
        pthread_mutex_unlock(&c->lock);
        kt_guest_sys_sleep_ms(20);
        pthread_mutex_lock(&c->lock);
    }
    bool acked = c->acked;
    pthread_mutex_unlock(&c->lock);
    if (!acked)
        kt_guest_sys_sleep_ms(100);
    kt_log_info("powering off (host ack: %s)", acked ? "yes" : "no");
    kt_guest_sys_poweroff();
}

/* ---- monitor thread ---- */

static void s_sched_line(const char *line, void *userdata)
{
    (void)userdata;
    kt_guest_sys_console_line("sched: ", line);
}

static void s_monitor_kmsg(s_cell_t *c)
{
    kt_kmsg_record_t rec;
    for (unsigned i = 0; i < 256; i++) {
        int r = kt_kmsg_read(c->kmsg_fd, &rec);
        if (r == -EPIPE)
            continue;
        if (r <= 0)
            return;
        enum kt_kmsg_kind kind = kt_kmsg_classify(rec.text);
        pthread_mutex_lock(&c->lock);
        bool in_exit = c->sched_watched && kt_scx_exit_feed(&c->res.sched.exit, &rec);
        pthread_mutex_unlock(&c->lock);
        if (kind == KT_KMSG_OTHER) {
            if (in_exit)
                pthread_cond_broadcast(&c->cond);
            continue;
        }
        char event[KT_GUEST_EVENT_LEN] = "";
        pthread_mutex_lock(&c->lock);
        kt_guest_result_klog(&c->res, rec.text);
        if (kind == KT_KMSG_SCHED_DISABLED && c->sched_watched) {
            /* The report itself went to kt_scx_exit_feed above. */
            if (s_sched_fail_locked(c, "kmsg"))
                snprintf(event, sizeof(event), "scheduler failure detected (kernel log): %.110s",
                         rec.text);
            pthread_cond_broadcast(&c->cond);
        } else if (in_exit) {
            pthread_cond_broadcast(&c->cond); /* its message line */
        } else if (kind == KT_KMSG_KERNEL_PROBLEM && !c->kernel_failed) {
            c->kernel_failed = true;
            snprintf(c->kernel_reason, sizeof(c->kernel_reason), "kernel: %.280s", rec.text);
            s_mark_end_phase(c);
            snprintf(event, sizeof(event), "kernel problem: %.140s", rec.text);
        }
        pthread_mutex_unlock(&c->lock);
        if (event[0])
            s_event(c, "%s", event);
    }
}

static void s_monitor_output(s_cell_t *c)
{
    if (c->sched_out_fd < 0)
        return;
    char buf[2048];
    for (unsigned i = 0; i < 64; i++) {
        ssize_t n = read(c->sched_out_fd, buf, sizeof(buf));
        if (n > 0) {
            pthread_mutex_lock(&c->lock);
            kt_guest_outbuf_feed(&c->sched_out, buf, (size_t)n, s_sched_line, NULL);
            pthread_mutex_unlock(&c->lock);
            continue;
        }
        if (n == 0) {
            /* End of stream: every writer (the scheduler) is gone. */
            pthread_mutex_lock(&c->lock);
            kt_guest_outbuf_flush(&c->sched_out, s_sched_line, NULL);
            close(c->sched_out_fd);
            c->sched_out_fd = -1;
            pthread_mutex_unlock(&c->lock);
        }
        return;
    }
}

static void s_monitor_sched(s_cell_t *c)
{
    char event[KT_GUEST_EVENT_LEN] = "";
    pthread_mutex_lock(&c->lock);
    if (c->sched_pid > 0 && !c->sched_exited) {
        int st;
        pid_t r = waitpid(c->sched_pid, &st, WNOHANG);
        if (r == c->sched_pid) {
            c->sched_exited = true;
            c->sched_status = st;
            char how[96], last[256];
            kt_guest_sched_describe_status(st, how, sizeof(how));
            kt_guest_outbuf_error_line(&c->sched_out, last, sizeof(last));
            snprintf(c->sched_exit_reason, sizeof(c->sched_exit_reason),
                     "scheduler '%.63s' %.95s%s%s%.180s", c->msg.sched_name, how,
                     c->sched_active ? "" : " before sched_ext was enabled", last[0] ? ": " : "",
                     last);
            /* A clean exit before enabling is the harness's to judge (a
             * wrong argument set); a failing exit is the scheduler's. */
            bool judged = c->sched_active || kt_guest_sched_exit_code(st) != 0;
            if (judged && s_sched_fail_locked(c, "exit"))
                snprintf(event, sizeof(event), "scheduler failure detected (process): %s", how);
            else
                snprintf(event, sizeof(event), "scheduler process %s", how);
            pthread_cond_broadcast(&c->cond);
        }
    }
    if (c->sched_active && !c->sched_failed) {
        char state[32];
        if (kt_guest_sched_state(state, sizeof(state)) == 0 && strcmp(state, "enabled") != 0) {
            snprintf(c->sched_state_reason, sizeof(c->sched_state_reason),
                     "sched_ext state went from 'enabled' to '%s'", state);
            if (s_sched_fail_locked(c, "state"))
                snprintf(event, sizeof(event), "scheduler failure detected (state): %.120s",
                         c->sched_state_reason);
        }
    }
    pthread_mutex_unlock(&c->lock);
    if (event[0])
        s_event(c, "%s", event);
}

static void *s_monitor_main(void *arg)
{
    s_cell_t *c = arg;
    int r = kt_guest_sys_make_rt(S_PRIO_MONITOR);
    if (r < 0)
        kt_log_warn("monitor: SCHED_FIFO failed: %s, ignoring", strerror(-r));
    uint64_t next_reap = kt_guest_sys_now_ms() + S_REAP_PERIOD_MS;
    for (;;) {
        struct pollfd pf[2];
        nfds_t n = 0;
        if (c->kmsg_fd >= 0)
            pf[n++] = (struct pollfd){.fd = c->kmsg_fd, .events = POLLIN};
        pthread_mutex_lock(&c->lock);
        int out_fd = c->sched_out_fd;
        bool stop = c->stop;
        pthread_mutex_unlock(&c->lock);
        if (stop)
            return NULL;
        if (out_fd >= 0)
            pf[n++] = (struct pollfd){.fd = out_fd, .events = POLLIN};
        poll(pf, n, S_MONITOR_PERIOD_MS);
        if (c->kmsg_fd >= 0)
            s_monitor_kmsg(c);
        s_monitor_output(c);
        s_monitor_sched(c);
        if (kt_guest_sys_now_ms() >= next_reap) {
            next_reap = kt_guest_sys_now_ms() + S_REAP_PERIOD_MS;
            pthread_mutex_lock(&c->lock);
            size_t nk = c->n_keep + 2;
            pid_t *keep = malloc(nk * sizeof(*keep));
            if (keep) {
                if (c->n_keep)
                    memcpy(keep, c->keep, c->n_keep * sizeof(*keep));
                keep[c->n_keep] = c->sched_exited ? 0 : c->sched_pid;
                keep[c->n_keep + 1] = c->payload_pid;
            }
            pthread_mutex_unlock(&c->lock);
            if (keep) {
                kt_guest_sys_reap_orphans(keep, nk);
                free(keep);
            }
        }
    }
}

/* ---- supervisor thread: heartbeats, host messages, watchdog ---- */

static void s_supervisor_msg(s_cell_t *c, const void *body, size_t len)
{
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    char type[16] = "";
    if (kt_mp_unpack_one(body, len, &up) == 0)
        kt_chanmsg_type(&up.data, type, sizeof(type));
    msgpack_unpacked_destroy(&up);
    if (strcmp(type, "ack") == 0) {
        pthread_mutex_lock(&c->lock);
        c->acked = true;
        pthread_cond_broadcast(&c->cond);
        pthread_mutex_unlock(&c->lock);
    } else if (strcmp(type, "shutdown") == 0) {
        kt_log_warn("host asked for shutdown during the cell: powering off");
        kt_guest_sys_poweroff();
    } else {
        kt_log_warn("ignoring a host message of type '%s' (%zu bytes)", type, len);
    }
}

static void *s_supervisor_main(void *arg)
{
    s_cell_t *c = arg;
    int r = kt_guest_sys_make_rt(S_PRIO_SUPERVISOR);
    if (r < 0)
        kt_log_warn("supervisor: SCHED_FIFO failed: %s, ignoring", strerror(-r));
    uint32_t hb = c->msg.heartbeat_ms ? c->msg.heartbeat_ms : 1000;
    uint64_t next_hb = kt_guest_sys_now_ms();
    bool can_read = true;
    for (;;) {
        uint64_t now = kt_guest_sys_now_ms();
        if (now >= next_hb) {
            msgpack_sbuffer sb;
            msgpack_sbuffer_init(&sb);
            if (kt_guest_hb_pack(kt_guest_sys_uptime_ms(), &sb) == 0)
                kt_guest_chan_send_sbuf(c->chan, &sb, hb);
            msgpack_sbuffer_destroy(&sb);
            next_hb = now + hb;
        }
        pthread_mutex_lock(&c->lock);
        bool overrun = !c->result_sent && c->deadline_ms && now > c->deadline_ms;
        char why[160] = "";
        if (overrun)
            snprintf(why, sizeof(why), "watchdog: phase '%s' overran its bound of %u ms", c->phase,
                     c->bound_ms);
        pthread_mutex_unlock(&c->lock);
        if (overrun) {
            kt_log_error("%s", why);
            s_finish(c, why);
        }
        now = kt_guest_sys_now_ms();
        unsigned wait = next_hb > now ? (unsigned)(next_hb - now) : 0;
        if (wait > 100)
            wait = 100;
        if (!can_read) {
            kt_guest_sys_sleep_ms(wait);
            continue;
        }
        void *body;
        size_t len;
        r = kt_guest_chan_recv(c->chan, 64 * 1024, wait, &body, &len);
        if (r > 0) {
            s_supervisor_msg(c, body, len);
            free(body);
        } else if (r < 0) {
            kt_log_error("reading the channel failed: %s; no more host messages are read",
                         strerror(-r));
            can_read = false;
        }
    }
    return NULL;
}

/* ---- the cell ---- */

/* Waits until until_ms (monotonic) or a scheduler failure; true on failure. */
static bool s_wait_or_fail(s_cell_t *c, uint64_t until_ms)
{
    pthread_mutex_lock(&c->lock);
    while (!c->sched_failed && kt_guest_sys_now_ms() < until_ms) {
        uint64_t left = until_ms - kt_guest_sys_now_ms();
        s_cond_wait_ms(c, left > 50 ? 50 : (long)left);
    }
    bool failed = c->sched_failed;
    pthread_mutex_unlock(&c->lock);
    return failed;
}

/* sched_ext (6.12) runs ops.init() on a helper kthread created at the first
 * enable, on whatever CPU that kthread starts on; a scheduler whose init must
 * run on CPU 0 (scx_central's central CPU) then fails at random. New
 * kthreads start where kthreadd may run, so kthreadd is held on CPU 0 while
 * the scheduler enables, and released afterwards (kthread() widens each new
 * kthread's own mask again). */
static void s_kthreadd_affinity(bool cpu0_only)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    if (cpu0_only) {
        CPU_SET(0, &set);
    } else {
        long n = sysconf(_SC_NPROCESSORS_CONF);
        for (long i = 0; i < n && i < CPU_SETSIZE; i++)
            CPU_SET((int)i, &set);
    }
    if (sched_setaffinity(2, sizeof(set), &set) < 0)
        kt_log_debug("kthreadd affinity: %m, ignoring");
}

static int s_sched_start_enable(s_cell_t *c);

/* Starts the scheduler and waits for sched_ext to enable it. 0 to go on. */
static int s_sched_start(s_cell_t *c)
{
    bool scx = c->msg.sched_path[0] != '\0';
    if (scx) {
        s_kthreadd_affinity(true);
        s_event(c, "kthreadd held on CPU 0 while the scheduler enables (ops.init runs on a new "
                   "sched_ext helper kthread)");
    }
    int r = s_sched_start_enable(c);
    if (scx)
        s_kthreadd_affinity(false);
    return r;
}

static int s_sched_start_enable(s_cell_t *c)
{
    const kt_cell_msg_t *m = &c->msg;
    s_set_phase(c, "sched_start", (uint64_t)m->sched_enable_timeout_ms + m->settle_ms + 10000);
    if (!m->sched_path[0]) {
        s_event(c, "scheduler '%s': kernel default, nothing to start", m->sched_name);
        return 0;
    }
    if (!kt_guest_sched_ext_available()) {
        s_harness_error(c, "kernel has no sched_ext (no %s): cannot run scheduler '%s'",
                        KT_GUEST_SCHED_EXT_DIR, m->sched_name);
        return -ENOTSUP;
    }
    if (access(m->sched_path, X_OK) < 0) {
        s_harness_error(c, "scheduler binary '%s' is missing or not executable: %s", m->sched_path,
                        strerror(errno));
        return -ENOENT;
    }
    char state[32] = "";
    kt_guest_sched_state(state, sizeof(state));
    if (strcmp(state, "disabled") != 0) {
        s_harness_error(c, "sched_ext is '%s' before the scheduler started (expected 'disabled')",
                        state);
        return -EBUSY;
    }
    const char *args[KT_SCHED_ARGS_MAX];
    for (unsigned i = 0; i < m->n_sched_args; i++)
        args[i] = m->sched_args[i];
    pid_t pid;
    int out_fd;
    uint64_t spawn_ms = kt_guest_sys_now_ms();
    int r = kt_guest_sched_spawn(m->sched_path, args, m->n_sched_args, &pid, &out_fd);
    if (r < 0) {
        s_harness_error(c, "starting scheduler '%s': %s", m->sched_path, strerror(-r));
        return r;
    }
    pthread_mutex_lock(&c->lock);
    c->sched_pid = pid;
    c->sched_out_fd = out_fd;
    c->sched_watched = true;
    c->sched_spawn_ms = spawn_ms;
    pthread_mutex_unlock(&c->lock);
    char argline[256] = "";
    for (unsigned i = 0; i < m->n_sched_args; i++)
        s_append(argline, sizeof(argline), " ", m->sched_args[i]);
    s_event(c, "scheduler '%s' started: pid %d, %s %s", m->sched_name, (int)pid, m->sched_path,
            argline);

    uint64_t deadline = spawn_ms + m->sched_enable_timeout_ms;
    for (;;) {
        if (kt_guest_sched_state(state, sizeof(state)) == 0 && strcmp(state, "enabled") == 0)
            break;
        pthread_mutex_lock(&c->lock);
        bool failed = c->sched_failed, exited = c->sched_exited;
        char exit_reason[384];
        snprintf(exit_reason, sizeof(exit_reason), "%s", c->sched_exit_reason);
        pthread_mutex_unlock(&c->lock);
        if (failed)
            return -ECANCELED;
        if (exited) {
            s_harness_error(c, "%s (without an error status)", exit_reason);
            return -ECANCELED;
        }
        if (kt_guest_sys_now_ms() >= deadline) {
            s_harness_error(c, "sched_ext did not enable scheduler '%s' within %u ms (state '%s')",
                            m->sched_name, m->sched_enable_timeout_ms, state);
            return -ETIMEDOUT;
        }
        s_wait_or_fail(c, kt_guest_sys_now_ms() + 20);
    }
    double enable_ms = (double)(kt_guest_sys_now_ms() - spawn_ms);
    char ops[64] = "";
    kt_guest_sched_ops(ops, sizeof(ops));
    pthread_mutex_lock(&c->lock);
    c->sched_active = true;
    c->res.sched.enable_ms = enable_ms;
    c->res.durations.sched_enable_ms = enable_ms;
    snprintf(c->res.sched.ops, sizeof(c->res.sched.ops), "%s", ops);
    pthread_mutex_unlock(&c->lock);
    s_event(c, "sched_ext enabled: ops '%s' after %.0f ms", ops, enable_ms);

    uint64_t settle_start = kt_guest_sys_now_ms();
    bool failed = s_wait_or_fail(c, settle_start + m->settle_ms);
    pthread_mutex_lock(&c->lock);
    c->res.durations.settle_ms = (double)(kt_guest_sys_now_ms() - settle_start);
    pthread_mutex_unlock(&c->lock);
    if (failed)
        return -ECANCELED;
    s_event(c, "settled for %u ms", m->settle_ms);
    return 0;
}

typedef struct s_workers {
    unsigned n;
    kt_wl_slot_t *slots;
    pid_t *pids;
    unsigned *cgroup_of;
    unsigned *index_of;
    bool *stopped_by_fault;
    bool *reaped;
    bool *collected;   /* stopped and collected mid-run by a step */
    kt_worker_stats_t *stats;
    kt_sim_t *sim;     /* what is in force (kt_timeline.h) */
    /* On-CPU ns per phase (schedstat read at each phase boundary), and the
     * reading the current phase started from; copied into stats at the end. */
    uint64_t (*phase_cpu)[KT_MAX_PHASES];
    uint64_t *cpu_mark;
    unsigned phase;
    char mems[64];
} s_workers_t;

static void s_workers_free(s_workers_t *w)
{
    kt_workload_slots_free(&w->slots, w->n);
    free(w->pids);
    free(w->cgroup_of);
    free(w->index_of);
    free(w->stopped_by_fault);
    free(w->reaped);
    free(w->collected);
    free(w->sim);
    free(w->phase_cpu);
    free(w->cpu_mark);
    /* stats is handed to the result. */
}

static void s_keep_pids(s_cell_t *c, const s_workers_t *w)
{
    pthread_mutex_lock(&c->lock);
    c->keep = w->pids;
    c->n_keep = w->n;
    pthread_mutex_unlock(&c->lock);
}

/* The child side of a worker: policy, nice, then the workload. */
__attribute__((noreturn)) static void s_worker_child(const kt_plan_cgroup_t *cg,
                                                     kt_wl_slot_t *slots, unsigned i,
                                                     unsigned index)
{
    /* "kt:<cgroup>:<n>" so kernel messages (stalls) name the worker. */
    char comm[16];
    snprintf(comm, sizeof(comm), "kt:%.8s:%u", cg->name, index);
    prctl(PR_SET_NAME, comm, 0, 0, 0);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    struct sched_param sp = {.sched_priority = 0};
    if (cg->policy == KT_POLICY_BATCH)
        sched_setscheduler(0, SCHED_BATCH, &sp);
    else if (cg->policy == KT_POLICY_IDLE)
        sched_setscheduler(0, SCHED_IDLE, &sp);
    else if (cg->policy == KT_POLICY_FIFO || cg->policy == KT_POLICY_RR) {
        sp.sched_priority = (int)cg->rt_priority;
        if (sched_setscheduler(0, cg->policy == KT_POLICY_FIFO ? SCHED_FIFO : SCHED_RR, &sp) < 0)
            snprintf(slots[i].error, sizeof(slots[i].error), "sched_setscheduler %s %u: %s",
                     kt_sched_policy_name(cg->policy), cg->rt_priority, strerror(errno));
    }
    if (cg->nice)
        setpriority(PRIO_PROCESS, 0, cg->nice);
    _exit(kt_workload_main(slots, i));
}

static void s_kill_all(s_cell_t *c, s_workers_t *w)
{
    for (unsigned i = 0; i < w->n; i++) {
        if (w->pids[i] > 0 && !w->reaped[i]) {
            kill(w->pids[i], SIGCONT);
            kill(w->pids[i], SIGKILL);
        }
    }
    uint64_t until = kt_guest_sys_now_ms() + 3000;
    for (unsigned i = 0; i < w->n; i++) {
        while (w->pids[i] > 0 && !w->reaped[i]) {
            int st;
            pid_t r = waitpid(w->pids[i], &st, WNOHANG);
            if (r == w->pids[i] || (r < 0 && errno == ECHILD))
                w->reaped[i] = true;
            else if (kt_guest_sys_now_ms() >= until)
                break;
            else
                kt_guest_sys_sleep_ms(10);
        }
    }
    (void)c;
}

static int s_set_affinity(s_cell_t *c, s_workers_t *w, unsigned i);

/* Moves slot i into the cgroup the sim has it in, and applies the
 * affinity the sim gives it (if any). */
static int s_place(s_cell_t *c, s_workers_t *w, unsigned i)
{
    const kt_plan_t *plan = &c->msg.plan;
    const char *cg = plan->cgroups[w->sim->slot_cg[i]].name;
    char why[384];
    int r = kt_guest_cgroup_attach(KT_GUEST_CGROUP_ROOT, cg, w->pids[i], why, sizeof(why));
    if (r < 0) {
        s_harness_error(c, "placing worker %u of '%s' in cgroup '%s': %s", w->index_of[i],
                        plan->cgroups[w->cgroup_of[i]].name, cg, why);
        return r;
    }
    return s_set_affinity(c, w, i);
}

/* sched_setaffinity to the sim's mask for slot i, when it has one. */
static int s_set_affinity(s_cell_t *c, s_workers_t *w, unsigned i)
{
    if (!w->sim->slot_has_user[i])
        return 0;
    cpu_set_t set;
    CPU_ZERO(&set);
    for (unsigned cpu = 0; cpu < KT_MAX_CPUS && cpu < CPU_SETSIZE; cpu++)
        if (kt_cpumask_test(&w->sim->slot_user[i], cpu))
            CPU_SET(cpu, &set);
    if (sched_setaffinity(w->pids[i], sizeof(set), &set) < 0) {
        char list[KT_MAX_CPUS * 4];
        kt_cpumask_format(&w->sim->slot_user[i], list, sizeof(list));
        int r = -errno;
        s_harness_error(c, "sched_setaffinity(%s) of worker %u of '%s' (pid %d): %s", list,
                        w->index_of[i], c->msg.plan.cgroups[w->cgroup_of[i]].name,
                        (int)w->pids[i], strerror(-r));
        return r;
    }
    return 0;
}

/* Forks the workers, places them in their cgroups, and parks them. */
static int s_workers_start(s_cell_t *c, s_workers_t *w)
{
    const kt_plan_t *plan = &c->msg.plan;
    w->n = kt_plan_total_slots(plan);
    if (w->n == 0 && kt_payload_present(&plan->payload))
        return 0; /* the payload is the whole workload */
    if (w->n == 0) {
        s_harness_error(c, "the plan has no workers");
        return -EINVAL;
    }
    w->slots = kt_workload_slots_new(w->n);
    w->pids = calloc(w->n, sizeof(*w->pids));
    w->cgroup_of = calloc(w->n, sizeof(*w->cgroup_of));
    w->index_of = calloc(w->n, sizeof(*w->index_of));
    w->stopped_by_fault = calloc(w->n, sizeof(*w->stopped_by_fault));
    w->reaped = calloc(w->n, sizeof(*w->reaped));
    w->collected = calloc(w->n, sizeof(*w->collected));
    w->stats = calloc(w->n, sizeof(*w->stats));
    w->sim = malloc(sizeof(*w->sim));
    w->phase_cpu = calloc(w->n, sizeof(*w->phase_cpu));
    w->cpu_mark = calloc(w->n, sizeof(*w->cpu_mark));
    if (!w->slots || !w->pids || !w->cgroup_of || !w->index_of || !w->stopped_by_fault ||
        !w->reaped || !w->collected || !w->stats || !w->sim || !w->phase_cpu || !w->cpu_mark) {
        s_harness_error(c, "allocating %u worker slots failed", w->n);
        return -ENOMEM;
    }
    unsigned i = 0;
    for (unsigned cg = 0; cg < plan->n_cgroups; cg++) {
        const kt_plan_cgroup_t *pc = &plan->cgroups[cg];
        /* The cgroup's workers, then its spawn slots (kt_timeline.h). */
        for (unsigned k = 0; k < pc->workers + pc->spawn_slots; k++, i++) {
            w->cgroup_of[i] = cg;
            w->index_of[i] = k;
            /* Every slot before any fork (a ping-pong initiator prepares its
             * pair, the responder's call verifies). */
            int r = kt_workload_prepare(w->slots, i, pc->work, cg, k);
            if (r < 0) {
                s_harness_error(c, "preparing worker %u of cgroup '%s': %s", k, pc->name,
                                strerror(-r));
                return r;
            }
        }
    }
    s_keep_pids(c, w);
    for (i = 0; i < w->n; i++) {
        const kt_plan_cgroup_t *pc = &plan->cgroups[w->cgroup_of[i]];
        pid_t pid = fork();
        if (pid < 0) {
            s_harness_error(c, "fork of worker %u of cgroup '%s' failed: %s", w->index_of[i],
                            pc->name, strerror(errno));
            return -errno;
        }
        if (pid == 0)
            s_worker_child(pc, w->slots, i, w->index_of[i]);
        pthread_mutex_lock(&c->lock);
        w->pids[i] = pid;
        pthread_mutex_unlock(&c->lock);
        w->slots[i].pid = pid;
    }
    /* Those running from the release go to their cgroups now (with their
     * affinity); the others park in ktstr-init's until a step starts them. */
    kt_sim_init(w->sim, plan);
    unsigned placed = 0;
    for (i = 0; i < w->n; i++) {
        if (w->sim->slot_state[i] != KT_SLOT_RUNNING)
            continue;
        int r = s_place(c, w, i);
        if (r < 0)
            return r;
        placed++;
    }
    s_event(c, "%u workers forked, %u placed in their cgroups%s", w->n, placed,
            placed < w->n ? " (the others wait for a step)" : "");

    /* Wait for them to park, bounded: a scheduler that starves tasks may
     * keep some from ever parking; they are released all the same and the
     * checks judge them. */
    uint64_t until = kt_guest_sys_now_ms() + 5000 + 10ull * w->n;
    unsigned ready = 0;
    for (;;) {
        ready = 0;
        for (i = 0; i < w->n; i++)
            ready += atomic_load(&w->slots[i].state) >= KT_WL_READY;
        if (ready == w->n || kt_guest_sys_now_ms() >= until)
            break;
        if (s_wait_or_fail(c, kt_guest_sys_now_ms() + 10))
            return -ECANCELED;
    }
    if (ready < w->n)
        s_event(c, "%u of %u workers parked within the bound; releasing all", ready, w->n);
    return 0;
}

static int s_worker_slot(const s_workers_t *w, unsigned cgroup, unsigned index)
{
    for (unsigned i = 0; i < w->n; i++)
        if (w->cgroup_of[i] == cgroup && w->index_of[i] == index)
            return (int)i;
    return -1;
}

static void s_apply_fault(s_cell_t *c, s_workers_t *w, const kt_plan_fault_t *f)
{
    int i = s_worker_slot(w, f->cgroup, f->worker);
    if (i < 0 || w->pids[i] <= 0) {
        s_harness_error(c, "fault names no worker: cgroup %u worker %u", f->cgroup, f->worker);
        return;
    }
    if (kill(w->pids[i], SIGSTOP) < 0) {
        s_harness_error(c, "fault: SIGSTOP of pid %d failed: %s", (int)w->pids[i], strerror(errno));
        return;
    }
    w->stopped_by_fault[i] = true;
    s_event(c, "fault: SIGSTOP worker %u of cgroup '%s' (pid %d)", f->worker,
            c->msg.plan.cgroups[f->cgroup].name, (int)w->pids[i]);
}

/* ---- steps ---- */

/* A worker's on-CPU ns so far (/proc/PID/schedstat's first field); 0 when
 * unreadable. */
static uint64_t s_cpu_ns(pid_t pid)
{
    char path[48], buf[128];
    snprintf(path, sizeof(path), "/proc/%d/schedstat", (int)pid);
    if (kt_guest_sys_read_file(path, buf, sizeof(buf)) <= 0)
        return 0;
    return strtoull(buf, NULL, 10);
}

/* Closes the current phase's CPU time for slot i (it is running now). */
static void s_phase_cpu_close(s_workers_t *w, unsigned i)
{
    uint64_t now = s_cpu_ns(w->pids[i]);
    if (now >= w->cpu_mark[i] && w->phase < KT_MAX_PHASES)
        w->phase_cpu[i][w->phase] += now - w->cpu_mark[i];
    w->cpu_mark[i] = now;
}

/* A phase boundary: every running worker's CPU time so far goes to the
 * phase that ends. */
static void s_phase_cpu_boundary(s_workers_t *w, unsigned next_phase)
{
    for (unsigned i = 0; i < w->n; i++)
        if (w->sim->slot_state[i] == KT_SLOT_RUNNING)
            s_phase_cpu_close(w, i);
    w->phase = next_phase;
}

/* Stops slot i mid-run (a stop or remove_cgroup op), collects its
 * telemetry and reaps it. */
static void s_stop_collect(s_cell_t *c, s_workers_t *w, unsigned i)
{
    const kt_plan_t *plan = &c->msg.plan;
    const char *cg = plan->cgroups[w->cgroup_of[i]].name;
    s_phase_cpu_close(w, i);
    kt_workload_stop(w->slots, i);
    if (kt_workload_wait(&w->slots[i], KT_WL_DONE, 3000) < 0) {
        kill(w->pids[i], SIGKILL);
        s_event(c, "worker %u of cgroup '%s' (pid %d) did not stop in time: killed",
                w->index_of[i], cg, (int)w->pids[i]);
    }
    int r = kt_workload_collect(&w->slots[i], &w->stats[i]);
    w->stats[i].cgroup = w->cgroup_of[i];
    w->stats[i].index = w->index_of[i];
    w->stats[i].pid = w->pids[i];
    if (r < 0)
        s_harness_error(c, "collecting worker %u of cgroup '%s' (pid %d): %s", w->index_of[i], cg,
                        (int)w->pids[i], strerror(-r));
    w->collected[i] = true;
    int st;
    uint64_t until = kt_guest_sys_now_ms() + 2000;
    for (;;) {
        pid_t p = waitpid(w->pids[i], &st, WNOHANG);
        if (p == w->pids[i] || (p < 0 && errno != EINTR)) {
            w->reaped[i] = p == w->pids[i];
            break;
        }
        if (kt_guest_sys_now_ms() >= until)
            break;
        kt_guest_sys_sleep_ms(2);
    }
}

/* One op: the sim says what is in force after it; ktstr-init makes the
 * system match (cgroups, cpusets, tasks, affinities). */
static void s_apply_op(s_cell_t *c, s_workers_t *w, unsigned k, unsigned o, unsigned app,
                       unsigned phase)
{
    const kt_plan_t *plan = &c->msg.plan;
    const kt_plan_op_t *op = &plan->steps[k].ops[o];
    kt_sim_t *sim = w->sim;
    const char *opn = kt_op_kind_name(op->kind);
    const char *cgn = plan->cgroups[op->cgroup].name;
    /* The state before, to see what changed. */
    uint8_t before_state[KT_MAX_WORKERS], before_cg[KT_MAX_WORKERS];
    memcpy(before_state, sim->slot_state, sizeof(before_state));
    memcpy(before_cg, sim->slot_cg, sizeof(before_cg));
    bool cg_had[KT_MAX_CGROUPS];
    kt_cpumask_t cg_own[KT_MAX_CGROUPS];
    memcpy(cg_had, sim->cg_has_cpuset, sizeof(cg_had));
    memcpy(cg_own, sim->cg_own, sizeof(cg_own));
    kt_sim_apply(sim, op, app);

    char why[384], detail[128] = "";
    if (s_skip_op[0] && strcmp(s_skip_op, opn) == 0) {
        kt_log_warn("test hook ktstr.skip_op=%s: steps[%u] %s '%s' not applied", opn, k, opn,
                    cgn);
        pthread_mutex_lock(&c->lock);
        kt_guest_result_stimulus(&c->res, s_ms(c), k, phase, opn, cgn,
                                 "steps[%u] %s '%s': NOT applied (test hook ktstr.skip_op)", k,
                                 opn, cgn);
        pthread_mutex_unlock(&c->lock);
        return;
    }
    int r = 0;
    if (op->kind == KT_OP_ADD_CGROUP) {
        r = kt_guest_cgroup_create(KT_GUEST_CGROUP_ROOT, plan, op->cgroup, w->mems, why,
                                   sizeof(why));
        if (r < 0) {
            s_harness_error(c, "steps[%u] add_cgroup '%s': %s", k, cgn, why);
            return;
        }
    }
    /* cpusets that changed (set, clear, swap). */
    for (unsigned g = 0; g < plan->n_cgroups; g++) {
        if (op->kind == KT_OP_ADD_CGROUP || sim->cg_state[g] != KT_CG_ALIVE)
            continue;
        if (cg_had[g] == sim->cg_has_cpuset[g] &&
            (!cg_had[g] || memcmp(&cg_own[g], &sim->cg_own[g], sizeof(cg_own[g])) == 0))
            continue;
        r = kt_guest_cgroup_set_cpus(KT_GUEST_CGROUP_ROOT, plan->cgroups[g].name,
                                     sim->cg_has_cpuset[g] ? &sim->cg_own[g] : NULL, w->mems, why,
                                     sizeof(why));
        if (r < 0) {
            s_harness_error(c, "steps[%u] %s: %s", k, opn, why);
            return;
        }
        char list[KT_MAX_CPUS * 4] = "";
        if (sim->cg_has_cpuset[g])
            kt_cpumask_format(&sim->cg_own[g], list, sizeof(list));
        size_t off = strlen(detail);
        snprintf(detail + off, sizeof(detail) - off, "%s'%s' cpus=%s", off ? ", " : "",
                 plan->cgroups[g].name, list[0] ? list : "(parent's)");
    }
    unsigned started = 0, stopped = 0, moved = 0, pinned = 0;
    for (unsigned i = 0; i < w->n && i < sim->n_slots; i++) {
        uint8_t now = sim->slot_state[i];
        if (before_state[i] == KT_SLOT_PENDING && now == KT_SLOT_RUNNING) {
            if (s_place(c, w, i) < 0)
                return;
            w->cpu_mark[i] = s_cpu_ns(w->pids[i]);
            kt_workload_release(&w->slots[i]);
            started++;
        } else if (before_state[i] == KT_SLOT_RUNNING && now == KT_SLOT_STOPPED) {
            s_stop_collect(c, w, i);
            stopped++;
        } else if (now == KT_SLOT_RUNNING && before_cg[i] != sim->slot_cg[i]) {
            r = kt_guest_cgroup_attach(KT_GUEST_CGROUP_ROOT, plan->cgroups[sim->slot_cg[i]].name,
                                       w->pids[i], why, sizeof(why));
            if (r < 0) {
                s_harness_error(c, "steps[%u] move_tasks: %s", k, why);
                return;
            }
            moved++;
        } else if (op->kind == KT_OP_SET_AFFINITY && now == KT_SLOT_RUNNING &&
                   sim->slot_cg[i] == op->cgroup) {
            if (s_set_affinity(c, w, i) < 0)
                return;
            pinned++;
        }
    }
    if (op->kind == KT_OP_REMOVE_CGROUP) {
        r = kt_guest_cgroup_remove(KT_GUEST_CGROUP_ROOT, cgn, why, sizeof(why));
        if (r < 0) {
            s_harness_error(c, "steps[%u] remove_cgroup: %s", k, why);
            return;
        }
    }
    size_t off = strlen(detail);
    if (started)
        off += (size_t)snprintf(detail + off, sizeof(detail) - off, "%s%u started",
                                off ? ", " : "", started);
    if (stopped && off < sizeof(detail))
        off += (size_t)snprintf(detail + off, sizeof(detail) - off, "%s%u stopped",
                                off ? ", " : "", stopped);
    if (moved && off < sizeof(detail))
        off += (size_t)snprintf(detail + off, sizeof(detail) - off, "%s%u moved to '%s'",
                                off ? ", " : "", moved, plan->cgroups[op->target].name);
    if (pinned && off < sizeof(detail))
        snprintf(detail + off, sizeof(detail) - off, "%s%u given %s affinity", off ? ", " : "",
                 pinned, kt_affinity_kind_name(op->affinity));
    pthread_mutex_lock(&c->lock);
    kt_guest_result_stimulus(&c->res, s_ms(c), k, phase, opn, cgn, "steps[%u]%s%.0u %s '%s': %s",
                             k, app ? " loop " : "", app, opn, cgn, detail[0] ? detail : "done");
    pthread_mutex_unlock(&c->lock);
    kt_log_info("stimulus steps[%u] %s '%s' (phase %u): %s", k, opn, cgn, phase, detail);
}

/* Applies step k's ops (application app of a loop) between the workers'
 * phase marks: no checkpoint straddling the change counts in a phase. */
static void s_apply_step(s_cell_t *c, s_workers_t *w, unsigned k, unsigned app)
{
    const kt_plan_step_t *st = &c->msg.plan.steps[k];
    kt_workload_phase_begin_change(w->slots);
    if (app == 0)
        s_phase_cpu_boundary(w, k + 1);
    for (unsigned o = 0; o < st->n_ops; o++)
        s_apply_op(c, w, k, o, app, k + 1);
    kt_workload_phase_set(w->slots, k + 1);
}

/* ---- payload cells ---- */

/* Starts the payload (after the workers' release). 0, or -errno after a
 * harness error. */
static int s_payload_begin(s_cell_t *c)
{
    const kt_payload_spec_t *spec = &c->msg.plan.payload;
    char why[384];
    kt_guest_payload_t *p = NULL;
    int r = kt_guest_payload_start(spec, KT_GUEST_PAYLOAD_DIR, &p, why, sizeof(why));
    if (r < 0) {
        s_harness_error(c, "starting the payload: %s", why);
        return r;
    }
    pthread_mutex_lock(&c->lock);
    c->payload = p;
    c->payload_pid = kt_guest_payload_pid(p);
    pthread_mutex_unlock(&c->lock);
    char argline[160] = "";
    for (unsigned i = 0; i < spec->n_args; i++)
        s_append(argline, sizeof(argline), " ", kt_payload_arg(spec, i));
    s_event(c, "payload '%s' started: pid %d, args '%s', timeout %u ms", spec->name,
            (int)c->payload_pid, argline, spec->timeout_ms);
    return 0;
}

/* The run ended: a payload still running is killed (its timeout: a harness
 * error; a scheduler failure: the failure is the verdict), then its output
 * is read. */
static void s_payload_end(s_cell_t *c, bool sched_failed)
{
    kt_guest_payload_t *p = c->payload;
    const kt_payload_spec_t *spec = &c->msg.plan.payload;
    const kt_payload_outcome_t *o = kt_guest_payload_outcome(p);
    if (!o->exited && kt_guest_payload_poll(p, 0) == 0) {
        kt_guest_payload_kill(p, !sched_failed);
        if (!sched_failed)
            s_harness_error(c, "payload '%s' timed out after %u ms: killed", spec->name,
                            spec->timeout_ms);
        else
            s_event(c, "scheduler failed: payload '%s' killed", spec->name);
    }
    kt_guest_payload_finish(p);
    char how[128];
    kt_guest_payload_describe(o, spec->timeout_ms, how, sizeof(how));
    s_event(c, "payload '%s' %s after %.0f ms, %llu bytes of output, %u metrics%s%s", spec->name,
            how, o->wall_ms, (unsigned long long)o->output_bytes, o->n_metrics,
            spec->judge == KT_PAYLOAD_JUDGE_TAP ? ", TAP: " : "",
            spec->judge == KT_PAYLOAD_JUDGE_TAP ? kt_payload_tap_status_name(o->tap.status) : "");
    pthread_mutex_lock(&c->lock);
    c->payload_pid = 0;
    c->res.payload = p;
    pthread_mutex_unlock(&c->lock);
}

/* The payload's checks into the report; its TAP verdicts that are not
 * checks: no result line is a harness error, a skip makes the cell a skip
 * (when nothing else failed). Returns the failed checks it added. */
static int s_payload_judge(s_cell_t *c, kt_check_report_t *report)
{
    const kt_payload_spec_t *spec = &c->msg.plan.payload;
    const kt_payload_outcome_t *o = kt_guest_payload_outcome(c->payload);
    int failed = kt_checks_evaluate_payload(spec, o, report);
    if (spec->judge != KT_PAYLOAD_JUDGE_TAP || !o->started || o->timed_out)
        return failed;
    const char *test = spec->tap_test[0] ? spec->tap_test : NULL;
    if (o->tap.status == KT_PAYLOAD_TAP_NONE) {
        char how[128];
        kt_guest_payload_describe(o, spec->timeout_ms, how, sizeof(how));
        s_harness_error(c, "payload '%s' printed no TAP result line%s%s%s (it %s)", spec->name,
                        test ? " for '" : "", test ? test : "", test ? "'" : "", how);
    } else if (o->tap.status == KT_PAYLOAD_TAP_SKIP) {
        pthread_mutex_lock(&c->lock);
        c->payload_skip = true;
        snprintf(c->payload_skip_reason, sizeof(c->payload_skip_reason), "skipped: %.200s",
                 o->tap.line);
        pthread_mutex_unlock(&c->lock);
    }
    return failed;
}

/* The BPF programs' cost over the workload phase, into the result. */
static void s_bpf_end(s_cell_t *c)
{
    kt_guest_bpf_t *b = &c->bpf;
    if (kt_guest_bpf_end(b) < 0 && b->have_before)
        kt_log_warn("bpf: %s, ignoring", b->error);
    pthread_mutex_lock(&c->lock);
    c->res.bpf = b;
    pthread_mutex_unlock(&c->lock);
    if (b->measured)
        s_event(c, "bpf: %u programs, %u struct_ops: %llu calls, %.0f ns per call", b->n_progs,
                b->n_struct_ops, (unsigned long long)b->struct_ops_calls,
                kt_guest_bpf_struct_ops_ns_per_call(b));
}

/* Releases, runs for the duration (or until the scheduler fails) with the
 * timed faults, stops and collects the workers. */
static void s_workers_run(s_cell_t *c, s_workers_t *w)
{
    const kt_plan_t *plan = &c->msg.plan;
    for (unsigned f = 0; f < plan->n_faults; f++)
        if (plan->faults[f].at_ms == 0)
            s_apply_fault(c, w, &plan->faults[f]);

    /* A payload cell runs until its payload ends (at most its timeout) and,
     * with workers beside it, for at least the duration. */
    bool payload = kt_payload_present(&plan->payload);
    uint32_t run_ms = payload && plan->payload.timeout_ms > plan->duration_ms
                          ? plan->payload.timeout_ms
                          : plan->duration_ms;
    uint64_t margin = run_ms / 4 > 5000 ? run_ms / 4 : 5000;
    s_set_phase(c, "run", run_ms + margin);
    if (kt_guest_bpf_begin(&c->bpf) < 0)
        kt_log_warn("bpf: %s, ignoring", c->bpf.error);
    uint64_t release_ms = kt_guest_sys_now_ms();
    unsigned released = 0;
    if (w->n)
        kt_workload_phase_set(w->slots, 0);
    for (unsigned i = 0; i < w->n; i++) {
        if (w->sim->slot_state[i] != KT_SLOT_RUNNING)
            continue;
        w->cpu_mark[i] = s_cpu_ns(w->pids[i]);
        kt_workload_release(&w->slots[i]);
        released++;
    }
    s_event(c, "released %u workers for %u ms%s", released, plan->duration_ms,
            plan->n_steps ? ", steps follow" : "");

    uint64_t end_ms = release_ms + run_ms;
    uint64_t payload_deadline = release_ms + plan->payload.timeout_ms;
    bool payload_running = payload && s_payload_begin(c) == 0;
    if (payload && !payload_running)
        end_ms = release_ms;
    bool done_fault[KT_MAX_FAULTS] = {false};
    bool failed = false;
    unsigned step = 0, app = 0; /* the next step, and its next application */
    for (;;) {
        uint64_t next = end_ms;
        /* Steps due now, in order (a loop's applications one by one). */
        while (w->n && step < plan->n_steps) {
            const kt_plan_step_t *st = &plan->steps[step];
            uint64_t due = release_ms + st->at_ms + (uint64_t)app * st->loop_ms;
            if (due > kt_guest_sys_now_ms()) {
                if (due < next)
                    next = due;
                break;
            }
            s_apply_step(c, w, step, app);
            if (++app >= kt_step_applications(st)) {
                step++;
                app = 0;
            }
        }
        for (unsigned f = 0; f < plan->n_faults; f++) {
            const kt_plan_fault_t *pf = &plan->faults[f];
            if (pf->at_ms == 0 || done_fault[f])
                continue;
            if (release_ms + pf->at_ms <= kt_guest_sys_now_ms()) {
                done_fault[f] = true;
                s_apply_fault(c, w, pf);
            } else if (release_ms + pf->at_ms < next) {
                next = release_ms + pf->at_ms;
            }
        }
        if (kt_guest_sys_now_ms() >= end_ms)
            break;
        if (payload_running) {
            uint64_t now = kt_guest_sys_now_ms();
            unsigned wait = next > now ? (unsigned)(next - now < 20 ? next - now : 20) : 0;
            bool exited = kt_guest_payload_poll(c->payload, wait) == 1;
            if (exited || kt_guest_sys_now_ms() >= payload_deadline) {
                s_payload_end(c, false);
                payload_running = false;
                /* The workers beside it keep running for the duration. */
                end_ms = release_ms + plan->duration_ms;
                if (w->n == 0 || kt_guest_sys_now_ms() >= end_ms)
                    break;
                continue;
            }
            if ((failed = s_wait_or_fail(c, 0)))
                break;
            continue;
        }
        if ((failed = s_wait_or_fail(c, next)))
            break;
    }
    if (payload_running)
        s_payload_end(c, failed);
    uint64_t stop_ms = kt_guest_sys_now_ms();
    if (w->n)
        s_phase_cpu_boundary(w, w->phase);
    s_bpf_end(c);
    if (failed)
        s_event(c, "scheduler failed: stopping the workers after %llu of %u ms",
                (unsigned long long)(stop_ms - release_ms), plan->duration_ms);

    s_set_phase(c, "collect", 20000 + 20ull * w->n);
    if (w->n)
        kt_workload_phase_begin_change(w->slots);
    for (unsigned i = 0; i < w->n; i++)
        if (!w->collected[i])
            kt_workload_stop(w->slots, i);
    s_event(c, "workers stopped after %llu ms", (unsigned long long)(stop_ms - release_ms));
    uint64_t until = kt_guest_sys_now_ms() + 3000 + 10ull * w->n;
    for (;;) {
        unsigned done = 0;
        for (unsigned i = 0; i < w->n; i++)
            done += w->stopped_by_fault[i] || w->collected[i] ||
                    atomic_load(&w->slots[i].state) == KT_WL_DONE;
        if (done == w->n || kt_guest_sys_now_ms() >= until)
            break;
        kt_guest_sys_sleep_ms(10);
    }
    for (unsigned i = 0; i < w->n; i++) {
        if (w->collected[i] || atomic_load(&w->slots[i].state) == KT_WL_DONE)
            continue;
        /* SIGKILL wakes a stopped task too; SIGCONT for good measure. */
        kill(w->pids[i], SIGKILL);
        kill(w->pids[i], SIGCONT);
        if (!w->stopped_by_fault[i])
            s_event(c, "worker %u of cgroup '%s' (pid %d) did not finish in time: killed",
                    w->index_of[i], plan->cgroups[w->cgroup_of[i]].name, (int)w->pids[i]);
    }
    for (unsigned i = 0; i < w->n; i++) {
        if (w->collected[i])
            continue;
        int r = kt_workload_collect(&w->slots[i], &w->stats[i]);
        w->stats[i].cgroup = w->cgroup_of[i];
        w->stats[i].index = w->index_of[i];
        w->stats[i].pid = w->pids[i];
        if (r < 0)
            s_harness_error(c, "collecting worker %u of cgroup '%s' (pid %d): %s", w->index_of[i],
                            plan->cgroups[w->cgroup_of[i]].name, (int)w->pids[i], strerror(-r));
    }
    uint64_t reap_until = kt_guest_sys_now_ms() + 5000;
    for (unsigned i = 0; i < w->n; i++) {
        const char *cgname = plan->cgroups[w->cgroup_of[i]].name;
        int st = 0;
        if (w->collected[i] && w->reaped[i])
            continue;
        for (;;) {
            pid_t r = waitpid(w->pids[i], &st, WNOHANG);
            if (r == w->pids[i]) {
                w->reaped[i] = true;
                break;
            }
            if ((r < 0 && errno != EINTR) || kt_guest_sys_now_ms() >= reap_until)
                break;
            kt_guest_sys_sleep_ms(5);
        }
        if (!w->reaped[i]) {
            s_harness_error(c, "worker %u of cgroup '%s' (pid %d) could not be reaped",
                            w->index_of[i], cgname, (int)w->pids[i]);
            continue;
        }
        if (WIFEXITED(st) && WEXITSTATUS(st) != 0)
            s_harness_error(c, "workload of worker %u of cgroup '%s' failed (status %d): %.96s",
                            w->index_of[i], cgname, WEXITSTATUS(st),
                            w->slots[i].error[0] ? w->slots[i].error : "no message");
        else if (WIFSIGNALED(st) && WTERMSIG(st) != SIGKILL)
            s_harness_error(c, "worker %u of cgroup '%s' died of signal %d (%s)", w->index_of[i],
                            cgname, WTERMSIG(st), strsignal(WTERMSIG(st)));
    }
    for (unsigned i = 0; i < w->n; i++)
        memcpy(w->stats[i].step_cpu_ns, w->phase_cpu[i], sizeof(w->stats[i].step_cpu_ns));
    uint64_t collected_ms = kt_guest_sys_now_ms();
    pthread_mutex_lock(&c->lock);
    c->keep = NULL;
    c->n_keep = 0;
    c->res.durations.workload_ms = (double)(stop_ms - release_ms);
    c->res.durations.collect_ms = (double)(collected_ms - stop_ms);
    c->res.plan = plan;
    c->res.stats = w->stats;
    c->res.n_stats = w->n;
    pthread_mutex_unlock(&c->lock);
    s_event(c, "collected %u workers in %llu ms", w->n,
            (unsigned long long)(collected_ms - stop_ms));
}

static void s_run_cell(s_cell_t *c)
{
    /* ktstr's relaxed defaults on a debug kernel, for the thresholds no
     * layer set (the result's "thresholds" says where each came from). */
    unsigned relaxed;
    if (c->res.debug_kernel && (relaxed = kt_thresholds_relax_for_debug(&c->msg.plan.thresholds)))
        s_event(c, "debug kernel: %u default threshold(s) relaxed (spread %.0f%%, gap %u ms)",
                relaxed, KT_THR_DEBUG_SPREAD_PCT, KT_THR_DEBUG_GAP_MS);
    const kt_plan_t *plan = &c->msg.plan;
    pthread_mutex_lock(&c->lock);
    c->res.thresholds = &plan->thresholds;
    pthread_mutex_unlock(&c->lock);
    s_set_phase(c, "topology", 10000);
    if (!c->topo_ok) {
        s_harness_error(c, "reading the guest topology: %s", c->topo_why);
        return;
    }
    kt_guest_bpf_init(&c->bpf);
    if (kt_guest_bpf_stats_enable(&c->bpf) < 0)
        kt_log_warn("bpf: %s; bpf_progs will have no run counts", c->bpf.error);
    if (s_sched_start(c) < 0)
        return;

    unsigned total = kt_plan_total_workers(plan);
    s_set_phase(c, "cgroups", 15000 + 50ull * total);
    char mems[64];
    if (kt_guest_sys_read_file("/sys/devices/system/node/online", mems, sizeof(mems)) <= 0)
        snprintf(mems, sizeof(mems), "0");
    char why[384];
    int r = kt_guest_cgroup_setup(KT_GUEST_CGROUP_ROOT, plan, mems, why, sizeof(why));
    if (r < 0) {
        s_harness_error(c, "cgroups: %s", why);
        return;
    }
    s_event(c, "%u cgroups created under %s/%s", plan->n_cgroups, KT_GUEST_CGROUP_ROOT,
            KT_GUEST_CGROUP_PARENT);
    s_workers_t w = {0};
    snprintf(w.mems, sizeof(w.mems), "%s", mems);
    if (s_workers_start(c, &w) < 0) {
        s_kill_all(c, &w);
        pthread_mutex_lock(&c->lock);
        c->keep = NULL;
        c->n_keep = 0;
        pthread_mutex_unlock(&c->lock);
        s_workers_free(&w);
        free(w.stats);
        return;
    }
    s_workers_run(c, &w);

    s_set_phase(c, "done", 10000);
    kt_check_report_t *report = calloc(1, sizeof(*report));
    if (!report) {
        s_harness_error(c, "allocating the check report failed");
    } else {
        int failed = kt_checks_evaluate(plan, w.stats, w.n, report);
        int sf = kt_checks_evaluate_steps(plan, w.stats, w.n, report);
        if (sf < 0)
            s_harness_error(c, "judging the steps: out of memory");
        else
            failed += sf;
        if (kt_checks_bpf_bounded(&plan->thresholds) && !c->bpf.measured)
            s_harness_error(c, "bpf_callback_ns: BPF run-time stats were not measured: %s",
                            c->bpf.error[0] ? c->bpf.error : "no snapshot");
        else
            failed += kt_checks_evaluate_bpf(&plan->thresholds, c->bpf.progs, c->bpf.n_progs,
                                             report);
        if (c->payload)
            failed += s_payload_judge(c, report);
        pthread_mutex_lock(&c->lock);
        c->res.report = report;
        pthread_mutex_unlock(&c->lock);
        s_event(c, "checks: %u evaluated, %d failed", report->n_results, failed);
    }
    /* w.stats and report stay alive until power off (the result points at
     * them). */
    s_workers_free(&w);
}

/* ---- boot ---- */

static kt_guest_chan_t *s_open_channel(void)
{
    char dev[128];
    uint64_t until = kt_guest_sys_now_ms() + S_PORT_WAIT_MS;
    int r;
    while ((r = kt_guest_chan_find("/sys", KT_GUEST_CHAN_NAME, dev, sizeof(dev))) < 0 ||
           !kt_guest_sys_exists(dev)) {
        if (kt_guest_sys_now_ms() >= until) {
            kt_log_error("no virtio port named '%s' within %d ms (is virtserialport %s attached?)",
                         KT_GUEST_CHAN_NAME, S_PORT_WAIT_MS, KT_GUEST_CHAN_NAME);
            return NULL;
        }
        kt_guest_sys_sleep_ms(20);
    }
    kt_guest_chan_t *chan;
    r = kt_guest_chan_open(dev, &chan);
    if (r < 0) {
        kt_log_error("opening '%s' failed: %s", dev, strerror(-r));
        return NULL;
    }
    kt_log_info("channel '%s' on %s", KT_GUEST_CHAN_NAME, dev);
    return chan;
}

/* Sends an error result for a cell that never started (bad message). */
__attribute__((noreturn)) static void s_early_error(s_cell_t *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char text[512];
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&c->lock);
    c->harness_error = true;
    snprintf(c->harness_reason, sizeof(c->harness_reason), "%s", text);
    c->end_phase = "channel";
    pthread_mutex_unlock(&c->lock);
    kt_log_error("%s", text);
    s_finish(c, NULL);
}

int main(void)
{
    kt_log_set_ident("ktstr-init");
    if (kt_guest_sys_mount_all() < 0)
        kt_log_error("required mounts failed, going on regardless");
    kt_guest_sys_console_setup();
    kt_guest_sys_console_line(NULL, "KTSTR_INIT_READY");
    kt_guest_sys_busybox_install();
    /* schedstats feed run_delay and timeslices; best effort. */
    kt_guest_sys_write_file("/proc/sys/kernel/sched_schedstats", "1");
    s_read_hang_hook();

    static s_cell_t cell;
    s_cell_t *c = &cell;
    pthread_mutex_init(&c->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->cond, &ca);
    pthread_condattr_destroy(&ca);
    c->sched_out_fd = -1;
    c->kmsg_fd = -1;
    c->phase = "channel";
    c->t0_ms = kt_guest_sys_now_ms();
    kt_guest_result_init(&c->res);
    kt_guest_outbuf_init(&c->sched_out);
    kt_cell_msg_init(&c->msg);

    kt_guest_sys_kernel_release(c->res.kernel, sizeof(c->res.kernel));
    c->res.debug_kernel = kt_guest_sys_debug_kernel();
    int r = kt_guest_topo_read("/sys", &c->topo, c->topo_why, sizeof(c->topo_why));
    c->topo_ok = r >= 0;
    if (c->topo_ok) {
        c->res.topo = c->topo;
        kt_log_info("kernel %s%s, topology %s: %u CPUs, %u nodes, %u LLCs (L%u), %u cores/LLC, "
                    "%u threads/core%s",
                    c->res.kernel, c->res.debug_kernel ? " (debug)" : "", c->topo.label,
                    c->topo.cpus, c->topo.nodes, c->topo.llcs, c->topo.cache_level,
                    c->topo.cores, c->topo.threads, c->topo.uniform ? "" : " (not uniform)");
    } else {
        kt_log_error("reading the topology failed: %s", c->topo_why);
    }

    c->chan = s_open_channel();
    if (!c->chan)
        kt_guest_sys_poweroff();
    if (kt_guest_chan_wait_peer(c->chan, S_PEER_WAIT_MS) < 0) {
        kt_log_error("the host did not connect to '%s' within %d ms", KT_GUEST_CHAN_NAME,
                     S_PEER_WAIT_MS);
        kt_guest_sys_poweroff();
    }
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    r = kt_guest_hello_pack(&c->topo, c->res.kernel, c->res.debug_kernel, &sb);
    if (r == 0)
        r = kt_guest_chan_send_sbuf(c->chan, &sb, S_HELLO_TIMEOUT_MS);
    msgpack_sbuffer_destroy(&sb);
    if (r < 0) {
        kt_log_error("sending hello failed: %s", strerror(-r));
        kt_guest_sys_poweroff();
    }

    void *body = NULL;
    size_t len = 0;
    r = kt_guest_chan_recv(c->chan, S_CELL_MAX_BYTES, S_CELL_WAIT_MS, &body, &len);
    if (r == 0) {
        kt_log_error("no message from the host within %d ms", S_CELL_WAIT_MS);
        kt_guest_sys_poweroff();
    }
    c->t0_ms = kt_guest_sys_now_ms();
    if (r < 0)
        s_early_error(c, "reading the cell message failed: %s", strerror(-r));
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    char type[16] = "";
    if (kt_mp_unpack_one(body, len, &up) < 0 ||
        kt_chanmsg_type(&up.data, type, sizeof(type)) < 0) {
        msgpack_unpacked_destroy(&up);
        free(body);
        s_early_error(c, "bad first message: not a msgpack map with a string \"t\"");
    }
    msgpack_unpacked_destroy(&up);
    if (strcmp(type, "shutdown") == 0) {
        kt_log_info("host asked for shutdown");
        free(body);
        kt_guest_sys_poweroff();
    }
    if (strcmp(type, "cell") != 0) {
        free(body);
        s_early_error(c, "bad first message: type '%s', expected 'cell' or 'shutdown'", type);
    }
    char why[256] = "";
    r = kt_cell_msg_decode(body, len, &c->msg, why, sizeof(why));
    free(body);
    if (r < 0) {
        kt_cell_msg_init(&c->msg);
        s_early_error(c, "bad cell message: %s", why);
    }

    /* From here on the cell runs. */
    r = kt_guest_sys_make_rt(S_PRIO_MAIN);
    if (r < 0)
        kt_log_warn("main: SCHED_FIFO failed: %s, ignoring", strerror(-r));
    c->kmsg_fd = kt_kmsg_open_tail();
    if (c->kmsg_fd < 0)
        kt_log_warn("opening /dev/kmsg failed: %s, the kernel log is not watched",
                    strerror(-c->kmsg_fd));
    pthread_t sup, mon;
    if ((r = pthread_create(&sup, NULL, s_supervisor_main, c)) != 0 ||
        (r = pthread_create(&mon, NULL, s_monitor_main, c)) != 0)
        s_early_error(c, "starting threads failed: %s", strerror(r));
    s_event(c, "cell '%s' received: scenario '%s', scheduler '%s', %u cgroups, %u workers, %u ms",
            c->msg.cell_id, c->msg.plan.scenario, c->msg.sched_name, c->msg.plan.n_cgroups,
            kt_plan_total_workers(&c->msg.plan), c->msg.plan.duration_ms);
    s_run_cell(c);
    s_finish(c, NULL);
}
