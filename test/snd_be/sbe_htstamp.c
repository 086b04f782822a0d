/* sbe_htstamp: LD_PRELOAD'ed into snd_be only (test/snd_be/README.md). snd_be computes its
 * position events from snd_pcm_status_get_audio_htstamp(); the kernel fills that timestamp for
 * a hw device from the hardware pointer ("compat"/default type: (hw_ptr_wrap + hw_ptr) * 1e9 /
 * rate, rounded down), but alsa-lib's ioplug devices leave it zero. This wraps snd_pcm_status()
 * and, when alsa-lib left the audio timestamp empty, fills it the kernel's way from the
 * status' hw_ptr and the PCM's rate. Nothing else changes. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* RTLD_NEXT */
#endif
#include <alsa/asoundlib.h>
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* The head of the kernel's struct snd_pcm_status (<sound/asound.h>, 64-bit time), which is
 * what snd_pcm_status_t is; that header cannot be included next to alsa-lib's. The layout is
 * checked against alsa-lib's own accessors on every call (sbe_layout_ok). */
struct sbe_status_head {
    int state;
    int pad1;
    struct timespec trigger_tstamp;
    struct timespec tstamp;
    unsigned long appl_ptr;
    unsigned long hw_ptr;
    long delay;
    unsigned long avail;
    unsigned long avail_max;
    unsigned long overrange;
    int suspended_state;
    uint32_t audio_tstamp_data;
    struct timespec audio_tstamp;
};

static int (*sbe_real_status)(snd_pcm_t *, snd_pcm_status_t *);

static int sbe_layout_ok(const snd_pcm_status_t *status, const struct sbe_status_head *h)
{
    snd_htimestamp_t ts;

    snd_pcm_status_get_audio_htstamp(status, &ts);
    return snd_pcm_status_sizeof() >= sizeof(*h) && h->state == (int)snd_pcm_status_get_state(status) &&
           h->delay == snd_pcm_status_get_delay(status) && h->avail == snd_pcm_status_get_avail(status) &&
           h->avail_max == snd_pcm_status_get_avail_max(status) && ts.tv_sec == h->audio_tstamp.tv_sec &&
           ts.tv_nsec == h->audio_tstamp.tv_nsec;
}

static void sbe_layout_fail(void)
{
    fprintf(stderr, "sbe_htstamp: snd_pcm_status_t is not the kernel's struct snd_pcm_status\n");
    abort(); /* a test must not go on with positions computed from garbage */
}

int snd_pcm_status(snd_pcm_t *pcm, snd_pcm_status_t *status)
{
    struct sbe_status_head *h = (struct sbe_status_head *)status;
    snd_pcm_hw_params_t *hw;
    unsigned rate = 0;
    uint64_t ns;
    int rc;

    if (!sbe_real_status && !(sbe_real_status = (int (*)(snd_pcm_t *, snd_pcm_status_t *))dlsym(RTLD_NEXT, "snd_pcm_status"))) {
        fprintf(stderr, "sbe_htstamp: no snd_pcm_status in alsa-lib: %s\n", dlerror());
        abort();
    }
    rc = sbe_real_status(pcm, status);
    if (rc < 0)
        return rc;
    if (!sbe_layout_ok(status, h))
        sbe_layout_fail();
    if (h->audio_tstamp.tv_sec || h->audio_tstamp.tv_nsec)
        return rc; /* a device that fills it (hw) */
    snd_pcm_hw_params_alloca(&hw);
    if (snd_pcm_hw_params_current(pcm, hw) < 0 || snd_pcm_hw_params_get_rate(hw, &rate, NULL) < 0 || !rate)
        return rc;
    ns = (uint64_t)h->hw_ptr * 1000000000ull / rate;
    h->audio_tstamp.tv_sec = (time_t)(ns / 1000000000ull);
    h->audio_tstamp.tv_nsec = (long)(ns % 1000000000ull);
    if (!sbe_layout_ok(status, h))
        sbe_layout_fail(); /* what we wrote is not what snd_be will read */
    return rc;
}
