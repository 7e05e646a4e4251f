/* A minimal QMP client for the VM runner: connect to QEMU's monitor socket,
 * read the greeting, negotiate capabilities, run a few commands (quit,
 * system_powerdown, query-status) and notice asynchronous events (STOP,
 * SHUTDOWN, GUEST_PANICKED) without blocking. Every read is bounded in size
 * (KT_QMP_LINE_MAX per message) and in time (each call takes a timeout). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KT_QMP_LINE_MAX (64u << 10)
#define KT_QMP_EVENT_MAX 64

typedef struct kt_qmp kt_qmp_t;

/* Connects to the unix socket at path (one attempt; -ENOENT or -ECONNREFUSED
 * while QEMU has not created it yet), reads the greeting and runs
 * qmp_capabilities, all within timeout_ms. Caller owns *ret. */
int kt_qmp_connect(const char *path, uint32_t timeout_ms, kt_qmp_t **ret);
void kt_qmp_destroy(kt_qmp_t **self_p);

/* The socket, for poll(); readable when QEMU sent something. */
int kt_qmp_fd(const kt_qmp_t *self);

/* Runs a command without arguments and waits for its reply. Events that
 * arrive meanwhile are queued for kt_qmp_next_event. 0, -EREMOTEIO with
 * QEMU's error description in err (may be NULL), -ETIMEDOUT, -EPIPE when
 * QEMU closed the socket, -EPROTO for a reply that is not QMP. */
int kt_qmp_execute(kt_qmp_t *self, const char *command, uint32_t timeout_ms, char *err,
                   size_t err_len);

/* query-status: the run state ("running", "paused", "internal-error",
 * "guest-panicked", "shutdown", ...) into status, and whether it runs. */
int kt_qmp_query_status(kt_qmp_t *self, uint32_t timeout_ms, char *status, size_t status_len,
                        bool *ret_running);

/* "quit" (QEMU exits at once) and "system_powerdown" (ACPI power button). */
int kt_qmp_quit(kt_qmp_t *self, uint32_t timeout_ms);
int kt_qmp_system_powerdown(kt_qmp_t *self, uint32_t timeout_ms);

/* Reads whatever is available without blocking and returns the next queued
 * event: 1 and its name in event (KT_QMP_EVENT_MAX bytes), 0 when none,
 * -EPIPE when QEMU closed the socket, -EMSGSIZE / -EPROTO for a bad line. */
int kt_qmp_next_event(kt_qmp_t *self, char event[KT_QMP_EVENT_MAX]);
