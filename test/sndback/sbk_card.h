/* sndback's run-time objects: the daemon, its cards (one xenbus device each) and their streams. */
#ifndef SBK_CARD_H
#define SBK_CARD_H

#include "sbk_audio.h"
#include "sbk_config.h"
#include "sbk_limits.h"
#include "sbk_sndif.h"
#include "sbk_xen.h"

#include <stdbool.h>
#include <stdint.h>

struct sbk_daemon;
struct sbk_card;

/* What an epoll event stands for. */
enum sbk_source_kind { SBK_SRC_XENSTORE, SBK_SRC_SIGNAL, SBK_SRC_CARD_EVTCHN, SBK_SRC_STREAM_TIMER };
struct sbk_evsrc {
    enum sbk_source_kind kind;
    void *obj;
};

enum sbk_stream_state { SBK_ST_CLOSED, SBK_ST_OPEN, SBK_ST_RUNNING, SBK_ST_PAUSED };

/* Counters of one OPEN, printed in the close summary line. */
struct sbk_stream_stats {
    uint64_t bytes;             /* playback: received by WRITE; capture: delivered by READ */
    uint64_t gaps, late_frames; /* playback: times the queue ran dry before more data came, and the frames it lasted */
    uint64_t discarded;         /* playback: queued bytes dropped by STOP */
    uint64_t overrun_bytes;     /* capture: produced bytes dropped because nobody read them */
    uint64_t events, dropped_events;
};

struct sbk_stream {
    struct sbk_card *card;
    const struct sbk_stream_cfg *cfg;

    /* Transport, from connect to teardown. The ring and event pages are the frontend's memory:
     * every value read from them is read once, then checked. */
    void *ring_page;
    xen_sndif_back_ring_t ring;
    struct xensnd_event_page *evt_page;
    uint32_t evt_prod;          /* our copy of in_prod (the page's may be scribbled on) */
    uint16_t evt_id;            /* next event id, from 0 at connect, spent by dropped events too */
    evtchn_port_t ring_port, evt_port;  /* local ports, valid when *_bound */
    bool ring_bound, evt_bound;
    int timer_fd;               /* the sample clock: ticks while RUNNING */
    struct sbk_evsrc timer_src;

    /* Request flow. */
    bool ring_pending;          /* requests left in the ring after a bounded pass */
    bool held;                  /* a request waits for --delay-ms */
    struct xensnd_req held_req;
    uint64_t held_due_ns;
    bool rsp_corrupted;         /* --corrupt-rsp-prod already published a bogus rsp_prod */
    unsigned writes_answered;   /* --bad-response spoils the 10th */
    unsigned op_seen[SBK_NUM_OPS]; /* requests taken per operation, for --answer-error=OP:E@N */

    /* One OPEN. */
    enum sbk_stream_state state;
    struct sbk_open_params params;
    unsigned frame_bytes;
    uint8_t *buffer;            /* the frontend's data pages (shared memory: copy in/out only) */
    uint32_t buffer_pages;
    uint8_t *scratch;           /* buffer_sz private bytes: requests' data copied out once */
    uint64_t position;          /* octets played/captured since START */
    uint64_t queued;            /* playback: octets received and not played yet */
    uint64_t clock_base_ns, clock_base_frames, clock_frames;    /* sample clock since START */
    uint64_t dry_bytes;         /* playback: clock time spent on an empty queue, not yet a gap */
    bool in_request;            /* handling a request: its events wait for its response */
    unsigned n_deferred;
    uint64_t deferred[XENSND_IN_RING_LEN];  /* positions to report once the response is out */
    struct sbk_fifo captured;   /* capture: produced, not read yet (at most buffer_sz) */
    struct sbk_fifo unplayed;   /* playback: received, not played yet (to the WAV and loopbacks when played) */
    bool sink_failed;           /* writing the WAV failed once (said once) */
    struct sbk_stream_stats stats;
    bool sink_open, source_open;
    bool loop_warned;           /* capture: loopback shape mismatch already logged */
    struct sbk_sink sink;
    struct sbk_source source;

    /* Kept for the whole connection. */
    int32_t volume[SBK_MAX_CHANNELS];   /* 0.001 dB per channel */
    bool muted[SBK_MAX_CHANNELS];
    uint64_t received_total;    /* playback bytes over all OPENs, for --exit-after-bytes */
};

enum sbk_card_phase { SBK_CARD_INITWAIT, SBK_CARD_CONNECTED, SBK_CARD_CLOSED };

struct sbk_card {
    struct sbk_card *next;
    struct sbk_daemon *d;
    unsigned fe_domid, devid;
    char be_path[SBK_PATH_MAX], fe_path[SBK_PATH_MAX], token[64];
    bool fe_watched;
    bool seen;                  /* still listed at the last rescan */
    bool bad_link;              /* frontend/frontend-id wrong: Closed until the directory goes */
    enum sbk_card_phase phase;
    int be_state;               /* what we last wrote to <be>/state, -1 before */
    long long fe_state_seen;    /* the frontend state last read (for the log) */
    long long fe_state_logged;  /* the frontend state last explained in the log (INITWAIT) */
    xenevtchn_handle *xce;      /* this card's event channels (closing it unbinds them all) */
    struct sbk_evsrc evtchn_src;
    struct sbk_card_cfg cfg;
    unsigned n_streams;
    struct sbk_stream *streams;
};

/* How many times each unique-id was opened (names the n-th WAV). */
struct sbk_open_count {
    struct sbk_open_count *next;
    unsigned count;
    char uid[SBK_UID_MAX + 1];
};

struct sbk_daemon {
    struct sbk_options opts;
    struct sbk_xen xen;
    int epoll_fd;
    char be_root[64];                   /* /local/domain/<own>/backend/vsnd */
    struct sbk_card *cards;
    struct sbk_open_count *open_counts;
};

/* epoll registration of fd for src (level-triggered input). */
int sbk_daemon_watch_fd(struct sbk_daemon *d, int fd, struct sbk_evsrc *src);
void sbk_daemon_unwatch_fd(struct sbk_daemon *d, int fd);

#endif
