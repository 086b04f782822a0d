#include "sbk_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

bool sbk_verbose;
bool sbk_log_time;

static void sbk_vlog(const char *level, const char *fmt, va_list ap)
{
    /* One fprintf per part is fine: sndback is single-threaded, stderr is unbuffered. */
    struct timespec now;

    if (sbk_log_time && clock_gettime(CLOCK_MONOTONIC, &now) == 0)
        fprintf(stderr, "sndback: [%lld.%06ld] %s", (long long)now.tv_sec, now.tv_nsec / 1000, level);
    else
        fprintf(stderr, "sndback: %s", level);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void sbk_info(const char *fmt, ...)
{
    va_list ap;

    if (!sbk_verbose)
        return;
    va_start(ap, fmt);
    sbk_vlog("", fmt, ap);
    va_end(ap);
}

void sbk_warn(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    sbk_vlog("warning: ", fmt, ap);
    va_end(ap);
}

void sbk_error(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    sbk_vlog("error: ", fmt, ap);
    va_end(ap);
}

void sbk_always(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    sbk_vlog("", fmt, ap);
    va_end(ap);
}
