/* lw_buf.h — a growable byte buffer with a hard size cap, shared by every component.
 *
 * Every buffer that grows with outside input (scraped bodies, decompressed
 * profiles, API responses) is an lw_buf created with a cap; appending past the
 * cap fails with -E2BIG and leaves the buffer as it was, so callers can report
 * "response exceeds N bytes" instead of swallowing it. The contents are always
 * NUL-terminated (the NUL is not counted in len), so text can be used as a C
 * string. Modelled on curl's dynbuf.
 *
 * Ownership: the lw_buf owns `data`; lw_buf_cleanup() frees it and leaves an
 * empty, reusable buffer. lw_buf_detach() hands `data` to the caller.
 */
#ifndef LW_BUF_H
#define LW_BUF_H

#include <stdarg.h>
#include <stddef.h>

#define LW_WUR __attribute__((warn_unused_result))
#define LW_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))

typedef struct lw_buf {
    char *data;       /* NUL-terminated contents, NULL until first append */
    size_t len;       /* bytes used, excluding the terminating NUL */
    size_t cap;       /* bytes allocated */
    size_t max_bytes; /* hard cap on len; appends beyond it fail with -E2BIG */
} lw_buf;

/* Initialise an empty buffer that may hold at most max_bytes. Cannot fail. */
void lw_buf_init(lw_buf *b, size_t max_bytes);

/* Free the contents; the buffer is empty and reusable. Safe on a zeroed or
 * already cleaned-up buffer. */
void lw_buf_cleanup(lw_buf *b);

/* Forget the contents but keep the allocation. Cannot fail. */
void lw_buf_reset(lw_buf *b);

/* Append n bytes. 0 on success; -E2BIG if len + n would exceed max_bytes;
 * -ENOMEM if allocation fails. On failure the buffer is unchanged. */
int lw_buf_append(lw_buf *b, const void *data, size_t n) LW_WUR;

/* Make room for extra more bytes (plus the NUL) without changing the
 * contents, so a producer can write at data + len and then add to len.
 * 0, -E2BIG past max_bytes, or -ENOMEM. */
int lw_buf_reserve(lw_buf *b, size_t extra) LW_WUR;

/* Append a C string. Same results as lw_buf_append(). */
int lw_buf_puts(lw_buf *b, const char *s) LW_WUR;

/* Append printf-formatted text. Same results as lw_buf_append(). */
int lw_buf_printf(lw_buf *b, const char *fmt, ...) LW_WUR LW_PRINTF(2, 3);
int lw_buf_vprintf(lw_buf *b, const char *fmt, va_list ap) LW_WUR LW_PRINTF(2, 0);

/* Append s as a JSON string literal (with quotes and escapes). */
int lw_buf_json_str(lw_buf *b, const char *s) LW_WUR;

/* Append the whole contents of the file at path (the buffer's cap applies;
 * the data is always NUL-terminated, even for an empty file). 0; -errno
 * from open/read; -E2BIG when the file exceeds the cap; -ENOMEM. On failure
 * the buffer may hold a prefix of the file. */
int lw_buf_read_file(lw_buf *b, const char *path) LW_WUR;

/* Hand the contents to the caller (who frees them with free()) and leave the
 * buffer empty. Returns NULL for a buffer that never held anything. */
char *lw_buf_detach(lw_buf *b, size_t *len_out);

#endif
