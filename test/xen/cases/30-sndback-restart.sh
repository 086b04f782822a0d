# Case 3: sndback killed (SIGKILL) and restarted in dom0 while the domU keeps running with
# snd_xen_front loaded. No module reload may be needed: the new sndback must take the card over and
# the kernel frontend's next aplay must play bit-exact. Linux's frontend answers a backend InitWait
# seen after a connection by tearing down and publishing new rings, then Initialised; a backend that
# maps the rings it finds instead races with that. If the aplay fails, one more line says whether
# unbinding and reloading snd_xen_front recovers.
# The restarted sndback advertises narrower limits, so the hw_params dump also proves that the
# kernel's hw rules take sndback's HW_PARAM_QUERY answers. Then sndback is stopped cleanly (SIGTERM)
# and the default one restored for the case files that follow.

# Narrower than the card (test/default-card.spec), still holding the s16_le and u8 test media.
SRS_LIMITS="--channels=1:6 --rates=8000,44100,48000 --formats=u8,s16_le,s32_le"

srs_domu_alive() {
    [ "$(xt_domid)" = "$(xt_domu_id)" ] || { echo "domain $XT_DOMU is gone or has a new id" >&2; return 1; }
    in_domu true
}

srs_kill() {
    xt_sndback_kill KILL || return 1
    srs_domu_alive
}

# srs_restart [ARGS...]: starts sndback, which must take the card over; both ends end Connected.
srs_restart() {
    xt_backend_takes_card sndback xt_sndback_start "$@" && xt_wait_connected 30
}

srs_reload_and_play() {
    xt_kfe_unload && xt_kfe_load && xt_kfe_play s16_le-48000-2
}

srs_clean_restart() {
    xt_sndback_kill TERM && srs_restart
}

srs_dump_is_narrowed() {
    xt_kfe_dump u8-8000-1 sndback-restart-dump-hw-params.txt && xt_kfe_dump_formats_are u8,s16_le,s32_le &&
        xt_kfe_dump_has CHANNELS "\[1 6\]" && xt_kfe_dump_has RATE "\[8000 48000\]"
}

run_cases() {
    xt_plan 6   # kill, reconnect, aplay, dump, clean-stop, restored-aplay (+ setup when alone)
    if ! xt_states_are 4 4; then
        xt_plan_more 1
        xt_step "sndback-restart: load snd_xen_front"
        check "xen/sndback-restart/setup: snd_xen_front loaded and connected" xt_kfe_load || return
    fi
    xt_step "sndback-restart: kill -9 sndback"
    check "xen/sndback-restart/kill: sndback SIGKILLed, the domU keeps running" srs_kill || return
    xt_step "sndback-restart: start sndback again ($SRS_LIMITS)"
    # shellcheck disable=SC2086
    check "xen/sndback-restart/reconnect: a new sndback takes over the kernel frontend, no module reload" \
        srs_restart $SRS_LIMITS || return
    xt_step "sndback-restart: aplay"
    if ! check "xen/sndback-restart/aplay: bit-exact after the restart, no module reload" xt_kfe_play s16_le-48000-2; then
        # Says whether a module reload would have saved the day (a line only in this case).
        xt_step "sndback-restart: unbind + reload snd_xen_front after the failure"
        check "xen/sndback-restart/aplay-after-reload: bit-exact once snd_xen_front is reloaded" srs_reload_and_play
    fi
    xt_step "sndback-restart: aplay --dump-hw-params"
    check "xen/sndback-restart/dump-hw-params: the restarted sndback's narrower limits reach the kernel's hw rules" \
        srs_dump_is_narrowed
    xt_step "sndback-restart: SIGTERM, default sndback again"
    check "xen/sndback-restart/clean-stop: sndback stopped with SIGTERM, the default one reconnects" \
        srs_clean_restart
    check "xen/sndback-restart/restored-aplay: bit-exact with the default sndback" xt_kfe_play u8-8000-1
}
