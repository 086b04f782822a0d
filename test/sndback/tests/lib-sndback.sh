# Helpers for the backend's scripted-frontend tests (bash; source it after test/xensim/lib.sh).
#   sbt_start [--card SPEC]... [--domain N] [-- SNDBACK-ARGS...]
#       a simulation, guest homes (domain 1 "guest1", more with --domain), sndback in dom0
#       (--out $SBT_OUT, ready file waited for), then the cards for domain 1 written as xl does and
#       InitWait waited for (10 s, as libxl). Default card: test/default-card.spec.
#   sbt_card DOMID SPEC      one more card (prints its devid), InitWait waited for
#   fe [FE-SCRIPT-ARGS...]   runs fe-script in domain 1 (fe_in N ... for domain N)
#   sbt_stop                 SIGTERM to sndback, bounded wait; its exit status in $SBT_STATUS
#   sbt_alive                sndback still running?
# SBT_OUT is the backend's --out directory, SBT_LOG its log, SBT_PID its pid; SBT_TMP is a
# directory for the test's own files that outlives each simulation (removed at exit).
SBT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SBT_TOP=$(cd "$SBT_DIR/../../.." && pwd)
FE_SCRIPT=$BUILD/sndback-tests/fe-script
SBT_PID= SBT_STATUS= SBT_OUT= SBT_LOG=
SBT_TMP=$(mktemp -d /tmp/sndback-test.XXXXXX)   # the test's own files (sources, saved data)
trap 'rm -rf "$SBT_TMP"' EXIT

sbt_require() {
    local piece
    for piece in "$BUILD/xensimd" "$BUILD/sndback" "$FE_SCRIPT"; do
        if [ ! -x "$piece" ]; then
            echo "FAIL: setup: $piece not found: run make"
            exit 1
        fi
    done
}

# sbt_wait SECONDS CMD...: polls CMD every 50 ms; false after SECONDS.
sbt_wait() {
    local secs=$1 i; shift
    for ((i = 0; i < secs * 20; i++)); do
        "$@" && return 0
        sleep 0.05
    done
    return 1
}

sbt_be_state() { dom 0 xenstore-read "/local/domain/0/backend/vsnd/$1/$2/state" 2>/dev/null; }
sbt_is_state() { [ "$(sbt_be_state "$1" "$2")" = "$3" ]; }

# Its failures go to stderr: it runs inside $(...) (the devid is its output), and test/run-tests
# counts FAIL lines on both streams.
sbt_card() {
    local domid=$1 spec=$2 devid
    devid=$(dom 0 "$SBT_TOP/test/vsnd-config" "$domid" "$spec") || { echo "FAIL: setup: vsnd-config refused the card" >&2; exit 1; }
    if ! sbt_wait 10 sbt_is_state "$domid" "$devid" 2; then
        {
            echo "FAIL: setup: sndback did not reach InitWait on card $domid/$devid (state $(sbt_be_state "$domid" "$devid")); log:"
            tail -n 20 "$SBT_LOG"
        } >&2
        exit 1
    fi
    echo "$devid"
}

sbt_start() {
    local cards=() domains=() args=() ready
    while [ $# -gt 0 ]; do
        case "$1" in
            --card) cards+=("$2"); shift 2 ;;
            --domain) domains+=("$2"); shift 2 ;;
            --) shift; args=("$@"); break ;;
            *) echo "FAIL: setup: sbt_start: bad argument $1"; exit 1 ;;
        esac
    done
    [ ${#cards[@]} = 0 ] && cards=("$(cat "$SBT_TOP/test/default-card.spec")")
    sbt_require
    if [ -n "$XSIM_PID" ]; then     # a second simulation in the same test: end the first
        sbt_stop
        xsim_stop
    fi
    xsim_start
    trap 'sbt_stop >/dev/null 2>&1; xsim_stop; rm -rf "$SBT_TMP"' EXIT
    SBT_OUT=$XENSIM_ROOT/out
    SBT_LOG=$XENSIM_ROOT/sndback.log
    mkdir -p "$SBT_OUT"
    "$SBT_TOP/test/xensim/create-domain" 1 guest1 >/dev/null || { echo "FAIL: setup: create-domain 1"; exit 1; }
    for d in "${domains[@]}"; do
        "$SBT_TOP/test/xensim/create-domain" "$d" "guest$d" >/dev/null || { echo "FAIL: setup: create-domain $d"; exit 1; }
    done
    ready=$XENSIM_ROOT/sndback.ready
    # in-domain execs sndback: $! is sndback itself, not a subshell (SIGTERM must reach it).
    "$SBT_TOP/test/xensim/in-domain" 0 "$BUILD/sndback" -v --out "$SBT_OUT" --ready-file="$ready" "${args[@]}" \
        >"$SBT_LOG" 2>&1 &
    SBT_PID=$!
    if ! sbt_wait 20 test -f "$ready"; then
        echo "FAIL: setup: sndback wrote no ready file (alive: $(sbt_alive && echo yes || echo no)); log:"
        tail -n 20 "$SBT_LOG"
        exit 1
    fi
    for spec in "${cards[@]}"; do
        sbt_card 1 "$spec" >/dev/null
    done
}

sbt_alive() { [ -n "$SBT_PID" ] && kill -0 "$SBT_PID" 2>/dev/null; }

sbt_stop() {
    [ -n "$SBT_PID" ] || return 0
    kill -TERM "$SBT_PID" 2>/dev/null
    sbt_wait 10 eval '! kill -0 "$SBT_PID" 2>/dev/null' || kill -KILL "$SBT_PID" 2>/dev/null
    wait "$SBT_PID" 2>/dev/null
    SBT_STATUS=$?
    SBT_PID=
}

# fe-script's output is captured by the tests ($(fe ...)), so a sanitizer report (ASan exit
# status 86, UBSan "runtime error") is noted aside and turned into a FAIL by sbt_final_check.
fe_in() {
    local d=$1 out rc; shift
    out=$(dom "$d" "$FE_SCRIPT" "$@" 2>&1); rc=$?
    printf '%s\n' "$out"
    if [ "$rc" = 86 ] || grep -qE 'Sanitizer|runtime error:' <<<"$out"; then
        printf 'fe-script %s (status %s): %s\n' "$*" "$rc" "$(grep -m 3 -E 'Sanitizer|runtime error:' <<<"$out" | tr '\n' '|')" \
            >>"$SBT_TMP/sanitizer-reports"
    fi
    return "$rc"
}
fe() { fe_in 1 "$@"; }

# expect NAME OUTPUT REGEX...: PASS when every REGEX matches a line of OUTPUT (grep -E).
expect() {
    local name=$1 out=$2 re; shift 2
    for re in "$@"; do
        if ! grep -qE -- "$re" <<<"$out"; then
            fail "$name: no line matching /$re/ in: $(tail -n 8 <<<"$out" | tr '\n' '|')"
            return 1
        fi
    done
    pass "$name"
}

# in_order OUTPUT REGEX1 REGEX2: the first line matching REGEX1 comes before the first matching REGEX2.
in_order() {
    local a b
    a=$(grep -nE -- "$2" <<<"$1" | head -n 1 | cut -d: -f1)
    b=$(grep -nE -- "$3" <<<"$1" | head -n 1 | cut -d: -f1)
    [ -n "$a" ] && [ -n "$b" ] && [ "$a" -lt "$b" ]
}

# The close summary line sndback logs for a stream (contract: exact fields).
sbt_summary() { grep -E "^sndback: stream $1 closed: " "$SBT_LOG" | tail -n "${2:-1}" | head -n 1; }

# sbt_final_check: sndback survived everything and shuts down cleanly on SIGTERM (which, in the
# ASan build, includes no leak report); fe-script runs had no sanitizer report.
sbt_sanitizer_check() {
    if [ -s "$SBT_TMP/sanitizer-reports" ]; then
        fail "fe-script sanitizer reports: $(head -n 3 "$SBT_TMP/sanitizer-reports" | tr '\n' '|')"
        rm -f "$SBT_TMP/sanitizer-reports"
    fi
}
sbt_final_check() {
    sbt_sanitizer_check
    if sbt_alive; then pass "sndback still running"; else fail "sndback died: $(tail -n 5 "$SBT_LOG" | tr '\n' '|')"; fi
    sbt_stop
    if [ "$SBT_STATUS" = 0 ]; then
        pass "sndback exits 0 on SIGTERM"
    else
        fail "sndback exits 0 on SIGTERM: status $SBT_STATUS: $(tail -n 5 "$SBT_LOG" | tr '\n' '|')"
    fi
}
