/* Packing of ktstr-init's messages to the host (see kt_guest_result.h). */
#include "kt_guest_result.h"
#include "kt_timeline.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "kt_chanmsg.h"
#include "kt_cleanup.h"

const char *kt_verdict_name(enum kt_verdict v)
{
    switch (v) {
    case KT_VERDICT_PASS:
        return "pass";
    case KT_VERDICT_FAIL:
        return "fail";
    case KT_VERDICT_ERROR:
        return "error";
    case KT_VERDICT_SKIP:
        return "skip";
    }
    return "error";
}

void kt_guest_result_init(kt_guest_result_t *r)
{
    memset(r, 0, sizeof(*r));
    r->verdict = KT_VERDICT_ERROR;
    r->phase = "channel";
    snprintf(r->sched.state, sizeof(r->sched.state), "none");
}

void kt_guest_result_event(kt_guest_result_t *r, uint64_t ms, const char *fmt, ...)
{
    if (r->n_timeline >= KT_GUEST_TIMELINE_MAX)
        return;
    kt_guest_event_t *e = &r->timeline[r->n_timeline++];
    e->ms = ms;
    if (r->n_timeline == KT_GUEST_TIMELINE_MAX) {
        snprintf(e->text, sizeof(e->text), "timeline full, later events dropped");
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->text, sizeof(e->text), fmt, ap);
    va_end(ap);
}

void kt_guest_result_stimulus(kt_guest_result_t *r, uint64_t ms, unsigned step, unsigned phase,
                              const char *op, const char *cgroup, const char *fmt, ...)
{
    if (r->n_timeline + 1 >= KT_GUEST_TIMELINE_MAX) {
        kt_guest_result_event(r, ms, "timeline full");
        return;
    }
    kt_guest_event_t *e = &r->timeline[r->n_timeline++];
    memset(e, 0, sizeof(*e));
    e->ms = ms;
    e->step = (int)step;
    e->phase = phase;
    snprintf(e->op, sizeof(e->op), "%s", op);
    snprintf(e->cgroup, sizeof(e->cgroup), "%s", cgroup);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->text, sizeof(e->text), fmt, ap);
    va_end(ap);
}

void kt_guest_result_klog(kt_guest_result_t *r, const char *line)
{
    if (r->n_klog >= KT_GUEST_KLOG_MAX)
        return;
    snprintf(r->klog[r->n_klog++], KT_GUEST_KLOG_LEN, "%s", line);
}

/* Length of the valid UTF-8 sequence at s (1..4), 0 when invalid. */
static size_t s_utf8_seq(const unsigned char *s, size_t left)
{
    unsigned char c = s[0];
    size_t n;
    uint32_t cp;
    if (c < 0x80)
        return 1;
    if ((c & 0xe0) == 0xc0) {
        n = 2;
        cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
        n = 3;
        cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
        n = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (n > left)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

static void s_str(msgpack_packer *pk, const char *s)
{
    const unsigned char *u = (const unsigned char *)(s ? s : "");
    size_t len = strlen((const char *)u);
    bool valid = true;
    for (size_t i = 0; i < len && valid;) {
        size_t n = s_utf8_seq(u + i, len - i);
        valid = n > 0;
        i += n;
    }
    if (valid) {
        msgpack_pack_str(pk, len);
        msgpack_pack_str_body(pk, u, len);
        return;
    }
    /* The output length equals the input's: each invalid byte becomes '?'. */
    msgpack_pack_str(pk, len);
    for (size_t i = 0; i < len;) {
        size_t n = s_utf8_seq(u + i, len - i);
        if (n == 0) {
            msgpack_pack_str_body(pk, "?", 1);
            i++;
        } else {
            msgpack_pack_str_body(pk, u + i, n);
            i += n;
        }
    }
}

static void s_kv_str(msgpack_packer *pk, const char *key, const char *value)
{
    kt_mp_pack_str(pk, key);
    s_str(pk, value);
}

static void s_kv_mask(msgpack_packer *pk, const char *key, const kt_cpumask_t *m)
{
    char list[KT_MAX_CPUS * 4];
    kt_cpumask_format(m, list, sizeof(list));
    kt_mp_pack_kv_str(pk, key, list);
}

static void s_pack_topo(msgpack_packer *pk, const kt_guest_topo_t *t)
{
    msgpack_pack_map(pk, 6);
    kt_mp_pack_kv_u64(pk, "nodes", t->nodes);
    kt_mp_pack_kv_u64(pk, "llcs", t->llcs);
    kt_mp_pack_kv_u64(pk, "cores", t->cores);
    kt_mp_pack_kv_u64(pk, "threads", t->threads);
    kt_mp_pack_kv_u64(pk, "cpus", t->cpus);
    kt_mp_pack_kv_str(pk, "label", t->label);
}

/* The figures of the worker's type, under "type_figures" (an empty map for
 * the types that have none beyond units and wake latencies). */
static void s_pack_type_figures(msgpack_packer *pk, const kt_worker_stats_t *w,
                                enum kt_work_type type)
{
    kt_mp_pack_str(pk, "type_figures");
    switch (type) {
    case KT_WORK_CACHE_PRESSURE:
    case KT_WORK_CACHE_YIELD:
    case KT_WORK_CACHE_PIPE:
    case KT_WORK_FAN_OUT_COMPUTE:
        msgpack_pack_map(pk, 1);
        kt_mp_pack_kv_u64(pk, "buffer_bytes", w->buffer_bytes);
        return;
    case KT_WORK_NICE_SWEEP:
        msgpack_pack_map(pk, 3);
        kt_mp_pack_kv_u64(pk, "changes", w->changes);
        kt_mp_pack_kv_i64(pk, "nice_lo", w->nice_lo);
        kt_mp_pack_kv_i64(pk, "nice_hi", w->nice_hi);
        return;
    case KT_WORK_AFFINITY_CHURN:
    case KT_WORK_POLICY_CHURN:
        msgpack_pack_map(pk, 1);
        kt_mp_pack_kv_u64(pk, "changes", w->changes);
        return;
    case KT_WORK_PAGE_FAULT_CHURN:
        msgpack_pack_map(pk, 1);
        kt_mp_pack_kv_u64(pk, "minflt", w->minflt);
        return;
    case KT_WORK_SEQUENCE:
        msgpack_pack_map(pk, 4);
        kt_mp_pack_kv_u64(pk, "spin_units", w->sequence_units[0]);
        kt_mp_pack_kv_u64(pk, "sleep_units", w->sequence_units[1]);
        kt_mp_pack_kv_u64(pk, "yield_units", w->sequence_units[2]);
        kt_mp_pack_kv_u64(pk, "io_units", w->sequence_units[3]);
        return;
    default:
        msgpack_pack_map(pk, 0);
        return;
    }
}

static void s_pack_worker(msgpack_packer *pk, const kt_worker_stats_t *w, unsigned n_phases,
                          enum kt_work_type type)
{
    double on = kt_worker_on_cpu_pct(w);
    msgpack_pack_map(pk, 24 + (n_phases ? 1 : 0));
    s_pack_type_figures(pk, w, type);
    /* As the kernel had it at the end (SCHED_OTHER 0, FIFO 1, RR 2, BATCH 3,
     * IDLE 5). */
    static const char *const policies[] = {"normal", "fifo", "rr", "batch", "?", "idle"};
    kt_mp_pack_kv_str(pk, "policy",
                      w->policy >= 0 && w->policy <= 5 ? policies[w->policy] : "unknown");
    kt_mp_pack_kv_u64(pk, "rt_priority", w->rt_priority);
    if (n_phases) {
        /* Steps: the units and CPUs of each phase (kt_timeline.h). */
        kt_mp_pack_str(pk, "phases");
        msgpack_pack_array(pk, n_phases);
        for (unsigned ph = 0; ph < n_phases && ph < KT_MAX_PHASES; ph++) {
            msgpack_pack_map(pk, 3);
            kt_mp_pack_kv_u64(pk, "work_units", w->step_units[ph]);
            s_kv_mask(pk, "cpus_used", &w->step_cpus[ph]);
            kt_mp_pack_kv_double(pk, "cpu_time_ms", (double)w->step_cpu_ns[ph] / 1e6);
        }
    }
    kt_mp_pack_kv_u64(pk, "index", w->index);
    kt_mp_pack_kv_i64(pk, "pid", w->pid);
    kt_mp_pack_kv_u64(pk, "work_units", w->work_units);
    kt_mp_pack_kv_double(pk, "cpu_time_ms", (double)w->cpu_time_ns / 1e6);
    kt_mp_pack_kv_double(pk, "wall_time_ms", (double)w->wall_time_ns / 1e6);
    kt_mp_pack_kv_double(pk, "on_cpu_pct", on);
    kt_mp_pack_kv_double(pk, "off_cpu_pct", 100.0 - on);
    kt_mp_pack_kv_double(pk, "max_gap_ms", (double)w->max_gap_ns / 1e6);
    s_kv_mask(pk, "cpus_used", &w->cpus_used);
    kt_mp_pack_kv_u64(pk, "migrations", w->migrations);
    kt_mp_pack_kv_u64(pk, "wake_count", w->wake_count);
    kt_mp_pack_kv_double(pk, "wake_p50_us", (double)w->wake_lat_p50_ns / 1e3);
    kt_mp_pack_kv_double(pk, "wake_p99_us", (double)w->wake_lat_p99_ns / 1e3);
    kt_mp_pack_kv_double(pk, "wake_max_us", (double)w->wake_lat_max_ns / 1e3);
    kt_mp_pack_kv_double(pk, "run_delay_ms", (double)w->run_delay_ns / 1e6);
    kt_mp_pack_kv_u64(pk, "timeslices", w->timeslices);
    kt_mp_pack_kv_u64(pk, "voluntary_ctxsw", w->voluntary_ctxsw);
    kt_mp_pack_kv_u64(pk, "involuntary_ctxsw", w->involuntary_ctxsw);
    kt_mp_pack_kv_u64(pk, "iterations", w->iterations);
    double mean = w->wake_count ? (double)w->wake_lat_sum_ns / (double)w->wake_count : 0.0;
    double var = w->wake_count ? w->wake_lat_sumsq / (double)w->wake_count - mean * mean : 0.0;
    kt_mp_pack_kv_double(pk, "wake_mean_us", mean / 1e3);
    kt_mp_pack_kv_double(pk, "wake_cv", mean > 0 && var > 0 ? sqrt(var) / mean : 0.0);
}

/* "thresholds": per check, whether it is on, its value and unit, and where
 * the value came from (kt_thresholds_source); the two default checks with
 * an on/off of their own say where that came from too (on_source). */
static void s_pack_thresholds(msgpack_packer *pk, const kt_thresholds_t *t)
{
    if (!t) {
        msgpack_pack_map(pk, 0);
        return;
    }
    const struct {
        enum kt_thr_field field, on_field;
        bool on;
        double value;
        const char *unit;
    } e[] = {
        {KT_THR_STARVED, KT_THR__COUNT, t->check_starved, 1, "units"},
        {KT_THR_ISOLATION, KT_THR__COUNT, t->check_isolation, 0, "cpus"},
        {KT_THR_SPREAD, KT_THR_SPREAD_ON, t->check_spread, t->max_spread_pct, "pct"},
        {KT_THR_GAP, KT_THR_GAP_ON, t->check_gap, t->max_gap_ms, "ms"},
        {KT_THR_WAKE_P99, KT_THR__COUNT, t->max_p99_wake_us > 0, t->max_p99_wake_us, "us"},
        {KT_THR_WORK_RATE, KT_THR__COUNT, t->min_work_rate > 0, t->min_work_rate, "units/s"},
        {KT_THR_CALLBACK_NS, KT_THR__COUNT, kt_checks_bpf_bounded(t), t->max_callback_ns, "ns"},
        {KT_THR_WAKE_CV, KT_THR__COUNT, t->max_wake_cv > 0, t->max_wake_cv, "cv"},
        {KT_THR_THROUGHPUT_CV, KT_THR__COUNT, t->max_throughput_cv > 0, t->max_throughput_cv,
         "cv"},
        {KT_THR_ITERATION_RATE, KT_THR__COUNT, t->min_iteration_rate > 0, t->min_iteration_rate,
         "iter/s"},
        {KT_THR_MIGRATION_RATIO, KT_THR__COUNT, t->max_migration_ratio > 0,
         t->max_migration_ratio, "ratio"},
    };
    msgpack_pack_map(pk, KT_ARRAY_SIZE(e));
    for (size_t i = 0; i < KT_ARRAY_SIZE(e); i++) {
        bool has_on = e[i].on_field != KT_THR__COUNT;
        kt_mp_pack_str(pk, kt_thr_field_name(e[i].field));
        msgpack_pack_map(pk, 4 + has_on);
        kt_mp_pack_kv_bool(pk, "on", e[i].on);
        kt_mp_pack_kv_double(pk, "value", e[i].value);
        kt_mp_pack_kv_str(pk, "unit", e[i].unit);
        kt_mp_pack_kv_str(pk, "source", kt_thr_source_name(kt_thresholds_source(t, e[i].field)));
        if (has_on)
            kt_mp_pack_kv_str(pk, "on_source",
                              kt_thr_source_name(kt_thresholds_source(t, e[i].on_field)));
    }
}

static void s_pack_cgroups(msgpack_packer *pk, const kt_guest_result_t *r)
{
    if (!r->plan || !r->stats) {
        msgpack_pack_array(pk, 0);
        return;
    }
    const kt_plan_t *plan = r->plan;
    msgpack_pack_array(pk, plan->n_cgroups);
    for (unsigned cg = 0; cg < plan->n_cgroups; cg++) {
        const kt_plan_cgroup_t *c = &plan->cgroups[cg];
        kt_cgroup_summary_t sum;
        kt_cgroup_summarize(plan, cg, r->stats, r->n_stats, &sum);
        msgpack_pack_map(pk, 11);
        kt_mp_pack_kv_str(pk, "name", c->name);
        if (c->has_cpuset)
            s_kv_mask(pk, "cpuset", &c->cpus);
        else
            kt_mp_pack_kv_str(pk, "cpuset", "");
        kt_mp_pack_kv_str(pk, "work_type", kt_work_type_name(c->work));
        kt_mp_pack_kv_u64(pk, "workers", sum.workers);
        kt_mp_pack_kv_u64(pk, "work_units", sum.work_units);
        kt_mp_pack_kv_double(pk, "spread_pct", sum.spread_pct);
        kt_mp_pack_kv_double(pk, "min_on_cpu_pct", sum.min_on_cpu_pct);
        kt_mp_pack_kv_double(pk, "max_on_cpu_pct", sum.max_on_cpu_pct);
        kt_mp_pack_kv_double(pk, "max_gap_ms", (double)sum.max_gap_ns / 1e6);
        s_kv_mask(pk, "cpus_used", &sum.cpus_used);
        kt_mp_pack_str(pk, "worker_stats");
        msgpack_pack_array(pk, sum.workers);
        for (size_t i = 0; i < r->n_stats; i++)
            if (r->stats[i].cgroup == cg)
                s_pack_worker(pk, &r->stats[i],
                              kt_plan_has_timeline(plan) ? plan->n_steps + 1 : 0, c->work);
    }
}

static void s_pack_checks(msgpack_packer *pk, const kt_guest_result_t *r)
{
    const kt_check_report_t *rep = r->report;
    unsigned n = rep ? rep->n_results : 0;
    msgpack_pack_array(pk, n);
    for (unsigned i = 0; i < n; i++) {
        const kt_check_result_t *c = &rep->results[i];
        const char *cg = "";
        if (r->plan && c->cgroup >= 0 && (unsigned)c->cgroup < r->plan->n_cgroups)
            cg = r->plan->cgroups[c->cgroup].name;
        msgpack_pack_map(pk, 8);
        kt_mp_pack_kv_str(pk, "name", kt_check_name(c->id));
        kt_mp_pack_kv_str(pk, "cgroup", cg);
        kt_mp_pack_kv_i64(pk, "worker", c->worker);
        kt_mp_pack_kv_bool(pk, "passed", c->passed);
        kt_mp_pack_kv_double(pk, "measured", c->measured);
        kt_mp_pack_kv_double(pk, "threshold", c->threshold);
        s_kv_str(pk, "unit", c->unit);
        s_kv_str(pk, "detail", c->detail);
    }
}

/* The payload's outcome (worker/guest/README.md, "payload"). */
static void s_pack_payload(msgpack_packer *pk, const kt_guest_payload_t *p)
{
    const kt_payload_spec_t *spec = kt_guest_payload_spec(p);
    const kt_payload_outcome_t *o = kt_guest_payload_outcome(p);
    msgpack_pack_map(pk, 17);
    s_kv_str(pk, "name", spec->name);
    kt_mp_pack_str(pk, "args");
    msgpack_pack_array(pk, spec->n_args);
    for (unsigned i = 0; i < spec->n_args; i++)
        s_str(pk, kt_payload_arg(spec, i));
    kt_mp_pack_kv_bool(pk, "started", o->started);
    kt_mp_pack_kv_i64(pk, "exit_code", o->exit_code);
    kt_mp_pack_kv_i64(pk, "signal", o->signal);
    kt_mp_pack_kv_bool(pk, "timed_out", o->timed_out);
    kt_mp_pack_kv_bool(pk, "killed", o->killed);
    kt_mp_pack_kv_double(pk, "wall_ms", o->wall_ms);
    kt_mp_pack_kv_u64(pk, "output_bytes", o->output_bytes);
    kt_mp_pack_kv_u64(pk, "output_dropped", kt_guest_payload_output_dropped(p));
    s_kv_str(pk, "output_head", kt_guest_payload_output_head(p));
    s_kv_str(pk, "output_tail", kt_guest_payload_output_tail(p));
    kt_mp_pack_kv_bool(pk, "json", o->json);
    kt_mp_pack_str(pk, "metrics");
    msgpack_pack_map(pk, o->n_metrics);
    for (unsigned i = 0; i < o->n_metrics; i++) {
        s_str(pk, o->metrics[i].name);
        msgpack_pack_double(pk, o->metrics[i].value);
    }
    kt_mp_pack_kv_bool(pk, "metrics_truncated", o->metrics_truncated);
    kt_mp_pack_kv_str(pk, "judge", spec->judge == KT_PAYLOAD_JUDGE_TAP ? "tap" : "exit");
    kt_mp_pack_str(pk, "tap");
    msgpack_pack_map(pk, 6);
    s_kv_str(pk, "test", spec->tap_test);
    kt_mp_pack_kv_str(pk, "status", kt_payload_tap_status_name(o->tap.status));
    s_kv_str(pk, "line", o->tap.line);
    kt_mp_pack_kv_u64(pk, "pass", o->tap.pass);
    kt_mp_pack_kv_u64(pk, "fail", o->tap.fail);
    kt_mp_pack_kv_u64(pk, "skip", o->tap.skip);
}

/* ---- bpf: the programs' deltas over the workload phase and their sum over
 * the struct_ops programs (worker/guest/README.md, "bpf_progs") ---- */
static void s_pack_bpf(msgpack_packer *pk, const kt_guest_bpf_t *b)
{
    unsigned n = b ? b->n_progs : 0;
    kt_mp_pack_str(pk, "bpf_progs");
    msgpack_pack_array(pk, n);
    for (unsigned i = 0; i < n; i++) {
        const kt_bpf_prog_cost_t *p = &b->progs[i];
        msgpack_pack_map(pk, 6);
        s_kv_str(pk, "name", p->name);
        s_kv_str(pk, "type", p->type);
        kt_mp_pack_kv_u64(pk, "verified_insns", p->verified_insns);
        kt_mp_pack_kv_u64(pk, "run_cnt", p->run_cnt);
        kt_mp_pack_kv_u64(pk, "run_time_ns", p->run_time_ns);
        kt_mp_pack_kv_double(pk, "ns_per_call", kt_bpf_prog_ns_per_call(p));
    }
    kt_mp_pack_str(pk, "bpf_stats");
    msgpack_pack_map(pk, 11);
    kt_mp_pack_kv_bool(pk, "measured", b && b->measured);
    s_kv_str(pk, "stats_by", b ? b->stats_by : "");
    s_kv_str(pk, "error", !b ? "not measured: the workload phase did not end" : b->error);
    kt_mp_pack_kv_u64(pk, "progs", n);
    kt_mp_pack_kv_u64(pk, "unloaded", b ? b->unloaded : 0);
    kt_mp_pack_kv_bool(pk, "truncated", b && b->truncated);
    kt_mp_pack_kv_double(pk, "interval_ms", b ? b->interval_ms : 0.0);
    kt_mp_pack_kv_u64(pk, "struct_ops_progs", b ? b->n_struct_ops : 0);
    kt_mp_pack_kv_u64(pk, "struct_ops_calls", b ? b->struct_ops_calls : 0);
    kt_mp_pack_kv_u64(pk, "struct_ops_run_time_ns", b ? b->struct_ops_run_time_ns : 0);
    kt_mp_pack_kv_double(pk, "ns_per_call", b ? kt_guest_bpf_struct_ops_ns_per_call(b) : 0.0);
}

/* The kernel's report of the scheduler's exit, or nil when it gave none. */
static void s_pack_scx_exit(msgpack_packer *pk, const kt_scx_exit_t *e)
{
    if (!e->seen) {
        msgpack_pack_nil(pk);
        return;
    }
    msgpack_pack_map(pk, 6);
    s_kv_str(pk, "kind", e->kind);
    kt_mp_pack_kv_bool(pk, "error", e->error);
    s_kv_str(pk, "message", e->message);
    kt_mp_pack_str(pk, "backtrace");
    msgpack_pack_array(pk, e->n_bt);
    for (unsigned i = 0; i < e->n_bt; i++)
        s_str(pk, e->bt[i]);
    kt_mp_pack_kv_bool(pk, "backtrace_truncated", e->bt_truncated);
    kt_mp_pack_kv_double(pk, "kernel_ts_ms", (double)e->ts_us / 1000.0);
}

int kt_guest_result_pack(const kt_guest_result_t *r, msgpack_sbuffer *out)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    unsigned n_keys = 17; /* 14 + bpf_progs, bpf_stats, thresholds */
    n_keys += r->payload != NULL;
    msgpack_pack_map(&pk, n_keys);
    kt_mp_pack_kv_str(&pk, "t", "result");
    kt_mp_pack_kv_str(&pk, "verdict", kt_verdict_name(r->verdict));
    s_kv_str(&pk, "reason", r->verdict == KT_VERDICT_PASS ? "" : r->reason);
    kt_mp_pack_kv_str(&pk, "phase", r->phase ? r->phase : "channel");
    s_kv_str(&pk, "kernel", r->kernel);
    kt_mp_pack_kv_bool(&pk, "debug_kernel", r->debug_kernel);

    kt_mp_pack_str(&pk, "observed_topology");
    s_pack_topo(&pk, &r->topo);

    kt_mp_pack_str(&pk, "scheduler");
    msgpack_pack_map(&pk, 8);
    s_kv_str(&pk, "name", r->sched.name);
    s_kv_str(&pk, "ops", r->sched.ops);
    s_kv_str(&pk, "state", r->sched.state[0] ? r->sched.state : "none");
    kt_mp_pack_kv_double(&pk, "enable_ms", r->sched.enable_ms);
    kt_mp_pack_kv_bool(&pk, "exited", r->sched.exited);
    kt_mp_pack_kv_i64(&pk, "exit_status", r->sched.exit_status);
    s_kv_str(&pk, "output", r->sched.output);
    kt_mp_pack_str(&pk, "exit");
    s_pack_scx_exit(&pk, &r->sched.exit);

    kt_mp_pack_str(&pk, "kernel_log");
    msgpack_pack_array(&pk, r->n_klog);
    for (unsigned i = 0; i < r->n_klog; i++)
        s_str(&pk, r->klog[i]);

    kt_mp_pack_str(&pk, "cgroups");
    s_pack_cgroups(&pk, r);
    kt_mp_pack_str(&pk, "checks");
    s_pack_checks(&pk, r);
    kt_mp_pack_kv_u64(&pk, "failed_checks", r->report ? r->report->n_failed : 0);
    kt_mp_pack_str(&pk, "thresholds");
    s_pack_thresholds(&pk, r->thresholds);

    kt_mp_pack_str(&pk, "timeline");
    msgpack_pack_array(&pk, r->n_timeline);
    for (unsigned i = 0; i < r->n_timeline; i++) {
        const kt_guest_event_t *e = &r->timeline[i];
        msgpack_pack_map(&pk, e->op[0] ? 7 : 2);
        kt_mp_pack_kv_u64(&pk, "ms", e->ms);
        s_kv_str(&pk, "event", e->text);
        if (e->op[0]) {
            kt_mp_pack_kv_str(&pk, "kind", "stimulus");
            kt_mp_pack_kv_u64(&pk, "step", (uint64_t)e->step);
            kt_mp_pack_kv_u64(&pk, "phase", e->phase);
            kt_mp_pack_kv_str(&pk, "op", e->op);
            s_kv_str(&pk, "cgroup", e->cgroup);
        }
    }

    kt_mp_pack_str(&pk, "durations");
    msgpack_pack_map(&pk, 4);
    kt_mp_pack_kv_double(&pk, "sched_enable_ms", r->durations.sched_enable_ms);
    kt_mp_pack_kv_double(&pk, "settle_ms", r->durations.settle_ms);
    kt_mp_pack_kv_double(&pk, "workload_ms", r->durations.workload_ms);
    kt_mp_pack_kv_double(&pk, "collect_ms", r->durations.collect_ms);
    s_pack_bpf(&pk, r->bpf);
    if (r->payload) {
        kt_mp_pack_str(&pk, "payload");
        s_pack_payload(&pk, r->payload);
    }
    return out->data ? 0 : -ENOMEM;
}

int kt_guest_hello_pack(const kt_guest_topo_t *t, const char *kernel, bool debug_kernel,
                        msgpack_sbuffer *out)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 5);
    kt_mp_pack_kv_str(&pk, "t", "hello");
    kt_mp_pack_str(&pk, "topology");
    s_pack_topo(&pk, t);
    kt_mp_pack_kv_u64(&pk, "cpus_online", t->cpus);
    s_kv_str(&pk, "kernel", kernel);
    kt_mp_pack_kv_bool(&pk, "debug_kernel", debug_kernel);
    return out->data ? 0 : -ENOMEM;
}

int kt_guest_hb_pack(uint64_t uptime_ms, msgpack_sbuffer *out)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    kt_mp_pack_kv_str(&pk, "t", "hb");
    kt_mp_pack_kv_u64(&pk, "ms", uptime_ms);
    return out->data ? 0 : -ENOMEM;
}

int kt_guest_event_pack(uint64_t uptime_ms, const char *phase, const char *msg,
                        msgpack_sbuffer *out)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 4);
    kt_mp_pack_kv_str(&pk, "t", "event");
    kt_mp_pack_kv_u64(&pk, "ms", uptime_ms);
    kt_mp_pack_kv_str(&pk, "phase", phase);
    s_kv_str(&pk, "msg", msg);
    return out->data ? 0 : -ENOMEM;
}
