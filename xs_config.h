/* xs_config: the vsnd card as xenstore describes it, and the frontend's side of the
 * xenbus handshake (sndif.h, xen/io/xenbus.h). Everything read here is untrusted:
 * guest processes and the toolstack write these nodes, so every value is parsed strictly. */
#ifndef XSND_XS_CONFIG_H
#define XSND_XS_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define XSC_MAX_PCMS            8   /* PCM devices per card (Linux: SNDRV_PCM_DEVICES) */
#define XSC_MAX_STREAMS_PER_PCM 8   /* streams per PCM device (Linux caps at 8 too) */
#define XSC_MAX_STREAMS         (XSC_MAX_PCMS * XSC_MAX_STREAMS_PER_PCM)
#define XSC_MAX_RATES           32
#define XSC_MAX_CHANNELS        255 /* channels-max is a uint8_t */
#define XSC_BUFFER_SIZE_CAP     (32u << 20) /* we never grant more per stream, whatever xenstore says */
#define XSC_NFORMATS            25  /* XENSND_PCM_FORMAT_* numbers 0..24 */
#define XSC_ERR_LEN             256

/* Limits that card, PCM device and stream may each set; a child narrows its parent. */
struct xsc_limits {
    uint64_t formats;            /* bit n = XENSND_PCM_FORMAT n */
    uint32_t rates[XSC_MAX_RATES];
    unsigned nrates;             /* sorted ascending, no duplicates */
    unsigned channels_min, channels_max;
    uint32_t buffer_size;        /* octets */
    unsigned set;                /* XSC_SET_*: which keys some level gave */
};
#define XSC_SET_CHANNELS_MAX 1u
#define XSC_SET_BUFFER_SIZE  2u

struct xsc_stream {
    unsigned pcm, index;         /* <FE dir>/<pcm>/<index> */
    bool playback;
    char unique_id[64];          /* may be empty */
    struct xsc_limits lim;       /* card -> pcm -> stream, intersected */
};

struct xsc_card {
    unsigned devid;
    unsigned own_domid, be_domid;
    char fe_path[128];           /* /local/domain/<own>/device/vsnd/<devid> */
    char be_path[128];           /* the backend directory, as the FE dir's `backend` says */
    char short_name[33], long_name[81];
    unsigned npcms;
    char pcm_name[XSC_MAX_PCMS][81];
    unsigned nstreams;
    struct xsc_stream streams[XSC_MAX_STREAMS];
};

/* Reads one node; returns a malloc'd, NUL-terminated copy and its length, or NULL (errno set).
 * xs_config_read uses xenstore; unit tests pass a table. */
typedef char *(*xsc_read_fn)(void *ctx, const char *path, unsigned *len);

/* Parses the card whose FE directory is fe_path; fills card (except domids and paths, which the
 * caller knows). Returns 0, or -EINVAL/-ENOENT with a message naming the key in err. */
int xsc_parse_card(xsc_read_fn rd, void *ctx, const char *fe_path, struct xsc_card *card, char *err);

/* Strict parsers, exposed for tests. */
int xsc_parse_uint(const char *s, uint64_t max, uint64_t *out);
int xsc_format_from_name(const char *name);     /* sndif and xl spellings; -1 if unknown */
const char *xsc_format_name(unsigned fmt);      /* sndif's name */
int xsc_parse_state(const char *s);             /* 0..8, anything else -> XenbusStateClosed */

/* ---- the connection: xenstore handle, card, handshake ---- */
struct xs_handle;

#define XSC_NONCE_LEN 16 /* hex digits of a holder's liveness token name */
#define XSC_STR_(x) #x
#define XSC_STR(x) XSC_STR_(x)

struct xsc_conn {
    struct xs_handle *xs;
    struct xsc_card card;
    unsigned timeout_ms;
    int token_fd;                          /* our liveness token while we hold the card, else -1 */
    char token_nonce[XSC_NONCE_LEN + 1];   /* its name's nonce ("-": no token) */
    /* After xsc_claim's -EBUSY: the live holder and its token's nonce ("-": none). */
    char holder_nonce[XSC_NONCE_LEN + 1];
    long holder_pid;
};

/* Per-stream transport keys published in the handshake. */
struct xsc_stream_keys {
    uint32_t ring_ref, evt_ring_ref;
    uint32_t port, evt_port;
};

/* Opens xenstore, learns our domid and reads card `devid` (first card when devid < 0).
 * Refuses a card the kernel's snd_xen_front drives, naming it. */
int xsc_open(struct xsc_conn *c, int devid, unsigned timeout_ms);
void xsc_close(struct xsc_conn *c);

/* Claims the card for this process: a record under data/ naming it and its liveness token (an
 * abstract unix socket it keeps bound), checked for a live holder first. -EBUSY with the holder's
 * pid in err when another live process has it, or one that cannot be checked from here. */
int xsc_claim(struct xsc_conn *c, char *err);
void xsc_release(struct xsc_conn *c);
/* The card's keeper (keeper.c, a fork of the holder that outlives it while processes share the card)
 * names itself under data/, so that the card counts as held while it lives. */
int xsc_record_keeper(struct xsc_conn *c);
/* The keeper's last act: removes the card's holder record (this connection's nonce) and its own. */
void xsc_release_keeper(struct xsc_conn *c);
/* Did our card's keeper die? Only when it named itself, no longer lives, and the card's record is
 * still ours (a keeper that ended removed both; a card claimed since is another's). */
bool xsc_keeper_died(struct xsc_conn *c);
/* Connects to the token `nonce` (a listening socket: the holder's, or its keeper's), waiting at most
 * timeout_ms for room in its backlog; fd or -errno. */
int xsc_token_connect(const char *nonce, unsigned timeout_ms);
/* Closes this process's copy of the token without touching the record (a fork()ed child's close). */
void xsc_drop_token(struct xsc_conn *c);

/* Before allocating: resets a card a dead process left connected, then waits (bounded) for
 * the backend's InitWait and checks its `versions`. */
int xsc_prepare_connect(struct xsc_conn *c);
/* Publishes every stream's keys, `version` and Initialised in one transaction, then waits
 * (bounded) for the backend's Connected and switches to Connected. */
int xsc_connect(struct xsc_conn *c, const struct xsc_stream_keys *keys);
/* Closing, waits (bounded) for the backend to let go, Closed, Initialising. */
void xsc_disconnect(struct xsc_conn *c);
/* The backend's state as last written (never blocks); XenbusStateClosed if unreadable. */
int xsc_backend_state(struct xsc_conn *c);
/* Once connected: a watch on the backend's state, so that a backend that restarts (it comes back
 * at InitWait) or closes is noticed when it happens; xsc_watch_fd is readable when it fired. */
int xsc_watch_backend(struct xsc_conn *c);
int xsc_watch_fd(struct xsc_conn *c);
/* Has the backend left Connected? Consumes the watch's events without waiting for any; reads the
 * state only when one came (false when none came). */
bool xsc_backend_left(struct xsc_conn *c);

#endif
