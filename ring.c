/* ring: the sndif request ring and event page of one stream (sndif.h, xen/io/ring.h).
 * Hardening follows the checklist in the protocol notes: indexes read once, responses and
 * events copied out before use, ids matched once, statuses and counts bounded.
 *
 * Memory ordering (reviewed for arm64, issue 15). The backend runs on another CPU, in another domain:
 * on arm64 (weakly ordered) only barriers order what it sees of our accesses, and ours of its.
 * ring.h's xen_mb/xen_rmb/xen_wmb, which xen/io/ring.h's macros use, compile to (gcc and clang, arm64):
 *   xen_mb  = seq_cst fence = dmb ish    (Linux virt_mb: dmb ish)
 *   xen_rmb = acquire fence = dmb ishld  (Linux virt_rmb: dmb ishld; orders earlier loads before later
 *                                         loads AND stores, as an acquire must)
 *   xen_wmb = release fence = dmb ish    (Linux virt_wmb: dmb ishst; ours also orders earlier loads)
 * so each is at least Linux's. Inner-shareable is the domain Linux uses for other domains' vCPUs.
 * On x86 (TSO) the first is mfence-class, the others compiler barriers only, as Linux's. Shared
 * indexes written by the backend are read through volatile (Linux READ_ONCE) exactly once; the
 * objdump of the arm64 build (make test-xen-arm64) shows each dmb between the accesses it orders. */
#include "ring.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <alsa/asoundlib.h>

long long xring_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *xring_op_name(unsigned op)
{
    static const char *const names[] = { "OPEN", "CLOSE", "READ", "WRITE", "SET_VOLUME", "GET_VOLUME",
                                         "MUTE", "UNMUTE", "TRIGGER", "HW_PARAM_QUERY" };

    return op < sizeof(names) / sizeof(names[0]) ? names[op] : "?";
}

/* A status is 0 or minus one of Xen's errno values (xen/errno.h). Old snd_be answered a
 * positive XEN_EINVAL: that is a failure too, with its errno. Anything else is -EIO. */
static int xring_status_to_errno(int32_t status)
{
    static const int known[] = {
#define XEN_ERRNO(name, value) value,
#include <xen/errno.h>
#undef XEN_ERRNO
    };

    if (status == 0)
        return 0;
    long long err = status < 0 ? -(long long)status : status;

    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        if (err == known[i])
            return (int)-err; /* Xen's errno values are Linux's */
    return -EIO;
}

static void xring_fail(struct xring *r, int err, const char *why)
{
    if (r->error)
        return;
    r->error = err;
    SNDERR("%s: %s", r->label, why);
}

int xring_create(struct xring *r, xengntshr_handle *gs, unsigned be_domid, unsigned timeout_ms,
                 const char *label)
{
    xenevtchn_port_or_error_t p;

    memset(r, 0, sizeof(*r));
    r->relay_fd = -1;
    r->label = label;
    r->gs = gs;
    r->be_domid = be_domid;
    r->timeout_ms = timeout_ms;
    r->xce = xenevtchn_open(NULL, 0);
    if (!r->xce) {
        int e = errno;

        SNDERR("%s: cannot open /dev/xen/evtchn: %s", label, strerror(e));
        return e ? -e : -ENODEV;
    }
    fcntl(xenevtchn_fd(r->xce), F_SETFD, FD_CLOEXEC);
    /* Non-blocking: xenevtchn_pending() then answers -1 (EAGAIN) instead of waiting (xring_ack). */
    fcntl(xenevtchn_fd(r->xce), F_SETFL, fcntl(xenevtchn_fd(r->xce), F_GETFL) | O_NONBLOCK);
    /* Granted writable: the backend writes responses here (and maps everything RW, as snd_be does). */
    r->ring_page = xengntshr_share_pages(gs, be_domid, 1, &r->ring_ref, 1);
    r->evt_page = xengntshr_share_pages(gs, be_domid, 1, &r->evt_ref, 1);
    if (!r->ring_page || !r->evt_page) {
        int e = errno;

        SNDERR("%s: cannot grant the ring pages to domain %u: %s", label, be_domid, strerror(e));
        xring_destroy(r);
        return e ? -e : -ENOMEM;
    }
    p = xenevtchn_bind_unbound_port(r->xce, be_domid);
    if (p >= 0) {
        r->port = (uint32_t)p;
        p = xenevtchn_bind_unbound_port(r->xce, be_domid);
        r->evt_port = (uint32_t)p;
    }
    if (p < 0) {
        int e = errno;

        SNDERR("%s: cannot allocate an event channel for domain %u: %s", label, be_domid, strerror(e));
        xring_destroy(r);
        return e ? -e : -ENODEV;
    }
    xenevtchn_unmask(r->xce, r->port);
    xenevtchn_unmask(r->xce, r->evt_port);
    /* Shared page, no barrier: the backend learns ring-ref from xenstore only after our xenstore
     * write, a write(2) to /dev/xen/xenbus whose kernel path (xenbus ring: virt_mb/virt_wmb, then an
     * event-channel hypercall) orders these stores first, as for every Linux frontend's
     * SHARED_RING_INIT before xenbus_printf("ring-ref"). The event page comes zeroed from gntalloc. */
    SHARED_RING_INIT((xen_sndif_sring_t *)r->ring_page);
    FRONT_RING_INIT(&r->fr, (xen_sndif_sring_t *)r->ring_page, XRING_PAGE_SIZE);
    return 0;
}

void xring_destroy(struct xring *r)
{
    if (r->relayed) {
        if (r->relay_fd >= 0)
            close(r->relay_fd);
        munmap(r->ring_page, 2 * XRING_PAGE_SIZE);
        memset(r, 0, sizeof(*r));
        return;
    }
    if (r->xce) {
        if (r->port)
            xenevtchn_unbind(r->xce, r->port);
        if (r->evt_port)
            xenevtchn_unbind(r->xce, r->evt_port);
        xenevtchn_close(r->xce);
    }
    /* The backend may still map these pages; Xen keeps them alive until it lets go. */
    if (r->ring_page)
        xengntshr_unshare(r->gs, r->ring_page, 1);
    if (r->evt_page)
        xengntshr_unshare(r->gs, r->evt_page, 1);
    memset(r, 0, sizeof(*r));
}

void xring_leave(struct xring *r)
{
    /* No unbind: the ports belong to the open file, which the keeper still has. Our mappings go
     * (a munmap on Xen): the keeper's keep the grants. */
    r->port = r->evt_port = 0;
    xring_destroy(r);
}

void xring_create_relay(struct xring *r, int relay_fd, void *shadow, unsigned timeout_ms, const char *label)
{
    memset(r, 0, sizeof(*r));
    r->relayed = true;
    r->relay_fd = relay_fd;
    r->label = label;
    r->timeout_ms = timeout_ms;
    r->ring_page = shadow;
    r->evt_page = (char *)shadow + XRING_PAGE_SIZE;
    /* Shared with the keeper only after this (the claim that carries its descriptor). */
    SHARED_RING_INIT((xen_sndif_sring_t *)r->ring_page);
    FRONT_RING_INIT(&r->fr, (xen_sndif_sring_t *)r->ring_page, XRING_PAGE_SIZE);
    memset(r->evt_page, 0, XRING_PAGE_SIZE);
}

int xring_fd(const struct xring *r)
{
    return r->relayed ? r->relay_fd : xenevtchn_fd(r->xce);
}

/* Tells the other end that the request ring moved: the backend's event channel, or the keeper. */
static void xring_notify(struct xring *r)
{
    static const char wake = 'n';

    if (!r->relayed)
        xenevtchn_notify(r->xce, r->port);
    else if (send(r->relay_fd, &wake, 1, MSG_DONTWAIT | MSG_NOSIGNAL) < 0 && errno != EAGAIN)
        xring_fail(r, -EPIPE, "the process keeping this shared card (its keeper) is gone");
    /* EAGAIN: the keeper has wake-ups queued already; it reads the whole ring at each. */
}

int xring_submit(struct xring *r, struct xensnd_req *req, uint64_t cookie, uint16_t *id_out)
{
    struct xring_inflight *slot = NULL;
    int notify;

    if (r->error)
        return r->error;
    if (RING_FULL(&r->fr))
        return -EAGAIN;
    for (unsigned i = 0; i < XRING_SLOTS && !slot; i++)
        if (!r->inflight[i].busy)
            slot = &r->inflight[i];
    if (!slot)
        return -EAGAIN;
    req->id = r->next_id++;
    *slot = (struct xring_inflight){ true, req->id, req->operation, cookie, xring_now_ms() + r->timeout_ms };
    r->ninflight++;
    /* Shared slot: plain stores, ours alone until req_prod passes it (RING_FULL above, with rsp_cons
     * advanced only after that slot's response was copied out: see xring_take_responses). */
    memcpy(RING_GET_REQUEST(&r->fr, r->fr.req_prod_pvt), req, sizeof(*req));
    r->fr.req_prod_pvt++;
    /* ring.h: xen_wmb (dmb ish) orders the slot (and the audio data or page directory the request
     * names, written before this call: shbuf.c, pcm_xen.c) before the req_prod store; xen_mb orders that
     * store before the req_event load (store->load: only a full barrier does), so either the backend
     * sees the request or we see its req_event and notify. Linux: virt_wmb, virt_mb, same macro. */
    RING_PUSH_REQUESTS_AND_CHECK_NOTIFY(&r->fr, notify);
    if (notify)
        xring_notify(r);
    if (id_out)
        *id_out = req->id;
    return 0;
}

/* Matches a response to the request in flight with its id and operation, once. */
static struct xring_inflight *xring_match(struct xring *r, const struct xensnd_resp *rsp)
{
    for (unsigned i = 0; i < XRING_SLOTS; i++) {
        struct xring_inflight *s = &r->inflight[i];

        if (s->busy && s->id == rsp->id && s->operation == rsp->operation)
            return s;
    }
    return NULL;
}

static void xring_check_deadlines(struct xring *r)
{
    long long now = xring_now_ms();

    for (unsigned i = 0; i < XRING_SLOTS && !r->error; i++) {
        const struct xring_inflight *s = &r->inflight[i];
        char why[128];

        if (s->busy && now > s->deadline_ms) {
            snprintf(why, sizeof(why), "backend did not answer %s within %u ms", xring_op_name(s->operation),
                     r->timeout_ms);
            xring_fail(r, -ETIMEDOUT, why);
        }
    }
}

/* One pass over the responses available now. */
static void xring_take_responses(struct xring *r)
{
    /* rsp_prod is written by the backend: read it once (READ_ONCE), then the barrier before the entries. */
    RING_IDX rp = *(volatile RING_IDX *)&r->fr.sring->rsp_prod;
    RING_IDX outstanding = r->fr.req_prod_pvt - r->fr.rsp_cons;

    /* Linux: virt_rmb after READ_ONCE(rsp_prod) (blkfront, netfront, snd_xen_front). dmb ishld orders
     * the rsp_prod load before the response loads below and before every later load and store: the
     * captured data pcm_xen.c copies out after a READ's response, and the audio it writes over a
     * region after the WRITE's response (the backend read it before publishing rsp_prod). */
    xen_rmb();
    if (RING_RESPONSE_PROD_OVERFLOW(&r->fr, rp) || rp - r->fr.rsp_cons > outstanding) {
        xring_fail(r, -EIO, "backend produced more responses than requests (ring corrupted)");
        return;
    }
    for (RING_IDX i = r->fr.rsp_cons; i != rp; i++) {
        struct xring_completion done = { 0 };
        struct xring_inflight *s;

        /* Shared slot: one volatile copy (ring.h), then only the private copy is used. */
        RING_COPY_RESPONSE(&r->fr, i, &done.rsp);
        s = xring_match(r, &done.rsp);
        if (!s) {
            xring_fail(r, -EIO, "backend answered a request that is not in flight");
            return;
        }
        done.id = s->id;
        done.operation = s->operation;
        done.cookie = s->cookie;
        done.status = xring_status_to_errno(done.rsp.status);
        s->busy = false;
        r->ninflight--;
        r->fr.rsp_cons = i + 1; /* private: frees slot i for xring_submit, after its copy above */
        if (r->waiting && done.id == r->wait_id) {
            r->wait_done = true;
            r->wait_status = done.status;
            r->wait_rsp = done.rsp;
        } else if (r->on_complete) {
            r->on_complete(r->ctx, &done);
        }
    }
}

/* Re-arms rsp_event so that the backend notifies the next response; or, for a quiet caller
 * with room (fewer than half the slots in flight) and no one waiting, holds those notifications
 * off: the backend notifies when rsp_prod passes rsp_event, which is put a whole ring ahead
 * (one wake-up per period instead of two). Returns whether responses are waiting. */
static int xring_rearm(struct xring *r)
{
    int more;

    if (r->quiet && !r->in_wait && r->ninflight < XRING_SLOTS / 2) {
        r->fr.sring->rsp_event = r->fr.rsp_cons + RING_SIZE(&r->fr);
        /* RING_FINAL_CHECK_FOR_RESPONSES' own steps with another rsp_event: xen_mb (dmb ish, Linux
         * virt_mb) orders the rsp_event store before the rsp_prod load (store->load). */
        xen_mb(); /* rsp_event out before rsp_prod is read again */
        return RING_HAS_UNCONSUMED_RESPONSES(&r->fr);
    }
    /* ring.h: rsp_event store, xen_mb, rsp_prod re-read: a response published meanwhile is either seen
     * here or notified by the backend's RING_PUSH_RESPONSES_AND_CHECK_NOTIFY. The entries themselves
     * are read by the next xring_take_responses, after its own xen_rmb. */
    RING_FINAL_CHECK_FOR_RESPONSES(&r->fr, more);
    return more;
}

int xring_process(struct xring *r)
{
    for (unsigned pass = 0; !r->error && pass < XRING_SLOTS; pass++) {
        xring_take_responses(r);
        if (r->error || !xring_rearm(r))
            break;
    }
    if (!r->error)
        xring_check_deadlines(r);
    return r->error;
}

int xring_events(struct xring *r, uint64_t *pos, bool *have)
{
    struct xensnd_event_page *page = r->evt_page;
    /* in_prod is the backend's: one read (READ_ONCE), then the barrier before the slots. */
    uint32_t prod = *(volatile uint32_t *)&page->in_prod;

    *have = false;
    if (r->error)
        return r->error;
    xen_rmb(); /* Linux virt_rmb after in_prod (snd_xen_front's evtchnl_interrupt_evt): dmb ishld */
    if (prod - r->evt_cons > XENSND_IN_RING_LEN) {
        xring_fail(r, -EIO, "backend's event page index is corrupted");
        return r->error;
    }
    for (; r->evt_cons != prod; r->evt_cons++) {
        struct xensnd_evt evt;

        /* Shared slot: copied once, then only the copy is read. */
        memcpy(&evt, (const void *)&XENSND_IN_RING_REF(page, r->evt_cons), sizeof(evt));
        if (evt.type == XENSND_EVT_CUR_POS) {
            *pos = evt.op.cur_pos.position;
            *have = true;
        }
        /* Unknown event types have no defined meaning: ignored. */
    }
    /* The slot loads before the in_cons store (load->store), or the backend could overwrite a slot
     * still being read: xen_mb (dmb ish), as xen-kbdfront's mb() before in_cons; a release fence would do.
     * (snd_xen_front and xen_drm_front put their virt_wmb after the in_cons store instead.)
     * in_cons is written once, volatile (WRITE_ONCE); nothing of ours is trusted back from it. */
    xen_mb();
    *(volatile uint32_t *)&page->in_cons = r->evt_cons;
    return 0;
}

/* A relayed ring's wake-up: one message from the keeper; its end of the socket closing means it
 * is gone, and with it the stream (its user sees the error once). */
static void xring_ack_relay(struct xring *r)
{
    char wake[16];
    ssize_t n = recv(r->relay_fd, wake, sizeof(wake), MSG_DONTWAIT);

    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
        xring_fail(r, -EPIPE, "the process keeping this shared card (its keeper) is gone");
}

void xring_ack(struct xring *r)
{
    if (r->relayed) {
        xring_ack_relay(r);
        return;
    }
    /* One delivery per call (a read of the non-blocking descriptor, EAGAIN when none): the
     * ring and the event page are read whole whichever port fired, and a second pending
     * delivery keeps the descriptor readable for the caller's next poll. */
    xenevtchn_port_or_error_t port = xenevtchn_pending(r->xce);

    if (port >= 0)
        xenevtchn_unmask(r->xce, (evtchn_port_t)port);
}

int xring_wait(struct xring *r, int timeout_ms)
{
    struct pollfd pfd = { .fd = xring_fd(r), .events = POLLIN };
    int n = poll(&pfd, 1, timeout_ms);

    return n > 0;
}

/* Waits for the backend while `done` is false, until the deadline. */
static int xring_wait_until(struct xring *r, long long deadline, bool (*done)(struct xring *r, unsigned arg),
                            unsigned arg)
{
    int rc = 0;

    r->in_wait = true; /* every response wakes us from here on (xring_rearm) */
    for (;;) {
        long long left;

        xring_ack(r);
        if (xring_process(r) < 0) {
            rc = r->error;
            break;
        }
        if (done(r, arg))
            break;
        left = deadline - xring_now_ms();
        if (left <= 0) {
            rc = -ETIMEDOUT;
            break;
        }
        xring_wait(r, left > 100 ? 100 : (int)left);
    }
    r->in_wait = false;
    return rc;
}

static bool xring_below(struct xring *r, unsigned max)
{
    return r->ninflight < max && !RING_FULL(&r->fr);
}

static bool xring_waited(struct xring *r, unsigned arg)
{
    (void)arg;
    return r->wait_done;
}

int xring_drain(struct xring *r, unsigned max)
{
    int rc = xring_wait_until(r, xring_now_ms() + r->timeout_ms, xring_below, max);

    if (rc == -ETIMEDOUT)
        xring_fail(r, rc, "backend stopped answering (ring full)");
    return rc;
}

int xring_submit_wait(struct xring *r, struct xensnd_req *req)
{
    int rc = xring_submit(r, req, 0, NULL);

    if (rc == -EAGAIN && (rc = xring_drain(r, XRING_SLOTS)) == 0)
        rc = xring_submit(r, req, 0, NULL);
    return rc;
}

int xring_call(struct xring *r, struct xensnd_req *req, struct xensnd_resp *rsp)
{
    unsigned op = req->operation;
    int rc = xring_submit_wait(r, req);

    if (rc < 0)
        return rc;
    r->waiting = true;
    r->wait_done = false;
    r->wait_id = req->id;
    rc = xring_wait_until(r, xring_now_ms() + r->timeout_ms + 10, xring_waited, 0);
    r->waiting = false;
    if (rc == -ETIMEDOUT) {
        char why[96];

        snprintf(why, sizeof(why), "backend did not answer %s within %u ms", xring_op_name(op), r->timeout_ms);
        xring_fail(r, rc, why);
        return rc;
    }
    if (rc < 0)
        return rc;
    if (rsp)
        *rsp = r->wait_rsp;
    return r->wait_status;
}

/* ---------------------------------------------------------------- taking over, relaying (keeper.c) */

int xring_settle(struct xring *r)
{
    xen_sndif_sring_t *s = r->fr.sring;
    struct xensnd_event_page *page = r->evt_page;
    long long deadline = xring_now_ms() + r->timeout_ms;
    RING_IDX req, rsp;

    r->error = 0;
    for (;;) {
        /* Both indexes are shared (the previous user's and the backend's): each read once. */
        req = *(volatile RING_IDX *)&s->req_prod;
        rsp = *(volatile RING_IDX *)&s->rsp_prod;
        xen_rmb();
        if (req - rsp > RING_SIZE(&r->fr)) {
            xring_fail(r, -EIO, "backend's ring indexes are corrupted");
            return r->error;
        }
        if (req == rsp)
            break;
        if (xring_now_ms() > deadline) {
            char why[128];

            snprintf(why, sizeof(why), "backend did not answer the requests of the stream's previous user "
                     "within %u ms", r->timeout_ms);
            xring_fail(r, -ETIMEDOUT, why);
            return r->error;
        }
        /* The previous user may have held notifications off (xring_rearm): ask for the next. */
        s->rsp_event = rsp + 1;
        xen_mb(); /* rsp_event out before rsp_prod is read again */
        xring_wait(r, 100); /* bounded by the deadline above */
        xring_ack(r);
    }
    r->fr.req_prod_pvt = req;
    r->fr.rsp_cons = rsp;
    s->rsp_event = rsp + 1;
    r->evt_cons = *(volatile uint32_t *)&page->in_prod; /* stale positions: dropped */
    xen_mb(); /* the event slots are not read: only the index is handed back */
    *(volatile uint32_t *)&page->in_cons = r->evt_cons;
    memset(r->inflight, 0, sizeof(r->inflight));
    r->ninflight = 0;
    r->waiting = r->wait_done = r->in_wait = false;
    return 0;
}

int xring_bridge_requests(struct xring *r, xen_sndif_back_ring_t *sh)
{
    int notify = 0, more = 0;

    if (r->error)
        return r->error;
    do {
        /* The shadow's req_prod is its user's: read once, checked, then the barrier before the slots. */
        RING_IDX rp = *(volatile RING_IDX *)&sh->sring->req_prod;

        xen_rmb();
        if (RING_REQUEST_PROD_OVERFLOW(sh, rp))
            return -EPROTO;
        while (sh->req_cons != rp && !RING_FULL(&r->fr)) {
            struct xensnd_req req;

            RING_COPY_REQUEST(sh, sh->req_cons, &req); /* one copy of the user's slot */
            sh->req_cons++;
            /* The backend's slot, ours until req_prod passes it (as in xring_submit). */
            memcpy(RING_GET_REQUEST(&r->fr, r->fr.req_prod_pvt), &req, sizeof(req));
            r->fr.req_prod_pvt++;
        }
        if (RING_FULL(&r->fr))
            break; /* the rest waits for responses: xring_bridge_responses' caller comes back */
        RING_FINAL_CHECK_FOR_REQUESTS(sh, more); /* req_event, xen_mb, req_prod again */
    } while (more);
    /* As xring_submit: xen_wmb before req_prod, xen_mb before req_event. */
    RING_PUSH_REQUESTS_AND_CHECK_NOTIFY(&r->fr, notify);
    if (notify)
        xenevtchn_notify(r->xce, r->port);
    return 0;
}

int xring_bridge_responses(struct xring *r, xen_sndif_back_ring_t *sh, bool *notify)
{
    int more = 0, wake = 0;

    *notify = false;
    if (r->error)
        return r->error;
    do {
        /* As xring_take_responses: rsp_prod read once, xen_rmb, checked against what is in flight. */
        RING_IDX rp = *(volatile RING_IDX *)&r->fr.sring->rsp_prod;

        xen_rmb();
        if (RING_RESPONSE_PROD_OVERFLOW(&r->fr, rp) || rp - r->fr.rsp_cons > r->fr.req_prod_pvt - r->fr.rsp_cons) {
            xring_fail(r, -EIO, "backend produced more responses than requests (ring corrupted)");
            return r->error;
        }
        for (; r->fr.rsp_cons != rp; r->fr.rsp_cons++) {
            struct xensnd_resp rsp;

            RING_COPY_RESPONSE(&r->fr, r->fr.rsp_cons, &rsp); /* one copy of the backend's slot */
            if (sh->rsp_prod_pvt == sh->req_cons)
                continue; /* answers none of this user's requests: never reaches it */
            /* The shadow's response slot: its request was consumed, the slot is ours to fill. */
            memcpy(RING_GET_RESPONSE(sh, sh->rsp_prod_pvt), &rsp, sizeof(rsp));
            sh->rsp_prod_pvt++;
        }
        RING_FINAL_CHECK_FOR_RESPONSES(&r->fr, more); /* rsp_event, xen_mb, rsp_prod again */
    } while (more);
    /* xen_wmb before rsp_prod, xen_mb before the user's rsp_event (its quiet hold-off is kept). */
    RING_PUSH_RESPONSES_AND_CHECK_NOTIFY(sh, wake);
    *notify = wake != 0;
    return 0;
}

int xring_bridge_events(struct xring *r, struct xensnd_event_page *sh_evt, bool *notify)
{
    struct xensnd_event_page *page = r->evt_page;
    uint32_t prod = *(volatile uint32_t *)&page->in_prod; /* the backend's: once, as xring_events */

    *notify = false;
    if (r->error)
        return r->error;
    xen_rmb();
    if (prod - r->evt_cons > XENSND_IN_RING_LEN) {
        xring_fail(r, -EIO, "backend's event page index is corrupted");
        return r->error;
    }
    for (; r->evt_cons != prod; r->evt_cons++) {
        struct xensnd_evt evt;
        /* The shadow's in_prod is ours to write, in_cons its user's: each read once. */
        uint32_t sp = *(volatile uint32_t *)&sh_evt->in_prod, sc = *(volatile uint32_t *)&sh_evt->in_cons;

        memcpy(&evt, (const void *)&XENSND_IN_RING_REF(page, r->evt_cons), sizeof(evt));
        if (sp - sc >= XENSND_IN_RING_LEN)
            continue; /* its user reads none: a position it will not miss (the next one replaces it) */
        memcpy(&XENSND_IN_RING_REF(sh_evt, sp), &evt, sizeof(evt));
        xen_wmb(); /* the slot before the index that publishes it */
        *(volatile uint32_t *)&sh_evt->in_prod = sp + 1;
        *notify = true;
    }
    xen_mb(); /* as xring_events: slots read before in_cons hands them back */
    *(volatile uint32_t *)&page->in_cons = r->evt_cons;
    return 0;
}
