# dom0-lib.sh: helpers for run-cases and the case files, in dom0 (POSIX sh plus `local`: busybox ash
# under QEMU, dash on a real Xen host).
# Results go to $XT_OUT/results (one PASS:/FAIL: line per case) and to the console; the host's
# test/xen/run adds them up. Every wait here is bounded and ends with a message naming what hung.
XT_OUT=${XT_OUT:-/xt/out}          # the host's build/test-xen/out, shared over 9p (or a tmpfs if that failed)
XT_RESULTS=$XT_OUT/results
XT_DOMU=xtest                      # the test domU's name in xl
XT_SNDBACK_OUT=/run/sndback-out    # sndback's WAVs (copied to $XT_OUT at the end)
XT_SNDBACK_READY=/run/sndback.ready
XT_CAPTURE=/run/capture.wav        # sndback's capture source: reopened at every capture OPEN, so a case
                                   # puts the WAV it wants captured here first
export XT_OUT XT_RESULTS XT_DOMU XT_SNDBACK_OUT XT_SNDBACK_READY XT_CAPTURE

pass() { echo "PASS: $*" | tee -a "$XT_RESULTS"; }
fail() { echo "FAIL: $*" | tee -a "$XT_RESULTS"; }
# check NAME CMD...: PASS if CMD succeeds, else FAIL with the tail of its output (and status 1).
check() {
    local name=$1 out
    shift
    if out=$("$@" 2>&1); then
        pass "$name"
    else
        fail "$name: $(echo "$out" | tail -n 3 | tr '\n' ' ')"
        return 1
    fi
}

# xt_plan N: the case file reports N result lines (known up front; run-cases fails the file when fewer
# came, or more without a FAIL among them); xt_plan_more K: a branch taken adds K lines.
XT_PLAN_FILE=/run/case.plan
xt_plan() { echo "$1" >"$XT_PLAN_FILE"; }
xt_plan_more() { local n; n=$(cat "$XT_PLAN_FILE" 2>/dev/null || echo 0); echo $((n + $1)) >"$XT_PLAN_FILE"; }

# xt_step NAME: names what dom0 does now, so a hang or a failure can be pinned to a step.
xt_step() {
    echo "STEP: $*"
    echo "[$(cut -d' ' -f1 /proc/uptime)] $*" >>"$XT_OUT/steps"
}

# xt_wait SECS DESC CMD...: polls CMD every 0.2 s until it succeeds; fails after SECS with DESC.
xt_wait() {
    local secs=$1 desc=$2 n=0
    shift 2
    while ! "$@" >/dev/null 2>&1; do
        n=$((n + 1))
        if [ "$n" -ge $((secs * 5)) ]; then
            echo "timed out after ${secs}s waiting for $desc" >&2
            return 1
        fi
        sleep 0.2
    done
}

# --- sndback -----------------------------------------------------------------------------------------
# xt_sndback_start [ARGS...]: starts sndback in the background (playback WAVs to $XT_SNDBACK_OUT,
# capture from $XT_CAPTURE), waits (bounded) for its ready file.
xt_sndback_start() {
    [ -x /xt/bin/sndback ] || { echo "sndback is not in the image (build/sndback missing?)" >&2; return 1; }
    mkdir -p "$XT_SNDBACK_OUT"
    [ -e "$XT_CAPTURE" ] || cp /xt/media/silence.wav "$XT_CAPTURE"
    rm -f "$XT_SNDBACK_READY"
    echo "---- sndback $* (started $(cut -d' ' -f1 /proc/uptime) s after boot)" >>"$XT_OUT/sndback.log"
    sndback --out "$XT_SNDBACK_OUT" --capture-source="wav:$XT_CAPTURE" --ready-file="$XT_SNDBACK_READY" -v "$@" \
        >>"$XT_OUT/sndback.log" 2>&1 &
    echo $! >/run/sndback.pid
    xt_wait 20 "sndback's ready file $XT_SNDBACK_READY" test -e "$XT_SNDBACK_READY"
}

xt_sndback_pid() { cat /run/sndback.pid 2>/dev/null; }

# xt_kill_pidfile PIDFILE NAME [SIGNAL]: kills the process of PIDFILE and waits (bounded) until it is gone.
xt_kill_pidfile() {
    local pid
    pid=$(cat "$1" 2>/dev/null) || return 0
    kill "-${3:-KILL}" "$pid" 2>/dev/null
    xt_wait 10 "$2 (pid $pid) to exit" sh -c "! kill -0 $pid"
    rm -f "$1"
}

# xt_sndback_kill [SIGNAL]: kills our sndback and waits (bounded) until it is gone.
xt_sndback_kill() { xt_kill_pidfile /run/sndback.pid sndback "$@"; }

# xt_backend_takes_card NAME START-CMD...: runs START-CMD (which starts a backend) and requires the new
# backend to take the test domU's card over: it writes the backend state, seen by a watch set before
# it started (the registration event, then its write). The states alone would not do: a killed
# backend leaves them as they were.
xt_backend_takes_card() {
    local name=$1 be
    shift
    be=/local/domain/0/backend/vsnd/$(xt_domu_id)/0/state
    rm -f /run/xt-be.watch
    timeout 60 xenstore-watch -n 2 "$be" >/run/xt-be.watch 2>&1 &
    xt_wait 10 "the watch on $be" test -s /run/xt-be.watch || return 1
    "$@" || return 1
    xt_wait 30 "the new $name to write $be" sh -c '[ "$(wc -l </run/xt-be.watch)" -ge 2 ]'
}

# --- the test domU -----------------------------------------------------------------------------------
xt_domid() { xl domid "$XT_DOMU" 2>/dev/null; }
# The domU's id as of its last xt_domu_create (cheaper than asking xl each time).
xt_domu_id() { cat /run/xt.domid 2>/dev/null; }

# xt_domain_create NAME [CFG-FILE...]: creates a PV domU NAME from /xt/domU/base.cfg (plus the given xl
# config fragments) and waits until its agent answers; prints its domain id.
xt_domain_create() {
    local name=$1 domid
    shift
    sed "s/^name = .*/name = \"$name\"/" /xt/domU/base.cfg | cat - "$@" >"/run/$name.cfg"
    if ! timeout 120 xl -v create "/run/$name.cfg" >>"$XT_OUT/xl-create.log" 2>&1; then
        echo "xl create $name failed or took over 120 s: $(grep -E 'error|fail' "$XT_OUT/xl-create.log" | head -n 3)" >&2
        return 1
    fi
    domid=$(xl domid "$name" 2>/dev/null) || { echo "xl create returned but domain $name does not exist" >&2; return 1; }
    xt_wait 180 "the agent of domU $name (data/agent/ready of domain $domid)" \
        timeout 5 xenstore-read "/local/domain/$domid/data/agent/ready" || return 1
    echo "$domid"
}

# xt_domu_create [vsnd]: creates the test domU (with the card of /xt/domU/vsnd.cfg if "vsnd" is given).
xt_domu_create() {
    local domid
    domid=$(xt_domain_create "$XT_DOMU" ${1:+/xt/domU/vsnd.cfg}) || return 1
    echo "$domid" >/run/xt.domid
}

xt_domu_destroy() {
    xt_domid >/dev/null || return 0
    rm -f /run/xt.domid
    timeout 60 xl destroy "$XT_DOMU"
}

# in_dom DOMID [-t SECS] CMD: runs the shell command CMD in domU DOMID through its agent
# (test/xen/domu-init), prints its output (at most the last 16 chunks of 1400 bytes) and returns its
# exit status. The agent kills CMD after SECS (default 30); if it does not answer within SECS + 20 s
# the domU is taken for hung (status 124). in_domu [-t SECS] CMD: the same in the test domU.
# (The xenstore tools block only while xenstored is down; the host's QEMU time limit bounds that.)
in_domu() { in_dom "$(xt_domu_id)" "$@"; }
in_dom() {
    local t=30 base seq n i rc chunks cmd
    base=/local/domain/$1/data/agent
    shift
    if [ "$1" = -t ]; then t=$2; shift 2; fi
    cmd=$*
    seq=0
    [ -f /run/xt.seq ] && read -r seq </run/xt.seq
    seq=$((seq + 1))
    echo "$seq" >/run/xt.seq
    # Wait on a watch of done rather than polling: dom0 then leaves the CPUs to the domU (an aplay in
    # it must keep up with real time). The watch's first event is its registration; the answer makes
    # the second, or timeout ends it.
    timeout "$((t + 20))" xenstore-watch -n 2 "$base/done" >"/run/xt.watch.$seq" 2>/dev/null &
    n=$!
    until [ -s "/run/xt.watch.$seq" ] || ! kill -0 "$n" 2>/dev/null; do sleep 0.05; done
    xenstore-write -- "$base/cmd" "$cmd" "$base/timeout" "$t" "$base/req" "$seq" || { kill "$n"; return 125; }
    wait "$n"
    rm -f "/run/xt.watch.$seq"
    # done, rc and chunks come from one transaction of the agent, and are read in one.
    # shellcheck disable=SC2046
    set -- $(xenstore-read "$base/done" "$base/rc" "$base/chunks" 2>/dev/null)
    if [ "$1" != "$seq" ]; then
        echo "domU agent gave no answer in $((t + 20)) s to: $cmd (domU hung?)" >&2
        return 124
    fi
    rc=$2 chunks=$3 i=0
    while [ "$i" -lt "$chunks" ]; do
        xenstore-read -R "$base/out/$i"
        echo
        i=$((i + 1))
    done
    return "$rc"
}

# xt_md5 [FILE]: the md5 of a file's bytes (of stdin without FILE), nothing else.
xt_md5() { md5sum "$@" | cut -d' ' -f1; }

# --- xenbus states of the test domU's card ----------------------------------------------------------
xt_be_state() { timeout 5 xenstore-read "/local/domain/0/backend/vsnd/$(xt_domu_id)/0/state" 2>/dev/null; }
xt_fe_state() { timeout 5 xenstore-read "/local/domain/$(xt_domu_id)/device/vsnd/0/state" 2>/dev/null; }
xt_states_are() { [ "$(xt_fe_state)" = "$1" ] && [ "$(xt_be_state)" = "$2" ]; }
xt_be_initwait() { [ "$(xt_be_state)" = 2 ]; }   # the backend waits for a frontend
# xt_wait_connected SECS: both ends Connected (4) within SECS, else says where they stand.
xt_wait_connected() {
    xt_wait "$1" "frontend and backend Connected" xt_states_are 4 4 ||
        { echo "after $1 s: frontend state $(xt_fe_state), backend state $(xt_be_state)" >&2; return 1; }
}

# --- the test media (made by build-images: /xt/media/NAME.{wav,raw,info}) ---------------------------
# xt_media NAME KEY: one value of NAME.info (format rate channels bits tag frames bytes).
xt_media() { tr ' ' '\n' <"/xt/media/$1.info" | sed -n "s/^$2=//p"; }
# The ALSA spelling of a media's format, for aplay/arecord -f.
xt_media_alsa_format() { xt_media "$1" format | tr a-z A-Z; }

# xt_run_xrun_free CMD: runs CMD (an aplay/arecord with --fatal-errors) in the domU and prints its
# output. An xrun is no wrong byte but a guest too slow for real time (emulation on a busy machine:
# sndback's clock does not wait), so CMD is run again, at most XT_XRUN_TRIES times in all, while it
# ends with aplay's "fatal underrun"/"fatal overrun"; any other failure ends it at once.
XT_XRUN_TRIES=3
xt_run_xrun_free() {
    local try=1 out
    while :; do
        rm -rf "${XT_SNDBACK_OUT:?}"/*
        if out=$(in_domu -t 60 "$1" 2>&1); then
            echo "$out"
            return 0
        fi
        if ! echo "$out" | grep -q 'fatal \(underrun\|overrun\)' || [ "$try" -ge "$XT_XRUN_TRIES" ]; then
            echo "'$1' in the domU failed (attempt $try): $(echo "$out" | tail -n 3)" >&2
            return 1
        fi
        echo "xt: xrun in attempt $try of '$1', trying again" >>"$XT_OUT/xruns"
        try=$((try + 1))
    done
}

# xt_expect_playback MEDIA CMD: clears sndback's output, runs CMD in the domU (it must play
# /xt/media/MEDIA.wav to the card's playback stream), then requires exactly one new WAV from sndback
# whose format is MEDIA's and whose audio data is MEDIA.raw byte for byte, followed by nothing but
# silence shorter than the card's buffer-size (aplay pads its last period with silence). Says why on stderr.
xt_expect_playback() {
    local media=$1 cmd=$2 out file want got fmt bytes pad max_pad silence
    rm -rf "${XT_SNDBACK_OUT:?}"/*
    out=$(xt_run_xrun_free "$cmd") || return 1
    file=$(ls "$XT_SNDBACK_OUT")
    [ "$(echo "$file" | grep -c .)" = 1 ] ||
        { echo "expected one new file from sndback, found: $(echo $file)" >&2; return 1; }
    cp "$XT_SNDBACK_OUT/$file" /run/played.wav
    fmt=$(wav-data --fmt /run/played.wav) || return 1
    want="tag=$(xt_media "$media" tag) channels=$(xt_media "$media" channels) rate=$(xt_media "$media" rate) bits=$(xt_media "$media" bits)"
    [ "$fmt" = "$want" ] || { echo "sndback's $file is '$fmt', expected '$want'" >&2; return 1; }
    bytes=$(xt_media "$media" bytes)
    wav-data /run/played.wav >/run/played.raw || return 1
    want=$(xt_md5 "/xt/media/$media.raw")
    got=$(head -c "$bytes" /run/played.raw | xt_md5)
    pad=$(($(wc -c </run/played.raw) - bytes))
    if [ "$pad" -lt 0 ] || [ "$got" != "$want" ]; then
        echo "audio data differs: $file has $(wc -c </run/played.raw) bytes, the first $bytes with md5 $got;" \
            "$media.raw has md5 $want" >&2
        cp /run/played.wav "$XT_OUT/mismatch-$media.wav"
        return 1
    fi
    max_pad=$(timeout 5 xenstore-read "/local/domain/$(xt_domu_id)/device/vsnd/0/buffer-size") || max_pad=0
    [ "$pad" -lt "$max_pad" ] || { echo "$pad bytes after the audio data (buffer-size $max_pad)" >&2; return 1; }
    # Silence: 0x80 for unsigned 8-bit samples, zero bytes for every signed format.
    [ "$(xt_media "$media" format)" = u8 ] && silence='\200' || silence='\000'
    [ "$(tail -c "+$((bytes + 1))" /run/played.raw | tr -d "$silence" | wc -c)" = 0 ] ||
        { echo "the $pad bytes after the audio data are not silence" >&2; return 1; }
}

# xt_expect_capture MEDIA FRAMES CMD: makes MEDIA.wav sndback's capture source, runs CMD in the domU
# (it must capture FRAMES frames of MEDIA's shape, raw, into /tmp/capture.raw), then requires those
# bytes to be the first FRAMES frames of MEDIA.raw.
xt_expect_capture() {
    local media=$1 frames=$2 cmd=$3 out bytes want got
    cp "/xt/media/$media.wav" "$XT_CAPTURE"
    bytes=$((frames * $(xt_media "$media" channels) * $(xt_media "$media" bits) / 8))
    want=$(head -c "$bytes" "/xt/media/$media.raw" | xt_md5)
    out=$(xt_run_xrun_free "rm -f /tmp/capture.raw; $cmd && wc -c </tmp/capture.raw && md5sum </tmp/capture.raw") ||
        return 1
    got=$(echo "$out" | tail -n 2 | tr '\n' ' ' | awk '{ print $1, $2 }')
    [ "$got" = "$bytes $want" ] ||
        { echo "captured (bytes md5) '$got', expected '$bytes $want' (the first $frames frames of $media)" >&2; return 1; }
}

# xt_collect: copies every log and output file worth keeping to $XT_OUT.
# (A xenstore tool blocks for ever when xenstored is not running, hence the timeout.)
xt_collect() {
    mkdir -p "$XT_OUT/dom0-logs"
    cp -r /var/log/xen "$XT_OUT/dom0-logs/" 2>/dev/null
    dmesg >"$XT_OUT/dom0-logs/dmesg.txt" 2>&1
    timeout 10 xenstore-ls -fp >"$XT_OUT/dom0-logs/xenstore.txt" 2>&1
    [ -d "$XT_SNDBACK_OUT" ] && cp -r "$XT_SNDBACK_OUT" "$XT_OUT/sndback-out" 2>/dev/null
    sync
}

# --- the Linux kernel frontend (snd_xen_front) in the test domU --------------------------------------
# xt_kfe_load: loads snd_xen_front and waits (bounded) for its card and for both ends to be Connected.
xt_kfe_load() {
    in_domu "modprobe snd_xen_front" || return 1
    in_domu -t 40 'i=0; until [ -e /proc/asound/card0/pcm0p ]; do i=$((i + 1)); [ $i -gt 300 ] && exit 1; sleep 0.1; done' ||
        { echo "no ALSA card 0 with a playback PCM 30 s after modprobe snd_xen_front" >&2; return 1; }
    xt_wait_connected 20
}

# xt_kfe_unload: unbinds the card from snd_xen_front and unloads it; the frontend ends Closed (6) and
# sndback waits again (InitWait, 2). A bound xenbus device holds a reference on its driver's module
# (xenbus_dev_probe's try_module_get), so a plain rmmod fails with EAGAIN: unbind first.
xt_kfe_unload() {
    in_domu "echo vsnd-0 >/sys/bus/xen/devices/vsnd-0/driver/unbind && rmmod snd_xen_front" || return 1
    xt_wait 20 "frontend Closed, backend InitWait" xt_states_are 6 2 ||
        { echo "frontend state $(xt_fe_state), backend state $(xt_be_state)" >&2; return 1; }
}

xt_kfe_play() { xt_expect_playback "$1" "aplay -q --fatal-errors -D hw:0,0 /xt/media/$1.wav"; }

xt_kfe_capture() {
    local frames
    frames=$(($(xt_media "$1" frames) / 2))
    xt_expect_capture "$1" "$frames" "arecord -q --fatal-errors -D hw:0,0 -t raw -f $(xt_media_alsa_format "$1") \
        -r $(xt_media "$1" rate) -c $(xt_media "$1" channels) -s $frames /tmp/capture.raw"
}

# xt_kfe_dump_has FIELD VALUE: the hw_params dump of hw:0,0 (saved by the dump case) has "FIELD: VALUE".
xt_kfe_dump_has() {
    grep -q "^$1: *$2\$" /run/kfe-dump.txt ||
        { echo "dump has '$(grep "^$1:" /run/kfe-dump.txt)', expected '$1: $2'" >&2; return 1; }
}

# xt_kfe_dump MEDIA: aplay --dump-hw-params of hw:0,0 into /run/kfe-dump.txt (it then plays MEDIA).
xt_kfe_dump() {
    in_domu -t 60 "aplay -D hw:0,0 --dump-hw-params /xt/media/$1.wav 2>&1 >/dev/null" >/run/kfe-dump.txt 2>&1 ||
        { echo "aplay --dump-hw-params failed: $(tail -n 3 /run/kfe-dump.txt)" >&2; return 1; }
    cp /run/kfe-dump.txt "$XT_OUT/$2"
}

# xt_card_key KEY: a key of the card's frontend directory (written by xl from test/default-card.spec).
xt_card_key() { timeout 5 xenstore-read "/local/domain/$(xt_domu_id)/device/vsnd/0/$1" 2>/dev/null; }

# The sndif format names (sndif.h); Linux knows no other, so it drops libxl's f32_le/f64_le spellings.
XT_SNDIF_FORMATS="s8 u8 s16_le s16_be u16_le u16_be s24_le s24_be u24_le u24_be s32_le s32_be u32_le u32_be
float_le float_be float64_le float64_be iec958_subframe_le iec958_subframe_be mu_law a_law ima_adpcm mpeg gsm"

# xt_kfe_dump_formats_are LIST: the dump's FORMAT line holds exactly the comma-separated sndif names.
xt_kfe_dump_formats_are() {
    local want got
    want=$(echo "$1" | tr ',' '\n' | tr a-z A-Z | sort | tr '\n' ' ')
    got=$(sed -n 's/^FORMAT: *//p' /run/kfe-dump.txt | tr ' ' '\n' | grep . | sort | tr '\n' ' ')
    [ "$got" = "$want" ] || { echo "dump has FORMAT '$got', expected '$want'" >&2; return 1; }
}

# xt_kfe_dump_is_card: the dump shows the card's own limits, read back from its xenstore directory:
# its formats that Linux knows, channels-min..channels-max, the lowest..highest rate, buffer-size bytes.
xt_kfe_dump_is_card() {
    local formats rates f
    formats=
    for f in $(xt_card_key sample-formats | tr ',' ' '); do
        echo " $XT_SNDIF_FORMATS " | tr '\n' ' ' | grep -q " $f " && formats=$formats${formats:+,}$f
    done
    rates=$(xt_card_key sample-rates | tr ',' '\n' | sort -n)
    xt_kfe_dump_formats_are "$formats" &&
        xt_kfe_dump_has CHANNELS "\[$(xt_card_key channels-min || echo 1) $(xt_card_key channels-max)\]" &&
        xt_kfe_dump_has RATE "\[$(echo "$rates" | head -n 1) $(echo "$rates" | tail -n 1)\]" &&
        xt_kfe_dump_has BUFFER_BYTES "\[[0-9]* $(xt_card_key buffer-size)\]"
}
