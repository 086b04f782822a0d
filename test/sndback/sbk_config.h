/* A card's configuration, read from the FRONTEND directory as xl writes it (card keys in
 * <fe>, PCM device p in <fe>/p, stream s in <fe>/p/s), with inheritance card -> pcm -> stream
 * (a child narrows its parent), then narrowed by the command-line constraints. Everything read
 * is untrusted guest data: parsed strictly, bounded, and any error names the key. */
#ifndef SBK_CONFIG_H
#define SBK_CONFIG_H

#include "sbk_limits.h"
#include "sbk_options.h"

#include <stdbool.h>
#include <stddef.h>

#define SBK_UID_MAX 64
#define SBK_PATH_MAX 128
#define SBK_MAX_PCMS 32                 /* as Linux (SNDRV_PCM_DEVICES) */
#define SBK_MAX_STREAMS_PER_PCM 16

/* Reads one xenstore node: 0 and a malloc'd NUL-terminated *value, -ENOENT when absent, or
 * -EINVAL when the value is not a plain string (embedded NUL). */
struct sbk_reader {
    int (*read)(void *ctx, const char *path, char **value);
    void *ctx;
};

struct sbk_stream_cfg {
    unsigned pcm, index;                /* <fe>/<pcm>/<index> */
    bool capture;
    char uid[SBK_UID_MAX + 1];          /* unique-id, or card<devid>-pcm<p>-stream<s> */
    char path[SBK_PATH_MAX];            /* the stream's frontend directory */
    struct sbk_limits limits;
    struct sbk_stream_opts opts;        /* command-line constraints and faults, resolved */
};

struct sbk_card_cfg {
    unsigned n_streams;
    struct sbk_stream_cfg *streams;
};

/* Reads the card at fe_path. Returns 0, or -1 with the reason (naming the key) in err. */
int sbk_card_cfg_read(const struct sbk_reader *r, const char *fe_path, unsigned devid,
                      const struct sbk_options *opts, struct sbk_card_cfg *out, char *err, size_t errlen);
void sbk_card_cfg_free(struct sbk_card_cfg *c);
/* True for unique-ids sndback accepts (they name files): 1..64 of [A-Za-z0-9._-], not
 * starting with '.'. */
bool sbk_uid_valid(const char *uid);

#endif
