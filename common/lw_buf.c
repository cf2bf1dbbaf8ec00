/* lw_buf.c — capped growable buffer (see lw_buf.h).
 *
 * Growth doubles the allocation (bounded by max_bytes + 1 for the NUL) so
 * appends are amortised O(1); a failed append never changes the contents.
 */
#include "lw_buf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void lw_buf_init(lw_buf *b, size_t max_bytes)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max_bytes = max_bytes;
}

void lw_buf_cleanup(lw_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void lw_buf_reset(lw_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

int lw_buf_reserve(lw_buf *b, size_t extra)
{
    if (extra > b->max_bytes || b->len > b->max_bytes - extra)
        return -E2BIG;
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    if (cap > b->max_bytes + 1)
        cap = b->max_bytes + 1;
    char *p = realloc(b->data, cap);
    if (!p)
        return -ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

int lw_buf_append(lw_buf *b, const void *data, size_t n)
{
    int rc = lw_buf_reserve(b, n);
    if (rc)
        return rc;
    if (n)
        memcpy(b->data + b->len, data, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int lw_buf_puts(lw_buf *b, const char *s)
{
    return lw_buf_append(b, s, strlen(s));
}

int lw_buf_vprintf(lw_buf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return -EINVAL;
    int rc = lw_buf_reserve(b, (size_t)n);
    if (rc)
        return rc;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return 0;
}

int lw_buf_printf(lw_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = lw_buf_vprintf(b, fmt, ap);
    va_end(ap);
    return rc;
}

int lw_buf_json_str(lw_buf *b, const char *s)
{
    size_t start = b->len;
    int rc = lw_buf_append(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; rc == 0 && *p; p++) {
        switch (*p) {
        case '"': rc = lw_buf_append(b, "\\\"", 2); break;
        case '\\': rc = lw_buf_append(b, "\\\\", 2); break;
        case '\n': rc = lw_buf_append(b, "\\n", 2); break;
        case '\r': rc = lw_buf_append(b, "\\r", 2); break;
        case '\t': rc = lw_buf_append(b, "\\t", 2); break;
        default:
            if (*p < 0x20)
                rc = lw_buf_printf(b, "\\u%04x", *p);
            else
                rc = lw_buf_append(b, p, 1);
        }
    }
    if (rc == 0)
        rc = lw_buf_append(b, "\"", 1);
    if (rc) {
        /* Leave the buffer as it was before this call. */
        b->len = start;
        if (b->data)
            b->data[start] = '\0';
    }
    return rc;
}

int lw_buf_read_file(lw_buf *b, const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = 0;
    char chunk[16384];
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -errno;
            break;
        }
        if (n == 0)
            break;
        if ((rc = lw_buf_append(b, chunk, (size_t)n)) != 0)
            break;
    }
    close(fd);
    if (rc == 0 && !b->data)
        rc = lw_buf_append(b, "", 0);
    return rc;
}

char *lw_buf_detach(lw_buf *b, size_t *len_out)
{
    char *d = b->data;
    if (len_out)
        *len_out = b->len;
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    return d;
}
