/* Small-file reads (sysfs, procfs), bounded: shared by the guest and host. */
#pragma once

#include <stddef.h>

/* Reads at most len - 1 bytes of path into buf and NUL-terminates it.
 * Returns the length read, or -errno. */
int kt_read_small_file(const char *path, char *buf, size_t len);
