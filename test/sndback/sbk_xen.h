/* sndback's handles on Xen (xenstore, grant mapping) and small helpers around them.
 * Only libxenstore, libxenevtchn and libxengnttab: the same binary runs in dom0 and on xensim. */
#ifndef SBK_XEN_H
#define SBK_XEN_H

#include "sbk_config.h"

#include <stdbool.h>
#include <stdint.h>
#include <xenevtchn.h>
#include <xengnttab.h>
#include <xenstore.h>

struct sbk_xen {
    struct xs_handle *xs;
    xengnttab_handle *gnt;      /* one handle maps every frontend's pages */
    unsigned own_domid;
};

int sbk_xen_open(struct sbk_xen *x);            /* 0, or -1 (logged) */
void sbk_xen_close(struct sbk_xen *x);

/* The sbk_reader over xenstore (values with an embedded NUL are -EINVAL). */
struct sbk_reader sbk_xs_reader(struct sbk_xen *x);
/* Reads a node as a string: malloc'd, NULL when absent or not a plain string. */
char *sbk_xs_read_str(struct sbk_xen *x, const char *path);
/* Reads a node as a whole-string decimal; -1 when absent or malformed. */
long long sbk_xs_read_uint(struct sbk_xen *x, const char *path);

/* Maps `count` grant refs of domain `domid` read-write into one contiguous range; NULL on failure. */
void *sbk_map_grants(struct sbk_xen *x, unsigned domid, uint32_t count, uint32_t *refs);
void sbk_unmap_grants(struct sbk_xen *x, void *addr, uint32_t count);

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t sbk_now_ns(void);

#endif
