/* Kernels named by a path: a bzImage file, a build dir (arch/x86/boot/bzImage)
 * or a source dir with a build in it. Label and version come from the image;
 * inside a git work tree that is a kernel source tree (top-level Kconfig and
 * Makefile; an O= build dir's `source` link is followed) the commit is HEAD's
 * 7-digit short hash, "-dirty" when tracked files differ from HEAD (untracked
 * files do not count), read with libgit2 once per kernel per run. */
#pragma once

#include <stddef.h>

#include "kt_coord.h"

/* *lookups is incremented for every libgit2 resolution made, i.e. for a
 * kernel inside a git repository (the commit map test counts them). -errno
 * with a reason in err. */
int kt_kernel_resolve(const char *path, const char *label, kt_coord_kernel_t *ret,
                      unsigned *lookups, char *err, size_t err_len);

/* The commit of the git work tree holding path, whatever the tree:
 * "3f2a9c1" or "3f2a9c1-dirty"; -ENOENT when path is not in a work tree or
 * HEAD has no commit. */
int kt_git_commit_of(const char *path, char *buf, size_t len, char *err, size_t err_len);
