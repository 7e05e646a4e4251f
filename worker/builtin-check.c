/* ktstr-worker check: can this host run test VMs, and with what? Probes
 * /dev/kvm, boots a canary kernel under KVM (and under TCG when KVM is not
 * usable, so the report says whether the host can boot at all), and prints
 * the accelerator `--accel` resolves to plus the host's CPUs, LLCs and
 * memory. Exit status: 0 when the requested accelerator is available, 1
 * when it is not (or no accelerator boots the canary), 2 for usage errors
 * and missing inputs. */
#include <errno.h>
#include <getopt.h>
#include <glob.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "builtins.h"
#include "kt_cleanup.h"
#include "kt_image.h"
#include "kt_kvm.h"
#include "kt_log.h"
#include "kt_runcell.h"
#include "kt_vm.h"

static void s_usage(FILE *f)
{
    fprintf(f, "usage: ktstr-worker check [--json] [--kernel PATH] [--accel auto|kvm|tcg]\n"
               "           [--init PATH] [--image-dir DIR]\n"
               "Checks /dev/kvm and boots a canary kernel under KVM (and under TCG when KVM\n"
               "is not usable). The kernel: --kernel, else $KTSTR_CANARY_KERNEL, else the\n"
               "newest readable /boot/vmlinuz-*. The guest: ktstr-init (--init, else\n"
               "$KTSTR_INIT, the build tree's or the installed one) with /bin/busybox.\n"
               "Exit status: 0 the requested accelerator is available, 1 it is not,\n"
               "2 usage error or missing kernel / ktstr-init.\n");
}

static void s_globfreep(glob_t *g)
{
    globfree(g);
}

/* The newest readable /boot/vmlinuz-* by version order. Caller owns. */
static char *s_default_kernel(void)
{
    const char *env = getenv("KTSTR_CANARY_KERNEL");
    if (env && *env)
        return strdup(env);
    _cleanup_(s_globfreep) glob_t g = {0};
    if (glob("/boot/vmlinuz-*", 0, NULL, &g) != 0)
        return NULL;
    const char *best = NULL;
    for (size_t i = 0; i < g.gl_pathc; i++) {
        if (access(g.gl_pathv[i], R_OK) != 0)
            continue;
        if (!best || strverscmp(g.gl_pathv[i], best) > 0)
            best = g.gl_pathv[i];
    }
    return best ? strdup(best) : NULL;
}

static json_t *s_kvm_json(const kt_kvm_status_t *st, bool canary_run)
{
    return json_pack("{s:b, s:b, s:i, s:b, s:s, s:o}", "present", st->present, "openable",
                     st->openable, "api_version", st->api_version, "usable", st->usable, "reason",
                     st->reason, "canary_ms",
                     canary_run ? json_integer((json_int_t)st->canary_ms) : json_null());
}

int builtin_check(int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'},
        {"kernel", required_argument, NULL, 'k'},
        {"accel", required_argument, NULL, 'a'},
        {"init", required_argument, NULL, 'i'},
        {"image-dir", required_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    bool json = false;
    const char *kernel_opt = NULL, *init_opt = NULL, *image_dir = NULL;
    enum kt_accel requested = KT_ACCEL_AUTO;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'j':
            json = true;
            break;
        case 'k':
            kernel_opt = optarg;
            break;
        case 'a':
            if (kt_accel_parse(optarg, &requested) < 0) {
                fprintf(stderr, "ktstr-worker check: --accel: '%s' is not auto, kvm or tcg\n",
                        optarg);
                return 2;
            }
            break;
        case 'i':
            init_opt = optarg;
            break;
        case 'd':
            image_dir = optarg;
            break;
        case 'h':
            s_usage(stdout);
            return 0;
        default:
            s_usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "ktstr-worker check: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }

    kt_host_info_t host = {0};
    int r = kt_host_info_read(&host);
    if (r < 0)
        kt_log_warn("cannot read host CPU and memory facts: %s, ignoring", strerror(-r));

    char *kernel = kernel_opt ? strdup(kernel_opt) : s_default_kernel();
    if (!kernel) {
        fprintf(stderr, "ktstr-worker check: no kernel for the canary boot: pass --kernel PATH "
                        "or set KTSTR_CANARY_KERNEL (no readable /boot/vmlinuz-*)\n");
        return 2;
    }
    if (access(kernel, R_OK) != 0) {
        fprintf(stderr, "ktstr-worker check: cannot read kernel '%s': %s\n", kernel,
                strerror(errno));
        free(kernel);
        return 2;
    }
    const char *init = init_opt ? init_opt : kt_runcell_find_init();
    if (!init || access(init, R_OK) != 0) {
        fprintf(stderr,
                "ktstr-worker check: ktstr-init not found%s%s%s: pass --init PATH or "
                "set KTSTR_INIT\n",
                init ? " ('" : "", init ? init : "", init ? "' is not readable)" : "");
        free(kernel);
        return 2;
    }
    kt_image_entry_t entries[] = {
        {.guest_path = "init", .host_path = init, .mode = 0755},
        {.guest_path = "bin/busybox", .host_path = "/bin/busybox", .mode = 0755},
    };
    if (!image_dir || !*image_dir)
        image_dir = getenv("KTSTR_IMAGE_DIR");
    kt_image_t *img = NULL;
    r = kt_image_acquire(image_dir && *image_dir ? image_dir : KT_IMAGE_DEFAULT_DIR, entries,
                         KT_ARRAY_SIZE(entries), &img);
    if (r < 0) {
        fprintf(stderr,
                "ktstr-worker check: cannot build the canary image (init '%s', "
                "busybox '/bin/busybox') in '%s': %s\n",
                init, image_dir && *image_dir ? image_dir : KT_IMAGE_DEFAULT_DIR, strerror(-r));
        free(kernel);
        return 2;
    }
    const char *initrd = kt_image_path(img);

    /* KVM: device, then the canary (unless TCG was asked for). */
    kt_kvm_status_t kvm;
    bool kvm_canary = false;
    kt_kvm_probe_device(&kvm);
    if (requested != KT_ACCEL_TCG && kvm.present && kvm.openable && kvm.api_version == 12) {
        kt_log_info("canary boot under kvm kernel='%s'", kernel);
        kt_kvm_check(kernel, initrd, NULL, &kvm);
        kvm_canary = true;
    } else if (requested == KT_ACCEL_TCG && kvm.openable && kvm.api_version == 12) {
        snprintf(kvm.reason, sizeof(kvm.reason), "device ok, canary not run (--accel tcg)");
    }

    /* TCG: whenever KVM is not what will be used, so the report says
     * whether the host can boot this kernel at all. */
    kt_canary_t tcg = {0};
    bool tcg_canary = false;
    if (!kvm.usable && requested != KT_ACCEL_KVM) {
        kt_log_info("canary boot under tcg kernel='%s'", kernel);
        kt_canary_boot(KT_ACCEL_TCG, kernel, initrd, NULL, KT_TCG_CANARY_BOUND_MS, &tcg);
        tcg_canary = true;
    }
    kt_image_release(&img);

    enum kt_accel accel = KT_ACCEL_TCG;
    int status = 0;
    char verdict[512] = "";
    r = kt_accel_resolve(requested, &kvm, &accel);
    if (r < 0) {
        status = 1;
        snprintf(verdict, sizeof(verdict), "--accel kvm requested but KVM is unusable: %s",
                 kvm.reason);
    } else if (accel == KT_ACCEL_TCG && tcg_canary && !tcg.ok) {
        status = 1;
        snprintf(verdict, sizeof(verdict), "the canary kernel does not boot under TCG either: %s",
                 tcg.reason);
    } else if (accel == KT_ACCEL_TCG && requested == KT_ACCEL_AUTO) {
        snprintf(verdict, sizeof(verdict), "KVM not usable, falling back to TCG: %s", kvm.reason);
    } else {
        snprintf(verdict, sizeof(verdict), "%s available", kt_accel_name(accel));
    }

    if (json) {
        json_t *o =
            json_pack("{s:s, s:s, s:b, s:s, s:o, s:{s:i, s:i, s:I}, s:s, s:s, s:I}", "accel",
                      status == 0 ? kt_accel_name(accel) : "none", "requested",
                      kt_accel_name(requested), "ok", status == 0, "verdict", verdict, "kvm",
                      s_kvm_json(&kvm, kvm_canary), "host", "cpus", (int)host.cpus, "llcs",
                      (int)host.llcs, "memory_mib", (json_int_t)host.memory_mib, "kernel", kernel,
                      "init", init, "tcg_tsc_khz", (json_int_t)kt_vm_host_tsc_khz());
        if (o && tcg_canary) {
            json_object_set_new(
                o, "tcg_canary_ms",
                tcg.ok ? json_integer((json_int_t)(tcg.boot_ms ? tcg.boot_ms : tcg.total_ms))
                       : json_null());
            json_object_set_new(o, "tcg_canary",
                                json_pack("{s:b, s:s, s:I}", "ok", tcg.ok, "reason", tcg.reason,
                                          "total_ms", (json_int_t)tcg.total_ms));
        }
        if (!o) {
            fprintf(stderr, "ktstr-worker check: out of memory\n");
            free(kernel);
            return 2;
        }
        json_dumpf(o, stdout, JSON_INDENT(2));
        putchar('\n');
        json_decref(o);
    } else {
        printf("host:   %u CPUs, %u LLCs, %llu MiB\n", host.cpus, host.llcs,
               (unsigned long long)host.memory_mib);
        printf("kernel: %s\n", kernel);
        printf("kvm:    present=%s openable=%s api=%d usable=%s", kvm.present ? "yes" : "no",
               kvm.openable ? "yes" : "no", kvm.api_version, kvm.usable ? "yes" : "no");
        if (kvm_canary)
            printf(" canary=%llums", (unsigned long long)kvm.canary_ms);
        printf("\n        %s\n", kvm.reason);
        if (tcg_canary)
            printf("tcg:    canary %s in %llums%s%s\n", tcg.ok ? "booted" : "failed",
                   (unsigned long long)(tcg.boot_ms ? tcg.boot_ms : tcg.total_ms),
                   tcg.ok ? "" : ": ", tcg.ok ? "" : tcg.reason);
        printf("accel:  %s (requested %s)\n", status == 0 ? kt_accel_name(accel) : "none",
               kt_accel_name(requested));
        printf("%s\n", verdict);
    }
    if (status != 0)
        fprintf(stderr, "ktstr-worker check: %s\n", verdict);
    free(kernel);
    return status;
}
