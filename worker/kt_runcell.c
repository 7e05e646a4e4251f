/* One cell on this host, end to end. */
#include "kt_runcell.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kt_chanmsg.h"
#include "kt_cleanup.h"
#include "kt_config.h"
#include "kt_hash.h"
#include "kt_image.h"
#include "kt_kernel.h"
#include "kt_kvm.h"
#include "kt_log.h"
#include "kt_sidecar.h"

#ifndef KT_INIT_BUILD_PATH
#define KT_INIT_BUILD_PATH ""
#endif
#ifndef KT_INIT_INSTALL_PATH
#define KT_INIT_INSTALL_PATH "/usr/local/libexec/ktstr/ktstr-init"
#endif

void kt_cell_request_init(kt_cell_request_t *req)
{
    memset(req, 0, sizeof(*req));
    req->accel = KT_ACCEL_AUTO;
    req->machine = KT_MACHINE_Q35;
    req->out_dir = ".";
    req->boot_retries = KT_RUNCELL_BOOT_RETRIES;
}

/* The first line of text that holds needle, whole, into buf. */
static bool s_line_with(const char *text, const char *needle, char *buf, size_t len)
{
    const char *p = text ? strstr(text, needle) : NULL;
    if (!p)
        return false;
    snprintf(buf, len, "%.*s", (int)strcspn(p, "\r\n"), p);
    return true;
}

bool kt_runcell_boot_retryable(const kt_vm_outcome_t *vo, char *why, size_t len)
{
    char scratch[8];
    if (!why) {
        why = scratch;
        len = sizeof(scratch);
    }
    why[0] = '\0';
    if (vo->got_hello || vo->reached != KT_VM_PHASE_BOOT || vo->vm_state[0])
        return false;
    /* QEMU said why it stopped (an assertion, a bad option, a missing
     * firmware, the MSR KVM refused): that repeats. A warning is no reason. */
    if (vo->qemu_message[0] && !strstr(vo->qemu_message, "warning:"))
        return false;
    if (vo->timed_out) {
        snprintf(why, len, "%s", vo->error_text[0] ? vo->error_text : "boot timeout");
        return true;
    }
    /* Died by a signal the runner did not send, without a word. */
    if (vo->qemu_status >= 0 && WIFSIGNALED(vo->qemu_status)) {
        snprintf(why, len, "%s", vo->error_text[0] ? vo->error_text : "qemu died by a signal");
        return true;
    }
    /* Exited: a guest that panicked (panic=-1, -no-reboot: QEMU exits 0). */
    static const char *const marks[] = {"Kernel panic",
                                        "Oops:", "BUG:", "general protection fault"};
    for (size_t i = 0; i < sizeof(marks) / sizeof(marks[0]); i++) {
        char line[200];
        if (s_line_with(vo->console_tail, marks[i], line, sizeof(line))) {
            snprintf(why, len, "the kernel failed before init: %s", line);
            return true;
        }
    }
    return false;
}

const char *kt_runcell_find_init(void)
{
    const char *env = getenv("KTSTR_INIT");
    if (env && *env)
        return access(env, R_OK) == 0 ? env : NULL;
    if (KT_INIT_BUILD_PATH[0] && access(KT_INIT_BUILD_PATH, R_OK) == 0)
        return KT_INIT_BUILD_PATH;
    if (access(KT_INIT_INSTALL_PATH, R_OK) == 0)
        return KT_INIT_INSTALL_PATH;
    return NULL;
}

static uint64_t s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Blank-separated arguments; no quoting (an argument with a blank is not a
 * thing sched_ext schedulers take). */
static int s_split_args(const char *text, kt_cell_msg_t *m, char *why, size_t wl)
{
    m->n_sched_args = 0;
    if (!text)
        return 0;
    const char *p = text;
    for (;;) {
        p += strspn(p, " \t\n");
        if (!*p)
            return 0;
        size_t n = strcspn(p, " \t\n");
        if (m->n_sched_args >= KT_SCHED_ARGS_MAX || n >= KT_SCHED_ARG_LEN) {
            snprintf(why, wl, "scheduler arguments: more than %d or one longer than %d bytes",
                     KT_SCHED_ARGS_MAX, KT_SCHED_ARG_LEN - 1);
            return -E2BIG;
        }
        memcpy(m->sched_args[m->n_sched_args], p, n);
        m->sched_args[m->n_sched_args++][n] = '\0';
        p += n;
    }
}

struct s_run {
    const kt_topology_t *want;
    bool hello;
    bool mismatch;
    char observed[KT_TOPOLOGY_LABEL_MAX];
    char guest_kernel[128];
    void *result;
    size_t result_len;
    json_t *events;
};

static int s_on_message(void *userdata, const char *type, const void *body, size_t len)
{
    struct s_run *run = userdata;
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    int r = 0;
    if (kt_mp_unpack_one(body, len, &up) < 0) {
        kt_log_warn("guest sent an undecodable %s message, ignoring", type);
        goto out;
    }
    if (strcmp(type, "hello") == 0) {
        run->hello = true;
        const msgpack_object *topo = kt_mp_get(&up.data, "topology");
        uint64_t n = 0, l = 0, c = 0, t = 0;
        if (!topo || kt_mp_get_u64(topo, "nodes", &n) < 0 || kt_mp_get_u64(topo, "llcs", &l) < 0 ||
            kt_mp_get_u64(topo, "cores", &c) < 0 || kt_mp_get_u64(topo, "threads", &t) < 0) {
            snprintf(run->observed, sizeof(run->observed), "unreadable");
            run->mismatch = true;
            r = -EBADMSG;
            goto out;
        }
        kt_topology_t seen = {(unsigned)n, (unsigned)l, (unsigned)c, (unsigned)t};
        kt_topology_label(&seen, run->observed, sizeof(run->observed));
        kt_mp_get_str(&up.data, "kernel", run->guest_kernel, sizeof(run->guest_kernel));
        if (!kt_topology_equal(&seen, run->want)) {
            run->mismatch = true;
            r = -EDOM;
        }
    } else if (strcmp(type, "result") == 0) {
        free(run->result);
        run->result = malloc(len ? len : 1);
        if (!run->result) {
            r = -ENOMEM;
            goto out;
        }
        memcpy(run->result, body, len);
        run->result_len = len;
    } else if (strcmp(type, "event") == 0) {
        char phase[32] = "", msg[256] = "";
        uint64_t ms = 0;
        kt_mp_get_str(&up.data, "phase", phase, sizeof(phase));
        kt_mp_get_str(&up.data, "msg", msg, sizeof(msg));
        kt_mp_get_u64(&up.data, "ms", &ms);
        kt_log_debug("guest event phase=%s ms=%llu %s", phase, (unsigned long long)ms, msg);
        if (json_array_size(run->events) < 256)
            json_array_append_new(run->events,
                                  json_pack("{s:s,s:I,s:s}", "phase", phase, "ms", (json_int_t)ms,
                                            "msg", msg));
    }
out:
    msgpack_unpacked_destroy(&up);
    return r;
}

static int s_copy_file(const char *from, const char *to)
{
    _cleanup_close_ int in = open(from, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return -errno;
    _cleanup_close_ int out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0)
        return -errno;
    char buf[65536];
    /* Console logs are bounded by what QEMU wrote; cap the copy anyway. */
    size_t total = 0;
    for (;;) {
        ssize_t n = read(in, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0 || total > (64u << 20))
            return 0;
        if (write(out, buf, (size_t)n) != n)
            return -EIO;
        total += (size_t)n;
    }
}

static void s_rm_workdir(const char *dir)
{
    static const char *const files[] = {"console.log", "qemu.log", "chan.sock", "qmp.sock"};
    char p[PATH_MAX];
    for (size_t i = 0; i < KT_ARRAY_SIZE(files); i++) {
        snprintf(p, sizeof(p), "%s/%s", dir, files[i]);
        unlink(p);
    }
    rmdir(dir);
}

static void s_timestamp(char *buf, size_t len)
{
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void s_set_outcome(kt_cell_outcome_t *o, const char *verdict, const char *phase,
                          const char *reason)
{
    snprintf(o->verdict, sizeof(o->verdict), "%s", verdict);
    snprintf(o->phase, sizeof(o->phase), "%s", phase);
    snprintf(o->reason, sizeof(o->reason), "%s", reason);
}

int kt_runcell(const kt_cell_request_t *req, kt_cell_outcome_t *o)
{
    memset(o, 0, sizeof(*o));
    uint64_t t0 = s_now_ms();
    char why[512] = "";
    int r;
    char topo_label[KT_TOPOLOGY_LABEL_MAX];
    kt_topology_label(&req->topology, topo_label, sizeof(topo_label));
    const char *preset = kt_topology_preset_name(&req->topology);
    const char *sched_name = "eevdf";
    if (req->scheduler) {
        sched_name = strrchr(req->scheduler, '/') ? strrchr(req->scheduler, '/') + 1 : req->scheduler;
    }

    /* Everything that can be checked before a VM boots. */
    char kver[128] = "unknown";
    bool kernel_ok = access(req->kernel, R_OK) == 0;
    if (kernel_ok && kt_kernel_image_version(req->kernel, kver, sizeof(kver)) < 0)
        snprintf(kver, sizeof(kver), "unknown");
    const char *klabel = req->kernel_label ? req->kernel_label : kver;

    /* A payload without a scenario is a plan of its own, named after it. */
    char payload_scenario[KT_NAME_MAX] = "";
    if (!req->plan && !req->scenario && req->payload)
        snprintf(payload_scenario, sizeof(payload_scenario), "payload_%.52s", req->payload->name);
    const char *scenario_name = req->plan       ? req->plan->scenario
                                : req->scenario ? req->scenario->name
                                                : payload_scenario;
    const char *override = req->override_work ? kt_work_type_name(req->work_type) : NULL;
    char cell_name[512];
    if (req->cell_name)
        snprintf(cell_name, sizeof(cell_name), "%s", req->cell_name);
    else
        snprintf(cell_name, sizeof(cell_name), "cell/%s%s%s/%s/%s/%s", scenario_name,
                 override ? "+" : "", override ? override : "", preset ? preset : topo_label,
                 req->profile ? req->profile : sched_name, klabel);
    char stem[600]; /* the sidecar's and console logs' file names */
    kt_sidecar_file_stem(cell_name, stem, sizeof(stem));

    json_t *doc = json_object();
    json_t *events = json_array();
    json_t *timings = json_object();
    if (!doc || !events || !timings) {
        json_decref(doc);
        json_decref(events);
        json_decref(timings);
        return -ENOMEM;
    }
    char ts[32];
    s_timestamp(ts, sizeof(ts));
    struct utsname un;
    uname(&un);
    json_object_set_new(doc, "test_name", json_string(cell_name));
    json_object_set_new(doc, "scenario", json_string(scenario_name));
    /* Only when this call applied it: a fleet cell's plan arrives with the
     * gauntlet's work_type applied already (its name says so). */
    if (override)
        json_object_set_new(doc, "work_type_override", json_string(override));
    json_object_set_new(doc, "topology", json_string(topo_label));
    json_object_set_new(doc, "topology_preset", preset ? json_string(preset) : json_null());
    json_object_set_new(doc, "scheduler", json_string(sched_name));
    json_object_set_new(doc, "scheduler_path", req->scheduler ? json_string(req->scheduler) : json_null());
    json_object_set_new(doc, "sched_args", json_string(req->sched_args ? req->sched_args : ""));
    json_object_set_new(doc, "flags", json_string(req->profile ? req->profile : "default"));
    json_object_set_new(doc, "kernel_path", json_string(req->kernel));
    json_object_set_new(doc, "kernel_version", json_string(kver));
    json_object_set_new(doc, "kernel_label", json_string(klabel));
    json_object_set_new(doc, "kernel_commit",
                        req->kernel_commit ? json_string(req->kernel_commit) : json_null());
    json_object_set_new(doc, "project_version", json_string(KT_VERSION));
    json_object_set_new(doc, "timestamp", json_string(ts));
    json_object_set_new(doc, "run_id", req->run_id ? json_string(req->run_id) : json_null());
    json_object_set_new(doc, "attempt", json_integer(req->attempt ? req->attempt : 1));
    json_object_set_new(doc, "worker", json_string(un.nodename));
    json_object_set_new(doc, "machine",
                        json_string(req->machine == KT_MACHINE_MICROVM ? "microvm" : "q35"));
    if (req->payload_path)
        json_object_set_new(doc, "payload_path", json_string(req->payload_path));

    struct s_run run = {.want = &req->topology, .events = events};
    char workdir[] = "/tmp/ktstr-cell-XXXXXX";
    bool have_workdir = false;
    kt_image_t *img = NULL;
    kt_plan_t plan;
    kt_scenario_t *overridden = NULL;
    kt_cell_msg_t *msg = calloc(1, sizeof(*msg));
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init(&sbuf);
    kt_vm_outcome_t vo;
    memset(&vo, 0, sizeof(vo));
    enum kt_accel accel = KT_ACCEL_TCG;
    char accel_reason[300] = "";
    const char *verdict = "error", *phase = "setup";
    char reason[1024] = "";
    char verdict_buf[8], phase_buf[16];

    if (!msg) {
        r = -ENOMEM;
        snprintf(reason, sizeof(reason), "out of memory");
        goto verdict;
    }
    if (!kernel_ok) {
        snprintf(reason, sizeof(reason), "kernel '%s': %s", req->kernel, strerror(errno));
        phase = "artifact";
        goto verdict;
    }
    if (req->scheduler && access(req->scheduler, R_OK | X_OK) != 0) {
        snprintf(reason, sizeof(reason), "scheduler '%s': %s", req->scheduler, strerror(errno));
        phase = "artifact";
        goto verdict;
    }
    const kt_payload_spec_t *payload = req->plan ? &req->plan->payload : req->payload;
    if (payload && !kt_payload_present(payload))
        payload = NULL;
    if (payload && (!req->payload_path || access(req->payload_path, R_OK | X_OK) != 0)) {
        snprintf(reason, sizeof(reason), "payload '%s': %s", req->payload_path ? req->payload_path
                 : payload->name, req->payload_path ? strerror(errno) : "no binary given");
        phase = "artifact";
        goto verdict;
    }
    if (!req->plan && !req->scenario && payload) {
        memset(&plan, 0, sizeof(plan));
        snprintf(plan.scenario, sizeof(plan.scenario), "%s", payload_scenario);
        plan.topology = req->topology;
        kt_thresholds_default(&plan.thresholds);
        plan.duration_ms = payload->timeout_ms;
        plan.payload = *payload;
    } else if (req->plan) {
        plan = *req->plan;
        if (!kt_topology_equal(&plan.topology, &req->topology)) {
            phase = "plan";
            snprintf(reason, sizeof(reason), "the plan was resolved for another topology");
            goto verdict;
        }
        if (override && kt_plan_override_work(&plan, req->work_type, why, sizeof(why)) < 0) {
            phase = "plan";
            snprintf(reason, sizeof(reason), "--work-type %s: %s", override, why);
            goto verdict;
        }
    } else {
        const kt_scenario_t *sc = req->scenario;
        if (override) {
            /* Before resolution: the group-size rule of a declared type. */
            if (!(overridden = malloc(sizeof(*overridden)))) {
                r = -ENOMEM;
                snprintf(reason, sizeof(reason), "out of memory");
                goto verdict;
            }
            *overridden = *req->scenario;
            kt_scenario_override_work(overridden, req->work_type);
            sc = overridden;
        }
        r = kt_scenario_fits(sc, &req->topology, why, sizeof(why));
        if (r < 0) {
            verdict = "skip";
            phase = "plan";
            snprintf(reason, sizeof(reason), "%s", why);
            goto verdict;
        }
        r = kt_scenario_resolve(sc, &req->topology, req->duration_ms, &plan, why, sizeof(why));
        if (r < 0) {
            phase = "plan";
            snprintf(reason, sizeof(reason), "scenario '%s'%s%s: %s", req->scenario->name,
                     override ? " with --work-type " : "", override ? override : "", why);
            goto verdict;
        }
        if (payload)
            plan.payload = *payload;
    }
    /* The binary's content is part of the cell's identity. */
    if (payload && !plan.payload.sha[0]) {
        char psha[KT_HASH_HEX_SIZE];
        struct stat pst;
        if ((r = kt_hash_sha256_file(req->payload_path, psha)) < 0 ||
            stat(req->payload_path, &pst) < 0) {
            phase = "artifact";
            snprintf(reason, sizeof(reason), "hashing payload '%s': %s", req->payload_path,
                     strerror(r < 0 ? -r : errno));
            goto verdict;
        }
        snprintf(plan.payload.sha, sizeof(plan.payload.sha), "%s", psha);
        plan.payload.size = (uint64_t)pst.st_size;
    }
    kt_cell_msg_init(msg);
    msg->plan = plan;
    snprintf(msg->sched_name, sizeof(msg->sched_name), "%s", sched_name);
    if (req->scheduler)
        snprintf(msg->sched_path, sizeof(msg->sched_path), "/sched/%s", sched_name);
    if ((r = s_split_args(req->sched_args, msg, why, sizeof(why))) < 0) {
        phase = "plan";
        snprintf(reason, sizeof(reason), "%s", why);
        goto verdict;
    }

    /* The cell id: a hash of what the cell is, not of when or where it runs. */
    {
        kt_hash_t h;
        char khash[KT_HASH_HEX_SIZE], shash[KT_HASH_HEX_SIZE] = "eevdf";
        if ((r = kt_hash_sha256_file(req->kernel, khash)) < 0 ||
            (req->scheduler && (r = kt_hash_sha256_file(req->scheduler, shash)) < 0)) {
            phase = "artifact";
            snprintf(reason, sizeof(reason), "hashing artifacts: %s", strerror(-r));
            goto verdict;
        }
        msgpack_sbuffer idbuf;
        msgpack_sbuffer_init(&idbuf);
        kt_cell_msg_encode(msg, &idbuf);
        kt_hash_init(&h);
        kt_hash_update(&h, "ktstr-cell-v1", 14);
        kt_hash_update(&h, khash, strlen(khash));
        kt_hash_update(&h, shash, strlen(shash));
        kt_hash_update(&h, idbuf.data, idbuf.size);
        kt_hash_final_hex(&h, o->cell_id);
        msgpack_sbuffer_destroy(&idbuf);
        if (req->cell_id)
            snprintf(o->cell_id, sizeof(o->cell_id), "%s", req->cell_id);
        snprintf(msg->cell_id, sizeof(msg->cell_id), "%s", o->cell_id);
    }

    const char *init = req->init_path ? req->init_path : kt_runcell_find_init();
    const char *busybox = req->busybox_path ? req->busybox_path : "/bin/busybox";
    if (!init) {
        phase = "artifact";
        snprintf(reason, sizeof(reason), "ktstr-init not found (set KTSTR_INIT or install it)");
        goto verdict;
    }
    if (!mkdtemp(workdir)) {
        snprintf(reason, sizeof(reason), "mkdtemp: %s", strerror(errno));
        goto verdict;
    }
    have_workdir = true;

    char sched_guest[300], payload_guest[300];
    snprintf(sched_guest, sizeof(sched_guest), "sched/%s", sched_name);
    snprintf(payload_guest, sizeof(payload_guest), "payload/%s", payload ? payload->name : "");
    kt_image_entry_t entries[4] = {
        {.guest_path = "init", .host_path = init, .mode = 0755},
        {.guest_path = "bin/busybox", .host_path = busybox, .mode = 0755},
    };
    size_t n_entries = 2;
    if (req->scheduler)
        entries[n_entries++] = (kt_image_entry_t){.guest_path = sched_guest,
                                                  .host_path = req->scheduler, .mode = 0755};
    if (payload)
        entries[n_entries++] = (kt_image_entry_t){.guest_path = payload_guest,
                                                  .host_path = req->payload_path, .mode = 0755};
    uint64_t ta = s_now_ms();
    const char *image_dir = req->image_dir ? req->image_dir : getenv("KTSTR_IMAGE_DIR");
    r = kt_image_acquire(image_dir && *image_dir ? image_dir : KT_IMAGE_DEFAULT_DIR, entries,
                         n_entries, &img);
    if (r < 0) {
        phase = "artifact";
        snprintf(reason, sizeof(reason), "base image: %s", strerror(-r));
        goto verdict;
    }
    json_object_set_new(timings, "artifact_ms", json_integer((json_int_t)(s_now_ms() - ta)));
    json_object_set_new(doc, "image",
                        json_pack("{s:s,s:b}", "hash", kt_image_hash_hex(img), "built",
                                  kt_image_built(img)));

    /* Accelerator: KVM only after a canary boot proved it works here. */
    {
        kt_kvm_status_t st;
        uint64_t tk = s_now_ms();
        r = kt_accel_choose(req->accel, req->kernel, image_dir, true, &accel, &st);
        json_object_set_new(timings, "kvm_check_ms", json_integer((json_int_t)(s_now_ms() - tk)));
        snprintf(accel_reason, sizeof(accel_reason), "%s",
                 req->accel != KT_ACCEL_AUTO && req->accel_reason ? req->accel_reason : st.reason);
        if (r < 0) {
            phase = "accel";
            snprintf(reason, sizeof(reason), "--accel kvm requested but KVM is unusable: %s",
                     st.reason);
            goto verdict;
        }
    }
    o->accel = accel;

    if ((r = kt_cell_msg_encode(msg, &sbuf)) < 0) {
        snprintf(reason, sizeof(reason), "encoding the cell: %s", strerror(-r));
        goto verdict;
    }
    double scale = req->timeout_scale > 0 ? req->timeout_scale : (accel == KT_ACCEL_KVM ? 1.0 : 4.0);
    unsigned cpus = kt_topology_cpus(&req->topology);
    kt_vm_config_t cfg;
    kt_vm_config_init(&cfg);
    cfg.kernel = req->kernel;
    cfg.initrd = kt_image_path(img);
    cfg.topology = req->topology;
    cfg.memory_mib = req->plan ? (req->memory_mib ? req->memory_mib
                                                   : kt_topology_memory_mib(&req->topology, 0))
                               : kt_topology_memory_mib(&req->topology, req->scenario
                                                                            ? req->scenario->memory_mib
                                                                            : req->memory_mib);
    cfg.accel = accel;
    cfg.machine = req->machine;
    /* Test hooks of the harness's own tests (ktstr.hang=PHASE,
     * ktstr.skip_op=OP: worker/guest/README.md); never set in production. */
    cfg.cmdline_extra = getenv("KTSTR_TEST_GUEST_CMDLINE");
    cfg.workdir = workdir;
    cfg.cell_msg = sbuf.data;
    cfg.cell_msg_len = sbuf.size;
    cfg.boot_timeout_ms = (uint32_t)((10000 + 500 * cpus) * scale);
    uint32_t run_ms = plan.duration_ms;
    if (payload && plan.payload.timeout_ms > run_ms)
        run_ms = plan.payload.timeout_ms;
    cfg.run_timeout_ms = (uint32_t)(run_ms + msg->sched_enable_timeout_ms + msg->settle_ms +
                                    15000 * scale);
    cfg.collect_timeout_ms = (uint32_t)(10000 * scale);
    cfg.heartbeat_timeout_ms = (uint32_t)(10000 * scale);
    cfg.on_message = s_on_message;
    cfg.userdata = &run;
    kt_log_info("cell=%s booting kernel='%s' topology=%s accel=%s", o->cell_id, req->kernel,
                topo_label, kt_accel_name(accel));
    json_t *retries = json_array();
    for (unsigned boot = 1;; boot++) {
        uint64_t tb = s_now_ms();
        r = kt_vm_run(&cfg, &vo);
        char cause[320];
        if (r < 0 || boot > req->boot_retries ||
            !kt_runcell_boot_retryable(&vo, cause, sizeof(cause)))
            break;
        /* Nothing of the cell ran: keep this boot's console beside the
         * sidecar and boot once more; the sidecar says it happened. */
        char src[PATH_MAX], dst[PATH_MAX + 700];
        snprintf(src, sizeof(src), "%s/console.log", workdir);
        snprintf(dst, sizeof(dst), "%s/%s.boot%u.console.log", req->out_dir, stem, boot);
        bool kept = access(src, R_OK) == 0 && s_copy_file(src, dst) == 0;
        kt_log_warn("cell=%s boot %u of at most %u never reached ktstr-init (%s): booting again",
                    o->cell_id, boot, req->boot_retries + 1, cause);
        if (retries)
            json_array_append_new(retries,
                                  json_pack("{s:i,s:s,s:I,s:s?,s:s?}", "boot", (int)boot, "cause",
                                            cause, "ms", (json_int_t)(s_now_ms() - tb),
                                            "console_log", kept ? dst : NULL, "console_tail",
                                            vo.console_tail[0] ? vo.console_tail : NULL));
        memset(&vo, 0, sizeof(vo));
    }
    if (retries && json_array_size(retries))
        json_object_set_new(doc, "boot_retries", retries);
    else
        json_decref(retries);
    json_object_set_new(timings, "boot_ms", json_integer((json_int_t)vo.boot_ms));
    json_object_set_new(timings, "run_ms", json_integer((json_int_t)vo.run_ms));
    json_object_set_new(timings, "collect_ms", json_integer((json_int_t)vo.collect_ms));
    if (r < 0) {
        phase = "boot";
        snprintf(reason, sizeof(reason), "could not start the VM: %s",
                 vo.error_text[0] ? vo.error_text : strerror(-r));
        goto verdict;
    }
    if (run.observed[0])
        json_object_set_new(doc, "observed_topology_label", json_string(run.observed));
    if (run.mismatch) {
        phase = "topology";
        snprintf(reason, sizeof(reason), "topology mismatch: asked for %s, the guest sees %s",
                 topo_label, run.observed);
        goto verdict;
    }
    if (run.result) {
        r = kt_sidecar_merge_guest(doc, run.result, run.result_len, why, sizeof(why));
        if (r < 0) {
            phase = "collect";
            snprintf(reason, sizeof(reason), "malformed result from the guest: %s", why);
            goto verdict;
        }
        /* Copies: the doc's strings are replaced below. */
        snprintf(verdict_buf, sizeof(verdict_buf), "%s",
                 json_string_value(json_object_get(doc, "verdict")));
        verdict = verdict_buf;
        snprintf(reason, sizeof(reason), "%s", json_string_value(json_object_get(doc, "reason")));
        const char *gphase = json_string_value(json_object_get(doc, "phase"));
        snprintf(phase_buf, sizeof(phase_buf), "%s", gphase ? gphase : "done");
        phase = phase_buf;
        goto verdict_set;
    }
    /* No result: the VM died or hung. A kernel that panicked misbehaved
     * (fail); anything else is the harness's or the host's problem (error). */
    phase = kt_vm_phase_name(vo.reached);
    if (s_line_with(vo.console_tail, "Kernel panic", reason, sizeof(reason))) {
        verdict = "fail";
    } else if (vo.timed_out) {
        snprintf(reason, sizeof(reason), "timeout in phase %s%s%s", phase,
                 vo.error_text[0] ? ": " : "", vo.error_text);
    } else {
        snprintf(reason, sizeof(reason), "%s",
                 vo.error_text[0] ? vo.error_text : "the VM stopped without a result");
    }

verdict:
    json_object_set_new(doc, "verdict", json_string(verdict));
    json_object_set_new(doc, "reason", json_string(reason));
verdict_set:
    json_object_set_new(doc, "phase", json_string(phase));
    json_object_set_new(doc, "passed", json_boolean(strcmp(verdict, "pass") == 0));
    json_object_set_new(doc, "skipped", json_boolean(strcmp(verdict, "skip") == 0));
    json_object_set_new(doc, "cell_id", json_string(o->cell_id));
    json_object_set_new(doc, "accel", json_string(kt_accel_name(accel)));
    json_object_set_new(doc, "accel_reason", json_string(accel_reason));
    json_object_set_new(doc, "guest_events", events);
    json_object_set_new(timings, "total_ms", json_integer((json_int_t)(s_now_ms() - t0)));
    json_object_set_new(doc, "timings", timings);
    json_object_set_new(doc, "host", json_pack("{s:s,s:s,s:s}", "hostname", un.nodename, "kernel",
                                               un.release, "arch", un.machine));
    /* Failed checks on their own, for readers that want only those. */
    json_t *failed = json_array();
    json_t *checks = json_object_get(doc, "checks");
    size_t i;
    json_t *c;
    json_array_foreach(checks, i, c)
    {
        if (json_is_false(json_object_get(c, "passed")))
            json_array_append(failed, c);
    }
    json_object_set_new(doc, "failed_check_list", failed);

    if (vo.console_path[0] || have_workdir) {
        char src[PATH_MAX], dst[PATH_MAX + 700];
        snprintf(src, sizeof(src), "%s/console.log", workdir);
        snprintf(dst, sizeof(dst), "%s/%s.console.log", req->out_dir, stem);
        if (access(src, R_OK) == 0 && s_copy_file(src, dst) == 0)
            json_object_set_new(doc, "console_log", json_string(dst));
    }
    if (strcmp(verdict, "pass") != 0 && vo.console_tail[0])
        json_object_set_new(doc, "console_tail", json_string(vo.console_tail));
    s_set_outcome(o, verdict, phase, reason);
    r = kt_sidecar_write(req->out_dir, stem, doc, o->sidecar_path, sizeof(o->sidecar_path));
    if (r < 0)
        snprintf(o->reason + strlen(o->reason), sizeof(o->reason) - strlen(o->reason),
                 " (and the sidecar could not be written to '%s': %s)", req->out_dir,
                 strerror(-r));

    kt_image_release(&img);
    /* Images nobody has used for an hour go; held ones are never touched. */
    if (have_workdir) {
        const char *sweep_dir = req->image_dir ? req->image_dir : getenv("KTSTR_IMAGE_DIR");
        unsigned removed = 0;
        if (kt_image_sweep(sweep_dir && *sweep_dir ? sweep_dir : KT_IMAGE_DEFAULT_DIR, 3600,
                           &removed) == 0 && removed)
            kt_log_info("swept %u stale base image(s)", removed);
    }
    if (have_workdir)
        s_rm_workdir(workdir);
    msgpack_sbuffer_destroy(&sbuf);
    free(run.result);
    free(overridden);
    free(msg);
    json_decref(doc);
    return r;
}
