/* libfyaml helpers shared by the YAML readers (scenarios, gauntlets), and
 * the strict reader both are built on (kt_yaml_ctx_t and what takes it). */
#pragma once

#include <libfyaml.h>
#include <stdbool.h>
#include <stddef.h>

#include "kt_cleanup.h"

/* A diag that keeps errors (with their position) instead of printing them. */
struct fy_diag *kt_yaml_diag_new(void);
void kt_yaml_diag_freep(struct fy_diag **d);
/* 1-based position of a node; false when it has none (an empty value). */
bool kt_yaml_node_pos(struct fy_node *n, int *ret_line, int *ret_col);
/* "a mapping", "a sequence", "a scalar" or "nothing", for messages. */
const char *kt_yaml_kind(struct fy_node *n);
/* An absent node, a plain empty scalar or ~/null/Null/NULL. */
bool kt_yaml_is_null(struct fy_node *n);

/* YAML text must be printable Unicode (YAML 1.2, 5.1) before libfyaml sees
 * it: libfyaml 0.7.12 loops forever on some invalid UTF-8. And a tab is
 * refused outside quotes and comments unless only blanks or a comment
 * follow it on its line: libfyaml 0.7.12 corrupts its indentation stack on
 * some tabs (`? e:<TAB>-` crashes fy_parser_destroy), and YAML forbids tabs
 * as indentation anyway. 0, or -EILSEQ with the 1-based line/column and a
 * description of the first bad character. Every reader of user YAML calls
 * this first (kt_yaml_doc_load does). */
int kt_yaml_check_text(const char *text, size_t len, int *ret_line, int *ret_col, char *what,
                       size_t what_len);

/* The largest YAML file a reader takes (a scenario or gauntlet is a few KiB). */
#define KT_YAML_FILE_MAX (1u << 20)

/* One YAML reader's state: where errors go and what they name. Every error
 * reads "ORIGIN:LINE:COL: path: what is wrong". */
typedef struct kt_yaml_ctx {
    const char *origin;   /* the file (or "<yaml>"), first in every message */
    const char *base_dir; /* relative paths resolve here; NULL: none (text from memory) */
    char *err;            /* NULL (err_len 0): messages are dropped */
    size_t err_len;
} kt_yaml_ctx_t;

static inline kt_yaml_ctx_t kt_yaml_ctx(const char *origin, const char *base_dir, char *err,
                                        size_t err_len)
{
    return (kt_yaml_ctx_t){
        .origin = origin, .base_dir = base_dir, .err = err, .err_len = err ? err_len : 0};
}

/* Formats "origin:line:col: message" at node (or at fallback when node has
 * no position, as an empty value has none; "origin: message" when neither
 * has) into c->err, control characters masked. Returns -EINVAL. */
__attribute__((format(printf, 4, 5))) int kt_yaml_fail(kt_yaml_ctx_t *c, struct fy_node *node,
                                                       struct fy_node *fallback, const char *fmt,
                                                       ...);
/* Follows an alias to its anchored node, in place; -EINVAL (error at n, or
 * key) for an alias that names no anchor. path names the value in errors. */
int kt_yaml_deref(kt_yaml_ctx_t *c, struct fy_node **n, struct fy_node *key, const char *path);
/* The text of a non-null scalar value (aliases followed), pointing into the
 * document: not NUL-terminated, holding no NUL byte. *ret_plain (may be
 * NULL) says whether it was written without quotes: only plain scalars are
 * numbers and booleans. Errors name what was expected. */
int kt_yaml_scalar(kt_yaml_ctx_t *c, struct fy_node *n, struct fy_node *key, const char *path,
                   const char *what, const char **ret_text, size_t *ret_len, bool *ret_plain);
/* kt_yaml_scalar's text NUL-terminated in buf, cut to fit (*ret_fits says
 * whether it did). */
int kt_yaml_value(kt_yaml_ctx_t *c, struct fy_node *n, struct fy_node *key, const char *path,
                  const char *what, char *buf, size_t buf_len, bool *ret_fits, bool *ret_plain);
/* The file raw names (a path as written at n, relative to c->base_dir
 * unless absolute): it must exist and be a regular file (or a directory
 * when dir_ok), executable when exec; ret gets its real path. */
int kt_yaml_real_path(kt_yaml_ctx_t *c, struct fy_node *n, struct fy_node *key, const char *path,
                      const char *raw, bool dir_ok, bool exec, char *ret, size_t ret_len);
/* True for a plain scalar (or an alias of one) spelling a boolean (true,
 * True, TRUE, false, False, FALSE); *ret gets its value. */
bool kt_yaml_is_bool(struct fy_node *n, bool *ret);

/* The keys of one mapping matched against the known ones (name set, key
 * and value filled in by kt_yaml_fields). */
typedef struct kt_yaml_field {
    const char *name;
    struct fy_node *key;
    struct fy_node *value;
} kt_yaml_field_t;

/* Fills fields from the mapping map (aliases followed); anything but a
 * mapping, a key that is not a plain name, and an unknown key are errors,
 * the last with the closest known key as a hint (or the known keys). what
 * names the mapping ("a scheduler"); path its place ("" at the root). */
int kt_yaml_fields(kt_yaml_ctx_t *c, struct fy_node *map, struct fy_node *key, const char *path,
                   const char *what, kt_yaml_field_t *fields, size_t n_fields);
/* The field name when its key was given, else NULL. */
kt_yaml_field_t *kt_yaml_field(kt_yaml_field_t *fields, size_t n, const char *name);
#define KT_YAML_F(fields, name) kt_yaml_field((fields), KT_ARRAY_SIZE(fields), (name))

/* Reads the YAML file path (at most KT_YAML_FILE_MAX bytes) into a new
 * buffer (*ret_buf, the caller frees) and the folder its relative paths
 * resolve against into ret_dir: the folder of path as given, or, when
 * ret_real (PATH_MAX bytes) is not NULL, of its real path, which ret_real
 * gets. -errno with "PATH: what" in err (may be NULL). */
int kt_yaml_file_read(const char *path, char **ret_buf, size_t *ret_len, char *ret_dir,
                      size_t dir_len, char *ret_real, char *err, size_t err_len);

/* A YAML text loaded as one document, for as long as its nodes are read. */
typedef struct kt_yaml_doc {
    struct fy_diag *diag;
    struct fy_parser *parser;
    struct fy_document *doc;
    struct fy_node *root;
} kt_yaml_doc_t;

/* Checks text (kt_yaml_check_text, at most KT_YAML_FILE_MAX bytes) and
 * loads its one document, and its root node, into ret_doc (close it with
 * kt_yaml_doc_close, also after a failure). Syntax errors, an empty text
 * and a second document are errors; what names the document ("scenario":
 * "expected a scenario mapping", "a scenario file holds one"). -EFBIG,
 * -EINVAL or -ENOMEM, with c->err set (but for a NULL text). */
int kt_yaml_doc_load(kt_yaml_ctx_t *c, const char *text, size_t len, const char *what,
                     kt_yaml_doc_t *ret_doc);
void kt_yaml_doc_close(kt_yaml_doc_t *d);
