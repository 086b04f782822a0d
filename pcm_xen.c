/* pcm_xen: an ALSA ioplug that is a Xen para-virtual sound frontend (sndif) in userspace.
 *
 * ALSA side only: callbacks and options. xs_config.c reads the card and does the xenbus
 * handshake, ring.c speaks the request ring and event page, shbuf.c grants the buffer.
 *
 * Data path: the granted buffer is the ALSA ring (frames at appl_ptr % buffer_size). Playback
 * copies the application's frames in and queues WRITE requests without waiting for them;
 * capture asks for what the backend reports captured with READ requests and exposes it once
 * they completed. The backend's CUR_POS events drive the hardware pointer. One thread of ours,
 * asleep in accept() on the card's token until another process of our user asks to share the
 * card (keeper.c); nothing of it runs per period. The poll descriptor is an epoll set of the
 * event channel (the backend's notifications; a relayed stream's: its socket to the keeper), the
 * card's xenstore watch on the backend's state (a restart is an xrun, and prepare connects
 * again), a watchdog timer (so a dead backend ends a wait) and an eventfd that keeps the
 * descriptor readable exactly while the application has something to do. */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <alsa/asoundlib.h>
#include <alsa/pcm_external.h>

#include "keeper.h"
#include "ring.h"
#include "shbuf.h"
#include "xs_config.h"

#define XSND_DEFAULT_TIMEOUT_MS 3000 /* as the Linux driver */
#define XSND_MAX_INFLIGHT_IO    (XRING_SLOTS - 2) /* leave room for TRIGGER and CLOSE */
#define XSND_DRAIN_MARGIN_MS    20 /* a partial last period: our clock vs the backend's */

/* ---------------------------------------------------------------- formats */

/* sndif format n <-> ALSA format (as the Linux frontend maps them). The non-linear
 * ima_adpcm, mpeg and gsm have no fixed frame size, so they are not offered. */
static const snd_pcm_format_t xsnd_alsa_formats[XSC_NFORMATS] = {
    SND_PCM_FORMAT_S8, SND_PCM_FORMAT_U8, SND_PCM_FORMAT_S16_LE, SND_PCM_FORMAT_S16_BE,
    SND_PCM_FORMAT_U16_LE, SND_PCM_FORMAT_U16_BE, SND_PCM_FORMAT_S24_LE, SND_PCM_FORMAT_S24_BE,
    SND_PCM_FORMAT_U24_LE, SND_PCM_FORMAT_U24_BE, SND_PCM_FORMAT_S32_LE, SND_PCM_FORMAT_S32_BE,
    SND_PCM_FORMAT_U32_LE, SND_PCM_FORMAT_U32_BE, SND_PCM_FORMAT_FLOAT_LE, SND_PCM_FORMAT_FLOAT_BE,
    SND_PCM_FORMAT_FLOAT64_LE, SND_PCM_FORMAT_FLOAT64_BE, SND_PCM_FORMAT_IEC958_SUBFRAME_LE,
    SND_PCM_FORMAT_IEC958_SUBFRAME_BE, SND_PCM_FORMAT_MU_LAW, SND_PCM_FORMAT_A_LAW,
    SND_PCM_FORMAT_UNKNOWN, SND_PCM_FORMAT_UNKNOWN, SND_PCM_FORMAT_UNKNOWN,
};

static int xsnd_sndif_format(snd_pcm_format_t f)
{
    for (int i = 0; i < XSC_NFORMATS; i++)
        if (xsnd_alsa_formats[i] == f && f != SND_PCM_FORMAT_UNKNOWN)
            return i;
    return -1;
}

/* ---------------------------------------------------------------- cards */

/* One xenbus connection of a card: every stream's rings, published together. A backend that
 * restarts needs new ones: the card then gets a new link, each PCM moves to it at its next
 * prepare, and the old link is freed when the last PCM has left it. */
struct xsnd_link {
    unsigned refs;        /* the card's while current, and one per PCM on it: xsnd_cards_lock */
    atomic_bool lost;     /* the backend left Connected after this link connected */
    struct xring rings[XSC_MAX_STREAMS];
};

/* One card per process, shared by the PCMs this process opens on it. Three kinds: ours alone (we
 * connected it, nobody shares it); shared (we connected it, and its keeper now hands out its
 * streams: ours are claimed from it, and the connection outlives us); a guest's (another
 * process connected it: the keeper relays our streams, we have no link). */
struct xsnd_card {
    struct xsnd_card *next;
    unsigned refs;
    struct xsc_conn conn;
    xengntshr_handle *gs;
    struct xsnd_link *link;  /* the current connection: changes under xsnd_cards_lock; NULL for a guest */
    bool in_use[XSC_MAX_STREAMS];
    char labels[XSC_MAX_STREAMS][96];
    bool guest;              /* another process holds the card: every stream of ours is relayed */
    atomic_bool guest_lost;  /* guest: the backend left the connection (its watch, as a link's lost) */
    char busy_err[XSC_ERR_LEN]; /* guest: xsc_claim's refusal, for when the holder cannot be reached */
    /* Ours: the listener on our token, and once it forked the keeper, our claim of each stream we
     * use (all under xsnd_cards_lock). */
    struct xkeep_listener listener;
    bool shared, closing;
    int claim_fd[XSC_MAX_STREAMS];
    pid_t owner; /* the process that connected it; a fork()ed child has only a copy */
    volatile uint8_t *mine; /* a MADV_WIPEONFORK page holding 1: 0 in a fork()ed child (NULL: use owner) */
};

/* Is this a fork()ed child's copy of a card the parent connected? The child must touch none of
 * its Xen objects or its xenstore connection (the parent still plays; libxenstore's reader
 * thread did not survive the fork), nor the locks a parent thread may have held at fork. */
static bool xsnd_card_inherited(const struct xsnd_card *c)
{
    /* Every callback asks, and getpid() is a system call each time: the wiped page answers
     * without one (kernels before 4.14 lack MADV_WIPEONFORK: then the pid). */
    return c->mine ? *c->mine == 0 : c->owner != getpid();
}

static void xsnd_card_mark_owner(struct xsnd_card *c)
{
    void *page = mmap(NULL, SHBUF_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

    c->owner = getpid();
    if (page == MAP_FAILED)
        return;
    if (madvise(page, SHBUF_PAGE_SIZE, MADV_WIPEONFORK) < 0) {
        munmap(page, SHBUF_PAGE_SIZE);
        return;
    }
    c->mine = page;
    *c->mine = 1;
}

/* Protects the card list, refcounts, in_use, and every use of a card's shared grant handle. */
static pthread_mutex_t xsnd_cards_lock = PTHREAD_MUTEX_INITIALIZER;
static struct xsnd_card *xsnd_cards;

/* Drops a reference to a link; the last one frees its rings. Under xsnd_cards_lock (the grants
 * use the card's handle). */
static void xsnd_link_put(struct xsnd_card *c, struct xsnd_link *l)
{
    if (!l || --l->refs)
        return;
    for (unsigned i = 0; i < c->conn.card.nstreams; i++) {
        if (!l->rings[i].xce)
            continue;
        if (c->shared)
            xring_leave(&l->rings[i]); /* the keeper goes on with them */
        else
            xring_destroy(&l->rings[i]);
    }
    free(l);
}

/* Makes every stream's rings and connects them to the backend (which is at InitWait). Under
 * xsnd_cards_lock. */
static int xsnd_link_create(struct xsnd_card *c, struct xsnd_link **out)
{
    struct xsc_card *card = &c->conn.card;
    struct xsc_stream_keys keys[XSC_MAX_STREAMS];
    struct xsnd_link *l = calloc(1, sizeof(*l));
    int rc = 0;

    if (!l)
        return -ENOMEM;
    l->refs = 1;
    /* Every stream's rings are published at once: snd_be refuses a card with a stream missing. */
    for (unsigned i = 0; i < card->nstreams && rc == 0; i++) {
        struct xring *r = &l->rings[i];

        rc = xring_create(r, c->gs, card->be_domid, c->conn.timeout_ms, c->labels[i]);
        keys[i] = (struct xsc_stream_keys){ r->ring_ref, r->evt_ref, r->port, r->evt_port };
    }
    if (rc == 0)
        rc = xsc_connect(&c->conn, keys);
    if (rc < 0) {
        xsnd_link_put(c, l);
        return rc;
    }
    *out = l;
    return 0;
}

/* Ours alone: disconnected and released. Shared: the keeper disconnects it when its last user is
 * gone (our claims ended with our PCMs), and its records stay; but a keeper that was killed leaves
 * that to us (its record names a dead process, ours is still there). A guest's: nothing is ours. */
static void xsnd_card_teardown(struct xsnd_card *c, bool connected)
{
    if (c->shared && xsc_keeper_died(&c->conn))
        c->shared = false; /* nobody else will disconnect it: as if it never was shared */
    if (connected && !c->shared && !c->guest)
        xsc_disconnect(&c->conn);
    xsnd_link_put(c, c->link);
    if (c->gs)
        xengntshr_close(c->gs);
    if (c->conn.xs && !c->shared && !c->guest)
        xsc_release(&c->conn);
    xsc_drop_token(&c->conn);
    xsc_close(&c->conn);
    if (c->mine)
        munmap((void *)c->mine, SHBUF_PAGE_SIZE);
    free(c);
}

/* Under xsnd_cards_lock (the listener's snapshot): the current link's rings and the streams in use;
 * false when the card is going or its link is lost (no keeper for those). */
static bool xsnd_card_snapshot(void *ctx, struct xring **rings, const bool **in_use)
{
    struct xsnd_card *c = ctx;

    if (c->closing || atomic_load(&c->link->lost))
        return false;
    *rings = c->link->rings;
    *in_use = c->in_use;
    return true;
}

/* Under xsnd_cards_lock, once the keeper runs: our claims of the streams we use. */
static void xsnd_card_now_shared(void *ctx, const int *claim_fds)
{
    struct xsnd_card *c = ctx;

    for (unsigned i = 0; i < XSC_MAX_STREAMS; i++)
        c->claim_fd[i] = claim_fds[i];
    c->shared = true;
}

static void xsnd_card_labels(struct xsnd_card *c)
{
    struct xsc_card *card = &c->conn.card;

    for (unsigned i = 0; i < card->nstreams; i++) {
        const struct xsc_stream *st = &card->streams[i];
        char label[sizeof(c->labels[i])]; /* st and labels both live in c: no snprintf into c */

        snprintf(label, sizeof(label), "vsnd card %u stream %u/%u%s%s%s", card->devid, st->pcm, st->index,
                 st->unique_id[0] ? " (" : "", st->unique_id, st->unique_id[0] ? ")" : "");
        memcpy(c->labels[i], label, sizeof(label));
    }
}

static int xsnd_open_gntshr(struct xsnd_card *c)
{
    c->gs = xengntshr_open(NULL, 0);
    if (!c->gs) {
        int rc = errno ? -errno : -ENODEV;

        SNDERR("vsnd card %u: cannot open /dev/xen/gntalloc: %s", c->conn.card.devid, strerror(-rc));
        return rc;
    }
    fcntl(xengntshr_fd(c->gs), F_SETFD, FD_CLOEXEC);
    return 0;
}

/* Another process of ours may share the card (keeper.c): a guest grants its own buffers and watches
 * the backend as a holder does; its streams are claimed from the keeper at open. */
static int xsnd_card_become_guest(struct xsnd_card *c, const char *err)
{
    int rc;

    c->guest = true;
    snprintf(c->busy_err, sizeof(c->busy_err), "%s", err);
    xsc_drop_token(&c->conn); /* xsc_claim's, never published */
    if ((rc = xsnd_open_gntshr(c)) < 0)
        return rc;
    xsnd_card_labels(c);
    return xsc_watch_backend(&c->conn);
}

static int xsnd_card_connect(struct xsnd_card *c)
{
    char err[XSC_ERR_LEN];
    int rc = xsc_claim(&c->conn, err);
    struct xkeep_host host = { &c->conn, c->conn.card.nstreams, &xsnd_cards_lock, c, xsnd_card_snapshot,
                               xsnd_card_now_shared };

    if (rc == -EBUSY && c->conn.holder_nonce[0] != '-')
        return xsnd_card_become_guest(c, err);
    if (rc < 0) {
        SNDERR("%s", err);
        return rc;
    }
    if ((rc = xsc_prepare_connect(&c->conn)) < 0 || (rc = xsnd_open_gntshr(c)) < 0)
        return rc;
    xsnd_card_labels(c);
    if ((rc = xsnd_link_create(c, &c->link)) < 0 || (rc = xsc_watch_backend(&c->conn)) < 0)
        return rc;
    return xkeep_listen_start(&c->listener, &host);
}

/* The backend left the card's current link (it restarted, or closed): connects anew, once the
 * backend is at InitWait again (bounded by the timeout). Under xsnd_cards_lock; the PCMs on the
 * old link keep it until they move (xsnd_rejoin). */
static int xsnd_card_reconnect(struct xsnd_card *c)
{
    struct xsnd_link *l;
    int rc;

    if ((rc = xsc_prepare_connect(&c->conn)) < 0 || (rc = xsnd_link_create(c, &l)) < 0)
        return rc;
    xsnd_link_put(c, c->link);
    c->link = l;
    return 0;
}

/* Has the backend left this link? Consumes the card's watch events (whoever polls first does). */
static bool xsnd_link_lost(struct xsnd_card *c, struct xsnd_link *l)
{
    if (!atomic_load(&l->lost) && xsc_backend_left(&c->conn))
        atomic_store(&l->lost, true);
    return atomic_load(&l->lost);
}

/* The card's current link, connected anew first if the backend left it; takes a reference.
 * Under xsnd_cards_lock. */
static int xsnd_card_link(struct xsnd_card *c, struct xsnd_link **out)
{
    int rc;

    if (xsnd_link_lost(c, c->link) && (rc = xsnd_card_reconnect(c)) < 0)
        return rc;
    c->link->refs++;
    *out = c->link;
    return 0;
}

/* Finds or connects card devid (< 0: the first card). Takes a reference. */
static int xsnd_card_get(int devid, unsigned timeout_ms, struct xsnd_card **out)
{
    struct xsnd_card *c = calloc(1, sizeof(*c));
    int rc;

    if (!c)
        return -ENOMEM;
    for (unsigned i = 0; i < XSC_MAX_STREAMS; i++)
        c->claim_fd[i] = -1;
    pthread_mutex_lock(&xsnd_cards_lock);
    rc = xsc_open(&c->conn, devid, timeout_ms);
    if (rc == 0) {
        for (struct xsnd_card *o = xsnd_cards; o; o = o->next) {
            if (o->conn.card.devid == c->conn.card.devid && !xsnd_card_inherited(o)) {
                xsc_close(&c->conn);
                free(c);
                o->refs++;
                *out = o;
                pthread_mutex_unlock(&xsnd_cards_lock);
                return 0;
            }
        }
        rc = xsnd_card_connect(c);
    }
    if (rc < 0) {
        xsnd_card_teardown(c, false);
    } else {
        c->refs = 1;
        xsnd_card_mark_owner(c);
        c->next = xsnd_cards;
        xsnd_cards = c;
        *out = c;
    }
    pthread_mutex_unlock(&xsnd_cards_lock);
    return rc;
}

static void xsnd_card_put(struct xsnd_card *c)
{
    pthread_mutex_lock(&xsnd_cards_lock);
    if (--c->refs) {
        pthread_mutex_unlock(&xsnd_cards_lock);
        return;
    }
    for (struct xsnd_card **pp = &xsnd_cards; *pp; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    }
    c->closing = true; /* the listener forks no keeper from now on */
    pthread_mutex_unlock(&xsnd_cards_lock);
    xkeep_listen_stop(&c->listener); /* joined without the lock: it may be waiting for it */
    pthread_mutex_lock(&xsnd_cards_lock);
    xsnd_card_teardown(c, true);
    pthread_mutex_unlock(&xsnd_cards_lock);
}

/* ---------------------------------------------------------------- the PCM */

struct xsnd_read {
    uint64_t end;        /* frame position this READ completes up to */
    bool done;
};

struct xsnd_pcm {
    snd_pcm_ioplug_t io;
    struct xsnd_card *card;
    unsigned sidx;                 /* index into card->conn.card.streams / link->rings */
    bool have_stream;              /* sidx is ours: in_use[sidx] set, and a claim if shared */
    struct xsnd_link *link;        /* the connection this PCM's stream uses (a reference); NULL: a guest's */
    struct xring *ring;            /* &link->rings[sidx], or a guest's own_ring */
    struct xring own_ring;         /* a guest's stream: relayed by the card's keeper (keeper.c) */
    const struct xsc_stream *cfg;
    bool playback;
    unsigned timeout_ms;
    int epfd, wake_fd, timer_fd;   /* epfd is the poll descriptor; see the file comment */
    bool wake_set;                 /* mirrors wake_fd's readability */

    /* Negotiated in hw_params. */
    int sndif_format;
    unsigned frame_bytes;
    snd_pcm_uframes_t buffer_frames, period_frames;
    snd_pcm_uframes_t event_period_frames; /* OPEN's period_sz, in frames */
    snd_pcm_uframes_t avail_min, boundary, stop_threshold;

    /* The granted buffer, OPENed on the backend from prepare until hw_free. */
    struct shbuf buf;
    bool opened, be_running, be_paused;
    bool stopped;                  /* ioplug stopped the stream since prepare (a drop, a drain's end) */

    /* Positions in frames since prepare, never wrapping (u64). */
    uint64_t submitted;            /* playback: frames handed to the backend with WRITE */
    uint64_t hw_pos;               /* what pointer() reports: played (interpolated) / captured-and-read */
    uint64_t be_pos;               /* the backend's CUR_POS, rebased and validated */
    uint64_t acked;                /* playback: frames whose WRITE the backend answered (it has them) */
    uint64_t filled;               /* playback: frames in the buffer (written, or silenced by forward) */
    uint64_t pos_base, last_pos_frames;
    uint64_t trigger_pos;          /* be_pos at the last START/RESUME: where a backend restarts its count */
    uint64_t requested;            /* capture: frames asked for with READ */
    struct xsnd_read reads[XRING_SLOTS];
    unsigned nreads;               /* READs in flight, oldest first */
    long long last_progress_ms;    /* last CUR_POS that moved be_pos, or START: the drain's clock */
    long long watch_ms;            /* the watchdog's reference: last CUR_POS, or when one became owed */
    bool owed;                     /* the backend owes a position event (xsnd_backend_owes) */
    long long clock_ref_us;        /* interpolation: the stream played clock_ref_pos */
    uint64_t clock_ref_pos;        /* ... at clock_ref_us, as far as we know */
    int io_error;                  /* a failed WRITE/READ/TRIGGER, reported on the next call */
    pthread_mutex_t lock;          /* every field, in every callback: XSND_LOCKED */
    bool dead;
    bool lost;                     /* the backend restarted under us: an xrun until prepare rejoins */
};

/* Adds fd to the poll descriptor's set, named by itself (xsnd_take_wakeups). */
static int xsnd_poll_add(struct xsnd_pcm *p, int fd)
{
    struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };

    return epoll_ctl(p->epfd, EPOLL_CTL_ADD, fd, &ev);
}

static void xsnd_set_wake(struct xsnd_pcm *p, bool ready)
{
    uint64_t v = 1;

    if (ready == p->wake_set)
        return;
    if (ready) {
        if (write(p->wake_fd, &v, sizeof(v)) != sizeof(v))
            return;
    } else if (read(p->wake_fd, &v, sizeof(v)) != sizeof(v)) {
        return;
    }
    p->wake_set = ready;
}

/* The poll descriptor's timer: first after first_ms, then every every_ms (0, 0: off). */
static void xsnd_timer_arm(struct xsnd_pcm *p, long first_ms, long every_ms)
{
    struct itimerspec its = {
        .it_interval = { every_ms / 1000, (every_ms % 1000) * 1000000 },
        .it_value = { first_ms / 1000, (first_ms % 1000) * 1000000 },
    };

    timerfd_settime(p->timer_fd, 0, &its, NULL);
}

/* The watchdog ticks at half the timeout while the backend owes us something. */
static void xsnd_watchdog(struct xsnd_pcm *p, bool on)
{
    long ms = on ? (long)p->timeout_ms / 2 : 0;

    xsnd_timer_arm(p, ms, ms);
}

static void xsnd_mark_dead(struct xsnd_pcm *p, const char *why)
{
    if (p->dead)
        return;
    p->dead = true;
    if (why)
        SNDERR("%s: %s", p->ring->label, why);
    xsnd_watchdog(p, false);
    xsnd_set_wake(p, true); /* wake pollers so they see the error */
}

/* Has the backend left this PCM's connection? A guest has no link: its card's watch says. */
static bool xsnd_pcm_link_lost(struct xsnd_pcm *p)
{
    struct xsnd_card *c = p->card;

    if (p->link)
        return xsnd_link_lost(c, p->link);
    if (!atomic_load(&c->guest_lost) && xsc_backend_left(&c->conn))
        atomic_store(&c->guest_lost, true);
    return atomic_load(&c->guest_lost);
}

/* Notices a backend that left the connection (the card's watch: it restarted, or closed). The
 * stream went with it; the application sees an xrun (-EPIPE), which sound servers and
 * snd_pcm_recover answer with prepare, and prepare connects anew (xsnd_rejoin). */
static bool xsnd_check_lost(struct xsnd_pcm *p)
{
    if (p->lost)
        return true;
    if (!xsnd_pcm_link_lost(p))
        return false;
    p->lost = true;
    if (p->opened)
        SNDERR("%s: the backend left the connection (it restarted or closed): the stream stopped; "
               "prepare connects again", p->ring->label);
    xsnd_watchdog(p, false);
    xsnd_set_wake(p, true); /* wake pollers so they see the xrun */
    return true;
}

/* Completed READs form a prefix: hw_pos advances over it. */
static void xsnd_reads_advance(struct xsnd_pcm *p)
{
    unsigned n = 0;

    while (n < p->nreads && p->reads[n].done)
        p->hw_pos = p->reads[n++].end;
    if (n) {
        memmove(p->reads, p->reads + n, (p->nreads - n) * sizeof(p->reads[0]));
        p->nreads -= n;
    }
}

static void xsnd_on_complete(void *ctx, const struct xring_completion *done)
{
    struct xsnd_pcm *p = ctx;

    /* The backend's errno is named, the application gets -EIO: a failed request, whatever the
     * backend's reason (its -EAGAIN passed through made aplay retry the write forever). */
    if (done->status < 0 && !p->io_error) {
        p->io_error = -EIO;
        SNDERR("%s: backend failed %s: %s", p->ring->label, xring_op_name(done->operation),
               strerror(-done->status));
    }
    if (done->operation == XENSND_OP_WRITE && done->status == 0 && done->cookie > p->acked)
        p->acked = done->cookie;
    if (done->operation == XENSND_OP_READ) {
        for (unsigned i = 0; i < p->nreads; i++)
            if (p->reads[i].end == done->cookie)
                p->reads[i].done = true;
        xsnd_reads_advance(p);
    }
}

/* The stream position of ioplug's appl_ptr: frames the application has written (playback) or
 * consumed (capture) since prepare. appl_ptr wraps at the boundary and may be on either side of
 * hw_pos (capture; playback after a rewind or an underrun), never by half a boundary. */
static uint64_t xsnd_appl_cum(const struct xsnd_pcm *p)
{
    snd_pcm_uframes_t hw = (snd_pcm_uframes_t)(p->hw_pos % p->boundary);
    snd_pcm_uframes_t ahead = (p->io.appl_ptr + p->boundary - hw) % p->boundary, behind;

    if (ahead <= p->boundary / 2)
        return p->hw_pos + ahead;
    behind = p->boundary - ahead;
    return behind < p->hw_pos ? p->hw_pos - behind : 0;
}

/* Playback between position events: the backend reports once per period, but applications
 * that schedule by the clock (PipeWire, mpv's A/V sync) need a position that moves smoothly.
 * The stream is taken to play at its rate from a reference point, re-anchored to each event
 * that the line falls behind or runs too far ahead of. An event comes when the backend notices
 * that a period boundary passed (sndback on its ticks, snd_be on its timer), so the true
 * position may be up to a tick past the last one: the line may lead it by XSND_LEAD_PERIODS. */
#define XSND_LEAD_PERIODS 2

/* CLOCK_MONOTONIC in microseconds: a frame at 48 kHz is 21 us, a millisecond 48 frames. */
static long long xsnd_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* The stream played hw_pos frames now: the origin of the interpolation. */
static void xsnd_clock_ref(struct xsnd_pcm *p)
{
    p->clock_ref_us = xsnd_now_us();
    p->clock_ref_pos = p->hw_pos;
}

static uint64_t xsnd_clock_line(const struct xsnd_pcm *p)
{
    return p->clock_ref_pos + (uint64_t)(xsnd_now_us() - p->clock_ref_us) * p->io.rate / 1000000;
}

/* A position event at `pos`: re-anchor when the line strays from it. */
static void xsnd_clock_follow(struct xsnd_pcm *p, uint64_t pos)
{
    uint64_t line = xsnd_clock_line(p);

    if (line < pos || line > pos + XSND_LEAD_PERIODS * p->event_period_frames) {
        p->clock_ref_us = xsnd_now_us();
        p->clock_ref_pos = pos;
    }
}

/* Moves hw_pos along the line: never back, never more than the lead past what the backend
 * reported (a stalled backend stops the pointer), only over frames the backend has taken
 * (their WRITE was answered), so that the application never overwrites data it may still read,
 * and never past the application (after a rewind: avail stays within the buffer). */
static bool xsnd_played_all(const struct xsnd_pcm *p);

static void xsnd_interpolate(struct xsnd_pcm *p)
{
    uint64_t est, cap = p->be_pos + XSND_LEAD_PERIODS * p->event_period_frames, appl;

    if (!p->playback || !p->be_running || p->be_paused || !p->clock_ref_us)
        return;
    appl = xsnd_appl_cum(p);
    if (cap > p->acked)
        cap = p->acked;
    if (cap > appl)
        cap = appl;
    /* Draining: ioplug drops the stream (STOP: the backend discards what it still has) once the
     * pointer reaches the application; only when everything was played. */
    if (p->io.state == SND_PCM_STATE_DRAINING && cap >= appl && appl && !xsnd_played_all(p))
        cap = appl - 1;
    est = xsnd_clock_line(p);
    if (est > cap)
        est = cap;
    if (est > p->hw_pos)
        p->hw_pos = est;
}

/* A new CUR_POS (octets): whole frames, never backwards, and never beyond what the backend can
 * have (hardening: bad positions corrupt avail). A smaller value than the last is the backend
 * restarting its count, which snd_be does at START/RESUME (its ALSA timestamps restart): it counts
 * from the position of the last trigger, so a value that merely goes back inside a running stream
 * lands below be_pos and is ignored. A playback position beyond what was written is a lie no clamp
 * makes harmless (the application would underrun at once, or overfill the backend): the stream
 * fails with one line saying so. Returns false then. */
static bool xsnd_apply_position(struct xsnd_pcm *p, uint64_t pos_bytes)
{
    uint64_t frames = pos_bytes / p->frame_bytes, pos;
    char why[160];

    if (frames < p->last_pos_frames)
        p->pos_base = p->trigger_pos;
    if (frames != p->last_pos_frames)
        p->watch_ms = xring_now_ms(); /* the backend is alive, even when the position is capped below */
    p->last_pos_frames = frames;
    pos = p->pos_base + frames;
    if (p->playback && pos > p->submitted) {
        snprintf(why, sizeof(why), "backend reported position %llu octets, beyond the %llu it was given",
                 (unsigned long long)pos * p->frame_bytes, (unsigned long long)p->submitted * p->frame_bytes);
        xsnd_mark_dead(p, why);
        return false;
    }
    if (!p->playback && pos > xsnd_appl_cum(p) + p->buffer_frames + 1)
        pos = xsnd_appl_cum(p) + p->buffer_frames + 1; /* enough to say "overrun", no more */
    if (pos < p->be_pos)
        return true;
    if (pos > p->be_pos || !p->last_progress_ms)
        p->last_progress_ms = xring_now_ms();
    if (p->playback && pos > p->be_pos)
        xsnd_clock_follow(p, pos);
    p->be_pos = pos;
    if (p->playback && pos > p->hw_pos)
        p->hw_pos = pos;
    return true;
}

/* Queues a WRITE or READ of n frames from stream position `from` without waiting: -EAGAIN
 * when XSND_MAX_INFLIGHT_IO are in flight (the slots left are TRIGGER's and CLOSE's). The
 * caller tries again at its next update, when responses have freed slots. */
static int xsnd_submit_io(struct xsnd_pcm *p, uint8_t op, uint64_t from, snd_pcm_uframes_t n, uint64_t cookie)
{
    struct xensnd_req req = { .operation = op };

    if (p->ring->ninflight >= XSND_MAX_INFLIGHT_IO)
        return -EAGAIN;
    req.op.rw.offset = (uint32_t)((from % p->buffer_frames) * p->frame_bytes);
    req.op.rw.length = (uint32_t)(n * p->frame_bytes);
    return xring_submit(p->ring, &req, cookie, NULL);
}

/* Capture: ask for everything the backend captured that fits before the application's data. */
static void xsnd_issue_reads(struct xsnd_pcm *p)
{
    uint64_t appl = xsnd_appl_cum(p), target = p->be_pos;

    if (target > appl + p->buffer_frames)
        target = appl + p->buffer_frames;
    while (p->requested < target && p->nreads < XRING_SLOTS) {
        uint64_t off = p->requested % p->buffer_frames;
        snd_pcm_uframes_t n = (snd_pcm_uframes_t)(target - p->requested);

        if (n > p->buffer_frames - off)
            n = (snd_pcm_uframes_t)(p->buffer_frames - off); /* no request crosses the end of the buffer */
        if (xsnd_submit_io(p, XENSND_OP_READ, p->requested, n, p->requested + n) < 0)
            break; /* ring full: the next update asks again */
        p->reads[p->nreads++] = (struct xsnd_read){ p->requested + n, false };
        p->requested += n;
    }
}

static bool xsnd_xrun(struct xsnd_pcm *p)
{
    uint64_t appl = xsnd_appl_cum(p);
    uint64_t avail;

    if (p->lost)
        return true;
    if (p->io.state != SND_PCM_STATE_RUNNING || p->stop_threshold >= p->boundary)
        return false;
    if (p->playback) /* by what the backend reported, not the interpolation; appl behind is an underrun */
        avail = appl < p->be_pos + p->buffer_frames ? p->be_pos + p->buffer_frames - appl : 0;
    else
        avail = p->be_pos - appl; /* captured but not yet read by the application */
    return avail >= p->stop_threshold && (p->playback || avail > p->buffer_frames);
}

static void xsnd_flush(struct xsnd_pcm *p, uint64_t upto);

/* Does the backend owe us a position event? Only while it runs: capture reports as long as it
 * captures (whether or not the application reads); playback while at least an event period it
 * was given is unplayed (sndif promises no event for a shorter rest, and none for an idle queue:
 * stop_threshold = boundary lets a stream sit empty for any time). */
static bool xsnd_backend_owes(const struct xsnd_pcm *p)
{
    if (!p->be_running || p->be_paused)
        return false;
    return !p->playback || p->submitted - p->be_pos >= p->event_period_frames;
}

/* The watchdog: the backend is dead when an event it owes is overdue, counted from the later of
 * its last event and the moment it came to owe one, allowing the timeout plus two event periods
 * (an event comes when the backend notices a period passed; periods may be longer than the
 * timeout). */
static void xsnd_watch(struct xsnd_pcm *p)
{
    long long now = xring_now_ms();
    long long allowed = (long long)p->timeout_ms + 2 * (long long)(p->event_period_frames * 1000 / p->io.rate);
    bool owes = xsnd_backend_owes(p);
    char why[128];

    if (owes && !p->owed)
        p->watch_ms = now;
    p->owed = owes;
    if (!owes || now - p->watch_ms <= allowed)
        return;
    snprintf(why, sizeof(why), "backend reported no stream position for %lld ms while %s", now - p->watch_ms,
             p->playback ? "it had audio to play" : "capturing");
    xsnd_mark_dead(p, why);
}

/* Takes in whatever the backend said: responses, events, deadlines; sends the frames that
 * waited for room. Never blocks. */
static void xsnd_update(struct xsnd_pcm *p)
{
    uint64_t pos;
    bool have;

    if (xsnd_check_lost(p) || p->dead || !p->opened)
        return;
    if (xring_process(p->ring) < 0 || xring_events(p->ring, &pos, &have) < 0) {
        xsnd_mark_dead(p, NULL); /* ring.c said why */
        return;
    }
    if (have && !xsnd_apply_position(p, pos))
        return;
    if (!p->playback)
        xsnd_issue_reads(p);
    xsnd_interpolate(p);
    if (p->playback && p->io.state == SND_PCM_STATE_DRAINING && xsnd_played_all(p))
        p->hw_pos = xsnd_appl_cum(p); /* the drain is complete: avail = buffer ends it */
    if (p->io.state == SND_PCM_STATE_RUNNING || p->io.state == SND_PCM_STATE_DRAINING ||
        p->io.state == SND_PCM_STATE_PREPARED)
        xsnd_flush(p, xsnd_appl_cum(p)); /* frames that waited for room */
    xsnd_watch(p);
}

/* When a rest shorter than an event period counts as played (xring_now_ms's clock); -1 when
 * an event is still owed or nothing is playing. */
static long long xsnd_rest_played_at(const struct xsnd_pcm *p)
{
    uint64_t rest = p->submitted - p->be_pos;
    long long rest_ms;

    if (!rest || rest >= p->event_period_frames || !p->be_running || p->be_paused || !p->last_progress_ms)
        return -1;
    rest_ms = (long long)(rest * 1000 / p->io.rate) + 1;
    return p->last_progress_ms + rest_ms + rest_ms / 8 + XSND_DRAIN_MARGIN_MS;
}

/* Has the backend played everything it was given? Yes once it reported so; and also when the
 * rest is shorter than an event period, for which sndif promises no event (snd_be sends none
 * until a timer tick after its device ran dry), once the rest has had time to play since the
 * last position report, by our clock, with a margin for the backend's. */
static bool xsnd_played_all(const struct xsnd_pcm *p)
{
    long long at;

    if (xsnd_appl_cum(p) > p->submitted)
        return false; /* frames still wait for room */
    if (p->submitted == p->be_pos)
        return true;
    at = xsnd_rest_played_at(p);
    return at >= 0 && xring_now_ms() >= at;
}

/* A non-blocking drain whose rest ends by the clock: no event will wake the poller, so the
 * timer fires then (and goes on as the watchdog's tick). */
static void xsnd_drain_alarm(struct xsnd_pcm *p)
{
    long long at = xsnd_rest_played_at(p), in_ms;

    if (at < 0)
        return;
    in_ms = at - xring_now_ms();
    xsnd_timer_arm(p, in_ms < 1 ? 1 : (long)in_ms, (long)p->timeout_ms / 2);
}

/* avail, less `taken`: the frames a transfer callback is taking now (ioplug moves appl_ptr only
 * after it returns, so they would still count as room). */
static snd_pcm_uframes_t xsnd_avail(const struct xsnd_pcm *p, snd_pcm_uframes_t taken)
{
    snd_pcm_uframes_t avail = snd_pcm_ioplug_avail(&p->io, (snd_pcm_uframes_t)(p->hw_pos % p->boundary),
                                                   p->io.appl_ptr);

    return avail > taken ? avail - taken : 0;
}

/* Is there something for the application to do now (the poll descriptor's level)? `taken` as
 * for xsnd_avail. */
static bool xsnd_ready(struct xsnd_pcm *p, snd_pcm_uframes_t taken)
{
    if (p->dead || p->lost || p->io_error)
        return true; /* the application's next call learns the error */
    switch (p->io.state) {
    case SND_PCM_STATE_PREPARED:
        return p->playback && xsnd_avail(p, taken) >= p->avail_min;
    case SND_PCM_STATE_RUNNING:
        return xsnd_xrun(p) || xsnd_avail(p, taken) >= p->avail_min;
    case SND_PCM_STATE_DRAINING:
        return !p->playback || xsnd_played_all(p);
    case SND_PCM_STATE_XRUN:
    case SND_PCM_STATE_SETUP:
        return true;
    default:
        return false;
    }
}

/* ---------------------------------------------------------------- callbacks */

static int xsnd_trigger(struct xsnd_pcm *p, uint8_t type)
{
    struct xensnd_req req = { .operation = XENSND_OP_TRIGGER, .op.trigger.type = type };

    return xring_submit_wait(p->ring, &req);
}

static int xsnd_start_locked(snd_pcm_ioplug_t *io)
{
    struct xsnd_pcm *p = io->private_data;
    int rc;

    if (xsnd_check_lost(p))
        return -EPIPE;
    if (p->dead)
        return -ENODEV;
    if ((rc = xsnd_trigger(p, XENSND_OP_TRIGGER_START)) < 0)
        return rc;
    p->be_running = true;
    p->be_paused = false;
    p->trigger_pos = p->be_pos;
    p->last_progress_ms = p->watch_ms = xring_now_ms();
    p->owed = false;
    xsnd_clock_ref(p);
    xsnd_watchdog(p, true);
    return 0;
}

static int xsnd_stop_locked(snd_pcm_ioplug_t *io)
{
    struct xsnd_pcm *p = io->private_data;

    if (p->be_running && !p->dead && !p->lost)
        xsnd_trigger(p, XENSND_OP_TRIGGER_STOP);
    p->be_running = p->be_paused = false;
    p->stopped = true;
    xsnd_watchdog(p, false);
    xsnd_set_wake(p, true); /* a state change: pollers must look */
    return 0;
}

static int xsnd_pause_locked(snd_pcm_ioplug_t *io, int enable)
{
    struct xsnd_pcm *p = io->private_data;
    int rc;

    if (xsnd_check_lost(p))
        return -EPIPE;
    if (p->dead)
        return -ENODEV;
    rc = xsnd_trigger(p, enable ? XENSND_OP_TRIGGER_PAUSE : XENSND_OP_TRIGGER_RESUME);
    if (rc < 0)
        return rc;
    p->be_paused = enable;
    if (!enable)
        p->trigger_pos = p->be_pos;
    p->last_progress_ms = p->watch_ms = xring_now_ms();
    p->owed = false;
    xsnd_clock_ref(p);
    xsnd_watchdog(p, !enable);
    return 0;
}

static snd_pcm_sframes_t xsnd_pointer_locked(snd_pcm_ioplug_t *io)
{
    struct xsnd_pcm *p = io->private_data;

    xsnd_update(p);
    if (p->lost)
        return -EPIPE;
    if (p->dead) {
        snd_pcm_ioplug_set_state(io, SND_PCM_STATE_DISCONNECTED);
        return (snd_pcm_sframes_t)(p->hw_pos % p->boundary);
    }
    if (p->io_error && io->state == SND_PCM_STATE_RUNNING)
        return p->io_error;
    if (xsnd_xrun(p))
        return -EPIPE;
    return (snd_pcm_sframes_t)(p->hw_pos % p->boundary);
}

/* The buffer as ALSA channel areas, for snd_pcm_areas_copy_wrap. */
static void xsnd_buffer_areas(const struct xsnd_pcm *p, snd_pcm_channel_area_t *areas)
{
    unsigned bits = (unsigned)snd_pcm_format_physical_width(p->io.format);

    for (unsigned ch = 0; ch < p->io.channels; ch++)
        areas[ch] = (snd_pcm_channel_area_t){ p->buf.data, ch * bits, p->frame_bytes * 8 };
}

/* Hands the backend the buffer's frames from stream position `submitted` up to `upto`, one
 * WRITE per contiguous run; the backend takes the data when it answers. Never waits: with the
 * ring full the rest stays in the buffer for the next update (an application's data thread,
 * PipeWire's, must not block on the backend). A ring error marks the PCM dead. */
static void xsnd_send(struct xsnd_pcm *p, uint64_t upto)
{
    while (p->submitted < upto) {
        snd_pcm_uframes_t off = (snd_pcm_uframes_t)(p->submitted % p->buffer_frames);
        snd_pcm_uframes_t run = upto - p->submitted < p->buffer_frames - off ? (snd_pcm_uframes_t)(upto - p->submitted)
                                                                             : p->buffer_frames - off;
        int rc = xsnd_submit_io(p, XENSND_OP_WRITE, p->submitted, run, p->submitted + run);

        if (rc == -EAGAIN)
            return; /* the ring is full: later */
        if (rc < 0) {
            xsnd_mark_dead(p, NULL); /* ring.c said why */
            return;
        }
        p->submitted += run;
    }
}

/* Silences the buffer over stream positions [from, to): frames snd_pcm_forward skipped play as
 * silence at their positions (not as whatever the buffer held a buffer ago). */
static void xsnd_silence(struct xsnd_pcm *p, uint64_t from, uint64_t to)
{
    snd_pcm_channel_area_t *buf_areas = alloca(p->io.channels * sizeof(*buf_areas));

    xsnd_buffer_areas(p, buf_areas);
    while (from < to) {
        snd_pcm_uframes_t off = (snd_pcm_uframes_t)(from % p->buffer_frames);
        snd_pcm_uframes_t run = to - from < p->buffer_frames - off ? (snd_pcm_uframes_t)(to - from)
                                                                   : p->buffer_frames - off;

        snd_pcm_areas_silence(buf_areas, off, p->io.channels, run, p->io.format);
        from += run;
    }
}

/* Hands the backend the buffer's frames up to stream position `upto`, but never more than a
 * buffer ahead of what it reported played: the interpolated pointer lets the application
 * write up to the lead further, and those frames wait here until the backend has room
 * (sndif: at most buffer_sz queued). Frames skipped by snd_pcm_forward are silenced first. */
static void xsnd_flush(struct xsnd_pcm *p, uint64_t upto)
{
    uint64_t room = p->be_pos + p->buffer_frames;

    if (!p->playback || !p->opened || p->dead || p->io_error || p->be_paused)
        return;
    if (upto > room)
        upto = room;
    if (upto > p->filled) {
        xsnd_silence(p, p->filled, upto);
        p->filled = upto;
    }
    xsnd_send(p, upto);
}

/* Playback: copies the application's frames into the buffer at their stream positions; frames
 * the backend does not have yet can be rewritten any number of times (an honest rewind). The
 * rewrite of frames the backend already has (the application rewound over them) cannot reach
 * it: it is dropped, and every later frame keeps its position. */
static void xsnd_write_frames(struct xsnd_pcm *p, const snd_pcm_channel_area_t *areas, snd_pcm_uframes_t offset,
                              snd_pcm_uframes_t size)
{
    snd_pcm_channel_area_t *buf_areas = alloca(p->io.channels * sizeof(*buf_areas));
    uint64_t pos = xsnd_appl_cum(p), end = pos + size;
    snd_pcm_uframes_t skip = 0;

    if (pos > p->filled) /* forwarded over [filled, pos) */
        xsnd_silence(p, p->filled, pos);
    if (pos < p->submitted)
        skip = p->submitted - pos < size ? (snd_pcm_uframes_t)(p->submitted - pos) : size;
    if (skip < size) {
        xsnd_buffer_areas(p, buf_areas);
        snd_pcm_areas_copy_wrap(buf_areas, (snd_pcm_uframes_t)((pos + skip) % p->buffer_frames), p->buffer_frames,
                                areas, offset + skip, offset + size, p->io.channels, size - skip, p->io.format);
    }
    /* What lies beyond `end` was rewound away: the application writes it anew. */
    p->filled = end > p->submitted ? end : p->submitted;
    xsnd_flush(p, end);
}

static snd_pcm_sframes_t xsnd_transfer_locked(snd_pcm_ioplug_t *io, const snd_pcm_channel_area_t *areas,
                                              snd_pcm_uframes_t offset, snd_pcm_uframes_t size)
{
    struct xsnd_pcm *p = io->private_data;
    snd_pcm_channel_area_t *buf_areas = alloca(io->channels * sizeof(*buf_areas));

    xsnd_update(p);
    if (p->lost)
        return -EPIPE;
    if (p->dead)
        return -ENODEV;
    if (p->io_error)
        return p->io_error;
    if (!p->playback) {
        xsnd_buffer_areas(p, buf_areas);
        snd_pcm_areas_copy_wrap(areas, offset, offset + size, buf_areas, io->appl_ptr % p->buffer_frames,
                                p->buffer_frames, io->channels, size, io->format);
        return (snd_pcm_sframes_t)size;
    }
    xsnd_write_frames(p, areas, offset, size);
    xsnd_set_wake(p, xsnd_ready(p, size));
    if (p->dead)
        return -ENODEV;
    return (snd_pcm_sframes_t)size; /* in the buffer: a failed WRITE is reported by the next call */
}

/* Sends CLOSE, so that the backend frees the stream and unmaps its buffer, also for a PCM the
 * watchdog gave up on (a backend late with its positions may still answer on a working ring); a
 * ring that failed (no answer within the timeout, a hostile answer) gets no more requests. Then
 * releases the buffer (the backend may still hold its pages: Xen allows it). */
static void xsnd_close_stream(struct xsnd_pcm *p)
{
    struct xensnd_req req = { .operation = XENSND_OP_CLOSE };

    if (!p->opened)
        return;
    if (!p->ring->error && !p->lost) /* a backend that restarted knows no such stream */
        xring_call(p->ring, &req, NULL);
    pthread_mutex_lock(&xsnd_cards_lock);
    shbuf_free(&p->buf);
    pthread_mutex_unlock(&xsnd_cards_lock);
    p->opened = p->be_running = p->be_paused = false;
}

static int xsnd_open_stream(struct xsnd_pcm *p)
{
    struct xensnd_req req = { .operation = XENSND_OP_OPEN };
    int rc;

    pthread_mutex_lock(&xsnd_cards_lock);
    rc = shbuf_alloc(&p->buf, p->card->gs, p->card->conn.card.be_domid,
                     (size_t)p->buffer_frames * p->frame_bytes, p->ring->label);
    pthread_mutex_unlock(&xsnd_cards_lock);
    if (rc < 0)
        return rc;
    req.op.open.pcm_rate = p->io.rate;
    req.op.open.pcm_format = (uint8_t)p->sndif_format;
    req.op.open.pcm_channels = (uint8_t)p->io.channels;
    req.op.open.buffer_sz = (uint32_t)p->buf.bytes;
    req.op.open.gref_directory = shbuf_directory_ref(&p->buf);
    req.op.open.period_sz = (uint32_t)(p->event_period_frames * p->frame_bytes);
    rc = xring_call(p->ring, &req, NULL);
    if (rc < 0) {
        if (!p->ring->error) /* else the ring said why: no answer, or a hostile one */
            SNDERR("%s: backend refused OPEN (%s, %u Hz, %u ch, %lu/%lu frames): %s", p->ring->label,
                   xsc_format_name((unsigned)p->sndif_format), p->io.rate, p->io.channels,
                   (unsigned long)p->period_frames, (unsigned long)p->buffer_frames, strerror(-rc));
        pthread_mutex_lock(&xsnd_cards_lock);
        shbuf_free(&p->buf);
        pthread_mutex_unlock(&xsnd_cards_lock);
        if (p->ring->error)
            xsnd_mark_dead(p, NULL);
        return p->dead ? -ENODEV : -EIO; /* a refusal: -EIO as for any failed request */
    }
    p->opened = true;
    return 0;
}

/* Moves the PCM to the card's current link, connecting the card anew first when this PCM is the
 * first back after the backend restarted (bounded: the backend must be at InitWait within the
 * timeout). The stream's old buffer goes (the old backend is gone, and its mappings with it);
 * prepare OPENs the stream again on the new link. */
static int xsnd_rejoin(struct xsnd_pcm *p)
{
    struct xsnd_link *old = p->link, *l;
    int rc;

    xsnd_close_stream(p); /* no CLOSE: the backend that had the stream is gone */
    pthread_mutex_lock(&xsnd_cards_lock);
    if (p->card->guest || p->card->shared) { /* the keeper's connection, not ours to renew */
        pthread_mutex_unlock(&xsnd_cards_lock);
        SNDERR("%s: the backend restarted while the card is shared between processes: close the PCM and "
               "open it again", p->ring->label);
        return -ENODEV;
    }
    rc = xsnd_card_link(p->card, &l);
    if (rc == 0) {
        epoll_ctl(p->epfd, EPOLL_CTL_DEL, xring_fd(p->ring), NULL); /* before its descriptor closes */
        p->ring->on_complete = NULL;
        p->link = l;
        p->ring = &l->rings[p->sidx];
        p->ring->on_complete = xsnd_on_complete;
        p->ring->ctx = p;
        p->ring->quiet = p->playback; /* polled at every update; READ answers carry capture data */
        xsnd_link_put(p->card, old);
    }
    pthread_mutex_unlock(&xsnd_cards_lock);
    if (rc < 0)
        return rc; /* still lost: a later prepare tries again */
    if (xsnd_poll_add(p, xring_fd(p->ring)) < 0) {
        SNDERR("%s: cannot poll the new event channel: %s", p->ring->label, strerror(errno));
        return -errno;
    }
    p->lost = p->dead = false;
    return 0;
}

static int xsnd_prepare_locked(snd_pcm_ioplug_t *io)
{
    struct xsnd_pcm *p = io->private_data;
    uint64_t pos;
    bool have;
    int rc;

    if (xsnd_check_lost(p) && (rc = xsnd_rejoin(p)) < 0)
        return rc;
    if (p->dead)
        return -ENODEV;
    if (!p->opened && (rc = xsnd_open_stream(p)) < 0)
        return rc;
    if (p->be_running)
        xsnd_trigger(p, XENSND_OP_TRIGGER_STOP);
    p->be_running = p->be_paused = p->stopped = false;
    /* Let everything in flight finish and drop stale positions before counting from zero. */
    if (xring_drain(p->ring, 1) < 0 || xring_events(p->ring, &pos, &have) < 0) {
        xsnd_mark_dead(p, NULL);
        return -ENODEV;
    }
    p->submitted = p->hw_pos = p->be_pos = p->acked = p->filled = p->pos_base = p->last_pos_frames = p->requested = 0;
    p->trigger_pos = 0;
    p->clock_ref_us = 0;
    p->nreads = 0;
    p->io_error = 0;
    p->last_progress_ms = p->watch_ms = 0;
    p->owed = false;
    xsnd_watchdog(p, false);
    xsnd_set_wake(p, p->playback); /* playback may be filled now; capture has nothing yet */
    return 0;
}

/* One interval of a query answer, intersected with what was asked: a backend may answer wider
 * than asked (snd_be reports its device's unnarrowed rate maximum), which cannot hurt once
 * narrowed; only an empty intersection means it accepts nothing. */
static bool xsnd_intersect(uint32_t *min, uint32_t *max, uint32_t ans_min, uint32_t ans_max)
{
    if (ans_min > *min)
        *min = ans_min;
    if (ans_max < *max)
        *max = ans_max;
    return *min <= *max;
}

/* Asks the backend to narrow q and intersects its answer with q. Returns 0, the backend's
 * refusal (a negative errno), -EINVAL when nothing is left (naming the parameter), or a ring
 * error (then p->ring->error is set and ring.c said why). */
static int xsnd_query(struct xsnd_pcm *p, struct xensnd_query_hw_param *q)
{
    struct xensnd_req req = { .operation = XENSND_OP_HW_PARAM_QUERY, .op.hw_param = *q };
    struct xensnd_resp rsp;
    struct xensnd_query_hw_param a;
    const char *empty = NULL;
    int rc = xring_call(p->ring, &req, &rsp);

    if (rc < 0) {
        if (!p->ring->error)
            SNDERR("%s: backend refused HW_PARAM_QUERY: %s", p->ring->label, strerror(-rc));
        return rc;
    }
    a = rsp.resp.hw_param; /* a private copy: rsp already is one, this names it */
    q->formats &= a.formats;
    if (!q->formats)
        empty = "sample format";
    else if (!xsnd_intersect(&q->rates.min, &q->rates.max, a.rates.min, a.rates.max))
        empty = "rate";
    else if (!xsnd_intersect(&q->channels.min, &q->channels.max, a.channels.min, a.channels.max))
        empty = "channel count";
    else if (!xsnd_intersect(&q->buffer.min, &q->buffer.max, a.buffer.min, a.buffer.max))
        empty = "buffer size";
    else if (!xsnd_intersect(&q->period.min, &q->period.max, a.period.min, a.period.max))
        empty = "period size";
    if (empty) {
        SNDERR("%s: backend accepts no %s of those asked for (HW_PARAM_QUERY)", p->ring->label, empty);
        return -EINVAL;
    }
    return 0;
}

static int xsnd_hw_params_locked(snd_pcm_ioplug_t *io, snd_pcm_hw_params_t *params)
{
    struct xsnd_pcm *p = io->private_data;
    struct xensnd_query_hw_param q = { 0 };
    int fmt = xsnd_sndif_format(io->format), rc;

    (void)params;
    if (p->dead)
        return -ENODEV;
    if (fmt < 0)
        return -EINVAL;
    p->sndif_format = fmt;
    p->frame_bytes = (unsigned)snd_pcm_format_physical_width(io->format) / 8 * io->channels;
    p->buffer_frames = io->buffer_size;
    p->period_frames = io->period_size;
    q.formats = 1ull << fmt;
    q.rates.min = q.rates.max = io->rate;
    q.channels.min = q.channels.max = io->channels;
    q.buffer.min = q.buffer.max = (uint32_t)io->buffer_size;
    q.period.min = 1;
    q.period.max = (uint32_t)(io->buffer_size / 2);
    if ((size_t)io->buffer_size * p->frame_bytes > p->cfg->lim.buffer_size) {
        SNDERR("%s: a buffer of %lu frames is larger than the card's buffer-size (%u bytes)", p->ring->label,
               (unsigned long)io->buffer_size, p->cfg->lim.buffer_size);
        return -EINVAL;
    }
    rc = xsnd_query(p, &q);
    if (p->ring->error) { /* no answer or a hostile one: ring.c said which */
        xsnd_mark_dead(p, NULL);
        return -ENODEV;
    }
    if (rc < 0) /* this configuration is refused; the PCM stays usable for another */
        return -EINVAL;
    /* sndif's period is only the position-event interval: when ALSA's period is outside the
     * backend's range (byte constraints cannot say frames for every frame size), report
     * positions at the nearest period the backend takes. */
    p->event_period_frames = io->period_size;
    if (p->event_period_frames < q.period.min)
        p->event_period_frames = q.period.min;
    if (p->event_period_frames > q.period.max)
        p->event_period_frames = q.period.max;
    return 0;
}

static int xsnd_hw_free_locked(snd_pcm_ioplug_t *io)
{
    struct xsnd_pcm *p = io->private_data;

    xsnd_close_stream(p);
    xsnd_watchdog(p, false);
    return 0;
}

static int xsnd_sw_params_locked(snd_pcm_ioplug_t *io, snd_pcm_sw_params_t *params)
{
    struct xsnd_pcm *p = io->private_data;

    /* Called before alsa-lib stores them, and again when a plug/rate layer retunes avail_min. */
    snd_pcm_sw_params_get_avail_min(params, &p->avail_min);
    snd_pcm_sw_params_get_boundary(params, &p->boundary);
    snd_pcm_sw_params_get_stop_threshold(params, &p->stop_threshold);
    if (!p->avail_min)
        p->avail_min = 1;
    return 0;
}

static int xsnd_delay_locked(snd_pcm_ioplug_t *io, snd_pcm_sframes_t *delayp)
{
    struct xsnd_pcm *p = io->private_data;
    uint64_t appl, queued_to;

    xsnd_update(p);
    if (p->lost)
        return -EPIPE;
    if (p->dead)
        return -ENODEV;
    appl = xsnd_appl_cum(p);
    if (!p->playback) {
        *delayp = (snd_pcm_sframes_t)(p->be_pos - appl);
        return 0;
    }
    /* hw_pos moves with the clock between events (xsnd_interpolate), so the delay is smooth
     * for A/V sync. A frame written now plays after everything the backend already has. */
    queued_to = appl > p->submitted ? appl : p->submitted;
    *delayp = (snd_pcm_sframes_t)(queued_to > p->hw_pos ? queued_to - p->hw_pos : 0);
    return 0;
}

/* A drain whose backend restarted: what was left is lost, as in an xrun; the application's
 * prepare connects again. */
static int xsnd_drain_lost(snd_pcm_ioplug_t *io)
{
    snd_pcm_ioplug_set_state(io, SND_PCM_STATE_XRUN);
    return -EPIPE;
}

static int xsnd_drain_locked(snd_pcm_ioplug_t *io)
{
    struct xsnd_pcm *p = io->private_data;
    long long deadline;
    int rc, wait_ms;

    if (!p->playback)
        return 0; /* capture: nothing to wait for (as bluez-alsa) */
    if (xsnd_check_lost(p))
        return xsnd_drain_lost(io);
    if (p->dead)
        return -ENODEV;
    /* ioplug lets its lock go before calling us: a drop from another thread may come first, and
     * its STOP made the backend discard what it had. Nothing is left to play then; starting
     * again would leave the backend running on nothing. */
    if (p->stopped)
        return 0;
    xsnd_flush(p, xsnd_appl_cum(p));
    if (p->io_error)
        return p->io_error;
    /* With a drain callback ioplug does not start a prepared stream: we must. */
    if (!p->be_running && p->submitted && (rc = xsnd_start_locked(io)) < 0)
        return rc;
    if (io->nonblock) { /* set at open from SND_PCM_NONBLOCK too: ioplug does not */
        xsnd_update(p);
        if (p->lost)
            return xsnd_drain_lost(io);
        if (p->dead)
            return -ENODEV;
        if (xsnd_played_all(p) || !p->be_running)
            return 0;
        xsnd_drain_alarm(p);
        return -EAGAIN; /* poll wakes when it is done: xsnd_poll_revents */
    }
    deadline = xring_now_ms() + (long long)((p->submitted - p->be_pos) * 1000 / io->rate) + p->timeout_ms;
    for (;;) {
        xring_ack(p->ring);
        xsnd_update(p);
        if (p->lost)
            return xsnd_drain_lost(io);
        if (p->dead)
            return -ENODEV;
        if (xsnd_played_all(p) || !p->be_running)
            return 0;
        /* snd_pcm_abort (aplay's Ctrl-C, from a signal handler that also ends the wait below)
         * sets ioplug's nonblock to 2. */
        if (*(volatile int *)&io->nonblock)
            return -EINTR;
        if (xring_now_ms() > deadline) {
            SNDERR("%s: backend did not play the last %llu frames in time", p->ring->label,
                   (unsigned long long)(p->submitted - p->be_pos));
            return -EIO;
        }
        /* A partial last period ends by the clock: look often then. The lock is let go while
         * waiting: other threads read the pointer and delay meanwhile (and may drop). */
        wait_ms = p->submitted - p->be_pos < p->event_period_frames ? 5 : 100;
        pthread_mutex_unlock(&p->lock);
        xring_wait(p->ring, wait_ms);
        pthread_mutex_lock(&p->lock);
    }
}

/* What woke the poll descriptor: one look at the epoll set, then only the descriptors that are
 * ready are read (the event channel's delivery, the timer's expiry); the eventfd is the PCM's
 * own level, and the card's xenstore watch is drained by xsnd_check_lost. */
static void xsnd_take_wakeups(struct xsnd_pcm *p)
{
    struct epoll_event ev[4];
    int n = epoll_wait(p->epfd, ev, 4, 0);
    uint64_t ticks;

    for (int i = 0; i < n; i++) {
        if (ev[i].data.fd == xring_fd(p->ring))
            xring_ack(p->ring);
        else if (ev[i].data.fd == p->timer_fd && read(p->timer_fd, &ticks, sizeof(ticks)) < 0)
            ticks = 0; /* raced with a re-arm: nothing to take */
    }
}

static int xsnd_poll_revents_locked(snd_pcm_ioplug_t *io, struct pollfd *pfd, unsigned int nfds,
                                    unsigned short *revents)
{
    struct xsnd_pcm *p = io->private_data;

    *revents = 0;
    if (nfds != 1 || (pfd[0].revents & (POLLERR | POLLNVAL)))
        return -EINVAL;
    xsnd_take_wakeups(p);
    xsnd_update(p);
    if (p->dead) {
        *revents = POLLERR | POLLHUP;
        return -ENODEV;
    }
    if (p->io_error && io->state == SND_PCM_STATE_RUNNING) {
        *revents = POLLERR; /* snd_pcm_wait gives -EIO; a write or read gives the error itself */
        return 0;
    }
    if (io->state == SND_PCM_STATE_DRAINING && p->playback) {
        if (!xsnd_played_all(p) && !p->lost) {
            xsnd_drain_alarm(p);
            xsnd_set_wake(p, false);
            return 0;
        }
        /* Done: the pointer now shows it, and ioplug ends the drain (state SETUP) when it reads
         * the pointer: let it now, so that the application need not (as bluez-alsa). */
        pthread_mutex_unlock(&p->lock); /* snd_pcm_avail takes ioplug's lock, then ours */
        snd_pcm_avail(io->pcm);
        pthread_mutex_lock(&p->lock);
    }
    if (xsnd_ready(p, 0)) {
        *revents = p->playback ? POLLOUT : POLLIN;
        /* An xrun seen here but not yet by ioplug: let the application's next call find it
         * through pointer() (-EPIPE); POLLERR in RUNNING state would read as -EIO. */
        if (io->state == SND_PCM_STATE_XRUN)
            *revents |= POLLERR;
    }
    xsnd_set_wake(p, *revents != 0);
    return 0;
}

static void xsnd_dump_locked(snd_pcm_ioplug_t *io, snd_output_t *out)
{
    struct xsnd_pcm *p = io->private_data;
    const struct xsc_card *c = &p->card->conn.card;

    snd_output_printf(out, "Xen PV sound (sndif) %s: backend domain %u, %s\n", p->ring->label, c->be_domid,
                      c->fe_path);
    if (io->state >= SND_PCM_STATE_SETUP) {
        snd_output_printf(out, "Its setup is:\n");
        snd_pcm_dump_setup(io->pcm, out);
    }
}

static void xsnd_free(struct xsnd_pcm *p);

/* The poll descriptor's pieces: this process's own descriptors (a child's copies too). */
static void xsnd_close_fds(struct xsnd_pcm *p)
{
    if (p->epfd >= 0)
        close(p->epfd);
    if (p->wake_fd >= 0)
        close(p->wake_fd);
    if (p->timer_fd >= 0)
        close(p->timer_fd);
}

/* Every callback runs under the PCM's lock: ioplug calls drain, poll_revents, prepare,
 * sw_params and hw_free without its own, from any thread, while another thread may be in
 * pointer, delay or transfer (PipeWire, PulseAudio and JACK do so). The lock is never held
 * while calling back into alsa-lib (ioplug's lock is taken first, ours second). A fork()ed
 * child's copy answers in_child without touching anything (its drop and hw_free succeed, so that
 * its close does). */
#define XSND_LOCKED(type, name, params, args, in_child)                                                               \
    static type xsnd_cb_##name params                                                                                  \
    {                                                                                                                  \
        struct xsnd_pcm *p = io->private_data;                                                                        \
        type rc;                                                                                                       \
                                                                                                                       \
        if (xsnd_card_inherited(p->card))                                                                              \
            return in_child; /* a fork()ed child may only drop and close its copy */                                   \
        pthread_mutex_lock(&p->lock);                                                                                  \
        rc = xsnd_##name##_locked args;                                                                                \
        pthread_mutex_unlock(&p->lock);                                                                                \
        return rc;                                                                                                     \
    }
XSND_LOCKED(int, start, (snd_pcm_ioplug_t *io), (io), -EBADFD)
XSND_LOCKED(int, stop, (snd_pcm_ioplug_t *io), (io), 0)
XSND_LOCKED(int, pause, (snd_pcm_ioplug_t *io, int enable), (io, enable), -EBADFD)
XSND_LOCKED(snd_pcm_sframes_t, pointer, (snd_pcm_ioplug_t *io), (io), -EBADFD)
XSND_LOCKED(snd_pcm_sframes_t, transfer,
            (snd_pcm_ioplug_t *io, const snd_pcm_channel_area_t *areas, snd_pcm_uframes_t offset,
             snd_pcm_uframes_t size),
            (io, areas, offset, size), -EBADFD)
XSND_LOCKED(int, prepare, (snd_pcm_ioplug_t *io), (io), -EBADFD)
XSND_LOCKED(int, hw_params, (snd_pcm_ioplug_t *io, snd_pcm_hw_params_t *params), (io, params), -EBADFD)
XSND_LOCKED(int, hw_free, (snd_pcm_ioplug_t *io), (io), 0)
XSND_LOCKED(int, sw_params, (snd_pcm_ioplug_t *io, snd_pcm_sw_params_t *params), (io, params), -EBADFD)
XSND_LOCKED(int, delay, (snd_pcm_ioplug_t *io, snd_pcm_sframes_t *delayp), (io, delayp), -EBADFD)
XSND_LOCKED(int, drain, (snd_pcm_ioplug_t *io), (io), -EBADFD)
XSND_LOCKED(int, poll_revents,
            (snd_pcm_ioplug_t *io, struct pollfd *pfd, unsigned int nfds, unsigned short *revents),
            (io, pfd, nfds, revents), -EBADFD)

static void xsnd_cb_dump(snd_pcm_ioplug_t *io, snd_output_t *out)
{
    struct xsnd_pcm *p = io->private_data;

    if (xsnd_card_inherited(p->card))
        return;
    pthread_mutex_lock(&p->lock); /* see XSND_LOCKED */
    xsnd_dump_locked(io, out);
    pthread_mutex_unlock(&p->lock);
}

static int xsnd_cb_close(snd_pcm_ioplug_t *io)
{
    struct xsnd_pcm *p = io->private_data;

    if (xsnd_card_inherited(p->card)) { /* its stream, rings, grants and card are the parent's */
        xsnd_close_fds(p);
        xsc_drop_token(&p->card->conn); /* our copy only: the parent's token stays bound */
        free(p);
        return 0;
    }
    pthread_mutex_lock(&p->lock); /* see XSND_LOCKED; no other call may follow close */
    xsnd_close_stream(p);
    pthread_mutex_unlock(&p->lock);
    xsnd_free(p);
    return 0;
}

static const snd_pcm_ioplug_callback_t xsnd_callback = {
    .start = xsnd_cb_start,
    .stop = xsnd_cb_stop,
    .pointer = xsnd_cb_pointer,
    .transfer = xsnd_cb_transfer,
    .close = xsnd_cb_close,
    .hw_params = xsnd_cb_hw_params,
    .hw_free = xsnd_cb_hw_free,
    .sw_params = xsnd_cb_sw_params,
    .prepare = xsnd_cb_prepare,
    .drain = xsnd_cb_drain,
    .pause = xsnd_cb_pause,
    .poll_revents = xsnd_cb_poll_revents,
    .dump = xsnd_cb_dump,
    .delay = xsnd_cb_delay,
};

/* Lets go of the stream and the card: a relayed stream's claim ends with its ring, our own claim
 * (shared) is closed; either way the keeper takes the stream back. After CLOSE (xsnd_close_stream). */
static void xsnd_detach(struct xsnd_pcm *p)
{
    struct xsnd_card *c = p->card;

    if (!c)
        return;
    if (p->ring)
        p->ring->on_complete = NULL;
    if (p->own_ring.relayed)
        xring_destroy(&p->own_ring);
    pthread_mutex_lock(&xsnd_cards_lock);
    if (p->have_stream) {
        c->in_use[p->sidx] = false;
        if (c->claim_fd[p->sidx] >= 0)
            close(c->claim_fd[p->sidx]);
        c->claim_fd[p->sidx] = -1;
    }
    xsnd_link_put(c, p->link);
    pthread_mutex_unlock(&xsnd_cards_lock);
    xsnd_card_put(c);
    p->card = NULL;
    p->link = NULL;
    p->ring = NULL;
    p->have_stream = false;
}

static void xsnd_free(struct xsnd_pcm *p)
{
    xsnd_detach(p);
    xsnd_close_fds(p);
    pthread_mutex_destroy(&p->lock);
    free(p);
}


/* ---------------------------------------------------------------- open */

/* sndif's buffers and rings are 4 KiB Xen pages, granted one per page by gntalloc: a kernel with
 * larger pages (arm64 with 16 or 64 KiB) would grant only the first 4 KiB of each. */
static int xsnd_check_page_size(void)
{
    long page = sysconf(_SC_PAGESIZE);

    if (page == (long)SHBUF_PAGE_SIZE)
        return 0;
    SNDERR("this guest's kernel uses %ld-byte pages: sndif shares 4096-byte pages, one grant each, "
           "so pcm_xen needs a kernel with 4 KiB pages", page);
    return -ENOSYS;
}

struct xsnd_options {
    long card;                 /* -1: the first card */
    long device;               /* -1: the first PCM device with a stream of our direction */
    char stream[64];           /* "" default, a number, or a unique-id */
    long timeout_ms;
};

static int xsnd_get_long_or_string(snd_config_t *n, long *l, char *s, size_t cap)
{
    const char *str;

    if (snd_config_get_integer(n, l) == 0)
        return 0;
    if (snd_config_get_string(n, &str) < 0)
        return -EINVAL;
    if (s) {
        snprintf(s, cap, "%s", str);
        *l = -2; /* a string */
        return 0;
    }
    {
        char *end;
        long v = strtol(str, &end, 10);

        if (!*str || *end)
            return -EINVAL;
        *l = v;
    }
    return 0;
}

static int xsnd_parse_options(snd_config_t *conf, struct xsnd_options *o)
{
    snd_config_iterator_t i, next;

    *o = (struct xsnd_options){ .card = -1, .device = -1, .timeout_ms = XSND_DEFAULT_TIMEOUT_MS };
    snd_config_for_each(i, next, conf) {
        snd_config_t *n = snd_config_iterator_entry(i);
        const char *id;
        long v = 0;
        int rc = 0;

        if (snd_config_get_id(n, &id) < 0)
            continue;
        if (!strcmp(id, "comment") || !strcmp(id, "type") || !strcmp(id, "hint"))
            continue;
        if (!strcmp(id, "card")) {
            rc = xsnd_get_long_or_string(n, &o->card, NULL, 0);
            if (!rc && (o->card < -1 || o->card > 65535))
                rc = -EINVAL;
        } else if (!strcmp(id, "device")) {
            rc = xsnd_get_long_or_string(n, &o->device, NULL, 0);
            if (!rc && (o->device < -1 || o->device >= XSC_MAX_PCMS))
                rc = -EINVAL;
        } else if (!strcmp(id, "stream")) {
            rc = xsnd_get_long_or_string(n, &v, o->stream, sizeof(o->stream));
            if (!rc && v != -2)
                snprintf(o->stream, sizeof(o->stream), "%ld", v);
            if (!strcmp(o->stream, "-1"))
                o->stream[0] = 0;
        } else if (!strcmp(id, "timeout")) {
            rc = xsnd_get_long_or_string(n, &o->timeout_ms, NULL, 0);
            if (!rc && (o->timeout_ms < 100 || o->timeout_ms > 600000))
                rc = -EINVAL;
        } else {
            SNDERR("xen: unknown option \"%s\" (known: card, device, stream, timeout)", id);
            return -EINVAL;
        }
        if (rc < 0) {
            SNDERR("xen: invalid value for option \"%s\"", id);
            return -EINVAL;
        }
    }
    return 0;
}

/* Picks the stream: `stream` as an index within the PCM device, or a unique-id anywhere. */
static int xsnd_pick_stream(const struct xsc_card *c, const struct xsnd_options *o, bool playback)
{
    char *end;
    long idx = o->stream[0] ? strtol(o->stream, &end, 10) : -1;
    bool by_index = o->stream[0] && !*end;

    for (unsigned i = 0; i < c->nstreams; i++) {
        const struct xsc_stream *st = &c->streams[i];

        if (st->playback != playback || (o->device >= 0 && st->pcm != (unsigned)o->device))
            continue;
        if (!o->stream[0] || (by_index && st->index == (unsigned)idx) ||
            (!by_index && !strcmp(st->unique_id, o->stream)))
            return (int)i;
    }
    SNDERR("vsnd card %u: no %s stream%s%s%s%s", c->devid, playback ? "playback" : "capture",
           o->stream[0] ? " \"" : "", o->stream, o->stream[0] ? "\"" : "",
           o->device >= 0 ? " on that PCM device" : "");
    return -ENOENT;
}

/* ioplug constrains bytes, sndif frames. [min*max_fb, max*min_fb] holds only byte counts that
 * are inside the frame range for every frame size, so use it when it is not empty; else the
 * superset [min*min_fb, max*max_fb], and hw_params fits what it can (see xsnd_hw_params). */
static void xsnd_frames_to_bytes(uint32_t fmin, uint32_t fmax, unsigned min_fb, unsigned max_fb, unsigned *bmin,
                                 unsigned *bmax)
{
    uint64_t lo = (uint64_t)fmin * max_fb, hi = (uint64_t)fmax * min_fb;

    if (lo > hi) {
        lo = (uint64_t)fmin * min_fb;
        hi = (uint64_t)fmax * max_fb;
    }
    *bmin = lo > UINT_MAX ? UINT_MAX : (unsigned)lo;
    *bmax = hi > UINT_MAX ? UINT_MAX : (unsigned)hi;
}

/* Turns the backend's answer to the widest query into ioplug's static constraints. */
static int xsnd_set_constraints(struct xsnd_pcm *p)
{
    const struct xsc_limits *lim = &p->cfg->lim;
    struct xensnd_query_hw_param q = { 0 };
    unsigned formats[XSC_NFORMATS], nformats = 0, rates[XSC_MAX_RATES], nrates = 0;
    unsigned min_fb = UINT_MAX, max_fb = 0, pmin, pmax, bmin, bmax;
    static const unsigned access[] = { SND_PCM_ACCESS_RW_INTERLEAVED, SND_PCM_ACCESS_MMAP_INTERLEAVED };
    int rc;

    for (unsigned f = 0; f < XSC_NFORMATS; f++)
        if ((lim->formats >> f & 1) && xsnd_alsa_formats[f] != SND_PCM_FORMAT_UNKNOWN)
            q.formats |= 1ull << f;
    q.rates.min = lim->rates[0];
    q.rates.max = lim->rates[lim->nrates - 1];
    q.channels.min = lim->channels_min;
    q.channels.max = lim->channels_max;
    q.buffer.min = 2;
    q.buffer.max = lim->buffer_size;
    q.period.min = 1;
    q.period.max = lim->buffer_size / 2;
    rc = xsnd_query(p, &q);
    if (p->ring->error)
        return -ENODEV;
    if (rc < 0)
        return rc;
    for (unsigned f = 0; f < XSC_NFORMATS; f++) {
        if (q.formats >> f & 1) {
            unsigned bytes = (unsigned)snd_pcm_format_physical_width(xsnd_alsa_formats[f]) / 8;

            formats[nformats++] = (unsigned)xsnd_alsa_formats[f];
            min_fb = bytes < min_fb ? bytes : min_fb;
            max_fb = bytes > max_fb ? bytes : max_fb;
        }
    }
    for (unsigned i = 0; i < lim->nrates; i++)
        if (lim->rates[i] >= q.rates.min && lim->rates[i] <= q.rates.max)
            rates[nrates++] = lim->rates[i];
    if (!nformats || !nrates) {
        SNDERR("%s: no sample format or rate left after asking the backend", p->ring->label);
        return -EINVAL;
    }
    min_fb *= q.channels.min;
    max_fb *= q.channels.max;
    xsnd_frames_to_bytes(q.period.min, q.period.max, min_fb, max_fb, &pmin, &pmax);
    xsnd_frames_to_bytes(q.buffer.min, q.buffer.max, min_fb, max_fb, &bmin, &bmax);
    if (bmax > lim->buffer_size)
        bmax = lim->buffer_size;
    if ((rc = snd_pcm_ioplug_set_param_list(&p->io, SND_PCM_IOPLUG_HW_ACCESS, 2, access)) < 0 ||
        (rc = snd_pcm_ioplug_set_param_list(&p->io, SND_PCM_IOPLUG_HW_FORMAT, nformats, formats)) < 0 ||
        (rc = snd_pcm_ioplug_set_param_minmax(&p->io, SND_PCM_IOPLUG_HW_CHANNELS, q.channels.min,
                                              q.channels.max)) < 0 ||
        (rc = snd_pcm_ioplug_set_param_list(&p->io, SND_PCM_IOPLUG_HW_RATE, nrates, rates)) < 0 ||
        (rc = snd_pcm_ioplug_set_param_minmax(&p->io, SND_PCM_IOPLUG_HW_PERIOD_BYTES, pmin, pmax)) < 0 ||
        (rc = snd_pcm_ioplug_set_param_minmax(&p->io, SND_PCM_IOPLUG_HW_BUFFER_BYTES, bmin, bmax)) < 0 ||
        (rc = snd_pcm_ioplug_set_param_minmax(&p->io, SND_PCM_IOPLUG_HW_PERIODS, 2, 1024)) < 0)
        return rc;
    return 0;
}

/* While the card is shared, our own stream is claimed from its keeper; the ring's previous user
 * may have been another process (the keeper settled it before answering). */
static int xsnd_claim_direct(struct xsnd_pcm *p)
{
    struct xsnd_card *c = p->card;
    const char *label = c->labels[p->sidx];
    long user;
    int fd, rc = xkeep_claim(c->conn.token_nonce, p->sidx, -1, p->timeout_ms, &fd, &user);

    if (rc == 0) {
        pthread_mutex_lock(&xsnd_cards_lock);
        c->claim_fd[p->sidx] = fd;
        pthread_mutex_unlock(&xsnd_cards_lock);
        return xring_settle(p->ring) < 0 ? -ENODEV : 0; /* ring.c said why */
    }
    if (rc == -EBUSY)
        SNDERR("%s is in use by process %ld", label, user);
    else if (rc != -EAGAIN)
        SNDERR("%s: the process keeping this shared card refused the stream: %s", label, strerror(-rc));
    return rc;
}

/* A guest's stream: its request ring and event page are a shadow shared with the keeper (a memfd,
 * passed with the claim), which relays them to the backend's. */
static int xsnd_claim_relayed(struct xsnd_pcm *p)
{
    struct xsnd_card *c = p->card;
    const char *label = c->labels[p->sidx];
    int mfd = memfd_create("pcm_xen-relay", MFD_CLOEXEC | MFD_ALLOW_SEALING), fd, rc;
    void *shadow = MAP_FAILED;
    long user;

    /* Sealed at its size: the keeper maps only a shadow that cannot shrink under it. */
    if (mfd >= 0 && ftruncate(mfd, XKEEP_SHADOW_BYTES) == 0 &&
        fcntl(mfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) == 0)
        shadow = mmap(NULL, XKEEP_SHADOW_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
    if (shadow == MAP_FAILED) {
        rc = -errno;
        SNDERR("%s: cannot make the pages to share with the card's keeper: %s", label, strerror(-rc));
        if (mfd >= 0)
            close(mfd);
        return rc;
    }
    xring_create_relay(&p->own_ring, -1, shadow, p->timeout_ms, label);
    rc = xkeep_claim(c->conn.holder_nonce, p->sidx, mfd, p->timeout_ms, &fd, &user);
    close(mfd);
    if (rc == 0) {
        p->own_ring.relay_fd = fd;
        p->ring = &p->own_ring;
        return 0;
    }
    xring_destroy(&p->own_ring);
    if (rc == -EBUSY && user > 0) {
        SNDERR("%s is in use by process %ld", label, user);
    } else if (rc == -EPERM || rc == -EBUSY) {
        SNDERR("%s", c->busy_err); /* another user's card: as before sharing existed */
        rc = -EBUSY;
    } else if (rc != -EAGAIN) {
        SNDERR("%s: process %ld holds the card and could not share it: %s", label, c->conn.holder_pid,
               strerror(-rc));
    }
    return rc;
}

/* Finds the card and our stream on it: its ring, ours or relayed (keeper.c). -EAGAIN: the card's
 * keeper was ending as we came (or the holder is closing it); the caller tries again. */
static int xsnd_attach(struct xsnd_pcm *p, const struct xsnd_options *opt)
{
    struct xsnd_card *c;
    bool shared = false;
    int rc, sidx;

    if ((rc = xsnd_card_get((int)opt->card, p->timeout_ms, &p->card)) < 0)
        return rc;
    c = p->card;
    pthread_mutex_lock(&xsnd_cards_lock);
    sidx = xsnd_pick_stream(&c->conn.card, opt, p->playback);
    if (sidx >= 0 && c->in_use[sidx]) {
        SNDERR("%s is already open in this process", c->labels[sidx]);
        sidx = -EBUSY;
    }
    if (sidx >= 0 && !c->guest && (rc = xsnd_card_link(c, &p->link)) < 0)
        sidx = rc; /* the backend restarted and did not come back */
    if (sidx >= 0) {
        c->in_use[sidx] = true;
        p->have_stream = true;
        p->sidx = (unsigned)sidx;
        shared = c->shared;
    }
    pthread_mutex_unlock(&xsnd_cards_lock);
    if (sidx < 0)
        return sidx;
    p->cfg = &c->conn.card.streams[sidx];
    if (c->guest) {
        rc = xsnd_claim_relayed(p);
    } else {
        p->ring = &p->link->rings[sidx];
        rc = shared ? xsnd_claim_direct(p) : 0;
    }
    if (rc < 0)
        return rc;
    p->ring->on_complete = xsnd_on_complete;
    p->ring->ctx = p;
    p->ring->quiet = p->playback; /* polled at every update; READ answers carry capture data */
    return 0;
}

/* A keeper that is ending refuses nothing: it is gone moments later and the card is free. */
static int xsnd_attach_retrying(struct xsnd_pcm *p, const struct xsnd_options *opt)
{
    long long deadline = xring_now_ms() + p->timeout_ms;
    int rc;

    while ((rc = xsnd_attach(p, opt)) == -EAGAIN && xring_now_ms() < deadline) {
        xsnd_detach(p);
        usleep(20000); /* bounded by the deadline */
    }
    if (rc == -EAGAIN) {
        if (p->card && p->card->guest)
            SNDERR("%s", p->card->busy_err);
        else
            SNDERR("vsnd card %u: the process keeping it shared between processes did not answer within %u ms",
                   p->card ? p->card->conn.card.devid : 0, p->timeout_ms);
        rc = -EBUSY;
    }
    return rc;
}

static int xsnd_make_poll_fd(struct xsnd_pcm *p)
{
    p->epfd = epoll_create1(EPOLL_CLOEXEC);
    p->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    p->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (p->epfd < 0 || p->wake_fd < 0 || p->timer_fd < 0 || xsnd_poll_add(p, xring_fd(p->ring)) < 0 ||
        xsnd_poll_add(p, xsc_watch_fd(&p->card->conn)) < 0 || xsnd_poll_add(p, p->wake_fd) < 0 ||
        xsnd_poll_add(p, p->timer_fd) < 0)
        return -errno;
    return 0;
}

SND_PCM_PLUGIN_DEFINE_FUNC(xen)
{
    struct xsnd_options opt;
    struct xsnd_pcm *p;
    bool playback = stream == SND_PCM_STREAM_PLAYBACK;
    int rc;

    (void)root;
    if ((rc = xsnd_parse_options(conf, &opt)) < 0)
        return rc;
    if ((rc = xsnd_check_page_size()) < 0)
        return rc;
    p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->epfd = p->wake_fd = p->timer_fd = -1;
    pthread_mutex_init(&p->lock, NULL);
    p->playback = playback;
    p->timeout_ms = (unsigned)opt.timeout_ms;
    if ((rc = xsnd_attach_retrying(p, &opt)) < 0) {
        xsnd_free(p);
        return rc;
    }
    p->boundary = LONG_MAX; /* until sw_params says */
    p->avail_min = 1;
    if ((rc = xsnd_make_poll_fd(p)) < 0) {
        xsnd_free(p);
        return rc;
    }
    p->io.version = SND_PCM_IOPLUG_VERSION;
    p->io.name = "Xen PV sound (sndif)";
    p->io.callback = &xsnd_callback;
    p->io.private_data = p;
    p->io.mmap_rw = 0;
    p->io.poll_fd = p->epfd;
    p->io.poll_events = POLLIN;
    p->io.flags = SND_PCM_IOPLUG_FLAG_MONOTONIC | SND_PCM_IOPLUG_FLAG_BOUNDARY_WA;
    if ((rc = snd_pcm_ioplug_create(&p->io, name, stream, mode)) < 0) {
        xsnd_free(p);
        return rc;
    }
    /* From here on, closing the ioplug frees p (xsnd_close). */
    p->io.nonblock = (mode & SND_PCM_NONBLOCK) != 0; /* ioplug only sets it in snd_pcm_nonblock() */
    if ((rc = xsnd_set_constraints(p)) < 0) {
        snd_pcm_ioplug_delete(&p->io);
        return rc;
    }
    *pcmp = p->io.pcm;
    return 0;
}

SND_PCM_PLUGIN_SYMBOL(xen);
