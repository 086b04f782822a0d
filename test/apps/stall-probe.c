/* stall-probe: measures how late this machine wakes a real-time thread, so a test can tell an
 * xrun the machine caused (a vCPU that did not run) from one the software under test caused.
 *
 *   stall-probe CPU THRESHOLD_US OUT_FILE
 *
 * Pinned to CPU, at the highest SCHED_FIFO priority the system allows (else as it is), it wakes
 * every millisecond at an absolute time and appends one line "late <monotonic_ns> <late_us>" to
 * OUT_FILE for each wake-up later than THRESHOLD_US. On SIGTERM/SIGINT it appends
 * "done wakeups=N max_late_us=M stalls=S fifo=0|1" and exits 0; its parent's death ends it too. Nothing it measures is a verdict
 * by itself; the test decides what a stall explains. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <time.h>

static volatile sig_atomic_t sp_stop;

static void sp_on_signal(int sig)
{
    (void)sig;
    sp_stop = 1;
}

static int64_t sp_ns(const struct timespec *ts)
{
    return (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
}

static void sp_add_ms(struct timespec *ts)
{
    ts->tv_nsec += 1000000;
    if (ts->tv_nsec >= 1000000000) {
        ts->tv_nsec -= 1000000000;
        ts->tv_sec++;
    }
}

/* Pins the probe and makes it real-time; returns whether SCHED_FIFO was granted. */
static int sp_setup(int cpu)
{
    cpu_set_t set;
    struct sched_param sp = { .sched_priority = sched_get_priority_max(SCHED_FIFO) };

    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof(set), &set) < 0)
        perror("stall-probe: sched_setaffinity");
    return sched_setscheduler(0, SCHED_FIFO, &sp) == 0;
}

int main(int argc, char **argv)
{
    struct timespec next, now;
    int64_t threshold_ns, max_late = 0;
    unsigned long wakeups = 0, stalls = 0;
    struct sigaction sa = { .sa_handler = sp_on_signal };
    FILE *out;
    int fifo;

    if (argc != 4) {
        fprintf(stderr, "usage: stall-probe CPU THRESHOLD_US OUT_FILE\n");
        return 2;
    }
    out = fopen(argv[3], "w");
    if (!out) {
        perror(argv[3]);
        return 2;
    }
    setvbuf(out, NULL, _IOLBF, 0);
    threshold_ns = atoll(argv[2]) * 1000;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    prctl(PR_SET_PDEATHSIG, SIGTERM); /* never outlive the script that started us */
    fifo = sp_setup(atoi(argv[1]));
    clock_gettime(CLOCK_MONOTONIC, &next);
    while (!sp_stop) {
        int64_t late;

        sp_add_ms(&next);
        /* Bounded: an absolute 1 ms step, or a signal (EINTR) that ends the loop. */
        if (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) == EINTR)
            continue;
        clock_gettime(CLOCK_MONOTONIC, &now);
        late = sp_ns(&now) - sp_ns(&next);
        wakeups++;
        if (late > max_late)
            max_late = late;
        if (late > threshold_ns) {
            stalls++;
            fprintf(out, "late %lld %lld\n", (long long)sp_ns(&now), (long long)(late / 1000));
            next = now; /* one stall is one line, not a burst of catch-up wake-ups */
        }
    }
    fprintf(out, "done wakeups=%lu max_late_us=%lld stalls=%lu fifo=%d\n", wakeups, (long long)(max_late / 1000),
            stalls, fifo);
    return 0;
}
