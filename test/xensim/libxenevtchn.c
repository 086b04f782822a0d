/* libxenevtchn.so.1 for xensim: Debian's API and symbol versions (libxenevtchn.map), backed
 * by the broker in xensimd instead of /dev/xen/evtchn. Errors are those of Xen and the Linux
 * evtchn driver; as the real library, none of these calls log (opening aside). */
#include "xsim_client.h"

#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>
#include <xenevtchn.h>

#define XSIM_EV_WORD_BITS (sizeof(unsigned long) * CHAR_BIT)

/* fork()s this process took part in (either side). A handle opened before one may be shared
 * since: a child that took it over with xenevtchn_fdopen binds and unbinds ports of it that
 * this library never sees (as on Xen, where both use one open file of /dev/xen/evtchn). */
static atomic_uint xsim_ev_forks;
static pthread_once_t xsim_ev_once = PTHREAD_ONCE_INIT;

static void xsim_ev_on_fork(void)
{
    atomic_fetch_add(&xsim_ev_forks, 1);
}

static void xsim_ev_init(void)
{
    /* Fails only without memory; handles then keep their tables over a fork (the broker drops,
     * with a log line, a one-way notify of a port the child unbound). */
    (void)pthread_atfork(NULL, xsim_ev_on_fork, xsim_ev_on_fork);
}

struct xenevtchn_handle {
    struct xsim_client conn;
    int fd;          /* read end of the delivery pipe (xenevtchn_fd): one port per event */
    uint32_t domid;
    /* The ports this handle has bound, as the evtchn driver's per-file tree: notify and
     * unmask are checked here and then sent one-way. A handle from fdopen, or one a fork()ed
     * child may share, does not know all of its ports (ports_known false): its notify is a
     * synchronous call and every unmask is sent (the broker checks them). */
    pthread_mutex_t ports_lock; /* like the driver's bind_mutex: a notify is checked and sent
                                 * while no bind or unbind of the handle runs (ports_known, bound) */
    bool ports_known;
    unsigned forks;             /* xsim_ev_forks when it was opened */
    unsigned long bound[XSIM_EV_NR_CHANNELS / XSIM_EV_WORD_BITS];
};

/* Does this process's table still tell every port of the handle? Not once the process forked
 * (called with ports_lock held). */
static bool xsim_ev_ports_known(xenevtchn_handle *xce)
{
    if (xce->ports_known && xce->forks != atomic_load(&xsim_ev_forks))
        xce->ports_known = false;
    return xce->ports_known;
}

static bool xsim_ev_bound(const xenevtchn_handle *xce, uint32_t port)
{
    return port < XSIM_EV_NR_CHANNELS &&
           (xce->bound[port / XSIM_EV_WORD_BITS] >> (port % XSIM_EV_WORD_BITS) & 1);
}

/* Records a successful bind (on) or unbind (off). A port beyond the table cannot be
 * tracked: the handle falls back to synchronous notifies (the broker then checks). */
static void xsim_ev_track(xenevtchn_handle *xce, uint32_t port, bool on)
{
    unsigned long bit;

    if (port >= XSIM_EV_NR_CHANNELS) {
        xce->ports_known = false;
        return;
    }
    bit = 1UL << (port % XSIM_EV_WORD_BITS);
    if (on)
        xce->bound[port / XSIM_EV_WORD_BITS] |= bit;
    else
        xce->bound[port / XSIM_EV_WORD_BITS] &= ~bit;
}

static int xsim_ev_oneway(xenevtchn_handle *xce, uint32_t op, uint32_t port)
{
    struct xsim_req req = { .op = op, .u.port = { 0, port } };

    return xsim_client_send_oneway(&xce->conn, &req, XSIM_REQ_SIZE(port));
}

static int xsim_ev_call(xenevtchn_handle *xce, uint32_t op, uint32_t domid, uint32_t port, uint32_t *val)
{
    struct xsim_req req = { .op = op, .u.port = { domid, port } };
    struct xsim_rep rep;

    if (!xce) {
        errno = EINVAL;
        return -1;
    }
    if (xsim_client_call(&xce->conn, &req, XSIM_REQ_SIZE(port), -1, &rep, NULL, 0, NULL) < 0)
        return -1;
    if (val && rep.val > INT32_MAX) { /* a port always fits in 31 bits */
        errno = EIO;
        return -1;
    }
    if (val)
        *val = rep.val;
    return 0;
}

xenevtchn_handle *xenevtchn_open(struct xentoollog_logger *logger, unsigned int flags)
{
    xenevtchn_handle *xce;

    if (flags & ~XENEVTCHN_NO_CLOEXEC) {
        errno = EINVAL;
        return NULL;
    }
    pthread_once(&xsim_ev_once, xsim_ev_init);
    xce = calloc(1, sizeof(*xce));
    if (!xce)
        return NULL;
    if (xsim_client_open(&xce->conn, XSIM_KIND_EVTCHN, !(flags & XENEVTCHN_NO_CLOEXEC), logger, "xenevtchn",
                         &xce->domid, &xce->fd) < 0) {
        free(xce);
        return NULL;
    }
    pthread_mutex_init(&xce->ports_lock, NULL);
    xce->ports_known = true; /* a new handle has no ports */
    xce->forks = atomic_load(&xsim_ev_forks);
    return xce;
}

/* fd is the xenevtchn_fd of a handle of this domain: inherited by a fork()ed child, kept over
 * an exec (XENEVTCHN_NO_CLOEXEC) or passed by SCM_RIGHTS. A new broker connection joins that
 * handle (its ports, masks, queued events and restriction); the handle's other users keep it,
 * as processes sharing an open file of /dev/xen/evtchn do. */
xenevtchn_handle *xenevtchn_fdopen(struct xentoollog_logger *logger, int fd, unsigned open_flags)
{
    struct xsim_req req = { .op = XSIM_OP_EV_ATTACH };
    struct xsim_rep rep;
    xenevtchn_handle *xce;
    int fresh, err;

    if (open_flags || fd < 0) {
        errno = open_flags ? EINVAL : EBADF;
        return NULL;
    }
    xce = calloc(1, sizeof(*xce));
    if (!xce)
        return NULL;
    if (xsim_client_open(&xce->conn, XSIM_KIND_EVTCHN, true, logger, "xenevtchn", &xce->domid, &fresh) < 0) {
        free(xce);
        return NULL;
    }
    close(fresh); /* the new connection's own pipe: replaced by fd */
    if (xsim_client_call(&xce->conn, &req, offsetof(struct xsim_req, u), fd, &rep, NULL, 0, NULL) < 0) {
        err = errno;
        xsim_client_log(logger, "xenevtchn", err, "fd %d is not an event channel handle of this domain", fd);
        xsim_client_close(&xce->conn);
        free(xce);
        errno = err;
        return NULL;
    }
    xce->fd = fd;
    pthread_mutex_init(&xce->ports_lock, NULL);
    xce->ports_known = false; /* the ports came with the handle: only the broker knows them */
    return xce;
}

int xenevtchn_close(xenevtchn_handle *xce)
{
    if (!xce)
        return 0;
    close(xce->fd);
    xsim_client_close(&xce->conn);
    pthread_mutex_destroy(&xce->ports_lock);
    free(xce);
    return 0;
}

int xenevtchn_fd(xenevtchn_handle *xce)
{
    return xce->fd;
}

/* IOCTL_EVTCHN_NOTIFY (Linux >= 4.3): ENOTCONN for any port this handle has not bound, else
 * EVTCHNOP_send, which succeeds even when the remote end is gone (Xen drops the event). As
 * that hypercall, it waits for nobody: the broker gets it one-way, in order with this
 * handle's other requests (an unbind right after still comes after it). */
int xenevtchn_notify(xenevtchn_handle *xce, evtchn_port_t port)
{
    int rc;

    if (!xce) {
        errno = EINVAL;
        return -1;
    }
    pthread_mutex_lock(&xce->ports_lock); /* checked and sent with no bind/unbind in between */
    if (!xsim_ev_ports_known(xce)) {
        rc = xsim_ev_call(xce, XSIM_OP_EV_NOTIFY, 0, port, NULL);
    } else if (!xsim_ev_bound(xce, port)) {
        errno = ENOTCONN;
        rc = -1;
    } else {
        rc = xsim_ev_oneway(xce, XSIM_OP_EV_NOTIFY_ONEWAY, port);
    }
    pthread_mutex_unlock(&xce->ports_lock);
    return rc;
}

/* A bind (op) that records the port it got. */
static xenevtchn_port_or_error_t xsim_ev_bind(xenevtchn_handle *xce, uint32_t op, uint32_t domid, uint32_t port)
{
    uint32_t got;
    int rc;

    if (!xce) {
        errno = EINVAL;
        return -1;
    }
    pthread_mutex_lock(&xce->ports_lock); /* the port is recorded before any notify may use it */
    rc = xsim_ev_call(xce, op, domid, port, &got);
    if (rc == 0)
        xsim_ev_track(xce, got, true);
    pthread_mutex_unlock(&xce->ports_lock);
    return rc < 0 ? -1 : (int)got;
}

xenevtchn_port_or_error_t xenevtchn_bind_unbound_port(xenevtchn_handle *xce, uint32_t domid)
{
    return xsim_ev_bind(xce, XSIM_OP_EV_BIND_UNBOUND, domid, 0);
}

xenevtchn_port_or_error_t xenevtchn_bind_interdomain(xenevtchn_handle *xce, uint32_t domid,
                                                     evtchn_port_t remote_port)
{
    return xsim_ev_bind(xce, XSIM_OP_EV_BIND_INTERDOMAIN, domid, remote_port);
}

/* There are no virtual IRQs in xensim: ENOSYS, or EACCES on a restricted handle (as the driver). */
xenevtchn_port_or_error_t xenevtchn_bind_virq(xenevtchn_handle *xce, unsigned int virq)
{
    return xsim_ev_call(xce, XSIM_OP_EV_BIND_VIRQ, 0, virq, NULL);
}

int xenevtchn_unbind(xenevtchn_handle *xce, evtchn_port_t port)
{
    int rc;

    if (!xce) {
        errno = EINVAL;
        return -1;
    }
    pthread_mutex_lock(&xce->ports_lock); /* no notify is checked against a stale table */
    rc = xsim_ev_call(xce, XSIM_OP_EV_UNBIND, 0, port, NULL);
    if (rc == 0)
        xsim_ev_track(xce, port, false);
    pthread_mutex_unlock(&xce->ports_lock);
    return rc;
}

/* Blocks until an event is queued, like read() on the device (poll xenevtchn_fd first). */
xenevtchn_port_or_error_t xenevtchn_pending(xenevtchn_handle *xce)
{
    evtchn_port_t port;
    size_t got = 0;

    while (got < sizeof(port)) {
        ssize_t n = read(xce->fd, (char *)&port + got, sizeof(port) - got);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0)
                errno = EIO; /* the broker is gone */
            return -1;
        }
        got += (size_t)n;
    }
    if (port > INT32_MAX) {
        errno = EIO;
        return -1;
    }
    return (int)port;
}

/* A write() of the port to /dev/xen/evtchn: one-way; a port the handle has not bound is
 * ignored (by the broker too, for a handle that does not know its ports). */
int xenevtchn_unmask(xenevtchn_handle *xce, evtchn_port_t port)
{
    int rc = 0;

    if (!xce) {
        errno = EINVAL;
        return -1;
    }
    pthread_mutex_lock(&xce->ports_lock); /* the table is read while no bind/unbind runs */
    if (!xsim_ev_ports_known(xce) || xsim_ev_bound(xce, port))
        rc = xsim_ev_oneway(xce, XSIM_OP_EV_UNMASK_ONEWAY, port);
    pthread_mutex_unlock(&xce->ports_lock);
    return rc;
}

/* As IOCTL_EVTCHN_RESTRICT_DOMID: from now on the handle only binds interdomain to domid
 * (EACCES otherwise, and for bind_unbound_port and bind_virq); a second call is EACCES, domid 0
 * or a reserved one EINVAL. The broker keeps it with the handle, so it survives fdopen. */
int xenevtchn_restrict(xenevtchn_handle *xce, domid_t domid)
{
    return xsim_ev_call(xce, XSIM_OP_EV_RESTRICT, domid, 0, NULL);
}
