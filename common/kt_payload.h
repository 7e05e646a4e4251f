/* Payload cells: a static binary that ktstr-init runs in the guest as the
 * cell's workload (instead of, or beside, the plan's cgroup workers). This
 * file holds the spec (what to run, its bounds, how to judge it), the
 * readers of what it printed (the numeric leaves of its last JSON object as
 * metrics "a.b.c", TAP result lines), the bounded head + tail capture of its
 * output and the parsing of check expressions ("ops>=1000"). Plain C without
 * allocation in the parsers: the static ktstr-init and the host share it. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KT_PAYLOAD_NAME_MAX 64
#define KT_PAYLOAD_SHA_HEX 65
#define KT_PAYLOAD_ARGS_MAX 32
#define KT_PAYLOAD_ARGS_BYTES 1024      /* every argument with its NUL */
#define KT_PAYLOAD_CHECKS_MAX 16
#define KT_PAYLOAD_METRIC_NAME_MAX 64
#define KT_PAYLOAD_METRICS_MAX 128
#define KT_PAYLOAD_OUTPUT_MIN 1024u
#define KT_PAYLOAD_OUTPUT_DEFAULT (256u << 10)
#define KT_PAYLOAD_OUTPUT_MAX (512u << 10)
#define KT_PAYLOAD_TIMEOUT_DEFAULT_MS 60000u
#define KT_PAYLOAD_TIMEOUT_MAX_MS (24u * 3600 * 1000)
#define KT_PAYLOAD_TAP_LINE_MAX 160

/* How the payload's outcome is judged besides its checks. */
enum kt_payload_judge {
    KT_PAYLOAD_JUDGE_EXIT = 0,  /* its exit status (0 unless an "exit==N" check says otherwise) */
    KT_PAYLOAD_JUDGE_TAP,       /* its TAP result lines (ok / not ok / # SKIP); the exit status
                                 * only when an "exit==N" check asks */
};

enum kt_payload_check_kind {
    KT_PAYLOAD_CHECK_MIN = 0,   /* metric >= lo */
    KT_PAYLOAD_CHECK_MAX,       /* metric <= hi */
    KT_PAYLOAD_CHECK_RANGE,     /* lo <= metric <= hi */
    KT_PAYLOAD_CHECK_EXIT,      /* exit status == lo (exited, not killed) */
};

typedef struct kt_payload_check {
    enum kt_payload_check_kind kind;
    char metric[KT_PAYLOAD_METRIC_NAME_MAX]; /* "" for EXIT */
    double lo, hi;
} kt_payload_check_t;

typedef struct kt_payload_spec {
    char name[KT_PAYLOAD_NAME_MAX];    /* file under /payload/ in the guest; "" = no payload */
    char sha[KT_PAYLOAD_SHA_HEX];      /* sha256 of the binary ("" when not known): part of
                                        * the cell's identity; the fleet ships it by this */
    uint64_t size;
    unsigned n_args;
    char args[KT_PAYLOAD_ARGS_BYTES];  /* n_args NUL-terminated strings back to back */
    uint32_t timeout_ms;               /* then it is killed: error */
    uint32_t max_output;               /* bytes of output kept: half head, half tail */
    enum kt_payload_judge judge;
    char tap_test[KT_PAYLOAD_NAME_MAX]; /* TAP: judge by this test's line; "" = every line */
    unsigned n_checks;
    kt_payload_check_t checks[KT_PAYLOAD_CHECKS_MAX];
} kt_payload_spec_t;

typedef struct kt_payload_metric {
    char name[KT_PAYLOAD_METRIC_NAME_MAX];
    double value;
} kt_payload_metric_t;

enum kt_payload_tap_status {
    KT_PAYLOAD_TAP_NONE = 0,    /* no result line (for the named test) */
    KT_PAYLOAD_TAP_PASS,
    KT_PAYLOAD_TAP_FAIL,
    KT_PAYLOAD_TAP_SKIP,
};

typedef struct kt_payload_tap {
    unsigned pass, fail, skip;         /* result lines of any test */
    enum kt_payload_tap_status status; /* the named test's, or all lines' (any fail: fail,
                                        * else any pass: pass, else skip) */
    char line[KT_PAYLOAD_TAP_LINE_MAX]; /* the result line that decided status */
} kt_payload_tap_t;

/* What became of one run of the payload. */
typedef struct kt_payload_outcome {
    bool started;
    bool exited;                       /* reaped; exit_code / signal are valid */
    int exit_code;                     /* -1 when killed by a signal */
    int signal;                        /* 0 when it exited */
    bool timed_out;                    /* still running at timeout_ms: killed */
    bool killed;                       /* killed by ktstr-init: at its timeout, or because the
                                        * cell stopped (the scheduler failed) */
    double wall_ms;                    /* exec -> reaped */
    uint64_t output_bytes;             /* everything it wrote (stdout + stderr) */
    bool json;                         /* a JSON value was found in stdout */
    unsigned n_metrics;
    bool metrics_truncated;            /* more numeric leaves than KT_PAYLOAD_METRICS_MAX
                                        * (or names too long to keep) */
    kt_payload_metric_t metrics[KT_PAYLOAD_METRICS_MAX];
    kt_payload_tap_t tap;
} kt_payload_outcome_t;

void kt_payload_spec_init(kt_payload_spec_t *s);
static inline bool kt_payload_present(const kt_payload_spec_t *s)
{
    return s->name[0] != '\0';
}

/* Arguments: set from an argv (-E2BIG over the limits), or split from a
 * command-line text on blanks with '...' and "..." quoting and backslash
 * escapes (-EINVAL for an unterminated quote, with why). The i-th argument,
 * or NULL past the end. */
int kt_payload_args_set(kt_payload_spec_t *s, const char *const *argv, unsigned n);
int kt_payload_args_split(kt_payload_spec_t *s, const char *text, char *why, size_t why_len);
const char *kt_payload_arg(const kt_payload_spec_t *s, unsigned i);

/* A check from text: "METRIC>=N", "METRIC<=N", "METRIC==N" (a range of one
 * value), "METRIC=A..B" (or ==), "exit==N" (or exit=N). METRIC is a dotted
 * path into the payload's JSON ("lat.p99", "runs.0.ops"). -EINVAL with why. */
int kt_payload_check_parse(const char *text, kt_payload_check_t *ret, char *why, size_t why_len);
/* The text form back ("ops>=1000", "lat.p99=1..5", "exit==3"). */
void kt_payload_check_format(const kt_payload_check_t *c, char *buf, size_t len);
/* Appends a check; -E2BIG when full. */
int kt_payload_check_add(kt_payload_spec_t *s, const kt_payload_check_t *c);

/* The numeric leaves of the last JSON object or array of text: the whole
 * text when it is one JSON value, else the last one that starts a line
 * ('{' or '[' after optional blanks) and runs to the end (trailing blanks
 * allowed). Leaves are named by their path, objects' keys and arrays'
 * indexes joined by '.'; booleans, null and strings are not metrics; a name
 * longer than KT_PAYLOAD_METRIC_NAME_MAX - 1 is dropped (truncated = true).
 * A key seen twice keeps its last value. Depth is bounded (32).
 * 0 when a JSON value was found (maybe without numbers), -ENOENT when not. */
int kt_payload_json_metrics(const char *text, size_t len, kt_payload_metric_t *out, unsigned max,
                            unsigned *ret_n, bool *ret_truncated);
/* The value of a metric; NULL when absent. */
const kt_payload_metric_t *kt_payload_metric_find(const kt_payload_outcome_t *o, const char *name);

/* TAP result lines in text (only lines that start in column 0: indented
 * subtest lines are not counted): `ok`, `not ok`, an optional number, an
 * optional "- ", the description, an optional `# SKIP` / `# TODO`
 * directive ("not ok ... # TODO" is not a failure). `Bail out!` is a
 * failure. test: judge by the lines whose description is exactly this
 * (any of them failing fails it); NULL or "": by every line. */
void kt_payload_tap_scan(const char *text, size_t len, const char *test, kt_payload_tap_t *ret);
const char *kt_payload_tap_status_name(enum kt_payload_tap_status s);

/* The output of a payload, bounded: the first max/2 bytes and the last
 * max/2 bytes are kept, and what fell between them is counted. */
typedef struct kt_payload_capture {
    char *buf;               /* head (cap_head bytes) then the tail ring (cap_tail) */
    size_t cap_head, cap_tail;
    size_t head_len;
    size_t tail_start, tail_len;  /* ring */
    uint64_t total;
} kt_payload_capture_t;

/* 0 or -ENOMEM; max is clamped to [KT_PAYLOAD_OUTPUT_MIN, KT_PAYLOAD_OUTPUT_MAX]. */
int kt_payload_capture_init(kt_payload_capture_t *c, size_t max);
void kt_payload_capture_free(kt_payload_capture_t *c);
void kt_payload_capture_feed(kt_payload_capture_t *c, const void *data, size_t len);
/* The head (NUL-terminated copy into buf, at most len - 1 bytes), the tail
 * (what follows the head, the last cap_tail bytes of it), and how many
 * bytes were dropped between them. */
size_t kt_payload_capture_head(const kt_payload_capture_t *c, char *buf, size_t len);
size_t kt_payload_capture_tail(const kt_payload_capture_t *c, char *buf, size_t len);
uint64_t kt_payload_capture_dropped(const kt_payload_capture_t *c);
