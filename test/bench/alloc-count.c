/* alloc-count: an LD_PRELOAD library for make bench that counts heap allocations (malloc,
 * calloc, realloc, posix_memalign, aligned_alloc, memalign) in the whole process and writes the
 * count to $ALLOC_COUNT_FILE at exit. Two runs of different lengths give the allocations per
 * period in steady state (the difference over the difference in periods): start-up, which
 * allocates plenty, cancels out. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static atomic_ulong ac_count;
static void *(*ac_malloc)(size_t);
static void *(*ac_calloc)(size_t, size_t);
static void *(*ac_realloc)(void *, size_t);
static int (*ac_posix_memalign)(void **, size_t, size_t);
static void *(*ac_aligned_alloc)(size_t, size_t);
static void *(*ac_memalign)(size_t, size_t);
/* dlsym may calloc before the real calloc is known: it gets this (never freed back to libc). */
static _Alignas(16) char ac_boot[4096];
static size_t ac_boot_used;
static int ac_resolving;

static void ac_resolve(void)
{
    if (ac_malloc || ac_resolving)
        return;
    ac_resolving = 1;
    ac_calloc = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "calloc");
    ac_malloc = (void *(*)(size_t))dlsym(RTLD_NEXT, "malloc");
    ac_realloc = (void *(*)(void *, size_t))dlsym(RTLD_NEXT, "realloc");
    ac_posix_memalign = (int (*)(void **, size_t, size_t))dlsym(RTLD_NEXT, "posix_memalign");
    ac_aligned_alloc = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "aligned_alloc");
    ac_memalign = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "memalign");
    ac_resolving = 0;
}

void *malloc(size_t n)
{
    ac_resolve();
    atomic_fetch_add(&ac_count, 1);
    return ac_malloc(n);
}

void *calloc(size_t n, size_t m)
{
    if (!ac_calloc) {
        size_t want = (n * m + 15) & ~(size_t)15;

        if (ac_resolving) { /* dlsym's own calloc */
            if (ac_boot_used + want > sizeof(ac_boot))
                return NULL;
            ac_boot_used += want;
            return memset(ac_boot + ac_boot_used - want, 0, want);
        }
        ac_resolve();
    }
    atomic_fetch_add(&ac_count, 1);
    return ac_calloc(n, m);
}

void free(void *p);
void free(void *p)
{
    static void (*real_free)(void *);

    if ((char *)p >= ac_boot && (char *)p < ac_boot + sizeof(ac_boot))
        return;
    if (!real_free)
        real_free = (void (*)(void *))dlsym(RTLD_NEXT, "free");
    real_free(p);
}

void *realloc(void *p, size_t n)
{
    ac_resolve();
    atomic_fetch_add(&ac_count, 1);
    return ac_realloc(p, n);
}

int posix_memalign(void **out, size_t align, size_t n)
{
    ac_resolve();
    atomic_fetch_add(&ac_count, 1);
    return ac_posix_memalign(out, align, n);
}

void *aligned_alloc(size_t align, size_t n)
{
    ac_resolve();
    atomic_fetch_add(&ac_count, 1);
    return ac_aligned_alloc(align, n);
}

void *memalign(size_t align, size_t n)
{
    ac_resolve();
    atomic_fetch_add(&ac_count, 1);
    return ac_memalign(align, n);
}

__attribute__((destructor)) static void ac_report(void)
{
    const char *path = getenv("ALLOC_COUNT_FILE");
    FILE *f;

    if (!path || !(f = fopen(path, "w")))
        return;
    fprintf(f, "%lu\n", (unsigned long)atomic_load(&ac_count));
    fclose(f);
}
