/* The run store: one SQLite database (WAL) per results folder.
 *
 *   runs(run_id, started_ms, ended_ms, status, resumes, inputs_json)
 *   cells(run_id, cell_id, name, kernel_label, kernel_commit,
 *         current_attempt, result_id,        result_id: the accepted result
 *         kernel_version)                    (schema 2; added to a schema 1 store)
 *   attempts(run_id, cell_id, attempt, worker, state, why, begun_ms, ended_ms)
 *         state: running -> fenced (a newer attempt began) | lost | done
 *   results(id, run_id, cell_id, attempt, worker, verdict, reason,
 *           sidecar_path, received_ms, stale, stale_why)
 *   metrics(result_id, json)
 *   verdicts: a view of the accepted result of every cell
 *
 * Exactly once: kt_store_result accepts a result only for the cell's current
 * attempt (the latest begun; kt_store_attempt_begin fences the ones before)
 * and only while the cell has no accepted result; any other result is kept
 * with stale = 1 and the reason. Every change is one IMMEDIATE transaction,
 * so a crash leaves each call either done or not; with WAL and
 * synchronous=NORMAL a committed call survives a process crash (not
 * necessarily a power cut). Several processes may open the same store:
 * writers wait for each other up to S_BUSY_MS. */
#include "kt_store.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kt_cleanup.h"

#define S_SCHEMA_VERSION 2
#define S_BUSY_MS 10000
/* Bounds on what callers hand in: the store holds what a run produces, not
 * arbitrary blobs. */
#define S_MAX_TEXT (64u << 10)
#define S_MAX_JSON (4u << 20)

enum {
    S_RUN_GET,
    S_RUN_INSERT,
    S_RUN_RESUME,
    S_RUN_END,
    S_RUN_INPUTS,
    S_CELL_ADD,
    S_CELL_GET,
    S_CELL_SET_CURRENT,
    S_CELL_SET_RESULT,
    S_ATTEMPT_FENCE,
    S_ATTEMPT_UPSERT,
    S_ATTEMPT_LOST,
    S_ATTEMPT_DONE,
    S_RESULT_INSERT,
    S_METRICS_INSERT,
    S_VERDICT_GET,
    S_STALE_COUNT,
    S_LAST_ATTEMPT,
    S_RUN_ROWS,
    S_HISTORY_ROWS,
    S_RUNS,
    S_CELL_TIMES,
    S__COUNT,
};

/* A cell's accepted result with its run's start and its figures. */
#define S_ROWS_SELECT                                                                              \
    "SELECT c.run_id, ru.started_ms, c.cell_id, c.name, c.kernel_label, c.kernel_version, "        \
    "       c.kernel_commit, r.attempt, r.worker, r.verdict, r.reason, r.sidecar_path, m.json "    \
    "  FROM cells c JOIN runs ru ON ru.run_id = c.run_id "                                         \
    "  JOIN results r ON r.id = c.result_id "                                                      \
    "  LEFT JOIN metrics m ON m.result_id = r.id "

static const char *const s_sql[S__COUNT] = {
    [S_RUN_GET] = "SELECT status FROM runs WHERE run_id = ?1",
    [S_RUN_INSERT] = "INSERT INTO runs(run_id, started_ms, status, resumes, inputs_json) "
                     "VALUES(?1, ?2, 'running', 0, ?3)",
    [S_RUN_RESUME] = "UPDATE runs SET status = 'running', ended_ms = NULL, resumes = resumes + 1, "
                     "inputs_json = COALESCE(inputs_json, ?2) WHERE run_id = ?1",
    [S_RUN_END] = "UPDATE runs SET status = ?2, ended_ms = ?3 WHERE run_id = ?1",
    [S_RUN_INPUTS] = "SELECT inputs_json FROM runs WHERE run_id = ?1",
    [S_CELL_ADD] = "INSERT INTO cells(run_id, cell_id, name, kernel_label, kernel_commit, "
                   "kernel_version) VALUES(?1, ?2, ?3, ?4, ?5, ?6) "
                   "ON CONFLICT(run_id, cell_id) DO NOTHING",
    [S_CELL_GET] =
        "SELECT current_attempt, result_id FROM cells WHERE run_id = ?1 AND cell_id = ?2",
    [S_CELL_SET_CURRENT] =
        "UPDATE cells SET current_attempt = ?3 WHERE run_id = ?1 AND cell_id = ?2",
    [S_CELL_SET_RESULT] = "UPDATE cells SET result_id = ?3 WHERE run_id = ?1 AND cell_id = ?2",
    [S_ATTEMPT_FENCE] = "UPDATE attempts SET state = 'fenced', ended_ms = ?4 "
                        "WHERE run_id = ?1 AND cell_id = ?2 AND attempt < ?3 AND state = 'running'",
    [S_ATTEMPT_UPSERT] = "INSERT INTO attempts(run_id, cell_id, attempt, worker, state, begun_ms) "
                         "VALUES(?1, ?2, ?3, ?4, 'running', ?5) "
                         "ON CONFLICT(run_id, cell_id, attempt) DO UPDATE SET worker = ?4",
    [S_ATTEMPT_LOST] = "UPDATE attempts SET state = 'lost', why = ?4, ended_ms = ?5 "
                       "WHERE run_id = ?1 AND cell_id = ?2 AND attempt = ?3",
    [S_ATTEMPT_DONE] = "UPDATE attempts SET state = 'done', ended_ms = ?4 "
                       "WHERE run_id = ?1 AND cell_id = ?2 AND attempt = ?3",
    [S_RESULT_INSERT] = "INSERT INTO results(run_id, cell_id, attempt, worker, verdict, reason, "
                        "sidecar_path, received_ms, stale, stale_why) "
                        "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    [S_METRICS_INSERT] = "INSERT INTO metrics(result_id, json) VALUES(?1, ?2)",
    [S_VERDICT_GET] = "SELECT r.verdict FROM cells c JOIN results r ON r.id = c.result_id "
                      "WHERE c.run_id = ?1 AND c.cell_id = ?2",
    [S_STALE_COUNT] = "SELECT COUNT(*) FROM results WHERE run_id = ?1 AND stale = 1",
    [S_LAST_ATTEMPT] = "SELECT COALESCE(MAX(attempt), 0) FROM attempts "
                       "WHERE run_id = ?1 AND cell_id = ?2",
    [S_RUN_ROWS] = S_ROWS_SELECT "WHERE c.run_id = ?1 ORDER BY c.name, c.cell_id",
    [S_HISTORY_ROWS] = S_ROWS_SELECT
    "WHERE c.name GLOB ?1 AND c.run_id IN "
    "(SELECT run_id FROM runs ORDER BY started_ms DESC, run_id DESC LIMIT ?2) "
    "ORDER BY c.name, ru.started_ms, c.run_id",
    [S_CELL_TIMES] = "SELECT json_extract(m.json, '$.\"timing.total_ms\"') AS t "
                     "FROM results r JOIN metrics m ON m.result_id = r.id "
                     "WHERE r.cell_id = ?1 AND r.stale = 0 AND t > 0 "
                     "ORDER BY r.received_ms DESC, r.id DESC LIMIT ?2",
    [S_RUNS] = "SELECT ru.run_id, ru.started_ms, ru.ended_ms, ru.status, "
               "(SELECT COUNT(*) FROM cells c WHERE c.run_id = ru.run_id), "
               "(SELECT COUNT(*) FROM cells c JOIN results r ON r.id = c.result_id "
               "  WHERE c.run_id = ru.run_id AND r.verdict = 'pass'), "
               "(SELECT COUNT(*) FROM cells c JOIN results r ON r.id = c.result_id "
               "  WHERE c.run_id = ru.run_id AND r.verdict = 'fail'), "
               "(SELECT COUNT(*) FROM cells c JOIN results r ON r.id = c.result_id "
               "  WHERE c.run_id = ru.run_id AND r.verdict = 'error') "
               "FROM runs ru ORDER BY ru.started_ms, ru.run_id",
};

#define S_VERDICTS_VIEW                                                                            \
    "SELECT c.run_id, c.cell_id, c.name, c.kernel_label, c.kernel_commit, c.kernel_version,"       \
    "       r.attempt, r.worker, r.verdict, r.reason, r.sidecar_path, r.received_ms"               \
    "  FROM cells c JOIN results r ON r.id = c.result_id"

/* Schema 1 -> 2: cells.kernel_version, and the view that shows it. A
 * column already there (a migration that another process finished) is
 * left alone. */
static const char s_migrate_1_2[] = "DROP VIEW IF EXISTS verdicts;"
                                    "CREATE VIEW verdicts AS " S_VERDICTS_VIEW ";"
                                    "UPDATE schema_version SET version = 2;";

static const char s_schema[] =
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
    "  kernel_version TEXT,"
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
    "CREATE VIEW IF NOT EXISTS verdicts AS " S_VERDICTS_VIEW ";";

struct kt_store {
    sqlite3 *db;
    sqlite3_stmt *st[S__COUNT];
    char error[512];
};

static int s_errno(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_ROW:
    case SQLITE_DONE:
        return 0;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return -EBUSY;
    case SQLITE_NOMEM:
        return -ENOMEM;
    case SQLITE_READONLY:
        return -EROFS;
    case SQLITE_FULL:
        return -ENOSPC;
    case SQLITE_CANTOPEN:
        return -EACCES;
    case SQLITE_PERM:
    case SQLITE_AUTH:
        return -EPERM;
    case SQLITE_CONSTRAINT:
    case SQLITE_MISMATCH:
    case SQLITE_RANGE:
        return -EINVAL;
    case SQLITE_TOOBIG:
        return -E2BIG;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        return -EBADMSG;
    default:
        return -EIO;
    }
}

/* Keeps SQLite's message for kt_store_error and returns -errno. */
static int s_fail(kt_store_t *s, int rc, const char *what)
{
    snprintf(s->error, sizeof(s->error), "%s: %s", what,
             s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
    int r = s_errno(rc);
    return r ? r : -EIO;
}

__attribute__((format(printf, 3, 4))) static int s_fail_msg(kt_store_t *s, int r, const char *fmt,
                                                            ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->error, sizeof(s->error), fmt, ap);
    va_end(ap);
    return r;
}

static int64_t s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int s_exec(kt_store_t *s, const char *sql)
{
    int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : s_fail(s, rc, sql);
}

static void s_rollback(kt_store_t *s)
{
    if (!sqlite3_get_autocommit(s->db))
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}

/* A statement reset and with its bindings cleared, ready to bind. */
static sqlite3_stmt *s_stmt(kt_store_t *s, int which)
{
    sqlite3_stmt *st = s->st[which];
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return st;
}

static int s_bind_text(kt_store_t *s, sqlite3_stmt *st, int idx, const char *text, size_t max)
{
    if (!text)
        return sqlite3_bind_null(st, idx) == SQLITE_OK ? 0 : s_fail(s, SQLITE_ERROR, "bind");
    size_t n = strnlen(text, max + 1);
    if (n > max)
        return s_fail_msg(s, -E2BIG, "a text of more than %zu bytes", max);
    int rc = sqlite3_bind_text(st, idx, text, (int)n, SQLITE_TRANSIENT);
    return rc == SQLITE_OK ? 0 : s_fail(s, rc, "bind");
}

/* Runs a statement that returns no row. */
static int s_step_done(kt_store_t *s, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : s_fail(s, rc, what);
}

static bool s_id_ok(const char *id)
{
    return id && *id && strlen(id) < 256;
}

void kt_store_close(kt_store_t **s_p)
{
    if (!s_p || !*s_p)
        return;
    kt_store_t *s = *s_p;
    for (int i = 0; i < S__COUNT; i++)
        sqlite3_finalize(s->st[i]);
    if (s->db)
        sqlite3_close(s->db);
    free(s);
    *s_p = NULL;
}

/* Whether table has column (PRAGMA table_info); -errno on failure. */
static int s_has_column(kt_store_t *s, const char *table, const char *column)
{
    char sql[128];
    snprintf(sql, sizeof(sql), "PRAGMA table_info(%s)", table);
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return s_fail(s, rc, sql);
    int found = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const unsigned char *name = sqlite3_column_text(st, 1);
        if (name && strcmp((const char *)name, column) == 0)
            found = 1;
    }
    int r = rc == SQLITE_DONE ? found : s_fail(s, rc, sql);
    sqlite3_finalize(st);
    return r;
}

/* Brings a store of an older schema up to this one, in the caller's
 * transaction. */
static int s_migrate(kt_store_t *s, int64_t version)
{
    if (version != 1)
        return s_fail_msg(s, -EPROTO,
                          "the run store has schema version %lld, this ktstr-coord knows %d "
                          "and can migrate from 1",
                          (long long)version, S_SCHEMA_VERSION);
    int r = s_has_column(s, "cells", "kernel_version");
    if (r == 0)
        r = s_exec(s, "ALTER TABLE cells ADD COLUMN kernel_version TEXT");
    if (r < 0)
        return r;
    return s_exec(s, s_migrate_1_2);
}

/* Creates the schema, migrates an older one or checks the version of an
 * existing one. */
static int s_schema_setup(kt_store_t *s)
{
    int r = s_exec(s, "BEGIN IMMEDIATE");
    if (r < 0)
        return r;
    if ((r = s_exec(s, s_schema)) < 0)
        goto out;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db, "SELECT MAX(version), COUNT(*) FROM schema_version", -1, &st,
                                NULL);
    if (rc != SQLITE_OK) {
        r = s_fail(s, rc, "schema version");
        goto out;
    }
    rc = sqlite3_step(st);
    int64_t version = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    int64_t rows = rc == SQLITE_ROW ? sqlite3_column_int64(st, 1) : 0;
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW) {
        r = s_fail(s, rc, "schema version");
        goto out;
    }
    if (rows == 0) {
        char sql[96];
        snprintf(sql, sizeof(sql), "INSERT INTO schema_version(version) VALUES(%d)",
                 S_SCHEMA_VERSION);
        if ((r = s_exec(s, sql)) < 0)
            goto out;
    } else if (version > S_SCHEMA_VERSION) {
        r = s_fail_msg(s, -EPROTO,
                       "the run store has schema version %lld, this ktstr-coord knows %d",
                       (long long)version, S_SCHEMA_VERSION);
        goto out;
    } else if (version < S_SCHEMA_VERSION && (r = s_migrate(s, version)) < 0) {
        goto out;
    }
    r = s_exec(s, "COMMIT");
out:
    if (r < 0)
        s_rollback(s);
    return r;
}

/* Sets s up on the database at path; on failure s->error says why. */
static int s_open(kt_store_t *s, const char *path)
{
    int rc = sqlite3_open_v2(
        path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK)
        return s_fail(s, rc, "open");
    sqlite3_extended_result_codes(s->db, 1);
    sqlite3_busy_timeout(s->db, S_BUSY_MS);
    /* journal_mode is persistent; switching needs a moment without other
     * writers, which the busy timeout gives. */
    sqlite3_stmt *st = NULL;
    rc = sqlite3_prepare_v2(s->db, "PRAGMA journal_mode=WAL", -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    const char *mode = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
    bool wal = mode && strcmp(mode, "wal") == 0;
    sqlite3_finalize(st);
    if (!wal)
        return rc == SQLITE_ROW ? s_fail_msg(s, -EIO, "cannot switch to WAL")
                                : s_fail(s, rc, "journal_mode=WAL");
    int r;
    if ((r = s_exec(s, "PRAGMA synchronous=NORMAL")) < 0 ||
        (r = s_exec(s, "PRAGMA foreign_keys=ON")) < 0)
        return r;
    if ((r = s_schema_setup(s)) < 0)
        return r;
    for (int i = 0; i < S__COUNT; i++) {
        rc = sqlite3_prepare_v3(s->db, s_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->st[i], NULL);
        if (rc != SQLITE_OK)
            return s_fail(s, rc, s_sql[i]);
    }
    return 0;
}

int kt_store_open_why(const char *path, kt_store_t **ret, char *err, size_t err_len)
{
    if (!path || !*path || !ret)
        return -EINVAL;
    _cleanup_(kt_store_close) kt_store_t *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    int r = s_open(s, path);
    if (r < 0) {
        if (err && err_len)
            snprintf(err, err_len, "'%s': %s", path, s->error);
        return r;
    }
    *ret = TAKE_PTR(s);
    return 0;
}

int kt_store_open(const char *path, kt_store_t **ret)
{
    return kt_store_open_why(path, ret, NULL, 0);
}

const char *kt_store_error(const kt_store_t *s)
{
    return s ? s->error : "";
}

int kt_store_run_begin(kt_store_t *s, const char *run_id, const char *inputs_json)
{
    if (!s || !s_id_ok(run_id))
        return -EINVAL;
    int r = s_exec(s, "BEGIN IMMEDIATE");
    if (r < 0)
        return r;
    sqlite3_stmt *st = s_stmt(s, S_RUN_GET);
    if ((r = s_bind_text(s, st, 1, run_id, 255)) < 0)
        goto out;
    int rc = sqlite3_step(st);
    bool exists = rc == SQLITE_ROW;
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        r = s_fail(s, rc, "run lookup");
        goto out;
    }
    /* Beginning a known run again is a resume: its cells and results stay. */
    st = s_stmt(s, exists ? S_RUN_RESUME : S_RUN_INSERT);
    if ((r = s_bind_text(s, st, 1, run_id, 255)) < 0)
        goto out;
    if (exists) {
        r = s_bind_text(s, st, 2, inputs_json, S_MAX_JSON);
    } else {
        sqlite3_bind_int64(st, 2, s_now_ms());
        r = s_bind_text(s, st, 3, inputs_json, S_MAX_JSON);
    }
    if (r < 0 || (r = s_step_done(s, st, "run begin")) < 0)
        goto out;
    r = s_exec(s, "COMMIT");
out:
    if (r < 0)
        s_rollback(s);
    return r;
}

int kt_store_run_end(kt_store_t *s, const char *run_id, const char *status)
{
    if (!s || !s_id_ok(run_id) || !status || !*status)
        return -EINVAL;
    sqlite3_stmt *st = s_stmt(s, S_RUN_END);
    int r;
    if ((r = s_bind_text(s, st, 1, run_id, 255)) < 0 || (r = s_bind_text(s, st, 2, status, 64)) < 0)
        return r;
    sqlite3_bind_int64(st, 3, s_now_ms());
    if ((r = s_step_done(s, st, "run end")) < 0)
        return r;
    if (sqlite3_changes(s->db) == 0)
        return s_fail_msg(s, -ENOENT, "run '%s' is not in the store", run_id);
    return 0;
}

int kt_store_run_inputs(kt_store_t *s, const char *run_id, char **ret_json)
{
    if (!s || !s_id_ok(run_id) || !ret_json)
        return -EINVAL;
    sqlite3_stmt *st = s_stmt(s, S_RUN_INPUTS);
    int r = s_bind_text(s, st, 1, run_id, 255);
    if (r < 0)
        return r;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) {
        sqlite3_reset(st);
        return s_fail_msg(s, -ENOENT, "run '%s' is not in the store", run_id);
    }
    if (rc != SQLITE_ROW) {
        sqlite3_reset(st);
        return s_fail(s, rc, "run inputs");
    }
    const unsigned char *t = sqlite3_column_text(st, 0);
    char *copy = strdup(t ? (const char *)t : "");
    sqlite3_reset(st);
    if (!copy)
        return -ENOMEM;
    *ret_json = copy;
    return 0;
}

int kt_store_cell_add(kt_store_t *s, const char *run_id, const char *cell_id, const char *name,
                      const char *kernel_label, const char *kernel_version,
                      const char *kernel_commit)
{
    if (!s || !s_id_ok(run_id) || !s_id_ok(cell_id) || !name)
        return -EINVAL;
    sqlite3_stmt *st = s_stmt(s, S_CELL_ADD);
    int r;
    if ((r = s_bind_text(s, st, 1, run_id, 255)) < 0 ||
        (r = s_bind_text(s, st, 2, cell_id, 255)) < 0 ||
        (r = s_bind_text(s, st, 3, name, 1024)) < 0 ||
        (r = s_bind_text(s, st, 4, kernel_label, 1024)) < 0 ||
        (r = s_bind_text(s, st, 5, kernel_commit, 1024)) < 0 ||
        (r = s_bind_text(s, st, 6, kernel_version, 1024)) < 0)
        return r;
    /* One statement: its own transaction. A missing run is a foreign key
     * error. */
    r = s_step_done(s, st, "cell add");
    if (r == -EINVAL)
        return s_fail_msg(s, -ENOENT, "cell %s: run '%s' is not in the store", cell_id, run_id);
    return r;
}

/* The cell's current attempt and whether it has an accepted result. */
static int s_cell_get(kt_store_t *s, const char *run_id, const char *cell_id, unsigned *ret_current,
                      int64_t *ret_result)
{
    sqlite3_stmt *st = s_stmt(s, S_CELL_GET);
    int r;
    if ((r = s_bind_text(s, st, 1, run_id, 255)) < 0 ||
        (r = s_bind_text(s, st, 2, cell_id, 255)) < 0)
        return r;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) {
        sqlite3_reset(st);
        return s_fail_msg(s, -ENOENT, "cell %s of run '%s' is not in the store", cell_id, run_id);
    }
    if (rc != SQLITE_ROW) {
        sqlite3_reset(st);
        return s_fail(s, rc, "cell lookup");
    }
    *ret_current = (unsigned)sqlite3_column_int64(st, 0);
    *ret_result = sqlite3_column_type(st, 1) == SQLITE_NULL ? 0 : sqlite3_column_int64(st, 1);
    sqlite3_reset(st);
    return 0;
}

/* Binds (run_id, cell_id, attempt) to ?1..?3. */
static int s_bind_key(kt_store_t *s, sqlite3_stmt *st, const char *run_id, const char *cell_id,
                      unsigned attempt)
{
    int r;
    if ((r = s_bind_text(s, st, 1, run_id, 255)) < 0 ||
        (r = s_bind_text(s, st, 2, cell_id, 255)) < 0)
        return r;
    sqlite3_bind_int64(st, 3, attempt);
    return 0;
}

int kt_store_attempt_begin(kt_store_t *s, const char *run_id, const char *cell_id, unsigned attempt,
                           const char *worker)
{
    if (!s || !s_id_ok(run_id) || !s_id_ok(cell_id) || attempt == 0)
        return -EINVAL;
    int r = s_exec(s, "BEGIN IMMEDIATE");
    if (r < 0)
        return r;
    unsigned current;
    int64_t result;
    int64_t now = s_now_ms();
    if ((r = s_cell_get(s, run_id, cell_id, &current, &result)) < 0)
        goto out;
    if (attempt < current) {
        r = s_fail_msg(s, -ESTALE, "cell %s: attempt %u begins after attempt %u", cell_id, attempt,
                       current);
        goto out;
    }
    sqlite3_stmt *st = s_stmt(s, S_ATTEMPT_FENCE);
    if ((r = s_bind_key(s, st, run_id, cell_id, attempt)) < 0)
        goto out;
    sqlite3_bind_int64(st, 4, now);
    if ((r = s_step_done(s, st, "attempt fence")) < 0)
        goto out;
    st = s_stmt(s, S_ATTEMPT_UPSERT);
    if ((r = s_bind_key(s, st, run_id, cell_id, attempt)) < 0 ||
        (r = s_bind_text(s, st, 4, worker, 1024)) < 0)
        goto out;
    sqlite3_bind_int64(st, 5, now);
    if ((r = s_step_done(s, st, "attempt begin")) < 0)
        goto out;
    st = s_stmt(s, S_CELL_SET_CURRENT);
    if ((r = s_bind_key(s, st, run_id, cell_id, attempt)) < 0 ||
        (r = s_step_done(s, st, "cell attempt")) < 0)
        goto out;
    r = s_exec(s, "COMMIT");
out:
    if (r < 0)
        s_rollback(s);
    return r;
}

int kt_store_attempt_lost(kt_store_t *s, const char *run_id, const char *cell_id, unsigned attempt,
                          const char *why)
{
    if (!s || !s_id_ok(run_id) || !s_id_ok(cell_id))
        return -EINVAL;
    sqlite3_stmt *st = s_stmt(s, S_ATTEMPT_LOST);
    int r;
    if ((r = s_bind_key(s, st, run_id, cell_id, attempt)) < 0 ||
        (r = s_bind_text(s, st, 4, why, S_MAX_TEXT)) < 0)
        return r;
    sqlite3_bind_int64(st, 5, s_now_ms());
    if ((r = s_step_done(s, st, "attempt lost")) < 0)
        return r;
    if (sqlite3_changes(s->db) == 0)
        return s_fail_msg(s, -ENOENT, "cell %s: attempt %u was never begun", cell_id, attempt);
    return 0;
}

int kt_store_result(kt_store_t *s, const char *run_id, const char *cell_id, unsigned attempt,
                    const char *worker, const char *verdict, const char *reason,
                    const char *sidecar_path, const char *metrics_json, bool *ret_accepted)
{
    if (!s || !s_id_ok(run_id) || !s_id_ok(cell_id) || !verdict || !*verdict || !ret_accepted)
        return -EINVAL;
    int r = s_exec(s, "BEGIN IMMEDIATE");
    if (r < 0)
        return r;
    unsigned current;
    int64_t result;
    int64_t now = s_now_ms();
    if ((r = s_cell_get(s, run_id, cell_id, &current, &result)) < 0)
        goto out;
    char why[128] = "";
    if (result)
        snprintf(why, sizeof(why), "duplicate: the cell already has a result");
    else if (attempt < current)
        snprintf(why, sizeof(why), "fenced: attempt %u is current", current);
    else if (attempt > current)
        snprintf(why, sizeof(why), "attempt %u was never begun (current %u)", attempt, current);
    bool accepted = why[0] == '\0';
    sqlite3_stmt *st = s_stmt(s, S_RESULT_INSERT);
    if ((r = s_bind_key(s, st, run_id, cell_id, attempt)) < 0 ||
        (r = s_bind_text(s, st, 4, worker, 1024)) < 0 ||
        (r = s_bind_text(s, st, 5, verdict, 64)) < 0 ||
        (r = s_bind_text(s, st, 6, reason, S_MAX_TEXT)) < 0 ||
        (r = s_bind_text(s, st, 7, sidecar_path, S_MAX_TEXT)) < 0 ||
        (r = s_bind_text(s, st, 10, accepted ? NULL : why, sizeof(why))) < 0)
        goto out;
    sqlite3_bind_int64(st, 8, now);
    sqlite3_bind_int(st, 9, accepted ? 0 : 1);
    if ((r = s_step_done(s, st, "result")) < 0)
        goto out;
    int64_t id = sqlite3_last_insert_rowid(s->db);
    if (metrics_json) {
        st = s_stmt(s, S_METRICS_INSERT);
        sqlite3_bind_int64(st, 1, id);
        if ((r = s_bind_text(s, st, 2, metrics_json, S_MAX_JSON)) < 0 ||
            (r = s_step_done(s, st, "metrics")) < 0)
            goto out;
    }
    if (accepted) {
        st = s_stmt(s, S_CELL_SET_RESULT);
        if ((r = s_bind_text(s, st, 1, run_id, 255)) < 0 ||
            (r = s_bind_text(s, st, 2, cell_id, 255)) < 0)
            goto out;
        sqlite3_bind_int64(st, 3, id);
        if ((r = s_step_done(s, st, "cell result")) < 0)
            goto out;
        st = s_stmt(s, S_ATTEMPT_DONE);
        if ((r = s_bind_key(s, st, run_id, cell_id, attempt)) < 0)
            goto out;
        sqlite3_bind_int64(st, 4, now);
        if ((r = s_step_done(s, st, "attempt done")) < 0)
            goto out;
    }
    if ((r = s_exec(s, "COMMIT")) < 0)
        goto out;
    *ret_accepted = accepted;
out:
    if (r < 0)
        s_rollback(s);
    return r;
}

int kt_store_cell_verdict(kt_store_t *s, const char *run_id, const char *cell_id, char *buf,
                          unsigned len)
{
    if (!s || !s_id_ok(run_id) || !s_id_ok(cell_id) || !buf || !len)
        return -EINVAL;
    sqlite3_stmt *st = s_stmt(s, S_VERDICT_GET);
    int r;
    if ((r = s_bind_text(s, st, 1, run_id, 255)) < 0 ||
        (r = s_bind_text(s, st, 2, cell_id, 255)) < 0)
        return r;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) {
        sqlite3_reset(st);
        return -ENOENT;
    }
    if (rc != SQLITE_ROW) {
        sqlite3_reset(st);
        return s_fail(s, rc, "cell verdict");
    }
    const unsigned char *v = sqlite3_column_text(st, 0);
    snprintf(buf, len, "%s", v ? (const char *)v : "");
    sqlite3_reset(st);
    return 0;
}

static int s_count(kt_store_t *s, int which, const char *run_id, const char *cell_id, unsigned *ret)
{
    sqlite3_stmt *st = s_stmt(s, which);
    int r = s_bind_text(s, st, 1, run_id, 255);
    if (r < 0 || (cell_id && (r = s_bind_text(s, st, 2, cell_id, 255)) < 0))
        return r;
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        sqlite3_reset(st);
        return s_fail(s, rc, "count");
    }
    *ret = (unsigned)sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    return 0;
}

int kt_store_stale_count(kt_store_t *s, const char *run_id, unsigned *ret)
{
    if (!s || !s_id_ok(run_id) || !ret)
        return -EINVAL;
    return s_count(s, S_STALE_COUNT, run_id, NULL, ret);
}

int kt_store_last_attempt(kt_store_t *s, const char *run_id, const char *cell_id, unsigned *ret)
{
    if (!s || !s_id_ok(run_id) || !s_id_ok(cell_id) || !ret)
        return -EINVAL;
    return s_count(s, S_LAST_ATTEMPT, run_id, cell_id, ret);
}

/* ---- queries ---- */

static const char *s_col(sqlite3_stmt *st, int i)
{
    return (const char *)sqlite3_column_text(st, i);
}

static int s_rows(kt_store_t *s, sqlite3_stmt *st, kt_store_row_fn fn, void *userdata,
                  unsigned *ret_n)
{
    int rc, r = 0;
    unsigned n = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        kt_store_row_t row = {
            .run_id = s_col(st, 0),
            .run_started_ms = sqlite3_column_int64(st, 1),
            .cell_id = s_col(st, 2),
            .name = s_col(st, 3),
            .kernel_label = s_col(st, 4),
            .kernel_version = s_col(st, 5),
            .kernel_commit = s_col(st, 6),
            .attempt = (unsigned)sqlite3_column_int64(st, 7),
            .worker = s_col(st, 8),
            .verdict = s_col(st, 9),
            .reason = s_col(st, 10),
            .sidecar_path = s_col(st, 11),
            .metrics_json = s_col(st, 12),
        };
        n++;
        if ((r = fn(&row, userdata)) != 0)
            break;
    }
    if (r == 0 && rc != SQLITE_DONE)
        r = s_fail(s, rc, "reading results");
    sqlite3_reset(st);
    if (ret_n)
        *ret_n = n;
    return r;
}

int kt_store_run_rows(kt_store_t *s, const char *run_id, kt_store_row_fn fn, void *userdata)
{
    if (!s || !s_id_ok(run_id) || !fn)
        return -EINVAL;
    sqlite3_stmt *st = s_stmt(s, S_RUN_GET);
    int r = s_bind_text(s, st, 1, run_id, 255);
    if (r < 0)
        return r;
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc == SQLITE_DONE)
        return s_fail_msg(s, -ENOENT, "no run '%s' in the store", run_id);
    if (rc != SQLITE_ROW)
        return s_fail(s, rc, "run lookup");
    st = s_stmt(s, S_RUN_ROWS);
    if ((r = s_bind_text(s, st, 1, run_id, 255)) < 0)
        return r;
    return s_rows(s, st, fn, userdata, NULL);
}

int kt_store_history(kt_store_t *s, const char *glob, unsigned last_runs, kt_store_row_fn fn,
                     void *userdata, unsigned *ret_n)
{
    if (!s || !fn)
        return -EINVAL;
    sqlite3_stmt *st = s_stmt(s, S_HISTORY_ROWS);
    int r = s_bind_text(s, st, 1, glob && *glob ? glob : "*", 4096);
    if (r < 0)
        return r;
    sqlite3_bind_int64(st, 2, last_runs ? (int64_t)last_runs : -1);
    return s_rows(s, st, fn, userdata, ret_n);
}

int kt_store_runs(kt_store_t *s, kt_store_run_fn fn, void *userdata)
{
    if (!s || !fn)
        return -EINVAL;
    sqlite3_stmt *st = s_stmt(s, S_RUNS);
    int rc, r = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        kt_store_run_t run = {
            .run_id = s_col(st, 0),
            .started_ms = sqlite3_column_int64(st, 1),
            .ended_ms = sqlite3_column_int64(st, 2),
            .status = s_col(st, 3),
            .cells = (unsigned)sqlite3_column_int64(st, 4),
            .pass = (unsigned)sqlite3_column_int64(st, 5),
            .fail = (unsigned)sqlite3_column_int64(st, 6),
            .error = (unsigned)sqlite3_column_int64(st, 7),
        };
        if ((r = fn(&run, userdata)) != 0)
            break;
    }
    if (r == 0 && rc != SQLITE_DONE)
        r = s_fail(s, rc, "reading runs");
    sqlite3_reset(st);
    return r;
}

int kt_store_open_results(const char *results_dir, kt_store_t **ret, char *err, size_t err_len)
{
    char path[4096];
    if (snprintf(path, sizeof(path), "%s/ktstr.db", results_dir) >= (int)sizeof(path)) {
        snprintf(err, err_len, "'%s': path too long", results_dir);
        return -ENAMETOOLONG;
    }
    if (access(path, F_OK) < 0) {
        int r = -errno;
        snprintf(err, err_len, "no run store at %s: %s (give --results DIR of the runs)", path,
                 strerror(-r));
        return r;
    }
    char why[512] = "";
    int r = kt_store_open_why(path, ret, why, sizeof(why));
    if (r < 0)
        snprintf(err, err_len, "%s", why[0] ? why : strerror(-r));
    return r;
}

static int s_u64_cmp(const void *x, const void *y)
{
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return a < b ? -1 : a > b;
}

int kt_store_cell_ms(kt_store_t *s, const char *cell_id, unsigned max_runs, uint64_t *ret_ms)
{
    if (!s || !s_id_ok(cell_id) || !ret_ms || max_runs == 0 || max_runs > 64)
        return -EINVAL;
    sqlite3_stmt *st = s_stmt(s, S_CELL_TIMES);
    int r = s_bind_text(s, st, 1, cell_id, 255);
    if (r < 0)
        return r;
    sqlite3_bind_int64(st, 2, max_runs);
    uint64_t v[64];
    unsigned n = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && n < max_runs)
        v[n++] = (uint64_t)sqlite3_column_double(st, 0);
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return s_fail(s, rc, "cell times");
    if (!n)
        return -ENOENT;
    qsort(v, n, sizeof(*v), s_u64_cmp);
    *ret_ms = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
    return 0;
}

void kt_store_when(int64_t ms, char *buf, size_t len)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (!ms || !gmtime_r(&t, &tm) || !strftime(buf, len, "%Y-%m-%d %H:%M:%SZ", &tm))
        snprintf(buf, len, "-");
}
