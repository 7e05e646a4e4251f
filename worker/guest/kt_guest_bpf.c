/* BPF program cost in ktstr-init (see kt_guest_bpf.h). */
#include "kt_guest_bpf.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <linux/bpf.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kt_guest_sys.h"

void kt_guest_bpf_init(kt_guest_bpf_t *b)
{
    memset(b, 0, sizeof(*b));
    b->stats_fd = -1;
}

int kt_guest_bpf_stats_enable(kt_guest_bpf_t *b)
{
    if (b->stats_by[0])
        return 0;
    /* The fd is O_CLOEXEC (the kernel makes it so): the scheduler and the
     * workers do not inherit it. */
    int fd = bpf_enable_stats(BPF_STATS_RUN_TIME);
    if (fd >= 0) {
        b->stats_fd = fd;
        snprintf(b->stats_by, sizeof(b->stats_by), "bpf_enable_stats");
        return 0;
    }
    int e1 = errno;
    int r = kt_guest_sys_write_file(KT_GUEST_BPF_SYSCTL, "1");
    if (r == 0) {
        snprintf(b->stats_by, sizeof(b->stats_by), "sysctl");
        return 0;
    }
    snprintf(b->error, sizeof(b->error),
             "BPF run-time stats could not be turned on: BPF_ENABLE_STATS: %s; '%s': %s",
             strerror(e1), KT_GUEST_BPF_SYSCTL, strerror(-r));
    return -e1;
}

static void s_type_name(uint32_t type, char *buf, size_t len)
{
    const char *name = libbpf_bpf_prog_type_str((enum bpf_prog_type)type);
    if (name)
        snprintf(buf, len, "%s", name);
    else
        snprintf(buf, len, "type_%u", type);
}

int kt_guest_bpf_snapshot(kt_guest_bpf_snap_t *ret, char *why, size_t why_len)
{
    memset(ret, 0, sizeof(*ret));
    uint32_t id = 0;
    for (;;) {
        /* libbpf >= 1.0 returns -errno. */
        int r = bpf_prog_get_next_id(id, &id);
        if (r == -ENOENT)
            break;
        if (r < 0) {
            snprintf(why, why_len, "listing BPF programs after id %u: %s", id, strerror(-r));
            return r;
        }
        if (ret->n >= KT_GUEST_BPF_PROGS_MAX) {
            ret->truncated = true;
            break;
        }
        int fd = bpf_prog_get_fd_by_id(id);
        if (fd < 0) {
            if (fd == -ENOENT)
                continue; /* unloaded since it was listed */
            snprintf(why, why_len, "opening BPF program %u: %s", id, strerror(-fd));
            return fd;
        }
        struct bpf_prog_info info;
        memset(&info, 0, sizeof(info));
        uint32_t len = sizeof(info);
        /* bpf_prog_get_info_by_fd is libbpf 1.2; Debian 12 has 1.1. */
        r = bpf_obj_get_info_by_fd(fd, &info, &len);
        close(fd);
        if (r < 0) {
            snprintf(why, why_len, "reading BPF program %u's info: %s", id, strerror(-r));
            return r;
        }
        kt_bpf_prog_cost_t *p = &ret->progs[ret->n++];
        p->id = info.id;
        size_t nl = strnlen(info.name, sizeof(info.name));
        if (nl >= sizeof(p->name))
            nl = sizeof(p->name) - 1;
        memcpy(p->name, info.name, nl);
        p->name[nl] = '\0';
        s_type_name(info.type, p->type, sizeof(p->type));
        p->struct_ops = info.type == BPF_PROG_TYPE_STRUCT_OPS;
        p->verified_insns = info.verified_insns;
        p->run_cnt = info.run_cnt;
        p->run_time_ns = info.run_time_ns;
    }
    ret->at_ns = kt_guest_sys_now_ns();
    return 0;
}

static const kt_bpf_prog_cost_t *s_find(const kt_guest_bpf_snap_t *s, uint32_t id)
{
    for (unsigned i = 0; i < s->n && i < KT_GUEST_BPF_PROGS_MAX; i++)
        if (s->progs[i].id == id)
            return &s->progs[i];
    return NULL;
}

void kt_guest_bpf_delta(kt_guest_bpf_t *b)
{
    const kt_guest_bpf_snap_t *before = &b->before, *after = &b->after;
    b->n_progs = 0;
    b->unloaded = 0;
    b->n_struct_ops = 0;
    b->struct_ops_calls = 0;
    b->struct_ops_run_time_ns = 0;
    b->truncated = before->truncated || after->truncated;
    b->interval_ms = after->at_ns > before->at_ns ? (double)(after->at_ns - before->at_ns) / 1e6
                                                  : 0.0;
    for (unsigned i = 0; i < after->n && i < KT_GUEST_BPF_PROGS_MAX; i++) {
        const kt_bpf_prog_cost_t *a = &after->progs[i];
        const kt_bpf_prog_cost_t *p = s_find(before, a->id);
        kt_bpf_prog_cost_t *d = &b->progs[b->n_progs++];
        *d = *a;
        if (p) {
            d->run_cnt = a->run_cnt >= p->run_cnt ? a->run_cnt - p->run_cnt : 0;
            d->run_time_ns = a->run_time_ns >= p->run_time_ns ? a->run_time_ns - p->run_time_ns
                                                              : 0;
        }
        if (d->struct_ops) {
            b->n_struct_ops++;
            b->struct_ops_calls += d->run_cnt;
            b->struct_ops_run_time_ns += d->run_time_ns;
        }
    }
    for (unsigned i = 0; i < before->n && i < KT_GUEST_BPF_PROGS_MAX; i++)
        b->unloaded += s_find(after, before->progs[i].id) == NULL;
}

int kt_guest_bpf_begin(kt_guest_bpf_t *b)
{
    char why[160];
    int r = kt_guest_bpf_snapshot(&b->before, why, sizeof(why));
    if (r < 0) {
        snprintf(b->error, sizeof(b->error), "before the workload: %s", why);
        return r;
    }
    b->have_before = true;
    return 0;
}

int kt_guest_bpf_end(kt_guest_bpf_t *b)
{
    if (!b->have_before)
        return -ENODATA;
    char why[160];
    int r = kt_guest_bpf_snapshot(&b->after, why, sizeof(why));
    if (r < 0) {
        snprintf(b->error, sizeof(b->error), "after the workload: %s", why);
        return r;
    }
    kt_guest_bpf_delta(b);
    b->measured = b->stats_by[0] != '\0';
    return 0;
}

double kt_guest_bpf_struct_ops_ns_per_call(const kt_guest_bpf_t *b)
{
    return b->struct_ops_calls ? (double)b->struct_ops_run_time_ns / (double)b->struct_ops_calls
                               : 0.0;
}
