#include "sbk_audio.h"

#include "sbk_format.h"
#include "sbk_log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

unsigned sbk_shape_frame_bytes(const struct sbk_pcm_shape *shape)
{
    return sbk_format_bytes(shape->format) * shape->channels;
}

/* ---- sink ---- */

static int sbk_write_all(int fd, const uint8_t *data, size_t len)
{
    while (len) {
        ssize_t n = write(fd, data, len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

int sbk_sink_open(struct sbk_sink *s, const char *dir, const char *uid, unsigned nth,
                  const struct sbk_pcm_shape *shape, char *err, size_t errlen)
{
    char suffix[16] = "";
    unsigned wav_bytes = 0;
    int subtype = 0;
    bool wav = sbk_format_wav_layout(shape->format, &subtype, &wav_bytes);

    memset(s, 0, sizeof(*s));
    s->raw_fd = -1;
    s->shape = *shape;
    s->frame_bytes = sbk_shape_frame_bytes(shape);
    if (nth > 1)
        snprintf(suffix, sizeof(suffix), ".%u", nth);
    snprintf(s->path, sizeof(s->path), "%s/%s%s.%s", dir, uid, suffix, wav ? "wav" : "raw");
    if (!wav) {
        s->raw_fd = open(s->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (s->raw_fd < 0) {
            snprintf(err, errlen, "cannot create %s: %s", s->path, strerror(errno));
            return -1;
        }
        return 0;
    }
    if (shape->rate > INT_MAX) {
        snprintf(err, errlen, "cannot create %s: rate %u too high for WAV", s->path, shape->rate);
        return -1;
    }
    SF_INFO info = { .samplerate = (int)shape->rate, .channels = (int)shape->channels,
                     .format = SF_FORMAT_WAV | subtype };
    s->sf = sf_open(s->path, SFM_WRITE, &info);
    if (!s->sf) {
        snprintf(err, errlen, "cannot create %s: %s", s->path, sf_strerror(NULL));
        return -1;
    }
    s->wav_frame_bytes = wav_bytes * shape->channels;
    s->identity = sbk_format_wav_is_identity(shape->format);
    return 0;
}

/* Writes whole frames to the WAV, converting them to its layout when needed. */
static int sbk_sink_write_frames(struct sbk_sink *s, const uint8_t *data, size_t frames)
{
    uint8_t out[16384];
    size_t per_chunk = sizeof(out) / s->wav_frame_bytes;
    unsigned sample = sbk_format_bytes(s->shape.format), wav_sample = s->wav_frame_bytes / s->shape.channels;

    if (s->identity) {
        sf_count_t bytes = (sf_count_t)(frames * s->frame_bytes);

        return sf_write_raw(s->sf, data, bytes) == bytes ? 0 : -1;
    }
    while (frames) {
        size_t n = frames < per_chunk ? frames : per_chunk, samples = n * s->shape.channels;

        for (size_t i = 0; i < samples; i++)
            sbk_format_sample_to_wav(s->shape.format, data + i * sample, out + i * wav_sample);
        if (sf_write_raw(s->sf, out, (sf_count_t)(n * s->wav_frame_bytes)) != (sf_count_t)(n * s->wav_frame_bytes))
            return -1;
        data += n * s->frame_bytes;
        frames -= n;
    }
    return 0;
}

int sbk_sink_write(struct sbk_sink *s, const uint8_t *data, size_t len)
{
    size_t whole;

    if (s->raw_fd >= 0)
        return sbk_write_all(s->raw_fd, data, len);
    if (!s->sf)
        return -1;
    if (s->partial_len) {               /* complete the frame the previous write cut */
        size_t take = s->frame_bytes - s->partial_len;

        if (take > len)
            take = len;
        memcpy(s->partial + s->partial_len, data, take);
        s->partial_len += take;
        data += take;
        len -= take;
        if (s->partial_len < s->frame_bytes)
            return 0;
        s->partial_len = 0;
        if (sbk_sink_write_frames(s, s->partial, 1) < 0)
            return -1;
    }
    whole = len / s->frame_bytes;
    if (whole && sbk_sink_write_frames(s, data, whole) < 0)
        return -1;
    s->partial_len = len - whole * s->frame_bytes;
    memcpy(s->partial, data + whole * s->frame_bytes, s->partial_len);
    return 0;
}

size_t sbk_sink_close(struct sbk_sink *s)
{
    size_t lost = s->partial_len;

    if (s->sf)
        sf_close(s->sf);
    if (s->raw_fd >= 0)
        close(s->raw_fd);
    s->sf = NULL;
    s->raw_fd = -1;
    s->partial_len = 0;
    return lost;
}

/* ---- source ---- */

int sbk_source_check(const struct sbk_capture_source *cfg, char *err, size_t errlen)
{
    SF_INFO info = { 0 };
    SNDFILE *sf;

    if (cfg->kind != SBK_CAPTURE_WAV)
        return 0;
    sf = sf_open(cfg->arg, SFM_READ, &info);
    if (!sf) {
        snprintf(err, errlen, "--capture-source=wav:%s: %s", cfg->arg, sf_strerror(NULL));
        return -1;
    }
    sf_close(sf);
    return 0;
}

/* True when the file holds the stream's samples byte for byte: a little-endian WAV of the same
 * sample layout and channel count. */
static bool sbk_source_is_raw(const SF_INFO *info, const struct sbk_pcm_shape *shape)
{
    int major = info->format & SF_FORMAT_TYPEMASK, subtype = 0;
    unsigned wav_bytes;

    if (major != SF_FORMAT_WAV && major != SF_FORMAT_WAVEX && major != SF_FORMAT_RF64)
        return false;
    if ((info->format & SF_FORMAT_ENDMASK) == SF_ENDIAN_BIG || info->channels != (int)shape->channels)
        return false;
    return sbk_format_wav_is_identity(shape->format) && sbk_format_wav_layout(shape->format, &subtype, &wav_bytes) &&
           (info->format & SF_FORMAT_SUBMASK) == subtype;
}

static int sbk_source_open_wav(struct sbk_source *src, const char *file, char *err, size_t errlen)
{
    src->sf = sf_open(file, SFM_READ, &src->info);
    if (!src->sf) {
        snprintf(err, errlen, "capture file %s: %s", file, sf_strerror(NULL));
        return -1;
    }
    src->raw = sbk_source_is_raw(&src->info, &src->shape);
    if (!src->raw) {
        src->wav_buf = malloc((size_t)SBK_WAV_CHUNK * (size_t)src->info.channels * sizeof(double));
        if (!src->wav_buf) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    }
    if ((uint32_t)src->info.samplerate != src->shape.rate)
        sbk_warn("capture file %s is %d Hz, the stream %u Hz: played without resampling", file,
                 src->info.samplerate, src->shape.rate);
    sbk_info("capture file %s: %d ch, %d Hz, %s", file, src->info.channels, src->info.samplerate,
             src->raw ? "raw bytes" : "converted by libsndfile");
    return 0;
}

int sbk_source_open(struct sbk_source *src, const struct sbk_capture_source *cfg,
                    const struct sbk_pcm_shape *shape, size_t loop_cap, char *err, size_t errlen)
{
    unsigned sample = sbk_format_bytes(shape->format);

    memset(src, 0, sizeof(*src));
    src->kind = cfg ? cfg->kind : SBK_CAPTURE_SILENCE;
    src->shape = *shape;
    src->frame_bytes = sbk_shape_frame_bytes(shape);
    for (unsigned c = 0; c < shape->channels; c++)
        sbk_encode_int32(shape->format, 0, src->silence + c * sample);
    switch (src->kind) {
    case SBK_CAPTURE_WAV:
        return sbk_source_open_wav(src, cfg->arg, err, errlen);
    case SBK_CAPTURE_SINE:
        src->step = 2.0 * M_PI * cfg->hz / shape->rate;
        return 0;
    case SBK_CAPTURE_LOOPBACK:
        if (sbk_fifo_init(&src->loop, loop_cap) < 0) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        return 0;
    case SBK_CAPTURE_SILENCE:
        return 0;
    }
    return 0;
}

static void sbk_fill_silence(struct sbk_source *src, uint8_t *out, size_t frames)
{
    for (size_t i = 0; i < frames; i++)
        memcpy(out + i * src->frame_bytes, src->silence, src->frame_bytes);
}

static void sbk_gen_sine(struct sbk_source *src, uint8_t *out, size_t frames)
{
    unsigned sample = sbk_format_bytes(src->shape.format);

    for (size_t i = 0; i < frames; i++) {
        uint8_t *frame = out + i * src->frame_bytes;

        sbk_encode_double(src->shape.format, 0.5 * sin(src->phase), frame);
        for (unsigned c = 1; c < src->shape.channels; c++)
            memcpy(frame + c * sample, frame, sample);
        src->phase += src->step;
        if (src->phase >= 2.0 * M_PI)
            src->phase -= 2.0 * M_PI;
    }
}

/* Up to SBK_WAV_CHUNK frames from the file, converted; returns the frames read. */
static size_t sbk_wav_convert_chunk(struct sbk_source *src, uint8_t *out, size_t frames)
{
    unsigned sample = sbk_format_bytes(src->shape.format), file_ch = (unsigned)src->info.channels;
    bool as_double = src->shape.format >= XENSND_PCM_FORMAT_F32_LE && src->shape.format <= XENSND_PCM_FORMAT_F64_BE;
    sf_count_t got = as_double ? sf_readf_double(src->sf, src->wav_buf, (sf_count_t)frames)
                               : sf_readf_int(src->sf, src->wav_buf, (sf_count_t)frames);

    if (got < 0)
        got = 0;
    for (sf_count_t i = 0; i < got; i++)
        for (unsigned c = 0; c < src->shape.channels; c++) {
            size_t from = (size_t)i * file_ch + c % file_ch;    /* mono files feed every channel */
            uint8_t *to = out + (size_t)i * src->frame_bytes + c * sample;

            if (as_double)
                sbk_encode_double(src->shape.format, ((double *)src->wav_buf)[from], to);
            else
                sbk_encode_int32(src->shape.format, ((int *)src->wav_buf)[from], to);
        }
    return (size_t)got;
}

static void sbk_gen_wav(struct sbk_source *src, uint8_t *out, size_t frames)
{
    while (frames && !src->eof) {
        size_t want = frames < SBK_WAV_CHUNK ? frames : SBK_WAV_CHUNK, got;

        if (src->raw) {
            sf_count_t bytes = sf_read_raw(src->sf, out, (sf_count_t)(want * src->frame_bytes));

            got = bytes > 0 ? (size_t)bytes / src->frame_bytes : 0;
        } else {
            got = sbk_wav_convert_chunk(src, out, want);
        }
        if (got < want)
            src->eof = true;    /* the file is given once, then silence */
        out += got * src->frame_bytes;
        frames -= got;
    }
    sbk_fill_silence(src, out, frames);
}

static void sbk_gen_frames(struct sbk_source *src, uint8_t *out, size_t frames)
{
    switch (src->kind) {
    case SBK_CAPTURE_SINE:
        sbk_gen_sine(src, out, frames);
        break;
    case SBK_CAPTURE_WAV:
        sbk_gen_wav(src, out, frames);
        break;
    default:
        sbk_fill_silence(src, out, frames);
        break;
    }
}

/* Loopback: the bytes received, then silence aligned on the frame grid. */
static void sbk_read_loopback(struct sbk_source *src, uint8_t *out, size_t n)
{
    size_t got = sbk_fifo_pop(&src->loop, out, n);

    for (size_t i = got; i < n; i++)
        out[i] = src->silence[(src->produced + i) % src->frame_bytes];
}

void sbk_source_read(struct sbk_source *src, uint8_t *out, size_t n)
{
    size_t done = 0;

    if (src->kind == SBK_CAPTURE_LOOPBACK) {
        sbk_read_loopback(src, out, n);
        src->produced += n;
        return;
    }
    while (done < n) {
        size_t frames;

        if (src->stage_off < src->stage_len) {      /* rest of a frame cut last time */
            size_t take = src->stage_len - src->stage_off;

            if (take > n - done)
                take = n - done;
            memcpy(out + done, src->stage + src->stage_off, take);
            src->stage_off += take;
            done += take;
            continue;
        }
        frames = (n - done) / src->frame_bytes;
        if (frames) {
            sbk_gen_frames(src, out + done, frames);
            done += frames * src->frame_bytes;
        } else {
            sbk_gen_frames(src, src->stage, 1);
            src->stage_off = 0;
            src->stage_len = src->frame_bytes;
        }
    }
    src->produced += n;
}

void sbk_source_close(struct sbk_source *src)
{
    if (src->sf)
        sf_close(src->sf);
    free(src->wav_buf);
    sbk_fifo_free(&src->loop);
    memset(src, 0, sizeof(*src));
}
