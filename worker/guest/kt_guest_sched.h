/* The scheduler under test inside the guest: starting its binary with its
 * output captured, keeping the tail of that output, and reading sched_ext's
 * state and ops name from sysfs. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define KT_GUEST_SCHED_OUTPUT_MAX 4096
#define KT_GUEST_SCHED_LINE_MAX 512
#define KT_GUEST_SCHED_EXT_DIR "/sys/kernel/sched_ext"

/* The last KT_GUEST_SCHED_OUTPUT_MAX bytes of a stream, and the stream cut
 * into lines (each handed to a callback: ktstr-init copies them to the
 * console). Lines longer than KT_GUEST_SCHED_LINE_MAX are cut. */
typedef struct kt_guest_outbuf {
    char tail[KT_GUEST_SCHED_OUTPUT_MAX];
    size_t tail_len;
    size_t total;                    /* bytes seen in all */
    char line[KT_GUEST_SCHED_LINE_MAX];
    size_t line_len;
} kt_guest_outbuf_t;

typedef void (*kt_guest_line_fn)(const char *line, void *userdata);

void kt_guest_outbuf_init(kt_guest_outbuf_t *o);
void kt_guest_outbuf_feed(kt_guest_outbuf_t *o, const char *data, size_t len, kt_guest_line_fn fn,
                          void *userdata);
/* Hands a pending unterminated line to fn (at end of stream). */
void kt_guest_outbuf_flush(kt_guest_outbuf_t *o, kt_guest_line_fn fn, void *userdata);
/* The kept tail as a string (at most len - 1 bytes, the newest ones). */
void kt_guest_outbuf_tail(const kt_guest_outbuf_t *o, char *buf, size_t len);
/* The last non-empty line of the kept tail (for reasons). */
void kt_guest_outbuf_last_line(const kt_guest_outbuf_t *o, char *buf, size_t len);
/* The last line of the kept tail that reads like an error ("error",
 * "invalid", "failed", "unknown", "denied", "cannot", "unable", any case, or
 * "EXIT:"), else the last non-empty line: a usage error followed by the help
 * text gives the usage error. */
void kt_guest_outbuf_error_line(const kt_guest_outbuf_t *o, char *buf, size_t len);

/* Forks and execs path with args (argv[0] = path), stdin from /dev/null,
 * stdout and stderr into a pipe whose non-blocking read end is returned
 * (caller owns). The child starts in its own process group. 0 or -errno. */
int kt_guest_sched_spawn(const char *path, const char *const *args, unsigned n_args,
                         pid_t *ret_pid, int *ret_out_fd);

/* True when the kernel has sched_ext (KT_GUEST_SCHED_EXT_DIR exists). */
bool kt_guest_sched_ext_available(void);
/* sched_ext's state ("enabled", "disabled", ...), -errno when unreadable. */
int kt_guest_sched_state(char *buf, size_t len);
/* The running BPF scheduler's ops name (root/ops); -errno when none. */
int kt_guest_sched_ops(char *buf, size_t len);

/* "exited with status 1" / "killed by signal 9 (Killed)". */
void kt_guest_sched_describe_status(int status, char *buf, size_t len);
/* The exit code, or -N when killed by signal N. */
int kt_guest_sched_exit_code(int status);
