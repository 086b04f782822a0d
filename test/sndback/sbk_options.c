#include "sbk_options.h"

#include "sbk_format.h"
#include "sbk_names.h"
#include "sbk_parse.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum sbk_opt_id {
    SBK_OPT_OUT = 256, SBK_OPT_DISCARD, SBK_OPT_CAPTURE, SBK_OPT_CLOCK, SBK_OPT_DOMID, SBK_OPT_READY,
    SBK_OPT_RATES, SBK_OPT_PERIOD, SBK_OPT_BUFFER, SBK_OPT_CHANNELS, SBK_OPT_FORMATS,
    SBK_OPT_DELAY, SBK_OPT_NO_ANSWER, SBK_OPT_ANSWER_ERROR, SBK_OPT_EXIT_AFTER, SBK_OPT_BAD_POS,
    SBK_OPT_NO_EVENTS, SBK_OPT_CORRUPT_RSP, SBK_OPT_STREAM, SBK_OPT_WIDE_QUERY, SBK_OPT_PERIOD_EVENTS,
    SBK_OPT_BAD_RSP, SBK_OPT_BAD_EVT_INDEX, SBK_OPT_VERSIONS, SBK_OPT_LOG_TIME, SBK_OPT_FAIL_AFTER_GAP,
};

static const struct option sbk_long_options[] = {
    { "out", required_argument, NULL, SBK_OPT_OUT },
    { "discard", no_argument, NULL, SBK_OPT_DISCARD },
    { "capture-source", required_argument, NULL, SBK_OPT_CAPTURE },
    { "clock", required_argument, NULL, SBK_OPT_CLOCK },
    { "domid", required_argument, NULL, SBK_OPT_DOMID },
    { "ready-file", required_argument, NULL, SBK_OPT_READY },
    { "rates", required_argument, NULL, SBK_OPT_RATES },
    { "period-frames", required_argument, NULL, SBK_OPT_PERIOD },
    { "buffer-frames", required_argument, NULL, SBK_OPT_BUFFER },
    { "channels", required_argument, NULL, SBK_OPT_CHANNELS },
    { "formats", required_argument, NULL, SBK_OPT_FORMATS },
    { "delay-ms", required_argument, NULL, SBK_OPT_DELAY },
    { "no-answer", required_argument, NULL, SBK_OPT_NO_ANSWER },
    { "answer-error", required_argument, NULL, SBK_OPT_ANSWER_ERROR },
    { "exit-after-bytes", required_argument, NULL, SBK_OPT_EXIT_AFTER },
    { "bad-pos", required_argument, NULL, SBK_OPT_BAD_POS },
    { "no-events", no_argument, NULL, SBK_OPT_NO_EVENTS },
    { "corrupt-rsp-prod", no_argument, NULL, SBK_OPT_CORRUPT_RSP },
    { "wide-query", no_argument, NULL, SBK_OPT_WIDE_QUERY },
    { "period-events-only", no_argument, NULL, SBK_OPT_PERIOD_EVENTS },
    { "bad-response", required_argument, NULL, SBK_OPT_BAD_RSP },
    { "bad-event-index", no_argument, NULL, SBK_OPT_BAD_EVT_INDEX },
    { "versions", required_argument, NULL, SBK_OPT_VERSIONS },
    { "log-time", no_argument, NULL, SBK_OPT_LOG_TIME },
    { "fail-after-gap", no_argument, NULL, SBK_OPT_FAIL_AFTER_GAP },
    { "stream", required_argument, NULL, SBK_OPT_STREAM },
    { "verbose", no_argument, NULL, 'v' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
};

void sbk_options_usage(const char *prog)
{
    printf("usage: %s [options]\n"
           "  --out DIR               playback WAVs go to DIR (default ./xen-sim-out)\n"
           "  --discard               drop playback data instead\n"
           "  --capture-source=SRC    wav:FILE | sine:HZ | loopback:UNIQUE-ID (default: silence)\n"
           "  --clock=monotonic|none  sample clock (default monotonic; none runs free)\n"
           "  --domid N               own domain id (default: xenstore key 'domid', else 0)\n"
           "  --ready-file=PATH       written once sndback watches xenstore\n"
           "  -v                      log every handshake step and request\n"
           "  --log-time              start each log line with the CLOCK_MONOTONIC time [s.us]\n"
           " constraints (all streams, or the last --stream):\n"
           "  --rates=R1,R2,..  --formats=f1,f2  --channels=MIN:MAX\n"
           "  --period-frames=MIN:MAX  --buffer-frames=MIN:MAX\n"
           " faults (all streams, or the last --stream):\n"
           "  --delay-ms=N  --no-answer=OP  --answer-error=OP:ERRNO[@N]  --exit-after-bytes=N\n"
           "  --bad-pos=backwards|beyond  --no-events  --corrupt-rsp-prod\n"
           "  --wide-query            answer HW_PARAM_QUERY wider than asked (as snd_be)\n"
           "  --period-events-only    no CUR_POS when the queue runs out mid-period (as snd_be)\n"
           "  --bad-response=id|op|status  the 10th WRITE's response: an id never issued, another\n"
           "                          operation, a status that is no errno\n"
           "  --bad-event-index       the 10th event publishes in_prod 100 past in_cons\n"
           "  --versions=LIST         the backend's `versions` (default 2)\n"
           "  --fail-after-gap        a playback gap (the queue ran dry while running) makes the\n"
           "                          WRITE that ends it and every later WRITE of that OPEN -EIO\n"
           "  OP: open close read write trigger hw-param-query set-volume get-volume mute unmute\n"
           "  --stream=UNIQUE-ID      what follows applies to that stream only\n",
           prog);
}

static int sbk_parse_capture(const char *arg, struct sbk_capture_source *c)
{
    char *end;

    memset(c, 0, sizeof(*c));
    if (strncmp(arg, "wav:", 4) == 0 && arg[4]) {
        c->kind = SBK_CAPTURE_WAV;
        c->arg = arg + 4;
    } else if (strncmp(arg, "sine:", 5) == 0) {
        c->kind = SBK_CAPTURE_SINE;
        c->hz = strtod(arg + 5, &end);
        if (end == arg + 5 || *end || !(c->hz > 0 && c->hz < 1e6))
            return -1;
    } else if (strncmp(arg, "loopback:", 9) == 0 && arg[9]) {
        c->kind = SBK_CAPTURE_LOOPBACK;
        c->arg = arg + 9;
    } else {
        return -1;
    }
    return 0;
}

/* "OP:ERRNO[@N]" -> op index, positive errno and N (0 without "@N": every such request). */
static int sbk_parse_answer_error(const char *arg, int *op, int *err_value, unsigned *nth)
{
    const char *colon = strchr(arg, ':'), *at = strchr(arg, '@');
    char name[32], err[32];
    size_t len;
    uint64_t n = 0;

    if (!colon || (len = (size_t)(colon - arg)) >= sizeof(name))
        return -1;
    memcpy(name, arg, len);
    name[len] = '\0';
    if (at && (at < colon || (size_t)(at - colon - 1) >= sizeof(err) || sbk_parse_u64(at + 1, &n) < 0 || !n ||
               n > 1000000))
        return -1;
    len = at ? (size_t)(at - colon - 1) : strlen(colon + 1);
    if (len >= sizeof(err))
        return -1;
    memcpy(err, colon + 1, len);
    err[len] = '\0';
    *op = sbk_op_by_name(name);
    *err_value = sbk_errno_parse(err);
    *nth = (unsigned)n;
    return *op < 0 || *err_value < 0 ? -1 : 0;
}

static int sbk_parse_channels(const char *arg, struct sbk_range *r)
{
    if (sbk_parse_u32_range(arg, &r->min, &r->max) < 0 || r->min < 1 || r->max > SBK_MAX_CHANNELS)
        return -1;
    return 0;
}

static int sbk_parse_frames(const char *arg, struct sbk_range *r)
{
    return sbk_parse_u32_range(arg, &r->min, &r->max) < 0 || r->min < 1 ? -1 : 0;
}

/* The options set that --stream=uid selects, created on first use. */
static struct sbk_stream_opts *sbk_select_stream(struct sbk_options *o, const char *uid)
{
    struct sbk_stream_opts_for *grown;

    for (unsigned i = 0; i < o->n_per_stream; i++)
        if (strcmp(o->per_stream[i].uid, uid) == 0)
            return &o->per_stream[i].opts;
    grown = realloc(o->per_stream, (o->n_per_stream + 1) * sizeof(*grown));
    if (!grown)
        return NULL;
    o->per_stream = grown;
    memset(&grown[o->n_per_stream], 0, sizeof(grown[0]));
    grown[o->n_per_stream].uid = uid;
    return &grown[o->n_per_stream++].opts;
}

/* A constraint or fault option applied to `s`; 0, or -1 when `arg` is malformed. */
static int sbk_apply_stream_option(int id, const char *arg, struct sbk_stream_opts *s)
{
    int op, value;
    unsigned nth;

    switch (id) {
    case SBK_OPT_RATES:
        s->has_rates = true;
        return sbk_rates_parse(arg, &s->rates);
    case SBK_OPT_FORMATS:
        s->has_formats = true;
        return sbk_formats_parse(arg, &s->formats);
    case SBK_OPT_CHANNELS:
        s->has_channels = true;
        return sbk_parse_channels(arg, &s->channels);
    case SBK_OPT_PERIOD:
        s->has_period = true;
        return sbk_parse_frames(arg, &s->period_frames);
    case SBK_OPT_BUFFER:
        s->has_buffer = true;
        return sbk_parse_frames(arg, &s->buffer_frames);
    case SBK_OPT_DELAY:
        s->has_delay = true;
        return sbk_parse_u32(arg, &s->delay_ms);
    case SBK_OPT_NO_ANSWER:
        op = sbk_op_by_name(arg);
        if (op < 0)
            return -1;
        s->no_answer_ops |= 1u << op;
        return 0;
    case SBK_OPT_ANSWER_ERROR:
        if (sbk_parse_answer_error(arg, &op, &value, &nth) < 0)
            return -1;
        s->answer_error[op] = value;
        s->answer_error_nth[op] = nth;
        return 0;
    case SBK_OPT_EXIT_AFTER:
        s->has_exit_after = true;
        return sbk_parse_u64(arg, &s->exit_after_bytes);
    case SBK_OPT_BAD_POS:
        if (strcmp(arg, "backwards") == 0)
            s->bad_pos = SBK_BAD_POS_BACKWARDS;
        else if (strcmp(arg, "beyond") == 0)
            s->bad_pos = SBK_BAD_POS_BEYOND;
        else
            return -1;
        return 0;
    case SBK_OPT_NO_EVENTS:
        s->no_events = true;
        return 0;
    case SBK_OPT_CORRUPT_RSP:
        s->corrupt_rsp_prod = true;
        return 0;
    case SBK_OPT_WIDE_QUERY:
        s->wide_query = true;
        return 0;
    case SBK_OPT_PERIOD_EVENTS:
        s->period_events_only = true;
        return 0;
    case SBK_OPT_FAIL_AFTER_GAP:
        s->fail_after_gap = true;
        return 0;
    case SBK_OPT_BAD_RSP:
        if (strcmp(arg, "id") == 0)
            s->bad_response = SBK_BAD_RSP_ID;
        else if (strcmp(arg, "op") == 0)
            s->bad_response = SBK_BAD_RSP_OP;
        else if (strcmp(arg, "status") == 0)
            s->bad_response = SBK_BAD_RSP_STATUS;
        else
            return -1;
        return 0;
    case SBK_OPT_BAD_EVT_INDEX:
        s->bad_event_index = true;
        return 0;
    case SBK_OPT_CAPTURE:
        s->has_capture = true;
        return sbk_parse_capture(arg, &s->capture);
    }
    return -1;
}

/* A global option; 0, or -1 when `arg` is malformed. */
static int sbk_apply_global_option(int id, const char *arg, struct sbk_options *o)
{
    switch (id) {
    case SBK_OPT_OUT:
        o->out_dir = arg;
        return *arg ? 0 : -1;
    case SBK_OPT_DISCARD:
        o->discard = true;
        return 0;
    case SBK_OPT_CLOCK:
        if (strcmp(arg, "monotonic") == 0)
            o->clock_none = false;
        else if (strcmp(arg, "none") == 0)
            o->clock_none = true;
        else
            return -1;
        return 0;
    case SBK_OPT_DOMID:
        o->has_domid = true;
        return sbk_parse_u32(arg, &o->domid) < 0 || o->domid >= 0x7FF0 ? -1 : 0;
    case SBK_OPT_READY:
        o->ready_file = arg;
        return *arg ? 0 : -1;
    case SBK_OPT_VERSIONS:
        o->versions = arg;
        return *arg ? 0 : -1;
    case 'v':
        o->verbose = true;
        return 0;
    case SBK_OPT_LOG_TIME:
        o->log_time = true;
        return 0;
    }
    return -1;
}

static bool sbk_is_global_option(int id)
{
    return id == SBK_OPT_OUT || id == SBK_OPT_DISCARD || id == SBK_OPT_CLOCK ||
           id == SBK_OPT_DOMID || id == SBK_OPT_READY || id == SBK_OPT_VERSIONS || id == 'v' ||
           id == SBK_OPT_LOG_TIME;
}

static const char *sbk_option_name(int id)
{
    for (const struct option *opt = sbk_long_options; opt->name; opt++)
        if (opt->val == id)
            return opt->name;
    return "?";
}

int sbk_options_parse(int argc, char **argv, struct sbk_options *o, char *err, size_t errlen)
{
    struct sbk_stream_opts *target = &o->all;
    int id;

    memset(o, 0, sizeof(*o));
    o->out_dir = "./xen-sim-out";
    optind = 0;                 /* full re-initialisation of getopt (GNU) */
    opterr = 0;
    while ((id = getopt_long(argc, argv, "+vh", sbk_long_options, NULL)) != -1) {
        const char *arg = optarg ? optarg : "";

        if (id == 'h') {
            sbk_options_usage(argv[0]);
            return 1;
        }
        if (id == '?')
            return sbk_fail(err, errlen, "unknown option or missing value: %s", argv[optind - 1]);
        if (id == SBK_OPT_STREAM) {
            if (!*arg)
                return sbk_fail(err, errlen, "--stream needs a unique-id");
            target = sbk_select_stream(o, arg);
            if (!target)
                return sbk_fail(err, errlen, "out of memory");
            continue;
        }
        if (sbk_is_global_option(id) ? sbk_apply_global_option(id, arg, o) < 0
                                     : sbk_apply_stream_option(id, arg, target) < 0)
            return sbk_fail(err, errlen, "bad value for --%s: '%s'", sbk_option_name(id), arg);
    }
    if (optind < argc)
        return sbk_fail(err, errlen, "unexpected argument: %s", argv[optind]);
    return 0;
}

void sbk_options_free(struct sbk_options *o)
{
    free(o->per_stream);
    o->per_stream = NULL;
    o->n_per_stream = 0;
}

/* Fields set in `s` replace those of `out`; flags and op masks add up. */
static void sbk_overlay(struct sbk_stream_opts *out, const struct sbk_stream_opts *s)
{
    if (s->has_rates) {
        out->has_rates = true;
        out->rates = s->rates;
    }
    if (s->has_formats) {
        out->has_formats = true;
        out->formats = s->formats;
    }
    if (s->has_channels) {
        out->has_channels = true;
        out->channels = s->channels;
    }
    if (s->has_period) {
        out->has_period = true;
        out->period_frames = s->period_frames;
    }
    if (s->has_buffer) {
        out->has_buffer = true;
        out->buffer_frames = s->buffer_frames;
    }
    if (s->has_delay) {
        out->has_delay = true;
        out->delay_ms = s->delay_ms;
    }
    out->no_answer_ops |= s->no_answer_ops;
    for (unsigned op = 0; op < SBK_NUM_OPS; op++) {
        if (s->answer_error[op]) {
            out->answer_error[op] = s->answer_error[op];
            out->answer_error_nth[op] = s->answer_error_nth[op];
        }
    }
    if (s->has_exit_after) {
        out->has_exit_after = true;
        out->exit_after_bytes = s->exit_after_bytes;
    }
    if (s->bad_pos != SBK_BAD_POS_NONE)
        out->bad_pos = s->bad_pos;
    out->no_events |= s->no_events;
    out->wide_query |= s->wide_query;
    out->period_events_only |= s->period_events_only;
    out->fail_after_gap |= s->fail_after_gap;
    out->corrupt_rsp_prod |= s->corrupt_rsp_prod;
    if (s->bad_response != SBK_BAD_RSP_NONE)
        out->bad_response = s->bad_response;
    out->bad_event_index |= s->bad_event_index;
    if (s->has_capture) {
        out->has_capture = true;
        out->capture = s->capture;
    }
}

void sbk_options_resolve(const struct sbk_options *o, const char *uid, struct sbk_stream_opts *out)
{
    *out = o->all;
    for (unsigned i = 0; i < o->n_per_stream; i++)
        if (strcmp(o->per_stream[i].uid, uid) == 0)
            sbk_overlay(out, &o->per_stream[i].opts);
}
