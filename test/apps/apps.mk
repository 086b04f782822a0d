# The sound servers and applications on top of the plugin (issue 9), in the simulated guest:
# PipeWire + WirePlumber and PulseAudio (test/apps/test-pipewire, test/apps/test-pulseaudio).
# pcm-trace: an LD_PRELOAD library the tests put into the servers to record the positions they read.
APPS_SRC = test/apps
APPS_TRACE = $(BUILD)/apps/libpcm-trace.so
ifneq ($(SAN),1)
APPS_TRACE_LDFLAGS = -Wl,-z,defs
endif
all: $(APPS_TRACE)
$(APPS_TRACE): $(APPS_SRC)/pcm-trace.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_COMMON) $(ALSA_CFLAGS) -fPIC -shared -o $@ $< $(LDFLAGS_COMMON) $(APPS_TRACE_LDFLAGS) $(ALSA_LIBS) -lpthread

# Under the ASan build only: lets PulseAudio start with the sanitizer runtime preloaded (see the file).
APPS_PA_SHIM = $(BUILD)/apps/libpa-i18n-shim.so
all: $(APPS_PA_SHIM)
$(APPS_PA_SHIM): $(APPS_SRC)/pa-i18n-shim.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_COMMON) -fPIC -shared -o $@ $< $(LDFLAGS_COMMON)

CHECK_TESTS += $(APPS_SRC)/test-pipewire $(APPS_SRC)/test-pulseaudio
DEB_PACKAGES += pipewire pipewire-bin libspa-0.2-modules wireplumber dbus pulseaudio pulseaudio-utils
