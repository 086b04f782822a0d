# make bench-xen, part 2 (see bench-xen.sh): the smallest period that plays without an xrun when
# sndback answers every request 0, 1 or 5 ms late (--delay-ms), for the plugin (xen_raw) and the
# kernel's snd_xen_front (hw:0,0): aplay --fatal-errors of 5 s of audio (not the 60 s issue 12
# names: emulation makes every run slow, and a case file is bounded to 600 s) with 4-period
# buffers, period sizes from 64 up, at sndback's clock. Lines in $XT_OUT/bench.txt:
#   late DELAY_MS DRIVER SMALLEST_PERIOD_OR_none
BL_PERIODS="64 256 1024 4096"

# bl_plays DEVICE PERIOD: 5 s played through without an xrun (aplay --fatal-errors ends at the first).
bl_plays() {
    in_domu -t 120 "aplay -q --fatal-errors -D $1 -t raw -f S16_LE -r 48000 -c 2 --period-size=$2 \
        --buffer-size=$((4 * $2)) /tmp/bench.raw >/dev/null 2>/tmp/bench.err" >/dev/null 2>&1
}

bl_smallest() { # DEVICE: the first period size of BL_PERIODS that plays, or none
    local p
    for p in $BL_PERIODS; do
        xt_step "bench: late $1 $p" >&2 # (stdout is the answer)
        bl_plays "$1" "$p" && { echo "$p"; return; }
    done
    echo none
}

run_cases() {
    local d n=0
    in_domu -t 60 "[ -s /tmp/bench.raw ] || head -c 960000 /dev/urandom >/tmp/bench.raw" ||
        { fail "xen/bench-late: no audio in the domU"; return; }
    for d in 0 1 5; do
        xt_sndback_kill
        xt_sndback_start --discard --delay-ms="$d" || { fail "xen/bench-late: sndback --delay-ms=$d did not start"; return; }
        xt_wait 20 "sndback at InitWait" xt_be_initwait
        if xt_kfe_load; then
            echo "late $d kernel $(bl_smallest hw:0,0)" >>"$XT_OUT/bench.txt"
            xt_kfe_unload || echo "late $d kernel unload-failed" >>"$XT_OUT/bench.txt"
        else
            echo "late $d kernel load-failed" >>"$XT_OUT/bench.txt"
        fi
        echo "late $d plugin $(bl_smallest xen_raw)" >>"$XT_OUT/bench.txt"
        n=$((n + 2))
    done
    pass "xen/bench-late: $n figures in bench.txt"
}
