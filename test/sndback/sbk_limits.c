#include "sbk_limits.h"

#include "sbk_format.h"
#include "sbk_parse.h"

#include <string.h>

int sbk_rates_add(struct sbk_rates *r, uint32_t rate)
{
    unsigned i = 0;

    while (i < r->n && r->v[i] < rate)
        i++;
    if (i < r->n && r->v[i] == rate)
        return 0;
    if (r->n == SBK_MAX_RATES)
        return -1;
    memmove(&r->v[i + 1], &r->v[i], (r->n - i) * sizeof(r->v[0]));
    r->v[i] = rate;
    r->n++;
    return 0;
}

static int sbk_rate_item(void *ctx, const char *item, size_t len)
{
    char buf[12];               /* XENSND_SAMPLE_RATE_MAX_LEN digits */
    uint32_t rate;

    if (len >= sizeof(buf))
        return -1;
    memcpy(buf, item, len);
    buf[len] = '\0';
    if (sbk_parse_u32(buf, &rate) < 0 || rate == 0)
        return -1;
    return sbk_rates_add(ctx, rate);
}

int sbk_rates_parse(const char *text, struct sbk_rates *out)
{
    memset(out, 0, sizeof(*out));
    return sbk_parse_list(text, sbk_rate_item, out) ? -1 : 0;
}

bool sbk_rates_contains(const struct sbk_rates *r, uint32_t rate)
{
    for (unsigned i = 0; i < r->n; i++)
        if (r->v[i] == rate)
            return true;
    return false;
}

void sbk_rates_intersect(struct sbk_rates *r, const struct sbk_rates *other)
{
    unsigned kept = 0;

    for (unsigned i = 0; i < r->n; i++)
        if (sbk_rates_contains(other, r->v[i]))
            r->v[kept++] = r->v[i];
    r->n = kept;
}

static uint32_t sbk_max_u32(uint32_t a, uint32_t b)
{
    return a > b ? a : b;
}

static uint32_t sbk_min_u32(uint32_t a, uint32_t b)
{
    return a < b ? a : b;
}

/* Smallest sample size among the formats of `mask` (0 if none). */
static unsigned sbk_smallest_sample(uint64_t mask)
{
    unsigned best = 0;

    for (unsigned f = 0; f < SBK_NUM_FORMATS; f++)
        if ((mask >> f) & 1) {
            unsigned b = sbk_format_bytes(f);

            if (b && (!best || b < best))
                best = b;
        }
    return best;
}

static int sbk_query_rates(const struct sbk_rates *allowed, struct sbk_range req, struct sbk_range *out)
{
    bool found = false;

    for (unsigned i = 0; i < allowed->n; i++) {
        uint32_t r = allowed->v[i];

        if (r < req.min || r > req.max)
            continue;
        if (!found)
            out->min = r;
        out->max = r;
        found = true;
    }
    return found ? 0 : -1;
}

int sbk_query_answer(const struct sbk_limits *l, const struct sbk_query *q, struct sbk_query *out)
{
    struct sbk_query a;
    uint32_t most_frames;
    unsigned min_frame;

    memset(&a, 0, sizeof(a));
    a.formats = q->formats & l->formats;
    if (!a.formats || sbk_query_rates(&l->rates, q->rates, &a.rates) < 0)
        return -1;
    a.channels.min = sbk_max_u32(q->channels.min, l->channels.min);
    a.channels.max = sbk_min_u32(q->channels.max, l->channels.max);
    if (a.channels.min > a.channels.max)
        return -1;

    /* The most frames buffer-size holds: with the smallest frame this answer allows. */
    min_frame = sbk_smallest_sample(a.formats) * a.channels.min;
    most_frames = l->buffer_bytes / min_frame;

    a.buffer.min = sbk_max_u32(sbk_max_u32(q->buffer.min, l->buffer_frames.min), 1);
    a.buffer.max = sbk_min_u32(sbk_min_u32(q->buffer.max, l->buffer_frames.max), most_frames);
    a.period.min = sbk_max_u32(sbk_max_u32(q->period.min, l->period_frames.min), 1);
    a.period.max = sbk_min_u32(sbk_min_u32(q->period.max, l->period_frames.max), a.buffer.max / 2);
    if (a.period.min > a.period.max)
        return -1;
    if (a.period.min > UINT32_MAX / 2)
        return -1;
    a.buffer.min = sbk_max_u32(a.buffer.min, 2 * a.period.min);
    if (a.buffer.min > a.buffer.max)
        return -1;
    *out = a;
    return 0;
}

static bool sbk_in_range(uint32_t v, struct sbk_range r)
{
    return v >= r.min && v <= r.max;
}

const char *sbk_open_check(const struct sbk_limits *l, const struct sbk_open_params *p)
{
    unsigned frame;

    if (p->format >= 64 || !((l->formats >> p->format) & 1))
        return "format not allowed";
    if (!sbk_rates_contains(&l->rates, p->rate))
        return "rate not allowed";
    if (!sbk_in_range(p->channels, l->channels))
        return "channel count not allowed";
    if (p->buffer_sz == 0)
        return "buffer_sz is 0";
    if (p->buffer_sz > l->buffer_bytes)
        return "buffer_sz larger than buffer-size";
    if (p->buffer_sz > SBK_MAX_BUFFER_BYTES)
        return "buffer_sz larger than sndback maps";
    if (p->period_sz > p->buffer_sz)
        return "period_sz larger than buffer_sz";
    frame = sbk_format_bytes(p->format) * p->channels;
    if (!sbk_in_range(p->buffer_sz / frame, l->buffer_frames))
        return "buffer frames outside --buffer-frames";
    if (p->period_sz && !sbk_in_range(p->period_sz / frame, l->period_frames))
        return "period frames outside --period-frames";
    return NULL;
}
