/* sndback's command line (see README.md): global settings, then constraints and faults that
 * apply to every stream or, after --stream=UNIQUE-ID, to that stream only. */
#ifndef SBK_OPTIONS_H
#define SBK_OPTIONS_H

#include "sbk_limits.h"
#include "sbk_sndif.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum sbk_bad_pos { SBK_BAD_POS_NONE, SBK_BAD_POS_BACKWARDS, SBK_BAD_POS_BEYOND };
/* --bad-response: the 10th WRITE's response names an id never issued, another operation, or a
 * status that is no errno. */
enum sbk_bad_rsp { SBK_BAD_RSP_NONE, SBK_BAD_RSP_ID, SBK_BAD_RSP_OP, SBK_BAD_RSP_STATUS };

enum sbk_capture_kind { SBK_CAPTURE_SILENCE, SBK_CAPTURE_WAV, SBK_CAPTURE_SINE, SBK_CAPTURE_LOOPBACK };

struct sbk_capture_source {
    enum sbk_capture_kind kind;
    const char *arg;            /* WAV file or playback unique-id (points into argv) */
    double hz;                  /* sine frequency */
};

/* Constraints and faults of one stream (or of all). */
struct sbk_stream_opts {
    bool has_rates, has_formats, has_channels, has_period, has_buffer;
    struct sbk_rates rates;
    uint64_t formats;
    struct sbk_range channels, period_frames, buffer_frames;

    bool has_delay;
    uint32_t delay_ms;              /* answer every request this late */
    uint32_t no_answer_ops;         /* bit XENSND_OP_*: swallow such requests */
    int answer_error[SBK_NUM_OPS];  /* positive Xen errno to answer (negated) instead, 0: none */
    unsigned answer_error_nth[SBK_NUM_OPS]; /* only the Nth such request of the stream (1..), 0: each */
    bool has_exit_after;
    uint64_t exit_after_bytes;      /* exit(3) once this stream received that many bytes */
    enum sbk_bad_pos bad_pos;
    bool no_events, corrupt_rsp_prod;
    enum sbk_bad_rsp bad_response;
    bool bad_event_index;           /* the 10th event publishes an in_prod 100 past in_cons */
    bool period_events_only;        /* no CUR_POS at the end of the queue, as snd_be */
    bool wide_query;                /* answer HW_PARAM_QUERY wider than asked, as snd_be does */
    bool fail_after_gap;            /* a playback gap makes this and every later WRITE of the OPEN -EIO */

    bool has_capture;
    struct sbk_capture_source capture;
};

struct sbk_stream_opts_for {
    const char *uid;                /* points into argv */
    struct sbk_stream_opts opts;
};

struct sbk_options {
    const char *out_dir;            /* default ./xen-sim-out */
    bool discard, clock_none, verbose;
    bool log_time;                  /* each log line carries the CLOCK_MONOTONIC time */
    bool has_domid;
    uint32_t domid;
    const char *ready_file;
    const char *versions;           /* the `versions` written with InitWait (default "2") */
    struct sbk_stream_opts all;
    unsigned n_per_stream;
    struct sbk_stream_opts_for *per_stream;
};

/* Parses argv. Returns 0, 1 for --help (usage printed), or -1 with a message in err. */
int sbk_options_parse(int argc, char **argv, struct sbk_options *o, char *err, size_t errlen);
void sbk_options_free(struct sbk_options *o);
/* The options of the stream called `uid`: those for all streams, overridden by its own. */
void sbk_options_resolve(const struct sbk_options *o, const char *uid, struct sbk_stream_opts *out);
void sbk_options_usage(const char *prog);

#endif
