/* pcm-behaviour: what an ALSA application sees from the plugin, case by case, the way
 * bluez-alsa's test-alsa-pcm checks its ioplug: xruns, pause, poll wake-ups, drain, delay,
 * capture overrun. Runs inside a simulated guest (test/plugin/test-behaviour):
 *   pcm-behaviour DEVICE     (e.g. xen_raw)
 * Prints one PASS:/FAIL: line per case; exits 1 if any failed. */
#include <alsa/asoundlib.h>
#include <poll.h>
#include <signal.h>
#include <sys/time.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TC_PREFIX "pcm "
#include "case-result.h"

#define PB_RATE 48000
#define PB_FRAME 4 /* S16_LE stereo */

static const char *pb_device;

static void pb_sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };

    nanosleep(&ts, NULL);
}

static long long pb_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Opens DEVICE with S16_LE stereo 48 kHz, the given period/buffer (frames). */
static snd_pcm_t *pb_open(snd_pcm_stream_t dir, int mode, snd_pcm_uframes_t period, snd_pcm_uframes_t buffer)
{
    snd_pcm_hw_params_t *hw;
    snd_pcm_t *pcm;
    int err = snd_pcm_open(&pcm, pb_device, dir, mode);

    if (err < 0) {
        printf("FAIL: pcm open %s: %s\n", pb_device, snd_strerror(err));
        exit(1);
    }
    snd_pcm_hw_params_alloca(&hw);
    snd_pcm_hw_params_any(pcm, hw);
    if ((err = snd_pcm_hw_params_set_access(pcm, hw, SND_PCM_ACCESS_RW_INTERLEAVED)) < 0 ||
        (err = snd_pcm_hw_params_set_format(pcm, hw, SND_PCM_FORMAT_S16_LE)) < 0 ||
        (err = snd_pcm_hw_params_set_channels(pcm, hw, 2)) < 0 ||
        (err = snd_pcm_hw_params_set_rate(pcm, hw, PB_RATE, 0)) < 0 ||
        (err = snd_pcm_hw_params_set_period_size(pcm, hw, period, 0)) < 0 ||
        (err = snd_pcm_hw_params_set_buffer_size(pcm, hw, buffer)) < 0 ||
        (err = snd_pcm_hw_params(pcm, hw)) < 0) {
        printf("FAIL: pcm hw_params (period %lu, buffer %lu): %s\n", period, buffer, snd_strerror(err));
        exit(1);
    }
    return pcm;
}

static snd_pcm_sframes_t pb_write_silence(snd_pcm_t *pcm, snd_pcm_uframes_t frames)
{
    static char zeros[PB_RATE * PB_FRAME];

    return snd_pcm_writei(pcm, zeros, frames < PB_RATE ? frames : PB_RATE);
}

static void pb_underrun(void)
{
    snd_pcm_t *pcm = pb_open(SND_PCM_STREAM_PLAYBACK, 0, 1024, 4096);
    snd_pcm_sframes_t n = pb_write_silence(pcm, 4096), avail;

    pb_sleep_ms(400); /* 85 ms of audio, then nothing: an underrun */
    avail = snd_pcm_avail(pcm);
    tc_result(n == 4096 && avail == -EPIPE && snd_pcm_state(pcm) == SND_PCM_STATE_XRUN, "underrun",
              "avail after the buffer ran dry: %ld (-EPIPE expected), state %s", (long)avail,
              snd_pcm_state_name(snd_pcm_state(pcm)));
    n = snd_pcm_writei(pcm, (char[PB_FRAME * 16]){ 0 }, 16);
    tc_result(n == -EPIPE, "underrun write", "writei in XRUN: %ld (-EPIPE expected)", (long)n);
    snd_pcm_prepare(pcm);
    n = pb_write_silence(pcm, 4096);
    tc_result(n == 4096 && snd_pcm_state(pcm) == SND_PCM_STATE_RUNNING, "underrun recovery",
              "prepare then writei: %ld, state %s", (long)n, snd_pcm_state_name(snd_pcm_state(pcm)));
    snd_pcm_drop(pcm);
    snd_pcm_close(pcm);
}

static void pb_pause(void)
{
    snd_pcm_t *pcm = pb_open(SND_PCM_STREAM_PLAYBACK, 0, 4800, 48000);
    snd_pcm_sframes_t a1, a2, a3, d1, d2;
    int err;

    pb_write_silence(pcm, 48000); /* a full second queued; starts at the threshold */
    pb_sleep_ms(200);
    err = snd_pcm_pause(pcm, 1);
    pb_sleep_ms(50);
    a1 = snd_pcm_avail(pcm);
    snd_pcm_delay(pcm, &d1);
    pb_sleep_ms(400);
    a2 = snd_pcm_avail(pcm);
    snd_pcm_delay(pcm, &d2);
    tc_result(err == 0 && snd_pcm_state(pcm) == SND_PCM_STATE_PAUSED && a1 == a2 && d1 == d2, "pause",
              "while paused 400 ms: avail %ld -> %ld, delay %ld -> %ld (frozen expected), pause() %d", (long)a1,
              (long)a2, (long)d1, (long)d2, err);
    err = snd_pcm_pause(pcm, 0);
    pb_sleep_ms(300);
    a3 = snd_pcm_avail(pcm);
    tc_result(err == 0 && a3 > a2 + 4800, "resume", "300 ms after resume avail went %ld -> %ld", (long)a2, (long)a3);
    snd_pcm_drop(pcm);
    snd_pcm_close(pcm);
}

/* A blocking-free writer driven by poll: how often does it wake without work? */
static void pb_poll_wakeups(void)
{
    snd_pcm_t *pcm = pb_open(SND_PCM_STREAM_PLAYBACK, SND_PCM_NONBLOCK, 4800, 19200);
    struct pollfd pfd[4];
    int nfds = snd_pcm_poll_descriptors(pcm, pfd, 4), wakeups = 0, idle = 0;
    snd_pcm_uframes_t written = 0, total = PB_RATE; /* one second */
    long long deadline = pb_now_ms() + 5000;

    while (written < total && pb_now_ms() < deadline) {
        unsigned short revents = 0;
        snd_pcm_sframes_t avail, n;

        if (poll(pfd, (nfds_t)nfds, 1000) <= 0)
            break;
        wakeups++;
        snd_pcm_poll_descriptors_revents(pcm, pfd, (unsigned)nfds, &revents);
        avail = snd_pcm_avail_update(pcm);
        if (!(revents & POLLOUT) || avail < 4800) {
            idle++;
            continue;
        }
        n = pb_write_silence(pcm, (snd_pcm_uframes_t)avail < total - written ? (snd_pcm_uframes_t)avail
                                                                                : total - written);
        if (n < 0 && snd_pcm_recover(pcm, (int)n, 1) < 0)
            break;
        if (n > 0)
            written += (snd_pcm_uframes_t)n;
    }
    /* 1 s in 100 ms periods: about 10 wake-ups with work; a busy loop would make thousands. */
    tc_result(written == total && wakeups <= 40, "poll wake-ups",
              "1 s of audio in 100 ms periods: %d wake-ups (%d without work), %lu frames written", wakeups, idle,
              (unsigned long)written);
    snd_pcm_drop(pcm);
    snd_pcm_close(pcm);
}

static void pb_drain(void)
{
    snd_pcm_t *pcm = pb_open(SND_PCM_STREAM_PLAYBACK, SND_PCM_NONBLOCK, 2400, 9600);
    long long t0;
    int err;

    pb_write_silence(pcm, 4800); /* 100 ms, not started yet (below the start threshold) */
    err = snd_pcm_drain(pcm);
    tc_result(err == -EAGAIN, "drain nonblocking", "snd_pcm_drain of a non-blocking PCM: %d (-EAGAIN expected)",
              err);
    snd_pcm_nonblock(pcm, 0);
    t0 = pb_now_ms();
    err = snd_pcm_drain(pcm);
    tc_result(err == 0 && snd_pcm_state(pcm) == SND_PCM_STATE_SETUP && pb_now_ms() - t0 < 3000, "drain",
              "blocking drain: %d after %lld ms, state %s", err, pb_now_ms() - t0,
              snd_pcm_state_name(snd_pcm_state(pcm)));
    snd_pcm_close(pcm);

    pcm = pb_open(SND_PCM_STREAM_PLAYBACK, 0, 2400, 9600);
    pb_write_silence(pcm, 1000); /* a short file: below the start threshold, never started */
    t0 = pb_now_ms();
    err = snd_pcm_drain(pcm);
    tc_result(err == 0 && pb_now_ms() - t0 >= 15, "drain of a stream never started",
              "%d after %lld ms (it must play the 21 ms first)", err, pb_now_ms() - t0);
    snd_pcm_close(pcm);
}

static void pb_delay(void)
{
    snd_pcm_t *pcm = pb_open(SND_PCM_STREAM_PLAYBACK, 0, 4800, 48000);
    snd_pcm_sframes_t d1 = -1, d2 = -1;
    int e1, e2;

    pb_write_silence(pcm, 48000);
    pb_sleep_ms(100);
    e1 = snd_pcm_delay(pcm, &d1);
    pb_sleep_ms(300);
    e2 = snd_pcm_delay(pcm, &d2);
    /* 300 ms at 48 kHz: 14400 frames less queued, give or take a period of position granularity. */
    tc_result(e1 == 0 && e2 == 0 && d1 <= 48000 && d2 >= 0 && d1 - d2 > 14400 - 4800 && d1 - d2 < 14400 + 4800,
              "delay", "%ld then, 300 ms later, %ld frames", (long)d1, (long)d2);
    snd_pcm_drop(pcm);
    snd_pcm_close(pcm);
}

static void pb_capture(void)
{
    snd_pcm_t *pcm = pb_open(SND_PCM_STREAM_CAPTURE, 0, 1024, 4096);
    struct pollfd pfd[4];
    int nfds = snd_pcm_poll_descriptors(pcm, pfd, 4), ready;
    char buf[4096 * PB_FRAME];
    snd_pcm_sframes_t n, avail;

    ready = poll(pfd, (nfds_t)nfds, 200);
    if (ready > 0) {
        unsigned short revents = 0;

        snd_pcm_poll_descriptors_revents(pcm, pfd, (unsigned)nfds, &revents);
        ready = revents != 0;
    }
    tc_result(ready == 0, "capture poll before start", "a prepared capture PCM is not readable (poll: %d)", ready);
    n = snd_pcm_readi(pcm, buf, 1024);
    tc_result(n == 1024, "capture read", "readi of one period: %ld", (long)n);
    pb_sleep_ms(400); /* 85 ms buffer: the backend overruns it */
    avail = snd_pcm_avail(pcm);
    tc_result(avail == -EPIPE, "capture overrun", "avail after 400 ms without reading: %ld (-EPIPE expected)",
              (long)avail);
    snd_pcm_prepare(pcm);
    n = snd_pcm_readi(pcm, buf, 1024);
    tc_result(n == 1024, "capture overrun recovery", "prepare then readi: %ld", (long)n);
    snd_pcm_close(pcm);
}

/* The watchdog declares a backend dead only when an event it owes is overdue. These open the
 * device with a 300 ms timeout (its TIMEOUT argument), shorter than what they wait. */
static snd_pcm_t *pb_open_timeout(snd_pcm_stream_t dir, snd_pcm_uframes_t period, snd_pcm_uframes_t buffer)
{
    static char name[96];
    const char *base = pb_device;

    snprintf(name, sizeof(name), "%s:TIMEOUT=300", base);
    pb_device = name;
    snd_pcm_t *pcm = pb_open(dir, 0, period, buffer);
    pb_device = base;
    return pcm;
}

/* Waits as aplay does: poll on the PCM's descriptors until `ms` passed, taking revents at each
 * wake-up (the watchdog runs there); the last error revents or avail gave, else 0. */
static int pb_poll_for(snd_pcm_t *pcm, long ms)
{
    struct pollfd pfd[4];
    int nfds = snd_pcm_poll_descriptors(pcm, pfd, 4), err = 0;
    long long end = pb_now_ms() + ms;

    while (pb_now_ms() < end) {
        unsigned short revents = 0;
        snd_pcm_sframes_t avail;

        if (poll(pfd, (nfds_t)nfds, (int)(end - pb_now_ms())) < 0)
            break;
        if ((err = snd_pcm_poll_descriptors_revents(pcm, pfd, (unsigned)nfds, &revents)) < 0)
            return err;
        if ((avail = snd_pcm_avail(pcm)) < 0)
            return (int)avail;
        if (revents)
            pb_sleep_ms(20); /* ready, but this application does not write or read now */
    }
    return err;
}

static void pb_watch_long_period(void)
{
    snd_pcm_t *pcm = pb_open_timeout(SND_PCM_STREAM_PLAYBACK, PB_RATE / 2, PB_RATE);
    snd_pcm_sframes_t n = pb_write_silence(pcm, PB_RATE), avail;
    int err = pb_poll_for(pcm, 800); /* 1 s queued, started; the first event comes after 0.5 s */

    avail = snd_pcm_avail(pcm);
    tc_result(n == PB_RATE && err == 0 && avail >= PB_RATE / 2 && snd_pcm_state(pcm) == SND_PCM_STATE_RUNNING,
              "watchdog: 500 ms periods, 300 ms timeout",
              "wrote %ld, polled 0.8 s: %s, then avail %ld (a period played expected), state %s", (long)n,
              err ? snd_strerror(err) : "no error", (long)avail, snd_pcm_state_name(snd_pcm_state(pcm)));
    snd_pcm_drop(pcm);
    snd_pcm_close(pcm);
}

static void pb_watch_idle_boundary(void)
{
    snd_pcm_t *pcm = pb_open_timeout(SND_PCM_STREAM_PLAYBACK, 1024, 4096);
    snd_pcm_sw_params_t *sw;
    snd_pcm_uframes_t boundary = 0;
    snd_pcm_sframes_t n1, n2;
    int err1, err2;

    snd_pcm_sw_params_alloca(&sw);
    snd_pcm_sw_params_current(pcm, sw);
    snd_pcm_sw_params_get_boundary(sw, &boundary);
    snd_pcm_sw_params_set_stop_threshold(pcm, sw, boundary); /* as PipeWire, PulseAudio and mpv */
    snd_pcm_sw_params(pcm, sw);
    n1 = pb_write_silence(pcm, 4096);
    err1 = pb_poll_for(pcm, 1000); /* 85 ms of audio, then a second of nothing: no underrun here */
    n2 = pb_write_silence(pcm, 4096);
    err2 = pb_poll_for(pcm, 300);
    tc_result(n1 == 4096 && n2 == 4096 && !err1 && !err2 && snd_pcm_state(pcm) == SND_PCM_STATE_RUNNING,
              "watchdog: stop_threshold = boundary, idle 1 s, then a write",
              "writes %ld and %ld, polled 1 s: %s, then 300 ms: %s, state %s", (long)n1, (long)n2,
              err1 ? snd_strerror(err1) : "no error", err2 ? snd_strerror(err2) : "no error",
              snd_pcm_state_name(snd_pcm_state(pcm)));
    snd_pcm_drop(pcm);
    snd_pcm_close(pcm);
}

static void pb_watch_capture_unread(void)
{
    snd_pcm_t *pcm = pb_open_timeout(SND_PCM_STREAM_CAPTURE, 1024, 4096);
    char buf[1024 * PB_FRAME];
    snd_pcm_sframes_t n1, n2, avail = 0;

    n1 = snd_pcm_readi(pcm, buf, 1024);
    /* The application stops reading for longer than the timeout, but looks at avail now and then. */
    for (int i = 0; i < 12 && avail >= 0; i++) {
        pb_sleep_ms(100);
        avail = snd_pcm_avail(pcm);
    }
    pb_sleep_ms(500);
    if (avail == -EPIPE)
        avail = snd_pcm_avail(pcm); /* still the overrun, half a second later */
    snd_pcm_prepare(pcm);
    n2 = snd_pcm_readi(pcm, buf, 1024);
    tc_result(n1 == 1024 && avail == -EPIPE && n2 == 1024, "watchdog: capture not read for 1.7 s, 300 ms timeout",
              "readi %ld, then avail %ld (-EPIPE expected: an overrun, not a dead backend), after prepare readi "
              "%ld", (long)n1, (long)avail, (long)n2);
    snd_pcm_close(pcm);
}

/* A non-blocking drain: -EAGAIN, then poll wakes when it is done and the state is SETUP
 * without the application reading avail (ioplug ends a drain only when it reads the pointer),
 * without a busy loop, and not before the audio had time to play. */
static void pb_drain_nonblock_poll(void)
{
    snd_pcm_t *pcm = pb_open(SND_PCM_STREAM_PLAYBACK, SND_PCM_NONBLOCK, 2400, PB_RATE);
    const snd_pcm_uframes_t frames = 10 * 2400 + 333; /* 507 ms, a partial last period */
    struct pollfd pfd[4];
    int nfds = snd_pcm_poll_descriptors(pcm, pfd, 4), wakeups = 0, err;
    snd_pcm_sframes_t n = pb_write_silence(pcm, frames); /* below the start threshold */
    long long t0 = pb_now_ms(), t = 0;

    err = snd_pcm_drain(pcm);
    while (err == -EAGAIN && snd_pcm_state(pcm) == SND_PCM_STATE_DRAINING && pb_now_ms() - t0 < 3000) {
        unsigned short revents = 0;

        if (poll(pfd, (nfds_t)nfds, 1000) < 0)
            break;
        wakeups++;
        snd_pcm_poll_descriptors_revents(pcm, pfd, (unsigned)nfds, &revents);
    }
    t = pb_now_ms() - t0;
    tc_result(n == (snd_pcm_sframes_t)frames && err == -EAGAIN && snd_pcm_state(pcm) == SND_PCM_STATE_SETUP &&
                  t >= 507 - 30 && wakeups <= 60,
              "drain nonblocking, by poll", "wrote %ld, drain %d, state %s after %lld ms (507 ms of audio) and %d "
              "poll wake-ups", (long)n, err, snd_pcm_state_name(snd_pcm_state(pcm)), t, wakeups);
    snd_pcm_close(pcm);
}

static snd_pcm_t *pb_abort_pcm;

static void pb_on_alarm(int sig)
{
    (void)sig;
    snd_pcm_abort(pb_abort_pcm); /* as aplay's SIGINT handler */
}

/* snd_pcm_abort from a signal handler ends a blocking drain at once (aplay's Ctrl-C). */
static void pb_drain_abort(void)
{
    snd_pcm_t *pcm = pb_open(SND_PCM_STREAM_PLAYBACK, 0, 4800, PB_RATE);
    struct sigaction sa = { .sa_handler = pb_on_alarm }, old;
    struct itimerval at = { .it_value = { 0, 200000 } };
    snd_pcm_sframes_t n = pb_write_silence(pcm, PB_RATE); /* 1 s, started */
    long long t0 = pb_now_ms(), t;
    int err;

    pb_abort_pcm = pcm;
    sigaction(SIGALRM, &sa, &old); /* no SA_RESTART, as signal() handlers may or may not have */
    setitimer(ITIMER_REAL, &at, NULL);
    err = snd_pcm_drain(pcm);
    t = pb_now_ms() - t0;
    sigaction(SIGALRM, &old, NULL);
    tc_result(n == PB_RATE && t < 700, "drain aborted", "snd_pcm_abort 200 ms into the drain of 1 s: drain "
              "returned %d after %lld ms", err, t);
    snd_pcm_close(pcm);
}

/* The program's cases: each function and the number of case lines it prints. */
/* Against a backend that answers each request 80 ms late, one at a time (sndback --delay-ms=80):
 * 48 non-blocking writes of a 64-frame period fill the ring with WRITEs, and snd_pcm_drop still
 * finds a slot for its TRIGGER at once, because the plugin keeps the last slots for TRIGGER and
 * CLOSE (were WRITEs allowed to take them, drop would wait for the backend's next answer, 80 ms);
 * close then waits for CLOSE's answer behind the queue, within the timeout (TIMEOUT=10000 here). */
static void pb_slow_backend_slots(void)
{
    static char name[96];
    const char *base = pb_device;
    snd_pcm_sframes_t w = 0, total = 0;
    long long t0, drop_ms, close_ms;
    snd_pcm_t *pcm;
    int err;

    snprintf(name, sizeof(name), "%s:TIMEOUT=10000", base);
    pb_device = name;
    pcm = pb_open(SND_PCM_STREAM_PLAYBACK, SND_PCM_NONBLOCK, 64, 64 * 48);
    pb_device = base;
    for (int i = 0; i < 48 && (w = pb_write_silence(pcm, 64)) == 64; i++)
        total += w;
    t0 = pb_now_ms();
    err = snd_pcm_drop(pcm);
    drop_ms = pb_now_ms() - t0;
    t0 = pb_now_ms();
    snd_pcm_close(pcm);
    close_ms = pb_now_ms() - t0;
    tc_result(err == 0 && total == 48 * 64 && drop_ms < 40 && close_ms < 9000, "slow backend: TRIGGER's and CLOSE's slots",
              "%ld frames written (last write %ld), drop %d after %lld ms (at once expected), close after %lld ms",
              (long)total, (long)w, err, drop_ms, close_ms);
}

static const struct tc_case pb_cases[] = {
    { pb_underrun, 3 }, { pb_pause, 2 }, { pb_poll_wakeups, 1 }, { pb_drain, 3 },
    { pb_drain_nonblock_poll, 1 }, { pb_drain_abort, 1 }, { pb_delay, 1 }, { pb_capture, 4 },
    { pb_watch_long_period, 1 }, { pb_watch_idle_boundary, 1 }, { pb_watch_capture_unread, 1 },
};
static const struct tc_case pb_cases_drain_nonblock[] = { { pb_drain_nonblock_poll, 1 } };
static const struct tc_case pb_cases_slow[] = { { pb_slow_backend_slots, 1 } };

int main(int argc, char **argv)
{
    tc_plan_option(&argc, &argv);
    pb_device = argc > 1 ? argv[1] : "xen_raw";
    if (argc > 2 && strcmp(argv[2], "drain-nonblock") == 0) /* a backend with period events only */
        return tc_run(pb_cases_drain_nonblock, 1);
    if (argc > 2 && strcmp(argv[2], "slow-backend") == 0) /* sndback --delay-ms=80 */
        return tc_run(pb_cases_slow, 1);
    return tc_run(pb_cases, sizeof(pb_cases) / sizeof(pb_cases[0]));
}
