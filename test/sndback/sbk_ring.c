#include "sbk_ring.h"

#include "sbk_log.h"
#include "sbk_names.h"
#include "sbk_stream.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>

/* Requests served per pass before yielding to other streams (a frontend cannot starve them). */
#define SBK_RING_BUDGET 64

static unsigned sbk_fe(const struct sbk_stream *s)
{
    return s->card->fe_domid;
}

static int sbk_bind(struct sbk_stream *s, uint32_t remote, evtchn_port_t *local, bool *bound)
{
    xenevtchn_port_or_error_t port = xenevtchn_bind_interdomain(s->card->xce, sbk_fe(s), remote);

    if (port < 0)
        return -1;
    *local = (evtchn_port_t)port;
    *bound = true;
    xenevtchn_unmask(s->card->xce, *local);     /* start unmasked whatever the device's default */
    return 0;
}

int sbk_ring_connect(struct sbk_stream *s, const struct sbk_transport_refs *t, char *err, size_t errlen)
{
    struct sbk_xen *x = &s->card->d->xen;
    uint32_t ref = t->ring_ref;

    s->ring_page = sbk_map_grants(x, sbk_fe(s), 1, &ref);
    if (!s->ring_page) {
        snprintf(err, errlen, "%s: cannot map ring-ref %u: %s", s->cfg->path, t->ring_ref, strerror(errno));
        return -1;
    }
    BACK_RING_INIT(&s->ring, (xen_sndif_sring_t *)s->ring_page, SBK_PAGE_SIZE);
    ref = t->evt_ref;
    s->evt_page = sbk_map_grants(x, sbk_fe(s), 1, &ref);
    if (!s->evt_page) {
        snprintf(err, errlen, "%s: cannot map evt-ring-ref %u: %s", s->cfg->path, t->evt_ref, strerror(errno));
        return -1;
    }
    /* Start producing where the frontend consumes (read once): as snd_be does. */
    s->evt_prod = ((volatile struct xensnd_event_page *)s->evt_page)->in_cons;
    ((volatile struct xensnd_event_page *)s->evt_page)->in_prod = s->evt_prod;
    s->evt_id = 0;
    if (sbk_bind(s, t->ring_port, &s->ring_port, &s->ring_bound) < 0) {
        snprintf(err, errlen, "%s: cannot bind event-channel %u: %s", s->cfg->path, t->ring_port, strerror(errno));
        return -1;
    }
    if (sbk_bind(s, t->evt_port, &s->evt_port, &s->evt_bound) < 0) {
        snprintf(err, errlen, "%s: cannot bind evt-event-channel %u: %s", s->cfg->path, t->evt_port,
                 strerror(errno));
        return -1;
    }
    s->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    s->timer_src = (struct sbk_evsrc){ SBK_SRC_STREAM_TIMER, s };
    if (s->timer_fd < 0 || sbk_daemon_watch_fd(s->card->d, s->timer_fd, &s->timer_src) < 0) {
        snprintf(err, errlen, "%s: cannot create the clock timer: %s", s->cfg->path, strerror(errno));
        return -1;
    }
    return 0;
}

void sbk_ring_disconnect(struct sbk_stream *s)
{
    struct sbk_xen *x = &s->card->d->xen;

    if (s->timer_fd >= 0) {
        sbk_daemon_unwatch_fd(s->card->d, s->timer_fd);
        close(s->timer_fd);
        s->timer_fd = -1;
    }
    if (s->ring_bound)
        xenevtchn_unbind(s->card->xce, s->ring_port);
    if (s->evt_bound)
        xenevtchn_unbind(s->card->xce, s->evt_port);
    s->ring_bound = s->evt_bound = false;
    sbk_unmap_grants(x, s->ring_page, 1);
    sbk_unmap_grants(x, s->evt_page, 1);
    s->ring_page = NULL;
    s->evt_page = NULL;
    s->held = s->ring_pending = false;
}

static void sbk_push_responses(struct sbk_stream *s)
{
    int notify = 0;

    if (s->cfg->opts.corrupt_rsp_prod && s->writes_answered >= 10) {
        /* Mid-stream, publish more responses than there are requests: the frontend must notice. */
        xen_wmb();
        s->ring.sring->rsp_prod = s->ring.rsp_prod_pvt + 2 * RING_SIZE(&s->ring);
        notify = 1;
        if (!s->rsp_corrupted)
            sbk_warn("%s: publishing a corrupt rsp_prod (--corrupt-rsp-prod)", s->cfg->uid);
        s->rsp_corrupted = true;
    } else {
        RING_PUSH_RESPONSES_AND_CHECK_NOTIFY(&s->ring, notify);
    }
    if (notify)
        xenevtchn_notify(s->card->xce, s->ring_port);
}

/* --bad-response: what a hostile or broken backend might answer instead. */
static void sbk_spoil_response(const struct sbk_stream *s, struct xensnd_resp *rsp)
{
    switch (s->cfg->opts.bad_response) {
    case SBK_BAD_RSP_ID:
        rsp->id = (uint16_t)(rsp->id + 1000);
        break;
    case SBK_BAD_RSP_OP:
        rsp->operation = XENSND_OP_READ;
        break;
    case SBK_BAD_RSP_STATUS:
        rsp->status = 12345;
        break;
    case SBK_BAD_RSP_NONE:
        return;
    }
    sbk_warn("%s: answering WRITE id=%u with a spoiled response (--bad-response)", s->cfg->uid, rsp->id);
}

void sbk_ring_respond(struct sbk_stream *s, const struct xensnd_req *req, int32_t status,
                      const struct xensnd_query_hw_param *hw)
{
    struct xensnd_resp rsp;
    const char *ename = status < 0 ? sbk_errno_name(-status) : NULL;

    memset(&rsp, 0, sizeof(rsp));
    rsp.id = req->id;
    rsp.operation = req->operation;
    rsp.status = status;
    if (req->operation == XENSND_OP_WRITE && ++s->writes_answered == 10)
        sbk_spoil_response(s, &rsp);
    if (hw)
        rsp.resp.hw_param = *hw;
    memcpy(RING_GET_RESPONSE(&s->ring, s->ring.rsp_prod_pvt), &rsp, sizeof(rsp));
    s->ring.rsp_prod_pvt++;
    sbk_push_responses(s);
    sbk_info("%s: %s id=%u -> %d%s%s", s->cfg->uid, sbk_op_name(req->operation), req->id, status,
             ename ? " " : "", ename ? ename : "");
}

/* A request leaves the fault filters here, now or after its --delay-ms. */
static void sbk_ring_process(struct sbk_stream *s, const struct xensnd_req *req)
{
    unsigned op = req->operation;
    const struct sbk_stream_opts *o = &s->cfg->opts;
    unsigned seen = op < SBK_NUM_OPS ? ++s->op_seen[op] : 0;

    if (op < SBK_NUM_OPS && o->answer_error[op] && (!o->answer_error_nth[op] || o->answer_error_nth[op] == seen)) {
        sbk_ring_respond(s, req, -o->answer_error[op], NULL);
        return;
    }
    sbk_stream_request(s, req);
}

static void sbk_ring_take(struct sbk_stream *s, const struct xensnd_req *req)
{
    unsigned op = req->operation;
    const struct sbk_stream_opts *o = &s->cfg->opts;

    if (op < SBK_NUM_OPS && (o->no_answer_ops & (1u << op))) {
        sbk_info("%s: %s id=%u swallowed (--no-answer)", s->cfg->uid, sbk_op_name(op), req->id);
        return;
    }
    if (o->has_delay && o->delay_ms) {
        s->held = true;
        s->held_req = *req;
        s->held_due_ns = sbk_now_ns() + (uint64_t)o->delay_ms * 1000000u;
        return;
    }
    sbk_ring_process(s, req);
}

uint64_t sbk_ring_next_deadline(const struct sbk_stream *s)
{
    if (!s->ring_page)
        return UINT64_MAX;
    if (s->held)
        return s->held_due_ns;
    return s->ring_pending ? 0 : UINT64_MAX;
}

int sbk_ring_service(struct sbk_stream *s)
{
    unsigned budget = SBK_RING_BUDGET;
    int more;

    if (!s->ring_page)
        return 0;
    s->ring_pending = false;
    do {
        RING_IDX rp;

        if (s->held) {
            if (sbk_now_ns() < s->held_due_ns)
                return 0;
            s->held = false;
            sbk_ring_process(s, &s->held_req);
        }
        rp = ((volatile xen_sndif_sring_t *)s->ring.sring)->req_prod;   /* read once */
        xen_rmb();
        if (RING_REQUEST_PROD_OVERFLOW(&s->ring, rp)) {
            sbk_error("%s: frontend broke the ring: req_prod %u, %u requests unanswered, ring of %u",
                      s->cfg->uid, rp, rp - s->ring.rsp_prod_pvt, RING_SIZE(&s->ring));
            return -1;
        }
        while (s->ring.req_cons != rp && !s->held) {
            struct xensnd_req req;

            /* Every slot holds an unanswered request (--no-answer): no room for answers. */
            if (RING_REQUEST_CONS_OVERFLOW(&s->ring, s->ring.req_cons))
                return 0;
            if (budget-- == 0) {
                s->ring_pending = true;
                return 0;
            }
            RING_COPY_REQUEST(&s->ring, s->ring.req_cons, &req);
            s->ring.req_cons++;
            sbk_ring_take(s, &req);
        }
        if (s->held)
            return 0;
        RING_FINAL_CHECK_FOR_REQUESTS(&s->ring, more);
    } while (more);
    return 0;
}

void sbk_ring_send_cur_pos(struct sbk_stream *s, uint64_t position)
{
    volatile struct xensnd_event_page *page = s->evt_page;
    struct xensnd_evt ev;
    uint16_t id = s->evt_id++;
    uint32_t cons;

    if (s->cfg->opts.no_events || !page)
        return;
    cons = page->in_cons;                       /* read once */
    xen_mb();
    if (s->evt_prod - cons >= XENSND_IN_RING_LEN) {
        s->stats.dropped_events++;              /* full (or a bogus in_cons): snd_be drops too */
        return;
    }
    memset(&ev, 0, sizeof(ev));
    ev.id = id;
    ev.type = XENSND_EVT_CUR_POS;
    ev.op.cur_pos.position = position;
    memcpy(&XENSND_IN_RING_REF(s->evt_page, s->evt_prod), &ev, sizeof(ev));
    xen_wmb();
    page->in_prod = ++s->evt_prod;
    if (s->cfg->opts.bad_event_index && s->stats.events == 9) {
        page->in_prod = cons + 100; /* --bad-event-index: more events than the ring holds */
        sbk_warn("%s: publishing in_prod %u with in_cons %u (--bad-event-index)", s->cfg->uid, cons + 100, cons);
    }
    s->stats.events++;
    xenevtchn_notify(s->card->xce, s->evt_port);
}
