/* The run store: schema and WAL, exactly-once results (a fenced attempt's
 * late result and a duplicate are stale), resume after reopening, errors
 * for unknown runs/cells, schema version checks, several handles and
 * processes writing one store at once, each cell's kernel release, and the
 * migration of a schema 1 store. */
#include <errno.h>
#include <setjmp.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "kt_store.h"
#include "kt_test_git.h"

static char *s_dir;
static char s_db[4096];

static int s_setup(void **state)
{
    (void)state;
    s_dir = kt_test_tmpdir("store");
    snprintf(s_db, sizeof(s_db), "%s/ktstr.db", s_dir);
    return 0;
}

static int s_teardown(void **state)
{
    (void)state;
    kt_test_rm_rf(s_dir);
    free(s_dir);
    return 0;
}

/* A fresh database for each test. */
static int s_fresh(void **state)
{
    (void)state;
    unlink(s_db);
    char p[4200];
    snprintf(p, sizeof(p), "%s-wal", s_db);
    unlink(p);
    snprintf(p, sizeof(p), "%s-shm", s_db);
    unlink(p);
    return 0;
}

static int64_t s_query_int(const char *sql)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(s_db, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

static void s_text_query(const char *sql, char *buf, size_t len)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(s_db, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    const unsigned char *t = sqlite3_column_text(st, 0);
    snprintf(buf, len, "%s", t ? (const char *)t : "(null)");
    sqlite3_finalize(st);
    sqlite3_close(db);
}

static void test_schema_and_wal(void **state)
{
    (void)state;
    kt_store_t *s = NULL;
    assert_int_equal(kt_store_open(s_db, &s), 0);
    char mode[32];
    s_text_query("PRAGMA journal_mode", mode, sizeof(mode));
    assert_string_equal(mode, "wal");
    assert_int_equal(s_query_int("SELECT version FROM schema_version"), 2);
    assert_int_equal(s_query_int("SELECT COUNT(*) FROM sqlite_master WHERE name IN "
                                 "('runs','cells','attempts','results','metrics','verdicts')"),
                     6);
    kt_store_close(&s);
    assert_null(s);
    kt_store_close(&s); /* NULL-safe */
    /* Reopening an existing store keeps it. */
    assert_int_equal(kt_store_open(s_db, &s), 0);
    kt_store_close(&s);
    assert_int_equal(s_query_int("SELECT COUNT(*) FROM schema_version"), 1);

    /* A store from a newer ktstr-coord is refused. */
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(s_db, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "UPDATE schema_version SET version = 99", NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(kt_store_open(s_db, &s), -EPROTO);
    assert_null(s);
    char why[512], want[4200];
    assert_int_equal(kt_store_open_why(s_db, &s, why, sizeof(why)), -EPROTO);
    snprintf(want, sizeof(want),
             "'%s': the run store has schema version 99, this ktstr-coord knows 2", s_db);
    assert_string_equal(why, want);

    /* Not a database. */
    s_fresh(NULL);
    kt_test_writef(s_db, "this is not SQLite, just text long enough to have a header......\n");
    assert_int_equal(kt_store_open(s_db, &s), -EBADMSG);
    assert_int_equal(kt_store_open_why(s_db, &s, why, sizeof(why)), -EBADMSG);
    assert_non_null(strstr(why, "file is not a database"));
    /* A folder that does not exist. */
    char bad[4200];
    snprintf(bad, sizeof(bad), "%s/missing/ktstr.db", s_dir);
    assert_int_equal(kt_store_open(bad, &s), -EACCES);
    assert_int_equal(kt_store_open(NULL, &s), -EINVAL);
}

static void s_cell(kt_store_t *s, const char *run, const char *cell)
{
    char name[128];
    snprintf(name, sizeof(name), "gauntlet/steady/tiny-1llc/eevdf/%s", cell);
    assert_int_equal(kt_store_cell_add(s, run, cell, name, "6.12.117", "6.12.117", "3f2a9c1"), 0);
}

static void test_exactly_once(void **state)
{
    (void)state;
    kt_store_t *s = NULL;
    assert_int_equal(kt_store_open(s_db, &s), 0);
    assert_int_equal(kt_store_run_begin(s, "run1", "{\"gauntlet\":\"g.yaml\"}"), 0);
    s_cell(s, "run1", "c1");
    s_cell(s, "run1", "c1"); /* idempotent */
    s_cell(s, "run1", "c2");
    s_cell(s, "run1", "c3");
    assert_int_equal(s_query_int("SELECT COUNT(*) FROM cells"), 3);

    bool acc = true;
    char v[16];
    unsigned n;
    /* c1: attempt 1 on w1 is lost, attempt 2 begins on w2: attempt 1's late
     * result is stale, attempt 2's counts, a repeat of it is stale. */
    assert_int_equal(kt_store_attempt_begin(s, "run1", "c1", 1, "w1"), 0);
    assert_int_equal(kt_store_last_attempt(s, "run1", "c1", &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(kt_store_attempt_lost(s, "run1", "c1", 1, "worker lost: 5 s of silence"), 0);
    assert_int_equal(kt_store_attempt_begin(s, "run1", "c1", 2, "w2"), 0);
    assert_int_equal(kt_store_cell_verdict(s, "run1", "c1", v, sizeof(v)), -ENOENT);
    assert_int_equal(kt_store_result(s, "run1", "c1", 1, "w1", "fail", "late", NULL, NULL, &acc),
                     0);
    assert_false(acc);
    assert_int_equal(kt_store_cell_verdict(s, "run1", "c1", v, sizeof(v)), -ENOENT);
    acc = false;
    assert_int_equal(kt_store_result(s, "run1", "c1", 2, "w2", "pass", NULL, "/r/c1.ktstr.json",
                                     "{\"spread\":3.5}", &acc),
                     0);
    assert_true(acc);
    assert_int_equal(kt_store_cell_verdict(s, "run1", "c1", v, sizeof(v)), 0);
    assert_string_equal(v, "pass");
    acc = true;
    assert_int_equal(kt_store_result(s, "run1", "c1", 2, "w2", "fail", "dup", NULL, NULL, &acc), 0);
    assert_false(acc);
    assert_int_equal(kt_store_cell_verdict(s, "run1", "c1", v, sizeof(v)), 0);
    assert_string_equal(v, "pass");
    assert_int_equal(kt_store_stale_count(s, "run1", &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(kt_store_last_attempt(s, "run1", "c1", &n), 0);
    assert_int_equal(n, 2);

    /* The rows say what happened. */
    char t[256];
    s_text_query("SELECT group_concat(state, ',') FROM (SELECT state FROM attempts WHERE "
                 "cell_id = 'c1' ORDER BY attempt)",
                 t, sizeof(t));
    assert_string_equal(t, "lost,done");
    s_text_query("SELECT group_concat(stale_why, '|') FROM (SELECT stale_why FROM results WHERE "
                 "cell_id = 'c1' AND stale = 1 ORDER BY id)",
                 t, sizeof(t));
    assert_string_equal(t, "fenced: attempt 2 is current|duplicate: the cell already has a result");
    assert_int_equal(s_query_int("SELECT COUNT(*) FROM verdicts WHERE cell_id = 'c1'"), 1);
    s_text_query("SELECT json FROM metrics m JOIN cells c ON c.result_id = m.result_id "
                 "WHERE c.cell_id = 'c1'",
                 t, sizeof(t));
    assert_string_equal(t, "{\"spread\":3.5}");

    /* c2: a running attempt is fenced when the next begins, without being
     * marked lost; the lost attempt's own result, when it is still the
     * current one, is the cell's result. */
    assert_int_equal(kt_store_attempt_begin(s, "run1", "c2", 1, "w1"), 0);
    assert_int_equal(kt_store_attempt_begin(s, "run1", "c2", 2, "w3"), 0);
    s_text_query("SELECT state FROM attempts WHERE cell_id = 'c2' AND attempt = 1", t, sizeof(t));
    assert_string_equal(t, "fenced");
    assert_int_equal(kt_store_attempt_lost(s, "run1", "c2", 2, "lease expired"), 0);
    assert_int_equal(
        kt_store_result(s, "run1", "c2", 2, "w3", "error", "boot timeout", NULL, NULL, &acc), 0);
    assert_true(acc);
    assert_int_equal(kt_store_cell_verdict(s, "run1", "c2", v, sizeof(v)), 0);
    assert_string_equal(v, "error");

    /* c3: a result for an attempt never begun is stale; an older attempt
     * cannot begin after a newer one. */
    assert_int_equal(kt_store_result(s, "run1", "c3", 1, "w9", "pass", NULL, NULL, NULL, &acc), 0);
    assert_false(acc);
    assert_int_equal(kt_store_attempt_begin(s, "run1", "c3", 3, "w1"), 0);
    assert_int_equal(kt_store_attempt_begin(s, "run1", "c3", 2, "w1"), -ESTALE);
    assert_int_equal(kt_store_attempt_begin(s, "run1", "c3", 3, "w2"), 0); /* same: idempotent */
    assert_int_equal(kt_store_result(s, "run1", "c3", 3, "w2", "skip", "no SMT", NULL, NULL, &acc),
                     0);
    assert_true(acc);
    assert_int_equal(kt_store_stale_count(s, "run1", &n), 0);
    assert_int_equal(n, 3);

    /* Unknown runs and cells. */
    assert_int_equal(kt_store_cell_add(s, "nope", "c1", "x", NULL, NULL, NULL), -ENOENT);
    assert_int_equal(kt_store_attempt_begin(s, "run1", "zz", 1, "w1"), -ENOENT);
    assert_int_equal(kt_store_result(s, "run1", "zz", 1, "w1", "pass", NULL, NULL, NULL, &acc),
                     -ENOENT);
    assert_int_equal(kt_store_attempt_lost(s, "run1", "c1", 7, "x"), -ENOENT);
    assert_int_equal(kt_store_run_end(s, "nope", "done"), -ENOENT);
    assert_int_equal(kt_store_attempt_begin(s, "run1", "c1", 0, "w1"), -EINVAL);
    assert_int_equal(kt_store_last_attempt(s, "run1", "zz", &n), 0);
    assert_int_equal(n, 0);
    assert_non_null(strstr(kt_store_error(s), "not in the store"));

    /* Oversized input is refused, not stored. */
    size_t big = (64u << 10) + 1;
    char *huge = malloc(big + 1);
    assert_non_null(huge);
    memset(huge, 'x', big);
    huge[big] = '\0';
    assert_int_equal(kt_store_attempt_lost(s, "run1", "c3", 3, huge), -E2BIG);
    free(huge);
    kt_store_close(&s);
}

/* Resume: a reopened store knows which cells are done, and beginning the
 * same run again keeps them. */
static void test_resume(void **state)
{
    (void)state;
    kt_store_t *s = NULL;
    assert_int_equal(kt_store_open(s_db, &s), 0);
    assert_int_equal(kt_store_run_begin(s, "r-20250101", "{\"cells\":3}"), 0);
    const char *cells[] = {"a", "b", "c"};
    bool acc;
    for (unsigned i = 0; i < 3; i++)
        s_cell(s, "r-20250101", cells[i]);
    assert_int_equal(kt_store_attempt_begin(s, "r-20250101", "a", 1, "w1"), 0);
    assert_int_equal(kt_store_result(s, "r-20250101", "a", 1, "w1", "pass", NULL, NULL, NULL, &acc),
                     0);
    assert_int_equal(kt_store_attempt_begin(s, "r-20250101", "b", 1, "w1"), 0);
    /* The coordinator dies here (no run_end). */
    kt_store_close(&s);

    assert_int_equal(kt_store_open(s_db, &s), 0);
    assert_int_equal(kt_store_run_begin(s, "r-20250101", "{\"ignored\":true}"), 0);
    char *inputs = NULL;
    assert_int_equal(kt_store_run_inputs(s, "r-20250101", &inputs), 0);
    assert_string_equal(inputs, "{\"cells\":3}");
    free(inputs);
    assert_int_equal(kt_store_run_inputs(s, "r-other", &inputs), -ENOENT);
    assert_int_equal(s_query_int("SELECT resumes FROM runs WHERE run_id = 'r-20250101'"), 1);
    s_cell(s, "r-20250101", "a"); /* re-adding cells on resume changes nothing */
    char v[16];
    unsigned todo = 0, last = 0;
    for (unsigned i = 0; i < 3; i++)
        if (kt_store_cell_verdict(s, "r-20250101", cells[i], v, sizeof(v)) == -ENOENT)
            todo++;
    assert_int_equal(todo, 2);
    assert_int_equal(kt_store_cell_verdict(s, "r-20250101", "a", v, sizeof(v)), 0);
    assert_string_equal(v, "pass");
    /* b's next attempt continues the numbering; the dead run's attempt 1,
     * should its worker re-offer it, is fenced. */
    assert_int_equal(kt_store_last_attempt(s, "r-20250101", "b", &last), 0);
    assert_int_equal(last, 1);
    assert_int_equal(kt_store_attempt_begin(s, "r-20250101", "b", last + 1, "w2"), 0);
    assert_int_equal(kt_store_result(s, "r-20250101", "b", 1, "w1", "pass", NULL, NULL, NULL, &acc),
                     0);
    assert_false(acc);
    assert_int_equal(
        kt_store_result(s, "r-20250101", "b", 2, "w2", "fail", "stall", NULL, NULL, &acc), 0);
    assert_true(acc);
    assert_int_equal(kt_store_run_end(s, "r-20250101", "fail"), 0);
    char t[64];
    s_text_query("SELECT status FROM runs WHERE run_id = 'r-20250101'", t, sizeof(t));
    assert_string_equal(t, "fail");
    kt_store_close(&s);
}

/* Two handles in this process and a child process write one store at
 * once; every write lands and each cell still has exactly one result. */
static void test_concurrent_opens(void **state)
{
    (void)state;
    kt_store_t *a = NULL, *b = NULL;
    assert_int_equal(kt_store_open(s_db, &a), 0);
    assert_int_equal(kt_store_open(s_db, &b), 0);
    assert_int_equal(kt_store_run_begin(a, "shared", NULL), 0);
    enum { N = 60 };
    char id[32];
    for (unsigned i = 0; i < N; i++) {
        snprintf(id, sizeof(id), "cell%u", i);
        s_cell(i % 2 ? a : b, "shared", id);
        assert_int_equal(kt_store_attempt_begin(i % 2 ? b : a, "shared", id, 1, "w"), 0);
    }
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* The child: its own handle, results for every cell. */
        kt_store_t *c = NULL;
        if (kt_store_open(s_db, &c) < 0)
            _exit(10);
        for (unsigned i = 0; i < N; i++) {
            char cid[32];
            bool acc;
            snprintf(cid, sizeof(cid), "cell%u", i);
            if (kt_store_result(c, "shared", cid, 1, "child", "pass", NULL, NULL, NULL, &acc) < 0)
                _exit(11);
        }
        kt_store_close(&c);
        _exit(0);
    }
    unsigned accepted_here = 0;
    for (unsigned i = 0; i < N; i++) {
        bool acc;
        snprintf(id, sizeof(id), "cell%u", i);
        assert_int_equal(kt_store_result(i % 2 ? a : b, "shared", id, 1, "parent", "pass", NULL,
                                         NULL, NULL, &acc),
                         0);
        accepted_here += acc;
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    /* 2N results for N cells: N accepted (one per cell), N stale. */
    assert_int_equal(s_query_int("SELECT COUNT(*) FROM results"), 2 * N);
    assert_int_equal(s_query_int("SELECT COUNT(*) FROM results WHERE stale = 0"), N);
    assert_int_equal(s_query_int("SELECT COUNT(*) FROM cells WHERE result_id IS NOT NULL"), N);
    assert_int_equal(s_query_int("SELECT COUNT(*) FROM (SELECT cell_id FROM results WHERE stale = "
                                 "0 GROUP BY cell_id HAVING COUNT(*) > 1)"),
                     0);
    unsigned stale;
    assert_int_equal(kt_store_stale_count(b, "shared", &stale), 0);
    assert_int_equal(stale, N);
    assert_true(accepted_here <= N);
    kt_store_close(&a);
    kt_store_close(&b);
}

/* A random interleaving of begins, losses and (repeated, late) results:
 * every cell ends with at most one accepted result, and it came from the
 * attempt that was current when it arrived. */
static void test_random_interleaving(void **state)
{
    (void)state;
    kt_store_t *s = NULL;
    assert_int_equal(kt_store_open(s_db, &s), 0);
    assert_int_equal(kt_store_run_begin(s, "rnd", NULL), 0);
    enum { CELLS = 12, STEPS = 600 };
    unsigned current[CELLS] = {0};
    int accepted_attempt[CELLS];
    for (unsigned i = 0; i < CELLS; i++) {
        char id[16];
        snprintf(id, sizeof(id), "k%u", i);
        s_cell(s, "rnd", id);
        accepted_attempt[i] = -1;
    }
    srand(7);
    for (unsigned step = 0; step < STEPS; step++) {
        unsigned c = (unsigned)rand() % CELLS;
        char id[16];
        snprintf(id, sizeof(id), "k%u", c);
        int op = rand() % 3;
        if (op == 0 || current[c] == 0) {
            current[c]++;
            assert_int_equal(kt_store_attempt_begin(s, "rnd", id, current[c], "w"), 0);
        } else {
            unsigned att = 1 + (unsigned)rand() % (current[c] + 1); /* may be ahead */
            bool acc;
            assert_int_equal(
                kt_store_result(s, "rnd", id, att, "w", "pass", NULL, NULL, NULL, &acc), 0);
            bool expect = accepted_attempt[c] < 0 && att == current[c];
            assert_int_equal(acc, expect);
            if (acc)
                accepted_attempt[c] = (int)att;
        }
    }
    assert_int_equal(s_query_int("SELECT COUNT(*) FROM (SELECT cell_id FROM results WHERE stale = "
                                 "0 GROUP BY cell_id HAVING COUNT(*) > 1)"),
                     0);
    unsigned with = 0;
    for (unsigned i = 0; i < CELLS; i++)
        with += accepted_attempt[i] >= 0;
    assert_int_equal(s_query_int("SELECT COUNT(*) FROM cells WHERE run_id = 'rnd' AND result_id IS "
                                 "NOT NULL"),
                     with);
    kt_store_close(&s);
}

/* A cell's kernel: label, release and commit in cells and the verdicts
 * view; the release may be unknown (NULL). */
static void test_kernel_version(void **state)
{
    (void)state;
    kt_store_t *s = NULL;
    assert_int_equal(kt_store_open(s_db, &s), 0);
    assert_int_equal(kt_store_run_begin(s, "r1", "{}"), 0);
    assert_int_equal(
        kt_store_cell_add(s, "r1", "c1", "g/steady/tiny/eevdf/lts", "lts", "6.12.117", "3f2a9c1"),
        0);
    assert_int_equal(kt_store_cell_add(s, "r1", "c2", "g/steady/tiny/eevdf/x", "x", NULL, NULL), 0);
    assert_int_equal(kt_store_attempt_begin(s, "r1", "c1", 1, "w1"), 0);
    bool acc = false;
    assert_int_equal(kt_store_result(s, "r1", "c1", 1, "w1", "pass", NULL, NULL, NULL, &acc), 0);
    assert_true(acc);
    kt_store_close(&s);
    char got[128];
    s_text_query("SELECT kernel_label || ' ' || kernel_version || ' ' || kernel_commit FROM cells "
                 "WHERE cell_id = 'c1'",
                 got, sizeof(got));
    assert_string_equal(got, "lts 6.12.117 3f2a9c1");
    s_text_query("SELECT kernel_version FROM cells WHERE cell_id = 'c2'", got, sizeof(got));
    assert_string_equal(got, "(null)");
    s_text_query("SELECT kernel_version || ' ' || verdict FROM verdicts WHERE cell_id = 'c1'", got,
                 sizeof(got));
    assert_string_equal(got, "6.12.117 pass");
}

/* The schema of version 1 (before cells.kernel_version), as ktstr-coord
 * made it, to check the migration of an existing store. */
static const char s_schema_v1[] =
    "CREATE TABLE IF NOT EXISTS schema_version(version INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS runs("
    "  run_id TEXT PRIMARY KEY,"
    "  started_ms INTEGER NOT NULL,"
    "  ended_ms INTEGER,"
    "  status TEXT NOT NULL,"
    "  resumes INTEGER NOT NULL DEFAULT 0,"
    "  inputs_json TEXT);"
    "CREATE TABLE IF NOT EXISTS cells("
    "  run_id TEXT NOT NULL REFERENCES runs(run_id),"
    "  cell_id TEXT NOT NULL,"
    "  name TEXT NOT NULL,"
    "  kernel_label TEXT,"
    "  kernel_commit TEXT,"
    "  current_attempt INTEGER NOT NULL DEFAULT 0,"
    "  result_id INTEGER REFERENCES results(id),"
    "  PRIMARY KEY(run_id, cell_id));"
    "CREATE TABLE IF NOT EXISTS attempts("
    "  run_id TEXT NOT NULL,"
    "  cell_id TEXT NOT NULL,"
    "  attempt INTEGER NOT NULL,"
    "  worker TEXT,"
    "  state TEXT NOT NULL,"
    "  why TEXT,"
    "  begun_ms INTEGER NOT NULL,"
    "  ended_ms INTEGER,"
    "  PRIMARY KEY(run_id, cell_id, attempt),"
    "  FOREIGN KEY(run_id, cell_id) REFERENCES cells(run_id, cell_id));"
    "CREATE TABLE IF NOT EXISTS results("
    "  id INTEGER PRIMARY KEY,"
    "  run_id TEXT NOT NULL,"
    "  cell_id TEXT NOT NULL,"
    "  attempt INTEGER NOT NULL,"
    "  worker TEXT,"
    "  verdict TEXT NOT NULL,"
    "  reason TEXT,"
    "  sidecar_path TEXT,"
    "  received_ms INTEGER NOT NULL,"
    "  stale INTEGER NOT NULL,"
    "  stale_why TEXT,"
    "  FOREIGN KEY(run_id, cell_id) REFERENCES cells(run_id, cell_id));"
    "CREATE INDEX IF NOT EXISTS results_by_cell ON results(run_id, cell_id);"
    "CREATE TABLE IF NOT EXISTS metrics("
    "  result_id INTEGER PRIMARY KEY REFERENCES results(id),"
    "  json TEXT NOT NULL);"
    "CREATE VIEW IF NOT EXISTS verdicts AS"
    "  SELECT c.run_id, c.cell_id, c.name, c.kernel_label, c.kernel_commit,"
    "         r.attempt, r.worker, r.verdict, r.reason, r.sidecar_path, r.received_ms"
    "  FROM cells c JOIN results r ON r.id = c.result_id;";

/* A schema 1 store with a run, a cell and its verdict: opening it adds
 * kernel_version (NULL for the old cell), recreates the view with it,
 * keeps every row, and records version 2; new cells carry their release;
 * opening it again changes nothing. */
static void test_migrate_v1(void **state)
{
    (void)state;
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(s_db, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, s_schema_v1, NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(db,
                     "INSERT INTO schema_version(version) VALUES(1);"
                     "INSERT INTO runs(run_id, started_ms, status, resumes, inputs_json) "
                     "VALUES('old', 1, 'done', 0, '{}');"
                     "INSERT INTO cells(run_id, cell_id, name, kernel_label, kernel_commit, "
                     "current_attempt) VALUES('old', 'c1', 'g/c1', '6.12.117', 'abcdef1', 1);"
                     "INSERT INTO results(id, run_id, cell_id, attempt, worker, verdict, "
                     "received_ms, stale) VALUES(1, 'old', 'c1', 1, 'w1', 'pass', 2, 0);"
                     "UPDATE cells SET result_id = 1 WHERE cell_id = 'c1';",
                     NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(s_query_int("SELECT COUNT(*) FROM pragma_table_info('cells') WHERE name = "
                                 "'kernel_version'"),
                     0);

    kt_store_t *s = NULL;
    char why[512] = "";
    int r = kt_store_open_why(s_db, &s, why, sizeof(why));
    if (r != 0)
        fail_msg("open of a schema 1 store: %d %s", r, why);
    assert_int_equal(s_query_int("SELECT version FROM schema_version"), 2);
    assert_int_equal(s_query_int("SELECT COUNT(*) FROM schema_version"), 1);
    char got[128];
    s_text_query("SELECT kernel_label || ' ' || kernel_commit || ' ' || "
                 "COALESCE(kernel_version, 'null') FROM cells WHERE cell_id = 'c1'",
                 got, sizeof(got));
    assert_string_equal(got, "6.12.117 abcdef1 null");
    s_text_query("SELECT verdict || ' ' || COALESCE(kernel_version, 'null') FROM verdicts "
                 "WHERE run_id = 'old'",
                 got, sizeof(got));
    assert_string_equal(got, "pass null");
    char buf[32];
    assert_int_equal(kt_store_cell_verdict(s, "old", "c1", buf, sizeof(buf)), 0);
    assert_string_equal(buf, "pass");

    assert_int_equal(kt_store_run_begin(s, "new", "{}"), 0);
    assert_int_equal(kt_store_cell_add(s, "new", "c1", "g/c1", "lts", "6.12.117", "3f2a9c1"), 0);
    kt_store_close(&s);
    s_text_query("SELECT kernel_version FROM cells WHERE run_id = 'new'", got, sizeof(got));
    assert_string_equal(got, "6.12.117");

    /* Opened again: already version 2, nothing to do. */
    assert_int_equal(kt_store_open(s_db, &s), 0);
    kt_store_close(&s);
    assert_int_equal(s_query_int("SELECT COUNT(*) FROM pragma_table_info('cells') WHERE name = "
                                 "'kernel_version'"),
                     1);
    assert_int_equal(s_query_int("SELECT COUNT(*) FROM cells"), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_schema_and_wal, s_fresh),
        cmocka_unit_test_setup(test_exactly_once, s_fresh),
        cmocka_unit_test_setup(test_resume, s_fresh),
        cmocka_unit_test_setup(test_concurrent_opens, s_fresh),
        cmocka_unit_test_setup(test_random_interleaving, s_fresh),
        cmocka_unit_test_setup(test_kernel_version, s_fresh),
        cmocka_unit_test_setup(test_migrate_v1, s_fresh),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
