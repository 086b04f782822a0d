/* Sound files and capture sources, through libsndfile.
 * Sink: the playback bytes of one OPEN, in OUT/<uid>[.<n>].wav (or .raw for IEC958 subframes).
 * Source: the bytes a capture stream produces: silence, a WAV file (once, then silence), a sine
 * at half of full scale, or loopback bytes pushed by a playback stream. */
#ifndef SBK_AUDIO_H
#define SBK_AUDIO_H

#include "sbk_fifo.h"
#include "sbk_options.h"

#include <sndfile.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SBK_MAX_FRAME_BYTES (8u * 255u)     /* float64 x 255 channels */
#define SBK_WAV_CHUNK 512                   /* frames converted per libsndfile call */

struct sbk_pcm_shape {
    unsigned format, channels;
    uint32_t rate;
};

struct sbk_sink {
    SNDFILE *sf;                    /* the WAV, or NULL */
    int raw_fd;                     /* the .raw file, or -1 */
    struct sbk_pcm_shape shape;
    unsigned frame_bytes, wav_frame_bytes;
    bool identity;                  /* WAV holds the stream's bytes unchanged */
    uint8_t partial[SBK_MAX_FRAME_BYTES];   /* start of a frame the last write cut */
    size_t partial_len;
    char path[4096];
};

/* Creates dir/<uid>.wav (nth == 1) or dir/<uid>.<nth>.wav. 0, or -1 with err set. */
int sbk_sink_open(struct sbk_sink *s, const char *dir, const char *uid, unsigned nth,
                  const struct sbk_pcm_shape *shape, char *err, size_t errlen);
/* Appends bytes in order; 0, or -1 on a write error. */
int sbk_sink_write(struct sbk_sink *s, const uint8_t *data, size_t len);
/* Finalizes the header and closes; returns the bytes of an incomplete last frame that a WAV
 * could not hold (0 normally). */
size_t sbk_sink_close(struct sbk_sink *s);

struct sbk_source {
    enum sbk_capture_kind kind;
    struct sbk_pcm_shape shape;
    unsigned frame_bytes;
    uint8_t silence[SBK_MAX_FRAME_BYTES];   /* one frame of silence in the stream's format */
    uint64_t produced;                      /* bytes produced so far (frame alignment) */
    uint8_t stage[SBK_MAX_FRAME_BYTES];     /* a generated frame partly handed out */
    size_t stage_off, stage_len;
    /* wav */
    SNDFILE *sf;
    SF_INFO info;
    bool raw, eof;
    void *wav_buf;                          /* SBK_WAV_CHUNK frames of the file as int32/double */
    /* sine */
    double phase, step;
    /* loopback: bytes received by the playback stream, waiting to be captured */
    struct sbk_fifo loop;
};

/* Checks a configured source once at start-up (a WAV file must open). 0 or -1 with err. */
int sbk_source_check(const struct sbk_capture_source *cfg, char *err, size_t errlen);
/* Prepares a source for one OPEN of a capture stream; loop_cap bounds the loopback FIFO. */
int sbk_source_open(struct sbk_source *src, const struct sbk_capture_source *cfg,
                    const struct sbk_pcm_shape *shape, size_t loop_cap, char *err, size_t errlen);
/* Produces exactly n bytes of capture data. */
void sbk_source_read(struct sbk_source *src, uint8_t *out, size_t n);
void sbk_source_close(struct sbk_source *src);

/* Bytes per frame of a shape (0 when the format cannot be opened). */
unsigned sbk_shape_frame_bytes(const struct sbk_pcm_shape *shape);

#endif
