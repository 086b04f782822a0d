/* The event-channel and grant broker of xensimd: plays the hypervisor's event-channel and grant
 * tables plus the guest kernels' evtchn, gntalloc and gntdev drivers for the look-alike
 * libxenevtchn/libxengnttab (protocol: xsim_proto.h, overview: README-evtchn-gnttab.md).
 * Every client is untrusted (this is dom0 code): each message is size-checked and copied once,
 * every id is looked up before use, and a malformed message closes the connection.
 * The daemon is single-threaded: nothing here needs a lock. */
#include "xensimd.h"
#include "xsim_proto.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define BR_NR_PORTS        1024u   /* ports 0..1023 per domain: libxl's max_event_channels 1023 */
#define BR_ABI_NR_CHANNELS XSIM_EV_NR_CHANNELS /* a guest kernel's 2-level ABI: unbind beyond it is EINVAL */
#define BR_NR_REFS         8192u   /* grant-table entries per domain */
#define BR_FIRST_REF       8u      /* refs 0..7 are reserved in Xen (console, xenstore ...) */
#define BR_MAX_NOTES       1024u   /* armed map notifications per gnttab connection */
#define BR_MAX_MAPS        65536u  /* map calls (chunks) alive per gnttab connection */
#define BR_MAX_PORT_REFS   32767u  /* the kernel's refcount is a short */
#define BR_DOMID_SELF      0x7FF0u
#define BR_DOMID_FIRST_RESERVED 0x7FF0u
#define BR_MAX_FDS_OUT     XSIM_MAP_CHUNK
#define BR_DRAIN_MAX       1024u   /* requests taken from one connection per poll round */

_Static_assert(XSIM_GNT_MAX_LIMIT == BR_NR_REFS - BR_FIRST_REF, "a share may take every free ref");

enum br_port_state { BR_PORT_FREE, BR_PORT_RESERVED, BR_PORT_UNBOUND, BR_PORT_INTERDOMAIN };

struct br_evh;

struct br_port {
    uint8_t state;           /* enum br_port_state */
    bool masked;             /* delivered and not unmasked yet (the evtchn driver's !enabled) */
    bool pending;            /* an event came while masked: delivered again on unmask */
    uint16_t remote_dom;     /* UNBOUND: the only domain that may bind it; INTERDOMAIN: the peer */
    uint32_t remote_port;    /* INTERDOMAIN: the peer's port */
    struct br_evh *owner;    /* the evtchn handle it is delivered to; NULL once unbound */
    unsigned refs;           /* unmap notifications holding it open (the kernel's evtchn_get) */
};

/* What to do when a shared or mapped page goes away (UNMAP_NOTIFY_* of gntalloc/gntdev). */
struct br_notify {
    bool clear;              /* zero the byte at offset */
    bool event;              /* send on port (of domain domid); holds a reference on it */
    uint32_t offset;
    uint32_t port;
    unsigned domid;
};

/* One page of a share. A page revoked (unshare, close, granter death) while a peer maps it is
 * "held", as Linux defers ending foreign access until the peer unmaps: its ref stays taken and
 * its share stays counted against the domain's gntalloc limit, but no new map is allowed. */
struct br_page {
    uint32_t ref;            /* grant ref; 0 once revoked and no longer mapped by anyone */
    uint32_t maps;           /* live peer mappings of this page (br_map entries) */
    bool granted;            /* not revoked yet */
};

/* One xengntshr_share_pages call: pages in one memfd, one grant per page. */
struct br_share {
    uint32_t id;             /* the granter's name for it (SHR_UNSHARE) */
    unsigned domid;          /* granting domain */
    uint16_t grantee;
    bool writable;
    int memfd;               /* the pages (shared memory of granter and mappers); size-sealed */
    uint32_t npages, nlive;  /* pages, pages still granted */
    uint32_t nheld;          /* pages revoked but still mapped by a peer */
    struct br_page *pages;
    unsigned users;          /* 1 while the granter has it, +1 per mapped page (br_map entry) */
    struct br_notify notify; /* share_page_notify: fired when page 0 is revoked */
    struct br_share *next;   /* in the granting connection's list */
};

struct br_grant {
    struct br_share *share;  /* NULL: free entry */
    uint32_t page;
    bool revoked;            /* held: taken, but refused to new maps */
};

/* One TAB_MAP call (a chunk of at most XSIM_MAP_CHUNK refs): its pages stay mapped, and
 * referenced, until the mapper unmaps or goes away; then its armed notification fires. */
struct br_map {
    uint32_t id;
    uint32_t count;
    bool armed;              /* xengnttab_map_grant_ref_notify (count 1): notify on unmap */
    struct br_notify notify;
    struct br_map *next;
    struct {
        struct br_share *share; /* holds a user reference */
        uint32_t page;
    } ent[];
};

struct br_domain {
    struct br_port ports[BR_NR_PORTS];
    struct br_grant *grants; /* BR_NR_REFS entries, allocated with the first share */
    uint32_t next_ref;       /* where the search for a free ref starts (refs are reused late) */
    unsigned shared_pages;   /* counted against xsim_gnt_limit, per whole share (gntalloc) */
};

/* An event-channel handle: what an open file of /dev/xen/evtchn is to the evtchn driver (its
 * ports, its delivery queue, its restriction). Processes reach it through broker connections:
 * the opener's, and one more per xenevtchn_fdopen of its delivery pipe (after an exec, in a
 * fork()ed child, in a process it was passed to). Each of them may use every port of it, as
 * processes sharing one open file of the device may. It lives while a connection to it does,
 * or while the read end of its pipe is open anywhere (xenevtchn_fd: the open file itself; a
 * fork()ed child that has not called fdopen yet, or an exec'd image, keeps it, as on Xen). */
struct br_evh {
    unsigned domid;
    int pid;                 /* its opener, for log lines */
    bool restricted;         /* xenevtchn_restrict done, binds only to restrict_domid */
    uint16_t restrict_domid;
    bool shared;             /* an fdopen joined it: a library may not know all of its ports */
    unsigned nconns;         /* connections to it; 0: kept by a holder of the read end only */
    int pipe_w;              /* write end of the delivery pipe (non-blocking) */
    dev_t pipe_dev;          /* the read end's identity, which fdopen presents */
    ino_t pipe_ino;
    struct br_evh *next;     /* in br_evhs */
};

struct br_conn {
    int fd;
    unsigned domid;
    int pid;
    uint32_t kind;           /* enum xsim_kind, 0 before HELLO */
    bool closed;             /* BYE done: everything released, no more requests */
    bool dead;               /* a queued one-way request failed while another connection
                              * drained this one (br_ev_attach): dropped at its next turn */
    struct br_evh *evh;      /* EVTCHN: the handle it uses; NULL once released */
    struct br_share *shares; /* GNTSHR: shares this handle made */
    struct br_map *maps;     /* GNTTAB: live mappings */
    unsigned nmaps, nnotes;  /* ... and how many of them have an armed notification */
    uint32_t next_id;
    struct br_conn *next_ev; /* in br_evtchn_conns */
};

/* What a handler wants to send back. rep comes last: only its header is cleared per request
 * (a share's refs make it 32 KiB). */
struct br_reply {
    size_t len;
    int fds[BR_MAX_FDS_OUT];
    bool close_fd[BR_MAX_FDS_OUT]; /* temporary fds (read-only reopens) closed once sent */
    unsigned nfds;
    struct xsim_rep rep;
};

static struct br_domain *br_domains;
static unsigned br_ndomains;
static struct br_conn *br_evtchn_conns; /* evtchn connections with a handle, for EV_ATTACH */
static struct br_evh *br_evhs;          /* every evtchn handle */

#define BR_LOG(c, ...)                                                                 \
    do {                                                                               \
        if (xsim_verbose)                                                              \
            br_log(c, __VA_ARGS__);                                                    \
    } while (0)

static void br_log(const struct br_conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void br_log(const struct br_conn *c, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    xsim_log("broker: dom%u pid %d: %s", c->domid, c->pid, msg);
}

/* ---- event channels ---- */

static struct br_port *br_port(unsigned domid, uint32_t port)
{
    return port < BR_NR_PORTS ? &br_domains[domid].ports[port] : NULL;
}

static void br_deliver(struct br_evh *owner, uint32_t port)
{
    /* Non-blocking write of 4 bytes (atomic in a pipe); at most one queued delivery per bound
     * port, so the 64 KiB pipe only fills after >16000 unbind/rebind cycles with no reader. */
    if (write(owner->pipe_w, &port, sizeof(port)) != (ssize_t)sizeof(port))
        xsim_log("broker: dom%u pid %d: delivery queue full or gone, event on port %u lost",
                 owner->domid, owner->pid, port);
}

/* The hypervisor marks (domid, port) pending; the owning handle gets it unless masked. */
static void br_set_pending(unsigned domid, uint32_t port)
{
    struct br_port *p = br_port(domid, port);

    if (!p->owner || p->masked) {
        p->pending = true;
        return;
    }
    p->masked = true;
    br_deliver(p->owner, port);
}

/* EVTCHNOP_send from (domid, port): interdomain -> the peer; unbound -> silently dropped. */
static void br_send(unsigned domid, uint32_t port)
{
    struct br_port *p = br_port(domid, port);

    if (p->state == BR_PORT_INTERDOMAIN)
        br_set_pending(p->remote_dom, p->remote_port);
}

/* EVTCHNOP_close: the peer of an interdomain port reverts to unbound, reserved for us. */
static void br_port_close(unsigned domid, uint32_t port)
{
    struct br_port *p = br_port(domid, port);

    if (p->state == BR_PORT_INTERDOMAIN) {
        struct br_port *r = br_port(p->remote_dom, p->remote_port);

        r->state = BR_PORT_UNBOUND;
        r->remote_dom = (uint16_t)domid;
        r->remote_port = 0;
    }
    *p = (struct br_port){ .state = BR_PORT_FREE };
}

static void br_port_disown(unsigned domid, uint32_t port)
{
    struct br_port *p = br_port(domid, port);

    p->owner = NULL;
    p->masked = p->pending = false;
    if (!p->refs)
        br_port_close(domid, port);
}

/* evtchn_get: only a port bound through the evtchn driver (or still held) can be referenced. */
static int br_port_get(unsigned domid, uint32_t port)
{
    struct br_port *p = br_port(domid, port);

    if (!p || (p->state != BR_PORT_UNBOUND && p->state != BR_PORT_INTERDOMAIN) ||
        (!p->owner && !p->refs) || p->refs >= BR_MAX_PORT_REFS)
        return EINVAL;
    p->refs++;
    return 0;
}

static void br_port_put(unsigned domid, uint32_t port)
{
    struct br_port *p = br_port(domid, port);

    if (--p->refs == 0 && !p->owner)
        br_port_close(domid, port);
}

/* Xen's get_free_port: the lowest free one (0 is reserved). */
static int br_port_alloc(unsigned domid, uint32_t *port)
{
    for (uint32_t i = 1; i < BR_NR_PORTS; i++)
        if (br_domains[domid].ports[i].state == BR_PORT_FREE) {
            *port = i;
            return 0;
        }
    return ENOSPC;
}

/* Ports belong to the handle: any connection to it may use them. */
static bool br_owns(const struct br_conn *c, uint32_t port)
{
    const struct br_port *p = br_port(c->domid, port);

    return p && c->evh && p->owner == c->evh;
}

static int br_ev_bind_unbound(struct br_conn *c, uint32_t remote, uint32_t *out)
{
    struct br_port *p;
    int err;

    if (c->evh->restricted) /* the evtchn driver: a restricted handle offers no ports */
        return EACCES;
    if (remote == BR_DOMID_SELF)
        remote = c->domid;
    if (remote > UINT16_MAX) /* the kernel would truncate it to a domid_t */
        return EINVAL;
    if ((err = br_port_alloc(c->domid, out)))
        return err;
    p = br_port(c->domid, *out);
    *p = (struct br_port){ .state = BR_PORT_UNBOUND, .remote_dom = (uint16_t)remote, .owner = c->evh };
    return 0;
}

static int br_ev_bind_interdomain(struct br_conn *c, uint32_t rdom, uint32_t rport, uint32_t *out)
{
    struct br_port *l, *r;
    int err;

    if (c->evh->restricted && rdom != c->evh->restrict_domid) /* as given: DOMID_SELF is refused */
        return EACCES;
    if (rdom == BR_DOMID_SELF)
        rdom = c->domid;
    if (rdom >= br_ndomains)
        return ESRCH;
    if ((err = br_port_alloc(c->domid, out)))
        return err;
    r = br_port(rdom, rport);
    if (!r || r->state != BR_PORT_UNBOUND || r->remote_dom != c->domid)
        return EINVAL;
    l = br_port(c->domid, *out);
    *l = (struct br_port){ .state = BR_PORT_INTERDOMAIN, .remote_dom = (uint16_t)rdom,
                           .remote_port = rport, .owner = c->evh };
    r->state = BR_PORT_INTERDOMAIN;
    r->remote_dom = (uint16_t)c->domid;
    r->remote_port = *out;
    /* As Xen: notifications sent to the unbound port may have been lost, so the new local
     * port is always made pending once. Binders see one event right after binding. */
    br_set_pending(c->domid, *out);
    return 0;
}

/* IOCTL_EVTCHN_NOTIFY as in Linux >= 4.3: any port the handle has not bound is ENOTCONN. */
static int br_ev_notify(struct br_conn *c, uint32_t port)
{
    if (!br_owns(c, port))
        return ENOTCONN;
    br_send(c->domid, port);
    return 0;
}

/* Like a write() to the evtchn device: unknown ports are ignored, never an error. */
static void br_ev_unmask(struct br_conn *c, uint32_t port)
{
    struct br_port *p = br_port(c->domid, port);

    if (!br_owns(c, port) || !p->masked)
        return;
    p->masked = false;
    if (p->pending) {
        p->pending = false;
        br_set_pending(c->domid, port);
    }
}

static int br_ev_unbind(struct br_conn *c, uint32_t port)
{
    if (port >= BR_ABI_NR_CHANNELS)
        return EINVAL;
    if (!br_owns(c, port))
        return ENOTCONN;
    br_port_disown(c->domid, port);
    return 0;
}

/* IOCTL_EVTCHN_RESTRICT_DOMID: once only, and only to a real domain other than dom0. It
 * belongs to the handle (the open file), so it binds every connection to it. */
static int br_ev_restrict(struct br_conn *c, uint32_t domid)
{
    if (c->evh->restricted)
        return EACCES;
    if (domid == 0 || domid >= BR_DOMID_FIRST_RESERVED)
        return EINVAL;
    c->evh->restricted = true;
    c->evh->restrict_domid = (uint16_t)domid;
    return 0;
}

/* There are no virtual IRQs in xensim; a restricted handle is refused first, as by the driver. */
static int br_ev_bind_virq(const struct br_conn *c)
{
    return c->evh->restricted ? EACCES : ENOSYS;
}

static int br_pipe_identity(int fd, dev_t *dev, ino_t *ino)
{
    struct stat st;

    if (fstat(fd, &st) < 0 || !S_ISFIFO(st.st_mode))
        return EINVAL;
    *dev = st.st_dev;
    *ino = st.st_ino;
    return 0;
}

/* Is the delivery pipe's read end still open anywhere (in a process, in a message in flight,
 * in an EV_ATTACH the broker is running)? Its write end polls POLLERR once no reader is left. */
static bool br_evh_held(const struct br_evh *h)
{
    struct pollfd pfd = { .fd = h->pipe_w, .events = 0 };

    return poll(&pfd, 1, 0) >= 0 && !(pfd.revents & POLLERR);
}

/* The last holder of the open file let go: its ports close (as the evtchn driver's release). */
static void br_evh_release(struct br_evh *h)
{
    for (uint32_t i = 1; i < BR_NR_PORTS; i++)
        if (br_domains[h->domid].ports[i].owner == h)
            br_port_disown(h->domid, i);
    for (struct br_evh **pp = &br_evhs; *pp; pp = &(*pp)->next)
        if (*pp == h) {
            *pp = h->next;
            break;
        }
    if (xsim_verbose)
        xsim_log("broker: dom%u: evtchn handle of pid %d released: its ports are closed", h->domid, h->pid);
    close(h->pipe_w);
    free(h);
}

/* Releases every handle that no connection uses and no process holds any more. */
static void br_evh_reap(void)
{
    struct br_evh *h = br_evhs, *next;

    for (; h; h = next) {
        next = h->next;
        if (!h->nconns && !br_evh_held(h))
            br_evh_release(h);
    }
}

/* Connection c stops using its handle (BYE, death, or an fdopen joining another one). The
 * handle goes with its last user: unless a process still holds its read end (a fork()ed child
 * not yet attached, an exec'd image), then br_evh_reap releases it once that one lets go. */
static void br_evh_leave(struct br_conn *c)
{
    struct br_evh *h = c->evh;

    if (!h)
        return;
    for (struct br_conn **pp = &br_evtchn_conns; *pp; pp = &(*pp)->next_ev)
        if (*pp == c) {
            *pp = c->next_ev;
            break;
        }
    c->evh = NULL;
    if (--h->nconns == 0 && !br_evh_held(h))
        br_evh_release(h);
}

/* HELLO(EVTCHN): a fresh handle with its delivery pipe, used by c; *read_end goes to the client. */
static int br_evh_new(struct br_conn *c, int *read_end)
{
    struct br_evh *h = calloc(1, sizeof(*h));
    int p[2];

    /* The client's end blocks (xenevtchn_pending blocks like read() on the device); ours must not. */
    if (!h || pipe2(p, O_CLOEXEC) < 0) {
        free(h);
        return ENFILE;
    }
    if (fcntl(p[1], F_SETFL, O_NONBLOCK) < 0 || br_pipe_identity(p[0], &h->pipe_dev, &h->pipe_ino)) {
        close(p[0]);
        close(p[1]);
        free(h);
        return ENFILE;
    }
    h->domid = c->domid;
    h->pid = c->pid;
    h->pipe_w = p[1];
    h->nconns = 1;
    h->next = br_evhs;
    br_evhs = h;
    c->evh = h;
    c->next_ev = br_evtchn_conns;
    br_evtchn_conns = c;
    *read_end = p[0];
    return 0;
}

static void br_drain(struct br_conn *c);

/* xenevtchn_fdopen: connection c leaves its own handle and becomes one more connection to the
 * handle whose delivery pipe fd is (same ports, deliveries, restriction). The connections
 * already on it keep using it, as processes sharing an open file of /dev/xen/evtchn do. */
static int br_ev_attach(struct br_conn *c, int fd)
{
    struct br_evh *h;
    dev_t dev;
    ino_t ino;

    if (fd < 0 || br_pipe_identity(fd, &dev, &ino))
        return EINVAL;
    for (h = br_evhs; h; h = h->next)
        if (h != c->evh && h->domid == c->domid && h->pipe_dev == dev && h->pipe_ino == ino)
            break;
    if (!h)
        return EINVAL;
    /* One-way requests already queued on the handle's connections (notifies sent before an
     * exec or a fork) run before c may use its ports, as their hypercalls ran first. fd, held
     * here, keeps h alive if one of them leaves meanwhile. */
    for (struct br_conn *m = br_evtchn_conns, *next; m; m = next) {
        next = m->next_ev; /* br_drain(m) may only take m itself off the list */
        if (m->evh == h)
            br_drain(m);
    }
    if (c->closed || c->dead) /* a drained connection handed in c's own pipe, and c was drained */
        return EINVAL;
    br_evh_leave(c);
    c->evh = h;
    c->next_ev = br_evtchn_conns;
    br_evtchn_conns = c;
    h->nconns++;
    h->shared = true;
    return 0;
}

/* ---- grants ---- */

/* A connection's next share or notification id; 0 is never used ("none"). */
static uint32_t br_next_id(struct br_conn *c)
{
    if (++c->next_id == 0)
        c->next_id = 1;
    return c->next_id;
}

static void br_share_put(struct br_share *s)
{
    if (--s->users)
        return;
    close(s->memfd);
    free(s->pages);
    free(s);
}

static void br_notify_fire(const struct br_notify *n, struct br_share *s, uint32_t page)
{
    static const uint8_t zero;

    /* The byte first, then the event (gntalloc/gntdev order): the peer sees it cleared. */
    if (n->clear && pwrite(s->memfd, &zero, 1, (off_t)page * XSIM_PAGE_SIZE + n->offset) != 1)
        xsim_log("broker: cannot clear unmap-notify byte: %s", strerror(errno));
    if (n->event) {
        br_send(n->domid, n->port);
        br_port_put(n->domid, n->port);
    }
}

static bool br_notify_requested(const struct xsim_req_notify *req)
{
    return req->offset < XSIM_PAGE_SIZE || req->port != XSIM_NO_PORT;
}

/* Validates an unmap-notify request of a connection in domain domid and takes the port. */
static int br_notify_setup(struct br_notify *n, const struct xsim_req_notify *req, unsigned domid,
                           bool writable)
{
    *n = (struct br_notify){ .clear = req->offset < XSIM_PAGE_SIZE, .event = req->port != XSIM_NO_PORT,
                             .offset = req->offset, .port = req->port, .domid = domid };
    if (n->clear && !writable) /* gntdev: a read-only mapping cannot clear a byte */
        return EINVAL;
    if (n->event && br_port_get(domid, n->port))
        return EINVAL;
    return 0;
}

/* gntalloc frees a share's pages (and its count) only once the whole share is unmapped; and
 * a page a peer still maps is not free before the peer unmaps it (deferred end of access). */
static void br_maybe_uncount(struct br_share *s)
{
    if (s->nlive == 0 && s->nheld == 0)
        br_domains[s->domid].shared_pages -= s->npages;
}

/* Frees the grant entry of a page nobody may map any more. */
static void br_free_ref(struct br_share *s, uint32_t page)
{
    br_domains[s->domid].grants[s->pages[page].ref] = (struct br_grant){ 0 };
    s->pages[page].ref = 0;
}

static void br_revoke_page(struct br_share *s, uint32_t page)
{
    struct br_page *pg = &s->pages[page];

    pg->granted = false;
    s->nlive--;
    if (pg->maps) {
        br_domains[s->domid].grants[pg->ref].revoked = true;
        s->nheld++;
    } else {
        br_free_ref(s, page);
    }
    br_maybe_uncount(s);
    if (page == 0 && (s->notify.clear || s->notify.event)) {
        br_notify_fire(&s->notify, s, 0);
        s->notify = (struct br_notify){ 0 };
    }
}

static void br_unlink_share(struct br_conn *c, struct br_share *s)
{
    for (struct br_share **pp = &c->shares; *pp; pp = &(*pp)->next)
        if (*pp == s) {
            *pp = s->next;
            return;
        }
}

/* Picks count free refs, searching on from the last one handed out so refs are reused late. */
static int br_alloc_refs(struct br_domain *d, struct br_page *pages, uint32_t count)
{
    const uint32_t span = BR_NR_REFS - BR_FIRST_REF;
    uint32_t found = 0, r = d->next_ref;

    if (!d->grants && !(d->grants = calloc(BR_NR_REFS, sizeof(*d->grants))))
        return ENOMEM;
    /* Each ref of the cycle is looked at once, so none is picked twice. */
    for (uint32_t tries = 0; tries < span && found < count; tries++) {
        if (!d->grants[r].share)
            pages[found++].ref = r;
        r = r + 1 < BR_NR_REFS ? r + 1 : BR_FIRST_REF;
    }
    if (found < count)
        return ENOSPC;
    d->next_ref = r;
    return 0;
}

static int br_make_memfd(uint32_t npages)
{
    int fd = memfd_create("xsim-grant", MFD_CLOEXEC | MFD_ALLOW_SEALING);

    if (fd < 0)
        return -1;
    if (ftruncate(fd, (off_t)npages * XSIM_PAGE_SIZE) < 0 ||
        fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int br_shr_share(struct br_conn *c, const struct xsim_req_share *req, struct br_reply *out)
{
    struct br_domain *d = &br_domains[c->domid];
    struct br_share *s;
    struct br_page *pages;
    int err;

    if (req->domid >= BR_DOMID_FIRST_RESERVED || req->count == 0 || req->writable > 1)
        return EINVAL;
    if (req->count > 1 && br_notify_requested(&req->notify))
        return EINVAL;
    if (req->count > xsim_gnt_limit - d->shared_pages)
        return ENOSPC;
    pages = calloc(req->count, sizeof(*pages));
    s = calloc(1, sizeof(*s));
    if (!s || !pages) {
        free(pages);
        free(s);
        return ENOMEM;
    }
    *s = (struct br_share){ .id = br_next_id(c), .domid = c->domid, .grantee = (uint16_t)req->domid,
                            .writable = req->writable, .memfd = -1, .npages = req->count,
                            .nlive = req->count, .pages = pages, .users = 1 };
    if ((err = br_notify_setup(&s->notify, &req->notify, c->domid, true)))
        goto fail;
    if ((s->memfd = br_make_memfd(s->npages)) < 0) {
        err = ENOMEM;
        goto fail_notify;
    }
    if ((err = br_alloc_refs(d, s->pages, s->npages)))
        goto fail_notify;
    for (uint32_t i = 0; i < s->npages; i++) {
        d->grants[s->pages[i].ref] = (struct br_grant){ .share = s, .page = i };
        s->pages[i].granted = true;
        out->rep.u.refs[i] = s->pages[i].ref;
    }
    d->shared_pages += s->npages;
    s->next = c->shares;
    c->shares = s;
    out->rep.val = s->id;
    out->rep.n = s->npages;
    out->len = XSIM_REP_HDR_SIZE + s->npages * sizeof(uint32_t);
    out->fds[out->nfds++] = s->memfd;
    return 0;

fail_notify:
    if (s->notify.event)
        br_port_put(c->domid, s->notify.port);
fail:
    if (s->memfd >= 0)
        close(s->memfd);
    free(s->pages);
    free(s);
    return err;
}

static int br_shr_unshare(struct br_conn *c, const struct xsim_req_unshare *req, struct br_reply *out)
{
    struct br_share *s = c->shares;

    while (s && s->id != req->share_id)
        s = s->next;
    if (!s || req->count == 0 || req->first >= s->npages || req->count > s->npages - req->first)
        return EINVAL;
    for (uint32_t i = req->first; i < req->first + req->count; i++)
        if (!s->pages[i].granted)
            return EINVAL;
    for (uint32_t i = req->first; i < req->first + req->count; i++)
        br_revoke_page(s, i);
    if (!s->nlive) {
        br_unlink_share(c, s);
        br_share_put(s);
        out->rep.flags = XSIM_REP_GONE;
    }
    return 0;
}

/* The grant (domid, ref) as seen by a mapper in domain `mapper`, or NULL (Xen: GNTST_*). */
static const struct br_grant *br_lookup_grant(unsigned domid, uint32_t ref, unsigned mapper, bool writable,
                                              const char **why)
{
    const struct br_grant *g;

    if (domid >= br_ndomains) {
        *why = "no such domain";
        return NULL;
    }
    if (ref < BR_FIRST_REF || ref >= BR_NR_REFS || !br_domains[domid].grants ||
        !(g = &br_domains[domid].grants[ref])->share) {
        *why = "no such grant";
        return NULL;
    }
    if (g->revoked) {
        *why = "revoked (still mapped by a peer)";
        return NULL;
    }
    if (g->share->grantee != mapper) {
        *why = "granted to another domain";
        return NULL;
    }
    if (writable && !g->share->writable) {
        *why = "write-map of a read-only grant";
        return NULL;
    }
    return g;
}

/* Index of s's fd in the reply, adding it (reopened read-only unless writable) if needed. */
static int br_reply_fd(struct br_reply *out, struct br_share *const *shares, struct br_share *s, bool writable)
{
    char path[64];
    int fd;

    for (unsigned i = 0; i < out->nfds; i++)
        if (shares[i] == s)
            return (int)i;
    if (writable) {
        fd = s->memfd;
    } else {
        /* A read-only file description: not even mprotect can make the mapping writable. */
        snprintf(path, sizeof(path), "/proc/self/fd/%d", s->memfd);
        if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
            return -1;
    }
    out->close_fd[out->nfds] = !writable;
    out->fds[out->nfds] = fd;
    return (int)out->nfds++;
}

/* A peer mapping of a page is gone: a held page whose last mapping this was is freed. */
static void br_page_unmapped(struct br_share *s, uint32_t page)
{
    struct br_page *pg = &s->pages[page];

    if (--pg->maps == 0 && !pg->granted && pg->ref) {
        br_free_ref(s, page);
        s->nheld--;
        br_maybe_uncount(s);
    }
    br_share_put(s);
}

/* The mapping is gone (unmap, close, process death): its notification fires, its pages go. */
static void br_map_release(struct br_conn *c, struct br_map *m)
{
    if (m->armed) {
        br_notify_fire(&m->notify, m->ent[0].share, m->ent[0].page);
        c->nnotes--;
    }
    for (uint32_t i = 0; i < m->count; i++)
        br_page_unmapped(m->ent[i].share, m->ent[i].page);
    c->nmaps--;
    free(m);
}

/* Records a checked map request: every page is referenced until the mapping goes. */
static struct br_map *br_map_new(struct br_conn *c, const struct xsim_req_map *req, const struct br_grant *const *g,
                                 int *err)
{
    struct br_map *m;

    *err = ENOSPC;
    if (c->nmaps >= BR_MAX_MAPS || (br_notify_requested(&req->notify) && c->nnotes >= BR_MAX_NOTES))
        return NULL;
    *err = ENOMEM;
    if (!(m = calloc(1, sizeof(*m) + req->count * sizeof(m->ent[0]))))
        return NULL;
    if (br_notify_requested(&req->notify)) {
        if ((*err = br_notify_setup(&m->notify, &req->notify, c->domid, req->writable))) {
            free(m);
            return NULL;
        }
        m->armed = true;
        c->nnotes++;
    }
    m->id = br_next_id(c);
    m->count = req->count;
    for (uint32_t i = 0; i < req->count; i++) {
        m->ent[i].share = g[i]->share;
        m->ent[i].page = g[i]->page;
        g[i]->share->users++;
        g[i]->share->pages[g[i]->page].maps++;
    }
    m->next = c->maps;
    c->maps = m;
    c->nmaps++;
    return m;
}

static int br_tab_map(struct br_conn *c, const struct xsim_req_map *req, struct br_reply *out)
{
    struct br_share *shares[XSIM_MAP_CHUNK];
    const struct br_grant *g[XSIM_MAP_CHUNK];
    struct br_map *m;
    const char *why = "";
    int err;

    if (req->writable > 1 || (req->count > 1 && br_notify_requested(&req->notify)))
        return EINVAL;
    for (uint32_t i = 0; i < req->count; i++)
        if (!(g[i] = br_lookup_grant(req->refs[i].domid, req->refs[i].ref, c->domid, req->writable, &why))) {
            BR_LOG(c, "map dom%u ref %u refused: %s", req->refs[i].domid, req->refs[i].ref, why);
            return EINVAL;
        }
    for (uint32_t i = 0; i < req->count; i++) {
        int idx = br_reply_fd(out, shares, g[i]->share, req->writable);

        if (idx < 0)
            return ENOMEM;
        shares[idx] = g[i]->share;
        out->rep.u.pages[i] = (struct xsim_map_page){ .fd_index = (uint32_t)idx, .page = g[i]->page };
    }
    if (!(m = br_map_new(c, req, g, &err)))
        return err;
    out->rep.val = m->id;
    out->rep.n = req->count;
    out->len = XSIM_REP_HDR_SIZE + req->count * sizeof(struct xsim_map_page);
    return 0;
}

static int br_tab_unmap(struct br_conn *c, uint32_t id)
{
    for (struct br_map **pp = &c->maps; *pp; pp = &(*pp)->next)
        if ((*pp)->id == id) {
            struct br_map *m = *pp;

            *pp = m->next;
            br_map_release(c, m);
            return 0;
        }
    return EINVAL;
}

/* ---- connections ---- */

static int br_hello(struct br_conn *c, const struct xsim_req_hello *h, struct br_reply *out)
{
    int err;

    if (c->kind || h->version != XSIM_PROTO_VERSION || h->kind < XSIM_KIND_EVTCHN || h->kind > XSIM_KIND_GNTSHR)
        return -1;
    if (h->kind == XSIM_KIND_EVTCHN) { /* the kind is only set with its handle: no request sees none */
        if ((err = br_evh_new(c, &out->fds[0])))
            return err;
        out->close_fd[0] = true;
        out->nfds = 1;
    }
    c->kind = h->kind;
    out->rep.val = c->domid;
    return 0;
}

static const char *br_op_name(uint32_t op)
{
    static const char *const names[] = {
        [XSIM_OP_HELLO] = "hello", [XSIM_OP_EV_BIND_UNBOUND] = "bind_unbound",
        [XSIM_OP_EV_BIND_INTERDOMAIN] = "bind_interdomain", [XSIM_OP_EV_NOTIFY] = "notify",
        [XSIM_OP_EV_UNMASK] = "unmask", [XSIM_OP_EV_UNBIND] = "unbind", [XSIM_OP_EV_ATTACH] = "attach",
        [XSIM_OP_SHR_SHARE] = "share", [XSIM_OP_SHR_UNSHARE] = "unshare", [XSIM_OP_TAB_MAP] = "map",
        [XSIM_OP_TAB_UNMAP] = "unmap", [XSIM_OP_BYE] = "bye",
        [XSIM_OP_EV_RESTRICT] = "restrict", [XSIM_OP_EV_BIND_VIRQ] = "bind_virq",
        [XSIM_OP_EV_NOTIFY_ONEWAY] = "notify (one-way)", [XSIM_OP_EV_UNMASK_ONEWAY] = "unmask (one-way)",
    };

    return op < sizeof(names) / sizeof(names[0]) && names[op] ? names[op] : "?";
}

/* Expected size of a request, or 0 if op is unknown or not allowed for the connection kind. */
static size_t br_req_size(const struct br_conn *c, const struct xsim_req *req, size_t got)
{
    uint32_t need_kind = 0;
    size_t size = 0;

    switch (req->op) {
    case XSIM_OP_HELLO: return c->kind ? 0 : XSIM_REQ_SIZE(hello);
    case XSIM_OP_BYE: return c->kind && !c->closed ? offsetof(struct xsim_req, u) : 0;
    case XSIM_OP_EV_BIND_UNBOUND:
    case XSIM_OP_EV_BIND_INTERDOMAIN:
    case XSIM_OP_EV_NOTIFY:
    case XSIM_OP_EV_UNMASK:
    case XSIM_OP_EV_UNBIND:
    case XSIM_OP_EV_RESTRICT:
    case XSIM_OP_EV_NOTIFY_ONEWAY:
    case XSIM_OP_EV_UNMASK_ONEWAY:
    case XSIM_OP_EV_BIND_VIRQ: need_kind = XSIM_KIND_EVTCHN; size = XSIM_REQ_SIZE(port); break;
    case XSIM_OP_EV_ATTACH: need_kind = XSIM_KIND_EVTCHN; size = offsetof(struct xsim_req, u); break;
    case XSIM_OP_SHR_SHARE: need_kind = XSIM_KIND_GNTSHR; size = XSIM_REQ_SIZE(share); break;
    case XSIM_OP_SHR_UNSHARE: need_kind = XSIM_KIND_GNTSHR; size = XSIM_REQ_SIZE(unshare); break;
    case XSIM_OP_TAB_UNMAP: need_kind = XSIM_KIND_GNTTAB; size = XSIM_REQ_SIZE(unmap); break;
    case XSIM_OP_TAB_MAP:
        need_kind = XSIM_KIND_GNTTAB;
        if (got < XSIM_REQ_MAP_SIZE(0) || req->u.map.count == 0 || req->u.map.count > XSIM_MAP_CHUNK)
            return 0;
        size = XSIM_REQ_MAP_SIZE(req->u.map.count);
        break;
    default: return 0;
    }
    return c->kind == need_kind && !c->closed ? size : 0;
}

static void br_release(struct br_conn *c);

/* Runs one well-formed request; returns the errno for the reply, or -1 to drop the connection. */
static int br_dispatch(struct br_conn *c, const struct xsim_req *req, int fd_in, struct br_reply *out)
{
    const struct xsim_req_port *pt = &req->u.port;
    int err;

    switch (req->op) {
    case XSIM_OP_HELLO:
        err = br_hello(c, &req->u.hello, out);
        BR_LOG(c, "hello kind %u -> %d", req->u.hello.kind, err);
        return err;
    case XSIM_OP_EV_BIND_UNBOUND:
        err = br_ev_bind_unbound(c, pt->domid, &out->rep.val);
        BR_LOG(c, "bind_unbound(remote dom%u) -> %s port %u", pt->domid, strerror(err), err ? 0 : out->rep.val);
        return err;
    case XSIM_OP_EV_BIND_INTERDOMAIN:
        err = br_ev_bind_interdomain(c, pt->domid, pt->port, &out->rep.val);
        BR_LOG(c, "bind_interdomain(dom%u port %u) -> %s port %u", pt->domid, pt->port, strerror(err),
               err ? 0 : out->rep.val);
        return err;
    case XSIM_OP_EV_NOTIFY:
        err = br_ev_notify(c, pt->port);
        BR_LOG(c, "notify(port %u) -> %s", pt->port, strerror(err));
        return err;
    case XSIM_OP_EV_NOTIFY_ONEWAY:
        err = br_ev_notify(c, pt->port);
        BR_LOG(c, "notify(port %u, one-way) -> %s", pt->port, strerror(err));
        if (err && c->evh->shared) {
            /* Another process's connection unbound it (the library of a process that passed its
             * handle by SCM_RIGHTS cannot know; after a fork() its notifies are synchronous). */
            xsim_log("broker: dom%u pid %d: one-way notify of port %u dropped: the shared handle no "
                     "longer has it (Xen: ENOTCONN)", c->domid, c->pid, pt->port);
            return 0;
        }
        if (err) /* the library checks this first: not a refusal but a bug, never swallowed */
            xsim_log("broker: dom%u pid %d: one-way notify of port %u failed (%s)", c->domid, c->pid,
                     pt->port, strerror(err));
        return err ? -1 : 0;
    case XSIM_OP_EV_UNMASK:
    case XSIM_OP_EV_UNMASK_ONEWAY:
        br_ev_unmask(c, pt->port);
        BR_LOG(c, "unmask(port %u%s)", pt->port, req->op == XSIM_OP_EV_UNMASK ? "" : ", one-way");
        return 0;
    case XSIM_OP_EV_UNBIND:
        err = br_ev_unbind(c, pt->port);
        BR_LOG(c, "unbind(port %u) -> %s", pt->port, strerror(err));
        return err;
    case XSIM_OP_EV_RESTRICT:
        err = br_ev_restrict(c, pt->domid);
        BR_LOG(c, "restrict(dom%u) -> %s", pt->domid, strerror(err));
        return err;
    case XSIM_OP_EV_BIND_VIRQ:
        err = br_ev_bind_virq(c);
        BR_LOG(c, "bind_virq(%u) -> %s", pt->port, strerror(err));
        return err;
    case XSIM_OP_EV_ATTACH:
        err = br_ev_attach(c, fd_in);
        BR_LOG(c, "attach -> %s", strerror(err));
        return err;
    case XSIM_OP_SHR_SHARE:
        err = br_shr_share(c, &req->u.share, out);
        BR_LOG(c, "share(%u pages to dom%u, %s) -> %s id %u", req->u.share.count, req->u.share.domid,
               req->u.share.writable ? "rw" : "ro", strerror(err), out->rep.val);
        return err;
    case XSIM_OP_SHR_UNSHARE:
        err = br_shr_unshare(c, &req->u.unshare, out);
        BR_LOG(c, "unshare(id %u pages %u+%u) -> %s", req->u.unshare.share_id, req->u.unshare.first,
               req->u.unshare.count, strerror(err));
        return err;
    case XSIM_OP_TAB_MAP:
        err = br_tab_map(c, &req->u.map, out);
        BR_LOG(c, "map(%u refs from dom%u ref %u.., %s) -> %s", req->u.map.count, req->u.map.refs[0].domid,
               req->u.map.refs[0].ref, req->u.map.writable ? "rw" : "ro", strerror(err));
        return err;
    case XSIM_OP_TAB_UNMAP:
        err = br_tab_unmap(c, req->u.unmap.map_id);
        BR_LOG(c, "unmap(id %u) -> %s", req->u.unmap.map_id, strerror(err));
        return err;
    case XSIM_OP_BYE:
        BR_LOG(c, "handle closed");
        br_release(c);
        c->closed = true;
        return 0;
    }
    return -1;
}

/* Receives one message; *fd_in gets a passed descriptor (at most one is accepted). */
static ssize_t br_recv(struct br_conn *c, struct xsim_req *req, int *fd_in, bool *bad)
{
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int))];
    } ctl;
    struct iovec iov = { req, sizeof(*req) };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
                          .msg_controllen = sizeof(ctl.buf) };
    ssize_t n = recvmsg(c->fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);

    *fd_in = -1;
    if (n < 0)
        return n;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm))
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
            int fd;

            /* Room for one descriptor only: the kernel drops any others (MSG_CTRUNC). */
            if (cm->cmsg_len < CMSG_LEN(sizeof(int)))
                continue;
            memcpy(&fd, CMSG_DATA(cm), sizeof(fd));
            if (*fd_in < 0)
                *fd_in = fd;
            else
                close(fd);
        }
    *bad = (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0;
    return n;
}

static int br_send_reply(struct br_conn *c, struct br_reply *out)
{
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int) * BR_MAX_FDS_OUT)];
    } ctl;
    struct iovec iov = { &out->rep, out->len };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
    ssize_t n;

    if (out->nfds) {
        struct cmsghdr *cm;

        msg.msg_control = ctl.buf;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * out->nfds);
        cm = CMSG_FIRSTHDR(&msg);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int) * out->nfds);
        memcpy(CMSG_DATA(cm), out->fds, sizeof(int) * out->nfds);
    }
    /* Never blocks: a client that does not read its replies is dropped. */
    n = sendmsg(c->fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    for (unsigned i = 0; i < out->nfds; i++)
        if (out->close_fd[i])
            close(out->fds[i]);
    if (n != (ssize_t)out->len) {
        BR_LOG(c, "cannot send reply: %s", n < 0 ? strerror(errno) : "short send");
        return -1;
    }
    return 0;
}

static bool br_is_oneway(uint32_t op)
{
    return op == XSIM_OP_EV_NOTIFY_ONEWAY || op == XSIM_OP_EV_UNMASK_ONEWAY;
}

/* Takes one request from c and answers it (one-way ones get no answer).
 * Returns 1 if one was handled, 0 if none is queued, -1 to drop the connection. */
static int br_handle_one(struct br_conn *c)
{
    struct br_reply *out;
    struct xsim_req req;
    bool bad = false;
    int fd_in, err, rc;
    ssize_t n;
    size_t want;

    memset(&req, 0, sizeof(req));
    n = br_recv(c, &req, &fd_in, &bad);
    if (n < 0)
        return errno == EAGAIN ? 0 : errno == EINTR ? 1 : -1;
    if (n == 0)
        return -1; /* peer closed (a zero-length message is no request either) */
    want = (size_t)n >= offsetof(struct xsim_req, u) ? br_req_size(c, &req, (size_t)n) : 0;
    if (bad || !want || (size_t)n != want || req.reserved ||
        (fd_in >= 0 && req.op != XSIM_OP_EV_ATTACH)) {
        xsim_log("broker: dom%u pid %d: malformed request (op %u, %zd bytes): connection closed",
                 c->domid, c->pid, req.op, n);
        if (fd_in >= 0)
            close(fd_in);
        return -1;
    }
    out = malloc(sizeof(*out));
    if (out)
        memset(out, 0, offsetof(struct br_reply, rep) + XSIM_REP_HDR_SIZE);
    if (!out) {
        if (fd_in >= 0)
            close(fd_in);
        return -1;
    }
    out->len = XSIM_REP_HDR_SIZE;
    err = br_dispatch(c, &req, fd_in, out);
    if (fd_in >= 0)
        close(fd_in);
    if (err < 0) {
        xsim_log("broker: dom%u pid %d: bad %s request: connection closed", c->domid, c->pid, br_op_name(req.op));
        free(out);
        return -1;
    }
    if (br_is_oneway(req.op)) { /* err is 0 here: nothing to say, nobody waits */
        free(out);
        return 1;
    }
    if (err) { /* a refused call carries nothing else */
        out->rep = (struct xsim_rep){ .err = err };
        out->len = XSIM_REP_HDR_SIZE;
        for (unsigned i = 0; i < out->nfds; i++)
            if (out->close_fd[i])
                close(out->fds[i]);
        out->nfds = 0;
    }
    rc = br_send_reply(c, out);
    free(out);
    return rc < 0 ? -1 : 1;
}

/* Everything queued on c, in order: one-way requests pile up while a client runs, and a
 * request of another of its connections must not overtake them (causality through the
 * daemon). Bounded per round so that a flooding client cannot starve the others. */
static int br_drain_some(struct br_conn *c)
{
    int rc = 1;

    if (c->dead)
        return -1;
    for (unsigned i = 0; i < BR_DRAIN_MAX && rc > 0; i++)
        rc = br_handle_one(c);
    return rc < 0 ? -1 : 0;
}

/* br_ev_attach: the queue of a connection to the handle being joined. A failure cannot drop
 * that connection here (the main loop owns it): it is marked and dropped at its next turn. */
static void br_drain(struct br_conn *c)
{
    int rc;

    while (!c->dead && (rc = br_handle_one(c)) != 0)
        if (rc < 0)
            c->dead = true;
}

static int br_on_readable(void *conn)
{
    br_evh_reap(); /* whatever c asks, handles nobody holds any more are gone first */
    return br_drain_some(conn);
}

static void *br_accept(int fd, unsigned domid, const struct ucred *peer)
{
    struct br_conn *c;

    if (domid >= br_ndomains || !(c = calloc(1, sizeof(*c))))
        return NULL;
    c->fd = fd;
    c->domid = domid;
    c->pid = (int)peer->pid;
    return c;
}

/* Close or process death: the evtchn handle loses a user (its ports close with its last one),
 * grants are revoked (pages a peer maps stay held and counted until it unmaps), mappings go and
 * their notifications fire (as evtchn/gntalloc/gntdev release). Runs once per connection. */
static void br_release(struct br_conn *c)
{
    if (c->closed)
        return;
    if (c->kind == XSIM_KIND_EVTCHN)
        br_evh_leave(c);
    while (c->shares) {
        struct br_share *s = c->shares;

        c->shares = s->next;
        for (uint32_t i = 0; i < s->npages; i++)
            if (s->pages[i].granted)
                br_revoke_page(s, i);
        br_share_put(s);
    }
    while (c->maps) {
        struct br_map *m = c->maps;

        c->maps = m->next;
        br_map_release(c, m);
    }
}

static void br_on_close(void *conn)
{
    struct br_conn *c = conn;

    if (!c->closed)
        BR_LOG(c, "connection gone: releasing its resources");
    br_release(c);
    free(c);
    br_evh_reap(); /* a process's death closed its pipe ends after its connection, maybe */
}

static void br_free_all(void)
{
    while (br_evhs) { /* kept only by holders of their read ends: nothing to tell anyone */
        struct br_evh *h = br_evhs;

        br_evhs = h->next;
        close(h->pipe_w);
        free(h);
    }
    for (unsigned d = 0; d < br_ndomains; d++)
        free(br_domains[d].grants);
    free(br_domains);
    br_domains = NULL;
}

static void br_init(unsigned ndomains)
{
    struct rlimit rl;

    br_domains = calloc(ndomains, sizeof(*br_domains));
    if (!br_domains) {
        fprintf(stderr, "xensimd: broker: out of memory\n");
        exit(1);
    }
    br_ndomains = ndomains;
    for (unsigned d = 0; d < ndomains; d++) {
        br_domains[d].ports[0].state = BR_PORT_RESERVED;
        br_domains[d].next_ref = BR_FIRST_REF;
    }
    /* Every share holds a memfd: allow as many descriptors as the hard limit does. */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    atexit(br_free_all);
}

const struct xsim_module xsim_broker_module = {
    .name = "broker",
    .sock_name = "xensim",
    .sock_type = SOCK_SEQPACKET,
    .init = br_init,
    .accept = br_accept,
    .on_readable = br_on_readable,
    .on_close = br_on_close,
};
