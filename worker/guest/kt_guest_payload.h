/* A payload cell's binary inside the guest: started in its own process
 * group with stdout and stderr on pipes, its output kept bounded (head and
 * tail of stdout + stderr as they came, and of stdout alone for its JSON
 * metrics and TAP lines), reaped with its exit status and wall time, killed
 * with its whole process group at its timeout or when the cell stops it. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "kt_payload.h"

#define KT_GUEST_PAYLOAD_DIR "/payload"

typedef struct kt_guest_payload kt_guest_payload_t;

/* Forks and execs {dir}/{spec->name} with spec's arguments (argv[0] is the
 * path), cwd /tmp, stdin /dev/null, stdout a pseudo-terminal in raw mode
 * (devpts is mounted when missing; a pipe when there are no ptys), stderr a
 * pipe. The child is in its own process group,
 * with default signal dispositions and an empty signal mask. spec must
 * outlive the payload. 0, or -errno with why. Caller owns *ret. */
int kt_guest_payload_start(const kt_payload_spec_t *spec, const char *dir, kt_guest_payload_t **ret,
                           char *why, size_t why_len);

/* Reads what the payload wrote (waiting up to wait_ms for it) and reaps it
 * once it exited. 1 when it has exited (or was killed) and is reaped, 0
 * while it runs. */
int kt_guest_payload_poll(kt_guest_payload_t *p, unsigned wait_ms);

/* SIGKILLs the payload's process group and reaps it (bounded: 5 s).
 * timed_out marks the outcome as a timeout. */
void kt_guest_payload_kill(kt_guest_payload_t *p, bool timed_out);

/* After the payload is reaped: kills what it left running in its process
 * group, reads the rest of its output (bounded), and fills the outcome's
 * metrics (the last JSON value of stdout) and TAP result (for
 * spec->tap_test, or every line). */
void kt_guest_payload_finish(kt_guest_payload_t *p);

pid_t kt_guest_payload_pid(const kt_guest_payload_t *p);
const kt_payload_outcome_t *kt_guest_payload_outcome(const kt_guest_payload_t *p);
const kt_payload_spec_t *kt_guest_payload_spec(const kt_guest_payload_t *p);
/* stdout + stderr as they came: the head, the tail after it, and the bytes
 * dropped between them. Control characters other than tab and newline
 * become '?'. The strings live as long as p. */
const char *kt_guest_payload_output_head(const kt_guest_payload_t *p);
const char *kt_guest_payload_output_tail(const kt_guest_payload_t *p);
uint64_t kt_guest_payload_output_dropped(const kt_guest_payload_t *p);

/* "exited with status 3", "killed by signal 11 (Segmentation fault)",
 * "timed out after 5000 ms: killed". */
void kt_guest_payload_describe(const kt_payload_outcome_t *o, uint32_t timeout_ms, char *buf,
                               size_t len);

void kt_guest_payload_destroy(kt_guest_payload_t **p);
