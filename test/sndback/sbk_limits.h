/* What a stream may be opened with, and the two checks made against it: HW_PARAM_QUERY
 * (narrow a configuration space) and OPEN (accept one configuration). Pure functions. */
#ifndef SBK_LIMITS_H
#define SBK_LIMITS_H

#include <stdbool.h>
#include <stdint.h>

#define SBK_MAX_RATES 64
#define SBK_MAX_CHANNELS 255u            /* channels-min/max are uint8 in sndif */
#define SBK_MAX_BUFFER_BYTES (64u << 20) /* largest buffer OPEN maps (bounds grants and memory) */

struct sbk_range {
    uint32_t min, max;
};

struct sbk_rates {                      /* ascending, no duplicates */
    unsigned n;
    uint32_t v[SBK_MAX_RATES];
};

struct sbk_limits {
    uint64_t formats;                   /* bit n = XENSND_PCM_FORMAT n, only openable ones */
    struct sbk_rates rates;
    struct sbk_range channels;
    uint32_t buffer_bytes;              /* buffer-size: the most octets OPEN may ask for */
    struct sbk_range buffer_frames;     /* --buffer-frames, [1, UINT32_MAX] by default */
    struct sbk_range period_frames;     /* --period-frames, [1, UINT32_MAX] by default */
};

/* Adds a rate keeping the set sorted; -1 when full. */
int sbk_rates_add(struct sbk_rates *r, uint32_t rate);
bool sbk_rates_contains(const struct sbk_rates *r, uint32_t rate);
/* Parses a ','/';' list of rates (decimal Hz > 0, at most 11 digits each): 0, or -1. */
int sbk_rates_parse(const char *text, struct sbk_rates *out);
/* Keeps the rates present in both. */
void sbk_rates_intersect(struct sbk_rates *r, const struct sbk_rates *other);

/* The sndif query: formats mask, then min/max of rates, channels, buffer and period (frames). */
struct sbk_query {
    uint64_t formats;
    struct sbk_range rates, channels, buffer, period;
};

/* Narrows `q` to what the limits allow: formats intersected; rates to [min,max] of the allowed
 * rates inside the request; channels intersected; buffer and period (frames) intersected with
 * the frame constraints and with buffer-size at the smallest frame the answer allows; period
 * max <= buffer max / 2 and buffer min >= 2 * period min (two periods at least).
 * Returns 0 with the answer in `out` (always inside `q`), or -1 when it is empty. */
int sbk_query_answer(const struct sbk_limits *l, const struct sbk_query *q, struct sbk_query *out);

/* The OPEN parameters. */
struct sbk_open_params {
    uint32_t rate;
    uint8_t format, channels;
    uint32_t buffer_sz, period_sz;      /* octets */
};

/* Checks OPEN parameters: format/rate/channels allowed, 0 < buffer_sz <= buffer-size (and
 * <= SBK_MAX_BUFFER_BYTES), period_sz <= buffer_sz, buffer and period (when not 0) frames
 * inside the frame constraints. Returns NULL if fine, else what is wrong (for the log). */
const char *sbk_open_check(const struct sbk_limits *l, const struct sbk_open_params *p);

#endif
