/* Kernel log records (see kt_guest_kmsg.h). */
#include "kt_guest_kmsg.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
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
