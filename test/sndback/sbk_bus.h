/* The xenbus side: watches /local/domain/<own>/backend/vsnd, keeps one sbk_card per
 * <fe>/<devid> found there and drives its state (InitWait, Connected, Closed). */
#ifndef SBK_BUS_H
#define SBK_BUS_H

#include "sbk_card.h"

/* Watches the backend directory and scans it once. 0, or -1 (logged). */
int sbk_bus_start(struct sbk_daemon *d);
/* The xenstore fd is readable: handle the pending watch events. */
void sbk_bus_on_xenstore(struct sbk_daemon *d);
/* A card's event-channel fd is readable. */
void sbk_bus_on_evtchn(struct sbk_card *card);
/* Serves held and pending requests whose time has come; returns the next deadline
 * (CLOCK_MONOTONIC ns, UINT64_MAX for none). */
uint64_t sbk_bus_run_deadlines(struct sbk_daemon *d);
/* Clean shutdown: every card torn down (files closed, pages unmapped, ports unbound), Closed. */
void sbk_bus_stop(struct sbk_daemon *d);

#endif
