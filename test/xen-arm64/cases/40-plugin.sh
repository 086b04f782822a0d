# The plugin's cases on arm64: test/xen/cases/40-plugin.sh's functions (the kernel driver refused, a user
# outside audio refused, 20 aplay/aplay -M cycles of every medium bit-exact, arecord of every medium
# bit-exact; all as the non-root member of audio, with the udev rule's GROUP/MODE on /dev/xen/*), plus a
# kill -9 of a playing aplay followed by an aplay that must play bit-exact.
# Differences from x86: the plugin is copied into the image at the arm64 multiarch path (no arm64 .deb and
# dpkg here), so the setup case checks the installed files instead of dpkg's record.
if [ -f /xt/lib/40-plugin.sh ]; then
    . /xt/lib/40-plugin.sh          # in dom0 (build-images copies it there)
else
    . "$XT_SRC/cases/40-plugin.sh"  # on the host, for the image hooks
fi

PL_ALSA_PLUGIN_DIR=/usr/lib/aarch64-linux-gnu/alsa-lib
PL_CONF=/usr/share/alsa/alsa.conf.d/50-pcm-xen.conf   # where the package puts it (debian/*.install)

image_domu() {
    local r
    r=$(img_root domu)
    pl_image_common
    # What the package installs (debian/libasound2-plugin-xen.install): both plugins and the configuration.
    if [ -f "$BUILD/libasound_module_pcm_xen.so" ] && [ -f "$BUILD/libasound_module_ctl_xen.so" ]; then
        img_bin domu --to "$PL_ALSA_PLUGIN_DIR" "$BUILD/libasound_module_pcm_xen.so" "$BUILD/libasound_module_ctl_xen.so"
        img_file domu "$TOP/conf/50-pcm-xen.conf" "$PL_CONF"
        # (and its link in /etc/alsa/conf.d, which alsa.conf reads: debian/libasound2-plugin-xen.links)
        mkdir -p "$r/etc/alsa/conf.d"
        ln -s "$PL_CONF" "$r/etc/alsa/conf.d/50-pcm-xen.conf"
    else
        echo "build-images: $BUILD/libasound_module_{pcm,ctl}_xen.so missing: the domU gets no plugin" >&2
    fi
}

# pl_installed: the plugins' files are in place (copied in: no arm64 .deb); x86's pl_check_setup does the rest.
pl_installed() {
    echo "ls $PL_ALSA_PLUGIN_DIR/libasound_module_pcm_xen.so $PL_ALSA_PLUGIN_DIR/libasound_module_ctl_xen.so /etc/alsa/conf.d/50-pcm-xen.conf /usr/share/alsa/alsa.conf >/dev/null"
}

# pl_kill_recovery: as xtuser, an endless aplay -D xen (of /dev/zero) is killed with SIGKILL while it
# plays (it must still be running after 3 s); the next aplay -D xen of s16_le-48000-2 must play, and
# sndback must hold two streams: the killed one (some audio data) and the next one, bit-exact.
pl_kill_recovery() {
    local out files
    rm -rf "${XT_SNDBACK_OUT:?}"/*
    out=$(in_domu -t 90 "$(pl_user "aplay -q -D xen -t raw -f S16_LE -r 48000 -c 2 /dev/zero 2>/tmp/killed.err & p=\$!; \
        sleep 3; kill -0 \$p || { echo \"the first aplay ended before the kill: \$(cat /tmp/killed.err)\"; exit 1; }; \
        kill -9 \$p; wait \$p; echo \"first aplay status \$?\"; \
        aplay -q --fatal-errors -D xen /xt/media/s16_le-48000-2.wav")" 2>&1) ||
        { echo "$out" | tail -n 3 >&2; return 1; }
    echo "$out" | grep -q "^first aplay status 137$" || { echo "the first aplay was not killed by SIGKILL: $out" >&2; return 1; }
    # sndback numbers its files per OPEN of its whole run (pb0.N.wav): the two of this case, in order.
    files=$(ls "$XT_SNDBACK_OUT" | sed 's/^pb0\.wav$/1 &/; s/^pb0\.\([0-9]*\)\.wav$/\1 &/' | sort -n | cut -d' ' -f2)
    set -- $files
    [ $# = 2 ] || { echo "sndback wrote '$*', expected two streams: the killed aplay's and the next one's" >&2; return 1; }
    [ "$(wav-data "$XT_SNDBACK_OUT/$1" | wc -c)" -gt 0 ] ||
        { echo "the killed aplay's stream ($1) holds no audio data: it was not playing" >&2; return 1; }
    pl_check_played "$XT_SNDBACK_OUT/$2" s16_le-48000-2
}

PL_SETUP_WHAT="the plugins in $PL_ALSA_PLUGIN_DIR, $PL_CONF"
run_cases() {
    pl_plugin_cases
    xt_plan_more 1
    xt_step "plugin: kill -9 of a playing aplay, then aplay again"
    check "xen/plugin/kill-9: aplay -D xen killed while playing, the next aplay -D xen plays bit-exact" pl_kill_recovery
}
