/* xs_server.c: the xenstore half of xensimd. A xenstored that speaks the real wire
 * protocol (xen/io/xs_wire.h) on ROOT/dom<N>/xenstored, so that Debian's libxenstore and
 * xenstore-* tools work against it. The domain of a connection is the socket it came in on.
 *
 * Semantics follow xenstored 4.17 (Debian 12's, the one real Xen runs here): one tree for
 * the host, per-domain permissions, watches, generation-checked transactions, quotas for
 * unprivileged domains. Everything a client sends is untrusted: each message is read into
 * this connection's own buffer, bounded by XENSTORE_PAYLOAD_MAX, then parsed.
 * test/xensim/README.md lists where this is stricter or looser than the real daemon. */
#include "xensimd.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <xen/io/xs_wire.h>

#define XSS_HDR_LEN sizeof(struct xsd_sockmsg)

/* Quotas of unprivileged domains: xenstored 4.17's defaults. */
#define XSS_QUOTA_NODES      1000  /* nodes owned by one domain */
#define XSS_QUOTA_WATCHES    128   /* watches of one domain, all connections */
#define XSS_QUOTA_TXNS       10    /* open transactions per connection */
#define XSS_QUOTA_TXN_NODES  1024  /* nodes one transaction may touch */
#define XSS_QUOTA_NODE_SIZE  2048  /* a node's record size (xss_node_size) must stay below */
#define XSS_QUOTA_PERMS      5     /* permission entries per node */

/* dom0 has no quotas in xenstored; these only keep a runaway client's memory bounded. */
#define XSS_PRIV_MAX_WATCHES   1024
#define XSS_PRIV_MAX_TXNS      64
#define XSS_PRIV_MAX_TXN_NODES 16384
#define XSS_MAX_NODES_TOTAL    100000  /* the whole store, any domain */

/* Output queue per connection: watch events are dropped above the first bound (as
 * xenstored drops them over quota); a client whose replies pile up past the second
 * is not reading at all and is disconnected. */
#define XSS_OUT_EVENT_LIMIT (512u * 1024)
#define XSS_OUT_LIMIT       (1024u * 1024)
#define XSS_BATCH 32               /* requests served per wake-up, so no client starves others */

#define XSS_DOMID_SELF 0x7FF0u     /* DOMID_SELF in xen.h */
#define XSS_PATH_BUF (XENSTORE_PAYLOAD_MAX + 64)

/* ---- small helpers ----------------------------------------------------------------------- */

/* Out of memory cannot be caused by a client (every client is bounded): give up loudly. */
static void *xss_alloc(size_t size)
{
    void *p = calloc(1, size ? size : 1);

    if (!p) {
        xsim_log("xenstore: out of memory");
        abort();
    }
    return p;
}

static void *xss_memdup(const void *src, size_t len)
{
    void *p = xss_alloc(len);

    if (len)
        memcpy(p, src, len);
    return p;
}

static char *xss_strdup(const char *s)
{
    return xss_memdup(s, strlen(s) + 1);
}

/* Number of NUL-terminated strings in buf[0..len) (bytes after the last NUL do not count). */
static unsigned xss_count_strings(const char *buf, uint32_t len)
{
    unsigned n = 0;

    for (uint32_t i = 0; i < len; i++)
        n += buf[i] == '\0';
    return n;
}

/* "/a/b" -> "/a", "/a" -> "/", "/" -> "/" (malloc'd). */
static char *xss_parent_path(const char *path)
{
    const char *slash = strrchr(path, '/');
    size_t len = slash && slash != path ? (size_t)(slash - path) : 1;
    char *p = xss_memdup(path, len + 1);

    p[len] = '\0';
    return p;
}

static char *xss_child_path(const char *parent, const char *name)
{
    size_t plen = strcmp(parent, "/") ? strlen(parent) : 0, nlen = strlen(name);
    char *p = xss_alloc(plen + nlen + 2);

    memcpy(p, parent, plen);
    p[plen] = '/';
    memcpy(p + plen + 1, name, nlen + 1);
    return p;
}

static const char *xss_basename(const char *path)
{
    return strrchr(path, '/') + 1;
}

static const char *xss_errno_name(int err)
{
    for (size_t i = 0; i < sizeof(xsd_errors) / sizeof(xsd_errors[0]); i++)
        if (xsd_errors[i].errnum == err)
            return xsd_errors[i].errstring;
    return "EINVAL";   /* as xenstored does for an untranslatable error */
}

/* ---- string-keyed hash map --------------------------------------------------------------- */

struct xss_map_ent {
    char *key;
    void *val;
    struct xss_map_ent *next;
};

struct xss_map {
    struct xss_map_ent **buckets;
    size_t nbuckets, count;
};

static size_t xss_hash(const char *s)
{
    size_t h = 2166136261u;

    while (*s)
        h = (h ^ (unsigned char)*s++) * 16777619u;
    return h;
}

/* The link that points (or would point) to key's entry; the map has buckets. */
static struct xss_map_ent **xss_map_slot(const struct xss_map *m, const char *key)
{
    struct xss_map_ent **e = &m->buckets[xss_hash(key) % m->nbuckets];

    while (*e && strcmp((*e)->key, key))
        e = &(*e)->next;
    return e;
}

static void *xss_map_get(const struct xss_map *m, const char *key)
{
    struct xss_map_ent **e;

    if (!m->nbuckets)
        return NULL;
    e = xss_map_slot(m, key);
    return *e ? (*e)->val : NULL;
}

static void xss_map_grow(struct xss_map *m)
{
    size_t n = m->nbuckets ? 2 * m->nbuckets : 64;
    struct xss_map_ent **b = xss_alloc(n * sizeof(*b));

    for (size_t i = 0; i < m->nbuckets; i++) {
        struct xss_map_ent *e = m->buckets[i], *next;

        for (; e; e = next) {
            next = e->next;
            e->next = b[xss_hash(e->key) % n];
            b[xss_hash(e->key) % n] = e;
        }
    }
    free(m->buckets);
    m->buckets = b;
    m->nbuckets = n;
}

/* Sets key to val; returns the value it replaces (NULL if the key was new). */
static void *xss_map_set(struct xss_map *m, const char *key, void *val)
{
    struct xss_map_ent **slot, *e;
    void *old;

    if (m->count >= m->nbuckets)
        xss_map_grow(m);
    slot = xss_map_slot(m, key);
    if (*slot) {
        old = (*slot)->val;
        (*slot)->val = val;
        return old;
    }
    e = xss_alloc(sizeof(*e));
    e->key = xss_strdup(key);
    e->val = val;
    *slot = e;
    m->count++;
    return NULL;
}

/* Removes key; returns its value (NULL if absent). */
static void *xss_map_remove(struct xss_map *m, const char *key)
{
    struct xss_map_ent **slot, *e;
    void *val;

    if (!m->nbuckets || !*(slot = xss_map_slot(m, key)))
        return NULL;
    e = *slot;
    *slot = e->next;
    val = e->val;
    free(e->key);
    free(e);
    m->count--;
    return val;
}

/* Frees the map itself; the values belong to the caller. */
static void xss_map_clear(struct xss_map *m)
{
    for (size_t i = 0; i < m->nbuckets; i++) {
        struct xss_map_ent *e = m->buckets[i], *next;

        for (; e; e = next) {
            next = e->next;
            free(e->key);
            free(e);
        }
    }
    free(m->buckets);
    *m = (struct xss_map){ 0 };
}

/* ---- nodes and permissions --------------------------------------------------------------- */

enum { XSS_PERM_READ = 1, XSS_PERM_WRITE = 2, XSS_PERM_OWNER = 8 };

struct xss_perm {
    unsigned int id;        /* domain */
    unsigned char access;   /* XSS_PERM_READ | XSS_PERM_WRITE */
    bool ignored;           /* names a domain that does not exist: kept, never matches */
};

struct xss_node {
    uint64_t gen;                 /* changes on every change of this node (DIRECTORY_PART, commit check) */
    unsigned nperms;
    struct xss_perm *perms;       /* [0] = owner, and the access of every domain not listed */
    uint32_t datalen;
    char *data;                   /* bytes, may contain NULs */
    uint32_t childlen;
    char *children;               /* child names, each NUL-terminated, in creation order */
};

static struct xss_node *xss_node_new(const struct xss_perm *perms, unsigned nperms)
{
    struct xss_node *n = xss_alloc(sizeof(*n));

    n->nperms = nperms;
    n->perms = xss_memdup(perms, nperms * sizeof(*perms));
    return n;
}

static struct xss_node *xss_node_dup(const struct xss_node *src)
{
    struct xss_node *n = xss_node_new(src->perms, src->nperms);

    n->gen = src->gen;
    n->datalen = src->datalen;
    n->data = xss_memdup(src->data, src->datalen);
    n->childlen = src->childlen;
    n->children = xss_memdup(src->children, src->childlen);
    return n;
}

static void xss_node_free(struct xss_node *n)
{
    if (!n)
        return;
    free(n->perms);
    free(n->data);
    free(n->children);
    free(n);
}

static void xss_node_set_data(struct xss_node *n, const char *data, uint32_t len)
{
    free(n->data);
    n->data = xss_memdup(data, len);
    n->datalen = len;
}

static void xss_node_add_child(struct xss_node *n, const char *name)
{
    size_t len = strlen(name) + 1;
    char *c = xss_alloc(n->childlen + len);

    if (n->childlen)
        memcpy(c, n->children, n->childlen);
    memcpy(c + n->childlen, name, len);
    free(n->children);
    n->children = c;
    n->childlen += len;
}

static void xss_node_remove_child(struct xss_node *n, const char *name)
{
    for (uint32_t off = 0; off < n->childlen;) {
        size_t len = strlen(n->children + off) + 1;

        if (!strcmp(n->children + off, name)) {
            memmove(n->children + off, n->children + off + len, n->childlen - off - len);
            n->childlen -= len;
            return;
        }
        off += len;
    }
}

/* The size xenstored 4.17 accounts for a node record (header, 8 bytes per permission,
 * data, children); unprivileged domains must keep it below XSS_QUOTA_NODE_SIZE. */
static size_t xss_node_size(const struct xss_node *n)
{
    return 24 + 8 * (size_t)n->nperms + n->datalen + n->childlen;
}

static unsigned xss_owner(const struct xss_node *n)
{
    return n->perms[0].id;
}

/* What domain `domid` may do with a node of these permissions (xenstored's perm_for_conn). */
static unsigned xss_perm_for(unsigned domid, const struct xss_perm *p, unsigned n)
{
    if (domid == 0 || p[0].id == domid)
        return XSS_PERM_READ | XSS_PERM_WRITE | XSS_PERM_OWNER;
    for (unsigned i = 1; i < n; i++)
        if (!p[i].ignored && p[i].id == domid)
            return p[i].access;
    return p[0].access;
}

static unsigned xss_node_perm_for(unsigned domid, const struct xss_node *n)
{
    return xss_perm_for(domid, n->perms, n->nperms);
}

/* ---- the store --------------------------------------------------------------------------- */

struct xss_domain {
    unsigned nodes;     /* nodes it owns in the committed store */
    unsigned watches;   /* over all its connections */
};

static struct xss_map xss_db;                /* path -> struct xss_node *: the committed tree */
static uint64_t xss_generation;              /* last generation handed out */
static unsigned long xss_total_nodes;
static struct xss_domain *xss_domains;
static unsigned xss_ndomains;

/* Watch-only nodes: they hold permissions and nothing else (xenstored's special nodes). */
struct xss_special {
    const char *name;
    struct xss_perm *perms;
    unsigned nperms;
};
static struct xss_special xss_specials[] = { { "@releaseDomain", NULL, 0 }, { "@introduceDomain", NULL, 0 } };

static void xss_count_owner(const struct xss_node *n, int delta)
{
    if (xss_owner(n) < xss_ndomains)
        xss_domains[xss_owner(n)].nodes += delta;
}

static const struct xss_node *xss_db_get(const char *path)
{
    return xss_map_get(&xss_db, path);
}

/* Stores n (taken over) at path with a new generation. */
static void xss_db_store(const char *path, struct xss_node *n)
{
    struct xss_node *old;

    n->gen = ++xss_generation;
    xss_count_owner(n, 1);
    old = xss_map_set(&xss_db, path, n);
    if (old)
        xss_count_owner(old, -1);
    else
        xss_total_nodes++;
    xss_node_free(old);
}

static void xss_db_delete(const char *path)
{
    struct xss_node *old = xss_map_remove(&xss_db, path);

    if (old) {
        xss_count_owner(old, -1);
        xss_total_nodes--;
        xss_node_free(old);
    }
}

/* ---- connections, transactions, watches -------------------------------------------------- */

/* One node a transaction has touched: its state when first seen (commit fails with
 * EAGAIN if the store has changed it since) and the transaction's private version. */
struct xss_access {
    char *path;
    bool existed;
    uint64_t base_gen;
    struct xss_perm *old_perms;   /* permissions when first seen, for watch checks at commit */
    unsigned old_nperms;
    struct xss_node *node;        /* the transaction's view; NULL = absent */
    bool modified;
    bool fire, fire_subtree;      /* watch event due at commit */
    struct xss_access *next;      /* in order of first access */
};

struct xss_txn {
    uint32_t id;
    struct xss_map accesses;      /* path -> struct xss_access * */
    struct xss_access *first, *last;
    unsigned naccesses;
    int own_delta;                /* change to the nodes owned by the connection's domain */
    bool created;                 /* created a node: commit re-checks the node quota */
    bool failed;                  /* an access was refused: commit is refused too */
    struct xss_txn *next;
};

struct xss_watch {
    char *path;                   /* canonical (absolute or @special) */
    char *token;
    size_t rel_off;               /* strip this much from event paths: registered relative */
    struct xss_watch *next;
};

struct xss_outmsg {
    struct xss_outmsg *next;
    bool is_event;
    size_t len, sent;
    unsigned char bytes[];        /* header + payload */
};

struct xss_conn {
    int fd;
    unsigned domid;
    struct xss_conn *next;        /* in xss_conns */
    /* The request being received: header, payload, and one guard NUL. */
    struct xsd_sockmsg in_hdr;
    char in_body[XENSTORE_PAYLOAD_MAX + 1];
    size_t in_used;               /* bytes of header + body received */
    struct xss_outmsg *out_head, *out_tail;
    size_t out_bytes;
    struct xss_watch *watches;
    unsigned nwatches;
    struct xss_txn *txns;
    unsigned ntxns;
    uint32_t next_txid;
    bool broken;                  /* close at the next callback */
};

static struct xss_conn *xss_conns;   /* every open connection: watches fire across them */

static bool xss_privileged(const struct xss_conn *c)
{
    return c->domid == 0;
}

/* One request being served. */
struct xss_req {
    struct xss_conn *conn;
    struct xsd_sockmsg hdr;
    const char *payload;          /* hdr.len bytes, followed by a guard NUL */
    struct xss_txn *txn;          /* NULL outside a transaction */
    const char *result;           /* for the -v log */
};

/* ---- output ------------------------------------------------------------------------------ */

static void xss_enqueue(struct xss_conn *c, const struct xsd_sockmsg *hdr, const void *body,
                        bool is_event)
{
    struct xss_outmsg *m = xss_alloc(sizeof(*m) + XSS_HDR_LEN + hdr->len);

    m->is_event = is_event;
    m->len = XSS_HDR_LEN + hdr->len;
    memcpy(m->bytes, hdr, XSS_HDR_LEN);
    if (hdr->len)
        memcpy(m->bytes + XSS_HDR_LEN, body, hdr->len);
    if (c->out_tail)
        c->out_tail->next = m;
    else
        c->out_head = m;
    c->out_tail = m;
    c->out_bytes += m->len;
}

static void xss_send(struct xss_req *r, uint32_t type, const void *body, uint32_t len)
{
    struct xsd_sockmsg hdr = { .type = type, .req_id = r->hdr.req_id, .tx_id = r->hdr.tx_id, .len = len };

    if (r->conn->out_bytes + XSS_HDR_LEN + len > XSS_OUT_LIMIT) {
        xsim_log("xenstore: dom%u does not read its replies (%zu bytes queued), closing",
                 r->conn->domid, r->conn->out_bytes);
        r->conn->broken = true;
        return;
    }
    xss_enqueue(r->conn, &hdr, body, false);
}

/* Replies to r; a reply too long for the protocol becomes E2BIG, as in xenstored. */
static int xss_reply(struct xss_req *r, const void *body, uint32_t len)
{
    if (len > XENSTORE_PAYLOAD_MAX)
        return E2BIG;
    xss_send(r, r->hdr.type, body, len);
    r->result = "OK";
    return 0;
}

static int xss_ack(struct xss_req *r)
{
    return xss_reply(r, "OK", 3);
}

static void xss_reply_error(struct xss_req *r, int err)
{
    const char *name = xss_errno_name(err);

    xss_send(r, XS_ERROR, name, (uint32_t)strlen(name) + 1);
    r->result = name;
}

static bool xss_event_queued(const struct xss_conn *c, const char *body, uint32_t len)
{
    for (const struct xss_outmsg *m = c->out_head; m; m = m->next)
        if (m->is_event && m->len == XSS_HDR_LEN + len && !memcmp(m->bytes + XSS_HDR_LEN, body, len))
            return true;
    return false;
}

static void xss_send_event(struct xss_conn *c, const char *path, const char *token)
{
    size_t plen = strlen(path) + 1, tlen = strlen(token) + 1;
    struct xsd_sockmsg hdr = { .type = XS_WATCH_EVENT, .len = (uint32_t)(plen + tlen) };
    char *body;

    if (plen + tlen > XENSTORE_PAYLOAD_MAX)
        return;   /* xenstored does not send over-long events either */
    body = xss_alloc(plen + tlen);
    memcpy(body, path, plen);
    memcpy(body + plen, token, tlen);
    /* Like xenstored: an identical event still waiting in the queue is not repeated. */
    if (xss_event_queued(c, body, hdr.len)) {
        free(body);
        return;
    }
    if (c->out_bytes + XSS_HDR_LEN + hdr.len > XSS_OUT_EVENT_LIMIT) {
        if (xsim_verbose)
            xsim_log("xenstore: dom%u not reading, watch event %s dropped", c->domid, path);
    } else {
        xss_enqueue(c, &hdr, body, true);
    }
    free(body);
}

/* Writes what the socket takes now; -1 if the connection is dead. */
static int xss_flush(struct xss_conn *c)
{
    while (c->out_head) {
        struct xss_outmsg *m = c->out_head;
        ssize_t n = send(c->fd, m->bytes + m->sent, m->len - m->sent, MSG_NOSIGNAL | MSG_DONTWAIT);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            c->broken = true;
            return -1;
        }
        m->sent += (size_t)n;
        if (m->sent < m->len)
            continue;
        c->out_head = m->next;
        if (!c->out_head)
            c->out_tail = NULL;
        c->out_bytes -= m->len;
        free(m);
    }
    return 0;
}

/* ---- paths ------------------------------------------------------------------------------- */

static bool xss_valid_chars(const char *p)
{
    return strspn(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-/_@") == strlen(p);
}

/* Length of a "/local/domain/<digits>/" prefix, which the path-length quota does not count. */
static size_t xss_local_prefix_len(const char *p)
{
    static const char pre[] = "/local/domain/";
    size_t i = sizeof(pre) - 1, digits = 0;

    if (strncmp(p, pre, i))
        return 0;
    while (p[i] >= '0' && p[i] <= '9' && digits < 5) {
        i++;
        digits++;
    }
    return digits && p[i] == '/' ? i + 1 : 0;
}

/* xenstored's rules for a node name: absolute, allowed characters, no "//", no trailing
 * '/', at most XENSTORE_REL_PATH_MAX characters after a domain's home prefix. */
static bool xss_valid_path(const char *p)
{
    size_t len = strlen(p);

    return p[0] == '/' && xss_valid_chars(p) && !strstr(p, "//") &&
           (len == 1 || p[len - 1] != '/') && len <= xss_local_prefix_len(p) + XENSTORE_REL_PATH_MAX;
}

/* Resolves a path relative to the domain's home; out has XSS_PATH_BUF bytes. Special
 * (@...) paths pass unchanged. */
static bool xss_resolve(const struct xss_conn *c, const char *raw, char *out)
{
    int n;

    if (raw[0] == '/' || raw[0] == '@')
        n = snprintf(out, XSS_PATH_BUF, "%s", raw);
    else
        n = snprintf(out, XSS_PATH_BUF, "/local/domain/%u/%s", c->domid, raw);
    return n >= 0 && n < XSS_PATH_BUF;
}

/* The canonical node name of raw (NULL = missing argument), or EINVAL. */
static int xss_canon(const struct xss_req *r, const char *raw, char *out)
{
    if (!raw || !xss_resolve(r->conn, raw, out) || !xss_valid_path(out))
        return EINVAL;
    return 0;
}

/* The request's only argument: the payload must be one NUL-terminated string. */
static const char *xss_onearg(const struct xss_req *r)
{
    if (!r->hdr.len || strlen(r->payload) + 1 != r->hdr.len)
        return NULL;
    return r->payload;
}

/* The i-th NUL-terminated string of the payload (caller checked there are that many). */
static const char *xss_arg(const struct xss_req *r, unsigned i)
{
    const char *s = r->payload;

    while (i--)
        s += strlen(s) + 1;
    return s;
}

/* ---- the view of a request: the store, or a transaction's copy of it --------------------- */

static unsigned xss_txn_node_limit(const struct xss_conn *c)
{
    return xss_privileged(c) ? XSS_PRIV_MAX_TXN_NODES : XSS_QUOTA_TXN_NODES;
}

/* The transaction's record of path, made on first touch. */
static int xss_txn_access(struct xss_req *r, const char *path, struct xss_access **out)
{
    struct xss_txn *t = r->txn;
    struct xss_access *a = xss_map_get(&t->accesses, path);
    const struct xss_node *cur;

    if (a) {
        *out = a;
        return 0;
    }
    if (t->naccesses >= xss_txn_node_limit(r->conn)) {
        t->failed = true;
        return ENOSPC;
    }
    cur = xss_db_get(path);
    a = xss_alloc(sizeof(*a));
    a->path = xss_strdup(path);
    if (cur) {
        a->existed = true;
        a->base_gen = cur->gen;
        a->old_perms = xss_memdup(cur->perms, cur->nperms * sizeof(*cur->perms));
        a->old_nperms = cur->nperms;
        a->node = xss_node_dup(cur);
    }
    xss_map_set(&t->accesses, path, a);
    if (t->last)
        t->last->next = a;
    else
        t->first = a;
    t->last = a;
    t->naccesses++;
    *out = a;
    return 0;
}

/* The node at path as this request sees it: 0, ENOENT, or ENOSPC (transaction too big). */
static int xss_view_get(struct xss_req *r, const char *path, const struct xss_node **out)
{
    struct xss_access *a;
    int err;

    *out = NULL;
    if (!r->txn) {
        *out = xss_db_get(path);
        return *out ? 0 : ENOENT;
    }
    err = xss_txn_access(r, path, &a);
    if (err)
        return err;
    *out = a->node;
    return a->node ? 0 : ENOENT;
}

/* Tracks, inside a transaction, how many nodes the connection's own domain gains. */
static void xss_txn_count(struct xss_req *r, const struct xss_node *n, int delta)
{
    if (n && xss_owner(n) == r->conn->domid)
        r->txn->own_delta += delta;
}

/* Replaces the node at path with n (taken over). */
static void xss_view_put(struct xss_req *r, const char *path, struct xss_node *n)
{
    struct xss_access *a;

    if (!r->txn) {
        xss_db_store(path, n);
        return;
    }
    if (xss_txn_access(r, path, &a)) {   /* never: every path put was read first */
        xss_node_free(n);
        return;
    }
    xss_txn_count(r, a->node, -1);
    xss_txn_count(r, n, 1);
    xss_node_free(a->node);
    n->gen = ++xss_generation;
    a->node = n;
    a->modified = true;
}

static void xss_view_delete(struct xss_req *r, const char *path)
{
    struct xss_access *a;

    if (!r->txn) {
        xss_db_delete(path);
        return;
    }
    if (xss_txn_access(r, path, &a))
        return;
    xss_txn_count(r, a->node, -1);
    xss_node_free(a->node);
    a->node = NULL;
    a->modified = true;
}

/* ---- watches ----------------------------------------------------------------------------- */

enum xss_match { XSS_MATCH_EXACT, XSS_MATCH_SUBTREE };

/* Is path the watched node or below it? ("/" watches everything.) */
static bool xss_watch_matches(const struct xss_watch *w, const char *path, enum xss_match m)
{
    size_t len = strlen(w->path);

    if (m == XSS_MATCH_EXACT)
        return !strcmp(path, w->path);
    if (!strcmp(w->path, "/"))
        return true;
    return !strncmp(path, w->path, len) && (path[len] == '/' || path[len] == '\0');
}

/* xenstored's rule: a domain hears of a change if it may read the node (with its old or
 * new permissions) or the node's parent. */
static bool xss_watch_permitted(unsigned domid, const char *path, const struct xss_node *node,
                                const struct xss_perm *old, unsigned nold)
{
    const struct xss_node *parent;
    char *ppath;

    if (old && (xss_perm_for(domid, old, nold) & XSS_PERM_READ))
        return true;
    if (!node)
        node = xss_db_get(path);
    if (!node)
        return false;
    if (xss_node_perm_for(domid, node) & XSS_PERM_READ)
        return true;
    ppath = xss_parent_path(path);
    parent = xss_db_get(ppath);
    free(ppath);
    return parent && (xss_node_perm_for(domid, parent) & XSS_PERM_READ);
}

/* Remembers a change made in a transaction: its watches fire at commit. */
static void xss_txn_queue_event(struct xss_txn *t, const char *path, enum xss_match m)
{
    struct xss_access *a = xss_map_get(&t->accesses, path);

    if (!a) {
        t->failed = true;
        return;
    }
    a->fire_subtree = (a->fire && a->fire_subtree) || m == XSS_MATCH_SUBTREE;
    a->fire = true;
}

/* Path changed: queue an event on every matching watch whose domain may know. node is the
 * node's state to check permissions against (NULL: look it up in the store). */
static void xss_fire(struct xss_req *r, const char *path, const struct xss_node *node,
                     enum xss_match m, const struct xss_perm *old, unsigned nold)
{
    if (r && r->txn) {
        xss_txn_queue_event(r->txn, path, m);
        return;
    }
    for (struct xss_conn *c = xss_conns; c; c = c->next) {
        if (!c->watches || !xss_watch_permitted(c->domid, path, node, old, nold))
            continue;
        for (struct xss_watch *w = c->watches; w; w = w->next)
            if (xss_watch_matches(w, path, m))
                xss_send_event(c, path + w->rel_off, w->token);
    }
}

static void xss_watch_free(struct xss_conn *c, struct xss_watch *w)
{
    xss_domains[c->domid].watches--;
    c->nwatches--;
    free(w->path);
    free(w->token);
    free(w);
}

static void xss_conn_drop_watches(struct xss_conn *c)
{
    while (c->watches) {
        struct xss_watch *w = c->watches;

        c->watches = w->next;
        xss_watch_free(c, w);
    }
}

/* ---- transactions ------------------------------------------------------------------------ */

static void xss_txn_free(struct xss_txn *t)
{
    struct xss_access *a = t->first, *next;

    for (; a; a = next) {
        next = a->next;
        free(a->path);
        free(a->old_perms);
        xss_node_free(a->node);
        free(a);
    }
    xss_map_clear(&t->accesses);
    free(t);
}

static struct xss_txn *xss_txn_find(const struct xss_conn *c, uint32_t id)
{
    for (struct xss_txn *t = c->txns; t; t = t->next)
        if (t->id == id)
            return t;
    return NULL;
}

static void xss_txn_unlink(struct xss_conn *c, struct xss_txn *t)
{
    for (struct xss_txn **p = &c->txns; *p; p = &(*p)->next)
        if (*p == t) {
            *p = t->next;
            c->ntxns--;
            return;
        }
}

static void xss_conn_drop_txns(struct xss_conn *c)
{
    while (c->txns) {
        struct xss_txn *t = c->txns;

        xss_txn_unlink(c, t);
        xss_txn_free(t);
    }
}

/* EAGAIN if anything the transaction touched was changed in the store meanwhile. */
static int xss_txn_check(const struct xss_txn *t)
{
    for (const struct xss_access *a = t->first; a; a = a->next) {
        const struct xss_node *cur = xss_db_get(a->path);

        if ((cur != NULL) != a->existed || (cur && cur->gen != a->base_gen))
            return EAGAIN;
    }
    return 0;
}

static int xss_txn_commit(struct xss_req *r, struct xss_txn *t)
{
    unsigned domid = r->conn->domid;
    int err;

    if (t->failed)
        return ENOMEM;   /* what xenstored 4.17 answers for a transaction it had to fail */
    err = xss_txn_check(t);
    if (err)
        return err;
    if (!xss_privileged(r->conn) && t->created &&
        (long)xss_domains[domid].nodes + t->own_delta > XSS_QUOTA_NODES)
        return ENOSPC;
    for (struct xss_access *a = t->first; a; a = a->next) {
        if (!a->modified)
            continue;
        if (a->node)
            xss_db_store(a->path, a->node);
        else
            xss_db_delete(a->path);
        a->node = NULL;
    }
    for (struct xss_access *a = t->first; a; a = a->next)
        if (a->fire)
            xss_fire(r, a->path, NULL, a->fire_subtree ? XSS_MATCH_SUBTREE : XSS_MATCH_EXACT,
                     a->old_perms, a->old_nperms);
    return 0;
}

/* ---- permission checks on a request's view ----------------------------------------------- */

/* What the nearest existing ancestor of path lets the domain do (0, or ENOSPC when a
 * transaction may not touch more nodes). */
static int xss_ancestor_perm(struct xss_req *r, const char *path, unsigned *perm)
{
    char *p = xss_parent_path(path);
    const struct xss_node *n;
    int err;

    *perm = 0;
    /* Ends at "/" at the latest (never removed). */
    while ((err = xss_view_get(r, p, &n)) == ENOENT && strcmp(p, "/")) {
        char *parent = xss_parent_path(p);

        free(p);
        p = parent;
    }
    free(p);
    if (!err)
        *perm = xss_node_perm_for(r->conn->domid, n);
    return err == ENOSPC ? err : 0;
}

/* Gets the node at path if the domain has all of `perm` on it. Like xenstored, a domain
 * that could not see the node anyway learns EACCES rather than whether it exists. */
static int xss_get_checked(struct xss_req *r, const char *path, unsigned perm,
                           const struct xss_node **out)
{
    unsigned parent_perm;
    int err = xss_view_get(r, path, out);

    if (!err && (xss_node_perm_for(r->conn->domid, *out) & perm) == perm)
        return 0;
    *out = NULL;
    if (err == ENOSPC)
        return err;
    if (!err)
        err = EACCES;
    if (xss_ancestor_perm(r, path, &parent_perm))
        return ENOSPC;
    return (parent_perm & perm) ? err : EACCES;
}

/* ---- request handlers: each returns 0 (reply queued) or the errno to send ---------------- */

static int xss_op_read(struct xss_req *r)
{
    char path[XSS_PATH_BUF];
    const struct xss_node *n;
    int err = xss_canon(r, xss_onearg(r), path);

    if (!err)
        err = xss_get_checked(r, path, XSS_PERM_READ, &n);
    return err ? err : xss_reply(r, n->data, n->datalen);
}

static int xss_op_directory(struct xss_req *r)
{
    char path[XSS_PATH_BUF];
    const struct xss_node *n;
    int err = xss_canon(r, xss_onearg(r), path);

    if (!err)
        err = xss_get_checked(r, path, XSS_PERM_READ, &n);
    return err ? err : xss_reply(r, n->children, n->childlen);
}

/* DIRECTORY_PART <path>|<offset>| -> <gen>|<names from offset>, with a final extra NUL
 * once the list is complete (the client's fallback when DIRECTORY gives E2BIG). */
static int xss_op_directory_part(struct xss_req *r)
{
    char path[XSS_PATH_BUF], gen[24], *out;
    const struct xss_node *n;
    unsigned long off;
    uint32_t len = 0, maxlen, genlen;
    int err;

    if (xss_count_strings(r->payload, r->hdr.len) != 2)
        return EINVAL;
    err = xss_canon(r, r->payload, path);
    if (!err)
        err = xss_get_checked(r, path, XSS_PERM_READ, &n);
    if (err)
        return err;
    off = (unsigned)strtol(xss_arg(r, 1), NULL, 10);   /* like atoi: garbage reads as 0 */
    genlen = (uint32_t)snprintf(gen, sizeof(gen), "%llu", (unsigned long long)n->gen) + 1;
    if (off >= n->childlen) {
        char empty[sizeof(gen) + 1];

        memcpy(empty, gen, genlen);
        empty[genlen] = '\0';
        return xss_reply(r, empty, genlen + 1);
    }
    maxlen = XENSTORE_PAYLOAD_MAX - genlen - 1;
    while (off + len < n->childlen && len + strlen(n->children + off + len) < maxlen)
        len += (uint32_t)strlen(n->children + off + len) + 1;
    out = xss_alloc(genlen + len + 1);
    memcpy(out, gen, genlen);
    memcpy(out + genlen, n->children + off, len);
    if (off + len == n->childlen)
        out[genlen + len++] = '\0';
    err = xss_reply(r, out, genlen + len);
    free(out);
    return err;
}

static int xss_op_get_perms(struct xss_req *r)
{
    char path[XSS_PATH_BUF], *out, *p;
    const struct xss_node *n;
    int err = xss_canon(r, xss_onearg(r), path);

    if (!err)
        err = xss_get_checked(r, path, XSS_PERM_READ, &n);
    if (err)
        return err;
    p = out = xss_alloc(n->nperms * 16);
    for (unsigned i = 0; i < n->nperms; i++) {
        static const char letters[] = "nrwb";

        p += sprintf(p, "%c%d", letters[n->perms[i].access & 3], (int)n->perms[i].id) + 1;
    }
    err = xss_reply(r, out, (uint32_t)(p - out));
    free(out);
    return err;
}

/* Whether an unprivileged domain may store a node this big. */
static bool xss_size_ok(const struct xss_req *r, const struct xss_node *n)
{
    return xss_privileged(r->conn) || xss_node_size(n) < XSS_QUOTA_NODE_SIZE;
}

/* Room for `count` more nodes for this request's domain. */
static bool xss_room_for_nodes(const struct xss_req *r, unsigned count)
{
    const struct xss_domain *d = &xss_domains[r->conn->domid];

    if (xss_total_nodes + count > XSS_MAX_NODES_TOTAL)
        return false;
    if (xss_privileged(r->conn))
        return true;
    return (long)d->nodes + (r->txn ? r->txn->own_delta : 0) + count <= XSS_QUOTA_NODES;
}

/* Creates path and its missing ancestors. They inherit the nearest existing ancestor's
 * permissions; an unprivileged domain owns what it creates. Nothing changes on error. */
static int xss_create(struct xss_req *r, const char *path, const char *data, uint32_t datalen)
{
    size_t depth = 0;
    char **missing, *anc_path = NULL;
    unsigned nmissing = 0;
    const struct xss_node *anc;
    struct xss_node *top, *leaf;
    int err;

    for (const char *s = path; *s; s++)
        depth += *s == '/';
    missing = xss_alloc(depth * sizeof(*missing));   /* path and its ancestors below "/" */
    missing[nmissing++] = xss_strdup(path);
    for (;;) {   /* ends at "/" at the latest, which always exists */
        anc_path = xss_parent_path(missing[nmissing - 1]);
        err = xss_view_get(r, anc_path, &anc);
        if (err != ENOENT || nmissing == depth)
            break;
        missing[nmissing++] = anc_path;
    }
    if (err)
        goto out;
    top = xss_node_dup(anc);
    xss_node_add_child(top, xss_basename(missing[nmissing - 1]));
    leaf = xss_node_new(anc->perms, anc->nperms);
    if (!xss_privileged(r->conn))
        leaf->perms[0].id = r->conn->domid;
    xss_node_set_data(leaf, data, datalen);
    if (!xss_room_for_nodes(r, nmissing) || !xss_size_ok(r, top) || !xss_size_ok(r, leaf)) {
        xss_node_free(top);
        xss_node_free(leaf);
        err = ENOSPC;
        goto out;
    }
    /* Top down; the ancestor last, as replacing it in the store frees `anc`. */
    for (unsigned i = nmissing; i-- > 1;) {
        struct xss_node *n = xss_node_new(leaf->perms, leaf->nperms);

        xss_node_add_child(n, xss_basename(missing[i - 1]));
        xss_view_put(r, missing[i], n);
    }
    xss_view_put(r, missing[0], leaf);
    xss_view_put(r, anc_path, top);
    if (r->txn)
        r->txn->created = true;
out:
    for (unsigned i = 0; i < nmissing; i++)
        free(missing[i]);
    free(missing);
    free(anc_path);
    return err;
}

static int xss_op_write(struct xss_req *r)
{
    char path[XSS_PATH_BUF];
    const struct xss_node *n;
    const char *data;
    uint32_t datalen;
    int err;

    if (xss_count_strings(r->payload, r->hdr.len) < 1)
        return EINVAL;
    data = r->payload + strlen(r->payload) + 1;
    datalen = r->hdr.len - (uint32_t)(data - r->payload);
    err = xss_canon(r, r->payload, path);
    if (!err)
        err = xss_get_checked(r, path, XSS_PERM_WRITE, &n);
    if (err == ENOENT) {
        err = xss_create(r, path, data, datalen);
    } else if (!err) {
        struct xss_node *copy = xss_node_dup(n);

        xss_node_set_data(copy, data, datalen);
        if (!xss_size_ok(r, copy)) {
            xss_node_free(copy);
            return ENOSPC;
        }
        xss_view_put(r, path, copy);
    }
    if (err)
        return err;
    xss_fire(r, path, NULL, XSS_MATCH_SUBTREE, NULL, 0);
    return xss_ack(r);
}

static int xss_op_mkdir(struct xss_req *r)
{
    char path[XSS_PATH_BUF];
    const struct xss_node *n;
    int err = xss_canon(r, xss_onearg(r), path);

    if (!err)
        err = xss_get_checked(r, path, XSS_PERM_WRITE, &n);
    if (err == ENOENT) {
        err = xss_create(r, path, NULL, 0);
        if (!err)
            xss_fire(r, path, NULL, XSS_MATCH_SUBTREE, NULL, 0);
    }
    return err ? err : xss_ack(r);
}

/* Deletes path and everything below, children first; each deleted node fires its watches
 * while its permissions can still be seen (the top one for its whole subtree). */
static int xss_delete_tree(struct xss_req *r, const char *path, bool top)
{
    const struct xss_node *n;
    int err = xss_view_get(r, path, &n);

    if (err)
        return err;
    for (uint32_t off = 0; off < n->childlen; off += (uint32_t)strlen(n->children + off) + 1) {
        char *child = xss_child_path(path, n->children + off);

        err = xss_delete_tree(r, child, false);
        free(child);
        if (err)
            return err;
    }
    xss_fire(r, path, n, top ? XSS_MATCH_SUBTREE : XSS_MATCH_EXACT, NULL, 0);
    xss_view_delete(r, path);
    return 0;
}

static int xss_op_rm(struct xss_req *r)
{
    char path[XSS_PATH_BUF], *ppath;
    const struct xss_node *n, *parent;
    int err = xss_canon(r, xss_onearg(r), path);

    if (!err)
        err = xss_get_checked(r, path, XSS_PERM_WRITE, &n);
    if (err && err != ENOENT)
        return err;
    if (!err && !strcmp(path, "/"))
        return EINVAL;
    ppath = xss_parent_path(path);
    if (err == ENOENT) {
        /* Removing a missing node is fine as long as its parent exists. */
        err = xss_view_get(r, ppath, &parent) == 0 ? 0 : ENOENT;
    } else {
        err = xss_delete_tree(r, path, true);
        if (!err)
            err = xss_view_get(r, ppath, &parent);
        if (!err) {
            struct xss_node *copy = xss_node_dup(parent);

            xss_node_remove_child(copy, xss_basename(path));
            xss_view_put(r, ppath, copy);
        }
    }
    free(ppath);
    return err ? err : xss_ack(r);
}

/* Parses count permission strings ("r1", "b0x2", ...) as xenstored does. */
static int xss_parse_perms(const char *s, unsigned count, struct xss_perm *out)
{
    for (unsigned i = 0; i < count; i++, s += strlen(s) + 1) {
        static const char letters[] = "nrwb";
        const char *l = s[0] ? strchr(letters, s[0]) : NULL;
        char *end;
        long id;

        if (!l || !s[1])
            return EINVAL;
        id = strtol(s + 1, &end, 0);
        if (*end)
            return EINVAL;
        out[i].access = (unsigned char)(l - letters);
        out[i].id = (unsigned int)id;
        out[i].ignored = out[i].id >= xss_ndomains;
    }
    return 0;
}

static int xss_set_special_perms(struct xss_req *r, const char *name, struct xss_perm *perms,
                                 unsigned n)
{
    for (size_t i = 0; i < sizeof(xss_specials) / sizeof(xss_specials[0]); i++) {
        struct xss_special *s = &xss_specials[i];
        const unsigned need = XSS_PERM_WRITE | XSS_PERM_OWNER;

        if (strcmp(name, s->name))
            continue;
        if ((xss_perm_for(r->conn->domid, s->perms, s->nperms) & need) != need)
            return EACCES;
        free(s->perms);
        s->perms = xss_memdup(perms, n * sizeof(*perms));
        s->nperms = n;
        return xss_ack(r);
    }
    return EINVAL;
}

static int xss_apply_perms(struct xss_req *r, const char *raw, struct xss_perm *perms, unsigned n)
{
    char path[XSS_PATH_BUF];
    const struct xss_node *node;
    struct xss_node *copy;
    struct xss_perm *old;
    unsigned nold;
    int err;

    if (raw[0] == '@')
        return xss_set_special_perms(r, raw, perms, n);
    err = xss_canon(r, raw, path);
    if (!err)
        err = xss_get_checked(r, path, XSS_PERM_WRITE | XSS_PERM_OWNER, &node);
    if (err)
        return err;
    /* Only the privileged domain may give a node away. */
    if (!xss_privileged(r->conn) && perms[0].id != xss_owner(node))
        return EPERM;
    copy = xss_node_dup(node);
    old = copy->perms;
    nold = copy->nperms;
    copy->perms = xss_memdup(perms, n * sizeof(*perms));
    copy->nperms = n;
    if (!xss_size_ok(r, copy)) {
        free(old);
        xss_node_free(copy);
        return ENOSPC;
    }
    xss_view_put(r, path, copy);
    xss_fire(r, path, NULL, XSS_MATCH_SUBTREE, old, nold);
    free(old);
    return xss_ack(r);
}

static int xss_op_set_perms(struct xss_req *r)
{
    unsigned n = xss_count_strings(r->payload, r->hdr.len);
    struct xss_perm *perms;
    int err;

    if (n < 2)
        return EINVAL;
    n--;
    if (!xss_privileged(r->conn) && n > XSS_QUOTA_PERMS)
        return ENOSPC;
    perms = xss_alloc(n * sizeof(*perms));
    err = xss_parse_perms(xss_arg(r, 1), n, perms);
    if (!err && perms[0].ignored)
        err = ENOENT;   /* the owner must exist */
    if (!err)
        err = xss_apply_perms(r, r->payload, perms, n);
    free(perms);
    return err;
}

static unsigned xss_watch_limit(const struct xss_conn *c)
{
    return xss_privileged(c) ? XSS_PRIV_MAX_WATCHES : XSS_QUOTA_WATCHES;
}

/* WATCH <path>|<token>|: the watch fires once right away, then on every change. */
static int xss_op_watch(struct xss_req *r)
{
    struct xss_conn *c = r->conn;
    char path[XSS_PATH_BUF];
    const char *raw = r->payload, *token;
    struct xss_watch *w;
    unsigned count;
    bool relative = raw[0] != '/' && raw[0] != '@';

    if (xss_count_strings(r->payload, r->hdr.len) != 2)
        return EINVAL;
    token = xss_arg(r, 1);
    if (raw[0] == '@') {   /* special events: any name, bounded */
        if (strlen(raw) > XENSTORE_REL_PATH_MAX)
            return EINVAL;
        snprintf(path, sizeof(path), "%s", raw);
    } else if (xss_canon(r, raw, path)) {
        return EINVAL;
    }
    for (w = c->watches; w; w = w->next)
        if (!strcmp(w->path, path) && !strcmp(w->token, token))
            return EEXIST;
    count = xss_privileged(c) ? c->nwatches : xss_domains[c->domid].watches;
    if (count >= xss_watch_limit(c))
        return E2BIG;   /* xenstored 4.17's answer to the watch quota */
    w = xss_alloc(sizeof(*w));
    w->path = xss_strdup(path);
    w->token = xss_strdup(token);
    w->rel_off = relative ? strlen(path) - strlen(raw) : 0;
    w->next = c->watches;
    c->watches = w;
    c->nwatches++;
    xss_domains[c->domid].watches++;
    xss_ack(r);
    xss_send_event(c, path + w->rel_off, w->token);
    return 0;
}

static int xss_op_unwatch(struct xss_req *r)
{
    struct xss_conn *c = r->conn;
    char path[XSS_PATH_BUF];
    const char *token;

    if (xss_count_strings(r->payload, r->hdr.len) != 2 || !xss_resolve(c, r->payload, path))
        return EINVAL;
    token = xss_arg(r, 1);
    for (struct xss_watch **p = &c->watches; *p; p = &(*p)->next) {
        struct xss_watch *w = *p;

        if (!strcmp(w->path, path) && !strcmp(w->token, token)) {
            *p = w->next;
            xss_watch_free(c, w);
            return xss_ack(r);
        }
    }
    return ENOENT;
}

static int xss_op_txn_start(struct xss_req *r)
{
    struct xss_conn *c = r->conn;
    struct xss_txn *t;
    char id[16];

    if (r->txn)
        return EBUSY;   /* no nested transactions */
    if (c->ntxns >= (xss_privileged(c) ? XSS_PRIV_MAX_TXNS : XSS_QUOTA_TXNS))
        return ENOSPC;
    t = xss_alloc(sizeof(*t));
    do {   /* ids unique per connection, never 0 */
        t->id = c->next_txid++;
    } while (!t->id || xss_txn_find(c, t->id));
    t->next = c->txns;
    c->txns = t;
    c->ntxns++;
    snprintf(id, sizeof(id), "%u", t->id);
    return xss_reply(r, id, (uint32_t)strlen(id) + 1);
}

/* TRANSACTION_END T (commit) or F (abort); the transaction is over either way. */
static int xss_op_txn_end(struct xss_req *r)
{
    const char *arg = xss_onearg(r);
    struct xss_txn *t = r->txn;
    int err = 0;

    if (!arg || (strcmp(arg, "T") && strcmp(arg, "F")))
        return EINVAL;
    if (!t)
        return ENOENT;
    xss_txn_unlink(r->conn, t);
    r->txn = NULL;   /* from here the request acts on the store */
    if (!strcmp(arg, "T"))
        err = xss_txn_commit(r, t);
    xss_txn_free(t);
    return err ? err : xss_ack(r);
}

static unsigned xss_parse_domid(const char *s)
{
    return (unsigned)(int)strtol(s, NULL, 10);   /* xenstored uses atoi */
}

static int xss_op_get_domain_path(struct xss_req *r)
{
    const char *arg = xss_onearg(r);
    char path[40];

    if (!arg)
        return EINVAL;
    snprintf(path, sizeof(path), "/local/domain/%u", xss_parse_domid(arg));
    return xss_reply(r, path, (uint32_t)strlen(path) + 1);
}

static int xss_op_is_domain_introduced(struct xss_req *r)
{
    const char *arg = xss_onearg(r);
    unsigned domid;

    if (!arg)
        return EINVAL;
    domid = xss_parse_domid(arg);
    return xss_reply(r, domid == XSS_DOMID_SELF || domid < xss_ndomains ? "T" : "F", 2);
}

static int xss_op_reset_watches(struct xss_req *r)
{
    xss_conn_drop_watches(r->conn);
    xss_conn_drop_txns(r->conn);
    r->txn = NULL;
    return xss_ack(r);
}

/* CONTROL: the harmless commands of xenstored's set. */
static int xss_op_control(struct xss_req *r)
{
    static const char help[] = "check\t\nprint\t<string>\nhelp\t\n";
    unsigned n = xss_count_strings(r->payload, r->hdr.len);
    const char *cmd = r->payload;

    if (n < 1)
        return EINVAL;
    if (!strcmp(cmd, "check") && n == 1)
        return xss_ack(r);
    if (!strcmp(cmd, "help") && n == 1)
        return xss_reply(r, help, sizeof(help));
    if (!strcmp(cmd, "print") && n == 2) {
        xsim_log("xenstore: control: %s", xss_arg(r, 1));
        return xss_ack(r);
    }
    return EINVAL;
}

/* Domain management belongs to a toolstack; the simulation's domains are fixed. */
static int xss_op_unsupported(struct xss_req *r)
{
    (void)r;
    return ENOSYS;
}

/* ---- dispatch ---------------------------------------------------------------------------- */

enum { XSS_NOTID = 1, XSS_PRIV = 2 };

struct xss_op {
    const char *name;
    int (*fn)(struct xss_req *r);
    unsigned flags;
};

static const struct xss_op xss_ops[] = {
    [XS_CONTROL] = { "CONTROL", xss_op_control, XSS_PRIV },
    [XS_DIRECTORY] = { "DIRECTORY", xss_op_directory, 0 },
    [XS_READ] = { "READ", xss_op_read, 0 },
    [XS_GET_PERMS] = { "GET_PERMS", xss_op_get_perms, 0 },
    [XS_WATCH] = { "WATCH", xss_op_watch, XSS_NOTID },
    [XS_UNWATCH] = { "UNWATCH", xss_op_unwatch, XSS_NOTID },
    [XS_TRANSACTION_START] = { "TRANSACTION_START", xss_op_txn_start, 0 },
    [XS_TRANSACTION_END] = { "TRANSACTION_END", xss_op_txn_end, 0 },
    [XS_INTRODUCE] = { "INTRODUCE", xss_op_unsupported, XSS_PRIV },
    [XS_RELEASE] = { "RELEASE", xss_op_unsupported, XSS_PRIV },
    [XS_GET_DOMAIN_PATH] = { "GET_DOMAIN_PATH", xss_op_get_domain_path, 0 },
    [XS_WRITE] = { "WRITE", xss_op_write, 0 },
    [XS_MKDIR] = { "MKDIR", xss_op_mkdir, 0 },
    [XS_RM] = { "RM", xss_op_rm, 0 },
    [XS_SET_PERMS] = { "SET_PERMS", xss_op_set_perms, 0 },
    [XS_IS_DOMAIN_INTRODUCED] = { "IS_DOMAIN_INTRODUCED", xss_op_is_domain_introduced, XSS_PRIV },
    [XS_RESUME] = { "RESUME", xss_op_unsupported, XSS_PRIV },
    [XS_SET_TARGET] = { "SET_TARGET", xss_op_unsupported, XSS_PRIV },
    [XS_RESET_WATCHES] = { "RESET_WATCHES", xss_op_reset_watches, 0 },
    [XS_DIRECTORY_PART] = { "DIRECTORY_PART", xss_op_directory_part, 0 },
};

static const struct xss_op *xss_find_op(uint32_t type)
{
    if (type >= sizeof(xss_ops) / sizeof(xss_ops[0]) || !xss_ops[type].fn)
        return NULL;
    return &xss_ops[type];
}

static void xss_log_request(const struct xss_req *r, const struct xss_op *op)
{
    char arg[72];
    size_t i;

    for (i = 0; i < r->hdr.len && i < sizeof(arg) - 1 && r->payload[i]; i++)
        arg[i] = r->payload[i] >= 0x20 && r->payload[i] < 0x7f ? r->payload[i] : '?';
    arg[i] = '\0';
    if (op)
        xsim_log("xenstore: dom%u %s %s -> %s", r->conn->domid, op->name, arg, r->result);
    else
        xsim_log("xenstore: dom%u type %u %s -> %s", r->conn->domid, r->hdr.type, arg, r->result);
}

static void xss_process(struct xss_conn *c, const struct xsd_sockmsg *hdr, const char *payload)
{
    struct xss_req r = { .conn = c, .hdr = *hdr, .payload = payload, .result = "OK" };
    const struct xss_op *op = xss_find_op(hdr->type);
    int err;

    if (!op)
        err = ENOSYS;
    else if ((op->flags & XSS_PRIV) && !xss_privileged(c))
        err = EACCES;
    else if (!(op->flags & XSS_NOTID) && hdr->tx_id && !(r.txn = xss_txn_find(c, hdr->tx_id)))
        err = ENOENT;
    else
        err = op->fn(&r);
    if (err)
        xss_reply_error(&r, err);
    if (xsim_verbose)
        xss_log_request(&r, op);
}

/* ---- module interface -------------------------------------------------------------------- */

static struct xss_perm xss_root_perm = { .id = 0, .access = 0 };   /* "n0" */

static void xss_add_initial(const char *path)
{
    struct xss_node *n = xss_node_new(&xss_root_perm, 1);

    if (strcmp(path, "/")) {
        char *ppath = xss_parent_path(path);
        struct xss_node *parent = xss_node_dup(xss_db_get(ppath));

        xss_node_add_child(parent, xss_basename(path));
        xss_db_store(ppath, parent);
        free(ppath);
    }
    xss_db_store(path, n);
}

static void xss_init(unsigned ndomains)
{
    static const char *const initial[] = { "/", "/tool", "/tool/xenstored", "/local", "/local/domain" };

    xss_ndomains = ndomains;
    xss_domains = xss_alloc(ndomains * sizeof(*xss_domains));
    for (size_t i = 0; i < sizeof(initial) / sizeof(initial[0]); i++)
        xss_add_initial(initial[i]);
    for (size_t i = 0; i < sizeof(xss_specials) / sizeof(xss_specials[0]); i++) {
        xss_specials[i].perms = xss_memdup(&xss_root_perm, sizeof(xss_root_perm));
        xss_specials[i].nperms = 1;
    }
}

static void *xss_accept(int fd, unsigned domid, const struct ucred *peer)
{
    struct xss_conn *c;

    (void)peer;
    if (domid >= xss_ndomains)
        return NULL;
    c = xss_alloc(sizeof(*c));
    c->fd = fd;
    c->domid = domid;
    c->next_txid = 1;
    c->next = xss_conns;
    xss_conns = c;
    return c;
}

/* Reads what the current message still lacks: 1 when it is complete, 0 for "later",
 * -1 when the connection must close (EOF, error, oversized message). */
static int xss_read_message(struct xss_conn *c)
{
    for (;;) {
        size_t want = XSS_HDR_LEN;
        char *dst = (char *)&c->in_hdr + c->in_used;
        ssize_t n;

        if (c->in_used >= XSS_HDR_LEN) {
            if (c->in_hdr.len > XENSTORE_PAYLOAD_MAX) {
                /* xenstored drops a client that sends more than the protocol allows. */
                xsim_log("xenstore: dom%u sent a %u-byte payload (max %d), closing", c->domid,
                         c->in_hdr.len, XENSTORE_PAYLOAD_MAX);
                return -1;
            }
            want += c->in_hdr.len;
            if (c->in_used == want)
                return 1;
            dst = c->in_body + (c->in_used - XSS_HDR_LEN);
        }
        n = read(c->fd, dst, want - c->in_used);
        if (n == 0)
            return -1;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
        c->in_used += (size_t)n;
    }
}

static int xss_on_readable(void *state)
{
    struct xss_conn *c = state;

    for (int i = 0; i < XSS_BATCH && !c->broken; i++) {
        int rc = xss_read_message(c);

        if (rc < 0) {
            xss_flush(c);   /* a client that half-closed still gets what is ready */
            return -1;
        }
        if (rc == 0)
            break;
        c->in_body[c->in_hdr.len] = '\0';   /* guard: string functions stop inside the buffer */
        c->in_used = 0;
        xss_process(c, &c->in_hdr, c->in_body);
    }
    if (c->broken || xss_flush(c) < 0)
        return -1;
    return 0;
}

static int xss_wants_write(void *state)
{
    const struct xss_conn *c = state;

    return c->out_head != NULL || c->broken;
}

static int xss_on_writable(void *state)
{
    struct xss_conn *c = state;

    if (c->broken)
        return -1;
    return xss_flush(c);
}

static void xss_on_close(void *state)
{
    struct xss_conn *c = state;

    for (struct xss_conn **p = &xss_conns; *p; p = &(*p)->next)
        if (*p == c) {
            *p = c->next;
            break;
        }
    xss_conn_drop_watches(c);
    xss_conn_drop_txns(c);
    while (c->out_head) {
        struct xss_outmsg *m = c->out_head;

        c->out_head = m->next;
        free(m);
    }
    free(c);
}

const struct xsim_module xsim_xenstore_module = {
    .name = "xenstore",
    .sock_name = "xenstored",
    .sock_type = SOCK_STREAM,
    .init = xss_init,
    .accept = xss_accept,
    .on_readable = xss_on_readable,
    .wants_write = xss_wants_write,
    .on_writable = xss_on_writable,
    .on_close = xss_on_close,
};
