/* pcm-trace: an LD_PRELOAD library that records, from outside, how a sound server reads the
 * position of the PCMs it opens (PipeWire's timer scheduling reads snd_pcm_avail; PulseAudio
 * reads snd_pcm_status's avail, delay and htstamp), and every call that moves the application
 * pointer, so that test/apps/pcm-trace-check can rebuild hw_ptr = f(appl_ptr, avail) and check
 * it: never negative delay, monotonic, no jumps.
 *
 *   PCM_TRACE_FILE=/path/trace  PCM_TRACE_NAME=xen  LD_PRELOAD=.../libpcm-trace.so  pipewire ...
 *
 * Only PCMs opened by the application itself (not the slaves alsa-lib opens inside) whose name is
 * PCM_TRACE_NAME (default "xen") are traced; calls alsa-lib makes to itself are not logged (a
 * per-thread depth counter). Without PCM_TRACE_FILE the library only forwards. One line per call:
 *   <t_before_ns> <t_after_ns> <pcm id> <op> <return value> [key=value ...]
 * appended with one write(2) each (O_APPEND: lines from several threads never interleave).
 * A capture PCM's mmap commits also carry fnv=<FNV-1a 64 of the committed bytes> (interleaved
 * access), read from the areas its snd_pcm_mmap_begin returned: what the application took from
 * the PCM, to compare with the backend's source frame by frame (apptool commits). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <alsa/asoundlib.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PCT_MAX_PCMS 64

struct pct_pcm {
    snd_pcm_t *pcm;
    int id;
    bool capture;
    const snd_pcm_channel_area_t *areas; /* the last snd_pcm_mmap_begin's, for commit's hash */
};

/* Set once, under pct_lock, by the first traced open; read without the lock by every call. */
static atomic_int pct_fd = -1;
static const char *pct_file;
static const char *pct_name = "xen";
static struct pct_pcm pct_pcms[PCT_MAX_PCMS];
static int pct_next_id = 1;
/* Guards pct_pcms and pct_next_id: servers open, use and close PCMs from several threads. */
static pthread_mutex_t pct_lock = PTHREAD_MUTEX_INITIALIZER;
/* Depth of wrapped calls on this thread: alsa-lib's calls to its own exported functions (a plug
 * PCM committing to its slave) arrive here too and must be neither traced nor counted. */
static __thread int pct_depth;

static long long pct_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static long long pct_ts_ns(const snd_htimestamp_t *ts)
{
    return (long long)ts->tv_sec * 1000000000LL + ts->tv_nsec;
}

__attribute__((constructor)) static void pct_init(void)
{
    const char *name = getenv("PCM_TRACE_NAME");

    pct_file = getenv("PCM_TRACE_FILE");
    if (name && *name)
        pct_name = name;
}

/* The real function NAME of alsa-lib (the next definition after this library). */
static void *pct_real(const char *name)
{
    void *fn = dlsym(RTLD_NEXT, name);

    if (!fn) {
        fprintf(stderr, "pcm-trace: %s not found: %s\n", name, dlerror());
        abort();
    }
    return fn;
}
#define PCT_REAL(fn) static __typeof__(fn) *real; if (!real) real = (__typeof__(fn) *)pct_real(#fn)

/* The trace id of PCM, 0 if it is not traced. */
static int pct_id(snd_pcm_t *pcm)
{
    int id = 0;

    /* pct_lock: the table changes when another thread opens or closes a PCM. */
    pthread_mutex_lock(&pct_lock);
    for (int i = 0; i < PCT_MAX_PCMS; i++)
        if (pct_pcms[i].pcm == pcm) {
            id = pct_pcms[i].id;
            break;
        }
    pthread_mutex_unlock(&pct_lock);
    return id;
}

/* Registers a traced PCM; the trace file is opened with the first one, not at load time:
 * PulseAudio closes every inherited descriptor when it starts. */
static int pct_add(snd_pcm_t *pcm, bool capture)
{
    int id = 0;

    /* pct_lock: see pct_id; it also orders the one-time open of the trace file. */
    pthread_mutex_lock(&pct_lock);
    if (pct_fd < 0)
        pct_fd = open(pct_file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    for (int i = 0; i < PCT_MAX_PCMS; i++)
        if (!pct_pcms[i].pcm) {
            pct_pcms[i] = (struct pct_pcm){ .pcm = pcm, .id = pct_next_id++, .capture = capture };
            id = pct_pcms[i].id;
            break;
        }
    pthread_mutex_unlock(&pct_lock);
    return id;
}

static void pct_remove(snd_pcm_t *pcm)
{
    /* pct_lock: see pct_id. */
    pthread_mutex_lock(&pct_lock);
    for (int i = 0; i < PCT_MAX_PCMS; i++)
        if (pct_pcms[i].pcm == pcm)
            pct_pcms[i].pcm = NULL;
    pthread_mutex_unlock(&pct_lock);
}

static void pct_log(long long t0, int id, const char *op, long long ret, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void pct_log(long long t0, int id, const char *op, long long ret, const char *fmt, ...)
{
    char line[512];
    int n = snprintf(line, sizeof(line), "%lld %lld %d %s %lld", t0, pct_now(), id, op, ret);
    va_list ap;

    if (fmt && n > 0 && n < (int)sizeof(line)) {
        va_start(ap, fmt);
        n += vsnprintf(line + n, sizeof(line) - n, fmt, ap);
        va_end(ap);
    }
    if (n <= 0 || n >= (int)sizeof(line) - 1)
        return;
    line[n++] = '\n';
    if (write(pct_fd, line, n) != n) {
        /* A short trace fails the checker (lines missing); nothing else to do here. */
    }
}

/* Entering a wrapped call: the PCM's trace id when this is the application's own (outermost) call
 * on a traced PCM, else 0. */
static int pct_enter(snd_pcm_t *pcm)
{
    return pct_depth++ == 0 && pct_fd >= 0 ? pct_id(pcm) : 0;
}
#define PCT_ENTER(pcm) int id = pct_enter(pcm); long long t0 = pct_now()
#define PCT_LEAVE() pct_depth--

int snd_pcm_open(snd_pcm_t **pcmp, const char *name, snd_pcm_stream_t stream, int mode)
{
    PCT_REAL(snd_pcm_open);
    int outer = pct_depth++ == 0;
    long long t0 = pct_now();
    int ret = real(pcmp, name, stream, mode);
    int id;

    pct_depth--;
    if (pct_file && *pct_file && outer && ret == 0 && name && strcmp(name, pct_name) == 0 && (id = pct_add(*pcmp, stream == SND_PCM_STREAM_CAPTURE)) &&
        pct_fd >= 0)
        pct_log(t0, id, "open", ret, " stream=%s mode=%d pid=%d", stream == SND_PCM_STREAM_PLAYBACK ? "P" : "C",
                mode, (int)getpid());
    return ret;
}

int snd_pcm_close(snd_pcm_t *pcm)
{
    PCT_REAL(snd_pcm_close);
    PCT_ENTER(pcm);
    int ret = real(pcm);

    PCT_LEAVE();
    if (id) {
        pct_remove(pcm);
        pct_log(t0, id, "close", ret, NULL);
    }
    return ret;
}

int snd_pcm_hw_params(snd_pcm_t *pcm, snd_pcm_hw_params_t *params)
{
    PCT_REAL(snd_pcm_hw_params);
    PCT_ENTER(pcm);
    int ret = real(pcm, params);
    snd_pcm_uframes_t buffer = 0, period = 0;
    unsigned int rate = 0, channels = 0;
    snd_pcm_access_t access = 0;

    if (id && ret == 0) {
        snd_pcm_hw_params_get_buffer_size(params, &buffer);
        snd_pcm_hw_params_get_period_size(params, &period, NULL);
        snd_pcm_hw_params_get_rate(params, &rate, NULL);
        snd_pcm_hw_params_get_channels(params, &channels);
        snd_pcm_hw_params_get_access(params, &access);
    }
    PCT_LEAVE();
    if (id)
        pct_log(t0, id, "hw_params", ret, " buffer=%lu period=%lu rate=%u channels=%u access=%d", buffer, period,
                rate, channels, (int)access);
    return ret;
}

/* Wrappers of int f(snd_pcm_t *) that log only their return value. */
#define PCT_SIMPLE(fn, op)                                                                                             \
    int fn(snd_pcm_t *pcm)                                                                                             \
    {                                                                                                                  \
        PCT_REAL(fn);                                                                                                  \
        PCT_ENTER(pcm);                                                                                                \
        int ret = real(pcm);                                                                                           \
        PCT_LEAVE();                                                                                                   \
        if (id)                                                                                                        \
            pct_log(t0, id, op, ret, NULL);                                                                            \
        return ret;                                                                                                    \
    }
PCT_SIMPLE(snd_pcm_prepare, "prepare")
PCT_SIMPLE(snd_pcm_start, "start")
PCT_SIMPLE(snd_pcm_drop, "drop")
PCT_SIMPLE(snd_pcm_drain, "drain")
PCT_SIMPLE(snd_pcm_reset, "reset")
PCT_SIMPLE(snd_pcm_resume, "resume")

int snd_pcm_pause(snd_pcm_t *pcm, int enable)
{
    PCT_REAL(snd_pcm_pause);
    PCT_ENTER(pcm);
    int ret = real(pcm, enable);

    PCT_LEAVE();
    if (id)
        pct_log(t0, id, "pause", ret, " enable=%d", enable);
    return ret;
}

int snd_pcm_recover(snd_pcm_t *pcm, int err, int silent)
{
    PCT_REAL(snd_pcm_recover);
    PCT_ENTER(pcm);
    int ret = real(pcm, err, silent);

    PCT_LEAVE();
    if (id)
        pct_log(t0, id, "recover", ret, " err=%d", err);
    return ret;
}

snd_pcm_sframes_t snd_pcm_avail(snd_pcm_t *pcm)
{
    PCT_REAL(snd_pcm_avail);
    PCT_ENTER(pcm);
    snd_pcm_sframes_t ret = real(pcm);

    PCT_LEAVE();
    if (id)
        pct_log(t0, id, "avail", ret, NULL);
    return ret;
}

snd_pcm_sframes_t snd_pcm_avail_update(snd_pcm_t *pcm)
{
    PCT_REAL(snd_pcm_avail_update);
    PCT_ENTER(pcm);
    snd_pcm_sframes_t ret = real(pcm);

    PCT_LEAVE();
    if (id)
        pct_log(t0, id, "avail_update", ret, NULL);
    return ret;
}

int snd_pcm_delay(snd_pcm_t *pcm, snd_pcm_sframes_t *delayp)
{
    PCT_REAL(snd_pcm_delay);
    PCT_ENTER(pcm);
    int ret = real(pcm, delayp);

    PCT_LEAVE();
    if (id)
        pct_log(t0, id, "delay", ret, " delay=%ld", ret == 0 ? (long)*delayp : 0L);
    return ret;
}

int snd_pcm_avail_delay(snd_pcm_t *pcm, snd_pcm_sframes_t *availp, snd_pcm_sframes_t *delayp)
{
    PCT_REAL(snd_pcm_avail_delay);
    PCT_ENTER(pcm);
    int ret = real(pcm, availp, delayp);

    PCT_LEAVE();
    if (id)
        pct_log(t0, id, "avail_delay", ret, " avail=%ld delay=%ld", ret == 0 ? (long)*availp : 0L,
                ret == 0 ? (long)*delayp : 0L);
    return ret;
}

int snd_pcm_htimestamp(snd_pcm_t *pcm, snd_pcm_uframes_t *availp, snd_htimestamp_t *tstamp)
{
    PCT_REAL(snd_pcm_htimestamp);
    PCT_ENTER(pcm);
    int ret = real(pcm, availp, tstamp);

    PCT_LEAVE();
    if (id)
        pct_log(t0, id, "htimestamp", ret, " avail=%lu tstamp=%lld", ret == 0 ? *availp : 0UL,
                ret == 0 ? pct_ts_ns(tstamp) : 0LL);
    return ret;
}

int snd_pcm_status(snd_pcm_t *pcm, snd_pcm_status_t *status)
{
    PCT_REAL(snd_pcm_status);
    PCT_ENTER(pcm);
    int ret = real(pcm, status);
    snd_htimestamp_t ts = { 0, 0 };

    PCT_LEAVE();
    if (id) {
        if (ret == 0)
            snd_pcm_status_get_htstamp(status, &ts);
        pct_log(t0, id, "status", ret, " state=%d avail=%lu delay=%ld tstamp=%lld",
                ret == 0 ? (int)snd_pcm_status_get_state(status) : -1,
                ret == 0 ? snd_pcm_status_get_avail(status) : 0UL,
                ret == 0 ? (long)snd_pcm_status_get_delay(status) : 0L, pct_ts_ns(&ts));
    }
    return ret;
}

/* The areas of a traced capture PCM's last snd_pcm_mmap_begin (NULL: not traced, or playback). */
static const snd_pcm_channel_area_t *pct_capture_areas(snd_pcm_t *pcm)
{
    const snd_pcm_channel_area_t *areas = NULL;

    /* pct_lock: see pct_id. */
    pthread_mutex_lock(&pct_lock);
    for (int i = 0; i < PCT_MAX_PCMS; i++)
        if (pct_pcms[i].pcm == pcm && pct_pcms[i].capture)
            areas = pct_pcms[i].areas;
    pthread_mutex_unlock(&pct_lock);
    return areas;
}

int snd_pcm_mmap_begin(snd_pcm_t *pcm, const snd_pcm_channel_area_t **areas, snd_pcm_uframes_t *offset,
                       snd_pcm_uframes_t *frames)
{
    PCT_REAL(snd_pcm_mmap_begin);
    PCT_ENTER(pcm);
    int ret = real(pcm, areas, offset, frames);

    PCT_LEAVE();
    (void)t0;
    if (id && ret == 0) {
        /* pct_lock: see pct_id. */
        pthread_mutex_lock(&pct_lock);
        for (int i = 0; i < PCT_MAX_PCMS; i++)
            if (pct_pcms[i].pcm == pcm)
                pct_pcms[i].areas = *areas;
        pthread_mutex_unlock(&pct_lock);
    }
    return ret;
}

/* FNV-1a 64 of n bytes. */
static unsigned long long pct_fnv(const unsigned char *b, size_t n)
{
    unsigned long long h = 0xcbf29ce484222325ULL;

    while (n--) {
        h ^= *b++;
        h *= 0x100000001b3ULL;
    }
    return h;
}

snd_pcm_sframes_t snd_pcm_mmap_commit(snd_pcm_t *pcm, snd_pcm_uframes_t offset, snd_pcm_uframes_t frames)
{
    PCT_REAL(snd_pcm_mmap_commit);
    PCT_ENTER(pcm);
    const snd_pcm_channel_area_t *areas = id ? pct_capture_areas(pcm) : NULL;
    unsigned long long fnv = 0;
    bool hashed = false;

    /* Interleaved: channel 0's area starts the frame and its step is the frame. mmap_begin's
     * region never crosses the buffer's end, so the committed frames are contiguous. */
    if (areas && areas[0].first == 0 && areas[0].step % 8 == 0) {
        fnv = pct_fnv((const unsigned char *)areas[0].addr + offset * (areas[0].step / 8), frames * (areas[0].step / 8));
        hashed = true;
    }
    snd_pcm_sframes_t ret = real(pcm, offset, frames);

    PCT_LEAVE();
    if (id && hashed)
        pct_log(t0, id, "commit", ret, " frames=%lu fnv=%016llx", frames, fnv);
    else if (id)
        pct_log(t0, id, "commit", ret, " frames=%lu", frames);
    return ret;
}

/* Wrappers of snd_pcm_sframes_t f(snd_pcm_t *, X, snd_pcm_uframes_t): the return value moves
 * the application pointer (rewind: backwards). */
#define PCT_FRAMES(fn, op, argtype)                                                                                    \
    snd_pcm_sframes_t fn(snd_pcm_t *pcm, argtype arg, snd_pcm_uframes_t frames)                                        \
    {                                                                                                                  \
        PCT_REAL(fn);                                                                                                  \
        PCT_ENTER(pcm);                                                                                                \
        snd_pcm_sframes_t ret = real(pcm, arg, frames);                                                                \
        PCT_LEAVE();                                                                                                   \
        if (id)                                                                                                        \
            pct_log(t0, id, op, ret, " frames=%lu", frames);                                                           \
        return ret;                                                                                                    \
    }
PCT_FRAMES(snd_pcm_writei, "writei", const void *)
PCT_FRAMES(snd_pcm_readi, "readi", void *)
PCT_FRAMES(snd_pcm_writen, "writen", void **)
PCT_FRAMES(snd_pcm_readn, "readn", void **)

snd_pcm_sframes_t snd_pcm_rewind(snd_pcm_t *pcm, snd_pcm_uframes_t frames)
{
    PCT_REAL(snd_pcm_rewind);
    PCT_ENTER(pcm);
    snd_pcm_sframes_t ret = real(pcm, frames);

    PCT_LEAVE();
    if (id)
        pct_log(t0, id, "rewind", ret, " frames=%lu", frames);
    return ret;
}

snd_pcm_sframes_t snd_pcm_forward(snd_pcm_t *pcm, snd_pcm_uframes_t frames)
{
    PCT_REAL(snd_pcm_forward);
    PCT_ENTER(pcm);
    snd_pcm_sframes_t ret = real(pcm, frames);

    PCT_LEAVE();
    if (id)
        pct_log(t0, id, "forward", ret, " frames=%lu", frames);
    return ret;
}
