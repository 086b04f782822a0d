/* keeper: one card shared by several processes of one user. See keeper.h and README "One card,
 * several processes". Facts it rests on (case file 60 checks them on real Xen): a grant lives as
 * long as a mapping of it, so only a fork()ed child keeps the holder's rings; an event channel
 * belongs to its /dev/xen/evtchn open file, which the child shares and rebuilds a handle on. */
#include "keeper.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <xenstore.h>

#define XKEEP_MAGIC        0x6b6e7378u /* "xsnk" */
#define XKEEP_VERSION      1u
#define XKEEP_CLAIM_WAIT_MS 1000       /* a connection must say what it wants within this */
#define XKEEP_MAX_PENDING  16

struct xkeep_claim_msg {
    uint32_t magic, version, sidx, direct;
};

struct xkeep_reply_msg {
    int32_t status;   /* 0 or -errno */
    int32_t user_pid; /* -EBUSY: the process using the stream */
};

/* ---------------------------------------------------------------- messages (both sides) */

static void xkeep_reply(int fd, int status, long pid)
{
    struct xkeep_reply_msg m = { status, (int32_t)pid };

    /* Non-blocking: a fresh connection's buffer is empty; a peer that is gone is no concern. */
    if (send(fd, &m, sizeof(m), MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
        return;
}

/* Waits (bounded) for one message of exactly `len` bytes, with at most one descriptor. */
static int xkeep_recv(int fd, int timeout_ms, void *buf, size_t len, int *fd_in)
{
    char cbuf[CMSG_SPACE(sizeof(int))];
    struct iovec iov = { buf, len };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
    struct pollfd pfd = { .fd = fd, .events = POLLIN };
    struct cmsghdr *cm;
    ssize_t n;

    if (fd_in)
        *fd_in = -1;
    if (poll(&pfd, 1, timeout_ms) <= 0) /* bounded by timeout_ms */
        return -ETIMEDOUT;
    n = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0)
        return -errno;
    for (cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS && cm->cmsg_len == CMSG_LEN(sizeof(int))) {
            int got;

            memcpy(&got, CMSG_DATA(cm), sizeof(got));
            if (fd_in && *fd_in < 0)
                *fd_in = got;
            else
                close(got); /* never keep what was not asked for */
        }
    }
    if (n == 0)
        return -ECONNRESET; /* the other end closed */
    return (size_t)n == len && !(mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) ? 0 : -EPROTO;
}

static bool xkeep_peer(int fd, struct ucred *cr)
{
    socklen_t len = sizeof(*cr);

    return getsockopt(fd, SOL_SOCKET, SO_PEERCRED, cr, &len) == 0 && len == sizeof(*cr);
}

int xkeep_claim(const char *nonce, unsigned sidx, int shadow_fd, unsigned timeout_ms, int *fd_out, long *user_pid)
{
    struct xkeep_claim_msg m = { XKEEP_MAGIC, XKEEP_VERSION, sidx, shadow_fd < 0 };
    struct xkeep_reply_msg r;
    char cbuf[CMSG_SPACE(sizeof(int))] = { 0 };
    struct iovec iov = { &m, sizeof(m) };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
    int fd = xsc_token_connect(nonce, timeout_ms), rc;

    *user_pid = 0;
    if (fd < 0) /* nobody listens (a keeper that ended), or its backlog stayed full: try again */
        return fd == -ECONNREFUSED || fd == -ENOENT || fd == -EAGAIN ? -EAGAIN : fd;
    if (shadow_fd >= 0) {
        struct cmsghdr *cm;

        mh.msg_control = cbuf;
        mh.msg_controllen = sizeof(cbuf);
        cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cm), &shadow_fd, sizeof(int));
    }
    if (sendmsg(fd, &mh, MSG_NOSIGNAL) != (ssize_t)sizeof(m)) {
        rc = errno == EPIPE || errno == ECONNRESET ? -EAGAIN : -errno;
        close(fd);
        return rc;
    }
    /* The holder forks its keeper before answering the first claim: allow it the whole timeout. */
    rc = xkeep_recv(fd, (int)timeout_ms, &r, sizeof(r), NULL);
    if (rc == -ECONNRESET)
        rc = -EAGAIN; /* closed unanswered: a keeper that was ending as we came */
    else if (rc == 0 && r.status > 0)
        rc = -EPROTO;
    else if (rc == 0)
        rc = r.status;
    if (rc < 0) {
        *user_pid = rc == -EBUSY ? r.user_pid : 0;
        close(fd);
        return rc;
    }
    *fd_out = fd;
    return 0;
}

/* ---------------------------------------------------------------- the keeper (a forked child) */

struct xkeep_user {
    int fd;                      /* its claim: -1 while the stream is free */
    long pid;
    bool direct;                 /* the holder's own stream: it uses the ring itself */
    void *shadow;                /* relayed: the request ring and event page shared with the user */
    xen_sndif_back_ring_t back;  /* our (the backend's) end of the shadow's request ring */
};

struct xkeep_state {
    struct xsc_conn *conn;       /* our copy of the holder's; conn->xs replaced by our own */
    struct xring *rings;         /* our copies of the holder's rings (the mappings are shared) */
    unsigned nstreams;
    long holder;                 /* its pid: only it claims streams direct */
    int listen_fd;
    struct xkeep_user users[XSC_MAX_STREAMS];
    bool broken[XSC_MAX_STREAMS]; /* the backend did not settle it: refused from then on */
    int pending[XKEEP_MAX_PENDING];
    long long pending_since[XKEEP_MAX_PENDING];
    /* The claim that made the holder fork us. */
    int first_fd, first_shadow;
    struct xkeep_claim_msg first;
    long first_pid;
};

static bool xkeep_fd_kept(const int *keep, unsigned n, int fd)
{
    for (unsigned i = 0; i < n; i++)
        if (keep[i] == fd)
            return true;
    return false;
}

/* Every descriptor of the process we were forked from goes but ours: the application's files and
 * sockets must not stay open in us (a peer would not see them close). Standard input and outputs
 * become /dev/null: nothing of ours is written there. */
static void xkeep_close_others(const int *keep, unsigned n)
{
    int fd_max = (int)sysconf(_SC_OPEN_MAX), null = open("/dev/null", O_RDWR | O_CLOEXEC);

    for (int fd = 0; fd < fd_max; fd++) {
        unsigned next = (unsigned)fd_max;

        if (fd == null || xkeep_fd_kept(keep, n, fd))
            continue;
        if (fd > 2) { /* close up to the next kept descriptor in one call */
            for (unsigned i = 0; i < n; i++)
                if (keep[i] > fd && (unsigned)keep[i] < next)
                    next = (unsigned)keep[i];
            if (null > fd && (unsigned)null < next)
                next = (unsigned)null;
            if (close_range((unsigned)fd, next - 1, 0) < 0)
                close(fd);
            fd = (int)next - 1;
            continue;
        }
        if (null >= 0)
            dup2(null, fd);
        else
            close(fd);
    }
    if (null > 2)
        close(null);
}

/* Our own life: a session of our own (a terminal's ^C to the application's group spares us),
 * default signals, a name in ps, only our descriptors, and handles rebuilt on the event channels'
 * open files (the old handles' other resources went with the descriptors). */
static void xkeep_detach(struct xkeep_state *k)
{
    int keep[3 + 2 * XSC_MAX_STREAMS];
    unsigned n = 0;
    sigset_t all;

    setsid();
    prctl(PR_SET_NAME, "pcm_xen-keeper", 0, 0, 0);
    for (int sig = 1; sig < 32; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            signal(sig, sig == SIGPIPE ? SIG_IGN : SIG_DFL);
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    keep[n++] = k->listen_fd;
    keep[n++] = k->first_fd;
    keep[n++] = k->first_shadow;
    for (unsigned i = 0; i < k->nstreams; i++) {
        if (k->users[i].fd >= 0)
            keep[n++] = k->users[i].fd;
        if (k->rings[i].xce)
            keep[n++] = xenevtchn_fd(k->rings[i].xce);
    }
    xkeep_close_others(keep, n);
    for (unsigned i = 0; i < k->nstreams; i++) {
        struct xring *r = &k->rings[i];
        xenevtchn_handle *x = r->xce ? xenevtchn_fdopen(NULL, xenevtchn_fd(r->xce), 0) : NULL;

        r->xce = x; /* the old handle is abandoned: its descriptor now belongs to x */
        r->on_complete = NULL;
        r->ctx = NULL;
        r->quiet = false;
        if (!x)
            k->broken[i] = true;
    }
}

/* A stream's user is gone (closed its claim, ended, was killed): the stream is taken back. Its
 * requests still on the ring are let finish, the ring's indexes become ours, and it is CLOSEd
 * (a process killed never closed it; a second CLOSE is harmless: Linux sends one per hw_free).
 * This blocks the relaying of other streams for that round trip, bounded by the timeout. */
static void xkeep_release(struct xkeep_state *k, unsigned i)
{
    struct xkeep_user *u = &k->users[i];
    struct xensnd_req req = { .operation = XENSND_OP_CLOSE };

    if (u->fd < 0)
        return;
    close(u->fd);
    if (u->shadow)
        munmap(u->shadow, XKEEP_SHADOW_BYTES);
    *u = (struct xkeep_user){ .fd = -1 };
    if (k->broken[i] || xring_settle(&k->rings[i]) < 0 || xring_call(&k->rings[i], &req, NULL) < 0)
        k->broken[i] = true;
}

/* Has the peer of a claim closed it (a message waiting is no end)? */
static bool xkeep_claim_ended(int fd)
{
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);

    return n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR);
}

/* Takes the user's shadow: two pages of a memfd its user made and set up, sealed against shrinking
 * (a shrunk file would make our next access a SIGBUS). */
static void *xkeep_map_shadow(int shadow_fd)
{
    struct stat st;
    int seals;
    void *p;

    if (shadow_fd < 0 || fstat(shadow_fd, &st) < 0 || st.st_size < (off_t)XKEEP_SHADOW_BYTES)
        return NULL;
    seals = fcntl(shadow_fd, F_GET_SEALS);
    if (seals < 0 || !(seals & F_SEAL_SHRINK))
        return NULL;
    p = mmap(NULL, XKEEP_SHADOW_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, shadow_fd, 0);
    return p == MAP_FAILED ? NULL : p;
}

/* A claim: the stream is handed out if free (one process each), or refused naming its user. */
static void xkeep_grant(struct xkeep_state *k, int fd, const struct xkeep_claim_msg *m, int shadow_fd, long pid)
{
    struct xkeep_user *u;
    int status = 0;

    if (m->magic != XKEEP_MAGIC || m->version != XKEEP_VERSION || m->sidx >= k->nstreams) {
        status = -EPROTO;
        goto refuse;
    }
    u = &k->users[m->sidx];
    if (u->fd >= 0 && xkeep_claim_ended(u->fd))
        xkeep_release(k, m->sidx); /* its end is queued behind this claim: take it first */
    if (u->fd >= 0) {
        xkeep_reply(fd, -EBUSY, u->pid);
        goto out;
    }
    if (k->broken[m->sidx]) {
        status = -EIO;
        goto refuse;
    }
    if (m->direct) {
        if (pid != k->holder) { /* only the holder maps the rings itself */
            status = -EPERM;
            goto refuse;
        }
        *u = (struct xkeep_user){ .fd = fd, .pid = pid, .direct = true };
    } else {
        void *shadow = xkeep_map_shadow(shadow_fd);

        if (!shadow) {
            status = -EPROTO;
            goto refuse;
        }
        if (xring_settle(&k->rings[m->sidx]) < 0) { /* as it was left; normally already settled */
            munmap(shadow, XKEEP_SHADOW_BYTES);
            k->broken[m->sidx] = true;
            status = -EIO;
            goto refuse;
        }
        *u = (struct xkeep_user){ .fd = fd, .pid = pid, .shadow = shadow };
        BACK_RING_INIT(&u->back, (xen_sndif_sring_t *)shadow, XRING_PAGE_SIZE);
    }
    if (shadow_fd >= 0)
        close(shadow_fd);
    xkeep_reply(fd, 0, 0);
    return;
refuse:
    xkeep_reply(fd, status, 0);
out:
    if (shadow_fd >= 0)
        close(shadow_fd);
    close(fd);
}

/* Wakes a relayed stream's user (its ring or event page moved). */
static void xkeep_wake(const struct xkeep_user *u)
{
    static const char wake = 'n';

    /* EAGAIN: wake-ups already queued; it reads everything at each. */
    if (send(u->fd, &wake, 1, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
        return;
}

/* The backend moved a relayed stream's ring or event page: copy both to the shadow, and any
 * requests that waited for room to the ring. A backend that broke the ring ends the stream. */
static void xkeep_from_backend(struct xkeep_state *k, unsigned i)
{
    struct xkeep_user *u = &k->users[i];
    struct xring *r = &k->rings[i];
    bool rsp = false, evt = false;

    xring_ack(r);
    if (xring_bridge_responses(r, &u->back, &rsp) < 0 ||
        xring_bridge_events(r, (struct xensnd_event_page *)((char *)u->shadow + XRING_PAGE_SIZE), &evt) < 0 ||
        xring_bridge_requests(r, &u->back) < 0) {
        k->broken[i] = true; /* its user sees its claim end (the keeper is gone, for it) */
        xkeep_release(k, i);
        return;
    }
    if (rsp || evt)
        xkeep_wake(u);
}

/* A relayed stream's user notified (or ended). */
static void xkeep_from_user(struct xkeep_state *k, unsigned i)
{
    struct xkeep_user *u = &k->users[i];
    char buf[64];
    ssize_t n;

    while ((n = recv(u->fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0)
        ;
    if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        xkeep_release(k, i);
        return;
    }
    if (!u->direct && xring_bridge_requests(&k->rings[i], &u->back) < 0)
        xkeep_release(k, i); /* impossible indexes: that user is dropped, the ring stays sane */
}

static void xkeep_accept(struct xkeep_state *k)
{
    struct ucred cr;
    int fd = accept4(k->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

    if (fd < 0)
        return;
    if (!xkeep_peer(fd, &cr) || cr.uid != getuid()) {
        xkeep_reply(fd, -EPERM, 0); /* another user: nothing else is said */
        close(fd);
        return;
    }
    for (unsigned i = 0; i < XKEEP_MAX_PENDING; i++) {
        if (k->pending[i] < 0) {
            k->pending[i] = fd;
            k->pending_since[i] = xring_now_ms();
            return;
        }
    }
    xkeep_reply(fd, -EAGAIN, 0); /* too many at once: it tries again */
    close(fd);
}

static void xkeep_on_pending(struct xkeep_state *k, unsigned p)
{
    struct xkeep_claim_msg m;
    struct ucred cr;
    int fd = k->pending[p], shadow = -1;

    k->pending[p] = -1;
    if (xkeep_recv(fd, 0, &m, sizeof(m), &shadow) < 0 || !xkeep_peer(fd, &cr)) {
        if (shadow >= 0)
            close(shadow);
        close(fd);
        return;
    }
    xkeep_grant(k, fd, &m, shadow, cr.pid);
}

static bool xkeep_in_use(const struct xkeep_state *k)
{
    for (unsigned i = 0; i < k->nstreams; i++)
        if (k->users[i].fd >= 0)
            return true;
    for (unsigned i = 0; i < XKEEP_MAX_PENDING; i++)
        if (k->pending[i] >= 0)
            return true;
    return false;
}

/* What to poll, and which stream or pending claim each entry is. */
enum { XKEEP_LISTEN, XKEEP_PENDING, XKEEP_USER, XKEEP_RING };
struct xkeep_slot {
    int kind;
    unsigned index;
};

static unsigned xkeep_poll_set(const struct xkeep_state *k, struct pollfd *pfd, struct xkeep_slot *slot)
{
    unsigned n = 0;

    pfd[n] = (struct pollfd){ .fd = k->listen_fd, .events = POLLIN };
    slot[n++] = (struct xkeep_slot){ XKEEP_LISTEN, 0 };
    for (unsigned i = 0; i < XKEEP_MAX_PENDING; i++) {
        if (k->pending[i] >= 0) {
            pfd[n] = (struct pollfd){ .fd = k->pending[i], .events = POLLIN };
            slot[n++] = (struct xkeep_slot){ XKEEP_PENDING, i };
        }
    }
    for (unsigned i = 0; i < k->nstreams; i++) {
        if (k->users[i].fd < 0)
            continue;
        pfd[n] = (struct pollfd){ .fd = k->users[i].fd, .events = POLLIN };
        slot[n++] = (struct xkeep_slot){ XKEEP_USER, i };
        if (!k->users[i].direct) { /* the holder's own rings are its own to poll */
            pfd[n] = (struct pollfd){ .fd = xring_fd(&k->rings[i]), .events = POLLIN };
            slot[n++] = (struct xkeep_slot){ XKEEP_RING, i };
        }
    }
    return n;
}

/* Claims that never said what they want within XKEEP_CLAIM_WAIT_MS are dropped. */
static void xkeep_expire_pending(struct xkeep_state *k)
{
    long long now = xring_now_ms();

    for (unsigned i = 0; i < XKEEP_MAX_PENDING; i++) {
        if (k->pending[i] >= 0 && now - k->pending_since[i] > XKEEP_CLAIM_WAIT_MS) {
            close(k->pending[i]);
            k->pending[i] = -1;
        }
    }
}

/* Serves until no process uses the card and none is about to. Every poll is bounded so that
 * silent claims expire; everything else moves on a descriptor. */
static void xkeep_loop(struct xkeep_state *k)
{
    struct pollfd pfd[1 + XKEEP_MAX_PENDING + 2 * XSC_MAX_STREAMS];
    struct xkeep_slot slot[1 + XKEEP_MAX_PENDING + 2 * XSC_MAX_STREAMS];

    while (xkeep_in_use(k)) {
        unsigned n = xkeep_poll_set(k, pfd, slot);

        if (poll(pfd, n, XKEEP_CLAIM_WAIT_MS) < 0 && errno != EINTR)
            break;
        for (unsigned j = 0; j < n; j++) {
            if (!pfd[j].revents)
                continue;
            switch (slot[j].kind) {
            case XKEEP_LISTEN:
                xkeep_accept(k);
                break;
            case XKEEP_PENDING:
                if (k->pending[slot[j].index] == pfd[j].fd)
                    xkeep_on_pending(k, slot[j].index);
                break;
            case XKEEP_USER:
                if (k->users[slot[j].index].fd == pfd[j].fd)
                    xkeep_from_user(k, slot[j].index);
                break;
            case XKEEP_RING:
                if (k->users[slot[j].index].fd >= 0 && !k->users[slot[j].index].direct)
                    xkeep_from_backend(k, slot[j].index);
                break;
            }
        }
        xkeep_expire_pending(k);
    }
}

/* The last user went: nobody new may come (the token goes first; a process arriving now tries
 * again and finds the card free once we are done), the card is disconnected (the backend back at
 * InitWait, bounded by the timeout) and its records removed. */
static void __attribute__((noreturn)) xkeep_finish(struct xkeep_state *k)
{
    close(k->listen_fd);
    if (k->conn->xs) {
        xsc_disconnect(k->conn);
        xsc_release_keeper(k->conn);
    }
    _exit(0);
}

static void __attribute__((noreturn)) xkeep_main(struct xkeep_state *k)
{
    xkeep_detach(k);
    /* Our own xenstore connection: the holder's belongs to it (its reader thread is not ours). */
    k->conn->xs = xs_open(0);
    k->conn->token_fd = k->listen_fd;
    if (k->conn->xs)
        xsc_record_keeper(k->conn);
    xkeep_grant(k, k->first_fd, &k->first, k->first_shadow, k->first_pid);
    xkeep_loop(k);
    xkeep_finish(k);
}

/* ---------------------------------------------------------------- the holder's listener */

/* Forks the keeper (through a child that exits at once: the keeper is nobody's child to reap)
 * with the claim that asked. Under host->lock: no stream of ours changes hands meanwhile. */
static int xkeep_fork(struct xkeep_host *h, struct xring *rings, const bool *in_use, int fd, int shadow,
                      const struct xkeep_claim_msg *m, long pid)
{
    int mine[XSC_MAX_STREAMS], st = 0;
    struct xkeep_state k = { .conn = h->conn, .rings = rings, .nstreams = h->nstreams, .holder = (long)getpid(),
                             .listen_fd = h->conn->token_fd, .first_fd = fd, .first_shadow = shadow,
                             .first = *m, .first_pid = pid };
    pid_t mid;

    for (unsigned i = 0; i < XKEEP_MAX_PENDING; i++)
        k.pending[i] = -1;
    for (unsigned i = 0; i < XSC_MAX_STREAMS; i++) {
        int sp[2] = { -1, -1 };

        k.users[i] = (struct xkeep_user){ .fd = -1 };
        mine[i] = -1;
        if (i < h->nstreams && in_use[i] && socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) == 0) {
            mine[i] = sp[0];
            k.users[i] = (struct xkeep_user){ .fd = sp[1], .pid = k.holder, .direct = true };
        }
    }
    mid = fork();
    if (mid == 0) {
        pid_t keeper = fork();

        if (keeper == 0)
            xkeep_main(&k);
        _exit(keeper < 0);
    }
    for (unsigned i = 0; i < XSC_MAX_STREAMS; i++)
        if (k.users[i].fd >= 0)
            close(k.users[i].fd);
    /* The intermediate child exits as soon as it forked: this wait is that long. (An application
     * that reaps every child may take it first: ECHILD, st stays 0, the keeper runs all the same.) */
    while (mid > 0 && waitpid(mid, &st, 0) < 0 && errno == EINTR)
        ;
    if (mid < 0 || !WIFEXITED(st) || WEXITSTATUS(st)) {
        for (unsigned i = 0; i < XSC_MAX_STREAMS; i++)
            if (mine[i] >= 0)
                close(mine[i]);
        return -EAGAIN;
    }
    h->now_shared(h->ctx, mine);
    xsc_drop_token(h->conn); /* the keeper answers there from now on */
    return 0;
}

/* One connection to the holder's token: another user's is refused; a claim of a stream this
 * process uses gets -EBUSY; any other claim forks the keeper, which answers it. True once the
 * keeper runs (the listener's work is done). */
static bool xkeep_admit(struct xkeep_host *h, int fd)
{
    struct xkeep_claim_msg m;
    struct xring *rings;
    const bool *in_use;
    struct ucred cr;
    int shadow = -1, status = 0;
    bool took = false;

    if (!xkeep_peer(fd, &cr) || cr.uid != getuid()) {
        xkeep_reply(fd, -EPERM, 0);
        close(fd);
        return false;
    }
    if (xkeep_recv(fd, XKEEP_CLAIM_WAIT_MS, &m, sizeof(m), &shadow) < 0 || m.magic != XKEEP_MAGIC ||
        m.version != XKEEP_VERSION || m.sidx >= h->nstreams || m.direct || shadow < 0) {
        status = -EPROTO;
    } else {
        pthread_mutex_lock(h->lock); /* the card's streams and rings stay as they are until the fork */
        if (!h->snapshot(h->ctx, &rings, &in_use))
            status = -EAGAIN; /* the card is being closed: it will be free */
        else if (in_use[m.sidx])
            status = -EBUSY;
        else
            took = xkeep_fork(h, rings, in_use, fd, shadow, &m, (long)cr.pid) == 0;
        if (!took && !status)
            status = -EAGAIN;
        pthread_mutex_unlock(h->lock);
    }
    if (!took)
        xkeep_reply(fd, status, status == -EBUSY ? (long)getpid() : 0);
    if (shadow >= 0)
        close(shadow);
    close(fd);
    return took;
}

static void *xkeep_listen_thread(void *arg)
{
    struct xkeep_listener *l = arg;
    int lfd = l->host.conn->token_fd; /* ours until the fork hands it over, or stop shuts it down */
    sigset_t all;

    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL); /* the application's signals are for its own threads */
    for (;;) {
        /* Blocks until a process connects; xkeep_listen_stop's shutdown() ends it. */
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            break;
        }
        if (xkeep_admit(&l->host, fd))
            break;
    }
    return NULL;
}

int xkeep_listen_start(struct xkeep_listener *l, const struct xkeep_host *host)
{
    int rc;

    l->host = *host;
    l->started = false;
    if (host->conn->token_fd < 0)
        return 0; /* no token (sockets unavailable): the card is not shared, as before */
    rc = pthread_create(&l->thread, NULL, xkeep_listen_thread, l);
    if (rc)
        return -rc;
    l->started = true;
    return 0;
}

void xkeep_listen_stop(struct xkeep_listener *l)
{
    int fd;

    if (!l->started)
        return;
    pthread_mutex_lock(l->host.lock); /* token_fd changes hands under it (xkeep_fork) */
    fd = l->host.conn->token_fd;
    pthread_mutex_unlock(l->host.lock);
    if (fd >= 0)
        shutdown(fd, SHUT_RDWR); /* accept() returns: the thread ends */
    pthread_join(l->thread, NULL);
    l->started = false;
}
