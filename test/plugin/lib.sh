# Helpers for the plugin's tests (bash; source it). Every case prints PASS:/FAIL:.
PT_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${BUILD:-$PT_TOP/build}
case "$BUILD" in /*) ;; *) BUILD=$PT_TOP/$BUILD ;; esac
export BUILD
AUDIOTOOL=$PT_TOP/test/plugin/audiotool
PT_FAILED=0

pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; PT_FAILED=1; }
# plan N: the one "PLAN: N" line, before the first case: N case lines will follow, counted from the
# script's own list of cases (test/run-tests fails the script when the lines differ from it).
plan() { echo "PLAN: $1"; }
# planof PROGRAM ARGS...: the case count of a C test program for ARGS (its --plan); 1000 (a plan
# no run meets) when it cannot say, so that the shortfall is reported, not hidden.
planof() { "$@" 2>/dev/null || echo 1000; }
# nwords WORDS...: how many words (the length of a list of cases).
nwords() { echo $#; }
# noplan: drops the PLAN line of an inner program from its output (the script's plan has its cases).
noplan() { grep -v '^PLAN: '; }

# A scratch directory removed at exit (kept, and named on stderr, with PT_KEEP=1).
pt_workdir() {
    PT_WORK=$(mktemp -d /tmp/pcm-xen-test.XXXXXX)
    if [ "${PT_KEEP:-0}" = 1 ]; then
        echo "$0: keeping $PT_WORK" >&2
    else
        trap 'rm -rf "$PT_WORK"' EXIT
    fi
}

# sim [xen-sim options] -- CMD...: one simulated guest (test/xen-sim), at most PT_BOUND seconds:
# a hang is reported, never waited for. Under an ASan build, programs that load the plugin
# need the sanitizer runtime preloaded (xen-sim passes XEN_SIM_PRELOAD to the guest command).
PT_BOUND=${PT_BOUND:-300}
PT_SIM_ENV=(env)
[ "${SAN_BUILD:-0}" = 1 ] && PT_SIM_ENV=(env "XEN_SIM_PRELOAD=$(gcc -print-file-name=libasan.so)")
sim() {
    timeout -k 5 "$PT_BOUND" "${PT_SIM_ENV[@]}" "$PT_TOP/test/xen-sim" "$@"
}

# The n-th playback file of stream UID in DIR (1: UID.wav, n: UID.n.wav).
nth_wav() { if [ "$3" = 1 ]; then echo "$1/$2.wav"; else echo "$1/$2.$3.wav"; fi; }
