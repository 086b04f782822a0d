/* sndif sample formats: names, sizes, how sndback encodes samples (capture sources) and how it
 * stores them in WAV files (playback). Pure functions, no I/O. */
#ifndef SBK_FORMAT_H
#define SBK_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SBK_NUM_FORMATS 25      /* XENSND_PCM_FORMAT_S8 .. XENSND_PCM_FORMAT_GSM */

/* Index of the format called `name` (first `len` chars; sndif names and xl's f32_le/f32_be/
 * f64_le/f64_be, any case), or -1. */
int sbk_format_by_name(const char *name, size_t len);
/* Parses a ','/';' list of format names into a mask (bit n = format n): 0, or -1. */
int sbk_formats_parse(const char *text, uint64_t *mask);
/* sndif's name of the format (e.g. "s16_le"), "?" when out of range. */
const char *sbk_format_name(unsigned fmt);
/* Octets per sample (24-bit formats live in 4 octets, as in ALSA); 0 when sndback cannot open
 * streams of that format (ima_adpcm, mpeg, gsm: no fixed frame size). */
unsigned sbk_format_bytes(unsigned fmt);
/* Bit mask of the formats sbk_format_bytes() accepts. */
uint64_t sbk_format_openable_mask(void);

/* Encode one sample given as a full-scale int32 (INT32_MIN..INT32_MAX) or a double in
 * [-1.0, 1.0] into `out` (sbk_format_bytes(fmt) octets). IEC958 subframes are encoded as 0. */
void sbk_encode_int32(unsigned fmt, int32_t v, uint8_t *out);
void sbk_encode_double(unsigned fmt, double v, uint8_t *out);

/* How playback data of a format is stored in a WAV file: `sf_subtype` is libsndfile's
 * SF_FORMAT_* subtype, `wav_bytes` the octets per sample in the file. Returns false when WAV
 * cannot hold it (IEC958 subframes): the data is then stored raw. */
bool sbk_format_wav_layout(unsigned fmt, int *sf_subtype, unsigned *wav_bytes);
/* Converts one sample from the stream's layout to the WAV layout (lossless: byte order to
 * little endian, unsigned <-> signed by flipping the top bit, 24-bit values out of their
 * 4-octet container). Only for formats with a WAV layout. */
void sbk_format_sample_to_wav(unsigned fmt, const uint8_t *in, uint8_t *out);
/* True when the stream's bytes are stored in the WAV unchanged (the conversion is the identity). */
bool sbk_format_wav_is_identity(unsigned fmt);

#endif
