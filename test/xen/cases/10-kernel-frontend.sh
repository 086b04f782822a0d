# Case 1: the Linux kernel's own sndif frontend (snd_xen_front) in the domU against our sndback in dom0.
# Playback and capture of every test medium bit-exact, the hw_params space the kernel's hw rules build
# with sndback's HW_PARAM_QUERY answers, and a module unload/reload (sndback's reconnect path).

image_domu() {
    img_bin domu /usr/bin/aplay /usr/bin/arecord
    img_tree domu /usr/share/alsa
    img_module domu snd_xen_front
}

run_cases() {
    local m
    xt_plan 11   # load, 3 aplay, 3 arecord, dump, unload, reload, reload-aplay
    if ! xt_states_are 1 2; then
        fail "xen/kernel-fe: the card is not waiting for a frontend (frontend $(xt_fe_state), backend $(xt_be_state)); nothing to test"
        return
    fi
    xt_step "kernel-fe: modprobe snd_xen_front"
    check "xen/kernel-fe/load: snd_xen_front connects to sndback, ALSA card 0 appears" xt_kfe_load || return
    for m in s16_le-48000-2 s32_le-44100-6 u8-8000-1; do
        xt_step "kernel-fe: aplay $m"
        check "xen/kernel-fe/aplay-$m: bit-exact in sndback's WAV" xt_kfe_play "$m"
    done
    for m in s16_le-48000-2 s32_le-44100-6 u8-8000-1; do
        xt_step "kernel-fe: arecord $m"
        check "xen/kernel-fe/arecord-$m: sndback's WAV source captured bit-exact" xt_kfe_capture "$m"
    done
    xt_step "kernel-fe: aplay --dump-hw-params"
    if xt_kfe_dump u8-8000-1 kernel-fe-dump-hw-params.txt; then
        check "xen/kernel-fe/dump-hw-params: the card's formats, channels, rates and buffer-size" xt_kfe_dump_is_card
    else
        fail "xen/kernel-fe/dump-hw-params: $(tail -n 2 /run/kfe-dump.txt | tr '\n' ' ')"
    fi
    xt_step "kernel-fe: rmmod snd_xen_front"
    check "xen/kernel-fe/unload: unbind + rmmod snd_xen_front, sndback back to InitWait" xt_kfe_unload
    xt_step "kernel-fe: modprobe snd_xen_front again"
    check "xen/kernel-fe/reload: snd_xen_front reconnects" xt_kfe_load &&
        check "xen/kernel-fe/reload-aplay: bit-exact after the reconnect" xt_kfe_play s16_le-48000-2
}
