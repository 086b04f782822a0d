# Helpers for the plugin's tests (bash; source it). Every case prints PASS:/FAIL:.
PT_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${BUILD:-$PT_TOP/build}
case "$BUILD" in /*) ;; *) BUILD=$PT_TOP/$BUILD ;; esac
export BUILD
AUDIOTOOL=$PT_TOP/test/plugin/audiotool
PT_FAILED=0

pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; PT_FAILED=1; }

# A scratch directory removed at exit.
pt_workdir() {
    PT_WORK=$(mktemp -d /tmp/pcm-xen-test.XXXXXX)
    trap 'rm -rf "$PT_WORK"' EXIT
}

# sim [xen-sim options] -- CMD...: one simulated guest with the default card.
# Under an ASan build, programs that load the plugin need the sanitizer runtime first.
sim() {
    if [ "${SAN_BUILD:-0}" = 1 ]; then
        XEN_SIM_PRELOAD=$(gcc -print-file-name=libasan.so) "$PT_TOP/test/xen-sim" "$@"
    else
        "$PT_TOP/test/xen-sim" "$@"
    fi
}

# The n-th playback file of stream UID in DIR (1: UID.wav, n: UID.n.wav).
nth_wav() { if [ "$3" = 1 ]; then echo "$1/$2.wav"; else echo "$1/$2.$3.wav"; fi; }
