/* A stream's transport: the request ring (requests in, responses out), the event page
 * (CUR_POS events out) and their event channels. Faults that act on the transport
 * (--no-answer, --answer-error, --delay-ms, --corrupt-rsp-prod, --no-events) live here. */
#ifndef SBK_RING_H
#define SBK_RING_H

#include "sbk_card.h"

struct sbk_transport_refs {
    uint32_t ring_ref, ring_port, evt_ref, evt_port;    /* as the frontend published them */
};

/* Maps the ring and event pages, binds both ports, creates the clock timer.
 * 0, or -1 with err set (the caller then calls sbk_ring_disconnect). */
int sbk_ring_connect(struct sbk_stream *s, const struct sbk_transport_refs *t, char *err, size_t errlen);
void sbk_ring_disconnect(struct sbk_stream *s);

/* Serves the request ring after a notification (or a held request's deadline).
 * Returns -1 when the frontend broke the ring (the card must go Closed), else 0. */
int sbk_ring_service(struct sbk_stream *s);
/* Earliest time this stream needs sbk_ring_service without a notification: 0 for now,
 * UINT64_MAX for never. */
uint64_t sbk_ring_next_deadline(const struct sbk_stream *s);

/* Answers a request (status 0 or -XEN_E*; hw for HW_PARAM_QUERY, else NULL). */
void sbk_ring_respond(struct sbk_stream *s, const struct xensnd_req *req, int32_t status,
                      const struct xensnd_query_hw_param *hw);
/* Sends a CUR_POS event and notifies; dropped (and counted) when the page is full. */
void sbk_ring_send_cur_pos(struct sbk_stream *s, uint64_t position);

#endif
