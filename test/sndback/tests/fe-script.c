/* fe-script: a scripted Xen PV sound frontend (sndif, xen/io/sndif.h) for testing a backend.
 *
 *   fe-script [--devid N] [--timeout-ms MS] [--handshake-timeout-ms MS] [-v] [COMMAND...]
 *
 * Runs in the guest (test/xensim/in-domain 1 ...) with nothing but the real Xen userspace API
 * (libxenstore, libxenevtchn, libxengnttab), so the same binary works on xensim and on real Xen.
 * Each argument is one command; without any, commands are read from stdin, one per line ('#'
 * starts a comment). Every command prints one line the test scripts grep (see fes_commands[]).
 * Errors print "error: ..." (stdout, so they land in the test's log) and make the exit status 1;
 * a request that gets no answer in --timeout-ms (default 3000, Linux's value) prints
 * "<command> timeout". Every wait is bounded.
 *
 * The frontend side of the handshake follows sndif-protocol.md section 3: write Initialising, wait
 * for the backend's InitWait, share a ring page and an event page per stream with the backend
 * domain (xengntshr_share_pages), allocate two unbound ports per stream, write every stream's keys
 * and `version` in one transaction, Initialised, wait for Connected, Connected.
 * Everything the backend writes (ring indexes, responses, events, xenstore) is copied once, then
 * checked; violations are printed as "error: backend ..." lines.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <xenevtchn.h>
#include <xengnttab.h>
#include <xenstore.h>

/* ring.h calls mb()/rmb()/wmb() (xen_mb() and friends map to them for a plain program) and no
 * public header defines them: full fence, acquire (loads stay after), release (stores stay before). */
#define mb() __atomic_thread_fence(__ATOMIC_SEQ_CST)
#define rmb() __atomic_thread_fence(__ATOMIC_ACQUIRE)
#define wmb() __atomic_thread_fence(__ATOMIC_RELEASE)
#include <xen/io/sndif.h>

#define FES_PAGE_SIZE 4096u
#define FES_DIR_REFS ((FES_PAGE_SIZE - offsetof(struct xensnd_page_directory, gref)) / sizeof(grant_ref_t))
#define FES_MAX_PCMS 8
#define FES_MAX_STREAMS 8               /* per PCM device, as Linux */
#define FES_MAX_BUFFER (64u << 20)      /* octets: bounds what a script can make us share */
#define FES_MAX_LINE 4096
#define FES_TXN_RETRIES 50
#define FES_NOTIFY_BATCH 64             /* notifications taken per wake-up before re-polling */
#define FES_XENBUS_INITIALISING 1
#define FES_XENBUS_INITWAIT 2
#define FES_XENBUS_INITIALISED 3
#define FES_XENBUS_CONNECTED 4
#define FES_XENBUS_CLOSING 5
#define FES_XENBUS_CLOSED 6

static bool fes_verbose;
static bool fes_failed;     /* some command failed: exit status 1 */
static bool fes_quiet;      /* reconnect rounds but the last: no handshake progress lines */

struct fes_buffer {
    void *data;                 /* shared data pages (one mapping), granted to the backend */
    uint32_t data_pages;
    uint32_t *data_refs;
    void *dir;                  /* shared page-directory pages (one mapping) */
    uint32_t dir_pages;
    uint32_t *dir_refs;
};

struct fes_stream {
    unsigned pcm, index;
    char type;                  /* 'p' or 'c' */
    char unique_id[128];
    /* Request ring: shared with the backend, which writes rsp_prod and the responses. */
    void *ring_page;
    uint32_t ring_ref;
    xen_sndif_front_ring_t ring;
    evtchn_port_t ring_port;
    /* Event page: shared with the backend, which writes in_prod and the events. */
    void *evt_page;
    uint32_t evt_ref;
    evtchn_port_t evt_port;
    uint32_t evt_cons;          /* private copy: the shared in_cons is only ever written */
    bool broken;                /* a ring violation was seen or forced: no more requests */
    /* The one request in flight and its answer. */
    bool in_flight, answered;
    uint16_t wait_id;
    uint8_t wait_op;
    struct xensnd_resp answer;
    uint16_t next_id;
    /* The OPENed buffer and what was done with it. */
    struct fes_buffer buf;
    bool open;
    uint32_t buffer_sz, period_sz;
    bool running;
    uint64_t queued;            /* playback octets written since OPEN or STOP */
    uint32_t writing;           /* octets of the WRITE in flight: the backend may report them first */
    uint64_t taken;             /* capture octets read since OPEN or STOP */
    uint32_t wr_off, rd_off;    /* next WRITE/READ offset in the buffer */
    uint64_t pattern_at;        /* index of the next pattern byte */
    /* CUR_POS events. */
    uint64_t pos, nevents, pos_beyond, pos_backwards;
    bool pos_seen;
};

struct fes_card {
    struct xs_handle *xs;
    xenevtchn_handle *xce;
    xengntshr_handle *gs;
    unsigned own_domid, be_domid, devid;
    char fe_path[128], be_path[160];
    bool watching;
    int last_be_state;          /* last backend state printed */
    struct fes_stream streams[FES_MAX_PCMS * FES_MAX_STREAMS];
    unsigned nstreams;
    struct fes_stream *cur;
    bool connected;
    int timeout_ms, handshake_timeout_ms;
};

/* ---------- small helpers ---------- */

static void fes_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fes_error(const char *fmt, ...)
{
    va_list ap;

    fputs("error: ", stdout);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
    fes_failed = true;
}

/* A progress line of the handshake (silenced inside `reconnect N`). */
static void fes_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fes_say(const char *fmt, ...)
{
    va_list ap;

    if (fes_quiet)
        return;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fflush(stdout);
}

static void fes_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fes_log(const char *fmt, ...)
{
    va_list ap;

    if (!fes_verbose)
        return;
    fputs("fe-script: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static int64_t fes_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Whole-string decimal, at most max. */
static bool fes_parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;

    if (!s || !*s)
        return false;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > (UINT64_MAX - 9) / 10)
            return false;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    if (v > max)
        return false;
    *out = v;
    return true;
}

static bool fes_parse_u32(const char *s, uint32_t *out)
{
    uint64_t v;

    if (!fes_parse_u64(s, UINT32_MAX, &v))
        return false;
    *out = (uint32_t)v;
    return true;
}

/* "MIN:MAX" or a single value N (= N:N). */
static bool fes_parse_range(const char *s, uint32_t *min, uint32_t *max)
{
    char tmp[64];
    char *colon;

    if (strlen(s) >= sizeof(tmp))
        return false;
    strcpy(tmp, s);
    colon = strchr(tmp, ':');
    if (!colon)
        return fes_parse_u32(tmp, min) && fes_parse_u32(tmp, max);
    *colon = '\0';
    return fes_parse_u32(tmp, min) && fes_parse_u32(colon + 1, max);
}

static const char *const fes_format_names[] = {
    "s8", "u8", "s16_le", "s16_be", "u16_le", "u16_be", "s24_le", "s24_be", "u24_le", "u24_be",
    "s32_le", "s32_be", "u32_le", "u32_be", "float_le", "float_be", "float64_le", "float64_be",
    "iec958_subframe_le", "iec958_subframe_be", "mu_law", "a_law", "ima_adpcm", "mpeg", "gsm",
};
#define FES_NFORMATS (sizeof(fes_format_names) / sizeof(fes_format_names[0]))

/* sndif's names, and xl's for the float formats. */
static int fes_format_from_name(const char *name)
{
    static const struct { const char *alias; int format; } aliases[] = {
        { "f32_le", XENSND_PCM_FORMAT_F32_LE }, { "f32_be", XENSND_PCM_FORMAT_F32_BE },
        { "f64_le", XENSND_PCM_FORMAT_F64_LE }, { "f64_be", XENSND_PCM_FORMAT_F64_BE },
    };

    for (size_t i = 0; i < FES_NFORMATS; i++)
        if (!strcasecmp(name, fes_format_names[i]))
            return (int)i;
    for (size_t i = 0; i < sizeof(aliases) / sizeof(aliases[0]); i++)
        if (!strcasecmp(name, aliases[i].alias))
            return aliases[i].format;
    return -1;
}

static void fes_print_formats(uint64_t mask)
{
    bool first = true;

    for (unsigned i = 0; i < 64; i++) {
        if (!(mask & ((uint64_t)1 << i)))
            continue;
        if (i < FES_NFORMATS)
            printf("%s%s", first ? "" : ",", fes_format_names[i]);
        else
            printf("%sbit%u", first ? "" : ",", i);
        first = false;
    }
    if (first)
        printf("none");
}

/* The test pattern: byte k of a playback stream (not periodic over any small span). */
static uint8_t fes_pattern_byte(uint64_t k)
{
    uint32_t x = (uint32_t)k * 0x9E3779B1u;

    return (uint8_t)((x >> 24) ^ (uint8_t)(k >> 16) ^ (uint8_t)(k >> 40));
}

static const char *fes_status_name(int32_t status)
{
    const char *name;

    if (status == 0)
        return "OK";
    if (status > 0 || status < -4095)
        return "not-an-errno";
    name = strerrorname_np(-status);
    return name ? name : "unknown-errno";
}

/* ---------- xenstore ---------- */

static char *fes_xs_read(struct fes_card *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *fes_xs_read(struct fes_card *c, const char *fmt, ...)
{
    char path[256];
    unsigned len;
    char *value;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(path, sizeof(path), fmt, ap);
    va_end(ap);
    value = xs_read(c->xs, XBT_NULL, path, &len);
    if (value && strlen(value) != len) {   /* an embedded NUL: not a value we can trust */
        free(value);
        errno = EINVAL;
        return NULL;
    }
    return value;
}

static bool fes_xs_read_u32(struct fes_card *c, const char *path, uint32_t max, uint32_t *out)
{
    char *value = fes_xs_read(c, "%s", path);
    uint64_t v;
    bool ok = value && fes_parse_u64(value, max, &v);

    free(value);
    if (ok)
        *out = (uint32_t)v;
    return ok;
}

static bool fes_xs_printf(struct fes_card *c, xs_transaction_t t, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static bool fes_xs_printf(struct fes_card *c, xs_transaction_t t, const char *path, const char *fmt, ...)
{
    char value[64];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(value, sizeof(value), fmt, ap);
    va_end(ap);
    return xs_write(c->xs, t, path, value, (unsigned)strlen(value));
}

static bool fes_set_fe_state(struct fes_card *c, int state)
{
    char path[192];

    snprintf(path, sizeof(path), "%s/state", c->fe_path);
    if (!fes_xs_printf(c, XBT_NULL, path, "%d", state)) {
        fes_error("cannot write %s: %s", path, strerror(errno));
        return false;
    }
    fes_log("frontend state %d", state);
    return true;
}

/* The backend's state, 0..8; anything else counts as Closed (checklist item 14). */
static int fes_be_state(struct fes_card *c)
{
    char path[192];
    uint32_t state;

    snprintf(path, sizeof(path), "%s/state", c->be_path);
    if (!fes_xs_read_u32(c, path, 8, &state))
        return FES_XENBUS_CLOSED;
    return (int)state;
}

static void fes_note_be_state(struct fes_card *c, int state)
{
    if (state != c->last_be_state) {
        fes_say("be-state %d\n", state);
        c->last_be_state = state;
    }
}

/* Waits until the backend state is in want_mask (bit per state), printing each state seen.
 * Returns the state, or -1 after timeout_ms. The watch fires on registration and whenever
 * the node changes; the state is re-read every time, and at least every 100 ms. */
static int fes_wait_be_state(struct fes_card *c, unsigned want_mask, int timeout_ms)
{
    int64_t deadline = fes_now_ms() + timeout_ms;
    struct pollfd pfd = { .fd = xs_fileno(c->xs), .events = POLLIN };

    for (;;) {
        int state = fes_be_state(c);
        int64_t left;
        char **vec;

        fes_note_be_state(c, state);
        if (want_mask & (1u << state))
            return state;
        left = deadline - fes_now_ms();
        if (left <= 0)
            return -1;
        if (poll(&pfd, 1, left < 100 ? (int)left : 100) < 0 && errno != EINTR)
            return -1;
        while ((vec = xs_check_watch(c->xs)) != NULL)
            free(vec);
    }
}

/* ---------- event channels ---------- */

/* Takes the notifications that arrived (a bounded batch) and unmasks their ports; returns
 * false on a broken event-channel device. */
static bool fes_take_notifications(struct fes_card *c)
{
    struct pollfd pfd = { .fd = xenevtchn_fd(c->xce), .events = POLLIN };

    for (int i = 0; i < FES_NOTIFY_BATCH; i++) {
        xenevtchn_port_or_error_t port;

        if (poll(&pfd, 1, 0) <= 0 || !(pfd.revents & POLLIN))
            return true;
        port = xenevtchn_pending(c->xce);
        if (port < 0) {
            fes_error("xenevtchn_pending: %s", strerror(errno));
            return false;
        }
        if (xenevtchn_unmask(c->xce, (evtchn_port_t)port) < 0) {
            fes_error("xenevtchn_unmask %d: %s", port, strerror(errno));
            return false;
        }
    }
    return true;
}

/* ---------- responses and events ---------- */

static void fes_take_response(struct fes_stream *st, const struct xensnd_resp *rsp)
{
    if (st->in_flight && rsp->id == st->wait_id && rsp->operation == st->wait_op) {
        st->answer = *rsp;
        st->answered = true;
        st->in_flight = false;
        return;
    }
    printf("unexpected-response stream=%s id=%u op=%u status=%d\n",
           st->unique_id, rsp->id, rsp->operation, rsp->status);
    fflush(stdout);
}

/* Copies out every response the backend published; stops trusting the ring on a violation. */
static void fes_drain_responses(struct fes_stream *st)
{
    int more;

    if (!st->ring_page || st->broken)
        return;
    do {
        RING_IDX rp = *(volatile RING_IDX *)&st->ring.sring->rsp_prod;

        rmb();  /* read the responses only after rsp_prod */
        if (RING_RESPONSE_PROD_OVERFLOW(&st->ring, rp) ||
            rp - st->ring.rsp_cons > st->ring.req_prod_pvt - st->ring.rsp_cons) {
            fes_error("backend rsp_prod %u on stream %s: more responses than requests (cons %u, prod %u)",
                      rp, st->unique_id, st->ring.rsp_cons, st->ring.req_prod_pvt);
            st->broken = true;
            return;
        }
        for (RING_IDX i = st->ring.rsp_cons; i != rp; i++) {
            struct xensnd_resp rsp;

            RING_COPY_RESPONSE(&st->ring, i, &rsp);
            fes_take_response(st, &rsp);
        }
        st->ring.rsp_cons = rp;
        RING_FINAL_CHECK_FOR_RESPONSES(&st->ring, more);
    } while (more);
}

static void fes_take_position(struct fes_stream *st, uint64_t pos)
{
    /* Playback: never beyond what was written. Capture: never more than read + one buffer. */
    uint64_t limit = st->type == 'p' ? st->queued + st->writing : st->taken + st->buffer_sz;

    if (pos > limit)
        st->pos_beyond++;
    if (st->pos_seen && pos < st->pos)
        st->pos_backwards++;
    st->pos = pos;
    st->pos_seen = true;
    st->nevents++;
    fes_log("stream %s position %" PRIu64, st->unique_id, pos);
}

/* Consumes the event page with a private consumer index (checklist items 1, 3, 7, 9). */
static void fes_drain_events(struct fes_stream *st)
{
    struct xensnd_event_page *page = st->evt_page;
    uint32_t prod;

    if (!page)
        return;
    prod = *(volatile uint32_t *)&page->in_prod;
    rmb();  /* read the events only after in_prod */
    if (prod - st->evt_cons > XENSND_IN_RING_LEN) {
        fes_error("backend in_prod %u on stream %s is %u events ahead (at most %zu)",
                  prod, st->unique_id, prod - st->evt_cons, (size_t)XENSND_IN_RING_LEN);
        st->evt_cons = prod;
    }
    for (; st->evt_cons != prod; st->evt_cons++) {
        struct xensnd_evt ev = *(volatile struct xensnd_evt *)&XENSND_IN_RING_REF(page, st->evt_cons);

        if (ev.type == XENSND_EVT_CUR_POS)
            fes_take_position(st, ev.op.cur_pos.position);
    }
    mb();   /* the events are copied before the backend may reuse their slots */
    *(volatile uint32_t *)&page->in_cons = st->evt_cons;
}

static void fes_service(struct fes_card *c)
{
    for (unsigned i = 0; i < c->nstreams; i++) {
        fes_drain_responses(&c->streams[i]);
        fes_drain_events(&c->streams[i]);
    }
}

/* Waits for notifications until done() holds, at most timeout_ms. Everything is drained before
 * each check, so a notification that came before the wait is not lost. */
static bool fes_wait_until(struct fes_card *c, bool (*done)(struct fes_stream *, const void *),
                           struct fes_stream *st, const void *arg, int timeout_ms)
{
    int64_t deadline = fes_now_ms() + timeout_ms;
    struct pollfd pfd = { .fd = xenevtchn_fd(c->xce), .events = POLLIN };

    for (;;) {
        int64_t left;

        fes_service(c);
        if (done(st, arg))
            return true;
        left = deadline - fes_now_ms();
        if (left <= 0)
            return false;
        if (poll(&pfd, 1, (int)left) < 0 && errno != EINTR) {
            fes_error("poll on the event channel: %s", strerror(errno));
            return false;
        }
        if (!fes_take_notifications(c))
            return false;
    }
}

static bool fes_is_answered(struct fes_stream *st, const void *arg)
{
    (void)arg;
    return st->answered || st->broken;
}

/* Sends req (its id and operation as given) and waits for the matching answer.
 * 0: answered (in *rsp); -ETIMEDOUT: no answer in time; -EPIPE: the ring cannot be used. */
static int fes_transact(struct fes_card *c, struct fes_stream *st, const struct xensnd_req *req,
                        struct xensnd_resp *rsp)
{
    int notify;

    if (!st->ring_page || st->broken)
        return -EPIPE;
    fes_drain_responses(st);
    if (RING_FULL(&st->ring)) {
        fes_error("request ring of stream %s is full: the backend consumes nothing", st->unique_id);
        return -EPIPE;
    }
    *RING_GET_REQUEST(&st->ring, st->ring.req_prod_pvt) = *req;
    st->ring.req_prod_pvt++;
    st->in_flight = true;
    st->answered = false;
    st->wait_id = req->id;
    st->wait_op = req->operation;
    RING_PUSH_REQUESTS_AND_CHECK_NOTIFY(&st->ring, notify);
    if (notify && xenevtchn_notify(c->xce, st->ring_port) < 0) {
        fes_error("xenevtchn_notify: %s", strerror(errno));
        return -EPIPE;
    }
    if (!fes_wait_until(c, fes_is_answered, st, NULL, c->timeout_ms))
        return -ETIMEDOUT;
    if (!st->answered)
        return -EPIPE;
    *rsp = st->answer;
    if (rsp->status > 0 || rsp->status < -4095)
        fes_error("backend answered op %u with status %d: not 0 or -XEN_E*", rsp->operation, rsp->status);
    return 0;
}

/* Sends a request with the next id. Prints "<what> timeout" when unanswered. */
static int fes_request(struct fes_card *c, struct xensnd_req *req, struct xensnd_resp *rsp, const char *what)
{
    struct fes_stream *st = c->cur;
    int rc;

    req->id = st->next_id++;
    rc = fes_transact(c, st, req, rsp);
    if (rc == -ETIMEDOUT) {
        printf("%s timeout\n", what);
        fes_failed = true;
    } else if (rc < 0) {
        printf("%s failed: stream %s unusable\n", what, st->unique_id);
        fes_failed = true;
    }
    return rc;
}

static void fes_print_status(const char *what, int32_t status)
{
    printf("%s status=%d %s\n", what, status, fes_status_name(status));
}

/* ---------- buffers ---------- */

static void fes_buffer_free(struct fes_card *c, struct fes_buffer *b)
{
    /* After unsharing, the backend may still map the pages: they live until it lets go. */
    if (b->data)
        xengntshr_unshare(c->gs, b->data, b->data_pages);
    if (b->dir)
        xengntshr_unshare(c->gs, b->dir, b->dir_pages);
    free(b->data_refs);
    free(b->dir_refs);
    memset(b, 0, sizeof(*b));
}

enum fes_dir_kind { FES_DIR_GOOD, FES_DIR_LOOP, FES_DIR_ABSURD };

/* Fresh pages for every OPEN (checklist item 18), the directory chain filled as sndif.h says.
 * FES_DIR_LOOP makes the last directory page point back to the first. */
static bool fes_buffer_alloc(struct fes_card *c, struct fes_buffer *b, uint32_t bytes, enum fes_dir_kind kind)
{
    memset(b, 0, sizeof(*b));
    b->data_pages = bytes ? (bytes + FES_PAGE_SIZE - 1) / FES_PAGE_SIZE : 1;
    b->dir_pages = (uint32_t)((b->data_pages + FES_DIR_REFS - 1) / FES_DIR_REFS);
    b->data_refs = calloc(b->data_pages, sizeof(uint32_t));
    b->dir_refs = calloc(b->dir_pages, sizeof(uint32_t));
    if (!b->data_refs || !b->dir_refs)
        goto fail;
    b->data = xengntshr_share_pages(c->gs, c->be_domid, (int)b->data_pages, b->data_refs, 1);
    if (!b->data) {
        fes_error("cannot share %u buffer pages: %s", b->data_pages, strerror(errno));
        goto fail;
    }
    b->dir = xengntshr_share_pages(c->gs, c->be_domid, (int)b->dir_pages, b->dir_refs, 1);
    if (!b->dir) {
        fes_error("cannot share %u directory pages: %s", b->dir_pages, strerror(errno));
        goto fail;
    }
    for (uint32_t d = 0; d < b->dir_pages; d++) {
        struct xensnd_page_directory *page = (void *)((char *)b->dir + (size_t)d * FES_PAGE_SIZE);
        uint32_t first = d * (uint32_t)FES_DIR_REFS;

        page->gref_dir_next_page = d + 1 < b->dir_pages ? b->dir_refs[d + 1] : 0;
        for (uint32_t i = 0; i < FES_DIR_REFS && first + i < b->data_pages; i++)
            page->gref[i] = b->data_refs[first + i];
    }
    if (kind == FES_DIR_LOOP) {
        struct xensnd_page_directory *last =
            (void *)((char *)b->dir + (size_t)(b->dir_pages - 1) * FES_PAGE_SIZE);
        last->gref_dir_next_page = b->dir_refs[0];
    }
    return true;
fail:
    fes_buffer_free(c, b);
    return false;
}

/* ---------- connection ---------- */

static void fes_stream_release(struct fes_card *c, struct fes_stream *st)
{
    fes_buffer_free(c, &st->buf);
    st->open = false;
    if (st->ring_page)
        xengntshr_unshare(c->gs, st->ring_page, 1);
    if (st->evt_page)
        xengntshr_unshare(c->gs, st->evt_page, 1);
    if (st->ring_port)
        xenevtchn_unbind(c->xce, st->ring_port);
    if (st->evt_port)
        xenevtchn_unbind(c->xce, st->evt_port);
    st->ring_page = st->evt_page = NULL;
    st->ring_port = st->evt_port = 0;
}

static void fes_release_all(struct fes_card *c)
{
    for (unsigned i = 0; i < c->nstreams; i++)
        fes_stream_release(c, &c->streams[i]);
    c->nstreams = 0;
    c->cur = NULL;
    c->connected = false;
}

/* Own id, backend id and paths, strictly parsed (the guest itself could have rewritten them). */
static bool fes_read_paths(struct fes_card *c)
{
    char path[192], prefix[96];
    char *be;

    if (!fes_xs_read_u32(c, "domid", 0x7fef, &c->own_domid)) {
        fes_error("cannot read this domain's id (relative key `domid`): is this a guest home made by create-domain?");
        return false;
    }
    snprintf(c->fe_path, sizeof(c->fe_path), "/local/domain/%u/device/vsnd/%u", c->own_domid, c->devid);
    snprintf(path, sizeof(path), "%s/backend-id", c->fe_path);
    if (!fes_xs_read_u32(c, path, 0x7fef, &c->be_domid)) {
        fes_error("no valid %s: is there a card %u (test/vsnd-config)?", path, c->devid);
        return false;
    }
    be = fes_xs_read(c, "%s/backend", c->fe_path);
    snprintf(prefix, sizeof(prefix), "/local/domain/%u/backend/vsnd/%u/", c->be_domid, c->own_domid);
    if (!be || strncmp(be, prefix, strlen(prefix)) || strlen(be) >= sizeof(c->be_path)) {
        fes_error("%s/backend is \"%s\", not under %s", c->fe_path, be ? be : "(missing)", prefix);
        free(be);
        return false;
    }
    strcpy(c->be_path, be);
    free(be);
    return true;
}

static bool fes_node_exists(struct fes_card *c, const char *path)
{
    char *value = fes_xs_read(c, "%s", path);

    free(value);
    return value != NULL;
}

/* The card's streams, enumerated up to the first gap as xl wrote them. */
static bool fes_read_streams(struct fes_card *c)
{
    c->nstreams = 0;
    for (unsigned p = 0; p < FES_MAX_PCMS; p++) {
        char path[256];

        snprintf(path, sizeof(path), "%s/%u", c->fe_path, p);
        if (!fes_node_exists(c, path))
            break;
        for (unsigned s = 0; s < FES_MAX_STREAMS; s++) {
            struct fes_stream *st = &c->streams[c->nstreams];
            char *type, *uid;

            snprintf(path, sizeof(path), "%s/%u/%u", c->fe_path, p, s);
            if (!fes_node_exists(c, path))
                break;
            memset(st, 0, sizeof(*st));
            st->pcm = p;
            st->index = s;
            type = fes_xs_read(c, "%s/type", path);
            if (!type || (strcmp(type, "p") && strcmp(type, "c"))) {
                fes_error("%s/type is \"%s\", not p or c", path, type ? type : "(missing)");
                free(type);
                return false;
            }
            st->type = type[0];
            free(type);
            uid = fes_xs_read(c, "%s/unique-id", path);
            snprintf(st->unique_id, sizeof(st->unique_id), "%s", uid ? uid : "");
            if (!uid)
                snprintf(st->unique_id, sizeof(st->unique_id), "%u/%u", p, s);
            free(uid);
            c->nstreams++;
        }
    }
    if (c->nstreams == 0) {
        fes_error("card %s has no stream", c->fe_path);
        return false;
    }
    return true;
}

/* A ring page, an event page and two unbound ports for the backend domain. */
static bool fes_stream_setup(struct fes_card *c, struct fes_stream *st)
{
    xenevtchn_port_or_error_t port;

    st->ring_page = xengntshr_share_pages(c->gs, c->be_domid, 1, &st->ring_ref, 1);
    st->evt_page = xengntshr_share_pages(c->gs, c->be_domid, 1, &st->evt_ref, 1);
    if (!st->ring_page || !st->evt_page) {
        fes_error("cannot share ring/event pages with domain %u: %s", c->be_domid, strerror(errno));
        return false;
    }
    XEN_FRONT_RING_INIT(&st->ring, (xen_sndif_sring_t *)st->ring_page, FES_PAGE_SIZE);
    port = xenevtchn_bind_unbound_port(c->xce, c->be_domid);
    if (port < 0) {
        fes_error("cannot allocate an event channel for domain %u: %s", c->be_domid, strerror(errno));
        return false;
    }
    st->ring_port = (evtchn_port_t)port;
    port = xenevtchn_bind_unbound_port(c->xce, c->be_domid);
    if (port < 0) {
        fes_error("cannot allocate an event channel for domain %u: %s", c->be_domid, strerror(errno));
        return false;
    }
    st->evt_port = (evtchn_port_t)port;
    xenevtchn_unmask(c->xce, st->ring_port);
    xenevtchn_unmask(c->xce, st->evt_port);
    st->next_id = 1;
    return true;
}

/* Every stream's four keys and `version`, in one transaction (redone on EAGAIN). */
static bool fes_publish(struct fes_card *c, const char *omit)
{
    for (int attempt = 0; attempt < FES_TXN_RETRIES; attempt++) {
        xs_transaction_t t = xs_transaction_start(c->xs);
        bool ok = t != XBT_NULL;
        char path[256];

        for (unsigned i = 0; ok && i < c->nstreams; i++) {
            struct fes_stream *st = &c->streams[i];
            if (omit && !strcmp(omit, st->unique_id))
                continue;
            snprintf(path, sizeof(path), "%s/%u/%u/" XENSND_FIELD_RING_REF, c->fe_path, st->pcm, st->index);
            ok = ok && fes_xs_printf(c, t, path, "%u", st->ring_ref);
            snprintf(path, sizeof(path), "%s/%u/%u/" XENSND_FIELD_EVT_CHNL, c->fe_path, st->pcm, st->index);
            ok = ok && fes_xs_printf(c, t, path, "%u", st->ring_port);
            snprintf(path, sizeof(path), "%s/%u/%u/" XENSND_FIELD_EVT_RING_REF, c->fe_path, st->pcm, st->index);
            ok = ok && fes_xs_printf(c, t, path, "%u", st->evt_ref);
            snprintf(path, sizeof(path), "%s/%u/%u/" XENSND_FIELD_EVT_EVT_CHNL, c->fe_path, st->pcm, st->index);
            ok = ok && fes_xs_printf(c, t, path, "%u", st->evt_port);
        }
        snprintf(path, sizeof(path), "%s/" XENSND_FIELD_FE_VERSION, c->fe_path);
        ok = ok && fes_xs_printf(c, t, path, "%d", XENSND_PROTOCOL_VERSION);
        if (t == XBT_NULL) {
            fes_error("xs_transaction_start: %s", strerror(errno));
            return false;
        }
        if (!ok) {
            fes_error("writing the transport keys: %s", strerror(errno));
            xs_transaction_end(c->xs, t, true);
            return false;
        }
        if (xs_transaction_end(c->xs, t, false))
            return true;
        if (errno != EAGAIN) {
            fes_error("xs_transaction_end: %s", strerror(errno));
            return false;
        }
    }
    fes_error("the transport-key transaction conflicted %d times", FES_TXN_RETRIES);
    return false;
}

static bool fes_watch_backend(struct fes_card *c)
{
    char path[192];

    if (c->watching)
        return true;
    snprintf(path, sizeof(path), "%s/state", c->be_path);
    if (!xs_watch(c->xs, path, "be-state")) {
        fes_error("cannot watch %s: %s", path, strerror(errno));
        return false;
    }
    c->watching = true;
    return true;
}

static void fes_print_versions(struct fes_card *c)
{
    char *versions = fes_xs_read(c, "%s/" XENSND_FIELD_BE_VERSIONS, c->be_path);

    fes_say("be-versions %s\n", versions ? versions : "(none)");
    free(versions);
}

/* connect [omit=UNIQUE-ID]: the frontend's half of the handshake. */
static bool fes_connect(struct fes_card *c, const char *omit)
{
    int state;

    if (c->connected) {
        fes_error("connect: already connected");
        return false;
    }
    if (!fes_read_paths(c) || !fes_watch_backend(c) || !fes_set_fe_state(c, FES_XENBUS_INITIALISING))
        return false;
    state = fes_wait_be_state(c, 1u << FES_XENBUS_INITWAIT, c->handshake_timeout_ms);
    if (state < 0) {
        fes_error("connect: the backend did not reach InitWait within %d ms (state %d)",
                  c->handshake_timeout_ms, fes_be_state(c));
        return false;
    }
    if (!fes_read_streams(c))
        return false;
    for (unsigned i = 0; i < c->nstreams; i++) {
        if (!fes_stream_setup(c, &c->streams[i])) {
            fes_release_all(c);
            return false;
        }
    }
    if (!fes_publish(c, omit) || !fes_set_fe_state(c, FES_XENBUS_INITIALISED)) {
        fes_release_all(c);
        return false;
    }
    /* Closing on the way is not the end: a refusing backend ends in Closed. */
    state = fes_wait_be_state(c, 1u << FES_XENBUS_CONNECTED | 1u << FES_XENBUS_CLOSED, c->handshake_timeout_ms);
    if (state != FES_XENBUS_CONNECTED) {
        printf("connect failed: backend state %d\n", state < 0 ? fes_be_state(c) : state);
        fes_failed = true;
        fes_release_all(c);
        return false;
    }
    if (!fes_set_fe_state(c, FES_XENBUS_CONNECTED)) {
        fes_release_all(c);
        return false;
    }
    c->connected = true;
    c->cur = &c->streams[0];
    fes_print_versions(c);
    fes_say("connected streams=%u\n", c->nstreams);
    return true;
}

/* disconnect: Closing, wait for the backend's InitWait, free everything, Closed (as Linux). */
static bool fes_disconnect(struct fes_card *c)
{
    int state;

    if (!c->be_path[0] && !fes_read_paths(c))
        return false;
    if (!fes_watch_backend(c) || !fes_set_fe_state(c, FES_XENBUS_CLOSING))
        return false;
    state = fes_wait_be_state(c, 1u << FES_XENBUS_INITWAIT, c->handshake_timeout_ms);
    fes_release_all(c);
    if (!fes_set_fe_state(c, FES_XENBUS_CLOSED))
        return false;
    if (state < 0) {
        fes_error("disconnect: the backend did not return to InitWait within %d ms (state %d)",
                  c->handshake_timeout_ms, fes_be_state(c));
        return false;
    }
    fes_say("disconnected\n");
    return true;
}

/* ---------- command arguments ---------- */

#define FES_MAX_ARGS 32

struct fes_args {
    int n;
    char *v[FES_MAX_ARGS];
};

/* key=value lookup among the command's arguments. */
static const char *fes_opt(const struct fes_args *a, const char *key)
{
    size_t len = strlen(key);

    for (int i = 1; i < a->n; i++)
        if (!strncmp(a->v[i], key, len) && a->v[i][len] == '=')
            return a->v[i] + len + 1;
    return NULL;
}

static bool fes_has_flag(const struct fes_args *a, const char *flag)
{
    for (int i = 1; i < a->n; i++)
        if (!strcmp(a->v[i], flag))
            return true;
    return false;
}

static bool fes_opt_u32(const struct fes_args *a, const char *key, uint32_t def, uint32_t *out)
{
    const char *v = fes_opt(a, key);

    if (!v) {
        *out = def;
        return true;
    }
    if (!fes_parse_u32(v, out)) {
        fes_error("%s: bad %s=%s", a->v[0], key, v);
        return false;
    }
    return true;
}

static bool fes_need_stream(struct fes_card *c, const char *what)
{
    if (!c->connected || !c->cur) {
        fes_error("%s: not connected", what);
        return false;
    }
    return true;
}

static bool fes_need_buffer(struct fes_card *c, const char *what)
{
    if (!fes_need_stream(c, what))
        return false;
    if (!c->cur->buf.data) {
        fes_error("%s: stream %s has no OPENed buffer", what, c->cur->unique_id);
        return false;
    }
    return true;
}

/* ---------- commands ---------- */

static void fes_cmd_use(struct fes_card *c, const struct fes_args *a)
{
    if (!fes_need_stream(c, "use"))
        return;
    if (a->n != 2) {
        fes_error("use UNIQUE-ID|PCM/STREAM");
        return;
    }
    for (unsigned i = 0; i < c->nstreams; i++) {
        struct fes_stream *st = &c->streams[i];
        char pos[32];

        snprintf(pos, sizeof(pos), "%u/%u", st->pcm, st->index);
        if (!strcmp(a->v[1], st->unique_id) || !strcmp(a->v[1], pos)) {
            c->cur = st;
            printf("stream %s %s %c\n", st->unique_id, pos, st->type);
            return;
        }
    }
    fes_error("use: no stream %s", a->v[1]);
}

static bool fes_query_formats(const char *list, uint64_t *mask)
{
    char tmp[512];

    if (strlen(list) >= sizeof(tmp))
        return false;
    strcpy(tmp, list);
    *mask = 0;
    for (char *save = NULL, *name = strtok_r(tmp, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
        int f = fes_format_from_name(name);

        if (f < 0)
            return false;
        *mask |= (uint64_t)1 << f;
    }
    return *mask != 0;
}

/* query [fmt=a,b] [rate=MIN:MAX] [ch=MIN:MAX] [buffer=MIN:MAX] [period=MIN:MAX] (frames) */
static void fes_cmd_query(struct fes_card *c, const struct fes_args *a)
{
    struct xensnd_req req = { .operation = XENSND_OP_HW_PARAM_QUERY };
    struct xensnd_query_hw_param *q = &req.op.hw_param;
    struct xensnd_resp rsp;
    const char *v;
    static const struct { const char *key; size_t off; } ranges[] = {
        { "rate", offsetof(struct xensnd_query_hw_param, rates) },
        { "ch", offsetof(struct xensnd_query_hw_param, channels) },
        { "buffer", offsetof(struct xensnd_query_hw_param, buffer) },
        { "period", offsetof(struct xensnd_query_hw_param, period) },
    };

    if (!fes_need_stream(c, "query"))
        return;
    q->formats = ((uint64_t)1 << FES_NFORMATS) - 1;
    q->rates.min = 1;
    q->rates.max = UINT32_MAX;
    q->channels.min = 1;
    q->channels.max = 255;
    q->buffer.min = q->period.min = 1;
    q->buffer.max = q->period.max = UINT32_MAX;
    v = fes_opt(a, "fmt");
    if (v && !fes_query_formats(v, &q->formats)) {
        fes_error("query: bad fmt=%s", v);
        return;
    }
    for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++) {
        uint32_t *pair = (uint32_t *)((char *)q + ranges[i].off);

        v = fes_opt(a, ranges[i].key);
        if (v && !fes_parse_range(v, &pair[0], &pair[1])) {
            fes_error("query: bad %s=%s", ranges[i].key, v);
            return;
        }
    }
    if (fes_request(c, &req, &rsp, "query") < 0)
        return;
    if (rsp.status != 0) {
        fes_print_status("query", rsp.status);
        return;
    }
    q = &rsp.resp.hw_param;
    printf("query status=0 formats=");
    fes_print_formats(q->formats);
    printf(" rates=%u:%u channels=%u:%u buffer=%u:%u period=%u:%u\n", q->rates.min, q->rates.max,
           q->channels.min, q->channels.max, q->buffer.min, q->buffer.max, q->period.min, q->period.max);
}

static void fes_reset_counters(struct fes_stream *st)
{
    st->queued = st->taken = 0;
    st->pos = 0;
    st->pos_seen = false;
}

/* open fmt=F rate=R ch=C buffer=OCTETS [period=OCTETS] [dir=good|loop|absurd] */
static void fes_cmd_open(struct fes_card *c, const struct fes_args *a)
{
    struct xensnd_req req = { .operation = XENSND_OP_OPEN };
    struct xensnd_resp rsp;
    struct fes_stream *st;
    struct fes_buffer fresh;
    const char *fmt = fes_opt(a, "fmt"), *dir = fes_opt(a, "dir");
    enum fes_dir_kind kind = FES_DIR_GOOD;
    uint32_t rate, ch, buffer, period;
    int format;

    if (!fes_need_stream(c, "open"))
        return;
    st = c->cur;
    format = fmt ? fes_format_from_name(fmt) : -1;
    if (format < 0 || !fes_opt_u32(a, "rate", 48000, &rate) || !fes_opt_u32(a, "ch", 2, &ch) ||
        !fes_opt_u32(a, "buffer", 16384, &buffer) || !fes_opt_u32(a, "period", 0, &period) ||
        ch > 255 || buffer > FES_MAX_BUFFER) {
        fes_error("open fmt=F rate=R ch=C buffer=OCTETS [period=OCTETS] [dir=good|loop|absurd]");
        return;
    }
    if (dir && !strcmp(dir, "loop"))
        kind = FES_DIR_LOOP;
    else if (dir && !strcmp(dir, "absurd"))
        kind = FES_DIR_ABSURD;
    if (!fes_buffer_alloc(c, &fresh, buffer, kind))
        return;
    req.op.open.pcm_rate = rate;
    req.op.open.pcm_format = (uint8_t)format;
    req.op.open.pcm_channels = (uint8_t)ch;
    req.op.open.buffer_sz = buffer;
    req.op.open.period_sz = period;
    req.op.open.gref_directory = kind == FES_DIR_ABSURD ? 0x7ffffff0u : fresh.dir_refs[0];
    if (fes_request(c, &req, &rsp, "open") < 0) {
        fes_buffer_free(c, &fresh);
        return;
    }
    if (rsp.status != 0) {
        fes_print_status("open", rsp.status);
        fes_buffer_free(c, &fresh);
        return;
    }
    fes_buffer_free(c, &st->buf);
    st->buf = fresh;
    st->open = true;
    st->buffer_sz = buffer;
    st->period_sz = period;
    st->running = false;
    st->wr_off = st->rd_off = 0;
    fes_reset_counters(st);
    fes_print_status("open", rsp.status);
}

static void fes_cmd_close(struct fes_card *c, const struct fes_args *a)
{
    struct xensnd_req req = { .operation = XENSND_OP_CLOSE };
    struct xensnd_resp rsp;

    (void)a;
    if (!fes_need_stream(c, "close"))
        return;
    if (fes_request(c, &req, &rsp, "close") < 0)
        return;
    fes_print_status("close", rsp.status);
    if (rsp.status == 0) {
        fes_buffer_free(c, &c->cur->buf);
        c->cur->open = false;
        c->cur->running = false;
    }
}

static void fes_cmd_trigger(struct fes_card *c, const struct fes_args *a)
{
    static const char *const names[] = { "start", "pause", "stop", "resume" };
    struct xensnd_req req = { .operation = XENSND_OP_TRIGGER };
    struct xensnd_resp rsp;
    char what[32];
    int type = -1;

    if (!fes_need_stream(c, "trigger"))
        return;
    for (int i = 0; a->n == 2 && i < 4; i++)
        if (!strcmp(a->v[1], names[i]))
            type = i;
    if (type < 0) {
        fes_error("trigger start|pause|stop|resume");
        return;
    }
    req.op.trigger.type = (uint8_t)type;
    snprintf(what, sizeof(what), "trigger %s", names[type]);
    if (type == XENSND_OP_TRIGGER_START) {
        /* A START counts from 0, and its first positions may come before its answer. */
        c->cur->pos = 0;
        c->cur->pos_seen = false;
    }
    if (fes_request(c, &req, &rsp, what) < 0)
        return;
    fes_print_status(what, rsp.status);
    if (rsp.status != 0)
        return;
    if (type == XENSND_OP_TRIGGER_STOP)
        fes_reset_counters(c->cur);     /* the backend drops what was queued */
    c->cur->running = type == XENSND_OP_TRIGGER_START || type == XENSND_OP_TRIGGER_RESUME;
}

struct fes_room { uint32_t len; };

static bool fes_has_room(struct fes_stream *st, const void *arg)
{
    const struct fes_room *r = arg;

    return st->broken || st->queued - (st->pos < st->queued ? st->pos : st->queued) + r->len <= st->buffer_sz;
}

static bool fes_append_file(FILE *f, const void *data, size_t len, const char *path)
{
    if (f && fwrite(data, 1, len, f) != len) {
        fes_error("cannot write %s: %s", path, strerror(errno));
        return false;
    }
    return true;
}

/* write-pattern N [chunk=C] [save=FILE]: N pattern octets in WRITEs at the successive buffer
 * offsets (wrapping); while running, waits (bounded) for room as positions come in. */
static void fes_cmd_write_pattern(struct fes_card *c, const struct fes_args *a)
{
    struct fes_stream *st = c->cur;
    const char *save = fes_opt(a, "save");
    uint32_t total, chunk, done = 0;
    int32_t status = 0;
    FILE *f = NULL;
    int rc;

    if (!fes_need_buffer(c, "write-pattern"))
        return;
    st = c->cur;
    if (a->n < 2 || !fes_parse_u32(a->v[1], &total) ||
        !fes_opt_u32(a, "chunk", st->period_sz ? st->period_sz : st->buffer_sz / 4, &chunk) || !chunk) {
        fes_error("write-pattern N [chunk=OCTETS] [save=FILE]");
        return;
    }
    if (save && !(f = fopen(save, "ab"))) {
        fes_error("cannot open %s: %s", save, strerror(errno));
        return;
    }
    while (done < total) {
        struct xensnd_req req = { .operation = XENSND_OP_WRITE };
        struct xensnd_resp rsp;
        uint32_t off = st->wr_off, len = total - done;
        struct fes_room room;
        uint8_t *dst = (uint8_t *)st->buf.data + off;

        if (len > chunk)
            len = chunk;
        if (len > st->buffer_sz - off)
            len = st->buffer_sz - off;
        room.len = len;
        if (st->running && !fes_wait_until(c, fes_has_room, st, &room, c->timeout_ms)) {
            printf("write-pattern timeout waiting for room: queued=%" PRIu64 " pos=%" PRIu64 "\n",
                   st->queued, st->pos);
            fes_failed = true;
            break;
        }
        for (uint32_t i = 0; i < len; i++)
            dst[i] = fes_pattern_byte(st->pattern_at + i);
        req.op.rw.offset = off;
        req.op.rw.length = len;
        st->writing = len;
        rc = fes_request(c, &req, &rsp, "write");
        st->writing = 0;
        if (rc < 0)
            break;
        status = rsp.status;
        if (status != 0)
            break;
        if (!fes_append_file(f, dst, len, save))
            break;
        st->pattern_at += len;
        st->queued += len;
        st->wr_off = (off + len) % st->buffer_sz;
        done += len;
    }
    if (f)
        fclose(f);
    printf("write status=%d %s bytes=%u\n", status, fes_status_name(status), done);
}

/* read N [chunk=C] [save=FILE] [wait]: READs at the successive offsets; with `wait`, each READ
 * waits (bounded) until the capture position says the data exists. */
struct fes_avail { uint32_t len; };

static bool fes_has_data(struct fes_stream *st, const void *arg)
{
    const struct fes_avail *r = arg;

    return st->broken || (st->pos >= st->taken && st->pos - st->taken >= r->len);
}

static void fes_cmd_read(struct fes_card *c, const struct fes_args *a)
{
    struct fes_stream *st;
    const char *save = fes_opt(a, "save");
    bool wait = fes_has_flag(a, "wait");
    uint32_t total, chunk, done = 0;
    int32_t status = 0;
    FILE *f = NULL;

    if (!fes_need_buffer(c, "read"))
        return;
    st = c->cur;
    if (a->n < 2 || !fes_parse_u32(a->v[1], &total) ||
        !fes_opt_u32(a, "chunk", st->period_sz ? st->period_sz : st->buffer_sz / 4, &chunk) || !chunk) {
        fes_error("read N [chunk=OCTETS] [save=FILE] [wait]");
        return;
    }
    if (save && !(f = fopen(save, "ab"))) {
        fes_error("cannot open %s: %s", save, strerror(errno));
        return;
    }
    while (done < total) {
        struct xensnd_req req = { .operation = XENSND_OP_READ };
        struct xensnd_resp rsp;
        uint32_t off = st->rd_off, len = total - done;
        struct fes_avail avail;
        uint8_t copy[FES_PAGE_SIZE];

        if (len > chunk)
            len = chunk;
        if (len > st->buffer_sz - off)
            len = st->buffer_sz - off;
        avail.len = len;
        if (wait && !fes_wait_until(c, fes_has_data, st, &avail, c->timeout_ms)) {
            printf("read timeout waiting for data: read=%" PRIu64 " pos=%" PRIu64 "\n", st->taken, st->pos);
            fes_failed = true;
            break;
        }
        req.op.rw.offset = off;
        req.op.rw.length = len;
        if (fes_request(c, &req, &rsp, "read") < 0)
            break;
        status = rsp.status;
        if (status != 0)
            break;
        /* Copy out before use (checklist item 19): the backend may still be writing. */
        for (uint32_t o = 0; o < len; o += FES_PAGE_SIZE) {
            uint32_t n = len - o < FES_PAGE_SIZE ? len - o : FES_PAGE_SIZE;

            memcpy(copy, (uint8_t *)st->buf.data + off + o, n);
            if (!fes_append_file(f, copy, n, save))
                goto out;
        }
        st->taken += len;
        st->rd_off = (off + len) % st->buffer_sz;
        done += len;
    }
out:
    if (f)
        fclose(f);
    printf("read status=%d %s bytes=%u\n", status, fes_status_name(status), done);
}

struct fes_target { uint64_t pos; };

static bool fes_reached(struct fes_stream *st, const void *arg)
{
    const struct fes_target *t = arg;

    return st->broken || (st->pos_seen && st->pos >= t->pos);
}

/* wait-pos N: until a CUR_POS event says N octets (bounded). */
static void fes_cmd_wait_pos(struct fes_card *c, const struct fes_args *a)
{
    struct fes_target target;

    if (!fes_need_stream(c, "wait-pos"))
        return;
    if (a->n != 2 || !fes_parse_u64(a->v[1], UINT64_MAX, &target.pos)) {
        fes_error("wait-pos OCTETS");
        return;
    }
    if (!fes_wait_until(c, fes_reached, c->cur, &target, c->timeout_ms)) {
        printf("wait-pos timeout pos=%" PRIu64 " events=%" PRIu64 "\n", c->cur->pos, c->cur->nevents);
        fes_failed = true;
        return;
    }
    printf("pos %" PRIu64 "\n", c->cur->pos);
}

/* events: what the event page brought so far on the current stream. */
static void fes_cmd_events(struct fes_card *c, const struct fes_args *a)
{
    struct fes_stream *st;

    (void)a;
    if (!fes_need_stream(c, "events"))
        return;
    fes_service(c);
    st = c->cur;
    printf("events count=%" PRIu64 " pos=%" PRIu64 " beyond=%" PRIu64 " backwards=%" PRIu64 "\n",
           st->nevents, st->pos, st->pos_beyond, st->pos_backwards);
}

static int fes_hex_digit(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* raw-request HEX...: a 64-octet request as given (id included), zero-padded; blanks ignored. */
static void fes_cmd_raw(struct fes_card *c, const struct fes_args *a)
{
    struct xensnd_req req;
    struct xensnd_resp rsp;
    uint8_t *bytes = (uint8_t *)&req;
    size_t n = 0;
    int hi = -1, rc;

    if (!fes_need_stream(c, "raw-request"))
        return;
    memset(&req, 0, sizeof(req));
    for (int i = 1; i < a->n; i++) {
        for (const char *p = a->v[i]; *p; p++) {
            int d = fes_hex_digit(*p);

            if (d < 0 || n >= sizeof(req)) {
                fes_error("raw-request: at most 64 octets of hex digits");
                return;
            }
            if (hi < 0) {
                hi = d;
            } else {
                bytes[n++] = (uint8_t)(hi << 4 | d);
                hi = -1;
            }
        }
    }
    if (hi >= 0 || n < 3) {
        fes_error("raw-request: an even number of hex digits, at least id and operation");
        return;
    }
    rc = fes_transact(c, c->cur, &req, &rsp);
    if (rc == -ETIMEDOUT) {
        printf("raw-request timeout\n");
        fes_failed = true;
        return;
    }
    if (rc < 0) {
        printf("raw-request failed: stream %s unusable\n", c->cur->unique_id);
        fes_failed = true;
        return;
    }
    printf("raw-request status=%d %s id=%u op=%u\n", rsp.status, fes_status_name(rsp.status), rsp.id, rsp.operation);
}

/* garbage-req-prod [N]: publishes req_prod N (default 1000) entries ahead, then never uses the ring again. */
static void fes_cmd_garbage(struct fes_card *c, const struct fes_args *a)
{
    struct fes_stream *st;
    uint32_t ahead;

    if (!fes_need_stream(c, "garbage-req-prod"))
        return;
    st = c->cur;
    if (!fes_opt_u32(a, "ahead", 1000, &ahead))
        return;
    wmb();
    st->ring.sring->req_prod = st->ring.req_prod_pvt + ahead;
    mb();
    xenevtchn_notify(c->xce, st->ring_port);
    st->broken = true;
    printf("garbage-req-prod sent\n");
}

/* set-volume V1,V2,... [offset=O]: int32 per channel (0.001 dB) at O in the buffer. */
static void fes_cmd_set_volume(struct fes_card *c, const struct fes_args *a)
{
    struct xensnd_req req = { .operation = XENSND_OP_SET_VOLUME };
    struct xensnd_resp rsp;
    char tmp[512];
    uint32_t off, n = 0;

    if (!fes_need_buffer(c, "set-volume"))
        return;
    if (a->n < 2 || strlen(a->v[1]) >= sizeof(tmp) || !fes_opt_u32(a, "offset", 0, &off)) {
        fes_error("set-volume V1,V2,... [offset=O]");
        return;
    }
    strcpy(tmp, a->v[1]);
    for (char *save = NULL, *v = strtok_r(tmp, ",", &save); v; v = strtok_r(NULL, ",", &save)) {
        char *end;
        long value = strtol(v, &end, 10);
        int32_t le;

        if (*end || off + 4 * (n + 1) > c->cur->buffer_sz) {
            fes_error("set-volume: bad value %s or beyond the buffer", v);
            return;
        }
        le = (int32_t)value;
        memcpy((uint8_t *)c->cur->buf.data + off + 4 * n, &le, 4);
        n++;
    }
    req.op.rw.offset = off;
    req.op.rw.length = 4 * n;
    if (fes_request(c, &req, &rsp, "set-volume") == 0)
        fes_print_status("set-volume", rsp.status);
}

/* get-volume CHANNELS [offset=O]: zeroes the range, asks, prints what came back. */
static void fes_cmd_get_volume(struct fes_card *c, const struct fes_args *a)
{
    struct xensnd_req req = { .operation = XENSND_OP_GET_VOLUME };
    struct xensnd_resp rsp;
    uint32_t off, n;
    uint8_t *at;

    if (!fes_need_buffer(c, "get-volume"))
        return;
    if (a->n < 2 || !fes_parse_u32(a->v[1], &n) || n == 0 || n > 255 || !fes_opt_u32(a, "offset", 0, &off) ||
        off + 4 * n > c->cur->buffer_sz) {
        fes_error("get-volume CHANNELS [offset=O]");
        return;
    }
    at = (uint8_t *)c->cur->buf.data + off;
    memset(at, 0, 4 * n);
    req.op.rw.offset = off;
    req.op.rw.length = 4 * n;
    if (fes_request(c, &req, &rsp, "get-volume") < 0)
        return;
    printf("get-volume status=%d %s values=", rsp.status, fes_status_name(rsp.status));
    for (uint32_t i = 0; i < n; i++) {
        int32_t v;

        memcpy(&v, at + 4 * i, 4);
        printf("%s%d", i ? "," : "", v);
    }
    putchar('\n');
}

/* mute|unmute CHANNELS [offset=O]: one flag octet per channel (1 = muted) at O. */
static void fes_cmd_mute(struct fes_card *c, const struct fes_args *a)
{
    bool mute = !strcmp(a->v[0], "mute");
    struct xensnd_req req = { .operation = mute ? XENSND_OP_MUTE : XENSND_OP_UNMUTE };
    struct xensnd_resp rsp;
    uint32_t off, n;

    if (!fes_need_buffer(c, a->v[0]))
        return;
    if (a->n < 2 || !fes_parse_u32(a->v[1], &n) || n == 0 || n > 255 || !fes_opt_u32(a, "offset", 0, &off) ||
        off + n > c->cur->buffer_sz) {
        fes_error("%s CHANNELS [offset=O]", a->v[0]);
        return;
    }
    memset((uint8_t *)c->cur->buf.data + off, mute ? 1 : 0, n);
    req.op.rw.offset = off;
    req.op.rw.length = n;
    if (fes_request(c, &req, &rsp, a->v[0]) == 0)
        fes_print_status(a->v[0], rsp.status);
}

static void fes_cmd_connect(struct fes_card *c, const struct fes_args *a)
{
    fes_connect(c, fes_opt(a, "omit"));
}

static void fes_cmd_disconnect(struct fes_card *c, const struct fes_args *a)
{
    (void)a;
    fes_disconnect(c);
}

/* reconnect [N]: disconnect + connect, N times (default 1); only the last round's lines show. */
static void fes_cmd_reconnect(struct fes_card *c, const struct fes_args *a)
{
    uint32_t n = 1;

    if (a->n > 2 || (a->n == 2 && !fes_parse_u32(a->v[1], &n))) {
        fes_error("reconnect [TIMES]");
        return;
    }
    for (uint32_t i = 0; i < n; i++) {
        bool ok;

        fes_quiet = i + 1 < n;
        ok = fes_disconnect(c) && fes_connect(c, NULL);
        fes_quiet = false;
        if (!ok) {
            printf("reconnect failed at round %u\n", i + 1);
            fes_failed = true;
            return;
        }
    }
    printf("reconnected %u\n", n);
}

static void fes_cmd_be_state(struct fes_card *c, const struct fes_args *a)
{
    uint32_t want, timeout;

    if (!c->be_path[0] && !fes_read_paths(c))
        return;
    if (a->n < 2) {
        printf("be-state %d\n", fes_be_state(c));
        return;
    }
    if (!fes_parse_u32(a->v[1], &want) || want > 8 || !fes_opt_u32(a, "timeout", (uint32_t)c->handshake_timeout_ms, &timeout) ||
        !fes_watch_backend(c)) {
        fes_error("wait-be-state STATE [timeout=MS]");
        return;
    }
    if (fes_wait_be_state(c, 1u << want, (int)timeout) < 0) {
        printf("wait-be-state timeout state=%d\n", fes_be_state(c));
        fes_failed = true;
    }
}

static void fes_cmd_sleep(struct fes_card *c, const struct fes_args *a)
{
    uint32_t ms;

    if (a->n != 2 || !fes_parse_u32(a->v[1], &ms)) {
        fes_error("sleep MS");
        return;
    }
    /* Keep serving events while sleeping, so the backend's event page never fills up. */
    if (c->connected) {
        struct fes_target never = { UINT64_MAX };

        fes_wait_until(c, fes_reached, c->cur, &never, (int)ms);
    } else {
        usleep(ms * 1000);
    }
}

static void fes_cmd_timeout(struct fes_card *c, const struct fes_args *a)
{
    uint32_t ms;

    if (a->n != 2 || !fes_parse_u32(a->v[1], &ms) || ms > 600000) {
        fes_error("timeout MS");
        return;
    }
    c->timeout_ms = (int)ms;
}

/* shell CMD...: runs CMD with /bin/sh (e.g. to look at the backend between two steps). */
static void fes_cmd_shell(struct fes_card *c, const struct fes_args *a)
{
    char cmd[FES_MAX_LINE] = "";
    int rc;

    (void)c;
    for (int i = 1; i < a->n; i++) {
        if (strlen(cmd) + strlen(a->v[i]) + 2 >= sizeof(cmd)) {
            fes_error("shell: command too long");
            return;
        }
        strcat(cmd, i > 1 ? " " : "");
        strcat(cmd, a->v[i]);
    }
    fflush(stdout);
    rc = system(cmd);
    if (rc != 0) {
        printf("shell status=%d\n", rc);
        fes_failed = true;
    }
}

static void fes_cmd_echo(struct fes_card *c, const struct fes_args *a)
{
    (void)c;
    for (int i = 1; i < a->n; i++)
        printf("%s%s", i > 1 ? " " : "", a->v[i]);
    putchar('\n');
}

static const struct fes_command {
    const char *name;
    void (*run)(struct fes_card *c, const struct fes_args *a);
    const char *help;
} fes_commands[] = {
    { "connect", fes_cmd_connect, "[omit=UNIQUE-ID]  -> be-state N..., be-versions V, connected streams=N" },
    { "disconnect", fes_cmd_disconnect, "-> disconnected" },
    { "reconnect", fes_cmd_reconnect, "[TIMES]  -> reconnected TIMES" },
    { "use", fes_cmd_use, "UNIQUE-ID|P/S  -> stream ID P/S TYPE" },
    { "query", fes_cmd_query, "[fmt=a,b] [rate=MIN:MAX] [ch=..] [buffer=..] [period=..] (frames)  -> query status=S formats=.. rates=.. channels=.. buffer=.. period=.." },
    { "open", fes_cmd_open, "fmt=F rate=R ch=C buffer=OCTETS [period=OCTETS] [dir=loop|absurd]  -> open status=S NAME" },
    { "close", fes_cmd_close, "-> close status=S NAME" },
    { "trigger", fes_cmd_trigger, "start|pause|stop|resume  -> trigger T status=S NAME" },
    { "write-pattern", fes_cmd_write_pattern, "N [chunk=C] [save=FILE]  -> write status=S NAME bytes=N" },
    { "read", fes_cmd_read, "N [chunk=C] [save=FILE] [wait]  -> read status=S NAME bytes=N" },
    { "wait-pos", fes_cmd_wait_pos, "OCTETS  -> pos P" },
    { "events", fes_cmd_events, "-> events count=N pos=P beyond=B backwards=K" },
    { "raw-request", fes_cmd_raw, "HEX (64 octets at most, id first)  -> raw-request status=S NAME id=I op=O" },
    { "garbage-req-prod", fes_cmd_garbage, "[ahead=N]  -> garbage-req-prod sent" },
    { "set-volume", fes_cmd_set_volume, "V1,V2.. [offset=O]  -> set-volume status=S NAME" },
    { "get-volume", fes_cmd_get_volume, "CHANNELS [offset=O]  -> get-volume status=S NAME values=V1,V2.." },
    { "mute", fes_cmd_mute, "CHANNELS [offset=O]  -> mute status=S NAME" },
    { "unmute", fes_cmd_mute, "CHANNELS [offset=O]  -> unmute status=S NAME" },
    { "be-state", fes_cmd_be_state, "-> be-state N" },
    { "wait-be-state", fes_cmd_be_state, "N [timeout=MS]  -> be-state N" },
    { "sleep", fes_cmd_sleep, "MS (events are served meanwhile)" },
    { "timeout", fes_cmd_timeout, "MS  (request timeout from now on)" },
    { "shell", fes_cmd_shell, "CMD...  (runs CMD with /bin/sh)" },
    { "echo", fes_cmd_echo, "TEXT" },
};

static void fes_usage(void)
{
    fprintf(stderr, "usage: fe-script [--devid N] [--timeout-ms MS] [--handshake-timeout-ms MS] [-v] [COMMAND...]\n"
                    "commands (one per argument, or per stdin line):\n");
    for (size_t i = 0; i < sizeof(fes_commands) / sizeof(fes_commands[0]); i++)
        fprintf(stderr, "  %s %s\n", fes_commands[i].name, fes_commands[i].help);
    exit(2);
}

static void fes_run_line(struct fes_card *c, char *line)
{
    struct fes_args a = { 0 };
    char *hash = strchr(line, '#');

    if (hash)
        *hash = '\0';
    for (char *save = NULL, *w = strtok_r(line, " \t\r\n", &save); w; w = strtok_r(NULL, " \t\r\n", &save)) {
        if (a.n == FES_MAX_ARGS) {
            fes_error("too many words in one command");
            return;
        }
        a.v[a.n++] = w;
    }
    if (a.n == 0)
        return;
    for (size_t i = 0; i < sizeof(fes_commands) / sizeof(fes_commands[0]); i++) {
        if (!strcmp(a.v[0], fes_commands[i].name)) {
            fes_log("> %s", a.v[0]);
            fes_commands[i].run(c, &a);
            fflush(stdout);
            return;
        }
    }
    fes_error("unknown command %s", a.v[0]);
}

static bool fes_open_handles(struct fes_card *c)
{
    int fd;

    c->xs = xs_open(0);
    if (!c->xs) {
        fes_error("cannot open xenstore: %s", strerror(errno));
        return false;
    }
    c->xce = xenevtchn_open(NULL, 0);
    if (!c->xce) {
        fes_error("cannot open the event-channel device: %s", strerror(errno));
        return false;
    }
    c->gs = xengntshr_open(NULL, 0);
    if (!c->gs) {
        fes_error("cannot open the grant-sharing device: %s", strerror(errno));
        return false;
    }
    /* libxengnttab opens gntalloc without O_CLOEXEC; `shell` children must not inherit it. */
    fd = xengntshr_fd(c->gs);
    if (fd >= 0)
        fcntl(fd, F_SETFD, fcntl(fd, F_GETFD) | FD_CLOEXEC);
    return true;
}

static void fes_close_handles(struct fes_card *c)
{
    fes_release_all(c);
    if (c->gs)
        xengntshr_close(c->gs);
    if (c->xce)
        xenevtchn_close(c->xce);
    if (c->xs)
        xs_close(c->xs);
}

int main(int argc, char **argv)
{
    struct fes_card card = { .timeout_ms = 3000, .handshake_timeout_ms = 10000, .last_be_state = -1 };
    int i;

    setvbuf(stdout, NULL, _IOLBF, 0);
    for (i = 1; i < argc && argv[i][0] == '-'; i++) {
        uint32_t v;

        if (!strcmp(argv[i], "-v")) {
            fes_verbose = true;
        } else if (!strcmp(argv[i], "--devid") && i + 1 < argc && fes_parse_u32(argv[i + 1], &v)) {
            card.devid = v;
            i++;
        } else if (!strcmp(argv[i], "--timeout-ms") && i + 1 < argc && fes_parse_u32(argv[i + 1], &v) && v <= 600000) {
            card.timeout_ms = (int)v;
            i++;
        } else if (!strcmp(argv[i], "--handshake-timeout-ms") && i + 1 < argc && fes_parse_u32(argv[i + 1], &v) &&
                   v <= 600000) {
            card.handshake_timeout_ms = (int)v;
            i++;
        } else {
            fes_usage();
        }
    }
    if (!fes_open_handles(&card)) {
        fes_close_handles(&card);
        return 1;
    }
    if (i < argc) {
        for (; i < argc; i++) {
            char line[FES_MAX_LINE];

            snprintf(line, sizeof(line), "%s", argv[i]);
            fes_run_line(&card, line);
        }
    } else {
        char line[FES_MAX_LINE];

        while (fgets(line, sizeof(line), stdin))
            fes_run_line(&card, line);
    }
    fes_close_handles(&card);
    return fes_failed ? 1 : 0;
}
