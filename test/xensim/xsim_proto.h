/* Wire protocol between the look-alike libxenevtchn/libxengnttab (xsim_client.c) and the
 * event-channel and grant broker in xensimd (broker.c).
 *
 * Transport: one SOCK_SEQPACKET connection per library handle to $XENSIM_BROKER
 * (ROOT/dom<N>/xensim); the broker knows the domain from the socket the connection came in on.
 * Request/reply: the client sends one struct xsim_req (fixed part + op payload), the broker
 * answers with exactly one struct xsim_rep (fixed part + entries). The one-way ops
 * (EV_NOTIFY_ONEWAY, EV_UNMASK_ONEWAY) get no reply: they stand for a hypercall and a write()
 * to /dev/xen/evtchn, which wait for nobody. The library checks locally what the kernel would
 * refuse; the broker runs them in order with the connection's other requests, and one it
 * cannot run (a library bug) is logged and closes the connection (the next call sees EIO).
 * File descriptors travel
 * as SCM_RIGHTS next to a message:
 *   HELLO(EVTCHN)  reply carries the read end of the handle's delivery pipe (xenevtchn_fd):
 *                  the broker writes one evtchn_port_t (4 bytes, host order) per delivered event.
 *   EV_ATTACH      request carries that read end back (xenevtchn_fdopen after exec or fork, or
 *                  of a passed fd): the connection joins that handle, its other users keep it.
 *   SHR_SHARE      reply carries the memfd holding the shared pages (read-write, size-sealed).
 *   TAB_MAP        reply carries up to XSIM_MAP_CHUNK memfds (read-only reopened ones for
 *                  read-only maps); pages[] says which fd and page backs each mapped page.
 * The first request on a connection must be HELLO; it fixes the connection's kind. A connection
 * that goes away without BYE (process death) is cleaned up the same way. */
#ifndef XSIM_PROTO_H
#define XSIM_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define XSIM_PROTO_VERSION 1u
#define XSIM_PAGE_SIZE     4096u

/* Refs per TAB_MAP request: bounds the fds in one reply (SCM_RIGHTS takes at most 253). */
#define XSIM_MAP_CHUNK     64u
/* Pages one domain may have shared at a time: Linux gntalloc's default `limit`; xensimd
 * --gntalloc-limit raises it (as the module parameter does) up to every ref of the domain's
 * grant table (8192 entries, 0..7 reserved), which bounds one share's reply. */
#define XSIM_GNT_DEFAULT_LIMIT 1024u
#define XSIM_GNT_MAX_LIMIT     8184u
/* Ports of the guest kernel's 2-level event-channel ABI (xen_evtchn_nr_channels()). */
#define XSIM_EV_NR_CHANNELS 4096u
/* "No notification" value of notify_port, as (evtchn_port_t)-1 in xengnttab.h. */
#define XSIM_NO_PORT       UINT32_MAX

enum xsim_kind {
    XSIM_KIND_EVTCHN = 1,  /* xenevtchn handle */
    XSIM_KIND_GNTTAB = 2,  /* xengnttab handle (maps grants of others) */
    XSIM_KIND_GNTSHR = 3,  /* xengntshr handle (shares its own pages) */
};

enum xsim_op {
    XSIM_OP_HELLO = 1,           /* hello                 -> val = caller's domid */
    XSIM_OP_EV_BIND_UNBOUND,     /* port.domid            -> val = new local port */
    XSIM_OP_EV_BIND_INTERDOMAIN, /* port.domid, port.port -> val = new local port */
    XSIM_OP_EV_NOTIFY,           /* port.port */
    XSIM_OP_EV_UNMASK,           /* port.port */
    XSIM_OP_EV_UNBIND,           /* port.port */
    XSIM_OP_EV_ATTACH,           /* + fd: join the handle whose delivery pipe this is */
    XSIM_OP_SHR_SHARE,           /* share                 -> val = share id, n refs, + memfd */
    XSIM_OP_SHR_UNSHARE,         /* unshare               -> flags XSIM_REP_GONE if nothing left */
    XSIM_OP_TAB_MAP,             /* map + refs[count]     -> val = map id, n pages, + fds */
    XSIM_OP_TAB_UNMAP,           /* unmap: the mapping is gone (its notification fires, its
                                  * pages stop holding their grants) */
    XSIM_OP_BYE,                 /* handle closed: release everything now (close is synchronous
                                  * in the kernel); the connection takes no further request */
    XSIM_OP_EV_RESTRICT,         /* port.domid: the handle may only bind to that domain from now on */
    XSIM_OP_EV_BIND_VIRQ,        /* port.port = virq: EACCES when restricted, else ENOSYS (no VIRQs) */
    XSIM_OP_EV_NOTIFY_ONEWAY,    /* port.port, no reply: a port this handle owns (else the
                                  * connection is closed) */
    XSIM_OP_EV_UNMASK_ONEWAY,    /* port.port, no reply: ports it does not own are ignored */
};

struct xsim_req_hello {
    uint32_t version;          /* XSIM_PROTO_VERSION */
    uint32_t kind;             /* enum xsim_kind */
};

struct xsim_req_port {
    uint32_t domid;
    uint32_t port;
};

/* Unmap notification: clear the byte at offset (if < XSIM_PAGE_SIZE) and/or send an event
 * on port (a port of the caller's domain; XSIM_NO_PORT for none). */
struct xsim_req_notify {
    uint32_t offset;
    uint32_t port;
};

struct xsim_req_share {
    uint32_t domid;            /* grantee */
    uint32_t count;            /* pages, 1 .. the domain's limit (xensimd --gntalloc-limit) */
    uint32_t writable;         /* 0 or 1 */
    struct xsim_req_notify notify; /* only with count == 1 */
};

struct xsim_req_unshare {
    uint32_t share_id;
    uint32_t first;            /* first page of the share to revoke */
    uint32_t count;
};

struct xsim_map_ref {
    uint32_t domid;            /* granting domain */
    uint32_t ref;
};

struct xsim_req_map {
    uint32_t count;            /* entries in refs[], 1 .. XSIM_MAP_CHUNK */
    uint32_t writable;         /* the caller maps with PROT_WRITE */
    struct xsim_req_notify notify; /* only with count == 1 */
    struct xsim_map_ref refs[XSIM_MAP_CHUNK];
};

struct xsim_req_unmap {
    uint32_t map_id;           /* TAB_MAP's val */
};

struct xsim_req {
    uint32_t op;               /* enum xsim_op */
    uint32_t reserved;         /* 0 */
    union {
        struct xsim_req_hello hello;
        struct xsim_req_port port;
        struct xsim_req_share share;
        struct xsim_req_unshare unshare;
        struct xsim_req_map map;
        struct xsim_req_unmap unmap;
    } u;
};

#define XSIM_REQ_SIZE(member) (offsetof(struct xsim_req, u) + sizeof(((struct xsim_req *)0)->u.member))
/* A TAB_MAP request carries only `count` refs. */
#define XSIM_REQ_MAP_SIZE(count) \
    (offsetof(struct xsim_req, u) + offsetof(struct xsim_req_map, refs) + (size_t)(count) * sizeof(struct xsim_map_ref))

/* Where mapped page i comes from: page `page` of the fd at index `fd_index` of the reply's fds. */
struct xsim_map_page {
    uint32_t fd_index;
    uint32_t page;
};

#define XSIM_REP_GONE 1u       /* SHR_UNSHARE: every page of the share is now revoked */

struct xsim_rep {
    int32_t err;               /* 0, or the positive errno the call fails with */
    uint32_t val;
    uint32_t n;                /* entries that follow */
    uint32_t flags;
    union {
        uint32_t refs[XSIM_GNT_MAX_LIMIT];           /* SHR_SHARE */
        struct xsim_map_page pages[XSIM_MAP_CHUNK];  /* TAB_MAP */
    } u;
};

#define XSIM_REP_HDR_SIZE offsetof(struct xsim_rep, u)

#endif
