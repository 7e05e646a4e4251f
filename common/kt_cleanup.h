/* Scope guards in the systemd style: _cleanup_(fn) on locals, TAKE_PTR() to
 * hand ownership on. */
#pragma once

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))

#define TAKE_PTR(p)                                                                                \
    ({                                                                                             \
        __typeof__(p) _p = (p);                                                                    \
        (p) = NULL;                                                                                \
        _p;                                                                                        \
    })

#define TAKE_FD(fd)                                                                                \
    ({                                                                                             \
        int _fd = (fd);                                                                            \
        (fd) = -1;                                                                                 \
        _fd;                                                                                       \
    })

static inline void kt_freep(void *p)
{
    free(*(void **)p);
}

static inline void kt_closep(int *fd)
{
    if (*fd >= 0)
        close(*fd);
}

static inline void kt_fclosep(FILE **f)
{
    if (*f)
        fclose(*f);
}

#define _cleanup_free_ _cleanup_(kt_freep)
#define _cleanup_close_ _cleanup_(kt_closep)
#define _cleanup_fclose_ _cleanup_(kt_fclosep)

#define KT_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
