/* xs-txn LABEL BASE [TXN_LIMIT]: xenstore transaction cases through Debian's libxenstore.
 * BASE is a node the calling domain may create children under; it is removed at the end.
 * TXN_LIMIT, if given, is how many transactions one connection may open at once.
 * Prints one PASS/FAIL line per case (names end in -LABEL); exit status 1 if any failed.
 * The same binary runs against real xenstored (make test-xen). */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xenstore.h>

#define XT_EVENT_WAIT_MS 10000   /* safety net so a lost event fails instead of hanging */

static const char *xt_label, *xt_base;
static struct xs_handle *xt_h1, *xt_h2;
static int xt_failed;
static char xt_why[512];

/* Records why the current case failed; returns false for `return xt_fail(...)`. */
static bool xt_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static bool xt_fail(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(xt_why, sizeof(xt_why), fmt, ap);
    va_end(ap);
    return false;
}

/* BASE/rel in a static buffer (one per call site is enough: callers copy or use at once). */
static const char *xt_path(const char *rel)
{
    static char bufs[8][512];
    static unsigned next;
    char *b = bufs[next++ % 8];

    snprintf(b, sizeof(bufs[0]), "%s/%s", xt_base, rel);
    return b;
}

static bool xt_write(struct xs_handle *h, xs_transaction_t t, const char *path, const char *val)
{
    if (!xs_write(h, t, path, val, strlen(val)))
        return xt_fail("write %s: %s", path, strerror(errno));
    return true;
}

/* Whether path reads as want (want NULL: must not exist). */
static bool xt_expect(struct xs_handle *h, xs_transaction_t t, const char *path, const char *want)
{
    unsigned len;
    char *v = xs_read(h, t, path, &len);
    bool ok;

    if (!want) {
        if (v || errno != ENOENT) {
            free(v);
            return xt_fail("%s: expected ENOENT, got %s", path, v ? "a value" : strerror(errno));
        }
        return true;
    }
    if (!v)
        return xt_fail("read %s: %s", path, strerror(errno));
    ok = len == strlen(want) && !memcmp(v, want, len);
    if (!ok)
        xt_fail("%s = \"%.*s\", expected \"%s\"", path, (int)len, v, want);
    free(v);
    return ok;
}

static bool xt_start(struct xs_handle *h, xs_transaction_t *t)
{
    *t = xs_transaction_start(h);
    return *t != XBT_NULL || xt_fail("transaction_start: %s", strerror(errno));
}

static bool xt_commit(struct xs_handle *h, xs_transaction_t t)
{
    return xs_transaction_end(h, t, false) || xt_fail("commit: %s", strerror(errno));
}

/* The next watch event's path on h, into out. */
static bool xt_next_event(struct xs_handle *h, char *out, size_t size)
{
    struct pollfd pfd = { .fd = xs_fileno(h), .events = POLLIN };

    for (;;) {
        char **vec = xs_check_watch(h);

        if (vec) {
            snprintf(out, size, "%s", vec[XS_WATCH_PATH]);
            free(vec);
            return true;
        }
        if (errno != EAGAIN)
            return xt_fail("xs_check_watch: %s", strerror(errno));
        if (poll(&pfd, 1, XT_EVENT_WAIT_MS) <= 0)
            return xt_fail("no watch event within %d ms", XT_EVENT_WAIT_MS);
    }
}

static bool xt_expect_event(struct xs_handle *h, const char *want)
{
    char got[512];

    if (!xt_next_event(h, got, sizeof(got)))
        return false;
    return !strcmp(got, want) || xt_fail("watch event %s, expected %s", got, want);
}

/* Two transactions read and write the same node: the first commit wins, the second
 * gets EAGAIN and changes nothing. */
static bool xt_case_conflict(void)
{
    const char *node = xt_path("conflict");
    xs_transaction_t t1, t2;
    unsigned len;
    char *v1, *v2;

    if (!xt_write(xt_h1, XBT_NULL, node, "0") || !xt_start(xt_h1, &t1) || !xt_start(xt_h2, &t2))
        return false;
    v1 = xs_read(xt_h1, t1, node, &len);
    v2 = xs_read(xt_h2, t2, node, &len);
    free(v1);
    free(v2);
    if (!v1 || !v2)
        return xt_fail("read in transaction: %s", strerror(errno));
    if (!xt_write(xt_h1, t1, node, "1") || !xt_write(xt_h2, t2, node, "2") || !xt_commit(xt_h1, t1))
        return false;
    if (xs_transaction_end(xt_h2, t2, false))
        return xt_fail("second commit succeeded");
    if (errno != EAGAIN)
        return xt_fail("second commit: %s, expected EAGAIN", strerror(errno));
    return xt_expect(xt_h2, XBT_NULL, node, "1");
}

/* A transaction that only read a node conflicts with a change of that node too. */
static bool xt_case_read_conflict(void)
{
    const char *node = xt_path("readset"), *other = xt_path("readset-other");
    xs_transaction_t t;
    unsigned len;
    char *v;

    if (!xt_write(xt_h1, XBT_NULL, node, "a") || !xt_start(xt_h1, &t))
        return false;
    v = xs_read(xt_h1, t, node, &len);
    free(v);
    if (!v)
        return xt_fail("read: %s", strerror(errno));
    if (!xt_write(xt_h2, XBT_NULL, node, "b") || !xt_write(xt_h1, t, other, "x"))
        return false;
    if (xs_transaction_end(xt_h1, t, false) || errno != EAGAIN)
        return xt_fail("commit after a concurrent change of a read node: %s",
                       errno == EAGAIN ? "succeeded" : strerror(errno));
    return xt_expect(xt_h1, XBT_NULL, other, NULL);
}

/* Changes stay private until commit, then all appear. */
static bool xt_case_isolation(void)
{
    const char *node = xt_path("iso"), *fresh = xt_path("iso-dir/fresh");
    xs_transaction_t t;

    if (!xt_write(xt_h1, XBT_NULL, node, "old") || !xt_start(xt_h1, &t) ||
        !xt_write(xt_h1, t, node, "new") || !xt_write(xt_h1, t, fresh, "f"))
        return false;
    if (!xt_expect(xt_h2, XBT_NULL, node, "old") || !xt_expect(xt_h2, XBT_NULL, fresh, NULL) ||
        !xt_expect(xt_h1, t, node, "new") || !xt_expect(xt_h1, t, fresh, "f") || !xt_commit(xt_h1, t))
        return false;
    return xt_expect(xt_h2, XBT_NULL, node, "new") && xt_expect(xt_h2, XBT_NULL, fresh, "f");
}

/* An aborted transaction leaves nothing: not the node, not the parents it created. */
static bool xt_case_abort(void)
{
    const char *deep = xt_path("abort/a/b"), *top = xt_path("abort"), *kept = xt_path("kept");
    xs_transaction_t t;

    if (!xt_write(xt_h1, XBT_NULL, kept, "k") || !xt_start(xt_h1, &t) ||
        !xt_write(xt_h1, t, deep, "x") || !xs_rm(xt_h1, t, kept))
        return xt_fail("in transaction: %s", strerror(errno));
    if (!xs_transaction_end(xt_h1, t, true))
        return xt_fail("abort: %s", strerror(errno));
    return xt_expect(xt_h2, XBT_NULL, top, NULL) && xt_expect(xt_h2, XBT_NULL, kept, "k");
}

/* The directory inside a transaction lists its own new child; outside it does not. */
static bool xt_case_directory(void)
{
    const char *dir = xt_path("dir"), *child = xt_path("dir/inner");
    xs_transaction_t t;
    unsigned n_in, n_out;
    char **in, **out;
    bool ok;

    if (!xt_write(xt_h1, XBT_NULL, dir, "") || !xt_start(xt_h1, &t) || !xt_write(xt_h1, t, child, "1"))
        return false;
    in = xs_directory(xt_h1, t, dir, &n_in);
    out = xs_directory(xt_h2, XBT_NULL, dir, &n_out);
    ok = in && out && n_in == 1 && !strcmp(in[0], "inner") && n_out == 0;
    if (!ok)
        xt_fail("directory in transaction: %u entries, outside: %u", in ? n_in : 0, out ? n_out : 0);
    free(in);
    free(out);
    xs_transaction_end(xt_h1, t, true);
    return ok;
}

/* A transaction id this connection does not own is ENOENT. */
static bool xt_case_unknown_id(void)
{
    unsigned len;
    char *v = xs_read(xt_h1, 4242, xt_path("conflict"), &len);

    free(v);
    if (v || errno != ENOENT)
        return xt_fail("read with unknown transaction: %s", v ? "succeeded" : strerror(errno));
    if (xs_transaction_end(xt_h1, 4242, false) || errno != ENOENT)
        return xt_fail("end of unknown transaction: %s", strerror(errno));
    return true;
}

/* Another connection's transaction id is not ours either. */
static bool xt_case_foreign_id(void)
{
    xs_transaction_t t;
    unsigned len;
    char *v;
    bool ok;

    if (!xt_start(xt_h1, &t))
        return false;
    /* h2 has no transaction open, so any id is foreign to it. */
    v = xs_read(xt_h2, t, xt_path("conflict"), &len);
    free(v);
    ok = !v && errno == ENOENT;
    xs_transaction_end(xt_h1, t, true);
    return ok || xt_fail("read with another connection's transaction: %s",
                         v ? "succeeded" : strerror(errno));
}

/* Watches hear of a transaction's changes at commit and never of an aborted one. The
 * sentinel writes order events: the server handles one connection's requests in order.
 * The sentinels exist beforehand: creating a sibling would change the parent, which the
 * transaction has read, and make its commit fail. */
static bool xt_case_watch_at_commit(void)
{
    const char *dir = xt_path("w"), *x = xt_path("w/x"), *y = xt_path("w/y");
    const char *s1 = xt_path("w/sentinel1"), *s2 = xt_path("w/sentinel2");
    xs_transaction_t t, u;
    bool ok;

    if (!xt_write(xt_h1, XBT_NULL, s1, "") || !xt_write(xt_h1, XBT_NULL, s2, "") ||
        !xs_watch(xt_h2, dir, "tok"))
        return xt_fail("setup: %s", strerror(errno));
    ok = xt_expect_event(xt_h2, dir) &&
         xt_start(xt_h1, &t) && xt_write(xt_h1, t, x, "1") &&
         xt_start(xt_h1, &u) && xt_write(xt_h1, u, y, "1") &&
         xt_write(xt_h1, XBT_NULL, s1, "s") && xt_expect_event(xt_h2, s1) &&
         (xs_transaction_end(xt_h1, u, true) || xt_fail("abort: %s", strerror(errno))) &&
         xt_commit(xt_h1, t) && xt_expect_event(xt_h2, x) &&
         xt_write(xt_h1, XBT_NULL, s2, "s") && xt_expect_event(xt_h2, s2);
    xs_unwatch(xt_h2, dir, "tok");
    return ok;
}

/* A removal inside a transaction: gone after commit, and the watch on it fires. */
static bool xt_case_rm_in_txn(void)
{
    const char *top = xt_path("rmme"), *leaf = xt_path("rmme/a/b");
    xs_transaction_t t;
    bool ok;

    if (!xt_write(xt_h1, XBT_NULL, leaf, "x") || !xs_watch(xt_h2, leaf, "rm"))
        return xt_fail("setup: %s", strerror(errno));
    ok = xt_expect_event(xt_h2, leaf) && xt_start(xt_h1, &t) &&
         (xs_rm(xt_h1, t, top) || xt_fail("rm: %s", strerror(errno))) &&
         xt_expect(xt_h2, XBT_NULL, leaf, "x") && xt_commit(xt_h1, t) &&
         xt_expect(xt_h2, XBT_NULL, top, NULL) && xt_expect_event(xt_h2, leaf);
    xs_unwatch(xt_h2, leaf, "rm");
    return ok;
}

/* A connection may hold at most `limit` transactions at once. */
static bool xt_case_limit(unsigned limit)
{
    xs_transaction_t t[256];
    unsigned n = 0;
    bool ok;

    while (n < limit + 1 && n < 256 && (t[n] = xs_transaction_start(xt_h1)) != XBT_NULL)
        n++;
    ok = n == limit && errno == ENOSPC;
    if (!ok)
        xt_fail("opened %u transactions (limit %u), last error %s", n, limit, strerror(errno));
    while (n--)
        xs_transaction_end(xt_h1, t[n], true);
    return ok;
}

static void xt_report(const char *name, bool ok)
{
    if (ok) {
        printf("PASS: txn-%s-%s\n", name, xt_label);
    } else {
        printf("FAIL: txn-%s-%s: %s\n", name, xt_label, xt_why);
        xt_failed = 1;
    }
    fflush(stdout);
}

int main(int argc, char **argv)
{
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: xs-txn LABEL BASE [TXN_LIMIT]\n");
        return 2;
    }
    xt_label = argv[1];
    xt_base = argv[2];
    xt_h1 = xs_open(0);
    xt_h2 = xs_open(0);
    if (!xt_h1 || !xt_h2) {
        printf("FAIL: txn-open-%s: xs_open: %s\n", xt_label, strerror(errno));
        return 1;
    }
    xs_rm(xt_h1, XBT_NULL, xt_base);
    xt_report("conflict", xt_case_conflict());
    xt_report("read-conflict", xt_case_read_conflict());
    xt_report("isolation", xt_case_isolation());
    xt_report("abort", xt_case_abort());
    xt_report("directory", xt_case_directory());
    xt_report("unknown-id", xt_case_unknown_id());
    xt_report("foreign-id", xt_case_foreign_id());
    xt_report("watch-at-commit", xt_case_watch_at_commit());
    xt_report("rm", xt_case_rm_in_txn());
    if (argc == 4)
        xt_report("limit", xt_case_limit((unsigned)atoi(argv[3])));
    xs_rm(xt_h1, XBT_NULL, xt_base);
    xs_close(xt_h1);
    xs_close(xt_h2);
    return xt_failed;
}
