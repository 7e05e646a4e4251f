/* Shared base images: sha256, the cpio builder and walker (checked against
 * GNU cpio), lz4 legacy frames (checked against lz4(1) both ways, over
 * several 8 MiB blocks), the content hash, builder election with real
 * flock()s across processes, damaged-image recovery, and the sweep. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "kt_cleanup.h"
#include "kt_hash.h"
#include "kt_image.h"

/* Per-test scratch directory; the teardown removes it whatever happened. */
static char g_dir[256];

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    (void)state;
    snprintf(g_dir, sizeof(g_dir), "/tmp/kt-test-image-XXXXXX");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    nftw(g_dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

static char *pathf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *pathf(const char *fmt, ...)
{
    /* A ring, so a test can keep a few dozen of these alive at once. */
    static char bufs[256][1024];
    static unsigned next;
    char *b = bufs[next++ % 256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b, sizeof(bufs[0]), fmt, ap);
    va_end(ap);
    return b;
}

static void write_file(const char *path, const void *data, size_t len, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    assert_int_equal(fchmod(fd, mode), 0);
    close(fd);
}

static void *read_file(const char *path, size_t *ret_len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    assert_true(fd >= 0);
    assert_int_equal(fstat(fd, &st), 0);
    void *buf = malloc((size_t)st.st_size + 1);
    assert_non_null(buf);
    assert_int_equal(read(fd, buf, (size_t)st.st_size), st.st_size);
    close(fd);
    *ret_len = (size_t)st.st_size;
    return buf;
}

/* The cross-checks need the system tools; without them they are skipped,
 * which cmocka reports, rather than failed. */
static bool have_tool(const char *name)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "command -v %s >/dev/null 2>&1", name);
    return system(cmd) == 0;
}

/* Files in g_dir whose names start with prefix. */
static unsigned count_files(const char *prefix)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "ls -A '%s' | grep -c '^%s' || true", g_dir, prefix);
    FILE *p = popen(cmd, "r");
    unsigned n = 0;
    assert_non_null(p);
    assert_int_equal(fscanf(p, "%u", &n), 1);
    pclose(p);
    return n;
}

/* Compressible but not trivial: words from a small table picked by a
 * xorshift generator, with some raw noise mixed in. */
static void fill_data(uint8_t *buf, size_t len, uint64_t seed)
{
    static const char *words[] = {"sched", "ext", "dispatch ", "enqueue\n", "cpu", "llc ",
                                  "0x1f2e", "vtime", "slice=", "\t"};
    uint64_t x = seed | 1;
    size_t i = 0;
    while (i < len) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if ((x & 15) == 0) {
            buf[i++] = (uint8_t)(x >> 24);
            continue;
        }
        const char *w = words[(x >> 8) % KT_ARRAY_SIZE(words)];
        for (size_t k = 0; w[k] && i < len; k++)
            buf[i++] = (uint8_t)w[k];
    }
}

static void test_hash_vectors(void **state)
{
    (void)state;
    char hex[KT_HASH_HEX_SIZE];
    assert_int_equal(kt_hash_sha256_buf("abc", 3, hex), 0);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_int_equal(kt_hash_sha256_buf("", 0, hex), 0);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    assert_true(kt_hash_hex_valid(hex));
    assert_false(kt_hash_hex_valid("abc"));
    hex[5] = 'G';
    assert_false(kt_hash_hex_valid(hex));

    /* Incremental in odd pieces == one shot == the file. */
    static uint8_t data[3 * 1000 * 1000 + 7];
    fill_data(data, sizeof(data), 42);
    char one[KT_HASH_HEX_SIZE], inc[KT_HASH_HEX_SIZE], file[KT_HASH_HEX_SIZE];
    assert_int_equal(kt_hash_sha256_buf(data, sizeof(data), one), 0);
    kt_hash_t h;
    assert_int_equal(kt_hash_init(&h), 0);
    for (size_t off = 0; off < sizeof(data);) {
        size_t step = off % 7919 + 1;
        if (step > sizeof(data) - off)
            step = sizeof(data) - off;
        assert_int_equal(kt_hash_update(&h, data + off, step), 0);
        off += step;
    }
    assert_int_equal(kt_hash_final_hex(&h, inc), 0);
    assert_string_equal(one, inc);
    write_file(pathf("%s/data", g_dir), data, sizeof(data), 0644);
    assert_int_equal(kt_hash_sha256_file(pathf("%s/data", g_dir), file), 0);
    assert_string_equal(one, file);
    assert_int_equal(kt_hash_sha256_file(g_dir, file), -EISDIR);
    assert_int_equal(kt_hash_sha256_file(pathf("%s/none", g_dir), file), -ENOENT);
}

/* What the walk saw, for the round-trip checks. */
typedef struct seen {
    char name[64];
    uint32_t mode, ino, uid, gid, mtime;
    size_t size;
    uint8_t data[64];
} seen_t;

typedef struct seen_list {
    seen_t v[32];
    unsigned n;
} seen_list_t;

static int collect(const kt_cpio_member_t *m, void *userdata)
{
    seen_list_t *l = userdata;
    if (l->n == KT_ARRAY_SIZE(l->v))
        return -E2BIG;
    seen_t *s = &l->v[l->n++];
    snprintf(s->name, sizeof(s->name), "%s", m->name);
    s->mode = m->mode;
    s->ino = m->ino;
    s->uid = m->uid;
    s->gid = m->gid;
    s->mtime = m->mtime;
    s->size = m->size;
    memcpy(s->data, m->data, m->size < sizeof(s->data) ? m->size : sizeof(s->data));
    return 0;
}

static void test_cpio_roundtrip(void **state)
{
    (void)state;
    static const char init_data[] = "#!/bin/sh\necho hello from init\n";
    static const char sched_data[] = "not really a scheduler, 27 b";
    write_file(pathf("%s/init", g_dir), init_data, strlen(init_data), 0700);
    write_file(pathf("%s/sched", g_dir), sched_data, strlen(sched_data), 0600);
    const kt_image_entry_t entries[] = {
        {.guest_path = "init", .host_path = pathf("%s/init", g_dir), .mode = 0755},
        {.guest_path = "sched/bin/scx_x", .host_path = pathf("%s/sched", g_dir), .mode = 0751},
        {.guest_path = "bin/sh", .link_target = "busybox", .mode = 0777},
        {.guest_path = "etc", .mode = 0700},
        {.guest_path = "sched", .mode = 0750}, /* listed after its child */
        {.guest_path = "empty", .host_path = "/dev/null", .mode = 0644},
    };
    /* /dev/null is not a regular file: drop that entry for the good case. */
    _cleanup_free_ void *cpio = NULL;
    size_t len = 0;
    assert_int_equal(kt_cpio_build(entries, 5, &cpio, &len), 0);
    assert_int_equal(len % 512, 0);

    seen_list_t l = {0};
    size_t end = 0;
    assert_int_equal(kt_cpio_walk(cpio, len, collect, &l, &end), 0);
    assert_true(end <= len);
    for (size_t i = end; i < len; i++)
        assert_int_equal(((uint8_t *)cpio)[i], 0);

    /* Parents first, explicit directory modes honoured, each path once. */
    static const struct {
        const char *name;
        uint32_t mode;
    } want[] = {
        {"init", S_IFREG | 0755}, {"sched", S_IFDIR | 0750},       {"sched/bin", S_IFDIR | 0755},
        {"sched/bin/scx_x", S_IFREG | 0751}, {"bin", S_IFDIR | 0755},
        {"bin/sh", S_IFLNK | 0777}, {"etc", S_IFDIR | 0700},
    };
    assert_int_equal(l.n, KT_ARRAY_SIZE(want));
    for (unsigned i = 0; i < l.n; i++) {
        assert_string_equal(l.v[i].name, want[i].name);
        assert_int_equal(l.v[i].mode, want[i].mode);
        assert_int_equal(l.v[i].uid, 0);
        assert_int_equal(l.v[i].gid, 0);
        assert_int_equal(l.v[i].mtime, 0);
        assert_int_equal(l.v[i].ino, i + 1);
    }
    assert_int_equal(l.v[0].size, strlen(init_data));
    assert_memory_equal(l.v[0].data, init_data, strlen(init_data));
    assert_int_equal(l.v[3].size, strlen(sched_data));
    assert_memory_equal(l.v[3].data, sched_data, strlen(sched_data));
    assert_int_equal(l.v[5].size, 7);
    assert_memory_equal(l.v[5].data, "busybox", 7);
    assert_int_equal(l.v[1].size, 0);

    /* Same entries, same bytes. */
    _cleanup_free_ void *again = NULL;
    size_t len2 = 0;
    assert_int_equal(kt_cpio_build(entries, 5, &again, &len2), 0);
    assert_int_equal(len, len2);
    assert_memory_equal(cpio, again, len);

    /* A device as host file is refused, naming the entry. */
    void *bad = NULL;
    size_t bad_len = 0;
    assert_int_equal(kt_cpio_build(entries, 6, &bad, &bad_len), -EINVAL);
    assert_null(bad);
    assert_non_null(strstr(kt_image_last_error(), "entry 5 'empty'"));
    assert_non_null(strstr(kt_image_last_error(), "not a regular file"));

    /* GNU cpio agrees on the listing and extracts the same files. */
    if (!have_tool("cpio"))
        skip();
    write_file(pathf("%s/a.cpio", g_dir), cpio, len, 0644);
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "cpio -t --quiet < '%s/a.cpio' > '%s/list'", g_dir, g_dir);
    assert_int_equal(system(cmd), 0);
    size_t list_len = 0;
    _cleanup_free_ char *list = read_file(pathf("%s/list", g_dir), &list_len);
    list[list_len] = '\0';
    assert_string_equal(list, "init\nsched\nsched/bin\nsched/bin/scx_x\nbin\nbin/sh\netc\n");
    assert_int_equal(mkdir(pathf("%s/x", g_dir), 0755), 0);
    snprintf(cmd, sizeof(cmd), "cd '%s/x' && cpio -idm --quiet < '%s/a.cpio'", g_dir, g_dir);
    assert_int_equal(system(cmd), 0);
    struct stat st;
    assert_int_equal(lstat(pathf("%s/x/init", g_dir), &st), 0);
    assert_int_equal(st.st_mode, S_IFREG | 0755);
    assert_int_equal(st.st_size, (off_t)strlen(init_data));
    assert_int_equal(lstat(pathf("%s/x/sched/bin/scx_x", g_dir), &st), 0);
    assert_int_equal(st.st_mode, S_IFREG | 0751);
    size_t got_len = 0;
    _cleanup_free_ char *got = read_file(pathf("%s/x/sched/bin/scx_x", g_dir), &got_len);
    assert_int_equal(got_len, strlen(sched_data));
    assert_memory_equal(got, sched_data, got_len);
    assert_int_equal(lstat(pathf("%s/x/sched", g_dir), &st), 0);
    assert_int_equal(st.st_mode, S_IFDIR | 0750);
    assert_int_equal(lstat(pathf("%s/x/etc", g_dir), &st), 0);
    assert_int_equal(st.st_mode, S_IFDIR | 0700);
    char target[64] = {0};
    assert_int_equal(readlink(pathf("%s/x/bin/sh", g_dir), target, sizeof(target) - 1), 7);
    assert_string_equal(target, "busybox");

}

static void expect_bad(const kt_image_entry_t *e, size_t n, int err, const char *what)
{
    void *buf = NULL;
    size_t len = 0;
    assert_int_equal(kt_cpio_build(e, n, &buf, &len), err);
    assert_null(buf);
    if (!strstr(kt_image_last_error(), what))
        fail_msg("error '%s' does not mention '%s'", kt_image_last_error(), what);
}

static void test_cpio_bad_input(void **state)
{
    (void)state;
    write_file(pathf("%s/f", g_dir), "x", 1, 0644);
    const char *f = pathf("%s/f", g_dir);
    expect_bad((kt_image_entry_t[]){{.guest_path = "/init", .host_path = f}}, 1, -EINVAL,
               "must not start with '/'");
    expect_bad((kt_image_entry_t[]){{.guest_path = "a/../b", .host_path = f}}, 1, -EINVAL,
               "'..'");
    expect_bad((kt_image_entry_t[]){{.guest_path = "a//b", .host_path = f}}, 1, -EINVAL,
               "component");
    expect_bad((kt_image_entry_t[]){{.guest_path = "a/", .mode = 0755}}, 1, -EINVAL,
               "trailing '/'");
    expect_bad((kt_image_entry_t[]){{.guest_path = "", .host_path = f}}, 1, -EINVAL, "empty");
    expect_bad((kt_image_entry_t[]){{.guest_path = "x", .host_path = f, .mode = 0100755}}, 1,
               -EINVAL, "beyond 07777");
    expect_bad((kt_image_entry_t[]){{.guest_path = "x", .host_path = f, .link_target = "y"}}, 1,
               -EINVAL, "both");
    expect_bad((kt_image_entry_t[]){{.guest_path = "x", .host_path = f, .mode = 0644},
                                    {.guest_path = "x", .host_path = f, .mode = 0644}},
               2, -EEXIST, "entry 1 'x': guest path listed twice");
    expect_bad((kt_image_entry_t[]){{.guest_path = "x", .host_path = f, .mode = 0644},
                                    {.guest_path = "x/y", .host_path = f, .mode = 0644}},
               2, -ENOTDIR, "parent 'x' is not a directory");
    expect_bad((kt_image_entry_t[]){{.guest_path = "x", .host_path = pathf("%s/nope", g_dir)}}, 1,
               -ENOENT, "/nope'");
    expect_bad((kt_image_entry_t[]){{.guest_path = "x", .host_path = g_dir}}, 1, -EISDIR,
               "not a regular file");
}

static void test_cpio_walk_rejects(void **state)
{
    (void)state;
    write_file(pathf("%s/f", g_dir), "0123456789", 10, 0644);
    kt_image_entry_t e[] = {{.guest_path = "a/f", .host_path = pathf("%s/f", g_dir), .mode = 0644}};
    _cleanup_free_ uint8_t *cpio = NULL;
    size_t len = 0;
    assert_int_equal(kt_cpio_build(e, 1, (void **)&cpio, &len), 0);
    /* Cut anywhere before the end of the trailer: never accepted. */
    size_t end = 0;
    assert_int_equal(kt_cpio_walk(cpio, len, NULL, NULL, &end), 0);
    for (size_t cut = 0; cut < end; cut += 7)
        assert_int_equal(kt_cpio_walk(cpio, cut, NULL, NULL, NULL), -EBADMSG);
    cpio[0] = 'X';
    assert_int_equal(kt_cpio_walk(cpio, len, NULL, NULL, NULL), -EBADMSG);
    assert_non_null(strstr(kt_image_last_error(), "bad magic at offset 0"));
    cpio[0] = '0';
    cpio[6 + 8 * 6] = 'z'; /* filesize field of the first member */
    assert_int_equal(kt_cpio_walk(cpio, len, NULL, NULL, NULL), -EBADMSG);
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void test_lz4_legacy(void **state)
{
    (void)state;
    const size_t len = 2 * KT_LZ4_LEGACY_BLOCK + 123457;
    _cleanup_free_ uint8_t *data = malloc(len);
    assert_non_null(data);
    fill_data(data, len, 7);

    _cleanup_free_ uint8_t *z = NULL;
    size_t zlen = 0;
    assert_int_equal(kt_lz4_legacy_compress(data, len, (void **)&z, &zlen), 0);
    assert_true(zlen < len / 2);
    /* Layout: magic, then exactly three sized blocks ending at zlen. */
    assert_int_equal(le32(z), KT_LZ4_LEGACY_MAGIC);
    size_t off = 4, blocks = 0;
    while (off < zlen) {
        off += 4 + le32(z + off);
        blocks++;
    }
    assert_int_equal(off, zlen);
    assert_int_equal(blocks, 3);

    _cleanup_free_ uint8_t *back = NULL;
    size_t back_len = 0;
    assert_int_equal(kt_lz4_legacy_decompress(z, zlen, len, (void **)&back, &back_len), 0);
    assert_int_equal(back_len, len);
    assert_memory_equal(back, data, len);

    /* Output limit and damage are errors, not crashes. */
    void *none = NULL;
    size_t none_len = 0;
    assert_int_equal(kt_lz4_legacy_decompress(z, zlen, len - 1, &none, &none_len), -EFBIG);
    assert_int_equal(kt_lz4_legacy_decompress(z, zlen - 1, len, &none, &none_len), -EBADMSG);
    assert_int_equal(kt_lz4_legacy_decompress(z + 1, zlen - 1, len, &none, &none_len), -EBADMSG);
    assert_null(none);

    /* lz4(1) reads our frames ... */
    if (!have_tool("lz4"))
        skip();
    write_file(pathf("%s/d.lz4", g_dir), z, zlen, 0644);
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "lz4 -d -q -f '%s/d.lz4' '%s/d.out'", g_dir, g_dir);
    assert_int_equal(system(cmd), 0);
    size_t out_len = 0;
    _cleanup_free_ uint8_t *out = read_file(pathf("%s/d.out", g_dir), &out_len);
    assert_int_equal(out_len, len);
    assert_memory_equal(out, data, len);

    /* ... and we read its legacy frames (-l). */
    write_file(pathf("%s/raw", g_dir), data, len, 0644);
    snprintf(cmd, sizeof(cmd), "lz4 -l -q -f '%s/raw' '%s/raw.lz4'", g_dir, g_dir);
    assert_int_equal(system(cmd), 0);
    size_t theirs_len = 0;
    _cleanup_free_ uint8_t *theirs = read_file(pathf("%s/raw.lz4", g_dir), &theirs_len);
    _cleanup_free_ uint8_t *mine = NULL;
    size_t mine_len = 0;
    assert_int_equal(kt_lz4_legacy_decompress(theirs, theirs_len, len, (void **)&mine, &mine_len),
                     0);
    assert_int_equal(mine_len, len);
    assert_memory_equal(mine, data, len);
}

static void test_hash_changes(void **state)
{
    (void)state;
    write_file(pathf("%s/a", g_dir), "content-A", 9, 0644);
    write_file(pathf("%s/b", g_dir), "content-B", 9, 0644);
    kt_image_entry_t e[] = {
        {.guest_path = "init", .host_path = pathf("%s/a", g_dir), .mode = 0755},
        {.guest_path = "bin/sh", .link_target = "busybox", .mode = 0777},
    };
    char base[65], again[65], h[65];
    assert_int_equal(kt_image_hash(e, 2, base), 0);
    assert_true(kt_hash_hex_valid(base));
    assert_int_equal(kt_image_hash(e, 2, again), 0);
    assert_string_equal(base, again);

    /* Same size, one byte different. */
    write_file(pathf("%s/a", g_dir), "content-a", 9, 0644);
    assert_int_equal(kt_image_hash(e, 2, h), 0);
    assert_string_not_equal(h, base);
    write_file(pathf("%s/a", g_dir), "content-A", 9, 0644);
    assert_int_equal(kt_image_hash(e, 2, h), 0);
    assert_string_equal(h, base);

    e[0].mode = 0750;
    assert_int_equal(kt_image_hash(e, 2, h), 0);
    assert_string_not_equal(h, base);
    e[0].mode = 0755;

    e[0].guest_path = "init2";
    assert_int_equal(kt_image_hash(e, 2, h), 0);
    assert_string_not_equal(h, base);
    e[0].guest_path = "init";

    e[0].host_path = pathf("%s/b", g_dir);
    assert_int_equal(kt_image_hash(e, 2, h), 0);
    assert_string_not_equal(h, base);
    e[0].host_path = pathf("%s/a", g_dir);

    e[1].link_target = "toybox";
    assert_int_equal(kt_image_hash(e, 2, h), 0);
    assert_string_not_equal(h, base);
    e[1].link_target = "busybox";

    /* The host file's own mode and mtime are not part of the image. */
    assert_int_equal(chmod(pathf("%s/a", g_dir), 0600), 0);
    assert_int_equal(kt_image_hash(e, 2, h), 0);
    assert_string_equal(h, base);
}

/* busybox + a binary, the shape of a real image. */
static size_t std_entries(kt_image_entry_t *e, size_t extra_bytes)
{
    size_t n = 0;
    e[n++] = (kt_image_entry_t){.guest_path = "bin/busybox", .host_path = "/bin/busybox",
                                .mode = 0755};
    e[n++] = (kt_image_entry_t){.guest_path = "bin/sh", .link_target = "busybox", .mode = 0777};
    if (extra_bytes) {
        uint8_t *d = malloc(extra_bytes);
        assert_non_null(d);
        /* Mostly noise: LZ4HC is quick on it, which keeps 8 MiB cases fast. */
        uint64_t x = 99;
        for (size_t i = 0; i < extra_bytes; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            d[i] = (uint8_t)(x >> 32);
        }
        fill_data(d, extra_bytes / 8, 99);
        write_file(pathf("%s/extra.bin", g_dir), d, extra_bytes, 0755);
        free(d);
        e[n++] = (kt_image_entry_t){.guest_path = "sched/extra",
                                    .host_path = pathf("%s/extra.bin", g_dir), .mode = 0755};
    }
    return n;
}

/* The image decompresses to exactly the archive its entries make. */
static void assert_image_matches(const char *path, const kt_image_entry_t *e, size_t n)
{
    size_t zlen = 0, clen = 0, dlen = 0;
    _cleanup_free_ void *z = read_file(path, &zlen);
    _cleanup_free_ void *cpio = NULL;
    _cleanup_free_ void *d = NULL;
    assert_int_equal(kt_cpio_build(e, n, &cpio, &clen), 0);
    assert_int_equal(kt_lz4_legacy_decompress(z, zlen, KT_IMAGE_MAX_BYTES, &d, &dlen), 0);
    assert_int_equal(dlen, clen);
    assert_memory_equal(d, cpio, clen);
}

static void test_acquire_twice(void **state)
{
    (void)state;
    kt_image_entry_t e[4];
    size_t n = std_entries(e, 4096);
    char hash[65];
    assert_int_equal(kt_image_hash(e, n, hash), 0);

    kt_image_t *a = NULL, *b = NULL;
    assert_int_equal(kt_image_acquire(g_dir, e, n, &a), 0);
    assert_true(kt_image_built(a));
    assert_string_equal(kt_image_hash_hex(a), hash);
    assert_string_equal(kt_image_path(a), pathf("%s/ktstr-lz4-%s", g_dir, hash));
    struct stat st;
    assert_int_equal(stat(kt_image_path(a), &st), 0);
    assert_int_equal(st.st_mode & 07777, 0444);
    assert_int_equal((uint64_t)st.st_size, kt_image_size(a));

    assert_int_equal(kt_image_acquire(g_dir, e, n, &b), 0);
    assert_false(kt_image_built(b));
    assert_string_equal(kt_image_path(a), kt_image_path(b));
    assert_image_matches(kt_image_path(b), e, n);

    /* Held: a non-blocking exclusive lock on the image must fail. */
    int fd = open(kt_image_path(a), O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(flock(fd, LOCK_EX | LOCK_NB), -1);
    assert_int_equal(errno, EWOULDBLOCK);
    kt_image_release(&a);
    assert_null(a);
    assert_int_equal(flock(fd, LOCK_EX | LOCK_NB), -1);
    kt_image_release(&b);
    assert_int_equal(flock(fd, LOCK_EX | LOCK_NB), 0);
    close(fd);
    kt_image_release(&b); /* NULL-safe */

    /* One image, no lock or temp files left behind. */
    assert_int_equal(count_files("ktstr-lz4-"), 1);
}

/* A damaged file under the image's name (cut mid-block, cut exactly at a
 * block boundary, garbage, a symlink) is never used: acquire rebuilds. */
static void test_acquire_rebuilds_damaged(void **state)
{
    (void)state;
    kt_image_entry_t e[4];
    /* > 8 MiB of archive so the image has two blocks. */
    size_t n = std_entries(e, KT_LZ4_LEGACY_BLOCK);
    char hash[65];
    assert_int_equal(kt_image_hash(e, n, hash), 0);
    const char *path = pathf("%s/ktstr-lz4-%s", g_dir, hash);

    _cleanup_free_ void *cpio = NULL;
    _cleanup_free_ uint8_t *z = NULL;
    size_t clen = 0, zlen = 0;
    assert_int_equal(kt_cpio_build(e, n, &cpio, &clen), 0);
    assert_int_equal(kt_lz4_legacy_compress(cpio, clen, (void **)&z, &zlen), 0);
    size_t first_block_end = 4 + 4 + le32(z + 4);
    assert_true(first_block_end < zlen);

    const size_t cuts[] = {zlen / 2, first_block_end, zlen - 1, 3};
    for (size_t i = 0; i < KT_ARRAY_SIZE(cuts); i++) {
        unlink(path);
        write_file(path, z, cuts[i], 0444);
        kt_image_t *img = NULL;
        assert_int_equal(kt_image_acquire(g_dir, e, n, &img), 0);
        assert_true(kt_image_built(img));
        assert_image_matches(path, e, n);
        kt_image_release(&img);
        assert_int_equal(count_files("ktstr-lz4-"), 1);
    }

    unlink(path);
    write_file(path, "garbage garbage garbage", 23, 0444);
    kt_image_t *img = NULL;
    assert_int_equal(kt_image_acquire(g_dir, e, n, &img), 0);
    assert_true(kt_image_built(img));
    kt_image_release(&img);

    unlink(path);
    assert_int_equal(symlink("/bin/busybox", path), 0);
    assert_int_equal(kt_image_acquire(g_dir, e, n, &img), 0);
    assert_true(kt_image_built(img));
    struct stat st;
    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_image_matches(path, e, n);
    kt_image_release(&img);

    /* And the intact image is found, not rebuilt. */
    assert_int_equal(kt_image_acquire(g_dir, e, n, &img), 0);
    assert_false(kt_image_built(img));
    kt_image_release(&img);
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* A builder (another process) holds the mutex and writes half a temp; it
 * either finishes (publishes the image) or dies. A process that arrives
 * meanwhile must wait, then use the image (built=0) or build it itself
 * (built=1), and never see the half file. */
static void run_builder_child(const kt_image_entry_t *e, size_t n, bool finish, int ready_fd)
{
    char hash[65];
    if (kt_image_hash(e, n, hash) < 0)
        _exit(2);
    const char *path = pathf("%s/ktstr-lz4-%s", g_dir, hash);
    int lfd = open(pathf("%s.lock", path), O_RDONLY | O_CREAT | O_CLOEXEC, 0644);
    if (lfd < 0 || flock(lfd, LOCK_EX) < 0)
        _exit(3);
    void *cpio = NULL, *z = NULL;
    size_t clen = 0, zlen = 0;
    if (kt_cpio_build(e, n, &cpio, &clen) < 0 || kt_lz4_legacy_compress(cpio, clen, &z, &zlen) < 0)
        _exit(4);
    char *tmp = pathf("%s.tmp.XXXXXX", path);
    int tfd = mkostemp(tmp, O_CLOEXEC);
    if (tfd < 0 || write(tfd, z, zlen / 2) != (ssize_t)(zlen / 2))
        _exit(5);
    if (write(ready_fd, "r", 1) != 1)
        _exit(6);
    sleep_ms(400);
    if (!finish)
        _exit(0); /* "crash": the kernel drops the lock, the temp stays */
    if (write(tfd, (uint8_t *)z + zlen / 2, zlen - zlen / 2) != (ssize_t)(zlen - zlen / 2) ||
        fchmod(tfd, 0444) < 0 || rename(tmp, path) < 0)
        _exit(7);
    unlink(pathf("%s.lock", path));
    _exit(0);
}

static void waiter_case(bool finish)
{
    kt_image_entry_t e[4];
    size_t n = std_entries(e, 1 << 20);
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        run_builder_child(e, n, finish, p[1]);
    }
    close(p[1]);
    char c;
    assert_int_equal(read(p[0], &c, 1), 1);
    close(p[0]);

    uint64_t t0 = now_ms();
    kt_image_t *img = NULL;
    int r = kt_image_acquire(g_dir, e, n, &img);
    uint64_t waited = now_ms() - t0;
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(r, 0);
    assert_true(waited >= 250); /* it did wait for the builder */
    assert_int_equal(kt_image_built(img), !finish);
    assert_image_matches(kt_image_path(img), e, n);
    kt_image_release(&img);
    /* The image, plus the dead builder's temp when it crashed. */
    assert_int_equal(count_files("ktstr-lz4-"), finish ? 1 : 2);
    if (!finish) {
        unsigned removed = 0;
        assert_int_equal(kt_image_sweep(g_dir, 3600, &removed), 0);
        assert_int_equal(removed, 1); /* the temp; the image is fresh */
        assert_int_equal(count_files("ktstr-lz4-"), 1);
    }
}

static void test_waiter_builder_finishes(void **state)
{
    (void)state;
    waiter_case(true);
}

static void test_waiter_builder_crashes(void **state)
{
    (void)state;
    waiter_case(false);
}

static void test_sweep(void **state)
{
    (void)state;
    write_file(pathf("%s/one", g_dir), "1", 1, 0644);
    write_file(pathf("%s/two", g_dir), "2", 1, 0644);
    kt_image_entry_t ea[] = {{.guest_path = "init", .host_path = pathf("%s/one", g_dir), .mode = 0755}};
    kt_image_entry_t eb[] = {{.guest_path = "init", .host_path = pathf("%s/two", g_dir), .mode = 0755}};
    kt_image_t *a = NULL, *b = NULL;
    assert_int_equal(kt_image_acquire(g_dir, ea, 1, &a), 0);
    assert_int_equal(kt_image_acquire(g_dir, eb, 1, &b), 0);
    char pa[512], pb[512];
    snprintf(pa, sizeof(pa), "%s", kt_image_path(a));
    snprintf(pb, sizeof(pb), "%s", kt_image_path(b));
    kt_image_release(&b);

    /* Files that only look like ours are left alone. */
    write_file(pathf("%s/ktstr-lz4-notahash", g_dir), "x", 1, 0644);
    write_file(pathf("%s/unrelated", g_dir), "x", 1, 0644);

    unsigned removed = 99;
    assert_int_equal(kt_image_sweep(g_dir, 0, &removed), 0);
    assert_int_equal(removed, 1);
    assert_int_equal(access(pa, F_OK), 0); /* held */
    assert_int_equal(access(pb, F_OK), -1);
    assert_int_equal(access(pathf("%s/ktstr-lz4-notahash", g_dir), F_OK), 0);
    assert_int_equal(access(pathf("%s/unrelated", g_dir), F_OK), 0);

    /* Released but recent: min_age keeps it; aged: removed. */
    kt_image_release(&a);
    assert_int_equal(kt_image_sweep(g_dir, 3600, &removed), 0);
    assert_int_equal(removed, 0);
    assert_int_equal(access(pa, F_OK), 0);
    struct timespec old[2] = {{.tv_sec = time(NULL) - 7200}, {.tv_sec = time(NULL) - 7200}};
    assert_int_equal(utimensat(AT_FDCWD, pa, old, 0), 0);
    assert_int_equal(kt_image_sweep(g_dir, 3600, &removed), 0);
    assert_int_equal(removed, 1);
    assert_int_equal(access(pa, F_OK), -1);

    /* A temp whose builder is alive (holds the mutex) stays; once the
     * builder is gone it is removed, whatever its age. */
    char hash[65];
    assert_int_equal(kt_image_hash(ea, 1, hash), 0);
    const char *lock = pathf("%s/ktstr-lz4-%s.lock", g_dir, hash);
    const char *tmp = pathf("%s/ktstr-lz4-%s.tmp.AbC123", g_dir, hash);
    write_file(tmp, "half", 4, 0600);
    int lfd = open(lock, O_RDONLY | O_CREAT | O_CLOEXEC, 0644);
    assert_true(lfd >= 0);
    assert_int_equal(flock(lfd, LOCK_EX), 0);
    assert_int_equal(kt_image_sweep(g_dir, 0, &removed), 0);
    assert_int_equal(removed, 0);
    assert_int_equal(access(tmp, F_OK), 0);
    assert_int_equal(access(lock, F_OK), 0);
    close(lfd); /* the builder "dies"; its lock file stays behind */
    assert_int_equal(kt_image_sweep(g_dir, 0, &removed), 0);
    assert_int_equal(removed, 1);
    assert_int_equal(access(tmp, F_OK), -1);
    assert_int_equal(access(lock, F_OK), -1);

    /* A stale lock file does not stop the next acquire. */
    lfd = open(lock, O_RDONLY | O_CREAT | O_CLOEXEC, 0644);
    close(lfd);
    assert_int_equal(kt_image_acquire(g_dir, ea, 1, &a), 0);
    assert_true(kt_image_built(a));
    assert_int_equal(access(lock, F_OK), -1);
    kt_image_release(&a);
    assert_int_equal(kt_image_sweep(g_dir, 0, &removed), 0);
    assert_int_equal(removed, 1);
    assert_int_equal(count_files("ktstr-lz4-"), 1); /* the look-alike */

    assert_int_equal(kt_image_sweep(pathf("%s/missing", g_dir), 0, &removed), -ENOENT);
    assert_non_null(strstr(kt_image_last_error(), "/missing'"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_hash_vectors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cpio_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cpio_bad_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cpio_walk_rejects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lz4_legacy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hash_changes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_acquire_twice, setup, teardown),
        cmocka_unit_test_setup_teardown(test_acquire_rebuilds_damaged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_waiter_builder_finishes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_waiter_builder_crashes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sweep, setup, teardown),
    };
    /* KT_TEST_FILTER=test_sweep runs one test (a glob). */
    if (getenv("KT_TEST_FILTER"))
        cmocka_set_test_filter(getenv("KT_TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
