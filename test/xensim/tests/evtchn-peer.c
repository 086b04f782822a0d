/* evtchn-peer MODE DIR [ARGS]: one side of an event-channel test (test/xensim/test-evtchn).
 * Uses only the public libxenevtchn API (Debian's library on Xen, the look-alike in xensim).
 * The two sides run in different domains and meet through small files in DIR: a side
 * publishes a value with put_file(NAME) and the other waits (at most 10 s) for it.
 * Prints PASS:/FAIL: lines; exits 1 if any case failed. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>
#include <xenevtchn.h>
#include <xentoollog.h>

#include "peer-report.h"

#define EVP_WAIT_MS 10000   /* bound on every wait for the other side */
#define EVP_EVENT_MS 5000   /* bound on every wait for an event that must come */
#define EVP_QUIET_MS 200    /* how long "nothing is delivered" is watched */
#define EVP_FLOOD 10000     /* notifies in a row of the flood case */
#define EVP_FLOOD_DRAIN 97  /* the receiver takes and unmasks what came every this many notifies */

static const char *evp_dir;

/* ---- meeting the other side through files ---- */

static void evp_put_file(const char *name, long value)
{
    char tmp[4096], path[4096];
    FILE *f;

    snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", evp_dir, name);
    snprintf(path, sizeof(path), "%s/%s", evp_dir, name);
    f = fopen(tmp, "w");
    if (!f || fprintf(f, "%ld\n", value) < 0 || fclose(f) != 0 || rename(tmp, path) < 0)
        report_die("files", "cannot write %s: %s", path, strerror(errno));
}

static bool evp_file_exists(const char *name)
{
    char path[4096];

    snprintf(path, sizeof(path), "%s/%s", evp_dir, name);
    return access(path, F_OK) == 0;
}

/* Waits (bounded) for the other side's file and returns its number. */
static long evp_wait_file(const char *name)
{
    char path[4096];
    long value;

    snprintf(path, sizeof(path), "%s/%s", evp_dir, name);
    for (int waited = 0; waited < EVP_WAIT_MS; waited += 10) {
        FILE *f = fopen(path, "r");

        if (f) {
            int n = fscanf(f, "%ld", &value);

            fclose(f);
            if (n == 1)
                return value;
            report_die("files", "%s holds no number", path);
        }
        usleep(10000);
    }
    report_die("files", "the other side did not write %s within %d ms", name, EVP_WAIT_MS);
}

/* ---- events ---- */

static int evp_poll(xenevtchn_handle *xce, int ms)
{
    struct pollfd pfd = { .fd = xenevtchn_fd(xce), .events = POLLIN };
    int n;

    do
        n = poll(&pfd, 1, ms);
    while (n < 0 && errno == EINTR);
    return n;
}

/* Waits (bounded) for one delivery, which must be on `port`; leaves it masked. */
static bool evp_take_event(xenevtchn_handle *xce, int port, const char *name)
{
    int got;

    if (evp_poll(xce, EVP_EVENT_MS) <= 0) {
        report_fail(name, "no event on port %d within %d ms", port, EVP_EVENT_MS);
        return false;
    }
    got = xenevtchn_pending(xce);
    if (got != port) {
        report_fail(name, "xenevtchn_pending gave %d (errno %s), expected port %d", got, strerror(errno), port);
        return false;
    }
    return true;
}

static bool evp_wait_event(xenevtchn_handle *xce, int port, const char *name)
{
    if (!evp_take_event(xce, port, name))
        return false;
    if (xenevtchn_unmask(xce, port) < 0) {
        report_fail(name, "xenevtchn_unmask(%d): %s", port, strerror(errno));
        return false;
    }
    return true;
}

/* True if nothing is delivered within EVP_QUIET_MS (the fd stays unreadable). */
static bool evp_quiet(xenevtchn_handle *xce)
{
    return evp_poll(xce, EVP_QUIET_MS) == 0;
}

static xenevtchn_handle *evp_open(void)
{
    xenevtchn_handle *xce = xenevtchn_open(NULL, 0);

    if (!xce)
        report_die("open", "xenevtchn_open: %s", strerror(errno));
    return xce;
}

/* bind_interdomain, then the event Xen always raises on the new port (it may have missed some). */
static int evp_bind(xenevtchn_handle *xce, int domid, int remote_port, const char *name)
{
    int port = xenevtchn_bind_interdomain(xce, (uint32_t)domid, (evtchn_port_t)remote_port);

    if (port < 0)
        report_die(name, "bind_interdomain(dom%d, port %d): %s", domid, remote_port, strerror(errno));
    if (!evp_wait_event(xce, port, name))
        exit(1);
    return port;
}

static bool evp_round_trips(xenevtchn_handle *xce, int port, long n, const char *name)
{
    for (long i = 0; i < n; i++) {
        if (xenevtchn_notify(xce, (evtchn_port_t)port) < 0) {
            report_fail(name, "notify(%d) in round trip %ld: %s", port, i, strerror(errno));
            return false;
        }
        if (!evp_wait_event(xce, port, name))
            return false;
    }
    return true;
}

/* Answers every event on port with one notify until the file `stop` appears. */
static void evp_echo_until(xenevtchn_handle *xce, int port, const char *stop)
{
    for (int idle_ms = 0; !evp_file_exists(stop); ) {
        if (evp_poll(xce, 50) <= 0) {
            idle_ms += 50;
            if (idle_ms > EVP_WAIT_MS)
                report_die("echo", "nothing happened for %d ms", EVP_WAIT_MS);
            continue;
        }
        idle_ms = 0;
        if (xenevtchn_pending(xce) != port || xenevtchn_unmask(xce, (evtchn_port_t)port) < 0 ||
            xenevtchn_notify(xce, (evtchn_port_t)port) < 0)
            report_die("echo", "event handling on port %d failed: %s", port, strerror(errno));
    }
}

/* ---- modes ---- */

/* dom B: offers a port to dom A, answers N pings. */
static void evp_serve(long n, long remote)
{
    xenevtchn_handle *xce = evp_open();
    int port = xenevtchn_bind_unbound_port(xce, (uint32_t)remote);

    if (port < 0)
        report_die("serve", "bind_unbound_port(dom%ld): %s", remote, strerror(errno));
    evp_put_file("port", port);
    for (long i = 0; i < n; i++)
        if (!evp_wait_event(xce, port, "ping-pong (server side)") ||
            xenevtchn_notify(xce, (evtchn_port_t)port) < 0)
            exit(1);
    report_pass("ping-pong (server side): every ping arrived and was answered");
    evp_wait_file("done");
    xenevtchn_close(xce);
}

/* dom A: binds the offered port, N round trips. */
static void evp_ping(long n, long remote)
{
    xenevtchn_handle *xce = evp_open();
    int port = evp_bind(xce, (int)remote, (int)evp_wait_file("port"), "bind_interdomain: new port pending once");
    char name[64];

    report_pass("bind_interdomain: new port pending once, as Xen");
    snprintf(name, sizeof(name), "ping-pong: %ld round trips", n);
    if (evp_round_trips(xce, port, n, name))
        report_pass(name);
    report_check(evp_quiet(xce), "fd not readable when nothing is pending", "poll said readable");
    evp_put_file("done", 1);
    xenevtchn_close(xce);
}

static void evp_mask_recv(void)
{
    xenevtchn_handle *xce = evp_open();
    int port = xenevtchn_bind_unbound_port(xce, 0);

    if (port < 0)
        report_die("mask", "bind_unbound_port(dom0): %s", strerror(errno));
    evp_put_file("port", port);
    if (!evp_take_event(xce, port, "mask: first event"))
        exit(1);
    evp_put_file("got1", 1);
    evp_wait_file("sent10");
    report_check(evp_quiet(xce), "masked port: notifies before unmask are not delivered",
              "an event was delivered while the port was masked");
    if (xenevtchn_unmask(xce, (evtchn_port_t)port) < 0)
        report_die("mask", "unmask: %s", strerror(errno));
    if (evp_take_event(xce, port, "unmask: pending event delivered again"))
        report_pass("unmask: the event that came while masked is delivered again");
    report_check(evp_quiet(xce), "coalescing: 10 notifies while masked give exactly one delivery",
              "more than one delivery after unmask");
    xenevtchn_unmask(xce, (evtchn_port_t)port);
    report_check(evp_quiet(xce), "unmask with nothing pending delivers nothing", "spurious delivery");
    evp_put_file("recv-done", 1);
    xenevtchn_close(xce);
}

static void evp_mask_send(void)
{
    xenevtchn_handle *xce = evp_open();
    int port = evp_bind(xce, 1, (int)evp_wait_file("port"), "mask: bind");

    if (xenevtchn_notify(xce, (evtchn_port_t)port) < 0)
        report_die("mask", "notify: %s", strerror(errno));
    evp_wait_file("got1");
    for (int i = 0; i < 10; i++)
        if (xenevtchn_notify(xce, (evtchn_port_t)port) < 0)
            report_die("mask", "notify %d: %s", i, strerror(errno));
    evp_put_file("sent10", 1);
    evp_wait_file("recv-done");
    xenevtchn_close(xce);
}

/* Offers a port to `remote` and keeps it until "done". */
static void evp_offer(long remote)
{
    xenevtchn_handle *xce = evp_open();
    int port = xenevtchn_bind_unbound_port(xce, (uint32_t)remote);

    if (port < 0)
        report_die("offer", "bind_unbound_port(dom%ld): %s", remote, strerror(errno));
    evp_put_file("port", port);
    evp_wait_file("done");
    xenevtchn_close(xce);
}

static void evp_expect_err(int rc, int want, const char *name)
{
    if (rc == -1 && errno == want)
        report_pass(name);
    else
        report_fail(name, "got %d (errno %s), expected -1 with %s", rc, rc < 0 ? strerror(errno) : "-",
                 strerror(want));
}

#define EVP_MAX_FD 1024
static bool evp_inherited[EVP_MAX_FD]; /* open before main() did anything: not the library's */

static void evp_note_inherited_fds(void)
{
    for (int fd = 0; fd < EVP_MAX_FD; fd++)
        evp_inherited[fd] = fcntl(fd, F_GETFD) >= 0;
}

/* Every fd opened since the start (the libraries' ones) must be close-on-exec. */
static bool evp_all_cloexec(char *bad, size_t len)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    bool ok = true;

    if (!d)
        return false;
    while ((e = readdir(d))) {
        int fd = atoi(e->d_name);

        if (e->d_name[0] == '.' || fd == dirfd(d) || (fd < EVP_MAX_FD && evp_inherited[fd]))
            continue;
        if (!(fcntl(fd, F_GETFD) & FD_CLOEXEC)) {
            snprintf(bad, len, "fd %d has no FD_CLOEXEC", fd);
            ok = false;
        }
    }
    closedir(d);
    return ok;
}

/* xenevtchn_restrict as the evtchn driver: bad domids refused, then a restricted handle binds
 * only interdomain to that domain (the port `theirs` of `owner` is offered to dom0, so Xen itself
 * refuses that bind with EINVAL once the restriction lets it through). */
static void evp_restrict(long owner, int theirs)
{
    xenevtchn_handle *xce = evp_open();

    evp_expect_err(xenevtchn_restrict(xce, 0), EINVAL, "restrict to dom0: EINVAL");
    evp_expect_err(xenevtchn_restrict(xce, DOMID_FIRST_RESERVED), EINVAL, "restrict to a reserved domid: EINVAL");
    report_check(xenevtchn_restrict(xce, (domid_t)owner) == 0, "restrict to a domU", strerror(errno));
    evp_expect_err(xenevtchn_restrict(xce, (domid_t)owner), EACCES, "second restrict: EACCES");
    evp_expect_err(xenevtchn_bind_unbound_port(xce, 0), EACCES, "restricted: bind_unbound_port: EACCES");
    evp_expect_err(xenevtchn_bind_virq(xce, 0), EACCES, "restricted: bind_virq: EACCES");
    evp_expect_err(xenevtchn_bind_interdomain(xce, 0, 1), EACCES,
                   "restricted: bind_interdomain to another domain: EACCES");
    evp_expect_err(xenevtchn_bind_interdomain(xce, DOMID_SELF, 1), EACCES,
                   "restricted: bind_interdomain to DOMID_SELF: EACCES");
    evp_expect_err(xenevtchn_bind_interdomain(xce, (uint32_t)owner, (evtchn_port_t)theirs), EINVAL,
                   "restricted: bind_interdomain to that domain reaches Xen (not offered to us: EINVAL)");
    xenevtchn_close(xce);
}

/* Runs in a third domain against dom `owner`'s port offered to someone else. */
static void evp_errors(long owner)
{
    xenevtchn_handle *xce = evp_open();
    int theirs = (int)evp_wait_file("port"), mine, peer_a, peer_b;
    char bad[128] = "";

    evp_expect_err(xenevtchn_bind_interdomain(xce, (uint32_t)owner, (evtchn_port_t)theirs), EINVAL,
                   "bind_interdomain from the wrong domain: EINVAL");
    evp_expect_err(xenevtchn_bind_interdomain(xce, (uint32_t)owner, 1000), EINVAL,
                   "bind_interdomain to a free port: EINVAL");
    evp_expect_err(xenevtchn_bind_interdomain(xce, (uint32_t)owner, 1u << 20), EINVAL,
                   "bind_interdomain to an invalid port: EINVAL");
    evp_expect_err(xenevtchn_bind_interdomain(xce, 60, 1), ESRCH,
                   "bind_interdomain to a missing domain: ESRCH");
    evp_expect_err(xenevtchn_notify(xce, (evtchn_port_t)theirs), ENOTCONN,
                   "notify on a port this handle does not own: ENOTCONN");
    evp_expect_err(xenevtchn_unbind(xce, (evtchn_port_t)theirs), ENOTCONN,
                   "unbind of a port this handle does not own: ENOTCONN");
    evp_expect_err(xenevtchn_unbind(xce, 1u << 20), EINVAL, "unbind of an impossible port: EINVAL");
    report_check(xenevtchn_bind_virq(xce, 0) == -1, "bind_virq is refused", "bind_virq succeeded");
    evp_restrict(owner, theirs);
    report_check(!xenevtchn_fdopen(NULL, xenevtchn_fd(xce), XENEVTCHN_NO_CLOEXEC) && errno == EINVAL,
              "fdopen rejects XENEVTCHN_NO_CLOEXEC (EINVAL)", "fdopen accepted the flag");
    report_check(!xenevtchn_open(NULL, 1u << 5) && errno == EINVAL, "open with unknown flags: EINVAL",
              "open accepted unknown flags");
    report_check(xenevtchn_unmask(xce, 999) == 0, "unmask of an unknown port is ignored, as the driver",
              "unmask of an unknown port failed");

    mine = xenevtchn_bind_unbound_port(xce, 0);
    report_check(mine > 0 && xenevtchn_unbind(xce, (evtchn_port_t)mine) == 0, "bind_unbound_port then unbind",
              strerror(errno));
    evp_expect_err(xenevtchn_notify(xce, (evtchn_port_t)mine), ENOTCONN, "notify after unbind: ENOTCONN");
    evp_expect_err(xenevtchn_unbind(xce, (evtchn_port_t)mine), ENOTCONN, "second unbind: ENOTCONN");
    report_check(evp_quiet(xce), "fd of an idle handle is not readable", "poll said readable");

    /* A loopback channel inside one domain: the DOMID_SELF spelling included. */
    peer_a = xenevtchn_bind_unbound_port(xce, DOMID_SELF);
    peer_b = peer_a < 0 ? -1 : xenevtchn_bind_interdomain(xce, DOMID_SELF, (evtchn_port_t)peer_a);
    if (peer_b < 0) {
        report_fail("loopback channel", "bind: %s", strerror(errno));
    } else if (evp_wait_event(xce, peer_b, "loopback channel: bind event") &&
               xenevtchn_notify(xce, (evtchn_port_t)peer_a) == 0 &&
               evp_wait_event(xce, peer_b, "loopback channel a->b") &&
               xenevtchn_notify(xce, (evtchn_port_t)peer_b) == 0 &&
               evp_wait_event(xce, peer_a, "loopback channel b->a")) {
        report_pass("loopback channel within one domain");
        xenevtchn_unbind(xce, (evtchn_port_t)peer_b);
        report_check(xenevtchn_notify(xce, (evtchn_port_t)peer_a) == 0 && evp_quiet(xce),
                  "notify towards a closed peer is dropped without error", strerror(errno));
    }
    report_check(evp_all_cloexec(bad, sizeof(bad)), "every descriptor of the handle is close-on-exec", bad);
    evp_put_file("errors-done", 1);
    xenevtchn_close(xce);
}

/* The domain the port was offered to binds it; a second bind must fail. */
static void evp_take(long owner)
{
    xenevtchn_handle *xce = evp_open();
    int theirs = (int)evp_wait_file("port");

    evp_wait_file("errors-done");
    evp_bind(xce, (int)owner, theirs, "bind_interdomain from the right domain");
    report_pass("bind_interdomain from the right domain");
    evp_expect_err(xenevtchn_bind_interdomain(xce, (uint32_t)owner, (evtchn_port_t)theirs), EINVAL,
                   "bind_interdomain of an already bound port: EINVAL");
    evp_put_file("done", 1);
    xenevtchn_close(xce);
}

/* Keeps its port while the peer process is killed and replaced (a restarted backend). */
static void evp_keeper(void)
{
    xenevtchn_handle *xce = evp_open();
    int port = xenevtchn_bind_unbound_port(xce, 1);

    if (port < 0)
        report_die("restart", "bind_unbound_port(dom1): %s", strerror(errno));
    evp_put_file("port", port);
    evp_wait_file("bound1");
    if (evp_round_trips(xce, port, 3, "restart: ping-pong with the first peer"))
        report_pass("restart: ping-pong with the first peer");
    evp_put_file("kill-now", 1);
    evp_wait_file("killed");
    report_check(xenevtchn_notify(xce, (evtchn_port_t)port) == 0, "peer killed: notify is dropped without error",
              strerror(errno));
    report_check(evp_quiet(xce), "peer killed: nothing comes back", "an event arrived");
    evp_put_file("rebind", 1);
    evp_wait_file("bound2");
    if (evp_round_trips(xce, port, 3, "restart: a new process rebinds the port and ping-pong works"))
        report_pass("restart: a new process rebinds the port and ping-pong works");
    evp_put_file("done", 1);
    xenevtchn_close(xce);
}

static void evp_echo(long gen)
{
    xenevtchn_handle *xce = evp_open();
    char bound[32];
    int port = evp_bind(xce, 0, (int)evp_wait_file("port"), "restart: bind");

    snprintf(bound, sizeof(bound), "bound%ld", gen);
    evp_put_file(bound, port);
    evp_echo_until(xce, port, "done");
    xenevtchn_close(xce);
}

/* Opens with XENEVTCHN_NO_CLOEXEC, binds, and re-executes itself with the fd (a daemon's
 * self-update); the new image gets the handle back with xenevtchn_fdopen. With `release`
 * (peer: reexec-peer), the new image then checks that its close released the port. */
static void evp_reexec(const char *self, bool release)
{
    xenevtchn_handle *xce = xenevtchn_open(NULL, XENEVTCHN_NO_CLOEXEC);
    char fdbuf[16], portbuf[16];
    int port;

    if (!xce)
        report_die("re-exec", "xenevtchn_open(NO_CLOEXEC): %s", strerror(errno));
    report_check(!(fcntl(xenevtchn_fd(xce), F_GETFD) & FD_CLOEXEC), "XENEVTCHN_NO_CLOEXEC: fd survives exec",
              "fd is close-on-exec");
    port = xenevtchn_bind_unbound_port(xce, 0);
    if (port < 0)
        report_die("re-exec", "bind_unbound_port: %s", strerror(errno));
    /* Restricted to another domU (ports bound before stay usable): the restriction must survive. */
    if (xenevtchn_restrict(xce, 2) < 0)
        report_die("re-exec", "xenevtchn_restrict(2): %s", strerror(errno));
    snprintf(fdbuf, sizeof(fdbuf), "%d", xenevtchn_fd(xce));
    snprintf(portbuf, sizeof(portbuf), "%d", port);
    fflush(stdout);
    execl(self, self, "reexec-child", evp_dir, fdbuf, portbuf, release ? "release" : (char *)NULL, (char *)NULL);
    report_die("re-exec", "exec %s: %s", self, strerror(errno));
}

/* After the re-exec'd image closed its handle: the port is closed at once (it was the last user
 * of the open file), so the peer's port is unbound again and a new handle of ours binds it. */
static void evp_reexec_released(void)
{
    const char *name = "re-exec: closing the fdopen handle releases its port at once (a new handle binds the peer's)";
    xenevtchn_handle *fresh = evp_open();
    int got = xenevtchn_bind_interdomain(fresh, 0, (evtchn_port_t)evp_wait_file("peer-port"));

    if (got >= 0)
        report_pass(name);
    else
        report_fail(name, "bind_interdomain to the peer's port: %s (still bound: not released)", strerror(errno));
    evp_put_file("released", 1);
    xenevtchn_close(fresh);
}

static void evp_reexec_child(int fd, int port, bool release)
{
    xenevtchn_handle *xce = xenevtchn_fdopen(NULL, fd, 0);

    if (!xce)
        report_die("re-exec", "xenevtchn_fdopen(%d): %s", fd, strerror(errno));
    report_pass("xenevtchn_fdopen takes the handle back after exec");
    evp_expect_err(xenevtchn_bind_unbound_port(xce, 0), EACCES, "re-exec: the handle is still restricted (EACCES)");
    evp_put_file("port", port);
    if (evp_wait_event(xce, port, "re-exec: event after fdopen") && xenevtchn_notify(xce, (evtchn_port_t)port) == 0)
        report_pass("re-exec: the port bound before exec works after fdopen");
    evp_wait_file("done");
    xenevtchn_close(xce);
    if (release)
        evp_reexec_released();
}

/* dom0 side of `reexec DIR release`: one round trip, then keeps its port (peer-port) until the
 * re-exec'd image has closed its handle and bound that port from a new one. */
static void evp_reexec_peer(void)
{
    xenevtchn_handle *xce = evp_open();
    int port = evp_bind(xce, 1, (int)evp_wait_file("port"), "re-exec peer: bind");

    if (!evp_round_trips(xce, port, 1, "re-exec peer: round trip"))
        exit(1);
    evp_put_file("peer-port", port);
    evp_put_file("done", 1);
    evp_wait_file("released");
    xenevtchn_close(xce);
}

/* ---- one handle, two processes: a fork()ed child takes it over with fdopen (issue 14) ----
 * dom1's parent binds ports A, B, C to the peer in dom0 and forks; the child closes every
 * inherited descriptor but the handle's fd (as issue 14's keeper) and calls
 * xenevtchn_fdopen(NULL, fd, 0) on it. On Xen both then use one open file of /dev/xen/evtchn:
 * either may notify, unmask, read and unbind; the ports go when the last process lets go.
 * HOW says how the parent goes: "close" (xenevtchn_close, then exit), "kill" (the script's
 * kill -9) or "early" (kill -9 between the fork and the child's fdopen: only the child's
 * inherited fd keeps the handle) or "abandon" (as early, but the child kills itself before any
 * fdopen: nobody holds the handle any more); in the kill modes the child then kills itself (-9)
 * too, in "close" it closes its handle. The script then waits for the child to exit and runs
 * share-check, another dom1 process, which must find the ports released. */

enum evp_share_how { EVP_SHARE_CLOSE, EVP_SHARE_KILL, EVP_SHARE_EARLY, EVP_SHARE_ABANDON };

static enum evp_share_how evp_how;
static const char *evp_how_text;

static void evp_share_how(const char *how)
{
    if (!strcmp(how, "close"))
        evp_how = EVP_SHARE_CLOSE, evp_how_text = "parent closes";
    else if (!strcmp(how, "kill"))
        evp_how = EVP_SHARE_KILL, evp_how_text = "parent killed -9";
    else if (!strcmp(how, "early"))
        evp_how = EVP_SHARE_EARLY, evp_how_text = "parent killed -9 before fdopen";
    else if (!strcmp(how, "abandon"))
        evp_how = EVP_SHARE_ABANDON, evp_how_text = "parent killed -9, child too before fdopen";
    else
        report_die("fork-share", "unknown HOW '%s' (close, kill, early or abandon)", how);
}

/* The case name "fork-share (HOW): what"; a few buffers, so that two may be used at once. */
static const char *evp_sn(const char *what)
{
    static char buf[4][256];
    static unsigned next;
    char *b = buf[next++ % 4];

    snprintf(b, sizeof(buf[0]), "fork-share (%s): %s", evp_how_text, what);
    return b;
}

#define EVP_SN_BOTH "the parent's notify (port A) and the child's (port B) both reach the peer"
#define EVP_SN_ONCE "a delivery is read once (by the child); the parent's unmask lets the next one through to the parent"
#define EVP_SN_UNBIND_P "the child's unbind of port C unbinds it for the parent (notify, unbind: ENOTCONN)"
#define EVP_SN_UNBIND_K "after the child's unbind of C the peer's port is free, the handle's other ports are not"
#define EVP_SN_GONE_OUT "with the parent gone, the child's notifies on A and B reach the peer"
#define EVP_SN_GONE_IN "with the parent gone, deliveries on A and B reach the child"
#define EVP_SN_EARLY "fdopen in the child still takes the handle (its inherited fd holds it)"
#define EVP_SN_RELEASED "once the child is gone too, the ports are released (a new process binds the peer's ports of A, B and C)"
#define EVP_SN_ABANDONED "the ports are released (a new process binds the peer's ports of A, B and C)"

/* Waits (bounded) until each of the n ports has been delivered exactly once, in any order, and
 * unmasks each. Returns NULL, or why not. */
static const char *evp_take_all(xenevtchn_handle *xce, const int *ports, int n)
{
    static char why[160];
    bool seen[4] = { false };

    for (int got = 0; got < n; got++) {
        int port, i;

        if (evp_poll(xce, EVP_EVENT_MS) <= 0) {
            snprintf(why, sizeof(why), "%d of %d events came within %d ms", got, n, EVP_EVENT_MS);
            return why;
        }
        port = xenevtchn_pending(xce);
        for (i = 0; i < n && (ports[i] != port || seen[i]); i++)
            ;
        if (i == n) {
            snprintf(why, sizeof(why), "a delivery on port %d (errno %s) that was not awaited", port, strerror(errno));
            return why;
        }
        seen[i] = true;
        if (xenevtchn_unmask(xce, (evtchn_port_t)port) < 0) {
            snprintf(why, sizeof(why), "unmask(%d): %s", port, strerror(errno));
            return why;
        }
    }
    return NULL;
}

static void evp_report_take_all(xenevtchn_handle *xce, const int *ports, int n, const char *name)
{
    const char *why = evp_take_all(xce, ports, n);

    if (why)
        report_fail(name, "%s", why);
    else
        report_pass(name);
}

static void evp_notify_or_die(xenevtchn_handle *xce, int port, const char *name, const char *who)
{
    if (xenevtchn_notify(xce, (evtchn_port_t)port) < 0)
        report_die(name, "%s notify of port %d: %s", who, port, strerror(errno));
}

/* As the keeper: stdio and the handle's fd stay, every other inherited descriptor goes (the
 * parent's broker connections with them: they are the parent's). */
static void evp_close_all_but(int keep)
{
    for (int fd = 3; fd < EVP_MAX_FD; fd++)
        if (fd != keep)
            close(fd);
}

/* The child, while the parent still lives: its parts of the first four cases. */
static void evp_share_child_with_parent(xenevtchn_handle *kh, const int *port)
{
    xenevtchn_handle *fresh;
    int on_c, on_a, err_a;

    evp_notify_or_die(kh, port[1], evp_sn(EVP_SN_BOTH), "the child's");
    evp_wait_file("peer-got-ab");
    if (!evp_take_event(kh, port[0], evp_sn(EVP_SN_ONCE))) /* left masked: the parent unmasks */
        exit(1);
    evp_put_file("k-took-a", 1);
    evp_wait_file("peer-got-c");
    if (xenevtchn_unbind(kh, (evtchn_port_t)port[2]) < 0)
        report_die(evp_sn(EVP_SN_UNBIND_K), "the child's unbind of port C: %s", strerror(errno));
    /* Another handle of the domain: the peer's end of C is unbound again, A's is still bound. */
    fresh = evp_open();
    on_c = xenevtchn_bind_interdomain(fresh, 0, (evtchn_port_t)evp_wait_file("peer-port-c"));
    on_a = xenevtchn_bind_interdomain(fresh, 0, (evtchn_port_t)evp_wait_file("peer-port-a"));
    err_a = errno;
    if (on_c >= 0 && on_a == -1 && err_a == EINVAL)
        report_pass(evp_sn(EVP_SN_UNBIND_K));
    else
        report_fail(evp_sn(EVP_SN_UNBIND_K), "binding the peer's port of C gave %d, of A %d (%s; expected EINVAL)",
                    on_c, on_a, on_a < 0 ? strerror(err_a) : "bound");
    xenevtchn_close(fresh);
    evp_put_file("k-unbound-c", 1);
}

static void evp_share_child(int fd, const int *port) __attribute__((noreturn));
static void evp_share_child(int fd, const int *port)
{
    xenevtchn_handle *kh;
    const char *why;

    evp_close_all_but(fd);
    evp_put_file("child-pid", getpid());
    if (evp_how == EVP_SHARE_EARLY || evp_how == EVP_SHARE_ABANDON)
        evp_wait_file("parent-gone");
    if (evp_how == EVP_SHARE_ABANDON) /* the last holder of the open file dies with it unused */
        kill(getpid(), SIGKILL);
    kh = xenevtchn_fdopen(NULL, fd, 0);
    if (!kh)
        report_die(evp_sn(evp_how == EVP_SHARE_EARLY ? EVP_SN_EARLY : "fdopen"), "xenevtchn_fdopen(%d): %s", fd,
                   strerror(errno));
    if (evp_how == EVP_SHARE_EARLY)
        report_pass(evp_sn(EVP_SN_EARLY));
    evp_put_file("attached", 1);
    if (evp_how != EVP_SHARE_EARLY) {
        evp_share_child_with_parent(kh, port);
        evp_wait_file("parent-gone");
    }
    evp_notify_or_die(kh, port[0], evp_sn(EVP_SN_GONE_OUT), "the child's");
    evp_notify_or_die(kh, port[1], evp_sn(EVP_SN_GONE_OUT), "the child's");
    evp_put_file("k-notified-ab", 1);
    evp_wait_file("peer-sent-ab");
    why = evp_take_all(kh, port, 2);
    if (why)
        report_fail(evp_sn(EVP_SN_GONE_IN), "%s", why);
    else
        report_pass(evp_sn(EVP_SN_GONE_IN));
    fflush(stdout);
    if (evp_how == EVP_SHARE_CLOSE) {
        xenevtchn_close(kh);
        exit(report_failed);
    }
    if (report_failed) /* a failure shows in the status; the death path below would hide it */
        exit(1);
    kill(getpid(), SIGKILL); /* dies with the handle open, as the parent did */
    exit(1);
}

/* The parent after the child's fdopen: its parts of the first four cases, then it goes. */
static void evp_share_parent(xenevtchn_handle *xce, const int *port)
{
    int rn, en, ru, eu;
    bool quiet;

    evp_wait_file("attached");
    evp_notify_or_die(xce, port[0], evp_sn(EVP_SN_BOTH), "the parent's");
    evp_wait_file("k-took-a");
    quiet = evp_quiet(xce); /* the one delivery is gone from the shared queue */
    if (xenevtchn_unmask(xce, (evtchn_port_t)port[0]) < 0)
        report_die(evp_sn(EVP_SN_ONCE), "the parent's unmask of port A: %s", strerror(errno));
    evp_put_file("p-unmasked", 1);
    if (evp_take_event(xce, port[0], evp_sn(EVP_SN_ONCE)))
        report_check(quiet, evp_sn(EVP_SN_ONCE), "the delivery the child read was queued again for the parent");
    xenevtchn_unmask(xce, (evtchn_port_t)port[0]);
    evp_notify_or_die(xce, port[2], evp_sn(EVP_SN_UNBIND_P), "before the child's unbind, the parent's");
    evp_wait_file("k-unbound-c");
    rn = xenevtchn_notify(xce, (evtchn_port_t)port[2]);
    en = errno;
    ru = xenevtchn_unbind(xce, (evtchn_port_t)port[2]);
    eu = errno;
    if (rn == -1 && en == ENOTCONN && ru == -1 && eu == ENOTCONN)
        report_pass(evp_sn(EVP_SN_UNBIND_P));
    else
        report_fail(evp_sn(EVP_SN_UNBIND_P), "notify gave %d (%s), unbind %d (%s)", rn, rn ? strerror(en) : "-", ru,
                    ru ? strerror(eu) : "-");
}

/* dom1, HOW: binds A, B, C to dom0 (the peer binds them), forks the child, plays its part. */
static void evp_share(const char *how)
{
    static const char *const names[3] = { "port-a", "port-b", "port-c" };
    xenevtchn_handle *xce = evp_open();
    int port[3];
    pid_t child;

    evp_share_how(how);
    for (int i = 0; i < 3; i++) {
        port[i] = xenevtchn_bind_unbound_port(xce, 0);
        if (port[i] < 0)
            report_die("fork-share", "bind_unbound_port(dom0): %s", strerror(errno));
        evp_put_file(names[i], port[i]);
    }
    evp_wait_file("peer-bound");
    fflush(stdout);
    child = fork();
    if (child < 0)
        report_die("fork-share", "fork: %s", strerror(errno));
    if (child == 0)
        evp_share_child(xenevtchn_fd(xce), port);
    if (evp_how == EVP_SHARE_CLOSE || evp_how == EVP_SHARE_KILL)
        evp_share_parent(xce, port);
    if (evp_how == EVP_SHARE_CLOSE) {
        xenevtchn_close(xce);
        evp_put_file("parent-gone", 1);
        return;
    }
    evp_put_file("kill-parent", getpid());
    evp_wait_file("never"); /* the script's kill -9 comes first */
    report_die("fork-share", "the script did not kill the parent");
}

/* dom0: binds A, B and C and plays the other end of every case. */
static void evp_share_peer(const char *how)
{
    xenevtchn_handle *xce = evp_open();
    int peer[3];
    char file[32];

    evp_share_how(how);
    for (int i = 0; i < 3; i++) {
        snprintf(file, sizeof(file), "port-%c", 'a' + i);
        peer[i] = evp_bind(xce, 1, (int)evp_wait_file(file), "fork-share: peer bind");
        snprintf(file, sizeof(file), "peer-port-%c", 'a' + i);
        evp_put_file(file, peer[i]);
    }
    evp_put_file("peer-bound", 1);
    if (evp_how == EVP_SHARE_ABANDON) {
        evp_wait_file("check-done");
        xenevtchn_close(xce);
        return;
    }
    if (evp_how != EVP_SHARE_EARLY) {
        evp_report_take_all(xce, peer, 2, evp_sn(EVP_SN_BOTH));
        evp_put_file("peer-got-ab", 1);
        evp_notify_or_die(xce, peer[0], evp_sn(EVP_SN_ONCE), "the peer's");
        evp_wait_file("p-unmasked");
        evp_notify_or_die(xce, peer[0], evp_sn(EVP_SN_ONCE), "the peer's");
        if (!evp_wait_event(xce, peer[2], evp_sn(EVP_SN_UNBIND_P))) /* the parent's notify of C */
            exit(1);
        evp_put_file("peer-got-c", 1);
    }
    evp_wait_file("k-notified-ab");
    evp_report_take_all(xce, peer, 2, evp_sn(EVP_SN_GONE_OUT));
    evp_notify_or_die(xce, peer[0], evp_sn(EVP_SN_GONE_IN), "the peer's");
    evp_notify_or_die(xce, peer[1], evp_sn(EVP_SN_GONE_IN), "the peer's");
    evp_put_file("peer-sent-ab", 1);
    evp_wait_file("check-done");
    xenevtchn_close(xce);
}

/* dom1, once the child is gone too: the peer's ports of A, B and C are all unbound again (C's
 * since the child's unbind in "close" and "kill"). */
static void evp_share_check(const char *how)
{
    xenevtchn_handle *fresh = evp_open();
    char file[32], why[160] = "";
    const char *name;

    evp_share_how(how);
    for (int i = 0; i < 3; i++) {
        int got;

        snprintf(file, sizeof(file), "peer-port-%c", 'a' + i);
        got = xenevtchn_bind_interdomain(fresh, 0, (evtchn_port_t)evp_wait_file(file));
        if (got < 0 && !why[0])
            snprintf(why, sizeof(why), "binding the peer's port of %c: %s (still bound)", 'A' + i, strerror(errno));
    }
    name = evp_sn(evp_how == EVP_SHARE_ABANDON ? EVP_SN_ABANDONED : EVP_SN_RELEASED);
    if (why[0])
        report_fail(name, "%s", why);
    else
        report_pass(name);
    evp_put_file("check-done", 1);
    xenevtchn_close(fresh);
}

/* ---- one-way notify and unmask (in xensim neither waits for the broker; Xen's semantics) ---- */

/* Two handles of this process joined by a loopback channel: a holds *pa, b holds *pb (the
 * event Xen raises on b's new port is taken and unmasked). */
static void evp_loopback(xenevtchn_handle *a, xenevtchn_handle *b, int *pa, int *pb, const char *name)
{
    *pa = xenevtchn_bind_unbound_port(a, DOMID_SELF);
    *pb = *pa < 0 ? -1 : xenevtchn_bind_interdomain(b, DOMID_SELF, (evtchn_port_t)*pa);
    if (*pb < 0)
        report_die(name, "loopback bind: %s", strerror(errno));
    if (!evp_wait_event(b, *pb, name))
        exit(1);
}

/* A synchronous call on xce that changes nothing: when it returns, everything sent on the
 * handle before it has been run (xensim: same connection, in order; Xen: trivially). Also
 * shows the handle still works. */
static bool evp_barrier(xenevtchn_handle *xce)
{
    int spare = xenevtchn_bind_unbound_port(xce, DOMID_SELF);

    return spare > 0 && xenevtchn_unbind(xce, (evtchn_port_t)spare) == 0;
}

/* notify immediately followed by unbind: the notify was made while the port was bound, so the
 * peer gets it (on Xen the hypercall is done before unbind starts). */
static void evp_notify_unbind(void)
{
    const char *name = "notify then unbind at once: the peer still gets the event";
    xenevtchn_handle *a = evp_open(), *b = evp_open();
    int pa, pb;

    evp_loopback(a, b, &pa, &pb, name);
    if (xenevtchn_notify(b, (evtchn_port_t)pb) < 0 || xenevtchn_unbind(b, (evtchn_port_t)pb) < 0)
        report_fail(name, "notify/unbind(%d): %s", pb, strerror(errno));
    else if (evp_take_event(a, pa, name))
        report_pass(name);
    report_check(evp_barrier(b), "notify then unbind: the handle keeps working", strerror(errno));
    xenevtchn_close(a);
    xenevtchn_close(b);
}

/* unmask by a handle that does not own the port: ignored (evtchn_write skips ports it does not
 * find), so the owner's masked port keeps its pending event until the owner unmasks. */
static void evp_foreign_unmask(void)
{
    const char *name = "unmask of another handle's port";
    xenevtchn_handle *a = evp_open(), *b = evp_open();
    int pa, pb;

    evp_loopback(a, b, &pa, &pb, name);
    if (xenevtchn_notify(b, (evtchn_port_t)pb) < 0 || !evp_take_event(a, pa, name) ||
        xenevtchn_notify(b, (evtchn_port_t)pb) < 0) /* a's port is masked now: this one waits */
        report_die(name, "setting up a masked port with a pending event: %s", strerror(errno));
    report_check(xenevtchn_unmask(b, (evtchn_port_t)pa) == 0, "unmask of another handle's port: no error",
                 strerror(errno));
    report_check(evp_barrier(b) && evp_quiet(a), "unmask of another handle's port: it stays masked, nothing delivered",
                 "an event was delivered (or the handle stopped working)");
    if (xenevtchn_unmask(a, (evtchn_port_t)pa) == 0 && evp_take_event(a, pa, name))
        report_pass("unmask of another handle's port: the owner's unmask delivers the pending event");
    xenevtchn_close(a);
    xenevtchn_close(b);
}

/* Takes and unmasks whatever a has been delivered; returns how many. */
static long evp_drain(xenevtchn_handle *a, int pa, int first_wait_ms, const char *name)
{
    long got = 0;

    while (evp_poll(a, got ? 0 : first_wait_ms) > 0) {
        if (!evp_wait_event(a, pa, name))
            exit(1);
        got++;
    }
    return got;
}

/* EVP_FLOOD notifies in a row while the receiver takes and unmasks what came now and then.
 * Xen merges notifies only while the port is pending or masked: the tail of the flood must
 * still reach the receiver after its last unmask, and nothing beyond the notifies arrives.
 * Writes flood-pid and flood-port for the script, which counts the broker's notify lines. */
static void evp_flood(void)
{
    const char *name = "10000 notifies in a row";
    xenevtchn_handle *a = evp_open(), *b = evp_open();
    long got = 0, tail;
    int pa, pb;

    evp_loopback(a, b, &pa, &pb, name);
    for (long i = 1; i <= EVP_FLOOD; i++) {
        if (xenevtchn_notify(b, (evtchn_port_t)pb) < 0)
            report_die(name, "notify %ld: %s", i, strerror(errno));
        if (i % EVP_FLOOD_DRAIN == 0)
            got += evp_drain(a, pa, 0, name);
    }
    if (!evp_barrier(b))
        report_die(name, "the sending handle stopped working: %s", strerror(errno));
    /* Every notify has been run: the last ones came after the last unmask (or while an event
     * was still unread), so at least one delivery is due. */
    tail = evp_drain(a, pa, EVP_EVENT_MS, name);
    got += tail;
    if (tail < 1 || got > EVP_FLOOD)
        report_fail(name, "%ld deliveries, %ld after the last notify (expected 1..%d, at least 1)", got, tail,
                    EVP_FLOOD);
    else
        report_pass(name);
    printf("# flood: %ld deliveries, %ld after the last notify\n", got, tail);
    evp_put_file("flood-port", pb);
    evp_put_file("flood-pid", getpid());
    xenevtchn_close(a);
    xenevtchn_close(b);
}

/* The first one-way cases in a row (one domain, loopback channels); the flood runs in a
 * process of its own, so that the broker's log lines of its pid are the flood's only. */
static void evp_oneway(void)
{
    evp_notify_unbind();
    evp_foreign_unmask();
}

/* While the script holds xensimd stopped (SIGSTOP): what the evtchn driver answers without
 * Xen must be answered by the library, and notify and unmask must not wait (a synchronous
 * call would time out after 10 s). xensim only. */
static void evp_broker_stopped(void)
{
    const char *name = "broker stopped";
    xenevtchn_handle *a = evp_open(), *b = evp_open();
    int pa, pb;

    evp_loopback(a, b, &pa, &pb, name);
    evp_put_file("ready", getpid());
    evp_wait_file("stopped");
    evp_expect_err(xenevtchn_notify(b, 777), ENOTCONN, "broker stopped: notify of a port never bound: ENOTCONN");
    evp_expect_err(xenevtchn_notify(b, (evtchn_port_t)pa), ENOTCONN,
                   "broker stopped: notify of another handle's port: ENOTCONN");
    report_check(xenevtchn_notify(b, (evtchn_port_t)pb) == 0, "broker stopped: notify of a bound port returns",
                 strerror(errno));
    report_check(xenevtchn_unmask(b, (evtchn_port_t)pa) == 0 && xenevtchn_unmask(b, 777) == 0 &&
                 xenevtchn_unmask(b, (evtchn_port_t)pb) == 0,
                 "broker stopped: unmask of own, foreign and unknown ports returns without error", strerror(errno));
    evp_put_file("calls-done", 1);
    evp_wait_file("resumed");
    if (evp_take_event(a, pa, "broker stopped: the notify is delivered once the broker runs"))
        report_pass("broker stopped: the notify is delivered once the broker runs");
    xenevtchn_close(a);
    xenevtchn_close(b);
}

/* A logger that keeps the last message, to check what the library reports. */
struct evp_logger {
    struct xentoollog_logger base;
    char last[512];
};

static void evp_log_vmessage(struct xentoollog_logger *l, xentoollog_level level, int errnoval,
                             const char *context, const char *fmt, va_list ap)
{
    struct evp_logger *me = (struct evp_logger *)l;

    (void)level;
    (void)errnoval;
    (void)context;
    vsnprintf(me->last, sizeof(me->last), fmt, ap);
}

/* Outside any simulated domain (XENSIM_BROKER unset) opening must fail cleanly. */
static void evp_no_broker(void)
{
    struct evp_logger log = { .base = { .vmessage = evp_log_vmessage } };
    xenevtchn_handle *xce = xenevtchn_open(&log.base, 0);

    report_check(!xce && errno == ENOENT, "open without XENSIM_BROKER: ENOENT", "open did not fail with ENOENT");
    report_check(strstr(log.last, "XENSIM_BROKER") != NULL, "open without XENSIM_BROKER: message through the logger",
              log.last[0] ? log.last : "nothing logged");
    xenevtchn_close(xce);
}

static void evp_usage(void)
{
    fprintf(stderr, "usage: evtchn-peer serve DIR N REMOTE | ping DIR N REMOTE | mask-recv DIR | mask-send DIR |\n"
                    "       offer DIR REMOTE | errors DIR OWNER | take DIR OWNER | keeper DIR | echo DIR GEN |\n"
                    "       reexec DIR [release] | reexec-peer DIR | oneway DIR | flood DIR | broker-stopped DIR |\n"
                    "       share DIR HOW | share-peer DIR HOW | share-check DIR HOW | no-broker (HOW: close kill early abandon)\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "";
    long a = argc > 3 ? strtol(argv[3], NULL, 10) : 0, b = argc > 4 ? strtol(argv[4], NULL, 10) : 0;

    report_area = "evtchn";
    setvbuf(stdout, NULL, _IOLBF, 0);
    evp_note_inherited_fds();
    if (!strcmp(mode, "no-broker")) {
        evp_no_broker();
        return report_failed;
    }
    if (argc < 3)
        evp_usage();
    evp_dir = argv[2];
    if (!strcmp(mode, "serve") && argc == 5)
        evp_serve(a, b);
    else if (!strcmp(mode, "ping") && argc == 5)
        evp_ping(a, b);
    else if (!strcmp(mode, "mask-recv"))
        evp_mask_recv();
    else if (!strcmp(mode, "mask-send"))
        evp_mask_send();
    else if (!strcmp(mode, "offer") && argc == 4)
        evp_offer(a);
    else if (!strcmp(mode, "errors") && argc == 4)
        evp_errors(a);
    else if (!strcmp(mode, "take") && argc == 4)
        evp_take(a);
    else if (!strcmp(mode, "keeper"))
        evp_keeper();
    else if (!strcmp(mode, "echo") && argc == 4)
        evp_echo(a);
    else if (!strcmp(mode, "oneway"))
        evp_oneway();
    else if (!strcmp(mode, "flood"))
        evp_flood();
    else if (!strcmp(mode, "broker-stopped"))
        evp_broker_stopped();
    else if (!strcmp(mode, "reexec") && (argc == 3 || (argc == 4 && !strcmp(argv[3], "release"))))
        evp_reexec("/proc/self/exe", argc == 4);
    else if (!strcmp(mode, "reexec-child") && (argc == 5 || (argc == 6 && !strcmp(argv[5], "release"))))
        evp_reexec_child((int)a, (int)b, argc == 6);
    else if (!strcmp(mode, "reexec-peer"))
        evp_reexec_peer();
    else if (!strcmp(mode, "share") && argc == 4)
        evp_share(argv[3]);
    else if (!strcmp(mode, "share-peer") && argc == 4)
        evp_share_peer(argv[3]);
    else if (!strcmp(mode, "share-check") && argc == 4)
        evp_share_check(argv[3]);
    else
        evp_usage();
    return report_failed;
}
