/* The guest workloads (spin, yield, mixed, bursty, io-sync, pipe and futex
 * ping-pong) and their telemetry in a slot shared with the parent. The child
 * keeps its running figures in locals and publishes them to the slot with
 * relaxed atomic stores at each checkpoint, so the parent may read a live
 * slot; the final DONE store is a release, the parent's state load an
 * acquire. The hot path per unit is one clock_gettime (vDSO) and one
 * sched_getcpu (rseq/vDSO): no other syscall for spin. */
#include "kt_workload.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "kt_cleanup.h"
#include "kt_fileio.h"

#define KT_WL_SPIN_ITERS (1u << 14)
#define KT_WL_MIXED_UNITS 16
#define KT_WL_MIXED_SLEEP_NS 500000ull
#define KT_WL_BURST_NS 20000000ull
#define KT_WL_BURST_SLEEP_NS 10000000ull
#define KT_WL_IO_BYTES 4096
#define KT_WL_IO_BLOCKS 256 /* the file wraps at 1 MiB */
#define KT_WL_IO_DIR "/tmp"

/* Pipe message that is not a timestamp: the parent's stop. */
#define KT_WL_PIPE_STOP UINT64_MAX
/* Futex ping-pong word: bit 0 = whose turn (0 initiator, 1 responder). */
#define KT_WL_FUTEX_TURN 1u
#define KT_WL_FUTEX_STOP 2u

#define KT_NSEC_PER_SEC 1000000000ull

#define s_load(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define s_store(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)

/* The child's running figures; mirrored into the slot at checkpoints. */
struct s_run {
    kt_wl_slot_t *slot;
    uint64_t last_ns;
    uint64_t max_gap_ns;
    uint64_t migrations;
    int last_cpu;
    uint64_t wake_count;
    uint64_t wake_max_ns;
    uint64_t spin_state;
};

/* Keeps the spin loop's result observable so the compiler cannot drop it. */
static volatile uint64_t s_spin_sink;

static uint64_t s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * KT_NSEC_PER_SEC + (uint64_t)ts.tv_nsec;
}

static long s_futex(void *uaddr, int op, uint32_t val, const struct timespec *ts, uint32_t val3)
{
    return syscall(SYS_futex, uaddr, op, val, ts, NULL, val3);
}

static void s_futex_wake_all(_Atomic uint32_t *word)
{
    s_futex((void *)word, FUTEX_WAKE, INT_MAX, NULL, 0);
}

static bool s_is_pair_type(uint32_t type)
{
    return type < KT_WORK__COUNT && kt_work_type_group_size((enum kt_work_type)type) == 2;
}

static uint32_t s_state(const kt_wl_slot_t *slot)
{
    return atomic_load_explicit(&slot->state, memory_order_acquire);
}

static __attribute__((format(printf, 2, 3))) void s_fail(kt_wl_slot_t *slot, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(slot->error, sizeof(slot->error), fmt, ap);
    va_end(ap);
}

kt_wl_slot_t *kt_workload_slots_new(unsigned n)
{
    if (n == 0 || n > KT_MAX_WORKERS) {
        errno = EINVAL;
        return NULL;
    }
    kt_wl_slot_t *slots = mmap(NULL, sizeof(*slots) * n, PROT_READ | PROT_WRITE,
                               MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (slots == MAP_FAILED)
        return NULL;
    for (unsigned i = 0; i < n; i++) {
        slots[i].n_slots = n;
        slots[i].index = i;
        slots[i].last_cpu = -1;
        slots[i].pipe_to_peer[0] = slots[i].pipe_to_peer[1] = -1;
        slots[i].pipe_from_peer[0] = slots[i].pipe_from_peer[1] = -1;
    }
    return slots;
}

void kt_workload_slots_free(kt_wl_slot_t **slots_p, unsigned n)
{
    if (!slots_p || !*slots_p)
        return;
    kt_wl_slot_t *slots = *slots_p;
    /* The initiator's slot owns the pair's pipes; the responder mirrors them. */
    for (unsigned i = 0; i < n; i++) {
        if (!s_is_pair_type(slots[i].type) || slots[i].group_role != 0)
            continue;
        for (unsigned e = 0; e < 2; e++) {
            if (slots[i].pipe_to_peer[e] >= 0)
                close(slots[i].pipe_to_peer[e]);
            if (slots[i].pipe_from_peer[e] >= 0)
                close(slots[i].pipe_from_peer[e]);
        }
    }
    munmap(slots, sizeof(*slots) * n);
    *slots_p = NULL;
}

static void s_prepare_one(kt_wl_slot_t *slot, enum kt_work_type type, unsigned cgroup,
                          unsigned index)
{
    atomic_store(&slot->state, KT_WL_CREATED);
    slot->type = (uint32_t)type;
    slot->cgroup = cgroup;
    slot->index = index;
    slot->group_peer = 0;
    slot->group_role = 0;
    slot->last_cpu = -1;
}

int kt_workload_prepare(kt_wl_slot_t *slots, unsigned i, enum kt_work_type type, unsigned cgroup,
                        unsigned index)
{
    if (!slots || (unsigned)type >= KT_WORK__COUNT || i >= slots[0].n_slots)
        return -EINVAL;
    kt_wl_slot_t *s = &slots[i];
    if (!s_is_pair_type(type)) {
        s_prepare_one(s, type, cgroup, index);
        return 0;
    }

    if (index % 2 == 1) {
        /* Responder: its initiator (i - 1) prepared it already. */
        if (i == 0)
            return -EINVAL;
        kt_wl_slot_t *init = &slots[i - 1];
        if (init->type != (uint32_t)type || init->cgroup != cgroup || init->group_role != 0 ||
            init->group_peer != i || s->group_peer != i - 1 || s->group_role != 1 ||
            s->index != index || init->pipe_to_peer[0] < 0)
            return -EINVAL;
        return 0;
    }

    if (i + 1 >= slots[0].n_slots)
        return -EINVAL;
    kt_wl_slot_t *resp = &slots[i + 1];
    int a[2], b[2];
    if (pipe2(a, O_CLOEXEC) < 0)
        return -errno;
    if (pipe2(b, O_CLOEXEC) < 0) {
        int r = -errno;
        close(a[0]);
        close(a[1]);
        return r;
    }
    s_prepare_one(s, type, cgroup, index);
    s_prepare_one(resp, type, cgroup, index + 1);
    s->group_peer = i + 1;
    s->group_role = 0;
    resp->group_peer = i;
    resp->group_role = 1;
    /* a: initiator -> responder, b: responder -> initiator. */
    s->pipe_to_peer[0] = resp->pipe_from_peer[0] = a[0];
    s->pipe_to_peer[1] = resp->pipe_from_peer[1] = a[1];
    s->pipe_from_peer[0] = resp->pipe_to_peer[0] = b[0];
    s->pipe_from_peer[1] = resp->pipe_to_peer[1] = b[1];
    atomic_store(&s->futex_word, 0);
    atomic_store(&s->futex_stamp_ns, 0);
    return 0;
}

void kt_workload_release(kt_wl_slot_t *slot)
{
    uint32_t cur = atomic_load(&slot->state);
    for (;;) {
        if (cur >= KT_WL_RELEASED)
            return;
        /* start_ns before RELEASED: the child reads it after seeing RELEASED. */
        s_store(&slot->start_ns, s_now());
        if (atomic_compare_exchange_weak(&slot->state, &cur, KT_WL_RELEASED))
            break;
    }
    s_futex_wake_all(&slot->state);
}

/* CREATED/READY/RELEASED -> STOP; true when this call made the change. */
static bool s_stop_one(kt_wl_slot_t *slot, uint64_t now)
{
    uint32_t cur = atomic_load(&slot->state);
    while (cur < KT_WL_STOP) {
        if (atomic_compare_exchange_weak(&slot->state, &cur, KT_WL_STOP)) {
            s_store(&slot->stop_ns, now);
            s_futex_wake_all(&slot->state);
            return true;
        }
    }
    return false;
}

static void s_pipe_poke(int fd)
{
    uint64_t msg = KT_WL_PIPE_STOP;
    if (fd < 0)
        return;
    /* A pipe holds many 8-byte messages and at most one is in flight, so this
     * never blocks; a failure only means nobody can read it any more. */
    ssize_t r;
    do
        r = write(fd, &msg, sizeof(msg));
    while (r < 0 && errno == EINTR);
}

void kt_workload_stop(kt_wl_slot_t *slots, unsigned i)
{
    kt_wl_slot_t *s = &slots[i];
    uint64_t now = s_now();
    bool changed = s_stop_one(s, now);
    if (!s_is_pair_type(s->type) || s->group_peer >= s->n_slots)
        return;
    kt_wl_slot_t *peer = &slots[s->group_peer];
    changed |= s_stop_one(peer, now);
    if (!changed)
        return;
    kt_wl_slot_t *init = s->group_role == 0 ? s : peer;
    if (s->type == KT_WORK_FUTEX_PINGPONG) {
        atomic_fetch_or(&init->futex_word, KT_WL_FUTEX_STOP);
        s_futex_wake_all(&init->futex_word);
    } else {
        s_pipe_poke(init->pipe_to_peer[1]);
        s_pipe_poke(init->pipe_from_peer[1]);
    }
}

int kt_workload_wait(kt_wl_slot_t *slot, enum kt_wl_state state, uint32_t timeout_ms)
{
    uint64_t deadline = s_now() + (uint64_t)timeout_ms * 1000000ull;
    for (;;) {
        uint32_t cur = s_state(slot);
        if (cur >= (uint32_t)state)
            return 0;
        uint64_t now = s_now();
        if (now >= deadline)
            return -ETIMEDOUT;
        uint64_t left = deadline - now;
        struct timespec ts = {.tv_sec = (time_t)(left / KT_NSEC_PER_SEC),
                              .tv_nsec = (long)(left % KT_NSEC_PER_SEC)};
        s_futex((void *)&slot->state, FUTEX_WAIT, cur, &ts, 0);
    }
}

/* ---- the child ---- */

static void s_checkpoint(struct s_run *r)
{
    kt_wl_slot_t *s = r->slot;
    uint64_t now = s_now();
    uint64_t gap = now - r->last_ns;
    if (gap > r->max_gap_ns) {
        r->max_gap_ns = gap;
        s_store(&s->max_gap_ns, gap);
    }
    r->last_ns = now;
    s_store(&s->last_checkpoint_ns, now);

    int cpu = sched_getcpu();
    if (cpu >= 0 && cpu < KT_MAX_CPUS && cpu != r->last_cpu) {
        if (r->last_cpu >= 0) {
            r->migrations++;
            s_store(&s->migrations, r->migrations);
        }
        uint64_t *word = &s->cpus_used[cpu / 64];
        s_store(word, s_load(word) | (1ull << (cpu % 64)));
        r->last_cpu = cpu;
        s_store(&s->last_cpu, cpu);
    }
    atomic_fetch_add_explicit(&s->work_units, 1, memory_order_relaxed);
}

static void s_record_wake(struct s_run *r, uint64_t lat_ns)
{
    kt_wl_slot_t *s = r->slot;
    unsigned b = lat_ns ? 63u - (unsigned)__builtin_clzll(lat_ns) : 0;
    s_store(&s->wake_lat_hist[b], s_load(&s->wake_lat_hist[b]) + 1);
    r->wake_count++;
    s_store(&s->wake_count, r->wake_count);
    if (lat_ns > r->wake_max_ns) {
        r->wake_max_ns = lat_ns;
        s_store(&s->wake_lat_max_ns, lat_ns);
    }
}

static bool s_running(const struct s_run *r)
{
    return s_load(&r->slot->state) == KT_WL_RELEASED;
}

static void s_spin_unit(struct s_run *r)
{
    uint64_t x = r->spin_state;
    for (unsigned k = 0; k < KT_WL_SPIN_ITERS; k++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        __asm__ volatile("" : "+r"(x));
    }
    r->spin_state = x;
}

/* Sleeps until the absolute CLOCK_MONOTONIC deadline or until the parent
 * stops us (the wait is on our own state word, which stop wakes). Records the
 * wake latency past the deadline when the timer fired. */
static void s_sleep_until(struct s_run *r, uint64_t deadline)
{
    struct timespec ts = {.tv_sec = (time_t)(deadline / KT_NSEC_PER_SEC),
                          .tv_nsec = (long)(deadline % KT_NSEC_PER_SEC)};
    while (s_running(r)) {
        long rc = s_futex((void *)&r->slot->state, FUTEX_WAIT_BITSET, KT_WL_RELEASED, &ts,
                          FUTEX_BITSET_MATCH_ANY);
        uint64_t now = s_now();
        if (rc < 0 && errno == ETIMEDOUT) {
            s_record_wake(r, now > deadline ? now - deadline : 0);
            return;
        }
        if (now >= deadline)
            return;
    }
}

static int s_run_spin(struct s_run *r)
{
    while (s_running(r)) {
        s_spin_unit(r);
        s_checkpoint(r);
    }
    return 0;
}

static int s_run_yield(struct s_run *r)
{
    while (s_running(r)) {
        s_spin_unit(r);
        s_checkpoint(r);
        sched_yield();
    }
    return 0;
}

static int s_run_mixed(struct s_run *r)
{
    prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
    while (s_running(r)) {
        for (unsigned k = 0; k < KT_WL_MIXED_UNITS && s_running(r); k++) {
            s_spin_unit(r);
            s_checkpoint(r);
        }
        s_sleep_until(r, s_now() + KT_WL_MIXED_SLEEP_NS);
    }
    return 0;
}

static int s_run_bursty(struct s_run *r)
{
    prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
    while (s_running(r)) {
        uint64_t burst_end = s_now() + KT_WL_BURST_NS;
        do {
            s_spin_unit(r);
            s_checkpoint(r);
        } while (s_running(r) && r->last_ns < burst_end);
        s_sleep_until(r, s_now() + KT_WL_BURST_SLEEP_NS);
    }
    return 0;
}

static int s_io_open(struct s_run *r)
{
    int fd = open(KT_WL_IO_DIR, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL))
        return fd >= 0 ? fd : -errno;
    /* No O_TMPFILE on this filesystem: a private name, unlinked at once. */
    char path[96];
    snprintf(path, sizeof(path), KT_WL_IO_DIR "/ktstr-io-%d-%u", (int)getpid(), r->slot->index);
    fd = open(path, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    unlink(path);
    return fd;
}

static int s_run_io_sync(struct s_run *r)
{
    _cleanup_close_ int fd = s_io_open(r);
    if (fd < 0) {
        s_fail(r->slot, "io-sync: cannot create a file in '%s': %s", KT_WL_IO_DIR,
               strerror(-fd));
        return -1;
    }
    static char buf[KT_WL_IO_BYTES];
    memset(buf, 0xa5, sizeof(buf));
    for (uint64_t unit = 0; s_running(r); unit++) {
        off_t off = (off_t)(unit % KT_WL_IO_BLOCKS) * KT_WL_IO_BYTES;
        buf[0] = (char)unit;
        ssize_t n = pwrite(fd, buf, sizeof(buf), off);
        if (n != (ssize_t)sizeof(buf)) {
            if (n < 0 && errno == EINTR)
                continue;
            s_fail(r->slot, "io-sync: pwrite: %s", n < 0 ? strerror(errno) : "short write");
            return -1;
        }
        if (fdatasync(fd) < 0 && errno != EINTR) {
            s_fail(r->slot, "io-sync: fdatasync: %s", strerror(errno));
            return -1;
        }
        s_checkpoint(r);
    }
    return 0;
}

/* Reads one 8-byte message: 1 on a message, 0 when stopped (stop message,
 * STOP state, or EOF), -1 on error (slot->error set). */
static int s_pipe_recv(struct s_run *r, int fd, uint64_t *msg)
{
    for (;;) {
        ssize_t n = read(fd, msg, sizeof(*msg));
        if (n == (ssize_t)sizeof(*msg))
            return *msg == KT_WL_PIPE_STOP || !s_running(r) ? 0 : 1;
        if (n == 0)
            return 0;
        if (n < 0 && errno == EINTR) {
            if (!s_running(r))
                return 0;
            continue;
        }
        s_fail(r->slot, "pipe-pingpong: read: %s", n < 0 ? strerror(errno) : "short read");
        return -1;
    }
}

static int s_pipe_send(struct s_run *r, int fd)
{
    uint64_t msg = s_now();
    for (;;) {
        ssize_t n = write(fd, &msg, sizeof(msg));
        if (n == (ssize_t)sizeof(msg))
            return 0;
        if (n < 0 && errno == EINTR)
            continue;
        s_fail(r->slot, "pipe-pingpong: write: %s", n < 0 ? strerror(errno) : "short write");
        return -1;
    }
}

static int s_run_pipe(struct s_run *r)
{
    kt_wl_slot_t *s = r->slot;
    int in = s->pipe_from_peer[0], out = s->pipe_to_peer[1];
    if (in < 0 || out < 0) {
        s_fail(s, "pipe-pingpong: slot %u has no pipes (not prepared)", s->index);
        return -1;
    }
    if (s->group_role == 0 && s_pipe_send(r, out) < 0)
        return -1;
    while (s_running(r)) {
        uint64_t sent;
        int rc = s_pipe_recv(r, in, &sent);
        if (rc <= 0)
            return rc;
        uint64_t now = s_now();
        s_record_wake(r, now > sent ? now - sent : 0);
        s_checkpoint(r);
        if (s_pipe_send(r, out) < 0)
            return -1;
    }
    return 0;
}

static int s_run_futex(struct s_run *r, kt_wl_slot_t *slots)
{
    kt_wl_slot_t *s = r->slot;
    if (s->group_peer >= s->n_slots) {
        s_fail(s, "futex-pingpong: slot %u has no peer (not prepared)", s->index);
        return -1;
    }
    kt_wl_slot_t *init = s->group_role == 0 ? s : &slots[s->group_peer];
    _Atomic uint32_t *word = &init->futex_word;
    uint32_t mine = s->group_role ? KT_WL_FUTEX_TURN : 0;

    while (s_running(r)) {
        uint32_t w = atomic_load_explicit(word, memory_order_acquire);
        if (w & KT_WL_FUTEX_STOP)
            return 0;
        if ((w & KT_WL_FUTEX_TURN) != mine) {
            s_futex((void *)word, FUTEX_WAIT, w, NULL, 0);
            continue;
        }
        /* Our turn. A zero stamp is the initiator's first turn: no hand-over
         * received yet, so neither a wake nor a unit. */
        uint64_t stamp = atomic_load_explicit(&init->futex_stamp_ns, memory_order_relaxed);
        if (stamp) {
            uint64_t now = s_now();
            s_record_wake(r, now > stamp ? now - stamp : 0);
            s_checkpoint(r);
        }
        atomic_store_explicit(&init->futex_stamp_ns, s_now(), memory_order_relaxed);
        atomic_fetch_xor_explicit(word, KT_WL_FUTEX_TURN, memory_order_acq_rel);
        s_futex((void *)word, FUTEX_WAKE, 1, NULL, 0);
    }
    return 0;
}

/* Closes every pipe end this worker does not use: the pair's other ends and
 * the other pairs' pipes inherited from the parent. Only fds that are still
 * FIFOs are closed, in case a number was reused. */
static void s_close_foreign_pipes(kt_wl_slot_t *slots, unsigned i)
{
    const kt_wl_slot_t *me = &slots[i];
    int keep_in = s_is_pair_type(me->type) ? me->pipe_from_peer[0] : -1;
    int keep_out = s_is_pair_type(me->type) ? me->pipe_to_peer[1] : -1;
    for (unsigned j = 0; j < me->n_slots; j++) {
        const kt_wl_slot_t *o = &slots[j];
        if (!s_is_pair_type(o->type) || o->group_role != 0)
            continue;
        int fds[4] = {o->pipe_to_peer[0], o->pipe_to_peer[1], o->pipe_from_peer[0],
                      o->pipe_from_peer[1]};
        for (unsigned k = 0; k < 4; k++) {
            struct stat st;
            if (fds[k] < 0 || fds[k] == keep_in || fds[k] == keep_out)
                continue;
            if (fstat(fds[k], &st) == 0 && S_ISFIFO(st.st_mode))
                close(fds[k]);
        }
    }
}

int kt_workload_main(kt_wl_slot_t *slots, unsigned i)
{
    kt_wl_slot_t *s = &slots[i];
    s->pid = (int32_t)getpid();
    s_close_foreign_pipes(slots, i);

    uint32_t cur = KT_WL_CREATED;
    if (atomic_compare_exchange_strong(&s->state, &cur, KT_WL_READY))
        s_futex_wake_all(&s->state);
    for (;;) {
        cur = s_state(s);
        if (cur >= KT_WL_RELEASED)
            break;
        s_futex((void *)&s->state, FUTEX_WAIT, cur, NULL, 0);
    }

    struct s_run r = {
        .slot = s,
        .last_ns = s_load(&s->start_ns),
        .last_cpu = -1,
        .spin_state = 0x9e3779b97f4a7c15ull ^ ((uint64_t)i << 32) ^ (uint64_t)s->pid,
    };
    s_store(&s->last_checkpoint_ns, r.last_ns);

    int rc = 0;
    if (cur == KT_WL_RELEASED) {
        switch (s->type) {
        case KT_WORK_SPIN:
            rc = s_run_spin(&r);
            break;
        case KT_WORK_YIELD:
            rc = s_run_yield(&r);
            break;
        case KT_WORK_MIXED:
            rc = s_run_mixed(&r);
            break;
        case KT_WORK_BURSTY:
            rc = s_run_bursty(&r);
            break;
        case KT_WORK_IO_SYNC:
            rc = s_run_io_sync(&r);
            break;
        case KT_WORK_PIPE_PINGPONG:
            rc = s_run_pipe(&r);
            break;
        case KT_WORK_FUTEX_PINGPONG:
            rc = s_run_futex(&r, slots);
            break;
        default:
            s_fail(s, "unknown work type %u", s->type);
            rc = -1;
            break;
        }
    }
    s_spin_sink = r.spin_state;

    s_store(&s->end_ns, s_now());
    atomic_store_explicit(&s->state, KT_WL_DONE, memory_order_release);
    s_futex_wake_all(&s->state);
    return rc < 0 ? 1 : 0;
}

/* ---- the parent's view ---- */

/* The latency at rank ceil(p * count), interpolated linearly inside its log2
 * bucket [2^b, 2^(b+1)) and capped at the observed maximum. */
static uint64_t s_hist_percentile(const uint64_t *hist, uint64_t count, uint64_t max, double p)
{
    if (count == 0)
        return 0;
    uint64_t rank = (uint64_t)(p * (double)count);
    if ((double)rank < p * (double)count)
        rank++;
    if (rank < 1)
        rank = 1;
    uint64_t cum = 0;
    for (unsigned b = 0; b < KT_WL_LAT_BUCKETS; b++) {
        if (hist[b] == 0 || cum + hist[b] < rank) {
            cum += hist[b];
            continue;
        }
        double lo = b == 0 ? 0.0 : (double)(1ull << b);
        double hi = b == 0 ? 1.0 : 2.0 * lo - 1.0;
        if (hi > (double)max)
            hi = (double)max;
        if (lo > hi)
            lo = hi;
        double v = lo + (hi - lo) * ((double)(rank - cum) / (double)hist[b]);
        return v >= (double)max ? max : (uint64_t)v;
    }
    return max;
}

void kt_workload_collect_slot(const kt_wl_slot_t *slot, kt_worker_stats_t *ret)
{
    uint32_t state = s_state(slot);
    uint64_t start = s_load(&slot->start_ns);
    uint64_t end;
    if (state == KT_WL_DONE)
        end = s_load(&slot->end_ns);
    else if (s_load(&slot->stop_ns))
        end = s_load(&slot->stop_ns);
    else
        end = s_now();

    kt_worker_stats_t w = {
        .cgroup = slot->cgroup,
        .index = slot->index,
        .pid = slot->pid,
        .work_units = atomic_load(&slot->work_units),
        .migrations = s_load(&slot->migrations),
    };
    if (start) {
        w.wall_time_ns = end > start ? end - start : 0;
        uint64_t last = s_load(&slot->last_checkpoint_ns);
        if (last < start)
            last = start;
        w.max_gap_ns = s_load(&slot->max_gap_ns);
        if (end > last && end - last > w.max_gap_ns)
            w.max_gap_ns = end - last;
    }
    for (unsigned k = 0; k < KT_CPUMASK_WORDS; k++)
        w.cpus_used.bits[k] = s_load(&slot->cpus_used[k]);

    uint64_t hist[KT_WL_LAT_BUCKETS], count = 0;
    for (unsigned b = 0; b < KT_WL_LAT_BUCKETS; b++) {
        hist[b] = s_load(&slot->wake_lat_hist[b]);
        count += hist[b];
    }
    w.wake_count = count;
    w.wake_lat_max_ns = s_load(&slot->wake_lat_max_ns);
    w.wake_lat_p50_ns = s_hist_percentile(hist, count, w.wake_lat_max_ns, 0.50);
    w.wake_lat_p99_ns = s_hist_percentile(hist, count, w.wake_lat_max_ns, 0.99);
    *ret = w;
}

/* Reads /proc/<pid>/<name> (bounded) into buf, NUL-terminated. */
static int s_read_proc(int32_t pid, const char *name, char *buf, size_t len)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, name);
    return kt_read_small_file(path, buf, len);
}

/* utime + stime in ns from /proc/<pid>/stat (fields 14 and 15; the comm field
 * may hold spaces and parentheses, so parsing starts after the last ')'). */
static int s_stat_cpu_ns(const char *stat, uint64_t *ret)
{
    const char *p = strrchr(stat, ')');
    if (!p)
        return -EBADMSG;
    p++;
    unsigned long long utime = 0, stime = 0;
    /* After ')': state(3) ppid pgrp session tty tpgid flags minflt cminflt
     * majflt cmajflt utime(14) stime(15). */
    if (sscanf(p, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) != 2)
        return -EBADMSG;
    long tck = sysconf(_SC_CLK_TCK);
    if (tck <= 0)
        tck = 100;
    *ret = (utime + stime) * (KT_NSEC_PER_SEC / (uint64_t)tck);
    return 0;
}

static uint64_t s_status_field(const char *status, const char *key)
{
    size_t klen = strlen(key);
    for (const char *line = status; line && *line;) {
        if (strncmp(line, key, klen) == 0 && line[klen] == ':')
            return strtoull(line + klen + 1, NULL, 10);
        line = strchr(line, '\n');
        if (line)
            line++;
    }
    return 0;
}

int kt_workload_collect(const kt_wl_slot_t *slot, kt_worker_stats_t *ret)
{
    if (slot->pid <= 0)
        return -ESRCH;
    kt_worker_stats_t w;
    kt_workload_collect_slot(slot, &w);

    char buf[4096];
    int r = s_read_proc(slot->pid, "stat", buf, sizeof(buf));
    if (r < 0)
        return r;
    uint64_t stat_cpu_ns = 0;
    r = s_stat_cpu_ns(buf, &stat_cpu_ns);
    if (r < 0)
        return r;

    unsigned long long on_cpu, delay, slices;
    r = s_read_proc(slot->pid, "schedstat", buf, sizeof(buf));
    if (r >= 0 && sscanf(buf, "%llu %llu %llu", &on_cpu, &delay, &slices) == 3) {
        w.cpu_time_ns = on_cpu;
        w.run_delay_ns = delay;
        w.timeslices = slices;
    } else if (r < 0 && r != -ENOENT) {
        return r;
    } else {
        w.cpu_time_ns = stat_cpu_ns;
    }

    char status[8192];
    r = s_read_proc(slot->pid, "status", status, sizeof(status));
    if (r < 0)
        return r;
    w.voluntary_ctxsw = s_status_field(status, "voluntary_ctxt_switches");
    w.involuntary_ctxsw = s_status_field(status, "nonvoluntary_ctxt_switches");
    *ret = w;
    return 0;
}
