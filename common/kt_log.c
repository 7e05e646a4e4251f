/* Logging to stderr with a level, an ident and a monotonic timestamp. */
#include "kt_log.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static enum kt_log_level s_level = KT_LOG_INFO;
static const char *s_ident = "ktstr";

void kt_log_set_level(enum kt_log_level level)
{
    s_level = level;
}

enum kt_log_level kt_log_get_level(void)
{
    return s_level;
}

void kt_log_set_ident(const char *ident)
{
    s_ident = ident ? ident : "ktstr";
}

void kt_log(enum kt_log_level level, const char *fmt, ...)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    int saved = errno;
    if (level > s_level)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    char line[2048];
    int n = snprintf(line, sizeof(line), "%s[%ld.%03ld] %s: ", s_ident, (long)ts.tv_sec,
                     ts.tv_nsec / 1000000, names[level]);
    va_list ap;
    va_start(ap, fmt);
    errno = saved;
    if (n > 0 && (size_t)n < sizeof(line))
        vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    size_t len = strnlen(line, sizeof(line) - 2);
    line[len++] = '\n';
    fwrite(line, 1, len, stderr);
    errno = saved;
}

int kt_err(char *err, size_t err_len, int r, const char *fmt, ...)
{
    if (err && err_len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, err_len, fmt, ap);
        va_end(ap);
    }
    return r;
}
