/* The kernel log as ktstr-init watches it: /dev/kmsg records parsed and
 * sorted into sched_ext lines (kept for the result), a BPF scheduler being
 * disabled (a scheduler failure) and kernel problems (BUG, WARNING, lockups,
 * hung tasks, RCU stalls: a failure in any cell). */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define KT_KMSG_TEXT_MAX 512
/* /dev/kmsg returns -EINVAL to a read buffer shorter than the record. */
#define KT_KMSG_RECORD_MAX 8192

typedef struct kt_kmsg_record {
    unsigned level;       /* syslog level 0 (emerg) .. 7 (debug) */
    uint64_t seq;
    uint64_t ts_us;       /* since boot */
    char text[KT_KMSG_TEXT_MAX]; /* the message, first line only, truncated */
} kt_kmsg_record_t;

/* Parses one /dev/kmsg record "prio,seq,ts,flags[,...];text\n[ KEY=v\n...]".
 * -EBADMSG when it does not have that shape. */
int kt_kmsg_parse(const char *rec, size_t len, kt_kmsg_record_t *ret);

enum kt_kmsg_kind {
    KT_KMSG_OTHER = 0,
    KT_KMSG_SCHED_EXT,        /* mentions sched_ext / BPF scheduler: keep */
    KT_KMSG_SCHED_DISABLED,   /* `BPF scheduler "x" disabled (why)`: the scheduler failed */
    KT_KMSG_KERNEL_PROBLEM,   /* BUG:, WARNING:, lockup, hung task, RCU stall */
};

enum kt_kmsg_kind kt_kmsg_classify(const char *text);

/* Opens /dev/kmsg non-blocking, positioned at the end (only records logged
 * from now on are read). fd or -errno; the caller owns and closes it. */
int kt_kmsg_open_tail(void);

/* Reads one record. 1 with *ret filled, 0 when none is pending, -EPIPE when
 * records were overwritten before they were read (reading may go on),
 * other -errno on failure. */
int kt_kmsg_read(int fd, kt_kmsg_record_t *ret);
