/* Kernel builds (see kt_kbuild.h): configure, check, build bzImage, strip
 * vmlinux, build the tree's sched_ext schedulers static, copy the results.
 * Every command runs with its output appended to out_dir/build.log, so a
 * failure can quote the log's tail. */
#include "kt_kbuild.h"

#include <ctype.h>
#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kt_cleanup.h"
#include "kt_fileio.h"
#include "kt_hash.h"
#include "kt_kernel.h"

#define S_KCONFIG_MAX (1u << 20)
#define S_CONFIG_MAX (4u << 20)
#define S_LOG_TAIL_LINES 40
#define S_LOG_TAIL_BYTES 16384
#define S_HEARTBEAT_S 60
/* tools/sched_ext/README: the schedulers' BPF code needs clang >= 16. */
#define S_CLANG_MIN 16
#define S_CLANG_MAX 30
/* Names the recipe in the kconfig hash: change it when the base config or
 * the way the fragment is applied changes, so old cache entries miss. */
#define S_RECIPE "ktstr-kbuild 1: tinyconfig + merge_config.sh -m + olddefconfig\n"

static const kt_kbuild_option_t s_required[] = {
    {"64BIT", 0, "x86_64 guest"},
    {"SMP", 0, "multi-vCPU topologies"},
    {"NR_CPUS", 64, "topologies up to 64 vCPUs"},
    {"NUMA", 0, "NUMA topologies"},
    {"ACPI", 0, "guest NUMA nodes and CPUs from ACPI"},
    {"SCHED_MC", 0, "LLC scheduling domains"},
    {"SCHED_SMT", 0, "SMT topologies"},
    {"PRINTK", 0, "console log for failure dumps"},
    {"SERIAL_8250_CONSOLE", 0, "console=ttyS0"},
    {"BLK_DEV_INITRD", 0, "ktstr-init's initramfs"},
    {"RD_LZ4", 0, "the lz4 initramfs"},
    {"BINFMT_ELF", 0, "ktstr-init and schedulers"},
    {"PROC_FS", 0, "ktstr-init reads /proc"},
    {"SYSFS", 0, "ktstr-init reads /sys"},
    {"DEVTMPFS", 0, "/dev for the channel and kmsg"},
    {"TMPFS", 0, "/tmp and /run in the guest"},
    {"FUTEX", 0, "workloads"},
    {"UNIX98_PTYS", 0, "payload terminals"},
    {"PCI", 0, "virtio-serial-pci on q35"},
    {"VIRTIO_PCI", 0, "virtio on q35"},
    {"VIRTIO_MMIO", 0, "virtio on microvm"},
    {"VIRTIO_CONSOLE", 0, "the virtio-serial channel"},
    {"CGROUPS", 0, "cgroup v2"},
    {"CGROUP_SCHED", 0, "the cpu controller"},
    {"FAIR_GROUP_SCHED", 0, "cpu weights"},
    {"CPUSETS", 0, "cpuset cgroups"},
    {"SCHEDSTATS", 0, "schedstats=enable, wait times"},
    {"BPF", 0, "sched_ext"},
    {"BPF_SYSCALL", 0, "loading BPF schedulers"},
    {"BPF_JIT", 0, "BPF schedulers at native speed"},
    {"DEBUG_INFO_BTF", 0, "struct_ops and vmlinux.h; needs pahole (dwarves)"},
    {"SCHED_CLASS_EXT", 0, "sched_ext"},
    {"EXT_GROUP_SCHED", 0, "cgroup-aware schedulers (scx_flatcg)"},
};

const kt_kbuild_option_t *kt_kbuild_required(size_t *ret_n)
{
    *ret_n = KT_ARRAY_SIZE(s_required);
    return s_required;
}

/* ---- bounded reads ---- */

#define s_read_file kt_read_file_bounded

/* Appends to err at its current end, never overrunning it. */
static void s_append(char *err, size_t err_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void s_append(char *err, size_t err_len, const char *fmt, ...)
{
    size_t used = strnlen(err, err_len);
    if (used + 1 >= err_len)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err + used, err_len - used, fmt, ap);
    va_end(ap);
}

/* ---- kconfig hash ---- */

int kt_kbuild_kconfig_hash(const char *kconfig, char out[65], char *err, size_t err_len)
{
    _cleanup_free_ char *text = NULL;
    size_t len;
    int r = s_read_file(kconfig, S_KCONFIG_MAX, &text, &len);
    if (r < 0) {
        snprintf(err, err_len, "kernel config fragment '%s': %s", kconfig,
                 r == -EFBIG ? "larger than 1 MiB" : strerror(-r));
        return r;
    }
    if (strlen(text) != len) {
        snprintf(err, err_len, "kernel config fragment '%s': a NUL byte, not a text file",
                 kconfig);
        return -EINVAL;
    }
    kt_hash_t h;
    if ((r = kt_hash_init(&h)) < 0 || (r = kt_hash_update(&h, S_RECIPE, strlen(S_RECIPE))) < 0)
        goto fail;
    for (char *line = text, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        size_t n = next ? (size_t)(next - line) : strlen(line);
        if (next)
            next++;
        while (n && isspace((unsigned char)*line)) {
            line++;
            n--;
        }
        while (n && isspace((unsigned char)line[n - 1]))
            n--;
        if (n == 0)
            continue;
        if (line[0] == '#') {
            /* "# CONFIG_X is not set" turns an option off; other comments
             * change nothing. */
            const char *tail = " is not set";
            size_t tl = strlen(tail);
            if (!(n > 9 + tl && strncmp(line, "# CONFIG_", 9) == 0 &&
                  memcmp(line + n - tl, tail, tl) == 0))
                continue;
        }
        if ((r = kt_hash_update(&h, line, n)) < 0 || (r = kt_hash_update(&h, "\n", 1)) < 0)
            goto fail;
    }
    char hex[KT_HASH_HEX_SIZE];
    if ((r = kt_hash_final_hex(&h, hex)) < 0)
        goto fail;
    memcpy(out, hex, KT_HASH_HEX_SIZE);
    return 0;
fail:
    snprintf(err, err_len, "hashing '%s': %s", kconfig, strerror(-r));
    return r;
}

/* ---- .config check ---- */

int kt_kbuild_check_config(const char *config_path, char *err, size_t err_len)
{
    _cleanup_free_ char *text = NULL;
    size_t len;
    int r = s_read_file(config_path, S_CONFIG_MAX, &text, &len);
    if (r < 0) {
        snprintf(err, err_len, "kernel config '%s': %s", config_path,
                 r == -EFBIG ? "larger than 4 MiB" : strerror(-r));
        return r;
    }
    /* The value of each required option, NULL when absent (or "is not
     * set", which is a comment to this reader). Pointers into text. */
    const char *val[KT_ARRAY_SIZE(s_required)] = {0};
    size_t vlen[KT_ARRAY_SIZE(s_required)] = {0};
    for (char *line = text, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        size_t n = next ? (size_t)(next - line) : strlen(line);
        if (next)
            next++;
        if (n < 8 || strncmp(line, "CONFIG_", 7) != 0)
            continue;
        const char *eq = memchr(line, '=', n);
        if (!eq)
            continue;
        const char *name = line + 7;
        size_t nl = (size_t)(eq - name);
        for (size_t i = 0; i < KT_ARRAY_SIZE(s_required); i++) {
            if (strlen(s_required[i].name) == nl && strncmp(s_required[i].name, name, nl) == 0) {
                val[i] = eq + 1;
                vlen[i] = n - (size_t)(eq + 1 - line);
                break;
            }
        }
    }
    unsigned missing = 0;
    snprintf(err, err_len, "kernel config '%s' lacks what ktstr needs:", config_path);
    for (size_t i = 0; i < KT_ARRAY_SIZE(s_required); i++) {
        const kt_kbuild_option_t *o = &s_required[i];
        char v[32] = "";
        if (val[i])
            snprintf(v, sizeof(v), "%.*s", (int)(vlen[i] < 31 ? vlen[i] : 31), val[i]);
        if (o->min == 0) {
            if (strcmp(v, "y") == 0)
                continue;
            if (val[i])
                s_append(err, err_len, "%s CONFIG_%s=%s, not y (%s)", missing ? "," : "", o->name,
                         v, o->why);
            else
                s_append(err, err_len, "%s CONFIG_%s (%s)", missing ? "," : "", o->name, o->why);
        } else {
            char *end = NULL;
            errno = 0;
            long x = val[i] ? strtol(v, &end, 0) : 0;
            if (val[i] && errno == 0 && end != v && *end == '\0' && x >= o->min)
                continue;
            if (val[i])
                s_append(err, err_len, "%s CONFIG_%s=%s, need >= %ld (%s)", missing ? "," : "",
                         o->name, v, o->min, o->why);
            else
                s_append(err, err_len, "%s CONFIG_%s >= %ld (%s)", missing ? "," : "", o->name,
                         o->min, o->why);
        }
        missing++;
    }
    if (missing)
        return -EINVAL;
    err[0] = '\0';
    return 0;
}

/* ---- ELF probes ---- */

static int s_pread_all(int fd, void *buf, size_t len, uint64_t off)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = pread(fd, (char *)buf + done, len - done, (off_t)(off + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return -ENOEXEC; /* truncated */
        done += (size_t)n;
    }
    return 0;
}

static int s_elf_open(const char *path, int *ret_fd, Elf64_Ehdr *eh, uint64_t *ret_size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    int r = fstat(fd, &st) < 0 ? -errno : 0;
    if (r == 0 && !S_ISREG(st.st_mode))
        r = -EINVAL;
    if (r == 0)
        r = s_pread_all(fd, eh, sizeof(*eh), 0);
    if (r == 0 && (memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 ||
                   eh->e_ident[EI_CLASS] != ELFCLASS64 || eh->e_ehsize < sizeof(*eh)))
        r = -ENOEXEC;
    if (r < 0) {
        close(fd);
        return r;
    }
    *ret_fd = fd;
    *ret_size = (uint64_t)st.st_size;
    return 0;
}

int kt_kbuild_elf_is_static(const char *path)
{
    Elf64_Ehdr eh;
    uint64_t size;
    _cleanup_close_ int fd = -1;
    int r = s_elf_open(path, &fd, &eh, &size);
    if (r < 0)
        return r;
    if (eh.e_type != ET_EXEC && eh.e_type != ET_DYN)
        return 0;
    if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0 || eh.e_phnum >= PN_XNUM ||
        eh.e_phoff > size || (uint64_t)eh.e_phnum * sizeof(Elf64_Phdr) > size - eh.e_phoff)
        return -ENOEXEC;
    for (unsigned i = 0; i < eh.e_phnum; i++) {
        Elf64_Phdr ph;
        if ((r = s_pread_all(fd, &ph, sizeof(ph), eh.e_phoff + i * sizeof(ph))) < 0)
            return r;
        if (ph.p_type == PT_INTERP || ph.p_type == PT_DYNAMIC)
            return 0;
    }
    return 1;
}

int kt_kbuild_elf_has_section(const char *path, const char *name)
{
    Elf64_Ehdr eh;
    uint64_t size;
    _cleanup_close_ int fd = -1;
    int r = s_elf_open(path, &fd, &eh, &size);
    if (r < 0)
        return r;
    /* Extended numbering (e_shnum 0 with sections, e_shstrndx SHN_XINDEX) is
     * not used by the files this reads; treat it as malformed. */
    if (eh.e_shnum == 0)
        return 0;
    if (eh.e_shentsize != sizeof(Elf64_Shdr) || eh.e_shstrndx >= eh.e_shnum ||
        eh.e_shoff > size || (uint64_t)eh.e_shnum * sizeof(Elf64_Shdr) > size - eh.e_shoff)
        return -ENOEXEC;
    Elf64_Shdr strsh;
    if ((r = s_pread_all(fd, &strsh, sizeof(strsh),
                         eh.e_shoff + (uint64_t)eh.e_shstrndx * sizeof(strsh))) < 0)
        return r;
    if (strsh.sh_offset > size || strsh.sh_size > size - strsh.sh_offset ||
        strsh.sh_size > (1u << 20))
        return -ENOEXEC;
    _cleanup_free_ char *strs = malloc(strsh.sh_size + 1);
    if (!strs)
        return -ENOMEM;
    if ((r = s_pread_all(fd, strs, strsh.sh_size, strsh.sh_offset)) < 0)
        return r;
    strs[strsh.sh_size] = '\0';
    for (unsigned i = 0; i < eh.e_shnum; i++) {
        Elf64_Shdr sh;
        if ((r = s_pread_all(fd, &sh, sizeof(sh), eh.e_shoff + (uint64_t)i * sizeof(sh))) < 0)
            return r;
        if (sh.sh_name < strsh.sh_size && strcmp(strs + sh.sh_name, name) == 0)
            return sh.sh_size > 0 && sh.sh_type != SHT_NOBITS;
    }
    return 0;
}

/* ---- running the build ---- */

typedef struct s_build {
    const kt_kbuild_opts_t *o;
    char src[PATH_MAX];  /* absolute source tree */
    char out[PATH_MAX];  /* absolute staging dir */
    char obj[PATH_MAX];  /* out/obj: make O= */
    char frag[PATH_MAX]; /* absolute fragment */
    char log[PATH_MAX];  /* out/build.log */
    char clang[64], llvm_strip[64];
    int log_fd;
    struct timespec t0;
    char *err;
    size_t err_len;
} s_build_t;

static long s_elapsed(const s_build_t *b)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long)(now.tv_sec - b->t0.tv_sec);
}

static void s_progress(const s_build_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void s_progress(const s_build_t *b, const char *fmt, ...)
{
    if (b->o->quiet)
        return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    fprintf(stderr, "kbuild [%4lds]: %s\n", s_elapsed(b), line);
}

/* Appends build.log's last lines to err, keeping the end of the log when it
 * does not all fit. */
static void s_append_log_tail(s_build_t *b)
{
    _cleanup_close_ int fd = open(b->log, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0)
        return;
    char buf[S_LOG_TAIL_BYTES + 1];
    off_t off = st.st_size > S_LOG_TAIL_BYTES ? st.st_size - S_LOG_TAIL_BYTES : 0;
    ssize_t n = pread(fd, buf, S_LOG_TAIL_BYTES, off);
    if (n <= 0)
        return;
    buf[n] = '\0';
    while (n > 0 && buf[n - 1] == '\n')
        buf[--n] = '\0';
    const char *start = buf;
    unsigned lines = 0;
    for (ssize_t i = n - 1; i >= 0; i--) {
        if (buf[i] == '\n' && ++lines == S_LOG_TAIL_LINES) {
            start = buf + i + 1;
            break;
        }
    }
    size_t used = strnlen(b->err, b->err_len);
    const char *hdr = "; last lines of '";
    size_t need = strlen(hdr) + strlen(b->log) + 3 + strlen(start);
    if (used + 1 >= b->err_len)
        return;
    if (used + need + 1 > b->err_len) {
        size_t room = b->err_len - used - 1;
        size_t fixed = strlen(hdr) + strlen(b->log) + 3;
        if (room <= fixed + 16)
            return;
        start += strlen(start) - (room - fixed); /* keep the end of the log */
    }
    s_append(b->err, b->err_len, "%s%s':\n%s", hdr, b->log, start);
}

/* The environment for build commands: ours without what would steer the
 * kernel's make elsewhere (a make above us: MAKEFLAGS with jobserver fds;
 * a cross build; CFLAGS/LDFLAGS that the tools Makefiles append to), in
 * the C locale. Built before fork: the child only execs. Caller frees the
 * array (not the strings, which are environ's). */
static char **s_child_env(void)
{
    static const char *const drop[] = {"MAKEFLAGS", "MFLAGS",  "MAKELEVEL", "MAKEOVERRIDES",
                                       "KBUILD_OUTPUT", "ARCH", "CROSS_COMPILE", "CFLAGS",
                                       "LDFLAGS", "O", "LLVM", "CC", "LC_ALL"};
    extern char **environ;
    size_t n = 0;
    while (environ[n])
        n++;
    char **envp = calloc(n + 2, sizeof(*envp));
    if (!envp)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        bool keep = true;
        for (size_t d = 0; d < KT_ARRAY_SIZE(drop) && keep; d++) {
            size_t dl = strlen(drop[d]);
            keep = !(strncmp(environ[i], drop[d], dl) == 0 && environ[i][dl] == '=');
        }
        if (keep)
            envp[k++] = environ[i];
    }
    envp[k++] = (char *)"LC_ALL=C";
    envp[k] = NULL;
    return envp;
}

/* The last non-empty line of build.log, trimmed to fit. */
static void s_log_last_line(const s_build_t *b, char *buf, size_t len)
{
    buf[0] = '\0';
    _cleanup_close_ int fd = open(b->log, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0)
        return;
    char tail[512];
    off_t off = st.st_size > (off_t)sizeof(tail) - 1 ? st.st_size - (off_t)sizeof(tail) + 1 : 0;
    ssize_t n = pread(fd, tail, sizeof(tail) - 1, off);
    if (n <= 0)
        return;
    tail[n] = '\0';
    while (n > 0 && isspace((unsigned char)tail[n - 1]))
        tail[--n] = '\0';
    char *nl = strrchr(tail, '\n');
    char *line = nl ? nl + 1 : tail;
    while (isspace((unsigned char)*line))
        line++;
    size_t l = strlen(line);
    if (l >= len)
        l = len - 1; /* a long line: its start says what make is at */
    memcpy(buf, line, l);
    buf[l] = '\0';
}

/* Runs argv (PATH searched) in cwd with stdout and stderr into build.log.
 * Returns 0 on exit status 0; otherwise err says what failed, with the
 * log's tail. */
static int s_run(s_build_t *b, const char *what, const char *cwd, const char *const *argv)
{
    /* The command line goes into the log before its output. */
    char hdr[2048];
    int hl = snprintf(hdr, sizeof(hdr), "\n### [%lds] %s:", s_elapsed(b), what);
    for (unsigned i = 0; argv[i] && hl > 0 && (size_t)hl < sizeof(hdr); i++)
        hl += snprintf(hdr + hl, sizeof(hdr) - (size_t)hl, " %s", argv[i]);
    if (hl > 0 && (size_t)hl < sizeof(hdr) - 1)
        hl += snprintf(hdr + hl, sizeof(hdr) - (size_t)hl, "\n");
    if (hl > 0 && write(b->log_fd, hdr, strnlen(hdr, sizeof(hdr))) < 0) {
        int e = errno;
        snprintf(b->err, b->err_len, "%s: writing '%s': %s", what, b->log, strerror(e));
        return -e;
    }
    char **envp = s_child_env();
    if (!envp) {
        snprintf(b->err, b->err_len, "%s: out of memory", what);
        return -ENOMEM;
    }
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        free(envp);
        snprintf(b->err, b->err_len, "%s: fork: %s", what, strerror(e));
        return -e;
    }
    if (pid == 0) {
        int null = open("/dev/null", O_RDONLY);
        if (null < 0 || dup2(null, STDIN_FILENO) < 0 || dup2(b->log_fd, STDOUT_FILENO) < 0 ||
            dup2(b->log_fd, STDERR_FILENO) < 0 || (cwd && chdir(cwd) < 0))
            _exit(126);
        execvpe(argv[0], (char *const *)argv, envp);
        static const char msg[] = "kbuild: exec failed (not in PATH?)\n";
        if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0)
            _exit(127);
        _exit(127);
    }
    free(envp);
    /* Waits, and every minute says the build is alive with the log's last
     * line (a kernel build is minutes of silence otherwise). */
    int st;
    long next_beat = s_elapsed(b) + S_HEARTBEAT_S;
    for (;;) {
        pid_t w = waitpid(pid, &st, b->o->quiet ? 0 : WNOHANG);
        if (w == pid)
            break;
        if (w < 0 && errno != EINTR) {
            int e = errno;
            snprintf(b->err, b->err_len, "%s: waitpid: %s", what, strerror(e));
            return -e;
        }
        if (w == 0) {
            struct timespec ts = {.tv_nsec = 250 * 1000 * 1000};
            nanosleep(&ts, NULL);
            if (s_elapsed(b) >= next_beat) {
                char last[160];
                s_log_last_line(b, last, sizeof(last));
                s_progress(b, "%s: %s", what, last);
                next_beat = s_elapsed(b) + S_HEARTBEAT_S;
            }
        }
    }
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
        return 0;
    if (WIFEXITED(st))
        snprintf(b->err, b->err_len, "%s failed: '%s' exited with status %d", what, argv[0],
                 WEXITSTATUS(st));
    else
        snprintf(b->err, b->err_len, "%s failed: '%s' killed by signal %d", what, argv[0],
                 WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    s_append_log_tail(b);
    return -ECHILD;
}

static bool s_in_path(const char *name)
{
    const char *path = getenv("PATH");
    if (!path || !*path)
        path = "/usr/local/bin:/usr/bin:/bin";
    for (const char *p = path; *p;) {
        const char *colon = strchr(p, ':');
        size_t n = colon ? (size_t)(colon - p) : strlen(p);
        char full[PATH_MAX];
        if (n > 0 && snprintf(full, sizeof(full), "%.*s/%s", (int)n, p, name) < (int)sizeof(full) &&
            access(full, X_OK) == 0)
            return true;
        p += n;
        if (*p == ':')
            p++;
    }
    return false;
}

/* The major version `clang -dumpversion` prints, or -errno. */
static int s_clang_major(const char *clang)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0)
        return -errno;
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(fds[0]);
        close(fds[1]);
        return -e;
    }
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);
        if (null < 0 || dup2(null, STDIN_FILENO) < 0 || dup2(null, STDERR_FILENO) < 0 ||
            dup2(fds[1], STDOUT_FILENO) < 0)
            _exit(126);
        execlp(clang, clang, "-dumpversion", (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    char buf[64] = "";
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fds[0], buf + len, sizeof(buf) - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
        if (len == sizeof(buf) - 1)
            break;
    }
    close(fds[0]);
    buf[len] = '\0';
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || !isdigit((unsigned char)buf[0]))
        return -ENOEXEC;
    return atoi(buf);
}

/* Picks a clang for the schedulers' BPF code: the newest clang-NN >= 16 in
 * PATH, else a plain clang that is new enough. */
static int s_find_clang(s_build_t *b)
{
    for (int v = S_CLANG_MAX; v >= S_CLANG_MIN; v--) {
        char name[32];
        snprintf(name, sizeof(name), "clang-%d", v);
        if (!s_in_path(name))
            continue;
        snprintf(b->clang, sizeof(b->clang), "%s", name);
        snprintf(name, sizeof(name), "llvm-strip-%d", v);
        snprintf(b->llvm_strip, sizeof(b->llvm_strip), "%s",
                 s_in_path(name) ? name : "llvm-strip");
        return 0;
    }
    int major = s_in_path("clang") ? s_clang_major("clang") : -ENOENT;
    if (major >= S_CLANG_MIN) {
        snprintf(b->clang, sizeof(b->clang), "clang");
        snprintf(b->llvm_strip, sizeof(b->llvm_strip), "llvm-strip");
        return 0;
    }
    char have[48] = "none in PATH";
    if (major > 0)
        snprintf(have, sizeof(have), "'clang' is version %d", major);
    snprintf(b->err, b->err_len,
             "no clang >= %d for the sched_ext schedulers' BPF code (%s; tried clang-%d down to "
             "clang-%d): install one, e.g. apt-get install clang-19 llvm-19",
             S_CLANG_MIN, have, S_CLANG_MAX, S_CLANG_MIN);
    return -ENOENT;
}

/* Tools the build runs that make would only report deep in the log. */
static int s_check_tools(s_build_t *b)
{
    static const char *const tools[] = {"make", "objcopy", "gcc", "flex", "bison", "bc",
                                        "pahole"};
    char missing[256] = "";
    for (size_t i = 0; i < KT_ARRAY_SIZE(tools); i++)
        if (!s_in_path(tools[i]))
            s_append(missing, sizeof(missing), "%s%s", missing[0] ? ", " : "", tools[i]);
    if (missing[0]) {
        snprintf(b->err, b->err_len,
                 "kernel build needs %s in PATH (Debian: make binutils gcc flex bison bc dwarves)",
                 missing);
        return -ENOENT;
    }
    return s_find_clang(b);
}

static int s_copy_file(s_build_t *b, const char *from, const char *to)
{
    const char *argv[] = {"cp", "--", from, to, NULL};
    return s_run(b, "copying", NULL, argv);
}

static int s_rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (flag == FTW_DP)
        rmdir(path);
    else
        unlink(path);
    return 0;
}

static int s_mkdir(s_build_t *b, const char *path)
{
    if (mkdir(path, 0755) < 0) {
        int e = errno;
        snprintf(b->err, b->err_len, "creating '%s': %s", path, strerror(e));
        return -e;
    }
    return 0;
}

static void s_closedirp(DIR **d)
{
    if (*d)
        closedir(*d);
}

static int s_check_inputs(s_build_t *b)
{
    const kt_kbuild_opts_t *o = b->o;
    struct utsname u;
    if (uname(&u) == 0 && strcmp(u.machine, "x86_64") != 0) {
        snprintf(b->err, b->err_len, "kernel builds are x86_64 only (this host is %s)", u.machine);
        return -ENOTSUP;
    }
    if (!o->source_dir || !o->out_dir || !o->kconfig) {
        snprintf(b->err, b->err_len, "kernel build: source dir, out dir and fragment are required");
        return -EINVAL;
    }
    if (!realpath(o->source_dir, b->src)) {
        int e = errno;
        snprintf(b->err, b->err_len, "kernel source '%s': %s", o->source_dir, strerror(e));
        return -e;
    }
    char p[PATH_MAX + 16];
    static const char *const need[] = {"Kconfig", "Makefile", "scripts/kconfig/merge_config.sh"};
    for (size_t i = 0; i < KT_ARRAY_SIZE(need); i++) {
        snprintf(p, sizeof(p), "%s/%s", b->src, need[i]);
        if (access(p, R_OK) != 0) {
            snprintf(b->err, b->err_len, "kernel source '%s': no %s, not a kernel source tree",
                     o->source_dir, need[i]);
            return -ENOENT;
        }
    }
    /* Kbuild refuses O= on a configured tree ("source tree is not clean");
     * say so before the build does it deep in the log. */
    snprintf(p, sizeof(p), "%s/.config", b->src);
    if (access(p, F_OK) == 0) {
        snprintf(b->err, b->err_len,
                 "kernel source '%s' is configured in place (it has a .config): builds are out "
                 "of tree and kbuild refuses that; run 'make mrproper' there or use a clean copy",
                 o->source_dir);
        return -EEXIST;
    }
    if (!realpath(o->kconfig, b->frag)) {
        int e = errno;
        snprintf(b->err, b->err_len, "kernel config fragment '%s': %s", o->kconfig, strerror(e));
        return -e;
    }
    if (!realpath(o->out_dir, b->out)) {
        int e = errno;
        snprintf(b->err, b->err_len, "staging dir '%s': %s", o->out_dir, strerror(e));
        return -e;
    }
    _cleanup_(s_closedirp) DIR *d = opendir(b->out);
    if (!d) {
        int e = errno;
        snprintf(b->err, b->err_len, "staging dir '%s': %s", o->out_dir, strerror(e));
        return -e;
    }
    for (struct dirent *de; (de = readdir(d));) {
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
            snprintf(b->err, b->err_len, "staging dir '%s' is not empty (it has '%s')",
                     o->out_dir, de->d_name);
            return -ENOTEMPTY;
        }
    }
    if ((size_t)snprintf(b->obj, sizeof(b->obj), "%s/obj", b->out) >= sizeof(b->obj) ||
        (size_t)snprintf(b->log, sizeof(b->log), "%s/build.log", b->out) >= sizeof(b->log)) {
        snprintf(b->err, b->err_len, "staging dir '%s': path too long", o->out_dir);
        return -ENAMETOOLONG;
    }
    return 0;
}

static int s_make(s_build_t *b, const char *what, const char *dir, const char *target,
                  const char *const *extra)
{
    char oarg[PATH_MAX + 8], jarg[32];
    snprintf(oarg, sizeof(oarg), "O=%s", b->obj);
    snprintf(jarg, sizeof(jarg), "-j%u", b->o->jobs);
    const char *argv[16] = {"make", "-C", dir, oarg, jarg};
    unsigned n = 5;
    for (unsigned i = 0; extra && extra[i] && n < KT_ARRAY_SIZE(argv) - 2; i++)
        argv[n++] = extra[i];
    if (target)
        argv[n++] = target;
    argv[n] = NULL;
    return s_run(b, what, NULL, argv);
}

static int s_configure(s_build_t *b)
{
    s_progress(b, "configuring '%s': tinyconfig + '%s'", b->src, b->frag);
    int r = s_make(b, "make tinyconfig", b->src, "tinyconfig", NULL);
    if (r < 0)
        return r;
    /* merge_config.sh makes its temporary files in the current directory:
     * run it in the object dir, never the source tree. */
    char merge[PATH_MAX + 40];
    snprintf(merge, sizeof(merge), "%s/scripts/kconfig/merge_config.sh", b->src);
    const char *argv[] = {merge, "-m", "-O", b->obj, ".config", b->frag, NULL};
    if ((r = s_run(b, "merging the config fragment", b->obj, argv)) < 0)
        return r;
    if ((r = s_make(b, "make olddefconfig", b->src, "olddefconfig", NULL)) < 0)
        return r;
    char config[PATH_MAX + 16];
    snprintf(config, sizeof(config), "%s/.config", b->obj);
    if ((r = kt_kbuild_check_config(config, b->err, b->err_len)) < 0)
        s_append(b->err, b->err_len,
                 " (after merging '%s' onto tinyconfig: this tree's Kconfig dropped them or "
                 "their dependencies are missing)",
                 b->frag);
    return r;
}

static int s_read_release(s_build_t *b, char *buf, size_t len)
{
    char path[PATH_MAX + 40];
    snprintf(path, sizeof(path), "%s/include/config/kernel.release", b->obj);
    _cleanup_free_ char *text = NULL;
    size_t n;
    int r = s_read_file(path, 4096, &text, &n);
    if (r < 0) {
        snprintf(b->err, b->err_len, "reading the kernel release from '%s': %s", path,
                 strerror(-r));
        return r;
    }
    text[strcspn(text, "\n")] = '\0';
    if (!text[0] || strlen(text) >= len) {
        snprintf(b->err, b->err_len, "kernel release '%s' in '%s' is empty or too long", text,
                 path);
        return -EINVAL;
    }
    snprintf(buf, len, "%s", text);
    return 0;
}

static int s_install_kernel(s_build_t *b, kt_kbuild_result_t *res)
{
    char from[PATH_MAX + 40], to[PATH_MAX + 40];
    int r = s_read_release(b, res->version, sizeof(res->version));
    if (r < 0)
        return r;
    snprintf(from, sizeof(from), "%s/arch/x86/boot/bzImage", b->obj);
    snprintf(to, sizeof(to), "%s/bzImage", b->out);
    if ((r = s_copy_file(b, from, to)) < 0)
        return r;
    char imgver[128];
    if ((r = kt_kernel_image_version(to, imgver, sizeof(imgver))) < 0) {
        snprintf(b->err, b->err_len, "'%s' is not a readable bzImage: %s", from, strerror(-r));
        return r;
    }
    if (strcmp(imgver, res->version) != 0) {
        snprintf(b->err, b->err_len, "'%s' says it is %s, the build says %s", from, imgver,
                 res->version);
        return -EINVAL;
    }
    snprintf(from, sizeof(from), "%s/.config", b->obj);
    snprintf(to, sizeof(to), "%s/config", b->out);
    if ((r = s_copy_file(b, from, to)) < 0)
        return r;
    /* Debug info is most of vmlinux; symbols and .BTF are what readers of
     * the kernel (BTF for vmlinux.h, symbols for addresses) need. */
    snprintf(from, sizeof(from), "%s/vmlinux", b->obj);
    snprintf(to, sizeof(to), "%s/vmlinux", b->out);
    const char *argv[] = {"objcopy", "--strip-debug", from, to, NULL};
    if ((r = s_run(b, "stripping vmlinux", NULL, argv)) < 0)
        return r;
    r = kt_kbuild_elf_has_section(to, ".BTF");
    if (r <= 0) {
        snprintf(b->err, b->err_len, "'%s' has no .BTF section after objcopy --strip-debug%s%s",
                 to, r < 0 ? ": " : "", r < 0 ? strerror(-r) : "");
        return r < 0 ? r : -ENOEXEC;
    }
    return 0;
}

static int s_cmp_names(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

typedef struct s_names {
    char *v[128];
    unsigned n;
} s_names_t;

static void s_names_free(s_names_t *l)
{
    for (unsigned i = 0; i < l->n; i++)
        free(l->v[i]);
    l->n = 0;
}

/* The names in dir ending in suffix (all but dot files when suffix is
 * ""), without the ones containing skip (may be NULL), sorted. */
static int s_list(s_build_t *b, const char *dir, const char *suffix, const char *skip,
                  s_names_t *ret)
{
    _cleanup_(s_closedirp) DIR *d = opendir(dir);
    if (!d) {
        int e = errno;
        snprintf(b->err, b->err_len, "the sched_ext build left no '%s': %s", dir, strerror(e));
        return -e;
    }
    size_t sl = strlen(suffix);
    for (struct dirent *de; (de = readdir(d));) {
        size_t nl = strlen(de->d_name);
        if (de->d_name[0] == '.' || nl < sl || strcmp(de->d_name + nl - sl, suffix) != 0 ||
            (skip && strstr(de->d_name, skip)))
            continue;
        if (ret->n == KT_ARRAY_SIZE(ret->v)) {
            snprintf(b->err, b->err_len, "'%s': more than %zu files", dir, KT_ARRAY_SIZE(ret->v));
            return -E2BIG;
        }
        if (!(ret->v[ret->n] = strdup(de->d_name)))
            return -ENOMEM;
        ret->n++;
    }
    qsort(ret->v, ret->n, sizeof(ret->v[0]), s_cmp_names);
    return 0;
}

/* Links objs (in objdir) with the tree's own libbpf.a into a static,
 * stripped program at to: the Makefiles link dynamically, and a command
 * line LDFLAGS=-static would reach libbpf's shared-library link too. */
static int s_link_static(s_build_t *b, const char *what, const char *objdir, const s_names_t *objs,
                         const char *libbpf, const char *to)
{
    static const char *const head[] = {"gcc", "-static", "-s", "-o"};
    static const char *const libs[] = {"-lelf", "-lz", "-lzstd", "-lpthread"};
    size_t n = KT_ARRAY_SIZE(head) + 1 + objs->n + 1 + KT_ARRAY_SIZE(libs) + 1;
    _cleanup_free_ const char **argv = calloc(n, sizeof(*argv));
    _cleanup_free_ char *paths = calloc(objs->n ? objs->n : 1, PATH_MAX);
    if (!argv || !paths)
        return -ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < KT_ARRAY_SIZE(head); i++)
        argv[k++] = head[i];
    argv[k++] = to;
    for (unsigned i = 0; i < objs->n; i++) {
        char *p = paths + (size_t)i * PATH_MAX;
        snprintf(p, PATH_MAX, "%s/%s", objdir, objs->v[i]);
        argv[k++] = p;
    }
    argv[k++] = libbpf;
    for (size_t i = 0; i < KT_ARRAY_SIZE(libs); i++)
        argv[k++] = libs[i];
    argv[k] = NULL;
    int r = s_run(b, what, NULL, argv);
    if (r < 0)
        return r;
    int st = kt_kbuild_elf_is_static(to);
    if (st != 1) {
        snprintf(b->err, b->err_len, "%s: '%s' is %s", what, to,
                 st == 0 ? "not a static executable (it needs a loader or shared libraries)"
                         : strerror(-st));
        return st < 0 ? st : -ENOEXEC;
    }
    return 0;
}

static int s_build_schedulers(s_build_t *b, kt_kbuild_result_t *res)
{
    char dir[PATH_MAX + 32], clang[80], strip_arg[96];
    snprintf(dir, sizeof(dir), "%s/tools/sched_ext", b->src);
    if (access(dir, R_OK) != 0) {
        snprintf(b->err, b->err_len, "kernel source '%s' has no tools/sched_ext", b->src);
        return -ENOENT;
    }
    s_progress(b, "schedulers: tools/sched_ext with %s, linked static", b->clang);
    snprintf(clang, sizeof(clang), "CLANG=%s", b->clang);
    snprintf(strip_arg, sizeof(strip_arg), "LLVM_STRIP=%s", b->llvm_strip);
    /* O= is the kernel's object dir: the Makefile takes vmlinux (for
     * vmlinux.h) from there and builds into O/build, not into the tree. */
    const char *extra[] = {clang, strip_arg, NULL};
    int r = s_make(b, "building the sched_ext schedulers", dir, "all", extra);
    if (r < 0)
        return r;

    char bindir[PATH_MAX + 16], objdir[PATH_MAX + 32], libbpf[PATH_MAX + 40], outbin[PATH_MAX + 8];
    snprintf(bindir, sizeof(bindir), "%s/build/bin", b->obj);
    snprintf(objdir, sizeof(objdir), "%s/build/obj/sched_ext", b->obj);
    snprintf(libbpf, sizeof(libbpf), "%s/build/obj/libbpf/libbpf.a", b->obj);
    snprintf(outbin, sizeof(outbin), "%s/bin", b->out);
    s_names_t progs = {0};
    r = s_list(b, bindir, "", NULL, &progs);
    if (r == 0 && progs.n == 0) {
        snprintf(b->err, b->err_len, "the sched_ext build put no scheduler in '%s'", bindir);
        r = -ENOENT;
    }
    if (r == 0 && progs.n > KT_KBUILD_MAX_SCHEDS) {
        snprintf(b->err, b->err_len, "'%s': more than %d schedulers", bindir,
                 KT_KBUILD_MAX_SCHEDS);
        r = -E2BIG;
    }
    if (r == 0)
        r = s_mkdir(b, outbin);
    for (unsigned i = 0; r == 0 && i < progs.n; i++) {
        char obj[PATH_MAX], to[PATH_MAX + 80], what[128];
        if (strlen(progs.v[i]) >= sizeof(res->sched_progs[0])) {
            snprintf(b->err, b->err_len, "scheduler name '%s' in '%s' is 64 characters or more",
                     progs.v[i], bindir);
            r = -ENAMETOOLONG;
            break;
        }
        /* The Makefile's link line: bin/NAME from obj/sched_ext/NAME.o. */
        snprintf(obj, sizeof(obj), "%s.o", progs.v[i]);
        s_names_t one = {.v = {obj}, .n = 1};
        snprintf(to, sizeof(to), "%s/%s", outbin, progs.v[i]);
        snprintf(what, sizeof(what), "linking %s static", progs.v[i]);
        if ((r = s_link_static(b, what, objdir, &one, libbpf, to)) < 0)
            break;
        snprintf(res->sched_progs[res->n_sched_progs++], sizeof(res->sched_progs[0]), "%s",
                 progs.v[i]);
    }
    s_names_free(&progs);
    return r;
}

/* The kernel's sched_ext selftests runner, as bin/scx_selftests (what
 * `ktstr-coord selftests --runner` takes), when the tree has them. */
static int s_build_selftests(s_build_t *b, kt_kbuild_result_t *res)
{
    char dir[PATH_MAX + 48], outdir[PATH_MAX + 16], output[PATH_MAX + 32], clang[80],
        strip_arg[96];
    snprintf(dir, sizeof(dir), "%s/tools/testing/selftests/sched_ext", b->src);
    if (access(dir, R_OK) != 0)
        return 0;
    if (res->n_sched_progs == KT_KBUILD_MAX_SCHEDS) {
        snprintf(b->err, b->err_len, "no room for scx_selftests: %d programs already",
                 KT_KBUILD_MAX_SCHEDS);
        return -E2BIG;
    }
    s_progress(b, "sched_ext selftests runner");
    /* lib.mk builds into OUTPUT, which must exist; O= is where vmlinux
     * (BTF) is. */
    snprintf(outdir, sizeof(outdir), "%s/selftests", b->obj);
    int r = s_mkdir(b, outdir);
    if (r < 0)
        return r;
    snprintf(output, sizeof(output), "OUTPUT=%s", outdir);
    snprintf(clang, sizeof(clang), "CLANG=%s", b->clang);
    snprintf(strip_arg, sizeof(strip_arg), "LLVM_STRIP=%s", b->llvm_strip);
    const char *extra[] = {output, clang, strip_arg, NULL};
    if ((r = s_make(b, "building the sched_ext selftests", dir, "all", extra)) < 0)
        return r;
    /* The runner is runner.o, util.o and every test's object (each
     * registers itself from a constructor); the BPF objects are not
     * linked. */
    char objdir[PATH_MAX + 40], libbpf[PATH_MAX + 48], to[PATH_MAX + 24];
    snprintf(objdir, sizeof(objdir), "%s/build/obj/sched_ext", outdir);
    snprintf(libbpf, sizeof(libbpf), "%s/build/obj/libbpf/libbpf.a", outdir);
    snprintf(to, sizeof(to), "%s/bin/scx_selftests", b->out);
    s_names_t objs = {0};
    r = s_list(b, objdir, ".o", ".bpf.", &objs);
    if (r == 0 && objs.n < 2) {
        snprintf(b->err, b->err_len, "the selftests build left %u objects in '%s'", objs.n,
                 objdir);
        r = -ENOENT;
    }
    if (r == 0)
        r = s_link_static(b, "linking the selftests runner static", objdir, &objs, libbpf, to);
    s_names_free(&objs);
    if (r < 0)
        return r;
    snprintf(res->sched_progs[res->n_sched_progs++], sizeof(res->sched_progs[0]),
             "scx_selftests");
    return 0;
}

int kt_kbuild_run(const kt_kbuild_opts_t *o, kt_kbuild_result_t *ret, char *err, size_t err_len)
{
    s_build_t b = {.o = o, .log_fd = -1, .err = err, .err_len = err_len};
    kt_kbuild_opts_t opts = *o;
    if (opts.jobs == 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        opts.jobs = cpus > 0 ? (unsigned)cpus : 1;
    }
    b.o = &opts;
    clock_gettime(CLOCK_MONOTONIC, &b.t0);
    err[0] = '\0';
    int r = s_check_inputs(&b);
    if (r < 0)
        return r;
    if ((r = s_check_tools(&b)) < 0)
        return r;
    b.log_fd = open(b.log, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
    if (b.log_fd < 0) {
        r = -errno;
        snprintf(err, err_len, "creating '%s': %s", b.log, strerror(-r));
        return r;
    }
    if ((r = s_mkdir(&b, b.obj)) < 0) {
        close(b.log_fd);
        return r;
    }

    kt_kbuild_result_t res = {0};
    r = s_configure(&b);
    if (r == 0) {
        s_progress(&b, "building bzImage (%u jobs)", opts.jobs);
        r = s_make(&b, "make bzImage", b.src, "bzImage", NULL);
    }
    if (r == 0) {
        s_progress(&b, "bzImage built");
        r = s_install_kernel(&b, &res);
    }
    if (r == 0)
        r = s_build_schedulers(&b, &res);
    if (r == 0)
        r = s_build_selftests(&b, &res);
    close(b.log_fd);
    nftw(b.obj, s_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    if (r < 0) {
        s_progress(&b, "failed");
        return r;
    }
    s_progress(&b, "done: %s with %u schedulers in '%s'", res.version, res.n_sched_progs, b.out);
    *ret = res;
    return 0;
}
