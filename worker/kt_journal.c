/* Finished results kept on disk until the coordinator acknowledges them. */
#include "kt_journal.h"

#include <czmq.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <msgpack.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kt_chanmsg.h"
#include "kt_cleanup.h"
#include "kt_hash.h"
#include "kt_sidecar.h"

#define S_SUFFIX ".result"
#define S_FORMAT_VERSION 1

struct kt_journal {
    char dir[PATH_MAX];
    int dfd;                    /* the folder: *at() calls skip the path walk */
    zhashx_t *index;            /* "run/cell/attempt" -> kt_journal_entry_t */
    unsigned bad;
};

static atomic_uint s_tmp_counter;

static void s_entry_destroy(void **item)
{
    kt_journal_entry_t *e = *item;
    if (e) {
        kt_journal_entry_clear(e);
        free(e);
    }
    *item = NULL;
}

static void s_key(char *buf, size_t len, const char *run_id, const char *cell_id, uint32_t attempt)
{
    snprintf(buf, len, "%s/%s/%u", run_id, cell_id, attempt);
}

/* {cell}-{attempt}-{first 16 hex of sha256(run_id)}.result, relative to the
 * folder: the run id is the coordinator's text, so it only reaches the file
 * name hashed. */
static int s_file_name(const char *run_id, const char *cell_id, uint32_t attempt, char *buf,
                       size_t len)
{
    char rh[KT_HASH_HEX_SIZE];
    int r = kt_hash_sha256_buf(run_id, strlen(run_id), rh);
    if (r < 0)
        return r;
    if (snprintf(buf, len, "%s-%u-%.16s" S_SUFFIX, cell_id, attempt, rh) >= (int)len)
        return -ENAMETOOLONG;
    return 0;
}

void kt_journal_entry_clear(kt_journal_entry_t *e)
{
    free(e->sidecar);
    free(e->console);
    e->sidecar = e->console = NULL;
    e->sidecar_len = e->console_len = 0;
}

static int s_read_all(int dfd, const char *name, char **ret, size_t *ret_len)
{
    _cleanup_close_ int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    if (!S_ISREG(st.st_mode))
        return -EINVAL;
    if ((uint64_t)st.st_size > KT_JOURNAL_MAX_FILE)
        return -EFBIG;
    size_t cap = (size_t)st.st_size;
    char *buf = malloc(cap ? cap : 1);
    if (!buf)
        return -ENOMEM;
    size_t n = 0;
    while (n < cap) {
        ssize_t k = read(fd, buf + n, cap - n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            int r = -errno;
            free(buf);
            return r;
        }
        if (k == 0)
            break;
        n += (size_t)k;
    }
    *ret = buf;
    *ret_len = n;
    return 0;
}

static int s_dup_str_field(const msgpack_object *map, const char *key, size_t max, bool optional,
                           char **ret, size_t *ret_len)
{
    const msgpack_object *o = kt_mp_get(map, key);
    *ret = NULL;
    *ret_len = 0;
    if (!o || (optional && o->type == MSGPACK_OBJECT_NIL))
        return optional ? 0 : -EBADMSG;
    if (o->type != MSGPACK_OBJECT_STR || o->via.str.size > max)
        return -EBADMSG;
    char *s = malloc(o->via.str.size + 1);
    if (!s)
        return -ENOMEM;
    memcpy(s, o->via.str.ptr, o->via.str.size);
    s[o->via.str.size] = '\0';
    *ret = s;
    *ret_len = o->via.str.size;
    return 0;
}

/* Strict: every field present with its type and bound. */
static int s_decode(const char *buf, size_t len, bool payload, kt_journal_entry_t *ret)
{
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    kt_journal_entry_t e;
    memset(&e, 0, sizeof(e));
    uint64_t v = 0, attempt = 0;
    int r = -EBADMSG;
    if (kt_mp_unpack_one(buf, len, &up) < 0 || up.data.type != MSGPACK_OBJECT_MAP)
        goto out;
    const msgpack_object *m = &up.data;
    if (kt_mp_get_u64(m, "v", &v) < 0 || v != S_FORMAT_VERSION ||
        kt_mp_get_str(m, "coordinator", e.coordinator_id, sizeof(e.coordinator_id)) < 0 ||
        kt_mp_get_str(m, "run_id", e.run_id, sizeof(e.run_id)) < 0 ||
        kt_mp_get_str(m, "cell_id", e.cell_id, sizeof(e.cell_id)) < 0 ||
        !kt_hash_hex_valid(e.cell_id) || kt_mp_get_u64(m, "attempt", &attempt) < 0 ||
        attempt == 0 || attempt > UINT32_MAX ||
        kt_mp_get_str(m, "verdict", e.verdict, sizeof(e.verdict)) < 0 ||
        !kt_verdict_valid(e.verdict) || kt_mp_get_str(m, "reason", e.reason, sizeof(e.reason)) < 0 ||
        kt_mp_get_u64(m, "finished_ms", &e.finished_ms) < 0)
        goto out;
    e.attempt = (uint32_t)attempt;
    char *s;
    size_t sl;
    if ((r = s_dup_str_field(m, "sidecar", KT_MSG_MAX_SIDECAR, false, &s, &sl)) < 0)
        goto out;
    if (payload) {
        e.sidecar = s;
        e.sidecar_len = sl;
    } else
        free(s);
    if ((r = s_dup_str_field(m, "console", KT_MSG_MAX_CONSOLE, true, &s, &sl)) < 0)
        goto out;
    if (payload) {
        e.console = s;
        e.console_len = sl;
    } else
        free(s);
    *ret = e;
    memset(&e, 0, sizeof(e));
    r = 0;
out:
    kt_journal_entry_clear(&e);
    msgpack_unpacked_destroy(&up);
    return r;
}

static int s_index_add(kt_journal_t *self, const kt_journal_entry_t *meta)
{
    char key[160];
    s_key(key, sizeof(key), meta->run_id, meta->cell_id, meta->attempt);
    kt_journal_entry_t *copy = malloc(sizeof(*copy));
    if (!copy)
        return -ENOMEM;
    *copy = *meta;
    copy->sidecar = copy->console = NULL;
    copy->sidecar_len = copy->console_len = 0;
    copy->offered_to = 0;
    copy->offered_at_ms = 0;
    zhashx_update(self->index, key, copy);
    return 0;
}

static void s_set_aside(int dfd, const char *name)
{
    char to[NAME_MAX + 8];
    if (snprintf(to, sizeof(to), "%s.bad", name) >= (int)sizeof(to) ||
        renameat(dfd, name, dfd, to) < 0)
        unlinkat(dfd, name, 0);
}

static int s_load(kt_journal_t *self)
{
    DIR *d = opendir(self->dir);
    if (!d)
        return -errno;
    struct dirent *de;
    while ((de = readdir(d))) {
        const char *name = de->d_name;
        size_t n = strlen(name);
        if (name[0] == '.') {
            /* A temporary file of a writer that died before its rename. */
            if (strstr(name, ".tmp."))
                unlinkat(self->dfd, name, 0);
            continue;
        }
        if (n <= strlen(S_SUFFIX) || strcmp(name + n - strlen(S_SUFFIX), S_SUFFIX) != 0)
            continue;
        if (zhashx_size(self->index) >= KT_JOURNAL_MAX_ENTRIES)
            break;
        char expect[NAME_MAX + 1];
        char *buf = NULL;
        size_t len = 0;
        kt_journal_entry_t e;
        int r = s_read_all(self->dfd, name, &buf, &len);
        if (r == 0)
            r = s_decode(buf, len, false, &e);
        free(buf);
        /* The name must be the one the content would get: no aliases. */
        if (r == 0 && (s_file_name(e.run_id, e.cell_id, e.attempt, expect, sizeof(expect)) < 0 ||
                       strcmp(expect, name) != 0))
            r = -EBADMSG;
        if (r < 0) {
            self->bad++;
            s_set_aside(self->dfd, name);
            continue;
        }
        if ((r = s_index_add(self, &e)) < 0) {
            closedir(d);
            return r;
        }
    }
    closedir(d);
    return 0;
}

int kt_journal_open(const char *cache_dir, kt_journal_t **ret)
{
    if (!cache_dir || !*cache_dir)
        return -EINVAL;
    kt_journal_t *self = calloc(1, sizeof(*self));
    if (!self)
        return -ENOMEM;
    self->dfd = -1;
    int r;
    if (snprintf(self->dir, sizeof(self->dir), "%s/journal", cache_dir) >=
        (int)sizeof(self->dir)) {
        r = -ENAMETOOLONG;
        goto fail;
    }
    if (mkdir(cache_dir, 0755) < 0 && errno != EEXIST) {
        r = -errno;
        goto fail;
    }
    if (mkdir(self->dir, 0700) < 0 && errno != EEXIST) {
        r = -errno;
        goto fail;
    }
    self->dfd = open(self->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (self->dfd < 0) {
        r = -errno;
        goto fail;
    }
    self->index = zhashx_new();
    if (!self->index) {
        r = -ENOMEM;
        goto fail;
    }
    zhashx_set_destructor(self->index, s_entry_destroy);
    if ((r = s_load(self)) < 0)
        goto fail;
    *ret = self;
    return 0;
fail:
    kt_journal_destroy(&self);
    return r;
}

void kt_journal_destroy(kt_journal_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    kt_journal_t *self = *self_p;
    zhashx_destroy(&self->index);
    if (self->dfd >= 0)
        close(self->dfd);
    free(self);
    *self_p = NULL;
}

const char *kt_journal_dir(const kt_journal_t *self)
{
    return self->dir;
}

unsigned kt_journal_count(const kt_journal_t *self)
{
    return (unsigned)zhashx_size(self->index);
}

unsigned kt_journal_bad(const kt_journal_t *self)
{
    return self->bad;
}

static int s_write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int kt_journal_put(kt_journal_t *self, const kt_journal_entry_t *e)
{
    if (!kt_hash_hex_valid(e->cell_id) || e->attempt == 0 || !kt_verdict_valid(e->verdict) ||
        !e->sidecar)
        return -EINVAL;
    if (e->sidecar_len > KT_MSG_MAX_SIDECAR || e->console_len > KT_MSG_MAX_CONSOLE)
        return -E2BIG;
    char key[160];
    s_key(key, sizeof(key), e->run_id, e->cell_id, e->attempt);
    if (!zhashx_lookup(self->index, key) && zhashx_size(self->index) >= KT_JOURNAL_MAX_ENTRIES)
        return -ENOSPC;

    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 10);
    kt_mp_pack_kv_u64(&pk, "v", S_FORMAT_VERSION);
    kt_mp_pack_kv_str(&pk, "coordinator", e->coordinator_id);
    kt_mp_pack_kv_str(&pk, "run_id", e->run_id);
    kt_mp_pack_kv_str(&pk, "cell_id", e->cell_id);
    kt_mp_pack_kv_u64(&pk, "attempt", e->attempt);
    kt_mp_pack_kv_str(&pk, "verdict", e->verdict);
    kt_mp_pack_kv_str(&pk, "reason", e->reason);
    kt_mp_pack_kv_u64(&pk, "finished_ms", e->finished_ms);
    kt_mp_pack_str(&pk, "sidecar");
    msgpack_pack_str(&pk, e->sidecar_len);
    msgpack_pack_str_body(&pk, e->sidecar, e->sidecar_len);
    kt_mp_pack_str(&pk, "console");
    if (e->console) {
        msgpack_pack_str(&pk, e->console_len);
        msgpack_pack_str_body(&pk, e->console, e->console_len);
    } else
        msgpack_pack_nil(&pk);

    char name[NAME_MAX + 1], tmp[NAME_MAX + 64];
    int r = s_file_name(e->run_id, e->cell_id, e->attempt, name, sizeof(name));
    if (r < 0)
        goto out;
    snprintf(tmp, sizeof(tmp), ".%d.%u.tmp.%s", (int)getpid(), atomic_fetch_add(&s_tmp_counter, 1),
             name);
    int fd = openat(self->dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        r = -errno;
        goto out;
    }
    r = s_write_all(fd, sb.data, sb.size);
    if (close(fd) < 0 && r == 0)
        r = -errno;
    if (r == 0 && renameat(self->dfd, tmp, self->dfd, name) < 0)
        r = -errno;
    if (r < 0) {
        unlinkat(self->dfd, tmp, 0);
        goto out;
    }
    r = s_index_add(self, e);
out:
    msgpack_sbuffer_destroy(&sb);
    return r;
}

int kt_journal_remove(kt_journal_t *self, const char *run_id, const char *cell_id,
                      uint32_t attempt)
{
    char key[160], name[NAME_MAX + 1];
    s_key(key, sizeof(key), run_id, cell_id, attempt);
    if (!zhashx_lookup(self->index, key))
        return -ENOENT;
    int r = s_file_name(run_id, cell_id, attempt, name, sizeof(name));
    zhashx_delete(self->index, key);
    if (r < 0)
        return r;
    if (unlinkat(self->dfd, name, 0) < 0 && errno != ENOENT)
        return -errno;
    return 0;
}

kt_journal_entry_t *kt_journal_find(kt_journal_t *self, const char *run_id, const char *cell_id,
                                    uint32_t attempt)
{
    char key[160];
    s_key(key, sizeof(key), run_id, cell_id, attempt);
    return zhashx_lookup(self->index, key);
}

kt_journal_entry_t *kt_journal_first(kt_journal_t *self)
{
    return zhashx_first(self->index);
}

kt_journal_entry_t *kt_journal_next(kt_journal_t *self)
{
    return zhashx_next(self->index);
}

int kt_journal_read(const kt_journal_t *self, const kt_journal_entry_t *meta,
                    kt_journal_entry_t *ret)
{
    char name[NAME_MAX + 1];
    int r = s_file_name(meta->run_id, meta->cell_id, meta->attempt, name, sizeof(name));
    if (r < 0)
        return r;
    char *buf = NULL;
    size_t len = 0;
    if ((r = s_read_all(self->dfd, name, &buf, &len)) < 0)
        return r;
    kt_journal_entry_t e;
    r = s_decode(buf, len, true, &e);
    free(buf);
    if (r < 0)
        return r;
    if (strcmp(e.run_id, meta->run_id) != 0 || strcmp(e.cell_id, meta->cell_id) != 0 ||
        e.attempt != meta->attempt) {
        kt_journal_entry_clear(&e);
        return -EBADMSG;
    }
    e.offered_to = meta->offered_to;
    e.offered_at_ms = meta->offered_at_ms;
    *ret = e;
    return 0;
}
