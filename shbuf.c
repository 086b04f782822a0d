/* shbuf: the granted audio buffer and its page directory.
 * Memory ordering (reviewed for arm64, issue 15): nothing here needs a barrier of its own. Every store
 * to the shared pages (the directory below; the audio pcm_xen.c writes) happens before the request
 * that names them is pushed, and RING_PUSH_REQUESTS_AND_CHECK_NOTIFY's xen_wmb (dmb ish on arm64,
 * Linux virt_wmb) orders them before req_prod (ring.c, xring_submit). Every load of data the backend
 * wrote (capture) follows that READ's response, read after rsp_prod and xen_rmb (dmb ishld, Linux
 * virt_rmb; ring.c, xring_take_responses). Grants are 4 KiB whatever the kernel's page size. */
#include "shbuf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <alsa/asoundlib.h>
#include <xen/grant_table.h>
#include "ring.h" /* struct xensnd_page_directory, with the barrier macros ring.h needs */

/* gref[] is declared gref[1] in older headers and a flexible array in newer ones. */
#define SHBUF_REFS_PER_DIR ((SHBUF_PAGE_SIZE - offsetof(struct xensnd_page_directory, gref)) / sizeof(grant_ref_t))

unsigned shbuf_dir_pages(unsigned npages)
{
    unsigned n = (npages + SHBUF_REFS_PER_DIR - 1) / SHBUF_REFS_PER_DIR;

    return n ? n : 1;
}

static void shbuf_fill_directory(struct shbuf *sb)
{
    for (unsigned d = 0; d < sb->ndir; d++) {
        struct xensnd_page_directory *pd = (void *)((uint8_t *)sb->dir + (size_t)d * SHBUF_PAGE_SIZE);
        unsigned first = d * SHBUF_REFS_PER_DIR;
        unsigned n = sb->npages - first < SHBUF_REFS_PER_DIR ? sb->npages - first : SHBUF_REFS_PER_DIR;

        /* Shared pages, plain stores, written once before OPEN (which carries dir_refs[0]) is pushed:
         * ordered before it by xring_submit's xen_wmb (see above); never rewritten while granted. */
        pd->gref_dir_next_page = d + 1 < sb->ndir ? sb->dir_refs[d + 1] : 0; /* 0 ends the chain */
        memcpy(pd->gref, &sb->data_refs[first], n * sizeof(grant_ref_t));
    }
}

int shbuf_alloc(struct shbuf *sb, xengntshr_handle *gs, unsigned be_domid, size_t bytes, const char *label)
{
    memset(sb, 0, sizeof(*sb));
    if (!bytes || bytes > UINT32_MAX) {
        SNDERR("%s: invalid buffer size %zu", label, bytes);
        return -EINVAL;
    }
    sb->gs = gs;
    sb->bytes = bytes;
    sb->npages = (unsigned)((bytes + SHBUF_PAGE_SIZE - 1) / SHBUF_PAGE_SIZE);
    sb->ndir = shbuf_dir_pages(sb->npages);
    sb->data_refs = calloc(sb->npages, sizeof(uint32_t));
    sb->dir_refs = calloc(sb->ndir, sizeof(uint32_t));
    if (!sb->data_refs || !sb->dir_refs) {
        shbuf_free(sb);
        return -ENOMEM;
    }
    /* One call each: one contiguous mapping for the data, one for the directory. gntalloc hands out
     * zeroed pages (the tail past `bytes` stays zero; the backend never sees stale memory). */
    sb->data = xengntshr_share_pages(gs, be_domid, (int)sb->npages, sb->data_refs, 1);
    if (sb->data)
        sb->dir = xengntshr_share_pages(gs, be_domid, (int)sb->ndir, sb->dir_refs, 1);
    if (!sb->data || !sb->dir) {
        int e = errno ? errno : ENOMEM;

        SNDERR("%s: cannot grant %u buffer pages to domain %u: %s (the guest's grant limit is "
               "gntalloc's `limit` parameter, 1024 pages by default)", label, sb->npages + sb->ndir, be_domid,
               strerror(e));
        shbuf_free(sb);
        return -e;
    }
    shbuf_fill_directory(sb);
    return 0;
}

/* After CLOSE's response, or with the backend gone: unsharing while it still maps a page is safe
 * (gntalloc keeps the page until the backend unmaps it), so no ordering against the backend here. */
void shbuf_free(struct shbuf *sb)
{
    if (sb->data)
        xengntshr_unshare(sb->gs, sb->data, sb->npages);
    if (sb->dir)
        xengntshr_unshare(sb->gs, sb->dir, sb->ndir);
    free(sb->data_refs);
    free(sb->dir_refs);
    memset(sb, 0, sizeof(*sb));
}

uint32_t shbuf_directory_ref(const struct shbuf *sb)
{
    return sb->dir_refs ? sb->dir_refs[0] : 0;
}
