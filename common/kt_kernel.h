/* Kernel images: what can be read from a bzImage without booting it. */
#pragma once

#include <stddef.h>

/* The release ("6.12.117") from the bzImage setup header's kernel_version
 * string. -ENOEXEC when the file is not a bzImage (no "HdrS" magic or no
 * version string), -errno when unreadable. */
int kt_kernel_image_version(const char *path, char *buf, size_t len);
