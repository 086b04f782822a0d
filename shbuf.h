/* shbuf: a stream's audio buffer granted to the backend, and the page-directory chain that
 * lists its grant references (sndif.h, struct xensnd_page_directory). */
#ifndef XSND_SHBUF_H
#define XSND_SHBUF_H

#include <stddef.h>
#include <stdint.h>

#include <xengnttab.h>

#define SHBUF_PAGE_SIZE 4096u

struct shbuf {
    xengntshr_handle *gs;   /* shared with the card; not owned */
    /* Shared with the backend: audio (and volume) data only; the tail past `bytes` stays zero. */
    uint8_t *data;
    size_t bytes;           /* what OPEN announces as buffer_sz */
    unsigned npages;        /* ceil(bytes / 4096) */
    /* Shared with the backend read-write (snd_be maps every page RW): the directory chain. */
    void *dir;
    unsigned ndir;
    uint32_t *data_refs, *dir_refs;
};

/* Directory pages needed for n data pages: 1023 references fit in each, at least one page. */
unsigned shbuf_dir_pages(unsigned npages);

/* Grants fresh zeroed pages for `bytes` octets and the directory to domain be_domid.
 * Returns 0 or a negative errno with an SNDERR line naming `label`. */
int shbuf_alloc(struct shbuf *sb, xengntshr_handle *gs, unsigned be_domid, size_t bytes, const char *label);
/* Ends the grants. The backend may keep its mapping until it lets go; these pages are
 * never reused by us (a new OPEN gets fresh pages). */
void shbuf_free(struct shbuf *sb);
/* The reference OPEN carries: the first directory page. */
uint32_t shbuf_directory_ref(const struct shbuf *sb);

#endif
