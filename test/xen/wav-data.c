/* wav-data: prints the audio data of a RIFF/WAVE file, or its format, for the real-Xen tests.
 *   wav-data FILE        writes the bytes of the "data" chunk to stdout
 *   wav-data --fmt FILE  prints "tag=T channels=C rate=R bits=B" (tag 0xfffe is resolved to its sub-format)
 * Runs in dom0 on the WAVs sndback wrote, so the file is untrusted: every chunk is bounds-checked
 * against the file size and a malformed file ends with exit status 1 and a message. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WAVD_TAG_EXTENSIBLE 0xfffeu

struct wavd_fmt {
    unsigned tag, channels, rate, bits;
};

struct wavd_file {
    const char *name;
    unsigned char *bytes;
    size_t size;
};

static uint32_t wavd_le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static unsigned wavd_le16(const unsigned char *p)
{
    return (unsigned)p[0] | (unsigned)p[1] << 8;
}

static int wavd_fail(const struct wavd_file *f, const char *why)
{
    fprintf(stderr, "wav-data: %s: %s\n", f->name, why);
    return -1;
}

static int wavd_load(struct wavd_file *f)
{
    FILE *in = fopen(f->name, "rb");
    if (!in) {
        perror(f->name);
        return -1;
    }
    size_t cap = 1 << 16;
    f->bytes = malloc(cap);
    f->size = 0;
    while (f->bytes) {
        f->size += fread(f->bytes + f->size, 1, cap - f->size, in);
        if (f->size < cap)
            break;
        unsigned char *bigger = realloc(f->bytes, cap * 2);
        if (!bigger) {
            free(f->bytes);
            f->bytes = NULL;
        } else {
            f->bytes = bigger;
            cap *= 2;
        }
    }
    int bad = ferror(in) || !f->bytes;
    fclose(in);
    return bad ? wavd_fail(f, "cannot read the file") : 0;
}

static int wavd_parse_fmt(const struct wavd_file *f, const unsigned char *p, uint32_t len, struct wavd_fmt *fmt)
{
    if (len < 16)
        return wavd_fail(f, "fmt chunk shorter than 16 bytes");
    fmt->tag = wavd_le16(p);
    fmt->channels = wavd_le16(p + 2);
    fmt->rate = wavd_le32(p + 4);
    fmt->bits = wavd_le16(p + 14);
    if (fmt->tag == WAVD_TAG_EXTENSIBLE) {
        /* WAVEFORMATEXTENSIBLE: the sub-format GUID starts with the real tag (offset 24). */
        if (len < 40)
            return wavd_fail(f, "extensible fmt chunk shorter than 40 bytes");
        fmt->tag = wavd_le16(p + 24);
    }
    return 0;
}

/* Walks the chunks; on success (*data, *data_len) is the data chunk and *fmt the format. */
static int wavd_parse(const struct wavd_file *f, struct wavd_fmt *fmt, const unsigned char **data, size_t *data_len)
{
    if (f->size < 12 || memcmp(f->bytes, "RIFF", 4) || memcmp(f->bytes + 8, "WAVE", 4))
        return wavd_fail(f, "not a RIFF/WAVE file");
    int have_fmt = 0;
    size_t pos = 12;
    while (pos + 8 <= f->size) {
        const unsigned char *hdr = f->bytes + pos;
        uint32_t len = wavd_le32(hdr + 4);
        size_t room = f->size - pos - 8;
        if (!memcmp(hdr, "data", 4)) {
            if (!have_fmt)
                return wavd_fail(f, "data chunk before the fmt chunk");
            if (len > room)
                return wavd_fail(f, "data chunk longer than the file (header not finalised?)");
            *data = hdr + 8;
            *data_len = len;
            return 0;
        }
        if (len > room)
            return wavd_fail(f, "chunk longer than the file");
        if (!memcmp(hdr, "fmt ", 4)) {
            if (wavd_parse_fmt(f, hdr + 8, len, fmt))
                return -1;
            have_fmt = 1;
        }
        pos += 8 + (size_t)len + (len & 1); /* chunks are padded to even sizes */
    }
    return wavd_fail(f, "no data chunk");
}

int main(int argc, char **argv)
{
    int want_fmt = argc == 3 && !strcmp(argv[1], "--fmt");
    if (argc != 2 + want_fmt) {
        fprintf(stderr, "usage: wav-data [--fmt] FILE.wav\n");
        return 2;
    }
    struct wavd_file f = { .name = argv[argc - 1] };
    struct wavd_fmt fmt = { 0 };
    const unsigned char *data = NULL;
    size_t data_len = 0;
    int rc = 1;
    if (!wavd_load(&f) && !wavd_parse(&f, &fmt, &data, &data_len)) {
        if (want_fmt)
            rc = printf("tag=%u channels=%u rate=%u bits=%u\n", fmt.tag, fmt.channels, fmt.rate, fmt.bits) < 0;
        else
            rc = fwrite(data, 1, data_len, stdout) != data_len;
        if (fflush(stdout))
            rc = 1;
    }
    free(f.bytes);
    return rc;
}
