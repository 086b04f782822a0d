/* Unit tests of xs_config.c's parsing: a card read from a table instead of xenstore. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xs_config.h"

struct node { const char *path, *value; };

static int failures;

/* The plan: the number of CHECK lines in main(), one case line each. "--plan" prints only it. */
#define XSC_TEST_CASES 25

#define CHECK(name, cond)                                                      \
    do {                                                                       \
        if (cond)                                                              \
            printf("PASS: xs-config: %s\n", name);                             \
        else {                                                                 \
            printf("FAIL: xs-config: %s (%s:%d)\n", name, __FILE__, __LINE__); \
            failures++;                                                        \
        }                                                                      \
    } while (0)

static char *table_read(void *ctx, const char *path, unsigned *len)
{
    for (const struct node *n = ctx; n->path; n++) {
        if (!strcmp(n->path, path)) {
            *len = (unsigned)strlen(n->value);
            return strdup(n->value);
        }
    }
    errno = ENOENT;
    return NULL;
}

#define FE "/local/domain/1/device/vsnd/0"

static int parse(const struct node *t, struct xsc_card *c, char *err)
{
    memset(c, 0, sizeof(*c));
    err[0] = 0;
    return xsc_parse_card(table_read, (void *)t, FE, c, err);
}

int main(int argc, char **argv)
{
    struct xsc_card c;
    char err[XSC_ERR_LEN];
    uint64_t v;

    if (argc > 1 && strcmp(argv[1], "--plan") == 0) {
        printf("%d\n", XSC_TEST_CASES);
        return 0;
    }
    printf("PLAN: %d\n", XSC_TEST_CASES);
    /* What xl 4.17 writes for the reference card (../shared/xen-under-qemu.md). */
    static const struct node xl[] = {
        { FE "/short-name", "VCard" }, { FE "/long-name", "Virtual sound card" },
        { FE "/sample-rates", "8000,22050,44100,48000" }, { FE "/sample-formats", "s16_le,s32_le" },
        { FE "/buffer-size", "65536" }, { FE "/0/name", "dev1" },
        { FE "/0/0/unique-id", "pb0" }, { FE "/0/0/type", "p" },
        { FE "/0/1/unique-id", "cap0" }, { FE "/0/1/type", "c" }, { NULL, NULL },
    };
    CHECK("xl card parses", parse(xl, &c, err) == 0);
    CHECK("xl card: 1 pcm, 2 streams", c.npcms == 1 && c.nstreams == 2);
    CHECK("xl card: names", !strcmp(c.short_name, "VCard") && !strcmp(c.pcm_name[0], "dev1"));
    CHECK("xl card: stream 0 playback pb0", c.streams[0].playback && !strcmp(c.streams[0].unique_id, "pb0"));
    CHECK("xl card: stream 1 capture cap0", !c.streams[1].playback && !strcmp(c.streams[1].unique_id, "cap0"));
    CHECK("xl card: formats inherited", c.streams[1].lim.formats == (1ull << 2 | 1ull << 10));
    CHECK("xl card: rates inherited, sorted",
          c.streams[0].lim.nrates == 4 && c.streams[0].lim.rates[0] == 8000 && c.streams[0].lim.rates[3] == 48000);
    CHECK("xl card: buffer-size", c.streams[0].lim.buffer_size == 65536);
    CHECK("xl card: default channels 1-2", c.streams[0].lim.channels_min == 1 && c.streams[0].lim.channels_max == 2);

    static const struct node floats[] = {
        { FE "/sample-formats", "f32_le;float_le,F64_LE,u8" }, { FE "/0/0/type", "p" }, { NULL, NULL },
    };
    CHECK("xl float names and ';' accepted", parse(floats, &c, err) == 0 &&
          c.streams[0].lim.formats == (1ull << 14 | 1ull << 16 | 1ull << 1));

    static const struct node narrow[] = {
        { FE "/sample-rates", "44100,48000" }, { FE "/channels-max", "8" }, { FE "/0/channels-max", "6" },
        { FE "/0/0/type", "p" }, { FE "/0/0/sample-rates", "48000,96000" }, { FE "/0/0/channels-min", "2" },
        { NULL, NULL },
    };
    CHECK("child narrows parent", parse(narrow, &c, err) == 0 && c.streams[0].lim.nrates == 1 &&
          c.streams[0].lim.rates[0] == 48000 && c.streams[0].lim.channels_min == 2 &&
          c.streams[0].lim.channels_max == 6);

    static const struct node empty[] = {
        { FE "/sample-rates", "44100" }, { FE "/0/0/type", "p" }, { FE "/0/0/sample-rates", "48000" }, { NULL, NULL },
    };
    CHECK("disjoint child rejected, naming the key",
          parse(empty, &c, err) == -EINVAL && strstr(err, "sample-rates") && strstr(err, FE "/0/0"));

    static const struct node badrate[] = { { FE "/sample-rates", "44100,48k" }, { FE "/0/0/type", "p" }, { NULL, NULL } };
    CHECK("bad rate rejected", parse(badrate, &c, err) == -EINVAL && strstr(err, "sample-rates"));
    static const struct node badfmt[] = { { FE "/sample-formats", "s16_le,s17_le" }, { FE "/0/0/type", "p" }, { NULL, NULL } };
    CHECK("unknown format rejected", parse(badfmt, &c, err) == -EINVAL && strstr(err, "sample-formats"));
    static const struct node notype[] = { { FE "/0/0/unique-id", "x" }, { FE "/0/1/type", "p" }, { NULL, NULL } };
    CHECK("no stream without type", parse(notype, &c, err) == -ENOENT);
    static const struct node badtype[] = { { FE "/0/0/type", "x" }, { NULL, NULL } };
    CHECK("bad type rejected", parse(badtype, &c, err) == -EINVAL && strstr(err, "type"));
    static const struct node badch[] = { { FE "/channels-max", "300" }, { FE "/0/0/type", "p" }, { NULL, NULL } };
    CHECK("channels beyond uint8 rejected", parse(badch, &c, err) == -EINVAL && strstr(err, "channels-max"));
    static const struct node minmax[] = { { FE "/channels-min", "4" }, { FE "/channels-max", "2" }, { FE "/0/0/type", "p" }, { NULL, NULL } };
    CHECK("channels-min > channels-max rejected", parse(minmax, &c, err) == -EINVAL);
    static const struct node hugebuf[] = { { FE "/buffer-size", "4000000000" }, { FE "/0/0/type", "p" }, { NULL, NULL } };
    CHECK("buffer-size capped", parse(hugebuf, &c, err) == 0 && c.streams[0].lim.buffer_size == XSC_BUFFER_SIZE_CAP);
    static const struct node gap[] = {
        { FE "/0/0/type", "p" }, { FE "/0/2/type", "c" }, { FE "/2/0/type", "c" }, { NULL, NULL },
    };
    CHECK("enumeration stops at the first gap", parse(gap, &c, err) == 0 && c.nstreams == 1 && c.npcms == 1);

    /* A value printed in an error is escaped: no terminal control, no line break, no quote. */
    static const struct node evil[] = {
        { FE "/sample-rates", "48000,\x1b[2J\"\nALSA lib: fake" }, { FE "/0/0/type", "p" }, { NULL, NULL },
    };
    CHECK("an invalid value is printed escaped",
          parse(evil, &c, err) == -EINVAL && strstr(err, "\\x1b[2J\\x22\\x0aALSA lib: fake") && !strchr(err, '\x1b') &&
          !strchr(err, '\n'));
    static const struct node longval[] = {
        { FE "/0/0/type", "pppppppppppppppppppppppppppppp" }, { NULL, NULL },
    };
    CHECK("a long invalid value is cut", parse(longval, &c, err) == -EINVAL && strstr(err, "\"pppppppppppppppppppp...\""));

    CHECK("uint: plain", xsc_parse_uint("48000", UINT32_MAX, &v) == 0 && v == 48000);
    CHECK("uint: sign, space, empty, leading zero, overflow refused",
          xsc_parse_uint("-1", 100, &v) < 0 && xsc_parse_uint(" 1", 100, &v) < 0 && xsc_parse_uint("", 100, &v) < 0 &&
          xsc_parse_uint("01", 100, &v) < 0 && xsc_parse_uint("4294967296", UINT32_MAX, &v) < 0 &&
          xsc_parse_uint("101", 100, &v) < 0);
    CHECK("state: garbage is Closed", xsc_parse_state("4") == 4 && xsc_parse_state("9") == 6 &&
          xsc_parse_state("4x") == 6 && xsc_parse_state("") == 6);
    return failures ? 1 : 0;
}
