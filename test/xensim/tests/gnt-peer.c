/* gnt-peer MODE DIR [ARGS]: one side of a grant-table test (test/xensim/test-gnttab).
 * Uses only the public libxengnttab/libxenevtchn API (Debian's libraries on Xen, the
 * look-alikes in xensim). Sides run in different domains and meet through small files in
 * DIR (put_file / wait_file, every wait bounded). Prints PASS:/FAIL: lines; exits 1 if any
 * case failed. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xenevtchn.h>
#include <xengnttab.h>
#include <xentoollog.h>

#include "peer-report.h"

#define GP_PAGE 4096u
#define GP_WAIT_MS 10000   /* bound on every wait for the other side */
#define GP_EVENT_MS 5000   /* bound on every wait for an event that must come */
#define GP_MAX_REFS 1100
#define GP_MAX_FD 1024

static const char *gp_dir;
static bool gp_inherited[GP_MAX_FD]; /* open before main() did anything: not the libraries' */

static void gp_expect_null(const void *p, int want, const char *name)
{
    if (!p && errno == want)
        report_pass(name);
    else
        report_fail(name, "got %p (errno %s), expected NULL with %s", p, p ? "-" : strerror(errno), strerror(want));
}

/* On xensim (XENSIM_BROKER set) grants are revoked at once; on Xen, Linux keeps a grant usable
 * until every mapping of its page is gone, so a new map still succeeds. A frontend must rely on
 * neither: the test expects each platform's answer. The map, if made, is undone. */
static void gp_expect_revoked(xengnttab_handle *tab, uint32_t domid, uint32_t ref, const char *what)
{
    char name[128];
    void *p = xengnttab_map_grant_ref(tab, domid, ref, PROT_READ);

    if (getenv("XENSIM_BROKER")) {
        snprintf(name, sizeof(name), "%s: new maps are refused (xensim)", what);
        gp_expect_null(p, EINVAL, name);
    } else {
        snprintf(name, sizeof(name), "%s: new maps still succeed while mapped (Xen)", what);
        report_check(p != NULL, name, strerror(errno));
    }
    if (p)
        xengnttab_unmap(tab, p, 1);
}

static void gp_expect_err(int rc, int want, const char *name)
{
    if (rc == -1 && errno == want)
        report_pass(name);
    else
        report_fail(name, "got %d (errno %s), expected -1 with %s", rc, rc < 0 ? strerror(errno) : "-", strerror(want));
}

/* ---- meeting the other side through files ---- */

static void gp_put_numbers(const char *name, const uint32_t *v, int n)
{
    char tmp[4096], path[4096];
    FILE *f;

    snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", gp_dir, name);
    snprintf(path, sizeof(path), "%s/%s", gp_dir, name);
    if (!(f = fopen(tmp, "w")))
        report_die("files", "cannot write %s: %s", tmp, strerror(errno));
    for (int i = 0; i < n; i++)
        fprintf(f, "%u\n", v[i]);
    if (fclose(f) != 0 || rename(tmp, path) < 0)
        report_die("files", "cannot write %s: %s", path, strerror(errno));
}

static void gp_put_file(const char *name, uint32_t value)
{
    gp_put_numbers(name, &value, 1);
}

/* Waits (bounded) for the other side's file; returns how many numbers it holds (>= 1). */
static int gp_wait_numbers(const char *name, uint32_t *v, int max)
{
    char path[4096];

    snprintf(path, sizeof(path), "%s/%s", gp_dir, name);
    for (int waited = 0; waited < GP_WAIT_MS; waited += 10) {
        FILE *f = fopen(path, "r");
        int n = 0;

        if (f) {
            while (n < max && fscanf(f, "%u", &v[n]) == 1)
                n++;
            fclose(f);
            if (n < 1)
                report_die("files", "%s holds no number", path);
            return n;
        }
        usleep(10000);
    }
    report_die("files", "the other side did not write %s within %d ms", name, GP_WAIT_MS);
}

static uint32_t gp_wait_file(const char *name)
{
    uint32_t v;

    gp_wait_numbers(name, &v, 1);
    return v;
}

/* ---- page contents ---- */

static uint8_t gp_pattern_a(uint32_t page, uint32_t i) { return (uint8_t)(page * 7 + i * 13 + 1); }
static uint8_t gp_pattern_b(uint32_t page, uint32_t i) { return (uint8_t)(page * 11 + i * 3 + 5); }

/* Pattern a in the first half of every page, b in the second half. */
static void gp_fill(uint8_t *p, uint32_t pages, bool second_half)
{
    for (uint32_t pg = 0; pg < pages; pg++)
        for (uint32_t i = 0; i < GP_PAGE / 2; i++) {
            uint32_t at = second_half ? GP_PAGE / 2 + i : i;

            p[pg * GP_PAGE + at] = second_half ? gp_pattern_b(pg, i) : gp_pattern_a(pg, i);
        }
}

/* Checks the pattern of one half of every page; describes the first mismatch in why. */
static bool gp_verify(const uint8_t *p, uint32_t pages, bool second_half, char *why, size_t len)
{
    for (uint32_t pg = 0; pg < pages; pg++)
        for (uint32_t i = 0; i < GP_PAGE / 2; i++) {
            uint32_t at = second_half ? GP_PAGE / 2 + i : i;
            uint8_t want = second_half ? gp_pattern_b(pg, i) : gp_pattern_a(pg, i);

            if (p[pg * GP_PAGE + at] != want) {
                snprintf(why, len, "page %u byte %u is %#x, expected %#x", pg, at, p[pg * GP_PAGE + at], want);
                return false;
            }
        }
    return true;
}

static bool gp_zeroed(const uint8_t *p, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (p[i])
            return false;
    return true;
}

/* ---- handles and events ---- */

/* A logger that keeps the last message: the libraries log their errors, and the expected
 * failures here would otherwise fill the output. */
struct gp_logger {
    struct xentoollog_logger base;
    char last[512];
    unsigned count;
};

static void gp_log_vmessage(struct xentoollog_logger *l, xentoollog_level level, int errnoval, const char *context,
                            const char *fmt, va_list ap)
{
    struct gp_logger *me = (struct gp_logger *)l;

    (void)level, (void)errnoval, (void)context;
    vsnprintf(me->last, sizeof(me->last), fmt, ap);
    me->count++;
}

static struct gp_logger gp_log = { .base = { .vmessage = gp_log_vmessage } };

static xengnttab_handle *gp_open_tab(void)
{
    xengnttab_handle *h = xengnttab_open(&gp_log.base, 0);

    if (!h)
        report_die("open", "xengnttab_open: %s", strerror(errno));
    return h;
}

static xengntshr_handle *gp_open_shr(void)
{
    xengntshr_handle *h = xengntshr_open(&gp_log.base, 0);

    if (!h)
        report_die("open", "xengntshr_open: %s", strerror(errno));
    return h;
}

static xenevtchn_handle *gp_open_ev(void)
{
    xenevtchn_handle *h = xenevtchn_open(NULL, 0);

    if (!h)
        report_die("open", "xenevtchn_open: %s", strerror(errno));
    return h;
}

/* Waits (bounded) for one delivery on port, then unmasks it. */
static bool gp_wait_event(xenevtchn_handle *xce, int port, const char *name)
{
    struct pollfd pfd = { .fd = xenevtchn_fd(xce), .events = POLLIN };
    int n, got;

    do
        n = poll(&pfd, 1, GP_EVENT_MS);
    while (n < 0 && errno == EINTR);
    if (n <= 0) {
        report_fail(name, "no event on port %d within %d ms", port, GP_EVENT_MS);
        return false;
    }
    got = xenevtchn_pending(xce);
    if (got != port || xenevtchn_unmask(xce, (evtchn_port_t)port) < 0) {
        report_fail(name, "xenevtchn_pending gave %d, expected %d (%s)", got, port, strerror(errno));
        return false;
    }
    return true;
}

/* Offers a port to dom `to` and publishes it as file `name`. */
static int gp_offer_port(xenevtchn_handle *xce, uint32_t to, const char *name)
{
    int port = xenevtchn_bind_unbound_port(xce, to);

    if (port < 0)
        report_die("evtchn", "bind_unbound_port(dom%u): %s", to, strerror(errno));
    gp_put_file(name, (uint32_t)port);
    return port;
}

/* Binds the port published as `name` by dom `from` and takes Xen's initial event. */
static int gp_bind_port(xenevtchn_handle *xce, uint32_t from, const char *name)
{
    int port = xenevtchn_bind_interdomain(xce, from, gp_wait_file(name));

    if (port < 0)
        report_die("evtchn", "bind_interdomain(dom%u): %s", from, strerror(errno));
    if (!gp_wait_event(xce, port, "evtchn: bind event"))
        exit(1);
    return port;
}

/* Every fd opened since the start (the libraries' ones) must be close-on-exec. */
static bool gp_all_cloexec(char *bad, size_t len)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    bool ok = true;

    if (!d)
        return false;
    while ((e = readdir(d))) {
        int fd = atoi(e->d_name);

        if (e->d_name[0] == '.' || fd == dirfd(d) || (fd < GP_MAX_FD && gp_inherited[fd]))
            continue;
        if (!(fcntl(fd, F_GETFD) & FD_CLOEXEC)) {
            snprintf(bad, len, "fd %d has no FD_CLOEXEC", fd);
            ok = false;
        }
    }
    closedir(d);
    return ok;
}

/* Parks a process that the test script kills (bounded: alarm). */
static void __attribute__((noreturn)) gp_wait_for_kill(void)
{
    alarm(30);
    for (;;)
        pause();
}

/* ---- modes ---- */

/* dom1: shares n pages with dom0, pattern a in the first halves; after "release" checks
 * what the mapper wrote (rw) and unshares. */
static void gp_share(uint32_t n, bool writable)
{
    xengntshr_handle *shr = gp_open_shr();
    uint32_t refs[GP_MAX_REFS];
    char why[128] = "";
    uint8_t *p;

    p = xengntshr_share_pages(shr, 0, (int)n, refs, writable);
    if (!p)
        report_die("share", "xengntshr_share_pages(%u): %s", n, strerror(errno));
    report_check(gp_zeroed(p, (size_t)n * GP_PAGE), "share: fresh pages are zeroed", "non-zero byte in a new page");
    gp_fill(p, n, false);
    gp_put_numbers("refs", refs, (int)n);
    gp_wait_file("release");
    if (writable)
        report_check(gp_verify(p, n, true, why, sizeof(why)), "data written by the mapper is visible to the granter",
                 why);
    report_check(xengntshr_unshare(shr, p, n) == 0, "unshare", strerror(errno));
    xengntshr_close(shr);
}

static void gp_map_errors(xengnttab_handle *tab, uint32_t granter, const uint32_t *refs)
{
    uint32_t low = 3, ref0 = refs[0];
    char bad[128] = "";

    unsigned logged = gp_log.count;

    gp_expect_null(xengnttab_map_domain_grant_refs(tab, 0, granter, &ref0, PROT_READ), EINVAL,
                   "map of 0 refs: EINVAL");
    gp_expect_null(xengnttab_map_grant_ref(tab, granter, low, PROT_READ), EINVAL,
                   "map of a reserved ref (0..7): EINVAL");
    gp_expect_null(xengnttab_map_grant_ref(tab, granter, 8000, PROT_READ), EINVAL, "map of an unused ref: EINVAL");
    report_check(gp_log.count >= logged + 3, "refused maps are logged through the handle's logger", "not logged");
    gp_expect_null(xengnttab_map_grant_ref(tab, 60, ref0, PROT_READ), EINVAL,
                   "map from a domain that does not exist: EINVAL");
    gp_expect_null(xengnttab_map_grant_ref(tab, granter == 1 ? 2 : 1, ref0, PROT_READ), EINVAL,
                   "map naming the wrong granting domain: EINVAL");
    gp_expect_null(xengnttab_map_grant_ref_notify(tab, granter, ref0, PROT_READ | PROT_WRITE, 100, 1000), EINVAL,
                   "unmap notify on a port not bound in this domain: EINVAL");
    gp_expect_err(xengnttab_unmap(tab, NULL, 1), EINVAL, "unmap(NULL): EINVAL");
    report_check(xengnttab_grant_copy(tab, 0, NULL) == 0, "grant_copy of nothing succeeds", strerror(errno));
    gp_expect_err(xengnttab_dmabuf_imp_release(tab, 0), ENOTTY, "dmabuf (no CONFIG_XEN_GNTDEV_DMABUF): ENOTTY");
    report_check(xengnttab_set_max_grants(tab, 128) == 0, "set_max_grants is accepted", strerror(errno));
    report_check(gp_all_cloexec(bad, sizeof(bad)), "every descriptor of the handles is close-on-exec", bad);
}

/* dom0: maps the n refs of dom `granter` read-write, checks every page, writes pattern b. */
static void gp_map(uint32_t n, uint32_t granter)
{
    xengnttab_handle *tab = gp_open_tab();
    uint32_t refs[GP_MAX_REFS], domids[2] = { granter, granter };
    char why[128] = "", name[96];
    uint8_t *p, *two;

    if ((uint32_t)gp_wait_numbers("refs", refs, GP_MAX_REFS) != n)
        report_die("map", "expected %u refs", n);
    gp_map_errors(tab, granter, refs);
    p = xengnttab_map_domain_grant_refs(tab, n, granter, refs, PROT_READ | PROT_WRITE);
    if (!p)
        report_die("map", "xengnttab_map_domain_grant_refs(%u): %s", n, strerror(errno));
    snprintf(name, sizeof(name), "contiguous map of %u refs: every page holds the granter's data", n);
    report_check(gp_verify(p, n, false, why, sizeof(why)), name, why);
    gp_fill(p, n, true);
    two = xengnttab_map_grant_refs(tab, 2, domids, refs + n - 2, PROT_READ);
    report_check(two && !memcmp(two, p + (size_t)(n - 2) * GP_PAGE, 2 * GP_PAGE),
             "second mapping of the same grants (map_grant_refs) sees the same pages", strerror(errno));
    if (two)
        xengnttab_unmap(tab, two, 2);
    gp_expect_err(xengnttab_unmap(tab, p, n - 1), EINVAL, "unmap with the wrong count: EINVAL");
    gp_expect_err(xengnttab_unmap(tab, p + GP_PAGE, n - 1), EINVAL, "unmap of part of a mapping: EINVAL");
    report_check(xengnttab_unmap(tab, p, n) == 0, "unmap of a whole mapping", strerror(errno));
    gp_expect_err(xengnttab_unmap(tab, p, n), EINVAL, "second unmap: EINVAL");
    xengnttab_close(tab);
}

/* dom2: the grants are for dom0, not for us. */
static void gp_map_refused(uint32_t granter)
{
    xengnttab_handle *tab = gp_open_tab();
    uint32_t refs[GP_MAX_REFS];

    gp_wait_numbers("refs", refs, GP_MAX_REFS);
    gp_expect_null(xengnttab_map_domain_grant_refs(tab, 1, granter, refs, PROT_READ | PROT_WRITE), EINVAL,
                   "map by a domain the grant is not for: EINVAL");
    gp_expect_null(xengnttab_map_grant_ref(tab, granter, refs[0], PROT_READ), EINVAL,
                   "read-only map by a domain the grant is not for: EINVAL");
    xengnttab_close(tab);
}

/* In a child: map read-only, then write (after trying mprotect if asked); the write must fault.
 * xensim refuses the mprotect and the write dies by SIGSEGV; on Xen mprotect succeeds and the
 * write dies by SIGBUS. Either is right: what matters is that no byte gets through. */
static bool gp_write_faults(uint32_t granter, uint32_t ref, bool try_mprotect)
{
    pid_t pid = fork();
    int status;

    if (pid < 0)
        return false;
    if (pid == 0) {
        xengnttab_handle *tab = xengnttab_open(&gp_log.base, 0);
        volatile uint8_t *p = tab ? xengnttab_map_grant_ref(tab, granter, ref, PROT_READ) : NULL;

        if (!p)
            _exit(3);
        signal(SIGSEGV, SIG_DFL);
        signal(SIGBUS, SIG_DFL);
        if (try_mprotect)
            mprotect((void *)p, GP_PAGE, PROT_READ | PROT_WRITE);
        p[0] = 0xEE;
        _exit(4); /* the write went through */
    }
    if (waitpid(pid, &status, 0) != pid)
        return false;
    return WIFSIGNALED(status) && (WTERMSIG(status) == SIGSEGV || (try_mprotect && WTERMSIG(status) == SIGBUS));
}

/* dom0: the grants are read-only. */
static void gp_map_ro(uint32_t n, uint32_t granter)
{
    xengnttab_handle *tab = gp_open_tab();
    xenevtchn_handle *xce = gp_open_ev();
    uint32_t refs[GP_MAX_REFS];
    char why[128] = "";
    int port = xenevtchn_bind_unbound_port(xce, 0);
    uint8_t *p;

    gp_wait_numbers("refs", refs, GP_MAX_REFS);
    gp_expect_null(xengnttab_map_domain_grant_refs(tab, n, granter, refs, PROT_READ | PROT_WRITE), EINVAL,
                   "read-only grant mapped with PROT_WRITE: EINVAL");
    gp_expect_null(xengnttab_map_grant_ref_notify(tab, granter, refs[0], PROT_READ, 10, (evtchn_port_t)port),
                   EINVAL, "read-only mapping with an unmap-notify byte to clear: EINVAL");
    p = xengnttab_map_domain_grant_refs(tab, n, granter, refs, PROT_READ);
    if (!p)
        report_die("read-only", "map with PROT_READ: %s", strerror(errno));
    report_check(gp_verify(p, n, false, why, sizeof(why)), "read-only grant mapped with PROT_READ shows the data", why);
    report_check(gp_write_faults(granter, refs[0], false), "write through a read-only grant mapping faults (SIGSEGV)",
             "the child did not die by SIGSEGV");
    report_check(gp_write_faults(granter, refs[0], true), "even after mprotect, a write to a read-only grant faults",
             "the child did not die by SIGSEGV or SIGBUS");
    report_check(xengnttab_unmap(tab, p, n) == 0, "unmap of the read-only mapping", strerror(errno));
    xenevtchn_close(xce);
    xengnttab_close(tab);
}

/* Unsharing memory that is no share: Xen's munmap takes it silently (0); xensim refuses it
 * (EINVAL) and leaves it mapped, so the bug shows. */
static void gp_unshare_foreign(xengntshr_handle *shr)
{
    uint8_t *q = mmap(NULL, GP_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    int rc;

    if (q == MAP_FAILED)
        report_die("unshare", "mmap: %s", strerror(errno));
    q[0] = 1;
    rc = xengntshr_unshare(shr, q, 1);
    if (getenv("XENSIM_BROKER")) {
        gp_expect_err(rc, EINVAL, "unshare of memory that is no share: EINVAL (xensim)");
        report_check(q[0] == 1, "the refused unshare left the memory mapped (xensim)", "byte changed");
        munmap(q, GP_PAGE);
    } else {
        report_check(rc == 0, "unshare of memory that is no share: 0, it is a munmap (Xen)", strerror(errno));
    }
}

/* dom1: shares 2 pages, unshares them page by page while dom0 still maps them. */
static void gp_share_unshare(void)
{
    xengntshr_handle *shr = gp_open_shr();
    uint32_t refs[2], ref;
    uint8_t *p = xengntshr_share_pages(shr, 0, 2, refs, 1), *other = xengntshr_share_pages(shr, 0, 1, &ref, 1);

    if (!p || !other)
        report_die("unshare", "share_pages: %s", strerror(errno));
    other[7] = 0x5A;
    gp_fill(p, 2, false);
    gp_put_numbers("refs", refs, 2);
    gp_wait_file("mapped");
    gp_expect_err(xengntshr_unshare(shr, p + 100, 1), EINVAL, "unshare of an unaligned address: EINVAL");
    report_check(xengntshr_unshare(shr, p + GP_PAGE, 1) == 0, "unshare of one page of a share", strerror(errno));
    report_check(xengntshr_unshare(shr, p, 1) == 0, "unshare of the other page", strerror(errno));
    report_check(xengntshr_unshare(shr, p, 1) == 0, "unshare of an unshared page succeeds (a munmap)", strerror(errno));
    report_check(xengntshr_unshare(shr, p, 2) == 0, "unshare of a whole unshared range succeeds", strerror(errno));
    report_check(xengntshr_unshare(shr, p, 1) == 0 && other[7] == 0x5A,
             "repeated unshare leaves another share alone", strerror(errno));
    gp_unshare_foreign(shr);
    gp_put_file("other", ref);
    gp_put_file("unshared", 1);
    gp_wait_file("release");
    report_check(xengntshr_unshare(shr, other, 1) == 0, "unshare of the other share", strerror(errno));
    xengntshr_close(shr);
}

static void gp_map_unshare(void)
{
    xengnttab_handle *tab = gp_open_tab();
    uint32_t refs[2];
    char why[128] = "";
    uint8_t *p, *other;

    gp_wait_numbers("refs", refs, 2);
    p = xengnttab_map_domain_grant_refs(tab, 2, 1, refs, PROT_READ | PROT_WRITE);
    if (!p)
        report_die("unshare", "map: %s", strerror(errno));
    gp_put_file("mapped", 1);
    gp_wait_file("unshared");
    other = xengnttab_map_grant_ref(tab, 1, gp_wait_file("other"), PROT_READ);
    report_check(other && other[7] == 0x5A, "a share untouched by the repeated unshares still maps",
             other ? "wrong content" : strerror(errno));
    if (other)
        xengnttab_unmap(tab, other, 1);
    gp_expect_revoked(tab, 1, refs[0], "after unshare");
    report_check(gp_verify(p, 2, false, why, sizeof(why)), "after unshare the old mapping keeps the data", why);
    p[GP_PAGE + 5] = 0x42;
    report_check(p[GP_PAGE + 5] == 0x42, "after unshare the old mapping is still writable", "write lost");
    xengnttab_unmap(tab, p, 2);
    gp_put_file("release", 1);
    xengnttab_close(tab);
}

/* dom1: shares a notify page and 3 data pages, closes its evtchn handle, then is killed. */
static void gp_share_victim(void)
{
    xenevtchn_handle *xce = gp_open_ev();
    xengntshr_handle *shr = gp_open_shr();
    int port = gp_offer_port(xce, 0, "port");
    uint32_t refs[4];
    uint8_t *note, *data;

    gp_wait_file("bound");
    note = xengntshr_share_page_notify(shr, 0, &refs[0], 1, 10, (evtchn_port_t)port);
    data = xengntshr_share_pages(shr, 0, 3, refs + 1, 1);
    if (!note || !data)
        report_die("granter death", "share: %s", strerror(errno));
    note[10] = 0x77;
    gp_fill(data, 3, false);
    gp_put_numbers("refs", refs, 4);
    gp_wait_file("mapped");
    /* The kernel keeps the port for the notification: closing the handle first must not lose it. */
    xenevtchn_close(xce);
    gp_put_file("ready", 1);
    gp_wait_for_kill();
}

static void gp_map_survivor(void)
{
    xenevtchn_handle *xce = gp_open_ev();
    xengnttab_handle *tab = gp_open_tab();
    int port = gp_bind_port(xce, 1, "port");
    uint32_t refs[4];
    char why[128] = "";
    uint8_t *note, *data;

    gp_put_file("bound", 1);
    gp_wait_numbers("refs", refs, 4);
    note = xengnttab_map_grant_ref(tab, 1, refs[0], PROT_READ | PROT_WRITE);
    data = xengnttab_map_domain_grant_refs(tab, 3, 1, refs + 1, PROT_READ | PROT_WRITE);
    if (!note || !data)
        report_die("granter death", "map: %s", strerror(errno));
    report_check(note[10] == 0x77, "share_page_notify page mapped", "status byte not set");
    gp_put_file("mapped", 1);
    if (gp_wait_event(xce, port, "granter killed (evtchn handle closed first): unmap-notify event"))
        report_pass("granter killed (evtchn handle closed first): unmap-notify event");
    report_check(note[10] == 0, "granter killed: unmap-notify byte cleared", "byte still set");
    report_check(gp_verify(data, 3, false, why, sizeof(why)), "granter killed: the mapping keeps its data", why);
    gp_expect_revoked(tab, 1, refs[1], "granter killed");
    xengnttab_unmap(tab, data, 3);
    xengnttab_unmap(tab, note, 1);
    xengnttab_close(tab);
    xenevtchn_close(xce);
}

/* dom1 side of the unmap notifications in both directions, and of a killed mapper. */
static void gp_notify_granter(void)
{
    xenevtchn_handle *xce = gp_open_ev();
    xengntshr_handle *shr = gp_open_shr();
    int port = gp_offer_port(xce, 0, "port"), port2;
    uint32_t ref, ref2;
    uint8_t *page, *page2;

    gp_wait_file("bound");
    page = xengntshr_share_page_notify(shr, 0, &ref, 1, 100, (evtchn_port_t)port);
    if (!page)
        report_die("notify", "share_page_notify: %s", strerror(errno));
    page[100] = 0xAA;
    page[200] = 0xBB;
    gp_put_file("ref", ref);
    /* Mapper unmaps a mapping made with map_grant_ref_notify(offset 200). */
    if (gp_wait_event(xce, port, "mapper unmap: notify event"))
        report_pass("mapper unmap: notify event reaches the granter");
    report_check(page[200] == 0, "mapper unmap: notify byte cleared in the granter's page", "byte still set");
    report_check(page[100] == 0xAA, "mapper unmap: other bytes untouched", "byte 100 changed");
    /* Granter unshares the page shared with share_page_notify(offset 100). */
    gp_wait_file("mapped2");
    report_check(xengntshr_unshare(shr, page, 1) == 0, "unshare of the notify page", strerror(errno));
    gp_put_file("unshared", 1);
    /* A mapper process that closes its evtchn handle and is then killed. */
    port2 = gp_offer_port(xce, 0, "port2");
    page2 = xengntshr_share_pages(shr, 0, 1, &ref2, 1);
    if (!page2)
        report_die("notify", "share_pages: %s", strerror(errno));
    page2[300] = 0xCC;
    gp_put_file("ref2", ref2);
    if (gp_wait_event(xce, port2, "mapper killed (evtchn handle closed first): notify event"))
        report_pass("mapper killed (evtchn handle closed first): notify event");
    report_check(page2[300] == 0, "mapper killed: notify byte cleared", "byte still set");
    gp_wait_file("done");
    xengntshr_close(shr);
    xenevtchn_close(xce);
}

static void gp_notify_mapper(void)
{
    xenevtchn_handle *xce = gp_open_ev();
    xengnttab_handle *tab = gp_open_tab();
    int port = gp_bind_port(xce, 1, "port");
    uint32_t ref;
    uint8_t *p;

    gp_put_file("bound", 1);
    ref = gp_wait_file("ref");
    p = xengnttab_map_grant_ref_notify(tab, 1, ref, PROT_READ | PROT_WRITE, 200, (evtchn_port_t)port);
    if (!p)
        report_die("notify", "map_grant_ref_notify: %s", strerror(errno));
    report_check(p[100] == 0xAA && p[200] == 0xBB, "map_grant_ref_notify maps the page", "unexpected content");
    report_check(xengnttab_unmap(tab, p, 1) == 0, "unmap of a notify mapping", strerror(errno));
    p = xengnttab_map_grant_ref(tab, 1, ref, PROT_READ | PROT_WRITE);
    if (!p)
        report_die("notify", "map_grant_ref: %s", strerror(errno));
    gp_put_file("mapped2", 1);
    if (gp_wait_event(xce, port, "granter unshare: notify event"))
        report_pass("granter unshare: notify event reaches the mapper");
    report_check(p[100] == 0, "granter unshare: notify byte cleared in the mapper's view", "byte still set");
    gp_wait_file("unshared");
    xengnttab_unmap(tab, p, 1);
    xengnttab_close(tab);
    xenevtchn_close(xce);
}

/* dom0: maps with an unmap notification, closes its evtchn handle, then is killed. */
static void gp_mapper_victim(void)
{
    xenevtchn_handle *xce = gp_open_ev();
    xengnttab_handle *tab = gp_open_tab();
    int port = gp_bind_port(xce, 1, "port2");
    uint8_t *p = xengnttab_map_grant_ref_notify(tab, 1, gp_wait_file("ref2"), PROT_READ | PROT_WRITE, 300,
                                                (evtchn_port_t)port);

    if (!p)
        report_die("notify", "map_grant_ref_notify: %s", strerror(errno));
    xenevtchn_close(xce);
    gp_put_file("victim-ready", 1);
    gp_wait_for_kill();
}

/* dom1 alone: the domain may have 1024 pages shared at a time (gntalloc's limit). As gntalloc,
 * a share's pages count until the whole share is unshared. Closing a handle: xensim unmaps and
 * frees its shares; on Xen they stay mapped (and counted) until munmap or exit. */
static void gp_limit(void)
{
    xengntshr_handle *a = gp_open_shr(), *b = gp_open_shr();
    static uint32_t refs[1024];
    uint32_t one;
    bool distinct = true;
    uint8_t *big, *small;

    gp_expect_null(xengntshr_share_pages(a, 0, 0, &one, 1), EINVAL, "share of 0 pages: EINVAL");
    big = xengntshr_share_pages(a, 0, 1024, refs, 1);
    report_check(big != NULL, "1024 pages shared in one call", strerror(errno));
    if (!big)
        exit(1);
    for (int i = 0; i < 1024 && distinct; i++)
        distinct = refs[i] >= 8 && (i == 0 || refs[i] != refs[i - 1]);
    report_check(distinct, "refs are distinct and never 0..7", "bad ref");
    gp_expect_null(xengntshr_share_pages(b, 0, 1, &one, 1), ENOSPC,
                   "1025th page in the domain (other handle): ENOSPC");
    report_check(xengntshr_unshare(a, big + 1023 * GP_PAGE, 1) == 0, "unshare of the last page", strerror(errno));
    gp_expect_null(xengntshr_share_pages(b, 0, 1, &one, 1), ENOSPC,
                   "part of a share unshared: its pages still count (ENOSPC)");
    report_check(xengntshr_unshare(a, big, 1023) == 0, "unshare of the rest of the share", strerror(errno));
    small = xengntshr_share_pages(b, 0, 1, &one, 1);
    report_check(small != NULL, "the whole share unshared: its pages can be shared again", strerror(errno));
    gp_expect_null(xengntshr_share_pages(a, 0, 1024, refs, 1), ENOSPC, "1024 pages with 1023 left: ENOSPC");
    xengntshr_close(b);
    big = xengntshr_share_pages(a, 0, 1024, refs, 1);
    if (getenv("XENSIM_BROKER")) {
        report_check(big != NULL, "closing a handle unmaps and frees its shares (xensim)", strerror(errno));
    } else {
        gp_expect_null(big, ENOSPC, "a closed handle's shares stay mapped and counted (Xen): ENOSPC");
        /* What frees them on Xen: unmapping the pages by hand. */
        report_check(small && munmap(small, GP_PAGE) == 0 && (big = xengntshr_share_pages(a, 0, 1024, refs, 1)),
                 "after munmap of the closed handle's page, 1024 pages can be shared (Xen)", strerror(errno));
    }
    xengntshr_close(a);
}

/* ---- grants a peer still maps when the granter goes (test-gnttab's "held" cases) ---- */

#define GP_HELD_PAGES 1000u /* of the domain's 1024: 24 left while they are held */

/* A new share of n pages: refused with ENOSPC (want_ok false) or made and undone. */
static void gp_expect_share(xengntshr_handle *shr, uint32_t n, bool want_ok, const char *name)
{
    static uint32_t refs[1024];
    uint8_t *p = xengntshr_share_pages(shr, 0, (int)n, refs, 1);

    if (want_ok)
        report_check(p != NULL, name, strerror(errno));
    else
        gp_expect_null(p, ENOSPC, name);
    if (p)
        xengntshr_unshare(shr, p, n);
}

/* dom1, after its 1000 pages' handle was closed (own = its old mapping of them) or their
 * process killed (own = NULL, a new process): the pages count until the peer unmaps them. */
static void gp_held_check(uint8_t *own, const char *how)
{
    xengntshr_handle *shr = gp_open_shr();
    bool xensim = getenv("XENSIM_BROKER") != NULL;
    char name[160];

    /* On Xen a closed handle's pages also stay mapped in the granter (the library only closes the
     * device); a dead granter's count is freed at exit by Linux >= 5.17 (XSA-396), the grant entry
     * only once the peer unmaps. xensim keeps both until the peer unmaps, so a leak shows. */
    snprintf(name, sizeof(name), "granter %s, peer still maps its %u pages: 25 more pages are refused (ENOSPC)", how,
             GP_HELD_PAGES);
    if (xensim || own) {
        gp_expect_share(shr, 25, false, name);
    } else {
        snprintf(name, sizeof(name), "granter killed, peer still maps: gntalloc freed the count at exit (Xen)");
        gp_expect_share(shr, 25, true, name);
    }
    snprintf(name, sizeof(name), "granter %s, peer still maps: 24 more pages fit (exactly %u held)", how,
             GP_HELD_PAGES);
    gp_expect_share(shr, 24, true, name);
    gp_put_file("checked", 1);
    gp_wait_file("unmapped");
    if (own && !xensim)
        munmap(own, (size_t)GP_HELD_PAGES * GP_PAGE); /* what frees them on Xen: the granter's munmap */
    snprintf(name, sizeof(name), "granter %s, peer unmapped: 1024 pages can be shared again", how);
    gp_expect_share(shr, 1024, true, name);
    xengntshr_close(shr);
}

/* dom1: shares 1000 pages to dom0; once mapped, closes the handle (close) or waits to be killed. */
static void gp_held_granter(bool kill)
{
    xengntshr_handle *shr = gp_open_shr();
    static uint32_t refs[GP_HELD_PAGES];
    uint8_t *p = xengntshr_share_pages(shr, 0, GP_HELD_PAGES, refs, 1);

    if (!p)
        report_die("held", "share: %s", strerror(errno));
    gp_fill(p, GP_HELD_PAGES, false);
    gp_put_numbers("refs", refs, GP_HELD_PAGES);
    gp_wait_file("mapped");
    if (kill) {
        gp_put_file("ready", 1);
        gp_wait_for_kill();
    }
    xengntshr_close(shr);
    gp_held_check(p, "closed its handle");
}

/* dom0: maps the 1000 pages, keeps them while the granter goes, then unmaps. */
static void gp_held_mapper(void)
{
    xengnttab_handle *tab = gp_open_tab();
    static uint32_t refs[GP_HELD_PAGES];
    char why[128] = "";
    uint8_t *p;

    if (gp_wait_numbers("refs", refs, GP_HELD_PAGES) != GP_HELD_PAGES)
        report_die("held", "fewer than %u refs", GP_HELD_PAGES);
    p = xengnttab_map_domain_grant_refs(tab, GP_HELD_PAGES, 1, refs, PROT_READ | PROT_WRITE);
    if (!p)
        report_die("held", "map: %s", strerror(errno));
    gp_put_file("mapped", 1);
    gp_wait_file("checked");
    report_check(gp_verify(p, GP_HELD_PAGES, false, why, sizeof(why)), "granter gone: the held pages keep their data",
                 why);
    gp_expect_revoked(tab, 1, refs[GP_HELD_PAGES - 1], "granter gone, pages held");
    report_check(xengnttab_unmap(tab, p, GP_HELD_PAGES) == 0, "unmap of the held pages", strerror(errno));
    gp_put_file("unmapped", 1);
    xengnttab_close(tab);
}

static void gp_no_broker(void)
{
    struct gp_logger log = { .base = { .vmessage = gp_log_vmessage } };
    xengnttab_handle *tab = xengnttab_open(&log.base, 0);
    xengntshr_handle *shr;

    report_check(!tab && errno == ENOENT && strstr(log.last, "XENSIM_BROKER"),
             "xengnttab_open without XENSIM_BROKER: ENOENT and a message", log.last);
    log.last[0] = 0;
    shr = xengntshr_open(&log.base, 0);
    report_check(!shr && errno == ENOENT && strstr(log.last, "XENSIM_BROKER"),
             "xengntshr_open without XENSIM_BROKER: ENOENT and a message", log.last);
    xengnttab_close(tab);
    xengntshr_close(shr);
}

static void gp_usage(void)
{
    fprintf(stderr, "usage: gnt-peer share DIR N rw|ro | map DIR N GRANTER | map-refused DIR GRANTER |\n"
                    "       map-ro DIR N GRANTER | share-unshare DIR | map-unshare DIR | share-victim DIR |\n"
                    "       map-survivor DIR | notify-granter DIR | notify-mapper DIR | mapper-victim DIR |\n"
                    "       limit DIR | held-granter DIR close|kill | held-check DIR | held-mapper DIR |\n"
                    "       no-broker\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "";
    uint32_t a = argc > 3 ? (uint32_t)strtoul(argv[3], NULL, 10) : 0;
    uint32_t b = argc > 4 ? (uint32_t)strtoul(argv[4], NULL, 10) : 0;

    report_area = "gnttab";
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (int fd = 0; fd < GP_MAX_FD; fd++)
        gp_inherited[fd] = fcntl(fd, F_GETFD) >= 0;
    if (!strcmp(mode, "no-broker")) {
        gp_no_broker();
        return report_failed;
    }
    if (argc < 3)
        gp_usage();
    gp_dir = argv[2];
    if (!strcmp(mode, "share") && argc == 5 && a > 0 && a <= GP_MAX_REFS)
        gp_share(a, !strcmp(argv[4], "rw"));
    else if (!strcmp(mode, "map") && argc == 5 && a >= 2 && a <= GP_MAX_REFS)
        gp_map(a, b);
    else if (!strcmp(mode, "map-refused") && argc == 4)
        gp_map_refused(a);
    else if (!strcmp(mode, "map-ro") && argc == 5 && a > 0 && a <= GP_MAX_REFS)
        gp_map_ro(a, b);
    else if (!strcmp(mode, "share-unshare"))
        gp_share_unshare();
    else if (!strcmp(mode, "map-unshare"))
        gp_map_unshare();
    else if (!strcmp(mode, "share-victim"))
        gp_share_victim();
    else if (!strcmp(mode, "map-survivor"))
        gp_map_survivor();
    else if (!strcmp(mode, "notify-granter"))
        gp_notify_granter();
    else if (!strcmp(mode, "notify-mapper"))
        gp_notify_mapper();
    else if (!strcmp(mode, "mapper-victim"))
        gp_mapper_victim();
    else if (!strcmp(mode, "limit"))
        gp_limit();
    else if (!strcmp(mode, "held-granter") && argc == 4 && (!strcmp(argv[3], "close") || !strcmp(argv[3], "kill")))
        gp_held_granter(!strcmp(argv[3], "kill"));
    else if (!strcmp(mode, "held-check"))
        gp_held_check(NULL, "killed");
    else if (!strcmp(mode, "held-mapper"))
        gp_held_mapper();
    else
        gp_usage();
    return report_failed;
}
