/* System plumbing for ktstr-init (see kt_guest_sys.h). */
#include "kt_guest_sys.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kt_cleanup.h"
#include "kt_fileio.h"
#include "kt_log.h"

#ifndef SCHED_RESET_ON_FORK
#define SCHED_RESET_ON_FORK 0x40000000
#endif

static uint64_t s_clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t kt_guest_sys_now_ns(void)
{
    return s_clock_ns(CLOCK_MONOTONIC);
}

uint64_t kt_guest_sys_now_ms(void)
{
    return s_clock_ns(CLOCK_MONOTONIC) / 1000000ull;
}

uint64_t kt_guest_sys_uptime_ms(void)
{
    return s_clock_ns(CLOCK_BOOTTIME) / 1000000ull;
}

void kt_guest_sys_sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

int kt_guest_sys_read_file(const char *path, char *buf, size_t len)
{
    int r = kt_read_small_file(path, buf, len);
    if (r < 0)
        return r;
    size_t off = (size_t)r;
    while (off > 0 && (buf[off - 1] == '\n' || buf[off - 1] == ' '))
        buf[--off] = '\0';
    return (int)off;
}

int kt_guest_sys_write_file(const char *path, const char *text)
{
    _cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t len = strlen(text);
    ssize_t n;
    do {
        n = write(fd, text, len);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    return (size_t)n == len ? 0 : -EIO;
}

bool kt_guest_sys_exists(const char *path)
{
    return access(path, F_OK) == 0;
}

static int s_mount(const char *src, const char *target, const char *type, unsigned long flags,
                   const char *data, bool required)
{
    if (mkdir(target, 0755) < 0 && errno != EEXIST) {
        int r = -errno;
        if (required)
            return kt_log_error_errno(r, "mkdir '%s' failed: %m", target);
        kt_log_warn("mkdir '%s' failed: %s, ignoring", target, strerror(-r));
        return r;
    }
    if (mount(src, target, type, flags, data) < 0 && errno != EBUSY) {
        int r = -errno;
        if (required)
            return kt_log_error_errno(r, "mount %s on '%s' failed: %m", type, target);
        kt_log_warn("mount %s on '%s' failed: %s, ignoring", type, target, strerror(-r));
        return r;
    }
    return 0;
}

int kt_guest_sys_mount_all(void)
{
    const unsigned long nosuid = MS_NOSUID | MS_NODEV | MS_NOEXEC;
    int r;
    if ((r = s_mount("proc", "/proc", "proc", nosuid, NULL, true)) < 0 ||
        (r = s_mount("sysfs", "/sys", "sysfs", nosuid, NULL, true)) < 0 ||
        (r = s_mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755", true)) < 0)
        return r;
    s_mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777", false);
    s_mount("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755", false);
    s_mount("cgroup2", "/sys/fs/cgroup", "cgroup2", nosuid, NULL, false);
    /* bpffs and tracefs are optional (kernels without BPF or tracing). */
    if (kt_guest_sys_exists("/sys/fs/bpf"))
        s_mount("bpf", "/sys/fs/bpf", "bpf", nosuid, "mode=0700", false);
    if (kt_guest_sys_exists("/sys/kernel/tracing"))
        s_mount("tracefs", "/sys/kernel/tracing", "tracefs", nosuid, NULL, false);
    return 0;
}

void kt_guest_sys_console_setup(void)
{
    int fd = open("/dev/console", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (fd < 0)
        return;
    /* dup2 clears O_CLOEXEC on the copies, which is what std fds want. */
    for (int i = 0; i < 3; i++)
        if (fd != i)
            dup2(fd, i);
    if (fd > 2)
        close(fd);
    setvbuf(stdout, NULL, _IOLBF, 0);
}

void kt_guest_sys_console_line(const char *prefix, const char *line)
{
    char buf[640];
    int n = snprintf(buf, sizeof(buf), "%s%s\n", prefix ? prefix : "", line);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof(buf)) {
        n = sizeof(buf) - 1;
        buf[n - 1] = '\n';
    }
    /* One write(2) so concurrent lines do not interleave mid-line. */
    ssize_t w = write(STDOUT_FILENO, buf, (size_t)n);
    (void)w;
}

void kt_guest_sys_kernel_release(char *buf, size_t len)
{
    struct utsname u;
    if (uname(&u) < 0)
        snprintf(buf, len, "unknown");
    else
        snprintf(buf, len, "%s", u.release);
}

bool kt_guest_sys_debug_kernel(void)
{
    if (kt_guest_sys_exists("/proc/lockdep"))
        return true;
    /* The boot log names the debug machinery; read it from the start, not
     * the whole buffer if it is huge. */
    _cleanup_close_ int fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return false;
    char rec[8192];
    for (unsigned i = 0; i < 20000; i++) {
        ssize_t n = read(fd, rec, sizeof(rec) - 1);
        if (n < 0) {
            if (errno == EINTR || errno == EPIPE)
                continue;
            break;
        }
        if (n == 0)
            break;
        rec[n] = '\0';
        if (strstr(rec, "Lock dependency validator") || strstr(rec, "KernelAddressSanitizer"))
            return true;
    }
    return false;
}

void kt_guest_sys_busybox_install(void)
{
    if (!kt_guest_sys_exists("/bin/busybox"))
        return;
    pid_t pid = fork();
    if (pid < 0)
        return;
    if (pid == 0) {
        char *argv[] = {"/bin/busybox", "--install", "-s", "/bin", NULL};
        execv(argv[0], argv);
        _exit(127);
    }
    /* Bounded: 5 s is ample for a few hundred symlinks. */
    for (unsigned waited = 0; waited < 5000; waited += 10) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid || (r < 0 && errno != EINTR))
            return;
        kt_guest_sys_sleep_ms(10);
    }
    kt_log_warn("busybox --install did not finish in 5 s, ignoring");
}

/* "pid (comm) S ppid ..." -> state and ppid; comm may hold spaces and ')'. */
static int s_stat_state(pid_t pid, char *ret_state, pid_t *ret_ppid)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    int n = kt_guest_sys_read_file(path, buf, sizeof(buf));
    if (n < 0)
        return n;
    char *p = strrchr(buf, ')');
    if (!p || p[1] != ' ' || !p[2])
        return -EBADMSG;
    char state;
    int ppid;
    if (sscanf(p + 2, "%c %d", &state, &ppid) != 2)
        return -EBADMSG;
    *ret_state = state;
    *ret_ppid = ppid;
    return 0;
}

int kt_guest_sys_reap_orphans(const pid_t *keep, size_t n_keep)
{
    DIR *d = opendir("/proc");
    if (!d)
        return -errno;
    pid_t self = getpid();
    int reaped = 0;
    unsigned seen = 0;
    struct dirent *de;
    while ((de = readdir(d)) && seen < 65536) {
        seen++;
        char *end;
        long v = strtol(de->d_name, &end, 10);
        if (*end || v <= 0 || v == self)
            continue;
        pid_t pid = (pid_t)v;
        char state;
        pid_t ppid;
        if (s_stat_state(pid, &state, &ppid) < 0 || state != 'Z' || ppid != self)
            continue;
        bool kept = false;
        for (size_t i = 0; i < n_keep && !kept; i++)
            kept = keep[i] == pid;
        if (kept)
            continue;
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid)
            reaped++;
    }
    closedir(d);
    return reaped;
}

void kt_guest_sys_poweroff(void)
{
    sync();
    reboot(RB_POWER_OFF);
    /* Only reached when reboot() fails (not PID 1, no privilege): PID 1 must
     * never exit, so park. */
    kt_log_error("reboot(RB_POWER_OFF) failed: %m");
    for (;;)
        pause();
}

int kt_guest_sys_make_rt(int prio)
{
    struct sched_param sp = {.sched_priority = prio};
    if (sched_setscheduler(0, SCHED_FIFO | SCHED_RESET_ON_FORK, &sp) < 0)
        return -errno;
    return 0;
}
