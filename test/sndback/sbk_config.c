#include "sbk_config.h"

#include "sbk_format.h"
#include "sbk_parse.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The limits given at one level (card, PCM device or stream); unset fields inherit. */
struct sbk_level {
    bool has_rates, has_formats, has_ch_min, has_ch_max, has_buffer_size;
    struct sbk_rates rates;
    uint64_t formats;
    uint32_t ch_min, ch_max, buffer_size;
};

/* Linux's defaults for what nobody configured. */
static const uint32_t sbk_default_rates[] = { 5512, 8000, 11025, 16000, 22050, 32000, 44100, 48000 };
#define SBK_DEFAULT_FORMATS ((UINT64_C(1) << XENSND_PCM_FORMAT_U8) | (UINT64_C(1) << XENSND_PCM_FORMAT_S16_LE))
#define SBK_DEFAULT_CHANNELS_MAX 2
#define SBK_DEFAULT_BUFFER_SIZE 65536

/* Reads dir/key: 0 with *value, 1 when absent, -1 (err set) when unreadable. */
static int sbk_read_key(const struct sbk_reader *r, const char *dir, const char *key, char **value,
                        char *err, size_t errlen)
{
    char path[SBK_PATH_MAX + 32];
    int rc;

    snprintf(path, sizeof(path), "%s/%s", dir, key);
    *value = NULL;
    rc = r->read(r->ctx, path, value);
    if (rc == -ENOENT)
        return 1;
    if (rc < 0)
        return sbk_fail(err, errlen, "%s: not a valid string", path);
    return 0;
}

/* out := dir/index; false when it does not fit. */
static bool sbk_child_path(char *out, size_t size, const char *dir, unsigned index)
{
    int n = snprintf(out, size, "%s/%u", dir, index);

    return n > 0 && (size_t)n < size;
}

static bool sbk_node_exists(const struct sbk_reader *r, const char *path)
{
    char *value = NULL;
    int rc = r->read(r->ctx, path, &value);

    free(value);
    return rc != -ENOENT;
}

static int sbk_read_channels(const char *dir, const char *key, const char *value, uint32_t *out,
                             char *err, size_t errlen)
{
    if (sbk_parse_u32(value, out) < 0 || *out < 1 || *out > SBK_MAX_CHANNELS)
        return sbk_fail(err, errlen, "%s/%s: '%s' is not a channel count (1..%u)", dir, key, value,
                        SBK_MAX_CHANNELS);
    return 0;
}

/* Parses one limit key's value into the level. */
static int sbk_level_parse(const char *dir, const char *key, const char *value, struct sbk_level *l,
                           char *err, size_t errlen)
{
    if (strcmp(key, XENSND_FIELD_CHANNELS_MIN) == 0) {
        l->has_ch_min = true;
        return sbk_read_channels(dir, key, value, &l->ch_min, err, errlen);
    }
    if (strcmp(key, XENSND_FIELD_CHANNELS_MAX) == 0) {
        l->has_ch_max = true;
        return sbk_read_channels(dir, key, value, &l->ch_max, err, errlen);
    }
    if (strcmp(key, XENSND_FIELD_SAMPLE_RATES) == 0) {
        l->has_rates = true;
        if (sbk_rates_parse(value, &l->rates) < 0)
            return sbk_fail(err, errlen, "%s/%s: bad rate list '%s' (decimal Hz > 0, at most %d)", dir,
                            key, value, SBK_MAX_RATES);
        return 0;
    }
    if (strcmp(key, XENSND_FIELD_SAMPLE_FORMATS) == 0) {
        l->has_formats = true;
        if (sbk_formats_parse(value, &l->formats) < 0)
            return sbk_fail(err, errlen, "%s/%s: bad format list '%s' (unknown or empty name)", dir, key,
                            value);
        return 0;
    }
    l->has_buffer_size = true;
    if (sbk_parse_u32(value, &l->buffer_size) < 0 || l->buffer_size == 0)
        return sbk_fail(err, errlen, "%s/%s: '%s' is not a size in octets > 0", dir, key, value);
    return 0;
}

static int sbk_level_read(const struct sbk_reader *r, const char *dir, struct sbk_level *l, char *err,
                          size_t errlen)
{
    static const char *const keys[] = { XENSND_FIELD_CHANNELS_MIN, XENSND_FIELD_CHANNELS_MAX,
                                        XENSND_FIELD_SAMPLE_RATES, XENSND_FIELD_SAMPLE_FORMATS,
                                        XENSND_FIELD_BUFFER_SIZE };

    memset(l, 0, sizeof(*l));
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        char *value;
        int rc = sbk_read_key(r, dir, keys[i], &value, err, errlen);

        if (rc == 0)
            rc = sbk_level_parse(dir, keys[i], value, l, err, errlen);
        free(value);
        if (rc < 0)
            return -1;
    }
    if (l->has_ch_min && l->has_ch_max && l->ch_min > l->ch_max)
        return sbk_fail(err, errlen, "%s/%s (%u) is above %s (%u)", dir, XENSND_FIELD_CHANNELS_MIN,
                        l->ch_min, XENSND_FIELD_CHANNELS_MAX, l->ch_max);
    return 0;
}

/* child := child narrowed by parent (fields the child lacks are inherited). */
static int sbk_level_inherit(struct sbk_level *child, const struct sbk_level *parent, const char *dir,
                             char *err, size_t errlen)
{
    if (parent->has_rates && child->has_rates) {
        sbk_rates_intersect(&child->rates, &parent->rates);
        if (!child->rates.n)
            return sbk_fail(err, errlen, "%s/%s: no rate in common with the parent's", dir,
                            XENSND_FIELD_SAMPLE_RATES);
    } else if (parent->has_rates) {
        child->has_rates = true;
        child->rates = parent->rates;
    }
    if (parent->has_formats && child->has_formats) {
        child->formats &= parent->formats;
        if (!child->formats)
            return sbk_fail(err, errlen, "%s/%s: no format in common with the parent's", dir,
                            XENSND_FIELD_SAMPLE_FORMATS);
    } else if (parent->has_formats) {
        child->has_formats = true;
        child->formats = parent->formats;
    }
    if (parent->has_ch_min && (!child->has_ch_min || parent->ch_min > child->ch_min)) {
        child->has_ch_min = true;
        child->ch_min = parent->ch_min;
    }
    if (parent->has_ch_max && (!child->has_ch_max || parent->ch_max < child->ch_max)) {
        child->has_ch_max = true;
        child->ch_max = parent->ch_max;
    }
    if (child->has_ch_min && child->has_ch_max && child->ch_min > child->ch_max)
        return sbk_fail(err, errlen, "%s: channels-min/channels-max leave no channel count with the parent's",
                        dir);
    if (parent->has_buffer_size && (!child->has_buffer_size || parent->buffer_size < child->buffer_size)) {
        child->has_buffer_size = true;
        child->buffer_size = parent->buffer_size;
    }
    return 0;
}

/* The stream's limits: its inherited level, defaults for what nobody set, openable formats. */
static int sbk_limits_from_level(const struct sbk_level *l, const char *dir, struct sbk_limits *out,
                                 char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    if (l->has_rates) {
        out->rates = l->rates;
    } else {
        for (size_t i = 0; i < sizeof(sbk_default_rates) / sizeof(sbk_default_rates[0]); i++)
            sbk_rates_add(&out->rates, sbk_default_rates[i]);
    }
    out->formats = (l->has_formats ? l->formats : SBK_DEFAULT_FORMATS) & sbk_format_openable_mask();
    if (!out->formats)
        return sbk_fail(err, errlen, "%s/%s: none of the formats has a fixed frame size (sndback cannot open "
                        "ima_adpcm, mpeg, gsm)", dir, XENSND_FIELD_SAMPLE_FORMATS);
    out->channels.min = l->has_ch_min ? l->ch_min : 1;
    out->channels.max = l->has_ch_max ? l->ch_max
                                      : (out->channels.min > SBK_DEFAULT_CHANNELS_MAX ? out->channels.min
                                                                                     : SBK_DEFAULT_CHANNELS_MAX);
    out->buffer_bytes = l->has_buffer_size ? l->buffer_size : SBK_DEFAULT_BUFFER_SIZE;
    out->buffer_frames = (struct sbk_range){ 1, UINT32_MAX };
    out->period_frames = (struct sbk_range){ 1, UINT32_MAX };
    return 0;
}

/* Narrows the limits by the command-line constraints of the stream. */
static int sbk_limits_apply_options(struct sbk_limits *l, const struct sbk_stream_opts *o, const char *uid,
                                    char *err, size_t errlen)
{
    if (o->has_rates) {
        sbk_rates_intersect(&l->rates, &o->rates);
        if (!l->rates.n)
            return sbk_fail(err, errlen, "stream %s: --rates leaves no rate of sample-rates", uid);
    }
    if (o->has_formats) {
        l->formats &= o->formats;
        if (!l->formats)
            return sbk_fail(err, errlen, "stream %s: --formats leaves no format of sample-formats", uid);
    }
    if (o->has_channels) {
        if (o->channels.min > l->channels.min)
            l->channels.min = o->channels.min;
        if (o->channels.max < l->channels.max)
            l->channels.max = o->channels.max;
        if (l->channels.min > l->channels.max)
            return sbk_fail(err, errlen, "stream %s: --channels leaves no channel count of channels-min/max", uid);
    }
    if (o->has_buffer)
        l->buffer_frames = o->buffer_frames;
    if (o->has_period)
        l->period_frames = o->period_frames;
    return 0;
}

bool sbk_uid_valid(const char *uid)
{
    size_t len = strlen(uid);

    if (len == 0 || len > SBK_UID_MAX || uid[0] == '.')
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = uid[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
              c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* An optional name key: at most `max` characters. */
static int sbk_check_name(const struct sbk_reader *r, const char *dir, const char *key, size_t max, char *err,
                          size_t errlen)
{
    char *value;
    int rc = sbk_read_key(r, dir, key, &value, err, errlen);

    if (rc == 0 && strlen(value) > max)
        rc = sbk_fail(err, errlen, "%s/%s: longer than %zu characters", dir, key, max);
    free(value);
    return rc < 0 ? -1 : 0;
}

static int sbk_stream_identity(const struct sbk_reader *r, struct sbk_stream_cfg *s, unsigned devid, char *err,
                               size_t errlen)
{
    char *value;
    int rc = sbk_read_key(r, s->path, XENSND_FIELD_TYPE, &value, err, errlen);

    if (rc == 1)
        return sbk_fail(err, errlen, "%s/%s: missing (must be 'p' or 'c')", s->path, XENSND_FIELD_TYPE);
    if (rc < 0)
        return -1;
    if (strcmp(value, XENSND_STREAM_TYPE_PLAYBACK) && strcmp(value, XENSND_STREAM_TYPE_CAPTURE))
        rc = sbk_fail(err, errlen, "%s/%s: '%s' is not 'p' or 'c'", s->path, XENSND_FIELD_TYPE, value);
    s->capture = strcmp(value, XENSND_STREAM_TYPE_CAPTURE) == 0;
    free(value);
    if (rc < 0)
        return -1;

    rc = sbk_read_key(r, s->path, XENSND_FIELD_STREAM_UNIQUE_ID, &value, err, errlen);
    if (rc < 0)
        return -1;
    if (rc == 1) {
        snprintf(s->uid, sizeof(s->uid), "card%u-pcm%u-stream%u", devid, s->pcm, s->index);
        return 0;
    }
    if (!sbk_uid_valid(value))
        rc = sbk_fail(err, errlen, "%s/%s: '%.80s' is not 1..%d of [A-Za-z0-9._-] (it names files)", s->path,
                      XENSND_FIELD_STREAM_UNIQUE_ID, value, SBK_UID_MAX);
    else
        snprintf(s->uid, sizeof(s->uid), "%s", value);
    free(value);
    return rc;
}

static int sbk_stream_read(const struct sbk_reader *r, const struct sbk_level *pcm_level, unsigned devid,
                           const struct sbk_options *opts, struct sbk_stream_cfg *s, char *err, size_t errlen)
{
    struct sbk_level level;

    if (sbk_stream_identity(r, s, devid, err, errlen) < 0 || sbk_level_read(r, s->path, &level, err, errlen) < 0 ||
        sbk_level_inherit(&level, pcm_level, s->path, err, errlen) < 0 ||
        sbk_limits_from_level(&level, s->path, &s->limits, err, errlen) < 0)
        return -1;
    sbk_options_resolve(opts, s->uid, &s->opts);
    return sbk_limits_apply_options(&s->limits, &s->opts, s->uid, err, errlen);
}

static int sbk_card_add_stream(struct sbk_card_cfg *c, struct sbk_stream_cfg **out)
{
    struct sbk_stream_cfg *grown = realloc(c->streams, (c->n_streams + 1) * sizeof(*grown));

    if (!grown)
        return -1;
    c->streams = grown;
    *out = &grown[c->n_streams++];
    memset(*out, 0, sizeof(**out));
    return 0;
}

static int sbk_uid_unique(const struct sbk_card_cfg *c, char *err, size_t errlen)
{
    const struct sbk_stream_cfg *last = &c->streams[c->n_streams - 1];

    for (unsigned i = 0; i + 1 < c->n_streams; i++)
        if (strcmp(c->streams[i].uid, last->uid) == 0)
            return sbk_fail(err, errlen, "%s/%s: '%s' is already used by %s", last->path,
                            XENSND_FIELD_STREAM_UNIQUE_ID, last->uid, c->streams[i].path);
    return 0;
}

static int sbk_pcm_read(const struct sbk_reader *r, const char *pcm_path, unsigned pcm, const struct sbk_level *card,
                        unsigned devid, const struct sbk_options *opts, struct sbk_card_cfg *c, char *err,
                        size_t errlen)
{
    struct sbk_level level;
    unsigned s;

    if (sbk_check_name(r, pcm_path, XENSND_FIELD_DEVICE_NAME, 80, err, errlen) < 0 ||
        sbk_level_read(r, pcm_path, &level, err, errlen) < 0 || sbk_level_inherit(&level, card, pcm_path, err, errlen) < 0)
        return -1;
    for (s = 0;; s++) {
        char path[SBK_PATH_MAX];
        struct sbk_stream_cfg *stream;

        if (!sbk_child_path(path, sizeof(path), pcm_path, s) || !sbk_node_exists(r, path))
            break;
        if (s == SBK_MAX_STREAMS_PER_PCM)
            return sbk_fail(err, errlen, "%s: more than %d streams", pcm_path, SBK_MAX_STREAMS_PER_PCM);
        if (sbk_card_add_stream(c, &stream) < 0)
            return sbk_fail(err, errlen, "out of memory");
        stream->pcm = pcm;
        stream->index = s;
        snprintf(stream->path, sizeof(stream->path), "%s", path);
        if (sbk_stream_read(r, &level, devid, opts, stream, err, errlen) < 0 || sbk_uid_unique(c, err, errlen) < 0)
            return -1;
    }
    if (s == 0)
        return sbk_fail(err, errlen, "%s: PCM device without streams (%s/0 missing)", pcm_path, pcm_path);
    return 0;
}

int sbk_card_cfg_read(const struct sbk_reader *r, const char *fe_path, unsigned devid,
                      const struct sbk_options *opts, struct sbk_card_cfg *out, char *err, size_t errlen)
{
    struct sbk_level card;
    unsigned p;

    memset(out, 0, sizeof(*out));
    if (strlen(fe_path) > SBK_PATH_MAX - 16)
        return sbk_fail(err, errlen, "%s: path too long", fe_path);
    if (sbk_check_name(r, fe_path, XENSND_FIELD_VCARD_SHORT_NAME, 32, err, errlen) < 0 ||
        sbk_check_name(r, fe_path, XENSND_FIELD_VCARD_LONG_NAME, 80, err, errlen) < 0 ||
        sbk_level_read(r, fe_path, &card, err, errlen) < 0)
        goto fail;
    for (p = 0;; p++) {
        char path[SBK_PATH_MAX];

        if (!sbk_child_path(path, sizeof(path), fe_path, p) || !sbk_node_exists(r, path))
            break;
        if (p == SBK_MAX_PCMS) {
            sbk_fail(err, errlen, "%s: more than %d PCM devices", fe_path, SBK_MAX_PCMS);
            goto fail;
        }
        if (sbk_pcm_read(r, path, p, &card, devid, opts, out, err, errlen) < 0)
            goto fail;
    }
    if (p == 0) {
        sbk_fail(err, errlen, "%s: no PCM device (%s/0 missing)", fe_path, fe_path);
        goto fail;
    }
    return 0;
fail:
    sbk_card_cfg_free(out);
    return -1;
}

void sbk_card_cfg_free(struct sbk_card_cfg *c)
{
    free(c->streams);
    c->streams = NULL;
    c->n_streams = 0;
}
