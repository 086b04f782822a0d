#include "sbk_xen.h"

#include "sbk_log.h"
#include "sbk_parse.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

/* Our own domid: the relative key `domid` (written by libxl), 0 when absent. */
static unsigned sbk_read_own_domid(struct sbk_xen *x)
{
    long long id = sbk_xs_read_uint(x, "domid");

    return id >= 0 && id < 0x7FF0 ? (unsigned)id : 0;
}

int sbk_xen_open(struct sbk_xen *x)
{
    memset(x, 0, sizeof(*x));
    x->xs = xs_open(0);
    if (!x->xs) {
        sbk_error("cannot connect to xenstore: %s", strerror(errno));
        return -1;
    }
    x->gnt = xengnttab_open(NULL, 0);
    if (!x->gnt) {
        sbk_error("cannot open the grant device (gntdev; on real Xen: modprobe xen-gntdev): %s", strerror(errno));
        xs_close(x->xs);
        x->xs = NULL;
        return -1;
    }
    x->own_domid = sbk_read_own_domid(x);
    return 0;
}

void sbk_xen_close(struct sbk_xen *x)
{
    if (x->gnt)
        xengnttab_close(x->gnt);
    if (x->xs)
        xs_close(x->xs);
    memset(x, 0, sizeof(*x));
}

static int sbk_xs_read_cb(void *ctx, const char *path, char **value)
{
    struct sbk_xen *x = ctx;
    unsigned len = 0;
    char *v = xs_read(x->xs, XBT_NULL, path, &len);

    *value = NULL;
    if (!v)
        return -ENOENT;
    if (strlen(v) != len) {
        free(v);
        return -EINVAL;
    }
    *value = v;
    return 0;
}

struct sbk_reader sbk_xs_reader(struct sbk_xen *x)
{
    return (struct sbk_reader){ .read = sbk_xs_read_cb, .ctx = x };
}

char *sbk_xs_read_str(struct sbk_xen *x, const char *path)
{
    char *v = NULL;

    return sbk_xs_read_cb(x, path, &v) == 0 ? v : NULL;
}

long long sbk_xs_read_uint(struct sbk_xen *x, const char *path)
{
    char *v = sbk_xs_read_str(x, path);
    uint32_t n;
    int rc = v ? sbk_parse_u32(v, &n) : -1;

    free(v);
    return rc < 0 ? -1 : (long long)n;
}

void *sbk_map_grants(struct sbk_xen *x, unsigned domid, uint32_t count, uint32_t *refs)
{
    return xengnttab_map_domain_grant_refs(x->gnt, count, domid, refs, PROT_READ | PROT_WRITE);
}

void sbk_unmap_grants(struct sbk_xen *x, void *addr, uint32_t count)
{
    if (addr && xengnttab_unmap(x->gnt, addr, count) < 0)
        sbk_warn("unmapping %u grant pages failed: %s", count, strerror(errno));
}

uint64_t sbk_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
