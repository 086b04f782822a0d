/* xensimd ROOT [--domains N] [--gntalloc-limit PAGES] [-v]
 * One simulated Xen host rooted in directory ROOT. For every domain d < N it listens on
 *   ROOT/dom<d>/xenstored  xenstored's wire protocol (XENSTORED_PATH for libxenstore)
 *   ROOT/dom<d>/xensim     the event-channel and grant broker (libxenevtchn/libxengnttab look-alikes)
 * and writes ROOT/xensimd.pid once every socket listens. SIGTERM/SIGINT end it. */
#include "xensimd.h"
#include "xsim_proto.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

int xsim_verbose;
unsigned xsim_gnt_limit = XSIM_GNT_DEFAULT_LIMIT;

static const struct xsim_module *const xsim_modules[] = {
    &xsim_xenstore_module,
    &xsim_broker_module,
};
#define XSIM_NMODULES (sizeof(xsim_modules) / sizeof(xsim_modules[0]))

struct xsim_listener {
    int fd;
    unsigned domid;
    const struct xsim_module *mod;
};

struct xsim_conn_slot {
    int fd;
    const struct xsim_module *mod;
    void *state;
};

static struct xsim_listener *xsim_listeners;
static size_t xsim_nlisteners;
static struct xsim_conn_slot *xsim_conns;
static size_t xsim_nconns, xsim_conns_cap;
static volatile sig_atomic_t xsim_stop;

void xsim_log(const char *fmt, ...)
{
    struct timespec ts;
    va_list ap;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    fprintf(stderr, "xensimd[%ld.%03ld]: ", (long)ts.tv_sec, ts.tv_nsec / 1000000);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static void xsim_on_signal(int sig)
{
    (void)sig;
    xsim_stop = 1;
}

static int xsim_listen(const char *path, int type)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd;

    if (strlen(path) >= sizeof(sa.sun_path)) {
        fprintf(stderr, "xensimd: socket path too long: %s\n", path);
        return -1;
    }
    strcpy(sa.sun_path, path);
    unlink(path);
    fd = socket(AF_UNIX, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 64) < 0) {
        fprintf(stderr, "xensimd: cannot listen on %s: %s\n", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

static int xsim_open_listeners(const char *root, unsigned ndomains)
{
    char path[4096];

    xsim_listeners = calloc(ndomains * XSIM_NMODULES, sizeof(*xsim_listeners));
    if (!xsim_listeners)
        return -1;
    for (unsigned d = 0; d < ndomains; d++) {
        snprintf(path, sizeof(path), "%s/dom%u", root, d);
        if (mkdir(path, 0755) < 0 && errno != EEXIST) {
            fprintf(stderr, "xensimd: mkdir %s: %s\n", path, strerror(errno));
            return -1;
        }
        for (size_t m = 0; m < XSIM_NMODULES; m++) {
            struct xsim_listener *l = &xsim_listeners[xsim_nlisteners];

            snprintf(path, sizeof(path), "%s/dom%u/%s", root, d, xsim_modules[m]->sock_name);
            l->fd = xsim_listen(path, xsim_modules[m]->sock_type);
            if (l->fd < 0)
                return -1;
            l->domid = d;
            l->mod = xsim_modules[m];
            xsim_nlisteners++;
        }
    }
    return 0;
}

static void xsim_accept(struct xsim_listener *l)
{
    struct ucred peer;
    socklen_t len = sizeof(peer);
    void *state;
    int fd = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

    if (fd < 0)
        return;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &len) < 0)
        memset(&peer, 0, sizeof(peer));
    state = l->mod->accept(fd, l->domid, &peer);
    if (!state) {
        close(fd);
        return;
    }
    if (xsim_nconns == xsim_conns_cap) {
        size_t cap = xsim_conns_cap ? 2 * xsim_conns_cap : 64;
        struct xsim_conn_slot *n = realloc(xsim_conns, cap * sizeof(*n));

        if (!n) {
            l->mod->on_close(state);
            close(fd);
            return;
        }
        xsim_conns = n;
        xsim_conns_cap = cap;
    }
    xsim_conns[xsim_nconns++] = (struct xsim_conn_slot){ fd, l->mod, state };
    if (xsim_verbose)
        xsim_log("%s: connection fd %d from dom%u pid %d", l->mod->name, fd, l->domid, (int)peer.pid);
}

/* Closes connection i; the last slot moves into its place. */
static void xsim_drop(size_t i)
{
    struct xsim_conn_slot c = xsim_conns[i];

    if (xsim_verbose)
        xsim_log("%s: connection fd %d closed", c.mod->name, c.fd);
    c.mod->on_close(c.state);
    close(c.fd);
    xsim_conns[i] = xsim_conns[--xsim_nconns];
}

static int xsim_run(void)
{
    struct pollfd *pfds = NULL;
    size_t cap = 0;

    while (!xsim_stop) {
        size_t n = xsim_nlisteners + xsim_nconns, nconns = xsim_nconns;

        if (n > cap) {
            struct pollfd *p = realloc(pfds, n * sizeof(*p));

            if (!p)
                return 1;
            pfds = p;
            cap = n;
        }
        for (size_t i = 0; i < xsim_nlisteners; i++)
            pfds[i] = (struct pollfd){ .fd = xsim_listeners[i].fd, .events = POLLIN };
        for (size_t i = 0; i < nconns; i++) {
            const struct xsim_conn_slot *c = &xsim_conns[i];
            short ev = POLLIN;

            if (c->mod->wants_write && c->mod->wants_write(c->state))
                ev |= POLLOUT;
            pfds[xsim_nlisteners + i] = (struct pollfd){ .fd = c->fd, .events = ev };
        }
        /* Blocks until a client speaks; SIGTERM interrupts it (EINTR). */
        if (poll(pfds, n, -1) < 0) {
            if (errno == EINTR)
                continue;
            perror("xensimd: poll");
            return 1;
        }
        /* Connections first, from the back, so that dropping one (the last slot moves
         * into its place) never skips or repeats another; accept afterwards. */
        for (size_t k = nconns; k-- > 0;) {
            short re = pfds[xsim_nlisteners + k].revents;
            struct xsim_conn_slot *c;

            if (k >= xsim_nconns || !re)
                continue;
            c = &xsim_conns[k];
            if (c->fd != pfds[xsim_nlisteners + k].fd)
                continue;
            if ((re & POLLOUT) && c->mod->on_writable && c->mod->on_writable(c->state) < 0) {
                xsim_drop(k);
                continue;
            }
            if ((re & (POLLIN | POLLHUP | POLLERR | POLLNVAL)) && c->mod->on_readable(c->state) < 0)
                xsim_drop(k);
        }
        for (size_t i = 0; i < xsim_nlisteners; i++)
            if (pfds[i].revents & POLLIN)
                xsim_accept(&xsim_listeners[i]);
    }
    free(pfds);
    return 0;
}

static void xsim_usage(void)
{
    fprintf(stderr, "usage: xensimd ROOT [--domains N] [--gntalloc-limit PAGES] [-v]\n"
                    "  ROOT       directory for the sockets (created if missing)\n"
                    "  --domains  number of domains, 0..N-1 (default 4, at most %d)\n"
                    "  --gntalloc-limit  pages each domain may have shared, as gntalloc's `limit`\n"
                    "             module parameter (default %u, at most %u)\n",
            XSIM_MAX_DOMAINS, XSIM_GNT_DEFAULT_LIMIT, XSIM_GNT_MAX_LIMIT);
}

/* A decimal count in 1..max, nothing else. */
static int xsim_parse_count(const char *text, unsigned long max, unsigned *out)
{
    char *end;
    unsigned long v = strtoul(text, &end, 10);

    if (!*text || *end || v < 1 || v > max)
        return -1;
    *out = (unsigned)v;
    return 0;
}

int main(int argc, char **argv)
{
    const char *root = NULL;
    unsigned ndomains = 4;
    char path[4096];
    FILE *pidf;
    struct sigaction sa = { .sa_handler = xsim_on_signal };

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-v")) {
            xsim_verbose = 1;
        } else if (!strcmp(argv[i], "--domains") && i + 1 < argc) {
            if (xsim_parse_count(argv[++i], XSIM_MAX_DOMAINS, &ndomains) < 0) {
                xsim_usage();
                return 2;
            }
        } else if (!strcmp(argv[i], "--gntalloc-limit") && i + 1 < argc) {
            if (xsim_parse_count(argv[++i], XSIM_GNT_MAX_LIMIT, &xsim_gnt_limit) < 0) {
                xsim_usage();
                return 2;
            }
        } else if (argv[i][0] != '-' && !root) {
            root = argv[i];
        } else {
            xsim_usage();
            return 2;
        }
    }
    if (!root) {
        xsim_usage();
        return 2;
    }
    if (mkdir(root, 0755) < 0 && errno != EEXIST) {
        fprintf(stderr, "xensimd: mkdir %s: %s\n", root, strerror(errno));
        return 1;
    }
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    for (size_t m = 0; m < XSIM_NMODULES; m++)
        xsim_modules[m]->init(ndomains);
    if (xsim_open_listeners(root, ndomains) < 0)
        return 1;
    snprintf(path, sizeof(path), "%s/xensimd.pid", root);
    pidf = fopen(path, "w");
    if (!pidf) {
        fprintf(stderr, "xensimd: %s: %s\n", path, strerror(errno));
        return 1;
    }
    fprintf(pidf, "%d\n", (int)getpid());
    fclose(pidf);
    if (xsim_verbose)
        xsim_log("listening in %s for %u domains", root, ndomains);
    int rc = xsim_run();
    while (xsim_nconns)
        xsim_drop(xsim_nconns - 1);
    for (size_t i = 0; i < xsim_nlisteners; i++)
        close(xsim_listeners[i].fd);
    free(xsim_listeners);
    free(xsim_conns);
    unlink(path);
    return rc;
}
