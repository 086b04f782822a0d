#include "sbk_fifo.h"

#include <stdlib.h>
#include <string.h>

int sbk_fifo_init(struct sbk_fifo *f, size_t cap)
{
    memset(f, 0, sizeof(*f));
    f->data = malloc(cap ? cap : 1);
    if (!f->data)
        return -1;
    f->cap = cap;
    return 0;
}

void sbk_fifo_free(struct sbk_fifo *f)
{
    free(f->data);
    memset(f, 0, sizeof(*f));
}

void sbk_fifo_clear(struct sbk_fifo *f)
{
    f->head = 0;
    f->len = 0;
}

size_t sbk_fifo_pop(struct sbk_fifo *f, void *dst, size_t n)
{
    size_t taken = 0;

    if (n > f->len)
        n = f->len;
    while (taken < n) {
        size_t chunk = f->cap - f->head;

        if (chunk > n - taken)
            chunk = n - taken;
        if (dst)
            memcpy((uint8_t *)dst + taken, f->data + f->head, chunk);
        f->head = (f->head + chunk) % f->cap;
        f->len -= chunk;
        taken += chunk;
    }
    return taken;
}

size_t sbk_fifo_push(struct sbk_fifo *f, const void *src, size_t n)
{
    const uint8_t *from = src;
    size_t dropped = 0;

    if (f->cap == 0)
        return n;
    if (n > f->cap) {               /* only the newest cap bytes can stay */
        dropped = f->len + (n - f->cap);
        sbk_fifo_clear(f);
        from += n - f->cap;
        n = f->cap;
    } else if (f->len + n > f->cap) {
        dropped = sbk_fifo_pop(f, NULL, f->len + n - f->cap);
    }
    while (n) {
        size_t tail = (f->head + f->len) % f->cap;
        size_t chunk = f->cap - tail;

        if (chunk > n)
            chunk = n;
        memcpy(f->data + tail, from, chunk);
        f->len += chunk;
        from += chunk;
        n -= chunk;
    }
    return dropped;
}
