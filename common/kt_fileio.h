/* Bounded file reads, shared by the guest and host: small sysfs/procfs
 * files into a caller buffer, and whole input files (YAML, hosts, kernel
 * configs) into a new one. */
#pragma once

#include <stddef.h>

/* Reads at most len - 1 bytes of path into buf and NUL-terminates it.
 * Returns the length read, or -errno. */
int kt_read_small_file(const char *path, char *buf, size_t len);

/* Reads the whole regular file path, at most max bytes, into a new
 * NUL-terminated buffer (*ret_buf, the caller frees; *ret_len its length).
 * -EINVAL when path is not a regular file, -EFBIG when it holds (or grows
 * while read to) more than max bytes, -ENOMEM, or -errno of open/read. */
int kt_read_file_bounded(const char *path, size_t max, char **ret_buf, size_t *ret_len);

/* The message for an error of kt_read_file_bounded: "PATH: not a regular
 * file", "PATH: larger than the limit of MAX bytes", "PATH: <strerror>". */
void kt_read_file_error(int r, const char *path, size_t max, char *err, size_t err_len);

/* kt_read_file_bounded, with kt_read_file_error's message in err on a
 * failure (err may be NULL): what the loaders of input files call. */
int kt_read_file_reported(const char *path, size_t max, char **ret_buf, size_t *ret_len, char *err,
                          size_t err_len);

/* The folder of path into buf (cut to len): "." when path has no '/', "/"
 * for an entry of the root. Relative paths in a file resolve against it. */
void kt_path_dir(const char *path, char *buf, size_t len);
