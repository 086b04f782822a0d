# make bench-xen (not a test: run-cases runs bench-* case files only when XT_ONLY names them): the
# plugin (xen_raw, root, the installed package) and the kernel's snd_xen_front (hw:0,0) take turns in
# the PV domU against sndback in dom0, on the same audio (5 s of S16_LE 48 kHz stereo noise, made in
# the domU: emulation is slow, and the case file's bound is 600 s), with 4-period buffers. Figures go to $XT_OUT/bench.txt, one line each:
#   tp PERIOD DRIVER MS MS MS      aplay's wall time, 3 runs, sndback free-running (--clock=none)
#   cpu PERIOD DRIVER SECONDS      the domU's CPU seconds (xl list) over one 5 s run at sndback's clock
# test/xen/bench-xen turns them into bench/results-xen.md. One PASS line says the run completed.
# The domU's image (aplay, snd_xen_front, the package) is what case files 10 and 40 put in it.

BX_PERIODS="64 256 1024 4096"
BX_CPU_PERIODS="64 1024"

# bx_time DEVICE PERIOD: aplay's wall time in ms (the domU's uptime, 10 ms steps), or "failed".
bx_time() {
    local out
    out=$(in_domu -t 300 "s=\$(cut -d' ' -f1 /proc/uptime); aplay -q -D $1 -t raw -f S16_LE -r 48000 -c 2 \
        --period-size=$2 --buffer-size=$((4 * $2)) /tmp/bench.raw >/dev/null 2>/tmp/bench.err || \
        { tail -n 2 /tmp/bench.err; exit 1; }; \
        e=\$(cut -d' ' -f1 /proc/uptime); echo \$s \$e | awk '{ printf \"%d\", (\$2 - \$1) * 1000 }'" 2>/dev/null) ||
        { echo "# $1 period $2: $(echo "$out" | tr '\n' ' ')" >>"$XT_OUT/bench-errors.txt"; out=failed; }
    echo "$out" | tr -d '\n'
}

# bx_cpu DEVICE PERIOD: the domU's CPU seconds over one 5 s run at the backend's clock.
bx_cpu() {
    local a b
    a=$(xl list "$XT_DOMU" | awk 'NR == 2 { print $6 }')
    in_domu -t 300 "aplay -q -D $1 -t raw -f S16_LE -r 48000 -c 2 --period-size=$2 --buffer-size=$((4 * $2)) \
        /tmp/bench.raw >/dev/null 2>/tmp/bench.err || { tail -n 2 /tmp/bench.err; exit 1; }" >/run/bench.out 2>&1 ||
        { echo "# cpu $1 period $2: $(tr '\n' ' ' </run/bench.out)" >>"$XT_OUT/bench-errors.txt"; echo failed; return; }
    b=$(xl list "$XT_DOMU" | awk 'NR == 2 { print $6 }')
    awk -v a="$a" -v b="$b" 'BEGIN { printf "%.1f", b - a }'
}

# bx_round KIND: every period size for both drivers, the kernel's first (loaded, then unloaded: the
# plugin refuses a card the kernel drives).
bx_round() {
    local p t drv
    for drv in kernel plugin; do
        if [ $drv = kernel ]; then xt_kfe_load || { echo "$1 - kernel load-failed" >>"$XT_OUT/bench.txt"; continue; }; fi
        for p in $([ "$1" = tp ] && echo $BX_PERIODS || echo $BX_CPU_PERIODS); do
            xt_step "bench: $1 $drv $p"
            dev=$([ $drv = kernel ] && echo hw:0,0 || echo xen_raw)
            if [ "$1" = tp ]; then
                t="$(bx_time $dev "$p") $(bx_time $dev "$p") $(bx_time $dev "$p")"
            else
                t=$(bx_cpu $dev "$p")
            fi
            echo "$1 $p $drv $t" >>"$XT_OUT/bench.txt"
        done
        if [ $drv = kernel ]; then xt_kfe_unload || echo "$1 - kernel unload-failed" >>"$XT_OUT/bench.txt"; fi
    done
}

run_cases() {
    # (bench.txt and bench-errors.txt start empty: test/xen/run makes the out directory anew)
    in_domu -t 60 "head -c 960000 /dev/urandom >/tmp/bench.raw" || { fail "xen/bench: no audio in the domU"; return; }
    xt_sndback_kill
    xt_sndback_start --clock=none --discard || { fail "xen/bench: sndback --clock=none did not start"; return; }
    xt_wait 20 "sndback at InitWait" xt_be_initwait
    bx_round tp
    xt_sndback_kill
    xt_sndback_start --discard || { fail "xen/bench: sndback did not start"; return; }
    xt_wait 20 "sndback at InitWait" xt_be_initwait
    bx_round cpu
    pass "xen/bench: $(grep -c . "$XT_OUT/bench.txt") figures in bench.txt, $(grep -c failed "$XT_OUT/bench.txt") failed runs"
}
