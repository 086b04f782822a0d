/* xs_config: reading the vsnd card from xenstore and the frontend's xenbus handshake. */
#include "xs_config.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <stddef.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <alsa/asoundlib.h>
#include <xenstore.h>
#include <xen/io/xenbus.h>

#define XSC_PROTOCOL_VERSION "2"
#define XSC_VALUE_MAX 4096      /* xenstored's payload limit bounds every value */
#define XSC_PATH 400           /* any path we build: fe_path (<128) + pcm/stream + key */

/* ---------------------------------------------------------------- parsing */

/* A value from xenstore as it may be printed: at most `max` bytes of it, control characters,
 * quotes, backslashes and bytes >= 0x7f as C escapes (a hostile or broken value must not write
 * terminal controls or fake lines into the user's log); "..." when cut. out has 4*max+4 bytes. */
static const char *xsc_escape(const char *v, size_t max, char *out)
{
    size_t n = 0, i;

    for (i = 0; v[i] && i < max; i++) {
        unsigned char ch = (unsigned char)v[i];

        if (ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\')
            out[n++] = (char)ch;
        else
            n += (size_t)sprintf(out + n, "\\x%02x", ch);
    }
    if (v[i])
        n += (size_t)sprintf(out + n, "...");
    out[n] = 0;
    return out;
}

static void xsc_err(char *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void xsc_err(char *err, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err, XSC_ERR_LEN, fmt, ap);
    va_end(ap);
}

/* Formats a path into a XSC_PATH buffer; an over-long path becomes "" (which xenstore rejects). */
static void xsc_path(char *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void xsc_path(char *out, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(out, XSC_PATH, fmt, ap);
    va_end(ap);
    if (n < 0 || n >= XSC_PATH)
        out[0] = 0;
}

/* Whole-string decimal, no sign, no spaces, no leading zeros beyond "0", <= max. */
int xsc_parse_uint(const char *s, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;

    if (!s || !*s || (s[0] == '0' && s[1]))
        return -EINVAL;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -EINVAL;
        if ((uint64_t)(*s - '0') > max || v > (max - (uint64_t)(*s - '0')) / 10)
            return -ERANGE;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *out = v;
    return 0;
}

int xsc_parse_state(const char *s)
{
    uint64_t v;

    if (xsc_parse_uint(s, XenbusStateReconfigured, &v) < 0)
        return XenbusStateClosed;
    return (int)v;
}

static const char *const xsc_format_names[XSC_NFORMATS] = {
    "s8", "u8", "s16_le", "s16_be", "u16_le", "u16_be", "s24_le", "s24_be", "u24_le", "u24_be",
    "s32_le", "s32_be", "u32_le", "u32_be", "float_le", "float_be", "float64_le", "float64_be",
    "iec958_subframe_le", "iec958_subframe_be", "mu_law", "a_law", "ima_adpcm", "mpeg", "gsm",
};

/* libxl writes its own enum names for the float formats (f32_le ...). */
static const struct { const char *name; unsigned fmt; } xsc_xl_format_names[] = {
    { "f32_le", 14 }, { "f32_be", 15 }, { "f64_le", 16 }, { "f64_be", 17 },
};

const char *xsc_format_name(unsigned fmt)
{
    return fmt < XSC_NFORMATS ? xsc_format_names[fmt] : "?";
}

int xsc_format_from_name(const char *name)
{
    for (unsigned i = 0; i < XSC_NFORMATS; i++)
        if (!strcasecmp(name, xsc_format_names[i]))
            return (int)i;
    for (size_t i = 0; i < sizeof(xsc_xl_format_names) / sizeof(xsc_xl_format_names[0]); i++)
        if (!strcasecmp(name, xsc_xl_format_names[i].name))
            return (int)xsc_xl_format_names[i].fmt;
    return -1;
}

/* Reads path/key as a string: NULL if absent; -EINVAL (in *rc) if it holds a NUL or is huge. */
static char *xsc_read_str(xsc_read_fn rd, void *ctx, const char *dir, const char *key, int *rc)
{
    char path[XSC_PATH];
    unsigned len = 0;
    char *v;

    *rc = 0;
    xsc_path(path, "%s/%s", dir, key);
    if (!path[0]) {
        *rc = -ENAMETOOLONG;
        return NULL;
    }
    v = rd(ctx, path, &len);
    if (!v)
        return NULL;
    if (len > XSC_VALUE_MAX || strlen(v) != len) {
        free(v);
        *rc = -EINVAL;
        return NULL;
    }
    return v;
}

static int xsc_cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

    return x < y ? -1 : x > y;
}

/* "44100,48000" (',' is XENSND_LIST_SEPARATOR; ';' accepted from early drafts). */
static int xsc_parse_rates(const char *s, struct xsc_limits *l)
{
    char buf[XSC_VALUE_MAX + 1], *save = NULL;
    unsigned n = 0;

    snprintf(buf, sizeof(buf), "%s", s);
    for (char *tok = strtok_r(buf, ",;", &save); tok; tok = strtok_r(NULL, ",;", &save)) {
        uint64_t v;

        if (n == XSC_MAX_RATES || xsc_parse_uint(tok, UINT32_MAX, &v) < 0 || v == 0)
            return -EINVAL;
        l->rates[n++] = (uint32_t)v;
    }
    if (!n)
        return -EINVAL;
    qsort(l->rates, n, sizeof(l->rates[0]), xsc_cmp_u32);
    l->nrates = 0;
    for (unsigned i = 0; i < n; i++)
        if (!l->nrates || l->rates[l->nrates - 1] != l->rates[i])
            l->rates[l->nrates++] = l->rates[i];
    return 0;
}

static int xsc_parse_formats(const char *s, uint64_t *formats)
{
    char buf[XSC_VALUE_MAX + 1], *save = NULL;

    *formats = 0;
    snprintf(buf, sizeof(buf), "%s", s);
    for (char *tok = strtok_r(buf, ",;", &save); tok; tok = strtok_r(NULL, ",;", &save)) {
        int f = strlen(tok) <= 24 ? xsc_format_from_name(tok) : -1;

        if (f < 0)
            return -EINVAL;
        *formats |= 1ull << f;
    }
    return *formats ? 0 : -EINVAL;
}

/* Reads the limits set at one level (dir) and narrows *lim with them. */
static int xsc_read_limits(xsc_read_fn rd, void *ctx, const char *dir, struct xsc_limits *lim, char *err)
{
    static const char *const keys[] = { "sample-formats", "sample-rates", "channels-min", "channels-max",
                                        "buffer-size" };
    struct xsc_limits own = *lim;

    for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
        int rc;
        char *v = xsc_read_str(rd, ctx, dir, keys[k], &rc);
        uint64_t u = 0;

        if (rc < 0) {
            xsc_err(err, "%s/%s: unreadable value", dir, keys[k]);
            return rc;
        }
        if (!v)
            continue;
        switch (k) {
        case 0: {
            uint64_t f;

            rc = xsc_parse_formats(v, &f);
            own.formats &= f;
            break;
        }
        case 1: {
            struct xsc_limits r;
            unsigned n = 0;

            rc = xsc_parse_rates(v, &r);
            /* Intersect with what the parent allows. */
            for (unsigned i = 0; !rc && i < r.nrates; i++)
                for (unsigned j = 0; j < lim->nrates; j++)
                    if (r.rates[i] == lim->rates[j])
                        own.rates[n++] = r.rates[i];
            own.nrates = n;
            break;
        }
        case 2:
        case 3:
            rc = xsc_parse_uint(v, XSC_MAX_CHANNELS, &u);
            if (!rc && u == 0)
                rc = -EINVAL;
            if (k == 2 && u > own.channels_min)
                own.channels_min = (unsigned)u;
            if (k == 3 && u < own.channels_max)
                own.channels_max = (unsigned)u;
            if (k == 3)
                own.set |= XSC_SET_CHANNELS_MAX;
            break;
        default:
            rc = xsc_parse_uint(v, UINT32_MAX, &u);
            if (!rc && u < 4096)
                rc = -EINVAL;
            if (!rc && u < own.buffer_size)
                own.buffer_size = (uint32_t)u;
            own.set |= XSC_SET_BUFFER_SIZE;
            break;
        }
        if (rc < 0) {
            char shown[4 * 40 + 4];

            xsc_err(err, "%s/%s: invalid value \"%s\"", dir, keys[k], xsc_escape(v, 40, shown));
            free(v);
            return -EINVAL;
        }
        free(v);
    }
    if (!own.formats || !own.nrates || own.channels_min > own.channels_max) {
        xsc_err(err, "%s: %s leaves nothing of what the level above allows (a child must narrow its parent)",
                dir, !own.formats ? "sample-formats" : !own.nrates ? "sample-rates" : "channels-min/max");
        return -EINVAL;
    }
    *lim = own;
    return 0;
}

/* Card-level start: every format (the backend's HW_PARAM_QUERY narrows it), the standard
 * rates, any channel count and size; xsc_apply_defaults fills what no level set. */
static void xsc_default_limits(struct xsc_limits *l)
{
    static const uint32_t rates[] = { 5512, 8000, 11025, 16000, 22050, 32000, 44100, 48000,
                                      64000, 88200, 96000, 176400, 192000 };

    memset(l, 0, sizeof(*l));
    l->formats = (1ull << XSC_NFORMATS) - 1;
    memcpy(l->rates, rates, sizeof(rates));
    l->nrates = sizeof(rates) / sizeof(rates[0]);
    l->channels_min = 1;
    l->channels_max = XSC_MAX_CHANNELS;
    l->buffer_size = UINT32_MAX;
}

/* Keys no level set get the Linux frontend's defaults: at most 2 channels, 64 KiB. */
static void xsc_apply_defaults(struct xsc_limits *l)
{
    if (!(l->set & XSC_SET_CHANNELS_MAX))
        l->channels_max = l->channels_min > 2 ? l->channels_min : 2;
    if (!(l->set & XSC_SET_BUFFER_SIZE))
        l->buffer_size = 65536;
    if (l->buffer_size > XSC_BUFFER_SIZE_CAP)
        l->buffer_size = XSC_BUFFER_SIZE_CAP;
}

static int xsc_read_name(xsc_read_fn rd, void *ctx, const char *dir, const char *key, char *out, size_t cap,
                         char *err)
{
    int rc;
    char *v = xsc_read_str(rd, ctx, dir, key, &rc);

    out[0] = 0;
    if (rc < 0) {
        xsc_err(err, "%s/%s: unreadable value", dir, key);
        return rc;
    }
    if (v) {
        /* Names are shown to users: keep printable ASCII only, truncated to the field. */
        size_t n = 0;

        for (const char *p = v; *p && n + 1 < cap; p++)
            out[n++] = isprint((unsigned char)*p) ? *p : '?';
        out[n] = 0;
        free(v);
    }
    return 0;
}

static int xsc_parse_stream(xsc_read_fn rd, void *ctx, const char *dir, struct xsc_stream *st, char *err)
{
    int rc;
    char *v = xsc_read_str(rd, ctx, dir, "type", &rc);

    if (!v) {
        xsc_err(err, "%s/type: %s", dir, rc ? "unreadable value" : "missing (must be \"p\" or \"c\")");
        return -EINVAL;
    }
    if (strcmp(v, "p") && strcmp(v, "c")) {
        char shown[4 * 20 + 4];

        xsc_err(err, "%s/type: invalid value \"%s\" (must be \"p\" or \"c\")", dir, xsc_escape(v, 20, shown));
        free(v);
        return -EINVAL;
    }
    st->playback = v[0] == 'p';
    free(v);
    if ((rc = xsc_read_name(rd, ctx, dir, "unique-id", st->unique_id, sizeof(st->unique_id), err)) < 0)
        return rc;
    return xsc_read_limits(rd, ctx, dir, &st->lim, err);
}

/* Does dir/<index> exist? Indices are contiguous from 0; the first gap ends the list. */
static bool xsc_child_exists(xsc_read_fn rd, void *ctx, const char *dir, unsigned index, const char *key)
{
    char sub[XSC_PATH];
    int rc;
    char *v;

    xsc_path(sub, "%s/%u", dir, index);
    v = xsc_read_str(rd, ctx, sub, key, &rc);
    free(v);
    return v != NULL || rc < 0;
}

int xsc_parse_card(xsc_read_fn rd, void *ctx, const char *fe_path, struct xsc_card *card, char *err)
{
    struct xsc_limits card_lim;
    char dir[XSC_PATH];
    int rc;

    card->npcms = card->nstreams = 0;
    if ((rc = xsc_read_name(rd, ctx, fe_path, "short-name", card->short_name, sizeof(card->short_name), err)) < 0 ||
        (rc = xsc_read_name(rd, ctx, fe_path, "long-name", card->long_name, sizeof(card->long_name), err)) < 0)
        return rc;
    xsc_default_limits(&card_lim);
    if ((rc = xsc_read_limits(rd, ctx, fe_path, &card_lim, err)) < 0)
        return rc;
    /* A PCM device is known by its first stream's `type` (its `name` is optional). */
    for (unsigned p = 0; p < XSC_MAX_PCMS; p++) {
        struct xsc_limits pcm_lim = card_lim;

        xsc_path(dir, "%s/%u", fe_path, p);
        if (!xsc_child_exists(rd, ctx, dir, 0, "type"))
            break;
        if ((rc = xsc_read_name(rd, ctx, dir, "name", card->pcm_name[p], sizeof(card->pcm_name[p]), err)) < 0 ||
            (rc = xsc_read_limits(rd, ctx, dir, &pcm_lim, err)) < 0)
            return rc;
        card->npcms = p + 1;
        for (unsigned s = 0; s < XSC_MAX_STREAMS_PER_PCM; s++) {
            struct xsc_stream *st = &card->streams[card->nstreams];
            char sdir[XSC_PATH];

            if (!xsc_child_exists(rd, ctx, dir, s, "type"))
                break;
            xsc_path(sdir, "%s/%u", dir, s);
            memset(st, 0, sizeof(*st));
            st->pcm = p;
            st->index = s;
            st->lim = pcm_lim;
            if ((rc = xsc_parse_stream(rd, ctx, sdir, st, err)) < 0)
                return rc;
            xsc_apply_defaults(&st->lim);
            card->nstreams++;
        }
    }
    if (!card->nstreams) {
        xsc_err(err, "%s: the card has no stream (expected %s/0/0/type)", fe_path, fe_path);
        return -ENOENT;
    }
    return 0;
}

/* ---------------------------------------------------------------- xenstore */

static char *xsc_xs_read(void *ctx, const char *path, unsigned *len)
{
    return xs_read((struct xs_handle *)ctx, XBT_NULL, path, len);
}

static char *xsc_read_key(struct xsc_conn *c, const char *dir, const char *key)
{
    int rc;

    return xsc_read_str(xsc_xs_read, c->xs, dir, key, &rc);
}

static int xsc_read_uint_key(struct xsc_conn *c, const char *dir, const char *key, uint64_t max, uint64_t *out)
{
    char *v = xsc_read_key(c, dir, key);
    int rc = v ? xsc_parse_uint(v, max, out) : -ENOENT;

    free(v);
    return rc;
}

static int xsc_state_of(struct xsc_conn *c, const char *dir)
{
    char *v = xsc_read_key(c, dir, "state");
    int st = v ? xsc_parse_state(v) : XenbusStateClosed;

    free(v);
    return st;
}

int xsc_backend_state(struct xsc_conn *c)
{
    return xsc_state_of(c, c->card.be_path);
}

static const char *xsc_state_name(int st)
{
    static const char *const names[] = { "Unknown", "Initialising", "InitWait", "Initialised", "Connected",
                                         "Closing", "Closed", "Reconfiguring", "Reconfigured" };

    return st >= 0 && st <= XenbusStateReconfigured ? names[st] : "?";
}

static int xsc_write_state(struct xsc_conn *c, int st)
{
    char path[XSC_PATH], val[4];

    xsc_path(path, "%s/state", c->card.fe_path);
    snprintf(val, sizeof(val), "%d", st);
    if (!xs_write(c->xs, XBT_NULL, path, val, strlen(val))) {
        int e = errno;

        SNDERR("vsnd card %u: cannot write %s: %s", c->card.devid, path, strerror(e));
        return -e;
    }
    return 0;
}

static long long xsc_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits until the backend's state is one of the `want` bits (1 << state), at most timeout_ms.
 * Returns the state reached, or -ETIMEDOUT / -EIO. Bounded: every poll has the remaining time. */
static int xsc_wait_backend(struct xsc_conn *c, unsigned want, unsigned timeout_ms)
{
    char path[XSC_PATH];
    long long deadline = xsc_now_ms() + timeout_ms;
    int st = -1;

    xsc_path(path, "%s/state", c->card.be_path);
    if (!xs_watch(c->xs, path, "xsnd-be-state"))
        return -errno;
    for (;;) {
        struct pollfd pfd = { .fd = xs_fileno(c->xs), .events = POLLIN };
        long long left;
        char **vec;

        st = xsc_state_of(c, c->card.be_path);
        if (want & (1u << st))
            break;
        left = deadline - xsc_now_ms();
        if (left <= 0) {
            st = -ETIMEDOUT;
            break;
        }
        if (poll(&pfd, 1, (int)left) < 0 && errno != EINTR) {
            st = -EIO;
            break;
        }
        /* Drain the watch events; the state is re-read at the top anyway. */
        while ((vec = xs_check_watch(c->xs)) != NULL)
            free(vec);
    }
    xs_unwatch(c->xs, path, "xsnd-be-state");
    return st;
}

#define XSC_LIVE_TOKEN "xsnd-be-live" /* the watch kept from Connected on (xsc_wait_backend's is brief) */

int xsc_watch_backend(struct xsc_conn *c)
{
    char path[XSC_PATH];

    xsc_path(path, "%s/state", c->card.be_path);
    if (!xs_watch(c->xs, path, XSC_LIVE_TOKEN)) {
        int e = errno ? errno : EIO;

        SNDERR("vsnd card %u: cannot watch %s: %s", c->card.devid, path, strerror(e));
        return -e;
    }
    return 0;
}

int xsc_watch_fd(struct xsc_conn *c)
{
    return xs_fileno(c->xs);
}

bool xsc_backend_left(struct xsc_conn *c)
{
    bool fired = false;
    char **vec;

    /* Any event counts, whatever its token: the state is read afresh. */
    while ((vec = xs_check_watch(c->xs)) != NULL) {
        fired = true;
        free(vec);
    }
    return fired && xsc_backend_state(c) != XenbusStateConnected;
}

/* The basename of a symlink's target ("" if it is no link). */
static void xsc_link_name(const char *path, char *out, size_t cap)
{
    char link[PATH_MAX];
    ssize_t n = readlink(path, link, sizeof(link) - 1);
    const char *base;

    out[0] = 0;
    if (n < 0)
        return;
    link[n] = 0;
    base = strrchr(link, '/') ? strrchr(link, '/') + 1 : link;
    n = (ssize_t)strnlen(base, cap - 1);
    memcpy(out, base, (size_t)n);
    out[n] = 0;
}

/* The ALSA card whose parent device is `dev` (a sysfs path): "hw:N", or "". */
static void xsc_alsa_card_of(const char *dev, char *out, size_t cap)
{
    char want[PATH_MAX], path[XSC_PATH], got[PATH_MAX];
    DIR *dir = opendir("/sys/class/sound");

    out[0] = 0;
    if (!dir || !realpath(dev, want)) {
        if (dir)
            closedir(dir);
        return;
    }
    for (struct dirent *de; (de = readdir(dir)) != NULL;) {
        if (strncmp(de->d_name, "card", 4))
            continue;
        xsc_path(path, "/sys/class/sound/%s/device", de->d_name);
        if (realpath(path, got) && !strcmp(got, want))
            snprintf(out, cap, "hw:%s", de->d_name + 4);
    }
    closedir(dir);
}

/* The kernel's snd_xen_front binds xenbus device vsnd-<devid> when it is loaded (udev loads
 * it on any guest whose kernel has it): then the card is the kernel's, not ours. */
static int xsc_check_kernel_driver(unsigned devid)
{
    char dev[XSC_PATH], path[XSC_PATH], driver[128], module[128], card[64];

    xsc_path(dev, "/sys/bus/xen/devices/vsnd-%u", devid);
    xsc_path(path, "%s/driver", dev);
    xsc_link_name(path, driver, sizeof(driver));
    if (!driver[0])
        return 0;
    xsc_path(path, "%s/driver/module", dev);
    xsc_link_name(path, module, sizeof(module));
    xsc_alsa_card_of(dev, card, sizeof(card));
    /* Users know the module (snd_xen_front); the driver is called after its device type (vsnd). */
    if (module[0])
        SNDERR("vsnd card %u: the kernel driver %s already drives this card%s%s; unload it (modprobe -r %s) "
               "or blacklist it to use this plugin", devid, module, card[0] ? " as ALSA device " : "", card, module);
    else
        SNDERR("vsnd card %u: the kernel driver %s (built into the kernel) already drives this card%s%s; "
               "unbind it (/sys/bus/xen/drivers/%s/unbind) to use this plugin", devid, driver,
               card[0] ? " as ALSA device " : "", card, driver);
    return -EBUSY;
}

static int xsc_first_card(struct xsc_conn *c, const char *vsnd_dir)
{
    unsigned n = 0, best = UINT_MAX;
    char **ents = xs_directory(c->xs, XBT_NULL, vsnd_dir, &n);

    for (unsigned i = 0; ents && i < n; i++) {
        uint64_t v;

        if (xsc_parse_uint(ents[i], 65535, &v) == 0 && v < best)
            best = (unsigned)v;
    }
    free(ents);
    if (best == UINT_MAX) {
        SNDERR("no vsnd card in xenstore (%s is empty or missing): is vsnd=[...] in the guest's xl.cfg?",
               vsnd_dir);
        return -ENODEV;
    }
    return (int)best;
}

int xsc_open(struct xsc_conn *c, int devid, unsigned timeout_ms)
{
    struct xsc_card *card = &c->card;
    char err[XSC_ERR_LEN], vsnd_dir[96], *be;
    uint64_t v;
    int rc;

    memset(c, 0, sizeof(*c));
    c->token_fd = -1;
    c->timeout_ms = timeout_ms;
    c->xs = xs_open(0);
    if (!c->xs) {
        rc = -errno;
        SNDERR("cannot open xenstore (/dev/xen/xenbus): %s; is this a Xen guest, and may this user use "
               "the /dev/xen devices (see README)?", strerror(-rc));
        return rc ? rc : -ENODEV;
    }
    /* Our own domid: the relative key `domid`, written by the toolstack. */
    {
        char *dom = xs_read(c->xs, XBT_NULL, "domid", NULL);

        rc = dom ? xsc_parse_uint(dom, 65534, &v) : -ENOENT;
        free(dom);
        if (rc < 0) {
            SNDERR("cannot read this domain's id (xenstore key \"domid\" under its home)");
            xsc_close(c);
            return -ENODEV;
        }
    }
    card->own_domid = (unsigned)v;
    snprintf(vsnd_dir, sizeof(vsnd_dir), "/local/domain/%u/device/vsnd", card->own_domid);
    if (devid < 0 && (devid = xsc_first_card(c, vsnd_dir)) < 0) {
        xsc_close(c);
        return devid;
    }
    card->devid = (unsigned)devid;
    snprintf(card->fe_path, sizeof(card->fe_path), "%s/%u", vsnd_dir, card->devid);
    if ((rc = xsc_check_kernel_driver(card->devid)) < 0) {
        xsc_close(c);
        return rc;
    }
    be = xsc_read_key(c, card->fe_path, "backend");
    if (!be || be[0] != '/' || strlen(be) >= sizeof(card->be_path)) {
        SNDERR("vsnd card %u: %s/backend is %s", card->devid, card->fe_path, be ? "invalid" : "missing (no such card?)");
        free(be);
        xsc_close(c);
        return -ENODEV;
    }
    strcpy(card->be_path, be);
    free(be);
    if (xsc_read_uint_key(c, card->fe_path, "backend-id", 65534, &v) < 0) {
        SNDERR("vsnd card %u: %s/backend-id is missing or invalid", card->devid, card->fe_path);
        xsc_close(c);
        return -ENODEV;
    }
    card->be_domid = (unsigned)v;
    rc = xsc_parse_card(xsc_xs_read, c->xs, card->fe_path, card, err);
    if (rc < 0) {
        SNDERR("vsnd card %u: bad configuration: %s", card->devid, err);
        xsc_close(c);
        return rc;
    }
    return 0;
}

void xsc_close(struct xsc_conn *c)
{
    if (c->xs)
        xs_close(c->xs);
    c->xs = NULL;
}

/* ---------------------------------------------------------------- holder record */

/* The start time of a process (field 22 of /proc/PID/stat), 0 if it does not exist or has ended (a
 * zombie: its parent has not reaped it, or never will, as some containers' pid 1): with the pid it
 * names a live process unambiguously, even after the pid is reused. */
static unsigned long long xsc_proc_starttime(long pid)
{
    char path[64], buf[1024], *p, state = 0;
    unsigned long long start = 0;
    FILE *f;

    xsc_path(path, "/proc/%ld/stat", pid);
    f = fopen(path, "r");
    if (!f)
        return 0;
    if (fgets(buf, sizeof(buf), f) && (p = strrchr(buf, ')')) != NULL) {
        /* after ") " come fields 3..: state is 3, starttime is 22 */
        if (sscanf(p + 2, "%c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d %llu",
                   &state, &start) != 2 || state == 'Z' || state == 'X')
            start = 0;
    }
    fclose(f);
    return start;
}

static void xsc_holder_path(struct xsc_conn *c, char *path, size_t cap)
{
    snprintf(path, cap, "/local/domain/%u/data/pcm_xen/vsnd-%u/holder", c->card.own_domid, c->card.devid);
}

/* "PID STARTTIME" of the card's keeper while processes share it (keeper.c): it outlives the holder. */
static void xsc_keeper_path(struct xsc_conn *c, char *path, size_t cap)
{
    snprintf(path, cap, "/local/domain/%u/data/pcm_xen/vsnd-%u/keeper", c->card.own_domid, c->card.devid);
}

/* The inode of one of this process's namespaces (/proc/self/ns/KIND), 0 when unknown (no /proc). */
static unsigned long long xsc_ns_id(const char *kind)
{
    char path[64];
    struct stat st;

    snprintf(path, sizeof(path), "/proc/self/ns/%s", kind);
    return stat(path, &st) == 0 ? (unsigned long long)st.st_ino : 0;
}

/* The abstract unix socket name of a holder's liveness token: bound while the holder lives, released
 * by the kernel when it dies (no pid, no /proc involved); one name space per network namespace. */
static socklen_t xsc_token_addr(const char *nonce, struct sockaddr_un *sa)
{
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    snprintf(sa->sun_path + 1, sizeof(sa->sun_path) - 1, "pcm_xen-holder-%s", nonce);
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(sa->sun_path + 1));
}

/* Binds our token under a fresh random nonce and listens on it (the processes of our user that
 * come to share the card connect there: keeper.c); -1 when sockets are unavailable (a sandbox). */
static int xsc_token_bind(char nonce[XSC_NONCE_LEN + 1])
{
    struct sockaddr_un sa;
    unsigned char r[XSC_NONCE_LEN / 2];
    int fd;

    if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
        return -1;
    for (size_t i = 0; i < sizeof(r); i++)
        snprintf(nonce + 2 * i, 3, "%02x", r[i]);
    fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (bind(fd, (struct sockaddr *)&sa, xsc_token_addr(nonce, &sa)) < 0 || listen(fd, 16) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Is the token `nonce` bound in our network namespace? 1 yes, 0 no, -1 cannot tell. */
static int xsc_token_bound(const char *nonce)
{
    struct sockaddr_un sa;
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0), rc; /* the token's type: older kernels keep
                                                                     * one abstract name space per type */

    if (fd < 0)
        return -1;
    rc = bind(fd, (struct sockaddr *)&sa, xsc_token_addr(nonce, &sa)) == 0 ? 0 : errno == EADDRINUSE ? 1 : -1;
    close(fd);
    return rc;
}

/* A holder record, "PID STARTTIME PIDNS NETNS NONCE" (older plugins wrote "PID STARTTIME"). */
struct xsc_holder {
    long pid;
    unsigned long long start, pidns, netns;
    char nonce[XSC_NONCE_LEN + 1];
    int fields;
};

static bool xsc_holder_parse(const char *rec, struct xsc_holder *h)
{
    memset(h, 0, sizeof(*h));
    if (!rec)
        return false;
    h->fields = sscanf(rec, "%ld %llu %llu %llu %" XSC_STR(XSC_NONCE_LEN) "[0-9a-f-]", &h->pid, &h->start, &h->pidns,
                       &h->netns, h->nonce);
    return h->fields >= 2 && h->pid > 0;
}

/* Does the record name a live process? Death needs proof, from whichever means reaches the holder:
 * its pid (same PID namespace: kill(0) says whether it exists, the start time whether the pid was
 * reused) or its token (bound: alive; unbound in the same network namespace: gone, whatever /proc
 * shows: hidepid, PID namespaces). A holder none of them reaches (other namespaces, no /proc) counts
 * as alive, *unsure set: the card is never reset under a live holder; README says how an
 * administrator clears a stale record. */
static bool xsc_holder_alive(const struct xsc_holder *h, bool *unsure)
{
    unsigned long long my_netns = xsc_ns_id("net");
    bool same_pidns = h->fields == 2 || (h->pidns && h->pidns == xsc_ns_id("pid"));
    int token = h->fields == 5 && h->nonce[0] != '-' ? xsc_token_bound(h->nonce) : -1;

    *unsure = false;
    if (same_pidns) {
        unsigned long long start;

        if (h->pid == (long)getpid())
            return false; /* our own pid: a record left by the program this process replaced (exec) */
        if (kill((pid_t)h->pid, 0) < 0 && errno == ESRCH)
            return false; /* gone (a fork()ed child may still hold a copy of its token) */
        start = xsc_proc_starttime(h->pid);
        if (start)
            return start == h->start; /* a different start time: the pid was reused */
    }
    if (token == 1)
        return true;
    if (token == 0 && h->netns && h->netns == my_netns)
        return false;
    *unsure = true; /* a pid that exists but /proc hides (hidepid), or a holder out of our reach */
    return true;
}

/* Does the keeper node name a live process? The keeper is a fork of the holder, in its PID
 * namespace: only checked from there (elsewhere the token, which the keeper holds, answers). */
static bool xsc_keeper_alive(const char *rec, const struct xsc_holder *h)
{
    unsigned long long start;
    long pid;

    if (!rec || sscanf(rec, "%ld %llu", &pid, &start) != 2 || pid <= 0)
        return false;
    if (h->fields == 5 && h->pidns != xsc_ns_id("pid"))
        return false;
    if (kill((pid_t)pid, 0) < 0 && errno == ESRCH)
        return false;
    return xsc_proc_starttime(pid) == start;
}

/* The refusal naming a live holder (and, when it cannot be checked from here, how to clear it). */
static void xsc_busy(struct xsc_conn *c, const struct xsc_holder *h, bool unsure, const char *path, char *err)
{
    if (unsure)
        xsc_err(err, "vsnd card %u is in use by process %ld (which this process cannot check: another namespace, or "
                "/proc hides it; if it no longer runs, remove %s)", c->card.devid, h->pid, path);
    else
        xsc_err(err, "vsnd card %u is in use by process %ld", c->card.devid, h->pid);
}

int xsc_claim(struct xsc_conn *c, char *err)
{
    char path[XSC_PATH], kpath[XSC_PATH], me[160], nonce[XSC_NONCE_LEN + 1] = "-";

    xsc_holder_path(c, path, sizeof(path));
    xsc_keeper_path(c, kpath, sizeof(kpath));
    if (c->token_fd < 0)
        c->token_fd = xsc_token_bind(nonce);
    else
        memcpy(nonce, c->token_nonce, sizeof(nonce));
    if (c->token_fd < 0)
        memcpy(nonce, "-", 2);
    memcpy(c->token_nonce, nonce, sizeof(nonce));
    snprintf(me, sizeof(me), "%ld %llu %llu %llu %s", (long)getpid(), xsc_proc_starttime(getpid()), xsc_ns_id("pid"),
             xsc_ns_id("net"), nonce);
    /* Read-check-write in a transaction: two processes opening at once cannot both win. */
    for (int attempt = 0; attempt < 16; attempt++) {
        xs_transaction_t t = xs_transaction_start(c->xs);
        struct xsc_holder h;
        bool unsure = false;
        char *rec, *krec;
        int e;

        if (!t) {
            e = errno ? errno : EIO;
            xsc_err(err, "vsnd card %u: cannot start a xenstore transaction: %s", c->card.devid, strerror(e));
            return -e;
        }
        rec = xs_read(c->xs, t, path, NULL);
        krec = xs_read(c->xs, t, kpath, NULL);
        if (xsc_holder_parse(rec, &h) && (xsc_keeper_alive(krec, &h) || xsc_holder_alive(&h, &unsure))) {
            free(rec);
            free(krec);
            xs_transaction_end(c->xs, t, true);
            xsc_busy(c, &h, unsure, path, err);
            /* Where a process of our user may ask to share it (keeper.c). */
            memcpy(c->holder_nonce, h.fields == 5 ? h.nonce : "-", h.fields == 5 ? sizeof(h.nonce) : 2);
            c->holder_pid = h.pid;
            return -EBUSY;
        }
        free(rec);
        if (krec)
            xs_rm(c->xs, t, kpath); /* a dead keeper's: the card is ours now */
        free(krec);
        if (!xs_write(c->xs, t, path, me, strlen(me))) {
            e = errno ? errno : EIO;
            xs_transaction_end(c->xs, t, true);
            xsc_err(err, "vsnd card %u: cannot write %s: %s", c->card.devid, path, strerror(e));
            return -e;
        }
        if (xs_transaction_end(c->xs, t, false))
            return 0;
        if (errno != EAGAIN) {
            e = errno ? errno : EIO;
            xsc_err(err, "vsnd card %u: cannot commit the claim of %s: %s", c->card.devid, path, strerror(e));
            return -e;
        }
    }
    xsc_err(err, "vsnd card %u: xenstore transaction kept conflicting", c->card.devid);
    return -EAGAIN;
}

void xsc_release(struct xsc_conn *c)
{
    char path[XSC_PATH], *rec;
    long pid;

    /* Only our own record: a process refused with -EBUSY must not free the holder's card. */
    xsc_holder_path(c, path, sizeof(path));
    rec = xs_read(c->xs, XBT_NULL, path, NULL);
    if (rec && sscanf(rec, "%ld", &pid) == 1 && pid == (long)getpid())
        xs_rm(c->xs, XBT_NULL, path);
    free(rec);
    xsc_drop_token(c);
}

int xsc_record_keeper(struct xsc_conn *c)
{
    char path[XSC_PATH], me[64];

    xsc_keeper_path(c, path, sizeof(path));
    snprintf(me, sizeof(me), "%ld %llu", (long)getpid(), xsc_proc_starttime(getpid()));
    return xs_write(c->xs, XBT_NULL, path, me, strlen(me)) ? 0 : -EIO;
}

void xsc_release_keeper(struct xsc_conn *c)
{
    char path[XSC_PATH], kpath[XSC_PATH], *rec;
    struct xsc_holder h;

    /* The holder record of this card's connection (our nonce), whichever process wrote it. */
    xsc_holder_path(c, path, sizeof(path));
    xsc_keeper_path(c, kpath, sizeof(kpath));
    rec = xs_read(c->xs, XBT_NULL, path, NULL);
    if (xsc_holder_parse(rec, &h) && h.fields == 5 && !strcmp(h.nonce, c->token_nonce))
        xs_rm(c->xs, XBT_NULL, path);
    free(rec);
    xs_rm(c->xs, XBT_NULL, kpath);
    xsc_drop_token(c);
}

bool xsc_keeper_died(struct xsc_conn *c)
{
    char path[XSC_PATH], kpath[XSC_PATH], *rec, *krec;
    struct xsc_holder h, me = { .fields = 2 }; /* the keeper is in our PID namespace */
    bool died;

    xsc_holder_path(c, path, sizeof(path));
    xsc_keeper_path(c, kpath, sizeof(kpath));
    rec = xs_read(c->xs, XBT_NULL, path, NULL);
    krec = xs_read(c->xs, XBT_NULL, kpath, NULL);
    died = xsc_holder_parse(rec, &h) && h.pid == (long)getpid() && h.fields == 5 && !strcmp(h.nonce, c->token_nonce) &&
           krec && !xsc_keeper_alive(krec, &me);
    free(rec);
    free(krec);
    return died;
}

int xsc_token_connect(const char *nonce, unsigned timeout_ms)
{
    struct timeval tv = { (time_t)(timeout_ms / 1000), (suseconds_t)(timeout_ms % 1000) * 1000 };
    struct sockaddr_un sa;
    int fd, e;

    if (!nonce[0] || nonce[0] == '-')
        return -ECONNREFUSED; /* a holder without a token (an older plugin, or a sandbox) */
    fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    /* connect() waits while the listener's backlog is full: SO_SNDTIMEO bounds that wait (EAGAIN). */
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&sa, xsc_token_addr(nonce, &sa)) < 0) {
        e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

void xsc_drop_token(struct xsc_conn *c)
{
    if (c->token_fd >= 0)
        close(c->token_fd);
    c->token_fd = -1;
}

/* ---------------------------------------------------------------- handshake */

/* Does the backend's `versions` list (when present) include ours? */
static int xsc_check_versions(struct xsc_conn *c)
{
    char *v = xsc_read_key(c, c->card.be_path, "versions");
    char *save = NULL;
    bool ok = false;

    if (!v)
        return 0; /* neither Linux, snd_be nor libxl write it: assume 2 */
    for (char *tok = strtok_r(v, ",;", &save); tok; tok = strtok_r(NULL, ",;", &save))
        if (!strcmp(tok, XSC_PROTOCOL_VERSION))
            ok = true;
    if (!ok) {
        char shown[4 * 40 + 4];

        SNDERR("vsnd card %u: the backend supports protocol versions \"%s\", not %s", c->card.devid,
               xsc_escape(v, 40, shown), XSC_PROTOCOL_VERSION);
    }
    free(v);
    return ok ? 0 : -EPROTO;
}

int xsc_prepare_connect(struct xsc_conn *c)
{
    int fe = xsc_state_of(c, c->card.fe_path);
    int be, rc;

    /* A previous holder that died leaves Initialised/Connected (or Closing) behind:
     * Initialising tells the backend to drop that connection and start over. */
    if (fe != XenbusStateInitialising && (rc = xsc_write_state(c, XenbusStateInitialising)) < 0)
        return rc;
    be = xsc_wait_backend(c, 1u << XenbusStateInitWait, c->timeout_ms);
    if (be < 0) {
        SNDERR("vsnd card %u: backend %s did not reach InitWait within %u ms (state %s)", c->card.devid,
               c->card.be_path, c->timeout_ms, xsc_state_name(xsc_backend_state(c)));
        return -ENODEV;
    }
    return xsc_check_versions(c);
}

static int xsc_write_key(struct xsc_conn *c, xs_transaction_t t, const char *dir, const char *key, unsigned long v)
{
    char path[XSC_PATH], val[24];

    xsc_path(path, "%s/%s", dir, key);
    snprintf(val, sizeof(val), "%lu", v);
    return xs_write(c->xs, t, path, val, strlen(val)) ? 0 : errno ? -errno : -EIO;
}

/* All keys, `version` and state Initialised in one transaction, redone on EAGAIN. */
static int xsc_publish(struct xsc_conn *c, const struct xsc_stream_keys *keys)
{
    for (int attempt = 0; attempt < 16; attempt++) {
        xs_transaction_t t = xs_transaction_start(c->xs);
        char path[XSC_PATH];
        int rc = 0;

        if (!t)
            return errno ? -errno : -EIO;
        for (unsigned i = 0; !rc && i < c->card.nstreams; i++) {
            const struct xsc_stream *st = &c->card.streams[i];
            char dir[XSC_PATH];

            xsc_path(dir, "%s/%u/%u", c->card.fe_path, st->pcm, st->index);
            if ((rc = xsc_write_key(c, t, dir, "ring-ref", keys[i].ring_ref)) < 0 ||
                (rc = xsc_write_key(c, t, dir, "event-channel", keys[i].port)) < 0 ||
                (rc = xsc_write_key(c, t, dir, "evt-ring-ref", keys[i].evt_ring_ref)) < 0 ||
                (rc = xsc_write_key(c, t, dir, "evt-event-channel", keys[i].evt_port)) < 0)
                break;
        }
        xsc_path(path, "%s/version", c->card.fe_path);
        if (!rc && !xs_write(c->xs, t, path, XSC_PROTOCOL_VERSION, 1))
            rc = errno ? -errno : -EIO;
        if (!rc)
            rc = xsc_write_key(c, t, c->card.fe_path, "state", XenbusStateInitialised);
        if (rc < 0) {
            xs_transaction_end(c->xs, t, true);
            return rc;
        }
        if (xs_transaction_end(c->xs, t, false))
            return 0;
        if (errno != EAGAIN)
            return errno ? -errno : -EIO;
    }
    return -EAGAIN;
}

int xsc_connect(struct xsc_conn *c, const struct xsc_stream_keys *keys)
{
    int rc = xsc_publish(c, keys);

    if (rc < 0) {
        SNDERR("vsnd card %u: cannot publish the rings in %s: %s", c->card.devid, c->card.fe_path, strerror(-rc));
        return rc;
    }
    rc = xsc_wait_backend(c, 1u << XenbusStateConnected | 1u << XenbusStateClosing | 1u << XenbusStateClosed,
                          c->timeout_ms);
    if (rc != XenbusStateConnected) {
        if (rc == -ETIMEDOUT)
            SNDERR("vsnd card %u: backend did not connect within %u ms (state %s)", c->card.devid,
                   c->timeout_ms, xsc_state_name(xsc_backend_state(c)));
        else
            SNDERR("vsnd card %u: backend refused the connection (state %s); see the backend's log",
                   c->card.devid, xsc_state_name(rc < 0 ? xsc_backend_state(c) : rc));
        return -ENODEV;
    }
    return xsc_write_state(c, XenbusStateConnected);
}

void xsc_disconnect(struct xsc_conn *c)
{
    /* Best effort: the backend tears down on Closing; give it a bounded moment to unmap
     * before we revoke the grants (it may still hold them afterwards, which Xen allows). */
    if (xsc_write_state(c, XenbusStateClosing) == 0)
        xsc_wait_backend(c, 1u << XenbusStateInitWait | 1u << XenbusStateClosed,
                         c->timeout_ms < 1000 ? c->timeout_ms : 1000);
    xsc_write_state(c, XenbusStateClosed);
    xsc_write_state(c, XenbusStateInitialising);
}
