/* The kernel log as ktstr-init watches it: /dev/kmsg records parsed and
 * sorted into sched_ext lines (kept for the result), a BPF scheduler being
 * disabled (a scheduler failure) and kernel problems (BUG, WARNING, lockups,
 * hung tasks, RCU stalls: a failure in any cell). */
#pragma once

#include <stdbool.h>
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

/* The kernel's report of a BPF scheduler's exit, as 6.12's
 * scx_ops_disable_workfn() prints it:
 *   sched_ext: BPF scheduler "central" disabled (runtime error)   <- kind
 *   sched_ext: central: SCX_DSQ_LOCAL[_ON] cannot move ...         <- message
 *      task_can_run_on_remote_rq+0x4b/0x8d                        <- backtrace
 *      ...
 * An error exit (KERN_ERR) carries the message (when the scheduler or the
 * kernel gave one) and the backtrace of where it was raised; a normal
 * unregistration prints the first line only. */
#define KT_SCX_EXIT_BT_MAX 16
#define KT_SCX_EXIT_FRAME_LEN 96

typedef struct kt_scx_exit {
    bool seen;                 /* a "disabled (...)" line was read */
    char head[KT_KMSG_TEXT_MAX]; /* that line as the kernel wrote it */
    char name[64];             /* the scheduler it names (ops name) */
    bool error;                /* printed at KERN_ERR or above: an error exit */
    char kind[64];             /* the words in parentheses */
    char message[384];         /* the next line, without "sched_ext: NAME: " */
    unsigned n_bt;
    char bt[KT_SCX_EXIT_BT_MAX][KT_SCX_EXIT_FRAME_LEN];
    bool bt_truncated;         /* more frames than KT_SCX_EXIT_BT_MAX */
    uint64_t ts_us;            /* the kernel's timestamp of the first line */
    unsigned stage_;           /* where the parser is: private */
} kt_scx_exit_t;

/* Feeds one kernel log record, in order. Only the first exit report is kept
 * (the one that failed the cell). True when the record was part of it. */
bool kt_scx_exit_feed(kt_scx_exit_t *e, const kt_kmsg_record_t *rec);

/* True while an error exit report may still get lines (message, frames). */
bool kt_scx_exit_open(const kt_scx_exit_t *e);
/* True while an error exit report still waits for its message line (it
 * follows the head at once, when the kernel has one). */
bool kt_scx_exit_awaits_message(const kt_scx_exit_t *e);
/* The failure in the kernel's words: the head line, then
 * "; sched_ext: NAME: message" when there is a message. "" before a head. */
void kt_scx_exit_reason(const kt_scx_exit_t *e, char *buf, size_t len);
