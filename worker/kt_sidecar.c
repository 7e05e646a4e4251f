/* Sidecar writing and merging the guest's result into it. */
#include "kt_sidecar.h"

#include <errno.h>
#include <fcntl.h>
#include <msgpack.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "kt_chanmsg.h"
#include "kt_cleanup.h"
#include "kt_mpjson.h"

void kt_sidecar_file_stem(const char *cell_name, char *buf, size_t len)
{
    size_t o = 0;
    for (const char *p = cell_name; *p && o + 3 < len; p++) {
        if (*p == '/') {
            buf[o++] = '_';
            buf[o++] = '_';
            continue;
        }
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '+' || c == '-';
        buf[o++] = ok ? c : '_';
    }
    if (len)
        buf[o < len ? o : len - 1] = '\0';
}

int kt_sidecar_write(const char *dir, const char *stem, json_t *doc, char *ret_path, size_t len)
{
    char path[4096], tmp[4200];
    int n = snprintf(path, sizeof(path), "%s/%s.ktstr.json", dir, stem);
    if (n < 0 || (size_t)n >= sizeof(path))
        return -ENAMETOOLONG;
    snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid());
    _cleanup_close_ int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    char *text = json_dumps(doc, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(6));
    if (!text) {
        unlink(tmp);
        return -ENOMEM;
    }
    size_t tl = strlen(text), off = 0;
    int r = 0;
    while (off < tl) {
        ssize_t w = write(fd, text + off, tl - off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            r = -errno;
            break;
        }
        off += (size_t)w;
    }
    free(text);
    if (r == 0 && (write(fd, "\n", 1) != 1 || fsync(fd) < 0))
        r = -errno;
    if (r == 0 && rename(tmp, path) < 0)
        r = -errno;
    if (r < 0) {
        unlink(tmp);
        return r;
    }
    if (ret_path)
        snprintf(ret_path, len, "%s", path);
    return 0;
}

int kt_verdict_valid(const char *v)
{
    return v && (strcmp(v, "pass") == 0 || strcmp(v, "fail") == 0 || strcmp(v, "error") == 0 ||
                 strcmp(v, "skip") == 0);
}

int kt_verdict_exit_code(const char *v)
{
    if (!v)
        return 2;
    if (strcmp(v, "pass") == 0)
        return 0;
    if (strcmp(v, "fail") == 0)
        return 1;
    if (strcmp(v, "skip") == 0)
        return 77;
    return 2;
}

/* Guest keys copied into the sidecar as they are. */
static const char *const s_guest_keys[] = {
    "observed_topology", "kernel_log", "cgroups", "checks", "failed_checks", "timeline",
    "durations", "debug_kernel", "phase", "payload",
    "bpf_progs", "bpf_stats", "thresholds",
};

int kt_sidecar_merge_guest(json_t *doc, const void *body, size_t len, char *why, size_t wl)
{
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    int r = -EBADMSG;
    json_t *res = NULL;
    if (kt_mp_unpack_one(body, len, &up) < 0 || up.data.type != MSGPACK_OBJECT_MAP) {
        snprintf(why, wl, "guest result is not a msgpack map");
        goto out;
    }
    res = kt_mpjson_from_object(&up.data, 16);
    if (!res) {
        snprintf(why, wl, "guest result has non-string keys or nests deeper than 16");
        goto out;
    }
    const char *verdict = json_string_value(json_object_get(res, "verdict"));
    if (!kt_verdict_valid(verdict)) {
        snprintf(why, wl, "guest result has no valid verdict (got %s)",
                 verdict ? verdict : "nothing");
        goto out;
    }
    json_t *reason = json_object_get(res, "reason");
    if (reason && !json_is_string(reason)) {
        snprintf(why, wl, "guest result's reason is not a string");
        goto out;
    }
    json_object_set(doc, "verdict", json_object_get(res, "verdict"));
    json_object_set_new(doc, "reason", json_string(reason ? json_string_value(reason) : ""));
    for (size_t i = 0; i < KT_ARRAY_SIZE(s_guest_keys); i++) {
        json_t *v = json_object_get(res, s_guest_keys[i]);
        if (v)
            json_object_set(doc, s_guest_keys[i], v);
    }
    json_t *kernel = json_object_get(res, "kernel");
    if (json_is_string(kernel))
        json_object_set(doc, "kernel_release", kernel);
    json_t *sched = json_object_get(res, "scheduler");
    if (json_is_object(sched))
        json_object_set(doc, "scheduler_state", sched);
    r = 0;
out:
    json_decref(res);
    msgpack_unpacked_destroy(&up);
    return r;
}
