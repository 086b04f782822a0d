#include "sbk_bus.h"

#include "sbk_log.h"
#include "sbk_parse.h"
#include "sbk_ring.h"
#include "sbk_stream.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xen/io/xenbus.h>

#define SBK_TOKEN_BACKEND "sbk:be"
#define SBK_WATCH_BATCH 256         /* watch events handled per wake-up */
#define SBK_TXN_RETRIES 10

static const char *const sbk_state_names[] = { "Unknown", "Initialising", "InitWait", "Initialised", "Connected",
                                               "Closing", "Closed", "Reconfiguring", "Reconfigured" };

static const char *sbk_state_name(long long state)
{
    return state >= 0 && state <= 8 ? sbk_state_names[state] : "absent";
}

/* ---- xenstore helpers ---- */

/* Writes <be>/state (and `versions` with InitWait) only while the backend directory exists,
 * in a transaction so that a toolstack removing it cannot race us into re-creating it. */
static void sbk_card_set_state(struct sbk_card *c, int state)
{
    struct xs_handle *xs = c->d->xen.xs;
    char path[SBK_PATH_MAX + 16], value[4];

    if (c->be_state == state)
        return;
    snprintf(value, sizeof(value), "%d", state);
    for (int attempt = 0; attempt < SBK_TXN_RETRIES; attempt++) {
        xs_transaction_t t = xs_transaction_start(xs);
        unsigned len;
        char *dir;
        bool ok = true;

        if (t == XBT_NULL)
            break;
        dir = xs_read(xs, t, c->be_path, &len);
        if (dir) {
            if (state == XenbusStateInitWait) {
                const char *versions = c->d->opts.versions ? c->d->opts.versions : "2";

                snprintf(path, sizeof(path), "%s/versions", c->be_path);
                ok = xs_write(xs, t, path, versions, (unsigned)strlen(versions));
            }
            snprintf(path, sizeof(path), "%s/state", c->be_path);
            ok = ok && xs_write(xs, t, path, value, (unsigned)strlen(value));
        }
        free(dir);
        if (xs_transaction_end(xs, t, !ok || !dir) && ok && dir) {
            c->be_state = state;
            sbk_info("card %u/%u: backend %s", c->fe_domid, c->devid, sbk_state_name(state));
            return;
        }
        if (!dir || errno != EAGAIN)
            break;
    }
    if (c->be_state != state)
        sbk_info("card %u/%u: could not write state %s (backend directory gone?)", c->fe_domid, c->devid,
                 sbk_state_name(state));
}

/* ---- connect / teardown ---- */

static void sbk_card_teardown(struct sbk_card *c)
{
    for (unsigned i = 0; i < c->n_streams; i++) {
        sbk_stream_shutdown(&c->streams[i]);
        sbk_ring_disconnect(&c->streams[i]);
    }
    free(c->streams);
    c->streams = NULL;
    c->n_streams = 0;
    if (c->xce) {
        sbk_daemon_unwatch_fd(c->d, xenevtchn_fd(c->xce));
        xenevtchn_close(c->xce);
        c->xce = NULL;
    }
    sbk_card_cfg_free(&c->cfg);
}

/* One stream key: a u32; -1 (err set) when absent or malformed. */
static int sbk_read_transport_key(struct sbk_card *c, const struct sbk_stream_cfg *cfg, const char *key, uint32_t *out,
                                  char *err, size_t errlen)
{
    char path[SBK_PATH_MAX + 32];
    char *v;
    int rc;

    snprintf(path, sizeof(path), "%s/%s", cfg->path, key);
    v = sbk_xs_read_str(&c->d->xen, path);
    rc = v ? sbk_parse_u32(v, out) : -1;
    if (rc < 0)
        snprintf(err, errlen, "%s: %s", path, v ? "not a decimal u32" : "missing");
    free(v);
    return rc;
}

static int sbk_stream_connect(struct sbk_card *c, struct sbk_stream *s, char *err, size_t errlen)
{
    struct sbk_transport_refs t;

    if (sbk_read_transport_key(c, s->cfg, XENSND_FIELD_RING_REF, &t.ring_ref, err, errlen) < 0 ||
        sbk_read_transport_key(c, s->cfg, XENSND_FIELD_EVT_CHNL, &t.ring_port, err, errlen) < 0 ||
        sbk_read_transport_key(c, s->cfg, XENSND_FIELD_EVT_RING_REF, &t.evt_ref, err, errlen) < 0 ||
        sbk_read_transport_key(c, s->cfg, XENSND_FIELD_EVT_EVT_CHNL, &t.evt_port, err, errlen) < 0)
        return -1;
    return sbk_ring_connect(s, &t, err, errlen);
}

static int sbk_card_connect(struct sbk_card *c)
{
    struct sbk_reader reader = sbk_xs_reader(&c->d->xen);
    char err[512];

    if (sbk_card_cfg_read(&reader, c->fe_path, c->devid, &c->d->opts, &c->cfg, err, sizeof(err)) < 0) {
        sbk_error("card %u/%u: bad configuration: %s", c->fe_domid, c->devid, err);
        return -1;
    }
    c->streams = calloc(c->cfg.n_streams, sizeof(*c->streams));
    c->xce = xenevtchn_open(NULL, 0);
    c->evtchn_src = (struct sbk_evsrc){ SBK_SRC_CARD_EVTCHN, c };
    if (!c->streams || !c->xce || sbk_daemon_watch_fd(c->d, xenevtchn_fd(c->xce), &c->evtchn_src) < 0) {
        sbk_error("card %u/%u: cannot open the event channel device (on real Xen: modprobe xen-evtchn): %s",
                  c->fe_domid, c->devid, strerror(errno));
        return -1;
    }
    c->n_streams = c->cfg.n_streams;
    for (unsigned i = 0; i < c->n_streams; i++) {   /* all set up first: teardown may see any */
        c->streams[i].card = c;
        c->streams[i].cfg = &c->cfg.streams[i];
        c->streams[i].timer_fd = -1;
    }
    for (unsigned i = 0; i < c->n_streams; i++) {
        struct sbk_stream *s = &c->streams[i];

        if (sbk_stream_connect(c, s, err, sizeof(err)) < 0) {
            sbk_error("card %u/%u: cannot connect: %s", c->fe_domid, c->devid, err);
            return -1;
        }
        sbk_info("card %u/%u: stream %s (%s) connected", c->fe_domid, c->devid, s->cfg->uid,
                 s->cfg->capture ? "capture" : "playback");
    }
    return 0;
}

/* The frontend broke the protocol, or cannot be served: drop everything, go Closed. */
static void sbk_card_close_on_error(struct sbk_card *c)
{
    sbk_card_teardown(c);
    c->phase = SBK_CARD_CLOSED;
    sbk_card_set_state(c, XenbusStateClosed);
}

static void sbk_card_try_connect(struct sbk_card *c)
{
    if (sbk_card_connect(c) < 0) {
        sbk_card_close_on_error(c);
        return;
    }
    c->phase = SBK_CARD_CONNECTED;
    sbk_card_set_state(c, XenbusStateConnected);
    for (unsigned i = 0; i < c->n_streams; i++)    /* requests may already wait */
        if (sbk_ring_service(&c->streams[i]) < 0) {
            sbk_card_close_on_error(c);
            return;
        }
}

/* ---- the per-card state machine ---- */

static void sbk_card_destroy(struct sbk_daemon *d, struct sbk_card *c)
{
    struct sbk_card **pp;

    sbk_card_teardown(c);
    if (c->fe_watched)
        xs_unwatch(d->xen.xs, c->fe_path, c->token);
    for (pp = &d->cards; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    sbk_info("card %u/%u: backend directory gone, forgotten", c->fe_domid, c->devid);
    free(c);
}

static bool sbk_frontend_left(long long fe_state)
{
    return fe_state < 0 || fe_state == XenbusStateUnknown || fe_state == XenbusStateInitialising ||
           fe_state == XenbusStateClosing || fe_state == XenbusStateClosed;
}

/* Re-reads both ends' state and acts. Returns false when the card was destroyed. */
static bool sbk_card_step(struct sbk_daemon *d, struct sbk_card *c)
{
    char path[SBK_PATH_MAX + 16];
    char *dir = sbk_xs_read_str(&d->xen, c->be_path);
    long long online, be_state, fe_state;

    if (!dir) {
        sbk_card_destroy(d, c);
        return false;
    }
    free(dir);
    if (c->bad_link)
        return true;
    snprintf(path, sizeof(path), "%s/online", c->be_path);
    online = sbk_xs_read_uint(&d->xen, path);
    snprintf(path, sizeof(path), "%s/state", c->be_path);
    be_state = sbk_xs_read_uint(&d->xen, path);
    snprintf(path, sizeof(path), "%s/state", c->fe_path);
    fe_state = sbk_xs_read_uint(&d->xen, path);

    if (online == 0 || (be_state == XenbusStateClosing && c->be_state != XenbusStateClosing)) {
        if (c->phase != SBK_CARD_CLOSED || c->be_state != XenbusStateClosed)
            sbk_info("card %u/%u: toolstack removes the device", c->fe_domid, c->devid);
        sbk_card_teardown(c);
        c->phase = SBK_CARD_CLOSED;
        sbk_card_set_state(c, XenbusStateClosed);
        return true;
    }
    if (fe_state != c->fe_state_seen)
        sbk_info("card %u/%u: frontend %s", c->fe_domid, c->devid, sbk_state_name(fe_state));
    c->fe_state_seen = fe_state;
    switch (c->phase) {
    case SBK_CARD_CONNECTED:
        if (!sbk_frontend_left(fe_state))
            break;
        sbk_card_teardown(c);
        c->phase = SBK_CARD_INITWAIT;
        sbk_card_set_state(c, XenbusStateInitWait);
        break;
    case SBK_CARD_CLOSED:
        if (!sbk_frontend_left(fe_state))
            break;
        c->phase = SBK_CARD_INITWAIT;
        sbk_card_set_state(c, XenbusStateInitWait);
        break;
    case SBK_CARD_INITWAIT:
        sbk_card_set_state(c, XenbusStateInitWait);
        /* Only Initialised: a frontend still Connected is connected to a previous backend
         * (this one restarted); on our InitWait it republishes fresh rings and says
         * Initialised (Linux does), and mapping the old ones meanwhile would race with that. */
        if (fe_state == XenbusStateInitialised)
            sbk_card_try_connect(c);
        else if (fe_state == XenbusStateConnected && c->fe_state_logged != fe_state)
            sbk_info("card %u/%u: frontend still Connected to a previous backend: waiting for it to "
                     "republish (Initialised)", c->fe_domid, c->devid);
        c->fe_state_logged = fe_state;
        break;
    }
    return true;
}

/* A new <fe>/<devid> in our backend directory: check its links, watch its frontend. NULL while
 * the toolstack has not written `frontend` and `frontend-id` yet (the next watch event retries). */
static struct sbk_card *sbk_card_create(struct sbk_daemon *d, unsigned fe, unsigned devid)
{
    char be_path[SBK_PATH_MAX], path[SBK_PATH_MAX + 16], want[SBK_PATH_MAX];
    struct sbk_card *c;
    char *frontend;
    long long frontend_id;

    snprintf(be_path, sizeof(be_path), "%s/%u/%u", d->be_root, fe, devid);
    snprintf(path, sizeof(path), "%s/frontend", be_path);
    frontend = sbk_xs_read_str(&d->xen, path);
    snprintf(path, sizeof(path), "%s/frontend-id", be_path);
    frontend_id = sbk_xs_read_uint(&d->xen, path);
    c = frontend && frontend_id >= 0 ? calloc(1, sizeof(*c)) : NULL;
    if (!c) {
        sbk_info("card %u/%u: no frontend/frontend-id yet", fe, devid);
        free(frontend);
        return NULL;
    }
    c->d = d;
    c->fe_domid = fe;
    c->devid = devid;
    c->be_state = -1;
    c->fe_state_seen = -2;
    snprintf(c->be_path, sizeof(c->be_path), "%s", be_path);
    snprintf(want, sizeof(want), "/local/domain/%u/device/vsnd/%u", fe, devid);
    snprintf(c->fe_path, sizeof(c->fe_path), "%s", want);
    snprintf(c->token, sizeof(c->token), "sbk:fe:%u:%u", fe, devid);
    c->next = d->cards;
    d->cards = c;
    if (strcmp(frontend, want) || frontend_id != fe) {
        sbk_error("card %u/%u: %s/frontend must be %s and frontend-id %u (found '%s', %lld)", fe, devid, c->be_path,
                  want, fe, frontend, frontend_id);
        c->bad_link = true;
        c->phase = SBK_CARD_CLOSED;
        sbk_card_set_state(c, XenbusStateClosed);
    } else {
        sbk_info("card %u/%u: found, frontend %s", fe, devid, want);
        c->fe_watched = xs_watch(d->xen.xs, c->fe_path, c->token);
        if (!c->fe_watched)
            sbk_warn("card %u/%u: cannot watch %s: %s", fe, devid, c->fe_path, strerror(errno));
        c->phase = SBK_CARD_INITWAIT;
    }
    free(frontend);
    return c;
}

static struct sbk_card *sbk_find_card(struct sbk_daemon *d, unsigned fe, unsigned devid)
{
    for (struct sbk_card *c = d->cards; c; c = c->next)
        if (c->fe_domid == fe && c->devid == devid)
            return c;
    return NULL;
}

/* A directory entry that is a decimal id, else -1. */
static long long sbk_entry_id(const char *name)
{
    uint32_t v;

    return sbk_parse_u32(name, &v) == 0 ? (long long)v : -1;
}

/* Lists <be_root>/<fe>/<devid>, creates the new cards, forgets the vanished ones, steps all. */
static void sbk_bus_rescan(struct sbk_daemon *d)
{
    unsigned n_fe = 0;
    char **fes = xs_directory(d->xen.xs, XBT_NULL, d->be_root, &n_fe);
    struct sbk_card *c, *next;

    for (c = d->cards; c; c = c->next)
        c->seen = false;
    for (unsigned i = 0; fes && i < n_fe; i++) {
        long long fe = sbk_entry_id(fes[i]);
        char path[SBK_PATH_MAX + 16];
        unsigned n_dev = 0;
        char **devs;

        if (fe < 0 || fe >= 0x7FF0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", d->be_root, fes[i]);
        devs = xs_directory(d->xen.xs, XBT_NULL, path, &n_dev);
        for (unsigned j = 0; devs && j < n_dev; j++) {
            long long devid = sbk_entry_id(devs[j]);

            if (devid < 0)
                continue;
            c = sbk_find_card(d, (unsigned)fe, (unsigned)devid);
            if (!c)
                c = sbk_card_create(d, (unsigned)fe, (unsigned)devid);
            if (c)
                c->seen = true;
        }
        free(devs);
    }
    free(fes);
    for (c = d->cards; c; c = next) {
        next = c->next;
        if (!c->seen)
            sbk_card_destroy(d, c);
        else
            sbk_card_step(d, c);
    }
}

int sbk_bus_start(struct sbk_daemon *d)
{
    snprintf(d->be_root, sizeof(d->be_root), "/local/domain/%u/backend/vsnd", d->xen.own_domid);
    if (!xs_watch(d->xen.xs, d->be_root, SBK_TOKEN_BACKEND)) {
        sbk_error("cannot watch %s: %s", d->be_root, strerror(errno));
        return -1;
    }
    sbk_info("watching %s", d->be_root);
    sbk_bus_rescan(d);
    return 0;
}

/* The card a path under our backend directory belongs to, if known. */
static struct sbk_card *sbk_card_of_backend_path(struct sbk_daemon *d, const char *path)
{
    size_t root = strlen(d->be_root);
    unsigned fe, devid;
    int used = 0;

    if (strncmp(path, d->be_root, root) || path[root] != '/')
        return NULL;
    if (sscanf(path + root, "/%u/%u%n", &fe, &devid, &used) != 2 || (path[root + used] && path[root + used] != '/'))
        return NULL;
    return sbk_find_card(d, fe, devid);
}

static void sbk_bus_on_watch(struct sbk_daemon *d, const char *path, const char *token)
{
    struct sbk_card *c;

    if (strcmp(token, SBK_TOKEN_BACKEND) == 0) {
        c = sbk_card_of_backend_path(d, path);
        if (c)
            sbk_card_step(d, c);
        else
            sbk_bus_rescan(d);
        return;
    }
    for (c = d->cards; c; c = c->next)
        if (strcmp(c->token, token) == 0) {
            sbk_card_step(d, c);
            return;
        }
}

void sbk_bus_on_xenstore(struct sbk_daemon *d)
{
    for (int i = 0; i < SBK_WATCH_BATCH; i++) {
        char **vec = xs_check_watch(d->xen.xs);

        if (!vec)
            return;
        sbk_bus_on_watch(d, vec[XS_WATCH_PATH], vec[XS_WATCH_TOKEN]);
        free(vec);
    }
}

void sbk_bus_on_evtchn(struct sbk_card *c)
{
    /* One pending port per wake-up: the fd is polled before every xenevtchn_pending (it may block). */
    xenevtchn_port_or_error_t port = xenevtchn_pending(c->xce);
    int rc = 0;

    if (port < 0)
        return;
    for (unsigned i = 0; i < c->n_streams; i++)
        if (c->streams[i].ring_bound && c->streams[i].ring_port == (evtchn_port_t)port)
            rc = sbk_ring_service(&c->streams[i]);
    xenevtchn_unmask(c->xce, (evtchn_port_t)port);
    if (rc < 0)
        sbk_card_close_on_error(c);
}

uint64_t sbk_bus_run_deadlines(struct sbk_daemon *d)
{
    uint64_t now = sbk_now_ns(), next = UINT64_MAX;

    for (struct sbk_card *c = d->cards; c; c = c->next)
        for (unsigned i = 0; i < c->n_streams; i++) {
            uint64_t due = sbk_ring_next_deadline(&c->streams[i]);

            if (due <= now && sbk_ring_service(&c->streams[i]) < 0) {
                sbk_card_close_on_error(c);
                break;
            }
            due = sbk_ring_next_deadline(&c->streams[i]);
            if (due < next)
                next = due;
        }
    return next;
}

void sbk_bus_stop(struct sbk_daemon *d)
{
    xs_unwatch(d->xen.xs, d->be_root, SBK_TOKEN_BACKEND);
    while (d->cards) {
        struct sbk_card *c = d->cards;

        sbk_card_teardown(c);
        sbk_card_set_state(c, XenbusStateClosed);
        if (c->fe_watched)
            xs_unwatch(d->xen.xs, c->fe_path, c->token);
        d->cards = c->next;
        free(c);
    }
}
