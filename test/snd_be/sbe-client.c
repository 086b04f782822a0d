/* sbe-client: an ALSA application for test/plugin/test-snd-be, run in the simulated guest with
 * snd_be as the backend. It plays a raw file through the plugin and checks what snd_be's ALSA
 * device (test/snd_be/sbe_clock.c) recorded: RECORD.raw (the frames it played) and RECORD.log
 * (its events).
 *
 *   sbe-client drain NAME DEVICE FORMAT RATE CHANNELS PERIOD BUFFER FILE RECORD
 *       writes FILE (not a whole number of periods), snd_pcm_drain(). The card's log must say
 *       that its clock passed FILE's last frame (its first "xrun F T", "drained F T" or
 *       "stop F T" line: F frames played by time T) no later than the moment drain returned,
 *       with F = all of FILE, and
 *       RECORD.raw must be FILE, byte for byte. (The card appends to its record when snd_be asks
 *       for the position, once per period, so the record's size at the moment drain returns
 *       says less than the log's time; both clocks are the same CLOCK_MONOTONIC.)
 *   sbe-client pause NAME DEVICE FORMAT RATE CHANNELS PERIOD BUFFER FILE RECORD
 *       writes half of FILE, snd_pcm_pause(1); once the device logged its pause at frame F,
 *       nothing more may play for SBC_PAUSE_MS; snd_pcm_pause(0), the rest, drain: the card
 *       must have run dry only at the end, and RECORD.raw must be FILE exactly.
 * PERIOD and BUFFER are in frames. Prints one PASS:/FAIL: line per case ("NAME: ..."); exits 1
 * if any failed. Every wait is bounded. */
#include <alsa/asoundlib.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define TC_PREFIX ""
#include "../plugin/case-result.h"

#define SBC_PAUSE_MS 300    /* how long a pause is watched */
#define SBC_LOG_WAIT_MS 3000 /* the plugin does not wait for TRIGGER's answer: the device's log line may lag */

struct sbc_args {
    const char *name, *device, *file, *record;
    snd_pcm_format_t format;
    unsigned rate, channels;
    snd_pcm_uframes_t period, buffer;
};


static void sbc_sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };

    nanosleep(&ts, NULL);
}

/* The whole of PATH (malloc'd) and its length; NULL if unreadable. */
static char *sbc_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n;

    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (buf = malloc((size_t)n + 1)) && fread(buf, 1, (size_t)n, f) == (size_t)n) {
        *len = (size_t)n;
        buf[n] = 0;
    } else {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    return buf;
}

static long long sbc_size(const char *path)
{
    struct stat st;

    return stat(path, &st) < 0 ? -1 : (long long)st.st_size;
}

/* "RECORD.raw holds exactly DATA": "" if so, else what differs (static buffer). */
static const char *sbc_compare(const char *record, const char *data, size_t len)
{
    static char why[4400];
    char path[4096];
    size_t rlen = 0, i;
    char *rec;

    snprintf(path, sizeof(path), "%s.raw", record);
    if (!(rec = sbc_slurp(path, &rlen))) {
        snprintf(why, sizeof(why), "cannot read %s: %s", path, strerror(errno));
        return why;
    }
    for (i = 0; i < len && i < rlen && rec[i] == data[i]; i++)
        ;
    free(rec);
    if (i == len && rlen == len)
        return "";
    snprintf(why, sizeof(why), "%s holds %zu bytes, the file %zu; first difference at byte %zu", path, rlen, len, i);
    return why;
}

static unsigned long long sbc_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec;
}

/* The device's first "EVENT F T" log line for one of EVENTS ("xrun|drained"), waiting for one
 * (bounded): its frame count (-1 if none) and time. */
static long long sbc_log_event(const char *record, const char *events, unsigned long long *when)
{
    char path[4096];
    long long frame = -1;

    snprintf(path, sizeof(path), "%s.log", record);
    for (int waited = 0; frame < 0 && waited <= SBC_LOG_WAIT_MS; waited += 10) {
        size_t len;
        char *log = sbc_slurp(path, &len), *line, *save = NULL;

        for (line = log ? strtok_r(log, "\n", &save) : NULL; line && frame < 0; line = strtok_r(NULL, "\n", &save)) {
            char event[32];
            long long f;
            unsigned long long t;

            if (sscanf(line, "%31s %lld %llu", event, &f, &t) != 3)
                continue;
            for (const char *e = events; *e; e += strcspn(e, "|"), e += *e == '|') {
                if (strlen(event) == strcspn(e, "|") && !strncmp(event, e, strlen(event))) {
                    frame = f;
                    if (when)
                        *when = t;
                }
            }
        }
        free(log);
        if (frame < 0)
            sbc_sleep_ms(10);
    }
    return frame;
}

static snd_pcm_t *sbc_open(const struct sbc_args *a)
{
    snd_pcm_hw_params_t *hw;
    snd_pcm_t *pcm;
    int err;

    if ((err = snd_pcm_open(&pcm, a->device, SND_PCM_STREAM_PLAYBACK, 0)) < 0) {
        tc_result(false, a->name, "snd_pcm_open %s: %s", a->device, snd_strerror(err));
        return NULL;
    }
    snd_pcm_hw_params_alloca(&hw);
    snd_pcm_hw_params_any(pcm, hw);
    if ((err = snd_pcm_hw_params_set_access(pcm, hw, SND_PCM_ACCESS_RW_INTERLEAVED)) < 0 ||
        (err = snd_pcm_hw_params_set_format(pcm, hw, a->format)) < 0 ||
        (err = snd_pcm_hw_params_set_channels(pcm, hw, a->channels)) < 0 ||
        (err = snd_pcm_hw_params_set_rate(pcm, hw, a->rate, 0)) < 0 ||
        (err = snd_pcm_hw_params_set_period_size(pcm, hw, a->period, 0)) < 0 ||
        (err = snd_pcm_hw_params_set_buffer_size(pcm, hw, a->buffer)) < 0 || (err = snd_pcm_hw_params(pcm, hw)) < 0) {
        tc_result(false, a->name, "hw_params (%s %u Hz %u ch, period %lu, buffer %lu): %s",
                   snd_pcm_format_name(a->format), a->rate, a->channels, a->period, a->buffer, snd_strerror(err));
        snd_pcm_close(pcm);
        return NULL;
    }
    return pcm;
}

/* Writes frames [from, to) of DATA (blocking); false (with a FAIL line) on an error. */
static bool sbc_write(const struct sbc_args *a, snd_pcm_t *pcm, const char *data, size_t from, size_t to)
{
    size_t fb = (size_t)snd_pcm_frames_to_bytes(pcm, 1);

    while (from < to) {
        snd_pcm_uframes_t n = to - from < a->period ? to - from : a->period;
        snd_pcm_sframes_t w = snd_pcm_writei(pcm, data + from * fb, n);

        if (w < 0) {
            tc_result(false, a->name, "snd_pcm_writei at frame %zu: %s", from, snd_strerror((int)w));
            return false;
        }
        from += (size_t)w;
    }
    return true;
}

static void sbc_drain_case(const struct sbc_args *a, const char *data, size_t len)
{
    snd_pcm_t *pcm = sbc_open(a);
    unsigned long long returned, played_by = 0;
    long long played;
    size_t frames;
    const char *diff;
    int err;

    if (!pcm)
        return;
    frames = len / (size_t)snd_pcm_frames_to_bytes(pcm, 1);
    if (frames % a->period == 0) {
        tc_result(false, a->name, "the file is %zu frames, a whole number of %lu-frame periods", frames, a->period);
    } else if (sbc_write(a, pcm, data, 0, frames)) {
        err = snd_pcm_drain(pcm);
        returned = sbc_now_ns();
        played = sbc_log_event(a->record, "xrun|drained|stop", &played_by);
        diff = sbc_compare(a->record, data, len);
        if (err < 0)
            tc_result(false, a->name, "snd_pcm_drain: %s", snd_strerror(err));
        else if (played < 0)
            tc_result(false, a->name, "the card logged no end of its stream within %d ms of drain", SBC_LOG_WAIT_MS);
        else if (played != (long long)frames)
            tc_result(false, a->name, "the card stopped or ran out after %lld frames of %zu", played, frames);
        else if (played_by > returned)
            tc_result(false, a->name, "drain returned %.1f ms before the card had played the last frame",
                       (double)(played_by - returned) / 1e6);
        else if (*diff)
            tc_result(false, a->name, "%s", diff);
        else
            tc_result(true, a->name, "%zu frames (%.2f periods of %lu): drain returned %.1f ms after the card played the last one; bit-exact",
                       frames, (double)frames / (double)a->period, a->period, (double)(returned - played_by) / 1e6);
    }
    snd_pcm_close(pcm);
}

static bool sbc_can_pause(snd_pcm_t *pcm)
{
    snd_pcm_hw_params_t *hw;

    snd_pcm_hw_params_alloca(&hw);
    return snd_pcm_hw_params_current(pcm, hw) == 0 && snd_pcm_hw_params_can_pause(hw);
}

static void sbc_pause_case(const struct sbc_args *a, const char *data, size_t len)
{
    snd_pcm_t *pcm = sbc_open(a);
    size_t fb, frames, half;
    long long paused_at, resumed_at, ended_at, held;
    char path[4096], name[256];
    const char *diff;
    int err;

    if (!pcm)
        return;
    fb = (size_t)snd_pcm_frames_to_bytes(pcm, 1);
    frames = len / fb;
    half = frames / 2;
    snprintf(path, sizeof(path), "%s.raw", a->record);
    snprintf(name, sizeof(name), "%s: pause holds", a->name);
    if (!sbc_can_pause(pcm)) {
        tc_result(false, name, "the PCM cannot pause (snd_pcm_hw_params_can_pause)");
        goto out;
    }
    if (!sbc_write(a, pcm, data, 0, half))
        goto out;
    if ((err = snd_pcm_pause(pcm, 1)) < 0) {
        tc_result(false, name, "snd_pcm_pause(1): %s", snd_strerror(err));
        goto out;
    }
    paused_at = sbc_log_event(a->record, "pause", NULL);
    sbc_sleep_ms(SBC_PAUSE_MS);
    held = sbc_size(path);
    if (snd_pcm_state(pcm) != SND_PCM_STATE_PAUSED)
        tc_result(false, name, "state %s while paused", snd_pcm_state_name(snd_pcm_state(pcm)));
    else if (paused_at <= 0 || paused_at >= (long long)half)
        tc_result(false, name, "the device logged no pause within %d ms, or one at frame %lld (0 < F < %zu expected)",
                   SBC_LOG_WAIT_MS, paused_at, half);
    else if (held != paused_at * (long long)fb)
        tc_result(false, name, "paused at frame %lld, but %lld bytes played after %d ms", paused_at, held,
                   SBC_PAUSE_MS);
    else
        tc_result(true, name, "the device paused at frame %lld of %zu; nothing more played for %d ms", paused_at,
                   frames, SBC_PAUSE_MS);
    if ((err = snd_pcm_pause(pcm, 0)) < 0) {
        tc_result(false, a->name, "snd_pcm_pause(0): %s", snd_strerror(err));
        goto out;
    }
    if (!sbc_write(a, pcm, data, half, frames))
        goto out;
    err = snd_pcm_drain(pcm);
    resumed_at = sbc_log_event(a->record, "resume", NULL);
    ended_at = sbc_log_event(a->record, "xrun|drained|stop", NULL);
    diff = sbc_compare(a->record, data, len);
    snprintf(name, sizeof(name), "%s: bit-exact across the pause", a->name);
    if (err < 0)
        tc_result(false, name, "snd_pcm_drain: %s", snd_strerror(err));
    else if (ended_at != (long long)frames)
        tc_result(false, name, "the card ran dry or stopped at frame %lld of %zu (not fed without a gap)", ended_at,
                   frames);
    else if (resumed_at != paused_at)
        tc_result(false, name, "the device resumed at frame %lld, paused at %lld", resumed_at, paused_at);
    else if (*diff)
        tc_result(false, name, "%s", diff);
    else
        tc_result(true, name, "%zu frames, resumed at frame %lld", frames, resumed_at);
out:
    snd_pcm_close(pcm);
}

int main(int argc, char **argv)
{
    struct sbc_args a;
    size_t len;
    char *data;

    tc_plan_option(&argc, &argv);
    if (argc >= 2 && tc_plan_only) /* drain: one case line; pause: "pause holds", then the resume's */
        tc_plan(strcmp(argv[1], "pause") ? 1 : 2);
    if (argc != 11 || (strcmp(argv[1], "drain") && strcmp(argv[1], "pause"))) {
        fprintf(stderr, "usage: sbe-client [--plan] drain|pause NAME DEVICE FORMAT RATE CHANNELS PERIOD BUFFER FILE RECORD\n");
        return 2;
    }
    a.name = argv[2];
    a.device = argv[3];
    a.format = snd_pcm_format_value(argv[4]);
    a.rate = (unsigned)atoi(argv[5]);
    a.channels = (unsigned)atoi(argv[6]);
    a.period = (snd_pcm_uframes_t)atol(argv[7]);
    a.buffer = (snd_pcm_uframes_t)atol(argv[8]);
    a.file = argv[9];
    a.record = argv[10];
    if (a.format == SND_PCM_FORMAT_UNKNOWN || !a.rate || !a.channels || !a.period || a.buffer < 2 * a.period) {
        fprintf(stderr, "sbe-client: bad format, rate, channels, period or buffer\n");
        return 2;
    }
    tc_plan(strcmp(argv[1], "pause") ? 1 : 2);
    if (!(data = sbc_slurp(a.file, &len))) {
        tc_result(false, a.name, "cannot read %s: %s", a.file, strerror(errno));
        return 1;
    }
    if (!strcmp(argv[1], "drain"))
        sbc_drain_case(&a, data, len);
    else
        sbc_pause_case(&a, data, len);
    free(data);
    return tc_failures ? 1 : 0;
}
