/* Sidecars: the JSON result of one cell (*.ktstr.json), written atomically. */
#pragma once

#include <jansson.h>
#include <stddef.h>

/* "gauntlet/steady/tiny-2llc/default/6.12.117" -> "gauntlet__steady__..."
 * with anything outside [A-Za-z0-9._+-] replaced by '_'. */
void kt_sidecar_file_stem(const char *cell_name, char *buf, size_t len);

/* Writes doc to {dir}/{stem}.ktstr.json through a temp file and rename.
 * ret_path (may be NULL) receives the final path. */
int kt_sidecar_write(const char *dir, const char *stem, json_t *doc, char *ret_path, size_t len);

/* Merge the guest's result frame (msgpack map) into doc under the sidecar's
 * field names. Rejects a result with a missing/unknown verdict or a body
 * that is not a bounded msgpack map: -EBADMSG with why. */
int kt_sidecar_merge_guest(json_t *doc, const void *body, size_t len, char *why, size_t why_len);

/* Is this one of pass|fail|error|skip? */
int kt_verdict_valid(const char *v);
/* Exit status for a verdict: 0 pass, 1 fail, 2 error, 77 skip. */
int kt_verdict_exit_code(const char *v);
