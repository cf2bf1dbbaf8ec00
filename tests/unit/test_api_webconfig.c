/* test_api_webconfig.c — unit tests of the web config loader and password
 * checks (api/webconfig.h): accepted files, relative paths, and the message
 * of every kind of bad file. */
#include <crypt.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "webconfig.h"

static char g_dir[256];

static const char *write_file(const char *name, const char *text)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

static int setup(void **state)
{
    (void)state;
    snprintf(g_dir, sizeof g_dir, "%s/test-work/webconfig-XXXXXX", LW_BINARY_DIR);
    char parent[300];
    snprintf(parent, sizeof parent, "%s/test-work", LW_BINARY_DIR);
    mkdir(parent, 0755);
    assert_non_null(mkdtemp(g_dir));
    write_file("cert.pem", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
    write_file("key.pem", "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n");
    write_file("notpem.txt", "hello\n");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    const char *files[] = {"cert.pem", "key.pem", "notpem.txt", "w.yml"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char p[512];
        snprintf(p, sizeof p, "%s/%s", g_dir, files[i]);
        unlink(p);
    }
    rmdir(g_dir);
    return 0;
}

static char *bcrypt(const char *password)
{
    char salt[CRYPT_GENSALT_OUTPUT_SIZE];
    struct crypt_data *cd = calloc(1, sizeof *cd);
    assert_non_null(cd);
    assert_non_null(crypt_gensalt_rn("$2b$", 4, NULL, 0, salt, sizeof salt));
    char *h = strdup(crypt_r(password, salt, cd));
    free(cd);
    return h;
}

static void loads_tls_and_users(void **state)
{
    (void)state;
    char *h = bcrypt("s3cret");
    char text[512];
    snprintf(text, sizeof text,
             "tls_server_config:\n  cert_file: cert.pem\n  key_file: %s/key.pem\n"
             "basic_auth_users:\n  alice: '%s'\n  bob: '%s'\n",
             g_dir, h, h);
    const char *path = write_file("w.yml", text);
    api_webconfig wc;
    char err[256] = "";
    int rc = api_webconfig_load(path, &wc, err, sizeof err);
    printf("load -> %d %s\n", rc, err);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(wc.tls_cert_pem, "BEGIN CERTIFICATE"));
    assert_non_null(strstr(wc.tls_key_pem, "BEGIN PRIVATE KEY"));
    assert_int_equal(wc.n_users, 2);
    assert_true(api_webconfig_check(&wc, "alice", "s3cret"));
    assert_true(api_webconfig_check(&wc, "alice", "s3cret")); /* from the cache */
    assert_true(api_webconfig_check(&wc, "bob", "s3cret"));
    assert_false(api_webconfig_check(&wc, "alice", "s3cret "));
    assert_false(api_webconfig_check(&wc, "alice", ""));
    assert_false(api_webconfig_check(&wc, "carol", "s3cret"));
    assert_false(api_webconfig_check(&wc, NULL, NULL));
    api_webconfig_cleanup(&wc);
    free(h);
}

static void empty_file_means_nothing(void **state)
{
    (void)state;
    api_webconfig wc;
    char err[256] = "";
    assert_int_equal(api_webconfig_load(write_file("w.yml", ""), &wc, err, sizeof err), 0);
    assert_null(wc.tls_cert_pem);
    assert_int_equal(wc.n_users, 0);
    api_webconfig_cleanup(&wc);
}

static void bad_files(void **state)
{
    (void)state;
    struct {
        const char *text;
        const char *msg;
    } bad[] = {
        {"tls_server_config:\n  cert_file: cert.pem\n", "w.yml:2: tls_server_config needs cert_file and key_file"},
        {"tls_server_config:\n  cert_file: cert.pem\n  key_file: missing.pem\n", "cannot read"},
        {"tls_server_config:\n  cert_file: notpem.txt\n  key_file: key.pem\n", "notpem.txt is not a PEM file"},
        {"tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n  client_ca_file: x\n",
         "w.yml:4: tls_server_config: unsupported field \"client_ca_file\""},
        {"tls_server_config: [1]\n", "tls_server_config must be a mapping"},
        {"basic_auth_users:\n  bob: plaintext\n", "w.yml:2: basic_auth_users: the password must be a bcrypt hash"},
        {"basic_auth_users:\n  'a:b': $2y$10$x\n", "a user name cannot contain ':'"},
        {"basic_auth_users: alice\n", "basic_auth_users must be a mapping"},
        {"http_server_config:\n  http2: true\n", "w.yml:1: unsupported field \"http_server_config\""},
        {"- a\n- b\n", "the web config must be a mapping"},
        {"basic_auth_users:\n  alice: [\n", "w.yml:"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        api_webconfig wc;
        char err[256] = "";
        int rc = api_webconfig_load(write_file("w.yml", bad[i].text), &wc, err, sizeof err);
        printf("web config #%zu -> rc %d \"%s\" (want \"%s\")\n", i, rc, err, bad[i].msg);
        assert_int_equal(rc, -EINVAL);
        assert_non_null(strstr(err, bad[i].msg));
        assert_null(wc.tls_cert_pem);
        assert_int_equal(wc.n_users, 0);
    }
    api_webconfig wc;
    char err[256] = "";
    char path[512];
    snprintf(path, sizeof path, "%s/nope.yml", g_dir);
    assert_int_equal(api_webconfig_load(path, &wc, err, sizeof err), -ENOENT);
    printf("missing file -> \"%s\"\n", err);
    assert_non_null(strstr(err, "nope.yml: No such file or directory"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(loads_tls_and_users),
        cmocka_unit_test(empty_file_means_nothing),
        cmocka_unit_test(bad_files),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
