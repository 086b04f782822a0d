# make bench-xen (not a test: run-cases runs bench-* case files only when XT_ONLY names them): the
# plugin (xen_raw, root, the installed package) and the kernel's snd_xen_front (hw:0,0) take turns in
# the PV domU against sndback in dom0, on the same audio (5 s of S16_LE 48 kHz stereo noise, made in
# the domU: emulation is slow, and the case file's bound is 600 s), with 4-period buffers. Figures go to $XT_OUT/bench.txt, one line each:
#   tp PERIOD DRIVER MS MS MS      aplay's wall time, 3 runs, sndback free-running (--clock=none)
#   cpu PERIOD DRIVER SECONDS      the domU's CPU seconds (xl list) over one 5 s run at sndback's clock
#   lat DRIVER MS x20              open-to-first-sound latency (bx_latency below), 20 runs
# test/xen/bench-xen turns them into bench/results-xen.md. One PASS line says the run completed.
# The domU's image (aplay, snd_xen_front, the package) is what case files 10 and 40 put in it.

BX_PERIODS="64 256 1024 4096"
BX_CPU_PERIODS="64 1024"

# bx_time DEVICE PERIOD: aplay's wall time in ms for the first 2.5 s of the noise (/tmp/tp.raw: 24 runs,
# half of them at 64 frames, 9 s each at 5 s; the whole bench must stay within 10 minutes) (the domU's uptime, 10 ms steps), or "failed".
bx_time() {
    local out
    out=$(in_domu -t 300 "s=\$(cut -d' ' -f1 /proc/uptime); aplay -q -D $1 -t raw -f S16_LE -r 48000 -c 2 \
        --period-size=$2 --buffer-size=$((4 * $2)) /tmp/tp.raw >/dev/null 2>/tmp/bench.err || \
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

# Open-to-first-sound latency, on one clock (dom0's CLOCK_MONOTONIC): from dom0's go to sndback's
# receipt of TRIGGER START (sndback's clock plays the queued audio from that moment on). A shell in
# the domU waits in a xenstore watch on data/bench/go and, once dom0 writes it, execs aplay of one
# buffer of audio (4096 frames, 1024-frame periods: aplay starts the PCM once the buffer is full).
# dom0 reads its clock just before it writes go (bx_now); sndback --log-time stamps the START line.
# So each figure includes the xenstore watch's delivery to the domU and the exec of aplay: the same
# for both drivers (the difference between them is exact; the ratio understates it).
BX_LAT_RUNS=20

# bx_now: dom0's CLOCK_MONOTONIC in nanoseconds (the clock of sndback --log-time).
bx_now() { sed -n '/^now at /{s/^now at \([0-9]*\) nsecs.*/\1/p;q}' /proc/timer_list; }

# bx_wait_key PATH VALUE: polls (every 20 ms, at most 30 s) until xenstore's PATH holds VALUE.
bx_wait_key() {
    local n=0
    until [ "$(xenstore-read "$1" 2>/dev/null)" = "$2" ]; do
        n=$((n + 1))
        [ "$n" -gt 1500 ] && { echo "timed out after 30 s waiting for $1 = $2" >&2; return 1; }
        sleep 0.02
    done
}

# bx_latency DEVICE: BX_LAT_RUNS latencies in ms, or "failed" for a run whose START was not found.
bx_latency() {
    local key i agent log off t0 t w out=
    key=/local/domain/$(xt_domu_id)/data/bench
    log=$XT_OUT/sndback.log
    # The domU's loop: ready=i once its watch is set, then waits for go=i, then plays.
    in_domu -t $((BX_LAT_RUNS * 20)) "xenstore-write data/bench/go 0 data/bench/ready 0; i=1; \
        while [ \$i -le $BX_LAT_RUNS ]; do \
            xenstore-watch -n 2 data/bench/go | { read _; xenstore-write data/bench/ready \$i; read _; }; \
            aplay -q -D $1 -t raw -f S16_LE -r 48000 -c 2 --period-size=1024 --buffer-size=4096 /tmp/lat.raw \
                >/dev/null 2>>/tmp/lat.err || echo \"run \$i: \$(tail -n 1 /tmp/lat.err)\"; \
            xenstore-write data/bench/ended \$i; i=\$((i + 1)); \
        done" >/run/bench-lat.out 2>&1 &
    agent=$!
    i=1
    while [ "$i" -le "$BX_LAT_RUNS" ]; do
        bx_wait_key "$key/ready" "$i" 2>>"$XT_OUT/bench-errors.txt" || break
        off=$(wc -c <"$log")
        # dom0 then blocks in a watch until the domU says this run ended: no polling while it runs
        # (sndback shares dom0's one CPU). Its first event is the registration.
        rm -f /run/bench-lat.watch
        timeout 30 xenstore-watch -n 2 "$key/ended" >/run/bench-lat.watch 2>/dev/null &
        w=$!
        until [ -s /run/bench-lat.watch ] || ! kill -0 "$w" 2>/dev/null; do sleep 0.05; done
        t0=$(bx_now)
        xenstore-write "$key/go" "$i"
        wait "$w"
        # The START of this run: the first one sndback logged after the go.
        t=$(tail -c +"$((off + 1))" "$log" | sed -n 's/^sndback: \[\([0-9.]*\)\] pb0: TRIGGER start.*/\1/p' | head -n 1)
        out="$out $(awk -v s="$t" -v t0="$t0" 'BEGIN { if (s != "" && t0 != "") printf "%.1f", s * 1000 - t0 / 1e6; else print "failed" }')"
        i=$((i + 1))
    done
    wait "$agent" || echo "# latency $1: $(tr '\n' ' ' </run/bench-lat.out)" >>"$XT_OUT/bench-errors.txt"
    echo "$out"
}

# bx_latency_round: both drivers, the kernel's first, against a fresh sndback (on time, --log-time).
bx_latency_round() {
    xt_sndback_kill
    xt_sndback_start --discard --log-time || { echo "lat - sndback-failed" >>"$XT_OUT/bench.txt"; return; }
    xt_wait 20 "sndback at InitWait" xt_be_initwait
    if xt_kfe_load; then
        xt_step "bench: latency kernel"
        echo "lat kernel$(bx_latency hw:0,0)" >>"$XT_OUT/bench.txt"
        xt_kfe_unload || echo "lat - kernel unload-failed" >>"$XT_OUT/bench.txt"
    else
        echo "lat kernel load-failed" >>"$XT_OUT/bench.txt"
    fi
    xt_step "bench: latency plugin"
    echo "lat plugin$(bx_latency xen_raw)" >>"$XT_OUT/bench.txt"
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
    xt_plan 1   # one line: the figures written (they are measurements, not cases)
    # (bench.txt and bench-errors.txt start empty: test/xen/run makes the out directory anew)
    in_domu -t 60 "{ [ -s /tmp/bench.raw ] || head -c 960000 /dev/urandom >/tmp/bench.raw; } && head -c 16384 /tmp/bench.raw >/tmp/lat.raw && head -c 480000 /tmp/bench.raw >/tmp/tp.raw" ||
        { fail "xen/bench: no audio in the domU"; return; }
    bx_latency_round
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
