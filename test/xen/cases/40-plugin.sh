# Case 4: the plugin (libasound_module_pcm_xen.so) as the domU's sndif frontend, against sndback in
# dom0, used the way README.md "Using it in a Xen guest" says: installed from the package (dpkg -i), the
# udev rule's GROUP/MODE on /dev/xen/{evtchn,gntalloc,xenbus}, run by a non-root member of `audio`.
#   - with snd_xen_front bound to the card, the plugin refuses and names the module and its hw: device;
#   - with snd_xen_front unloaded: 20 open/play/close cycles in a row, aplay -D xen and aplay -M -D xen
#     of every test medium taking turns, each run bit-exact (one line per mode and medium, one for the
#     run); then arecord -D xen of every medium, bit-exact.
# Under QEMU one aplay run takes seconds in the domU and each round trip to it seconds more: the cycles are
# one domU command and double as the aplay cases, so the case file stays within run-cases' bound.
# The domU has no udev: the kernel driver is loaded with modprobe (what udev would do on its modalias),
# and the rule's effect is applied with chgrp/chmod.

PL_USER=xtuser      # uid 1000, primary group xtuser, member of audio: the plugin's intended user
PL_OTHER=xtother    # uid 1001, not in audio: the udev rule must be what lets xtuser in
PL_ALSA_PLUGIN_DIR=/usr/lib/x86_64-linux-gnu/alsa-lib   # where the package puts the plugins on Debian amd64
PL_PKG=libasound2-plugin-xen                            # the package (make deb), installed at the domU's boot
PL_DEVS="/dev/xen/evtchn /dev/xen/gntalloc /dev/xen/xenbus"
PL_MEDIA="s16_le-48000-2 s32_le-44100-6 u8-8000-1"
PL_CYCLES=20

image_domu() {
    pl_image_common
    # The package (make deb), which domu-init installs with dpkg -i at boot; dpkg, and the libraries
    # the package's plugins need (ldd of the package's own copies).
    pl_image_deb || return 1
}

# pl_image_common: what the cases need besides the plugin (test/xen-arm64's case file 40 too): ALSA's
# tools and configuration, snd_xen_front, the users (Debian's audio group id).
pl_image_common() {
    local r
    r=$(img_root domu)
    img_bin domu /usr/bin/aplay /usr/bin/arecord
    [ -e "$r/usr/share/alsa/alsa.conf" ] || img_tree domu /usr/share/alsa
    img_module domu snd_xen_front
    echo "$PL_USER:x:1000:1000::/tmp:/bin/sh" >>"$r/etc/passwd"
    echo "$PL_OTHER:x:1001:1001::/tmp:/bin/sh" >>"$r/etc/passwd"
    printf '%s\n' "audio:x:29:$PL_USER" "$PL_USER:x:1000:" "$PL_OTHER:x:1001:" >>"$r/etc/group"
}

# pl_image_deb: the .deb in /xt/deb, dpkg (and its dpkg-deb, dpkg-split, dpkg-query) with what it runs (GNU tar: dpkg-deb gives it options
# busybox's lacks; busybox has sh, rm, diff and start-stop-daemon), a dpkg database holding this machine's entries of the packages the .deb depends
# on (their libraries are copied in: the ldd closure of the package's plugins).
pl_image_deb() {
    local r deb tmp p lib
    r=$(img_root domu)
    deb=$TOP/build/deb/${PL_PKG}_$(cat "$TOP/VERSION")_$(dpkg --print-architecture).deb
    [ -f "$deb" ] || { echo "build-images: $deb missing (make deb): the domU gets no plugin" >&2; return 0; }
    img_file domu "$deb" "/xt/deb/$(basename "$deb")"
    # (busybox's dpkg and dpkg-deb applets are symlinks to it: cp would write through them.)
    rm -f "$r/usr/bin/dpkg" "$r/usr/bin/dpkg-deb" "$r/usr/bin/dpkg-split" "$r/usr/bin/dpkg-query" "$r/usr/bin/tar" "$r/usr/sbin/ldconfig"
    img_bin domu /usr/bin/dpkg /usr/bin/dpkg-deb /usr/bin/dpkg-split /usr/bin/dpkg-query /usr/bin/tar
    img_file domu /sbin/ldconfig /usr/sbin/ldconfig
    mkdir -p "$r/var/lib/dpkg/info" "$r/var/lib/dpkg/updates" "$r/var/lib/dpkg/triggers" "$r/etc/dpkg"
    : >"$r/var/lib/dpkg/available"
    : >"$r/var/lib/dpkg/status"
    # The dependencies' closure: dpkg checks the installed packages' own dependencies too.
    local todo seen="" arch; arch=$(dpkg --print-architecture)
    todo=$(dpkg-deb -f "$deb" Depends)
    while [ -n "$todo" ]; do
        p=$(echo "$todo" | tr ',|' '\n\n' | sed 's/^ *//; s/[ (:].*//' | grep . | while read -r q; do
            case " $seen " in *" $q "*) ;; *) echo "$q" ;; esac; done | sort -u)
        todo=""
        for q in $p; do
            seen="$seen $q"
            st=$(dpkg-query -s "$q:$arch" 2>/dev/null || dpkg-query -s "$q" 2>/dev/null) || continue
            echo "$st" | grep -q '^Status: install ok installed' || continue
            printf '%s\n\n' "$st" >>"$r/var/lib/dpkg/status"
            : >"$r/var/lib/dpkg/info/$q:$arch.list" # (their files are not dpkg's here)
            todo="$todo,$(echo "$st" | sed -n 's/^\(Pre-\)\?Depends: //p' | tr '\n' ',')"
        done
    done
    tmp=$(mktemp -d) && dpkg-deb -x "$deb" "$tmp" || return 1
    for lib in $(ldd "$tmp"/usr/lib/*/alsa-lib/*.so | sed -n 's/.*=> \(\/[^ ]*\).*/\1/p'); do
        [ -e "$r$lib" ] || img_file domu "$lib"
    done
    rm -rf "$tmp"
}

# pl_as USER CMD: the domU shell command that runs CMD (no single quotes in it) as USER.
pl_as() { echo "su -s /bin/sh $1 -c '$2'"; }
pl_user() { pl_as "$PL_USER" "$1"; }

# pl_grant_audio: the effect of conf/90-pcm-xen.rules (GROUP="audio", MODE="0660") on the three devices.
pl_grant_audio() {
    in_domu "chgrp audio $PL_DEVS && chmod 0660 $PL_DEVS" || return 1
    pl_check_setup
}

# pl_installed: the domU command that checks the plugin is installed: from the package here (test/xen-arm64's
# case file 40, which copies the files in, has its own).
# (domu-init ran dpkg -i of the .deb at boot; its output is in /run/deb-install.log. /usr/bin/dpkg:
# busybox sh runs its own dpkg applet for a bare "dpkg".)
pl_installed() {
    echo "/usr/bin/dpkg -s $PL_PKG | grep -qx 'Status: install ok installed' || { tail -n 3 /run/deb-install.log; exit 1; } &&
        /usr/bin/dpkg -L $PL_PKG | grep -qx $PL_ALSA_PLUGIN_DIR/libasound_module_pcm_xen.so &&
        ls $PL_ALSA_PLUGIN_DIR/libasound_module_pcm_xen.so /etc/alsa/conf.d/50-pcm-xen.conf /usr/share/alsa/alsa.conf >/dev/null"
}

# pl_check_setup: the plugin is installed, the devices are root:audio 0660, xtuser is not root and in audio.
pl_check_setup() {
    local out
    out=$(in_domu "$(pl_installed) && stat -c '%U:%G %a' $PL_DEVS | sort -u && $(pl_user id)") ||
        { echo "$out" >&2; return 1; }
    [ "$(echo "$out" | grep -v '^uid=')" = "root:audio 660" ] ||
        { echo "owners and modes of $PL_DEVS: $(echo "$out" | grep -v '^uid=' | tr '\n' ' ')" >&2; return 1; }
    echo "$out" | grep -q "^uid=1000($PL_USER) gid=1000($PL_USER) groups=.*29(audio)" ||
        { echo "id of $PL_USER: $(echo "$out" | grep '^uid=')" >&2; return 1; }
}

# pl_kernel_driver: "MODULE hw:N": the module of the driver bound to vsnd-0 and the hw: device it made,
# from the domU's sysfs. (A xenbus driver is named after its device type, "vsnd": its module is not.)
pl_kernel_driver() {
    # (No backslashes in a command for in_domu: xenstore-write would take them as escapes.)
    in_domu "basename \$(readlink /sys/bus/xen/devices/vsnd-0/driver/module) &&
        ls /sys/bus/xen/devices/vsnd-0/sound | grep '^card[0-9][0-9]*$' | head -n 1" | grep . | sed 's/^card/hw:/' | tr '\n' ' '
}

# pl_refuses_kernel_card: with snd_xen_front bound, aplay -D xen fails, its message names the module
# and the kernel's hw: device, nothing reaches sndback and the kernel's connection is left alone.
pl_refuses_kernel_card() {
    local module hw out
    # shellcheck disable=SC2046
    set -- $(pl_kernel_driver)
    module=$1 hw=$2
    [ -n "$hw" ] || { echo "no module or card under /sys/bus/xen/devices/vsnd-0 in the domU ('$*')" >&2; return 1; }
    rm -rf "${XT_SNDBACK_OUT:?}"/*
    if out=$(in_domu -t 60 "$(pl_user "aplay -q -D xen /xt/media/u8-8000-1.wav")" 2>&1); then
        echo "aplay -D xen succeeded while $module drives the card" >&2
        return 1
    fi
    echo "$out" >"$XT_OUT/plugin-kernel-driver-message.txt"
    echo "$out" | grep -q "the kernel driver $module already drives this card as ALSA device $hw; unload it (modprobe -r $module)" ||
        { echo "expected 'the kernel driver $module already drives this card as ALSA device $hw', got: $(echo "$out" | head -n 1)" >&2
          return 1; }
    [ -z "$(ls "$XT_SNDBACK_OUT")" ] || { echo "sndback got a stream open: $(ls "$XT_SNDBACK_OUT")" >&2; return 1; }
    xt_states_are 4 4 || { echo "the kernel's connection changed: frontend $(xt_fe_state), backend $(xt_be_state)" >&2; return 1; }
}

# pl_refuses_non_member: a user outside audio cannot open /dev/xen/xenbus, and is told so.
pl_refuses_non_member() {
    local out
    if out=$(in_domu -t 60 "$(pl_as "$PL_OTHER" "aplay -q -D xen /xt/media/u8-8000-1.wav")" 2>&1); then
        echo "aplay -D xen succeeded for $PL_OTHER (not in audio)" >&2
        return 1
    fi
    echo "$out" | grep -q "cannot open xenstore (/dev/xen/xenbus)" ||
        { echo "unexpected message: $(echo "$out" | head -n 2 | tr '\n' ' ')" >&2; return 1; }
}

pl_capture() {
    local frames
    frames=$(($(xt_media "$1" frames) / 2))
    xt_expect_capture "$1" "$frames" "$(pl_user "arecord -q --fatal-errors -D xen -t raw -f $(xt_media_alsa_format "$1") \
        -r $(xt_media "$1" rate) -c $(xt_media "$1" channels) -s $frames /tmp/capture.raw")"
}

# pl_share: aplay and arecord of one card in two processes at once, as PL_USER (issue 14): the second
# process shares the card through the first one's keeper. Both bit-exact; once both ended, the card is
# disconnected (frontend Initialising, backend InitWait) and no keeper process is left in the domU.
pl_share() {
    local m=s16_le-48000-2 frames bytes want out got wav
    frames=$(($(xt_media "$m" frames) / 2))
    bytes=$((frames * $(xt_media "$m" channels) * $(xt_media "$m" bits) / 8))
    want=$(head -c "$bytes" "/xt/media/$m.raw" | xt_md5)
    cp "/xt/media/$m.wav" "$XT_CAPTURE"
    rm -rf "${XT_SNDBACK_OUT:?}"/*
    out=$(in_domu -t 120 "$(pl_user "rm -f /tmp/share.raw; aplay -q --fatal-errors -D xen /xt/media/$m.wav & a=\$!; sleep 0.3; \
        arecord -q --fatal-errors -D xen -t raw -f $(xt_media_alsa_format "$m") -r $(xt_media "$m" rate) \
        -c $(xt_media "$m" channels) -s $frames /tmp/share.raw; r=\$?; wait \$a; echo rc \$? \$r; \
        wc -c </tmp/share.raw; md5sum </tmp/share.raw")" 2>&1) || { echo "$out" | tail -n 3 >&2; return 1; }
    echo "$out" | grep -qx "rc 0 0" || { echo "aplay and arecord: $(echo "$out" | tr '\n' ' ')" >&2; return 1; }
    got=$(echo "$out" | tail -n 2 | tr '\n' ' ' | awk '{ print $1, $2 }')
    [ "$got" = "$bytes $want" ] ||
        { echo "arecord beside aplay captured (bytes md5) '$got', expected '$bytes $want'" >&2; return 1; }
    # (sndback numbers its files per OPEN over its whole run: the one file of this case, whatever its N)
    wav=$(ls "$XT_SNDBACK_OUT" | grep '^pb0.*\.wav$')
    [ "$(echo "$wav" | grep -c .)" = 1 ] || { echo "sndback wrote '$(echo $wav)' for one aplay" >&2; return 1; }
    pl_check_played "$XT_SNDBACK_OUT/$wav" "$m" || return 1
    xt_wait 20 "frontend Initialising, backend InitWait" xt_states_are 1 2 ||
        { echo "after both: frontend state $(xt_fe_state), backend state $(xt_be_state)" >&2; return 1; }
    out=$(in_domu "cat /proc/[0-9]*/comm 2>/dev/null | grep -c pcm_xen-keeper")
    [ "$out" = 0 ] || { echo "$out keeper process(es) left in the domU" >&2; return 1; }
}

# pl_check_played WAV MEDIA: sndback's WAV has MEDIA's format and its audio data byte for byte, then
# nothing but silence shorter than the card's buffer-size (aplay's padding of its last period).
# (xt_expect_playback's checks, for a file of a run that made many.)
pl_check_played() {
    local wav=$1 media=$2 fmt want got bytes pad max_pad silence
    fmt=$(wav-data --fmt "$wav") || return 1
    want="tag=$(xt_media "$media" tag) channels=$(xt_media "$media" channels) rate=$(xt_media "$media" rate) bits=$(xt_media "$media" bits)"
    [ "$fmt" = "$want" ] || { echo "$(basename "$wav") is '$fmt', expected '$want' ($media)" >&2; return 1; }
    wav-data "$wav" >/run/pl-played.raw || return 1
    bytes=$(xt_media "$media" bytes)
    pad=$(($(wc -c </run/pl-played.raw) - bytes))
    got=$(head -c "$bytes" /run/pl-played.raw | xt_md5)
    if [ "$pad" -lt 0 ] || [ "$got" != "$(xt_md5 "/xt/media/$media.raw")" ]; then
        echo "$(basename "$wav"): audio data differs from $media.raw" >&2
        cp "$wav" "$XT_OUT/plugin-mismatch-$(basename "$wav")"
        return 1
    fi
    max_pad=$(xt_card_key buffer-size) || max_pad=0
    [ "$pad" -lt "$max_pad" ] || { echo "$(basename "$wav"): $pad bytes after the audio data" >&2; return 1; }
    [ "$(xt_media "$media" format)" = u8 ] && silence='\200' || silence='\000'
    [ "$(tail -c "+$((bytes + 1))" /run/pl-played.raw | tr -d "$silence" | wc -c)" = 0 ] ||
        { echo "$(basename "$wav"): the $pad bytes after the audio data are not silence" >&2; return 1; }
}

# The cycles take turns: cycle I (0-based) plays medium I % 3 of PL_MEDIA, with aplay's read/write
# transfers in the first three of every six cycles and with -M (mmap) in the other three. A wrong
# medium (stale data of the previous run) or a lost run shows.
pl_cycle_media() { echo $PL_MEDIA | cut -d' ' -f$(($1 % 3 + 1)); }
pl_cycle_mode() { [ $(($1 % 6)) -lt 3 ] && echo rw || echo mmap; }

# pl_cycles: PL_CYCLES aplay runs in a row in the domU (one command), then one WAV per run from
# sndback, in order; /run/pl-cycles holds "CYCLE MODE MEDIA ok|why" per run for pl_cycles_of.
pl_cycles() {
    local i files n wav why
    rm -rf "${XT_SNDBACK_OUT:?}"/* /run/pl-cycles
    in_domu -t 300 "$(pl_user "i=0; while [ \$i -lt $PL_CYCLES ]; do for o in \"\" \"\" \"\" -M -M -M; do \
        set -- $PL_MEDIA; shift \$((i % 3)); \
        [ \$i -lt $PL_CYCLES ] || break; i=\$((i + 1)); \
        aplay -q --fatal-errors -D xen \$o /xt/media/\$1.wav || { echo \"cycle \$i (aplay \$o \$1) failed\"; exit 1; }; \
        done; done")" >/run/pl-cycles.out 2>&1 ||
        { tail -n 3 /run/pl-cycles.out >&2; return 1; }
    # pb0.wav is the first OPEN of sndback's run, pb0.N.wav the N-th: sort them by N.
    files=$(ls "$XT_SNDBACK_OUT" | sed 's/^pb0\.wav$/1 &/; s/^pb0\.\([0-9]*\)\.wav$/\1 &/' | sort -n | cut -d' ' -f2)
    n=$(echo "$files" | grep -c '^pb0.*\.wav$')
    [ "$n" = "$PL_CYCLES" ] || { echo "sndback wrote $n files for $PL_CYCLES runs: $(echo $files)" >&2; return 1; }
    i=0
    for wav in $files; do
        if pl_check_played "$XT_SNDBACK_OUT/$wav" "$(pl_cycle_media $i)" 2>/run/pl-why; then
            why=ok
        else
            why=$(tr '\n' ' ' </run/pl-why)
        fi
        echo "$((i + 1)) $(pl_cycle_mode $i) $(pl_cycle_media $i) $why" >>/run/pl-cycles
        i=$((i + 1))
    done
    n=$(grep -vc ' ok$' /run/pl-cycles)
    [ "$n" = 0 ] || { echo "$n of $PL_CYCLES runs not bit-exact, the first: cycle $(grep -v ' ok$' /run/pl-cycles | head -n 1)" >&2; return 1; }
}

# pl_cycles_of MODE MEDIA: the cycles of MODE and MEDIA all ran (pl_cycles saw every run's WAV) and
# were bit-exact.
pl_cycles_of() {
    local runs bad
    [ -s /run/pl-cycles ] || { echo "the cycles did not all run: $(tail -n 2 /run/pl-cycles.out 2>/dev/null | tr '\n' ' ')" >&2; return 1; }
    runs=$(grep -c "^[0-9]* $1 $2 " /run/pl-cycles)
    bad=$(grep "^[0-9]* $1 $2 " /run/pl-cycles | grep -v ' ok$' | head -n 1)
    [ "$runs" -gt 0 ] && [ -z "$bad" ] || { echo "${bad:-no cycle played $2 in $1 mode}" >&2; return 1; }
    echo "$runs runs bit-exact"
}

# pl_plugin_cases: this file's cases with their plan (test/xen-arm64's case file 40 runs them too, with
# its own PL_SETUP_WHAT and pl_check_setup, then adds its own).
PL_SETUP_WHAT="$PL_PKG installed by dpkg -i (make deb's .deb)"
pl_plugin_cases() {
    local m
    # setup, kernel-driver, kfe-unload, not-in-audio, cycles, aplay, aplay -M and arecord per medium, share
    xt_plan $((6 + 3 * $(echo $PL_MEDIA | wc -w)))
    xt_step "plugin: the udev rule's GROUP/MODE on /dev/xen/*, user $PL_USER"
    check "xen/plugin/setup: $PL_SETUP_WHAT, /dev/xen/{evtchn,gntalloc,xenbus} root:audio 0660, $PL_USER in audio" \
        pl_grant_audio || return
    # The card driven by the kernel (case files 10 and 30 leave snd_xen_front bound; alone, load it).
    if ! xt_states_are 4 4; then
        xt_plan_more 1
        xt_step "plugin: modprobe snd_xen_front (udev would, on a guest that has it)"
        check "xen/plugin/kernel-fe-load: snd_xen_front takes the card" xt_kfe_load || return
    fi
    xt_step "plugin: aplay -D xen while snd_xen_front drives the card"
    check "xen/plugin/kernel-driver: refused, the message names the module and its hw: device" pl_refuses_kernel_card
    xt_step "plugin: unbind + rmmod snd_xen_front"
    check "xen/plugin/kernel-fe-unload: snd_xen_front unbound and unloaded, the card is free" xt_kfe_unload || return
    xt_step "plugin: aplay -D xen as $PL_OTHER (not in audio)"
    check "xen/plugin/not-in-audio: $PL_OTHER is refused: cannot open /dev/xen/xenbus" pl_refuses_non_member
    xt_step "plugin: $PL_CYCLES open/play/close cycles, aplay and aplay -M of every medium"
    check "xen/plugin/cycles: $PL_CYCLES aplay -D xen runs in a row as $PL_USER, each bit-exact in sndback's WAV" pl_cycles
    for m in $PL_MEDIA; do
        check "xen/plugin/aplay-$m: aplay -D xen as $PL_USER, bit-exact in sndback's WAV" pl_cycles_of rw "$m"
    done
    for m in $PL_MEDIA; do
        check "xen/plugin/aplay-mmap-$m: aplay -M -D xen as $PL_USER, bit-exact in sndback's WAV" pl_cycles_of mmap "$m"
    done
    for m in $PL_MEDIA; do
        xt_step "plugin: arecord -D xen $m"
        check "xen/plugin/arecord-$m: arecord -D xen as $PL_USER, sndback's WAV source captured bit-exact" pl_capture "$m"
    done
    xt_step "plugin: aplay and arecord in two processes at once (one card shared)"
    check "xen/plugin/share: aplay and arecord -D xen in two processes of $PL_USER at once, both bit-exact; then the card disconnected, no keeper left" pl_share
}

run_cases() { pl_plugin_cases; }
