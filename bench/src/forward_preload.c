/* forward_preload.c — the floor of malloc interposition: an LD_PRELOAD
 * library whose malloc family only forwards to the next allocator, found
 * with dlsym(RTLD_NEXT) exactly as the agent finds it. Until the pointers are
 * resolved (dlsym itself allocates) calls go to glibc's __libc_* entry points,
 * which are the same allocator.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stddef.h>

#define EXPORT __attribute__((visibility("default")))

extern void *__libc_malloc(size_t);
extern void __libc_free(void *);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);

static void *(*real_malloc)(size_t);
static void (*real_free)(void *);
static void *(*real_calloc)(size_t, size_t);
static void *(*real_realloc)(void *, size_t);
static void *(*real_memalign)(size_t, size_t);
static int (*real_posix_memalign)(void **, size_t, size_t);
static void *(*real_aligned_alloc)(size_t, size_t);

__attribute__((constructor)) static void resolve(void)
{
    void *m = dlsym(RTLD_NEXT, "malloc"), *f = dlsym(RTLD_NEXT, "free");
    void *c = dlsym(RTLD_NEXT, "calloc"), *r = dlsym(RTLD_NEXT, "realloc");
    void *ma = dlsym(RTLD_NEXT, "memalign"), *pm = dlsym(RTLD_NEXT, "posix_memalign");
    void *aa = dlsym(RTLD_NEXT, "aligned_alloc");
    real_free = f;
    real_calloc = c;
    real_realloc = r;
    real_memalign = ma;
    real_posix_memalign = pm;
    real_aligned_alloc = aa;
    __atomic_store_n(&real_malloc, (void *(*)(size_t))m, __ATOMIC_RELEASE);
}

EXPORT void *malloc(size_t n)
{
    void *(*fn)(size_t) = __atomic_load_n(&real_malloc, __ATOMIC_ACQUIRE);
    return __builtin_expect(fn != NULL, 1) ? fn(n) : __libc_malloc(n);
}

EXPORT void free(void *p)
{
    if (__builtin_expect(real_free != NULL, 1))
        real_free(p);
    else
        __libc_free(p);
}

EXPORT void *calloc(size_t n, size_t sz)
{
    return real_calloc ? real_calloc(n, sz) : __libc_calloc(n, sz);
}

EXPORT void *realloc(void *p, size_t n)
{
    return real_realloc ? real_realloc(p, n) : __libc_realloc(p, n);
}

EXPORT void *memalign(size_t a, size_t n)
{
    return real_memalign ? real_memalign(a, n) : __libc_memalign(a, n);
}

EXPORT void *aligned_alloc(size_t a, size_t n)
{
    return real_aligned_alloc ? real_aligned_alloc(a, n) : __libc_memalign(a, n);
}

EXPORT int posix_memalign(void **out, size_t a, size_t n)
{
    if (real_posix_memalign)
        return real_posix_memalign(out, a, n);
    void *p = __libc_memalign(a, n);
    if (!p)
        return ENOMEM;
    *out = p;
    return 0;
}
