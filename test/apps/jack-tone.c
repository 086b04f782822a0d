/* jack-tone: a JACK client that plays known audio and counts the xruns JACK reports.
 *
 *   jack-tone SECONDS [PORT_PREFIX]     (default prefix: system:playback_)
 *
 * Connects out_1/out_2 to PREFIX1/PREFIX2, then plays SECONDS of position-stamped float frames,
 * exactly representable so a float path carries them bit-exact:
 *   frame k: left = (k % 4000 + 1) / 8192, right = -(k / 4000 + 1) / 8192   (never 0)
 * and silence before and after. test/apps/test-jack finds them in the backend's WAV.
 * Prints one line "frames=N rate=R period=P xruns=X cycle_us=MIN..MAX" (the shortest and longest
 * interval between two process cycles while playing, for failure reports), then one line
 * "xrun_ns=T" per xrun notification (CLOCK_MONOTONIC, the first JT_MAX_XRUNS; test-jack sets them
 * beside the machine's stalls), and exits 0 when all frames were handed to JACK; 1 on any error or
 * when they were not within SECONDS + 10 s (every wait is bounded). */
#include <errno.h>
#include <jack/jack.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define JT_PORTS 2
#define JT_STAMP 4000
#define JT_MAX_XRUNS 64

struct jt_state {
    jack_port_t *ports[JT_PORTS];
    uint64_t total;       /* frames to play */
    atomic_bool go;       /* set by main once the ports are connected */
    atomic_uint_fast64_t played; /* written by the process thread only */
    atomic_uint xruns;    /* JACK's xrun notifications (driver and clients) */
    int64_t xrun_ns[JT_MAX_XRUNS]; /* notification thread only; read by main after the play */
    int64_t last_ns, min_ns, max_ns; /* process thread only: intervals between cycles while playing */
};

static int64_t jt_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Diagnostics for a failure report (never a verdict): how regularly JACK ran the client. */
static void jt_note_cycle(struct jt_state *s)
{
    int64_t now = jt_now_ns(), d = now - s->last_ns;

    if (s->last_ns) {
        if (!s->min_ns || d < s->min_ns)
            s->min_ns = d;
        if (d > s->max_ns)
            s->max_ns = d;
    }
    s->last_ns = now;
}

static float jt_left(uint64_t k) { return (float)(k % JT_STAMP + 1) / 8192.0f; }
static float jt_right(uint64_t k) { return -(float)(k / JT_STAMP + 1) / 8192.0f; }

/* JACK's process thread: real-time, so no lock and no allocation; atomics only. */
static int jt_process(jack_nframes_t n, void *arg)
{
    struct jt_state *s = arg;
    float *l = jack_port_get_buffer(s->ports[0], n), *r = jack_port_get_buffer(s->ports[1], n);
    uint64_t k = atomic_load_explicit(&s->played, memory_order_relaxed);
    bool go = atomic_load_explicit(&s->go, memory_order_acquire);

    for (jack_nframes_t i = 0; i < n; i++, k += go) {
        bool on = go && k < s->total;

        l[i] = on ? jt_left(k) : 0.0f;
        r[i] = on ? jt_right(k) : 0.0f;
    }
    if (go && k <= s->total)
        jt_note_cycle(s);
    if (go)
        atomic_store_explicit(&s->played, k, memory_order_release);
    return 0;
}

/* JACK's notification thread. */
static int jt_xrun(void *arg)
{
    struct jt_state *s = arg;
    unsigned n = atomic_fetch_add(&s->xruns, 1);

    if (n < JT_MAX_XRUNS)
        s->xrun_ns[n] = jt_now_ns();
    return 0;
}

static void jt_sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static int jt_connect(jack_client_t *c, struct jt_state *s, const char *prefix)
{
    for (int i = 0; i < JT_PORTS; i++) {
        char dst[256];
        int rc;

        snprintf(dst, sizeof(dst), "%s%d", prefix, i + 1);
        rc = jack_connect(c, jack_port_name(s->ports[i]), dst);
        if (rc != 0 && rc != EEXIST) {
            fprintf(stderr, "jack-tone: cannot connect %s to %s (%d)\n", jack_port_name(s->ports[i]), dst, rc);
            return -1;
        }
    }
    return 0;
}

/* Waits (bounded) until every frame was handed to JACK, then lets a few periods pass so the last
 * ones leave the client before it closes. */
static int jt_wait_played(struct jt_state *s, double seconds, jack_nframes_t rate)
{
    long limit_ms = (long)(seconds * 1000) + 10000;

    for (long t = 0; atomic_load(&s->played) < s->total; t += 10) {
        if (t >= limit_ms) {
            fprintf(stderr, "jack-tone: only %llu of %llu frames played after %ld ms\n",
                    (unsigned long long)atomic_load(&s->played), (unsigned long long)s->total, limit_ms);
            return -1;
        }
        jt_sleep_ms(10);
    }
    jt_sleep_ms(200 + (long)(8192 * 1000 / rate)); /* more than any buffer: the tail is in the driver */
    return 0;
}

int main(int argc, char **argv)
{
    static struct jt_state s;
    const char *prefix = argc > 2 ? argv[2] : "system:playback_";
    double seconds = argc > 1 ? atof(argv[1]) : 0;
    jack_status_t status;
    jack_client_t *c;
    int rc = 1;

    if (argc < 2 || argc > 3 || seconds <= 0 || seconds > 600) {
        fprintf(stderr, "usage: jack-tone SECONDS [PORT_PREFIX]\n");
        return 2;
    }
    c = jack_client_open("jack-tone", JackNoStartServer, &status);
    if (!c) {
        fprintf(stderr, "jack-tone: cannot open a client (status 0x%x): is jackd running?\n", (unsigned)status);
        return 1;
    }
    s.total = (uint64_t)(seconds * jack_get_sample_rate(c) + 0.5);
    for (int i = 0; i < JT_PORTS; i++) {
        char name[16];

        snprintf(name, sizeof(name), "out_%d", i + 1);
        s.ports[i] = jack_port_register(c, name, JACK_DEFAULT_AUDIO_TYPE, JackPortIsOutput, 0);
        if (!s.ports[i]) {
            fprintf(stderr, "jack-tone: cannot register port %s\n", name);
            goto out;
        }
    }
    if (jack_set_process_callback(c, jt_process, &s) || jack_set_xrun_callback(c, jt_xrun, &s) ||
        jack_activate(c)) {
        fprintf(stderr, "jack-tone: cannot set callbacks or activate\n");
        goto out;
    }
    if (jt_connect(c, &s, prefix) < 0)
        goto deactivate;
    atomic_store_explicit(&s.go, true, memory_order_release);
    if (jt_wait_played(&s, seconds, jack_get_sample_rate(c)) == 0) {
        /* played >= total: the process thread no longer writes min_ns/max_ns (acquire above) */
        printf("frames=%llu rate=%u period=%u xruns=%u cycle_us=%lld..%lld\n", (unsigned long long)s.total,
               jack_get_sample_rate(c), jack_get_buffer_size(c), atomic_load(&s.xruns),
               (long long)(s.min_ns / 1000), (long long)(s.max_ns / 1000));
        jack_deactivate(c); /* no notification after this: xrun_ns is main's to read */
        for (unsigned i = 0; i < atomic_load(&s.xruns) && i < JT_MAX_XRUNS; i++)
            printf("xrun_ns=%lld\n", (long long)s.xrun_ns[i]);
        rc = 0;
        goto out;
    }
deactivate:
    jack_deactivate(c);
out:
    jack_client_close(c);
    return rc;
}
