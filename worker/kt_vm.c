/* The VM runner (see kt_vm.h): builds QEMU's command line from a config,
 * spawns QEMU so that it dies with us, and drives the boot / run / collect
 * phases from one poll() loop over the channel socket, QEMU's pidfd, the QMP
 * socket and the phase deadlines. */
#include "kt_vm.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <msgpack.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#endif

#include "kt_chanmsg.h"
#include "kt_cleanup.h"
#include "kt_frame.h"
#include "kt_qmp.h"

#define S_CHAN_NAME "org.ktstr.0"
#define S_ARGV_MAX 128
/* Each node gets at least this much memory; below it the guest kernel
 * refuses the node or fails to boot. */
#define S_NODE_MIN_MIB 32
/* How often to retry connecting to QEMU's sockets while it starts. */
#define S_CONNECT_RETRY_MS 10
/* Stop: after QMP quit (or SIGTERM) wait this long before SIGKILL. */
#define S_STOP_GRACE_MS 1000
#define S_QMP_TIMEOUT_MS 500
/* At most this much is read from the channel per loop turn, so timers and
 * QEMU's exit are noticed even while the guest floods the channel. */
#define S_READ_CHUNK (256u << 10)
#define S_IBUF (64u << 10)
/* QMP connects that fail other than "not there yet" before giving up on
 * QMP for this VM (stopping then falls back to signals). */
#define S_QMP_TRIES 5

/* Keeping the kernel quiet matters under TCG: every console byte goes
 * through the emulated UART. loglevel=5 still shows errors, warnings, oops
 * traces and panics (levels 0-4) in console.log for failure dumps.
 * panic=-1 reboots at once on a panic and -no-reboot turns that into QEMU
 * exiting, so a panic ends the VM instead of hanging it. reboot=t (triple
 * fault) works on both machines; microvm has no keyboard controller or
 * ACPI reset to reboot through. */
#define S_CMDLINE_COMMON "console=ttyS0 panic=-1 loglevel=5 reboot=t schedstats=enable"

const char *kt_vm_base_cmdline(enum kt_machine m)
{
    (void)m;
    return S_CMDLINE_COMMON;
}

const char *kt_accel_name(enum kt_accel a)
{
    switch (a) {
    case KT_ACCEL_AUTO:
        return "auto";
    case KT_ACCEL_KVM:
        return "kvm";
    case KT_ACCEL_TCG:
        return "tcg";
    }
    return "?";
}

int kt_accel_parse(const char *s, enum kt_accel *ret)
{
    if (!s)
        return -EINVAL;
    if (strcmp(s, "auto") == 0)
        *ret = KT_ACCEL_AUTO;
    else if (strcmp(s, "kvm") == 0)
        *ret = KT_ACCEL_KVM;
    else if (strcmp(s, "tcg") == 0)
        *ret = KT_ACCEL_TCG;
    else
        return -EINVAL;
    return 0;
}

const char *kt_machine_name(enum kt_machine m)
{
    switch (m) {
    case KT_MACHINE_Q35:
        return "q35";
    case KT_MACHINE_MICROVM:
        return "microvm";
    }
    return "?";
}

int kt_machine_parse(const char *s, enum kt_machine *ret)
{
    if (!s)
        return -EINVAL;
    if (strcmp(s, "q35") == 0)
        *ret = KT_MACHINE_Q35;
    else if (strcmp(s, "microvm") == 0)
        *ret = KT_MACHINE_MICROVM;
    else
        return -EINVAL;
    return 0;
}

const char *kt_vm_phase_name(enum kt_vm_phase p)
{
    switch (p) {
    case KT_VM_PHASE_START:
        return "start";
    case KT_VM_PHASE_BOOT:
        return "boot";
    case KT_VM_PHASE_RUN:
        return "run";
    case KT_VM_PHASE_COLLECT:
        return "collect";
    case KT_VM_PHASE_DONE:
        return "done";
    }
    return "?";
}

void kt_vm_config_init(kt_vm_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->topology = (kt_topology_t){1, 1, 1, 1};
    cfg->memory_mib = 256;
    cfg->accel = KT_ACCEL_TCG;
    cfg->machine = KT_MACHINE_Q35;
    cfg->boot_timeout_ms = 60000;
    cfg->run_timeout_ms = 600000;
    cfg->collect_timeout_ms = 10000;
    cfg->heartbeat_timeout_ms = 0;
}

static uint64_t s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- argv ---- */

typedef struct s_argv {
    char **v;
    size_t n;
    int err;
} s_argv_t;

static void s_add(s_argv_t *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void s_add(s_argv_t *a, const char *fmt, ...)
{
    if (a->err)
        return;
    if (a->n + 1 >= S_ARGV_MAX) {
        a->err = -E2BIG;
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int r = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (r < 0) {
        a->err = -ENOMEM;
        return;
    }
    a->v[a->n++] = s;
    a->v[a->n] = NULL;
}

/* QEMU option values escape a comma by doubling it. Caller owns. */
static char *s_opt_escape(const char *s)
{
    size_t n = 0;
    for (const char *p = s; *p; p++)
        n += *p == ',' ? 2 : 1;
    char *out = malloc(n + 1);
    if (!out)
        return NULL;
    char *o = out;
    for (const char *p = s; *p; p++) {
        *o++ = *p;
        if (*p == ',')
            *o++ = ',';
    }
    *o = '\0';
    return out;
}

void kt_vm_argv_free(char ***argv_p)
{
    if (!argv_p || !*argv_p)
        return;
    for (char **p = *argv_p; *p; p++)
        free(*p);
    free(*argv_p);
    *argv_p = NULL;
}

static void s_argv_freep(char ***argv_p)
{
    kt_vm_argv_free(argv_p);
}

static const char *s_qemu_program(const kt_vm_config_t *cfg)
{
    if (cfg->qemu && *cfg->qemu)
        return cfg->qemu;
    const char *env = getenv("KTSTR_QEMU");
    return env && *env ? env : "qemu-system-x86_64";
}

int kt_vm_build_argv(const kt_vm_config_t *cfg, const char *chan_sock, const char *qmp_sock,
                     char ***ret_argv)
{
    if (!cfg || !cfg->kernel || !cfg->workdir || !chan_sock || !qmp_sock || !ret_argv)
        return -EINVAL;
    const kt_topology_t *t = &cfg->topology;
    if (!kt_topology_valid(t))
        return -EINVAL;
    unsigned cpus = kt_topology_cpus(t);
    if (cpus == 0 || cpus > KT_MAX_CPUS || t->llcs % t->numa_nodes != 0)
        return -ERANGE;
    if (cfg->accel != KT_ACCEL_KVM && cfg->accel != KT_ACCEL_TCG)
        return -EINVAL; /* AUTO must be resolved by the caller */
    if (cfg->machine != KT_MACHINE_Q35 && cfg->machine != KT_MACHINE_MICROVM)
        return -EINVAL;
    /* microvm has no ACPI SRAT: a NUMA guest would silently see one node. */
    if (cfg->machine == KT_MACHINE_MICROVM && t->numa_nodes > 1)
        return -EOPNOTSUPP;
    if (cfg->memory_mib < (uint64_t)S_NODE_MIN_MIB * t->numa_nodes ||
        cfg->memory_mib > (1ull << 30))
        return -ERANGE;

    _cleanup_free_ char *console = NULL;
    if (asprintf(&console, "%s/console.log", cfg->workdir) < 0)
        return -ENOMEM;
    _cleanup_free_ char *e_console = s_opt_escape(console);
    _cleanup_free_ char *e_chan = s_opt_escape(chan_sock);
    _cleanup_free_ char *e_qmp = s_opt_escape(qmp_sock);
    _cleanup_(s_argv_freep) char **v = calloc(S_ARGV_MAX, sizeof(char *));
    if (!e_console || !e_chan || !e_qmp || !v)
        return -ENOMEM;
    s_argv_t a = {.v = v};

    s_add(&a, "%s", s_qemu_program(cfg));
    s_add(&a, "-nodefaults");
    s_add(&a, "-no-user-config");
    s_add(&a, "-display");
    s_add(&a, "none");
    s_add(&a, "-no-reboot");
    s_add(&a, "-M");
    if (cfg->machine == KT_MACHINE_Q35)
        s_add(&a, "q35");
    else
        /* The legacy PIT, PIC and RTC stay: under TCG without them the
         * kernel cannot calibrate the TSC ("tsc: Unable to calibrate
         * against PIT") and never reaches init. */
        s_add(&a, "microvm");
    s_add(&a, "-accel");
    if (cfg->accel == KT_ACCEL_KVM) {
        s_add(&a, "kvm");
        s_add(&a, "-cpu");
        s_add(&a, "host");
    } else {
        s_add(&a, "tcg,thread=multi");
        s_add(&a, "-cpu");
        s_add(&a, "max");
    }
    s_add(&a, "-m");
    s_add(&a, "%llu", (unsigned long long)cfg->memory_mib);
    s_add(&a, "-smp");
    s_add(&a, "%u,sockets=%u,cores=%u,threads=%u", cpus, t->llcs, t->cores_per_llc,
          t->threads_per_core);
    if (t->numa_nodes > 1) {
        uint64_t per = cfg->memory_mib / t->numa_nodes;
        uint64_t rem = cfg->memory_mib - per * t->numa_nodes;
        for (unsigned i = 0; i < t->numa_nodes; i++) {
            s_add(&a, "-object");
            s_add(&a, "memory-backend-ram,id=ktmem%u,size=%lluM", i,
                  (unsigned long long)(per + (i == 0 ? rem : 0)));
            s_add(&a, "-numa");
            s_add(&a, "node,nodeid=%u,memdev=ktmem%u", i, i);
        }
        unsigned per_node = t->llcs / t->numa_nodes;
        for (unsigned s = 0; s < t->llcs; s++) {
            s_add(&a, "-numa");
            s_add(&a, "cpu,node-id=%u,socket-id=%u", s / per_node, s);
        }
    }
    s_add(&a, "-kernel");
    s_add(&a, "%s", cfg->kernel);
    if (cfg->initrd) {
        s_add(&a, "-initrd");
        s_add(&a, "%s", cfg->initrd);
    }
    char clock[64] = "";
    if (cfg->accel == KT_ACCEL_TCG) {
        uint32_t khz = cfg->tcg_tsc_khz ? cfg->tcg_tsc_khz : kt_vm_host_tsc_khz();
        if (khz)
            snprintf(clock, sizeof(clock), " tsc_early_khz=%u tsc=reliable", khz);
    }
    s_add(&a, "-append");
    s_add(&a, "%s%s%s%s", kt_vm_base_cmdline(cfg->machine), clock,
          cfg->cmdline_extra && *cfg->cmdline_extra ? " " : "",
          cfg->cmdline_extra ? cfg->cmdline_extra : "");
    s_add(&a, "-chardev");
    s_add(&a, "file,id=ktcon,path=%s", e_console);
    s_add(&a, "-serial");
    s_add(&a, "chardev:ktcon");
    s_add(&a, "-chardev");
    s_add(&a, "socket,id=ktqmp,path=%s,server=on,wait=off", e_qmp);
    s_add(&a, "-mon");
    s_add(&a, "chardev=ktqmp,mode=control");
    s_add(&a, "-device");
    s_add(&a, "%s,id=ktvser",
          cfg->machine == KT_MACHINE_Q35 ? "virtio-serial-pci" : "virtio-serial-device");
    s_add(&a, "-chardev");
    s_add(&a, "socket,id=ktchan,path=%s,server=on,wait=off", e_chan);
    s_add(&a, "-device");
    s_add(&a, "virtserialport,bus=ktvser.0,chardev=ktchan,name=" S_CHAN_NAME);
    if (a.err)
        return a.err;
    *ret_argv = TAKE_PTR(v);
    return 0;
}

/* ---- host TSC ---- */

static bool s_host_has_stable_tsc(void)
{
    _cleanup_fclose_ FILE *f = fopen("/proc/cpuinfo", "re");
    if (!f)
        return false;
    char line[4096];
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, "flags", 5) != 0)
            continue;
        /* The guest is told the TSC is reliable: the host's must be. */
        bool constant = strstr(line, " constant_tsc") != NULL;
        bool nonstop = strstr(line, " nonstop_tsc") != NULL;
        return constant && nonstop;
    }
    return false;
}

static uint32_t s_tsc_khz;
static pthread_once_t s_tsc_once = PTHREAD_ONCE_INIT;

static void s_measure_tsc(void)
{
#if defined(__x86_64__) || defined(__i386__)
    if (!s_host_has_stable_tsc())
        return;
    /* Best of three 20 ms windows: the smallest elapsed-time error wins
     * when this thread is preempted in one of them. */
    uint64_t best = 0;
    for (int i = 0; i < 3; i++) {
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC_RAW, &a);
        uint64_t t0 = __rdtsc();
        struct timespec d = {0, 20 * 1000000L};
        nanosleep(&d, NULL);
        uint64_t t1 = __rdtsc();
        clock_gettime(CLOCK_MONOTONIC_RAW, &b);
        uint64_t ns = (uint64_t)(b.tv_sec - a.tv_sec) * 1000000000u + (uint64_t)b.tv_nsec -
                      (uint64_t)a.tv_nsec;
        if (ns == 0 || t1 <= t0)
            continue;
        uint64_t khz = (t1 - t0) * 1000000u / ns;
        if (khz > best)
            best = khz; /* a preemption between the reads only lowers it */
    }
    if (best >= 100000 && best <= 20000000)
        s_tsc_khz = (uint32_t)best;
#endif
}

uint32_t kt_vm_host_tsc_khz(void)
{
    pthread_once(&s_tsc_once, s_measure_tsc);
    return s_tsc_khz;
}

/* ---- small file helpers ---- */

int kt_vm_file_tail(const char *path, char *buf, size_t len)
{
    if (!buf || len == 0)
        return -EINVAL;
    buf[0] = '\0';
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    if (!S_ISREG(st.st_mode))
        return -EINVAL;
    size_t want = len - 1;
    off_t off = st.st_size > (off_t)want ? st.st_size - (off_t)want : 0;
    size_t got = 0;
    while (got < want) {
        ssize_t n = pread(fd, buf + got, want - got, off + (off_t)got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            break;
        got += (size_t)n;
    }
    buf[got] = '\0';
    size_t start = 0;
    if (off > 0) {
        /* Cut the partial first line, unless the tail is one long line. */
        char *nl = memchr(buf, '\n', got);
        if (nl && (size_t)(nl - buf) + 1 < got)
            start = (size_t)(nl - buf) + 1;
    }
    size_t o = 0;
    for (size_t i = start; i < got; i++) {
        unsigned char c = (unsigned char)buf[i];
        if (c == '\r')
            continue; /* the serial console writes \r\n */
        buf[o++] = (c == '\n' || c == '\t' || (c >= 0x20 && c != 0x7f)) ? (char)c : '?';
    }
    buf[o] = '\0';
    return 0;
}

/* The first line of QEMU's own output (qemu.log) that reports an error,
 * e.g. "KVM internal error. Suberror: 1", "error: failed to set MSR ...",
 * an assertion or a bad option; with last_resort, else its last line
 * (QEMU died of something it did not call an error). */
static void s_qemu_message(const char *log_path, bool last_resort, char *buf, size_t len)
{
    static const char *const keys[] = {
        "KVM internal error", "emulation failure", "rror", "Assertion", "ailed", "fatal"};
    char tail[8192];
    buf[0] = '\0';
    if (kt_vm_file_tail(log_path, tail, sizeof(tail)) < 0)
        return;
    for (size_t k = 0; k < KT_ARRAY_SIZE(keys); k++) {
        for (const char *line = tail; *line;) {
            size_t n = strcspn(line, "\n");
            const char *hit = memmem(line, n, keys[k], strlen(keys[k]));
            if (hit) {
                snprintf(buf, len, "%.*s", (int)n, line);
                return;
            }
            line += n + (line[n] == '\n');
        }
    }
    if (!last_resort)
        return;
    size_t n = strlen(tail);
    while (n > 0 && tail[n - 1] == '\n')
        tail[--n] = '\0';
    const char *last = memrchr(tail, '\n', n);
    last = last ? last + 1 : tail;
    if (*last)
        snprintf(buf, len, "%s", last);
}

/* error_text may be cut; it is a reason for humans, not data. */
static void s_text(kt_vm_outcome_t *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void s_text(kt_vm_outcome_t *out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out->error_text, sizeof(out->error_text), fmt, ap);
    va_end(ap);
}

static void s_status_text(int status, char *buf, size_t len)
{
    if (WIFEXITED(status))
        snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, len, "was killed by signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else
        snprintf(buf, len, "ended with wait status 0x%x", (unsigned)status);
}

/* Looks the program up in PATH in the parent (execv in the child then does
 * no allocation). Caller owns *ret. */
static int s_resolve_program(const char *prog, char **ret)
{
    if (strchr(prog, '/')) {
        if (access(prog, X_OK) < 0)
            return -errno;
        *ret = strdup(prog);
        return *ret ? 0 : -ENOMEM;
    }
    const char *path = getenv("PATH");
    if (!path || !*path)
        path = "/usr/local/bin:/usr/bin:/bin";
    for (const char *p = path; *p;) {
        const char *colon = strchr(p, ':');
        size_t n = colon ? (size_t)(colon - p) : strlen(p);
        char *cand = NULL;
        if (asprintf(&cand, "%.*s/%s", (int)(n ? n : 1), n ? p : ".", prog) < 0)
            return -ENOMEM;
        if (access(cand, X_OK) == 0) {
            *ret = cand;
            return 0;
        }
        free(cand);
        p = colon ? colon + 1 : p + n;
    }
    return -ENOENT;
}

/* ---- the run ---- */

typedef struct s_vm {
    const kt_vm_config_t *cfg;
    kt_vm_outcome_t *out;
    pid_t pid;
    int pidfd;
    bool exited;
    int chan_fd;
    kt_qmp_t *qmp;
    kt_frame_reader_t *reader;
    uint8_t *ibuf; /* S_IBUF bytes for reads from the channel */
    uint8_t *obuf; /* pending frames to the guest */
    size_t olen;
    size_t ooff;
    enum kt_vm_phase phase;
    uint64_t t0; /* before spawning */
    uint64_t t_spawned;
    uint64_t t_phase;  /* entering the current phase */
    uint64_t deadline; /* of the current phase */
    uint64_t last_msg; /* last guest message, for the heartbeat */
    bool stop;         /* leave the loop and stop QEMU */
    char chan_path[108];
    char qmp_path[108];
} s_vm_t;

static void s_fail(s_vm_t *vm, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void s_fail(s_vm_t *vm, int err, const char *fmt, ...)
{
    if (vm->out->error_text[0] == '\0') {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(vm->out->error_text, sizeof(vm->out->error_text), fmt, ap);
        va_end(ap);
    }
    if (err < 0 && vm->out->error == 0)
        vm->out->error = err;
    vm->stop = true;
}

static void s_enter(s_vm_t *vm, enum kt_vm_phase phase, uint32_t timeout_ms)
{
    vm->phase = phase;
    vm->out->reached = phase;
    vm->t_phase = s_now_ms();
    vm->deadline = vm->t_phase + timeout_ms;
}

static int s_queue_frame(s_vm_t *vm, const void *body, size_t len)
{
    if (len > KT_FRAME_MAX)
        return -EMSGSIZE;
    /* Drop what was already written before growing. */
    if (vm->ooff > 0) {
        memmove(vm->obuf, vm->obuf + vm->ooff, vm->olen - vm->ooff);
        vm->olen -= vm->ooff;
        vm->ooff = 0;
    }
    uint8_t *nb = realloc(vm->obuf, vm->olen + 4 + len);
    if (!nb)
        return -ENOMEM;
    vm->obuf = nb;
    uint8_t *p = nb + vm->olen;
    p[0] = (uint8_t)(len >> 24);
    p[1] = (uint8_t)(len >> 16);
    p[2] = (uint8_t)(len >> 8);
    p[3] = (uint8_t)len;
    if (len)
        memcpy(p + 4, body, len);
    vm->olen += 4 + len;
    return 0;
}

static int s_queue_simple(s_vm_t *vm, const char *type)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str(&pk, 1);
    msgpack_pack_str_body(&pk, "t", 1);
    msgpack_pack_str(&pk, strlen(type));
    msgpack_pack_str_body(&pk, type, strlen(type));
    int r = sb.data ? s_queue_frame(vm, sb.data, sb.size) : -ENOMEM;
    msgpack_sbuffer_destroy(&sb);
    return r;
}

/* The "t" of a frame: 0, or -EBADMSG when the body is not exactly one
 * msgpack map with a string "t" of at most len - 1 bytes. */
static int s_frame_type(const void *body, size_t len, char *type, size_t type_len)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    int r = -EBADMSG;
    if (kt_mp_unpack_one(body, len, &u) == 0 &&
        u.data.type == MSGPACK_OBJECT_MAP) {
        const msgpack_object_map *m = &u.data.via.map;
        for (uint32_t i = 0; i < m->size; i++) {
            const msgpack_object *k = &m->ptr[i].key;
            const msgpack_object *v = &m->ptr[i].val;
            if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == 1 && k->via.str.ptr[0] == 't') {
                if (v->type == MSGPACK_OBJECT_STR && v->via.str.size > 0 &&
                    v->via.str.size < type_len && !memchr(v->via.str.ptr, '\0', v->via.str.size)) {
                    memcpy(type, v->via.str.ptr, v->via.str.size);
                    type[v->via.str.size] = '\0';
                    r = 0;
                }
                break;
            }
        }
    }
    msgpack_unpacked_destroy(&u);
    return r;
}

static void s_on_frame(s_vm_t *vm, const void *body, size_t len)
{
    const kt_vm_config_t *cfg = vm->cfg;
    char type[32];
    uint64_t now = s_now_ms();
    if (s_frame_type(body, len, type, sizeof(type)) < 0) {
        s_fail(vm, -EBADMSG, "malformed message from the guest (%zu bytes) during %s", len,
               kt_vm_phase_name(vm->phase));
        return;
    }
    vm->last_msg = now;
    if (cfg->on_message) {
        int r = cfg->on_message(cfg->userdata, type, body, len);
        if (r < 0) {
            s_fail(vm, r, "message handler rejected the guest's \"%s\" during %s: %s", type,
                   kt_vm_phase_name(vm->phase), strerror(-r));
            return;
        }
    }
    if (vm->phase == KT_VM_PHASE_BOOT && strcmp(type, "hello") == 0) {
        vm->out->got_hello = true;
        vm->out->boot_ms = now - vm->t_spawned;
        int r;
        if (cfg->cell_msg) {
            r = s_queue_frame(vm, cfg->cell_msg, cfg->cell_msg_len);
            s_enter(vm, KT_VM_PHASE_RUN, cfg->run_timeout_ms);
        } else {
            /* No cell (the canary): the guest powers off at once. */
            r = s_queue_simple(vm, "shutdown");
            s_enter(vm, KT_VM_PHASE_COLLECT, cfg->collect_timeout_ms);
        }
        if (r < 0)
            s_fail(vm, r, "cannot queue the message to the guest: %s", strerror(-r));
    } else if (vm->phase == KT_VM_PHASE_RUN && strcmp(type, "result") == 0) {
        vm->out->got_result = true;
        vm->out->run_ms = now - vm->t_phase;
        int r = s_queue_simple(vm, "ack");
        s_enter(vm, KT_VM_PHASE_COLLECT, cfg->collect_timeout_ms);
        if (r < 0)
            s_fail(vm, r, "cannot queue the ack: %s", strerror(-r));
    }
}

/* Reads what the channel has (at most S_READ_CHUNK) and handles complete
 * frames. On EOF or error the channel is closed; QEMU's exit decides. */
static void s_chan_read(s_vm_t *vm)
{
    uint8_t *buf = vm->ibuf;
    size_t total = 0;
    while (total < S_READ_CHUNK && !vm->stop) {
        ssize_t n = read(vm->chan_fd, buf, S_IBUF);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n <= 0) {
            close(vm->chan_fd);
            vm->chan_fd = -1;
            break;
        }
        total += (size_t)n;
        int r = kt_frame_reader_feed(vm->reader, buf, (size_t)n);
        if (r < 0) {
            s_fail(vm, r,
                   r == -EMSGSIZE ? "the guest announced a frame over %u bytes"
                                  : "cannot buffer the guest's frames (%u bytes max)",
                   (unsigned)KT_FRAME_MAX);
            return;
        }
        for (;;) {
            void *body = NULL;
            size_t len = 0;
            r = kt_frame_reader_next(vm->reader, &body, &len);
            if (r <= 0) {
                if (r < 0)
                    s_fail(vm, r, "bad frame from the guest: %s", strerror(-r));
                break;
            }
            s_on_frame(vm, body, len);
            free(body);
            if (vm->stop)
                return;
        }
    }
}

static void s_chan_write(s_vm_t *vm)
{
    while (vm->ooff < vm->olen) {
        ssize_t n = send(vm->chan_fd, vm->obuf + vm->ooff, vm->olen - vm->ooff, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n < 0) {
            s_fail(vm, -errno, "cannot write to the guest channel: %m");
            return;
        }
        vm->ooff += (size_t)n;
    }
    vm->ooff = vm->olen = 0;
}

static int s_try_connect(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int r = -errno;
        close(fd);
        return r;
    }
    return fd;
}

/* Reaps QEMU if it has exited (without blocking unless `block`). */
static bool s_reap(s_vm_t *vm, bool block)
{
    if (vm->exited)
        return true;
    int status;
    pid_t r;
    do {
        r = waitpid(vm->pid, &status, block ? 0 : WNOHANG);
    } while (r < 0 && errno == EINTR);
    if (r == vm->pid) {
        vm->exited = true;
        vm->out->qemu_status = status;
        return true;
    }
    if (r < 0 && errno == ECHILD) {
        /* Someone else reaped it (SIGCHLD set to SIG_IGN?): it is gone. */
        vm->exited = true;
        return true;
    }
    return false;
}

static bool s_wait_exit(s_vm_t *vm, uint32_t ms)
{
    uint64_t deadline = s_now_ms() + ms;
    while (!s_reap(vm, false)) {
        uint64_t now = s_now_ms();
        if (now >= deadline)
            return false;
        if (vm->pidfd >= 0) {
            struct pollfd p = {.fd = vm->pidfd, .events = POLLIN};
            poll(&p, 1, (int)(deadline - now));
        } else {
            struct timespec ts = {0, 10 * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    return true;
}

/* QMP quit, a grace period, then SIGKILL; always reaps. */
static void s_stop_qemu(s_vm_t *vm)
{
    if (s_reap(vm, false))
        return;
    if (vm->qmp) {
        if (kt_qmp_quit(vm->qmp, S_QMP_TIMEOUT_MS) < 0)
            kill(vm->pid, SIGTERM);
    } else {
        kill(vm->pid, SIGTERM); /* QEMU treats SIGTERM like quit */
    }
    if (s_wait_exit(vm, S_STOP_GRACE_MS))
        return;
    kill(vm->pid, SIGKILL);
    s_reap(vm, true);
}

/* The guest was stopped by QEMU (a STOP event): find out why. */
static void s_check_stopped(s_vm_t *vm)
{
    char status[32] = "";
    bool running = true;
    if (kt_qmp_query_status(vm->qmp, S_QMP_TIMEOUT_MS, status, sizeof(status), &running) < 0)
        return; /* QEMU is probably exiting; its exit will tell */
    if (running)
        return;
    if (strcmp(status, "internal-error") == 0 || strcmp(status, "guest-panicked") == 0 ||
        strcmp(status, "io-error") == 0) {
        snprintf(vm->out->vm_state, sizeof(vm->out->vm_state), "%s", status);
        s_qemu_message(vm->out->qemu_log_path, false, vm->out->qemu_message,
                       sizeof(vm->out->qemu_message));
        s_fail(vm, 0, "qemu stopped the guest (%s) during %s%s%s", status,
               kt_vm_phase_name(vm->phase), vm->out->qemu_message[0] ? ": " : "",
               vm->out->qemu_message);
    }
}

static void s_qmp_events(s_vm_t *vm)
{
    char ev[KT_QMP_EVENT_MAX];
    for (;;) {
        int r = kt_qmp_next_event(vm->qmp, ev);
        if (r < 0) {
            kt_qmp_destroy(&vm->qmp); /* closed: QEMU exits; its pidfd says so */
            return;
        }
        if (r == 0)
            return;
        if (strcmp(ev, "STOP") == 0 || strcmp(ev, "GUEST_PANICKED") == 0) {
            s_check_stopped(vm);
            if (vm->stop || !vm->qmp)
                return;
        }
    }
}

static int s_spawn(s_vm_t *vm, char **argv, int log_fd)
{
    _cleanup_free_ char *prog = NULL;
    int r = s_resolve_program(argv[0], &prog);
    if (r < 0) {
        s_text(vm->out, "cannot find '%s': %s", argv[0], strerror(-r));
        return r;
    }
    _cleanup_close_ int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (devnull < 0)
        return -errno;
    int errpipe[2];
    if (pipe2(errpipe, O_CLOEXEC) < 0)
        return -errno;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        r = -errno;
        close(errpipe[0]);
        close(errpipe[1]);
        return r;
    }
    if (pid == 0) {
        /* Only async-signal-safe calls from here on. */
        int e;
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
            goto fail;
        /* The parent may have died before prctl took effect. */
        if (getppid() != parent)
            _exit(127);
        /* Our own process group: a terminal's ^C goes to the worker, which
         * decides; if it dies, PDEATHSIG takes QEMU with it. */
        setpgid(0, 0);
        sigset_t all;
        sigemptyset(&all);
        sigprocmask(SIG_SETMASK, &all, NULL);
        for (int sig = 1; sig < NSIG; sig++) {
            if (sig == SIGKILL || sig == SIGSTOP)
                continue;
            struct sigaction sa = {.sa_handler = SIG_DFL};
            sigaction(sig, &sa, NULL);
        }
        if (dup2(devnull, 0) < 0 || dup2(log_fd, 1) < 0 || dup2(log_fd, 2) < 0)
            goto fail;
            /* Libraries in the worker (czmq, libgit2) may hold fds without
             * O_CLOEXEC; QEMU must not inherit them. */
#ifdef SYS_close_range
        syscall(SYS_close_range, 3u, ~0u, 4u /* CLOSE_RANGE_CLOEXEC */);
#endif
        execv(prog, argv);
    fail:
        e = errno;
        (void)!write(errpipe[1], &e, sizeof(e));
        _exit(127);
    }
    close(errpipe[1]);
    vm->pid = pid;
    int child_errno = 0;
    ssize_t n;
    do {
        n = read(errpipe[0], &child_errno, sizeof(child_errno));
    } while (n < 0 && errno == EINTR);
    close(errpipe[0]);
    if (n == (ssize_t)sizeof(child_errno)) {
        s_reap(vm, true);
        s_text(vm->out, "cannot execute '%s': %s", prog, strerror(child_errno));
        return -child_errno;
    }
    return 0;
}

static int s_check_config(const kt_vm_config_t *cfg, kt_vm_outcome_t *out)
{
    struct stat st;
#define S_BAD(r, ...)                                                                              \
    do {                                                                                           \
        int r_ = (r);                                                                              \
        errno = -r_;                                                                               \
        s_text(out, __VA_ARGS__);                                                                  \
        return r_;                                                                                 \
    } while (0)
    if (!cfg->kernel)
        S_BAD(-EINVAL, "no kernel given");
    if (access(cfg->kernel, R_OK) < 0)
        S_BAD(-errno, "cannot read kernel '%s': %m", cfg->kernel);
    if (cfg->initrd && access(cfg->initrd, R_OK) < 0)
        S_BAD(-errno, "cannot read initrd '%s': %m", cfg->initrd);
    if (!cfg->workdir)
        S_BAD(-EINVAL, "no workdir given");
    if (stat(cfg->workdir, &st) < 0)
        S_BAD(-errno, "cannot use workdir '%s': %m", cfg->workdir);
    if (!S_ISDIR(st.st_mode))
        S_BAD(-ENOTDIR, "workdir '%s' is not a directory", cfg->workdir);
    if (cfg->cell_msg && cfg->cell_msg_len > KT_FRAME_MAX)
        S_BAD(-EMSGSIZE, "cell message of %zu bytes is over the %u byte frame limit",
              cfg->cell_msg_len, (unsigned)KT_FRAME_MAX);
    if (cfg->boot_timeout_ms == 0 || cfg->collect_timeout_ms == 0 ||
        (cfg->cell_msg && cfg->run_timeout_ms == 0))
        S_BAD(-EINVAL, "a phase timeout of 0 ms");
#undef S_BAD
    return 0;
}

int kt_vm_run(const kt_vm_config_t *cfg, kt_vm_outcome_t *ret)
{
    if (!cfg || !ret)
        return -EINVAL;
    kt_vm_outcome_t *out = ret;
    memset(out, 0, sizeof(*out));
    out->reached = KT_VM_PHASE_START;
    out->qemu_status = -1;

    int r = s_check_config(cfg, out);
    if (r < 0) {
        out->error = r;
        return r;
    }

    s_vm_t vm = {.cfg = cfg, .out = out, .pid = -1, .pidfd = -1, .chan_fd = -1};
    struct sockaddr_un sa;
    if (strlen(cfg->workdir) + sizeof("/chan.sock") > sizeof(sa.sun_path)) {
        snprintf(out->error_text, sizeof(out->error_text),
                 "workdir '%s' is too long for a unix socket path (%zu bytes max)", cfg->workdir,
                 sizeof(sa.sun_path) - sizeof("/chan.sock"));
        out->error = -ENAMETOOLONG;
        return -ENAMETOOLONG;
    }
    snprintf(vm.chan_path, sizeof(vm.chan_path), "%s/chan.sock", cfg->workdir);
    snprintf(vm.qmp_path, sizeof(vm.qmp_path), "%s/qmp.sock", cfg->workdir);
    snprintf(out->console_path, sizeof(out->console_path), "%s/console.log", cfg->workdir);
    snprintf(out->qemu_log_path, sizeof(out->qemu_log_path), "%s/qemu.log", cfg->workdir);
    /* Stale sockets from an earlier VM in this workdir would be connected
     * to before QEMU replaces them. */
    unlink(vm.chan_path);
    unlink(vm.qmp_path);

    _cleanup_(s_argv_freep) char **argv = NULL;
    r = kt_vm_build_argv(cfg, vm.chan_path, vm.qmp_path, &argv);
    if (r < 0) {
        s_text(out, "invalid VM configuration: %s",
               r == -EOPNOTSUPP ? "microvm cannot present NUMA nodes (no ACPI SRAT); use q35"
                                : strerror(-r));
        out->error = r;
        return r;
    }
    _cleanup_close_ int log_fd =
        open(out->qemu_log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY, 0644);
    if (log_fd < 0) {
        r = -errno;
        s_text(out, "cannot create '%s': %s", out->qemu_log_path, strerror(-r));
        out->error = r;
        return r;
    }
    /* Remove an older console so a failure never shows a previous boot. */
    unlink(out->console_path);

    vm.reader = kt_frame_reader_new(KT_FRAME_MAX);
    vm.ibuf = malloc(S_IBUF);
    if (!vm.reader || !vm.ibuf) {
        kt_frame_reader_destroy(&vm.reader);
        free(vm.ibuf);
        out->error = -ENOMEM;
        return -ENOMEM;
    }
    vm.t0 = s_now_ms();
    r = s_spawn(&vm, argv, log_fd);
    if (r < 0) {
        kt_frame_reader_destroy(&vm.reader);
        free(vm.ibuf);
        out->error = r;
        return r;
    }
    vm.t_spawned = s_now_ms();
    out->start_ms = vm.t_spawned - vm.t0;
    vm.pidfd = (int)syscall(SYS_pidfd_open, vm.pid, 0);
    s_enter(&vm, KT_VM_PHASE_BOOT, cfg->boot_timeout_ms);

    unsigned qmp_failures = 0;
    while (!vm.stop) {
        if (s_reap(&vm, false)) {
            /* Read what the guest sent before QEMU went away (a result
             * followed by power-off arrives this way). */
            if (vm.chan_fd >= 0)
                s_chan_read(&vm);
            if (vm.phase == KT_VM_PHASE_COLLECT) {
                out->collect_ms = s_now_ms() - vm.t_phase;
                if (vm.cfg->cell_msg == NULL || out->got_result)
                    out->reached = KT_VM_PHASE_DONE;
            }
            break;
        }
        uint64_t now = s_now_ms();
        bool retry = false;
        if (vm.chan_fd < 0 && vm.phase == KT_VM_PHASE_BOOT && !out->got_hello) {
            int fd = s_try_connect(vm.chan_path);
            if (fd >= 0)
                vm.chan_fd = fd;
            else
                retry = true;
        }
        if (!vm.qmp && vm.chan_fd >= 0 && vm.phase == KT_VM_PHASE_BOOT &&
            qmp_failures < S_QMP_TRIES) {
            /* Once the channel exists QEMU's monitor does too (chardevs are
             * created in order, before the machine starts). */
            uint64_t left = vm.deadline > now ? vm.deadline - now : 1;
            int q = kt_qmp_connect(vm.qmp_path, (uint32_t)(left < 2000 ? left : 2000), &vm.qmp);
            if (q < 0) {
                retry = true;
                if (q != -ENOENT && q != -ECONNREFUSED)
                    qmp_failures++;
            }
            now = s_now_ms();
        }
        /* Before sleeping: a command's reply may have brought events along
         * that now sit in the QMP client's buffer, where poll() cannot see
         * them (a STOP right after qmp_capabilities). */
        if (vm.qmp) {
            s_qmp_events(&vm);
            if (vm.stop)
                break;
            now = s_now_ms();
        }
        if (now >= vm.deadline) {
            out->timed_out = true;
            uint32_t limit = vm.phase == KT_VM_PHASE_BOOT  ? cfg->boot_timeout_ms
                             : vm.phase == KT_VM_PHASE_RUN ? cfg->run_timeout_ms
                                                           : cfg->collect_timeout_ms;
            s_fail(&vm, 0, "%s timeout: %s after %u ms", kt_vm_phase_name(vm.phase),
                   vm.phase == KT_VM_PHASE_BOOT  ? "no hello from the guest"
                   : vm.phase == KT_VM_PHASE_RUN ? "no result from the guest"
                                                 : "the guest did not power off",
                   limit);
            break;
        }
        uint64_t wake = vm.deadline;
        if (vm.phase == KT_VM_PHASE_RUN && cfg->heartbeat_timeout_ms) {
            uint64_t since = vm.last_msg > vm.t_phase ? vm.last_msg : vm.t_phase;
            uint64_t hb = since + cfg->heartbeat_timeout_ms;
            if (now >= hb) {
                out->timed_out = true;
                s_fail(&vm, 0, "run hang: no message from the guest for %u ms",
                       cfg->heartbeat_timeout_ms);
                break;
            }
            if (hb < wake)
                wake = hb;
        }
        /* Wake at least once a minute: phase timeouts may exceed what
         * poll()'s int milliseconds hold. */
        uint64_t wait_ms = wake - now;
        int timeout = wait_ms > 60000 ? 60000 : (int)wait_ms;
        if (retry && timeout > S_CONNECT_RETRY_MS)
            timeout = S_CONNECT_RETRY_MS;
        if (vm.pidfd < 0 && timeout > 50)
            timeout = 50; /* no pidfd: poll for QEMU's exit */

        struct pollfd pfd[3];
        nfds_t n = 0;
        int i_pid = -1, i_chan = -1, i_qmp = -1;
        if (vm.pidfd >= 0) {
            i_pid = (int)n;
            pfd[n++] = (struct pollfd){.fd = vm.pidfd, .events = POLLIN};
        }
        if (vm.chan_fd >= 0) {
            i_chan = (int)n;
            pfd[n++] = (struct pollfd){.fd = vm.chan_fd,
                                       .events = POLLIN | (vm.olen > vm.ooff ? POLLOUT : 0)};
        }
        if (vm.qmp) {
            i_qmp = (int)n;
            pfd[n++] = (struct pollfd){.fd = kt_qmp_fd(vm.qmp), .events = POLLIN};
        }
        int pr = poll(pfd, n, timeout);
        if (pr < 0) {
            if (errno == EINTR)
                continue;
            s_fail(&vm, -errno, "poll: %m");
            break;
        }
        (void)i_pid; /* its readiness is handled by s_reap at the top */
        if (i_chan >= 0 && vm.chan_fd >= 0 && (pfd[i_chan].revents & POLLOUT))
            s_chan_write(&vm);
        if (i_chan >= 0 && vm.chan_fd >= 0 && (pfd[i_chan].revents & (POLLIN | POLLHUP | POLLERR)))
            s_chan_read(&vm);
        if (!vm.stop && i_qmp >= 0 && vm.qmp && (pfd[i_qmp].revents & (POLLIN | POLLHUP | POLLERR)))
            s_qmp_events(&vm);
        /* A message may have queued a frame: try to send it right away. */
        if (!vm.stop && vm.chan_fd >= 0 && vm.olen > vm.ooff)
            s_chan_write(&vm);
    }

    if (!vm.exited)
        s_stop_qemu(&vm);
    kt_vm_file_tail(out->console_path, out->console_tail, sizeof(out->console_tail));
    if (vm.exited && out->reached != KT_VM_PHASE_DONE && !vm.stop) {
        /* QEMU went away on its own before the phase was over: say why,
         * from QEMU's own words or else the guest's panic line. */
        char st[96];
        s_status_text(out->qemu_status, st, sizeof(st));
        out->qemu_exited_early = true;
        bool clean = WIFEXITED(out->qemu_status) && WEXITSTATUS(out->qemu_status) == 0;
        s_qemu_message(out->qemu_log_path, !clean, out->qemu_message, sizeof(out->qemu_message));
        const char *panic = strstr(out->console_tail, "Kernel panic - not syncing");
        if (out->qemu_message[0])
            s_text(out, "qemu %s during %s: %s", st, kt_vm_phase_name(vm.phase), out->qemu_message);
        else if (panic)
            s_text(out, "qemu %s during %s: guest %.*s", st, kt_vm_phase_name(vm.phase),
                   (int)strcspn(panic, "\n"), panic);
        else
            s_text(out, "qemu %s during %s", st, kt_vm_phase_name(vm.phase));
    }

    kt_qmp_destroy(&vm.qmp);
    if (vm.chan_fd >= 0)
        close(vm.chan_fd);
    if (vm.pidfd >= 0)
        close(vm.pidfd);
    kt_frame_reader_destroy(&vm.reader);
    free(vm.ibuf);
    free(vm.obuf);
    unlink(vm.chan_path);
    unlink(vm.qmp_path);
    return 0;
}
