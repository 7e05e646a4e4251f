/* ktstr-worker serve: the worker daemon. Parses its options, settles the
 * accelerator (a KVM canary boot for the VM executor, like run-cell), and
 * runs kt_serve_main until SIGINT, or until a SIGTERM drain has finished. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <glob.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "builtins.h"
#include "kt_cleanup.h"
#include "kt_cli.h"
#include "kt_executor.h"
#include "kt_image.h"
#include "kt_kvm.h"
#include "kt_log.h"
#include "kt_runcell.h"
#include "kt_serve.h"

#define S_DEFAULT_BIND "tcp://*:7461"
/* The VM executor keeps each cell's sidecar and full console log under
 * {cache}/cells/{cell}-{attempt}/ (the coordinator gets the sidecar and the
 * console's tail); older than this they go at start-up. */
#define S_CELL_DIR_KEEP_SECS (3 * 24 * 3600)

static void s_usage(FILE *f)
{
    fprintf(f,
            "usage: ktstr-worker serve [--bind tcp://ADDR:PORT] [--id NAME]\n"
            "           [--curve-secret FILE --allow DIR | --insecure]\n"
            "           [--accel auto|kvm|tcg] [--cache DIR] [--executor vm|null|sleep:MS]\n"
            "           [--vcpus N] [--memory MIB] [--max-vcpus N] [--heartbeat MS]\n"
            "           [--lost-after MS] [--canary-kernel PATH] [--image-dir DIR]\n"
            "           [--boot-retries N] [-v]\n"
            "Serves coordinators (ktstr-coord) on --bind (default %s): runs the cells\n"
            "they assign in VMs, sharing --vcpus/--memory (default: the host's CPUs and 3/4\n"
            "of its memory) among all of them, never oversold. Artifacts are cached by\n"
            "sha256 and results journaled in --cache (default /var/cache/ktstr as root,\n"
            "else ~/.cache/ktstr) until the coordinator acknowledges them.\n"
            "A bind that is not loopback needs CURVE (--curve-secret: this worker's\n"
            "*.key_secret from `ktstr-coord keygen`; --allow: a folder of coordinator\n"
            "public keys) or an explicit --insecure.\n"
            "--executor null|sleep:MS run no VM (benchmarks, protocol tests) and say so in\n"
            "every sidecar. --boot-retries (default %d) boots a cell's VM again when it never\n"
            "reached ktstr-init and the cause may be the host's (QEMU crashed, the kernel\n"
            "oopsed or hung at boot); the sidecar's boot_retries says so.\n"
            "SIGTERM drains (running cells finish, nothing new is taken); SIGINT stops at\n"
            "once.\n",
            S_DEFAULT_BIND, KT_RUNCELL_BOOT_RETRIES);
}

static void s_globfreep(glob_t *g)
{
    globfree(g);
}

/* --canary-kernel, else $KTSTR_CANARY_KERNEL, else the newest readable
 * /boot/vmlinuz-*. Caller owns. */
static char *s_canary_kernel(const char *opt)
{
    if (opt)
        return strdup(opt);
    const char *env = getenv("KTSTR_CANARY_KERNEL");
    if (env && *env)
        return strdup(env);
    _cleanup_(s_globfreep) glob_t g = {0};
    if (glob("/boot/vmlinuz-*", 0, NULL, &g) != 0)
        return NULL;
    const char *best = NULL;
    for (size_t i = 0; i < g.gl_pathc; i++)
        if (access(g.gl_pathv[i], R_OK) == 0 && (!best || strverscmp(g.gl_pathv[i], best) > 0))
            best = g.gl_pathv[i];
    return best ? strdup(best) : NULL;
}

/* The accelerator the VM executor will use, proven by a canary boot where
 * one is possible. 0, or -1 after saying why the worker cannot start. */
static int s_resolve_accel(enum kt_accel requested, const char *canary_opt, const char *image_dir,
                           enum kt_accel *ret, uint32_t *ret_canary_ms, char *reason,
                           size_t reason_len)
{
    *ret_canary_ms = 0;
    _cleanup_free_ char *kernel = s_canary_kernel(canary_opt);
    if (kernel && access(kernel, R_OK) != 0) {
        kt_log_error("serve: canary kernel '%s': %m", kernel);
        return -1;
    }
    const char *init = kt_runcell_find_init();
    kt_image_t *img = NULL;
    if (kernel && init) {
        kt_image_entry_t entries[] = {
            {.guest_path = "init", .host_path = init, .mode = 0755},
            {.guest_path = "bin/busybox", .host_path = "/bin/busybox", .mode = 0755},
        };
        const char *dir = image_dir && *image_dir ? image_dir : getenv("KTSTR_IMAGE_DIR");
        int r = kt_image_acquire(dir && *dir ? dir : KT_IMAGE_DEFAULT_DIR, entries,
                                 KT_ARRAY_SIZE(entries), &img);
        if (r < 0)
            kt_log_warn("serve: cannot build the canary image: %s; no canary boot",
                        strerror(-r));
    }

    kt_kvm_status_t st;
    if (kt_accel_choose(requested, kernel, image_dir, true, ret, &st) < 0) {
        kt_log_error("serve: --accel kvm requested but KVM is unusable: %s", st.reason);
        kt_image_release(&img);
        return -1;
    }
    snprintf(reason, reason_len, "%s%s",
             *ret == KT_ACCEL_TCG && requested != KT_ACCEL_TCG ? "KVM not usable, TCG: " : "",
             st.reason);
    if (*ret == KT_ACCEL_KVM)
        *ret_canary_ms = (uint32_t)st.canary_ms;
    else
        kt_log_info("serve: %s", reason);

    if (*ret == KT_ACCEL_TCG && img) {
        kt_canary_t c;
        kt_log_info("serve: canary boot under tcg kernel='%s'", kernel);
        kt_canary_boot(KT_ACCEL_TCG, kernel, kt_image_path(img), NULL, KT_TCG_CANARY_BOUND_MS,
                       &c);
        if (!c.ok) {
            kt_log_error("serve: the canary kernel does not boot under TCG either: %s", c.reason);
            kt_image_release(&img);
            return -1;
        }
        *ret_canary_ms = (uint32_t)(c.boot_ms ? c.boot_ms : c.total_ms);
    } else if (!img)
        kt_log_warn("serve: no canary boot (no kernel%s): HELLO carries canary_ms=0",
                    init ? "" : " or no ktstr-init");
    kt_image_release(&img);
    return 0;
}

/* Removes cell folders (plain files only, one level) older than keep_secs. */
static void s_sweep_cells(const char *work, time_t keep_secs)
{
    DIR *d = opendir(work);
    if (!d)
        return;
    time_t now = time(NULL);
    unsigned removed = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        struct stat st;
        if (de->d_name[0] == '.' || fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
            !S_ISDIR(st.st_mode) || now - st.st_mtime < keep_secs)
            continue;
        int fd = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
            continue;
        DIR *cd = fdopendir(fd);
        if (!cd) {
            close(fd);
            continue;
        }
        struct dirent *ce;
        while ((ce = readdir(cd)))
            if (ce->d_name[0] != '.' || (strcmp(ce->d_name, ".") && strcmp(ce->d_name, "..")))
                unlinkat(fd, ce->d_name, 0);
        closedir(cd);
        if (unlinkat(dirfd(d), de->d_name, AT_REMOVEDIR) == 0)
            removed++;
    }
    closedir(d);
    if (removed)
        kt_log_info("serve: removed %u cell folders older than %ld days from '%s'", removed,
                    (long)(keep_secs / 86400), work);
}

static void s_default_cache(char *buf, size_t len)
{
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    if (geteuid() == 0)
        snprintf(buf, len, "/var/cache/ktstr");
    else if (xdg && *xdg)
        snprintf(buf, len, "%s/ktstr", xdg);
    else if (home && *home)
        snprintf(buf, len, "%s/.cache/ktstr", home);
    else
        snprintf(buf, len, "/tmp/ktstr-cache-%u", (unsigned)getuid());
}

int builtin_serve(int argc, char **argv)
{
    static const struct option opts[] = {
        {"bind", required_argument, NULL, 'b'},
        {"id", required_argument, NULL, 'i'},
        {"curve-secret", required_argument, NULL, 'c'},
        {"allow", required_argument, NULL, 'a'},
        {"insecure", no_argument, NULL, 'I'},
        {"accel", required_argument, NULL, 'A'},
        {"cache", required_argument, NULL, 'C'},
        {"executor", required_argument, NULL, 'e'},
        {"vcpus", required_argument, NULL, 'n'},
        {"memory", required_argument, NULL, 'm'},
        {"max-vcpus", required_argument, NULL, 'x'},
        {"heartbeat", required_argument, NULL, 'H'},
        {"lost-after", required_argument, NULL, 'L'},
        {"canary-kernel", required_argument, NULL, 'k'},
        {"image-dir", required_argument, NULL, 'd'},
        {"boot-retries", required_argument, NULL, 'R'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    kt_serve_config_t cfg = {.bind = S_DEFAULT_BIND};
    const char *executor = "vm", *canary = NULL, *image_dir = NULL;
    enum kt_accel accel = KT_ACCEL_AUTO;
    unsigned boot_tries = 0;
    uint64_t v;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
        switch (c) {
        case 'b': cfg.bind = optarg; break;
        case 'i': cfg.worker_id = optarg; break;
        case 'c': cfg.curve_secret = optarg; break;
        case 'a': cfg.allow_dir = optarg; break;
        case 'I': cfg.insecure = true; break;
        case 'A':
            if (kt_accel_parse(optarg, &accel) < 0) {
                fprintf(stderr, "serve: --accel '%s': expected auto, kvm or tcg\n", optarg);
                return 2;
            }
            break;
        case 'C': cfg.cache_dir = optarg; break;
        case 'e': executor = optarg; break;
        case 'n':
            if (kt_cli_parse_u64(optarg, 1, 1u << 16, &v) < 0) {
                fprintf(stderr, "serve: --vcpus '%s': a number from 1 to 65536\n", optarg);
                return 2;
            }
            cfg.capacity_vcpus = (uint32_t)v;
            break;
        case 'm':
            if (kt_cli_parse_u64(optarg, 256, 1ull << 32, &v) < 0) {
                fprintf(stderr, "serve: --memory '%s': MiB, from 256\n", optarg);
                return 2;
            }
            cfg.capacity_memory_mib = v;
            break;
        case 'x':
            if (kt_cli_parse_u64(optarg, 1, 1u << 16, &v) < 0) {
                fprintf(stderr, "serve: --max-vcpus '%s': a number from 1 to 65536\n", optarg);
                return 2;
            }
            cfg.max_vcpus_per_vm = (uint32_t)v;
            break;
        case 'H':
            if (kt_cli_parse_u64(optarg, 10, 60000, &v) < 0) {
                fprintf(stderr, "serve: --heartbeat '%s': ms, from 10 to 60000\n", optarg);
                return 2;
            }
            cfg.heartbeat_ms = (uint32_t)v;
            break;
        case 'L':
            if (kt_cli_parse_u64(optarg, 20, 600000, &v) < 0) {
                fprintf(stderr, "serve: --lost-after '%s': ms, from 20 to 600000\n", optarg);
                return 2;
            }
            cfg.lost_after_ms = (uint32_t)v;
            break;
        case 'k': canary = optarg; break;
        case 'd': image_dir = optarg; break;
        case 'R':
            if (kt_cli_parse_u64(optarg, 0, 9, &v) < 0) {
                fprintf(stderr, "serve: --boot-retries '%s': a number from 0 to 9\n", optarg);
                return 2;
            }
            boot_tries = (unsigned)v + 1;
            break;
        case 'v': kt_log_set_level(KT_LOG_DEBUG); break;
        case 'h': s_usage(stdout); return 0;
        default: s_usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "serve: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    uint32_t hb = cfg.heartbeat_ms ? cfg.heartbeat_ms : 1000;
    uint32_t lost = cfg.lost_after_ms ? cfg.lost_after_ms : 5000;
    if (lost <= hb) {
        fprintf(stderr, "serve: --lost-after %u ms must be longer than --heartbeat %u ms\n", lost,
                hb);
        return 2;
    }
    if (cfg.insecure && (cfg.curve_secret || cfg.allow_dir)) {
        fprintf(stderr, "serve: --insecure and --curve-secret/--allow exclude each other\n");
        return 2;
    }
    if (!!cfg.curve_secret != !!cfg.allow_dir) {
        fprintf(stderr, "serve: CURVE needs both --curve-secret FILE and --allow DIR\n");
        return 2;
    }

    char cache[PATH_MAX], work[PATH_MAX + 16];
    if (cfg.cache_dir)
        snprintf(cache, sizeof(cache), "%s", cfg.cache_dir);
    else
        s_default_cache(cache, sizeof(cache));
    cfg.cache_dir = cache;
    snprintf(work, sizeof(work), "%s/cells", cache);

    kt_vm_executor_config_t vm = {
        .work_dir = work, .image_dir = image_dir, .boot_tries = boot_tries};
    if (strcmp(executor, "vm") == 0) {
        uint32_t canary_ms = 0;
        static char accel_reason[400];
        if (s_resolve_accel(accel, canary, image_dir, &vm.accel, &canary_ms, accel_reason,
                            sizeof(accel_reason)) < 0)
            return 1;
        vm.accel_reason = accel_reason;
        s_sweep_cells(work, S_CELL_DIR_KEEP_SECS);
        cfg.executor = kt_executor_vm(&vm);
        cfg.accel_name = kt_accel_name(vm.accel);
        cfg.canary_ms = canary_ms;
    } else if (strcmp(executor, "null") == 0 || strncmp(executor, "sleep:", 6) == 0) {
        if (executor[0] == 's') {
            if (kt_cli_parse_u64(executor + 6, 0, 3600000, &v) < 0) {
                fprintf(stderr, "serve: --executor '%s': sleep:MS with MS up to 3600000\n",
                        executor);
                return 2;
            }
            cfg.executor = kt_executor_sleep((uint32_t)v);
        } else
            cfg.executor = kt_executor_null();
        /* No VM boots: nothing to check; the coordinator still sees an
         * accelerator, the one asked for (tcg unless kvm). */
        cfg.accel_name = accel == KT_ACCEL_KVM ? "kvm" : "tcg";
        kt_log_warn("serve: executor %s: cells are not run, their sidecars say so", executor);
    } else {
        fprintf(stderr, "serve: --executor '%s': expected vm, null or sleep:MS\n", executor);
        return 2;
    }
    return kt_serve_main(&cfg);
}
