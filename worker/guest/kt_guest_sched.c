/* The scheduler process and sched_ext's sysfs state (see kt_guest_sched.h). */
#include "kt_guest_sched.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kt_guest_sys.h"

void kt_guest_outbuf_init(kt_guest_outbuf_t *o)
{
    memset(o, 0, sizeof(*o));
}

static void s_tail_append(kt_guest_outbuf_t *o, const char *data, size_t len)
{
    if (len >= sizeof(o->tail)) {
        memcpy(o->tail, data + len - sizeof(o->tail), sizeof(o->tail));
        o->tail_len = sizeof(o->tail);
        return;
    }
    size_t keep = sizeof(o->tail) - len;
    if (o->tail_len > keep) {
        memmove(o->tail, o->tail + (o->tail_len - keep), keep);
        o->tail_len = keep;
    }
    memcpy(o->tail + o->tail_len, data, len);
    o->tail_len += len;
}

static void s_line_emit(kt_guest_outbuf_t *o, kt_guest_line_fn fn, void *userdata)
{
    o->line[o->line_len] = '\0';
    if (fn)
        fn(o->line, userdata);
    o->line_len = 0;
}

void kt_guest_outbuf_feed(kt_guest_outbuf_t *o, const char *data, size_t len, kt_guest_line_fn fn,
                          void *userdata)
{
    s_tail_append(o, data, len);
    o->total += len;
    for (size_t i = 0; i < len; i++) {
        char c = data[i];
        if (c == '\n') {
            s_line_emit(o, fn, userdata);
            continue;
        }
        if (c == '\r')
            continue;
        if (o->line_len < sizeof(o->line) - 1)
            o->line[o->line_len++] = (unsigned char)c < 0x20 && c != '\t' ? ' ' : c;
    }
}

void kt_guest_outbuf_flush(kt_guest_outbuf_t *o, kt_guest_line_fn fn, void *userdata)
{
    if (o->line_len)
        s_line_emit(o, fn, userdata);
}

void kt_guest_outbuf_tail(const kt_guest_outbuf_t *o, char *buf, size_t len)
{
    if (!len)
        return;
    size_t n = o->tail_len < len - 1 ? o->tail_len : len - 1;
    memcpy(buf, o->tail + (o->tail_len - n), n);
    buf[n] = '\0';
    /* Output is text; a NUL inside would cut the string early, replace it. */
    for (size_t i = 0; i < n; i++)
        if (buf[i] == '\0')
            buf[i] = ' ';
}

void kt_guest_outbuf_last_line(const kt_guest_outbuf_t *o, char *buf, size_t len)
{
    if (!len)
        return;
    buf[0] = '\0';
    size_t end = o->tail_len;
    while (end > 0 && (o->tail[end - 1] == '\n' || o->tail[end - 1] == '\r' ||
                       o->tail[end - 1] == ' '))
        end--;
    if (end == 0)
        return;
    size_t start = end;
    while (start > 0 && o->tail[start - 1] != '\n')
        start--;
    size_t n = end - start < len - 1 ? end - start : len - 1;
    memcpy(buf, o->tail + start, n);
    buf[n] = '\0';
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)buf[i] < 0x20)
            buf[i] = ' ';
}

static bool s_line_is_error(const char *line, size_t n)
{
    static const char *const words[] = {"error", "invalid", "failed", "unknown",
                                        "denied", "cannot", "unable"};
    /* "  -e COUNT   Trigger scx_bpf_error() ...": help text, not an error. */
    size_t lead = 0;
    while (lead < n && (line[lead] == ' ' || line[lead] == '\t'))
        lead++;
    if (lead > 0 && lead < n && line[lead] == '-')
        return false;
    if (memmem(line, n, "EXIT:", 5))
        return true;
    for (size_t w = 0; w < sizeof(words) / sizeof(words[0]); w++) {
        size_t wl = strlen(words[w]);
        for (size_t i = 0; i + wl <= n; i++)
            if (strncasecmp(line + i, words[w], wl) == 0)
                return true;
    }
    return false;
}

void kt_guest_outbuf_error_line(const kt_guest_outbuf_t *o, char *buf, size_t len)
{
    if (!len)
        return;
    size_t end = o->tail_len;
    while (end > 0) {
        size_t start = end;
        while (start > 0 && o->tail[start - 1] != '\n')
            start--;
        if (s_line_is_error(o->tail + start, end - start)) {
            size_t n = end - start < len - 1 ? end - start : len - 1;
            memcpy(buf, o->tail + start, n);
            buf[n] = '\0';
            for (size_t i = 0; i < n; i++)
                if ((unsigned char)buf[i] < 0x20)
                    buf[i] = ' ';
            return;
        }
        end = start ? start - 1 : 0;
    }
    kt_guest_outbuf_last_line(o, buf, len);
}

int kt_guest_sched_spawn(const char *path, const char *const *args, unsigned n_args,
                         pid_t *ret_pid, int *ret_out_fd)
{
    /* Everything the child needs is built before fork: the parent has
     * threads, so the child may only make async-signal-safe calls. */
    const char **argv = calloc(n_args + 2, sizeof(*argv));
    if (!argv)
        return -ENOMEM;
    argv[0] = path;
    for (unsigned i = 0; i < n_args; i++)
        argv[i + 1] = args[i];
    char *envp[] = {"PATH=/bin:/sbin:/usr/bin:/usr/sbin", "HOME=/", "TERM=dumb", NULL};

    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) < 0) {
        int r = -errno;
        free(argv);
        return r;
    }
    int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    pid_t pid = fork();
    if (pid < 0) {
        int r = -errno;
        close(pfd[0]);
        close(pfd[1]);
        if (null_fd >= 0)
            close(null_fd);
        free(argv);
        return r;
    }
    if (pid == 0) {
        setpgid(0, 0);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        if (null_fd >= 0)
            dup2(null_fd, STDIN_FILENO);
        dup2(pfd[1], STDOUT_FILENO);
        dup2(pfd[1], STDERR_FILENO);
        execve(path, (char *const *)argv, envp);
        static const char msg[] = "ktstr-init: exec of the scheduler failed\n";
        ssize_t w = write(STDERR_FILENO, msg, sizeof(msg) - 1);
        (void)w;
        _exit(127);
    }
    close(pfd[1]);
    if (null_fd >= 0)
        close(null_fd);
    free(argv);
    int fl = fcntl(pfd[0], F_GETFL);
    if (fl >= 0)
        fcntl(pfd[0], F_SETFL, fl | O_NONBLOCK);
    *ret_pid = pid;
    *ret_out_fd = pfd[0];
    return 0;
}

bool kt_guest_sched_ext_available(void)
{
    return kt_guest_sys_exists(KT_GUEST_SCHED_EXT_DIR "/state");
}

int kt_guest_sched_state(char *buf, size_t len)
{
    int r = kt_guest_sys_read_file(KT_GUEST_SCHED_EXT_DIR "/state", buf, len);
    return r < 0 ? r : 0;
}

int kt_guest_sched_ops(char *buf, size_t len)
{
    int r = kt_guest_sys_read_file(KT_GUEST_SCHED_EXT_DIR "/root/ops", buf, len);
    return r < 0 ? r : 0;
}

void kt_guest_sched_describe_status(int status, char *buf, size_t len)
{
    if (WIFEXITED(status))
        snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, len, "killed by signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else
        snprintf(buf, len, "ended with wait status 0x%x", (unsigned)status);
}

int kt_guest_sched_exit_code(int status)
{
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return -WTERMSIG(status);
    return -1;
}
