# Helpers for the sound-server tests' guest scripts (bash; source it inside the simulated guest).
# Every process is started in the background with its pid remembered, every wait is bounded, and
# apps_cleanup (run at exit) stops whatever is still running, by pid.
APPS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
APPS_PIDS=()

# The sanitizer runtime that test/xen-sim preloads into the guest command (ASan build) is kept for
# the servers that load the plugin; no other program of the guest gets it, the guest script itself
# included (LeakSanitizer would report bash's own leaks at its exit): it starts again without it.
if [ -n "${LD_PRELOAD:-}" ]; then
    exec env -u LD_PRELOAD APPS_ASAN_PRELOAD="$LD_PRELOAD" "$0" "$@"
fi
APPS_ASAN_PRELOAD=${APPS_ASAN_PRELOAD:-}

# apps_note FILE TEXT: a fact for the host-side checks (test/apps/test-*), one line appended.
apps_note() { echo "$2" >>"$APPS_FACTS/$1"; }

# apps_bg VAR CMD...: starts CMD in the background (CMD is exec'd by env, so the pid is CMD's own)
# and stores its pid in VAR.
apps_bg() {
    local var=$1; shift
    env "$@" &
    printf -v "$var" '%s' "$!"
    APPS_PIDS+=("$!")
}

# apps_wait_exit PID SECONDS: waits at most SECONDS for PID to exit; its exit status in
# APPS_STATUS ("timeout" when it had to be killed).
apps_wait_exit() {
    local pid=$1 secs=$2 i
    for ((i = 0; i < secs * 20; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
        APPS_STATUS=timeout
    else
        wait "$pid" 2>/dev/null
        APPS_STATUS=$?
    fi
}

# apps_stop PID [SIGNAL]: SIGNAL (default TERM), then at most 10 s for the exit; status in APPS_STATUS.
apps_stop() {
    kill -"${2:-TERM}" "$1" 2>/dev/null
    apps_wait_exit "$1" 10
}

# apps_wait_for SECONDS CMD...: polls CMD every 50 ms until it succeeds; 1 after SECONDS.
apps_wait_for() {
    local secs=$1 i; shift
    for ((i = 0; i < secs * 20; i++)); do
        "$@" 2>/dev/null && return 0
        sleep 0.05
    done
    return 1
}

# Stops every process started with apps_bg that still runs: TERM, 5 s, then KILL.
apps_cleanup() {
    local pid i alive
    for pid in "${APPS_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
    for ((i = 0; i < 100; i++)); do
        alive=0
        for pid in "${APPS_PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [ $alive = 0 ] && break
        sleep 0.05
    done
    for pid in "${APPS_PIDS[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then
            echo "apps: pid $pid ($(tr '\0' ' ' </proc/$pid/cmdline 2>/dev/null | head -c 80)) ignored SIGTERM: killed" >&2
            kill -KILL "$pid" 2>/dev/null
        fi
    done
    APPS_PIDS=()
}

# The files the backend wrote for stream UID (in creation order: UID.wav, UID.2.wav, ...).
apps_backend_files() {
    local uid=$1 n=2
    [ -f "$XEN_SIM_OUT/$uid.wav" ] || return 0
    echo "$XEN_SIM_OUT/$uid.wav"
    while [ -f "$XEN_SIM_OUT/$uid.$n.wav" ]; do
        echo "$XEN_SIM_OUT/$uid.$n.wav"
        n=$((n + 1))
    done
}

# apps_wav_frames FILE: how many whole 4-byte frames a growing WAV file holds (header: 44 bytes).
apps_wav_frames() {
    local size
    size=$(stat -c %s "$1" 2>/dev/null) || { echo 0; return; }
    echo $(((size > 44 ? size - 44 : 0) / 4))
}
