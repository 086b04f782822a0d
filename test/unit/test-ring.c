/* Unit tests of ring.c's response loop over a ring page of this process: no Xen, no backend.
 * The test plays the backend by writing responses into the shared ring itself. The case that
 * matters: a response the backend pushes, without notifying, while the frontend is between
 * taking responses and re-arming rsp_event (here: from the on_complete callback, which runs
 * inside the take loop) must be consumed by the same xring_process call. That is what
 * RING_FINAL_CHECK_FOR_RESPONSES's re-read of rsp_prod after setting rsp_event is for: without
 * it the backend, seeing rsp_event already passed, never notifies and the response waits for
 * whatever polls the ring next (make mutants: rsp-prod-recheck-skipped). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ring.h"

/* The plan: one line per CHECK in main(). "--plan" prints only it. */
#define RING_TEST_CASES 13

#define UNIT_NAME "ring"
#include "unit-check.h"

/* The test's view of the ring: the shared page as the backend sees it, and what completed. */
struct rt_state {
    struct xring *r;
    unsigned ncomplete;
    uint16_t ids[XRING_SLOTS];
    int push_from_callback;   /* id of the response on_complete pushes on its first call; -1: none */
};

/* The backend's side: one response in the next slot, then rsp_prod (entries first: wmb). No
 * notification: the frontend must not need one for a response pushed before it re-armed. */
static void rt_backend_respond(struct xring *r, uint16_t id, uint8_t op)
{
    xen_sndif_sring_t *s = r->fr.sring;
    RING_IDX prod = s->rsp_prod;
    struct xensnd_resp *rsp = &s->ring[prod % RING_SIZE(&r->fr)].rsp;

    memset(rsp, 0, sizeof(*rsp));
    rsp->id = id;
    rsp->operation = op;
    rsp->status = 0;
    xen_wmb();
    s->rsp_prod = prod + 1;
}

static void rt_on_complete(void *ctx, const struct xring_completion *done)
{
    struct rt_state *st = ctx;

    if (st->ncomplete < XRING_SLOTS)
        st->ids[st->ncomplete] = done->id;
    st->ncomplete++;
    /* Inside the take loop, before the final check: the window the re-read of rsp_prod closes. */
    if (st->push_from_callback >= 0) {
        rt_backend_respond(st->r, (uint16_t)st->push_from_callback, XENSND_OP_WRITE);
        st->push_from_callback = -1;
    }
}

/* A request in flight as xring_submit leaves it (the ring's request slot is not needed here). */
static void rt_in_flight(struct xring *r, uint16_t id, uint8_t op)
{
    r->inflight[id] = (struct xring_inflight){ true, id, op, 100u + id, xring_now_ms() + r->timeout_ms };
    r->ninflight++;
    r->fr.req_prod_pvt++;
    r->fr.sring->req_prod = r->fr.req_prod_pvt;
}

int main(int argc, char **argv)
{
    static struct xring r;
    struct rt_state st = { .r = &r, .push_from_callback = -1 };
    void *page;
    int rc;

    if (argc > 1 && !strcmp(argv[1], "--plan")) {
        printf("%d\n", RING_TEST_CASES);
        return 0;
    }
    printf("PLAN: %d\n", RING_TEST_CASES);
    if (!(page = aligned_alloc(XRING_PAGE_SIZE, XRING_PAGE_SIZE))) {
        printf("FAIL: ring: setup: out of memory\n");
        return 1;
    }
    /* xring_create without its handles: the page and private indexes only. */
    memset(&r, 0, sizeof(r));
    r.label = "unit ring";
    r.timeout_ms = 60000;
    r.ring_page = page;
    r.on_complete = rt_on_complete;
    r.ctx = &st;
    SHARED_RING_INIT((xen_sndif_sring_t *)page);
    FRONT_RING_INIT(&r.fr, (xen_sndif_sring_t *)page, XRING_PAGE_SIZE);

    for (uint16_t id = 0; id < 3; id++)
        rt_in_flight(&r, id, XENSND_OP_WRITE);
    r.next_id = 3;
    rt_backend_respond(&r, 0, XENSND_OP_WRITE);
    st.push_from_callback = 1; /* id 1 is answered while id 0's completion runs */

    rc = xring_process(&r);
    CHECK("xring_process returns 0", rc == 0, "returned %d", rc);
    CHECK("a response pushed inside the take loop, without a notification, is consumed by the same call",
          st.ncomplete == 2, "%u completions (expected 2: ids 0 and 1)", st.ncomplete);
    CHECK("completions in ring order", st.ncomplete >= 2 && st.ids[0] == 0 && st.ids[1] == 1, "ids %u, %u",
          st.ids[0], st.ids[1]);
    CHECK("rsp_cons reaches rsp_prod", r.fr.rsp_cons == 2 && r.fr.sring->rsp_prod == 2, "rsp_cons %u, rsp_prod %u",
          r.fr.rsp_cons, r.fr.sring->rsp_prod);
    CHECK("rsp_event is rsp_cons + 1 afterwards (the backend notifies for the next response)",
          r.fr.sring->rsp_event == r.fr.rsp_cons + 1, "rsp_event %u, rsp_cons %u", r.fr.sring->rsp_event,
          r.fr.rsp_cons);
    CHECK("one request left in flight", r.ninflight == 1 && r.inflight[2].busy && !r.inflight[0].busy &&
          !r.inflight[1].busy, "ninflight %u", r.ninflight);

    rc = xring_process(&r);
    CHECK("nothing new: a second call completes nothing", rc == 0 && st.ncomplete == 2, "rc %d, %u completions",
          rc, st.ncomplete);
    rt_backend_respond(&r, 2, XENSND_OP_WRITE);
    rc = xring_process(&r);
    CHECK("the last response is taken by the next call", rc == 0 && st.ncomplete == 3 && st.ids[2] == 2 &&
          r.ninflight == 0, "rc %d, %u completions, ninflight %u", rc, st.ncomplete, r.ninflight);
    CHECK("rsp_event re-armed again", r.fr.sring->rsp_event == r.fr.rsp_cons + 1 && r.fr.rsp_cons == 3,
          "rsp_event %u, rsp_cons %u", r.fr.sring->rsp_event, r.fr.rsp_cons);

    /* A quiet ring (playback: polled at every update anyway) with room holds response
     * notifications off: rsp_event a ring ahead, so the backend's next responses do not notify. */
    r.quiet = true;
    rt_in_flight(&r, 3, XENSND_OP_WRITE);
    rc = xring_process(&r);
    CHECK("quiet, with room: rsp_event a ring ahead (no notification for the next responses)",
          rc == 0 && r.fr.sring->rsp_event == r.fr.rsp_cons + RING_SIZE(&r.fr), "rc %d, rsp_event %u, rsp_cons %u",
          rc, r.fr.sring->rsp_event, r.fr.rsp_cons);
    rt_backend_respond(&r, 3, XENSND_OP_WRITE);
    rc = xring_process(&r);
    CHECK("quiet: the response is still taken by the next call", rc == 0 && st.ncomplete == 4 && r.ninflight == 0,
          "rc %d, %u completions, ninflight %u", rc, st.ncomplete, r.ninflight);
    /* Half the slots in flight: the ring needs room back, so every response notifies again. */
    for (uint16_t id = 4; id < 4 + XRING_SLOTS / 2; id++)
        rt_in_flight(&r, id, XENSND_OP_WRITE);
    rc = xring_process(&r);
    CHECK("quiet but half full: rsp_event is rsp_cons + 1 again", rc == 0 && r.fr.sring->rsp_event == r.fr.rsp_cons + 1,
          "rc %d, rsp_event %u, rsp_cons %u", rc, r.fr.sring->rsp_event, r.fr.rsp_cons);
    /* Someone waits for an answer (xring_call, xring_drain): every response notifies. */
    for (uint16_t id = 4; id < 4 + XRING_SLOTS / 2 - 1; id++)
        rt_backend_respond(&r, id, XENSND_OP_WRITE);
    r.in_wait = true;
    rc = xring_process(&r);
    CHECK("quiet, with room, but waited on: rsp_event is rsp_cons + 1",
          rc == 0 && r.ninflight == 1 && r.fr.sring->rsp_event == r.fr.rsp_cons + 1, "rc %d, ninflight %u, rsp_event %u, rsp_cons %u",
          rc, r.ninflight, r.fr.sring->rsp_event, r.fr.rsp_cons);
    free(page);
    return failures ? 1 : 0;
}
