/* Placeholder: the broker server is being written. */
#include "xensimd.h"
#include <stddef.h>
static void br_init(unsigned n) { (void)n; }
static void *br_accept(int fd, unsigned domid, const struct ucred *peer) { (void)fd; (void)domid; (void)peer; return NULL; }
static int br_readable(void *c) { (void)c; return -1; }
static void br_close(void *c) { (void)c; }
const struct xsim_module xsim_broker_module = {
    .name = "broker", .sock_name = "xensim", .sock_type = SOCK_SEQPACKET,
    .init = br_init, .accept = br_accept, .on_readable = br_readable, .on_close = br_close,
};
