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
# After every simulation, the backend's health (pt_backend_health): a FAIL line when sndback
# reported a sanitizer error, exited with another status than 0 (or PT_BACKEND_STATUS, for a case
# that kills it), logged a warning or an error (unless PT_BACKEND_WARN_OK=1, for cases that
# make it complain on purpose), closed a stream with audio it never played (discarded=N: unless
# PT_BACKEND_DISCARD_OK=1, for cases that drop, kill or fail a stream on purpose, and for sound
# servers, which drop at suspend) or with gaps (its clock ran dry mid-stream: an audible glitch
# that bit-exact files do not show; unless PT_BACKEND_GAPS_OK=1, for underrun cases and servers).
# The line goes to the test's own output (fd 3), also when the caller captures sim's:
# test/run-tests counts it, and the plan comes out short.
sim() {
    local out= prev= a rc
    for a in "$@"; do
        [ "$prev" = --out ] && out=$a
        prev=$a
    done
    timeout -k 5 "$PT_BOUND" "${PT_SIM_ENV[@]}" "$PT_TOP/test/xen-sim" "$@"
    rc=$?
    [ -n "$out" ] && pt_backend_health "$out"
    return $rc
}
exec 3>&1
pt_backend_health() {
    local log=$1/sndback.log st why=
    [ -f "$log" ] || return 0 # another backend (snd_be), or none started
    st=$(cat "$1/sndback.status" 2>/dev/null)
    if grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$log"; then
        why="a sanitizer report: $(grep -m 1 -E 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$log")"
    elif [ -n "$st" ] && [ "$st" != 0 ] && [ "$st" != "${PT_BACKEND_STATUS:-0}" ]; then
        why="exit status $st: $(tail -n 2 "$log" | tr '\n' ' ')"
    elif [ "${PT_BACKEND_WARN_OK:-0}" != 1 ] && grep -qE '^sndback: (warning|error): ' "$log"; then
        why=$(grep -m 1 -E '^sndback: (warning|error): ' "$log")
    elif [ "${PT_BACKEND_DISCARD_OK:-0}" != 1 ] && grep -qE ' closed: .* discarded=[1-9]' "$log"; then
        why="audio discarded unplayed: $(grep -m 1 -E ' closed: .* discarded=[1-9]' "$log")"
    elif [ "${PT_BACKEND_GAPS_OK:-0}" != 1 ] && grep -qE ' closed: .* gaps=[1-9]' "$log"; then
        why="the backend ran dry mid-stream: $(grep -m 1 -E ' closed: .* gaps=[1-9]' "$log")"
    fi
    [ -z "$why" ] || echo "FAIL: backend health ($1): ${why:0:300}" >&3
}

# The n-th playback file of stream UID in DIR (1: UID.wav, n: UID.n.wav).
nth_wav() { if [ "$3" = 1 ]; then echo "$1/$2.wav"; else echo "$1/$2.$3.wav"; fi; }
