# The control plugin (issue 9): ctl.xen / ctl.xen_raw, libasound_module_ctl_xen.so. It shows the
# card's identity from xenstore and no elements (why: the comment at the top of ctl_xen.c).
# Built as the PCM plugin is (-DPIC: alsa-lib's dlsym versioning; -z defs outside ASan). It reads
# xenstore with xs_config.c, linked in: the PCM's .so need not be loaded. -Bsymbolic: when a process
# loads both plugins, each calls its own copy of xs_config's functions.
CTL_PLUGIN     = $(BUILD)/libasound_module_ctl_xen.so
CTL_SRC        = ctl_xen.c xs_config.c
CTL_XEN_LIBS   = $(shell pkg-config --libs xenstore 2>/dev/null || echo -lxenstore)
all: $(CTL_PLUGIN)
install: $(CTL_PLUGIN)
$(CTL_PLUGIN): $(CTL_SRC) xs_config.h
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_COMMON) $(ALSA_CFLAGS) -fPIC -DPIC -shared -o $@ $(CTL_SRC) \
	    $(LDFLAGS_COMMON) $(PLUGIN_LDFLAGS) -Wl,-Bsymbolic $(ALSA_LIBS) $(CTL_XEN_LIBS)

# Applications on top of the plugin (issue 9): JACK and mpv in the simulated guest, and the ctl.
# jack-tone (a JACK client playing known frames) needs libjack's headers; without them `make` still
# builds everything else and test-jack says what is missing.
DEB_PACKAGES += jackd2 libjack-jackd2-dev mpv
ifneq ($(shell pkg-config --exists jack && echo yes),)
all: $(BUILD)/jack-tone
endif
all: $(BUILD)/stall-probe
$(BUILD)/jack-tone: test/apps/jack-tone.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_COMMON) $(shell pkg-config --cflags jack) -o $@ $< $(LDFLAGS_COMMON) $(shell pkg-config --libs jack)
# stall-probe: how late the machine wakes a real-time thread (test-jack's rerun rule, make bench).
$(BUILD)/stall-probe: test/apps/stall-probe.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_COMMON) -o $@ $< $(LDFLAGS_COMMON)
CHECK_TESTS += test/apps/test-ctl test/apps/test-mpv
# test-jack is not in make check: on this 2-vCPU virtual machine JACK's own dummy driver (no ALSA,
# no plugin, no simulation) reports client xruns at 64-frame periods (31 in 10 s; 3 with the vCPUs
# kept awake), and jackd on the plugin at 128 frames passes only on a quiet machine (3 of 3 runs
# alone, 1 of 3 beside a build). make bench prints both drivers' xruns side by side. Run it with
# `test/run-tests --build build test/apps/test-jack` (APPS_JACK64=1 adds the 64-frame run).
