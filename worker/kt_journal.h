/* The worker's result journal: every finished cell attempt is written to
 * {cache}/journal/ before its RESULT is sent, and stays there until the
 * coordinator acknowledges it (RESULT_ACK). A worker that lost its
 * coordinator, or was restarted, loads the journal at start-up and re-offers
 * the results to the next session of that coordinator (or of that run), so no
 * finished cell is lost and the coordinator's store makes it count once.
 *
 * On disk: one append-only log, {cache}/journal/journal.log, of records
 * "put" (the whole entry, sidecar and console included) and "remove" (its
 * key), each a fixed header (magic, type, length, 64-bit checksum of the
 * header and payload) and a msgpack payload, appended with one write().
 * Durability is what a write() gives: a record whose write() returned
 * survives the worker's crash or kill (it is in the page cache), not a power
 * cut or a kernel crash (no fsync, as with the file-per-result journal this
 * replaced). A crash in the middle of a write() leaves a torn last record.
 *
 * Opening replays the log into an in-memory index of the live entries
 * (metadata only: the payload is read back from the log when re-offered)
 * and stops at the first record that is torn or does not check: everything
 * before it is kept, the rest is copied aside to journal.log.<offset>.bad
 * (never deleted), counted (kt_journal_bad) and cut off the log, so new
 * records follow good ones. When dead records (removed or replaced entries,
 * remove records) pass KT_JOURNAL_COMPACT_MIN and half the log, and at open,
 * the live entries are copied to a new log renamed over the old one, so a
 * crash leaves one or the other, whole.
 *
 * Result files of the former layout (one *.result file per entry) found at
 * open are moved into the log; those that do not decode are renamed *.bad.
 * One process at a time: the folder is flock()ed while open. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kt_msg.h"

#define KT_JOURNAL_MAX_ENTRIES 16384
/* A record (or former-layout file) larger than this is not ours: sidecar +
 * console + the other fields. */
#define KT_JOURNAL_MAX_FILE (KT_MSG_MAX_SIDECAR + KT_MSG_MAX_CONSOLE + (16u << 10))
/* The log never grows past this: a put that would (after a compaction) is
 * refused with -ENOSPC; a longer file is read up to here. */
#define KT_JOURNAL_MAX_LOG (4ull << 30)
/* Compact when dead records pass this many bytes and half the log. */
#define KT_JOURNAL_COMPACT_MIN (4u << 20)
#define KT_JOURNAL_LOG_NAME "journal.log"

typedef struct kt_journal kt_journal_t;

typedef struct kt_journal_entry {
    char coordinator_id[KT_ID_MAX];
    char run_id[40];
    char cell_id[KT_SHA_HEX];
    uint32_t attempt;
    char verdict[8];
    char reason[1024];
    uint64_t finished_ms;       /* wall clock, ms since the epoch */
    char *sidecar;              /* owned; NULL in the in-memory index */
    size_t sidecar_len;
    char *console;              /* owned, may be NULL */
    size_t console_len;
    /* Not persisted: the daemon's bookkeeping of who was offered it. */
    uint64_t offered_to;        /* session serial, 0: nobody */
    uint64_t offered_at_ms;     /* monotonic */
} kt_journal_entry_t;

/* Opens (creating) {cache_dir}/journal, replays its log into the index and
 * imports former-layout files. A torn or corrupt tail is copied aside and
 * cut off, former-layout files that do not decode are renamed to *.bad:
 * either is counted (kt_journal_bad), logged, never deleted. -EBUSY when
 * another journal holds the folder. */
int kt_journal_open(const char *cache_dir, kt_journal_t **ret);
void kt_journal_destroy(kt_journal_t **self_p);
const char *kt_journal_dir(const kt_journal_t *self);
unsigned kt_journal_count(const kt_journal_t *self);
unsigned kt_journal_bad(const kt_journal_t *self);
/* Why the last bad record or file was set aside ("" when none was). */
const char *kt_journal_bad_reason(const kt_journal_t *self);

/* Persists e (payload included) with one appended record and indexes its
 * metadata. An entry with the same (run, cell, attempt) is replaced (its
 * offered_* reset). -ENOSPC when the journal holds KT_JOURNAL_MAX_ENTRIES
 * or the log would pass KT_JOURNAL_MAX_LOG, -E2BIG for an oversized sidecar
 * or console, -EINVAL for missing ids; on failure nothing changed. */
int kt_journal_put(kt_journal_t *self, const kt_journal_entry_t *e);
/* Forgets the entry (pointers to it die) and appends a remove record;
 * -ENOENT when not there. When the append fails the entry is still
 * forgotten in memory and the error returned: it comes back at the next
 * open, as an unacknowledged result would. May compact the log. */
int kt_journal_remove(kt_journal_t *self, const char *run_id, const char *cell_id,
                      uint32_t attempt);
/* The indexed entry (metadata; the daemon may update offered_*), or NULL. */
kt_journal_entry_t *kt_journal_find(kt_journal_t *self, const char *run_id, const char *cell_id,
                                    uint32_t attempt);
/* Iteration over the index; the journal must not change meanwhile. */
kt_journal_entry_t *kt_journal_first(kt_journal_t *self);
kt_journal_entry_t *kt_journal_next(kt_journal_t *self);
/* Reads the whole entry named by meta's (run, cell, attempt), payload
 * included, back from the log; -ENOENT when not indexed, -EBADMSG when its
 * record no longer checks. Caller owns ret's payload
 * (kt_journal_entry_clear). */
int kt_journal_read(const kt_journal_t *self, const kt_journal_entry_t *meta,
                    kt_journal_entry_t *ret);
void kt_journal_entry_clear(kt_journal_entry_t *e);
