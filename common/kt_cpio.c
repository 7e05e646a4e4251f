/* cpio "newc" archives for the guest's initramfs: a reproducible builder
 * (uid/gid 0, mtime 0, inode numbers from 1, parents before children, the
 * TRAILER!!! record, 512-byte padding) and a strict walker the tests and the
 * image check use. The format is the one the kernel's init/initramfs.c
 * reads: a 110-byte ASCII header, the name with its NUL, 4-byte padding,
 * the data, 4-byte padding. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kt_cleanup.h"
#include "kt_image.h"

#define S_HDR_LEN 110
#define S_MAX_NAME 4096u
#define S_TRAILER "TRAILER!!!"
#define S_PAD4(x) (((x) + 3) & ~(size_t)3)

typedef struct s_out {
    uint8_t *buf;
    size_t len;
    size_t cap;
} s_out_t;

/* A path already in the archive, so parents are emitted once and clashes
 * are caught. */
typedef struct s_node {
    char *name;
    bool dir;
    bool explicit_dir;
} s_node_t;

typedef struct s_nodes {
    s_node_t *v;
    size_t n;
    size_t cap;
} s_nodes_t;

static void s_nodes_free(s_nodes_t *nodes)
{
    for (size_t i = 0; i < nodes->n; i++)
        free(nodes->v[i].name);
    free(nodes->v);
    nodes->v = NULL;
    nodes->n = nodes->cap = 0;
}

static s_node_t *s_nodes_find(const s_nodes_t *nodes, const char *name, size_t name_len)
{
    for (size_t i = 0; i < nodes->n; i++)
        if (strlen(nodes->v[i].name) == name_len && memcmp(nodes->v[i].name, name, name_len) == 0)
            return &nodes->v[i];
    return NULL;
}

static int s_nodes_add(s_nodes_t *nodes, const char *name, size_t name_len, bool dir,
                       bool explicit_dir)
{
    if (nodes->n == nodes->cap) {
        size_t cap = nodes->cap ? nodes->cap * 2 : 32;
        s_node_t *v = realloc(nodes->v, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        nodes->v = v;
        nodes->cap = cap;
    }
    char *copy = strndup(name, name_len);
    if (!copy)
        return -ENOMEM;
    nodes->v[nodes->n++] = (s_node_t){.name = copy, .dir = dir, .explicit_dir = explicit_dir};
    return 0;
}

/* Make room for `more` bytes, never past the archive bound. */
static int s_out_reserve(s_out_t *out, size_t more)
{
    if (more > KT_IMAGE_MAX_BYTES || out->len > KT_IMAGE_MAX_BYTES - more) {
        kt_image_set_error("archive would exceed %u MiB", KT_IMAGE_MAX_BYTES >> 20);
        return -EFBIG;
    }
    if (out->len + more <= out->cap)
        return 0;
    size_t cap = out->cap ? out->cap : (size_t)64 * 1024;
    while (cap < out->len + more)
        cap *= 2;
    if (cap > KT_IMAGE_MAX_BYTES)
        cap = KT_IMAGE_MAX_BYTES;
    uint8_t *buf = realloc(out->buf, cap);
    if (!buf)
        return -ENOMEM;
    out->buf = buf;
    out->cap = cap;
    return 0;
}

static int s_out_pad(s_out_t *out, size_t align)
{
    size_t pad = (align - out->len % align) % align;
    int r = s_out_reserve(out, pad);
    if (r < 0)
        return r;
    memset(out->buf + out->len, 0, pad);
    out->len += pad;
    return 0;
}

/* Header and name; the caller appends the data and the padding. */
static int s_out_header(s_out_t *out, uint32_t ino, uint32_t mode, uint32_t nlink,
                        uint32_t filesize, const char *name, size_t name_len)
{
    char hdr[S_HDR_LEN + 1];
    int r = s_out_reserve(out, S_PAD4(S_HDR_LEN + name_len + 1));
    if (r < 0)
        return r;
    /* magic, ino, mode, uid, gid, nlink, mtime, filesize, devmajor,
     * devminor, rdevmajor, rdevminor, namesize, check */
    int w = snprintf(hdr, sizeof(hdr),
                     "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X", ino, mode, 0u,
                     0u, nlink, 0u, filesize, 0u, 0u, 0u, 0u, (uint32_t)(name_len + 1), 0u);
    if (w != S_HDR_LEN)
        return -EINVAL;
    memcpy(out->buf + out->len, hdr, S_HDR_LEN);
    out->len += S_HDR_LEN;
    memcpy(out->buf + out->len, name, name_len);
    out->len += name_len;
    out->buf[out->len++] = '\0';
    return s_out_pad(out, 4);
}

/* Reads the whole regular file straight into the archive. The size is
 * taken once from fstat and checked again at EOF, so a file that changes
 * while it is read is an error, never a silently mixed image. */
static int s_out_file(s_out_t *out, uint32_t ino, uint32_t mode, const char *name,
                      const char *host_path, size_t idx)
{
    _cleanup_close_ int fd = -1;
    struct stat st;
    int r;

    fd = open(host_path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        r = -errno;
        kt_image_set_error("entry %zu '%s': cannot open host file '%s': %s", idx, name, host_path,
                           strerror(-r));
        return r;
    }
    if (fstat(fd, &st) < 0) {
        r = -errno;
        kt_image_set_error("entry %zu '%s': cannot stat '%s': %s", idx, name, host_path,
                           strerror(-r));
        return r;
    }
    if (!S_ISREG(st.st_mode)) {
        kt_image_set_error("entry %zu '%s': host file '%s' is not a regular file", idx, name,
                           host_path);
        return S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
    }
    if ((uint64_t)st.st_size > KT_IMAGE_MAX_BYTES) {
        kt_image_set_error("entry %zu '%s': host file '%s' is %lld bytes, over the %u MiB bound",
                           idx, name, host_path, (long long)st.st_size, KT_IMAGE_MAX_BYTES >> 20);
        return -EFBIG;
    }
    size_t size = (size_t)st.st_size;
    r = s_out_header(out, ino, S_IFREG | mode, 1, (uint32_t)size, name, strlen(name));
    if (r < 0)
        return r;
    r = s_out_reserve(out, S_PAD4(size));
    if (r < 0)
        return r;
    size_t got = 0;
    while (got < size) {
        ssize_t n = read(fd, out->buf + out->len + got, size - got);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            r = -errno;
            kt_image_set_error("entry %zu '%s': read '%s': %s", idx, name, host_path,
                               strerror(-r));
            return r;
        }
        if (n == 0)
            break;
        got += (size_t)n;
    }
    char extra;
    ssize_t more;
    do
        more = read(fd, &extra, 1);
    while (more < 0 && errno == EINTR);
    if (got != size || more != 0) {
        kt_image_set_error("entry %zu '%s': host file '%s' changed size while being read", idx,
                           name, host_path);
        return -ESTALE;
    }
    out->len += size;
    return s_out_pad(out, 4);
}

/* Relative, no empty, "." or ".." components, bounded. */
static int s_check_guest_path(const char *p, size_t idx)
{
    if (!p || !*p) {
        kt_image_set_error("entry %zu: empty guest path", idx);
        return -EINVAL;
    }
    size_t len = strnlen(p, KT_IMAGE_MAX_PATH + 1);
    if (len > KT_IMAGE_MAX_PATH) {
        kt_image_set_error("entry %zu: guest path longer than %u bytes", idx, KT_IMAGE_MAX_PATH);
        return -ENAMETOOLONG;
    }
    if (p[0] == '/') {
        kt_image_set_error("entry %zu '%s': guest path must not start with '/'", idx, p);
        return -EINVAL;
    }
    const char *c = p;
    while (*c) {
        const char *slash = strchr(c, '/');
        size_t clen = slash ? (size_t)(slash - c) : strlen(c);
        if (clen == 0 || (clen == 1 && c[0] == '.') || (clen == 2 && c[0] == '.' && c[1] == '.')) {
            kt_image_set_error("entry %zu '%s': empty, '.' or '..' component in guest path", idx,
                               p);
            return -EINVAL;
        }
        if (!slash)
            break;
        c = slash + 1;
        if (!*c) {
            kt_image_set_error("entry %zu '%s': trailing '/' in guest path", idx, p);
            return -EINVAL;
        }
    }
    if (strcmp(p, S_TRAILER) == 0) {
        kt_image_set_error("entry %zu: guest path '%s' is the cpio trailer name", idx, p);
        return -EINVAL;
    }
    return 0;
}

/* Mode of an explicitly listed directory, or 0755. */
static uint32_t s_dir_mode(const kt_image_entry_t *entries, size_t n, const char *name,
                           size_t name_len)
{
    for (size_t i = 0; i < n; i++) {
        const kt_image_entry_t *e = &entries[i];
        if (!e->host_path && !e->link_target && strlen(e->guest_path) == name_len &&
            memcmp(e->guest_path, name, name_len) == 0)
            return (uint32_t)(e->mode & 07777);
    }
    return 0755;
}

/* Emit every missing parent of path, outermost first. */
static int s_out_parents(s_out_t *out, s_nodes_t *nodes, uint32_t *ino,
                         const kt_image_entry_t *entries, size_t n, const char *path, size_t idx)
{
    for (const char *slash = strchr(path, '/'); slash; slash = strchr(slash + 1, '/')) {
        size_t plen = (size_t)(slash - path);
        s_node_t *node = s_nodes_find(nodes, path, plen);
        if (node) {
            if (!node->dir) {
                kt_image_set_error("entry %zu '%s': parent '%.*s' is not a directory", idx, path,
                                   (int)plen, path);
                return -ENOTDIR;
            }
            continue;
        }
        uint32_t mode = s_dir_mode(entries, n, path, plen);
        int r = s_out_header(out, (*ino)++, S_IFDIR | mode, 2, 0, path, plen);
        if (r < 0)
            return r;
        r = s_nodes_add(nodes, path, plen, true, false);
        if (r < 0)
            return r;
    }
    return 0;
}

static int s_check_entries(const kt_image_entry_t *entries, size_t n)
{
    if (n > KT_IMAGE_MAX_ENTRIES) {
        kt_image_set_error("%zu entries, more than the %u allowed", n, KT_IMAGE_MAX_ENTRIES);
        return -E2BIG;
    }
    if (n > 0 && !entries)
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        const kt_image_entry_t *e = &entries[i];
        int r = s_check_guest_path(e->guest_path, i);
        if (r < 0)
            return r;
        if (e->host_path && e->link_target) {
            kt_image_set_error("entry %zu '%s': both a host file and a link target", i,
                               e->guest_path);
            return -EINVAL;
        }
        if (e->mode & ~(mode_t)07777) {
            kt_image_set_error("entry %zu '%s': mode %#o has bits beyond 07777", i, e->guest_path,
                               (unsigned)e->mode);
            return -EINVAL;
        }
        if (e->link_target && (!*e->link_target || strlen(e->link_target) > KT_IMAGE_MAX_PATH)) {
            kt_image_set_error("entry %zu '%s': link target empty or longer than %u bytes", i,
                               e->guest_path, KT_IMAGE_MAX_PATH);
            return -EINVAL;
        }
        if (e->host_path && !*e->host_path) {
            kt_image_set_error("entry %zu '%s': empty host path", i, e->guest_path);
            return -EINVAL;
        }
    }
    return 0;
}

int kt_cpio_build(const kt_image_entry_t *entries, size_t n, void **ret_buf, size_t *ret_len)
{
    s_out_t out = {0};
    s_nodes_t nodes = {0};
    uint32_t ino = 1;
    int r;

    if (!ret_buf || !ret_len)
        return -EINVAL;
    kt_image_set_error("%s", "");
    r = s_check_entries(entries, n);
    if (r < 0)
        return r;

    for (size_t i = 0; i < n; i++) {
        const kt_image_entry_t *e = &entries[i];
        const char *name = e->guest_path;
        size_t name_len = strlen(name);
        bool is_dir = !e->host_path && !e->link_target;

        r = s_out_parents(&out, &nodes, &ino, entries, n, name, i);
        if (r < 0)
            goto fail;
        s_node_t *node = s_nodes_find(&nodes, name, name_len);
        if (node) {
            /* A directory emitted earlier as a parent took this entry's
             * mode already; anything else is a clash. */
            if (is_dir && node->dir && !node->explicit_dir) {
                node->explicit_dir = true;
                continue;
            }
            kt_image_set_error("entry %zu '%s': guest path listed twice", i, name);
            r = -EEXIST;
            goto fail;
        }
        if (is_dir) {
            r = s_out_header(&out, ino++, S_IFDIR | (uint32_t)e->mode, 2, 0, name, name_len);
        } else if (e->link_target) {
            size_t tlen = strlen(e->link_target);
            r = s_out_header(&out, ino++, S_IFLNK | 0777, 1, (uint32_t)tlen, name, name_len);
            if (r >= 0)
                r = s_out_reserve(&out, S_PAD4(tlen));
            if (r >= 0) {
                memcpy(out.buf + out.len, e->link_target, tlen);
                out.len += tlen;
                r = s_out_pad(&out, 4);
            }
        } else {
            r = s_out_file(&out, ino++, (uint32_t)e->mode, name, e->host_path, i);
        }
        if (r < 0)
            goto fail;
        r = s_nodes_add(&nodes, name, name_len, is_dir, is_dir);
        if (r < 0)
            goto fail;
    }

    r = s_out_header(&out, 0, 0, 1, 0, S_TRAILER, strlen(S_TRAILER));
    if (r < 0)
        goto fail;
    r = s_out_pad(&out, 512);
    if (r < 0)
        goto fail;

    s_nodes_free(&nodes);
    *ret_buf = out.buf;
    *ret_len = out.len;
    return 0;

fail:
    s_nodes_free(&nodes);
    free(out.buf);
    return r;
}

static int s_parse_hex8(const uint8_t *p, uint32_t *ret)
{
    uint32_t v = 0;
    for (int i = 0; i < 8; i++) {
        uint8_t c = p[i];
        uint32_t d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return -EBADMSG;
        v = (v << 4) | d;
    }
    *ret = v;
    return 0;
}

int kt_cpio_walk(const void *buf, size_t len, kt_cpio_visit_fn fn, void *userdata,
                 size_t *ret_end)
{
    const uint8_t *p = buf;
    size_t off = 0;

    kt_image_set_error("%s", "");
    if (!buf && len)
        return -EINVAL;
    for (;;) {
        uint32_t f[13] = {0};
        if (len - off < S_HDR_LEN) {
            kt_image_set_error("cpio: truncated header at offset %zu (no trailer)", off);
            return -EBADMSG;
        }
        if (memcmp(p + off, "070701", 6) != 0 && memcmp(p + off, "070702", 6) != 0) {
            kt_image_set_error("cpio: bad magic at offset %zu", off);
            return -EBADMSG;
        }
        for (int i = 0; i < 13; i++) {
            if (s_parse_hex8(p + off + 6 + (size_t)8 * (size_t)i, &f[i]) < 0) {
                kt_image_set_error("cpio: bad hex field %d at offset %zu", i, off);
                return -EBADMSG;
            }
        }
        uint32_t namesize = f[11];
        size_t name_off = off + S_HDR_LEN;
        if (namesize == 0 || namesize > S_MAX_NAME || namesize > len - name_off) {
            kt_image_set_error("cpio: bad name size %u at offset %zu", namesize, off);
            return -EBADMSG;
        }
        const char *name = (const char *)(p + name_off);
        if (name[namesize - 1] != '\0' || strlen(name) != namesize - 1) {
            kt_image_set_error("cpio: name at offset %zu is not NUL-terminated at its size",
                               name_off);
            return -EBADMSG;
        }
        size_t data_off = S_PAD4(name_off + namesize);
        size_t size = f[6];
        if (data_off > len || size > len - data_off) {
            kt_image_set_error("cpio: member '%s' at offset %zu runs past the end (%zu bytes)",
                               name, off, size);
            return -EBADMSG;
        }
        size_t next = S_PAD4(data_off + size);
        if (next > len)
            next = len; /* the last member's padding may be cut; the trailer check catches it */
        if (strcmp(name, S_TRAILER) == 0) {
            if (ret_end)
                *ret_end = next;
            return 0;
        }
        if (fn) {
            kt_cpio_member_t m = {
                .name = name,
                .ino = f[0],
                .mode = f[1],
                .uid = f[2],
                .gid = f[3],
                .nlink = f[4],
                .mtime = f[5],
                .devmajor = f[7],
                .devminor = f[8],
                .rdevmajor = f[9],
                .rdevminor = f[10],
                .data = p + data_off,
                .size = size,
            };
            int r = fn(&m, userdata);
            if (r < 0)
                return r;
        }
        off = next;
    }
}
