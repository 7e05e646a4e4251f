/* The payload process of a payload cell (see kt_guest_payload.h). */
#include "kt_guest_payload.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define S_REAP_BOUND_MS 5000
#define S_DRAIN_BOUND_MS 200

struct kt_guest_payload {
    const kt_payload_spec_t *spec;
    pid_t pid;
    int fds[2];                   /* stdout, stderr read ends; -1 at EOF */
    uint64_t start_ms;
    bool reaped;
    kt_payload_capture_t all;     /* stdout + stderr as they came */
    kt_payload_capture_t out;     /* stdout alone */
    kt_payload_outcome_t outcome;
    char *head, *tail;            /* sanitised copies of all, made by finish */
};

static uint64_t s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void s_close(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

void kt_guest_payload_destroy(kt_guest_payload_t **pp)
{
    if (!pp || !*pp)
        return;
    kt_guest_payload_t *p = *pp;
    if (p->pid > 0 && !p->reaped)
        kt_guest_payload_kill(p, false);
    s_close(&p->fds[0]);
    s_close(&p->fds[1]);
    kt_payload_capture_free(&p->all);
    kt_payload_capture_free(&p->out);
    free(p->head);
    free(p->tail);
    free(p);
    *pp = NULL;
}

__attribute__((noreturn)) static void s_child(const char *path, char *const *argv, int out_w,
                                              int err_w)
{
    setpgid(0, 0);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    for (int s = 1; s < NSIG; s++)
        signal(s, SIG_DFL);
    int in = open("/dev/null", O_RDONLY);
    if (in >= 0 && in != STDIN_FILENO) {
        dup2(in, STDIN_FILENO);
        close(in);
    }
    dup2(out_w, STDOUT_FILENO);
    dup2(err_w, STDERR_FILENO);
    if (out_w > STDERR_FILENO)
        close(out_w);
    if (err_w > STDERR_FILENO && err_w != out_w)
        close(err_w);
    if (chdir("/tmp") < 0 && chdir("/") < 0)
        _exit(126);
    static char *const envp[] = {"PATH=/bin:/sbin:/usr/bin:/usr/sbin", "HOME=/tmp", "TERM=dumb",
                                 "KTSTR_PAYLOAD=1", NULL};
    execve(path, argv, envp);
    dprintf(STDERR_FILENO, "ktstr-init: exec '%s' failed: %s\n", path, strerror(errno));
    _exit(127);
}

/* A pseudo-terminal for the payload's stdout: C programs then flush it by
 * line, as on a terminal, instead of holding a block that every fork()ed
 * child would write again at its exit (the selftests runner forks
 * hundreds). Raw mode: the bytes come through unchanged. -errno when there
 * are no UNIX98 ptys; the caller falls back to a pipe. */
static int s_pty(int *ret_master, int *ret_slave)
{
    if (access("/dev/pts/ptmx", F_OK) != 0) {
        mkdir("/dev/pts", 0755);
        if (mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
                  "newinstance,ptmxmode=0666,mode=0620") < 0)
            return -errno;
    }
    int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (m < 0)
        return -errno;
    char name[64];
    if (grantpt(m) < 0 || unlockpt(m) < 0 || ptsname_r(m, name, sizeof(name)) != 0) {
        int e = errno ? errno : EIO;
        close(m);
        return -e;
    }
    int sl = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (sl < 0) {
        int e = errno;
        close(m);
        return -e;
    }
    struct termios t;
    if (tcgetattr(sl, &t) == 0) {
        cfmakeraw(&t);
        tcsetattr(sl, TCSANOW, &t);
    }
    *ret_master = m;
    *ret_slave = sl;
    return 0;
}

int kt_guest_payload_start(const kt_payload_spec_t *spec, const char *dir, kt_guest_payload_t **ret,
                           char *why, size_t wl)
{
    char path[256 + KT_PAYLOAD_NAME_MAX];
    snprintf(path, sizeof(path), "%s/%s", dir, spec->name);
    if (access(path, X_OK) < 0) {
        int e = errno;
        snprintf(why, wl, "payload '%s' is missing or not executable: %s", path, strerror(e));
        return -e;
    }
    kt_guest_payload_t *p = calloc(1, sizeof(*p));
    if (!p) {
        snprintf(why, wl, "out of memory");
        return -ENOMEM;
    }
    p->spec = spec;
    p->fds[0] = p->fds[1] = -1;
    if (kt_payload_capture_init(&p->all, spec->max_output) < 0 ||
        kt_payload_capture_init(&p->out, spec->max_output) < 0) {
        kt_guest_payload_destroy(&p);
        snprintf(why, wl, "out of memory for %u bytes of output", spec->max_output);
        return -ENOMEM;
    }
    char *argv[KT_PAYLOAD_ARGS_MAX + 2];
    unsigned n = 0;
    argv[n++] = path;
    for (unsigned i = 0; i < spec->n_args && n < KT_PAYLOAD_ARGS_MAX + 1; i++) {
        const char *a = kt_payload_arg(spec, i);
        if (!a)
            break;
        argv[n++] = (char *)a;
    }
    argv[n] = NULL;
    int po[2], pe[2];
    if (s_pty(&po[0], &po[1]) < 0 && pipe2(po, O_CLOEXEC) < 0) {
        int e = errno;
        kt_guest_payload_destroy(&p);
        snprintf(why, wl, "pipe: %s", strerror(e));
        return -e;
    }
    if (pipe2(pe, O_CLOEXEC) < 0) {
        int e = errno;
        close(po[0]);
        close(po[1]);
        kt_guest_payload_destroy(&p);
        snprintf(why, wl, "pipe: %s", strerror(e));
        return -e;
    }
    p->start_ms = s_now_ms();
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(po[0]);
        close(po[1]);
        close(pe[0]);
        close(pe[1]);
        kt_guest_payload_destroy(&p);
        snprintf(why, wl, "fork: %s", strerror(e));
        return -e;
    }
    if (pid == 0)
        s_child(path, argv, po[1], pe[1]);
    /* Both sides set the group, so that a kill right after fork finds it. */
    setpgid(pid, pid);
    close(po[1]);
    close(pe[1]);
    p->fds[0] = po[0];
    p->fds[1] = pe[0];
    for (int i = 0; i < 2; i++)
        fcntl(p->fds[i], F_SETFL, fcntl(p->fds[i], F_GETFL) | O_NONBLOCK);
    p->pid = pid;
    p->outcome.started = true;
    p->outcome.exit_code = -1;
    *ret = p;
    return 0;
}

/* Reads what is readable now; false when nothing was. */
static bool s_read_some(kt_guest_payload_t *p)
{
    bool any = false;
    char buf[8192];
    for (int i = 0; i < 2; i++) {
        for (unsigned k = 0; k < 64 && p->fds[i] >= 0; k++) {
            ssize_t n = read(p->fds[i], buf, sizeof(buf));
            if (n > 0) {
                any = true;
                kt_payload_capture_feed(&p->all, buf, (size_t)n);
                if (i == 0)
                    kt_payload_capture_feed(&p->out, buf, (size_t)n);
                continue;
            }
            if (n == 0 || (errno != EAGAIN && errno != EINTR))
                s_close(&p->fds[i]);
            break;
        }
    }
    return any;
}

static void s_reaped(kt_guest_payload_t *p, int st)
{
    p->reaped = true;
    p->outcome.exited = true;
    p->outcome.wall_ms = (double)(s_now_ms() - p->start_ms);
    if (WIFEXITED(st)) {
        p->outcome.exit_code = WEXITSTATUS(st);
        p->outcome.signal = 0;
    } else if (WIFSIGNALED(st)) {
        p->outcome.exit_code = -1;
        p->outcome.signal = WTERMSIG(st);
    }
}

static bool s_try_reap(kt_guest_payload_t *p)
{
    if (p->reaped)
        return true;
    int st;
    pid_t r = waitpid(p->pid, &st, WNOHANG);
    if (r == p->pid) {
        s_reaped(p, st);
        return true;
    }
    if (r < 0 && errno == ECHILD) {
        /* Someone else reaped it: no status to report. */
        p->reaped = true;
        p->outcome.wall_ms = (double)(s_now_ms() - p->start_ms);
        return true;
    }
    return false;
}

int kt_guest_payload_poll(kt_guest_payload_t *p, unsigned wait_ms)
{
    if (s_try_reap(p))
        return 1;
    struct pollfd pf[2];
    nfds_t n = 0;
    for (int i = 0; i < 2; i++)
        if (p->fds[i] >= 0)
            pf[n++] = (struct pollfd){.fd = p->fds[i], .events = POLLIN};
    if (n)
        poll(pf, n, (int)wait_ms);
    else if (wait_ms)
        usleep(wait_ms > 20 ? 20000 : wait_ms * 1000);
    s_read_some(p);
    return s_try_reap(p) ? 1 : 0;
}

void kt_guest_payload_kill(kt_guest_payload_t *p, bool timed_out)
{
    if (p->pid <= 0)
        return;
    if (!p->reaped) {
        p->outcome.killed = true;
        p->outcome.timed_out = timed_out;
    }
    kill(-p->pid, SIGKILL);
    kill(p->pid, SIGKILL);
    uint64_t until = s_now_ms() + S_REAP_BOUND_MS;
    while (!s_try_reap(p) && s_now_ms() < until) {
        s_read_some(p);
        usleep(5000);
    }
}

static char *s_sanitised(const kt_payload_capture_t *c, bool tail)
{
    size_t cap = (tail ? c->cap_tail : c->cap_head) + 1;
    char *s = malloc(cap);
    if (!s)
        return NULL;
    size_t n = tail ? kt_payload_capture_tail(c, s, cap) : kt_payload_capture_head(c, s, cap);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if ((ch < 0x20 && ch != '\n' && ch != '\t') || ch == 0x7f)
            s[i] = '?';
    }
    return s;
}

/* The order in which a status decides: fail, then pass, then skip. */
static int s_tap_rank(enum kt_payload_tap_status s)
{
    return s == KT_PAYLOAD_TAP_FAIL ? 3 : s == KT_PAYLOAD_TAP_PASS ? 2 : s == KT_PAYLOAD_TAP_SKIP;
}

void kt_guest_payload_finish(kt_guest_payload_t *p)
{
    /* What it left behind in its group goes; its output is read to the end
     * (or for a moment, when a leftover that escaped the group holds the
     * pipes open). */
    if (p->pid > 0)
        kill(-p->pid, SIGKILL);
    uint64_t until = s_now_ms() + S_DRAIN_BOUND_MS;
    while ((p->fds[0] >= 0 || p->fds[1] >= 0) && s_now_ms() < until) {
        if (!s_read_some(p))
            usleep(2000);
    }
    kt_payload_outcome_t *o = &p->outcome;
    o->output_bytes = p->all.total;
    /* stdout: the whole of it when it fit, else its tail (the JSON is
     * expected last); TAP lines in the head and the tail. */
    char *head = s_sanitised(&p->out, false);
    char *tail = s_sanitised(&p->out, true);
    if (head && tail) {
        size_t hl = strlen(head), tl = strlen(tail);
        bool whole = kt_payload_capture_dropped(&p->out) == 0;
        char *joined = whole ? malloc(hl + tl + 1) : NULL;
        if (joined) {
            memcpy(joined, head, hl);
            memcpy(joined + hl, tail, tl + 1);
            o->json = kt_payload_json_metrics(joined, hl + tl, o->metrics, KT_PAYLOAD_METRICS_MAX,
                                              &o->n_metrics, &o->metrics_truncated) == 0;
            kt_payload_tap_scan(joined, hl + tl, p->spec->tap_test, &o->tap);
            free(joined);
        } else {
            o->json = kt_payload_json_metrics(tail, tl, o->metrics, KT_PAYLOAD_METRICS_MAX,
                                              &o->n_metrics, &o->metrics_truncated) == 0;
            kt_payload_tap_t th, tt;
            kt_payload_tap_scan(head, hl, p->spec->tap_test, &th);
            kt_payload_tap_scan(tail, tl, p->spec->tap_test, &tt);
            o->tap = s_tap_rank(tt.status) >= s_tap_rank(th.status) ? tt : th;
            o->tap.pass = th.pass + tt.pass;
            o->tap.fail = th.fail + tt.fail;
            o->tap.skip = th.skip + tt.skip;
        }
    }
    free(head);
    free(tail);
    free(p->head);
    free(p->tail);
    p->head = s_sanitised(&p->all, false);
    p->tail = s_sanitised(&p->all, true);
}

pid_t kt_guest_payload_pid(const kt_guest_payload_t *p)
{
    return p ? p->pid : 0;
}

const kt_payload_outcome_t *kt_guest_payload_outcome(const kt_guest_payload_t *p)
{
    return &p->outcome;
}

const kt_payload_spec_t *kt_guest_payload_spec(const kt_guest_payload_t *p)
{
    return p->spec;
}

const char *kt_guest_payload_output_head(const kt_guest_payload_t *p)
{
    return p->head ? p->head : "";
}

const char *kt_guest_payload_output_tail(const kt_guest_payload_t *p)
{
    return p->tail ? p->tail : "";
}

uint64_t kt_guest_payload_output_dropped(const kt_guest_payload_t *p)
{
    return kt_payload_capture_dropped(&p->all);
}

void kt_guest_payload_describe(const kt_payload_outcome_t *o, uint32_t timeout_ms, char *buf,
                               size_t len)
{
    if (!o->started)
        snprintf(buf, len, "did not start");
    else if (o->timed_out)
        snprintf(buf, len, "timed out after %u ms: killed", timeout_ms);
    else if (!o->exited)
        snprintf(buf, len, "ended without an exit status (reaped elsewhere)");
    else if (o->signal)
        snprintf(buf, len, "killed by signal %d (%s)", o->signal, strsignal(o->signal));
    else
        snprintf(buf, len, "exited with status %d", o->exit_code);
}
