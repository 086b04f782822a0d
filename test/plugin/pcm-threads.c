/* pcm-threads: the plugin used from several threads at once, as sound servers do (ioplug calls
 * drain, poll_revents and prepare without its own lock). Runs in a simulated guest
 * (test/plugin/test-threads):   pcm-threads DEVICE
 *   1 one thread writes 5 s of position-stamped frames and drains while another calls
 *     snd_pcm_status, snd_pcm_delay and snd_pcm_avail in a loop: every write and drain succeeds,
 *     no call reports the backend dead (the script checks the backend's file: pb0.wav);
 *   2 60 rounds of write, drain, prepare in one thread while another reads status/delay/avail;
 *   3 60 rounds of a drain in one thread while another drops the stream after 0..20 ms; then
 *     the PCM still plays 1 s of stamps (the end of the third backend file);
 *   4 a fork()ed child closes its copy of the PCM after 0.5 s of stamps and exits; the parent
 *     plays 0.5 s more and drains: the fourth backend file holds the whole second.
 * pcm-threads DEVICE gap (with test/plugin/lockgap-shim.so preloaded) runs one case instead: a
 * drop from another thread lands exactly between ioplug's drain (which lets its lock go) and the
 * plugin's drain callback; the drain ends at once and the PCM then plays 0.5 s (the backend's
 * file ends with it). The third case meets that moment only by chance.
 * Prints one PASS:/FAIL: line per case; exits 1 if any failed. */
#include <alsa/asoundlib.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TC_PREFIX "threads "
#include "case-result.h"

#define PT_RATE 48000
#define PT_PERIOD 1024
#define PT_BUFFER 4096
#define PT_READER_BUFFER 16384 /* 341 ms */

static const char *pt_device;

static void pt_sleep_us(long us)
{
    struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };

    nanosleep(&ts, NULL);
}

static snd_pcm_t *pt_open_buffer(snd_pcm_uframes_t buffer)
{
    snd_pcm_hw_params_t *hw;
    snd_pcm_t *pcm;
    int err = snd_pcm_open(&pcm, pt_device, SND_PCM_STREAM_PLAYBACK, 0);

    snd_pcm_hw_params_alloca(&hw);
    if (err == 0) {
        snd_pcm_hw_params_any(pcm, hw);
        if ((err = snd_pcm_hw_params_set_access(pcm, hw, SND_PCM_ACCESS_RW_INTERLEAVED)) < 0 ||
            (err = snd_pcm_hw_params_set_format(pcm, hw, SND_PCM_FORMAT_S16_LE)) < 0 ||
            (err = snd_pcm_hw_params_set_channels(pcm, hw, 2)) < 0 ||
            (err = snd_pcm_hw_params_set_rate(pcm, hw, PT_RATE, 0)) < 0 ||
            (err = snd_pcm_hw_params_set_period_size(pcm, hw, PT_PERIOD, 0)) < 0 ||
            (err = snd_pcm_hw_params_set_buffer_size(pcm, hw, buffer)) < 0 ||
            (err = snd_pcm_hw_params(pcm, hw)) < 0)
            snd_pcm_close(pcm);
    }
    if (err < 0) {
        printf("FAIL: threads open %s: %s\n", pt_device, snd_strerror(err));
        exit(1);
    }
    return pcm;
}

static snd_pcm_t *pt_open(void)
{
    return pt_open_buffer(PT_BUFFER);
}

/* Writes stream positions [from, from + n) stamped as pcm-positions.c does; 0 or the error. */
static int pt_write(snd_pcm_t *pcm, uint32_t from, uint32_t n)
{
    static int16_t buf[PT_PERIOD * 2];

    for (uint32_t done = 0; done < n;) {
        uint32_t chunk = n - done < PT_PERIOD ? n - done : PT_PERIOD;
        snd_pcm_sframes_t w;

        for (uint32_t i = 0; i < chunk; i++) {
            uint32_t pos = from + done + i;

            buf[2 * i] = (int16_t)(uint16_t)(pos & 0xffff);
            buf[2 * i + 1] = (int16_t)(0x4000 | (pos >> 16 & 0x3fff));
        }
        for (uint32_t off = 0; off < chunk;) {
            if ((w = snd_pcm_writei(pcm, buf + 2 * off, chunk - off)) < 0)
                return (int)w;
            off += (uint32_t)w;
        }
        done += chunk;
    }
    return 0;
}

/* The reader: status, delay and avail in a loop until told to stop. */
struct pt_reader {
    snd_pcm_t *pcm;
    atomic_bool stop;
    long calls, dead; /* calls made; answers saying the backend is gone or failed */
    int first_bad;
};

static void pt_note(struct pt_reader *r, int err)
{
    r->calls++;
    if (err == -ENODEV || err == -EIO) {
        if (!r->dead++)
            r->first_bad = err;
    }
}

static void *pt_read_loop(void *arg)
{
    struct pt_reader *r = arg;
    snd_pcm_status_t *st;
    snd_pcm_sframes_t d;

    snd_pcm_status_malloc(&st);
    while (!atomic_load(&r->stop)) {
        pt_note(r, snd_pcm_status(r->pcm, st));
        pt_note(r, snd_pcm_delay(r->pcm, &d));
        pt_note(r, (int)snd_pcm_avail(r->pcm)); /* no pause: the races are narrow */
    }
    snd_pcm_status_free(st);
    return NULL;
}

static void pt_reader_start(struct pt_reader *r, snd_pcm_t *pcm, pthread_t *t)
{
    *r = (struct pt_reader){ .pcm = pcm };
    pthread_create(t, NULL, pt_read_loop, r);
}

static void pt_reader_stop(struct pt_reader *r, pthread_t t)
{
    atomic_store(&r->stop, true);
    pthread_join(t, NULL);
}

static void pt_write_while_reading(void)
{
    /* The reader never pauses, and alsa-lib's PCM mutex is not fair: on 2 shared cores under the
     * sanitizers the writer waited more than PT_BUFFER (85 ms) for it once. A deeper buffer keeps the
     * case about data races, not about the host's scheduling. */
    snd_pcm_t *pcm = pt_open_buffer(PT_READER_BUFFER);
    struct pt_reader r;
    pthread_t t;
    int werr, derr;

    pt_reader_start(&r, pcm, &t);
    werr = pt_write(pcm, 0, 5 * PT_RATE);
    derr = snd_pcm_drain(pcm);
    pt_reader_stop(&r, t);
    tc_result(!werr && !derr && !r.dead && r.calls > 1000, "5 s written while another thread reads status/delay/avail",
              "write %s, drain %s; the other thread made %ld calls, %ld of them -ENODEV/-EIO%s%s", snd_strerror(werr),
              snd_strerror(derr), r.calls, r.dead, r.dead ? ", the first " : "", r.dead ? snd_strerror(r.first_bad) : "");
    snd_pcm_close(pcm);
}

static void pt_rounds_while_reading(void)
{
    snd_pcm_t *pcm = pt_open();
    struct pt_reader r;
    pthread_t t;
    int err = 0, round;

    pt_reader_start(&r, pcm, &t);
    for (round = 0; round < 60 && !err; round++) {
        if ((err = pt_write(pcm, 0, 2 * PT_PERIOD)) == 0 && (err = snd_pcm_drain(pcm)) == 0)
            err = snd_pcm_prepare(pcm);
    }
    pt_reader_stop(&r, t);
    tc_result(!err && !r.dead, "60 rounds of write, drain, prepare while another thread reads",
              "%d rounds, the last %s; the other thread made %ld calls, %ld of them -ENODEV/-EIO", round,
              snd_strerror(err), r.calls, r.dead);
    snd_pcm_close(pcm);
}

struct pt_dropper {
    snd_pcm_t *pcm;
    long delay_us;
    int err;
};

static void *pt_drop_later(void *arg)
{
    struct pt_dropper *d = arg;

    pt_sleep_us(d->delay_us);
    d->err = snd_pcm_drop(d->pcm);
    return NULL;
}

static void pt_drain_vs_drop(void)
{
    snd_pcm_t *pcm = pt_open();
    int bad = 0, first = 0, err = 0;

    for (int round = 0; round < 60; round++) {
        struct pt_dropper d = { pcm, (round * 7919 % 21) * 1000L, 0 };
        pthread_t t;
        int derr;

        snd_pcm_prepare(pcm);
        if ((err = pt_write(pcm, 0, 3 * PT_PERIOD)) < 0)
            break;
        pthread_create(&t, NULL, pt_drop_later, &d);
        derr = snd_pcm_drain(pcm); /* 0, or an error because the stream was dropped under it */
        pthread_join(t, NULL);
        if (derr == -ENODEV || derr == -EIO || d.err == -ENODEV || d.err == -EIO) {
            if (!bad++)
                first = derr < 0 ? derr : d.err;
        }
    }
    if (!err && (err = snd_pcm_prepare(pcm)) == 0 && (err = pt_write(pcm, 0, PT_RATE)) == 0)
        err = snd_pcm_drain(pcm);
    tc_result(!bad && !err, "60 drains, each dropped from another thread after 0..20 ms, then 1 s played",
              "%d rounds with -ENODEV/-EIO%s%s; the last stream: %s", bad, bad ? ", the first " : "",
              bad ? snd_strerror(first) : "", snd_strerror(err));
    snd_pcm_close(pcm);
}

static void pt_fork_close(void)
{
    snd_pcm_t *pcm = pt_open();
    int werr = pt_write(pcm, 0, PT_RATE / 2), werr2 = -1, derr = -1, status = -1;
    pid_t child = fork();

    if (child == 0)
        _exit(snd_pcm_close(pcm) == 0 ? 0 : 1); /* as a server's helper process may */
    if (child > 0)
        waitpid(child, &status, 0);
    werr2 = pt_write(pcm, PT_RATE / 2, PT_RATE / 2);
    derr = snd_pcm_drain(pcm);
    tc_result(!werr && child > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0 && !werr2 && !derr,
              "a fork()ed child closes the PCM, the parent plays on",
              "0.5 s written (%s), the child's close %s, then 0.5 s more (%s), drain %s", snd_strerror(werr),
              WIFEXITED(status) && WEXITSTATUS(status) == 0 ? "succeeded" : "failed", snd_strerror(werr2),
              snd_strerror(derr));
    snd_pcm_close(pcm);
}

/* The "gap" mode: lockgap-shim.so runs pt_gap_drop in the draining thread just before the drain
 * callback takes the plugin's lock, after ioplug has let its own go. */
static snd_pcm_t *pt_gap_pcm;
static bool pt_gap_hit;
static int pt_gap_drop_err = 1;

static void *pt_gap_drop_thread(void *arg)
{
    (void)arg;
    pt_gap_drop_err = snd_pcm_drop(pt_gap_pcm);
    return NULL;
}

static void pt_gap_drop(void)
{
    pthread_t t;

    pt_gap_hit = true;
    if (pthread_create(&t, NULL, pt_gap_drop_thread, NULL) == 0)
        pthread_join(t, NULL);
}

static long long pt_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void pt_drop_in_drain_gap(void)
{
    void (*arm)(void (*)(void)) = (void (*)(void (*)(void)))dlsym(RTLD_DEFAULT, "lockgap_arm");
    snd_pcm_t *pcm = pt_open();
    int werr, derr = 1, perr = 1, werr2 = 1, derr2 = 1;
    long long t0, drain_ms = -1;

    if (!arm) {
        tc_result(false, "a drop between ioplug's drain and the plugin's drain callback", "lockgap-shim.so is not preloaded");
        snd_pcm_close(pcm);
        return;
    }
    pt_gap_pcm = pcm;
    if ((werr = pt_write(pcm, 0, 3 * PT_PERIOD)) == 0) { /* the first period started the stream */
        arm(pt_gap_drop);
        t0 = pt_now_ms();
        derr = snd_pcm_drain(pcm);
        drain_ms = pt_now_ms() - t0;
        if ((perr = snd_pcm_prepare(pcm)) == 0 && (werr2 = pt_write(pcm, 0, PT_RATE / 2)) == 0)
            derr2 = snd_pcm_drain(pcm);
    }
    tc_result(pt_gap_hit && !werr && !derr && !pt_gap_drop_err && !perr && !werr2 && !derr2,
              "a drop between ioplug's drain and the plugin's drain callback",
              "%s; the drop %s; the drain %s after %lld ms; then prepare %s, 0.5 s written (%s), drain %s",
              pt_gap_hit ? "the drop came in the gap" : "the shim never ran the drop", snd_strerror(pt_gap_drop_err),
              snd_strerror(derr), drain_ms, snd_strerror(perr), snd_strerror(werr2), snd_strerror(derr2));
    snd_pcm_close(pcm);
}

/* The program's cases, one line each. */
static const struct tc_case pt_cases[] = {
    { pt_write_while_reading, 1 }, { pt_rounds_while_reading, 1 }, { pt_drain_vs_drop, 1 }, { pt_fork_close, 1 },
};

static const struct tc_case pt_gap_cases[] = { { pt_drop_in_drain_gap, 1 } };

int main(int argc, char **argv)
{
    tc_plan_option(&argc, &argv);
    pt_device = argc > 1 ? argv[1] : "xen_raw";
    if (argc > 2 && strcmp(argv[2], "gap") == 0)
        return tc_run(pt_gap_cases, 1);
    return tc_run(pt_cases, sizeof(pt_cases) / sizeof(pt_cases[0]));
}
