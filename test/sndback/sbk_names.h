/* Names used on the command line and in logs: sndif operations and Xen errno values. */
#ifndef SBK_NAMES_H
#define SBK_NAMES_H

/* "open", "close", "read", "write", "set-volume", "get-volume", "mute", "unmute", "trigger",
 * "hw-param-query" for XENSND_OP_*, "op<N>" style "?" otherwise. */
const char *sbk_op_name(unsigned op);
/* XENSND_OP_* of a name above, or -1. */
int sbk_op_by_name(const char *name);
/* Parses "EIO" (a Xen errno name, any case) or a positive decimal; returns the positive
 * value or -1. */
int sbk_errno_parse(const char *text);
/* "EIO" for 5, NULL when the value is not a known XEN_E* value. */
const char *sbk_errno_name(int value);
/* "start", "pause", "stop", "resume" or "?". */
const char *sbk_trigger_name(unsigned type);

#endif
