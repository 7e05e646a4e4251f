/* The worker's result journal: an append-only log replayed at open, a torn
 * or corrupt record cutting it short, compaction keeping exactly the live
 * entries, and the former file-per-result layout imported. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <msgpack.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "kt_hash.h"
#include "kt_journal.h"

typedef struct s_fix {
    char *cache;
    char jdir[PATH_MAX];
    char log[PATH_MAX + 32];
} s_fix_t;

static int s_setup(void **state)
{
    s_fix_t *f = calloc(1, sizeof(*f));
    char tmpl[] = "/tmp/kt-test-journal-XXXXXX";
    char *d = mkdtemp(tmpl);
    if (!f || !d)
        return -1;
    f->cache = strdup(d);
    snprintf(f->jdir, sizeof(f->jdir), "%s/journal", f->cache);
    snprintf(f->log, sizeof(f->log), "%s/" KT_JOURNAL_LOG_NAME, f->jdir);
    *state = f;
    return 0;
}

static int s_teardown(void **state)
{
    s_fix_t *f = *state;
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->cache);
    int r = system(cmd);
    free(f->cache);
    free(f);
    return r == 0 ? 0 : -1;
}

static uint64_t s_size(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return (uint64_t)st.st_size;
}

static unsigned s_count_suffix(const char *dir, const char *suffix, uint64_t *ret_bytes)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    unsigned n = 0;
    struct dirent *de;
    if (ret_bytes)
        *ret_bytes = 0;
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name), sl = strlen(suffix);
        if (l >= sl && strcmp(de->d_name + l - sl, suffix) == 0) {
            n++;
            if (ret_bytes) {
                char p[PATH_MAX + NAME_MAX + 2];
                snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
                *ret_bytes += s_size(p);
            }
        }
    }
    closedir(d);
    return n;
}

/* Entry n of a run: its payload is a pattern of n, sidecar_len bytes. */
static void s_entry(kt_journal_entry_t *e, const char *run, unsigned n, uint32_t attempt,
                    size_t sidecar_len)
{
    memset(e, 0, sizeof(*e));
    snprintf(e->coordinator_id, sizeof(e->coordinator_id), "coord-1");
    snprintf(e->run_id, sizeof(e->run_id), "%s", run);
    char text[32];
    snprintf(text, sizeof(text), "cell-%u", n);
    assert_int_equal(kt_hash_sha256_buf(text, strlen(text), e->cell_id), 0);
    e->attempt = attempt;
    snprintf(e->verdict, sizeof(e->verdict), "%s", n % 2 ? "fail" : "pass");
    snprintf(e->reason, sizeof(e->reason), "reason of %u", n);
    e->finished_ms = 1000 + n;
    e->sidecar = malloc(sidecar_len + 1);
    assert_non_null(e->sidecar);
    for (size_t i = 0; i < sidecar_len; i++)
        e->sidecar[i] = (char)('a' + (n + i) % 26);
    e->sidecar[sidecar_len] = '\0';
    e->sidecar_len = sidecar_len;
    char con[64];
    snprintf(con, sizeof(con), "console of %05u\n", n);
    e->console = strdup(con);
    e->console_len = strlen(con);
}

/* The journal holds exactly want's entry, payload included. */
static void s_assert_holds(kt_journal_t *j, const kt_journal_entry_t *want)
{
    kt_journal_entry_t *m = kt_journal_find(j, want->run_id, want->cell_id, want->attempt);
    assert_non_null(m);
    assert_null(m->sidecar);
    assert_string_equal(m->coordinator_id, want->coordinator_id);
    assert_string_equal(m->verdict, want->verdict);
    assert_string_equal(m->reason, want->reason);
    assert_int_equal(m->finished_ms, want->finished_ms);
    kt_journal_entry_t full;
    assert_int_equal(kt_journal_read(j, m, &full), 0);
    assert_int_equal(full.sidecar_len, want->sidecar_len);
    assert_memory_equal(full.sidecar, want->sidecar, want->sidecar_len);
    if (want->console) {
        assert_int_equal(full.console_len, want->console_len);
        assert_memory_equal(full.console, want->console, want->console_len);
    } else
        assert_null(full.console);
    assert_string_equal(full.reason, want->reason);
    assert_string_equal(full.run_id, want->run_id);
    assert_int_equal(full.attempt, want->attempt);
    kt_journal_entry_clear(&full);
}

static void test_put_find_remove_iterate(void **state)
{
    s_fix_t *f = *state;
    kt_journal_t *j = NULL;
    assert_int_equal(kt_journal_open(f->cache, &j), 0);
    assert_int_equal(kt_journal_count(j), 0);
    assert_int_equal(kt_journal_bad(j), 0);
    assert_string_equal(kt_journal_bad_reason(j), "");

    kt_journal_entry_t e[3];
    s_entry(&e[0], "run-a", 1, 1, 100);
    s_entry(&e[1], "run-b", 1, 2, 0); /* same cell, another run and attempt; empty sidecar */
    s_entry(&e[2], "run-a", 2, 1, 5000);
    free(e[2].console);
    e[2].console = NULL;
    e[2].console_len = 0;
    for (int i = 0; i < 3; i++)
        assert_int_equal(kt_journal_put(j, &e[i]), 0);
    assert_int_equal(kt_journal_count(j), 3);
    for (int i = 0; i < 3; i++)
        s_assert_holds(j, &e[i]);
    assert_null(kt_journal_find(j, "run-a", e[0].cell_id, 2));
    assert_null(kt_journal_find(j, "run-c", e[0].cell_id, 1));

    /* Iteration visits each entry once. */
    unsigned seen[3] = {0}, n = 0;
    for (kt_journal_entry_t *x = kt_journal_first(j); x; x = kt_journal_next(j), n++)
        for (int i = 0; i < 3; i++)
            if (strcmp(x->run_id, e[i].run_id) == 0 && strcmp(x->cell_id, e[i].cell_id) == 0 &&
                x->attempt == e[i].attempt)
                seen[i]++;
    assert_int_equal(n, 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(seen[i], 1);

    /* The daemon's bookkeeping lives in the index and comes back with read. */
    kt_journal_entry_t *m = kt_journal_find(j, "run-a", e[0].cell_id, 1);
    m->offered_to = 7;
    kt_journal_entry_t full;
    assert_int_equal(kt_journal_read(j, m, &full), 0);
    assert_int_equal(full.offered_to, 7);
    kt_journal_entry_clear(&full);

    /* Same key: replaced, not added; offered_* start over. */
    kt_journal_entry_t r0;
    s_entry(&r0, "run-a", 1, 1, 300);
    snprintf(r0.verdict, sizeof(r0.verdict), "error");
    snprintf(r0.reason, sizeof(r0.reason), "replaced");
    assert_int_equal(kt_journal_put(j, &r0), 0);
    assert_int_equal(kt_journal_count(j), 3);
    s_assert_holds(j, &r0);
    assert_int_equal(kt_journal_find(j, "run-a", e[0].cell_id, 1)->offered_to, 0);

    /* Bad entries are refused and change nothing. */
    uint64_t before = s_size(f->log);
    kt_journal_entry_t bad = e[0];
    snprintf(bad.verdict, sizeof(bad.verdict), "maybe");
    assert_int_equal(kt_journal_put(j, &bad), -EINVAL);
    bad = e[0];
    bad.attempt = 0;
    assert_int_equal(kt_journal_put(j, &bad), -EINVAL);
    bad = e[0];
    bad.run_id[0] = '\0';
    assert_int_equal(kt_journal_put(j, &bad), -EINVAL);
    bad = e[0];
    bad.cell_id[3] = 'x';
    assert_int_equal(kt_journal_put(j, &bad), -EINVAL);
    bad = e[0];
    bad.sidecar = NULL;
    assert_int_equal(kt_journal_put(j, &bad), -EINVAL);
    bad = e[0];
    bad.sidecar_len = KT_MSG_MAX_SIDECAR + 1;
    assert_int_equal(kt_journal_put(j, &bad), -E2BIG);
    bad = e[0];
    bad.console_len = KT_MSG_MAX_CONSOLE + 1;
    assert_int_equal(kt_journal_put(j, &bad), -E2BIG);
    assert_int_equal(s_size(f->log), before);
    assert_int_equal(kt_journal_count(j), 3);

    assert_int_equal(kt_journal_remove(j, "run-a", e[0].cell_id, 1), 0);
    assert_int_equal(kt_journal_remove(j, "run-a", e[0].cell_id, 1), -ENOENT);
    assert_null(kt_journal_find(j, "run-a", e[0].cell_id, 1));
    assert_int_equal(kt_journal_read(j, &e[0], &full), -ENOENT);
    assert_int_equal(kt_journal_count(j), 2);
    s_assert_holds(j, &e[1]);
    s_assert_holds(j, &e[2]);

    /* One writer per folder. */
    kt_journal_t *j2 = NULL;
    assert_int_equal(kt_journal_open(f->cache, &j2), -EBUSY);
    assert_null(j2);

    kt_journal_destroy(&j);
    assert_null(j);
    kt_journal_destroy(&j); /* NULL-safe */
    for (int i = 0; i < 3; i++)
        kt_journal_entry_clear(&e[i]);
    kt_journal_entry_clear(&r0);
}

static void test_reopen_replays(void **state)
{
    s_fix_t *f = *state;
    kt_journal_t *j = NULL;
    kt_journal_entry_t e[6];
    assert_int_equal(kt_journal_open(f->cache, &j), 0);
    for (unsigned i = 0; i < 6; i++) {
        s_entry(&e[i], "run-r", i, 1 + i % 2, 200 + i);
        assert_int_equal(kt_journal_put(j, &e[i]), 0);
    }
    assert_int_equal(kt_journal_remove(j, e[1].run_id, e[1].cell_id, e[1].attempt), 0);
    assert_int_equal(kt_journal_remove(j, e[4].run_id, e[4].cell_id, e[4].attempt), 0);
    kt_journal_entry_clear(&e[3]);
    s_entry(&e[3], "run-r", 3, 2, 999);
    snprintf(e[3].reason, sizeof(e[3].reason), "the second word");
    assert_int_equal(kt_journal_put(j, &e[3]), 0);
    kt_journal_destroy(&j);

    assert_int_equal(kt_journal_open(f->cache, &j), 0);
    assert_int_equal(kt_journal_bad(j), 0);
    assert_int_equal(kt_journal_count(j), 4);
    s_assert_holds(j, &e[0]);
    s_assert_holds(j, &e[2]);
    s_assert_holds(j, &e[3]);
    s_assert_holds(j, &e[5]);
    assert_null(kt_journal_find(j, e[1].run_id, e[1].cell_id, e[1].attempt));
    assert_null(kt_journal_find(j, e[4].run_id, e[4].cell_id, e[4].attempt));

    /* Appending after a replay, then replaying again. */
    assert_int_equal(kt_journal_remove(j, e[0].run_id, e[0].cell_id, e[0].attempt), 0);
    assert_int_equal(kt_journal_put(j, &e[1]), 0);
    kt_journal_destroy(&j);
    assert_int_equal(kt_journal_open(f->cache, &j), 0);
    assert_int_equal(kt_journal_count(j), 4);
    assert_null(kt_journal_find(j, e[0].run_id, e[0].cell_id, e[0].attempt));
    s_assert_holds(j, &e[1]);
    s_assert_holds(j, &e[5]);
    assert_int_equal(kt_journal_bad(j), 0);
    assert_int_equal(s_count_suffix(f->jdir, ".bad", NULL), 0);
    kt_journal_destroy(&j);
    for (unsigned i = 0; i < 6; i++)
        kt_journal_entry_clear(&e[i]);
}

static void s_truncate(const char *path, uint64_t size)
{
    assert_int_equal(truncate(path, (off_t)size), 0);
}

/* A crash in the middle of a write leaves a torn last record: it goes, the
 * rest stays, and new records follow the good ones. */
static void test_torn_last_record(void **state)
{
    s_fix_t *f = *state;
    kt_journal_t *j = NULL;
    kt_journal_entry_t a, b, c;
    s_entry(&a, "run-t", 1, 1, 400);
    s_entry(&b, "run-t", 2, 1, 400);
    s_entry(&c, "run-t", 3, 1, 10);
    assert_int_equal(kt_journal_open(f->cache, &j), 0);
    assert_int_equal(kt_journal_put(j, &a), 0);
    uint64_t sa = s_size(f->log);
    assert_int_equal(kt_journal_put(j, &b), 0);
    uint64_t sab = s_size(f->log);
    kt_journal_destroy(&j);

    s_truncate(f->log, sab - 3);
    assert_int_equal(kt_journal_open(f->cache, &j), 0);
    assert_int_equal(kt_journal_count(j), 1);
    s_assert_holds(j, &a);
    assert_null(kt_journal_find(j, b.run_id, b.cell_id, 1));
    assert_int_equal(kt_journal_bad(j), 1);
    assert_non_null(strstr(kt_journal_bad_reason(j), "torn"));
    assert_int_equal(s_size(f->log), sa);
    /* What was cut is kept aside, byte for byte. */
    uint64_t kept = 0;
    assert_int_equal(s_count_suffix(f->jdir, ".bad", &kept), 1);
    assert_int_equal(kept, sab - 3 - sa);

    assert_int_equal(kt_journal_put(j, &c), 0);
    kt_journal_destroy(&j);
    assert_int_equal(kt_journal_open(f->cache, &j), 0);
    assert_int_equal(kt_journal_bad(j), 0);
    assert_int_equal(kt_journal_count(j), 2);
    s_assert_holds(j, &a);
    s_assert_holds(j, &c);
    kt_journal_destroy(&j);

    /* Torn inside the header: only a few bytes of the last record made it. */
    s_truncate(f->log, sa + 5);
    assert_int_equal(kt_journal_open(f->cache, &j), 0);
    assert_int_equal(kt_journal_count(j), 1);
    s_assert_holds(j, &a);
    assert_int_equal(kt_journal_bad(j), 1);
    assert_non_null(strstr(kt_journal_bad_reason(j), "torn"));
    assert_int_equal(s_size(f->log), sa);
    assert_int_equal(s_count_suffix(f->jdir, ".bad", NULL), 2);
    kt_journal_destroy(&j);
    kt_journal_entry_clear(&a);
    kt_journal_entry_clear(&b);
    kt_journal_entry_clear(&c);
}

/* A record whose checksum does not match ends the replay there: what came
 * before is kept, the log is cut there, the reason counted. */
static void test_corrupt_middle_record(void **state)
{
    s_fix_t *f = *state;
    kt_journal_t *j = NULL;
    kt_journal_entry_t a, b, c, d;
    s_entry(&a, "run-c", 1, 1, 300);
    s_entry(&b, "run-c", 2, 1, 300);
    s_entry(&c, "run-c", 3, 1, 300);
    s_entry(&d, "run-c", 4, 1, 30);
    assert_int_equal(kt_journal_open(f->cache, &j), 0);
    assert_int_equal(kt_journal_put(j, &a), 0);
    uint64_t sa = s_size(f->log);
    assert_int_equal(kt_journal_put(j, &b), 0);
    uint64_t sab = s_size(f->log);
    assert_int_equal(kt_journal_put(j, &c), 0);
    uint64_t sabc = s_size(f->log);
    kt_journal_destroy(&j);

    /* One bit flipped in the middle of b's sidecar. */
    int fd = open(f->log, O_RDWR | O_CLOEXEC);
    assert_true(fd >= 0);
    uint64_t at = sa + (sab - sa) / 2;
    char ch;
    assert_int_equal(pread(fd, &ch, 1, (off_t)at), 1);
    ch ^= 0x10;
    assert_int_equal(pwrite(fd, &ch, 1, (off_t)at), 1);
    close(fd);

    assert_int_equal(kt_journal_open(f->cache, &j), 0);
    assert_int_equal(kt_journal_count(j), 1);
    s_assert_holds(j, &a);
    assert_null(kt_journal_find(j, b.run_id, b.cell_id, 1));
    assert_null(kt_journal_find(j, c.run_id, c.cell_id, 1));
    assert_int_equal(kt_journal_bad(j), 1);
    assert_non_null(strstr(kt_journal_bad_reason(j), "checksum"));
    assert_non_null(strstr(kt_journal_bad_reason(j), "offset"));
    assert_int_equal(s_size(f->log), sa);
    uint64_t kept = 0;
    assert_int_equal(s_count_suffix(f->jdir, ".bad", &kept), 1);
    assert_int_equal(kept, sabc - sa);

    assert_int_equal(kt_journal_put(j, &d), 0);
    kt_journal_destroy(&j);
    assert_int_equal(kt_journal_open(f->cache, &j), 0);
    assert_int_equal(kt_journal_bad(j), 0);
    assert_int_equal(kt_journal_count(j), 2);
    s_assert_holds(j, &a);
    s_assert_holds(j, &d);
    kt_journal_destroy(&j);

    /* Garbage that is not a record at all (a header whose magic is gone). */
    fd = open(f->log, O_WRONLY | O_APPEND | O_CLOEXEC);
    assert_true(fd >= 0);
    char junk[100];
    memset(junk, 'z', sizeof(junk));
    assert_int_equal(write(fd, junk, sizeof(junk)), (ssize_t)sizeof(junk));
    close(fd);
    uint64_t good = s_size(f->log) - sizeof(junk);
    assert_int_equal(kt_journal_open(f->cache, &j), 0);
    assert_int_equal(kt_journal_count(j), 2);
    assert_int_equal(kt_journal_bad(j), 1);
    assert_non_null(strstr(kt_journal_bad_reason(j), "no record"));
    assert_int_equal(s_size(f->log), good);
    kt_journal_destroy(&j);
    kt_journal_entry_clear(&a);
    kt_journal_entry_clear(&b);
    kt_journal_entry_clear(&c);
    kt_journal_entry_clear(&d);
}

/* Compaction rewrites the log with exactly the live entries, while open and
 * at open. */
static void test_compaction(void **state)
{
    s_fix_t *f = *state;
    enum { N = 100, KEEP = 20 };
    const size_t side = 128u << 10;
    kt_journal_t *j = NULL;
    kt_journal_entry_t *e = calloc(N, sizeof(*e));
    assert_non_null(e);
    assert_int_equal(kt_journal_open(f->cache, &j), 0);
    for (unsigned i = 0; i < N; i++) {
        s_entry(&e[i], "run-k", i, 1, side);
        snprintf(e[i].reason, sizeof(e[i].reason), "same-length-%03u", i);
        assert_int_equal(kt_journal_put(j, &e[i]), 0);
    }
    uint64_t full = s_size(f->log);
    assert_int_equal(full % N, 0); /* every record the same length */
    uint64_t rec = full / N;
    assert_true(N * rec > 2 * (uint64_t)KT_JOURNAL_COMPACT_MIN);

    /* Removing all but KEEP passes both thresholds at some point. */
    for (unsigned i = KEEP; i < N; i++)
        assert_int_equal(kt_journal_remove(j, e[i].run_id, e[i].cell_id, 1), 0);
    uint64_t after = s_size(f->log);
    print_message("# compaction: %u records of %llu bytes, %llu -> %llu bytes after %u removes\n",
                  N, (unsigned long long)rec, (unsigned long long)full, (unsigned long long)after,
                  N - KEEP);
    assert_true(after < full / 2 + rec);
    /* The live records plus whatever was appended since the compaction. */
    assert_true(after >= KEEP * rec);
    assert_true(after - KEEP * rec < KT_JOURNAL_COMPACT_MIN + rec);
    assert_int_equal(kt_journal_count(j), KEEP);
    for (unsigned i = 0; i < KEEP; i++)
        s_assert_holds(j, &e[i]);
    for (unsigned i = KEEP; i < N; i++)
        assert_null(kt_journal_find(j, e[i].run_id, e[i].cell_id, 1));
    kt_journal_destroy(&j);

    assert_int_equal(kt_journal_open(f->cache, &j), 0);
    assert_int_equal(kt_journal_bad(j), 0);
    assert_int_equal(kt_journal_count(j), KEEP);
    for (unsigned i = 0; i < KEEP; i++)
        s_assert_holds(j, &e[i]);

    /* More than half dead at open: the log starts over with the live set. */
    for (unsigned i = KEEP / 2; i < KEEP; i++)
        assert_int_equal(kt_journal_remove(j, e[i].run_id, e[i].cell_id, 1), 0);
    kt_journal_destroy(&j);
    assert_true(s_size(f->log) > (KEEP / 2) * rec);
    assert_int_equal(kt_journal_open(f->cache, &j), 0);
    assert_int_equal(s_size(f->log), (KEEP / 2) * rec);
    assert_int_equal(kt_journal_count(j), KEEP / 2);
    for (unsigned i = 0; i < KEEP / 2; i++)
        s_assert_holds(j, &e[i]);
    /* Appends still go to the (new) log and replay. */
    assert_int_equal(kt_journal_put(j, &e[KEEP]), 0);
    kt_journal_destroy(&j);
    assert_int_equal(kt_journal_open(f->cache, &j), 0);
    assert_int_equal(kt_journal_count(j), KEEP / 2 + 1);
    s_assert_holds(j, &e[KEEP]);
    assert_int_equal(s_count_suffix(f->jdir, ".compact", NULL), 0);

    /* Replacing one entry over and over: the replaced records are dead too. */
    uint64_t max_size = 0;
    for (unsigned i = 0; i < N; i++) {
        e[0].finished_ms = 5000 + i;
        assert_int_equal(kt_journal_put(j, &e[0]), 0);
        if (s_size(f->log) > max_size)
            max_size = s_size(f->log);
    }
    assert_true(N * rec > 2 * (uint64_t)KT_JOURNAL_COMPACT_MIN);
    assert_true(max_size <= KT_JOURNAL_COMPACT_MIN + (KEEP + 2) * rec);
    s_assert_holds(j, &e[0]);
    kt_journal_destroy(&j);
    assert_int_equal(kt_journal_open(f->cache, &j), 0);
    assert_int_equal(kt_journal_count(j), KEEP / 2 + 1);
    s_assert_holds(j, &e[0]);
    kt_journal_destroy(&j);
    for (unsigned i = 0; i < N; i++)
        kt_journal_entry_clear(&e[i]);
    free(e);
}

/* A write that fails half-way (here: the file size limit) leaves nothing
 * behind, so later records do not follow a torn one. */
static void test_failed_append_leaves_nothing(void **state)
{
    s_fix_t *f = *state;
    kt_journal_t *j = NULL;
    kt_journal_entry_t a, b, c;
    s_entry(&a, "run-f", 1, 1, 100);
    s_entry(&b, "run-f", 2, 1, 20000);
    s_entry(&c, "run-f", 3, 1, 100);
    assert_int_equal(kt_journal_open(f->cache, &j), 0);
    assert_int_equal(kt_journal_put(j, &a), 0);
    uint64_t sa = s_size(f->log);

    struct rlimit old, lim;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    lim = old;
    lim.rlim_cur = sa + 10000; /* b's record is cut off half-way */
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    int r = kt_journal_put(j, &b);
    uint64_t after = s_size(f->log);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, prev);
    assert_int_equal(r, -EFBIG);
    assert_int_equal(after, sa);
    assert_null(kt_journal_find(j, b.run_id, b.cell_id, 1));
    assert_int_equal(kt_journal_count(j), 1);

    assert_int_equal(kt_journal_put(j, &c), 0);
    kt_journal_destroy(&j);
    assert_int_equal(kt_journal_open(f->cache, &j), 0);
    assert_int_equal(kt_journal_bad(j), 0);
    assert_int_equal(kt_journal_count(j), 2);
    s_assert_holds(j, &a);
    s_assert_holds(j, &c);
    kt_journal_destroy(&j);
    kt_journal_entry_clear(&a);
    kt_journal_entry_clear(&b);
    kt_journal_entry_clear(&c);
}

static double s_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The daemon's steady state: put, ack, put, ack... The log stays bounded. */
static void test_many_cycles(void **state)
{
    s_fix_t *f = *state;
    enum { CYCLES = 10000 };
    kt_journal_t *j = NULL;
    assert_int_equal(kt_journal_open(f->cache, &j), 0);
    kt_journal_entry_t e;
    s_entry(&e, "run-m", 0, 1, 1024);
    uint64_t max_size = 0, written = 0;
    double t0 = s_now_s();
    for (unsigned i = 0; i < CYCLES; i++) {
        char text[32];
        snprintf(text, sizeof(text), "cycle-%u", i);
        assert_int_equal(kt_hash_sha256_buf(text, strlen(text), e.cell_id), 0);
        uint64_t s0 = s_size(f->log);
        assert_int_equal(kt_journal_put(j, &e), 0);
        uint64_t s1 = s_size(f->log);
        assert_int_equal(kt_journal_remove(j, e.run_id, e.cell_id, 1), 0);
        uint64_t s2 = s_size(f->log);
        written += (s1 - s0) + (s2 > s1 ? s2 - s1 : 0);
        if (s1 > max_size)
            max_size = s1;
    }
    double took = s_now_s() - t0;
    print_message("# %u put+remove cycles of a 1 KiB sidecar: %.3f s (%.1f us per cycle, "
                  "including two stat() each), %llu bytes appended, log at most %llu bytes\n",
                  CYCLES, took, took * 1e6 / CYCLES, (unsigned long long)written,
                  (unsigned long long)max_size);
    assert_int_equal(kt_journal_count(j), 0);
    /* Compaction ran: far less on disk than was appended, never much over
     * the threshold. */
    assert_true(written > 2 * (uint64_t)KT_JOURNAL_COMPACT_MIN);
    assert_true(max_size <= KT_JOURNAL_COMPACT_MIN + 4096);
    kt_journal_destroy(&j);
    /* Nothing live: the log starts over empty. */
    assert_int_equal(kt_journal_open(f->cache, &j), 0);
    assert_int_equal(kt_journal_count(j), 0);
    assert_int_equal(kt_journal_bad(j), 0);
    assert_int_equal(s_size(f->log), 0);
    kt_journal_destroy(&j);
    kt_journal_entry_clear(&e);
}

/* A file of the former layout, written as the file-per-result journal did. */
static void s_write_legacy(const char *jdir, const kt_journal_entry_t *e)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 10);
#define S_KV_STR(k, v)                                                                             \
    do {                                                                                           \
        msgpack_pack_str(&pk, strlen(k));                                                          \
        msgpack_pack_str_body(&pk, k, strlen(k));                                                  \
        msgpack_pack_str(&pk, strlen(v));                                                          \
        msgpack_pack_str_body(&pk, v, strlen(v));                                                  \
    } while (0)
#define S_KV_U64(k, v)                                                                             \
    do {                                                                                           \
        msgpack_pack_str(&pk, strlen(k));                                                          \
        msgpack_pack_str_body(&pk, k, strlen(k));                                                  \
        msgpack_pack_uint64(&pk, v);                                                               \
    } while (0)
    S_KV_U64("v", 1);
    S_KV_STR("coordinator", e->coordinator_id);
    S_KV_STR("run_id", e->run_id);
    S_KV_STR("cell_id", e->cell_id);
    S_KV_U64("attempt", e->attempt);
    S_KV_STR("verdict", e->verdict);
    S_KV_STR("reason", e->reason);
    S_KV_U64("finished_ms", e->finished_ms);
    S_KV_STR("sidecar", e->sidecar);
    S_KV_STR("console", e->console);
#undef S_KV_STR
#undef S_KV_U64
    char rh[KT_HASH_HEX_SIZE], path[PATH_MAX + 200];
    assert_int_equal(kt_hash_sha256_buf(e->run_id, strlen(e->run_id), rh), 0);
    snprintf(path, sizeof(path), "%s/%s-%u-%.16s.result", jdir, e->cell_id, e->attempt, rh);
    FILE *fp = fopen(path, "we");
    assert_non_null(fp);
    assert_int_equal(fwrite(sb.data, 1, sb.size, fp), sb.size);
    assert_int_equal(fclose(fp), 0);
    msgpack_sbuffer_destroy(&sb);
}

/* A worker upgraded with unacknowledged results in the former layout keeps
 * them; a file that is not an entry is set aside. */
static void test_imports_former_layout(void **state)
{
    s_fix_t *f = *state;
    assert_int_equal(mkdir(f->cache, 0755) < 0 && errno != EEXIST, 0);
    assert_int_equal(mkdir(f->jdir, 0700), 0);
    kt_journal_entry_t a, b;
    s_entry(&a, "run-old", 1, 3, 700);
    s_entry(&b, "run-old", 2, 1, 10);
    s_write_legacy(f->jdir, &a);
    s_write_legacy(f->jdir, &b);
    char junk[PATH_MAX + 32];
    snprintf(junk, sizeof(junk), "%s/garbage.result", f->jdir);
    FILE *fp = fopen(junk, "we");
    assert_non_null(fp);
    fputs("not msgpack", fp);
    fclose(fp);

    kt_journal_t *j = NULL;
    assert_int_equal(kt_journal_open(f->cache, &j), 0);
    assert_int_equal(kt_journal_count(j), 2);
    assert_int_equal(kt_journal_bad(j), 1);
    assert_non_null(strstr(kt_journal_bad_reason(j), "garbage.result"));
    s_assert_holds(j, &a);
    s_assert_holds(j, &b);
    assert_int_equal(s_count_suffix(f->jdir, ".result", NULL), 0);
    assert_int_equal(s_count_suffix(f->jdir, ".result.bad", NULL), 1);
    assert_int_equal(kt_journal_remove(j, a.run_id, a.cell_id, 3), 0);
    kt_journal_destroy(&j);

    assert_int_equal(kt_journal_open(f->cache, &j), 0);
    assert_int_equal(kt_journal_count(j), 1);
    assert_int_equal(kt_journal_bad(j), 0);
    s_assert_holds(j, &b);
    kt_journal_destroy(&j);
    kt_journal_entry_clear(&a);
    kt_journal_entry_clear(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_put_find_remove_iterate, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_reopen_replays, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_torn_last_record, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_middle_record, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_compaction, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_failed_append_leaves_nothing, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_many_cycles, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_imports_former_layout, s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
