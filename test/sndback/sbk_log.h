/* sndback logging: every line starts with "sndback: " and goes to stderr.
 * sbk_info is printed only with -v; warnings, errors and stream summaries always. */
#ifndef SBK_LOG_H
#define SBK_LOG_H

#include <stdbool.h>

extern bool sbk_verbose;
extern bool sbk_log_time;      /* --log-time: "sndback: [S.US] ...", S.US from CLOCK_MONOTONIC */

void sbk_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void sbk_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void sbk_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* One line, printed whatever the verbosity (the per-stream close summary). */
void sbk_always(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
