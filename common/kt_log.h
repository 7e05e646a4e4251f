/* Logging: one line per event, `key=value` context, printf-checked. Library
 * code does not log; callers log once and return. Works in the host tools and
 * in the static guest init alike (plain stderr, no czmq dependency). */
#pragma once

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>

enum kt_log_level {
    KT_LOG_ERROR = 0,
    KT_LOG_WARN = 1,
    KT_LOG_INFO = 2,
    KT_LOG_DEBUG = 3,
};

void kt_log_set_level(enum kt_log_level level);
enum kt_log_level kt_log_get_level(void);
/* Prefix every line with this tag (e.g. "worker", "init"); not copied. */
void kt_log_set_ident(const char *ident);

__attribute__((format(printf, 2, 3))) void kt_log(enum kt_log_level level, const char *fmt, ...);

#define kt_log_error(...) kt_log(KT_LOG_ERROR, __VA_ARGS__)
#define kt_log_warn(...) kt_log(KT_LOG_WARN, __VA_ARGS__)
#define kt_log_info(...) kt_log(KT_LOG_INFO, __VA_ARGS__)
#define kt_log_debug(...) kt_log(KT_LOG_DEBUG, __VA_ARGS__)

/* Log and return the negative errno r (errno is set to -r so %m works). */
#define kt_log_error_errno(r, ...)                                                                 \
    ({                                                                                             \
        int _r = (r);                                                                              \
        errno = _r < 0 ? -_r : _r;                                                                 \
        kt_log(KT_LOG_ERROR, __VA_ARGS__);                                                         \
        _r < 0 ? _r : -_r;                                                                         \
    })

/* Formats a reason into err (when err and err_len allow) and returns r:
 * `return kt_err(err, err_len, -EINVAL, "spec '%s': ...", ...);`. */
__attribute__((format(printf, 4, 5))) int kt_err(char *err, size_t err_len, int r,
                                                 const char *fmt, ...);
