/* Minimal QMP client (see kt_qmp.h). The socket stays non-blocking; calls
 * that wait do so with poll() against a deadline. Replies are matched by an
 * "id" so a reply that arrives after its command timed out is never taken
 * for the next command's. */
#include "kt_qmp.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "kt_cleanup.h"
#include "kt_mpjson.h"

#define S_EVENT_QUEUE 16

struct kt_qmp {
    int fd;
    char *buf;  /* KT_QMP_LINE_MAX + 1 bytes */
    size_t len; /* bytes held in buf */
    uint64_t next_id;
    char events[S_EVENT_QUEUE][KT_QMP_EVENT_MAX];
    unsigned ev_head;
    unsigned ev_count;
};

static uint64_t s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void s_queue_event(kt_qmp_t *self, const char *name)
{
    /* Bounded: when full the oldest event is dropped; callers only need the
     * recent ones (a STOP that should trigger a query-status). */
    if (self->ev_count == S_EVENT_QUEUE) {
        self->ev_head = (self->ev_head + 1) % S_EVENT_QUEUE;
        self->ev_count--;
    }
    unsigned slot = (self->ev_head + self->ev_count) % S_EVENT_QUEUE;
    snprintf(self->events[slot], KT_QMP_EVENT_MAX, "%s", name);
    self->ev_count++;
}

/* Takes one complete line out of buf if there is one: 1 and *ret (caller
 * owns), 0 when no newline yet, -EMSGSIZE when the buffer is full without
 * one. */
static int s_take_line(kt_qmp_t *self, char **ret)
{
    char *nl = memchr(self->buf, '\n', self->len);
    if (!nl)
        return self->len >= KT_QMP_LINE_MAX ? -EMSGSIZE : 0;
    size_t n = (size_t)(nl - self->buf);
    char *line = malloc(n + 1);
    if (!line)
        return -ENOMEM;
    memcpy(line, self->buf, n);
    line[n] = '\0';
    memmove(self->buf, nl + 1, self->len - n - 1);
    self->len -= n + 1;
    *ret = line;
    return 1;
}

/* Reads one line, waiting until deadline_ms (0: do not wait). 1 and *ret,
 * 0 when none is available before the deadline, negative errno. */
static int s_read_line(kt_qmp_t *self, uint64_t deadline_ms, char **ret)
{
    for (;;) {
        int r = s_take_line(self, ret);
        if (r != 0)
            return r;
        ssize_t n = read(self->fd, self->buf + self->len, KT_QMP_LINE_MAX - self->len);
        if (n > 0) {
            self->len += (size_t)n;
            continue;
        }
        if (n == 0)
            return -EPIPE;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return -errno;
        uint64_t now = s_now_ms();
        if (deadline_ms == 0 || now >= deadline_ms)
            return 0;
        struct pollfd p = {.fd = self->fd, .events = POLLIN};
        int wait = (int)(deadline_ms - now);
        if (poll(&p, 1, wait) < 0 && errno != EINTR)
            return -errno;
    }
}

static int s_write_all(kt_qmp_t *self, const char *s, size_t len, uint64_t deadline_ms)
{
    while (len > 0) {
        ssize_t n = send(self->fd, s, len, MSG_NOSIGNAL);
        if (n > 0) {
            s += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            return errno == EPIPE || errno == ECONNRESET ? -EPIPE : -errno;
        uint64_t now = s_now_ms();
        if (now >= deadline_ms)
            return -ETIMEDOUT;
        struct pollfd p = {.fd = self->fd, .events = POLLOUT};
        if (poll(&p, 1, (int)(deadline_ms - now)) < 0 && errno != EINTR)
            return -errno;
    }
    return 0;
}

/* Parses a line; queues it when it is an event. Returns the parsed object
 * (caller owns) or NULL with *ret_err set (-EPROTO when not a JSON object). */
static json_t *s_parse(kt_qmp_t *self, const char *line, int *ret_err)
{
    json_error_t jerr;
    json_t *j = json_loads(line, JSON_REJECT_DUPLICATES, &jerr);
    if (!j || !json_is_object(j)) {
        if (j)
            json_decref(j);
        *ret_err = -EPROTO;
        return NULL;
    }
    const char *ev = json_string_value(json_object_get(j, "event"));
    if (ev)
        s_queue_event(self, ev);
    return j;
}

/* Waits for the reply whose id is `id` (or, for the greeting, id 0: the
 * object with a "QMP" key). Caller owns *ret. */
static int s_wait_reply(kt_qmp_t *self, uint64_t id, uint64_t deadline_ms, json_t **ret)
{
    for (;;) {
        _cleanup_free_ char *line = NULL;
        int r = s_read_line(self, deadline_ms, &line);
        if (r < 0)
            return r;
        if (r == 0)
            return -ETIMEDOUT;
        int perr = 0;
        _cleanup_(kt_json_decrefp) json_t *j = s_parse(self, line, &perr);
        if (!j)
            return perr;
        if (id == 0) {
            if (json_object_get(j, "QMP")) {
                *ret = TAKE_PTR(j);
                return 0;
            }
            continue;
        }
        json_t *jid = json_object_get(j, "id");
        if (!json_is_integer(jid) || (uint64_t)json_integer_value(jid) != id)
            continue; /* an event, or a late reply to a command that timed out */
        if (!json_object_get(j, "return") && !json_object_get(j, "error"))
            return -EPROTO;
        *ret = TAKE_PTR(j);
        return 0;
    }
}

static int s_command(kt_qmp_t *self, const char *command, uint32_t timeout_ms, json_t **ret_return,
                     char *err, size_t err_len)
{
    for (const char *c = command; *c; c++)
        if (*c == '"' || *c == '\\' || (unsigned char)*c < 0x20)
            return -EINVAL;
    uint64_t deadline = s_now_ms() + timeout_ms;
    uint64_t id = ++self->next_id;
    char req[256];
    int n = snprintf(req, sizeof(req), "{\"execute\":\"%s\",\"id\":%llu}\n", command,
                     (unsigned long long)id);
    if (n < 0 || (size_t)n >= sizeof(req))
        return -ENAMETOOLONG;
    int r = s_write_all(self, req, (size_t)n, deadline);
    if (r < 0)
        return r;
    _cleanup_(kt_json_decrefp) json_t *reply = NULL;
    r = s_wait_reply(self, id, deadline, &reply);
    if (r < 0)
        return r;
    json_t *e = json_object_get(reply, "error");
    if (e) {
        if (err && err_len)
            snprintf(err, err_len, "%s",
                     json_string_value(json_object_get(e, "desc")) ?: "unknown QMP error");
        return -EREMOTEIO;
    }
    if (ret_return) {
        *ret_return = json_incref(json_object_get(reply, "return"));
    }
    return 0;
}

int kt_qmp_connect(const char *path, uint32_t timeout_ms, kt_qmp_t **ret)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (!path || strlen(path) >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    memcpy(sa.sun_path, path, strlen(path) + 1);

    _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    /* A unix stream connect either completes or fails at once (EAGAIN only
     * when the backlog is full, which we treat like "not ready"). */
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        return errno == EAGAIN ? -ECONNREFUSED : -errno;

    kt_qmp_t *self = calloc(1, sizeof(*self));
    if (!self)
        return -ENOMEM;
    self->buf = malloc(KT_QMP_LINE_MAX + 1);
    if (!self->buf) {
        free(self);
        return -ENOMEM;
    }
    self->fd = TAKE_FD(fd);

    uint64_t deadline = s_now_ms() + timeout_ms;
    _cleanup_(kt_json_decrefp) json_t *greeting = NULL;
    int r = s_wait_reply(self, 0, deadline, &greeting);
    if (r == 0) {
        uint64_t now = s_now_ms();
        r = s_command(self, "qmp_capabilities", now < deadline ? (uint32_t)(deadline - now) : 1,
                      NULL, NULL, 0);
    }
    if (r < 0) {
        kt_qmp_destroy(&self);
        return r;
    }
    *ret = self;
    return 0;
}

void kt_qmp_destroy(kt_qmp_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    kt_qmp_t *self = *self_p;
    if (self->fd >= 0)
        close(self->fd);
    free(self->buf);
    free(self);
    *self_p = NULL;
}

int kt_qmp_fd(const kt_qmp_t *self)
{
    return self ? self->fd : -1;
}

int kt_qmp_execute(kt_qmp_t *self, const char *command, uint32_t timeout_ms, char *err,
                   size_t err_len)
{
    if (!self || !command)
        return -EINVAL;
    return s_command(self, command, timeout_ms, NULL, err, err_len);
}

int kt_qmp_query_status(kt_qmp_t *self, uint32_t timeout_ms, char *status, size_t status_len,
                        bool *ret_running)
{
    if (!self)
        return -EINVAL;
    _cleanup_(kt_json_decrefp) json_t *ret = NULL;
    int r = s_command(self, "query-status", timeout_ms, &ret, NULL, 0);
    if (r < 0)
        return r;
    const char *st = json_string_value(json_object_get(ret, "status"));
    json_t *running = json_object_get(ret, "running");
    if (!st || !json_is_boolean(running))
        return -EPROTO;
    if (status && status_len)
        snprintf(status, status_len, "%s", st);
    if (ret_running)
        *ret_running = json_is_true(running);
    return 0;
}

int kt_qmp_quit(kt_qmp_t *self, uint32_t timeout_ms)
{
    int r = kt_qmp_execute(self, "quit", timeout_ms, NULL, 0);
    /* QEMU may close the socket before or instead of replying. */
    return r == -EPIPE ? 0 : r;
}

int kt_qmp_system_powerdown(kt_qmp_t *self, uint32_t timeout_ms)
{
    return kt_qmp_execute(self, "system_powerdown", timeout_ms, NULL, 0);
}

int kt_qmp_next_event(kt_qmp_t *self, char event[KT_QMP_EVENT_MAX])
{
    if (!self)
        return -EINVAL;
    int eof = 0;
    while (self->ev_count == 0) {
        _cleanup_free_ char *line = NULL;
        int r = s_read_line(self, 0, &line);
        if (r == -EPIPE) {
            eof = r;
            break;
        }
        if (r <= 0)
            return r;
        int perr = 0;
        _cleanup_(kt_json_decrefp) json_t *j = s_parse(self, line, &perr);
        if (!j)
            return perr;
    }
    if (self->ev_count == 0)
        return eof;
    snprintf(event, KT_QMP_EVENT_MAX, "%s", self->events[self->ev_head]);
    self->ev_head = (self->ev_head + 1) % S_EVENT_QUEUE;
    self->ev_count--;
    return 1;
}
