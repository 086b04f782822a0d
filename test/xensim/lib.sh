# Shell helpers for xensim tests: source it, then xsim_start; cases report with pass/fail.
# Needs BUILD (set by test/run-tests; defaults to ./build).
XSIM_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${BUILD:-$XSIM_TOP/build}
case "$BUILD" in /*) ;; *) BUILD=$XSIM_TOP/$BUILD ;; esac
export BUILD
XSIM_PID=

pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; XSIM_FAILED=1; }
# plan N: the one "PLAN: N" line, before the first case: N case lines will follow, counted from the
# script's own list of cases (test/run-tests fails the script when the lines differ from it).
plan() { echo "PLAN: $1"; }
# check NAME CMD...: PASS if CMD succeeds, else FAIL with its output.
check() {
    local name=$1 out; shift
    if out=$("$@" 2>&1); then pass "$name"; else fail "$name: $(echo "$out" | tail -n 3 | tr '\n' ' ')"; fi
}

# xsim_start [xensimd args]: starts a simulation in a fresh directory, exports XENSIM_ROOT,
# waits (at most 5 s) until it listens, and stops it when the calling shell exits.
xsim_start() {
    XENSIM_ROOT=$(mktemp -d /tmp/xensim.XXXXXX)
    export XENSIM_ROOT
    "$BUILD/xensimd" "$XENSIM_ROOT" "$@" 2>"$XENSIM_ROOT/xensimd.log" &
    XSIM_PID=$!
    trap xsim_stop EXIT
    for _ in $(seq 100); do
        [ -f "$XENSIM_ROOT/xensimd.pid" ] && return 0
        kill -0 "$XSIM_PID" 2>/dev/null || break
        sleep 0.05
    done
    echo "FAIL: xensimd did not start: $(cat "$XENSIM_ROOT/xensimd.log")"
    exit 1
}

xsim_stop() {
    if [ -n "$XSIM_PID" ]; then
        kill -CONT "$XSIM_PID" 2>/dev/null # a test may hold it stopped (test-evtchn)
        kill "$XSIM_PID" 2>/dev/null
        wait "$XSIM_PID" 2>/dev/null
        local rc=$?
        # 143 = killed by our SIGTERM before it installed its handler; anything else is a crash.
        if [ "$rc" != 0 ] && [ "$rc" != 143 ]; then
            echo "FAIL: xensimd exited with status $rc: $(tail -n 5 "$XENSIM_ROOT/xensimd.log" | tr '\n' ' ')"
        fi
        XSIM_PID=
    fi
    [ -n "${XENSIM_ROOT:-}" ] && rm -rf "$XENSIM_ROOT"
}

# dom N CMD...: runs CMD in simulated domain N.
dom() { local d=$1; shift; "$XSIM_TOP/test/xensim/in-domain" "$d" "$@"; }
