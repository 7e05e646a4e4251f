/* KVM check (see kt_kvm.h): the device, its API version, and a canary boot
 * of a real kernel, because a /dev/kvm that opens and answers ioctls can
 * still be unable to run a guest (nested virtualization without the needed
 * features: QEMU aborts setting an MSR, or stops the guest with "KVM
 * internal error. Suberror: 1 / emulation failure", or the guest hangs).
 * Plus the host facts the worker advertises. */
#include "kt_kvm.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <linux/kvm.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kt_cleanup.h"
#include "kt_image.h"
#include "kt_runcell.h"

#define S_KVM_DEV "/dev/kvm"
#define S_KVM_API 12
#define S_MAX_HOST_CPUS 8192

/* Reasons are for humans and may be cut; vsnprintf says so explicitly. */
static void s_say(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void s_say(char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
}

/* ---- host facts ---- */

/* Reads a small sysfs/proc file into buf without its trailing newline. */
static int s_read_small(const char *path, char *buf, size_t len)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return -errno;
    ssize_t n;
    do {
        n = read(fd, buf, len - 1);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    buf[n] = '\0';
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
        buf[--n] = '\0';
    return 0;
}

/* The shared_cpu_list of cpu's highest-level cache, into buf. */
static int s_llc_of_cpu(unsigned cpu, char *buf, size_t len)
{
    char dir[96];
    snprintf(dir, sizeof(dir), "/sys/devices/system/cpu/cpu%u/cache", cpu);
    DIR *d = opendir(dir);
    if (!d)
        return -errno;
    int best_level = -1;
    char best[NAME_MAX + 1] = "";
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, "index", 5) != 0)
            continue;
        char path[sizeof(dir) + NAME_MAX + 16], val[32];
        snprintf(path, sizeof(path), "%s/%s/level", dir, e->d_name);
        if (s_read_small(path, val, sizeof(val)) < 0)
            continue;
        int level = atoi(val);
        if (level > best_level) {
            best_level = level;
            snprintf(best, sizeof(best), "%s", e->d_name);
        }
    }
    closedir(d);
    if (best_level < 0)
        return -ENOENT;
    char path[sizeof(dir) + NAME_MAX + 32];
    snprintf(path, sizeof(path), "%s/%s/shared_cpu_list", dir, best);
    return s_read_small(path, buf, len);
}

/* Calls fn for every CPU in a kernel CPU list ("0-3,8"). */
static int s_foreach_cpu(const char *list, int (*fn)(unsigned cpu, void *ud), void *ud)
{
    const char *p = list;
    while (*p) {
        char *end;
        unsigned long a = strtoul(p, &end, 10), b = a;
        if (end == p)
            return -EINVAL;
        p = end;
        if (*p == '-') {
            b = strtoul(p + 1, &end, 10);
            if (end == p + 1 || b < a)
                return -EINVAL;
            p = end;
        }
        if (b >= S_MAX_HOST_CPUS)
            return -ERANGE;
        for (unsigned long c = a; c <= b; c++) {
            int r = fn((unsigned)c, ud);
            if (r < 0)
                return r;
        }
        if (*p == ',')
            p++;
        else if (*p)
            return -EINVAL;
    }
    return 0;
}

typedef struct s_llc_set {
    char (*lists)[64];
    unsigned n;
    unsigned cap;
    unsigned cpus;
    bool unknown;
} s_llc_set_t;

static int s_add_cpu(unsigned cpu, void *ud)
{
    s_llc_set_t *set = ud;
    set->cpus++;
    char list[64];
    if (s_llc_of_cpu(cpu, list, sizeof(list)) < 0) {
        set->unknown = true;
        return 0;
    }
    for (unsigned i = 0; i < set->n; i++)
        if (strcmp(set->lists[i], list) == 0)
            return 0;
    if (set->n == set->cap) {
        unsigned cap = set->cap ? set->cap * 2 : 16;
        void *nl = realloc(set->lists, cap * sizeof(*set->lists));
        if (!nl)
            return -ENOMEM;
        set->lists = nl;
        set->cap = cap;
    }
    snprintf(set->lists[set->n++], sizeof(set->lists[0]), "%s", list);
    return 0;
}

int kt_host_info_read(kt_host_info_t *ret)
{
    if (!ret)
        return -EINVAL;
    char online[4096];
    int r = s_read_small("/sys/devices/system/cpu/online", online, sizeof(online));
    if (r < 0)
        return r;
    s_llc_set_t set = {0};
    r = s_foreach_cpu(online, s_add_cpu, &set);
    free(set.lists);
    if (r < 0)
        return r;

    _cleanup_fclose_ FILE *f = fopen("/proc/meminfo", "re");
    if (!f)
        return -errno;
    char line[256];
    unsigned long long kib = 0;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "MemTotal: %llu kB", &kib) == 1)
            break;
    if (kib == 0)
        return -ENODATA;

    ret->cpus = set.cpus;
    /* 0 says "unknown": a host without cache information in sysfs. */
    ret->llcs = set.unknown ? 0 : set.n;
    ret->memory_mib = kib / 1024;
    return 0;
}

/* ---- the device ---- */

void kt_kvm_probe_device(kt_kvm_status_t *ret)
{
    memset(ret, 0, sizeof(*ret));
    ret->api_version = -1;
    struct stat st;
    if (stat(S_KVM_DEV, &st) < 0) {
        snprintf(ret->reason, sizeof(ret->reason), "%s: %s (no KVM on this host or not exposed)",
                 S_KVM_DEV, strerror(errno));
        return;
    }
    if (!S_ISCHR(st.st_mode)) {
        snprintf(ret->reason, sizeof(ret->reason), "%s is not a character device", S_KVM_DEV);
        return;
    }
    ret->present = true;
    _cleanup_close_ int fd = open(S_KVM_DEV, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        snprintf(ret->reason, sizeof(ret->reason), "cannot open %s: %s%s", S_KVM_DEV,
                 strerror(errno), errno == EACCES ? " (join the kvm group or run as root)" : "");
        return;
    }
    ret->openable = true;
    int v = ioctl(fd, KVM_GET_API_VERSION, 0);
    if (v < 0) {
        snprintf(ret->reason, sizeof(ret->reason), "KVM_GET_API_VERSION on %s failed: %s",
                 S_KVM_DEV, strerror(errno));
        return;
    }
    ret->api_version = v;
    if (v != S_KVM_API) {
        snprintf(ret->reason, sizeof(ret->reason), "KVM API version %d, need %d", v, S_KVM_API);
        return;
    }
    snprintf(ret->reason, sizeof(ret->reason), "device ok, no canary boot yet");
}

/* ---- canary ---- */

static int s_rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void s_rm_tree(const char *dir)
{
    nftw(dir, s_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int kt_canary_boot(enum kt_accel accel, const char *kernel, const char *initrd, const char *workdir,
                   uint32_t bound_ms, kt_canary_t *ret)
{
    if (!ret)
        return -EINVAL;
    memset(ret, 0, sizeof(*ret));
    if (!kernel || !initrd || (accel != KT_ACCEL_KVM && accel != KT_ACCEL_TCG) || bound_ms == 0) {
        snprintf(ret->reason, sizeof(ret->reason), "canary: no kernel, initrd or accel given");
        return -EINVAL;
    }
    char tmp[] = "/tmp/ktstr-canary-XXXXXX";
    if (!workdir) {
        if (!mkdtemp(tmp)) {
            int r = -errno;
            snprintf(ret->reason, sizeof(ret->reason), "canary: mkdtemp: %s", strerror(-r));
            return r;
        }
        workdir = tmp;
    }

    kt_vm_config_t cfg;
    kt_vm_config_init(&cfg);
    cfg.kernel = kernel;
    cfg.initrd = initrd;
    cfg.workdir = workdir;
    cfg.accel = accel;
    cfg.machine = KT_MACHINE_Q35;
    cfg.topology = (kt_topology_t){1, 1, 2, 1};
    cfg.memory_mib = 256;
    cfg.cell_msg = NULL; /* shutdown right after hello */
    cfg.boot_timeout_ms = bound_ms;
    cfg.collect_timeout_ms = 5000;

    kt_vm_outcome_t out;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int r = kt_vm_run(&cfg, &out);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    ret->total_ms =
        (uint64_t)((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000);
    if (r < 0) {
        s_say(ret->reason, sizeof(ret->reason), "canary under %s could not start: %s",
              kt_accel_name(accel), out.error_text[0] ? out.error_text : strerror(-r));
    } else if (out.got_hello) {
        ret->ok = ret->hello = true;
        ret->boot_ms = out.boot_ms;
        snprintf(ret->reason, sizeof(ret->reason), "ok");
    } else if (out.timed_out && !out.vm_state[0] && strstr(out.console_tail, "KTSTR_INIT_READY")) {
        /* The guest ran up to ktstr-init and is still alive: the
         * accelerator works, the channel did not (a different problem,
         * reported as such). A guest that got there and then died or was
         * stopped by QEMU does not count. */
        ret->ok = true;
        s_say(ret->reason, sizeof(ret->reason),
              "ktstr-init started under %s but never said hello on the channel: %s",
              kt_accel_name(accel), out.error_text);
    } else {
        s_say(ret->reason, sizeof(ret->reason), "canary boot under %s failed: %s",
              kt_accel_name(accel),
              out.error_text[0] ? out.error_text : "no hello and no KTSTR_INIT_READY");
    }
    if (workdir == tmp)
        s_rm_tree(tmp);
    return r < 0 ? r : 0;
}

int kt_kvm_check(const char *kernel, const char *initrd, const char *workdir, kt_kvm_status_t *ret)
{
    if (!ret)
        return -EINVAL;
    kt_kvm_probe_device(ret);
    if (!ret->present || !ret->openable || ret->api_version != S_KVM_API)
        return 0;
    if (!kernel || !initrd) {
        snprintf(ret->reason, sizeof(ret->reason),
                 "device ok, but no kernel and initrd for the canary boot");
        return -EINVAL;
    }
    kt_canary_t c;
    kt_canary_boot(KT_ACCEL_KVM, kernel, initrd, workdir, KT_KVM_CANARY_BOUND_MS, &c);
    ret->usable = c.ok;
    ret->canary_ms = c.ok ? (c.boot_ms ? c.boot_ms : c.total_ms) : c.total_ms;
    snprintf(ret->reason, sizeof(ret->reason), "%s", c.reason);
    return 0;
}

int kt_accel_resolve(enum kt_accel requested, const kt_kvm_status_t *st, enum kt_accel *ret)
{
    if (!ret)
        return -EINVAL;
    bool kvm = st && st->usable;
    switch (requested) {
    case KT_ACCEL_AUTO:
        *ret = kvm ? KT_ACCEL_KVM : KT_ACCEL_TCG;
        return 0;
    case KT_ACCEL_KVM:
        if (!kvm)
            return -ENODEV;
        *ret = KT_ACCEL_KVM;
        return 0;
    case KT_ACCEL_TCG:
        *ret = KT_ACCEL_TCG;
        return 0;
    }
    return -EINVAL;
}

/* ---- the accelerator decision, cached per boot ---- */

static void s_accel_cache_path(char *buf, size_t len)
{
    char boot_id[64] = "unknown";
    if (s_read_small("/proc/sys/kernel/random/boot_id", boot_id, sizeof(boot_id)) >= 0)
        boot_id[strcspn(boot_id, "\n")] = '\0';
    snprintf(buf, len, "/dev/shm/ktstr-accel-%u-%.40s", (unsigned)getuid(), boot_id);
}

static bool s_accel_cache_read(kt_kvm_status_t *st)
{
    char path[128], line[320];
    struct stat sb;
    s_accel_cache_path(path, sizeof(path));
    if (getenv("KTSTR_NO_ACCEL_CACHE") || stat(path, &sb) < 0 || time(NULL) - sb.st_mtime > 3600)
        return false;
    if (s_read_small(path, line, sizeof(line)) < 0)
        return false;
    if (strncmp(line, "kvm ", 4) != 0 && strncmp(line, "tcg ", 4) != 0)
        return false;
    line[strcspn(line, "\n")] = '\0';
    memset(st, 0, sizeof(*st));
    st->present = st->openable = true;
    st->api_version = 12;
    st->usable = line[0] == 'k';
    snprintf(st->reason, sizeof(st->reason), "%.200s (cached)", line + 4);
    return true;
}

static void s_accel_cache_write(const kt_kvm_status_t *st)
{
    char path[128], tmp[160];
    s_accel_cache_path(path, sizeof(path));
    snprintf(tmp, sizeof(tmp), "%s.%d", path, (int)getpid());
    FILE *f = fopen(tmp, "we");
    if (!f)
        return;
    fprintf(f, "%s %s\n", st->usable ? "kvm" : "tcg", st->reason);
    if (fclose(f) != 0 || rename(tmp, path) < 0)
        unlink(tmp);
}

int kt_accel_choose(enum kt_accel requested, const char *kernel, const char *image_dir,
                    bool use_cache, enum kt_accel *ret, kt_kvm_status_t *st)
{
    if (requested == KT_ACCEL_TCG) {
        memset(st, 0, sizeof(*st));
        st->api_version = -1;
        snprintf(st->reason, sizeof(st->reason), "tcg requested");
        *ret = KT_ACCEL_TCG;
        return 0;
    }
    if (!(use_cache && s_accel_cache_read(st))) {
        kt_kvm_probe_device(st);
        bool device_ok = st->present && st->openable && st->api_version == 12;
        const char *init = kt_runcell_find_init();
        if (device_ok && kernel && init) {
            kt_image_entry_t entries[] = {
                {.guest_path = "init", .host_path = init, .mode = 0755},
                {.guest_path = "bin/busybox", .host_path = "/bin/busybox", .mode = 0755},
            };
            const char *env = getenv("KTSTR_IMAGE_DIR");
            const char *dir = image_dir && *image_dir ? image_dir : env && *env ? env : NULL;
            kt_image_t *img = NULL;
            int r = kt_image_acquire(dir ? dir : KT_IMAGE_DEFAULT_DIR, entries,
                                     KT_ARRAY_SIZE(entries), &img);
            if (r < 0) {
                st->usable = false;
                s_say(st->reason, sizeof(st->reason), "cannot build the canary image: %s",
                      strerror(-r));
            } else {
                kt_kvm_check(kernel, kt_image_path(img), NULL, st);
                kt_image_release(&img);
                /* A verdict from a real canary describes the host: keep it. */
                if (use_cache)
                    s_accel_cache_write(st);
            }
        } else if (device_ok) {
            st->usable = false;
            s_say(st->reason, sizeof(st->reason),
                  "/dev/kvm is there but no canary %s could prove it boots",
                  kernel ? "image (ktstr-init not found)" : "kernel");
        }
    }
    return kt_accel_resolve(requested, st, ret);
}
