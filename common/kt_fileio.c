/* Bounded small-file reads. */
#include "kt_fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kt_cleanup.h"

int kt_read_small_file(const char *path, char *buf, size_t len)
{
    if (len == 0)
        return -EINVAL;
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t off = 0;
    while (off + 1 < len) {
        ssize_t n = read(fd, buf + off, len - 1 - off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            break;
        off += (size_t)n;
    }
    buf[off] = '\0';
    return (int)off;
}

int kt_read_file_bounded(const char *path, size_t max, char **ret_buf, size_t *ret_len)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    if (!S_ISREG(st.st_mode))
        return -EINVAL;
    if ((unsigned long long)st.st_size > max)
        return -EFBIG;
    /* Read up to one byte past the limit: the file may grow after fstat. */
    _cleanup_free_ char *buf = malloc(max + 2);
    if (!buf)
        return -ENOMEM;
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fd, buf + len, max + 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            break;
        len += (size_t)n;
        if (len > max)
            return -EFBIG;
    }
    buf[len] = '\0';
    *ret_len = len;
    *ret_buf = TAKE_PTR(buf);
    return 0;
}

void kt_read_file_error(int r, const char *path, size_t max, char *err, size_t err_len)
{
    if (r == -EINVAL)
        snprintf(err, err_len, "%s: not a regular file", path);
    else if (r == -EFBIG)
        snprintf(err, err_len, "%s: larger than the limit of %zu bytes", path, max);
    else
        snprintf(err, err_len, "%s: %s", path, strerror(-r));
}

int kt_read_file_reported(const char *path, size_t max, char **ret_buf, size_t *ret_len, char *err,
                          size_t err_len)
{
    int r = kt_read_file_bounded(path, max, ret_buf, ret_len);
    if (r < 0 && err)
        kt_read_file_error(r, path, max, err, err_len);
    return r;
}

void kt_path_dir(const char *path, char *buf, size_t len)
{
    snprintf(buf, len, "%s", path);
    char *slash = strrchr(buf, '/');
    if (!slash)
        snprintf(buf, len, ".");
    else if (slash == buf)
        buf[1] = '\0';
    else
        *slash = '\0';
}
