/* Kernel builds: a kernel and its sched_ext schedulers from a source tree,
 * configured with deploy/ktstr.kconfig merged onto `make tinyconfig`, built
 * out of tree into a staging dir that the kernel cache (kt_kcache.h)
 * installs. x86_64 only: the VM runner boots bzImages under QEMU. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

typedef struct kt_kbuild_opts {
    const char *source_dir; /* a kernel source tree (top-level Kconfig + Makefile) */
    const char *out_dir;    /* an existing empty staging dir: the result goes here */
    const char *kconfig;    /* path of deploy/ktstr.kconfig (the fragment) */
    unsigned jobs;          /* make -j; 0: number of online CPUs */
    bool quiet;             /* no progress lines on stderr */
} kt_kbuild_opts_t;

#define KT_KBUILD_MAX_SCHEDS 16

typedef struct kt_kbuild_result {
    char version[64];                          /* kernelrelease, e.g. "6.12.117" */
    char sched_progs[KT_KBUILD_MAX_SCHEDS][64]; /* names of the static schedulers put in out_dir/bin/ */
    unsigned n_sched_progs;
} kt_kbuild_result_t;

/* Builds the tree at o->source_dir without writing to it (make O=), and
 * leaves in o->out_dir: bzImage, vmlinux (debug info stripped, symbols and
 * .BTF kept), config (the full .config), bin/ (the tree's tools/sched_ext
 * schedulers and, as scx_selftests, its sched_ext selftests runner when the
 * tree has one: linked static and stripped) and build.log (every command's
 * output; the build also prints a progress line a minute unless quiet). The object dir (out_dir/obj) is removed, on failure too.
 * Steps: tinyconfig, merge_config.sh -m with the fragment, olddefconfig,
 * kt_kbuild_check_config, bzImage, strip vmlinux and check its .BTF, the
 * schedulers with clang >= 16 (the BPF code of 6.12 needs it).
 * On failure: -errno, err names the step and ends with build.log's last 40
 * lines when a command failed; *ret is untouched. */
int kt_kbuild_run(const kt_kbuild_opts_t *o, kt_kbuild_result_t *ret, char *err, size_t err_len);

/* sha256 (hex) of the fragment for cache keys (kc...): its CONFIG_ lines and
 * "# CONFIG_X is not set" lines in order, trimmed, with other comments and
 * blank lines left out, after a line naming the recipe (the tinyconfig
 * base), so a comment edit keeps the key and a recipe change does not.
 * -ENOENT etc. when unreadable, -EFBIG over 1 MiB. */
int kt_kbuild_kconfig_hash(const char *kconfig, char out[65], char *err, size_t err_len);

/* An option the product needs in the built kernel. */
typedef struct kt_kbuild_option {
    const char *name; /* without CONFIG_ */
    long min;         /* 0: must be =y; > 0: an integer option, at least min */
    const char *why;  /* what needs it, for the error */
} kt_kbuild_option_t;

/* The required options (static table); *ret_n gets their count. */
const kt_kbuild_option_t *kt_kbuild_required(size_t *ret_n);

/* Checks a .config for every required option. -EINVAL when some are
 * missing, not =y, or too small: err names each one with why it is needed;
 * -errno when unreadable, -EFBIG over 4 MiB. */
int kt_kbuild_check_config(const char *config_path, char *err, size_t err_len);

/* ELF64 probes for the build's outputs. 1 yes, 0 no, -ENOEXEC for a file
 * that is not a well-formed ELF64, -errno when unreadable. A static
 * program has no program interpreter and no dynamic segment: it runs in an
 * initramfs with nothing else. */
int kt_kbuild_elf_is_static(const char *path);
/* A section named name with a non-zero size. */
int kt_kbuild_elf_has_section(const char *path, const char *name);
