# make bench-xen, part 2 (see bench-xen.sh): the smallest period that plays 60 s without an xrun
# when sndback answers every request 0, 1 or 5 ms late (--delay-ms), for the plugin (xen_raw) and
# the kernel's snd_xen_front (hw:0,0), at sndback's clock, with 4-period buffers; period sizes
# 64, 256, 1024, 4096, from the smallest up: the first that plays the whole 60 s is the answer
# (from the previous delay's answer up: a later backend cannot make a smaller period play).
# An xrun is either end's: aplay --fatal-errors ends at the frontend's first underrun, and sndback
# --fail-after-gap fails every WRITE from its first gap on (its queue ran dry while running: a
# dropout a frontend whose writes run ahead of the backend never reports as an xrun of its own).
# So a failing attempt ends at its first xrun, and only the passing one costs the full 60 s
# (about 6 x 62 s in all). Lines in $XT_OUT/bench.txt:
#   late DELAY_MS DRIVER SMALLEST_PERIOD_OR_none (or out-of-time: BL_BUDGET spent before an answer)
#   late-try DELAY_MS DRIVER PERIOD RESULT SECONDS   every attempt: ok, gap (sndback's: aplay's write
#                                                   failed with EIO), underrun (aplay's) or
#                                                   error (anything else); SECONDS it lasted (domU clock)
BL_PERIODS="64 256 1024 4096"
BL_SECS=60
BL_BUDGET=500   # seconds of this case file (run-cases kills it at 600): no attempt starts after that

bl_uptime() { cut -d' ' -f1 /proc/uptime | cut -d. -f1; }

# bl_try DEVICE PERIOD: one attempt; prints "RESULT SECONDS", returns 0 when it played through.
bl_try() {
    local out rc
    out=$(in_domu -t $((BL_SECS + 40)) "s=\$(cut -d' ' -f1 /proc/uptime); aplay -q --fatal-errors -D $1 -t raw \
        -f S16_LE -r 48000 -c 2 --period-size=$2 --buffer-size=$((4 * $2)) /tmp/bench60.raw >/dev/null 2>/tmp/bench.err; \
        rc=\$?; e=\$(cut -d' ' -f1 /proc/uptime); echo \$s \$e | awk '{ print \$2 - \$1 }'; \
        tail -n 2 /tmp/bench.err; exit \$rc" 2>&1)
    rc=$?
    [ "$rc" = 0 ] && { echo "ok $(echo "$out" | head -n 1)"; return 0; }
    echo "# late $1 period $2 (status $rc): $(echo "$out" | tr '\n' ' ')" >>"$XT_OUT/bench-errors.txt"
    # (EIO comes from nothing but sndback's --fail-after-gap here; the plugin may then report an underrun too.)
    if echo "$out" | grep -q 'Input/output error'; then echo "gap $(echo "$out" | head -n 1)"
    elif echo "$out" | grep -q 'underrun'; then echo "underrun $(echo "$out" | head -n 1)"
    else echo "error $(echo "$out" | head -n 1 | tr -cd '0-9.')"; fi
    return 1
}

# bl_smallest DELAY DRIVER DEVICE FROM: the first period size of BL_PERIODS from FROM up that plays,
# or none.
bl_smallest() {
    local p r
    for p in $BL_PERIODS; do
        [ "$p" -lt "$4" ] && continue
        xt_step "bench: late $1 ms $2 $p" >&2 # (stdout is the answer)
        if [ $(($(bl_uptime) - BL_START)) -gt "$BL_BUDGET" ]; then
            echo "late-try $1 $2 $p not-tried -" >>"$XT_OUT/bench.txt" # (out of time: not a result)
            echo "out-of-time"
            return
        fi
        r=$(bl_try "$3" "$p")
        echo "late-try $1 $2 $p $r" >>"$XT_OUT/bench.txt"
        case "$r" in ok*) echo "$p"; return ;; esac
    done
    echo none
}

run_cases() {
    local d r kfrom pfrom n=0
    xt_plan 1   # one line: the figures written (they are measurements, not cases)
    BL_START=$(bl_uptime)
    # 60 s of audio: bench-xen.sh's 5 s of noise, repeated (urandom is slow under emulation).
    in_domu -t 60 "[ -s /tmp/bench.raw ] || head -c 960000 /dev/urandom >/tmp/bench.raw; \
        for i in \$(seq $((BL_SECS / 5))); do cat /tmp/bench.raw; done >/tmp/bench60.raw" ||
        { fail "xen/bench-late: no audio in the domU"; return; }
    # A backend answering later cannot make a smaller period play: each delay's search starts at the
    # previous delay's answer (saves about a minute of attempts that would fail).
    kfrom=64 pfrom=64
    for d in 0 1 5; do
        xt_sndback_kill
        xt_sndback_start --discard --delay-ms="$d" --fail-after-gap ||
            { fail "xen/bench-late: sndback --delay-ms=$d did not start"; return; }
        xt_wait 20 "sndback at InitWait" xt_be_initwait
        if xt_kfe_load; then
            r=$(bl_smallest "$d" kernel hw:0,0 "$kfrom")
            echo "late $d kernel $r" >>"$XT_OUT/bench.txt"
            case "$r" in [0-9]*) kfrom=$r ;; *) kfrom=99999 ;; esac
            xt_kfe_unload || echo "late $d kernel unload-failed" >>"$XT_OUT/bench.txt"
        else
            echo "late $d kernel load-failed" >>"$XT_OUT/bench.txt"
        fi
        r=$(bl_smallest "$d" plugin xen_raw "$pfrom")
        echo "late $d plugin $r" >>"$XT_OUT/bench.txt"
        case "$r" in [0-9]*) pfrom=$r ;; *) pfrom=99999 ;; esac
        n=$((n + 2))
    done
    in_domu "rm -f /tmp/bench60.raw"
    pass "xen/bench-late: $n figures in bench.txt"
}
