#include "sbk_stream.h"

#include "sbk_format.h"
#include "sbk_log.h"
#include "sbk_names.h"
#include "sbk_ring.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>
#include <xen/errno.h>

#define SBK_TICK_MIN_NS 1000000u        /* clock ticks: half a period, within 1..10 ms */
#define SBK_TICK_MAX_NS 10000000u
#define SBK_EXIT_CRASH 3                /* --exit-after-bytes */

static const struct sbk_stream_opts *sbk_opts(const struct sbk_stream *s)
{
    return &s->cfg->opts;
}

static bool sbk_clock_none(const struct sbk_stream *s)
{
    return s->card->d->opts.clock_none;
}

/* ---- the open session: buffer mapping, files ---- */

static void sbk_unmap_buffer(struct sbk_stream *s)
{
    sbk_unmap_grants(&s->card->d->xen, s->buffer, s->buffer_pages);
    s->buffer = NULL;
    s->buffer_pages = 0;
}

/* Copies the data refs of one directory page; returns its gref_dir_next_page (read once). */
static int sbk_read_dir_page(struct sbk_stream *s, grant_ref_t dir_ref, uint32_t *refs, uint32_t count,
                             grant_ref_t *next)
{
    struct sbk_xen *x = &s->card->d->xen;
    uint32_t ref = dir_ref;
    uint8_t *page = sbk_map_grants(x, s->card->fe_domid, 1, &ref);

    if (!page) {
        sbk_warn("%s: OPEN: cannot map directory page gref %u: %s", s->cfg->uid, dir_ref, strerror(errno));
        return -1;
    }
    memcpy(refs, page + offsetof(struct xensnd_page_directory, gref), count * sizeof(uint32_t));
    memcpy(next, page + offsetof(struct xensnd_page_directory, gref_dir_next_page), sizeof(*next));
    sbk_unmap_grants(x, page, 1);
    return 0;
}

/* Walks exactly ceil(pages / refs-per-page) directory pages, then maps the data pages. */
static int sbk_map_buffer(struct sbk_stream *s, grant_ref_t dir_ref, uint32_t buffer_sz)
{
    uint32_t pages = (buffer_sz + SBK_PAGE_SIZE - 1) / SBK_PAGE_SIZE;
    uint32_t dirs = (pages + SBK_REFS_PER_DIR_PAGE - 1) / SBK_REFS_PER_DIR_PAGE, filled = 0;
    uint32_t *refs = calloc(pages, sizeof(*refs));
    int rc = -XEN_EINVAL;

    if (!refs)
        return -XEN_ENOMEM;
    for (uint32_t d = 0; d < dirs; d++) {
        uint32_t count = pages - filled < SBK_REFS_PER_DIR_PAGE ? pages - filled : SBK_REFS_PER_DIR_PAGE;
        grant_ref_t next;

        if (sbk_read_dir_page(s, dir_ref, refs + filled, count, &next) < 0)
            goto out;
        filled += count;
        if (d + 1 < dirs && next == 0) {
            sbk_warn("%s: OPEN: directory chain ends after %u of %u pages", s->cfg->uid, d + 1, dirs);
            goto out;
        }
        dir_ref = next;
    }
    s->buffer = sbk_map_grants(&s->card->d->xen, s->card->fe_domid, pages, refs);
    if (!s->buffer) {
        sbk_warn("%s: OPEN: cannot map the %u data pages: %s", s->cfg->uid, pages, strerror(errno));
        goto out;
    }
    s->buffer_pages = pages;
    sbk_info("%s: OPEN: buffer of %u pages through a directory of %u pages", s->cfg->uid, pages, dirs);
    rc = 0;
out:
    free(refs);
    return rc;
}

/* The n-th OPEN of this unique-id in this run (names the n-th WAV). */
static unsigned sbk_next_open_number(struct sbk_daemon *d, const char *uid)
{
    struct sbk_open_count *c;

    for (c = d->open_counts; c; c = c->next)
        if (strcmp(c->uid, uid) == 0)
            return ++c->count;
    c = calloc(1, sizeof(*c));
    if (!c)
        return 1;
    snprintf(c->uid, sizeof(c->uid), "%s", uid);
    c->count = 1;
    c->next = d->open_counts;
    d->open_counts = c;
    return 1;
}

static struct sbk_pcm_shape sbk_shape(const struct sbk_stream *s)
{
    return (struct sbk_pcm_shape){ s->params.format, s->params.channels, s->params.rate };
}

static int sbk_open_files(struct sbk_stream *s)
{
    struct sbk_daemon *d = s->card->d;
    struct sbk_pcm_shape shape = sbk_shape(s);
    char err[256];

    if (s->cfg->capture) {
        const struct sbk_capture_source *src = sbk_opts(s)->has_capture ? &sbk_opts(s)->capture : NULL;

        if (sbk_fifo_init(&s->captured, s->params.buffer_sz) < 0 ||
            sbk_source_open(&s->source, src, &shape, 2 * (size_t)s->params.buffer_sz, err, sizeof(err)) < 0) {
            sbk_error("%s: OPEN: %s", s->cfg->uid, s->captured.data ? err : "out of memory");
            sbk_source_close(&s->source);
            return -XEN_EIO;
        }
        s->source_open = true;
        return 0;
    }
    if (sbk_fifo_init(&s->unplayed, s->params.buffer_sz) < 0) {
        sbk_error("%s: OPEN: out of memory", s->cfg->uid);
        return -XEN_EIO;
    }
    if (d->opts.discard)
        return 0;
    if (sbk_sink_open(&s->sink, d->opts.out_dir, s->cfg->uid, sbk_next_open_number(d, s->cfg->uid), &shape, err,
                      sizeof(err)) < 0) {
        sbk_error("%s: OPEN: %s", s->cfg->uid, err);
        return -XEN_EIO;
    }
    if (s->sink.raw_fd >= 0)
        sbk_warn("%s: WAV cannot hold %s: storing the bytes raw in %s", s->cfg->uid,
                 sbk_format_name(s->params.format), s->sink.path);
    s->sink_open = true;
    s->sink_failed = false;
    return 0;
}

static void sbk_stop_timer(struct sbk_stream *s)
{
    struct itimerspec off = { 0 };

    if (s->timer_fd >= 0)
        timerfd_settime(s->timer_fd, 0, &off, NULL);
}

static void sbk_print_summary(const struct sbk_stream *s)
{
    const struct sbk_stream_stats *st = &s->stats;

    sbk_always("stream %s closed: %llu bytes, %u Hz, %u ch, %s, gaps=%llu late_frames=%llu discarded=%llu "
               "overrun_bytes=%llu events=%llu dropped_events=%llu",
               s->cfg->uid, (unsigned long long)st->bytes, s->params.rate, s->params.channels,
               sbk_format_name(s->params.format), (unsigned long long)st->gaps,
               (unsigned long long)st->late_frames, (unsigned long long)st->discarded,
               (unsigned long long)st->overrun_bytes, (unsigned long long)st->events,
               (unsigned long long)st->dropped_events);
}

static void sbk_clock_advance(struct sbk_stream *s);

void sbk_stream_shutdown(struct sbk_stream *s)
{
    if (s->state == SBK_ST_CLOSED)
        return;
    if (s->state == SBK_ST_RUNNING && !sbk_clock_none(s))
        sbk_clock_advance(s); /* what the clock played until the CLOSE */
    if (!s->cfg->capture && s->queued) {
        sbk_info("%s: CLOSE discards %llu queued bytes", s->cfg->uid, (unsigned long long)s->queued);
        s->stats.discarded += s->queued;
        s->queued = 0;
    }
    sbk_stop_timer(s);
    if (s->sink_open) {
        size_t lost = sbk_sink_close(&s->sink);

        if (lost)
            sbk_warn("%s: %zu bytes of an incomplete last frame not stored in %s", s->cfg->uid, lost, s->sink.path);
        s->sink_open = false;
    }
    if (s->source_open)
        sbk_source_close(&s->source);
    s->source_open = false;
    sbk_fifo_free(&s->captured);
    sbk_fifo_free(&s->unplayed);
    sbk_print_summary(s);
    sbk_unmap_buffer(s);
    free(s->scratch);
    s->scratch = NULL;
    s->state = SBK_ST_CLOSED;
}

static int sbk_do_open(struct sbk_stream *s, const struct xensnd_open_req *o)
{
    struct sbk_open_params p = { o->pcm_rate, o->pcm_format, o->pcm_channels, o->buffer_sz, o->period_sz };
    const char *why;
    int rc;

    if (s->state == SBK_ST_RUNNING || s->state == SBK_ST_PAUSED)
        return -XEN_EBUSY;
    if (s->state == SBK_ST_OPEN) {
        sbk_info("%s: OPEN on an open stream: closing the previous session first", s->cfg->uid);
        sbk_stream_shutdown(s);
    }
    why = sbk_open_check(&s->cfg->limits, &p);
    if (why) {
        sbk_warn("%s: OPEN refused: %s (%u Hz, %s, %u ch, buffer %u, period %u)", s->cfg->uid, why, p.rate,
                 sbk_format_name(p.format), p.channels, p.buffer_sz, p.period_sz);
        return -XEN_EINVAL;
    }
    memset(&s->stats, 0, sizeof(s->stats));
    s->params = p;
    s->frame_bytes = sbk_format_bytes(p.format) * p.channels;
    s->position = s->queued = s->dry_bytes = 0;
    s->loop_warned = false;
    rc = sbk_map_buffer(s, o->gref_directory, p.buffer_sz);
    if (rc < 0)
        return rc;
    s->scratch = malloc(p.buffer_sz);
    if (!s->scratch) {
        sbk_unmap_buffer(s);
        return -XEN_ENOMEM;
    }
    rc = sbk_open_files(s);
    if (rc < 0) {
        sbk_unmap_buffer(s);
        free(s->scratch);
        s->scratch = NULL;
        return rc;
    }
    s->state = SBK_ST_OPEN;
    sbk_info("%s: OPEN %u Hz, %s, %u ch, buffer %u, period %u%s%s", s->cfg->uid, p.rate, sbk_format_name(p.format),
             p.channels, p.buffer_sz, p.period_sz, s->sink_open ? " -> " : "", s->sink_open ? s->sink.path : "");
    return 0;
}

/* ---- position and events ---- */

/* The position a CUR_POS event reports, after --bad-pos. */
static uint64_t sbk_reported_position(struct sbk_stream *s, uint64_t pos)
{
    uint64_t nth = s->stats.events + s->stats.dropped_events, back = 2 * (uint64_t)s->params.period_sz;

    switch (sbk_opts(s)->bad_pos) {
    case SBK_BAD_POS_BACKWARDS:     /* every second event: two periods behind */
        return nth % 2 == 1 ? (pos > back ? pos - back : 0) : pos;
    case SBK_BAD_POS_BEYOND:        /* a buffer ahead of what exists */
        return pos + s->params.buffer_sz;
    case SBK_BAD_POS_NONE:
        break;
    }
    return pos;
}

/* Reports a position; while a request is handled, after its response (a frontend must not
 * see the effect of a request before its answer). Only the newest ring's worth is kept. */
static void sbk_send_position(struct sbk_stream *s, uint64_t pos)
{
    if (!s->in_request) {
        sbk_ring_send_cur_pos(s, sbk_reported_position(s, pos));
        return;
    }
    if (s->n_deferred == XENSND_IN_RING_LEN) {
        memmove(s->deferred, s->deferred + 1, (XENSND_IN_RING_LEN - 1) * sizeof(s->deferred[0]));
        s->n_deferred--;
    }
    s->deferred[s->n_deferred++] = pos;
}

static void sbk_flush_deferred_positions(struct sbk_stream *s)
{
    for (unsigned i = 0; i < s->n_deferred; i++)
        sbk_ring_send_cur_pos(s, sbk_reported_position(s, s->deferred[i]));
    s->n_deferred = 0;
}

/* The position moved from old to now: one event per period boundary crossed (at most a
 * ring's worth, the latest), and one when playback has just played its last queued byte. */
static void sbk_report_progress(struct sbk_stream *s, uint64_t old, bool drained)
{
    uint64_t period = s->params.period_sz, first, last;

    if (period == 0 || s->position == old)
        return;
    first = old / period + 1;
    last = s->position / period;
    if (last >= first && last - first >= XENSND_IN_RING_LEN)
        first = last - XENSND_IN_RING_LEN + 1;
    for (uint64_t k = first; k <= last; k++)
        sbk_send_position(s, k * period);
    if (drained && s->position % period && !sbk_opts(s)->period_events_only)
        sbk_send_position(s, s->position);
}

static void sbk_feed_loopbacks(struct sbk_stream *s, const uint8_t *data, size_t len);

/* Plays n bytes: they leave the queue for the WAV file (what was played, at the clock: a frame
 * the frontend stopped or closed before its time never reaches the file) and for the capture
 * streams that loop this one back. */
static void sbk_play_out(struct sbk_stream *s, uint64_t n)
{
    uint8_t chunk[4096];

    while (n) {
        size_t got = sbk_fifo_pop(&s->unplayed, chunk, n < sizeof(chunk) ? (size_t)n : sizeof(chunk));

        if (!got)
            break;
        if (s->sink_open && sbk_sink_write(&s->sink, chunk, got) < 0 && !s->sink_failed) {
            sbk_error("%s: writing %s failed", s->cfg->uid, s->sink.path);
            s->sink_failed = true;
        }
        sbk_feed_loopbacks(s, chunk, got);
        n -= got;
    }
}

/* Playback: the clock spent `due` octets; play what is queued, the rest is a dry spell. */
static void sbk_playback_advance(struct sbk_stream *s, uint64_t due)
{
    uint64_t play = due < s->queued ? due : s->queued, old = s->position;

    sbk_play_out(s, play);
    s->queued -= play;
    s->position += play;
    s->dry_bytes += due - play;
    sbk_report_progress(s, old, play && !s->queued);
}

/* Capture: the source produces n octets into the captured FIFO (oldest dropped when full). */
static void sbk_capture_produce(struct sbk_stream *s, uint64_t n)
{
    uint64_t old = s->position, cap = s->params.buffer_sz;

    if (n > cap) {                  /* only the newest buffer can survive */
        s->stats.overrun_bytes += s->captured.len + (n - cap);
        sbk_fifo_clear(&s->captured);
        s->position += n - cap;
        n = cap;
    }
    sbk_source_read(&s->source, s->scratch, (size_t)n);
    s->stats.overrun_bytes += sbk_fifo_push(&s->captured, s->scratch, (size_t)n);
    s->position += n;
    sbk_report_progress(s, old, false);
}

static bool sbk_same_shape(const struct sbk_stream *a, const struct sbk_stream *b);

/* A loopback capture whose playback stream is running takes that stream's clock: it captures
 * exactly what is played, when it is played, so no two clocks drift or jitter apart. */
static bool sbk_loop_driver_running(const struct sbk_stream *c)
{
    if (!c->source_open || c->source.kind != SBK_CAPTURE_LOOPBACK)
        return false;
    for (unsigned i = 0; i < c->card->n_streams; i++) {
        const struct sbk_stream *p = &c->card->streams[i];

        if (!p->cfg->capture && p->state == SBK_ST_RUNNING && !strcmp(c->cfg->opts.capture.arg, p->cfg->uid))
            return sbk_same_shape(p, c);
    }
    return false;
}

static uint64_t sbk_clock_frames_since(uint64_t ns, uint32_t rate)
{
    return ns / 1000000000u * rate + ns % 1000000000u * rate / 1000000000u;
}

/* Advances the sample clock to now. */
static void sbk_clock_advance(struct sbk_stream *s)
{
    uint64_t now = sbk_now_ns(), frames, due;

    frames = s->clock_base_frames + sbk_clock_frames_since(now - s->clock_base_ns, s->params.rate);
    if (frames <= s->clock_frames)
        return;
    due = (frames - s->clock_frames) * s->frame_bytes;
    s->clock_frames = frames;
    if (s->cfg->capture && sbk_loop_driver_running(s))
        return; /* the playback stream's clock produces our data (sbk_feed_loopbacks) */
    if (s->cfg->capture)
        sbk_capture_produce(s, due);
    else
        sbk_playback_advance(s, due);
}

static void sbk_clock_start(struct sbk_stream *s)
{
    uint64_t period_ns = 0, tick;
    struct itimerspec its;

    s->clock_base_ns = sbk_now_ns();
    s->clock_base_frames = s->clock_frames;
    if (sbk_clock_none(s) || s->timer_fd < 0)
        return;
    if (s->params.period_sz)
        period_ns = (uint64_t)(s->params.period_sz / s->frame_bytes) * 1000000000u / s->params.rate;
    tick = period_ns / 2;
    if (tick < SBK_TICK_MIN_NS)
        tick = period_ns ? SBK_TICK_MIN_NS : SBK_TICK_MAX_NS;
    if (tick > SBK_TICK_MAX_NS)
        tick = SBK_TICK_MAX_NS;
    its.it_interval.tv_sec = 0;
    its.it_interval.tv_nsec = (long)tick;
    its.it_value = its.it_interval;
    timerfd_settime(s->timer_fd, 0, &its, NULL);
}

void sbk_stream_on_timer(struct sbk_stream *s)
{
    uint64_t expirations;

    if (read(s->timer_fd, &expirations, sizeof(expirations)) < 0 && errno != EAGAIN)
        sbk_warn("%s: reading the clock timer: %s", s->cfg->uid, strerror(errno));
    if (s->state == SBK_ST_RUNNING && !sbk_clock_none(s))
        sbk_clock_advance(s);
}

/* ---- requests ---- */

static int sbk_trigger_start(struct sbk_stream *s)
{
    if (s->state != SBK_ST_OPEN)
        return -XEN_EINVAL;
    s->position = s->clock_frames = s->dry_bytes = 0;
    if (s->cfg->capture)
        sbk_fifo_clear(&s->captured);
    s->state = SBK_ST_RUNNING;
    sbk_clock_start(s);
    if (sbk_clock_none(s) && !s->cfg->capture)
        sbk_playback_advance(s, s->queued);     /* the prefill plays at once */
    return 0;
}

static int sbk_trigger_stop(struct sbk_stream *s)
{
    if (s->state == SBK_ST_CLOSED)
        return -XEN_EINVAL;
    if (s->state == SBK_ST_RUNNING && !sbk_clock_none(s))
        sbk_clock_advance(s);
    sbk_stop_timer(s);
    if (s->queued)
        sbk_info("%s: STOP discards %llu queued bytes", s->cfg->uid, (unsigned long long)s->queued);
    s->stats.discarded += s->queued;
    s->queued = 0;
    sbk_fifo_clear(&s->unplayed);
    if (s->cfg->capture)
        sbk_fifo_clear(&s->captured);
    s->state = SBK_ST_OPEN;
    return 0;
}

static int sbk_do_trigger(struct sbk_stream *s, unsigned type)
{
    sbk_info("%s: TRIGGER %s (position %llu)", s->cfg->uid, sbk_trigger_name(type), (unsigned long long)s->position);
    switch (type) {
    case XENSND_OP_TRIGGER_START:
        return sbk_trigger_start(s);
    case XENSND_OP_TRIGGER_STOP:
        return sbk_trigger_stop(s);
    case XENSND_OP_TRIGGER_PAUSE:
        if (s->state != SBK_ST_RUNNING)
            return -XEN_EINVAL;
        if (!sbk_clock_none(s))
            sbk_clock_advance(s);
        sbk_stop_timer(s);
        s->state = SBK_ST_PAUSED;
        return 0;
    case XENSND_OP_TRIGGER_RESUME:
        if (s->state != SBK_ST_PAUSED)
            return -XEN_EINVAL;
        s->state = SBK_ST_RUNNING;
        sbk_clock_start(s);
        return 0;
    }
    return -XEN_EINVAL;
}

/* offset/length inside the OPEN buffer (no overflow). */
static bool sbk_range_ok(const struct sbk_stream *s, const struct xensnd_rw_req *rw)
{
    return s->state != SBK_ST_CLOSED && (uint64_t)rw->offset + rw->length <= s->params.buffer_sz;
}

static bool sbk_same_shape(const struct sbk_stream *a, const struct sbk_stream *b)
{
    return a->params.format == b->params.format && a->params.rate == b->params.rate &&
           a->params.channels == b->params.channels;
}

/* Hands played bytes to the running capture streams of the card that loop this one back. */
static void sbk_feed_loopbacks(struct sbk_stream *s, const uint8_t *data, size_t len)
{
    for (unsigned i = 0; i < s->card->n_streams; i++) {
        struct sbk_stream *c = &s->card->streams[i];

        if (!c->source_open || c->source.kind != SBK_CAPTURE_LOOPBACK || strcmp(c->cfg->opts.capture.arg, s->cfg->uid))
            continue;
        if (!sbk_same_shape(s, c)) {
            if (!c->loop_warned)
                sbk_warn("%s: loopback of %s needs the same format, rate and channels: capturing silence",
                         c->cfg->uid, s->cfg->uid);
            c->loop_warned = true;
            continue;
        }
        if (c->state != SBK_ST_RUNNING)
            continue; /* what is played while nobody records is gone, as on a real loopback */
        sbk_fifo_push(&c->source.loop, data, len);
        sbk_capture_produce(c, len);
    }
}

static void sbk_exit_if_crash_due(struct sbk_stream *s)
{
    const struct sbk_stream_opts *o = sbk_opts(s);

    if (o->has_exit_after && s->received_total >= o->exit_after_bytes) {
        sbk_error("%s: %llu playback bytes received: exiting with status %d (--exit-after-bytes)", s->cfg->uid,
                  (unsigned long long)s->received_total, SBK_EXIT_CRASH);
        exit(SBK_EXIT_CRASH);
    }
}

/* New data after the queue ran dry while running: the dry clock time becomes a gap. */
static void sbk_count_gap(struct sbk_stream *s)
{
    sbk_info("%s: gap: the queue ran dry for %llu frames", s->cfg->uid,
             (unsigned long long)(s->dry_bytes / s->frame_bytes));
    s->stats.gaps++;
    s->stats.late_frames += s->dry_bytes / s->frame_bytes;
    s->dry_bytes = 0;
}

static int sbk_do_write(struct sbk_stream *s, const struct xensnd_rw_req *rw)
{
    if (s->cfg->capture || !sbk_range_ok(s, rw))
        return -XEN_EINVAL;
    if (s->queued + rw->length > s->params.buffer_sz)
        return -XEN_ENOSPC;
    if (rw->length && s->dry_bytes && s->state == SBK_ST_RUNNING)
        sbk_count_gap(s);
    if (s->stats.gaps && sbk_opts(s)->fail_after_gap)
        return -XEN_EIO;        /* not taken: the frontend must see the dropout (make bench-xen) */
    memcpy(s->scratch, s->buffer + rw->offset, rw->length);    /* taken: the frontend may reuse the range */
    sbk_fifo_push(&s->unplayed, s->scratch, rw->length);       /* the WAV file gets it when played */
    s->stats.bytes += rw->length;
    s->received_total += rw->length;
    sbk_exit_if_crash_due(s);
    s->queued += rw->length;
    if (s->state == SBK_ST_RUNNING && sbk_clock_none(s))
        sbk_playback_advance(s, s->queued);
    return 0;
}

static int sbk_do_read(struct sbk_stream *s, const struct xensnd_rw_req *rw)
{
    if (!s->cfg->capture || !sbk_range_ok(s, rw))
        return -XEN_EINVAL;
    if (sbk_clock_none(s) && s->captured.len < rw->length)     /* free-running: produced on demand */
        sbk_capture_produce(s, rw->length - s->captured.len);
    if (s->captured.len < rw->length) {
        sbk_info("%s: READ of %u bytes, only %zu captured", s->cfg->uid, rw->length, s->captured.len);
        return -XEN_EIO;
    }
    sbk_fifo_pop(&s->captured, s->scratch, rw->length);
    memcpy(s->buffer + rw->offset, s->scratch, rw->length);
    s->stats.bytes += rw->length;
    return 0;
}

static uint32_t sbk_le32(const uint8_t *p)
{
    return p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* SET/GET_VOLUME: one int32 (little endian, 0.001 dB) per channel at the request's offset, for
 * the first length/4 channels (1..channels). */
static int sbk_do_volume(struct sbk_stream *s, unsigned op, const struct xensnd_rw_req *rw)
{
    unsigned n = rw->length / 4;
    uint8_t *slots = s->scratch;

    if (!sbk_range_ok(s, rw) || rw->length % 4 || n == 0 || n > s->params.channels)
        return -XEN_EINVAL;
    if (op == XENSND_OP_GET_VOLUME) {
        for (unsigned c = 0; c < n; c++)
            for (unsigned b = 0; b < 4; b++)
                slots[4 * c + b] = (uint8_t)((uint32_t)s->volume[c] >> (8 * b));
        memcpy(s->buffer + rw->offset, slots, rw->length);
        return 0;
    }
    memcpy(slots, s->buffer + rw->offset, rw->length);
    for (unsigned c = 0; c < n; c++) {
        s->volume[c] = (int32_t)sbk_le32(slots + 4 * c);
        sbk_info("%s: channel %u volume %s%d.%03d dB", s->cfg->uid, c, s->volume[c] < 0 ? "-" : "",
                 abs(s->volume[c] / 1000), abs(s->volume[c] % 1000));
    }
    return 0;
}

/* MUTE/UNMUTE: a flag per channel, non-zero = this channel is (un)muted. sndif's text says one
 * octet per channel, its diagram 4-octet slots: length == 4 * channels means slots, 1..channels
 * means octets for the first `length` channels. */
static int sbk_do_mute(struct sbk_stream *s, unsigned op, const struct xensnd_rw_req *rw)
{
    unsigned channels = s->params.channels, width = rw->length == 4 * channels ? 4 : 1;
    unsigned n = rw->length / width;
    uint8_t *flags = s->scratch;

    if (!sbk_range_ok(s, rw) || n == 0 || n > channels)
        return -XEN_EINVAL;
    memcpy(flags, s->buffer + rw->offset, rw->length);
    for (unsigned c = 0; c < n; c++) {
        bool set = width == 4 ? sbk_le32(flags + 4 * c) != 0 : flags[c] != 0;

        if (!set)
            continue;
        s->muted[c] = op == XENSND_OP_MUTE;
        sbk_info("%s: channel %u %s", s->cfg->uid, c, s->muted[c] ? "muted" : "unmuted");
    }
    return 0;
}

static int sbk_do_query(struct sbk_stream *s, const struct xensnd_query_hw_param *req,
                        struct xensnd_query_hw_param *ans)
{
    struct sbk_query q = { req->formats,
                           { req->rates.min, req->rates.max },
                           { req->channels.min, req->channels.max },
                           { req->buffer.min, req->buffer.max },
                           { req->period.min, req->period.max } };
    struct sbk_query a;

    if (sbk_query_answer(&s->cfg->limits, &q, &a) < 0) {
        sbk_info("%s: HW_PARAM_QUERY: nothing allowed in formats %#llx rates %u-%u ch %u-%u buffer %u-%u period %u-%u",
                 s->cfg->uid, (unsigned long long)q.formats, q.rates.min, q.rates.max, q.channels.min,
                 q.channels.max, q.buffer.min, q.buffer.max, q.period.min, q.period.max);
        return -XEN_EINVAL;
    }
    ans->formats = a.formats;
    ans->rates.min = a.rates.min;
    ans->rates.max = a.rates.max;
    ans->channels.min = a.channels.min;
    ans->channels.max = a.channels.max;
    ans->buffer.min = a.buffer.min;
    ans->buffer.max = a.buffer.max;
    ans->period.min = a.period.min;
    ans->period.max = a.period.max;
    if (sbk_opts(s)->wide_query) {
        /* snd_be's answer: its device's unnarrowed maximum rate, and more than was asked. */
        ans->formats |= 1ull << XENSND_PCM_FORMAT_MU_LAW;
        ans->rates.max = UINT32_MAX;
        ans->channels.min = 1;
        ans->buffer.max = UINT32_MAX;
        ans->period.min = 1;
    }
    return 0;
}

static void sbk_stream_dispatch(struct sbk_stream *s, const struct xensnd_req *req)
{
    struct xensnd_query_hw_param ans;
    int status;

    memset(&ans, 0, sizeof(ans));
    switch (req->operation) {
    case XENSND_OP_OPEN:
        status = sbk_do_open(s, &req->op.open);
        break;
    case XENSND_OP_CLOSE:
        sbk_stream_shutdown(s);     /* a no-op when closed: Linux sends CLOSE from hw_free anyway */
        status = 0;
        break;
    case XENSND_OP_WRITE:
        status = sbk_do_write(s, &req->op.rw);
        break;
    case XENSND_OP_READ:
        status = sbk_do_read(s, &req->op.rw);
        break;
    case XENSND_OP_SET_VOLUME:
    case XENSND_OP_GET_VOLUME:
        status = sbk_do_volume(s, req->operation, &req->op.rw);
        break;
    case XENSND_OP_MUTE:
    case XENSND_OP_UNMUTE:
        status = sbk_do_mute(s, req->operation, &req->op.rw);
        break;
    case XENSND_OP_TRIGGER:
        status = sbk_do_trigger(s, req->op.trigger.type);
        break;
    case XENSND_OP_HW_PARAM_QUERY:
        status = sbk_do_query(s, &req->op.hw_param, &ans);
        sbk_ring_respond(s, req, status, status == 0 ? &ans : NULL);
        return;
    default:
        status = -XEN_EINVAL;
        break;
    }
    sbk_ring_respond(s, req, status, NULL);
}

void sbk_stream_request(struct sbk_stream *s, const struct xensnd_req *req)
{
    s->in_request = true;
    sbk_stream_dispatch(s, req);
    s->in_request = false;
    sbk_flush_deferred_positions(s);
}
