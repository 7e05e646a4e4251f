/* kt-image-tool: drives the shared base images (common/kt_image.h) from the
 * shell, for the integration tests and for measuring by hand. Boots nothing.
 *
 *   kt-image-tool acquire [--dir D] [--hold-ms N] [--start-at EPOCH_MS] SPEC...
 *   kt-image-tool sweep   [--dir D] [--min-age S]
 *   kt-image-tool hash    SPEC...
 *   kt-image-tool pack    --out FILE [--level L] SPEC...    (lz4 legacy image)
 *   kt-image-tool cpio    --out FILE SPEC...                (uncompressed archive)
 *   kt-image-tool list    FILE                              (cpio or lz4 image)
 *   kt-image-tool measure [--repeat N] [--level L]... SPEC...
 *
 * SPEC: GUEST=HOST[:MODE] (a file; MODE octal, default: the host file's),
 *       GUEST->TARGET (a symlink), GUEST/[:MODE] (a directory, default 0755).
 * Exit status: 0 ok, 1 failure (the error names what and where), 2 usage. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kt_cleanup.h"
#include "kt_hash.h"
#include "kt_image.h"

#define S_MAX_LEVELS 12
#define S_MAX_REPEAT 100

static const char *s_prog = "kt-image-tool";

static void s_usage(FILE *f)
{
    fprintf(f,
            "usage: kt-image-tool acquire [--dir D] [--hold-ms N] [--start-at EPOCH_MS] SPEC...\n"
            "       kt-image-tool sweep [--dir D] [--min-age S]\n"
            "       kt-image-tool hash SPEC...\n"
            "       kt-image-tool pack --out FILE [--level L] SPEC...\n"
            "       kt-image-tool cpio --out FILE SPEC...\n"
            "       kt-image-tool list FILE\n"
            "       kt-image-tool measure [--repeat N] [--level L]... SPEC...\n"
            "SPEC: GUEST=HOST[:MODE] | GUEST->TARGET | GUEST/[:MODE]\n");
}

static int s_fail(int r, const char *what)
{
    const char *detail = kt_image_last_error();
    fprintf(stderr, "%s: %s: %s%s%s\n", s_prog, what, strerror(r < 0 ? -r : r),
            *detail ? ": " : "", detail);
    return 1;
}

static int s_parse_num(const char *opt, const char *s, unsigned long long max,
                       unsigned long long *ret)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v > max) {
        fprintf(stderr, "%s: %s: '%s' is not a number of at most %llu\n", s_prog, opt, s, max);
        return -EINVAL;
    }
    *ret = v;
    return 0;
}

/* Splits a trailing ":MODE" (octal digits only) off s; -1 when absent. */
static long s_split_mode(char *s)
{
    char *colon = strrchr(s, ':');
    if (!colon || !colon[1] || strspn(colon + 1, "01234567") != strlen(colon + 1))
        return -1;
    long mode = strtol(colon + 1, NULL, 8);
    if (mode > 07777)
        return -2;
    *colon = '\0';
    return mode;
}

/* Parses the SPECs into entries; strings point into the (copied) args. */
static int s_parse_specs(int argc, char **argv, kt_image_entry_t **ret, size_t *ret_n)
{
    if (argc <= 0) {
        fprintf(stderr, "%s: no SPEC given\n", s_prog);
        return -EINVAL;
    }
    if ((size_t)argc > KT_IMAGE_MAX_ENTRIES) {
        fprintf(stderr, "%s: %d SPECs, more than %u\n", s_prog, argc, KT_IMAGE_MAX_ENTRIES);
        return -E2BIG;
    }
    kt_image_entry_t *e = calloc((size_t)argc, sizeof(*e));
    if (!e)
        return -ENOMEM;
    for (int i = 0; i < argc; i++) {
        char *s = argv[i];
        char *arrow = strstr(s, "->");
        char *eq = strchr(s, '=');
        size_t len = strlen(s);
        if (arrow && (!eq || arrow < eq)) {
            *arrow = '\0';
            e[i] = (kt_image_entry_t){.guest_path = s, .link_target = arrow + 2, .mode = 0777};
        } else if (eq) {
            *eq = '\0';
            long mode = s_split_mode(eq + 1);
            if (mode == -2)
                goto bad;
            if (mode < 0) {
                struct stat st;
                if (stat(eq + 1, &st) < 0) {
                    fprintf(stderr, "%s: SPEC %d: cannot stat host file '%s': %m\n", s_prog,
                            i + 1, eq + 1);
                    free(e);
                    return -errno;
                }
                mode = st.st_mode & 07777;
            }
            e[i] = (kt_image_entry_t){.guest_path = s, .host_path = eq + 1, .mode = (mode_t)mode};
        } else if (len > 1 && (s[len - 1] == '/' || strstr(s, "/:"))) {
            long mode = s_split_mode(s);
            if (mode == -2)
                goto bad;
            len = strlen(s);
            if (len < 2 || s[len - 1] != '/')
                goto bad;
            s[len - 1] = '\0';
            e[i] = (kt_image_entry_t){.guest_path = s, .mode = mode < 0 ? 0755 : (mode_t)mode};
        } else {
            goto bad;
        }
        continue;
bad:
        fprintf(stderr,
                "%s: SPEC %d '%s': want GUEST=HOST[:MODE], GUEST->TARGET or GUEST/[:MODE]\n",
                s_prog, i + 1, argv[i]);
        free(e);
        return -EINVAL;
    }
    *ret = e;
    *ret_n = (size_t)argc;
    return 0;
}

static uint64_t s_now_ns(clockid_t clk)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void s_sleep_ms(uint64_t ms)
{
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static int s_write_file(const char *path, const void *buf, size_t len)
{
    _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        fprintf(stderr, "%s: cannot create '%s': %m\n", s_prog, path);
        return 1;
    }
    for (size_t done = 0; done < len;) {
        ssize_t n = write(fd, (const uint8_t *)buf + done, len - done);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "%s: writing '%s': %m\n", s_prog, path);
            return 1;
        }
        done += (size_t)n;
    }
    return 0;
}

static int cmd_acquire(int argc, char **argv)
{
    static const struct option opts[] = {
        {"dir", required_argument, NULL, 'd'},
        {"hold-ms", required_argument, NULL, 'h'},
        {"start-at", required_argument, NULL, 's'},
        {0},
    };
    const char *dir = NULL;
    unsigned long long hold_ms = 0, start_at = 0;
    int c;
    while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
        switch (c) {
        case 'd':
            dir = optarg;
            break;
        case 'h':
            if (s_parse_num("--hold-ms", optarg, 3600000, &hold_ms) < 0)
                return 2;
            break;
        case 's':
            if (s_parse_num("--start-at", optarg, UINT64_MAX / 2, &start_at) < 0)
                return 2;
            break;
        default:
            return 2;
        }
    }
    _cleanup_free_ kt_image_entry_t *e = NULL;
    size_t n = 0;
    if (s_parse_specs(argc - optind, argv + optind, &e, &n) < 0)
        return 2;

    /* Several processes given the same --start-at race for real. */
    if (start_at) {
        uint64_t now = s_now_ns(CLOCK_REALTIME) / 1000000;
        if (start_at > now)
            s_sleep_ms(start_at - now);
    }
    kt_image_t *img = NULL;
    uint64_t t0 = s_now_ns(CLOCK_MONOTONIC);
    int r = kt_image_acquire(dir, e, n, &img);
    uint64_t t1 = s_now_ns(CLOCK_MONOTONIC);
    if (r < 0)
        return s_fail(r, "acquire");
    printf("built=%d path=%s hash=%s size=%llu acquire_ms=%.1f pid=%d\n", kt_image_built(img),
           kt_image_path(img), kt_image_hash_hex(img), (unsigned long long)kt_image_size(img),
           (double)(t1 - t0) / 1e6, (int)getpid());
    fflush(stdout);
    if (hold_ms)
        s_sleep_ms(hold_ms);
    kt_image_release(&img);
    return 0;
}

static int cmd_sweep(int argc, char **argv)
{
    static const struct option opts[] = {
        {"dir", required_argument, NULL, 'd'},
        {"min-age", required_argument, NULL, 'a'},
        {0},
    };
    const char *dir = NULL;
    unsigned long long min_age = 0;
    int c;
    while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
        switch (c) {
        case 'd':
            dir = optarg;
            break;
        case 'a':
            if (s_parse_num("--min-age", optarg, UINT32_MAX, &min_age) < 0)
                return 2;
            break;
        default:
            return 2;
        }
    }
    if (optind != argc) {
        s_usage(stderr);
        return 2;
    }
    unsigned removed = 0;
    int r = kt_image_sweep(dir, (unsigned)min_age, &removed);
    if (r < 0)
        return s_fail(r, "sweep");
    printf("removed=%u\n", removed);
    return 0;
}

static int cmd_hash(int argc, char **argv)
{
    _cleanup_free_ kt_image_entry_t *e = NULL;
    size_t n = 0;
    char hex[KT_HASH_HEX_SIZE];
    if (s_parse_specs(argc - 1, argv + 1, &e, &n) < 0)
        return 2;
    int r = kt_image_hash(e, n, hex);
    if (r < 0)
        return s_fail(r, "hash");
    printf("%s\n", hex);
    return 0;
}

/* pack and cpio: write an archive to a file, compressed or not. */
static int cmd_pack(int argc, char **argv, bool compress)
{
    static const struct option opts[] = {
        {"out", required_argument, NULL, 'o'},
        {"level", required_argument, NULL, 'l'},
        {0},
    };
    const char *out = NULL;
    unsigned long long level = KT_LZ4_HC_LEVEL;
    int c;
    while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
        switch (c) {
        case 'o':
            out = optarg;
            break;
        case 'l':
            if (!compress || s_parse_num("--level", optarg, 12, &level) < 0 || level < 1)
                return 2;
            break;
        default:
            return 2;
        }
    }
    if (!out) {
        fprintf(stderr, "%s: --out FILE is required\n", s_prog);
        return 2;
    }
    _cleanup_free_ kt_image_entry_t *e = NULL;
    _cleanup_free_ void *cpio = NULL;
    _cleanup_free_ void *z = NULL;
    size_t n = 0, clen = 0, zlen = 0;
    if (s_parse_specs(argc - optind, argv + optind, &e, &n) < 0)
        return 2;
    int r = kt_cpio_build(e, n, &cpio, &clen);
    if (r < 0)
        return s_fail(r, "cpio");
    if (!compress)
        return s_write_file(out, cpio, clen);
    r = kt_lz4_legacy_compress_level(cpio, clen, (int)level, &z, &zlen);
    if (r < 0)
        return s_fail(r, "lz4");
    return s_write_file(out, z, zlen);
}

static int s_list_member(const kt_cpio_member_t *m, void *userdata)
{
    (void)userdata;
    printf("%06o %u/%u %10zu %s\n", m->mode, m->uid, m->gid, m->size, m->name);
    return 0;
}

static int cmd_list(int argc, char **argv)
{
    if (argc != 2) {
        s_usage(stderr);
        return 2;
    }
    _cleanup_close_ int fd = open(argv[1], O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        fprintf(stderr, "%s: cannot open '%s': %m\n", s_prog, argv[1]);
        return 1;
    }
    if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > 2ull * KT_IMAGE_MAX_BYTES) {
        fprintf(stderr, "%s: '%s' is not a regular file of at most %u MiB\n", s_prog, argv[1],
                2 * (KT_IMAGE_MAX_BYTES >> 20));
        return 1;
    }
    _cleanup_free_ uint8_t *buf = malloc((size_t)st.st_size + 1);
    if (!buf)
        return s_fail(-ENOMEM, "list");
    if (read(fd, buf, (size_t)st.st_size) != st.st_size) {
        fprintf(stderr, "%s: short read on '%s'\n", s_prog, argv[1]);
        return 1;
    }
    _cleanup_free_ void *d = NULL;
    const void *cpio = buf;
    size_t clen = (size_t)st.st_size;
    if (clen >= 4 && buf[0] == 0x02 && buf[1] == 0x21 && buf[2] == 0x4c && buf[3] == 0x18) {
        int r = kt_lz4_legacy_decompress(buf, clen, KT_IMAGE_MAX_BYTES, &d, &clen);
        if (r < 0)
            return s_fail(r, argv[1]);
        cpio = d;
        printf("# lz4 legacy %lld -> %zu bytes\n", (long long)st.st_size, clen);
    }
    size_t end = 0;
    int r = kt_cpio_walk(cpio, clen, s_list_member, NULL, &end);
    if (r < 0)
        return s_fail(r, argv[1]);
    printf("# trailer ends at %zu of %zu\n", end, clen);
    return 0;
}

static int s_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double s_median_ms(uint64_t *v, unsigned n)
{
    qsort(v, n, sizeof(*v), s_cmp_u64);
    return (double)v[n / 2] / 1e6;
}

/* Times each stage of building an image (CPU time of this process is not
 * what counts for a waiting VM; wall time is). Reports the median. */
static int cmd_measure(int argc, char **argv)
{
    static const struct option opts[] = {
        {"repeat", required_argument, NULL, 'r'},
        {"level", required_argument, NULL, 'l'},
        {0},
    };
    unsigned long long repeat = 5, lv;
    int levels[S_MAX_LEVELS];
    unsigned nlevels = 0;
    int c;
    while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
        switch (c) {
        case 'r':
            if (s_parse_num("--repeat", optarg, S_MAX_REPEAT, &repeat) < 0 || repeat == 0)
                return 2;
            break;
        case 'l':
            if (s_parse_num("--level", optarg, 12, &lv) < 0 || lv < 1 || nlevels == S_MAX_LEVELS)
                return 2;
            levels[nlevels++] = (int)lv;
            break;
        default:
            return 2;
        }
    }
    if (!nlevels)
        levels[nlevels++] = KT_LZ4_HC_LEVEL;
    _cleanup_free_ kt_image_entry_t *e = NULL;
    size_t n = 0;
    if (s_parse_specs(argc - optind, argv + optind, &e, &n) < 0)
        return 2;

    uint64_t t_cpio[S_MAX_REPEAT], t_hash[S_MAX_REPEAT];
    size_t clen = 0, in_bytes = 0;
    for (size_t i = 0; i < n; i++) {
        struct stat st;
        if (e[i].host_path && stat(e[i].host_path, &st) == 0)
            in_bytes += (size_t)st.st_size;
    }
    _cleanup_free_ void *cpio = NULL;
    for (unsigned i = 0; i < repeat; i++) {
        free(cpio);
        cpio = NULL;
        uint64_t t0 = s_now_ns(CLOCK_MONOTONIC);
        int r = kt_cpio_build(e, n, &cpio, &clen);
        uint64_t t1 = s_now_ns(CLOCK_MONOTONIC);
        if (r < 0)
            return s_fail(r, "cpio");
        char hex[KT_HASH_HEX_SIZE];
        r = kt_hash_sha256_buf(cpio, clen, hex);
        uint64_t t2 = s_now_ns(CLOCK_MONOTONIC);
        if (r < 0)
            return s_fail(r, "hash");
        t_cpio[i] = t1 - t0;
        t_hash[i] = t2 - t1;
    }
    printf("inputs=%zu files_bytes=%zu cpio_bytes=%zu cpio_ms=%.2f sha256_ms=%.2f repeat=%llu\n",
           n, in_bytes, clen, s_median_ms(t_cpio, (unsigned)repeat),
           s_median_ms(t_hash, (unsigned)repeat), repeat);
    for (unsigned l = 0; l < nlevels; l++) {
        uint64_t t_z[S_MAX_REPEAT], t_d[S_MAX_REPEAT];
        size_t zlen = 0;
        for (unsigned i = 0; i < repeat; i++) {
            _cleanup_free_ void *z = NULL;
            _cleanup_free_ void *d = NULL;
            size_t dlen = 0;
            uint64_t t0 = s_now_ns(CLOCK_MONOTONIC);
            int r = kt_lz4_legacy_compress_level(cpio, clen, levels[l], &z, &zlen);
            uint64_t t1 = s_now_ns(CLOCK_MONOTONIC);
            if (r < 0)
                return s_fail(r, "lz4");
            r = kt_lz4_legacy_decompress(z, zlen, clen, &d, &dlen);
            uint64_t t2 = s_now_ns(CLOCK_MONOTONIC);
            if (r < 0 || dlen != clen || memcmp(d, cpio, clen) != 0)
                return s_fail(r < 0 ? r : -EIO, "lz4 round trip");
            t_z[i] = t1 - t0;
            t_d[i] = t2 - t1;
        }
        printf("level=%d lz4_bytes=%zu ratio=%.3f compress_ms=%.1f decompress_ms=%.2f\n",
               levels[l], zlen, (double)zlen / (double)clen, s_median_ms(t_z, (unsigned)repeat),
               s_median_ms(t_d, (unsigned)repeat));
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        s_usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    argc--;
    argv++;
    if (strcmp(cmd, "acquire") == 0)
        return cmd_acquire(argc, argv);
    if (strcmp(cmd, "sweep") == 0)
        return cmd_sweep(argc, argv);
    if (strcmp(cmd, "hash") == 0)
        return cmd_hash(argc, argv);
    if (strcmp(cmd, "pack") == 0)
        return cmd_pack(argc, argv, true);
    if (strcmp(cmd, "cpio") == 0)
        return cmd_pack(argc, argv, false);
    if (strcmp(cmd, "list") == 0)
        return cmd_list(argc, argv);
    if (strcmp(cmd, "measure") == 0)
        return cmd_measure(argc, argv);
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        s_usage(stdout);
        return 0;
    }
    fprintf(stderr, "%s: unknown command '%s'\n", s_prog, cmd);
    s_usage(stderr);
    return 2;
}
