/* ring: one sndif stream's request ring, its event page and their two event channels.
 * Requests carry ids; responses are matched by id; every wait is bounded. Everything the
 * backend writes into the shared pages is copied out once and validated before use. */
#ifndef XSND_RING_H
#define XSND_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* ring.h wants xen_mb/xen_rmb/xen_wmb from the includer for interface versions >= 0x00030208. */
#ifndef __XEN_INTERFACE_VERSION__
#define __XEN_INTERFACE_VERSION__ 0x00030208
#endif
#define xen_mb()  __atomic_thread_fence(__ATOMIC_SEQ_CST)
#define xen_rmb() __atomic_thread_fence(__ATOMIC_ACQUIRE)
#define xen_wmb() __atomic_thread_fence(__ATOMIC_RELEASE)
#include <xen/io/sndif.h>

#define XRING_PAGE_SIZE 4096u
#define XRING_SLOTS     32u  /* RING_SIZE of the sndif ring */

#include <xenevtchn.h>
#include <xengnttab.h>

/* One finished request, handed to the owner's callback. */
struct xring_completion {
    uint16_t id;
    uint8_t operation;
    int status;                    /* 0 or a negative errno (validated) */
    struct xensnd_resp rsp;        /* private copy */
    uint64_t cookie;               /* what the owner attached to the request */
};

typedef void (*xring_complete_fn)(void *ctx, const struct xring_completion *done);

struct xring_inflight {
    bool busy;
    uint16_t id;
    uint8_t operation;
    uint64_t cookie;
    long long deadline_ms;
};

struct xring {
    const char *label;             /* "vsnd card 0 stream 0/0", for messages */
    unsigned be_domid;
    unsigned timeout_ms;
    xengntshr_handle *gs;         /* shared with the card; not owned */
    xenevtchn_handle *xce;        /* this stream's own handle: its fd is the stream's poll fd */
    /* A stream relayed by the card's keeper (keeper.c): ring_page and evt_page are a shadow shared
     * with the keeper, which copies them to and from the backend's; relay_fd (a socket to it)
     * carries the notifications both ways and replaces xce (NULL). -1 when not relayed. */
    bool relayed;
    int relay_fd;
    /* Shared with the backend (granted pages): the request ring and the event page. */
    void *ring_page, *evt_page;
    uint32_t ring_ref, evt_ref;
    uint32_t port, evt_port;       /* our ends, unbound until the backend binds them */
    xen_sndif_front_ring_t fr;     /* private indexes over ring_page */
    uint32_t evt_cons;             /* private copy of in_cons: the backend's copy is not trusted */
    uint16_t next_id;
    struct xring_inflight inflight[XRING_SLOTS];
    unsigned ninflight;
    xring_complete_fn on_complete;
    void *ctx;
    /* xring_call's own request: its response is kept here instead of going to on_complete. */
    bool waiting, wait_done;
    uint16_t wait_id;
    int wait_status;
    struct xensnd_resp wait_rsp;
    int error;                     /* sticky: once the backend misbehaved or went silent */
    /* The caller polls the ring with every update it makes anyway (playback: each position
     * event, each application call): responses need not wake it while it has room. */
    bool quiet;
    bool in_wait;                  /* inside xring_wait_until: every response must wake it */
};

int xring_create(struct xring *r, xengntshr_handle *gs, unsigned be_domid, unsigned timeout_ms,
                 const char *label);
void xring_destroy(struct xring *r);
/* A stream relayed by the card's keeper: `shadow` is two pages (request ring, event page) shared
 * with the keeper and relay_fd the socket to it; the ring takes both over. */
void xring_create_relay(struct xring *r, int relay_fd, void *shadow, unsigned timeout_ms, const char *label);
/* Lets go of this process's handles without unbinding the event channels: another process (the
 * keeper, a fork()ed child sharing the same /dev/xen/evtchn open file) goes on using them. */
void xring_leave(struct xring *r);

/* Queues a request without waiting; -EAGAIN when the ring is full. *id_out may be NULL. */
int xring_submit(struct xring *r, struct xensnd_req *req, uint64_t cookie, uint16_t *id_out);
/* Queues a request (TRIGGER, or xring_call's); when the ring is full, first waits (bounded by
 * timeout_ms) for a slot. WRITE and READ never wait: the plugin retries them on its next update. */
int xring_submit_wait(struct xring *r, struct xensnd_req *req);
/* Submits and waits (bounded by timeout_ms) for that request's response; other
 * completions seen meanwhile go to the callback. Returns the response status (<= 0). */
int xring_call(struct xring *r, struct xensnd_req *req, struct xensnd_resp *rsp);

/* Takes every response available now (callback per response) and checks deadlines.
 * Returns 0 or the sticky error. Never blocks. */
int xring_process(struct xring *r);
/* Consumes the event page; *pos gets the newest CUR_POS and *have whether there was one. */
int xring_events(struct xring *r, uint64_t *pos, bool *have);
/* Takes one pending event-channel delivery off the poll fd and unmasks its port. Never blocks. */
void xring_ack(struct xring *r);
/* Waits until the backend notifies or timeout_ms passes; 1 if notified, 0 on timeout. */
int xring_wait(struct xring *r, int timeout_ms);
int xring_fd(const struct xring *r);
/* Waits until fewer than `max` requests are in flight; -ETIMEDOUT after timeout_ms. */
int xring_drain(struct xring *r, unsigned max);

/* Taking over a ring another process used (keeper.c): waits (bounded by timeout_ms) until the
 * backend answered every request on it, drops those answers and the events, and takes the shared
 * indexes as ours. -ETIMEDOUT (the ring then stays unusable) or 0. */
int xring_settle(struct xring *r);

/* The keeper's bridge between a relayed stream's shadow (sh: the back end of its request ring,
 * sh_evt its event page) and the backend's ring r. Each copies what is there now, never blocks,
 * and validates both sides: < 0 when the shadow's indexes are impossible (the user is dropped) or
 * the backend's are (r->error set). *notify: the shadow's user needs a wake-up. */
int xring_bridge_requests(struct xring *r, xen_sndif_back_ring_t *sh);
int xring_bridge_responses(struct xring *r, xen_sndif_back_ring_t *sh, bool *notify);
int xring_bridge_events(struct xring *r, struct xensnd_event_page *sh_evt, bool *notify);

const char *xring_op_name(unsigned op);
long long xring_now_ms(void);

#endif
