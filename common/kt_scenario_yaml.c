/* YAML scenario files, read with libfyaml onto kt_scenario_t.
 *
 *   name: my_scenario              required, [A-Za-z0-9_.-]{1,63}
 *   description: "..."             optional, < KT_DESC_MAX bytes
 *   duration: 3s                   optional, 5s by default
 *   memory_mib: 512                optional
 *   constraints: {min_llcs, max_llcs, min_cpus, max_cpus, min_numa, max_numa, requires_smt}
 *   checks: {not_starved, cpuset_isolation, fairness_spread, max_gap, wake_p99, work_rate,
 *            bpf_callback_ns, wake_cv, throughput_cv, iteration_rate, migration_ratio}
 *                                  a key given overrides the layer below (defaults, then
 *                                  the gauntlet scheduler's checks); false switches off
 *   cgroups:                       required, 1..KT_MAX_CGROUPS entries
 *     - name: cg_0                 required
 *       cpuset: all                all | llc:N | node:N | per-llc | kernel CPU list
 *       workers: 4                 exactly one of workers / workers_per_cpu
 *       work: spin                 optional, spin by default
 *       policy: normal             optional: normal | batch | idle | fifo | rr
 *       nice: 0                    optional: -20..19
 *       rt_priority: 10            fifo / rr only: 1..96 (ktstr-init's threads are above)
 *       affinity: inherit          inherit | random:N | llc | cross-cgroup | single | exact:LIST
 *       deferred: false            true: created mid-run by an add_cgroup op
 *   faults:                        optional, 0..KT_MAX_FAULTS entries
 *     - {cgroup: cg_0, worker: 0, at: 0ms}
 *   steps:                         optional, 0..KT_MAX_STEPS entries, in order
 *     - ops: [{op: set_cpuset, cgroup: cg_0, cpuset: disjoint:0/2}, ...]
 *       hold: 0.5                  a fraction of the duration, 2s, or loop:500ms (last step)
 *   ops: add_cgroup, remove_cgroup, set_cpuset (cpuset:), clear_cpuset,
 *     swap_cpusets (target:), spawn (workers:), stop, set_affinity (affinity:),
 *     move_tasks (target:); each names its cgroup with cgroup:
 *   cpusets also: range:LO..HI, disjoint:I/N, overlap:I/N:F; cgroup names nest
 *   with '/' ("parent/child": the parent holds no workers) 
 *   payload:                       optional: a static binary run beside the workers
 *     binary: ./bench              required, relative to this file
 *     args: ["-n", "4"]            or one string, split on blanks
 *     checks: ["ops>=1000", "exit==0", "lat.p99=1..5"]
 *     judge: exit                  exit | tap; tap_test: NAME (tap only)
 *     timeout: 30s                 output_bytes: N
 *   with a payload, cgroups may be left out or empty: the payload is the workload
 *
 * Unknown keys, wrong types and out-of-range values are errors; every error
 * reads "FILE:LINE:COL: path: what is wrong" (1-based line and column). Numbers
 * and booleans must be plain scalars ("4" in quotes is a string). Aliases are
 * followed; every collection the walk enters is bounded, so aliases cannot
 * blow the walk up. */
#include "kt_scenario_yaml.h"

#include <ctype.h>
#include <errno.h>
#include <libfyaml.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kt_checks.h"
#include "kt_cleanup.h"
#include "kt_fileio.h"
#include "kt_yaml.h"

#define S_PATH_MAX 96
/* Bounds of the values; the wire decoder (proto/kt_chanmsg.c) uses the same. */
#define S_MAX_DURATION_MS (24u * 3600u * 1000u)
#define S_MAX_GAP_MS 3600000u
#define S_MAX_WAKE_US 3600000000u
#define S_MAX_WORK_RATE 1e12
#define S_MAX_CV 1000.0
#define S_MAX_MIGRATION_RATIO 1e6
#define S_MAX_MEMORY_MIB (1u << 20)

/* A string value that must fit buf. */
static int s_string(kt_yaml_ctx_t *c, struct fy_node *n, struct fy_node *key, const char *path,
                    const char *what, char *buf, size_t buf_len)
{
    bool fits;
    int r = kt_yaml_value(c, n, key, path, what, buf, buf_len, &fits, NULL);
    if (r < 0)
        return r;
    if (!fits)
        return kt_yaml_fail(c, n, key, "%s: longer than %zu bytes", path, buf_len - 1);
    return 0;
}

static int s_bool(kt_yaml_ctx_t *c, struct fy_node *n, struct fy_node *key, const char *path,
                  bool *ret)
{
    char buf[40];
    bool fits;
    int r = kt_yaml_value(c, n, key, path, "true or false", buf, sizeof(buf), &fits, NULL);
    if (r < 0)
        return r;
    if (!kt_yaml_is_bool(n, ret))
        return kt_yaml_fail(c, n, key, "%s: expected true or false, got '%s%s'", path, buf,
                            fits ? "" : "...");
    return 0;
}

static int s_int(kt_yaml_ctx_t *c, struct fy_node *n, struct fy_node *key, const char *path,
                 long long lo, long long hi, long long *ret)
{
    char buf[40];
    bool fits, plain;
    int r = kt_yaml_value(c, n, key, path, "an integer", buf, sizeof(buf), &fits, &plain);
    if (r < 0)
        return r;
    const char *p = buf;
    if (*p == '-' || *p == '+')
        p++;
    bool ok = fits && plain && *p && strspn(p, "0123456789") == strlen(p);
    if (!ok)
        return kt_yaml_fail(c, n, key, "%s: expected an integer, got %s'%s%s'", path,
                            plain ? "" : "the string ", buf, fits ? "" : "...");
    errno = 0;
    long long v = strtoll(buf, NULL, 10);
    if (errno == ERANGE || v < lo || v > hi)
        return kt_yaml_fail(c, n, key, "%s: %s is out of range %lld..%lld", path, buf, lo, hi);
    *ret = v;
    return 0;
}

static int s_uint(kt_yaml_ctx_t *c, struct fy_node *n, struct fy_node *key, const char *path,
                  unsigned lo, unsigned hi, unsigned *ret)
{
    long long v;
    int r = s_int(c, n, key, path, lo, hi, &v);
    if (r < 0)
        return r;
    *ret = (unsigned)v;
    return 0;
}

static int s_number(kt_yaml_ctx_t *c, struct fy_node *n, struct fy_node *key, const char *path,
                    double lo, double hi, double *ret)
{
    char buf[40];
    bool fits, plain;
    int r = kt_yaml_value(c, n, key, path, "a number", buf, sizeof(buf), &fits, &plain);
    if (r < 0)
        return r;
    /* Decimal notation only: no hex, inf or nan. */
    bool ok = fits && plain && strspn(buf, "0123456789.eE+-") == strlen(buf) &&
              strpbrk(buf, "0123456789");
    double v = 0;
    if (ok) {
        char *end;
        errno = 0;
        v = strtod(buf, &end);
        ok = *end == '\0' && errno != ERANGE && isfinite(v);
    }
    if (!ok)
        return kt_yaml_fail(c, n, key, "%s: expected a number, got %s'%s%s'", path,
                            plain ? "" : "the string ", buf, fits ? "" : "...");
    if (v < lo || v > hi)
        return kt_yaml_fail(c, n, key, "%s: %s is out of range %g..%g", path, buf, lo, hi);
    *ret = v;
    return 0;
}

/* "12", "1.5" with a unit worth unit_us microseconds, exactly, or -EINVAL. */
static int s_decimal_us(const char *num, size_t len, uint64_t unit_us, uint64_t *ret)
{
    uint64_t ip = 0, fp = 0, scale = 1;
    size_t i = 0, nint = 0, nfrac = 0;
    for (; i < len && isdigit((unsigned char)num[i]); i++, nint++) {
        if (nint >= 12)
            return -ERANGE;
        ip = ip * 10 + (uint64_t)(num[i] - '0');
    }
    if (i < len && num[i] == '.') {
        for (i++; i < len && isdigit((unsigned char)num[i]); i++, nfrac++) {
            if (nfrac >= 9)
                return -EINVAL;
            fp = fp * 10 + (uint64_t)(num[i] - '0');
            scale *= 10;
        }
        if (nfrac == 0)
            return -EINVAL;
    }
    if (i != len || nint == 0)
        return -EINVAL;
    /* ip < 1e12 and unit_us <= 3.6e9: check before multiplying. */
    if (ip > UINT64_MAX / unit_us)
        return -ERANGE;
    uint64_t frac = fp * unit_us;
    if (fp && frac / fp != unit_us)
        return -ERANGE;
    if (frac % scale)
        return -EINVAL;
    *ret = ip * unit_us + frac / scale;
    return 0;
}

/* A duration in microseconds. Units: us (when allow_us), ms, s, m, h; a bare
 * number counts bare_unit_us each (0: a unit is required). */
static int s_duration_us(const char *text, bool allow_us, uint64_t bare_unit_us, uint64_t *ret)
{
    static const struct {
        const char *suffix;
        uint64_t us;
    } units[] = {{"us", 1}, {"ms", 1000}, {"s", 1000000}, {"m", 60000000}, {"h", 3600000000ull}};
    size_t len = strlen(text);
    size_t num_len = strspn(text, "0123456789.");
    const char *suffix = text + num_len;
    uint64_t unit = 0;
    if (*suffix == '\0') {
        unit = bare_unit_us;
    } else {
        for (size_t i = 0; i < KT_ARRAY_SIZE(units); i++) {
            if (strcmp(suffix, units[i].suffix) == 0 && (allow_us || units[i].us != 1)) {
                unit = units[i].us;
                break;
            }
        }
    }
    if (unit == 0 || num_len == 0 || num_len > len)
        return -EINVAL;
    return s_decimal_us(text, num_len, unit, ret);
}

int kt_duration_parse_ms(const char *text, uint32_t *ret_ms)
{
    uint64_t us;
    if (!text)
        return -EINVAL;
    int r = s_duration_us(text, false, 1000, &us);
    if (r < 0)
        return r;
    if (us % 1000)
        return -EINVAL;
    if (us / 1000 > UINT32_MAX)
        return -ERANGE;
    *ret_ms = (uint32_t)(us / 1000);
    return 0;
}

static int s_duration_ms(kt_yaml_ctx_t *c, struct fy_node *n, struct fy_node *key, const char *path,
                         uint32_t lo, uint32_t hi, uint32_t *ret)
{
    char buf[40];
    bool fits;
    int r = kt_yaml_value(c, n, key, path, "a duration", buf, sizeof(buf), &fits, NULL);
    if (r < 0)
        return r;
    uint32_t ms;
    r = fits ? kt_duration_parse_ms(buf, &ms) : -EINVAL;
    if (r == -ERANGE || (r == 0 && (ms < lo || ms > hi)))
        return kt_yaml_fail(c, n, key, "%s: '%s' is out of range %ums..%ums", path, buf, lo, hi);
    if (r < 0)
        return kt_yaml_fail(c, n, key,
                            "%s: '%s' is not a duration (a whole number of ms, or with a unit: "
                            "250ms, 3s, 1.5s, 2m, 1h)",
                            path, buf);
    *ret = ms;
    return 0;
}

static int s_cgroup_name(kt_yaml_ctx_t *c, struct fy_node *n, struct fy_node *key, const char *path,
                         char *buf, size_t len)
{
    char tmp[KT_NAME_MAX + 16];
    bool fits;
    int r = kt_yaml_value(c, n, key, path, "a cgroup name", tmp, sizeof(tmp), &fits, NULL);
    if (r < 0)
        return r;
    if (!fits || !kt_cgroup_name_valid(tmp))
        return kt_yaml_fail(c, n, key,
                            "%s: '%s%s' is not a valid cgroup name (names of A-Z a-z 0-9 _ . -, "
                            "nested ones joined by '/', at most %d bytes)",
                            path, tmp, fits ? "" : "...", KT_NAME_MAX - 1);
    snprintf(buf, len, "%.*s", KT_NAME_MAX - 1, tmp);
    return 0;
}

static int s_name(kt_yaml_ctx_t *c, struct fy_node *n, struct fy_node *key, const char *path,
                  char *buf, size_t len)
{
    char tmp[KT_NAME_MAX + 16];
    bool fits;
    int r = kt_yaml_value(c, n, key, path, "a name", tmp, sizeof(tmp), &fits, NULL);
    if (r < 0)
        return r;
    if (!fits || !kt_name_valid(tmp))
        return kt_yaml_fail(
            c, n, key, "%s: '%s%s' is not a valid name (1 to %d of A-Z a-z 0-9 _ . -, not . or ..)",
            path, tmp, fits ? "" : "...", KT_NAME_MAX - 1);
    snprintf(buf, len, "%.*s", KT_NAME_MAX - 1, tmp);
    return 0;
}

static int s_cpuset(kt_yaml_ctx_t *c, struct fy_node *n, struct fy_node *key, const char *path,
                    kt_cpuset_spec_t *ret)
{
    char buf[sizeof(ret->list)];
    int r = s_string(c, n, key, path, "a cpuset", buf, sizeof(buf));
    if (r < 0)
        return r;
    kt_cpuset_spec_t cs = {0};
    if (strcmp(buf, "all") == 0) {
        cs.kind = KT_CPUSET_ALL;
    } else if (strcmp(buf, "per-llc") == 0 || strcmp(buf, "per_llc") == 0) {
        cs.kind = KT_CPUSET_PER_LLC;
    } else if (strncmp(buf, "llc:", 4) == 0 || strncmp(buf, "node:", 5) == 0) {
        bool llc = buf[0] == 'l';
        const char *num = buf + (llc ? 4 : 5);
        size_t nd = strspn(num, "0123456789");
        unsigned long v = nd && nd <= 4 && !num[nd] ? strtoul(num, NULL, 10) : KT_MAX_CPUS;
        if (v >= KT_MAX_CPUS)
            return kt_yaml_fail(c, n, key, "%s: '%s': expected %s:N with N in 0..%d", path, buf,
                                llc ? "llc" : "node", KT_MAX_CPUS - 1);
        cs.kind = llc ? KT_CPUSET_LLC : KT_CPUSET_NODE;
        cs.index = (unsigned)v;
    } else if (strncmp(buf, "range:", 6) == 0) {
        /* range:LO..HI, fractions of the CPU count. */
        char *dots = strstr(buf + 6, "..");
        char *end1 = NULL, *end2 = NULL;
        if (dots) {
            *dots = '\0';
            cs.lo = strtod(buf + 6, &end1);
            cs.hi = strtod(dots + 2, &end2);
            *dots = '.';
        }
        if (!dots || end1 != dots || end1 == buf + 6 || !end2 || *end2 || end2 == dots + 2 ||
            !(cs.lo >= 0.0 && cs.hi <= 1.0 && cs.lo < cs.hi))
            return kt_yaml_fail(c, n, key,
                                "%s: '%s': expected range:LO..HI, fractions of the CPUs with "
                                "0 <= LO < HI <= 1 (e.g. range:0..0.5)",
                                path, buf);
        cs.kind = KT_CPUSET_RANGE;
    } else if (strncmp(buf, "disjoint:", 9) == 0 || strncmp(buf, "overlap:", 8) == 0) {
        /* disjoint:I/N, overlap:I/N:F */
        bool ov = buf[0] == 'o';
        const char *q = buf + (ov ? 8 : 9);
        unsigned i = 0, of = 0;
        int used = 0;
        bool ok = sscanf(q, "%3u/%3u%n", &i, &of, &used) == 2 && of >= 1 && i < of &&
                  isdigit((unsigned char)q[0]);
        if (ok && ov) {
            char *end = NULL;
            ok = q[used] == ':' && isdigit((unsigned char)q[used + 1]);
            if (ok)
                cs.overlap = strtod(q + used + 1, &end);
            ok = ok && end && !*end && cs.overlap > 0.0 && cs.overlap <= 1.0;
        } else if (ok) {
            ok = q[used] == '\0';
        }
        if (!ok)
            return kt_yaml_fail(
                c, n, key,
                ov ? "%s: '%s': expected overlap:I/N:F, slice I of N widened by F of a "
                     "slice each side (0 < F <= 1, e.g. overlap:0/2:0.5)"
                   : "%s: '%s': expected disjoint:I/N, slice I of N equal slices (e.g. "
                     "disjoint:1/2)",
                path, buf);
        cs.kind = ov ? KT_CPUSET_OVERLAP : KT_CPUSET_DISJOINT;
        cs.index = i;
        cs.of = of;
    } else {
        kt_cpumask_t m;
        const char *list = strncmp(buf, "exact:", 6) == 0 ? buf + 6 : buf;
        memmove(buf, list, strlen(list) + 1);
        /* Digits, commas and dashes only: kt_cpumask_parse also takes the
         * blanks and newline of sysfs text, which have no place here. */
        r = strspn(buf, "0123456789,-") == strlen(buf) ? kt_cpumask_parse(buf, &m) : -EINVAL;
        if (r == -ERANGE)
            return kt_yaml_fail(c, n, key, "%s: CPU list '%s' names a CPU over %d", path, buf,
                                KT_MAX_CPUS - 1);
        if (r < 0 || kt_cpumask_empty(&m))
            return kt_yaml_fail(
                c, n, key,
                "%s: '%s' is not a cpuset (all, llc:N, node:N, per-llc, range:LO..HI, "
                "disjoint:I/N, overlap:I/N:F, or a CPU list such as 0-3,6)",
                path, buf);
        cs.kind = KT_CPUSET_LIST;
        snprintf(cs.list, sizeof(cs.list), "%s", buf);
    }
    *ret = cs;
    return 0;
}

static int s_work(kt_yaml_ctx_t *c, struct fy_node *n, struct fy_node *key, const char *path,
                  enum kt_work_type *ret)
{
    char buf[40];
    bool fits;
    int r = kt_yaml_value(c, n, key, path, "a work type", buf, sizeof(buf), &fits, NULL);
    if (r < 0)
        return r;
    if (fits && kt_work_type_parse(buf, ret) == 0)
        return 0;
    char known[256] = "";
    size_t off = 0;
    for (unsigned i = 0; i < KT_WORK__COUNT && off < sizeof(known); i++)
        off += (size_t)snprintf(known + off, sizeof(known) - off, "%s%s", i ? ", " : "",
                                kt_work_type_name((enum kt_work_type)i));
    return kt_yaml_fail(c, n, key, "%s: unknown work type '%s%s' (known: %s)", path, buf,
                        fits ? "" : "...", known);
}

static int s_policy(kt_yaml_ctx_t *c, struct fy_node *n, struct fy_node *key, const char *path,
                    enum kt_sched_policy *ret)
{
    char buf[40];
    bool fits;
    int r = kt_yaml_value(c, n, key, path, "a policy", buf, sizeof(buf), &fits, NULL);
    if (r < 0)
        return r;
    if (fits && kt_sched_policy_parse(buf, ret) == 0)
        return 0;
    return kt_yaml_fail(c, n, key,
                        "%s: unknown policy '%s%s' (known: normal, batch, idle, fifo, rr)", path,
                        buf, fits ? "" : "...");
}

/* inherit | random:N | llc | cross-cgroup | single | exact:LIST */
static int s_affinity(kt_yaml_ctx_t *c, struct fy_node *n, struct fy_node *key, const char *path,
                      kt_affinity_spec_t *ret)
{
    char buf[sizeof(ret->list) + 8];
    int r = s_string(c, n, key, path, "an affinity", buf, sizeof(buf));
    if (r < 0)
        return r;
    kt_affinity_spec_t a = {0};
    if (strncmp(buf, "random:", 7) == 0) {
        const char *num = buf + 7;
        size_t nd = strspn(num, "0123456789");
        unsigned long v = nd && nd <= 4 && !num[nd] ? strtoul(num, NULL, 10) : 0;
        if (v < 1 || v > KT_MAX_CPUS)
            return kt_yaml_fail(c, n, key, "%s: '%s': expected random:N with N in 1..%d CPUs", path,
                                buf, KT_MAX_CPUS);
        a.kind = KT_AFFINITY_RANDOM;
        a.count = (unsigned)v;
    } else if (strncmp(buf, "exact:", 6) == 0) {
        kt_cpumask_t m;
        const char *list = buf + 6;
        if (strspn(list, "0123456789,-") != strlen(list) || kt_cpumask_parse(list, &m) < 0 ||
            kt_cpumask_empty(&m))
            return kt_yaml_fail(
                c, n, key, "%s: '%s': expected exact:LIST, a CPU list such as 0-3,6", path, buf);
        a.kind = KT_AFFINITY_EXACT;
        snprintf(a.list, sizeof(a.list), "%s", list);
    } else {
        unsigned i = 0;
        for (; i < KT_AFFINITY__COUNT; i++)
            if (i != KT_AFFINITY_RANDOM && i != KT_AFFINITY_EXACT &&
                strcmp(buf, kt_affinity_kind_name((enum kt_affinity_kind)i)) == 0)
                break;
        if (i == KT_AFFINITY__COUNT)
            return kt_yaml_fail(c, n, key,
                                "%s: unknown affinity '%s' (known: inherit, random:N, llc, "
                                "cross-cgroup, single, exact:LIST)",
                                path, buf);
        a.kind = (enum kt_affinity_kind)i;
    }
    *ret = a;
    return 0;
}

static int s_cgroup(kt_yaml_ctx_t *c, struct fy_node *n, struct fy_node *seq, unsigned idx,
                    kt_cgroup_spec_t *ret)
{
    char path[32], sub[S_PATH_MAX];
    snprintf(path, sizeof(path), "cgroups[%u]", idx);
    kt_yaml_field_t f[] = {{"name"},     {"cpuset"},  {"workers"},     {"workers_per_cpu"},
                           {"work"},     {"policy"},  {"rt_priority"}, {"nice"},
                           {"affinity"}, {"deferred"}};
    int r = kt_yaml_fields(c, n, seq, path, "cgroup", f, KT_ARRAY_SIZE(f));
    if (r < 0)
        return r;
    kt_cgroup_spec_t cg = {0};
    kt_yaml_field_t *x;
#define S_SUB(key) (snprintf(sub, sizeof(sub), "%s.%s", path, (key)), sub)
    if (!(x = KT_YAML_F(f, "name")))
        return kt_yaml_fail(c, n, seq, "%s: missing key 'name'", path);
    if ((r = s_cgroup_name(c, x->value, x->key, S_SUB("name"), cg.name, sizeof(cg.name))) < 0)
        return r;
    if ((x = KT_YAML_F(f, "rt_priority")) &&
        (r = s_uint(c, x->value, x->key, S_SUB("rt_priority"), 1, KT_RT_PRIORITY_MAX,
                    &cg.rt_priority)) < 0)
        return r;
    if ((x = KT_YAML_F(f, "affinity")) &&
        (r = s_affinity(c, x->value, x->key, S_SUB("affinity"), &cg.affinity)) < 0)
        return r;
    if ((x = KT_YAML_F(f, "deferred")) &&
        (r = s_bool(c, x->value, x->key, S_SUB("deferred"), &cg.deferred)) < 0)
        return r;
    if ((x = KT_YAML_F(f, "cpuset")) &&
        (r = s_cpuset(c, x->value, x->key, S_SUB("cpuset"), &cg.cpuset)) < 0)
        return r;
    if ((x = KT_YAML_F(f, "work")) &&
        (r = s_work(c, x->value, x->key, S_SUB("work"), &cg.work)) < 0)
        return r;
    if ((x = KT_YAML_F(f, "policy")) &&
        (r = s_policy(c, x->value, x->key, S_SUB("policy"), &cg.policy)) < 0)
        return r;
    bool rt = cg.policy == KT_POLICY_FIFO || cg.policy == KT_POLICY_RR;
    if (rt && !cg.rt_priority)
        return kt_yaml_fail(c, x->value, x->key, "%s: policy %s needs rt_priority (1..96)",
                            S_SUB("policy"), kt_sched_policy_name(cg.policy));
    if (!rt && cg.rt_priority)
        return kt_yaml_fail(c, KT_YAML_F(f, "rt_priority")->key, n,
                            "%s: rt_priority is for policies fifo and rr, not %s", path,
                            kt_sched_policy_name(cg.policy));
    long long nice;
    if ((x = KT_YAML_F(f, "nice"))) {
        if ((r = s_int(c, x->value, x->key, S_SUB("nice"), -20, 19, &nice)) < 0)
            return r;
        cg.nice = (int)nice;
    }
    kt_yaml_field_t *w = KT_YAML_F(f, "workers"), *wpc = KT_YAML_F(f, "workers_per_cpu");
    if (w && wpc)
        return kt_yaml_fail(c, wpc->key, n, "%s: give workers or workers_per_cpu, not both", path);
    if (!w && !wpc)
        return kt_yaml_fail(c, n, seq, "%s: missing key 'workers' (or 'workers_per_cpu')", path);
    if (w) {
        /* 0: a parent of nested cgroups, or filled by spawn / move_tasks
         * steps (checked at resolve). */
        if ((r = s_uint(c, w->value, w->key, S_SUB("workers"), 0, KT_MAX_WORKERS_PER_CGROUP,
                        &cg.workers)) < 0)
            return r;
        unsigned group = kt_work_type_group_size(cg.work);
        if (cg.workers % group)
            return kt_yaml_fail(c, w->value, w->key,
                                "%s: %s workers come in groups of %u, %u given", S_SUB("workers"),
                                kt_work_type_name(cg.work), group, cg.workers);
    } else if ((r = s_number(c, wpc->value, wpc->key, S_SUB("workers_per_cpu"), 0,
                             KT_MAX_WORKERS_PER_CGROUP, &cg.workers_per_cpu)) < 0) {
        return r;
    } else if (cg.workers_per_cpu <= 0) {
        return kt_yaml_fail(c, wpc->value, wpc->key, "%s: must be more than 0",
                            S_SUB("workers_per_cpu"));
    }
#undef S_SUB
    *ret = cg;
    return 0;
}

static int s_cgroups(kt_yaml_ctx_t *c, struct fy_node *n, struct fy_node *key, kt_scenario_t *s,
                     bool allow_empty)
{
    int r = kt_yaml_deref(c, &n, key, "cgroups");
    if (r < 0)
        return r;
    if (!n || !fy_node_is_sequence(n))
        return kt_yaml_fail(c, n, key, "cgroups: expected a sequence of cgroups, got %s",
                            kt_yaml_is_null(n) ? "nothing" : kt_yaml_kind(n));
    int count = fy_node_sequence_item_count(n);
    if (count < (allow_empty ? 0 : 1) || count > KT_MAX_CGROUPS)
        return kt_yaml_fail(c, n, key, "cgroups: %d entries, expected %d..%d", count,
                            allow_empty ? 0 : 1, KT_MAX_CGROUPS);
    void *it = NULL;
    struct fy_node *item;
    for (unsigned i = 0; (item = fy_node_sequence_iterate(n, &it)); i++) {
        kt_cgroup_spec_t *cg = &s->cgroups[i];
        if ((r = s_cgroup(c, item, n, i, cg)) < 0)
            return r;
        for (unsigned j = 0; j < i; j++) {
            if (strcmp(s->cgroups[j].name, cg->name) == 0) {
                struct fy_node *m = item;
                kt_yaml_deref(c, &m, n, "");
                struct fy_node *name = fy_node_mapping_lookup_value_by_string(m, "name", FY_NT);
                return kt_yaml_fail(c, name, item,
                                    "cgroups[%u].name: '%s' is already the name of "
                                    "cgroups[%u]",
                                    i, cg->name, j);
            }
        }
        s->n_cgroups = i + 1;
    }
    return 0;
}

/* A fault names a declared cgroup, or one of the "<name>_<llc>" cgroups a
 * per-llc cgroup expands to (checked against the topology at resolve). */
static bool s_fault_cgroup_known(const kt_scenario_t *s, const char *name)
{
    for (unsigned i = 0; i < s->n_cgroups; i++) {
        const kt_cgroup_spec_t *cg = &s->cgroups[i];
        if (strcmp(cg->name, name) == 0)
            return true;
        size_t n = strlen(cg->name);
        if (cg->cpuset.kind == KT_CPUSET_PER_LLC && strncmp(name, cg->name, n) == 0 &&
            name[n] == '_' && name[n + 1] &&
            strspn(name + n + 1, "0123456789") == strlen(name + n + 1))
            return true;
    }
    return false;
}

static int s_faults(kt_yaml_ctx_t *c, struct fy_node *n, struct fy_node *key, kt_scenario_t *s)
{
    int r = kt_yaml_deref(c, &n, key, "faults");
    if (r < 0)
        return r;
    if (kt_yaml_is_null(n))
        return 0;
    if (!fy_node_is_sequence(n))
        return kt_yaml_fail(c, n, key, "faults: expected a sequence of faults, got %s",
                            kt_yaml_kind(n));
    int count = fy_node_sequence_item_count(n);
    if (count > KT_MAX_FAULTS)
        return kt_yaml_fail(c, n, key, "faults: %d entries, limit %d", count, KT_MAX_FAULTS);
    void *it = NULL;
    struct fy_node *item;
    for (unsigned i = 0; (item = fy_node_sequence_iterate(n, &it)); i++) {
        char path[32], sub[S_PATH_MAX];
        snprintf(path, sizeof(path), "faults[%u]", i);
        kt_yaml_field_t f[] = {{"cgroup"}, {"worker"}, {"at"}};
        if ((r = kt_yaml_fields(c, item, n, path, "fault", f, KT_ARRAY_SIZE(f))) < 0)
            return r;
        kt_fault_t *fault = &s->faults[i];
        memset(fault, 0, sizeof(*fault));
        kt_yaml_field_t *x;
        if (!(x = KT_YAML_F(f, "cgroup")))
            return kt_yaml_fail(c, item, n, "%s: missing key 'cgroup'", path);
        snprintf(sub, sizeof(sub), "%s.cgroup", path);
        if ((r = s_name(c, x->value, x->key, sub, fault->cgroup, sizeof(fault->cgroup))) < 0)
            return r;
        if (!s_fault_cgroup_known(s, fault->cgroup))
            return kt_yaml_fail(c, x->value, x->key, "%s: no cgroup named '%s'", sub,
                                fault->cgroup);
        if ((x = KT_YAML_F(f, "worker"))) {
            snprintf(sub, sizeof(sub), "%s.worker", path);
            if ((r = s_uint(c, x->value, x->key, sub, 0, KT_MAX_WORKERS_PER_CGROUP - 1,
                            &fault->worker)) < 0)
                return r;
        }
        if ((x = KT_YAML_F(f, "at"))) {
            snprintf(sub, sizeof(sub), "%s.at", path);
            if ((r = s_duration_ms(c, x->value, x->key, sub, 0, S_MAX_DURATION_MS, &fault->at_ms)) <
                0)
                return r;
            if (fault->at_ms >= s->duration_ms)
                return kt_yaml_fail(c, x->value, x->key,
                                    "%s: %u ms is not before the end of the run (%u ms)", sub,
                                    fault->at_ms, s->duration_ms);
        }
        s->n_faults = i + 1;
    }
    return 0;
}

static int s_constraints(kt_yaml_ctx_t *c, struct fy_node *n, struct fy_node *key,
                         kt_constraints_t *ret)
{
    kt_yaml_field_t f[] = {{"min_llcs"}, {"max_llcs"}, {"min_cpus"},    {"max_cpus"},
                           {"min_numa"}, {"max_numa"}, {"requires_smt"}};
    int r = kt_yaml_fields(c, n, key, "constraints", "constraints", f, KT_ARRAY_SIZE(f));
    if (r < 0)
        return r;
    kt_constraints_t k = {0};
    unsigned *slots[] = {&k.min_llcs, &k.max_llcs, &k.min_cpus,
                         &k.max_cpus, &k.min_numa, &k.max_numa};
    char sub[S_PATH_MAX];
    for (size_t i = 0; i < KT_ARRAY_SIZE(slots); i++) {
        if (!f[i].key)
            continue;
        snprintf(sub, sizeof(sub), "constraints.%s", f[i].name);
        if ((r = s_uint(c, f[i].value, f[i].key, sub, 0, KT_MAX_CPUS, slots[i])) < 0)
            return r;
    }
    if (f[6].key &&
        (r = s_bool(c, f[6].value, f[6].key, "constraints.requires_smt", &k.requires_smt)) < 0)
        return r;
    for (size_t i = 0; i < KT_ARRAY_SIZE(slots); i += 2) {
        unsigned lo = *slots[i], hi = *slots[i + 1];
        if (lo && hi && lo > hi)
            return kt_yaml_fail(c, f[i + 1].value, f[i + 1].key,
                                "constraints.%s: %u is below %s %u", f[i + 1].name, hi, f[i].name,
                                lo);
    }
    *ret = k;
    return 0;
}

#define S_MAX_CALLBACK_NS 1000000000

/* checks.bpf_callback_ns: a mean ns per call that bounds every struct_ops
 * program (a number), or {"*": ns, <program name>: ns, ...}; false is off.
 * The value replaces whatever bpf bounds came before. */
static int s_bpf_callback(kt_yaml_ctx_t *c, struct fy_node *n, struct fy_node *key,
                          kt_thresholds_t *t)
{
    static const char path[] = "checks.bpf_callback_ns";
    bool b;
    int r;
    if (kt_yaml_is_bool(n, &b)) {
        if (b)
            return kt_yaml_fail(c, n, key, "%s: has no default: give ns per call such as 5000",
                                path);
        t->max_callback_ns = 0;
        t->n_callback_bounds = 0;
        return 0;
    }
    struct fy_node *map = n;
    if ((r = kt_yaml_deref(c, &map, key, path)) < 0)
        return r;
    kt_thresholds_t nt = *t;
    nt.max_callback_ns = 0;
    nt.n_callback_bounds = 0;
    long long v;
    if (!map || !fy_node_is_mapping(map)) {
        if ((r = s_int(c, n, key, path, 1, S_MAX_CALLBACK_NS, &v)) < 0)
            return r;
        t->max_callback_ns = (uint32_t)v;
        t->n_callback_bounds = 0;
        return 0;
    }
    if (fy_node_mapping_item_count(map) == 0)
        return kt_yaml_fail(c, n, key, "%s: an empty mapping: give '*' or program names with ns",
                            path);
    void *it = NULL;
    struct fy_node_pair *p;
    while ((p = fy_node_mapping_iterate(map, &it))) {
        struct fy_node *k = fy_node_pair_key(p), *val = fy_node_pair_value(p);
        char name[64], sub[S_PATH_MAX];
        bool fits;
        if (!k || !fy_node_is_scalar(k) || fy_node_is_alias(k) || kt_yaml_is_null(k))
            return kt_yaml_fail(c, k, map, "%s: a key is not a program name", path);
        if ((r = kt_yaml_value(c, k, map, path, "a program name", name, sizeof(name), &fits,
                               NULL)) < 0)
            return r;
        snprintf(sub, sizeof(sub), "%s.%s", path, name);
        if ((r = s_int(c, val, k, sub, 1, S_MAX_CALLBACK_NS, &v)) < 0)
            return r;
        if (strcmp(name, "*") == 0) {
            nt.max_callback_ns = (uint32_t)v;
            continue;
        }
        r = fits ? kt_checks_callback_bound_add(&nt, name, (uint32_t)v) : -EINVAL;
        if (r == -E2BIG)
            return kt_yaml_fail(c, k, map, "%s: more than %d program names", path,
                                KT_MAX_CALLBACK_BOUNDS);
        if (r == -EEXIST)
            return kt_yaml_fail(c, k, map, "%s: '%s' is named twice", path, name);
        if (r < 0)
            return kt_yaml_fail(c, k, map,
                                "%s: '%s%s' is not a BPF program name (1 to 15 of A-Z a-z 0-9 _ .) "
                                "nor '*'",
                                path, name, fits ? "" : "...");
    }
    *t = nt;
    return 0;
}

static int s_checks(kt_yaml_ctx_t *c, struct fy_node *n, struct fy_node *key, kt_thresholds_t *t)
{
    kt_yaml_field_t f[] = {{"not_starved"},     {"cpuset_isolation"}, {"fairness_spread"},
                           {"max_gap"},         {"wake_p99"},         {"work_rate"},
                           {"bpf_callback_ns"}, {"wake_cv"},          {"throughput_cv"},
                           {"iteration_rate"},  {"migration_ratio"}};
    int r = kt_yaml_fields(c, n, key, "checks", "checks", f, KT_ARRAY_SIZE(f));
    if (r < 0)
        return r;
    kt_yaml_field_t *x;
    bool b;
    /* Every key given marks its fields set: a layer above (the gauntlet's
     * scheduler) is overridden only where this map speaks. */
    if ((x = KT_YAML_F(f, "not_starved"))) {
        if ((r = s_bool(c, x->value, x->key, "checks.not_starved", &t->check_starved)) < 0)
            return r;
        t->set |= KT_THR_BIT(KT_THR_STARVED);
    }
    if ((x = KT_YAML_F(f, "cpuset_isolation"))) {
        if ((r = s_bool(c, x->value, x->key, "checks.cpuset_isolation", &t->check_isolation)) < 0)
            return r;
        t->set |= KT_THR_BIT(KT_THR_ISOLATION);
    }
    /* A threshold enables its check; false disables it; true keeps the
     * threshold of the layer below (the default). */
    if ((x = KT_YAML_F(f, "fairness_spread"))) {
        if (kt_yaml_is_bool(x->value, &b))
            t->check_spread = b;
        else if ((r = s_number(c, x->value, x->key, "checks.fairness_spread", 0, 100,
                               &t->max_spread_pct)) < 0)
            return r;
        else {
            t->check_spread = true;
            t->set |= KT_THR_BIT(KT_THR_SPREAD);
        }
        t->set |= KT_THR_BIT(KT_THR_SPREAD_ON);
    }
    if ((x = KT_YAML_F(f, "max_gap"))) {
        if (kt_yaml_is_bool(x->value, &b))
            t->check_gap = b;
        else if ((r = s_duration_ms(c, x->value, x->key, "checks.max_gap", 1, S_MAX_GAP_MS,
                                    &t->max_gap_ms)) < 0)
            return r;
        else {
            t->check_gap = true;
            t->set |= KT_THR_BIT(KT_THR_GAP);
        }
        t->set |= KT_THR_BIT(KT_THR_GAP_ON);
    }
    if ((x = KT_YAML_F(f, "wake_p99"))) {
        t->set |= KT_THR_BIT(KT_THR_WAKE_P99);
        if (kt_yaml_is_bool(x->value, &b)) {
            if (b)
                return kt_yaml_fail(
                    c, x->value, x->key,
                    "checks.wake_p99: has no default: give a latency such as 500us");
            t->max_p99_wake_us = 0;
        } else {
            char buf[40];
            bool fits;
            struct fy_node *v = x->value;
            if ((r = kt_yaml_value(c, v, x->key, "checks.wake_p99", "a latency", buf, sizeof(buf),
                                   &fits, NULL)) < 0)
                return r;
            uint64_t us;
            r = fits ? s_duration_us(buf, true, 0, &us) : -EINVAL;
            if (r == 0 && (us < 1 || us > S_MAX_WAKE_US))
                r = -ERANGE;
            if (r == -ERANGE)
                return kt_yaml_fail(c, v, x->key, "checks.wake_p99: '%s' is out of range 1us..%us",
                                    buf, S_MAX_WAKE_US / 1000000);
            if (r < 0)
                return kt_yaml_fail(
                    c, v, x->key, "checks.wake_p99: '%s' is not a latency with a unit (500us, 2ms)",
                    buf);
            t->max_p99_wake_us = (uint32_t)us;
        }
    }
    if ((x = KT_YAML_F(f, "work_rate"))) {
        t->set |= KT_THR_BIT(KT_THR_WORK_RATE);
        if (kt_yaml_is_bool(x->value, &b)) {
            if (b)
                return kt_yaml_fail(c, x->value, x->key,
                                    "checks.work_rate: has no default: give work units per second");
            t->min_work_rate = 0;
        } else if ((r = s_number(c, x->value, x->key, "checks.work_rate", 0, S_MAX_WORK_RATE,
                                 &t->min_work_rate)) < 0) {
            return r;
        } else if (t->min_work_rate <= 0) {
            return kt_yaml_fail(c, x->value, x->key,
                                "checks.work_rate: must be more than 0 (false disables it)");
        }
    }
    if ((x = KT_YAML_F(f, "bpf_callback_ns"))) {
        if ((r = s_bpf_callback(c, x->value, x->key, t)) < 0)
            return r;
        t->set |= KT_THR_BIT(KT_THR_CALLBACK_NS) | KT_THR_BIT(KT_THR_CALLBACK_BOUNDS);
    }
    /* ktstr's benchmarking bounds: off unless given; false switches off one
     * a layer below set. */
    static const struct {
        const char *key, *what;
        enum kt_thr_field field;
        double max;
    } opt[] = {
        {"wake_cv", "the largest wake latency CV (stddev / mean), such as 1.5",
         KT_THR_WAKE_CV, S_MAX_CV},
        {"throughput_cv", "the largest CV of the workers' work rates, such as 0.2",
         KT_THR_THROUGHPUT_CV, S_MAX_CV},
        {"iteration_rate", "the fewest loop passes per second per worker",
         KT_THR_ITERATION_RATE, S_MAX_WORK_RATE},
        {"migration_ratio", "the most migrations per loop pass, such as 0.5",
         KT_THR_MIGRATION_RATIO, S_MAX_MIGRATION_RATIO},
    };
    for (size_t i = 0; i < KT_ARRAY_SIZE(opt); i++) {
        if (!(x = KT_YAML_F(f, opt[i].key)))
            continue;
        double *v = opt[i].field == KT_THR_WAKE_CV          ? &t->max_wake_cv
                    : opt[i].field == KT_THR_THROUGHPUT_CV  ? &t->max_throughput_cv
                    : opt[i].field == KT_THR_ITERATION_RATE ? &t->min_iteration_rate
                                                            : &t->max_migration_ratio;
        char path[40];
        snprintf(path, sizeof(path), "checks.%s", opt[i].key);
        t->set |= KT_THR_BIT(opt[i].field);
        if (kt_yaml_is_bool(x->value, &b)) {
            if (b)
                return kt_yaml_fail(c, x->value, x->key, "%s: has no default: give %s", path,
                                    opt[i].what);
            *v = 0;
        } else if ((r = s_number(c, x->value, x->key, path, 0, opt[i].max, v)) < 0) {
            return r;
        } else if (*v <= 0) {
            return kt_yaml_fail(c, x->value, x->key, "%s: must be more than 0 (false disables it)",
                                path);
        }
    }
    return 0;
}

int kt_thresholds_yaml_from_node(struct fy_node *node, struct fy_node *key, const char *origin,
                                 kt_thresholds_t *ret, char *err, size_t err_len)
{
    kt_yaml_ctx_t c = kt_yaml_ctx(origin ? origin : "<yaml>", NULL, err, err_len);
    kt_thresholds_t t;
    kt_thresholds_default(&t);
    int r = s_checks(&c, node, key, &t);
    if (r < 0)
        return r;
    *ret = t;
    return 0;
}

/* hold: a fraction (a plain number), a duration (2s, 500ms), or
 * loop:DURATION. */
static int s_hold(kt_yaml_ctx_t *c, struct fy_node *n, struct fy_node *key, const char *path,
                  kt_step_spec_t *st)
{
    char buf[40];
    bool fits, plain;
    int r = kt_yaml_value(c, n, key, path, "a hold", buf, sizeof(buf), &fits, &plain);
    if (r < 0)
        return r;
    if (fits && strncmp(buf, "loop:", 5) == 0) {
        uint32_t ms;
        if (kt_duration_parse_ms(buf + 5, &ms) < 0 || ms < 10 || ms > S_MAX_DURATION_MS)
            return kt_yaml_fail(c, n, key, "%s: '%s': expected loop:INTERVAL, at least 10ms", path,
                                buf);
        st->hold = KT_HOLD_LOOP;
        st->ms = ms;
        return 0;
    }
    if (fits && plain && strspn(buf, "0123456789.") == strlen(buf)) {
        char *end;
        double v = strtod(buf, &end);
        if (*end || !(v > 0.0 && v <= 1.0))
            return kt_yaml_fail(c, n, key, "%s: %s: a fraction of the duration must be in (0, 1]",
                                path, buf);
        st->hold = KT_HOLD_FRAC;
        st->frac = v;
        return 0;
    }
    uint32_t ms;
    if (!fits || kt_duration_parse_ms(buf, &ms) < 0 || ms > S_MAX_DURATION_MS)
        return kt_yaml_fail(c, n, key,
                            "%s: '%s%s' is not a hold (a fraction of the duration such as 0.5, a "
                            "duration such as 2s, or loop:500ms)",
                            path, buf, fits ? "" : "...");
    st->hold = KT_HOLD_FIXED;
    st->ms = ms;
    return 0;
}

static int s_op(kt_yaml_ctx_t *c, struct fy_node *n, struct fy_node *seq, const char *path,
                kt_op_spec_t *ret)
{
    char sub[S_PATH_MAX + 32];
    kt_yaml_field_t f[] = {{"op"}, {"cgroup"}, {"target"}, {"cpuset"}, {"affinity"}, {"workers"}};
    int r = kt_yaml_fields(c, n, seq, path, "op", f, KT_ARRAY_SIZE(f));
    if (r < 0)
        return r;
    kt_op_spec_t op = {0};
    kt_yaml_field_t *x;
#define S_SUB(key) (snprintf(sub, sizeof(sub), "%s.%s", path, (key)), sub)
    if (!(x = KT_YAML_F(f, "op")))
        return kt_yaml_fail(c, n, seq, "%s: missing key 'op'", path);
    char name[40];
    bool fits;
    if ((r = kt_yaml_value(c, x->value, x->key, S_SUB("op"), "an op", name, sizeof(name), &fits,
                           NULL)) < 0)
        return r;
    if (!fits || kt_op_kind_parse(name, &op.kind) < 0) {
        char known[256] = "";
        size_t off = 0;
        for (unsigned i = 0; i < KT_OP__COUNT && off < sizeof(known); i++)
            off += (size_t)snprintf(known + off, sizeof(known) - off, "%s%s", i ? ", " : "",
                                    kt_op_kind_name((enum kt_op_kind)i));
        return kt_yaml_fail(c, x->value, x->key, "%s: unknown op '%s%s' (known: %s)", S_SUB("op"),
                            name, fits ? "" : "...", known);
    }
    const char *opn = kt_op_kind_name(op.kind);
    if (!(x = KT_YAML_F(f, "cgroup")))
        return kt_yaml_fail(c, n, seq, "%s: %s needs 'cgroup'", path, opn);
    if ((r = s_cgroup_name(c, x->value, x->key, S_SUB("cgroup"), op.cgroup, sizeof(op.cgroup))) <
        0)
        return r;
    bool two = op.kind == KT_OP_SWAP_CPUSETS || op.kind == KT_OP_MOVE_TASKS;
    /* Each op takes its own keys and no other. */
    const struct {
        const char *key;
        bool wanted;
    } extra[] = {{"target", two},
                 {"cpuset", op.kind == KT_OP_SET_CPUSET},
                 {"affinity", op.kind == KT_OP_SET_AFFINITY},
                 {"workers", op.kind == KT_OP_SPAWN}};
    for (unsigned i = 0; i < KT_ARRAY_SIZE(extra); i++) {
        x = KT_YAML_F(f, extra[i].key);
        if (x && !extra[i].wanted)
            return kt_yaml_fail(c, x->key, n, "%s: %s takes no '%s'", path, opn, extra[i].key);
        if (!x && extra[i].wanted)
            return kt_yaml_fail(c, n, seq, "%s: %s needs '%s'", path, opn, extra[i].key);
    }
    if ((x = KT_YAML_F(f, "target")) &&
        (r = s_cgroup_name(c, x->value, x->key, S_SUB("target"), op.target, sizeof(op.target))) < 0)
        return r;
    if ((x = KT_YAML_F(f, "cpuset")) &&
        (r = s_cpuset(c, x->value, x->key, S_SUB("cpuset"), &op.cpuset)) < 0)
        return r;
    if (op.kind == KT_OP_SET_CPUSET &&
        (op.cpuset.kind == KT_CPUSET_ALL || op.cpuset.kind == KT_CPUSET_PER_LLC))
        return kt_yaml_fail(c, x->value, x->key, "%s: %s", S_SUB("cpuset"),
                            op.cpuset.kind == KT_CPUSET_ALL ? "'all' is clear_cpuset"
                                                            : "per-llc is for declared cgroups");
    if ((x = KT_YAML_F(f, "affinity")) &&
        (r = s_affinity(c, x->value, x->key, S_SUB("affinity"), &op.affinity)) < 0)
        return r;
    if ((x = KT_YAML_F(f, "workers")) && (r = s_uint(c, x->value, x->key, S_SUB("workers"), 1,
                                                     KT_MAX_WORKERS_PER_CGROUP, &op.workers)) < 0)
        return r;
#undef S_SUB
    *ret = op;
    return 0;
}

static int s_steps(kt_yaml_ctx_t *c, struct fy_node *n, struct fy_node *key, kt_scenario_t *s)
{
    int r = kt_yaml_deref(c, &n, key, "steps");
    if (r < 0)
        return r;
    if (kt_yaml_is_null(n))
        return 0;
    if (!fy_node_is_sequence(n))
        return kt_yaml_fail(c, n, key, "steps: expected a sequence of steps, got %s",
                            kt_yaml_kind(n));
    int count = fy_node_sequence_item_count(n);
    if (count > KT_MAX_STEPS)
        return kt_yaml_fail(c, n, key, "steps: %d entries, limit %d", count, KT_MAX_STEPS);
    void *it = NULL;
    struct fy_node *item;
    for (unsigned i = 0; (item = fy_node_sequence_iterate(n, &it)); i++) {
        char path[32], sub[S_PATH_MAX];
        snprintf(path, sizeof(path), "steps[%u]", i);
        kt_yaml_field_t f[] = {{"ops"}, {"hold"}};
        if ((r = kt_yaml_fields(c, item, n, path, "step", f, KT_ARRAY_SIZE(f))) < 0)
            return r;
        kt_step_spec_t *st = &s->steps[i];
        memset(st, 0, sizeof(*st));
        kt_yaml_field_t *x;
        if (!(x = KT_YAML_F(f, "hold")))
            return kt_yaml_fail(c, item, n, "%s: missing key 'hold' (0.5, 2s or loop:500ms)", path);
        snprintf(sub, sizeof(sub), "%s.hold", path);
        if ((r = s_hold(c, x->value, x->key, sub, st)) < 0)
            return r;
        if (st->hold == KT_HOLD_LOOP && (unsigned)count != i + 1)
            return kt_yaml_fail(
                c, x->value, x->key,
                "%s: a loop holds to the end of the run, so it must be the last step", sub);
        if ((x = KT_YAML_F(f, "ops"))) {
            struct fy_node *ops = x->value;
            snprintf(sub, sizeof(sub), "%s.ops", path);
            if ((r = kt_yaml_deref(c, &ops, x->key, sub)) < 0)
                return r;
            if (!kt_yaml_is_null(ops)) {
                if (!fy_node_is_sequence(ops))
                    return kt_yaml_fail(c, ops, x->key, "%s: expected a sequence of ops, got %s",
                                        sub, kt_yaml_kind(ops));
                int nops = fy_node_sequence_item_count(ops);
                if (nops > KT_MAX_OPS)
                    return kt_yaml_fail(c, ops, x->key, "%s: %d ops, limit %d", sub, nops,
                                        KT_MAX_OPS);
                void *it2 = NULL;
                struct fy_node *o;
                for (unsigned k = 0; (o = fy_node_sequence_iterate(ops, &it2)); k++) {
                    char opath[S_PATH_MAX + 16];
                    snprintf(opath, sizeof(opath), "%s[%u]", sub, k);
                    if ((r = s_op(c, o, ops, opath, &st->ops[k])) < 0)
                        return r;
                    st->n_ops = k + 1;
                }
            }
        }
        s->n_steps = i + 1;
    }
    return 0;
}

/* Ops name declared cgroups (or a per-llc cgroup's expansion); the rest is
 * checked against the topology at resolve. */
static int s_steps_check(kt_yaml_ctx_t *c, struct fy_node *n, const kt_scenario_t *s)
{
    for (unsigned i = 0; i < s->n_steps; i++) {
        for (unsigned k = 0; k < s->steps[i].n_ops; k++) {
            const kt_op_spec_t *op = &s->steps[i].ops[k];
            const char *bad = !s_fault_cgroup_known(s, op->cgroup) ? op->cgroup
                              : op->target[0] && !s_fault_cgroup_known(s, op->target)
                                  ? op->target
                                  : NULL;
            if (bad)
                return kt_yaml_fail(c, n, NULL,
                                    "steps[%u].ops[%u] (%s): no cgroup '%s' is declared", i, k,
                                    kt_op_kind_name(op->kind), bad);
        }
    }
    return 0;
}

/* A payload's binary: its guest name is the file name as written (a
 * symlink such as busybox keeps its name); with a base folder, the file
 * must exist, be regular and executable, and ret gets its real path. */
static int s_payload_binary(kt_yaml_ctx_t *c, struct fy_node *n, struct fy_node *key,
                            const char *path, kt_payload_spec_t *spec, char *ret, size_t ret_len)
{
    char raw[4096];
    int r = s_string(c, n, key, path, "a path", raw, sizeof(raw));
    if (r < 0)
        return r;
    size_t rl = strlen(raw);
    while (rl > 1 && raw[rl - 1] == '/')
        raw[--rl] = '\0';
    const char *base = strrchr(raw, '/');
    base = base ? base + 1 : raw;
    if (!*base || !strcmp(base, ".") || !strcmp(base, "..") || strlen(base) >= sizeof(spec->name))
        return kt_yaml_fail(c, n, key, "%s: '%s': the file name must be 1..%zu bytes, not . or ..",
                            path, raw, sizeof(spec->name) - 1);
    snprintf(spec->name, sizeof(spec->name), "%s", base);
    if (!c->base_dir) {
        if (rl >= ret_len)
            return kt_yaml_fail(c, n, key, "%s: longer than %zu bytes", path, ret_len - 1);
        snprintf(ret, ret_len, "%s", raw);
        return 0;
    }
    return kt_yaml_real_path(c, n, key, path, raw, false, true, ret, ret_len);
}

/* args: a sequence of strings (one argument each) or one string split on
 * blanks with shell-like quoting. */
static int s_payload_args(kt_yaml_ctx_t *c, struct fy_node *n, struct fy_node *key,
                          const char *path, kt_payload_spec_t *spec)
{
    int r = kt_yaml_deref(c, &n, key, path);
    if (r < 0)
        return r;
    char why[256];
    if (n && fy_node_is_scalar(n) && !kt_yaml_is_null(n)) {
        char text[KT_PAYLOAD_ARGS_BYTES + 1];
        if ((r = s_string(c, n, key, path, "arguments", text, sizeof(text))) < 0)
            return r;
        if (kt_payload_args_split(spec, text, why, sizeof(why)) < 0)
            return kt_yaml_fail(c, n, key, "%s: %s", path, why);
        return 0;
    }
    if (!n || !fy_node_is_sequence(n))
        return kt_yaml_fail(c, n, key, "%s: expected a sequence of arguments or a string, got %s",
                            path, kt_yaml_is_null(n) ? "nothing" : kt_yaml_kind(n));
    int count = fy_node_sequence_item_count(n);
    if (count < 0 || count > KT_PAYLOAD_ARGS_MAX)
        return kt_yaml_fail(c, n, key, "%s: %d arguments, limit %d", path, count,
                            KT_PAYLOAD_ARGS_MAX);
    _cleanup_free_ char *store = malloc((size_t)KT_PAYLOAD_ARGS_MAX * (KT_PAYLOAD_ARGS_BYTES + 1));
    if (!store)
        return -ENOMEM;
    const char *argv[KT_PAYLOAD_ARGS_MAX];
    void *it = NULL;
    struct fy_node *item;
    for (unsigned i = 0; (item = fy_node_sequence_iterate(n, &it)); i++) {
        char sub[S_PATH_MAX];
        snprintf(sub, sizeof(sub), "%.80s[%u]", path, i);
        char *arg = store + (size_t)i * (KT_PAYLOAD_ARGS_BYTES + 1);
        if ((r = s_string(c, item, n, sub, "an argument", arg, KT_PAYLOAD_ARGS_BYTES + 1)) < 0)
            return r;
        argv[i] = arg;
    }
    if (kt_payload_args_set(spec, argv, (unsigned)count) < 0)
        return kt_yaml_fail(c, n, key, "%s: arguments over %d bytes in all", path,
                            KT_PAYLOAD_ARGS_BYTES);
    return 0;
}

static int s_payload_checks(kt_yaml_ctx_t *c, struct fy_node *n, struct fy_node *key,
                            const char *path, kt_payload_spec_t *spec)
{
    int r = kt_yaml_deref(c, &n, key, path);
    if (r < 0)
        return r;
    if (!n || !fy_node_is_sequence(n))
        return kt_yaml_fail(c, n, key, "%s: expected a sequence of checks (\"METRIC>=N\"), got %s",
                            path, kt_yaml_is_null(n) ? "nothing" : kt_yaml_kind(n));
    int count = fy_node_sequence_item_count(n);
    if (count < 0 || count > KT_PAYLOAD_CHECKS_MAX)
        return kt_yaml_fail(c, n, key, "%s: %d checks, limit %d", path, count,
                            KT_PAYLOAD_CHECKS_MAX);
    void *it = NULL;
    struct fy_node *item;
    for (unsigned i = 0; (item = fy_node_sequence_iterate(n, &it)); i++) {
        char sub[S_PATH_MAX], text[160], why[256];
        snprintf(sub, sizeof(sub), "%.80s[%u]", path, i);
        if ((r = s_string(c, item, n, sub, "a check", text, sizeof(text))) < 0)
            return r;
        kt_payload_check_t pc;
        if (kt_payload_check_parse(text, &pc, why, sizeof(why)) < 0)
            return kt_yaml_fail(c, item, n, "%s: %s", sub, why);
        if (kt_payload_check_add(spec, &pc) < 0)
            return kt_yaml_fail(c, item, n, "%s: more than %d checks", sub, KT_PAYLOAD_CHECKS_MAX);
    }
    return 0;
}

/* The keys of a payload map; the caller's own keys (a gauntlet's name,
 * scenario) follow them in the same field array. */
static const char *const s_payload_keys[] = {"binary",   "args",    "checks",      "judge",
                                             "tap_test", "timeout", "output_bytes"};
#define S_PAYLOAD_EXTRA_MAX 4

static int s_payload(kt_yaml_ctx_t *c, struct fy_node *n, struct fy_node *key, const char *path,
                     const char *const *extra, kt_payload_spec_t *ret, char *ret_binary,
                     size_t binary_len)
{
    kt_yaml_field_t f[KT_ARRAY_SIZE(s_payload_keys) + S_PAYLOAD_EXTRA_MAX] = {{0}};
    size_t nf = 0;
    for (; nf < KT_ARRAY_SIZE(s_payload_keys); nf++)
        f[nf].name = s_payload_keys[nf];
    for (size_t i = 0; extra && extra[i] && i < S_PAYLOAD_EXTRA_MAX; i++)
        f[nf++].name = extra[i];
    int r = kt_yaml_fields(c, n, key, path, "a payload", f, nf);
    if (r < 0)
        return r;
    if ((r = kt_yaml_deref(c, &n, key, path)) < 0)
        return r;
    kt_payload_spec_t spec;
    kt_payload_spec_init(&spec);
    char sub[S_PATH_MAX];
    kt_yaml_field_t *x;
    if (!(x = kt_yaml_field(f, nf, "binary")))
        return kt_yaml_fail(c, n, key, "%s: missing key 'binary' (the static binary to run)", path);
    snprintf(sub, sizeof(sub), "%s.binary", path);
    if ((r = s_payload_binary(c, x->value, x->key, sub, &spec, ret_binary, binary_len)) < 0)
        return r;
    snprintf(sub, sizeof(sub), "%s.args", path);
    if ((x = kt_yaml_field(f, nf, "args")) &&
        (r = s_payload_args(c, x->value, x->key, sub, &spec)) < 0)
        return r;
    snprintf(sub, sizeof(sub), "%s.checks", path);
    if ((x = kt_yaml_field(f, nf, "checks")) &&
        (r = s_payload_checks(c, x->value, x->key, sub, &spec)) < 0)
        return r;
    if ((x = kt_yaml_field(f, nf, "judge"))) {
        char text[16];
        snprintf(sub, sizeof(sub), "%s.judge", path);
        bool fits;
        if ((r = kt_yaml_value(c, x->value, x->key, sub, "exit or tap", text, sizeof(text), &fits,
                               NULL)) < 0)
            return r;
        if (fits && strcmp(text, "exit") == 0)
            spec.judge = KT_PAYLOAD_JUDGE_EXIT;
        else if (fits && strcmp(text, "tap") == 0)
            spec.judge = KT_PAYLOAD_JUDGE_TAP;
        else
            return kt_yaml_fail(c, x->value, x->key, "%s: '%s%s' is not exit or tap", sub, text,
                                fits ? "" : "...");
    }
    if ((x = kt_yaml_field(f, nf, "tap_test"))) {
        snprintf(sub, sizeof(sub), "%s.tap_test", path);
        if ((r = s_string(c, x->value, x->key, sub, "a TAP test's description", spec.tap_test,
                          sizeof(spec.tap_test))) < 0)
            return r;
        if (spec.judge != KT_PAYLOAD_JUDGE_TAP)
            return kt_yaml_fail(c, x->key, x->value, "%s: only with judge: tap", sub);
    }
    if ((x = kt_yaml_field(f, nf, "timeout"))) {
        snprintf(sub, sizeof(sub), "%s.timeout", path);
        if ((r = s_duration_ms(c, x->value, x->key, sub, 1, KT_PAYLOAD_TIMEOUT_MAX_MS,
                               &spec.timeout_ms)) < 0)
            return r;
    }
    if ((x = kt_yaml_field(f, nf, "output_bytes"))) {
        snprintf(sub, sizeof(sub), "%s.output_bytes", path);
        if ((r = s_uint(c, x->value, x->key, sub, KT_PAYLOAD_OUTPUT_MIN, KT_PAYLOAD_OUTPUT_MAX,
                        &spec.max_output)) < 0)
            return r;
    }
    *ret = spec;
    return 0;
}

int kt_payload_yaml_from_node(struct fy_node *node, struct fy_node *key, const char *origin,
                              const char *base_dir, const char *path, const char *const *extra,
                              kt_payload_spec_t *ret, char *ret_binary, size_t binary_len,
                              char *err, size_t err_len)
{
    kt_yaml_ctx_t c = kt_yaml_ctx(origin ? origin : "<yaml>", base_dir, err, err_len);
    return s_payload(&c, node, key, path ? path : "payload", extra, ret, ret_binary, binary_len);
}

static int s_scenario(kt_yaml_ctx_t *c, struct fy_node *root, kt_scenario_t *ret)
{
    kt_yaml_field_t f[] = {{"name"},        {"description"}, {"duration"}, {"memory_mib"},
                           {"constraints"}, {"checks"},      {"cgroups"},  {"faults"},
                           {"steps"},       {"payload"}};
    int r = kt_yaml_fields(c, root, NULL, "", "scenario", f, KT_ARRAY_SIZE(f));
    if (r < 0)
        return r;
    /* kt_scenario_t is large: build it on the heap, hand it out on success. */
    _cleanup_free_ kt_scenario_t *s = malloc(sizeof(*s));
    if (!s) {
        snprintf(c->err, c->err_len, "%s: out of memory", c->origin);
        return -ENOMEM;
    }
    kt_yaml_field_t *x;
    if (!(x = KT_YAML_F(f, "name")))
        return kt_yaml_fail(c, root, NULL, "missing key 'name' in scenario");
    char name[KT_NAME_MAX];
    if ((r = s_name(c, x->value, x->key, "name", name, sizeof(name))) < 0)
        return r;
    kt_scenario_init(s, name);
    if ((x = KT_YAML_F(f, "description")) &&
        (r = s_string(c, x->value, x->key, "description", "a string", s->description,
                      sizeof(s->description))) < 0)
        return r;
    if ((x = KT_YAML_F(f, "duration")) &&
        (r = s_duration_ms(c, x->value, x->key, "duration", 1, S_MAX_DURATION_MS,
                           &s->duration_ms)) < 0)
        return r;
    if ((x = KT_YAML_F(f, "memory_mib"))) {
        unsigned mib;
        if ((r = s_uint(c, x->value, x->key, "memory_mib", 1, S_MAX_MEMORY_MIB, &mib)) < 0)
            return r;
        s->memory_mib = mib;
    }
    if ((x = KT_YAML_F(f, "constraints")) &&
        (r = s_constraints(c, x->value, x->key, &s->constraints)) < 0)
        return r;
    if ((x = KT_YAML_F(f, "checks")) && (r = s_checks(c, x->value, x->key, &s->thresholds)) < 0)
        return r;
    if ((x = KT_YAML_F(f, "payload")) &&
        (r = s_payload(c, x->value, x->key, "payload", NULL, &s->payload, s->payload_binary,
                       sizeof(s->payload_binary))) < 0)
        return r;
    /* A payload may be the whole workload: cgroups are optional then. */
    bool payload = kt_payload_present(&s->payload);
    if (!(x = KT_YAML_F(f, "cgroups")) && !payload)
        return kt_yaml_fail(c, root, NULL, "missing key 'cgroups' in scenario");
    if (x && (r = s_cgroups(c, x->value, x->key, s, payload)) < 0)
        return r;
    if ((x = KT_YAML_F(f, "faults")) && (r = s_faults(c, x->value, x->key, s)) < 0)
        return r;
    if ((x = KT_YAML_F(f, "steps")) &&
        ((r = s_steps(c, x->value, x->key, s)) < 0 || (r = s_steps_check(c, x->value, s)) < 0))
        return r;
    *ret = *s;
    return 0;
}

int kt_scenario_yaml_from_node(struct fy_node *node, const char *origin, kt_scenario_t *ret,
                               char *err, size_t err_len)
{
    return kt_scenario_yaml_from_node_in(node, origin, NULL, ret, err, err_len);
}

int kt_scenario_yaml_from_node_in(struct fy_node *node, const char *origin, const char *base_dir,
                                  kt_scenario_t *ret, char *err, size_t err_len)
{
    kt_yaml_ctx_t c = kt_yaml_ctx(origin ? origin : "<yaml>", base_dir, err, err_len);
    if (!node)
        return kt_yaml_fail(&c, NULL, NULL, "expected a scenario mapping, got nothing");
    return s_scenario(&c, node, ret);
}

static int s_parse(const char *text, size_t len, const char *origin, const char *base_dir,
                   kt_scenario_t *ret, char *err, size_t err_len)
{
    kt_yaml_ctx_t c = kt_yaml_ctx(origin ? origin : "<yaml>", base_dir, err, err_len);
    _cleanup_(kt_yaml_doc_close) kt_yaml_doc_t doc = {0};
    int r = kt_yaml_doc_load(&c, text, len, "scenario", &doc);
    return r < 0 ? r : s_scenario(&c, doc.root, ret);
}

int kt_scenario_yaml_parse(const char *text, size_t len, const char *origin, kt_scenario_t *ret,
                           char *err, size_t err_len)
{
    return s_parse(text, len, origin, NULL, ret, err, err_len);
}

int kt_scenario_yaml_load(const char *path, kt_scenario_t *ret, char *err, size_t err_len)
{
    /* A payload's relative binary resolves against the file's folder. */
    _cleanup_free_ char *buf = NULL;
    size_t len;
    char dir[PATH_MAX];
    int r = kt_yaml_file_read(path, &buf, &len, dir, sizeof(dir), NULL, err, err_len);
    if (r < 0)
        return r;
    return s_parse(buf, len, path, dir, ret, err, err_len);
}
