/* Unit tests of sndback's pure modules. One line per case: "PASS: name" or "FAIL: name: why".
 * Files are written into a fresh temporary directory, removed at the end. */
#include "sbk_audio.h"
#include "sbk_config.h"
#include "sbk_fifo.h"
#include "sbk_format.h"
#include "sbk_limits.h"
#include "sbk_names.h"
#include "sbk_options.h"
#include "sbk_parse.h"

#include <errno.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int unit_failed;
static char unit_dir[] = "/tmp/sndback-unit.XXXXXX";

/* Reports one case: fails with the first message, if any. */
static void unit_case(const char *name, const char *why)
{
    if (why) {
        printf("FAIL: %s: %s\n", name, why);
        unit_failed = 1;
    } else {
        printf("PASS: %s\n", name);
    }
}

static char unit_msg[512];
static const char *unit_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static const char *unit_fmt(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(unit_msg, sizeof(unit_msg), fmt, ap);
    va_end(ap);
    return unit_msg;
}

#define EXPECT(cond) do { if (!(cond)) return unit_fmt("line %d: %s", __LINE__, #cond); } while (0)

/* ---- a fake xenstore for the config reader ---- */

struct fake_kv {
    const char *path, *value;
};

static const struct fake_kv *fake_store;

static int fake_read(void *ctx, const char *path, char **value)
{
    (void)ctx;
    for (const struct fake_kv *kv = fake_store; kv->path; kv++)
        if (strcmp(kv->path, path) == 0) {
            *value = strdup(kv->value);
            return *value ? 0 : -ENOMEM;
        }
    return -ENOENT;
}

static const struct sbk_reader fake_reader = { fake_read, NULL };
static char cfg_err[512];

static int read_card(const struct fake_kv *kv, const struct sbk_options *o, struct sbk_card_cfg *c)
{
    static struct sbk_options none;

    fake_store = kv;
    cfg_err[0] = '\0';
    return sbk_card_cfg_read(&fake_reader, "/local/domain/1/device/vsnd/0", 0, o ? o : &none, c, cfg_err,
                             sizeof(cfg_err));
}

#define FE "/local/domain/1/device/vsnd/0"

/* ---- cases ---- */

static const char *test_parse(void)
{
    uint32_t v, lo, hi;
    uint64_t w;

    EXPECT(sbk_parse_u32("0", &v) == 0 && v == 0);
    EXPECT(sbk_parse_u32("4294967295", &v) == 0 && v == UINT32_MAX);
    EXPECT(sbk_parse_u32("4294967296", &v) < 0);
    EXPECT(sbk_parse_u32("", &v) < 0 && sbk_parse_u32("-1", &v) < 0 && sbk_parse_u32("+1", &v) < 0);
    EXPECT(sbk_parse_u32("1 ", &v) < 0 && sbk_parse_u32(" 1", &v) < 0 && sbk_parse_u32("12a", &v) < 0);
    EXPECT(sbk_parse_u64("18446744073709551615", &w) == 0 && w == UINT64_MAX);
    EXPECT(sbk_parse_u64("18446744073709551616", &w) < 0);
    EXPECT(sbk_parse_u32_range("64:4096", &lo, &hi) == 0 && lo == 64 && hi == 4096);
    EXPECT(sbk_parse_u32_range("5:4", &lo, &hi) < 0 && sbk_parse_u32_range("5", &lo, &hi) < 0);
    EXPECT(sbk_parse_u32_range(":4", &lo, &hi) < 0 && sbk_parse_u32_range("4:", &lo, &hi) < 0);
    return NULL;
}

static int count_item(void *ctx, const char *item, size_t len)
{
    (void)item;
    (void)len;
    ++*(int *)ctx;
    return 0;
}

static const char *test_lists(void)
{
    int n = 0;

    EXPECT(sbk_parse_list("a,b;c", count_item, &n) == 0 && n == 3);
    EXPECT(sbk_parse_list("a,,b", count_item, &n) < 0);
    EXPECT(sbk_parse_list("a,", count_item, &n) < 0);
    EXPECT(sbk_parse_list("", count_item, &n) < 0);
    return NULL;
}

static const char *test_names(void)
{
    EXPECT(sbk_format_by_name("s16_le", 6) == XENSND_PCM_FORMAT_S16_LE);
    EXPECT(sbk_format_by_name("S16_LE", 6) == XENSND_PCM_FORMAT_S16_LE);
    EXPECT(sbk_format_by_name("f32_le", 6) == XENSND_PCM_FORMAT_F32_LE);
    EXPECT(sbk_format_by_name("float_le", 8) == XENSND_PCM_FORMAT_F32_LE);
    EXPECT(sbk_format_by_name("f64_be", 6) == XENSND_PCM_FORMAT_F64_BE);
    EXPECT(sbk_format_by_name("float64_be", 10) == XENSND_PCM_FORMAT_F64_BE);
    EXPECT(sbk_format_by_name("s16_lex", 7) < 0 && sbk_format_by_name("s16", 3) < 0);
    EXPECT(sbk_format_bytes(XENSND_PCM_FORMAT_S24_LE) == 4 && sbk_format_bytes(XENSND_PCM_FORMAT_GSM) == 0);
    EXPECT(sbk_errno_parse("EIO") == 5 && sbk_errno_parse("eio") == 5 && sbk_errno_parse("22") == 22);
    EXPECT(sbk_errno_parse("0") < 0 && sbk_errno_parse("EFOO") < 0 && sbk_errno_parse("") < 0);
    EXPECT(strcmp(sbk_errno_name(28), "ENOSPC") == 0);
    EXPECT(sbk_op_by_name("hw-param-query") == XENSND_OP_HW_PARAM_QUERY && sbk_op_by_name("query") < 0);
    return NULL;
}

static const char *test_encode(void)
{
    uint8_t b[8];
    float f;

    sbk_encode_int32(XENSND_PCM_FORMAT_S16_LE, 0x12345678, b);
    EXPECT(b[0] == 0x34 && b[1] == 0x12);
    sbk_encode_int32(XENSND_PCM_FORMAT_S16_BE, 0x12345678, b);
    EXPECT(b[0] == 0x12 && b[1] == 0x34);
    sbk_encode_int32(XENSND_PCM_FORMAT_U8, 0, b);
    EXPECT(b[0] == 0x80);
    sbk_encode_int32(XENSND_PCM_FORMAT_U16_BE, INT32_MAX, b);
    EXPECT(b[0] == 0xFF && b[1] == 0xFF);
    sbk_encode_int32(XENSND_PCM_FORMAT_S24_BE, INT32_MIN, b);
    EXPECT(b[0] == 0xFF && b[1] == 0x80 && b[2] == 0 && b[3] == 0);
    sbk_encode_int32(XENSND_PCM_FORMAT_U24_LE, 0, b);
    EXPECT(b[0] == 0 && b[1] == 0 && b[2] == 0x80 && b[3] == 0);
    sbk_encode_int32(XENSND_PCM_FORMAT_MU_LAW, 0, b);
    EXPECT(b[0] == 0xFF);
    sbk_encode_int32(XENSND_PCM_FORMAT_A_LAW, 0, b);
    EXPECT(b[0] == 0xD5);
    sbk_encode_int32(XENSND_PCM_FORMAT_MU_LAW, INT32_MIN, b);
    EXPECT(b[0] == 0x00);
    sbk_encode_double(XENSND_PCM_FORMAT_F32_LE, 0.5, b);
    memcpy(&f, b, 4);
    EXPECT(f == 0.5f);
    sbk_encode_double(XENSND_PCM_FORMAT_S16_LE, 0.5, b);
    EXPECT(b[0] == 0x00 && b[1] == 0x40);
    sbk_encode_double(XENSND_PCM_FORMAT_S16_LE, 2.0, b);    /* clipped */
    EXPECT(b[0] == 0xFF && b[1] == 0x7F);
    return NULL;
}

static const char *test_wav_layout(void)
{
    uint8_t out[8];
    int subtype;
    unsigned bytes;

    sbk_format_sample_to_wav(XENSND_PCM_FORMAT_S16_BE, (const uint8_t[]){ 0x12, 0x34 }, out);
    EXPECT(out[0] == 0x34 && out[1] == 0x12);
    sbk_format_sample_to_wav(XENSND_PCM_FORMAT_U16_LE, (const uint8_t[]){ 0x00, 0x80 }, out);
    EXPECT(out[0] == 0 && out[1] == 0);
    sbk_format_sample_to_wav(XENSND_PCM_FORMAT_S24_BE, (const uint8_t[]){ 0xFF, 0x80, 0x00, 0x01 }, out);
    EXPECT(out[0] == 0x01 && out[1] == 0x00 && out[2] == 0x80);
    sbk_format_sample_to_wav(XENSND_PCM_FORMAT_S8, (const uint8_t[]){ 0x00 }, out);
    EXPECT(out[0] == 0x80);
    EXPECT(sbk_format_wav_layout(XENSND_PCM_FORMAT_S24_LE, &subtype, &bytes) && subtype == SF_FORMAT_PCM_24 && bytes == 3);
    EXPECT(!sbk_format_wav_layout(XENSND_PCM_FORMAT_IEC958_SUBFRAME_LE, &subtype, &bytes));
    EXPECT(sbk_format_wav_is_identity(XENSND_PCM_FORMAT_S16_LE) && !sbk_format_wav_is_identity(XENSND_PCM_FORMAT_S24_LE));
    EXPECT(sbk_format_wav_is_identity(XENSND_PCM_FORMAT_MU_LAW) && !sbk_format_wav_is_identity(XENSND_PCM_FORMAT_S8));
    return NULL;
}

static const struct fake_kv xl_card[] = {
    { FE, "" },
    { FE "/short-name", "VCard" },
    { FE "/sample-rates", "8000,22050,44100,48000" },
    { FE "/sample-formats", "s16_le,f32_le" },
    { FE "/buffer-size", "65536" },
    { FE "/0", "" },
    { FE "/0/name", "dev1" },
    { FE "/0/0", "" },
    { FE "/0/0/unique-id", "pb0" },
    { FE "/0/0/type", "p" },
    { FE "/0/1", "" },
    { FE "/0/1/unique-id", "cap0" },
    { FE "/0/1/type", "c" },
    { FE "/0/1/sample-rates", "44100;96000" },
    { FE "/0/1/channels-max", "1" },
    { NULL, NULL },
};

static const char *test_config_xl(void)
{
    struct sbk_card_cfg c;
    const struct sbk_limits *pb, *cap;

    EXPECT(read_card(xl_card, NULL, &c) == 0);
    EXPECT(c.n_streams == 2);
    pb = &c.streams[0].limits;
    cap = &c.streams[1].limits;
    EXPECT(strcmp(c.streams[0].uid, "pb0") == 0 && !c.streams[0].capture);
    EXPECT(strcmp(c.streams[1].uid, "cap0") == 0 && c.streams[1].capture);
    EXPECT(strcmp(c.streams[1].path, FE "/0/1") == 0);
    EXPECT(pb->rates.n == 4 && pb->rates.v[0] == 8000 && pb->rates.v[3] == 48000);
    EXPECT(pb->formats == ((1u << XENSND_PCM_FORMAT_S16_LE) | (1u << XENSND_PCM_FORMAT_F32_LE)));
    EXPECT(pb->channels.min == 1 && pb->channels.max == 2 && pb->buffer_bytes == 65536);
    EXPECT(cap->rates.n == 1 && cap->rates.v[0] == 44100);     /* child narrowed by the card */
    EXPECT(cap->channels.min == 1 && cap->channels.max == 1);
    sbk_card_cfg_free(&c);
    return NULL;
}

static const char *test_config_defaults(void)
{
    static const struct fake_kv kv[] = {
        { FE, "" }, { FE "/0", "" }, { FE "/0/0", "" }, { FE "/0/0/type", "p" }, { FE "/0/1", "" },
        { FE "/0/1/type", "c" }, { FE "/0/1/channels-min", "4" }, { NULL, NULL },
    };
    struct sbk_card_cfg c;

    EXPECT(read_card(kv, NULL, &c) == 0);
    EXPECT(c.n_streams == 2 && strcmp(c.streams[0].uid, "card0-pcm0-stream0") == 0);
    EXPECT(c.streams[0].limits.rates.n == 8 && c.streams[0].limits.rates.v[0] == 5512);
    EXPECT(c.streams[0].limits.formats == ((1u << XENSND_PCM_FORMAT_U8) | (1u << XENSND_PCM_FORMAT_S16_LE)));
    EXPECT(c.streams[0].limits.buffer_bytes == 65536 && c.streams[0].limits.channels.max == 2);
    EXPECT(c.streams[1].limits.channels.min == 4 && c.streams[1].limits.channels.max == 4);
    sbk_card_cfg_free(&c);
    return NULL;
}

/* Each bad configuration fails with a message naming the key. */
static const char *test_config_errors(void)
{
    static const struct {
        const char *key, *value, *expect;
    } bad[] = {
        { FE "/0/0/type", "x", FE "/0/0/type" },
        { FE "/sample-formats", "s16_le,bogus", FE "/sample-formats" },
        { FE "/sample-rates", "44100,", FE "/sample-rates" },
        { FE "/sample-rates", "0", FE "/sample-rates" },
        { FE "/0/0/sample-rates", "96000", FE "/0/0/sample-rates" },
        { FE "/0/1/channels-min", "2", FE "/0/1/channels-min" },
        { FE "/0/channels-min", "2", FE "/0/1" },
        { FE "/0/channels-max", "256", FE "/0/channels-max" },
        { FE "/buffer-size", "64k", FE "/buffer-size" },
        { FE "/0/0/unique-id", "../etc", FE "/0/0/unique-id" },
        { FE "/0/1/unique-id", "pb0", FE "/0/1/unique-id" },
        { FE "/short-name", "0123456789012345678901234567890123456789", FE "/short-name" },
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct fake_kv kv[32];
        struct sbk_card_cfg c;
        size_t n = 0;
        bool replaced = false;

        for (const struct fake_kv *p = xl_card; p->path; p++) {
            kv[n] = *p;
            if (strcmp(p->path, bad[i].key) == 0) {
                kv[n].value = bad[i].value;
                replaced = true;
            }
            n++;
        }
        if (!replaced)
            kv[n++] = (struct fake_kv){ bad[i].key, bad[i].value };
        kv[n] = (struct fake_kv){ NULL, NULL };
        if (read_card(kv, NULL, &c) == 0)
            return unit_fmt("%s='%s' accepted", bad[i].key, bad[i].value);
        if (!strstr(cfg_err, bad[i].expect))
            return unit_fmt("%s='%s': message '%s' does not name %s", bad[i].key, bad[i].value, cfg_err, bad[i].expect);
    }
    return NULL;
}

static const char *test_config_structure(void)
{
    static const struct fake_kv no_pcm[] = { { FE, "" }, { NULL, NULL } };
    static const struct fake_kv no_type[] = { { FE, "" }, { FE "/0", "" }, { FE "/0/0", "" }, { NULL, NULL } };
    static const struct fake_kv no_stream[] = { { FE, "" }, { FE "/0", "" }, { NULL, NULL } };
    struct sbk_card_cfg c;

    EXPECT(read_card(no_pcm, NULL, &c) < 0 && strstr(cfg_err, FE "/0"));
    EXPECT(read_card(no_type, NULL, &c) < 0 && strstr(cfg_err, FE "/0/0/type"));
    EXPECT(read_card(no_stream, NULL, &c) < 0 && strstr(cfg_err, FE "/0/0"));
    return NULL;
}

static int parse_args(struct sbk_options *o, const char *const *args)
{
    char *argv[32];
    int argc = 0;

    argv[argc++] = (char *)"sndback";
    for (; *args; args++)
        argv[argc++] = (char *)*args;
    argv[argc] = NULL;
    return sbk_options_parse(argc, argv, o, cfg_err, sizeof(cfg_err));
}

static const char *test_options(void)
{
    static const char *const args[] = { "--rates=44100,48000", "--delay-ms=5", "--out", "/tmp/x", "--stream=pb0",
                                        "--channels=2:2", "--answer-error=write:EIO", "--no-answer=read",
                                        "--capture-source=sine:440", "--stream=cap0", "--bad-pos=beyond", "-v", NULL };
    static const char *const bad[][2] = { { "--rates=44100,x", NULL },  { "--no-answer=query", NULL },
                                          { "--answer-error=write", NULL }, { "--clock=fast", NULL },
                                          { "--channels=3:2", NULL },     { "--capture-source=noise:1", NULL },
                                          { "stray", NULL },             { "--bad-pos=sideways", NULL } };
    struct sbk_options o;
    struct sbk_stream_opts r;

    EXPECT(parse_args(&o, args) == 0);
    EXPECT(strcmp(o.out_dir, "/tmp/x") == 0 && o.verbose && o.n_per_stream == 2);
    sbk_options_resolve(&o, "pb0", &r);
    EXPECT(r.has_rates && r.rates.n == 2 && r.has_delay && r.delay_ms == 5);
    EXPECT(r.has_channels && r.channels.min == 2 && r.answer_error[XENSND_OP_WRITE] == 5);
    EXPECT(r.no_answer_ops == (1u << XENSND_OP_READ) && r.has_capture && r.capture.hz == 440);
    EXPECT(r.bad_pos == SBK_BAD_POS_NONE);
    sbk_options_resolve(&o, "cap0", &r);
    EXPECT(r.bad_pos == SBK_BAD_POS_BEYOND && !r.has_channels && !r.no_answer_ops && r.has_delay);
    sbk_options_resolve(&o, "other", &r);
    EXPECT(r.bad_pos == SBK_BAD_POS_NONE && r.has_rates);
    sbk_options_free(&o);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = parse_args(&o, bad[i]);

        sbk_options_free(&o);
        if (rc != -1)
            return unit_fmt("'%s' accepted", bad[i][0]);
    }
    return NULL;
}

static const char *test_config_with_options(void)
{
    static const char *const narrow[] = { "--stream=pb0", "--rates=44100,96000", "--formats=f32_le", NULL };
    static const char *const empty[] = { "--stream=pb0", "--rates=96000", NULL };
    struct sbk_options o;
    struct sbk_card_cfg c;

    EXPECT(parse_args(&o, narrow) == 0);
    EXPECT(read_card(xl_card, &o, &c) == 0);
    EXPECT(c.streams[0].limits.rates.n == 1 && c.streams[0].limits.rates.v[0] == 44100);
    EXPECT(c.streams[0].limits.formats == (1u << XENSND_PCM_FORMAT_F32_LE));
    EXPECT(c.streams[1].limits.formats != (1u << XENSND_PCM_FORMAT_F32_LE));
    sbk_card_cfg_free(&c);
    sbk_options_free(&o);
    EXPECT(parse_args(&o, empty) == 0);
    EXPECT(read_card(xl_card, &o, &c) < 0 && strstr(cfg_err, "--rates"));
    sbk_options_free(&o);
    return NULL;
}

static struct sbk_limits unit_limits(void)
{
    struct sbk_limits l;

    memset(&l, 0, sizeof(l));
    sbk_rates_add(&l.rates, 48000);
    sbk_rates_add(&l.rates, 8000);
    sbk_rates_add(&l.rates, 44100);
    l.formats = (1u << XENSND_PCM_FORMAT_S16_LE) | (1u << XENSND_PCM_FORMAT_S32_LE);
    l.channels = (struct sbk_range){ 1, 2 };
    l.buffer_bytes = 65536;
    l.buffer_frames = (struct sbk_range){ 1, UINT32_MAX };
    l.period_frames = (struct sbk_range){ 1, UINT32_MAX };
    return l;
}

static const struct sbk_query unit_full = { ~UINT64_C(0), { 0, UINT32_MAX }, { 0, UINT32_MAX }, { 0, UINT32_MAX },
                                            { 0, UINT32_MAX } };

static const char *test_query(void)
{
    struct sbk_limits l = unit_limits();
    struct sbk_query q = unit_full, a;

    EXPECT(l.rates.v[0] == 8000 && l.rates.v[2] == 48000);
    EXPECT(sbk_query_answer(&l, &q, &a) == 0);
    EXPECT(a.formats == l.formats && a.rates.min == 8000 && a.rates.max == 48000);
    EXPECT(a.channels.min == 1 && a.channels.max == 2);
    EXPECT(a.buffer.min == 2 && a.buffer.max == 32768);    /* 65536 bytes of mono s16 */
    EXPECT(a.period.min == 1 && a.period.max == 16384);
    q.formats = 1u << XENSND_PCM_FORMAT_S32_LE;
    q.channels = (struct sbk_range){ 2, 2 };
    EXPECT(sbk_query_answer(&l, &q, &a) == 0 && a.buffer.max == 8192 && a.period.max == 4096);
    q = unit_full;
    q.rates = (struct sbk_range){ 9000, 44100 };
    EXPECT(sbk_query_answer(&l, &q, &a) == 0 && a.rates.min == 44100 && a.rates.max == 44100);
    q.rates = (struct sbk_range){ 9000, 10000 };
    EXPECT(sbk_query_answer(&l, &q, &a) < 0);
    q = unit_full;
    q.formats = 1u << XENSND_PCM_FORMAT_S8;
    EXPECT(sbk_query_answer(&l, &q, &a) < 0);
    q = unit_full;
    q.channels = (struct sbk_range){ 3, 8 };
    EXPECT(sbk_query_answer(&l, &q, &a) < 0);
    l.period_frames = (struct sbk_range){ 256, 1024 };
    l.buffer_frames = (struct sbk_range){ 128, 4096 };
    q = unit_full;
    EXPECT(sbk_query_answer(&l, &q, &a) == 0 && a.period.min == 256 && a.period.max == 1024);
    EXPECT(a.buffer.min == 512 && a.buffer.max == 4096);
    q.buffer = (struct sbk_range){ 0, 400 };
    EXPECT(sbk_query_answer(&l, &q, &a) < 0);               /* not two periods of 256 */
    return NULL;
}

/* Random requests: every answer lies inside its request and inside the limits. */
static const char *test_query_random(void)
{
    struct sbk_limits l = unit_limits();

    srand(1234);
    for (int i = 0; i < 20000; i++) {
        struct sbk_query q, a;
        uint32_t r1 = (uint32_t)rand() % 60000, r2 = (uint32_t)rand() % 60000;
        uint32_t b1 = (uint32_t)rand() % 70000, b2 = (uint32_t)rand() % 70000;
        uint32_t p1 = (uint32_t)rand() % 40000, p2 = (uint32_t)rand() % 40000;

        q.formats = (uint64_t)rand() << 20 ^ (uint64_t)rand();
        q.rates = (struct sbk_range){ r1 < r2 ? r1 : r2, r1 < r2 ? r2 : r1 };
        q.channels = (struct sbk_range){ (uint32_t)rand() % 3, 1 + (uint32_t)rand() % 3 };
        q.buffer = (struct sbk_range){ b1 < b2 ? b1 : b2, b1 < b2 ? b2 : b1 };
        q.period = (struct sbk_range){ p1 < p2 ? p1 : p2, p1 < p2 ? p2 : p1 };
        if (sbk_query_answer(&l, &q, &a) < 0)
            continue;
        EXPECT((a.formats & ~q.formats) == 0 && (a.formats & ~l.formats) == 0 && a.formats);
        EXPECT(a.rates.min >= q.rates.min && a.rates.max <= q.rates.max && a.rates.min <= a.rates.max);
        EXPECT(sbk_rates_contains(&l.rates, a.rates.min) && sbk_rates_contains(&l.rates, a.rates.max));
        EXPECT(a.channels.min >= q.channels.min && a.channels.max <= q.channels.max && a.channels.min <= a.channels.max);
        EXPECT(a.buffer.min >= q.buffer.min && a.buffer.max <= q.buffer.max && a.buffer.min <= a.buffer.max);
        EXPECT(a.period.min >= q.period.min && a.period.max <= q.period.max && a.period.min <= a.period.max);
        EXPECT(a.period.max <= a.buffer.max / 2 && a.buffer.max * 2 * a.channels.min <= l.buffer_bytes);
    }
    return NULL;
}

static const char *test_open_check(void)
{
    struct sbk_limits l = unit_limits();
    struct sbk_open_params p = { 44100, XENSND_PCM_FORMAT_S16_LE, 2, 16384, 4096 };

    EXPECT(sbk_open_check(&l, &p) == NULL);
    p.rate = 22050;
    EXPECT(sbk_open_check(&l, &p) != NULL);
    p.rate = 44100;
    p.format = 200;
    EXPECT(sbk_open_check(&l, &p) != NULL);
    p.format = XENSND_PCM_FORMAT_S16_LE;
    p.channels = 3;
    EXPECT(sbk_open_check(&l, &p) != NULL);
    p.channels = 2;
    p.buffer_sz = 65537;
    EXPECT(sbk_open_check(&l, &p) != NULL);
    p.buffer_sz = 0;
    EXPECT(sbk_open_check(&l, &p) != NULL);
    p.buffer_sz = 4096;
    p.period_sz = 8192;
    EXPECT(sbk_open_check(&l, &p) != NULL);
    p.period_sz = 0;
    EXPECT(sbk_open_check(&l, &p) == NULL);
    l.period_frames = (struct sbk_range){ 256, 512 };
    p.period_sz = 4096;                                     /* 1024 frames */
    EXPECT(sbk_open_check(&l, &p) != NULL);
    return NULL;
}

static const char *test_fifo(void)
{
    struct sbk_fifo f;
    uint8_t out[16];

    EXPECT(sbk_fifo_init(&f, 8) == 0);
    EXPECT(sbk_fifo_push(&f, "abcdef", 6) == 0);
    EXPECT(sbk_fifo_pop(&f, out, 4) == 4 && memcmp(out, "abcd", 4) == 0);
    EXPECT(sbk_fifo_push(&f, "ghijkl", 6) == 0 && f.len == 8);       /* wraps */
    EXPECT(sbk_fifo_push(&f, "mn", 2) == 2);                          /* drops "ef" */
    EXPECT(sbk_fifo_pop(&f, out, 16) == 8 && memcmp(out, "ghijklmn", 8) == 0);
    EXPECT(sbk_fifo_push(&f, "0123456789", 10) == 2 && sbk_fifo_pop(&f, out, 16) == 8 && memcmp(out, "23456789", 8) == 0);
    sbk_fifo_free(&f);
    return NULL;
}

static const char *read_file(const char *path, uint8_t *buf, size_t cap, size_t *len)
{
    FILE *f = fopen(path, "rb");

    if (!f)
        return unit_fmt("cannot open %s", path);
    *len = fread(buf, 1, cap, f);
    fclose(f);
    return NULL;
}

static const char *test_sink(void)
{
    struct sbk_pcm_shape shape = { XENSND_PCM_FORMAT_S16_BE, 2, 48000 };
    static const uint8_t data[] = { 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0x01, 0x02, 0x03, 0x04 };
    struct sbk_sink s;
    SF_INFO info = { 0 };
    SNDFILE *sf;
    short frames[6];
    char err[256], path[256];

    EXPECT(sbk_sink_open(&s, unit_dir, "pb0", 2, &shape, err, sizeof(err)) == 0);
    snprintf(path, sizeof(path), "%s/pb0.2.wav", unit_dir);
    EXPECT(strcmp(s.path, path) == 0);
    EXPECT(sbk_sink_write(&s, data, 5) == 0 && sbk_sink_write(&s, data + 5, 4) == 0);    /* cut frames */
    EXPECT(sbk_sink_write(&s, data + 9, 3) == 0);
    EXPECT(sbk_sink_close(&s) == 0);
    sf = sf_open(path, SFM_READ, &info);
    EXPECT(sf && info.channels == 2 && info.samplerate == 48000 && info.frames == 3);
    EXPECT((info.format & SF_FORMAT_SUBMASK) == SF_FORMAT_PCM_16);
    EXPECT(sf_readf_short(sf, frames, 3) == 3);
    sf_close(sf);
    EXPECT(frames[0] == 0x1234 && frames[1] == 0x5678 && frames[5] == 0x0304);
    return NULL;
}

static const char *test_sink_raw_and_identity(void)
{
    struct sbk_pcm_shape iec = { XENSND_PCM_FORMAT_IEC958_SUBFRAME_LE, 1, 48000 };
    struct sbk_pcm_shape s16 = { XENSND_PCM_FORMAT_S16_LE, 1, 8000 };
    static const uint8_t data[] = { 1, 2, 3, 4, 5, 6, 7 };
    uint8_t buf[256];
    struct sbk_sink s;
    char err[256], path[256];
    size_t len = 0; /* gcc -O2 cannot see read_file set it on success */
    const char *why;

    EXPECT(sbk_sink_open(&s, unit_dir, "iec", 1, &iec, err, sizeof(err)) == 0);
    EXPECT(sbk_sink_write(&s, data, 7) == 0);
    EXPECT(sbk_sink_close(&s) == 0);
    snprintf(path, sizeof(path), "%s/iec.raw", unit_dir);
    if ((why = read_file(path, buf, sizeof(buf), &len)))
        return why;
    EXPECT(len == 7 && memcmp(buf, data, 7) == 0);
    EXPECT(sbk_sink_open(&s, unit_dir, "mono", 1, &s16, err, sizeof(err)) == 0);
    EXPECT(sbk_sink_write(&s, data, 7) == 0);
    EXPECT(sbk_sink_close(&s) == 1);                      /* half a frame cannot be stored */
    snprintf(path, sizeof(path), "%s/mono.wav", unit_dir);
    if ((why = read_file(path, buf, sizeof(buf), &len)))
        return why;
    EXPECT(len >= 6 && memcmp(buf + len - 6, data, 6) == 0);    /* data chunk last, bytes unchanged */
    return NULL;
}

static const char *test_source_sine(void)
{
    struct sbk_capture_source cfg = { SBK_CAPTURE_SINE, NULL, 1000 };
    struct sbk_pcm_shape shape = { XENSND_PCM_FORMAT_S16_LE, 2, 48000 };
    struct sbk_source src;
    int16_t pcm[480 * 2];
    int peak = 0;
    char err[256];

    EXPECT(sbk_source_open(&src, &cfg, &shape, 0, err, sizeof(err)) == 0);
    sbk_source_read(&src, (uint8_t *)pcm, 3);               /* cut a frame: the stream stays aligned */
    sbk_source_read(&src, (uint8_t *)pcm + 3, sizeof(pcm) - 3);
    sbk_source_close(&src);
    for (int i = 0; i < 480; i++) {
        EXPECT(pcm[2 * i] == pcm[2 * i + 1]);
        if (abs(pcm[2 * i]) > peak)
            peak = abs(pcm[2 * i]);
    }
    EXPECT(pcm[0] == 0 && peak >= 16300 && peak <= 16384);
    EXPECT(pcm[2 * 12] > 16300);                            /* a quarter period of 1 kHz at 48 kHz */
    return NULL;
}

static const char *test_source_wav(void)
{
    static const short file_frames[] = { 100, -100, 32767, -32768 };
    struct sbk_pcm_shape raw_shape = { XENSND_PCM_FORMAT_S16_LE, 1, 8000 };
    struct sbk_pcm_shape conv_shape = { XENSND_PCM_FORMAT_S32_BE, 2, 8000 };
    struct sbk_capture_source cfg = { SBK_CAPTURE_WAV, NULL, 0 };
    SF_INFO info = { .samplerate = 8000, .channels = 1, .format = SF_FORMAT_WAV | SF_FORMAT_PCM_16 };
    struct sbk_source src;
    uint8_t out[64];
    char path[256], err[256];
    SNDFILE *sf;

    snprintf(path, sizeof(path), "%s/in.wav", unit_dir);
    cfg.arg = path;
    sf = sf_open(path, SFM_WRITE, &info);
    EXPECT(sf && sf_writef_short(sf, file_frames, 4) == 4);
    sf_close(sf);
    EXPECT(sbk_source_check(&cfg, err, sizeof(err)) == 0);
    EXPECT(sbk_source_open(&src, &cfg, &raw_shape, 0, err, sizeof(err)) == 0 && src.raw);
    sbk_source_read(&src, out, 12);
    sbk_source_close(&src);
    EXPECT(memcmp(out, file_frames, 8) == 0 && out[8] == 0 && out[11] == 0);    /* once, then silence */
    EXPECT(sbk_source_open(&src, &cfg, &conv_shape, 0, err, sizeof(err)) == 0 && !src.raw);
    sbk_source_read(&src, out, 40);
    sbk_source_close(&src);
    /* 100 << 16 big-endian, on both channels (mono file) */
    EXPECT(out[0] == 0x00 && out[1] == 0x64 && out[2] == 0 && out[3] == 0 && memcmp(out, out + 4, 4) == 0);
    EXPECT(out[24] == 0x80 && out[25] == 0 && out[32] == 0 && out[39] == 0);
    cfg.arg = "/nonexistent.wav";
    EXPECT(sbk_source_check(&cfg, err, sizeof(err)) < 0 && strstr(err, "/nonexistent.wav"));
    return NULL;
}

static const char *test_source_loopback(void)
{
    struct sbk_capture_source cfg = { SBK_CAPTURE_LOOPBACK, "pb0", 0 };
    struct sbk_pcm_shape shape = { XENSND_PCM_FORMAT_U16_LE, 1, 8000 };
    struct sbk_source src;
    uint8_t out[8];
    char err[256];

    EXPECT(sbk_source_open(&src, &cfg, &shape, 16, err, sizeof(err)) == 0);
    sbk_fifo_push(&src.loop, "abc", 3);
    sbk_source_read(&src, out, 6);
    sbk_source_close(&src);
    /* the bytes, then u16 silence (0x8000) kept on the frame grid */
    EXPECT(memcmp(out, "abc", 3) == 0 && out[3] == 0x80 && out[4] == 0x00 && out[5] == 0x80);
    return NULL;
}

static int unit_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* The program's cases, one line each, in order: the plan is their number. */
static const struct {
    const char *name;
    const char *(*run)(void);
} unit_cases[] = {
    { "parse-decimals", test_parse },
    { "parse-lists", test_lists },
    { "names", test_names },
    { "encode-samples", test_encode },
    { "wav-layout", test_wav_layout },
    { "config-xl-card", test_config_xl },
    { "config-defaults", test_config_defaults },
    { "config-errors-name-the-key", test_config_errors },
    { "config-structure", test_config_structure },
    { "options", test_options },
    { "config-with-options", test_config_with_options },
    { "query-answer", test_query },
    { "query-answer-inside-request", test_query_random },
    { "open-check", test_open_check },
    { "fifo", test_fifo },
    { "sink-wav-converted", test_sink },
    { "sink-raw-and-identity", test_sink_raw_and_identity },
    { "source-sine", test_source_sine },
    { "source-wav", test_source_wav },
    { "source-loopback", test_source_loopback },
};
#define UNIT_NCASES (sizeof(unit_cases) / sizeof(unit_cases[0]))

int main(void)
{
    printf("PLAN: %zu\n", UNIT_NCASES);
    fflush(stdout);
    if (!mkdtemp(unit_dir)) {
        printf("FAIL: setup: mkdtemp: %s\n", strerror(errno));
        return 1;
    }
    for (size_t i = 0; i < UNIT_NCASES; i++)
        unit_case(unit_cases[i].name, unit_cases[i].run());
    nftw(unit_dir, unit_rm, 8, FTW_DEPTH | FTW_PHYS);
    return unit_failed;
}
