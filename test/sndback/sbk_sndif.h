/* The sndif protocol headers, with what they need from us.
 * ring.h uses xen_mb/xen_rmb/xen_wmb, which no public header defines (only libxenctrl, which a
 * backend must not need): we define them here, as __XEN_TOOLS__ code does, before including it. */
#ifndef SBK_SNDIF_H
#define SBK_SNDIF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifndef __XEN_TOOLS__
#define __XEN_TOOLS__ 1
#endif
/* Full fence, and acquire/release fences for the ring's read/write barriers. */
#define xen_mb()  __atomic_thread_fence(__ATOMIC_SEQ_CST)
#define xen_rmb() __atomic_thread_fence(__ATOMIC_ACQUIRE)
#define xen_wmb() __atomic_thread_fence(__ATOMIC_RELEASE)

#include <xen/io/sndif.h>

#define SBK_PAGE_SIZE 4096u
/* Data grant refs per page-directory page: the page minus gref_dir_next_page. */
#define SBK_REFS_PER_DIR_PAGE \
    ((SBK_PAGE_SIZE - offsetof(struct xensnd_page_directory, gref)) / sizeof(grant_ref_t))
#define SBK_NUM_OPS 10          /* XENSND_OP_OPEN .. XENSND_OP_HW_PARAM_QUERY */

#endif
