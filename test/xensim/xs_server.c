/* Placeholder: the xenstored wire-protocol server is being written. */
#include "xensimd.h"
#include <stddef.h>
static void xs_init(unsigned n) { (void)n; }
static void *xs_accept(int fd, unsigned domid, const struct ucred *peer) { (void)fd; (void)domid; (void)peer; return NULL; }
static int xs_readable(void *c) { (void)c; return -1; }
static void xs_close(void *c) { (void)c; }
const struct xsim_module xsim_xenstore_module = {
    .name = "xenstore", .sock_name = "xenstored", .sock_type = SOCK_STREAM,
    .init = xs_init, .accept = xs_accept, .on_readable = xs_readable, .on_close = xs_close,
};
