/* store.c — opening, locking and schema of the leakwatch database, plus the
 * small queries (targets, profile listings, series, daemon state).
 *
 * Opening never writes to a file that is not ours: the first 100 bytes are
 * read and checked (SQLite magic and our application_id) before SQLite
 * opens it read-write, and before the lock file is created. A new database
 * is created in rollback-journal mode in one transaction (tables, indexes,
 * application_id, user_version), so a crash during creation leaves either
 * nothing or a complete, stamped file; only then is it switched to WAL.
 *
 * Durability: WAL with synchronous=NORMAL. A committed transaction is in the
 * WAL file before COMMIT returns, so it survives the process being killed
 * (kill -9, OOM, crash); only a power loss or kernel crash can drop the
 * last transactions before the next checkpoint, and never corrupts the
 * file. FULL would fsync on every commit (hundreds per second with many
 * targets) for protection the sidecar does not need.
 */
#include "store_int.h"
#include "lw_util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <libdeflate.h>

/* STORE_STACK_INSERT_ROWS (32) rows of (id, hash, frames) parameters. */
#define STACK_ROW "(?, ?, ?)"
#define STACK_ROWS_4 STACK_ROW ", " STACK_ROW ", " STACK_ROW ", " STACK_ROW
#define STACK_ROWS_16 STACK_ROWS_4 ", " STACK_ROWS_4 ", " STACK_ROWS_4 ", " STACK_ROWS_4
#define STACK_ROWS_32 STACK_ROWS_16 ", " STACK_ROWS_16

static const char *const sql_text[SQL_COUNT_] = {
    [SQL_BEGIN] = "BEGIN IMMEDIATE",
    [SQL_COMMIT] = "COMMIT",
    [SQL_ROLLBACK] = "ROLLBACK",
    [SQL_STRING_FIND] = "SELECT id, value FROM strings WHERE hash = ?1",
    [SQL_STRING_INSERT] = "INSERT INTO strings(hash, value) VALUES (?1, ?2)",
    [SQL_STRING_GET] = "SELECT value FROM strings WHERE id = ?1",
    [SQL_FUNCTION_FIND] = "SELECT id FROM functions WHERE name = ?1 AND system_name = ?2 "
                          "AND file = ?3 AND start_line = ?4",
    [SQL_FUNCTION_INSERT] = "INSERT INTO functions(name, system_name, file, start_line) "
                            "VALUES (?1, ?2, ?3, ?4)",
    [SQL_FUNCTION_GET] = "SELECT n.value, sn.value, f.value, fn.start_line FROM functions fn "
                         "LEFT JOIN strings n ON n.id = fn.name "
                         "LEFT JOIN strings sn ON sn.id = fn.system_name "
                         "LEFT JOIN strings f ON f.id = fn.file WHERE fn.id = ?1",
    [SQL_STACK_FIND] = "SELECT id, frames FROM stacks WHERE hash = ?1",
    [SQL_STACK_INSERT] = "INSERT INTO stacks(id, hash, frames) VALUES (?, ?, ?)",
    [SQL_STACK_INSERT_MANY] = "INSERT INTO stacks(id, hash, frames) VALUES " STACK_ROWS_32,
    [SQL_STACK_HASHES] = "SELECT id, hash FROM stacks",
    [SQL_STACK_LAST_ID] = "SELECT max((SELECT coalesce(max(id), 0) FROM stacks), "
                          "coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'stacks'), 0), "
                          "(SELECT coalesce(max(last_id), 0) FROM stack_chunks))",
    [SQL_CHUNK_FIND] = "SELECT first_id, last_id, data FROM stack_chunks WHERE first_id <= ?1 "
                       "ORDER BY first_id DESC LIMIT 1",
    [SQL_CHUNK_INSERT] = "INSERT INTO stack_chunks(first_id, last_id, data) VALUES (?1, ?2, ?3)",
    [SQL_STACK_GET] = "SELECT frames FROM stacks WHERE id = ?1",
    [SQL_SET_FIND] = "SELECT id FROM sample_sets WHERE hash = ?1",
    [SQL_SET_INSERT] = "INSERT INTO sample_sets(hash, n_samples, base_id, data) "
                       "VALUES (?1, ?2, ?3, ?4)",
    [SQL_SET_GET] = "SELECT data, base_id FROM sample_sets WHERE id = ?1",
    [SQL_SET_LATEST] = "SELECT s.id, s.base_id, (SELECT length(k.data) FROM sample_sets k "
                       "WHERE k.id = coalesce(s.base_id, s.id)) FROM profiles p JOIN sample_sets s "
                       "ON s.id = p.sample_set_id WHERE p.target_id = ?1 AND p.type = ?2 "
                       "ORDER BY p.time_ns DESC, p.id DESC LIMIT 1",
    [SQL_META_FIND] = "SELECT id, data FROM profile_meta WHERE hash = ?1",
    [SQL_META_INSERT] = "INSERT INTO profile_meta(hash, sample_types, data) VALUES (?1, ?2, ?3)",
    [SQL_PROFILE_INSERT] = "INSERT INTO profiles(target_id, type, time_ns, profile_time_delta_ns, "
                           "duration_ns, period, meta_id, sample_set_id, totals) "
                           "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
#define PROFILE_COLS                                                                     \
    "p.id, p.target_id, p.type, p.time_ns, p.duration_ns, s.n_samples, m.sample_types, " \
    "p.totals"
#define PROFILE_FROM                                                                     \
    " FROM profiles p JOIN profile_meta m ON m.id = p.meta_id "                          \
    "JOIN sample_sets s ON s.id = p.sample_set_id "
    [SQL_PROFILE_LOAD] = "SELECT " PROFILE_COLS ", p.profile_time_delta_ns, p.period, m.data, "
                         "p.sample_set_id" PROFILE_FROM "WHERE p.id = ?1",
    [SQL_PROFILE_INFO] = "SELECT " PROFILE_COLS PROFILE_FROM "WHERE p.id = ?1",
    [SQL_PROFILE_AT] = "SELECT " PROFILE_COLS PROFILE_FROM
                       "WHERE p.target_id = ?1 AND p.type = ?2 AND p.time_ns <= ?3 "
                       "ORDER BY p.time_ns DESC, p.id DESC LIMIT 1",
    [SQL_PROFILE_SET] = "SELECT sample_set_id FROM profiles WHERE id = ?1",
    [SQL_SERIES_INSERT] = "INSERT OR REPLACE INTO series(target_id, signal, time_ns, value) "
                          "VALUES (?1, ?2, ?3, ?4)",
    [SQL_SERIES_GET] = "SELECT time_ns, value FROM series WHERE target_id = ?1 AND signal = ?2 "
                       "AND time_ns >= ?3 AND time_ns <= ?4 ORDER BY time_ns",
    [SQL_TARGET_FIND] = "SELECT id FROM targets WHERE labels_json = ?1",
    [SQL_TARGET_INSERT] = "INSERT INTO targets(job, instance, labels_json) VALUES (?1, ?2, ?3)",
    [SQL_TARGETS_LIST] = "SELECT id, job, instance, labels_json FROM targets ORDER BY id",
    [SQL_STATE_PUT] = "INSERT OR REPLACE INTO state(key, value) VALUES (?1, ?2)",
    [SQL_STATE_GET] = "SELECT value FROM state WHERE key = ?1",
    [SQL_STATE_DELETE] = "DELETE FROM state WHERE key = ?1",
    [SQL_STATE_LIST] = "SELECT key, value FROM state WHERE substr(key, 1, length(?1)) = ?1 "
                       "ORDER BY key",
    [SQL_PROFILES_COUNT] = "SELECT count(*) FROM profiles",
    [SQL_STACK_SCAN] = "SELECT id, frames FROM stacks WHERE id >= ?1 ORDER BY id",
    [SQL_FUNCTION_SCAN] = "SELECT fn.id, n.value, sn.value, f.value, fn.start_line FROM functions fn "
                          "LEFT JOIN strings n ON n.id = fn.name "
                          "LEFT JOIN strings sn ON sn.id = fn.system_name "
                          "LEFT JOIN strings f ON f.id = fn.file WHERE fn.id >= ?1 ORDER BY fn.id",
};

/* Added in schema 3 (store_stacks.c); an older file gets it when opened
 * for writing. */
#define STACK_CHUNKS_SQL                                                                           \
    "CREATE TABLE stack_chunks(\n"                                                                 \
    "  first_id INTEGER PRIMARY KEY,\n"                                                            \
    "  last_id INTEGER NOT NULL,\n"                                                                \
    "  data BLOB NOT NULL);\n"

/* The schema; see storage/README.md for why each table exists. */
static const char schema_sql[] =
    "CREATE TABLE targets(\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  job TEXT NOT NULL,\n"
    "  instance TEXT NOT NULL,\n"
    "  labels_json TEXT NOT NULL UNIQUE);\n"
    "CREATE TABLE strings(\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  hash INTEGER NOT NULL,\n"
    "  value TEXT NOT NULL);\n"
    "CREATE INDEX strings_hash ON strings(hash);\n"
    "CREATE TABLE functions(\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  name INTEGER NOT NULL,\n"
    "  system_name INTEGER NOT NULL,\n"
    "  file INTEGER NOT NULL,\n"
    "  start_line INTEGER NOT NULL,\n"
    "  UNIQUE(name, system_name, file, start_line));\n"
    "CREATE TABLE stacks(\n"
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,\n"
    "  hash INTEGER NOT NULL,\n"
    "  frames BLOB NOT NULL);\n"
    STACK_CHUNKS_SQL
    "CREATE TABLE sample_sets(\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  hash INTEGER NOT NULL,\n"
    "  n_samples INTEGER NOT NULL,\n"
    "  base_id INTEGER REFERENCES sample_sets(id),\n"
    "  data BLOB NOT NULL);\n"
    "CREATE INDEX sample_sets_hash ON sample_sets(hash);\n"
    "CREATE INDEX sample_sets_base ON sample_sets(base_id);\n"
    "CREATE TABLE profile_meta(\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  hash INTEGER NOT NULL,\n"
    "  sample_types TEXT NOT NULL,\n"
    "  data BLOB NOT NULL);\n"
    "CREATE INDEX profile_meta_hash ON profile_meta(hash);\n"
    "CREATE TABLE profiles(\n"
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,\n"
    "  target_id INTEGER NOT NULL REFERENCES targets(id),\n"
    "  type TEXT NOT NULL,\n"
    "  time_ns INTEGER NOT NULL,\n"
    "  profile_time_delta_ns INTEGER NOT NULL,\n"
    "  duration_ns INTEGER NOT NULL,\n"
    "  period INTEGER NOT NULL,\n"
    "  meta_id INTEGER NOT NULL REFERENCES profile_meta(id),\n"
    "  sample_set_id INTEGER NOT NULL REFERENCES sample_sets(id),\n"
    "  totals BLOB NOT NULL);\n"
    "CREATE INDEX profiles_target_type_time ON profiles(target_id, type, time_ns);\n"
    "CREATE INDEX profiles_sample_set ON profiles(sample_set_id);\n"
    "CREATE INDEX profiles_time ON profiles(time_ns);\n"
    "CREATE TABLE series(\n"
    "  target_id INTEGER NOT NULL,\n"
    "  signal INTEGER NOT NULL,\n"
    "  time_ns INTEGER NOT NULL,\n"
    "  value NUMERIC NOT NULL,\n"
    "  PRIMARY KEY(target_id, signal, time_ns)) WITHOUT ROWID;\n"
    "CREATE TABLE state(\n"
    "  key TEXT PRIMARY KEY,\n"
    "  value TEXT NOT NULL) WITHOUT ROWID;\n";

/* ---- small helpers ------------------------------------------------------ */

int store__errno(int rc)
{
    if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
        return -ENOENT; /* e.g. ingest for a target id that does not exist */
    switch (rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_DONE:
    case SQLITE_ROW:
        return 0;
    case SQLITE_FULL:
        return -ENOSPC;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return -EBUSY;
    case SQLITE_NOMEM:
        return -ENOMEM;
    case SQLITE_READONLY:
        return -EROFS;
    case SQLITE_NOTFOUND:
        return -ENOENT;
    case SQLITE_TOOBIG:
        return -E2BIG;
    case SQLITE_MISUSE:
    case SQLITE_RANGE:
        return -EINVAL;
    default:
        return -EIO;
    }
}

sqlite3_stmt *store__stmt(store__conn *c, enum store__sql which)
{
    sqlite3_stmt *st = c->stmts[which];
    if (!st) {
        if (sqlite3_prepare_v3(c->db, sql_text[which], -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) !=
            SQLITE_OK)
            return NULL;
        c->stmts[which] = st;
        return st;
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return st;
}

int store__exec(sqlite3 *db, const char *sql)
{
    int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    return store__errno(rc);
}

void store__exec_best_effort(sqlite3 *db, const char *sql)
{
    sqlite3_exec(db, sql, NULL, NULL, NULL);
}

int store__query_int(sqlite3 *db, const char *sql, int64_t *out)
{
    sqlite3_stmt *st = NULL;
    int src = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (src == SQLITE_OK) {
        src = sqlite3_step(st);
        if (src == SQLITE_ROW) {
            *out = sqlite3_column_int64(st, 0);
            src = SQLITE_OK;
        }
    }
    sqlite3_finalize(st);
    return store__errno(src) ? store__errno(src) : (src == SQLITE_OK ? 0 : -EIO);
}

uint64_t store__hash(const void *data, size_t n)
{
    const unsigned char *p = data;
    const uint64_t m = 0x9E3779B97F4A7C15ULL;
    uint64_t h = 0x243F6A8885A308D3ULL ^ ((uint64_t)n * m);
    while (n >= 8) {
        uint64_t k;
        memcpy(&k, p, 8);
        k *= 0xff51afd7ed558ccdULL;
        k ^= k >> 32;
        h = (h ^ k) * m;
        h ^= h >> 29;
        p += 8;
        n -= 8;
    }
    uint64_t k = 0;
    memcpy(&k, p, n);
    k ^= (uint64_t)n << 56;
    k *= 0xc4ceb9fe1a85ec53ULL;
    h ^= k ^ (k >> 31);
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

int store__put_uvarint(lw_buf *b, uint64_t v)
{
    unsigned char tmp[10];
    size_t n = 0;
    while (v >= 0x80) {
        tmp[n++] = (unsigned char)(v | 0x80);
        v >>= 7;
    }
    tmp[n++] = (unsigned char)v;
    return lw_buf_append(b, tmp, n);
}

int store__put_svarint(lw_buf *b, int64_t v)
{
    return store__put_uvarint(b, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
}


/* Blobs shorter than this are stored raw: zlib's header and checksum would
 * cost more than they save. */
#define PACK_MIN_BYTES 64

/* Compression is libdeflate's zlib format at level 1 (the bytes zlib's
 * uncompress reads; libdeflate is about twice as fast as zlib at both
 * ends); the writer keeps one compressor, whose tables are big. */
int store__pack(store *s, const void *raw, size_t len, lw_buf *out)
{
    unsigned char fmt = 1;
    lw_buf_reset(out);
    int rc = lw_buf_append(out, &fmt, 1);
    if (!rc)
        rc = store__put_uvarint(out, len);
    if (rc)
        return rc;
    if (len >= PACK_MIN_BYTES) {
        if (!s->packer && !(s->packer = libdeflate_alloc_compressor(1)))
            return -ENOMEM;
        size_t bound = libdeflate_zlib_compress_bound(s->packer, len);
        if ((rc = lw_buf_reserve(out, bound)))
            return rc;
        size_t zlen =
            libdeflate_zlib_compress(s->packer, raw, len, out->data + out->len, bound);
        if (zlen && zlen + 8 < len) {
            out->len += zlen;
            out->data[out->len] = '\0';
            return 0;
        }
    }
    out->data[0] = 0; /* raw: same header, format 0 */
    return lw_buf_append(out, raw, len);
}

int store__unpack(const void *blob, size_t len, lw_buf *out)
{
    const unsigned char *p = blob;
    size_t pos = 1;
    uint64_t raw_len;
    lw_buf_reset(out);
    if (len < 2 || store__get_uvarint(p, len, &pos, &raw_len))
        return -EINVAL;
    if (raw_len > out->max_bytes)
        return -E2BIG;
    if (p[0] == 0) {
        if (len - pos != raw_len)
            return -EINVAL;
        return lw_buf_append(out, p + pos, len - pos);
    }
    /* Deflate cannot expand more than ~1032:1: a larger claimed size is a
     * corrupt header, refused before allocating for it. */
    if (p[0] != 1 || raw_len / 1032 > len - pos)
        return -EINVAL;
    int rc = lw_buf_reserve(out, (size_t)raw_len);
    if (rc)
        return rc;
    struct libdeflate_decompressor *d = libdeflate_alloc_decompressor();
    if (!d)
        return -ENOMEM;
    size_t got = 0;
    enum libdeflate_result r =
        libdeflate_zlib_decompress(d, p + pos, len - pos, out->data, (size_t)raw_len, &got);
    libdeflate_free_decompressor(d);
    if (r != LIBDEFLATE_SUCCESS || got != raw_len)
        return -EINVAL;
    out->len = got;
    out->data[out->len] = '\0';
    return 0;
}

/* ---- opening ------------------------------------------------------------ */

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Decide, without writing anything, whether path is absent/empty (new) or
 * a leakwatch database; anything else is refused with -EINVAL. */
static int check_header(const char *path, bool *is_new, char *err, size_t err_len)
{
    unsigned char hdr[100];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    *is_new = false;
    if (fd < 0) {
        if (errno == ENOENT) {
            *is_new = true;
            return 0;
        }
        int e = errno;
        lw_set_err(err, err_len, "%s: %s", path, strerror(e));
        return -e;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        lw_set_err(err, err_len, "%s: %s", path, strerror(e));
        return -e;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        lw_set_err(err, err_len, "%s: not a regular file", path);
        return -EINVAL;
    }
    if (st.st_size == 0) {
        close(fd);
        *is_new = true;
        return 0;
    }
    ssize_t n = pread(fd, hdr, sizeof(hdr), 0);
    close(fd);
    if (n != (ssize_t)sizeof(hdr) || memcmp(hdr, "SQLite format 3", 16) != 0) {
        lw_set_err(err, err_len,
                "%s: not a leakwatch database (not an SQLite file); refusing to touch it", path);
        return -EINVAL;
    }
    uint32_t app = be32(hdr + 68);
    if (app != STORE_APPLICATION_ID) {
        lw_set_err(err, err_len,
                "%s: not a leakwatch database (SQLite application_id 0x%08" PRIx32
                ", want 0x%08x); refusing to touch it",
                path, app, STORE_APPLICATION_ID);
        return -EINVAL;
    }
    return 0;
}

static int mkdir_parents(const char *path)
{
    char *dup = strdup(path);
    if (!dup)
        return -ENOMEM;
    for (char *p = dup + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(dup, 0755) != 0 && errno != EEXIST) {
            int e = errno;
            free(dup);
            return -e;
        }
        *p = '/';
    }
    free(dup);
    return 0;
}

static int lock_acquire(store *s, char *err, size_t err_len)
{
    for (int attempt = 0; attempt < 8; attempt++) {
        int fd = open(s->lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0) {
            int e = errno;
            lw_set_err(err, err_len, "%s: %s", s->lock_path, strerror(e));
            return -e;
        }
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            int e = errno;
            if (e == EWOULDBLOCK) {
                char pid[32] = "";
                ssize_t n = pread(fd, pid, sizeof(pid) - 1, 0);
                pid[n > 0 ? n : 0] = '\0';
                pid[strcspn(pid, "\n")] = '\0';
                lw_set_err(err, err_len, "database %s is in use by another leakwatchd (pid %s)",
                        s->path, pid[0] ? pid : "unknown");
                close(fd);
                return -EBUSY;
            }
            close(fd);
            lw_set_err(err, err_len, "%s: flock: %s", s->lock_path, strerror(e));
            return -e;
        }
        /* The previous owner may have unlinked the file between our open
         * and flock; then we hold a lock nobody else can see. Retry. */
        struct stat a, b;
        if (fstat(fd, &a) != 0 || stat(s->lock_path, &b) != 0 || a.st_ino != b.st_ino ||
            a.st_dev != b.st_dev) {
            close(fd);
            continue;
        }
        char pid[32];
        int n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
        if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n) {
            int e = errno;
            close(fd);
            lw_set_err(err, err_len, "%s: %s", s->lock_path, strerror(e));
            return -e;
        }
        s->lock_fd = fd;
        return 0;
    }
    lw_set_err(err, err_len, "%s: lock file keeps changing", s->lock_path);
    return -EBUSY;
}

static int create_schema(store *s, char *err, size_t err_len)
{
    sqlite3 *db = s->w.db;
    char stamp[128];
    snprintf(stamp, sizeof(stamp), "PRAGMA application_id = %d; PRAGMA user_version = %d;",
             STORE_APPLICATION_ID, STORE_SCHEMA_VERSION);
    int rc = store__exec(db, "PRAGMA auto_vacuum = INCREMENTAL");
    if (!rc)
        rc = store__exec(db, "BEGIN IMMEDIATE");
    if (!rc)
        rc = store__exec(db, schema_sql);
    if (!rc)
        rc = store__exec(db, stamp);
    if (!rc)
        rc = store__exec(db, "COMMIT");
    if (rc) {
        lw_set_err(err, err_len, "%s: creating schema: %s", s->path, sqlite3_errmsg(db));
        if (!sqlite3_get_autocommit(db))
            store__exec_best_effort(db, "ROLLBACK");
    }
    return rc;
}

/* Check an opened database's stamp and that SQLite can read its schema. */
static int verify_db(sqlite3 *db, const char *path, char *err, size_t err_len)
{
    int64_t app = 0, version = 0, n_tables = 0;
    int rc = store__query_int(db, "PRAGMA application_id", &app);
    if (!rc)
        rc = store__query_int(db, "PRAGMA user_version", &version);
    if (!rc)
        rc = store__query_int(db, "SELECT count(*) FROM sqlite_master WHERE name = 'profiles'", &n_tables);
    if (rc) {
        lw_set_err(err, err_len, "%s: unreadable database (%s); refusing to touch it", path,
                sqlite3_errmsg(db));
        return rc == -EBUSY ? rc : -EINVAL;
    }
    if (app != STORE_APPLICATION_ID) {
        lw_set_err(err, err_len, "%s: not a leakwatch database (application_id 0x%08" PRIx64 ")",
                path, (uint64_t)app);
        return -EINVAL;
    }
    if (version < STORE_SCHEMA_MIN_VERSION || version > STORE_SCHEMA_VERSION || n_tables != 1) {
        lw_set_err(err, err_len,
                "%s: leakwatch schema version %" PRId64 " (this build reads %d to %d); refusing "
                "to touch it",
                path, version, STORE_SCHEMA_MIN_VERSION, STORE_SCHEMA_VERSION);
        return -EINVAL;
    }
    return 0;
}

/* Older versions (writer): version 1's index on stacks.hash goes (the
 * writer's stack map replaces it; it is rebuilt if ever the stacks outgrow
 * the map), and version 3's stack_chunks is added. A file of a newer
 * version is refused by builds that would not find its stacks. */
static int upgrade_schema(sqlite3 *db, const char *path, char *err, size_t err_len)
{
    int64_t version = 0;
    /* Files made before retention looked profiles up by time lack this
     * index (any version reads a file that has it: no version change).
     * Best effort: on a full disk the file still opens, and retention —
     * slower without the index — can free the space. */
    store__exec_best_effort(db, "CREATE INDEX IF NOT EXISTS profiles_time ON profiles(time_ns)");
    int rc = store__query_int(db, "PRAGMA user_version", &version);
    if (!rc && version < STORE_SCHEMA_VERSION) {
        char sql[512];
        snprintf(sql, sizeof(sql),
                 "BEGIN IMMEDIATE; %s %s PRAGMA user_version = %d; COMMIT",
                 version == 1 ? "DROP INDEX IF EXISTS stacks_hash;" : "",
                 STACK_CHUNKS_SQL, STORE_SCHEMA_VERSION);
        rc = store__exec(db, sql);
        if (rc) {
            lw_set_err(err, err_len, "%s: upgrading schema %" PRId64 " to %d: %s", path, version,
                       STORE_SCHEMA_VERSION, sqlite3_errmsg(db));
            if (!sqlite3_get_autocommit(db))
                store__exec_best_effort(db, "ROLLBACK");
        }
    }
    return rc;
}

/* Verify an existing file through an immutable, read-only connection:
 * SQLite then takes no locks and creates no -wal/-shm files, so a corrupt
 * or foreign database is refused without a trace. The WAL (if any) is not
 * read, which is fine: the schema and the stamp are written at creation,
 * before the database ever uses a WAL. */
static int precheck(const char *path, char *err, size_t err_len)
{
    sqlite3 *db = NULL;
    char *uri = sqlite3_mprintf("file:%s?immutable=1", path);
    if (!uri)
        return -ENOMEM;
    /* Escape nothing fancy: paths with '?' or '#' fall back to no check. */
    int rc = 0;
    if (!strpbrk(path, "?#%")) {
        int src = sqlite3_open_v2(uri, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, NULL);
        if (src != SQLITE_OK) {
            lw_set_err(err, err_len, "%s: cannot open: %s", path,
                    db ? sqlite3_errmsg(db) : "out of memory");
            rc = -EINVAL;
        } else {
            rc = verify_db(db, path, err, err_len);
        }
        sqlite3_close(db);
    }
    sqlite3_free(uri);
    return rc;
}

static int open_conn(store__conn *c, const char *path, int flags)
{
    int rc = sqlite3_open_v2(path, &c->db, flags | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK)
        return store__errno(rc) ? store__errno(rc) : -EIO;
    sqlite3_extended_result_codes(c->db, 1);
    sqlite3_busy_timeout(c->db, 5000);
    return 0;
}

static void close_conn(store__conn *c)
{
    for (int i = 0; i < SQL_COUNT_; i++) {
        sqlite3_finalize(c->stmts[i]);
        c->stmts[i] = NULL;
    }
    for (size_t i = 0; i < sizeof(c->list_stmts) / sizeof(c->list_stmts[0]); i++) {
        sqlite3_finalize(c->list_stmts[i]);
        c->list_stmts[i] = NULL;
    }
    sqlite3_close(c->db);
    c->db = NULL;
}

/* Open reader connection i of the pool (pool lock held, or before the
 * handle is shared). */
static int open_reader(store *s, size_t i)
{
    store__conn *c = &s->readers[i];
    int rc = open_conn(c, s->path, SQLITE_OPEN_READONLY);
    if (!rc && !s->read_only)
        rc = store__exec(c->db, "PRAGMA cache_size = -2048");
    return rc;
}

store__conn *store__reader_get(store *s, bool bulk)
{
    pthread_mutex_lock(&s->pool_mu);
    for (;;) {
        /* A bulk read leaves the last connection to short queries. */
        size_t bulk_cap = s->max_readers > 1 ? s->max_readers - 1 : 1;
        if (!bulk || s->n_bulk < bulk_cap) {
            for (size_t i = 0; i < s->n_readers; i++) {
                store__conn *c = &s->readers[i];
                if (!c->busy) {
                    c->busy = true;
                    c->bulk = bulk;
                    s->n_bulk += bulk;
                    pthread_mutex_unlock(&s->pool_mu);
                    return c;
                }
            }
            if (s->n_readers < s->max_readers) {
                store__conn *c = &s->readers[s->n_readers];
                if (open_reader(s, s->n_readers) == 0) {
                    s->n_readers++;
                    c->busy = true;
                    c->bulk = bulk;
                    s->n_bulk += bulk;
                    pthread_mutex_unlock(&s->pool_mu);
                    return c;
                }
                /* Out of memory or descriptors: make do with those open. */
                close_conn(c);
                s->max_readers = s->n_readers;
                continue;
            }
        }
        pthread_cond_wait(&s->pool_cv, &s->pool_mu);
    }
}

void store__reader_put(store *s, store__conn *c)
{
    pthread_mutex_lock(&s->pool_mu);
    s->n_bulk -= c->bulk;
    c->busy = false;
    c->bulk = false;
    pthread_cond_broadcast(&s->pool_cv);
    pthread_mutex_unlock(&s->pool_mu);
}

int store_open(const char *path, const store_options *opt, store **out, char *err, size_t err_len)
{
    store_options defaults = {0};
    bool is_new = false;
    int rc;
    if (out)
        *out = NULL;
    if (!path || !*path || !out)
        return -EINVAL;
    if (!opt)
        opt = &defaults;

    store *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->lock_fd = -1;
    s->read_only = opt->read_only;
    pthread_mutex_init(&s->w.mu, NULL);
    pthread_mutex_init(&s->pool_mu, NULL);
    pthread_mutex_init(&s->gc_mu, NULL);
    pthread_cond_init(&s->pool_cv, NULL);
    s->max_readers = opt->max_readers > 0 ? (size_t)opt->max_readers : STORE_READERS_DEFAULT;
    if (s->max_readers > STORE_READERS_MAX)
        s->max_readers = STORE_READERS_MAX;
    /* Memory budget of the writer's caches (the sidecar's RSS matters):
     * about 4 + 2 + 12 + 3 + 4 MB here, 8 MB of keyframes, 8 MB of stack memos. */
    store__cache_init(&s->strings, 1u << 16, 3u << 20);
    store__cache_init(&s->functions, 1u << 15, 1u << 20);
    store__cache_init(&s->stacks, 1u << 17, 8u << 20);
    store__cache_init(&s->functions_by_text, 1u << 15, 2u << 20);
    store__cache_init(&s->locations, 1u << 15, 1u << 20);
    s->stack_map_max = STORE_STACK_MAP_MAX;
    s->path = strdup(path);
    size_t lp_len = strlen(path) + sizeof(".lock");
    s->lock_path = malloc(lp_len);
    if (!s->path || !s->lock_path) {
        rc = -ENOMEM;
        goto fail;
    }
    snprintf(s->lock_path, lp_len, "%s.lock", path);

    rc = check_header(path, &is_new, err, err_len);
    if (!rc && !is_new)
        rc = precheck(path, err, err_len);
    if (rc)
        goto fail;
    if (opt->read_only) {
        if (is_new) {
            lw_set_err(err, err_len, "%s: no such database", path);
            rc = -ENOENT;
            goto fail;
        }
        rc = open_reader(s, 0);
        if (rc) {
            lw_set_err(err, err_len, "%s: cannot open: %s", path,
                    s->readers[0].db ? sqlite3_errmsg(s->readers[0].db) : "out of memory");
            goto fail;
        }
        s->n_readers = 1;
        rc = verify_db(s->readers[0].db, path, err, err_len);
        if (rc)
            goto fail;
        *out = s;
        return 0;
    }

    rc = mkdir_parents(path);
    if (rc) {
        lw_set_err(err, err_len, "%s: creating parent directories: %s", path, strerror(-rc));
        goto fail;
    }
    rc = lock_acquire(s, err, err_len);
    if (rc)
        goto fail;
    /* Someone may have created the file while we were taking the lock. */
    rc = check_header(path, &is_new, err, err_len);
    if (rc)
        goto fail;

    rc = open_conn(&s->w, path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    if (rc) {
        lw_set_err(err, err_len, "%s: cannot open: %s", path,
                s->w.db ? sqlite3_errmsg(s->w.db) : "out of memory");
        goto fail;
    }
    if (is_new) {
        rc = create_schema(s, err, err_len);
        if (rc)
            goto fail;
    }
    rc = verify_db(s->w.db, path, err, err_len);
    if (rc)
        goto fail;
    rc = store__exec(s->w.db, "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; "
                              "PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY; "
                              "PRAGMA cache_size = -4096; PRAGMA journal_size_limit = 8388608");
    if (rc) {
        lw_set_err(err, err_len, "%s: configuring: %s", path, sqlite3_errmsg(s->w.db));
        goto fail;
    }
    if ((rc = upgrade_schema(s->w.db, path, err, err_len)))
        goto fail;
    if (opt->max_page_count > 0) {
        char sql[64];
        snprintf(sql, sizeof(sql), "PRAGMA max_page_count = %" PRId64, opt->max_page_count);
        rc = store__exec(s->w.db, sql);
        if (rc) {
            lw_set_err(err, err_len, "%s: max_page_count: %s", path, sqlite3_errmsg(s->w.db));
            goto fail;
        }
    }
    rc = open_reader(s, 0);
    if (rc) {
        lw_set_err(err, err_len, "%s: opening reader: %s", path,
                s->readers[0].db ? sqlite3_errmsg(s->readers[0].db) : "out of memory");
        goto fail;
    }
    s->n_readers = 1;
    *out = s;
    return 0;

fail:
    store_close(s);
    return rc;
}

void store_close(store *s)
{
    if (!s)
        return;
    if (s->w.db) {
        pthread_mutex_lock(&s->w.mu);
        store__exec_best_effort(s->w.db, "PRAGMA wal_checkpoint(TRUNCATE)");
        pthread_mutex_unlock(&s->w.mu);
    }
    /* Slot n_readers may hold a connection whose set-up failed in open. */
    for (size_t i = 0; i <= s->n_readers && i < STORE_READERS_MAX; i++)
        close_conn(&s->readers[i]);
    close_conn(&s->w);
    if (s->lock_fd >= 0) {
        unlink(s->lock_path);
        close(s->lock_fd);
    }
    store__kf_clear(&s->kf);
    store__idset_free(&s->kf.index);
    free(s->kf.entries);
    free(s->kf.ids);
    store__ingest_free(s->ing);
    libdeflate_free_compressor(s->packer);
    store__memos_clear(s);
    free(s->memos);
    store__cache_free(&s->strings);
    store__cache_free(&s->functions);
    store__cache_free(&s->stacks);
    store__stackmap_free(&s->stack_map);
    store__cache_free(&s->functions_by_text);
    store__cache_free(&s->locations);
    pthread_mutex_destroy(&s->w.mu);
    pthread_mutex_destroy(&s->pool_mu);
    pthread_mutex_destroy(&s->gc_mu);
    pthread_cond_destroy(&s->pool_cv);
    free(s->path);
    free(s->lock_path);
    free(s);
}

/* ---- targets -------------------------------------------------------------- */

static int label_cmp(const void *a, const void *b)
{
    const store_label *x = a, *y = b;
    return strcmp(x->name, y->name);
}

int store_target_upsert(store *s, const store_label *labels, size_t n_labels, int64_t *id_out)
{
    const char *job = NULL, *instance = NULL;
    store_label *sorted = NULL;
    lw_buf json;
    int rc = 0;
    lw_buf_init(&json, 1u << 20);
    if (!s || !labels || !n_labels || !id_out)
        return -EINVAL;
    if (!s->w.db)
        return -EROFS;
    sorted = malloc(n_labels * sizeof(*sorted));
    if (!sorted)
        return -ENOMEM;
    memcpy(sorted, labels, n_labels * sizeof(*sorted));
    for (size_t i = 0; i < n_labels; i++)
        if (!sorted[i].name || !sorted[i].value) {
            rc = -EINVAL;
            goto out;
        }
    qsort(sorted, n_labels, sizeof(*sorted), label_cmp);
    rc = lw_buf_puts(&json, "{");
    for (size_t i = 0; i < n_labels && !rc; i++) {
        if (i > 0 && strcmp(sorted[i].name, sorted[i - 1].name) == 0) {
            rc = -EINVAL;
            break;
        }
        if (!strcmp(sorted[i].name, "job"))
            job = sorted[i].value;
        if (!strcmp(sorted[i].name, "instance"))
            instance = sorted[i].value;
        rc = lw_buf_puts(&json, i ? "," : "");
        if (!rc)
            rc = lw_buf_json_str(&json, sorted[i].name);
        if (!rc)
            rc = lw_buf_puts(&json, ":");
        if (!rc)
            rc = lw_buf_json_str(&json, sorted[i].value);
    }
    if (!rc)
        rc = lw_buf_puts(&json, "}");
    if (rc)
        goto out;
    if (!job || !instance) {
        rc = -EINVAL;
        goto out;
    }

    pthread_mutex_lock(&s->w.mu);
    sqlite3_stmt *st = store__stmt(&s->w, SQL_TARGET_FIND);
    if (!st) {
        rc = -EIO;
        goto unlock;
    }
    sqlite3_bind_text(st, 1, json.data, (int)json.len, SQLITE_STATIC);
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        *id_out = sqlite3_column_int64(st, 0);
        sqlite3_reset(st);
        goto unlock;
    }
    sqlite3_reset(st);
    if (src != SQLITE_DONE) {
        rc = store__errno(src);
        goto unlock;
    }
    st = store__stmt(&s->w, SQL_TARGET_INSERT);
    if (!st) {
        rc = -EIO;
        goto unlock;
    }
    sqlite3_bind_text(st, 1, job, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, instance, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, json.data, (int)json.len, SQLITE_STATIC);
    src = sqlite3_step(st);
    sqlite3_reset(st);
    if (src != SQLITE_DONE)
        rc = store__errno(src);
    else
        *id_out = sqlite3_last_insert_rowid(s->w.db);
unlock:
    pthread_mutex_unlock(&s->w.mu);
out:
    free(sorted);
    lw_buf_cleanup(&json);
    return rc;
}

static char *dup_col(sqlite3_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    return strdup(t ? (const char *)t : "");
}

void store_targets_free(store_target *targets, size_t n)
{
    if (!targets)
        return;
    for (size_t i = 0; i < n; i++) {
        free(targets[i].job);
        free(targets[i].instance);
        free(targets[i].labels_json);
    }
    free(targets);
}

int store_targets_list(store *s, store_target **out, size_t *n_out)
{
    store_target *arr = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    if (!s || !out || !n_out)
        return -EINVAL;
    *out = NULL;
    *n_out = 0;
    store__conn *rd = store__reader_get(s, false);
    sqlite3_stmt *st = store__stmt(rd, SQL_TARGETS_LIST);
    if (!st) {
        rc = -EIO;
        goto out;
    }
    int src;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            store_target *tmp = realloc(arr, ncap * sizeof(*arr));
            if (!tmp) {
                rc = -ENOMEM;
                goto out;
            }
            arr = tmp;
            cap = ncap;
        }
        store_target *t = &arr[n++];
        t->id = sqlite3_column_int64(st, 0);
        t->job = dup_col(st, 1);
        t->instance = dup_col(st, 2);
        t->labels_json = dup_col(st, 3);
        if (!t->job || !t->instance || !t->labels_json) {
            rc = -ENOMEM;
            goto out;
        }
    }
    if (src != SQLITE_DONE)
        rc = store__errno(src);
out:
    if (st)
        sqlite3_reset(st);
    store__reader_put(s, rd);
    if (rc) {
        store_targets_free(arr, n);
        return rc;
    }
    *out = arr;
    *n_out = n;
    return 0;
}

/* ---- profile metadata ------------------------------------------------------ */

/* Fill info from a row whose first 8 columns are PROFILE_COLS. */
void store__info_from_row(sqlite3_stmt *st, store_profile_info *info)
{
    memset(info, 0, sizeof(*info));
    info->id = sqlite3_column_int64(st, 0);
    info->target_id = sqlite3_column_int64(st, 1);
    const unsigned char *type = sqlite3_column_text(st, 2);
    snprintf(info->profile_type, sizeof(info->profile_type), "%s", type ? (const char *)type : "");
    info->time_ns = sqlite3_column_int64(st, 3);
    info->duration_ns = sqlite3_column_int64(st, 4);
    info->n_samples = sqlite3_column_int64(st, 5);
    const unsigned char *types = sqlite3_column_text(st, 6);
    snprintf(info->sample_types, sizeof(info->sample_types), "%s",
             types ? (const char *)types : "");
    const unsigned char *tot = sqlite3_column_blob(st, 7);
    size_t tot_len = (size_t)sqlite3_column_bytes(st, 7);
    size_t pos = 0;
    int n = 0;
    int64_t v;
    while (pos < tot_len && store__get_svarint(tot, tot_len, &pos, &v) == 0) {
        if (n < (int)(sizeof(info->totals) / sizeof(info->totals[0])))
            info->totals[n] = v;
        n++;
    }
    info->n_sample_types = n;
}

static int info_query(store *s, enum store__sql which, int64_t a, const char *b, int64_t c,
                      store_profile_info *info)
{
    int rc;
    store__conn *rd = store__reader_get(s, false);
    sqlite3_stmt *st = store__stmt(rd, which);
    if (!st) {
        rc = -EIO;
        goto out;
    }
    sqlite3_bind_int64(st, 1, a);
    if (b)
        sqlite3_bind_text(st, 2, b, -1, SQLITE_STATIC);
    if (which == SQL_PROFILE_AT)
        sqlite3_bind_int64(st, 3, c);
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        store__info_from_row(st, info);
        rc = 0;
    } else {
        rc = src == SQLITE_DONE ? -ENOENT : store__errno(src);
    }
    sqlite3_reset(st);
out:
    store__reader_put(s, rd);
    return rc;
}

int store_profile_info_get(store *s, int64_t id, store_profile_info *info)
{
    if (!s || !info)
        return -EINVAL;
    return info_query(s, SQL_PROFILE_INFO, id, NULL, 0, info);
}

int store_profile_at(store *s, int64_t target_id, const char *profile_type, int64_t time_ns,
                     store_profile_info *info)
{
    if (!s || !info || !profile_type)
        return -EINVAL;
    return info_query(s, SQL_PROFILE_AT, target_id, profile_type, time_ns, info);
}

/* The listing statement for exactly the filters q uses (one cached
 * statement per combination), so SQLite can use the (target, type, time)
 * index instead of scanning every profile. Statements are per reader
 * connection; the caller holds rd. */
static sqlite3_stmt *list_stmt(store__conn *rd, const store_profile_query *q)
{
    unsigned mask = (q->target_id ? 1u : 0) | (q->job ? 2u : 0) | (q->instance ? 4u : 0) |
                    (q->profile_type ? 8u : 0) | (q->from_ns ? 16u : 0) | (q->to_ns ? 32u : 0) |
                    (q->limit ? 64u : 0);
    sqlite3_stmt *st = rd->list_stmts[mask];
    if (st) {
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        return st;
    }
    static const char *const conds[] = {
        " AND p.target_id = ?1", " AND t.job = ?2",       " AND t.instance = ?3",
        " AND p.type = ?4",      " AND p.time_ns >= ?5", " AND p.time_ns <= ?6",
    };
    char sql[1024];
    int n = snprintf(sql, sizeof(sql),
                     "SELECT " PROFILE_COLS PROFILE_FROM
                     "JOIN targets t ON t.id = p.target_id WHERE 1");
    for (int k = 0; k < 6; k++)
        if (mask & (1u << k))
            n += snprintf(sql + n, sizeof(sql) - (size_t)n, "%s", conds[k]);
    snprintf(sql + n, sizeof(sql) - (size_t)n, "%s",
             (mask & 64u) ? " ORDER BY p.time_ns DESC, p.id DESC LIMIT ?7"
                          : " ORDER BY p.time_ns, p.id");
    if (sqlite3_prepare_v3(rd->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK)
        return NULL;
    rd->list_stmts[mask] = st;
    return st;
}

int store_profiles_list(store *s, const store_profile_query *q, store_profile_info **out,
                        size_t *n_out)
{
    store_profile_query any = {0};
    store_profile_info *arr = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    if (!s || !out || !n_out)
        return -EINVAL;
    *out = NULL;
    *n_out = 0;
    if (!q)
        q = &any;
    store__conn *rd = store__reader_get(s, false);
    sqlite3_stmt *st = list_stmt(rd, q);
    if (!st) {
        rc = -EIO;
        goto out;
    }
    if (q->target_id)
        sqlite3_bind_int64(st, 1, q->target_id);
    if (q->job)
        sqlite3_bind_text(st, 2, q->job, -1, SQLITE_STATIC);
    if (q->instance)
        sqlite3_bind_text(st, 3, q->instance, -1, SQLITE_STATIC);
    if (q->profile_type)
        sqlite3_bind_text(st, 4, q->profile_type, -1, SQLITE_STATIC);
    if (q->from_ns)
        sqlite3_bind_int64(st, 5, q->from_ns);
    if (q->to_ns)
        sqlite3_bind_int64(st, 6, q->to_ns);
    if (q->limit)
        sqlite3_bind_int64(st, 7, q->limit > INT64_MAX ? INT64_MAX : (int64_t)q->limit);
    int src;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 64;
            store_profile_info *tmp = realloc(arr, ncap * sizeof(*arr));
            if (!tmp) {
                rc = -ENOMEM;
                goto out;
            }
            arr = tmp;
            cap = ncap;
        }
        store__info_from_row(st, &arr[n++]);
    }
    if (src != SQLITE_DONE)
        rc = store__errno(src);
out:
    if (st)
        sqlite3_reset(st);
    store__reader_put(s, rd);
    if (rc) {
        free(arr);
        return rc;
    }
    *out = arr;
    *n_out = n;
    return 0;
}

int store_profiles_count(store *s, int64_t *count_out)
{
    int rc = 0;
    if (!s || !count_out)
        return -EINVAL;
    store__conn *rd = store__reader_get(s, false);
    sqlite3_stmt *st = store__stmt(rd, SQL_PROFILES_COUNT);
    if (!st) {
        rc = -EIO;
    } else {
        int src = sqlite3_step(st);
        if (src == SQLITE_ROW)
            *count_out = sqlite3_column_int64(st, 0);
        else
            rc = store__errno(src) ? store__errno(src) : -EIO;
        sqlite3_reset(st);
    }
    store__reader_put(s, rd);
    return rc;
}

/* ---- series ----------------------------------------------------------------- */

static int signal_code(const char *signal)
{
    static const struct {
        const char *name;
        int code;
    } sigs[] = {
        {"goroutines", STORE_SIG_GOROUTINES},
        {"heap_inuse_bytes", STORE_SIG_HEAP_INUSE_BYTES},
        {"heap_inuse_objects", STORE_SIG_HEAP_INUSE_OBJECTS},
        {"heap_alloc_bytes", STORE_SIG_HEAP_ALLOC_BYTES},
        {"heap_alloc_objects", STORE_SIG_HEAP_ALLOC_OBJECTS},
    };
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
        if (!strcmp(signal, sigs[i].name))
            return sigs[i].code;
    return 0;
}

int store_series_get(store *s, int64_t target_id, const char *signal, int64_t from_ns,
                     int64_t to_ns, store_point **out, size_t *n_out)
{
    store_point *arr = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    if (!s || !signal || !out || !n_out)
        return -EINVAL;
    *out = NULL;
    *n_out = 0;
    int code = signal_code(signal);
    if (!code)
        return -EINVAL;
    store__conn *rd = store__reader_get(s, false);
    sqlite3_stmt *st = store__stmt(rd, SQL_SERIES_GET);
    if (!st) {
        rc = -EIO;
        goto out;
    }
    sqlite3_bind_int64(st, 1, target_id);
    sqlite3_bind_int(st, 2, code);
    sqlite3_bind_int64(st, 3, from_ns);
    sqlite3_bind_int64(st, 4, to_ns);
    int src;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 64;
            store_point *tmp = realloc(arr, ncap * sizeof(*arr));
            if (!tmp) {
                rc = -ENOMEM;
                goto out;
            }
            arr = tmp;
            cap = ncap;
        }
        arr[n].time_ns = sqlite3_column_int64(st, 0);
        arr[n].value = sqlite3_column_double(st, 1);
        n++;
    }
    if (src != SQLITE_DONE)
        rc = store__errno(src);
out:
    if (st)
        sqlite3_reset(st);
    store__reader_put(s, rd);
    if (rc) {
        free(arr);
        return rc;
    }
    *out = arr;
    *n_out = n;
    return 0;
}

/* ---- size and integrity ---------------------------------------------------- */

int store_size_bytes(store *s, int64_t *bytes_out)
{
    struct stat st;
    if (!s || !bytes_out)
        return -EINVAL;
    if (stat(s->path, &st) != 0)
        return -errno;
    int64_t total = st.st_size;
    size_t len = strlen(s->path) + sizeof("-wal");
    char *wal = malloc(len);
    if (!wal)
        return -ENOMEM;
    snprintf(wal, len, "%s-wal", s->path);
    if (stat(wal, &st) == 0)
        total += st.st_size;
    free(wal);
    *bytes_out = total;
    return 0;
}

int store_integrity_check(store *s, char *err, size_t err_len)
{
    sqlite3_stmt *st = NULL;
    int rc;
    if (!s)
        return -EINVAL;
    store__conn *rd = store__reader_get(s, true);
    int src = sqlite3_prepare_v2(rd->db, "PRAGMA integrity_check", -1, &st, NULL);
    if (src == SQLITE_OK)
        src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        const unsigned char *t = sqlite3_column_text(st, 0);
        if (t && !strcmp((const char *)t, "ok")) {
            rc = 0;
        } else {
            lw_set_err(err, err_len, "%s", t ? (const char *)t : "integrity_check: no result");
            rc = -EIO;
        }
    } else {
        lw_set_err(err, err_len, "integrity_check: %s", sqlite3_errmsg(rd->db));
        rc = store__errno(src) ? store__errno(src) : -EIO;
    }
    sqlite3_finalize(st);
    store__reader_put(s, rd);
    return rc;
}

/* ---- daemon state ------------------------------------------------------------ */

int store_state_put(store *s, const char *key, const char *value)
{
    int rc = 0;
    if (!s || !key || !value)
        return -EINVAL;
    if (!s->w.db)
        return -EROFS;
    pthread_mutex_lock(&s->w.mu);
    sqlite3_stmt *st = store__stmt(&s->w, SQL_STATE_PUT);
    if (!st) {
        rc = -EIO;
    } else {
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
        int src = sqlite3_step(st);
        rc = src == SQLITE_DONE ? 0 : store__errno(src);
        sqlite3_reset(st);
    }
    pthread_mutex_unlock(&s->w.mu);
    return rc;
}

int store_state_get(store *s, const char *key, char **value_out)
{
    int rc;
    if (!s || !key || !value_out)
        return -EINVAL;
    *value_out = NULL;
    store__conn *rd = store__reader_get(s, false);
    sqlite3_stmt *st = store__stmt(rd, SQL_STATE_GET);
    if (!st) {
        rc = -EIO;
    } else {
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
        int src = sqlite3_step(st);
        if (src == SQLITE_ROW) {
            *value_out = dup_col(st, 0);
            rc = *value_out ? 0 : -ENOMEM;
        } else {
            rc = src == SQLITE_DONE ? -ENOENT : store__errno(src);
        }
        sqlite3_reset(st);
    }
    store__reader_put(s, rd);
    return rc;
}

int store_state_delete(store *s, const char *key)
{
    int rc = 0;
    if (!s || !key)
        return -EINVAL;
    if (!s->w.db)
        return -EROFS;
    pthread_mutex_lock(&s->w.mu);
    sqlite3_stmt *st = store__stmt(&s->w, SQL_STATE_DELETE);
    if (!st) {
        rc = -EIO;
    } else {
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
        int src = sqlite3_step(st);
        rc = src == SQLITE_DONE ? 0 : store__errno(src);
        sqlite3_reset(st);
    }
    pthread_mutex_unlock(&s->w.mu);
    return rc;
}

int store_state_list(store *s, const char *prefix, char ***keys_out, char ***values_out,
                     size_t *n_out)
{
    char **keys = NULL, **values = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    if (!s || !keys_out || !values_out || !n_out)
        return -EINVAL;
    *keys_out = NULL;
    *values_out = NULL;
    *n_out = 0;
    store__conn *rd = store__reader_get(s, false);
    sqlite3_stmt *st = store__stmt(rd, SQL_STATE_LIST);
    if (!st) {
        rc = -EIO;
        goto out;
    }
    sqlite3_bind_text(st, 1, prefix ? prefix : "", -1, SQLITE_STATIC);
    int src;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            char **k2 = realloc(keys, ncap * sizeof(*keys));
            if (!k2) {
                rc = -ENOMEM;
                goto out;
            }
            keys = k2;
            char **v2 = realloc(values, ncap * sizeof(*values));
            if (!v2) {
                rc = -ENOMEM;
                goto out;
            }
            values = v2;
            cap = ncap;
        }
        keys[n] = dup_col(st, 0);
        values[n] = dup_col(st, 1);
        n++;
        if (!keys[n - 1] || !values[n - 1]) {
            rc = -ENOMEM;
            goto out;
        }
    }
    if (src != SQLITE_DONE)
        rc = store__errno(src);
out:
    if (st)
        sqlite3_reset(st);
    store__reader_put(s, rd);
    if (rc) {
        for (size_t i = 0; i < n; i++) {
            free(keys[i]);
            free(values[i]);
        }
        free(keys);
        free(values);
        return rc;
    }
    *keys_out = keys;
    *values_out = values;
    *n_out = n;
    return 0;
}
