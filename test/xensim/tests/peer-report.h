/* peer-report.h: the PASS:/FAIL: lines of the xensim test programs (evtchn-peer, gnt-peer).
 * Header-only: each program is a single source file, built as is on xensim and on real Xen.
 * Set report_area ("evtchn", "gnttab") first thing in main(). */
#ifndef PEER_REPORT_H
#define PEER_REPORT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

static const char *report_area = "?";
static bool report_failed;

static void report_pass(const char *name)
{
    printf("PASS: %s %s\n", report_area, name);
    fflush(stdout);
}

static void report_vfail(const char *name, const char *fmt, va_list ap)
{
    printf("FAIL: %s %s: ", report_area, name);
    vprintf(fmt, ap);
    printf("\n");
    fflush(stdout);
}

static void report_fail(const char *name, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void report_fail(const char *name, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    report_vfail(name, fmt, ap);
    va_end(ap);
    report_failed = true;
}

/* Stops this side: the other side then times out on its own waits. */
static void report_die(const char *name, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
static void report_die(const char *name, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    report_vfail(name, fmt, ap);
    va_end(ap);
    exit(1);
}

static void report_check(bool ok, const char *name, const char *why)
{
    if (ok)
        report_pass(name);
    else
        report_fail(name, "%s", why);
}

#endif
