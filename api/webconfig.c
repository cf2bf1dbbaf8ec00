/* webconfig.c — exporter-toolkit web configuration: YAML loading with
 * libyaml, PEM files, bcrypt checks with a success cache (see webconfig.h).
 */
#include "webconfig.h"
#include "lw_util.h"

#include <crypt.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#define MAX_FILE_BYTES ((size_t)1 << 20)

/* Read a whole (small) file as NUL-terminated text into *out. */
static int read_text(const char *path, char **out, size_t *len_out)
{
    lw_buf b;
    lw_buf_init(&b, MAX_FILE_BYTES);
    int rc = lw_buf_read_file(&b, path);
    if (rc) {
        lw_buf_cleanup(&b);
        return rc;
    }
    *out = lw_buf_detach(&b, len_out);
    return 0;
}

typedef struct loader {
    const char *path;
    yaml_document_t *doc;
    char *err;
    size_t err_len;
} loader;

static int fail_at(loader *l, const yaml_node_t *n, const char *what)
{
    lw_set_err(l->err, l->err_len, "%s:%lu: %s", l->path, n ? (unsigned long)n->start_mark.line + 1 : 0UL, what);
    return -EINVAL;
}

static const char *scalar(const yaml_node_t *n)
{
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

/* path relative to the web config file's directory unless absolute. */
static int resolve(const char *base, const char *rel, char *out, size_t out_len)
{
    if (rel[0] == '/') {
        if ((size_t)snprintf(out, out_len, "%s", rel) >= out_len)
            return -ENAMETOOLONG;
        return 0;
    }
    const char *slash = strrchr(base, '/');
    int dir_len = slash ? (int)(slash - base) : 1;
    if ((size_t)snprintf(out, out_len, "%.*s/%s", dir_len, slash ? base : ".", rel) >= out_len)
        return -ENAMETOOLONG;
    return 0;
}

static int load_pem(loader *l, const yaml_node_t *n, const char *file, char **out)
{
    char path[4096];
    char msg[512];
    if (resolve(l->path, file, path, sizeof path))
        return fail_at(l, n, "path too long");
    size_t len;
    int rc = read_text(path, out, &len);
    if (rc) {
        snprintf(msg, sizeof msg, "cannot read %.300s: %s", path, strerror(-rc));
        return fail_at(l, n, msg);
    }
    if (!strstr(*out, "-----BEGIN ")) {
        snprintf(msg, sizeof msg, "%.300s is not a PEM file", path);
        return fail_at(l, n, msg);
    }
    return 0;
}

static int load_tls(loader *l, const yaml_node_t *map, api_webconfig *wc)
{
    if (map->type != YAML_MAPPING_NODE)
        return fail_at(l, map, "tls_server_config must be a mapping");
    const char *cert = NULL, *key = NULL;
    const yaml_node_t *cert_node = map, *key_node = map;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        const yaml_node_t *k = yaml_document_get_node(l->doc, p->key);
        const yaml_node_t *v = yaml_document_get_node(l->doc, p->value);
        const char *name = scalar(k);
        if (!name || !scalar(v))
            return fail_at(l, k, "tls_server_config: expected key: value");
        if (strcmp(name, "cert_file") == 0) {
            cert = scalar(v);
            cert_node = v;
        } else if (strcmp(name, "key_file") == 0) {
            key = scalar(v);
            key_node = v;
        } else {
            char msg[160];
            snprintf(msg, sizeof msg, "tls_server_config: unsupported field \"%.64s\"", name);
            return fail_at(l, k, msg);
        }
    }
    if (!cert || !*cert || !key || !*key)
        return fail_at(l, map, "tls_server_config needs cert_file and key_file");
    int rc = load_pem(l, cert_node, cert, &wc->tls_cert_pem);
    return rc ? rc : load_pem(l, key_node, key, &wc->tls_key_pem);
}

static int load_users(loader *l, const yaml_node_t *map, api_webconfig *wc)
{
    if (map->type != YAML_MAPPING_NODE)
        return fail_at(l, map, "basic_auth_users must be a mapping of user: bcrypt hash");
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        const yaml_node_t *k = yaml_document_get_node(l->doc, p->key);
        const yaml_node_t *v = yaml_document_get_node(l->doc, p->value);
        const char *user = scalar(k), *hash = scalar(v);
        if (!user || !*user || !hash)
            return fail_at(l, k, "basic_auth_users: expected user: bcrypt hash");
        if (strchr(user, ':'))
            return fail_at(l, k, "basic_auth_users: a user name cannot contain ':'");
        if (strncmp(hash, "$2a$", 4) != 0 && strncmp(hash, "$2b$", 4) != 0 && strncmp(hash, "$2y$", 4) != 0)
            return fail_at(l, v, "basic_auth_users: the password must be a bcrypt hash ($2a$, $2b$ or $2y$)");
        if (wc->n_users == API_WEBCONFIG_MAX_USERS)
            return fail_at(l, k, "basic_auth_users: too many users");
        api_webconfig_user *u = &wc->users[wc->n_users];
        u->name = strdup(user);
        u->hash = strdup(hash);
        if (!u->name || !u->hash) {
            free(u->name);
            free(u->hash);
            return -ENOMEM;
        }
        wc->n_users++;
    }
    return 0;
}

int api_webconfig_load(const char *path, api_webconfig *wc, char *err, size_t err_len)
{
    memset(wc, 0, sizeof *wc);
    pthread_mutex_init(&wc->cache_lock, NULL);
    char *text = NULL;
    size_t len = 0;
    int rc = read_text(path, &text, &len);
    if (rc) {
        lw_set_err(err, err_len, "%s: %s", path, strerror(-rc));
        api_webconfig_cleanup(wc);
        return rc == -E2BIG ? -EINVAL : rc;
    }
    yaml_parser_t parser;
    yaml_document_t doc;
    bool have_doc = false;
    loader l = {.path = path, .doc = &doc, .err = err, .err_len = err_len};
    if (!yaml_parser_initialize(&parser)) {
        rc = -ENOMEM;
        goto out_text;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        lw_set_err(err, err_len, "%s:%lu: %s", path, (unsigned long)parser.problem_mark.line + 1,
                parser.problem ? parser.problem : "YAML error");
        rc = -EINVAL;
        goto out_parser;
    }
    have_doc = true;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root || (root->type == YAML_SCALAR_NODE && !*scalar(root)))
        goto out_parser; /* an empty file: no TLS, no authentication */
    if (root->type != YAML_MAPPING_NODE) {
        rc = fail_at(&l, root, "the web config must be a mapping");
        goto out_parser;
    }
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; !rc && p < root->data.mapping.pairs.top; p++) {
        const yaml_node_t *k = yaml_document_get_node(&doc, p->key);
        const yaml_node_t *v = yaml_document_get_node(&doc, p->value);
        const char *name = scalar(k);
        if (name && strcmp(name, "tls_server_config") == 0)
            rc = load_tls(&l, v, wc);
        else if (name && strcmp(name, "basic_auth_users") == 0)
            rc = load_users(&l, v, wc);
        else {
            char msg[160];
            snprintf(msg, sizeof msg, "unsupported field \"%.64s\" (leakwatch supports tls_server_config and "
                                      "basic_auth_users)",
                     name ? name : "?");
            rc = fail_at(&l, k, msg);
        }
    }
out_parser:
    if (have_doc)
        yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
out_text:
    free(text);
    if (rc)
        api_webconfig_cleanup(wc);
    return rc;
}

void api_webconfig_cleanup(api_webconfig *wc)
{
    free(wc->tls_cert_pem);
    free(wc->tls_key_pem);
    wc->tls_cert_pem = wc->tls_key_pem = NULL;
    for (size_t i = 0; i < wc->n_users; i++) {
        free(wc->users[i].name);
        free(wc->users[i].hash);
    }
    wc->n_users = 0;
    for (size_t i = 0; i < API_WEBCONFIG_CACHE; i++) {
        free(wc->cache[i]);
        wc->cache[i] = NULL;
    }
}

/* Compare without an early exit on the first differing byte. */
static bool same(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned char d = la != lb;
    for (size_t i = 0; i < la && i < lb; i++)
        d |= (unsigned char)(a[i] ^ b[i]);
    return d == 0;
}

bool api_webconfig_check(api_webconfig *wc, const char *user, const char *password)
{
    if (!user || !password)
        return false;
    const api_webconfig_user *u = NULL;
    for (size_t i = 0; i < wc->n_users; i++) {
        if (strcmp(wc->users[i].name, user) == 0)
            u = &wc->users[i];
    }
    if (!u)
        return false;
    char *key = NULL;
    if (asprintf(&key, "%s\n%s", user, password) < 0)
        return false;
    bool ok = false;
    pthread_mutex_lock(&wc->cache_lock);
    for (size_t i = 0; i < API_WEBCONFIG_CACHE && !ok; i++)
        ok = wc->cache[i] && same(wc->cache[i], key);
    pthread_mutex_unlock(&wc->cache_lock);
    if (ok) {
        free(key);
        return true;
    }
    struct crypt_data *cd = calloc(1, sizeof *cd);
    if (cd) {
        const char *h = crypt_r(password, u->hash, cd);
        ok = h && h[0] != '*' && same(h, u->hash);
        free(cd);
    }
    if (ok) {
        pthread_mutex_lock(&wc->cache_lock);
        free(wc->cache[wc->cache_next]);
        wc->cache[wc->cache_next] = key;
        wc->cache_next = (wc->cache_next + 1) % API_WEBCONFIG_CACHE;
        key = NULL;
        pthread_mutex_unlock(&wc->cache_lock);
    }
    free(key);
    return ok;
}
