/* A bounded byte FIFO (captured data awaiting READ, loopback data awaiting capture). */
#ifndef SBK_FIFO_H
#define SBK_FIFO_H

#include <stddef.h>
#include <stdint.h>

struct sbk_fifo {
    uint8_t *data;
    size_t cap, head, len;          /* head: index of the oldest byte */
};

int sbk_fifo_init(struct sbk_fifo *f, size_t cap);      /* 0 or -1 (no memory) */
void sbk_fifo_free(struct sbk_fifo *f);
void sbk_fifo_clear(struct sbk_fifo *f);
/* Appends n bytes; when that overfills it, the oldest bytes are dropped. Returns how many. */
size_t sbk_fifo_push(struct sbk_fifo *f, const void *src, size_t n);
/* Takes up to n of the oldest bytes into dst (may be NULL to drop them); returns how many. */
size_t sbk_fifo_pop(struct sbk_fifo *f, void *dst, size_t n);

#endif
