/* pcm-positions: every frame an application writes reaches the backend at its stream position.
 * Frames are stamped with their position (S16_LE stereo: left = position & 0xffff, right =
 * 0x4000 | position >> 16 & 0x3fff, never silence), so a lost, repeated or shifted frame shows
 * in the backend's file; test/plugin/test-positions checks the files after this program ran:
 *   pcm-positions DEVICE [MAX_STEP]
 * Cases (one snd_pcm_open each, so one backend file each, in this order):
 *   1 drain: 10 periods + 333 frames, then snd_pcm_drain: returns 0 with every frame played,
 *     although the backend sends no position event for a partial period (sndback
 *     --period-events-only, as snd_be);
 *   2 rewind: 4 periods written before start, snd_pcm_rewind of 1 period, 8 periods written:
 *     the stream is 11 periods of stamps (rewritten frames the backend already had are dropped
 *     or rewritten in place, never shifted);
 *   3 forward: 2 periods, snd_pcm_forward of 1 period, 2 periods: stamps, a period of silence,
 *     stamps at positions 3..5 periods;
 *   4 smooth position: 1.5 s of playback sampled with snd_pcm_htimestamp and snd_pcm_delay
 *     every few ms, as PipeWire's timer scheduling reads it: the position never goes back, the
 *     delay is never negative, avail and delay agree, and no step is larger than the time since
 *     the previous sample explains plus MAX_STEP frames (default half a period; position events
 *     come once per period: without interpolation every step would be a whole period). Under
 *     QEMU's emulation a guest stalls for 100 ms and more, and the pointer then catches up: the
 *     real-Xen run passes a looser bound;
 *   5 pause: 8 periods, snd_pcm_pause(1) for 300 ms (avail and delay frozen), snd_pcm_pause(0), 8
 *     more, drain: the stream is 16 periods of stamps, nothing lost or repeated across the pause;
 *   6 hw_params twice on one open PCM, 48000 then 44100 Hz: 4 periods of stamps at 44100 Hz.
 * With "recovery" instead of MAX_STEP, two other cases (two backend files):
 *   1 an underrun (4 periods, then nothing for 300 ms: -EPIPE), snd_pcm_prepare, 4 periods more
 *     stamped on from position 4 periods, drain: the stream is 8 periods of stamps;
 *   2 4 periods played out, snd_pcm_drop, snd_pcm_prepare, 4 more, drain: 8 periods of stamps;
 *   3 (with PP_BACKEND_PID, the backend's pid, in the environment; DEVICE:TIMEOUT=300) the backend
 *     stopped (SIGSTOP) past the timeout while it plays 4 periods, no request in flight: the
 *     stream fails (DISCONNECTED, writei -ENODEV); SIGCONT, snd_pcm_close (which still CLOSEs
 *     the backend's stream), a new open, 4 periods stamped from 0, drain: the backend's fourth
 *     stream is those 4 periods.
 * With "ioerror" (against sndback --answer-error=write:5@3: its third WRITE answered -EIO), one:
 *   1 16 periods written one at a time: a call fails with -EIO (or the xrun it becomes, -EPIPE),
 *     snd_pcm_prepare, 4 periods stamped from 0, drain: the backend's stream ends with them.
 * With "restart" (PP_RESTART: a command that restarts the backend and returns once the new one
 * is at InitWait, test/plugin/sndback-restart), one:
 *   1 a capture PCM, prepared, holds the card; a playback PCM plays 4 periods and closes; the
 *     backend restarts; a new playback open connects the card again and plays 4 periods (the new
 *     backend's first stream); the capture PCM's next read is an xrun (-EPIPE), and after
 *     prepare it reads a period from the new backend.
 * Prints one PASS:/FAIL: line per case (a FAIL if fewer than all ran); exits 1 if any failed. */
#include <alsa/asoundlib.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TC_PREFIX "positions "
#include "case-result.h"

#define PP_RATE   48000
#define PP_PERIOD 1024
#define PP_BUFFER (16 * PP_PERIOD)

static const char *pp_device;
static long long pp_max_step = PP_PERIOD / 2;
/* avail and delay read by one snd_pcm_avail_delay: a frame or two apart in the simulation; with a
 * MAX_STEP given, a re-anchored pointer between its two calls may move them that far apart. */
static long long pp_max_disagree = PP_PERIOD / 8;

static long long pp_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* hw_params: S16_LE stereo at `rate`, PP_PERIOD/PP_BUFFER. */
static int pp_hw(snd_pcm_t *pcm, unsigned rate)
{
    snd_pcm_hw_params_t *hw;
    int err;

    snd_pcm_hw_params_alloca(&hw);
    snd_pcm_hw_params_any(pcm, hw);
    if ((err = snd_pcm_hw_params_set_access(pcm, hw, SND_PCM_ACCESS_RW_INTERLEAVED)) < 0 ||
        (err = snd_pcm_hw_params_set_format(pcm, hw, SND_PCM_FORMAT_S16_LE)) < 0 ||
        (err = snd_pcm_hw_params_set_channels(pcm, hw, 2)) < 0 ||
        (err = snd_pcm_hw_params_set_rate(pcm, hw, rate, 0)) < 0 ||
        (err = snd_pcm_hw_params_set_period_size(pcm, hw, PP_PERIOD, 0)) < 0 ||
        (err = snd_pcm_hw_params_set_buffer_size(pcm, hw, PP_BUFFER)) < 0)
        return err;
    return snd_pcm_hw_params(pcm, hw);
}

/* S16_LE stereo, 48 kHz, PP_PERIOD/PP_BUFFER; start_threshold as given (frames). */
static snd_pcm_t *pp_open(snd_pcm_uframes_t start_threshold, const char *name)
{
    snd_pcm_sw_params_t *sw;
    snd_pcm_t *pcm;
    int err = snd_pcm_open(&pcm, pp_device, SND_PCM_STREAM_PLAYBACK, 0);

    if (err < 0) {
        tc_result(false, name, "open %s: %s", pp_device, snd_strerror(err));
        return NULL;
    }
    snd_pcm_sw_params_alloca(&sw);
    if ((err = pp_hw(pcm, PP_RATE)) < 0 || (err = snd_pcm_sw_params_current(pcm, sw)) < 0 ||
        (err = snd_pcm_sw_params_set_start_threshold(pcm, sw, start_threshold)) < 0 ||
        (err = snd_pcm_sw_params(pcm, sw)) < 0) {
        tc_result(false, name, "set-up: %s", snd_strerror(err));
        snd_pcm_close(pcm);
        return NULL;
    }
    return pcm;
}

/* Writes the frames for stream positions [from, from + n), stamped. */
static bool pp_write(snd_pcm_t *pcm, uint32_t from, uint32_t n, const char *name)
{
    static int16_t buf[PP_BUFFER * 2];

    for (uint32_t i = 0; i < n; i++) {
        uint32_t pos = from + i;

        buf[2 * i] = (int16_t)(uint16_t)(pos & 0xffff);
        buf[2 * i + 1] = (int16_t)(0x4000 | (pos >> 16 & 0x3fff));
    }
    for (uint32_t done = 0; done < n;) {
        snd_pcm_sframes_t w = snd_pcm_writei(pcm, buf + 2 * done, n - done);

        if (w < 0) {
            tc_result(false, name, "writei at %u: %s", from + done, snd_strerror((int)w));
            return false;
        }
        done += (uint32_t)w;
    }
    return true;
}

static bool pp_drain(snd_pcm_t *pcm, const char *name, long long *ms)
{
    long long t0 = pp_now_ms();
    int err = snd_pcm_drain(pcm);

    *ms = pp_now_ms() - t0;
    if (err < 0) {
        tc_result(false, name, "drain: %s", snd_strerror(err));
        return false;
    }
    return true;
}

static void pp_case_drain(void)
{
    const char *name = "drain of 10 periods + 333 frames";
    const uint32_t total = 10 * PP_PERIOD + 333;
    snd_pcm_t *pcm = pp_open(1, name);
    long long ms;

    if (!pcm)
        return;
    if (pp_write(pcm, 0, total, name) && pp_drain(pcm, name, &ms)) {
        /* A bound against a hang, not a timing goal: the audio is 220 ms long. */
        tc_result(ms < 5000, name, "drain returned 0 after %lld ms (%u frames written)", ms, total);
    }
    snd_pcm_close(pcm);
}

static void pp_case_rewind(void)
{
    const char *name = "rewind of 1 period over 4 written, then 8 more";
    snd_pcm_t *pcm = pp_open(PP_BUFFER, name); /* not started until drain */
    snd_pcm_sframes_t back;
    long long ms;

    if (!pcm)
        return;
    if (pp_write(pcm, 0, 4 * PP_PERIOD, name)) {
        back = snd_pcm_rewind(pcm, PP_PERIOD);
        if (back != PP_PERIOD)
            tc_result(false, name, "snd_pcm_rewind(%d) returned %ld", PP_PERIOD, (long)back);
        else if (pp_write(pcm, 3 * PP_PERIOD, 8 * PP_PERIOD, name) && pp_drain(pcm, name, &ms))
            tc_result(true, name, "rewind %ld, 8 periods written, drained in %lld ms", (long)back, ms);
    }
    snd_pcm_close(pcm);
}

static void pp_case_forward(void)
{
    const char *name = "forward of 1 period after 2 written, then 2 more";
    snd_pcm_t *pcm = pp_open(PP_BUFFER, name);
    snd_pcm_sframes_t ahead;
    long long ms;

    if (!pcm)
        return;
    if (pp_write(pcm, 0, 2 * PP_PERIOD, name)) {
        ahead = snd_pcm_forward(pcm, PP_PERIOD);
        if (ahead != PP_PERIOD)
            tc_result(false, name, "snd_pcm_forward(%d) returned %ld", PP_PERIOD, (long)ahead);
        else if (pp_write(pcm, 3 * PP_PERIOD, 2 * PP_PERIOD, name) && pp_drain(pcm, name, &ms))
            tc_result(true, name, "forward %ld, 2 periods written, drained in %lld ms", (long)ahead, ms);
    }
    snd_pcm_close(pcm);
}

static long long pp_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static long long pp_ts_us(const snd_htimestamp_t *ts)
{
    return (long long)ts->tv_sec * 1000000 + ts->tv_nsec / 1000;
}

/* One reading of the position the way a timer-driven server takes it. */
struct pp_sample {
    long long us;
    long long pos_avail;            /* played frames, from htimestamp's avail */
    long long pos_delay, pos_both;  /* ... from snd_pcm_avail_delay's delay and its avail */
    long long both_us;              /* how long snd_pcm_avail_delay took */
};

static bool pp_sample(snd_pcm_t *pcm, uint32_t written, struct pp_sample *s, const char *name)
{
    snd_pcm_uframes_t avail;
    snd_pcm_sframes_t avail2, delay;
    snd_htimestamp_t ts;
    int err;

    long long t0;

    /* avail_delay reads both, one after the other: they must agree but for the frames played
     * while it ran (microseconds here, milliseconds in a guest under QEMU). */
    if ((err = snd_pcm_htimestamp(pcm, &avail, &ts)) < 0) {
        tc_result(false, name, "htimestamp: %s", snd_strerror(err));
        return false;
    }
    t0 = pp_now_us();
    if ((err = snd_pcm_avail_delay(pcm, &avail2, &delay)) < 0) {
        tc_result(false, name, "avail_delay: %s", snd_strerror(err));
        return false;
    }
    s->both_us = pp_now_us() - t0;
    s->us = pp_ts_us(&ts);
    s->pos_avail = (long long)written - (long long)(PP_BUFFER - avail);
    s->pos_delay = (long long)written - delay;
    s->pos_both = (long long)written - (long long)(PP_BUFFER - avail2);
    if (delay < 0 || avail > PP_BUFFER) {
        tc_result(false, name, "delay %ld, avail %lu after %u frames", (long)delay, (unsigned long)avail, written);
        return false;
    }
    return true;
}

static void pp_case_smooth(void)
{
    const char *name = "smooth position";
    const uint32_t total = 3 * PP_RATE / 2;
    snd_pcm_t *pcm = pp_open(4 * PP_PERIOD, name);
    struct pp_sample prev = { 0 }, cur;
    long long worst = 0, disagree = 0, ms;
    uint32_t written = 0;
    unsigned samples = 0;

    if (!pcm)
        return;
    while (written < total) {
        snd_pcm_sframes_t avail = snd_pcm_avail(pcm);

        if (avail < 0) {
            tc_result(false, name, "avail after %u frames: %s", written, snd_strerror((int)avail));
            snd_pcm_close(pcm);
            return;
        }
        if (avail >= PP_PERIOD) {
            uint32_t n = total - written < PP_PERIOD ? total - written : PP_PERIOD;

            if (!pp_write(pcm, written, n, name)) {
                snd_pcm_close(pcm);
                return;
            }
            written += n;
        }
        if (snd_pcm_state(pcm) == SND_PCM_STATE_RUNNING) {
            if (!pp_sample(pcm, written, &cur, name)) {
                snd_pcm_close(pcm);
                return;
            }
            if (samples++) {
                /* How far the position moved beyond what the elapsed time accounts for. */
                long long explained = (cur.us - prev.us) * PP_RATE / 1000000 + 1;
                long long step = cur.pos_avail - prev.pos_avail;

                if (step < 0 || cur.pos_delay < prev.pos_delay) {
                    tc_result(false, name, "position went back: %lld -> %lld (avail), %lld -> %lld (delay)",
                              prev.pos_avail, cur.pos_avail, prev.pos_delay, cur.pos_delay);
                    snd_pcm_close(pcm);
                    return;
                }
                if (step - explained > worst)
                    worst = step - explained;
                if (getenv("PP_DEBUG") && step - explained > 100)
                    fprintf(stderr, "sample %u: pos %lld -> %lld in %lld us (written %u)\n", samples, prev.pos_avail,
                            cur.pos_avail, cur.us - prev.us, written);
            }
            /* Beyond what played while avail_delay ran. */
            if (llabs(cur.pos_both - cur.pos_delay) - (cur.both_us * PP_RATE / 1000000 + 1) > disagree)
                disagree = llabs(cur.pos_both - cur.pos_delay) - (cur.both_us * PP_RATE / 1000000 + 1);
            prev = cur;
        }
        usleep(3000);
    }
    if (pp_drain(pcm, name, &ms))
        tc_result(worst <= pp_max_step && disagree <= pp_max_disagree && samples > 50, name,
                  "%u samples: largest step beyond the elapsed time %lld frames (limit %lld), avail and delay "
                  "disagree by at most %lld frames beyond what played meanwhile", samples, worst, pp_max_step, disagree);
    snd_pcm_close(pcm);
}

static void pp_case_pause(void)
{
    const char *name = "pause of 300 ms after 8 periods, then 8 more";
    snd_pcm_t *pcm = pp_open(1, name);
    snd_pcm_sframes_t avail0, avail1, delay0 = 0, delay1 = 0;
    long long ms;
    int err;

    if (!pcm)
        return;
    if (!pp_write(pcm, 0, 8 * PP_PERIOD, name))
        goto out;
    if ((err = snd_pcm_pause(pcm, 1)) < 0) {
        tc_result(false, name, "snd_pcm_pause(1): %s", snd_strerror(err));
        goto out;
    }
    avail0 = snd_pcm_avail(pcm);
    snd_pcm_delay(pcm, &delay0);
    usleep(300000);
    avail1 = snd_pcm_avail(pcm);
    snd_pcm_delay(pcm, &delay1);
    if ((err = snd_pcm_pause(pcm, 0)) < 0) {
        tc_result(false, name, "snd_pcm_pause(0): %s", snd_strerror(err));
        goto out;
    }
    if (avail0 != avail1 || delay0 != delay1) {
        tc_result(false, name, "while paused avail %ld -> %ld, delay %ld -> %ld (frozen expected)", (long)avail0,
                  (long)avail1, (long)delay0, (long)delay1);
        goto out;
    }
    if (pp_write(pcm, 8 * PP_PERIOD, 8 * PP_PERIOD, name) && pp_drain(pcm, name, &ms))
        tc_result(true, name, "avail %ld and delay %ld frozen while paused, drained in %lld ms", (long)avail0,
                  (long)delay0, ms);
out:
    snd_pcm_close(pcm);
}

/* hw_params called twice on one open PCM (48 kHz, then 44.1 kHz; as applications that probe do):
 * the stream is OPENed once, at the second's rate, and plays its 4 periods of stamps. */
static void pp_case_hw_params_twice(void)
{
    const char *name = "hw_params twice (48000, then 44100 Hz)";
    snd_pcm_t *pcm = pp_open(1, name);
    unsigned rate = 0;
    snd_pcm_hw_params_t *hw;
    long long ms;
    int err;

    if (!pcm)
        return;
    snd_pcm_hw_params_alloca(&hw);
    if ((err = pp_hw(pcm, 44100)) < 0 || (err = snd_pcm_hw_params_current(pcm, hw)) < 0 ||
        (err = snd_pcm_hw_params_get_rate(hw, &rate, NULL)) < 0 || rate != 44100) {
        tc_result(false, name, "second hw_params: %s, rate %u", snd_strerror(err), rate);
    } else if (pp_write(pcm, 0, 4 * PP_PERIOD, name) && pp_drain(pcm, name, &ms)) {
        tc_result(true, name, "4 periods at %u Hz drained in %lld ms", rate, ms);
    }
    snd_pcm_close(pcm);
}

/* After an underrun or a drop, the same PCM plays on, every frame at its place. */
static void pp_case_recover(bool underrun)
{
    const char *name = underrun ? "underrun, prepare, 4 periods more" : "drop, prepare, 4 periods more";
    snd_pcm_t *pcm = pp_open(1, name);
    snd_pcm_sframes_t avail = 0;
    long long ms;
    int err;

    if (!pcm)
        return;
    if (!pp_write(pcm, 0, 4 * PP_PERIOD, name))
        goto out;
    usleep(300000); /* 85 ms of audio: played out */
    if (underrun && (avail = snd_pcm_avail(pcm)) != -EPIPE) {
        tc_result(false, name, "avail after the queue ran dry: %ld (-EPIPE expected)", (long)avail);
        goto out;
    }
    if (!underrun && (err = snd_pcm_drop(pcm)) < 0) {
        tc_result(false, name, "snd_pcm_drop: %s", snd_strerror(err));
        goto out;
    }
    if ((err = snd_pcm_prepare(pcm)) < 0) {
        tc_result(false, name, "snd_pcm_prepare: %s", snd_strerror(err));
        goto out;
    }
    if (pp_write(pcm, 4 * PP_PERIOD, 4 * PP_PERIOD, name) && pp_drain(pcm, name, &ms))
        tc_result(true, name, "%s, prepared, 4 periods more drained in %lld ms",
                  underrun ? "avail -EPIPE" : "dropped", ms);
out:
    snd_pcm_close(pcm);
}

/* A backend silent past the timeout kills the stream (DISCONNECTED: as for a device that is gone,
 * alsa-lib then refuses prepare); its close still CLOSEs the backend's stream, and a new open
 * plays. */
static void pp_case_recover_silent(void)
{
    const char *name = "backend silent past the timeout: -ENODEV; close, open again, 4 periods";
    const char *pid_env = getenv("PP_BACKEND_PID");
    const char *saved = pp_device;
    pid_t be = pid_env ? (pid_t)atol(pid_env) : 0;
    snd_pcm_sframes_t w;
    char device[128];
    snd_pcm_t *pcm;
    long long t0, ms, close_ms;

    if (be <= 0) {
        tc_result(false, name, "PP_BACKEND_PID is not set");
        return;
    }
    snprintf(device, sizeof(device), "%s:TIMEOUT=300", saved);
    pp_device = device;
    pcm = pp_open(1, name);
    pp_device = saved;
    if (!pcm)
        return;
    if (!pp_write(pcm, 0, 4 * PP_PERIOD, name)) {
        snd_pcm_close(pcm);
        return;
    }
    usleep(50000); /* every WRITE answered, the stream playing: nothing is in flight when it stops */
    kill(be, SIGSTOP);
    t0 = pp_now_ms();
    while (snd_pcm_avail(pcm) >= 0 && snd_pcm_state(pcm) != SND_PCM_STATE_DISCONNECTED &&
           pp_now_ms() - t0 < 3000) /* bounded: 3 s */
        usleep(10000);
    ms = pp_now_ms() - t0;
    kill(be, SIGCONT);
    w = snd_pcm_writei(pcm, device, 1);
    t0 = pp_now_ms();
    snd_pcm_close(pcm); /* CLOSE: the backend answers again */
    close_ms = pp_now_ms() - t0;
    if (w != -ENODEV) {
        tc_result(false, name, "%lld ms after the backend stopped, writei gave %ld (-ENODEV expected)", ms, (long)w);
        return;
    }
    pcm = pp_open(1, name);
    if (!pcm)
        return;
    if (pp_write(pcm, 0, 4 * PP_PERIOD, name) && pp_drain(pcm, name, &t0))
        tc_result(true, name, "-ENODEV %lld ms after the backend stopped, closed in %lld ms; the new open played", ms,
                  close_ms);
    snd_pcm_close(pcm);
}

/* A request the backend failed (a WRITE answered -EIO): the application learns it, and the same
 * PCM plays on after prepare. */
static void pp_case_recover_ioerror(void)
{
    const char *name = "a WRITE the backend failed: the error, prepare, 4 periods";
    snd_pcm_t *pcm = pp_open(1, name);
    static int16_t silence[PP_PERIOD * 2];
    snd_pcm_sframes_t w = 0;
    long long ms;
    int err, i;

    if (!pcm)
        return;
    for (i = 0; i < 16 && w >= 0; i++) { /* the failure reaches the next call, or the one after */
        w = snd_pcm_writei(pcm, silence, PP_PERIOD);
        usleep(5000);
    }
    if (w != -EIO && w != -EPIPE) {
        tc_result(false, name, "16 periods written without an error (writei gave %ld)", (long)w);
    } else if ((err = snd_pcm_prepare(pcm)) < 0) {
        tc_result(false, name, "%s, then snd_pcm_prepare: %s", snd_strerror((int)w), snd_strerror(err));
    } else if (pp_write(pcm, 0, 4 * PP_PERIOD, name) && pp_drain(pcm, name, &ms)) {
        tc_result(true, name, "writei gave %s at period %d; prepared, 4 periods drained in %lld ms",
                  snd_strerror((int)w), i, ms);
    }
    snd_pcm_close(pcm);
}

/* The backend restarts while this process keeps the card through another PCM: the next open
 * connects the card again (it does not reuse the dead connection), and the other PCM moves to
 * the new connection at its prepare. */
static void pp_case_restart_open(void)
{
    const char *name = "the backend restarts while a capture PCM holds the card: a new open plays, the capture PCM "
                       "reads after prepare";
    const char *restart = getenv("PP_RESTART");
    static int16_t buf[PP_PERIOD * 2];
    snd_pcm_sframes_t r1 = 0, r2 = 0;
    snd_pcm_t *cap = NULL, *pb;
    long long ms;
    int err, rc;

    if (!restart) {
        tc_result(false, name, "PP_RESTART is not set");
        return;
    }
    if ((err = snd_pcm_open(&cap, pp_device, SND_PCM_STREAM_CAPTURE, 0)) < 0 || (err = pp_hw(cap, PP_RATE)) < 0) {
        tc_result(false, name, "capture open: %s", snd_strerror(err));
        goto out;
    }
    if (!(pb = pp_open(1, name)))
        goto out;
    rc = pp_write(pb, 0, 4 * PP_PERIOD, name) && pp_drain(pb, name, &ms);
    snd_pcm_close(pb);
    if (!rc)
        goto out;
    if ((rc = system(restart)) != 0) {
        tc_result(false, name, "%s: status %d", restart, rc);
        goto out;
    }
    if (!(pb = pp_open(1, name))) /* the card is still held: this open connects it again */
        goto out;
    rc = pp_write(pb, 0, 4 * PP_PERIOD, name) && pp_drain(pb, name, &ms);
    snd_pcm_close(pb);
    if (!rc)
        goto out;
    r1 = snd_pcm_readi(cap, buf, PP_PERIOD);
    if (r1 != -EPIPE)
        tc_result(false, name, "the capture PCM's first read after the restart: %ld (-EPIPE expected)", (long)r1);
    else if ((err = snd_pcm_prepare(cap)) < 0)
        tc_result(false, name, "the capture PCM's prepare: %s", snd_strerror(err));
    else if ((r2 = snd_pcm_readi(cap, buf, PP_PERIOD)) != PP_PERIOD)
        tc_result(false, name, "the capture PCM's read after prepare: %ld", (long)r2);
    else
        tc_result(true, name, "the new open played 4 periods; capture: read %s, prepared, then a period read",
                  snd_strerror((int)r1));
out:
    if (cap)
        snd_pcm_close(cap);
}

static void pp_case_recover_underrun(void) { pp_case_recover(true); }
static void pp_case_recover_drop(void) { pp_case_recover(false); }

/* The program's cases, one line each: the default mode's and the recovery mode's. */
static const struct tc_case pp_cases[] = {
    { pp_case_drain, 1 }, { pp_case_rewind, 1 }, { pp_case_forward, 1 }, { pp_case_smooth, 1 }, { pp_case_pause, 1 },
    { pp_case_hw_params_twice, 1 },
};
static const struct tc_case pp_cases_recovery[] = {
    { pp_case_recover_underrun, 1 }, { pp_case_recover_drop, 1 }, { pp_case_recover_silent, 1 },
};
static const struct tc_case pp_cases_ioerror[] = { { pp_case_recover_ioerror, 1 } };
static const struct tc_case pp_cases_restart[] = { { pp_case_restart_open, 1 } };

int main(int argc, char **argv)
{
    tc_plan_option(&argc, &argv);
    if (argc != 2 && argc != 3) {
        fprintf(stderr, "usage: pcm-positions [--plan] DEVICE [MAX_STEP|recovery|ioerror|restart]\n");
        return 2;
    }
    pp_device = argv[1];
    if (argc == 3 && strcmp(argv[2], "recovery") == 0)
        return tc_run(pp_cases_recovery, sizeof(pp_cases_recovery) / sizeof(pp_cases_recovery[0]));
    if (argc == 3 && strcmp(argv[2], "ioerror") == 0)
        return tc_run(pp_cases_ioerror, 1);
    if (argc == 3 && strcmp(argv[2], "restart") == 0)
        return tc_run(pp_cases_restart, 1);
    if (argc == 3)
        pp_max_step = pp_max_disagree = atoll(argv[2]);
    return tc_run(pp_cases, sizeof(pp_cases) / sizeof(pp_cases[0]));
}
