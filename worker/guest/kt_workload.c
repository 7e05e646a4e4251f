/* The guest workloads (ktstr's work types) and their telemetry in a slot
 * shared with the parent. The child
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
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
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
/* Cache types: 4096 lines per unit, 65 lines apart (a page and a line, so
 * neither next-line nor in-page stride prefetching hides the misses). */
#define KT_WL_CACHE_LINE 64u
#define KT_WL_CACHE_UNIT_LINES 4096u
#define KT_WL_CACHE_STRIDE_LINES 65u
#define KT_WL_CACHE_MIN_BYTES (1ull << 20)
#define KT_WL_CACHE_MAX_BYTES (64ull << 20)
#define KT_WL_CACHE_DEFAULT_LLC (8ull << 20)
/* fan-out-compute: 48x48 uint64 matrices, three of them: 54 KiB. */
#define KT_WL_MATRIX_N 48u
/* sequence: phase lengths and the sleep phase's sleeps. */
#define KT_WL_SEQ_SPIN_NS 20000000ull
#define KT_WL_SEQ_SLEEP_NS 10000000ull
#define KT_WL_SEQ_YIELD_NS 10000000ull
#define KT_WL_SEQ_IO_NS 10000000ull
#define KT_WL_SEQ_NAP_NS 1000000ull
/* nice-sweep: one nice level per step, -20..19. */
#define KT_WL_NICE_STEP_NS 10000000ull
/* page-fault-churn: pages per mapping, faults per checkpoint. */
#define KT_WL_PF_PAGES 256u
#define KT_WL_PF_PAGE 4096u
#define KT_WL_PF_PER_CHECKPOINT 16u
/* mutex-contention: the blocked wait's slice (bounds how long a stop takes
 * to be seen while the holder is frozen). */
#define KT_WL_MUTEX_SLICE_NS 20000000ull
/* Fan-out words: bit 31 is the parent's stop. */
#define KT_WL_GROUP_STOP (1u << 31)

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
    uint64_t wake_sum_ns;
    double wake_sumsq;
    uint64_t iterations;
    bool multi_unit_pass; /* a loop pass holds several units: s_iteration counts it */
    uint64_t spin_state;
    kt_wl_slot_t *slots;
    /* Set up before the release, freed after the run. */
    uint64_t *cache;    /* cache types */
    size_t cache_lines; /* a power of two */
    size_t cache_pos;
    uint64_t *matrix; /* fan-out-compute: A, B, C */
    int io_fd;        /* sequence */
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

static unsigned s_group_size(uint32_t type)
{
    return type < KT_WORK__COUNT ? kt_work_type_group_size((enum kt_work_type)type) : 1;
}

/* Pairs that hand over through two pipes. */
static bool s_uses_pipes(uint32_t type)
{
    return type == KT_WORK_PIPE_PINGPONG || type == KT_WORK_CACHE_PIPE;
}

static bool s_uses_cache(uint32_t type)
{
    return type == KT_WORK_CACHE_PRESSURE || type == KT_WORK_CACHE_YIELD ||
           type == KT_WORK_CACHE_PIPE;
}

/* The leader of the group slot i belongs to, or NULL when i is ungrouped or
 * its group lies outside the array. */
static kt_wl_slot_t *s_leader(kt_wl_slot_t *slots, unsigned i)
{
    const kt_wl_slot_t *s = &slots[i];
    if (s->group_size <= 1 || s->group_leader >= s->n_slots ||
        s->group_leader + s->group_size > s->n_slots)
        return NULL;
    return &slots[s->group_leader];
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
    kt_wl_slot_t *slots =
        mmap(NULL, sizeof(*slots) * n, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
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
    /* The initiator's slot owns the pair's pipes (the responder mirrors
     * them), the leader's the group's mutex. */
    for (unsigned i = 0; i < n; i++) {
        if (slots[i].type == KT_WORK_MUTEX_CONTENTION && slots[i].group_role == 0 &&
            slots[i].group_size > 1)
            pthread_mutex_destroy(&slots[i].group_mutex);
        if (!s_uses_pipes(slots[i].type) || slots[i].group_role != 0)
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
    slot->group_size = 1;
    slot->group_leader = 0;
    slot->last_cpu = -1;
}

static int s_mutex_init(pthread_mutex_t *m)
{
    pthread_mutexattr_t a;
    int r = pthread_mutexattr_init(&a);
    if (r)
        return -r;
    /* Shared across the workers' processes; robust, so that a contender that
     * dies holding it does not wedge the others. */
    if ((r = pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED)) == 0 &&
        (r = pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST)) == 0)
        r = pthread_mutex_init(m, &a);
    pthread_mutexattr_destroy(&a);
    return -r;
}

int kt_workload_prepare(kt_wl_slot_t *slots, unsigned i, enum kt_work_type type, unsigned cgroup,
                        unsigned index)
{
    if (!slots || (unsigned)type >= KT_WORK__COUNT || i >= slots[0].n_slots)
        return -EINVAL;
    kt_wl_slot_t *s = &slots[i];
    unsigned size = s_group_size(type);
    /* A slot an earlier leader claimed is not free for another worker: a
     * group of a count that does not divide would reach into the next
     * cgroup. */
    if (s->group_size > 1 && s->group_leader != i && (size <= 1 || index % size == 0))
        return -EINVAL;
    if (size <= 1) {
        s_prepare_one(s, type, cgroup, index);
        s->group_leader = i;
        return 0;
    }

    unsigned pos = index % size;
    if (pos) {
        /* A member: its leader (i - pos) prepared it already. */
        if (i < pos)
            return -EINVAL;
        kt_wl_slot_t *lead = &slots[i - pos];
        if (lead->type != (uint32_t)type || lead->cgroup != cgroup || lead->group_role != 0 ||
            lead->group_size != size || lead->group_leader != i - pos ||
            lead->index != index - pos || s->type != (uint32_t)type || s->cgroup != cgroup ||
            s->group_leader != i - pos || s->group_role != pos || s->index != index ||
            (s_uses_pipes(type) && lead->pipe_to_peer[0] < 0))
            return -EINVAL;
        return 0;
    }

    if (i + size > slots[0].n_slots)
        return -EINVAL;
    int a[2] = {-1, -1}, b[2] = {-1, -1};
    if (s_uses_pipes(type)) {
        if (s->group_role == 0 && s->pipe_to_peer[0] >= 0)
            return -EBUSY; /* prepared twice: its pipes are in use */
        if (pipe2(a, O_CLOEXEC) < 0)
            return -errno;
        if (pipe2(b, O_CLOEXEC) < 0) {
            int r = -errno;
            close(a[0]);
            close(a[1]);
            return r;
        }
    }
    if (type == KT_WORK_MUTEX_CONTENTION) {
        int r = s_mutex_init(&s->group_mutex);
        if (r < 0)
            return r;
    }
    for (unsigned m = 0; m < size; m++) {
        kt_wl_slot_t *x = &slots[i + m];
        s_prepare_one(x, type, cgroup, index + m);
        x->group_size = size;
        x->group_leader = i;
        x->group_role = m;
        x->group_peer = m ? i : i + 1;
    }
    if (s_uses_pipes(type)) {
        kt_wl_slot_t *resp = &slots[i + 1];
        /* a: initiator -> responder, b: responder -> initiator. */
        s->pipe_to_peer[0] = resp->pipe_from_peer[0] = a[0];
        s->pipe_to_peer[1] = resp->pipe_from_peer[1] = a[1];
        s->pipe_from_peer[0] = resp->pipe_to_peer[0] = b[0];
        s->pipe_from_peer[1] = resp->pipe_to_peer[1] = b[1];
    }
    atomic_store(&s->futex_word, 0);
    atomic_store(&s->futex_stamp_ns, 0);
    atomic_store(&s->group_gen, 0);
    atomic_store(&s->group_acks, 0);
    atomic_store(&s->group_ack_ns, 0);
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
    kt_wl_slot_t *lead = s_leader(slots, i);
    if (!lead)
        return;
    for (unsigned m = 0; m < s->group_size; m++)
        changed |= s_stop_one(&lead[m], now);
    if (!changed)
        return;
    switch (s->type) {
    case KT_WORK_FUTEX_PINGPONG:
        atomic_fetch_or(&lead->futex_word, KT_WL_FUTEX_STOP);
        s_futex_wake_all(&lead->futex_word);
        break;
    case KT_WORK_PIPE_PINGPONG:
    case KT_WORK_CACHE_PIPE:
        s_pipe_poke(lead->pipe_to_peer[1]);
        s_pipe_poke(lead->pipe_from_peer[1]);
        break;
    case KT_WORK_FUTEX_FAN_OUT:
    case KT_WORK_FAN_OUT_COMPUTE:
        atomic_fetch_or(&lead->group_gen, KT_WL_GROUP_STOP);
        atomic_fetch_or(&lead->group_acks, KT_WL_GROUP_STOP);
        s_futex_wake_all(&lead->group_gen);
        s_futex_wake_all(&lead->group_acks);
        break;
    default:
        /* Mutex contenders wait in slices and see their state in between. */
        break;
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

/* A checkpoint that closes n units at once (page-fault-churn's faults). */
static void s_checkpoint_n(struct s_run *r, uint64_t n)
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

    uint32_t e0 = atomic_load_explicit(&r->slots[0].step_epoch, memory_order_acquire);
    int cpu = sched_getcpu();
    uint32_t e1 = atomic_load_explicit(&r->slots[0].step_epoch, memory_order_acquire);
    if (e0 == e1 && !(e0 & 1) && e0 / 2 < KT_MAX_PHASES) {
        unsigned ph = e0 / 2;
        s_store(&s->step_units[ph], s_load(&s->step_units[ph]) + n);
        if (cpu >= 0 && cpu < KT_MAX_CPUS) {
            uint64_t *pw = &s->step_cpus[ph][cpu / 64];
            uint64_t bit = 1ull << (cpu % 64);
            if (!(s_load(pw) & bit))
                s_store(pw, s_load(pw) | bit);
        }
    }
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
    atomic_fetch_add_explicit(&s->work_units, n, memory_order_relaxed);
    if (!r->multi_unit_pass) {
        r->iterations++;
        s_store(&s->iterations, r->iterations);
    }
}

static void s_checkpoint(struct s_run *r)
{
    s_checkpoint_n(r, 1);
}

/* The end of a loop pass of a type whose pass holds several units. */
static void s_iteration(struct s_run *r)
{
    r->iterations++;
    s_store(&r->slot->iterations, r->iterations);
}

static void s_record_wake(struct s_run *r, uint64_t lat_ns)
{
    kt_wl_slot_t *s = r->slot;
    unsigned b = lat_ns ? 63u - (unsigned)__builtin_clzll(lat_ns) : 0;
    s_store(&s->wake_lat_hist[b], s_load(&s->wake_lat_hist[b]) + 1);
    r->wake_count++;
    s_store(&s->wake_count, r->wake_count);
    r->wake_sum_ns += lat_ns;
    s_store(&s->wake_lat_sum_ns, r->wake_sum_ns);
    r->wake_sumsq += (double)lat_ns * (double)lat_ns;
    __atomic_store(&s->wake_lat_sumsq, &r->wake_sumsq, __ATOMIC_RELAXED);
    if (lat_ns > r->wake_max_ns) {
        r->wake_max_ns = lat_ns;
        s_store(&s->wake_lat_max_ns, lat_ns);
    }
}

static bool s_running(const struct s_run *r)
{
    return s_load(&r->slot->state) == KT_WL_RELEASED;
}

static void s_spin_iters(struct s_run *r, unsigned iters)
{
    uint64_t x = r->spin_state;
    for (unsigned k = 0; k < iters; k++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        __asm__ volatile("" : "+r"(x));
    }
    r->spin_state = x;
}

static void s_spin_unit(struct s_run *r)
{
    s_spin_iters(r, KT_WL_SPIN_ITERS);
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
        s_iteration(r);
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
        s_iteration(r);
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

static int s_io_unit(struct s_run *r, int fd, uint64_t unit, const char *what)
{
    static char buf[KT_WL_IO_BYTES];
    off_t off = (off_t)(unit % KT_WL_IO_BLOCKS) * KT_WL_IO_BYTES;
    buf[0] = (char)unit;
    for (;;) {
        ssize_t n = pwrite(fd, buf, sizeof(buf), off);
        if (n == (ssize_t)sizeof(buf))
            break;
        if (n < 0 && errno == EINTR)
            continue;
        s_fail(r->slot, "%s: pwrite: %s", what, n < 0 ? strerror(errno) : "short write");
        return -1;
    }
    if (fdatasync(fd) < 0 && errno != EINTR) {
        s_fail(r->slot, "%s: fdatasync: %s", what, strerror(errno));
        return -1;
    }
    return 0;
}

static int s_run_io_sync(struct s_run *r)
{
    _cleanup_close_ int fd = s_io_open(r);
    if (fd < 0) {
        s_fail(r->slot, "io-sync: cannot create a file in '%s': %s", KT_WL_IO_DIR, strerror(-fd));
        return -1;
    }
    for (uint64_t unit = 0; s_running(r); unit++) {
        if (s_io_unit(r, fd, unit, "io-sync") < 0)
            return -1;
        s_checkpoint(r);
    }
    return 0;
}

/* ---- cache types ---- */

/* Size in bytes of a sysfs cache "size" ("32768K", "16M"); 0 when unreadable. */
static uint64_t s_cache_size_file(const char *path)
{
    char buf[64];
    if (kt_read_small_file(path, buf, sizeof(buf)) < 0)
        return 0;
    char *end;
    unsigned long long v = strtoull(buf, &end, 10);
    if (end == buf)
        return 0;
    if (*end == 'K')
        v <<= 10;
    else if (*end == 'M')
        v <<= 20;
    else if (*end == 'G')
        v <<= 30;
    return v;
}

/* The last-level cache of CPU 0: the highest level among its data and
 * unified caches in sysfs, else what the C library knows, else 8 MiB. */
static uint64_t s_llc_bytes(void)
{
    uint64_t best = 0;
    unsigned best_level = 0;
    for (unsigned k = 0; k < 8; k++) {
        char path[96], buf[32];
        snprintf(path, sizeof(path), "/sys/devices/system/cpu/cpu0/cache/index%u/type", k);
        if (kt_read_small_file(path, buf, sizeof(buf)) < 0)
            continue;
        if (strncmp(buf, "Instruction", 11) == 0)
            continue;
        snprintf(path, sizeof(path), "/sys/devices/system/cpu/cpu0/cache/index%u/level", k);
        if (kt_read_small_file(path, buf, sizeof(buf)) < 0)
            continue;
        unsigned level = (unsigned)strtoul(buf, NULL, 10);
        snprintf(path, sizeof(path), "/sys/devices/system/cpu/cpu0/cache/index%u/size", k);
        uint64_t size = s_cache_size_file(path);
        if (size && level >= best_level) {
            best_level = level;
            best = size;
        }
    }
#ifdef _SC_LEVEL3_CACHE_SIZE
    if (!best) {
        long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
        best = l3 > 0 ? (uint64_t)l3 : 0;
    }
#endif
    return best ? best : KT_WL_CACHE_DEFAULT_LLC;
}

static uint64_t s_pow2_floor(uint64_t v)
{
    return v ? 1ull << (63 - __builtin_clzll(v)) : 0;
}

/* Twice the LLC, rounded up to a power of two, within [1 MiB, 64 MiB] and
 * within a quarter of the memory shared among this cell's cache workers. */
static int s_cache_setup(struct s_run *r)
{
    uint64_t want = s_llc_bytes() * 2;
    uint64_t bytes = s_pow2_floor(want);
    if (bytes < want)
        bytes <<= 1;
    if (bytes > KT_WL_CACHE_MAX_BYTES)
        bytes = KT_WL_CACHE_MAX_BYTES;
    unsigned sharers = 0;
    for (unsigned j = 0; j < r->slot->n_slots; j++)
        sharers += s_uses_cache(r->slots[j].type);
    long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
    if (pages > 0 && psize > 0 && sharers) {
        uint64_t cap = s_pow2_floor((uint64_t)pages * (uint64_t)psize / 4 / sharers);
        if (bytes > cap)
            bytes = cap;
    }
    if (bytes < KT_WL_CACHE_MIN_BYTES)
        bytes = KT_WL_CACHE_MIN_BYTES;
    /* Populated now, before the release: page faults are not the point. */
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE,
                   -1, 0);
    if (p == MAP_FAILED) {
        s_fail(r->slot, "%s: cannot map a %llu KiB buffer: %s",
               kt_work_type_name((enum kt_work_type)r->slot->type),
               (unsigned long long)(bytes >> 10), strerror(errno));
        return -1;
    }
    r->cache = p;
    r->cache_lines = bytes / KT_WL_CACHE_LINE;
    r->cache_pos = (size_t)r->slot->index * 977;
    s_store(&r->slot->buffer_bytes, bytes);
    return 0;
}

/* One unit: read-modify-write of KT_WL_CACHE_UNIT_LINES lines, stepping
 * KT_WL_CACHE_STRIDE_LINES lines (odd, so the walk visits every line of the
 * power-of-two buffer before it repeats). */
static void s_cache_unit(struct s_run *r)
{
    uint64_t *buf = r->cache;
    size_t mask = r->cache_lines - 1, pos = r->cache_pos;
    uint64_t acc = r->spin_state;
    for (unsigned k = 0; k < KT_WL_CACHE_UNIT_LINES; k++) {
        uint64_t *p = &buf[(pos & mask) * (KT_WL_CACHE_LINE / sizeof(uint64_t))];
        acc += *p;
        *p = acc;
        pos += KT_WL_CACHE_STRIDE_LINES;
    }
    r->cache_pos = pos & mask;
    r->spin_state = acc | 1;
}

static int s_run_cache(struct s_run *r, bool yield)
{
    while (s_running(r)) {
        s_cache_unit(r);
        s_checkpoint(r);
        if (yield)
            sched_yield();
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
        s_fail(r->slot, "%s: read: %s", kt_work_type_name((enum kt_work_type)r->slot->type),
               n < 0 ? strerror(errno) : "short read");
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
        s_fail(r->slot, "%s: write: %s", kt_work_type_name((enum kt_work_type)r->slot->type),
               n < 0 ? strerror(errno) : "short write");
        return -1;
    }
}

/* pipe-pingpong, and cache-pipe with a cache unit before each send. */
static int s_run_pipe(struct s_run *r, bool cache)
{
    kt_wl_slot_t *s = r->slot;
    int in = s->pipe_from_peer[0], out = s->pipe_to_peer[1];
    if (in < 0 || out < 0) {
        s_fail(s, "%s: slot %u has no pipes (not prepared)",
               kt_work_type_name((enum kt_work_type)s->type), s->index);
        return -1;
    }
    if (s->group_role == 0) {
        if (cache)
            s_cache_unit(r);
        if (s_pipe_send(r, out) < 0)
            return -1;
    }
    while (s_running(r)) {
        uint64_t sent;
        int rc = s_pipe_recv(r, in, &sent);
        if (rc <= 0)
            return rc;
        uint64_t now = s_now();
        s_record_wake(r, now > sent ? now - sent : 0);
        if (cache)
            s_cache_unit(r);
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

/* ---- fan-outs ---- */

static int s_matrix_setup(struct s_run *r)
{
    size_t n = (size_t)KT_WL_MATRIX_N * KT_WL_MATRIX_N;
    r->matrix = malloc(3 * n * sizeof(uint64_t));
    if (!r->matrix) {
        s_fail(r->slot, "fan-out-compute: cannot allocate the matrices");
        return -1;
    }
    uint64_t x = r->spin_state;
    for (size_t k = 0; k < 3 * n; k++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        r->matrix[k] = x;
    }
    s_store(&r->slot->buffer_bytes, 3 * n * sizeof(uint64_t));
    return 0;
}

/* C = A x B, then one element of C feeds back into A, so that no round is
 * dead code. */
static void s_matrix_unit(struct s_run *r)
{
    const size_t n = KT_WL_MATRIX_N;
    uint64_t *a = r->matrix, *b = a + n * n, *c = b + n * n;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++) {
            uint64_t sum = 0;
            for (size_t k = 0; k < n; k++)
                sum += a[i * n + k] * b[k * n + j];
            c[i * n + j] = sum;
        }
    size_t at = (size_t)(r->spin_state % (n * n));
    a[at] ^= c[(at * 7) % (n * n)];
    r->spin_state ^= c[n * n - 1] | 1;
}

static void s_fan_out_work(struct s_run *r, bool compute)
{
    if (compute)
        s_matrix_unit(r);
    else
        s_spin_unit(r);
}

/* Raises *word to v unless it is larger already. */
static void s_store_max(_Atomic uint64_t *word, uint64_t v)
{
    uint64_t cur = atomic_load_explicit(word, memory_order_relaxed);
    while (cur < v && !atomic_compare_exchange_weak_explicit(word, &cur, v, memory_order_release,
                                                             memory_order_relaxed))
        ;
}

/* Blocks until the round's reports are in: 1 when they are, 0 on a stop. */
static int s_fan_out_wait_reports(struct s_run *r, kt_wl_slot_t *lead, uint32_t need)
{
    for (;;) {
        uint32_t a = atomic_load_explicit(&lead->group_acks, memory_order_acquire);
        if ((a & KT_WL_GROUP_STOP) || !s_running(r))
            return 0;
        if (a >= need)
            return 1;
        s_futex((void *)&lead->group_acks, FUTEX_WAIT, a, NULL, 0);
    }
}

static void s_fan_out_report(kt_wl_slot_t *lead, uint64_t now, uint32_t need)
{
    s_store_max(&lead->group_ack_ns, now);
    uint32_t a = atomic_fetch_add_explicit(&lead->group_acks, 1, memory_order_acq_rel) + 1;
    if ((a & ~KT_WL_GROUP_STOP) == need)
        s_futex((void *)&lead->group_acks, FUTEX_WAKE, 1, NULL, 0);
}

/* Round k is published by the member at position k % size, which first waits
 * for round k - 1's reports, runs its unit (futex-fan-out: before the wake;
 * fan-out-compute: its own share, after it), then stamps the time, resets
 * the reports and moves the generation word to k + 1 with one FUTEX_WAKE for
 * all. The others wake, run their unit and report. The waker's role rotates
 * so that every member does the same work over `size` rounds: the fairness
 * check then compares like with like. Every member counts one unit and one
 * wake-up per round (the waker's is the wait for the previous round's
 * reports; round 0 has none). */
static int s_run_fan_out(struct s_run *r, bool compute)
{
    kt_wl_slot_t *s = r->slot;
    kt_wl_slot_t *lead = s_leader(r->slots, (unsigned)(s - r->slots));
    if (!lead) {
        s_fail(s, "%s: slot %u has no group (not prepared)",
               kt_work_type_name((enum kt_work_type)s->type), s->index);
        return -1;
    }
    const uint32_t size = s->group_size, me = s->group_role;
    /* fan-out-compute joins on every member's share, the waker's too. */
    const uint32_t need = compute ? size : size - 1;
    for (uint64_t round = 0; s_running(r); round++) {
        uint32_t gen = (uint32_t)((round + 1) & ~(uint64_t)KT_WL_GROUP_STOP);
        if (round % size == me) {
            if (round > 0) {
                if (!s_fan_out_wait_reports(r, lead, need))
                    return 0;
                uint64_t now = s_now();
                uint64_t last = atomic_load_explicit(&lead->group_ack_ns, memory_order_acquire);
                s_record_wake(r, now > last ? now - last : 0);
            }
            if (!compute)
                s_spin_unit(r);
            uint32_t a = atomic_load(&lead->group_acks);
            do {
                if (a & KT_WL_GROUP_STOP)
                    return 0;
            } while (!atomic_compare_exchange_weak(&lead->group_acks, &a, 0));
            atomic_store_explicit(&lead->group_ack_ns, 0, memory_order_relaxed);
            atomic_store_explicit(&lead->futex_stamp_ns, s_now(), memory_order_relaxed);
            uint32_t g = atomic_load(&lead->group_gen);
            do {
                if (g & KT_WL_GROUP_STOP)
                    return 0;
            } while (!atomic_compare_exchange_weak(&lead->group_gen, &g, gen));
            s_futex_wake_all(&lead->group_gen);
            if (compute)
                s_matrix_unit(r);
            s_checkpoint(r);
            if (compute)
                s_fan_out_report(lead, r->last_ns, need);
            continue;
        }
        for (;;) {
            uint32_t g = atomic_load_explicit(&lead->group_gen, memory_order_acquire);
            if ((g & KT_WL_GROUP_STOP) || !s_running(r))
                return 0;
            if (g == gen)
                break;
            s_futex((void *)&lead->group_gen, FUTEX_WAIT, g, NULL, 0);
        }
        uint64_t stamp = atomic_load_explicit(&lead->futex_stamp_ns, memory_order_relaxed);
        uint64_t now = s_now();
        s_record_wake(r, now > stamp ? now - stamp : 0);
        s_fan_out_work(r, compute);
        s_checkpoint(r);
        s_fan_out_report(lead, r->last_ns, need);
    }
    return 0;
}

/* ---- sequence ---- */

static int s_run_sequence(struct s_run *r)
{
    static const uint64_t len[4] = {
        [KT_WL_PHASE_SPIN] = KT_WL_SEQ_SPIN_NS,
        [KT_WL_PHASE_SLEEP] = KT_WL_SEQ_SLEEP_NS,
        [KT_WL_PHASE_YIELD] = KT_WL_SEQ_YIELD_NS,
        [KT_WL_PHASE_IO] = KT_WL_SEQ_IO_NS,
    };
    prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
    uint64_t units[4] = {0}, io_units = 0;
    for (unsigned ph = 0; s_running(r); ph = (ph + 1) % 4) {
        uint64_t end = s_now() + len[ph];
        do {
            switch (ph) {
            case KT_WL_PHASE_SPIN:
                s_spin_unit(r);
                break;
            case KT_WL_PHASE_SLEEP: {
                uint64_t now = s_now(), until = now + KT_WL_SEQ_NAP_NS;
                s_sleep_until(r, until < end ? until : end);
                break;
            }
            case KT_WL_PHASE_YIELD:
                sched_yield();
                break;
            default:
                if (s_io_unit(r, r->io_fd, io_units++, "sequence") < 0)
                    return -1;
                break;
            }
            s_checkpoint(r);
            units[ph]++;
            s_store(&r->slot->phase_units[ph], units[ph]);
        } while (s_running(r) && r->last_ns < end);
        if (ph == KT_WL_PHASE_IO || !s_running(r))
            s_iteration(r);
    }
    return 0;
}

/* ---- fork-exit ---- */

static int s_run_fork_exit(struct s_run *r)
{
    while (s_running(r)) {
        pid_t pid = fork();
        if (pid == 0)
            _exit(0);
        if (pid < 0) {
            if (errno == EAGAIN) {
                /* Out of pids or tasks for a moment: try again, no unit. */
                struct timespec ms = {.tv_sec = 0, .tv_nsec = 1000000L};
                nanosleep(&ms, NULL);
                continue;
            }
            s_fail(r->slot, "fork-exit: fork: %s", strerror(errno));
            return -1;
        }
        int st;
        while (waitpid(pid, &st, 0) < 0) {
            if (errno != EINTR) {
                s_fail(r->slot, "fork-exit: waitpid: %s", strerror(errno));
                return -1;
            }
        }
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            s_fail(r->slot, "fork-exit: a child ended with status 0x%x", (unsigned)st);
            return -1;
        }
        s_checkpoint(r);
    }
    return 0;
}

/* ---- churn ---- */

static int s_run_nice_sweep(struct s_run *r)
{
    kt_wl_slot_t *s = r->slot;
    uint64_t start = s_load(&s->start_ns);
    int applied = INT_MIN, lo = INT_MAX, hi = INT_MIN;
    uint64_t changes = 0;
    while (s_running(r)) {
        s_spin_unit(r);
        s_checkpoint(r);
        uint64_t step = (r->last_ns - start) / KT_WL_NICE_STEP_NS;
        int want = -20 + (int)(step % 40);
        if (want == applied)
            continue;
        if (setpriority(PRIO_PROCESS, 0, want) < 0) {
            if ((errno == EACCES || errno == EPERM) && want < 0) {
                applied = want; /* no CAP_SYS_NICE: the negative half is skipped */
                continue;
            }
            s_fail(s, "nice-sweep: setpriority(%d): %s", want, strerror(errno));
            return -1;
        }
        applied = want;
        lo = want < lo ? want : lo;
        hi = want > hi ? want : hi;
        s_store(&s->changes, ++changes);
        s_store(&s->nice_lo, lo);
        s_store(&s->nice_hi, hi);
    }
    return 0;
}

/* The CPUs this task may use now, from its affinity (the cpuset bounds it). */
static int s_allowed_cpus(int *cpus, unsigned max)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) < 0)
        return -errno;
    int n = 0;
    for (unsigned c = 0; c < CPU_SETSIZE && c < KT_MAX_CPUS && (unsigned)n < max; c++)
        if (CPU_ISSET(c, &set))
            cpus[n++] = (int)c;
    return n;
}

static int s_run_affinity_churn(struct s_run *r)
{
    kt_wl_slot_t *s = r->slot;
    cpu_set_t orig;
    CPU_ZERO(&orig);
    if (sched_getaffinity(0, sizeof(orig), &orig) < 0) {
        s_fail(s, "affinity-churn: sched_getaffinity: %s", strerror(errno));
        return -1;
    }
    int cpus[KT_MAX_CPUS];
    int n = s_allowed_cpus(cpus, KT_MAX_CPUS);
    if (n <= 0) {
        s_fail(s, "affinity-churn: no CPU allowed");
        return -1;
    }
    uint64_t changes = 0;
    int cur = -1;
    while (s_running(r)) {
        s_spin_unit(r);
        /* Another CPU than the current one when there is one. */
        int pick = (int)((r->spin_state >> 17) % (uint64_t)n);
        if (n > 1 && cpus[pick] == cur)
            pick = (pick + 1) % n;
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(cpus[pick], &one);
        if (sched_setaffinity(0, sizeof(one), &one) < 0) {
            if (errno != EINVAL) {
                s_fail(s, "affinity-churn: sched_setaffinity(%d): %s", cpus[pick], strerror(errno));
                return -1;
            }
            /* The cpuset changed under us: back to the mask we were given
             * (the kernel intersects it with the new cpuset), or to every
             * CPU when nothing of it is left, and read what is allowed. */
            if (sched_setaffinity(0, sizeof(orig), &orig) < 0) {
                cpu_set_t all;
                CPU_ZERO(&all);
                for (unsigned c = 0; c < KT_MAX_CPUS; c++)
                    CPU_SET(c, &all);
                sched_setaffinity(0, sizeof(all), &all);
            }
            n = s_allowed_cpus(cpus, KT_MAX_CPUS);
            if (n <= 0) {
                s_fail(s, "affinity-churn: no CPU allowed after a cpuset change");
                return -1;
            }
            cur = -1;
            s_checkpoint(r);
            continue;
        }
        cur = cpus[pick];
        s_store(&s->changes, ++changes);
        s_checkpoint(r);
    }
    return 0;
}

static int s_run_policy_churn(struct s_run *r)
{
    static const int policies[] = {SCHED_OTHER, SCHED_BATCH, SCHED_IDLE};
    kt_wl_slot_t *s = r->slot;
    int now_policy = sched_getscheduler(0) & ~SCHED_RESET_ON_FORK;
    unsigned k = 0;
    for (unsigned j = 0; j < 3; j++)
        if (policies[j] == now_policy)
            k = j;
    uint64_t changes = 0;
    while (s_running(r)) {
        s_spin_unit(r);
        s_checkpoint(r);
        k = (k + 1) % 3;
        struct sched_param sp = {.sched_priority = 0};
        if (sched_setscheduler(0, policies[k], &sp) < 0) {
            s_fail(s, "policy-churn: sched_setscheduler(%d): %s", policies[k], strerror(errno));
            return -1;
        }
        s_store(&s->changes, ++changes);
    }
    return 0;
}

static int s_run_page_fault_churn(struct s_run *r)
{
    kt_wl_slot_t *s = r->slot;
    const size_t len = (size_t)KT_WL_PF_PAGES * KT_WL_PF_PAGE;
    struct rusage ru0, ru;
    getrusage(RUSAGE_SELF, &ru0);
    int rc = 0;
    while (s_running(r)) {
        char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) {
            s_fail(s, "page-fault-churn: mmap: %s", strerror(errno));
            rc = -1;
            break;
        }
        /* 4 KiB pages: one fault per page touched. */
        madvise(p, len, MADV_NOHUGEPAGE);
        unsigned pending = 0;
        for (unsigned k = 0; k < KT_WL_PF_PAGES; k++) {
            ((volatile char *)p)[(size_t)k * KT_WL_PF_PAGE] = (char)k;
            if (++pending == KT_WL_PF_PER_CHECKPOINT) {
                s_checkpoint_n(r, pending);
                pending = 0;
                if (!s_running(r))
                    break;
            }
        }
        if (pending)
            s_checkpoint_n(r, pending);
        munmap(p, len);
        s_iteration(r);
    }
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        s_store(&s->minflt, (uint64_t)(ru.ru_minflt - ru0.ru_minflt));
    return rc;
}

/* ---- mutex-contention ---- */

static int s_run_mutex(struct s_run *r)
{
    kt_wl_slot_t *s = r->slot;
    kt_wl_slot_t *lead = s_leader(r->slots, (unsigned)(s - r->slots));
    if (!lead) {
        s_fail(s, "mutex-contention: slot %u has no group (not prepared)", s->index);
        return -1;
    }
    pthread_mutex_t *m = &lead->group_mutex;
    while (s_running(r)) {
        s_spin_unit(r);
        int e = pthread_mutex_trylock(m);
        if (e == EBUSY) {
            uint64_t t0 = s_now();
            for (;;) {
                uint64_t until = s_now() + KT_WL_MUTEX_SLICE_NS;
                struct timespec ts = {.tv_sec = (time_t)(until / KT_NSEC_PER_SEC),
                                      .tv_nsec = (long)(until % KT_NSEC_PER_SEC)};
                e = pthread_mutex_clocklock(m, CLOCK_MONOTONIC, &ts);
                if (e != ETIMEDOUT && e != EINTR)
                    break;
                if (!s_running(r))
                    return 0;
            }
            if (e == 0 || e == EOWNERDEAD) {
                uint64_t now = s_now();
                s_record_wake(r, now > t0 ? now - t0 : 0);
            }
        }
        if (e == EOWNERDEAD) {
            /* A contender died holding it; the state it guards is ours. */
            pthread_mutex_consistent(m);
            e = 0;
        }
        if (e != 0) {
            s_fail(s, "mutex-contention: lock: %s", strerror(e));
            return -1;
        }
        s_spin_iters(r, KT_WL_SPIN_ITERS / 4);
        pthread_mutex_unlock(m);
        s_checkpoint(r);
    }
    return 0;
}

/* Allocations a type needs, made before the worker parks so that the run
 * measures the work, not the setup. -1 with slot->error set. */
static int s_setup(struct s_run *r)
{
    switch (r->slot->type) {
    case KT_WORK_CACHE_PRESSURE:
    case KT_WORK_CACHE_YIELD:
    case KT_WORK_CACHE_PIPE:
        return s_cache_setup(r);
    case KT_WORK_FAN_OUT_COMPUTE:
        return s_matrix_setup(r);
    case KT_WORK_SEQUENCE:
        r->io_fd = s_io_open(r);
        if (r->io_fd < 0) {
            s_fail(r->slot, "sequence: cannot create a file in '%s': %s", KT_WL_IO_DIR,
                   strerror(-r->io_fd));
            return -1;
        }
        return 0;
    default:
        return 0;
    }
}

static void s_teardown(struct s_run *r)
{
    if (r->cache)
        munmap(r->cache, r->cache_lines * KT_WL_CACHE_LINE);
    free(r->matrix);
    if (r->io_fd >= 0)
        close(r->io_fd);
}

/* Closes every pipe end this worker does not use: the pair's other ends and
 * the other pairs' pipes inherited from the parent. Only fds that are still
 * FIFOs are closed, in case a number was reused. */
static void s_close_foreign_pipes(kt_wl_slot_t *slots, unsigned i)
{
    const kt_wl_slot_t *me = &slots[i];
    int keep_in = s_uses_pipes(me->type) ? me->pipe_from_peer[0] : -1;
    int keep_out = s_uses_pipes(me->type) ? me->pipe_to_peer[1] : -1;
    for (unsigned j = 0; j < me->n_slots; j++) {
        const kt_wl_slot_t *o = &slots[j];
        if (!s_uses_pipes(o->type) || o->group_role != 0)
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

    struct s_run r = {
        .slot = s,
        .slots = slots,
        .last_cpu = -1,
        .spin_state = 0x9e3779b97f4a7c15ull ^ ((uint64_t)i << 32) ^ (uint64_t)s->pid,
        .io_fd = -1,
        .multi_unit_pass = s->type == KT_WORK_MIXED || s->type == KT_WORK_BURSTY ||
                           s->type == KT_WORK_SEQUENCE || s->type == KT_WORK_PAGE_FAULT_CHURN,
    };
    /* A failed setup still parks: the parent releases everyone at once, and
     * this worker then ends at once with its error. */
    int setup = s_setup(&r);

    uint32_t cur = KT_WL_CREATED;
    if (atomic_compare_exchange_strong(&s->state, &cur, KT_WL_READY))
        s_futex_wake_all(&s->state);
    for (;;) {
        cur = s_state(s);
        if (cur >= KT_WL_RELEASED)
            break;
        s_futex((void *)&s->state, FUTEX_WAIT, cur, NULL, 0);
    }

    r.last_ns = s_load(&s->start_ns);
    s_store(&s->last_checkpoint_ns, r.last_ns);

    int rc = setup;
    if (cur == KT_WL_RELEASED && setup == 0) {
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
            rc = s_run_pipe(&r, false);
            break;
        case KT_WORK_FUTEX_PINGPONG:
            rc = s_run_futex(&r, slots);
            break;
        case KT_WORK_CACHE_PRESSURE:
            rc = s_run_cache(&r, false);
            break;
        case KT_WORK_CACHE_YIELD:
            rc = s_run_cache(&r, true);
            break;
        case KT_WORK_CACHE_PIPE:
            rc = s_run_pipe(&r, true);
            break;
        case KT_WORK_FUTEX_FAN_OUT:
            rc = s_run_fan_out(&r, false);
            break;
        case KT_WORK_FAN_OUT_COMPUTE:
            rc = s_run_fan_out(&r, true);
            break;
        case KT_WORK_SEQUENCE:
            rc = s_run_sequence(&r);
            break;
        case KT_WORK_FORK_EXIT:
            rc = s_run_fork_exit(&r);
            break;
        case KT_WORK_NICE_SWEEP:
            rc = s_run_nice_sweep(&r);
            break;
        case KT_WORK_AFFINITY_CHURN:
            rc = s_run_affinity_churn(&r);
            break;
        case KT_WORK_POLICY_CHURN:
            rc = s_run_policy_churn(&r);
            break;
        case KT_WORK_PAGE_FAULT_CHURN:
            rc = s_run_page_fault_churn(&r);
            break;
        case KT_WORK_MUTEX_CONTENTION:
            rc = s_run_mutex(&r);
            break;
        default:
            s_fail(s, "unknown work type %u", s->type);
            rc = -1;
            break;
        }
    }
    s_spin_sink = r.spin_state;
    s_teardown(&r);

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
        .iterations = s_load(&slot->iterations),
        .wake_lat_sum_ns = s_load(&slot->wake_lat_sum_ns),
    };
    __atomic_load(&slot->wake_lat_sumsq, &w.wake_lat_sumsq, __ATOMIC_RELAXED);
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
    w.started = start != 0;
    w.buffer_bytes = s_load(&slot->buffer_bytes);
    w.changes = s_load(&slot->changes);
    w.nice_lo = s_load(&slot->nice_lo);
    w.nice_hi = s_load(&slot->nice_hi);
    w.minflt = s_load(&slot->minflt);
    for (unsigned ph = 0; ph < 4; ph++)
        w.sequence_units[ph] = s_load(&slot->phase_units[ph]);
    for (unsigned ph = 0; ph < KT_MAX_PHASES; ph++) {
        w.step_units[ph] = s_load(&slot->step_units[ph]);
        for (unsigned k = 0; k < KT_CPUMASK_WORDS; k++)
            w.step_cpus[ph].bits[k] = s_load(&slot->step_cpus[ph][k]);
    }

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

/* /proc/<pid>/stat's rt_priority (field 40) and policy (41). */
static int s_stat_policy(const char *stat, int32_t *policy, uint32_t *rt_priority)
{
    const char *p = strrchr(stat, ')');
    if (!p)
        return -EBADMSG;
    /* Field 3 is the first after ')'. */
    unsigned field = 2;
    long long v40 = -1, v41 = -1;
    for (p++; *p && field < 41;) {
        while (*p == ' ')
            p++;
        if (!*p || *p == '\n')
            break;
        field++;
        if (field == 40)
            v40 = strtoll(p, NULL, 10);
        else if (field == 41)
            v41 = strtoll(p, NULL, 10);
        while (*p && *p != ' ' && *p != '\n')
            p++;
    }
    if (v40 < 0 || v41 < 0)
        return -EBADMSG;
    *rt_priority = (uint32_t)v40;
    *policy = (int32_t)v41;
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

void kt_workload_phase_begin_change(kt_wl_slot_t *slots)
{
    atomic_fetch_or_explicit(&slots[0].step_epoch, 1u, memory_order_acq_rel);
}

void kt_workload_phase_set(kt_wl_slot_t *slots, unsigned phase)
{
    atomic_store_explicit(&slots[0].step_epoch, 2u * phase, memory_order_release);
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
    if (s_stat_policy(buf, &w.policy, &w.rt_priority) < 0)
        w.policy = -1;

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
