# Case 2: the xensim semantics tests that make sense on real Xen, run there with the same programs
# (build/xensim-tests/{xs-txn,evtchn-peer,gnt-peer}) and the same scenarios as test/xensim/test-{xenstore,
# evtchn,gnttab}: xenstore permissions and watches seen from unprivileged domUs, event channels (delivery,
# masking, coalescing, errors, a peer killed and replaced), grants between domU and dom0 (data both ways,
# wrong-domain map refused, read-only grants, unshare while mapped, unmap notifications).
# The programs give domain ids as xensim numbers them: dom1 is the test domU, dom2 a third domain; here
# they are the test domU (domain 1) and a second PV domU made for this case (domain 2).
# Sides meet through files in a directory, which two domains do not share: xt-relay copies those files
# through xenstore (dom0 is the hub). Every line a program prints is reported, prefixed xen/domN/.
# Not run here (xensim only): the raw-wire xenstore cases, the broker garbage cases, no-broker.

SEM_PROGS="xs-txn evtchn-peer gnt-peer"

sem_image() {
    local p
    for p in $SEM_PROGS; do
        if [ -x "$BUILD/xensim-tests/$p" ]; then
            img_bin "$1" --to /xt/bin "$BUILD/xensim-tests/$p"
        else
            echo "build-images: $BUILD/xensim-tests/$p missing: its cases will fail" >&2
        fi
    done
    img_file "$1" "$XT_SRC/xt-relay" /xt/bin/xt-relay
    img_file "$1" "$XT_SRC/xt-side" /xt/bin/xt-side
}
image_domu() { sem_image domu; }
image_dom0() { sem_image dom0; }

# xt_quote ARGS...: the arguments quoted for sh -c.
xt_quote() {
    local a
    for a in "$@"; do
        printf "'%s' " "$(printf '%s' "$a" | sed "s/'/'\\\\''/g")"
    done
}

# dom N CMD...: runs CMD in domain N (dom0 here, a domU through its agent), as test/xensim/lib.sh's dom.
dom() {
    local d=$1
    shift
    if [ "$d" = 0 ]; then "$@"; else in_dom "$d" "$(xt_quote "$@")"; fi
}

# ---- two-domain scenarios ---------------------------------------------------------------------------
# A scenario NAME has a directory on each side (dom0 /run/ipc/NAME, domU /tmp/ipc/NAME), a relay in each
# domain involved, and sides numbered from 1; @DIR in a side's arguments becomes its domain's directory.
SEM_SECS=90   # bound on one side (the programs bound each of their waits at 10 s)

# sem_begin NAME DOMU...: fresh directories and relays for NAME between dom0 and the given domUs.
sem_begin() {
    local name=$1 d hub=
    shift
    SEM_NAME=$name SEM_DOMUS="$*" SEM_SIDES="" SEM_KILLED=""
    rm -rf "/run/ipc/$name" /run/ipc/"$name".*
    mkdir -p "/run/ipc/$name"
    for d in "$@"; do
        timeout 5 xenstore-rm "/local/domain/$d/data/xt-ipc/$name" 2>/dev/null
        in_dom "$d" "rm -rf /tmp/ipc/$name /tmp/ipc/$name.*; mkdir -p /tmp/ipc/$name &&
            { XT_RELAY_SECS=150 xt-relay /tmp/ipc/$name data/xt-ipc/$name </dev/null >/dev/null 2>&1 & }" ||
            echo "sem: no relay in domain $d" >&2
        hub="$hub /local/domain/$d/data/xt-ipc/$name"
    done
    # shellcheck disable=SC2086
    XT_RELAY_SECS=150 xt-relay "/run/ipc/$name" $hub </dev/null >/dev/null 2>&1 &
}

# sem_side K DOMID PROG ARGS...: starts side K (in the background) in domain DOMID.
sem_side() {
    local k=$1 d=$2 prog=$3 args
    shift 3
    SEM_SIDES="$SEM_SIDES $k:$d"
    if [ "$d" = 0 ]; then
        args=$(xt_quote "$@" | sed "s#@DIR#/run/ipc/$SEM_NAME#g")
        eval "xt-side /run/ipc/$SEM_NAME.$k $SEM_SECS /xt/bin/$prog $args" &
    else
        args=$(xt_quote "$@" | sed "s#@DIR#/tmp/ipc/$SEM_NAME#g")
        in_dom "$d" "{ xt-side /tmp/ipc/$SEM_NAME.$k $SEM_SECS /xt/bin/$prog $args </dev/null >/dev/null 2>&1 & }" ||
            echo "FAIL: xen/$SEM_NAME: could not start side $k in domain $d" | tee -a "$XT_RESULTS"
    fi
}

# sem_put FILE: writes FILE into the scenario's directory (as the test scripts' put), relayed to all.
sem_put() {
    echo 1 >"/run/ipc/$SEM_NAME/.$1" && mv "/run/ipc/$SEM_NAME/.$1" "/run/ipc/$SEM_NAME/$1"
}

# sem_wait_file FILE: bounded wait (30 s) for a file some side wrote (dom0's directory gets them all).
sem_wait_file() {
    xt_wait 30 "$1 in scenario $SEM_NAME" test -e "/run/ipc/$SEM_NAME/$1"
}

# sem_read K DOMID WHAT: the side's .out/.pid file.
sem_read() {
    if [ "$2" = 0 ]; then cat "/run/ipc/$SEM_NAME.$1.$3" 2>/dev/null; else in_dom "$2" "cat /tmp/ipc/$SEM_NAME.$1.$3 2>/dev/null"; fi
}

# sem_collect K DOMID: waits (bounded) for side K to end, prints its output then "XT-RC=status" (none:
# it never ended), in one round trip.
sem_collect() {
    local base script
    if [ "$2" = 0 ]; then base=/run/ipc/$SEM_NAME.$1; else base=/tmp/ipc/$SEM_NAME.$1; fi
    script="i=0; until [ -s $base.rc ]; do i=\$((i + 1)); [ \$i -gt $((SEM_SECS * 10 + 100)) ] && break; sleep 0.1; done
        cat $base.out; echo XT-RC=\$(cat $base.rc 2>/dev/null || echo none)"
    if [ "$2" = 0 ]; then sh -c "$script"; else in_dom "$2" -t $((SEM_SECS + 20)) "$script"; fi
}

# sem_kill K DOMID: SIGKILL to side K (a victim: its exit status is not reported).
sem_kill() {
    local pid
    pid=$(sem_read "$1" "$2" pid) || { fail "xen/$SEM_NAME: side $1 has no pid to kill"; return 1; }
    SEM_KILLED="$SEM_KILLED $1"
    if [ "$2" = 0 ]; then kill -KILL "$pid"; else in_dom "$2" "kill -KILL $pid"; fi
}

# sem_kill_when FILE K DOMID: SIGKILL to side K as soon as FILE appears in its own domain's directory
# (checked there every 50 ms for at most 60 s, so no relay delay comes in between), as kill_when does.
sem_kill_when() {
    local file=$1 k=$2 d=$3 dir base
    SEM_KILLED="$SEM_KILLED $k"
    if [ "$d" = 0 ]; then dir=/run/ipc/$SEM_NAME base=/run/ipc/$SEM_NAME.$k; else dir=/tmp/ipc/$SEM_NAME base=/tmp/ipc/$SEM_NAME.$k; fi
    set -- "i=0; until [ -e $dir/$file ] && [ -s $base.pid ]; do i=\$((i + 1)); [ \$i -gt 1200 ] && exit 1; sleep 0.05; done
        kill -KILL \$(cat $base.pid)"
    if [ "$d" = 0 ]; then sh -c "$1" & else in_dom "$d" "{ $1 ; } </dev/null >/dev/null 2>&1 &"; fi
}

# sem_end: waits (bounded) for every side, reports their lines and unexpected exit statuses, stops the relays.
sem_end() {
    local side k d rc out
    for side in $SEM_SIDES; do
        k=${side%%:*} d=${side#*:}
        out=$(sem_collect "$k" "$d")
        rc=$(echo "$out" | sed -n 's/^XT-RC=//p' | tail -n 1)
        echo "$out" | grep -E '^(PASS|FAIL): ' | sed "s#^\(PASS\|FAIL\): #\1: xen/dom$d/#" | tee -a "$XT_RESULTS"
        case " $SEM_KILLED " in *" $k "*) continue ;; esac
        # As the test scripts' reap: a side that printed its FAILs exits 1; anything else gets a FAIL here.
        case "$rc" in
            0) ;;
            1) echo "$out" | grep -q '^FAIL: ' ||
                fail "xen/$SEM_NAME: side $k in domain $d exited with status 1 without a FAIL line" ;;
            *) fail "xen/$SEM_NAME: side $k in domain $d exited with status $rc: $(echo "$out" | grep -v '^XT-RC=' | tail -n 2 | tr '\n' ' ')" ;;
        esac
    done
    : >"/run/ipc/$SEM_NAME/.relay-stop"
    for d in $SEM_DOMUS; do in_dom "$d" ": >/tmp/ipc/$SEM_NAME/.relay-stop"; done
}

# ---- xenstore (test/xensim/test-xenstore: the tool cases, from the domUs' side) -----------------------
# expect NAME WANT DOM CMD...: PASS if CMD succeeds in domain DOM and prints exactly WANT.
expect() {
    local name=$1 want=$2 out
    shift 2
    if ! out=$(dom "$@" 2>&1); then
        fail "xen/xs/$name: '$*' failed: $(echo "$out" | tail -n 2 | tr '\n' ' ')"
    elif [ "$out" != "$want" ]; then
        fail "xen/xs/$name: got '$(echo "$out" | tr '\n' '|')', expected '$(echo "$want" | tr '\n' '|')'"
    else
        pass "xen/xs/$name"
    fi
}

# refused NAME MESSAGE DOM CMD...: PASS if CMD exits 1 in domain DOM and its output contains MESSAGE.
refused() {
    local name=$1 msg=$2 out rc
    shift 2
    out=$(dom "$@" 2>&1)
    rc=$?
    if [ "$rc" != 1 ]; then
        fail "xen/xs/$name: '$*' exited $rc (output: $(echo "$out" | tr '\n' ' '))"
    else
        case "$out" in
            *"$msg"*) pass "xen/xs/$name" ;;
            *) fail "xen/xs/$name: message '$(echo "$out" | tr '\n' ' ')' lacks '$msg'" ;;
        esac
    fi
}

# okay NAME DOM CMD...: PASS if CMD succeeds in domain DOM.
okay() {
    local name=$1 out
    shift
    if out=$(dom "$@" 2>&1); then pass "xen/xs/$name"; else fail "xen/xs/$name: $(echo "$out" | tail -n 2 | tr '\n' ' ')"; fi
}

# watch_start TAG NREG N DOM PATH...: starts xenstore-watch for N events in domU DOM (output in
# /tmp/watch.TAG there); returns once its first NREG lines (the registration events) are in.
watch_start() {
    local tag=$1 nreg=$2 n=$3 d=$4
    shift 4
    in_dom "$d" "{ timeout 30 xenstore-watch -n $n $(xt_quote "$@") >/tmp/watch.$tag 2>&1 </dev/null & }
        i=0; while [ \$(wc -l </tmp/watch.$tag) -lt $nreg ]; do i=\$((i + 1)); [ \$i -gt 100 ] && exit 1; sleep 0.1; done"
}

# watch_expect NAME TAG N DOM WANT: waits (bounded) for N lines from the watcher, compares them.
watch_expect() {
    local name=$1 tag=$2 n=$3 d=$4 want=$5 out
    out=$(in_dom "$d" "i=0; while [ \$(wc -l </tmp/watch.$tag) -lt $n ]; do i=\$((i + 1)); [ \$i -gt 100 ] && break; sleep 0.1; done
        cat /tmp/watch.$tag")
    if [ "$out" = "$want" ]; then pass "xen/xs/$name"
    else fail "xen/xs/$name: events '$(echo "$out" | tr '\n' '|')', expected '$(echo "$want" | tr '\n' '|')'"; fi
}

sem_xenstore() {
    local u=$1 v=$2 hu=/local/domain/$1 hv=/local/domain/$2
    # Transactions with two libxenstore handles, as dom0 and as the domU.
    if [ -x /xt/bin/xs-txn ]; then
        timeout 120 xs-txn dom0 /xt-txn 2>&1 | grep -E '^(PASS|FAIL): ' | sed 's#^\(PASS\|FAIL\): #\1: xen/dom0/#' |
            tee -a "$XT_RESULTS"
        # Real xenstored 4.17 lets a domU's connection open 11 transactions (xensim: 10, on purpose).
        in_dom "$u" -t 120 "xs-txn dom$u $hu/data/txn 11" 2>&1 | grep -E '^(PASS|FAIL): ' |
            sed "s#^\(PASS\|FAIL\): #\1: xen/dom$u/#" | tee -a "$XT_RESULTS"
    fi

    # Round trips from the unprivileged domU, under data/t (the agent and the relays use the rest of data/).
    okay domU-write-relative "$u" xenstore-write data/t/x one data/t/y/z two
    expect domU-read-relative one "$u" xenstore-read data/t/x
    expect domU-read-absolute two "$u" xenstore-read "$hu/data/t/y/z"
    expect domU-read-home "$u" "$u" xenstore-read domid
    expect domU-list "x
y" "$u" xenstore-list data/t
    okay domU-exists "$u" xenstore-exists data/t/y/z
    okay domU-rm "$u" xenstore-rm data/t/y
    refused domU-rm-gone "" "$u" xenstore-exists data/t/y
    expect dom0-sees-domU-write one 0 xenstore-read "$hu/data/t/x"
    okay domU-rm-missing-ok "$u" xenstore-rm data/t/never

    # Permissions, as xl sets up a domU's home.
    refused deny-read-other "couldn't read path" "$u" xenstore-read "$hv/domid"
    refused deny-ls-other "Permission denied" "$u" xenstore-ls "$hv"
    refused deny-hides-existence "Permission denied" "$u" xenstore-ls "$hv/nothing"
    refused own-missing-is-enoent "No such file or directory" "$u" xenstore-ls "$hu/nothing"
    refused deny-write-other "could not write path" "$u" xenstore-write "$hv/data/x" evil
    refused deny-write-left-nothing "" 0 xenstore-exists "$hv/data/x"
    refused deny-write-readonly-home "could not write path" "$u" xenstore-write "$hu/name" evil
    expect readonly-home-unchanged "$XT_DOMU" 0 xenstore-read "$hu/name"
    refused deny-create-in-readonly-home "could not write path" "$u" xenstore-write "$hu/new" x
    refused deny-rm-other "could not remove path" "$u" xenstore-rm "$hv/domid"
    expect deny-rm-left-node "$v" 0 xenstore-read "$hv/domid"
    refused deny-chmod-other "Error occurred setting permissions" "$u" xenstore-chmod "$hv/domid" "b$u"
    refused deny-read-root "Permission denied" "$u" xenstore-ls /

    # Owner on create: a domU owns what it creates, dom0-created nodes keep the inherited owner.
    okay shared-dir-create 0 xenstore-write "$hu/shared" ""
    okay shared-dir-chmod 0 xenstore-chmod "$hu/shared" n0 "b$u"
    okay owner-create-domU "$u" xenstore-write "$hu/shared/by$u" x
    okay owner-create-dom0 0 xenstore-write "$hu/shared/by0" x
    expect owner-on-create "shared = \"\"  . . . . . . . . . . . . . . . . . . . . . . . .  (n0,b$u)
 by$u = \"x\" . . . . . . . . . . . . . . . . . . . . . . . . .  (n$u,b$u)
 by0 = \"x\" . . . . . . . . . . . . . . . . . . . . . . . . .  (n0,b$u)" 0 sh -c "xenstore-ls -p $hu | grep -A2 '^shared'"

    okay chmod-own "$u" xenstore-chmod data/t/x "n$u" "r$v"
    expect chmod-get-perms "x = \"one\"  . . . . . . . . . . . . . . . . . . . . . . . . .  (n$u,r$v)" \
        0 sh -c "xenstore-ls -p $hu/data/t | grep '^x '"
    expect chmod-grants-read one "$v" xenstore-read "$hu/data/t/x"
    refused chmod-r-is-not-w "could not write path" "$v" xenstore-write "$hu/data/t/x" evil
    refused chmod-domU-cannot-give-away "Error occurred setting permissions" "$u" xenstore-chmod data/t/x "n$v"
    okay chmod-dom0-gives-away 0 xenstore-chmod "$hu/data/t/x" "n$v"
    refused given-away-unreadable "couldn't read path" "$u" xenstore-read data/t/x
    expect given-away-owner-reads one "$v" xenstore-read "$hu/data/t/x"

    # Watches seen from a domU.
    if watch_start w1 1 1 "$u" data/absent; then watch_expect watch-fires-on-registration w1 1 "$u" data/absent
    else fail "xen/xs/watch-fires-on-registration: the watcher did not start"; fi

    if watch_start w2 1 2 "$u" "$hu/data/node"; then
        xenstore-write "$hu/data/node" v
        watch_expect watch-fires-on-write w2 2 "$u" "$hu/data/node
$hu/data/node"
    else fail "xen/xs/watch-fires-on-write: the watcher did not start"; fi

    if watch_start w3 1 2 "$u" "$hu/data/node"; then
        xenstore-write "$hu/data/node/child/deep" v
        watch_expect watch-fires-on-child-write w3 2 "$u" "$hu/data/node
$hu/data/node/child/deep"
    else fail "xen/xs/watch-fires-on-child-write: the watcher did not start"; fi

    if watch_start w4 2 4 "$u" "$hu/data/node/child/deep" "$hu/data/node"; then
        xenstore-rm "$hu/data/node/child"
        watch_expect watch-fires-on-removal w4 4 "$u" "$hu/data/node/child/deep
$hu/data/node
$hu/data/node/child
$hu/data/node/child/deep"
    else fail "xen/xs/watch-fires-on-removal: the watcher did not start"; fi

    if watch_start w5 1 2 "$u" data/t; then
        dom "$u" xenstore-write data/t/rel v
        watch_expect watch-relative-path w5 2 "$u" "data/t
data/t/rel"
    else fail "xen/xs/watch-relative-path: the watcher did not start"; fi

    # The domU watches the other domU's home too, but hears only of what it may read: the secret
    # write comes first, so a leak would show before the sentinel.
    if watch_start w6 2 3 "$u" "$hv" data/t; then
        xenstore-write "$hv/secret" s
        dom "$u" xenstore-write data/t/sentinel v
        watch_expect watch-respects-permissions w6 3 "$u" "$hv
data/t
data/t/sentinel"
    else fail "xen/xs/watch-respects-permissions: the watcher did not start"; fi

    if watch_start w7 1 2 "$v" "$hu/data/perm"; then
        xenstore-write "$hu/data/perm" "" && xenstore-chmod "$hu/data/perm" "n$u" "r$v"
        watch_expect watch-fires-on-chmod w7 2 "$v" "$hu/data/perm
$hu/data/perm"
    else fail "xen/xs/watch-fires-on-chmod: the watcher did not start"; fi
}

# ---- event channels (test/xensim/test-evtchn) --------------------------------------------------------
sem_evtchn() {
    local u=$1 v=$2
    sem_begin evtchn-ping-pong "$u"
    sem_side 1 "$u" evtchn-peer serve @DIR 200 0
    sem_side 2 0 evtchn-peer ping @DIR 200 "$u"
    sem_end

    sem_begin evtchn-mask "$u"
    sem_side 1 "$u" evtchn-peer mask-recv @DIR
    sem_side 2 0 evtchn-peer mask-send @DIR
    sem_end

    # Wrong domain (the third domain tries the test domU's port offered to dom0), then the right one.
    sem_begin evtchn-errors "$u" "$v"
    sem_side 1 "$u" evtchn-peer offer @DIR 0
    sem_side 2 "$v" evtchn-peer errors @DIR "$u"
    sem_side 3 0 evtchn-peer take @DIR "$u"
    sem_end

    # Peer process killed: its port closes, ours reverts to unbound, a new process binds it again.
    sem_begin evtchn-restart "$u"
    sem_side 1 0 evtchn-peer keeper @DIR
    sem_side 2 "$u" evtchn-peer echo @DIR 1
    if sem_wait_file kill-now; then
        sem_kill 2 "$u"
        sem_put killed
        sem_wait_file rebind && sem_side 3 "$u" evtchn-peer echo @DIR 2
    else
        fail "xen/evtchn-restart: the keeper never asked for the kill"
    fi
    sem_end

    # A daemon's self re-exec: XENEVTCHN_NO_CLOEXEC + xenevtchn_fdopen keep its ports.
    sem_begin evtchn-reexec "$u"
    sem_side 1 "$u" evtchn-peer reexec @DIR
    sem_side 2 0 evtchn-peer ping @DIR 1 "$u"
    sem_end
}

# ---- grants (test/xensim/test-gnttab) ----------------------------------------------------------------
sem_gnttab() {
    local u=$1 v=$2
    # 300 pages (several map chunks) domU -> dom0, data both ways; the third domain is refused.
    sem_begin gnttab-share "$u" "$v"
    sem_side 1 "$u" gnt-peer share @DIR 300 rw
    sem_side 2 0 gnt-peer map @DIR 300 "$u"
    sem_side 3 "$v" gnt-peer map-refused @DIR "$u"
    sem_wait_file refs && xt_wait 60 "the mapper to finish" test -e "/run/ipc/gnttab-share.2.rc"
    sem_put release
    sem_end

    sem_begin gnttab-read-only "$u"
    sem_side 1 "$u" gnt-peer share @DIR 4 ro
    sem_side 2 0 gnt-peer map-ro @DIR 4 "$u"
    xt_wait 60 "the read-only mapper to finish" test -e "/run/ipc/gnttab-read-only.2.rc"
    sem_put release
    sem_end

    sem_begin gnttab-unshare "$u"
    sem_side 1 "$u" gnt-peer share-unshare @DIR
    sem_side 2 0 gnt-peer map-unshare @DIR
    sem_end

    # The granter is killed (after closing its evtchn handle): notification, data kept, grants revoked.
    sem_begin gnttab-granter-death "$u"
    sem_side 1 "$u" gnt-peer share-victim @DIR
    sem_kill_when ready 1 "$u"
    sem_side 2 0 gnt-peer map-survivor @DIR
    sem_end

    # Unmap notifications both ways, and a mapper killed after closing its evtchn handle.
    sem_begin gnttab-notify "$u"
    sem_side 1 "$u" gnt-peer notify-granter @DIR
    sem_side 2 0 gnt-peer notify-mapper @DIR
    sem_side 3 0 gnt-peer mapper-victim @DIR
    sem_kill_when victim-ready 3 0
    xt_wait 60 "the notify mapper to finish" test -e "/run/ipc/gnttab-notify.2.rc"
    sem_put "done"
    sem_end

    # gntalloc's 1024-page limit per domain.
    sem_begin gnttab-limit "$u"
    sem_side 1 "$u" gnt-peer limit @DIR
    sem_end
}

run_cases() {
    local u v p
    # third-domain, then every line of the xenstore, event-channel and grant scenarios with their
    # peers' relayed lines: counted on a full run (each peer program prints a fixed list)
    xt_plan 180
    u=$(xt_domu_id)
    for p in $SEM_PROGS; do
        [ -x "/xt/bin/$p" ] || fail "xen/semantics: $p is not in the image (build/xensim-tests/$p missing)"
    done
    # The programs number domains as xensim does: the test domU must be domain 1, the third one 2.
    if [ "$u" != 1 ]; then
        fail "xen/semantics: the test domU is domain '$u', the programs need domain 1"
        return
    fi
    xt_step "semantics: create a second domU"
    if ! v=$(xt_domain_create xtest2 2>/run/xtest2.err) || [ "$v" != 2 ]; then
        fail "xen/semantics/third-domain: a second PV domU as domain 2: got '$v': $(tail -n 2 /run/xtest2.err | tr '\n' ' ')"
        return
    fi
    pass "xen/semantics/third-domain: a second PV domU is domain 2"
    xt_step "semantics: xenstore"
    sem_xenstore "$u" "$v"
    xt_step "semantics: event channels"
    sem_evtchn "$u" "$v"
    xt_step "semantics: grants"
    sem_gnttab "$u" "$v"
    xt_step "semantics: destroy the second domU"
    timeout 60 xl destroy xtest2 || fail "xen/semantics/third-domain: xl destroy xtest2 failed"
}
