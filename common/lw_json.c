/* lw_json.c — capped JSON reader (see lw_json.h).
 *
 * Recursive descent with an explicit depth limit; every node and string is
 * carved from an arena of large chunks that the document frees at once.
 * Strings are unescaped into the arena; the output is never longer than the
 * escaped input, so a string needs at most its input length plus one.
 */
#include "lw_json.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK_BYTES ((size_t)64 << 10)

typedef struct chunk {
    struct chunk *next;
    size_t used, cap;
    _Alignas(max_align_t) unsigned char data[];
} chunk;

struct lw_json_doc {
    chunk *chunks;
    size_t n_values;
};

typedef struct parser {
    const char *s;
    size_t len, pos;
    lw_json_doc *doc;
    int rc;
    char *err;
    size_t err_len;
} parser;

static void *arena_alloc(lw_json_doc *d, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    chunk *c = d->chunks;
    if (!c || c->cap - c->used < n) {
        size_t cap = n > CHUNK_BYTES ? n : CHUNK_BYTES;
        c = malloc(sizeof *c + cap);
        if (!c)
            return NULL;
        c->used = 0;
        c->cap = cap;
        c->next = d->chunks;
        d->chunks = c;
    }
    void *p = c->data + c->used;
    c->used += n;
    return p;
}

static void fail(parser *p, int rc, const char *fmt, ...) LW_PRINTF(3, 4);

static void fail(parser *p, int rc, const char *fmt, ...)
{
    if (p->rc)
        return;
    p->rc = rc;
    if (!p->err || !p->err_len)
        return;
    size_t line = 1, col = 1;
    for (size_t i = 0; i < p->pos && i < p->len; i++) {
        if (p->s[i] == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
    }
    char msg[192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(p->err, p->err_len, "%zu:%zu: %s", line, col, msg);
}

static void skip_ws(parser *p)
{
    while (p->pos < p->len) {
        char c = p->s[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        p->pos++;
    }
}

static lw_json *new_value(parser *p, lw_json_type t)
{
    if (++p->doc->n_values > LW_JSON_MAX_VALUES) {
        fail(p, -E2BIG, "more than %d values", LW_JSON_MAX_VALUES);
        return NULL;
    }
    lw_json *v = arena_alloc(p->doc, sizeof *v);
    if (!v) {
        fail(p, -ENOMEM, "out of memory");
        return NULL;
    }
    memset(v, 0, sizeof *v);
    v->type = t;
    return v;
}

static int hex4(const char *s, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

static size_t put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Parse a string at p->pos (at the opening quote); unescaped into the arena. */
static const char *parse_string(parser *p, size_t *len_out)
{
    size_t start = ++p->pos;
    size_t end = start;
    while (end < p->len && p->s[end] != '"') {
        if (p->s[end] == '\\')
            end++;
        end++;
    }
    if (end >= p->len) {
        fail(p, -EINVAL, "unterminated string");
        return NULL;
    }
    char *out = arena_alloc(p->doc, end - start + 1);
    if (!out) {
        fail(p, -ENOMEM, "out of memory");
        return NULL;
    }
    size_t o = 0;
    while (p->pos < end) {
        unsigned char c = (unsigned char)p->s[p->pos];
        if (c < 0x20) {
            fail(p, -EINVAL, "control character in string");
            return NULL;
        }
        if (c != '\\') {
            out[o++] = (char)c;
            p->pos++;
            continue;
        }
        char e = p->s[p->pos + 1];
        p->pos += 2;
        switch (e) {
        case '"': out[o++] = '"'; break;
        case '\\': out[o++] = '\\'; break;
        case '/': out[o++] = '/'; break;
        case 'b': out[o++] = '\b'; break;
        case 'f': out[o++] = '\f'; break;
        case 'n': out[o++] = '\n'; break;
        case 'r': out[o++] = '\r'; break;
        case 't': out[o++] = '\t'; break;
        case 'u': {
            unsigned cp, lo;
            if (p->pos + 4 > end || hex4(p->s + p->pos, &cp)) {
                fail(p, -EINVAL, "bad \\u escape");
                return NULL;
            }
            p->pos += 4;
            if (cp >= 0xD800 && cp < 0xDC00 && p->pos + 6 <= end && p->s[p->pos] == '\\' &&
                p->s[p->pos + 1] == 'u' && hex4(p->s + p->pos + 2, &lo) == 0 && lo >= 0xDC00 && lo < 0xE000) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                p->pos += 6;
            } else if (cp >= 0xD800 && cp < 0xE000) {
                cp = 0xFFFD; /* a lone surrogate */
            }
            /* 6 escaped bytes always cover the <= 4 bytes written */
            o += put_utf8(out + o, cp);
            break;
        }
        default:
            fail(p, -EINVAL, "bad escape \\%c", e >= 0x20 && e < 0x7f ? e : '?');
            return NULL;
        }
    }
    p->pos = end + 1;
    out[o] = '\0';
    *len_out = o;
    return out;
}

static lw_json *parse_value(parser *p, int depth);

static lw_json *parse_container(parser *p, int depth, bool object)
{
    lw_json *v = new_value(p, object ? LW_JSON_OBJECT : LW_JSON_ARRAY);
    if (!v)
        return NULL;
    char close = object ? '}' : ']';
    p->pos++;
    skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == close) {
        p->pos++;
        return v;
    }
    lw_json **tail = &v->child;
    for (;;) {
        const char *key = NULL;
        if (object) {
            skip_ws(p);
            size_t kl;
            if (p->pos >= p->len || p->s[p->pos] != '"') {
                fail(p, -EINVAL, "expected a member name");
                return NULL;
            }
            key = parse_string(p, &kl);
            if (!key)
                return NULL;
            skip_ws(p);
            if (p->pos >= p->len || p->s[p->pos] != ':') {
                fail(p, -EINVAL, "expected ':'");
                return NULL;
            }
            p->pos++;
        }
        lw_json *e = parse_value(p, depth + 1);
        if (!e)
            return NULL;
        e->key = key;
        *tail = e;
        tail = &e->next;
        v->n_children++;
        skip_ws(p);
        if (p->pos < p->len && p->s[p->pos] == ',') {
            p->pos++;
            continue;
        }
        if (p->pos < p->len && p->s[p->pos] == close) {
            p->pos++;
            return v;
        }
        fail(p, -EINVAL, "expected ',' or '%c'", close);
        return NULL;
    }
}

static lw_json *parse_number(parser *p)
{
    size_t start = p->pos;
    const char *s = p->s;
    size_t i = p->pos;
    if (i < p->len && s[i] == '-')
        i++;
    if (i >= p->len || s[i] < '0' || s[i] > '9')
        goto bad;
    if (s[i] == '0')
        i++;
    else
        while (i < p->len && s[i] >= '0' && s[i] <= '9')
            i++;
    if (i < p->len && s[i] == '.') {
        i++;
        if (i >= p->len || s[i] < '0' || s[i] > '9')
            goto bad;
        while (i < p->len && s[i] >= '0' && s[i] <= '9')
            i++;
    }
    if (i < p->len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < p->len && (s[i] == '+' || s[i] == '-'))
            i++;
        if (i >= p->len || s[i] < '0' || s[i] > '9')
            goto bad;
        while (i < p->len && s[i] >= '0' && s[i] <= '9')
            i++;
    }
    lw_json *v = new_value(p, LW_JSON_NUMBER);
    if (!v)
        return NULL;
    char *lit = arena_alloc(p->doc, i - start + 1);
    if (!lit) {
        fail(p, -ENOMEM, "out of memory");
        return NULL;
    }
    memcpy(lit, s + start, i - start);
    lit[i - start] = '\0';
    v->str = lit;
    v->str_len = i - start;
    v->num = strtod(lit, NULL);
    p->pos = i;
    return v;
bad:
    p->pos = i;
    fail(p, -EINVAL, "bad number");
    return NULL;
}

static lw_json *parse_literal(parser *p, const char *word, lw_json_type t)
{
    size_t n = strlen(word);
    if (p->len - p->pos < n || memcmp(p->s + p->pos, word, n) != 0) {
        fail(p, -EINVAL, "unexpected character");
        return NULL;
    }
    p->pos += n;
    return new_value(p, t);
}

static lw_json *parse_value(parser *p, int depth)
{
    if (depth >= LW_JSON_MAX_DEPTH) {
        fail(p, -E2BIG, "nested deeper than %d", LW_JSON_MAX_DEPTH);
        return NULL;
    }
    skip_ws(p);
    if (p->pos >= p->len) {
        fail(p, -EINVAL, "unexpected end of input");
        return NULL;
    }
    switch (p->s[p->pos]) {
    case '{':
        return parse_container(p, depth, true);
    case '[':
        return parse_container(p, depth, false);
    case '"': {
        lw_json *v = new_value(p, LW_JSON_STRING);
        if (v) {
            v->str = parse_string(p, &v->str_len);
            if (!v->str)
                return NULL;
        }
        return v;
    }
    case 't':
        return parse_literal(p, "true", LW_JSON_TRUE);
    case 'f':
        return parse_literal(p, "false", LW_JSON_FALSE);
    case 'n':
        return parse_literal(p, "null", LW_JSON_NULL);
    default:
        return parse_number(p);
    }
}

void lw_json_free(lw_json_doc *doc)
{
    if (!doc)
        return;
    chunk *c = doc->chunks;
    while (c) {
        chunk *next = c->next;
        free(c);
        c = next;
    }
    free(doc);
}

int lw_json_parse(const char *text, size_t len, lw_json_doc **doc, const lw_json **root, char *err,
                  size_t err_len)
{
    *doc = NULL;
    *root = NULL;
    parser p = {.s = text, .len = len, .err = err, .err_len = err_len};
    p.doc = calloc(1, sizeof *p.doc);
    if (!p.doc)
        return -ENOMEM;
    lw_json *v = parse_value(&p, 0);
    if (v) {
        skip_ws(&p);
        if (p.pos != p.len)
            fail(&p, -EINVAL, "unexpected text after the value");
    }
    if (p.rc) {
        lw_json_free(p.doc);
        return p.rc;
    }
    *doc = p.doc;
    *root = v;
    return 0;
}

const lw_json *lw_json_get(const lw_json *obj, const char *key)
{
    if (!obj || obj->type != LW_JSON_OBJECT)
        return NULL;
    for (const lw_json *c = obj->child; c; c = c->next) {
        if (strcmp(c->key, key) == 0)
            return c;
    }
    return NULL;
}

const lw_json *lw_json_at(const lw_json *arr, size_t i)
{
    if (!arr || (arr->type != LW_JSON_ARRAY && arr->type != LW_JSON_OBJECT))
        return NULL;
    const lw_json *c = arr->child;
    while (c && i--)
        c = c->next;
    return c;
}

const char *lw_json_str(const lw_json *v)
{
    return v && v->type == LW_JSON_STRING ? v->str : NULL;
}

const char *lw_json_text(const lw_json *v, char *buf, size_t buf_len)
{
    const char *s = "";
    if (v) {
        switch (v->type) {
        case LW_JSON_STRING:
        case LW_JSON_NUMBER:
            s = v->str;
            break;
        case LW_JSON_TRUE:
            s = "true";
            break;
        case LW_JSON_FALSE:
            s = "false";
            break;
        default:
            break;
        }
    }
    snprintf(buf, buf_len, "%s", s);
    return buf;
}
