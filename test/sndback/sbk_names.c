#include "sbk_names.h"

#include "sbk_parse.h"
#include "sbk_sndif.h"

#include <strings.h>

static const char *const sbk_op_names[SBK_NUM_OPS] = {
    [XENSND_OP_OPEN] = "open",
    [XENSND_OP_CLOSE] = "close",
    [XENSND_OP_READ] = "read",
    [XENSND_OP_WRITE] = "write",
    [XENSND_OP_SET_VOLUME] = "set-volume",
    [XENSND_OP_GET_VOLUME] = "get-volume",
    [XENSND_OP_MUTE] = "mute",
    [XENSND_OP_UNMUTE] = "unmute",
    [XENSND_OP_TRIGGER] = "trigger",
    [XENSND_OP_HW_PARAM_QUERY] = "hw-param-query",
};

/* Every XEN_E* name and value, from the header's own list. */
static const struct sbk_errno_entry {
    const char *name;
    int value;
} sbk_errnos[] = {
#define XEN_ERRNO(name, value) { #name, value },
#include <xen/errno.h>
};

const char *sbk_op_name(unsigned op)
{
    return op < SBK_NUM_OPS ? sbk_op_names[op] : "?";
}

int sbk_op_by_name(const char *name)
{
    for (unsigned i = 0; i < SBK_NUM_OPS; i++)
        if (strcmp(sbk_op_names[i], name) == 0)
            return (int)i;
    return -1;
}

int sbk_errno_parse(const char *text)
{
    uint32_t v;

    for (size_t i = 0; i < sizeof(sbk_errnos) / sizeof(sbk_errnos[0]); i++)
        if (strcasecmp(sbk_errnos[i].name, text) == 0)
            return sbk_errnos[i].value;
    if (sbk_parse_u32(text, &v) == 0 && v > 0 && v <= INT32_MAX)
        return (int)v;
    return -1;
}

const char *sbk_errno_name(int value)
{
    for (size_t i = 0; i < sizeof(sbk_errnos) / sizeof(sbk_errnos[0]); i++)
        if (sbk_errnos[i].value == value)
            return sbk_errnos[i].name;
    return NULL;
}

const char *sbk_trigger_name(unsigned type)
{
    static const char *const names[] = { "start", "pause", "stop", "resume" };

    return type < 4 ? names[type] : "?";
}
