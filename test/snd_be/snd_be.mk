# xen-troops snd_be as a backend of the tests (test/snd_be/README.md). Included by the Makefile.
# snd_be and libxenbe are third-party: built unmodified from the read-only tarballs in
# ../shared/third-party/ into $(BUILD)/snd_be/ (sources extracted under it, never committed),
# by the plain build only; the ASan build's tests use the plain build's snd_be (test/xen-sim).
SBE_TARBALLS ?= $(abspath ../shared/third-party)
SBE_LIBXENBE_TGZ = $(SBE_TARBALLS)/libxenbe-bbe8f24.tar.gz
SBE_SND_BE_TGZ = $(SBE_TARBALLS)/snd_be-b2764c2.tar.gz
SBE_DIR = $(BUILD)/snd_be
SBE_BIN = $(SBE_DIR)/bin/snd_be
# The test card (ioplug) and the audio-timestamp shim, loaded into snd_be: plain builds always.
SBE_CLOCK = $(SBE_DIR)/lib/libasound_module_pcm_sbe_clock.so
SBE_HTSTAMP = $(SBE_DIR)/lib/libsbe_htstamp.so
SBE_CFLAGS = -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror $(OPT)
# The guest-side client of test/plugin/test-snd-be (our code: both builds).
SBE_CLIENT = $(BUILD)/sbe-client

DEB_PACKAGES += cmake g++
CHECK_TESTS += test/plugin/test-snd-be

all: $(SBE_CLIENT)
ifneq ($(SAN),1)
all: $(SBE_BIN) $(SBE_CLOCK) $(SBE_HTSTAMP)
endif

# The binary is the stamp (written last; only the tarballs make it out of date). flock: other
# makes in the same tree (make check's two builds, a second shell) must not build over this one.
$(SBE_BIN): $(SBE_LIBXENBE_TGZ) $(SBE_SND_BE_TGZ) test/snd_be/build-snd_be
	@mkdir -p $(SBE_DIR)
	flock $(SBE_DIR)/.lock test/snd_be/build-snd_be $(SBE_TARBALLS) $(SBE_DIR)

$(SBE_CLOCK): test/snd_be/sbe_clock.c
	@mkdir -p $(@D)
	$(CC) $(SBE_CFLAGS) $(ALSA_CFLAGS) -fPIC -DPIC -shared -Wl,-z,defs -o $@ $< $(ALSA_LIBS) -lpthread

$(SBE_HTSTAMP): test/snd_be/sbe_htstamp.c
	@mkdir -p $(@D)
	$(CC) $(SBE_CFLAGS) $(ALSA_CFLAGS) -fPIC -shared -Wl,-z,defs -o $@ $< $(ALSA_LIBS) -ldl

$(SBE_CLIENT): test/snd_be/sbe-client.c test/plugin/case-result.h
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_COMMON) $(ALSA_CFLAGS) -o $@ $< $(LDFLAGS_COMMON) $(ALSA_LIBS)
