/* Executors: the VM executor (a cell through kt_runcell) and the null and
 * sleep executors used by benchmarks and protocol tests. */
#include "kt_executor.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kt_cleanup.h"
#include "kt_config.h"
#include "kt_executor_vm.h"
#include "kt_hash.h"
#include "kt_runcell.h"
#include "kt_sidecar.h"

/* A VM's memory beyond this is a typo, not a test. */
#define S_MAX_MEMORY_MIB (1024ull * 1024)

void kt_exec_result_clear(kt_exec_result_t *r)
{
    if (!r)
        return;
    free(r->sidecar);
    free(r->console);
    r->sidecar = r->console = NULL;
    r->sidecar_len = r->console_len = 0;
}

static uint64_t s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void s_timestamp(char *buf, size_t len)
{
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void s_set(kt_exec_result_t *ret, const char *verdict, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void s_set(kt_exec_result_t *ret, const char *verdict, const char *fmt, ...)
{
    snprintf(ret->verdict, sizeof(ret->verdict), "%s", verdict);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ret->reason, sizeof(ret->reason), fmt, ap);
    va_end(ap);
}

/* The fields every sidecar of a fleet cell carries, from the spec alone. */
static json_t *s_spec_doc(const kt_cellspec_t *spec, uint32_t attempt, const char *executor)
{
    char topo[KT_TOPOLOGY_LABEL_MAX], ts[32];
    kt_topology_label(&spec->plan.topology, topo, sizeof(topo));
    s_timestamp(ts, sizeof(ts));
    json_t *doc = json_object();
    if (!doc)
        return NULL;
    json_object_set_new(doc, "executor", json_string(executor));
    json_object_set_new(doc, "test_name", json_string(spec->cell_name));
    json_object_set_new(doc, "cell_id", json_string(spec->cell_id));
    json_object_set_new(doc, "attempt", json_integer(attempt));
    json_object_set_new(doc, "run_id", json_string(spec->run_id));
    json_object_set_new(doc, "scenario", json_string(spec->plan.scenario));
    json_object_set_new(doc, "topology", json_string(topo));
    json_object_set_new(doc, "topology_preset", spec->topology_preset[0]
                                                    ? json_string(spec->topology_preset)
                                                    : json_null());
    json_object_set_new(doc, "scheduler", json_string(spec->sched_name));
    json_object_set_new(doc, "sched_args", json_string(spec->sched_args));
    json_object_set_new(doc, "flags", json_string(spec->profile[0] ? spec->profile : "default"));
    json_object_set_new(doc, "kernel_label", json_string(spec->kernel_label));
    json_object_set_new(doc, "kernel_version", json_string(spec->kernel_version));
    json_object_set_new(doc, "kernel_commit",
                        spec->kernel_commit[0] ? json_string(spec->kernel_commit) : json_null());
    json_object_set_new(doc, "memory_mib", json_integer((json_int_t)spec->memory_mib));
    json_object_set_new(doc, "project_version", json_string(KT_VERSION));
    json_object_set_new(doc, "timestamp", json_string(ts));
    return doc;
}

/* Verdict, reason and timings into doc, then doc as the result's sidecar. */
static int s_finish_doc(json_t *doc, uint64_t run_ms, kt_exec_result_t *ret)
{
    json_object_set_new(doc, "verdict", json_string(ret->verdict));
    json_object_set_new(doc, "reason", json_string(ret->reason));
    json_object_set_new(doc, "passed", json_boolean(strcmp(ret->verdict, "pass") == 0));
    json_object_set_new(doc, "skipped", json_boolean(strcmp(ret->verdict, "skip") == 0));
    json_object_set_new(doc, "timings", json_pack("{s:I}", "run_ms", (json_int_t)run_ms));
    char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(doc);
    if (!text)
        return -ENOMEM;
    ret->sidecar = text;
    ret->sidecar_len = strlen(text);
    return 0;
}

/* ---- null: finishes at once ---- */

static int s_null_run(void *userdata, const kt_cellspec_t *spec, uint32_t attempt,
                      const char *kernel, const char *sched, atomic_bool *cancel,
                      kt_exec_result_t *ret)
{
    memset(ret, 0, sizeof(*ret));
    json_t *doc = s_spec_doc(spec, attempt, "null");
    if (!doc)
        return -ENOMEM;
    s_set(ret, "pass", "null executor: no VM was booted, nothing was measured");
    return s_finish_doc(doc, 0, ret);
}

kt_executor_t kt_executor_null(void)
{
    return (kt_executor_t){.name = "null", .run = s_null_run, .userdata = NULL};
}

/* ---- sleep: holds a slot for a fixed time without using CPU ---- */

static uint32_t s_sleep_ms;

static int s_sleep_run(void *userdata, const kt_cellspec_t *spec, uint32_t attempt,
                       const char *kernel, const char *sched, atomic_bool *cancel,
                       kt_exec_result_t *ret)
{
    memset(ret, 0, sizeof(*ret));
    uint32_t want = s_sleep_ms;
    uint64_t t0 = s_now_ms(), deadline = t0 + want;
    bool cancelled = false;
    /* Slices short enough that a cancel is seen promptly; each wakeup costs
     * nothing measurable. */
    for (;;) {
        if (cancel && atomic_load(cancel)) {
            cancelled = true;
            break;
        }
        uint64_t now = s_now_ms();
        if (now >= deadline)
            break;
        uint64_t left = deadline - now;
        if (left > 50)
            left = 50;
        struct timespec ts = {.tv_sec = (time_t)(left / 1000),
                              .tv_nsec = (long)(left % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
            ;
    }
    uint64_t held = s_now_ms() - t0;
    json_t *doc = s_spec_doc(spec, attempt, "sleep");
    if (!doc)
        return -ENOMEM;
    json_object_set_new(doc, "sleep_ms", json_integer(want));
    if (cancelled)
        s_set(ret, "error", "sleep executor: cancelled by the coordinator after %llu of %u ms",
              (unsigned long long)held, want);
    else
        s_set(ret, "pass", "sleep executor: held the slot for %llu ms, no VM was booted",
              (unsigned long long)held);
    return s_finish_doc(doc, held, ret);
}

kt_executor_t kt_executor_sleep(uint32_t sleep_ms)
{
    s_sleep_ms = sleep_ms;
    return (kt_executor_t){.name = "sleep", .run = s_sleep_run, .userdata = NULL};
}

/* ---- vm: the cell through kt_runcell ---- */

static bool s_text_ok(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return false;
    return true;
}

int kt_executor_vm_request(const kt_vm_executor_config_t *cfg, const kt_cellspec_t *spec,
                           uint32_t attempt, const char *kernel, const char *sched,
                           kt_cell_request_t *req, char *out_dir, size_t out_dir_len, char *why,
                           size_t why_len)
{
#define S_BAD(...)                                                                                 \
    do {                                                                                           \
        snprintf(why, why_len, __VA_ARGS__);                                                       \
        return -EINVAL;                                                                            \
    } while (0)
    if (!cfg || !cfg->work_dir || !*cfg->work_dir)
        S_BAD("executor: no work directory");
    if (cfg->accel != KT_ACCEL_KVM && cfg->accel != KT_ACCEL_TCG)
        S_BAD("executor: the accelerator must be resolved to kvm or tcg before cells run");
    if (!kt_hash_hex_valid(spec->cell_id))
        S_BAD("cell_id: not 64 lowercase hex digits");
    if (attempt == 0)
        S_BAD("attempt: 0 (attempts count from 1)");
    if (!spec->cell_name[0] || !s_text_ok(spec->cell_name))
        S_BAD("cell_name: empty or has control characters");
    if (!s_text_ok(spec->run_id) || !s_text_ok(spec->kernel_label) ||
        !s_text_ok(spec->kernel_commit) || !s_text_ok(spec->profile) ||
        !s_text_ok(spec->sched_args) || !s_text_ok(spec->sched_name))
        S_BAD("a text field (run_id, kernel label/commit, profile, scheduler) has control "
              "characters");
    if (!kernel || !*kernel)
        S_BAD("kernel: no local path for kernel %.12s", spec->kernel_sha);
    if (spec->sched_sha[0] && (!sched || !*sched))
        S_BAD("scheduler '%s': no local path for %.12s", spec->sched_name, spec->sched_sha);
    if (!spec->sched_sha[0] && sched)
        S_BAD("scheduler: a binary was given but the cell is EEVDF (no sched_sha)");
    const kt_topology_t *t = &spec->plan.topology;
    if (!kt_topology_valid(t))
        S_BAD("plan.topology: %un %ul %uc %ut is not a valid shape", t->numa_nodes, t->llcs,
              t->cores_per_llc, t->threads_per_core);
    if (spec->topology_preset[0]) {
        const kt_topology_preset_t *p = kt_topology_preset_find(spec->topology_preset);
        if (!p)
            S_BAD("topology_preset: '%s' is not a preset", spec->topology_preset);
        if (!kt_topology_equal(&p->topo, t))
            S_BAD("topology_preset: '%s' does not have the plan's shape", spec->topology_preset);
    }
    if (!spec->plan.scenario[0])
        S_BAD("plan.scenario: empty");
    if (spec->plan.duration_ms == 0)
        S_BAD("plan.duration_ms: 0");
    /* A payload cell may have no cgroups: the payload is its workload. */
    bool payload = kt_payload_present(&spec->plan.payload);
    if ((spec->plan.n_cgroups == 0 && !payload) || spec->plan.n_cgroups > KT_MAX_CGROUPS)
        S_BAD("plan.cgroups: %u (1 to %d)", spec->plan.n_cgroups, KT_MAX_CGROUPS);
    if (payload && !kt_hash_hex_valid(spec->plan.payload.sha))
        S_BAD("plan.payload.sha: not 64 lowercase hex digits");
    uint64_t min_mib = kt_topology_memory_mib(t, 0);
    if (spec->memory_mib && (spec->memory_mib < 128 || spec->memory_mib > S_MAX_MEMORY_MIB))
        S_BAD("memory_mib: %llu (128 to %llu, or 0 for the topology's %llu)",
              (unsigned long long)spec->memory_mib, (unsigned long long)S_MAX_MEMORY_MIB,
              (unsigned long long)min_mib);
    if (snprintf(out_dir, out_dir_len, "%s/%s-%u", cfg->work_dir, spec->cell_id, attempt) >=
        (int)out_dir_len)
        S_BAD("work directory: path too long");
#undef S_BAD

    kt_cell_request_init(req);
    req->kernel = kernel;
    req->kernel_label = spec->kernel_label[0] ? spec->kernel_label : NULL;
    req->kernel_commit = spec->kernel_commit[0] ? spec->kernel_commit : NULL;
    req->topology = *t;
    req->plan = &spec->plan;
    req->memory_mib = spec->memory_mib;
    req->cell_id = spec->cell_id;
    req->scheduler = sched;
    req->sched_args = spec->sched_args[0] ? spec->sched_args : NULL;
    req->profile = spec->profile[0] ? spec->profile : NULL;
    req->accel = cfg->accel;
    req->accel_reason = cfg->accel_reason;
    req->out_dir = out_dir;
    req->cell_name = spec->cell_name;
    req->image_dir = cfg->image_dir;
    req->run_id = spec->run_id[0] ? spec->run_id : NULL;
    req->attempt = attempt;
    if (cfg->boot_tries)
        req->boot_retries = cfg->boot_tries - 1;
    return 0;
}

int kt_executor_file_tail(const char *path, size_t max, char **ret, size_t *ret_len)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    if (!S_ISREG(st.st_mode))
        return -EINVAL;
    size_t size = (size_t)st.st_size;
    off_t from = size > max ? (off_t)(size - max) : 0;
    size_t want = size - (size_t)from;
    char *buf = malloc(want + 1);
    if (!buf)
        return -ENOMEM;
    size_t n = 0;
    while (n < want) {
        ssize_t k = pread(fd, buf + n, want - n, from + (off_t)n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            int r = -errno;
            free(buf);
            return r;
        }
        if (k == 0)
            break;
        n += (size_t)k;
    }
    buf[n] = '\0';
    size_t skip = 0;
    if (from > 0) {
        char *nl = memchr(buf, '\n', n);
        if (nl && (size_t)(nl - buf) + 1 < n)
            skip = (size_t)(nl - buf) + 1;
    }
    if (skip)
        memmove(buf, buf + skip, n - skip + 1);
    *ret = buf;
    *ret_len = n - skip;
    return 0;
}

static int s_read_file(const char *path, size_t max, char **ret, size_t *ret_len)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    if ((size_t)st.st_size > max)
        return -EFBIG;
    return kt_executor_file_tail(path, max, ret, ret_len);
}

static int s_mkdir_p(const char *path)
{
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
        return -ENAMETOOLONG;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) < 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(buf, 0755) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

static int s_vm_run(void *userdata, const kt_cellspec_t *spec, uint32_t attempt,
                    const char *kernel, const char *sched, atomic_bool *cancel,
                    kt_exec_result_t *ret)
{
    const kt_vm_executor_config_t *cfg = userdata;
    memset(ret, 0, sizeof(*ret));
    char out_dir[PATH_MAX], why[512];
    kt_cell_request_t req;
    uint64_t t0 = s_now_ms();
    int r = kt_executor_vm_request(cfg, spec, attempt, kernel, sched, &req, out_dir,
                                   sizeof(out_dir), why, sizeof(why));
    if (r == 0 && (r = s_mkdir_p(out_dir)) < 0 &&
        snprintf(why, sizeof(why), "work directory '%s': %s", out_dir, strerror(-r)) < 0)
        return -EIO;
    if (r < 0) {
        json_t *doc = s_spec_doc(spec, attempt, "vm");
        if (!doc)
            return -ENOMEM;
        s_set(ret, "error", "bad cell: %s", why);
        json_object_set_new(doc, "phase", json_string("setup"));
        return s_finish_doc(doc, s_now_ms() - t0, ret);
    }

    /* The artifact cache holds every artifact of a cell under its sha, the
     * payload beside the kernel. */
    char payload_path[PATH_MAX];
    if (kt_payload_present(&spec->plan.payload)) {
        const char *slash = strrchr(kernel, '/');
        int dl = slash ? (int)(slash - kernel) : 1;
        snprintf(payload_path, sizeof(payload_path), "%.*s/%s", dl, slash ? kernel : ".",
                 spec->plan.payload.sha);
        req.payload_path = payload_path;
    }
    kt_cell_outcome_t out;
    r = kt_runcell(&req, &out);
    s_set(ret, out.verdict[0] ? out.verdict : "error", "%s", out.reason);
    if (!kt_verdict_valid(ret->verdict))
        s_set(ret, "error", "the runner returned verdict '%.8s': %s", out.verdict, out.reason);
    if (out.sidecar_path[0])
        r = s_read_file(out.sidecar_path, KT_MSG_MAX_SIDECAR, &ret->sidecar, &ret->sidecar_len);
    else
        r = -ENOENT;
    if (r < 0) {
        /* The runner could not write or we cannot carry its sidecar: say so
         * in one we can, keeping the verdict. */
        json_t *doc = s_spec_doc(spec, attempt, "vm");
        if (!doc)
            return -ENOMEM;
        json_object_set_new(doc, "phase", json_string(out.phase));
        json_object_set_new(doc, "sidecar_path",
                            out.sidecar_path[0] ? json_string(out.sidecar_path) : json_null());
        json_object_set_new(doc, "sidecar_problem", json_string(strerror(-r)));
        if (s_finish_doc(doc, s_now_ms() - t0, ret) < 0)
            return -ENOMEM;
    }
    char stem[600], console[PATH_MAX + 700];
    kt_sidecar_file_stem(spec->cell_name, stem, sizeof(stem));
    snprintf(console, sizeof(console), "%s/%s.console.log", out_dir, stem);
    if (kt_executor_file_tail(console, KT_MSG_MAX_CONSOLE, &ret->console, &ret->console_len) < 0) {
        ret->console = NULL;
        ret->console_len = 0;
    }
    (void)cancel; /* a booted VM runs to its verdict; the daemon marks the result */
    return 0;
}

kt_executor_t kt_executor_vm(const kt_vm_executor_config_t *cfg)
{
    return (kt_executor_t){.name = "vm", .run = s_vm_run, .userdata = (void *)cfg};
}
