/* file_sd.h — internal to collector/: watches the files of one
 * file_sd_config and keeps their parsed target groups.
 *
 * Files (globs expanded with glob(3)) are stat'ed on every poll; a file whose
 * mtime, size or inode changed, or every file when refresh_interval has
 * passed, is re-read. A file that fails to read or parse is logged and keeps
 * its previous groups (as Prometheus does); a file that disappears loses them.
 * Not thread-safe: used by the collector's loop thread only.
 */
#ifndef LW_FILE_SD_H
#define LW_FILE_SD_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"

typedef struct coll__fsd coll__fsd;

/* A watcher for cfg (borrowed, must outlive the watcher) of job `job`;
 * scheme picks default ports. The first coll__fsd_poll() reads the files.
 * 0 or -ENOMEM. */
int coll__fsd_new(const lw_file_sd_config *cfg, const char *job, const char *scheme,
                  coll__fsd **out) __attribute__((warn_unused_result));

/* Re-check the files at monotonic time now_ns. Returns 1 when the set of
 * groups changed, 0 when not. Cannot fail (errors are logged). */
int coll__fsd_poll(coll__fsd *f, int64_t now_ns);

/* Call fn for every current group, in file name order. */
void coll__fsd_foreach(const coll__fsd *f, void (*fn)(void *arg, const lw_target_group *g),
                       void *arg);

void coll__fsd_free(coll__fsd *f);

#endif
