/* case-result.h: the one-line case report of the C test programs (test/plugin/pcm-*.c,
 * test/snd_be/sbe-client.c): "PASS: <TC_PREFIX><name>: <detail>" or "FAIL: ...", flushed at
 * once (a program that dies later keeps its lines), counted in tc_failures and tc_ran so that the
 * program can fail when a case did not run. Define TC_PREFIX (a string literal) before including. */
#ifndef CASE_RESULT_H
#define CASE_RESULT_H
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>

#ifndef TC_PREFIX
#define TC_PREFIX ""
#endif

static int tc_failures, tc_ran;

static void tc_result(bool ok, const char *name, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void tc_result(bool ok, const char *name, const char *fmt, ...)
{
    va_list ap;

    printf("%s: " TC_PREFIX "%s: ", ok ? "PASS" : "FAIL", name);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
    tc_failures += !ok;
    tc_ran++;
}
#endif
