/* Kernel log records (see kt_guest_kmsg.h). */
#include "kt_guest_kmsg.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static bool s_parse_u64(const char **p, const char *end, uint64_t *ret)
{
    const char *s = *p;
    uint64_t v = 0;
    if (s >= end || *s < '0' || *s > '9')
        return false;
    while (s < end && *s >= '0' && *s <= '9') {
        if (v > (UINT64_MAX - 9) / 10)
            return false;
        v = v * 10 + (uint64_t)(*s - '0');
        s++;
    }
    *p = s;
    *ret = v;
    return true;
}

int kt_kmsg_parse(const char *rec, size_t len, kt_kmsg_record_t *ret)
{
    const char *end = rec + len;
    const char *semi = memchr(rec, ';', len);
    if (!semi)
        return -EBADMSG;
    const char *p = rec;
    uint64_t prio, seq, ts;
    if (!s_parse_u64(&p, semi, &prio) || p >= semi || *p++ != ',' ||
        !s_parse_u64(&p, semi, &seq) || p >= semi || *p++ != ',' ||
        !s_parse_u64(&p, semi, &ts))
        return -EBADMSG;
    if (p != semi && *p != ',')
        return -EBADMSG;
    const char *text = semi + 1;
    const char *nl = memchr(text, '\n', (size_t)(end - text));
    size_t tlen = (size_t)((nl ? nl : end) - text);
    if (tlen >= KT_KMSG_TEXT_MAX)
        tlen = KT_KMSG_TEXT_MAX - 1;
    memset(ret, 0, sizeof(*ret));
    ret->level = (unsigned)(prio & 7);
    ret->seq = seq;
    ret->ts_us = ts;
    memcpy(ret->text, text, tlen);
    ret->text[tlen] = '\0';
    /* The kernel escapes control bytes as \xNN; a stray NUL can still not
     * appear, but keep the string clean of anything below 0x20. */
    for (size_t i = 0; i < tlen; i++)
        if ((unsigned char)ret->text[i] < 0x20)
            ret->text[i] = ' ';
    return 0;
}

enum kt_kmsg_kind kt_kmsg_classify(const char *text)
{
    if (strstr(text, "BPF scheduler")) {
        /* `sched_ext: BPF scheduler "qmap" disabled (runnable task stall)`;
         * "enabled" and the rest are kept but are no failure. */
        if (strstr(text, "\" disabled") || strstr(text, " disabled ("))
            return KT_KMSG_SCHED_DISABLED;
        return KT_KMSG_SCHED_EXT;
    }
    if (strstr(text, "sched_ext"))
        return KT_KMSG_SCHED_EXT;
    static const char *const problems[] = {
        "BUG:",                   /* BUG: ..., including "BUG: soft lockup" */
        "WARNING:",               /* WARN(): "WARNING: CPU: 1 PID: ... at ..." */
        "hung_task",
        "blocked for more than",  /* the hung task detector's line */
        "soft lockup",
        "hard LOCKUP",
        "self-detected stall",    /* "rcu: INFO: rcu_sched self-detected stall on CPU" */
        "detected stalls on CPU",
        "Oops:",
        "Kernel panic",
    };
    for (size_t i = 0; i < sizeof(problems) / sizeof(problems[0]); i++)
        if (strstr(text, problems[i]))
            return KT_KMSG_KERNEL_PROBLEM;
    return KT_KMSG_OTHER;
}

int kt_kmsg_open_tail(void)
{
    int fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    if (lseek(fd, 0, SEEK_END) < 0) {
        int r = -errno;
        close(fd);
        return r;
    }
    return fd;
}

int kt_kmsg_read(int fd, kt_kmsg_record_t *ret)
{
    char rec[KT_KMSG_RECORD_MAX];
    int r;
    for (;;) {
        ssize_t n = read(fd, rec, KT_KMSG_RECORD_MAX);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            r = errno == EAGAIN ? 0 : -errno;
            break;
        }
        if (n == 0) {
            r = 0;
            break;
        }
        /* A malformed record is skipped, not fatal. */
        if (kt_kmsg_parse(rec, (size_t)n, ret) < 0)
            continue;
        r = 1;
        break;
    }
    return r;
}

enum { S_EXIT_NONE = 0, S_EXIT_HEAD, S_EXIT_MESSAGE, S_EXIT_DONE };

bool kt_scx_exit_feed(kt_scx_exit_t *e, const kt_kmsg_record_t *rec)
{
    const char *t = rec->text;
    if (e->stage_ == S_EXIT_DONE)
        return false;
    if (e->stage_ == S_EXIT_NONE) {
        if (kt_kmsg_classify(t) != KT_KMSG_SCHED_DISABLED)
            return false;
        const char *open = strstr(t, " disabled (");
        const char *close = open ? strrchr(open, ')') : NULL;
        if (open && close) {
            open += strlen(" disabled (");
            snprintf(e->kind, sizeof(e->kind), "%.*s", (int)(close - open), open);
        }
        const char *q = strchr(t, '"');
        const char *q2 = q ? strchr(q + 1, '"') : NULL;
        if (q2)
            snprintf(e->name, sizeof(e->name), "%.*s", (int)(q2 - q - 1), q + 1);
        snprintf(e->head, sizeof(e->head), "%s", t);
        e->seen = true;
        e->error = rec->level <= 3;
        e->ts_us = rec->ts_us;
        /* Nothing follows a normal unregistration. */
        e->stage_ = e->error ? S_EXIT_HEAD : S_EXIT_DONE;
        return true;
    }
    /* stack_trace_print() indents each frame. */
    if (t[0] == ' ') {
        while (*t == ' ')
            t++;
        if (e->n_bt < KT_SCX_EXIT_BT_MAX)
            snprintf(e->bt[e->n_bt++], KT_SCX_EXIT_FRAME_LEN, "%s", t);
        else
            e->bt_truncated = true;
        e->stage_ = S_EXIT_MESSAGE;
        return true;
    }
    /* `sched_ext: central: the message`, right after the head line. */
    if (e->stage_ == S_EXIT_HEAD && strncmp(t, "sched_ext: ", 11) == 0 &&
        kt_kmsg_classify(t) == KT_KMSG_SCHED_EXT) {
        const char *m = strstr(t + 11, ": ");
        snprintf(e->message, sizeof(e->message), "%s", m ? m + 2 : t + 11);
        e->stage_ = S_EXIT_MESSAGE;
        return true;
    }
    e->stage_ = S_EXIT_DONE;
    return false;
}

bool kt_scx_exit_open(const kt_scx_exit_t *e)
{
    return e->seen && e->error && e->stage_ != S_EXIT_DONE;
}

bool kt_scx_exit_awaits_message(const kt_scx_exit_t *e)
{
    return e->seen && e->error && e->stage_ == S_EXIT_HEAD;
}

void kt_scx_exit_reason(const kt_scx_exit_t *e, char *buf, size_t len)
{
    if (!e->seen)
        snprintf(buf, len, "%s", "");
    else if (e->message[0])
        snprintf(buf, len, "%s; sched_ext: %s: %s", e->head, e->name, e->message);
    else
        snprintf(buf, len, "%s", e->head);
}
