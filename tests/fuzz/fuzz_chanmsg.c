/* clang-format off */
/* libFuzzer target for what the host <-> guest channel reads from its peer:
 * the incremental frame reader and the cell message decoder.
 *
 * Build and run from the repository root (not wired into meson):
 *   clang -g -O1 -std=c11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined -Icommon -Iproto tests/fuzz/fuzz_chanmsg.c proto/kt_chanmsg.c proto/kt_frame.c common/kt_scenario.c common/kt_topology.c common/kt_payload.c -lmsgpackc -lm -o /tmp/fuzz_chanmsg
 *   mkdir -p /tmp/chanmsg-corpus && /tmp/fuzz_chanmsg -max_total_time=60 -dict=tests/fuzz/chanmsg.dict /tmp/chanmsg-corpus tests/fuzz/corpus/chanmsg
 *
 * Input layout: byte 0 picks the chunk size the stream is fed in (1..256),
 * byte 1 the reader's max frame size (16 << (b % 17)); the rest is a stream
 * of frames, each frame body decoded as a cell message. The whole input is
 * also decoded as one cell message body.
 *
 * Seeds in tests/fuzz/corpus/chanmsg/ (a valid cell message, framed and
 * bare) are written by the target itself:
 *   KT_FUZZ_WRITE_SEED=tests/fuzz/corpus/chanmsg /tmp/fuzz_chanmsg
 * chanmsg.dict holds the msgpack-encoded field names.
 *
 * msgpack-c allocates a container's slots when it reads the header, before
 * it knows the bytes exist, so an input announcing a 2^32-entry map makes
 * ASan abort with "allocator is out of memory" until kt_cell_msg_decode
 * checks announced counts first. To look past that finding, run with
 *   ASAN_OPTIONS=allocator_may_return_null=1 ... -rss_limit_mb=0 -malloc_limit_mb=0
 */
/* clang-format on */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kt_chanmsg.h"
#include "kt_frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static kt_cell_msg_t s_msg;

static void s_decode(const void *body, size_t len)
{
    char why[256];
    why[0] = '\0';
    int r = kt_cell_msg_decode(body, len, &s_msg, why, sizeof(why));
    /* The decoder's contract: 0, or -EBADMSG with a reason. */
    if (r != 0 && (r != -EBADMSG || why[0] == '\0'))
        abort();
    if (r == 0) {
        /* What was accepted must be within the limits the guest relies on. */
        const kt_plan_t *p = &s_msg.plan;
        if (!kt_topology_valid(&p->topology) || p->n_cgroups > KT_MAX_CGROUPS ||
            p->n_faults > KT_MAX_FAULTS || kt_plan_total_workers(p) > KT_MAX_WORKERS ||
            s_msg.n_sched_args > KT_SCHED_ARGS_MAX || s_msg.heartbeat_ms == 0)
            abort();
        for (unsigned i = 0; i < p->n_faults; i++)
            if (p->faults[i].cgroup >= p->n_cgroups ||
                p->faults[i].worker >= p->cgroups[p->faults[i].cgroup].workers)
                abort();
        /* A payload the guest would run: a file name, bounded args and checks. */
        const kt_payload_spec_t *pl = &p->payload;
        if (kt_payload_present(pl) &&
            (strchr(pl->name, '/') || pl->n_args > KT_PAYLOAD_ARGS_MAX ||
             pl->n_checks > KT_PAYLOAD_CHECKS_MAX || pl->timeout_ms == 0 ||
             (pl->n_args && !kt_payload_arg(pl, pl->n_args - 1))))
            abort();
        /* Re-encoding what was decoded gives a message that decodes again. */
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        if (kt_cell_msg_encode(&s_msg, &sb) == 0) {
            static kt_cell_msg_t again;
            if (kt_cell_msg_decode(sb.data, sb.size, &again, why, sizeof(why)) != 0)
                abort();
        }
        msgpack_sbuffer_destroy(&sb);
    }
}

/* Writes one valid cell message, framed, as a seed (KT_FUZZ_WRITE_SEED=DIR). */
static void s_write_seed(const char *dir)
{
    kt_cell_msg_t m;
    kt_cell_msg_init(&m);
    snprintf(m.cell_id, sizeof(m.cell_id), "seed");
    snprintf(m.sched_name, sizeof(m.sched_name), "scx_simple");
    snprintf(m.sched_path, sizeof(m.sched_path), "/bin/scx_simple");
    m.n_sched_args = 1;
    snprintf(m.sched_args[0], sizeof(m.sched_args[0]), "-v");
    kt_scenario_t s;
    kt_scenario_init(&s, "seed");
    s.cgroups[s.n_cgroups++] = (kt_cgroup_spec_t){.name = "per",
                                                  .cpuset = {.kind = KT_CPUSET_PER_LLC},
                                                  .workers = 2,
                                                  .work = KT_WORK_PIPE_PINGPONG,
                                                  .nice = -3};
    s.faults[s.n_faults++] = (kt_fault_t){"per_1", 1, 100};
    /* The steps era: an rt cgroup with an affinity, a deferred nested one,
     * a step that adds it and a loop. */
    s.cgroups[s.n_cgroups++] = (kt_cgroup_spec_t){
        .name = "rt", .workers = 1, .policy = KT_POLICY_RR, .rt_priority = 2,
        .affinity = {.kind = KT_AFFINITY_EXACT, .list = "1-2"}};
    s.cgroups[s.n_cgroups++] = (kt_cgroup_spec_t){.name = "up"};
    s.cgroups[s.n_cgroups++] = (kt_cgroup_spec_t){.name = "up/in", .workers = 1, .deferred = true};
    kt_step_spec_t *st = &s.steps[s.n_steps++];
    st->hold = KT_HOLD_FRAC;
    st->frac = 0.5;
    st->ops[st->n_ops++] = (kt_op_spec_t){.kind = KT_OP_ADD_CGROUP, .cgroup = "up/in"};
    st->ops[st->n_ops++] = (kt_op_spec_t){
        .kind = KT_OP_SET_CPUSET, .cgroup = "rt", .cpuset = {.kind = KT_CPUSET_LLC, .index = 1}};
    st = &s.steps[s.n_steps++];
    st->hold = KT_HOLD_LOOP;
    st->ms = 100;
    st->ops[st->n_ops++] = (kt_op_spec_t){
        .kind = KT_OP_SET_AFFINITY, .cgroup = "rt", .affinity = {.kind = KT_AFFINITY_RANDOM, .count = 2}};
    kt_topology_t t = {1, 2, 2, 1};
    char why[256];
    if (kt_scenario_resolve(&s, &t, 0, &m.plan, why, sizeof(why)) < 0)
        abort();
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    if (kt_cell_msg_encode(&m, &sb) < 0)
        abort();
    char path[512];
    snprintf(path, sizeof(path), "%s/cell_framed", dir);
    FILE *f = fopen(path, "we");
    if (!f)
        abort();
    /* Chunk byte 0 (feed in 1-byte pieces), max byte 16 (16 << 16 = 1 MiB). */
    uint8_t hdr[6] = {0,
                      16,
                      (uint8_t)(sb.size >> 24),
                      (uint8_t)(sb.size >> 16),
                      (uint8_t)(sb.size >> 8),
                      (uint8_t)sb.size};
    fwrite(hdr, 1, sizeof(hdr), f);
    fwrite(sb.data, 1, sb.size, f);
    fclose(f);
    snprintf(path, sizeof(path), "%s/cell_body", dir);
    f = fopen(path, "we");
    if (!f)
        abort();
    /* Bare: the whole input is a valid body (the frame layer sees noise). */
    fwrite(sb.data, 1, sb.size, f);
    fclose(f);
    msgpack_sbuffer_destroy(&sb);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *dir = getenv("KT_FUZZ_WRITE_SEED");
    if (dir) {
        s_write_seed(dir);
        exit(0);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The whole input as one body. */
    s_decode(data, size);
    if (size < 2)
        return 0;

    size_t chunk = (size_t)data[0] + 1;
    size_t max = (size_t)16 << (data[1] % 17);
    const uint8_t *stream = data + 2;
    size_t len = size - 2;
    kt_frame_reader_t *rd = kt_frame_reader_new(max);
    if (!rd)
        return 0;
    for (size_t off = 0; off < len; off += chunk) {
        size_t n = len - off < chunk ? len - off : chunk;
        int r = kt_frame_reader_feed(rd, stream + off, n);
        if (r == -EMSGSIZE)
            break;
        if (r < 0)
            abort();
        void *body;
        size_t blen;
        while ((r = kt_frame_reader_next(rd, &body, &blen)) == 1) {
            if (blen > max)
                abort();
            s_decode(body, blen);
            free(body);
        }
        if (r != 0 && r != -EMSGSIZE)
            abort();
        if (r == -EMSGSIZE)
            break;
    }
    kt_frame_reader_destroy(&rd);
    return 0;
}
