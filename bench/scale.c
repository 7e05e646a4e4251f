/* bench/scale: does the fleet scale with its workers? A run of M cells,
 * each holding one worker slot for a fixed time without using CPU (the
 * sleep executor), on K = 1, 2, 4, 8 real `ktstr-worker serve` processes,
 * one slot each, over real TCP. Workers live in network namespaces (own
 * addresses in 198.51.100.0/24, one veth pair each), the coordinator
 * (kt_dispatch_run, in this process) outside; without root the namespaces
 * are skipped, saying so, and the workers listen on loopback ports.
 *
 * Printed per K: makespan (kt_dispatch_run's wall time, sessions and
 * artifact checks included), the ideal ceil(M/K) x hold beside it, the
 * coordinator's overhead over the ideal, and efficiency = T1 / (K x TK).
 * Target (issue 3): efficiency >= 0.9 at K = 8. Last line: key=value pairs.
 *
 * usage: bench-scale [--cells M] [--hold-ms MS] [--workers 1,2,4,8]
 *                    [--worker PATH] [--loopback] [--verbose] */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include "kt_bench_common.h"
#include "kt_cleanup.h"
#include "kt_config.h"
#include "kt_coord.h"
#include "kt_dispatch.h"
#include "kt_hosts.h"
#include "kt_log.h"

#define S_MAX_K 16
#define S_NETNS_LOCK "/run/lock/ktstr-netns.lock"
#define S_ROOT_ADDR "198.51.100.1"

/* Runs argv to completion with stdout/stderr to /dev/null (unless verbose).
 * Returns its exit status, or -errno when it could not run. */
static int s_run(char *const argv[])
{
    pid_t pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0) {
        if (!kt_bench_verbose) {
            int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
            if (fd >= 0) {
                dup2(fd, 1);
                dup2(fd, 2);
            }
        }
        execvp(argv[0], argv);
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -errno;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

#define S_RUN(...) s_run((char *const[]){__VA_ARGS__, NULL})

/* The namespaces (when used) and the worker processes this bench made. */
typedef struct s_fleet {
    bool netns;
    bool blackhole;
    int lock_fd;
    unsigned n_ns;
    unsigned n_workers;
    pid_t pids[S_MAX_K];
    char endpoints[S_MAX_K][64];
    char dir[64];
    uint16_t port_base;
} s_fleet_t;

static void s_ns_name(unsigned i, char *buf, size_t len)
{
    snprintf(buf, len, "ktstr-t%d-%u", (int)getpid(), i);
}

static void s_veth_name(unsigned i, char *buf, size_t len)
{
    snprintf(buf, len, "ktv%d-%u", (int)getpid(), i);
}

static void s_fleet_teardown(s_fleet_t *f)
{
    for (unsigned i = 0; i < f->n_workers; i++)
        if (f->pids[i] > 0)
            kill(f->pids[i], SIGKILL);
    for (unsigned i = 0; i < f->n_workers; i++)
        if (f->pids[i] > 0)
            while (waitpid(f->pids[i], NULL, 0) < 0 && errno == EINTR)
                ;
    f->n_workers = 0;
    for (unsigned i = 1; i <= f->n_ns; i++) {
        char ns[64], veth[32];
        s_ns_name(i, ns, sizeof(ns));
        s_veth_name(i, veth, sizeof(veth));
        S_RUN("ip", "link", "del", veth);
        S_RUN("ip", "netns", "del", ns);
    }
    f->n_ns = 0;
    if (f->blackhole)
        S_RUN("ip", "route", "del", "blackhole", "198.51.100.0/24");
    f->blackhole = false;
    if (f->lock_fd >= 0)
        close(f->lock_fd);
    f->lock_fd = -1;
}

/* Same layout and lock as tests/integration/lib_netns.sh: namespace i at
 * 198.51.100.(10+i) over a point-to-point veth pair, a blackhole route for
 * the rest of the range so nothing follows the default route. */
static int s_netns_setup(s_fleet_t *f, unsigned n)
{
    mkdir("/run/lock", 0755);
    f->lock_fd = open(S_NETNS_LOCK, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (f->lock_fd < 0)
        return -errno;
    if (flock(f->lock_fd, LOCK_EX | LOCK_NB) < 0) {
        fprintf(stderr, "bench-scale: waiting for '%s' (another test uses the namespaces)\n",
                S_NETNS_LOCK);
        if (flock(f->lock_fd, LOCK_EX) < 0)
            return -errno;
    }
    /* Namespaces left by a test or bench that was SIGKILLed (their names
     * carry the owner's pid) would hold our addresses: the shell library
     * knows how to tell and remove them. */
    char lib[4200];
    snprintf(lib, sizeof(lib), "%s/tests/integration/lib_netns.sh", KT_SOURCE_DIR);
    if (access(lib, R_OK) == 0)
        S_RUN("bash", "-c", "source \"$1\" && netns_sweep_stale", "bench-scale", lib);
    /* Added unless a blackhole for the range is already there (left by a
     * killed user: harmless, it is what we want). */
    if (S_RUN("ip", "route", "add", "blackhole", "198.51.100.0/24") == 0)
        f->blackhole = true;
    for (unsigned i = 1; i <= n; i++) {
        char ns[64], veth[32], addr[32], peer[32], root[32];
        s_ns_name(i, ns, sizeof(ns));
        s_veth_name(i, veth, sizeof(veth));
        snprintf(addr, sizeof(addr), "198.51.100.%u/32", 10 + i);
        snprintf(peer, sizeof(peer), "198.51.100.%u/32", 10 + i);
        snprintf(root, sizeof(root), "%s/32", S_ROOT_ADDR);
        f->n_ns = i;
        if (S_RUN("ip", "netns", "add", ns) != 0 ||
            S_RUN("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns) !=
                0 ||
            S_RUN("ip", "addr", "add", root, "peer", peer, "dev", veth) != 0 ||
            S_RUN("ip", "link", "set", veth, "up") != 0 ||
            S_RUN("ip", "-n", ns, "link", "set", "lo", "up") != 0 ||
            S_RUN("ip", "-n", ns, "addr", "add", addr, "peer", root, "dev", "eth0") != 0 ||
            S_RUN("ip", "-n", ns, "link", "set", "eth0", "up") != 0) {
            fprintf(stderr, "bench-scale: cannot set up namespace '%s'\n", ns);
            return -EIO;
        }
    }
    return 0;
}

static bool s_netns_possible(void)
{
    if (geteuid() != 0)
        return false;
    char ns[64];
    snprintf(ns, sizeof(ns), "ktstr-t%d-probe", (int)getpid());
    if (S_RUN("ip", "netns", "add", ns) != 0)
        return false;
    S_RUN("ip", "netns", "del", ns);
    return true;
}

static bool s_tcp_open(const char *host, uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, host, &sa.sin_addr);
    bool ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    close(fd);
    return ok;
}

/* Starts worker i (1-based) with one 1-vCPU slot and the sleep executor. */
static int s_worker_start(s_fleet_t *f, unsigned i, const char *worker, uint32_t hold_ms)
{
    char host[32], bind[64], id[32], cache[128], exec_arg[32], log[128], ns[64];
    uint16_t port = f->netns ? KT_DEFAULT_PORT : (uint16_t)(f->port_base + i);
    if (f->netns)
        snprintf(host, sizeof(host), "198.51.100.%u", 10 + i);
    else
        snprintf(host, sizeof(host), "127.0.0.1");
    snprintf(bind, sizeof(bind), "tcp://%s:%u", host, port);
    snprintf(id, sizeof(id), "scale-%u", i);
    snprintf(cache, sizeof(cache), "%s/w%u", f->dir, i);
    snprintf(exec_arg, sizeof(exec_arg), "sleep:%u", hold_ms);
    snprintf(log, sizeof(log), "%s/w%u.log", f->dir, i);
    s_ns_name(i, ns, sizeof(ns));
    mkdir(cache, 0700);

    pid_t pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0) {
        /* The worker must not outlive the bench, whatever kills it; the
         * death signal survives execve (ip netns exec execs the worker). */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        char *const serve[] = {(char *)worker, "serve", "--bind", bind, "--id", id, "--cache", cache,
                               "--executor", exec_arg, "--vcpus", "1", "--memory", "256",
                               "--insecure", NULL};
        if (f->netns) {
            char *argv[32] = {"ip", "netns", "exec", ns};
            unsigned n = 4;
            for (unsigned k = 0; serve[k]; k++)
                argv[n++] = serve[k];
            argv[n] = NULL;
            execvp("ip", argv);
        } else {
            execv(worker, serve);
        }
        _exit(127);
    }
    f->pids[f->n_workers++] = pid;
    snprintf(f->endpoints[i - 1], sizeof(f->endpoints[i - 1]), "%s", bind);
    for (int t = 0; t < 200; t++) {
        if (s_tcp_open(host, port))
            return 0;
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            f->pids[f->n_workers - 1] = 0;
            fprintf(stderr, "bench-scale: worker %u exited at start; its log '%s':\n", i, log);
            char cmd[200];
            snprintf(cmd, sizeof(cmd), "tail -n 5 '%s' >&2", log);
            if (system(cmd) < 0)
                return -ECHILD;
            return -ECHILD;
        }
        usleep(50000);
    }
    fprintf(stderr, "bench-scale: worker %u does not listen on %s after 10 s (log '%s')\n", i,
            bind, log);
    return -ETIMEDOUT;
}

typedef struct s_count {
    unsigned done, pass;
} s_count_t;

static void s_cell_done(void *ud, const kt_coord_cell_t *cell, unsigned attempt,
                        const char *worker, const char *verdict, const char *reason,
                        const char *sidecar_json, size_t sidecar_len, const char *console,
                        size_t console_len)
{
    s_count_t *c = ud;
    c->done++;
    if (strcmp(verdict, "pass") == 0)
        c->pass++;
}

/* One makespan: the first k workers, m cells. */
static int s_pass(s_fleet_t *f, unsigned k, unsigned m, const char *kernel, uint32_t hold_ms,
                  uint64_t *ret_ns, s_count_t *ret_count)
{
    char run_id[40];
    snprintf(run_id, sizeof(run_id), "bench-scale-%d-k%u", (int)getpid(), k);
    kt_coord_run_t run;
    int r = kt_bench_make_run(&run, m, run_id, kernel, hold_ms);
    kt_host_t *hosts = calloc(k, sizeof(*hosts));
    if (r < 0 || !hosts) {
        kt_bench_run_clear(&run);
        free(hosts);
        return r < 0 ? r : -ENOMEM;
    }
    for (unsigned i = 0; i < k; i++) {
        kt_host_t *h = &hosts[i];
        const char *ep = f->endpoints[i] + strlen("tcp://");
        const char *colon = strrchr(ep, ':');
        snprintf(h->host, sizeof(h->host), "%.*s", (int)(colon - ep), ep);
        h->port = (uint16_t)atoi(colon + 1);
        snprintf(h->endpoint, sizeof(h->endpoint), "%s", f->endpoints[i]);
        snprintf(h->name, sizeof(h->name), "scale-%u", i + 1);
    }
    s_count_t count = {0};
    kt_dispatch_config_t dc = kt_bench_dispatch_config(hosts, k, 15000);
    dc.events = (kt_dispatch_events_t){.cell_done = s_cell_done, .note = kt_bench_note,
                                       .userdata = &count};
    kt_dispatch_summary_t sum = {0};
    uint64_t t0 = kt_bench_now_ns();
    r = kt_dispatch_run(&dc, &run, NULL, &sum);
    *ret_ns = kt_bench_now_ns() - t0;
    *ret_count = count;
    if (r < 0)
        fprintf(stderr, "bench-scale: K=%u: kt_dispatch_run: %s\n", k, strerror(-r));
    else if (count.done != m || count.pass != m)
        fprintf(stderr, "bench-scale: K=%u: %u of %u cells done, %u pass (requeued %u)\n", k,
                count.done, m, count.pass, sum.requeued);
    free(hosts);
    kt_bench_run_clear(&run);
    return r;
}

static void s_usage(FILE *f)
{
    fprintf(f,
            "usage: bench-scale [--cells M] [--hold-ms MS] [--workers 1,2,4,8] [--worker PATH]\n"
            "                   [--loopback] [--verbose]\n"
            "  --cells     cells per run (default 64)\n"
            "  --hold-ms   how long each cell holds its slot (default 500)\n"
            "  --workers   fleet sizes K, comma-separated, each 1..%d (default 1,2,4,8)\n"
            "  --worker    ktstr-worker to start (default $KT_WORKER, else the build's)\n"
            "  --loopback  workers on 127.0.0.1 ports even as root (no namespaces)\n",
            S_MAX_K);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"cells", required_argument, NULL, 'n'},  {"hold-ms", required_argument, NULL, 't'},
        {"workers", required_argument, NULL, 'k'}, {"worker", required_argument, NULL, 'w'},
        {"loopback", no_argument, NULL, 'l'},      {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},          {0},
    };
    unsigned m = 64, ks[8] = {1, 2, 4, 8}, nk = 4;
    uint32_t hold_ms = 500;
    bool loopback = false, verbose = false;
    const char *worker = getenv("KT_WORKER");
    static char default_worker[4200];
    snprintf(default_worker, sizeof(default_worker), "%s/worker/ktstr-worker", KT_BUILD_DIR);
    if (!worker || !*worker)
        worker = default_worker;
    int c, st;
    while ((c = getopt_long(argc, argv, "n:t:k:w:lvh", opts, NULL)) != -1) {
        char *end;
        unsigned long v;
        switch (c) {
        case 'n':
        case 't':
            errno = 0;
            v = strtoul(optarg, &end, 10);
            if (errno || *end || v < 1 || v > (c == 'n' ? 100000 : 600000)) {
                fprintf(stderr, "bench-scale: --%s '%s': out of range\n",
                        c == 'n' ? "cells" : "hold-ms", optarg);
                return 2;
            }
            if (c == 'n')
                m = (unsigned)v;
            else
                hold_ms = (uint32_t)v;
            break;
        case 'k':
            if (kt_bench_parse_sizes(optarg, S_MAX_K, ks, KT_ARRAY_SIZE(ks), &nk) < 0) {
                fprintf(stderr, "bench-scale: --workers '%s': expected up to 8 of 1..%d\n", optarg,
                        S_MAX_K);
                return 2;
            }
            break;
        case 'w':
            worker = optarg;
            break;
        case 'l':
            loopback = true;
            break;
        default:
            if ((st = kt_bench_opt(c, s_usage, &verbose)) >= 0)
                return st;
        }
    }
    if ((st = kt_bench_init("bench-scale", verbose, optind, argc, s_usage)) != 0)
        return st;
    if (access(worker, X_OK) < 0) {
        fprintf(stderr, "bench-scale: ktstr-worker '%s': %s\n", worker, strerror(errno));
        return 1;
    }
    unsigned kmax = 0;
    for (unsigned i = 0; i < nk; i++)
        if (ks[i] > kmax)
            kmax = ks[i];

    s_fleet_t f = {.lock_fd = -1};
    snprintf(f.dir, sizeof(f.dir), "/tmp/kt-bench-scale.XXXXXX");
    if (!mkdtemp(f.dir)) {
        fprintf(stderr, "bench-scale: mkdtemp: %s\n", strerror(errno));
        return 1;
    }
    const char *why_loopback = NULL;
    if (loopback)
        why_loopback = "--loopback";
    else if (geteuid() != 0)
        why_loopback = "not root";
    else if (!s_netns_possible())
        why_loopback = "'ip netns add' failed";
    f.netns = why_loopback == NULL;
    f.port_base = (uint16_t)(20000 + (getpid() % 2000) * 16);

    int status = 1;
    char kernel[128];
    snprintf(kernel, sizeof(kernel), "%s/kernel", f.dir);
    int r = kt_bench_write_kernel(kernel);
    if (r < 0) {
        fprintf(stderr, "bench-scale: cannot write '%s': %s\n", kernel, strerror(-r));
        goto out;
    }
    if (f.netns && s_netns_setup(&f, kmax) < 0)
        goto out;
    for (unsigned i = 1; i <= kmax; i++)
        if (s_worker_start(&f, i, worker, hold_ms) < 0)
            goto out;

    printf("bench-scale: %u cells holding a slot %u ms each (sleep executor), workers with one "
           "slot, %s\n",
           m, hold_ms,
           f.netns ? "each in its own network namespace (198.51.100.0/24, real TCP)"
                   : "on loopback TCP ports");
    if (!f.netns)
        printf("namespaces skipped: %s\n", why_loopback);
    fflush(stdout);
    uint64_t t_ns[8] = {0}, t1 = 0;
    unsigned done[8] = {0};
    double eff[8] = {0};
    bool complete = true;
    for (unsigned i = 0; i < nk; i++) {
        s_count_t cnt = {0};
        if (s_pass(&f, ks[i], m, kernel, hold_ms, &t_ns[i], &cnt) < 0 || cnt.pass != m)
            complete = false;
        done[i] = cnt.done;
        if (ks[i] == 1)
            t1 = t_ns[i];
        fprintf(stderr, "bench-scale: K=%u: %.1f ms\n", ks[i], (double)t_ns[i] / 1e6);
    }
    /* Efficiency needs T1 even when K=1 was not asked for. */
    if (!t1) {
        s_count_t cnt = {0};
        if (s_pass(&f, 1, m, kernel, hold_ms, &t1, &cnt) < 0 || cnt.pass != m)
            complete = false;
        fprintf(stderr, "bench-scale: K=1 (for T1): %.1f ms\n", (double)t1 / 1e6);
    }
    printf("\n%-4s %12s %12s %12s %10s %6s\n", "K", "makespan_ms", "ideal_ms", "overhead_ms",
           "efficiency", "done");
    for (unsigned i = 0; i < nk; i++) {
        uint64_t ideal = (uint64_t)((m + ks[i] - 1) / ks[i]) * hold_ms;
        eff[i] = t_ns[i] ? (double)t1 / ((double)ks[i] * (double)t_ns[i]) : 0;
        printf("%-4u %12.1f %12" PRIu64 " %12.1f %10.3f %6u\n", ks[i], (double)t_ns[i] / 1e6,
               ideal, (double)t_ns[i] / 1e6 - (double)ideal, eff[i], done[i]);
    }
    printf("(ideal: ceil(M/K) x hold, what K perfectly used slots would take; efficiency: "
           "T1 / (K x TK))\n");
    int target = -1;
    for (unsigned i = 0; i < nk; i++)
        if (ks[i] == 8)
            target = complete && eff[i] >= 0.9;
    printf("target (efficiency >= 0.9 at K=8): %s%s\n",
           target < 0 ? "not measured" : target ? "met" : "NOT met",
           complete ? "" : " (some runs were incomplete)");
    printf("cells=%u hold_ms=%u netns=%d", m, hold_ms, f.netns);
    for (unsigned i = 0; i < nk; i++)
        printf(" k%u_makespan_ms=%.1f k%u_efficiency=%.3f", ks[i], (double)t_ns[i] / 1e6, ks[i],
               eff[i]);
    printf(" complete=%d target_met=%d\n", complete, target > 0);
    status = complete ? 0 : 1;
out:
    s_fleet_teardown(&f);
    kt_bench_rm_rf(f.dir);
    return status;
}
