/* ctl_xen: the ALSA control device of a Xen PV sound card (ctl.xen, ctl.xen_raw), a ctl_ext plugin.
 *
 * Applications open the control device of the same name as the PCM they play on: JACK reads the
 * card's driver name from `xen_raw`'s ctl ("Invalid CTL xen_raw" without one), PulseAudio probes a
 * mixer, users type `amixer -D xen`. So a ctl must open; what it shows must be true.
 *
 * What it exposes, and why: the card's identity and no elements.
 *  - id/name/longname come from the card's xenstore nodes (short-name, long-name), read once at open
 *    with xs_config's reader (xsc_open, which reads and never claims); driver is "pcm_xen". card_idx
 *    is -1: there is no kernel card number behind it.
 *  - No volume or mute element. sndif has SET_VOLUME/GET_VOLUME/MUTE/UNMUTE, but xen-troops' snd_be
 *    answers them with -EINVAL, Linux's snd_xen_front never sends them, and our sndback stores but
 *    does not apply them. A "Master Playback Volume" here would be a control that does nothing: a
 *    slider that moves and a sound that does not change. Without elements, `amixer -D xen` says
 *    "Controls: 0" / "Simple ctrls: 0", and sound servers use their software volume, as they do
 *    for any plugin PCM. When a backend applies volume, elements can be added then.
 *  - It never claims or connects the card: the card belongs to the process that plays (one per
 *    card, see xsc_claim), and opening a ctl must never take it from a PCM in another process,
 *    nor be refused with EBUSY because one plays.
 *  - One poll descriptor, an eventfd that is never written: nothing ever changes, so a client that
 *    waits for events (snd_ctl_wait, amixer events) waits, as on a card without controls, instead
 *    of failing for want of a descriptor.
 *
 * Options: those of the PCM (card, device, stream, timeout; 50-pcm-xen.conf gives ctl.xen the PCMs'
 * @args, so `xen:CARD=0,DEV=0`'s ctl name `xen:CARD=0` works). A control device belongs to a card,
 * as hw:N's covers all its PCM devices: `card` selects it, the others are checked as the PCM checks
 * them and otherwise unused.
 *
 * If xenstore cannot be read or the card does not exist, the open fails with xsc_open's one-line
 * message and its negative errno, as the PCM does. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <alsa/asoundlib.h>
#include <alsa/control_external.h>

#include "xs_config.h"

#define XCTL_DEFAULT_TIMEOUT_MS 3000 /* the PCM's default; a ctl never waits for the backend */
#define XCTL_DRIVER             "pcm_xen"

struct xctl {
    snd_ctl_ext_t ext;
    int event_fd; /* never written: no element, so no event */
};

struct xctl_options {
    long card;    /* -1: the first card */
    long device;  /* checked, unused: a ctl is per card */
    long timeout; /* checked, unused: a ctl never waits for the backend */
};

/* ---------------------------------------------------------------- callbacks: an empty card */

static void xctl_close(snd_ctl_ext_t *ext)
{
    struct xctl *x = ext->private_data;

    close(x->event_fd);
    free(x);
}

static int xctl_elem_count(snd_ctl_ext_t *ext)
{
    (void)ext;
    return 0;
}

/* Only called with an offset below elem_count (never) or for a stale numid: nothing is there. */
static int xctl_elem_list(snd_ctl_ext_t *ext, unsigned int offset, snd_ctl_elem_id_t *id)
{
    (void)ext, (void)offset, (void)id;
    return -ENOENT;
}

static snd_ctl_ext_key_t xctl_find_elem(snd_ctl_ext_t *ext, const snd_ctl_elem_id_t *id)
{
    (void)ext, (void)id;
    return SND_CTL_EXT_KEY_NOT_FOUND;
}

static int xctl_get_attribute(snd_ctl_ext_t *ext, snd_ctl_ext_key_t key, int *type, unsigned int *acc,
                              unsigned int *count)
{
    (void)ext, (void)key, (void)type, (void)acc, (void)count;
    return -ENOENT;
}

/* Called by snd_ctl_read after a wakeup; there is never an event. */
static int xctl_read_event(snd_ctl_ext_t *ext, snd_ctl_elem_id_t *id, unsigned int *event_mask)
{
    (void)ext, (void)id, (void)event_mask;
    return -EAGAIN;
}

static const snd_ctl_ext_callback_t xctl_callback = {
    .close = xctl_close,
    .elem_count = xctl_elem_count,
    .elem_list = xctl_elem_list,
    .find_elem = xctl_find_elem,
    .get_attribute = xctl_get_attribute,
    .read_event = xctl_read_event,
};

/* ---------------------------------------------------------------- options */

/* An integer, or a string holding one (a config may quote it). */
static int xctl_get_long(snd_config_t *n, long *out)
{
    const char *s;
    char *end;

    if (snd_config_get_integer(n, out) == 0)
        return 0;
    if (snd_config_get_string(n, &s) < 0 || !*s)
        return -EINVAL;
    *out = strtol(s, &end, 10);
    return *end ? -EINVAL : 0;
}

/* The PCM's options with the PCM's ranges, so one definition serves both. */
static int xctl_parse_option(snd_config_t *n, const char *id, struct xctl_options *o)
{
    const char *s;
    long v;

    if (!strcmp(id, "card"))
        return xctl_get_long(n, &o->card) < 0 || o->card < -1 || o->card > 65535 ? -EINVAL : 0;
    if (!strcmp(id, "device"))
        return xctl_get_long(n, &o->device) < 0 || o->device < -1 || o->device >= XSC_MAX_PCMS ? -EINVAL : 0;
    if (!strcmp(id, "stream")) /* an index or a unique-id: anything a PCM would parse */
        return snd_config_get_string(n, &s) == 0 || snd_config_get_integer(n, &v) == 0 ? 0 : -EINVAL;
    if (!strcmp(id, "timeout"))
        return xctl_get_long(n, &o->timeout) < 0 || o->timeout < 100 || o->timeout > 600000 ? -EINVAL : 0;
    SNDERR("xen: unknown option \"%s\" (known: card, device, stream, timeout)", id);
    return -ENOENT;
}

static int xctl_parse_options(snd_config_t *conf, struct xctl_options *o)
{
    snd_config_iterator_t i, next;

    *o = (struct xctl_options){ .card = -1, .device = -1, .timeout = XCTL_DEFAULT_TIMEOUT_MS };
    snd_config_for_each(i, next, conf) {
        snd_config_t *n = snd_config_iterator_entry(i);
        const char *id;
        int rc;

        if (snd_config_get_id(n, &id) < 0)
            continue;
        if (!strcmp(id, "comment") || !strcmp(id, "type") || !strcmp(id, "hint"))
            continue;
        rc = xctl_parse_option(n, id, o);
        if (rc == -EINVAL)
            SNDERR("xen: invalid value for option \"%s\"", id);
        if (rc < 0)
            return -EINVAL;
    }
    return 0;
}

/* ---------------------------------------------------------------- identity */

/* An ALSA card id as the kernel makes one from a short name: letters and digits only, starting
 * with a letter; "vsnd<devid>" when nothing is left. */
static void xctl_make_id(char *id, size_t cap, const char *short_name, unsigned devid)
{
    size_t n = 0;

    for (const char *p = short_name; *p && n + 1 < cap; p++)
        if (isalnum((unsigned char)*p) && (n || isalpha((unsigned char)*p)))
            id[n++] = *p;
    id[n] = 0;
    if (!n)
        snprintf(id, cap, "vsnd%u", devid);
}

/* Copies src into a fixed ALSA field, cut to fit (sndif's short-name is 32 characters, the field 31). */
static void xctl_copy(char *dst, size_t cap, const char *src)
{
    size_t n = strnlen(src, cap - 1);

    memcpy(dst, src, n);
    dst[n] = 0;
}

/* The identity fields of ext from the card as xenstore describes it (names already printable). */
static void xctl_fill_identity(snd_ctl_ext_t *ext, const struct xsc_card *card)
{
    xctl_make_id(ext->id, sizeof(ext->id), card->short_name, card->devid);
    xctl_copy(ext->driver, sizeof(ext->driver), XCTL_DRIVER);
    if (card->short_name[0])
        xctl_copy(ext->name, sizeof(ext->name), card->short_name);
    else
        snprintf(ext->name, sizeof(ext->name), "Xen vsnd card %u", card->devid);
    xctl_copy(ext->longname, sizeof(ext->longname), card->long_name[0] ? card->long_name : ext->name);
}

/* Reads the card (xsc_open: xenstore only, no claim, no handshake) and lets xenstore go again. */
static int xctl_read_card(const struct xctl_options *o, snd_ctl_ext_t *ext)
{
    /* Large (every stream's limits): on the heap, not on a plugin host's stack. */
    struct xsc_conn *conn = calloc(1, sizeof(*conn));
    int rc;

    if (!conn)
        return -ENOMEM;
    rc = xsc_open(conn, (int)o->card, (unsigned)o->timeout);
    if (rc == 0) {
        xctl_fill_identity(ext, &conn->card);
        xsc_close(conn);
    }
    free(conn);
    return rc;
}

/* ---------------------------------------------------------------- open */

SND_CTL_PLUGIN_DEFINE_FUNC(xen)
{
    struct xctl_options opt;
    struct xctl *x;
    int rc;

    (void)root;
    if ((rc = xctl_parse_options(conf, &opt)) < 0)
        return rc;
    x = calloc(1, sizeof(*x));
    if (!x)
        return -ENOMEM;
    if ((rc = xctl_read_card(&opt, &x->ext)) < 0) {
        free(x);
        return rc;
    }
    x->event_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (x->event_fd < 0) {
        rc = -errno;
        free(x);
        return rc;
    }
    x->ext.version = SND_CTL_EXT_VERSION;
    x->ext.card_idx = -1;
    x->ext.poll_fd = x->event_fd;
    x->ext.callback = &xctl_callback;
    x->ext.private_data = x;
    if ((rc = snd_ctl_ext_create(&x->ext, name, mode)) < 0) {
        close(x->event_fd);
        free(x);
        return rc;
    }
    /* From here on, closing the ctl frees x (xctl_close). */
    *handlep = x->ext.handle;
    return 0;
}

SND_CTL_PLUGIN_SYMBOL(xen);
