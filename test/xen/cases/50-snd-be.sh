# Case 5: xen-troops' snd_be (the world's sndif backend, built unmodified by `make`, test/snd_be/) in
# dom0 instead of sndback, with the card of test/snd_be/card.spec (streams alsa<sbe_pb>, alsa<sbe_cap>:
# snd_be's ALSA devices are the clocked test card of test/snd_be/sbe_clock.c, which records what it
# plays, with the audio-timestamp shim preloaded into snd_be; see test/snd_be/README.md).
#   - the plugin, installed as in case 4, as the non-root member of audio: aplay -D xen and
#     aplay -M -D xen_raw of s16_le and s32_le at 44100 and 48000 Hz, 1 and 2 channels, each played
#     bit-exact by snd_be's card (its record is what it played, not what it received); arecord -D xen
#     of two of them, bit-exact; pcm-positions (a drain of a partial last period, rewind, forward, a
#     smooth pointer, a pause) with every frame at its position in the card's record;
#   - snd_be killed (SIGKILL) while aplay plays: aplay fails with the plugin's message, no hang; a new
#     snd_be takes the card, and the next aplay is bit-exact;
#   - the kernel's snd_xen_front against snd_be, as a cross-check of the backend: aplay and arecord
#     of s16_le 48000 Hz stereo bit-exact, then unbind + rmmod. (With s32_le 44100 Hz stereo, snd_be
#     refuses one of the kernel's hw-rule queries, "Can't set period size minmax", and aplay fails:
#     between those two, not ours; the plugin queries once at open and once in hw_params.)
#   - then sndback and the default domU are restored for any case file that follows.

SBE_MEDIA="s16_le-44100-1 s16_le-44100-2 s16_le-48000-1 s16_le-48000-2 s32_le-44100-1 s32_le-44100-2 s32_le-48000-1 s32_le-48000-2"
SBE_CAPTURE_MEDIA="s16_le-48000-2 s32_le-44100-1"
SBE_HOME=/run/sbe-home
SBE_OUT=/run/sbe-out                  # the card's records: sbe-pb.N.raw/.log, sbe-cap.N.raw/.log
SBE_LIB=/xt/snd_be/lib
SBE_USER=xtuser                       # case 4's user: uid 1000, in audio
SBE_DEVS="/dev/xen/evtchn /dev/xen/gntalloc /dev/xen/xenbus"
SBE_PERIOD=1024                       # pcm-positions' period (frames)

# --- the images (run on the build machine) ---------------------------------------------------------
# sbe_media NAME FORMAT RATE CHANNELS SECONDS: random audio as /xt/media/sbe-NAME.{wav,info} in the domU
# and .{raw,info} in dom0 (the .info as build-images writes it).
sbe_media() {
    local dir=$OUT/media-sbe name=sbe-$1 bits=${2#s} frames
    bits=${bits%_le}
    mkdir -p "$dir"
    frames=$(awk -v r="$3" -v s="$5" 'BEGIN { printf "%d", r * s }')
    head -c $((frames * $4 * bits / 8)) /dev/urandom >"$dir/$name.raw"
    sox -t raw -r "$3" -e signed-integer -b "$bits" -c "$4" -L "$dir/$name.raw" "$dir/$name.wav" || return 1
    echo "format=$2 rate=$3 channels=$4 bits=$bits tag=1 frames=$frames bytes=$((frames * $4 * bits / 8))" >"$dir/$name.info"
    img_file domu "$dir/$name.wav" "/xt/media/$name.wav"
    img_file domu "$dir/$name.info" "/xt/media/$name.info"
    img_file dom0 "$dir/$name.raw" "/xt/media/$name.raw"
    img_file dom0 "$dir/$name.info" "/xt/media/$name.info"
}

image_dom0() {
    local m f r s c secs
    if [ ! -x "$BUILD/snd_be/bin/snd_be" ]; then
        echo "build-images: $BUILD/snd_be/bin/snd_be missing (make builds it): dom0 gets no snd_be" >&2
        return 0
    fi
    img_bin dom0 --to /xt/snd_be/bin "$BUILD/snd_be/bin/snd_be"
    img_bin dom0 --to "$SBE_LIB" "$BUILD/snd_be/lib/libasound_module_pcm_sbe_clock.so" \
        "$BUILD/snd_be/lib/libsbe_htstamp.so"
    [ -e "$(img_root dom0)/usr/share/alsa/alsa.conf" ] || img_tree dom0 /usr/share/alsa
    "$TOP/test/vsnd-config" --xl-cfg "$TOP/test/snd_be/card.spec" >"$OUT/vsnd-snd_be.cfg" || return 1
    img_file dom0 "$OUT/vsnd-snd_be.cfg" /xt/domU/vsnd-snd_be.cfg
    secs=0.3
    for m in $SBE_MEDIA; do
        f=${m%%-*} r=${m#*-} c=${m##*-}
        sbe_media "$m" "$f" "${r%-*}" "$c" "$secs" || return 1
    done
    # What pcm-positions' five streams must hold, frame by frame (see test/plugin/pcm-positions.c).
    mkdir -p "$OUT/media-sbe"
    for s in "drain $((10 * SBE_PERIOD + 333))" "rewind $((11 * SBE_PERIOD))" \
             "forward $((5 * SBE_PERIOD)) $((2 * SBE_PERIOD)) $((3 * SBE_PERIOD))" "smooth 72000" \
             "pause $((16 * SBE_PERIOD))"; do
        set -- $s
        f=$1; shift
        python3 "$TOP/test/plugin/audiotool.py" stampgen "$OUT/media-sbe/stamps-$f.raw" "$@" || return 1
        img_file dom0 "$OUT/media-sbe/stamps-$f.raw" "/xt/media/stamps-$f.raw"
    done
}

image_domu() {
    [ -x "$BUILD/pcm-positions" ] && img_bin domu --to /xt/bin "$BUILD/pcm-positions"
    return 0
}

# --- in dom0 ---------------------------------------------------------------------------------------
sbe_pid() { cat /run/snd_be.pid 2>/dev/null; }

# sbe_start: snd_be in the background with its ALSA devices in ~/.asoundrc (test/snd_be/write-asoundrc's
# text), the shim preloaded; its log appended to $XT_OUT/snd_be.log. snd_be writes no ready file: it
# is ready when it wrote InitWait for a card, which xl create waits for (10 s), and sbe_restart checks.
sbe_start() {
    [ -x /xt/snd_be/bin/snd_be ] || { echo "snd_be is not in the image (make did not build it?)" >&2; return 1; }
    mkdir -p "$SBE_HOME" "$SBE_OUT"
    cat >"$SBE_HOME/.asoundrc" <<RC
pcm_type.sbe_clock { lib "$SBE_LIB/libasound_module_pcm_sbe_clock.so" }
pcm.sbe_pb { type sbe_clock record_dir "$SBE_OUT" name "sbe-pb" }
pcm.sbe_cap { type sbe_clock record_dir "$SBE_OUT" name "sbe-cap" source "$SBE_OUT/capture-source.raw" }
RC
    [ -e "$SBE_OUT/capture-source.raw" ] || cp /xt/media/sbe-s16_le-48000-2.raw "$SBE_OUT/capture-source.raw"
    echo "---- snd_be (started $(cut -d' ' -f1 /proc/uptime) s after boot)" >>"$XT_OUT/snd_be.log"
    HOME=$SBE_HOME LD_PRELOAD=$SBE_LIB/libsbe_htstamp.so /xt/snd_be/bin/snd_be >>"$XT_OUT/snd_be.log" 2>&1 &
    echo $! >/run/snd_be.pid
    sleep 1
    kill -0 "$(sbe_pid)" 2>/dev/null || { echo "snd_be exited at start: $(tail -n 3 "$XT_OUT/snd_be.log")" >&2; return 1; }
}

# sbe_kill [SIGNAL]: stops snd_be and waits (bounded) until it is gone.
sbe_kill() { xt_kill_pidfile /run/snd_be.pid snd_be "$@"; }

# sbe_setup: sndback and the default domU make way for snd_be and a domU with snd_be's card; the
# udev rule's effect on the domU's devices (case 4).
sbe_setup() {
    local domid
    xt_domu_destroy >/dev/null 2>&1
    xt_sndback_kill TERM || return 1
    sbe_start || return 1
    domid=$(xt_domain_create "$XT_DOMU" /xt/domU/vsnd-snd_be.cfg) || return 1
    echo "$domid" >/run/xt.domid
    xt_states_are 1 2 || { echo "card: frontend $(xt_fe_state), backend $(xt_be_state) (1 and 2 expected)" >&2; return 1; }
    in_domu "chgrp audio $SBE_DEVS && chmod 0660 $SBE_DEVS"
}

sbe_user() { echo "su -s /bin/sh $SBE_USER -c '$1'"; }

# sbe_records NAME: the card's records of stream NAME (sbe-pb, sbe-cap) in the order they were made.
sbe_records() {
    ls "$SBE_OUT" | sed -n "s/^$1\.\([0-9]*\)\.raw\$/\1/p" | sort -n | sed "s|^|$SBE_OUT/$1.|; s|\$|.raw|"
}

# sbe_check_played RECORD MEDIA PERIOD-PAD: RECORD (what the card played) is sbe-MEDIA.raw byte for byte,
# then only silence, less than a buffer (aplay pads its last period); the card was opened in MEDIA's format.
sbe_check_played() {
    local rec=$1 media=sbe-$2 bytes size want open
    bytes=$(xt_media "$media" bytes)
    size=$(wc -c <"$rec")
    want="open $(xt_media_alsa_format "$media") $(xt_media "$media" rate) $(xt_media "$media" channels) "
    open=$(grep '^open ' "${rec%.raw}.log" | head -n 1)
    case "$open" in "$want"*) ;; *) echo "$(basename "$rec"): card opened as '$open', expected '$want...'" >&2; return 1 ;; esac
    if [ "$size" -lt "$bytes" ] || [ "$(head -c "$bytes" "$rec" | xt_md5)" != "$(xt_md5 "/xt/media/$media.raw")" ]; then
        echo "$(basename "$rec"): $size bytes played, the first $bytes are not $media.raw" >&2
        cp "$rec" "$XT_OUT/snd_be-mismatch-$(basename "$rec")"
        return 1
    fi
    [ "$((size - bytes))" -lt "$(xt_card_key buffer-size)" ] || { echo "$(basename "$rec"): $((size - bytes)) bytes after the audio" >&2; return 1; }
    [ "$(tail -c "+$((bytes + 1))" "$rec" | tr -d '\000' | wc -c)" = 0 ] ||
        { echo "$(basename "$rec"): the bytes after the audio are not silence" >&2; return 1; }
}

# sbe_plugin_playback: every medium with aplay -D xen, then with aplay -M -D xen_raw, in one domU command
# (each round trip to the domU costs seconds under QEMU); then one line per run from the card's records.
sbe_plugin_playback() {
    local out i m mode rec n
    rm -f "$SBE_OUT"/sbe-pb.*
    out=$(in_domu -t 300 "$(sbe_user "for o in plain -M; do for m in $SBE_MEDIA; do \
        if [ \$o = plain ]; then aplay -q --fatal-errors -D xen /xt/media/sbe-\$m.wav; \
        else aplay -q --fatal-errors -M -D xen_raw /xt/media/sbe-\$m.wav; fi || echo \"aplay \$o \$m failed\"; done; done")" 2>&1)
    [ -z "$out" ] || echo "$out" | tail -n 5 >"$XT_OUT/snd_be-plugin-aplay.txt"
    n=$(sbe_records sbe-pb | grep -c .)
    i=0
    for mode in plain -M; do
        for m in $SBE_MEDIA; do
            i=$((i + 1))
            rec=$(sbe_records sbe-pb | sed -n "${i}p")
            if echo "$out" | grep -q "aplay $mode $m failed"; then
                fail "xen/snd_be/plugin-aplay$([ $mode = -M ] && echo -mmap)-$m: aplay failed: $(echo "$out" | grep -v 'failed$' | head -n 2 | tr '\n' ' ')"
            elif [ -z "$rec" ]; then
                fail "xen/snd_be/plugin-aplay$([ $mode = -M ] && echo -mmap)-$m: no record $i (the card recorded $n streams)"
            else
                check "xen/snd_be/plugin-aplay$([ $mode = -M ] && echo -mmap)-$m: played bit-exact by snd_be's card" \
                    sbe_check_played "$rec" "$m"
            fi
        done
    done
    [ "$n" = 16 ] || fail "xen/snd_be/plugin-aplay-count: the card recorded $n streams for 16 aplay runs"
}

# sbe_capture MEDIA DEVICE [user]: MEDIA is the card's capture source; arecord on DEVICE in the domU
# (as SBE_USER with "user", else as root) takes half of MEDIA's frames: they are MEDIA's first.
sbe_capture() {
    local media=sbe-$1 frames bytes want out got rec
    cp "/xt/media/$media.raw" "$SBE_OUT/capture-source.raw"
    frames=$(($(xt_media "$media" frames) / 2))
    bytes=$((frames * $(xt_media "$media" channels) * $(xt_media "$media" bits) / 8))
    want=$(head -c "$bytes" "/xt/media/$media.raw" | xt_md5)
    rec="arecord -q --fatal-errors -D $2 -t raw -f $(xt_media_alsa_format "$media") -r $(xt_media "$media" rate) \
        -c $(xt_media "$media" channels) -s $frames /tmp/capture.raw"
    [ "${3:-}" = user ] && rec=$(sbe_user "$rec")
    out=$(in_domu -t 60 "rm -f /tmp/capture.raw; $rec && wc -c </tmp/capture.raw && md5sum </tmp/capture.raw" 2>&1) ||
        { echo "arecord failed: $(echo "$out" | tail -n 2)" >&2; return 1; }
    got=$(echo "$out" | tail -n 2 | tr '\n' ' ' | awk '{ print $1, $2 }')
    [ "$got" = "$bytes $want" ] || { echo "captured (bytes md5) '$got', expected '$bytes $want'" >&2; return 1; }
}

# sbe_positions: pcm-positions against snd_be: its own lines, then the five streams from the card's records.
sbe_positions() {
    local out i name rec try
    # The smooth pointer's bound: a quarter of the 16384-frame buffer instead of half a period. Under
    # QEMU the guest stalls for 100 ms and more (5272 frames seen), far longer than on real hardware.
    # An xrun is no wrong byte but a guest too slow for real time (see xt_run_xrun_free): a run that
    # failed only by one ("Broken pipe") is run again, XT_XRUN_TRIES times in all.
    for try in $(seq "$XT_XRUN_TRIES"); do
        rm -f "$SBE_OUT"/sbe-pb.*
        out=$(in_domu -t 120 "$(sbe_user "/xt/bin/pcm-positions xen_raw 4096")" 2>&1)
        echo "$out" | grep '^FAIL' | grep -qv 'Broken pipe' && break
        echo "$out" | grep '^FAIL' | grep -q 'Broken pipe' || break
        echo "xt: xrun in attempt $try of pcm-positions against snd_be, trying again" >>"$XT_OUT/xruns"
    done
    echo "$out" >"$XT_OUT/snd_be-pcm-positions.txt"
    echo "$out" | sed -n 's/^\(PASS\|FAIL\): positions /\1 /p' | while read -r r rest; do
        [ "$r" = PASS ] && pass "xen/snd_be/positions: $rest" || fail "xen/snd_be/positions: $rest"
    done
    # The program's own plan (its first line) says how many case lines must follow.
    planned=$(echo "$out" | sed -n 's/^PLAN: \([0-9]*\)$/\1/p')
    [ -n "$planned" ] && [ "$(echo "$out" | grep -c '^\(PASS\|FAIL\): positions ')" = "$planned" ] ||
        fail "xen/snd_be/positions: $(echo "$out" | grep -c '^\(PASS\|FAIL\): ') of ${planned:-?} planned cases reported: $(echo "$out" | tail -n 2 | tr '\n' ' ')"
    i=0
    for name in drain rewind forward smooth pause; do
        i=$((i + 1))
        rec=$(sbe_records sbe-pb | sed -n "${i}p")
        if [ -n "$rec" ] && cmp -s "$rec" "/xt/media/stamps-$name.raw"; then
            pass "xen/snd_be/positions-$name: the card played every frame at its position ($(wc -c <"$rec") bytes)"
        else
            fail "xen/snd_be/positions-$name: record '$rec' ($(wc -c <"$rec" 2>/dev/null) bytes) is not stamps-$name.raw ($(wc -c <"/xt/media/stamps-$name.raw") bytes)"
            [ -n "$rec" ] && cp "$rec" "$XT_OUT/snd_be-positions-$name.raw"
        fi
    done
}

# sbe_kill_mid_stream: aplay of a 3 s file in the background in the domU; snd_be killed a second in. aplay
# must end (bounded) with the plugin's message naming the cause.
sbe_kill_mid_stream() {
    local out
    in_domu "rm -f /tmp/killed.rc; ( $(sbe_user "aplay -q -D xen -d 3 -t raw -f S16_LE -r 48000 -c 2 /dev/urandom") \
        >/tmp/killed.out 2>&1; echo \$? >/tmp/killed.rc ) </dev/null >/dev/null 2>&1 &" >/dev/null
    xt_wait 30 "the card to start playing" sh -c "grep -q '^start' $SBE_OUT/sbe-pb.1.log 2>/dev/null" || return 1
    sleep 1
    sbe_kill KILL || return 1
    xt_wait 60 "aplay to end after snd_be was killed" in_domu "test -s /tmp/killed.rc" || return 1
    out=$(in_domu "cat /tmp/killed.rc /tmp/killed.out")
    echo "$out" >"$XT_OUT/snd_be-killed-aplay.txt"
    [ "$(echo "$out" | head -n 1)" != 0 ] || { echo "aplay succeeded although snd_be was killed" >&2; return 1; }
    echo "$out" | grep -q 'vsnd card 0 stream 0/0 (alsa<sbe_pb>): backend' ||
        { echo "no message from the plugin naming the backend: $(echo "$out" | tail -n 2 | tr '\n' ' ')" >&2; return 1; }
}

# sbe_restart: a new snd_be must take the card over, then wait for a frontend (InitWait).
sbe_initwait() { [ "$(xt_be_state)" = 2 ]; }
sbe_restart() {
    xt_backend_takes_card snd_be sbe_start && xt_wait 30 "snd_be in InitWait" sbe_initwait
}

# sbe_play_one MEDIA DEVICE [user]: one aplay in the domU (as SBE_USER with "user"; the kernel's /dev/snd
# is root's: the domU has no udev), played bit-exact by the card.
sbe_play_one() {
    local cmd="aplay -q --fatal-errors -D $2 /xt/media/sbe-$1.wav"
    rm -f "$SBE_OUT"/sbe-pb.*
    [ "${3:-}" = user ] && cmd=$(sbe_user "$cmd")
    in_domu -t 60 "$cmd" || return 1
    sbe_check_played "$(sbe_records sbe-pb | head -n 1)" "$1"
}

sbe_restore() {
    xt_domu_destroy >/dev/null 2>&1
    sbe_kill TERM
    xt_sndback_start && xt_domu_create vsnd && xt_states_are 1 2
}

run_cases() {
    local m
    # setup, 16 aplay, 2 arecord, pcm-positions' 6 cases and its 5 records, killed, restart,
    # restart-aplay, 4 of snd_xen_front, restore
    xt_plan 38
    xt_step "snd_be: sndback and the domU make way; snd_be starts; domU with snd_be's card"
    check "xen/snd_be/setup: snd_be in dom0 takes the card of test/snd_be/card.spec (InitWait)" sbe_setup || { sbe_restore; return; }
    xt_step "snd_be: the plugin plays every medium, plain and mmap"
    sbe_plugin_playback
    for m in $SBE_CAPTURE_MEDIA; do
        xt_step "snd_be: arecord -D xen $m"
        check "xen/snd_be/plugin-arecord-$m: snd_be's capture bit-exact" sbe_capture "$m" xen user
    done
    xt_step "snd_be: pcm-positions"
    sbe_positions
    xt_step "snd_be: kill -9 snd_be while aplay plays"
    rm -f "$SBE_OUT"/sbe-pb.*
    check "xen/snd_be/killed: aplay ends with the plugin's message when snd_be is killed mid-stream" sbe_kill_mid_stream
    xt_step "snd_be: start snd_be again"
    if check "xen/snd_be/restart: a new snd_be takes the card" sbe_restart; then
        check "xen/snd_be/restart-aplay: the next open plays bit-exact" sbe_play_one s16_le-48000-2 xen user
    fi
    xt_step "snd_be: the kernel's snd_xen_front against snd_be"
    if check "xen/snd_be/kernel-fe-load: snd_xen_front connects to snd_be" xt_kfe_load; then
        check "xen/snd_be/kernel-fe-aplay: snd_xen_front's playback bit-exact on snd_be's card" \
            sbe_play_one s16_le-48000-2 hw:0,0
        check "xen/snd_be/kernel-fe-arecord: snd_xen_front's capture bit-exact" sbe_capture s16_le-48000-2 hw:0,0
        check "xen/snd_be/kernel-fe-unload: unbind + rmmod, snd_be back to InitWait" xt_kfe_unload
    fi
    xt_step "snd_be: stop it, restore sndback and the default domU"
    check "xen/snd_be/restore: snd_be stopped, sndback and the default domU back" sbe_restore
}
