/* The worker's result journal: every finished cell attempt is written to
 * {cache}/journal/ before its RESULT is sent, and stays there until the
 * coordinator acknowledges it (RESULT_ACK). A worker that lost its
 * coordinator, or was restarted, loads the journal at start-up and re-offers
 * the results to the next session of that coordinator (or of that run), so no
 * finished cell is lost and the coordinator's store makes it count once.
 *
 * One file per (run, cell, attempt), a msgpack map written to a temporary
 * file and renamed into place: a crash leaves either the whole entry or none
 * (the rename survives the worker's death; no fsync, so not a power cut).
 * In memory the journal keeps only each entry's metadata; the payload
 * (sidecar, console excerpt) is read back from the file when re-offered. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kt_msg.h"

#define KT_JOURNAL_MAX_ENTRIES 16384
/* A file larger than this is not ours (sidecar + console + fields). */
#define KT_JOURNAL_MAX_FILE (KT_MSG_MAX_SIDECAR + KT_MSG_MAX_CONSOLE + (16u << 10))

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

/* Opens (creating) {cache_dir}/journal and loads the index. Files that do
 * not decode are renamed to *.bad and counted (kt_journal_bad), never
 * deleted. */
int kt_journal_open(const char *cache_dir, kt_journal_t **ret);
void kt_journal_destroy(kt_journal_t **self_p);
const char *kt_journal_dir(const kt_journal_t *self);
unsigned kt_journal_count(const kt_journal_t *self);
unsigned kt_journal_bad(const kt_journal_t *self);

/* Persists e (payload included) and indexes its metadata. An entry with the
 * same (run, cell, attempt) is replaced. -ENOSPC when the journal holds
 * KT_JOURNAL_MAX_ENTRIES, -E2BIG for an oversized sidecar or console,
 * -EINVAL for missing ids. */
int kt_journal_put(kt_journal_t *self, const kt_journal_entry_t *e);
/* Removes the file and the index entry; -ENOENT when not there. */
int kt_journal_remove(kt_journal_t *self, const char *run_id, const char *cell_id,
                      uint32_t attempt);
/* The indexed entry (metadata; the daemon may update offered_*), or NULL. */
kt_journal_entry_t *kt_journal_find(kt_journal_t *self, const char *run_id, const char *cell_id,
                                    uint32_t attempt);
/* Iteration over the index; the journal must not change meanwhile. */
kt_journal_entry_t *kt_journal_first(kt_journal_t *self);
kt_journal_entry_t *kt_journal_next(kt_journal_t *self);
/* Reads the whole entry (payload included) back from its file. Caller owns
 * ret's payload (kt_journal_entry_clear). */
int kt_journal_read(const kt_journal_t *self, const kt_journal_entry_t *meta,
                    kt_journal_entry_t *ret);
void kt_journal_entry_clear(kt_journal_entry_t *e);
