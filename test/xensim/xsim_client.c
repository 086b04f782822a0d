/* The broker connection shared by the look-alike libxenevtchn and libxengnttab. */
#include "xsim_client.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <xentoollog.h>

void xsim_client_log(struct xentoollog_logger *logger, const char *who, int errnoval, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    int n;

    va_start(ap, fmt);
    if (logger && logger->vmessage) {
        logger->vmessage(logger, XTL_ERROR, errnoval, who, fmt, ap);
        va_end(ap);
        return;
    }
    /* One write for the whole line: other processes share stderr. */
    n = snprintf(msg, sizeof(msg), "%s: error: ", who);
    n += vsnprintf(msg + n, sizeof(msg) - (size_t)n, fmt, ap);
    va_end(ap);
    if (n < (int)sizeof(msg) && errnoval >= 0)
        n += snprintf(msg + n, sizeof(msg) - (size_t)n, ": %s", strerror(errnoval));
    if (n > (int)sizeof(msg) - 2)
        n = (int)sizeof(msg) - 2;
    msg[n++] = '\n';
    if (write(STDERR_FILENO, msg, (size_t)n) < 0)
        return; /* nowhere left to report it */
}

static int xsim_client_connect(struct xsim_client *c)
{
    const char *path = getenv("XENSIM_BROKER");
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int err;

    if (!path || !*path) {
        xsim_client_log(c->logger, c->who, -1, "XENSIM_BROKER is not set: run this program in a simulated "
                        "domain (test/xensim/in-domain N CMD) or on Xen with Debian's library");
        errno = ENOENT;
        return -1;
    }
    if (strlen(path) >= sizeof(sa.sun_path)) {
        xsim_client_log(c->logger, c->who, -1, "XENSIM_BROKER path too long: %s", path);
        errno = ENAMETOOLONG;
        return -1;
    }
    strcpy(sa.sun_path, path);
    /* Close-on-exec even for XENEVTCHN_NO_CLOEXEC: what survives an exec is the handle's
     * delivery pipe (xenevtchn_fd, the "open file"), which keeps the handle until the new image
     * joins it with fdopen; a leftover connection would keep it after that image closes it. */
    c->sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (c->sock < 0 || connect(c->sock, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        err = errno;
        xsim_client_log(c->logger, c->who, err, "cannot connect to the xensim broker %s", path);
        if (c->sock >= 0)
            close(c->sock);
        c->sock = -1;
        errno = err;
        return -1;
    }
    return 0;
}

static long xsim_ms_since(const struct timespec *t0)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - t0->tv_sec) * 1000 + (now.tv_nsec - t0->tv_nsec) / 1000000;
}

/* Waits (bounded by XSIM_CLIENT_TIMEOUT_MS from t0) until sock is ready for `events`. */
static int xsim_client_poll(struct xsim_client *c, short events, const struct timespec *t0)
{
    for (;;) {
        long left = XSIM_CLIENT_TIMEOUT_MS - xsim_ms_since(t0);
        struct pollfd pfd = { .fd = c->sock, .events = events };
        int n;

        if (left <= 0) {
            xsim_client_log(c->logger, c->who, -1, "the xensim broker did not %s within %d ms",
                            events == POLLOUT ? "take a request" : "answer", XSIM_CLIENT_TIMEOUT_MS);
            errno = ETIMEDOUT;
            return -1;
        }
        n = poll(&pfd, 1, (int)left);
        if (n > 0)
            return 0;
        if (n < 0 && errno != EINTR)
            return -1;
    }
}

/* Sends one request. One-way requests pile up in the socket while the broker is busy: when
 * its queue is full, waits (bounded) for room instead of blocking for good. */
static int xsim_client_send(struct xsim_client *c, const struct xsim_req *req, size_t len, int fd_in)
{
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int))];
    } ctl;
    struct iovec iov = { (void *)req, len };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
    struct timespec t0;
    ssize_t n;

    if (fd_in >= 0) {
        struct cmsghdr *cm;

        msg.msg_control = ctl.buf;
        msg.msg_controllen = sizeof(ctl.buf);
        cm = CMSG_FIRSTHDR(&msg);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cm), &fd_in, sizeof(int));
    }
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        n = sendmsg(c->sock, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n >= 0 || (errno != EINTR && errno != EAGAIN))
            break;
        if (errno == EAGAIN && xsim_client_poll(c, POLLOUT, &t0) < 0)
            return -1;
    }
    if (n >= 0 && n != (ssize_t)len)
        errno = EPROTO; /* a SEQPACKET message goes whole or not at all */
    return n == (ssize_t)len ? 0 : -1;
}

/* Waits (bounded by XSIM_CLIENT_TIMEOUT_MS) until the reply is there. */
static int xsim_client_wait(struct xsim_client *c)
{
    struct timespec t0;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    return xsim_client_poll(c, POLLIN, &t0);
}

static void xsim_close_fds(int *fds, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        close(fds[i]);
}

/* Receives the reply; descriptors beyond max_fds are closed. */
static ssize_t xsim_client_recv(struct xsim_client *c, struct xsim_rep *rep, int *fds, unsigned max_fds,
                                unsigned *nfds)
{
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int) * XSIM_MAP_CHUNK)];
    } ctl;
    struct iovec iov = { rep, sizeof(*rep) };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
                          .msg_controllen = sizeof(ctl.buf) };
    ssize_t n;

    *nfds = 0;
    do
        n = recvmsg(c->sock, &msg, c->cloexec ? MSG_CMSG_CLOEXEC : 0);
    while (n < 0 && errno == EINTR);
    if (n <= 0) {
        if (n == 0)
            errno = ECONNRESET; /* the broker closed the connection */
        return -1;
    }
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
        unsigned count;

        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS || cm->cmsg_len < CMSG_LEN(0))
            continue;
        count = (unsigned)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        for (unsigned i = 0; i < count; i++) {
            int fd;

            memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
            if (*nfds < max_fds)
                fds[(*nfds)++] = fd;
            else
                close(fd);
        }
    }
    if ((msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || (size_t)n < XSIM_REP_HDR_SIZE) {
        xsim_close_fds(fds, *nfds);
        *nfds = 0;
        errno = EPROTO;
        return -1;
    }
    return n;
}

ssize_t xsim_client_call(struct xsim_client *c, const struct xsim_req *req, size_t len, int fd_in,
                         struct xsim_rep *rep, int *fds, unsigned max_fds, unsigned *nfds)
{
    unsigned dummy;
    ssize_t n = -1;
    int err;

    if (!nfds)
        nfds = &dummy;
    *nfds = 0;
    pthread_mutex_lock(&c->lock);
    if (c->broken) {
        err = EIO;
    } else if (xsim_client_send(c, req, len, fd_in) < 0 || xsim_client_wait(c) < 0 ||
               (n = xsim_client_recv(c, rep, fds, max_fds, nfds)) < 0) {
        err = errno == ETIMEDOUT ? ETIMEDOUT : EIO;
        if (err == EIO)
            xsim_client_log(c->logger, c->who, errno, "lost the connection to the xensim broker");
        c->broken = true;
        n = -1;
    } else if (rep->err) {
        /* A refusal: the errno Xen or the guest kernel would give. */
        err = rep->err > 0 && rep->err < 4096 ? rep->err : EIO;
        xsim_close_fds(fds, *nfds);
        *nfds = 0;
        n = -1;
    } else {
        err = 0;
    }
    pthread_mutex_unlock(&c->lock);
    if (n < 0)
        errno = err;
    return n;
}

int xsim_client_send_oneway(struct xsim_client *c, const struct xsim_req *req, size_t len)
{
    int err = 0;

    /* One message at a time on sock: a one-way request never lands inside another thread's
     * exchange (it has no reply, so it may come between that request and its reply). */
    pthread_mutex_lock(&c->lock);
    if (c->broken) {
        err = EIO;
    } else if (xsim_client_send(c, req, len, -1) < 0) {
        err = errno == ETIMEDOUT ? ETIMEDOUT : EIO;
        if (err == EIO)
            xsim_client_log(c->logger, c->who, errno, "lost the connection to the xensim broker");
        c->broken = true;
    }
    pthread_mutex_unlock(&c->lock);
    if (err)
        errno = err;
    return err ? -1 : 0;
}

int xsim_client_open(struct xsim_client *c, uint32_t kind, bool cloexec, struct xentoollog_logger *logger,
                     const char *who, uint32_t *domid, int *fd_out)
{
    struct xsim_req req = { .op = XSIM_OP_HELLO, .u.hello = { XSIM_PROTO_VERSION, kind } };
    struct xsim_rep *rep;
    unsigned nfds = 0;
    int fds[1] = { -1 }, err;

    *c = (struct xsim_client){ .sock = -1, .cloexec = cloexec, .logger = logger, .who = who };
    *fd_out = -1;
    if (xsim_client_connect(c) < 0)
        return -1;
    pthread_mutex_init(&c->lock, NULL);
    rep = malloc(sizeof(*rep));
    if (!rep) {
        err = ENOMEM;
    } else if (xsim_client_call(c, &req, XSIM_REQ_SIZE(hello), -1, rep, fds, 1, &nfds) < 0) {
        err = errno;
        xsim_client_log(logger, who, err, "the xensim broker refused the handle");
    } else if (kind == XSIM_KIND_EVTCHN && nfds != 1) {
        err = EPROTO;
        xsim_close_fds(fds, nfds);
    } else {
        if (kind != XSIM_KIND_EVTCHN)
            xsim_close_fds(fds, nfds); /* nothing is expected: never keep what was not asked for */
        else
            *fd_out = fds[0];
        *domid = rep->val;
        c->ready = true;
        c->owner = getpid();
        free(rep);
        return 0;
    }
    free(rep);
    xsim_client_close(c);
    errno = err;
    return -1;
}

void xsim_client_close(struct xsim_client *c)
{
    struct xsim_req bye = { .op = XSIM_OP_BYE };
    struct xsim_rep rep;

    if (c->sock < 0)
        return;
    /* A forked child's close must not release the parent's ports and grants (nor detach the
     * parent's connection from a shared evtchn handle): the connection is the parent's. */
    if (c->ready && c->owner == getpid())
        xsim_client_call(c, &bye, offsetof(struct xsim_req, u), -1, &rep, NULL, 0, NULL);
    close(c->sock);
    c->sock = -1;
    pthread_mutex_destroy(&c->lock);
}
