# Case 6: the facts README's "One card, several processes" design rests on, on real Xen. handoff-probe
# (test/xen/handoff-probe.c), as the plugin's non-root user in the domU:
#   - a holder shares a page with dom0, binds an event channel for it, forks a keeper child (which inherits
#     the page's mapping) and serves an abstract socket;
#   - a process of another user connecting there is refused before any descriptor is sent;
#   - a taker of the same user receives the gntalloc and evtchn descriptors: the share does not map through
#     the gntalloc one (libxengnttab drops it from the file once mapped); the holder is then killed (SIGKILL);
#   - the keeper writes its mark; dom0 maps the grant afresh and sees it (the grant outlived its maker in the
#     child's mapping), binds the port, and events go both ways through the taker's passed descriptor;
#   - once the keeper exits, the grant no longer maps with its contents: it ended with its last mapping.
HO_USER=xtuser HO_OTHER=xtother     # made by case 40's image (uid 1000 in audio, uid 1001 not)
HO_DIR=/tmp/handoff
HO_DEVS="/dev/xen/evtchn /dev/xen/gntalloc /dev/xen/xenbus"

image_domu() { img_bin domu --to /xt/bin "$BUILD/test-xen/bin/handoff-probe"; }
image_dom0() { img_bin dom0 --to /xt/bin "$BUILD/test-xen/bin/handoff-probe"; }

ho_as() { echo "su -s /bin/sh $1 -c '$2'"; }

# ho_report OUT: the probe's PASS/FAIL lines into the results.
ho_report() { echo "$1" | grep -E '^(PASS|FAIL): ' | sed 's#^\(PASS\|FAIL\): #\1: xen/#' | tee -a "$XT_RESULTS"; }

ho_file() { in_domu "cat $HO_DIR/$1 2>/dev/null"; }

run_cases() {
    local info gref port out d rc
    xt_plan 14   # setup, other-user, keeper-survives, 4 of the peer, 6 of the taker, gone
    d=$(xt_domu_id)
    xt_step "handoff: holder (as $HO_USER)"
    in_domu "chgrp audio $HO_DEVS && chmod 0660 $HO_DEVS && rm -rf $HO_DIR && mkdir -m 1777 $HO_DIR &&
        { $(ho_as $HO_USER "/xt/bin/handoff-probe hold t1 $HO_DIR") </dev/null >$HO_DIR/hold.out 2>&1 & }
        i=0; until [ -s $HO_DIR/hold.info ]; do i=\$((i + 1)); [ \$i -gt 200 ] && break; sleep 0.1; done" ||
        { fail "xen/handoff/setup: no domU answer"; return; }
    info=$(ho_file hold.info)
    gref=${info% *} port=${info#* }
    case "$gref:$port" in
        *[!0-9:]* | :* | *:) fail "xen/handoff/setup: the holder gave no grant and port ('$info'; $(ho_file hold.out | tr '\n' ' '))"; return ;;
    esac
    pass "xen/handoff/setup: the holder shared grant $gref and bound port $port for dom0"

    xt_step "handoff: a process of another user ($HO_OTHER) asks"
    out=$(in_domu "$(ho_as $HO_OTHER "/xt/bin/handoff-probe take t1 $HO_DIR"); echo rc=\$?" 2>&1)
    if echo "$out" | grep -q '^rc=2$' && ! echo "$out" | grep -q '^PASS' &&
        in_domu "grep -q 'refused a process of uid 1001' $HO_DIR/hold.out"; then
        pass "xen/handoff/other-user-refused: uid 1001 got no descriptor, the holder says it refused uid 1001"
    else
        fail "xen/handoff/other-user-refused: $(echo "$out" | tr '\n' ' '); holder: $(ho_file hold.out | tr '\n' ' ')"
    fi

    xt_step "handoff: taker (as $HO_USER), then the holder killed with SIGKILL"
    in_domu "{ $(ho_as $HO_USER "/xt/bin/handoff-probe take t1 $HO_DIR") </dev/null >$HO_DIR/take.out 2>&1; echo \$? >$HO_DIR/take.rc; } &
        i=0; until [ -e $HO_DIR/take.ready ] || [ -e $HO_DIR/take.rc ]; do i=\$((i + 1)); [ \$i -gt 200 ] && break; sleep 0.1; done
        pid=\$(cat $HO_DIR/hold.pid) && kill -KILL \$pid || exit 1
        i=0; while kill -0 \$pid 2>/dev/null; do i=\$((i + 1)); [ \$i -gt 100 ] && exit 1; sleep 0.1; done
        : >$HO_DIR/holder-dead; : >$HO_DIR/keeper.write
        i=0; until [ -e $HO_DIR/keeper.wrote ]; do i=\$((i + 1)); [ \$i -gt 100 ] && exit 2; sleep 0.1; done"
    case $? in
        0) pass "xen/handoff/keeper-survives: the holder died of SIGKILL, its fork()ed keeper wrote into the page" ;;
        2) fail "xen/handoff/keeper-survives: the keeper did not write within 10 s of the holder's death" ;;
        *) fail "xen/handoff/keeper-survives: the holder did not die of SIGKILL within 10 s" ;;
    esac

    xt_step "handoff: dom0 maps the grant and binds the port after the holder's death"
    out=$(timeout 60 /xt/bin/handoff-probe peer "$d" "$gref" "$port" 2>&1)
    rc=$?
    ho_report "$out"
    [ "$rc" = 0 ] || echo "$out" | grep -q '^FAIL' || fail "xen/handoff/peer: exited $rc: $(echo "$out" | tail -n 2 | tr '\n' ' ')"

    xt_step "handoff: the taker and the keeper exit; the grant must end"
    in_domu ": >$HO_DIR/take.exit; : >$HO_DIR/keeper.exit
        i=0; until [ -s $HO_DIR/take.rc ]; do i=\$((i + 1)); [ \$i -gt 300 ] && break; sleep 0.1; done
        pid=\$(cat $HO_DIR/keeper.pid); i=0; while kill -0 \$pid 2>/dev/null; do i=\$((i + 1)); [ \$i -gt 300 ] && break; sleep 0.1; done"
    out=$(ho_file take.out)
    ho_report "$out"
    rc=$(ho_file take.rc)
    [ "$rc" = 0 ] || echo "$out" | grep -q '^FAIL' || fail "xen/handoff/take: exited '${rc:-never}': $(echo "$out" | tail -n 2 | tr '\n' ' ')"
    out=$(timeout 30 /xt/bin/handoff-probe gone "$d" "$gref" 2>&1)
    ho_report "$out"
    echo "$out" | grep -qE '^(PASS|FAIL)' || fail "xen/handoff/gone: no result: $(echo "$out" | tail -n 2 | tr '\n' ' ')"
}
