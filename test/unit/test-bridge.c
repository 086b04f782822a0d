/* Unit tests of ring.c's bridge (the keeper's relay of a shared card's stream, keeper.c) and of
 * xring_settle, over pages of this process: no Xen. The test plays the backend on the real ring
 * and the relayed process (a front ring) on the shadow. What must hold: requests and responses
 * cross intact and in order; a response to no request of the shadow's user never reaches it (it
 * belongs to the stream's previous user); impossible indexes from either side are refused, never
 * followed; a shadow whose user reads no events is not overrun; settle adopts the shared indexes
 * once the backend answered everything, and refuses while it has not. Notifications are held off
 * by putting the peers' event indexes out of reach (the ring has no event channel here). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ring.h"

#define BRIDGE_TEST_CASES 12

#define UNIT_NAME "bridge"
#include "unit-check.h"

static void *bt_page(void)
{
    void *p = aligned_alloc(XRING_PAGE_SIZE, XRING_PAGE_SIZE);

    if (!p) {
        printf("FAIL: bridge: setup: out of memory\n");
        exit(1);
    }
    memset(p, 0, XRING_PAGE_SIZE);
    return p;
}

/* The relayed process: queues one request on its (shadow) front ring. */
static void bt_user_request(xen_sndif_front_ring_t *fr, uint16_t id, uint8_t op)
{
    struct xensnd_req *req = RING_GET_REQUEST(fr, fr->req_prod_pvt);

    memset(req, 0, sizeof(*req));
    req->id = id;
    req->operation = op;
    fr->req_prod_pvt++;
    RING_PUSH_REQUESTS(fr);
}

/* The backend: answers the next request of the real ring with its id and operation. */
static void bt_backend_answer(struct xring *r, RING_IDX *req_cons)
{
    xen_sndif_sring_t *s = r->fr.sring;
    struct xensnd_req req = *RING_GET_REQUEST(&r->fr, *req_cons);
    struct xensnd_resp *rsp = RING_GET_RESPONSE(&r->fr, s->rsp_prod);

    (*req_cons)++;
    memset(rsp, 0, sizeof(*rsp));
    rsp->id = req.id;
    rsp->operation = req.operation;
    xen_wmb();
    s->rsp_prod++;
}

static void bt_backend_event(struct xring *r, uint64_t pos)
{
    struct xensnd_event_page *page = r->evt_page;
    struct xensnd_evt *evt = &XENSND_IN_RING_REF(page, page->in_prod);

    memset(evt, 0, sizeof(*evt));
    evt->type = XENSND_EVT_CUR_POS;
    evt->op.cur_pos.position = pos;
    xen_wmb();
    page->in_prod++;
}

int main(int argc, char **argv)
{
    static struct xring r;
    xen_sndif_front_ring_t user;
    xen_sndif_back_ring_t back;
    struct xensnd_event_page *sh_evt;
    RING_IDX be_cons = 0;
    int sp[2];
    bool notify = false;
    int rc;

    if (argc > 1 && !strcmp(argv[1], "--plan")) {
        printf("%d\n", BRIDGE_TEST_CASES);
        return 0;
    }
    printf("PLAN: %d\n", BRIDGE_TEST_CASES);
    /* The backend's ring as the keeper inherited it (no handles: xring_create's pages only). */
    memset(&r, 0, sizeof(r));
    /* settle's waits poll the ring's descriptor: a socket nobody writes to stands in for the
     * event channel (nothing of the relay is used: the bridge itself never reads it). */
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK, 0, sp) < 0) {
        printf("FAIL: bridge: setup: socketpair\n");
        return 1;
    }
    r.relayed = true;
    r.relay_fd = sp[0];
    r.label = "unit bridge";
    r.timeout_ms = 200;
    r.ring_page = bt_page();
    r.evt_page = bt_page();
    SHARED_RING_INIT((xen_sndif_sring_t *)r.ring_page);
    FRONT_RING_INIT(&r.fr, (xen_sndif_sring_t *)r.ring_page, XRING_PAGE_SIZE);
    /* The shadow: the relayed process's front ring, the keeper's back ring, its event page. */
    {
        xen_sndif_sring_t *sh = (xen_sndif_sring_t *)bt_page();

        SHARED_RING_INIT(sh);
        FRONT_RING_INIT(&user, sh, XRING_PAGE_SIZE);
        BACK_RING_INIT(&back, sh, XRING_PAGE_SIZE);
    }
    sh_evt = bt_page();
    /* No notifications anywhere: the backend's req_event and the shadow's rsp_event out of reach. */
    r.fr.sring->req_event = 0x80000000u;

    bt_user_request(&user, 7, XENSND_OP_OPEN);
    bt_user_request(&user, 8, XENSND_OP_WRITE);
    rc = xring_bridge_requests(&r, &back);
    CHECK("two requests cross to the backend's ring, in order, ids kept",
          rc == 0 && r.fr.sring->req_prod == 2 && RING_GET_REQUEST(&r.fr, 0)->id == 7 &&
              RING_GET_REQUEST(&r.fr, 1)->id == 8 &&
              RING_GET_REQUEST(&r.fr, 1)->operation == XENSND_OP_WRITE,
          "rc %d, req_prod %u", rc, r.fr.sring->req_prod);

    bt_backend_answer(&r, &be_cons);
    bt_backend_answer(&r, &be_cons);
    user.sring->rsp_event = 0x80000000u;
    rc = xring_bridge_responses(&r, &back, &notify);
    CHECK("both responses reach the shadow, in order",
          rc == 0 && user.sring->rsp_prod == 2 && RING_GET_RESPONSE(&user, 0)->id == 7 &&
              RING_GET_RESPONSE(&user, 1)->id == 8,
          "rc %d, shadow rsp_prod %u", rc, user.sring->rsp_prod);
    CHECK("the shadow's rsp_event is honoured (its user held wake-ups off)", !notify, "notify set");

    /* A response with no request of this user behind it (the previous user's, late). */
    r.fr.req_prod_pvt++;
    r.fr.sring->req_prod = r.fr.req_prod_pvt;
    bt_backend_answer(&r, &be_cons);
    rc = xring_bridge_responses(&r, &back, &notify);
    CHECK("a response to none of the user's requests is dropped, not handed to it",
          rc == 0 && user.sring->rsp_prod == 2 && r.fr.rsp_cons == 3, "rc %d, shadow rsp_prod %u, rsp_cons %u", rc,
          user.sring->rsp_prod, r.fr.rsp_cons);

    /* The backend claims more responses than requests. */
    r.fr.sring->rsp_prod += 5;
    rc = xring_bridge_responses(&r, &back, &notify);
    CHECK("more responses than requests: refused, the ring marked failed", rc < 0 && r.error < 0, "rc %d", rc);
    r.fr.sring->rsp_prod -= 5;
    r.error = 0;

    /* The user claims more requests than the ring holds. */
    user.sring->req_prod = back.req_cons + RING_SIZE(&back) + 1;
    rc = xring_bridge_requests(&r, &back);
    CHECK("a shadow's req_prod beyond a ring: refused (-EPROTO), nothing crosses",
          rc == -EPROTO && r.fr.sring->req_prod == 3, "rc %d, req_prod %u", rc, r.fr.sring->req_prod);
    user.sring->req_prod = user.req_prod_pvt;

    /* Events: crossed; a user that reads none is not overrun. */
    bt_backend_event(&r, 4096);
    rc = xring_bridge_events(&r, sh_evt, &notify);
    CHECK("a position event crosses, and its user is woken",
          rc == 0 && notify && sh_evt->in_prod == 1 && XENSND_IN_RING_REF(sh_evt, 0).op.cur_pos.position == 4096 &&
              ((struct xensnd_event_page *)r.evt_page)->in_cons == 1,
          "rc %d, notify %d, shadow in_prod %u", rc, notify, sh_evt->in_prod);
    for (unsigned i = 0; i < 2 * XENSND_IN_RING_LEN; i++) {
        bt_backend_event(&r, 8192 + i);
        if (xring_bridge_events(&r, sh_evt, &notify) < 0)
            break;
    }
    CHECK("a user that reads no events: the shadow fills to its length and no further",
          sh_evt->in_prod - sh_evt->in_cons == XENSND_IN_RING_LEN, "shadow in_prod %u, in_cons %u (length %u)",
          sh_evt->in_prod, sh_evt->in_cons,
          (unsigned)XENSND_IN_RING_LEN);
    CHECK("... while the backend's page is consumed whole",
          ((struct xensnd_event_page *)r.evt_page)->in_cons == ((struct xensnd_event_page *)r.evt_page)->in_prod,
          "in_cons %u, in_prod %u", ((struct xensnd_event_page *)r.evt_page)->in_cons,
          ((struct xensnd_event_page *)r.evt_page)->in_prod);
    ((struct xensnd_event_page *)r.evt_page)->in_prod += XENSND_IN_RING_LEN + 1;
    rc = xring_bridge_events(&r, sh_evt, &notify);
    CHECK("a backend event index beyond its page: refused", rc < 0, "rc %d", rc);
    r.error = 0;

    /* settle: with a request unanswered it waits (bounded) and fails; once answered it adopts. */
    r.fr.sring->req_prod++;
    rc = xring_settle(&r);
    CHECK("settle with a request still unanswered: -ETIMEDOUT after the timeout", rc == -ETIMEDOUT, "rc %d", rc);
    bt_backend_answer(&r, &be_cons);
    ((struct xensnd_event_page *)r.evt_page)->in_prod = ((struct xensnd_event_page *)r.evt_page)->in_cons + 3;
    rc = xring_settle(&r);
    CHECK("settle once everything is answered: the shared indexes are ours, stale events dropped",
          rc == 0 && r.fr.req_prod_pvt == r.fr.sring->req_prod && r.fr.rsp_cons == r.fr.sring->rsp_prod &&
              r.evt_cons == ((struct xensnd_event_page *)r.evt_page)->in_prod && r.ninflight == 0 && r.error == 0,
          "rc %d, req_prod_pvt %u/%u, rsp_cons %u/%u", rc, r.fr.req_prod_pvt, r.fr.sring->req_prod, r.fr.rsp_cons,
          r.fr.sring->rsp_prod);
    free(r.ring_page);
    free(r.evt_page);
    free(user.sring);
    free(sh_evt);
    close(sp[0]);
    close(sp[1]);
    return failures ? 1 : 0;
}
