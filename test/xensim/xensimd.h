/* xensimd: the daemon of one Xen simulation. Its main loop (xensimd.c) owns every
 * socket; the modules below (xenstore, event channels + grants) own what is said on them.
 * Domain identity is the socket a connection arrived on: ROOT/dom<N>/<sock_name>. */
#ifndef XENSIMD_H
#define XENSIMD_H

#include <sys/socket.h>

#define XSIM_MAX_DOMAINS 64

struct xsim_module {
    const char *name;
    const char *sock_name;   /* socket file inside ROOT/dom<N>/ */
    int sock_type;           /* SOCK_STREAM or SOCK_SEQPACKET */
    /* Once, before any connection: the domains are 0 .. ndomains-1. */
    void (*init)(unsigned ndomains);
    /* A new connection from domain `domid`; returns its state, or NULL to refuse it. */
    void *(*accept)(int fd, unsigned domid, const struct ucred *peer);
    /* fd readable or hung up: 0 keeps the connection, -1 closes it. */
    int (*on_readable)(void *conn);
    /* Optional: 1 while the connection has queued output, then on_writable is called
     * when the fd can take more (0 keeps, -1 closes). */
    int (*wants_write)(void *conn);
    int (*on_writable)(void *conn);
    /* The connection is going away (peer closed, error, or -1 above); the loop closes fd. */
    void (*on_close)(void *conn);
};

extern const struct xsim_module xsim_xenstore_module;  /* xs_server.c */
extern const struct xsim_module xsim_broker_module;    /* broker.c */

/* Logging: -v on the command line sets xsim_verbose. */
extern int xsim_verbose;
/* Pages a domain may have shared (gntalloc's `limit`): --gntalloc-limit, default 1024. */
extern unsigned xsim_gnt_limit;
void xsim_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
