/* The kernel's sched_ext selftests as payload cells (see kt_selftests.h). */
#include "kt_selftests.h"

#include <errno.h>
#include <fcntl.h>
#include <msgpack.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kt_chanmsg.h"
#include "kt_cleanup.h"
#include "kt_hash.h"
#include "kt_kernel_resolve.h"
#include "kt_matrix.h"

#define S_LIST_TIMEOUT_MS 10000
#define S_LIST_MAX_BYTES (1u << 20)
/* A filter no test name can contain (names are [A-Za-z0-9_.+-]). */
#define S_NO_TEST "#ktstr: list only#"

static bool s_name_ok(const char *s, size_t n)
{
    if (n == 0 || n >= KT_SELFTEST_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '+' || c == '-'))
            return false;
    }
    return true;
}

static void s_trim(const char **s, size_t *n)
{
    while (*n && (**s == ' ' || **s == '\t')) {
        (*s)++;
        (*n)--;
    }
    while (*n && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t' || (*s)[*n - 1] == '\r'))
        (*n)--;
}

static int s_add(kt_selftest_t *out, unsigned max, unsigned *n, const char *name, size_t nl,
                 unsigned line, char *why, size_t wl)
{
    if (!s_name_ok(name, nl)) {
        snprintf(why, wl, "line %u: '%.*s' is not a test name (1..%d of [A-Za-z0-9_.+-])", line,
                 (int)(nl > 80 ? 80 : nl), name, KT_SELFTEST_NAME_MAX - 1);
        return -EBADMSG;
    }
    for (unsigned i = 0; i < *n; i++) {
        if (strlen(out[i].name) == nl && memcmp(out[i].name, name, nl) == 0) {
            snprintf(why, wl, "line %u: test '%.*s' listed twice", line, (int)nl, name);
            return -EBADMSG;
        }
    }
    if (*n >= max) {
        snprintf(why, wl, "more than %u tests", max);
        return -E2BIG;
    }
    memset(&out[*n], 0, sizeof(out[*n]));
    memcpy(out[*n].name, name, nl);
    (*n)++;
    return 0;
}

int kt_selftests_parse_list(const char *text, size_t len, bool one_per_line, kt_selftest_t *out,
                            unsigned max, unsigned *ret_n, char *why, size_t wl)
{
    unsigned n = 0, line = 0;
    const char *p = text, *end = text + len;
    bool in_block = false;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *s = p;
        size_t l = nl ? (size_t)(nl - p) : (size_t)(end - p);
        p = nl ? nl + 1 : end;
        line++;
        if (one_per_line) {
            s_trim(&s, &l);
            if (l == 0)
                continue;
            int r = s_add(out, max, &n, s, l, line, why, wl);
            if (r < 0)
                return r;
            continue;
        }
        if (l >= 6 && memcmp(s, "TEST: ", 6) == 0) {
            s += 6;
            l -= 6;
            s_trim(&s, &l);
            int r = s_add(out, max, &n, s, l, line, why, wl);
            if (r < 0)
                return r;
            in_block = true;
        } else if (in_block && l >= 13 && memcmp(s, "DESCRIPTION: ", 13) == 0) {
            s += 13;
            l -= 13;
            s_trim(&s, &l);
            kt_selftest_t *t = &out[n - 1];
            size_t c = l < sizeof(t->description) - 1 ? l : sizeof(t->description) - 1;
            memcpy(t->description, s, c);
            t->description[c] = '\0';
            for (size_t i = 0; i < c; i++)
                if ((unsigned char)t->description[i] < 0x20)
                    t->description[i] = ' ';
        } else if (l >= 5 && memcmp(s, "=====", 5) == 0) {
            in_block = false;
        }
    }
    if (n == 0) {
        snprintf(why, wl, "no test found in the runner's listing");
        return -EBADMSG;
    }
    *ret_n = n;
    return 0;
}

static uint64_t s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Runs runner with args, stdout captured (bounded), stderr discarded.
 * Caller owns *ret_out. */
static int s_capture(const char *runner, const char *const *args, char **ret_out, size_t *ret_len,
                     int *ret_status, char *why, size_t wl)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0) {
        snprintf(why, wl, "pipe: %s", strerror(errno));
        return -errno;
    }
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(fds[0]);
        close(fds[1]);
        snprintf(why, wl, "fork: %s", strerror(e));
        return -e;
    }
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);
        if (null >= 0) {
            dup2(null, STDIN_FILENO);
            dup2(null, STDERR_FILENO);
        }
        dup2(fds[1], STDOUT_FILENO);
        char *argv[8];
        unsigned i = 0;
        argv[i++] = (char *)runner;
        for (; args[i - 1] && i < 7; i++)
            argv[i] = (char *)args[i - 1];
        argv[i] = NULL;
        execv(runner, argv);
        _exit(127);
    }
    close(fds[1]);
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap);
    int r = buf ? 0 : -ENOMEM;
    uint64_t until = s_now_ms() + S_LIST_TIMEOUT_MS;
    while (r == 0) {
        uint64_t now = s_now_ms();
        if (now >= until) {
            snprintf(why, wl, "'%s' did not finish listing within %d ms", runner,
                     S_LIST_TIMEOUT_MS);
            r = -ETIMEDOUT;
            break;
        }
        struct pollfd pf = {.fd = fds[0], .events = POLLIN};
        if (poll(&pf, 1, (int)(until - now)) <= 0)
            continue;
        if (len + 4096 > cap) {
            if (cap >= S_LIST_MAX_BYTES) {
                snprintf(why, wl, "'%s' printed more than %u bytes", runner, S_LIST_MAX_BYTES);
                r = -E2BIG;
                break;
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                r = -ENOMEM;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t n = read(fds[0], buf + len, cap - len - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    close(fds[0]);
    if (r < 0)
        kill(pid, SIGKILL);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (r < 0) {
        free(buf);
        return r;
    }
    buf[len] = '\0';
    *ret_out = buf;
    *ret_len = len;
    *ret_status = st;
    return 0;
}

int kt_selftests_list(const char *runner, kt_selftest_t **ret, unsigned *ret_n, char *why,
                      size_t wl)
{
    if (access(runner, X_OK) < 0) {
        int e = errno;
        snprintf(why, wl, "runner '%s': %s", runner, strerror(e));
        return -e;
    }
    _cleanup_free_ kt_selftest_t *tests = calloc(KT_SELFTESTS_MAX, sizeof(*tests));
    if (!tests)
        return -ENOMEM;
    unsigned n = 0;
    char *out = NULL;
    size_t len = 0;
    int st = 0;
    char inner[256] = "";
    /* Every runner since 6.12 lists every test as skipped with -s and a -t
     * filter that matches nothing, running none; newer ones also have -l.
     * -s -t comes first: a runner that ignored an unknown -l would run
     * every test here, on the host. */
    static const char *const skip_args[] = {"-s", "-t", S_NO_TEST, NULL};
    int r = s_capture(runner, skip_args, &out, &len, &st, why, wl);
    if (r < 0)
        return r;
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0 &&
        kt_selftests_parse_list(out, len, false, tests, KT_SELFTESTS_MAX, &n, inner,
                                sizeof(inner)) == 0)
        goto done;
    char first[160];
    snprintf(first, sizeof(first), "-s -t: %s %d%s%s",
             WIFEXITED(st) ? "exit status" : "signal", WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st),
             inner[0] ? ", " : "", inner);
    free(out);
    out = NULL;
    inner[0] = '\0';
    static const char *const list_args[] = {"-l", NULL};
    r = s_capture(runner, list_args, &out, &len, &st, why, wl);
    if (r < 0)
        return r;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 ||
        kt_selftests_parse_list(out, len, true, tests, KT_SELFTESTS_MAX, &n, inner,
                                sizeof(inner)) < 0) {
        snprintf(why, wl, "'%s' listed no tests (%s; -l: %s %d%s%s)", runner, first,
                 WIFEXITED(st) ? "exit status" : "signal",
                 WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st), inner[0] ? ", " : "", inner);
        free(out);
        return -EBADMSG;
    }
done:
    free(out);
    kt_selftest_t *shrunk = realloc(tests, n * sizeof(*tests));
    *ret = shrunk ? shrunk : tests;
    tests = NULL;
    *ret_n = n;
    return 0;
}

bool kt_selftests_selected(const char *name, const char *const *filters, unsigned n_filters,
                           const char *const *tests, unsigned n_tests)
{
    if (n_filters == 0 && n_tests == 0)
        return true;
    for (unsigned i = 0; i < n_tests; i++)
        if (strcmp(name, tests[i]) == 0)
            return true;
    for (unsigned i = 0; i < n_filters; i++)
        if (strstr(name, filters[i]))
            return true;
    return false;
}

static void s_sbuffer_destroyp(msgpack_sbuffer *b)
{
    msgpack_sbuffer_destroy(b);
}

static int s_hash_field(kt_hash_t *h, const char *s)
{
    uint32_t n = (uint32_t)strlen(s);
    int r = kt_hash_update(h, &n, sizeof(n));
    return r < 0 ? r : kt_hash_update(h, s, n);
}

/* Kernel, runner (inside the plan's payload) and test: what the cell is. */
static int s_cell_id(const kt_cellspec_t *s, char ret[KT_SHA_HEX])
{
    _cleanup_(s_sbuffer_destroyp) msgpack_sbuffer plan;
    msgpack_sbuffer_init(&plan);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &plan, msgpack_sbuffer_write);
    kt_plan_pack(&pk, &s->plan);
    if (!plan.data)
        return -ENOMEM;
    kt_hash_t h;
    int r = kt_hash_init(&h);
    if (r >= 0)
        r = s_hash_field(&h, "ktstr-selftest-v1");
    if (r >= 0)
        r = s_hash_field(&h, s->kernel_sha);
    uint32_t n = (uint32_t)plan.size;
    if (r >= 0)
        r = kt_hash_update(&h, &n, sizeof(n));
    if (r >= 0)
        r = kt_hash_update(&h, plan.data, plan.size);
    if (r >= 0)
        r = kt_hash_final_hex(&h, ret);
    return r < 0 ? r : 0;
}

int kt_selftests_prepare(const kt_selftests_config_t *cfg, const kt_selftest_t *tests, unsigned n,
                         kt_coord_run_t *ret, char *err, size_t err_len)
{
    if (!n) {
        snprintf(err, err_len, "no selftest to run");
        return -EINVAL;
    }
    if (!kt_topology_valid(&cfg->topology)) {
        snprintf(err, err_len, "invalid topology");
        return -EINVAL;
    }
    _cleanup_(kt_coord_run_free) kt_coord_run_t run = {0};
    run.kernels = calloc(1, sizeof(*run.kernels));
    run.scheds = calloc(1, sizeof(*run.scheds));
    run.payloads = calloc(1, sizeof(*run.payloads));
    run.cells = calloc(n, sizeof(*run.cells));
    if (!run.kernels || !run.scheds || !run.payloads || !run.cells)
        return -ENOMEM;
    char why[1024];
    kt_coord_kernel_t *k = &run.kernels[0];
    int r = kt_kernel_resolve(cfg->kernel, cfg->kernel_label, k, &run.commit_lookups, why,
                              sizeof(why));
    if (r < 0) {
        snprintf(err, err_len, "--kernel '%s': %s", cfg->kernel, why);
        return r;
    }
    run.n_kernels = 1;
    snprintf(run.scheds[0].name, sizeof(run.scheds[0].name), "eevdf");
    run.scheds[0].kernel = -1;
    run.n_scheds = 1;
    unsigned idx;
    if ((r = kt_coord_run_add_payload(&run, 1, cfg->runner, &idx, why, sizeof(why))) < 0) {
        snprintf(err, err_len, "runner %s", why);
        return r;
    }
    const kt_coord_sched_t *pl = &run.payloads[idx];
    const char *base = pl->name;

    char topo[KT_TOPOLOGY_LABEL_MAX];
    kt_topology_label(&cfg->topology, topo, sizeof(topo));
    const char *preset = cfg->topology_preset ? cfg->topology_preset
                                              : kt_topology_preset_name(&cfg->topology);
    uint32_t timeout = cfg->timeout_ms ? cfg->timeout_ms : KT_SELFTESTS_DEFAULT_TIMEOUT_MS;
    for (unsigned i = 0; i < n; i++) {
        kt_coord_cell_t *c = &run.cells[i];
        kt_cellspec_t *s = &c->spec;
        memset(c, 0, sizeof(*c));
        snprintf(s->cell_name, sizeof(s->cell_name), "selftests/%s/%s/%s", tests[i].name,
                 preset ? preset : topo, k->label);
        snprintf(s->kernel_label, sizeof(s->kernel_label), "%s", k->label);
        snprintf(s->kernel_version, sizeof(s->kernel_version), "%s", k->version);
        snprintf(s->kernel_commit, sizeof(s->kernel_commit), "%s", k->commit);
        snprintf(s->kernel_sha, sizeof(s->kernel_sha), "%s", k->sha);
        s->kernel_size = k->size;
        snprintf(s->sched_name, sizeof(s->sched_name), "eevdf");
        snprintf(s->profile, sizeof(s->profile), "default");
        snprintf(s->topology_preset, sizeof(s->topology_preset), "%s", preset ? preset : "");
        s->memory_mib = kt_topology_memory_mib(&cfg->topology, 0);
        kt_plan_t *p = &s->plan;
        snprintf(p->scenario, sizeof(p->scenario), "selftest_%.54s", tests[i].name);
        p->topology = cfg->topology;
        p->duration_ms = timeout;
        kt_thresholds_default(&p->thresholds);
        kt_payload_spec_t *ps = &p->payload;
        kt_payload_spec_init(ps);
        snprintf(ps->name, sizeof(ps->name), "%s", base);
        kt_coord_payload_stamp(&run, idx, ps);
        const char *args[] = {"-t", tests[i].name};
        if (kt_payload_args_set(ps, args, 2) < 0) {
            snprintf(err, err_len, "test '%s': name too long", tests[i].name);
            return -E2BIG;
        }
        ps->timeout_ms = timeout;
        if (cfg->max_output)
            ps->max_output = cfg->max_output;
        ps->judge = KT_PAYLOAD_JUDGE_TAP;
        snprintf(ps->tap_test, sizeof(ps->tap_test), "%s", tests[i].name);
        if ((r = s_cell_id(s, s->cell_id)) < 0) {
            snprintf(err, err_len, "cannot hash a cell: %s", strerror(-r));
            return r;
        }
        c->kernel = 0;
        c->sched = 0;
        c->vcpus = kt_topology_cpus(&cfg->topology);
        c->memory_mib = s->memory_mib;
        c->est_ms = kt_matrix_estimate_ms(c);
        run.n_cells++;
    }
    *ret = run;
    memset(&run, 0, sizeof(run));
    return 0;
}
