/* handoff-probe: checks on real Xen the facts README's "One card, several processes" design rests on.
 * Found here first: libxengnttab's xengntshr_share_pages maps the new grant and then drops it from the
 * gntalloc file (IOCTL_GNTALLOC_DEALLOC_GREF), so the grant lives exactly as long as a mapping of it: the
 * descriptor does not carry it, but a fork()ed child's inherited mapping does. Event channels belong to
 * their /dev/xen/evtchn open file, which SCM_RIGHTS carries.
 *   handoff-probe hold NAME DIR     (domU) shares a page and binds a port for dom0, forks a keeper child
 *                                   (which inherits the mapping; it writes its mark when DIR/keeper.write
 *                                   appears and exits when DIR/keeper.exit does), writes DIR/hold.info
 *                                   ("GREF PORT"), and serves the abstract socket NAME: same uid gets the
 *                                   gntalloc and evtchn descriptors, another uid is refused; runs until killed
 *   handoff-probe take NAME DIR     (domU) takes the descriptors: the share must not map through the gntalloc
 *                                   one; the event channel works through the other, after the holder's death
 *                                   (DIR/holder-dead), both ways; exits once DIR/take.exit exists
 *   handoff-probe peer DOMID GREF PORT    (dom0) maps the grant afresh (the keeper's mark), events both ways
 *   handoff-probe gone DOMID GREF         (dom0) the grant no longer maps with the keeper's contents
 * Each check prints PASS:/FAIL: with the role's name; every wait is bounded (20 s); exit 1 on a FAIL. */
#include <stddef.h>
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <xenevtchn.h>
#include <xengnttab.h>

#define HP_PAGE      4096u
#define HP_WAIT_MS   20000
#define HP_HOLD_MARK "handoff-probe: written by the holder"
#define HP_KEEP_MARK "handoff-probe: written by the keeper after the holder died"

static int hp_failed;

static void hp_result(int ok, const char *role, const char *name, const char *why)
{
    if (ok)
        printf("PASS: handoff/%s/%s\n", role, name);
    else
        printf("FAIL: handoff/%s/%s: %s\n", role, name, why);
    fflush(stdout);
    hp_failed |= !ok;
}

static socklen_t hp_addr(const char *name, struct sockaddr_un *sa)
{
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    snprintf(sa->sun_path + 1, sizeof(sa->sun_path) - 1, "pcm_xen-handoff-%s", name);
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(sa->sun_path + 1));
}

static int hp_file_exists(const char *dir, const char *file)
{
    char path[512];
    struct stat st;

    snprintf(path, sizeof(path), "%s/%s", dir, file);
    return stat(path, &st) == 0;
}

static void hp_touch(const char *dir, const char *file, const char *text)
{
    char path[512], tmp[520];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, file);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    if ((f = fopen(tmp, "w"))) {
        fputs(text, f);
        fclose(f);
        rename(tmp, path);
    }
}

/* Bounded wait (ms) for DIR/FILE, polled every 20 ms. */
static int hp_wait_file_for(const char *dir, const char *file, int ms)
{
    for (int i = 0; i < ms / 20; i++) {
        if (hp_file_exists(dir, file))
            return 1;
        usleep(20000);
    }
    return 0;
}

static int hp_wait_file(const char *dir, const char *file)
{
    return hp_wait_file_for(dir, file, HP_WAIT_MS);
}

/* Bounded wait for one event on xce's fd; returns the port or -1. */
static int hp_wait_event(xenevtchn_handle *xce)
{
    struct pollfd pfd = { .fd = xenevtchn_fd(xce), .events = POLLIN };
    int port;

    if (poll(&pfd, 1, HP_WAIT_MS) != 1 || (port = xenevtchn_pending(xce)) < 0)
        return -1;
    xenevtchn_unmask(xce, (evtchn_port_t)port);
    return port;
}

/* The keeper: a fork()ed child whose inherited mapping keeps the grant alive after the holder dies. */
static int hp_fork_keeper(char *page, const char *dir)
{
    pid_t pid = fork();

    char txt[32];

    if (pid != 0)
        return pid < 0 ? -1 : 0;
    snprintf(txt, sizeof(txt), "%ld\n", (long)getpid());
    hp_touch(dir, "keeper.pid", txt);
    /* The case file reaches this step after several domU round trips (seconds each under QEMU). */
    if (hp_wait_file_for(dir, "keeper.write", 10 * HP_WAIT_MS)) {
        strcpy(page, HP_KEEP_MARK);
        hp_touch(dir, "keeper.wrote", "1\n");
    }
    hp_wait_file_for(dir, "keeper.exit", 10 * HP_WAIT_MS);
    _exit(0);
}

static int hp_hold(const char *name, const char *dir)
{
    xengntshr_handle *gs = xengntshr_open(NULL, 0);
    xenevtchn_handle *xce = xenevtchn_open(NULL, 0);
    struct sockaddr_un sa;
    uint32_t ref;
    char info[64];
    void *page;
    int port, lfd;

    if (!gs || !xce) {
        hp_result(0, "hold", "setup", "cannot open gntalloc/evtchn");
        return 1;
    }
    page = xengntshr_share_pages(gs, 0, 1, &ref, 1);
    port = xenevtchn_bind_unbound_port(xce, 0);
    lfd = socket(AF_UNIX, SOCK_SEQPACKET, 0);
    if (!page || port < 0 || lfd < 0 || bind(lfd, (struct sockaddr *)&sa, hp_addr(name, &sa)) < 0 || listen(lfd, 4) < 0) {
        hp_result(0, "hold", "setup", strerror(errno));
        return 1;
    }
    strcpy(page, HP_HOLD_MARK);
    if (hp_fork_keeper(page, dir) < 0) {
        hp_result(0, "hold", "fork-keeper", strerror(errno));
        return 1;
    }
    snprintf(info, sizeof(info), "%ld\n", (long)getpid());
    hp_touch(dir, "hold.pid", info);
    snprintf(info, sizeof(info), "%u %d\n", ref, port);
    hp_touch(dir, "hold.info", info);
    /* Blocks in accept until the case file kills us (kill -9 is the point of the probe). */
    for (;;) {
        int fd = accept(lfd, NULL, NULL), fds[2] = { xengntshr_fd(gs), xenevtchn_fd(xce) };
        struct ucred cred;
        socklen_t len = sizeof(cred);
        char cbuf[CMSG_SPACE(sizeof(fds))];
        struct iovec iov = { .iov_base = &port, .iov_len = sizeof(port) };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);

        if (fd < 0)
            continue;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || cred.uid != getuid()) {
            printf("hold: refused a process of uid %u\n", (unsigned)cred.uid);
            fflush(stdout);
            close(fd); /* another user: no descriptor is sent */
            continue;
        }
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(fds));
        memcpy(CMSG_DATA(cm), fds, sizeof(fds));
        if (sendmsg(fd, &mh, 0) < 0)
            printf("hold: sendmsg: %s\n", strerror(errno));
        close(fd);
        hp_touch(dir, "hold.sent", "1\n");
    }
}

/* Connects to the holder and receives the two descriptors and the port; 0 or -1. */
static int hp_receive(const char *name, int fds[2], int *port)
{
    struct sockaddr_un sa;
    char cbuf[CMSG_SPACE(2 * sizeof(int))];
    struct iovec iov = { .iov_base = port, .iov_len = sizeof(*port) };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
    struct timeval tv = { .tv_sec = HP_WAIT_MS / 1000 };
    struct cmsghdr *cm;
    int s = socket(AF_UNIX, SOCK_SEQPACKET, 0);

    if (s < 0 || connect(s, (struct sockaddr *)&sa, hp_addr(name, &sa)) < 0)
        return -1;
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)); /* the holder answers or closes */
    if (recvmsg(s, &mh, 0) != (ssize_t)sizeof(*port) || !(cm = CMSG_FIRSTHDR(&mh)) || cm->cmsg_type != SCM_RIGHTS ||
        cm->cmsg_len != CMSG_LEN(2 * sizeof(int))) {
        close(s);
        return -1;
    }
    memcpy(fds, CMSG_DATA(cm), 2 * sizeof(int));
    close(s);
    return 0;
}

static int hp_take(const char *name, const char *dir)
{
    int fds[2], port;
    xenevtchn_handle *xce;
    void *page;

    if (hp_receive(name, fds, &port) < 0) {
        /* Expected for another user: the refusal is this role's result. */
        printf("take: no descriptors from the holder\n");
        return 2;
    }
    hp_result(1, "take", "received", "");
    /* The descriptor is the gntalloc file, but the share left its list when libxengnttab mapped it. */
    page = mmap(NULL, HP_PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fds[0], 0);
    hp_result(page == MAP_FAILED, "take", "share-not-reachable-through-the-gntalloc-descriptor",
              "it maps: grants could be handed over by descriptor after all (README's design should use that)");
    xce = xenevtchn_fdopen(NULL, fds[1], 0);
    hp_result(xce != NULL, "take", "fdopen-evtchn", strerror(errno));
    if (!xce)
        return 1;
    hp_touch(dir, "take.ready", "1\n");
    hp_result(hp_wait_file(dir, "holder-dead"), "take", "holder-killed", "DIR/holder-dead never came");
    /* After the maker's death: dom0's event arrives on the passed descriptor, and ours reaches it. */
    hp_result(hp_wait_event(xce) == port, "take", "event-from-dom0-after-holder-died", "no event on the port");
    hp_result(xenevtchn_notify(xce, (evtchn_port_t)port) == 0, "take", "notify-dom0", strerror(errno));
    hp_touch(dir, "take.notified", "1\n");
    hp_wait_file(dir, "take.exit");
    return hp_failed;
}

static int hp_peer(unsigned domid, uint32_t gref, unsigned port)
{
    xengnttab_handle *gt = xengnttab_open(NULL, 0);
    xenevtchn_handle *xce = xenevtchn_open(NULL, 0);
    char *page;
    int local;

    if (!gt || !xce) {
        hp_result(0, "peer", "setup", "cannot open gntdev/evtchn");
        return 1;
    }
    /* A fresh map after the maker's death: the grant was not ended with it. */
    page = xengnttab_map_grant_ref(gt, domid, gref, PROT_READ | PROT_WRITE);
    hp_result(page && !strcmp(page, HP_KEEP_MARK), "peer", "maps-grant-after-holder-died-sees-keeper",
              page ? "other contents" : strerror(errno));
    local = xenevtchn_bind_interdomain(xce, domid, port);
    hp_result(local >= 0, "peer", "binds-port-after-holder-died", strerror(errno));
    if (local < 0)
        return 1;
    hp_result(xenevtchn_notify(xce, (evtchn_port_t)local) == 0, "peer", "notify", strerror(errno));
    hp_result(hp_wait_event(xce) == local, "peer", "event-from-taker", "no event from the taker");
    if (page)
        xengnttab_unmap(gt, page, 1);
    return hp_failed;
}

static int hp_gone(unsigned domid, uint32_t gref)
{
    xengnttab_handle *gt = xengnttab_open(NULL, 0);
    char *page = gt ? xengnttab_map_grant_ref(gt, domid, gref, PROT_READ) : NULL;

    /* Ended: the map fails (or, if the guest already reused the reference, shows other contents). */
    hp_result(gt && (!page || strcmp(page, HP_KEEP_MARK)), "peer", "grant-ended-with-its-last-mapping",
              "the grant still maps with the keeper's contents");
    return hp_failed;
}

int main(int argc, char **argv)
{
    if (argc == 4 && !strcmp(argv[1], "hold"))
        return hp_hold(argv[2], argv[3]);
    if (argc == 4 && !strcmp(argv[1], "take"))
        return hp_take(argv[2], argv[3]);
    if (argc == 5 && !strcmp(argv[1], "peer"))
        return hp_peer((unsigned)atoi(argv[2]), (uint32_t)strtoul(argv[3], NULL, 0), (unsigned)atoi(argv[4]));
    if (argc == 4 && !strcmp(argv[1], "gone"))
        return hp_gone((unsigned)atoi(argv[2]), (uint32_t)strtoul(argv[3], NULL, 0));
    fprintf(stderr, "usage: handoff-probe hold|take NAME DIR | peer DOMID GREF PORT | gone DOMID GREF\n");
    return 2;
}
