#include "sbk_format.h"

#include "sbk_parse.h"

#include <math.h>
#include <sndfile.h>
#include <string.h>
#include <strings.h>

enum sbk_kind { SBK_KIND_PCM, SBK_KIND_FLOAT, SBK_KIND_ULAW, SBK_KIND_ALAW, SBK_KIND_IEC958, SBK_KIND_NONE };

struct sbk_format_desc {
    const char *name;       /* sndif's XENSND_PCM_FORMAT_*_STR */
    const char *alias;      /* xl's spelling, when it differs */
    uint8_t bytes;          /* octets per sample in the stream */
    uint8_t bits;           /* significant bits (PCM, float) */
    bool big_endian;
    bool is_unsigned;
    enum sbk_kind kind;
    int sf_subtype;         /* WAV storage; 0: none */
    bool wav_flip;          /* flip the top bit on the way to WAV (signedness differs) */
};

/* Indexed by XENSND_PCM_FORMAT_*. */
static const struct sbk_format_desc sbk_formats[SBK_NUM_FORMATS] = {
    { "s8", NULL, 1, 8, false, false, SBK_KIND_PCM, SF_FORMAT_PCM_U8, true },
    { "u8", NULL, 1, 8, false, true, SBK_KIND_PCM, SF_FORMAT_PCM_U8, false },
    { "s16_le", NULL, 2, 16, false, false, SBK_KIND_PCM, SF_FORMAT_PCM_16, false },
    { "s16_be", NULL, 2, 16, true, false, SBK_KIND_PCM, SF_FORMAT_PCM_16, false },
    { "u16_le", NULL, 2, 16, false, true, SBK_KIND_PCM, SF_FORMAT_PCM_16, true },
    { "u16_be", NULL, 2, 16, true, true, SBK_KIND_PCM, SF_FORMAT_PCM_16, true },
    { "s24_le", NULL, 4, 24, false, false, SBK_KIND_PCM, SF_FORMAT_PCM_24, false },
    { "s24_be", NULL, 4, 24, true, false, SBK_KIND_PCM, SF_FORMAT_PCM_24, false },
    { "u24_le", NULL, 4, 24, false, true, SBK_KIND_PCM, SF_FORMAT_PCM_24, true },
    { "u24_be", NULL, 4, 24, true, true, SBK_KIND_PCM, SF_FORMAT_PCM_24, true },
    { "s32_le", NULL, 4, 32, false, false, SBK_KIND_PCM, SF_FORMAT_PCM_32, false },
    { "s32_be", NULL, 4, 32, true, false, SBK_KIND_PCM, SF_FORMAT_PCM_32, false },
    { "u32_le", NULL, 4, 32, false, true, SBK_KIND_PCM, SF_FORMAT_PCM_32, true },
    { "u32_be", NULL, 4, 32, true, true, SBK_KIND_PCM, SF_FORMAT_PCM_32, true },
    { "float_le", "f32_le", 4, 32, false, false, SBK_KIND_FLOAT, SF_FORMAT_FLOAT, false },
    { "float_be", "f32_be", 4, 32, true, false, SBK_KIND_FLOAT, SF_FORMAT_FLOAT, false },
    { "float64_le", "f64_le", 8, 64, false, false, SBK_KIND_FLOAT, SF_FORMAT_DOUBLE, false },
    { "float64_be", "f64_be", 8, 64, true, false, SBK_KIND_FLOAT, SF_FORMAT_DOUBLE, false },
    { "iec958_subframe_le", NULL, 4, 32, false, false, SBK_KIND_IEC958, 0, false },
    { "iec958_subframe_be", NULL, 4, 32, true, false, SBK_KIND_IEC958, 0, false },
    { "mu_law", NULL, 1, 8, false, false, SBK_KIND_ULAW, SF_FORMAT_ULAW, false },
    { "a_law", NULL, 1, 8, false, false, SBK_KIND_ALAW, SF_FORMAT_ALAW, false },
    { "ima_adpcm", NULL, 0, 0, false, false, SBK_KIND_NONE, 0, false },
    { "mpeg", NULL, 0, 0, false, false, SBK_KIND_NONE, 0, false },
    { "gsm", NULL, 0, 0, false, false, SBK_KIND_NONE, 0, false },
};

static bool sbk_name_equals(const char *want, const char *name, size_t len)
{
    return want && strlen(want) == len && strncasecmp(want, name, len) == 0;
}

int sbk_format_by_name(const char *name, size_t len)
{
    for (unsigned i = 0; i < SBK_NUM_FORMATS; i++)
        if (sbk_name_equals(sbk_formats[i].name, name, len) ||
            sbk_name_equals(sbk_formats[i].alias, name, len))
            return (int)i;
    return -1;
}

static int sbk_format_item(void *ctx, const char *item, size_t len)
{
    int f = sbk_format_by_name(item, len);

    if (f < 0)
        return -1;
    *(uint64_t *)ctx |= UINT64_C(1) << f;
    return 0;
}

int sbk_formats_parse(const char *text, uint64_t *mask)
{
    *mask = 0;
    return sbk_parse_list(text, sbk_format_item, mask) ? -1 : 0;
}

const char *sbk_format_name(unsigned fmt)
{
    return fmt < SBK_NUM_FORMATS ? sbk_formats[fmt].name : "?";
}

unsigned sbk_format_bytes(unsigned fmt)
{
    return fmt < SBK_NUM_FORMATS ? sbk_formats[fmt].bytes : 0;
}

uint64_t sbk_format_openable_mask(void)
{
    uint64_t mask = 0;

    for (unsigned i = 0; i < SBK_NUM_FORMATS; i++)
        if (sbk_formats[i].bytes)
            mask |= UINT64_C(1) << i;
    return mask;
}

/* Stores the low `n` octets of `v` in the format's byte order. */
static void sbk_store(uint64_t v, unsigned n, bool big_endian, uint8_t *out)
{
    for (unsigned i = 0; i < n; i++)
        out[big_endian ? n - 1 - i : i] = (uint8_t)(v >> (8 * i));
}

/* G.711 mu-law of a 16-bit sample: bias, find the segment, keep 4 mantissa bits, invert. */
static uint8_t sbk_ulaw_encode(int16_t pcm)
{
    int v = pcm, sign = 0, exponent = 7;

    if (v < 0) {
        v = -v;
        sign = 0x80;
    }
    if (v > 32635)
        v = 32635;
    v += 0x84;
    for (int mask = 0x4000; exponent > 0 && !(v & mask); mask >>= 1)
        exponent--;
    return (uint8_t)~(sign | (exponent << 4) | ((v >> (exponent + 3)) & 0x0F));
}

/* G.711 A-law of a 16-bit sample: 13-bit magnitude, segment, 4 mantissa bits, XOR 0x55/0xD5. */
static uint8_t sbk_alaw_encode(int16_t pcm)
{
    int v = pcm >> 3, segment = 0;
    uint8_t mask = 0xD5, a;

    if (v < 0) {
        mask = 0x55;
        v = -v - 1;
    }
    while (segment < 8 && v > (0x20 << segment) - 1)
        segment++;
    if (segment >= 8)
        return 0x7F ^ mask;
    a = (uint8_t)(segment << 4);
    a |= (uint8_t)((segment < 2 ? v >> 1 : v >> segment) & 0x0F);
    return a ^ mask;
}

static void sbk_encode_float(const struct sbk_format_desc *d, double v, uint8_t *out)
{
    if (d->bytes == 4) {
        float f = (float)v;
        uint32_t u;

        memcpy(&u, &f, sizeof(u));
        sbk_store(u, 4, d->big_endian, out);
    } else {
        uint64_t u;

        memcpy(&u, &v, sizeof(u));
        sbk_store(u, 8, d->big_endian, out);
    }
}

void sbk_encode_int32(unsigned fmt, int32_t v, uint8_t *out)
{
    const struct sbk_format_desc *d;
    uint32_t u;

    if (fmt >= SBK_NUM_FORMATS)
        return;
    d = &sbk_formats[fmt];
    switch (d->kind) {
    case SBK_KIND_PCM:
        u = (uint32_t)(v >> (32 - d->bits));
        if (d->is_unsigned)
            u ^= UINT32_C(1) << (d->bits - 1);
        if (d->bits < 32)
            u &= (UINT32_C(1) << d->bits) - 1;
        if (d->bits == 24 && !d->is_unsigned && (u & 0x800000))
            u |= 0xFF000000u;       /* signed 24-bit: sign-extend into the container */
        sbk_store(u, d->bytes, d->big_endian, out);
        break;
    case SBK_KIND_FLOAT:
        sbk_encode_float(d, v / 2147483648.0, out);
        break;
    case SBK_KIND_ULAW:
        out[0] = sbk_ulaw_encode((int16_t)(v >> 16));
        break;
    case SBK_KIND_ALAW:
        out[0] = sbk_alaw_encode((int16_t)(v >> 16));
        break;
    case SBK_KIND_IEC958:
    case SBK_KIND_NONE:
        memset(out, 0, d->bytes);
        break;
    }
}

void sbk_encode_double(unsigned fmt, double v, uint8_t *out)
{
    double scaled;

    if (fmt >= SBK_NUM_FORMATS)
        return;
    if (!(v >= -1.0))           /* also catches NaN */
        v = -1.0;
    if (v > 1.0)
        v = 1.0;
    if (sbk_formats[fmt].kind == SBK_KIND_FLOAT) {
        sbk_encode_float(&sbk_formats[fmt], v, out);
        return;
    }
    scaled = nearbyint(v * 2147483648.0);
    if (scaled > 2147483647.0)
        scaled = 2147483647.0;
    sbk_encode_int32(fmt, (int32_t)scaled, out);
}

bool sbk_format_wav_layout(unsigned fmt, int *sf_subtype, unsigned *wav_bytes)
{
    if (fmt >= SBK_NUM_FORMATS || !sbk_formats[fmt].sf_subtype)
        return false;
    *sf_subtype = sbk_formats[fmt].sf_subtype;
    *wav_bytes = sbk_formats[fmt].bits / 8u;
    return true;
}

void sbk_format_sample_to_wav(unsigned fmt, const uint8_t *in, uint8_t *out)
{
    const struct sbk_format_desc *d = &sbk_formats[fmt];
    unsigned n = d->bits / 8u;

    /* Little-endian significant octets: the low `n` of the container. */
    for (unsigned i = 0; i < n; i++)
        out[i] = d->big_endian ? in[d->bytes - 1 - i] : in[i];
    if (d->wav_flip)
        out[n - 1] ^= 0x80;
}

bool sbk_format_wav_is_identity(unsigned fmt)
{
    const struct sbk_format_desc *d;

    if (fmt >= SBK_NUM_FORMATS)
        return false;
    d = &sbk_formats[fmt];
    return d->sf_subtype && !d->big_endian && !d->wav_flip && d->bits / 8u == d->bytes;
}
