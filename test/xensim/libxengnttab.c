/* libxengnttab.so.1 for xensim: Debian's API and symbol versions (libxengnttab.map), backed by
 * the broker in xensimd instead of /dev/xen/gntdev and /dev/xen/gntalloc. Shared pages are
 * memfds the broker creates; a mapper gets the granter's very pages (a read-only file
 * description for read-only maps). Errors are those of the Linux drivers; failures are logged
 * as the real library does. */
#include "xsim_client.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <xengnttab.h>

#define XSIM_GNTDEV_MAX_PAGES 65536u /* gntdev's `limit`: larger maps are EINVAL */

/* A mapping (gnttab) or a share (gntshr) made through a handle. */
struct xsim_gnt_area {
    uint8_t *addr;
    uint32_t count;            /* pages */
    uint32_t id;               /* gntshr: share id */
    uint8_t *live;             /* gntshr: 1 per page still shared (unshare may take part) */
    uint32_t *map_ids;         /* gnttab: the broker's id of each chunk's mapping (0: none) */
    uint32_t nchunks;
    struct xsim_gnt_area *next;
};

/* xengnttab.h names both handle types after this one struct. */
struct xengntdev_handle {
    struct xsim_client conn;
    bool sharing;              /* a xengntshr handle (else xengnttab) */
    uint32_t domid;
    pthread_mutex_t lock;      /* protects areas: calls may come from several threads */
    struct xsim_gnt_area *areas;
};

static struct xengntdev_handle *xsim_gnt_open(struct xentoollog_logger *logger, bool sharing)
{
    struct xengntdev_handle *h = calloc(1, sizeof(*h));

    if (!h)
        return NULL;
    h->sharing = sharing;
    if (xsim_client_open(&h->conn, sharing ? XSIM_KIND_GNTSHR : XSIM_KIND_GNTTAB, true, logger,
                         sharing ? "xengntshr" : "xengnttab", &h->domid, &(int){ 0 }) < 0) {
        free(h);
        return NULL;
    }
    pthread_mutex_init(&h->lock, NULL);
    return h;
}

/* Unmaps whatever of the area is still mapped. */
static void xsim_gnt_unmap_area(const struct xsim_gnt_area *a)
{
    uint32_t i = 0;

    if (!a->live) {
        munmap(a->addr, (size_t)a->count * XSIM_PAGE_SIZE);
        return;
    }
    while (i < a->count) {
        uint32_t run = 0;

        while (i + run < a->count && a->live[i + run])
            run++;
        if (run)
            munmap(a->addr + (size_t)i * XSIM_PAGE_SIZE, (size_t)run * XSIM_PAGE_SIZE);
        i += run ? run : 1;
    }
}

static void xsim_gnt_free_area(struct xsim_gnt_area *a)
{
    free(a->live);
    free(a->map_ids);
    free(a);
}

/* Closing unmaps everything the handle still has; the broker then revokes the grants (gntshr:
 * pages a peer maps stay granted and counted until it unmaps), drops the mappings (gnttab) and
 * fires the armed unmap notifications, as process exit does. */
static int xsim_gnt_close(struct xengntdev_handle *h)
{
    if (!h)
        return 0;
    while (h->areas) {
        struct xsim_gnt_area *a = h->areas;

        h->areas = a->next;
        xsim_gnt_unmap_area(a);
        xsim_gnt_free_area(a);
    }
    xsim_client_close(&h->conn);
    pthread_mutex_destroy(&h->lock);
    free(h);
    return 0;
}

static void xsim_gnt_add_area(struct xengntdev_handle *h, struct xsim_gnt_area *a)
{
    pthread_mutex_lock(&h->lock);
    a->next = h->areas;
    h->areas = a;
    pthread_mutex_unlock(&h->lock);
}

/* ---- xengnttab: mapping the grants of others ---- */

xengnttab_handle *xengnttab_open(struct xentoollog_logger *logger, unsigned open_flags)
{
    (void)open_flags;
    return xsim_gnt_open(logger, false);
}

int xengnttab_close(xengnttab_handle *xgt)
{
    return xsim_gnt_close(xgt);
}

int xengnttab_fd(xengnttab_handle *xgt)
{
    return xgt->conn.sock;
}

static void xsim_close_all(int *fds, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        close(fds[i]);
}

/* Maps one answered chunk into place: runs of consecutive pages of one fd in one mmap. */
static int xsim_gnt_place_chunk(uint8_t *at, const struct xsim_rep *rep, const int *fds, unsigned nfds,
                                int prot)
{
    uint32_t i = 0;

    while (i < rep->n) {
        const struct xsim_map_page *p = &rep->u.pages[i];
        uint32_t run = 1;

        if (p->fd_index >= nfds || p->page > UINT32_MAX / XSIM_PAGE_SIZE) {
            errno = EIO;
            return -1;
        }
        while (i + run < rep->n && rep->u.pages[i + run].fd_index == p->fd_index &&
               rep->u.pages[i + run].page == p->page + run)
            run++;
        /* Shared memory: the granter's pages themselves, live in both domains. */
        if (mmap(at + (size_t)i * XSIM_PAGE_SIZE, (size_t)run * XSIM_PAGE_SIZE, prot, MAP_SHARED | MAP_FIXED,
                 fds[p->fd_index], (off_t)p->page * XSIM_PAGE_SIZE) == MAP_FAILED)
            return -1;
        i += run;
    }
    return 0;
}

/* Asks for one chunk of at most XSIM_MAP_CHUNK refs and maps it at `at`. */
static int xsim_gnt_map_chunk(xengnttab_handle *xgt, uint8_t *at, uint32_t count, const uint32_t *domids,
                              int domid_stride, const uint32_t *refs, int prot,
                              const struct xsim_req_notify *notify, uint32_t *map_id)
{
    struct xsim_req req = { .op = XSIM_OP_TAB_MAP };
    struct xsim_rep *rep = malloc(sizeof(*rep));
    int fds[XSIM_MAP_CHUNK], err = 0;
    unsigned nfds = 0;
    ssize_t n;

    if (!rep)
        return -1;
    req.u.map.count = count;
    req.u.map.writable = (prot & PROT_WRITE) != 0;
    req.u.map.notify = *notify;
    for (uint32_t i = 0; i < count; i++)
        req.u.map.refs[i] = (struct xsim_map_ref){ domids[i * domid_stride], refs[i] };
    n = xsim_client_call(&xgt->conn, &req, XSIM_REQ_MAP_SIZE(count), -1, rep, fds, XSIM_MAP_CHUNK, &nfds);
    if (n < 0) {
        err = errno;
    } else if ((size_t)n != XSIM_REP_HDR_SIZE + count * sizeof(struct xsim_map_page) || rep->n != count) {
        err = EIO;
    } else {
        *map_id = rep->val;
        if (xsim_gnt_place_chunk(at, rep, fds, nfds, prot) < 0)
            err = errno;
    }
    xsim_close_all(fds, nfds);
    free(rep);
    errno = err;
    return err ? -1 : 0;
}

/* Tells the broker the chunks' mappings are gone (gntdev's unmap): armed notifications fire and
 * the pages stop holding their grants. */
static void xsim_gnt_unmap_chunks(xengnttab_handle *xgt, const uint32_t *ids, uint32_t n)
{
    struct xsim_rep *rep = malloc(sizeof(*rep));

    for (uint32_t i = 0; i < n && rep; i++) {
        struct xsim_req req = { .op = XSIM_OP_TAB_UNMAP, .u.unmap = { ids[i] } };

        if (ids[i])
            xsim_client_call(&xgt->conn, &req, XSIM_REQ_SIZE(unmap), -1, rep, NULL, 0, NULL);
    }
    free(rep);
}

static void *xsim_gnt_map(xengnttab_handle *xgt, uint32_t count, const uint32_t *domids, int domid_stride,
                          const uint32_t *refs, int prot, uint32_t notify_offset, evtchn_port_t notify_port)
{
    struct xsim_req_notify none = { UINT32_MAX, XSIM_NO_PORT }, notify = { notify_offset, notify_port };
    uint32_t nchunks = (count + XSIM_MAP_CHUNK - 1) / XSIM_MAP_CHUNK, *ids = NULL;
    struct xsim_gnt_area *a;
    uint8_t *area;
    int err;

    if (!xgt || xgt->sharing || count == 0 || count > XSIM_GNTDEV_MAX_PAGES || !refs || !domids) {
        errno = EINVAL;
        if (xgt)
            xsim_client_log(xgt->conn.logger, "xengnttab", EINVAL, "ioctl MAP_GRANT_REF failed");
        return NULL;
    }
    a = calloc(1, sizeof(*a));
    ids = calloc(nchunks, sizeof(*ids));
    /* Reserve the whole range first so the chunks land contiguously. */
    area = mmap(NULL, (size_t)count * XSIM_PAGE_SIZE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (!a || !ids || area == MAP_FAILED) {
        err = ENOMEM;
        goto fail;
    }
    for (uint32_t done = 0; done < count; done += XSIM_MAP_CHUNK) {
        uint32_t chunk = count - done < XSIM_MAP_CHUNK ? count - done : XSIM_MAP_CHUNK;

        if (xsim_gnt_map_chunk(xgt, area + (size_t)done * XSIM_PAGE_SIZE, chunk, domids + done * domid_stride,
                               domid_stride, refs + done, prot, count == 1 ? &notify : &none,
                               &ids[done / XSIM_MAP_CHUNK]) < 0) {
            err = errno;
            goto fail;
        }
    }
    /* As gntdev on PV (VM_DONTCOPY): a child does not inherit grant mappings. */
    madvise(area, (size_t)count * XSIM_PAGE_SIZE, MADV_DONTFORK);
    *a = (struct xsim_gnt_area){ .addr = area, .count = count, .map_ids = ids, .nchunks = nchunks };
    xsim_gnt_add_area(xgt, a);
    return area;

fail:
    if (area != MAP_FAILED)
        munmap(area, (size_t)count * XSIM_PAGE_SIZE);
    if (ids)
        xsim_gnt_unmap_chunks(xgt, ids, nchunks);
    free(ids);
    free(a);
    xsim_client_log(xgt->conn.logger, "xengnttab", err, "mapping %u grant refs failed", count);
    errno = err;
    return NULL;
}

void *xengnttab_map_grant_ref(xengnttab_handle *xgt, uint32_t domid, uint32_t ref, int prot)
{
    return xsim_gnt_map(xgt, 1, &domid, 0, &ref, prot, UINT32_MAX, XSIM_NO_PORT);
}

void *xengnttab_map_grant_refs(xengnttab_handle *xgt, uint32_t count, uint32_t *domids, uint32_t *refs, int prot)
{
    return xsim_gnt_map(xgt, count, domids, 1, refs, prot, UINT32_MAX, XSIM_NO_PORT);
}

void *xengnttab_map_domain_grant_refs(xengnttab_handle *xgt, uint32_t count, uint32_t domid, uint32_t *refs,
                                      int prot)
{
    return xsim_gnt_map(xgt, count, &domid, 0, refs, prot, UINT32_MAX, XSIM_NO_PORT);
}

void *xengnttab_map_grant_ref_notify(xengnttab_handle *xgt, uint32_t domid, uint32_t ref, int prot,
                                     uint32_t notify_offset, evtchn_port_t notify_port)
{
    return xsim_gnt_map(xgt, 1, &domid, 0, &ref, prot, notify_offset, notify_port);
}

/* Takes the area starting exactly at addr out of the list, or returns NULL. */
static struct xsim_gnt_area *xsim_gnt_take_area(struct xengntdev_handle *h, const void *addr, uint32_t count)
{
    struct xsim_gnt_area *a = NULL;

    pthread_mutex_lock(&h->lock);
    for (struct xsim_gnt_area **pp = &h->areas; *pp; pp = &(*pp)->next)
        if ((*pp)->addr == addr && (*pp)->count == count) {
            a = *pp;
            *pp = a->next;
            break;
        }
    pthread_mutex_unlock(&h->lock);
    return a;
}

/* Only a whole earlier mapping can be unmapped (gntdev: the offset's map must match count). */
int xengnttab_unmap(xengnttab_handle *xgt, void *start_address, uint32_t count)
{
    struct xsim_gnt_area *a;

    if (!xgt || xgt->sharing || !start_address || !(a = xsim_gnt_take_area(xgt, start_address, count))) {
        errno = EINVAL;
        return -1;
    }
    xsim_gnt_unmap_area(a);
    xsim_gnt_unmap_chunks(xgt, a->map_ids, a->nchunks);
    xsim_gnt_free_area(a);
    return 0;
}

/* Accepted and ignored: the broker's own bounds apply. */
int xengnttab_set_max_grants(xengnttab_handle *xgt, uint32_t nr_grants)
{
    (void)xgt;
    (void)nr_grants;
    return 0;
}

/* Not simulated beyond an empty batch: grant copy needs the hypervisor to copy between domains.
 * As the real library, nothing to copy is a success. */
int xengnttab_grant_copy(xengnttab_handle *xgt, uint32_t count, xengnttab_grant_copy_segment_t *segs)
{
    (void)xgt;
    (void)segs;
    if (count == 0)
        return 0;
    errno = ENOSYS;
    return -1;
}

/* No dma-buf: ENOTTY, as gntdev answers in a kernel built without CONFIG_XEN_GNTDEV_DMABUF
 * (Debian's). */
int xengnttab_dmabuf_exp_from_refs(xengnttab_handle *xgt, uint32_t domid, uint32_t flags, uint32_t count,
                                   const uint32_t *refs, uint32_t *fd)
{
    (void)xgt, (void)domid, (void)flags, (void)count, (void)refs, (void)fd;
    errno = ENOTTY;
    return -1;
}

int xengnttab_dmabuf_exp_wait_released(xengnttab_handle *xgt, uint32_t fd, uint32_t wait_to_ms)
{
    (void)xgt, (void)fd, (void)wait_to_ms;
    errno = ENOTTY;
    return -1;
}

int xengnttab_dmabuf_imp_to_refs(xengnttab_handle *xgt, uint32_t domid, uint32_t fd, uint32_t count,
                                 uint32_t *refs)
{
    (void)xgt, (void)domid, (void)fd, (void)count, (void)refs;
    errno = ENOTTY;
    return -1;
}

int xengnttab_dmabuf_imp_release(xengnttab_handle *xgt, uint32_t fd)
{
    (void)xgt, (void)fd;
    errno = ENOTTY;
    return -1;
}

/* ---- xengntshr: sharing own pages ---- */

xengntshr_handle *xengntshr_open(struct xentoollog_logger *logger, unsigned open_flags)
{
    (void)open_flags;
    return xsim_gnt_open(logger, true);
}

int xengntshr_close(xengntshr_handle *xgs)
{
    return xsim_gnt_close(xgs);
}

int xengntshr_fd(xengntshr_handle *xgs)
{
    return xgs->conn.sock;
}

static int xsim_gnt_unshare_call(xengntshr_handle *xgs, uint32_t id, uint32_t first, uint32_t count,
                                 bool *gone)
{
    struct xsim_req req = { .op = XSIM_OP_SHR_UNSHARE, .u.unshare = { id, first, count } };
    struct xsim_rep rep;

    if (xsim_client_call(&xgs->conn, &req, XSIM_REQ_SIZE(unshare), -1, &rep, NULL, 0, NULL) < 0)
        return -1;
    *gone = rep.flags & XSIM_REP_GONE;
    return 0;
}

/* The broker makes fresh zeroed pages (a size-sealed memfd) and grants them to domid. */
static void *xsim_gnt_share(xengntshr_handle *xgs, uint32_t domid, int count, uint32_t *refs, int writable,
                            uint32_t notify_offset, evtchn_port_t notify_port)
{
    struct xsim_req req = { .op = XSIM_OP_SHR_SHARE };
    struct xsim_gnt_area *a = NULL;
    struct xsim_rep *rep = NULL;
    unsigned nfds = 0;
    void *area = MAP_FAILED;
    int fd = -1, err;
    bool gone;
    ssize_t n;

    if (!xgs || !xgs->sharing || count <= 0 || !refs) {
        err = EINVAL;
        goto fail;
    }
    req.u.share = (struct xsim_req_share){ .domid = domid, .count = (uint32_t)count, .writable = writable != 0,
                                           .notify = { notify_offset, notify_port } };
    rep = malloc(sizeof(*rep));
    a = calloc(1, sizeof(*a));
    if (!rep || !a || !(a->live = malloc((size_t)count))) {
        err = ENOMEM;
        goto fail;
    }
    n = xsim_client_call(&xgs->conn, &req, XSIM_REQ_SIZE(share), -1, rep, &fd, 1, &nfds);
    if (n < 0) {
        err = errno;
        goto fail;
    }
    if (nfds != 1 || rep->n != (uint32_t)count || (size_t)n != XSIM_REP_HDR_SIZE + (size_t)count * sizeof(uint32_t)) {
        err = EIO;
        goto fail_revoke;
    }
    /* Shared memory: the pages every mapper of these grants sees too. */
    area = mmap(NULL, (size_t)count * XSIM_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (area == MAP_FAILED) {
        err = errno;
        goto fail_revoke;
    }
    close(fd);
    memcpy(refs, rep->u.refs, (size_t)count * sizeof(*refs));
    a->addr = area;
    a->count = (uint32_t)count;
    a->id = rep->val;
    memset(a->live, 1, (size_t)count);
    xsim_gnt_add_area(xgs, a);
    free(rep);
    return area;

fail_revoke:
    xsim_gnt_unshare_call(xgs, rep->val, 0, (uint32_t)count, &gone);
fail:
    if (nfds)
        close(fd);
    if (a)
        xsim_gnt_free_area(a);
    free(rep);
    if (xgs)
        xsim_client_log(xgs->conn.logger, "xengntshr", err, "sharing %d pages with dom%u failed", count, domid);
    errno = err;
    return NULL;
}

void *xengntshr_share_pages(xengntshr_handle *xgs, uint32_t domid, int count, uint32_t *refs, int writable)
{
    return xsim_gnt_share(xgs, domid, count, refs, writable, UINT32_MAX, XSIM_NO_PORT);
}

void *xengntshr_share_page_notify(xengntshr_handle *xgs, uint32_t domid, uint32_t *ref, int writable,
                                  uint32_t notify_offset, evtchn_port_t notify_port)
{
    return xsim_gnt_share(xgs, domid, 1, ref, writable, notify_offset, notify_port);
}

/* The area of the handle holding the page at addr, or NULL; *page gets its index there. */
static struct xsim_gnt_area *xsim_gnt_area_at(const struct xengntdev_handle *h, const uint8_t *addr,
                                              uint32_t *page)
{
    for (struct xsim_gnt_area *a = h->areas; a; a = a->next)
        if (addr >= a->addr && addr < a->addr + (size_t)a->count * XSIM_PAGE_SIZE) {
            *page = (uint32_t)((size_t)(addr - a->addr) / XSIM_PAGE_SIZE);
            return a;
        }
    return NULL;
}

/* Where the first area starting after addr begins, or end if none does before it. */
static const uint8_t *xsim_gnt_next_area(const struct xengntdev_handle *h, const uint8_t *addr,
                                         const uint8_t *end)
{
    for (const struct xsim_gnt_area *a = h->areas; a; a = a->next)
        if (a->addr > addr && a->addr < end)
            end = a->addr;
    return end;
}

/* Whether any page of [addr, addr + len) is mapped in this process: reserving the range without
 * replacing anything fails (EEXIST) exactly then. Any other failure counts as mapped. */
static bool xsim_range_has_mappings(const uint8_t *addr, size_t len)
{
    void *p = mmap((void *)addr, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE,
                   -1, 0);

    if (p == MAP_FAILED)
        return true;
    munmap(p, len);
    return p != addr; /* a kernel without MAP_FIXED_NOREPLACE took addr as a hint */
}

/* Xen's unshare is a plain munmap: pages already unshared are no error, but it would silently
 * unmap any other memory in the range too. Stricter here: every page of [start, end) must be a
 * still-shared page of this handle or not mapped at all. */
static bool xsim_gnt_range_is_shares_or_holes(const struct xengntdev_handle *h, const uint8_t *start,
                                              const uint8_t *end)
{
    const uint8_t *pos = start;

    while (pos < end) {
        uint32_t page = 0;
        const struct xsim_gnt_area *a = xsim_gnt_area_at(h, pos, &page);
        const uint8_t *gap_end;

        if (a && a->live[page]) {
            pos += XSIM_PAGE_SIZE;
            continue;
        }
        gap_end = a ? pos + XSIM_PAGE_SIZE : xsim_gnt_next_area(h, pos, end);
        if (xsim_range_has_mappings(pos, (size_t)(gap_end - pos)))
            return false;
        pos = gap_end;
    }
    return true;
}

/* Revokes and unmaps the still-shared pages of area a inside [start, end), a run at a time.
 * *gone: the broker says no page of the share is left. */
static int xsim_gnt_unshare_in_area(xengntshr_handle *xgs, struct xsim_gnt_area *a, const uint8_t *start,
                                    const uint8_t *end, bool *gone)
{
    const uint8_t *a_end = a->addr + (size_t)a->count * XSIM_PAGE_SIZE;
    const uint8_t *lo = start > a->addr ? start : a->addr, *hi = end < a_end ? end : a_end;
    uint32_t i, stop;

    *gone = false;
    if (lo >= hi)
        return 0;
    i = (uint32_t)((size_t)(lo - a->addr) / XSIM_PAGE_SIZE);
    stop = (uint32_t)((size_t)(hi - a->addr) / XSIM_PAGE_SIZE);
    while (i < stop) {
        uint32_t run = 0;

        while (i + run < stop && a->live[i + run])
            run++;
        if (run) {
            if (xsim_gnt_unshare_call(xgs, a->id, i, run, gone) < 0)
                return -1;
            munmap(a->addr + (size_t)i * XSIM_PAGE_SIZE, (size_t)run * XSIM_PAGE_SIZE);
            memset(a->live + i, 0, run);
        }
        i += run ? run : 1;
    }
    return 0;
}

/* Revokes the grants (no new maps) and unmaps here; mappers keep the pages they mapped. As the
 * munmap it is on Xen: any page-aligned range, over several shares or pages already unshared. */
int xengntshr_unshare(xengntshr_handle *xgs, void *start_address, uint32_t count)
{
    const uint8_t *start = start_address, *end;
    size_t len = (size_t)count * XSIM_PAGE_SIZE;
    int rc = 0;

    if (!xgs || !xgs->sharing || count == 0 || (uintptr_t)start % XSIM_PAGE_SIZE ||
        (uintptr_t)start > UINTPTR_MAX - len) {
        errno = EINVAL;
        return -1;
    }
    end = start + len;
    pthread_mutex_lock(&xgs->lock);
    if (!xsim_gnt_range_is_shares_or_holes(xgs, start, end)) {
        xsim_client_log(xgs->conn.logger, "xengntshr", EINVAL,
                        "unshare of %u pages at %p: the range holds memory that is not shared by this handle",
                        count, start_address);
        errno = EINVAL;
        rc = -1;
    }
    for (struct xsim_gnt_area **pp = &xgs->areas; *pp && rc == 0;) {
        struct xsim_gnt_area *a = *pp;
        bool gone;

        rc = xsim_gnt_unshare_in_area(xgs, a, start, end, &gone);
        if (gone) {
            *pp = a->next;
            xsim_gnt_free_area(a);
        } else {
            pp = &a->next;
        }
    }
    pthread_mutex_unlock(&xgs->lock);
    return rc;
}
