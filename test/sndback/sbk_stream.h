/* A stream's requests (OPEN, CLOSE, READ, WRITE, TRIGGER, volume, HW_PARAM_QUERY), its state
 * machine and its sample clock (position, CUR_POS events, files and capture sources). */
#ifndef SBK_STREAM_H
#define SBK_STREAM_H

#include "sbk_card.h"

/* Handles one request (a private copy) and answers it. */
void sbk_stream_request(struct sbk_stream *s, const struct xensnd_req *req);
/* The stream's timerfd fired: advance the clock. */
void sbk_stream_on_timer(struct sbk_stream *s);
/* Ends an open session as CLOSE does (summary line, file finalized, buffer unmapped). */
void sbk_stream_shutdown(struct sbk_stream *s);

#endif
