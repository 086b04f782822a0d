#include "sbk_parse.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int sbk_parse_u64(const char *text, uint64_t *out)
{
    uint64_t v = 0;

    if (!text || !*text)
        return -1;
    for (const char *p = text; *p; p++) {
        unsigned digit = (unsigned)(*p - '0');

        if (digit > 9 || v > (UINT64_MAX - digit) / 10)
            return -1;
        v = v * 10 + digit;
    }
    *out = v;
    return 0;
}

int sbk_parse_u32(const char *text, uint32_t *out)
{
    uint64_t v;

    if (sbk_parse_u64(text, &v) < 0 || v > UINT32_MAX)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

int sbk_parse_u32_range(const char *text, uint32_t *min, uint32_t *max)
{
    const char *colon = strchr(text, ':');
    char low[16];
    size_t len;

    if (!colon)
        return -1;
    len = (size_t)(colon - text);
    if (len == 0 || len >= sizeof(low))
        return -1;
    memcpy(low, text, len);
    low[len] = '\0';
    if (sbk_parse_u32(low, min) < 0 || sbk_parse_u32(colon + 1, max) < 0 || *min > *max)
        return -1;
    return 0;
}

int sbk_parse_list(const char *text, sbk_list_item_fn item, void *ctx)
{
    const char *p = text;

    if (!text || !*text)
        return -1;
    for (;;) {
        size_t len = strcspn(p, ",;");
        int rc;

        if (len == 0)
            return -1;
        rc = item(ctx, p, len);
        if (rc)
            return rc;
        if (p[len] == '\0')
            return 0;
        p += len + 1;
    }
}

int sbk_fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}
