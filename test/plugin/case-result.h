/* case-result.h: the one-line case report of the C test programs (test/plugin/pcm-*.c,
 * test/snd_be/sbe-client.c): "PASS: <TC_PREFIX><name>: <detail>" or "FAIL: ...", flushed at
 * once (a program that dies later keeps its lines), counted in tc_failures and tc_ran so that the
 * program can fail when a case did not run. Define TC_PREFIX (a string literal) before including.
 * The plan: before its first case a program prints "PLAN: N" (tc_plan, or tc_run over its table of
 * cases), N counted from its own list, not from what ran; test/run-tests fails the program when
 * the case lines differ from it. "--plan" as the first argument (tc_plan_option) makes the
 * program print only N and exit: a script that runs it computes its own plan from that. */
#ifndef CASE_RESULT_H
#define CASE_RESULT_H
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef TC_PREFIX
#define TC_PREFIX ""
#endif

static int tc_failures, tc_ran;
static bool tc_plan_only;

/* One entry of a program's list of cases: a function and how many case lines it prints. */
struct tc_case {
    void (*run)(void);
    int lines;
};

/* tc_plan_option: strips a leading "--plan" from the arguments and remembers it. */
static void tc_plan_option(int *argc, char ***argv)
{
    if (*argc > 1 && strcmp((*argv)[1], "--plan") == 0) {
        tc_plan_only = true;
        (*argv)[1] = (*argv)[0];
        (*argv)++;
        (*argc)--;
    }
}

/* tc_plan: prints the plan line (under --plan, only the number, and the program ends). */
static void tc_plan(int lines)
{
    if (tc_plan_only) {
        printf("%d\n", lines);
        exit(0);
    }
    printf("PLAN: %d\n", lines);
    fflush(stdout);
}

/* tc_run: the plan of the whole list, then each case in order; the program's exit status. */
static int tc_run(const struct tc_case *list, size_t n) __attribute__((unused));
static int tc_run(const struct tc_case *list, size_t n)
{
    int lines = 0;

    for (size_t i = 0; i < n; i++)
        lines += list[i].lines;
    tc_plan(lines);
    for (size_t i = 0; i < n; i++)
        list[i].run();
    return tc_failures ? 1 : 0;
}

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
