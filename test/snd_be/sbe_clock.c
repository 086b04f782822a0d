/* sbe_clock: a test-only ALSA PCM device (ioplug) that behaves like a sound card's DMA engine
 * for snd_be, which plays into and records from an ALSA device (test/snd_be/README.md).
 *
 *   pcm_type.sbe_clock { lib "/abs/path/libasound_module_pcm_sbe_clock.so" }
 *   pcm.sbe_pb  { type sbe_clock record_dir "/out" name "sbe-pb" }     # playback
 *   pcm.sbe_cap { type sbe_clock record_dir "/out" name "sbe-cap" source "/out/capture-source.raw" }
 *
 * - The hardware pointer moves with CLOCK_MONOTONIC at the stream's rate from the moment of
 *   start (a pause stops it), never with the application: that is what snd_be's position events
 *   and its blocking snd_pcm_writei/readi need to see.
 * - Playback: each frame the pointer passes is "played": appended, bytes unchanged, to
 *   RECORD_DIR/NAME.N.raw (N = 1, 2, ... per snd_pcm_open that started). Running dry (the pointer
 *   reaching what was written) is an underrun exactly as the kernel sees it with the default
 *   stop_threshold: XRUN, and nothing past the written data is recorded.
 * - Capture: the frames the pointer passes are produced from SOURCE (raw bytes in the stream's
 *   format, from its first byte at each open, looping at its end) and recorded the same way.
 *   Not reading in time is an overrun (XRUN).
 * - RECORD_DIR/NAME.N.log has one line per event: "open FORMAT RATE CHANNELS period P buffer B",
 *   then "EVENT F T" for start, pause, resume, stop, xrun and drained, F the frames played (or
 *   captured) since open and T the CLOCK_MONOTONIC time in ns of the event; for xrun and drained
 *   T is when the clock passed the last frame, whenever the device noticed. The record is only
 *   appended when someone asks for the position (snd_be does once per period) or at those
 *   events, so a test learns "everything has played by time T" from the log, not from the
 *   record's size at some moment.
 * - The poll descriptor is a timerfd ticking once per period while running: the "interrupt".
 * ioplug cannot fill audio timestamps; test/snd_be/sbe_htstamp.c does that for snd_be. */
#include <alsa/asoundlib.h>
#include <alsa/pcm_external.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define SBE_NS 1000000000ull

struct sbe_dev {
    snd_pcm_ioplug_t io;
    /* Guards every field below: the ioplug callbacks run under alsa-lib's PCM lock, except
     * drain and poll_revents, which run without it while another thread of snd_be (its
     * position timer) calls snd_pcm_status, hence pointer(). */
    pthread_mutex_t lock;
    char *record_dir, *name, *source;
    int timer_fd;
    int rec_fd, log_fd, src_fd;
    unsigned frame_bytes;
    snd_pcm_uframes_t avail_min, boundary;
    uint64_t done;          /* frames played/captured since prepare: the hardware pointer */
    uint64_t total;         /* frames played/captured since open, across prepares (the log's F) */
    uint64_t t0_ns;         /* CLOCK_MONOTONIC of frame 0 since start, moved forward by pauses */
    uint64_t paused_ns;     /* when the pause began */
    bool running, paused, xrun;
};

static uint64_t sbe_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * SBE_NS + (uint64_t)ts.tv_nsec;
}

static void sbe_log(struct sbe_dev *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sbe_log(struct sbe_dev *d, const char *fmt, ...)
{
    char line[256];
    va_list ap;
    int n;

    if (d->log_fd < 0)
        return;
    va_start(ap, fmt);
    n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if (n > (int)sizeof(line) - 2)
        n = (int)sizeof(line) - 2;
    line[n++] = '\n';
    if (write(d->log_fd, line, (size_t)n) != n)
        SNDERR("sbe_clock: cannot write the event log: %s", strerror(errno));
}

/* When the clock passes frame N (rounded up: the first ns at which sbe_clock_frames() >= N). */
static uint64_t sbe_frame_time(const struct sbe_dev *d, uint64_t n)
{
    return d->t0_ns + (n * SBE_NS + d->io.rate - 1) / d->io.rate;
}

/* The stream's position in frames by the clock (where the hardware pointer would be now). */
static uint64_t sbe_clock_frames(const struct sbe_dev *d)
{
    uint64_t now = d->paused ? d->paused_ns : sbe_now_ns();

    return now <= d->t0_ns ? 0 : (now - d->t0_ns) * d->io.rate / SBE_NS;
}

/* The application's pointer as a running count (alsa-lib wraps it at the boundary, which is
 * near 2^62 frames on 64-bit: a test never gets there). */
static uint64_t sbe_appl(const struct sbe_dev *d)
{
    return d->io.appl_ptr;
}

/* Frame POS of alsa-lib's ring (mmap_rw: alsa-lib owns the buffer, interleaved). */
static char *sbe_ring_at(const struct sbe_dev *d, uint64_t pos)
{
    const snd_pcm_channel_area_t *a = snd_pcm_ioplug_mmap_areas((snd_pcm_ioplug_t *)&d->io);

    return (char *)a[0].addr + a[0].first / 8 + (pos % d->io.buffer_size) * d->frame_bytes;
}

static int sbe_write_all(int fd, const char *buf, size_t len)
{
    while (len) {
        ssize_t n = write(fd, buf, len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -errno;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Capture: SOURCE's next LEN bytes into BUF, from its start again at its end. */
static int sbe_source_read(struct sbe_dev *d, char *buf, size_t len)
{
    while (len) {
        ssize_t n = read(d->src_fd, buf, len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0) {
            if (lseek(d->src_fd, 0, SEEK_SET) < 0)
                return -errno;
            continue; /* an empty source is refused at start: this cannot spin */
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* The hardware passes frames [done, upto): playback records them from the ring; capture fills
 * them from the source into the ring first (the ring's shared memory is alsa-lib's malloc'd
 * buffer; the application only touches frames on its side of the pointer). */
static void sbe_advance(struct sbe_dev *d, uint64_t upto)
{
    while (d->done < upto) {
        uint64_t off = d->done % d->io.buffer_size;
        uint64_t n = upto - d->done;
        char *at = sbe_ring_at(d, d->done);
        int rc = 0;

        if (n > d->io.buffer_size - off)
            n = d->io.buffer_size - off;
        if (d->io.stream == SND_PCM_STREAM_CAPTURE)
            rc = sbe_source_read(d, at, n * d->frame_bytes);
        if (rc == 0 && d->rec_fd >= 0)
            rc = sbe_write_all(d->rec_fd, at, n * d->frame_bytes);
        if (rc < 0)
            SNDERR("sbe_clock: %s: %s", d->name, strerror(-rc));
        d->done += n;
        d->total += n;
    }
}

/* Brings the hardware up to the clock; returns false on an xrun (logged once). */
static bool sbe_update(struct sbe_dev *d)
{
    uint64_t clock, appl = sbe_appl(d);

    if (!d->running || d->xrun)
        return !d->xrun;
    clock = sbe_clock_frames(d);
    if (d->io.stream == SND_PCM_STREAM_PLAYBACK) {
        if (clock < appl) {
            sbe_advance(d, clock);
            return true;
        }
        sbe_advance(d, appl); /* ran dry: what was written is all that plays */
        if (d->io.state == SND_PCM_STATE_DRAINING)
            return true; /* ioplug sees the empty buffer and ends the drain */
    } else {
        if (clock < appl + d->io.buffer_size) {
            sbe_advance(d, clock);
            return true;
        }
        sbe_advance(d, appl + d->io.buffer_size);
    }
    d->xrun = true;
    sbe_log(d, "xrun %llu %llu", (unsigned long long)d->total, (unsigned long long)sbe_frame_time(d, d->done));
    return false;
}

/* The poll descriptor: ticks once per period while running; fires at once when the
 * application must look (playback can be filled before start, a stopped stream, an xrun). */
static void sbe_arm(struct sbe_dev *d)
{
    struct itimerspec it = { { 0, 0 }, { 0, 0 } };
    int flags = 0;

    if (d->running && !d->paused && !d->xrun) {
        uint64_t period_ns = (uint64_t)d->io.period_size * SBE_NS / d->io.rate;
        uint64_t first = d->t0_ns + period_ns;

        it.it_interval.tv_sec = (time_t)(period_ns / SBE_NS);
        it.it_interval.tv_nsec = (long)(period_ns % SBE_NS);
        it.it_value.tv_sec = (time_t)(first / SBE_NS);
        it.it_value.tv_nsec = (long)(first % SBE_NS);
        flags = TFD_TIMER_ABSTIME;
    } else if (d->xrun || d->io.stream == SND_PCM_STREAM_PLAYBACK) {
        it.it_value.tv_nsec = 1;
    }
    timerfd_settime(d->timer_fd, flags, &it, NULL);
}

/* RECORD_DIR/NAME.N.raw and .log for the first free N (O_EXCL: a restarted snd_be goes on
 * counting where the previous one stopped). */
static int sbe_open_record(struct sbe_dev *d)
{
    char path[PATH_MAX];

    for (int n = 1; n < 100000; n++) {
        snprintf(path, sizeof(path), "%s/%s.%d.raw", d->record_dir, d->name, n);
        d->rec_fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (d->rec_fd >= 0) {
            snprintf(path, sizeof(path), "%s/%s.%d.log", d->record_dir, d->name, n);
            d->log_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
            return d->log_fd < 0 ? -errno : 0;
        }
        if (errno != EEXIST)
            break;
    }
    SNDERR("sbe_clock: cannot create %s: %s", path, strerror(errno));
    return -errno;
}

static int sbe_open_source(struct sbe_dev *d)
{
    off_t size;

    if (!d->source) {
        SNDERR("sbe_clock: %s: a capture device needs a source file", d->name);
        return -EINVAL;
    }
    d->src_fd = open(d->source, O_RDONLY | O_CLOEXEC);
    if (d->src_fd < 0 || (size = lseek(d->src_fd, 0, SEEK_END)) < 0 || lseek(d->src_fd, 0, SEEK_SET) < 0) {
        SNDERR("sbe_clock: cannot read %s: %s", d->source, strerror(errno));
        return -errno;
    }
    if (size == 0 || size % d->frame_bytes) {
        SNDERR("sbe_clock: %s holds %lld bytes, not a whole number of %u-byte frames", d->source,
               (long long)size, d->frame_bytes);
        return -EINVAL;
    }
    return 0;
}

/* ---------------------------------------------------------------- callbacks */

static int sbe_start(snd_pcm_ioplug_t *io)
{
    struct sbe_dev *d = io->private_data;
    int rc = 0;

    pthread_mutex_lock(&d->lock); /* see struct sbe_dev */
    if (d->rec_fd < 0 && (rc = sbe_open_record(d)) == 0)
        sbe_log(d, "open %s %u %u period %lu buffer %lu", snd_pcm_format_name(io->format), io->rate,
                io->channels, (unsigned long)io->period_size, (unsigned long)io->buffer_size);
    if (rc == 0 && io->stream == SND_PCM_STREAM_CAPTURE && d->src_fd < 0)
        rc = sbe_open_source(d);
    if (rc == 0) {
        d->running = true;
        d->paused = d->xrun = false;
        d->t0_ns = sbe_now_ns() - d->done * SBE_NS / io->rate;
        sbe_log(d, "start %llu %llu", (unsigned long long)d->total, (unsigned long long)sbe_now_ns());
        sbe_arm(d);
    }
    pthread_mutex_unlock(&d->lock);
    return rc;
}

static int sbe_stop(snd_pcm_ioplug_t *io)
{
    struct sbe_dev *d = io->private_data;

    pthread_mutex_lock(&d->lock); /* see struct sbe_dev */
    if (d->running) {
        sbe_update(d); /* what played until now did play */
        sbe_log(d, "stop %llu %llu", (unsigned long long)d->total, (unsigned long long)sbe_now_ns());
    }
    d->running = d->paused = false;
    sbe_arm(d);
    pthread_mutex_unlock(&d->lock);
    return 0;
}

static snd_pcm_sframes_t sbe_pointer(snd_pcm_ioplug_t *io)
{
    struct sbe_dev *d = io->private_data;
    snd_pcm_sframes_t hw;

    pthread_mutex_lock(&d->lock); /* see struct sbe_dev */
    if (!sbe_update(d))
        hw = -EPIPE;
    else
        hw = (snd_pcm_sframes_t)(d->done % d->boundary);
    if (hw < 0)
        sbe_arm(d);
    pthread_mutex_unlock(&d->lock);
    return hw;
}

static int sbe_pause(snd_pcm_ioplug_t *io, int enable)
{
    struct sbe_dev *d = io->private_data;

    pthread_mutex_lock(&d->lock); /* see struct sbe_dev */
    if (enable && !d->paused) {
        /* The clock stops at one instant: what played up to it is what sbe_update records. */
        d->paused_ns = sbe_now_ns();
        d->paused = true;
        sbe_update(d);
        sbe_log(d, "pause %llu %llu", (unsigned long long)d->total, (unsigned long long)d->paused_ns);
    } else if (!enable && d->paused) {
        uint64_t now = sbe_now_ns();

        d->t0_ns += now - d->paused_ns;
        d->paused = false;
        sbe_log(d, "resume %llu %llu", (unsigned long long)d->total, (unsigned long long)now);
    }
    sbe_arm(d);
    pthread_mutex_unlock(&d->lock);
    return 0;
}

static int sbe_prepare(snd_pcm_ioplug_t *io)
{
    struct sbe_dev *d = io->private_data;

    pthread_mutex_lock(&d->lock); /* see struct sbe_dev */
    d->done = 0; /* ioplug resets its pointers to 0, as the kernel does when not running */
    d->running = d->paused = d->xrun = false;
    sbe_arm(d);
    pthread_mutex_unlock(&d->lock);
    return 0;
}

/* Playback: returns when the last written frame has played, as the kernel's drain does; a
 * prepared stream with data is started first. Capture: nothing to wait for. */
static int sbe_drain(snd_pcm_ioplug_t *io)
{
    struct sbe_dev *d = io->private_data;
    int rc = 0;

    if (io->stream == SND_PCM_STREAM_CAPTURE)
        return 0;
    pthread_mutex_lock(&d->lock); /* see struct sbe_dev; released while sleeping */
    if (!d->running && sbe_appl(d) > d->done) {
        pthread_mutex_unlock(&d->lock);
        if ((rc = sbe_start(io)) < 0)
            return rc;
        pthread_mutex_lock(&d->lock);
    }
    while (d->running && !d->xrun) {
        uint64_t left, wake;
        struct timespec ts;

        sbe_update(d);
        if (d->done >= sbe_appl(d))
            break;
        left = sbe_appl(d) - d->done;
        wake = d->paused ? sbe_now_ns() + SBE_NS / 100 : d->t0_ns + (d->done + left) * SBE_NS / io->rate + 1;
        pthread_mutex_unlock(&d->lock);
        ts.tv_sec = (time_t)(wake / SBE_NS);
        ts.tv_nsec = (long)(wake % SBE_NS);
        /* Blocking wait: until the clock reaches the last frame (10 ms steps while paused). */
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
            ;
        pthread_mutex_lock(&d->lock);
    }
    if (d->running)
        sbe_log(d, "drained %llu %llu", (unsigned long long)d->total,
                (unsigned long long)sbe_frame_time(d, d->done));
    pthread_mutex_unlock(&d->lock);
    return 0;
}

static int sbe_hw_params(snd_pcm_ioplug_t *io, snd_pcm_hw_params_t *params)
{
    struct sbe_dev *d = io->private_data;
    int width = snd_pcm_format_physical_width(io->format);

    (void)params;
    if (width <= 0 || width % 8)
        return -EINVAL;
    pthread_mutex_lock(&d->lock); /* see struct sbe_dev */
    d->frame_bytes = (unsigned)width / 8 * io->channels;
    pthread_mutex_unlock(&d->lock);
    return 0;
}

/* Only the default stop_threshold (the buffer size, which snd_be keeps) is emulated: a larger
 * one would have the card play stale ring contents, which this device does not model. */
static int sbe_sw_params(snd_pcm_ioplug_t *io, snd_pcm_sw_params_t *params)
{
    struct sbe_dev *d = io->private_data;
    snd_pcm_uframes_t stop;

    snd_pcm_sw_params_get_stop_threshold(params, &stop);
    if (stop != io->buffer_size) {
        SNDERR("sbe_clock: stop_threshold %lu (not the buffer size %lu) is not emulated", (unsigned long)stop,
               (unsigned long)io->buffer_size);
        return -EINVAL;
    }
    pthread_mutex_lock(&d->lock); /* see struct sbe_dev */
    snd_pcm_sw_params_get_avail_min(params, &d->avail_min);
    snd_pcm_sw_params_get_boundary(params, &d->boundary);
    pthread_mutex_unlock(&d->lock);
    return 0;
}

static int sbe_poll_revents(snd_pcm_ioplug_t *io, struct pollfd *pfd, unsigned int nfds, unsigned short *revents)
{
    struct sbe_dev *d = io->private_data;
    bool playback = io->stream == SND_PCM_STREAM_PLAYBACK;
    uint64_t ticks, hw, appl, avail;

    *revents = 0;
    if (nfds != 1 || (pfd[0].revents & (POLLERR | POLLNVAL)))
        return -EINVAL;
    if (read(d->timer_fd, &ticks, sizeof(ticks)) < 0)
        ticks = 0; /* not expired: EAGAIN */
    pthread_mutex_lock(&d->lock); /* see struct sbe_dev */
    if (!sbe_update(d)) {
        *revents = POLLERR | (playback ? POLLOUT : POLLIN);
    } else {
        hw = d->done;
        appl = sbe_appl(d);
        avail = playback ? hw + io->buffer_size - appl : hw - appl;
        if (d->running ? avail >= d->avail_min : playback)
            *revents = playback ? POLLOUT : POLLIN;
    }
    if (!d->running || *revents & POLLERR)
        sbe_arm(d); /* level-triggered while stopped */
    pthread_mutex_unlock(&d->lock);
    return 0;
}

static void sbe_free(struct sbe_dev *d)
{
    if (d->timer_fd >= 0)
        close(d->timer_fd);
    if (d->rec_fd >= 0)
        close(d->rec_fd);
    if (d->log_fd >= 0)
        close(d->log_fd);
    if (d->src_fd >= 0)
        close(d->src_fd);
    pthread_mutex_destroy(&d->lock);
    free(d->record_dir);
    free(d->name);
    free(d->source);
    free(d);
}

static int sbe_close(snd_pcm_ioplug_t *io)
{
    sbe_free(io->private_data);
    return 0;
}

static const snd_pcm_ioplug_callback_t sbe_callback = {
    .start = sbe_start,
    .stop = sbe_stop,
    .pointer = sbe_pointer,
    .close = sbe_close,
    .hw_params = sbe_hw_params,
    .sw_params = sbe_sw_params,
    .prepare = sbe_prepare,
    .drain = sbe_drain,
    .pause = sbe_pause,
    .poll_revents = sbe_poll_revents,
};

/* What a typical PC sound card offers (an HDA codec's formats, 8..192 kHz, up to 8 channels). */
static int sbe_constraints(snd_pcm_ioplug_t *io)
{
    static const unsigned access[] = { SND_PCM_ACCESS_RW_INTERLEAVED, SND_PCM_ACCESS_MMAP_INTERLEAVED };
    static const unsigned formats[] = { SND_PCM_FORMAT_U8, SND_PCM_FORMAT_S16_LE, SND_PCM_FORMAT_S24_LE,
                                        SND_PCM_FORMAT_S32_LE, SND_PCM_FORMAT_FLOAT_LE };
    int rc;

    if ((rc = snd_pcm_ioplug_set_param_list(io, SND_PCM_IOPLUG_HW_ACCESS, 2, access)) < 0 ||
        (rc = snd_pcm_ioplug_set_param_list(io, SND_PCM_IOPLUG_HW_FORMAT, 5, formats)) < 0 ||
        (rc = snd_pcm_ioplug_set_param_minmax(io, SND_PCM_IOPLUG_HW_CHANNELS, 1, 8)) < 0 ||
        (rc = snd_pcm_ioplug_set_param_minmax(io, SND_PCM_IOPLUG_HW_RATE, 8000, 192000)) < 0 ||
        (rc = snd_pcm_ioplug_set_param_minmax(io, SND_PCM_IOPLUG_HW_PERIOD_BYTES, 64, 1 << 20)) < 0 ||
        (rc = snd_pcm_ioplug_set_param_minmax(io, SND_PCM_IOPLUG_HW_BUFFER_BYTES, 128, 4 << 20)) < 0 ||
        (rc = snd_pcm_ioplug_set_param_minmax(io, SND_PCM_IOPLUG_HW_PERIODS, 2, 1024)) < 0)
        return rc;
    return 0;
}

static int sbe_config_string(snd_config_t *n, char **out)
{
    const char *s;

    if (snd_config_get_string(n, &s) < 0) {
        SNDERR("sbe_clock: %s must be a string", snd_config_get_id(n, &s) < 0 ? "?" : s);
        return -EINVAL;
    }
    free(*out);
    return (*out = strdup(s)) ? 0 : -ENOMEM;
}

static int sbe_parse(snd_config_t *conf, struct sbe_dev *d)
{
    snd_config_iterator_t i, next;
    int rc;

    snd_config_for_each(i, next, conf) {
        snd_config_t *n = snd_config_iterator_entry(i);
        const char *id;

        if (snd_config_get_id(n, &id) < 0)
            continue;
        if (!strcmp(id, "comment") || !strcmp(id, "type") || !strcmp(id, "hint"))
            continue;
        if (!strcmp(id, "record_dir"))
            rc = sbe_config_string(n, &d->record_dir);
        else if (!strcmp(id, "name"))
            rc = sbe_config_string(n, &d->name);
        else if (!strcmp(id, "source"))
            rc = sbe_config_string(n, &d->source);
        else {
            SNDERR("sbe_clock: unknown field %s", id);
            rc = -EINVAL;
        }
        if (rc < 0)
            return rc;
    }
    if (!d->record_dir || !d->name) {
        SNDERR("sbe_clock: record_dir and name are required");
        return -EINVAL;
    }
    return 0;
}

SND_PCM_PLUGIN_DEFINE_FUNC(sbe_clock)
{
    struct sbe_dev *d = calloc(1, sizeof(*d));
    int rc;

    (void)root;
    if (!d)
        return -ENOMEM;
    pthread_mutex_init(&d->lock, NULL);
    d->rec_fd = d->log_fd = d->src_fd = -1;
    d->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (d->timer_fd < 0 || (rc = sbe_parse(conf, d)) < 0) {
        rc = d->timer_fd < 0 ? -errno : rc;
        sbe_free(d);
        return rc;
    }
    d->boundary = LONG_MAX;
    d->avail_min = 1;
    d->io.version = SND_PCM_IOPLUG_VERSION;
    d->io.name = "sbe_clock: a clocked test sound card";
    d->io.callback = &sbe_callback;
    d->io.private_data = d;
    d->io.poll_fd = d->timer_fd;
    d->io.poll_events = POLLIN;
    d->io.mmap_rw = 1;
    d->io.flags = SND_PCM_IOPLUG_FLAG_BOUNDARY_WA | SND_PCM_IOPLUG_FLAG_MONOTONIC;
    if ((rc = snd_pcm_ioplug_create(&d->io, name, stream, mode)) < 0) {
        sbe_free(d);
        return rc;
    }
    if ((rc = sbe_constraints(&d->io)) < 0) {
        snd_pcm_ioplug_delete(&d->io); /* calls sbe_close */
        return rc;
    }
    *pcmp = d->io.pcm;
    return 0;
}

SND_PCM_PLUGIN_SYMBOL(sbe_clock);
