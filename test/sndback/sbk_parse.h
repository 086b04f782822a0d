/* Strict parsing of values from xenstore and the command line: whole-string decimals, lists. */
#ifndef SBK_PARSE_H
#define SBK_PARSE_H

#include <stddef.h>
#include <stdint.h>

/* Decimal digits only (no sign, no spaces), no overflow: 0, else -1. */
int sbk_parse_u32(const char *text, uint32_t *out);
int sbk_parse_u64(const char *text, uint64_t *out);
/* "MIN:MAX", both u32, MIN <= MAX: 0, else -1. */
int sbk_parse_u32_range(const char *text, uint32_t *min, uint32_t *max);

/* Calls item(ctx, start, len) for every item of a list separated by ',' or ';'. Stops at the
 * first item returning non-zero and returns that; an empty list or empty item gives -1. */
typedef int (*sbk_list_item_fn)(void *ctx, const char *item, size_t len);
int sbk_parse_list(const char *text, sbk_list_item_fn item, void *ctx);

/* Formats a message into err (errlen bytes) and returns -1: `return sbk_fail(err, ...)`. */
int sbk_fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
