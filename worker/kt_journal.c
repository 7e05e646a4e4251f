/* Finished results kept on disk until the coordinator acknowledges them: an
 * append-only log of checksummed records, replayed into an index at open
 * (the format and its promises are in kt_journal.h). */
#include "kt_journal.h"

#include <czmq.h>
#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <msgpack.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kt_chanmsg.h"
#include "kt_cleanup.h"
#include "kt_hash.h"
#include "kt_log.h"
#include "kt_sidecar.h"

#define S_SUFFIX ".result"          /* the former layout: a file per entry */
#define S_FORMAT_VERSION 1
#define S_COMPACT_NAME KT_JOURNAL_LOG_NAME ".compact"

/* A record: this header, then len bytes of msgpack. check covers type, len
 * and the payload; magic and the zero fields are compared as they are. */
#define S_MAGIC "KTJ1"
#define S_HDR 24
#define S_OFF_TYPE 4                /* u8, then 3 zero bytes */
#define S_OFF_LEN 8                 /* u32 LE, payload bytes */
#define S_OFF_ZERO 12               /* u32, zero */
#define S_OFF_CHECK 16              /* u64 LE */
enum { S_REC_PUT = 1, S_REC_REMOVE = 2 };
#define S_MAX_PUT ((uint32_t)KT_JOURNAL_MAX_FILE)
#define S_MAX_REMOVE 512u
#define S_MAX_RECORD (S_HDR + S_MAX_PUT)
#define S_KEY_MAX 160
#define S_IO_CHUNK (1u << 20)

/* An index entry: e first, so the pointer handed out is the item's. */
typedef struct s_item {
    kt_journal_entry_t e;
    uint64_t off;               /* of its put record in the log */
    uint32_t len;               /* the whole record */
} s_item_t;

struct kt_journal {
    char dir[PATH_MAX];
    int dfd;                    /* the folder, flock()ed while open */
    int fd;                     /* the log, O_APPEND */
    zhashx_t *index;            /* "run/cell/attempt" -> s_item_t */
    uint64_t size;              /* of the log: where the next record goes */
    uint64_t live;              /* bytes of the indexed entries' records */
    uint64_t compact_retry_at;  /* after a failed compaction, not before this size */
    bool torn;                  /* a failed append may have left bytes past size */
    unsigned bad;
    char bad_reason[256];
};

static void s_item_destroy(void **item)
{
    free(*item);
    *item = NULL;
}

static void s_key(char *buf, size_t len, const char *run_id, const char *cell_id, uint32_t attempt)
{
    snprintf(buf, len, "%s/%s/%u", run_id, cell_id, attempt);
}

void kt_journal_entry_clear(kt_journal_entry_t *e)
{
    free(e->sidecar);
    free(e->console);
    e->sidecar = e->console = NULL;
    e->sidecar_len = e->console_len = 0;
}

/* ---- records ---- */

/* Not a security property: catches torn and bit-flipped records. Each round
 * is a bijection of the state for a fixed word and of the word for a fixed
 * state, so a record differing in one 8-byte word never checks. */
static uint64_t s_round(uint64_t h, uint64_t w)
{
    h ^= w;
    h *= 0x9e3779b97f4a7c15ull;
    return h ^ (h >> 32);
}

static uint64_t s_check(uint8_t type, uint32_t len, const void *payload)
{
    const unsigned char *p = payload;
    uint64_t h = s_round(0x6a09e667f3bcc908ull, ((uint64_t)type << 32) | len);
    size_t n = len;
    for (; n >= 8; p += 8, n -= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = s_round(h, le64toh(w));
    }
    if (n) {
        uint64_t w = 0;
        memcpy(&w, p, n);
        h = s_round(h, le64toh(w));
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    return h ^ (h >> 33);
}

static void s_hdr_fill(unsigned char *rec, uint8_t type, uint32_t len)
{
    memset(rec, 0, S_HDR);
    memcpy(rec, S_MAGIC, 4);
    rec[S_OFF_TYPE] = type;
    uint32_t l = htole32(len);
    memcpy(rec + S_OFF_LEN, &l, 4);
    uint64_t c = htole64(s_check(type, len, rec + S_HDR));
    memcpy(rec + S_OFF_CHECK, &c, 8);
}

/* The header's own checks: ret_type and ret_len, or why not. */
static const char *s_hdr_parse(const unsigned char *rec, uint8_t *ret_type, uint32_t *ret_len)
{
    static const unsigned char zero[3];
    uint32_t len, z;
    uint8_t type = rec[S_OFF_TYPE];
    memcpy(&len, rec + S_OFF_LEN, 4);
    memcpy(&z, rec + S_OFF_ZERO, 4);
    len = le32toh(len);
    if (memcmp(rec, S_MAGIC, 4) != 0)
        return "no record starts there";
    if (memcmp(rec + S_OFF_TYPE + 1, zero, 3) != 0 || z != 0)
        return "reserved header bytes are not zero";
    if (type != S_REC_PUT && type != S_REC_REMOVE)
        return "unknown record type";
    if (len > (type == S_REC_PUT ? S_MAX_PUT : S_MAX_REMOVE))
        return "a payload longer than a record of its type holds";
    *ret_type = type;
    *ret_len = len;
    return NULL;
}

static bool s_check_ok(const unsigned char *rec, uint8_t type, uint32_t len)
{
    uint64_t c;
    memcpy(&c, rec + S_OFF_CHECK, 8);
    return le64toh(c) == s_check(type, len, rec + S_HDR);
}

/* Checks one whole record of exactly len bytes. */
static int s_verify(const unsigned char *rec, size_t len, uint8_t want_type)
{
    uint8_t type;
    uint32_t plen;
    if (len < S_HDR || s_hdr_parse(rec, &type, &plen) || type != want_type ||
        S_HDR + (size_t)plen != len || !s_check_ok(rec, type, plen))
        return -EBADMSG;
    return 0;
}

/* Validates (and with copy, duplicates) a string field of at most max
 * bytes; nil is accepted when optional. */
static int s_str_field(const msgpack_object *map, const char *key, size_t max, bool optional,
                       bool copy, char **ret, size_t *ret_len)
{
    const msgpack_object *o = kt_mp_get(map, key);
    *ret = NULL;
    *ret_len = 0;
    if (!o || (optional && o->type == MSGPACK_OBJECT_NIL))
        return optional ? 0 : -EBADMSG;
    if (o->type != MSGPACK_OBJECT_STR || o->via.str.size > max)
        return -EBADMSG;
    *ret_len = o->via.str.size;
    if (!copy)
        return 0;
    char *s = malloc(o->via.str.size + 1);
    if (!s)
        return -ENOMEM;
    memcpy(s, o->via.str.ptr, o->via.str.size);
    s[o->via.str.size] = '\0';
    *ret = s;
    return 0;
}

static int s_decode_key(const msgpack_object *m, kt_journal_entry_t *e)
{
    uint64_t v = 0, attempt = 0;
    if (kt_mp_get_u64(m, "v", &v) < 0 || v != S_FORMAT_VERSION ||
        kt_mp_get_str(m, "run_id", e->run_id, sizeof(e->run_id)) < 0 || !e->run_id[0] ||
        kt_mp_get_str(m, "cell_id", e->cell_id, sizeof(e->cell_id)) < 0 ||
        !kt_hash_hex_valid(e->cell_id) || kt_mp_get_u64(m, "attempt", &attempt) < 0 ||
        attempt == 0 || attempt > UINT32_MAX)
        return -EBADMSG;
    e->attempt = (uint32_t)attempt;
    return 0;
}

/* A put payload (also a former-layout file). Strict: every field present
 * with its type and bound. With payload, the sidecar and console are
 * copied (caller owns them), else only checked. */
static int s_decode(const void *buf, size_t len, bool payload, kt_journal_entry_t *ret)
{
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    kt_journal_entry_t e;
    memset(&e, 0, sizeof(e));
    int r = -EBADMSG;
    if (kt_mp_unpack_one(buf, len, &up) < 0 || up.data.type != MSGPACK_OBJECT_MAP)
        goto out;
    const msgpack_object *m = &up.data;
    if (s_decode_key(m, &e) < 0 ||
        kt_mp_get_str(m, "coordinator", e.coordinator_id, sizeof(e.coordinator_id)) < 0 ||
        kt_mp_get_str(m, "verdict", e.verdict, sizeof(e.verdict)) < 0 ||
        !kt_verdict_valid(e.verdict) || kt_mp_get_str(m, "reason", e.reason, sizeof(e.reason)) < 0 ||
        kt_mp_get_u64(m, "finished_ms", &e.finished_ms) < 0)
        goto out;
    if ((r = s_str_field(m, "sidecar", KT_MSG_MAX_SIDECAR, false, payload, &e.sidecar,
                         &e.sidecar_len)) < 0 ||
        (r = s_str_field(m, "console", KT_MSG_MAX_CONSOLE, true, payload, &e.console,
                         &e.console_len)) < 0)
        goto out;
    if (!payload)
        e.sidecar_len = e.console_len = 0;
    *ret = e;
    memset(&e, 0, sizeof(e));
    r = 0;
out:
    kt_journal_entry_clear(&e);
    msgpack_unpacked_destroy(&up);
    return r;
}

static int s_decode_remove(const void *buf, size_t len, kt_journal_entry_t *ret)
{
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    int r = -EBADMSG;
    memset(ret, 0, sizeof(*ret));
    if (kt_mp_unpack_one(buf, len, &up) == 0 && up.data.type == MSGPACK_OBJECT_MAP)
        r = s_decode_key(&up.data, ret);
    msgpack_unpacked_destroy(&up);
    return r;
}

/* A record being packed: bounded, and a failed allocation is remembered
 * (msgpack's packers do not report it). */
typedef struct s_buf {
    msgpack_sbuffer sb;
    size_t limit;
    bool failed, too_big;
} s_buf_t;

static int s_buf_write(void *data, const char *buf, size_t len)
{
    s_buf_t *b = data;
    if (!b->failed && b->sb.size + len > b->limit)
        b->failed = b->too_big = true;
    if (b->failed || msgpack_sbuffer_write(&b->sb, buf, len) < 0) {
        b->failed = true;
        return -1;
    }
    return 0;
}

static void s_pack_key(msgpack_packer *pk, const char *run_id, const char *cell_id,
                       uint32_t attempt)
{
    kt_mp_pack_kv_u64(pk, "v", S_FORMAT_VERSION);
    kt_mp_pack_kv_str(pk, "run_id", run_id);
    kt_mp_pack_kv_str(pk, "cell_id", cell_id);
    kt_mp_pack_kv_u64(pk, "attempt", attempt);
}

/* A whole record in b (header first). */
static int s_encode_put(const kt_journal_entry_t *e, s_buf_t *b)
{
    static const char hdr[S_HDR];
    msgpack_packer pk;
    msgpack_packer_init(&pk, b, s_buf_write);
    b->limit = S_MAX_RECORD;
    s_buf_write(b, hdr, sizeof(hdr));
    msgpack_pack_map(&pk, 10);
    s_pack_key(&pk, e->run_id, e->cell_id, e->attempt);
    kt_mp_pack_kv_str(&pk, "coordinator", e->coordinator_id);
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
    if (b->failed)
        return b->too_big ? -E2BIG : -ENOMEM;
    s_hdr_fill((unsigned char *)b->sb.data, S_REC_PUT, (uint32_t)(b->sb.size - S_HDR));
    return 0;
}

static int s_encode_remove(const char *run_id, const char *cell_id, uint32_t attempt, s_buf_t *b)
{
    static const char hdr[S_HDR];
    msgpack_packer pk;
    msgpack_packer_init(&pk, b, s_buf_write);
    b->limit = S_HDR + S_MAX_REMOVE;
    s_buf_write(b, hdr, sizeof(hdr));
    msgpack_pack_map(&pk, 4);
    s_pack_key(&pk, run_id, cell_id, attempt);
    if (b->failed)
        return b->too_big ? -E2BIG : -ENOMEM;
    s_hdr_fill((unsigned char *)b->sb.data, S_REC_REMOVE, (uint32_t)(b->sb.size - S_HDR));
    return 0;
}

/* ---- file helpers ---- */

static int s_write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return -EIO;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Exactly len bytes at off, or -ENODATA at the end of the file. */
static int s_pread_all(int fd, void *buf, size_t len, uint64_t off)
{
    char *p = buf;
    while (len > 0) {
        ssize_t n = pread(fd, p, len, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return -ENODATA;
        p += n;
        off += (uint64_t)n;
        len -= (size_t)n;
    }
    return 0;
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

static void s_note_bad(kt_journal_t *self, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void s_note_bad(kt_journal_t *self, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(self->bad_reason, sizeof(self->bad_reason), fmt, ap);
    va_end(ap);
    self->bad++;
    kt_log_warn("journal '%s': %s", self->dir, self->bad_reason);
}

/* ---- the log ---- */

/* Appends one record with one write(). A failed write leaves nothing
 * behind: what it wrote is cut off again (or at the next append). */
static int s_compact(kt_journal_t *self);

static int s_append(kt_journal_t *self, const void *rec, size_t len, uint64_t *ret_off)
{
    if (self->size + len > KT_JOURNAL_MAX_LOG && self->size > self->live)
        (void)s_compact(self);
    if (self->size + len > KT_JOURNAL_MAX_LOG)
        return -ENOSPC;
    if (self->torn) {
        if (ftruncate(self->fd, (off_t)self->size) < 0)
            return -errno;
        self->torn = false;
    }
    int r = s_write_all(self->fd, rec, len);
    if (r < 0) {
        if (ftruncate(self->fd, (off_t)self->size) < 0)
            self->torn = true;
        return r;
    }
    *ret_off = self->size;
    self->size += len;
    return 0;
}

/* Copies the live records to a new log and renames it over the old one:
 * a crash leaves the old log or the new one, never a mix. */
static int s_compact(kt_journal_t *self)
{
    size_t n = zhashx_size(self->index), i = 0;
    _cleanup_free_ s_item_t **items = calloc(n ? n : 1, sizeof(*items));
    _cleanup_free_ uint64_t *offs = calloc(n ? n : 1, sizeof(*offs));
    size_t cap = S_IO_CHUNK, used = 0;
    _cleanup_free_ unsigned char *buf = malloc(cap);
    if (!items || !offs || !buf)
        return -ENOMEM;
    int fd = openat(self->dfd, S_COMPACT_NAME,
                    O_RDWR | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return -errno;
    uint64_t size = 0;
    int r = 0;
    for (s_item_t *it = zhashx_first(self->index); it; it = zhashx_next(self->index), i++) {
        if (used + it->len > cap) {
            if ((r = s_write_all(fd, buf, used)) < 0)
                goto fail;
            used = 0;
            if (it->len > cap) {
                unsigned char *nb = realloc(buf, it->len);
                if (!nb) {
                    r = -ENOMEM;
                    goto fail;
                }
                buf = nb;
                cap = it->len;
            }
        }
        if ((r = s_pread_all(self->fd, buf + used, it->len, it->off)) < 0 ||
            (r = s_verify(buf + used, it->len, S_REC_PUT)) < 0)
            goto fail;
        items[i] = it;
        offs[i] = size;
        size += it->len;
        used += it->len;
    }
    if ((r = s_write_all(fd, buf, used)) < 0)
        goto fail;
    if (renameat(self->dfd, S_COMPACT_NAME, self->dfd, KT_JOURNAL_LOG_NAME) < 0) {
        r = -errno;
        goto fail;
    }
    close(self->fd);
    self->fd = fd;
    for (i = 0; i < n; i++)
        items[i]->off = offs[i];
    self->size = self->live = size;
    self->torn = false;
    self->compact_retry_at = 0;
    return 0;
fail:
    close(fd);
    unlinkat(self->dfd, S_COMPACT_NAME, 0);
    return r;
}

/* Compacts when dead records pass both thresholds. A failure costs
 * nothing but space, and is retried once the log grew further. */
static void s_maybe_compact(kt_journal_t *self, uint64_t min_dead)
{
    uint64_t dead = self->size - self->live;
    if (dead == 0 || dead < min_dead || dead <= self->size / 2 ||
        self->size < self->compact_retry_at)
        return;
    int r = s_compact(self);
    if (r < 0) {
        self->compact_retry_at = self->size + KT_JOURNAL_COMPACT_MIN;
        kt_log_warn("journal '%s': cannot compact %llu bytes of dead records: %s, "
                    "retrying later",
                    self->dir, (unsigned long long)dead, strerror(-r));
    }
}

/* Indexes the record at off (put: e's metadata, replacing its key's). */
static int s_index_put(kt_journal_t *self, const kt_journal_entry_t *e, uint64_t off,
                       uint32_t len)
{
    char key[S_KEY_MAX];
    s_key(key, sizeof(key), e->run_id, e->cell_id, e->attempt);
    s_item_t *it = zhashx_lookup(self->index, key);
    if (it)
        self->live -= it->len;
    else {
        if (!(it = malloc(sizeof(*it))))
            return -ENOMEM;
        if (zhashx_insert(self->index, key, it) < 0) {
            free(it);
            return -ENOMEM;
        }
    }
    it->e = *e;
    it->e.sidecar = it->e.console = NULL;
    it->e.sidecar_len = it->e.console_len = 0;
    it->e.offered_to = 0;
    it->e.offered_at_ms = 0;
    it->off = off;
    it->len = len;
    self->live += len;
    return 0;
}

static void s_index_remove(kt_journal_t *self, const char *key)
{
    s_item_t *it = zhashx_lookup(self->index, key);
    if (it) {
        self->live -= it->len;
        zhashx_delete(self->index, key);
    }
}

/* Keeps [off, end) of the log as journal.log.<off>[.N].bad before it is cut
 * off: what a record that does not check held may still matter to someone. */
static int s_save_tail(kt_journal_t *self, uint64_t off, uint64_t end)
{
    char name[NAME_MAX + 1];
    int out = -1;
    for (unsigned k = 0; k < 100 && out < 0; k++) {
        if (k)
            snprintf(name, sizeof(name), KT_JOURNAL_LOG_NAME ".%llu.%u.bad",
                     (unsigned long long)off, k);
        else
            snprintf(name, sizeof(name), KT_JOURNAL_LOG_NAME ".%llu.bad", (unsigned long long)off);
        out = openat(self->dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (out < 0 && errno != EEXIST)
            return -errno;
    }
    if (out < 0)
        return -EEXIST;
    _cleanup_close_ int fd = out;
    _cleanup_free_ char *buf = malloc(S_IO_CHUNK);
    if (!buf)
        return -ENOMEM;
    if (end - off > KT_JOURNAL_MAX_LOG)
        end = off + KT_JOURNAL_MAX_LOG;
    while (off < end) {
        size_t n = end - off < S_IO_CHUNK ? (size_t)(end - off) : S_IO_CHUNK;
        int r = s_pread_all(self->fd, buf, n, off);
        if (r == 0)
            r = s_write_all(fd, buf, n);
        if (r < 0)
            return r;
        off += n;
    }
    return 0;
}

/* The replay's reader: a window of the log, refilled in S_IO_CHUNK reads. */
typedef struct s_reader {
    int fd;
    unsigned char *buf;
    size_t cap, pos, end;
    uint64_t file_off;          /* of buf[end] */
} s_reader_t;

/* At least n bytes at buf + pos, or -ENODATA when the file ends first. */
static int s_reader_need(s_reader_t *rd, size_t n)
{
    if (rd->end - rd->pos >= n)
        return 0;
    memmove(rd->buf, rd->buf + rd->pos, rd->end - rd->pos);
    rd->end -= rd->pos;
    rd->pos = 0;
    if (n > rd->cap) {
        unsigned char *nb = realloc(rd->buf, n);
        if (!nb)
            return -ENOMEM;
        rd->buf = nb;
        rd->cap = n;
    }
    while (rd->end < n) {
        ssize_t k = pread(rd->fd, rd->buf + rd->end, rd->cap - rd->end, (off_t)rd->file_off);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return -errno;
        if (k == 0)
            return -ENODATA;
        rd->end += (size_t)k;
        rd->file_off += (uint64_t)k;
    }
    return 0;
}

/* Applies one checked record; a reason when it does not decode. */
static const char *s_apply(kt_journal_t *self, uint8_t type, const unsigned char *payload,
                           uint32_t len, uint64_t off, int *ret_err)
{
    kt_journal_entry_t e;
    char key[S_KEY_MAX];
    *ret_err = 0;
    if (type == S_REC_REMOVE) {
        if (s_decode_remove(payload, len, &e) < 0)
            return "a remove record that does not decode";
        s_key(key, sizeof(key), e.run_id, e.cell_id, e.attempt);
        s_index_remove(self, key);
        return NULL;
    }
    if (s_decode(payload, len, false, &e) < 0)
        return "a put record that does not decode";
    s_key(key, sizeof(key), e.run_id, e.cell_id, e.attempt);
    if (!zhashx_lookup(self->index, key) && zhashx_size(self->index) >= KT_JOURNAL_MAX_ENTRIES)
        return "more live entries than the journal holds";
    *ret_err = s_index_put(self, &e, off, S_HDR + len);
    return NULL;
}

/* Replays the log into the index; the first record that is torn or does
 * not check ends it: saved aside, cut off. */
static int s_replay(kt_journal_t *self)
{
    struct stat st;
    if (fstat(self->fd, &st) < 0)
        return -errno;
    if (!S_ISREG(st.st_mode))
        return -EINVAL;
    uint64_t fsize = (uint64_t)st.st_size, off = 0;
    s_reader_t rd = {.fd = self->fd, .cap = S_IO_CHUNK};
    if (!(rd.buf = malloc(rd.cap)))
        return -ENOMEM;
    const char *why = NULL;
    int r = 0;
    while (off < fsize && !why) {
        uint8_t type;
        uint32_t len;
        if (fsize - off < S_HDR) {
            why = "a record header cut short (a write torn by a crash)";
            break;
        }
        if ((r = s_reader_need(&rd, S_HDR)) < 0)
            break;
        const unsigned char *rec = rd.buf + rd.pos;
        if ((why = s_hdr_parse(rec, &type, &len)))
            break;
        if (off + S_HDR + len > fsize) {
            why = "a record that ends past the end of the log (a write torn by a crash)";
            break;
        }
        if (off + S_HDR + len > KT_JOURNAL_MAX_LOG) {
            why = "a record past the log's size limit";
            break;
        }
        if ((r = s_reader_need(&rd, S_HDR + len)) < 0)
            break;
        rec = rd.buf + rd.pos;
        if (!s_check_ok(rec, type, len)) {
            why = "a record whose checksum does not match (corrupt)";
            break;
        }
        why = s_apply(self, type, rec + S_HDR, len, off, &r);
        if (r < 0 || why)
            break;
        rd.pos += S_HDR + len;
        off += S_HDR + len;
    }
    free(rd.buf);
    if (r == -ENODATA) {
        /* The file shrank under us: nobody else writes it, so a torn tail. */
        why = "a record cut short (a write torn by a crash)";
        r = 0;
    }
    if (r < 0)
        return r;
    if (why) {
        int sr = s_save_tail(self, off, fsize);
        s_note_bad(self, "%s at offset %llu of '%s': dropped the %llu bytes from there on%s%s",
                   why, (unsigned long long)off, KT_JOURNAL_LOG_NAME,
                   (unsigned long long)(fsize - off),
                   sr < 0 ? ", and could not keep a copy: " : ", a copy kept aside as *.bad",
                   sr < 0 ? strerror(-sr) : "");
        if (ftruncate(self->fd, (off_t)off) < 0)
            return -errno;
    }
    self->size = off;
    return 0;
}

/* ---- the former layout: a file per entry ---- */

/* {cell}-{attempt}-{first 16 hex of sha256(run_id)}.result */
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

static void s_set_aside(int dfd, const char *name)
{
    char to[NAME_MAX + 8];
    if (snprintf(to, sizeof(to), "%s.bad", name) >= (int)sizeof(to) ||
        renameat(dfd, name, dfd, to) < 0)
        unlinkat(dfd, name, 0);
}

static int s_put(kt_journal_t *self, const kt_journal_entry_t *e);

/* Moves result files of the former layout into the log (appended, then
 * unlinked: a crash in between only appends the same entry twice). */
static int s_import_files(kt_journal_t *self)
{
    DIR *d = opendir(self->dir);
    if (!d)
        return -errno;
    struct dirent *de;
    int r = 0;
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
        char expect[NAME_MAX + 1];
        char *buf = NULL;
        size_t len = 0;
        kt_journal_entry_t e;
        int dr = s_read_all(self->dfd, name, &buf, &len);
        if (dr == 0)
            dr = s_decode(buf, len, true, &e);
        free(buf);
        if (dr == -ENOMEM) {
            r = dr;
            break;
        }
        /* The name must be the one the content would get: no aliases. */
        if (dr == 0 && (s_file_name(e.run_id, e.cell_id, e.attempt, expect, sizeof(expect)) < 0 ||
                        strcmp(expect, name) != 0)) {
            kt_journal_entry_clear(&e);
            dr = -EBADMSG;
        }
        if (dr < 0) {
            s_note_bad(self, "'%s' is not a journal entry (%s): renamed to *.bad", name,
                       strerror(-dr));
            s_set_aside(self->dfd, name);
            continue;
        }
        r = s_put(self, &e);
        kt_journal_entry_clear(&e);
        if (r == -ENOMEM)
            break;
        if (r < 0) {
            /* Left where it is: the next open tries again. */
            kt_log_warn("journal '%s': cannot move '%s' into the log: %s, leaving the rest of "
                        "the former layout in place",
                        self->dir, name, strerror(-r));
            r = 0;
            break;
        }
        unlinkat(self->dfd, name, 0);
    }
    closedir(d);
    return r;
}

/* ---- the API ---- */

int kt_journal_open(const char *cache_dir, kt_journal_t **ret)
{
    if (!cache_dir || !*cache_dir)
        return -EINVAL;
    kt_journal_t *self = calloc(1, sizeof(*self));
    if (!self)
        return -ENOMEM;
    self->dfd = self->fd = -1;
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
    /* Two writers appending to one log would interleave their records. */
    if (flock(self->dfd, LOCK_EX | LOCK_NB) < 0) {
        r = errno == EWOULDBLOCK ? -EBUSY : -errno;
        goto fail;
    }
    unlinkat(self->dfd, S_COMPACT_NAME, 0);
    self->fd = openat(self->dfd, KT_JOURNAL_LOG_NAME,
                      O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (self->fd < 0) {
        r = -errno;
        goto fail;
    }
    self->index = zhashx_new();
    if (!self->index) {
        r = -ENOMEM;
        goto fail;
    }
    zhashx_set_destructor(self->index, s_item_destroy);
    if ((r = s_replay(self)) < 0 || (r = s_import_files(self)) < 0)
        goto fail;
    /* Start from a log of live entries when at least half of it is dead. */
    s_maybe_compact(self, 1);
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
    if (self->fd >= 0)
        close(self->fd);
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

const char *kt_journal_bad_reason(const kt_journal_t *self)
{
    return self->bad_reason;
}

static bool s_terminated(const char *s, size_t size)
{
    return memchr(s, '\0', size) != NULL;
}

static int s_put(kt_journal_t *self, const kt_journal_entry_t *e)
{
    if (!s_terminated(e->run_id, sizeof(e->run_id)) || !e->run_id[0] ||
        !s_terminated(e->cell_id, sizeof(e->cell_id)) || !kt_hash_hex_valid(e->cell_id) ||
        e->attempt == 0 || !s_terminated(e->verdict, sizeof(e->verdict)) ||
        !kt_verdict_valid(e->verdict) ||
        !s_terminated(e->coordinator_id, sizeof(e->coordinator_id)) ||
        !s_terminated(e->reason, sizeof(e->reason)) || !e->sidecar)
        return -EINVAL;
    if (e->sidecar_len > KT_MSG_MAX_SIDECAR || e->console_len > KT_MSG_MAX_CONSOLE)
        return -E2BIG;
    char key[S_KEY_MAX];
    s_key(key, sizeof(key), e->run_id, e->cell_id, e->attempt);
    if (!zhashx_lookup(self->index, key) && zhashx_size(self->index) >= KT_JOURNAL_MAX_ENTRIES)
        return -ENOSPC;
    s_buf_t b = {.failed = false};
    msgpack_sbuffer_init(&b.sb);
    uint64_t off;
    int r = s_encode_put(e, &b);
    if (r == 0)
        r = s_append(self, b.sb.data, b.sb.size, &off);
    if (r == 0)
        r = s_index_put(self, e, off, (uint32_t)b.sb.size);
    msgpack_sbuffer_destroy(&b.sb);
    return r;
}

int kt_journal_put(kt_journal_t *self, const kt_journal_entry_t *e)
{
    int r = s_put(self, e);
    if (r == 0)
        s_maybe_compact(self, KT_JOURNAL_COMPACT_MIN);
    return r;
}

int kt_journal_remove(kt_journal_t *self, const char *run_id, const char *cell_id,
                      uint32_t attempt)
{
    char key[S_KEY_MAX];
    s_key(key, sizeof(key), run_id, cell_id, attempt);
    if (!zhashx_lookup(self->index, key))
        return -ENOENT;
    s_index_remove(self, key);
    s_buf_t b = {.failed = false};
    msgpack_sbuffer_init(&b.sb);
    uint64_t off;
    int r = s_encode_remove(run_id, cell_id, attempt, &b);
    if (r == 0)
        r = s_append(self, b.sb.data, b.sb.size, &off);
    msgpack_sbuffer_destroy(&b.sb);
    /* Also when the append failed: a compacted log no longer holds it. */
    s_maybe_compact(self, KT_JOURNAL_COMPACT_MIN);
    return r;
}

kt_journal_entry_t *kt_journal_find(kt_journal_t *self, const char *run_id, const char *cell_id,
                                    uint32_t attempt)
{
    char key[S_KEY_MAX];
    s_key(key, sizeof(key), run_id, cell_id, attempt);
    s_item_t *it = zhashx_lookup(self->index, key);
    return it ? &it->e : NULL;
}

kt_journal_entry_t *kt_journal_first(kt_journal_t *self)
{
    s_item_t *it = zhashx_first(self->index);
    return it ? &it->e : NULL;
}

kt_journal_entry_t *kt_journal_next(kt_journal_t *self)
{
    s_item_t *it = zhashx_next(self->index);
    return it ? &it->e : NULL;
}

int kt_journal_read(const kt_journal_t *self, const kt_journal_entry_t *meta,
                    kt_journal_entry_t *ret)
{
    char key[S_KEY_MAX];
    s_key(key, sizeof(key), meta->run_id, meta->cell_id, meta->attempt);
    const s_item_t *it = zhashx_lookup(self->index, key);
    if (!it)
        return -ENOENT;
    _cleanup_free_ unsigned char *rec = malloc(it->len);
    if (!rec)
        return -ENOMEM;
    int r = s_pread_all(self->fd, rec, it->len, it->off);
    if (r == -ENODATA)
        r = -EBADMSG;
    if (r < 0 || (r = s_verify(rec, it->len, S_REC_PUT)) < 0)
        return r;
    kt_journal_entry_t e;
    if ((r = s_decode(rec + S_HDR, it->len - S_HDR, true, &e)) < 0)
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
