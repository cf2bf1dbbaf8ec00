/* webconfig.h — the exporter-toolkit web configuration file of the API
 * (--web.config.file): TLS and HTTP basic authentication.
 *
 * Accepted YAML (the subset of Prometheus' exporter-toolkit format that
 * leakwatch implements; any other key is an error, like exporter-toolkit):
 *
 *   tls_server_config:
 *     cert_file: server.crt      # PEM; relative paths are relative to this file
 *     key_file: server.key
 *   basic_auth_users:
 *     alice: $2y$10$...          # bcrypt hashes (htpasswd -B, or Python bcrypt)
 *
 * Both sections are optional; an empty file means plain HTTP without
 * authentication. The file is read once, when the server starts.
 *
 * Password checks use crypt_r() (libxcrypt's bcrypt); since bcrypt is slow
 * on purpose, a successful (user, password) pair is remembered in a small
 * cache so that a scraper does not pay the cost on every request.
 */
#ifndef LW_API_WEBCONFIG_H
#define LW_API_WEBCONFIG_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "lw_buf.h"

#define API_WEBCONFIG_MAX_USERS 64
#define API_WEBCONFIG_CACHE 16

typedef struct api_webconfig_user {
    char *name;
    char *hash; /* bcrypt hash as in the file */
} api_webconfig_user;

typedef struct api_webconfig {
    char *tls_cert_pem; /* NULL = no TLS; NUL-terminated PEM text */
    char *tls_key_pem;
    api_webconfig_user users[API_WEBCONFIG_MAX_USERS];
    size_t n_users; /* 0 = no authentication */
    pthread_mutex_t cache_lock;
    char *cache[API_WEBCONFIG_CACHE]; /* "user\npassword" of recent successful checks */
    size_t cache_next;
} api_webconfig;

/* Read and check the file at path into wc (which the caller then owns and
 * releases with api_webconfig_cleanup). 0, or -EINVAL / -ENOENT / -ENOMEM
 * with "FILE:LINE: reason" in err. wc is left empty on failure. */
int api_webconfig_load(const char *path, api_webconfig *wc, char *err, size_t err_len) LW_WUR;

/* Release everything wc owns. Safe on a zeroed struct. */
void api_webconfig_cleanup(api_webconfig *wc);

/* True when user/password match one of the configured users. Thread-safe. */
bool api_webconfig_check(api_webconfig *wc, const char *user, const char *password);

#endif
