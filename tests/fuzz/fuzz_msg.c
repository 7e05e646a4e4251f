/* clang-format off */
/* libFuzzer target for what a fleet peer reads from the other side: the
 * body decoder of every message type (kt_msg_decode_body), and the type
 * and signature frame checks.
 *
 * Build and run from the repository root (not wired into meson; tests/fuzz/run.sh builds and runs every target):
 *   clang -g -O1 -std=c11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined -Icommon -Iproto tests/fuzz/fuzz_msg.c proto/kt_msg.c proto/kt_chanmsg.c common/kt_scenario.c common/kt_topology.c common/kt_payload.c -lmsgpackc -lm -o /tmp/fuzz_msg
 *   mkdir -p /tmp/msg-corpus && /tmp/fuzz_msg -max_total_time=60 -dict=tests/fuzz/msg.dict /tmp/msg-corpus tests/fuzz/corpus/msg
 *
 * Input layout: byte 0 picks the message type (1 + b % 15), the rest is the
 * body. The whole input is also tried as a type-name frame and a signature.
 *
 * What is accepted must hold what the daemon and coordinator rely on:
 * strings NUL-terminated within their buffers, shas 64 lowercase hex,
 * counts within kt_msg.h's limits, CHUNK data inside the message's own copy
 * of the body; and re-encoding it gives bytes that decode to the same
 * encoding again (the codec is a fixed point after one round).
 *
 * Seeds in tests/fuzz/corpus/msg/ (one valid body per type) are written by
 * the target itself:
 *   KT_FUZZ_WRITE_SEED=tests/fuzz/corpus/msg /tmp/fuzz_msg
 */
/* clang-format on */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kt_chanmsg.h"
#include "kt_msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define S_SHA "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static kt_msg_t s_msg, s_again;

static void s_check_str(const char *buf, size_t size)
{
    if (!memchr(buf, '\0', size))
        abort();
}

#define CHECK_STR(f) s_check_str((f), sizeof(f))

static void s_check_sha(const char *sha, bool allow_empty)
{
    if (allow_empty && sha[0] == '\0')
        return;
    if (!kt_msg_sha_valid(sha))
        abort();
}

/* Relative, no empty, "." or ".." component: it becomes a path. */
static bool s_relative_path(const char *name)
{
    if (!name[0] || name[0] == '/')
        return false;
    for (const char *c = name;;) {
        size_t l = strcspn(c, "/");
        if (l == 0 || (l == 1 && c[0] == '.') || (l == 2 && c[0] == '.' && c[1] == '.'))
            return false;
        if (!c[l])
            return true;
        c += l + 1;
    }
}

static void s_check_spec(const kt_cellspec_t *s)
{
    s_check_sha(s->cell_id, false);
    s_check_sha(s->kernel_sha, false);
    s_check_sha(s->sched_sha, true);
    CHECK_STR(s->cell_name);
    CHECK_STR(s->run_id);
    CHECK_STR(s->kernel_label);
    CHECK_STR(s->kernel_version);
    CHECK_STR(s->kernel_commit);
    CHECK_STR(s->sched_name);
    CHECK_STR(s->sched_args);
    CHECK_STR(s->profile);
    CHECK_STR(s->topology_preset);
    if (!s_relative_path(s->cell_name) || !s->run_id[0] || strchr(s->run_id, '/') ||
        strchr(s->kernel_label, '/') || strchr(s->sched_name, '/'))
        abort();
    if ((s->sched_sha[0] == '\0') != (s->sched_size == 0) || s->kernel_size == 0)
        abort();
    const kt_plan_t *p = &s->plan;
    if (!kt_topology_valid(&p->topology) || p->n_cgroups > KT_MAX_CGROUPS ||
        p->n_faults > KT_MAX_FAULTS || kt_plan_total_workers(p) > KT_MAX_WORKERS)
        abort();
    if (kt_cellspec_vcpus(s) == 0 || kt_cellspec_vcpus(s) > KT_MAX_CPUS)
        abort();
}

/* The invariants of an accepted message. */
static void s_check(const kt_msg_t *m, const void *body, size_t len)
{
    (void)body;
    switch (m->type) {
    case KT_MSG_OPEN:
        CHECK_STR(m->u.open.coordinator_id);
        if (!m->u.open.coordinator_id[0] || m->u.open.session == 0 || m->u.open.version == 0)
            abort();
        break;
    case KT_MSG_HELLO:
        CHECK_STR(m->u.hello.worker_id);
        CHECK_STR(m->u.hello.arch);
        if (strcmp(m->u.hello.accel, "kvm") != 0 && strcmp(m->u.hello.accel, "tcg") != 0)
            abort();
        if (m->u.hello.n_artifacts > KT_MSG_MAX_ARTIFACTS ||
            (m->u.hello.n_artifacts && !m->u.hello.artifacts))
            abort();
        for (uint32_t i = 0; i < m->u.hello.n_artifacts; i++)
            s_check_sha(m->u.hello.artifacts[i].sha, false);
        break;
    case KT_MSG_WELCOME:
        if (m->u.welcome.lost_after_ms <= m->u.welcome.heartbeat_ms || m->u.welcome.session == 0)
            abort();
        break;
    case KT_MSG_REFUSE:
        CHECK_STR(m->u.refuse.reason);
        if (m->u.refuse.code < 400 || m->u.refuse.code > 599)
            abort();
        break;
    case KT_MSG_HEARTBEAT:
        if (m->u.heartbeat.n_running > KT_MSG_MAX_RUNNING)
            abort();
        for (uint32_t i = 0; i < m->u.heartbeat.n_running; i++) {
            s_check_sha(m->u.heartbeat.running[i].cell_id, false);
            if (m->u.heartbeat.running[i].attempt == 0)
                abort();
        }
        break;
    case KT_MSG_ASSIGN:
        if (m->u.assign.attempt == 0 || m->u.assign.attempt > KT_MSG_MAX_ATTEMPT ||
            m->u.assign.lease_ms == 0)
            abort();
        s_check_spec(&m->u.assign.spec);
        break;
    case KT_MSG_ACCEPT:
        s_check_sha(m->u.accept.cell_id, false);
        CHECK_STR(m->u.accept.reason);
        break;
    case KT_MSG_FETCH:
        s_check_sha(m->u.fetch.sha, false);
        if (m->u.fetch.credit == 0 || m->u.fetch.credit > KT_FETCH_MAX_CREDIT)
            abort();
        break;
    case KT_MSG_CHUNK: {
        const uint8_t *b = m->_body;
        s_check_sha(m->u.chunk.sha, false);
        if (m->u.chunk.len > KT_CHUNK_MAX ||
            m->u.chunk.offset + m->u.chunk.len > m->u.chunk.total ||
            m->u.chunk.last != (m->u.chunk.offset + m->u.chunk.len == m->u.chunk.total))
            abort();
        /* Inside the message's own copy, not the caller's buffer. */
        if (!b ||
            (m->u.chunk.len && (m->u.chunk.data < b || m->u.chunk.data + m->u.chunk.len > b + len)))
            abort();
        break;
    }
    case KT_MSG_PROGRESS:
        s_check_sha(m->u.progress.cell_id, false);
        CHECK_STR(m->u.progress.phase);
        break;
    case KT_MSG_RESULT:
        s_check_sha(m->u.result.cell_id, false);
        CHECK_STR(m->u.result.verdict);
        CHECK_STR(m->u.result.reason);
        if (!m->u.result.sidecar || m->u.result.sidecar_len > KT_MSG_MAX_SIDECAR ||
            m->u.result.sidecar[m->u.result.sidecar_len] != '\0' ||
            strlen(m->u.result.sidecar) != m->u.result.sidecar_len ||
            m->u.result.console_len > KT_MSG_MAX_CONSOLE ||
            (m->u.result.console_len && m->u.result.console[m->u.result.console_len] != '\0'))
            abort();
        break;
    case KT_MSG_RESULT_ACK:
    case KT_MSG_CANCEL:
        s_check_sha(m->u.ack.cell_id, false);
        if (m->u.ack.attempt == 0)
            abort();
        break;
    case KT_MSG_DRAIN:
        break;
    case KT_MSG_ERROR:
        CHECK_STR(m->u.error.text);
        break;
    default:
        abort();
    }
}

static void s_decode(enum kt_msg_type type, const uint8_t *body, size_t len)
{
    char why[512];
    why[0] = '\0';
    int r = kt_msg_decode_body(type, body, len, &s_msg, why, sizeof(why));
    /* The decoder's contract: 0, or -EBADMSG with a one-line reason that
     * names the message type; nothing left to free. */
    if (r != 0) {
        const char *name = kt_msg_type_name(type);
        if (r != -EBADMSG || why[0] == '\0' || strchr(why, '\n') ||
            strncmp(why, name, strlen(name)) != 0 || s_msg._body)
            abort();
        kt_msg_clear(&s_msg);
        return;
    }
    s_check(&s_msg, body, len);

    /* One round through the encoder reaches a fixed point. */
    msgpack_sbuffer a, b;
    msgpack_sbuffer_init(&a);
    msgpack_sbuffer_init(&b);
    if (kt_msg_encode_body(&s_msg, &a) != 0)
        abort();
    if (kt_msg_decode_body(type, a.data, a.size, &s_again, why, sizeof(why)) != 0)
        abort();
    if (kt_msg_encode_body(&s_again, &b) != 0 || a.size != b.size ||
        memcmp(a.data, b.data, a.size) != 0)
        abort();
    kt_msg_clear(&s_again);
    kt_msg_clear(&s_msg);
    msgpack_sbuffer_destroy(&a);
    msgpack_sbuffer_destroy(&b);
}

static void s_sample(enum kt_msg_type type, kt_msg_t *m)
{
    static uint8_t bytes[64];
    static kt_msg_artifact_ref_t refs[2];
    kt_msg_init(m, type);
    switch (type) {
    case KT_MSG_OPEN:
        m->u.open.version = KT_PROTO_VERSION;
        snprintf(m->u.open.coordinator_id, KT_ID_MAX, "coord");
        m->u.open.session = 12345;
        break;
    case KT_MSG_HELLO:
        m->u.hello.version = KT_PROTO_VERSION;
        snprintf(m->u.hello.worker_id, KT_ID_MAX, "w1");
        m->u.hello.instance = 9;
        snprintf(m->u.hello.arch, sizeof(m->u.hello.arch), "x86_64");
        m->u.hello.host_cpus = 8;
        m->u.hello.host_llcs = 2;
        m->u.hello.memory_mib = 16384;
        snprintf(m->u.hello.accel, sizeof(m->u.hello.accel), "tcg");
        m->u.hello.max_vcpus = 8;
        m->u.hello.free_vcpus = 8;
        m->u.hello.free_memory_mib = 8192;
        snprintf(refs[0].sha, KT_SHA_HEX, S_SHA);
        snprintf(refs[1].sha, KT_SHA_HEX, S_SHA);
        refs[1].sha[0] = 'f';
        m->u.hello.artifacts = refs;
        m->u.hello.n_artifacts = 2;
        break;
    case KT_MSG_WELCOME:
        m->u.welcome.session = 12345;
        m->u.welcome.heartbeat_ms = 1000;
        m->u.welcome.lost_after_ms = 5000;
        break;
    case KT_MSG_REFUSE:
        m->u.refuse.code = KT_CODE_FORBIDDEN;
        snprintf(m->u.refuse.reason, sizeof(m->u.refuse.reason), "not allowed");
        break;
    case KT_MSG_HEARTBEAT:
        m->u.heartbeat.seq = 3;
        m->u.heartbeat.free_vcpus = 4;
        m->u.heartbeat.free_memory_mib = 1024;
        m->u.heartbeat.n_running = 1;
        snprintf(m->u.heartbeat.running[0].cell_id, KT_SHA_HEX, S_SHA);
        m->u.heartbeat.running[0].attempt = 1;
        break;
    case KT_MSG_ASSIGN: {
        kt_cellspec_t *s = &m->u.assign.spec;
        m->u.assign.attempt = 1;
        m->u.assign.lease_ms = 60000;
        snprintf(s->cell_id, KT_SHA_HEX, S_SHA);
        snprintf(s->cell_name, sizeof(s->cell_name), "gauntlet/steady/tiny-2llc/default/6.12");
        snprintf(s->run_id, sizeof(s->run_id), "run-1");
        snprintf(s->kernel_label, sizeof(s->kernel_label), "6.12");
        snprintf(s->kernel_version, sizeof(s->kernel_version), "6.12.117");
        snprintf(s->kernel_commit, sizeof(s->kernel_commit), "3f2a9c1");
        snprintf(s->kernel_sha, KT_SHA_HEX, S_SHA);
        s->kernel_size = 1000;
        snprintf(s->sched_name, sizeof(s->sched_name), "scx_qmap");
        snprintf(s->sched_sha, KT_SHA_HEX, S_SHA);
        s->sched_size = 100;
        snprintf(s->sched_args, sizeof(s->sched_args), "-b 8");
        snprintf(s->profile, sizeof(s->profile), "batch");
        snprintf(s->topology_preset, sizeof(s->topology_preset), "tiny-2llc");
        s->memory_mib = 256;
        kt_topology_t t;
        char why[256];
        if (kt_topology_parse("tiny-2llc", &t) < 0 ||
            kt_scenario_resolve(kt_scenario_builtin_find("cgroup_spawn"), &t, 3000, &s->plan, why,
                                sizeof(why)) < 0)
            abort();
        break;
    }
    case KT_MSG_ACCEPT:
        snprintf(m->u.accept.cell_id, KT_SHA_HEX, S_SHA);
        m->u.accept.attempt = 1;
        m->u.accept.ok = true;
        break;
    case KT_MSG_FETCH:
        snprintf(m->u.fetch.sha, KT_SHA_HEX, S_SHA);
        m->u.fetch.offset = 0;
        m->u.fetch.credit = 4;
        break;
    case KT_MSG_CHUNK:
        snprintf(m->u.chunk.sha, KT_SHA_HEX, S_SHA);
        m->u.chunk.offset = 64;
        m->u.chunk.total = 128;
        m->u.chunk.len = sizeof(bytes);
        m->u.chunk.data = bytes;
        m->u.chunk.last = true;
        break;
    case KT_MSG_PROGRESS:
        snprintf(m->u.progress.cell_id, KT_SHA_HEX, S_SHA);
        m->u.progress.attempt = 1;
        snprintf(m->u.progress.phase, sizeof(m->u.progress.phase), "booting");
        break;
    case KT_MSG_RESULT:
        snprintf(m->u.result.cell_id, KT_SHA_HEX, S_SHA);
        m->u.result.attempt = 1;
        snprintf(m->u.result.verdict, sizeof(m->u.result.verdict), "pass");
        m->u.result.sidecar = (char *)"{\"verdict\":\"pass\"}";
        m->u.result.sidecar_len = strlen(m->u.result.sidecar);
        m->u.result.console = (char *)"boot\n";
        m->u.result.console_len = 5;
        break;
    case KT_MSG_RESULT_ACK:
    case KT_MSG_CANCEL:
        snprintf(m->u.ack.cell_id, KT_SHA_HEX, S_SHA);
        m->u.ack.attempt = 2;
        break;
    case KT_MSG_DRAIN:
        m->u.drain.running = 1;
        break;
    case KT_MSG_ERROR:
        m->u.error.code = KT_CODE_BAD_MESSAGE;
        snprintf(m->u.error.text, sizeof(m->u.error.text), "bad");
        break;
    default:
        abort();
    }
}

/* One seed per type: the type byte, then a valid body. The samples point
 * at static data, so they are never cleared. */
static void s_write_seeds(const char *dir)
{
    static kt_msg_t m;
    for (int t = 1; t < KT_MSG__COUNT; t++) {
        s_sample((enum kt_msg_type)t, &m);
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        if (kt_msg_encode_body(&m, &sb) < 0)
            abort();
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", dir, kt_msg_type_name((enum kt_msg_type)t));
        FILE *f = fopen(path, "we");
        if (!f)
            abort();
        uint8_t type = (uint8_t)(t - 1);
        fwrite(&type, 1, 1, f);
        fwrite(sb.data, 1, sb.size, f);
        fclose(f);
        msgpack_sbuffer_destroy(&sb);
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *dir = getenv("KT_FUZZ_WRITE_SEED");
    if (dir) {
        s_write_seeds(dir);
        exit(0);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    enum kt_msg_type t;
    if (kt_msg_type_parse((const char *)data, size, &t) == 0 && strlen(kt_msg_type_name(t)) != size)
        abort();
    (void)kt_msg_signature_ok(data, size);
    if (size < 1)
        return 0;
    enum kt_msg_type type = (enum kt_msg_type)(1 + data[0] % (KT_MSG__COUNT - 1));
    s_decode(type, data + 1, size - 1);
    return 0;
}
