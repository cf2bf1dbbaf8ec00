/* lw_json.h — a small, capped JSON reader (DOM) for leakwatch's tools.
 *
 * Parses one JSON text (RFC 8259) into a tree of lw_json values allocated in
 * one block owned by the document; lw_json_free() releases it all. Strings
 * are unescaped to UTF-8 (\uXXXX including surrogate pairs); numbers are
 * kept as their text and as a double. Hard limits keep hostile input
 * bounded: nesting depth (LW_JSON_MAX_DEPTH), number of values
 * (LW_JSON_MAX_VALUES) and the input size the caller gives. Object members
 * keep their order; duplicate keys are kept (lookup returns the first).
 *
 * Errors: lw_json_parse returns 0, -EINVAL (syntax, with "line:col: reason"
 * in err), -E2BIG (over a limit) or -ENOMEM. Lookups cannot fail; they
 * return NULL when the member or element is absent or of another type.
 */
#ifndef LW_JSON_H
#define LW_JSON_H

#include <stdbool.h>
#include <stddef.h>

#include "lw_buf.h"

#define LW_JSON_MAX_DEPTH 128
#define LW_JSON_MAX_VALUES 4000000

typedef enum lw_json_type {
    LW_JSON_NULL,
    LW_JSON_FALSE,
    LW_JSON_TRUE,
    LW_JSON_NUMBER,
    LW_JSON_STRING,
    LW_JSON_ARRAY,
    LW_JSON_OBJECT,
} lw_json_type;

typedef struct lw_json lw_json;
struct lw_json {
    lw_json_type type;
    const char *str;    /* STRING: unescaped text; NUMBER: its literal; object member key in `key` */
    size_t str_len;     /* bytes of str (a string may contain NUL) */
    double num;         /* NUMBER */
    const char *key;    /* member name when this value is in an object, else NULL */
    lw_json *child;     /* ARRAY/OBJECT: first element */
    lw_json *next;      /* next sibling */
    size_t n_children;  /* ARRAY/OBJECT */
};

typedef struct lw_json_doc lw_json_doc;

/* Parse len bytes of text. On success *doc owns the tree and *root points
 * into it. */
int lw_json_parse(const char *text, size_t len, lw_json_doc **doc, const lw_json **root, char *err,
                  size_t err_len) LW_WUR;

/* Free a document; lw_json_free(NULL) is safe. */
void lw_json_free(lw_json_doc *doc);

/* Member `key` of an object, or NULL. */
const lw_json *lw_json_get(const lw_json *obj, const char *key);

/* Element i of an array, or NULL. */
const lw_json *lw_json_at(const lw_json *arr, size_t i);

/* The string value, or NULL when v is not a string. */
const char *lw_json_str(const lw_json *v);

/* A scalar as text into buf: strings as is, numbers as written, true/false,
 * null as ""; "" for arrays, objects and NULL. Returns buf. */
const char *lw_json_text(const lw_json *v, char *buf, size_t buf_len);

#endif
