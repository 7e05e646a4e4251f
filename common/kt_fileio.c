/* Bounded small-file reads. */
#include "kt_fileio.h"

#include <errno.h>
#include <fcntl.h>
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
