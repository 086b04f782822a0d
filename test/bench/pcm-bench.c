/* pcm-bench: figures for `make bench` (never a pass/fail test).
 *   pcm-bench DEVICE throughput SECONDS        write SECONDS of S16_LE stereo 48 kHz as fast as
 *                                              the device takes it (stop_threshold = boundary,
 *                                              so a free-running backend is no xrun); prints
 *                                              "throughput DEVICE x_realtime MB/s cpu_s"
 *   pcm-bench DEVICE cpu SECONDS PERIOD        play SECONDS in real time with PERIOD-frame
 *                                              periods (buffer: 4 periods); prints
 *                                              "cpu DEVICE PERIOD percent writes xruns" */
#include <alsa/asoundlib.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define PB_RATE 48000
#define PB_FRAME 4

static double pb_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static double pb_cpu(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

static snd_pcm_t *pb_open(const char *dev, snd_pcm_uframes_t period, snd_pcm_uframes_t buffer, bool free_run)
{
    snd_pcm_hw_params_t *hw;
    snd_pcm_sw_params_t *sw;
    snd_pcm_uframes_t boundary;
    snd_pcm_t *pcm;
    int err;

    if ((err = snd_pcm_open(&pcm, dev, SND_PCM_STREAM_PLAYBACK, 0)) < 0) {
        fprintf(stderr, "pcm-bench: %s: %s\n", dev, snd_strerror(err));
        exit(1);
    }
    snd_pcm_hw_params_alloca(&hw);
    snd_pcm_hw_params_any(pcm, hw);
    snd_pcm_hw_params_set_access(pcm, hw, SND_PCM_ACCESS_RW_INTERLEAVED);
    snd_pcm_hw_params_set_format(pcm, hw, SND_PCM_FORMAT_S16_LE);
    snd_pcm_hw_params_set_channels(pcm, hw, 2);
    snd_pcm_hw_params_set_rate(pcm, hw, PB_RATE, 0);
    snd_pcm_hw_params_set_period_size_near(pcm, hw, &period, NULL);
    snd_pcm_hw_params_set_buffer_size_near(pcm, hw, &buffer);
    if ((err = snd_pcm_hw_params(pcm, hw)) < 0) {
        fprintf(stderr, "pcm-bench: hw_params: %s\n", snd_strerror(err));
        exit(1);
    }
    snd_pcm_sw_params_alloca(&sw);
    snd_pcm_sw_params_current(pcm, sw);
    if (free_run) {
        snd_pcm_sw_params_get_boundary(sw, &boundary);
        snd_pcm_sw_params_set_stop_threshold(pcm, sw, boundary);
    }
    snd_pcm_sw_params(pcm, sw);
    return pcm;
}

static long pb_xruns;

static long pb_play(snd_pcm_t *pcm, double seconds, snd_pcm_uframes_t chunk)
{
    static char zeros[PB_RATE * PB_FRAME];
    long frames = (long)(seconds * PB_RATE), calls = 0;

    for (long done = 0; done < frames;) {
        snd_pcm_sframes_t n = snd_pcm_writei(pcm, zeros, (snd_pcm_uframes_t)(frames - done) < chunk
                                                              ? (snd_pcm_uframes_t)(frames - done) : chunk);

        calls++;
        pb_xruns += n == -EPIPE;
        if (n < 0 && (n = snd_pcm_recover(pcm, (int)n, 1)) < 0) {
            fprintf(stderr, "pcm-bench: write: %s\n", snd_strerror((int)n));
            exit(1);
        }
        done += n > 0 ? n : 0;
    }
    snd_pcm_drain(pcm);
    return calls;
}

int main(int argc, char **argv)
{
    if (argc == 4 && !strcmp(argv[2], "throughput")) {
        double secs = atof(argv[3]), t0, c0, wall, cpu;
        snd_pcm_t *pcm = pb_open(argv[1], 4096, 65536, true);

        t0 = pb_now();
        c0 = pb_cpu();
        pb_play(pcm, secs, 4096);
        wall = pb_now() - t0;
        cpu = pb_cpu() - c0;
        printf("throughput %s %.1f %.1f %.3f\n", argv[1], secs / wall, secs * PB_RATE * PB_FRAME / wall / 1e6, cpu);
        snd_pcm_close(pcm);
        return 0;
    }
    if (argc == 5 && !strcmp(argv[2], "cpu")) {
        double secs = atof(argv[3]), c0, wall, t0;
        snd_pcm_uframes_t period = (snd_pcm_uframes_t)atol(argv[4]);
        snd_pcm_t *pcm = pb_open(argv[1], period, period * 4, false);
        long calls;

        t0 = pb_now();
        c0 = pb_cpu();
        calls = pb_play(pcm, secs, period);
        wall = pb_now() - t0;
        printf("cpu %s %lu %.2f %ld %ld\n", argv[1], (unsigned long)period, 100 * (pb_cpu() - c0) / wall, calls,
               pb_xruns);
        snd_pcm_close(pcm);
        return 0;
    }
    fprintf(stderr, "usage: pcm-bench DEVICE throughput SECONDS | pcm-bench DEVICE cpu SECONDS PERIOD\n");
    return 2;
}
