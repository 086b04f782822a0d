/* duplex: plays a raw S16_LE stereo 48 kHz file on one ALSA device while recording the same
 * length plus a margin from another, in one process (a card's connection belongs to one
 * process, as with any ALSA device opened twice by one full-duplex program).
 *   duplex PLAY_DEV CAPTURE_DEV IN.raw OUT.raw */
#include <alsa/asoundlib.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#define DUPLEX_RATE 48000
#define DUPLEX_FRAME 4 /* S16_LE stereo */

struct duplex_job {
    snd_pcm_t *pcm;
    char *data;
    snd_pcm_uframes_t frames;
    int err;
};

static snd_pcm_t *duplex_open(const char *dev, snd_pcm_stream_t dir)
{
    snd_pcm_t *pcm;
    int err = snd_pcm_open(&pcm, dev, dir, 0);

    if (err >= 0)
        err = snd_pcm_set_params(pcm, SND_PCM_FORMAT_S16_LE, SND_PCM_ACCESS_RW_INTERLEAVED, 2, DUPLEX_RATE, 0,
                                 200000);
    if (err < 0) {
        fprintf(stderr, "duplex: %s: %s\n", dev, snd_strerror(err));
        exit(1);
    }
    return pcm;
}

static void *duplex_run(void *arg)
{
    struct duplex_job *j = arg;
    bool play = snd_pcm_stream(j->pcm) == SND_PCM_STREAM_PLAYBACK;

    for (snd_pcm_uframes_t done = 0; done < j->frames;) {
        snd_pcm_sframes_t n = play ? snd_pcm_writei(j->pcm, j->data + done * DUPLEX_FRAME, j->frames - done)
                                   : snd_pcm_readi(j->pcm, j->data + done * DUPLEX_FRAME, j->frames - done);

        if (n < 0) {
            j->err = (int)n;
            return NULL;
        }
        done += (snd_pcm_uframes_t)n;
    }
    if (play)
        j->err = snd_pcm_drain(j->pcm);
    return NULL;
}

int main(int argc, char **argv)
{
    struct duplex_job play = { 0 }, rec = { 0 };
    pthread_t tp, tr;
    FILE *f;
    long size;

    if (argc != 5) {
        fprintf(stderr, "usage: duplex PLAY_DEV CAPTURE_DEV IN.raw OUT.raw\n");
        return 2;
    }
    f = fopen(argv[3], "rb");
    if (!f || fseek(f, 0, SEEK_END) < 0 || (size = ftell(f)) <= 0 || fseek(f, 0, SEEK_SET) < 0) {
        perror(argv[3]);
        return 1;
    }
    play.frames = (snd_pcm_uframes_t)size / DUPLEX_FRAME;
    play.data = malloc(play.frames * DUPLEX_FRAME);
    rec.frames = play.frames + DUPLEX_RATE; /* one second of margin */
    rec.data = calloc(rec.frames, DUPLEX_FRAME);
    if (!play.data || !rec.data || fread(play.data, DUPLEX_FRAME, play.frames, f) != play.frames)
        return 1;
    fclose(f);
    rec.pcm = duplex_open(argv[2], SND_PCM_STREAM_CAPTURE);
    play.pcm = duplex_open(argv[1], SND_PCM_STREAM_PLAYBACK);
    pthread_create(&tr, NULL, duplex_run, &rec);
    pthread_create(&tp, NULL, duplex_run, &play);
    pthread_join(tp, NULL);
    pthread_join(tr, NULL);
    if (play.err < 0 || rec.err < 0) {
        fprintf(stderr, "duplex: %s: %s\n", play.err < 0 ? "playback" : "capture",
                snd_strerror(play.err < 0 ? play.err : rec.err));
        return 1;
    }
    f = fopen(argv[4], "wb");
    if (!f || fwrite(rec.data, DUPLEX_FRAME, rec.frames, f) != rec.frames || fclose(f) != 0) {
        perror(argv[4]);
        return 1;
    }
    snd_pcm_close(play.pcm);
    snd_pcm_close(rec.pcm);
    free(play.data);
    free(rec.data);
    return 0;
}
