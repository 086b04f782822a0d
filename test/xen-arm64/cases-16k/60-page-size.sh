# make test-xen-arm64-16k: the domU boots Debian's arm64 kernel with 16 KiB pages (linux-image-6.12-arm64-16k),
# dom0 the usual 4 KiB one. sndif shares 4 KiB Xen pages, one grant each, and gntalloc grants only the first
# 4 KiB of each kernel page: the plugin must refuse at open with its one line, touching nothing.
# Cases: the domU's kernel really uses 16 KiB pages; the kernel's own snd_xen_front refuses to load
# (it wants XEN_PAGE_SIZE == PAGE_SIZE); aplay -D xen as xtuser fails with the plugin's line, which is
# its only line, and neither sndback nor the card's xenbus states saw anything.
if [ -f /xt/lib/40-plugin-arm64.sh ]; then
    . /xt/lib/40-plugin-arm64.sh                # in dom0
else
    . "$TOP/test/xen-arm64/cases/40-plugin.sh"  # on the host, for the image hooks
fi

PS_LINE="this guest's kernel uses 16384-byte pages: sndif shares 4096-byte pages, one grant each, so pcm_xen needs a kernel with 4 KiB pages"

# ps_kernel_pages: the domU's kernel maps this process with 16 kB pages.
ps_kernel_pages() {
    local out
    out=$(in_domu "grep -m 1 KernelPageSize /proc/self/smaps") || { echo "$out" >&2; return 1; }
    echo "$out" | grep -q "KernelPageSize: *16 kB" || { echo "domU: $out" >&2; return 1; }
}

# ps_kernel_fe_refuses: modprobe snd_xen_front fails (ENODEV) and the card stays unconnected.
ps_kernel_fe_refuses() {
    local out
    if out=$(in_domu "modprobe snd_xen_front" 2>&1); then
        echo "snd_xen_front loaded on a 16K-page kernel" >&2
        return 1
    fi
    echo "$out" | grep -q "No such device" || { echo "modprobe: $out" >&2; return 1; }
    in_domu "dmesg | grep -i 'page size' | tail -n 1" >"$XT_OUT/page-size-kernel-fe.txt" 2>&1
    xt_states_are 1 2 || { echo "frontend state $(xt_fe_state), backend state $(xt_be_state)" >&2; return 1; }
}

# ps_plugin_refuses: aplay -D xen fails; its output is the plugin's one line (ALSA's prefix) and
# aplay's own; sndback opened nothing; the xenbus states are untouched.
ps_plugin_refuses() {
    local out
    rm -rf "${XT_SNDBACK_OUT:?}"/*
    # (A buffer of many 4 KiB pages: u8-8000-1's 4000-byte one would fit in the one granted 4 KiB.)
    if out=$(in_domu -t 60 "$(pl_user "aplay -q -D xen /xt/media/s16_le-48000-2.wav")" 2>&1); then
        echo "aplay -D xen succeeded on a 16K-page kernel" >&2
        return 1
    fi
    echo "$out" >"$XT_OUT/page-size-plugin.txt"
    echo "$out" | grep -qF "$PS_LINE" || { echo "expected '$PS_LINE', got: $out" >&2; return 1; }
    [ "$(echo "$out" | grep -c 'pcm_xen')" = 1 ] || { echo "more than one line of the plugin: $out" >&2; return 1; }
    [ -z "$(ls "$XT_SNDBACK_OUT")" ] || { echo "sndback got a stream: $(ls "$XT_SNDBACK_OUT")" >&2; return 1; }
    xt_states_are 1 2 || { echo "frontend state $(xt_fe_state), backend state $(xt_be_state)" >&2; return 1; }
}

run_cases() {
    xt_plan 4   # setup, kernel, kernel-fe, plugin
    xt_step "page-size: the udev rule's GROUP/MODE on /dev/xen/*, user $PL_USER"
    check "xen/page-size/setup: the plugins installed, /dev/xen/* root:audio 0660, $PL_USER in audio" pl_grant_audio
    xt_step "page-size: the domU's kernel page size"
    check "xen/page-size/kernel: the domU's kernel uses 16 KiB pages" ps_kernel_pages
    xt_step "page-size: modprobe snd_xen_front"
    check "xen/page-size/kernel-fe: snd_xen_front refuses a 16K-page kernel (ENODEV), the card untouched" ps_kernel_fe_refuses
    xt_step "page-size: aplay -D xen as $PL_USER"
    check "xen/page-size/plugin: aplay -D xen refused at open with the plugin's one line, nothing reaches sndback" ps_plugin_refuses
}
