/* What libxenevtchn.so.1 and libxengnttab.so.1 (the xensim look-alikes) share: the connection
 * of one library handle to the broker in xensimd (protocol: xsim_proto.h). */
#ifndef XSIM_CLIENT_H
#define XSIM_CLIENT_H

#include "xsim_proto.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct xentoollog_logger;

/* How long a reply from the broker may take before the call fails with ETIMEDOUT. */
#define XSIM_CLIENT_TIMEOUT_MS 10000

struct xsim_client {
    int sock;                  /* SEQPACKET connection to $XENSIM_BROKER */
    bool broken;               /* a reply went missing: later calls fail with EIO */
    bool cloexec;              /* received descriptors get FD_CLOEXEC */
    bool ready;                /* HELLO answered: close says BYE */
    pid_t owner;               /* process that opened it: a forked child's close says no BYE */
    pthread_mutex_t lock;      /* one request/reply exchange at a time on sock (and `broken`) */
    struct xentoollog_logger *logger;
    const char *who;           /* "xenevtchn", "xengnttab" or "xengntshr", for messages */
};

/* Connects to $XENSIM_BROKER and says HELLO(kind). *domid gets the caller's domain; the
 * evtchn delivery pipe (if any) lands in *fd_out (else -1). Returns 0, or -1 with errno
 * (ENOENT when XENSIM_BROKER is unset), after logging why. */
int xsim_client_open(struct xsim_client *c, uint32_t kind, bool cloexec, struct xentoollog_logger *logger,
                     const char *who, uint32_t *domid, int *fd_out);

/* One exchange: sends req (len bytes, plus fd_in if >= 0), waits for the reply.
 * Returns the reply's length (>= XSIM_REP_HDR_SIZE) with rep->err == 0, or -1 with errno
 * (the broker's refusal, or EIO/ETIMEDOUT when the broker is gone or silent). Up to max_fds
 * received descriptors land in fds[], their number in *nfds; on failure none are left open. */
ssize_t xsim_client_call(struct xsim_client *c, const struct xsim_req *req, size_t len, int fd_in,
                         struct xsim_rep *rep, int *fds, unsigned max_fds, unsigned *nfds);

/* A one-way request (XSIM_OP_EV_*_ONEWAY): sent in order with the others, no reply waited for.
 * Returns 0, or -1 with errno EIO (the broker is gone, or dropped the connection after a bad
 * request) or ETIMEDOUT (its queue stayed full); later calls then fail with EIO. */
int xsim_client_send_oneway(struct xsim_client *c, const struct xsim_req *req, size_t len);

/* Closes the connection. In the opening process it first says BYE and waits (bounded) until
 * the broker has let go of what it held, so closing is synchronous as with the kernel's devices
 * (an evtchn handle other connections share loses this user only: its ports go with the last). */
void xsim_client_close(struct xsim_client *c);

/* Logs an error like the real libraries: through the logger, or to stderr if it is NULL. */
void xsim_client_log(struct xentoollog_logger *logger, const char *who, int errnoval, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
