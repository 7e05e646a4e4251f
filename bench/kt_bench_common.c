/* The fleet benchmarks' shared pieces (see kt_bench_common.h). */
#include "kt_bench_common.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kt_cleanup.h"
#include "kt_hash.h"
#include "kt_log.h"

const char *kt_bench_prog = "bench";
bool kt_bench_verbose;

int kt_bench_opt(int c, void (*usage)(FILE *f), bool *verbose)
{
    switch (c) {
    case 'v':
        *verbose = true;
        return -1;
    case 'h':
        usage(stdout);
        return 0;
    default:
        usage(stderr);
        return 2;
    }
}

int kt_bench_init(const char *prog, bool verbose, int optind_, int argc,
                  void (*usage)(FILE *f))
{
    if (optind_ != argc) {
        usage(stderr);
        return 2;
    }
    kt_bench_prog = prog;
    kt_bench_verbose = verbose;
    kt_log_set_ident(prog);
    if (!verbose)
        kt_log_set_level(KT_LOG_WARN);
    return 0;
}

uint64_t kt_bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void kt_bench_note(void *ud, const char *fmt, ...)
{
    (void)ud;
    if (!kt_bench_verbose)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "# note: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
}

int kt_bench_write_kernel(const char *path)
{
    _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    uint8_t buf[64 << 10];
    randombytes_buf(buf, sizeof(buf));
    if (fd < 0 || write(fd, buf, sizeof(buf)) != (ssize_t)sizeof(buf))
        return -errno;
    return 0;
}

int kt_bench_make_run(kt_coord_run_t *run, unsigned n, const char *run_id, const char *kernel,
                      uint32_t est_ms)
{
    memset(run, 0, sizeof(*run));
    snprintf(run->run_id, sizeof(run->run_id), "%s", run_id);
    run->kernels = calloc(1, sizeof(*run->kernels));
    run->scheds = calloc(1, sizeof(*run->scheds));
    run->cells = calloc(n, sizeof(*run->cells));
    if (!run->kernels || !run->scheds || !run->cells)
        return -ENOMEM;
    run->n_kernels = 1;
    run->n_scheds = 1;
    kt_coord_kernel_t *k = &run->kernels[0];
    snprintf(k->label, sizeof(k->label), "bench");
    snprintf(k->version, sizeof(k->version), "0.0.0-bench");
    snprintf(k->path, sizeof(k->path), "%s", kernel);
    int r = kt_hash_sha256_file(kernel, k->sha);
    if (r < 0)
        return r;
    struct stat st;
    if (stat(kernel, &st) < 0)
        return -errno;
    k->size = (uint64_t)st.st_size;
    snprintf(run->scheds[0].name, sizeof(run->scheds[0].name), "eevdf");

    kt_topology_t t;
    if ((r = kt_topology_parse("1,1,1,1", &t)) < 0)
        return r;
    const kt_scenario_t *sc = kt_scenario_builtin_find("steady");
    if (!sc)
        return -ENOENT;
    kt_plan_t *plan = calloc(1, sizeof(*plan));
    if (!plan)
        return -ENOMEM;
    char why[256], label[KT_TOPOLOGY_LABEL_MAX];
    r = kt_scenario_resolve(sc, &t, 1000, plan, why, sizeof(why));
    if (r < 0) {
        fprintf(stderr, "%s: cannot resolve steady on 1,1,1,1: %s\n", kt_bench_prog, why);
        free(plan);
        return r;
    }
    kt_topology_label(&t, label, sizeof(label));
    for (unsigned i = 0; i < n; i++) {
        kt_coord_cell_t *c = &run->cells[i];
        kt_cellspec_t *s = &c->spec;
        snprintf(s->cell_name, sizeof(s->cell_name), "bench/steady/%s/default/%u", label, i);
        char seed[320];
        int len = snprintf(seed, sizeof(seed), "%s|%s", run_id, s->cell_name);
        kt_hash_sha256_buf(seed, (size_t)len, s->cell_id);
        snprintf(s->run_id, sizeof(s->run_id), "%s", run_id);
        snprintf(s->kernel_label, sizeof(s->kernel_label), "%s", k->label);
        snprintf(s->kernel_version, sizeof(s->kernel_version), "%s", k->version);
        snprintf(s->kernel_sha, sizeof(s->kernel_sha), "%s", k->sha);
        s->kernel_size = k->size;
        snprintf(s->sched_name, sizeof(s->sched_name), "eevdf");
        snprintf(s->profile, sizeof(s->profile), "default");
        s->memory_mib = kt_topology_memory_mib(&t, 0);
        s->plan = *plan;
        c->kernel = 0;
        c->sched = 0;
        c->vcpus = kt_topology_cpus(&t);
        c->memory_mib = s->memory_mib;
        c->est_ms = est_ms;
    }
    run->n_cells = n;
    free(plan);
    return 0;
}

void kt_bench_run_clear(kt_coord_run_t *run)
{
    free(run->kernels);
    free(run->scheds);
    free(run->cells);
    memset(run, 0, sizeof(*run));
}

kt_dispatch_config_t kt_bench_dispatch_config(const kt_host_t *hosts, unsigned n_hosts,
                                              uint32_t no_worker_timeout_ms)
{
    return (kt_dispatch_config_t){
        .hosts = hosts,
        .n_hosts = n_hosts,
        .heartbeat_ms = 1000,
        .lost_after_ms = 5000,
        .max_attempts = 3,
        .lease_slack_ms = 30000,
        .no_worker_timeout_ms = no_worker_timeout_ms,
        .store = NULL,
    };
}

int kt_bench_parse_sizes(const char *text, unsigned max_k, unsigned *ks, unsigned max,
                         unsigned *ret_n)
{
    unsigned n = 0;
    const char *p = text;
    while (*p) {
        char *end;
        errno = 0;
        unsigned long v = strtoul(p, &end, 10);
        if (errno || end == p || v < 1 || v > max_k || n == max)
            return -EINVAL;
        ks[n++] = (unsigned)v;
        if (*end == ',')
            end++;
        else if (*end)
            return -EINVAL;
        p = end;
    }
    *ret_n = n;
    return n ? 0 : -EINVAL;
}

static int s_rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    remove(path);
    return 0;
}

void kt_bench_rm_rf(const char *dir)
{
    nftw(dir, s_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}
