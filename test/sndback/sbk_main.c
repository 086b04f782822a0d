/* sndback: the reference sndif backend. See README.md for the options and what it writes.
 * One thread, one epoll loop: xenstore watches, each card's event channels, each stream's
 * clock timer, SIGTERM/SIGINT, and deadlines of delayed requests. */
#include "sbk_audio.h"
#include "sbk_bus.h"
#include "sbk_card.h"
#include "sbk_log.h"
#include "sbk_stream.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#define SBK_EXIT_USAGE 2        /* bad command line or configuration */
#define SBK_EXIT_RUNTIME 1      /* no xenstore, no devices, ... */
#define SBK_XS_CHECK_NS 1000000000u     /* how often we check that xenstore still answers */

int sbk_daemon_watch_fd(struct sbk_daemon *d, int fd, struct sbk_evsrc *src)
{
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = src };

    return epoll_ctl(d->epoll_fd, EPOLL_CTL_ADD, fd, &ev);
}

void sbk_daemon_unwatch_fd(struct sbk_daemon *d, int fd)
{
    epoll_ctl(d->epoll_fd, EPOLL_CTL_DEL, fd, NULL);
}

/* Every configured capture source must be usable before we announce ourselves. */
static int sbk_check_sources(const struct sbk_options *o)
{
    char err[512];

    if (o->all.has_capture && sbk_source_check(&o->all.capture, err, sizeof(err)) < 0) {
        sbk_error("%s", err);
        return -1;
    }
    for (unsigned i = 0; i < o->n_per_stream; i++)
        if (o->per_stream[i].opts.has_capture && sbk_source_check(&o->per_stream[i].opts.capture, err, sizeof(err)) < 0) {
            sbk_error("stream %s: %s", o->per_stream[i].uid, err);
            return -1;
        }
    return 0;
}

static int sbk_prepare_out_dir(const struct sbk_options *o)
{
    struct stat st;

    if (o->discard)
        return 0;
    if (mkdir(o->out_dir, 0755) < 0 && errno != EEXIST) {
        sbk_error("--out %s: cannot create it: %s", o->out_dir, strerror(errno));
        return -1;
    }
    if (stat(o->out_dir, &st) < 0 || !S_ISDIR(st.st_mode) || access(o->out_dir, W_OK) < 0) {
        sbk_error("--out %s: not a writable directory", o->out_dir);
        return -1;
    }
    return 0;
}

/* Written whole (temporary file, then rename) so that a runner never reads half of it. */
static int sbk_write_ready_file(const char *path)
{
    char tmp[4096];
    FILE *f;

    snprintf(tmp, sizeof(tmp), "%s.tmp%ld", path, (long)getpid());
    f = fopen(tmp, "w");
    if (!f || fprintf(f, "%ld\n", (long)getpid()) < 0 || fclose(f) != 0 || rename(tmp, path) < 0) {
        sbk_error("--ready-file %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

static int sbk_signal_fd(void)
{
    sigset_t set;

    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
        return -1;
    signal(SIGPIPE, SIG_IGN);       /* a vanished xenstored is an error return, not a death */
    return signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
}

/* Milliseconds from now to `deadline` for epoll_wait, rounded up. */
static int sbk_timeout_ms(uint64_t deadline)
{
    uint64_t now = sbk_now_ns();

    return deadline <= now ? 0 : (int)((deadline - now) / 1000000u + 1);
}

/* libxenstore's reader thread closes the socket when xenstored goes away, and nothing wakes
 * us: a read that fails for another reason than the node's absence tells. */
static bool sbk_xenstore_alive(struct sbk_daemon *d)
{
    unsigned len;
    char *v = xs_read(d->xen.xs, XBT_NULL, d->be_root, &len);

    free(v);
    return v || errno == ENOENT || errno == EACCES;
}

/* Serves events until SIGTERM/SIGINT (returns 0) or a fatal error (returns -1). One event per
 * wait: a handler may free what a later event of the same batch points to (a card torn down by
 * a watch). Waits end at the next request deadline or xenstore check. */
static int sbk_run(struct sbk_daemon *d, int sig_fd)
{
    uint64_t next_check = sbk_now_ns() + SBK_XS_CHECK_NS;

    for (;;) {
        struct epoll_event ev;
        uint64_t deadline = sbk_bus_run_deadlines(d);
        int n = epoll_wait(d->epoll_fd, &ev, 1, sbk_timeout_ms(deadline < next_check ? deadline : next_check));
        struct sbk_evsrc *src;

        if (sbk_now_ns() >= next_check) {
            if (!sbk_xenstore_alive(d)) {
                sbk_error("lost the connection to xenstore: %s", strerror(errno));
                return -1;
            }
            next_check = sbk_now_ns() + SBK_XS_CHECK_NS;
        }
        if (n < 0 && errno != EINTR) {
            sbk_error("epoll_wait: %s", strerror(errno));
            return -1;
        }
        if (n <= 0)
            continue;
        src = ev.data.ptr;
        switch (src->kind) {
        case SBK_SRC_XENSTORE:
            sbk_bus_on_xenstore(d);
            break;
        case SBK_SRC_SIGNAL: {
            struct signalfd_siginfo si;

            if (read(sig_fd, &si, sizeof(si)) == sizeof(si)) {
                sbk_info("signal %u: shutting down", si.ssi_signo);
                return 0;
            }
            break;
        }
        case SBK_SRC_CARD_EVTCHN:
            sbk_bus_on_evtchn(src->obj);
            break;
        case SBK_SRC_STREAM_TIMER:
            sbk_stream_on_timer(src->obj);
            break;
        }
    }
}

static void sbk_free_daemon(struct sbk_daemon *d)
{
    while (d->open_counts) {
        struct sbk_open_count *c = d->open_counts;

        d->open_counts = c->next;
        free(c);
    }
    sbk_xen_close(&d->xen);
    if (d->epoll_fd >= 0)
        close(d->epoll_fd);
    sbk_options_free(&d->opts);
}

int main(int argc, char **argv)
{
    static struct sbk_daemon d;     /* static: large, and reachable for the whole run */
    struct sbk_evsrc xs_src = { SBK_SRC_XENSTORE, NULL }, sig_src = { SBK_SRC_SIGNAL, NULL };
    char err[512];
    int rc = sbk_options_parse(argc, argv, &d.opts, err, sizeof(err)), sig_fd;

    d.epoll_fd = -1;
    if (rc != 0) {
        if (rc < 0)
            fprintf(stderr, "sndback: error: %s (try --help)\n", err);
        sbk_options_free(&d.opts);
        return rc < 0 ? SBK_EXIT_USAGE : 0;
    }
    sbk_verbose = d.opts.verbose;
    sbk_log_time = d.opts.log_time;
    if (sbk_check_sources(&d.opts) < 0 || sbk_prepare_out_dir(&d.opts) < 0) {
        sbk_options_free(&d.opts);
        return SBK_EXIT_USAGE;
    }
    sig_fd = sbk_signal_fd();
    d.epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (sig_fd < 0 || d.epoll_fd < 0 || sbk_xen_open(&d.xen) < 0) {
        sbk_error("cannot start: %s", sig_fd < 0 || d.epoll_fd < 0 ? strerror(errno) : "see above");
        sbk_free_daemon(&d);
        return SBK_EXIT_RUNTIME;
    }
    if (d.opts.has_domid)
        d.xen.own_domid = d.opts.domid;
    if (sbk_daemon_watch_fd(&d, xs_fileno(d.xen.xs), &xs_src) < 0 || sbk_daemon_watch_fd(&d, sig_fd, &sig_src) < 0 ||
        sbk_bus_start(&d) < 0 || (d.opts.ready_file && sbk_write_ready_file(d.opts.ready_file) < 0)) {
        sbk_free_daemon(&d);
        close(sig_fd);
        return SBK_EXIT_RUNTIME;
    }
    sbk_info("domain %u, %s, clock %s", d.xen.own_domid, d.opts.discard ? "discarding playback" : d.opts.out_dir,
             d.opts.clock_none ? "none" : "monotonic");
    rc = sbk_run(&d, sig_fd);
    sbk_bus_stop(&d);
    sbk_free_daemon(&d);
    close(sig_fd);
    return rc < 0 ? SBK_EXIT_RUNTIME : 0;
}
