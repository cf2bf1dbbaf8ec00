/* file_sd.c — file-based target discovery (see file_sd.h).
 *
 * State per matched file: its identity at the last read (mtime, size,
 * inode) and the groups parsed from it, in their own arena. Polling is cheap
 * (a glob and a stat per file), so the collector polls about once a second
 * and changes show up quickly without inotify.
 */
#include "file_sd.h"

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lw_log.h"

#define MAX_SD_FILE_BYTES ((size_t)16 << 20)

typedef struct sd_file {
    char *path;
    int64_t mtime_ns;
    int64_t size;
    uint64_t ino;
    lw_target_group *groups;
    size_t n_groups;
    struct lw_arena *arena;
    bool seen; /* matched by the current poll */
} sd_file;

struct coll__fsd {
    const lw_file_sd_config *cfg;
    char *job;
    char *scheme;
    sd_file *files;
    size_t n_files;
    int64_t next_refresh_ns;
};

static void file_clear(sd_file *sf)
{
    lw_arena_free(sf->arena);
    sf->arena = NULL;
    sf->groups = NULL;
    sf->n_groups = 0;
}

/* Re-read one file; on failure keep the old groups. Returns 1 if changed. */
static int reload_file(coll__fsd *f, sd_file *sf)
{
    lw_buf b;
    lw_buf_init(&b, MAX_SD_FILE_BYTES);
    int rc = lw_buf_read_file(&b, sf->path);
    int changed = 0;
    if (rc) {
        lw_log(LW_LOG_ERROR, "file_sd: cannot read target file", "job", f->job, "file", sf->path,
               "err", rc == -E2BIG ? "file too large" : strerror(-rc), NULL);
        goto out;
    }
    lw_target_group *groups;
    size_t n;
    struct lw_arena *arena;
    char err[LW_CONFIG_ERR_LEN];
    rc = lw_file_sd_parse(sf->path, b.data ? b.data : "", b.len, f->scheme, &groups, &n, &arena, err,
                          sizeof(err));
    if (rc) {
        lw_log(LW_LOG_ERROR, "file_sd: invalid target file, keeping its previous targets", "job",
               f->job, "err", err, NULL);
        goto out;
    }
    file_clear(sf);
    sf->groups = groups;
    sf->n_groups = n;
    sf->arena = arena;
    changed = 1;
    char cnt[32];
    snprintf(cnt, sizeof(cnt), "%zu", n);
    lw_log(LW_LOG_INFO, "file_sd: loaded target file", "job", f->job, "file", sf->path, "groups", cnt,
           NULL);
out:
    lw_buf_cleanup(&b);
    return changed;
}

static int cmp_files(const void *a, const void *b)
{
    return strcmp(((const sd_file *)a)->path, ((const sd_file *)b)->path);
}

int coll__fsd_poll(coll__fsd *f, int64_t now_ns)
{
    bool full = now_ns >= f->next_refresh_ns;
    if (full)
        f->next_refresh_ns = now_ns + f->cfg->refresh_interval_ns;
    int changed = 0;
    for (size_t i = 0; i < f->n_files; i++)
        f->files[i].seen = false;
    for (size_t i = 0; i < f->cfg->n_files; i++) {
        glob_t g;
        memset(&g, 0, sizeof(g));
        int grc = glob(f->cfg->files[i], GLOB_NOSORT, NULL, &g);
        if (grc != 0 && grc != GLOB_NOMATCH) {
            lw_log(LW_LOG_ERROR, "file_sd: glob failed", "job", f->job, "pattern", f->cfg->files[i],
                   NULL);
        }
        for (size_t j = 0; grc == 0 && j < g.gl_pathc; j++) {
            const char *path = g.gl_pathv[j];
            struct stat st;
            if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
                continue;
            sd_file *sf = NULL;
            for (size_t k = 0; k < f->n_files; k++)
                if (strcmp(f->files[k].path, path) == 0)
                    sf = &f->files[k];
            if (!sf) {
                sd_file *nf = realloc(f->files, (f->n_files + 1) * sizeof(*nf));
                if (!nf)
                    continue;
                f->files = nf;
                sf = &f->files[f->n_files];
                memset(sf, 0, sizeof(*sf));
                if (!(sf->path = strdup(path)))
                    continue;
                sf->mtime_ns = -1;
                f->n_files++;
            }
            if (sf->seen)
                continue; /* matched by two patterns */
            sf->seen = true;
            int64_t mtime = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
            if (full || mtime != sf->mtime_ns || (int64_t)st.st_size != sf->size ||
                (uint64_t)st.st_ino != sf->ino) {
                sf->mtime_ns = mtime;
                sf->size = (int64_t)st.st_size;
                sf->ino = (uint64_t)st.st_ino;
                changed |= reload_file(f, sf);
            }
        }
        globfree(&g);
    }
    /* Files that vanished lose their targets. */
    size_t w = 0;
    for (size_t i = 0; i < f->n_files; i++) {
        if (f->files[i].seen) {
            f->files[w++] = f->files[i];
            continue;
        }
        if (f->files[i].n_groups)
            changed = 1;
        lw_log(LW_LOG_INFO, "file_sd: target file gone", "job", f->job, "file", f->files[i].path,
               NULL);
        file_clear(&f->files[i]);
        free(f->files[i].path);
    }
    f->n_files = w;
    if (changed && f->n_files > 1)
        qsort(f->files, f->n_files, sizeof(*f->files), cmp_files);
    return changed;
}

int coll__fsd_new(const lw_file_sd_config *cfg, const char *job, const char *scheme, coll__fsd **out)
{
    coll__fsd *f = calloc(1, sizeof(*f));
    if (!f)
        return -ENOMEM;
    f->cfg = cfg;
    f->job = strdup(job);
    f->scheme = strdup(scheme);
    if (!f->job || !f->scheme) {
        coll__fsd_free(f);
        return -ENOMEM;
    }
    f->next_refresh_ns = 0;
    *out = f;
    return 0;
}

void coll__fsd_foreach(const coll__fsd *f, void (*fn)(void *arg, const lw_target_group *g), void *arg)
{
    for (size_t i = 0; i < f->n_files; i++)
        for (size_t j = 0; j < f->files[i].n_groups; j++)
            fn(arg, &f->files[i].groups[j]);
}

void coll__fsd_free(coll__fsd *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->n_files; i++) {
        file_clear(&f->files[i]);
        free(f->files[i].path);
    }
    free(f->files);
    free(f->job);
    free(f->scheme);
    free(f);
}
