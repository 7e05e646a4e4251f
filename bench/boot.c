/* bench/boot: how long a cell's VM takes to come up, and what the shared
 * base image saves.
 *
 * 1. QEMU start -> ktstr-init ready (hello) and -> result, median over R
 *    runs, q35 vs microvm, side by side.
 * 2. A batch of B cells: the shared warm image (acquired once, found ready
 *    by every VM) vs rebuilding the image for each VM (a fresh directory
 *    each time), side by side.
 * Last line: key=value pairs.
 *
 * usage: bench-boot --kernel BZIMAGE [--runs R] [--batch B] [--accel tcg|kvm] */
#include <errno.h>
#include <getopt.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kt_chanmsg.h"
#include "kt_image.h"
#include "kt_log.h"
#include "kt_runcell.h"
#include "kt_vm.h"

static uint64_t s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int s_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static uint64_t s_median(uint64_t *v, unsigned n)
{
    if (!n)
        return 0;
    qsort(v, n, sizeof(*v), s_cmp);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static int s_ignore(void *ud, const char *type, const void *body, size_t len)
{
    (void)ud, (void)type, (void)body, (void)len;
    return 0;
}

/* A small cell: one spinner for 200 ms under EEVDF. */
static int s_cell(const kt_topology_t *t, msgpack_sbuffer *out)
{
    kt_cell_msg_t *m = calloc(1, sizeof(*m));
    if (!m)
        return -ENOMEM;
    kt_cell_msg_init(m);
    snprintf(m->cell_id, sizeof(m->cell_id), "bench-boot");
    kt_scenario_t s;
    kt_scenario_init(&s, "bench");
    s.cgroups[s.n_cgroups++] = (kt_cgroup_spec_t){.name = "cg_0", .workers = 1};
    s.duration_ms = 200;
    char why[256];
    int r = kt_scenario_resolve(&s, t, 0, &m->plan, why, sizeof(why));
    m->settle_ms = 0;
    if (r == 0)
        r = kt_cell_msg_encode(m, out);
    free(m);
    return r;
}

struct s_sample {
    uint64_t ready_ms, result_ms, total_ms;
    bool ok;
};

static int s_boot(const char *kernel, const char *initrd, enum kt_machine machine,
                  enum kt_accel accel, const msgpack_sbuffer *cell, struct s_sample *ret)
{
    char dir[] = "/tmp/ktstr-bench-XXXXXX";
    if (!mkdtemp(dir))
        return -errno;
    kt_vm_config_t cfg;
    kt_vm_config_init(&cfg);
    cfg.kernel = kernel;
    cfg.initrd = initrd;
    cfg.topology = (kt_topology_t){1, 1, 2, 1};
    cfg.memory_mib = 256;
    cfg.accel = accel;
    cfg.machine = machine;
    cfg.workdir = dir;
    cfg.cell_msg = cell->data;
    cfg.cell_msg_len = cell->size;
    cfg.boot_timeout_ms = 60000;
    cfg.run_timeout_ms = 60000;
    cfg.collect_timeout_ms = 30000;
    cfg.on_message = s_ignore;
    kt_vm_outcome_t o;
    uint64_t t0 = s_now_ms();
    int r = kt_vm_run(&cfg, &o);
    ret->total_ms = s_now_ms() - t0;
    ret->ok = r == 0 && o.got_result;
    ret->ready_ms = o.boot_ms;
    ret->result_ms = o.boot_ms + o.run_ms;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        kt_log_warn("could not remove '%s', ignoring", dir);
    return r;
}

int main(int argc, char **argv)
{
    const char *kernel = NULL;
    unsigned runs = 5, batch = 4;
    enum kt_accel accel = KT_ACCEL_TCG;
    static const struct option opts[] = {
        {"kernel", required_argument, NULL, 'k'}, {"runs", required_argument, NULL, 'r'},
        {"batch", required_argument, NULL, 'b'},  {"accel", required_argument, NULL, 'a'},
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'k': kernel = optarg; break;
        case 'r': runs = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'b': batch = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'a':
            if (kt_accel_parse(optarg, &accel) < 0 || accel == KT_ACCEL_AUTO) {
                fprintf(stderr, "bench-boot: --accel kvm|tcg\n");
                return 2;
            }
            break;
        default: return 2;
        }
    }
    if (!kernel || runs == 0 || runs > 100 || batch == 0 || batch > 100) {
        fprintf(stderr, "usage: bench-boot --kernel BZIMAGE [--runs 1..100] [--batch 1..100] "
                        "[--accel tcg|kvm]\n");
        return 2;
    }
    const char *init = kt_runcell_find_init();
    if (!init) {
        fprintf(stderr, "bench-boot: ktstr-init not found\n");
        return 2;
    }
    kt_image_entry_t entries[] = {
        {.guest_path = "init", .host_path = init, .mode = 0755},
        {.guest_path = "bin/busybox", .host_path = "/bin/busybox", .mode = 0755},
    };
    char shm[] = "/tmp/ktstr-bench-shm-XXXXXX";
    if (!mkdtemp(shm))
        return 2;
    kt_image_t *img = NULL;
    int r = kt_image_acquire(shm, entries, 2, &img);
    if (r < 0) {
        fprintf(stderr, "bench-boot: image: %s\n", strerror(-r));
        return 2;
    }
    kt_topology_t t = {1, 1, 2, 1};
    msgpack_sbuffer cell;
    msgpack_sbuffer_init(&cell);
    if (s_cell(&t, &cell) < 0)
        return 2;

    printf("bench-boot: kernel '%s', accel %s, 2 vCPUs, %u runs each\n", kernel,
           kt_accel_name(accel), runs);
    static const enum kt_machine machines[] = {KT_MACHINE_Q35, KT_MACHINE_MICROVM};
    static const char *const mnames[] = {"q35", "microvm"};
    uint64_t ready_med[2], result_med[2];
    unsigned okn[2];
    for (int m = 0; m < 2; m++) {
        uint64_t ready[100], result[100];
        unsigned n = 0;
        for (unsigned i = 0; i < runs; i++) {
            struct s_sample s;
            if (s_boot(kernel, kt_image_path(img), machines[m], accel, &cell, &s) == 0 && s.ok) {
                ready[n] = s.ready_ms;
                result[n++] = s.result_ms;
            }
        }
        okn[m] = n;
        ready_med[m] = s_median(ready, n);
        result_med[m] = s_median(result, n);
    }
    printf("%-10s %8s %12s %12s\n", "machine", "ok", "ready_ms", "result_ms");
    for (int m = 0; m < 2; m++)
        printf("%-10s %5u/%-2u %12llu %12llu\n", mnames[m], okn[m], runs,
               (unsigned long long)ready_med[m], (unsigned long long)result_med[m]);

    /* Batch: warm shared image vs a rebuild per VM. */
    uint64_t t0 = s_now_ms(), acquire_warm = 0, acquire_cold = 0;
    unsigned ok_warm = 0, ok_cold = 0;
    for (unsigned i = 0; i < batch; i++) {
        uint64_t ta = s_now_ms();
        kt_image_t *u = NULL;
        if (kt_image_acquire(shm, entries, 2, &u) < 0)
            continue;
        acquire_warm += s_now_ms() - ta;
        struct s_sample s;
        if (s_boot(kernel, kt_image_path(u), KT_MACHINE_Q35, accel, &cell, &s) == 0 && s.ok)
            ok_warm++;
        kt_image_release(&u);
    }
    uint64_t warm_ms = s_now_ms() - t0;
    t0 = s_now_ms();
    for (unsigned i = 0; i < batch; i++) {
        char fresh[] = "/tmp/ktstr-bench-cold-XXXXXX";
        if (!mkdtemp(fresh))
            continue;
        uint64_t ta = s_now_ms();
        kt_image_t *u = NULL;
        if (kt_image_acquire(fresh, entries, 2, &u) == 0) {
            acquire_cold += s_now_ms() - ta;
            struct s_sample s;
            if (s_boot(kernel, kt_image_path(u), KT_MACHINE_Q35, accel, &cell, &s) == 0 && s.ok)
                ok_cold++;
            kt_image_release(&u);
        }
        kt_image_sweep(fresh, 0, NULL);
        rmdir(fresh);
    }
    uint64_t cold_ms = s_now_ms() - t0;
    printf("\nbatch of %u cells (q35)  %10s %14s %6s\n", batch, "total_ms", "image_ms/cell", "ok");
    printf("%-22s %10llu %14.1f %3u/%u\n", "shared warm image", (unsigned long long)warm_ms,
           (double)acquire_warm / batch, ok_warm, batch);
    printf("%-22s %10llu %14.1f %3u/%u\n", "rebuild per VM", (unsigned long long)cold_ms,
           (double)acquire_cold / batch, ok_cold, batch);

    kt_image_release(&img);
    kt_image_sweep(shm, 0, NULL);
    rmdir(shm);
    msgpack_sbuffer_destroy(&cell);
    printf("q35_ready_ms=%llu q35_result_ms=%llu microvm_ready_ms=%llu microvm_result_ms=%llu "
           "batch=%u warm_batch_ms=%llu rebuild_batch_ms=%llu warm_image_ms=%.1f "
           "rebuild_image_ms=%.1f\n",
           (unsigned long long)ready_med[0], (unsigned long long)result_med[0],
           (unsigned long long)ready_med[1], (unsigned long long)result_med[1], batch,
           (unsigned long long)warm_ms, (unsigned long long)cold_ms, (double)acquire_warm / batch,
           (double)acquire_cold / batch);
    return okn[0] && okn[1] && ok_warm == batch && ok_cold == batch ? 0 : 1;
}
