/* replay_main.c — runs stored inputs through a fuzz target's
 * LLVMFuzzerTestOneInput() without libFuzzer, so that the normal (gcc,
 * ASan+UBSan) test suite replays the seed corpus and every crash ever found.
 *
 * Usage: fuzz_replay_<target> PATH... [-o PATH...]
 * Each PATH is a file or a directory (its regular files, sorted by name,
 * dot files skipped). Paths after -o are optional and may be missing (a
 * target with no regression yet). Every input is named on stdout before it
 * runs, so a sanitizer report follows the name of the input that caused it.
 * Exits 1 when a required path is missing or unreadable or when no input
 * was found at all; a bug in the target aborts.
 */
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

#define REPLAY_MAX_INPUT_BYTES ((size_t)64 << 20)

static int run_file(const char *path)
{
    int rc = -1;
    FILE *f = fopen(path, "rb");
    unsigned char *data = NULL;
    if (!f) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    size_t cap = 4096, len = 0;
    data = malloc(cap);
    if (!data)
        goto out;
    for (;;) {
        size_t got = fread(data + len, 1, cap - len, f);
        len += got;
        if (len < cap)
            break;
        if (cap >= REPLAY_MAX_INPUT_BYTES) {
            fprintf(stderr, "replay: %s: larger than %zu bytes\n", path, REPLAY_MAX_INPUT_BYTES);
            goto out;
        }
        unsigned char *bigger = realloc(data, cap * 2);
        if (!bigger)
            goto out;
        data = bigger;
        cap *= 2;
    }
    if (ferror(f)) {
        fprintf(stderr, "replay: %s: read error\n", path);
        goto out;
    }
    printf("replay: %s (%zu bytes)\n", path, len);
    fflush(stdout);
    /* A copy of exactly len bytes, so that over-reads hit the redzone. */
    unsigned char *exact = malloc(len ? len : 1);
    if (!exact)
        goto out;
    memcpy(exact, data, len);
    LLVMFuzzerTestOneInput(exact, len);
    free(exact);
    rc = 0;
out:
    free(data);
    fclose(f);
    return rc;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Runs every regular file of dir; returns the count or -1. */
static long run_dir(const char *dir)
{
    long count = -1;
    char **names = NULL;
    size_t n = 0, cap = 0;
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "replay: %s: %s\n", dir, strerror(errno));
        return -1;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 64;
            char **bigger = realloc(names, ncap * sizeof(*names));
            if (!bigger)
                goto out;
            names = bigger;
            cap = ncap;
        }
        if (!(names[n] = strdup(e->d_name)))
            goto out;
        n++;
    }
    if (n)
        qsort(names, n, sizeof(*names), cmp_names);
    count = 0;
    for (size_t i = 0; i < n; i++) {
        char path[4096];
        struct stat st;
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        if (run_file(path) != 0) {
            count = -1;
            goto out;
        }
        count++;
    }
out:
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    closedir(d);
    return count;
}

int main(int argc, char **argv)
{
    bool optional = false;
    long total = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-o") == 0) {
            optional = true;
            continue;
        }
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            if (optional && errno == ENOENT) {
                printf("replay: %s: absent (optional)\n", argv[i]);
                continue;
            }
            fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
            return 1;
        }
        long n = S_ISDIR(st.st_mode) ? run_dir(argv[i]) : (run_file(argv[i]) == 0 ? 1 : -1);
        if (n < 0)
            return 1;
        printf("replay: %ld inputs from %s\n", n, argv[i]);
        total += n;
    }
    if (total == 0) {
        fprintf(stderr, "replay: no input found\n");
        return 1;
    }
    printf("replay: %ld inputs, all passed\n", total);
    return 0;
}
