/* Reading the release out of a bzImage (Documentation/arch/x86/boot.rst). */
#include "kt_kernel.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "kt_cleanup.h"

int kt_kernel_image_version(const char *path, char *buf, size_t len)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    uint8_t hdr[0x210];
    ssize_t n = pread(fd, hdr, sizeof(hdr), 0);
    if (n < 0)
        return -errno;
    if ((size_t)n < sizeof(hdr) || memcmp(hdr + 0x202, "HdrS", 4) != 0)
        return -ENOEXEC;
    unsigned off = (unsigned)hdr[0x20e] | (unsigned)hdr[0x20f] << 8;
    if (off == 0)
        return -ENOEXEC;
    char ver[128];
    n = pread(fd, ver, sizeof(ver) - 1, (off_t)off + 0x200);
    if (n <= 0)
        return n < 0 ? -errno : -ENOEXEC;
    ver[n] = '\0';
    size_t vl = strcspn(ver, " \t\n");
    if (vl == 0 || vl >= len)
        return -ENOEXEC;
    for (size_t i = 0; i < vl; i++)
        if ((unsigned char)ver[i] < 0x21 || (unsigned char)ver[i] > 0x7e)
            return -ENOEXEC;
    memcpy(buf, ver, vl);
    buf[vl] = '\0';
    return 0;
}
