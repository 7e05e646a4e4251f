/* chan_peer: the host end of ktstr-init's channel, for testing ktstr-init
 * by hand before (and besides) the worker's VM runner. It connects to the
 * QEMU chardev socket of the org.ktstr.0 port, prints the guest's hello,
 * sends one cell (a built-in scenario resolved against a topology) or a
 * shutdown, prints events and the result, and acks it.
 *
 *   kt-chan-peer --sock /tmp/x/ch.sock --scenario steady --topo 1n2l2c1t \
 *       [--duration 3000] [--sched /sched/scx_qmap --arg -t --arg 3]
 *       [--fault CGROUP_INDEX:WORKER:AT_MS] [--shutdown | --bad-cell] [--timeout 120]
 *
 * Exit status: 0 when a result arrived (its verdict is printed as
 * "VERDICT=..." on a line of its own), 2 on usage errors, 1 otherwise. */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "kt_chanmsg.h"
#include "kt_frame.h"

static long s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static int s_connect(const char *path, long deadline)
{
    for (;;) {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return -errno;
        struct sockaddr_un a = {.sun_family = AF_UNIX};
        snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
        if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0)
            return fd;
        int r = -errno;
        close(fd);
        if (s_now_ms() >= deadline)
            return r;
        usleep(50000);
    }
}

static void s_print(const char *what, const void *body, size_t len)
{
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    if (msgpack_unpack_next(&up, body, len, &off) == MSGPACK_UNPACK_SUCCESS) {
        printf("%s ", what);
        msgpack_object_print(stdout, up.data);
        printf("\n");
    } else {
        printf("%s <%zu bytes, not msgpack>\n", what, len);
    }
    fflush(stdout);
    msgpack_unpacked_destroy(&up);
}

/* One frame within the deadline: 1, 0 on timeout, -errno. */
static int s_read_frame(int fd, long deadline, void **body, size_t *len)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    long left = deadline - s_now_ms();
    if (left <= 0)
        return 0;
    int n = poll(&p, 1, (int)left);
    if (n <= 0)
        return n < 0 ? -errno : 0;
    int r = kt_frame_read(fd, 64u << 20, body, len);
    return r < 0 ? r : 1;
}

static void s_usage(void)
{
    fprintf(stderr, "usage: kt-chan-peer --sock PATH [--scenario NAME] [--topo LABEL] "
                    "[--duration MS] [--sched PATH [--name NAME] --arg A...] "
                    "[--fault CG:WORKER:AT_MS] [--settle MS] [--enable-timeout MS] "
                    "[--shutdown] [--bad-cell] [--no-ack] [--timeout S]\n");
}

int main(int argc, char **argv)
{
    const char *sock = NULL, *scenario = "steady", *topo_text = "1n2l2c1t";
    const char *sched = "", *name = NULL;
    unsigned duration = 3000, timeout_s = 120;
    long settle = -1, enable_timeout = -1;
    bool shutdown_only = false, ack = true, bad_cell = false;
    kt_cell_msg_t *m = calloc(1, sizeof(*m));
    kt_cell_msg_init(m);
    kt_plan_fault_t faults[KT_MAX_FAULTS];
    unsigned n_faults = 0;
    static const struct option opts[] = {
        {"sock", required_argument, NULL, 's'},     {"scenario", required_argument, NULL, 'c'},
        {"topo", required_argument, NULL, 't'},     {"duration", required_argument, NULL, 'd'},
        {"sched", required_argument, NULL, 'p'},    {"name", required_argument, NULL, 'n'},
        {"arg", required_argument, NULL, 'a'},      {"fault", required_argument, NULL, 'f'},
        {"shutdown", no_argument, NULL, 'S'},       {"no-ack", no_argument, NULL, 'N'},
        {"timeout", required_argument, NULL, 'T'},  {"settle", required_argument, NULL, 'e'},
        {"enable-timeout", required_argument, NULL, 'E'}, {"bad-cell", no_argument, NULL, 'B'},
        {NULL, 0, NULL, 0},
    };
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 's': sock = optarg; break;
        case 'c': scenario = optarg; break;
        case 't': topo_text = optarg; break;
        case 'd': duration = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'p': sched = optarg; break;
        case 'n': name = optarg; break;
        case 'a':
            if (m->n_sched_args >= KT_SCHED_ARGS_MAX) {
                fprintf(stderr, "too many --arg\n");
                return 2;
            }
            snprintf(m->sched_args[m->n_sched_args++], KT_SCHED_ARG_LEN, "%s", optarg);
            break;
        case 'f':
            if (n_faults >= KT_MAX_FAULTS ||
                sscanf(optarg, "%u:%u:%u", &faults[n_faults].cgroup, &faults[n_faults].worker,
                       &faults[n_faults].at_ms) != 3) {
                fprintf(stderr, "bad --fault '%s' (CG:WORKER:AT_MS)\n", optarg);
                return 2;
            }
            n_faults++;
            break;
        case 'S': shutdown_only = true; break;
        case 'B': bad_cell = true; break;
        case 'N': ack = false; break;
        case 'T': timeout_s = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'e': settle = strtol(optarg, NULL, 10); break;
        case 'E': enable_timeout = strtol(optarg, NULL, 10); break;
        default: s_usage(); return 2;
        }
    }
    if (!sock) {
        s_usage();
        return 2;
    }
    kt_topology_t topo;
    if (kt_topology_parse(topo_text, &topo) < 0) {
        fprintf(stderr, "bad topology '%s'\n", topo_text);
        return 2;
    }
    const kt_scenario_t *sc = kt_scenario_builtin_find(scenario);
    if (!sc) {
        fprintf(stderr, "no built-in scenario '%s'\n", scenario);
        return 2;
    }
    char why[256];
    if (kt_scenario_resolve(sc, &topo, duration, &m->plan, why, sizeof(why)) < 0) {
        fprintf(stderr, "resolve: %s\n", why);
        return 2;
    }
    for (unsigned i = 0; i < n_faults; i++)
        m->plan.faults[m->plan.n_faults++] = faults[i];
    snprintf(m->cell_id, sizeof(m->cell_id), "handmade-%s-%s", scenario, topo_text);
    snprintf(m->sched_path, sizeof(m->sched_path), "%s", sched);
    if (sched[0]) {
        const char *base = strrchr(sched, '/');
        snprintf(m->sched_name, sizeof(m->sched_name), "%s", name ? name : base ? base + 1 : sched);
    }
    if (settle >= 0)
        m->settle_ms = (uint32_t)settle;
    if (enable_timeout >= 0)
        m->sched_enable_timeout_ms = (uint32_t)enable_timeout;

    long deadline = s_now_ms() + timeout_s * 1000L;
    int fd = s_connect(sock, deadline);
    if (fd < 0) {
        fprintf(stderr, "connect '%s': %s\n", sock, strerror(-fd));
        return 1;
    }
    void *body;
    size_t len;
    int r = s_read_frame(fd, deadline, &body, &len);
    if (r <= 0) {
        fprintf(stderr, "no hello: %s\n", r ? strerror(-r) : "timeout");
        return 1;
    }
    s_print("HELLO", body, len);
    free(body);

    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    if (bad_cell) {
        /* A cell message without its fields: the guest must answer error. */
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 1);
        kt_mp_pack_kv_str(&pk, "t", "cell");
    } else if (shutdown_only) {
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 1);
        kt_mp_pack_kv_str(&pk, "t", "shutdown");
    } else {
        kt_cell_msg_encode(m, &sb);
    }
    long sent = s_now_ms();
    if ((r = kt_frame_write(fd, sb.data, sb.size)) < 0) {
        fprintf(stderr, "send: %s\n", strerror(-r));
        return 1;
    }
    msgpack_sbuffer_destroy(&sb);
    if (shutdown_only)
        return 0;
    for (;;) {
        r = s_read_frame(fd, deadline, &body, &len);
        if (r <= 0) {
            fprintf(stderr, "no result: %s\n", r ? strerror(-r) : "timeout");
            return 1;
        }
        msgpack_unpacked up;
        msgpack_unpacked_init(&up);
        size_t off = 0;
        char type[16] = "", verdict[16] = "";
        if (msgpack_unpack_next(&up, body, len, &off) == MSGPACK_UNPACK_SUCCESS) {
            kt_chanmsg_type(&up.data, type, sizeof(type));
            kt_mp_get_str(&up.data, "verdict", verdict, sizeof(verdict));
        }
        msgpack_unpacked_destroy(&up);
        if (strcmp(type, "hb") == 0) {
            free(body);
            continue;
        }
        char tag[32];
        snprintf(tag, sizeof(tag), "%s+%ldms", strcmp(type, "result") == 0 ? "RESULT" : "MSG",
                 s_now_ms() - sent);
        s_print(tag, body, len);
        free(body);
        if (strcmp(type, "result") == 0) {
            printf("RESULT_BYTES=%zu\nVERDICT=%s\n", len, verdict);
            if (ack) {
                msgpack_sbuffer_init(&sb);
                msgpack_packer pk;
                msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
                msgpack_pack_map(&pk, 1);
                kt_mp_pack_kv_str(&pk, "t", "ack");
                kt_frame_write(fd, sb.data, sb.size);
                msgpack_sbuffer_destroy(&sb);
            }
            close(fd);
            free(m);
            return 0;
        }
    }
}
