/* keeper: one card shared by several processes of one user (README "One card, several processes").
 * The process that connected the card (the holder) listens on its token; the first process of its
 * user that asks for a stream makes it fork the keeper, which inherits every ring's mapping and
 * event channel, so the rings outlive the holder. The keeper relays the other processes' streams
 * (their audio buffers are their own grants), hands streams out one process each, takes back a
 * stream whose process ended, and disconnects the card when the last of them is gone. */
#ifndef XSND_KEEPER_H
#define XSND_KEEPER_H

#include <pthread.h>
#include <stdbool.h>

#include "ring.h"
#include "xs_config.h"

#define XKEEP_SHADOW_BYTES (2 * XRING_PAGE_SIZE) /* a relayed stream's request ring and event page */

/* What the holder's listener needs of its card (pcm_xen.c owns all of it). */
struct xkeep_host {
    struct xsc_conn *conn;
    unsigned nstreams;
    pthread_mutex_t *lock; /* the plugin's card lock: held around the callbacks and the fork */
    void *ctx;
    /* Under *lock: the card's rings now and which streams this process uses; false once the
     * card is being closed (no keeper then). */
    bool (*snapshot)(void *ctx, struct xring **rings, const bool **in_use);
    /* Under *lock, in the holder, once the keeper runs: the holder's end of the claim of each
     * stream it uses (-1 for the others); from now on its streams are claimed from the keeper. */
    void (*now_shared)(void *ctx, const int *claim_fds);
};

struct xkeep_listener {
    struct xkeep_host host;
    pthread_t thread;
    bool started;
};

/* Starts the holder's listener thread on conn->token_fd (a listening socket). */
int xkeep_listen_start(struct xkeep_listener *l, const struct xkeep_host *host);
/* Stops and joins it (the card is going; host.snapshot already answers false). */
void xkeep_listen_stop(struct xkeep_listener *l);

/* Asks the card's holder or keeper (token `nonce`) for stream sidx. A relayed stream passes its
 * shadow (a memfd of XKEEP_SHADOW_BYTES, set up by xring_create_relay); the holder's own
 * stream (direct) passes -1. 0 and *fd_out, the claim (held as long as the stream is used; its end
 * releases it), or: -EBUSY (*user_pid uses it), -EPERM (refused: another user), -EAGAIN (nobody
 * answers there now: a keeper that is ending), another -errno. Bounded by timeout_ms. */
int xkeep_claim(const char *nonce, unsigned sidx, int shadow_fd, unsigned timeout_ms, int *fd_out, long *user_pid);

#endif
