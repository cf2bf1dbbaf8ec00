/* leakwatch.c — the `leakwatch` command-line client of leakwatchd's HTTP API.
 *
 *   leakwatch [--url URL] [--json] [--timeout SECONDS] COMMAND [FLAGS]
 *   targets | profiles | diff | merge | series | leaks | alerts | check config FILE
 *
 * Every command is one GET (libcurl) to the API; answers are read with the
 * capped lw_json reader. Default output is an aligned table (or the pprof
 * top table for diff/merge); --json prints the "data" part of the answer for
 * scripts; -o writes a gzipped pprof profile. Failures exit non-zero with one
 * line on stderr: an unreachable server ("cannot reach leakwatchd at URL:
 * connection refused"), an API error ("leakwatchd: invalid parameter ..."),
 * or a usage error (exit 2). `check config` execs the leakwatchd binary next
 * to this one with --config.check.
 */
#include <curl/curl.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "lw_buf.h"
#include "lw_json.h"

#define DEFAULT_URL "http://127.0.0.1:9475"
#define MAX_BODY_BYTES ((size_t)512 << 20)
#define MAX_TABLE_ROWS 1000000
#define MAX_COLS 10

typedef struct cli {
    const char *url;
    bool json;
    long timeout_s;
    const char *user;   /* "name:password" for basic auth, or NULL */
    const char *cacert; /* CA file for https URLs, or NULL for the system store */
} cli;

/* A command's flags: --name VALUE pairs, collected before they are used. */
typedef struct flag_def {
    const char *name;  /* "--instance" */
    const char *param; /* query parameter it maps to, NULL = handled by the command */
    const char *value; /* set while parsing */
} flag_def;

static void die_usage(const char *fmt, ...) LW_PRINTF(1, 2) __attribute__((noreturn));

static void die_usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("leakwatch: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs("\nTry 'leakwatch --help'.\n", stderr);
    va_end(ap);
    exit(2);
}

static void usage(FILE *f)
{
    fputs("usage: leakwatch [--url URL] [--json] [--timeout SECONDS] [--user NAME:PASSWORD] [--cacert FILE]\n"
          "                 COMMAND [FLAGS]\n"
          "\n"
          "Commands:\n"
          "  targets                                 scrape targets and their health\n"
          "  profiles [--job J] [--instance I] [--type T] [--since 1h | --from T --to T] [--limit N]\n"
          "                                          stored profiles\n"
          "  diff --instance I --type T --from T [--to T] [--job J] [--top N] [--sample-type S] [-o FILE]\n"
          "  diff --base-id ID --id ID [--top N] [--sample-type S] [-o FILE]\n"
          "                                          what grew between two profiles (to minus from)\n"
          "  merge --type T [--instance I] [--job J] [--since 1h | --from T --to T] [--top N] [-o FILE]\n"
          "  series --signal S [--instance I] [--job J] [--since 1h | --from T --to T]\n"
          "  leaks                                   current leak verdicts\n"
          "  alerts                                  pending and firing alerts\n"
          "  check config FILE                       validate a leakwatchd configuration file\n"
          "\n"
          "Times: RFC3339, Unix seconds, now, now-30m. --url defaults to " DEFAULT_URL ".\n"
          "--json prints the data part of the API answer; -o writes a gzipped pprof profile\n"
          "(go tool pprof FILE).\n",
          f);
}

/* ---- HTTP --------------------------------------------------------------- */

static size_t on_body(char *data, size_t size, size_t nmemb, void *cls)
{
    lw_buf *b = cls;
    return lw_buf_append(b, data, size * nmemb) == 0 ? size * nmemb : 0;
}

/* Response headers the CLI shows: the profiles a diff compared, and how
 * many profiles a merge combined. */
typedef struct resp_headers {
    char base_profile[32];
    char profile[32];
    char merged[32];
} resp_headers;

static void header_value(const char *line, size_t n, const char *name, char *out, size_t out_len)
{
    size_t nl = strlen(name);
    if (n <= nl + 1 || strncasecmp(line, name, nl) != 0 || line[nl] != ':')
        return;
    const char *v = line + nl + 1;
    size_t vl = n - nl - 1;
    while (vl && (*v == ' ' || *v == '\t')) {
        v++;
        vl--;
    }
    while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
        vl--;
    snprintf(out, out_len, "%.*s", (int)vl, v);
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *cls)
{
    resp_headers *h = cls;
    size_t n = size * nmemb;
    header_value(data, n, "X-Leakwatch-Base-Profile", h->base_profile, sizeof h->base_profile);
    header_value(data, n, "X-Leakwatch-Profile", h->profile, sizeof h->profile);
    header_value(data, n, "X-Leakwatch-Merged-Profiles", h->merged, sizeof h->merged);
    return n;
}

static resp_headers g_headers;

/* GET url into body; *status gets the HTTP status. Exits on transport errors. */
static void http_get(const cli *c, const char *url, lw_buf *body, long *status, char *ctype, size_t ctype_len)
{
    CURL *h = curl_easy_init();
    if (!h) {
        fprintf(stderr, "leakwatch: cannot initialise libcurl\n");
        exit(1);
    }
    char errbuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, body);
    memset(&g_headers, 0, sizeof g_headers);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &g_headers);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, c->timeout_s);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "leakwatch/" LW_VERSION);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    if (c->user) {
        curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(h, CURLOPT_USERPWD, c->user);
    }
    if (c->cacert)
        curl_easy_setopt(h, CURLOPT_CAINFO, c->cacert);
    CURLcode cc = curl_easy_perform(h);
    if (cc != CURLE_OK) {
        const char *why = errbuf[0] ? errbuf : curl_easy_strerror(cc);
        if (cc == CURLE_COULDNT_CONNECT)
            why = "connection refused";
        else if (cc == CURLE_WRITE_ERROR)
            why = "answer too large";
        else if (cc == CURLE_OPERATION_TIMEDOUT)
            why = "timed out";
        fprintf(stderr, "leakwatch: cannot reach leakwatchd at %s: %s\n", c->url, why);
        curl_easy_cleanup(h);
        exit(1);
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
    char *ct = NULL;
    curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &ct);
    snprintf(ctype, ctype_len, "%s", ct ? ct : "");
    curl_easy_cleanup(h);
}

/* Append "&name=value" (value URL-escaped) to url. */
static void add_param(lw_buf *url, const char *name, const char *value)
{
    if (!value)
        return;
    char *esc = curl_easy_escape(NULL, value, 0);
    bool first = !strchr(url->data, '?');
    if (!esc || lw_buf_printf(url, "%c%s=%s", first ? '?' : '&', name, esc)) {
        fprintf(stderr, "leakwatch: out of memory\n");
        exit(1);
    }
    curl_free(esc);
}

static void url_init(const cli *c, lw_buf *url, const char *path)
{
    lw_buf_init(url, 16384);
    size_t n = strlen(c->url);
    while (n && c->url[n - 1] == '/')
        n--;
    if (lw_buf_printf(url, "%.*s%s", (int)n, c->url, path))
        die_usage("--url too long");
}

/* An API error answer: print its message and exit 1. */
static void die_api(long status, const lw_buf *body) __attribute__((noreturn));

static void die_api(long status, const lw_buf *body)
{
    lw_json_doc *doc = NULL;
    const lw_json *root = NULL;
    const char *msg = NULL;
    if (lw_json_parse(body->data ? body->data : "", body->len, &doc, &root, NULL, 0) == 0)
        msg = lw_json_str(lw_json_get(root, "error"));
    if (msg)
        fprintf(stderr, "leakwatchd: %s (HTTP %ld)\n", msg, status);
    else
        fprintf(stderr, "leakwatchd: HTTP %ld: %.200s\n", status, body->data ? body->data : "");
    lw_json_free(doc);
    exit(1);
}

/* GET a JSON endpoint; returns the document and its "data". Exits on errors. */
static const lw_json *get_json(const cli *c, const lw_buf *url, lw_json_doc **doc)
{
    lw_buf body;
    lw_buf_init(&body, MAX_BODY_BYTES);
    long status = 0;
    char ctype[128];
    http_get(c, url->data, &body, &status, ctype, sizeof ctype);
    if (status != 200)
        die_api(status, &body);
    const lw_json *root = NULL;
    char err[256];
    if (lw_json_parse(body.data ? body.data : "", body.len, doc, &root, err, sizeof err)) {
        fprintf(stderr, "leakwatch: bad JSON from %s: %s\n", c->url, err);
        exit(1);
    }
    lw_buf_cleanup(&body);
    const lw_json *data = lw_json_get(root, "data");
    if (!data || !lw_json_str(lw_json_get(root, "status")) ||
        strcmp(lw_json_str(lw_json_get(root, "status")), "success") != 0) {
        fprintf(stderr, "leakwatch: unexpected answer from %s (no \"data\")\n", c->url);
        exit(1);
    }
    return data;
}

/* ---- output -------------------------------------------------------------- */

static void print_json_str(const char *s, size_t n)
{
    putchar('"');
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\')
            printf("\\%c", ch);
        else if (ch == '\n')
            fputs("\\n", stdout);
        else if (ch == '\t')
            fputs("\\t", stdout);
        else if (ch < 0x20)
            printf("\\u%04x", ch);
        else
            putchar(ch);
    }
    putchar('"');
}

static void print_json(const lw_json *v)
{
    switch (v->type) {
    case LW_JSON_NULL: fputs("null", stdout); break;
    case LW_JSON_TRUE: fputs("true", stdout); break;
    case LW_JSON_FALSE: fputs("false", stdout); break;
    case LW_JSON_NUMBER: fputs(v->str, stdout); break;
    case LW_JSON_STRING: print_json_str(v->str, v->str_len); break;
    case LW_JSON_ARRAY:
    case LW_JSON_OBJECT:
        putchar(v->type == LW_JSON_ARRAY ? '[' : '{');
        for (const lw_json *e = v->child; e; e = e->next) {
            if (e != v->child)
                putchar(',');
            if (v->type == LW_JSON_OBJECT) {
                print_json_str(e->key, strlen(e->key));
                putchar(':');
            }
            print_json(e);
        }
        putchar(v->type == LW_JSON_ARRAY ? ']' : '}');
        break;
    }
}

typedef struct table {
    int n_cols;
    const char *head[MAX_COLS];
    char **cells; /* n_rows * n_cols, owned */
    size_t n_rows, cap_rows;
} table;

static void table_row(table *t, ...)
{
    if (t->n_rows == MAX_TABLE_ROWS)
        return;
    if (t->n_rows == t->cap_rows) {
        size_t cap = t->cap_rows ? t->cap_rows * 2 : 64;
        char **cells = realloc(t->cells, cap * (size_t)t->n_cols * sizeof *cells);
        if (!cells) {
            fprintf(stderr, "leakwatch: out of memory\n");
            exit(1);
        }
        t->cells = cells;
        t->cap_rows = cap;
    }
    va_list ap;
    va_start(ap, t);
    for (int i = 0; i < t->n_cols; i++) {
        const char *s = va_arg(ap, const char *);
        char *d = strdup(s && *s ? s : "-");
        if (!d) {
            fprintf(stderr, "leakwatch: out of memory\n");
            exit(1);
        }
        /* Keep one cell on one line. */
        for (char *p = d; *p; p++)
            if (*p == '\n' || *p == '\t' || *p == '\r')
                *p = ' ';
        t->cells[t->n_rows * (size_t)t->n_cols + (size_t)i] = d;
    }
    va_end(ap);
    t->n_rows++;
}

static void table_print(table *t, const char *empty)
{
    if (!t->n_rows) {
        printf("%s\n", empty);
        free(t->cells);
        return;
    }
    size_t w[MAX_COLS];
    for (int i = 0; i < t->n_cols; i++)
        w[i] = strlen(t->head[i]);
    for (size_t r = 0; r < t->n_rows; r++)
        for (int i = 0; i < t->n_cols; i++) {
            size_t n = strlen(t->cells[r * (size_t)t->n_cols + (size_t)i]);
            if (n > w[i])
                w[i] = n > 80 ? 80 : n;
        }
    for (int i = 0; i < t->n_cols; i++)
        printf("%-*s%s", i + 1 < t->n_cols ? (int)w[i] : 0, t->head[i], i + 1 < t->n_cols ? "  " : "\n");
    for (size_t r = 0; r < t->n_rows; r++) {
        for (int i = 0; i < t->n_cols; i++) {
            char *cell = t->cells[r * (size_t)t->n_cols + (size_t)i];
            printf("%-*s%s", i + 1 < t->n_cols ? (int)w[i] : 0, cell, i + 1 < t->n_cols ? "  " : "\n");
            free(cell);
        }
    }
    free(t->cells);
}

static const char *text_of(const lw_json *v, const char *key, char *buf, size_t len)
{
    return lw_json_text(lw_json_get(v, key), buf, len);
}

/* ---- flags ----------------------------------------------------------------- */

/* Parse argv[*i..] into defs (each --flag VALUE or --flag=VALUE); positional
 * arguments go to pos. Global flags were removed beforehand. */
static void parse_flags(int argc, char **argv, int start, flag_def *defs, const char **pos, int max_pos, int *n_pos)
{
    *n_pos = 0;
    for (int i = start; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-' || !a[1]) {
            if (*n_pos == max_pos)
                die_usage("unexpected argument '%s'", a);
            pos[(*n_pos)++] = a;
            continue;
        }
        const char *eq = strchr(a, '=');
        size_t nl = eq ? (size_t)(eq - a) : strlen(a);
        flag_def *d = NULL;
        for (flag_def *f = defs; f->name; f++) {
            if (strlen(f->name) == nl && strncmp(f->name, a, nl) == 0)
                d = f;
        }
        if (!d)
            die_usage("unknown flag '%.*s'", (int)nl, a);
        if (eq)
            d->value = eq + 1;
        else if (i + 1 < argc)
            d->value = argv[++i];
        else
            die_usage("flag %s needs a value", d->name);
        if (!*d->value)
            die_usage("flag %s needs a value", d->name);
    }
}

static const char *flag(flag_def *defs, const char *name)
{
    for (flag_def *f = defs; f->name; f++)
        if (strcmp(f->name, name) == 0)
            return f->value;
    return NULL;
}

static void add_mapped_params(lw_buf *url, flag_def *defs)
{
    for (flag_def *f = defs; f->name; f++)
        if (f->param)
            add_param(url, f->param, f->value);
}

/* --since D becomes from=now-D (and conflicts with --from). */
static void add_since(lw_buf *url, flag_def *defs)
{
    const char *since = flag(defs, "--since");
    if (!since)
        return;
    if (flag(defs, "--from"))
        die_usage("--since and --from exclude each other");
    char from[128];
    snprintf(from, sizeof from, "now-%s", since);
    add_param(url, "from", from);
}

/* ---- commands ---------------------------------------------------------- */

static int cmd_targets(const cli *c, int argc, char **argv, int start)
{
    flag_def defs[] = {{NULL, NULL, NULL}};
    const char *pos[1];
    int n_pos;
    parse_flags(argc, argv, start, defs, pos, 0, &n_pos);
    lw_buf url;
    url_init(c, &url, "/api/v1/targets");
    lw_json_doc *doc = NULL;
    const lw_json *data = get_json(c, &url, &doc);
    if (c->json) {
        print_json(data);
        putchar('\n');
        goto out;
    }
    table t = {.n_cols = 7, .head = {"JOB", "INSTANCE", "PROFILE", "HEALTH", "LAST SCRAPE", "DURATION", "LAST ERROR"}};
    const lw_json *active = lw_json_get(data, "activeTargets");
    if (!active && data->type == LW_JSON_ARRAY)
        active = data;
    char job[256], inst[256], a[64], b[64], d[32], e[512], ty[64];
    for (size_t i = 0; active && i < active->n_children; i++) {
        const lw_json *tg = lw_json_at(active, i);
        const lw_json *labels = lw_json_get(tg, "labels");
        text_of(labels ? labels : tg, "job", job, sizeof job);
        text_of(labels ? labels : tg, "instance", inst, sizeof inst);
        const lw_json *profs = lw_json_get(tg, "profiles");
        if (!profs || !profs->n_children) {
            table_row(&t, job, inst, "", text_of(tg, "health", a, sizeof a), text_of(tg, "lastScrape", b, sizeof b),
                      text_of(tg, "lastScrapeDuration", d, sizeof d), text_of(tg, "lastError", e, sizeof e));
            continue;
        }
        for (size_t k = 0; k < profs->n_children; k++) {
            const lw_json *p = lw_json_at(profs, k);
            table_row(&t, job, inst, text_of(p, "type", ty, sizeof ty), text_of(p, "health", a, sizeof a),
                      text_of(p, "lastScrape", b, sizeof b), text_of(p, "lastScrapeDuration", d, sizeof d),
                      text_of(p, "lastError", e, sizeof e));
        }
    }
    table_print(&t, "no targets");
out:
    lw_json_free(doc);
    lw_buf_cleanup(&url);
    return 0;
}

static int cmd_profiles(const cli *c, int argc, char **argv, int start)
{
    flag_def defs[] = {{"--job", "job", NULL},     {"--instance", "instance", NULL}, {"--type", "type", NULL},
                       {"--from", "from", NULL},   {"--to", "to", NULL},             {"--limit", "limit", NULL},
                       {"--since", NULL, NULL},    {NULL, NULL, NULL}};
    const char *pos[1];
    int n_pos;
    parse_flags(argc, argv, start, defs, pos, 0, &n_pos);
    lw_buf url;
    url_init(c, &url, "/api/v1/profiles");
    add_mapped_params(&url, defs);
    add_since(&url, defs);
    lw_json_doc *doc = NULL;
    const lw_json *data = get_json(c, &url, &doc);
    if (c->json) {
        print_json(data);
        putchar('\n');
        goto out;
    }
    table t = {.n_cols = 7, .head = {"ID", "TIME", "JOB", "INSTANCE", "TYPE", "SAMPLES", "TOTALS"}};
    char id[32], tm[64], job[256], inst[256], ty[64], ns[32];
    for (size_t i = 0; i < data->n_children; i++) {
        const lw_json *p = lw_json_at(data, i);
        char totals[512] = "";
        size_t used = 0;
        const lw_json *st = lw_json_get(p, "sample_types");
        const lw_json *tot = lw_json_get(p, "totals");
        for (size_t k = 0; tot && k < tot->n_children && used + 2 < sizeof totals; k++) {
            char v[64], name[64];
            lw_json_text(lw_json_at(tot, k), v, sizeof v);
            text_of(lw_json_at(st, k), "type", name, sizeof name);
            int w = snprintf(totals + used, sizeof totals - used, "%s%s=%s", k ? " " : "", name, v);
            if (w < 0)
                break;
            used += (size_t)w;
        }
        table_row(&t, text_of(p, "id", id, sizeof id), text_of(p, "time", tm, sizeof tm),
                  text_of(p, "job", job, sizeof job), text_of(p, "instance", inst, sizeof inst),
                  text_of(p, "type", ty, sizeof ty), text_of(p, "samples", ns, sizeof ns), totals);
    }
    table_print(&t, "no profiles");
out:
    lw_json_free(doc);
    lw_buf_cleanup(&url);
    return 0;
}

/* diff and merge: a profile answer as a top table, JSON, or a file. */
static int profile_command(const cli *c, const char *path, flag_def *defs, int argc, char **argv, int start)
{
    const char *pos[1];
    int n_pos;
    parse_flags(argc, argv, start, defs, pos, 0, &n_pos);
    const char *out_file = flag(defs, "-o");
    if (out_file && c->json)
        die_usage("-o and --json exclude each other");
    lw_buf url;
    url_init(c, &url, path);
    add_mapped_params(&url, defs);
    add_since(&url, defs);
    add_param(&url, "format", out_file ? "pprof" : c->json ? "json" : "text");
    if (!out_file && !c->json)
        add_param(&url, "top", flag(defs, "--top") ? flag(defs, "--top") : "20");
    if (c->json) {
        lw_json_doc *doc = NULL;
        print_json(get_json(c, &url, &doc));
        putchar('\n');
        lw_json_free(doc);
        lw_buf_cleanup(&url);
        return 0;
    }
    lw_buf body;
    lw_buf_init(&body, MAX_BODY_BYTES);
    long status = 0;
    char ctype[128];
    http_get(c, url.data, &body, &status, ctype, sizeof ctype);
    if (status != 200)
        die_api(status, &body);
    int rc = 0;
    if (out_file) {
        FILE *f = fopen(out_file, "wb");
        if (!f || fwrite(body.data ? body.data : "", 1, body.len, f) != body.len || fclose(f) != 0) {
            fprintf(stderr, "leakwatch: cannot write %s: %s\n", out_file, strerror(errno));
            rc = 1;
        } else {
            printf("wrote %zu bytes to %s (open with: go tool pprof %s)\n", body.len, out_file, out_file);
        }
    } else {
        if (g_headers.base_profile[0] && g_headers.profile[0])
            printf("Diff: profile %s minus base profile %s (leakwatch profiles lists them)\n", g_headers.profile,
                   g_headers.base_profile);
        if (g_headers.merged[0])
            printf("Merged: %s profiles\n", g_headers.merged);
        fwrite(body.data ? body.data : "", 1, body.len, stdout);
    }
    lw_buf_cleanup(&body);
    lw_buf_cleanup(&url);
    return rc;
}

static int cmd_diff(const cli *c, int argc, char **argv, int start)
{
    flag_def defs[] = {{"--job", "job", NULL},
                       {"--instance", "instance", NULL},
                       {"--type", "type", NULL},
                       {"--from", "from", NULL},
                       {"--to", "to", NULL},
                       {"--base-id", "base_id", NULL},
                       {"--id", "id", NULL},
                       {"--sample-type", "sample_type", NULL},
                       {"--top", NULL, NULL},
                       {"--since", NULL, NULL},
                       {"-o", NULL, NULL},
                       {NULL, NULL, NULL}};
    return profile_command(c, "/api/v1/diff", defs, argc, argv, start);
}

static int cmd_merge(const cli *c, int argc, char **argv, int start)
{
    flag_def defs[] = {{"--job", "job", NULL},         {"--instance", "instance", NULL},
                       {"--type", "type", NULL},       {"--from", "from", NULL},
                       {"--to", "to", NULL},           {"--sample-type", "sample_type", NULL},
                       {"--top", NULL, NULL},          {"--since", NULL, NULL},
                       {"-o", NULL, NULL},             {NULL, NULL, NULL}};
    return profile_command(c, "/api/v1/merge", defs, argc, argv, start);
}

static int cmd_series(const cli *c, int argc, char **argv, int start)
{
    flag_def defs[] = {{"--job", "job", NULL},   {"--instance", "instance", NULL}, {"--signal", "signal", NULL},
                       {"--from", "from", NULL}, {"--to", "to", NULL},             {"--since", NULL, NULL},
                       {NULL, NULL, NULL}};
    const char *pos[1];
    int n_pos;
    parse_flags(argc, argv, start, defs, pos, 0, &n_pos);
    lw_buf url;
    url_init(c, &url, "/api/v1/series");
    add_mapped_params(&url, defs);
    add_since(&url, defs);
    lw_json_doc *doc = NULL;
    const lw_json *data = get_json(c, &url, &doc);
    if (c->json) {
        print_json(data);
        putchar('\n');
        goto out;
    }
    table t = {.n_cols = 4, .head = {"JOB", "INSTANCE", "TIME", "VALUE"}};
    const lw_json *result = lw_json_get(data, "result");
    char job[256], inst[256], ts[64], v[64];
    for (size_t i = 0; result && i < result->n_children; i++) {
        const lw_json *s = lw_json_at(result, i);
        const lw_json *m = lw_json_get(s, "metric");
        const lw_json *values = lw_json_get(s, "values");
        text_of(m, "job", job, sizeof job);
        text_of(m, "instance", inst, sizeof inst);
        for (size_t k = 0; values && k < values->n_children; k++) {
            const lw_json *pt = lw_json_at(values, k);
            table_row(&t, job, inst, lw_json_text(lw_json_at(pt, 0), ts, sizeof ts),
                      lw_json_text(lw_json_at(pt, 1), v, sizeof v));
        }
    }
    table_print(&t, "no points");
out:
    lw_json_free(doc);
    lw_buf_cleanup(&url);
    return 0;
}

/* A member from the object itself or from its "labels". */
static const char *label_or_field(const lw_json *o, const char *key, char *buf, size_t len)
{
    const lw_json *v = lw_json_get(o, key);
    if (!v)
        v = lw_json_get(lw_json_get(o, "labels"), key);
    return lw_json_text(v, buf, len);
}

static int cmd_leaks(const cli *c, int argc, char **argv, int start)
{
    flag_def defs[] = {{NULL, NULL, NULL}};
    const char *pos[1];
    int n_pos;
    parse_flags(argc, argv, start, defs, pos, 0, &n_pos);
    lw_buf url;
    url_init(c, &url, "/api/v1/leaks");
    lw_json_doc *doc = NULL;
    const lw_json *data = get_json(c, &url, &doc);
    if (c->json) {
        print_json(data);
        putchar('\n');
        goto out;
    }
    const lw_json *list = data->type == LW_JSON_ARRAY ? data : lw_json_get(data, "leaks");
    table t = {.n_cols = 8,
               .head = {"JOB", "INSTANCE", "SIGNAL", "SUSPECTED", "SCORE", "SLOPE/S", "GROWTH", "TOP STACK"}};
    char job[256], inst[256], sig[64], sus[16], score[32], slope[32], growth[32], top[512];
    for (size_t i = 0; list && i < list->n_children; i++) {
        const lw_json *l = lw_json_at(list, i);
        const lw_json *stacks = lw_json_get(l, "top_stacks");
        const lw_json *s0 = lw_json_at(stacks, 0);
        char fn[256], loc[256];
        if (s0)
            snprintf(top, sizeof top, "%s (%s)", text_of(s0, "function", fn, sizeof fn),
                     text_of(s0, "location", loc, sizeof loc));
        else
            top[0] = '\0';
        const lw_json *slope_v = lw_json_get(l, "slope_per_second");
        table_row(&t, label_or_field(l, "job", job, sizeof job), label_or_field(l, "instance", inst, sizeof inst),
                  text_of(l, "signal", sig, sizeof sig), text_of(l, "suspected", sus, sizeof sus),
                  text_of(l, "score", score, sizeof score),
                  slope_v ? lw_json_text(slope_v, slope, sizeof slope) : text_of(l, "slope", slope, sizeof slope),
                  text_of(l, "growth", growth, sizeof growth), top);
    }
    table_print(&t, "no leak verdicts");
out:
    lw_json_free(doc);
    lw_buf_cleanup(&url);
    return 0;
}

static int cmd_alerts(const cli *c, int argc, char **argv, int start)
{
    flag_def defs[] = {{NULL, NULL, NULL}};
    const char *pos[1];
    int n_pos;
    parse_flags(argc, argv, start, defs, pos, 0, &n_pos);
    lw_buf url;
    url_init(c, &url, "/api/v1/alerts");
    lw_json_doc *doc = NULL;
    const lw_json *data = get_json(c, &url, &doc);
    if (c->json) {
        print_json(data);
        putchar('\n');
        goto out;
    }
    const lw_json *list = data->type == LW_JSON_ARRAY ? data : lw_json_get(data, "alerts");
    table t = {.n_cols = 6, .head = {"ALERTNAME", "STATE", "JOB", "INSTANCE", "ACTIVE SINCE", "SUMMARY"}};
    char name[128], state[32], job[256], inst[256], at[64], sum[512];
    for (size_t i = 0; list && i < list->n_children; i++) {
        const lw_json *a = lw_json_at(list, i);
        table_row(&t, label_or_field(a, "alertname", name, sizeof name), text_of(a, "state", state, sizeof state),
                  label_or_field(a, "job", job, sizeof job), label_or_field(a, "instance", inst, sizeof inst),
                  text_of(a, "activeAt", at, sizeof at),
                  lw_json_text(lw_json_get(lw_json_get(a, "annotations"), "summary"), sum, sizeof sum));
    }
    table_print(&t, "no alerts");
out:
    lw_json_free(doc);
    lw_buf_cleanup(&url);
    return 0;
}

static int cmd_check(int argc, char **argv, int start)
{
    if (start >= argc || strcmp(argv[start], "config") != 0)
        die_usage("usage: leakwatch check config FILE");
    if (start + 2 != argc)
        die_usage("usage: leakwatch check config FILE");
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) {
        fprintf(stderr, "leakwatch: cannot find my own path: %s\n", strerror(errno));
        return 1;
    }
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    char daemon[PATH_MAX + 16];
    snprintf(daemon, sizeof daemon, "%.*s/leakwatchd", slash ? (int)(slash - self) : 1, slash ? self : ".");
    char arg[PATH_MAX + 32];
    snprintf(arg, sizeof arg, "--config.file=%s", argv[start + 1]);
    fflush(stdout);
    execl(daemon, daemon, "--config.check", arg, (char *)NULL);
    fprintf(stderr, "leakwatch: cannot run %s: %s\n", daemon, strerror(errno));
    return 1;
}

int main(int argc, char **argv)
{
    cli c = {.url = DEFAULT_URL, .json = false, .timeout_s = 60, .user = NULL, .cacert = NULL};
    /* Global flags may come anywhere; they are removed from argv here. */
    int n = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--json") == 0) {
            c.json = true;
        } else if (strcmp(a, "--url") == 0 || strncmp(a, "--url=", 6) == 0) {
            c.url = a[5] == '=' ? a + 6 : i + 1 < argc ? argv[++i] : NULL;
            if (!c.url || !*c.url)
                die_usage("--url needs a value");
            if (strncmp(c.url, "http://", 7) != 0 && strncmp(c.url, "https://", 8) != 0)
                die_usage("--url must start with http:// or https:// (got '%s')", c.url);
        } else if (strcmp(a, "--timeout") == 0 || strncmp(a, "--timeout=", 10) == 0) {
            const char *v = a[9] == '=' ? a + 10 : i + 1 < argc ? argv[++i] : "";
            char *end;
            long t = strtol(v, &end, 10);
            if (!*v || *end || t <= 0 || t > 86400)
                die_usage("--timeout needs a number of seconds (1-86400)");
            c.timeout_s = t;
        } else if (strcmp(a, "--user") == 0 || strcmp(a, "--cacert") == 0) {
            if (i + 1 >= argc || !*argv[i + 1])
                die_usage("%s needs a value", a);
            if (a[2] == 'u') {
                c.user = argv[++i];
                if (!strchr(c.user, ':'))
                    die_usage("--user wants NAME:PASSWORD");
            } else {
                c.cacert = argv[++i];
            }
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--version") == 0) {
            printf("leakwatch %s\n", LW_VERSION);
            return 0;
        } else {
            argv[n++] = argv[i];
        }
    }
    argc = n;
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "check") == 0)
        return cmd_check(argc, argv, 2);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "leakwatch: cannot initialise libcurl\n");
        return 1;
    }
    int rc;
    if (strcmp(cmd, "targets") == 0)
        rc = cmd_targets(&c, argc, argv, 2);
    else if (strcmp(cmd, "profiles") == 0)
        rc = cmd_profiles(&c, argc, argv, 2);
    else if (strcmp(cmd, "diff") == 0)
        rc = cmd_diff(&c, argc, argv, 2);
    else if (strcmp(cmd, "merge") == 0)
        rc = cmd_merge(&c, argc, argv, 2);
    else if (strcmp(cmd, "series") == 0)
        rc = cmd_series(&c, argc, argv, 2);
    else if (strcmp(cmd, "leaks") == 0)
        rc = cmd_leaks(&c, argc, argv, 2);
    else if (strcmp(cmd, "alerts") == 0)
        rc = cmd_alerts(&c, argc, argv, 2);
    else
        die_usage("unknown command '%s'", cmd);
    curl_global_cleanup();
    return rc;
}
